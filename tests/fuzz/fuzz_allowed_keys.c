/* fuzz_allowed_keys: derp_keyset_parse() (relay/derp_policy.c), the
 * allowed-keys file parser, on arbitrary bytes.
 *
 * Checks: the parse succeeds (bad lines are skipped, never fatal); line
 * numbers of bad lines rise strictly and stay within the input's line count;
 * the set is sorted without duplicates and every key in it is found; each
 * key's text ("nodekey:<hex>") appears in the input; and re-parsing the set
 * written back as a file gives the same set with no bad lines. Frees all. */
#include "derp_key.h"
#include "derp_policy.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

struct lines {
    unsigned last; /* last bad line number seen */
    unsigned n;    /* bad lines */
};

static void on_bad(void *data, unsigned line, const char *why)
{
    struct lines *l = data;
    check(line > l->last && why != NULL && why[0] != '\0');
    l->last = line;
    l->n++;
}

/* True when needle (len bytes) occurs in hay, ignoring ASCII case. */
static bool contains_nocase(const char *hay, size_t hay_len, const char *needle, size_t len)
{
    for (size_t i = 0; i + len <= hay_len; i++) {
        if (strncasecmp(hay + i, needle, len) == 0) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct derp_keyset s = {0}, back = {0};
    struct lines bad = {0}, bad_back = {0};
    check(derp_keyset_parse(text, size, &s, on_bad, &bad) == 0);
    size_t nlines = 1;
    for (size_t i = 0; i < size; i++) {
        nlines += data[i] == '\n';
    }
    check(bad.last <= nlines);
    char *file = malloc(s.n * (DERP_NODEKEY_PREFIX_LEN + DERP_KEY_HEX_LEN + 1) + 1);
    check(file != NULL);
    size_t off = 0;
    for (size_t i = 0; i < s.n; i++) {
        check(i == 0 || memcmp(s.keys[i - 1], s.keys[i], DERP_KEY_LEN) < 0);
        check(derp_keyset_has(&s, s.keys[i]));
        char hex[DERP_KEY_HEX_LEN + 1];
        derp_key_hex(s.keys[i], hex);
        char line[DERP_NODEKEY_PREFIX_LEN + DERP_KEY_HEX_LEN + 2];
        int n = snprintf(line, sizeof(line), DERP_NODEKEY_PREFIX "%s\n", hex);
        check(contains_nocase(text, size, line, (size_t)n - 1));
        memcpy(file + off, line, (size_t)n);
        off += (size_t)n;
    }
    check(derp_keyset_parse(file, off, &back, on_bad, &bad_back) == 0);
    check(bad_back.n == 0 && back.n == s.n);
    check(s.n == 0 || memcmp(back.keys, s.keys, s.n * DERP_KEY_LEN) == 0);
    free(file);
    derp_keyset_deinit(&back);
    derp_keyset_deinit(&s);
    return 0;
}
