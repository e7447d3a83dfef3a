#include "stun_server.h"

#include "log.h"
#include "net.h"
#include "stun.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* Points every recvmmsg slot back at its buffer and address; the kernel
 * overwrites msg_namelen, msg_flags and msg_len on each call. */
static void reset_batch(struct stun_server *s)
{
    for (size_t i = 0; i < STUN_SERVER_BATCH; i++) {
        s->iovs[i].iov_base = s->bufs[i];
        s->iovs[i].iov_len = sizeof(s->bufs[i]);
        memset(&s->msgs[i], 0, sizeof(s->msgs[i]));
        s->msgs[i].msg_hdr.msg_name = &s->peers[i];
        s->msgs[i].msg_hdr.msg_namelen = sizeof(s->peers[i]);
        s->msgs[i].msg_hdr.msg_iov = &s->iovs[i];
        s->msgs[i].msg_hdr.msg_iovlen = 1;
    }
}

/* Reads up to STUN_SERVER_BATCH datagrams; returns how many, or 0 when
 * none is waiting or the read failed (the next wake-up tries again). */
static int receive_batch(struct stun_server *s)
{
    reset_batch(s);
    for (;;) {
        int n = recvmmsg(s->fd, s->msgs, STUN_SERVER_BATCH, MSG_DONTWAIT, NULL);
        if (n >= 0) {
            return n;
        }
        if (errno != EINTR) {
            return 0;
        }
    }
}

/* Sends a response, counting the outcome; never blocks. */
static void send_response(struct stun_server *s, const uint8_t *out, size_t len,
                          const struct sockaddr_storage *peer, socklen_t peer_len)
{
    for (;;) {
        ssize_t n = sendto(s->fd, out, len, MSG_DONTWAIT, (const struct sockaddr *)peer, peer_len);
        if (n >= 0) {
            s->responses++;
            return;
        }
        if (errno != EINTR) {
            s->send_errors++;
            return;
        }
    }
}

/* Answers slot i if it holds a whole Binding request, else counts it. */
static void handle_datagram(struct stun_server *s, size_t i)
{
    const struct msghdr *h = &s->msgs[i].msg_hdr;
    uint8_t txid[STUN_TXID_LEN];
    if ((h->msg_flags & MSG_TRUNC) != 0 ||
        stun_parse_binding_request(s->bufs[i], s->msgs[i].msg_len, txid, NULL) < 0) {
        s->ignored++;
        return;
    }
    s->requests++;
    uint8_t out[STUN_BINDING_RESPONSE_MAX_LEN];
    size_t len = stun_encode_binding_response(txid, &s->peers[i], out, sizeof(out));
    if (len == 0) {
        s->send_errors++; /* a sender family we cannot describe */
        return;
    }
    send_response(s, out, len, &s->peers[i], h->msg_namelen);
}

static void on_readable(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct stun_server *s = io->data;
    size_t handled = 0;
    while (handled < STUN_SERVER_MAX_PER_WAKEUP) {
        int n = receive_batch(s);
        for (int i = 0; i < n; i++) {
            handle_datagram(s, (size_t)i);
        }
        handled += (size_t)n;
        if (n < STUN_SERVER_BATCH) {
            break; /* drained; level-triggered epoll wakes us for more */
        }
    }
}

int stun_server_start(struct stun_server *s, struct dc_loop *loop, const char *listen_addr,
                      char *err)
{
    if (s->is_open) {
        return dc_err_set(err, -EBUSY, "stun: already listening on port %u", s->port);
    }
    int fd = dc_net_listen_udp(listen_addr, err);
    if (fd < 0) {
        return fd;
    }
    s->loop = loop;
    s->fd = fd;
    memset(&s->io, 0, sizeof(s->io));
    s->io.fd = fd;
    s->io.cb = on_readable;
    s->io.data = s;
    int rc = dc_io_start(loop, &s->io, DC_IO_READ);
    if (rc < 0) {
        close(fd);
        return dc_err_set(err, rc, "stun: watch `%s': %s", listen_addr, dc_strerror(rc));
    }
    s->is_open = true;
    s->port = dc_net_local_port(fd);

    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    char text[DC_ADDR_TEXT_LEN] = "?";
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0) {
        dc_net_format_addr(&local, text, sizeof(text));
    }
    dc_log(DC_LOG_INFO, "derp-stun", "listening on %s", text);
    return 0;
}

void stun_server_stop(struct stun_server *s)
{
    if (!s->is_open) {
        return;
    }
    dc_io_stop(s->loop, &s->io);
    close(s->fd);
    s->fd = -1;
    s->is_open = false;
    s->port = 0;
    s->loop = NULL;
}

uint16_t stun_server_port(const struct stun_server *s)
{
    return s->is_open ? s->port : 0;
}
