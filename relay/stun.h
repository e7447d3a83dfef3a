/* stun: STUN Binding request/response codec (RFC 5389), pure.
 *
 * Only what a DERP node needs: parse and encode Binding Requests (Tailscale's,
 * which carry SOFTWARE "tailnode" and FINGERPRINT, and plain RFC 5389 ones
 * with no attributes) and Binding success responses carrying the client's
 * reflexive address in XOR-MAPPED-ADDRESS. Facts from RFC 5389 and tailscale
 * net/stun/stun.go.
 *
 * It does not: do I/O, log, read clocks, allocate, handle credentials
 * (MESSAGE-INTEGRITY is not checked), build error responses, or retransmit.
 * The UDP side lives in stun_server.h.
 *
 * Message layout (all big-endian):
 *   0  2B type: top two bits zero, then method and class bits
 *   2  2B length: bytes of attributes after the header, a multiple of 4
 *   4  4B magic cookie 0x2112A442
 *   8 12B transaction ID, echoed by the response
 *  20     attributes: 2B type, 2B value length, value, zero padding to 4
 *
 * Tailscale's request (40 bytes): header with length 20, then
 *   SOFTWARE    80 22 00 08 "tailnode"        (8 bytes, so no padding)
 *   FINGERPRINT 80 28 00 04 <CRC-32 of bytes 0..31 XOR 0x5354554e>
 * Our response (32 bytes IPv4, 44 bytes IPv6): header with length 12 / 24,
 * then one XOR-MAPPED-ADDRESS, byte for byte as Tailscale's Response(). */
#ifndef DC_RELAY_STUN_H
#define DC_RELAY_STUN_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Fixed message header: type, length, cookie, transaction ID (bytes). */
#define STUN_HEADER_LEN 20
/* Magic cookie at bytes 4..7 (RFC 5389 section 6). */
#define STUN_MAGIC_COOKIE 0x2112A442u
/* Transaction ID at bytes 8..19 (bytes). */
#define STUN_TXID_LEN 12
/* Attribute header: 2B type + 2B value length (bytes). */
#define STUN_ATTR_HEADER_LEN 4

/* Message types (method Binding 0x001 with its class bits). */
#define STUN_BINDING_REQUEST  0x0001u /* class request */
#define STUN_BINDING_RESPONSE 0x0101u /* class success response */

/* Attribute types. Below 0x8000 is comprehension-required, above optional.
 * Value layouts: */
/* 1B zero, 1B family (STUN_FAMILY_*), 2B port, 4B or 16B address. */
#define STUN_ATTR_MAPPED_ADDRESS 0x0001u
/* As MAPPED-ADDRESS, but port XOR 0x2112 (the cookie's top half) and address
 * XOR the cookie (IPv4) or the cookie then the transaction ID (IPv6). */
#define STUN_ATTR_XOR_MAPPED_ADDRESS 0x0020u
/* Same value as XOR-MAPPED-ADDRESS under an optional-range number: not in the
 * RFC, but some servers send it (tailscale net/stun accepts it). */
#define STUN_ATTR_XOR_MAPPED_ADDRESS_ALT 0x8020u
/* UTF-8 text naming the sender's software, under 128 characters. */
#define STUN_ATTR_SOFTWARE 0x8022u
/* 4B CRC-32 (IEEE) of the message before this attribute, XOR
 * STUN_FINGERPRINT_XOR; the header's length already counts it. Must be the
 * last attribute. */
#define STUN_ATTR_FINGERPRINT 0x8028u

/* XORed into the CRC-32 to make FINGERPRINT ("STUN" in ASCII). */
#define STUN_FINGERPRINT_XOR 0x5354554eu
/* FINGERPRINT attribute: header + 4B value (bytes). */
#define STUN_FINGERPRINT_ATTR_LEN 8

/* Address families inside (XOR-)MAPPED-ADDRESS. */
#define STUN_FAMILY_IPV4 0x01u /* 4-byte address */
#define STUN_FAMILY_IPV6 0x02u /* 16-byte address */

/* SOFTWARE value Tailscale clients send: 8 bytes, no padding needed. */
#define STUN_SOFTWARE_TAILNODE     "tailnode"
#define STUN_SOFTWARE_TAILNODE_LEN 8

/* Length of the request stun_encode_binding_request() writes (bytes):
 * header 20 + SOFTWARE 12 + FINGERPRINT 8. */
#define STUN_BINDING_REQUEST_LEN 40
/* Lengths of the response stun_encode_binding_response() writes (bytes):
 * header 20 + XOR-MAPPED-ADDRESS (4B header, 4B family/port, address). */
#define STUN_BINDING_RESPONSE_V4_LEN 32
#define STUN_BINDING_RESPONSE_V6_LEN 44
/* Largest response encoded: use it to size out. */
#define STUN_BINDING_RESPONSE_MAX_LEN STUN_BINDING_RESPONSE_V6_LEN

/* Checks that buf is exactly one Binding Request: top bits zero, magic
 * cookie, type 0x0001, length field equal to len - 20 and a multiple of 4,
 * every attribute inside the message with its padding, and FINGERPRINT, when
 * present, last and correct. Other attributes, SOFTWARE included, are
 * optional and ignored. On success copies the transaction ID into txid and
 * returns 0; otherwise returns -EINVAL with a short reason in err
 * (DC_ERR_LEN, may be NULL) and leaves txid alone. */
int stun_parse_binding_request(const uint8_t *buf, size_t len, uint8_t txid[static STUN_TXID_LEN],
                               char *err) DC_MUST_CHECK;

/* Writes a Binding success response for txid whose XOR-MAPPED-ADDRESS is
 * addr (AF_INET or AF_INET6; an IPv4-mapped IPv6 address ::ffff:a.b.c.d is
 * written as IPv4). Returns bytes written (STUN_BINDING_RESPONSE_V4_LEN or
 * _V6_LEN), or 0 when out_len is too small or the family is neither. */
size_t stun_encode_binding_response(const uint8_t txid[static STUN_TXID_LEN],
                                    const struct sockaddr_storage *addr, uint8_t *out,
                                    size_t out_len);

/* Writes Tailscale's Binding Request for txid (SOFTWARE "tailnode", then
 * FINGERPRINT). Returns STUN_BINDING_REQUEST_LEN, or 0 when out_len is too
 * small. The caller picks txid at random (randombytes_buf). */
size_t stun_encode_binding_request(const uint8_t txid[static STUN_TXID_LEN], uint8_t *out,
                                   size_t out_len);

/* Parses a Binding success response: header as for requests except that
 * bytes after the length field's end are ignored; attributes well-formed and
 * FINGERPRINT, when present, last and correct. The address comes from the
 * last XOR-MAPPED-ADDRESS (0x0020 or 0x8020), else the last MAPPED-ADDRESS;
 * IPv4-mapped IPv6 addresses come back as AF_INET. On success fills txid and
 * *addr (sockaddr_in or sockaddr_in6, rest zeroed) and returns 0; otherwise
 * -EINVAL with a short reason in err (may be NULL). */
int stun_parse_binding_response(const uint8_t *buf, size_t len, uint8_t txid[static STUN_TXID_LEN],
                                struct sockaddr_storage *addr, char *err) DC_MUST_CHECK;

#endif
