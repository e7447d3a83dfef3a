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

/* Longest part of a value quoted in an error sentence (bytes), and the
 * buffer dc_err_quote() needs for it: each byte may become \xNN, then "..."
 * and the NUL. */
#define DC_QUOTE_MAX     96
#define DC_QUOTE_BUF_LEN (DC_QUOTE_MAX * 4 + 4)

/* Writes s[0..len) into buf for an error sentence: bytes outside printable
 * ASCII as \xNN, anything past DC_QUOTE_MAX bytes cut to "...". Returns buf. */
const char *dc_err_quote(const char *s, size_t len, char buf[static DC_QUOTE_BUF_LEN]);

/* Returns a static description of a negative (or positive) errno value. */
const char *dc_strerror(int err);

/* Writes a formatted sentence into err (DC_ERR_LEN bytes); err may be NULL.
 * Always returns `code` so callers can write `return dc_err_set(err, -EINVAL, ...)`. */
int dc_err_set(char *err, int code, const char *fmt, ...) DC_PRINTF(3, 4);

#endif
