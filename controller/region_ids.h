/* region_ids: stable DERP region IDs for Cluster names.
 *
 * A Cluster keeps its region ID for as long as the table remembers its name,
 * including while it is deleted or invalid, so a Cluster that comes back gets
 * the same ID and no other Cluster ever takes it over. New names get the next
 * ID after the highest ever given, from DERPMAP_FIRST_CLUSTER_ID up.
 *
 * Persistence outside Kubernetes: a JSON object {"<name>": <id>, ...} in
 * DIR/region-ids.json, written atomically (temporary file, fsync, rename).
 * In Kubernetes: the data of a ConfigMap, {"<name>": "<id>", ...} (ConfigMap
 * values are strings; Cluster names are DNS subdomains, valid data keys),
 * written by the Lease holder only and read by every replica. */
#ifndef DC_CONTROLLER_REGION_IDS_H
#define DC_CONTROLLER_REGION_IDS_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* File name of the table inside --state-dir. */
#define REGION_IDS_FILE "region-ids.json"
/* Largest region ID handed out (tailcfg's IDs are int; stay far below). */
#define REGION_IDS_MAX_ID 1000000u

struct region_ids_entry {
    char *name; /* owned */
    uint32_t id;
};

struct region_ids {
    struct region_ids_entry *v; /* owned, sorted by name */
    size_t n, cap;
    uint32_t next_id; /* next ID to hand out */
    bool is_dirty;    /* changed since the last save */
};

/* Makes an empty table. */
void region_ids_init(struct region_ids *t);
/* Frees the table; accepts the zero state. */
void region_ids_deinit(struct region_ids *t);
/* Returns name's ID, giving it the next one when new (then is_dirty is set);
 * 0 when out of memory or IDs. */
uint32_t region_ids_get(struct region_ids *t, const char *name);
/* Returns name's ID, or 0 when the table does not know it (nothing is given). */
uint32_t region_ids_lookup(const struct region_ids *t, const char *name);
/* Merges authority (what the API holds) into t: authority's entries win; a
 * name only t knows keeps its ID unless authority gave that ID to another
 * name, then it gets a fresh one. t is dirty afterwards when it holds
 * entries authority lacks (they still have to be written). Returns the
 * number of names whose ID appeared or changed, or -ENOMEM (t unchanged). */
int region_ids_merge(struct region_ids *t, const struct region_ids *authority) DC_MUST_CHECK;
/* Reads a ConfigMap's data object ({"name": "901"}) into t (replacing its
 * contents). Entries with a bad ID (not a decimal string in
 * [DERPMAP_FIRST_CLUSTER_ID, REGION_IDS_MAX_ID], or an ID already taken) are
 * skipped; *skipped counts them and err names the first. data may be NULL
 * (an empty table). Returns 0 or -ENOMEM. */
int region_ids_from_data(struct region_ids *t, const void *data, size_t *skipped,
                         char *err) DC_MUST_CHECK;
/* t as a new ConfigMap data object (a json_t *, caller decrefs); NULL on ENOMEM. */
void *region_ids_to_data(const struct region_ids *t);
/* Parses the persisted JSON text into t (replacing its contents). Returns 0,
 * or -EINVAL with err naming what is wrong. */
int region_ids_parse(struct region_ids *t, const char *text, size_t len, char *err) DC_MUST_CHECK;
/* Formats t as JSON into a malloc'd string (caller frees); NULL on ENOMEM. */
char *region_ids_format(const struct region_ids *t);
/* Loads DIR/region-ids.json (a missing file is an empty table). */
int region_ids_load(struct region_ids *t, const char *dir, char *err) DC_MUST_CHECK;
/* Saves t atomically to DIR/region-ids.json and clears is_dirty. */
int region_ids_save(struct region_ids *t, const char *dir, char *err) DC_MUST_CHECK;

#endif
