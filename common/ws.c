#include "ws.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

/* RFC 6455 1.3: appended to the client's key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/* Sec-WebSocket-Key: base64 of 16 bytes is 24 characters. */
#define WS_KEY_TEXT_LEN 24

int ws_accept_key(struct dc_span key, char out[static WS_ACCEPT_LEN])
{
    /* 16 bytes in base64: 21 alphabet characters, a 22nd that only carries
     * the last two bits (A, Q, g or w), then "==" (RFC 6455 4.2.1). */
    if (key.len != WS_KEY_TEXT_LEN || key.p[22] != '=' || key.p[23] != '=' || key.p[21] == 0 ||
        strchr("AQgw", key.p[21]) == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < 21; i++) {
        uint8_t ch = key.p[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (!ok) {
            return -EINVAL;
        }
    }
    char text[WS_KEY_TEXT_LEN + sizeof(ws_guid)];
    memcpy(text, key.p, WS_KEY_TEXT_LEN);
    memcpy(text + WS_KEY_TEXT_LEN, ws_guid, sizeof(ws_guid) - 1);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(text, WS_KEY_TEXT_LEN + sizeof(ws_guid) - 1, digest, &dlen, EVP_sha1(), NULL) !=
            1 ||
        dlen != 20) {
        return -EINVAL;
    }
    EVP_EncodeBlock((unsigned char *)out, digest, 20); /* 28 characters + NUL */
    return 0;
}

static bool opcode_known(uint8_t op)
{
    return op == WS_OP_CONTINUATION || op == WS_OP_TEXT || op == WS_OP_BINARY ||
           op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG;
}

ssize_t ws_frame_header_decode(const uint8_t *buf, size_t len, bool must_mask, uint64_t max_payload,
                               struct ws_frame_hdr *h, char *err)
{
    if (len < 2) {
        return 0;
    }
    h->fin = (buf[0] & 0x80) != 0;
    h->opcode = buf[0] & 0x0f;
    h->masked = (buf[1] & 0x80) != 0;
    if ((buf[0] & 0x70) != 0) {
        return dc_err_set(err, -EPROTO, "websocket: reserved bits set (no extension agreed)");
    }
    if (!opcode_known(h->opcode)) {
        return dc_err_set(err, -EPROTO, "websocket: unknown opcode %u", h->opcode);
    }
    if (must_mask && !h->masked) {
        return dc_err_set(err, -EPROTO, "websocket: client frame is not masked");
    }
    size_t need = 2;
    uint64_t plen = buf[1] & 0x7f;
    if (plen == 126) {
        need += 2;
    } else if (plen == 127) {
        need += 8;
    }
    if (h->masked) {
        need += 4;
    }
    if (len < need) {
        return 0;
    }
    if (plen == 126) {
        plen = dc_get_be16(buf + 2);
    } else if (plen == 127) {
        plen = (uint64_t)dc_get_be32(buf + 2) << 32 | dc_get_be32(buf + 6);
        if (plen >> 63) {
            return dc_err_set(err, -EPROTO, "websocket: length has its top bit set");
        }
    }
    if (h->opcode >= WS_OP_CLOSE && (!h->fin || plen > WS_MAX_CONTROL_LEN)) {
        return dc_err_set(err, -EPROTO, "websocket: control frame fragmented or over 125 bytes");
    }
    if (plen > max_payload) {
        return dc_err_set(err, -EMSGSIZE, "websocket: frame of %llu bytes over the limit of %llu",
                          (unsigned long long)plen, (unsigned long long)max_payload);
    }
    if (h->masked) {
        memcpy(h->mask_key, buf + need - 4, 4);
    }
    h->payload_len = plen;
    return (ssize_t)need;
}

size_t ws_frame_header_encode(uint8_t out[static WS_MAX_HDR_LEN], uint8_t opcode, bool fin,
                              uint64_t payload_len, const uint8_t *mask_key)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mask_bit = mask_key != NULL ? 0x80 : 0;
    if (payload_len <= 125) {
        out[1] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xffff) {
        out[1] = (uint8_t)(mask_bit | 126);
        dc_put_be16(out + 2, (uint16_t)payload_len);
        n = 4;
    } else {
        out[1] = (uint8_t)(mask_bit | 127);
        dc_put_be32(out + 2, (uint32_t)(payload_len >> 32));
        dc_put_be32(out + 6, (uint32_t)payload_len);
        n = 10;
    }
    if (mask_key != NULL) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

void ws_unmask(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask_key[static 4],
               uint64_t offset)
{
    for (size_t i = 0; i < len; i++) {
        dst[i] = src[i] ^ mask_key[(offset + i) & 3];
    }
}
