/* test_ws: the WebSocket handshake answer and frame header codec
 * (common/ws.c). Vectors come from RFC 6455 (1.3, 5.7); the extra accept
 * values were computed independently (Python hashlib + base64). */
#include "ws.h"

#include "bytes.h"
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Payload lengths that hit each length form and its edges (RFC 6455 5.2). */
static const uint64_t LENGTHS[] = {0, 125, 126, 65535, 65536, (UINT64_C(1) << 32) + 1};

static int accept_str(const char *key, char out[static WS_ACCEPT_LEN])
{
    struct dc_span s = {(const uint8_t *)key, strlen(key)};
    return ws_accept_key(s, out);
}

static void assert_accept(const char *key, const char *want)
{
    char out[WS_ACCEPT_LEN];
    memset(out, 'x', sizeof(out));
    assert_int_equal(accept_str(key, out), 0);
    assert_int_equal(out[WS_ACCEPT_LEN - 1], '\0');
    assert_string_equal(out, want);
}

static void assert_key_rejected(const uint8_t *key, size_t len)
{
    char out[WS_ACCEPT_LEN];
    struct dc_span s = {key, len};
    assert_int_equal(ws_accept_key(s, out), -EINVAL);
}

static void assert_key_str_rejected(const char *key)
{
    assert_key_rejected((const uint8_t *)key, strlen(key));
}

/* Header length the encoder must pick for payload_len (minimal form). */
static size_t expected_hdr_len(uint64_t payload_len, bool masked)
{
    size_t n = payload_len <= 125 ? 2 : payload_len <= 0xffff ? 4 : 10;
    return n + (masked ? 4 : 0);
}

/* Decodes exactly `len` bytes and expects an error `code` with err text. */
static void assert_decode_error(const uint8_t *buf, size_t len, bool must_mask, uint64_t max,
                                ssize_t code)
{
    struct ws_frame_hdr h;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(ws_frame_header_decode(buf, len, must_mask, max, &h, err), code);
    assert_true(err[0] != '\0');
    /* err may be NULL. */
    assert_int_equal(ws_frame_header_decode(buf, len, must_mask, max, &h, NULL), code);
}

static void test_ws_accept_key_rfc_example(void **state)
{
    (void)state;
    assert_accept("dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_ws_accept_key_other_vectors(void **state)
{
    (void)state;
    assert_accept("x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert_accept("AQIDBAUGBwgJCgsMDQ4PEA==", "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=");
}

static void test_ws_accept_key_wrong_length(void **state)
{
    (void)state;
    assert_key_str_rejected("");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ=");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ===");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ==AAAA");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ==\r\n");
}

static void test_ws_accept_key_not_base64(void **state)
{
    (void)state;
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ!!");
    assert_key_str_rejected("dGhl*HNhbXBsZSBub25jZQ==");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZ.==");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25j\r\n==");
    assert_key_str_rejected("dGhlIHNhbXBsZSBub25jZQ--");
    static const uint8_t nul[24] = {'d', 'G', 'h', 'l', 0,   'H', 'N', 'h', 'b', 'X', 'B', 's',
                                    'Z', 'S', 'B', 'u', 'b', '2', '5', 'j', 'Z', 'Q', '=', '='};
    assert_key_rejected(nul, sizeof(nul));
    static const uint8_t high[24] = {0xc3, 0xa9, 'h', 'l', 'I', 'H', 'N', 'h', 'b', 'X', 'B', 's',
                                     'Z',  'S',  'B', 'u', 'b', '2', '5', 'j', 'Z', 'Q', '=', '='};
    assert_key_rejected(high, sizeof(high));
}

/* 24 characters that OpenSSL's EVP_DecodeBlock accepts but that are not the
 * base64 of a 16-byte nonce (RFC 6455 4.1, 4.2.1). */
static void test_ws_accept_key_not_a_nonce(void **state)
{
    (void)state;
    /* Regression: EVP_DecodeBlock alone trims whitespace and accepts '='
     * anywhere and 18-byte keys; the nonce is now checked character by character. */
    assert_key_str_rejected("AAAAAAAAAAAAAAAAAAAAAAAA"); /* 18 bytes, no padding */
    assert_key_str_rejected("    AAAAAAAAAAAAAAAAAAAA"); /* leading spaces */
    assert_key_str_rejected("AAAAAAAAAAAAAAAAAAAA    "); /* trailing spaces */
    assert_key_str_rejected("AAAA====AAAAAAAAAAAAAAAA"); /* padding in the middle */
    assert_key_str_rejected("========================");
    assert_key_str_rejected("AAAAAAAAAAAAAAAAAAAAA===");
}

static void test_ws_frame_encode_bytes(void **state)
{
    (void)state;
    uint8_t out[WS_MAX_HDR_LEN];

    /* RFC 6455 5.7: unmasked "Hello", masked "Hello", 256 and 65536 bytes. */
    static const uint8_t hello[] = {0x81, 0x05};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_TEXT, true, 5, NULL), sizeof(hello));
    assert_memory_equal(out, hello, sizeof(hello));

    static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_TEXT, true, 5, MASK), sizeof(hello_masked));
    assert_memory_equal(out, hello_masked, sizeof(hello_masked));

    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_BINARY, true, 256, NULL), sizeof(b256));
    assert_memory_equal(out, b256, sizeof(b256));

    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_BINARY, true, 65536, NULL), sizeof(b64k));
    assert_memory_equal(out, b64k, sizeof(b64k));

    /* First fragment of a text message: FIN clear. */
    static const uint8_t frag[] = {0x01, 0x03};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_TEXT, false, 3, NULL), sizeof(frag));
    assert_memory_equal(out, frag, sizeof(frag));

    static const uint8_t close0[] = {0x88, 0x00};
    assert_int_equal(ws_frame_header_encode(out, WS_OP_CLOSE, true, 0, NULL), sizeof(close0));
    assert_memory_equal(out, close0, sizeof(close0));
}

static void check_roundtrip(uint8_t opcode, bool fin, uint64_t payload_len, const uint8_t *mask)
{
    uint8_t out[WS_MAX_HDR_LEN + 8];
    memset(out, 0xee, sizeof(out));
    size_t n = ws_frame_header_encode(out, opcode, fin, payload_len, mask);
    assert_int_equal(n, expected_hdr_len(payload_len, mask != NULL));
    /* Nothing written past the header. */
    for (size_t i = n; i < sizeof(out); i++) {
        assert_int_equal(out[i], 0xee);
    }

    struct ws_frame_hdr h;
    memset(&h, 0xa5, sizeof(h));
    char err[DC_ERR_LEN] = "";
    /* Decode with trailing bytes present: only the header is consumed. */
    assert_int_equal(ws_frame_header_decode(out, sizeof(out), mask != NULL, UINT64_MAX, &h, err),
                     (ssize_t)n);
    assert_int_equal(h.fin, fin);
    assert_int_equal(h.opcode, opcode);
    assert_int_equal(h.masked, mask != NULL);
    assert_true(h.payload_len == payload_len);
    if (mask != NULL) {
        assert_memory_equal(h.mask_key, mask, 4);
    }
    /* The exact header alone is enough, and a max equal to the length passes. */
    assert_int_equal(ws_frame_header_decode(out, n, false, payload_len, &h, err), (ssize_t)n);
    assert_true(h.payload_len == payload_len);
    if (payload_len > 0) {
        assert_decode_error(out, n, false, payload_len - 1, -EMSGSIZE);
    }
}

static void test_ws_frame_roundtrip_lengths(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(LENGTHS) / sizeof(LENGTHS[0]); i++) {
        check_roundtrip(WS_OP_BINARY, true, LENGTHS[i], NULL);
        check_roundtrip(WS_OP_BINARY, true, LENGTHS[i], MASK);
        check_roundtrip(WS_OP_TEXT, false, LENGTHS[i], NULL);
        check_roundtrip(WS_OP_CONTINUATION, false, LENGTHS[i], MASK);
        check_roundtrip(WS_OP_CONTINUATION, true, LENGTHS[i], NULL);
    }
    for (uint64_t len = 0; len <= WS_MAX_CONTROL_LEN; len += 25) {
        check_roundtrip(WS_OP_CLOSE, true, len, NULL);
        check_roundtrip(WS_OP_PING, true, len, MASK);
        check_roundtrip(WS_OP_PONG, true, len, NULL);
    }
    /* Largest length the 64-bit form allows (top bit clear). */
    check_roundtrip(WS_OP_BINARY, true, INT64_MAX, MASK);
    check_roundtrip(WS_OP_BINARY, true, INT64_MAX, NULL);
}

static void test_ws_frame_decode_every_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(LENGTHS) / sizeof(LENGTHS[0]); i++) {
        for (int m = 0; m < 2; m++) {
            const uint8_t *mask = m ? MASK : NULL;
            uint8_t out[WS_MAX_HDR_LEN];
            size_t n = ws_frame_header_encode(out, WS_OP_BINARY, true, LENGTHS[i], mask);
            for (size_t len = 0; len < n; len++) {
                struct ws_frame_hdr h;
                char err[DC_ERR_LEN] = "";
                assert_int_equal(
                    ws_frame_header_decode(out, len, mask != NULL, UINT64_MAX, &h, err), 0);
                assert_int_equal(ws_frame_header_decode(out, len, false, UINT64_MAX, &h, err), 0);
                assert_string_equal(err, "");
            }
        }
    }
    /* An empty buffer needs more bytes and is not read. */
    struct ws_frame_hdr h;
    assert_int_equal(ws_frame_header_decode(NULL, 0, true, UINT64_MAX, &h, NULL), 0);
}

static void test_ws_frame_decode_reserved_bits(void **state)
{
    (void)state;
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    for (size_t i = 0; i < sizeof(rsv); i++) {
        uint8_t buf[] = {(uint8_t)(0x82 | rsv[i]), 0x00};
        assert_decode_error(buf, sizeof(buf), false, UINT64_MAX, -EPROTO);
        uint8_t masked[] = {(uint8_t)(0x81 | rsv[i]), 0x85, 0x37, 0xfa, 0x21, 0x3d};
        assert_decode_error(masked, sizeof(masked), true, UINT64_MAX, -EPROTO);
    }
}

static void test_ws_frame_decode_unknown_opcode(void **state)
{
    (void)state;
    static const uint8_t op3[] = {0x83, 0x00};
    assert_decode_error(op3, sizeof(op3), false, UINT64_MAX, -EPROTO);
    /* Every reserved opcode: 3-7 (data), b-f (control). */
    for (uint8_t op = 0; op < 16; op++) {
        bool known = op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
        uint8_t buf[] = {(uint8_t)(0x80 | op), 0x00};
        struct ws_frame_hdr h;
        ssize_t r = ws_frame_header_decode(buf, sizeof(buf), false, UINT64_MAX, &h, NULL);
        assert_int_equal(r, known ? 2 : -EPROTO);
    }
}

static void test_ws_frame_decode_control_not_fin(void **state)
{
    (void)state;
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t buf[] = {ops[i], 0x00};
        assert_decode_error(buf, sizeof(buf), false, UINT64_MAX, -EPROTO);
        uint8_t masked[] = {ops[i], 0x80, 1, 2, 3, 4};
        assert_decode_error(masked, sizeof(masked), true, UINT64_MAX, -EPROTO);
    }
}

static void test_ws_frame_decode_control_too_long(void **state)
{
    (void)state;
    /* 126 bytes in the 16-bit form (the only form that can say 126). */
    static const uint8_t ping126[] = {0x89, 0x7e, 0x00, 0x7e};
    assert_decode_error(ping126, sizeof(ping126), false, UINT64_MAX, -EPROTO);
    static const uint8_t close126_masked[] = {0x88, 0xfe, 0x00, 0x7e, 1, 2, 3, 4};
    assert_decode_error(close126_masked, sizeof(close126_masked), true, UINT64_MAX, -EPROTO);
    static const uint8_t pong_huge[] = {0x8a, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_decode_error(pong_huge, sizeof(pong_huge), false, UINT64_MAX, -EPROTO);
    /* 125 is allowed. */
    struct ws_frame_hdr h;
    static const uint8_t ping125[] = {0x89, 0x7d};
    assert_int_equal(ws_frame_header_decode(ping125, sizeof(ping125), false, UINT64_MAX, &h, NULL),
                     2);
    assert_true(h.payload_len == 125);
}

static void test_ws_frame_decode_unmasked_when_must_mask(void **state)
{
    (void)state;
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    assert_decode_error(hello, sizeof(hello), true, UINT64_MAX, -EPROTO);
    /* Rejected as soon as the MASK bit is visible. */
    assert_decode_error(hello, 2, true, UINT64_MAX, -EPROTO);
    struct ws_frame_hdr h;
    assert_int_equal(ws_frame_header_decode(hello, sizeof(hello), false, UINT64_MAX, &h, NULL), 2);
    assert_false(h.masked);
    assert_true(h.payload_len == 5);
}

static void test_ws_frame_decode_over_max(void **state)
{
    (void)state;
    uint8_t out[WS_MAX_HDR_LEN];
    size_t n = ws_frame_header_encode(out, WS_OP_BINARY, true, WS_MAX_MESSAGE_LEN + 1, MASK);
    assert_decode_error(out, n, true, WS_MAX_MESSAGE_LEN, -EMSGSIZE);

    struct ws_frame_hdr h;
    n = ws_frame_header_encode(out, WS_OP_BINARY, true, WS_MAX_MESSAGE_LEN, MASK);
    assert_int_equal(ws_frame_header_decode(out, n, true, WS_MAX_MESSAGE_LEN, &h, NULL),
                     (ssize_t)n);

    n = ws_frame_header_encode(out, WS_OP_TEXT, true, 1, NULL);
    assert_decode_error(out, n, false, 0, -EMSGSIZE);
    n = ws_frame_header_encode(out, WS_OP_BINARY, true, (UINT64_C(1) << 32) + 1, NULL);
    assert_decode_error(out, n, false, UINT32_MAX, -EMSGSIZE);
}

static void test_ws_frame_decode_length_top_bit(void **state)
{
    (void)state;
    static const uint8_t top[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_decode_error(top, sizeof(top), false, UINT64_MAX, -EPROTO);
    /* Masked, all length bits set: checked once the mask key is in too. */
    static const uint8_t all[] = {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 1,    2,    3,    4};
    assert_decode_error(all, sizeof(all), false, UINT64_MAX, -EPROTO);
    assert_decode_error(all, sizeof(all), true, UINT64_MAX, -EPROTO);
    struct ws_frame_hdr h;
    assert_int_equal(ws_frame_header_decode(all, sizeof(all) - 1, true, UINT64_MAX, &h, NULL), 0);
}

static void test_ws_unmask_pieces(void **state)
{
    (void)state;
    uint8_t src[61], whole[sizeof(src)], pieces[sizeof(src)], inplace[sizeof(src)];
    for (size_t i = 0; i < sizeof(src); i++) {
        src[i] = (uint8_t)(i * 37 + 11);
    }
    static const uint64_t bases[] = {0, 1, 2, 3, 5, UINT64_MAX - 2};
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        ws_unmask(whole, src, sizeof(src), MASK, bases[b]);
        for (size_t i = 0; i < sizeof(src); i++) {
            assert_int_equal(whole[i], src[i] ^ MASK[(bases[b] + i) % 4]);
        }
        for (size_t split = 0; split <= sizeof(src); split++) {
            ws_unmask(pieces, src, split, MASK, bases[b]);
            ws_unmask(pieces + split, src + split, sizeof(src) - split, MASK, bases[b] + split);
            assert_memory_equal(pieces, whole, sizeof(src));

            /* dst == src, three pieces. */
            memcpy(inplace, src, sizeof(src));
            size_t third = split / 2;
            ws_unmask(inplace, inplace, third, MASK, bases[b]);
            ws_unmask(inplace + third, inplace + third, split - third, MASK, bases[b] + third);
            ws_unmask(inplace + split, inplace + split, sizeof(src) - split, MASK,
                      bases[b] + split);
            assert_memory_equal(inplace, whole, sizeof(src));
        }
        /* Masking is its own inverse. */
        ws_unmask(pieces, whole, sizeof(src), MASK, bases[b]);
        assert_memory_equal(pieces, src, sizeof(src));
    }
    /* len 0 touches nothing. */
    ws_unmask(NULL, NULL, 0, MASK, 0);
}

static void test_ws_rfc_masked_hello(void **state)
{
    (void)state;
    static const uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                    0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_frame_hdr h;
    char err[DC_ERR_LEN] = "";
    ssize_t n = ws_frame_header_decode(frame, sizeof(frame), true, WS_MAX_MESSAGE_LEN, &h, err);
    assert_int_equal(n, 6);
    assert_true(h.fin);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_true(h.masked);
    assert_memory_equal(h.mask_key, MASK, 4);
    assert_true(h.payload_len == 5);
    assert_int_equal(sizeof(frame) - (size_t)n, h.payload_len);

    uint8_t text[5];
    ws_unmask(text, frame + n, sizeof(text), h.mask_key, 0);
    assert_memory_equal(text, "Hello", 5);
    /* In pieces as the bytes might arrive: "He" then "llo". */
    ws_unmask(text, frame + n, 2, h.mask_key, 0);
    ws_unmask(text + 2, frame + n + 2, 3, h.mask_key, 2);
    assert_memory_equal(text, "Hello", 5);
}

static void test_ws_rfc_other_examples(void **state)
{
    (void)state;
    struct ws_frame_hdr h;
    /* RFC 6455 5.7: fragmented unmasked text "Hel" + "lo". */
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    assert_int_equal(ws_frame_header_decode(frag, sizeof(frag), false, 100, &h, NULL), 2);
    assert_false(h.fin);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_true(h.payload_len == 3);
    assert_int_equal(ws_frame_header_decode(frag + 5, 4, false, 100, &h, NULL), 2);
    assert_true(h.fin);
    assert_int_equal(h.opcode, WS_OP_CONTINUATION);
    assert_true(h.payload_len == 2);

    /* Unmasked ping "Hello" and masked pong "Hello". */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    assert_int_equal(ws_frame_header_decode(ping, sizeof(ping), false, 125, &h, NULL), 2);
    assert_int_equal(h.opcode, WS_OP_PING);
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(ws_frame_header_decode(pong, sizeof(pong), true, 125, &h, NULL), 6);
    assert_int_equal(h.opcode, WS_OP_PONG);
    uint8_t text[5];
    ws_unmask(text, pong + 6, 5, h.mask_key, 0);
    assert_memory_equal(text, "Hello", 5);

    /* 256 bytes and 64 KiB binary, unmasked. */
    static const uint8_t b256[] = {0x82, 0x7e, 0x01, 0x00};
    assert_int_equal(ws_frame_header_decode(b256, sizeof(b256), false, 256, &h, NULL), 4);
    assert_true(h.payload_len == 256);
    static const uint8_t b64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_int_equal(ws_frame_header_decode(b64k, sizeof(b64k), false, 65536, &h, NULL), 10);
    assert_true(h.payload_len == 65536);

    /* A close frame with status 1000, masked by a client. */
    static const uint8_t close_frame[] = {0x88, 0x82, 0x37,        0xfa,
                                          0x21, 0x3d, 0x03 ^ 0x37, 0xe8 ^ 0xfa};
    assert_int_equal(ws_frame_header_decode(close_frame, sizeof(close_frame), true, 125, &h, NULL),
                     6);
    assert_int_equal(h.opcode, WS_OP_CLOSE);
    uint8_t status[2];
    ws_unmask(status, close_frame + 6, 2, h.mask_key, 0);
    assert_int_equal(dc_get_be16(status), WS_CLOSE_NORMAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_accept_key_rfc_example),
        cmocka_unit_test(test_ws_accept_key_other_vectors),
        cmocka_unit_test(test_ws_accept_key_wrong_length),
        cmocka_unit_test(test_ws_accept_key_not_base64),
        cmocka_unit_test(test_ws_accept_key_not_a_nonce),
        cmocka_unit_test(test_ws_frame_encode_bytes),
        cmocka_unit_test(test_ws_frame_roundtrip_lengths),
        cmocka_unit_test(test_ws_frame_decode_every_prefix),
        cmocka_unit_test(test_ws_frame_decode_reserved_bits),
        cmocka_unit_test(test_ws_frame_decode_unknown_opcode),
        cmocka_unit_test(test_ws_frame_decode_control_not_fin),
        cmocka_unit_test(test_ws_frame_decode_control_too_long),
        cmocka_unit_test(test_ws_frame_decode_unmasked_when_must_mask),
        cmocka_unit_test(test_ws_frame_decode_over_max),
        cmocka_unit_test(test_ws_frame_decode_length_top_bit),
        cmocka_unit_test(test_ws_unmask_pieces),
        cmocka_unit_test(test_ws_rfc_masked_hello),
        cmocka_unit_test(test_ws_rfc_other_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
