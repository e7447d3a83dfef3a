#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dc_net_split_hostport(const char *text, char *host, size_t host_len, uint16_t *port, char *err)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return dc_err_set(err, -EINVAL, "address: want [ip6]:port: `%s'", text);
        }
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            return dc_err_set(err, -EINVAL, "address: want host:port: `%s'", text);
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen) != NULL) {
            return dc_err_set(err, -EINVAL, "address: IPv6 needs brackets: `%s'", text);
        }
    }
    if (hlen >= host_len) {
        return dc_err_set(err, -EINVAL, "address: host too long: `%s'", text);
    }
    char *end = NULL;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || p > 65535) {
        return dc_err_set(err, -EINVAL, "address: bad port: `%s'", text);
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int dc_net_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *ss_len, char *err)
{
    char host[DC_ADDR_TEXT_LEN];
    uint16_t port;
    int rc = dc_net_split_hostport(text, host, sizeof(host), &port, err);
    if (rc < 0) {
        return rc;
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (host[0] == '\0') {
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_any;
        v6->sin6_port = htons(port);
        *ss_len = sizeof(*v6);
    } else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *ss_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *ss_len = sizeof(*v6);
    } else {
        return dc_err_set(err, -EINVAL, "address: want a numeric IP: `%s'", text);
    }
    return 0;
}

void dc_net_format_addr(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(out, out_len, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(out, out_len, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(out, out_len, "?");
    }
}

static int listen_common(const char *text, int type, int backlog, char *err)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int rc = dc_net_parse_addr(text, &ss, &len, err);
    if (rc < 0) {
        return rc;
    }
    int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return dc_err_set(err, -errno, "socket: %s", strerror(errno));
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) {
        int zero = 0; /* ":port" serves IPv4 and IPv6 alike */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        rc = dc_err_set(err, -errno, "bind `%s': %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    if (type == SOCK_STREAM && listen(fd, backlog) < 0) {
        rc = dc_err_set(err, -errno, "listen `%s': %s", text, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

int dc_net_listen_tcp(const char *text, int backlog, char *err)
{
    return listen_common(text, SOCK_STREAM, backlog, err);
}

int dc_net_listen_udp(const char *text, char *err)
{
    return listen_common(text, SOCK_DGRAM, 0, err);
}

uint16_t dc_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

int dc_net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peer_len)
{
    for (;;) {
        *peer_len = sizeof(*peer);
        int fd = accept4(lfd, (struct sockaddr *)peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            return fd;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int dc_net_set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        return -errno;
    }
    return 0;
}

int dc_net_set_nonblock(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        return -errno;
    }
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (fcntl(fd, F_SETFL, flags) < 0) {
        return -errno;
    }
    return 0;
}

static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int n = poll(&pfd, 1, timeout_ms);
        if (n == 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0) {
            rc = -soerr;
            goto out;
        }
    }
    rc = dc_net_set_nonblock(fd, 0);
out:
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int dc_net_connect_tcp(const char *host, uint16_t port, int timeout_ms, char *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        return dc_err_set(err, -EHOSTUNREACH, "dns: cannot resolve `%s': %s", host,
                          gai_strerror(gai));
    }
    int rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(ai, timeout_ms);
        if (rc >= 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (rc < 0) {
        dc_err_set(err, rc, "tcp: connect to %s:%u: %s", host, port,
                   rc == -ETIMEDOUT ? "timed out" : dc_strerror(rc));
    }
    return rc;
}
