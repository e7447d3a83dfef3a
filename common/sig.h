/* sig: termination signals as loop events (signalfd), the one way signals
 * enter these programs. SIGTERM and SIGINT become readable on the fd;
 * SIGPIPE is blocked so a peer's hang-up is an EPIPE, not a death. */
#ifndef DC_COMMON_SIG_H
#define DC_COMMON_SIG_H

#include "loop.h"

/* Blocks SIGTERM, SIGINT and SIGPIPE and watches the first two through
 * io (its fd is owned by the caller afterwards; cb reads struct
 * signalfd_siginfo records). Returns 0 or negative errno. */
int dc_signals_start(struct dc_loop *loop, struct dc_io *io, dc_io_cb cb, void *data) DC_MUST_CHECK;

#endif
