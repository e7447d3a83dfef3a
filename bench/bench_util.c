#include "bench_util.h"

#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_until_ns(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000u),
                          .tv_nsec = (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

int bench_default_relay_bin(const char *argv0, char *out, size_t out_len)
{
    const char *slash = strrchr(argv0, '/');
    int dir_len = slash != NULL ? (int)(slash - argv0) : 1;
    const char *dir = slash != NULL ? argv0 : ".";
    int n = snprintf(out, out_len, "%.*s/derp-relay", dir_len, dir);
    if (n < 0 || (size_t)n >= out_len) {
        return -ENAMETOOLONG;
    }
    return 0;
}

int bench_free_port(uint16_t *port, char *err)
{
    int fd = dc_net_listen_tcp("127.0.0.1:0", 1, err);
    if (fd < 0) {
        return fd;
    }
    *port = dc_net_local_port(fd);
    close(fd);
    return *port != 0 ? 0 : dc_err_set(err, -EADDRNOTAVAIL, "getsockname: no port");
}

/* Name of derper's key file inside its tmp_dir. */
#define DERPER_KEY_NAME "derper.key"

/* In the child: stderr to the log, then exec the server. Never returns. */
static void exec_server(const struct bench_server_opts *o, const struct bench_relay *r)
{
    int fd =
        open(o->log_path != NULL ? o->log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    char listen[32], key_path[BENCH_TMP_LEN + sizeof(DERPER_KEY_NAME)];
    const char *argv[16 + BENCH_MAX_EXTRA_ARGS] = {NULL};
    size_t n = 0;
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", r->port);
    argv[n++] = o->bin;
    if (o->kind == BENCH_SERVER_DERPER) {
        /* Plain HTTP on exactly this address (port not 443); never -dev, which
         * listens on every interface. An empty -mesh-psk-file keeps derper
         * from picking up a mesh key from $HOME. */
        snprintf(key_path, sizeof(key_path), "%s/%s", r->tmp_dir, DERPER_KEY_NAME);
        const char *args[] = {"-a", listen, "-stun=false", "-mesh-psk-file=", "-c", key_path};
        for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
            argv[n++] = args[i];
        }
    } else {
        const char *args[] = {"--listen", listen,       "--stun-listen",
                              "off",      "--drain-ms", BENCH_RELAY_DRAIN_MS};
        for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
            argv[n++] = args[i];
        }
        for (size_t i = 0;
             o->extra_args != NULL && o->extra_args[i] != NULL && i < BENCH_MAX_EXTRA_ARGS; i++) {
            argv[n++] = o->extra_args[i];
        }
    }
    execv(o->bin, (char *const *)argv);
    _exit(127);
}

/* Polls until the server accepts a TCP connection, it exits, or time is up. */
static int wait_listening(struct bench_relay *r, char *err)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)BENCH_RELAY_START_MS * 1000000u;
    while (bench_now_ns() < deadline) {
        int status;
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = -1;
            return dc_err_set(err, -ECHILD, "server exited during startup (status %d)",
                              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        int fd = dc_net_connect_tcp("127.0.0.1", r->port, 200, NULL);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        usleep(20000);
    }
    return dc_err_set(err, -ETIMEDOUT, "server not listening on port %u after %d ms", r->port,
                      BENCH_RELAY_START_MS);
}

int bench_server_start(const struct bench_server_opts *o, struct bench_relay *r, char *err)
{
    *r = (struct bench_relay){.pid = -1};
    int rc = o->kind == BENCH_SERVER_DERPER ? bench_tmp_dir_make(r->tmp_dir, err) : 0;
    /* A free port can be taken between bench_free_port() and the server's
     * bind: then try again, unless the caller fixed the port. */
    for (int attempt = 0; rc == 0 && attempt < 3; attempt++) {
        r->port = o->port;
        rc = r->port == 0 ? bench_free_port(&r->port, err) : 0;
        if (rc < 0) {
            break;
        }
        fflush(NULL);
        r->pid = fork();
        if (r->pid < 0) {
            rc = dc_err_set(err, -errno, "fork: %s", strerror(errno));
            break;
        }
        if (r->pid == 0) {
            exec_server(o, r);
        }
        rc = wait_listening(r, err);
        if (rc != -ECHILD || o->port != 0) {
            break;
        }
    }
    if (rc == 0) {
        snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%u/derp", r->port);
    } else {
        bench_relay_stop(r);
    }
    return rc;
}

int bench_relay_start(const char *bin, const char *log_path, struct bench_relay *r, char *err)
{
    struct bench_server_opts o = {.kind = BENCH_SERVER_RELAY, .bin = bin, .log_path = log_path};
    return bench_server_start(&o, r, err);
}

void bench_relay_stop(struct bench_relay *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        (void)bench_reap(r->pid, BENCH_RELAY_STOP_MS);
    }
    r->pid = -1;
    bench_tmp_dir_remove(r->tmp_dir, DERPER_KEY_NAME);
    r->tmp_dir[0] = '\0';
}

int bench_tmp_dir_make(char out[static BENCH_TMP_LEN], char *err)
{
    snprintf(out, BENCH_TMP_LEN, "/tmp/bench-XXXXXX");
    if (mkdtemp(out) == NULL) {
        int e = -errno;
        out[0] = '\0';
        return dc_err_set(err, e, "mkdtemp: %s", strerror(-e));
    }
    return 0;
}

void bench_tmp_dir_remove(const char *dir, const char *name)
{
    if (dir[0] == '\0') {
        return;
    }
    char path[BENCH_TMP_LEN + 64];
    if (name != NULL && snprintf(path, sizeof(path), "%s/%s", dir, name) < (int)sizeof(path)) {
        (void)unlink(path);
    }
    (void)rmdir(dir);
}

long bench_http_get(uint16_t port, const char *path, char *buf, size_t len, int timeout_ms)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    char req[256];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", path, port);
    if (n < 0 || (size_t)n >= sizeof(req) || len == 0) {
        return -EINVAL;
    }
    int fd = dc_net_connect_tcp("127.0.0.1", port, timeout_ms, NULL);
    if (fd < 0) {
        return fd;
    }
    long rc = bench_write_all(fd, req, (size_t)n);
    size_t got = 0;
    while (rc == 0) {
        uint64_t now = bench_now_ns();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (now >= deadline || poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t r = read(fd, buf + got, len - 1 - got);
        if (r < 0 && errno != EINTR && errno != EAGAIN) {
            rc = -errno;
        }
        got += r > 0 ? (size_t)r : 0;
        if (r == 0 || got == len - 1) {
            break; /* EOF: the whole answer; or buf is full */
        }
    }
    close(fd);
    buf[got] = '\0';
    return rc < 0 ? rc : (long)got;
}

int bench_reap(pid_t pid, int timeout_ms)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        if (got < 0 || bench_now_ns() >= deadline) {
            break;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* Finds "field:" at the start of a line in text; returns its number or -ENOENT. */
static long find_kib(const char *text, const char *field)
{
    size_t flen = strlen(field);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            char *end = NULL;
            long v = strtol(line + flen + 1, &end, 10);
            return end != line + flen + 1 ? v : -EINVAL;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return -ENOENT;
}

long bench_proc_kib(pid_t pid, const char *field)
{
    char path[64];
    if (pid < 0) {
        snprintf(path, sizeof(path), "/proc/meminfo");
    } else if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/status");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    char text[8192];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    int rerr = errno;
    close(fd);
    if (n < 0) {
        return -rerr;
    }
    text[n] = '\0';
    return find_kib(text, field);
}

long bench_proc_cpu_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    char text[1024];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0) {
        return -EIO;
    }
    text[n] = '\0';
    /* The command name may hold spaces: fields are counted after its ')'.
     * Field 3 (state) follows it; utime and stime are fields 14 and 15. */
    const char *p = strrchr(text, ')');
    unsigned long long ticks[2] = {0, 0};
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &ticks[0], &ticks[1]) != 2) {
        return -EPROTO;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (long)((ticks[0] + ticks[1]) * 1000u / (unsigned long long)(hz > 0 ? hz : 100));
}

long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -errno;
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -errno;
    }
    return rl.rlim_cur > 0x7fffffff ? 0x7fffffff : (long)rl.rlim_cur;
}

int bench_write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

int bench_read_full(int fd, void *p, size_t len, int timeout_ms)
{
    uint8_t *b = p;
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (len > 0) {
        uint64_t now = bench_now_ns();
        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left_ms = (int)((deadline - now) / 1000000u) + 1;
        if (poll(&pfd, 1, left_ms) < 0 && errno != EINTR) {
            return -errno;
        }
        if (pfd.revents == 0) {
            continue;
        }
        ssize_t n = read(fd, b, len);
        if (n == 0) {
            return -ECONNRESET;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return -errno;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

int bench_parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max,
                     unsigned long *out, char *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v < min || v > max) {
        return dc_err_set(err, -EINVAL, "%s: want a number in [%lu, %lu]: `%s'", flag, min, max, s);
    }
    *out = v;
    return 0;
}
