#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static bool log_debug_all;
static bool log_debug_mesh;

static bool env_true(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

void dc_log_init(void)
{
    log_debug_all = env_true("LOFT_LOG_DERP");
    log_debug_mesh = log_debug_all || env_true("LOFT_LOG_DERP_MESH");
}

void dc_log_set_debug(bool on)
{
    log_debug_all = on;
    log_debug_mesh = on;
}

bool dc_log_debug_enabled(const char *subsys)
{
    if (log_debug_all) {
        return true;
    }
    return log_debug_mesh && strcmp(subsys, "derp-mesh") == 0;
}

static const char *level_name(enum dc_log_level level)
{
    switch (level) {
    case DC_LOG_DEBUG:
        return "debug";
    case DC_LOG_INFO:
        return "info";
    case DC_LOG_WARN:
        return "warn";
    case DC_LOG_ERROR:
        return "error";
    }
    return "?";
}

void dc_log(enum dc_log_level level, const char *subsys, const char *fmt, ...)
{
    if (level == DC_LOG_DEBUG && !dc_log_debug_enabled(subsys)) {
        return;
    }
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_name(level), subsys);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2; /* truncated: still one line */
    }
    /* Control characters from remote input must not forge extra lines. */
    for (size_t i = (size_t)n; i < len; i++) {
        if ((unsigned char)line[i] < 0x20) {
            line[i] = '?';
        }
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
