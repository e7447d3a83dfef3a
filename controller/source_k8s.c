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
    struct k8s_watch *watch;
    source_k8s_cb cb;
    void *arg;
    struct dc_timer snapshot; /* one snapshot per loop pass, however many events */
    bool is_synced;
    struct cluster_input *inputs; /* reused between snapshots */
    size_t cap;
};

/* Reads a string at JSON pointer p of a projection, or NULL. */
static const char *field(const json_t *obj, const char *p)
{
    return k8s_pointer_get_string(obj, p);
}

static void deliver(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct source_k8s *s = t->data;
    const json_t *store = k8s_watch_store(s->watch);
    size_t n = json_is_object(store) ? json_object_size(store) : 0;
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
    json_t *obj;
    json_object_foreach((json_t *)store, key, obj)
    {
        const char *name = field(obj, PTR_NAME);
        s->inputs[i++] = (struct cluster_input){
            .name = name != NULL ? name : key,
            .uid = field(obj, PTR_UID),
            .display_name = field(obj, PTR_DISPLAY),
            .endpoint = field(obj, PTR_ENDPOINT),
            .insecure = field(obj, PTR_INSECURE),
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
    (void)key;
    (void)obj;
    schedule(arg);
}

static void on_update(void *arg, const char *key, const json_t *old_obj, const json_t *new_obj)
{
    (void)key;
    (void)old_obj;
    (void)new_obj;
    schedule(arg);
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
    struct k8s_watch_opts wo = {
        .path = SOURCE_K8S_CLUSTERS_PATH,
        .fields = cluster_fields,
        .nfields = sizeof(cluster_fields) / sizeof(cluster_fields[0]),
        .on_add = on_add,
        .on_update = on_update,
        .on_delete = on_add,
        .on_synced = on_synced,
        .on_error = on_error,
        .arg = s,
    };
    int rc = k8s_watch_start(client, &wo, &s->watch, err);
    if (rc < 0) {
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
