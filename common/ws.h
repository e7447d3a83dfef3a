/* ws: the WebSocket (RFC 6455) opening-handshake answer and frame codec, pure.
 *
 * The relay carries DERP over WebSocket for proxies that mangle
 * "Upgrade: DERP": the DERP byte stream travels in binary messages, and a
 * DERP frame may span several of them. No I/O, no logging, no allocation.
 *
 * Frame header layout (RFC 6455 5.2), big-endian:
 *   byte 0: FIN(1) RSV1-3(3) opcode(4)
 *   byte 1: MASK(1) payload length(7): 0-125, 126 = 16-bit length follows,
 *           127 = 64-bit length follows
 *   then the extended length (2 or 8 bytes), then the 4-byte masking key
 *   when MASK is set. Clients must mask; servers must not. */
#ifndef DC_COMMON_WS_H
#define DC_COMMON_WS_H

#include "bytes.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opcodes (4 bits). */
#define WS_OP_CONTINUATION 0x0
#define WS_OP_TEXT         0x1
#define WS_OP_BINARY       0x2
#define WS_OP_CLOSE        0x8
#define WS_OP_PING         0x9
#define WS_OP_PONG         0xa

/* Longest frame header: 2 + 8 (64-bit length) + 4 (mask). */
#define WS_MAX_HDR_LEN 14
/* Control frames carry at most 125 bytes and are never fragmented (5.5). */
#define WS_MAX_CONTROL_LEN 125
/* Largest message accepted and sent: 32 KiB, the read limit of the
 * WebSocket library Tailscale's clients and derper use (coder/websocket). */
#define WS_MAX_MESSAGE_LEN 32768
/* Sec-WebSocket-Accept value: base64 of a SHA-1 digest, plus NUL. */
#define WS_ACCEPT_LEN 29

/* Close status codes (7.4.1). */
#define WS_CLOSE_NORMAL      1000
#define WS_CLOSE_PROTOCOL    1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_POLICY      1008
#define WS_CLOSE_TOO_BIG     1009

/* A decoded frame header. */
struct ws_frame_hdr {
    bool fin;             /* last frame of its message */
    uint8_t opcode;       /* WS_OP_* */
    bool masked;          /* mask_key is valid */
    uint8_t mask_key[4];  /* client-to-server masking key */
    uint64_t payload_len; /* bytes following the header */
};

/* Computes Sec-WebSocket-Accept for the client's Sec-WebSocket-Key (the
 * key with the RFC's GUID appended, SHA-1, base64) into out. Returns 0, or
 * -EINVAL when key is not 24 base64 characters (a 16-byte nonce). */
int ws_accept_key(struct dc_span key, char out[static WS_ACCEPT_LEN]) DC_MUST_CHECK;

/* Decodes a frame header at buf. Returns header bytes (> 0), 0 when more
 * bytes are needed, or -EPROTO (reserved bits, unknown opcode, fragmented or
 * long control frame, unmasked frame when must_mask) or -EMSGSIZE (payload
 * over max_payload) with err set. */
ssize_t ws_frame_header_decode(const uint8_t *buf, size_t len, bool must_mask, uint64_t max_payload,
                               struct ws_frame_hdr *h, char *err) DC_MUST_CHECK;

/* Encodes a frame header for a payload of payload_len bytes into out
 * (WS_MAX_HDR_LEN bytes); mask_key NULL means unmasked (server). Returns the
 * header length. */
size_t ws_frame_header_encode(uint8_t out[static WS_MAX_HDR_LEN], uint8_t opcode, bool fin,
                              uint64_t payload_len, const uint8_t *mask_key);

/* XORs len bytes from src into dst with mask_key, starting at byte `offset`
 * of the payload (so a payload can be unmasked in pieces). dst may equal src. */
void ws_unmask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask_key[static 4],
               uint64_t offset);

#endif
