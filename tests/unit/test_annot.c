/* test_annot: the loft.sh/derp-endpoint and loft.sh/derp-endpoint-insecure
 * parsers (controller/annot.c): every accepted form with its exact result,
 * and every rejection with a sentence naming the problem and quoting the value. */
#include "annot.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Parses s (a C string, or len bytes of it) and checks the result. */
static void accept_n(const char *s, size_t len, const char *host, uint16_t port, bool is_ipv4,
                     bool is_ipv6)
{
    struct annot_endpoint ep;
    char err[DC_ERR_LEN] = "";
    int rc = annot_endpoint_parse(s, len, &ep, err);
    if (rc != 0) {
        print_error("`%.*s': %s\n", (int)len, s, err);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(ep.host, host);
    assert_int_equal(ep.port, port);
    assert_int_equal(ep.is_ipv4, is_ipv4);
    assert_int_equal(ep.is_ipv6, is_ipv6);
    /* The same without err. */
    struct annot_endpoint quiet;
    assert_int_equal(annot_endpoint_parse(s, len, &quiet, NULL), 0);
    assert_memory_equal(&quiet, &ep, sizeof(ep));
}

static void accept(const char *s, const char *host, uint16_t port, bool is_ipv4, bool is_ipv6)
{
    accept_n(s, strlen(s), host, port, is_ipv4, is_ipv6);
}

/* Parses s, expects -EINVAL, a zeroed *out and the exact sentence want. */
static void reject_n(const char *s, size_t len, const char *want)
{
    struct annot_endpoint ep;
    memset(&ep, 0xa5, sizeof(ep));
    char err[DC_ERR_LEN] = "";
    int rc = annot_endpoint_parse(s, len, &ep, err);
    if (rc != -EINVAL || strcmp(err, want) != 0) {
        print_error("`%.*s': rc %d: %s\n", (int)len, s, rc, err);
    }
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err, want);
    struct annot_endpoint zero = {0};
    assert_memory_equal(&ep, &zero, sizeof(ep));
    assert_int_equal(annot_endpoint_parse(s, len, &ep, NULL), -EINVAL);
}

static void reject(const char *s, const char *want)
{
    reject_n(s, strlen(s), want);
}

static void test_annot_constants(void **state)
{
    (void)state;
    assert_string_equal(ANNOT_ENDPOINT, "loft.sh/derp-endpoint");
    assert_string_equal(ANNOT_INSECURE, "loft.sh/derp-endpoint-insecure");
}

static void test_annot_dns(void **state)
{
    (void)state;
    accept("eu-west-cluster.example.com", "eu-west-cluster.example.com", 0, false, false);
    accept("localhost", "localhost", 0, false, false);
    accept("a", "a", 0, false, false);
    accept("1e100.net", "1e100.net", 0, false, false);
    accept("xn--bcher-kva.example", "xn--bcher-kva.example", 0, false, false);
    accept("123.example.com", "123.example.com", 0, false, false);
    accept("a-b--c.d9", "a-b--c.d9", 0, false, false);
}

static void test_annot_dns_port(void **state)
{
    (void)state;
    accept("eu.example.com:443", "eu.example.com", 443, false, false);
    accept("eu.example.com:8443", "eu.example.com", 8443, false, false);
    accept("eu.example.com:1", "eu.example.com", 1, false, false);
    accept("eu.example.com:65535", "eu.example.com", 65535, false, false);
}

static void test_annot_ipv4(void **state)
{
    (void)state;
    accept("192.0.2.10", "192.0.2.10", 0, true, false);
    accept("0.0.0.0", "0.0.0.0", 0, true, false);
    accept("255.255.255.255", "255.255.255.255", 0, true, false);
    accept("192.0.2.10:8443", "192.0.2.10", 8443, true, false);
}

static void test_annot_ipv6(void **state)
{
    (void)state;
    accept("fd00::1", "fd00::1", 0, false, true);
    accept("::1", "::1", 0, false, true);
    /* Bare: two or more colons are all address, so this has no port. */
    accept("fd00::1:8443", "fd00::1:8443", 0, false, true);
    accept("[fd00::1]", "fd00::1", 0, false, true);
    accept("[fd00::1]:8443", "fd00::1", 8443, false, true);
    accept("[2001:db8::10]:443", "2001:db8::10", 443, false, true);
    /* Canonical text (inet_ntop): lower case, zeros compressed. */
    accept("FD00:0:0:0:0:0:0:1", "fd00::1", 0, false, true);
    accept("[2001:DB8:0::A]:1", "2001:db8::a", 1, false, true);
    accept("[::ffff:192.0.2.1]:443", "::ffff:192.0.2.1", 443, false, true);
}

static void test_annot_trailing_dot(void **state)
{
    (void)state;
    accept("eu.example.com.", "eu.example.com", 0, false, false);
    accept("eu.example.com.:8443", "eu.example.com", 8443, false, false);
}

static void test_annot_lower_case(void **state)
{
    (void)state;
    accept("EU-West.Example.COM", "eu-west.example.com", 0, false, false);
    accept("EU.EXAMPLE.COM.:443", "eu.example.com", 443, false, false);
}

static void test_annot_lengths(void **state)
{
    (void)state;
    char name[300];
    /* 63-byte label: fine; 64: too long. */
    memset(name, 'a', 63);
    memcpy(name + 63, ".com", 5);
    accept(name, name, 0, false, false);
    memset(name, 'a', 64);
    memcpy(name + 64, ".com", 5);
    reject(name,
           "derp-endpoint: label "
           "`aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is longer "
           "than 63 bytes: `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com'");
    /* 253 bytes in all (four labels 63+1+63+1+63+1+61): fine, also with a dot and port. */
    size_t o = 0;
    for (int i = 0; i < 4; i++) {
        size_t n = i < 3 ? 63 : 61;
        memset(name + o, 'b', n);
        o += n;
        name[o++] = '.';
    }
    name[--o] = '\0';
    assert_int_equal(strlen(name), 253);
    accept(name, name, 0, false, false);
    char with_port[300];
    int w = snprintf(with_port, sizeof(with_port), "%s.:65535", name);
    assert_int_equal(w, 260);
    accept(with_port, name, 65535, false, false);
    /* 254: too long. The quote is cut after 96 bytes. */
    name[253] = 'b';
    name[254] = '\0';
    struct annot_endpoint ep;
    char err[DC_ERR_LEN];
    assert_int_equal(annot_endpoint_parse(name, 254, &ep, err), -EINVAL);
    assert_non_null(strstr(err, "derp-endpoint: host name longer than 253 bytes: `bbbb"));
    assert_non_null(strstr(err, "bbb...'"));
    /* Over the whole-value limit. */
    char big[400];
    memset(big, 'c', sizeof(big));
    assert_int_equal(annot_endpoint_parse(big, sizeof(big), &ep, err), -EINVAL);
    assert_non_null(strstr(err, "derp-endpoint: longer than 260 bytes: `ccc"));
}

static void test_annot_not_nul_terminated(void **state)
{
    (void)state;
    /* Only len bytes are read. */
    accept_n("eu.example.com:443garbage", 18, "eu.example.com", 443, false, false);
    accept_n("[fd00::1]]]", 9, "fd00::1", 0, false, true);
    accept_n("fd00::1%x", 7, "fd00::1", 0, false, true);
}

static void test_annot_empty(void **state)
{
    (void)state;
    reject("", "derp-endpoint: value is empty");
    reject_n(NULL, 0, "derp-endpoint: value is empty");
}

static void test_annot_whitespace(void **state)
{
    (void)state;
    reject(" eu.example.com", "derp-endpoint: surrounding whitespace: ` eu.example.com'");
    reject("eu.example.com ", "derp-endpoint: surrounding whitespace: `eu.example.com '");
    reject("eu.example.com\n", "derp-endpoint: surrounding whitespace: `eu.example.com\\x0a'");
    reject("eu. example.com", "derp-endpoint: contains whitespace: `eu. example.com'");
    reject("eu.example.com:\t443", "derp-endpoint: contains whitespace: `eu.example.com:\\x09443'");
    reject(" ", "derp-endpoint: surrounding whitespace: ` '");
}

static void test_annot_bad_bytes(void **state)
{
    (void)state;
    reject_n("eu\0.example.com", 15, "derp-endpoint: control byte 0x00: `eu\\x00.example.com'");
    reject("eu\x7f.com", "derp-endpoint: control byte 0x7f: `eu\\x7f.com'");
    reject("b\xc3\xbc"
           "cher.example",
           "derp-endpoint: non-ASCII byte 0xc3 (write an internationalized name in its `xn--' "
           "form): `b\\xc3\\xbccher.example'");
}

static void test_annot_scheme(void **state)
{
    (void)state;
    reject(
        "https://eu.example.com",
        "derp-endpoint: has a URL scheme `https://'; want host[:port]: `https://eu.example.com'");
    reject("http://eu.example.com:80/derp", "derp-endpoint: has a URL scheme `http://'; want "
                                            "host[:port]: `http://eu.example.com:80/derp'");
    reject("wss://a", "derp-endpoint: has a URL scheme `wss://'; want host[:port]: `wss://a'");
}

static void test_annot_path_query_fragment(void **state)
{
    (void)state;
    reject("eu.example.com/derp",
           "derp-endpoint: has a path `/derp'; want host[:port]: `eu.example.com/derp'");
    reject("eu.example.com:443/", "derp-endpoint: has a path `/'; want host[:port]: "
                                  "`eu.example.com:443/'");
    reject("//eu.example.com",
           "derp-endpoint: has a path `//eu.example.com'; want host[:port]: `//eu.example.com'");
    reject("eu.example.com?x=1",
           "derp-endpoint: has a query `?x=1'; want host[:port]: `eu.example.com?x=1'");
    reject("eu.example.com#top",
           "derp-endpoint: has a fragment `#top'; want host[:port]: `eu.example.com#top'");
}

static void test_annot_userinfo(void **state)
{
    (void)state;
    reject("a@b", "derp-endpoint: has userinfo `a@'; want host[:port]: `a@b'");
    reject(
        "user:pw@eu.example.com:443",
        "derp-endpoint: has userinfo `user:pw@'; want host[:port]: `user:pw@eu.example.com:443'");
    /* An @ after the path start is part of the path. */
    reject("a/b@c", "derp-endpoint: has a path `/b@c'; want host[:port]: `a/b@c'");
}

static void test_annot_bad_labels(void **state)
{
    (void)state;
    reject("-bad.example.com", "derp-endpoint: label `-bad' starts with `-': `-bad.example.com'");
    reject("bad-.example.com", "derp-endpoint: label `bad-' ends with `-': `bad-.example.com'");
    reject("eu.example-", "derp-endpoint: label `example-' ends with `-': `eu.example-'");
    reject("a..b", "derp-endpoint: empty label in host name: `a..b'");
    reject(".example.com", "derp-endpoint: empty label in host name: `.example.com'");
    reject(".", "derp-endpoint: empty label in host name: `.'");
    reject("a.b..", "derp-endpoint: empty label in host name: `a.b..'");
    reject("under_score.example.com",
           "derp-endpoint: invalid character `_' in host name: `under_score.example.com'");
    reject("a*.example.com", "derp-endpoint: invalid character `*' in host name: `a*.example.com'");
    reject("a,b", "derp-endpoint: invalid character `,' in host name: `a,b'");
}

static void test_annot_bad_ipv4(void **state)
{
    (void)state;
    reject("1.2.3.256", "derp-endpoint: not a valid IPv4 address: `1.2.3.256'");
    reject("01.2.3.4", "derp-endpoint: not a valid IPv4 address: `01.2.3.4'");
    reject("1.2.3", "derp-endpoint: not a valid IPv4 address: `1.2.3'");
    reject("1.2.3.4.5", "derp-endpoint: not a valid IPv4 address: `1.2.3.4.5'");
    reject("123", "derp-endpoint: not a valid IPv4 address: `123'");
    reject("example.123", "derp-endpoint: not a valid IPv4 address: `example.123'");
    reject("1.2.3.4.", "derp-endpoint: not a valid IPv4 address: `1.2.3.4.'");
    reject("1.2.3.256:443", "derp-endpoint: not a valid IPv4 address: `1.2.3.256:443'");
}

static void test_annot_bad_ipv6(void **state)
{
    (void)state;
    reject("fd00:::1", "derp-endpoint: not a valid IPv6 address: `fd00:::1'");
    reject("[fd00::g]", "derp-endpoint: not a valid IPv6 address: `[fd00::g]'");
    reject("eu.example.com:443:1", "derp-endpoint: more than one `:' (an IPv6 address with a port "
                                   "needs brackets: [addr]:port): `eu.example.com:443:1'");
    reject("fe80::1%eth0", "derp-endpoint: IPv6 zone `%eth0' is not supported: `fe80::1%eth0'");
    reject("[fe80::1%25eth0]:443",
           "derp-endpoint: IPv6 zone `%25eth0' is not supported: `[fe80::1%25eth0]:443'");
}

static void test_annot_brackets(void **state)
{
    (void)state;
    reject("[192.0.2.1]",
           "derp-endpoint: brackets around `192.0.2.1', which is not an IPv6 address: "
           "`[192.0.2.1]'");
    reject("[eu.example.com]:443", "derp-endpoint: brackets around `eu.example.com', which is not "
                                   "an IPv6 address: `[eu.example.com]:443'");
    reject("[]", "derp-endpoint: empty brackets: `[]'");
    reject("[]:443", "derp-endpoint: empty brackets: `[]:443'");
    reject("[fd00::1", "derp-endpoint: missing `]': `[fd00::1'");
    reject("fd00::1]", "derp-endpoint: unexpected `]': `fd00::1]'");
    reject("fd00::1]:443", "derp-endpoint: unexpected `]': `fd00::1]:443'");
    reject("a[fd00::1]", "derp-endpoint: unexpected `[': `a[fd00::1]'");
    reject("[fd00::1]443", "derp-endpoint: unexpected text after `]': `[fd00::1]443'");
    reject("[fd00::1]]", "derp-endpoint: unexpected text after `]': `[fd00::1]]'");
}

static void test_annot_bad_port(void **state)
{
    (void)state;
    reject("eu.example.com:70000", "derp-endpoint: port out of range: `eu.example.com:70000'");
    reject("eu.example.com:65536", "derp-endpoint: port out of range: `eu.example.com:65536'");
    reject("eu.example.com:0", "derp-endpoint: port out of range: `eu.example.com:0'");
    reject("eu.example.com:99999999999999999999999",
           "derp-endpoint: port out of range: `eu.example.com:99999999999999999999999'");
    reject("[fd00::1]:0", "derp-endpoint: port out of range: `[fd00::1]:0'");
    reject("eu.example.com:https",
           "derp-endpoint: port `https' is not a number: `eu.example.com:https'");
    reject("eu.example.com:+443",
           "derp-endpoint: port `+443' is not a number: `eu.example.com:+443'");
    reject("eu.example.com:-1", "derp-endpoint: port `-1' is not a number: `eu.example.com:-1'");
    reject("eu.example.com:0x1bb",
           "derp-endpoint: port `0x1bb' is not a number: `eu.example.com:0x1bb'");
    reject("eu.example.com:0443",
           "derp-endpoint: port `0443' has a leading zero: `eu.example.com:0443'");
    reject("eu.example.com:", "derp-endpoint: empty port: `eu.example.com:'");
    reject("[fd00::1]:", "derp-endpoint: empty port: `[fd00::1]:'");
    reject(":443", "derp-endpoint: empty host: `:443'");
}

static void test_annot_quote_escapes(void **state)
{
    (void)state;
    /* Whatever the value holds, err stays one printable line. */
    char v[200];
    memset(v, '\n', sizeof(v));
    char err[DC_ERR_LEN];
    struct annot_endpoint ep;
    assert_int_equal(annot_endpoint_parse(v, sizeof(v), &ep, err), -EINVAL);
    for (const char *p = err; *p != '\0'; p++) {
        assert_true(*p >= 0x20 && *p < 0x7f);
    }
}

static void insecure_ok(const char *s, bool want)
{
    bool v = !want;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(annot_insecure_parse(s, strlen(s), &v, err), 0);
    assert_int_equal(v, want);
    v = !want;
    assert_int_equal(annot_insecure_parse(s, strlen(s), &v, NULL), 0);
    assert_int_equal(v, want);
}

static void insecure_bad(const char *s, size_t len, const char *want)
{
    bool v = true;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(annot_insecure_parse(s, len, &v, err), -EINVAL);
    assert_string_equal(err, want);
    assert_true(v); /* untouched */
    assert_int_equal(annot_insecure_parse(s, len, &v, NULL), -EINVAL);
}

static void test_annot_insecure(void **state)
{
    (void)state;
    insecure_ok("true", true);
    insecure_ok("false", false);
    insecure_bad("True", 4, "derp-endpoint-insecure: not `true' or `false': `True'");
    insecure_bad("FALSE", 5, "derp-endpoint-insecure: not `true' or `false': `FALSE'");
    insecure_bad("yes", 3, "derp-endpoint-insecure: not `true' or `false': `yes'");
    insecure_bad("1", 1, "derp-endpoint-insecure: not `true' or `false': `1'");
    insecure_bad("", 0, "derp-endpoint-insecure: not `true' or `false': `'");
    insecure_bad(" true", 5, "derp-endpoint-insecure: not `true' or `false': ` true'");
    insecure_bad("true\n", 5, "derp-endpoint-insecure: not `true' or `false': `true\\x0a'");
    insecure_bad("truefalse", 9, "derp-endpoint-insecure: not `true' or `false': `truefalse'");
    /* len decides, not the NUL. */
    insecure_bad("tru", 3, "derp-endpoint-insecure: not `true' or `false': `tru'");
    bool v = false;
    assert_int_equal(annot_insecure_parse("trueX", 4, &v, NULL), 0);
    assert_true(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_annot_constants),
        cmocka_unit_test(test_annot_dns),
        cmocka_unit_test(test_annot_dns_port),
        cmocka_unit_test(test_annot_ipv4),
        cmocka_unit_test(test_annot_ipv6),
        cmocka_unit_test(test_annot_trailing_dot),
        cmocka_unit_test(test_annot_lower_case),
        cmocka_unit_test(test_annot_lengths),
        cmocka_unit_test(test_annot_not_nul_terminated),
        cmocka_unit_test(test_annot_empty),
        cmocka_unit_test(test_annot_whitespace),
        cmocka_unit_test(test_annot_bad_bytes),
        cmocka_unit_test(test_annot_scheme),
        cmocka_unit_test(test_annot_path_query_fragment),
        cmocka_unit_test(test_annot_userinfo),
        cmocka_unit_test(test_annot_bad_labels),
        cmocka_unit_test(test_annot_bad_ipv4),
        cmocka_unit_test(test_annot_bad_ipv6),
        cmocka_unit_test(test_annot_brackets),
        cmocka_unit_test(test_annot_bad_port),
        cmocka_unit_test(test_annot_quote_escapes),
        cmocka_unit_test(test_annot_insecure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
