#include "derp_client.h"

#include "bytes.h"
#include "derp_frame.h"
#include "http.h"
#include "loop.h"
#include "net.h"
#include "tls.h"
#include "ws.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
/* Sec-WebSocket-Key: 16 random bytes, base64 (24 characters) plus NUL. */
#define WS_NONCE_LEN   16
#define WS_KEY_BUF_LEN 25

_Static_assert(DERP_CLIENT_WS_RAW_LEN >= WS_MAX_HDR_LEN + WS_MAX_CONTROL_LEN,
               "a whole control frame must fit the raw buffer");
_Static_assert(DERP_CLIENT_WS_WBUF_LEN >= WS_MAX_HDR_LEN + WS_MAX_MESSAGE_LEN,
               "a whole message must fit the write buffer");

struct derp_client {
    int fd;                  /* owned */
    SSL *ssl;                /* owned; NULL for plain HTTP */
    struct derp_keypair key; /* wiped on free */
    uint8_t server_key[DERP_KEY_LEN];
    uint8_t *rbuf; /* owned, DERP_CLIENT_RBUF_LEN; DERP bytes (unframed) */
    size_t rlen;   /* bytes buffered */
    size_t roff;   /* bytes of rbuf already returned */
    uint8_t *wbuf; /* owned, DERP_CLIENT_WBUF_LEN; DERP bytes (unframed) */
    size_t wlen;
    /* WebSocket layer, used only once is_ws is set (after the 101). */
    bool is_ws;              /* DERP bytes travel in WebSocket binary messages */
    bool ws_closed;          /* the server sent a close frame: every read is EOF */
    bool ws_in_msg;          /* inside a fragmented message (continuations expected) */
    uint8_t *ws_raw;         /* owned, DERP_CLIENT_WS_RAW_LEN; frames as read from the wire */
    size_t ws_rlen;          /* bytes in ws_raw */
    size_t ws_roff;          /* bytes of ws_raw already consumed */
    uint64_t ws_left;        /* payload bytes of the current data frame not yet copied out */
    uint8_t *ws_wbuf;        /* owned, DERP_CLIENT_WS_WBUF_LEN; masked frames on their way out */
    char ws_err[DC_ERR_LEN]; /* why the WebSocket layer failed; "" when it did not */
};

int derp_url_parse(const char *url, bool *is_tls, char *host, size_t host_len, uint16_t *port,
                   char *path, size_t path_len, char *err)
{
    const char *p = url;
    *is_tls = true;
    if (strncmp(p, "https://", 8) == 0) {
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        *is_tls = false;
        p += 7;
    } else if (strstr(p, "://") != NULL) {
        return dc_err_set(err, -EINVAL, "url: scheme must be http or https: `%s'", url);
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *rest = p + auth_len;
    if (auth_len == 0 || auth_len >= 300) {
        return dc_err_set(err, -EINVAL, "url: missing or overlong host: `%s'", url);
    }
    char auth[300];
    memcpy(auth, p, auth_len);
    auth[auth_len] = '\0';
    *port = *is_tls ? 443 : 80;
    bool has_port = auth[0] == '['
                        ? strstr(auth, "]:") != NULL
                        : strchr(auth, ':') != NULL && strchr(auth, ':') == strrchr(auth, ':');
    if (auth[0] != '[' && strchr(auth, ':') != strrchr(auth, ':')) {
        return dc_err_set(err, -EINVAL, "url: an IPv6 host needs brackets: `%s'", url);
    }
    if (has_port) {
        if (dc_net_split_hostport(auth, host, host_len, port, NULL) < 0 || *port == 0 ||
            host[0] == '\0') {
            return dc_err_set(err, -EINVAL, "url: bad host or port: `%s'", url);
        }
    } else {
        const char *h = auth;
        size_t hl = auth_len;
        if (auth[0] == '[') {
            if (auth[auth_len - 1] != ']') {
                return dc_err_set(err, -EINVAL, "url: bad IPv6 host: `%s'", url);
            }
            h++;
            hl -= 2;
        }
        if (hl == 0 || hl >= host_len) {
            return dc_err_set(err, -EINVAL, "url: bad host: `%s'", url);
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    if (*rest == '\0' || *rest == '?' || *rest == '#' || strcmp(rest, "/") == 0) {
        rest = "/derp";
    }
    size_t rl = strcspn(rest, "#");
    if (rl >= path_len) {
        return dc_err_set(err, -EINVAL, "url: path too long: `%s'", url);
    }
    memcpy(path, rest, rl);
    path[rl] = '\0';
    return 0;
}

/* ---- raw I/O (socket or TLS) ---- */

static long transport_read(struct derp_client *c, uint8_t *buf, size_t cap)
{
    if (c->ssl != NULL) {
        size_t got = 0;
        int rc = SSL_read_ex(c->ssl, buf, cap, &got);
        if (rc == 1) {
            return (long)got;
        }
        int e = SSL_get_error(c->ssl, rc);
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN) {
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EAGAIN)) {
            return -ETIMEDOUT;
        }
        return -ECONNRESET;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, cap, 0);
        if (n >= 0) {
            return (long)n;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
}

static int transport_write_all(struct derp_client *c, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t w = 0;
        if (c->ssl != NULL) {
            if (SSL_write_ex(c->ssl, p, len, &w) != 1) {
                ERR_clear_error();
                return -EPIPE;
            }
        } else {
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno == EAGAIN ? -ETIMEDOUT : -errno;
            }
            w = (size_t)n;
        }
        p += w;
        len -= w;
    }
    return 0;
}

/* ---- WebSocket layer: DERP bytes in binary messages (RFC 6455) ---- */

static int ws_fail(struct derp_client *c, int code, const char *why)
{
    return dc_err_set(c->ws_err, code, "%s", why);
}

/* Builds one masked frame (mask fresh from libsodium) at out, which has room
 * for WS_MAX_HDR_LEN + len bytes. Returns the frame's length. */
static size_t ws_frame_build(uint8_t *out, uint8_t opcode, const uint8_t *p, size_t len)
{
    uint8_t mask[4];
    randombytes_buf(mask, sizeof(mask));
    size_t h = ws_frame_header_encode(out, opcode, true, len, mask);
    ws_unmask(out + h, p, len, mask, 0);
    return h + len;
}

/* Wraps len DERP bytes into binary messages of at most WS_MAX_MESSAGE_LEN
 * and writes them, batching several frames per write. */
static int ws_write_all(struct derp_client *c, const uint8_t *p, size_t len)
{
    size_t used = 0;
    while (len > 0) {
        size_t n = len < WS_MAX_MESSAGE_LEN ? len : WS_MAX_MESSAGE_LEN;
        if (DERP_CLIENT_WS_WBUF_LEN - used < WS_MAX_HDR_LEN + n) {
            int rc = transport_write_all(c, c->ws_wbuf, used);
            if (rc < 0) {
                return rc;
            }
            used = 0;
        }
        used += ws_frame_build(c->ws_wbuf + used, WS_OP_BINARY, p, n);
        p += n;
        len -= n;
    }
    return used > 0 ? transport_write_all(c, c->ws_wbuf, used) : 0;
}

/* Handles a whole control frame: ping gets its pong, pong is ignored, close is EOF. */
static int ws_control(struct derp_client *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    if (opcode == WS_OP_PING) {
        uint8_t out[WS_MAX_HDR_LEN + WS_MAX_CONTROL_LEN];
        return transport_write_all(c, out, ws_frame_build(out, WS_OP_PONG, p, len));
    }
    if (opcode == WS_OP_CLOSE) {
        c->ws_closed = true;
        return ws_fail(c, -ECONNRESET, "connection closed by the server (WebSocket close)");
    }
    return 0;
}

/* Takes one step over ws_raw without I/O: copies payload bytes into buf
 * (returns > 0), consumes a header or control frame (0), needs more raw bytes
 * (-EAGAIN), or fails (-EPROTO / -EMSGSIZE with ws_err, -ECONNRESET on close). */
static long ws_step(struct derp_client *c, uint8_t *buf, size_t cap)
{
    const uint8_t *raw = c->ws_raw + c->ws_roff;
    size_t avail = c->ws_rlen - c->ws_roff;
    if (c->ws_left > 0) {
        if (avail == 0) {
            return -EAGAIN;
        }
        size_t n = avail < cap ? avail : cap;
        n = n < c->ws_left ? n : (size_t)c->ws_left;
        memcpy(buf, raw, n);
        c->ws_roff += n;
        c->ws_left -= n;
        return (long)n;
    }
    struct ws_frame_hdr h;
    ssize_t hl =
        ws_frame_header_decode(raw, avail, false, DERP_CLIENT_WS_MAX_FRAME_LEN, &h, c->ws_err);
    if (hl <= 0) {
        return hl == 0 ? -EAGAIN : (long)hl;
    }
    if (h.masked) {
        return ws_fail(c, -EPROTO, "websocket: the server masked a frame");
    }
    if (h.opcode >= WS_OP_CLOSE) {
        if (avail - (size_t)hl < h.payload_len) {
            return -EAGAIN;
        }
        c->ws_roff += (size_t)hl + (size_t)h.payload_len;
        return ws_control(c, h.opcode, raw + hl, (size_t)h.payload_len);
    }
    if (h.opcode == WS_OP_TEXT) {
        return ws_fail(c, -EPROTO, "websocket: text message on a DERP connection");
    }
    if ((h.opcode == WS_OP_BINARY) == c->ws_in_msg) {
        return ws_fail(c, -EPROTO, "websocket: bad fragmentation");
    }
    c->ws_in_msg = !h.fin;
    c->ws_left = h.payload_len;
    c->ws_roff += (size_t)hl;
    return 0;
}

/* Reports whether ws_step() can make progress without reading the socket. */
static bool ws_ready(const struct derp_client *c)
{
    size_t avail = c->ws_rlen - c->ws_roff;
    if (c->ws_closed || (avail > 0 && c->ws_left > 0)) {
        return true;
    }
    struct ws_frame_hdr h;
    ssize_t hl = ws_frame_header_decode(c->ws_raw + c->ws_roff, avail, false,
                                        DERP_CLIENT_WS_MAX_FRAME_LEN, &h, NULL);
    if (hl <= 0) {
        return hl < 0;
    }
    return h.opcode < WS_OP_CLOSE || avail - (size_t)hl >= h.payload_len;
}

/* Like transport_read(), for the DERP bytes inside the server's messages.
 * Reads the socket at most once, and only when nothing was ready (the caller
 * polled); -ETIMEDOUT means "nothing yet, poll again". */
static long ws_read(struct derp_client *c, uint8_t *buf, size_t cap)
{
    bool may_read = !ws_ready(c);
    for (;;) {
        if (c->ws_closed) {
            return -ECONNRESET;
        }
        long n = ws_step(c, buf, cap);
        if (n == 0) {
            continue;
        }
        if (n != -EAGAIN) {
            return n;
        }
        if (!may_read) {
            return -ETIMEDOUT;
        }
        may_read = false;
        /* What is left is a partial header or control frame: cheap to move. */
        memmove(c->ws_raw, c->ws_raw + c->ws_roff, c->ws_rlen - c->ws_roff);
        c->ws_rlen -= c->ws_roff;
        c->ws_roff = 0;
        long got = transport_read(c, c->ws_raw + c->ws_rlen, DERP_CLIENT_WS_RAW_LEN - c->ws_rlen);
        if (got <= 0) {
            return got;
        }
        c->ws_rlen += (size_t)got;
    }
}

/* ---- DERP byte I/O: plain, or through the WebSocket layer ---- */

static long client_read(struct derp_client *c, uint8_t *buf, size_t cap)
{
    if (c->is_ws) {
        return ws_read(c, buf, cap);
    }
    return transport_read(c, buf, cap);
}

static int client_write_all(struct derp_client *c, const uint8_t *p, size_t len)
{
    if (c->is_ws) {
        return ws_write_all(c, p, len);
    }
    return transport_write_all(c, p, len);
}

/* The error text for rc: the WebSocket layer's reason when it has one. */
static const char *client_strerror(const struct derp_client *c, int rc)
{
    return c->ws_err[0] != '\0' ? c->ws_err : dc_strerror(rc);
}

int derp_client_flush(struct derp_client *c)
{
    int rc = client_write_all(c, c->wbuf, c->wlen);
    c->wlen = 0;
    return rc;
}

/* Reports whether the next client_read() can return without waiting. */
static bool client_transport_pending(const struct derp_client *c)
{
    return (c->ssl != NULL && SSL_pending(c->ssl) > 0) || (c->is_ws && ws_ready(c));
}

static bool client_has_buffered(const struct derp_client *c)
{
    return c->rlen > c->roff || client_transport_pending(c);
}

/* Makes sure at least need bytes are buffered past roff; waits up to timeout_ms. */
static int client_fill(struct derp_client *c, size_t need, int timeout_ms)
{
    if (need > DERP_CLIENT_RBUF_LEN) {
        return -EMSGSIZE;
    }
    if (c->roff > 0 && c->rlen - c->roff < need && c->roff + need > DERP_CLIENT_RBUF_LEN) {
        memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
        c->rlen -= c->roff;
        c->roff = 0;
    }
    while (c->rlen - c->roff < need) {
        if (!client_has_buffered(c) || c->rlen == c->roff) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            if (!client_transport_pending(c)) {
                int n = poll(&pfd, 1, timeout_ms);
                if (n == 0) {
                    return -ETIMEDOUT;
                }
                if (n < 0 && errno != EINTR) {
                    return -errno;
                }
            }
        }
        long n = client_read(c, c->rbuf + c->rlen, DERP_CLIENT_RBUF_LEN - c->rlen);
        if (n == -ETIMEDOUT) {
            continue;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        if (n < 0) {
            return (int)n;
        }
        c->rlen += (size_t)n;
    }
    return 0;
}

/* Reads one whole frame; *payload points into rbuf until the next read. */
static int client_read_frame(struct derp_client *c, uint8_t *type, const uint8_t **payload,
                             uint32_t *len, int timeout_ms)
{
    if (c->roff == c->rlen) {
        c->roff = c->rlen = 0;
    }
    int rc = client_fill(c, DERP_FRAME_HDR_LEN, timeout_ms);
    if (rc < 0) {
        return rc;
    }
    (void)derp_frame_header_decode(c->rbuf + c->roff, c->rlen - c->roff, type, len);
    if (*len > DERP_CLIENT_RBUF_LEN - DERP_FRAME_HDR_LEN) {
        return -EMSGSIZE;
    }
    rc = client_fill(c, DERP_FRAME_HDR_LEN + (size_t)*len, timeout_ms);
    if (rc < 0) {
        return rc;
    }
    *payload = c->rbuf + c->roff + DERP_FRAME_HDR_LEN;
    c->roff += DERP_FRAME_HDR_LEN + *len;
    return 0;
}

/* ---- handshake ---- */

/* Checks the WebSocket half of a 101 answer (RFC 6455 4.1): the upgrade
 * token, the accept value computed from our key, and the derp subprotocol. */
static int client_ws_check(const struct http_response *resp, const char *ws_key, char *err)
{
    if (!http_headers_have_token(resp->headers, resp->num_headers, "Upgrade", "websocket")) {
        return dc_err_set(err, -EPROTO, "http: the 101 answer lacks `Upgrade: websocket'");
    }
    char want[WS_ACCEPT_LEN];
    struct dc_span key = {.p = (const uint8_t *)ws_key, .len = strlen(ws_key)};
    if (ws_accept_key(key, want) < 0) {
        return dc_err_set(err, -EINVAL, "handshake: cannot compute Sec-WebSocket-Accept");
    }
    const struct dc_span *acc =
        http_header_get(resp->headers, resp->num_headers, "Sec-WebSocket-Accept");
    if (acc == NULL || acc->len != strlen(want) || memcmp(acc->p, want, acc->len) != 0) {
        return dc_err_set(err, -EPROTO, "handshake: wrong Sec-WebSocket-Accept: `%.*s' (want `%s')",
                          acc != NULL ? (int)(acc->len < 64 ? acc->len : 64) : 0,
                          acc != NULL ? (const char *)acc->p : "", want);
    }
    const struct dc_span *proto =
        http_header_get(resp->headers, resp->num_headers, "Sec-WebSocket-Protocol");
    if (proto == NULL || proto->len != 4 || memcmp(proto->p, "derp", 4) != 0) {
        return dc_err_set(err, -EPROTO,
                          "handshake: the server did not pick the `derp' subprotocol: `%.*s'",
                          proto != NULL ? (int)(proto->len < 64 ? proto->len : 64) : 0,
                          proto != NULL ? (const char *)proto->p : "");
    }
    return 0;
}

/* Switches to the WebSocket layer; what followed the 101 is already framed. */
static int client_ws_start(struct derp_client *c, char *err)
{
    size_t left = c->rlen - c->roff;
    if (left > DERP_CLIENT_WS_RAW_LEN) {
        return dc_err_set(err, -EPROTO, "handshake: %zu bytes after the 101 answer", left);
    }
    memcpy(c->ws_raw, c->rbuf + c->roff, left);
    c->ws_rlen = left;
    c->ws_roff = 0;
    c->rlen = c->roff = 0;
    c->is_ws = true;
    return 0;
}

/* Formats the Host header's value into out: brackets around an IPv6 host,
 * ":port" unless port is 0 (the scheme's default). Returns 0 or -EINVAL. */
static int client_format_host(char *out, size_t cap, const char *host, uint16_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    int n = port == 0 ? snprintf(out, cap, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "")
                      : snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

/* Formats the upgrade header lines into out: Upgrade: websocket with its
 * Sec-WebSocket-* fields when ws_key is set, else Upgrade: DERP (plus
 * Derp-Fast-Start when asked). Returns 0 or -EINVAL. */
static int client_format_upgrade(char *out, size_t cap, const char *ws_key, bool fast_start)
{
    int n = ws_key != NULL ? snprintf(out, cap,
                                      "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                      "Sec-WebSocket-Protocol: derp\r\nSec-WebSocket-Key: %s\r\n",
                                      ws_key)
                           : snprintf(out, cap, "Upgrade: DERP\r\n%s",
                                      fast_start ? DERP_HDR_FAST_START ": 1\r\n" : "");
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

static int client_http_upgrade(struct derp_client *c, const char *host, uint16_t port, bool is_tls,
                               const char *path, const struct derp_client_opts *o, char *err)
{
    char ws_key[WS_KEY_BUF_LEN] = "";
    if (o->websocket) {
        uint8_t nonce[WS_NONCE_LEN];
        randombytes_buf(nonce, sizeof(nonce));
        EVP_EncodeBlock((unsigned char *)ws_key, nonce, sizeof(nonce));
    }
    bool fast_start = o->fast_start && !o->websocket; /* a WebSocket always answers 101 */
    uint16_t host_port = port == (is_tls ? 443 : 80) ? 0 : port;
    char hosthdr[320];
    char upgrade[192];
    char req[1280];
    int n = -1;
    if (client_format_host(hosthdr, sizeof(hosthdr), host, host_port) == 0 &&
        client_format_upgrade(upgrade, sizeof(upgrade), o->websocket ? ws_key : NULL, fast_start) ==
            0) {
        n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: derp-controller\r\n"
                     "Connection: Upgrade\r\n%s\r\n",
                     path, hosthdr, upgrade);
    }
    if (n < 0 || (size_t)n >= sizeof(req)) {
        return dc_err_set(err, -EINVAL, "http: request too long");
    }
    int rc = client_write_all(c, (const uint8_t *)req, (size_t)n);
    if (rc < 0) {
        return dc_err_set(err, rc, "io: sending the HTTP request: %s", dc_strerror(rc));
    }
    if (fast_start) {
        return 0;
    }
    for (;;) {
        struct http_response resp;
        char why[DC_ERR_LEN];
        ssize_t h = http_response_parse((const char *)c->rbuf, c->rlen, &resp, why);
        if (h < 0) {
            return dc_err_set(err, -EPROTO, "http: bad response: %s", why);
        }
        if (h > 0) {
            if (resp.status != 101) {
                return dc_err_set(err, -EPROTO, "http: unexpected status %d %.*s (want 101)",
                                  resp.status, (int)resp.reason.len, (const char *)resp.reason.p);
            }
            c->roff = (size_t)h;
            if (!o->websocket) {
                return 0;
            }
            rc = client_ws_check(&resp, ws_key, err);
            return rc < 0 ? rc : client_ws_start(c, err);
        }
        rc = client_fill(c, c->rlen + 1, o->timeout_ms);
        if (rc < 0) {
            return dc_err_set(err, rc, "%s waiting for the HTTP response: %s",
                              rc == -ETIMEDOUT ? "timeout:" : "http:", dc_strerror(rc));
        }
    }
}

static int client_login(struct derp_client *c, const struct derp_client_opts *o, char *err)
{
    uint8_t type;
    const uint8_t *payload;
    uint32_t len;
    int rc = client_read_frame(c, &type, &payload, &len, o->timeout_ms);
    if (rc < 0) {
        return dc_err_set(err, rc, "%s waiting for ServerKey: %s",
                          rc == -ETIMEDOUT ? "timeout:" : "handshake:", client_strerror(c, rc));
    }
    if (type != DERP_FRAME_SERVER_KEY ||
        derp_frame_server_key_decode(payload, len, c->server_key) < 0) {
        return dc_err_set(err, -EPROTO, "handshake: invalid server greeting (frame type %u)", type);
    }
    struct derp_client_info ci = {.version = DERP_PROTOCOL_VERSION, .can_ack_pings = true};
    ci.is_prober = o->is_prober;
    ci.has_mesh_key = o->has_mesh_key;
    memcpy(ci.mesh_key, o->mesh_key, sizeof(ci.mesh_key));
    snprintf(ci.app_name, sizeof(ci.app_name), "%s", o->app_name != NULL ? o->app_name : "");
    char json[DERP_INFO_JSON_MAX];
    int jn = derp_client_info_format(&ci, json, sizeof(json));
    sodium_memzero(ci.mesh_key, sizeof(ci.mesh_key));
    if (jn < 0) {
        return dc_err_set(err, jn, "handshake: cannot format ClientInfo");
    }
    uint8_t frame[DERP_KEY_LEN + DERP_BOX_SEAL_OVERHEAD + DERP_INFO_JSON_MAX];
    memcpy(frame, c->key.pub, DERP_KEY_LEN);
    size_t boxed = derp_box_seal(&c->key, c->server_key, (const uint8_t *)json, (size_t)jn,
                                 frame + DERP_KEY_LEN);
    sodium_memzero(json, sizeof(json));
    if (boxed == 0) {
        return dc_err_set(err, -EPROTO, "handshake: server key refused by crypto_box");
    }
    rc = derp_client_send_frame(c, DERP_FRAME_CLIENT_INFO, frame, DERP_KEY_LEN + boxed);
    if (rc == 0) {
        rc = derp_client_flush(c);
    }
    if (rc < 0) {
        return dc_err_set(err, rc, "io: sending ClientInfo: %s", dc_strerror(rc));
    }
    for (;;) {
        rc = client_read_frame(c, &type, &payload, &len, o->timeout_ms);
        if (rc < 0) {
            return dc_err_set(err, rc, "%s waiting for ServerInfo: %s",
                              rc == -ETIMEDOUT ? "timeout:" : "handshake:", client_strerror(c, rc));
        }
        if (type == DERP_FRAME_SERVER_INFO) {
            break;
        }
        if (type != DERP_FRAME_SERVER_KEY) { /* fast start: a ServerKey may still come first */
            return dc_err_set(err, -EPROTO, "handshake: got frame type %u instead of ServerInfo",
                              type);
        }
    }
    uint8_t msg[DERP_INFO_JSON_MAX];
    if (len > sizeof(msg) + DERP_BOX_SEAL_OVERHEAD) {
        return dc_err_set(err, -EPROTO, "handshake: ServerInfo too long (%u bytes)", len);
    }
    long mlen = derp_box_open(&c->key, c->server_key, payload, len, msg);
    if (mlen < 0) {
        return dc_err_set(err, -EPROTO, "handshake: ServerInfo box does not open");
    }
    struct derp_server_info si;
    char why[DC_ERR_LEN];
    if (derp_server_info_parse((const char *)msg, (size_t)mlen, &si, why) < 0) {
        return dc_err_set(err, -EPROTO, "handshake: %s", why);
    }
    return 0;
}

/* Sets o->timeout_ms for the next stage: the per-stage limit, cut to what
 * is left of the whole connect when there is an overall limit. */
static int client_stage_timeout(struct derp_client_opts *o, int stage_ms, uint64_t deadline,
                                const char *what, char *err)
{
    o->timeout_ms = stage_ms;
    if (deadline == 0) {
        return 0;
    }
    uint64_t now = dc_now_ms();
    if (now >= deadline) {
        return dc_err_set(err, -ETIMEDOUT, "timeout: no time left for %s", what);
    }
    if (deadline - now < (uint64_t)stage_ms) {
        o->timeout_ms = (int)(deadline - now);
    }
    return 0;
}

/* Records the leaf certificate's pin where the caller asked for it. */
static void client_record_pin(const struct derp_client *c, char *out)
{
    X509 *leaf = SSL_get1_peer_certificate(c->ssl);
    if (leaf != NULL && dc_tls_pin_from_x509(leaf, out) < 0) {
        out[0] = '\0';
    }
    X509_free(leaf);
}

static int client_tls(struct derp_client *c, const char *host, const struct derp_client_opts *o,
                      char *err)
{
    struct dc_tls_client_opts to = {.server_name = host,
                                    .verify_name = o->cert_name,
                                    .insecure_skip_verify = o->insecure_skip_verify,
                                    .pin = o->pin,
                                    .ca_file = o->ca_file};
    int rc = dc_tls_client_connect(c->fd, &to, o->timeout_ms, &c->ssl, err);
    if (rc == 0 && o->peer_pin != NULL) {
        client_record_pin(c, o->peer_pin);
    }
    return rc;
}

static int client_open(struct derp_client *c, struct derp_client_opts *o, char *err)
{
    bool is_tls;
    char host[256];
    char path[512];
    uint16_t port;
    int stage_ms = o->timeout_ms;
    uint64_t deadline = o->total_timeout_ms > 0 ? dc_now_ms() + (uint64_t)o->total_timeout_ms : 0;
    int rc = derp_url_parse(o->url, &is_tls, host, sizeof(host), &port, path, sizeof(path), err);
    if (rc < 0) {
        return rc;
    }
    (void)client_stage_timeout(o, stage_ms, deadline, "TCP", err);
    c->fd =
        dc_net_connect_tcp(o->dial_host != NULL ? o->dial_host : host, port, o->timeout_ms, err);
    if (c->fd < 0) {
        return c->fd;
    }
    if (dc_net_set_nodelay(c->fd) < 0) {
        /* not fatal: only latency suffers */
    }
    struct timeval tv = {.tv_sec = o->timeout_ms / 1000, .tv_usec = (o->timeout_ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (is_tls) {
        rc = client_stage_timeout(o, stage_ms, deadline, "the TLS handshake", err);
        if (rc == 0) {
            rc = client_tls(c, host, o, err);
        }
        if (rc < 0) {
            return rc;
        }
    }
    rc = client_stage_timeout(o, stage_ms, deadline, "the HTTP upgrade", err);
    if (rc == 0) {
        rc = client_http_upgrade(c, host, port, is_tls, path, o, err);
    }
    if (rc == 0) {
        rc = client_stage_timeout(o, stage_ms, deadline, "the DERP login", err);
    }
    return rc < 0 ? rc : client_login(c, o, err);
}

int derp_client_connect(const struct derp_client_opts *opts, struct derp_client **out, char *err)
{
    struct derp_client_opts o = *opts;
    if (o.peer_pin != NULL) {
        o.peer_pin[0] = '\0';
    }
    if (o.timeout_ms <= 0) {
        o.timeout_ms = DEFAULT_TIMEOUT_MS;
    }
    struct derp_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    c->fd = -1;
    c->rbuf = malloc(DERP_CLIENT_RBUF_LEN);
    c->wbuf = malloc(DERP_CLIENT_WBUF_LEN);
    if (o.websocket) {
        c->ws_raw = malloc(DERP_CLIENT_WS_RAW_LEN);
        c->ws_wbuf = malloc(DERP_CLIENT_WS_WBUF_LEN);
    }
    if (c->rbuf == NULL || c->wbuf == NULL ||
        (o.websocket && (c->ws_raw == NULL || c->ws_wbuf == NULL))) {
        derp_client_free(c);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    if (o.key != NULL) {
        c->key = *o.key;
    } else {
        derp_keypair_generate(&c->key);
    }
    int rc = client_open(c, &o, err);
    if (rc < 0) {
        derp_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void derp_client_free(struct derp_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->ssl != NULL) {
        dc_tls_close(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    derp_keypair_wipe(&c->key);
    free(c->rbuf);
    free(c->wbuf);
    free(c->ws_raw);
    free(c->ws_wbuf);
    free(c);
}

const uint8_t *derp_client_public_key(const struct derp_client *c)
{
    return c->key.pub;
}

const uint8_t *derp_client_server_key(const struct derp_client *c)
{
    return c->server_key;
}

int derp_client_fd(const struct derp_client *c)
{
    return c->fd;
}

static int client_queue(struct derp_client *c, const uint8_t *a, size_t alen, const uint8_t *b,
                        size_t blen)
{
    if (alen + blen > DERP_CLIENT_WBUF_LEN - c->wlen) {
        int rc = derp_client_flush(c);
        if (rc < 0) {
            return rc;
        }
        if (alen + blen > DERP_CLIENT_WBUF_LEN) {
            rc = client_write_all(c, a, alen);
            return rc < 0 ? rc : client_write_all(c, b, blen);
        }
    }
    memcpy(c->wbuf + c->wlen, a, alen);
    if (blen > 0) {
        memcpy(c->wbuf + c->wlen + alen, b, blen);
    }
    c->wlen += alen + blen;
    return 0;
}

int derp_client_send_frame(struct derp_client *c, uint8_t type, const uint8_t *payload, size_t len)
{
    if (len > UINT32_MAX) {
        return -EMSGSIZE;
    }
    uint8_t hdr[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(hdr, type, (uint32_t)len);
    return client_queue(c, hdr, sizeof(hdr), payload, len);
}

int derp_client_send(struct derp_client *c, const uint8_t dst[static DERP_KEY_LEN],
                     const uint8_t *pkt, size_t len)
{
    if (len > DERP_MAX_PACKET_LEN) {
        return -EMSGSIZE;
    }
    uint8_t hdr[DERP_FRAME_HDR_LEN + DERP_KEY_LEN];
    derp_frame_header_encode(hdr, DERP_FRAME_SEND_PACKET, (uint32_t)(DERP_KEY_LEN + len));
    memcpy(hdr + DERP_FRAME_HDR_LEN, dst, DERP_KEY_LEN);
    return client_queue(c, hdr, sizeof(hdr), pkt, len);
}

int derp_client_ping(struct derp_client *c, const uint8_t data[static DERP_PING_LEN])
{
    return derp_client_send_frame(c, DERP_FRAME_PING, data, DERP_PING_LEN);
}

int derp_client_note_preferred(struct derp_client *c, bool preferred)
{
    uint8_t v = preferred ? 1 : 0;
    return derp_client_send_frame(c, DERP_FRAME_NOTE_PREFERRED, &v, 1);
}

static int decode_msg(struct derp_client_msg *m, uint8_t type, const uint8_t *p, uint32_t len,
                      char *err)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->data = p;
    m->len = len;
    switch (type) {
    case DERP_FRAME_RECV_PACKET:
        if (len < DERP_KEY_LEN) {
            return dc_err_set(err, -EPROTO, "handshake: short RecvPacket (%u bytes)", len);
        }
        memcpy(m->key, p, DERP_KEY_LEN);
        m->data = p + DERP_KEY_LEN;
        m->len = len - DERP_KEY_LEN;
        break;
    case DERP_FRAME_PEER_GONE:
    case DERP_FRAME_PEER_PRESENT:
        if (len < DERP_KEY_LEN) {
            return dc_err_set(err, -EPROTO, "short peer frame (%u bytes)", len);
        }
        memcpy(m->key, p, DERP_KEY_LEN);
        m->reason = type == DERP_FRAME_PEER_GONE && len > DERP_KEY_LEN ? p[DERP_KEY_LEN] : 0;
        break;
    case DERP_FRAME_RESTARTING:
        if (len >= 8) {
            m->reconnect_in_ms = dc_get_be32(p);
            m->try_for_ms = dc_get_be32(p + 4);
        }
        break;
    default:
        break;
    }
    return 0;
}

int derp_client_recv(struct derp_client *c, struct derp_client_msg *msg, int timeout_ms, char *err)
{
    int rc = derp_client_flush(c);
    if (rc < 0) {
        return dc_err_set(err, rc, "io: write: %s", dc_strerror(rc));
    }
    uint8_t type;
    const uint8_t *payload;
    uint32_t len;
    rc = client_read_frame(c, &type, &payload, &len, timeout_ms);
    if (rc < 0) {
        return dc_err_set(err, rc, "%s %s", rc == -ETIMEDOUT ? "timeout:" : "io:",
                          rc == -ECONNRESET ? "connection closed by the server"
                                            : client_strerror(c, rc));
    }
    return decode_msg(msg, type, payload, len, err);
}
