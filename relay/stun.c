#include "stun.h"

#include "bytes.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

/* Longest address inside (XOR-)MAPPED-ADDRESS: IPv6 (bytes). */
#define ADDR_MAX_LEN 16
/* (XOR-)MAPPED-ADDRESS value before the address: 1B zero, 1B family, 2B port. */
#define ADDR_VALUE_PREFIX_LEN 4

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) one byte at a time:
 * entry i is the CRC register after shifting in byte i. FINGERPRINT is the
 * only user; this is an error check, not cryptography. */
static const uint32_t crc32_table[256] = {
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
    0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988, 0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
    0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
    0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172, 0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
    0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
    0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924, 0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
    0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
    0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e, 0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
    0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
    0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0, 0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
    0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
    0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a, 0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
    0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
    0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc, 0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
    0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
    0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236, 0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
    0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
    0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38, 0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
    0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
    0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2, 0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
    0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
    0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94, 0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        crc = crc32_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    }
    return crc ^ 0xffffffffu;
}

/* Walks attributes in buf[off..end), which the header check has bounded. */
struct attr_iter {
    const uint8_t *buf; /* borrowed: the whole message */
    size_t off;         /* next attribute header */
    size_t end;         /* end of the attributes (header length field) */
};

/* Steps to the next attribute. Returns 1 with *type, *val_off (offset of the
 * value in buf) and *val_len, 0 at the end, or -EINVAL when the header or the
 * padded value runs past the end. */
static int attr_next(struct attr_iter *it, uint16_t *type, size_t *val_off, size_t *val_len,
                     char *err)
{
    if (it->off >= it->end) {
        return 0;
    }
    if (STUN_ATTR_HEADER_LEN > it->end - it->off) {
        return dc_err_set(err, -EINVAL, "stun: truncated attribute header at offset %zu", it->off);
    }
    const uint8_t *h = it->buf + it->off;
    size_t len = dc_get_be16(h + 2);
    size_t padded = (len + 3) & ~(size_t)3;
    size_t voff = it->off + STUN_ATTR_HEADER_LEN;
    if (padded > it->end - voff) {
        return dc_err_set(err, -EINVAL,
                          "stun: attribute 0x%04x length %zu overruns the message at offset %zu",
                          dc_get_be16(h), len, it->off);
    }
    *type = dc_get_be16(h);
    *val_off = voff;
    *val_len = len;
    it->off = voff + padded;
    return 1;
}

/* Checks the 20-byte header: top bits, cookie, type, and a length field that
 * is a multiple of 4 and fits in len (equals it when is_exact). Sets *end to
 * the end of the attributes. */
static int check_header(const uint8_t *buf, size_t len, uint16_t want_type, bool is_exact,
                        size_t *end, char *err)
{
    if (len < STUN_HEADER_LEN) {
        return dc_err_set(err, -EINVAL, "stun: short message: %zu bytes", len);
    }
    if ((buf[0] & 0xc0u) != 0) {
        return dc_err_set(err, -EINVAL, "stun: not STUN: first byte 0x%02x", buf[0]);
    }
    uint32_t cookie = dc_get_be32(buf + 4);
    if (cookie != STUN_MAGIC_COOKIE) {
        return dc_err_set(err, -EINVAL, "stun: not STUN: magic cookie 0x%08x", cookie);
    }
    uint16_t type = dc_get_be16(buf);
    if (type != want_type) {
        return dc_err_set(err, -EINVAL, "stun: message type 0x%04x, want 0x%04x", type, want_type);
    }
    size_t attrs_len = dc_get_be16(buf + 2);
    size_t avail = len - STUN_HEADER_LEN;
    if (attrs_len % 4 != 0) {
        return dc_err_set(err, -EINVAL, "stun: length field %zu not a multiple of 4", attrs_len);
    }
    if (attrs_len > avail || (is_exact && attrs_len != avail)) {
        return dc_err_set(err, -EINVAL, "stun: length field %zu but %zu bytes after the header",
                          attrs_len, avail);
    }
    *end = STUN_HEADER_LEN + attrs_len;
    return 0;
}

/* Checks every attribute of buf[0..end) for shape, and FINGERPRINT, when
 * present, for being last and matching the bytes before it. */
static int check_attrs(const uint8_t *buf, size_t end, char *err)
{
    struct attr_iter it = {.buf = buf, .off = STUN_HEADER_LEN, .end = end};
    uint16_t type = 0;
    size_t voff = 0;
    size_t vlen = 0;
    for (;;) {
        int rc = attr_next(&it, &type, &voff, &vlen, err);
        if (rc <= 0) {
            return rc;
        }
        if (type != STUN_ATTR_FINGERPRINT) {
            continue;
        }
        if (vlen != 4) {
            return dc_err_set(err, -EINVAL, "stun: FINGERPRINT length %zu, want 4", vlen);
        }
        if (it.off != end) {
            return dc_err_set(err, -EINVAL, "stun: FINGERPRINT is not the last attribute");
        }
        uint32_t want = crc32_ieee(buf, voff - STUN_ATTR_HEADER_LEN) ^ STUN_FINGERPRINT_XOR;
        uint32_t got = dc_get_be32(buf + voff);
        if (got != want) {
            return dc_err_set(err, -EINVAL, "stun: FINGERPRINT 0x%08x, want 0x%08x", got, want);
        }
    }
}

int stun_parse_binding_request(const uint8_t *buf, size_t len, uint8_t txid[static STUN_TXID_LEN],
                               char *err)
{
    size_t end = 0;
    int rc = check_header(buf, len, STUN_BINDING_REQUEST, true, &end, err);
    if (rc < 0) {
        return rc;
    }
    rc = check_attrs(buf, end, err);
    if (rc < 0) {
        return rc;
    }
    memcpy(txid, buf + 8, STUN_TXID_LEN);
    return 0;
}

/* Writes the header: type, attribute length, cookie, transaction ID. */
static void put_header(uint8_t *out, uint16_t type, size_t attrs_len,
                       const uint8_t txid[static STUN_TXID_LEN])
{
    dc_put_be16(out, type);
    dc_put_be16(out + 2, (uint16_t)attrs_len);
    dc_put_be32(out + 4, STUN_MAGIC_COOKIE);
    memcpy(out + 8, txid, STUN_TXID_LEN);
}

/* The XOR-MAPPED-ADDRESS address mask: the cookie, then the transaction ID. */
static void xor_mask(const uint8_t txid[static STUN_TXID_LEN], uint8_t mask[static ADDR_MAX_LEN])
{
    dc_put_be32(mask, STUN_MAGIC_COOKIE);
    memcpy(mask + 4, txid, STUN_TXID_LEN);
}

/* Extracts the address bytes (4 or 16; IPv4-mapped IPv6 becomes 4) and the
 * host-order port of addr. Returns 0, or -EAFNOSUPPORT for other families. */
static int sockaddr_to_bytes(const struct sockaddr_storage *addr, uint8_t ip[static ADDR_MAX_LEN],
                             size_t *ip_len, uint16_t *port)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
        memcpy(ip, &v4->sin_addr, 4);
        *ip_len = 4;
        *port = ntohs(v4->sin_port);
        return 0;
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
            memcpy(ip, v6->sin6_addr.s6_addr + 12, 4);
            *ip_len = 4;
        } else {
            memcpy(ip, v6->sin6_addr.s6_addr, 16);
            *ip_len = 16;
        }
        *port = ntohs(v6->sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* Fills addr from address bytes (4 or 16) and a host-order port; an
 * IPv4-mapped IPv6 address becomes AF_INET. */
static void bytes_to_sockaddr(const uint8_t *ip, size_t ip_len, uint16_t port,
                              struct sockaddr_storage *addr)
{
    struct in6_addr a6;
    memset(addr, 0, sizeof(*addr));
    if (ip_len == 16) {
        memcpy(&a6, ip, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&a6)) {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
            v6->sin6_family = AF_INET6;
            v6->sin6_addr = a6;
            v6->sin6_port = htons(port);
            return;
        }
        ip += 12;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
    v4->sin_family = AF_INET;
    memcpy(&v4->sin_addr, ip, 4);
    v4->sin_port = htons(port);
}

size_t stun_encode_binding_response(const uint8_t txid[static STUN_TXID_LEN],
                                    const struct sockaddr_storage *addr, uint8_t *out,
                                    size_t out_len)
{
    uint8_t ip[ADDR_MAX_LEN];
    size_t ip_len;
    uint16_t port;
    if (sockaddr_to_bytes(addr, ip, &ip_len, &port) < 0) {
        return 0;
    }
    size_t value_len = ADDR_VALUE_PREFIX_LEN + ip_len;
    size_t total = STUN_HEADER_LEN + STUN_ATTR_HEADER_LEN + value_len;
    if (out_len < total) {
        return 0;
    }
    put_header(out, STUN_BINDING_RESPONSE, STUN_ATTR_HEADER_LEN + value_len, txid);
    uint8_t *a = out + STUN_HEADER_LEN;
    dc_put_be16(a, STUN_ATTR_XOR_MAPPED_ADDRESS);
    dc_put_be16(a + 2, (uint16_t)value_len);
    a[4] = 0;
    a[5] = ip_len == 4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
    dc_put_be16(a + 6, port ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
    uint8_t mask[ADDR_MAX_LEN];
    xor_mask(txid, mask);
    for (size_t i = 0; i < ip_len; i++) {
        a[8 + i] = ip[i] ^ mask[i];
    }
    return total;
}

size_t stun_encode_binding_request(const uint8_t txid[static STUN_TXID_LEN], uint8_t *out,
                                   size_t out_len)
{
    if (out_len < STUN_BINDING_REQUEST_LEN) {
        return 0;
    }
    put_header(out, STUN_BINDING_REQUEST, STUN_BINDING_REQUEST_LEN - STUN_HEADER_LEN, txid);
    uint8_t *a = out + STUN_HEADER_LEN;
    dc_put_be16(a, STUN_ATTR_SOFTWARE);
    dc_put_be16(a + 2, STUN_SOFTWARE_TAILNODE_LEN);
    memcpy(a + 4, STUN_SOFTWARE_TAILNODE, STUN_SOFTWARE_TAILNODE_LEN);
    size_t fp_off = STUN_BINDING_REQUEST_LEN - STUN_FINGERPRINT_ATTR_LEN;
    dc_put_be16(out + fp_off, STUN_ATTR_FINGERPRINT);
    dc_put_be16(out + fp_off + 2, 4);
    dc_put_be32(out + fp_off + 4, crc32_ieee(out, fp_off) ^ STUN_FINGERPRINT_XOR);
    return STUN_BINDING_REQUEST_LEN;
}

/* Decodes a MAPPED-ADDRESS value, or an XOR-MAPPED-ADDRESS one when txid is
 * not NULL, into addr. Longer values are accepted (extra bytes ignored). */
static int decode_address(const uint8_t *val, size_t len, const uint8_t *txid,
                          struct sockaddr_storage *addr, char *err)
{
    if (len < ADDR_VALUE_PREFIX_LEN) {
        return dc_err_set(err, -EINVAL, "stun: address attribute too short: %zu bytes", len);
    }
    size_t ip_len = val[1] == STUN_FAMILY_IPV4 ? 4 : val[1] == STUN_FAMILY_IPV6 ? 16 : 0;
    if (ip_len == 0) {
        return dc_err_set(err, -EINVAL, "stun: address family 0x%02x", val[1]);
    }
    if (ip_len > len - ADDR_VALUE_PREFIX_LEN) {
        return dc_err_set(err, -EINVAL,
                          "stun: address attribute too short for family %u: %zu bytes", val[1],
                          len);
    }
    uint16_t port = dc_get_be16(val + 2);
    uint8_t ip[ADDR_MAX_LEN];
    memcpy(ip, val + ADDR_VALUE_PREFIX_LEN, ip_len);
    if (txid != NULL) {
        uint8_t mask[ADDR_MAX_LEN];
        xor_mask(txid, mask);
        for (size_t i = 0; i < ip_len; i++) {
            ip[i] ^= mask[i];
        }
        port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
    }
    bytes_to_sockaddr(ip, ip_len, port, addr);
    return 0;
}

/* Finds the mapped address in the checked attributes of buf[0..end): the
 * last XOR-MAPPED-ADDRESS (either number), else the last MAPPED-ADDRESS. */
static int find_address(const uint8_t *buf, size_t end, struct sockaddr_storage *addr, char *err)
{
    const uint8_t *txid = buf + 8;
    struct sockaddr_storage xor_addr, plain_addr;
    bool has_xor = false, has_plain = false;
    struct attr_iter it = {.buf = buf, .off = STUN_HEADER_LEN, .end = end};
    uint16_t type = 0;
    size_t voff = 0;
    size_t vlen = 0;
    for (;;) {
        int rc = attr_next(&it, &type, &voff, &vlen, err);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            break;
        }
        if (type == STUN_ATTR_XOR_MAPPED_ADDRESS || type == STUN_ATTR_XOR_MAPPED_ADDRESS_ALT) {
            rc = decode_address(buf + voff, vlen, txid, &xor_addr, err);
            has_xor = true;
        } else if (type == STUN_ATTR_MAPPED_ADDRESS) {
            rc = decode_address(buf + voff, vlen, NULL, &plain_addr, err);
            has_plain = true;
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (!has_xor && !has_plain) {
        return dc_err_set(err, -EINVAL, "stun: response has no mapped address");
    }
    *addr = has_xor ? xor_addr : plain_addr;
    return 0;
}

int stun_parse_binding_response(const uint8_t *buf, size_t len, uint8_t txid[static STUN_TXID_LEN],
                                struct sockaddr_storage *addr, char *err)
{
    size_t end = 0;
    int rc = check_header(buf, len, STUN_BINDING_RESPONSE, false, &end, err);
    if (rc < 0) {
        return rc;
    }
    rc = check_attrs(buf, end, err);
    if (rc < 0) {
        return rc;
    }
    rc = find_address(buf, end, addr, err);
    if (rc < 0) {
        return rc;
    }
    memcpy(txid, buf + 8, STUN_TXID_LEN);
    return 0;
}
