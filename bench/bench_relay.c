/* bench-relay: packets through derp-relay next to the same bytes over direct
 * loopback TCP, in the same run; then ping-pong latency the same ways. With
 * --derper-bin the same cases also go through Tailscale's derper, started by
 * the bench; with --mesh also from a client of one derp-relay to a client of
 * a second derp-relay meshed with it; with --limits also through a second
 * derp-relay that runs with issue 8's limits on (admission by an allowed-keys
 * file that lists the bench's keys, a per-client byte rate and accept-rate,
 * total and per-address caps all set far above what the bench reaches), so
 * their cost shows next to the same relay with limits off.
 *
 * Throughput case = (mode, packet size, pairs). The parent forks a receiver
 * process that drains every receiving connection and a sender process that
 * drives every sending one; the parent only coordinates over pipes and
 * samples the relay's CPU time. In the relay modes each side logs in with
 * derp_client_connect() and then does raw fd I/O: the sender writes
 * pre-built SendPacket frames with writev(), the receiver reads and counts
 * RecvPacket frames. In direct mode the sender writes the very same
 * SendPacket bytes over one plain loopback TCP connection per pair to the
 * receiver, which counts them with the same frame counter. Both children
 * start at a common CLOCK_MONOTONIC time from the parent, warm up, then
 * count for a fixed window; every loop ends at that window's end.
 *
 * In mesh mode the senders log in to relay 1 and the receivers to relay 2,
 * and the senders wait MESH_SETTLE_MS after logging in, so that relay 2's
 * PeerPresent for every receiver has reached relay 1; the CPU time is that
 * of both relays.
 *
 * The relay drops the oldest packet when a client's queue is full instead of
 * pushing back on the sender (derper does the same), while direct TCP pushes
 * back; so "sent" and "delivered" differ for the relay and the figure that
 * counts is delivered at the receiver. Unpaced, the sender writes as fast as
 * the sockets take bytes (overload); with --rate it offers a fixed load, to
 * show what the relay delivers below saturation. Each case runs --repeat
 * times, every mode in turn (relay, derper, mesh, direct), and the median is
 * printed, because a shared 2-core machine is noisy. */
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
/* Mesh: how long senders (and the pinger) wait after logging in to relay 1
 * before sending, so relay 2's PeerPresent announcements for the receivers
 * have reached relay 1 (they take well under 1 ms on loopback). */
#define MESH_SETTLE_MS 1000
/* Mesh: how long both relays get to log in to each other (ms). */
#define MESH_UP_MS 10000
/* Mesh: the relays' /metrics line that says the mesh link is up. */
#define MESH_UP_METRIC "\nderp_mesh_peers_up 1\n"
/* Mesh: the key file's name in its temporary directory. */
#define MESH_KEY_NAME "mesh.key"
/* Limits: the allowed-keys file's name in its temporary directory, and how
 * long the relay gets to re-read it after each case's keys are written. */
#define LIMITS_KEYS_NAME "allowed.keys"
#define LIMITS_RELOAD_MS 10000
/* Limits: what the limited relay runs with; every limit is on but far above
 * what the bench reaches, so only the cost of checking shows. */
#define LIMITS_RATE_BPS "100000000000" /* --per-client-rate: 100 GB/s per client */
#define LIMITS_BURST    "1000000000"   /* --per-client-burst */
#define LIMITS_ACCEPT   "100000"       /* --accept-connection-limit/-burst */
#define LIMITS_CONNS    "100000"       /* --max-connections, --max-connections-per-ip */

/* The ways packets go, in the order each repeat runs them. */
enum bench_mode {
    MODE_RELAY,  /* through derp-relay */
    MODE_LIMITS, /* through a derp-relay with limits on (--limits) */
    MODE_DERPER, /* through Tailscale's derper (--derper-bin) */
    MODE_MESH,   /* client of derp-relay 1 -> derp-relay 2 -> its client (--mesh) */
    MODE_DIRECT, /* plain loopback TCP between the same processes */
    MODE_COUNT,
};

struct bench_opts {
    const char *url;          /* --url: an already running relay; NULL = start one */
    char relay_bin[PATH_MAX]; /* --relay-bin */
    const char *relay_log;    /* --relay-log; NULL = /dev/null */
    const char *derper_bin;   /* --derper-bin; NULL = derper not measured */
    const char *derper_log;   /* --derper-log; NULL = /dev/null */
    bool is_mesh;             /* --mesh: also measure across two meshed relays */
    bool is_limits;           /* --limits: also measure a relay with limits on */
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
    const char *rx_url;           /* relay modes: where the receivers (ponger) log in */
    const char *tx_url;           /* relay modes: where the senders (pinger) log in */
    unsigned settle_ms;           /* relay modes: senders wait this long after login */
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
    if (bc->mode != MODE_DIRECT) {
        return side_login(sd, bc->rx_url, bc->rx_keys, err);
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
    if (bc->mode != MODE_DIRECT) {
        rc = side_login(sd, bc->tx_url, bc->tx_keys, err);
        if (rc == 0 && bc->settle_ms > 0) {
            usleep(bc->settle_ms * 1000u);
        }
        return rc;
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
    long relay_cpu_ms;  /* server CPU time in the window (sum over servers); -1 unknown */
    uint64_t rx_min;    /* over the repeats: lowest and highest rx_frames */
    uint64_t rx_max;
};

/* One way of carrying packets, as the parent sets a case up for it. */
struct bench_path {
    bool is_on;            /* measured in this run */
    const char *rx_url;    /* borrowed; relay modes: the receivers' server */
    const char *tx_url;    /* borrowed; relay modes: the senders' server */
    unsigned settle_ms;    /* senders' wait after login (mesh) */
    pid_t pids[2];         /* servers whose CPU time counts; -1 = none or unknown */
    const char *keys_path; /* borrowed; limits: the allowed-keys file to fill first */
    uint16_t port;         /* limits: the relay's port, for /metrics */
};

/* The servers this run started (pid -1 = not started). */
struct bench_servers {
    struct bench_relay relay;       /* ours, unless --url */
    struct bench_relay derper;      /* --derper-bin */
    struct bench_relay mesh[2];     /* --mesh: relay 1 (senders), relay 2 (receivers) */
    char mesh_dir[BENCH_TMP_LEN];   /* --mesh: holds MESH_KEY_NAME; "" = none */
    struct bench_relay limits;      /* --limits: the relay with limits on */
    char limits_dir[BENCH_TMP_LEN]; /* --limits: holds LIMITS_KEYS_NAME; "" = none */
    char limits_keys[BENCH_TMP_LEN + sizeof(LIMITS_KEYS_NAME) + 1]; /* its path */
};

static void path_apply(struct bench_case *bc, enum bench_mode mode, const struct bench_path *p)
{
    bc->mode = mode;
    bc->rx_url = p->rx_url;
    bc->tx_url = p->tx_url;
    bc->settle_ms = p->settle_ms;
}

/* CPU time of all of p's servers so far (ms), or -1. */
static long path_cpu_ms(const struct bench_path *p)
{
    long sum = 0;
    for (size_t i = 0; i < 2; i++) {
        long v = p->pids[i] > 0 ? bench_proc_cpu_ms(p->pids[i]) : 0;
        if (v < 0) {
            return -1;
        }
        sum += v;
    }
    return sum;
}

/* Samples the servers' CPU time over the window while the children run. */
static long relay_cpu_window(const struct bench_path *p, const struct go_msg *go)
{
    if (p->pids[0] <= 0) {
        bench_sleep_until_ns(go->t_end_ns);
        return -1;
    }
    bench_sleep_until_ns(go->t_measure_ns);
    long a = path_cpu_ms(p);
    bench_sleep_until_ns(go->t_end_ns);
    long b = path_cpu_ms(p);
    return a >= 0 && b >= 0 ? b - a : -1;
}

static int tput_go(const struct bench_opts *o, struct child *rx, struct child *tx,
                   const struct bench_path *p, struct tput_result *res, char *err)
{
    struct go_msg go;
    go.t_start_ns = bench_now_ns() + START_DELAY_NS;
    go.t_measure_ns = go.t_start_ns + o->warmup_ms * 1000000u;
    go.t_end_ns = go.t_measure_ns + o->seconds * 1000000000u;
    if (bench_write_all(rx->down, &go, sizeof(go)) < 0 ||
        bench_write_all(tx->down, &go, sizeof(go)) < 0) {
        return dc_err_set(err, -EPIPE, "a child died before the start");
    }
    res->relay_cpu_ms = relay_cpu_window(p, &go);
    struct child_msg m = {0};
    int rc = child_recv(rx, &m, CHILD_TIMEOUT_MS, err);
    res->rx_frames = m.count;
    if (rc == 0) {
        rc = child_recv(tx, &m, CHILD_TIMEOUT_MS, err);
        res->tx_frames = m.count;
    }
    return rc;
}

static int tput_run(const struct bench_opts *o, struct bench_case *bc, const struct bench_path *p,
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
        rc = child_recv(&tx, &m, CHILD_TIMEOUT_MS + (int)bc->settle_ms, err);
    }
    if (rc == 0) {
        rc = tput_go(o, &rx, &tx, p, res, err);
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
        int wait_ms = (int)((LAT_WARMUP_RTTS + bc->rtts) / 1000 + 1) * LAT_WAIT_MS +
                      CHILD_TIMEOUT_MS + (int)bc->settle_ms;
        rc = child_recv(&ping, res, wait_ms, err);
    }
    child_close(&ping);
    child_close(&pong); /* closing its pipe tells it to stop */
    return rc;
}

/* ---- output ---- */

/* A throughput result as printed. */
struct tput_row {
    double pps;        /* delivered packets/s */
    double mbps;       /* delivered packet payload, 10^6 B/s */
    double sent_pps;   /* written by the senders, packets/s */
    double drop_pct;   /* 1 - delivered / sent */
    char cpu_pct[32];  /* server CPU over the window, % of one core, or "n/a" */
    char cpu_us[32];   /* server CPU per delivered packet, us, or "n/a" */
    double spread_pct; /* (highest - lowest) / median of the repeats */
};

static double per_s(uint64_t n, unsigned long seconds)
{
    return (double)n / (double)seconds;
}

static void tput_row_make(const struct bench_opts *o, size_t size, const struct tput_result *r,
                          struct tput_row *w)
{
    w->pps = per_s(r->rx_frames, o->seconds);
    w->mbps = w->pps * (double)size / 1e6;
    w->sent_pps = per_s(r->tx_frames, o->seconds);
    w->drop_pct = r->tx_frames > r->rx_frames
                      ? 100.0 * (double)(r->tx_frames - r->rx_frames) / (double)r->tx_frames
                      : 0.0;
    snprintf(w->cpu_pct, sizeof(w->cpu_pct), "n/a");
    snprintf(w->cpu_us, sizeof(w->cpu_us), "n/a");
    if (r->relay_cpu_ms >= 0 && r->rx_frames > 0) {
        snprintf(w->cpu_us, sizeof(w->cpu_us), "%.2f",
                 (double)r->relay_cpu_ms * 1000.0 / (double)r->rx_frames);
        snprintf(w->cpu_pct, sizeof(w->cpu_pct), "%.0f",
                 (double)r->relay_cpu_ms / 10.0 / (double)o->seconds);
    }
    w->spread_pct =
        r->rx_frames > 0 ? 100.0 * (double)(r->rx_max - r->rx_min) / (double)r->rx_frames : 0.0;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0.0;
}

static void print_tput_head(const struct bench_opts *o)
{
    bool has_derper = o->derper_bin != NULL;
    printf("| packet B | pairs | relay pkt/s | relay MB/s | relay sent pkt/s | relay drop %% "
           "| relay CPU %% | relay CPU us/pkt ");
    if (has_derper) {
        printf("| derper pkt/s | derper MB/s | derper drop %% | derper CPU %% "
               "| derper CPU us/pkt | relay/derper ");
    }
    printf("| direct pkt/s | direct MB/s | relay/direct | spread relay%s / direct %% |\n",
           has_derper ? " / derper" : "");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|%s---:|---:|---:|---:|\n",
           has_derper ? "---:|---:|---:|---:|---:|---:|" : "");
}

static void print_tput_row(const struct bench_opts *o, size_t size, unsigned pairs,
                           const struct tput_result res[MODE_COUNT])
{
    struct tput_row r, g, d;
    tput_row_make(o, size, &res[MODE_RELAY], &r);
    tput_row_make(o, size, &res[MODE_DERPER], &g);
    tput_row_make(o, size, &res[MODE_DIRECT], &d);
    printf("| %zu | %u | %.0f | %.1f | %.0f | %.1f | %s | %s ", size, pairs, r.pps, r.mbps,
           r.sent_pps, r.drop_pct, r.cpu_pct, r.cpu_us);
    if (o->derper_bin != NULL) {
        printf("| %.0f | %.1f | %.1f | %s | %s | %.2f ", g.pps, g.mbps, g.drop_pct, g.cpu_pct,
               g.cpu_us, ratio(r.pps, g.pps));
        printf("| %.0f | %.1f | %.3f | %.0f / %.0f / %.0f |\n", d.pps, d.mbps, ratio(r.pps, d.pps),
               r.spread_pct, g.spread_pct, d.spread_pct);
    } else {
        printf("| %.0f | %.1f | %.3f | %.0f / %.0f |\n", d.pps, d.mbps, ratio(r.pps, d.pps),
               r.spread_pct, d.spread_pct);
    }
    fflush(stdout);
}

/* One finished case, kept for the mesh table printed at the end. */
struct case_result {
    size_t size;
    unsigned pairs;
    struct tput_result res[MODE_COUNT];
};

static void print_mesh_line(const struct case_result *c, const char *path, const struct tput_row *w,
                            double vs_one)
{
    printf("| %zu | %u | %s | %.0f | %.1f | %.0f | %.1f | %s | %s | %.3f | %.0f |\n", c->size,
           c->pairs, path, w->pps, w->mbps, w->sent_pps, w->drop_pct, w->cpu_pct, w->cpu_us, vs_one,
           w->spread_pct);
}

static void print_mesh_table(const struct bench_opts *o, const struct case_result *cases, size_t n)
{
    printf("\nmesh: senders on derp-relay 1, receivers on derp-relay 2 (meshed); CPU = both "
           "relays\n\n");
    printf("| packet B | pairs | path | pkt/s | MB/s | sent pkt/s | drop %% | CPU %% | CPU us/pkt "
           "| vs 1 relay | spread %% |\n");
    printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        struct tput_row one, mesh;
        tput_row_make(o, cases[i].size, &cases[i].res[MODE_RELAY], &one);
        tput_row_make(o, cases[i].size, &cases[i].res[MODE_MESH], &mesh);
        print_mesh_line(&cases[i], "1 relay", &one, 1.0);
        print_mesh_line(&cases[i], "mesh: relay 1 -> relay 2", &mesh, ratio(mesh.pps, one.pps));
    }
    fflush(stdout);
}

static void print_limits_table(const struct bench_opts *o, const struct case_result *cases,
                               size_t n)
{
    printf("\nlimits: the same relay binary with limits off and on (allowed-keys admission, "
           "per-client rate " LIMITS_RATE_BPS " B/s, accept limit " LIMITS_ACCEPT "/s, "
           "connection caps " LIMITS_CONNS ")\n\n");
    printf("| packet B | pairs | path | pkt/s | MB/s | sent pkt/s | drop %% | CPU %% | CPU us/pkt "
           "| vs limits off | spread %% |\n");
    printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        struct tput_row off, on;
        tput_row_make(o, cases[i].size, &cases[i].res[MODE_RELAY], &off);
        tput_row_make(o, cases[i].size, &cases[i].res[MODE_LIMITS], &on);
        print_mesh_line(&cases[i], "limits off", &off, 1.0);
        print_mesh_line(&cases[i], "limits on", &on, ratio(on.pps, off.pps));
    }
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

/* The limited relay's count of successful allowed-keys reloads, or -1. */
static long limits_reloads(uint16_t port, char *buf, size_t len)
{
    static const char name[] = "\nderp_allowed_keys_reloads_total{result=\"ok\"} ";
    if (bench_http_get(port, "/metrics", buf, len, 1000) <= 0) {
        return -1;
    }
    const char *m = strstr(buf, name);
    return m != NULL ? strtol(m + sizeof(name) - 1, NULL, 10) : -1;
}

/* Writes the first n keys of both sides as the limited relay's allowed-keys
 * file (renamed into place, as a real update would be) and waits until the
 * relay has re-read it, so this case's logins are admitted. */
static int limits_keys_publish(const struct bench_path *p, const struct bench_case *bc, size_t n,
                               char *err)
{
    char tmp[BENCH_TMP_LEN + sizeof(LIMITS_KEYS_NAME) + 8];
    char buf[1u << 16];
    long before = limits_reloads(p->port, buf, sizeof(buf));
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->keys_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return dc_err_set(err, -errno, "limits: cannot write `%s'", tmp);
    }
    for (size_t i = 0; i < n; i++) {
        char hex[DERP_KEY_HEX_LEN + 1];
        derp_key_hex(bc->rx_keys[i].pub, hex);
        fprintf(f, "nodekey:%s\n", hex);
        derp_key_hex(bc->tx_keys[i].pub, hex);
        fprintf(f, "nodekey:%s\n", hex);
    }
    if (fclose(f) != 0 || rename(tmp, p->keys_path) != 0) {
        return dc_err_set(err, -EIO, "limits: cannot write `%s'", p->keys_path);
    }
    uint64_t deadline = bench_now_ns() + (uint64_t)LIMITS_RELOAD_MS * 1000000u;
    while (bench_now_ns() < deadline) {
        if (limits_reloads(p->port, buf, sizeof(buf)) > before) {
            return 0;
        }
        usleep(20000);
    }
    return dc_err_set(err, -ETIMEDOUT, "limits: the relay did not re-read `%s' in %d ms",
                      p->keys_path, LIMITS_RELOAD_MS);
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

/* Runs one (size, pairs) case o->repeat times, every mode taking its turn
 * within each repeat so a drift in the machine's speed hits them all, and
 * keeps each mode's median. */
static int run_case(const struct bench_opts *o, struct bench_case *bc,
                    const struct bench_path paths[MODE_COUNT], struct tput_result res[MODE_COUNT],
                    char *err)
{
    struct tput_result runs[MODE_COUNT][MAX_REPEAT];
    memset(runs, 0, sizeof(runs));
    for (unsigned long i = 0; i < o->repeat; i++) {
        for (int m = 0; m < MODE_COUNT; m++) {
            if (!paths[m].is_on) {
                continue;
            }
            path_apply(bc, (enum bench_mode)m, &paths[m]);
            keys_fill(bc, bc->pairs);
            int rc =
                paths[m].keys_path != NULL ? limits_keys_publish(&paths[m], bc, bc->pairs, err) : 0;
            if (rc == 0) {
                rc = tput_run(o, bc, &paths[m], &runs[m][i], err);
            }
            if (rc < 0) {
                return rc;
            }
        }
    }
    for (int m = 0; m < MODE_COUNT; m++) {
        res[m] = paths[m].is_on ? tput_median(runs[m], o->repeat) : (struct tput_result){0};
    }
    return 0;
}

static int run_throughput(const struct bench_opts *o, struct bench_case *bc,
                          const struct bench_path paths[MODE_COUNT], char *err)
{
    struct case_result cases[MAX_LIST * MAX_LIST];
    size_t ncases = 0;
    print_tput_head(o);
    for (size_t s = 0; s < o->nsizes; s++) {
        for (size_t p = 0; p < o->npairs; p++) {
            struct case_result *c = &cases[ncases++];
            bc->size = c->size = o->sizes[s];
            bc->pairs = c->pairs = (unsigned)o->pairs[p];
            bc->rate_pps = o->rate_pps;
            int rc = run_case(o, bc, paths, c->res, err);
            if (rc < 0) {
                return rc;
            }
            print_tput_row(o, bc->size, bc->pairs, c->res);
        }
    }
    if (paths[MODE_MESH].is_on) {
        print_mesh_table(o, cases, ncases);
    }
    if (paths[MODE_LIMITS].is_on) {
        print_limits_table(o, cases, ncases);
    }
    return 0;
}

static int run_latency(const struct bench_opts *o, struct bench_case *bc,
                       const struct bench_path paths[MODE_COUNT], char *err)
{
    static const char *const names[MODE_COUNT] = {
        [MODE_RELAY] = "relay (2 relay hops)",
        [MODE_LIMITS] = "relay, limits on (2 relay hops)",
        [MODE_DERPER] = "derper (2 relay hops)",
        [MODE_MESH] = "mesh: relay 1 -> relay 2 -> relay 1 (4 relay hops)",
        [MODE_DIRECT] = "direct TCP",
    };
    struct child_msg res[MODE_COUNT];
    bc->size = LAT_PACKET_LEN;
    bc->pairs = 1;
    bc->rtts = o->rtts;
    bc->rate_pps = 0;
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!paths[m].is_on) {
            continue;
        }
        path_apply(bc, (enum bench_mode)m, &paths[m]);
        keys_fill(bc, 1);
        int rc = paths[m].keys_path != NULL ? limits_keys_publish(&paths[m], bc, 1, err) : 0;
        if (rc == 0) {
            rc = pp_measure(bc, &res[m], err);
        }
        if (rc < 0) {
            return rc;
        }
    }
    printf("\n| path (%d B ping-pong) | round trips | p50 us | p99 us | min us | mean us |\n",
           LAT_PACKET_LEN);
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int m = 0; m < MODE_COUNT; m++) {
        if (paths[m].is_on) {
            print_lat_row(names[m], &res[m]);
        }
    }
    return 0;
}

/* ---- servers ---- */

/* Writes a fresh random mesh key (64 lowercase hex) to dir/MESH_KEY_NAME,
 * mode 0600; its path goes to path. */
static int mesh_key_write(const char *dir, char *path, size_t path_len, char *err)
{
    uint8_t key[DERP_MESH_KEY_LEN];
    char hex[2 * DERP_MESH_KEY_LEN + 1];
    int n = snprintf(path, path_len, "%s/%s", dir, MESH_KEY_NAME);
    if (n < 0 || (size_t)n >= path_len) {
        return dc_err_set(err, -ENAMETOOLONG, "mesh key path too long");
    }
    randombytes_buf(key, sizeof(key));
    sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = fd >= 0 ? bench_write_all(fd, hex, 2 * DERP_MESH_KEY_LEN) : -errno;
    sodium_memzero(hex, sizeof(hex));
    if (fd >= 0) {
        close(fd);
    }
    return rc < 0 ? dc_err_set(err, rc, "mesh key file `%s': %s", path, dc_strerror(rc)) : 0;
}

/* Polls both relays' /metrics until each reports its mesh link up. */
static int mesh_wait_up(const struct bench_servers *sv, char *err)
{
    char *buf = malloc(1u << 16);
    bool is_up[2] = {false, false};
    uint64_t deadline = bench_now_ns() + (uint64_t)MESH_UP_MS * 1000000u;
    if (buf == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    while (!(is_up[0] && is_up[1]) && bench_now_ns() < deadline) {
        for (size_t i = 0; i < 2; i++) {
            if (!is_up[i] &&
                bench_http_get(sv->mesh[i].port, "/metrics", buf, 1u << 16, 1000) > 0) {
                is_up[i] = strstr(buf, MESH_UP_METRIC) != NULL;
            }
        }
        usleep(50000);
    }
    free(buf);
    if (!(is_up[0] && is_up[1])) {
        return dc_err_set(err, -ETIMEDOUT, "mesh: derp_mesh_peers_up not 1 after %d ms (%s, %s)",
                          MESH_UP_MS, is_up[0] ? "relay 1 up" : "relay 1 down",
                          is_up[1] ? "relay 2 up" : "relay 2 down");
    }
    return 0;
}

/* Starts two derp-relays meshed with each other, on ports picked here
 * because each one's --mesh-with must name both. */
static int mesh_start(const struct bench_opts *o, struct bench_servers *sv, char *err)
{
    char key_path[BENCH_TMP_LEN + sizeof(MESH_KEY_NAME) + 1];
    char with[2 * BENCH_URL_LEN + 2];
    uint16_t ports[2] = {0, 0};
    int rc = bench_tmp_dir_make(sv->mesh_dir, err);
    if (rc == 0) {
        rc = mesh_key_write(sv->mesh_dir, key_path, sizeof(key_path), err);
    }
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        rc = bench_free_port(&ports[i], err);
    }
    if (rc == 0 && ports[0] == ports[1]) {
        rc = dc_err_set(err, -EADDRINUSE, "mesh: got port %u twice", ports[0]);
    }
    if (rc < 0) {
        return rc;
    }
    snprintf(with, sizeof(with), "http://127.0.0.1:%u/derp,http://127.0.0.1:%u/derp", ports[0],
             ports[1]);
    const char *extra[] = {"--mesh-key-file", key_path, "--mesh-with", with, NULL};
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        struct bench_server_opts so = {.kind = BENCH_SERVER_RELAY,
                                       .bin = o->relay_bin,
                                       .log_path = o->relay_log,
                                       .port = ports[i],
                                       .extra_args = extra};
        rc = bench_server_start(&so, &sv->mesh[i], err);
    }
    return rc == 0 ? mesh_wait_up(sv, err) : rc;
}

/* Starts the relay with limits on, admitting only the keys written to its
 * allowed-keys file (empty until the first case writes it). */
static int limits_start(const struct bench_opts *o, struct bench_servers *sv, char *err)
{
    int rc = bench_tmp_dir_make(sv->limits_dir, err);
    if (rc < 0) {
        return rc;
    }
    snprintf(sv->limits_keys, sizeof(sv->limits_keys), "%s/%s", sv->limits_dir, LIMITS_KEYS_NAME);
    FILE *f = fopen(sv->limits_keys, "w");
    if (f == NULL || fclose(f) != 0) {
        return dc_err_set(err, -EIO, "limits: cannot create `%s'", sv->limits_keys);
    }
    const char *extra[] = {"--allowed-keys-file",
                           sv->limits_keys,
                           "--per-client-rate",
                           LIMITS_RATE_BPS,
                           "--per-client-burst",
                           LIMITS_BURST,
                           "--accept-connection-limit",
                           LIMITS_ACCEPT,
                           "--accept-connection-burst",
                           LIMITS_ACCEPT,
                           "--max-connections",
                           LIMITS_CONNS,
                           "--max-connections-per-ip",
                           LIMITS_CONNS,
                           NULL};
    struct bench_server_opts so = {.kind = BENCH_SERVER_RELAY,
                                   .bin = o->relay_bin,
                                   .log_path = o->relay_log,
                                   .extra_args = extra};
    return bench_server_start(&so, &sv->limits, err);
}

static int servers_start(const struct bench_opts *o, struct bench_servers *sv,
                         struct bench_path paths[MODE_COUNT], char *err)
{
    int rc = 0;
    if (o->url == NULL) {
        rc = bench_relay_start(o->relay_bin, o->relay_log, &sv->relay, err);
    }
    const char *url = o->url != NULL ? o->url : sv->relay.url;
    paths[MODE_RELAY] = (struct bench_path){
        .is_on = true, .rx_url = url, .tx_url = url, .pids = {sv->relay.pid, -1}};
    paths[MODE_DIRECT] = (struct bench_path){.is_on = true, .pids = {-1, -1}};
    if (rc == 0 && o->derper_bin != NULL) {
        struct bench_server_opts so = {
            .kind = BENCH_SERVER_DERPER, .bin = o->derper_bin, .log_path = o->derper_log};
        rc = bench_server_start(&so, &sv->derper, err);
        paths[MODE_DERPER] = (struct bench_path){.is_on = true,
                                                 .rx_url = sv->derper.url,
                                                 .tx_url = sv->derper.url,
                                                 .pids = {sv->derper.pid, -1}};
    }
    if (rc == 0 && o->is_limits) {
        rc = limits_start(o, sv, err);
        paths[MODE_LIMITS] = (struct bench_path){.is_on = true,
                                                 .rx_url = sv->limits.url,
                                                 .tx_url = sv->limits.url,
                                                 .pids = {sv->limits.pid, -1},
                                                 .keys_path = sv->limits_keys,
                                                 .port = sv->limits.port};
    }
    if (rc == 0 && o->is_mesh) {
        rc = mesh_start(o, sv, err);
        paths[MODE_MESH] = (struct bench_path){.is_on = true,
                                               .rx_url = sv->mesh[1].url,
                                               .tx_url = sv->mesh[0].url,
                                               .settle_ms = MESH_SETTLE_MS,
                                               .pids = {sv->mesh[0].pid, sv->mesh[1].pid}};
    }
    return rc;
}

static void servers_stop(struct bench_servers *sv)
{
    bench_relay_stop(&sv->mesh[1]);
    bench_relay_stop(&sv->mesh[0]);
    bench_tmp_dir_remove(sv->mesh_dir, MESH_KEY_NAME);
    bench_relay_stop(&sv->derper);
    bench_relay_stop(&sv->relay);
    bench_relay_stop(&sv->limits);
    bench_tmp_dir_remove(sv->limits_dir, LIMITS_KEYS_NAME);
}

/* ---- flags ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-relay [flags]\n"
               "  --relay-bin PATH   derp-relay to start (default: next to bench-relay)\n"
               "  --url URL          use a running relay instead (http://127.0.0.1:PORT/derp)\n"
               "  --relay-log PATH   relay's stderr (default /dev/null)\n"
               "  --derper-bin PATH  also measure Tailscale's derper, started from PATH on a\n"
               "                     loopback port (-a 127.0.0.1:PORT, plain HTTP)\n"
               "  --derper-log PATH  derper's stderr (default /dev/null)\n"
               "  --mesh             also measure across two meshed derp-relays started here:\n"
               "                     senders on relay 1, receivers on relay 2\n"
               "  --limits           also measure a derp-relay started with limits on\n"
               "                     (allowed-keys file of the bench's keys, per-client rate,\n"
               "                     accept limit, connection caps; none of them binding)\n"
               "  --seconds N        measured window per case (default 3)\n"
               "  --warmup-ms N      warm-up before each window (default 500)\n"
               "  --rtts N           measured ping-pong round trips (default 10000)\n"
               "  --sizes A,B,..     packet sizes in bytes (default 100,1200,65000)\n"
               "  --pairs A,B,..     pair counts (default 1,100)\n"
               "  --repeat N         runs per case, every path in turn; median shown\n"
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
    case 'D':
        o->derper_bin = arg;
        return access(arg, X_OK) == 0
                   ? 0
                   : dc_err_set(err, -ENOENT, "--derper-bin: not an executable: `%s'", arg);
    case 'L':
        o->derper_log = arg;
        return 0;
    case 'm':
        o->is_mesh = true;
        return 0;
    case 'x':
        o->is_limits = true;
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
                                             {"derper-bin", required_argument, NULL, 'D'},
                                             {"derper-log", required_argument, NULL, 'L'},
                                             {"mesh", no_argument, NULL, 'm'},
                                             {"limits", no_argument, NULL, 'x'},
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

static void print_header(const struct bench_opts *o, const struct bench_servers *sv,
                         const struct bench_path paths[MODE_COUNT])
{
    printf("bench-relay: relay %s", paths[MODE_RELAY].rx_url);
    if (sv->relay.pid > 0) {
        printf(" (started %s, pid %d)", o->relay_bin, (int)sv->relay.pid);
    }
    if (paths[MODE_DERPER].is_on) {
        printf("\nderper %s (started %s, pid %d)", sv->derper.url, o->derper_bin,
               (int)sv->derper.pid);
    }
    if (paths[MODE_LIMITS].is_on) {
        printf("\nlimits on: relay %s (pid %d)", sv->limits.url, (int)sv->limits.pid);
    }
    if (paths[MODE_MESH].is_on) {
        printf("\nmesh: relay 1 %s (pid %d) <-> relay 2 %s (pid %d)", sv->mesh[0].url,
               (int)sv->mesh[0].pid, sv->mesh[1].url, (int)sv->mesh[1].pid);
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
    struct bench_servers sv = {.relay = {.pid = -1},
                               .derper = {.pid = -1},
                               .mesh = {{.pid = -1}, {.pid = -1}},
                               .limits = {.pid = -1}};
    struct bench_path paths[MODE_COUNT] = {{0}};
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
    (void)bench_raise_nofile(); /* the servers inherit it: 2 fds per pair there */
    bc.rx_keys = calloc(max_pairs, sizeof(*bc.rx_keys));
    bc.tx_keys = calloc(max_pairs, sizeof(*bc.tx_keys));
    rc = bc.rx_keys != NULL && bc.tx_keys != NULL ? 0 : dc_err_set(err, -ENOMEM, "out of memory");
    if (rc == 0) {
        rc = servers_start(&o, &sv, paths, err);
    }
    if (rc == 0) {
        print_header(&o, &sv, paths);
        rc = run_throughput(&o, &bc, paths, err);
    }
    if (rc == 0) {
        rc = run_latency(&o, &bc, paths, err);
    }
    servers_stop(&sv);
    keys_free(&bc, max_pairs);
    if (rc < 0) {
        fprintf(stderr, "bench-relay: %s\n", err[0] != '\0' ? err : dc_strerror(rc));
        return 1;
    }
    return 0;
}
