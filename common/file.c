#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int dc_file_write_atomic(const char *path, const void *data, size_t len, char *err)
{
    char tmp[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash != NULL ? (int)(slash - path + 1) : 0;
    if (snprintf(tmp, sizeof(tmp), "%.*s.%s.tmp", dir_len, path, path + dir_len) >=
        (int)sizeof(tmp)) {
        return dc_err_set(err, -ENAMETOOLONG, "path too long: `%s'", path);
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = dc_err_set(err, -errno, "`%s': %s", tmp, strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = dc_err_set(err, -errno, "rename to `%s': %s", path, strerror(errno));
    }
    if (rc < 0) {
        unlink(tmp);
    }
    return rc;
}
