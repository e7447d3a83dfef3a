/* derp_server: connection lifecycle, the frame reader and the batched writer.
 *
 * Hot path: a readable client socket is read into its pooled read buffer as
 * far as the socket holds; every whole frame in it is handled. A SendPacket
 * becomes a RecvPacket of exactly the same size (type byte and key swapped)
 * copied once into a pooled buffer and queued by pointer on the destination.
 * Destinations are flushed once per wake-up, one writev each, in the loop's
 * before-sleep hook. Nothing on that path allocates, locks or logs. */
#include "derp_server.h"

#include "bytes.h"
#include "derp_admit.h"
#include "derp_key.h"
#include "internal.h"
#include "log.h"
#include "net.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Housekeeping period: deadlines are checked this often. */
#define SERVER_TICK_MS 250
/* Control bytes a connection may have pending: HTTP head and control frames
 * for clients; mesh watchers get a PeerPresent per client, so more. */
#define CTL_MAX_CLIENT (64u << 10)
#define CTL_MAX_MESH   (16u << 20)
/* Bytes read from one connection per wake-up before others get a turn. */
#define READ_BUDGET (1u << 20)
/* iovecs per writev. */
#define WRITE_IOV_MAX 64

static void conn_io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events);

/* True while c's socket must not be read: paused on a full mesh link, over
 * its byte rate, or waiting for its admission verdict. */
static bool conn_reads_paused(const struct derp_conn *c)
{
    return c->paused_on != NULL || c->is_throttled || c->state == DERP_CONN_ADMIT;
}

static uint64_t cfg_or(uint32_t v, uint32_t def)
{
    return v != 0 ? v : def;
}

/* ---- queues ---- */

static unsigned queue_cap(const struct derp_queue *q)
{
    return q->cap != 0 ? q->cap : DERP_SEND_QUEUE_DEPTH;
}

static struct derp_pkt **queue_slots(struct derp_queue *q)
{
    return q->big != NULL ? q->big : q->inline_slot;
}

int derp__queue_deepen(struct derp_queue *q, uint16_t cap)
{
    struct derp_pkt **big = calloc(cap, sizeof(*big));
    if (big == NULL) {
        return -ENOMEM;
    }
    q->big = big;
    q->cap = cap;
    q->head = q->count = 0;
    return 0;
}

void derp__queue_push(struct derp_server *s, struct derp_queue *q, struct derp_pkt *p)
{
    unsigned cap = queue_cap(q);
    struct derp_pkt **slot = queue_slots(q);
    if (q->count == cap) {
        derp__pkt_put(&s->pool, slot[q->head]);
        q->head = (uint16_t)((q->head + 1) % cap);
        q->count--;
        s->stats.drop_queue_head++;
    }
    slot[(q->head + q->count) % cap] = p;
    q->count++;
}

struct derp_pkt *derp__queue_peek(const struct derp_queue *q, unsigned i)
{
    const struct derp_pkt *const *slot = q->big != NULL
                                             ? (const struct derp_pkt *const *)q->big
                                             : (const struct derp_pkt *const *)q->inline_slot;
    return (struct derp_pkt *)slot[(q->head + i) % queue_cap(q)];
}

struct derp_pkt *derp__queue_pop(struct derp_queue *q)
{
    struct derp_pkt *p = queue_slots(q)[q->head];
    q->head = (uint16_t)((q->head + 1) % queue_cap(q));
    q->count--;
    return p;
}

static uint64_t queue_drain(struct derp_server *s, struct derp_queue *q)
{
    uint64_t n = q->count;
    while (q->count > 0) {
        derp__pkt_put(&s->pool, derp__queue_pop(q));
    }
    return n;
}

/* ---- connection lifecycle ---- */

static void conn_log_addr(const struct derp_conn *c, char *out, size_t len)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char ip[INET6_ADDRSTRLEN] = "?";
    if (memcmp(c->ip16, v4mapped, 12) == 0) {
        inet_ntop(AF_INET, c->ip16 + 12, ip, sizeof(ip));
        snprintf(out, len, "%s:%u", ip, c->port);
    } else {
        inet_ntop(AF_INET6, c->ip16, ip, sizeof(ip));
        snprintf(out, len, "[%s]:%u", ip, c->port);
    }
}

void derp__conn_mark_dirty(struct derp_conn *c)
{
    if (c->is_dirty || c->state == DERP_CONN_CLOSED) {
        return;
    }
    c->is_dirty = true;
    c->dirty_next = c->srv->dirty;
    c->srv->dirty = c;
}

void derp__conn_send(struct derp_conn *c, const void *data, size_t len)
{
    if (c->state == DERP_CONN_CLOSED) {
        return;
    }
    if (dc_buf_append(&c->ctl, data, len) < 0) {
        derp__conn_close(c, true, "control output over its limit (client not reading)");
        return;
    }
    derp__conn_mark_dirty(c);
}

/* Hands every sender paused on link to the before-sleep resume pass. */
static void conn_unpause_all(struct derp_conn *link)
{
    struct derp_server *s = link->srv;
    while (link->paused_head != NULL) {
        struct derp_conn *p = link->paused_head;
        link->paused_head = p->paused_next;
        p->paused_next = NULL;
        p->paused_on = NULL;
        if (!p->is_resuming) {
            p->is_resuming = true;
            p->resume_next = s->resume;
            s->resume = p;
        }
    }
}

void derp__conn_close(struct derp_conn *c, bool is_error, const char *why)
{
    struct derp_server *s = c->srv;
    if (c->state == DERP_CONN_CLOSED) {
        return;
    }
    char addr[64];
    conn_log_addr(c, addr, sizeof(addr));
    if (c->mesh_peer != NULL) {
        dc_log(DC_LOG_INFO, "derp-mesh", "connection to peer %s closed: %s", addr, why);
        derp__mesh_conn_closed(c);
    } else if (c->state == DERP_CONN_ACTIVE) {
        dc_log(is_error ? DC_LOG_INFO : DC_LOG_DEBUG, "derp", "client %s key=%s closed: %s", addr,
               c->key_short, why);
        s->stats.clients_current--;
        if (c->is_preferred) {
            s->stats.home_clients--;
        }
        if (c->is_watcher) {
            s->nwatchers--;
        }
        derp__registry_remove(s, c);
    } else if (c->state != DERP_CONN_HTTP_DONE) {
        if (c->state == DERP_CONN_ADMIT) {
            s->stats.admission_pending--;
            derp_admit_cancel(s->cfg.admit, c->admit_req);
            c->admit_req = NULL;
        }
        if (is_error) {
            s->stats.handshake_errors++;
        }
        dc_log(is_error ? DC_LOG_INFO : DC_LOG_DEBUG, "derp",
               "connection %s closed before login: %s", addr, why);
    }
    c->state = DERP_CONN_CLOSED;
    dc_timer_stop(s->loop, &c->throttle);
    if (c->is_ip_counted) {
        c->is_ip_counted = false;
        derp__limits_release_ip(s, c->ip16);
    }
    conn_unpause_all(c);
    if (c->paused_on != NULL) {
        struct derp_conn **pp = &c->paused_on->paused_head;
        while (*pp != NULL && *pp != c) {
            pp = &(*pp)->paused_next;
        }
        if (*pp == c) {
            *pp = c->paused_next;
        }
        c->paused_on = NULL;
    }
    s->stats.drop_gone += queue_drain(s, &c->q_data) + queue_drain(s, &c->q_disco);
    dc_io_stop(s->loop, &c->io);
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->io.fd);
    c->io.fd = -1;
    s->stats.conns_current--;
    /* Unlink from the all-connections list now; free on the deferred pass. */
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->next = s->doomed;
    c->prev = NULL;
    s->doomed = c;
}

static void conn_free(struct derp_server *s, struct derp_conn *c)
{
    derp__pkt_put(&s->pool, c->rbuf);
    derp__pkt_put(&s->pool, c->partial);
    dc_buf_deinit(&c->ctl);
    dc_buf_deinit(&c->ws_out);
    free(c->q_data.big);
    free(c->q_disco.big);
    free(c->sources);
    free(c);
}

struct derp_conn *derp__conn_alloc(struct derp_server *s, int fd)
{
    struct derp_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->srv = s;
    c->io.fd = fd;
    c->io.cb = conn_io_cb;
    c->io.data = c;
    c->conn_num = ++s->next_conn_num;
    c->deadline_ms = dc_now_ms() + cfg_or(s->cfg.handshake_timeout_ms, DERP_HANDSHAKE_TIMEOUT_MS);
    dc_buf_init(&c->ctl, CTL_MAX_CLIENT);
    c->pg_tokens = DERP_PEER_GONE_BURST;
    if (dc_net_set_nodelay(fd) < 0) {
        /* not fatal: only latency suffers */
    }
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->stats.conns_current++;
    return c;
}

static void conn_new(struct derp_server *s, int fd, const uint8_t ip16[static 16], uint16_t port)
{
    struct derp_conn *c = derp__conn_alloc(s, fd);
    if (c == NULL) {
        derp__limits_release_ip(s, ip16);
        close(fd);
        return;
    }
    s->stats.accepts++;
    memcpy(c->ip16, ip16, 16);
    c->port = port;
    c->is_ip_counted = s->ip_buckets != NULL;
    c->state = DERP_CONN_HTTP;
    if (s->cfg.tls != NULL) {
        /* Looked up per connection: a certificate reload swaps the context. */
        c->ssl = SSL_new(dc_tls_server_ctx(s->cfg.tls));
        if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
            derp__conn_close(c, true, "TLS setup failed");
            return;
        }
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_set_accept_state(c->ssl);
        c->state = DERP_CONN_TLS_HANDSHAKE;
    }
    if (dc_io_start(s->loop, &c->io, DC_IO_READ) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

static void listen_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct derp_server *s = io->data;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen;
        int fd = dc_net_accept(io->fd, &peer, &plen);
        if (fd == -EAGAIN) {
            return;
        }
        if (fd < 0) {
            dc_log(DC_LOG_WARN, "derp", "accept: %s", dc_strerror(fd));
            return;
        }
        uint8_t ip16[16];
        uint16_t port;
        derp__ip16_from_sockaddr(&peer, ip16, &port);
        const char *refused = derp__limits_accept(s, ip16);
        if (refused != NULL) {
            close(fd); /* at once, before TLS: cheap for us, a clear signal for the client */
            dc_log(DC_LOG_DEBUG, "derp", "connection refused at accept: %s", refused);
            continue;
        }
        conn_new(s, fd, ip16, port);
    }
}

/* ---- writing ---- */

static bool conn_has_output(const struct derp_conn *c)
{
    return c->partial != NULL || c->ctl.len > c->ctl_off || c->q_disco.count > 0 ||
           c->q_data.count > 0;
}

static void note_sent(struct derp_server *s, const struct derp_pkt *p)
{
    s->stats.packets_sent++;
    s->stats.bytes_sent += p->len - DERP_FRAME_HDR_LEN - DERP_KEY_LEN;
}

/* Accounts n written bytes against partial, ctl, disco queue, data queue. */
static void conn_consume_written(struct derp_conn *c, size_t n)
{
    struct derp_server *s = c->srv;
    if (c->partial != NULL) {
        size_t rest = c->partial->len - c->partial_off;
        if (n < rest) {
            c->partial_off += (uint32_t)n;
            return;
        }
        n -= rest;
        note_sent(s, c->partial);
        derp__pkt_put(&s->pool, c->partial);
        c->partial = NULL;
        c->partial_off = 0;
    }
    size_t ctl_rest = c->ctl.len - c->ctl_off;
    if (ctl_rest > 0) {
        if (n < ctl_rest) {
            c->ctl_off += n;
            return;
        }
        n -= ctl_rest;
        dc_buf_reset(&c->ctl);
        c->ctl_off = 0;
    }
    struct derp_queue *qs[2] = {&c->q_disco, &c->q_data};
    for (int qi = 0; qi < 2 && n > 0; qi++) {
        struct derp_queue *q = qs[qi];
        while (q->count > 0 && n > 0) {
            struct derp_pkt *p = derp__queue_pop(q);
            if (n < p->len) {
                c->partial = p;
                c->partial_off = (uint32_t)n;
                return;
            }
            n -= p->len;
            note_sent(s, p);
            derp__pkt_put(&s->pool, p);
        }
    }
}

static int conn_build_iov(struct derp_conn *c, struct iovec *iov)
{
    int n = 0;
    if (c->partial != NULL) {
        iov[n].iov_base = c->partial->data + c->partial_off;
        iov[n++].iov_len = c->partial->len - c->partial_off;
    }
    if (c->ctl.len > c->ctl_off) {
        iov[n].iov_base = c->ctl.p + c->ctl_off;
        iov[n++].iov_len = c->ctl.len - c->ctl_off;
    }
    const struct derp_queue *qs[2] = {&c->q_disco, &c->q_data};
    for (int qi = 0; qi < 2; qi++) {
        for (unsigned i = 0; i < qs[qi]->count && n < WRITE_IOV_MAX; i++) {
            struct derp_pkt *p = derp__queue_peek(qs[qi], i);
            iov[n].iov_base = p->data;
            iov[n++].iov_len = p->len;
        }
    }
    return n;
}

int derp__conn_write_raw(struct derp_conn *c, const uint8_t *p, size_t len, size_t *written)
{
    *written = 0;
    while (*written < len) {
        if (c->ssl != NULL) {
            size_t w = 0;
            int rc = SSL_write_ex(c->ssl, p + *written, len - *written, &w);
            if (rc <= 0) {
                int e = SSL_get_error(c->ssl, rc);
                ERR_clear_error();
                return (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? -EAGAIN : -EPIPE;
            }
            *written += w;
            continue;
        }
        ssize_t n = write(c->io.fd, p + *written, len - *written);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        *written += (size_t)n;
    }
    return 0;
}

/* Plain TCP: writev until done or the socket is full. */
static int conn_flush_plain(struct derp_conn *c)
{
    struct iovec iov[WRITE_IOV_MAX];
    while (conn_has_output(c)) {
        int n = conn_build_iov(c, iov);
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            total += iov[i].iov_len;
        }
        ssize_t w = writev(c->io.fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        conn_consume_written(c, (size_t)w);
        if ((size_t)w < total) {
            return -EAGAIN;
        }
    }
    return 0;
}

/* TLS: one SSL_write per item. A packet is moved to the partial slot before
 * it is handed to OpenSSL, so a retry after WANT_WRITE sees the same bytes. */
static int conn_flush_tls(struct derp_conn *c)
{
    while (conn_has_output(c)) {
        if (c->partial == NULL && c->ctl.len == c->ctl_off) {
            struct derp_queue *q = c->q_disco.count > 0 ? &c->q_disco : &c->q_data;
            c->partial = derp__queue_pop(q);
            c->partial_off = 0;
        }
        const uint8_t *p;
        size_t len;
        if (c->partial != NULL) {
            p = c->partial->data + c->partial_off;
            len = c->partial->len - c->partial_off;
        } else {
            p = c->ctl.p + c->ctl_off;
            len = c->ctl.len - c->ctl_off;
        }
        size_t w = 0;
        int rc = SSL_write_ex(c->ssl, p, len, &w);
        if (rc <= 0) {
            int e = SSL_get_error(c->ssl, rc);
            ERR_clear_error();
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                return -EAGAIN;
            }
            return -EPIPE;
        }
        conn_consume_written(c, w);
    }
    return 0;
}

static void conn_update_write_interest(struct derp_conn *c, bool want)
{
    if (c->wants_write == want || c->state == DERP_CONN_CLOSED) {
        return;
    }
    c->wants_write = want;
    uint32_t ev = (!conn_reads_paused(c) ? DC_IO_READ : 0) | (want ? DC_IO_WRITE : 0);
    if (dc_io_start(c->srv->loop, &c->io, ev) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

static void conn_flush(struct derp_conn *c)
{
    if (c->state == DERP_CONN_CLOSED || c->state == DERP_CONN_TLS_HANDSHAKE ||
        c->state == DERP_CONN_MESH_CONNECTING || c->state == DERP_CONN_MESH_TLS) {
        return;
    }
    size_t before = c->ctl.len - c->ctl_off + (c->partial ? c->partial->len - c->partial_off : 0) +
                    c->q_disco.count + c->q_data.count + (c->ws_out.len - c->ws_out_off);
    int rc = c->is_ws         ? derp__ws_flush(c)
             : c->ssl != NULL ? conn_flush_tls(c)
                              : conn_flush_plain(c);
    size_t after = c->ctl.len - c->ctl_off + (c->partial ? c->partial->len - c->partial_off : 0) +
                   c->q_disco.count + c->q_data.count + (c->ws_out.len - c->ws_out_off);
    if (c->paused_head != NULL && c->q_data.count <= queue_cap(&c->q_data) / 2) {
        conn_unpause_all(c); /* the mesh link has room again */
    }
    if (rc == 0) {
        c->stalled_since_ms = 0;
        conn_update_write_interest(c, false);
        if (c->state == DERP_CONN_HTTP_DONE) {
            derp__conn_close(c, false, "HTTP answer sent");
        }
        return;
    }
    if (rc != -EAGAIN) {
        c->srv->stats.drop_write_error += c->q_data.count + c->q_disco.count;
        derp__conn_close(c, false, "write failed");
        return;
    }
    if (c->stalled_since_ms == 0 || after < before) {
        c->stalled_since_ms = dc_now_ms();
    }
    conn_update_write_interest(c, true);
}

/* ---- the packet path ---- */

void derp__conn_enqueue(struct derp_conn *c, struct derp_queue *q, struct derp_pkt *p)
{
    struct derp_server *s = c->srv;
    if (q->count == queue_cap(q) && !c->wants_write) {
        /* A burst filled the queue within one wake-up: write now, so packets
         * are dropped only when the client's socket is full, not because the
         * batched flush has not run yet. (A socket already known to be full
         * waits for EPOLLOUT: no syscall per dropped packet.) */
        conn_flush(c);
    }
    if (c->state == DERP_CONN_CLOSED) {
        derp__pkt_put(&s->pool, p);
        s->stats.drop_gone++;
        return;
    }
    derp__queue_push(s, q, p);
    derp__conn_mark_dirty(c);
}

static void peer_gone_not_here(struct derp_conn *c, const uint8_t dst[static DERP_KEY_LEN])
{
    struct derp_server *s = c->srv;
    uint64_t now = dc_now_ms();
    uint64_t refill = (now - c->pg_last_ms) / DERP_PEER_GONE_INTERVAL_MS;
    if (refill > 0) {
        c->pg_tokens =
            (uint32_t)(c->pg_tokens + refill > DERP_PEER_GONE_BURST ? DERP_PEER_GONE_BURST
                                                                    : c->pg_tokens + refill);
        c->pg_last_ms = now;
    }
    if (c->pg_tokens == 0) {
        return;
    }
    c->pg_tokens--;
    uint8_t frame[DERP_PEER_GONE_FRAME_LEN];
    derp_frame_peer_gone_encode(frame, dst, DERP_PEER_GONE_NOT_HERE);
    derp__conn_send(c, frame, sizeof(frame));
    s->stats.peer_gone_not_here++;
}

/* Delivers one packet from src_key to dst_key (pkt_len bytes at pkt).
 * Returns false when the packet must wait: its mesh link is full. */
static bool relay_packet(struct derp_conn *from, const uint8_t src_key[static DERP_KEY_LEN],
                         const uint8_t dst_key[static DERP_KEY_LEN], const uint8_t *pkt,
                         uint32_t pkt_len, bool is_forwarded)
{
    struct derp_server *s = from->srv;
    struct derp_client_set *dset = derp__registry_find(&s->reg, dst_key);
    struct derp_conn *dst = dset != NULL ? dset->active : NULL;
    bool is_disco = derp_packet_is_disco(pkt, pkt_len);
    if (dst == NULL && dset == NULL && s->mesh != NULL) {
        struct derp_mesh_peer *fwd = derp__mesh_forwarder(s, dst_key);
        if (fwd != NULL && !is_forwarded) { /* forwarded packets never go on: no loops */
            return derp__mesh_forward(fwd, src_key, dst_key, pkt, pkt_len);
        }
    }
    if (dst == NULL) {
        if (is_forwarded) {
            s->stats.drop_unknown_dest_on_fwd++;
            if (is_disco) {
                peer_gone_not_here(from, dst_key);
            }
        } else if (dset != NULL && dset->nconns > 1) {
            s->stats.drop_dup_client++;
        } else {
            s->stats.drop_unknown_dest++;
            if (is_disco) {
                peer_gone_not_here(from, dst_key);
            }
        }
        return true;
    }
    struct derp_pkt *p = derp__pkt_get(&s->pool, DERP_FRAME_HDR_LEN + DERP_KEY_LEN + pkt_len);
    if (p == NULL) {
        s->stats.drop_write_error++;
        return true;
    }
    derp_frame_header_encode(p->data, DERP_FRAME_RECV_PACKET, DERP_KEY_LEN + pkt_len);
    memcpy(p->data + DERP_FRAME_HDR_LEN, src_key, DERP_KEY_LEN);
    memcpy(p->data + DERP_FRAME_HDR_LEN + DERP_KEY_LEN, pkt, pkt_len);
    p->len = DERP_FRAME_HDR_LEN + DERP_KEY_LEN + pkt_len;
    derp__conn_enqueue(dst, is_disco ? &dst->q_disco : &dst->q_data, p);
    if (dst->state == DERP_CONN_CLOSED) {
        return true; /* a failed flush closed dst: it watches nobody any more */
    }
    /* A forwarded packet's sender lives on a mesh peer: its remote set
     * remembers dst, which hears PeerGone when the mesh loses the sender. */
    struct derp_client_set *sset =
        from->set != NULL && memcmp(src_key, from->key, DERP_KEY_LEN) == 0
            ? from->set
            : derp__registry_source(&s->reg, src_key, is_forwarded);
    if (sset != NULL) {
        (void)derp__registry_note_source(dst, sset);
    }
    return true;
}

/* ---- login ---- */

static uint64_t advertised(uint64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v;
}

static void send_server_info(struct derp_conn *c)
{
    struct derp_server *s = c->srv;
    struct derp_server_info si = {.version = DERP_PROTOCOL_VERSION};
    if (derp_rate_is_limited(&c->rate)) {
        /* derp.ServerInfo's token bucket: Tailscale clients pace their sends
         * to it. Its fields are Go ints, 32 bits on 32-bit clients, which
         * fail to decode anything larger: advertise at most INT32_MAX. */
        si.token_bucket_bytes_per_sec = (long)advertised(s->cfg.client_rate_bytes_per_sec);
        si.token_bucket_bytes_burst = (long)advertised(s->client_burst);
    }
    char json[DERP_INFO_JSON_MAX];
    int n = derp_server_info_format(&si, json, sizeof(json));
    if (n < 0) {
        derp__conn_close(c, true, "cannot format server info");
        return;
    }
    uint8_t frame[DERP_FRAME_HDR_LEN + DERP_BOX_SEAL_OVERHEAD + DERP_INFO_JSON_MAX];
    size_t boxed = derp_box_seal(&s->cfg.key, c->key, (const uint8_t *)json, (size_t)n,
                                 frame + DERP_FRAME_HDR_LEN);
    if (boxed == 0) {
        derp__conn_close(c, true, "client key refused by crypto_box");
        return;
    }
    derp_frame_header_encode(frame, DERP_FRAME_SERVER_INFO, (uint32_t)boxed);
    derp__conn_send(c, frame, DERP_FRAME_HDR_LEN + boxed);
}

static bool client_info_open(struct derp_conn *c, const uint8_t *payload, uint32_t len,
                             struct derp_client_info *ci)
{
    struct derp_server *s = c->srv;
    char why[DC_ERR_LEN];
    if (len < DERP_KEY_LEN + DERP_NONCE_LEN) {
        derp__conn_close(c, true, "short client info");
        return false;
    }
    memcpy(c->key, payload, DERP_KEY_LEN);
    derp_key_short(c->key, c->key_short);
    size_t box_len = len - DERP_KEY_LEN;
    uint8_t *msg = malloc(box_len + 1);
    if (msg == NULL) {
        derp__conn_close(c, true, "out of memory");
        return false;
    }
    long n = derp_box_open(&s->cfg.key, c->key, payload + DERP_KEY_LEN, box_len, msg);
    if (n < 0) {
        free(msg);
        snprintf(why, sizeof(why), "client info box does not open with key=%s", c->key_short);
        derp__conn_close(c, true, why);
        return false;
    }
    int rc = derp_client_info_parse((const char *)msg, (size_t)n, ci, why);
    sodium_memzero(msg, box_len);
    free(msg);
    if (rc < 0) {
        derp__conn_close(c, true, why);
        return false;
    }
    return true;
}

/* Enters c into the registry: ServerInfo, then relaying. */
static void conn_register(struct derp_conn *c)
{
    struct derp_server *s = c->srv;
    if (!c->can_mesh && s->cfg.client_rate_bytes_per_sec != 0) {
        derp_rate_init(&c->rate, (double)s->cfg.client_rate_bytes_per_sec, (double)s->client_burst,
                       dc_now_ms());
    }
    /* ServerInfo goes out before anything registration may queue (Health). */
    send_server_info(c);
    if (c->state == DERP_CONN_CLOSED) {
        return;
    }
    if (derp__registry_add(s, c) < 0) {
        derp__conn_close(c, true, "out of memory");
        return;
    }
    c->state = DERP_CONN_ACTIVE;
    s->stats.clients_current++;
    uint64_t jitter = randombytes_uniform(DERP_KEEPALIVE_JITTER_MS);
    c->next_keepalive_ms = dc_now_ms() + cfg_or(s->cfg.keepalive_ms, DERP_KEEPALIVE_MS) + jitter;
}

/* Closes c for an admission refusal: one info line with derper's short key. */
static void conn_refuse(struct derp_conn *c, enum derp_admit_result r, const char *why)
{
    struct derp_server *s = c->srv;
    switch (r) {
    case DERP_ADMIT_NOT_LISTED:
        s->stats.refused_not_listed++;
        break;
    case DERP_ADMIT_DENIED:
        s->stats.refused_denied++;
        break;
    case DERP_ADMIT_UNREACHABLE:
        s->stats.refused_unreachable++;
        break;
    default:
        s->stats.refused_admit_error++;
        break;
    }
    char addr[64], ks[DERP_KEY_SHORT_STRING_LEN];
    conn_log_addr(c, addr, sizeof(addr));
    derp_key_short_string(c->key, ks);
    dc_log(DC_LOG_INFO, "derp", "client %s key=%s %s refused: %s", addr, c->key_short, ks, why);
    derp__conn_close(c, false, "refused by admission");
}

/* Puts c on the before-sleep resume pass: it is read again from there. */
static void conn_schedule_resume(struct derp_conn *c)
{
    struct derp_server *s = c->srv;
    if (!c->is_resuming) {
        c->is_resuming = true;
        c->resume_next = s->resume;
        s->resume = c;
    }
}

static void conn_note_fail_open(struct derp_conn *c, const char *why)
{
    char ks[DERP_KEY_SHORT_STRING_LEN];
    derp_key_short_string(c->key, ks);
    c->srv->stats.admitted_fail_open++;
    dc_log(DC_LOG_WARN, "derp", "%s; allowing client key=%s %s (fail-open)", why, c->key_short, ks);
}

/* The admission verdict for a client in ADMIT state (derp_admit_cb). */
static void conn_admit_done(void *data, enum derp_admit_result r, const char *why)
{
    struct derp_conn *c = data;
    c->admit_req = NULL;
    c->srv->stats.admission_pending--;
    if (!derp_admit_result_is_allowed(r)) {
        c->state = DERP_CONN_LOGIN; /* not pending any more: closes as before login */
        conn_refuse(c, r, why);
        return;
    }
    if (r == DERP_ADMIT_FAIL_OPEN) {
        conn_note_fail_open(c, why);
    }
    c->state = DERP_CONN_LOGIN;
    conn_register(c);
    if (c->state == DERP_CONN_ACTIVE) {
        conn_schedule_resume(c); /* frames sent after ClientInfo wait in rbuf */
    }
}

/* Runs admission for a non-mesh client. Returns true when c may register now;
 * false when it was refused (closed) or must wait for the verdict. */
static bool conn_admit(struct derp_conn *c)
{
    struct derp_server *s = c->srv;
    char why[DC_ERR_LEN] = "";
    enum derp_admit_result r =
        derp_admit_check(s->cfg.admit, c->key, c->ip16, conn_admit_done, c, &c->admit_req, why);
    if (r == DERP_ADMIT_PENDING) {
        c->state = DERP_CONN_ADMIT;
        s->stats.admission_pending++;
        if (dc_io_start(s->loop, &c->io, c->wants_write ? DC_IO_WRITE : 0) < 0) {
            derp__conn_close(c, true, "epoll_ctl failed");
        }
        return false;
    }
    if (!derp_admit_result_is_allowed(r)) {
        conn_refuse(c, r, why);
        return false;
    }
    if (r == DERP_ADMIT_FAIL_OPEN) {
        conn_note_fail_open(c, why);
    }
    return true;
}

static void conn_login(struct derp_conn *c, uint8_t type, const uint8_t *payload, uint32_t len)
{
    struct derp_server *s = c->srv;
    if (type != DERP_FRAME_CLIENT_INFO) {
        derp__conn_close(c, true, "first frame is not ClientInfo");
        return;
    }
    struct derp_client_info ci;
    if (!client_info_open(c, payload, len, &ci)) {
        return;
    }
    c->can_mesh = s->cfg.has_mesh_key && ci.has_mesh_key &&
                  sodium_memcmp(ci.mesh_key, s->cfg.mesh_key, DERP_MESH_KEY_LEN) == 0;
    sodium_memzero(ci.mesh_key, sizeof(ci.mesh_key));
    c->is_prober = ci.is_prober;
    if (c->can_mesh) {
        c->ctl.max = CTL_MAX_MESH;
    }
    char addr[64];
    conn_log_addr(c, addr, sizeof(addr));
    dc_log(DC_LOG_DEBUG, "derp",
           "client %s key=%s logged in version=%d mesh=%s prober=%s fast_start=%s app=%s", addr,
           c->key_short, ci.version, c->can_mesh ? "yes" : "no", ci.is_prober ? "yes" : "no",
           c->is_fast_start ? "yes" : "no", ci.app_name[0] ? ci.app_name : "-");
    /* Mesh peers are trusted by their key and never subject to admission. */
    if (!c->can_mesh && s->cfg.admit != NULL && !conn_admit(c)) {
        return;
    }
    conn_register(c);
}

/* ---- frames from a logged-in client ---- */

static void conn_protocol_error(struct derp_conn *c, const char *why)
{
    c->srv->stats.protocol_errors++;
    derp__conn_close(c, true, why);
}

static void frame_watch_conns(struct derp_conn *c, uint32_t len)
{
    struct derp_server *s = c->srv;
    if (len != 0) {
        conn_protocol_error(c, "WatchConns with a payload");
        return;
    }
    if (!c->can_mesh) {
        conn_protocol_error(c, "WatchConns without the mesh key");
        return;
    }
    if (memcmp(c->key, s->cfg.key.pub, DERP_KEY_LEN) == 0 || c->is_watcher) {
        return; /* ourselves, or already watching */
    }
    c->is_watcher = true;
    s->nwatchers++;
    for (struct derp_conn *o = s->conns; o != NULL; o = o->next) {
        if (o->state != DERP_CONN_ACTIVE || o->set == NULL || o->set->active != o) {
            continue;
        }
        uint8_t flags = (uint8_t)((o->is_prober ? DERP_PEER_PRESENT_PROBER : 0) |
                                  (o->can_mesh ? DERP_PEER_PRESENT_MESH_PEER : 0) |
                                  (o->is_not_ideal ? DERP_PEER_PRESENT_NOT_IDEAL : 0));
        uint8_t frame[DERP_PEER_PRESENT_FRAME_LEN];
        derp_frame_peer_present_encode(frame, o->key, o->ip16, o->port,
                                       flags != 0 ? flags : DERP_PEER_PRESENT_REGULAR);
        derp__conn_send(c, frame, sizeof(frame));
    }
}

static void frame_close_peer(struct derp_conn *c, const uint8_t *payload, uint32_t len)
{
    if (len != DERP_KEY_LEN) {
        conn_protocol_error(c, "ClosePeer of the wrong size");
        return;
    }
    if (!c->can_mesh) {
        conn_protocol_error(c, "ClosePeer without the mesh key");
        return;
    }
    struct derp_client_set *set = derp__registry_find(&c->srv->reg, payload);
    char k[DERP_KEY_SHORT_LEN];
    derp_key_short(payload, k);
    dc_log(DC_LOG_INFO, "derp", "ClosePeer from key=%s closes key=%s (%s)", c->key_short, k,
           set != NULL ? "found" : "not here");
    while (set != NULL && set->conns != NULL) {
        struct derp_conn *t = set->conns;
        bool last = set->nconns == 1;
        derp__conn_close(t, true, "closed by a mesh peer (ClosePeer)");
        if (last) {
            break; /* set was freed with its last connection */
        }
    }
}

static void frame_ping(struct derp_conn *c, const uint8_t *payload, uint32_t len)
{
    if (len < DERP_PING_LEN || len > DERP_MAX_PING_LEN) {
        conn_protocol_error(c, len < DERP_PING_LEN ? "short ping" : "ping body too large");
        return;
    }
    uint8_t frame[DERP_PONG_FRAME_LEN];
    derp_frame_pong_encode(frame, payload);
    derp__conn_send(c, frame, sizeof(frame));
    c->srv->stats.pings++;
}

static void frame_note_preferred(struct derp_conn *c, const uint8_t *payload, uint32_t len)
{
    if (len != 1) {
        conn_protocol_error(c, "NotePreferred of the wrong size");
        return;
    }
    bool v = payload[0] != 0;
    if (v != c->is_preferred) {
        c->is_preferred = v;
        if (v) {
            c->srv->stats.home_clients++;
        } else {
            c->srv->stats.home_clients--;
        }
    }
}

/* Stops reading c until link drains (derp__conn_resume_paused). */
static void conn_pause(struct derp_conn *c, struct derp_conn *link)
{
    c->paused_on = link;
    c->paused_next = link->paused_head;
    link->paused_head = c;
    if (dc_io_start(c->srv->loop, &c->io, c->wants_write ? DC_IO_WRITE : 0) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

/* Returns false when the frame could not be taken yet (c is now paused). */
static bool frame_send_packet(struct derp_conn *c, const uint8_t *payload, uint32_t len)
{
    struct derp_server *s = c->srv;
    if (!relay_packet(c, c->key, payload, payload + DERP_KEY_LEN, len - DERP_KEY_LEN, false)) {
        conn_pause(c, derp__mesh_peer_conn(derp__mesh_forwarder(s, payload)));
        return false;
    }
    s->stats.packets_recv++;
    s->stats.bytes_recv += len - DERP_KEY_LEN;
    return true;
}

static void frame_forward_packet(struct derp_conn *c, const uint8_t *payload, uint32_t len)
{
    struct derp_server *s = c->srv;
    if (!c->can_mesh) {
        conn_protocol_error(c, "ForwardPacket without the mesh key");
        return;
    }
    s->stats.packets_forwarded_in++;
    relay_packet(c, payload, payload + DERP_KEY_LEN, payload + 2 * DERP_KEY_LEN,
                 len - 2 * DERP_KEY_LEN, true);
}

/* Handles one frame; returns false when it must be offered again later. */
static bool conn_active_frame(struct derp_conn *c, uint8_t type, const uint8_t *p, uint32_t len)
{
    if (c->is_dup) {
        derp__registry_note_activity(c->srv, c);
    }
    switch (type) {
    case DERP_FRAME_SEND_PACKET:
        return frame_send_packet(c, p, len);
    case DERP_FRAME_FORWARD_PACKET:
        frame_forward_packet(c, p, len);
        break;
    case DERP_FRAME_NOTE_PREFERRED:
        frame_note_preferred(c, p, len);
        break;
    case DERP_FRAME_PING:
        frame_ping(c, p, len);
        break;
    case DERP_FRAME_WATCH_CONNS:
        frame_watch_conns(c, len);
        break;
    case DERP_FRAME_CLOSE_PEER:
        frame_close_peer(c, p, len);
        break;
    default:
        break; /* unknown frames are skipped, as derper does */
    }
    return true;
}

static void throttle_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct derp_conn *c = t->data;
    c->is_throttled = false;
    conn_schedule_resume(c); /* the frame that waited goes first */
}

/* Stops reading c for wait_ms: derper delays reading a client over its rate
 * (sclient.rateLimit), so TCP flow control slows the sender; nothing drops. */
static void conn_throttle(struct derp_conn *c, uint64_t wait_ms)
{
    struct derp_server *s = c->srv;
    c->is_throttled = true;
    s->stats.rate_limit_waits++;
    c->throttle.cb = throttle_cb;
    c->throttle.data = c;
    dc_timer_start(s->loop, &c->throttle, wait_ms);
    if (dc_io_start(s->loop, &c->io, c->wants_write ? DC_IO_WRITE : 0) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

/* Debits a frame of len bytes (its length field, as derper counts, clamped
 * to the bucket) from c's byte rate. False: c is throttled, the frame waits. */
static bool conn_rate_take(struct derp_conn *c, uint32_t len)
{
    if (!derp_rate_is_limited(&c->rate) || derp_rate_take_cached(&c->rate, len)) {
        return true;
    }
    uint64_t wait_ms = derp_rate_take(&c->rate, len, dc_now_ms());
    if (wait_ms == 0) {
        return true;
    }
    conn_throttle(c, wait_ms);
    return false;
}

/* Handles every whole frame in buf; returns bytes consumed. */
static size_t conn_parse_frames(struct derp_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (c->state == DERP_CONN_LOGIN || c->state == DERP_CONN_ACTIVE) {
        struct derp_frame f;
        bool has_frame;
        const char *why = NULL;
        c->reader.is_login = c->state == DERP_CONN_LOGIN;
        long n = derp_frame_next(&c->reader, buf + off, len - off, &f, &has_frame, &why);
        if (n < 0) {
            conn_protocol_error(c, why);
            return off;
        }
        if (n == 0) {
            return off;
        }
        if (!has_frame) {
            off += (size_t)n;
            /* Skipped bytes of an unknown frame count against the byte rate
             * too (derper debits every frame's length before reading it). */
            derp_rate_charge(&c->rate, (double)n);
            continue;
        }
        if (c->state == DERP_CONN_LOGIN) {
            conn_login(c, f.type, f.payload, f.len);
        } else if (!conn_rate_take(c, f.len) || !conn_active_frame(c, f.type, f.payload, f.len)) {
            return off; /* paused or throttled: the frame stays buffered */
        }
        off += (size_t)n;
    }
    return off;
}

/* ---- reading ---- */

static size_t conn_dispatch(struct derp_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    if (c->mesh_peer != NULL) {
        return derp__mesh_conn_dispatch(c, buf, len);
    }
    if (c->state == DERP_CONN_HTTP) {
        off = derp__http_handle(c, buf, len);
        if (c->state == DERP_CONN_HTTP || c->state == DERP_CONN_CLOSED || c->is_ws) {
            return off; /* WebSocket: what follows the head is framed; unframe it first */
        }
    }
    if (c->state == DERP_CONN_LOGIN || c->state == DERP_CONN_ACTIVE) {
        off += conn_parse_frames(c, buf + off, len - off);
    } else if (c->state == DERP_CONN_HTTP_DONE) {
        off = len; /* bytes after a plain HTTP request are ignored */
    }
    return off;
}

/* Reads into buf; returns bytes, 0 at EOF, -EAGAIN, or another negative errno. */
static long conn_read(struct derp_conn *c, uint8_t *buf, size_t cap)
{
    if (c->ssl == NULL) {
        for (;;) {
            ssize_t n = read(c->io.fd, buf, cap);
            if (n >= 0) {
                return (long)n;
            }
            if (errno != EINTR) {
                return errno == EAGAIN ? -EAGAIN : -errno;
            }
        }
    }
    size_t got = 0;
    int rc = SSL_read_ex(c->ssl, buf, cap, &got);
    if (rc == 1) {
        return (long)got;
    }
    int e = SSL_get_error(c->ssl, rc);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return -EAGAIN;
    }
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -EPROTO;
}

/* Hands the buffered bytes to the current stage; returns false when c closed. */
static bool conn_process_rbuf(struct derp_conn *c)
{
    struct derp_pkt *rb = c->rbuf;
    for (;;) {
        if (c->is_ws && derp__ws_decode(c) < 0) {
            return false;
        }
        bool was_ws = c->is_ws;
        size_t used = conn_dispatch(c, rb->data, was_ws ? c->ws_dec_len : rb->len);
        if (c->state == DERP_CONN_CLOSED) {
            return false;
        }
        if (used > 0) {
            memmove(rb->data, rb->data + used, rb->len - used);
            rb->len -= (uint32_t)used;
            c->ws_dec_len -= was_ws ? (uint32_t)used : 0;
        }
        if (was_ws || !c->is_ws) {
            return true; /* loop once more only right after the WebSocket upgrade */
        }
    }
}

static void conn_on_readable(struct derp_conn *c)
{
    struct derp_server *s = c->srv;
    size_t budget = READ_BUDGET;
    while (c->state != DERP_CONN_CLOSED && !conn_reads_paused(c) && budget > 0) {
        if (c->rbuf == NULL) {
            c->rbuf = derp__pkt_get(&s->pool, DERP_RBUF_CAP);
            if (c->rbuf == NULL) {
                derp__conn_close(c, true, "out of memory");
                return;
            }
        }
        struct derp_pkt *rb = c->rbuf;
        long n = conn_read(c, rb->data + rb->len, rb->cap - rb->len);
        if (n == -EAGAIN) {
            break;
        }
        if (n == 0 || n == -ECONNRESET) {
            derp__conn_close(c, false, "client hung up");
            return;
        }
        if (n < 0) {
            char why[64];
            snprintf(why, sizeof(why), "read error: %s", dc_strerror((int)n));
            derp__conn_close(c, true, why);
            return;
        }
        budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
        rb->len += (uint32_t)n;
        if (!conn_process_rbuf(c)) {
            return;
        }
        if (rb->len == rb->cap && !conn_reads_paused(c)) {
            derp__conn_close(c, true, "request does not fit the read buffer");
            return;
        }
    }
    if (c->rbuf != NULL && c->rbuf->len == 0) {
        derp__pkt_put(&s->pool, c->rbuf); /* idle connections hold no buffer */
        c->rbuf = NULL;
    }
}

static void conn_tls_handshake(struct derp_conn *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        c->state = DERP_CONN_HTTP;
        conn_on_readable(c); /* application data may already be buffered */
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        conn_update_write_interest(c, e == SSL_ERROR_WANT_WRITE);
        return;
    }
    char why[160];
    unsigned long oe = ERR_get_error();
    snprintf(why, sizeof(why), "TLS handshake failed: %s",
             oe != 0 ? ERR_reason_error_string(oe) : "connection closed");
    ERR_clear_error();
    derp__conn_close(c, true, why);
}

static void conn_io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    struct derp_conn *c = io->data;
    if (c->state == DERP_CONN_MESH_CONNECTING || c->state == DERP_CONN_MESH_TLS) {
        derp__mesh_conn_io(c, events);
        return;
    }
    if (c->state == DERP_CONN_TLS_HANDSHAKE) {
        conn_tls_handshake(c);
        return;
    }
    if (events & DC_IO_WRITE) {
        conn_flush(c);
    }
    if ((events & DC_IO_READ) && c->state != DERP_CONN_CLOSED && !conn_reads_paused(c)) {
        conn_on_readable(c);
    }
}

/* ---- the loop hooks ---- */

static void server_before_sleep(struct dc_loop *loop, void *data)
{
    struct derp_server *s = data;
    while (s->dirty != NULL) {
        struct derp_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->is_dirty = false;
        conn_flush(c);
    }
    while (s->resume != NULL) {
        struct derp_conn *c = s->resume;
        s->resume = c->resume_next;
        c->resume_next = NULL;
        c->is_resuming = false;
        if (c->state == DERP_CONN_CLOSED || conn_reads_paused(c)) {
            continue;
        }
        uint32_t ev = DC_IO_READ | (c->wants_write ? DC_IO_WRITE : 0);
        if (dc_io_start(loop, &c->io, ev) < 0) {
            derp__conn_close(c, true, "epoll_ctl failed");
            continue;
        }
        if (c->rbuf != NULL && c->rbuf->len > 0) {
            conn_process_rbuf(c); /* the frame that waited goes first */
        }
    }
    /* Resumed senders may have queued packets: flush them now too. */
    while (s->dirty != NULL) {
        struct derp_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->is_dirty = false;
        conn_flush(c);
    }
    while (s->doomed != NULL) {
        struct derp_conn *c = s->doomed;
        s->doomed = c->next;
        conn_free(s, c);
    }
}

static void conn_check_deadlines(struct derp_conn *c, uint64_t now)
{
    struct derp_server *s = c->srv;
    if (c->state != DERP_CONN_ACTIVE && c->state != DERP_CONN_HTTP_DONE &&
        c->state != DERP_CONN_MESH_ACTIVE && now >= c->deadline_ms) {
        derp__conn_close(c, true, "handshake not finished in time");
        return;
    }
    if (c->stalled_since_ms != 0) {
        uint64_t limit = c->can_mesh || c->mesh_peer != NULL
                             ? DERP_MESH_WRITE_TIMEOUT_MS
                             : cfg_or(s->cfg.write_timeout_ms, DERP_WRITE_TIMEOUT_MS);
        if (now - c->stalled_since_ms >= limit) {
            s->stats.write_timeouts++;
            s->stats.drop_write_error += c->q_data.count + c->q_disco.count;
            derp__conn_close(c, true, "write stalled: client is not reading");
            return;
        }
    }
    if (c->state == DERP_CONN_ACTIVE && now >= c->next_keepalive_ms) {
        uint8_t frame[DERP_FRAME_HDR_LEN];
        derp_frame_header_encode(frame, DERP_FRAME_KEEP_ALIVE, 0);
        derp__conn_send(c, frame, sizeof(frame));
        s->stats.keepalives++;
        c->next_keepalive_ms = now + cfg_or(s->cfg.keepalive_ms, DERP_KEEPALIVE_MS);
    }
}

static void server_tick(struct dc_loop *loop, struct dc_timer *t)
{
    struct derp_server *s = t->data;
    uint64_t now = dc_now_ms();
    struct derp_conn *c = s->conns;
    while (c != NULL) {
        struct derp_conn *next = c->next;
        conn_check_deadlines(c, now);
        c = next;
    }
    dc_timer_start(loop, &s->tick, SERVER_TICK_MS);
}

/* Closes the clients whose keys left the allowed-keys file (derp_admit_changed_cb). */
static void server_allowed_keys_changed(void *data)
{
    struct derp_server *s = data;
    struct derp_conn *c = s->conns;
    while (c != NULL) {
        struct derp_conn *next = c->next;
        if (c->state == DERP_CONN_ACTIVE && !c->can_mesh &&
            !derp_admit_is_listed(s->cfg.admit, c->key)) {
            char ks[DERP_KEY_SHORT_STRING_LEN];
            derp_key_short_string(c->key, ks);
            dc_log(DC_LOG_INFO, "derp", "client key=%s %s no longer in the allowed keys file",
                   c->key_short, ks);
            s->stats.revoked++;
            derp__conn_close(c, true, "key removed from the allowed keys file");
        }
        c = next;
    }
}

/* ---- public API ---- */

int derp_server_new(struct dc_loop *loop, const struct derp_server_config *cfg,
                    struct derp_server **out, char *err)
{
    struct derp_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return dc_err_set(err, -ENOMEM, "derp server: out of memory");
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.listen_addr = NULL;
    s->listen_io.fd = -1;
    derp_key_hex(cfg->key.pub, s->pub_hex);
    int rc = derp__registry_init(&s->reg);
    if (rc < 0) {
        free(s);
        return dc_err_set(err, rc, "derp server: out of memory");
    }
    rc = derp__limits_init(s, err);
    int fd = rc < 0 ? rc : dc_net_listen_tcp(cfg->listen_addr, 4096, err);
    if (fd < 0) {
        derp__limits_deinit(s);
        derp__registry_deinit(&s->reg);
        free(s);
        return fd;
    }
    s->listen_io.fd = fd;
    s->listen_io.cb = listen_cb;
    s->listen_io.data = s;
    s->port = dc_net_local_port(fd);
    rc = dc_io_start(loop, &s->listen_io, DC_IO_READ);
    if (rc < 0) {
        close(fd);
        derp__limits_deinit(s);
        derp__registry_deinit(&s->reg);
        free(s);
        return dc_err_set(err, rc, "derp server: epoll: %s", dc_strerror(rc));
    }
    if (cfg->mesh_with != NULL && cfg->mesh_with[0] != '\0') {
        rc = derp__mesh_start(s, cfg->mesh_with, err);
        if (rc < 0) {
            dc_io_stop(loop, &s->listen_io);
            close(fd);
            derp__limits_deinit(s);
            derp__registry_deinit(&s->reg);
            free(s);
            return rc;
        }
    }
    s->cfg.mesh_with = NULL;
    s->tick.cb = server_tick;
    s->tick.data = s;
    dc_timer_start(loop, &s->tick, SERVER_TICK_MS);
    dc_loop_set_before_sleep(loop, server_before_sleep, s);
    if (cfg->admit != NULL) {
        derp_admit_set_changed_cb(cfg->admit, server_allowed_keys_changed, s);
    }
    *out = s;
    return 0;
}

void derp_server_free(struct derp_server *s)
{
    if (s == NULL) {
        return;
    }
    derp__mesh_stop(s); /* no redials from here on */
    if (s->cfg.admit != NULL) {
        derp_admit_set_changed_cb(s->cfg.admit, NULL, NULL);
    }
    while (s->conns != NULL) {
        derp__conn_close(s->conns, false, "server shutting down");
    }
    s->dirty = NULL;
    server_before_sleep(s->loop, s);
    dc_timer_stop(s->loop, &s->tick);
    dc_timer_stop(s->loop, &s->drain_timer);
    if (s->listen_io.fd >= 0) {
        dc_io_stop(s->loop, &s->listen_io);
        close(s->listen_io.fd);
    }
    dc_loop_set_before_sleep(s->loop, NULL, NULL);
    derp__registry_deinit(&s->reg);
    derp__limits_deinit(s);
    derp__pool_deinit(&s->pool);
    sodium_memzero(&s->cfg.key, sizeof(s->cfg.key));
    sodium_memzero(s->cfg.mesh_key, sizeof(s->cfg.mesh_key));
    free(s);
}

uint16_t derp_server_port(const struct derp_server *s)
{
    return s->port;
}

const struct derp_server_stats *derp_server_stats(const struct derp_server *s)
{
    return &s->stats;
}

static void drain_timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct derp_server *s = t->data;
    dc_log(DC_LOG_INFO, "derp", "drain finished: closing %llu connections",
           (unsigned long long)s->stats.conns_current);
    derp__mesh_stop(s);
    server_before_sleep(loop, s); /* last flush */
    while (s->conns != NULL) {
        derp__conn_close(s->conns, false, "server restarting");
    }
    if (s->drain_done != NULL) {
        s->drain_done(loop, s->drain_data);
    }
}

void derp_server_drain(struct derp_server *s, void (*done)(struct dc_loop *, void *), void *data)
{
    if (s->is_draining) {
        return;
    }
    s->is_draining = true;
    s->drain_done = done;
    s->drain_data = data;
    if (s->listen_io.fd >= 0) {
        dc_io_stop(s->loop, &s->listen_io);
        close(s->listen_io.fd);
        s->listen_io.fd = -1;
    }
    uint8_t frame[DERP_RESTARTING_FRAME_LEN];
    derp_frame_restarting_encode(frame, (uint32_t)cfg_or(s->cfg.restart_reconnect_ms, 1000),
                                 (uint32_t)cfg_or(s->cfg.restart_try_for_ms, 60000));
    uint64_t n = 0;
    for (struct derp_conn *c = s->conns; c != NULL; c = c->next) {
        if (c->state == DERP_CONN_ACTIVE) {
            derp__conn_send(c, frame, sizeof(frame));
            n++;
        }
    }
    uint64_t drain = cfg_or(s->cfg.drain_ms, 2000);
    dc_log(DC_LOG_INFO, "derp", "draining: sent Restarting to %llu clients, closing in %llu ms",
           (unsigned long long)n, (unsigned long long)drain);
    s->drain_timer.cb = drain_timer_cb;
    s->drain_timer.data = s;
    dc_timer_start(s->loop, &s->drain_timer, drain);
}
