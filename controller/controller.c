#include "controller.h"

#include "annot.h"
#include "buf.h"
#include "derpmap.h"
#include "log.h"
#include "map_server.h"
#include "region_ids.h"
#include "relay_probes.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the previous snapshot said about one Cluster, to log changes once. */
struct cluster_note {
    char *name;  /* owned */
    char *error; /* owned; NULL when the Cluster was valid */
    char *desc;  /* owned; "host:port insecure" of a valid region, for change logs */
    char *uid;   /* owned or NULL */
};

/* What cluster_region() found. */
enum cluster_state {
    CLUSTER_VALID,   /* in the map */
    CLUSTER_INVALID, /* bad annotations: left out, reported */
    CLUSTER_PENDING, /* valid, but no region ID yet (another replica leads) */
};

struct controller {
    char central_host[ANNOT_HOST_MAX_LEN + 1];
    struct annot_endpoint central;
    char *state_dir;           /* owned or NULL */
    struct map_server *server; /* borrowed */
    struct region_ids ids;
    struct dc_buf json; /* the map being built */
    char etag[DERPMAP_ETAG_LEN];
    uint64_t generation; /* maps published */
    size_t regions;      /* cluster regions in the current map */
    size_t invalid;      /* Clusters left out for bad annotations */
    size_t pending;      /* valid Clusters still waiting for an ID */
    bool ids_from_api;   /* Kubernetes mode */
    bool is_leader;      /* may hand out IDs (always outside Kubernetes) */
    controller_cluster_cb on_cluster;
    controller_ids_cb on_ids;
    void *arg;
    controller_targets_cb on_targets;
    void *targets_arg;
    json_t *pins;               /* Cluster name -> "sha256-raw:<hex>" of its insecure relay */
    struct cluster_note *notes; /* owned, from the previous snapshot */
    size_t nnotes;
};

int controller_new(const struct controller_opts *opts, struct controller **out, char *err)
{
    struct controller *ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    char why[DC_ERR_LEN];
    const char *ce = opts->central_endpoint != NULL ? opts->central_endpoint : "";
    int rc = annot_endpoint_parse(ce, strlen(ce), &ctl->central, why);
    if (rc < 0) {
        free(ctl);
        return dc_err_set(err, rc, "--central-endpoint: %s", why);
    }
    region_ids_init(&ctl->ids);
    dc_buf_init(&ctl->json, DERPMAP_MAX_JSON);
    ctl->server = opts->server;
    ctl->ids_from_api = opts->ids_from_api;
    ctl->is_leader = !opts->ids_from_api;
    ctl->on_cluster = opts->on_cluster;
    ctl->on_ids = opts->on_ids;
    ctl->arg = opts->arg;
    ctl->pins = json_object();
    if (ctl->pins == NULL) {
        free(ctl);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    if (opts->state_dir != NULL) {
        ctl->state_dir = strdup(opts->state_dir);
        rc = ctl->state_dir == NULL ? -ENOMEM : region_ids_load(&ctl->ids, ctl->state_dir, why);
        if (rc < 0) {
            controller_free(ctl);
            return dc_err_set(err, rc, "--state-dir: %s", why);
        }
    }
    *out = ctl;
    return 0;
}

static void notes_free(struct cluster_note *notes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(notes[i].name);
        free(notes[i].error);
        free(notes[i].desc);
        free(notes[i].uid);
    }
    free(notes);
}

void controller_free(struct controller *ctl)
{
    if (ctl == NULL) {
        return;
    }
    region_ids_deinit(&ctl->ids);
    dc_buf_deinit(&ctl->json);
    notes_free(ctl->notes, ctl->nnotes);
    free(ctl->state_dir);
    json_decref(ctl->pins);
    free(ctl);
}

/* Notes are kept sorted by name (the snapshot is applied in name order). */
static const struct cluster_note *note_find(const struct controller *ctl, const char *name)
{
    size_t lo = 0, hi = ctl->nnotes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ctl->notes[mid].name, name);
        if (c == 0) {
            return &ctl->notes[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int input_cmp(const void *a, const void *b)
{
    const struct cluster_input *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int region_cmp(const void *a, const void *b)
{
    const struct derpmap_region *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Validates one Cluster into r (ID, host, ...); why says what is wrong when invalid. */
static enum cluster_state cluster_region(struct controller *ctl, const struct cluster_input *c,
                                         struct annot_endpoint *ep, struct derpmap_region *r,
                                         char *why)
{
    bool insecure = false;
    if (annot_endpoint_parse(c->endpoint, strlen(c->endpoint), ep, why) < 0) {
        return CLUSTER_INVALID;
    }
    if (c->insecure != NULL &&
        annot_insecure_parse(c->insecure, strlen(c->insecure), &insecure, why) < 0) {
        return CLUSTER_INVALID;
    }
    uint32_t id =
        ctl->is_leader ? region_ids_get(&ctl->ids, c->name) : region_ids_lookup(&ctl->ids, c->name);
    if (id == 0 && !ctl->is_leader) {
        return CLUSTER_PENDING;
    }
    if (id == 0) {
        dc_err_set(why, -ENOMEM, "no region ID available");
        return CLUSTER_INVALID;
    }
    *r = (struct derpmap_region){
        .id = id,
        .code = c->name,
        .name = c->display_name != NULL && c->display_name[0] != '\0' ? c->display_name : c->name,
        .host = ep->host,
        .is_ipv4 = ep->is_ipv4,
        .is_ipv6 = ep->is_ipv6,
        .derp_port = ep->port,
        .stun_port = -1, /* behind an Ingress: no UDP */
        .insecure_for_tests = insecure};
    const char *pin = insecure ? json_string_value(json_object_get(ctl->pins, c->name)) : NULL;
    if (pin != NULL) { /* the relay's own certificate, pinned: verification stays on */
        r->cert_name = pin;
        r->insecure_for_tests = false;
    }
    return CLUSTER_VALID;
}

static void log_change(const struct controller *ctl, const struct cluster_input *c,
                       const char *error, const char *desc)
{
    const struct cluster_note *old = note_find(ctl, c->name);
    const char *from = c->origin != NULL ? c->origin : "";
    if (error != NULL) {
        if (old == NULL || old->error == NULL || strcmp(old->error, error) != 0) {
            dc_log(DC_LOG_WARN, "derp-map", "cluster %s%s%s left out of the DERP map: %s", c->name,
                   from[0] ? " in " : "", from, error);
            if (ctl->on_cluster != NULL) {
                ctl->on_cluster(ctl->arg, c->name, c->uid, error);
            }
        }
        return;
    }
    if (desc[0] == '\0') {
        if (old != NULL && old->error == NULL && old->desc == NULL) {
            return; /* still waiting */
        }
        dc_log(DC_LOG_DEBUG, "derp-map", "cluster %s waits for its region ID from the leader",
               c->name);
        return;
    }
    if (old != NULL && old->error != NULL) {
        dc_log(DC_LOG_INFO, "derp-map", "cluster %s is valid again: %s", c->name, desc);
        if (ctl->on_cluster != NULL) {
            ctl->on_cluster(ctl->arg, c->name, c->uid, NULL);
        }
    } else if (old == NULL || old->desc == NULL) {
        dc_log(DC_LOG_DEBUG, "derp-map", "region added: cluster %s %s", c->name, desc);
    } else if (strcmp(old->desc, desc) != 0) {
        dc_log(DC_LOG_DEBUG, "derp-map", "region changed: cluster %s %s (was %s)", c->name, desc,
               old->desc);
    }
}

/* Both lists are sorted by name: one merge walk finds the regions that went. */
static void log_removed(const struct controller *ctl, const struct cluster_note *fresh, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < ctl->nnotes; i++) {
        const struct cluster_note *old = &ctl->notes[i];
        while (j < n && strcmp(fresh[j].name, old->name) < 0) {
            j++;
        }
        bool kept = j < n && strcmp(fresh[j].name, old->name) == 0 && fresh[j].desc != NULL;
        if (!kept && old->desc != NULL) {
            dc_log(DC_LOG_DEBUG, "derp-map", "region removed: cluster %s", old->name);
        }
    }
}

static void publish(struct controller *ctl, const struct derpmap_region *regions, size_t n)
{
    int rc = derpmap_format(regions, n, &ctl->json);
    if (rc < 0) {
        dc_log(DC_LOG_ERROR, "derp-map", "cannot format the map: %s; keeping the last one",
               dc_strerror(rc));
        return;
    }
    char etag[DERPMAP_ETAG_LEN];
    derpmap_etag(ctl->json.p, ctl->json.len, etag);
    if (ctl->generation > 0 && strcmp(etag, ctl->etag) == 0) {
        return; /* same bytes: waiters keep waiting */
    }
    if (map_server_set_map(ctl->server, ctl->json.p, ctl->json.len, etag) < 0) {
        dc_log(DC_LOG_ERROR, "derp-map", "out of memory publishing the map; keeping the last one");
        return;
    }
    memcpy(ctl->etag, etag, sizeof(etag));
    ctl->generation++;
    dc_log(DC_LOG_INFO, "derp-map", "map generation %llu: %zu cluster regions, etag %s",
           (unsigned long long)ctl->generation, n - 1, etag);
}

void controller_apply(struct controller *ctl, const struct cluster_input *clusters, size_t n)
{
    struct derpmap_region *regions = calloc(n + 1, sizeof(*regions));
    struct annot_endpoint *eps = calloc(n + 1, sizeof(*eps));
    struct cluster_note *notes = calloc(n + 1, sizeof(*notes));
    const struct cluster_input **sorted = calloc(n + 1, sizeof(*sorted));
    struct relay_target *targets = calloc(n + 1, sizeof(*targets));
    size_t nt = 0;
    if (regions == NULL || eps == NULL || notes == NULL || sorted == NULL || targets == NULL) {
        dc_log(DC_LOG_ERROR, "derp-map", "out of memory: keeping the last map");
        goto out;
    }
    regions[0] = (struct derpmap_region){.id = DERPMAP_CENTRAL_ID,
                                         .code = DERPMAP_CENTRAL_CODE,
                                         .name = DERPMAP_CENTRAL_NAME,
                                         .host = ctl->central.host,
                                         .is_ipv4 = ctl->central.is_ipv4,
                                         .is_ipv6 = ctl->central.is_ipv6,
                                         .derp_port = ctl->central.port};
    size_t nr = 1, nnotes = 0, invalid = 0, pending = 0;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = &clusters[i];
    }
    if (n > 1) {
        qsort(sorted, n, sizeof(*sorted), input_cmp); /* notes stay sorted by name */
    }
    for (size_t i = 0; i < n; i++) {
        const struct cluster_input *c = sorted[i];
        if (c->endpoint == NULL) {
            continue; /* not a relay */
        }
        char why[DC_ERR_LEN] = "";
        char desc[512] = "";
        enum cluster_state st = cluster_region(ctl, c, &eps[nr], &regions[nr], why);
        bool ok = st == CLUSTER_VALID;
        if (ok) {
            snprintf(desc, sizeof(desc), "region %u host %s port %u%s", regions[nr].id,
                     regions[nr].host, regions[nr].derp_port ? regions[nr].derp_port : 443,
                     regions[nr].insecure_for_tests ? " insecure" : "");
        }
        log_change(ctl, c, st == CLUSTER_INVALID ? why : NULL, desc);
        notes[nnotes].name = strdup(c->name);
        notes[nnotes].error = st == CLUSTER_INVALID ? strdup(why) : NULL;
        notes[nnotes].desc = ok ? strdup(desc) : NULL;
        notes[nnotes].uid = c->uid != NULL ? strdup(c->uid) : NULL;
        nnotes++;
        if (ok) {
            const struct derpmap_region *r = &regions[nr];
            targets[nt++] =
                (struct relay_target){.name = c->name,
                                      .uid = c->uid,
                                      .region_id = r->id,
                                      .host = r->host,
                                      .is_ipv4 = r->is_ipv4,
                                      .is_ipv6 = r->is_ipv6,
                                      .port = r->derp_port,
                                      .is_insecure = r->insecure_for_tests || r->cert_name != NULL};
        }
        nr += ok ? 1 : 0;
        invalid += st == CLUSTER_INVALID;
        pending += st == CLUSTER_PENDING;
    }
    log_removed(ctl, notes, nnotes);
    notes_free(ctl->notes, ctl->nnotes);
    ctl->notes = notes;
    ctl->nnotes = nnotes;
    notes = NULL;
    if (ctl->ids.is_dirty && ctl->state_dir != NULL) {
        char why[DC_ERR_LEN];
        if (region_ids_save(&ctl->ids, ctl->state_dir, why) < 0) {
            dc_log(DC_LOG_ERROR, "derp-map", "saving region IDs: %s", why);
        }
    }
    if (ctl->ids.is_dirty && ctl->on_ids != NULL) {
        ctl->on_ids(ctl->arg, &ctl->ids);
    }
    if (nr > 2) {
        qsort(regions + 1, nr - 1, sizeof(*regions), region_cmp);
    }
    ctl->regions = nr - 1;
    ctl->invalid = invalid;
    ctl->pending = pending;
    publish(ctl, regions, nr);
    if (ctl->on_targets != NULL) {
        ctl->on_targets(ctl->targets_arg, targets, nt);
    }
out:
    free(targets);
    free(sorted);
    free(regions);
    free(eps);
    if (notes != NULL) {
        notes_free(notes, 0);
    }
}

void controller_set_targets_cb(struct controller *ctl, controller_targets_cb cb, void *arg)
{
    ctl->on_targets = cb;
    ctl->targets_arg = arg;
}

int controller_set_pin(struct controller *ctl, const char *name, const char *pin)
{
    const char *old = json_string_value(json_object_get(ctl->pins, name));
    if (old != NULL && strcmp(old, pin) == 0) {
        return 0;
    }
    return json_object_set_new(ctl->pins, name, json_string(pin)) == 0 ? 1 : -ENOMEM;
}

void controller_set_leader(struct controller *ctl, bool is_leader)
{
    ctl->is_leader = is_leader || !ctl->ids_from_api;
}

int controller_merge_ids(struct controller *ctl, const struct region_ids *from)
{
    return region_ids_merge(&ctl->ids, from);
}

const struct region_ids *controller_ids(const struct controller *ctl)
{
    return &ctl->ids;
}

void controller_report_invalid(struct controller *ctl)
{
    for (size_t i = 0; i < ctl->nnotes && ctl->on_cluster != NULL; i++) {
        if (ctl->notes[i].error != NULL) {
            ctl->on_cluster(ctl->arg, ctl->notes[i].name, ctl->notes[i].uid, ctl->notes[i].error);
        }
    }
}

size_t controller_invalid_count(const struct controller *ctl)
{
    return ctl->invalid;
}

size_t controller_pending_count(const struct controller *ctl)
{
    return ctl->pending;
}

void controller_metrics(void *arg, struct dc_buf *out)
{
    const struct controller *ctl = arg;
    dc_buf_printf(out,
                  "# HELP derp_map_regions Cluster regions in the served map.\n"
                  "# TYPE derp_map_regions gauge\nderp_map_regions %zu\n"
                  "# HELP derp_map_invalid_clusters Clusters left out for bad annotations.\n"
                  "# TYPE derp_map_invalid_clusters gauge\nderp_map_invalid_clusters %zu\n"
                  "# HELP derp_map_pending_clusters Valid Clusters waiting for a region ID from "
                  "the leader.\n"
                  "# TYPE derp_map_pending_clusters gauge\nderp_map_pending_clusters %zu\n"
                  "# HELP derp_map_generation Maps published since start.\n"
                  "# TYPE derp_map_generation counter\nderp_map_generation %llu\n",
                  ctl->regions, ctl->invalid, ctl->pending, (unsigned long long)ctl->generation);
}
