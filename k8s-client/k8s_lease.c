#include "k8s_lease.h"

#include "k8s_http.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEASE_LOG_SUBSYS "derp-k8s"
/* "2006-01-02T15:04:05.000000Z" plus NUL, with room for what a server may send. */
#define TIME_LEN 40u
/* Longest resourceVersion kept. */
#define RV_MAX_LEN 128u
/* Longest namespace (a DNS label) and Lease name (a DNS subdomain). */
#define NAMESPACE_MAX_LEN 63u
#define NAME_MAX_LEN      253u
/* Longest request path: the prefix, a 63-byte namespace and a 253-byte name fit, so the
 * snprintf()s building paths cannot truncate. */
#define PATH_MAX_LEN 512u

enum lease_state {
    LEASE_ACQUIRING, /* trying to take the Lease every jittered retry period */
    LEASE_LEADING,   /* holding it, renewing every retry period */
    LEASE_RELEASING, /* handing it over after k8s_lease_release() */
    LEASE_IDLE,      /* released (or nothing to release): waiting for k8s_lease_stop() */
};

/* What the request in flight is. */
enum lease_step {
    STEP_FAST_PUT, /* a leader's renewal with the Lease it wrote last */
    STEP_GET,      /* read before deciding */
    STEP_CREATE,   /* POST: there was no Lease */
    STEP_PUT,      /* take or renew with the resourceVersion read */
    STEP_REL_GET,  /* release: read */
    STEP_REL_PUT,  /* release: write the empty record */
};

/* client-go's LeaderElectionRecord: the Lease spec fields election uses. */
struct record {
    char holder[K8S_LEASE_MAX_IDENTITY_LEN + 1]; /* holderIdentity, "" when none */
    int64_t duration_s;                          /* leaseDurationSeconds */
    char acquire_time[TIME_LEN];                 /* acquireTime as written, "" when unset */
    char renew_time[TIME_LEN];                   /* renewTime as written, "" when unset */
    int64_t transitions;                         /* leaseTransitions */
};

struct k8s_lease {
    struct k8s_client *client;                     /* borrowed */
    char ns[NAMESPACE_MAX_LEN + 1];                /* the Lease's namespace */
    char name[NAME_MAX_LEN + 1];                   /* the Lease's name */
    char identity[K8S_LEASE_MAX_IDENTITY_LEN + 1]; /* ours */
    char path[PATH_MAX_LEN];                       /* the Lease's URL path */
    char collection[PATH_MAX_LEN];                 /* its collection's path (for POST) */
    uint32_t duration_ms;                          /* lease duration */
    uint32_t deadline_ms;                          /* renew deadline */
    uint32_t retry_ms;                             /* retry period */
    k8s_lease_started_cb on_started;               /* user callbacks, may be NULL */
    k8s_lease_stopped_cb on_stopped;               /* */
    k8s_lease_new_leader_cb on_new_leader;         /* */
    void *arg;                                     /* borrowed */
    enum lease_state state;                        /* see the enum */
    enum lease_step step;                          /* what call is */
    struct k8s_call *call;                         /* the request in flight, or NULL */
    struct dc_timer timer;                         /* the next try (or release's done) */
    struct dc_timer deadline;   /* renew deadline of a round, or release's bound */
    bool is_round_active;       /* a renewal round runs; deadline is armed */
    json_t *lease;              /* owned or NULL: the Lease as last read or written */
    struct record observed;     /* observedRecord */
    struct record observed_raw; /* the record as last read (observedRawRecord) */
    bool has_raw;               /* observed_raw was read once */
    uint64_t observed_ms;       /* dc_now_ms() when observed last changed */
    struct record pending;      /* the record being written */
    char reported[K8S_LEASE_MAX_IDENTITY_LEN + 1]; /* holder last reported to on_new_leader */
    unsigned fail_streak;                          /* failed tries in a row (logged once at warn) */
    k8s_lease_done_cb done;                        /* release's callback, or NULL */
    void *done_arg;                                /* borrowed */
    bool is_release_asked;                         /* k8s_lease_release() was called */
    bool is_stopped;                               /* k8s_lease_stop() was called */
    unsigned busy;                                 /* entries of this elector on the stack */
};

static void try_start(struct k8s_lease *l);
static void release_get(struct k8s_lease *l);

/* --- lifetime --- */

static struct dc_loop *lease_loop(const struct k8s_lease *l)
{
    return k8s_client_loop(l->client);
}

static void lease_free(struct k8s_lease *l)
{
    k8s_call_cancel(l->call);
    dc_timer_stop(lease_loop(l), &l->timer);
    dc_timer_stop(lease_loop(l), &l->deadline);
    json_decref(l->lease);
    free(l);
}

/* Every entry from k8s_http or the loop holds the elector; the last one out frees a stopped
 * one, so a callback may call k8s_lease_stop(). */
static void lease_hold(struct k8s_lease *l)
{
    l->busy++;
}

static void lease_unhold(struct k8s_lease *l)
{
    l->busy--;
    if (l->busy == 0 && l->is_stopped) {
        lease_free(l);
    }
}

/* --- time and records --- */

/* Now as MicroTime, "2006-01-02T15:04:05.000000Z" (wall clock: Kubernetes timestamps only). */
static void now_micro(char out[static TIME_LEN])
{
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(out, TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, TIME_LEN - n, ".%06ldZ", t.tv_nsec / 1000);
}

static void copy_str(char *dst, size_t len, const json_t *v)
{
    snprintf(dst, len, "%s", json_is_string(v) ? json_string_value(v) : "");
}

static int64_t get_int(const json_t *v)
{
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The record in a Lease's spec; missing or mistyped fields read as empty (LeaseSpecTo...). */
static void record_parse(const json_t *lease, struct record *rec)
{
    const json_t *spec = json_object_get(lease, "spec");
    memset(rec, 0, sizeof(*rec));
    copy_str(rec->holder, sizeof(rec->holder), json_object_get(spec, "holderIdentity"));
    rec->duration_s = get_int(json_object_get(spec, "leaseDurationSeconds"));
    copy_str(rec->acquire_time, sizeof(rec->acquire_time), json_object_get(spec, "acquireTime"));
    copy_str(rec->renew_time, sizeof(rec->renew_time), json_object_get(spec, "renewTime"));
    rec->transitions = get_int(json_object_get(spec, "leaseTransitions"));
}

static bool record_equal(const struct record *a, const struct record *b)
{
    return strcmp(a->holder, b->holder) == 0 && a->duration_s == b->duration_s &&
           strcmp(a->acquire_time, b->acquire_time) == 0 &&
           strcmp(a->renew_time, b->renew_time) == 0 && a->transitions == b->transitions;
}

static int set_str(json_t *obj, const char *key, const char *value)
{
    return json_object_set_new(obj, key, json_string(value));
}

static json_t *time_json(const char *t)
{
    return t[0] != '\0' ? json_string(t) : json_null(); /* a zero MicroTime is null */
}

static json_t *spec_json(const struct record *rec)
{
    return json_pack("{s:s, s:I, s:o, s:o, s:I}", "holderIdentity", rec->holder,
                     "leaseDurationSeconds", (json_int_t)rec->duration_s, "acquireTime",
                     time_json(rec->acquire_time), "renewTime", time_json(rec->renew_time),
                     "leaseTransitions", (json_int_t)rec->transitions);
}

/* The record this elector writes to take or renew: itself, now. */
static void record_mine(const struct k8s_lease *l, struct record *rec)
{
    memset(rec, 0, sizeof(*rec));
    snprintf(rec->holder, sizeof(rec->holder), "%s", l->identity);
    rec->duration_s = l->duration_ms / 1000u > 0 ? l->duration_ms / 1000u : 1;
    now_micro(rec->renew_time);
    memcpy(rec->acquire_time, rec->renew_time, sizeof(rec->acquire_time));
}

static void set_observed(struct k8s_lease *l, const struct record *rec)
{
    l->observed = *rec;
    l->observed_ms = dc_now_ms();
}

static bool is_holder_me(const struct k8s_lease *l)
{
    return strcmp(l->observed.holder, l->identity) == 0;
}

/* isLeaseValid: observed time + the observed record's duration is still ahead. */
static bool is_lease_valid(const struct k8s_lease *l)
{
    int64_t d = l->observed.duration_s > 0 ? l->observed.duration_s : 0;
    return l->observed_ms + (uint64_t)d * 1000u > dc_now_ms();
}

/* --- user callbacks and logs --- */

static void report_transition(struct k8s_lease *l)
{
    if (strcmp(l->observed.holder, l->reported) == 0) {
        return;
    }
    memcpy(l->reported, l->observed.holder, sizeof(l->reported));
    dc_log(DC_LOG_INFO, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": new leader \"%s\"", l->ns,
           l->name, l->identity, l->reported);
    if (!l->is_stopped && l->on_new_leader != NULL) {
        l->on_new_leader(l->arg, l->reported);
    }
}

static void call_stopped(struct k8s_lease *l)
{
    if (!l->is_stopped && l->on_stopped != NULL) {
        l->on_stopped(l->arg);
    }
}

/* One warning per streak of failures; the rest at debug. A Conflict is someone else winning. */
static void log_failure(struct k8s_lease *l, const struct k8s_response *resp)
{
    l->fail_streak++;
    bool is_loud = l->fail_streak == 1 && resp->status != 409;
    dc_log(is_loud ? DC_LOG_WARN : DC_LOG_DEBUG, LEASE_LOG_SUBSYS,
           "lease %s/%s as \"%s\": %s failed: %s", l->ns, l->name, l->identity,
           l->step == STEP_GET || l->step == STEP_REL_GET ? "read" : "write",
           resp->err[0] != '\0' ? resp->err : "the answer is not a Lease");
}

/* --- requests --- */

static void lease_done(void *arg, const struct k8s_response *resp);

static int send(struct k8s_lease *l, enum lease_step step, enum k8s_method m, const char *path,
                const json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body != NULL && text == NULL) {
        return -ENOMEM;
    }
    struct k8s_request_opts o = {
        .method = m,
        .path = path,
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
        .timeout_ms = l->deadline_ms, /* a request never outlives a renew deadline */
    };
    char err[DC_ERR_LEN] = "";
    l->step = step;
    int rc = k8s_request(l->client, &o, lease_done, l, &l->call, err);
    free(text);
    if (rc != 0) {
        l->call = NULL;
        dc_log(DC_LOG_WARN, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": %s", l->ns, l->name,
               l->identity, err);
    }
    return rc;
}

/* PUTs the Lease last read (labels and all, as LeaseLock.Update does) with rec as its spec. */
static int put_record(struct k8s_lease *l, enum lease_step step, const struct record *rec)
{
    if (l->lease == NULL) {
        return -EPROTO;
    }
    json_t *meta = json_object_get(l->lease, "metadata");
    if (json_object_set_new(l->lease, "spec", spec_json(rec)) != 0 ||
        set_str(meta, "name", l->name) != 0 || set_str(meta, "namespace", l->ns) != 0) {
        return -ENOMEM; /* name and namespace: a server's odd answer may lack them */
    }
    l->pending = *rec;
    return send(l, step, K8S_PUT, l->path, l->lease);
}

static int create_record(struct k8s_lease *l, const struct record *rec)
{
    json_t *body =
        json_pack("{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind",
                  "Lease", "metadata", "name", l->name, "namespace", l->ns, "spec", spec_json(rec));
    if (body == NULL) {
        return -ENOMEM;
    }
    l->pending = *rec;
    int rc = send(l, STEP_CREATE, K8S_POST, l->collection, body);
    json_decref(body);
    return rc;
}

/* Keeps the Lease object of a 2xx answer for the next PUT; false when the body is not one. */
static bool keep_lease(struct k8s_lease *l, const struct k8s_response *resp)
{
    json_t *obj = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    if (!json_is_object(obj) || !json_is_object(json_object_get(obj, "metadata"))) {
        json_decref(obj);
        return false;
    }
    json_decref(l->lease);
    l->lease = obj;
    return true;
}

/* --- the election --- */

static uint32_t jittered_retry_ms(const struct k8s_lease *l)
{
    uint32_t spread = (uint32_t)((uint64_t)l->retry_ms * K8S_LEASE_JITTER_TENTHS / 10u);
    return l->retry_ms + randombytes_uniform(spread + 1u);
}

static void become_leader(struct k8s_lease *l)
{
    l->state = LEASE_LEADING;
    l->is_round_active = false;
    dc_log(DC_LOG_INFO, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": became leader", l->ns, l->name,
           l->identity);
    if (!l->is_stopped && l->on_started != NULL) {
        l->on_started(l->arg);
    }
}

/* The end of one tryAcquireOrRenew: report the holder, change state, plan the next try. */
static void try_end(struct k8s_lease *l, bool is_ok)
{
    if (is_ok) {
        l->fail_streak = 0;
    }
    report_transition(l);
    if (l->is_stopped) {
        return;
    }
    if (l->state == LEASE_ACQUIRING && is_ok) {
        become_leader(l);
        if (l->is_stopped || l->state != LEASE_LEADING) {
            return; /* the callback stopped or released the elector */
        }
    }
    if (l->state == LEASE_LEADING) {
        if (is_ok) {
            l->is_round_active = false;
            dc_timer_stop(lease_loop(l), &l->deadline);
        }
        dc_timer_start(lease_loop(l), &l->timer, l->retry_ms);
    } else if (l->state == LEASE_ACQUIRING) {
        dc_timer_start(lease_loop(l), &l->timer, jittered_retry_ms(l));
    }
}

/* After a GET: adopt a changed record, then take, renew or leave the Lease. */
static void after_get(struct k8s_lease *l)
{
    struct record rec;
    record_parse(l->lease, &rec);
    if (!l->has_raw || !record_equal(&rec, &l->observed_raw)) {
        set_observed(l, &rec);
        l->observed_raw = rec;
        l->has_raw = true;
    }
    if (rec.holder[0] != '\0' && is_lease_valid(l) && !is_holder_me(l)) {
        try_end(l, false); /* held by another and not expired: not a failure */
        return;
    }
    struct record mine;
    record_mine(l, &mine);
    if (is_holder_me(l)) {
        memcpy(mine.acquire_time, rec.acquire_time, sizeof(mine.acquire_time));
        mine.transitions = rec.transitions;
    } else {
        mine.transitions = rec.transitions + 1;
    }
    if (put_record(l, STEP_PUT, &mine) != 0) {
        try_end(l, false);
    }
}

static void try_answer(struct k8s_lease *l, const struct k8s_response *resp)
{
    bool is_ok = k8s_response_is_ok(resp);
    if (l->step == STEP_FAST_PUT && !is_ok) {
        /* client-go falls back to the slow path (read, then decide), logging only verbosely */
        dc_log(DC_LOG_DEBUG, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": renewal failed: %s", l->ns,
               l->name, l->identity, resp->err);
        if (send(l, STEP_GET, K8S_GET, l->path, NULL) != 0) {
            try_end(l, false);
        }
        return;
    }
    if (l->step == STEP_GET && is_ok && keep_lease(l, resp)) {
        after_get(l);
        return;
    }
    if (l->step == STEP_GET && resp->error == 0 && resp->status == 404) {
        struct record mine;
        record_mine(l, &mine);
        if (create_record(l, &mine) != 0) {
            try_end(l, false);
        }
        return;
    }
    if (l->step != STEP_GET && is_ok) {
        if (!keep_lease(l, resp)) {
            json_decref(l->lease); /* a 2xx without a Lease: the next try reads it again */
            l->lease = NULL;
        }
        set_observed(l, &l->pending);
        try_end(l, true);
        return;
    }
    log_failure(l, resp);
    try_end(l, false);
}

/* One tryAcquireOrRenew: the leader's fast path when its record is still valid, else a GET. */
static void try_start(struct k8s_lease *l)
{
    int rc = 0;
    if (l->state == LEASE_LEADING && is_holder_me(l) && is_lease_valid(l) && l->lease != NULL) {
        struct record mine;
        record_mine(l, &mine);
        memcpy(mine.acquire_time, l->observed.acquire_time, sizeof(mine.acquire_time));
        mine.transitions = l->observed.transitions;
        rc = put_record(l, STEP_FAST_PUT, &mine);
    } else {
        rc = send(l, STEP_GET, K8S_GET, l->path, NULL);
    }
    if (rc != 0) {
        l->fail_streak++;
        try_end(l, false);
    }
}

/* The renew deadline passed without a successful renewal: step down and campaign again. */
static void step_down(struct k8s_lease *l)
{
    k8s_call_cancel(l->call);
    l->call = NULL;
    dc_timer_stop(lease_loop(l), &l->timer);
    l->state = LEASE_ACQUIRING;
    l->is_round_active = false;
    dc_log(DC_LOG_WARN, LEASE_LOG_SUBSYS,
           "lease %s/%s as \"%s\": lost leadership: no renewal succeeded within %u ms", l->ns,
           l->name, l->identity, l->deadline_ms);
    call_stopped(l);
    if (!l->is_stopped && l->state == LEASE_ACQUIRING) {
        dc_timer_start(lease_loop(l), &l->timer, jittered_retry_ms(l));
    }
}

/* --- release --- */

/* Ends a release: the elector goes idle, tells the user, and runs done. */
static void release_finish(struct k8s_lease *l, int error)
{
    k8s_call_cancel(l->call);
    l->call = NULL;
    dc_timer_stop(lease_loop(l), &l->deadline);
    l->state = LEASE_IDLE;
    if (error == 0) {
        dc_log(DC_LOG_INFO, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": released leadership", l->ns,
               l->name, l->identity);
    } else {
        dc_log(DC_LOG_WARN, LEASE_LOG_SUBSYS, "lease %s/%s as \"%s\": release failed: %s", l->ns,
               l->name, l->identity, dc_strerror(error));
    }
    call_stopped(l);
    report_transition(l);
    if (!l->is_stopped && l->done != NULL) {
        l->done(l->done_arg, error);
    }
}

static void release_answer(struct k8s_lease *l, const struct k8s_response *resp)
{
    bool is_ok = k8s_response_is_ok(resp);
    if (l->step == STEP_REL_GET && is_ok && keep_lease(l, resp)) {
        struct record rec, empty = {0};
        record_parse(l->lease, &rec);
        if (strcmp(rec.holder, l->identity) != 0) {
            set_observed(l, &rec); /* someone else holds it already: nothing to hand over */
            release_finish(l, 0);
            return;
        }
        empty.duration_s = 1;
        now_micro(empty.renew_time);
        memcpy(empty.acquire_time, empty.renew_time, sizeof(empty.acquire_time));
        empty.transitions = rec.transitions;
        int rc = put_record(l, STEP_REL_PUT, &empty);
        if (rc != 0) {
            release_finish(l, rc);
        }
        return;
    }
    if (l->step == STEP_REL_PUT && is_ok) {
        set_observed(l, &l->pending);
        release_finish(l, 0);
        return;
    }
    if (l->step == STEP_REL_PUT && resp->error == 0 && resp->status == 409) {
        release_get(l); /* changed under us: read again, as tryRelease does */
        return;
    }
    log_failure(l, resp);
    if (resp->error == 0 && resp->status == 404) {
        release_finish(l, 0); /* no Lease: nothing to hand over */
        return;
    }
    release_finish(l, resp->error != 0 ? resp->error : -EIO);
}

static void release_get(struct k8s_lease *l)
{
    int rc = send(l, STEP_REL_GET, K8S_GET, l->path, NULL);
    if (rc != 0) {
        release_finish(l, rc);
    }
}

/* --- loop entries --- */

static void lease_done(void *arg, const struct k8s_response *resp)
{
    struct k8s_lease *l = arg;
    l->call = NULL;
    lease_hold(l);
    if (l->state == LEASE_RELEASING) {
        release_answer(l, resp);
    } else if (l->state == LEASE_ACQUIRING || l->state == LEASE_LEADING) {
        try_answer(l, resp);
    }
    lease_unhold(l);
}

static void timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct k8s_lease *l = t->data;
    lease_hold(l);
    if (l->state == LEASE_IDLE) {
        if (l->done != NULL) {
            l->done(l->done_arg, 0); /* release without leadership: nothing to hand over */
        }
    } else if (l->state == LEASE_RELEASING) {
        release_get(l);
    } else {
        if (l->state == LEASE_LEADING && !l->is_round_active) {
            l->is_round_active = true; /* a renewal round: it must succeed by the deadline */
            dc_timer_start(lease_loop(l), &l->deadline, l->deadline_ms);
        }
        try_start(l);
    }
    lease_unhold(l);
}

static void deadline_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct k8s_lease *l = t->data;
    lease_hold(l);
    if (l->state == LEASE_LEADING) {
        step_down(l);
    } else if (l->state == LEASE_RELEASING) {
        release_finish(l, -ETIMEDOUT);
    }
    lease_unhold(l);
}

/* --- public --- */

/* Copies s (a namespace or name: DNS characters only, since it goes into a URL path). */
static int copy_name(const char *what, const char *s, char *out, size_t len, char *err)
{
    if (s == NULL || s[0] == '\0') {
        return dc_err_set(err, -EINVAL, "lease: %s is empty", what);
    }
    size_t n = strlen(s);
    if (n >= len) {
        return dc_err_set(err, -EMSGSIZE, "lease: %s is longer than %zu bytes", what, len - 1);
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            char q[DC_QUOTE_BUF_LEN];
            return dc_err_set(err, -EINVAL, "lease: %s is not a DNS name: `%s'", what,
                              dc_err_quote(s, n, q));
        }
    }
    memcpy(out, s, n + 1);
    return 0;
}

static int check_durations(const struct k8s_lease *l, char *err)
{
    if (l->duration_ms <= l->deadline_ms) {
        return dc_err_set(err, -EINVAL,
                          "lease: lease duration %u ms must be greater than the "
                          "renew deadline %u ms",
                          l->duration_ms, l->deadline_ms);
    }
    if ((uint64_t)l->deadline_ms * 10u <= (uint64_t)l->retry_ms * K8S_LEASE_JITTER_TENTHS) {
        return dc_err_set(err, -EINVAL,
                          "lease: renew deadline %u ms must be greater than the "
                          "retry period %u ms times 1.2",
                          l->deadline_ms, l->retry_ms);
    }
    return 0;
}

static int lease_configure(struct k8s_lease *l, const struct k8s_lease_opts *o, char *err)
{
    int rc = copy_name("namespace", o->namespace_, l->ns, sizeof(l->ns), err);
    if (rc == 0) {
        rc = copy_name("name", o->name, l->name, sizeof(l->name), err);
    }
    if (rc != 0) {
        return rc;
    }
    if (o->identity == NULL || o->identity[0] == '\0') {
        return dc_err_set(err, -EINVAL, "lease: identity is empty");
    }
    if (strlen(o->identity) > K8S_LEASE_MAX_IDENTITY_LEN) {
        return dc_err_set(err, -EMSGSIZE, "lease: identity is longer than %u bytes",
                          K8S_LEASE_MAX_IDENTITY_LEN);
    }
    snprintf(l->identity, sizeof(l->identity), "%s", o->identity);
    l->duration_ms = o->lease_duration_ms ? o->lease_duration_ms : K8S_LEASE_DEFAULT_DURATION_MS;
    l->deadline_ms =
        o->renew_deadline_ms ? o->renew_deadline_ms : K8S_LEASE_DEFAULT_RENEW_DEADLINE_MS;
    l->retry_ms = o->retry_period_ms ? o->retry_period_ms : K8S_LEASE_DEFAULT_RETRY_PERIOD_MS;
    snprintf(l->collection, sizeof(l->collection),
             "/apis/coordination.k8s.io/v1/namespaces/%s/leases", l->ns);
    snprintf(l->path, sizeof(l->path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s",
             l->ns, l->name);
    return check_durations(l, err);
}

int k8s_lease_start(struct k8s_client *client, const struct k8s_lease_opts *opts,
                    struct k8s_lease **out, char *err)
{
    struct k8s_lease *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return dc_err_set(err, -ENOMEM, "lease: out of memory");
    }
    l->client = client;
    int rc = lease_configure(l, opts, err);
    if (rc != 0) {
        free(l);
        return rc;
    }
    l->on_started = opts->on_started_leading;
    l->on_stopped = opts->on_stopped_leading;
    l->on_new_leader = opts->on_new_leader;
    l->arg = opts->arg;
    l->timer = (struct dc_timer){.cb = timer_cb, .data = l};
    l->deadline = (struct dc_timer){.cb = deadline_cb, .data = l};
    l->state = LEASE_ACQUIRING;
    rc = send(l, STEP_GET, K8S_GET, l->path, NULL); /* JitterUntil's first run is immediate */
    if (rc != 0) {
        dc_err_set(err, rc, "lease %s/%s as \"%s\": first request failed: %s", l->ns, l->name,
                   l->identity, dc_strerror(rc));
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

bool k8s_lease_is_leader(const struct k8s_lease *l)
{
    return l->state == LEASE_LEADING;
}

const char *k8s_lease_holder(const struct k8s_lease *l)
{
    return l->observed.holder;
}

int k8s_lease_release(struct k8s_lease *l, k8s_lease_done_cb done, void *arg)
{
    if (l->is_release_asked) {
        return -EALREADY;
    }
    l->is_release_asked = true;
    l->done = done;
    l->done_arg = arg;
    k8s_call_cancel(l->call);
    l->call = NULL;
    dc_timer_stop(lease_loop(l), &l->timer);
    dc_timer_stop(lease_loop(l), &l->deadline);
    if (l->state != LEASE_LEADING) {
        l->state = LEASE_IDLE;
        dc_timer_start(lease_loop(l), &l->timer, 0); /* done runs on the loop, not in here */
        return 0;
    }
    l->state = LEASE_RELEASING; /* the timer starts the hand-over, so callbacks run on the loop */
    dc_timer_start(lease_loop(l), &l->timer, 0);
    dc_timer_start(lease_loop(l), &l->deadline, l->deadline_ms); /* client-go: RenewDeadline */
    return 0;
}

void k8s_lease_stop(struct k8s_lease *l)
{
    if (l == NULL || l->is_stopped) {
        return;
    }
    l->is_stopped = true;
    k8s_call_cancel(l->call);
    l->call = NULL;
    dc_timer_stop(lease_loop(l), &l->timer);
    dc_timer_stop(lease_loop(l), &l->deadline);
    if (l->busy == 0) {
        lease_free(l);
    }
}
