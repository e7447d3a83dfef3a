/* kube_mode: derp-controller's Kubernetes mode, wired together.
 *
 *   Clusters (source_k8s) ──snapshot──► controller ──map──► map_server
 *   ConfigMap <ns>/<region-ids> (k8s_watch) ──IDs──► controller
 *   controller ──new IDs──► ConfigMap write      (Lease holder only)
 *   controller ──invalid / fixed──► Events       (Lease holder only)
 *   Lease <ns>/<lease-name> (k8s_lease) ──leading?──► controller
 *
 * Every replica watches the Clusters and the region-ID ConfigMap and serves
 * the same map; only the holder of the Lease hands out IDs, writes the
 * ConfigMap and emits Events. The first map is published once the Cluster
 * list and the ConfigMap are in and the first Lease attempt is over (or
 * KUBE_MODE_LEADER_WAIT_MS passed), so /readyz never reports a map that
 * leaves out Clusters only for want of an ID. Through API outages the last
 * map stays served. */
#ifndef DC_CONTROLLER_KUBE_MODE_H
#define DC_CONTROLLER_KUBE_MODE_H

#include "err.h"

#include <stdbool.h>
#include <stdint.h>

struct dc_loop;
struct dc_buf;
struct map_server;
struct controller;
struct kube_mode;

/* The controller's namespace when neither --namespace nor POD_NAMESPACE says. */
#define KUBE_MODE_DEFAULT_NAMESPACE "vcluster-platform"
/* Default names of the Lease and of the region-ID ConfigMap in that namespace. */
#define KUBE_MODE_DEFAULT_LEASE     "derp-controller"
#define KUBE_MODE_DEFAULT_CONFIGMAP "derp-controller-region-ids"
/* Longest wait for a first Lease outcome before publishing the first map anyway. */
#define KUBE_MODE_LEADER_WAIT_MS 3000u
/* Wait before writing the region-ID ConfigMap again after a failed write. */
#define KUBE_MODE_WRITE_RETRY_MS 1000u

struct kube_mode_opts {
    struct dc_loop *loop;         /* borrowed */
    struct map_server *server;    /* borrowed: receives every map */
    const char *kubeconfig;       /* path(s), or NULL for in-cluster config */
    const char *context;          /* kubeconfig context, or NULL for current-context */
    const char *namespace_;       /* NULL: POD_NAMESPACE, in-cluster namespace, default */
    const char *identity;         /* NULL: POD_NAME, else the host name */
    const char *lease_name;       /* NULL: KUBE_MODE_DEFAULT_LEASE */
    const char *configmap_name;   /* NULL: KUBE_MODE_DEFAULT_CONFIGMAP */
    const char *central_endpoint; /* region 900 */
    const char *mesh_service;     /* NULL, or the relays' Service: mesh from its EndpointSlices */
    const char *mesh_port_name;   /* the slice port of the relay (NULL: "derp") */
    const char *mesh_peers_file;  /* where the peer URLs go (the relay follows the file) */
    uint32_t lease_duration_ms;   /* 0: client-go's defaults (15 s / 10 s / 2 s) */
    uint32_t renew_deadline_ms;
    uint32_t retry_period_ms;
};

/* Loads the configuration and starts watching, electing and serving.
 * Returns 0, or negative errno with err (bad kubeconfig, no in-cluster
 * config, bad --central-endpoint). */
int kube_mode_start(const struct kube_mode_opts *o, struct kube_mode **out,
                    char *err) DC_MUST_CHECK;
/* Shutdown: gives up the Lease (so another replica takes over at once),
 * then calls done(loop, arg). Safe to call once. */
void kube_mode_shutdown(struct kube_mode *km, void (*done)(struct dc_loop *, void *), void *arg);
/* Frees everything; accepts NULL. */
void kube_mode_free(struct kube_mode *km);
/* The controller (borrowed). */
struct controller *kube_mode_controller(const struct kube_mode *km);
/* One line for the start-up log: "namespace N as IDENTITY via SERVER". */
const char *kube_mode_describe(const struct kube_mode *km);
/* Applies the Clusters again on the next loop pass (pins changed). */
void kube_mode_resync(struct kube_mode *km);
/* Records the relay probe's verdict on a Cluster as an Event (Lease holder
 * only): Warning DERPRelayUnreachable with why, or Normal DERPRelayHealthy. */
void kube_mode_relay_event(struct kube_mode *km, const char *name, const char *uid, bool up,
                           const char *why);
/* Appends leader, watch and Event metrics to out (as map_server_metrics_cb). */
void kube_mode_metrics(void *km, struct dc_buf *out);

#endif
