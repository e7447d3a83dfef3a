/* test_derp_url: derp_url_parse() from relay/derp_client.c, the relay URL
 * splitter derp-probe and the tests use. Pure: no network. */
#include "derp_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

struct url_case {
    const char *url;
    bool is_tls;
    const char *host;
    uint16_t port;
    const char *path;
};

static void check_ok(const struct url_case *c)
{
    bool is_tls = !c->is_tls;
    char host[256] = "junk";
    uint16_t port = 1;
    char path[256] = "junk";
    char err[DC_ERR_LEN] = "";
    int rc = derp_url_parse(c->url, &is_tls, host, sizeof(host), &port, path, sizeof(path), err);
    if (rc != 0) {
        fail_msg("`%s': rc %d: %s", c->url, rc, err);
    }
    assert_int_equal(is_tls, c->is_tls);
    assert_string_equal(host, c->host);
    assert_int_equal(port, c->port);
    assert_string_equal(path, c->path);
}

static void check_bad(const char *url)
{
    bool is_tls;
    char host[256];
    uint16_t port;
    char path[256];
    char err[DC_ERR_LEN] = "";
    int rc = derp_url_parse(url, &is_tls, host, sizeof(host), &port, path, sizeof(path), err);
    if (rc != -EINVAL) {
        fail_msg("`%s': want -EINVAL, got %d", url, rc);
    }
    /* The stage, then the URL quoted. */
    assert_int_equal(strncmp(err, "url:", 4), 0);
    char quoted[300];
    snprintf(quoted, sizeof(quoted), "`%s'", url);
    assert_non_null(strstr(err, quoted));
    assert_int_equal(
        derp_url_parse(url, &is_tls, host, sizeof(host), &port, path, sizeof(path), NULL), -EINVAL);
}

/* derper's rule: a bare host means https://HOST/derp. */
static void test_derp_url_bare_host(void **state)
{
    (void)state;
    static const struct url_case cases[] = {
        {"derp.example.com", true, "derp.example.com", 443, "/derp"},
        {"derp.example.com:8443", true, "derp.example.com", 8443, "/derp"},
        {"10.0.0.5", true, "10.0.0.5", 443, "/derp"},
        {"[::1]:8443", true, "::1", 8443, "/derp"},
        {"derp.example.com/other", true, "derp.example.com", 443, "/other"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_ok(&cases[i]);
    }
}

static void test_derp_url_http_and_https(void **state)
{
    (void)state;
    static const struct url_case cases[] = {
        {"http://10.0.0.5:8080/derp", false, "10.0.0.5", 8080, "/derp"},
        {"http://10.0.0.5/derp", false, "10.0.0.5", 80, "/derp"},
        {"http://relay", false, "relay", 80, "/derp"},
        {"https://relay.example.com", true, "relay.example.com", 443, "/derp"},
        {"https://relay.example.com/", true, "relay.example.com", 443, "/derp"},
        {"https://relay.example.com:443/derp", true, "relay.example.com", 443, "/derp"},
        {"https://relay.example.com/derp/probe", true, "relay.example.com", 443, "/derp/probe"},
        {"https://relay.example.com/derp?x=1#frag", true, "relay.example.com", 443, "/derp?x=1"},
        {"https://relay.example.com#frag", true, "relay.example.com", 443, "/derp"},
        {"https://relay.example.com:65535", true, "relay.example.com", 65535, "/derp"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_ok(&cases[i]);
    }
}

static void test_derp_url_ipv6(void **state)
{
    (void)state;
    static const struct url_case cases[] = {
        {"https://[::1]:8443/derp", true, "::1", 8443, "/derp"},
        {"https://[::1]/derp", true, "::1", 443, "/derp"},
        {"http://[2001:db8::7]:3340", false, "2001:db8::7", 3340, "/derp"},
        {"http://[2001:db8::7]", false, "2001:db8::7", 80, "/derp"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_ok(&cases[i]);
    }
    check_bad("https://[::1/derp");
    check_bad("https://[]/derp");
}

static void test_derp_url_bad_scheme(void **state)
{
    (void)state;
    check_bad("ftp://relay.example.com/derp");
    check_bad("wss://relay.example.com/derp");
    check_bad("tcp://10.0.0.5:443");
    check_bad("://relay");
}

static void test_derp_url_bad_port(void **state)
{
    (void)state;
    check_bad("https://relay.example.com:0/derp");
    check_bad("https://relay.example.com:65536/derp");
    check_bad("https://relay.example.com:99999999999/derp");
    check_bad("https://relay.example.com:abc/derp");
    check_bad("https://relay.example.com:/derp");
    check_bad("https://relay.example.com:-1/derp");
    check_bad("http://10.0.0.5:80x/derp");
    check_bad("https://[::1]:0/derp");
    check_bad("relay.example.com:70000");
}

static void test_derp_url_bad_host(void **state)
{
    (void)state;
    check_bad("");
    check_bad("https://");
    check_bad("https:///derp");

    /* A host longer than the caller's buffer. */
    bool is_tls;
    char host[8];
    uint16_t port;
    char path[64];
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_url_parse("https://relay.example.com/derp", &is_tls, host, sizeof(host),
                                    &port, path, sizeof(path), err),
                     -EINVAL);
    assert_int_equal(derp_url_parse("https://1234567/derp", &is_tls, host, sizeof(host), &port,
                                    path, sizeof(path), err),
                     0);
    assert_string_equal(host, "1234567");
    /* A path longer than the caller's buffer. */
    char small_path[6];
    assert_int_equal(derp_url_parse("https://relay/derp/x", &is_tls, host, sizeof(host), &port,
                                    small_path, sizeof(small_path), err),
                     -EINVAL);
    assert_int_equal(derp_url_parse("https://relay/derp", &is_tls, host, sizeof(host), &port,
                                    small_path, sizeof(small_path), err),
                     0);
    assert_string_equal(small_path, "/derp");
}

/* A port needs a host in front of it, and a host with more than one colon
 * must be a bracketed IPv6 address; neither may slip through as an empty
 * host or as a host named "h:443:1". */
static void test_derp_url_empty_or_colon_host(void **state)
{
    (void)state;
    /* Empty host with a port. */
    check_bad("http://:8080/derp");
    check_bad("https://:443/derp");
    check_bad("https://:443");
    check_bad("https://[]:443/derp");
    check_bad("http://[]:80");
    check_bad(":443");
    check_bad(":443/derp");
    check_bad("[]:443");
    /* Several colons without brackets. */
    check_bad("https://h:443:1/");
    check_bad("https://h:443:1/derp");
    check_bad("http://h:1:2");
    check_bad("https://::1/derp");
    check_bad("https://::1");
    check_bad("https://2001:db8::7/derp");
    check_bad("https://fe80::1:443/derp");
    check_bad("h:443:1");
    check_bad("::1");
    check_bad("::");
    /* The bracketed forms still work. */
    static const struct url_case ok[] = {
        {"https://[::1]/derp", true, "::1", 443, "/derp"},
        {"https://[2001:db8::7]:443/derp", true, "2001:db8::7", 443, "/derp"},
        {"[::1]", true, "::1", 443, "/derp"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        check_ok(&ok[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derp_url_bare_host),
        cmocka_unit_test(test_derp_url_http_and_https),
        cmocka_unit_test(test_derp_url_ipv6),
        cmocka_unit_test(test_derp_url_bad_scheme),
        cmocka_unit_test(test_derp_url_bad_port),
        cmocka_unit_test(test_derp_url_bad_host),
        cmocka_unit_test(test_derp_url_empty_or_colon_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
