/* err: the error conventions every module follows.
 *
 * Fallible functions return 0 or a negative errno (-EINVAL bad input,
 * -EMSGSIZE over a limit, -EPROTO protocol violation, -ENOMEM, -ETIMEDOUT,
 * -EAGAIN would-block). Where a human reads the failure, the function also
 * fills a caller's `char err[DC_ERR_LEN]` with one sentence naming the field
 * and quoting the value. */
#ifndef DC_COMMON_ERR_H
#define DC_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Size of the human-readable error buffers passed as `char *err`. */
#define DC_ERR_LEN 256

#define DC_MUST_CHECK   __attribute__((warn_unused_result))
#define DC_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Returns a static description of a negative (or positive) errno value. */
const char *dc_strerror(int err);

/* Writes a formatted sentence into err (DC_ERR_LEN bytes); err may be NULL.
 * Always returns `code` so callers can write `return dc_err_set(err, -EINVAL, ...)`. */
int dc_err_set(char *err, int code, const char *fmt, ...) DC_PRINTF(3, 4);

#endif
