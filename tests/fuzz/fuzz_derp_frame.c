/* fuzz_derp_frame: derp_frame_next() on arbitrary client byte streams.
 *
 * Input: byte 0 picks k = 1 + (byte & 7); the next k bytes are read sizes
 * (1 + byte, used in turn); the rest is the stream. The stream is fed to the
 * reader the way the server reads a socket: append one read to the
 * connection buffer, then take frames until the reader wants more. Each
 * buffer handed to the reader is a heap copy of exactly the buffered bytes,
 * so any read past len shows under ASan. Two modes run on every input: a
 * logged-in reader, and a login reader that switches to logged-in after its
 * first frame (as the server does after ClientInfo).
 *
 * It aborts when a promise breaks: consumed <= len; a frame's payload lies
 * inside the buffer right after its header and within its type's limits;
 * bytes consumed without a frame are an unknown frame's header or skipped
 * body; errors are -EMSGSIZE/-EPROTO with a reason and match the header; and
 * the frames, the final position and the error are the same whether the
 * stream arrives in chunks or all at once. Everything is freed. */
#include "derp_frame.h"

#include "bytes.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One frame the reader returned: its type, length and payload offset in the stream. */
struct event {
    uint8_t type;
    uint32_t len;
    size_t off;
};

/* What one run over a stream produced. */
struct outcome {
    struct event *ev; /* owned */
    size_t n_ev;
    size_t cap_ev;
    size_t pos; /* stream bytes consumed */
    long err;   /* 0, or the error that ended the run */
};

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* The payload bounds the reader promises for a frame it returns. */
static void frame_limits(bool is_login, uint8_t type, uint32_t *min_len, uint32_t *max_len)
{
    *min_len = 0;
    *max_len = DERP_MAX_CLIENT_INFO_LEN;
    if (is_login) {
        if (type == DERP_FRAME_CLIENT_INFO) {
            *min_len = DERP_KEY_LEN + DERP_NONCE_LEN;
        }
        return;
    }
    switch (type) {
    case DERP_FRAME_SEND_PACKET:
        *min_len = DERP_KEY_LEN;
        *max_len = DERP_KEY_LEN + DERP_MAX_PACKET_LEN;
        break;
    case DERP_FRAME_FORWARD_PACKET:
        *min_len = 2 * DERP_KEY_LEN;
        *max_len = 2 * DERP_KEY_LEN + DERP_MAX_PACKET_LEN;
        break;
    case DERP_FRAME_NOTE_PREFERRED:
    case DERP_FRAME_PING:
    case DERP_FRAME_CLOSE_PEER:
    case DERP_FRAME_WATCH_CONNS:
        *max_len = DERP_MAX_PING_LEN;
        break;
    default:
        *max_len = 0; /* never returned: skipped */
        *min_len = 1;
        break;
    }
}

static void add_event(struct outcome *o, uint8_t type, uint32_t len, size_t off)
{
    if (o->n_ev == o->cap_ev) {
        size_t cap = o->cap_ev == 0 ? 16 : o->cap_ev * 2;
        struct event *ev = realloc(o->ev, cap * sizeof(*ev));
        check(ev != NULL);
        o->ev = ev;
        o->cap_ev = cap;
    }
    o->ev[o->n_ev++] = (struct event){.type = type, .len = len, .off = off};
}

/* Takes frames from buf[0..len) (a copy of the stream from o->pos) until the
 * reader wants more or fails; checks every answer. Returns false on error. */
static bool drain(struct derp_frame_reader *r, bool is_login_first, const uint8_t *buf, size_t len,
                  struct outcome *o)
{
    size_t used = 0;
    for (;;) {
        const uint8_t *p = buf + used;
        size_t avail = len - used;
        uint64_t skip_before = r->skip;
        bool was_login = r->is_login;
        struct derp_frame f = {0};
        bool has_frame = false;
        const char *why = NULL;
        long n = derp_frame_next(r, p, avail, &f, &has_frame, &why);
        if (n < 0) {
            check(n == -EMSGSIZE || n == -EPROTO);
            check(why != NULL && why[0] != '\0');
            check(!has_frame && skip_before == 0 && avail >= DERP_FRAME_HDR_LEN);
            uint32_t min_len, max_len, plen = dc_get_be32(p + 1);
            frame_limits(was_login, p[0], &min_len, &max_len);
            check(n == -EMSGSIZE ? plen > max_len : plen < min_len);
            o->err = n;
            return false;
        }
        check((size_t)n <= avail);
        if (has_frame) {
            check(skip_before == 0 && (size_t)n >= DERP_FRAME_HDR_LEN);
            check(f.payload == p + DERP_FRAME_HDR_LEN);
            check((size_t)n == DERP_FRAME_HDR_LEN + (size_t)f.len);
            check(f.type == p[0] && f.len == dc_get_be32(p + 1));
            uint32_t min_len, max_len;
            frame_limits(was_login, f.type, &min_len, &max_len);
            check(f.len >= min_len && f.len <= max_len);
            add_event(o, f.type, f.len, o->pos + DERP_FRAME_HDR_LEN);
            if (is_login_first) {
                r->is_login = false;
            }
        } else if (n > 0) {
            if (skip_before > 0) {
                check((uint64_t)n <= skip_before && r->skip == skip_before - (uint64_t)n);
            } else {
                /* An unknown frame's header; its body is skipped next. */
                check(!was_login && n == DERP_FRAME_HDR_LEN);
                check(r->skip == dc_get_be32(p + 1));
            }
        } else {
            /* Need more: a partial header, a partial body, or nothing to skip. */
            check(skip_before > 0 ? avail == 0
                                  : avail < DERP_FRAME_HDR_LEN ||
                                        dc_get_be32(p + 1) > avail - DERP_FRAME_HDR_LEN);
            return true;
        }
        used += (size_t)n;
        o->pos += (size_t)n;
    }
}

/* Feeds stream in reads of the given sizes (cycled); a single size of len
 * or more is the all-at-once run. */
static void run(const uint8_t *stream, size_t len, const uint8_t *sizes, size_t n_sizes,
                size_t whole, bool is_login_first, struct outcome *o)
{
    struct derp_frame_reader r = {.is_login = is_login_first};
    size_t fed = 0;
    size_t i = 0;
    do {
        size_t chunk = whole > 0 ? whole : 1 + (size_t)sizes[i++ % n_sizes];
        fed += len - fed < chunk ? len - fed : chunk;
        /* The connection buffer: unconsumed bytes, exactly. */
        size_t have = fed - o->pos;
        uint8_t *buf = malloc(have > 0 ? have : 1);
        check(buf != NULL);
        memcpy(buf, stream + o->pos, have);
        bool is_ok = drain(&r, is_login_first, buf, have, o);
        free(buf);
        if (!is_ok) {
            return;
        }
    } while (fed < len);
}

static void compare(const struct outcome *a, const struct outcome *b)
{
    check(a->pos == b->pos && a->err == b->err && a->n_ev == b->n_ev);
    for (size_t i = 0; i < a->n_ev; i++) {
        check(a->ev[i].type == b->ev[i].type && a->ev[i].len == b->ev[i].len &&
              a->ev[i].off == b->ev[i].off);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t k = 1 + (data[0] & 7u);
    if (size < 1 + k) {
        return 0;
    }
    const uint8_t *sizes = data + 1;
    const uint8_t *stream = data + 1 + k;
    size_t len = size - 1 - k;
    for (int mode = 0; mode < 2; mode++) {
        bool is_login_first = mode == 1;
        struct outcome chunked = {0}, whole = {0};
        run(stream, len, sizes, k, 0, is_login_first, &chunked);
        run(stream, len, sizes, k, len > 0 ? len : 1, is_login_first, &whole);
        compare(&chunked, &whole);
        free(chunked.ev);
        free(whole.ev);
    }
    return 0;
}
