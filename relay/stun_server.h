/* stun_server: answers STUN Binding requests on one UDP socket on the loop.
 *
 * Every datagram that stun_parse_binding_request() accepts (Tailscale's or a
 * plain RFC 5389 request) gets a Binding success response with the sender's
 * address, sent straight back with one sendto. Everything else (other STUN
 * messages, malformed ones, truncated or oversized datagrams, garbage) is
 * dropped silently and only counted: no error response, no per-packet log.
 *
 * Loop rules: the socket is level-triggered; one wake-up reads batches with
 * recvmmsg until EAGAIN or STUN_SERVER_MAX_PER_WAKEUP datagrams, so a flood
 * cannot starve the DERP connections (the rest is read on the next wake-up).
 * Receive and send buffers live in the struct: nothing is allocated per
 * packet. A response that would block is dropped (the client retries). */
#ifndef DC_RELAY_STUN_SERVER_H
#define DC_RELAY_STUN_SERVER_H

#include "err.h"
#include "loop.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* Datagrams taken per recvmmsg call. */
#define STUN_SERVER_BATCH 16
/* Datagrams handled per loop wake-up before yielding to other fds. */
#define STUN_SERVER_MAX_PER_WAKEUP 256
/* Receive buffer per datagram (bytes). Requests are 20-40 bytes (Tailscale)
 * and RFC 5389 keeps messages under the path MTU; longer datagrams are
 * truncated by the kernel and ignored. */
#define STUN_SERVER_RECV_LEN 1500

/* One STUN listener. All-zero is a valid stopped server; start it with
 * stun_server_start() and stop it with stun_server_stop(). Counters are
 * read directly for metrics. */
struct stun_server {
    struct dc_loop *loop; /* borrowed; must outlive stun_server_stop() */
    struct dc_io io;      /* read watch on the socket */
    int fd;               /* owned UDP socket; valid only while is_open */
    bool is_open;         /* started and not yet stopped */
    uint16_t port;        /* local port actually bound (for ":0") */
    uint64_t requests;    /* datagrams accepted as Binding requests */
    uint64_t responses;   /* responses the kernel took */
    uint64_t ignored;     /* datagrams dropped: not a valid Binding request */
    uint64_t send_errors; /* responses dropped because sendto failed */
    /* recvmmsg state, reused for every batch */
    struct mmsghdr msgs[STUN_SERVER_BATCH];
    struct iovec iovs[STUN_SERVER_BATCH];
    struct sockaddr_storage peers[STUN_SERVER_BATCH];
    uint8_t bufs[STUN_SERVER_BATCH][STUN_SERVER_RECV_LEN];
};

/* Binds a UDP socket on listen_addr ("ip:port", "[ip6]:port" or ":port",
 * numeric; ":port" is dual-stack) and starts answering on loop, which is
 * kept until stun_server_stop(). s must be zeroed or stopped, and must not
 * move while started. Logs one info line with the bound address. Returns 0,
 * or negative errno with err (DC_ERR_LEN, may be NULL) filled. */
int stun_server_start(struct stun_server *s, struct dc_loop *loop, const char *listen_addr,
                      char *err) DC_MUST_CHECK;

/* Stops watching and closes the socket; counters are kept. Safe on a zeroed
 * or already stopped server. */
void stun_server_stop(struct stun_server *s);

/* Returns the local UDP port while started (the real one for ":0"), else 0. */
uint16_t stun_server_port(const struct stun_server *s);

#endif
