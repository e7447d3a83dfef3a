#include "k8s_watch.h"

#include "buf.h"
#include "k8s_fields.h"
#include "k8s_http.h"
#include "k8s_stream.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_LOG_SUBSYS "derp-k8s"
/* Longest query string built for a LIST or WATCH, in bytes. */
#define WATCH_MAX_QUERY_LEN 4096u
/* A watch that ends cleanly sooner than this without an event waits a backoff before the next
 * one, so a server that closes every watch at once does not get a hot loop. */
#define WATCH_MIN_CLEAN_MS 1000u
/* The projection always keeps this: it tells a change from a repeat. */
#define WATCH_RV_POINTER "/metadata/resourceVersion"

/* What the retry timer starts. */
enum watch_step {
    WATCH_STEP_LIST,
    WATCH_STEP_WATCH,
};

struct k8s_watch {
    struct k8s_client *client;         /* borrowed */
    char *path;                        /* owned */
    char *query;                       /* owned or NULL: the caller's extra parameters */
    struct k8s_projection proj;        /* owned: the caller's pointers plus WATCH_RV_POINTER */
    uint32_t limit;                    /* LIST page size; 0 for a full list */
    uint32_t watch_timeout_s;          /* 0: random per watch */
    k8s_watch_add_cb on_add;           /* callbacks, may be NULL */
    k8s_watch_update_cb on_update;     /* */
    k8s_watch_delete_cb on_delete;     /* */
    k8s_watch_synced_cb on_synced;     /* */
    k8s_watch_error_cb on_error;       /* */
    void *arg;                         /* borrowed */
    json_t *store;                     /* owned: key -> projection (packed: see stored_value) */
    bool is_packed;                    /* opts->is_packed */
    json_t *next;                      /* owned or NULL: the LIST being assembled */
    char *continue_token;              /* owned or NULL: the next LIST page */
    bool is_full_list;                 /* the next LIST goes without limit (expired token) */
    char rv[K8S_WATCH_MAX_RV_LEN + 1]; /* last resourceVersion seen */
    struct k8s_call *call;             /* the request in flight, or NULL */
    struct k8s_stream stream;          /* owned: the current watch body */
    struct k8s_backoff backoff;        /* waits between failed attempts */
    struct dc_timer timer;             /* the next attempt */
    enum watch_step step;              /* what the timer starts */
    uint64_t watch_started_ms;         /* dc_now_ms() of the current watch */
    bool has_event;                    /* the current watch delivered an event */
    bool has_listed;                   /* a LIST completed */
    bool is_stopped;                   /* k8s_watch_stop() was called */
    unsigned busy;                     /* callbacks of this watch on the stack */
    char why[DC_ERR_LEN];              /* why the event handler stopped the stream */
    struct k8s_watch_stats stats;      /* counters */
};

static int list_start(struct k8s_watch *w);
static int watch_send(struct k8s_watch *w, bool is_resume);

/* --- small helpers --- */

static void watch_free(struct k8s_watch *w)
{
    k8s_call_cancel(w->call);
    dc_timer_stop(k8s_client_loop(w->client), &w->timer);
    k8s_projection_deinit(&w->proj);
    k8s_stream_deinit(&w->stream);
    json_decref(w->store);
    json_decref(w->next);
    free(w->continue_token);
    free(w->path);
    free(w->query);
    free(w);
}

/* Every entry from k8s_http or the loop holds the watch; the last one out frees a stopped one. */
static void watch_hold(struct k8s_watch *w)
{
    w->busy++;
}

static void watch_release(struct k8s_watch *w)
{
    w->busy--;
    if (w->busy == 0 && w->is_stopped) {
        watch_free(w);
    }
}

static void report(struct k8s_watch *w, int code, const char *fmt, ...) DC_PRINTF(3, 4);

static void report(struct k8s_watch *w, int code, const char *fmt, ...)
{
    char text[DC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    w->stats.errors++;
    if (w->is_stopped) {
        return;
    }
    if (w->on_error != NULL) {
        w->on_error(w->arg, code, text);
    } else {
        dc_log(DC_LOG_WARN, WATCH_LOG_SUBSYS, "%s", text);
    }
}

static void emit_add(struct k8s_watch *w, const char *key, const json_t *obj)
{
    if (!w->is_stopped && w->on_add != NULL) {
        w->on_add(w->arg, key, obj);
    }
}

static void emit_update(struct k8s_watch *w, const char *key, const json_t *o, const json_t *n)
{
    if (!w->is_stopped && w->on_update != NULL) {
        w->on_update(w->arg, key, o, n);
    }
}

static void emit_delete(struct k8s_watch *w, const char *key, const json_t *obj)
{
    if (!w->is_stopped && w->on_delete != NULL) {
        w->on_delete(w->arg, key, obj);
    }
}

/* "ns/name" or "name" of obj into key (K8S_WATCH_MAX_KEY_LEN + 1 bytes); -EPROTO without one. */
static int object_key(const json_t *obj, char *key, size_t len)
{
    const char *name = k8s_meta_name(obj);
    const char *ns = k8s_meta_namespace(obj);
    if (name == NULL || name[0] == '\0') {
        return -EPROTO;
    }
    int n = (ns != NULL && ns[0] != '\0') ? snprintf(key, len, "%s/%s", ns, name)
                                          : snprintf(key, len, "%s", name);
    return (n < 0 || (size_t)n >= len) ? -EPROTO : 0;
}

static int set_rv(struct k8s_watch *w, const char *rv)
{
    size_t n = rv != NULL ? strlen(rv) : 0;
    if (n == 0 || n > K8S_WATCH_MAX_RV_LEN) {
        return -EPROTO;
    }
    memcpy(w->rv, rv, n + 1);
    return 0;
}

static bool same_rv(const json_t *a, const json_t *b)
{
    const char *ra = k8s_meta_resource_version(a);
    const char *rb = k8s_meta_resource_version(b);
    return ra != NULL && rb != NULL && strcmp(ra, rb) == 0;
}

/* --- the store's values ---
 * Plain: the projection itself. Packed: one JSON string holding
 * "RESOURCEVERSION\n" then the projection as compact JSON, one allocation of
 * a few hundred bytes instead of a tree of objects (about 2 KB for a Cluster):
 * what a store of 10 000 objects needs to stay small. */

/* The value to store for proj (stolen); NULL when out of memory. */
static json_t *stored_value(const struct k8s_watch *w, json_t *proj)
{
    if (!w->is_packed || proj == NULL) {
        return proj;
    }
    const char *rv = k8s_meta_resource_version(proj);
    char *text = json_dumps(proj, JSON_COMPACT);
    size_t rv_len = rv != NULL ? strlen(rv) : 0;
    size_t len = text != NULL ? strlen(text) : 0;
    char *buf = text != NULL ? malloc(rv_len + 1 + len) : NULL;
    json_t *v = NULL;
    if (buf != NULL) {
        memcpy(buf, rv != NULL ? rv : "", rv_len);
        buf[rv_len] = '\n';
        memcpy(buf + rv_len + 1, text, len);
        v = json_stringn_nocheck(buf, rv_len + 1 + len);
    }
    free(buf);
    free(text);
    json_decref(proj);
    return v;
}

/* A new reference to the projection a store value holds; NULL when value is
 * NULL or (packed) cannot be read back. */
static json_t *stored_object(const struct k8s_watch *w, const json_t *value)
{
    if (!w->is_packed || value == NULL) {
        return json_incref((json_t *)value);
    }
    const char *s = json_string_value(value);
    size_t len = json_string_length(value);
    const char *nl = s != NULL ? memchr(s, '\n', len) : NULL;
    if (nl == NULL) {
        return NULL;
    }
    json_error_t e;
    return json_loadb(nl + 1, len - (size_t)(nl + 1 - s), 0, &e);
}

/* Whether two store values carry the same resourceVersion. */
static bool same_stored_rv(const struct k8s_watch *w, const json_t *a, const json_t *b)
{
    if (!w->is_packed) {
        return same_rv(a, b);
    }
    const char *sa = json_string_value(a), *sb = json_string_value(b);
    const char *na = sa != NULL ? strchr(sa, '\n') : NULL;
    const char *nb = sb != NULL ? strchr(sb, '\n') : NULL;
    return na != NULL && nb != NULL && na > sa && na - sa == nb - sb &&
           memcmp(sa, sb, (size_t)(na - sa)) == 0;
}

/* emit_* with store values: decoded for the callbacks when packed. */
static void emit_stored(struct k8s_watch *w, const char *key, const json_t *old_value,
                        const json_t *new_value)
{
    json_t *o = stored_object(w, old_value);
    json_t *n = stored_object(w, new_value);
    if (old_value == NULL && n != NULL) {
        emit_add(w, key, n);
    } else if (new_value == NULL && o != NULL) {
        emit_delete(w, key, o);
    } else if (o != NULL && n != NULL) {
        emit_update(w, key, o, n);
    }
    json_decref(o);
    json_decref(n);
}

/* Appends s percent-encoded (everything but RFC 3986 unreserved characters). */
static int query_escape(struct dc_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool is_plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                        (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                        *p == '~';
        char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        int rc = is_plain ? dc_buf_append(b, p, 1) : dc_buf_append(b, enc, sizeof(enc));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Finishes a query built in b: the caller's parameters, then a NUL. */
static int query_finish(struct k8s_watch *w, struct dc_buf *b)
{
    int rc = 0;
    if (w->query != NULL && w->query[0] != '\0') {
        rc = dc_buf_printf(b, "&%s", w->query);
    }
    if (rc == 0) {
        rc = dc_buf_append(b, "", 1);
    }
    return rc;
}

/* Waits, then lists or watches again. */
static void schedule(struct k8s_watch *w, enum watch_step step, uint32_t wait_ms)
{
    w->step = step;
    dc_timer_start(k8s_client_loop(w->client), &w->timer, wait_ms);
}

static uint32_t failure_wait_ms(struct k8s_watch *w, const struct k8s_response *resp)
{
    if (resp != NULL && resp->error == 0 && resp->retry_after_s > 0) {
        return resp->retry_after_s * 1000u;
    }
    return k8s_backoff_next_ms(&w->backoff);
}

/* --- LIST --- */

/* Diffs the finished LIST against the store, reports the differences and swaps it in. */
static void list_finish(struct k8s_watch *w)
{
    json_t *old = w->store;
    w->store = w->next;
    w->next = NULL;
    bool is_first = !w->has_listed;
    w->has_listed = true;
    w->is_full_list = false;
    w->stats.lists++;
    const char *key;
    json_t *obj;
    json_object_foreach(w->store, key, obj)
    {
        const json_t *prev = json_object_get(old, key);
        if (prev == NULL || !same_stored_rv(w, prev, obj)) {
            emit_stored(w, key, prev, obj);
        }
    }
    json_object_foreach(old, key, obj)
    {
        if (json_object_get(w->store, key) == NULL) {
            emit_stored(w, key, obj, NULL);
        }
    }
    json_decref(old);
    if (is_first && !w->is_stopped && w->on_synced != NULL) {
        w->on_synced(w->arg);
    }
}

/* Adds one page's items to w->next; returns the page's continue token and resourceVersion
 * (pointing into doc) through the out parameters. */
static int list_take_page(struct k8s_watch *w, const json_t *doc, const char **cont,
                          const char **rv)
{
    const json_t *items = json_object_get(doc, "items");
    const json_t *meta = json_object_get(doc, "metadata");
    *cont = json_string_value(json_object_get(meta, "continue"));
    *rv = json_string_value(json_object_get(meta, "resourceVersion"));
    if (!json_is_array(items) || *rv == NULL) {
        return dc_err_set(w->why, -EPROTO, "list %s: answer has no items or resourceVersion",
                          w->path);
    }
    size_t i;
    const json_t *item;
    json_array_foreach(items, i, item)
    {
        char key[K8S_WATCH_MAX_KEY_LEN + 1];
        if (object_key(item, key, sizeof(key)) < 0) {
            return dc_err_set(w->why, -EPROTO, "list %s: item %zu has no usable name", w->path, i);
        }
        json_t *proj = stored_value(w, k8s_project(&w->proj, item));
        if (proj == NULL || json_object_set_new(w->next, key, proj) < 0) {
            return dc_err_set(w->why, -ENOMEM, "list %s: out of memory", w->path);
        }
    }
    return 0;
}

/* A LIST page failed: list again (without pages after an expired continue token). */
static void list_failed(struct k8s_watch *w, const struct k8s_response *resp)
{
    int code = resp->error != 0 ? resp->error : -EPROTO;
    if (resp->error == 0 && resp->status == 410 && w->continue_token != NULL) {
        /* client-go's pager: the snapshot is gone, so list everything in one go. */
        w->is_full_list = true;
        report(w, code, "list %s: continue token expired (%s); listing again without pages",
               w->path, resp->err);
        schedule(w, WATCH_STEP_LIST, 0);
        return;
    }
    uint32_t wait = failure_wait_ms(w, resp);
    report(w, code, "list %s: %s; listing again in %u ms", w->path, resp->err, wait);
    schedule(w, WATCH_STEP_LIST, wait);
}

/* The LIST is complete: report the differences, then watch from its resourceVersion. */
static void list_done(struct k8s_watch *w)
{
    free(w->continue_token);
    w->continue_token = NULL;
    list_finish(w);
    k8s_backoff_reset(&w->backoff);
    if (w->is_stopped) {
        return;
    }
    int rc = watch_send(w, false);
    if (rc < 0) {
        uint32_t wait = failure_wait_ms(w, NULL);
        report(w, rc, "%s; retrying in %u ms", w->why, wait);
        schedule(w, WATCH_STEP_WATCH, wait);
    }
}

/* A LIST page came back: keep its items, then ask for the next page or finish. Returns 0, or
 * a negative errno with w->why set. */
static int list_page_done(struct k8s_watch *w, const struct k8s_response *resp)
{
    const char *cont = NULL;
    const char *rv = NULL;
    w->why[0] = '\0';
    json_t *doc = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    int rc = doc == NULL ? dc_err_set(w->why, -EPROTO, "list %s: answer is not JSON", w->path)
                         : list_take_page(w, doc, &cont, &rv);
    if (rc == 0 && cont != NULL && cont[0] != '\0') {
        free(w->continue_token);
        w->continue_token = strdup(cont);
        rc = w->continue_token == NULL
                 ? dc_err_set(w->why, -ENOMEM, "list %s: out of memory", w->path)
                 : list_start(w);
    } else if (rc == 0) {
        rc = set_rv(w, rv);
        if (rc < 0) {
            dc_err_set(w->why, rc, "list %s: bad resourceVersion", w->path);
        } else {
            list_done(w);
        }
    }
    json_decref(doc);
    return rc;
}

static void list_cb(void *arg, const struct k8s_response *resp)
{
    struct k8s_watch *w = arg;
    watch_hold(w);
    w->call = NULL;
    if (w->is_stopped) {
        goto out;
    }
    if (!k8s_response_is_ok(resp)) {
        list_failed(w, resp);
        goto out;
    }
    int rc = list_page_done(w, resp);
    if (rc < 0) {
        uint32_t wait = failure_wait_ms(w, NULL);
        report(w, rc, "%s; listing again in %u ms", w->why, wait);
        schedule(w, WATCH_STEP_LIST, wait);
    }
out:
    watch_release(w);
}

/* Sends a LIST request: the next page when a continue token is kept, else the first page of a
 * new LIST (w->next must then be fresh). */
static int list_start(struct k8s_watch *w)
{
    struct dc_buf q = {0};
    dc_buf_init(&q, WATCH_MAX_QUERY_LEN);
    int rc = 0;
    if (w->continue_token == NULL) {
        json_decref(w->next);
        w->next = json_object();
        if (w->next == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (!w->is_full_list) {
        rc = dc_buf_printf(&q, "limit=%u", w->limit);
        if (rc == 0 && w->continue_token != NULL) {
            rc = dc_buf_printf(&q, "&continue=");
            if (rc == 0) {
                rc = query_escape(&q, w->continue_token);
            }
        }
    }
    if (rc == 0) {
        rc = query_finish(w, &q);
    }
    if (rc < 0) {
        dc_err_set(w->why, rc, "list %s: query too long", w->path);
        goto out;
    }
    const char *query = (const char *)q.p;
    struct k8s_request_opts o = {
        .method = K8S_GET,
        .path = w->path,
        .query = query[0] == '&' ? query + 1 : query,
        .timeout_ms = K8S_WATCH_LIST_TIMEOUT_MS,
    };
    rc = k8s_request(w->client, &o, list_cb, w, &w->call, w->why);
out:
    dc_buf_deinit(&q);
    return rc;
}

/* Starts a whole new LIST (first, after 410, or after a failure). */
static int relist(struct k8s_watch *w)
{
    free(w->continue_token);
    w->continue_token = NULL;
    if (w->has_listed) {
        w->stats.relists++;
    }
    return list_start(w);
}

/* --- WATCH --- */

static int event_upsert(struct k8s_watch *w, const char *key, const json_t *object)
{
    json_t *proj = k8s_project(&w->proj, object);
    if (proj == NULL) {
        return dc_err_set(w->why, -ENOMEM, "watch %s: out of memory", w->path);
    }
    json_t *value = stored_value(w, json_incref(proj));
    json_t *old = json_incref(json_object_get(w->store, key));
    int rc = 0;
    if (value == NULL) {
        rc = dc_err_set(w->why, -ENOMEM, "watch %s: out of memory", w->path);
        goto out;
    }
    if (old != NULL && same_stored_rv(w, old, value)) {
        json_decref(value); /* a repeat: nothing changed */
        goto out;
    }
    if (json_object_set_new(w->store, key, value) < 0) {
        rc = dc_err_set(w->why, -ENOMEM, "watch %s: out of memory", w->path);
        goto out;
    }
    if (old != NULL) {
        json_t *o = stored_object(w, old);
        if (o != NULL) {
            emit_update(w, key, o, proj);
        }
        json_decref(o);
    } else {
        emit_add(w, key, proj);
    }
out:
    json_decref(old);
    json_decref(proj);
    return rc;
}

static void event_delete(struct k8s_watch *w, const char *key, const json_t *object)
{
    json_t *old = json_incref(json_object_get(w->store, key));
    if (old != NULL) {
        json_object_del(w->store, key);
        emit_stored(w, key, old, NULL);
    } else {
        (void)object; /* never seen (deleted before we listed it): nothing to report */
    }
    json_decref(old);
}

static int event_error(struct k8s_watch *w, const json_t *object)
{
    struct k8s_status st;
    if (k8s_status_parse(object, &st) < 0) {
        return dc_err_set(w->why, -EPROTO, "watch %s: ERROR event without a Status", w->path);
    }
    if (k8s_status_is_expired(&st)) {
        return dc_err_set(w->why, -ESTALE, "watch %s: resourceVersion %s is too old (%s: %s)",
                          w->path, w->rv, st.reason, st.message);
    }
    return dc_err_set(w->why, -EPROTO, "watch %s: ERROR event %d %s: %s", w->path, st.code,
                      st.reason, st.message);
}

static int watch_event_cb(const struct k8s_event *ev, void *arg)
{
    struct k8s_watch *w = arg;
    if (ev->type == K8S_EVENT_ERROR) {
        return event_error(w, ev->object);
    }
    const char *rv = k8s_meta_resource_version(ev->object);
    if (rv == NULL || rv[0] == '\0' || strlen(rv) > K8S_WATCH_MAX_RV_LEN) {
        return dc_err_set(w->why, -EPROTO, "watch %s: %s event without a resourceVersion", w->path,
                          k8s_event_type_name(ev->type));
    }
    int rc = 0;
    if (ev->type != K8S_EVENT_BOOKMARK) {
        char key[K8S_WATCH_MAX_KEY_LEN + 1];
        if (object_key(ev->object, key, sizeof(key)) < 0) {
            return dc_err_set(w->why, -EPROTO, "watch %s: %s event without a usable name", w->path,
                              k8s_event_type_name(ev->type));
        }
        if (ev->type == K8S_EVENT_DELETED) {
            event_delete(w, key, ev->object);
        } else {
            rc = event_upsert(w, key, ev->object);
        }
    }
    if (rc == 0) {
        rc = set_rv(w, rv);
        w->stats.events++;
        w->has_event = true;
        k8s_backoff_reset(&w->backoff);
    }
    if (rc == 0 && w->is_stopped) {
        rc = -ECANCELED;
    }
    return rc;
}

static int watch_data_cb(void *arg, const char *data, size_t len)
{
    struct k8s_watch *w = arg;
    watch_hold(w);
    char err[DC_ERR_LEN] = "";
    w->why[0] = '\0';
    int rc = k8s_stream_feed(&w->stream, data, len, watch_event_cb, w, err);
    if (rc < 0 && w->why[0] == '\0') {
        dc_err_set(w->why, rc, "watch %s: %s", w->path, err);
    }
    if (w->is_stopped) {
        rc = -ECANCELED;
    }
    watch_release(w);
    return rc;
}

static void watch_done_cb(void *arg, const struct k8s_response *resp)
{
    struct k8s_watch *w = arg;
    watch_hold(w);
    w->call = NULL;
    if (w->is_stopped) {
        goto out;
    }
    size_t partial = k8s_stream_pending(&w->stream);
    if (resp->error == -ESTALE || (resp->error == 0 && resp->status == 410)) {
        report(w, -ESTALE, "%s; listing again", resp->error == -ESTALE ? w->why : resp->err);
        int rc = relist(w);
        if (rc < 0) {
            uint32_t wait = failure_wait_ms(w, NULL);
            report(w, rc, "list %s: %s; listing again in %u ms", w->path, w->why, wait);
            schedule(w, WATCH_STEP_LIST, wait);
        }
        goto out;
    }
    if (resp->error == 0 && resp->status == 200 && partial == 0) {
        /* The server's timeoutSeconds ended it: resume at once, unless it ends at once. */
        uint64_t lasted = dc_now_ms() - w->watch_started_ms;
        uint32_t wait =
            (w->has_event || lasted >= WATCH_MIN_CLEAN_MS) ? 0 : failure_wait_ms(w, NULL);
        schedule(w, WATCH_STEP_WATCH, wait);
        goto out;
    }
    uint32_t wait = failure_wait_ms(w, resp);
    int code = resp->error != 0 ? resp->error : -EPROTO;
    if (partial > 0) {
        report(w, resp->error != 0 ? resp->error : -ECONNRESET,
               "watch %s: stream cut mid-event, %zu bytes dropped (%s); resuming from "
               "resourceVersion %s in %u ms",
               w->path, partial, resp->error != 0 ? resp->err : "body ended", w->rv, wait);
    } else {
        /* why: the event handler's reason (an ERROR event); else the request's. */
        report(w, code, "watch %s: %s; resuming from resourceVersion %s in %u ms", w->path,
               resp->error != 0 && w->why[0] != '\0' ? w->why : resp->err, w->rv, wait);
    }
    schedule(w, WATCH_STEP_WATCH, wait);
out:
    watch_release(w);
}

static int watch_send(struct k8s_watch *w, bool is_resume)
{
    struct dc_buf q = {0};
    dc_buf_init(&q, WATCH_MAX_QUERY_LEN);
    k8s_stream_reset(&w->stream);
    w->has_event = false;
    w->why[0] = '\0';
    uint32_t timeout_s = w->watch_timeout_s != 0 ? w->watch_timeout_s
                                                 : K8S_WATCH_MIN_TIMEOUT_S +
                                                       randombytes_uniform(K8S_WATCH_MIN_TIMEOUT_S);
    int rc = dc_buf_printf(
        &q, "watch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=", timeout_s);
    if (rc == 0) {
        rc = query_escape(&q, w->rv);
    }
    if (rc == 0) {
        rc = query_finish(w, &q);
    }
    if (rc < 0) {
        dc_err_set(w->why, rc, "watch %s: query too long", w->path);
        goto out;
    }
    struct k8s_request_opts o = {
        .method = K8S_GET,
        .path = w->path,
        .query = (const char *)q.p,
        .timeout_ms = timeout_s * 1000u + K8S_WATCH_TIMEOUT_SLACK_MS,
        .on_data = watch_data_cb,
    };
    rc = k8s_request(w->client, &o, watch_done_cb, w, &w->call, w->why);
    if (rc == 0) {
        w->watch_started_ms = dc_now_ms();
        if (is_resume) {
            w->stats.restarts++;
        }
    }
out:
    dc_buf_deinit(&q);
    return rc;
}

static void watch_timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct k8s_watch *w = t->data;
    watch_hold(w);
    enum watch_step step = w->step;
    int rc = step == WATCH_STEP_LIST ? relist(w) : watch_send(w, true);
    if (rc < 0) {
        uint32_t wait = failure_wait_ms(w, NULL);
        report(w, rc, "%s; retrying in %u ms", w->why, wait);
        schedule(w, step, wait);
    }
    watch_release(w);
}

/* --- public --- */

static int projection_build(struct k8s_watch *w, const struct k8s_watch_opts *opts, char *err)
{
    size_t n = opts->nfields;
    bool has_rv = false;
    for (size_t i = 0; i < n; i++) {
        has_rv |= opts->fields[i] != NULL && strcmp(opts->fields[i], WATCH_RV_POINTER) == 0;
    }
    const char **ptrs = calloc(n + 1, sizeof(*ptrs));
    if (ptrs == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = opts->fields[i];
    }
    if (!has_rv) {
        ptrs[n++] = WATCH_RV_POINTER;
    }
    int rc = k8s_projection_init(&w->proj, ptrs, n, err);
    free(ptrs);
    return rc;
}

int k8s_watch_start(struct k8s_client *client, const struct k8s_watch_opts *opts,
                    struct k8s_watch **out, char *err)
{
    int rc = 0;
    struct k8s_watch *w = NULL;
    if (opts == NULL || opts->path == NULL || opts->path[0] != '/' ||
        (opts->nfields > 0 && opts->fields == NULL)) {
        return dc_err_set(err, -EINVAL, "watch path must start with '/'");
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return dc_err_set(err, -ENOMEM, "watch %s: out of memory", opts->path);
    }
    w->client = client;
    w->limit = opts->limit != 0 ? opts->limit : K8S_WATCH_DEFAULT_LIMIT;
    w->watch_timeout_s = opts->watch_timeout_s;
    w->on_add = opts->on_add;
    w->on_update = opts->on_update;
    w->on_delete = opts->on_delete;
    w->on_synced = opts->on_synced;
    w->on_error = opts->on_error;
    w->arg = opts->arg;
    w->is_packed = opts->is_packed;
    w->timer = (struct dc_timer){.cb = watch_timer_cb, .data = w};
    k8s_stream_init(&w->stream, 0);
    k8s_backoff_init(&w->backoff, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS);
    w->path = strdup(opts->path);
    w->query = opts->query != NULL ? strdup(opts->query) : NULL;
    w->store = json_object();
    if (w->path == NULL || w->store == NULL || (opts->query != NULL && w->query == NULL)) {
        rc = dc_err_set(err, -ENOMEM, "watch %s: out of memory", opts->path);
        goto out;
    }
    rc = projection_build(w, opts, err);
    if (rc < 0) {
        goto out;
    }
    rc = relist(w);
    if (rc < 0) {
        dc_err_set(err, rc, "%s", w->why);
        goto out;
    }
    *out = w;
    w = NULL;
out:
    if (w != NULL) {
        watch_free(w);
    }
    return rc;
}

void k8s_watch_stop(struct k8s_watch *w)
{
    if (w == NULL || w->is_stopped) {
        return;
    }
    w->is_stopped = true;
    k8s_call_cancel(w->call);
    w->call = NULL;
    dc_timer_stop(k8s_client_loop(w->client), &w->timer);
    if (w->busy == 0) {
        watch_free(w);
    }
}

const json_t *k8s_watch_get(const struct k8s_watch *w, const char *key)
{
    return json_object_get(w->store, key);
}

size_t k8s_watch_count(const struct k8s_watch *w)
{
    return json_object_size(w->store);
}

const json_t *k8s_watch_store(const struct k8s_watch *w)
{
    return w->store;
}

const char *k8s_watch_resource_version(const struct k8s_watch *w)
{
    return w->rv;
}

bool k8s_watch_is_synced(const struct k8s_watch *w)
{
    return w->has_listed;
}

void k8s_watch_stats(const struct k8s_watch *w, struct k8s_watch_stats *out)
{
    *out = w->stats;
}

json_t *k8s_watch_get_object(const struct k8s_watch *w, const char *key)
{
    return stored_object(w, json_object_get(w->store, key));
}
