/* derp_mesh: this relay as a client of the other relays of its region.
 *
 * For every peer URL (--mesh-with, fixed; --mesh-peers-file, replaced at run
 * time by derp__mesh_set_peers) the relay keeps one outbound DERP connection,
 * logged in with its own server key and the shared mesh key, and sends
 * WatchConns. The peer answers with PeerPresent for each of its clients and
 * PeerGone as they leave: those keys become forwarders, so a local client's
 * packet for them goes out as ForwardPacket on that connection. A packet
 * that arrived by ForwardPacket is only ever delivered locally, so packets
 * never loop. A dropped connection forgets its clients and is redialled with
 * capped, jittered backoff. Names are resolved with getaddrinfo_a so the
 * loop never blocks on DNS.
 *
 * Peers live in slots that are allocated once and never move or get freed
 * before derp__mesh_stop: forwarders and connections (derp_conn.mesh_peer)
 * point at them, so a removed peer's slot is only marked unused, and it is
 * reused only once its timer is stopped and no DNS lookup writes into it. */
#include "internal.h"

#include "bytes.h"
#include "derp_client.h"
#include "derp_key.h"
#include "http.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MESH_BACKOFF_MIN_MS 500
#define MESH_BACKOFF_MAX_MS 10000
#define MESH_DNS_POLL_MS    20
#define MESH_FWD_BUCKETS    1024u

/* Peers that may announce one key at the same time (a client moving between
 * replicas, or connected to two): derper keeps them all (multiForwarder) and
 * forwards through the one that announced it first. Past this many, later
 * announcements are ignored until one leaves. Our limit. */
#define MESH_FWD_MAX_PEERS 4

struct mesh_fwd {
    uint8_t key[DERP_KEY_LEN];
    struct derp_mesh_peer *peers[MESH_FWD_MAX_PEERS]; /* borrowed; in announcement order */
    uint8_t npeers;                                   /* >= 1 while in the table */
    struct mesh_fwd *next;
};

struct derp_mesh_peer {
    struct derp_mesh *mesh; /* borrowed */
    char url[DERP_MESH_URL_MAX + 1];
    char host[256];
    char path[256];
    uint16_t port;
    bool is_tls;
    bool is_in_use;         /* a listed peer; false: a free (or still resolving) slot */
    bool is_static;         /* from --mesh-with: set_peers never removes it */
    bool is_listed;         /* in the latest derp__mesh_set_peers list */
    bool is_self;           /* the URL reached this very relay: never redialled */
    struct derp_conn *conn; /* borrowed; current connection or NULL */
    struct dc_timer timer;  /* redial backoff, or DNS polling */
    uint32_t backoff_ms;
    bool is_resolving;
    struct gaicb gai;
    struct addrinfo hints;
    char port_text[8];
    uint8_t server_key[DERP_KEY_LEN];
};

struct derp_mesh {
    struct derp_server *srv; /* borrowed */
    /* owned slots, allocated on first use; stable until derp__mesh_stop */
    struct derp_mesh_peer *slots[DERP_MESH_MAX_PEERS];
    size_t nslots;                          /* slots allocated */
    struct mesh_fwd *fwd[MESH_FWD_BUCKETS]; /* owned chains */
    uint8_t hash_key[16];
    SSL_CTX *tls_ctx; /* owned; NULL until a https peer is dialled */
    bool is_stopping; /* derp__mesh_stop runs: links close without PeerGone */
};

static void mesh_dial(struct derp_mesh_peer *p);

/* ---- forwarders ---- */

static struct mesh_fwd **fwd_slot(struct derp_mesh *m, const uint8_t key[static DERP_KEY_LEN])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, DERP_KEY_LEN, m->hash_key);
    uint32_t v;
    memcpy(&v, h, sizeof(v));
    struct mesh_fwd **pp = &m->fwd[v & (MESH_FWD_BUCKETS - 1)];
    while (*pp != NULL && memcmp((*pp)->key, key, DERP_KEY_LEN) != 0) {
        pp = &(*pp)->next;
    }
    return pp;
}

struct derp_mesh_peer *derp__mesh_forwarder(struct derp_server *s,
                                            const uint8_t key[static DERP_KEY_LEN])
{
    if (s->mesh == NULL) {
        return NULL;
    }
    struct mesh_fwd *f = *fwd_slot(s->mesh, key);
    return f != NULL && f->peers[0]->conn != NULL ? f->peers[0] : NULL; /* the first wins */
}

/* Removes p from f's peers; returns whether p was there. */
static bool fwd_drop_peer(struct mesh_fwd *f, const struct derp_mesh_peer *p)
{
    for (uint8_t i = 0; i < f->npeers; i++) {
        if (f->peers[i] == p) {
            memmove(&f->peers[i], &f->peers[i + 1], (size_t)(f->npeers - i - 1) * sizeof(p));
            f->npeers--;
            return true;
        }
    }
    return false;
}

static void fwd_add(struct derp_mesh_peer *p, const uint8_t key[static DERP_KEY_LEN])
{
    struct mesh_fwd **pp = fwd_slot(p->mesh, key);
    if (*pp != NULL) {
        struct mesh_fwd *f = *pp;
        for (uint8_t i = 0; i < f->npeers; i++) {
            if (f->peers[i] == p) {
                return; /* a repeat */
            }
        }
        if (f->npeers < MESH_FWD_MAX_PEERS) {
            f->peers[f->npeers++] = p; /* a second home: the first one keeps forwarding */
        }
        if (dc_log_debug_enabled("derp-mesh")) {
            char k[DERP_KEY_SHORT_LEN];
            derp_key_short(key, k);
            dc_log(DC_LOG_DEBUG, "derp-mesh",
                   "peer %s: client key=%s is also there; forwarding stays with %s", p->url, k,
                   f->peers[0]->url);
        }
        return;
    }
    struct mesh_fwd *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return;
    }
    memcpy(f->key, key, DERP_KEY_LEN);
    f->peers[0] = p;
    f->npeers = 1;
    *pp = f;
    if (dc_log_debug_enabled("derp-mesh")) {
        char k[DERP_KEY_SHORT_LEN];
        derp_key_short(key, k);
        dc_log(DC_LOG_DEBUG, "derp-mesh", "peer %s: client key=%s joined; forwarding to it", p->url,
               k);
    }
}

static void fwd_remove(struct derp_mesh_peer *p, const uint8_t key[static DERP_KEY_LEN])
{
    struct mesh_fwd **pp = fwd_slot(p->mesh, key);
    if (*pp == NULL || !fwd_drop_peer(*pp, p)) {
        return;
    }
    struct mesh_fwd *f = *pp;
    if (f->npeers > 0) { /* still reachable through another peer: no PeerGone */
        if (dc_log_debug_enabled("derp-mesh")) {
            char k[DERP_KEY_SHORT_LEN];
            derp_key_short(key, k);
            dc_log(DC_LOG_DEBUG, "derp-mesh", "peer %s: client key=%s left; still at %s", p->url, k,
                   f->peers[0]->url);
        }
        return;
    }
    *pp = f->next;
    free(f);
    if (dc_log_debug_enabled("derp-mesh")) {
        char k[DERP_KEY_SHORT_LEN];
        derp_key_short(key, k);
        dc_log(DC_LOG_DEBUG, "derp-mesh", "peer %s: client key=%s left", p->url, k);
    }
    derp__registry_remote_gone(p->mesh->srv, key);
}

/* Drops every forwarder through p (NULL: all). With is_notify, local
 * receivers of those keys hear PeerGone (derper does so on a broken link). */
static size_t fwd_forget(struct derp_mesh *m, const struct derp_mesh_peer *p, bool is_notify)
{
    size_t n = 0;
    for (uint32_t b = 0; b < MESH_FWD_BUCKETS; b++) {
        struct mesh_fwd **pp = &m->fwd[b];
        while (*pp != NULL) {
            struct mesh_fwd *f = *pp;
            bool dropped = p == NULL ? (f->npeers = 0, true) : fwd_drop_peer(f, p);
            n += dropped ? 1 : 0;
            if (f->npeers > 0) {
                pp = &f->next; /* still reachable through another peer */
                continue;
            }
            *pp = f->next;
            if (is_notify) {
                derp__registry_remote_gone(m->srv, f->key);
            }
            free(f);
        }
    }
    return n;
}

struct derp_conn *derp__mesh_peer_conn(const struct derp_mesh_peer *p)
{
    return p->conn;
}

bool derp__mesh_forward(struct derp_mesh_peer *p, const uint8_t src[static DERP_KEY_LEN],
                        const uint8_t dst[static DERP_KEY_LEN], const uint8_t *pkt, uint32_t len)
{
    struct derp_conn *c = p->conn;
    struct derp_server *s = p->mesh->srv;
    if (c == NULL || c->state != DERP_CONN_MESH_ACTIVE) {
        s->stats.drop_unknown_dest++;
        return true;
    }
    unsigned cap = c->q_data.cap != 0 ? c->q_data.cap : DERP_SEND_QUEUE_DEPTH;
    if (c->wants_write && c->q_data.count == cap) {
        return false; /* as derper's synchronous write: the sender waits */
    }
    struct derp_pkt *f = derp__pkt_get(&s->pool, DERP_FRAME_HDR_LEN + 2 * DERP_KEY_LEN + len);
    if (f == NULL) {
        s->stats.drop_write_error++;
        return true;
    }
    derp_frame_header_encode(f->data, DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + len);
    memcpy(f->data + DERP_FRAME_HDR_LEN, src, DERP_KEY_LEN);
    memcpy(f->data + DERP_FRAME_HDR_LEN + DERP_KEY_LEN, dst, DERP_KEY_LEN);
    memcpy(f->data + DERP_FRAME_HDR_LEN + 2 * DERP_KEY_LEN, pkt, len);
    f->len = DERP_FRAME_HDR_LEN + 2 * DERP_KEY_LEN + len;
    s->stats.packets_forwarded_out++;
    derp__conn_enqueue(c, &c->q_data, f);
    return true;
}

/* ---- dialling ---- */

static void mesh_schedule_redial(struct derp_mesh_peer *p)
{
    if (p->is_self || !p->is_in_use) {
        return;
    }
    uint32_t base = p->backoff_ms == 0 ? MESH_BACKOFF_MIN_MS : p->backoff_ms;
    uint32_t jitter = randombytes_uniform(base / 2 + 1);
    p->backoff_ms = base * 2 > MESH_BACKOFF_MAX_MS ? MESH_BACKOFF_MAX_MS : base * 2;
    dc_timer_start(p->mesh->srv->loop, &p->timer, base / 2 + jitter + base / 4);
}

static void mesh_fail(struct derp_mesh_peer *p, const char *why)
{
    dc_log(DC_LOG_INFO, "derp-mesh", "peer %s: %s; redialling", p->url, why);
    mesh_schedule_redial(p);
}

static int mesh_tls_ctx(struct derp_mesh *m)
{
    if (m->tls_ctx != NULL) {
        return 0;
    }
    m->tls_ctx = SSL_CTX_new(TLS_client_method());
    if (m->tls_ctx == NULL) {
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(m->tls_ctx, TLS1_2_VERSION);
    if (m->srv->cfg.mesh_insecure) {
        SSL_CTX_set_verify(m->tls_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(m->tls_ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_default_verify_paths(m->tls_ctx);
    }
    return 0;
}

static int mesh_start_tls(struct derp_mesh_peer *p, struct derp_conn *c)
{
    if (mesh_tls_ctx(p->mesh) < 0) {
        return -ENOMEM;
    }
    c->ssl = SSL_new(p->mesh->tls_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->io.fd) != 1) {
        return -ENOMEM;
    }
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, p->host) != 1) {
        SSL_set_tlsext_host_name(c->ssl, p->host);
        X509_VERIFY_PARAM_set1_host(vp, p->host, 0);
    }
    SSL_set_connect_state(c->ssl);
    c->state = DERP_CONN_MESH_TLS;
    return 0;
}

static void mesh_send_upgrade(struct derp_mesh_peer *p, struct derp_conn *c)
{
    char req[768];
    bool v6 = strchr(p->host, ':') != NULL;
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: derp-relay-mesh\r\n"
                     "Connection: Upgrade\r\nUpgrade: DERP\r\n\r\n",
                     p->path, v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        derp__conn_close(c, true, "upgrade request too long");
        return;
    }
    c->state = DERP_CONN_MESH_HTTP;
    derp__conn_send(c, req, (size_t)n);
    if (dc_io_start(p->mesh->srv->loop, &c->io, DC_IO_READ) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

static void mesh_tls_step(struct derp_mesh_peer *p, struct derp_conn *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        mesh_send_upgrade(p, c);
        return;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        uint32_t ev = e == SSL_ERROR_WANT_READ ? DC_IO_READ : DC_IO_WRITE;
        if (dc_io_start(p->mesh->srv->loop, &c->io, ev) < 0) {
            derp__conn_close(c, true, "epoll_ctl failed");
        }
        return;
    }
    char why[200];
    long vr = SSL_get_verify_result(c->ssl);
    snprintf(why, sizeof(why), "TLS handshake failed: %s",
             vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "handshake error");
    ERR_clear_error();
    derp__conn_close(c, true, why);
}

void derp__mesh_conn_io(struct derp_conn *c, uint32_t events)
{
    struct derp_mesh_peer *p = c->mesh_peer;
    if (c->state == DERP_CONN_MESH_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0 || (events & DC_IO_ERROR)) {
            char why[128];
            snprintf(why, sizeof(why), "connect: %s", strerror(soerr != 0 ? soerr : ECONNREFUSED));
            derp__conn_close(c, true, why);
            return;
        }
        if (p->is_tls) {
            if (mesh_start_tls(p, c) < 0) {
                derp__conn_close(c, true, "TLS setup failed");
                return;
            }
        } else {
            mesh_send_upgrade(p, c);
            return;
        }
    }
    mesh_tls_step(p, c);
}

static void mesh_connect(struct derp_mesh_peer *p, const struct addrinfo *res)
{
    struct derp_server *s = p->mesh->srv;
    int fd = -1;
    int rc = -EHOSTUNREACH;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    if (rc < 0) {
        mesh_fail(p, dc_strerror(rc));
        return;
    }
    struct derp_conn *c = derp__conn_alloc(s, fd);
    if (c == NULL) {
        close(fd);
        mesh_fail(p, "out of memory");
        return;
    }
    c->mesh_peer = p;
    c->ctl.max = 16u << 20;
    if (derp__queue_deepen(&c->q_data, DERP_MESH_QUEUE_DEPTH) < 0) {
        /* the inline 32 still work: only bursts suffer */
    }
    c->state = DERP_CONN_MESH_CONNECTING;
    p->conn = c;
    s->stats.mesh_dials++;
    if (dc_io_start(s->loop, &c->io, DC_IO_WRITE) < 0) {
        derp__conn_close(c, true, "epoll_ctl failed");
    }
}

static void mesh_dns_poll(struct derp_mesh_peer *p)
{
    int e = gai_error(&p->gai);
    if (e == EAI_INPROGRESS) {
        dc_timer_start(p->mesh->srv->loop, &p->timer, MESH_DNS_POLL_MS);
        return;
    }
    p->is_resolving = false;
    if (!p->is_in_use) { /* removed while its lookup could not be cancelled */
        if (e == 0) {
            freeaddrinfo(p->gai.ar_result);
        }
        p->gai.ar_result = NULL;
        return; /* the slot is free now */
    }
    if (e != 0) {
        char why[300];
        snprintf(why, sizeof(why), "dns: cannot resolve `%s': %s", p->host, gai_strerror(e));
        mesh_fail(p, why);
        return;
    }
    mesh_connect(p, p->gai.ar_result);
    freeaddrinfo(p->gai.ar_result);
    p->gai.ar_result = NULL;
}

static void mesh_timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct derp_mesh_peer *p = t->data;
    if (p->is_resolving) {
        mesh_dns_poll(p);
    } else if (p->conn == NULL && p->is_in_use && !p->is_self) {
        mesh_dial(p);
    }
}

static void mesh_dial(struct derp_mesh_peer *p)
{
    memset(&p->hints, 0, sizeof(p->hints));
    p->hints.ai_socktype = SOCK_STREAM;
    p->hints.ai_flags = AI_NUMERICHOST;
    struct addrinfo *res = NULL;
    if (getaddrinfo(p->host, p->port_text, &p->hints, &res) == 0) {
        mesh_connect(p, res); /* an IP literal: no lookup needed */
        freeaddrinfo(res);
        return;
    }
    p->hints.ai_flags = 0;
    memset(&p->gai, 0, sizeof(p->gai));
    p->gai.ar_name = p->host;
    p->gai.ar_service = p->port_text;
    p->gai.ar_request = &p->hints;
    struct gaicb *list[1] = {&p->gai};
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        mesh_fail(p, "dns: cannot start a lookup");
        return;
    }
    p->is_resolving = true;
    dc_timer_start(p->mesh->srv->loop, &p->timer, MESH_DNS_POLL_MS);
}

/* ---- the peer's frames ---- */

static void mesh_send_client_info(struct derp_mesh_peer *p, struct derp_conn *c)
{
    struct derp_server *s = p->mesh->srv;
    struct derp_client_info ci = {
        .version = DERP_PROTOCOL_VERSION, .can_ack_pings = true, .has_mesh_key = true};
    memcpy(ci.mesh_key, s->cfg.mesh_key, DERP_MESH_KEY_LEN);
    char json[DERP_INFO_JSON_MAX];
    int n = derp_client_info_format(&ci, json, sizeof(json));
    sodium_memzero(ci.mesh_key, sizeof(ci.mesh_key));
    uint8_t frame[DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_BOX_SEAL_OVERHEAD + DERP_INFO_JSON_MAX];
    size_t boxed = n > 0 ? derp_box_seal(&s->cfg.key, p->server_key, (const uint8_t *)json,
                                         (size_t)n, frame + DERP_FRAME_HDR_LEN + DERP_KEY_LEN)
                         : 0;
    sodium_memzero(json, sizeof(json));
    if (boxed == 0) {
        derp__conn_close(c, true, "cannot seal ClientInfo");
        return;
    }
    derp_frame_header_encode(frame, DERP_FRAME_CLIENT_INFO, (uint32_t)(DERP_KEY_LEN + boxed));
    memcpy(frame + DERP_FRAME_HDR_LEN, s->cfg.key.pub, DERP_KEY_LEN);
    derp__conn_send(c, frame, DERP_FRAME_HDR_LEN + DERP_KEY_LEN + boxed);
}

static void mesh_on_server_key(struct derp_mesh_peer *p, struct derp_conn *c,
                               const struct derp_frame *f)
{
    struct derp_server *s = p->mesh->srv;
    if (derp_frame_server_key_decode(f->payload, f->len, p->server_key) < 0) {
        derp__conn_close(c, true, "invalid server greeting");
        return;
    }
    if (memcmp(p->server_key, s->cfg.key.pub, DERP_KEY_LEN) == 0) {
        p->is_self = true;
        dc_log(DC_LOG_INFO, "derp-mesh", "peer %s is this relay itself: skipping it", p->url);
        derp__conn_close(c, false, "mesh peer is this relay");
        return;
    }
    mesh_send_client_info(p, c);
}

static void mesh_on_server_info(struct derp_mesh_peer *p, struct derp_conn *c,
                                const struct derp_frame *f)
{
    struct derp_server *s = p->mesh->srv;
    uint8_t msg[DERP_INFO_JSON_MAX];
    if (f->len > sizeof(msg) + DERP_BOX_SEAL_OVERHEAD ||
        derp_box_open(&s->cfg.key, p->server_key, f->payload, f->len, msg) < 0) {
        derp__conn_close(c, true, "ServerInfo does not open");
        return;
    }
    c->state = DERP_CONN_MESH_ACTIVE;
    p->backoff_ms = 0;
    s->stats.mesh_peers_up++;
    uint8_t watch[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(watch, DERP_FRAME_WATCH_CONNS, 0);
    derp__conn_send(c, watch, sizeof(watch));
    char k[DERP_KEY_SHORT_LEN];
    derp_key_short(p->server_key, k);
    dc_log(DC_LOG_INFO, "derp-mesh", "peer %s up key=%s: watching its clients", p->url, k);
}

static void mesh_on_frame(struct derp_mesh_peer *p, struct derp_conn *c, const struct derp_frame *f)
{
    struct derp_server *s = p->mesh->srv;
    if (c->state == DERP_CONN_MESH_LOGIN) {
        if (f->type == DERP_FRAME_SERVER_KEY) {
            mesh_on_server_key(p, c, f);
        } else if (f->type == DERP_FRAME_SERVER_INFO) {
            mesh_on_server_info(p, c, f);
        } else {
            derp__conn_close(c, true, "unexpected frame during login");
        }
        return;
    }
    switch (f->type) {
    case DERP_FRAME_PEER_PRESENT:
        if (f->len >= DERP_KEY_LEN && memcmp(f->payload, s->cfg.key.pub, DERP_KEY_LEN) != 0) {
            fwd_add(p, f->payload);
        }
        break;
    case DERP_FRAME_PEER_GONE:
        if (f->len >= DERP_KEY_LEN) {
            fwd_remove(p, f->payload);
        }
        break;
    case DERP_FRAME_PING:
        if (f->len >= DERP_PING_LEN) {
            uint8_t pong[DERP_PONG_FRAME_LEN];
            derp_frame_pong_encode(pong, f->payload);
            derp__conn_send(c, pong, sizeof(pong));
        }
        break;
    case DERP_FRAME_RESTARTING:
        dc_log(DC_LOG_INFO, "derp-mesh", "peer %s is restarting", p->url);
        break;
    default:
        break; /* KeepAlive, Health, and anything newer */
    }
}

static size_t mesh_http_response(struct derp_conn *c, const uint8_t *buf, size_t len)
{
    struct http_response resp;
    char err[DC_ERR_LEN];
    ssize_t n = http_response_parse((const char *)buf, len, &resp, err);
    if (n == 0) {
        return 0;
    }
    if (n < 0 || resp.status != 101) {
        char why[DC_ERR_LEN + 32];
        if (n < 0) {
            snprintf(why, sizeof(why), "bad HTTP response: %s", err);
        } else {
            snprintf(why, sizeof(why), "HTTP status %d, want 101", resp.status);
        }
        derp__conn_close(c, true, why);
        return len;
    }
    c->state = DERP_CONN_MESH_LOGIN;
    c->reader.is_client = true;
    return (size_t)n;
}

size_t derp__mesh_conn_dispatch(struct derp_conn *c, const uint8_t *buf, size_t len)
{
    struct derp_mesh_peer *p = c->mesh_peer;
    size_t off = 0;
    if (c->state == DERP_CONN_MESH_HTTP) {
        off = mesh_http_response(c, buf, len);
        if (c->state != DERP_CONN_MESH_LOGIN) {
            return off;
        }
    }
    while (c->state == DERP_CONN_MESH_LOGIN || c->state == DERP_CONN_MESH_ACTIVE) {
        struct derp_frame f;
        bool has_frame;
        const char *why = NULL;
        long n = derp_frame_next(&c->reader, buf + off, len - off, &f, &has_frame, &why);
        if (n < 0) {
            derp__conn_close(c, true, why);
            return off;
        }
        if (n == 0) {
            break;
        }
        off += (size_t)n;
        if (has_frame) {
            mesh_on_frame(p, c, &f);
        }
    }
    return off;
}

void derp__mesh_conn_closed(struct derp_conn *c)
{
    struct derp_mesh_peer *p = c->mesh_peer;
    if (p == NULL || p->conn != c) {
        return;
    }
    struct derp_server *s = p->mesh->srv;
    if (c->state == DERP_CONN_MESH_ACTIVE) {
        s->stats.mesh_peers_up--;
    }
    p->conn = NULL;
    size_t n = fwd_forget(p->mesh, p, !p->mesh->is_stopping);
    if (n > 0) {
        dc_log(DC_LOG_INFO, "derp-mesh", "peer %s down: forgot its %zu clients", p->url, n);
    }
    mesh_schedule_redial(p); /* not for this relay itself, nor a removed peer */
}

/* ---- the peer set ---- */

static bool is_self_url(const struct derp_server *s, const struct derp_mesh_peer *p)
{
    if (s->cfg.self_host != NULL && strcmp(s->cfg.self_host, p->host) == 0) {
        return true;
    }
    return (strcmp(p->host, "127.0.0.1") == 0 || strcmp(p->host, "localhost") == 0 ||
            strcmp(p->host, "::1") == 0) &&
           p->port == s->port;
}

/* A parsed peer URL: what makes two list entries the same peer. */
struct mesh_target {
    bool is_tls;
    uint16_t port;
    char host[256];
    char path[256];
};

static int target_parse(const char *url, struct mesh_target *t, char *err)
{
    if (strlen(url) > DERP_MESH_URL_MAX) {
        return dc_err_set(err, -EINVAL, "url: longer than %d bytes", DERP_MESH_URL_MAX);
    }
    return derp_url_parse(url, &t->is_tls, t->host, sizeof(t->host), &t->port, t->path,
                          sizeof(t->path), err);
}

static struct derp_mesh_peer *mesh_find(struct derp_mesh *m, const struct mesh_target *t)
{
    for (size_t i = 0; i < m->nslots; i++) {
        struct derp_mesh_peer *p = m->slots[i];
        if (p->is_in_use && p->is_tls == t->is_tls && p->port == t->port &&
            strcasecmp(p->host, t->host) == 0 && strcmp(p->path, t->path) == 0) {
            return p;
        }
    }
    return NULL;
}

/* A free slot (unused, timer stopped, no lookup running), or a new one;
 * NULL past DERP_MESH_MAX_PEERS or out of memory. */
static struct derp_mesh_peer *mesh_slot(struct derp_mesh *m)
{
    for (size_t i = 0; i < m->nslots; i++) {
        struct derp_mesh_peer *p = m->slots[i];
        if (!p->is_in_use && !p->is_resolving && !p->timer.is_active && p->conn == NULL) {
            return p;
        }
    }
    if (m->nslots == DERP_MESH_MAX_PEERS) {
        return NULL;
    }
    struct derp_mesh_peer *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        m->slots[m->nslots++] = p;
    }
    return p;
}

/* Takes a slot for url (already parsed into t) and dials it, unless it is
 * this relay's own URL. Returns the peer, or NULL when no slot is left. */
static struct derp_mesh_peer *mesh_add(struct derp_mesh *m, const char *url,
                                       const struct mesh_target *t, bool is_static)
{
    struct derp_mesh_peer *p = mesh_slot(m);
    if (p == NULL) {
        return NULL;
    }
    memset(p, 0, sizeof(*p));
    p->mesh = m;
    snprintf(p->url, sizeof(p->url), "%s", url);
    memcpy(p->host, t->host, sizeof(p->host));
    memcpy(p->path, t->path, sizeof(p->path));
    p->port = t->port;
    p->is_tls = t->is_tls;
    p->is_in_use = true;
    p->is_static = is_static;
    p->is_listed = !is_static;
    snprintf(p->port_text, sizeof(p->port_text), "%u", p->port);
    p->timer.cb = mesh_timer_cb;
    p->timer.data = p;
    if (is_self_url(m->srv, p)) {
        p->is_self = true;
        dc_log(DC_LOG_INFO, "derp-mesh", "skipping %s: it is this relay", url);
        return p;
    }
    dc_log(DC_LOG_INFO, "derp-mesh", "meshing with %s", url);
    mesh_dial(p);
    return p;
}

/* Stops p for good: no redial, no lookup, link closed, forwarders gone
 * (their local receivers hear PeerGone). The slot stays allocated. */
static void mesh_remove(struct derp_mesh *m, struct derp_mesh_peer *p)
{
    struct derp_server *s = m->srv;
    p->is_in_use = false; /* from here on nothing redials it */
    p->is_listed = false;
    dc_timer_stop(s->loop, &p->timer);
    bool was_up = p->conn != NULL && p->conn->state == DERP_CONN_MESH_ACTIVE;
    if (p->conn != NULL) {
        derp__conn_close(p->conn, false, "mesh peer removed from the list");
    }
    fwd_forget(m, p, true); /* none left normally: closing the link forgot them */
    if (p->is_resolving) {
        int rc = gai_cancel(&p->gai);
        if (rc == EAI_NOTCANCELED) {
            /* A resolver thread still writes into the slot: poll until it is
             * done (mesh_dns_poll frees the answer); the slot stays busy. */
            dc_timer_start(s->loop, &p->timer, MESH_DNS_POLL_MS);
        } else {
            if (gai_error(&p->gai) == 0 && p->gai.ar_result != NULL) {
                freeaddrinfo(p->gai.ar_result);
            }
            p->gai.ar_result = NULL;
            p->is_resolving = false;
        }
    }
    dc_log(DC_LOG_INFO, "derp-mesh", "peer %s removed from the mesh list: %s", p->url,
           p->is_self ? "it was this relay"
           : was_up   ? "link closed"
                      : "dialling stopped");
}

static struct derp_mesh *mesh_new(struct derp_server *s)
{
    struct derp_mesh *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->srv = s;
    randombytes_buf(m->hash_key, sizeof(m->hash_key));
    return m;
}

int derp__mesh_start(struct derp_server *s, const char *urls, char *err)
{
    if (!s->cfg.has_mesh_key) {
        return dc_err_set(err, -EINVAL, "--mesh-with needs --mesh-key-file");
    }
    char list[4096];
    if (snprintf(list, sizeof(list), "%s", urls) >= (int)sizeof(list)) {
        return dc_err_set(err, -EINVAL, "--mesh-with: list too long");
    }
    /* Check every entry first: a bad list starts nothing. */
    char check[sizeof(list)];
    memcpy(check, list, sizeof(list));
    size_t n = 0;
    char *save = NULL;
    for (char *u = strtok_r(check, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        struct mesh_target t;
        int rc = target_parse(u, &t, err);
        if (rc < 0) {
            return rc;
        }
        if (++n > DERP_MESH_MAX_PEERS) {
            return dc_err_set(err, -EINVAL, "--mesh-with: more than %d peers", DERP_MESH_MAX_PEERS);
        }
    }
    struct derp_mesh *m = s->mesh != NULL ? s->mesh : mesh_new(s);
    if (m == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    s->mesh = m;
    save = NULL;
    for (char *u = strtok_r(list, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        struct mesh_target t;
        if (target_parse(u, &t, NULL) < 0) {
            continue; /* checked above */
        }
        struct derp_mesh_peer *p = mesh_find(m, &t);
        if (p != NULL) {
            p->is_static = true;
        } else if (mesh_add(m, u, &t, true) == NULL) {
            return dc_err_set(err, -ENOMEM, "out of memory");
        }
    }
    return 0;
}

/* Marks the peers listed in urls; returns how many of the URLs parse. */
static size_t mesh_mark_listed(struct derp_mesh *m, const char *const *urls, size_t n)
{
    size_t good = 0;
    for (size_t i = 0; i < n; i++) {
        struct mesh_target t;
        if (target_parse(urls[i], &t, NULL) < 0) {
            continue;
        }
        good++;
        struct derp_mesh_peer *p = mesh_find(m, &t);
        if (p != NULL) {
            p->is_listed = true;
        }
    }
    return good;
}

int derp__mesh_set_peers(struct derp_server *s, const char *const *urls, size_t n, char *err)
{
    if (s->is_draining) {
        return 0; /* the drain stops the mesh; nothing is dialled any more */
    }
    if (!s->cfg.has_mesh_key) {
        return dc_err_set(err, -EINVAL, "--mesh-peers-file needs --mesh-key-file");
    }
    if (s->mesh == NULL) {
        s->mesh = mesh_new(s);
        if (s->mesh == NULL) {
            return dc_err_set(err, -ENOMEM, "out of memory");
        }
    }
    struct derp_mesh *m = s->mesh;
    for (size_t i = 0; i < m->nslots; i++) {
        m->slots[i]->is_listed = false;
    }
    mesh_mark_listed(m, urls, n);
    size_t removed = 0, added = 0, kept = 0;
    for (size_t i = 0; i < m->nslots; i++) {
        struct derp_mesh_peer *p = m->slots[i];
        if (p->is_in_use && !p->is_static && !p->is_listed) {
            removed += p->is_self ? 0 : 1;
            mesh_remove(m, p); /* first, so its slot may serve a new peer */
        } else if (p->is_in_use && p->is_listed && !p->is_self) {
            kept++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct mesh_target t;
        char why[DC_ERR_LEN];
        if (target_parse(urls[i], &t, why) < 0) {
            dc_log(DC_LOG_WARN, "derp-mesh", "ignoring mesh peer: %s", why);
            continue;
        }
        struct derp_mesh_peer *p = mesh_find(m, &t);
        if (p != NULL) {
            p->is_listed = true; /* unchanged, or a repeat of an entry just added */
            continue;
        }
        p = mesh_add(m, urls[i], &t, false);
        if (p == NULL) {
            dc_log(DC_LOG_WARN, "derp-mesh", "ignoring mesh peer `%s': more than %d peers", urls[i],
                   DERP_MESH_MAX_PEERS);
            continue;
        }
        added += p->is_self ? 0 : 1; /* its own URL: not a peer */
    }
    dc_log(added + removed > 0 ? DC_LOG_INFO : DC_LOG_DEBUG, "derp-mesh",
           "mesh peer list set: %zu added, %zu removed, %zu unchanged", added, removed, kept);
    return 0;
}

size_t derp_mesh_peers_parse(char *text, size_t len, const char **urls, size_t max,
                             derp_mesh_bad_line_cb bad, void *data)
{
    size_t n = 0;
    unsigned line_no = 0;
    size_t off = 0;
    while (off < len) {
        line_no++;
        char *line = text + off;
        char *nl = memchr(line, '\n', len - off);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - off;
        off += line_len + (nl != NULL ? 1 : 0);
        char *hash = memchr(line, '#', line_len);
        if (hash != NULL) {
            line_len = (size_t)(hash - line);
        }
        while (line_len > 0 && (line[line_len - 1] == ' ' || line[line_len - 1] == '\t' ||
                                line[line_len - 1] == '\r')) {
            line_len--;
        }
        while (line_len > 0 && (line[0] == ' ' || line[0] == '\t')) {
            line++;
            line_len--;
        }
        if (line_len == 0) {
            continue;
        }
        char err[DC_ERR_LEN];
        bool is_ok = true;
        for (size_t i = 0; i < line_len && is_ok; i++) {
            unsigned char ch = (unsigned char)line[i];
            if (ch == ' ' || ch == '\t') {
                dc_err_set(err, -EINVAL, "one URL per line: blank inside `%.*s'", (int)line_len,
                           line);
                is_ok = false;
            } else if (ch < 0x20 || ch == 0x7f) {
                dc_err_set(err, -EINVAL, "control byte 0x%02x in the line", ch);
                is_ok = false;
            }
        }
        struct mesh_target t;
        char saved = line[line_len]; /* '\n', '#', a blank, or the final NUL */
        line[line_len] = '\0';
        if (is_ok && target_parse(line, &t, err) < 0) {
            is_ok = false;
        }
        if (is_ok && n == max) {
            dc_err_set(err, -EINVAL, "more than %zu peers: `%s'", max, line);
            is_ok = false;
        }
        if (!is_ok) {
            line[line_len] = saved;
            if (bad != NULL) {
                bad(data, line_no, err);
            }
            continue;
        }
        urls[n++] = line;
    }
    return n;
}

void derp__mesh_stop(struct derp_server *s)
{
    struct derp_mesh *m = s->mesh;
    if (m == NULL) {
        return;
    }
    m->is_stopping = true;
    for (size_t i = 0; i < m->nslots; i++) {
        struct derp_mesh_peer *p = m->slots[i];
        p->is_in_use = false; /* no redial */
        dc_timer_stop(s->loop, &p->timer);
        if (p->is_resolving) {
            if (gai_cancel(&p->gai) == EAI_NOTCANCELED) {
                const struct gaicb *list[1] = {&p->gai};
                struct timespec ts = {.tv_sec = 5};
                gai_suspend(list, 1, &ts); /* shutting down: the slot is freed next */
            }
            if (gai_error(&p->gai) == 0 && p->gai.ar_result != NULL) {
                freeaddrinfo(p->gai.ar_result);
            }
        }
        if (p->conn != NULL) {
            derp__conn_close(p->conn, false, "mesh stopping");
        }
    }
    fwd_forget(m, NULL, false); /* every connection closes next: no PeerGone */
    s->mesh = NULL;             /* before the slots go: closing connections must not find them */
    for (size_t i = 0; i < m->nslots; i++) {
        free(m->slots[i]);
    }
    SSL_CTX_free(m->tls_ctx);
    free(m);
}

int derp_server_set_mesh_peers(struct derp_server *s, const char *const *urls, size_t n, char *err)
{
    return derp__mesh_set_peers(s, urls, n, err);
}
