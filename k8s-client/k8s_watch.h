/* k8s_watch: keeps a local copy of a Kubernetes collection with LIST then WATCH (client-go's
 * reflector), holding only the fields the caller asks for.
 *
 * Flow:
 *   LIST   GET path?limit=N (then &continue=TOKEN per page) without a resourceVersion, so
 *          the pages form one consistent snapshot read from etcd. Each item is projected
 *          (k8s_fields) at once and the page is freed. A continue token that expired (410) makes
 *          one full list without limit, as client-go's pager does.
 *   WATCH  GET path?watch=1&allowWatchBookmarks=true&resourceVersion=RV&timeoutSeconds=T from
 *          the list's resourceVersion; the body streams through k8s_stream as it arrives.
 *          ADDED / MODIFIED / DELETED update the store and call back; BOOKMARK only moves the
 *          resourceVersion.
 *   resume A watch that ends for any other reason (server timeout, connection cut anywhere,
 *          even mid-object, HTTP error, ERROR event other than 410) starts again from the last
 *          resourceVersion seen (an object's or a bookmark's), so nothing is lost or repeated;
 *          a partial event is dropped. A clean end (the server's timeout) resumes at once,
 *          failures after a capped jittered wait (k8s_backoff; Retry-After when sent).
 *   relist 410 Gone (an ERROR event whose Status is Expired/Gone/410, or 410 on the WATCH)
 *          means the history is compacted: LIST again and diff the result against the store,
 *          reporting the objects added, changed and deleted meanwhile as on_add / on_update /
 *          on_delete.
 * While the API is unreachable the store is kept and keeps answering k8s_watch_get(): callers
 * go on serving the last good state. on_synced runs once, after the first complete LIST.
 *
 * The store is keyed "namespace/name" ("name" for cluster-scoped objects) and holds, per object,
 * the projection of the caller's JSON pointers plus /metadata/resourceVersion (always kept: it
 * tells updates from repeats). Objects handed to callbacks are those projections.
 *
 * Runs on the client's loop; callbacks run from its dc_io / dc_timer callbacks and may start
 * requests, read the store, and stop this watch (k8s_watch_stop() from a callback is safe: no
 * callback follows). Not done here: caching whole objects, label/field selectors beyond passing
 * `query` through, the watch-list (sendInitialEvents) protocol, logging other than through
 * on_error (or a warn line when on_error is NULL). */
#ifndef DC_K8S_WATCH_H
#define DC_K8S_WATCH_H

#include "err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct k8s_client;
struct k8s_watch;

/* Objects per LIST page (client-go's reflector pages with 500). */
#define K8S_WATCH_DEFAULT_LIMIT 500u
/* Server-side watch timeout: client-go picks timeoutSeconds uniformly in [5 min, 10 min) so
 * that watches of many clients do not all end together. */
#define K8S_WATCH_MIN_TIMEOUT_S 300u
/* Time allowed for one LIST page, in ms. */
#define K8S_WATCH_LIST_TIMEOUT_MS 60000u
/* Extra time the client gives a watch beyond timeoutSeconds before giving up on it, in ms. */
#define K8S_WATCH_TIMEOUT_SLACK_MS 30000u
/* Longest store key (namespace + '/' + name: 63 + 1 + 253 bytes) and resourceVersion kept. */
#define K8S_WATCH_MAX_KEY_LEN 320u
#define K8S_WATCH_MAX_RV_LEN  128u

/* Called for an object that appeared: key "ns/name" or "name"; obj is the projection, borrowed
 * for the call (json_incref() it to keep it). */
typedef void (*k8s_watch_add_cb)(void *arg, const char *key, const json_t *obj);
/* Called for an object whose resourceVersion changed: its previous and new projections. */
typedef void (*k8s_watch_update_cb)(void *arg, const char *key, const json_t *old_obj,
                                    const json_t *new_obj);
/* Called for an object that is gone: its last projection kept in the store. */
typedef void (*k8s_watch_delete_cb)(void *arg, const char *key, const json_t *obj);
/* Called once, after the first complete LIST has been reported through on_add. */
typedef void (*k8s_watch_synced_cb)(void *arg);
/* Called with one sentence for each failure that the watch recovers from by itself (a list or
 * watch that failed, a stream cut, a relist), e.g. "watch /apis/...: stream cut mid-event;
 * resuming from resourceVersion 1042 in 312 ms". NULL: logged at warn ("derp-k8s"). */
typedef void (*k8s_watch_error_cb)(void *arg, int code, const char *err);

struct k8s_watch_opts {
    const char *path;              /* required: the collection, e.g.
                                      /apis/management.loft.sh/v1/clusters; copied */
    const char *query;             /* NULL or extra query parameters, percent-encoded, without '?'
                                      (e.g. "labelSelector=a%3Db"); copied */
    const char *const *fields;     /* JSON pointers to keep (k8s_fields syntax); copied */
    size_t nfields;                /* entries in fields */
    uint32_t limit;                /* LIST page size; 0: K8S_WATCH_DEFAULT_LIMIT */
    uint32_t watch_timeout_s;      /* timeoutSeconds of each WATCH; 0: random in [300, 600) */
    k8s_watch_add_cb on_add;       /* each may be NULL */
    k8s_watch_update_cb on_update; /* */
    k8s_watch_delete_cb on_delete; /* */
    k8s_watch_synced_cb on_synced; /* */
    k8s_watch_error_cb on_error;   /* */
    void *arg;                     /* borrowed; passed to every callback */
    bool is_packed;                /* keep each projection as one compact string (a few hundred
                                      bytes instead of a tree of objects); callbacks still get
                                      trees, k8s_watch_get() and k8s_watch_store() then give
                                      the packed strings: use k8s_watch_get_object() */
};

/* Counters since k8s_watch_start(). */
struct k8s_watch_stats {
    uint64_t lists;    /* LISTs completed (pages of one LIST count once) */
    uint64_t relists;  /* LISTs started after the first completed one (410, or failures) */
    uint64_t restarts; /* WATCH requests that resumed from a kept resourceVersion */
    uint64_t events;   /* watch events handled (ADDED, MODIFIED, DELETED, BOOKMARK) */
    uint64_t errors;   /* failures reported through on_error */
};

/* Starts listing and watching opts->path on client (borrowed: it must outlive the watch). The
 * first request is sent before this returns; callbacks come later, on the loop. Returns 0,
 * -EINVAL (no path or a path without a leading '/', a bad JSON pointer: err says which),
 * -EMSGSIZE (too many pointers), -ENOMEM, or k8s_request()'s error. Stop and free with
 * k8s_watch_stop(). */
int k8s_watch_start(struct k8s_client *client, const struct k8s_watch_opts *opts,
                    struct k8s_watch **out, char *err) DC_MUST_CHECK;

/* Cancels the request in flight and frees the watch and its store; no callback runs after it.
 * Safe from the watch's own callbacks (then freed when the callback returns). Accepts NULL. */
void k8s_watch_stop(struct k8s_watch *w);

/* The stored projection for key, borrowed (valid until the store next changes), or NULL. */
const json_t *k8s_watch_get(const struct k8s_watch *w, const char *key);
/* A new reference to the projection stored for key (decoded when packed), or
 * NULL; the caller decrefs it. */
json_t *k8s_watch_get_object(const struct k8s_watch *w, const char *key);
/* Objects in the store. */
size_t k8s_watch_count(const struct k8s_watch *w);
/* The whole store: a JSON object of key -> projection, borrowed as above. */
const json_t *k8s_watch_store(const struct k8s_watch *w);
/* The last resourceVersion seen ("" before the first LIST completes), borrowed. */
const char *k8s_watch_resource_version(const struct k8s_watch *w);
/* Reports whether the first LIST has completed. */
bool k8s_watch_is_synced(const struct k8s_watch *w);
/* Copies the counters into out. */
void k8s_watch_stats(const struct k8s_watch *w, struct k8s_watch_stats *out);

#endif
