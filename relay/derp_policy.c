#include "derp_policy.h"

#include "derp_key.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, DERP_KEY_LEN);
}

/* Parses one line (no newline) into key. Returns 1 for a key, 0 for a blank
 * or comment line, -EINVAL with *why for a bad one. */
static int parse_line(const char *p, size_t len, uint8_t key[static DERP_KEY_LEN], const char **why)
{
    while (len > 0 && is_blank(p[0])) {
        p++;
        len--;
    }
    const char *hash = memchr(p, '#', len);
    if (hash != NULL) {
        len = (size_t)(hash - p);
    }
    while (len > 0 && is_blank(p[len - 1])) {
        len--;
    }
    if (len == 0) {
        return 0;
    }
    if (len < DERP_NODEKEY_PREFIX_LEN ||
        memcmp(p, DERP_NODEKEY_PREFIX, DERP_NODEKEY_PREFIX_LEN) != 0) {
        *why = "want nodekey:<64 hex digits>";
        return -EINVAL;
    }
    if (derp_key_parse_hex(p + DERP_NODEKEY_PREFIX_LEN, len - DERP_NODEKEY_PREFIX_LEN, key) < 0) {
        *why = "the key after nodekey: is not 64 hex digits";
        return -EINVAL;
    }
    return 1;
}

/* Sorts the keys and drops duplicates. */
static void keyset_sort(struct derp_keyset *s)
{
    if (s->n < 2) {
        return;
    }
    qsort(s->keys, s->n, DERP_KEY_LEN, key_cmp);
    size_t w = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (memcmp(s->keys[i], s->keys[w - 1], DERP_KEY_LEN) != 0) {
            memmove(s->keys[w++], s->keys[i], DERP_KEY_LEN);
        }
    }
    s->n = w;
}

int derp_keyset_parse(const char *text, size_t len, struct derp_keyset *out,
                      derp_keyset_bad_line_cb bad_line, void *data)
{
    size_t cap = 0;
    unsigned line = 0;
    size_t off = 0;
    out->keys = NULL;
    out->n = 0;
    while (off < len) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        line++;
        const char *why = NULL;
        uint8_t key[DERP_KEY_LEN];
        int rc = parse_line(text + off, end - off, key, &why);
        off = nl != NULL ? end + 1 : len;
        if (rc < 0) {
            if (bad_line != NULL) {
                bad_line(data, line, why);
            }
            continue;
        }
        if (rc == 0) {
            continue;
        }
        if (out->n == cap) {
            size_t ncap = cap != 0 ? 2 * cap : 64;
            void *nk = realloc(out->keys, ncap * DERP_KEY_LEN);
            if (nk == NULL) {
                derp_keyset_deinit(out);
                return -ENOMEM;
            }
            out->keys = nk;
            cap = ncap;
        }
        memcpy(out->keys[out->n++], key, DERP_KEY_LEN);
    }
    keyset_sort(out);
    return 0;
}

bool derp_keyset_has(const struct derp_keyset *s, const uint8_t key[static DERP_KEY_LEN])
{
    return s->n > 0 && bsearch(key, s->keys, s->n, DERP_KEY_LEN, key_cmp) != NULL;
}

void derp_keyset_deinit(struct derp_keyset *s)
{
    free(s->keys);
    s->keys = NULL;
    s->n = 0;
}

int derp_admit_request_format(const uint8_t key[static DERP_KEY_LEN], const uint8_t ip16[static 16],
                              char *out, size_t out_len)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char ip[INET6_ADDRSTRLEN];
    char hex[DERP_KEY_HEX_LEN + 1];
    bool is_v4 = memcmp(ip16, v4mapped, sizeof(v4mapped)) == 0;
    if (inet_ntop(is_v4 ? AF_INET : AF_INET6, is_v4 ? ip16 + 12 : ip16, ip, sizeof(ip)) == NULL) {
        return -EINVAL;
    }
    derp_key_hex(key, hex);
    int n = snprintf(out, out_len,
                     "{\"NodePublic\":\"" DERP_NODEKEY_PREFIX "%s\",\"Source\":\"%s\"}", hex, ip);
    if (n < 0 || (size_t)n >= out_len) {
        return -EMSGSIZE;
    }
    return n;
}

/* Go's encoding/json: an exact key match wins, else a case-insensitive one. */
static json_t *object_get_fold(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (v != NULL) {
        return v;
    }
    const char *k;
    json_t *it;
    json_object_foreach(o, k, it)
    {
        if (strcasecmp(k, name) == 0) {
            v = it;
        }
    }
    return v;
}

int derp_admit_response_parse(const char *body, size_t len, bool *allow, char *err)
{
    json_error_t jerr;
    *allow = false;
    json_t *o = json_loadb(body, len, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
    if (o == NULL) {
        return dc_err_set(err, -EINVAL, "admission answer is not JSON: %s", jerr.text);
    }
    int rc = 0;
    if (!json_is_object(o)) {
        rc = dc_err_set(err, -EINVAL, "admission answer is not a JSON object");
        goto out;
    }
    json_t *v = object_get_fold(o, "Allow");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            rc = dc_err_set(err, -EINVAL, "admission answer: Allow is not a boolean");
            goto out;
        }
        *allow = json_is_true(v);
    }
out:
    json_decref(o);
    return rc;
}
