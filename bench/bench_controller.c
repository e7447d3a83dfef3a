/* bench-controller: derp-controller with 10 000 Clusters: time to the first
 * map, memory, and how fast one change reaches 1 000 parked long-polls.
 *
 * The bench writes N Cluster documents into a fresh directory (--files files
 * of about N / files documents, plus one small file holding the one Cluster
 * that changes), starts derp-controller on a loopback port with its stderr
 * on a pipe, and measures:
 *
 * 1. Exec to the first 200 on /readyz, and to the first full GET /derpmap
 *    holding all N regions (plus region 900). The controller's own log line
 *    "map generation 1" is placed on the same clock for comparison.
 * 2. VmRSS and VmHWM of the controller after the first map, with the
 *    waiters parked, and at the end.
 * 3. W keep-alive connections (non-blocking, one epoll set) each send
 *    GET /derpmap?wait=S with If-None-Match: the current ETag. Once /metrics
 *    shows W parked waiters, the small file is rewritten atomically (written
 *    next to the clusters directory, then renamed into it) with a new
 *    endpoint, and the bench times the rename to the first byte of any
 *    answer, to the first and the last complete answer, and the controller's
 *    "map generation K" log line to the last answer. The controller writes
 *    that line after map_server_set_map() has made its first write to every
 *    waiter, so that figure is only the tail; the first byte of any answer
 *    to the last whole answer is the fan-out. Every answer must be a 200
 *    with the new ETag and the whole map; a final GET checks that the map
 *    holds the new endpoint. The debounce (50 ms by design) is inside every
 *    figure counted from the rename, and also shown subtracted.
 *
 * Baselines in the same run, on the same W connections, each repeat taking
 * its turn before the change: a GET /healthz round (the cheapest
 * request/response round over every socket) and a plain GET /derpmap round
 * (the same map bytes to every connection, without any long-poll).
 *
 * Everything stays on 127.0.0.1 and every wait has a deadline. The
 * controller is SIGTERMed (SIGKILLed if it lingers, and it dies with the
 * bench through PR_SET_PDEATHSIG), and the directory is removed. */
#include "bench_util.h"

#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* File descriptors kept free for everything but the waiter connections. */
#define BC_FD_RESERVE 64
/* Exec to the first full map, at most (ms). */
#define BC_START_MS 10000
/* All waiters parked, at most (ms). */
#define BC_PARK_MS 10000
/* One round of answers over every connection, at most (ms). */
#define BC_ROUND_MS 30000
/* A connect to the controller, at most (ms). */
#define BC_CONNECT_MS 5000
/* Response head kept per connection; the controller's are about 200 bytes. */
#define BC_HEAD_LEN 1024
/* One read() of answer bytes. */
#define BC_READ_LEN (256u << 10)
/* Longest controller log line kept (longer ones are cut). */
#define BC_LOG_LEN 4096
/* ETag with its quotes and NUL (derpmap: 32 hex digits). */
#define BC_ETAG_LEN 64
/* Most repeats (medians are taken over them). */
#define BC_MAX_ROUNDS 100
/* Map bytes allowed per region (about 155 with the names the bench writes). */
#define BC_MAP_BYTES_PER_REGION 256
/* epoll data of the controller's stderr pipe (connections use their index). */
#define BC_LOG_TAG UINT64_MAX
/* source_dir.h SOURCE_DIR_DEBOUNCE_MS: the controller's wait after a change. */
#define BC_DEBOUNCE_MS 50
/* Region 900 in every map (--central-endpoint). */
#define BC_CENTRAL "central.example.com"
/* The small file that changes, inside the clusters directory. */
#define BC_CHANGE_NAME "zz-change.yaml"

struct bc_opts {
    char bin[PATH_MAX];     /* --controller-bin */
    const char *log_path;   /* --controller-log: a copy of its stderr; or NULL */
    unsigned long clusters; /* --clusters: N */
    unsigned long files;    /* --files: files holding the N - 1 that stay */
    unsigned long waiters;  /* --waiters: W */
    unsigned long rounds;   /* --rounds: repeats of every measurement */
    unsigned long wait_s;   /* --wait: the long-poll's ?wait= seconds */
    bool gzip;              /* --gzip: waiters send Accept-Encoding: gzip */
};

/* One keep-alive connection and the answer it is reading. */
struct bc_conn {
    int fd;                 /* non-blocking socket; -1 = none */
    char head[BC_HEAD_LEN]; /* response head so far, NUL-terminated */
    size_t head_len;        /* bytes in head */
    bool has_head;          /* head complete and parsed */
    bool is_done;           /* whole answer read */
    int code;               /* status code */
    char etag[BC_ETAG_LEN]; /* ETag header or "" */
    size_t body_len;        /* Content-Length */
    size_t body_got;        /* body bytes read */
    uint64_t first_ns;      /* first byte of the answer; 0 = none yet */
    uint64_t done_ns;       /* last byte of the answer */
};

/* The controller's stderr, read through a pipe. */
struct bc_log {
    int fd;                     /* pipe read end (non-blocking); -1 = none */
    FILE *copy;                 /* owned; --controller-log, or NULL */
    char line[BC_LOG_LEN];      /* the line being read */
    size_t len;                 /* bytes in line */
    unsigned long gen;          /* last "map generation K" seen; 0 = none */
    int64_t gen_wall_ms;        /* its timestamp, Unix ms (whole ms: cut, not rounded) */
    char gen_etag[BC_ETAG_LEN]; /* its etag */
};

/* Times of one round over every connection, ms from its start. */
struct bc_round {
    double first_byte_ms; /* first byte of any answer */
    double first_done_ms; /* first complete answer */
    double last_done_ms;  /* last complete answer */
};

/* One change, ms from the rename. */
struct bc_change {
    struct bc_round r;
    double log_ms;         /* the controller's "map generation K" timestamp */
    double log_to_last_ms; /* from that timestamp to the last answer */
    double fanout_ms;      /* first byte of any answer to the last whole answer */
    double undebounced_ms; /* rename to the last answer, minus the debounce */
    long cpu_ms;           /* controller CPU time over the change (10 ms ticks) */
};

struct bc_results {
    double readyz_ms, map_ms, log_gen1_ms;                           /* from fork+exec */
    size_t map_bytes;                                                /* first map's body */
    long rss_map, hwm_map, rss_parked, hwm_parked, rss_end, hwm_end; /* KiB */
    struct bc_round health[BC_MAX_ROUNDS], full[BC_MAX_ROUNDS];
    struct bc_change change[BC_MAX_ROUNDS];
};

struct bc_bench {
    const struct bc_opts *o;
    char dir[BENCH_TMP_LEN];    /* mkdtemp; "" = none */
    pid_t pid;                  /* controller; -1 = none */
    uint16_t port;              /* its --listen port */
    struct bc_log log;          /* its stderr */
    struct bc_conn *conns;      /* owned; o->waiters of them */
    int ep;                     /* epoll over conns and log.fd; -1 = none */
    char *map;                  /* owned; buffer for a whole GET /derpmap */
    size_t map_cap;             /* its size */
    uint8_t *scratch;           /* owned; BC_READ_LEN bytes for answer bodies */
    char etag[BC_ETAG_LEN];     /* the current map's ETag */
    int64_t wall_minus_mono_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
};

static double ms_between(uint64_t from_ns, uint64_t to_ns)
{
    return ((double)to_ns - (double)from_ns) / 1e6;
}

static int64_t wall_minus_mono_ns(void)
{
    struct timespec w;
    uint64_t m0 = bench_now_ns();
    clock_gettime(CLOCK_REALTIME, &w);
    uint64_t m1 = bench_now_ns();
    int64_t wall = (int64_t)w.tv_sec * 1000000000 + w.tv_nsec;
    return wall - (int64_t)(m0 / 2 + m1 / 2);
}

/* --- Cluster files ------------------------------------------------------ */

/* Writes count Cluster documents c<first>.. into path; tag > 0 gives the
 * endpoints a "-r<tag>" suffix (the change). Returns 0 or negative errno. */
static int write_clusters(const char *path, unsigned long first, unsigned long count,
                          unsigned long tag, char *err)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return dc_err_set(err, -errno, "%s: %s", path, strerror(errno));
    }
    for (unsigned long i = first; i < first + count; i++) {
        char suffix[32] = "";
        if (tag > 0) {
            snprintf(suffix, sizeof(suffix), "-r%lu", tag);
        }
        fprintf(f,
                "%sapiVersion: management.loft.sh/v1\nkind: Cluster\nmetadata:\n  name: c%lu\n"
                "  annotations:\n    loft.sh/derp-endpoint: c%lu%s.example.com\n",
                i == first ? "" : "---\n", i, i, suffix);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        return dc_err_set(err, -EIO, "%s: write failed", path);
    }
    return 0;
}

/* DIR/clusters/clusters-NNN.yaml with c0..c(N-2), DIR/clusters/zz-change.yaml
 * with c(N-1), and DIR/state. */
static int write_tree(const struct bc_bench *b, char *err)
{
    const struct bc_opts *o = b->o;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/clusters", b->dir);
    int rc = mkdir(path, 0700) == 0 ? 0 : dc_err_set(err, -errno, "mkdir %s", path);
    snprintf(path, sizeof(path), "%s/state", b->dir);
    if (rc == 0 && mkdir(path, 0700) < 0) {
        rc = dc_err_set(err, -errno, "mkdir %s", path);
    }
    unsigned long stay = o->clusters - 1;
    unsigned long per = (stay + o->files - 1) / o->files;
    for (unsigned long f = 0, first = 0; rc == 0 && first < stay; f++, first += per) {
        snprintf(path, sizeof(path), "%s/clusters/clusters-%03lu.yaml", b->dir, f);
        rc = write_clusters(path, first, stay - first < per ? stay - first : per, 0, err);
    }
    snprintf(path, sizeof(path), "%s/clusters/" BC_CHANGE_NAME, b->dir);
    return rc < 0 ? rc : write_clusters(path, stay, 1, 0, err);
}

/* Writes the changed Cluster next to the clusters directory, then renames it
 * in: one IN_MOVED_TO, and the reader never sees half a file. *t_ns is taken
 * right after rename() returns. */
static int change_endpoint(const struct bc_bench *b, unsigned long tag, uint64_t *t_ns, char *err)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/change.tmp", b->dir);
    snprintf(dst, sizeof(dst), "%s/clusters/" BC_CHANGE_NAME, b->dir);
    int rc = write_clusters(tmp, b->o->clusters - 1, 1, tag, err);
    if (rc < 0) {
        return rc;
    }
    if (rename(tmp, dst) < 0) {
        return dc_err_set(err, -errno, "rename %s: %s", tmp, strerror(errno));
    }
    *t_ns = bench_now_ns();
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    if (dir[0] != '\0') {
        (void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* --- The controller and its log ----------------------------------------- */

/* Parses a "2026-11-24T10:00:00.123Z ..." log timestamp into Unix ms. */
static bool log_wall_ms(const char *line, int64_t *ms)
{
    struct tm tm = {0};
    int msec = 0;
    if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec) != 7) {
        return false;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000 + msec;
    return true;
}

/* Notes a "map generation K: ..., etag "..."" line. */
static void log_line(struct bc_log *l, const char *line)
{
    const char *g = strstr(line, "map generation ");
    const char *e = strstr(line, ", etag ");
    int64_t ms;
    if (g == NULL || e == NULL || !log_wall_ms(line, &ms)) {
        return;
    }
    char *end = NULL;
    unsigned long gen = strtoul(g + strlen("map generation "), &end, 10);
    if (end == NULL || *end != ':') {
        return;
    }
    l->gen = gen;
    l->gen_wall_ms = ms;
    snprintf(l->gen_etag, sizeof(l->gen_etag), "%s", e + strlen(", etag "));
}

/* Reads whatever the controller has written to stderr. */
static void log_drain(struct bc_log *l)
{
    char buf[4096];
    ssize_t n;
    while (l->fd >= 0 && (n = read(l->fd, buf, sizeof(buf))) > 0) {
        if (l->copy != NULL) {
            fwrite(buf, 1, (size_t)n, l->copy);
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (l->len < sizeof(l->line) - 1) {
                    l->line[l->len++] = buf[i];
                }
                continue;
            }
            l->line[l->len] = '\0';
            log_line(l, l->line);
            l->len = 0;
        }
    }
}

/* The last generation's log timestamp on the monotonic clock, in ns. */
static uint64_t log_gen_mono_ns(const struct bc_bench *b)
{
    return (uint64_t)(b->log.gen_wall_ms * 1000000 - b->wall_minus_mono_ns);
}

/* Drains the log until generation gen shows up (it follows the answers). */
static int log_wait_gen(struct bc_bench *b, unsigned long gen, char *err)
{
    uint64_t deadline = bench_now_ns() + 2000000000u;
    log_drain(&b->log);
    while (b->log.gen < gen && bench_now_ns() < deadline) {
        usleep(1000);
        log_drain(&b->log);
    }
    return b->log.gen >= gen ? 0
                             : dc_err_set(err, -ETIMEDOUT, "no log line `map generation %lu'", gen);
}

/* In the child: stderr to the pipe, then exec. Never returns. */
static void exec_controller(const struct bc_bench *b, int log_fd)
{
    char clusters[PATH_MAX], state[PATH_MAX], listen[32];
    snprintf(clusters, sizeof(clusters), "%s/clusters", b->dir);
    snprintf(state, sizeof(state), "%s/state", b->dir);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", b->port);
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(log_fd, STDERR_FILENO);
    const char *argv[] = {b->o->bin,  "--clusters-dir",
                          clusters,   "--central-endpoint",
                          BC_CENTRAL, "--listen",
                          listen,     "--state-dir",
                          state,      NULL};
    execv(b->o->bin, (char *const *)argv);
    _exit(127);
}

/* Forks and execs the controller; *t_ns is taken just before fork(). */
static int controller_start(struct bc_bench *b, uint64_t *t_ns, char *err)
{
    int p[2];
    int rc = bench_free_port(&b->port, err);
    if (rc < 0) {
        return rc;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        return dc_err_set(err, -errno, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    *t_ns = bench_now_ns();
    b->pid = fork();
    if (b->pid < 0) {
        rc = dc_err_set(err, -errno, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return rc;
    }
    if (b->pid == 0) {
        exec_controller(b, p[1]);
    }
    close(p[1]);
    b->log.fd = p[0];
    return dc_net_set_nonblock(p[0], 1);
}

static void controller_stop(struct bc_bench *b)
{
    if (b->pid > 0) {
        kill(b->pid, SIGTERM);
        (void)bench_reap(b->pid, 5000);
        b->pid = -1;
    }
    log_drain(&b->log);
}

static int controller_alive(struct bc_bench *b, char *err)
{
    int status;
    if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
        b->pid = -1;
        return dc_err_set(err, -ECHILD, "derp-controller exited (status %d); see --controller-log",
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    return 0;
}

/* --- HTTP answers ------------------------------------------------------- */

/* Finds "Name: value" in a NUL-terminated head; copies the value into out. */
static bool head_field(const char *head, const char *name, char *out, size_t out_len)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            v += strspn(v, " ");
            size_t len = strcspn(v, "\r");
            if (len >= out_len) {
                return false;
            }
            memcpy(out, v, len);
            out[len] = '\0';
            return true;
        }
    }
    return false;
}

/* Parses a complete head: status code, Content-Length, ETag. */
static int head_parse(const char *head, int *code, size_t *body_len, char etag[BC_ETAG_LEN])
{
    char cl[32];
    if (sscanf(head, "HTTP/1.1 %d ", code) != 1 || !head_field(head, "Content-Length", cl, 32)) {
        return -EPROTO;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (end == cl || *end != '\0' || errno != 0 || v > SIZE_MAX) {
        return -EPROTO;
    }
    *body_len = (size_t)v;
    if (!head_field(head, "ETag", etag, BC_ETAG_LEN)) {
        etag[0] = '\0';
    }
    return 0;
}

/* Takes len answer bytes for c: head bytes into c->head, the rest counted
 * as body. Returns 0 or -EPROTO (bad head, or bytes past the answer). */
static int conn_take(struct bc_conn *c, const uint8_t *p, size_t len, uint64_t now)
{
    if (c->first_ns == 0) {
        c->first_ns = now;
    }
    if (!c->has_head) {
        size_t old = c->head_len;
        size_t take = len < sizeof(c->head) - 1 - old ? len : sizeof(c->head) - 1 - old;
        memcpy(c->head + old, p, take);
        c->head_len += take;
        c->head[c->head_len] = '\0';
        char *end = strstr(c->head, "\r\n\r\n");
        if (end == NULL) {
            return c->head_len < sizeof(c->head) - 1 ? 0 : -EPROTO;
        }
        size_t head_len = (size_t)(end - c->head) + 4;
        c->head[head_len] = '\0';
        c->has_head = true;
        p += head_len - old;
        len -= head_len - old;
        if (head_parse(c->head, &c->code, &c->body_len, c->etag) < 0) {
            return -EPROTO;
        }
    }
    if (len > c->body_len - c->body_got) {
        return -EPROTO;
    }
    c->body_got += len;
    if (c->body_got == c->body_len) {
        c->is_done = true;
        c->done_ns = now;
    }
    return 0;
}

static void conn_reset(struct bc_conn *c)
{
    int fd = c->fd;
    memset(c, 0, sizeof(*c));
    c->fd = fd;
}

/* --- The W connections -------------------------------------------------- */

static int conns_open(struct bc_bench *b, char *err)
{
    b->ep = epoll_create1(EPOLL_CLOEXEC);
    if (b->ep < 0) {
        return dc_err_set(err, -errno, "epoll_create1: %s", strerror(errno));
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = BC_LOG_TAG};
    if (epoll_ctl(b->ep, EPOLL_CTL_ADD, b->log.fd, &ev) < 0) {
        return dc_err_set(err, -errno, "epoll_ctl: %s", strerror(errno));
    }
    for (unsigned long i = 0; i < b->o->waiters; i++) {
        struct bc_conn *c = &b->conns[i];
        c->fd = dc_net_connect_tcp("127.0.0.1", b->port, BC_CONNECT_MS, err);
        if (c->fd < 0) {
            return c->fd;
        }
        int rc = dc_net_set_nonblock(c->fd, 1);
        if (rc == 0) {
            rc = dc_net_set_nodelay(c->fd);
        }
        ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = i};
        if (rc == 0 && epoll_ctl(b->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
            rc = -errno;
        }
        if (rc < 0) {
            return dc_err_set(err, rc, "connection %lu: %s", i, dc_strerror(rc));
        }
    }
    return 0;
}

static void conns_close(struct bc_bench *b)
{
    for (unsigned long i = 0; b->conns != NULL && i < b->o->waiters; i++) {
        if (b->conns[i].fd >= 0) {
            close(b->conns[i].fd);
            b->conns[i].fd = -1;
        }
    }
    if (b->ep >= 0) {
        close(b->ep);
        b->ep = -1;
    }
}

/* Sends the same request on every connection (a few hundred bytes: the
 * empty socket buffer takes it whole). */
static int conns_send(struct bc_bench *b, const char *req, char *err)
{
    size_t len = strlen(req);
    for (unsigned long i = 0; i < b->o->waiters; i++) {
        struct bc_conn *c = &b->conns[i];
        conn_reset(c);
        ssize_t n = write(c->fd, req, len);
        if (n != (ssize_t)len) {
            return dc_err_set(err, n < 0 ? -errno : -EIO, "connection %lu: short write", i);
        }
    }
    return 0;
}

/* One read on connection i. Returns 1 when its answer just completed, 0
 * when more is to come, or negative errno with err set. */
static int conn_read(struct bc_bench *b, unsigned long i, char *err)
{
    struct bc_conn *c = &b->conns[i];
    ssize_t n = read(c->fd, b->scratch, BC_READ_LEN);
    uint64_t now = bench_now_ns();
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    if (n <= 0) {
        return dc_err_set(err, n < 0 ? -errno : -ECONNRESET, "connection %lu: %s", i,
                          n < 0 ? strerror(errno) : "closed by the controller");
    }
    bool was_done = c->is_done;
    if (was_done || conn_take(c, b->scratch, (size_t)n, now) < 0) {
        return dc_err_set(err, -EPROTO, "connection %lu: bad answer: `%.60s'", i, c->head);
    }
    return c->is_done ? 1 : 0;
}

/* Reads until every connection has its whole answer; fills r relative to
 * t0_ns. Also drains the controller's log. */
static int conns_receive(struct bc_bench *b, uint64_t t0_ns, struct bc_round *r, char *err)
{
    unsigned long left = b->o->waiters;
    uint64_t deadline = bench_now_ns() + (uint64_t)BC_ROUND_MS * 1000000u;
    struct epoll_event ev[256];
    while (left > 0) {
        uint64_t now = bench_now_ns();
        if (now >= deadline) {
            return dc_err_set(err, -ETIMEDOUT, "%lu of %lu answers missing after %d ms", left,
                              b->o->waiters, BC_ROUND_MS);
        }
        int n = epoll_wait(b->ep, ev, 256, (int)((deadline - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR) {
            return dc_err_set(err, -errno, "epoll_wait: %s", strerror(errno));
        }
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u64 == BC_LOG_TAG) {
                log_drain(&b->log);
                continue;
            }
            int rc = conn_read(b, (unsigned long)ev[k].data.u64, err);
            if (rc < 0) {
                return rc;
            }
            left -= (unsigned long)rc;
        }
    }
    uint64_t first = UINT64_MAX, first_done = UINT64_MAX, last_done = 0;
    for (unsigned long i = 0; i < b->o->waiters; i++) {
        const struct bc_conn *c = &b->conns[i];
        first = c->first_ns < first ? c->first_ns : first;
        first_done = c->done_ns < first_done ? c->done_ns : first_done;
        last_done = c->done_ns > last_done ? c->done_ns : last_done;
    }
    *r = (struct bc_round){.first_byte_ms = ms_between(t0_ns, first),
                           .first_done_ms = ms_between(t0_ns, first_done),
                           .last_done_ms = ms_between(t0_ns, last_done)};
    return 0;
}

/* Every answer of the round: this code, this ETag (NULL = any), this length. */
static int conns_check(const struct bc_bench *b, int code, const char *etag, size_t len, char *err)
{
    for (unsigned long i = 0; i < b->o->waiters; i++) {
        const struct bc_conn *c = &b->conns[i];
        /* len 0: any non-empty body (gzip answers are smaller than the map) */
        if (c->code != code || (etag != NULL && strcmp(c->etag, etag) != 0) ||
            (len != 0 ? c->body_len != len : c->body_len == 0)) {
            return dc_err_set(err, -EPROTO,
                              "connection %lu: got %d, ETag `%s', %zu bytes; want %d, `%s', %zu", i,
                              c->code, c->etag, c->body_len, code, etag != NULL ? etag : "*", len);
        }
    }
    return 0;
}

/* --- Plain GETs on their own connection ---------------------------------- */

/* GET /derpmap into b->map; checks 200 and the region count, and returns
 * the body and the ETag. */
static int get_map(struct bc_bench *b, const char **body, size_t *body_len, char *err)
{
    long n = bench_http_get(b->port, "/derpmap", b->map, b->map_cap, 5000);
    if (n < 0 || (size_t)n >= b->map_cap - 1) {
        return dc_err_set(err, n < 0 ? (int)n : -EMSGSIZE, "GET /derpmap: %s",
                          n < 0 ? dc_strerror((int)n) : "larger than the buffer");
    }
    char *sep = strstr(b->map, "\r\n\r\n");
    if (strncmp(b->map, "HTTP/1.1 200", 12) != 0 || sep == NULL) {
        return dc_err_set(err, -EPROTO, "GET /derpmap: `%.40s'", b->map);
    }
    sep[2] = '\0'; /* the head ends at its last CRLF */
    if (!head_field(b->map, "ETag", b->etag, sizeof(b->etag))) {
        return dc_err_set(err, -EPROTO, "GET /derpmap: no ETag");
    }
    *body = sep + 4;
    *body_len = (size_t)n - (size_t)(*body - b->map);
    unsigned long regions = 0;
    for (const char *p = *body; (p = strstr(p, "\"RegionCode\":")) != NULL; p++) {
        regions++;
    }
    if (regions != b->o->clusters + 1) {
        return dc_err_set(err, -EPROTO, "GET /derpmap: %lu regions, want %lu", regions,
                          b->o->clusters + 1);
    }
    return 0;
}

/* Polls /metrics until derp_map_long_poll_waiters is want. */
static int wait_parked(struct bc_bench *b, unsigned long want, char *err)
{
    static const char key[] = "\nderp_map_long_poll_waiters ";
    char text[16384];
    unsigned long got = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)BC_PARK_MS * 1000000u;
    while (bench_now_ns() < deadline) {
        log_drain(&b->log);
        long n = bench_http_get(b->port, "/metrics", text, sizeof(text), 2000);
        const char *p = n > 0 ? strstr(text, key) : NULL;
        got = p != NULL ? strtoul(p + strlen(key), NULL, 10) : 0;
        if (got == want) {
            return 0;
        }
        usleep(1000);
    }
    return dc_err_set(err, -ETIMEDOUT, "%lu of %lu waiters parked after %d ms", got, want,
                      BC_PARK_MS);
}

/* --- The measurements --------------------------------------------------- */

static int first_map(struct bc_bench *b, uint64_t t0, struct bc_results *res, char *err)
{
    char text[512];
    uint64_t deadline = t0 + (uint64_t)BC_START_MS * 1000000u;
    for (;;) {
        int rc = controller_alive(b, err);
        if (rc < 0) {
            return rc;
        }
        log_drain(&b->log);
        long n = bench_http_get(b->port, "/readyz", text, sizeof(text), 1000);
        if (n > 0 && strncmp(text, "HTTP/1.1 200", 12) == 0) {
            break;
        }
        if (bench_now_ns() >= deadline) {
            return dc_err_set(err, -ETIMEDOUT, "/readyz not 200 after %d ms", BC_START_MS);
        }
        usleep(1000);
    }
    res->readyz_ms = ms_between(t0, bench_now_ns());
    const char *body;
    int rc = get_map(b, &body, &res->map_bytes, err);
    if (rc < 0) {
        return rc;
    }
    res->map_ms = ms_between(t0, bench_now_ns());
    rc = log_wait_gen(b, 1, err);
    if (rc == 0) {
        res->log_gen1_ms = ms_between(t0, log_gen_mono_ns(b));
    }
    res->rss_map = bench_proc_kib(b->pid, "VmRSS");
    res->hwm_map = bench_proc_kib(b->pid, "VmHWM");
    return rc;
}

/* A request round: send req everywhere, time until every answer is in. */
static int request_round(struct bc_bench *b, const char *path, struct bc_round *r, size_t len,
                         const char *etag, char *err)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", path, b->port);
    uint64_t t0 = bench_now_ns();
    int rc = conns_send(b, req, err);
    if (rc == 0) {
        rc = conns_receive(b, t0, r, err);
    }
    return rc < 0 ? rc : conns_check(b, 200, etag, len, err);
}

/* Parks W long-polls, changes one endpoint, times the answers. */
static int change_round(struct bc_bench *b, unsigned long k, struct bc_results *res, char *err)
{
    char req[512], old_etag[BC_ETAG_LEN], host[96];
    struct bc_change *ch = &res->change[k];
    memcpy(old_etag, b->etag, sizeof(old_etag));
    snprintf(req, sizeof(req),
             "GET /derpmap?wait=%lu HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nIf-None-Match: %s\r\n%s\r\n",
             b->o->wait_s, b->port, old_etag, b->o->gzip ? "Accept-Encoding: gzip\r\n" : "");
    unsigned long gen = b->log.gen + 1;
    uint64_t t0 = 0;
    int rc = conns_send(b, req, err);
    if (rc == 0) {
        rc = wait_parked(b, b->o->waiters, err);
    }
    if (rc == 0 && k == 0) {
        res->rss_parked = bench_proc_kib(b->pid, "VmRSS");
        res->hwm_parked = bench_proc_kib(b->pid, "VmHWM");
    }
    long cpu0 = bench_proc_cpu_ms(b->pid);
    if (rc == 0) {
        rc = change_endpoint(b, k + 1, &t0, err);
    }
    if (rc == 0) {
        rc = conns_receive(b, t0, &ch->r, err);
    }
    ch->cpu_ms = bench_proc_cpu_ms(b->pid) - cpu0;
    if (rc == 0) {
        rc = log_wait_gen(b, gen, err);
    }
    if (rc < 0) {
        return rc;
    }
    uint64_t log_ns = log_gen_mono_ns(b);
    ch->log_ms = ms_between(t0, log_ns);
    ch->log_to_last_ms = ch->r.last_done_ms - ch->log_ms;
    ch->fanout_ms = ch->r.last_done_ms - ch->r.first_byte_ms;
    ch->undebounced_ms = ch->r.last_done_ms - BC_DEBOUNCE_MS;
    const char *body;
    size_t body_len;
    rc = get_map(b, &body, &body_len, err);
    if (rc < 0) {
        return rc;
    }
    snprintf(host, sizeof(host), "\"c%lu-r%lu.example.com\"", b->o->clusters - 1, k + 1);
    if (strcmp(b->etag, old_etag) == 0 || strcmp(b->etag, b->log.gen_etag) != 0 ||
        strstr(body, host) == NULL) {
        return dc_err_set(err, -EPROTO, "map after change %lu: ETag `%s' (log `%s'), %s", k + 1,
                          b->etag, b->log.gen_etag, host);
    }
    return conns_check(b, 200, b->etag, b->o->gzip ? 0 : body_len, err);
}

static int run(struct bc_bench *b, struct bc_results *res, char *err)
{
    const struct bc_opts *o = b->o;
    uint64_t t0 = 0;
    int rc = bench_tmp_dir_make(b->dir, err);
    if (rc == 0) {
        rc = write_tree(b, err);
    }
    if (rc == 0) {
        rc = controller_start(b, &t0, err);
    }
    if (rc == 0) {
        rc = first_map(b, t0, res, err);
    }
    if (rc == 0) {
        rc = conns_open(b, err);
    }
    for (unsigned long k = 0; rc == 0 && k < o->rounds; k++) {
        const char *body;
        size_t len;
        rc = request_round(b, "/healthz", &res->health[k], 3, NULL, err);
        if (rc == 0) {
            rc = get_map(b, &body, &len, err);
        }
        if (rc == 0) {
            rc = request_round(b, "/derpmap", &res->full[k], len, b->etag, err);
        }
        if (rc == 0) {
            rc = change_round(b, k, res, err);
        }
    }
    if (rc == 0) {
        res->rss_end = bench_proc_kib(b->pid, "VmRSS");
        res->hwm_end = bench_proc_kib(b->pid, "VmHWM");
    }
    return rc;
}

/* --- Results ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median and max of n values taken every stride bytes from first. */
static void stats(const void *first, size_t stride, size_t n, double *med, double *max)
{
    double v[BC_MAX_ROUNDS];
    for (size_t i = 0; i < n; i++) {
        memcpy(&v[i], (const char *)first + i * stride, sizeof(double));
    }
    qsort(v, n, sizeof(double), cmp_double);
    *med = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    *max = v[n - 1];
}

static void print_row(const char *what, const void *first, size_t stride, size_t n)
{
    double med, max;
    stats(first, stride, n, &med, &max);
    printf("| %s | %.2f | %.2f | ", what, med, max);
    for (size_t i = 0; i < n; i++) {
        double v;
        memcpy(&v, (const char *)first + i * stride, sizeof(double));
        printf("%s%.2f", i > 0 ? " " : "", v);
    }
    printf(" |\n");
}

static void print_results(const struct bc_opts *o, const struct bc_results *r)
{
    size_t n = o->rounds;
    unsigned long per = (o->clusters - 1 + o->files - 1) / o->files;
    unsigned long files = per > 0 ? (o->clusters - 1 + per - 1) / per : 0;
    printf("derp-controller: %lu Clusters (%lu in %lu files, 1 in " BC_CHANGE_NAME
           "), %lu waiters, %lu rounds, map %zu bytes\n\n",
           o->clusters, o->clusters - 1, files, o->waiters, o->rounds, r->map_bytes);
    printf("| start, ms from fork+exec | ms |\n|---|---:|\n");
    printf("| /readyz 200 | %.2f |\n", r->readyz_ms);
    printf("| whole /derpmap (%lu regions) read | %.2f |\n", o->clusters, r->map_ms);
    printf("| log `map generation 1' (whole ms) | %.0f |\n\n", r->log_gen1_ms);
    printf("| controller memory, KiB | VmRSS | VmHWM |\n|---|---:|---:|\n");
    printf("| after the first map | %ld | %ld |\n", r->rss_map, r->hwm_map);
    printf("| %lu waiters parked | %ld | %ld |\n", o->waiters, r->rss_parked, r->hwm_parked);
    printf("| end of run | %ld | %ld |\n\n", r->rss_end, r->hwm_end);
    printf("| over %lu connections, ms | median | max | each round |\n|---|---:|---:|---|\n",
           o->waiters);
    size_t rs = sizeof(struct bc_round), cs = sizeof(struct bc_change);
    print_row("baseline: GET /healthz round, send to last answer", &r->health[0].last_done_ms, rs,
              n);
    print_row("baseline: GET /derpmap round, send to first whole map", &r->full[0].first_done_ms,
              rs, n);
    print_row("baseline: GET /derpmap round, send to last whole map", &r->full[0].last_done_ms, rs,
              n);
    print_row("change: rename to first byte of any answer", &r->change[0].r.first_byte_ms, cs, n);
    print_row("change: rename to first whole answer", &r->change[0].r.first_done_ms, cs, n);
    print_row("change: rename to last whole answer", &r->change[0].r.last_done_ms, cs, n);
    print_row("change: rename to log `map generation K' (whole ms)", &r->change[0].log_ms, cs, n);
    print_row("change: log `map generation K' to last whole answer", &r->change[0].log_to_last_ms,
              cs, n);
    print_row("change: first byte of any answer to last whole answer", &r->change[0].fanout_ms, cs,
              n);
    print_row("change: rename to last whole answer, minus the debounce",
              &r->change[0].undebounced_ms, cs, n);
    double cpu[BC_MAX_ROUNDS];
    for (size_t i = 0; i < n; i++) {
        cpu[i] = (double)r->change[i].cpu_ms;
    }
    print_row("change: controller CPU time (10 ms ticks)", cpu, sizeof(double), n);
    printf("\n(the debounce, %d ms by design, is inside every `rename to' figure)\n",
           BC_DEBOUNCE_MS);
}

/* --- Flags and main ----------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-controller [flags]\n"
               "  --controller-bin PATH  derp-controller (default: next to bench-controller)\n"
               "  --controller-log PATH  copy of its stderr (default: none)\n"
               "  --clusters N           Clusters (default 10000)\n"
               "  --files N              files for the N - 1 that stay (default 100)\n"
               "  --waiters N            long-poll connections (default 1000)\n"
               "  --rounds N             repeats; medians over them (default 5)\n"
               "  --wait S               the long-poll's ?wait= seconds (default 60)\n"
               "  --gzip                 waiters ask for gzip (Accept-Encoding: gzip)\n");
}

static int parse_flags(int argc, char **argv, struct bc_opts *o, char *err)
{
    static const struct option longopts[] = {{"controller-bin", required_argument, NULL, 'b'},
                                             {"controller-log", required_argument, NULL, 'l'},
                                             {"clusters", required_argument, NULL, 'n'},
                                             {"files", required_argument, NULL, 'f'},
                                             {"waiters", required_argument, NULL, 'w'},
                                             {"rounds", required_argument, NULL, 'r'},
                                             {"wait", required_argument, NULL, 's'},
                                             {"gzip", no_argument, NULL, 'g'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (struct bc_opts){
        .clusters = 10000, .files = 100, .waiters = 1000, .rounds = 5, .wait_s = 60};
    const char *slash = strrchr(argv[0], '/');
    int n = snprintf(o->bin, sizeof(o->bin), "%.*s/derp-controller",
                     slash != NULL ? (int)(slash - argv[0]) : 1, slash != NULL ? argv[0] : ".");
    int rc = n < (int)sizeof(o->bin) ? 0 : dc_err_set(err, -ENAMETOOLONG, "argv[0] too long");
    int ch;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'b') {
            n = snprintf(o->bin, sizeof(o->bin), "%s", optarg);
            rc = n < (int)sizeof(o->bin) ? 0
                                         : dc_err_set(err, -EINVAL, "--controller-bin: too long");
        } else if (ch == 'l') {
            o->log_path = optarg;
        } else if (ch == 'n') {
            rc = bench_parse_uint("--clusters", optarg, 1, 1000000, &o->clusters, err);
        } else if (ch == 'f') {
            rc = bench_parse_uint("--files", optarg, 1, 10000, &o->files, err);
        } else if (ch == 'w') {
            rc = bench_parse_uint("--waiters", optarg, 1, 1000000, &o->waiters, err);
        } else if (ch == 'r') {
            rc = bench_parse_uint("--rounds", optarg, 1, BC_MAX_ROUNDS, &o->rounds, err);
        } else if (ch == 's') {
            rc = bench_parse_uint("--wait", optarg, 1, 300, &o->wait_s, err);
        } else if (ch == 'g') {
            o->gzip = true;
        } else {
            usage(ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 1 : -EINVAL;
        }
    }
    if (rc == 0 && access(o->bin, X_OK) < 0) {
        rc = dc_err_set(err, -ENOENT, "--controller-bin: not an executable: `%s'", o->bin);
    }
    return rc;
}

/* The bench and the controller each need one fd per waiter. */
static int fit_fd_limit(const struct bc_opts *o, char *err)
{
    long lim = bench_raise_nofile();
    if (lim > 0 && o->waiters + BC_FD_RESERVE > (unsigned long)lim) {
        return dc_err_set(err, -EMFILE, "--waiters %lu: RLIMIT_NOFILE hard limit is %ld",
                          o->waiters, lim);
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[DC_ERR_LEN] = "";
    struct bc_opts o;
    int rc = parse_flags(argc, argv, &o, err);
    if (rc != 0) {
        if (err[0] != '\0') {
            fprintf(stderr, "bench-controller: %s\n", err);
        }
        return rc > 0 ? 0 : 2;
    }
    struct sigaction sa = {.sa_handler = SIG_IGN}; /* a dead peer is an error code, not death */
    sigaction(SIGPIPE, &sa, NULL);
    struct bc_bench b = {.o = &o, .pid = -1, .ep = -1, .log = {.fd = -1}};
    struct bc_results *res = calloc(1, sizeof(*res));
    b.wall_minus_mono_ns = wall_minus_mono_ns();
    b.map_cap = o.clusters * BC_MAP_BYTES_PER_REGION + 65536;
    b.map = malloc(b.map_cap);
    b.scratch = malloc(BC_READ_LEN);
    b.conns = calloc(o.waiters, sizeof(*b.conns));
    rc = res != NULL && b.map != NULL && b.scratch != NULL && b.conns != NULL
             ? fit_fd_limit(&o, err)
             : dc_err_set(err, -ENOMEM, "out of memory");
    for (unsigned long i = 0; rc == 0 && i < o.waiters; i++) {
        b.conns[i].fd = -1;
    }
    if (rc == 0 && o.log_path != NULL) {
        b.log.copy = fopen(o.log_path, "w");
        rc = b.log.copy != NULL ? 0 : dc_err_set(err, -errno, "--controller-log: `%s'", o.log_path);
    }
    if (rc == 0) {
        rc = run(&b, res, err);
    }
    conns_close(&b);
    controller_stop(&b);
    if (b.log.fd >= 0) {
        close(b.log.fd);
    }
    if (b.log.copy != NULL) {
        fclose(b.log.copy);
    }
    remove_tree(b.dir);
    if (rc == 0) {
        print_results(&o, res);
    }
    free(b.conns);
    free(b.scratch);
    free(b.map);
    free(res);
    if (rc < 0) {
        fprintf(stderr, "bench-controller: %s\n", err[0] != '\0' ? err : dc_strerror(rc));
        return 1;
    }
    return 0;
}
