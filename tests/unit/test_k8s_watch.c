/* test_k8s_watch: LIST then WATCH (k8s-client/k8s_watch.c) against the in-tree API test server
 * (tests/apiserver/run, one per case so that compaction and watch faults stay local): paginated
 * initial list and on_synced, add/update/delete events, projections, watch streams cut mid-object
 * or between events (resumed without repeats or losses), 410 Gone after compaction (relist that
 * reports what changed during the outage, store kept meanwhile), bookmarks, LIST failures and
 * expired continue tokens, stopping from a callback. Every loop run is bounded by a dc_timer.
 * Cases are skipped (not failed) when the test server cannot be started (no python3). */
#include "k8s_watch.h"

#include "buf.h"
#include "k8s_config.h"
#include "k8s_fields.h"
#include "k8s_http.h"
#include "loop.h"
#include "support/k8s_env.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

#define CLUSTERS "/apis/management.loft.sh/v1/clusters"
#define ANNOT    "loft.sh/derp-endpoint"

/* --- fixture: one server, loop and client per case --- */

struct fixture {
    struct k8s_env env;               /* first: see k8s_env_fixture_new() */
    bool (*until)(struct fixture *f); /* run_until()'s condition */
    struct k8s_client *client;        /* borrowed from env */
    struct k8s_watch *watch;
    /* What the callbacks saw. */
    struct dc_buf log;    /* "add KEY\n", "update KEY\n", "delete KEY\n", "synced\n" */
    struct dc_buf errlog; /* on_error sentences, one a line */
    size_t adds;
    size_t updates;
    size_t deletes;
    size_t synced;
    size_t errors;
    json_t *objs;         /* key -> the last projection seen (adds and updates) */
    json_t *olds;         /* key -> the old projection of the last update */
    bool stop_in_add;     /* k8s_watch_stop() from the first on_add */
    bool is_packed;       /* start_watch() asks for a packed store */
    size_t after_stop;    /* callbacks after that stop */
    bool is_request_done; /* change()'s request completed */
    long request_status;  /* and its status */
};
_Static_assert(offsetof(struct fixture, env) == 0, "k8s_env_fixture_*() take the fixture");

static void rec_log(struct fixture *f, const char *what, const char *key)
{
    assert_int_equal(dc_buf_printf(&f->log, "%s %s\n", what, key), 0);
}

static void on_add(void *arg, const char *key, const json_t *obj)
{
    struct fixture *f = arg;
    if (f->watch == NULL) {
        f->after_stop++;
        return;
    }
    f->adds++;
    rec_log(f, "add", key);
    json_object_set_new(f->objs, key, json_deep_copy(obj));
    if (f->stop_in_add) {
        k8s_watch_stop(f->watch);
        f->watch = NULL;
    }
}

static void on_update(void *arg, const char *key, const json_t *old_obj, const json_t *new_obj)
{
    struct fixture *f = arg;
    if (f->watch == NULL) {
        f->after_stop++;
        return;
    }
    f->updates++;
    rec_log(f, "update", key);
    json_object_set_new(f->objs, key, json_deep_copy(new_obj));
    json_object_set_new(f->olds, key, json_deep_copy(old_obj));
}

static void on_delete(void *arg, const char *key, const json_t *obj)
{
    struct fixture *f = arg;
    (void)obj;
    if (f->watch == NULL) {
        f->after_stop++;
        return;
    }
    f->deletes++;
    rec_log(f, "delete", key);
    json_object_del(f->objs, key);
}

static void on_synced(void *arg)
{
    struct fixture *f = arg;
    if (f->watch == NULL) {
        f->after_stop++;
        return;
    }
    f->synced++;
    assert_int_equal(dc_buf_printf(&f->log, "synced\n"), 0);
}

static void on_error(void *arg, int code, const char *err)
{
    struct fixture *f = arg;
    (void)code;
    f->errors++;
    assert_int_equal(dc_buf_printf(&f->errlog, "%s\n", err), 0);
    if (getenv("TEST_K8S_WATCH_VERBOSE") != NULL) {
        print_message("watch error: %s\n", err);
    }
}

/* The text of b, NUL-terminated (the NUL stays out of len so later lines append). */
static const char *log_text_of(struct dc_buf *b)
{
    assert_int_equal(dc_buf_append(b, "", 1), 0);
    b->len--;
    return (const char *)b->p;
}

static const char *log_text(struct fixture *f)
{
    return log_text_of(&f->log);
}

/* Counts lines equal to line in the callback log. */
static size_t log_count(struct fixture *f, const char *line)
{
    const char *text = log_text(f);
    size_t n = 0, len = strlen(line);
    for (const char *p = text; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (l == len && strncmp(p, line, len) == 0) {
            n++;
        }
        p += l + (nl != NULL ? 1 : 0);
    }
    return n;
}

static bool until_holds(void *arg)
{
    struct fixture *f = arg;
    return f->until(f);
}

/* Runs the loop until until(f) holds; fails the case after K8S_ENV_GUARD_MS. */
static void run_until(struct fixture *f, bool (*until)(struct fixture *f))
{
    f->until = until;
    if (!k8s_env_run_until(&f->env, until_holds, f, K8S_ENV_GUARD_MS)) {
        fail_msg("timed out; callbacks so far:\n%s", log_text(f));
    }
}

static void change_cb(void *arg, const struct k8s_response *resp)
{
    struct fixture *f = arg;
    f->is_request_done = true;
    f->request_status = resp->status;
    if (!k8s_response_is_ok(resp)) {
        print_message("change failed: %s\n", resp->err);
    }
}

static bool until_request_done(struct fixture *f)
{
    return f->is_request_done;
}

/* Changes the collection through k8s_request on the same client and loop as the watch. */
static void change(struct fixture *f, enum k8s_method m, const char *path, const char *type,
                   const char *body)
{
    struct k8s_request_opts o = {.method = m,
                                 .path = path,
                                 .body = body,
                                 .body_len = body != NULL ? strlen(body) : 0,
                                 .content_type = type,
                                 .timeout_ms = 10000};
    char err[DC_ERR_LEN] = "";
    f->is_request_done = false;
    if (k8s_request(f->client, &o, change_cb, f, NULL, err) != 0) {
        fail_msg("k8s_request: %s", err);
    }
    run_until(f, until_request_done);
    assert_true(f->request_status >= 200 && f->request_status < 300);
}

static void create(struct fixture *f, const char *name, const char *endpoint)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"management.loft.sh/v1\",\"kind\":\"Cluster\","
             "\"metadata\":{\"name\":\"%s\",\"labels\":{\"team\":\"derp\"},"
             "\"annotations\":{\"" ANNOT "\":\"%s\"}},"
             "\"spec\":{\"displayName\":\"Display %s\"}}",
             name, endpoint, name);
    change(f, K8S_POST, CLUSTERS, NULL, body);
}

static void annotate(struct fixture *f, const char *name, const char *endpoint)
{
    char path[256], body[256];
    snprintf(path, sizeof(path), CLUSTERS "/%s", name);
    snprintf(body, sizeof(body), "{\"metadata\":{\"annotations\":{\"" ANNOT "\":\"%s\"}}}",
             endpoint);
    change(f, K8S_PATCH, path, K8S_CONTENT_MERGE_PATCH, body);
}

static void delete (struct fixture *f, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), CLUSTERS "/%s", name);
    change(f, K8S_DELETE, path, NULL, NULL);
}

static const char *const fields[] = {"/metadata/name",
                                     "/metadata/annotations/loft.sh~1derp-endpoint"};

static void start_watch(struct fixture *f, uint32_t limit)
{
    struct k8s_watch_opts o = {
        .path = CLUSTERS,
        .fields = fields,
        .nfields = sizeof(fields) / sizeof(fields[0]),
        .limit = limit,
        .on_add = on_add,
        .on_update = on_update,
        .on_delete = on_delete,
        .on_synced = on_synced,
        .on_error = on_error,
        .arg = f,
        .is_packed = f->is_packed,
    };
    char err[DC_ERR_LEN] = "";
    if (k8s_watch_start(f->client, &o, &f->watch, err) != 0) {
        fail_msg("k8s_watch_start: %s", err);
    }
}

static bool until_synced(struct fixture *f)
{
    return f->synced > 0;
}

/* The server's current resourceVersion (GET /__test/state). */
static long server_rv(struct fixture *f)
{
    char *body = NULL;
    assert_int_equal(ctl(&f->env.srv, "GET", "/__test/state", NULL, &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(doc);
    long rv = (long)json_integer_value(json_object_get(doc, "resourceVersion"));
    json_decref(doc);
    return rv;
}

/* Queries of the GET requests the server logged for path, one per line (watch ones only when
 * is_watch, list ones otherwise). Caller frees. */
static char *logged_queries(struct fixture *f, bool is_watch)
{
    char *body = NULL;
    assert_int_equal(ctl(&f->env.srv, "GET", "/__test/requests", NULL, &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(doc);
    json_t *list = json_is_array(doc) ? doc : json_object_get(doc, "requests");
    struct dc_buf out = {0};
    dc_buf_init(&out, 1u << 20);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        const char *query = json_string_value(json_object_get(e, "query"));
        const char *method = json_string_value(json_object_get(e, "method"));
        if (path == NULL || strcmp(path, CLUSTERS) != 0 || method == NULL ||
            strcmp(method, "GET") != 0) {
            continue;
        }
        query = query != NULL ? query : "";
        if ((strstr(query, "watch=1") != NULL) == is_watch) {
            assert_int_equal(dc_buf_printf(&out, "%s\n", query), 0);
        }
    }
    assert_int_equal(dc_buf_append(&out, "", 1), 0);
    json_decref(doc);
    return (char *)out.p;
}

static int setup(void **state)
{
    struct fixture *f = k8s_env_fixture_new(sizeof(*f), "test_k8s_watch");
    *state = f;
    if (f == NULL) {
        return -1;
    }
    f->env.poll_ms = 5;
    dc_buf_init(&f->log, 1u << 20);
    dc_buf_init(&f->errlog, 1u << 20);
    f->objs = json_object();
    f->olds = json_object();
    return f->objs != NULL && f->olds != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f == NULL) {
        return 0;
    }
    k8s_watch_stop(f->watch);
    dc_buf_deinit(&f->log);
    dc_buf_deinit(&f->errlog);
    json_decref(f->objs);
    json_decref(f->olds);
    k8s_env_fixture_free(f);
    return 0;
}

/* Connects with the given kubeconfig context ("test": client certificate, "test-token"). */
static struct fixture *fixture_get(void **state, const char *context)
{
    struct fixture *f = k8s_env_fixture_get(state);
    if (k8s_env_add_client(&f->env, context, &f->client) != 0) {
        fail_msg("no client for context `%s'", context);
    }
    return f;
}

/* --- cases --- */

static void test_k8s_watch_list_paginated(void **state)
{
    struct fixture *f = fixture_get(state, "test");
    create(f, "a1", "a1.example.com");
    create(f, "a2", "a2.example.com");
    create(f, "a3", "a3.example.com");
    assert_int_equal(ctl(&f->env.srv, "DELETE", "/__test/requests", NULL, NULL), 200);
    start_watch(f, 2);
    run_until(f, until_synced);
    assert_string_equal(log_text(f), "add a1\nadd a2\nadd a3\nsynced\n");
    assert_int_equal(k8s_watch_count(f->watch), 3);
    assert_true(k8s_watch_is_synced(f->watch));
    /* Two pages: limit=2, then limit=2 with the continue token. */
    char *lists = logged_queries(f, false);
    assert_non_null(strstr(lists, "limit=2\n"));
    assert_non_null(strstr(lists, "limit=2&continue="));
    assert_null(strstr(lists, "resourceVersion="));
    free(lists);
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    assert_int_equal(st.lists, 1);
    assert_int_equal(st.relists, 0);
}

static bool until_a_watch_is_open(struct fixture *f)
{
    char *body = NULL;
    assert_int_equal(ctl(&f->env.srv, "GET", "/__test/state", NULL, &body), 200);
    bool is_open = strstr(body, CLUSTERS) != NULL;
    free(body);
    return is_open;
}

static bool until_p2_seen(struct fixture *f)
{
    return log_count(f, "add p2") >= 1;
}

static void test_k8s_watch_projection(void **state)
{
    struct fixture *f = fixture_get(state, "test-token");
    create(f, "p1", "p1.example.com");
    start_watch(f, 0);
    run_until(f, until_synced);
    const json_t *obj = k8s_watch_get(f->watch, "p1");
    assert_non_null(obj);
    /* Kept: the asked-for fields and the resourceVersion. */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")), "p1");
    const json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, ANNOT)), "p1.example.com");
    assert_non_null(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    /* Dropped: everything else. */
    assert_null(json_object_get(obj, "spec"));
    assert_null(json_object_get(obj, "kind"));
    assert_null(json_object_get(json_object_get(obj, "metadata"), "labels"));
    assert_null(json_object_get(json_object_get(obj, "metadata"), "managedFields"));
    assert_null(json_object_get(json_object_get(obj, "metadata"), "uid"));
    assert_int_equal(json_object_size(json_object_get(obj, "metadata")), 3);
    assert_int_equal(json_object_size(obj), 1);
    /* Watch events are projected the same way. */
    run_until(f, until_a_watch_is_open);
    create(f, "p2", "p2.example.com");
    run_until(f, until_p2_seen);
    obj = k8s_watch_get(f->watch, "p2");
    assert_non_null(obj);
    assert_null(json_object_get(obj, "spec"));
    assert_int_equal(json_object_size(json_object_get(obj, "metadata")), 3);
    /* A bad pointer is refused with the field quoted. */
    const char *const bad[] = {"metadata/name"};
    struct k8s_watch_opts o = {.path = CLUSTERS, .fields = bad, .nfields = 1};
    struct k8s_watch *w = NULL;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(k8s_watch_start(f->client, &o, &w, err), -EINVAL);
    assert_non_null(strstr(err, "metadata/name"));
    assert_null(w);
    o.path = "clusters";
    o.nfields = 0;
    assert_int_equal(k8s_watch_start(f->client, &o, &w, err), -EINVAL);
}

static bool until_events_seen(struct fixture *f)
{
    return f->adds >= 4 && f->updates >= 1 && f->deletes >= 1;
}

static void test_k8s_watch_events(void **state)
{
    struct fixture *f = fixture_get(state, "test-token");
    create(f, "e1", "e1.example.com");
    create(f, "e2", "e2.example.com");
    create(f, "e3", "e3.example.com");
    start_watch(f, 2);
    run_until(f, until_synced);
    run_until(f, until_a_watch_is_open);
    create(f, "e4", "e4.example.com");
    annotate(f, "e1", "moved.example.com");
    delete (f, "e2");
    run_until(f, until_events_seen);
    assert_string_equal(log_text(f),
                        "add e1\nadd e2\nadd e3\nsynced\nadd e4\nupdate e1\ndelete e2\n");
    /* The update hands over old and new projections. */
    const json_t *old_ann =
        json_object_get(json_object_get(json_object_get(f->olds, "e1"), "metadata"), "annotations");
    const json_t *new_ann =
        json_object_get(json_object_get(json_object_get(f->objs, "e1"), "metadata"), "annotations");
    assert_string_equal(json_string_value(json_object_get(old_ann, ANNOT)), "e1.example.com");
    assert_string_equal(json_string_value(json_object_get(new_ann, ANNOT)), "moved.example.com");
    assert_int_equal(k8s_watch_count(f->watch), 3);
    assert_null(k8s_watch_get(f->watch, "e2"));
    assert_non_null(k8s_watch_get(f->watch, "e4"));
    /* The watch went on from the list's resourceVersion with bookmarks. */
    char *body = NULL;
    assert_int_equal(ctl(&f->env.srv, "GET", "/__test/state", NULL, &body), 200);
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    const char *query = json_string_value(
        json_object_get(json_array_get(json_object_get(doc, "watches"), 0), "query"));
    assert_non_null(query);
    assert_non_null(strstr(query, "watch=1&allowWatchBookmarks=true&timeoutSeconds="));
    char want[64];
    snprintf(want, sizeof(want), "&resourceVersion=%ld", server_rv(f) - 3);
    assert_non_null(strstr(query, want)); /* the list's: three changes ago */
    json_decref(doc);
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.restarts, 0);
    assert_int_equal(f->errors, 0);
}

static bool until_cut_changes_seen(struct fixture *f)
{
    return log_count(f, "add c4") >= 1 && log_count(f, "update c1") >= 1 &&
           log_count(f, "delete c3") >= 1;
}

static bool until_second_round_seen(struct fixture *f)
{
    return log_count(f, "add c5") >= 1 && log_count(f, "update c2") >= 1;
}

static void test_k8s_watch_cut_resume(void **state)
{
    struct fixture *f = fixture_get(state, "test");
    create(f, "c1", "c1.example.com");
    create(f, "c2", "c2.example.com");
    create(f, "c3", "c3.example.com");
    start_watch(f, 2);
    run_until(f, until_synced);
    run_until(f, until_a_watch_is_open);
    /* The next watch is cut 120 bytes into its stream, inside the first event's object; then
     * end the current one cleanly so the client opens that next one. */
    fault(&f->env.srv, "{\"action\":\"cut\",\"afterBytes\":120,\"watch\":true,"
                       "\"path\":\"/apis/management.loft.sh/v1/clusters$\"}");
    assert_int_equal(
        ctl(&f->env.srv, "POST", "/__test/close-watches", "{\"mode\":\"clean\"}", NULL), 200);
    create(f, "c4", "c4.example.com");
    annotate(f, "c1", "c1.moved.example.com");
    delete (f, "c3");
    run_until(f, until_cut_changes_seen);
    /* A cut between events (TCP dropped, no final chunk) while changes go on. */
    run_until(f, until_a_watch_is_open);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/close-watches", "{\"mode\":\"cut\"}", NULL),
                     200);
    create(f, "c5", "c5.example.com");
    annotate(f, "c2", "c2.moved.example.com");
    run_until(f, until_second_round_seen);
    /* Each change exactly once, in order, nothing else. */
    assert_string_equal(log_text(f), "add c1\nadd c2\nadd c3\nsynced\n"
                                     "add c4\nupdate c1\ndelete c3\n"
                                     "add c5\nupdate c2\n");
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    assert_true(st.restarts >= 3); /* clean end, cut mid-object, cut between events */
    assert_int_equal(st.relists, 0);
    assert_true(f->errors >= 2);
    assert_int_equal(k8s_watch_count(f->watch), 4);
    /* The cut fell inside an event, and the resumed watches carried a resourceVersion. */
    assert_non_null(strstr(log_text_of(&f->errlog), "stream cut mid-event, 120 bytes dropped"));
    char *watches = logged_queries(f, true);
    assert_non_null(strstr(watches, "&resourceVersion=10"));
    assert_null(strstr(watches, "resourceVersion=&"));
    free(watches);
}

static bool until_relisted(struct fixture *f)
{
    return log_count(f, "delete r2") >= 1 && log_count(f, "add r4") >= 1 &&
           log_count(f, "update r1") >= 1;
}

static bool until_watch_failed_twice(struct fixture *f)
{
    return f->errors >= 2;
}

static bool until_second_relist(struct fixture *f)
{
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    return st.lists >= 3;
}

static void test_k8s_watch_relist_after_410(void **state)
{
    struct fixture *f = fixture_get(state, "test-token");
    create(f, "r1", "r1.example.com");
    create(f, "r2", "r2.example.com");
    create(f, "r3", "r3.example.com");
    start_watch(f, 2);
    run_until(f, until_synced);
    run_until(f, until_a_watch_is_open);
    /* Outage: every watch answers 503 from now on, and the open one is dropped. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":503,\"count\":-1,\"watch\":true}");
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/close-watches", "{\"mode\":\"cut\"}", NULL),
                     200);
    run_until(f, until_watch_failed_twice);
    /* Meanwhile the collection changes, and the history of those changes is compacted. */
    delete (f, "r2");
    create(f, "r4", "r4.example.com");
    annotate(f, "r1", "r1.moved.example.com");
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/compact", "{}", NULL), 200);
    /* The store is kept through the outage. */
    assert_int_equal(k8s_watch_count(f->watch), 3);
    assert_non_null(k8s_watch_get(f->watch, "r2"));
    assert_string_equal(log_text(f), "add r1\nadd r2\nadd r3\nsynced\n");
    /* The API comes back: the watch from the old resourceVersion gets 410, the relist's diff
     * reports what happened meanwhile. */
    assert_int_equal(ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL), 200);
    run_until(f, until_relisted);
    assert_int_equal(log_count(f, "delete r2"), 1);
    assert_int_equal(log_count(f, "add r4"), 1);
    assert_int_equal(log_count(f, "update r1"), 1);
    assert_int_equal(log_count(f, "synced"), 1);
    assert_int_equal(k8s_watch_count(f->watch), 3);
    assert_null(k8s_watch_get(f->watch, "r2"));
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    assert_int_equal(st.relists, 1);
    assert_int_equal(st.lists, 2);
    /* An ERROR event with a 410 Status on a live watch: relist, nothing changed, no callbacks. */
    run_until(f, until_a_watch_is_open);
    size_t before = f->adds + f->updates + f->deletes;
    assert_int_equal(
        ctl(&f->env.srv, "POST", "/__test/close-watches", "{\"mode\":\"error410\"}", NULL), 200);
    run_until(f, until_second_relist);
    k8s_watch_stats(f->watch, &st);
    assert_int_equal(st.relists, 2);
    assert_int_equal(f->adds + f->updates + f->deletes, before);
}

/* The same outage and relist with a packed store: the callbacks see the same trees (old and
 * new projections of the update) and k8s_watch_get_object() reads the stored ones back. */
static void test_k8s_watch_relist_after_410_packed(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    f->is_packed = true;
    test_k8s_watch_relist_after_410(state);
    const char *ep = "/metadata/annotations/loft.sh~1derp-endpoint";
    assert_string_equal(k8s_pointer_get_string(json_object_get(f->olds, "r1"), ep),
                        "r1.example.com");
    assert_string_equal(k8s_pointer_get_string(json_object_get(f->objs, "r1"), ep),
                        "r1.moved.example.com");
    json_t *r1 = k8s_watch_get_object(f->watch, "r1");
    assert_non_null(r1);
    assert_true(json_equal(r1, json_object_get(f->objs, "r1")));
    assert_string_equal(k8s_pointer_get_string(r1, "/metadata/name"), "r1");
    json_decref(r1);
    assert_null(k8s_watch_get_object(f->watch, "r2"));
    assert_true(json_is_string(k8s_watch_get(f->watch, "r1"))); /* packed: one string */
}

static bool until_bookmarked(struct fixture *f)
{
    struct k8s_watch_stats st;
    k8s_watch_stats(f->watch, &st);
    return st.events >= 1;
}

static void test_k8s_watch_cut_resume_packed(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    f->is_packed = true;
    test_k8s_watch_cut_resume(state);
}

static void test_k8s_watch_bookmark(void **state)
{
    struct fixture *f = fixture_get(state, "test");
    create(f, "b1", "b1.example.com");
    start_watch(f, 0);
    run_until(f, until_synced);
    run_until(f, until_a_watch_is_open);
    /* Changes elsewhere move the global resourceVersion; a bookmark carries it to us. */
    change(f, K8S_POST, "/api/v1/namespaces/default/configmaps", NULL,
           "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"bm\"}}");
    long rv = server_rv(f);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/bookmark", NULL, NULL), 200);
    run_until(f, until_bookmarked);
    char want[32];
    snprintf(want, sizeof(want), "%ld", rv);
    assert_string_equal(k8s_watch_resource_version(f->watch), want);
    assert_string_equal(log_text(f), "add b1\nsynced\n");
}

static bool until_synced_after_errors(struct fixture *f)
{
    return f->synced > 0 && f->errors >= 1;
}

static void test_k8s_watch_list_errors(void **state)
{
    struct fixture *f = fixture_get(state, "test-token");
    create(f, "l1", "l1.example.com");
    create(f, "l2", "l2.example.com");
    create(f, "l3", "l3.example.com");
    /* The first LIST fails; the second page of the next one finds its continue token expired:
     * the watch lists everything without pages. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":500,\"watch\":false,\"method\":\"GET\","
                       "\"path\":\"/clusters$\"}");
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":410,\"reason\":\"Expired\","
                       "\"watch\":false,\"query\":\"continue=\",\"path\":\"/clusters$\"}");
    assert_int_equal(ctl(&f->env.srv, "DELETE", "/__test/requests", NULL, NULL), 200);
    start_watch(f, 2);
    run_until(f, until_synced_after_errors);
    assert_string_equal(log_text(f), "add l1\nadd l2\nadd l3\nsynced\n");
    assert_true(f->errors >= 2);
    char *lists = logged_queries(f, false);
    assert_non_null(strstr(lists, "limit=2&continue="));
    bool has_full = strncmp(lists, "\n", 1) == 0 || strstr(lists, "\n\n") != NULL;
    assert_true(has_full); /* a LIST with an empty query: no limit */
    free(lists);
}

static void test_k8s_watch_stop_in_callback(void **state)
{
    struct fixture *f = fixture_get(state, "test");
    create(f, "s1", "s1.example.com");
    create(f, "s2", "s2.example.com");
    f->stop_in_add = true;
    start_watch(f, 0);
    /* The first on_add stops the watch: no callback follows, nothing leaks, and the client
     * keeps working. */
    change(f, K8S_GET, CLUSTERS, NULL, NULL);
    assert_null(f->watch);
    assert_int_equal(f->adds, 1);
    assert_int_equal(f->after_stop, 0);
    assert_int_equal(f->synced, 0);
    /* Stopping at once, before anything arrived. */
    f->stop_in_add = false;
    start_watch(f, 0);
    k8s_watch_stop(f->watch);
    f->watch = NULL;
    change(f, K8S_GET, CLUSTERS, NULL, NULL);
    assert_int_equal(f->adds, 1);
    k8s_watch_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_k8s_watch_list_paginated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_projection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_cut_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_relist_after_410, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_relist_after_410_packed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_cut_resume_packed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_bookmark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_list_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_k8s_watch_stop_in_callback, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
