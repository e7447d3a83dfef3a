/* k8s_event: records Kubernetes Events about objects, deduplicated and rate-limited as client-go's
 * recorders do, asynchronously on the client's loop.
 *
 * An emission names an object, a type ("Normal" or "Warning"), a reason, an action and a note.
 * The first emission of a (object, type, reason, action, note) creates an events.k8s.io/v1 Event
 * (regarding, reportingController, reportingInstance, action, reason, note, type, eventTime in
 * MicroTime). Each repeat updates that Event instead of creating another: a JSON merge PATCH of
 * series {count, lastObservedTime}, count 2 on the first repeat (tools/events). A PATCH that
 * answers 404 (the Event was deleted) creates it again with its series. Repeats that arrive
 * while a request for the same Event is in flight are coalesced into one PATCH after it.
 *
 * When the events.k8s.io/v1 API is not served (a 404 that is not a NotFound for a named object:
 * the group or version is missing), the recorder switches to core/v1 Events (involvedObject,
 * source {component, host}, firstTimestamp, lastTimestamp, count, reportingComponent,
 * reportingInstance) for the rest of its life; repeats then PATCH count and lastTimestamp
 * (tools/record).
 *
 * Events about a namespaced object go to its namespace; about a cluster-scoped object to
 * "default" (metav1.NamespaceDefault), as kube-apiserver only accepts them there.
 *
 * Spam filter (tools/record's EventSourceObjectSpamFilter): per (object, type) a token bucket of
 * K8S_EVENT_SPAM_BURST emissions refilled one per K8S_EVENT_SPAM_REFILL_MS; repeats count too.
 * Emissions over the limit are dropped and counted. Both the Event cache and the spam filter are
 * LRUs of K8S_EVENT_MAX_CACHE keys.
 *
 * Failures are counted and logged at warn once per failed emission ("derp-k8s"); requests are
 * retried by k8s_http at most K8S_EVENT_RETRIES times (429 for every verb, 5xx for PATCH), never
 * forever. Not done here: the events.k8s.io `related` object, annotations, client-go's
 * aggregation of similar messages into "(combined from similar events)", series heartbeats. */
#ifndef DC_K8S_EVENT_H
#define DC_K8S_EVENT_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct k8s_client;
struct k8s_recorder;

/* Keys kept by the Event cache and by the spam filter, each (client-go's maxLruCacheEntries). */
#define K8S_EVENT_MAX_CACHE 4096u
/* Emissions allowed at once per (object, type) (client-go's defaultSpamBurst). */
#define K8S_EVENT_SPAM_BURST 25u
/* One more emission allowed per this many ms (client-go's defaultSpamQPS, 1/300 per second). */
#define K8S_EVENT_SPAM_REFILL_MS 300000u
/* Extra attempts k8s_http makes per request (429 / 5xx); then the emission is failed. */
#define K8S_EVENT_RETRIES 3u
/* Whole-request time per Event write, in ms. Our limit. */
#define K8S_EVENT_TIMEOUT_MS 10000u
/* Longest reason, action and reportingInstance kube-apiserver accepts (ValidateEventCreate). */
#define K8S_EVENT_MAX_FIELD_LEN 128u
/* Longest note kept, in bytes (kube-apiserver rejects events.k8s.io notes over 1 kB); a longer
 * note is cut at a UTF-8 character boundary. */
#define K8S_EVENT_MAX_NOTE_LEN 1024u
/* Longest Event name: a DNS subdomain. */
#define K8S_EVENT_MAX_NAME_LEN 253u
/* Namespace of Events about cluster-scoped objects (metav1.NamespaceDefault). */
#define K8S_EVENT_CLUSTER_NAMESPACE "default"
/* Event types kube-apiserver accepts for events.k8s.io/v1. */
#define K8S_EVENT_NORMAL  "Normal"
#define K8S_EVENT_WARNING "Warning"

/* The object an Event is about (an ObjectReference). All fields are borrowed for the call. */
struct k8s_object_ref {
    const char *api_version; /* e.g. "management.loft.sh/v1"; required */
    const char *kind;        /* e.g. "Cluster"; required */
    const char *namespace_;  /* NULL or "" for a cluster-scoped object */
    const char *name;        /* required */
    const char *uid;         /* NULL when unknown */
};

/* Counters since k8s_recorder_new(). */
struct k8s_recorder_stats {
    uint64_t emitted; /* k8s_event_emit() calls accepted (spam-dropped ones included) */
    uint64_t created; /* Events created (POST answered 2xx) */
    uint64_t updated; /* repeats written to an existing Event (PATCH answered 2xx) */
    uint64_t dropped; /* emissions over the spam limit, not sent */
    uint64_t failed;  /* writes that failed for good (each logged once) */
};

/* Creates a recorder writing through c (borrowed: it must outlive the recorder) as component
 * (reportingController and source.component, e.g. "derp-controller") and instance
 * (reportingInstance and source.host: the pod name). Both are copied; both must be non-empty and
 * at most K8S_EVENT_MAX_FIELD_LEN bytes. Returns 0, -EINVAL (err says which) or -ENOMEM. Caller
 * frees *out with k8s_recorder_free(). */
int k8s_recorder_new(struct k8s_client *c, const char *component, const char *instance,
                     struct k8s_recorder **out, char *err) DC_MUST_CHECK;

/* Cancels the requests in flight (their Events may or may not be written) and frees the
 * recorder. The recorder calls no user code, so this is safe from any callback. Accepts NULL. */
void k8s_recorder_free(struct k8s_recorder *r);

/* Records one occurrence: creates or updates the Event in the background (see the module
 * comment). type is K8S_EVENT_NORMAL or K8S_EVENT_WARNING; reason (CamelCase, e.g.
 * "InvalidEndpoint") and action (e.g. "Validate") are required and at most
 * K8S_EVENT_MAX_FIELD_LEN bytes; note may be NULL. Returns 0 (also when the spam filter drops the
 * emission), -EINVAL for a bad argument (logged nowhere: the caller's bug), or -ENOMEM. */
int k8s_event_emit(struct k8s_recorder *r, const struct k8s_object_ref *obj, const char *type,
                   const char *reason, const char *action, const char *note) DC_MUST_CHECK;

/* Requests in flight or queued behind one (0 when everything emitted has been written or has
 * failed); lets a program wait for its last Events before exiting. */
size_t k8s_recorder_pending(const struct k8s_recorder *r);

/* Reports whether the recorder has switched to core/v1 Events. */
bool k8s_recorder_is_core_v1(const struct k8s_recorder *r);

/* Copies the counters into out. */
void k8s_recorder_stats(const struct k8s_recorder *r, struct k8s_recorder_stats *out);

#endif
