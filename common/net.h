/* net: small socket chores, each one function (the shape of redis's anet).
 *
 * Errors come back as negative errno plus, where a human reads them, a
 * sentence in `char err[DC_ERR_LEN]` ("bind 127.0.0.1:80: Permission denied").
 * Listening sockets are non-blocking and close-on-exec. */
#ifndef DC_COMMON_NET_H
#define DC_COMMON_NET_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest "host:port" text accepted or produced, with its NUL. */
#define DC_ADDR_TEXT_LEN 300

/* Splits "host:port", "[v6]:port" or ":port" into host (no brackets, may be
 * empty) and port. Returns 0, or -EINVAL with a message quoting the text. */
int dc_net_split_hostport(const char *text, char *host, size_t host_len, uint16_t *port,
                          char *err) DC_MUST_CHECK;

/* Parses a numeric "ip:port" / "[ip6]:port" / ":port" (any address) into ss. */
int dc_net_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *ss_len,
                      char *err) DC_MUST_CHECK;

/* Formats ss as "ip:port" or "[ip6]:port" into out (DC_ADDR_TEXT_LEN). */
void dc_net_format_addr(const struct sockaddr_storage *ss, char *out, size_t out_len);

/* Opens a non-blocking listening TCP socket on text; returns the fd or
 * negative errno. */
int dc_net_listen_tcp(const char *text, int backlog, char *err) DC_MUST_CHECK;
/* Opens a non-blocking bound UDP socket on text; returns the fd or negative errno. */
int dc_net_listen_udp(const char *text, char *err) DC_MUST_CHECK;

/* Returns the port a bound socket actually listens on (for ":0"), or 0. */
uint16_t dc_net_local_port(int fd);

/* Accepts one connection, non-blocking and close-on-exec; returns the fd,
 * -EAGAIN when none is waiting, or another negative errno. */
int dc_net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peer_len) DC_MUST_CHECK;

/* Sets TCP_NODELAY; returns 0 or negative errno. */
int dc_net_set_nodelay(int fd) DC_MUST_CHECK;
/* Sets or clears O_NONBLOCK; returns 0 or negative errno. */
int dc_net_set_nonblock(int fd, int on) DC_MUST_CHECK;

/* Resolves host (blocking getaddrinfo) and connects with a timeout; the
 * returned fd is blocking. On failure returns -EHOSTUNREACH for DNS failure
 * ("dns: ..."), -ETIMEDOUT, or the connect errno, with a message in err. */
int dc_net_connect_tcp(const char *host, uint16_t port, int timeout_ms, char *err) DC_MUST_CHECK;

#endif
