/* bench-idle: memory per idle logged-in DERP connection, next to a baseline.
 *
 * Phase 1 starts derp-relay, opens N plain-TCP DERP connections to it, each
 * fully logged in (HTTP upgrade, ServerKey, ClientInfo, ServerInfo, real
 * libsodium boxes), and reads the relay's VmRSS and RssAnon from
 * /proc/PID/status before and after. Each client keeps only its socket: the
 * fd is dup()ed and the derp_client (and its 512 KiB of buffers) freed, so
 * this process stays small and the connection stays up.
 *
 * With --derper-bin, phase 1 is repeated against Tailscale's derper, started
 * by the bench on a loopback port, with the same N and the same readings
 * (derper is a Go program: its VmRSS includes heap the garbage collector has
 * not returned yet, which is part of what it costs).
 *
 * Phase 2 is the baseline in the same run: a minimal forked holder process
 * that accepts the same number of plain TCP connections and registers each in
 * an epoll set (what any event-loop server must do at least), measured the
 * same way. The difference is the relay's own per-connection state.
 *
 * Kernel memory is reported separately: the change of "Slab:" in
 * /proc/meminfo, which covers both ends of every connection (two sockets,
 * files, epoll items) and is system-wide, so anything else running on the
 * machine adds noise. */
#include "bench_util.h"

#include "derp_client.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

/* File descriptors kept free for everything but the connections. */
#define FD_RESERVE 64
/* The holder's listen backlog: connects are sequential, so this is plenty. */
#define HOLDER_BACKLOG 4096
/* A child must answer within this (ms). */
#define CHILD_TIMEOUT_MS 120000

struct idle_opts {
    char relay_bin[PATH_MAX]; /* --relay-bin */
    const char *relay_log;    /* --relay-log; NULL = /dev/null */
    const char *derper_bin;   /* --derper-bin; NULL = derper not measured */
    unsigned long conns;      /* --conns: N */
    unsigned long settle_ms;  /* --settle-ms: wait before each reading */
    unsigned long rounds;     /* --rounds: open/close cycles against one relay */
};

/* Memory readings at one moment, KiB. */
struct idle_sample {
    long rss_kib;  /* VmRSS of the measured process */
    long anon_kib; /* RssAnon of the measured process (heap, no file pages) */
    long slab_kib; /* system-wide Slab from /proc/meminfo */
};

struct idle_result {
    struct idle_sample before, after;
    double setup_s; /* time to open (and log in) all connections */
};

static void sample(pid_t pid, unsigned long settle_ms, struct idle_sample *s)
{
    usleep((useconds_t)settle_ms * 1000u);
    s->rss_kib = bench_proc_kib(pid, "VmRSS");
    s->anon_kib = bench_proc_kib(pid, "RssAnon");
    s->slab_kib = bench_proc_kib(-1, "Slab");
}

static void close_all(int *fds, unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/* Logs in one client and keeps only its socket (a dup of the client's fd). */
static int derp_open_one(const char *url, int *fd, char *err)
{
    struct derp_client *c = NULL;
    struct derp_client_opts o = {.url = url};
    int rc = derp_client_connect(&o, &c, err);
    if (rc < 0) {
        return rc;
    }
    *fd = fcntl(derp_client_fd(c), F_DUPFD_CLOEXEC, 0);
    rc = *fd < 0 ? dc_err_set(err, -errno, "dup: %s", strerror(errno)) : 0;
    derp_client_free(c); /* closes its fd; our dup keeps the connection */
    return rc;
}

static int derp_open_all(const char *url, int *fds, unsigned long n, char *err)
{
    for (unsigned long i = 0; i < n; i++) {
        int rc = derp_open_one(url, &fds[i], err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int plain_open_all(uint16_t port, int *fds, unsigned long n, char *err)
{
    for (unsigned long i = 0; i < n; i++) {
        fds[i] = dc_net_connect_tcp("127.0.0.1", port, 5000, err);
        if (fds[i] < 0) {
            return fds[i];
        }
    }
    return 0;
}

/* Later rounds: the same open/close again, printing the relay's VmRSS after
 * each, so memory that grows round after round (a leak) shows. */
static int relay_rounds(const struct idle_opts *o, const struct bench_relay *relay, int *fds,
                        char *err)
{
    for (unsigned long r = 2; r <= o->rounds; r++) {
        struct idle_sample open_s, closed_s;
        int rc = derp_open_all(relay->url, fds, o->conns, err);
        if (rc == 0) {
            sample(relay->pid, o->settle_ms, &open_s);
        }
        close_all(fds, o->conns);
        if (rc < 0) {
            return rc;
        }
        sample(relay->pid, o->settle_ms, &closed_s);
        printf("leak check, round %lu: relay VmRSS %ld KiB with %lu clients, %ld KiB after closing "
               "them\n",
               r, open_s.rss_kib, o->conns, closed_s.rss_kib);
    }
    return 0;
}

/* Phase 1: N logged-in DERP connections to a server we start (derp-relay,
 * or derper); the leak-check rounds run for derp-relay only. */
static int measure_relay(const struct idle_opts *o, enum bench_server_kind kind, int *fds,
                         struct idle_result *res, struct idle_sample *closed, char *err)
{
    struct bench_relay relay = {.pid = -1};
    struct bench_server_opts so = {.kind = kind,
                                   .bin =
                                       kind == BENCH_SERVER_DERPER ? o->derper_bin : o->relay_bin,
                                   .log_path = kind == BENCH_SERVER_DERPER ? NULL : o->relay_log};
    int rc = bench_server_start(&so, &relay, err);
    if (rc < 0) {
        return rc;
    }
    sample(relay.pid, o->settle_ms, &res->before);
    uint64_t t0 = bench_now_ns();
    rc = derp_open_all(relay.url, fds, o->conns, err);
    res->setup_s = (double)(bench_now_ns() - t0) / 1e9;
    if (rc == 0) {
        sample(relay.pid, o->settle_ms, &res->after);
    }
    close_all(fds, o->conns);
    if (rc == 0) {
        sample(relay.pid, o->settle_ms, closed);
    }
    if (rc == 0 && kind == BENCH_SERVER_RELAY) {
        rc = relay_rounds(o, &relay, fds, err);
    }
    bench_relay_stop(&relay);
    return rc;
}

/* Accepts until n connections are held (each in the epoll set), or the
 * parent goes away. Returns how many it holds. */
static unsigned long holder_accept(int lfd, int ep, unsigned long n, int down)
{
    unsigned long held = 0;
    while (held < n) {
        struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = down, .events = POLLIN}};
        if (poll(pfd, 2, CHILD_TIMEOUT_MS) <= 0 || pfd[1].revents != 0) {
            break;
        }
        struct sockaddr_storage peer;
        socklen_t plen;
        int fd;
        while (held < n && (fd = dc_net_accept(lfd, &peer, &plen)) >= 0) {
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
            (void)epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            held++;
        }
    }
    return held;
}

/* The baseline process: holds the connections until its pipe closes.
 * Deliberately minimal: no per-connection allocation of its own. */
static int holder_main(unsigned long n, int up, int down)
{
    int lfd = dc_net_listen_tcp("127.0.0.1:0", HOLDER_BACKLOG, NULL);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || ep < 0) {
        return 1;
    }
    uint16_t port = dc_net_local_port(lfd);
    if (bench_write_all(up, &port, sizeof(port)) < 0) {
        return 1;
    }
    uint64_t held = holder_accept(lfd, ep, n, down);
    if (bench_write_all(up, &held, sizeof(held)) < 0) {
        return 1;
    }
    char c;
    /* Returns at EOF, when the parent is done measuring. */
    return bench_read_full(down, &c, 1, CHILD_TIMEOUT_MS) == -ECONNRESET ? 0 : 1;
}

static pid_t holder_start(unsigned long n, int *up, int *down)
{
    int u[2], d[2];
    if (pipe2(u, O_CLOEXEC) < 0 || pipe2(d, O_CLOEXEC) < 0) {
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(u[0]);
        close(d[1]);
        _exit(holder_main(n, u[1], d[0]));
    }
    close(u[1]);
    close(d[0]);
    *up = u[0];
    *down = d[1];
    return pid;
}

/* Phase 2: the same number of plain TCP connections to the minimal holder. */
static int measure_baseline(const struct idle_opts *o, int *fds, struct idle_result *res, char *err)
{
    int up = -1, down = -1;
    uint16_t port = 0;
    uint64_t held = 0;
    pid_t pid = holder_start(o->conns, &up, &down);
    if (pid < 0) {
        return dc_err_set(err, -ECHILD, "fork/pipe: %s", strerror(errno));
    }
    int rc = bench_read_full(up, &port, sizeof(port), CHILD_TIMEOUT_MS);
    if (rc == 0) {
        sample(pid, o->settle_ms, &res->before);
        uint64_t t0 = bench_now_ns();
        rc = plain_open_all(port, fds, o->conns, err);
        res->setup_s = (double)(bench_now_ns() - t0) / 1e9;
    }
    if (rc == 0) {
        rc = bench_read_full(up, &held, sizeof(held), CHILD_TIMEOUT_MS);
    }
    if (rc == 0 && held != o->conns) {
        rc = dc_err_set(err, -EIO, "holder accepted %llu of %lu", (unsigned long long)held,
                        o->conns);
    }
    if (rc == 0) {
        sample(pid, o->settle_ms, &res->after);
    }
    close(down); /* tells the holder to exit */
    close(up);
    (void)bench_reap(pid, CHILD_TIMEOUT_MS);
    close_all(fds, o->conns);
    if (rc < 0 && err[0] == '\0') {
        dc_err_set(err, rc, "baseline: %s", dc_strerror(rc));
    }
    return rc;
}

/* ---- output ---- */

static double per_conn(long before_kib, long after_kib, unsigned long n)
{
    return (double)(after_kib - before_kib) * 1024.0 / (double)n;
}

static void print_row(const char *what, const struct idle_result *r, unsigned long n)
{
    printf("| %s | %ld | %ld | %.0f | %.0f | %.0f | %.0f |\n", what, r->before.rss_kib,
           r->after.rss_kib, per_conn(r->before.rss_kib, r->after.rss_kib, n),
           per_conn(r->before.anon_kib, r->after.anon_kib, n),
           per_conn(r->before.slab_kib, r->after.slab_kib, n), (double)n / r->setup_s);
}

static void print_results(const struct idle_opts *o, const struct idle_result *relay,
                          const struct idle_sample *closed, const struct idle_result *derper,
                          const struct idle_sample *derper_closed, const struct idle_result *base)
{
    printf("| process holding %lu idle connections | VmRSS before KiB | VmRSS after KiB "
           "| VmRSS B/conn | RssAnon B/conn | kernel Slab B/conn (both ends, system-wide) "
           "| connections opened/s |\n",
           o->conns);
    printf("|---|---:|---:|---:|---:|---:|---:|\n");
    print_row("derp-relay, logged-in DERP clients (plain TCP)", relay, o->conns);
    if (o->derper_bin != NULL) {
        print_row("derper, logged-in DERP clients (plain TCP)", derper, o->conns);
    }
    print_row("baseline: minimal epoll holder, plain TCP", base, o->conns);
    double base_b = per_conn(base->before.rss_kib, base->after.rss_kib, o->conns);
    double relay_b = per_conn(relay->before.rss_kib, relay->after.rss_kib, o->conns) - base_b;
    printf("\nrelay VmRSS after all %lu clients closed: %ld KiB (RssAnon %ld KiB)\n", o->conns,
           closed->rss_kib, closed->anon_kib);
    printf("relay minus baseline: %.0f B per idle connection (VmRSS)\n", relay_b);
    if (o->derper_bin != NULL) {
        double derper_b =
            per_conn(derper->before.rss_kib, derper->after.rss_kib, o->conns) - base_b;
        printf("derper VmRSS after all %lu clients closed: %ld KiB (RssAnon %ld KiB)\n", o->conns,
               derper_closed->rss_kib, derper_closed->anon_kib);
        printf("derper minus baseline: %.0f B per idle connection (VmRSS); derper / relay: "
               "%.1f\n",
               derper_b, relay_b > 0 ? derper_b / relay_b : 0.0);
    }
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-idle [flags]\n"
               "  --relay-bin PATH   derp-relay to start (default: next to bench-idle)\n"
               "  --relay-log PATH   relay's stderr (default /dev/null)\n"
               "  --derper-bin PATH  also measure Tailscale's derper with the same N, started\n"
               "                     from PATH on a loopback port (-a 127.0.0.1:PORT)\n"
               "  --conns N          idle connections (default 10000; capped by RLIMIT_NOFILE)\n"
               "  --settle-ms N      wait before each memory reading (default 1000)\n"
               "  --rounds N         open and close the N connections N times against one\n"
               "                     relay, printing its VmRSS each round (default 1)\n");
}

static int parse_flags(int argc, char **argv, struct idle_opts *o, char *err)
{
    static const struct option longopts[] = {{"relay-bin", required_argument, NULL, 'b'},
                                             {"relay-log", required_argument, NULL, 'l'},
                                             {"derper-bin", required_argument, NULL, 'D'},
                                             {"conns", required_argument, NULL, 'n'},
                                             {"settle-ms", required_argument, NULL, 's'},
                                             {"rounds", required_argument, NULL, 'r'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (struct idle_opts){.conns = 10000, .settle_ms = 1000, .rounds = 1};
    int rc = bench_default_relay_bin(argv[0], o->relay_bin, sizeof(o->relay_bin));
    int ch;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'b') {
            int n = snprintf(o->relay_bin, sizeof(o->relay_bin), "%s", optarg);
            rc = n < (int)sizeof(o->relay_bin) ? 0
                                               : dc_err_set(err, -EINVAL, "--relay-bin: too long");
        } else if (ch == 'l') {
            o->relay_log = optarg;
        } else if (ch == 'D') {
            o->derper_bin = optarg;
            rc = access(optarg, X_OK) == 0
                     ? 0
                     : dc_err_set(err, -ENOENT, "--derper-bin: not an executable: `%s'", optarg);
        } else if (ch == 'n') {
            rc = bench_parse_uint("--conns", optarg, 1, 1000000, &o->conns, err);
        } else if (ch == 'r') {
            rc = bench_parse_uint("--rounds", optarg, 1, 100, &o->rounds, err);
        } else if (ch == 's') {
            rc = bench_parse_uint("--settle-ms", optarg, 0, 60000, &o->settle_ms, err);
        } else {
            usage(ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 1 : -EINVAL;
        }
    }
    return rc;
}

/* Both this process and the one measured need one fd per connection. */
static void fit_fd_limit(struct idle_opts *o)
{
    long lim = bench_raise_nofile();
    if (lim > 0 && o->conns + FD_RESERVE > (unsigned long)lim) {
        unsigned long fit = lim > FD_RESERVE ? (unsigned long)lim - FD_RESERVE : 1;
        printf("note: RLIMIT_NOFILE hard limit is %ld: reducing --conns from %lu to %lu\n", lim,
               o->conns, fit);
        o->conns = fit;
    }
}

int main(int argc, char **argv)
{
    char err[DC_ERR_LEN] = "";
    struct idle_opts o;
    int rc = parse_flags(argc, argv, &o, err);
    if (rc != 0) {
        if (err[0] != '\0') {
            fprintf(stderr, "bench-idle: %s\n", err);
        }
        return rc > 0 ? 0 : 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bench-idle: sodium_init failed\n");
        return 1;
    }
    struct sigaction sa = {.sa_handler = SIG_IGN}; /* a dead peer is an error code, not death */
    sigaction(SIGPIPE, &sa, NULL);
    fit_fd_limit(&o);
    int *fds = malloc(o.conns * sizeof(*fds));
    struct idle_result relay = {0}, derper = {0}, base = {0};
    struct idle_sample closed = {0}, derper_closed = {0};
    rc = fds != NULL ? 0 : dc_err_set(err, -ENOMEM, "out of memory");
    for (unsigned long i = 0; rc == 0 && i < o.conns; i++) {
        fds[i] = -1;
    }
    if (rc == 0) {
        rc = measure_relay(&o, BENCH_SERVER_RELAY, fds, &relay, &closed, err);
    }
    if (rc == 0 && o.derper_bin != NULL) {
        rc = measure_relay(&o, BENCH_SERVER_DERPER, fds, &derper, &derper_closed, err);
    }
    if (rc == 0) {
        rc = measure_baseline(&o, fds, &base, err);
    }
    if (rc == 0) {
        print_results(&o, &relay, &closed, &derper, &derper_closed, &base);
    }
    free(fds);
    if (rc < 0) {
        fprintf(stderr, "bench-idle: %s\n", err[0] != '\0' ? err : dc_strerror(rc));
        return 1;
    }
    return 0;
}
