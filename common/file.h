/* file: whole-file chores shared by the programs. */
#ifndef DC_COMMON_FILE_H
#define DC_COMMON_FILE_H

#include "err.h"

#include <stddef.h>

/* Replaces path with data[0..len) atomically: a hidden temporary file in the
 * same directory (".NAME.tmp"), written, fsync'ed, then renamed over path,
 * so a reader (or inotify watcher) sees the old file or the new one, never
 * half of one. Mode 0644. Returns 0, or negative errno with err naming the
 * file; the temporary file is removed on failure. */
int dc_file_write_atomic(const char *path, const void *data, size_t len, char *err) DC_MUST_CHECK;

#endif
