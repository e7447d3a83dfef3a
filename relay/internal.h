/* internal: structures and helpers shared by the server's files
 * (derp_server.c, derp_server_http.c, derp_registry.c, derp_pool.c).
 * Not part of any public contract: names carry the derp__ prefix. */
#ifndef DC_RELAY_INTERNAL_H
#define DC_RELAY_INTERNAL_H

#include "buf.h"
#include "derp_frame.h"
#include "derp_proto.h"
#include "derp_rate.h"
#include "derp_server.h"
#include "loop.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- packet pool: recycled buffers, so the hot path never mallocs ---- */

/* Buffer size classes (bytes of frame data). The read buffer holds a whole
 * ClientInfo frame (256 KiB) plus its header, so every legal frame fits. */
#define DERP_POOL_SMALL   2048u
#define DERP_POOL_MEDIUM  16384u
#define DERP_POOL_LARGE   (DERP_FRAME_HDR_LEN + DERP_MAX_FRAME_LEN)
#define DERP_RBUF_CAP     (DERP_FRAME_HDR_LEN + DERP_MAX_CLIENT_INFO_LEN + 64u)
#define DERP_POOL_CLASSES 4

/* A frame buffer from the pool. */
struct derp_pkt {
    struct derp_pkt *next; /* free-list link while pooled */
    uint32_t len;          /* bytes of data in use */
    uint32_t cap;          /* bytes of data allocated (its class size) */
    uint8_t cls;           /* size class index */
    uint8_t data[];        /* frame bytes: header, key, packet */
};

struct derp_pool {
    struct derp_pkt *free[DERP_POOL_CLASSES]; /* owned free lists */
    uint32_t nfree[DERP_POOL_CLASSES];        /* lengths of the free lists */
    uint64_t live;                            /* buffers handed out */
};

/* Returns a buffer with cap >= len (len set to 0), or NULL when out of memory. */
struct derp_pkt *derp__pkt_get(struct derp_pool *pool, size_t len);
/* Returns a buffer to the pool (or frees it past the pool's cache size); NULL ok. */
void derp__pkt_put(struct derp_pool *pool, struct derp_pkt *p);
/* Frees every cached buffer. */
void derp__pool_deinit(struct derp_pool *pool);

/* ---- connections ---- */

enum derp_conn_state {
    DERP_CONN_TLS_HANDSHAKE, /* TLS server handshake in progress */
    DERP_CONN_HTTP,          /* reading the HTTP request head */
    DERP_CONN_LOGIN,         /* ServerKey sent; waiting for ClientInfo */
    DERP_CONN_ADMIT,         /* ClientInfo verified; waiting for the admission verdict
                                (not registered, socket not read) */
    DERP_CONN_ACTIVE,        /* logged in: relaying */
    DERP_CONN_HTTP_DONE,     /* a plain HTTP answer is queued; close once flushed */
    DERP_CONN_CLOSED,        /* closed; freed on the deferred pass */
    /* Outbound connections to mesh peers (this relay is the client): */
    DERP_CONN_MESH_CONNECTING, /* TCP connect in progress */
    DERP_CONN_MESH_TLS,        /* TLS client handshake in progress */
    DERP_CONN_MESH_HTTP,       /* upgrade request sent; waiting for 101 */
    DERP_CONN_MESH_LOGIN,      /* waiting for ServerKey, then ServerInfo */
    DERP_CONN_MESH_ACTIVE,     /* watching the peer's clients; forwarding to it */
};

struct derp_mesh;
struct derp_mesh_peer;

/* Packets queued on a mesh link: one connection carries what many clients
 * would each queue, so it gets a deeper queue than a client's 32. */
#define DERP_MESH_QUEUE_DEPTH 2048

/* A bounded FIFO of packets for one destination; full means drop the oldest.
 * The all-zero queue holds DERP_SEND_QUEUE_DEPTH packets in inline_slot. */
struct derp_queue {
    struct derp_pkt **big; /* owned slot array of cap entries, or NULL: inline */
    uint16_t cap;          /* 0 means DERP_SEND_QUEUE_DEPTH (inline) */
    uint16_t head;         /* index of the oldest */
    uint16_t count;        /* packets queued */
    struct derp_pkt *inline_slot[DERP_SEND_QUEUE_DEPTH]; /* owned packets */
};

struct derp_client_set;
struct derp_admit_req;
struct sockaddr_storage;

struct derp_conn {
    struct derp_server *srv; /* borrowed */
    struct dc_io io;         /* fd watch; io.fd is owned */
    SSL *ssl;                /* owned; NULL for plain TCP */
    enum derp_conn_state state;
    uint8_t ip16[16];                 /* peer IP, IPv4 as ::ffff:a.b.c.d */
    uint16_t port;                    /* peer port */
    uint64_t conn_num;                /* process-wide counter, for logs */
    uint64_t deadline_ms;             /* handshake deadline (before ACTIVE) */
    uint64_t stalled_since_ms;        /* output pending without progress since; 0 = none */
    uint64_t next_keepalive_ms;       /* when to send the next KeepAlive */
    uint8_t key[DERP_KEY_LEN];        /* client's public key (ACTIVE) */
    char key_short[9];                /* 8-hex key prefix for logs */
    bool can_mesh;                    /* proved the mesh key */
    bool is_prober;                   /* ClientInfo IsProber */
    bool is_preferred;                /* NotePreferred(1) */
    bool is_not_ideal;                /* sent an Ideal-Node header */
    bool is_dup;                      /* its key has another connection */
    bool is_watcher;                  /* mesh peer that sent WatchConns */
    bool is_dirty;                    /* on the server's flush list */
    bool wants_write;                 /* EPOLLOUT armed */
    bool is_fast_start;               /* no 101 was written */
    bool is_ip_counted;               /* counted in the server's per-address table */
    bool is_throttled;                /* over its byte rate: not read until throttle fires */
    struct derp_admit_req *admit_req; /* borrowed: the pending admission check (ADMIT) */
    struct derp_rate rate;            /* receive byte rate (--per-client-rate); unlimited: zero */
    struct dc_timer throttle;         /* ends a throttle wait */
    /* read side */
    struct derp_pkt *rbuf;           /* owned, from the pool; NULL when empty */
    struct derp_frame_reader reader; /* frame splitting state (skips) */
    /* write side, in order: partial packet, control bytes, disco queue, data queue */
    struct derp_pkt *partial;  /* owned; a packet partly written */
    uint32_t partial_off;      /* bytes of partial already written */
    struct dc_buf ctl;         /* owned; HTTP head and control frames */
    size_t ctl_off;            /* bytes of ctl already written */
    struct derp_queue q_disco; /* disco packets */
    struct derp_queue q_data;  /* everything else */
    /* WebSocket transport (is_ws): rbuf holds decoded DERP bytes in
     * [0, ws_dec_len) and still-framed bytes after them. */
    bool is_ws;
    bool ws_in_msg;          /* inside a fragmented message */
    uint32_t ws_dec_len;     /* decoded bytes at the start of rbuf */
    uint32_t ws_remaining;   /* payload bytes of the current frame still to come */
    uint32_t ws_msg_len;     /* bytes of the current message so far (32 KiB cap) */
    uint64_t ws_payload_off; /* offset into the current frame's payload (mask phase) */
    uint8_t ws_mask[4];
    struct dc_buf ws_out;             /* owned; framed output */
    size_t ws_out_off;                /* bytes of ws_out already written */
    struct derp_mesh_peer *mesh_peer; /* borrowed; set on outbound mesh connections (a
                                         stable slot: valid until derp__mesh_stop) */
    /* Backpressure: a sender whose packet found its mesh link full stops being
     * read (its frame stays buffered) until the link drains. */
    struct derp_conn *paused_on;   /* borrowed: the full mesh link, or NULL */
    struct derp_conn *paused_next; /* next sender paused on the same link */
    struct derp_conn *paused_head; /* on a mesh link: senders waiting for it */
    struct derp_conn *resume_next; /* on the server's resume list */
    bool is_resuming;
    /* PeerGone(NotHere) token bucket */
    uint64_t pg_last_ms;
    uint32_t pg_tokens;
    /* registry links */
    struct derp_client_set *set;      /* borrowed: the set of connections with this key */
    struct derp_conn *set_next;       /* next connection of the same key (dup list) */
    struct derp_client_set **sources; /* owned array: sets that sent to us (PeerGone) */
    uint32_t nsources, sources_cap;
    struct derp_client_set *last_source; /* fast path for the sources check */
    /* server lists */
    struct derp_conn *next, *prev; /* all connections */
    struct derp_conn *dirty_next;  /* flush list */
};

/* Connections from one source address (--max-connections-per-ip). */
struct derp_ip_count {
    uint8_t ip16[16];            /* IPv4 as ::ffff:a.b.c.d */
    uint32_t n;                  /* open connections from it */
    struct derp_ip_count *hnext; /* hash chain */
};

/* Buckets of the per-address table (chains grow past this; the hash is keyed). */
#define DERP_IP_BUCKETS 1024

/* All connections of one key. A key with no local connection may keep a
 * remote set (is_remote: no connections, only watchers): the local clients
 * that received its packets through the mesh, told PeerGone when the mesh
 * loses it (derper's peerGoneWatchers). A key has at most one set. */
struct derp_client_set {
    uint8_t key[DERP_KEY_LEN];
    bool is_remote;                /* no local connection: only tracks watchers */
    struct derp_client_set *hnext; /* hash chain */
    struct derp_conn *conns;       /* dup list, most recently active first */
    struct derp_conn *active;      /* receives packets; NULL when dups have no winner */
    uint32_t nconns;
    struct derp_conn **watchers; /* owned array: connections that received from this key */
    uint32_t nwatchers, watchers_cap;
};

struct derp_registry {
    struct derp_client_set **buckets; /* owned */
    uint32_t nbuckets;                /* power of two */
    uint32_t nsets;
    uint8_t hash_key[16]; /* SipHash key: keys are attacker-chosen */
};

struct derp_server {
    struct dc_loop *loop;          /* borrowed */
    struct derp_server_config cfg; /* copy; listen_addr not kept */
    struct dc_io listen_io;        /* owns the listening fd */
    uint16_t port;
    struct derp_pool pool;
    struct derp_registry reg;
    struct derp_conn *conns;  /* all connections */
    struct derp_conn *dirty;  /* connections with output to flush */
    struct derp_conn *doomed; /* closed, freed in before-sleep */
    struct derp_conn *resume; /* paused senders whose mesh link drained */
    struct dc_timer tick;     /* housekeeping */
    struct derp_server_stats stats;
    uint64_t next_conn_num;
    uint32_t nwatchers; /* connections with is_watcher set */
    bool is_draining;
    struct dc_timer drain_timer;
    void (*drain_done)(struct dc_loop *, void *);
    void *drain_data;
    char pub_hex[DERP_KEY_HEX_LEN + 1];
    struct derp_mesh *mesh; /* owned; NULL until --mesh-with or a peers file names a peer */
    /* limits (derp_limits.c) */
    struct derp_rate accept_rate;      /* --accept-connection-limit/-burst */
    struct derp_ip_count **ip_buckets; /* owned, DERP_IP_BUCKETS; NULL without a per-IP cap */
    uint8_t ip_hash_key[16];           /* SipHash key: addresses are attacker-chosen */
    uint64_t client_burst;             /* per-client bucket size after the clamp */
};

/* Allocates a connection for fd and links it into s (not yet watched). */
struct derp_conn *derp__conn_alloc(struct derp_server *s, int fd);

/* Mesh (derp_mesh.c): outbound connections to the other relays of the region. */

/* Starts the mesh with the fixed peers of --mesh-with ("URL[,URL]"): these
 * stay whatever derp__mesh_set_peers() is given. Returns 0, or negative errno
 * with err (no mesh key, a bad URL, past DERP_MESH_MAX_PEERS). */
int derp__mesh_start(struct derp_server *s, const char *urls, char *err) DC_MUST_CHECK;
/* Makes the dynamic peer set (--mesh-peers-file) exactly urls[0..n) (each
 * as a --mesh-with entry; borrowed for the call), in union with the fixed
 * ones. Peers no longer listed are stopped: redial timer stopped, DNS lookup
 * cancelled, link closed, their forwarders forgotten (their clients' local
 * receivers get PeerGone). New ones are dialled; unchanged ones (same scheme,
 * host, port, path) keep their link untouched, as does a peer known to be
 * this relay itself. Creates the mesh on first use. A URL that does not parse
 * or is past DERP_MESH_MAX_PEERS is logged and skipped. Does nothing while
 * the server drains. Returns 0, or -EINVAL (no mesh key) / -ENOMEM with err. */
int derp__mesh_set_peers(struct derp_server *s, const char *const *urls, size_t n,
                         char *err) DC_MUST_CHECK;
/* Stops every peer and frees the mesh; accepts a server without one. */
void derp__mesh_stop(struct derp_server *s);
/* The mesh peer that holds key's client, or NULL. */
struct derp_mesh_peer *derp__mesh_forwarder(struct derp_server *s,
                                            const uint8_t key[static DERP_KEY_LEN]);
/* Queues a ForwardPacket on p's connection. Returns false, queueing nothing,
 * when the link's queue and socket are both full: the caller pauses the sender. */
bool derp__mesh_forward(struct derp_mesh_peer *p, const uint8_t src[static DERP_KEY_LEN],
                        const uint8_t dst[static DERP_KEY_LEN], const uint8_t *pkt, uint32_t len);
/* The current connection of mesh peer p (NULL when down). */
struct derp_conn *derp__mesh_peer_conn(const struct derp_mesh_peer *p);
/* Handles I/O events of an outbound connection still connecting. */
void derp__mesh_conn_io(struct derp_conn *c, uint32_t events);
/* Handles buffered bytes of an outbound connection; returns bytes consumed. */
size_t derp__mesh_conn_dispatch(struct derp_conn *c, const uint8_t *buf, size_t len);
/* Called once when an outbound connection closes: forget its clients, redial
 * (unless its peer was removed). Harmless when the peer's slot has another
 * connection by now (a recycled slot). */
void derp__mesh_conn_closed(struct derp_conn *c);

/* Appends p to q (takes ownership); a full queue drops its oldest packet. */
void derp__queue_push(struct derp_server *s, struct derp_queue *q, struct derp_pkt *p);
/* Queues p (owned) on c's queue q and marks c dirty; a full queue is flushed
 * to the socket first, and only what the socket will not take is dropped. */
void derp__conn_enqueue(struct derp_conn *c, struct derp_queue *q, struct derp_pkt *p);
/* The i-th oldest packet of q (i < count), borrowed. */
struct derp_pkt *derp__queue_peek(const struct derp_queue *q, unsigned i);
/* Gives q (empty) a deeper slot array; returns 0 or -ENOMEM. */
int derp__queue_deepen(struct derp_queue *q, uint16_t cap) DC_MUST_CHECK;
/* Removes and returns the oldest packet of a non-empty q (caller owns it). */
struct derp_pkt *derp__queue_pop(struct derp_queue *q);
/* Queues bytes for c (control stream); closes c when over its limit. */
void derp__conn_send(struct derp_conn *c, const void *data, size_t len);
/* Marks c to be flushed in this wake-up's before-sleep pass. */
void derp__conn_mark_dirty(struct derp_conn *c);
/* Closes c (once), logging why at info (or debug for ordinary hang-ups). */
void derp__conn_close(struct derp_conn *c, bool is_error, const char *why);
/* Handles the bytes of c's read buffer in HTTP state; returns bytes consumed
 * or 0 for more, and may change c's state. Implemented in derp_server_http.c. */
size_t derp__http_handle(struct derp_conn *c, const uint8_t *buf, size_t len);

/* Writes len raw bytes (TCP or TLS) as far as the socket takes them; sets
 * *written. Returns 0 when all went, -EAGAIN when the socket is full, or
 * another negative errno. */
int derp__conn_write_raw(struct derp_conn *c, const uint8_t *p, size_t len, size_t *written);

/* WebSocket transport (derp_server_ws.c). */
void derp__ws_init(struct derp_conn *c);
/* Unframes the raw bytes after ws_dec_len in c->rbuf; returns 0, or -1 when
 * c was closed (bad framing, close frame). */
int derp__ws_decode(struct derp_conn *c);
/* Frames and writes c's pending output; returns 0, -EAGAIN or negative errno. */
int derp__ws_flush(struct derp_conn *c);

/* Limits (derp_limits.c). */
/* Sets up the accept bucket and per-address table from s->cfg; logs clamps. */
int derp__limits_init(struct derp_server *s, char *err) DC_MUST_CHECK;
void derp__limits_deinit(struct derp_server *s);
/* Decides on a freshly accepted connection from ip16: NULL to take it, or the
 * refusal's metrics reason (counted already). Counts it against its address
 * when taken; the caller then sets is_ip_counted on the connection. */
const char *derp__limits_accept(struct derp_server *s, const uint8_t ip16[static 16]);
/* Releases one connection's count for ip16 in the per-address table. */
void derp__limits_release_ip(struct derp_server *s, const uint8_t ip16[static 16]);
/* Fills ip16 and port from a peer address (IPv4 as ::ffff:a.b.c.d). */
void derp__ip16_from_sockaddr(const struct sockaddr_storage *ss, uint8_t ip16[static 16],
                              uint16_t *port);

/* Registry (derp_registry.c). */
int derp__registry_init(struct derp_registry *reg) DC_MUST_CHECK;
void derp__registry_deinit(struct derp_registry *reg);
struct derp_client_set *derp__registry_find(struct derp_registry *reg,
                                            const uint8_t key[static DERP_KEY_LEN]);
/* Adds c under c->key; returns 0 or -ENOMEM. The newest connection is active. */
int derp__registry_add(struct derp_server *s, struct derp_conn *c) DC_MUST_CHECK;
/* Removes c; when it was the key's last connection, sends PeerGone to the
 * key's watchers and frees the set. */
void derp__registry_remove(struct derp_server *s, struct derp_conn *c);
/* Notes activity by c: with duplicates, the last writer becomes active. */
void derp__registry_note_activity(struct derp_server *s, struct derp_conn *c);
/* Records that dst received from src's key so dst hears PeerGone when src leaves. */
int derp__registry_note_source(struct derp_conn *dst, struct derp_client_set *src);
/* The set that tracks who received from key: its local set, else its remote
 * set, created when missing and may_create_remote (a packet that came through
 * the mesh). NULL when there is none, or out of memory. */
struct derp_client_set *derp__registry_source(struct derp_registry *reg,
                                              const uint8_t key[static DERP_KEY_LEN],
                                              bool may_create_remote);
/* The mesh lost key (its last forwarder went: PeerGone from the peer, link
 * down, peer removed). Unless key has local connections, every connection
 * that received from it gets PeerGone(Disconnected) and its remote set goes,
 * as derper's RemovePacketForwarder -> notePeerGoneFromRegionLocked. */
void derp__registry_remote_gone(struct derp_server *s, const uint8_t key[static DERP_KEY_LEN]);

#endif
