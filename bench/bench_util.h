/* bench_util: what the benchmarks share: a derp-relay child on a free
 * loopback port, a nanosecond clock, /proc readers and parent/child pipes.
 *
 * Used only by bench/; nothing here is part of the relay. Everything stays on
 * 127.0.0.1, and every wait has a deadline so a benchmark always ends. It does
 * not measure anything itself. */
#ifndef DC_BENCH_BENCH_UTIL_H
#define DC_BENCH_BENCH_UTIL_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How long the relay gets to start listening before we give up (ms). */
#define BENCH_RELAY_START_MS 5000
/* How long the relay gets to exit after SIGTERM before SIGKILL (ms). */
#define BENCH_RELAY_STOP_MS 5000
/* --drain-ms passed to the relay: the benchmark has no clients left to drain. */
#define BENCH_RELAY_DRAIN_MS "100"
/* Longest relay URL we build or accept, with its NUL. */
#define BENCH_URL_LEN 256

/* A derp-relay child process (all zero plus pid -1 = none). */
struct bench_relay {
    pid_t pid;               /* child pid; -1 when we did not start one */
    uint16_t port;           /* loopback port it listens on */
    char url[BENCH_URL_LEN]; /* "http://127.0.0.1:PORT/derp" */
};

/* Nanoseconds on CLOCK_MONOTONIC: the same clock in every process, so a
 * parent can hand its children a common start time. */
uint64_t bench_now_ns(void);
/* Sleeps until bench_now_ns() >= t_ns. */
void bench_sleep_until_ns(uint64_t t_ns);

/* Writes the derp-relay path next to argv0 ("<dir of argv0>/derp-relay")
 * into out. Returns 0 or -ENAMETOOLONG. */
int bench_default_relay_bin(const char *argv0, char *out, size_t out_len) DC_MUST_CHECK;

/* Starts bin as `derp-relay --listen 127.0.0.1:PORT --stun-listen off` on a
 * free port, stderr to log_path (NULL = /dev/null), and waits until it
 * accepts TCP. Returns 0 with r filled (stop with bench_relay_stop()), or
 * negative errno with err set. */
int bench_relay_start(const char *bin, const char *log_path, struct bench_relay *r,
                      char *err) DC_MUST_CHECK;
/* SIGTERM, wait up to BENCH_RELAY_STOP_MS, then SIGKILL; no-op when pid < 0. */
void bench_relay_stop(struct bench_relay *r);

/* Reads a "Name:   123 kB" field of /proc/PID/status (pid 0 = self) or of
 * /proc/meminfo (pid -1). Returns the value in KiB, or negative errno. */
long bench_proc_kib(pid_t pid, const char *field);

/* CPU time (user + system) pid has used so far, in ms (clock-tick
 * resolution, usually 10 ms), or negative errno. */
long bench_proc_cpu_ms(pid_t pid);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft
 * limit (children started later inherit it). */
long bench_raise_nofile(void);

/* Writes all len bytes to a blocking fd (pipes between benchmark processes).
 * Returns 0 or negative errno. */
int bench_write_all(int fd, const void *p, size_t len) DC_MUST_CHECK;
/* Reads exactly len bytes, waiting at most timeout_ms in total. Returns 0,
 * -ETIMEDOUT, -ECONNRESET at EOF, or negative errno. */
int bench_read_full(int fd, void *p, size_t len, int timeout_ms) DC_MUST_CHECK;

/* Waits up to timeout_ms for child pid to exit, then SIGKILLs it. Returns
 * its exit status (0..255), or -1 when it was killed or died by a signal. */
int bench_reap(pid_t pid, int timeout_ms);

/* Parses a decimal number in [min, max] (flag names the option for the
 * message). Returns 0 or -EINVAL with err quoting the text. */
int bench_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max,
                     unsigned long *out, char *err) DC_MUST_CHECK;

#endif
