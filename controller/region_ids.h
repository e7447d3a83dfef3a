/* region_ids: stable DERP region IDs for Cluster names.
 *
 * A Cluster keeps its region ID for as long as the table remembers its name,
 * including while it is deleted or invalid, so a Cluster that comes back gets
 * the same ID and no other Cluster ever takes it over. New names get the next
 * ID after the highest ever given, from DERPMAP_FIRST_CLUSTER_ID up.
 *
 * Persistence outside Kubernetes: a JSON object {"<name>": <id>, ...} in
 * DIR/region-ids.json, written atomically (temporary file, fsync, rename). */
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
