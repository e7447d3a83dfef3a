#include "annot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUOTE_BUF_LEN DC_QUOTE_BUF_LEN
/* Longest IPv6 text inet_pton can accept (INET6_ADDRSTRLEN without the NUL). */
#define IPV6_TEXT_MAX (INET6_ADDRSTRLEN - 1)
/* Longest IPv4 text (INET_ADDRSTRLEN without the NUL). */
#define IPV4_TEXT_MAX (INET_ADDRSTRLEN - 1)

/* The value being parsed, for error sentences. */
struct ep_ctx {
    const char *s; /* borrowed: the whole annotation value */
    size_t len;    /* bytes in s */
    char *err;     /* caller's DC_ERR_LEN buffer, or NULL */
};

/* Quoting for error sentences is shared: common/err.h. */
static const char *quote(const char *s, size_t len, char *buf)
{
    return dc_err_quote(s, len, buf);
}

/* Fills err with "derp-endpoint: <problem>: `<value>'" and returns -EINVAL. */
DC_PRINTF(2, 3) static int ep_fail(const struct ep_ctx *c, const char *fmt, ...)
{
    if (c->err == NULL) {
        return -EINVAL;
    }
    char problem[DC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    if (n < 0) {
        problem[0] = '\0';
    }
    char q[QUOTE_BUF_LEN];
    return dc_err_set(c->err, -EINVAL, "derp-endpoint: %s: `%s'", problem, quote(c->s, c->len, q));
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static const char *find_any(const char *s, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++) {
        if (strchr(set, s[i]) != NULL && s[i] != '\0') {
            return s + i;
        }
    }
    return NULL;
}

/* Whitespace, control and non-ASCII bytes, and the overall length. */
static int check_bytes(const struct ep_ctx *c)
{
    if (c->len == 0) {
        return dc_err_set(c->err, -EINVAL, "derp-endpoint: value is empty");
    }
    if (is_space(c->s[0]) || is_space(c->s[c->len - 1])) {
        return ep_fail(c, "surrounding whitespace");
    }
    for (size_t i = 0; i < c->len; i++) {
        unsigned char b = (unsigned char)c->s[i];
        if (is_space(c->s[i])) {
            return ep_fail(c, "contains whitespace");
        }
        if (b < 0x20 || b == 0x7f) {
            return ep_fail(c, "control byte 0x%02x", b);
        }
        if (b >= 0x80) {
            return ep_fail(c,
                           "non-ASCII byte 0x%02x (write an internationalized name in its "
                           "`xn--' form)",
                           b);
        }
    }
    if (c->len > ANNOT_ENDPOINT_MAX_LEN) {
        return ep_fail(c, "longer than %d bytes", ANNOT_ENDPOINT_MAX_LEN);
    }
    return 0;
}

/* A URL or URL parts where host[:port] belongs: scheme, userinfo, path, query, fragment. */
static int check_url_parts(const struct ep_ctx *c)
{
    char q[QUOTE_BUF_LEN];
    const char *s = c->s;
    size_t i = 0;
    if (is_alpha(s[0])) {
        while (i < c->len && (is_alpha(s[i]) || is_digit(s[i]) || strchr("+.-", s[i]) != NULL)) {
            i++;
        }
        if (c->len - i >= 3 && memcmp(s + i, "://", 3) == 0) {
            return ep_fail(c, "has a URL scheme `%s'; want host[:port]", quote(s, i + 3, q));
        }
    }
    const char *rest = find_any(s, c->len, "/?#");
    const char *at = memchr(s, '@', c->len);
    if (at != NULL && (rest == NULL || at < rest)) {
        return ep_fail(c, "has userinfo `%s'; want host[:port]", quote(s, (size_t)(at - s) + 1, q));
    }
    if (rest != NULL) {
        const char *what = *rest == '/' ? "a path" : *rest == '?' ? "a query" : "a fragment";
        return ep_fail(c, "has %s `%s'; want host[:port]", what,
                       quote(rest, c->len - (size_t)(rest - s), q));
    }
    return 0;
}

/* Decimal 1-65535, digits only, no leading zero. */
static int parse_port(const struct ep_ctx *c, const char *p, size_t n, uint16_t *port)
{
    char q[QUOTE_BUF_LEN];
    if (n == 0) {
        return ep_fail(c, "empty port");
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            return ep_fail(c, "port `%s' is not a number", quote(p, n, q));
        }
    }
    if (n > 1 && p[0] == '0') {
        return ep_fail(c, "port `%s' has a leading zero", quote(p, n, q));
    }
    if (n > 5) {
        return ep_fail(c, "port out of range");
    }
    char digits[6];
    memcpy(digits, p, n);
    digits[n] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(digits, &end, 10);
    if (errno != 0 || end != digits + n || v < 1 || v > 65535) {
        return ep_fail(c, "port out of range");
    }
    *port = (uint16_t)v;
    return 0;
}

/* An IP literal of family af (AF_INET or AF_INET6) into out->host in inet_ntop's
 * canonical text. Returns 1 when h[0..n) is one, 0 when it is not. */
static int parse_ip(int af, const char *h, size_t n, struct annot_endpoint *out)
{
    char text[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    if (n > (af == AF_INET ? IPV4_TEXT_MAX : IPV6_TEXT_MAX)) {
        return 0;
    }
    memcpy(text, h, n);
    text[n] = '\0';
    if (inet_pton(af, text, addr) != 1) {
        return 0;
    }
    if (inet_ntop(af, addr, out->host, sizeof(out->host)) == NULL) {
        return 0;
    }
    out->is_ipv4 = af == AF_INET;
    out->is_ipv6 = af == AF_INET6;
    return 1;
}

/* One label h[0..n) of a host name. */
static int check_label(const struct ep_ctx *c, const char *h, size_t n)
{
    char q[QUOTE_BUF_LEN];
    if (n == 0) {
        return ep_fail(c, "empty label in host name");
    }
    if (n > ANNOT_LABEL_MAX_LEN) {
        return ep_fail(c, "label `%s' is longer than %d bytes", quote(h, n, q),
                       ANNOT_LABEL_MAX_LEN);
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alpha(h[i]) && !is_digit(h[i]) && h[i] != '-') {
            return ep_fail(c, "invalid character `%c' in host name", h[i]);
        }
    }
    if (h[0] == '-') {
        return ep_fail(c, "label `%s' starts with `-'", quote(h, n, q));
    }
    if (h[n - 1] == '-') {
        return ep_fail(c, "label `%s' ends with `-'", quote(h, n, q));
    }
    return 0;
}

/* A DNS name, or an IPv4 literal when its last label is all digits. */
static int parse_name(const struct ep_ctx *c, const char *h, size_t n, struct annot_endpoint *out)
{
    if (n == 0) {
        return ep_fail(c, "empty host");
    }
    bool had_dot = n > 1 && h[n - 1] == '.';
    size_t name_len = had_dot ? n - 1 : n;
    if (name_len > ANNOT_HOST_MAX_LEN) {
        return ep_fail(c, "host name longer than %d bytes", ANNOT_HOST_MAX_LEN);
    }
    size_t start = 0, last = 0;
    for (size_t i = 0; i <= name_len; i++) {
        if (i == name_len || h[i] == '.') {
            int rc = check_label(c, h + start, i - start);
            if (rc != 0) {
                return rc;
            }
            last = start;
            start = i + 1;
        }
    }
    bool all_digits = true;
    for (size_t i = last; i < name_len; i++) {
        all_digits = all_digits && is_digit(h[i]);
    }
    if (all_digits) {
        if (had_dot || parse_ip(AF_INET, h, n, out) == 0) {
            return ep_fail(c, "not a valid IPv4 address");
        }
        return 0;
    }
    for (size_t i = 0; i < name_len; i++) {
        char ch = h[i];
        out->host[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    out->host[name_len] = '\0';
    return 0;
}

/* Explains why an IPv6 literal (bare or in brackets) h[0..n) did not parse. */
static int ipv6_fail(const struct ep_ctx *c, const char *h, size_t n, bool is_bare)
{
    char q[QUOTE_BUF_LEN];
    const char *zone = memchr(h, '%', n);
    if (zone != NULL) {
        return ep_fail(c, "IPv6 zone `%s' is not supported",
                       quote(zone, n - (size_t)(zone - h), q));
    }
    bool is_hex = true;
    for (size_t i = 0; i < n; i++) {
        is_hex = is_hex && (is_digit(h[i]) || strchr("abcdefABCDEF:.", h[i]) != NULL);
    }
    if (is_bare && !is_hex) {
        return ep_fail(c, "more than one `:' (an IPv6 address with a port needs brackets: "
                          "[addr]:port)");
    }
    return ep_fail(c, "not a valid IPv6 address");
}

/* `[v6]' or `[v6]:port'. */
static int parse_bracketed(const struct ep_ctx *c, struct annot_endpoint *out)
{
    char q[QUOTE_BUF_LEN];
    const char *rb = memchr(c->s, ']', c->len);
    if (rb == NULL) {
        return ep_fail(c, "missing `]'");
    }
    const char *inner = c->s + 1;
    size_t inner_len = (size_t)(rb - inner);
    size_t after = (size_t)(rb - c->s) + 1;
    if (after < c->len && c->s[after] != ':') {
        return ep_fail(c, "unexpected text after `]'");
    }
    if (inner_len == 0) {
        return ep_fail(c, "empty brackets");
    }
    if (parse_ip(AF_INET6, inner, inner_len, out) == 0) {
        bool has_colon = memchr(inner, ':', inner_len) != NULL;
        if (!has_colon || memchr(inner, '[', inner_len) != NULL) {
            return ep_fail(c, "brackets around `%s', which is not an IPv6 address",
                           quote(inner, inner_len, q));
        }
        return ipv6_fail(c, inner, inner_len, false);
    }
    if (after < c->len) {
        return parse_port(c, c->s + after + 1, c->len - after - 1, &out->port);
    }
    return 0;
}

/* Two or more colons and no brackets: an IPv6 address without a port. */
static int parse_bare_ipv6(const struct ep_ctx *c, struct annot_endpoint *out)
{
    if (parse_ip(AF_INET6, c->s, c->len, out) == 0) {
        return ipv6_fail(c, c->s, c->len, true);
    }
    return 0;
}

static int parse_unbracketed(const struct ep_ctx *c, struct annot_endpoint *out)
{
    const char *s = c->s;
    if (memchr(s, '[', c->len) != NULL) {
        return ep_fail(c, "unexpected `['");
    }
    if (memchr(s, ']', c->len) != NULL) {
        return ep_fail(c, "unexpected `]'");
    }
    size_t colons = 0, colon = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (s[i] == ':') {
            colons++;
            colon = i;
        }
    }
    if (colons > 1) {
        return parse_bare_ipv6(c, out);
    }
    if (colons == 0) {
        return parse_name(c, s, c->len, out);
    }
    if (colon == 0) {
        return ep_fail(c, "empty host");
    }
    int rc = parse_name(c, s, colon, out);
    if (rc != 0) {
        return rc;
    }
    return parse_port(c, s + colon + 1, c->len - colon - 1, &out->port);
}

int annot_endpoint_parse(const char *s, size_t len, struct annot_endpoint *out, char *err)
{
    struct ep_ctx c = {.s = s, .len = len, .err = err};
    memset(out, 0, sizeof(*out));
    int rc = check_bytes(&c);
    if (rc != 0) {
        goto out;
    }
    rc = check_url_parts(&c);
    if (rc != 0) {
        goto out;
    }
    rc = s[0] == '[' ? parse_bracketed(&c, out) : parse_unbracketed(&c, out);
out:
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

int annot_insecure_parse(const char *s, size_t len, bool *out, char *err)
{
    if (len == 4 && memcmp(s, "true", 4) == 0) {
        *out = true;
        return 0;
    }
    if (len == 5 && memcmp(s, "false", 5) == 0) {
        *out = false;
        return 0;
    }
    char q[QUOTE_BUF_LEN];
    return dc_err_set(err, -EINVAL, "derp-endpoint-insecure: not `true' or `false': `%s'",
                      quote(s, len, q));
}
