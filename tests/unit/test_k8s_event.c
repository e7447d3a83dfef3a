/* test_k8s_event: the Event recorder (k8s-client/k8s_event.c) against the in-tree API test
 * server: the first emission creates an events.k8s.io/v1 Event with every field, repeats become
 * series.count 2, 3 on the same Event, another note makes another Event, a deleted Event is
 * created again, namespaced objects keep their namespace, the core/v1 fallback when
 * events.k8s.io answers 404, the spam filter's burst of 25, names for odd object names, failures
 * counted, and (when kubectl is installed) `kubectl get events` showing what was written. Every
 * loop run is bounded by a dc_timer; cases skip when the server cannot start (no python3). */
#include "k8s_event.h"

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
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#define EVENTS_V1 "/apis/events.k8s.io/v1/namespaces/"
#define CORE_V1   "/api/v1/namespaces/"

struct fixture {
    struct k8s_env env;        /* first: see k8s_env_fixture_new() */
    struct k8s_client *client; /* context test (borrowed from env) */
    struct k8s_recorder *rec;  /* a fresh recorder per case */
};
_Static_assert(offsetof(struct fixture, env) == 0, "k8s_env_fixture_*() take the fixture");

static bool is_settled(void *arg)
{
    struct fixture *f = arg;
    return k8s_recorder_pending(f->rec) == 0;
}

/* Runs the loop until every write of the recorder has been answered. */
static void settle(struct fixture *f)
{
    assert_true(k8s_env_run_until(&f->env, is_settled, f, K8S_ENV_GUARD_MS));
    assert_int_equal(k8s_recorder_pending(f->rec), 0);
}

/* Sends one request through the API and returns the parsed body (caller decrefs). */
static json_t *api(struct fixture *f, enum k8s_method m, const char *path, const char *query,
                   long *status)
{
    struct k8s_request_opts o = {.method = m, .path = path, .query = query, .timeout_ms = 10000};
    json_t *obj = NULL;
    assert_true(k8s_env_request(&f->env, f->client, &o, status, &obj));
    return obj;
}

/* The items of a LIST of events in ns whose object is name (either API), as a new array. */
static json_t *list_events(struct fixture *f, const char *base, const char *ns, const char *name)
{
    char path[256], query[512];
    bool is_core = strcmp(base, CORE_V1) == 0;
    snprintf(path, sizeof(path), "%s%s/events", base, ns);
    snprintf(query, sizeof(query), "fieldSelector=%s.name%%3D%s",
             is_core ? "involvedObject" : "regarding", name);
    long status = 0;
    json_t *list = api(f, K8S_GET, path, query, &status);
    assert_int_equal(status, 200);
    json_t *items = json_incref(json_object_get(list, "items"));
    json_decref(list);
    assert_true(json_is_array(items));
    return items;
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *v = json_object_get(obj, a);
    if (b != NULL) {
        v = json_object_get(v, b);
    }
    return json_is_string(v) ? json_string_value(v) : "";
}

static json_int_t int_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *v = json_object_get(obj, a);
    if (b != NULL) {
        v = json_object_get(v, b);
    }
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

static bool matches(const char *s, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

#define MICRO_TIME_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$"
#define TIME_RE       "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
#define NAME_RE       "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

static struct k8s_object_ref cluster(const char *name)
{
    return (struct k8s_object_ref){.api_version = "management.loft.sh/v1",
                                   .kind = "Cluster",
                                   .name = name,
                                   .uid = "0d9b7c2e-1111-4a55-8f00-000000000001"};
}

static void emit(struct fixture *f, const struct k8s_object_ref *obj, const char *type,
                 const char *reason, const char *note)
{
    assert_int_equal(k8s_event_emit(f->rec, obj, type, reason, "Validate", note), 0);
}

static struct k8s_recorder_stats stats(const struct fixture *f)
{
    struct k8s_recorder_stats s;
    k8s_recorder_stats(f->rec, &s);
    return s;
}

/* --- fixture --- */

static int group_setup(void **state)
{
    struct fixture *f = k8s_env_fixture_new(sizeof(*f), "test_k8s_event");
    *state = f;
    return f != NULL ? k8s_env_add_client(&f->env, "test", &f->client) : -1;
}

static int setup(void **state)
{
    struct fixture *f = *state;
    if (!f->env.has_server) {
        return 0;
    }
    ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    char err[DC_ERR_LEN] = "";
    if (k8s_recorder_new(f->client, "derp-controller", "derp-controller-7c9f-x2x", &f->rec, err) !=
        0) {
        print_error("recorder: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    k8s_recorder_free(f->rec);
    f->rec = NULL;
    return 0;
}

/* --- cases --- */

static void test_k8s_event_create_fields(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("eu-west");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "derp-endpoint: port out of range");
    settle(f);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.emitted, 1);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.failed, 0);
    assert_false(k8s_recorder_is_core_v1(f->rec));

    /* A cluster-scoped object's Event lives in "default". */
    json_t *items = list_events(f, EVENTS_V1, "default", "eu-west");
    assert_int_equal(json_array_size(items), 1);
    const json_t *ev = json_array_get(items, 0);
    assert_string_equal(str_at(ev, "reportingController", NULL), "derp-controller");
    assert_string_equal(str_at(ev, "reportingInstance", NULL), "derp-controller-7c9f-x2x");
    assert_string_equal(str_at(ev, "action", NULL), "Validate");
    assert_string_equal(str_at(ev, "reason", NULL), "InvalidEndpoint");
    assert_string_equal(str_at(ev, "note", NULL), "derp-endpoint: port out of range");
    assert_string_equal(str_at(ev, "type", NULL), "Warning");
    assert_string_equal(str_at(ev, "regarding", "apiVersion"), "management.loft.sh/v1");
    assert_string_equal(str_at(ev, "regarding", "kind"), "Cluster");
    assert_string_equal(str_at(ev, "regarding", "name"), "eu-west");
    assert_string_equal(str_at(ev, "regarding", "uid"), c.uid);
    assert_null(json_object_get(json_object_get(ev, "regarding"), "namespace"));
    assert_true(matches(str_at(ev, "eventTime", NULL), MICRO_TIME_RE));
    assert_null(json_object_get(ev, "series"));
    const char *name = str_at(ev, "metadata", "name");
    assert_true(matches(name, "^eu-west\\.[0-9a-f]{16}$"));
    json_decref(items);
}

static void test_k8s_event_series(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("series-a");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
    settle(f);
    json_t *items = list_events(f, EVENTS_V1, "default", "series-a");
    char name[300];
    snprintf(name, sizeof(name), "%s", str_at(json_array_get(items, 0), "metadata", "name"));
    char event_time[64];
    snprintf(event_time, sizeof(event_time), "%s",
             str_at(json_array_get(items, 0), "eventTime", NULL));
    json_decref(items);

    for (json_int_t want = 2; want <= 3; want++) {
        emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
        settle(f);
        items = list_events(f, EVENTS_V1, "default", "series-a");
        assert_int_equal(json_array_size(items), 1);
        const json_t *ev = json_array_get(items, 0);
        assert_string_equal(str_at(ev, "metadata", "name"), name);
        assert_int_equal(int_at(ev, "series", "count"), want);
        assert_true(matches(str_at(ev, "series", "lastObservedTime"), MICRO_TIME_RE));
        assert_string_equal(str_at(ev, "eventTime", NULL), event_time);
        json_decref(items);
    }
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.updated, 2);

    /* Another note, or another type, is another Event. */
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "empty endpoint");
    emit(f, &c, K8S_EVENT_NORMAL, "InvalidEndpoint", "bad port");
    settle(f);
    items = list_events(f, EVENTS_V1, "default", "series-a");
    assert_int_equal(json_array_size(items), 3);
    json_decref(items);
    s = stats(f);
    assert_int_equal(s.created, 3);
}

static void test_k8s_event_repeats_coalesce(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("burst");
    /* Five at once: one create, then the repeats that came meanwhile in one PATCH. */
    for (int i = 0; i < 5; i++) {
        emit(f, &c, K8S_EVENT_NORMAL, "Probed", "relay answered");
    }
    settle(f);
    json_t *items = list_events(f, EVENTS_V1, "default", "burst");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(int_at(json_array_get(items, 0), "series", "count"), 5);
    json_decref(items);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.updated, 1);
}

static void test_k8s_event_deleted_is_recreated(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("deleted");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
    settle(f);
    json_t *items = list_events(f, EVENTS_V1, "default", "deleted");
    char path[512];
    snprintf(path, sizeof(path), EVENTS_V1 "default/events/%s",
             str_at(json_array_get(items, 0), "metadata", "name"));
    json_decref(items);
    long status = 0;
    json_decref(api(f, K8S_DELETE, path, NULL, &status));
    assert_int_equal(status, 200);

    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
    settle(f);
    items = list_events(f, EVENTS_V1, "default", "deleted");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(int_at(json_array_get(items, 0), "series", "count"), 2);
    json_decref(items);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.failed, 0);
}

static void test_k8s_event_namespaced_object(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref cm = {.api_version = "v1",
                                .kind = "ConfigMap",
                                .namespace_ = "kube-system",
                                .name = "derp-regions"};
    emit(f, &cm, K8S_EVENT_NORMAL, "Saved", "region IDs saved");
    settle(f);
    json_t *items = list_events(f, EVENTS_V1, "kube-system", "derp-regions");
    assert_int_equal(json_array_size(items), 1);
    const json_t *ev = json_array_get(items, 0);
    assert_string_equal(str_at(ev, "metadata", "namespace"), "kube-system");
    assert_string_equal(str_at(ev, "regarding", "namespace"), "kube-system");
    assert_null(json_object_get(json_object_get(ev, "regarding"), "uid"));
    json_decref(items);
    items = list_events(f, EVENTS_V1, "default", "derp-regions");
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
}

static void test_k8s_event_core_v1_fallback(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* events.k8s.io is not served: kube answers 404 with a Status that names no object. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":404,\"path\":\"^/apis/events.k8s.io/\","
                       "\"count\":-1}");
    struct k8s_object_ref c = cluster("core-a");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
    settle(f);
    assert_true(k8s_recorder_is_core_v1(f->rec));
    json_t *items = list_events(f, CORE_V1, "default", "core-a");
    assert_int_equal(json_array_size(items), 1);
    const json_t *ev = json_array_get(items, 0);
    assert_string_equal(str_at(ev, "involvedObject", "kind"), "Cluster");
    assert_string_equal(str_at(ev, "involvedObject", "name"), "core-a");
    assert_string_equal(str_at(ev, "source", "component"), "derp-controller");
    assert_string_equal(str_at(ev, "source", "host"), "derp-controller-7c9f-x2x");
    assert_string_equal(str_at(ev, "reportingComponent", NULL), "derp-controller");
    assert_string_equal(str_at(ev, "reportingInstance", NULL), "derp-controller-7c9f-x2x");
    assert_string_equal(str_at(ev, "message", NULL), "bad port");
    assert_string_equal(str_at(ev, "reason", NULL), "InvalidEndpoint");
    assert_string_equal(str_at(ev, "type", NULL), "Warning");
    assert_true(matches(str_at(ev, "firstTimestamp", NULL), TIME_RE));
    assert_true(matches(str_at(ev, "lastTimestamp", NULL), TIME_RE));
    assert_int_equal(int_at(ev, "count", NULL), 1);
    json_decref(items);

    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "bad port");
    settle(f);
    items = list_events(f, CORE_V1, "default", "core-a");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(int_at(json_array_get(items, 0), "count", NULL), 2);
    json_decref(items);
    /* The switch is for good: no request goes to events.k8s.io any more. */
    ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    struct k8s_object_ref d = cluster("core-b");
    emit(f, &d, K8S_EVENT_NORMAL, "Valid", "ok");
    settle(f);
    assert_true(k8s_recorder_is_core_v1(f->rec));
    items = list_events(f, CORE_V1, "default", "core-b");
    assert_int_equal(int_at(json_array_get(items, 0), "count", NULL), 1);
    json_decref(items);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.updated, 1);
    assert_int_equal(s.failed, 0);
}

static void test_k8s_event_not_found_object_is_not_fallback(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* A 404 that names an object (a missing namespace) is a failure, not a missing API. */
    struct k8s_object_ref cm = {
        .api_version = "v1", .kind = "ConfigMap", .namespace_ = "no-such-ns", .name = "x"};
    emit(f, &cm, K8S_EVENT_NORMAL, "Saved", "x");
    settle(f);
    assert_false(k8s_recorder_is_core_v1(f->rec));
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.created, 0);
}

static void test_k8s_event_spam_filter(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("spammy");
    char note[64];
    for (unsigned i = 0; i < K8S_EVENT_SPAM_BURST + 1; i++) {
        snprintf(note, sizeof(note), "attempt %u failed", i);
        emit(f, &c, K8S_EVENT_WARNING, "ProbeFailed", note);
    }
    /* Another object has its own bucket. */
    struct k8s_object_ref other = cluster("quiet");
    emit(f, &other, K8S_EVENT_WARNING, "ProbeFailed", "attempt 0 failed");
    settle(f);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.emitted, K8S_EVENT_SPAM_BURST + 2);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.created, K8S_EVENT_SPAM_BURST + 1);
    json_t *items = list_events(f, EVENTS_V1, "default", "spammy");
    assert_int_equal(json_array_size(items), K8S_EVENT_SPAM_BURST);
    json_t *ev;
    size_t i;
    json_array_foreach(items, i, ev)
    {
        assert_string_not_equal(str_at(ev, "note", NULL), "attempt 25 failed");
    }
    json_decref(items);
    /* Repeats spend tokens too: the bucket is empty. */
    emit(f, &c, K8S_EVENT_WARNING, "ProbeFailed", "attempt 0 failed");
    settle(f);
    s = stats(f);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.updated, 0);
}

static void test_k8s_event_odd_names(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    char longname[254];
    memset(longname, 'a', 253);
    longname[253] = '\0';
    longname[240] = '-'; /* the cut lands after a '-' that must not end the prefix */
    struct k8s_object_ref c = cluster(longname);
    emit(f, &c, K8S_EVENT_NORMAL, "Valid", "long");
    struct k8s_object_ref odd = cluster("Not_A_DNS_Name");
    emit(f, &odd, K8S_EVENT_NORMAL, "Valid", "odd");
    settle(f);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.created, 2);
    assert_int_equal(s.failed, 0);
    json_t *items = list_events(f, EVENTS_V1, "default", "Not_A_DNS_Name");
    assert_int_equal(json_array_size(items), 1);
    const char *name = str_at(json_array_get(items, 0), "metadata", "name");
    assert_true(matches(name, "^event\\.[0-9a-f]{16}$"));
    json_decref(items);
    items = list_events(f, EVENTS_V1, "default", longname);
    assert_int_equal(json_array_size(items), 1);
    name = str_at(json_array_get(items, 0), "metadata", "name");
    assert_true(strlen(name) <= K8S_EVENT_MAX_NAME_LEN);
    assert_true(matches(name, NAME_RE));
    assert_memory_equal(name, "aaaa", 4);
    json_decref(items);
}

static void test_k8s_event_long_note_is_cut(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* 2000 bytes of two-byte characters: cut to at most 1024 bytes, on a boundary. */
    char note[2001];
    for (int i = 0; i < 2000; i += 2) {
        note[i] = (char)0xc3;
        note[i + 1] = (char)0xa9; /* é */
    }
    note[2000] = '\0';
    struct k8s_object_ref c = cluster("long-note");
    emit(f, &c, K8S_EVENT_NORMAL, "Valid", note);
    settle(f);
    assert_int_equal(stats(f).created, 1);
    json_t *items = list_events(f, EVENTS_V1, "default", "long-note");
    const char *got = str_at(json_array_get(items, 0), "note", NULL);
    assert_int_equal(strlen(got), K8S_EVENT_MAX_NOTE_LEN);
    json_decref(items);
}

static void test_k8s_event_failure_counted(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":403,\"method\":\"POST\","
                       "\"path\":\"/events$\",\"count\":1}");
    struct k8s_object_ref c = cluster("forbidden");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "x");
    settle(f);
    struct k8s_recorder_stats s = stats(f);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.created, 0);
    assert_false(k8s_recorder_is_core_v1(f->rec));
    /* The next emission tries again (no retry loop in between). */
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "x");
    settle(f);
    s = stats(f);
    assert_int_equal(s.created, 1);
    json_t *items = list_events(f, EVENTS_V1, "default", "forbidden");
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(int_at(json_array_get(items, 0), "series", "count"), 2);
    json_decref(items);
}

static void test_k8s_event_bad_arguments(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct k8s_object_ref c = cluster("x");
    assert_int_equal(k8s_event_emit(f->rec, &c, "Bogus", "R", "A", "n"), -EINVAL);
    assert_int_equal(k8s_event_emit(f->rec, &c, K8S_EVENT_NORMAL, "", "A", "n"), -EINVAL);
    assert_int_equal(k8s_event_emit(f->rec, &c, K8S_EVENT_NORMAL, "R", NULL, "n"), -EINVAL);
    struct k8s_object_ref no_kind = {.api_version = "v1", .name = "x"};
    assert_int_equal(k8s_event_emit(f->rec, &no_kind, K8S_EVENT_NORMAL, "R", "A", "n"), -EINVAL);
    assert_int_equal(stats(f).emitted, 0);
    struct k8s_recorder *r = NULL;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(k8s_recorder_new(f->client, "", "pod", &r, err), -EINVAL);
    assert_non_null(strstr(err, "component"));
    assert_null(r);
}

static void test_k8s_event_kubectl_shows_events(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    if (access("/usr/bin/kubectl", X_OK) != 0) {
        print_message("[ SKIPPING ] no kubectl\n");
        skip();
    }
    struct k8s_object_ref c = cluster("kubectl-seen");
    emit(f, &c, K8S_EVENT_WARNING, "InvalidEndpoint", "derp-endpoint: empty value");
    settle(f);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "kubectl --kubeconfig %s get events -n default "
             "--field-selector involvedObject.name=kubectl-seen 2>&1",
             f->env.srv.kubeconfig);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_non_null(strstr(out, "InvalidEndpoint"));
    assert_non_null(strstr(out, "cluster/kubectl-seen"));
    assert_non_null(strstr(out, "derp-endpoint: empty value"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_k8s_event_create_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_repeats_coalesce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_deleted_is_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_namespaced_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_core_v1_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_not_found_object_is_not_fallback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_spam_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_odd_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_long_note_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_failure_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_event_kubectl_shows_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, k8s_env_group_teardown);
}
