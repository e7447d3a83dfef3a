#include "k8s_http.h"

#include "buf.h"
#include "k8s_config.h"
#include "k8s_stream.h"
#include "log.h"
#include "loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_LOG_SUBSYS "derp-k8s"
#define HTTP_USER_AGENT "derp-controller/0.1 k8s-client (libcurl)"
/* Bytes kept of a Status reason (CamelCase words such as "RequestEntityTooLarge"). */
#define HTTP_REASON_LEN 64
/* "Authorization: Bearer " */
#define HTTP_BEARER_PREFIX "Authorization: Bearer "

/* One socket curl asked us to watch. Kept on the client's free list after curl removes it,
 * so nothing is freed inside its own dc_io callback; freed with the client. */
struct k8s_sock {
    struct dc_io io;           /* io.data points back here */
    struct k8s_client *client; /* borrowed */
    bool is_used;              /* curl owns the fd now */
    struct k8s_sock *next;     /* client's list of all sockets ever allocated */
};

struct k8s_call {
    struct k8s_client *client;  /* borrowed */
    CURL *easy;                 /* owned */
    struct curl_slist *headers; /* owned: this attempt's headers (the token is wiped on free) */
    enum k8s_method method;
    char *url;              /* owned */
    char *path;             /* owned: opts->path, for error text */
    uint8_t *body;          /* owned or NULL: request body */
    size_t body_len;        /* bytes in body */
    char *content_type;     /* owned or NULL */
    char *accept;           /* owned */
    uint64_t deadline_ms;   /* dc_now_ms() by which the whole request ends */
    uint32_t timeout_ms;    /* the whole request's budget, for error text */
    uint32_t retries_left;  /* extra attempts still allowed */
    uint32_t attempts;      /* attempts sent */
    uint32_t retry_after_s; /* the last answer's Retry-After */
    k8s_response_cb cb;     /* may be NULL */
    k8s_data_cb on_data;    /* NULL: buffer the body */
    void *arg;              /* borrowed, for cb and on_data */
    struct dc_buf resp;     /* owned: the response body (non-2xx only when streaming) */
    struct dc_buf chunk;    /* owned: streamed bytes waiting for on_data */
    struct k8s_backoff backoff;
    struct dc_timer retry_timer;
    int write_error;   /* negative errno from the write callback, or 0 */
    bool is_attached;  /* added to the multi handle */
    bool is_in_cb;     /* its cb or on_data is running: cancel only marks it */
    bool is_canceled;  /* cancelled while in a callback: destroy afterwards */
    bool is_pending;   /* on the client's pending-data queue */
    bool has_streamed; /* on_data has seen bytes: no more retries */
    bool used_exec;    /* this attempt carried an exec credential */
    bool retried_401;  /* the exec credential was renewed once after a 401 */
    char reason[HTTP_REASON_LEN];
    char *message;                  /* owned or NULL: the failure's message */
    char err[DC_ERR_LEN];           /* the failure sentence */
    char curl_err[CURL_ERROR_SIZE]; /* CURLOPT_ERRORBUFFER */
    struct k8s_call *next;          /* client's list of calls */
    struct k8s_call *prev;
    struct k8s_call *pending_next; /* client's pending-data queue */
};

struct k8s_client {
    struct dc_loop *loop;            /* borrowed */
    struct k8s_config *cfg;          /* borrowed */
    CURLM *multi;                    /* owned */
    struct dc_timer timer;           /* curl's timeout */
    struct k8s_sock *socks;          /* owned: every k8s_sock allocated */
    struct k8s_call *calls;          /* owned: requests in flight or waiting to retry */
    struct k8s_call *pending_head;   /* calls with streamed bytes to hand out */
    struct k8s_call *pending_tail;   /* last of them */
    char *base_url;                  /* owned: server URL without its trailing '/' */
    struct curl_slist *connect_to;   /* owned or NULL: tls-server-name mapping */
    char *token;                     /* owned: K8S_TOKEN_MAX_LEN + 1 bytes, wiped after use */
    struct k8s_exec_credential cred; /* cached exec plugin credential */
    bool has_cred;                   /* cred is filled */
    bool has_curl_global;            /* curl_global_init() succeeded */
    struct k8s_client_stats stats;   /* counters */
};

/* --- backoff --- */

void k8s_backoff_init(struct k8s_backoff *b, uint32_t base_ms, uint32_t cap_ms)
{
    b->base_ms = base_ms;
    b->cap_ms = cap_ms < base_ms ? base_ms : cap_ms;
    b->attempt = 0;
}

uint32_t k8s_backoff_ceiling_ms(const struct k8s_backoff *b)
{
    uint64_t ceiling = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && ceiling < b->cap_ms; i++) {
        ceiling *= 2;
    }
    return ceiling > b->cap_ms ? b->cap_ms : (uint32_t)ceiling;
}

uint32_t k8s_backoff_next_ms(struct k8s_backoff *b)
{
    uint32_t ceiling = k8s_backoff_ceiling_ms(b);
    if (b->attempt < UINT32_MAX) {
        b->attempt++;
    }
    if (ceiling == 0) {
        return 0;
    }
    if (ceiling == UINT32_MAX) {
        return randombytes_uniform(UINT32_MAX);
    }
    return randombytes_uniform(ceiling + 1);
}

void k8s_backoff_reset(struct k8s_backoff *b)
{
    b->attempt = 0;
}

/* --- small helpers --- */

const char *k8s_method_name(enum k8s_method method)
{
    switch (method) {
    case K8S_GET:
        return "GET";
    case K8S_POST:
        return "POST";
    case K8S_PUT:
        return "PUT";
    case K8S_PATCH:
        return "PATCH";
    case K8S_DELETE:
        return "DELETE";
    }
    return "?";
}

const char *k8s_status_reason(long status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 405:
        return "MethodNotAllowed";
    case 406:
        return "NotAcceptable";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "RequestEntityTooLarge";
    case 415:
        return "UnsupportedMediaType";
    case 422:
        return "Invalid";
    case 429:
        return "TooManyRequests";
    case 500:
        return "InternalError";
    case 503:
        return "ServiceUnavailable";
    case 504:
        return "Timeout";
    default:
        return "Unknown";
    }
}

bool k8s_response_is_ok(const struct k8s_response *resp)
{
    return resp->error == 0 && resp->status >= 200 && resp->status < 300;
}

struct dc_loop *k8s_client_loop(const struct k8s_client *c)
{
    return c->loop;
}

void k8s_client_stats(const struct k8s_client *c, struct k8s_client_stats *out)
{
    *out = c->stats;
}

static bool method_is_idempotent(enum k8s_method m)
{
    return m == K8S_GET || m == K8S_PUT || m == K8S_DELETE;
}

static int curl_code_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return -EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_FILESIZE_EXCEEDED:
        return -EMSGSIZE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
        return -EPROTO;
    default:
        return -EIO;
    }
}

/* Frees a header list after wiping its strings (one of them holds the bearer token). */
static void headers_free(struct curl_slist *h)
{
    for (struct curl_slist *it = h; it != NULL; it = it->next) {
        sodium_memzero(it->data, strlen(it->data));
    }
    curl_slist_free_all(h);
}

static int headers_add(struct curl_slist **h, const char *line)
{
    struct curl_slist *n = curl_slist_append(*h, line);
    if (n == NULL) {
        return -ENOMEM;
    }
    *h = n;
    return 0;
}

static int headers_add_pair(struct curl_slist **h, const char *name, const char *value)
{
    size_t len = strlen(name) + 2 + strlen(value) + 1;
    char *line = malloc(len);
    if (line == NULL) {
        return -ENOMEM;
    }
    int n = snprintf(line, len, "%s: %s", name, value);
    int rc = (n < 0 || (size_t)n >= len) ? -EINVAL : headers_add(h, line);
    sodium_memzero(line, len);
    free(line);
    return rc;
}

/* --- sockets and the timer: curl's multi-socket callbacks on the caller's loop --- */

static void client_after_action(struct k8s_client *c);

static void sock_io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    struct k8s_sock *sk = io->data;
    struct k8s_client *c = sk->client;
    int mask = 0;
    if (events & DC_IO_READ) {
        mask |= CURL_CSELECT_IN;
    }
    if (events & DC_IO_WRITE) {
        mask |= CURL_CSELECT_OUT;
    }
    if (events & DC_IO_ERROR) {
        mask |= CURL_CSELECT_ERR;
    }
    int running = 0;
    /* sk may be recycled by curl's socket callback from here on: use only c. */
    curl_multi_socket_action(c->multi, io->fd, mask, &running);
    client_after_action(c);
}

static struct k8s_sock *sock_get(struct k8s_client *c)
{
    for (struct k8s_sock *sk = c->socks; sk != NULL; sk = sk->next) {
        if (!sk->is_used) {
            sk->is_used = true;
            return sk;
        }
    }
    struct k8s_sock *sk = calloc(1, sizeof(*sk));
    if (sk == NULL) {
        return NULL;
    }
    sk->client = c;
    sk->is_used = true;
    sk->next = c->socks;
    c->socks = sk;
    return sk;
}

static int socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct k8s_client *c = userp;
    struct k8s_sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL) {
            dc_io_stop(c->loop, &sk->io);
            sk->is_used = false;
            curl_multi_assign(c->multi, s, NULL);
        }
        return 0;
    }
    if (sk == NULL) {
        sk = sock_get(c);
        if (sk == NULL) {
            return -1;
        }
        sk->io = (struct dc_io){.fd = s, .cb = sock_io_cb, .data = sk};
        curl_multi_assign(c->multi, s, sk);
    }
    uint32_t ev = 0;
    if (what & CURL_POLL_IN) {
        ev |= DC_IO_READ;
    }
    if (what & CURL_POLL_OUT) {
        ev |= DC_IO_WRITE;
    }
    if (dc_io_start(c->loop, &sk->io, ev) < 0) {
        return -1;
    }
    return 0;
}

static void client_timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct k8s_client *c = t->data;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    client_after_action(c);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct k8s_client *c = userp;
    if (timeout_ms < 0) {
        dc_timer_stop(c->loop, &c->timer);
    } else {
        dc_timer_start(c->loop, &c->timer, (uint64_t)timeout_ms);
    }
    return 0;
}

/* --- calls --- */

static void pending_unlink(struct k8s_client *c, struct k8s_call *call)
{
    struct k8s_call *prev = NULL;
    for (struct k8s_call *it = c->pending_head; it != NULL; it = it->pending_next) {
        if (it == call) {
            if (prev == NULL) {
                c->pending_head = it->pending_next;
            } else {
                prev->pending_next = it->pending_next;
            }
            if (c->pending_tail == it) {
                c->pending_tail = prev;
            }
            break;
        }
        prev = it;
    }
    call->pending_next = NULL;
    call->is_pending = false;
}

static void call_detach(struct k8s_call *call)
{
    if (call->is_attached) {
        curl_multi_remove_handle(call->client->multi, call->easy);
        call->is_attached = false;
    }
}

static void call_destroy(struct k8s_call *call)
{
    struct k8s_client *c = call->client;
    if (call->is_pending) {
        pending_unlink(c, call);
    }
    call_detach(call);
    dc_timer_stop(c->loop, &call->retry_timer);
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else if (c->calls == call) {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    if (call->easy != NULL) {
        curl_easy_cleanup(call->easy);
    }
    headers_free(call->headers);
    free(call->url);
    free(call->path);
    free(call->body);
    free(call->content_type);
    free(call->accept);
    free(call->message);
    dc_buf_deinit(&call->resp);
    dc_buf_deinit(&call->chunk);
    free(call);
}

void k8s_call_cancel(struct k8s_call *call)
{
    if (call == NULL) {
        return;
    }
    if (call->is_in_cb) {
        call->is_canceled = true;
        return;
    }
    call_destroy(call);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct k8s_call *call = userdata;
    struct k8s_client *c = call->client;
    size_t len = size * nmemb;
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    struct dc_buf *dst = &call->resp;
    if (call->on_data != NULL && status >= 200 && status < 300) {
        dst = &call->chunk;
        if (!call->is_pending) {
            call->is_pending = true;
            call->pending_next = NULL;
            if (c->pending_tail != NULL) {
                c->pending_tail->pending_next = call;
            } else {
                c->pending_head = call;
            }
            c->pending_tail = call;
        }
    }
    int rc = dc_buf_append(dst, ptr, len);
    if (rc < 0) {
        call->write_error = rc;
        return 0; /* anything but len aborts the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

/* Renews the exec credential when there is none or it is about to expire. */
static int client_exec_refresh(struct k8s_client *c, char *err)
{
    if (c->has_cred) {
        int64_t now = (int64_t)time(NULL);
        if (!c->cred.has_expiry || now + K8S_HTTP_EXEC_EXPIRY_SLACK_S < c->cred.expires_unix) {
            return 0;
        }
    }
    k8s_exec_credential_deinit(&c->cred);
    c->has_cred = false;
    char why[DC_ERR_LEN] = "";
    int rc = k8s_config_exec_credential(c->cfg, &c->cred, why);
    if (rc < 0) {
        return dc_err_set(err, rc, "exec credential plugin: %s", why);
    }
    c->has_cred = true;
    return 0;
}

/* Copied: an exec credential may be replaced while this attempt still connects. */
static int call_set_blob(struct k8s_call *call, CURLoption opt, const uint8_t *p, size_t len)
{
    struct curl_blob blob = {.data = (void *)p, .len = len, .flags = CURL_BLOB_COPY};
    return curl_easy_setopt(call->easy, opt, &blob) == CURLE_OK ? 0 : -ENOMEM;
}

/* Adds "Authorization: Bearer TOKEN", wiping the temporary line. */
static int headers_add_bearer(struct curl_slist **h, const char *token)
{
    size_t token_len = strlen(token);
    size_t len = sizeof(HTTP_BEARER_PREFIX) + token_len;
    char *line = malloc(len);
    if (line == NULL) {
        return -ENOMEM;
    }
    memcpy(line, HTTP_BEARER_PREFIX, sizeof(HTTP_BEARER_PREFIX) - 1);
    memcpy(line + sizeof(HTTP_BEARER_PREFIX) - 1, token, token_len + 1);
    int rc = headers_add(h, line);
    sodium_memzero(line, len);
    free(line);
    return rc;
}

/* The exec plugin's credential: its token, and its client certificate when it gave one. */
static int call_auth_exec(struct k8s_call *call, struct curl_slist **h, char *err)
{
    struct k8s_client *c = call->client;
    int rc = client_exec_refresh(c, err);
    if (rc < 0) {
        return rc;
    }
    call->used_exec = true;
    if (c->cred.cert_data != NULL && c->cred.key_data != NULL) {
        rc = call_set_blob(call, CURLOPT_SSLCERT_BLOB, c->cred.cert_data, c->cred.cert_data_len);
        if (rc == 0) {
            rc = call_set_blob(call, CURLOPT_SSLKEY_BLOB, c->cred.key_data, c->cred.key_data_len);
        }
    }
    if (rc == 0 && c->cred.token != NULL && c->cred.token[0] != '\0') {
        rc = headers_add_bearer(h, c->cred.token);
    }
    return rc < 0 ? dc_err_set(err, rc, "exec credential: out of memory") : 0;
}

/* Adds this attempt's Authorization header, reading the token (file) now. */
static int call_auth(struct k8s_call *call, struct curl_slist **h, char *err)
{
    struct k8s_client *c = call->client;
    call->used_exec = false;
    if (c->cfg->exec != NULL) {
        return call_auth_exec(call, h, err);
    }
    char why[DC_ERR_LEN] = "";
    int rc = k8s_config_token(c->cfg, c->token, K8S_TOKEN_MAX_LEN + 1, why);
    if (rc < 0) {
        return dc_err_set(err, rc, "bearer token: %s", why);
    }
    if (why[0] != '\0') {
        dc_log(DC_LOG_WARN, HTTP_LOG_SUBSYS, "%s (the previous token stays in use)", why);
    }
    if (c->token[0] != '\0') {
        rc = headers_add_bearer(h, c->token);
    }
    sodium_memzero(c->token, strlen(c->token));
    return rc < 0 ? dc_err_set(err, rc, "out of memory building the request headers") : 0;
}

/* Sends one attempt: fresh headers and credentials, the time left, then into the multi. */
static int call_attach(struct k8s_call *call, char *err)
{
    struct k8s_client *c = call->client;
    struct curl_slist *h = NULL;
    int rc = 0;
    uint64_t now = dc_now_ms();
    if (now >= call->deadline_ms) {
        rc = dc_err_set(err, -ETIMEDOUT, "%s %s: timed out after %u ms",
                        k8s_method_name(call->method), call->path, call->timeout_ms);
        goto out;
    }
    uint64_t left = call->deadline_ms - now;
    if (headers_add_pair(&h, "Accept", call->accept) < 0 || headers_add(&h, "Expect:") < 0) {
        rc = dc_err_set(err, -ENOMEM, "out of memory building the request headers");
        goto out;
    }
    if (call->content_type != NULL &&
        headers_add_pair(&h, "Content-Type", call->content_type) < 0) {
        rc = dc_err_set(err, -ENOMEM, "out of memory building the request headers");
        goto out;
    }
    rc = call_auth(call, &h, err);
    if (rc < 0) {
        goto out;
    }
    headers_free(call->headers);
    call->headers = h;
    h = NULL;
    curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, (long)left);
    curl_easy_setopt(
        call->easy, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(left < K8S_HTTP_CONNECT_TIMEOUT_MS ? left : K8S_HTTP_CONNECT_TIMEOUT_MS));
    dc_buf_reset(&call->resp);
    dc_buf_reset(&call->chunk);
    call->write_error = 0;
    call->curl_err[0] = '\0';
    if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
        rc = dc_err_set(err, -EIO, "%s %s: libcurl refused the request",
                        k8s_method_name(call->method), call->path);
        goto out;
    }
    call->is_attached = true;
    call->attempts++;
    c->stats.attempts++;
out:
    headers_free(h);
    return rc;
}

/* Keeps a printable copy of text[0..len): the first line, control bytes as spaces. */
static char *message_dup(const char *text, size_t len)
{
    if (len > K8S_HTTP_MAX_MESSAGE_LEN) {
        len = K8S_HTTP_MAX_MESSAGE_LEN;
    }
    char *m = malloc(len + 1);
    if (m == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len && text[i] != '\n' && text[i] != '\r'; i++) {
        unsigned char ch = (unsigned char)text[i];
        m[n++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    while (n > 0 && m[n - 1] == ' ') {
        n--;
    }
    m[n] = '\0';
    return m;
}

/* Fills call->reason, ->message and ->err from an error answer's body. */
static void call_describe_status(struct k8s_call *call, long status)
{
    const char *reason = NULL;
    const char *message = NULL;
    size_t message_len = 0;
    json_t *doc = NULL;
    if (call->resp.len > 0) {
        doc = json_loadb((const char *)call->resp.p, call->resp.len, 0, NULL);
    }
    struct k8s_status st;
    if (doc != NULL && json_is_object(doc) && json_object_get(doc, "kind") != NULL &&
        k8s_status_parse(doc, &st) == 0) {
        reason = st.reason;
        message = st.message;
        message_len = strlen(st.message);
    } else if (doc == NULL && call->resp.len > 0) {
        message = (const char *)call->resp.p; /* a text body, e.g. kube's plain-text 429 */
        message_len = call->resp.len;
    }
    if (reason == NULL || reason[0] == '\0') {
        reason = k8s_status_reason(status);
    }
    snprintf(call->reason, sizeof(call->reason), "%s", reason);
    free(call->message);
    call->message = message_dup(message != NULL ? message : "", message_len);
    if (call->message != NULL && call->message[0] != '\0') {
        dc_err_set(call->err, 0, "%s: %s", call->reason, call->message);
    } else {
        dc_err_set(call->err, 0, "%s: %s %s answered HTTP %ld", call->reason,
                   k8s_method_name(call->method), call->path, status);
    }
    json_decref(doc);
}

/* Runs the callback once and frees the call. */
static void call_complete(struct k8s_call *call, int error, long status)
{
    struct k8s_client *c = call->client;
    call_detach(call);
    dc_timer_stop(c->loop, &call->retry_timer);
    if (error == 0 && status >= 400) {
        call_describe_status(call, status);
    } else if (error == 0) {
        call->err[0] = '\0';
    }
    struct k8s_response resp = {
        .error = error,
        .status = status,
        .body = {.p = call->resp.p != NULL ? call->resp.p : (const uint8_t *)"",
                 .len = call->resp.len},
        .reason = (error == 0 && status >= 400) ? call->reason : "",
        .message = call->message != NULL ? call->message : "",
        .err = call->err,
        .retry_after_s = call->retry_after_s,
        .attempts = call->attempts,
    };
    c->stats.completed++;
    if (call->cb != NULL) {
        call->is_in_cb = true;
        call->cb(call->arg, &resp);
    }
    call_destroy(call);
}

static void call_retry_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct k8s_call *call = t->data;
    int rc = call_attach(call, call->err);
    if (rc < 0) {
        call_complete(call, rc, 0); /* call_attach() wrote the sentence */
    }
}

/* Decides whether a finished attempt is worth another, and how long to wait first. */
static bool call_should_retry(struct k8s_call *call, int error, long status, uint32_t *wait_ms)
{
    if (call->has_streamed) {
        return false;
    }
    if (error == 0 && status == 401 && call->used_exec && !call->retried_401) {
        /* client-go: a 401 makes the exec plugin run again, then one more try. */
        struct k8s_client *c = call->client;
        k8s_exec_credential_deinit(&c->cred);
        c->has_cred = false;
        call->retried_401 = true;
        *wait_ms = 0;
        return true;
    }
    if (call->retries_left == 0) {
        return false;
    }
    bool is_retriable = false;
    if (error == 0) {
        is_retriable =
            status == 429 || (status >= 500 && status != 501 && method_is_idempotent(call->method));
    } else {
        is_retriable = (error == -ECONNREFUSED || error == -ECONNRESET || error == -EHOSTUNREACH) &&
                       method_is_idempotent(call->method);
    }
    if (!is_retriable) {
        return false;
    }
    call->retries_left--;
    if (error == 0 && call->retry_after_s > 0) {
        *wait_ms = call->retry_after_s * 1000u;
    } else {
        *wait_ms = k8s_backoff_next_ms(&call->backoff);
    }
    return true;
}

/* An attempt ended (curl's CURLMSG_DONE): retry, or report. */
static void call_done(struct k8s_call *call, CURLcode rc)
{
    struct k8s_client *c = call->client;
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t retry_after = 0;
    if (curl_easy_getinfo(call->easy, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK ||
        retry_after < 0) {
        retry_after = 0;
    }
    long connects = 0;
    if (curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK &&
        connects > 0) {
        c->stats.connects += (uint64_t)connects;
    }
    call->retry_after_s = retry_after > K8S_HTTP_MAX_RETRY_AFTER_S ? K8S_HTTP_MAX_RETRY_AFTER_S
                                                                   : (uint32_t)retry_after;
    int error = 0;
    if (rc != CURLE_OK) {
        error = call->write_error != 0 ? call->write_error : curl_code_errno(rc);
    }
    call_detach(call);
    uint32_t wait_ms = 0;
    if (call_should_retry(call, error, status, &wait_ms)) {
        uint64_t now = dc_now_ms();
        if (now + wait_ms < call->deadline_ms) {
            c->stats.retries++;
            dc_log(DC_LOG_DEBUG, HTTP_LOG_SUBSYS, "%s %s: retry %u in %u ms (%s)",
                   k8s_method_name(call->method), call->path, call->attempts, wait_ms,
                   error != 0 ? dc_strerror(error) : k8s_status_reason(status));
            dc_timer_start(c->loop, &call->retry_timer, wait_ms);
            return;
        }
    }
    if (error != 0) {
        if (error == -ETIMEDOUT) {
            dc_err_set(call->err, 0, "%s %s: timed out after %u ms", k8s_method_name(call->method),
                       call->path, call->timeout_ms);
        } else if (error == -EMSGSIZE && call->write_error != 0) {
            dc_err_set(call->err, 0, "%s %s: response body over %zu bytes",
                       k8s_method_name(call->method), call->path, call->resp.max);
        } else {
            dc_err_set(call->err, 0, "%s %s: %s", k8s_method_name(call->method), call->path,
                       call->curl_err[0] != '\0' ? call->curl_err : curl_easy_strerror(rc));
        }
    }
    call_complete(call, error, status);
}

/* After curl ran: hand out streamed bytes, then finished transfers. Only here (and in retry
 * timers) do the caller's callbacks run, outside every libcurl callback. */
static void client_after_action(struct k8s_client *c)
{
    while (c->pending_head != NULL) {
        struct k8s_call *call = c->pending_head;
        c->pending_head = call->pending_next;
        if (c->pending_head == NULL) {
            c->pending_tail = NULL;
        }
        call->pending_next = NULL;
        call->is_pending = false;
        if (call->chunk.len == 0) {
            continue;
        }
        call->has_streamed = true;
        call->is_in_cb = true;
        int rc = call->on_data(call->arg, (const char *)call->chunk.p, call->chunk.len);
        call->is_in_cb = false;
        dc_buf_reset(&call->chunk);
        if (call->is_canceled) {
            call_destroy(call);
        } else if (rc < 0) {
            dc_err_set(call->err, 0, "%s %s: stream consumer stopped: %s",
                       k8s_method_name(call->method), call->path, dc_strerror(rc));
            long status = 0;
            curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
            call_complete(call, rc, status);
        }
    }
    for (;;) {
        int left = 0;
        CURLMsg *msg = curl_multi_info_read(c->multi, &left);
        if (msg == NULL) {
            break;
        }
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        struct k8s_call *call = (struct k8s_call *)priv;
        if (call != NULL) {
            call_done(call, rc);
        }
    }
}

/* Server verification and client certificate from the config. The data blobs are not copied:
 * cfg outlives the client, and its key bytes are wiped when it is freed. */
static CURLcode call_setup_tls(CURL *e, const struct k8s_config *cfg)
{
    CURLcode rc = CURLE_OK;
    if (cfg->is_insecure) {
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        rc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (cfg->ca_data != NULL) {
        /* Only the configured CA, not the system roots as well (client-go). */
        struct curl_blob blob = {
            .data = cfg->ca_data, .len = cfg->ca_data_len, .flags = CURL_BLOB_NOCOPY};
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, NULL);
        rc |= curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    } else if (cfg->ca_file != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (cfg->cert_data != NULL) {
        struct curl_blob blob = {
            .data = cfg->cert_data, .len = cfg->cert_data_len, .flags = CURL_BLOB_NOCOPY};
        rc |= curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &blob);
    } else if (cfg->cert_file != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
    }
    rc |= curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    if (cfg->key_data != NULL) {
        struct curl_blob blob = {
            .data = cfg->key_data, .len = cfg->key_data_len, .flags = CURL_BLOB_NOCOPY};
        rc |= curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &blob);
    } else if (cfg->key_file != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
    }
    rc |= curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    return rc;
}

/* Copies the bytes of the request into the easy handle's fixed options. */
static int call_setup_easy(struct k8s_call *call)
{
    struct k8s_client *c = call->client;
    struct k8s_config *cfg = c->cfg;
    CURL *e = call->easy;
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_URL, call->url);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->curl_err);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (!cfg->is_compression_disabled) {
        rc |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    }
    switch (call->method) {
    case K8S_GET:
        rc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        break;
    case K8S_POST:
    case K8S_PUT:
    case K8S_PATCH:
    case K8S_DELETE:
        if (call->method != K8S_POST) {
            rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, k8s_method_name(call->method));
        }
        if (call->body != NULL || call->method != K8S_DELETE) {
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS,
                                   call->body != NULL ? (char *)call->body : "");
            rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        }
        break;
    }
    rc |= call_setup_tls(e, cfg);
    if (cfg->username != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        rc |= curl_easy_setopt(e, CURLOPT_USERNAME, cfg->username);
        rc |= curl_easy_setopt(e, CURLOPT_PASSWORD, cfg->password != NULL ? cfg->password : "");
    }
    if (cfg->proxy_url != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy_url);
    }
    if (c->connect_to != NULL) {
        rc |= curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
    }
    return rc == CURLE_OK ? 0 : -EIO;
}

static char *str_dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static int call_build_url(struct k8s_call *call, const struct k8s_request_opts *opts, char *err)
{
    const char *base = call->client->base_url;
    bool has_query = opts->query != NULL && opts->query[0] != '\0';
    size_t len = strlen(base) + strlen(opts->path) + (has_query ? 1 + strlen(opts->query) : 0);
    if (len > K8S_HTTP_MAX_URL_LEN) {
        return dc_err_set(err, -EMSGSIZE, "%s %s: URL longer than %u bytes",
                          k8s_method_name(opts->method), opts->path, K8S_HTTP_MAX_URL_LEN);
    }
    call->url = malloc(len + 1);
    if (call->url == NULL) {
        return dc_err_set(err, -ENOMEM, "%s %s: out of memory", k8s_method_name(opts->method),
                          opts->path);
    }
    int n = snprintf(call->url, len + 1, "%s%s%s%s", base, opts->path, has_query ? "?" : "",
                     has_query ? opts->query : "");
    if (n < 0 || (size_t)n != len) {
        return dc_err_set(err, -EINVAL, "%s %s: cannot build the URL",
                          k8s_method_name(opts->method), opts->path);
    }
    return 0;
}

static int request_check(const struct k8s_request_opts *opts, char *err)
{
    if (opts == NULL || opts->path == NULL || opts->path[0] != '/') {
        return dc_err_set(err, -EINVAL, "request path must start with '/'");
    }
    if ((unsigned)opts->method > K8S_DELETE) {
        return dc_err_set(err, -EINVAL, "request %s: unknown method %d", opts->path,
                          (int)opts->method);
    }
    if (opts->method == K8S_PATCH && opts->content_type == NULL) {
        return dc_err_set(err, -EINVAL,
                          "PATCH %s: needs a content type (merge, JSON or strategic merge patch)",
                          opts->path);
    }
    return 0;
}

/* Allocates a call holding copies of everything in opts. Returns 0 or -ENOMEM. */
static int call_new(struct k8s_client *c, const struct k8s_request_opts *opts, k8s_response_cb cb,
                    void *arg, struct k8s_call **out)
{
    struct k8s_call *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return -ENOMEM;
    }
    *out = call; /* the caller destroys it on failure too */
    call->client = c;
    call->method = opts->method;
    call->cb = cb;
    call->on_data = opts->on_data;
    call->arg = arg;
    call->timeout_ms = opts->timeout_ms != 0 ? opts->timeout_ms : K8S_HTTP_DEFAULT_TIMEOUT_MS;
    call->deadline_ms = dc_now_ms() + call->timeout_ms;
    call->retries_left = opts->retries;
    size_t max = opts->max_body_len != 0 ? opts->max_body_len : K8S_HTTP_MAX_BODY_LEN;
    dc_buf_init(&call->resp, max);
    dc_buf_init(&call->chunk, max);
    k8s_backoff_init(&call->backoff, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS);
    call->retry_timer = (struct dc_timer){.cb = call_retry_cb, .data = call};
    const char *type = opts->content_type;
    if (type == NULL && opts->body != NULL) {
        type = K8S_CONTENT_JSON;
    }
    call->path = strdup(opts->path);
    call->accept = strdup(opts->accept != NULL ? opts->accept : K8S_CONTENT_JSON);
    call->content_type = str_dup_or_null(type);
    call->easy = curl_easy_init();
    if (call->path == NULL || call->accept == NULL || call->easy == NULL ||
        (type != NULL && call->content_type == NULL)) {
        return -ENOMEM;
    }
    if (opts->body != NULL) {
        call->body = malloc(opts->body_len + 1);
        if (call->body == NULL) {
            return -ENOMEM;
        }
        memcpy(call->body, opts->body, opts->body_len);
        call->body[opts->body_len] = '\0';
        call->body_len = opts->body_len;
    }
    return 0;
}

int k8s_request(struct k8s_client *c, const struct k8s_request_opts *opts, k8s_response_cb cb,
                void *arg, struct k8s_call **out, char *err)
{
    struct k8s_call *call = NULL;
    int rc = request_check(opts, err);
    if (rc < 0) {
        goto out;
    }
    rc = call_new(c, opts, cb, arg, &call);
    if (rc < 0) {
        dc_err_set(err, rc, "%s %s: out of memory", k8s_method_name(opts->method), opts->path);
        goto out;
    }
    rc = call_build_url(call, opts, err);
    if (rc < 0) {
        goto out;
    }
    if (call_setup_easy(call) < 0) {
        rc = dc_err_set(err, -EIO, "%s %s: libcurl refused an option",
                        k8s_method_name(opts->method), opts->path);
        goto out;
    }
    rc = call_attach(call, err);
    if (rc < 0) {
        goto out;
    }
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    c->stats.requests++;
    if (out != NULL) {
        *out = call;
    }
    call = NULL;
out:
    if (call != NULL) {
        call_destroy(call);
    }
    return rc;
}

/* --- the client --- */

/* tls-server-name: the URL names that host (so it is the SNI and the name verified) and
 * CURLOPT_CONNECT_TO sends the connection to the configured host and port instead. */
static int client_connect_to(struct k8s_client *c, CURLU *u, char *err)
{
    const char *name = c->cfg->tls_server_name;
    char quoted[DC_QUOTE_BUF_LEN];
    char *host = NULL;
    char *port = NULL;
    char *line = NULL;
    int rc = 0;
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        rc = dc_err_set(err, -EINVAL, "server `%s' has no host",
                        dc_err_quote(c->cfg->server, strlen(c->cfg->server), quoted));
        goto out;
    }
    size_t len = strlen(name) + 2 * strlen(port) + strlen(host) + 4;
    line = malloc(len);
    if (line == NULL) {
        rc = dc_err_set(err, -ENOMEM, "k8s client: out of memory");
        goto out;
    }
    snprintf(line, len, "%s:%s:%s:%s", name, port, host, port);
    c->connect_to = curl_slist_append(NULL, line);
    if (c->connect_to == NULL || curl_url_set(u, CURLUPART_HOST, name, 0) != CURLUE_OK) {
        rc = dc_err_set(err, -EINVAL, "tls-server-name `%s' is not a host name",
                        dc_err_quote(name, strlen(name), quoted));
    }
out:
    free(line);
    curl_free(port);
    curl_free(host);
    return rc;
}

/* The base URL every request path is appended to: the server without trailing '/'. */
static int client_parse_server(struct k8s_client *c, char *err)
{
    const char *server = c->cfg->server != NULL ? c->cfg->server : "";
    char quoted[DC_QUOTE_BUF_LEN];
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *url = NULL;
    int rc = 0;
    if (u == NULL) {
        rc = dc_err_set(err, -ENOMEM, "k8s client: out of memory");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, server, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)) {
        rc = dc_err_set(err, -EINVAL, "server `%s' is not an http(s) URL",
                        dc_err_quote(server, strlen(server), quoted));
        goto out;
    }
    if (c->cfg->tls_server_name != NULL && c->cfg->tls_server_name[0] != '\0') {
        rc = client_connect_to(c, u, err);
        if (rc < 0) {
            goto out;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        rc = dc_err_set(err, -ENOMEM, "k8s client: out of memory");
        goto out;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    c->base_url = strndup(url, n);
    if (c->base_url == NULL) {
        rc = dc_err_set(err, -ENOMEM, "k8s client: out of memory");
    }
out:
    curl_free(url);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

int k8s_client_new(struct dc_loop *loop, struct k8s_config *cfg, struct k8s_client **out, char *err)
{
    int rc = 0;
    struct k8s_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    c->loop = loop;
    c->cfg = cfg;
    c->timer = (struct dc_timer){.cb = client_timer_cb, .data = c};
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = dc_err_set(err, -EIO, "libcurl failed to initialise");
        goto out;
    }
    c->has_curl_global = true;
    rc = client_parse_server(c, err);
    if (rc < 0) {
        goto out;
    }
    c->token = calloc(1, K8S_TOKEN_MAX_LEN + 1);
    c->multi = curl_multi_init();
    if (c->token == NULL || c->multi == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    CURLMcode mrc = CURLM_OK;
    mrc |= curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    mrc |= curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    mrc |= curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    mrc |= curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    if (mrc != CURLM_OK) {
        rc = dc_err_set(err, -EIO, "libcurl refused the multi handle's callbacks");
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (rc == -ENOMEM && err != NULL) {
        dc_err_set(err, rc, "k8s client: out of memory");
    }
    k8s_client_free(c);
    return rc;
}

void k8s_client_free(struct k8s_client *c)
{
    if (c == NULL) {
        return;
    }
    while (c->calls != NULL) {
        c->calls->is_in_cb = false;
        call_destroy(c->calls);
    }
    if (c->multi != NULL) {
        curl_multi_cleanup(c->multi); /* may close cached connections through socket_fn */
    }
    dc_timer_stop(c->loop, &c->timer);
    while (c->socks != NULL) {
        struct k8s_sock *sk = c->socks;
        c->socks = sk->next;
        dc_io_stop(c->loop, &sk->io);
        free(sk);
    }
    curl_slist_free_all(c->connect_to);
    free(c->base_url);
    if (c->token != NULL) {
        sodium_memzero(c->token, K8S_TOKEN_MAX_LEN + 1);
        free(c->token);
    }
    k8s_exec_credential_deinit(&c->cred);
    if (c->has_curl_global) {
        curl_global_cleanup();
    }
    free(c);
}
