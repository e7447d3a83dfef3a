/* derp-controller: flags -> sources, map server, controller -> run. */
#include "controller.h"
#include "log.h"
#include "loop.h"
#include "map_server.h"
#include "sig.h"
#include "source_dir.h"
#include "supervisor.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
    const char *relay_bin;
    char **relay_args; /* after "--": passed to derp-relay */
    int nrelay_args;
};

struct ctl_main {
    struct controller *ctl;
    struct supervisor *sv;
    bool is_stopping;
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
        "  --relay                     supervise a local derp-relay; flags that are not the\n"
        "                              controller's pass through to it (--stun-listen,\n"
        "                              --key-file, --tls-cert, ...), as does all after `--';\n"
        "                              --relay-listen ADDR:PORT is the relay's --listen\n"
        "  --relay-bin PATH            the derp-relay to run (default: next to this program)\n"
        "  --verbose                   debug logs (as LOFT_LOG_DERP=true)\n"
        "  --version, --help\n");
}

/* The controller's own flags: name and whether it takes a value. */
static const struct {
    const char *name;
    bool has_value;
} ctl_flags[] = {{"--clusters-dir", true},
                 {"--kubeconfig", true},
                 {"--listen", true},
                 {"--central-endpoint", true},
                 {"--state-dir", true},
                 {"--relay-bin", true},
                 {"--relay", false},
                 {"--verbose", false},
                 {"--version", false},
                 {"--help", false},
                 {"-h", false},
                 {"-v", false}};

/* Returns the index of arg's flag in ctl_flags ("--x" or "--x=v"), or -1. */
static int ctl_flag(const char *arg)
{
    for (size_t i = 0; i < sizeof(ctl_flags) / sizeof(ctl_flags[0]); i++) {
        size_t n = strlen(ctl_flags[i].name);
        if (strncmp(arg, ctl_flags[i].name, n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
            return (int)i;
        }
    }
    return -1;
}

/* Splits argv: the controller's flags stay in argv (compacted, *argc updated),
 * everything else goes to relay[] for derp-relay: flags after "--", unknown
 * flags with their values, and --relay-listen X as the relay's --listen X. */
static int split_relay_flags(int *argc, char **argv, char **relay, int *nrelay)
{
    int out = 1;
    *nrelay = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        int f = ctl_flag(a);
        if (strcmp(a, "--") == 0) {
            while (++i < *argc) {
                relay[(*nrelay)++] = argv[i];
            }
            break;
        }
        if (f >= 0) {
            argv[out++] = argv[i];
            if (ctl_flags[f].has_value && strchr(a, '=') == NULL && i + 1 < *argc) {
                argv[out++] = argv[++i];
            }
        } else if (strncmp(a, "--relay-listen", 14) == 0) {
            relay[(*nrelay)++] = "--listen";
            relay[(*nrelay)++] = a[14] == '=' ? argv[i] + 15 : (i + 1 < *argc ? argv[++i] : "");
        } else if (strncmp(a, "--", 2) == 0) {
            relay[(*nrelay)++] = argv[i];
            if (strchr(a, '=') == NULL && i + 1 < *argc && argv[i + 1][0] != '-') {
                relay[(*nrelay)++] = argv[++i];
            }
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

static int parse_flags(int argc, char **argv, struct ctl_opts *o)
{
    char **relay = calloc((size_t)argc + 2, sizeof(char *));
    if (relay == NULL) {
        return 2;
    }
    int nrelay = 0;
    split_relay_flags(&argc, argv, relay, &nrelay);
    o->relay_args = relay; /* owned by main's lifetime: freed at exit */
    o->nrelay_args = nrelay;
    static const struct option longopts[] = {{"clusters-dir", required_argument, NULL, 'd'},
                                             {"kubeconfig", required_argument, NULL, 'k'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"central-endpoint", required_argument, NULL, 'c'},
                                             {"state-dir", required_argument, NULL, 's'},
                                             {"relay", no_argument, NULL, 'r'},
                                             {"relay-bin", required_argument, NULL, 'b'},
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
        case 'b':
            o->relay_bin = optarg;
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
    if (!o->relay && o->nrelay_args > 0) {
        fprintf(stderr, "derp-controller: unknown flag `%s' (flags for derp-relay need --relay)\n",
                o->relay_args[0]);
        return 2;
    }
    return 0;
}

static void on_clusters(void *arg, const struct cluster_input *clusters, size_t n)
{
    controller_apply(arg, clusters, n);
}

static void stop_loop(struct dc_loop *loop, void *data)
{
    (void)data;
    dc_loop_stop(loop);
}

static void signal_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct ctl_main *m = io->data;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        dc_log(DC_LOG_INFO, "derp", "derp-controller got signal %u: stopping", si.ssi_signo);
        if (m->sv != NULL && !m->is_stopping) {
            m->is_stopping = true;
            supervisor_stop(m->sv, stop_loop, NULL); /* the relay drains first */
        } else {
            dc_loop_stop(loop);
        }
    }
}

static void all_metrics(void *data, struct dc_buf *out)
{
    struct ctl_main *m = data;
    controller_metrics(m->ctl, out);
    if (m->sv != NULL) {
        supervisor_metrics(m->sv, out);
    }
}

/* argv for derp-relay: the binary, then everything after "--". */
static int start_relay(struct dc_loop *loop, const struct ctl_opts *o, struct ctl_main *m)
{
    char self[PATH_MAX];
    char bin[PATH_MAX + 16];
    const char *path = o->relay_bin;
    if (path == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            return -1;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        *slash = '\0';
        snprintf(bin, sizeof(bin), "%s/derp-relay", self);
        path = bin;
    }
    char **argv = calloc((size_t)o->nrelay_args + 2, sizeof(char *));
    if (argv == NULL) {
        return -1;
    }
    argv[0] = (char *)path;
    for (int i = 0; i < o->nrelay_args; i++) {
        argv[i + 1] = o->relay_args[i];
    }
    char err[DC_ERR_LEN];
    int rc = supervisor_start(loop, argv, &m->sv, err);
    free(argv);
    if (rc < 0) {
        dc_log(DC_LOG_ERROR, "derp-super", "%s", err);
        return -1;
    }
    return 0;
}

static int check_mode(const struct ctl_opts *o)
{
    if (o->central_endpoint == NULL) {
        dc_log(DC_LOG_ERROR, "derp", "--central-endpoint HOST[:PORT] is required (region 900)");
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
    struct ctl_main m = {0};
    struct dc_io sig = {.fd = -1, .data = &m};
    struct map_server *ms = NULL;
    struct controller *ctl = NULL;
    struct source_dir *sd = NULL;
    if (loop == NULL || check_mode(o) < 0 || dc_signals_start(loop, &sig, signal_cb, &m) < 0) {
        goto out;
    }
    if (o->relay && start_relay(loop, o, &m) < 0) {
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
    m.ctl = ctl;
    map_server_set_metrics(ms, all_metrics, &m);
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
    if (m.sv != NULL && !m.is_stopping && loop != NULL) {
        m.is_stopping = true; /* a start-up failure: do not leave the relay behind */
        supervisor_stop(m.sv, stop_loop, NULL);
        if (dc_loop_run(loop) < 0) {
            status = 1;
        }
    }
    supervisor_free(m.sv);
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
    rc = run(&o);
    free(o.relay_args);
    return rc;
}
