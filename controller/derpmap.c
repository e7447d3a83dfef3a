#include "derpmap.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static int put(struct dc_buf *out, const char *s)
{
    return dc_buf_append(out, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) {
        return 1;
    }
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (n == 0 || (s[0] >= 0xf8)) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    uint32_t cp = n == 2 ? (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f)
                  : n == 3
                      ? (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f)
                      : (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
                            (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
    bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    if (overlong || surrogate || cp > 0x10ffff) {
        return 0;
    }
    return n;
}

int derpmap_json_string(struct dc_buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = put(out, "\"");
    const unsigned char *p = (const unsigned char *)s;
    while (rc == 0 && *p != '\0') {
        unsigned char c = *p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = dc_buf_append(out, esc, 2);
            p++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            rc = put(out, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
            p++;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            /* Go writes other controls and HTML-special bytes as \u00XX. */
            int n = snprintf(esc, sizeof(esc), "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            rc = dc_buf_append(out, esc, (size_t)n);
            p++;
        } else if (c < 0x80) {
            rc = dc_buf_append(out, p, 1);
            p++;
        } else {
            size_t n = utf8_len(p);
            if (n == 0) {
                rc = put(out, "\\ufffd"); /* Go replaces invalid UTF-8 */
                p++;
            } else if (n == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                rc = put(out, p[2] == 0xa8 ? "\\u2028" : "\\u2029");
                p += 3;
            } else {
                rc = dc_buf_append(out, p, n);
                p += n;
            }
        }
    }
    return rc == 0 ? put(out, "\"") : rc;
}

static int put_field_string(struct dc_buf *out, const char *name, const char *value)
{
    int rc = dc_buf_printf(out, ",\"%s\":", name);
    return rc == 0 ? derpmap_json_string(out, value) : rc;
}

static int format_node(const struct derpmap_region *r, struct dc_buf *out)
{
    int rc = dc_buf_printf(out, "{\"Name\":\"%ua\",\"RegionID\":%u", r->id, r->id);
    if (rc == 0) {
        rc = put_field_string(out, "HostName", r->host);
    }
    if (rc == 0 && r->cert_name != NULL && r->cert_name[0] != '\0') {
        rc = put_field_string(out, "CertName", r->cert_name);
    }
    if (rc == 0 && r->is_ipv4) {
        rc = put_field_string(out, "IPv4", r->host);
    }
    if (rc == 0 && r->is_ipv6) {
        rc = put_field_string(out, "IPv6", r->host);
    }
    if (rc == 0 && r->stun_port != 0) {
        rc = dc_buf_printf(out, ",\"STUNPort\":%d", r->stun_port);
    }
    if (rc == 0 && r->derp_port != 0 && r->derp_port != 443) {
        rc = dc_buf_printf(out, ",\"DERPPort\":%u", r->derp_port);
    }
    if (rc == 0 && r->insecure_for_tests) {
        rc = put(out, ",\"InsecureForTests\":true");
    }
    return rc == 0 ? put(out, "}") : rc;
}

static int format_region(const struct derpmap_region *r, struct dc_buf *out)
{
    int rc = dc_buf_printf(out, "\"%u\":{\"RegionID\":%u", r->id, r->id);
    if (rc == 0) {
        rc = put_field_string(out, "RegionCode", r->code);
    }
    if (rc == 0) {
        rc = put_field_string(out, "RegionName", r->name != NULL ? r->name : r->code);
    }
    if (rc == 0) {
        rc = put(out, ",\"Nodes\":[");
    }
    if (rc == 0) {
        rc = format_node(r, out);
    }
    return rc == 0 ? put(out, "]}") : rc;
}

int derpmap_format(const struct derpmap_region *regions, size_t n, struct dc_buf *out)
{
    dc_buf_reset(out);
    int rc = put(out, "{\"Regions\":{");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0) {
            rc = put(out, ",");
        }
        if (rc == 0) {
            rc = format_region(&regions[i], out);
        }
    }
    if (rc == 0) {
        rc = put(out, "},\"omitDefaultRegions\":true}");
    }
    return rc;
}

void derpmap_etag(const uint8_t *json, size_t len, char out[static DERPMAP_ETAG_LEN])
{
    uint8_t digest[16];
    crypto_generichash(digest, sizeof(digest), json, len, NULL, 0);
    out[0] = '"';
    sodium_bin2hex(out + 1, 33, digest, sizeof(digest));
    out[33] = '"';
    out[34] = '\0';
}
