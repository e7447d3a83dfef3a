#include "http.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Every parse runs on a heap copy of exactly len bytes, so AddressSanitizer
 * catches any read past len (a string literal would hide one). */
static char *copy_exact(const char *s, size_t len)
{
    char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static ssize_t parse_req(const char *s, size_t len, struct http_request *req, char *err)
{
    char *buf = copy_exact(s, len);
    ssize_t n = http_request_parse(buf, len, req, err);
    free(buf); /* callers look only at n and err, never at spans */
    return n;
}

static ssize_t parse_resp(const char *s, size_t len, struct http_response *resp, char *err)
{
    char *buf = copy_exact(s, len);
    ssize_t n = http_response_parse(buf, len, resp, err);
    free(buf);
    return n;
}

static void assert_span(struct dc_span sp, const char *want)
{
    size_t n = strlen(want);
    if (sp.len != n || (n > 0 && memcmp(sp.p, want, n) != 0)) {
        fail_msg("span `%.*s' != `%s'", (int)sp.len, sp.p != NULL ? (const char *)sp.p : "", want);
    }
}

static struct dc_span span_str(const char *s)
{
    struct dc_span sp = {.p = (const uint8_t *)s, .len = strlen(s)};
    return sp;
}

static const char derp_req[] = "GET /derp HTTP/1.1\r\n"
                               "Host: derp.example.com\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: DERP\r\n"
                               "Derp-Fast-Start: 1\r\n"
                               "\r\n";

static void test_http_request_complete(void **state)
{
    (void)state;
    struct http_request req;
    char err[DC_ERR_LEN] = "";
    size_t len = strlen(derp_req);
    ssize_t n = http_request_parse(derp_req, len, &req, err);
    assert_int_equal(n, (ssize_t)len);
    assert_span(req.method, "GET");
    assert_span(req.target, "/derp");
    assert_span(req.path, "/derp");
    assert_int_equal(req.query.len, 0);
    assert_int_equal(req.authority.len, 0);
    assert_int_equal(req.minor_version, 1);
    assert_int_equal(req.num_headers, 4);
    assert_span(req.headers[0].name, "Host");
    assert_span(req.headers[0].value, "derp.example.com");
    assert_span(req.headers[3].name, "Derp-Fast-Start");
    assert_span(req.headers[3].value, "1");
    assert_string_equal(err, "");
}

static void test_http_request_incremental(void **state)
{
    (void)state;
    const char *msg = "POST /derpmap?wait=30 HTTP/1.0\r\nIf-None-Match: \"abc\"\r\n"
                      "X-Empty:\r\nX-Tabs:\t v \t\r\n\r\n";
    size_t len = strlen(msg);
    struct http_request req;
    char err[DC_ERR_LEN] = "";
    for (size_t k = 0; k < len; k++) {
        ssize_t n = parse_req(msg, k, &req, err);
        if (n != 0) {
            fail_msg("prefix of %zu bytes returned %zd (%s)", k, n, err);
        }
    }
    char *buf = copy_exact(msg, len);
    assert_int_equal(http_request_parse(buf, len, &req, err), (ssize_t)len);
    assert_span(req.method, "POST");
    assert_span(req.path, "/derpmap");
    assert_span(req.query, "wait=30");
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.num_headers, 3);
    assert_span(req.headers[0].value, "\"abc\"");
    assert_span(req.headers[1].value, "");
    assert_span(req.headers[2].value, "v");
    free(buf);
}

static void test_http_request_pipelined(void **state)
{
    (void)state;
    const char *msg = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
                      "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /x";
    size_t len = strlen(msg);
    size_t first = strlen("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    struct http_request req;
    ssize_t n = http_request_parse(msg, len, &req, NULL);
    assert_int_equal(n, (ssize_t)first);
    assert_span(req.method, "GET");

    ssize_t m = http_request_parse(msg + n, len - (size_t)n, &req, NULL);
    assert_int_equal(m, (ssize_t)strlen("HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(req.method, "HEAD");

    assert_int_equal(http_request_parse(msg + n + m, len - (size_t)(n + m), &req, NULL), 0);
}

static void test_http_request_fast_start(void **state)
{
    (void)state;
    /* Fast-start client: the ClientInfo frame follows the head at once. */
    uint8_t frame[5 + 32 + 24] = {0x02, 0x00, 0x00, 0x00, 32 + 24, '\r', '\n', '\r', '\n', 0};
    for (size_t i = 9; i < sizeof(frame); i++) {
        frame[i] = (uint8_t)(i * 37);
    }
    size_t hlen = strlen(derp_req);
    char *buf = malloc(hlen + sizeof(frame));
    assert_non_null(buf);
    memcpy(buf, derp_req, hlen);
    memcpy(buf + hlen, frame, sizeof(frame));

    struct http_request req;
    char err[DC_ERR_LEN] = "";
    ssize_t n = http_request_parse(buf, hlen + sizeof(frame), &req, err);
    assert_int_equal(n, (ssize_t)hlen);
    assert_memory_equal(buf + n, frame, sizeof(frame));
    assert_true(http_headers_have_token(req.headers, req.num_headers, "connection", "upgrade"));
    const struct dc_span *up = http_header_get(req.headers, req.num_headers, "UPGRADE");
    assert_non_null(up);
    assert_true(http_span_eq_nocase(*up, "derp"));
    const struct dc_span *fs = http_header_get(req.headers, req.num_headers, "derp-fast-start");
    assert_non_null(fs);
    assert_span(*fs, "1");
    free(buf);
}

static void test_http_request_line_endings(void **state)
{
    (void)state;
    struct http_request req;
    const char *lf = "GET / HTTP/1.1\nHost: a\n\n";
    assert_int_equal(parse_req(lf, strlen(lf), &req, NULL), (ssize_t)strlen(lf));

    const char *mixed = "GET / HTTP/1.1\r\nHost: a\n\r\nbody";
    assert_int_equal(parse_req(mixed, strlen(mixed), &req, NULL), (ssize_t)strlen(mixed) - 4);

    /* Empty lines before the request line are skipped and counted. */
    const char *lead = "\r\n\nGET / HTTP/1.1\r\n\r\n";
    char *buf = copy_exact(lead, strlen(lead));
    assert_int_equal(http_request_parse(buf, strlen(lead), &req, NULL), (ssize_t)strlen(lead));
    assert_span(req.method, "GET");
    assert_int_equal(req.num_headers, 0);
    free(buf);
    assert_int_equal(parse_req("\r\n\r\n", 4, &req, NULL), 0);
    assert_int_equal(parse_req("", 0, &req, NULL), 0);
    assert_int_equal(http_request_parse(NULL, 0, &req, NULL), 0);
}

static void test_http_request_targets(void **state)
{
    (void)state;
    struct http_request req;
    const char *abs = "GET HTTPS://relay.example.com:8443/derp?x=1&y HTTP/1.1\r\n\r\n";
    assert_true(http_request_parse(abs, strlen(abs), &req, NULL) > 0);
    assert_span(req.authority, "relay.example.com:8443");
    assert_span(req.path, "/derp");
    assert_span(req.query, "x=1&y");

    const char *bare = "GET http://h?q HTTP/1.1\r\n\r\n";
    assert_true(http_request_parse(bare, strlen(bare), &req, NULL) > 0);
    assert_span(req.authority, "h");
    assert_span(req.path, "");
    assert_span(req.query, "q");

    const char *star = "OPTIONS * HTTP/1.1\r\n\r\n";
    assert_true(http_request_parse(star, strlen(star), &req, NULL) > 0);
    assert_span(req.path, "*");

    const char *q = "GET /generate_204? HTTP/1.1\r\n\r\n";
    assert_true(http_request_parse(q, strlen(q), &req, NULL) > 0);
    assert_span(req.path, "/generate_204");
    assert_int_equal(req.query.len, 0);
    assert_true(req.query.p != NULL); /* '?' was there, with nothing after it */
}

static void test_http_header_lookup(void **state)
{
    (void)state;
    const char *msg = "GET /generate_204 HTTP/1.1\r\nx-tailscale-challenge: ts_abc\r\n"
                      "X-TAILSCALE-CHALLENGE: second\r\nhost: h\r\n\r\n";
    struct http_request req;
    assert_true(http_request_parse(msg, strlen(msg), &req, NULL) > 0);
    const struct dc_span *v =
        http_header_get(req.headers, req.num_headers, "X-Tailscale-Challenge");
    assert_non_null(v);
    assert_span(*v, "ts_abc");
    assert_non_null(http_header_get(req.headers, req.num_headers, "Host"));
    assert_null(http_header_get(req.headers, req.num_headers, "Hos"));
    assert_null(http_header_get(req.headers, req.num_headers, "Hostt"));
    assert_null(http_header_get(req.headers, 0, "Host"));

    assert_true(http_span_eq_nocase(span_str("WebSocket"), "websocket"));
    assert_false(http_span_eq_nocase(span_str("WebSocket"), "websockets"));
    struct dc_span empty = {0};
    assert_true(http_span_eq_nocase(empty, ""));
    assert_false(http_span_eq_nocase(empty, "a"));
}

static void test_http_header_tokens(void **state)
{
    (void)state;
    assert_true(http_header_has_token(span_str("keep-alive, Upgrade"), "upgrade"));
    assert_true(http_header_has_token(span_str("Upgrade"), "UPGRADE"));
    assert_true(http_header_has_token(span_str(" ,\tupgrade\t, "), "upgrade"));
    assert_true(http_header_has_token(span_str("a,,b"), "b"));
    assert_false(http_header_has_token(span_str("upgraded"), "upgrade"));
    assert_false(http_header_has_token(span_str("keep-alive,upgrade-x"), "upgrade"));
    assert_false(http_header_has_token(span_str("keep alive"), "keep"));
    assert_false(http_header_has_token(span_str(""), "upgrade"));
    assert_false(http_header_has_token(span_str("a, ,b"), ""));

    /* A repeated Connection field: the token may be in either one. */
    const char *msg = "GET /derp HTTP/1.1\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\n\r\n";
    struct http_request req;
    assert_true(http_request_parse(msg, strlen(msg), &req, NULL) > 0);
    assert_true(http_headers_have_token(req.headers, req.num_headers, "Connection", "upgrade"));
    assert_true(http_headers_have_token(req.headers, req.num_headers, "connection", "keep-alive"));
    assert_false(http_headers_have_token(req.headers, req.num_headers, "Connection", "close"));
    assert_false(http_headers_have_token(req.headers, req.num_headers, "Upgrade", "Upgrade"));
}

static void test_http_query(void **state)
{
    (void)state;
    struct dc_span v;
    struct dc_span q = span_str("wait=30&flag&empty=&a=1&a=2&x%20y=%41");
    assert_int_equal(http_query_get(q, "wait", &v), 0);
    assert_span(v, "30");
    assert_int_equal(http_query_get(q, "flag", &v), 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(http_query_get(q, "empty", &v), 0);
    assert_int_equal(v.len, 0);
    assert_int_equal(http_query_get(q, "a", &v), 0);
    assert_span(v, "1");
    assert_int_equal(http_query_get(q, "x%20y", &v), 0);
    assert_span(v, "%41"); /* not decoded */
    assert_int_equal(http_query_get(q, "x y", &v), -ENOENT);
    assert_int_equal(http_query_get(q, "wai", &v), -ENOENT);
    assert_int_equal(http_query_get(q, "wait=", &v), -ENOENT);
    assert_int_equal(http_query_get(q, "", &v), -ENOENT);
    struct dc_span none = {0};
    assert_int_equal(http_query_get(none, "wait", &v), -ENOENT);
    assert_int_equal(v.len, 0);
    assert_int_equal(http_query_get(span_str("&&wait=5&"), "wait", &v), 0);
    assert_span(v, "5");
}

static void test_http_request_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "G ET / HTTP/1.1\r\n\r\n",              /* space inside the method */
        "GE\x01T / HTTP/1.1\r\n\r\n",           /* control byte in method */
        " GET / HTTP/1.1\r\n\r\n",              /* empty method */
        "GET(/) / HTTP/1.1\r\n\r\n",            /* '(' is not a tchar */
        "GET  / HTTP/1.1\r\n\r\n",              /* double space: empty target */
        "GET derp HTTP/1.1\r\n\r\n",            /* relative target */
        "GET ftp://h/ HTTP/1.1\r\n\r\n",        /* other scheme */
        "GET http:/// HTTP/1.1\r\n\r\n",        /* absolute-form without host */
        "GET https:/ HTTP/1.1\r\n\r\n",         /* cut scheme */
        "GET ** HTTP/1.1\r\n\r\n",              /* asterisk plus more */
        "GET /a\x7f HTTP/1.1\r\n\r\n",          /* DEL in target */
        "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",       /* raw UTF-8 in target */
        "GET /\tx HTTP/1.1\r\n\r\n",            /* tab in target */
        "GET /\r\n\r\n",                        /* HTTP/0.9 request line */
        "GET / \r\n\r\n",                       /* empty version */
        "GET / HTTP/1.2\r\n\r\n",               /* unknown minor version */
        "GET / HTTP/2.0\r\n\r\n",               /* HTTP/2 */
        "GET / http/1.1\r\n\r\n",               /* version is case-sensitive */
        "GET / HTTP/1.1 \r\n\r\n",              /* trailing space */
        "GET / HTTP/1.11\r\n\r\n",              /* long version */
        "GET / HTTP/1.1\rHost: a\r\n\r\n",      /* bare CR ending a line */
        "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", /* bare CR inside a value */
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",     /* header without colon */
        "GET / HTTP/1.1\r\nHost\r\n\r\n",       /* header without colon */
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",   /* whitespace before colon */
        "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",  /* tab before colon */
        "GET / HTTP/1.1\r\n: a\r\n\r\n",        /* empty name */
        "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n",   /* bad byte in name */
        "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", /* obsolete line folding */
        "GET / HTTP/1.1\r\n\tA: b\r\n\r\n",     /* whitespace before first field */
        "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",   /* control byte in value */
        "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",   /* DEL in value */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_request req;
        char err[DC_ERR_LEN] = "";
        ssize_t n = parse_req(bad[i], strlen(bad[i]), &req, err);
        if (n != -EINVAL || strncmp(err, "http: ", 6) != 0) {
            fail_msg("case %zu returned %zd, err `%s'", i, n, err);
        }
    }
    /* NUL is a control byte too (strlen would hide it). */
    static const char nul[] = "GET / HTTP/1.1\r\nA: b\0c\r\n\r\n";
    struct http_request req;
    assert_int_equal(parse_req(nul, sizeof(nul) - 1, &req, NULL), -EINVAL);

    /* Garbage is refused at once, without waiting for a whole head. */
    assert_int_equal(parse_req("\x16\x03\x01\x02\x00", 5, &req, NULL), -EINVAL);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA b", 19, &req, NULL), -EINVAL);
    assert_int_equal(parse_req("GET / HTTP/3", 12, &req, NULL), -EINVAL);
    assert_int_equal(parse_req("GET x", 5, &req, NULL), -EINVAL);
    assert_int_equal(parse_req("GET / HTTP/1.1\r\nA: b\r\n ", 23, &req, NULL), -EINVAL);
}

static void test_http_request_oversized(void **state)
{
    (void)state;
    /* Builds "GET / HTTP/1.1\r\nX: aaa...\r\n\r\n" of exactly total bytes. */
    size_t total = HTTP_MAX_HEAD_LEN;
    char *buf = malloc(total + 1);
    assert_non_null(buf);
    const char *start = "GET / HTTP/1.1\r\nX: ";
    memcpy(buf, start, strlen(start));
    memset(buf + strlen(start), 'a', total - strlen(start) - 4);
    memcpy(buf + total - 4, "\r\n\r\n", 4);
    struct http_request req;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(http_request_parse(buf, total, &req, err), (ssize_t)total);

    /* One byte longer: the head no longer fits. */
    memset(buf + strlen(start), 'a', total - strlen(start) - 3);
    memcpy(buf + total - 3, "\r\n\r\n", 4);
    assert_int_equal(http_request_parse(buf, total + 1, &req, err), -EMSGSIZE);
    assert_non_null(strstr(err, "16384"));
    /* The first 16 KiB alone already say so; less is still "need more". */
    assert_int_equal(http_request_parse(buf, total, &req, NULL), -EMSGSIZE);
    assert_int_equal(http_request_parse(buf, total - 1, &req, NULL), 0);
    free(buf);

    /* Endless empty lines before the request line count too. */
    char *blank = malloc(total);
    assert_non_null(blank);
    memset(blank, '\n', total);
    assert_int_equal(http_request_parse(blank, total, &req, NULL), -EMSGSIZE);
    free(blank);
}

/* Writes a request with nh headers into buf (cap bytes); returns its length. */
static size_t make_headers(char *buf, size_t cap, int nh)
{
    int off = snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < nh; i++) {
        off += snprintf(buf + off, cap - (size_t)off, "X-H%d: %d\r\n", i, i);
    }
    off += snprintf(buf + off, cap - (size_t)off, "\r\n");
    assert_true(off > 0 && (size_t)off < cap);
    return (size_t)off;
}

static void test_http_request_too_many_headers(void **state)
{
    (void)state;
    char buf[4096];
    struct http_request req;
    char err[DC_ERR_LEN] = "";
    size_t len = make_headers(buf, sizeof(buf), HTTP_MAX_HEADERS);
    assert_int_equal(http_request_parse(buf, len, &req, err), (ssize_t)len);
    assert_int_equal(req.num_headers, HTTP_MAX_HEADERS);
    assert_span(req.headers[HTTP_MAX_HEADERS - 1].value, "63");

    len = make_headers(buf, sizeof(buf), HTTP_MAX_HEADERS + 1);
    assert_int_equal(http_request_parse(buf, len, &req, err), -EMSGSIZE);
    assert_non_null(strstr(err, "64"));
}

static void test_http_response_101(void **state)
{
    (void)state;
    /* Head, then the start of the ServerKey frame (type 1, length 40). */
    static const char msg[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\n"
                              "Connection: Upgrade\r\nDerp-Version: 2\r\n"
                              "Derp-Public-Key: 0123abcd\r\n\r\n"
                              "\x01\x00\x00\x00\x28";
    size_t len = sizeof(msg) - 1;
    struct http_response resp;
    char err[DC_ERR_LEN] = "";
    char *buf = copy_exact(msg, len);
    ssize_t n = http_response_parse(buf, len, &resp, err);
    assert_int_equal(n, (ssize_t)len - 5);
    assert_int_equal(resp.status, 101);
    assert_int_equal(resp.minor_version, 1);
    assert_span(resp.reason, "Switching Protocols");
    assert_int_equal(resp.num_headers, 4);
    assert_true(http_headers_have_token(resp.headers, resp.num_headers, "connection", "upgrade"));
    const struct dc_span *v = http_header_get(resp.headers, resp.num_headers, "derp-version");
    assert_non_null(v);
    assert_span(*v, "2");
    free(buf);

    for (size_t k = 0; k < (size_t)n; k++) {
        assert_int_equal(parse_resp(msg, k, &resp, err), 0);
    }
}

static void test_http_response_200_404(void **state)
{
    (void)state;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "ETag: \"9f1c\"\r\nContent-Length: 2\r\n\r\n{}";
    struct http_response resp;
    ssize_t n = http_response_parse(ok, strlen(ok), &resp, NULL);
    assert_int_equal(n, (ssize_t)strlen(ok) - 2);
    assert_int_equal(resp.status, 200);
    assert_span(resp.reason, "OK");
    assert_span(*http_header_get(resp.headers, resp.num_headers, "etag"), "\"9f1c\"");

    const char *nf = "HTTP/1.0 404 Not Found\nContent-Length: 0\n\n";
    n = http_response_parse(nf, strlen(nf), &resp, NULL);
    assert_int_equal(n, (ssize_t)strlen(nf));
    assert_int_equal(resp.status, 404);
    assert_int_equal(resp.minor_version, 0);
    assert_span(resp.reason, "Not Found");

    /* The reason phrase may be empty or missing altogether (Go accepts both). */
    const char *bare = "HTTP/1.1 204\r\n\r\n";
    assert_int_equal(parse_resp(bare, strlen(bare), &resp, NULL), (ssize_t)strlen(bare));
    const char *empty = "HTTP/1.1 599 \r\n\r\n";
    assert_int_equal(http_response_parse(empty, strlen(empty), &resp, NULL),
                     (ssize_t)strlen(empty));
    assert_int_equal(resp.status, 599);
    assert_int_equal(resp.reason.len, 0);
}

static void test_http_response_bad_status_line(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",                 /* two digits */
        "HTTP/1.1 2000 OK\r\n\r\n",               /* four digits */
        "HTTP/1.1 099 OK\r\n\r\n",                /* below 100 */
        "HTTP/1.1 2x0 OK\r\n\r\n",                /* not a digit */
        "HTTP/1.1  200 OK\r\n\r\n",               /* double space */
        "HTTP/1.1\r\n\r\n",                       /* no status */
        "HTTP/1.1 \r\n\r\n",                      /* empty status */
        "HTTP/2 200 OK\r\n\r\n",                  /* not HTTP/1.x */
        "HTTP/1.2 200 OK\r\n\r\n",                /* unknown minor */
        "ICY 200 OK\r\n\r\n",                     /* not HTTP */
        "\r\nHTTP/1.1 200 OK\r\n\r\n",            /* empty line first */
        "HTTP/1.1 200 O\x01K\r\n\r\n",            /* control byte in reason */
        "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",       /* whitespace before colon */
        "HTTP/1.1 200 OK\r\nA: b\r\n\tc\r\n\r\n", /* folding */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_response resp;
        char err[DC_ERR_LEN] = "";
        ssize_t n = parse_resp(bad[i], strlen(bad[i]), &resp, err);
        if (n != -EINVAL || strncmp(err, "http: ", 6) != 0) {
            fail_msg("case %zu returned %zd, err `%s'", i, n, err);
        }
    }
    struct http_response resp;
    assert_int_equal(parse_resp("HTTP/1.1 2", 10, &resp, NULL), 0);
    assert_int_equal(parse_resp("HTTP/1.1 200", 12, &resp, NULL), 0);
    assert_int_equal(parse_resp("HTTP/1.1 200 OK\r", 16, &resp, NULL), 0);
    assert_int_equal(parse_resp("SSH-2.0-OpenSSH", 15, &resp, NULL), -EINVAL);
}

static void test_http_response_oversized(void **state)
{
    (void)state;
    char *buf = malloc(HTTP_MAX_HEAD_LEN);
    assert_non_null(buf);
    const char *start = "HTTP/1.1 200 OK\r\nX: ";
    memcpy(buf, start, strlen(start));
    memset(buf + strlen(start), 'a', HTTP_MAX_HEAD_LEN - strlen(start));
    struct http_response resp;
    assert_int_equal(http_response_parse(buf, HTTP_MAX_HEAD_LEN, &resp, NULL), -EMSGSIZE);
    assert_int_equal(http_response_parse(buf, HTTP_MAX_HEAD_LEN - 1, &resp, NULL), 0);
    free(buf);
}

static void test_http_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(101), "Switching Protocols");
    assert_string_equal(http_status_text(200), "OK");
    assert_string_equal(http_status_text(204), "No Content");
    assert_string_equal(http_status_text(304), "Not Modified");
    assert_string_equal(http_status_text(400), "Bad Request");
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(405), "Method Not Allowed");
    assert_string_equal(http_status_text(408), "Request Timeout");
    assert_string_equal(http_status_text(413), "Content Too Large");
    assert_string_equal(http_status_text(426), "Upgrade Required");
    assert_string_equal(http_status_text(429), "Too Many Requests");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(500), "Internal Server Error");
    assert_string_equal(http_status_text(503), "Service Unavailable");
    assert_string_equal(http_status_text(299), "");
    assert_string_equal(http_status_text(-1), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_request_complete),
        cmocka_unit_test(test_http_request_incremental),
        cmocka_unit_test(test_http_request_pipelined),
        cmocka_unit_test(test_http_request_fast_start),
        cmocka_unit_test(test_http_request_line_endings),
        cmocka_unit_test(test_http_request_targets),
        cmocka_unit_test(test_http_header_lookup),
        cmocka_unit_test(test_http_header_tokens),
        cmocka_unit_test(test_http_query),
        cmocka_unit_test(test_http_request_malformed),
        cmocka_unit_test(test_http_request_oversized),
        cmocka_unit_test(test_http_request_too_many_headers),
        cmocka_unit_test(test_http_response_101),
        cmocka_unit_test(test_http_response_200_404),
        cmocka_unit_test(test_http_response_bad_status_line),
        cmocka_unit_test(test_http_response_oversized),
        cmocka_unit_test(test_http_status_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
