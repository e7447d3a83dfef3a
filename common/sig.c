#include "sig.h"

#include <errno.h>
#include <signal.h>
#include <sys/signalfd.h>

int dc_signals_start(struct dc_loop *loop, struct dc_io *io, dc_io_cb cb, void *data)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        return -errno;
    }
    sigdelset(&set, SIGPIPE);
    io->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (io->fd < 0) {
        return -errno;
    }
    io->cb = cb;
    io->data = data;
    return dc_io_start(loop, io, DC_IO_READ);
}
