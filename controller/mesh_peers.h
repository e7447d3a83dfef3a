/* mesh_peers: the relay replicas of one Service, from its EndpointSlices,
 * written to a file the local derp-relay follows (--mesh-peers-file).
 *
 * Every replica of derp-controller watches the EndpointSlices labelled
 * kubernetes.io/service-name=SERVICE in its namespace and turns every ready
 * endpoint into a mesh URL, http://POD-ADDRESS:PORT/derp (the port named
 * PORT-NAME in the slice, the relay's container port). When the set
 * changes, the file is replaced atomically (one URL per line, sorted), and
 * the relay, which watches the file, meshes with the new set: scaling up or
 * down or replacing a pod changes the mesh without a restart. The relay
 * skips its own address (it recognises its own key). Not leader-gated: the
 * file is local to the pod. */
#ifndef DC_CONTROLLER_MESH_PEERS_H
#define DC_CONTROLLER_MESH_PEERS_H

#include "err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct dc_loop;
struct k8s_client;
struct mesh_peers;

/* The EndpointSlice label naming the Service (discovery.kubernetes.io/v1). */
#define MESH_PEERS_SERVICE_LABEL "kubernetes.io/service-name"
/* Most peers written; a mesh is all-to-all, so this is far past sane. */
#define MESH_PEERS_MAX 256u

/* Turns the store of EndpointSlice projections (key -> {"endpoints": [...],
 * "ports": [...]}) into the sorted, newline-terminated URL list, into a
 * malloc'd string (caller frees); NULL on ENOMEM. Endpoints whose
 * conditions.ready is false, without addresses, or slices without the named
 * port (or, when port_name is "", more than one port) are skipped. Pure:
 * the unit tests call it. */
char *mesh_peers_format(const json_t *store, const char *port_name);

/* Starts watching the slices of service in ns and keeping path up to date.
 * Returns 0 or negative errno with err. */
int mesh_peers_start(struct dc_loop *loop, struct k8s_client *client, const char *ns,
                     const char *service, const char *port_name, const char *path,
                     struct mesh_peers **out, char *err) DC_MUST_CHECK;
/* Stops watching and frees (the file stays); accepts NULL. */
void mesh_peers_free(struct mesh_peers *mp);
/* Peers in the file now. */
size_t mesh_peers_count(const struct mesh_peers *mp);

#endif
