/* derp_server: the DERP relay server on one event loop.
 *
 * Accepts HTTP/1.1 (optionally TLS) connections, serves /derp (Upgrade: DERP,
 * with or without Derp-Fast-Start), the probe endpoints, /generate_204,
 * /healthz, /robots.txt and /metrics, and relays packets between clients by
 * key. Single-threaded; all state hangs off struct derp_server. Limits and
 * timings follow derper (derp_proto.h). It does not resolve names, read
 * files or install signal handlers: relay_main.c does. */
#ifndef DC_RELAY_DERP_SERVER_H
#define DC_RELAY_DERP_SERVER_H

#include "derp_key.h"
#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct dc_loop;
struct dc_tls_server;
struct dc_buf;
struct derp_admit;
struct derp_server;

/* Appends extra Prometheus text to the /metrics answer (e.g. STUN counters). */
typedef void (*derp_metrics_cb)(void *data, struct dc_buf *out);

struct derp_server_config {
    const char *listen_addr;   /* "ip:port" or ":port"; borrowed for the call */
    struct dc_tls_server *tls; /* borrowed, must outlive the server; NULL = plain HTTP */
    struct derp_keypair key;   /* the server's node key (copied) */
    bool has_mesh_key;         /* mesh_key is set */
    uint8_t mesh_key[DERP_MESH_KEY_LEN];
    uint32_t handshake_timeout_ms;      /* 0: DERP_HANDSHAKE_TIMEOUT_MS */
    uint32_t write_timeout_ms;          /* 0: DERP_WRITE_TIMEOUT_MS */
    uint32_t keepalive_ms;              /* 0: DERP_KEEPALIVE_MS */
    uint32_t restart_reconnect_ms;      /* Restarting frame "reconnect in"; 0: 1000 */
    uint32_t restart_try_for_ms;        /* Restarting frame "try for"; 0: 60000 */
    uint32_t drain_ms;                  /* relay on after Restarting before closing; 0: 2000 */
    uint32_t max_conns;                 /* open connections past which new ones are closed at
                                           once; 0: unlimited */
    uint32_t max_conns_per_ip;          /* the same per source address; 0: unlimited */
    double accept_rate_per_sec;         /* new connections per second (derper
                                           --accept-connection-limit); 0: unlimited */
    uint64_t accept_burst;              /* its bucket (--accept-connection-burst); 0: unlimited, as
                                           derper's default math.MaxInt makes it */
    uint64_t client_rate_bytes_per_sec; /* bytes per second read from each non-mesh client,
                                           advertised in ServerInfo; 0: unlimited */
    uint64_t client_burst_bytes;        /* its bucket; raised to DERP_RATE_MIN_BURST */
    struct derp_admit *admit;           /* borrowed, must outlive the server; NULL: every
                                           client is admitted. Mesh peers never are asked. */
    const char *mesh_with;              /* "URL[,URL]" of mesh peers or NULL; borrowed for the call;
                                           needs has_mesh_key */
    const char *self_host; /* this relay's host name: a peer URL with it is skipped; borrowed,
                              must outlive the server */
    bool mesh_insecure;    /* do not verify mesh peers' TLS certificates */
    derp_metrics_cb extra_metrics; /* may be NULL */
    void *extra_metrics_data;      /* borrowed */
};

/* Relay counters, readable at any time (also served on /metrics). */
struct derp_server_stats {
    uint64_t accepts;                  /* TCP connections accepted */
    uint64_t conns_current;            /* open TCP connections in any state */
    uint64_t clients_current;          /* logged-in DERP clients */
    uint64_t home_clients;             /* clients that sent NotePreferred(1) */
    uint64_t dup_client_keys;          /* keys with more than one connection */
    uint64_t handshake_errors;         /* connections closed before login finished */
    uint64_t http_requests;            /* non-DERP HTTP requests answered */
    uint64_t packets_recv;             /* SendPacket/ForwardPacket frames read */
    uint64_t bytes_recv;               /* their packet bytes */
    uint64_t packets_sent;             /* RecvPacket frames written */
    uint64_t bytes_sent;               /* their packet bytes */
    uint64_t packets_forwarded_in;     /* ForwardPacket frames from mesh peers */
    uint64_t packets_forwarded_out;    /* packets sent on to a mesh peer */
    uint64_t mesh_peers_up;            /* outbound mesh connections logged in */
    uint64_t mesh_dials;               /* outbound mesh connection attempts */
    uint64_t drop_unknown_dest_on_fwd; /* forwarded packet for a key not here */
    uint64_t drop_unknown_dest;        /* no client with that key */
    uint64_t drop_dup_client;          /* key connected twice, no active connection */
    uint64_t drop_queue_head;          /* queue full: oldest packet dropped */
    uint64_t drop_gone;                /* destination disconnected with packets queued */
    uint64_t drop_write_error;         /* write failed */
    uint64_t peer_gone_disconnected;   /* PeerGone reason 0 frames sent */
    uint64_t peer_gone_not_here;       /* PeerGone reason 1 frames sent */
    uint64_t pings;                    /* Ping frames answered */
    uint64_t keepalives;               /* KeepAlive frames sent */
    uint64_t write_timeouts;           /* clients closed for a stalled write */
    uint64_t protocol_errors;          /* clients closed for a bad frame */
    uint64_t refused_accept_rate;      /* connections closed at accept: over the accept rate */
    uint64_t refused_max_conns;        /* ... at --max-connections */
    uint64_t refused_per_ip;           /* ... at --max-connections-per-ip */
    uint64_t refused_not_listed;       /* clients refused: not in --allowed-keys-file */
    uint64_t refused_denied;           /* ... the admission controller said no */
    uint64_t refused_unreachable;      /* ... controller unreachable, fail-closed */
    uint64_t refused_admit_error;      /* ... controller answered non-200 or garbage */
    uint64_t admitted_fail_open;       /* clients let in because the controller was down */
    uint64_t revoked;                  /* clients closed when their key left the allowed list */
    uint64_t admission_pending;        /* clients waiting for an admission verdict */
    uint64_t rate_limit_waits;         /* times a client's reading paused for its byte rate */
};

/* Creates a server listening on cfg->listen_addr, driven by loop. Returns 0
 * and *out (free with derp_server_free()), or negative errno with err filled. */
int derp_server_new(struct dc_loop *loop, const struct derp_server_config *cfg,
                    struct derp_server **out, char *err) DC_MUST_CHECK;
/* Closes every connection and frees the server; accepts NULL. */
void derp_server_free(struct derp_server *s);
/* The TCP port actually listened on (for ":0"). */
uint16_t derp_server_port(const struct derp_server *s);
/* Counters (borrowed; valid while the server is). */
const struct derp_server_stats *derp_server_stats(const struct derp_server *s);
/* Starts a graceful drain: stop accepting, send Restarting to every client,
 * relay for cfg->drain_ms more, then close all and call done(loop, data). */
void derp_server_drain(struct derp_server *s, void (*done)(struct dc_loop *, void *), void *data);
/* Appends the Prometheus text of the counters to out. */
void derp_server_metrics_format(const struct derp_server *s, struct dc_buf *out);

/* Most mesh peers one relay follows, --mesh-with and --mesh-peers-file
 * together (the controller writes at most MESH_PEERS_MAX, the same 256). */
#define DERP_MESH_MAX_PEERS 256
/* Longest mesh peer URL, in bytes without the NUL. */
#define DERP_MESH_URL_MAX 511

/* Called for each bad line of a peers file: its 1-based number and why. */
typedef void (*derp_mesh_bad_line_cb)(void *data, unsigned line_no, const char *err);
/* Splits a peers file's text (len bytes, NUL-terminated; modified in place)
 * into urls[0..max): one URL per line, '#' starts a comment, surrounding
 * blanks and blank lines ignored. A line that is not a mesh URL (bad URL,
 * blank inside, control byte, longer than DERP_MESH_URL_MAX, past max) is
 * reported through bad and skipped. Returns the URLs stored; they point into
 * text. Pure: no I/O, no logging. */
size_t derp_mesh_peers_parse(char *text, size_t len, const char **urls, size_t max,
                             derp_mesh_bad_line_cb bad, void *data);
/* Sets the mesh peers that come from --mesh-peers-file (the union with
 * --mesh-with is meshed): new ones are dialled, removed ones lose their link
 * and forwarders, unchanged ones keep their link. Returns 0, or -EINVAL (no
 * mesh key) / -ENOMEM with err. */
int derp_server_set_mesh_peers(struct derp_server *s, const char *const *urls, size_t n,
                               char *err) DC_MUST_CHECK;

#endif
