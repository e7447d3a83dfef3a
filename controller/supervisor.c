#include "supervisor.h"

#include "buf.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

struct supervisor {
    struct dc_loop *loop;    /* borrowed */
    char **argv;             /* owned, NULL-terminated */
    pid_t pid;               /* running child, or 0 */
    struct dc_io pidfd_io;   /* readable when the child exits */
    struct dc_timer restart; /* backoff */
    struct dc_timer kill;    /* grace after SIGTERM */
    uint64_t started_ms;
    uint32_t backoff_ms;
    uint64_t restarts;
    bool is_stopping;
    void (*done)(struct dc_loop *, void *);
    void *done_data;
};

static void child_exec(char *const argv[])
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the parent blocks signals for signalfd */
    /* Its own process group: a terminal's Ctrl-C reaches only the controller,
     * which forwards one SIGTERM, so the relay drains instead of dying twice. */
    setpgid(0, 0);
    execv(argv[0], argv);
    dprintf(2, "derp-super: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int spawn(struct supervisor *sv, char *err)
{
    pid_t pid = fork();
    if (pid < 0) {
        return dc_err_set(err, -errno, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        child_exec(sv->argv);
    }
    int fd = pidfd_open(pid, 0);
    if (fd < 0) {
        int rc = dc_err_set(err, -errno, "pidfd_open: %s", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    sv->pid = pid;
    sv->pidfd_io.fd = fd;
    sv->started_ms = dc_now_ms();
    int rc = dc_io_start(sv->loop, &sv->pidfd_io, DC_IO_READ);
    if (rc < 0) {
        return dc_err_set(err, rc, "epoll: %s", dc_strerror(rc));
    }
    dc_log(DC_LOG_INFO, "derp-super", "started %s (pid %d)", sv->argv[0], (int)pid);
    return 0;
}

static void describe_status(int status, char *out, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(out, len, "killed by signal %d", WTERMSIG(status));
    } else {
        snprintf(out, len, "stopped");
    }
}

static void on_child_exit(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct supervisor *sv = io->data;
    int status = 0;
    waitpid(sv->pid, &status, 0);
    dc_io_stop(loop, io);
    close(io->fd);
    io->fd = -1;
    sv->pid = 0;
    dc_timer_stop(loop, &sv->kill);
    char how[64];
    describe_status(status, how, sizeof(how));
    if (sv->is_stopping) {
        dc_log(DC_LOG_INFO, "derp-super", "derp-relay %s after SIGTERM", how);
        if (sv->done != NULL) {
            sv->done(loop, sv->done_data);
        }
        return;
    }
    if (dc_now_ms() - sv->started_ms > SUPERVISOR_HEALTHY_MS) {
        sv->backoff_ms = 0;
    }
    uint32_t base = sv->backoff_ms == 0 ? SUPERVISOR_BACKOFF_MIN_MS : sv->backoff_ms;
    sv->backoff_ms = base * 2 > SUPERVISOR_BACKOFF_MAX_MS ? SUPERVISOR_BACKOFF_MAX_MS : base * 2;
    uint32_t delay = base / 2 + randombytes_uniform(base / 2 + 1);
    dc_log(DC_LOG_WARN, "derp-super", "derp-relay %s; restarting in %u ms", how, delay);
    dc_timer_start(loop, &sv->restart, delay);
}

static void on_restart(struct dc_loop *loop, struct dc_timer *t)
{
    struct supervisor *sv = t->data;
    char err[DC_ERR_LEN];
    if (sv->is_stopping) {
        return;
    }
    sv->restarts++;
    if (spawn(sv, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp-super", "restarting derp-relay: %s", err);
        dc_timer_start(loop, &sv->restart, SUPERVISOR_BACKOFF_MAX_MS);
    }
}

static void on_kill(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct supervisor *sv = t->data;
    if (sv->pid > 0) {
        dc_log(DC_LOG_WARN, "derp-super", "derp-relay did not drain in %d ms: killing it",
               SUPERVISOR_STOP_GRACE_MS);
        kill(sv->pid, SIGKILL);
    }
}

int supervisor_start(struct dc_loop *loop, char *const argv[], struct supervisor **out, char *err)
{
    struct supervisor *sv = calloc(1, sizeof(*sv));
    size_t n = 0;
    while (argv[n] != NULL) {
        n++;
    }
    if (sv == NULL || (sv->argv = calloc(n + 1, sizeof(char *))) == NULL) {
        free(sv);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        sv->argv[i] = strdup(argv[i]);
        if (sv->argv[i] == NULL) {
            supervisor_free(sv);
            return dc_err_set(err, -ENOMEM, "out of memory");
        }
    }
    sv->loop = loop;
    sv->pidfd_io.fd = -1;
    sv->pidfd_io.cb = on_child_exit;
    sv->pidfd_io.data = sv;
    sv->restart.cb = on_restart;
    sv->restart.data = sv;
    sv->kill.cb = on_kill;
    sv->kill.data = sv;
    if (access(sv->argv[0], X_OK) != 0) {
        int rc = dc_err_set(err, -errno, "--relay-bin `%s': %s", sv->argv[0], strerror(errno));
        supervisor_free(sv);
        return rc;
    }
    int rc = spawn(sv, err);
    if (rc < 0) {
        supervisor_free(sv);
        return rc;
    }
    *out = sv;
    return 0;
}

void supervisor_stop(struct supervisor *sv, void (*done)(struct dc_loop *, void *), void *data)
{
    sv->is_stopping = true;
    sv->done = done;
    sv->done_data = data;
    dc_timer_stop(sv->loop, &sv->restart);
    if (sv->pid <= 0) {
        done(sv->loop, data);
        return;
    }
    dc_log(DC_LOG_INFO, "derp-super", "forwarding SIGTERM to derp-relay (pid %d)", (int)sv->pid);
    kill(sv->pid, SIGTERM);
    dc_timer_start(sv->loop, &sv->kill, SUPERVISOR_STOP_GRACE_MS);
}

void supervisor_free(struct supervisor *sv)
{
    if (sv == NULL) {
        return;
    }
    if (sv->pid > 0) {
        kill(sv->pid, SIGKILL);
        waitpid(sv->pid, NULL, 0);
    }
    if (sv->pidfd_io.fd >= 0) {
        dc_io_stop(sv->loop, &sv->pidfd_io);
        close(sv->pidfd_io.fd);
    }
    if (sv->loop != NULL) {
        dc_timer_stop(sv->loop, &sv->restart);
        dc_timer_stop(sv->loop, &sv->kill);
    }
    for (size_t i = 0; sv->argv != NULL && sv->argv[i] != NULL; i++) {
        free(sv->argv[i]);
    }
    free(sv->argv);
    free(sv);
}

void supervisor_metrics(void *arg, struct dc_buf *out)
{
    const struct supervisor *sv = arg;
    dc_buf_printf(out,
                  "# HELP derp_relay_up Whether the supervised derp-relay is running.\n"
                  "# TYPE derp_relay_up gauge\nderp_relay_up %d\n"
                  "# HELP derp_relay_restarts_total Restarts of the supervised derp-relay.\n"
                  "# TYPE derp_relay_restarts_total counter\nderp_relay_restarts_total %llu\n",
                  sv->pid > 0 ? 1 : 0, (unsigned long long)sv->restarts);
}
