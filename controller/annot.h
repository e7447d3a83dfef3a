/* annot: parses the two Cluster annotations, the relay endpoint and its insecure flag.
 *
 * Pure: no I/O, no logging, no allocation, no globals. Values arrive as
 * (s, len) spans (no NUL needed) exactly as they sit in the annotation, and
 * nothing is trimmed: a value with surrounding spaces is rejected, never
 * silently repaired, so the map only ever holds what the user wrote. It does
 * not resolve names, check reachability or build map entries (derpmap does).
 *
 * Error sentences start with the annotation's short name and quote the whole
 * value in `backticks' (bytes outside printable ASCII as \xNN, values past
 * ANNOT_QUOTE_MAX bytes cut short with "..."), e.g.
 *   derp-endpoint: port out of range: `eu.example.com:70000'
 *   derp-endpoint-insecure: not `true' or `false': `yes' */
#ifndef DC_CONTROLLER_ANNOT_H
#define DC_CONTROLLER_ANNOT_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The annotations on a management.loft.sh/v1 Cluster (DESIGN.md). */
#define ANNOT_ENDPOINT "loft.sh/derp-endpoint"
#define ANNOT_INSECURE "loft.sh/derp-endpoint-insecure"

/* Longest host name in bytes, without a trailing dot (RFC 1035 2.3.4, RFC 1123 2.1). */
#define ANNOT_HOST_MAX_LEN 253
/* Longest label of a host name in bytes (RFC 1035 2.3.4). */
#define ANNOT_LABEL_MAX_LEN 63
/* Longest value accepted: "[" + 45-byte IPv6 text + "]:65535", or a 253-byte
 * name, a trailing dot and ":65535". */
#define ANNOT_ENDPOINT_MAX_LEN 260
/* Bytes of a value quoted in an error sentence before it is cut short. */
#define ANNOT_QUOTE_MAX DC_QUOTE_MAX

/* A parsed loft.sh/derp-endpoint value. The all-zero struct means "none". */
struct annot_endpoint {
    char host[ANNOT_HOST_MAX_LEN + 1]; /* NUL-terminated: a lower-case DNS name without the
                                          trailing dot, or an IP literal in canonical text
                                          (inet_ntop) without brackets */
    uint16_t port;                     /* 1-65535, or 0 when the value has no port */
    bool is_ipv4;                      /* host is an IPv4 literal */
    bool is_ipv6;                      /* host is an IPv6 literal */
};

/* Parses an endpoint: `host` or `host:port`, where host is
 *   - a DNS name: dot-separated labels of letters, digits and `-' (RFC 1123),
 *     each 1-63 bytes, not starting or ending with `-', 253 bytes in all; one
 *     trailing dot is dropped; upper case is lowered (DNS ignores case, and
 *     the map must not change when only the spelling does); a name whose last
 *     label is all digits must be an IPv4 address (RFC 3696 2: no all-numeric
 *     top-level domain), so `1.2.3.256' and `01.2.3.4' are rejected;
 *   - an IPv4 literal (dotted quad, no leading zeros: inet_pton);
 *   - an IPv6 literal, bare (`fd00::1') or in brackets (`[fd00::1]'); a port
 *     needs the brackets (`[fd00::1]:8443'): a value with two or more colons
 *     and no brackets is read as an address alone, so `fd00::1:8443' is the
 *     address fd00::1:8443. Zone IDs (`%eth0') are not accepted.
 * The port is decimal 1-65535 without sign, spaces or leading zeros.
 * Rejected, each with one sentence in err: empty, whitespace anywhere, other
 * control or non-ASCII bytes, a URL scheme, a path, query or fragment,
 * userinfo, bad labels or characters (`_' included), a name over 253 bytes,
 * brackets around anything but an IPv6 address, a bad port.
 * Returns 0 with *out filled, or -EINVAL (*out zeroed) with err (may be NULL). */
int annot_endpoint_parse(const char *s, size_t len, struct annot_endpoint *out,
                         char *err) DC_MUST_CHECK;

/* Parses loft.sh/derp-endpoint-insecure: exactly `true' or `false' (lower
 * case, nothing around it; Kubernetes annotation values are strings, and we
 * do not guess at `True', `yes' or `1'). Returns 0 with *out set, or -EINVAL
 * (*out untouched) with err (may be NULL). */
int annot_insecure_parse(const char *s, size_t len, bool *out, char *err) DC_MUST_CHECK;

#endif
