/* k8s_env: the set-up every k8s-client test shares: sodium and curl, a dc_loop, the in-tree API
 * test server (apiserver_fixture.h) and kubeconfig clients on that loop, a skip when the server
 * did not start, and loop runs bounded by a guard timer so a hang fails the case instead of
 * blocking ctest.
 *
 * A test puts struct k8s_env first in its own fixture, makes it with k8s_env_fixture_new() (and
 * k8s_env_add_client() for each context) in its setup, gets it with k8s_env_fixture_get() at the
 * top of every case that needs the server, and frees it with k8s_env_fixture_free() or
 * k8s_env_group_teardown(). A server that cannot start (no
 * python3) is not an error: the cases skip with a message saying why.
 *
 * Not here: what a test records from its callbacks, its requests' payloads, its fault rules. */
#ifndef DC_TESTS_K8S_ENV_H
#define DC_TESTS_K8S_ENV_H

#include "apiserver_fixture.h"
#include "loop.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct k8s_client;
struct k8s_config;
struct k8s_request_opts;

/* Longest a loop run may take before the case fails, unless the test raises guard_ms. */
#define K8S_ENV_GUARD_MS 15000u
/* How often k8s_env_run_until() checks its condition, unless the test sets poll_ms. */
#define K8S_ENV_POLL_MS 10u
/* Clients one environment can hold (the tests use one or two kubeconfig contexts). */
#define K8S_ENV_MAX_CLIENTS 2

/* k8s_env_run_until()'s condition: true stops the loop. arg is the caller's. */
typedef bool (*k8s_env_until_cb)(void *arg);

/* All-zero is a valid stopped environment (k8s_env_stop() on it does nothing). */
struct k8s_env {
    struct server srv;    /* the API test server; srv.why says why it did not start */
    bool has_server;      /* the server started; the cases run */
    bool is_curl_init;    /* curl_global_init() done, undone by k8s_env_stop() */
    struct dc_loop *loop; /* owned */
    uint32_t guard_ms;    /* bound of k8s_env_run() and k8s_env_request() */
    uint32_t poll_ms;     /* interval of k8s_env_run_until()'s condition checks */
    size_t nclients;      /* clients made by k8s_env_add_client() */
    struct k8s_config *cfg[K8S_ENV_MAX_CLIENTS];    /* owned, one per client */
    struct k8s_client *client[K8S_ENV_MAX_CLIENTS]; /* owned */
    struct dc_timer guard;                          /* ends a run after its timeout */
    struct dc_timer poll;                           /* checks the run's condition */
    bool is_timed_out;                              /* the last run ended by its guard */
    k8s_env_until_cb until;                         /* the running condition, or NULL */
    void *until_arg;                                /* its argument (borrowed) */
};

/* Initialises sodium and curl, makes the loop and starts the API test server with a scratch
 * directory named after name. Returns 0 whether or not the server started (has_server says),
 * or -1 when the process cannot run the tests at all. Undo with k8s_env_stop(), also after -1. */
int k8s_env_start(struct k8s_env *e, const char *name);
/* Frees the clients, their configs, the server, the loop and curl's globals, in that order; leaves
 * the all-zero state. Stop everything running on the clients first. */
void k8s_env_stop(struct k8s_env *e);

/* Loads the kubeconfig context ("test": client certificate, "test-token": bearer token) of the
 * server and makes a client for it on the loop; *out is borrowed, valid until k8s_env_stop().
 * Without a server it does nothing (*out = NULL, returns 0: the cases skip). Returns -1, with the
 * reason printed, when the context does not load or the client cannot be made. */
int k8s_env_add_client(struct k8s_env *e, const char *context, struct k8s_client **out);

/* Skips the running case, with a message saying why, when the server did not start. */
void k8s_env_skip_unless_ready(const struct k8s_env *e);

/* A test's fixture is a struct whose first member is its struct k8s_env, so these take it as
 * void *. k8s_env_fixture_new() allocates size zeroed bytes and k8s_env_start()s the env; returns
 * the fixture (free with k8s_env_fixture_free()), or NULL when the tests cannot run. */
void *k8s_env_fixture_new(size_t size, const char *name);
/* k8s_env_stop()s the env and frees the fixture; accepts NULL. */
void k8s_env_fixture_free(void *fixture);
/* For a case: skips it (k8s_env_skip_unless_ready()) or returns *state, the fixture. */
void *k8s_env_fixture_get(void **state);
/* A cmocka group teardown for a fixture in *state: k8s_env_fixture_free(); returns 0. */
int k8s_env_group_teardown(void **state);

/* Runs the loop until until(arg) holds, checked every poll_ms from the start, or until something
 * calls dc_loop_stop(); with until NULL, only the latter. Returns false when timeout_ms passed
 * first (the caller decides whether that fails the case); fails the case if epoll fails. */
bool k8s_env_run_until(struct k8s_env *e, k8s_env_until_cb until, void *arg, uint32_t timeout_ms);
/* Runs the loop until something calls dc_loop_stop(); fails the case after guard_ms. */
void k8s_env_run(struct k8s_env *e);

/* Sends o through c (fails the case if k8s_request() refuses it) and runs the loop until the
 * answer, or guard_ms. Returns false when no answer came (the request is then cancelled).
 * *status (when not NULL) gets the HTTP status, 0 without an answer; *body (when not NULL) the
 * body parsed as JSON, or NULL (caller decrefs). */
bool k8s_env_request(struct k8s_env *e, struct k8s_client *c, const struct k8s_request_opts *o,
                     long *status, json_t **body);

#endif
