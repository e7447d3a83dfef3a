/* test_stun: the STUN codec (relay/stun.c) and the UDP server
 * (relay/stun_server.c) on loopback. */
#include "stun.h"
#include "stun_server.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* Upper bound on one loop run in the live tests; only reached on failure. */
#define LIVE_GUARD_MS 5000

static const uint8_t TXID[STUN_TXID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* Tailscale's Request() for TXID: SOFTWARE "tailnode" and FINGERPRINT,
 * the CRC computed independently (Python zlib.crc32). */
static const uint8_t TS_REQUEST[] = {
    0x00, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
    0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x80, 0x22, 0x00, 0x08, 0x74, 0x61, 0x69, 0x6c,
    0x6e, 0x6f, 0x64, 0x65, 0x80, 0x28, 0x00, 0x04, 0xb3, 0x2c, 0x37, 0x0f,
};

/* Tailscale's Response() for txid 01 x12 and 1.2.3.4:254. */
static const uint8_t TS_RESPONSE_V4[] = {
    0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0x21, 0xec, 0x20, 0x10, 0xa7, 0x46,
};

/* Tailscale's Response() for txid 03 x12 and [1::4]:254. */
static const uint8_t TS_RESPONSE_V6[] = {
    0x01, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03,
    0x03, 0x03, 0x03, 0x03, 0x03, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0x21, 0xec, 0x21, 0x13,
    0xa4, 0x42, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x07,
};

static struct sockaddr_storage make_addr(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
    }
    return ss;
}

/* Asserts that ss is exactly ip:port (family included). */
static void assert_addr(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    struct sockaddr_storage want = make_addr(ip, port);
    assert_int_equal(ss->ss_family, want.ss_family);
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&want;
        assert_memory_equal(&a->sin_addr, &b->sin_addr, sizeof(a->sin_addr));
        assert_int_equal(ntohs(a->sin_port), port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&want;
        assert_memory_equal(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr));
        assert_int_equal(ntohs(a->sin6_port), port);
    }
}

/* Asserts the request parser rejects buf with a reason containing want. */
static void assert_request_rejected(const uint8_t *buf, size_t len, const char *want)
{
    uint8_t txid[STUN_TXID_LEN] = {0};
    char err[DC_ERR_LEN] = "";
    assert_int_equal(stun_parse_binding_request(buf, len, txid, err), -EINVAL);
    if (strstr(err, want) == NULL) {
        fail_msg("error `%s' lacks `%s'", err, want);
    }
    assert_int_equal(stun_parse_binding_request(buf, len, txid, NULL), -EINVAL);
}

/* Asserts the response parser rejects buf with a reason containing want. */
static void assert_response_rejected(const uint8_t *buf, size_t len, const char *want)
{
    uint8_t txid[STUN_TXID_LEN];
    struct sockaddr_storage ss;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(stun_parse_binding_response(buf, len, txid, &ss, err), -EINVAL);
    if (strstr(err, want) == NULL) {
        fail_msg("error `%s' lacks `%s'", err, want);
    }
}

static void test_stun_request_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint8_t got[STUN_TXID_LEN] = {0};
    assert_int_equal(stun_encode_binding_request(TXID, buf, sizeof(buf)), STUN_BINDING_REQUEST_LEN);
    assert_int_equal(stun_parse_binding_request(buf, STUN_BINDING_REQUEST_LEN, got, NULL), 0);
    assert_memory_equal(got, TXID, STUN_TXID_LEN);
    /* too small an output buffer writes nothing */
    assert_int_equal(stun_encode_binding_request(TXID, buf, STUN_BINDING_REQUEST_LEN - 1), 0);
}

static void test_stun_tailscale_request_bytes(void **state)
{
    (void)state;
    uint8_t buf[STUN_BINDING_REQUEST_LEN];
    assert_int_equal(stun_encode_binding_request(TXID, buf, sizeof(buf)), sizeof(TS_REQUEST));
    assert_memory_equal(buf, TS_REQUEST, sizeof(TS_REQUEST));
    uint8_t got[STUN_TXID_LEN] = {0};
    char err[DC_ERR_LEN] = "";
    assert_int_equal(stun_parse_binding_request(TS_REQUEST, sizeof(TS_REQUEST), got, err), 0);
    assert_memory_equal(got, TXID, STUN_TXID_LEN);
}

static void test_stun_plain_request(void **state)
{
    (void)state;
    /* RFC 5389 request from a generic client: header only */
    uint8_t buf[STUN_HEADER_LEN] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    memcpy(buf + 8, TXID, STUN_TXID_LEN);
    uint8_t got[STUN_TXID_LEN] = {0};
    assert_int_equal(stun_parse_binding_request(buf, sizeof(buf), got, NULL), 0);
    assert_memory_equal(got, TXID, STUN_TXID_LEN);

    /* with an unpadded SOFTWARE ("abc" + 1 pad byte) and no FINGERPRINT */
    uint8_t sw[STUN_HEADER_LEN + 8] = {0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42};
    memcpy(sw + 8, TXID, STUN_TXID_LEN);
    memcpy(sw + 20,
           "\x80\x22\x00\x03"
           "abc\x00",
           8);
    assert_int_equal(stun_parse_binding_request(sw, sizeof(sw), got, NULL), 0);
}

static void test_stun_reject_bad_cookie(void **state)
{
    (void)state;
    uint8_t buf[sizeof(TS_REQUEST)];
    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[4] ^= 0x01;
    assert_request_rejected(buf, sizeof(buf), "cookie");

    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[0] |= 0x40; /* top bits must be zero */
    assert_request_rejected(buf, sizeof(buf), "not STUN");
}

static void test_stun_reject_wrong_type(void **state)
{
    (void)state;
    uint8_t buf[sizeof(TS_REQUEST)];
    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[1] = 0x11; /* Binding indication */
    assert_request_rejected(buf, sizeof(buf), "type 0x0011");
    assert_request_rejected(TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4), "type 0x0101");
    assert_response_rejected(TS_REQUEST, sizeof(TS_REQUEST), "type 0x0001");
}

static void test_stun_reject_truncated(void **state)
{
    (void)state;
    assert_request_rejected(TS_REQUEST, 0, "short");
    assert_request_rejected(TS_REQUEST, STUN_HEADER_LEN - 1, "short");
    assert_request_rejected(TS_REQUEST, sizeof(TS_REQUEST) - 1, "length field");
    assert_request_rejected(TS_REQUEST, STUN_HEADER_LEN, "length field");
    assert_response_rejected(TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4) - 4, "length field");

    /* requests must fill the datagram exactly */
    uint8_t longer[sizeof(TS_REQUEST) + 4] = {0};
    memcpy(longer, TS_REQUEST, sizeof(TS_REQUEST));
    assert_request_rejected(longer, sizeof(longer), "length field");

    /* a length field that is not a multiple of 4 */
    uint8_t odd[STUN_HEADER_LEN + 2] = {0x00, 0x01, 0x00, 0x02, 0x21, 0x12, 0xa4, 0x42};
    assert_request_rejected(odd, sizeof(odd), "multiple of 4");
}

static void test_stun_reject_bad_attribute_length(void **state)
{
    (void)state;
    uint8_t buf[sizeof(TS_REQUEST)];
    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[23] = 0x14; /* SOFTWARE claims 20 bytes; 16 remain after its header */
    assert_request_rejected(buf, sizeof(buf), "overruns");

    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[22] = 0xff; /* 65288 bytes */
    assert_request_rejected(buf, sizeof(buf), "overruns");

    /* 4 bytes of attributes: a header whose 1-byte value has no room */
    uint8_t tiny[STUN_HEADER_LEN + 4] = {0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42};
    memcpy(tiny + 20, "\x80\x22\x00\x01", 4);
    assert_request_rejected(tiny, sizeof(tiny), "overruns");
}

static void test_stun_reject_bad_fingerprint(void **state)
{
    (void)state;
    uint8_t buf[sizeof(TS_REQUEST)];
    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[sizeof(buf) - 1] ^= 0x01;
    assert_request_rejected(buf, sizeof(buf), "FINGERPRINT");

    memcpy(buf, TS_REQUEST, sizeof(buf));
    buf[10] ^= 0x80; /* a changed transaction ID breaks the CRC */
    assert_request_rejected(buf, sizeof(buf), "FINGERPRINT");

    /* FINGERPRINT followed by another attribute */
    uint8_t notlast[STUN_HEADER_LEN + 16] = {0x00, 0x01, 0x00, 0x10, 0x21, 0x12, 0xa4, 0x42};
    memcpy(notlast + 20, "\x80\x28\x00\x04\x00\x00\x00\x00\x80\x22\x00\x04test", 16);
    assert_request_rejected(notlast, sizeof(notlast), "last");

    /* FINGERPRINT of the wrong size */
    uint8_t wide[STUN_HEADER_LEN + 12] = {0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42};
    memcpy(wide + 20, "\x80\x28\x00\x08", 4);
    assert_request_rejected(wide, sizeof(wide), "FINGERPRINT length");
}

static void check_response_roundtrip(const char *ip, const char *want_ip, uint16_t port,
                                     size_t want_len, uint8_t want_family)
{
    struct sockaddr_storage in = make_addr(ip, port), out;
    uint8_t buf[STUN_BINDING_RESPONSE_MAX_LEN];
    uint8_t got[STUN_TXID_LEN] = {0};
    char err[DC_ERR_LEN] = "";
    assert_int_equal(stun_encode_binding_response(TXID, &in, buf, sizeof(buf)), want_len);
    assert_int_equal(buf[STUN_HEADER_LEN + 5], want_family);
    assert_int_equal(stun_parse_binding_response(buf, want_len, got, &out, err), 0);
    assert_memory_equal(got, TXID, STUN_TXID_LEN);
    assert_addr(&out, want_ip, port);
    assert_int_equal(stun_encode_binding_response(TXID, &in, buf, want_len - 1), 0);
}

static void test_stun_response_roundtrip_v4(void **state)
{
    (void)state;
    check_response_roundtrip("192.0.2.7", "192.0.2.7", 41641, STUN_BINDING_RESPONSE_V4_LEN,
                             STUN_FAMILY_IPV4);
    check_response_roundtrip("255.255.255.255", "255.255.255.255", 0, STUN_BINDING_RESPONSE_V4_LEN,
                             STUN_FAMILY_IPV4);
}

static void test_stun_response_roundtrip_v6(void **state)
{
    (void)state;
    check_response_roundtrip("2001:db8::1:2", "2001:db8::1:2", 3478, STUN_BINDING_RESPONSE_V6_LEN,
                             STUN_FAMILY_IPV6);
    check_response_roundtrip("::1", "::1", 65535, STUN_BINDING_RESPONSE_V6_LEN, STUN_FAMILY_IPV6);
}

static void test_stun_response_roundtrip_v4_mapped(void **state)
{
    (void)state;
    check_response_roundtrip("::ffff:198.51.100.9", "198.51.100.9", 12345,
                             STUN_BINDING_RESPONSE_V4_LEN, STUN_FAMILY_IPV4);
}

static void test_stun_response_tailscale_bytes(void **state)
{
    (void)state;
    uint8_t buf[STUN_BINDING_RESPONSE_MAX_LEN];
    uint8_t tx1[STUN_TXID_LEN], tx3[STUN_TXID_LEN];
    memset(tx1, 1, sizeof(tx1));
    memset(tx3, 3, sizeof(tx3));
    struct sockaddr_storage v4 = make_addr("1.2.3.4", 254), v6 = make_addr("1::4", 254);
    assert_int_equal(stun_encode_binding_response(tx1, &v4, buf, sizeof(buf)),
                     sizeof(TS_RESPONSE_V4));
    assert_memory_equal(buf, TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4));
    assert_int_equal(stun_encode_binding_response(tx3, &v6, buf, sizeof(buf)),
                     sizeof(TS_RESPONSE_V6));
    assert_memory_equal(buf, TS_RESPONSE_V6, sizeof(TS_RESPONSE_V6));

    struct sockaddr_storage unix_addr = {.ss_family = AF_UNIX};
    assert_int_equal(stun_encode_binding_response(tx1, &unix_addr, buf, sizeof(buf)), 0);
}

/* Responses captured from public servers (tailscale net/stun tests). */
static void test_stun_response_real_servers(void **state)
{
    (void)state;
    static const uint8_t google[] = {
        0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 0x23, 0x60, 0xb1,
        0x1e, 0x3e, 0xc6, 0x8f, 0xfa, 0x93, 0xe0, 0x80, 0x07, 0x00, 0x20,
        0x00, 0x08, 0x00, 0x01, 0xc7, 0x86, 0x69, 0x57, 0x85, 0x6f,
    };
    /* MAPPED-ADDRESS only (plus RFC 3489 SOURCE/CHANGED-ADDRESS) */
    static const uint8_t powervoip[] = {
        0x01, 0x01, 0x00, 0x24, 0x21, 0x12, 0xa4, 0x42, 0x7e, 0x57, 0x96, 0x68, 0x29, 0xf4,
        0x44, 0x60, 0x9d, 0x1d, 0xea, 0xa6, 0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0xe9, 0xd3,
        0x48, 0x45, 0x21, 0x2d, 0x00, 0x04, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x96, 0x4d, 0x48,
        0xa9, 0xd4, 0x00, 0x05, 0x00, 0x08, 0x00, 0x01, 0x0d, 0x97, 0x4d, 0x48, 0xa9, 0xd5,
    };
    /* SOFTWARE with padding, FINGERPRINT, then 8 stray bytes after the message */
    static const uint8_t pion[] = {
        0x01, 0x01, 0x00, 0x24, 0x21, 0x12, 0xa4, 0x42, 0xeb, 0xc2, 0xd3, 0x6e, 0xf4,
        0x71, 0x21, 0x7c, 0x4f, 0x3e, 0x30, 0x8e, 0x80, 0x22, 0x00, 0x0a, 0x65, 0x6e,
        0x64, 0x70, 0x6f, 0x69, 0x6e, 0x74, 0x65, 0x72, 0x00, 0x00, 0x00, 0x20, 0x00,
        0x08, 0x00, 0x01, 0xce, 0x66, 0x5e, 0x12, 0xa4, 0x43, 0x80, 0x28, 0x00, 0x04,
        0xb6, 0x99, 0xbb, 0x02, 0x01, 0x01, 0x00, 0x24, 0x21, 0x12, 0xa4, 0x42,
    };
    /* IPv6 MAPPED-ADDRESS, RESPONSE-ORIGIN, then XOR-MAPPED-ADDRESS */
    static const uint8_t stuntman6[] = {
        0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0x06, 0xf5, 0x66, 0x85, 0xd2, 0x8a,
        0xf3, 0xe6, 0x9c, 0xe3, 0x41, 0xe2, 0x00, 0x01, 0x00, 0x14, 0x00, 0x02, 0x90, 0xce,
        0x26, 0x02, 0x00, 0xd1, 0xb4, 0xcf, 0xc1, 0x00, 0x38, 0xb2, 0x31, 0xff, 0xfe, 0xef,
        0x96, 0xf6, 0x80, 0x2b, 0x00, 0x14, 0x00, 0x02, 0x0d, 0x96, 0x26, 0x04, 0xa8, 0x80,
        0x00, 0x02, 0x00, 0xd1, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc5, 0x70, 0x01, 0x00, 0x20,
        0x00, 0x14, 0x00, 0x02, 0xb1, 0xdc, 0x07, 0x10, 0xa4, 0x93, 0xb2, 0x3a, 0xa7, 0x85,
        0xea, 0x38, 0xc2, 0x19, 0x62, 0x0c, 0xd7, 0x14,
    };
    /* IPv6 family carrying an IPv4-mapped address */
    static const uint8_t mapped4in6[] = {
        0x01, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42, 0x4f, 0xd5, 0xd2, 0x02, 0xdc, 0xb3, 0x7d,
        0x31, 0xfc, 0x77, 0x33, 0x06, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xcd, 0x3d, 0x21, 0x12,
        0xa4, 0x42, 0x4f, 0xd5, 0xd2, 0x02, 0xdc, 0xb3, 0x82, 0xce, 0x2d, 0xc3, 0xfc, 0xc7,
    };
    uint8_t txid[STUN_TXID_LEN];
    struct sockaddr_storage ss;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(stun_parse_binding_response(google, sizeof(google), txid, &ss, err), 0);
    assert_memory_equal(txid, google + 8, STUN_TXID_LEN);
    assert_addr(&ss, "72.69.33.45", 59028);
    assert_int_equal(stun_parse_binding_response(powervoip, sizeof(powervoip), txid, &ss, err), 0);
    assert_addr(&ss, "72.69.33.45", 59859);
    assert_int_equal(stun_parse_binding_response(pion, sizeof(pion), txid, &ss, err), 0);
    assert_addr(&ss, "127.0.0.1", 61300);
    assert_int_equal(stun_parse_binding_response(stuntman6, sizeof(stuntman6), txid, &ss, err), 0);
    assert_addr(&ss, "2602:d1:b4cf:c100:38b2:31ff:feef:96f6", 37070);
    assert_int_equal(stun_parse_binding_response(mapped4in6, sizeof(mapped4in6), txid, &ss, err),
                     0);
    assert_addr(&ss, "209.180.207.193", 60463);
}

static void test_stun_response_rejects(void **state)
{
    (void)state;
    uint8_t buf[STUN_BINDING_RESPONSE_MAX_LEN];

    memcpy(buf, TS_RESPONSE_V4, STUN_HEADER_LEN);
    buf[3] = 0; /* header only: no address */
    assert_response_rejected(buf, STUN_HEADER_LEN, "no mapped address");

    memcpy(buf, TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4));
    buf[25] = 3; /* unknown family */
    assert_response_rejected(buf, sizeof(TS_RESPONSE_V4), "family");

    memcpy(buf, TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4));
    buf[25] = STUN_FAMILY_IPV6; /* IPv6 family in an 8-byte value */
    assert_response_rejected(buf, sizeof(TS_RESPONSE_V4), "too short");

    memcpy(buf, TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4));
    buf[4] = 0; /* cookie */
    assert_response_rejected(buf, sizeof(TS_RESPONSE_V4), "cookie");
}

/* Live tests: the server and a client socket on one loop. The client's read
 * callback stops the loop at the first reply; a guard timer stops it if no
 * reply comes. */
struct live {
    struct dc_loop *loop;
    struct dc_io client;
    struct dc_timer guard;
    uint8_t reply[2048];
    ssize_t reply_len;
    bool is_timed_out;
};

static void on_client_readable(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct live *l = io->data;
    l->reply_len = recv(io->fd, l->reply, sizeof(l->reply), MSG_DONTWAIT);
    if (l->reply_len >= 0) {
        dc_loop_stop(loop);
    }
}

static void on_guard(struct dc_loop *loop, struct dc_timer *t)
{
    struct live *l = t->data;
    l->is_timed_out = true;
    dc_loop_stop(loop);
}

/* Opens a UDP socket on the family's loopback, connected to the server's
 * port; returns the fd (or -1 when the family is unavailable) and its port. */
static int open_client(int family, uint16_t server_port, uint16_t *local_port)
{
    const char *ip = family == AF_INET ? "127.0.0.1" : "::1";
    struct sockaddr_storage local = make_addr(ip, 0), server = make_addr(ip, server_port);
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&local, len) < 0 ||
        connect(fd, (struct sockaddr *)&server, len) < 0) {
        close(fd);
        return -1;
    }
    socklen_t got_len = sizeof(local);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&local, &got_len), 0);
    *local_port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
                                          : ((struct sockaddr_in6 *)&local)->sin6_port);
    return fd;
}

static void live_start(struct live *l)
{
    memset(l, 0, sizeof(*l));
    l->loop = dc_loop_new();
    assert_non_null(l->loop);
    l->client.cb = on_client_readable;
    l->client.data = l;
    l->guard.cb = on_guard;
    l->guard.data = l;
}

/* Opens the client (see open_client) and watches it on the loop. */
static int live_attach_client(struct live *l, int family, uint16_t server_port, uint16_t *port)
{
    int fd = open_client(family, server_port, port);
    assert_true(fd >= 0);
    l->client.fd = fd;
    assert_int_equal(dc_io_start(l->loop, &l->client, DC_IO_READ), 0);
    return fd;
}

/* Runs the loop until the client gets one datagram; fails on the guard. */
static void live_wait_reply(struct live *l)
{
    l->reply_len = -1;
    dc_timer_start(l->loop, &l->guard, LIVE_GUARD_MS);
    assert_int_equal(dc_loop_run(l->loop), 0);
    dc_timer_stop(l->loop, &l->guard);
    assert_false(l->is_timed_out);
    assert_true(l->reply_len > 0);
}

static void send_request(int fd, const uint8_t txid[static STUN_TXID_LEN])
{
    uint8_t req[STUN_BINDING_REQUEST_LEN];
    assert_int_equal(stun_encode_binding_request(txid, req, sizeof(req)), sizeof(req));
    assert_int_equal(send(fd, req, sizeof(req), 0), (ssize_t)sizeof(req));
}

/* Sends one request from client_fd and checks the reply maps to want_ip and
 * the client's port, with the wanted family byte. */
static void live_exchange(struct live *l, int fd, uint8_t txid_byte, const char *want_ip,
                          uint16_t port, uint8_t want_family)
{
    uint8_t txid[STUN_TXID_LEN], got[STUN_TXID_LEN];
    memset(txid, txid_byte, sizeof(txid));
    send_request(fd, txid);
    live_wait_reply(l);
    struct sockaddr_storage ss;
    char err[DC_ERR_LEN] = "";
    int rc = stun_parse_binding_response(l->reply, (size_t)l->reply_len, got, &ss, err);
    if (rc != 0) {
        fail_msg("reply rejected: %s", err);
    }
    assert_memory_equal(got, txid, STUN_TXID_LEN);
    assert_int_equal(l->reply[STUN_HEADER_LEN + 5], want_family);
    assert_addr(&ss, want_ip, port);
}

static void live_finish(struct live *l, struct stun_server *s, int fd)
{
    stun_server_stop(s);
    dc_io_stop(l->loop, &l->client);
    close(fd);
    dc_loop_free(l->loop);
}

static void test_stun_server_live(void **state)
{
    (void)state;
    static struct stun_server s; /* zero: stopped */
    struct live l;
    char err[DC_ERR_LEN] = "";
    stun_server_stop(&s); /* safe when never started */
    assert_int_equal(stun_server_port(&s), 0);

    live_start(&l);
    assert_int_equal(stun_server_start(&s, l.loop, "127.0.0.1:0", err), 0);
    assert_int_not_equal(stun_server_port(&s), 0);
    assert_int_equal(stun_server_start(&s, l.loop, "127.0.0.1:0", err), -EBUSY);

    uint16_t cport;
    int fd = live_attach_client(&l, AF_INET, stun_server_port(&s), &cport);

    live_exchange(&l, fd, 0xa1, "127.0.0.1", cport, STUN_FAMILY_IPV4);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.responses, 1);
    assert_int_equal(s.ignored, 0);

    /* garbage in one burst, then a request: the first reply must be its */
    uint8_t junk[2000];
    memset(junk, 0x5a, sizeof(junk));
    uint8_t bad_fp[sizeof(TS_REQUEST)];
    memcpy(bad_fp, TS_REQUEST, sizeof(bad_fp));
    bad_fp[sizeof(bad_fp) - 1] ^= 1;
    uint8_t oversized[2000] = {0x00, 0x01, 0x07, 0xbc, 0x21, 0x12, 0xa4, 0x42};
    memcpy(oversized + 20, "\x80\x22\x07\xb8", 4); /* valid shape, but > STUN_SERVER_RECV_LEN */
    assert_int_equal(send(fd, junk, 100, 0), 100);
    assert_int_equal(send(fd, junk, 0, 0), 0);
    assert_int_equal(send(fd, TS_REQUEST, 19, 0), 19);
    assert_int_equal(send(fd, bad_fp, sizeof(bad_fp), 0), (ssize_t)sizeof(bad_fp));
    assert_int_equal(send(fd, TS_RESPONSE_V4, sizeof(TS_RESPONSE_V4), 0),
                     (ssize_t)sizeof(TS_RESPONSE_V4));
    assert_int_equal(send(fd, oversized, sizeof(oversized), 0), (ssize_t)sizeof(oversized));
    live_exchange(&l, fd, 0xb2, "127.0.0.1", cport, STUN_FAMILY_IPV4);
    assert_int_equal(s.ignored, 6);
    assert_int_equal(s.requests, 2);

    /* and it keeps answering; nothing else is queued for the client */
    live_exchange(&l, fd, 0xc3, "127.0.0.1", cport, STUN_FAMILY_IPV4);
    assert_int_equal(s.requests, 3);
    assert_int_equal(s.responses, 3);
    assert_int_equal(s.send_errors, 0);
    assert_int_equal(recv(fd, l.reply, sizeof(l.reply), MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

    live_finish(&l, &s, fd);
    assert_int_equal(stun_server_port(&s), 0);
    stun_server_stop(&s); /* twice is fine */
}

/* ":port" is dual-stack: an IPv4 client arrives as ::ffff:127.0.0.1 and
 * must be answered with the IPv4 family. */
static void test_stun_server_dual_stack(void **state)
{
    (void)state;
    static struct stun_server s;
    struct live l;
    char err[DC_ERR_LEN] = "";
    live_start(&l);
    if (stun_server_start(&s, l.loop, ":0", err) != 0) {
        dc_loop_free(l.loop);
        skip(); /* no IPv6 in this environment */
    }
    uint16_t cport;
    int fd = live_attach_client(&l, AF_INET, stun_server_port(&s), &cport);
    live_exchange(&l, fd, 0xd4, "127.0.0.1", cport, STUN_FAMILY_IPV4);
    live_finish(&l, &s, fd);
}

static void test_stun_server_ipv6(void **state)
{
    (void)state;
    static struct stun_server s;
    struct live l;
    char err[DC_ERR_LEN] = "";
    live_start(&l);
    if (stun_server_start(&s, l.loop, "[::1]:0", err) != 0) {
        dc_loop_free(l.loop);
        skip(); /* no IPv6 loopback in this environment */
    }
    uint16_t cport;
    int fd = live_attach_client(&l, AF_INET6, stun_server_port(&s), &cport);
    live_exchange(&l, fd, 0xe5, "::1", cport, STUN_FAMILY_IPV6);
    live_finish(&l, &s, fd);
}

static void test_stun_server_bad_address(void **state)
{
    (void)state;
    static struct stun_server s;
    struct dc_loop *loop = dc_loop_new();
    assert_non_null(loop);
    char err[DC_ERR_LEN] = "";
    assert_true(stun_server_start(&s, loop, "not-an-address", err) < 0);
    assert_true(err[0] != '\0');
    assert_int_equal(stun_server_port(&s), 0);
    stun_server_stop(&s);
    dc_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stun_request_roundtrip),
        cmocka_unit_test(test_stun_tailscale_request_bytes),
        cmocka_unit_test(test_stun_plain_request),
        cmocka_unit_test(test_stun_reject_bad_cookie),
        cmocka_unit_test(test_stun_reject_wrong_type),
        cmocka_unit_test(test_stun_reject_truncated),
        cmocka_unit_test(test_stun_reject_bad_attribute_length),
        cmocka_unit_test(test_stun_reject_bad_fingerprint),
        cmocka_unit_test(test_stun_response_roundtrip_v4),
        cmocka_unit_test(test_stun_response_roundtrip_v6),
        cmocka_unit_test(test_stun_response_roundtrip_v4_mapped),
        cmocka_unit_test(test_stun_response_tailscale_bytes),
        cmocka_unit_test(test_stun_response_real_servers),
        cmocka_unit_test(test_stun_response_rejects),
        cmocka_unit_test(test_stun_server_live),
        cmocka_unit_test(test_stun_server_dual_stack),
        cmocka_unit_test(test_stun_server_ipv6),
        cmocka_unit_test(test_stun_server_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
