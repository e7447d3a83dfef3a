/* derp-controller: flags -> sources, map server, controller -> run. */
#include "controller.h"
#include "log.h"
#include "loop.h"
#include "map_server.h"
#include "source_dir.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define CONTROLLER_VERSION "0.1.0"

struct ctl_opts {
    const char *clusters_dir;
    const char *kubeconfig;
    const char *listen;
    const char *central_endpoint;
    const char *state_dir;
    bool relay;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: derp-controller [flags]\n"
        "  --clusters-dir DIR          Clusters from *.yaml/*.yml files in DIR (inotify)\n"
        "  --kubeconfig PATH           Clusters from the Kubernetes API (not in this build yet)\n"
        "                              (neither: in-cluster config, not in this build yet)\n"
        "  --listen ADDR:PORT          serve /derpmap, /healthz, /readyz, /metrics (default "
        ":8080)\n"
        "  --central-endpoint HOST[:PORT]  the central relay: region 900 (required)\n"
        "  --state-dir DIR             persist region IDs in DIR/region-ids.json\n"
        "  --relay                     supervise a local derp-relay (not in this build yet)\n"
        "  --verbose                   debug logs (as LOFT_LOG_DERP=true)\n"
        "  --version, --help\n");
}

static int parse_flags(int argc, char **argv, struct ctl_opts *o)
{
    static const struct option longopts[] = {{"clusters-dir", required_argument, NULL, 'd'},
                                             {"kubeconfig", required_argument, NULL, 'k'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"central-endpoint", required_argument, NULL, 'c'},
                                             {"state-dir", required_argument, NULL, 's'},
                                             {"relay", no_argument, NULL, 'r'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->clusters_dir = optarg;
            break;
        case 'k':
            o->kubeconfig = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'c':
            o->central_endpoint = optarg;
            break;
        case 's':
            o->state_dir = optarg;
            break;
        case 'r':
            o->relay = true;
            break;
        case 'v':
            dc_log_set_debug(true);
            break;
        case 'V':
            printf("derp-controller " CONTROLLER_VERSION "\n");
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "derp-controller: unexpected argument `%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

static void on_clusters(void *arg, const struct cluster_input *clusters, size_t n)
{
    controller_apply(arg, clusters, n);
}

static void signal_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        dc_log(DC_LOG_INFO, "derp", "derp-controller got signal %u: stopping", si.ssi_signo);
        dc_loop_stop(loop);
    }
}

static int setup_signals(struct dc_loop *loop, struct dc_io *io)
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
    io->cb = signal_cb;
    return dc_io_start(loop, io, DC_IO_READ);
}

static int check_mode(const struct ctl_opts *o)
{
    if (o->central_endpoint == NULL) {
        dc_log(DC_LOG_ERROR, "derp", "--central-endpoint HOST[:PORT] is required (region 900)");
        return -1;
    }
    if (o->relay) {
        dc_log(DC_LOG_ERROR, "derp",
               "--relay: supervising derp-relay is not in this build yet; "
               "run derp-relay beside the controller");
        return -1;
    }
    if (o->clusters_dir == NULL) {
        dc_log(DC_LOG_ERROR, "derp",
               "%s: Kubernetes mode is not in this build yet; use --clusters-dir DIR",
               o->kubeconfig != NULL ? "--kubeconfig" : "in-cluster config");
        return -1;
    }
    return 0;
}

static int run(const struct ctl_opts *o)
{
    int status = 1;
    char err[DC_ERR_LEN];
    struct dc_loop *loop = dc_loop_new();
    struct dc_io sig = {.fd = -1};
    struct map_server *ms = NULL;
    struct controller *ctl = NULL;
    struct source_dir *sd = NULL;
    if (loop == NULL || check_mode(o) < 0 || setup_signals(loop, &sig) < 0) {
        goto out;
    }
    if (map_server_start(loop, o->listen, &ms, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "--listen: %s", err);
        goto out;
    }
    struct controller_opts copts = {
        .central_endpoint = o->central_endpoint, .state_dir = o->state_dir, .server = ms};
    if (controller_new(&copts, &ctl, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "%s", err);
        goto out;
    }
    map_server_set_metrics(ms, controller_metrics, ctl);
    if (source_dir_start(loop, o->clusters_dir, on_clusters, ctl, &sd, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "%s", err);
        goto out;
    }
    dc_log(DC_LOG_INFO, "derp",
           "derp-controller %s serving the DERP map on %s (port %u) from %s, central %s",
           CONTROLLER_VERSION, o->listen, map_server_port(ms), o->clusters_dir,
           o->central_endpoint);
    if (dc_loop_run(loop) == 0) {
        status = 0;
    }
out:
    source_dir_free(sd);
    map_server_free(ms);
    controller_free(ctl);
    if (sig.fd >= 0) {
        dc_io_stop(loop, &sig);
        close(sig.fd);
    }
    dc_loop_free(loop);
    return status;
}

int main(int argc, char **argv)
{
    struct ctl_opts o = {.listen = ":8080"};
    dc_log_init();
    int rc = parse_flags(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "derp-controller: libsodium init failed\n");
        return 1;
    }
    return run(&o);
}
