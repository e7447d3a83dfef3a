/* apiserver_fixture: starts tests/apiserver/run for a test binary and talks
 * to its control API (fault injection). Shared by the k8s-client tests.
 * Cases skip, not fail, when the server cannot start (no python3). */
#ifndef DC_TESTS_APISERVER_FIXTURE_H
#define DC_TESTS_APISERVER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PATH_LEN 512
/* Longest the test server may take to print "ready". */
#define SERVER_START_MS 20000

/* --- the test server (the same helper is in test_k8s_watch.c) --- */

struct server {
    pid_t pid;        /* -1 when not running */
    int out_fd;       /* read end of the server's stdout, kept open until stop */
    int port;         /* API port (TLS) */
    int control_port; /* plain-HTTP /__test/ port */
    char token[128];  /* bearer token of token-user */
    char dir[64];     /* scratch directory: kubeconfig, pki, plugin scripts */
    char kubeconfig[PATH_LEN];
    char why[PATH_LEN + 256]; /* why it did not start */
};

/* Starts the server with a scratch directory named after name; returns 0,
 * or -1 with s->why saying why (the caller skips). */
int server_start(struct server *s, const char *name);
/* Stops the server and removes its scratch directory; safe when not running. */
void server_stop(struct server *s);
/* Sends method path (body may be NULL) to the control port; returns the HTTP
 * status and, when out is not NULL, the response body (malloc'd, caller frees). */
long ctl(const struct server *s, const char *method, const char *path, const char *body,
         char **out);
/* Adds a fault rule (JSON, see tests/apiserver/README.md); asserts it was accepted. */
void fault(const struct server *s, const char *rule);

#endif
