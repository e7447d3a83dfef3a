#include "map_server.h"

#include "buf.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#define MS_TICK_MS  500
#define MS_HEAD_MAX 1024

/* An immutable published map. */
struct map_snapshot {
    unsigned refs;
    char etag[64];
    struct map_snapshot *gz; /* owned: the same map gzip-compressed, made on first ask */
    bool is_gz_failed;       /* compression failed once: serve identity only */
    size_t len;
    uint8_t json[]; /* len bytes */
};

struct ms_conn {
    struct map_server *ms;
    struct dc_io io;
    char rbuf[MAP_SERVER_RBUF_LEN];
    size_t rlen;
    char head[MS_HEAD_MAX]; /* response head being written */
    size_t head_len, head_off;
    struct map_snapshot *body; /* referenced while its bytes are written */
    size_t body_off;
    bool is_closing_after; /* Connection: close or HTTP/1.0 */
    bool is_waiting;       /* parked long-poll */
    bool is_head_method;   /* the parked request was HEAD */
    bool accepts_gzip;     /* the parked request sent Accept-Encoding: gzip */
    bool is_closed;        /* closed; freed by the reap timer */
    uint64_t wait_until_ms;
    uint64_t deadline_ms; /* head / idle deadline while reading */
    uint64_t stalled_since_ms;
    struct ms_conn *next, *prev;
};

struct map_server {
    struct dc_loop *loop;
    struct dc_io listen_io;
    uint16_t port;
    struct map_snapshot *map; /* NULL until the first map */
    struct ms_conn *conns;
    struct dc_timer tick;
    struct dc_timer reap; /* frees closed connections outside their callbacks */
    struct ms_conn *doomed;
    size_t waiters;
    uint64_t requests, not_modified, long_polls_answered;
    map_server_metrics_cb metrics_cb;
    void *metrics_data;
};

static void snapshot_unref(struct map_snapshot *s)
{
    if (s != NULL && --s->refs == 0) {
        snapshot_unref(s->gz);
        free(s);
    }
}

static void conn_close(struct ms_conn *c)
{
    struct map_server *ms = c->ms;
    if (c->is_closed) {
        return;
    }
    c->is_closed = true;
    dc_io_stop(ms->loop, &c->io);
    close(c->io.fd);
    if (c->is_waiting) {
        ms->waiters--;
        c->is_waiting = false;
    }
    snapshot_unref(c->body);
    c->body = NULL;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        ms->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->next = ms->doomed;
    ms->doomed = c;
    dc_timer_start(ms->loop, &ms->reap, 0);
}

static void reap_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct map_server *ms = t->data;
    while (ms->doomed != NULL) {
        struct ms_conn *c = ms->doomed;
        ms->doomed = c->next;
        free(c);
    }
}

static bool conn_has_output(const struct ms_conn *c)
{
    return c->head_off < c->head_len || (c->body != NULL && c->body_off < c->body->len);
}

static void conn_process(struct ms_conn *c);

/* Writes pending output; returns false when c was closed. */
static bool conn_flush(struct ms_conn *c)
{
    while (conn_has_output(c)) {
        struct iovec iov[2];
        int n = 0;
        if (c->head_off < c->head_len) {
            iov[n].iov_base = c->head + c->head_off;
            iov[n++].iov_len = c->head_len - c->head_off;
        }
        if (c->body != NULL && c->body_off < c->body->len) {
            iov[n].iov_base = c->body->json + c->body_off;
            iov[n++].iov_len = c->body->len - c->body_off;
        }
        ssize_t w = writev(c->io.fd, iov, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && errno == EAGAIN) {
            if (c->stalled_since_ms == 0) {
                c->stalled_since_ms = dc_now_ms();
            }
            return dc_io_start(c->ms->loop, &c->io, DC_IO_READ | DC_IO_WRITE) == 0 ||
                   (conn_close(c), false);
        }
        if (w < 0) {
            conn_close(c);
            return false;
        }
        c->stalled_since_ms = 0;
        size_t k = (size_t)w;
        size_t h = c->head_len - c->head_off;
        size_t take = k < h ? k : h;
        c->head_off += take;
        k -= take;
        if (c->body != NULL) {
            c->body_off += k;
        }
    }
    snapshot_unref(c->body);
    c->body = NULL;
    c->head_len = c->head_off = 0;
    if (c->is_closing_after) {
        conn_close(c);
        return false;
    }
    c->deadline_ms = dc_now_ms() + MAP_SERVER_IDLE_TIMEOUT_MS;
    if (dc_io_start(c->ms->loop, &c->io, DC_IO_READ) < 0) {
        conn_close(c);
        return false;
    }
    return true;
}

static void respond(struct ms_conn *c, int code, const char *extra, const char *ctype,
                    const char *body, size_t body_len, struct map_snapshot *snap, bool is_head)
{
    size_t len = snap != NULL ? snap->len : body_len;
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", code,
                     http_status_text(code), extra, ctype, code == 304 ? (size_t)0 : len,
                     c->is_closing_after ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(c->head)) {
        conn_close(c);
        return;
    }
    c->head_len = (size_t)n;
    c->head_off = 0;
    c->ms->requests++;
    if (!is_head && code != 304) {
        if (snap != NULL) {
            snap->refs++;
            c->body = snap;
            c->body_off = 0;
        } else if (body_len > 0 && body_len < sizeof(c->head) - c->head_len) {
            memcpy(c->head + c->head_len, body, body_len);
            c->head_len += body_len;
        }
    }
    conn_flush(c);
}

/* The gzip twin of m, compressed once (level 1: a 1.5 MB map of 10 000
 * regions takes milliseconds and shrinks about 8x), or NULL. */
static struct map_snapshot *snapshot_gzip(struct map_snapshot *m)
{
    if (m->gz != NULL || m->is_gz_failed) {
        return m->gz;
    }
    z_stream z = {0};
    uLong bound = compressBound((uLong)m->len) + 32; /* plus the gzip header and trailer */
    struct map_snapshot *g = malloc(sizeof(*g) + bound);
    /* windowBits 15 + 16: a gzip wrapper (RFC 1952), as Content-Encoding: gzip needs. */
    if (g == NULL || deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        m->is_gz_failed = true;
        return NULL;
    }
    z.next_in = m->json;
    z.avail_in = (uInt)m->len;
    z.next_out = g->json;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    size_t out = bound - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END || out >= m->len) {
        free(g);
        m->is_gz_failed = true; /* not smaller: identity it is */
        return NULL;
    }
    *g = (struct map_snapshot){.refs = 1, .len = out};
    memcpy(g->etag, m->etag, sizeof(g->etag));
    m->gz = g;
    return g;
}

static void respond_map(struct ms_conn *c, int code, bool is_head)
{
    struct map_snapshot *m = c->ms->map;
    struct map_snapshot *gz = c->accepts_gzip && code != 304 ? snapshot_gzip(m) : NULL;
    char extra[200];
    /* One ETag for both encodings: clients compare it with the map's, whichever bytes they got. */
    snprintf(extra, sizeof(extra),
             "ETag: %s\r\nCache-Control: no-cache\r\nVary: "
             "Accept-Encoding\r\n%s",
             m->etag, gz != NULL ? "Content-Encoding: gzip\r\n" : "");
    if (code == 304) {
        c->ms->not_modified++;
    }
    respond(c, code, extra, "application/json", NULL, 0, gz != NULL ? gz : m, is_head);
}

static void serve_metrics(struct ms_conn *c, bool is_head)
{
    struct map_server *ms = c->ms;
    struct dc_buf out;
    dc_buf_init(&out, 1u << 20);
    dc_buf_printf(&out,
                  "# HELP derp_map_http_requests_total Requests answered by the map server.\n"
                  "# TYPE derp_map_http_requests_total counter\n"
                  "derp_map_http_requests_total %llu\n"
                  "# HELP derp_map_long_poll_waiters Parked /derpmap long-poll requests.\n"
                  "# TYPE derp_map_long_poll_waiters gauge\nderp_map_long_poll_waiters %zu\n"
                  "# HELP derp_map_not_modified_total 304 answers.\n"
                  "# TYPE derp_map_not_modified_total counter\nderp_map_not_modified_total %llu\n",
                  (unsigned long long)ms->requests, ms->waiters,
                  (unsigned long long)ms->not_modified);
    if (ms->metrics_cb != NULL) {
        ms->metrics_cb(ms->metrics_data, &out);
    }
    /* The metrics text can exceed the head buffer: send it as a snapshot. */
    struct map_snapshot *s = malloc(sizeof(*s) + out.len);
    if (s == NULL) {
        dc_buf_deinit(&out);
        conn_close(c);
        return;
    }
    *s = (struct map_snapshot){.refs = 1, .len = out.len};
    memcpy(s->json, out.p, out.len);
    dc_buf_deinit(&out);
    respond(c, 200, "", "text/plain; version=0.0.4; charset=utf-8", NULL, 0, s, is_head);
    snapshot_unref(s);
}

static bool etag_matches(const struct dc_span *inm, const char *etag)
{
    size_t n = strlen(etag);
    return inm != NULL &&
           ((inm->len == n && memcmp(inm->p, etag, n) == 0) || (inm->len == 1 && inm->p[0] == '*'));
}

static long wait_seconds(const struct http_request *req)
{
    struct dc_span v;
    if (http_query_get(req->query, "wait", &v) < 0 || v.len == 0 || v.len > 6) {
        return 0;
    }
    long s = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') {
            return 0;
        }
        s = s * 10 + (v.p[i] - '0');
    }
    return s > MAP_SERVER_MAX_WAIT_S ? MAP_SERVER_MAX_WAIT_S : s;
}

static void serve_derpmap(struct ms_conn *c, const struct http_request *req, bool is_head)
{
    struct map_server *ms = c->ms;
    if (ms->map == NULL) {
        respond(c, 503, "Retry-After: 1\r\n", "text/plain; charset=utf-8", "no map yet\n", 11, NULL,
                is_head);
        return;
    }
    const struct dc_span *inm = http_header_get(req->headers, req->num_headers, "If-None-Match");
    c->accepts_gzip =
        http_headers_have_token(req->headers, req->num_headers, "Accept-Encoding", "gzip");
    if (!etag_matches(inm, ms->map->etag)) {
        respond_map(c, 200, is_head);
        return;
    }
    long wait = wait_seconds(req);
    if (wait <= 0) {
        respond_map(c, 304, is_head);
        return;
    }
    c->is_waiting = true;
    c->is_head_method = is_head;
    c->wait_until_ms = dc_now_ms() + (uint64_t)wait * 1000u;
    ms->waiters++;
}

static bool path_is(const struct http_request *req, const char *p)
{
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.p, p, n) == 0;
}

static void route(struct ms_conn *c, const struct http_request *req)
{
    bool is_get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
    bool is_head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    c->is_closing_after =
        req->minor_version == 0 ||
        http_headers_have_token(req->headers, req->num_headers, "Connection", "close");
    if (!is_get && !is_head) {
        respond(c, 405, "Allow: GET, HEAD\r\n", "text/plain; charset=utf-8", "method not allowed\n",
                19, NULL, false);
    } else if (path_is(req, "/derpmap")) {
        serve_derpmap(c, req, is_head);
    } else if (path_is(req, "/healthz")) {
        respond(c, 200, "", "text/plain; charset=utf-8", "ok\n", 3, NULL, is_head);
    } else if (path_is(req, "/readyz")) {
        bool ready = c->ms->map != NULL;
        respond(c, ready ? 200 : 503, "", "text/plain; charset=utf-8",
                ready ? "ready\n" : "no map yet\n", ready ? 6 : 11, NULL, is_head);
    } else if (path_is(req, "/metrics")) {
        serve_metrics(c, is_head);
    } else {
        respond(c, 404, "", "text/plain; charset=utf-8", "404 page not found\n", 19, NULL, is_head);
    }
}

/* Answers buffered requests in order while nothing is in flight. */
static void conn_process(struct ms_conn *c)
{
    while (!c->is_closed && !c->is_waiting && !conn_has_output(c) && c->rlen > 0) {
        struct http_request req;
        char err[DC_ERR_LEN];
        ssize_t n = http_request_parse(c->rbuf, c->rlen, &req, err);
        if (n == 0) {
            return;
        }
        if (n < 0) {
            dc_log(DC_LOG_DEBUG, "derp-map", "bad HTTP request: %s", err);
            c->is_closing_after = true;
            c->rlen = 0;
            respond(c, n == -EMSGSIZE ? 431 : 400, "", "text/plain; charset=utf-8", "bad request\n",
                    12, NULL, false);
            return;
        }
        route(c, &req); /* req points into rbuf: drop its bytes only afterwards */
        if (c->is_closed) {
            return;
        }
        memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
        c->rlen -= (size_t)n;
    }
}

static void conn_io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    struct ms_conn *c = io->data;
    if ((events & DC_IO_WRITE) && conn_has_output(c)) {
        if (!conn_flush(c)) {
            return;
        }
        conn_process(c); /* pipelined requests waiting behind the answer */
    }
    if (!(events & DC_IO_READ)) {
        return;
    }
    if (c->rlen == sizeof(c->rbuf)) {
        if (!c->is_waiting && !conn_has_output(c)) {
            c->is_closing_after = true;
            c->rlen = 0;
            respond(c, 431, "", "text/plain; charset=utf-8", "request header too large\n", 25, NULL,
                    false);
        } else {
            conn_close(c); /* pipelining past the buffer while an answer is pending */
        }
        return;
    }
    ssize_t n = read(c->io.fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n < 0) {
        return;
    }
    c->rlen += (size_t)n;
    c->deadline_ms = dc_now_ms() + MAP_SERVER_HEAD_TIMEOUT_MS;
    conn_process(c);
}

static void listen_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct map_server *ms = io->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen;
        int fd = dc_net_accept(io->fd, &peer, &plen);
        if (fd < 0) {
            if (fd != -EAGAIN) {
                dc_log(DC_LOG_WARN, "derp-map", "accept: %s", dc_strerror(fd));
            }
            return;
        }
        struct ms_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->ms = ms;
        c->io.fd = fd;
        c->io.cb = conn_io_cb;
        c->io.data = c;
        c->deadline_ms = dc_now_ms() + MAP_SERVER_HEAD_TIMEOUT_MS;
        c->next = ms->conns;
        if (ms->conns != NULL) {
            ms->conns->prev = c;
        }
        ms->conns = c;
        if (dc_io_start(loop, &c->io, DC_IO_READ) < 0) {
            conn_close(c);
        }
    }
}

/* Ends a parked request: with the current map (200) or unchanged (304). */
static void conn_wake(struct ms_conn *c, int code)
{
    c->is_waiting = false;
    c->ms->waiters--;
    if (code == 200) {
        c->ms->long_polls_answered++;
    }
    respond_map(c, code, c->is_head_method);
    conn_process(c);
}

static void tick_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct map_server *ms = t->data;
    uint64_t now = dc_now_ms();
    struct ms_conn *c = ms->conns;
    while (c != NULL) {
        struct ms_conn *next = c->next;
        if (c->is_waiting && now >= c->wait_until_ms) {
            conn_wake(c, 304);
        } else if (c->stalled_since_ms != 0 &&
                   now - c->stalled_since_ms >= MAP_SERVER_WRITE_TIMEOUT_MS) {
            conn_close(c);
        } else if (!c->is_waiting && !conn_has_output(c) && now >= c->deadline_ms) {
            conn_close(c); /* slow or idle client */
        }
        c = next;
    }
    dc_timer_start(loop, &ms->tick, MS_TICK_MS);
}

int map_server_set_map(struct map_server *ms, const uint8_t *json, size_t len, const char *etag)
{
    struct map_snapshot *s = malloc(sizeof(*s) + len);
    if (s == NULL) {
        return -ENOMEM;
    }
    *s = (struct map_snapshot){.refs = 1, .len = len};
    snprintf(s->etag, sizeof(s->etag), "%s", etag);
    memcpy(s->json, json, len);
    snapshot_unref(ms->map);
    ms->map = s;
    struct ms_conn *c = ms->conns;
    while (c != NULL) {
        struct ms_conn *next = c->next;
        if (c->is_waiting) {
            conn_wake(c, 200);
        }
        c = next;
    }
    return 0;
}

int map_server_start(struct dc_loop *loop, const char *listen_addr, struct map_server **out,
                     char *err)
{
    struct map_server *ms = calloc(1, sizeof(*ms));
    if (ms == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    int fd = dc_net_listen_tcp(listen_addr, 1024, err);
    if (fd < 0) {
        free(ms);
        return fd;
    }
    ms->loop = loop;
    ms->listen_io.fd = fd;
    ms->listen_io.cb = listen_cb;
    ms->listen_io.data = ms;
    ms->port = dc_net_local_port(fd);
    int rc = dc_io_start(loop, &ms->listen_io, DC_IO_READ);
    if (rc < 0) {
        close(fd);
        free(ms);
        return dc_err_set(err, rc, "epoll: %s", dc_strerror(rc));
    }
    ms->tick.cb = tick_cb;
    ms->tick.data = ms;
    ms->reap.cb = reap_cb;
    ms->reap.data = ms;
    dc_timer_start(loop, &ms->tick, MS_TICK_MS);
    *out = ms;
    return 0;
}

void map_server_free(struct map_server *ms)
{
    if (ms == NULL) {
        return;
    }
    while (ms->conns != NULL) {
        conn_close(ms->conns);
    }
    reap_cb(ms->loop, &ms->reap);
    dc_timer_stop(ms->loop, &ms->reap);
    dc_timer_stop(ms->loop, &ms->tick);
    dc_io_stop(ms->loop, &ms->listen_io);
    close(ms->listen_io.fd);
    snapshot_unref(ms->map);
    free(ms);
}

uint16_t map_server_port(const struct map_server *ms)
{
    return ms->port;
}

void map_server_set_metrics(struct map_server *ms, map_server_metrics_cb cb, void *data)
{
    ms->metrics_cb = cb;
    ms->metrics_data = data;
}

size_t map_server_waiters(const struct map_server *ms)
{
    return ms->waiters;
}
