/* supervisor: runs the local derp-relay as a child process and keeps it up.
 *
 * The child is started with the given argv, inherits stdout and stderr (its
 * lines carry "derp" too), and is watched through a pidfd on the program's
 * loop. When it exits unexpectedly it is restarted after a capped, jittered
 * backoff (SUPERVISOR_BACKOFF_MIN_MS doubling to SUPERVISOR_BACKOFF_MAX_MS;
 * a run longer than SUPERVISOR_HEALTHY_MS resets it). supervisor_stop()
 * forwards SIGTERM so the relay drains (Restarting frames, then close), and
 * sends SIGKILL if it is not gone after SUPERVISOR_STOP_GRACE_MS. */
#ifndef DC_CONTROLLER_SUPERVISOR_H
#define DC_CONTROLLER_SUPERVISOR_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct dc_loop;
struct dc_buf;
struct supervisor;

#define SUPERVISOR_BACKOFF_MIN_MS 500
#define SUPERVISOR_BACKOFF_MAX_MS 30000
#define SUPERVISOR_HEALTHY_MS     60000
#define SUPERVISOR_STOP_GRACE_MS  15000

/* Starts argv[0] (a path) with argv; argv is copied. Returns 0 and *out, or
 * negative errno with err. */
int supervisor_start(struct dc_loop *loop, char *const argv[], struct supervisor **out,
                     char *err) DC_MUST_CHECK;
/* Stops restarting, sends SIGTERM and calls done(loop, data) once the child is
 * gone (at once when none runs). */
void supervisor_stop(struct supervisor *sv, void (*done)(struct dc_loop *, void *), void *data);
/* Frees; the child must be gone (after supervisor_stop's done). Accepts NULL. */
void supervisor_free(struct supervisor *sv);
/* Appends derp_relay_restarts_total and derp_relay_up to out. */
void supervisor_metrics(void *sv, struct dc_buf *out);

#endif
