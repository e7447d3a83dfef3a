/* bench_util: what the benchmarks share: a derp-relay (or Tailscale derper)
 * child on a loopback port, a nanosecond clock, /proc readers, a tiny HTTP GET
 * and parent/child pipes.
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
/* Longest temporary directory path (mkdtemp under /tmp), with its NUL. */
#define BENCH_TMP_LEN 64
/* Most extra arguments bench_server_start() appends for derp-relay. */
#define BENCH_MAX_EXTRA_ARGS 8

/* Which server a child runs. */
enum bench_server_kind {
    BENCH_SERVER_RELAY,  /* our derp-relay */
    BENCH_SERVER_DERPER, /* Tailscale's cmd/derper (plain HTTP on loopback) */
};

/* How bench_server_start() starts a server child. */
struct bench_server_opts {
    enum bench_server_kind kind;
    const char *bin;               /* borrowed; the executable */
    const char *log_path;          /* borrowed; its stderr; NULL = /dev/null */
    uint16_t port;                 /* 0 = a free port, retried if taken; else exactly this */
    const char *const *extra_args; /* borrowed; NULL-terminated, appended (relay only); or NULL */
};

/* A server child process (all zero plus pid -1 = none). */
struct bench_relay {
    pid_t pid;                   /* child pid; -1 when we did not start one */
    uint16_t port;               /* loopback port it listens on */
    char url[BENCH_URL_LEN];     /* "http://127.0.0.1:PORT/derp" */
    char tmp_dir[BENCH_TMP_LEN]; /* derper: its key file's directory, removed by stop; or "" */
};

/* Nanoseconds on CLOCK_MONOTONIC: the same clock in every process, so a
 * parent can hand its children a common start time. */
uint64_t bench_now_ns(void);
/* Sleeps until bench_now_ns() >= t_ns. */
void bench_sleep_until_ns(uint64_t t_ns);

/* Writes the derp-relay path next to argv0 ("<dir of argv0>/derp-relay")
 * into out. Returns 0 or -ENAMETOOLONG. */
int bench_default_relay_bin(const char *argv0, char *out, size_t out_len) DC_MUST_CHECK;

/* Asks the kernel for a free 127.0.0.1 TCP port. Another process may take it
 * before we bind it. Returns 0 or negative errno with err set. */
int bench_free_port(uint16_t *port, char *err) DC_MUST_CHECK;

/* Starts a server child on 127.0.0.1 and waits until it accepts TCP:
 * derp-relay as `BIN --listen 127.0.0.1:PORT --stun-listen off --drain-ms 100
 * EXTRA...`, derper as `BIN -a 127.0.0.1:PORT -stun=false -mesh-psk-file=
 * -c DIR/derper.key` with DIR a fresh mkdtemp directory (derper writes a new
 * server key there). Returns 0 with r filled (stop with bench_relay_stop()),
 * or negative errno with err set. */
int bench_server_start(const struct bench_server_opts *o, struct bench_relay *r,
                       char *err) DC_MUST_CHECK;
/* bench_server_start() for derp-relay on a free port with no extra args. */
int bench_relay_start(const char *bin, const char *log_path, struct bench_relay *r,
                      char *err) DC_MUST_CHECK;
/* SIGTERM, wait up to BENCH_RELAY_STOP_MS, then SIGKILL; then removes
 * tmp_dir and its key file. No-op when pid < 0 and tmp_dir is "". */
void bench_relay_stop(struct bench_relay *r);

/* Makes a private directory /tmp/bench-XXXXXX into out. Returns 0 or
 * negative errno with err set. */
int bench_tmp_dir_make(char out[static BENCH_TMP_LEN], char *err) DC_MUST_CHECK;
/* Unlinks dir/name (when name is not NULL), then removes dir; "" = no-op. */
void bench_tmp_dir_remove(const char *dir, const char *name);

/* GETs http://127.0.0.1:port/path (the server closes after answering) and
 * reads the answer, headers included, into buf, NUL-terminated and cut at
 * len - 1 bytes. Returns the bytes stored or negative errno (-ETIMEDOUT
 * when the answer is not complete within timeout_ms). */
long bench_http_get(uint16_t port, const char *path, char *buf, size_t len, int timeout_ms);

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
