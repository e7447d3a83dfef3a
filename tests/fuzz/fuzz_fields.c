/* fuzz_fields: k8s_projection_init(), k8s_project() and k8s_pointer_get().
 *
 * Input: the first line is a list of JSON pointers separated by spaces; the
 * rest is a JSON document (any value). Aborts when a promise breaks: the
 * whole list parses iff each pointer does (and there are few enough), every
 * kept pointer resolves to an equal value in the projection and the source,
 * the projection shares nothing with the source (every node has one
 * reference, and wiping the source leaves it unchanged), and an invalid
 * pointer resolves to nothing. */
#include "k8s_fields.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One more than the library takes, so the limit is reachable. */
#define MAX_PTRS (K8S_PROJECTION_MAX_POINTERS + 1)

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static bool is_singleton(const json_t *v)
{
    return json_is_true(v) || json_is_false(v) || json_is_null(v);
}

static void check_unshared(const json_t *v)
{
    if (is_singleton(v)) {
        return;
    }
    check(v->refcount == 1);
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            check_unshared(m);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            check_unshared(json_array_get(v, i));
        }
    }
}

/* Overwrites every string and number in v and empties every container. */
static void wipe(json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
        {
            wipe(m);
        }
        json_object_clear(v);
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            wipe(json_array_get(v, i));
        }
        json_array_clear(v);
    } else if (json_is_string(v)) {
        json_string_set(v, "wiped");
    } else if (json_is_integer(v)) {
        json_integer_set(v, -7);
    } else if (json_is_real(v)) {
        json_real_set(v, -7.5);
    }
}

static void check_projection(const struct k8s_projection *p, char **ptrs, size_t n, json_t *src)
{
    json_t *out = k8s_project(p, src);
    if (!json_is_object(src) && !json_is_array(src)) {
        check(out == NULL);
        return;
    }
    check(out != NULL && json_typeof(out) == json_typeof(src));
    for (size_t i = 0; i < n; i++) {
        const json_t *want = k8s_pointer_get(src, ptrs[i]);
        const json_t *got = k8s_pointer_get(out, ptrs[i]);
        check(want == NULL ? got == NULL : json_equal(got, want));
        const char *s = k8s_pointer_get_string(out, ptrs[i]);
        check(s == NULL || (json_is_string(got) && strcmp(s, json_string_value(got)) == 0));
    }
    check_unshared(out);
    char *before = json_dumps(out, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    wipe(src);
    char *after = json_dumps(out, JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    check(before != NULL && after != NULL && strcmp(before, after) == 0);
    free(before);
    free(after);
    json_decref(out);
}

/* Splits line[0..len) on spaces into NUL-terminated heap copies. */
static size_t split(const uint8_t *line, size_t len, char **ptrs)
{
    size_t n = 0, i = 0;
    while (i < len && n < MAX_PTRS) {
        if (line[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && line[j] != ' ') {
            j++;
        }
        ptrs[n] = malloc(j - i + 1);
        check(ptrs[n] != NULL);
        memcpy(ptrs[n], line + i, j - i);
        ptrs[n][j - i] = '\0';
        n++;
        i = j;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *ptrs[MAX_PTRS];
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line_len = nl != NULL ? (size_t)(nl - data) : size;
    size_t n = split(data, line_len, ptrs);
    const uint8_t *doc = nl != NULL ? nl + 1 : data + size;
    json_t *src = json_loadb((const char *)doc, size - (size_t)(doc - data),
                             JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

    /* the list parses iff every pointer does; the first bad one decides */
    int first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct k8s_projection one;
        char err[DC_ERR_LEN];
        int rc = k8s_projection_init(&one, (const char *const *)&ptrs[i], 1, err);
        check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE);
        check(rc == 0 ||
              (memchr(err, '\0', DC_ERR_LEN) != NULL && strncmp(err, "field pointer", 13) == 0));
        check(rc != 0 || (one.n == 1 && one.ptrs[0].ntokens >= 1));
        k8s_projection_deinit(&one);
        if (rc != 0 && ptrs[i][0] != '\0') {
            check(k8s_pointer_get(src, ptrs[i]) == NULL);
        }
        if (first_bad == 0) {
            first_bad = rc;
        }
    }
    struct k8s_projection p;
    char err[DC_ERR_LEN];
    int rc = k8s_projection_init(&p, (const char *const *)ptrs, n, err);
    check(rc == (n > K8S_PROJECTION_MAX_POINTERS ? -EMSGSIZE : first_bad));
    check(rc == 0 ? p.n == n : (p.n == 0 && p.ptrs == NULL));
    if (rc == 0) {
        check_projection(&p, ptrs, n, src);
    }
    k8s_projection_deinit(&p);

    json_decref(src);
    for (size_t i = 0; i < n; i++) {
        free(ptrs[i]);
    }
    return 0;
}
