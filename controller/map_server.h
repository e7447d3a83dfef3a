/* map_server: serves the DERP map over HTTP/1.1 on the program's loop.
 *
 * GET|HEAD /derpmap answers the current map with a strong ETag;
 * If-None-Match with the current ETag answers 304, and with ?wait=SECONDS
 * (at most MAP_SERVER_MAX_WAIT_S) parks the request until the map changes
 * (200 with the new map) or the wait ends (304). /healthz is 200 while the
 * process runs; /readyz is 200 once a map is set, else 503; /metrics is
 * Prometheus text. Keep-alive and pipelining are supported.
 *
 * The map is an immutable, reference-counted snapshot: every response and
 * every woken waiter writes the same bytes with one writev and no copy, so a
 * change reaches a thousand waiters without a thousand copies. */
#ifndef DC_CONTROLLER_MAP_SERVER_H
#define DC_CONTROLLER_MAP_SERVER_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dc_loop;
struct dc_buf;
struct map_server;

/* Longest long-poll wait honoured (a longer ?wait= is capped). */
#define MAP_SERVER_MAX_WAIT_S 300
/* Time to send a complete request head, and keep-alive idle limit. */
#define MAP_SERVER_HEAD_TIMEOUT_MS 10000
#define MAP_SERVER_IDLE_TIMEOUT_MS 120000
/* A client that takes no bytes for this long is closed. */
#define MAP_SERVER_WRITE_TIMEOUT_MS 30000
/* Per-connection request buffer: one request head. Map clients send heads of
 * a few hundred bytes; a small buffer keeps a thousand parked long-polls
 * cheap. A longer head is answered 431. */
#define MAP_SERVER_RBUF_LEN 4096

typedef void (*map_server_metrics_cb)(void *data, struct dc_buf *out);

/* Starts serving on listen_addr. Returns 0 and *out, or negative errno with err. */
int map_server_start(struct dc_loop *loop, const char *listen_addr, struct map_server **out,
                     char *err) DC_MUST_CHECK;
/* Closes every connection and frees the server; accepts NULL. */
void map_server_free(struct map_server *ms);
/* The TCP port listened on. */
uint16_t map_server_port(const struct map_server *ms);
/* Publishes a new map (json copied once) and answers every waiter at once.
 * Returns 0 or -ENOMEM (the old map stays). */
int map_server_set_map(struct map_server *ms, const uint8_t *json, size_t len,
                       const char *etag) DC_MUST_CHECK;
/* Adds the metrics a caller owns to /metrics (may be NULL). */
void map_server_set_metrics(struct map_server *ms, map_server_metrics_cb cb, void *data);
/* Number of parked long-poll requests. */
size_t map_server_waiters(const struct map_server *ms);

#endif
