/* test_derp_policy: the pure parts of client admission and rate limiting:
 * relay/derp_policy.c (allowed-keys file, key set, the admission
 * controller's JSON), relay/derp_rate.c (token bucket) and
 * derp_key_short_string() (Tailscale's ShortString, relay/derp_key.c). */
#include "derp_policy.h"

#include "derp_key.h"
#include "derp_rate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

#define KEY_A "nodekey:8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define KEY_B "nodekey:de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"

struct bad_log {
    unsigned lines[8];
    unsigned n;
};

static void record_bad(void *data, unsigned line, const char *why)
{
    struct bad_log *b = data;
    assert_non_null(why);
    if (b->n < 8) {
        b->lines[b->n] = line;
    }
    b->n++;
}

static void key_of(const char *text, uint8_t key[static DERP_KEY_LEN])
{
    assert_int_equal(derp_key_parse_hex(text + DERP_NODEKEY_PREFIX_LEN, DERP_KEY_HEX_LEN, key), 0);
}

static void test_derp_policy_keyset_parse(void **state)
{
    (void)state;
    static const char text[] = "# fleet\n\n  " KEY_B "  # b, indented\n" KEY_A "\r\n"
                               "nodekey:1234\n" KEY_A "\nbare-word\n";
    struct derp_keyset s = {0};
    struct bad_log bad = {0};
    uint8_t a[DERP_KEY_LEN], b[DERP_KEY_LEN], c[DERP_KEY_LEN] = {1};
    key_of(KEY_A, a);
    key_of(KEY_B, b);
    assert_int_equal(derp_keyset_parse(text, sizeof(text) - 1, &s, record_bad, &bad), 0);
    assert_int_equal(s.n, 2); /* the duplicate of A counts once */
    assert_true(derp_keyset_has(&s, a));
    assert_true(derp_keyset_has(&s, b));
    assert_false(derp_keyset_has(&s, c));
    assert_int_equal(bad.n, 2);
    assert_int_equal(bad.lines[0], 5);
    assert_int_equal(bad.lines[1], 7);
    derp_keyset_deinit(&s);
    derp_keyset_deinit(&s); /* twice is fine */
}

static void test_derp_policy_keyset_empty(void **state)
{
    (void)state;
    struct derp_keyset s = {0};
    uint8_t a[DERP_KEY_LEN];
    key_of(KEY_A, a);
    assert_int_equal(derp_keyset_parse("", 0, &s, NULL, NULL), 0);
    assert_int_equal(s.n, 0);
    assert_false(derp_keyset_has(&s, a));
    assert_int_equal(derp_keyset_parse("# nothing\n\n", 11, &s, NULL, NULL), 0);
    assert_int_equal(s.n, 0);
    derp_keyset_deinit(&s);
}

static void test_derp_policy_request_format(void **state)
{
    (void)state;
    uint8_t a[DERP_KEY_LEN];
    key_of(KEY_A, a);
    uint8_t v4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    char out[DERP_ADMIT_REQUEST_MAX];
    int n = derp_admit_request_format(a, v4, out, sizeof(out));
    assert_int_equal(n, (int)strlen(out));
    assert_string_equal(out, "{\"NodePublic\":\"" KEY_A "\",\"Source\":\"10.1.2.3\"}");
    assert_true(derp_admit_request_format(a, v6, out, sizeof(out)) > 0);
    assert_string_equal(out, "{\"NodePublic\":\"" KEY_A "\",\"Source\":\"2001:db8::1\"}");
    assert_int_equal(derp_admit_request_format(a, v4, out, 20), -EMSGSIZE);
}

static void test_derp_policy_response_parse(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int rc;
        bool allow;
    } cases[] = {
        {"{\"Allow\":true}", 0, true},
        {"{\"Allow\": false}\n", 0, false},
        {"{\"allow\":true}", 0, true},           /* Go matches names case-insensitively */
        {"{\"Allow\":null}", 0, false},          /* null leaves the zero value */
        {"{}", 0, false},                        /* missing: false */
        {"{\"Allow\":true} and more", 0, true},  /* the first JSON value counts */
        {"{\"Allow\":\"yes\"}", -EINVAL, false}, /* not a boolean */
        {"[true]", -EINVAL, false},
        {"", -EINVAL, false},
        {"{\"Allow\":tr", -EINVAL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool allow = !cases[i].allow;
        char err[DC_ERR_LEN] = "";
        int rc = derp_admit_response_parse(cases[i].body, strlen(cases[i].body), &allow, err);
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(allow, cases[i].allow);
        assert_true(rc == 0 || err[0] != '\0');
    }
}

static void test_derp_policy_short_string(void **state)
{
    (void)state;
    /* key.NodePublic.ShortString: "[" + base64.StdEncoding(key)[:5] + "]". */
    uint8_t k[DERP_KEY_LEN] = {0xfb, 0xff, 0x00, 0x11};
    char out[DERP_KEY_SHORT_STRING_LEN];
    derp_key_short_string(k, out);
    assert_string_equal(out, "[+/8AE]");
    uint8_t a[DERP_KEY_LEN];
    key_of(KEY_A, a);
    derp_key_short_string(a, out);
    assert_string_equal(out, "[hSDwC]");
}

static void test_derp_rate_bucket(void **state)
{
    (void)state;
    struct derp_rate r = {0};
    assert_false(derp_rate_is_limited(&r)); /* all-zero: unlimited */
    assert_true(derp_rate_take_cached(&r, 1e12));
    assert_int_equal(derp_rate_take(&r, 1e12, 0), 0);
    derp_rate_init(&r, 1000, 3000, 100000); /* 1000/s, burst 3000, starts full */
    assert_true(derp_rate_is_limited(&r));
    assert_true(derp_rate_take_cached(&r, 2000));
    assert_false(derp_rate_take_cached(&r, 2000));            /* 1000 left */
    assert_int_equal(derp_rate_take(&r, 2000, 100000), 1000); /* 1000 more in 1 s */
    assert_int_equal(derp_rate_take(&r, 2000, 100500), 500);
    assert_int_equal(derp_rate_take(&r, 2000, 101000), 0);
    /* Refill stops at the burst, and more than the burst is clamped to it. */
    assert_int_equal(derp_rate_take(&r, 1e9, 200000), 0);
    assert_int_equal(derp_rate_take(&r, 1, 200000), 1); /* 1 token: 1 ms */
    /* A clock that goes back takes nothing and gives nothing. */
    assert_int_equal(derp_rate_take(&r, 1, 150000), 1);
    /* Skipped bytes put the bucket in debt, at most one burst deep. */
    derp_rate_charge(&r, 1e9);
    assert_int_equal(derp_rate_take(&r, 1000, 200000), 4000);
    assert_int_equal(derp_rate_take(&r, 1000, 204000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derp_policy_keyset_parse),
        cmocka_unit_test(test_derp_policy_keyset_empty),
        cmocka_unit_test(test_derp_policy_request_format),
        cmocka_unit_test(test_derp_policy_response_parse),
        cmocka_unit_test(test_derp_policy_short_string),
        cmocka_unit_test(test_derp_rate_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
