/* bench-relay: packets through derp-relay next to the same bytes over direct
 * loopback TCP, in the same run; then ping-pong latency the same two ways.
 *
 * Throughput case = (mode, packet size, pairs). The parent forks a receiver
 * process that drains every receiving connection and a sender process that
 * drives every sending one; the parent only coordinates over pipes and
 * samples the relay's CPU time. In relay mode each side logs in with
 * derp_client_connect() and then does raw fd I/O: the sender writes
 * pre-built SendPacket frames with writev(), the receiver reads and counts
 * RecvPacket frames. In direct mode the sender writes the very same
 * SendPacket bytes over one plain loopback TCP connection per pair to the
 * receiver, which counts them with the same frame counter. Both children
 * start at a common CLOCK_MONOTONIC time from the parent, warm up, then
 * count for a fixed window; every loop ends at that window's end.
 *
 * The relay drops the oldest packet when a client's queue is full instead of
 * pushing back on the sender (derper does the same), while direct TCP pushes
 * back; so "sent" and "delivered" differ for the relay and the figure that
 * counts is delivered at the receiver. Unpaced, the sender writes as fast as
 * the sockets take bytes (overload); with --rate it offers a fixed load, to
 * show what the relay delivers below saturation. Each case runs --repeat
 * times, relay and direct in turn, and the median is printed, because a
 * shared 2-core machine is noisy. */
#include "bench_util.h"

#include "bytes.h"
#include "derp_client.h"
#include "derp_key.h"
#include "derp_proto.h"
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Bytes of frames pre-built per sending connection: one writev() moves up to
 * this much, so small packets go out in batches as a busy client's would. */
#define TX_BATCH_BYTES (64u << 10)
/* A paced sender that is ahead of schedule naps for about TX_PACE_BURST
 * packets per pair, within [TX_PACE_NAP_MIN_NS, TX_PACE_NAP_MAX_NS]: short
 * bursts, like a steady stream's, without spinning on a core the relay needs. */
#define TX_PACE_BURST      4
#define TX_PACE_NAP_MIN_NS 5000u
#define TX_PACE_NAP_MAX_NS 50000u
/* One read() per ready receiving connection drains up to this much. */
#define RX_READ_BYTES (256u << 10)
/* Limits of the flags: fds in each child and in the relay grow with pairs. */
#define MAX_PAIRS 1000
#define MAX_LIST  8
/* Most runs per case (--repeat). */
#define MAX_REPEAT 9
/* A child must report ready or a result within this (ms). */
#define CHILD_TIMEOUT_MS 60000
/* Gap between "go" and the common start, so both children are waiting (ns). */
#define START_DELAY_NS 100000000u
/* Ping-pong: round trips done before recording, and the longest wait for an
 * answer before the run is declared broken (ms). */
#define LAT_WARMUP_RTTS 200
#define LAT_WAIT_MS     2000
#define LAT_PACKET_LEN  1200
/* Largest frame any benchmark writes: header + key + largest packet. */
#define FRAME_MAX (DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_MAX_PACKET_LEN)

enum bench_mode {
    MODE_RELAY,  /* through derp-relay */
    MODE_DIRECT, /* plain loopback TCP between the same processes */
};

struct bench_opts {
    const char *url;          /* --url: an already running relay; NULL = start one */
    char relay_bin[PATH_MAX]; /* --relay-bin */
    const char *relay_log;    /* --relay-log; NULL = /dev/null */
    unsigned long seconds;    /* --seconds: measured window per case */
    unsigned long warmup_ms;  /* --warmup-ms: before the window */
    unsigned long rtts;       /* --rtts: measured round trips */
    unsigned long rate_pps;   /* --rate: offered packets/s per case; 0 = unpaced */
    unsigned long repeat;     /* --repeat: runs per case; the median is shown */
    unsigned long sizes[MAX_LIST];
    size_t nsizes;
    unsigned long pairs[MAX_LIST];
    size_t npairs;
};

/* One case, filled by the parent and inherited by the children through fork. */
struct bench_case {
    enum bench_mode mode;
    const char *url;              /* relay URL (relay mode) */
    size_t size;                  /* packet bytes after the 32-byte key */
    unsigned pairs;               /* sender/receiver connection pairs */
    uint16_t port;                /* direct mode: the receiver's listening port */
    struct derp_keypair *rx_keys; /* owned by the parent; pairs entries */
    struct derp_keypair *tx_keys; /* owned by the parent; pairs entries */
    unsigned long rtts;           /* ping-pong only */
    unsigned long rate_pps;       /* offered packets/s over all pairs; 0 = unpaced */
};

/* Parent -> children: the common schedule, CLOCK_MONOTONIC ns. */
struct go_msg {
    uint64_t t_start_ns;   /* start sending */
    uint64_t t_measure_ns; /* warm-up over: start counting */
    uint64_t t_end_ns;     /* stop counting and stop */
};

/* Child -> parent: "ready" after setup, then the result. */
struct child_msg {
    int32_t rc;     /* 0 or negative errno */
    uint16_t port;  /* ready: a listening port (direct receiver) */
    uint64_t count; /* frames counted in the window */
    uint64_t v[4];  /* ping-pong: p50, p99, min, mean round trip (ns) */
    char err[DC_ERR_LEN];
};

/* A forked child and its two pipe ends in the parent. */
struct child {
    pid_t pid;
    int up;   /* parent reads the child's messages */
    int down; /* parent writes go; closing it tells the child to stop */
};

typedef int (*child_fn)(struct bench_case *bc, int up, int down, struct child_msg *msg);

/* The logged-in or connected sockets of one side; all fds non-blocking. */
struct side {
    struct derp_client **clients; /* owned; relay mode, NULL entries in direct mode */
    int *fds;                     /* fd of each pair (owned in direct mode) */
    unsigned n;
    int lfd; /* direct receiver: owned listening socket, -1 otherwise */
};

/* Frame counter state of one receiving socket. */
struct rx_stream {
    uint8_t hdr[DERP_FRAME_HDR_LEN]; /* header bytes gathered so far */
    uint8_t hdr_len;                 /* < DERP_FRAME_HDR_LEN: still in a header */
    uint8_t type;                    /* type of the frame being skipped */
    uint32_t remain;                 /* payload bytes of it still to come */
};

/* A sending socket's ring of pre-built frames. */
struct tx_stream {
    uint8_t *ring; /* owned: whole frames back to back */
    size_t len;    /* bytes in ring */
    size_t off;    /* next byte to write */
    uint64_t sent; /* bytes written since the start (pacing) */
    size_t allow;  /* bytes it may write this round */
};

/* ---- frames ---- */

static bool is_packet_frame(uint8_t type)
{
    /* Direct mode carries the sender's SendPacket bytes unchanged. */
    return type == DERP_FRAME_RECV_PACKET || type == DERP_FRAME_SEND_PACKET;
}

static void rx_header_done(struct rx_stream *s)
{
    s->type = s->hdr[0];
    s->remain = dc_get_be32(s->hdr + 1);
}

/* Counts the packet frames these bytes complete. Headers may straddle reads,
 * so they are gathered in s; payloads are skipped, never copied. */
static uint64_t rx_feed(struct rx_stream *s, const uint8_t *p, size_t n)
{
    uint64_t frames = 0;
    size_t off = 0;
    while (off < n) {
        if (s->hdr_len == 0 && n - off >= DERP_FRAME_HDR_LEN) {
            memcpy(s->hdr, p + off, DERP_FRAME_HDR_LEN);
            s->hdr_len = DERP_FRAME_HDR_LEN;
            off += DERP_FRAME_HDR_LEN;
            rx_header_done(s);
        } else if (s->hdr_len < DERP_FRAME_HDR_LEN) {
            s->hdr[s->hdr_len++] = p[off++];
            if (s->hdr_len < DERP_FRAME_HDR_LEN) {
                continue;
            }
            rx_header_done(s);
        }
        size_t take = s->remain < n - off ? s->remain : n - off;
        off += take;
        s->remain -= (uint32_t)take;
        if (s->remain == 0) {
            frames += is_packet_frame(s->type) ? 1 : 0;
            s->hdr_len = 0;
        }
    }
    return frames;
}

/* Writes one SendPacket frame to dst with a size-byte packet into out
 * (FRAME_MAX bytes); returns its length. */
static size_t frame_build(uint8_t *out, const uint8_t dst[static DERP_KEY_LEN], size_t size)
{
    out[0] = DERP_FRAME_SEND_PACKET;
    dc_put_be32(out + 1, (uint32_t)(DERP_KEY_LEN + size));
    memcpy(out + DERP_FRAME_HDR_LEN, dst, DERP_KEY_LEN);
    memset(out + DERP_FRAME_HDR_LEN + DERP_KEY_LEN, 0x5a, size);
    return DERP_FRAME_HDR_LEN + DERP_KEY_LEN + size;
}

/* ---- sides: log in to the relay, or connect / accept plain TCP ---- */

static void side_free(struct side *sd)
{
    for (unsigned i = 0; i < sd->n; i++) {
        if (sd->clients != NULL && sd->clients[i] != NULL) {
            derp_client_free(sd->clients[i]);
        } else if (sd->fds != NULL && sd->fds[i] >= 0) {
            close(sd->fds[i]);
        }
    }
    if (sd->lfd >= 0) {
        close(sd->lfd);
    }
    free(sd->clients);
    free(sd->fds);
    *sd = (struct side){.lfd = -1};
}

static int side_alloc(struct side *sd, unsigned n)
{
    *sd = (struct side){.lfd = -1};
    sd->clients = calloc(n, sizeof(*sd->clients));
    sd->fds = malloc(n * sizeof(*sd->fds));
    if (sd->clients == NULL || sd->fds == NULL) {
        return -ENOMEM;
    }
    sd->n = n;
    for (unsigned i = 0; i < n; i++) {
        sd->fds[i] = -1;
    }
    return 0;
}

/* Logs in one client per key; after the handshake the fd is used raw. The
 * peer only starts sending after every login, so nothing past ServerInfo
 * can be sitting in the client's own buffer. */
static int side_login(struct side *sd, const char *url, const struct derp_keypair *keys, char *err)
{
    for (unsigned i = 0; i < sd->n; i++) {
        struct derp_client_opts o = {.url = url, .key = &keys[i]};
        int rc = derp_client_connect(&o, &sd->clients[i], err);
        if (rc < 0) {
            return rc;
        }
        sd->fds[i] = derp_client_fd(sd->clients[i]);
        rc = dc_net_set_nonblock(sd->fds[i], 1);
        if (rc < 0) {
            return dc_err_set(err, rc, "fcntl: %s", dc_strerror(rc));
        }
    }
    return 0;
}

static int side_connect(struct side *sd, uint16_t port, char *err)
{
    for (unsigned i = 0; i < sd->n; i++) {
        sd->fds[i] = dc_net_connect_tcp("127.0.0.1", port, 5000, err);
        if (sd->fds[i] < 0) {
            return sd->fds[i];
        }
        /* The relay sets TCP_NODELAY on its sockets; so does the baseline. */
        if (dc_net_set_nodelay(sd->fds[i]) < 0 || dc_net_set_nonblock(sd->fds[i], 1) < 0) {
            return dc_err_set(err, -EIO, "setsockopt: %s", strerror(errno));
        }
    }
    return 0;
}

/* Accepts sd->n connections on sd->lfd by deadline_ns. */
static int side_accept(struct side *sd, uint64_t deadline_ns, char *err)
{
    unsigned got = 0;
    while (got < sd->n) {
        struct sockaddr_storage peer;
        socklen_t plen;
        int fd = dc_net_accept(sd->lfd, &peer, &plen);
        if (fd == -EAGAIN) {
            uint64_t now = bench_now_ns();
            if (now >= deadline_ns) {
                return dc_err_set(err, -ETIMEDOUT, "accept: %u of %u connections", got, sd->n);
            }
            struct pollfd pfd = {.fd = sd->lfd, .events = POLLIN};
            (void)poll(&pfd, 1, (int)((deadline_ns - now) / 1000000u) + 1);
            continue;
        }
        if (fd < 0) {
            return dc_err_set(err, fd, "accept: %s", dc_strerror(fd));
        }
        if (dc_net_set_nodelay(fd) < 0) {
            close(fd);
            return dc_err_set(err, -EIO, "setsockopt: %s", strerror(errno));
        }
        sd->fds[got++] = fd;
    }
    return 0;
}

/* Sets up the receiving side before "ready": relay logins, or a listener
 * whose connections are accepted once the sender has connected. */
static int rx_setup(const struct bench_case *bc, struct side *sd, uint16_t *port, char *err)
{
    int rc = side_alloc(sd, bc->pairs);
    if (rc < 0) {
        return dc_err_set(err, rc, "out of memory");
    }
    if (bc->mode == MODE_RELAY) {
        return side_login(sd, bc->url, bc->rx_keys, err);
    }
    sd->lfd = dc_net_listen_tcp("127.0.0.1:0", MAX_PAIRS, err);
    if (sd->lfd < 0) {
        return sd->lfd;
    }
    *port = dc_net_local_port(sd->lfd);
    return 0;
}

static int tx_setup(const struct bench_case *bc, struct side *sd, char *err)
{
    int rc = side_alloc(sd, bc->pairs);
    if (rc < 0) {
        return dc_err_set(err, rc, "out of memory");
    }
    if (bc->mode == MODE_RELAY) {
        return side_login(sd, bc->url, bc->tx_keys, err);
    }
    return side_connect(sd, bc->port, err);
}

/* ---- the two children of a throughput case ---- */

static int pfds_make(const struct side *sd, short events, struct pollfd **out)
{
    *out = calloc(sd->n, sizeof(**out));
    if (*out == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < sd->n; i++) {
        (*out)[i] = (struct pollfd){.fd = sd->fds[i], .events = events};
    }
    return 0;
}

/* Poll timeout up to t_ns, at least 1 ms so we never spin on 0. */
static int ms_until(uint64_t t_ns)
{
    uint64_t now = bench_now_ns();
    return now >= t_ns ? 0 : (int)((t_ns - now) / 1000000u) + 1;
}

/* Reads one ready socket and returns its completed packet frames, or a
 * negative errno (-ECONNRESET when the sender side closed early). */
static long rx_drain(int fd, struct rx_stream *st, uint8_t *buf)
{
    ssize_t n = read(fd, buf, RX_READ_BYTES);
    if (n > 0) {
        return (long)rx_feed(st, buf, (size_t)n);
    }
    if (n == 0) {
        return -ECONNRESET;
    }
    return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

/* Drains every receiving socket until t_end; counts frames after t_measure. */
static int rx_loop(const struct side *sd, const struct go_msg *go, uint64_t *count, char *err)
{
    struct pollfd *pfds = NULL;
    struct rx_stream *st = calloc(sd->n, sizeof(*st));
    uint8_t *buf = malloc(RX_READ_BYTES);
    int rc = pfds_make(sd, POLLIN, &pfds);
    if (st == NULL || buf == NULL || rc < 0) {
        rc = dc_err_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        (void)poll(pfds, sd->n, ms_until(go->t_end_ns));
        uint64_t now = bench_now_ns();
        if (now >= go->t_end_ns) {
            break;
        }
        for (unsigned i = 0; i < sd->n; i++) {
            long got = pfds[i].revents != 0 ? rx_drain(pfds[i].fd, &st[i], buf) : 0;
            if (got < 0 && bench_now_ns() >= go->t_end_ns) {
                goto out; /* the sender stopped on time while we were reading */
            }
            if (got < 0) {
                rc = dc_err_set(err, (int)got, "io: receiver %u: %s", i, dc_strerror((int)got));
                goto out;
            }
            *count += now >= go->t_measure_ns ? (uint64_t)got : 0;
        }
    }
out:
    free(buf);
    free(st);
    free(pfds);
    return rc;
}

/* Sends ready, waits for go; returns 0 or negative errno. */
static int child_sync(int up, int down, struct child_msg *msg, struct go_msg *go)
{
    int rc = bench_write_all(up, msg, sizeof(*msg));
    if (rc == 0) {
        rc = bench_read_full(down, go, sizeof(*go), CHILD_TIMEOUT_MS);
    }
    return rc;
}

static int rx_child(struct bench_case *bc, int up, int down, struct child_msg *msg)
{
    struct side sd = {.lfd = -1};
    struct go_msg go;
    int rc = rx_setup(bc, &sd, &msg->port, msg->err);
    if (rc == 0) {
        rc = child_sync(up, down, msg, &go);
        if (rc == 0 && bc->mode == MODE_DIRECT) {
            rc = side_accept(&sd, go.t_start_ns + 5000000000u, msg->err);
        }
        if (rc == 0) {
            rc = rx_loop(&sd, &go, &msg->count, msg->err);
        }
    }
    side_free(&sd);
    return rc;
}

static int tx_rings_make(const struct bench_case *bc, struct tx_stream *tx)
{
    uint8_t *frame = malloc(FRAME_MAX);
    if (frame == NULL) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < bc->pairs; i++) {
        size_t flen = frame_build(frame, bc->rx_keys[i].pub, bc->size);
        size_t k = TX_BATCH_BYTES / flen > 0 ? TX_BATCH_BYTES / flen : 1;
        tx[i].ring = malloc(k * flen);
        if (tx[i].ring == NULL) {
            free(frame);
            return -ENOMEM;
        }
        for (size_t j = 0; j < k; j++) {
            memcpy(tx[i].ring + j * flen, frame, flen);
        }
        tx[i].len = k * flen;
    }
    free(frame);
    return 0;
}

/* Writes up to max bytes of the ring (as much as the socket takes), wrapping
 * around so frames stay whole across calls. Returns bytes written or
 * negative errno. */
static ssize_t tx_push(int fd, struct tx_stream *t, size_t max)
{
    size_t first = t->len - t->off < max ? t->len - t->off : max;
    size_t second = t->off < max - first ? t->off : max - first;
    struct iovec iov[2] = {{.iov_base = t->ring + t->off, .iov_len = first},
                           {.iov_base = t->ring, .iov_len = second}};
    ssize_t n = writev(fd, iov, second > 0 ? 2 : 1);
    if (n < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    }
    t->off = (t->off + (size_t)n) % t->len;
    t->sent += (uint64_t)n;
    return n;
}

/* Whatever the relay sends a sender (nothing, normally) is read and dropped,
 * so its queue toward us never fills. */
static void tx_discard(int fd, uint8_t *buf)
{
    while (read(fd, buf, 4096) > 0) {
    }
}

/* Sets each pair's allowance and poll events for this round: unpaced, all it
 * can write; paced, what the offered rate allows since t_start minus what it
 * already wrote. Returns whether any pair may write. */
static bool tx_plan(const struct bench_case *bc, struct tx_stream *tx, struct pollfd *pfds,
                    uint64_t t_start)
{
    double flen = (double)(DERP_FRAME_HDR_LEN + DERP_KEY_LEN + bc->size);
    double due = (double)bc->rate_pps / bc->pairs * flen * (double)(bench_now_ns() - t_start) / 1e9;
    bool any = false;
    for (unsigned i = 0; i < bc->pairs; i++) {
        if (bc->rate_pps == 0) {
            tx[i].allow = SIZE_MAX;
        } else {
            tx[i].allow = due > (double)tx[i].sent ? (size_t)(due - (double)tx[i].sent) : 0;
        }
        pfds[i].events = (short)(POLLIN | (tx[i].allow > 0 ? POLLOUT : 0));
        any = any || tx[i].allow > 0;
    }
    return any;
}

/* How long a paced sender naps when ahead of schedule (see TX_PACE_BURST). */
static uint64_t tx_nap_ns(const struct bench_case *bc)
{
    if (bc->rate_pps == 0) {
        return 0;
    }
    /* The default 50 us timer slack would stretch every nap. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    double ns = 1e9 * TX_PACE_BURST * (double)bc->pairs / (double)bc->rate_pps;
    if (ns < TX_PACE_NAP_MIN_NS) {
        return TX_PACE_NAP_MIN_NS;
    }
    return ns > TX_PACE_NAP_MAX_NS ? TX_PACE_NAP_MAX_NS : (uint64_t)ns;
}

/* Sends from t_start to t_end; counts bytes written after t_measure. */
static int tx_loop(const struct bench_case *bc, const struct side *sd, struct tx_stream *tx,
                   const struct go_msg *go, uint64_t *bytes, char *err)
{
    struct pollfd *pfds = NULL;
    uint8_t scratch[4096];
    if (pfds_make(sd, POLLIN | POLLOUT, &pfds) < 0) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    int rc = 0;
    uint64_t nap_ns = tx_nap_ns(bc);
    bench_sleep_until_ns(go->t_start_ns);
    while (rc == 0) {
        bool any = tx_plan(bc, tx, pfds, go->t_start_ns);
        (void)poll(pfds, sd->n, any ? ms_until(go->t_end_ns) : 0);
        uint64_t now = bench_now_ns();
        if (now >= go->t_end_ns) {
            break;
        }
        for (unsigned i = 0; i < sd->n && rc == 0; i++) {
            if (pfds[i].revents & POLLIN) {
                tx_discard(pfds[i].fd, scratch);
            }
            ssize_t n = pfds[i].revents & (POLLOUT | POLLERR)
                            ? tx_push(pfds[i].fd, &tx[i], tx[i].allow)
                            : 0;
            if (n < 0 && bench_now_ns() < go->t_end_ns) {
                rc = dc_err_set(err, (int)n, "io: sender %u: %s", i, dc_strerror((int)n));
            }
            *bytes += n > 0 && now >= go->t_measure_ns ? (uint64_t)n : 0;
        }
        if (!any) {
            bench_sleep_until_ns(now + nap_ns);
        }
    }
    free(pfds);
    return rc;
}

static int tx_child(struct bench_case *bc, int up, int down, struct child_msg *msg)
{
    struct side sd = {.lfd = -1};
    struct tx_stream *tx = calloc(bc->pairs, sizeof(*tx));
    struct go_msg go;
    uint64_t bytes = 0;
    int rc = tx != NULL ? tx_rings_make(bc, tx) : -ENOMEM;
    if (rc < 0) {
        dc_err_set(msg->err, rc, "out of memory");
    } else {
        rc = tx_setup(bc, &sd, msg->err);
    }
    if (rc == 0) {
        rc = child_sync(up, down, msg, &go);
    }
    if (rc == 0) {
        rc = tx_loop(bc, &sd, tx, &go, &bytes, msg->err);
    }
    msg->count = bytes / (DERP_FRAME_HDR_LEN + DERP_KEY_LEN + bc->size);
    side_free(&sd);
    for (unsigned i = 0; tx != NULL && i < bc->pairs; i++) {
        free(tx[i].ring);
    }
    free(tx);
    return rc;
}

/* ---- ping-pong ---- */

/* Writes one whole frame to a non-blocking socket, waiting for room. */
static int frame_write(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        if (n < 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, LAT_WAIT_MS) == 0) {
                return -ETIMEDOUT;
            }
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Waits for at least one whole packet frame; returns how many arrived, or
 * negative errno (-ETIMEDOUT after LAT_WAIT_MS, -ECANCELED when stop_fd,
 * the parent's pipe, becomes readable or closes). */
static long frame_wait(int fd, struct rx_stream *st, uint8_t *buf, int stop_fd)
{
    long got = 0;
    while (got == 0) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
        int n = poll(pfd, stop_fd >= 0 ? 2 : 1, LAT_WAIT_MS);
        if (n == 0) {
            return -ETIMEDOUT;
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
        if (stop_fd >= 0 && pfd[1].revents != 0) {
            return -ECANCELED;
        }
        got = pfd[0].revents != 0 ? rx_drain(fd, st, buf) : 0;
        if (got < 0) {
            return got;
        }
    }
    return got;
}

/* Sets up one end of the ping-pong: key 0 answers (rx_keys), key 0 of
 * tx_keys pings. The answering end listens in direct mode. */
static int pp_setup(struct bench_case *bc, bool is_pinger, struct side *sd, uint16_t *port,
                    char *err)
{
    if (is_pinger) {
        return tx_setup(bc, sd, err);
    }
    return rx_setup(bc, sd, port, err);
}

/* The answering end: echoes one packet per packet until the parent says stop. */
static int pong_child(struct bench_case *bc, int up, int down, struct child_msg *msg)
{
    struct side sd = {.lfd = -1};
    uint8_t *buf = malloc(RX_READ_BYTES);
    uint8_t frame[FRAME_MAX];
    struct rx_stream st = {0};
    int rc = buf != NULL ? pp_setup(bc, false, &sd, &msg->port, msg->err) : -ENOMEM;
    if (rc == 0) {
        rc = bench_write_all(up, msg, sizeof(*msg));
    }
    if (rc == 0 && bc->mode == MODE_DIRECT) {
        rc = side_accept(&sd, bench_now_ns() + 5000000000u, msg->err);
    }
    size_t flen = frame_build(frame, bc->tx_keys[0].pub, bc->size);
    while (rc == 0) {
        long got = frame_wait(sd.fds[0], &st, buf, down);
        for (long i = 0; i < got && rc == 0; i++) {
            rc = frame_write(sd.fds[0], frame, flen);
        }
        rc = got < 0 ? (int)got : rc;
    }
    side_free(&sd);
    free(buf);
    return rc == -ECANCELED ? 0 : rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts the samples and stores p50, p99, min and mean in msg->v. */
static void pp_summarize(uint64_t *ns, size_t n, struct child_msg *msg)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += ns[i];
    }
    msg->v[0] = ns[n * 50 / 100];
    msg->v[1] = ns[n * 99 / 100 < n ? n * 99 / 100 : n - 1];
    msg->v[2] = ns[0];
    msg->v[3] = sum / n;
    msg->count = n;
}

/* Round trips: warm-up first, then bc->rtts recorded. */
static int pp_run(const struct side *sd, size_t flen, const uint8_t *frame, uint64_t *ns,
                  unsigned long rtts)
{
    uint8_t *buf = malloc(RX_READ_BYTES);
    struct rx_stream st = {0};
    int rc = buf != NULL ? 0 : -ENOMEM;
    for (unsigned long i = 0; rc == 0 && i < LAT_WARMUP_RTTS + rtts; i++) {
        uint64_t t0 = bench_now_ns();
        rc = frame_write(sd->fds[0], frame, flen);
        long got = rc == 0 ? frame_wait(sd->fds[0], &st, buf, -1) : rc;
        rc = got < 0 ? (int)got : 0;
        if (i >= LAT_WARMUP_RTTS) {
            ns[i - LAT_WARMUP_RTTS] = bench_now_ns() - t0;
        }
    }
    free(buf);
    return rc;
}

static int ping_child(struct bench_case *bc, int up, int down, struct child_msg *msg)
{
    (void)up;
    (void)down;
    struct side sd = {.lfd = -1};
    uint8_t frame[FRAME_MAX];
    uint64_t *ns = calloc(bc->rtts, sizeof(*ns));
    int rc = ns != NULL ? pp_setup(bc, true, &sd, NULL, msg->err) : -ENOMEM;
    if (rc == 0) {
        size_t flen = frame_build(frame, bc->rx_keys[0].pub, bc->size);
        rc = pp_run(&sd, flen, frame, ns, bc->rtts);
        if (rc < 0) {
            dc_err_set(msg->err, rc, "io: ping-pong: %s", dc_strerror(rc));
        }
    }
    if (rc == 0) {
        pp_summarize(ns, bc->rtts, msg);
    }
    side_free(&sd);
    free(ns);
    return rc;
}

/* ---- the parent: fork, coordinate, collect ---- */

static void child_close(struct child *c)
{
    if (c->up >= 0) {
        close(c->up);
    }
    if (c->down >= 0) {
        close(c->down);
    }
    if (c->pid > 0) {
        (void)bench_reap(c->pid, CHILD_TIMEOUT_MS);
    }
    *c = (struct child){.pid = -1, .up = -1, .down = -1};
}

/* Forks a child that runs fn and sends its final message up, then exits. */
static int child_start(child_fn fn, struct bench_case *bc, struct child *c)
{
    int up[2], down[2];
    *c = (struct child){.pid = -1, .up = -1, .down = -1};
    if (pipe2(up, O_CLOEXEC) < 0) {
        return -errno;
    }
    if (pipe2(down, O_CLOEXEC) < 0) {
        int e = -errno;
        close(up[0]);
        close(up[1]);
        return e;
    }
    fflush(stdout);
    c->pid = fork();
    if (c->pid == 0) {
        close(up[0]);
        close(down[1]);
        struct child_msg msg = {0};
        msg.rc = fn(bc, up[1], down[0], &msg);
        if (msg.rc < 0 && msg.err[0] == '\0') {
            dc_err_set(msg.err, msg.rc, "%s", dc_strerror(msg.rc));
        }
        _exit(bench_write_all(up[1], &msg, sizeof(msg)) == 0 ? 0 : 1);
    }
    close(up[1]);
    close(down[0]);
    c->up = up[0];
    c->down = down[1];
    return c->pid < 0 ? -ECHILD : 0;
}

/* Reads the child's next message; a failure inside the child comes back as
 * its rc and err. */
static int child_recv(struct child *c, struct child_msg *msg, int timeout_ms, char *err)
{
    int rc = bench_read_full(c->up, msg, sizeof(*msg), timeout_ms);
    if (rc < 0) {
        return dc_err_set(err, rc, "child %d: no answer: %s", (int)c->pid, dc_strerror(rc));
    }
    if (msg->rc < 0) {
        return dc_err_set(err, msg->rc, "child %d: %s", (int)c->pid, msg->err);
    }
    return 0;
}

struct tput_result {
    uint64_t rx_frames; /* delivered in the window */
    uint64_t tx_frames; /* written by the sender in the window */
    long relay_cpu_ms;  /* relay CPU time in the window; -1 unknown */
    uint64_t rx_min;    /* over the repeats: lowest and highest rx_frames */
    uint64_t rx_max;
};

/* Samples the relay's CPU time over the window while the children run. */
static long relay_cpu_window(pid_t relay_pid, const struct go_msg *go)
{
    if (relay_pid <= 0) {
        bench_sleep_until_ns(go->t_end_ns);
        return -1;
    }
    bench_sleep_until_ns(go->t_measure_ns);
    long a = bench_proc_cpu_ms(relay_pid);
    bench_sleep_until_ns(go->t_end_ns);
    long b = bench_proc_cpu_ms(relay_pid);
    return a >= 0 && b >= 0 ? b - a : -1;
}

static int tput_go(const struct bench_opts *o, struct child *rx, struct child *tx, pid_t relay_pid,
                   struct tput_result *res, char *err)
{
    struct go_msg go;
    go.t_start_ns = bench_now_ns() + START_DELAY_NS;
    go.t_measure_ns = go.t_start_ns + o->warmup_ms * 1000000u;
    go.t_end_ns = go.t_measure_ns + o->seconds * 1000000000u;
    if (bench_write_all(rx->down, &go, sizeof(go)) < 0 ||
        bench_write_all(tx->down, &go, sizeof(go)) < 0) {
        return dc_err_set(err, -EPIPE, "a child died before the start");
    }
    res->relay_cpu_ms = relay_cpu_window(relay_pid, &go);
    struct child_msg m = {0};
    int rc = child_recv(rx, &m, CHILD_TIMEOUT_MS, err);
    res->rx_frames = m.count;
    if (rc == 0) {
        rc = child_recv(tx, &m, CHILD_TIMEOUT_MS, err);
        res->tx_frames = m.count;
    }
    return rc;
}

static int tput_run(const struct bench_opts *o, struct bench_case *bc, pid_t relay_pid,
                    struct tput_result *res, char *err)
{
    struct child rx, tx = {.pid = -1, .up = -1, .down = -1};
    struct child_msg m;
    int rc = child_start(rx_child, bc, &rx);
    if (rc == 0) {
        rc = child_recv(&rx, &m, CHILD_TIMEOUT_MS, err);
        bc->port = m.port;
    }
    if (rc == 0) {
        rc = child_start(tx_child, bc, &tx);
    }
    if (rc == 0) {
        rc = child_recv(&tx, &m, CHILD_TIMEOUT_MS, err);
    }
    if (rc == 0) {
        rc = tput_go(o, &rx, &tx, relay_pid, res, err);
    }
    child_close(&tx);
    child_close(&rx);
    return rc;
}

static int pp_measure(struct bench_case *bc, struct child_msg *res, char *err)
{
    struct child pong, ping = {.pid = -1, .up = -1, .down = -1};
    struct child_msg m;
    int rc = child_start(pong_child, bc, &pong);
    if (rc == 0) {
        rc = child_recv(&pong, &m, CHILD_TIMEOUT_MS, err);
        bc->port = m.port;
    }
    if (rc == 0) {
        rc = child_start(ping_child, bc, &ping);
    }
    if (rc == 0) {
        int wait_ms =
            (int)((LAT_WARMUP_RTTS + bc->rtts) / 1000 + 1) * LAT_WAIT_MS + CHILD_TIMEOUT_MS;
        rc = child_recv(&ping, res, wait_ms, err);
    }
    child_close(&ping);
    child_close(&pong); /* closing its pipe tells it to stop */
    return rc;
}

/* ---- output ---- */

static double per_s(uint64_t n, unsigned long seconds)
{
    return (double)n / (double)seconds;
}

/* (highest - lowest) / median of the repeats, in percent. */
static double spread_pct(const struct tput_result *t)
{
    return t->rx_frames > 0 ? 100.0 * (double)(t->rx_max - t->rx_min) / (double)t->rx_frames : 0.0;
}

static void print_tput_head(void)
{
    printf("| packet B | pairs | relay pkt/s | relay MB/s | relay sent pkt/s | relay drop %% "
           "| relay CPU %% | relay CPU us/pkt | direct pkt/s | direct MB/s | relay/direct "
           "| spread relay / direct %% |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
}

static void print_tput_row(const struct bench_opts *o, size_t size, unsigned pairs,
                           const struct tput_result *r, const struct tput_result *d)
{
    double rp = per_s(r->rx_frames, o->seconds), dp = per_s(d->rx_frames, o->seconds);
    char cpu[32] = "n/a", cpu_pct[32] = "n/a";
    if (r->relay_cpu_ms >= 0 && r->rx_frames > 0) {
        snprintf(cpu, sizeof(cpu), "%.2f", (double)r->relay_cpu_ms * 1000.0 / (double)r->rx_frames);
        snprintf(cpu_pct, sizeof(cpu_pct), "%.0f",
                 (double)r->relay_cpu_ms / 10.0 / (double)o->seconds);
    }
    double drop = r->tx_frames > r->rx_frames
                      ? 100.0 * (double)(r->tx_frames - r->rx_frames) / (double)r->tx_frames
                      : 0.0;
    printf(
        "| %zu | %u | %.0f | %.1f | %.0f | %.1f | %s | %s | %.0f | %.1f | %.3f | %.0f / %.0f |\n",
        size, pairs, rp, rp * (double)size / 1e6, per_s(r->tx_frames, o->seconds), drop, cpu_pct,
        cpu, dp, dp * (double)size / 1e6, dp > 0 ? rp / dp : 0.0, spread_pct(r), spread_pct(d));
    fflush(stdout);
}

static void print_lat_row(const char *path, const struct child_msg *m)
{
    printf("| %s | %llu | %.1f | %.1f | %.1f | %.1f |\n", path, (unsigned long long)m->count,
           (double)m->v[0] / 1e3, (double)m->v[1] / 1e3, (double)m->v[2] / 1e3,
           (double)m->v[3] / 1e3);
    fflush(stdout);
}

/* ---- main ---- */

/* Fresh keys for every relay case, so no login can collide with a
 * connection of the previous case that the relay is still closing. */
static void keys_fill(struct bench_case *bc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        derp_keypair_generate(&bc->rx_keys[i]);
        derp_keypair_generate(&bc->tx_keys[i]);
    }
}

static void keys_free(struct bench_case *bc, size_t n)
{
    for (size_t i = 0; i < n && bc->rx_keys != NULL && bc->tx_keys != NULL; i++) {
        derp_keypair_wipe(&bc->rx_keys[i]);
        derp_keypair_wipe(&bc->tx_keys[i]);
    }
    free(bc->rx_keys);
    free(bc->tx_keys);
}

static int cmp_tput(const void *a, const void *b)
{
    uint64_t x = ((const struct tput_result *)a)->rx_frames;
    uint64_t y = ((const struct tput_result *)b)->rx_frames;
    return x < y ? -1 : x > y;
}

/* The median run (by frames delivered), with the lowest and highest. */
static struct tput_result tput_median(struct tput_result *runs, size_t n)
{
    qsort(runs, n, sizeof(*runs), cmp_tput);
    struct tput_result m = runs[n / 2];
    m.rx_min = runs[0].rx_frames;
    m.rx_max = runs[n - 1].rx_frames;
    return m;
}

/* Runs one (size, pairs) case o->repeat times, relay and direct taking turns
 * so a drift in the machine's speed hits both, and keeps each one's median. */
static int run_case(const struct bench_opts *o, struct bench_case *bc, pid_t relay_pid,
                    struct tput_result *r, struct tput_result *d, char *err)
{
    struct tput_result rs[MAX_REPEAT] = {{0}}, ds[MAX_REPEAT] = {{0}};
    for (unsigned long i = 0; i < o->repeat; i++) {
        bc->mode = MODE_RELAY;
        keys_fill(bc, bc->pairs);
        int rc = tput_run(o, bc, relay_pid, &rs[i], err);
        bc->mode = MODE_DIRECT;
        if (rc == 0) {
            rc = tput_run(o, bc, -1, &ds[i], err);
        }
        if (rc < 0) {
            return rc;
        }
    }
    *r = tput_median(rs, o->repeat);
    *d = tput_median(ds, o->repeat);
    return 0;
}

static int run_throughput(const struct bench_opts *o, struct bench_case *bc, pid_t relay_pid,
                          char *err)
{
    print_tput_head();
    for (size_t s = 0; s < o->nsizes; s++) {
        for (size_t p = 0; p < o->npairs; p++) {
            struct tput_result r, d;
            bc->size = o->sizes[s];
            bc->pairs = (unsigned)o->pairs[p];
            bc->rate_pps = o->rate_pps;
            int rc = run_case(o, bc, relay_pid, &r, &d, err);
            if (rc < 0) {
                return rc;
            }
            print_tput_row(o, bc->size, bc->pairs, &r, &d);
        }
    }
    return 0;
}

static int run_latency(const struct bench_opts *o, struct bench_case *bc, char *err)
{
    struct child_msg r, d;
    bc->size = LAT_PACKET_LEN;
    bc->pairs = 1;
    bc->rtts = o->rtts;
    bc->rate_pps = 0;
    bc->mode = MODE_RELAY;
    keys_fill(bc, 1);
    int rc = pp_measure(bc, &r, err);
    bc->mode = MODE_DIRECT;
    if (rc == 0) {
        rc = pp_measure(bc, &d, err);
    }
    if (rc < 0) {
        return rc;
    }
    printf("\n| path (%d B ping-pong) | round trips | p50 us | p99 us | min us | mean us |\n",
           LAT_PACKET_LEN);
    printf("|---|---:|---:|---:|---:|---:|\n");
    print_lat_row("relay (2 relay hops)", &r);
    print_lat_row("direct TCP", &d);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-relay [flags]\n"
               "  --relay-bin PATH   derp-relay to start (default: next to bench-relay)\n"
               "  --url URL          use a running relay instead (http://127.0.0.1:PORT/derp)\n"
               "  --relay-log PATH   relay's stderr (default /dev/null)\n"
               "  --seconds N        measured window per case (default 3)\n"
               "  --warmup-ms N      warm-up before each window (default 500)\n"
               "  --rtts N           measured ping-pong round trips (default 10000)\n"
               "  --sizes A,B,..     packet sizes in bytes (default 100,1200,65000)\n"
               "  --pairs A,B,..     pair counts (default 1,100)\n"
               "  --repeat N         runs per case, relay and direct in turn; median shown\n"
               "                     (default 3)\n"
               "  --rate PPS         offer PPS packets/s per case over all pairs (default 0:\n"
               "                     as fast as the sockets take them)\n");
}

static int parse_list(const char *flag, const char *s, unsigned long min, unsigned long max,
                      unsigned long *out, size_t *n, char *err)
{
    *n = 0;
    for (const char *p = s;; p++) {
        char tok[32];
        size_t len = strcspn(p, ",");
        if (*n == MAX_LIST || len >= sizeof(tok)) {
            return dc_err_set(err, -EINVAL, "%s: at most %d short values: `%s'", flag, MAX_LIST, s);
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        int rc = bench_parse_uint(flag, tok, min, max, &out[(*n)++], err);
        if (rc < 0) {
            return rc;
        }
        p += len;
        if (*p == '\0') {
            return 0;
        }
    }
}

static int parse_opt(struct bench_opts *o, int ch, const char *arg, char *err)
{
    switch (ch) {
    case 'b':
        return snprintf(o->relay_bin, sizeof(o->relay_bin), "%s", arg) < (int)sizeof(o->relay_bin)
                   ? 0
                   : dc_err_set(err, -EINVAL, "--relay-bin: path too long");
    case 'u':
        o->url = arg;
        return 0;
    case 'l':
        o->relay_log = arg;
        return 0;
    case 's':
        return bench_parse_uint("--seconds", arg, 1, 3600, &o->seconds, err);
    case 'w':
        return bench_parse_uint("--warmup-ms", arg, 0, 60000, &o->warmup_ms, err);
    case 'r':
        return bench_parse_uint("--rtts", arg, 1, 10000000, &o->rtts, err);
    case 'z':
        return parse_list("--sizes", arg, 1, DERP_MAX_PACKET_LEN, o->sizes, &o->nsizes, err);
    case 'n':
        return bench_parse_uint("--repeat", arg, 1, MAX_REPEAT, &o->repeat, err);
    case 'R':
        return bench_parse_uint("--rate", arg, 0, 100000000, &o->rate_pps, err);
    case 'p':
        return parse_list("--pairs", arg, 1, MAX_PAIRS, o->pairs, &o->npairs, err);
    default:
        return -EINVAL;
    }
}

static int parse_flags(int argc, char **argv, struct bench_opts *o, char *err)
{
    static const struct option longopts[] = {{"relay-bin", required_argument, NULL, 'b'},
                                             {"url", required_argument, NULL, 'u'},
                                             {"relay-log", required_argument, NULL, 'l'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"warmup-ms", required_argument, NULL, 'w'},
                                             {"rtts", required_argument, NULL, 'r'},
                                             {"sizes", required_argument, NULL, 'z'},
                                             {"pairs", required_argument, NULL, 'p'},
                                             {"rate", required_argument, NULL, 'R'},
                                             {"repeat", required_argument, NULL, 'n'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    *o = (struct bench_opts){.seconds = 3,
                             .warmup_ms = 500,
                             .rtts = 10000,
                             .repeat = 3,
                             .nsizes = 3,
                             .sizes = {100, 1200, 65000},
                             .npairs = 2,
                             .pairs = {1, 100}};
    int rc = bench_default_relay_bin(argv[0], o->relay_bin, sizeof(o->relay_bin));
    int ch;
    while (rc == 0 && (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return 1;
        }
        rc = parse_opt(o, ch, optarg, err);
        if (rc < 0 && err[0] == '\0') {
            usage(stderr);
        }
    }
    if (rc == 0 && optind < argc) {
        rc = dc_err_set(err, -EINVAL, "unexpected argument: `%s'", argv[optind]);
    }
    return rc;
}

static void print_header(const struct bench_opts *o, const struct bench_relay *relay,
                         const char *url)
{
    printf("bench-relay: relay %s", url);
    if (relay->pid > 0) {
        printf(" (started %s, pid %d)", o->relay_bin, (int)relay->pid);
    }
    printf("\nwindow %lu s per run after %lu ms warm-up, median of %lu runs per case; sender "
           "and receiver are separate processes; MB/s = packet bytes delivered (10^6 B/s)\n",
           o->seconds, o->warmup_ms, o->repeat);
    if (o->rate_pps > 0) {
        printf("sender paced: %lu packets/s offered per case (over all pairs)\n\n", o->rate_pps);
    } else {
        printf("sender unpaced: it writes as fast as the sockets take bytes\n\n");
    }
}

int main(int argc, char **argv)
{
    char err[DC_ERR_LEN] = "";
    struct bench_opts o;
    struct bench_relay relay = {.pid = -1};
    struct bench_case bc = {0};
    int rc = parse_flags(argc, argv, &o, err);
    if (rc != 0) {
        if (err[0] != '\0') {
            fprintf(stderr, "bench-relay: %s\n", err);
        }
        return rc > 0 ? 0 : 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bench-relay: sodium_init failed\n");
        return 1;
    }
    /* A closed peer must show up as EPIPE in the loops, not kill us. */
    struct sigaction sa = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &sa, NULL);
    unsigned long max_pairs = 0;
    for (size_t i = 0; i < o.npairs; i++) {
        max_pairs = o.pairs[i] > max_pairs ? o.pairs[i] : max_pairs;
    }
    (void)bench_raise_nofile(); /* the relay inherits it: 2 fds per pair there */
    bc.rx_keys = calloc(max_pairs, sizeof(*bc.rx_keys));
    bc.tx_keys = calloc(max_pairs, sizeof(*bc.tx_keys));
    rc = bc.rx_keys != NULL && bc.tx_keys != NULL ? 0 : dc_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0 && o.url == NULL) {
        rc = bench_relay_start(o.relay_bin, o.relay_log, &relay, err);
    }
    bc.url = o.url != NULL ? o.url : relay.url;
    if (rc == 0) {
        print_header(&o, &relay, bc.url);
        rc = run_throughput(&o, &bc, relay.pid, err);
    }
    if (rc == 0) {
        rc = run_latency(&o, &bc, err);
    }
    bench_relay_stop(&relay);
    keys_free(&bc, max_pairs);
    if (rc < 0) {
        fprintf(stderr, "bench-relay: %s\n", err[0] != '\0' ? err : dc_strerror(rc));
        return 1;
    }
    return 0;
}
