/* derp_proto: the constants of Tailscale's DERP protocol, version 2.
 *
 * Constants only, each with its byte layout and source (tailscale derp/derp.go,
 * derp/derpserver). Nothing here does I/O.
 *
 * Wire frame: 1 byte type, 4 byte big-endian payload length, payload.
 *
 * Login:
 *   client: GET /derp, Upgrade: DERP (or websocket, subprotocol "derp")
 *   server: 101 Switching Protocols (skipped when the client sent
 *           Derp-Fast-Start: 1), then ServerKey
 *   client: ClientInfo (its key and a NaCl box of JSON to the server key)
 *   server: ServerInfo (a NaCl box of {"version":2} to the client key)
 * Steady state:
 *   client SendPacket(dst, bytes) -> server RecvPacket(src, bytes) to dst;
 *   server KeepAlive every 60 s (+ up to 5 s jitter); Ping is answered by Pong.
 *
 * Versions: 1 (zero on wire) consistent box headers; 2 RecvPacket carries the
 * 32-byte source key before the packet. */
#ifndef DC_RELAY_DERP_PROTO_H
#define DC_RELAY_DERP_PROTO_H

/* Protocol version sent in Derp-Version and ServerInfo. */
#define DERP_PROTOCOL_VERSION 2

/* "DERP🔑": 44 45 52 50 f0 9f 94 91, first 8 bytes of ServerKey. */
#define DERP_MAGIC     "DERP\xf0\x9f\x94\x91"
#define DERP_MAGIC_LEN 8

/* Curve25519 public/private key length (bytes). */
#define DERP_KEY_LEN 32
/* NaCl box nonce length (bytes). */
#define DERP_NONCE_LEN 24
/* NaCl box authenticator overhead (Poly1305 tag, bytes). */
#define DERP_BOX_OVERHEAD 16
/* Frame header: type (1) + big-endian length (4). */
#define DERP_FRAME_HDR_LEN 5

/* Largest packet after the 32-byte key in Send/Recv/ForwardPacket: 64 KiB
 * (derp.MaxPacketSize, data bytes only, framing excluded). */
#define DERP_MAX_PACKET_LEN (64u << 10)
/* Largest ClientInfo frame the server reads before the client is trusted
 * (derpserver recvClientKey: 256 KiB). */
#define DERP_MAX_CLIENT_INFO_LEN (256u << 10)
/* Largest ServerInfo box a client accepts (derp.MaxInfoLen: 1 MiB). */
#define DERP_MAX_INFO_LEN (1u << 20)
/* Ping payload: 8 bytes echoed; bodies up to 1000 bytes are accepted and the
 * extra bytes discarded, longer or shorter ones close the connection. */
#define DERP_PING_LEN     8
#define DERP_MAX_PING_LEN 1000
/* Largest frame of any type the server reads: a ForwardPacket (two keys plus
 * the largest packet). Unknown frames longer than this are skipped, not
 * buffered. */
#define DERP_MAX_FRAME_LEN (2u * DERP_KEY_LEN + DERP_MAX_PACKET_LEN)

/* Frame types (1 byte). Payload layouts: */
enum derp_frame_type {
    DERP_FRAME_SERVER_KEY = 0x01,     /* 8B magic + 32B server public key (+ future bytes) */
    DERP_FRAME_CLIENT_INFO = 0x02,    /* 32B client key + 24B nonce + box(JSON) */
    DERP_FRAME_SERVER_INFO = 0x03,    /* 24B nonce + box(JSON) */
    DERP_FRAME_SEND_PACKET = 0x04,    /* 32B destination key + packet bytes */
    DERP_FRAME_RECV_PACKET = 0x05,    /* v2: 32B source key + packet bytes */
    DERP_FRAME_KEEP_ALIVE = 0x06,     /* no payload */
    DERP_FRAME_NOTE_PREFERRED = 0x07, /* 1 byte: 0x01 this is the client's home node, 0x00 not */
    /* 32B key of a peer + 1 byte reason. Sent to a client that received
     * packets from that peer when the peer disconnects (reason 0), or in reply
     * to a disco packet for a key not connected here (reason 1, rate-limited). */
    DERP_FRAME_PEER_GONE = 0x08,
    /* 32B key + 16B IP + 2B big-endian port + 1B flags (DERP_PEER_PRESENT_*);
     * sent to mesh watchers. Older servers sent the key alone. */
    DERP_FRAME_PEER_PRESENT = 0x09,
    DERP_FRAME_FORWARD_PACKET = 0x0a, /* 32B src key + 32B dst key + packet (mesh only) */
    DERP_FRAME_WATCH_CONNS = 0x10,    /* no payload; mesh only */
    DERP_FRAME_CLOSE_PEER = 0x11,     /* 32B key of the peer to close; mesh only */
    DERP_FRAME_PING = 0x12,           /* 8B data, echoed in Pong */
    DERP_FRAME_PONG = 0x13,           /* 8B data from the Ping */
    /* Text of the connection's health problem; empty clears it. */
    DERP_FRAME_HEALTH = 0x14,
    /* Two big-endian uint32: reconnect in (ms), keep trying for (ms). */
    DERP_FRAME_RESTARTING = 0x15,
};

/* PeerGone reasons (1 byte). */
#define DERP_PEER_GONE_DISCONNECTED 0x00 /* the peer disconnected from this server */
#define DERP_PEER_GONE_NOT_HERE     0x01 /* the server has no such peer */

/* PeerPresent flag bits (1 byte). */
#define DERP_PEER_PRESENT_REGULAR   0x01
#define DERP_PEER_PRESENT_MESH_PEER 0x02
#define DERP_PEER_PRESENT_PROBER    0x04
#define DERP_PEER_PRESENT_NOT_IDEAL 0x08
/* PeerPresent payload length of current servers: key + IP + port + flags. */
#define DERP_PEER_PRESENT_LEN (DERP_KEY_LEN + 16 + 2 + 1)

/* Disco packets ("TS💬" 54 53 f0 9f 92 ac, then a 32B key and 24B nonce) get
 * their own send queue, and only they earn a PeerGone NotHere reply. */
#define DERP_DISCO_MAGIC     "TS\xf0\x9f\x92\xac"
#define DERP_DISCO_MAGIC_LEN 6
#define DERP_DISCO_MIN_LEN   (DERP_DISCO_MAGIC_LEN + DERP_KEY_LEN + DERP_NONCE_LEN)

/* Server timing and queue limits, as derper's. */
#define DERP_HANDSHAKE_TIMEOUT_MS  10000 /* from accept to a verified ClientInfo */
#define DERP_KEEPALIVE_MS          60000 /* derp.KeepAlive */
#define DERP_KEEPALIVE_JITTER_MS   5000  /* rand.N(5s) added once per connection */
#define DERP_WRITE_TIMEOUT_MS      2000  /* DefaultTCPWriteTimeout */
#define DERP_MESH_WRITE_TIMEOUT_MS 30000 /* privilegedWriteTimeout */
#define DERP_SEND_QUEUE_DEPTH      32    /* packets per queue (one data, one disco) */
#define DERP_PEER_GONE_BURST       3     /* NotHere replies: burst 3, then 1 per second */
#define DERP_PEER_GONE_INTERVAL_MS 1000

/* Smallest per-client token bucket (bytes): one SendPacket frame with the
 * largest packet, header included. derper's minRateLimitTokenBucketSize
 * (derpserver.go) is MaxPacketSize + KeyLen, the frame length it debits
 * without the 5-byte header; Tailscale clients that honour ServerInfo's
 * TokenBucketBytesBurst debit the header too (derp_client.go send:
 * frameHeaderLen + key + packet), and a golang rate.Limiter never allows more
 * than its burst at once, so the header is added here. */
#define DERP_RATE_MIN_BURST (DERP_FRAME_HDR_LEN + DERP_KEY_LEN + DERP_MAX_PACKET_LEN)

/* HTTP header names used on /derp. */
#define DERP_HDR_FAST_START "Derp-Fast-Start" /* "1": no 101 response is written */
#define DERP_HDR_VERSION    "Derp-Version"
#define DERP_HDR_PUBLIC_KEY "Derp-Public-Key"
#define DERP_HDR_IDEAL_NODE "Ideal-Node"

/* Mesh key: 32 bytes, written as 64 lowercase hex characters. */
#define DERP_MESH_KEY_LEN 32

/* Meta certificate CN prefix; followed by the server key in hex. */
#define DERP_META_CERT_CN_PREFIX "derpkey"

#endif
