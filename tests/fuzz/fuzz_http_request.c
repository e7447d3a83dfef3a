/* fuzz_http_request: http_request_parse() on arbitrary bytes.
 *
 * Besides crashes and out-of-bounds reads it checks the parser's promises and
 * aborts when one breaks: consumed <= len and <= HTTP_MAX_HEAD_LEN, every
 * span inside the head, "need more" only below the limit, the same answer
 * with and without err, for the head alone, and 0 for a shorter prefix. */
#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

/* Reports whether s lies inside base[0..len) (an empty span may be NULL). */
static bool span_in(struct dc_span s, const void *base, size_t len)
{
    if (s.p == NULL) {
        return s.len == 0;
    }
    uintptr_t p = (uintptr_t)s.p, b = (uintptr_t)base;
    return p >= b && p - b <= len && s.len <= len - (p - b);
}

static bool span_same(struct dc_span a, const uint8_t *abase, struct dc_span b,
                      const uint8_t *bbase)
{
    if (a.len != b.len || (a.p == NULL) != (b.p == NULL)) {
        return false;
    }
    return a.p == NULL || a.p - abase == b.p - bbase;
}

static void check_headers(const struct http_header *h, size_t n, const uint8_t *buf, size_t len)
{
    check(n <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        check(h[i].name.len > 0 && span_in(h[i].name, buf, len));
        check(span_in(h[i].value, buf, len));
        const uint8_t *v = h[i].value.p;
        size_t vl = h[i].value.len;
        check(vl == 0 || (v[0] != ' ' && v[0] != '\t' && v[vl - 1] != ' ' && v[vl - 1] != '\t'));
        for (size_t k = 0; k < vl; k++) {
            check(v[k] == '\t' || (v[k] >= 0x20 && v[k] != 0x7f));
        }
        const struct dc_span *got = http_header_get(h, n, "x");
        check(got == NULL || (got >= &h[0].value && got <= &h[n - 1].value));
        check(http_header_get(h, i + 1, "") == NULL);
        (void)http_header_has_token(h[i].value, "upgrade");
    }
    (void)http_headers_have_token(h, n, "Connection", "upgrade");
}

static void check_request(const struct http_request *r, const uint8_t *buf, size_t len)
{
    check(r->method.len > 0 && span_in(r->method, buf, len));
    check(r->target.len > 0 && span_in(r->target, buf, len));
    const uint8_t *t = r->target.p;
    size_t tl = r->target.len;
    check(span_in(r->authority, t, tl) && span_in(r->path, t, tl) && span_in(r->query, t, tl));
    check(r->path.len > 0 || r->authority.len > 0);
    check(r->minor_version == 0 || r->minor_version == 1);
    check_headers(r->headers, r->num_headers, buf, len);
    struct dc_span v;
    if (http_query_get(r->query, "wait", &v) == 0) {
        check(span_in(v, r->query.p, r->query.len));
    } else {
        check(v.len == 0);
    }
}

/* Parses the first len bytes again from an exact-size copy. */
static ssize_t reparse(const uint8_t *data, size_t len, struct http_request *r, uint8_t **copy)
{
    *copy = malloc(len > 0 ? len : 1);
    check(*copy != NULL);
    memcpy(*copy, data, len);
    return http_request_parse((const char *)*copy, len, r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_request req, again;
    char err[DC_ERR_LEN];
    memcpy(err, "unset", 6);
    ssize_t n = http_request_parse((const char *)data, size, &req, err);
    check(http_request_parse((const char *)data, size, &again, NULL) == n);
    if (n < 0) {
        check(n == -EINVAL || n == -EMSGSIZE);
        check(memchr(err, '\0', DC_ERR_LEN) != NULL && strncmp(err, "http: ", 6) == 0);
        return 0;
    }
    uint8_t *copy = NULL;
    if (n == 0) {
        check(size < HTTP_MAX_HEAD_LEN);
        check(reparse(data, size / 2, &again, &copy) == 0);
        free(copy);
        return 0;
    }
    check((size_t)n <= size && n <= HTTP_MAX_HEAD_LEN && data[n - 1] == '\n');
    check_request(&req, data, (size_t)n);

    check(reparse(data, (size_t)n, &again, &copy) == n);
    check(span_same(req.target, data, again.target, copy));
    check(span_same(req.query, data, again.query, copy));
    check(again.num_headers == req.num_headers);
    for (size_t i = 0; i < req.num_headers; i++) {
        check(span_same(req.headers[i].value, data, again.headers[i].value, copy));
    }
    free(copy);
    check(reparse(data, (size_t)n - 1, &again, &copy) == 0);
    free(copy);
    return 0;
}
