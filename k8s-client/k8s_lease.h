/* k8s_lease: leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
 * with a LeaseLock, asynchronously on the client's loop.
 *
 * Not leading, the elector tries to acquire every retry period plus up to JitterFactor (1.2)
 * times it (wait.JitterUntil). One try (tryAcquireOrRenew):
 *   1. a leader whose last record is still valid PUTs its renewal straight away (the fast path);
 *   2. otherwise GET the Lease; 404: create it holding it. When the record read differs from the
 *      one seen before, the observed time becomes now: the LOCAL monotonic time, never the
 *      server's renewTime, so clock skew between replicas does not matter;
 *   3. a Lease held by someone else is left alone until observed time + its
 *      leaseDurationSeconds has passed; then (or when it is ours, or has no holder) PUT the
 *      record with the resourceVersion read: holderIdentity, leaseDurationSeconds, acquireTime
 *      and renewTime (MicroTime), leaseTransitions (+1 when the holder changes). 409 Conflict
 *      means another elector won the race: no error is logged.
 * Leading, it renews every retry period; each renewal round retries every retry period until it
 * succeeds or renew_deadline_ms has passed since the round began; then it steps down
 * (on_stopped_leading, "lost leadership") and goes back to acquiring. Requests are not retried
 * by k8s_http: the retry period is the retry.
 *
 * The acquire attempt is not a guarantee of exclusion beyond what client-go gives: a leader that
 * cannot reach the API server keeps acting as leader until its renew deadline, while the others
 * wait a full lease duration from their last sight of a change, which is longer.
 *
 * Logs (tag "derp-k8s", each naming the Lease and this identity): "became leader", "new leader
 * X" and "released leadership" at info; "lost leadership" at warn; a failing API at warn once per
 * streak of failures, then at debug (a Conflict only at debug).
 *
 * Callbacks run on the loop, from k8s_http or dc_timer callbacks, never from inside a call
 * here; they may call k8s_lease_is_leader(), k8s_lease_holder(), k8s_lease_release() and
 * k8s_lease_stop(). Not done here: the Lease's preferredHolder/strategy (coordinated election),
 * labels on the Lease, a healthz watchdog. */
#ifndef DC_K8S_LEASE_H
#define DC_K8S_LEASE_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct k8s_client;
struct k8s_lease;

/* Defaults, client-go's (and kube-controller-manager's): LeaseDuration 15 s, RenewDeadline 10 s,
 * RetryPeriod 2 s. */
#define K8S_LEASE_DEFAULT_DURATION_MS       15000u
#define K8S_LEASE_DEFAULT_RENEW_DEADLINE_MS 10000u
#define K8S_LEASE_DEFAULT_RETRY_PERIOD_MS   2000u
/* The acquire loop's jitter: each wait is retry period * (1 + U[0, 1.2)), in tenths
 * (leaderelection.JitterFactor 1.2). */
#define K8S_LEASE_JITTER_TENTHS 12u
/* Longest identity and holder identity kept, in bytes. Our limit (pod names are at most 253). */
#define K8S_LEASE_MAX_IDENTITY_LEN 253u

/* The elector took the Lease. */
typedef void (*k8s_lease_started_cb)(void *arg);
/* The elector stopped leading: renewals failed until the renew deadline, or it released. */
typedef void (*k8s_lease_stopped_cb)(void *arg);
/* The observed holder changed (identity borrowed for the call; "" for no holder). */
typedef void (*k8s_lease_new_leader_cb)(void *arg, const char *identity);
/* k8s_lease_release() finished: error 0 when the Lease was handed over (or there was nothing to
 * hand over), else the negative errno of the failure (-ETIMEDOUT after the renew deadline). */
typedef void (*k8s_lease_done_cb)(void *arg, int error);

struct k8s_lease_opts {
    const char *namespace_;     /* required, copied: the Lease's namespace */
    const char *name;           /* required, copied: the Lease's name */
    const char *identity;       /* required, copied: this elector's holderIdentity (pod name) */
    uint32_t lease_duration_ms; /* 0: default; written as whole seconds (at least 1) */
    uint32_t renew_deadline_ms; /* 0: default; < lease duration */
    uint32_t retry_period_ms;   /* 0: default; 1.2 times it < renew deadline */
    k8s_lease_started_cb on_started_leading; /* each may be NULL */
    k8s_lease_stopped_cb on_stopped_leading; /* */
    k8s_lease_new_leader_cb on_new_leader;   /* */
    void *arg;                               /* borrowed; passed to every callback */
};

/* Starts an elector on client (borrowed: it must outlive the elector); its first try is sent
 * before this returns. Returns 0, -EINVAL (a missing field, durations out of order as client-go
 * checks them: err says which), -EMSGSIZE (identity too long), -ENOMEM, or k8s_request()'s
 * error. Free with k8s_lease_stop(). */
int k8s_lease_start(struct k8s_client *client, const struct k8s_lease_opts *opts,
                    struct k8s_lease **out, char *err) DC_MUST_CHECK;

/* Whether this elector leads now (between on_started_leading and on_stopped_leading). */
bool k8s_lease_is_leader(const struct k8s_lease *l);

/* The holder last observed ("" when none or not yet read), borrowed until the next callback. */
const char *k8s_lease_holder(const struct k8s_lease *l);

/* Hands the Lease over on shutdown and stops campaigning. When leading: cancels what is in
 * flight, GETs the Lease and PUTs it with holderIdentity "", leaseDurationSeconds 1,
 * acquireTime and renewTime now, leaseTransitions kept (client-go's release; a Conflict reads
 * again), then calls on_stopped_leading and on_new_leader(""). done(arg, error) runs on the loop
 * when that is over, within the renew deadline; at once (on the loop) when not leading.
 * Afterwards the elector is idle: free it with k8s_lease_stop(), from done if you like.
 * Returns 0, or -EALREADY when a release was already asked for (done will not run twice). */
int k8s_lease_release(struct k8s_lease *l, k8s_lease_done_cb done, void *arg) DC_MUST_CHECK;

/* Cancels whatever is in flight and frees the elector without releasing the Lease (the others
 * wait for it to expire); no callback runs after it. Safe from the elector's own callbacks.
 * Accepts NULL. */
void k8s_lease_stop(struct k8s_lease *l);

#endif
