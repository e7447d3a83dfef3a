/* log: one line per event on stderr, every line tagged with a derp* subsystem.
 *
 * Line format: `2026-11-24T10:00:00.123Z info derp-mesh: peer up peer=ab12cd34`.
 * Subsystem tags all start with "derp" so `grep -i derp` sees every line.
 * LOFT_LOG_DERP=true enables debug lines for every subsystem,
 * LOFT_LOG_DERP_MESH=true for "derp-mesh" only. Settings are read once by
 * dc_log_init() before the event loop starts; they are the only logging
 * globals. Parsers never log: the caller that decides logs, once. */
#ifndef DC_COMMON_LOG_H
#define DC_COMMON_LOG_H

#include "err.h"

#include <stdbool.h>

enum dc_log_level {
    DC_LOG_DEBUG,
    DC_LOG_INFO,
    DC_LOG_WARN,
    DC_LOG_ERROR,
};

/* Reads LOFT_LOG_DERP and LOFT_LOG_DERP_MESH from the environment. */
void dc_log_init(void);

/* Forces debug on or off for all subsystems (tests, --verbose). */
void dc_log_set_debug(bool on);

/* Reports whether a debug line for subsys would be written; lets hot paths
 * skip formatting entirely. */
bool dc_log_debug_enabled(const char *subsys);

/* Writes one line to stderr unless it is a debug line that is switched off. */
void dc_log(enum dc_log_level level, const char *subsys, const char *fmt, ...) DC_PRINTF(3, 4);

#endif
