/* k8s_http: Kubernetes API requests over one libcurl multi handle, driven by the caller's loop.
 *
 * A k8s_client owns one curl multi handle, so every request to the API server shares its
 * connection cache (keep-alive, TLS sessions, HTTP/2 when the server offers it) and its DNS
 * cache. The client does not own a loop: it hands curl's sockets to the caller's dc_loop as
 * dc_io watches (CURLMOPT_SOCKETFUNCTION) and curl's single timeout as one dc_timer
 * (CURLMOPT_TIMERFUNCTION), and calls curl_multi_socket_action() from them, the way libcurl's
 * multi-socket API is meant to be driven. Nothing here blocks, except the exec credential
 * plugin (k8s_config_exec_credential()), which runs only when no cached credential is valid.
 *
 * Every request reads its credentials when it is (re)sent: the bearer token through
 * k8s_config_token() (so a rotated token file is picked up), or the exec plugin's credential,
 * cached until its expirationTimestamp or until the server answers 401 (client-go's rule).
 * TLS comes from struct k8s_config: CA file or data (data replaces the system roots, as in
 * client-go), client certificate and key as files or data, tls-server-name (sent as SNI and
 * verified, through CURLOPT_CONNECT_TO), insecure-skip-tls-verify. The client does not log the
 * insecure setting: the program that chose it logs it at warn.
 *
 * Responses carry the status code, the body (bounded), and for failures one sentence built
 * from the metav1.Status the server sent ("NotFound: clusters.management.loft.sh \"x\" not
 * found"), not a bare code.
 *
 * Retries (opts->retries extra attempts, within opts->timeout_ms overall):
 *   429          every verb: kube answers it from its max-in-flight / priority-and-fairness
 *                filters before the request is processed; the wait is Retry-After when given.
 *   5xx          idempotent verbs only (GET, PUT, DELETE): Retry-After when given, else backoff.
 *   no answer    (connection refused or reset, empty reply) idempotent verbs only, backoff.
 *   401          once, when an exec credential was used: the plugin runs again (client-go).
 * Backoff is k8s_backoff below: 200 ms doubling to 30 s, full jitter. A timeout is not
 * retried: timeout_ms bounds the whole request, waits included.
 *
 * Callbacks (completion and streamed data) always run on the loop, from a dc_io or dc_timer
 * callback, never from inside k8s_request() and never inside a libcurl callback; so they may
 * start requests and cancel any request, including their own. They must not free the client.
 *
 * Not done here: watches and their resourceVersion bookkeeping (k8s_watch), decoding objects
 * (callers use jansson), redirects (the API server sends none), request bodies other than
 * bytes in memory. */
#ifndef DC_K8S_HTTP_H
#define DC_K8S_HTTP_H

#include "bytes.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dc_loop;
struct k8s_config;
struct k8s_client;
struct k8s_call;

/* Largest response body kept in memory, in bytes: 64 MiB (a LIST page of 500 large objects
 * fits; kube-apiserver's own limit on a request body is 3 MiB). Past it: -EMSGSIZE. */
#define K8S_HTTP_MAX_BODY_LEN (64u << 20)
/* Default whole-request time (all attempts and waits) when opts->timeout_ms is 0: 30 s
 * (kubectl's --request-timeout has no default; a controller must not hang). */
#define K8S_HTTP_DEFAULT_TIMEOUT_MS 30000u
/* Most time one attempt may spend connecting (TCP + TLS), bounded by the time left. */
#define K8S_HTTP_CONNECT_TIMEOUT_MS 10000u
/* client-go's default number of retries for Retry-After answers (rest.Request maxRetries). */
#define K8S_HTTP_DEFAULT_RETRIES 10u
/* Longest Retry-After honoured, in seconds; a longer one is cut to this. Our limit. */
#define K8S_HTTP_MAX_RETRY_AFTER_S 60u
/* Longest URL built (server + path + query), in bytes. Our limit. */
#define K8S_HTTP_MAX_URL_LEN 8192u
/* Bytes of a non-Status error body quoted in the error sentence. */
#define K8S_HTTP_MAX_MESSAGE_LEN 1024u
/* An exec credential is renewed this many seconds before its expirationTimestamp, so a token
 * does not expire in flight. Our margin. */
#define K8S_HTTP_EXEC_EXPIRY_SLACK_S 10

/* Capped exponential backoff with full jitter (AWS "Exponential Backoff And Jitter"): the n-th
 * wait (n from 0) is uniform in [0, min(cap, base * 2^n)] ms. Defaults below. */
#define K8S_BACKOFF_BASE_MS 200u
#define K8S_BACKOFF_CAP_MS  30000u

/* Request content types (kube-apiserver's patch types). */
#define K8S_CONTENT_JSON            "application/json"
#define K8S_CONTENT_MERGE_PATCH     "application/merge-patch+json"
#define K8S_CONTENT_JSON_PATCH      "application/json-patch+json"
#define K8S_CONTENT_STRATEGIC_PATCH "application/strategic-merge-patch+json"

/* Backoff state. The all-zero struct waits 0 ms every time; use k8s_backoff_init(). */
struct k8s_backoff {
    uint32_t base_ms; /* first ceiling */
    uint32_t cap_ms;  /* largest ceiling */
    uint32_t attempt; /* waits handed out since the last reset */
};

enum k8s_method {
    K8S_GET = 0,
    K8S_POST,
    K8S_PUT,
    K8S_PATCH,
    K8S_DELETE,
};

/* Called with bytes of a 2xx response body as they arrive, instead of buffering them (watch
 * streams). data is borrowed for the call. Return 0 to go on, or a negative errno to end the
 * request: it then completes with resp->error set to that value. */
typedef int (*k8s_data_cb)(void *arg, const char *data, size_t len);

/* What to send. Everything is copied by k8s_request(); nothing needs to outlive the call. */
struct k8s_request_opts {
    enum k8s_method method;
    const char *path;         /* required: starts with '/', e.g. /apis/management.loft.sh/v1/
                                 clusters; appended to the config's server (and its prefix) */
    const char *query;        /* NULL or the query string without '?', already percent-encoded */
    const void *body;         /* NULL or the request body (JSON) */
    size_t body_len;          /* bytes in body */
    const char *content_type; /* NULL: application/json when there is a body. PATCH needs one of
                                 K8S_CONTENT_*_PATCH */
    const char *accept;       /* NULL: application/json */
    uint32_t timeout_ms;      /* whole request, retries and waits included; 0: the default */
    uint32_t retries;         /* extra attempts for retriable failures; 0: none */
    size_t max_body_len;      /* 0: K8S_HTTP_MAX_BODY_LEN */
    k8s_data_cb on_data;      /* NULL, or stream a 2xx body here (then never retried once a
                                 byte was delivered; resp->body is empty) */
};

/* The outcome of a request, valid only during the completion callback. */
struct k8s_response {
    int error;              /* 0 when the server answered (any status, see status), else
                               -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH, -EPROTO
                               (TLS or HTTP failure), -EMSGSIZE (body over the max), -EACCES or
                               another code from reading credentials, -ENOMEM, -EIO, or what
                               on_data returned */
    long status;            /* HTTP status code of the last answer; 0 without one */
    struct dc_span body;    /* borrowed: the whole body (empty for streamed 2xx bodies); p is
                               never NULL */
    const char *reason;     /* borrowed: for status >= 400 the Status reason, or the code's
                               usual reason ("TooManyRequests") without a Status; else "" */
    const char *message;    /* borrowed: the Status message, or the start of a text body; "" */
    const char *err;        /* borrowed: one sentence when the request failed (error != 0 or
                               status >= 400), e.g. "NotFound: clusters.management.loft.sh \"x\"
                               not found" or "GET /api: timed out after 200 ms"; else "" */
    uint32_t retry_after_s; /* the last answer's Retry-After in seconds; 0 when absent */
    uint32_t attempts;      /* attempts made, >= 1 */
};

/* Called once per request unless it was cancelled first. resp is borrowed for the call. */
typedef void (*k8s_response_cb)(void *arg, const struct k8s_response *resp);

/* Counters since k8s_client_new(). */
struct k8s_client_stats {
    uint64_t requests;  /* k8s_request() calls accepted */
    uint64_t attempts;  /* attempts sent, retries included */
    uint64_t retries;   /* attempts that were retries */
    uint64_t completed; /* completion callbacks run */
    uint64_t connects;  /* new connections opened (the rest reused a cached one) */
};

/* Creates a client for cfg (borrowed: it must outlive the client; the client updates its token
 * cache through k8s_config_token()) on loop (borrowed, must outlive the client). Calls
 * curl_global_init(), balanced by k8s_client_free(). Returns 0, -EINVAL (server is not an
 * http(s) URL, err quotes it), -ENOMEM or -EIO (libcurl failed). Caller frees *out. */
int k8s_client_new(struct dc_loop *loop, struct k8s_config *cfg, struct k8s_client **out,
                   char *err) DC_MUST_CHECK;

/* Cancels every request without calling back, releases curl and the loop's watches and timer,
 * and frees the client. Stop every k8s_watch on it first. Not from a callback of this client.
 * Accepts NULL. */
void k8s_client_free(struct k8s_client *c);

/* The loop the client runs on (borrowed). */
struct dc_loop *k8s_client_loop(const struct k8s_client *c);
/* Copies the counters into out. */
void k8s_client_stats(const struct k8s_client *c, struct k8s_client_stats *out);

/* Starts a request; cb(arg, resp) runs on the loop when it ends. *out (when out is not NULL)
 * receives a handle, valid until cb has returned or k8s_call_cancel() was called. Credentials
 * are read now for the first attempt. Returns 0, or without calling back: -EINVAL (no path, a
 * path without a leading '/', PATCH without a content type; err says which), -EMSGSIZE (URL
 * over K8S_HTTP_MAX_URL_LEN), a credential error (err says why), -ENOMEM or -EIO. */
int k8s_request(struct k8s_client *c, const struct k8s_request_opts *opts, k8s_response_cb cb,
                void *arg, struct k8s_call **out, char *err) DC_MUST_CHECK;

/* Ends a request at once without calling its callback; the handle is invalid afterwards.
 * Safe from any callback of the client, including the request's own on_data. */
void k8s_call_cancel(struct k8s_call *call);

/* "GET", "POST", ... (static strings); "?" outside the enum. */
const char *k8s_method_name(enum k8s_method method);
/* The reason kube-apiserver gives with a status code when it sends no Status ("NotFound" for
 * 404, "TooManyRequests" for 429, ...; apimachinery's NewGenericServerResponse), or "Unknown".
 * A static string. */
const char *k8s_status_reason(long status);
/* Reports whether resp is a success: no transport error and a 2xx status. */
bool k8s_response_is_ok(const struct k8s_response *resp);

/* Sets b to wait up to base_ms, doubling per wait up to cap_ms (full jitter). */
void k8s_backoff_init(struct k8s_backoff *b, uint32_t base_ms, uint32_t cap_ms);
/* The ceiling of the next wait, min(cap, base * 2^attempt), in ms; no randomness. */
uint32_t k8s_backoff_ceiling_ms(const struct k8s_backoff *b);
/* Returns the next wait: uniform in [0, ceiling] ms (libsodium randombytes_uniform), and
 * doubles the ceiling for the following one. */
uint32_t k8s_backoff_next_ms(struct k8s_backoff *b);
/* Back to the first ceiling, after a success. */
void k8s_backoff_reset(struct k8s_backoff *b);

#endif
