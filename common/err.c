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
