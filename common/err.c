#include "err.h"

#include <stdio.h>
#include <string.h>

const char *dc_strerror(int err)
{
    return strerror(err < 0 ? -err : err);
}

int dc_err_set(char *err, int code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, DC_ERR_LEN, fmt, ap);
    va_end(ap);
    if (n < 0) {
        err[0] = '\0';
    }
    return code;
}

const char *dc_err_quote(const char *s, size_t len, char buf[static DC_QUOTE_BUF_LEN])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len && i < DC_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 0xf];
        }
    }
    if (len > DC_QUOTE_MAX) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}
