/* fuzz_http_response: http_response_parse() on arbitrary bytes.
 *
 * Checks the parser's promises and aborts when one breaks: consumed <= len
 * and <= HTTP_MAX_HEAD_LEN, every span inside the head, status 100-999,
 * "need more" only below the limit, the same answer for the head alone, and
 * 0 for a shorter prefix. */
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

static void check_response(const struct http_response *r, const uint8_t *buf, size_t len)
{
    check(r->status >= 100 && r->status <= 999);
    check(r->minor_version == 0 || r->minor_version == 1);
    check(span_in(r->reason, buf, len));
    for (size_t k = 0; k < r->reason.len; k++) {
        uint8_t c = r->reason.p[k];
        check(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    check(r->num_headers <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->num_headers; i++) {
        const struct http_header *h = &r->headers[i];
        check(h->name.len > 0 && span_in(h->name, buf, len) && span_in(h->value, buf, len));
        check(http_header_get(r->headers, i + 1, "") == NULL);
        (void)http_header_has_token(h->value, "upgrade");
    }
    const struct dc_span *up = http_header_get(r->headers, r->num_headers, "Upgrade");
    check(up == NULL || span_in(*up, buf, len));
    (void)http_status_text(r->status);
}

/* Parses the first len bytes again from an exact-size copy. */
static ssize_t reparse(const uint8_t *data, size_t len, struct http_response *r)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    check(copy != NULL);
    memcpy(copy, data, len);
    ssize_t n = http_response_parse((const char *)copy, len, r, NULL);
    if (n > 0) {
        check_response(r, copy, (size_t)n);
    }
    free(copy);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_response resp, again;
    char err[DC_ERR_LEN];
    memcpy(err, "unset", 6);
    ssize_t n = http_response_parse((const char *)data, size, &resp, err);
    if (n < 0) {
        check(n == -EINVAL || n == -EMSGSIZE);
        check(memchr(err, '\0', DC_ERR_LEN) != NULL && strncmp(err, "http: ", 6) == 0);
        return 0;
    }
    if (n == 0) {
        check(size < HTTP_MAX_HEAD_LEN);
        check(reparse(data, size / 2, &again) == 0);
        return 0;
    }
    check((size_t)n <= size && n <= HTTP_MAX_HEAD_LEN && data[n - 1] == '\n');
    check_response(&resp, data, (size_t)n);
    check(reparse(data, (size_t)n, &again) == n);
    check(again.status == resp.status && again.num_headers == resp.num_headers);
    check(reparse(data, (size_t)n - 1, &again) == 0);
    return 0;
}
