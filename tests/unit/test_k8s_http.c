/* test_k8s_http: Kubernetes API requests (k8s-client/k8s_http.c) against the in-tree API test
 * server (tests/apiserver/run, started once for the group): discovery, create, get, merge /
 * JSON / strategic patches, update, delete, Status errors, Retry-After and 5xx retries, timeouts,
 * body limits, client-certificate, bearer-token, token-file rotation, exec-plugin and
 * tls-server-name authentication, insecure mode. Every loop run is bounded by a dc_timer, so a
 * hang fails the case instead of blocking ctest. Cases are skipped (not failed) when the test
 * server cannot be started (no python3). */
#include "k8s_http.h"

#include "buf.h"
#include "k8s_config.h"
#include "loop.h"
#include "support/k8s_env.h"

#include <errno.h>
#include <fcntl.h>
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

/* --- loop helpers --- */

struct fixture {
    struct k8s_env env;       /* first: see k8s_env_fixture_new() */
    struct k8s_client *cert;  /* context test: client certificate (borrowed from env) */
    struct k8s_client *token; /* context test-token: bearer token (borrowed from env) */
};
_Static_assert(offsetof(struct fixture, env) == 0, "k8s_env_fixture_*() take the fixture");

/* What a completion callback saw, copied out of the borrowed response. */
struct result {
    struct dc_loop *loop;
    bool is_done;
    int error;
    long status;
    uint32_t attempts;
    uint32_t retry_after_s;
    json_t *json; /* the body parsed, or NULL */
    char *body;   /* the body, NUL-terminated */
    char reason[64];
    char message[1024];
    char err[DC_ERR_LEN];
};

static void result_clear(struct result *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void result_cb(void *arg, const struct k8s_response *resp)
{
    struct result *r = arg;
    r->is_done = true;
    r->error = resp->error;
    r->status = resp->status;
    r->attempts = resp->attempts;
    r->retry_after_s = resp->retry_after_s;
    r->body = strndup((const char *)resp->body.p, resp->body.len);
    r->json = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    snprintf(r->reason, sizeof(r->reason), "%s", resp->reason);
    snprintf(r->message, sizeof(r->message), "%s", resp->message);
    snprintf(r->err, sizeof(r->err), "%s", resp->err);
    dc_loop_stop(r->loop);
}

/* Sends one request and runs the loop until it completes. */
static void request(struct fixture *f, struct k8s_client *c, const struct k8s_request_opts *o,
                    struct result *r)
{
    result_clear(r);
    r->loop = f->env.loop;
    char err[DC_ERR_LEN] = "";
    int rc = k8s_request(c, o, result_cb, r, NULL, err);
    if (rc != 0) {
        fail_msg("k8s_request: %s (%s)", err, dc_strerror(rc));
    }
    k8s_env_run(&f->env);
    assert_true(r->is_done);
}

static void get(struct fixture *f, struct k8s_client *c, const char *path, struct result *r)
{
    struct k8s_request_opts o = {.method = K8S_GET, .path = path, .timeout_ms = 10000};
    request(f, c, &o, r);
}

static void send_json(struct fixture *f, struct k8s_client *c, enum k8s_method m, const char *path,
                      const char *content_type, const char *body, struct result *r)
{
    struct k8s_request_opts o = {.method = m,
                                 .path = path,
                                 .body = body,
                                 .body_len = body != NULL ? strlen(body) : 0,
                                 .content_type = content_type,
                                 .timeout_ms = 10000};
    request(f, c, &o, r);
}

static void create_cluster(struct fixture *f, struct k8s_client *c, const char *name)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"apiVersion\":\"management.loft.sh/v1\",\"kind\":\"Cluster\","
             "\"metadata\":{\"name\":\"%s\"},\"spec\":{\"displayName\":\"Display %s\"}}",
             name, name);
    struct result r = {0};
    send_json(f, c, K8S_POST, CLUSTERS, NULL, body, &r);
    if (r.status != 201) {
        fail_msg("create %s: %ld %s", name, r.status, r.err);
    }
    result_clear(&r);
}

static int new_client(struct fixture *f, struct k8s_config *cfg, struct k8s_client **out)
{
    char err[DC_ERR_LEN] = "";
    int rc = k8s_client_new(f->env.loop, cfg, out, err);
    if (rc != 0) {
        print_error("k8s_client_new: %s\n", err);
    }
    return rc;
}

static int group_setup(void **state)
{
    struct fixture *f = k8s_env_fixture_new(sizeof(*f), "test_k8s_http");
    *state = f;
    if (f == NULL || k8s_env_add_client(&f->env, "test", &f->cert) != 0 ||
        k8s_env_add_client(&f->env, "test-token", &f->token) != 0) {
        return -1;
    }
    return 0;
}

/* --- cases --- */

static void test_k8s_http_backoff(void **state)
{
    (void)state;
    struct k8s_backoff b;
    k8s_backoff_init(&b, K8S_BACKOFF_BASE_MS, K8S_BACKOFF_CAP_MS);
    uint32_t expect = 200;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(k8s_backoff_ceiling_ms(&b), expect);
        uint32_t w = k8s_backoff_next_ms(&b);
        assert_true(w <= expect);
        expect = expect * 2 > 30000 ? 30000 : expect * 2;
    }
    k8s_backoff_reset(&b);
    assert_int_equal(k8s_backoff_ceiling_ms(&b), 200);
    /* Full jitter: over many draws the waits spread over the whole range. */
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        struct k8s_backoff one;
        k8s_backoff_init(&one, 1000, 1000);
        uint32_t w = k8s_backoff_next_ms(&one);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_true(lo < 250 && hi > 750);
    struct k8s_backoff zero = {0};
    assert_int_equal(k8s_backoff_next_ms(&zero), 0);
    assert_string_equal(k8s_status_reason(404), "NotFound");
    assert_string_equal(k8s_status_reason(429), "TooManyRequests");
    assert_string_equal(k8s_method_name(K8S_PATCH), "PATCH");
}

static void test_k8s_http_discovery(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    get(f, f->token, "/apis", &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.err, "");
    assert_non_null(r.json);
    assert_string_equal(json_string_value(json_object_get(r.json, "kind")), "APIGroupList");
    bool found = false;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(r.json, "groups"), i, g)
    {
        found |= strcmp(json_string_value(json_object_get(g, "name")), "management.loft.sh") == 0;
    }
    assert_true(found);
    get(f, f->cert, "/version", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(json_object_get(r.json, "gitVersion"));
    /* One connection serves one request after another. */
    struct k8s_client_stats before, after;
    k8s_client_stats(f->cert, &before);
    for (int k = 0; k < 5; k++) {
        get(f, f->cert, "/version", &r);
        assert_int_equal(r.status, 200);
    }
    k8s_client_stats(f->cert, &after);
    assert_int_equal(after.connects, before.connects);
    assert_int_equal(after.attempts, before.attempts + 5);
    result_clear(&r);
}

static void test_k8s_http_create_get(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->cert, "http-create");
    get(f, f->token, CLUSTERS "/http-create", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "kind")), "Cluster");
    json_t *meta = json_object_get(r.json, "metadata");
    assert_string_equal(json_string_value(json_object_get(meta, "name")), "http-create");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "spec"), "displayName")),
        "Display http-create");
    /* Creating it again: 409 with the Status reason and message. */
    send_json(f, f->cert, K8S_POST, CLUSTERS, NULL,
              "{\"apiVersion\":\"management.loft.sh/v1\",\"kind\":\"Cluster\","
              "\"metadata\":{\"name\":\"http-create\"}}",
              &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(r.reason, "AlreadyExists");
    assert_string_equal(
        r.err, "AlreadyExists: clusters.management.loft.sh \"http-create\" already exists");
    result_clear(&r);
}

static void test_k8s_http_patch(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->token, "http-patch");
    send_json(f, f->token, K8S_PATCH, CLUSTERS "/http-patch", K8S_CONTENT_MERGE_PATCH,
              "{\"metadata\":{\"annotations\":{\"loft.sh/derp-endpoint\":\"eu.example.com\"}}}",
              &r);
    assert_int_equal(r.status, 200);
    get(f, f->cert, CLUSTERS "/http-patch", &r);
    json_t *ann = json_object_get(json_object_get(r.json, "metadata"), "annotations");
    assert_string_equal(json_string_value(json_object_get(ann, "loft.sh/derp-endpoint")),
                        "eu.example.com");
    send_json(f, f->cert, K8S_PATCH, CLUSTERS "/http-patch", K8S_CONTENT_JSON_PATCH,
              "[{\"op\":\"replace\",\"path\":\"/spec/displayName\",\"value\":\"Patched\"}]", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "spec"), "displayName")),
        "Patched");
    /* kube refuses strategic merge patches on custom resources: 415 with its Status. */
    send_json(f, f->cert, K8S_PATCH, CLUSTERS "/http-patch", K8S_CONTENT_STRATEGIC_PATCH,
              "{\"spec\":{\"displayName\":\"x\"}}", &r);
    assert_int_equal(r.status, 415);
    assert_string_equal(r.reason, "UnsupportedMediaType");
    assert_non_null(strstr(r.err, "UnsupportedMediaType: "));
    /* ... and accepts them on built-ins. */
    send_json(f, f->cert, K8S_POST, "/api/v1/namespaces/default/configmaps", NULL,
              "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"http-cm\"},"
              "\"data\":{\"a\":\"1\"}}",
              &r);
    assert_int_equal(r.status, 201);
    send_json(f, f->cert, K8S_PATCH, "/api/v1/namespaces/default/configmaps/http-cm",
              K8S_CONTENT_STRATEGIC_PATCH, "{\"data\":{\"b\":\"2\"}}", &r);
    assert_int_equal(r.status, 200);
    json_t *data = json_object_get(r.json, "data");
    assert_string_equal(json_string_value(json_object_get(data, "a")), "1");
    assert_string_equal(json_string_value(json_object_get(data, "b")), "2");
    result_clear(&r);
}

static void test_k8s_http_put(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->cert, "http-put");
    get(f, f->cert, CLUSTERS "/http-put", &r);
    json_t *obj = json_incref(r.json);
    json_object_set_new(json_object_get(obj, "spec"), "displayName", json_string("Replaced"));
    char *text = json_dumps(obj, JSON_COMPACT);
    send_json(f, f->cert, K8S_PUT, CLUSTERS "/http-put", NULL, text, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "spec"), "displayName")),
        "Replaced");
    /* The same stale resourceVersion again: 409 Conflict. */
    send_json(f, f->cert, K8S_PUT, CLUSTERS "/http-put", NULL, text, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(r.reason, "Conflict");
    free(text);
    json_decref(obj);
    result_clear(&r);
}

static void test_k8s_http_delete(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->cert, "http-delete");
    send_json(f, f->token, K8S_DELETE, CLUSTERS "/http-delete", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    get(f, f->token, CLUSTERS "/http-delete", &r);
    assert_int_equal(r.status, 404);
    /* DELETE with a body (DeleteOptions). */
    create_cluster(f, f->cert, "http-delete2");
    send_json(f, f->token, K8S_DELETE, CLUSTERS "/http-delete2", NULL,
              "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":"
              "\"Background\"}",
              &r);
    assert_int_equal(r.status, 200);
    result_clear(&r);
}

static void test_k8s_http_not_found(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    get(f, f->cert, CLUSTERS "/x", &r);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.status, 404);
    assert_false(r.status >= 200 && r.status < 300);
    assert_string_equal(r.reason, "NotFound");
    assert_string_equal(r.message, "clusters.management.loft.sh \"x\" not found");
    assert_string_equal(r.err, "NotFound: clusters.management.loft.sh \"x\" not found");
    assert_int_equal(r.attempts, 1);
    result_clear(&r);
}

static void test_k8s_http_retry_after_429(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->cert, "http-429");
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":429,\"retryAfter\":1,\"method\":\"GET\","
                       "\"path\":\"/clusters/http-429$\"}");
    struct k8s_request_opts o = {
        .method = K8S_GET, .path = CLUSTERS "/http-429", .timeout_ms = 10000, .retries = 3};
    request(f, f->token, &o, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    /* Without retries the 429 comes back with kube's text and its Retry-After. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":429,\"retryAfter\":1,\"method\":\"GET\","
                       "\"path\":\"/clusters/http-429$\"}");
    o.retries = 0;
    request(f, f->token, &o, &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.retry_after_s, 1);
    assert_string_equal(r.reason, "TooManyRequests");
    assert_string_equal(r.err, "TooManyRequests: Too many requests, please try again later.");
    /* A POST answered 429 is retried too: the server did not process it. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":429,\"retryAfter\":1,\"method\":\"POST\","
                       "\"path\":\"/clusters$\"}");
    o = (struct k8s_request_opts){
        .method = K8S_POST,
        .path = CLUSTERS,
        .body = "{\"apiVersion\":\"management.loft.sh/v1\",\"kind\":\"Cluster\","
                "\"metadata\":{\"name\":\"http-429-post\"}}",
        .timeout_ms = 10000,
        .retries = 2,
    };
    o.body_len = strlen(o.body);
    request(f, f->cert, &o, &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.attempts, 2);
    result_clear(&r);
}

static void test_k8s_http_retry_500(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    create_cluster(f, f->cert, "http-500");
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":500,\"count\":2,\"method\":\"GET\","
                       "\"path\":\"/clusters/http-500$\"}");
    struct k8s_request_opts o = {
        .method = K8S_GET, .path = CLUSTERS "/http-500", .timeout_ms = 10000, .retries = 5};
    request(f, f->cert, &o, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    struct k8s_client_stats st;
    k8s_client_stats(f->cert, &st);
    assert_true(st.retries >= 2);
    /* Too few retries: the last 500 is reported with its Status message. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":500,\"count\":2,\"method\":\"GET\","
                       "\"path\":\"/clusters/http-500$\"}");
    o.retries = 1;
    request(f, f->cert, &o, &r);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.reason, "InternalError");
    assert_string_equal(r.err, "InternalError: Internal error occurred: injected fault");
    /* A PATCH is not idempotent: a 500 is not retried. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":500,\"method\":\"PATCH\","
                       "\"path\":\"/clusters/http-500$\"}");
    o = (struct k8s_request_opts){.method = K8S_PATCH,
                                  .path = CLUSTERS "/http-500",
                                  .body = "{\"spec\":{\"displayName\":\"p\"}}",
                                  .content_type = K8S_CONTENT_MERGE_PATCH,
                                  .timeout_ms = 10000,
                                  .retries = 5};
    o.body_len = strlen(o.body);
    request(f, f->cert, &o, &r);
    assert_int_equal(r.status, 500);
    assert_int_equal(r.attempts, 1);
    /* A dropped connection is retried for a GET (by libcurl itself when the dropped connection
     * was a reused one, else by us). */
    fault(&f->env.srv,
          "{\"action\":\"reset\",\"method\":\"GET\",\"path\":\"/clusters/http-500$\"}");
    o = (struct k8s_request_opts){
        .method = K8S_GET, .path = CLUSTERS "/http-500", .timeout_ms = 10000, .retries = 2};
    request(f, f->cert, &o, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.attempts <= 2);
    /* Without retries a dropped fresh connection is reported. */
    fault(&f->env.srv, "{\"action\":\"reset\",\"count\":2,\"method\":\"GET\","
                       "\"path\":\"/clusters/http-500$\"}");
    o.retries = 0;
    request(f, f->cert, &o, &r);
    assert_int_equal(r.error, -ECONNRESET);
    assert_int_equal(r.attempts, 1);
    ctl(&f->env.srv, "DELETE", "/__test/faults", NULL, NULL);
    result_clear(&r);
}

static void test_k8s_http_timeout(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    fault(&f->env.srv,
          "{\"action\":\"stall\",\"seconds\":3,\"path\":\"/api/v1/namespaces/stall$\"}");
    struct k8s_request_opts o = {
        .method = K8S_GET, .path = "/api/v1/namespaces/stall", .timeout_ms = 300, .retries = 3};
    request(f, f->token, &o, &r);
    assert_int_equal(r.error, -ETIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.attempts, 1);
    assert_string_equal(r.err, "GET /api/v1/namespaces/stall: timed out after 300 ms");
    /* Stalled after the headers: still a timeout. */
    fault(&f->env.srv, "{\"action\":\"stall\",\"seconds\":3,\"phase\":\"headers\","
                       "\"path\":\"/api/v1/namespaces/stall$\"}");
    request(f, f->token, &o, &r);
    assert_int_equal(r.error, -ETIMEDOUT);
    /* A retry that would wait past the deadline is not made: the 429 is reported. */
    fault(&f->env.srv, "{\"action\":\"status\",\"code\":429,\"retryAfter\":5,"
                       "\"path\":\"/api/v1/namespaces/stall$\"}");
    request(f, f->token, &o, &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.attempts, 1);
    result_clear(&r);
}

static void test_k8s_http_body_limit(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    struct k8s_request_opts o = {
        .method = K8S_GET, .path = "/apis", .timeout_ms = 10000, .max_body_len = 64};
    request(f, f->cert, &o, &r);
    assert_int_equal(r.error, -EMSGSIZE);
    assert_non_null(strstr(r.err, "over 64 bytes"));
    /* A cut body: the connection drops mid-body. */
    fault(&f->env.srv, "{\"action\":\"cut\",\"afterBytes\":10,\"path\":\"^/version$\"}");
    o = (struct k8s_request_opts){.method = K8S_GET, .path = "/version", .timeout_ms = 10000};
    request(f, f->cert, &o, &r);
    assert_int_equal(r.error, -ECONNRESET);
    result_clear(&r);
}

static void test_k8s_http_bad_input(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    char err[DC_ERR_LEN] = "";
    struct k8s_request_opts o = {.method = K8S_GET, .path = "api"};
    assert_int_equal(k8s_request(f->cert, &o, result_cb, NULL, NULL, err), -EINVAL);
    assert_non_null(strstr(err, "start with '/'"));
    o = (struct k8s_request_opts){
        .method = K8S_PATCH, .path = CLUSTERS "/x", .body = "{}", .body_len = 2};
    assert_int_equal(k8s_request(f->cert, &o, result_cb, NULL, NULL, err), -EINVAL);
    assert_non_null(strstr(err, "content type"));
    char *long_path = malloc(K8S_HTTP_MAX_URL_LEN + 2);
    assert_non_null(long_path);
    memset(long_path, 'a', K8S_HTTP_MAX_URL_LEN + 1);
    long_path[0] = '/';
    long_path[K8S_HTTP_MAX_URL_LEN + 1] = '\0';
    o = (struct k8s_request_opts){.method = K8S_GET, .path = long_path};
    assert_int_equal(k8s_request(f->cert, &o, result_cb, NULL, NULL, err), -EMSGSIZE);
    free(long_path);
    /* A server that is not a URL. */
    struct k8s_config bad = {.server = "ftp://example.com"};
    struct k8s_client *c = NULL;
    assert_int_equal(k8s_client_new(f->env.loop, &bad, &c, err), -EINVAL);
    assert_string_equal(err, "server `ftp://example.com' is not an http(s) URL");
    assert_null(c);
    k8s_client_free(NULL);
}

/* Cancelling: no callback runs, and other requests go on. */
static void cancel_cb(void *arg, const struct k8s_response *resp)
{
    (void)resp;
    bool *called = arg;
    *called = true;
}

static void test_k8s_http_cancel(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    fault(&f->env.srv,
          "{\"action\":\"stall\",\"seconds\":2,\"path\":\"/api/v1/namespaces/cancel$\"}");
    bool called = false;
    struct k8s_call *call = NULL;
    struct k8s_request_opts o = {.method = K8S_GET, .path = "/api/v1/namespaces/cancel"};
    assert_int_equal(k8s_request(f->cert, &o, cancel_cb, &called, &call, NULL), 0);
    assert_non_null(call);
    struct result r = {0};
    get(f, f->cert, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    k8s_call_cancel(call);
    get(f, f->cert, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    assert_false(called);
    result_clear(&r);
}

/* Writes text to dir/name (replacing the file through a rename, as kubelet does). */
static void write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[PATH_LEN], tmp[PATH_LEN + 8];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(rename(tmp, path), 0);
}

/* A kubeconfig of our own: the test server's CA file and the given user and cluster extras. */
static struct k8s_config *load_custom(struct fixture *f, const char *cluster_extra,
                                      const char *user_yaml)
{
    char text[4096], err[DC_ERR_LEN] = "", path[PATH_LEN];
    snprintf(text, sizeof(text),
             "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
             "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
             "    certificate-authority: pki/ca.crt\n%s"
             "users:\n- name: u\n  user:\n%s"
             "contexts:\n- name: c\n  context: {cluster: c, user: u}\n",
             f->env.srv.port, cluster_extra, user_yaml);
    write_file(f->env.srv.dir, "custom.kubeconfig", text, 0600);
    snprintf(path, sizeof(path), "%s/custom.kubeconfig", f->env.srv.dir);
    struct k8s_config *cfg = NULL;
    if (k8s_config_load_kubeconfig(path, NULL, &cfg, err) != 0) {
        fail_msg("custom kubeconfig: %s", err);
    }
    return cfg;
}

static void test_k8s_http_token_file_rotation(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    write_file(f->env.srv.dir, "token", f->env.srv.token, 0600);
    struct k8s_config *cfg = load_custom(f, "", "    tokenFile: token\n");
    struct k8s_client *c = NULL;
    assert_int_equal(new_client(f, cfg, &c), 0);
    struct result r = {0};
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    /* Rotate: the server learns a new token and forgets the old one; the file changes. */
    char body[256];
    snprintf(body, sizeof(body), "{\"token\":\"rotated-%s\",\"user\":\"token-user\"}",
             f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    snprintf(body, sizeof(body), "{\"remove\":\"%s\"}", f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.reason, "Unauthorized");
    char rotated[160];
    snprintf(rotated, sizeof(rotated), "rotated-%s\n", f->env.srv.token);
    write_file(f->env.srv.dir, "token", rotated, 0600);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    /* Give the original token back to the other cases. */
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"user\":\"token-user\"}", f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    result_clear(&r);
    k8s_client_free(c);
    k8s_config_free(cfg);
}

static void test_k8s_http_exec_credential(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* The plugin prints the token found in exec-token and counts its runs in exec-runs. */
    char script[1024];
    snprintf(script, sizeof(script),
             "#!/bin/sh\necho run >> '%s/exec-runs'\n"
             "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
             "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%%s\"}}' "
             "\"$(cat '%s/exec-token')\"\n",
             f->env.srv.dir, f->env.srv.dir);
    write_file(f->env.srv.dir, "plugin.sh", script, 0700);
    write_file(f->env.srv.dir, "exec-token", f->env.srv.token, 0600);
    char user[PATH_LEN + 128];
    snprintf(user, sizeof(user),
             "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
             "      command: %s/plugin.sh\n      interactiveMode: Never\n",
             f->env.srv.dir);
    struct k8s_config *cfg = load_custom(f, "", user);
    struct k8s_client *c = NULL;
    assert_int_equal(new_client(f, cfg, &c), 0);
    struct result r = {0};
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    get(f, c, "/api/v1/namespaces/kube-system", &r);
    assert_int_equal(r.status, 200);
    char path[PATH_LEN];
    snprintf(path, sizeof(path), "%s/exec-runs", f->env.srv.dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = 0;
    char line[64];
    while (fgets(line, sizeof(line), fp) != NULL) {
        n++;
    }
    fclose(fp);
    assert_int_equal(n, 1); /* cached: one run for two requests */
    /* The server revokes the token: the 401 makes the plugin run again. */
    char body[256];
    snprintf(body, sizeof(body), "{\"token\":\"exec-%s\",\"user\":\"token-user\"}",
             f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    snprintf(body, sizeof(body), "{\"remove\":\"%s\"}", f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    snprintf(body, sizeof(body), "exec-%s", f->env.srv.token);
    write_file(f->env.srv.dir, "exec-token", body, 0600);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"user\":\"token-user\"}", f->env.srv.token);
    assert_int_equal(ctl(&f->env.srv, "POST", "/__test/tokens", body, NULL), 200);
    result_clear(&r);
    k8s_client_free(c);
    k8s_config_free(cfg);
}

static void test_k8s_http_tls(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    struct result r = {0};
    char user[256];
    snprintf(user, sizeof(user), "    token: %s\n", f->env.srv.token);
    /* tls-server-name: the server certificate names "kubernetes", not "wrong.example". */
    struct k8s_config *cfg = load_custom(f, "    tls-server-name: kubernetes\n", user);
    struct k8s_client *c = NULL;
    assert_int_equal(new_client(f, cfg, &c), 0);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    k8s_client_free(c);
    k8s_config_free(cfg);
    cfg = load_custom(f, "    tls-server-name: wrong.example\n", user);
    assert_int_equal(new_client(f, cfg, &c), 0);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.error, -EPROTO);
    assert_int_equal(r.attempts, 1);
    assert_true(r.err[0] != '\0');
    k8s_client_free(c);
    k8s_config_free(cfg);
    /* No CA: the system roots do not know the test CA... */
    cfg = load_custom(f, "", user);
    free(cfg->ca_file);
    cfg->ca_file = NULL;
    assert_int_equal(new_client(f, cfg, &c), 0);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.error, -EPROTO);
    k8s_client_free(c);
    /* ... unless verification is off. */
    cfg->is_insecure = true;
    assert_int_equal(new_client(f, cfg, &c), 0);
    get(f, c, "/api/v1/namespaces/default", &r);
    assert_int_equal(r.status, 200);
    k8s_client_free(c);
    k8s_config_free(cfg);
    result_clear(&r);
}

static void test_k8s_http_connection_refused(void **state)
{
    struct fixture *f = k8s_env_fixture_get(state);
    /* Port 1 on loopback: nothing listens there, so every attempt is refused. */
    struct k8s_config cfg = {.server = "https://127.0.0.1:1", .is_insecure = true};
    struct k8s_client *c = NULL;
    assert_int_equal(new_client(f, &cfg, &c), 0);
    struct result r = {0};
    struct k8s_request_opts o = {
        .method = K8S_GET, .path = "/version", .timeout_ms = 5000, .retries = 2};
    request(f, c, &o, &r);
    assert_int_equal(r.error, -ECONNREFUSED);
    assert_int_equal(r.attempts, 3);
    assert_non_null(strstr(r.err, "GET /version: "));
    result_clear(&r);
    k8s_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k8s_http_backoff),
        cmocka_unit_test(test_k8s_http_discovery),
        cmocka_unit_test(test_k8s_http_create_get),
        cmocka_unit_test(test_k8s_http_patch),
        cmocka_unit_test(test_k8s_http_put),
        cmocka_unit_test(test_k8s_http_delete),
        cmocka_unit_test(test_k8s_http_not_found),
        cmocka_unit_test(test_k8s_http_retry_after_429),
        cmocka_unit_test(test_k8s_http_retry_500),
        cmocka_unit_test(test_k8s_http_timeout),
        cmocka_unit_test(test_k8s_http_body_limit),
        cmocka_unit_test(test_k8s_http_bad_input),
        cmocka_unit_test(test_k8s_http_cancel),
        cmocka_unit_test(test_k8s_http_token_file_rotation),
        cmocka_unit_test(test_k8s_http_exec_credential),
        cmocka_unit_test(test_k8s_http_tls),
        cmocka_unit_test(test_k8s_http_connection_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, k8s_env_group_teardown);
}
