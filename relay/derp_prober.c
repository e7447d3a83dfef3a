#include "derp_prober.h"

#include "derp_client.h"
#include "loop.h"
#include "stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest STUN datagram read; answers are 32-44 bytes, but a server may pad
 * up to the path MTU (tailscale prober/derp.go reads 9000). */
#define STUN_RECV_LEN 9000

/* ---- small helpers ---- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds left until deadline_us (a now_us() value), at least 0. */
static int left_ms(int64_t deadline_us)
{
    int64_t left = deadline_us - now_us();
    return left > 0 ? (int)((left + 999) / 1000) : 0;
}

static bool is_ip_literal(int family, const char *s)
{
    uint8_t buf[sizeof(struct in6_addr)];
    return s[0] != '\0' && inet_pton(family, s, buf) == 1;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static const char *const stage_names[] = {
    [DERP_PROBE_STAGE_NONE] = "",
    [DERP_PROBE_STAGE_URL] = "url",
    [DERP_PROBE_STAGE_DNS] = "dns",
    [DERP_PROBE_STAGE_TCP] = "tcp",
    [DERP_PROBE_STAGE_TLS] = "tls",
    [DERP_PROBE_STAGE_HTTP] = "http",
    [DERP_PROBE_STAGE_HANDSHAKE] = "handshake",
    [DERP_PROBE_STAGE_TIMEOUT] = "timeout",
    [DERP_PROBE_STAGE_PACKET] = "packet",
    [DERP_PROBE_STAGE_STUN] = "stun",
};

const char *derp_probe_stage_name(enum derp_probe_stage s)
{
    if ((size_t)s >= sizeof(stage_names) / sizeof(stage_names[0])) {
        return "";
    }
    return stage_names[s];
}

/* Reads the stage from the sentence derp_client (or this file) wrote: its
 * prefix, except that a timeout after the TCP connect is "timeout". */
static enum derp_probe_stage stage_of(int rc, const char *err)
{
    static const struct {
        const char *prefix;
        enum derp_probe_stage stage;
    } map[] = {
        {"url:", DERP_PROBE_STAGE_URL},         {"dns:", DERP_PROBE_STAGE_DNS},
        {"tcp:", DERP_PROBE_STAGE_TCP},         {"packet:", DERP_PROBE_STAGE_PACKET},
        {"timeout:", DERP_PROBE_STAGE_TIMEOUT}, {"tls:", DERP_PROBE_STAGE_TLS},
        {"http:", DERP_PROBE_STAGE_HTTP},       {"handshake:", DERP_PROBE_STAGE_HANDSHAKE},
        {"io:", DERP_PROBE_STAGE_HANDSHAKE},
    };
    enum derp_probe_stage s = DERP_PROBE_STAGE_HANDSHAKE;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strncmp(err, map[i].prefix, strlen(map[i].prefix)) == 0) {
            s = map[i].stage;
            break;
        }
    }
    if (s <= DERP_PROBE_STAGE_TCP || s == DERP_PROBE_STAGE_PACKET) {
        return s;
    }
    return rc == -ETIMEDOUT ? DERP_PROBE_STAGE_TIMEOUT : s;
}

/* Records a failed DERP check; the sentence is made to start with the stage. */
static int derp_fail(struct derp_probe_result *r, int rc, enum derp_probe_stage s, const char *err)
{
    const char *name = derp_probe_stage_name(s);
    size_t n = strlen(name);
    r->derp = DERP_PROBE_FAILED;
    r->stage = s;
    if (strncmp(err, name, n) == 0 && err[n] == ':') {
        copy_str(r->error, sizeof(r->error), err);
    } else {
        dc_err_set(r->error, rc, "%s: %s", name, err);
    }
    return rc;
}

/* ---- the node's address, URL and TLS settings ---- */

/* A HostName must be a DNS name or an IP literal: anything else could
 * smuggle a path or user info into the URL. */
static bool host_name_ok(const char *h)
{
    if (h[0] == '\0') {
        return false;
    }
    for (const char *p = h; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_' || *p == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Picks what TCP dials (see the header) into r->dial. */
static int pick_dial(const struct derp_map_node *n, struct derp_probe_result *r, char *err)
{
    if (is_ip_literal(AF_INET, n->ipv4)) {
        copy_str(r->dial, sizeof(r->dial), n->ipv4);
    } else if (is_ip_literal(AF_INET6, n->ipv6)) {
        copy_str(r->dial, sizeof(r->dial), n->ipv6);
    } else if (n->ipv4[0] == '\0' || n->ipv6[0] == '\0') {
        copy_str(r->dial, sizeof(r->dial), n->host_name);
    } else {
        char q4[DC_QUOTE_BUF_LEN];
        char q6[DC_QUOTE_BUF_LEN];
        return dc_err_set(err, -EINVAL, "url: IPv4 `%s' and IPv6 `%s' leave nothing to dial",
                          dc_err_quote(n->ipv4, strlen(n->ipv4), q4),
                          dc_err_quote(n->ipv6, strlen(n->ipv6), q6));
    }
    return 0;
}

/* Fills r->url, r->dial and r->is_tls for node n. */
static int build_target(const struct derp_map_node *n, const struct derp_probe_opts *o,
                        struct derp_probe_result *r, char *err)
{
    if (!host_name_ok(n->host_name)) {
        char q[DC_QUOTE_BUF_LEN];
        return dc_err_set(err, -EINVAL, "url: HostName is not a host name or IP address: `%s'",
                          dc_err_quote(n->host_name, strlen(n->host_name), q));
    }
    r->is_tls = !o->is_plain_http;
    int port = n->derp_port != 0 ? n->derp_port : r->is_tls ? 443 : DERP_PROBE_PLAIN_HTTP_PORT;
    bool v6 = strchr(n->host_name, ':') != NULL;
    int w = snprintf(r->url, sizeof(r->url), "%s://%s%s%s:%d/derp", r->is_tls ? "https" : "http",
                     v6 ? "[" : "", n->host_name, v6 ? "]" : "", port);
    if (w < 0 || (size_t)w >= sizeof(r->url)) {
        return dc_err_set(err, -EINVAL, "url: HostName too long");
    }
    return pick_dial(n, r, err);
}

/* Client options for node n; strings point into n and r. */
static void client_opts(const struct derp_map_node *n, const struct derp_probe_opts *o,
                        const struct derp_probe_result *r, struct derp_client_opts *co)
{
    memset(co, 0, sizeof(*co));
    co->url = r->url;
    co->dial_host = r->dial;
    co->is_prober = true;
    co->app_name = "derp-probe";
    co->websocket = o->is_websocket;
    co->ca_file = o->ca_file;
    co->insecure_skip_verify = n->is_insecure_for_tests || o->is_insecure;
    if (strncmp(n->cert_name, DC_TLS_PIN_PREFIX, DC_TLS_PIN_PREFIX_LEN) == 0) {
        co->pin = n->cert_name;
    } else if (n->cert_name[0] != '\0') {
        co->cert_name = n->cert_name; /* SNI stays HostName, as derphttp's tlsClient */
    }
}

/* ---- DERP: two clients, one packet there and back ---- */

/* Waits for a RecvPacket from src carrying want; skips keepalives and the like. */
static int wait_packet(struct derp_client *c, const uint8_t *src, const uint8_t *want, size_t len,
                       int64_t deadline_us, int timeout_ms, char *err)
{
    for (;;) {
        int left = left_ms(deadline_us);
        if (left <= 0) {
            return dc_err_set(err, -ETIMEDOUT,
                              "packet: did not come through the relay within %d ms", timeout_ms);
        }
        struct derp_client_msg m;
        char why[DC_ERR_LEN] = "";
        int rc = derp_client_recv(c, &m, left, why);
        if (rc == -ETIMEDOUT) {
            continue;
        }
        if (rc < 0) {
            return dc_err_set(err, rc, "packet: connection lost while waiting: %s",
                              why[0] != '\0' ? why : dc_strerror(rc));
        }
        if (m.type == DERP_FRAME_RECV_PACKET && memcmp(m.key, src, DERP_KEY_LEN) == 0 &&
            m.len == len && memcmp(m.data, want, len) == 0) {
            return 0;
        }
    }
}

static int send_packet(struct derp_client *from, struct derp_client *to, const uint8_t *pkt,
                       size_t len, char *err)
{
    int rc = derp_client_send(from, derp_client_public_key(to), pkt, len);
    if (rc == 0) {
        rc = derp_client_flush(from);
    }
    if (rc < 0) {
        return dc_err_set(err, rc, "packet: send: %s", dc_strerror(rc));
    }
    return 0;
}

int derp_probe_round_trip(struct derp_client *a, struct derp_client *b, int timeout_ms,
                          int64_t *rtt_us, char *err)
{
    uint8_t pkt[DERP_PROBE_PACKET_LEN];
    randombytes_buf(pkt, sizeof(pkt));
    int64_t t0 = now_us();
    int64_t deadline = t0 + (int64_t)timeout_ms * 1000;
    int rc = send_packet(a, b, pkt, sizeof(pkt), err);
    if (rc == 0) {
        rc = wait_packet(b, derp_client_public_key(a), pkt, sizeof(pkt), deadline, timeout_ms, err);
    }
    if (rc == 0) {
        rc = send_packet(b, a, pkt, sizeof(pkt), err);
    }
    if (rc == 0) {
        rc = wait_packet(a, derp_client_public_key(b), pkt, sizeof(pkt), deadline, timeout_ms, err);
    }
    if (rc == 0) {
        *rtt_us = now_us() - t0;
    }
    return rc;
}

/* Connects one client with what is left of the check's time. */
static int connect_one(struct derp_client_opts *co, int64_t deadline, struct derp_client **out,
                       char *err)
{
    int left = left_ms(deadline);
    if (left <= 0) {
        return dc_err_set(err, -ETIMEDOUT, "timeout: no time left to connect");
    }
    co->timeout_ms = left;
    co->total_timeout_ms = left;
    return derp_client_connect(co, out, err);
}

static int derp_check(const struct derp_map_node *n, const struct derp_probe_opts *o,
                      int timeout_ms, struct derp_probe_result *r)
{
    char err[DC_ERR_LEN] = "";
    struct derp_client *a = NULL;
    struct derp_client *b = NULL;
    struct derp_client_opts co;
    int rc = build_target(n, o, r, err);
    if (rc < 0) {
        return derp_fail(r, rc, DERP_PROBE_STAGE_URL, err);
    }
    client_opts(n, o, r, &co);
    int64_t t0 = now_us();
    int64_t deadline = t0 + (int64_t)timeout_ms * 1000;
    co.peer_pin = r->cert_pin;
    rc = connect_one(&co, deadline, &a, err);
    if (rc == 0) {
        r->connect_us = now_us() - t0;
        co.peer_pin = NULL;
        rc = connect_one(&co, deadline, &b, err);
    }
    if (rc == 0) {
        int left = left_ms(deadline);
        rc = derp_probe_round_trip(a, b, left > 0 ? left : 1, &r->rtt_us, err);
    }
    derp_client_free(a);
    derp_client_free(b);
    if (rc < 0) {
        return derp_fail(r, rc, stage_of(rc, err), err);
    }
    r->derp = DERP_PROBE_PASSED;
    return 0;
}

/* ---- STUN: one Binding request over UDP ---- */

/* Resolves host:port for UDP into ss and r->stun_addr. */
static int stun_resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *ss_len,
                        struct derp_probe_result *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[12];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        char q[DC_QUOTE_BUF_LEN];
        return dc_err_set(r->stun_error, -EHOSTUNREACH, "stun: cannot resolve `%s': %s",
                          dc_err_quote(host, strlen(host), q), gai_strerror(gai));
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ss_len = res->ai_addrlen;
    freeaddrinfo(res);
    dc_net_format_addr(ss, r->stun_addr, sizeof(r->stun_addr));
    return 0;
}

/* Reads one datagram; 1 when it answers txid (fills r), 0 when it does not. */
static int stun_read(int fd, const uint8_t txid[static STUN_TXID_LEN], struct derp_probe_result *r,
                     char *why)
{
    uint8_t *buf = malloc(STUN_RECV_LEN);
    if (buf == NULL) {
        return dc_err_set(r->stun_error, -ENOMEM, "stun: out of memory");
    }
    ssize_t n = recv(fd, buf, STUN_RECV_LEN, 0);
    int rc = 0;
    if (n < 0) {
        rc = errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (rc < 0) {
            dc_err_set(r->stun_error, rc, "stun: %s: %s", r->stun_addr, dc_strerror(rc));
        }
        free(buf);
        return rc;
    }
    uint8_t got[STUN_TXID_LEN];
    struct sockaddr_storage mapped;
    if (stun_parse_binding_response(buf, (size_t)n, got, &mapped, why) == 0) {
        if (memcmp(got, txid, STUN_TXID_LEN) == 0) {
            dc_net_format_addr(&mapped, r->stun_mapped, sizeof(r->stun_mapped));
            rc = 1;
        } else {
            dc_err_set(why, -EPROTO, "answer for another transaction");
        }
    }
    free(buf);
    return rc;
}

/* Sends the request (again every DERP_PROBE_STUN_RESEND_MS) until the
 * answer or the deadline. */
static int stun_exchange(int fd, int timeout_ms, struct derp_probe_result *r)
{
    uint8_t txid[STUN_TXID_LEN];
    uint8_t req[STUN_BINDING_REQUEST_LEN];
    char why[DC_ERR_LEN] = "no answer";
    randombytes_buf(txid, sizeof(txid));
    size_t len = stun_encode_binding_request(txid, req, sizeof(req));
    int64_t deadline = now_us() + (int64_t)timeout_ms * 1000;
    int64_t sent_at = 0;
    for (;;) {
        int64_t now = now_us();
        if (now >= deadline) {
            return dc_err_set(r->stun_error, -ETIMEDOUT, "stun: %s: %s within %d ms", r->stun_addr,
                              why, timeout_ms);
        }
        if (now - sent_at >= (int64_t)DERP_PROBE_STUN_RESEND_MS * 1000) {
            if (send(fd, req, len, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
                int rc = -errno;
                return dc_err_set(r->stun_error, rc, "stun: send to %s: %s", r->stun_addr,
                                  dc_strerror(rc));
            }
            sent_at = now;
        }
        int wait = left_ms(sent_at + (int64_t)DERP_PROBE_STUN_RESEND_MS * 1000);
        int dl = left_ms(deadline);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, wait < dl ? wait : dl) > 0) {
            int rc = stun_read(fd, txid, r, why);
            if (rc != 0) {
                r->stun_rtt_us = rc > 0 ? now_us() - sent_at : -1;
                return rc > 0 ? 0 : rc;
            }
        }
    }
}

static int stun_check(const struct derp_map_node *n, const char *dial, int timeout_ms,
                      struct derp_probe_result *r)
{
    const char *host = n->stun_test_ip[0] != '\0' ? n->stun_test_ip : dial;
    int port = n->stun_port != 0 ? n->stun_port : DERP_PROBE_STUN_PORT;
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    int rc = host[0] == '\0' ? dc_err_set(r->stun_error, -EINVAL, "stun: no address to send to")
                             : stun_resolve(host, port, &ss, &ss_len, r);
    int fd = -1;
    if (rc == 0) {
        fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&ss, ss_len) < 0) {
            rc = -errno;
            dc_err_set(r->stun_error, rc, "stun: %s: %s", r->stun_addr, dc_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = stun_exchange(fd, timeout_ms, r);
    }
    if (fd >= 0) {
        close(fd);
    }
    r->stun = rc == 0 ? DERP_PROBE_PASSED : DERP_PROBE_FAILED;
    return rc;
}

/* ---- certificate pin ---- */

int derp_probe_read_pin(const char *url, const char *dial_host, int timeout_ms,
                        char out[static DC_TLS_PIN_LEN], char *err)
{
    bool is_tls;
    char host[256];
    char path[512];
    uint16_t port;
    SSL *ssl = NULL;
    out[0] = '\0';
    int rc = derp_url_parse(url, &is_tls, host, sizeof(host), &port, path, sizeof(path), err);
    if (rc == 0 && !is_tls) {
        rc = dc_err_set(err, -EINVAL, "url: an http:// URL has no certificate: `%s'", url);
    }
    if (rc < 0) {
        return rc;
    }
    int fd = dc_net_connect_tcp(dial_host != NULL ? dial_host : host, port, timeout_ms, err);
    if (fd < 0) {
        return fd;
    }
    struct dc_tls_client_opts to = {.server_name = host, .insecure_skip_verify = true};
    rc = dc_tls_client_connect(fd, &to, timeout_ms, &ssl, err);
    X509 *leaf = rc == 0 ? SSL_get1_peer_certificate(ssl) : NULL;
    if (rc == 0 && (leaf == NULL || dc_tls_pin_from_x509(leaf, out) < 0)) {
        rc = dc_err_set(err, -EPROTO, "tls: `%s' presented no certificate", host);
    }
    X509_free(leaf);
    dc_tls_close(ssl);
    close(fd);
    return rc;
}

static int pin_check(const struct derp_map_node *n, const struct derp_probe_opts *o, int timeout_ms,
                     struct derp_probe_result *r)
{
    char err[DC_ERR_LEN] = "";
    struct derp_probe_opts tls_opts = *o;
    tls_opts.is_plain_http = false;
    int rc = build_target(n, &tls_opts, r, err);
    if (rc == 0) {
        rc = derp_probe_read_pin(r->url, r->dial, timeout_ms, r->cert_pin, err);
    }
    if (rc < 0) {
        return derp_fail(r, rc, stage_of(rc, err), err);
    }
    r->derp = DERP_PROBE_PASSED;
    return 0;
}

/* ---- one node ---- */

int derp_probe_node(const struct derp_map_node *n, const struct derp_probe_opts *o,
                    struct derp_probe_result *r)
{
    memset(r, 0, sizeof(*r));
    r->connect_us = r->rtt_us = r->stun_rtt_us = -1;
    int timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DERP_PROBE_DEFAULT_TIMEOUT_MS;
    if (o->is_pin_only) {
        int rc = pin_check(n, o, timeout_ms, r);
        r->ok = rc == 0;
        return rc;
    }
    int drc = 0;
    if (!n->is_stun_only) {
        drc = derp_check(n, o, timeout_ms, r);
    } else {
        char err[DC_ERR_LEN] = "";
        (void)build_target(n, o, r, err); /* only for the STUN address */
    }
    int src = 0;
    if (!o->skip_stun && n->stun_port >= 0) {
        src = stun_check(n, r->dial, timeout_ms, r);
    }
    if (drc == 0 && src < 0) {
        r->stage = DERP_PROBE_STAGE_STUN;
        copy_str(r->error, sizeof(r->error), r->stun_error);
    }
    r->ok = drc == 0 && src == 0;
    return drc < 0 ? drc : src;
}

/* ---- the pool: worker threads, results through an eventfd ---- */

struct job {
    struct job *next;            /* in exactly one of queue, running, done */
    struct derp_map_node node;   /* copy */
    struct derp_probe_opts opts; /* copy; ca_file points at ca_file below */
    char *ca_file;               /* owned, or NULL */
    derp_prober_cb cb;
    void *data;                      /* caller's, borrowed */
    bool is_cancelled;               /* the callback must not run */
    struct derp_probe_result result; /* filled by the worker */
};

struct derp_prober {
    struct dc_loop *loop; /* borrowed */
    struct dc_io io;      /* watches efd */
    int efd;              /* owned eventfd: "results are waiting" */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* signalled when a job is queued or on stop */
    pthread_t *threads;   /* owned, num_started entries */
    unsigned num_started;
    struct job *queue_head, *queue_tail; /* not started yet, FIFO */
    size_t queued;
    struct job *running;               /* being probed (unordered) */
    struct job *done_head, *done_tail; /* finished, waiting for the loop, FIFO */
    size_t pending;                    /* submitted, neither delivered nor cancelled */
    bool is_stopping;
};

static void job_free(struct job *j)
{
    if (j != NULL) {
        free(j->ca_file);
        free(j);
    }
}

static void list_append(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = j;
    } else {
        *head = j;
    }
    *tail = j;
}

static void running_remove(struct derp_prober *p, struct job *j)
{
    for (struct job **pp = &p->running; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct derp_prober *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->is_stopping && p->queue_head == NULL) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (p->is_stopping) {
            break;
        }
        struct job *j = p->queue_head;
        p->queue_head = j->next;
        if (p->queue_head == NULL) {
            p->queue_tail = NULL;
        }
        p->queued--;
        j->next = p->running;
        p->running = j;
        pthread_mutex_unlock(&p->mu);
        if (derp_probe_node(&j->node, &j->opts, &j->result) < 0) {
            /* the result says why; the callback reports it */
        }
        pthread_mutex_lock(&p->mu);
        running_remove(p, j);
        list_append(&p->done_head, &p->done_tail, j);
        uint64_t one = 1;
        if (write(p->efd, &one, sizeof(one)) < 0) {
            /* the counter is already non-zero: the loop will wake anyway */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Takes the oldest finished job off the list; NULL when there is none. */
static struct job *done_pop(struct derp_prober *p)
{
    pthread_mutex_lock(&p->mu);
    struct job *j = p->done_head;
    if (j != NULL) {
        p->done_head = j->next;
        if (p->done_head == NULL) {
            p->done_tail = NULL;
        }
        if (!j->is_cancelled) {
            p->pending--;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return j;
}

/* Delivers finished probes one at a time, so a callback may cancel others. */
static void on_results(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct derp_prober *p = io->data;
    uint64_t count;
    if (read(p->efd, &count, sizeof(count)) < 0) {
        /* EAGAIN: another wake-up already took the count */
    }
    for (struct job *j = done_pop(p); j != NULL; j = done_pop(p)) {
        if (!j->is_cancelled) {
            j->cb(j->data, &j->node, &j->result);
        }
        job_free(j);
    }
}

static int prober_start_threads(struct derp_prober *p, unsigned n, char *err)
{
    p->threads = calloc(n, sizeof(*p->threads));
    if (p->threads == NULL) {
        return dc_err_set(err, -ENOMEM, "derp-probe: out of memory");
    }
    for (unsigned i = 0; i < n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0) {
            return dc_err_set(err, -rc, "derp-probe: cannot start a worker thread: %s",
                              dc_strerror(-rc));
        }
        p->num_started++;
    }
    return 0;
}

int derp_prober_new(struct dc_loop *loop, unsigned num_threads, struct derp_prober **out, char *err)
{
    *out = NULL;
    if (num_threads == 0 || num_threads > DERP_PROBER_MAX_THREADS) {
        return dc_err_set(err, -EINVAL, "derp-probe: want 1 to %u worker threads, not %u",
                          DERP_PROBER_MAX_THREADS, num_threads);
    }
    struct derp_prober *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return dc_err_set(err, -ENOMEM, "derp-probe: out of memory");
    }
    p->loop = loop;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = p->efd < 0 ? -errno : 0;
    if (rc < 0) {
        dc_err_set(err, rc, "derp-probe: eventfd: %s", dc_strerror(rc));
    }
    if (rc == 0) {
        p->io.fd = p->efd;
        p->io.cb = on_results;
        p->io.data = p;
        rc = dc_io_start(loop, &p->io, DC_IO_READ);
        if (rc < 0) {
            dc_err_set(err, rc, "derp-probe: cannot watch the eventfd: %s", dc_strerror(rc));
        }
    }
    if (rc == 0) {
        rc = prober_start_threads(p, num_threads, err);
    }
    if (rc < 0) {
        derp_prober_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int derp_prober_submit(struct derp_prober *p, const struct derp_map_node *node,
                       const struct derp_probe_opts *o, derp_prober_cb cb, void *data)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return -ENOMEM;
    }
    j->node = *node;
    j->opts = *o;
    if (o->ca_file != NULL) {
        j->ca_file = strdup(o->ca_file);
        if (j->ca_file == NULL) {
            free(j);
            return -ENOMEM;
        }
    }
    j->opts.ca_file = j->ca_file;
    j->cb = cb;
    j->data = data;
    pthread_mutex_lock(&p->mu);
    if (p->queued >= DERP_PROBER_MAX_QUEUE) {
        pthread_mutex_unlock(&p->mu);
        job_free(j);
        return -ENOBUFS;
    }
    list_append(&p->queue_head, &p->queue_tail, j);
    p->queued++;
    p->pending++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Marks every job on list with data as cancelled. */
static void cancel_list(struct derp_prober *p, struct job *list, void *data)
{
    for (struct job *j = list; j != NULL; j = j->next) {
        if (j->data == data && !j->is_cancelled) {
            j->is_cancelled = true;
            p->pending--;
        }
    }
}

void derp_prober_cancel(struct derp_prober *p, void *data)
{
    pthread_mutex_lock(&p->mu);
    struct job **pp = &p->queue_head;
    p->queue_tail = NULL;
    while (*pp != NULL) {
        struct job *j = *pp;
        if (j->data == data) {
            *pp = j->next;
            p->queued--;
            p->pending -= j->is_cancelled ? 0 : 1;
            job_free(j);
            continue;
        }
        p->queue_tail = j;
        pp = &j->next;
    }
    cancel_list(p, p->running, data);
    cancel_list(p, p->done_head, data);
    pthread_mutex_unlock(&p->mu);
}

size_t derp_prober_pending(struct derp_prober *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void free_list(struct job *j)
{
    while (j != NULL) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
}

void derp_prober_free(struct derp_prober *p)
{
    if (p == NULL) {
        return;
    }
    dc_io_stop(p->loop, &p->io);
    pthread_mutex_lock(&p->mu);
    p->is_stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->num_started; i++) {
        pthread_join(p->threads[i], NULL);
    }
    free(p->threads);
    free_list(p->queue_head);
    free_list(p->done_head);
    if (p->efd >= 0) {
        close(p->efd);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
