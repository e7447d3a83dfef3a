/* k8s_stream: splits a kube-apiserver watch response body into events (pure).
 *
 * A watch response (GET ...?watch=1, Transfer-Encoding: chunked, already
 * de-chunked by libcurl) is a sequence of JSON objects
 *
 *   {"type":"ADDED","object":{"apiVersion":"management.loft.sh/v1","kind":"Cluster",...}}
 *
 * with type ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (k8s.io/apimachinery
 * pkg/apis/meta/v1 WatchEvent). The apiserver writes "\n" after each one, but
 * the splitter does not rely on it: it tracks brace depth and string/escape
 * state byte by byte, so any chunking of the body (mid-line, mid-string,
 * mid-escape, mid-UTF-8 sequence) yields exactly the same events as feeding
 * it whole. Whitespace (SP, HTAB, CR, LF) between events is skipped;
 * anything else between events is an error.
 *
 * Each complete event is parsed with jansson and handed to a callback with
 * its type and its "object" as a jansson value (borrowed for the callback),
 * plus the event's raw JSON text. Strings may hold "\u0000" (jansson's
 * JSON_ALLOW_NUL; the helpers below then answer NULL). Integers outside
 * int64 (the API conventions allow no wider type) are malformed to jansson.
 * The module does no I/O, no logging and no clock reads; it never reads past
 * the `len` given to k8s_stream_feed() and needs no NUL. It does not decide
 * what an ERROR means (see k8s_status_parse()) and does not interpret the
 * objects beyond "type".
 *
 * Errors are sticky: after k8s_stream_feed() returns a negative value the
 * stream refuses further bytes (returning the same code) until
 * k8s_stream_reset(). That matches what the caller does anyway: drop the
 * connection and restart the watch from the last resourceVersion.
 *
 * The metadata helpers at the end read single fields of an object in place
 * (no copy); the strings they return point into the object. */
#ifndef DC_K8S_STREAM_H
#define DC_K8S_STREAM_H

#include "buf.h"
#include "bytes.h"
#include "err.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest watch event accepted, '{' to '}' inclusive, in bytes: 16 MiB.
 * etcd's default request limit (--max-request-bytes) is 1.5 MiB and the
 * apiserver caps a request body at 3 MiB, so a real object plus its event
 * envelope fits with ample room; anything longer is -EMSGSIZE. */
#define K8S_STREAM_MAX_EVENT (16u * 1024 * 1024)
/* Buffer memory kept between events, in bytes: after a buffered event larger
 * than this completes, the buffer is freed rather than kept, so one large
 * object does not pin its size for the life of the watch. */
#define K8S_STREAM_KEEP_LEN (64u * 1024)
/* Bytes of the offending event quoted in a malformed-JSON error message. */
#define K8S_STREAM_QUOTE_LEN 40

/* The "type" of a watch event (metav1.WatchEvent; watch.EventType). */
enum k8s_event_type {
    K8S_EVENT_ADDED = 1, /* object was created (or is listed by an initial-events watch) */
    K8S_EVENT_MODIFIED,  /* object changed; "object" is the new state */
    K8S_EVENT_DELETED,   /* object was deleted; "object" is its last state */
    K8S_EVENT_BOOKMARK,  /* only metadata.resourceVersion (and maybe the
                            k8s.io/initial-events-end annotation) is meaningful */
    K8S_EVENT_ERROR,     /* "object" is a metav1.Status; see k8s_status_parse() */
};

/* Annotation a BOOKMARK carries ("true") when the initial events of a watch
 * with sendInitialEvents=true have all been sent (KEP-3157). */
#define K8S_ANNOT_INITIAL_EVENTS_END "k8s.io/initial-events-end"

/* One decoded event, valid only during the callback. */
struct k8s_event {
    enum k8s_event_type type;
    json_t *object;     /* borrowed: the event's "object", always a JSON object; freed
                           after the callback returns, json_incref() it (or copy what
                           you need, e.g. with k8s_project()) to keep it */
    struct dc_span raw; /* borrowed: the whole event's JSON text, '{' through the
                           matching '}', no surrounding whitespace; points into the
                           fed data or the stream's buffer */
};

/* Called once per complete event, in order. Return 0 to go on, or a negative
 * errno to stop: k8s_stream_feed() then returns that value (and the stream
 * needs k8s_stream_reset()). It must not feed, reset or deinit the stream. */
typedef int (*k8s_event_cb)(const struct k8s_event *ev, void *arg);

/* Splitter state. The all-zero struct is safe to deinit; call
 * k8s_stream_init() before feeding. */
struct k8s_stream {
    struct dc_buf buf; /* owned: bytes of an incomplete event, max = max_event */
    size_t max_event;  /* largest event accepted, bytes */
    size_t event_len;  /* bytes of the current event seen so far; 0 between events */
    size_t depth;      /* open '{' / '[' in the current event outside strings */
    bool in_string;    /* inside a JSON string */
    bool escaped;      /* previous byte was a backslash inside a string */
    int error;         /* sticky negative errno of a failed feed; 0 if none */
};

/* Prepares an empty stream that accepts events of up to max_event bytes
 * (0 means K8S_STREAM_MAX_EVENT). Allocates nothing. */
void k8s_stream_init(struct k8s_stream *st, size_t max_event);
/* Frees the buffer; the stream is empty and may be fed again (its max is
 * kept). Accepts the all-zero struct. */
void k8s_stream_deinit(struct k8s_stream *st);
/* Forgets any partial event and a sticky error, and frees the buffer, for a
 * new watch connection. Keeps max_event. */
void k8s_stream_reset(struct k8s_stream *st);

/* Feeds data[0..len) (borrowed for the call; any chunk of the body, len may
 * be 0) and calls cb(ev, arg) for each event it completes. Returns 0 when all
 * bytes were consumed (a trailing partial event is kept for the next feed),
 * or a negative errno with one sentence in err (DC_ERR_LEN bytes, may be
 * NULL); events before the failure have been delivered:
 *   -EMSGSIZE  an event is longer than max_event (restart the watch);
 *   -EINVAL    malformed JSON (err quotes the event's first bytes), a byte
 *              other than whitespace or '{' between events, a missing or
 *              unknown "type", or an "object" that is not a JSON object;
 *   -ENOMEM    out of memory;
 *   <0         whatever cb returned (err names the event type and the code).
 * After a failure every feed returns the same code until k8s_stream_reset(). */
int k8s_stream_feed(struct k8s_stream *st, const char *data, size_t len, k8s_event_cb cb, void *arg,
                    char *err) DC_MUST_CHECK;
/* Bytes of an incomplete event held since the last complete one (0 between
 * events). Non-zero when the connection ends means the body was cut mid-event. */
size_t k8s_stream_pending(const struct k8s_stream *st);

/* Returns "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", or "?" for a
 * value outside the enum (static strings). */
const char *k8s_event_type_name(enum k8s_event_type type);

/* A decoded metav1.Status, as sent in an ERROR event or an error response.
 * The strings point into the parsed object and are valid while it is (copy
 * them before the callback returns if you keep them); absent ones are "". */
struct k8s_status {
    int code;            /* HTTP status code, e.g. 410; 0 if absent */
    const char *status;  /* "Failure" or "Success"; borrowed */
    const char *reason;  /* CamelCase reason, e.g. "Expired", "Gone"; borrowed */
    const char *message; /* human-readable description; borrowed */
};

/* Decodes a Status object (borrowed; out's strings point into it). Returns 0,
 * or -EINVAL when obj is not a JSON object, its "kind" is present but not
 * "Status", "code" is not an integer in 0..999, or status/reason/message is
 * present but not a string (out is then zeroed, strings ""). */
int k8s_status_parse(const json_t *obj, struct k8s_status *out) DC_MUST_CHECK;
/* Reports whether a Status says the watched resourceVersion is too old and
 * the caller must relist (client-go: IsResourceExpired || IsGone): reason
 * "Expired" or "Gone", or code 410. */
bool k8s_status_is_expired(const struct k8s_status *st);

/* metadata.resourceVersion / .name / .namespace / .uid of an object, read in
 * place: a string pointing into obj (valid while obj is), or NULL when obj is
 * NULL or not an object, the field is absent or not a string, or the string
 * holds a NUL byte. */
const char *k8s_meta_resource_version(const json_t *obj);
const char *k8s_meta_name(const json_t *obj);
const char *k8s_meta_namespace(const json_t *obj);
const char *k8s_meta_uid(const json_t *obj);
/* metadata.annotations[key] as above, e.g. K8S_ANNOT_INITIAL_EVENTS_END. */
const char *k8s_meta_annotation(const json_t *obj, const char *key);

#endif
