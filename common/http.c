#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* Internal result of the line parsers besides 0 (done) and negative errno:
 * the bytes ran out before the item was complete. */
#define PARSE_MORE 1

/* Input bytes quoted in an error message, and the buffer that holds them
 * once escaped (\xNN each, "..." and NUL). */
#define QUOTE_MAX 40
#define QUOTE_BUF (QUOTE_MAX * 4 + 4)

/* The head being read: buf[0..end), end = min(len, HTTP_MAX_HEAD_LEN). */
struct scan {
    const char *buf; /* borrowed */
    size_t end;      /* bytes that may belong to the head */
    size_t off;      /* start of the next line */
};

/* One line of the head, without its CR LF or LF. */
struct line {
    const char *p;
    size_t n;
    bool is_complete; /* its end was seen; otherwise more bytes may extend it */
};

static struct dc_span span_of(const char *p, size_t n)
{
    struct dc_span s = {.p = (const uint8_t *)p, .len = n};
    return s;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* tchar, RFC 9110 5.6.2: the bytes of methods and field names. */
static bool is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* VCHAR: visible ASCII, the bytes of a request target. */
static bool is_vchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c > 0x20 && c < 0x7f;
}

/* HTAB, SP, VCHAR and obs-text: the bytes of field values and reasons. */
static bool is_field_char(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Compares p[0..n) with as much of lit as n covers, ASCII case-insensitive. */
static bool starts_nocase(const char *p, size_t n, const char *lit)
{
    for (size_t i = 0; i < n && lit[i] != '\0'; i++) {
        if (lower((unsigned char)p[i]) != lower((unsigned char)lit[i])) {
            return false;
        }
    }
    return true;
}

/* Writes p[0..n) into out as printable ASCII (other bytes and '\' as \xNN),
 * cut to QUOTE_MAX input bytes plus "...". Returns out. */
static const char *quote(char out[static QUOTE_BUF], const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    if (n > QUOTE_MAX) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* Sets err to "http: <what> `<p[0..n) quoted>'" and returns code. */
static int fail(char *err, int code, const char *what, const char *p, size_t n)
{
    char q[QUOTE_BUF];
    return dc_err_set(err, code, "http: %s `%s'", what, quote(q, p, n));
}

/* Reads the line at s->off into *ln and, when its end is there, moves s->off
 * past it. A CR that is the last byte available leaves the line incomplete.
 * Returns 0, or -EINVAL for a CR followed by anything but LF. */
static int scan_line(struct scan *s, struct line *ln, char *err)
{
    const char *p = s->buf + s->off;
    size_t avail = s->end - s->off;
    ln->p = p;
    ln->is_complete = false;
    for (size_t i = 0; i < avail; i++) {
        if (p[i] != '\r' && p[i] != '\n') {
            continue;
        }
        ln->n = i;
        if (p[i] == '\n') {
            ln->is_complete = true;
            s->off += i + 1;
        } else if (i + 1 == avail) {
            return 0;
        } else if (p[i + 1] != '\n') {
            return fail(err, -EINVAL, "CR not followed by LF in line", p, i + 2);
        } else {
            ln->is_complete = true;
            s->off += i + 2;
        }
        return 0;
    }
    ln->n = avail;
    return 0;
}

/* Checks an "HTTP/1.0" or "HTTP/1.1" token v[0..n); with is_complete false,
 * n may stop short of its end. Sets *minor. Returns 0, PARSE_MORE or -EINVAL. */
static int parse_version(const char *v, size_t n, bool is_complete, int *minor, char *err)
{
    static const char prefix[] = "HTTP/1.";
    const size_t plen = sizeof(prefix) - 1;
    bool ok = n <= plen + 1 && memcmp(v, prefix, n < plen ? n : plen) == 0;
    if (ok && n == plen + 1) {
        ok = v[plen] == '0' || v[plen] == '1';
    }
    if (!ok || (n <= plen && is_complete)) {
        return fail(err, -EINVAL, "bad HTTP version", v, n);
    }
    if (n <= plen) {
        return PARSE_MORE;
    }
    *minor = v[plen] - '0';
    return 0;
}

static void split_query(const char *p, size_t n, struct dc_span *path, struct dc_span *query)
{
    const char *q = memchr(p, '?', n);
    if (q == NULL) {
        *path = span_of(p, n);
        return;
    }
    *path = span_of(p, (size_t)(q - p));
    *query = span_of(q + 1, n - (size_t)(q - p) - 1);
}

/* Checks an absolute-form target t[0..n) ("http://host/path?query"). */
static int parse_absolute_target(const char *t, size_t n, bool is_done, struct http_request *req,
                                 char *err)
{
    size_t slen = 0;
    if (starts_nocase(t, n, "http://")) {
        slen = strlen("http://");
    } else if (starts_nocase(t, n, "https://")) {
        slen = strlen("https://");
    } else {
        return fail(err, -EINVAL, "request target is not /path, * or http(s)://", t, n);
    }
    if (!is_done) {
        return PARSE_MORE;
    }
    size_t a = slen;
    while (a < n && t[a] != '/' && t[a] != '?') {
        a++;
    }
    if (n < slen || a == slen) {
        return fail(err, -EINVAL, "request target has no host", t, n);
    }
    req->authority = span_of(t + slen, a - slen);
    split_query(t + a, n - a, &req->path, &req->query);
    return 0;
}

/* Checks the target t[0..n) and fills req's target, authority, path and
 * query. is_done says the SP after it was seen. */
static int parse_target(const char *t, size_t n, bool is_done, struct http_request *req, char *err)
{
    if (n == 0) {
        return is_done ? dc_err_set(err, -EINVAL, "http: empty request target") : PARSE_MORE;
    }
    if (t[0] == '*' && n > 1) {
        return fail(err, -EINVAL, "request target is not /path, * or http(s)://", t, n);
    }
    if (!is_done && (t[0] == '/' || t[0] == '*')) {
        return PARSE_MORE;
    }
    req->target = span_of(t, n);
    if (t[0] == '/' || t[0] == '*') {
        split_query(t, n, &req->path, &req->query);
        return 0;
    }
    return parse_absolute_target(t, n, is_done, req, err);
}

/* Parses the request line ln. Returns 0 only for a complete line. */
static int parse_request_line(const struct line *ln, struct http_request *req, char *err)
{
    const char *p = ln->p;
    size_t n = ln->n, i = 0;
    while (i < n && is_tchar(p[i])) {
        i++;
    }
    if (i < n && (p[i] != ' ' || i == 0)) {
        return fail(err, -EINVAL, "bad method in request line", p, i + 1);
    }
    if (i == n) {
        return ln->is_complete ? fail(err, -EINVAL, "request line has no target", p, n)
                               : PARSE_MORE;
    }
    req->method = span_of(p, i);
    size_t t = i + 1, j = t;
    while (j < n && is_vchar(p[j])) {
        j++;
    }
    if (j < n && p[j] != ' ') {
        return fail(err, -EINVAL, "bad byte in request target", p + t, j - t + 1);
    }
    if (j == n && ln->is_complete) {
        return fail(err, -EINVAL, "request line has no HTTP version", p, n);
    }
    int rc = parse_target(p + t, j - t, j < n, req, err);
    if (rc != 0) {
        return rc;
    }
    rc = parse_version(p + j + 1, n - j - 1, ln->is_complete, &req->minor_version, err);
    if (rc == 0 && !ln->is_complete) {
        return PARSE_MORE;
    }
    return rc;
}

/* Parses the status line ln: "HTTP/1.x 200 reason", reason optional. */
static int parse_status_line(const struct line *ln, struct http_response *resp, char *err)
{
    const char *p = ln->p;
    size_t n = ln->n, vlen = strlen("HTTP/1.1");
    int rc = parse_version(p, n < vlen ? n : vlen, ln->is_complete || n >= vlen,
                           &resp->minor_version, err);
    if (rc != 0) {
        return rc;
    }
    int status = 0;
    for (size_t i = vlen; i < vlen + 4; i++) {
        if (i == n) {
            return ln->is_complete ? fail(err, -EINVAL, "status line has no status code", p, n)
                                   : PARSE_MORE;
        }
        bool ok = i == vlen ? p[i] == ' ' : (p[i] >= '0' && p[i] <= '9');
        if (!ok || (i == vlen + 1 && p[i] == '0')) {
            return fail(err, -EINVAL, "bad status code in status line", p, i + 1);
        }
        status = i == vlen ? 0 : status * 10 + (p[i] - '0');
    }
    size_t r = vlen + 4;
    if (r < n && p[r] != ' ') {
        return fail(err, -EINVAL, "bad status code in status line", p, r + 1);
    }
    for (size_t i = r + 1; i < n; i++) {
        if (!is_field_char(p[i])) {
            return fail(err, -EINVAL, "control character in reason phrase", p, i + 1);
        }
    }
    if (!ln->is_complete) {
        return PARSE_MORE;
    }
    resp->status = status;
    resp->reason = r < n ? span_of(p + r + 1, n - r - 1) : span_of(p + n, 0);
    return 0;
}

/* Parses one header line (not the blank one) into hdrs[*num]. Returns 0 only
 * for a complete line. */
static int parse_header_line(const struct line *ln, struct http_header *hdrs, size_t *num,
                             char *err)
{
    const char *p = ln->p;
    size_t n = ln->n, i = 0;
    if (n == 0) {
        return PARSE_MORE; /* only an incomplete line can be empty here */
    }
    if (*num == HTTP_MAX_HEADERS) {
        return dc_err_set(err, -EMSGSIZE, "http: more than %d header fields", HTTP_MAX_HEADERS);
    }
    if (is_ows(p[0])) {
        return fail(err, -EINVAL, "header line starts with whitespace (obsolete folding)", p, n);
    }
    while (i < n && is_tchar(p[i])) {
        i++;
    }
    if (i == n) {
        return ln->is_complete ? fail(err, -EINVAL, "header line has no colon", p, n) : PARSE_MORE;
    }
    if (p[i] != ':') {
        return fail(err, -EINVAL,
                    is_ows(p[i]) ? "whitespace before colon in header" : "bad byte in header name",
                    p, i + 1);
    }
    if (i == 0) {
        return fail(err, -EINVAL, "empty header name", p, n);
    }
    for (size_t k = i + 1; k < n; k++) {
        if (!is_field_char(p[k])) {
            return fail(err, -EINVAL, "control character in value of header", p, i);
        }
    }
    if (!ln->is_complete) {
        return PARSE_MORE;
    }
    size_t v = i + 1, e = n;
    while (v < e && is_ows(p[v])) {
        v++;
    }
    while (e > v && is_ows(p[e - 1])) {
        e--;
    }
    hdrs[*num].name = span_of(p, i);
    hdrs[*num].value = span_of(p + v, e - v);
    (*num)++;
    return 0;
}

/* Parses header lines up to and including the blank line. */
static int parse_headers(struct scan *s, struct http_header *hdrs, size_t *num, char *err)
{
    for (;;) {
        struct line ln;
        int rc = scan_line(s, &ln, err);
        if (rc != 0) {
            return rc;
        }
        if (ln.is_complete && ln.n == 0) {
            return 0;
        }
        rc = parse_header_line(&ln, hdrs, num, err);
        if (rc != 0) {
            return rc;
        }
    }
}

/* Turns a parser result into the public return value. */
static ssize_t head_result(const struct scan *s, size_t len, int rc, char *err)
{
    if (rc < 0) {
        return rc;
    }
    if (rc == PARSE_MORE) {
        if (len >= HTTP_MAX_HEAD_LEN) {
            return dc_err_set(err, -EMSGSIZE, "http: head longer than %d bytes", HTTP_MAX_HEAD_LEN);
        }
        return 0;
    }
    return (ssize_t)s->off;
}

ssize_t http_request_parse(const char *buf, size_t len, struct http_request *req, char *err)
{
    memset(req, 0, sizeof(*req));
    if (len == 0) {
        return 0;
    }
    struct scan s = {.buf = buf, .end = len < HTTP_MAX_HEAD_LEN ? len : HTTP_MAX_HEAD_LEN};
    struct line ln;
    int rc;
    do { /* empty lines before the request line are skipped (RFC 9112 2.2) */
        rc = scan_line(&s, &ln, err);
    } while (rc == 0 && ln.is_complete && ln.n == 0);
    if (rc == 0) {
        rc = parse_request_line(&ln, req, err);
    }
    if (rc == 0) {
        rc = parse_headers(&s, req->headers, &req->num_headers, err);
    }
    return head_result(&s, len, rc, err);
}

ssize_t http_response_parse(const char *buf, size_t len, struct http_response *resp, char *err)
{
    memset(resp, 0, sizeof(*resp));
    if (len == 0) {
        return 0;
    }
    struct scan s = {.buf = buf, .end = len < HTTP_MAX_HEAD_LEN ? len : HTTP_MAX_HEAD_LEN};
    struct line ln;
    int rc = scan_line(&s, &ln, err);
    if (rc == 0) {
        rc = parse_status_line(&ln, resp, err);
    }
    if (rc == 0) {
        rc = parse_headers(&s, resp->headers, &resp->num_headers, err);
    }
    return head_result(&s, len, rc, err);
}

bool http_span_eq_nocase(struct dc_span span, const char *s)
{
    size_t n = strlen(s);
    if (span.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(span.p[i]) != lower((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

const struct dc_span *http_header_get(const struct http_header *hdrs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (http_span_eq_nocase(hdrs[i].name, name)) {
            return &hdrs[i].value;
        }
    }
    return NULL;
}

bool http_header_has_token(struct dc_span value, const char *token)
{
    if (value.len == 0 || token[0] == '\0') {
        return false;
    }
    const char *p = (const char *)value.p;
    size_t i = 0;
    while (i <= value.len) {
        size_t start = i;
        while (i < value.len && p[i] != ',') {
            i++;
        }
        size_t end = i;
        while (start < end && is_ows(p[start])) {
            start++;
        }
        while (end > start && is_ows(p[end - 1])) {
            end--;
        }
        if (http_span_eq_nocase(span_of(p + start, end - start), token)) {
            return true;
        }
        i++; /* past the comma, or past the end */
    }
    return false;
}

bool http_headers_have_token(const struct http_header *hdrs, size_t n, const char *name,
                             const char *token)
{
    for (size_t i = 0; i < n; i++) {
        if (http_span_eq_nocase(hdrs[i].name, name) &&
            http_header_has_token(hdrs[i].value, token)) {
            return true;
        }
    }
    return false;
}

int http_query_get(struct dc_span query, const char *key, struct dc_span *val)
{
    size_t klen = strlen(key);
    *val = span_of(NULL, 0);
    if (query.len == 0 || klen == 0) {
        return -ENOENT;
    }
    const char *p = (const char *)query.p;
    size_t i = 0;
    while (i < query.len) {
        size_t start = i;
        while (i < query.len && p[i] != '&') {
            i++;
        }
        const char *pair = p + start;
        size_t plen = i - start;
        const char *eq = memchr(pair, '=', plen);
        size_t name_len = eq != NULL ? (size_t)(eq - pair) : plen;
        if (name_len == klen && memcmp(pair, key, klen) == 0) {
            *val = eq != NULL ? span_of(eq + 1, plen - name_len - 1) : span_of(pair + plen, 0);
            return 0;
        }
        i++;
    }
    return -ENOENT;
}

const char *http_status_text(int code)
{
    switch (code) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "";
    }
}
