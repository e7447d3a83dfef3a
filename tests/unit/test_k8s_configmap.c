/* test_k8s_configmap: ConfigMap reads and optimistic writes (k8s-client/k8s_configmap.c) against
 * the in-tree API test server: create, read back, merge with the resourceVersion read, a stale
 * resourceVersion (-EAGAIN), a double create (-EEXIST), missing ConfigMaps (-ENOENT), null
 * deleting a key, labels, bad arguments, and answers that are not ConfigMaps. Every loop run is
 * bounded by a dc_timer; cases skip when the server cannot start (no python3). */
#include "k8s_configmap.h"

#include "k8s_config.h"
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

#include <setjmp.h>

#include <cmocka.h>

#define NS "default"

struct fixture {
    struct k8s_env env;        /* first: see k8s_env_fixture_new() */
    struct k8s_client *client; /* context test (borrowed from env) */
};
_Static_assert(offsetof(struct fixture, env) == 0, "k8s_env_fixture_*() take the fixture");

/* What a k8s_configmap_cb saw, copied. */
struct result {
    struct dc_loop *loop;
    int calls;
    int error;
    json_t *data; /* a copy, or NULL */
    char rv[128];
    char errmsg[DC_ERR_LEN];
};

static void result_clear(struct result *r)
{
    json_decref(r->data);
    struct dc_loop *loop = r->loop;
    memset(r, 0, sizeof(*r));
    r->loop = loop;
}

static void result_cb(void *arg, int error, const json_t *data, const char *rv, const char *errmsg)
{
    struct result *r = arg;
    r->calls++;
    r->error = error;
    json_decref(r->data);
    r->data = data != NULL ? json_deep_copy(data) : NULL;
    snprintf(r->rv, sizeof(r->rv), "%s", rv);
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
    dc_loop_stop(r->loop);
}

/* Reads ns/NAME and waits for the answer. */
static void cm_get(struct fixture *f, const char *name, struct result *r)
{
    result_clear(r);
    char err[DC_ERR_LEN] = "";
    int rc = k8s_configmap_get(f->client, NS, name, result_cb, r, err);
    if (rc != 0) {
        fail_msg("k8s_configmap_get: %s", err);
    }
    k8s_env_run(&f->env);
    assert_int_equal(r->calls, 1);
}

/* Writes data (JSON text) to ns/NAME and waits for the answer. */
static void cm_write(struct fixture *f, const char *name, const char *data, const char *rv,
                     const char *labels, struct result *r)
{
    result_clear(r);
    json_t *d = json_loads(data, 0, NULL);
    json_t *l = labels != NULL ? json_loads(labels, 0, NULL) : NULL;
    assert_non_null(d);
    char err[DC_ERR_LEN] = "";
    int rc = k8s_configmap_write(f->client, NS, name, d, rv, l, result_cb, r, err);
    json_decref(d);
    json_decref(l);
    if (rc != 0) {
        fail_msg("k8s_configmap_write: %s", err);
    }
    k8s_env_run(&f->env);
    assert_int_equal(r->calls, 1);
}

/* GETs path through the API and returns the parsed body (caller decrefs). */
static json_t *api_get(struct fixture *f, const char *path)
{
    struct k8s_request_opts o = {.method = K8S_GET, .path = path, .timeout_ms = 10000};
    json_t *obj = NULL;
    assert_true(k8s_env_request(&f->env, f->client, &o, NULL, &obj));
    assert_non_null(obj);
    return obj;
}

static const char *data_str(const struct result *r, const char *key)
{
    return json_string_value(json_object_get(r->data, key));
}

/* --- fixture --- */

static int group_setup(void **state)
{
    struct fixture *f = k8s_env_fixture_new(sizeof(*f), "test_k8s_configmap");
    *state = f;
    return f != NULL ? k8s_env_add_client(&f->env, "test", &f->client) : -1;
}

/* Every case starts without faults. */
static struct fixture *fixture_get(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    return f;
}

/* --- cases --- */

static void test_k8s_configmap_create_read_merge(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    cm_write(f, "regions", "{\"eu-west\":\"901\"}", NULL, "{\"app.kubernetes.io/name\":\"derp\"}",
             &r);
    assert_int_equal(r.error, 0);
    assert_string_equal(data_str(&r, "eu-west"), "901");
    assert_true(r.rv[0] != '\0');
    char rv1[128];
    snprintf(rv1, sizeof(rv1), "%s", r.rv);

    cm_get(f, "regions", &r);
    assert_int_equal(r.error, 0);
    assert_string_equal(r.rv, rv1);
    assert_string_equal(data_str(&r, "eu-west"), "901");
    assert_int_equal(json_object_size(r.data), 1);

    /* A merge keeps the other keys and moves the resourceVersion. */
    cm_write(f, "regions", "{\"us-east\":\"902\"}", rv1, NULL, &r);
    assert_int_equal(r.error, 0);
    assert_string_equal(data_str(&r, "eu-west"), "901");
    assert_string_equal(data_str(&r, "us-east"), "902");
    assert_string_not_equal(r.rv, rv1);
    char rv2[128];
    snprintf(rv2, sizeof(rv2), "%s", r.rv);

    /* null deletes a key. */
    cm_write(f, "regions", "{\"eu-west\":null}", rv2, NULL, &r);
    assert_int_equal(r.error, 0);
    assert_null(json_object_get(r.data, "eu-west"));
    assert_string_equal(data_str(&r, "us-east"), "902");
    cm_get(f, "regions", &r);
    assert_int_equal(json_object_size(r.data), 1);
    result_clear(&r);
}

static void test_k8s_configmap_stale_rv_conflict(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    cm_write(f, "stale", "{\"a\":\"901\"}", NULL, NULL, &r);
    assert_int_equal(r.error, 0);
    char old_rv[128];
    snprintf(old_rv, sizeof(old_rv), "%s", r.rv);
    /* Another replica writes in between. */
    cm_write(f, "stale", "{\"b\":\"902\"}", old_rv, NULL, &r);
    assert_int_equal(r.error, 0);
    /* Our write with the resourceVersion we read first must not go through. */
    cm_write(f, "stale", "{\"c\":\"903\"}", old_rv, NULL, &r);
    assert_int_equal(r.error, -EAGAIN);
    assert_null(r.data);
    assert_string_equal(r.rv, "");
    assert_non_null(strstr(r.errmsg, "Conflict"));
    cm_get(f, "stale", &r);
    assert_null(json_object_get(r.data, "c"));
    assert_string_equal(data_str(&r, "b"), "902");
    /* Re-read, merge, retry: the caller's loop. */
    char rv[128];
    snprintf(rv, sizeof(rv), "%s", r.rv);
    cm_write(f, "stale", "{\"c\":\"903\"}", rv, NULL, &r);
    assert_int_equal(r.error, 0);
    assert_string_equal(data_str(&r, "c"), "903");
    result_clear(&r);
}

static void test_k8s_configmap_double_create(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    cm_write(f, "twice", "{\"a\":\"1\"}", NULL, NULL, &r);
    assert_int_equal(r.error, 0);
    cm_write(f, "twice", "{\"a\":\"2\"}", NULL, NULL, &r);
    assert_int_equal(r.error, -EEXIST);
    assert_non_null(strstr(r.errmsg, "AlreadyExists"));
    cm_get(f, "twice", &r);
    assert_string_equal(data_str(&r, "a"), "1");
    result_clear(&r);
}

static void test_k8s_configmap_missing(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    cm_get(f, "no-such-configmap", &r);
    assert_int_equal(r.error, -ENOENT);
    assert_null(r.data);
    assert_non_null(strstr(r.errmsg, "not found"));
    cm_write(f, "no-such-configmap", "{\"a\":\"1\"}", "12345", NULL, &r);
    assert_int_equal(r.error, -ENOENT);
    result_clear(&r);
}

static void test_k8s_configmap_labels_and_empty_data(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    /* A ConfigMap created without data reads as an empty object, not NULL. */
    cm_write(f, "empty", "{\"dropped\":null}", NULL, "{\"app\":\"derp\"}", &r);
    assert_int_equal(r.error, 0);
    assert_non_null(r.data);
    assert_int_equal(json_object_size(r.data), 0);
    json_t *obj = api_get(f, "/api/v1/namespaces/" NS "/configmaps/empty");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(obj, "metadata"), "labels"), "app")),
                        "derp");
    json_decref(obj);
    /* A merge adds labels too. */
    char rv[128];
    snprintf(rv, sizeof(rv), "%s", r.rv);
    cm_write(f, "empty", "{\"k\":\"v\"}", rv, "{\"tier\":\"relay\"}", &r);
    assert_int_equal(r.error, 0);
    obj = api_get(f, "/api/v1/namespaces/" NS "/configmaps/empty");
    const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "app")), "derp");
    assert_string_equal(json_string_value(json_object_get(labels, "tier")), "relay");
    json_decref(obj);
    result_clear(&r);
}

static void test_k8s_configmap_bad_arguments(void **state)
{
    struct fixture *f = fixture_get(state);
    char err[DC_ERR_LEN] = "";
    struct result r = {.loop = f->env.loop};
    assert_int_equal(k8s_configmap_get(f->client, NS, "Bad/Name", result_cb, &r, err), -EINVAL);
    assert_non_null(strstr(err, "Bad/Name"));
    assert_int_equal(k8s_configmap_get(f->client, "", "x", result_cb, &r, err), -EINVAL);
    json_t *d = json_pack("{s:i}", "a", 1);
    assert_int_equal(k8s_configmap_write(f->client, NS, "x", d, NULL, NULL, result_cb, &r, err),
                     -EINVAL);
    assert_non_null(strstr(err, "not a string"));
    json_decref(d);
    d = json_pack("{s:s}", "a", "1");
    json_t *labels = json_pack("{s:n}", "a");
    assert_int_equal(k8s_configmap_write(f->client, NS, "x", d, NULL, labels, result_cb, &r, err),
                     -EINVAL);
    assert_int_equal(k8s_configmap_write(f->client, NS, "x", d, "", NULL, result_cb, &r, err),
                     -EINVAL);
    assert_int_equal(k8s_configmap_write(f->client, NS, "x", NULL, NULL, NULL, result_cb, &r, err),
                     -EINVAL);
    json_decref(labels);
    json_decref(d);
    assert_int_equal(r.calls, 0);
}

static void test_k8s_configmap_garbage_answer(void **state)
{
    struct fixture *f = fixture_get(state);
    struct result r = {.loop = f->env.loop};
    /* Not JSON, then JSON of the wrong shape: no crash, -EPROTO. */
    fault(&f->env.srv, "{\"action\":\"body\",\"code\":200,\"body\":\"{not json\","
                       "\"path\":\"/configmaps/garbage$\"}");
    cm_get(f, "garbage", &r);
    assert_int_equal(r.error, -EPROTO);
    assert_null(r.data);
    fault(&f->env.srv, "{\"action\":\"body\",\"code\":200,\"body\":"
                       "\"{\\\"metadata\\\":{\\\"resourceVersion\\\":7},\\\"data\\\":[1]}\","
                       "\"path\":\"/configmaps/garbage$\"}");
    cm_get(f, "garbage", &r);
    assert_int_equal(r.error, -EPROTO);
    fault(&f->env.srv,
          "{\"action\":\"body\",\"code\":200,\"body\":"
          "\"{\\\"metadata\\\":{\\\"resourceVersion\\\":\\\"7\\\"},\\\"data\\\":[1]}\","
          "\"path\":\"/configmaps/garbage$\"}");
    cm_get(f, "garbage", &r);
    assert_int_equal(r.error, 0); /* data that is not an object reads as empty */
    assert_int_equal(json_object_size(r.data), 0);
    assert_string_equal(r.rv, "7");
    /* A server error is neither -ENOENT nor -EAGAIN. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":403,\"path\":\"/configmaps/garbage$\"}");
    cm_get(f, "garbage", &r);
    assert_int_equal(r.error, -EIO);
    assert_non_null(strstr(r.errmsg, "Forbidden"));
    result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k8s_configmap_create_read_merge),
        cmocka_unit_test(test_k8s_configmap_stale_rv_conflict),
        cmocka_unit_test(test_k8s_configmap_double_create),
        cmocka_unit_test(test_k8s_configmap_missing),
        cmocka_unit_test(test_k8s_configmap_labels_and_empty_data),
        cmocka_unit_test(test_k8s_configmap_bad_arguments),
        cmocka_unit_test(test_k8s_configmap_garbage_answer),
    };
    return cmocka_run_group_tests(tests, group_setup, k8s_env_group_teardown);
}
