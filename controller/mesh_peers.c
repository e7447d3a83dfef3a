#include "mesh_peers.h"

#include "file.h"
#include "k8s_watch.h"
#include "log.h"
#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mesh_peers {
    struct dc_loop *loop;
    struct k8s_watch *watch;
    char *path;
    char *port_name;
    char *current; /* owned: the file's contents now, or NULL before the first write */
    size_t count;
    struct dc_timer update; /* one rewrite per loop pass */
};

/* The slice's port number for port_name, or 0. */
static long slice_port(const json_t *ports, const char *port_name)
{
    if (!json_is_array(ports)) {
        return 0;
    }
    if (port_name[0] == '\0' && json_array_size(ports) != 1) {
        return 0;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        const json_t *name = json_object_get(p, "name");
        const char *n = json_is_string(name) ? json_string_value(name) : "";
        json_int_t port = json_integer_value(json_object_get(p, "port"));
        if ((port_name[0] == '\0' || strcmp(n, port_name) == 0) && port > 0 && port < 65536) {
            return (long)port;
        }
    }
    return 0;
}

/* Appends the URLs of one slice's ready endpoints to urls. */
static void slice_urls(const json_t *slice, const char *port_name, json_t *urls)
{
    const char *type = json_string_value(json_object_get(slice, "addressType"));
    long port = slice_port(json_object_get(slice, "ports"), port_name);
    if (port == 0 || type == NULL || (strcmp(type, "IPv4") != 0 && strcmp(type, "IPv6") != 0)) {
        return; /* FQDN slices and slices without the relay's port */
    }
    bool v6 = strcmp(type, "IPv6") == 0;
    size_t i;
    const json_t *ep;
    json_array_foreach(json_object_get(slice, "endpoints"), i, ep)
    {
        /* discovery/v1: a missing ready condition means "unknown", read as ready. */
        const json_t *ready = json_object_get(json_object_get(ep, "conditions"), "ready");
        const char *addr = json_string_value(json_array_get(json_object_get(ep, "addresses"), 0));
        unsigned char bin[sizeof(struct in6_addr)];
        if (json_is_false(ready) || addr == NULL ||
            inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) {
            continue; /* not ready, or not an address of the slice's family */
        }
        char url[128];
        snprintf(url, sizeof(url), v6 ? "http://[%s]:%ld/derp" : "http://%s:%ld/derp", addr, port);
        json_array_append_new(urls, json_string(url));
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *mesh_peers_format(const json_t *store, const char *port_name)
{
    json_t *urls = json_array();
    const char *key;
    json_t *slice;
    json_object_foreach((json_t *)store, key, slice)
    {
        slice_urls(slice, port_name, urls);
    }
    size_t n = json_array_size(urls);
    const char **v = calloc(n + 1, sizeof(*v));
    char *out = NULL;
    size_t len = 0, cap = 1;
    for (size_t i = 0; v != NULL && i < n; i++) {
        v[i] = json_string_value(json_array_get(urls, i));
        cap += strlen(v[i]) + 1;
    }
    if (v != NULL && urls != NULL && (out = malloc(cap)) != NULL) {
        qsort(v, n, sizeof(*v), str_cmp);
        out[0] = '\0';
        for (size_t i = 0, kept = 0; i < n && kept < MESH_PEERS_MAX; i++) {
            if (i > 0 && strcmp(v[i], v[i - 1]) == 0) {
                continue; /* one pod in two slices during a move */
            }
            len += (size_t)snprintf(out + len, cap - len, "%s\n", v[i]);
            kept++;
        }
    }
    free(v);
    json_decref(urls);
    return out;
}

static void update_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct mesh_peers *mp = t->data;
    char *text = mesh_peers_format(k8s_watch_store(mp->watch), mp->port_name);
    if (text == NULL) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "out of memory listing mesh peers");
        return;
    }
    if (mp->current != NULL && strcmp(text, mp->current) == 0) {
        free(text);
        return;
    }
    char err[DC_ERR_LEN];
    if (dc_file_write_atomic(mp->path, text, strlen(text), err) < 0) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "writing mesh peers: %s", err);
        free(text);
        return;
    }
    size_t n = 0;
    for (const char *p = text; *p; p++) {
        n += *p == '\n';
    }
    dc_log(DC_LOG_INFO, "derp-mesh", "mesh peers from EndpointSlices: %zu relay%s", n,
           n == 1 ? "" : "s");
    free(mp->current);
    mp->current = text;
    mp->count = n;
}

static void schedule(void *arg)
{
    struct mesh_peers *mp = arg;
    if (k8s_watch_is_synced(mp->watch) && !mp->update.is_active) {
        dc_timer_start(mp->loop, &mp->update, 0);
    }
}

static void on_change(void *arg, const char *key, const json_t *obj)
{
    (void)key;
    (void)obj;
    schedule(arg);
}

static void on_update(void *arg, const char *key, const json_t *a, const json_t *b)
{
    (void)key;
    (void)a;
    (void)b;
    schedule(arg);
}

int mesh_peers_start(struct dc_loop *loop, struct k8s_client *client, const char *ns,
                     const char *service, const char *port_name, const char *path,
                     struct mesh_peers **out, char *err)
{
    static const char *const fields[] = {"/addressType", "/endpoints", "/ports"};
    struct mesh_peers *mp = calloc(1, sizeof(*mp));
    char cpath[512], query[512];
    if (mp == NULL || (mp->path = strdup(path)) == NULL ||
        (mp->port_name = strdup(port_name)) == NULL) {
        mesh_peers_free(mp);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    mp->loop = loop;
    mp->update = (struct dc_timer){.cb = update_cb, .data = mp};
    snprintf(cpath, sizeof(cpath), "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices", ns);
    snprintf(query, sizeof(query), "labelSelector=%s%%3D%s", MESH_PEERS_SERVICE_LABEL, service);
    struct k8s_watch_opts wo = {.path = cpath,
                                .query = query,
                                .fields = fields,
                                .nfields = 3,
                                .on_add = on_change,
                                .on_update = on_update,
                                .on_delete = on_change,
                                .on_synced = schedule,
                                .arg = mp};
    int rc = k8s_watch_start(client, &wo, &mp->watch, err);
    if (rc < 0) {
        mesh_peers_free(mp);
        return rc;
    }
    *out = mp;
    return 0;
}

void mesh_peers_free(struct mesh_peers *mp)
{
    if (mp == NULL) {
        return;
    }
    if (mp->loop != NULL) {
        dc_timer_stop(mp->loop, &mp->update);
    }
    k8s_watch_stop(mp->watch);
    free(mp->current);
    free(mp->path);
    free(mp->port_name);
    free(mp);
}

size_t mesh_peers_count(const struct mesh_peers *mp)
{
    return mp->count;
}
