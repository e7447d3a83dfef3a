/* k8s_env: see k8s_env.h. */
#include "k8s_env.h"

#include "err.h"
#include "k8s_config.h"
#include "k8s_http.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>

int k8s_env_start(struct k8s_env *e, const char *name)
{
    memset(e, 0, sizeof(*e));
    e->srv.pid = -1;
    e->srv.out_fd = -1;
    e->guard_ms = K8S_ENV_GUARD_MS;
    e->poll_ms = K8S_ENV_POLL_MS;
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return -1;
    }
    e->is_curl_init = true;
    e->loop = dc_loop_new();
    if (e->loop == NULL) {
        return -1;
    }
    if (server_start(&e->srv, name) < 0) {
        server_stop(&e->srv);
        return 0; /* the cases skip */
    }
    e->has_server = true;
    return 0;
}

void k8s_env_stop(struct k8s_env *e)
{
    for (size_t i = 0; i < e->nclients; i++) {
        k8s_client_free(e->client[i]);
        k8s_config_free(e->cfg[i]);
    }
    if (e->srv.pid != 0 || e->srv.dir[0] != '\0') {
        server_stop(&e->srv);
    }
    dc_loop_free(e->loop);
    if (e->is_curl_init) {
        curl_global_cleanup();
    }
    memset(e, 0, sizeof(*e));
}

int k8s_env_add_client(struct k8s_env *e, const char *context, struct k8s_client **out)
{
    *out = NULL;
    if (!e->has_server) {
        return 0;
    }
    if (e->nclients == K8S_ENV_MAX_CLIENTS) {
        print_error("k8s_env: more than %d clients\n", K8S_ENV_MAX_CLIENTS);
        return -1;
    }
    char err[DC_ERR_LEN] = "";
    struct k8s_config **cfg = &e->cfg[e->nclients];
    struct k8s_client **client = &e->client[e->nclients];
    if (k8s_config_load_kubeconfig(e->srv.kubeconfig, context, cfg, err) != 0) {
        print_error("kubeconfig: context `%s': %s\n", context, err);
        return -1;
    }
    e->nclients++; /* from here k8s_env_stop() frees the config */
    if (k8s_client_new(e->loop, *cfg, client, err) != 0) {
        print_error("k8s_client_new: context `%s': %s\n", context, err);
        return -1;
    }
    *out = *client;
    return 0;
}

void k8s_env_skip_unless_ready(const struct k8s_env *e)
{
    if (!e->has_server) {
        print_message("[ SKIPPING ] the Kubernetes API test server did not start: %s\n",
                      e->srv.why);
        skip();
    }
}

void *k8s_env_fixture_new(size_t size, const char *name)
{
    assert_true(size >= sizeof(struct k8s_env));
    struct k8s_env *e = calloc(1, size);
    if (e == NULL) {
        return NULL;
    }
    if (k8s_env_start(e, name) != 0) {
        k8s_env_fixture_free(e);
        return NULL;
    }
    return e;
}

void k8s_env_fixture_free(void *fixture)
{
    if (fixture != NULL) {
        k8s_env_stop(fixture);
        free(fixture);
    }
}

void *k8s_env_fixture_get(void **state)
{
    k8s_env_skip_unless_ready(*state);
    return *state;
}

int k8s_env_group_teardown(void **state)
{
    k8s_env_fixture_free(*state);
    *state = NULL;
    return 0;
}

static void guard_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct k8s_env *e = t->data;
    e->is_timed_out = true;
    dc_loop_stop(loop);
}

static void poll_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct k8s_env *e = t->data;
    if (e->until(e->until_arg)) {
        dc_loop_stop(loop);
        return;
    }
    dc_timer_start(loop, t, e->poll_ms);
}

bool k8s_env_run_until(struct k8s_env *e, k8s_env_until_cb until, void *arg, uint32_t timeout_ms)
{
    e->until = until;
    e->until_arg = arg;
    e->is_timed_out = false;
    e->guard = (struct dc_timer){.cb = guard_cb, .data = e};
    e->poll = (struct dc_timer){.cb = poll_cb, .data = e};
    dc_timer_start(e->loop, &e->guard, timeout_ms);
    if (until != NULL) {
        dc_timer_start(e->loop, &e->poll, 0);
    }
    assert_int_equal(dc_loop_run(e->loop), 0);
    dc_timer_stop(e->loop, &e->guard);
    dc_timer_stop(e->loop, &e->poll);
    e->until = NULL;
    e->until_arg = NULL;
    return !e->is_timed_out;
}

void k8s_env_run(struct k8s_env *e)
{
    if (!k8s_env_run_until(e, NULL, NULL, e->guard_ms)) {
        fail_msg("the loop ran for %u ms without the awaited callback", (unsigned)e->guard_ms);
    }
}

/* What k8s_env_request()'s callback saw. */
struct reply {
    struct dc_loop *loop;
    bool is_done;
    long status;
    json_t *body; /* owned until handed to the caller */
};

static void reply_cb(void *arg, const struct k8s_response *resp)
{
    struct reply *r = arg;
    r->is_done = true;
    r->status = resp->status;
    r->body = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    dc_loop_stop(r->loop);
}

bool k8s_env_request(struct k8s_env *e, struct k8s_client *c, const struct k8s_request_opts *o,
                     long *status, json_t **body)
{
    struct reply r = {.loop = e->loop};
    struct k8s_call *call = NULL;
    char err[DC_ERR_LEN] = "";
    int rc = k8s_request(c, o, reply_cb, &r, &call, err);
    if (rc != 0) {
        fail_msg("k8s_request: %s (%s)", err, dc_strerror(rc));
    }
    (void)k8s_env_run_until(e, NULL, NULL, e->guard_ms);
    if (!r.is_done) {
        k8s_call_cancel(call); /* r is on this stack: no callback may reach it later */
    }
    if (status != NULL) {
        *status = r.status;
    }
    if (body != NULL) {
        *body = r.body;
    } else {
        json_decref(r.body);
    }
    return r.is_done;
}
