/* test_k8s_lease: leader election on a Lease (k8s-client/k8s_lease.c) against the in-tree API
 * test server, with two electors in one process (one per user, so faults can hit one of them):
 * the first leads and the Lease carries its identity; the second does not lead while the first
 * renews; release hands over at once, stop without release makes the other wait for expiry; a
 * leader whose renewals fail steps down before the other takes over; a Lease with garbage in it;
 * bad options. Short durations (seconds-long leases) keep it quick. Every loop run is bounded by
 * a dc_timer; cases skip when the server cannot start (no python3). */
#include "k8s_lease.h"

#include "k8s_config.h"
#include "k8s_http.h"
#include "loop.h"
#include "support/k8s_env.h"

#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

/* Longest a loop run may take before the case fails (above K8S_ENV_GUARD_MS: the slowest cases
 * wait out a lease). */
#define GUARD_MS 20000u
#define LEASES   "/apis/coordination.k8s.io/v1/namespaces/default/leases/"
/* The user of the "test" context's client certificate: faults aimed at elector A match it. */
#define USER_A "kubernetes-admin"

/* Durations for most cases: a 4 s lease, so "waits for expiry" and "takes over at once" are far
 * apart. The renew-deadline case uses a 2 s lease. */
#define LEASE_MS 4000u
#define RENEW_MS 1000u
#define RETRY_MS 200u

/* What one elector's callbacks saw. */
struct obs {
    int started;         /* on_started_leading calls */
    int stopped;         /* on_stopped_leading calls */
    int new_leader;      /* on_new_leader calls */
    char leader[64];     /* the last identity reported */
    uint64_t started_ms; /* dc_now_ms() of the last start */
    uint64_t stopped_ms; /* dc_now_ms() of the last stop */
    int done;            /* release's done calls */
    int done_error;      /* its error */
};

struct fixture {
    struct k8s_env env;                     /* first: see k8s_env_fixture_new() */
    struct k8s_client *client_a, *client_b; /* contexts test and test-token (borrowed from env) */
    struct k8s_lease *a, *b;
    struct obs oa, ob;
    bool (*pred)(struct fixture *f); /* run's condition */
};
_Static_assert(offsetof(struct fixture, env) == 0, "k8s_env_fixture_*() take the fixture");

/* --- callbacks --- */

static void on_started(void *arg)
{
    struct obs *o = arg;
    o->started++;
    o->started_ms = dc_now_ms();
}

static void on_stopped(void *arg)
{
    struct obs *o = arg;
    o->stopped++;
    o->stopped_ms = dc_now_ms();
}

static void on_new_leader(void *arg, const char *identity)
{
    struct obs *o = arg;
    o->new_leader++;
    snprintf(o->leader, sizeof(o->leader), "%s", identity);
}

static void on_done(void *arg, int error)
{
    struct obs *o = arg;
    o->done++;
    o->done_error = error;
}

/* --- loop helpers --- */

static bool pred_holds(void *arg)
{
    struct fixture *f = arg;
    return f->pred(f);
}

/* Runs the loop until pred holds (fails the case after GUARD_MS), or for ms when pred is NULL. */
static void run(struct fixture *f, bool (*pred)(struct fixture *), uint32_t ms)
{
    f->pred = pred;
    bool is_met = k8s_env_run_until(&f->env, pred != NULL ? pred_holds : NULL, f,
                                    pred != NULL ? GUARD_MS : ms);
    if (pred != NULL) {
        assert_true(is_met);
    }
}

static bool a_leads(struct fixture *f)
{
    return k8s_lease_is_leader(f->a);
}

static bool b_leads(struct fixture *f)
{
    return k8s_lease_is_leader(f->b);
}

static bool a_stopped(struct fixture *f)
{
    return f->oa.stopped > 0;
}

static bool a_done(struct fixture *f)
{
    return f->oa.done > 0;
}

static bool b_sees_a(struct fixture *f)
{
    return strcmp(k8s_lease_holder(f->b), "a") == 0;
}

/* The Lease name's spec, read through the API (caller decrefs), or NULL when it is missing. */
static json_t *lease_spec(struct fixture *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), LEASES "%s", name);
    struct k8s_request_opts o = {.method = K8S_GET, .path = path, .timeout_ms = 10000};
    long status = 0;
    json_t *obj = NULL;
    /* Through B's client: faults in these cases aim at A's user. */
    (void)k8s_env_request(&f->env, f->client_b, &o, &status, &obj);
    json_t *spec = status == 200 ? json_incref(json_object_get(obj, "spec")) : NULL;
    json_decref(obj);
    return spec;
}

static const char *holder_of(const json_t *spec)
{
    const json_t *h = json_object_get(spec, "holderIdentity");
    return json_is_string(h) ? json_string_value(h) : "";
}

static json_int_t int_of(const json_t *spec, const char *key)
{
    const json_t *v = json_object_get(spec, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static bool is_micro_time(const json_t *v)
{
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    bool ok = json_is_string(v) && regexec(&re, json_string_value(v), 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* Starts elector id ("a" on client A, "b" on client B) on Lease name. */
static struct k8s_lease *elector(struct fixture *f, const char *id, const char *name,
                                 uint32_t lease_ms)
{
    bool is_a = strcmp(id, "a") == 0;
    struct k8s_lease_opts o = {.namespace_ = "default",
                               .name = name,
                               .identity = id,
                               .lease_duration_ms = lease_ms,
                               .renew_deadline_ms = RENEW_MS,
                               .retry_period_ms = RETRY_MS,
                               .on_started_leading = on_started,
                               .on_stopped_leading = on_stopped,
                               .on_new_leader = on_new_leader,
                               .arg = is_a ? &f->oa : &f->ob};
    struct k8s_lease *l = NULL;
    char err[DC_ERR_LEN] = "";
    int rc = k8s_lease_start(is_a ? f->client_a : f->client_b, &o, &l, err);
    if (rc != 0) {
        fail_msg("k8s_lease_start: %s", err);
    }
    return l;
}

/* A leads name, and B runs and has seen it. */
static void a_leads_b_follows(struct fixture *f, const char *name, uint32_t lease_ms)
{
    f->a = elector(f, "a", name, lease_ms);
    run(f, a_leads, 0);
    f->b = elector(f, "b", name, lease_ms);
    run(f, b_sees_a, 0);
}

/* --- fixture --- */

static int group_setup(void **state)
{
    struct fixture *f = k8s_env_fixture_new(sizeof(*f), "test_k8s_lease");
    *state = f;
    if (f == NULL || k8s_env_add_client(&f->env, "test", &f->client_a) != 0 ||
        k8s_env_add_client(&f->env, "test-token", &f->client_b) != 0) {
        return -1;
    }
    f->env.guard_ms = GUARD_MS;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    k8s_lease_stop(f->a);
    k8s_lease_stop(f->b);
    f->a = f->b = NULL;
    memset(&f->oa, 0, sizeof(f->oa));
    memset(&f->ob, 0, sizeof(f->ob));
    if (f->env.has_server) {
        ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    }
    return 0;
}

/* --- cases --- */

static void test_k8s_lease_first_elector_leads(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    f->a = elector(f, "a", "first", LEASE_MS);
    run(f, a_leads, 0);
    assert_int_equal(f->oa.started, 1);
    assert_int_equal(f->oa.stopped, 0);
    assert_string_equal(f->oa.leader, "a");
    assert_string_equal(k8s_lease_holder(f->a), "a");
    json_t *spec = lease_spec(f, "first");
    assert_non_null(spec);
    assert_string_equal(holder_of(spec), "a");
    assert_int_equal(int_of(spec, "leaseDurationSeconds"), LEASE_MS / 1000);
    assert_int_equal(int_of(spec, "leaseTransitions"), 0);
    assert_true(is_micro_time(json_object_get(spec, "renewTime")));
    assert_true(is_micro_time(json_object_get(spec, "acquireTime")));
    char renew[64];
    snprintf(renew, sizeof(renew), "%s", json_string_value(json_object_get(spec, "renewTime")));
    json_decref(spec);
    /* It renews: renewTime moves, acquireTime stays. */
    run(f, NULL, 3 * RETRY_MS);
    spec = lease_spec(f, "first");
    assert_string_not_equal(json_string_value(json_object_get(spec, "renewTime")), renew);
    assert_string_equal(holder_of(spec), "a");
    json_decref(spec);
    assert_true(k8s_lease_is_leader(f->a));
    assert_int_equal(f->oa.started, 1);
}

static void test_k8s_lease_second_waits_while_renewed(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    a_leads_b_follows(f, "second", LEASE_MS);
    assert_string_equal(f->ob.leader, "a");
    /* Longer than a lease duration: A's renewals keep B out. */
    run(f, NULL, LEASE_MS + 1000);
    assert_false(k8s_lease_is_leader(f->b));
    assert_int_equal(f->ob.started, 0);
    assert_true(k8s_lease_is_leader(f->a));
    json_t *spec = lease_spec(f, "second");
    assert_string_equal(holder_of(spec), "a");
    json_decref(spec);
}

static void test_k8s_lease_release_hands_over(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    a_leads_b_follows(f, "release", LEASE_MS);
    assert_int_equal(k8s_lease_release(f->a, on_done, &f->oa), 0);
    assert_int_equal(k8s_lease_release(f->a, on_done, &f->oa), -EALREADY);
    assert_int_equal(f->oa.done, 0); /* done runs on the loop, not in the call */
    uint64_t t0 = dc_now_ms();
    run(f, a_done, 0);
    assert_int_equal(f->oa.done_error, 0);
    assert_int_equal(f->oa.stopped, 1);
    assert_false(k8s_lease_is_leader(f->a));
    json_t *spec = lease_spec(f, "release");
    if (!k8s_lease_is_leader(f->b)) {
        assert_string_equal(holder_of(spec), ""); /* B has not taken it yet */
    }
    json_decref(spec);
    run(f, b_leads, 0);
    /* B took it on its next try, long before A's lease would have expired. */
    assert_true(dc_now_ms() - t0 < LEASE_MS);
    assert_true(f->ob.started_ms >= f->oa.stopped_ms);
    spec = lease_spec(f, "release");
    assert_string_equal(holder_of(spec), "b");
    assert_int_equal(int_of(spec, "leaseTransitions"), 1);
    assert_int_equal(int_of(spec, "leaseDurationSeconds"), LEASE_MS / 1000);
    json_decref(spec);
    /* The released elector stays idle. */
    run(f, NULL, 3 * RETRY_MS);
    assert_false(k8s_lease_is_leader(f->a));
    assert_int_equal(f->oa.started, 1);
}

static void test_k8s_lease_release_when_not_leading(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    a_leads_b_follows(f, "release-follower", LEASE_MS);
    assert_int_equal(k8s_lease_release(f->b, on_done, &f->ob), 0);
    assert_int_equal(f->ob.done, 0);
    run(f, NULL, 2 * RETRY_MS);
    assert_int_equal(f->ob.done, 1);
    assert_int_equal(f->ob.done_error, 0);
    assert_int_equal(f->ob.stopped, 0);
    json_t *spec = lease_spec(f, "release-follower");
    assert_string_equal(holder_of(spec), "a"); /* a follower's release writes nothing */
    json_decref(spec);
}

static void test_k8s_lease_stop_without_release(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    a_leads_b_follows(f, "stop", LEASE_MS);
    k8s_lease_stop(f->a);
    f->a = NULL;
    uint64_t t0 = dc_now_ms();
    run(f, b_leads, 0);
    /* B saw A's last renewal at most a retry period (plus jitter) before the stop, so it waited
     * at least the lease duration minus that. */
    assert_true(dc_now_ms() - t0 >= LEASE_MS - 3 * RETRY_MS);
    json_t *spec = lease_spec(f, "stop");
    assert_string_equal(holder_of(spec), "b");
    assert_int_equal(int_of(spec, "leaseTransitions"), 1);
    json_decref(spec);
    assert_string_equal(f->ob.leader, "b");
}

static void test_k8s_lease_renew_deadline_steps_down(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    const uint32_t lease_ms = 2000;
    a_leads_b_follows(f, "deadline", lease_ms);
    /* Every request of A's on the Lease fails from now on; B's go through. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":500,\"path\":\"/leases/deadline$\","
                       "\"user\":\"" USER_A "\",\"count\":-1}");
    run(f, a_stopped, 0);
    assert_false(k8s_lease_is_leader(f->a));
    assert_int_equal(f->oa.stopped, 1);
    run(f, b_leads, 0);
    /* A stepped down before B took over: never two leaders. */
    assert_true(f->oa.stopped_ms <= f->ob.started_ms);
    json_t *spec = lease_spec(f, "deadline");
    assert_string_equal(holder_of(spec), "b");
    json_decref(spec);
    /* A goes back to campaigning; once it can talk again it follows B. */
    ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    run(f, NULL, lease_ms);
    assert_false(k8s_lease_is_leader(f->a));
    assert_string_equal(k8s_lease_holder(f->a), "b");
    assert_string_equal(f->oa.leader, "b");
}

static void test_k8s_lease_garbage_lease(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* A GET answered with something that is not JSON, then one with mistyped fields. */
    fault(&f->env.srv, "{\"action\":\"body\",\"code\":200,\"method\":\"GET\",\"path\":"
                       "\"/leases/garbage$\",\"body\":\"not json\"}");
    fault(&f->env.srv, "{\"action\":\"body\",\"code\":200,\"method\":\"GET\",\"path\":"
                       "\"/leases/garbage$\",\"body\":\"{\\\"metadata\\\":{},\\\"spec\\\":"
                       "{\\\"holderIdentity\\\":5,\\\"leaseDurationSeconds\\\":\\\"x\\\","
                       "\\\"renewTime\\\":[]}}\"}");
    f->a = elector(f, "a", "garbage", LEASE_MS);
    /* Nothing crashes, and A leads after both (the second is a Lease without a holder). */
    run(f, a_leads, 0);
    char *rules = NULL;
    assert_int_equal(ctl(&f->env.srv, "GET", "/__test/faults", NULL, &rules), 200);
    json_t *pending = json_loads(rules, 0, NULL);
    free(rules);
    const json_t *list = json_is_array(pending) ? pending : json_object_get(pending, "faults");
    assert_int_equal(json_array_size(list), 0); /* both faults fired */
    json_decref(pending);
    json_t *spec = lease_spec(f, "garbage");
    assert_string_equal(holder_of(spec), "a");
    json_decref(spec);
}

/* done frees the elector, the usual shutdown path. */
static void on_done_stop(void *arg, int error)
{
    struct fixture *f = arg;
    f->oa.done++;
    f->oa.done_error = error;
    k8s_lease_stop(f->a);
    f->a = NULL;
}

/* An elector that stops itself as soon as it leads. */
static void on_started_stop(void *arg)
{
    struct fixture *f = arg;
    f->ob.started++;
    k8s_lease_stop(f->b);
    f->b = NULL;
}

static bool b_gone(struct fixture *f)
{
    return f->b == NULL;
}

static void test_k8s_lease_stop_in_callback(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    f->a = elector(f, "a", "stop-cb", LEASE_MS);
    run(f, a_leads, 0);
    assert_int_equal(k8s_lease_release(f->a, on_done_stop, f), 0);
    run(f, a_done, 0);
    assert_null(f->a);
    assert_int_equal(f->oa.done_error, 0);
    json_t *spec = lease_spec(f, "stop-cb");
    assert_string_equal(holder_of(spec), "");
    assert_int_equal(int_of(spec, "leaseDurationSeconds"), 1);
    assert_int_equal(int_of(spec, "leaseTransitions"), 0);
    json_decref(spec);

    struct k8s_lease_opts o = {.namespace_ = "default",
                               .name = "stop-cb",
                               .identity = "b",
                               .lease_duration_ms = LEASE_MS,
                               .renew_deadline_ms = RENEW_MS,
                               .retry_period_ms = RETRY_MS,
                               .on_started_leading = on_started_stop,
                               .arg = f};
    char err[DC_ERR_LEN] = "";
    assert_int_equal(k8s_lease_start(f->client_b, &o, &f->b, err), 0);
    run(f, b_gone, 0);
    assert_int_equal(f->ob.started, 1);
    run(f, NULL, 2 * RETRY_MS); /* nothing of it may run any more (ASan would see it) */
    spec = lease_spec(f, "stop-cb");
    assert_string_equal(holder_of(spec), "b");
    assert_int_equal(int_of(spec, "leaseTransitions"), 1);
    json_decref(spec);
}

static void test_k8s_lease_bad_options(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_lease *l = NULL;
    char err[DC_ERR_LEN] = "";
    struct k8s_lease_opts o = {.namespace_ = "default", .name = "x", .identity = "a"};
    o.lease_duration_ms = 1000;
    o.renew_deadline_ms = 1000;
    assert_int_equal(k8s_lease_start(f->client_a, &o, &l, err), -EINVAL);
    assert_non_null(strstr(err, "renew deadline"));
    o.lease_duration_ms = 2000;
    o.retry_period_ms = 900; /* 1.2 * 900 > 1000 */
    assert_int_equal(k8s_lease_start(f->client_a, &o, &l, err), -EINVAL);
    assert_non_null(strstr(err, "retry period"));
    o.retry_period_ms = 0;
    o.identity = "";
    assert_int_equal(k8s_lease_start(f->client_a, &o, &l, err), -EINVAL);
    o.identity = "a";
    o.name = "Bad/Name";
    assert_int_equal(k8s_lease_start(f->client_a, &o, &l, err), -EINVAL);
    assert_null(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_k8s_lease_first_elector_leads, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_second_waits_while_renewed, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_release_hands_over, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_release_when_not_leading, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_stop_without_release, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_renew_deadline_steps_down, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_garbage_lease, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_stop_in_callback, teardown),
        cmocka_unit_test_teardown(test_k8s_lease_bad_options, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, k8s_env_group_teardown);
}
