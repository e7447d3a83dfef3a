#include "k8s_fields.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a bad pointer quoted in an error message. */
#define QUOTE_LEN 64

/* Copies up to QUOTE_LEN bytes of s as printable ASCII ('?' for the rest),
 * adding "..." when cut. out holds QUOTE_LEN + 4 bytes. */
static void quote(char out[static QUOTE_LEN + 4], const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && n < QUOTE_LEN) {
        unsigned char c = (unsigned char)s[n];
        out[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
        n++;
    }
    if (s[n] != '\0') {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* Decodes the pointer s[0..len) (s[0] == '/') into its reference tokens,
 * each NUL-terminated, back to back in out (len bytes suffice: a token never
 * grows when decoded, and each '/' becomes one NUL). Returns the number of
 * tokens, or -EINVAL for a '~' not followed by '0' or '1'. */
static long pointer_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    long ntokens = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '/') {
            if (ntokens > 0) {
                out[o++] = '\0';
            }
            ntokens++;
            continue;
        }
        if (c == '~') {
            char next = i + 1 < len ? s[i + 1] : '\0';
            if (next != '0' && next != '1') {
                return -EINVAL;
            }
            c = next == '0' ? '~' : '/';
            i++;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return ntokens;
}

/* Parses an array index token: "0" or [1-9][0-9]* that fits size_t.
 * Returns SIZE_MAX for anything else ("-", "01", "+1", "x"). */
static size_t array_index(const char *tok)
{
    if (tok[0] < '0' || tok[0] > '9' || (tok[0] == '0' && tok[1] != '\0')) {
        return SIZE_MAX;
    }
    for (const char *c = tok; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return SIZE_MAX;
        }
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(tok, &end, 10);
    if (errno != 0 || *end != '\0' || v >= SIZE_MAX) {
        return SIZE_MAX;
    }
    return (size_t)v;
}

/* The member or element of node named by tok, or NULL. */
static json_t *step(const json_t *node, const char *tok)
{
    if (json_is_object(node)) {
        return json_object_get(node, tok);
    }
    if (json_is_array(node)) {
        size_t idx = array_index(tok);
        return idx < json_array_size(node) ? json_array_get(node, idx) : NULL;
    }
    return NULL;
}

static const char *next_token(const char *tok)
{
    return tok + strlen(tok) + 1;
}

static int pointer_parse(struct k8s_pointer *ptr, const char *s, char *err)
{
    char q[QUOTE_LEN + 4];
    if (s == NULL) {
        return dc_err_set(err, -EINVAL, "field pointer: NULL");
    }
    size_t len = strnlen(s, K8S_POINTER_MAX_LEN + 1);
    quote(q, s);
    if (len > K8S_POINTER_MAX_LEN) {
        return dc_err_set(err, -EMSGSIZE, "field pointer: longer than %d bytes: `%s'",
                          K8S_POINTER_MAX_LEN, q);
    }
    if (s[0] != '/') {
        return dc_err_set(err, -EINVAL, "field pointer: must start with '/': `%s'", q);
    }
    ptr->tokens = malloc(len);
    if (ptr->tokens == NULL) {
        return dc_err_set(err, -ENOMEM, "field pointer: out of memory");
    }
    long n = pointer_decode(s, len, ptr->tokens);
    if (n < 0) {
        free(ptr->tokens);
        ptr->tokens = NULL;
        return dc_err_set(err, -EINVAL, "field pointer: '~' must be followed by 0 or 1: `%s'", q);
    }
    ptr->ntokens = (size_t)n;
    return 0;
}

int k8s_projection_init(struct k8s_projection *p, const char *const *pointers, size_t n, char *err)
{
    p->ptrs = NULL;
    p->n = 0;
    if (n > K8S_PROJECTION_MAX_POINTERS) {
        return dc_err_set(err, -EMSGSIZE, "field pointers: %zu given, at most %d", n,
                          K8S_PROJECTION_MAX_POINTERS);
    }
    if (n == 0) {
        return 0;
    }
    p->ptrs = calloc(n, sizeof(p->ptrs[0]));
    if (p->ptrs == NULL) {
        return dc_err_set(err, -ENOMEM, "field pointers: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int rc = pointer_parse(&p->ptrs[i], pointers[i], err);
        if (rc < 0) {
            p->n = i;
            k8s_projection_deinit(p);
            return rc;
        }
    }
    p->n = n;
    return 0;
}

void k8s_projection_deinit(struct k8s_projection *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->ptrs[i].tokens);
    }
    free(p->ptrs);
    p->ptrs = NULL;
    p->n = 0;
}

/* Stores value (a new reference; always consumed) in dst at tok: as member
 * tok of an object, or at index tok of an array, padding with nulls. */
static int put(json_t *dst, const char *tok, json_t *value)
{
    if (value == NULL) {
        return -ENOMEM;
    }
    if (json_is_object(dst)) {
        return json_object_set_new(dst, tok, value) == 0 ? 0 : -ENOMEM;
    }
    size_t idx = array_index(tok); /* valid: the source array had this index */
    while (json_array_size(dst) < idx) {
        if (json_array_append_new(dst, json_null()) != 0) {
            json_decref(value);
            return -ENOMEM;
        }
    }
    int rc = idx < json_array_size(dst) ? json_array_set_new(dst, idx, value)
                                        : json_array_append_new(dst, value);
    return rc == 0 ? 0 : -ENOMEM;
}

/* Copies the value at ptr in src into dst, creating the containers on the
 * way (of the source's types) unless dst already has them. */
static int project_one(json_t *dst, const json_t *src, const struct k8s_pointer *ptr)
{
    const char *tok = ptr->tokens;
    const json_t *s = src;
    for (size_t k = 0; k < ptr->ntokens && s != NULL; k++, tok = next_token(tok)) {
        s = step(s, tok);
    }
    if (s == NULL) {
        return 0; /* absent: left out */
    }
    tok = ptr->tokens;
    s = src;
    for (size_t k = 0; k + 1 < ptr->ntokens; k++, tok = next_token(tok)) {
        const json_t *sc = step(s, tok);
        json_t *dc = step(dst, tok);
        /* dc is of sc's type, or a null that pads an array: replace that */
        if (dc == NULL || json_typeof(dc) != json_typeof(sc)) {
            dc = json_is_object(sc) ? json_object() : json_array();
            if (put(dst, tok, dc) < 0) {
                return -ENOMEM;
            }
        }
        dst = dc;
        s = sc;
    }
    return put(dst, tok, json_deep_copy(step(s, tok)));
}

json_t *k8s_project(const struct k8s_projection *p, const json_t *object)
{
    json_t *out = json_is_object(object)  ? json_object()
                  : json_is_array(object) ? json_array()
                                          : NULL;
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        if (project_one(out, object, &p->ptrs[i]) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

const json_t *k8s_pointer_get(const json_t *root, const char *pointer)
{
    char tokens[K8S_POINTER_MAX_LEN + 1];
    if (root == NULL || pointer == NULL) {
        return NULL;
    }
    size_t len = strnlen(pointer, K8S_POINTER_MAX_LEN + 1);
    if (len == 0) {
        return root;
    }
    if (len > K8S_POINTER_MAX_LEN || pointer[0] != '/') {
        return NULL;
    }
    long n = pointer_decode(pointer, len, tokens);
    const json_t *node = root;
    const char *tok = tokens;
    for (long k = 0; k < n && node != NULL; k++, tok = next_token(tok)) {
        node = step(node, tok);
    }
    return n < 0 ? NULL : node;
}

const char *k8s_pointer_get_string(const json_t *root, const char *pointer)
{
    const json_t *v = k8s_pointer_get(root, pointer);
    if (!json_is_string(v)) {
        return NULL;
    }
    const char *s = json_string_value(v);
    return strlen(s) == json_string_length(v) ? s : NULL;
}
