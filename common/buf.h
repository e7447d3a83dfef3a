/* buf: a growable byte buffer with a hard maximum (curl's dynbuf idea).
 *
 * The all-zero struct is an empty buffer with no limit set; call
 * dc_buf_init() to set the maximum. Growing past the maximum fails with
 * -EMSGSIZE and leaves the contents unchanged. */
#ifndef DC_COMMON_BUF_H
#define DC_COMMON_BUF_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

struct dc_buf {
    uint8_t *p; /* owned; NULL until the first append */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len; 0 means "not initialised": every append fails */
};

/* Sets an empty buffer's maximum size in bytes. */
void dc_buf_init(struct dc_buf *b, size_t max);
/* Frees the memory; the buffer is empty (and keeps its max). Accepts zero state. */
void dc_buf_deinit(struct dc_buf *b);
/* Appends len bytes; returns 0, -EMSGSIZE past max, or -ENOMEM. */
int dc_buf_append(struct dc_buf *b, const void *data, size_t len) DC_MUST_CHECK;
/* Appends formatted text (no NUL is counted in len); returns 0 or negative errno.
 * Not must-check: report builders append many lines and check the total once. */
int dc_buf_printf(struct dc_buf *b, const char *fmt, ...) DC_PRINTF(2, 3);
/* Removes the first n bytes (n <= len). */
void dc_buf_consume(struct dc_buf *b, size_t n);
/* Empties the buffer, keeping its memory. */
void dc_buf_reset(struct dc_buf *b);

#endif
