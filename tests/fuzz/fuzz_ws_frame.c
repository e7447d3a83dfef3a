/* fuzz_ws_frame: the WebSocket frame header codec and handshake answer
 * (common/ws.c) on arbitrary bytes.
 *
 * Input layout: byte 0 picks the payload limit (low 3 bits), the base offset
 * for unmasking (bits 3-4) and the split point; bytes 1.. are a stream of
 * frames, walked header by header with must_mask false and true. Every
 * accepted header must re-encode into one that decodes to the same fields,
 * and unmasking a payload in two pieces must equal unmasking it at once.
 * ws_accept_key runs on the first 24 bytes of the input. Payload copies are
 * heap buffers of the exact size (so ASan sees overreads) and are freed. */
#include "ws.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Payload limits selected by the low 3 bits of byte 0. */
static const uint64_t MAXES[8] = {
    0,     WS_MAX_CONTROL_LEN,      126,        65535, WS_MAX_MESSAGE_LEN,
    65536, (UINT64_C(1) << 32) + 1, UINT64_MAX,
};

/* Base payload offsets selected by bits 3-4 of byte 0 (the last one wraps). */
static const uint64_t BASES[4] = {0, 1, 6, UINT64_MAX - 1};

static bool opcode_known(uint8_t op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Checks what the contract promises about an accepted header. */
static void check_fields(const struct ws_frame_hdr *h, bool must_mask, uint64_t max)
{
    if (!opcode_known(h->opcode) || h->payload_len > max || h->payload_len >> 63 ||
        (must_mask && !h->masked)) {
        abort();
    }
    if (h->opcode >= WS_OP_CLOSE && (!h->fin || h->payload_len > WS_MAX_CONTROL_LEN)) {
        abort();
    }
}

/* Re-encodes h and decodes the result: same fields, whole header consumed. */
static void check_roundtrip(const struct ws_frame_hdr *h, bool must_mask, uint64_t max)
{
    uint8_t out[WS_MAX_HDR_LEN];
    size_t n = ws_frame_header_encode(out, h->opcode, h->fin, h->payload_len,
                                      h->masked ? h->mask_key : NULL);
    if (n < 2 || n > WS_MAX_HDR_LEN) {
        abort();
    }
    struct ws_frame_hdr again;
    char err[DC_ERR_LEN];
    if (ws_frame_header_decode(out, n, must_mask, max, &again, err) != (ssize_t)n) {
        abort();
    }
    if (again.fin != h->fin || again.opcode != h->opcode || again.masked != h->masked ||
        again.payload_len != h->payload_len ||
        (h->masked && memcmp(again.mask_key, h->mask_key, 4) != 0)) {
        abort();
    }
    /* Any shorter prefix of the encoding needs more bytes. */
    for (size_t len = 0; len < n; len++) {
        if (ws_frame_header_decode(out, len, must_mask, max, &again, err) != 0) {
            abort();
        }
    }
}

/* Unmasks src (len bytes) at once and in two pieces split at `split`, from
 * payload offset base; both results (and an in-place pass) must agree. */
static void check_unmask(const uint8_t *src, size_t len, const uint8_t key[static 4], uint64_t base,
                         size_t split)
{
    uint8_t *copy = malloc(len ? len : 1);
    uint8_t *whole = malloc(len ? len : 1);
    uint8_t *pieces = malloc(len ? len : 1);
    if (copy == NULL || whole == NULL || pieces == NULL) {
        goto out;
    }
    memcpy(copy, src, len);
    split = len ? split % (len + 1) : 0;
    ws_unmask(whole, copy, len, key, base);
    ws_unmask(pieces, copy, split, key, base);
    ws_unmask(pieces + split, copy + split, len - split, key, base + split);
    if (memcmp(whole, pieces, len) != 0) {
        abort();
    }
    /* In place, pieces in the other order. */
    ws_unmask(copy + split, copy + split, len - split, key, base + split);
    ws_unmask(copy, copy, split, key, base);
    if (memcmp(whole, copy, len) != 0) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        if ((whole[i] ^ src[i]) != key[(base + i) % 4]) {
            abort();
        }
    }
out:
    free(pieces);
    free(whole);
    free(copy);
}

/* Walks the frames in buf: decode a header, check it, unmask the payload
 * bytes present, skip them, repeat until an error or a short header. */
static void walk(const uint8_t *buf, size_t len, bool must_mask, uint8_t sel)
{
    uint64_t max = MAXES[sel & 7];
    uint64_t base = BASES[(sel >> 3) & 3];
    size_t off = 0;
    while (off < len) {
        struct ws_frame_hdr h;
        char err[DC_ERR_LEN];
        err[0] = '\0';
        ssize_t n = ws_frame_header_decode(buf + off, len - off, must_mask, max, &h, err);
        if (n < 0) {
            /* An error names itself and is one of the documented codes. */
            if ((n != -EPROTO && n != -EMSGSIZE) || err[0] == '\0') {
                abort();
            }
            return;
        }
        if ((size_t)n > len - off || (n > 0 && (n < 2 || n > WS_MAX_HDR_LEN))) {
            abort();
        }
        if (n == 0) {
            return;
        }
        check_fields(&h, must_mask, max);
        check_roundtrip(&h, must_mask, max);
        off += (size_t)n;
        /* The rest of the input, whether or not it all belongs to this frame. */
        static const uint8_t fixed_key[4] = {0xde, 0xad, 0xbe, 0xef};
        check_unmask(buf + off, len - off, h.masked ? h.mask_key : fixed_key, base, sel);
        size_t avail = len - off;
        off += h.payload_len < avail ? (size_t)h.payload_len : avail;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1) {
        walk(data + 1, size - 1, false, data[0]);
        walk(data + 1, size - 1, true, data[0]);
    }

    size_t klen = size < 24 ? size : 24;
    uint8_t *key = malloc(klen ? klen : 1);
    if (key == NULL) {
        return 0;
    }
    memcpy(key, data, klen);
    char out[WS_ACCEPT_LEN];
    struct dc_span s = {key, klen};
    int r = ws_accept_key(s, out);
    if (r == 0) {
        /* 28 base64 characters ending in one '=' (20-byte digest), NUL. */
        if (klen != 24 || strlen(out) != WS_ACCEPT_LEN - 1 || out[WS_ACCEPT_LEN - 2] != '=') {
            abort();
        }
    } else if (r != -EINVAL) {
        abort();
    }
    free(key);
    return 0;
}
