/* derp_prober: end-to-end probes of DERP map nodes, blocking or on a loop.
 *
 * One probe of a node (struct derp_map_node, as a map lists it) checks:
 *   DERP  TCP to the node, TLS as the map asks, the HTTP upgrade and login of
 *         two fresh keys, then one packet A -> B -> A through the relay (RTT);
 *   STUN  a Binding request over UDP, answered with our reflexive address.
 * TLS follows Tailscale's client (derphttp_client.go tlsClient, tlsdial):
 *   CertName "sha256-raw:<hex>": the leaf's DER must hash to hex, nothing
 *     else is checked (it wins over InsecureForTests);
 *   another CertName: the name verified instead of HostName (HostName stays the SNI);
 *   InsecureForTests: no verification at all;
 *   else CA verification against HostName.
 * The TCP dial goes to IPv4 when it is an IPv4 literal, else IPv6 when it is
 * an IPv6 literal, else HostName through DNS, unless both fields are set to
 * something else ("none"): then the node cannot be dialled (stage url). Port
 * DERPPort, 0 meaning 443. A DERP map cannot say "plain HTTP" (Tailscale has
 * only the process-wide TS_DEBUG_USE_DERP_HTTP knob, port 3340 by default);
 * opts.is_plain_http is that knob per probe. STUN goes to STUNTestIP, else the
 * dial address, port STUNPort (0 = 3478); STUNPort -1 skips it, STUNOnly
 * nodes skip DERP. derp_probe_read_pin() reads the pin a relay presents, for
 * publishing CertName "sha256-raw:<hex>" (the relay's --self-signed logs the
 * same value; the meta certificate after the leaf is ignored).
 *
 * derp_probe_node() blocks (at most about opts.timeout_ms for DERP plus as
 * much for STUN). struct derp_prober runs probes on a small pool of worker
 * threads and hands each result to a callback on the caller's dc_loop, woken
 * through an eventfd: the loop never blocks. Programs ignore SIGPIPE (TLS
 * writes to a closed socket). */
#ifndef DC_RELAY_DERP_PROBER_H
#define DC_RELAY_DERP_PROBER_H

#include "derp_map.h"
#include "err.h"
#include "net.h"
#include "tls.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dc_loop;
struct derp_client;
struct derp_prober;

/* Default limit of each check of a node (DERP, STUN), like derp_client's. */
#define DERP_PROBE_DEFAULT_TIMEOUT_MS 10000
/* Default port of a DERP node probed over plain HTTP (TS_DEBUG_USE_DERP_HTTP). */
#define DERP_PROBE_PLAIN_HTTP_PORT 3340
/* Default STUN port (tailcfg.DERPNode.STUNPort 0). */
#define DERP_PROBE_STUN_PORT 3478
/* A STUN request unanswered this long is sent again (UDP loses packets). */
#define DERP_PROBE_STUN_RESEND_MS 500
/* Bytes in the test packet sent through the relay. */
#define DERP_PROBE_PACKET_LEN 64
/* Longest URL a probe builds: "https://[" + host + "]:65535/derp". */
#define DERP_PROBE_URL_LEN (DERP_MAP_NAME_LEN + 32)
/* Worker threads one prober may run, and probes it may hold queued. */
#define DERP_PROBER_MAX_THREADS 256u
#define DERP_PROBER_MAX_QUEUE   65536u

/* Where a probe failed. The names (derp_probe_stage_name) start the error
 * sentences: url, dns, tcp, tls, http, handshake, timeout, packet, stun. */
enum derp_probe_stage {
    DERP_PROBE_STAGE_NONE,      /* nothing failed */
    DERP_PROBE_STAGE_URL,       /* the node's fields make no address to dial */
    DERP_PROBE_STAGE_DNS,       /* HostName does not resolve */
    DERP_PROBE_STAGE_TCP,       /* connect refused, unreachable or timed out */
    DERP_PROBE_STAGE_TLS,       /* TLS handshake or certificate check failed */
    DERP_PROBE_STAGE_HTTP,      /* no 101 to the upgrade (404, 426, garbage) */
    DERP_PROBE_STAGE_HANDSHAKE, /* DERP greeting or login went wrong */
    DERP_PROBE_STAGE_TIMEOUT,   /* connected, then the relay stopped answering (TLS, HTTP, login) */
    DERP_PROBE_STAGE_PACKET,    /* logged in, but the packet did not come back */
    DERP_PROBE_STAGE_STUN,      /* the STUN check failed */
};

/* Outcome of one check of a node. */
enum derp_probe_check {
    DERP_PROBE_SKIPPED, /* not asked for (STUNPort -1, STUNOnly, pin only) */
    DERP_PROBE_PASSED,
    DERP_PROBE_FAILED,
};

/* How to probe. The all-zero struct is the default: verify TLS, both checks. */
struct derp_probe_opts {
    int timeout_ms;      /* limit of each check; 0 = DERP_PROBE_DEFAULT_TIMEOUT_MS */
    bool is_plain_http;  /* DERP over http:// (DERPPort 0 = 3340) instead of https:// */
    bool is_insecure;    /* no TLS verification for any node (pins are still checked) */
    bool is_websocket;   /* DERP over WebSocket instead of Upgrade: DERP */
    bool skip_stun;      /* no STUN check */
    bool is_pin_only;    /* only TCP and an unverified TLS handshake: fill cert_pin */
    const char *ca_file; /* borrowed (the prober copies it); CA bundle, NULL = system */
};

/* What a probe found. Strings are NUL-terminated, "" when not known. */
struct derp_probe_result {
    bool ok;                          /* every check that ran passed */
    enum derp_probe_stage stage;      /* the first failed stage; NONE when ok */
    char error[DC_ERR_LEN];           /* why, a sentence starting with the stage name */
    enum derp_probe_check derp;       /* DERP check outcome */
    char url[DERP_PROBE_URL_LEN];     /* the URL probed ("https://HostName:port/derp") */
    char dial[DERP_MAP_NAME_LEN];     /* what TCP connected to: an IP literal or HostName */
    bool is_tls;                      /* the URL was https */
    char cert_pin[DC_TLS_PIN_LEN];    /* the leaf certificate's "sha256-raw:<64 hex>" seen during
                                         TLS (the hex starts at DC_TLS_PIN_PREFIX_LEN); "" when
                                         TLS did not complete */
    int64_t connect_us;               /* first client's connect and login time; -1 = not measured */
    int64_t rtt_us;                   /* packet round trip A -> B -> A; -1 = not measured */
    enum derp_probe_check stun;       /* STUN check outcome */
    char stun_addr[DC_ADDR_TEXT_LEN]; /* where the request went, "ip:port" */
    char stun_mapped[DC_ADDR_TEXT_LEN]; /* the reflexive address answered */
    int64_t stun_rtt_us;                /* request to answer; -1 = not measured */
    char stun_error[DC_ERR_LEN];        /* why STUN failed, "stun: ..." */
};

/* Called on the loop's thread with a finished probe. node and r are valid
 * for the call only. */
typedef void (*derp_prober_cb)(void *data, const struct derp_map_node *node,
                               const struct derp_probe_result *r);

/* Returns the stage's name ("url", "tls", ...); "" for NONE. */
const char *derp_probe_stage_name(enum derp_probe_stage s);

/* Probes node as described above, blocking. Fills *r (always) and returns 0
 * when r->ok, else the failing check's negative errno. */
int derp_probe_node(const struct derp_map_node *node, const struct derp_probe_opts *o,
                    struct derp_probe_result *r) DC_MUST_CHECK;

/* Sends a random DERP_PROBE_PACKET_LEN-byte packet from a to b and back
 * through their relay(s), skipping other frames, within timeout_ms overall.
 * Returns 0 with *rtt_us, or negative errno with err ("packet: ..."). */
int derp_probe_round_trip(struct derp_client *a, struct derp_client *b, int timeout_ms,
                          int64_t *rtt_us, char *err) DC_MUST_CHECK;

/* Connects to url ("https://host[:port]", "host[:port]" or a bare host;
 * port 443 by default; dial_host, when not NULL, is dialled instead), runs
 * a TLS handshake without verification with SNI = host (none for an IP),
 * and writes the pin of the leaf certificate the server presents,
 * "sha256-raw:<64 lowercase hex>", into out. Blocking, at most about
 * 2 x timeout_ms (TCP, then TLS). Returns 0 or negative errno with err
 * ("url:", "dns:", "tcp:" or "tls: ..."). */
int derp_probe_read_pin(const char *url, const char *dial_host, int timeout_ms,
                        char out[static DC_TLS_PIN_LEN], char *err) DC_MUST_CHECK;

/* Creates a prober with num_threads workers (1..DERP_PROBER_MAX_THREADS)
 * whose results are delivered on loop (borrowed; must outlive the prober).
 * Returns 0 and *out (free with derp_prober_free()), or -EINVAL / -ENOMEM /
 * another negative errno with err. */
int derp_prober_new(struct dc_loop *loop, unsigned num_threads, struct derp_prober **out,
                    char *err) DC_MUST_CHECK;

/* Queues one probe of node (copied, with o and o->ca_file). cb(data, ...)
 * runs later on the loop, exactly once unless cancelled. Probes start in
 * submission order as workers free up. Returns 0, -ENOBUFS with
 * DERP_PROBER_MAX_QUEUE probes waiting, or -ENOMEM. */
int derp_prober_submit(struct derp_prober *p, const struct derp_map_node *node,
                       const struct derp_probe_opts *o, derp_prober_cb cb,
                       void *data) DC_MUST_CHECK;

/* Drops every probe submitted with data: queued ones never run, running and
 * finished ones never reach their callback. Safe from inside a callback. */
void derp_prober_cancel(struct derp_prober *p, void *data);

/* Probes submitted whose callback has neither run nor been cancelled. */
size_t derp_prober_pending(struct derp_prober *p);

/* Stops the loop watch, drops queued probes, waits for the running ones
 * (each bounded by its timeout) and frees everything; no callback runs.
 * Not from inside a callback. Accepts NULL. */
void derp_prober_free(struct derp_prober *p);

#endif
