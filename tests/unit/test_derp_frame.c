/* test_derp_frame: the DERP frame codec, the frame reader and the login JSON
 * messages (relay/derp_frame.c). Sizes and JSON forms come from tailscale's
 * derp/derp.go, derp_client.go and derpserver/derpserver.go. */
#include "derp_frame.h"

#include "bytes.h"
#include "derp_key.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

/* Tailscale's ClientInfo JSON as its client marshals it (field order of the
 * Go struct: meshKey, version, CanAckPings, IsProber, AppName). */
#define MESH_HEX "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef"
#define TS_CLIENT_INFO                                                                             \
    "{\"meshKey\":\"" MESH_HEX "\",\"version\":2,\"CanAckPings\":true,\"IsProber\":true,"          \
    "\"AppName\":\"x\"}"

static void fill_pattern(uint8_t *p, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed + i * 7);
    }
}

/* Builds one frame (header + payload from fill_pattern) at out; returns its size. */
static size_t put_frame(uint8_t *out, uint8_t type, uint32_t payload_len, uint8_t seed)
{
    derp_frame_header_encode(out, type, payload_len);
    fill_pattern(out + DERP_FRAME_HDR_LEN, payload_len, seed);
    return DERP_FRAME_HDR_LEN + payload_len;
}

/* Runs the reader once on buf and checks it returned a whole frame of the
 * given type and length whose payload sits right after the header. */
static void expect_frame(struct derp_frame_reader *r, const uint8_t *buf, size_t len, uint8_t type,
                         uint32_t payload_len)
{
    struct derp_frame f = {0};
    bool has_frame = false;
    const char *why = NULL;
    long n = derp_frame_next(r, buf, len, &f, &has_frame, &why);
    assert_int_equal(n, DERP_FRAME_HDR_LEN + payload_len);
    assert_true(has_frame);
    assert_int_equal(f.type, type);
    assert_int_equal(f.len, payload_len);
    assert_ptr_equal(f.payload, buf + DERP_FRAME_HDR_LEN);
}

/* Runs the reader on a bare header and expects the given error. */
static void expect_header_error(struct derp_frame_reader *r, uint8_t type, uint32_t payload_len,
                                long want)
{
    uint8_t hdr[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(hdr, type, payload_len);
    struct derp_frame f = {0};
    bool has_frame = true;
    const char *why = NULL;
    long n = derp_frame_next(r, hdr, sizeof(hdr), &f, &has_frame, &why);
    assert_int_equal(n, want);
    assert_false(has_frame);
    assert_non_null(why);
    assert_true(why[0] != '\0');
}

/* Runs the reader on a bare header and expects "need more bytes". */
static void expect_header_needs_more(struct derp_frame_reader *r, uint8_t type,
                                     uint32_t payload_len)
{
    uint8_t hdr[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(hdr, type, payload_len);
    struct derp_frame f = {0};
    bool has_frame = true;
    const char *why = NULL;
    long n = derp_frame_next(r, hdr, sizeof(hdr), &f, &has_frame, &why);
    assert_int_equal(n, 0);
    assert_false(has_frame);
}

/* ---- header and encoders ---- */

static void test_derp_frame_header_roundtrip(void **state)
{
    (void)state;
    static const uint32_t lens[] = {0, 1, 255, 256, 65536, 0x01020304u, 0xffffffffu};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t hdr[DERP_FRAME_HDR_LEN];
        derp_frame_header_encode(hdr, (uint8_t)(0x90 + i), lens[i]);
        uint8_t type = 0;
        uint32_t len = 0;
        assert_int_equal(derp_frame_header_decode(hdr, sizeof(hdr), &type, &len),
                         DERP_FRAME_HDR_LEN);
        assert_int_equal(type, 0x90 + i);
        assert_int_equal(len, lens[i]);
    }
    /* Big-endian on the wire: type, then the length high byte first. */
    uint8_t hdr[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(hdr, DERP_FRAME_SEND_PACKET, 0x01020304u);
    static const uint8_t want[] = {0x04, 0x01, 0x02, 0x03, 0x04};
    assert_memory_equal(hdr, want, sizeof(want));
    /* Fewer than 5 bytes is "not yet". */
    uint8_t type = 0;
    uint32_t len = 0;
    for (size_t n = 0; n < DERP_FRAME_HDR_LEN; n++) {
        assert_int_equal(derp_frame_header_decode(hdr, n, &type, &len), 0);
    }
}

static void test_derp_frame_server_key_roundtrip(void **state)
{
    (void)state;
    uint8_t key[DERP_KEY_LEN];
    fill_pattern(key, sizeof(key), 0x11);
    uint8_t frame[DERP_SERVER_KEY_FRAME_LEN];
    derp_frame_server_key_encode(frame, key);

    /* The login reader hands back any frame whole; decode it from there. */
    struct derp_frame_reader r = {.is_login = true};
    expect_frame(&r, frame, sizeof(frame), DERP_FRAME_SERVER_KEY, DERP_MAGIC_LEN + DERP_KEY_LEN);
    assert_memory_equal(frame + DERP_FRAME_HDR_LEN, DERP_MAGIC, DERP_MAGIC_LEN);
    uint8_t got[DERP_KEY_LEN] = {0};
    assert_int_equal(derp_frame_server_key_decode(frame + DERP_FRAME_HDR_LEN,
                                                  DERP_MAGIC_LEN + DERP_KEY_LEN, got),
                     0);
    assert_memory_equal(got, key, DERP_KEY_LEN);

    /* Future servers may append bytes: still accepted. */
    uint8_t longer[DERP_MAGIC_LEN + DERP_KEY_LEN + 4];
    memcpy(longer, frame + DERP_FRAME_HDR_LEN, DERP_MAGIC_LEN + DERP_KEY_LEN);
    memset(longer + DERP_MAGIC_LEN + DERP_KEY_LEN, 0xee, 4);
    memset(got, 0, sizeof(got));
    assert_int_equal(derp_frame_server_key_decode(longer, sizeof(longer), got), 0);
    assert_memory_equal(got, key, DERP_KEY_LEN);

    /* One byte short, or a wrong magic: protocol error. */
    assert_int_equal(derp_frame_server_key_decode(longer, DERP_MAGIC_LEN + DERP_KEY_LEN - 1, got),
                     -EPROTO);
    longer[3] ^= 0x01;
    assert_int_equal(derp_frame_server_key_decode(longer, sizeof(longer), got), -EPROTO);
    assert_int_equal(derp_frame_server_key_decode(longer, 0, got), -EPROTO);
}

static void test_derp_frame_peer_gone_roundtrip(void **state)
{
    (void)state;
    static const uint8_t reasons[] = {DERP_PEER_GONE_DISCONNECTED, DERP_PEER_GONE_NOT_HERE};
    for (size_t i = 0; i < sizeof(reasons); i++) {
        uint8_t key[DERP_KEY_LEN];
        fill_pattern(key, sizeof(key), (uint8_t)(0x20 + i));
        uint8_t frame[DERP_PEER_GONE_FRAME_LEN];
        derp_frame_peer_gone_encode(frame, key, reasons[i]);
        struct derp_frame_reader r = {.is_login = true};
        expect_frame(&r, frame, sizeof(frame), DERP_FRAME_PEER_GONE, DERP_KEY_LEN + 1);
        assert_memory_equal(frame + DERP_FRAME_HDR_LEN, key, DERP_KEY_LEN);
        assert_int_equal(frame[DERP_FRAME_HDR_LEN + DERP_KEY_LEN], reasons[i]);
    }
}

static void test_derp_frame_peer_present_roundtrip(void **state)
{
    (void)state;
    uint8_t key[DERP_KEY_LEN];
    fill_pattern(key, sizeof(key), 0x33);
    /* 10.0.0.5 as ::ffff:10.0.0.5 */
    static const uint8_t ip16[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5};
    uint8_t frame[DERP_PEER_PRESENT_FRAME_LEN];
    uint8_t flags = DERP_PEER_PRESENT_REGULAR | DERP_PEER_PRESENT_NOT_IDEAL;
    derp_frame_peer_present_encode(frame, key, ip16, 41641, flags);

    struct derp_frame_reader r = {.is_login = true};
    expect_frame(&r, frame, sizeof(frame), DERP_FRAME_PEER_PRESENT, DERP_PEER_PRESENT_LEN);
    const uint8_t *p = frame + DERP_FRAME_HDR_LEN;
    assert_int_equal(DERP_PEER_PRESENT_LEN, 51);
    assert_memory_equal(p, key, DERP_KEY_LEN);
    assert_memory_equal(p + DERP_KEY_LEN, ip16, 16);
    assert_int_equal(dc_get_be16(p + DERP_KEY_LEN + 16), 41641);
    assert_int_equal(p[DERP_KEY_LEN + 18], flags);
}

static void test_derp_frame_pong_roundtrip(void **state)
{
    (void)state;
    static const uint8_t data[DERP_PING_LEN] = {1, 2, 3, 4, 0xfd, 0xfe, 0xff, 0};
    uint8_t frame[DERP_PONG_FRAME_LEN];
    derp_frame_pong_encode(frame, data);
    struct derp_frame_reader r = {.is_login = true};
    expect_frame(&r, frame, sizeof(frame), DERP_FRAME_PONG, DERP_PING_LEN);
    assert_memory_equal(frame + DERP_FRAME_HDR_LEN, data, DERP_PING_LEN);
}

static void test_derp_frame_restarting_roundtrip(void **state)
{
    (void)state;
    uint8_t frame[DERP_RESTARTING_FRAME_LEN];
    derp_frame_restarting_encode(frame, 5000, 0xfedcba98u);
    struct derp_frame_reader r = {.is_login = true};
    expect_frame(&r, frame, sizeof(frame), DERP_FRAME_RESTARTING, 8);
    assert_int_equal(dc_get_be32(frame + DERP_FRAME_HDR_LEN), 5000);
    assert_int_equal(dc_get_be32(frame + DERP_FRAME_HDR_LEN + 4), 0xfedcba98u);
}

/* ---- the reader ---- */

static void test_derp_frame_next_exact_frames(void **state)
{
    (void)state;
    static const struct {
        uint8_t type;
        uint32_t len;
    } cases[] = {
        {DERP_FRAME_SEND_PACKET, DERP_KEY_LEN},
        {DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + 100},
        {DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN},
        {DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + 1400},
        {DERP_FRAME_NOTE_PREFERRED, 1},
        {DERP_FRAME_WATCH_CONNS, 0},
        {DERP_FRAME_CLOSE_PEER, DERP_KEY_LEN},
        {DERP_FRAME_PING, DERP_PING_LEN},
    };
    uint8_t *buf = malloc(DERP_FRAME_HDR_LEN + 2 * DERP_KEY_LEN + 1400);
    assert_non_null(buf);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_frame_reader r = {0};
        size_t n = put_frame(buf, cases[i].type, cases[i].len, (uint8_t)i);
        expect_frame(&r, buf, n, cases[i].type, cases[i].len);
        assert_int_equal(r.skip, 0);
    }
    free(buf);
}

/* Every proper prefix of a frame is "need more", the whole frame is one frame. */
static void test_derp_frame_next_every_prefix(void **state)
{
    (void)state;
    uint8_t buf[DERP_FRAME_HDR_LEN + DERP_KEY_LEN + 60];
    size_t total = put_frame(buf, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + 60, 0x42);
    for (size_t k = 0; k < total; k++) {
        /* Copy the prefix into its own allocation so reads past k are caught
         * by the sanitizer build. */
        uint8_t *prefix = malloc(k > 0 ? k : 1);
        assert_non_null(prefix);
        memcpy(prefix, buf, k);
        struct derp_frame_reader r = {0};
        struct derp_frame f = {0};
        bool has_frame = true;
        const char *why = NULL;
        long n = derp_frame_next(&r, prefix, k, &f, &has_frame, &why);
        assert_int_equal(n, 0);
        assert_false(has_frame);
        free(prefix);
    }
    struct derp_frame_reader r = {0};
    expect_frame(&r, buf, total, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + 60);
}

/* The stream a client might send: frames the reader returns and frames it
 * skips, mixed. */
struct stream_frame {
    uint8_t type;
    uint32_t len;
    bool is_returned;
};

static const struct stream_frame STREAM[] = {
    {DERP_FRAME_NOTE_PREFERRED, 1, true},
    {DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + 70, true},
    {0x99, 17, false},
    {DERP_FRAME_PING, DERP_PING_LEN, true},
    {DERP_FRAME_KEEP_ALIVE, 0, false},
    {DERP_FRAME_WATCH_CONNS, 0, true},
    {DERP_FRAME_PONG, DERP_PING_LEN, false},
    {DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + 3, true},
    {DERP_FRAME_CLOSE_PEER, DERP_KEY_LEN, true},
    {DERP_FRAME_SEND_PACKET, DERP_KEY_LEN, true},
};
#define STREAM_COUNT (sizeof(STREAM) / sizeof(STREAM[0]))

static size_t build_stream(uint8_t *out)
{
    size_t off = 0;
    for (size_t i = 0; i < STREAM_COUNT; i++) {
        off += put_frame(out + off, STREAM[i].type, STREAM[i].len, (uint8_t)(i * 31));
    }
    return off;
}

/* Feeds the stream like a socket would, chunk bytes at a time, into a
 * connection buffer, and drains the reader after each read. Checks the frames
 * come out in order with the right bytes. */
static void run_stream_chunked(const uint8_t *stream, size_t total, size_t chunk)
{
    uint8_t conn[1024];
    size_t have = 0, fed = 0, want = 0;
    struct derp_frame_reader r = {0};
    while (fed < total || have > 0) {
        size_t n = total - fed < chunk ? total - fed : chunk;
        memcpy(conn + have, stream + fed, n);
        have += n;
        fed += n;
        for (;;) {
            struct derp_frame f = {0};
            bool has_frame = false;
            const char *why = NULL;
            long used = derp_frame_next(&r, conn, have, &f, &has_frame, &why);
            assert_true(used >= 0);
            assert_true((size_t)used <= have);
            if (has_frame) {
                while (want < STREAM_COUNT && !STREAM[want].is_returned) {
                    want++;
                }
                assert_true(want < STREAM_COUNT);
                assert_int_equal(f.type, STREAM[want].type);
                assert_int_equal(f.len, STREAM[want].len);
                uint8_t expect[256];
                fill_pattern(expect, f.len, (uint8_t)(want * 31));
                assert_memory_equal(f.payload, expect, f.len);
                assert_ptr_equal(f.payload, conn + DERP_FRAME_HDR_LEN);
                want++;
            }
            if (used == 0) {
                break;
            }
            memmove(conn, conn + used, have - (size_t)used);
            have -= (size_t)used;
        }
        if (n == 0) {
            break; /* everything fed and nothing more comes out */
        }
    }
    assert_int_equal(have, 0);
    assert_int_equal(r.skip, 0);
    while (want < STREAM_COUNT && !STREAM[want].is_returned) {
        want++;
    }
    assert_int_equal(want, STREAM_COUNT);
}

static void test_derp_frame_next_split_every_boundary(void **state)
{
    (void)state;
    uint8_t stream[1024];
    size_t total = build_stream(stream);
    assert_true(total < sizeof(stream));
    for (size_t chunk = 1; chunk <= total; chunk++) {
        run_stream_chunked(stream, total, chunk);
    }
}

static void test_derp_frame_next_several_in_one_buffer(void **state)
{
    (void)state;
    uint8_t stream[1024];
    size_t total = build_stream(stream);
    struct derp_frame_reader r = {0};
    size_t off = 0;
    for (size_t i = 0; i < STREAM_COUNT; i++) {
        struct derp_frame f = {0};
        bool has_frame = false;
        const char *why = NULL;
        long n = derp_frame_next(&r, stream + off, total - off, &f, &has_frame, &why);
        if (!STREAM[i].is_returned) {
            /* The header is consumed, then the payload is skipped. */
            assert_int_equal(n, DERP_FRAME_HDR_LEN);
            assert_false(has_frame);
            off += (size_t)n;
            if (STREAM[i].len > 0) {
                n = derp_frame_next(&r, stream + off, total - off, &f, &has_frame, &why);
                assert_int_equal(n, STREAM[i].len);
                assert_false(has_frame);
                off += (size_t)n;
            }
            assert_int_equal(r.skip, 0);
            continue;
        }
        assert_int_equal(n, DERP_FRAME_HDR_LEN + STREAM[i].len);
        assert_true(has_frame);
        assert_int_equal(f.type, STREAM[i].type);
        assert_int_equal(f.len, STREAM[i].len);
        assert_ptr_equal(f.payload, stream + off + DERP_FRAME_HDR_LEN);
        off += (size_t)n;
    }
    assert_int_equal(off, total);
}

static void test_derp_frame_next_send_packet_limits(void **state)
{
    (void)state;
    struct derp_frame_reader r = {0};
    /* The largest SendPacket: waits for its payload, then is one frame. */
    expect_header_needs_more(&r, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + DERP_MAX_PACKET_LEN);
    size_t big = DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_MAX_PACKET_LEN;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    put_frame(buf, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + DERP_MAX_PACKET_LEN, 9);
    expect_frame(&r, buf, big, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + DERP_MAX_PACKET_LEN);
    /* One byte missing: still waiting. */
    struct derp_frame f = {0};
    bool has_frame = true;
    const char *why = NULL;
    assert_int_equal(derp_frame_next(&r, buf, big - 1, &f, &has_frame, &why), 0);
    assert_false(has_frame);
    free(buf);

    /* One byte over: refused from the header alone. */
    expect_header_error(&r, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN + DERP_MAX_PACKET_LEN + 1,
                        -EMSGSIZE);
    expect_header_error(&r, DERP_FRAME_SEND_PACKET, 0xffffffffu, -EMSGSIZE);
    /* Shorter than the destination key. */
    expect_header_error(&r, DERP_FRAME_SEND_PACKET, DERP_KEY_LEN - 1, -EPROTO);
    expect_header_error(&r, DERP_FRAME_SEND_PACKET, 0, -EPROTO);

    /* ForwardPacket carries two keys. */
    expect_header_needs_more(&r, DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + DERP_MAX_PACKET_LEN);
    expect_header_error(&r, DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + DERP_MAX_PACKET_LEN + 1,
                        -EMSGSIZE);
    expect_header_error(&r, DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN - 1, -EPROTO);
    assert_int_equal(r.skip, 0);
}

/* The reader bounds Ping at 1000 bytes; the exact 8..1000 check is the
 * handler's (derpserver handleFramePing), so 7 still comes out as a frame. */
static void test_derp_frame_next_ping_sizes(void **state)
{
    (void)state;
    static const uint32_t ok[] = {0, 7, DERP_PING_LEN, DERP_MAX_PING_LEN};
    uint8_t buf[DERP_FRAME_HDR_LEN + DERP_MAX_PING_LEN];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct derp_frame_reader r = {0};
        size_t n = put_frame(buf, DERP_FRAME_PING, ok[i], 1);
        expect_frame(&r, buf, n, DERP_FRAME_PING, ok[i]);
    }
    struct derp_frame_reader r = {0};
    expect_header_error(&r, DERP_FRAME_PING, DERP_MAX_PING_LEN + 1, -EMSGSIZE);
    /* The other small control frames share the 1000-byte bound. */
    expect_header_error(&r, DERP_FRAME_NOTE_PREFERRED, DERP_MAX_PING_LEN + 1, -EMSGSIZE);
    expect_header_error(&r, DERP_FRAME_CLOSE_PEER, DERP_MAX_PING_LEN + 1, -EMSGSIZE);
    expect_header_error(&r, DERP_FRAME_WATCH_CONNS, 0xffffffffu, -EMSGSIZE);
}

/* An unknown frame of 4 GiB - 1 is skipped across many calls: each call
 * consumes at most what it is given and keeps nothing. */
static void test_derp_frame_next_skip_huge_unknown(void **state)
{
    (void)state;
    const size_t chunk_len = 1u << 20;
    uint8_t *chunk = malloc(chunk_len);
    assert_non_null(chunk);
    memset(chunk, 0xab, chunk_len);

    struct derp_frame_reader r = {0};
    struct derp_frame f = {0};
    bool has_frame = true;
    const char *why = NULL;
    /* Header plus the start of the payload: only the header is consumed. */
    derp_frame_header_encode(chunk, 0x99, 0xffffffffu);
    long n = derp_frame_next(&r, chunk, chunk_len, &f, &has_frame, &why);
    assert_int_equal(n, DERP_FRAME_HDR_LEN);
    assert_false(has_frame);
    assert_int_equal(r.skip, 0xffffffffu);

    /* Nothing given: nothing consumed. */
    n = derp_frame_next(&r, chunk, 0, &f, &has_frame, &why);
    assert_int_equal(n, 0);
    assert_false(has_frame);

    uint64_t left = 0xffffffffu;
    size_t calls = 0;
    while (left > 0) {
        /* Odd-sized reads, like a socket's. */
        size_t give = chunk_len - (calls % 7) * 1000;
        n = derp_frame_next(&r, chunk, give, &f, &has_frame, &why);
        assert_true(n > 0);
        assert_true((size_t)n <= give);
        assert_false(has_frame);
        left -= (uint64_t)n;
        assert_int_equal(r.skip, left);
        calls++;
    }
    assert_true(calls > 4000);

    /* The next frame after the skipped one reads normally. */
    uint8_t ping[DERP_FRAME_HDR_LEN + DERP_PING_LEN];
    size_t plen = put_frame(ping, DERP_FRAME_PING, DERP_PING_LEN, 3);
    expect_frame(&r, ping, plen, DERP_FRAME_PING, DERP_PING_LEN);
    free(chunk);
}

/* The skip ends exactly where the next frame starts, inside one buffer. */
static void test_derp_frame_next_skip_then_frame(void **state)
{
    (void)state;
    uint8_t buf[DERP_FRAME_HDR_LEN + 300 + DERP_FRAME_HDR_LEN + DERP_PING_LEN];
    size_t off = put_frame(buf, 0x99, 300, 5);
    size_t total = off + put_frame(buf + off, DERP_FRAME_PING, DERP_PING_LEN, 6);
    struct derp_frame_reader r = {0};
    struct derp_frame f = {0};
    bool has_frame = true;
    const char *why = NULL;
    assert_int_equal(derp_frame_next(&r, buf, total, &f, &has_frame, &why), DERP_FRAME_HDR_LEN);
    assert_int_equal(derp_frame_next(&r, buf + DERP_FRAME_HDR_LEN, total - DERP_FRAME_HDR_LEN, &f,
                                     &has_frame, &why),
                     300);
    assert_false(has_frame);
    expect_frame(&r, buf + off, total - off, DERP_FRAME_PING, DERP_PING_LEN);
}

static void test_derp_frame_next_login_limits(void **state)
{
    (void)state;
    struct derp_frame_reader r = {.is_login = true};
    /* 256 KiB is the largest ClientInfo: waits for it, then returns it. */
    expect_header_needs_more(&r, DERP_FRAME_CLIENT_INFO, DERP_MAX_CLIENT_INFO_LEN);
    size_t big = DERP_FRAME_HDR_LEN + DERP_MAX_CLIENT_INFO_LEN;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    put_frame(buf, DERP_FRAME_CLIENT_INFO, DERP_MAX_CLIENT_INFO_LEN, 4);
    expect_frame(&r, buf, big, DERP_FRAME_CLIENT_INFO, DERP_MAX_CLIENT_INFO_LEN);
    free(buf);

    expect_header_error(&r, DERP_FRAME_CLIENT_INFO, DERP_MAX_CLIENT_INFO_LEN + 1, -EMSGSIZE);
    /* Key (32) + nonce (24) is the least a ClientInfo can be. */
    expect_header_error(&r, DERP_FRAME_CLIENT_INFO, DERP_KEY_LEN + DERP_NONCE_LEN - 1, -EPROTO);
    expect_header_error(&r, DERP_FRAME_CLIENT_INFO, 0, -EPROTO);
    uint8_t small[DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_NONCE_LEN];
    size_t n = put_frame(small, DERP_FRAME_CLIENT_INFO, DERP_KEY_LEN + DERP_NONCE_LEN, 8);
    expect_frame(&r, small, n, DERP_FRAME_CLIENT_INFO, DERP_KEY_LEN + DERP_NONCE_LEN);

    /* Before login nothing is skipped: a huge frame of any type is refused. */
    expect_header_error(&r, 0x99, 0xffffffffu, -EMSGSIZE);
    expect_header_error(&r, DERP_FRAME_SEND_PACKET, DERP_MAX_CLIENT_INFO_LEN + 1, -EMSGSIZE);
    assert_int_equal(r.skip, 0);
}

/* ---- disco ---- */

static void test_derp_frame_disco_detection(void **state)
{
    (void)state;
    uint8_t pkt[DERP_DISCO_MIN_LEN + 10];
    assert_int_equal(DERP_DISCO_MIN_LEN, 6 + 32 + 24);
    memcpy(pkt, "TS\xf0\x9f\x92\xac", 6);
    fill_pattern(pkt + 6, sizeof(pkt) - 6, 0x5a);
    assert_true(derp_packet_is_disco(pkt, DERP_DISCO_MIN_LEN));
    assert_true(derp_packet_is_disco(pkt, sizeof(pkt)));
    assert_false(derp_packet_is_disco(pkt, DERP_DISCO_MIN_LEN - 1));
    assert_false(derp_packet_is_disco(pkt, 6));
    assert_false(derp_packet_is_disco(pkt, 0));
    for (size_t i = 0; i < 6; i++) {
        pkt[i] ^= 0x01;
        assert_false(derp_packet_is_disco(pkt, sizeof(pkt)));
        pkt[i] ^= 0x01;
    }
    /* A heap copy of exactly the minimum, so the sanitizer sees any overread. */
    uint8_t *exact = malloc(DERP_DISCO_MIN_LEN);
    assert_non_null(exact);
    memcpy(exact, pkt, DERP_DISCO_MIN_LEN);
    assert_true(derp_packet_is_disco(exact, DERP_DISCO_MIN_LEN));
    free(exact);
}

/* ---- ClientInfo / ServerInfo JSON ---- */

static void test_derp_frame_client_info_tailscale(void **state)
{
    (void)state;
    struct derp_client_info ci;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(TS_CLIENT_INFO, strlen(TS_CLIENT_INFO), &ci, err), 0);
    assert_int_equal(ci.version, 2);
    assert_true(ci.has_mesh_key);
    uint8_t want[DERP_MESH_KEY_LEN];
    assert_int_equal(derp_key_parse_hex(MESH_HEX, strlen(MESH_HEX), want), 0);
    assert_memory_equal(ci.mesh_key, want, DERP_MESH_KEY_LEN);
    assert_true(ci.can_ack_pings);
    assert_true(ci.is_prober);
    assert_string_equal(ci.app_name, "x");

    /* What an ordinary tailscaled sends (no mesh key, IsProber omitted). */
    static const char plain[] = "{\"version\":2,\"CanAckPings\":true}";
    assert_int_equal(derp_client_info_parse(plain, strlen(plain), &ci, err), 0);
    assert_int_equal(ci.version, 2);
    assert_false(ci.has_mesh_key);
    assert_true(ci.can_ack_pings);
    assert_false(ci.is_prober);
    assert_string_equal(ci.app_name, "");

    /* The input need not be NUL-terminated: only len bytes are read. */
    char *copy = malloc(strlen(TS_CLIENT_INFO));
    assert_non_null(copy);
    memcpy(copy, TS_CLIENT_INFO, strlen(TS_CLIENT_INFO));
    assert_int_equal(derp_client_info_parse(copy, strlen(TS_CLIENT_INFO), &ci, err), 0);
    assert_string_equal(ci.app_name, "x");
    free(copy);
}

static void test_derp_frame_client_info_missing_fields(void **state)
{
    (void)state;
    struct derp_client_info ci;
    memset(&ci, 0xff, sizeof(ci)); /* the parser must reset everything */
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse("{}", 2, &ci, err), 0);
    assert_int_equal(ci.version, 0);
    assert_false(ci.has_mesh_key);
    assert_false(ci.can_ack_pings);
    assert_false(ci.is_prober);
    assert_string_equal(ci.app_name, "");

    /* null reads as absent; unknown fields are ignored. */
    static const char nulls[] = "{\"version\":null,\"CanAckPings\":null,\"IsProber\":null,"
                                "\"meshKey\":null,\"AppName\":null,\"Future\":[1,{\"a\":2}]}";
    assert_int_equal(derp_client_info_parse(nulls, strlen(nulls), &ci, err), 0);
    assert_int_equal(ci.version, 0);
    assert_false(ci.has_mesh_key);
    assert_false(ci.can_ack_pings);
    assert_string_equal(ci.app_name, "");
}

static void test_derp_frame_client_info_wrong_types(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *field;
    } cases[] = {
        {"{\"version\":\"2\"}", "version"},
        {"{\"version\":2.5}", "version"},
        {"{\"version\":true}", "version"},
        {"{\"version\":4294967296}", "version"},
        {"{\"CanAckPings\":\"yes\"}", "CanAckPings"},
        {"{\"CanAckPings\":1}", "CanAckPings"},
        {"{\"IsProber\":0}", "IsProber"},
        {"{\"IsProber\":{}}", "IsProber"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_client_info ci;
        char err[DC_ERR_LEN] = "";
        int rc = derp_client_info_parse(cases[i].json, strlen(cases[i].json), &ci, err);
        assert_int_equal(rc, -EINVAL);
        assert_non_null(strstr(err, cases[i].field));
        /* err may be NULL. */
        rc = derp_client_info_parse(cases[i].json, strlen(cases[i].json), &ci, NULL);
        assert_int_equal(rc, -EINVAL);
    }
}

static void test_derp_frame_client_info_not_object(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "",
        "{",
        "[]",
        "[{\"version\":2}]",
        "\"version\"",
        "2",
        "null",
        "{\"version\":2}}",
        "{\"version\":2} trailing",
        "{'version':2}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_client_info ci;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(derp_client_info_parse(cases[i], strlen(cases[i]), &ci, err), -EINVAL);
        assert_true(err[0] != '\0');
    }
    /* An embedded NUL is not JSON either. */
    static const char nul[] = "{\"version\":2}\0";
    struct derp_client_info ci;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(nul, sizeof(nul) - 1, &ci, err), -EINVAL);
}

static void test_derp_frame_client_info_bad_mesh_key_ignored(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"version\":2,\"meshKey\":\"" MESH_HEX "0\"}",
        "{\"version\":2,\"meshKey\":"
        "\"00112233445566778899aabbccddeeff0123456789abcdef0123456789abcde\"}",
        "{\"version\":2,\"meshKey\":"
        "\"g0112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef\"}",
        "{\"version\":2,\"meshKey\":\"\"}",
        "{\"version\":2,\"meshKey\":42}",
        "{\"version\":2,\"meshKey\":[\"" MESH_HEX "\"]}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_client_info ci;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(derp_client_info_parse(cases[i], strlen(cases[i]), &ci, err), 0);
        assert_false(ci.has_mesh_key);
        assert_int_equal(ci.version, 2);
    }
}

static void test_derp_frame_client_info_app_name_truncated(void **state)
{
    (void)state;
    char name[DERP_APP_NAME_MAX + 40];
    for (size_t i = 0; i < sizeof(name) - 1; i++) {
        name[i] = (char)('a' + i % 26);
    }
    name[sizeof(name) - 1] = '\0';
    char json[256];
    int n = snprintf(json, sizeof(json), "{\"AppName\":\"%s\"}", name);
    assert_true(n > 0 && (size_t)n < sizeof(json));
    struct derp_client_info ci;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(json, (size_t)n, &ci, err), 0);
    assert_int_equal(strlen(ci.app_name), DERP_APP_NAME_MAX);
    assert_memory_equal(ci.app_name, name, DERP_APP_NAME_MAX);

    /* Exactly the maximum is kept whole. */
    name[DERP_APP_NAME_MAX] = '\0';
    n = snprintf(json, sizeof(json), "{\"AppName\":\"%s\"}", name);
    assert_int_equal(derp_client_info_parse(json, (size_t)n, &ci, err), 0);
    assert_string_equal(ci.app_name, name);
}

/* A long AppName is cut at a character boundary, never inside a UTF-8
 * sequence: 63 'a' + "é" (2 bytes) keeps the 63 'a' only. */
static void test_derp_frame_client_info_app_name_utf8_cut(void **state)
{
    (void)state;
    static const struct {
        size_t pad;       /* 'a' bytes before the tail */
        const char *tail; /* UTF-8 text after the padding */
        size_t want_len;  /* bytes kept */
    } cases[] = {
        {63, "\xc3\xa9", 63},           /* é straddles byte 64 */
        {62, "\xc3\xa9", 64},           /* é ends at byte 64: kept */
        {62, "\xc3\xa9z", 64},          /* é ends at byte 64, more after */
        {63, "\xc3\xa9zzzzzzzzzz", 63}, /* more after, as in fuzz seed long_app_name.json */
        {62, "\xe2\x82\xac", 62},       /* € (3 bytes) straddles */
        {63, "\xe2\x82\xac", 63},       /* € starts at the cut */
        {61, "\xf0\x9f\x98\x80", 61},   /* U+1F600 (4 bytes) straddles */
        {60, "\xf0\x9f\x98\x80", 64},   /* U+1F600 ends at byte 64 */
        {63, "\\u00e9", 63},            /* escaped é, same bytes once decoded */
        {61, "\\ud83d\\ude00", 61},     /* escaped surrogate pair */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[256];
        int n = snprintf(json, sizeof(json), "{\"AppName\":\"%.*s%s\"}", (int)cases[i].pad,
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         cases[i].tail);
        assert_true(n > 0 && (size_t)n < sizeof(json));
        struct derp_client_info ci;
        char err[DC_ERR_LEN] = "";
        int rc = derp_client_info_parse(json, (size_t)n, &ci, err);
        if (rc != 0) {
            fail_msg("case %zu `%s': rc %d: %s", i, json, rc, err);
        }
        if (strlen(ci.app_name) != cases[i].want_len) {
            fail_msg("case %zu `%s': kept %zu bytes, want %zu", i, json, strlen(ci.app_name),
                     cases[i].want_len);
        }
        for (size_t j = 0; j < cases[i].pad && j < cases[i].want_len; j++) {
            assert_int_equal(ci.app_name[j], 'a');
        }

        /* What was kept formats and parses back unchanged. */
        char out[DERP_INFO_JSON_MAX];
        int m = derp_client_info_format(&ci, out, sizeof(out));
        if (m <= 0) {
            fail_msg("case %zu `%s': format rc %d", i, json, m);
        }
        struct derp_client_info back;
        assert_int_equal(derp_client_info_parse(out, (size_t)m, &back, err), 0);
        assert_string_equal(back.app_name, ci.app_name);
    }
}

/* AppName must be a string (or null / absent); anything else is an error. */
static void test_derp_frame_client_info_app_name_not_string(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{\"AppName\":5}",
        "{\"AppName\":0}",
        "{\"AppName\":-1.5}",
        "{\"AppName\":true}",
        "{\"AppName\":false}",
        "{\"AppName\":[]}",
        "{\"AppName\":[\"x\"]}",
        "{\"AppName\":{}}",
        "{\"version\":2,\"CanAckPings\":true,\"AppName\":{\"name\":\"x\"}}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_client_info ci;
        char err[DC_ERR_LEN] = "";
        int rc = derp_client_info_parse(cases[i], strlen(cases[i]), &ci, err);
        if (rc != -EINVAL) {
            fail_msg("`%s': want -EINVAL, got %d", cases[i], rc);
        }
        assert_non_null(strstr(err, "AppName"));
        assert_int_equal(derp_client_info_parse(cases[i], strlen(cases[i]), &ci, NULL), -EINVAL);
    }
    /* null still means "not set". */
    static const char null_name[] = "{\"AppName\":null}";
    struct derp_client_info ci;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(null_name, strlen(null_name), &ci, err), 0);
    assert_string_equal(ci.app_name, "");
}

/* A name that is not UTF-8 cannot go into JSON: format refuses it rather
 * than sending ClientInfo without it. */
static void test_derp_frame_client_info_format_bad_utf8(void **state)
{
    (void)state;
    static const char *const names[] = {
        "\xff",             /* never valid */
        "abc\xc3",          /* sequence cut short */
        "\xc3(",            /* lead byte, no continuation */
        "\x80x",            /* lone continuation byte */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct derp_client_info ci = {.version = 2, .can_ack_pings = true};
        assert_true(strlen(names[i]) < sizeof(ci.app_name));
        memcpy(ci.app_name, names[i], strlen(names[i]) + 1);
        char out[DERP_INFO_JSON_MAX];
        int n = derp_client_info_format(&ci, out, sizeof(out));
        if (n != -EINVAL) {
            fail_msg("name %zu: want -EINVAL, got %d%s%s", i, n, n > 0 ? ": " : "",
                     n > 0 ? out : "");
        }
    }
    /* Valid multi-byte UTF-8 is fine and survives the trip. */
    struct derp_client_info ci = {.version = 2};
    static const char good[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    memcpy(ci.app_name, good, sizeof(good));
    char out[DERP_INFO_JSON_MAX];
    int n = derp_client_info_format(&ci, out, sizeof(out));
    assert_true(n > 0);
    struct derp_client_info back;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(out, (size_t)n, &back, err), 0);
    assert_string_equal(back.app_name, good);
}

static void test_derp_frame_client_info_format_roundtrip(void **state)
{
    (void)state;
    struct derp_client_info ci = {.version = 2, .can_ack_pings = true, .is_prober = true};
    ci.has_mesh_key = true;
    assert_int_equal(derp_key_parse_hex(MESH_HEX, strlen(MESH_HEX), ci.mesh_key), 0);
    memcpy(ci.app_name, "x", 2);
    char out[DERP_INFO_JSON_MAX];
    int n = derp_client_info_format(&ci, out, sizeof(out));
    /* Byte for byte what Go's json.Marshal(derp.ClientInfo{...}) writes. */
    assert_int_equal(n, strlen(TS_CLIENT_INFO));
    assert_string_equal(out, TS_CLIENT_INFO);

    struct derp_client_info back;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_client_info_parse(out, (size_t)n, &back, err), 0);
    assert_int_equal(back.version, ci.version);
    assert_true(back.has_mesh_key);
    assert_memory_equal(back.mesh_key, ci.mesh_key, DERP_MESH_KEY_LEN);
    assert_true(back.can_ack_pings);
    assert_true(back.is_prober);
    assert_string_equal(back.app_name, "x");

    /* The zero value: only CanAckPings, which Go never omits. */
    struct derp_client_info zero = {0};
    n = derp_client_info_format(&zero, out, sizeof(out));
    assert_string_equal(out, "{\"CanAckPings\":false}");
    assert_int_equal(derp_client_info_parse(out, (size_t)n, &back, err), 0);
    assert_int_equal(back.version, 0);
    assert_false(back.has_mesh_key);
    assert_false(back.can_ack_pings);
    assert_false(back.is_prober);
    assert_string_equal(back.app_name, "");

    /* Quotes and backslashes in AppName survive the trip. */
    struct derp_client_info odd = {.version = 2};
    memcpy(odd.app_name, "a\"b\\c/d\te", 10);
    n = derp_client_info_format(&odd, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(derp_client_info_parse(out, (size_t)n, &back, err), 0);
    assert_string_equal(back.app_name, odd.app_name);

    /* Too small an output buffer. */
    assert_int_equal(derp_client_info_format(&ci, out, 10), -EMSGSIZE);
    assert_int_equal(derp_client_info_format(&ci, out, strlen(TS_CLIENT_INFO)), -EMSGSIZE);
    assert_int_equal(derp_client_info_format(&ci, out, strlen(TS_CLIENT_INFO) + 1),
                     strlen(TS_CLIENT_INFO));
}

static void test_derp_frame_server_info_format(void **state)
{
    (void)state;
    struct derp_server_info si = {.version = DERP_PROTOCOL_VERSION};
    char out[DERP_INFO_JSON_MAX];
    /* derpserver: json.Marshal(ServerInfo{Version: 2}). */
    assert_int_equal(derp_server_info_format(&si, out, sizeof(out)), 13);
    assert_string_equal(out, "{\"version\":2}");

    struct derp_server_info back;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_server_info_parse(out, 13, &back, err), 0);
    assert_int_equal(back.version, 2);
    assert_int_equal(back.token_bucket_bytes_per_sec, 0);
    assert_int_equal(back.token_bucket_bytes_burst, 0);

    struct derp_server_info tb = {
        .version = 2, .token_bucket_bytes_per_sec = 1000000, .token_bucket_bytes_burst = 65536};
    int n = derp_server_info_format(&tb, out, sizeof(out));
    assert_string_equal(
        out,
        "{\"version\":2,\"TokenBucketBytesPerSecond\":1000000,\"TokenBucketBytesBurst\":65536}");
    assert_int_equal(derp_server_info_parse(out, (size_t)n, &back, err), 0);
    assert_int_equal(back.version, tb.version);
    assert_int_equal(back.token_bucket_bytes_per_sec, tb.token_bucket_bytes_per_sec);
    assert_int_equal(back.token_bucket_bytes_burst, tb.token_bucket_bytes_burst);

    struct derp_server_info zero = {0};
    assert_int_equal(derp_server_info_format(&zero, out, sizeof(out)), 2);
    assert_string_equal(out, "{}");
    assert_int_equal(derp_server_info_format(&si, out, 13), -EMSGSIZE);
}

static void test_derp_frame_server_info_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"version\":\"2\"}",
        "{\"version\":2,\"TokenBucketBytesPerSecond\":1.5}",
        "{\"TokenBucketBytesBurst\":false}",
        "{\"TokenBucketBytesBurst\":99999999999}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct derp_server_info si;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(derp_server_info_parse(bad[i], strlen(bad[i]), &si, err), -EINVAL);
        assert_true(err[0] != '\0');
    }
    /* Unknown fields are fine. */
    static const char ok[] = "{\"version\":2,\"Extra\":\"x\"}";
    struct derp_server_info si;
    assert_int_equal(derp_server_info_parse(ok, strlen(ok), &si, NULL), 0);
    assert_int_equal(si.version, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derp_frame_header_roundtrip),
        cmocka_unit_test(test_derp_frame_server_key_roundtrip),
        cmocka_unit_test(test_derp_frame_peer_gone_roundtrip),
        cmocka_unit_test(test_derp_frame_peer_present_roundtrip),
        cmocka_unit_test(test_derp_frame_pong_roundtrip),
        cmocka_unit_test(test_derp_frame_restarting_roundtrip),
        cmocka_unit_test(test_derp_frame_next_exact_frames),
        cmocka_unit_test(test_derp_frame_next_every_prefix),
        cmocka_unit_test(test_derp_frame_next_split_every_boundary),
        cmocka_unit_test(test_derp_frame_next_several_in_one_buffer),
        cmocka_unit_test(test_derp_frame_next_send_packet_limits),
        cmocka_unit_test(test_derp_frame_next_ping_sizes),
        cmocka_unit_test(test_derp_frame_next_skip_huge_unknown),
        cmocka_unit_test(test_derp_frame_next_skip_then_frame),
        cmocka_unit_test(test_derp_frame_next_login_limits),
        cmocka_unit_test(test_derp_frame_disco_detection),
        cmocka_unit_test(test_derp_frame_client_info_tailscale),
        cmocka_unit_test(test_derp_frame_client_info_missing_fields),
        cmocka_unit_test(test_derp_frame_client_info_wrong_types),
        cmocka_unit_test(test_derp_frame_client_info_not_object),
        cmocka_unit_test(test_derp_frame_client_info_bad_mesh_key_ignored),
        cmocka_unit_test(test_derp_frame_client_info_app_name_truncated),
        cmocka_unit_test(test_derp_frame_client_info_app_name_utf8_cut),
        cmocka_unit_test(test_derp_frame_client_info_app_name_not_string),
        cmocka_unit_test(test_derp_frame_client_info_format_bad_utf8),
        cmocka_unit_test(test_derp_frame_client_info_format_roundtrip),
        cmocka_unit_test(test_derp_frame_server_info_format),
        cmocka_unit_test(test_derp_frame_server_info_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
