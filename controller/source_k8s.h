/* source_k8s: Clusters from the Kubernetes API (management.loft.sh/v1).
 *
 * A k8s_watch (LIST, then WATCH with bookmarks, resume, 410 relist) keeps a
 * projection of every Cluster: name, uid, spec.displayName and the two
 * loft.sh/derp-endpoint* annotations, nothing else. Once the first LIST is
 * in, every change schedules one snapshot on the next loop pass, so a burst
 * of events (a relist of 10 000 Clusters) makes one map, not 10 000. The
 * watch keeps a packed store and this source one short string per Cluster
 * (about 300 bytes in all where JSON trees took 2 KB). While
 * the API is unreachable the store, and so the map, stays as it was. */
#ifndef DC_CONTROLLER_SOURCE_K8S_H
#define DC_CONTROLLER_SOURCE_K8S_H

#include "controller.h"
#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct dc_loop;
struct k8s_client;
struct source_k8s;

/* The Cluster collection (cluster-scoped custom resource). */
#define SOURCE_K8S_CLUSTERS_PATH "/apis/management.loft.sh/v1/clusters"

/* Called with the whole current set of Clusters, strings borrowed for the call. */
typedef void (*source_k8s_cb)(void *arg, const struct cluster_input *clusters, size_t n);

/* Starts watching Clusters through client (borrowed, must outlive the
 * source). The first snapshot comes after the first complete LIST. Returns 0
 * or negative errno with err. */
int source_k8s_start(struct dc_loop *loop, struct k8s_client *client, source_k8s_cb cb, void *arg,
                     struct source_k8s **out, char *err) DC_MUST_CHECK;
/* Stops the watch and frees; accepts NULL. */
void source_k8s_free(struct source_k8s *s);
/* Delivers a snapshot again on the next loop pass (the region IDs changed). */
void source_k8s_resync(struct source_k8s *s);
/* Reports whether the first LIST has been delivered. */
bool source_k8s_is_synced(const struct source_k8s *s);
/* Watch restarts plus relists since start (for /metrics). */
uint64_t source_k8s_restarts(const struct source_k8s *s);

#endif
