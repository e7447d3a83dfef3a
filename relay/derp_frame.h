/* derp_frame: the DERP frame codec and the login JSON messages (pure).
 *
 * No I/O, no logging, no clock. Decoders never read past `len`; encoders
 * write into caller buffers whose sizes are given by the *_LEN constants.
 * Every decoder has an encoder and a round-trip test (tests/unit/test_derp_frame.c). */
#ifndef DC_RELAY_DERP_FRAME_H
#define DC_RELAY_DERP_FRAME_H

#include "derp_proto.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest AppName kept from a ClientInfo (longer ones are truncated). */
#define DERP_APP_NAME_MAX 64
/* Longest ClientInfo/ServerInfo JSON this module formats. */
#define DERP_INFO_JSON_MAX 512

/* Whole-frame sizes of the fixed-size frames the server writes. */
#define DERP_SERVER_KEY_FRAME_LEN   (DERP_FRAME_HDR_LEN + DERP_MAGIC_LEN + DERP_KEY_LEN)
#define DERP_PEER_GONE_FRAME_LEN    (DERP_FRAME_HDR_LEN + DERP_KEY_LEN + 1)
#define DERP_PONG_FRAME_LEN         (DERP_FRAME_HDR_LEN + DERP_PING_LEN)
#define DERP_RESTARTING_FRAME_LEN   (DERP_FRAME_HDR_LEN + 8)
#define DERP_PEER_PRESENT_FRAME_LEN (DERP_FRAME_HDR_LEN + DERP_PEER_PRESENT_LEN)

/* What a client says about itself in ClientInfo (derp.ClientInfo JSON:
 * "version", "meshKey", "CanAckPings", "IsProber", "AppName"). */
struct derp_client_info {
    int version;                          /* "version"; 0 when absent */
    bool has_mesh_key;                    /* "meshKey" present and well-formed */
    uint8_t mesh_key[DERP_MESH_KEY_LEN];  /* valid when has_mesh_key */
    bool can_ack_pings;                   /* "CanAckPings" */
    bool is_prober;                       /* "IsProber" */
    char app_name[DERP_APP_NAME_MAX + 1]; /* "AppName", NUL-terminated, may be empty */
};

/* What the server says in ServerInfo (derp.ServerInfo JSON). */
struct derp_server_info {
    int version;                     /* "version" */
    long token_bucket_bytes_per_sec; /* "TokenBucketBytesPerSecond", 0 = unset */
    long token_bucket_bytes_burst;   /* "TokenBucketBytesBurst", 0 = unset */
};

/* Splits a byte stream from a client into frames, enforcing per-type size
 * limits before any payload is waited for. The all-zero struct is a reader
 * for a logged-in client; set is_login for the first frame (ClientInfo). */
struct derp_frame_reader {
    uint64_t skip;  /* bytes of an unknown frame still to discard */
    bool is_login;  /* expecting ClientInfo: its limit is DERP_MAX_CLIENT_INFO_LEN */
    bool is_client; /* reading a server's frames: every type whole up to
                       DERP_MAX_CLIENT_INFO_LEN, longer ones skipped */
};

/* One whole frame found by derp_frame_next(). */
struct derp_frame {
    uint8_t type;           /* DERP_FRAME_* (any value) */
    const uint8_t *payload; /* points into the buffer given to derp_frame_next() */
    uint32_t len;           /* payload bytes */
};

/* Finds the next whole frame in buf[0..len). Returns bytes consumed (>= 0)
 * with *has_frame telling whether f was filled; consumed bytes without a
 * frame are skipped unknown-frame bytes. Returns 0 with !*has_frame when more
 * bytes are needed. Returns -EMSGSIZE (declared length over the type's limit)
 * or -EPROTO (shorter than the type's minimum) with *why set to a static
 * sentence; the connection should then be closed. Unknown frame types of any
 * length are skipped without buffering, as derper does. */
long derp_frame_next(struct derp_frame_reader *r, const uint8_t *buf, size_t len,
                     struct derp_frame *f, bool *has_frame, const char **why) DC_MUST_CHECK;

/* Decodes a frame header from buf. Returns DERP_FRAME_HDR_LEN with *type and
 * *payload_len set, or 0 when fewer than 5 bytes are available. */
size_t derp_frame_header_decode(const uint8_t *buf, size_t len, uint8_t *type,
                                uint32_t *payload_len);
/* Writes a 5-byte frame header into out. */
void derp_frame_header_encode(uint8_t out[static DERP_FRAME_HDR_LEN], uint8_t type,
                              uint32_t payload_len);

/* Writes the ServerKey frame (header, magic, key) into out. */
void derp_frame_server_key_encode(uint8_t out[static DERP_SERVER_KEY_FRAME_LEN],
                                  const uint8_t server_pub[static DERP_KEY_LEN]);
/* Checks a ServerKey payload (magic + key, extra bytes allowed) and copies the
 * key. Returns 0 or -EPROTO. */
int derp_frame_server_key_decode(const uint8_t *payload, size_t len,
                                 uint8_t server_pub[static DERP_KEY_LEN]) DC_MUST_CHECK;

/* Writes a PeerGone frame for peer with reason into out. */
void derp_frame_peer_gone_encode(uint8_t out[static DERP_PEER_GONE_FRAME_LEN],
                                 const uint8_t peer[static DERP_KEY_LEN], uint8_t reason);
/* Writes a PeerPresent frame: key, 16-byte IP (IPv4 as ::ffff:a.b.c.d), port, flags. */
void derp_frame_peer_present_encode(uint8_t out[static DERP_PEER_PRESENT_FRAME_LEN],
                                    const uint8_t peer[static DERP_KEY_LEN],
                                    const uint8_t ip16[static 16], uint16_t port, uint8_t flags);
/* Writes a Pong frame echoing data. */
void derp_frame_pong_encode(uint8_t out[static DERP_PONG_FRAME_LEN],
                            const uint8_t data[static DERP_PING_LEN]);
/* Writes a Restarting frame: reconnect in / try for, both milliseconds. */
void derp_frame_restarting_encode(uint8_t out[static DERP_RESTARTING_FRAME_LEN],
                                  uint32_t reconnect_in_ms, uint32_t try_for_ms);

/* Reports whether packet looks like a Tailscale disco message (magic, key, nonce). */
bool derp_packet_is_disco(const uint8_t *packet, size_t len);

/* Parses ClientInfo JSON. Unknown fields are ignored (forward compatible); a
 * meshKey that is not 64 hex characters leaves has_mesh_key false. Returns 0,
 * or -EINVAL with err saying why (not JSON, not an object, wrong field type). */
int derp_client_info_parse(const char *json, size_t len, struct derp_client_info *ci,
                           char *err) DC_MUST_CHECK;
/* Formats ci as ClientInfo JSON into out (DERP_INFO_JSON_MAX). Returns the
 * length, or -EMSGSIZE. */
int derp_client_info_format(const struct derp_client_info *ci, char *out,
                            size_t out_len) DC_MUST_CHECK;

/* Parses ServerInfo JSON; returns 0 or -EINVAL with err. */
int derp_server_info_parse(const char *json, size_t len, struct derp_server_info *si,
                           char *err) DC_MUST_CHECK;
/* Formats si as ServerInfo JSON ({"version":2}, zero fields omitted).
 * Returns the length, or -EMSGSIZE. */
int derp_server_info_format(const struct derp_server_info *si, char *out,
                            size_t out_len) DC_MUST_CHECK;

#endif
