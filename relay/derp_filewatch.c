#include "derp_filewatch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* What counts as "may have changed": a file written and closed, renamed in
 * or out, created, deleted, or its attributes changed (a symlink swap shows
 * up as a rename of "..data"). */
#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF)

static void settle_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct derp_filewatch *w = t->data;
    w->cb(w->data);
}

static void io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct derp_filewatch *w = io->data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    do {
        n = read(io->fd, buf, sizeof(buf)); /* the events' content does not matter */
    } while (n > 0);
    dc_timer_start(loop, &w->settle, DERP_FILEWATCH_SETTLE_MS);
}

/* Copies the directory part of path ("." for a bare name) into out. */
static int dir_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    int n;
    if (slash == NULL) {
        n = snprintf(out, len, ".");
    } else if (slash == path) {
        n = snprintf(out, len, "/");
    } else {
        n = snprintf(out, len, "%.*s", (int)(slash - path), path);
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int derp_filewatch_start(struct derp_filewatch *w, struct dc_loop *loop, const char *const *paths,
                         size_t n, derp_filewatch_cb cb, void *data, char *err)
{
    if (n > DERP_FILEWATCH_MAX_DIRS) {
        return dc_err_set(err, -EINVAL, "file watch: too many directories");
    }
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return dc_err_set(err, rc, "file watch: inotify: %s", dc_strerror(rc));
    }
    for (size_t i = 0; i < n; i++) {
        char dir[PATH_MAX];
        int rc = dir_of(paths[i], dir, sizeof(dir));
        if (rc == 0 && inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
            rc = -errno;
        }
        if (rc < 0) {
            close(fd);
            return dc_err_set(err, rc, "file watch: directory of `%s': %s", paths[i],
                              dc_strerror(rc));
        }
    }
    *w = (struct derp_filewatch){.loop = loop, .cb = cb, .data = data};
    w->io = (struct dc_io){.fd = fd, .cb = io_cb, .data = w};
    w->settle = (struct dc_timer){.cb = settle_cb, .data = w};
    int rc = dc_io_start(loop, &w->io, DC_IO_READ);
    if (rc < 0) {
        close(fd);
        w->io.fd = -1;
        return dc_err_set(err, rc, "file watch: epoll: %s", dc_strerror(rc));
    }
    return 0;
}

void derp_filewatch_stop(struct derp_filewatch *w)
{
    if (w->loop == NULL) {
        return;
    }
    dc_timer_stop(w->loop, &w->settle);
    dc_io_stop(w->loop, &w->io);
    if (w->io.fd >= 0) {
        close(w->io.fd);
    }
    w->io.fd = -1;
    w->loop = NULL;
}
