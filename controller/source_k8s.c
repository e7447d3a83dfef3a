#include "source_k8s.h"

#include "k8s_fields.h"
#include "k8s_http.h"
#include "k8s_watch.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The fields of a Cluster the map needs; everything else is dropped on arrival. */
#define PTR_NAME     "/metadata/name"
#define PTR_UID      "/metadata/uid"
#define PTR_DISPLAY  "/spec/displayName"
#define PTR_ENDPOINT "/metadata/annotations/loft.sh~1derp-endpoint"
#define PTR_INSECURE "/metadata/annotations/loft.sh~1derp-endpoint-insecure"

static const char *const cluster_fields[] = {PTR_NAME, PTR_UID, PTR_DISPLAY, PTR_ENDPOINT,
                                             PTR_INSECURE};

struct source_k8s {
    struct dc_loop *loop;
    struct k8s_watch *watch; /* packed store: it keeps only what the reflector needs */
    json_t *records;         /* owned: key -> one string holding the five fields (pack()) */
    source_k8s_cb cb;
    void *arg;
    struct dc_timer snapshot; /* one snapshot per loop pass, however many events */
    bool is_synced;
    struct cluster_input *inputs; /* reused between snapshots */
    size_t cap;
};

/* The Cluster fields in order: name, uid, displayName, endpoint, insecure. */
#define NFIELDS 5

/* One string for a Cluster: per field a '+' and the value, or a '-', each
 * ended by a NUL. A few dozen bytes where a JSON tree takes 2 KB. */
static json_t *pack(const json_t *obj, const char *key)
{
    const char *v[NFIELDS] = {
        k8s_pointer_get_string(obj, PTR_NAME), k8s_pointer_get_string(obj, PTR_UID),
        k8s_pointer_get_string(obj, PTR_DISPLAY), k8s_pointer_get_string(obj, PTR_ENDPOINT),
        k8s_pointer_get_string(obj, PTR_INSECURE)};
    if (v[0] == NULL) {
        v[0] = key;
    }
    size_t len = 0;
    for (int i = 0; i < NFIELDS; i++) {
        len += 2 + (v[i] != NULL ? strlen(v[i]) : 0);
    }
    char *buf = malloc(len);
    if (buf == NULL) {
        return NULL;
    }
    size_t off = 0;
    for (int i = 0; i < NFIELDS; i++) {
        size_t n = v[i] != NULL ? strlen(v[i]) : 0;
        buf[off++] = v[i] != NULL ? '+' : '-';
        memcpy(buf + off, v[i] != NULL ? v[i] : "", n);
        off += n;
        buf[off++] = '\0';
    }
    json_t *rec = json_stringn_nocheck(buf, len);
    free(buf);
    return rec;
}

/* The fields of a record, pointing into it (NULL for an absent one). */
static void unpack(const json_t *rec, const char *v[NFIELDS])
{
    const char *p = json_string_value(rec);
    const char *end = p + json_string_length(rec);
    for (int i = 0; i < NFIELDS; i++) {
        if (p >= end) {
            v[i] = NULL;
            continue;
        }
        v[i] = *p == '+' ? p + 1 : NULL;
        p += strlen(p) + 1;
    }
}

static void deliver(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct source_k8s *s = t->data;
    size_t n = json_object_size(s->records);
    if (n + 1 > s->cap) {
        struct cluster_input *v = realloc(s->inputs, (n + 1) * sizeof(*v));
        if (v == NULL) {
            dc_log(DC_LOG_ERROR, "derp-map",
                   "out of memory reading Clusters; keeping the last map");
            return;
        }
        s->inputs = v;
        s->cap = n + 1;
    }
    size_t i = 0;
    const char *key;
    json_t *rec;
    json_object_foreach(s->records, key, rec)
    {
        const char *v[NFIELDS];
        unpack(rec, v);
        s->inputs[i++] = (struct cluster_input){
            .name = v[0] != NULL ? v[0] : key,
            .uid = v[1],
            .display_name = v[2],
            .endpoint = v[3],
            .insecure = v[4],
            .origin = NULL,
        };
    }
    s->cb(s->arg, s->inputs, i);
}

static void schedule(struct source_k8s *s)
{
    if (s->is_synced && !s->snapshot.is_active) {
        dc_timer_start(s->loop, &s->snapshot, 0);
    }
}

static void on_add(void *arg, const char *key, const json_t *obj)
{
    struct source_k8s *s = arg;
    json_t *rec = pack(obj, key);
    if (rec == NULL || json_object_set_new(s->records, key, rec) < 0) {
        dc_log(DC_LOG_ERROR, "derp-map", "out of memory keeping Cluster %s", key);
    }
    schedule(s);
}

static void on_update(void *arg, const char *key, const json_t *old_obj, const json_t *new_obj)
{
    (void)old_obj;
    on_add(arg, key, new_obj);
}

static void on_delete(void *arg, const char *key, const json_t *obj)
{
    (void)obj;
    struct source_k8s *s = arg;
    json_object_del(s->records, key);
    schedule(s);
}

static void on_synced(void *arg)
{
    struct source_k8s *s = arg;
    s->is_synced = true;
    dc_log(DC_LOG_INFO, "derp-k8s", "listed %zu Clusters; watching for changes",
           k8s_watch_count(s->watch));
    schedule(s);
}

static void on_error(void *arg, int code, const char *err)
{
    (void)arg;
    (void)code;
    bool missing = strstr(err, "NotFound") != NULL || strstr(err, "404") != NULL;
    dc_log(DC_LOG_WARN, "derp-k8s", "Clusters: %s%s", err,
           missing ? " (is the clusters.management.loft.sh CRD installed?)" : "");
}

int source_k8s_start(struct dc_loop *loop, struct k8s_client *client, source_k8s_cb cb, void *arg,
                     struct source_k8s **out, char *err)
{
    struct source_k8s *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    s->snapshot = (struct dc_timer){.cb = deliver, .data = s};
    s->records = json_object();
    if (s->records == NULL) {
        free(s);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    struct k8s_watch_opts wo = {
        .path = SOURCE_K8S_CLUSTERS_PATH,
        .fields = cluster_fields,
        .nfields = sizeof(cluster_fields) / sizeof(cluster_fields[0]),
        .on_add = on_add,
        .on_update = on_update,
        .on_delete = on_delete,
        .on_synced = on_synced,
        .on_error = on_error,
        .arg = s,
        .is_packed = true,
    };
    int rc = k8s_watch_start(client, &wo, &s->watch, err);
    if (rc < 0) {
        json_decref(s->records);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void source_k8s_free(struct source_k8s *s)
{
    if (s == NULL) {
        return;
    }
    dc_timer_stop(s->loop, &s->snapshot);
    k8s_watch_stop(s->watch);
    json_decref(s->records);
    free(s->inputs);
    free(s);
}

void source_k8s_resync(struct source_k8s *s)
{
    schedule(s);
}

bool source_k8s_is_synced(const struct source_k8s *s)
{
    return s->is_synced;
}

uint64_t source_k8s_restarts(const struct source_k8s *s)
{
    struct k8s_watch_stats st;
    k8s_watch_stats(s->watch, &st);
    return st.restarts + st.relists;
}
