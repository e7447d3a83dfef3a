/* source_dir: Clusters from a directory of YAML files, watched with inotify.
 *
 * Every *.yaml / *.yml file in the directory holds one or more Cluster
 * documents; other files (editor swap files, backups) are ignored. Any
 * change in the directory (create, write, rename, delete, an editor's
 * atomic save) triggers a rescan SOURCE_DIR_DEBOUNCE_MS later, and the whole
 * snapshot goes to the callback; a rescan every SOURCE_DIR_RESCAN_MS covers
 * lost inotify events. A bad document is left out with one warning naming
 * the file (repeated only when the problem changes). */
#ifndef DC_CONTROLLER_SOURCE_DIR_H
#define DC_CONTROLLER_SOURCE_DIR_H

#include "controller.h"
#include "err.h"

struct dc_loop;
struct source_dir;

/* Wait after a change before rescanning: an editor's save is several events. */
#define SOURCE_DIR_DEBOUNCE_MS 50
/* Periodic safety rescan. */
#define SOURCE_DIR_RESCAN_MS 10000
/* Largest file read; larger ones are skipped with a warning. */
#define SOURCE_DIR_MAX_FILE (16u << 20)

typedef void (*source_dir_cb)(void *arg, const struct cluster_input *clusters, size_t n);

/* Watches dir and delivers a first snapshot at once. Returns 0 and *out, or
 * negative errno with err (missing directory, inotify failure). */
int source_dir_start(struct dc_loop *loop, const char *dir, source_dir_cb cb, void *arg,
                     struct source_dir **out, char *err) DC_MUST_CHECK;
/* Rescans on the next loop pass (something else the map depends on changed). */
void source_dir_rescan(struct source_dir *sd);
/* Stops watching and frees; accepts NULL. */
void source_dir_free(struct source_dir *sd);

#endif
