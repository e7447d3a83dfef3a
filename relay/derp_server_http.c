/* derp_server_http: the HTTP side of the relay: the /derp upgrade and the
 * small endpoints derper serves (probe, generate_204, robots.txt) plus ours
 * (/healthz, /metrics). Non-upgrade requests get one answer and the
 * connection closes once it is written (Connection: close). */
#include "internal.h"

#include "derp_admit.h"
#include "http.h"
#include "log.h"
#include "ws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Longest X-Tailscale-Challenge echoed (derper: 64). */
#define CHALLENGE_MAX_LEN 64

static const char home_page[] =
    "<html><body>\n<h1>DERP</h1>\n<p>This is a Tailscale DERP relay (derp-controller).</p>\n"
    "</body></html>\n";

static void http_answer(struct derp_conn *c, int code, const char *extra_headers,
                        const char *content_type, const char *body, size_t body_len, bool is_head)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, http_status_text(code), extra_headers, content_type, body_len);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        derp__conn_close(c, true, "HTTP answer too long");
        return;
    }
    c->state = DERP_CONN_HTTP_DONE;
    c->srv->stats.http_requests++;
    derp__conn_send(c, head, (size_t)n);
    if (!is_head && body_len > 0) {
        derp__conn_send(c, body, body_len);
    }
}

static void http_text(struct derp_conn *c, int code, const char *body, bool is_head)
{
    http_answer(c, code, "", "text/plain; charset=utf-8", body, strlen(body), is_head);
}

static bool challenge_ok(struct dc_span v)
{
    if (v.len == 0 || v.len > CHALLENGE_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < v.len; i++) {
        uint8_t ch = v.p[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' || ch == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void serve_generate_204(struct derp_conn *c, const struct http_request *req, bool is_head)
{
    char extra[256] = "";
    const struct dc_span *ch =
        http_header_get(req->headers, req->num_headers, "X-Tailscale-Challenge");
    if (ch != NULL && challenge_ok(*ch)) {
        snprintf(extra, sizeof(extra), "X-Tailscale-Response: response %.*s\r\n", (int)ch->len,
                 (const char *)ch->p);
    }
    char headers[512];
    snprintf(headers, sizeof(headers),
             "%sCache-Control: no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n",
             extra);
    char head[1024];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 204 No Content\r\n%sConnection: close\r\n\r\n",
                     headers);
    (void)is_head;
    c->state = DERP_CONN_HTTP_DONE;
    c->srv->stats.http_requests++;
    derp__conn_send(c, head, (size_t)n);
}

static void serve_metrics(struct derp_conn *c, bool is_head)
{
    struct dc_buf body;
    dc_buf_init(&body, 1u << 20);
    derp_server_metrics_format(c->srv, &body);
    if (c->srv->cfg.extra_metrics != NULL) {
        c->srv->cfg.extra_metrics(c->srv->cfg.extra_metrics_data, &body);
    }
    http_answer(c, 200, "", "text/plain; version=0.0.4; charset=utf-8", (const char *)body.p,
                body.len, is_head);
    dc_buf_deinit(&body);
}

/* Upgrade: websocket with the "derp" subprotocol (derper: AddWebSocketSupport). */
static void serve_websocket_upgrade(struct derp_conn *c, const struct http_request *req)
{
    struct derp_server *s = c->srv;
    const struct dc_span *ver =
        http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Version");
    const struct dc_span *key =
        http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Key");
    char accept[WS_ACCEPT_LEN];
    if (ver == NULL || ver->len != 2 || memcmp(ver->p, "13", 2) != 0) {
        static const char msg[] = "unsupported WebSocket version\n";
        http_answer(c, 426, "Sec-WebSocket-Version: 13\r\n", "text/plain; charset=utf-8", msg,
                    sizeof(msg) - 1, false);
        return;
    }
    if (key == NULL || ws_accept_key(*key, accept) < 0) {
        http_text(c, 400, "bad Sec-WebSocket-Key\n", false);
        return;
    }
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: derp\r\n\r\n",
                     accept);
    /* The 101 goes out unframed (ws_out is written as is); everything after it,
     * queued on the control stream, is framed into binary messages. */
    derp__ws_init(c);
    if (dc_buf_append(&c->ws_out, head, (size_t)n) < 0) {
        derp__conn_close(c, true, "out of memory");
        return;
    }
    derp__conn_mark_dirty(c);
    uint8_t frame[DERP_SERVER_KEY_FRAME_LEN];
    derp_frame_server_key_encode(frame, s->cfg.key.pub);
    derp__conn_send(c, frame, sizeof(frame));
    c->state = DERP_CONN_LOGIN;
}

static bool wants_websocket(const struct http_request *req, const struct dc_span *up)
{
    if (!http_span_eq_nocase(*up, "websocket")) {
        return false;
    }
    const struct dc_span *proto =
        http_header_get(req->headers, req->num_headers, "Sec-WebSocket-Protocol");
    return proto != NULL && http_header_has_token(*proto, "derp");
}

static void serve_derp_upgrade(struct derp_conn *c, const struct http_request *req)
{
    struct derp_server *s = c->srv;
    const struct dc_span *up = http_header_get(req->headers, req->num_headers, "Upgrade");
    if (up != NULL && wants_websocket(req, up)) {
        serve_websocket_upgrade(c, req);
        return;
    }
    /* Very old clients sent "Upgrade: WebSocket" but spoke raw DERP: derper
     * treats any websocket upgrade without the derp subprotocol that way. */
    if (up == NULL ||
        !(http_span_eq_nocase(*up, "derp") || http_span_eq_nocase(*up, "websocket"))) {
        if (up != NULL) {
            dc_log(DC_LOG_DEBUG, "derp", "upgrade `%.*s' on /derp not supported", (int)up->len,
                   (const char *)up->p);
        }
        http_text(c, 426, "DERP requires connection upgrade\n", false);
        return;
    }
    const struct dc_span *fs = http_header_get(req->headers, req->num_headers, DERP_HDR_FAST_START);
    c->is_fast_start = fs != NULL && fs->len == 1 && fs->p[0] == '1';
    const struct dc_span *ideal =
        http_header_get(req->headers, req->num_headers, DERP_HDR_IDEAL_NODE);
    c->is_not_ideal = ideal != NULL && ideal->len > 0;
    if (!c->is_fast_start) {
        char head[512];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"
                         "Connection: Upgrade\r\n" DERP_HDR_VERSION ": %d\r\n" DERP_HDR_PUBLIC_KEY
                         ": %s\r\n\r\n",
                         DERP_PROTOCOL_VERSION, s->pub_hex);
        derp__conn_send(c, head, (size_t)n);
    }
    uint8_t frame[DERP_SERVER_KEY_FRAME_LEN];
    derp_frame_server_key_encode(frame, s->cfg.key.pub);
    derp__conn_send(c, frame, sizeof(frame));
    c->state = DERP_CONN_LOGIN;
}

static bool path_is(const struct http_request *req, const char *path)
{
    size_t n = strlen(path);
    return req->path.len == n && memcmp(req->path.p, path, n) == 0;
}

static bool span_is(struct dc_span s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && memcmp(s.p, text, n) == 0;
}

static void route(struct derp_conn *c, const struct http_request *req)
{
    bool is_get = span_is(req->method, "GET");
    bool is_head = span_is(req->method, "HEAD");
    if (path_is(req, "/derp")) {
        serve_derp_upgrade(c, req);
    } else if (path_is(req, "/derp/probe") || path_is(req, "/derp/latency-check")) {
        if (is_get || is_head) {
            http_answer(c, 200, "Access-Control-Allow-Origin: *\r\n", "text/plain; charset=utf-8",
                        "", 0, is_head);
        } else {
            http_text(c, 405, "bogus probe method\n", false);
        }
    } else if (!is_get && !is_head) {
        http_text(c, 405, "method not allowed\n", false);
    } else if (path_is(req, "/generate_204")) {
        serve_generate_204(c, req, is_head);
    } else if (path_is(req, "/healthz")) {
        http_text(c, 200, "ok\n", is_head);
    } else if (path_is(req, "/robots.txt")) {
        http_text(c, 200, "User-agent: *\nDisallow: /\n", is_head);
    } else if (path_is(req, "/metrics")) {
        serve_metrics(c, is_head);
    } else if (path_is(req, "/")) {
        http_answer(c, 200, "", "text/html; charset=utf-8", home_page, sizeof(home_page) - 1,
                    is_head);
    } else {
        http_text(c, 404, "404 page not found\n", is_head);
    }
}

size_t derp__http_handle(struct derp_conn *c, const uint8_t *buf, size_t len)
{
    struct http_request req;
    char err[DC_ERR_LEN];
    ssize_t n = http_request_parse((const char *)buf, len, &req, err);
    if (n == 0) {
        return 0;
    }
    if (n < 0) {
        char why[DC_ERR_LEN + 32];
        snprintf(why, sizeof(why), "bad HTTP request: %s", err);
        dc_log(DC_LOG_INFO, "derp", "%s", why);
        http_text(c, n == -EMSGSIZE ? 431 : 400,
                  n == -EMSGSIZE ? "request header too large\n" : "bad request\n", false);
        c->srv->stats.handshake_errors++;
        return len;
    }
    route(c, &req);
    return (size_t)n;
}

struct labelled {
    const char *label;
    uint64_t v;
};

/* One labelled family: HELP, TYPE, then a line per label value. */
static void metric_family(struct dc_buf *out, const char *name, const char *help, const char *label,
                          const struct labelled *v, size_t n)
{
    dc_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t i = 0; i < n; i++) {
        dc_buf_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, v[i].label,
                      (unsigned long long)v[i].v);
    }
}

static void limits_metrics_format(const struct derp_server *s, struct dc_buf *out)
{
    const struct derp_server_stats *st = &s->stats;
    const struct labelled conns[] = {{"accept_rate", st->refused_accept_rate},
                                     {"max_connections", st->refused_max_conns},
                                     {"max_connections_per_ip", st->refused_per_ip}};
    metric_family(out, "derp_connections_refused_total",
                  "Connections closed right after accept, by reason.", "reason", conns, 3);
    const struct labelled clients[] = {{"not_listed", st->refused_not_listed},
                                       {"denied", st->refused_denied},
                                       {"unreachable", st->refused_unreachable},
                                       {"error", st->refused_admit_error}};
    metric_family(out, "derp_clients_refused_total",
                  "Clients refused at login by admission, by reason.", "reason", clients, 4);
    dc_buf_printf(out,
                  "# HELP derp_clients_admitted_fail_open_total Clients let in because the "
                  "admission controller was unreachable.\n"
                  "# TYPE derp_clients_admitted_fail_open_total counter\n"
                  "derp_clients_admitted_fail_open_total %llu\n"
                  "# HELP derp_clients_revoked_total Clients closed when their key left the "
                  "allowed keys file.\n# TYPE derp_clients_revoked_total counter\n"
                  "derp_clients_revoked_total %llu\n"
                  "# HELP derp_clients_admission_pending Clients waiting for an admission "
                  "verdict.\n# TYPE derp_clients_admission_pending gauge\n"
                  "derp_clients_admission_pending %llu\n"
                  "# HELP derp_rate_limit_waits_total Times a client's reading paused for its "
                  "byte rate.\n# TYPE derp_rate_limit_waits_total counter\n"
                  "derp_rate_limit_waits_total %llu\n"
                  "# HELP derp_client_rate_limit_bytes_per_second Per-client receive rate (0: "
                  "none).\n# TYPE derp_client_rate_limit_bytes_per_second gauge\n"
                  "derp_client_rate_limit_bytes_per_second %llu\n",
                  (unsigned long long)st->admitted_fail_open, (unsigned long long)st->revoked,
                  (unsigned long long)st->admission_pending,
                  (unsigned long long)st->rate_limit_waits,
                  (unsigned long long)s->cfg.client_rate_bytes_per_sec);
    if (s->cfg.admit != NULL) {
        derp_admit_metrics_format(s->cfg.admit, out);
    }
}

#define METRIC(name, help, type, value)                                                            \
    dc_buf_printf(out, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " %llu\n",      \
                  (unsigned long long)(value))

void derp_server_metrics_format(const struct derp_server *s, struct dc_buf *out)
{
    const struct derp_server_stats *st = &s->stats;
    METRIC("derp_accepts_total", "TCP connections accepted.", "counter", st->accepts);
    METRIC("derp_connections", "Open TCP connections in any state.", "gauge", st->conns_current);
    METRIC("derp_clients", "Logged-in DERP clients.", "gauge", st->clients_current);
    METRIC("derp_home_clients", "Clients that chose this relay as home.", "gauge",
           st->home_clients);
    METRIC("derp_dup_client_keys", "Keys connected more than once.", "gauge", st->dup_client_keys);
    METRIC("derp_handshake_errors_total", "Connections closed before login.", "counter",
           st->handshake_errors);
    METRIC("derp_http_requests_total", "Plain HTTP requests answered.", "counter",
           st->http_requests);
    METRIC("derp_packets_received_total", "Packets received from clients.", "counter",
           st->packets_recv);
    METRIC("derp_bytes_received_total", "Packet bytes received from clients.", "counter",
           st->bytes_recv);
    METRIC("derp_packets_sent_total", "Packets relayed to clients.", "counter", st->packets_sent);
    METRIC("derp_bytes_sent_total", "Packet bytes relayed to clients.", "counter", st->bytes_sent);
    METRIC("derp_packets_forwarded_in_total", "Packets forwarded in by mesh peers.", "counter",
           st->packets_forwarded_in);
    dc_buf_printf(out, "# HELP derp_packets_dropped_total Packets dropped, by reason.\n"
                       "# TYPE derp_packets_dropped_total counter\n");
    const struct {
        const char *reason;
        uint64_t v;
    } drops[] = {{"unknown_dest", st->drop_unknown_dest},
                 {"dup_client", st->drop_dup_client},
                 {"queue_head", st->drop_queue_head},
                 {"gone_disconnected", st->drop_gone},
                 {"write_error", st->drop_write_error},
                 {"unknown_dest_on_fwd", st->drop_unknown_dest_on_fwd}};
    for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
        dc_buf_printf(out, "derp_packets_dropped_total{reason=\"%s\"} %llu\n", drops[i].reason,
                      (unsigned long long)drops[i].v);
    }
    dc_buf_printf(out,
                  "# HELP derp_peer_gone_frames_total PeerGone frames sent.\n"
                  "# TYPE derp_peer_gone_frames_total counter\n"
                  "derp_peer_gone_frames_total{reason=\"disconnected\"} %llu\n"
                  "derp_peer_gone_frames_total{reason=\"not_here\"} %llu\n",
                  (unsigned long long)st->peer_gone_disconnected,
                  (unsigned long long)st->peer_gone_not_here);
    METRIC("derp_packets_forwarded_out_total", "Packets forwarded to mesh peers.", "counter",
           st->packets_forwarded_out);
    METRIC("derp_mesh_peers_up", "Outbound mesh connections logged in.", "gauge",
           st->mesh_peers_up);
    METRIC("derp_mesh_dials_total", "Outbound mesh connection attempts.", "counter",
           st->mesh_dials);
    METRIC("derp_pings_total", "Ping frames answered.", "counter", st->pings);
    METRIC("derp_keepalives_total", "KeepAlive frames sent.", "counter", st->keepalives);
    METRIC("derp_write_timeouts_total", "Clients closed for a stalled write.", "counter",
           st->write_timeouts);
    METRIC("derp_protocol_errors_total", "Clients closed for a bad frame.", "counter",
           st->protocol_errors);
    METRIC("derp_pool_buffers_live", "Packet buffers in use.", "gauge", s->pool.live);
    limits_metrics_format(s, out);
}
