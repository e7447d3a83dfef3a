/* http: HTTP/1.1 message-head parser (request and response heads), pure.
 *
 * Parses a start line, header fields and the blank line that ends a head,
 * and hands back spans that point into the caller's buffer. It does no I/O,
 * no logging and no allocation, never reads past `len` and needs no NUL.
 * It does not read bodies and gives no meaning to Content-Length,
 * Transfer-Encoding, Connection or Host: callers that read a body must
 * reject a request with more than one of those themselves (RFC 9112 6.3).
 * Percent-encoding in the target and query is left as is.
 *
 * Accepted syntax (RFC 9112, checked against Go's net/http):
 * - lines end in CRLF or a bare LF; a CR not followed by LF is an error;
 * - request line: token SP target SP "HTTP/1.0" | "HTTP/1.1", single spaces;
 *   empty lines before it are skipped (RFC 9112 2.2);
 * - target: origin-form ("/path?query"), "*", or absolute-form
 *   ("http://host/path?query", scheme case-insensitive); visible ASCII only;
 * - status line: "HTTP/1.x" SP 3 digits (100-999) [SP reason];
 * - header field: token ":" OWS value OWS; no whitespace before the colon,
 *   no obsolete line folding, no control characters but HTAB in values
 *   (bytes 0x80-0xff are allowed there, as obs-text).
 *
 * All parse functions return >0 = bytes of the head, blank line included
 * (whatever follows, a body or the first DERP frame of a fast-start client,
 * starts at that offset); 0 = head incomplete, call again with more bytes
 * (the parse restarts from buf[0]; the output is unspecified); <0 = -EINVAL
 * for malformed input or -EMSGSIZE over a limit below, with one sentence in
 * err (DC_ERR_LEN bytes, may be NULL). Malformed bytes are reported as soon as
 * they arrive, without waiting for the rest of the head. */
#ifndef DC_COMMON_HTTP_H
#define DC_COMMON_HTTP_H

#include "bytes.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Longest message head accepted, start line through the blank line, in bytes.
 * A head not complete within this many bytes is -EMSGSIZE. Same as Node.js's
 * default http maxHeaderSize (16 KiB) and twice nginx's 8k header buffer;
 * Tailscale clients send heads of about 200 bytes. */
#define HTTP_MAX_HEAD_LEN 16384
/* Most header fields accepted in one head; one more is -EMSGSIZE. Our limit:
 * derphttp and WebSocket clients send under 10, browsers about 20; Apache's
 * LimitRequestFields default is 100. */
#define HTTP_MAX_HEADERS 64

/* One header field. Both spans point into the parsed buffer. */
struct http_header {
    struct dc_span name;  /* field name as sent (compare with http_span_eq_nocase) */
    struct dc_span value; /* field value, leading and trailing SP/HTAB removed; may be empty */
};

/* A parsed request head. Every span points into the buffer given to
 * http_request_parse() and is valid while that buffer is; an empty span may
 * have p == NULL. The all-zero struct is a valid empty request. */
struct http_request {
    struct dc_span method;    /* e.g. "GET"; case-sensitive token */
    struct dc_span target;    /* request target exactly as sent */
    struct dc_span authority; /* "host[:port]" of an absolute-form target, else empty */
    struct dc_span path;      /* target up to '?': "/derp", "*"; empty only for an
                                 absolute-form target without a path ("http://h?x") */
    struct dc_span query;     /* bytes after the first '?', not decoded; may be empty */
    int minor_version;        /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    size_t num_headers;       /* entries used in headers[] */
    struct http_header headers[HTTP_MAX_HEADERS]; /* in the order received */
};

/* A parsed response head; spans as in struct http_request. */
struct http_response {
    int minor_version;                            /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    int status;                                   /* 100-999 */
    struct dc_span reason;                        /* reason phrase; may be empty */
    size_t num_headers;                           /* entries used in headers[] */
    struct http_header headers[HTTP_MAX_HEADERS]; /* in the order received */
};

/* Parses the request head at the start of buf[0..len) into req (borrowed;
 * its spans point into buf). Returns head bytes, 0 for more, or -EINVAL /
 * -EMSGSIZE with err set, as described at the top of this file. */
ssize_t http_request_parse(const char *buf, size_t len, struct http_request *req,
                           char *err) DC_MUST_CHECK;

/* Parses the response head at the start of buf[0..len) into resp; same
 * return convention and limits as http_request_parse(). Empty lines before
 * the status line are an error. */
ssize_t http_response_parse(const char *buf, size_t len, struct http_response *resp,
                            char *err) DC_MUST_CHECK;

/* Returns the value of the first header in hdrs[0..n) whose name equals name
 * (ASCII case-insensitive), or NULL. The pointer is into hdrs. */
const struct dc_span *http_header_get(const struct http_header *hdrs, size_t n, const char *name);

/* Reports whether value, a comma-separated list ("keep-alive, Upgrade"),
 * holds token (ASCII case-insensitive; OWS around elements ignored). */
bool http_header_has_token(struct dc_span value, const char *token);

/* Reports whether any header named name in hdrs[0..n) holds token in its
 * list; use for fields that may be repeated, such as Connection. */
bool http_headers_have_token(const struct http_header *hdrs, size_t n, const char *name,
                             const char *token);

/* Reports whether span equals the NUL-terminated s, ASCII case-insensitive. */
bool http_span_eq_nocase(struct dc_span span, const char *s);

/* Finds the first "key=value" or bare "key" pair in query ("a=1&b&c=") whose
 * key equals key byte for byte. Nothing is percent-decoded: pass key in the
 * form it is sent in and decode *val yourself if it may be encoded. Returns 0
 * with *val pointing into query (empty for "b" and "c="), or -ENOENT. */
int http_query_get(struct dc_span query, const char *key, struct dc_span *val) DC_MUST_CHECK;

/* Returns the RFC 9110 reason phrase for 101, 200, 204, 304, 400, 404, 405,
 * 408, 413, 426, 429, 431, 500 and 503 (static string), or "" for any other
 * code (an empty reason phrase is valid on the wire). */
const char *http_status_text(int code);

#endif
