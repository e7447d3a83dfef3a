/* relay_probes: every Cluster's relay probed end to end on an interval.
 *
 * After each map the controller hands over its cluster regions (targets).
 * Every interval each target gets one probe on derp_prober's worker threads
 * (TCP, TLS, DERP login of two fresh keys, a packet there and back; no STUN:
 * cluster regions have none), never two at once for one target and at most
 * RELAY_PROBES_MAX_IN_FLIGHT in all: a new or moved relay is due at once, and
 * each is due again an interval after its last answer. Results come
 * back on the loop: the up/down state, the RTT, failures by stage, all in
 * /metrics; a change of state (and the first result) goes to on_state, which
 * logs it and, in Kubernetes, records an Event on the Cluster.
 *
 * Pins: for a target whose endpoint is insecure (self-signed), the probe
 * skips verification and records the SHA-256 of the leaf certificate the
 * relay presented; when that differs from the one known (first read, or the
 * relay's certificate changed), on_pin publishes it, and the map carries
 * CertName "sha256-raw:<hex>" instead of InsecureForTests. That is trust on
 * first use: whoever answers the controller's first probe defines the pin;
 * --no-cert-pins turns it off. */
#ifndef DC_CONTROLLER_RELAY_PROBES_H
#define DC_CONTROLLER_RELAY_PROBES_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dc_loop;
struct dc_buf;
struct relay_probes;

/* Defaults: a probe of every relay every 30 s, each bounded by 5 s. */
#define RELAY_PROBES_DEFAULT_INTERVAL_MS 30000u
#define RELAY_PROBES_DEFAULT_TIMEOUT_MS  5000u
/* Worker threads: probes are mostly waiting on the network. */
#define RELAY_PROBES_THREADS 4u
/* Probes started and not answered at most: with thousands of relays the
 * probes are spread over the interval instead of all starting (and holding
 * memory, and resolving names) at once. */
#define RELAY_PROBES_MAX_IN_FLIGHT 16u
/* How often due probes are looked for. */
#define RELAY_PROBES_TICK_MS 100u
/* RTT histogram bucket bounds, in seconds (Prometheus le labels). */
#define RELAY_PROBES_RTT_BUCKETS 10

/* One relay to probe; strings borrowed for the call. */
struct relay_target {
    const char *name; /* Cluster name = RegionCode */
    const char *uid;  /* metadata.uid or NULL */
    uint32_t region_id;
    const char *host; /* HostName */
    bool is_ipv4;     /* host is an IPv4 literal */
    bool is_ipv6;     /* host is an IPv6 literal */
    uint16_t port;    /* DERPPort, 0 = 443 */
    bool is_insecure; /* loft.sh/derp-endpoint-insecure: true */
};

/* The relay of cluster name became reachable (up) or not (why says where it failed). */
typedef void (*relay_probes_state_cb)(void *arg, const char *name, const char *uid, bool up,
                                      const char *why);
/* The relay of cluster name presents a certificate with this pin ("sha256-raw:<hex>"). */
typedef void (*relay_probes_pin_cb)(void *arg, const char *name, const char *pin);

struct relay_probes_opts {
    struct dc_loop *loop;           /* borrowed */
    uint32_t interval_ms;           /* 0: RELAY_PROBES_DEFAULT_INTERVAL_MS */
    uint32_t timeout_ms;            /* 0: RELAY_PROBES_DEFAULT_TIMEOUT_MS */
    bool is_plain_http;             /* probe over http:// (relays without TLS, tests) */
    bool is_pinning;                /* read pins of insecure endpoints */
    relay_probes_state_cb on_state; /* may be NULL */
    relay_probes_pin_cb on_pin;     /* may be NULL */
    void *arg;
};

/* Starts the prober and its interval timer. Returns 0 or negative errno with err. */
int relay_probes_new(const struct relay_probes_opts *o, struct relay_probes **out,
                     char *err) DC_MUST_CHECK;
/* Stops probing and frees (waits for running probes, each bounded by the
 * timeout). Accepts NULL. */
void relay_probes_free(struct relay_probes *rp);
/* Replaces the targets with t[0..n); new ones are probed at once, gone ones
 * forgotten (a probe in flight is dropped). */
void relay_probes_set_targets(struct relay_probes *rp, const struct relay_target *t, size_t n);
/* Appends derp_region_up, derp_region_probe_rtt_seconds, the RTT histogram and
 * failures by stage to out (as map_server_metrics_cb). */
void relay_probes_metrics(void *rp, struct dc_buf *out);

#endif
