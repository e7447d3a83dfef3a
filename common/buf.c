#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_buf_init(struct dc_buf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void dc_buf_deinit(struct dc_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

static int buf_reserve(struct dc_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) {
        return -EMSGSIZE;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > b->max) {
        cap = b->max;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int dc_buf_append(struct dc_buf *b, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    int rc = buf_reserve(b, len);
    if (rc < 0) {
        return rc;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

int dc_buf_printf(struct dc_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return -EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return dc_buf_append(b, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        return -ENOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = dc_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void dc_buf_consume(struct dc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void dc_buf_reset(struct dc_buf *b)
{
    b->len = 0;
}
