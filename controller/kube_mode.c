#include "kube_mode.h"

#include "buf.h"
#include "controller.h"
#include "k8s_config.h"
#include "k8s_configmap.h"
#include "k8s_event.h"
#include "k8s_http.h"
#include "k8s_lease.h"
#include "k8s_watch.h"
#include "log.h"
#include "loop.h"
#include "mesh_peers.h"
#include "region_ids.h"
#include "source_k8s.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Event reasons on a Cluster (see docs/REFERENCE.md). */
#define REASON_INVALID    "InvalidDERPEndpoint"
#define REASON_VALID      "DERPEndpointValid"
#define REASON_RELAY_DOWN "DERPRelayUnreachable"
#define REASON_RELAY_UP   "DERPRelayHealthy"
/* The component Events name as their reporter. */
#define COMPONENT "derp-controller"

struct kube_mode {
    struct dc_loop *loop;
    struct k8s_config *cfg;
    struct k8s_client *client;
    struct controller *ctl;
    struct source_k8s *clusters;
    struct k8s_watch *cm_watch; /* the region-ID ConfigMap */
    struct k8s_lease *lease;
    struct k8s_recorder *recorder;
    struct mesh_peers *mesh; /* or NULL */
    char ns[256];
    char identity[256];
    char lease_name[256];
    char cm_name[256];
    char cm_key[520]; /* "ns/name" in the watch store */
    char describe[1024];
    /* first map gate */
    bool is_cm_synced;
    bool is_lease_known;
    bool is_published; /* the first map went out */
    uint64_t started_ms;
    struct dc_timer leader_wait;
    /* ConfigMap writes: one at a time */
    bool is_writing;
    bool is_write_wanted;
    struct dc_timer write_retry;
    uint64_t writes, write_failures;
    /* shutdown */
    void (*done)(struct dc_loop *, void *);
    void *done_arg;
};

/* --- the first-map gate --- */

static bool gate_open(const struct kube_mode *km)
{
    return km->is_published ||
           (km->is_cm_synced &&
            (km->is_lease_known || dc_now_ms() - km->started_ms >= KUBE_MODE_LEADER_WAIT_MS));
}

static void on_clusters(void *arg, const struct cluster_input *clusters, size_t n)
{
    struct kube_mode *km = arg;
    if (!gate_open(km)) {
        return; /* resync when the gate opens */
    }
    km->is_published = true;
    controller_apply(km->ctl, clusters, n);
}

static void open_gate_later(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct kube_mode *km = t->data;
    if (!km->is_lease_known) {
        dc_log(DC_LOG_WARN, "derp-k8s",
               "no answer about Lease %s/%s yet; serving the map without handing out new "
               "region IDs",
               km->ns, km->lease_name);
    }
    source_k8s_resync(km->clusters);
}

/* --- region IDs in the ConfigMap --- */

static void write_ids(struct kube_mode *km);

/* Merges the ConfigMap's data (what the API holds) into the controller's
 * table and applies the Clusters again when any ID appeared or changed. */
static void learn_ids(struct kube_mode *km, const json_t *data)
{
    struct region_ids from;
    region_ids_init(&from);
    size_t skipped = 0;
    char why[DC_ERR_LEN];
    if (region_ids_from_data(&from, data, &skipped, why) < 0) {
        region_ids_deinit(&from);
        dc_log(DC_LOG_ERROR, "derp-k8s", "out of memory reading region IDs");
        return;
    }
    if (skipped > 0) {
        dc_log(DC_LOG_WARN, "derp-k8s", "ConfigMap %s/%s: %zu entries ignored: %s", km->ns,
               km->cm_name, skipped, why);
    }
    int changed = controller_merge_ids(km->ctl, &from);
    region_ids_deinit(&from);
    if (changed > 0) {
        dc_log(DC_LOG_DEBUG, "derp-k8s", "ConfigMap %s/%s: %d region IDs learned", km->ns,
               km->cm_name, changed);
        source_k8s_resync(km->clusters);
    }
}

static void write_retry_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    write_ids(t->data);
}

static void on_written(void *arg, int error, const json_t *data, const char *resource_version,
                       const char *errmsg)
{
    (void)resource_version;
    struct kube_mode *km = arg;
    km->is_writing = false;
    if (error != 0) {
        km->write_failures++;
        if (error != -EAGAIN && error != -EEXIST) { /* a lost race is routine */
            dc_log(DC_LOG_WARN, "derp-k8s", "writing region IDs to ConfigMap %s/%s: %s; retrying",
                   km->ns, km->cm_name, errmsg);
        }
        km->is_write_wanted = true;
        dc_timer_start(km->loop, &km->write_retry, KUBE_MODE_WRITE_RETRY_MS);
        return;
    }
    km->writes++;
    learn_ids(km, data); /* what was written is the API's table now; the watch brings the same */
    if (km->is_write_wanted || controller_ids(km->ctl)->is_dirty) {
        write_ids(km);
    }
}

static void write_ids(struct kube_mode *km)
{
    if (km->lease == NULL || !k8s_lease_is_leader(km->lease)) {
        return; /* only the holder writes */
    }
    if (km->is_writing || km->write_retry.is_active) {
        km->is_write_wanted = true;
        return;
    }
    km->is_write_wanted = false;
    json_t *data = region_ids_to_data(controller_ids(km->ctl));
    const json_t *cm = k8s_watch_get(km->cm_watch, km->cm_key);
    const json_t *rv = json_object_get(json_object_get(cm, "metadata"), "resourceVersion");
    char err[DC_ERR_LEN];
    int rc = data == NULL ? -ENOMEM
                          : k8s_configmap_write(km->client, km->ns, km->cm_name, data,
                                                json_is_string(rv) ? json_string_value(rv) : NULL,
                                                NULL, on_written, km, err);
    json_decref(data);
    if (rc < 0) {
        dc_log(DC_LOG_WARN, "derp-k8s", "writing region IDs: %s; retrying",
               rc == -ENOMEM ? "out of memory" : err);
        dc_timer_start(km->loop, &km->write_retry, KUBE_MODE_WRITE_RETRY_MS);
        return;
    }
    km->is_writing = true;
}

static void on_ids(void *arg, const struct region_ids *ids)
{
    (void)ids;
    write_ids(arg);
}

static void cm_changed(void *arg, const json_t *obj)
{
    struct kube_mode *km = arg;
    learn_ids(km, json_object_get(obj, "data"));
    if (controller_ids(km->ctl)->is_dirty) {
        write_ids(km); /* this replica knows names the ConfigMap lacks */
    }
}

static void cm_add(void *arg, const char *key, const json_t *obj)
{
    (void)key;
    cm_changed(arg, obj);
}

static void cm_update(void *arg, const char *key, const json_t *old_obj, const json_t *new_obj)
{
    (void)key;
    (void)old_obj;
    cm_changed(arg, new_obj);
}

static void cm_delete(void *arg, const char *key, const json_t *obj)
{
    (void)key;
    (void)obj;
    struct kube_mode *km = arg;
    dc_log(DC_LOG_WARN, "derp-k8s", "ConfigMap %s/%s was deleted; the leader writes it again",
           km->ns, km->cm_name);
    write_ids(km);
}

static void cm_synced(void *arg)
{
    struct kube_mode *km = arg;
    km->is_cm_synced = true;
    source_k8s_resync(km->clusters);
}

static int start_cm_watch(struct kube_mode *km, char *err)
{
    static const char *const fields[] = {"/data"};
    char path[600], query[600];
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/configmaps", km->ns);
    snprintf(query, sizeof(query), "fieldSelector=metadata.name%%3D%s", km->cm_name);
    snprintf(km->cm_key, sizeof(km->cm_key), "%s/%s", km->ns, km->cm_name);
    struct k8s_watch_opts wo = {.path = path,
                                .query = query,
                                .fields = fields,
                                .nfields = 1,
                                .on_add = cm_add,
                                .on_update = cm_update,
                                .on_delete = cm_delete,
                                .on_synced = cm_synced,
                                .arg = km};
    return k8s_watch_start(km->client, &wo, &km->cm_watch, err);
}

/* --- Events --- */

/* Records an Event on Cluster name, when this replica leads. */
static void cluster_event(struct kube_mode *km, const char *name, const char *uid, bool warning,
                          const char *reason, const char *action, const char *note)
{
    if (km->recorder == NULL || km->lease == NULL || !k8s_lease_is_leader(km->lease)) {
        return;
    }
    struct k8s_object_ref ref = {.api_version = "management.loft.sh/v1",
                                 .kind = "Cluster",
                                 .namespace_ = NULL,
                                 .name = name,
                                 .uid = uid};
    if (k8s_event_emit(km->recorder, &ref, warning ? K8S_EVENT_WARNING : K8S_EVENT_NORMAL, reason,
                       action, note) < 0) {
        dc_log(DC_LOG_WARN, "derp-k8s", "cannot record an Event for cluster %s", name);
    }
}

void kube_mode_relay_event(struct kube_mode *km, const char *name, const char *uid, bool up,
                           const char *why)
{
    char note[DC_ERR_LEN + 128];
    if (up) {
        snprintf(note, sizeof(note), "the cluster's DERP relay passes packets again");
    } else {
        snprintf(note, sizeof(note), "the cluster's DERP relay failed a probe: %s", why);
    }
    cluster_event(km, name, uid, !up, up ? REASON_RELAY_UP : REASON_RELAY_DOWN, "ProbeDERPRelay",
                  note);
}

void kube_mode_resync(struct kube_mode *km)
{
    source_k8s_resync(km->clusters);
}

static void on_cluster(void *arg, const char *name, const char *uid, const char *error)
{
    struct kube_mode *km = arg;
    char note[DC_ERR_LEN + 128];
    if (error != NULL) {
        snprintf(note, sizeof(note), "left out of the DERP map: %s", error);
    } else {
        snprintf(note, sizeof(note),
                 "loft.sh/derp-endpoint is valid: the cluster is back in "
                 "the DERP map");
    }
    cluster_event(km, name, uid, error != NULL, error != NULL ? REASON_INVALID : REASON_VALID,
                  "UpdateDERPMap", note);
}

/* --- the Lease --- */

static void started_leading(void *arg)
{
    struct kube_mode *km = arg;
    km->is_lease_known = true;
    controller_set_leader(km->ctl, true);
    controller_report_invalid(km->ctl); /* a new leader reports what it inherited */
    source_k8s_resync(km->clusters);    /* hand out IDs that were pending */
}

static void stopped_leading(void *arg)
{
    struct kube_mode *km = arg;
    controller_set_leader(km->ctl, false);
}

static void new_leader(void *arg, const char *identity)
{
    struct kube_mode *km = arg;
    km->is_lease_known = km->is_lease_known || (identity != NULL && identity[0] != '\0');
    if (km->is_lease_known && !km->is_published) {
        source_k8s_resync(km->clusters);
    }
}

/* --- set-up --- */

static void pick_names(struct kube_mode *km, const struct kube_mode_opts *o)
{
    const char *ns = o->namespace_;
    if (ns == NULL || ns[0] == '\0') {
        ns = getenv("POD_NAMESPACE");
    }
    if ((ns == NULL || ns[0] == '\0') && o->kubeconfig == NULL) {
        ns = km->cfg->namespace; /* in-cluster: the service account's namespace */
    }
    if (ns == NULL || ns[0] == '\0') {
        ns = KUBE_MODE_DEFAULT_NAMESPACE;
    }
    snprintf(km->ns, sizeof(km->ns), "%s", ns);
    const char *id = o->identity != NULL ? o->identity : getenv("POD_NAME");
    char host[256] = "";
    if (id == NULL || id[0] == '\0') {
        (void)gethostname(host, sizeof(host) - 1);
        id = host[0] ? host : "derp-controller";
    }
    snprintf(km->identity, sizeof(km->identity), "%s", id);
    snprintf(km->lease_name, sizeof(km->lease_name), "%s",
             o->lease_name ? o->lease_name : KUBE_MODE_DEFAULT_LEASE);
    snprintf(km->cm_name, sizeof(km->cm_name), "%s",
             o->configmap_name ? o->configmap_name : KUBE_MODE_DEFAULT_CONFIGMAP);
}

static int load_config(struct kube_mode *km, const struct kube_mode_opts *o, char *err)
{
    char why[DC_ERR_LEN];
    int rc = o->kubeconfig != NULL
                 ? k8s_config_load_kubeconfig(o->kubeconfig, o->context, &km->cfg, why)
                 : k8s_config_load_in_cluster(NULL, &km->cfg, why);
    if (rc < 0 && o->kubeconfig != NULL) {
        return dc_err_set(err, rc, "--kubeconfig: %s", why);
    }
    if (rc < 0) { /* why names the in-cluster config already */
        return dc_err_set(err, rc, "%s (outside a pod: --kubeconfig PATH or --clusters-dir DIR)",
                          why);
    }
    if (km->cfg->is_insecure) {
        dc_log(DC_LOG_WARN, "derp-k8s",
               "insecure-skip-tls-verify is set: the API server's certificate is not checked");
    }
    return 0;
}

static int start_lease(struct kube_mode *km, const struct kube_mode_opts *o, char *err)
{
    struct k8s_lease_opts lo = {.namespace_ = km->ns,
                                .name = km->lease_name,
                                .identity = km->identity,
                                .lease_duration_ms = o->lease_duration_ms,
                                .renew_deadline_ms = o->renew_deadline_ms,
                                .retry_period_ms = o->retry_period_ms,
                                .on_started_leading = started_leading,
                                .on_stopped_leading = stopped_leading,
                                .on_new_leader = new_leader,
                                .arg = km};
    return k8s_lease_start(km->client, &lo, &km->lease, err);
}

static int start_parts(struct kube_mode *km, const struct kube_mode_opts *o, char *err)
{
    struct controller_opts copts = {.central_endpoint = o->central_endpoint,
                                    .server = o->server,
                                    .ids_from_api = true,
                                    .on_cluster = on_cluster,
                                    .on_ids = on_ids,
                                    .arg = km};
    int rc = controller_new(&copts, &km->ctl, err);
    if (rc == 0) {
        rc = k8s_client_new(km->loop, km->cfg, &km->client, err);
    }
    if (rc == 0) {
        rc = k8s_recorder_new(km->client, COMPONENT, km->identity, &km->recorder, err);
    }
    if (rc == 0) {
        rc = source_k8s_start(km->loop, km->client, on_clusters, km, &km->clusters, err);
    }
    if (rc == 0) {
        rc = start_cm_watch(km, err);
    }
    if (rc == 0) {
        rc = start_lease(km, o, err);
    }
    if (rc == 0 && o->mesh_service != NULL) {
        rc = mesh_peers_start(km->loop, km->client, km->ns, o->mesh_service,
                              o->mesh_port_name != NULL ? o->mesh_port_name : "derp",
                              o->mesh_peers_file, &km->mesh, err);
    }
    return rc;
}

int kube_mode_start(const struct kube_mode_opts *o, struct kube_mode **out, char *err)
{
    struct kube_mode *km = calloc(1, sizeof(*km));
    if (km == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    km->loop = o->loop;
    km->started_ms = dc_now_ms();
    km->leader_wait = (struct dc_timer){.cb = open_gate_later, .data = km};
    km->write_retry = (struct dc_timer){.cb = write_retry_cb, .data = km};
    int rc = load_config(km, o, err);
    if (rc == 0) {
        pick_names(km, o);
        rc = start_parts(km, o, err);
    }
    if (rc < 0) {
        kube_mode_free(km);
        return rc;
    }
    dc_timer_start(km->loop, &km->leader_wait, KUBE_MODE_LEADER_WAIT_MS);
    snprintf(km->describe, sizeof(km->describe), "API %s, namespace %s, identity %s",
             km->cfg->server, km->ns, km->identity);
    *out = km;
    return 0;
}

static void released(void *arg, int error)
{
    struct kube_mode *km = arg;
    if (error != 0) {
        dc_log(DC_LOG_WARN, "derp-k8s",
               "giving up Lease %s/%s: %s; the others wait for it to "
               "expire",
               km->ns, km->lease_name, dc_strerror(error));
    }
    if (km->done != NULL) {
        void (*done)(struct dc_loop *, void *) = km->done;
        km->done = NULL;
        done(km->loop, km->done_arg);
    }
}

void kube_mode_shutdown(struct kube_mode *km, void (*done)(struct dc_loop *, void *), void *arg)
{
    km->done = done;
    km->done_arg = arg;
    if (km->lease != NULL && k8s_lease_is_leader(km->lease)) {
        dc_log(DC_LOG_INFO, "derp-k8s", "giving up Lease %s/%s", km->ns, km->lease_name);
        if (k8s_lease_release(km->lease, released, km) == 0) {
            return;
        }
    }
    released(km, 0);
}

void kube_mode_free(struct kube_mode *km)
{
    if (km == NULL) {
        return;
    }
    dc_timer_stop(km->loop, &km->leader_wait);
    dc_timer_stop(km->loop, &km->write_retry);
    k8s_lease_stop(km->lease);
    mesh_peers_free(km->mesh);
    source_k8s_free(km->clusters);
    k8s_watch_stop(km->cm_watch);
    k8s_recorder_free(km->recorder);
    k8s_client_free(km->client);
    controller_free(km->ctl);
    k8s_config_free(km->cfg);
    free(km);
}

struct controller *kube_mode_controller(const struct kube_mode *km)
{
    return km->ctl;
}

const char *kube_mode_describe(const struct kube_mode *km)
{
    return km->describe;
}

void kube_mode_metrics(void *arg, struct dc_buf *out)
{
    struct kube_mode *km = arg;
    bool leader = km->lease != NULL && k8s_lease_is_leader(km->lease);
    dc_buf_printf(out,
                  "# HELP derp_controller_leader 1 while this replica holds the Lease.\n"
                  "# TYPE derp_controller_leader gauge\nderp_controller_leader %d\n"
                  "# HELP derp_k8s_watch_restarts_total Cluster watches resumed or relisted.\n"
                  "# TYPE derp_k8s_watch_restarts_total counter\n"
                  "derp_k8s_watch_restarts_total %llu\n"
                  "# HELP derp_k8s_synced 1 once the first Cluster list is in.\n"
                  "# TYPE derp_k8s_synced gauge\nderp_k8s_synced %d\n"
                  "# HELP derp_region_id_writes_total Region-ID ConfigMap writes, by result.\n"
                  "# TYPE derp_region_id_writes_total counter\n"
                  "derp_region_id_writes_total{result=\"ok\"} %llu\n"
                  "derp_region_id_writes_total{result=\"failed\"} %llu\n"
                  "# HELP derp_mesh_peers Relay replicas found in EndpointSlices.\n"
                  "# TYPE derp_mesh_peers gauge\nderp_mesh_peers %zu\n",
                  leader ? 1 : 0, (unsigned long long)source_k8s_restarts(km->clusters),
                  source_k8s_is_synced(km->clusters) ? 1 : 0, (unsigned long long)km->writes,
                  (unsigned long long)km->write_failures,
                  km->mesh != NULL ? mesh_peers_count(km->mesh) : (size_t)0);
}
