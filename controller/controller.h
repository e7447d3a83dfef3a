/* controller: turns the current set of Clusters into the served DERP map.
 *
 * A source (a directory of YAML files, later the Kubernetes API) hands over
 * a full snapshot of Clusters whenever anything changes; the controller
 * validates each Cluster's annotations, gives it its stable region ID,
 * rebuilds the map and publishes it when its bytes changed. A Cluster with a
 * bad annotation is left out with one warning per distinct problem (and one
 * info line when it is fixed); everything else keeps working. The last good
 * map stays served whatever a source does.
 *
 * Region IDs come from a table that the controller owns. Outside Kubernetes
 * it hands out IDs itself and saves them in --state-dir. In Kubernetes the
 * table mirrors a ConfigMap: only the Lease holder hands out new IDs (and
 * on_ids persists them); the other replicas leave a Cluster the ConfigMap
 * does not name yet out of the map until the holder has written its ID, so
 * every replica serves the same map. */
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
    const char *uid;          /* metadata.uid (Kubernetes) or NULL */
};

struct region_ids;
struct relay_target;

/* After each snapshot: the relays of the valid cluster regions (for probes). */
typedef void (*controller_targets_cb)(void *arg, const struct relay_target *t, size_t n);
/* A Cluster's annotations became invalid (error set, a new or changed
 * problem) or valid again after being invalid (error NULL). */
typedef void (*controller_cluster_cb)(void *arg, const char *name, const char *uid,
                                      const char *error);
/* The ID table gained entries that are not persisted yet (Kubernetes mode). */
typedef void (*controller_ids_cb)(void *arg, const struct region_ids *ids);

struct controller_opts {
    const char *central_endpoint;     /* HOST[:PORT] of region 900; borrowed for the call */
    const char *state_dir;            /* where region IDs persist, or NULL (memory only) */
    struct map_server *server;        /* borrowed; receives every new map */
    bool ids_from_api;                /* Kubernetes mode: IDs handed out only while leading */
    controller_cluster_cb on_cluster; /* may be NULL */
    controller_ids_cb on_ids;         /* may be NULL */
    void *arg;                        /* passed to on_cluster and on_ids */
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
/* Sets the callback that receives the relays after each snapshot. */
void controller_set_targets_cb(struct controller *ctl, controller_targets_cb cb, void *arg);
/* Records the certificate pin ("sha256-raw:<hex>") a Cluster's insecure
 * relay presents: its region then carries CertName instead of
 * InsecureForTests. Returns 1 when that changed the pin (the caller applies
 * the Clusters again), 0 when not, -ENOMEM. */
int controller_set_pin(struct controller *ctl, const char *name, const char *pin) DC_MUST_CHECK;
/* Kubernetes mode: whether this replica holds the Lease (may hand out IDs). */
void controller_set_leader(struct controller *ctl, bool is_leader);
/* Kubernetes mode: the ConfigMap's table changed; merges it (its entries
 * win) and returns how many names got or changed an ID (the caller then
 * applies the current Clusters again), or -ENOMEM. */
int controller_merge_ids(struct controller *ctl, const struct region_ids *from) DC_MUST_CHECK;
/* The ID table (borrowed). */
const struct region_ids *controller_ids(const struct controller *ctl);
/* Calls on_cluster once for every Cluster that is invalid now (a new leader
 * reports what it inherited). */
void controller_report_invalid(struct controller *ctl);
/* Clusters left out of the map as invalid, and awaiting an ID. */
size_t controller_invalid_count(const struct controller *ctl);
size_t controller_pending_count(const struct controller *ctl);
/* Appends the controller's Prometheus metrics to out. */
void controller_metrics(void *ctl, struct dc_buf *out);

#endif
