/* controller: turns the current set of Clusters into the served DERP map.
 *
 * A source (a directory of YAML files, later the Kubernetes API) hands over
 * a full snapshot of Clusters whenever anything changes; the controller
 * validates each Cluster's annotations, gives it its stable region ID,
 * rebuilds the map and publishes it when its bytes changed. A Cluster with a
 * bad annotation is left out with one warning per distinct problem (and one
 * info line when it is fixed); everything else keeps working. The last good
 * map stays served whatever a source does. */
#ifndef DC_CONTROLLER_CONTROLLER_H
#define DC_CONTROLLER_CONTROLLER_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct map_server;
struct dc_buf;

/* One Cluster as a source sees it. All strings are borrowed for the call. */
struct cluster_input {
    const char *name;         /* metadata.name */
    const char *display_name; /* spec.displayName or NULL */
    const char *endpoint;     /* loft.sh/derp-endpoint or NULL (not a relay) */
    const char *insecure;     /* loft.sh/derp-endpoint-insecure or NULL */
    const char *origin;       /* where it came from, for logs ("file x.yaml"), or NULL */
};

struct controller_opts {
    const char *central_endpoint; /* HOST[:PORT] of region 900; borrowed for the call */
    const char *state_dir;        /* where region IDs persist, or NULL (memory only) */
    struct map_server *server;    /* borrowed; receives every new map */
};

struct controller;

/* Creates a controller (loads persisted region IDs). Returns 0 or negative
 * errno with err (a bad --central-endpoint, an unreadable state file). */
int controller_new(const struct controller_opts *opts, struct controller **out,
                   char *err) DC_MUST_CHECK;
/* Frees the controller; accepts NULL. */
void controller_free(struct controller *ctl);
/* Replaces the set of Clusters with clusters[0..n) and republishes the map
 * when it changed. */
void controller_apply(struct controller *ctl, const struct cluster_input *clusters, size_t n);
/* Appends the controller's Prometheus metrics to out. */
void controller_metrics(void *ctl, struct dc_buf *out);

#endif
