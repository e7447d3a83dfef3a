/* derp_client: a blocking DERP client (handshake, send, receive, ping).
 *
 * Used by derp-probe, the tests and the benchmarks; one connection per
 * struct, one thread. Connects to http(s)://host[:port]/derp with
 * Upgrade: DERP, logs in with a node key (fresh from libsodium unless given)
 * and then exchanges frames. With opts.websocket it asks for Upgrade:
 * websocket (subprotocol "derp") instead and carries the DERP byte stream in
 * masked binary messages of at most 32 KiB, answering pings; a close frame
 * reads as EOF. Every failure fills err with a sentence that starts with the
 * stage that failed: "url:", "dns:", "tcp:", "tls:", "http:", "handshake:",
 * "timeout:" or "io:". Writes are buffered:
 * derp_client_send() queues, derp_client_flush() (or any receive) writes. */
#ifndef DC_RELAY_DERP_CLIENT_H
#define DC_RELAY_DERP_CLIENT_H

#include "derp_key.h"
#include "derp_proto.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct derp_client;

/* Size of the client's receive buffer: the largest frame a server sends to a
 * client (RecvPacket with a 64 KiB packet) plus room to batch reads. */
#define DERP_CLIENT_RBUF_LEN (256u << 10)
/* Size of the client's write buffer. */
#define DERP_CLIENT_WBUF_LEN (256u << 10)
/* WebSocket only: largest server frame accepted. Servers send at most 32 KiB
 * (WS_MAX_MESSAGE_LEN); twice that to be lenient. Larger is -EMSGSIZE. */
#define DERP_CLIENT_WS_MAX_FRAME_LEN (64u << 10)
/* WebSocket only: buffer for frames as read from the socket. */
#define DERP_CLIENT_WS_RAW_LEN (64u << 10)
/* WebSocket only: buffer for masked frames on their way out (4 full
 * messages of 32 KiB with their 14-byte headers per write). */
#define DERP_CLIENT_WS_WBUF_LEN (4u * (14u + 32768u))

struct derp_client_opts {
    const char *url;                /* borrowed; "http(s)://host[:port][/derp]" or bare host */
    const struct derp_keypair *key; /* borrowed; NULL = generate a fresh key */
    bool insecure_skip_verify;      /* TLS: accept any certificate */
    const char *pin;                /* TLS: "sha256-raw:<hex>" the leaf must match, or NULL */
    const char *ca_file;            /* TLS: CA bundle, NULL = system default */
    bool has_mesh_key;              /* send mesh_key in ClientInfo */
    uint8_t mesh_key[DERP_MESH_KEY_LEN];
    bool is_prober;        /* ClientInfo IsProber */
    bool fast_start;       /* send Derp-Fast-Start: 1 (no 101 expected); not with websocket */
    bool websocket;        /* DERP over WebSocket (Upgrade: websocket, subprotocol derp) */
    const char *app_name;  /* ClientInfo AppName, may be NULL */
    int timeout_ms;        /* per stage of the handshake; 0 = 10000 */
    int total_timeout_ms;  /* the whole connect (TCP, TLS, HTTP, login); 0 = no overall limit */
    const char *dial_host; /* borrowed; host name or IP literal to connect to instead of the
                              URL's host, which still goes in Host (and SNI); NULL = URL's */
    const char *cert_name; /* borrowed; TLS: the name the certificate is verified against
                              instead of the URL's host, which stays the SNI (DERPNode.CertName
                              that is not a pin); NULL = URL's host */
    char *peer_pin;        /* NULL, or DC_TLS_PIN_LEN bytes that receive the leaf certificate's
                              "sha256-raw:<hex>" as soon as TLS is up, even if a later stage
                              fails; "" when there was no TLS session */
};

/* One frame received (pointers into the client's buffer, valid until the next
 * derp_client_recv() call). */
struct derp_client_msg {
    uint8_t type;              /* DERP_FRAME_* */
    uint8_t key[DERP_KEY_LEN]; /* RecvPacket source / PeerGone / PeerPresent key */
    const uint8_t *data;       /* packet, ping data, health text, or raw payload */
    size_t len;                /* bytes at data */
    uint8_t reason;            /* PeerGone reason */
    uint32_t reconnect_in_ms;  /* Restarting */
    uint32_t try_for_ms;       /* Restarting */
};

/* Splits a relay URL into scheme (is_tls), host (no brackets), port and path
 * (derper's rule: a bare host means https://HOST/derp). Returns 0 or -EINVAL
 * with err quoting the URL. */
int derp_url_parse(const char *url, bool *is_tls, char *host, size_t host_len, uint16_t *port,
                   char *path, size_t path_len, char *err) DC_MUST_CHECK;

/* Connects and logs in. Returns 0 and *out (free with derp_client_free()), or
 * negative errno with err set. */
int derp_client_connect(const struct derp_client_opts *opts, struct derp_client **out,
                        char *err) DC_MUST_CHECK;
/* Closes the connection and frees the client; accepts NULL. */
void derp_client_free(struct derp_client *c);

/* The client's public key, and the server's (from ServerKey). */
const uint8_t *derp_client_public_key(const struct derp_client *c);
const uint8_t *derp_client_server_key(const struct derp_client *c);
/* The socket, for poll() by callers that multiplex. */
int derp_client_fd(const struct derp_client *c);

/* Queues a SendPacket to dst (len <= DERP_MAX_PACKET_LEN). Returns 0 or negative errno. */
int derp_client_send(struct derp_client *c, const uint8_t dst[static DERP_KEY_LEN],
                     const uint8_t *pkt, size_t len) DC_MUST_CHECK;
/* Queues a raw frame of any type (tests send bad frames with it). */
int derp_client_send_frame(struct derp_client *c, uint8_t type, const uint8_t *payload,
                           size_t len) DC_MUST_CHECK;
/* Queues a Ping with 8 bytes of data. */
int derp_client_ping(struct derp_client *c, const uint8_t data[static DERP_PING_LEN]) DC_MUST_CHECK;
/* Queues NotePreferred. */
int derp_client_note_preferred(struct derp_client *c, bool preferred) DC_MUST_CHECK;
/* Writes everything queued. Returns 0 or negative errno. */
int derp_client_flush(struct derp_client *c) DC_MUST_CHECK;

/* Flushes, then waits up to timeout_ms (-1 = forever) for the next frame.
 * Returns 0 with *msg set, -ETIMEDOUT, -ECONNRESET at EOF, or -EPROTO for a
 * malformed frame (err set). */
int derp_client_recv(struct derp_client *c, struct derp_client_msg *msg, int timeout_ms,
                     char *err) DC_MUST_CHECK;

#endif
