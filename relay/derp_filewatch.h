/* derp_filewatch: tells the loop when some files may have changed, by
 * watching their directories with inotify.
 *
 * Watching the directory, not the file, is what catches the ways files are
 * replaced in practice: Kubernetes Secret and ConfigMap mounts swap a
 * "..data" symlink, cert-manager and editors rename a new file into place
 * (the old inode, which a file watch would follow, never changes again).
 * Bursts of events are coalesced: the callback runs once,
 * DERP_FILEWATCH_SETTLE_MS after the last event. It does not read the files
 * or say which one changed: the caller re-reads and compares. One fd and one
 * timer on the caller's loop; nothing blocks. */
#ifndef DC_RELAY_DERP_FILEWATCH_H
#define DC_RELAY_DERP_FILEWATCH_H

#include "err.h"
#include "loop.h"

#include <stddef.h>

/* Quiet time after the last event before the callback runs (ms): a Secret
 * update or an editor's save is several events. */
#define DERP_FILEWATCH_SETTLE_MS 100
/* Most directories one watcher follows. */
#define DERP_FILEWATCH_MAX_DIRS 4

typedef void (*derp_filewatch_cb)(void *data);

/* One watcher. All-zero is a stopped watcher (stop is then a no-op). */
struct derp_filewatch {
    struct dc_loop *loop;   /* borrowed */
    struct dc_io io;        /* inotify fd, owned while started */
    struct dc_timer settle; /* fires DERP_FILEWATCH_SETTLE_MS after the last event */
    derp_filewatch_cb cb;   /* called on the loop */
    void *data;             /* borrowed, passed to cb */
};

/* Starts watching the directories holding paths[0..n) (n <= max dirs;
 * duplicates are fine). Returns 0, or negative errno with err naming the
 * directory. */
int derp_filewatch_start(struct derp_filewatch *w, struct dc_loop *loop, const char *const *paths,
                         size_t n, derp_filewatch_cb cb, void *data, char *err) DC_MUST_CHECK;
/* Stops watching and closes the fd; safe on a stopped watcher. */
void derp_filewatch_stop(struct derp_filewatch *w);

#endif
