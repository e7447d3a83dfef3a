/* derp_server_ws: DERP over WebSocket (binary messages carry the DERP byte
 * stream; a DERP frame may span messages). For proxies that mangle
 * "Upgrade: DERP". Reads unmask in place inside the connection's read
 * buffer; writes are framed into a staging buffer, at most 32 KiB per
 * message (the read limit of Tailscale's WebSocket library). This path
 * copies once more than raw DERP: it is the fallback transport. */
#include "internal.h"

#include "log.h"
#include "ws.h"

#include <errno.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

/* Staging for framed output: a few messages at a time. */
#define WS_OUT_MAX (256u << 10)
/* Bytes gathered per flush round before writing. */
#define WS_OUT_ROUND (128u << 10)

void derp__ws_init(struct derp_conn *c)
{
    c->is_ws = true;
    dc_buf_init(&c->ws_out, WS_OUT_MAX);
}

/* Handles a whole control frame (payload unmasked, len <= 125). */
static int ws_control(struct derp_conn *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    if (opcode == WS_OP_PING) {
        uint8_t hdr[WS_MAX_HDR_LEN];
        size_t h = ws_frame_header_encode(hdr, WS_OP_PONG, true, len, NULL);
        if (dc_buf_append(&c->ws_out, hdr, h) < 0 || dc_buf_append(&c->ws_out, p, len) < 0) {
            derp__conn_close(c, true, "websocket: output over its limit");
            return -1;
        }
        derp__conn_mark_dirty(c);
        return 0;
    }
    if (opcode == WS_OP_CLOSE) {
        derp__conn_close(c, false, "websocket closed by the client");
        return -1;
    }
    return 0; /* unsolicited pong: ignored */
}

static int ws_fail(struct derp_conn *c, const char *why)
{
    c->srv->stats.protocol_errors++;
    derp__conn_close(c, true, why);
    return -1;
}

/* Starts the next frame at raw; returns header bytes, 0 for more, -1 closed. */
static long ws_next_header(struct derp_conn *c, const uint8_t *raw, size_t avail)
{
    struct ws_frame_hdr h;
    char err[DC_ERR_LEN];
    ssize_t n = ws_frame_header_decode(raw, avail, true, WS_MAX_MESSAGE_LEN, &h, err);
    if (n < 0) {
        return ws_fail(c, err);
    }
    if (n == 0) {
        return 0;
    }
    if (h.opcode >= WS_OP_CLOSE) {
        if (avail - (size_t)n < h.payload_len) {
            return 0; /* control frames are handled whole */
        }
        uint8_t payload[WS_MAX_CONTROL_LEN];
        ws_unmask(payload, raw + n, (size_t)h.payload_len, h.mask_key, 0);
        if (ws_control(c, h.opcode, payload, (size_t)h.payload_len) < 0) {
            return -1;
        }
        return (long)(n + (ssize_t)h.payload_len);
    }
    if (h.opcode == WS_OP_TEXT) {
        return ws_fail(c, "websocket: text message on a DERP connection");
    }
    bool is_first = h.opcode == WS_OP_BINARY;
    if (is_first == c->ws_in_msg) {
        return ws_fail(c, "websocket: bad fragmentation");
    }
    c->ws_msg_len = is_first ? 0 : c->ws_msg_len;
    if (h.payload_len > WS_MAX_MESSAGE_LEN - c->ws_msg_len) {
        return ws_fail(c, "websocket: message over 32 KiB");
    }
    c->ws_msg_len += (uint32_t)h.payload_len;
    c->ws_in_msg = !h.fin;
    c->ws_remaining = (uint32_t)h.payload_len;
    c->ws_payload_off = 0;
    memcpy(c->ws_mask, h.mask_key, 4);
    return (long)n;
}

int derp__ws_decode(struct derp_conn *c)
{
    struct derp_pkt *rb = c->rbuf;
    size_t raw = c->ws_dec_len; /* raw bytes start here */
    while (raw < rb->len) {
        if (c->ws_remaining > 0) {
            size_t n = rb->len - raw < c->ws_remaining ? rb->len - raw : c->ws_remaining;
            ws_unmask(rb->data + c->ws_dec_len, rb->data + raw, n, c->ws_mask, c->ws_payload_off);
            c->ws_dec_len += (uint32_t)n;
            c->ws_payload_off += n;
            c->ws_remaining -= (uint32_t)n;
            raw += n;
            continue;
        }
        long h = ws_next_header(c, rb->data + raw, rb->len - raw);
        if (h < 0) {
            return -1;
        }
        if (h == 0) {
            break;
        }
        raw += (size_t)h;
    }
    /* Close the gap between decoded and still-raw bytes. */
    memmove(rb->data + c->ws_dec_len, rb->data + raw, rb->len - raw);
    rb->len = (uint32_t)(c->ws_dec_len + (rb->len - raw));
    return 0;
}

/* Bytes waiting to be framed: control bytes and queued packets. */
static size_t ws_pending(const struct derp_conn *c)
{
    size_t n = c->ctl.len - c->ctl_off;
    if (c->partial != NULL) {
        n += c->partial->len - c->partial_off;
    }
    const struct derp_queue *qs[2] = {&c->q_disco, &c->q_data};
    for (int qi = 0; qi < 2; qi++) {
        for (unsigned i = 0; i < qs[qi]->count; i++) {
            n += derp__queue_peek(qs[qi], i)->len;
        }
    }
    return n;
}

/* Copies up to len stream bytes into ws_out (space reserved by the caller). */
static void ws_copy_stream(struct derp_conn *c, size_t len)
{
    struct derp_server *s = c->srv;
    while (len > 0) {
        if (c->ctl.len > c->ctl_off) {
            size_t n = c->ctl.len - c->ctl_off < len ? c->ctl.len - c->ctl_off : len;
            memcpy(c->ws_out.p + c->ws_out.len, c->ctl.p + c->ctl_off, n);
            c->ws_out.len += n;
            c->ctl_off += n;
            len -= n;
            if (c->ctl_off == c->ctl.len) {
                dc_buf_reset(&c->ctl);
                c->ctl_off = 0;
            }
            continue;
        }
        if (c->partial == NULL) {
            struct derp_queue *q = c->q_disco.count > 0 ? &c->q_disco : &c->q_data;
            c->partial = derp__queue_pop(q);
            c->partial_off = 0;
        }
        size_t rest = c->partial->len - c->partial_off;
        size_t n = rest < len ? rest : len;
        memcpy(c->ws_out.p + c->ws_out.len, c->partial->data + c->partial_off, n);
        c->ws_out.len += n;
        c->partial_off += (uint32_t)n;
        len -= n;
        if (c->partial_off == c->partial->len) {
            s->stats.packets_sent++;
            s->stats.bytes_sent += c->partial->len - DERP_FRAME_HDR_LEN - DERP_KEY_LEN;
            derp__pkt_put(&s->pool, c->partial);
            c->partial = NULL;
            c->partial_off = 0;
        }
    }
}

/* Frames pending stream bytes into binary messages in ws_out. */
static int ws_frame_output(struct derp_conn *c)
{
    size_t pending = ws_pending(c);
    while (pending > 0 && c->ws_out.len < WS_OUT_ROUND) {
        size_t chunk = pending < WS_MAX_MESSAGE_LEN ? pending : WS_MAX_MESSAGE_LEN;
        uint8_t hdr[WS_MAX_HDR_LEN];
        size_t h = ws_frame_header_encode(hdr, WS_OP_BINARY, true, chunk, NULL);
        if (dc_buf_append(&c->ws_out, hdr, h) < 0) {
            return -ENOMEM;
        }
        size_t before = c->ws_out.len;
        /* Reserve chunk bytes, then fill them from the stream. */
        static const uint8_t zero[WS_MAX_MESSAGE_LEN];
        if (dc_buf_append(&c->ws_out, zero, chunk) < 0) {
            return -ENOMEM;
        }
        c->ws_out.len = before;
        ws_copy_stream(c, chunk);
        pending -= chunk;
    }
    return 0;
}

int derp__ws_flush(struct derp_conn *c)
{
    for (;;) {
        if (c->ws_out_off == c->ws_out.len) {
            dc_buf_reset(&c->ws_out);
            c->ws_out_off = 0;
            if (ws_pending(c) == 0) {
                return 0;
            }
            if (ws_frame_output(c) < 0) {
                return -ENOMEM;
            }
        }
        size_t w = 0;
        int rc =
            derp__conn_write_raw(c, c->ws_out.p + c->ws_out_off, c->ws_out.len - c->ws_out_off, &w);
        c->ws_out_off += w;
        if (rc < 0) {
            return rc;
        }
    }
}
