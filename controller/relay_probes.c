#include "relay_probes.h"

#include "buf.h"
#include "derp_prober.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the RTT histogram's buckets, in seconds. */
static const double rtt_bounds[RELAY_PROBES_RTT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                            0.25,  0.5,  1,     2.5,  5};
/* Failure stages counted (derp_probe_stage up to STUN). */
#define STAGES (DERP_PROBE_STAGE_STUN + 1)

enum target_state { STATE_UNKNOWN, STATE_UP, STATE_DOWN };

struct target {
    struct relay_probes *rp; /* owner */
    char *name;
    char *uid;  /* or NULL */
    char *host; /* HostName */
    uint32_t region_id;
    uint16_t port; /* DERPPort, 0 = 443 */
    bool is_ipv4, is_ipv6;
    bool is_insecure;
    bool is_in_flight;
    uint64_t due_ms; /* dc_now_ms() when the next probe is due */
    bool is_kept;    /* set_targets' mark */
    enum target_state state;
    int64_t rtt_us;           /* last measured, -1 before */
    char pin[DC_TLS_PIN_LEN]; /* last pin seen, "" before */
};

struct relay_probes {
    struct relay_probes_opts o;
    struct derp_prober *prober;
    struct target **v; /* sorted by name */
    size_t n;
    size_t cursor;    /* where pump() goes on walking v */
    size_t in_flight; /* probes submitted, not answered */
    struct dc_timer tick;
    uint64_t probes;
    uint64_t failures[STAGES];
    uint64_t rtt_buckets[RELAY_PROBES_RTT_BUCKETS + 1]; /* the last one is +Inf */
    double rtt_sum_s;
    uint64_t rtt_count;
};

static void on_result(void *data, const struct derp_map_node *node,
                      const struct derp_probe_result *r);

/* The node a Tailscale client would see for t (no STUN). */
static void fill_node(struct derp_map_node *node, const struct target *t)
{
    memset(node, 0, sizeof(*node));
    node->region_id = t->region_id;
    snprintf(node->region_code, sizeof(node->region_code), "%s", t->name);
    snprintf(node->region_name, sizeof(node->region_name), "%s", t->name);
    snprintf(node->name, sizeof(node->name), "%ua", t->region_id);
    snprintf(node->host_name, sizeof(node->host_name), "%s", t->host);
    if (t->is_ipv4) {
        snprintf(node->ipv4, sizeof(node->ipv4), "%s", t->host);
    }
    if (t->is_ipv6) {
        snprintf(node->ipv6, sizeof(node->ipv6), "%s", t->host);
    }
    node->derp_port = t->port;
    node->stun_port = -1;
    node->is_insecure_for_tests = t->is_insecure;
}

/* Starts a probe of t unless one runs or RELAY_PROBES_MAX_IN_FLIGHT do. */
static bool submit(struct relay_probes *rp, struct target *t)
{
    if (t->is_in_flight || rp->in_flight >= RELAY_PROBES_MAX_IN_FLIGHT) {
        return false;
    }
    struct derp_map_node node;
    fill_node(&node, t);
    struct derp_probe_opts po = {.timeout_ms = (int)rp->o.timeout_ms,
                                 .is_plain_http = rp->o.is_plain_http,
                                 .is_insecure = t->is_insecure,
                                 .skip_stun = true};
    if (derp_prober_submit(rp->prober, &node, &po, on_result, t) < 0) {
        return false;
    }
    t->is_in_flight = true;
    rp->in_flight++;
    return true;
}

/* Starts the probes that are due, walking on from where the last walk
 * stopped, until RELAY_PROBES_MAX_IN_FLIGHT run: probes of many relays are
 * spread over the interval instead of starting all at once. */
static void pump(struct relay_probes *rp)
{
    uint64_t now = dc_now_ms();
    for (size_t k = 0; k < rp->n && rp->in_flight < RELAY_PROBES_MAX_IN_FLIGHT; k++) {
        if (rp->cursor >= rp->n) {
            rp->cursor = 0;
        }
        struct target *t = rp->v[rp->cursor++];
        if (t->due_ms <= now) {
            submit(rp, t);
        }
    }
}

static void tick_cb(struct dc_loop *loop, struct dc_timer *timer)
{
    struct relay_probes *rp = timer->data;
    pump(rp);
    dc_timer_start(loop, &rp->tick, RELAY_PROBES_TICK_MS);
}

static void count_rtt(struct relay_probes *rp, int64_t rtt_us)
{
    double s = (double)rtt_us / 1e6;
    size_t b = 0;
    while (b < RELAY_PROBES_RTT_BUCKETS && s > rtt_bounds[b]) {
        b++;
    }
    rp->rtt_buckets[b]++;
    rp->rtt_sum_s += s;
    rp->rtt_count++;
}

/* Reports a change of state: every change except the first result being "up". */
static void note_state(struct relay_probes *rp, struct target *t, bool up, const char *why)
{
    enum target_state now = up ? STATE_UP : STATE_DOWN;
    enum target_state was = t->state;
    t->state = now;
    if (was == now) {
        return;
    }
    if (up) {
        dc_log(was == STATE_UNKNOWN ? DC_LOG_DEBUG : DC_LOG_INFO, "derp-probe",
               "relay of cluster %s (%s:%u) is %s: packet round trip %.1f ms", t->name, t->host,
               t->port ? t->port : 443u, was == STATE_UNKNOWN ? "up" : "healthy again",
               (double)t->rtt_us / 1000.0);
    } else {
        dc_log(DC_LOG_WARN, "derp-probe", "relay of cluster %s (%s:%u) is unreachable: %s", t->name,
               t->host, t->port ? t->port : 443u, why);
    }
    if (rp->o.on_state != NULL && !(up && was == STATE_UNKNOWN)) {
        rp->o.on_state(rp->o.arg, t->name, t->uid, up, why);
    }
}

static void note_pin(struct relay_probes *rp, struct target *t, const char *pin)
{
    if (!rp->o.is_pinning || !t->is_insecure || pin[0] == '\0' || strcmp(pin, t->pin) == 0) {
        return;
    }
    bool changed = t->pin[0] != '\0';
    snprintf(t->pin, sizeof(t->pin), "%s", pin);
    dc_log(DC_LOG_INFO, "derp-probe",
           "relay of cluster %s %s certificate %s: publishing it as "
           "CertName",
           t->name, changed ? "changed its" : "presents", pin);
    if (rp->o.on_pin != NULL) {
        rp->o.on_pin(rp->o.arg, t->name, pin);
    }
}

static void on_result(void *data, const struct derp_map_node *node,
                      const struct derp_probe_result *r)
{
    (void)node;
    struct target *t = data;
    struct relay_probes *rp = t->rp;
    t->is_in_flight = false;
    rp->in_flight--;
    t->due_ms = dc_now_ms() + rp->o.interval_ms;
    rp->probes++;
    if (r->ok) {
        t->rtt_us = r->rtt_us;
        count_rtt(rp, r->rtt_us);
    } else if (r->stage < STAGES) {
        rp->failures[r->stage]++;
    }
    /* A pin is read whenever TLS completed, even when a later stage failed. */
    note_pin(rp, t, r->cert_pin);
    note_state(rp, t, r->ok, r->error);
    pump(rp);
}

static void target_free(struct relay_probes *rp, struct target *t)
{
    if (t->is_in_flight) {
        derp_prober_cancel(rp->prober, t);
        rp->in_flight--;
    }
    free(t->name);
    free(t->uid);
    free(t->host);
    free(t);
}

static int target_cmp(const void *a, const void *b)
{
    const struct target *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static struct target *find(const struct relay_probes *rp, const char *name)
{
    size_t lo = 0, hi = rp->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(rp->v[mid]->name, name);
        if (c == 0) {
            return rp->v[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Updates t from in; returns whether where or how to reach it changed
 * (then its pin is read afresh and it is probed at once), or -ENOMEM. */
static int target_update(struct target *t, const struct relay_target *in)
{
    bool moved = t->host == NULL || strcmp(t->host, in->host) != 0 || t->port != in->port ||
                 t->region_id != in->region_id || t->is_insecure != in->is_insecure;
    /* Called for every relay on every map: copy only what changed. */
    bool new_uid =
        (t->uid == NULL) != (in->uid == NULL) || (t->uid != NULL && strcmp(t->uid, in->uid) != 0);
    char *uid = new_uid && in->uid != NULL ? strdup(in->uid) : NULL;
    char *host = moved ? strdup(in->host) : NULL;
    if ((new_uid && in->uid != NULL && uid == NULL) || (moved && host == NULL)) {
        free(uid);
        free(host);
        return -ENOMEM;
    }
    if (new_uid) {
        free(t->uid);
        t->uid = uid;
    }
    if (moved) {
        free(t->host);
        t->host = host;
        t->region_id = in->region_id;
        t->port = in->port;
        t->is_ipv4 = in->is_ipv4;
        t->is_ipv6 = in->is_ipv6;
        t->is_insecure = in->is_insecure;
        t->pin[0] = '\0'; /* another relay, maybe */
        t->state = STATE_UNKNOWN;
        t->due_ms = 0;
    }
    return moved ? 1 : 0;
}

static struct target *target_new(struct relay_probes *rp, const struct relay_target *in)
{
    struct target *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->name = strdup(in->name)) == NULL) {
        free(t);
        return NULL;
    }
    t->rp = rp;
    t->rtt_us = -1;
    if (target_update(t, in) < 0) {
        free(t->name);
        free(t);
        return NULL;
    }
    return t;
}

void relay_probes_set_targets(struct relay_probes *rp, const struct relay_target *in, size_t n)
{
    struct target **v = calloc(n + 1, sizeof(*v));
    if (v == NULL) {
        dc_log(DC_LOG_ERROR, "derp-probe", "out of memory: relay probes keep their old targets");
        return;
    }
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        struct target *t = find(rp, in[i].name);
        if (t != NULL && t->is_kept) {
            continue; /* a repeated name: the first one counts */
        }
        bool is_new = t == NULL;
        if (is_new && (t = target_new(rp, &in[i])) == NULL) {
            continue;
        }
        bool moved = !is_new && target_update(t, &in[i]) > 0;
        t->is_kept = true;
        v[nv++] = t;
        if (moved && t->is_in_flight) {
            derp_prober_cancel(rp->prober, t); /* its answer is about the old address */
            t->is_in_flight = false;
            rp->in_flight--;
        }
    }
    for (size_t i = 0; i < rp->n; i++) {
        if (!rp->v[i]->is_kept) {
            target_free(rp, rp->v[i]);
        }
    }
    for (size_t i = 0; i < nv; i++) {
        v[i]->is_kept = false;
    }
    if (nv > 1) {
        qsort(v, nv, sizeof(*v), target_cmp);
    }
    free(rp->v);
    rp->v = v;
    rp->n = nv;
    rp->cursor = 0;
    pump(rp); /* new and moved relays are due at once */
}

int relay_probes_new(const struct relay_probes_opts *o, struct relay_probes **out, char *err)
{
    struct relay_probes *rp = calloc(1, sizeof(*rp));
    if (rp == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    rp->o = *o;
    if (rp->o.interval_ms == 0) {
        rp->o.interval_ms = RELAY_PROBES_DEFAULT_INTERVAL_MS;
    }
    if (rp->o.timeout_ms == 0) {
        rp->o.timeout_ms = RELAY_PROBES_DEFAULT_TIMEOUT_MS;
    }
    int rc = derp_prober_new(o->loop, RELAY_PROBES_THREADS, &rp->prober, err);
    if (rc < 0) {
        free(rp);
        return rc;
    }
    rp->tick = (struct dc_timer){.cb = tick_cb, .data = rp};
    dc_timer_start(o->loop, &rp->tick, RELAY_PROBES_TICK_MS);
    *out = rp;
    return 0;
}

void relay_probes_free(struct relay_probes *rp)
{
    if (rp == NULL) {
        return;
    }
    dc_timer_stop(rp->o.loop, &rp->tick);
    derp_prober_free(rp->prober); /* no callback after this */
    for (size_t i = 0; i < rp->n; i++) {
        free(rp->v[i]->name);
        free(rp->v[i]->uid);
        free(rp->v[i]->host);
        free(rp->v[i]);
    }
    free(rp->v);
    free(rp);
}

/* Writes s as a Prometheus label value (backslash, quote and newline escaped). */
static void label_value(struct dc_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            dc_buf_printf(out, "\\%c", *s);
        } else if (*s == '\n') {
            dc_buf_printf(out, "\\n");
        } else {
            dc_buf_printf(out, "%c", *s);
        }
    }
}

static void region_metric(struct dc_buf *out, const char *metric, const struct target *t,
                          double value)
{
    dc_buf_printf(out, "%s{region=\"", metric);
    label_value(out, t->name);
    dc_buf_printf(out, "\",region_id=\"%u\"} %g\n", t->region_id, value);
}

void relay_probes_metrics(void *arg, struct dc_buf *out)
{
    struct relay_probes *rp = arg;
    dc_buf_printf(out, "# HELP derp_region_up 1 when the last probe of the region's relay "
                       "passed a packet, 0 when it failed.\n# TYPE derp_region_up gauge\n");
    for (size_t i = 0; i < rp->n; i++) {
        if (rp->v[i]->state != STATE_UNKNOWN) {
            region_metric(out, "derp_region_up", rp->v[i], rp->v[i]->state == STATE_UP);
        }
    }
    dc_buf_printf(out, "# HELP derp_region_probe_rtt_seconds Last packet round trip through the "
                       "region's relay.\n# TYPE derp_region_probe_rtt_seconds gauge\n");
    for (size_t i = 0; i < rp->n; i++) {
        if (rp->v[i]->rtt_us >= 0) {
            region_metric(out, "derp_region_probe_rtt_seconds", rp->v[i],
                          (double)rp->v[i]->rtt_us / 1e6);
        }
    }
    dc_buf_printf(out, "# HELP derp_probe_rtt_seconds Packet round trips of passed relay "
                       "probes.\n# TYPE derp_probe_rtt_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < RELAY_PROBES_RTT_BUCKETS; b++) {
        cum += rp->rtt_buckets[b];
        dc_buf_printf(out, "derp_probe_rtt_seconds_bucket{le=\"%g\"} %llu\n", rtt_bounds[b],
                      (unsigned long long)cum);
    }
    cum += rp->rtt_buckets[RELAY_PROBES_RTT_BUCKETS];
    dc_buf_printf(out,
                  "derp_probe_rtt_seconds_bucket{le=\"+Inf\"} %llu\n"
                  "derp_probe_rtt_seconds_sum %g\nderp_probe_rtt_seconds_count %llu\n"
                  "# HELP derp_probes_total Relay probes finished.\n"
                  "# TYPE derp_probes_total counter\nderp_probes_total %llu\n"
                  "# HELP derp_probe_failures_total Failed relay probes by the stage that "
                  "failed.\n# TYPE derp_probe_failures_total counter\n",
                  (unsigned long long)cum, rp->rtt_sum_s, (unsigned long long)rp->rtt_count,
                  (unsigned long long)rp->probes);
    for (int s = DERP_PROBE_STAGE_URL; s < STAGES; s++) {
        dc_buf_printf(out, "derp_probe_failures_total{stage=\"%s\"} %llu\n",
                      derp_probe_stage_name((enum derp_probe_stage)s),
                      (unsigned long long)rp->failures[s]);
    }
}
