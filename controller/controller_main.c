/* derp-controller: flags -> sources, map server, controller -> run. */
#include "controller.h"
#include "kube_mode.h"
#include "log.h"
#include "loop.h"
#include "map_server.h"
#include "relay_probes.h"
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
    const char *context;
    const char *namespace_;
    const char *lease_name;
    const char *configmap_name;
    const char *mesh_service;
    const char *mesh_port_name;
    const char *mesh_peers_file;
    uint32_t probe_interval_ms; /* 0: probes off */
    uint32_t probe_timeout_ms;
    bool probe_plain_http;
    bool no_cert_pins;
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
    struct kube_mode *km;    /* Kubernetes mode, or NULL */
    struct source_dir *sd;   /* directory mode, or NULL */
    struct relay_probes *rp; /* or NULL with --probe-interval 0 */
    bool is_stopping;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: derp-controller [flags]\n"
            "  --clusters-dir DIR          Clusters from *.yaml/*.yml files in DIR (inotify)\n"
            "  --kubeconfig PATH           Clusters from the Kubernetes API with this kubeconfig\n"
            "                              (neither flag: in-cluster config, the pod's service\n"
            "                              account)\n"
            "  --context NAME              kubeconfig context (default: current-context)\n"
            "  --namespace NS              where the Lease and the region-ID ConfigMap live\n"
            "                              (default: $POD_NAMESPACE, else vcluster-platform)\n"
            "  --lease-name NAME           leader-election Lease (default derp-controller);\n"
            "                              identity: $POD_NAME, else the host name\n"
            "  --region-ids-configmap NAME ConfigMap holding region IDs (default\n"
            "                              derp-controller-region-ids)\n"
            "  --mesh-service NAME         mesh the relay with the other replicas behind Service\n"
            "                              NAME, found from its EndpointSlices (needs --relay,\n"
            "                              --mesh-key-file and --mesh-peers-file)\n"
            "  --mesh-port-name NAME       the EndpointSlice port of the relay (default derp)\n"
            "  --mesh-peers-file PATH      file of peer URLs kept up to date for the relay\n"
            "                              (passed to derp-relay, which follows it)\n"
            "  --listen ADDR:PORT          serve /derpmap, /healthz, /readyz, /metrics (default "
            ":8080)\n"
            "  --central-endpoint HOST[:PORT]  the central relay: region 900 (required)\n"
            "  --state-dir DIR             persist region IDs in DIR/region-ids.json (outside\n"
            "                              Kubernetes; inside, they persist in the ConfigMap)\n"
            "  --relay                     supervise a local derp-relay; flags that are not the\n"
            "                              controller's pass through to it (--stun-listen,\n"
            "                              --key-file, --tls-cert, ...), as does all after `--';\n"
            "                              --relay-listen ADDR:PORT is the relay's --listen\n"
            "  --relay-bin PATH            the derp-relay to run (default: next to this program)\n"
            "  --probe-interval DURATION   probe every Cluster's relay with a real packet this\n"
            "                              often (default 30s; 0 turns probes off); results in\n"
            "                              /metrics, logs and Events\n"
            "  --probe-timeout DURATION    limit of one probe (default 5s)\n"
            "  --probe-plain-http          probe relays over http:// instead of https://\n"
            "  --no-cert-pins              keep InsecureForTests for insecure endpoints instead\n"
            "                              of publishing the certificate pin the relay presents\n"
            "                              (CertName sha256-raw:..., trust on first use)\n"
            "  --verbose                   debug logs (as LOFT_LOG_DERP=true)\n"
            "  --version, --help\n");
}

/* The controller's own flags: getopt reads them, and split_relay_flags()
 * keeps them from derp-relay; every other flag goes to the relay. */
static const struct option ctl_longopts[] = {{"clusters-dir", required_argument, NULL, 'd'},
                                             {"kubeconfig", required_argument, NULL, 'k'},
                                             {"context", required_argument, NULL, 'C'},
                                             {"namespace", required_argument, NULL, 'n'},
                                             {"lease-name", required_argument, NULL, 'L'},
                                             {"region-ids-configmap", required_argument, NULL, 'M'},
                                             {"mesh-service", required_argument, NULL, 'S'},
                                             {"mesh-port-name", required_argument, NULL, 'P'},
                                             {"mesh-peers-file", required_argument, NULL, 'F'},
                                             {"probe-interval", required_argument, NULL, 'I'},
                                             {"probe-timeout", required_argument, NULL, 'T'},
                                             {"probe-plain-http", no_argument, NULL, 'H'},
                                             {"no-cert-pins", no_argument, NULL, 'N'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"central-endpoint", required_argument, NULL, 'c'},
                                             {"state-dir", required_argument, NULL, 's'},
                                             {"relay", no_argument, NULL, 'r'},
                                             {"relay-bin", required_argument, NULL, 'b'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"version", no_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};

/* Reports whether arg is one of the controller's flags ("--x", "--x=v", -h,
 * -v); *has_value tells whether it takes the next argument as its value. */
static bool ctl_flag(const char *arg, bool *has_value)
{
    *has_value = false;
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "-v") == 0) {
        return true;
    }
    if (strncmp(arg, "--", 2) != 0) {
        return false;
    }
    for (const struct option *o = ctl_longopts; o->name != NULL; o++) {
        size_t n = strlen(o->name);
        if (strncmp(arg + 2, o->name, n) == 0 && (arg[2 + n] == '\0' || arg[2 + n] == '=')) {
            *has_value = o->has_arg == required_argument && arg[2 + n] == '\0';
            return true;
        }
    }
    return false;
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
        bool has_value;
        bool is_ours = ctl_flag(a, &has_value);
        if (strcmp(a, "--") == 0) {
            while (++i < *argc) {
                relay[(*nrelay)++] = argv[i];
            }
            break;
        }
        if (is_ours) {
            argv[out++] = argv[i];
            if (has_value && i + 1 < *argc) {
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

/* "30", "30s", "500ms", "2m" -> milliseconds (at most a day). */
static int parse_duration_ms(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 9; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    const char *unit = s + i;
    if (i == 0) {
        return -1;
    }
    if (strcmp(unit, "ms") == 0) {
        /* as is */
    } else if (unit[0] == '\0' || strcmp(unit, "s") == 0) {
        v *= 1000;
    } else if (strcmp(unit, "m") == 0) {
        v *= 60000;
    } else {
        return -1;
    }
    if (v > 86400000u) {
        return -1;
    }
    *out = (uint32_t)v;
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
    int ch;
    while ((ch = getopt_long(argc, argv, "hv", ctl_longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->clusters_dir = optarg;
            break;
        case 'k':
            o->kubeconfig = optarg;
            break;
        case 'C':
            o->context = optarg;
            break;
        case 'n':
            o->namespace_ = optarg;
            break;
        case 'L':
            o->lease_name = optarg;
            break;
        case 'M':
            o->configmap_name = optarg;
            break;
        case 'S':
            o->mesh_service = optarg;
            break;
        case 'P':
            o->mesh_port_name = optarg;
            break;
        case 'F':
            o->mesh_peers_file = optarg;
            break;
        case 'I':
        case 'T':
            if (parse_duration_ms(optarg,
                                  ch == 'I' ? &o->probe_interval_ms : &o->probe_timeout_ms) < 0) {
                fprintf(stderr,
                        "derp-controller: --probe-%s: bad duration `%s' (e.g. 30s, 500ms)\n",
                        ch == 'I' ? "interval" : "timeout", optarg);
                return 2;
            }
            break;
        case 'H':
            o->probe_plain_http = true;
            break;
        case 'N':
            o->no_cert_pins = true;
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

static void on_targets(void *arg, const struct relay_target *t, size_t n)
{
    struct ctl_main *m = arg;
    if (m->rp != NULL) {
        relay_probes_set_targets(m->rp, t, n);
    }
}

static void on_probe_state(void *arg, const char *name, const char *uid, bool up, const char *why)
{
    struct ctl_main *m = arg;
    if (m->km != NULL) {
        kube_mode_relay_event(m->km, name, uid, up, why);
    }
}

static void on_pin(void *arg, const char *name, const char *pin)
{
    struct ctl_main *m = arg;
    int rc = controller_set_pin(m->ctl, name, pin);
    if (rc > 0 && m->km != NULL) {
        kube_mode_resync(m->km);
    } else if (rc > 0 && m->sd != NULL) {
        source_dir_rescan(m->sd);
    }
}

static int start_probes(struct dc_loop *loop, const struct ctl_opts *o, struct ctl_main *m)
{
    if (o->probe_interval_ms == 0) {
        return 0;
    }
    char err[DC_ERR_LEN];
    struct relay_probes_opts po = {.loop = loop,
                                   .interval_ms = o->probe_interval_ms,
                                   .timeout_ms = o->probe_timeout_ms,
                                   .is_plain_http = o->probe_plain_http,
                                   .is_pinning = !o->no_cert_pins,
                                   .on_state = on_probe_state,
                                   .on_pin = on_pin,
                                   .arg = m};
    if (relay_probes_new(&po, &m->rp, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "relay probes: %s", err);
        return -1;
    }
    controller_set_targets_cb(m->ctl, on_targets, m);
    return 0;
}

static void stop_loop(struct dc_loop *loop, void *data)
{
    (void)data;
    dc_loop_stop(loop);
}

/* After the Lease is given up: the relay drains, then the loop ends. */
static void stop_relay_then_loop(struct dc_loop *loop, void *data)
{
    struct ctl_main *m = data;
    if (m->sv != NULL) {
        supervisor_stop(m->sv, stop_loop, NULL);
    } else {
        dc_loop_stop(loop);
    }
}

static void signal_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct ctl_main *m = io->data;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        dc_log(DC_LOG_INFO, "derp", "derp-controller got signal %u: stopping", si.ssi_signo);
        if (m->is_stopping) {
            dc_loop_stop(loop); /* a second signal: stop now */
            continue;
        }
        m->is_stopping = true;
        if (m->km != NULL) {
            kube_mode_shutdown(m->km, stop_relay_then_loop, m); /* hand the Lease over */
        } else {
            stop_relay_then_loop(loop, m);
        }
    }
}

static void all_metrics(void *data, struct dc_buf *out)
{
    struct ctl_main *m = data;
    controller_metrics(m->ctl, out);
    if (m->km != NULL) {
        kube_mode_metrics(m->km, out);
    }
    if (m->rp != NULL) {
        relay_probes_metrics(m->rp, out);
    }
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
    char **argv = calloc((size_t)o->nrelay_args + 4, sizeof(char *));
    if (argv == NULL) {
        return -1;
    }
    int n = 0;
    argv[n++] = (char *)path;
    for (int i = 0; i < o->nrelay_args; i++) {
        argv[n++] = o->relay_args[i];
    }
    if (o->mesh_peers_file != NULL) { /* the relay follows the file this controller writes */
        argv[n++] = "--mesh-peers-file";
        argv[n++] = (char *)o->mesh_peers_file;
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
    if (o->mesh_service != NULL && (o->mesh_peers_file == NULL || o->clusters_dir != NULL)) {
        dc_log(DC_LOG_ERROR, "derp",
               "--mesh-service needs --mesh-peers-file PATH and Kubernetes mode");
        return -1;
    }
    if (o->clusters_dir != NULL && o->kubeconfig != NULL) {
        dc_log(DC_LOG_ERROR, "derp", "--clusters-dir and --kubeconfig exclude each other");
        return -1;
    }
    return 0;
}

static int start_kube(struct dc_loop *loop, const struct ctl_opts *o, struct map_server *ms,
                      struct ctl_main *m)
{
    char err[DC_ERR_LEN];
    struct kube_mode_opts ko = {.loop = loop,
                                .server = ms,
                                .kubeconfig = o->kubeconfig,
                                .context = o->context,
                                .namespace_ = o->namespace_,
                                .lease_name = o->lease_name,
                                .configmap_name = o->configmap_name,
                                .mesh_service = o->mesh_service,
                                .mesh_port_name = o->mesh_port_name,
                                .mesh_peers_file = o->mesh_peers_file,
                                .central_endpoint = o->central_endpoint};
    if (o->state_dir != NULL) {
        dc_log(DC_LOG_WARN, "derp",
               "--state-dir is not used in Kubernetes mode: region IDs persist in a ConfigMap");
    }
    if (kube_mode_start(&ko, &m->km, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "%s", err);
        return -1;
    }
    m->ctl = kube_mode_controller(m->km);
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
    if (o->clusters_dir == NULL) {
        if (start_kube(loop, o, ms, &m) < 0 || start_probes(loop, o, &m) < 0) {
            goto out;
        }
    } else {
        struct controller_opts copts = {
            .central_endpoint = o->central_endpoint, .state_dir = o->state_dir, .server = ms};
        if (controller_new(&copts, &ctl, err) < 0) {
            dc_log(DC_LOG_ERROR, "derp", "%s", err);
            goto out;
        }
        m.ctl = ctl;
        if (start_probes(loop, o, &m) < 0) {
            goto out;
        }
        if (source_dir_start(loop, o->clusters_dir, on_clusters, ctl, &sd, err) < 0) {
            dc_log(DC_LOG_ERROR, "derp", "%s", err);
            goto out;
        }
        m.sd = sd;
    }
    map_server_set_metrics(ms, all_metrics, &m);
    dc_log(DC_LOG_INFO, "derp",
           "derp-controller %s serving the DERP map on %s (port %u) from %s, central %s",
           CONTROLLER_VERSION, o->listen, map_server_port(ms),
           m.km != NULL ? kube_mode_describe(m.km) : o->clusters_dir, o->central_endpoint);
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
    relay_probes_free(m.rp); /* before the controller whose targets it probes */
    kube_mode_free(m.km);
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
    struct ctl_opts o = {.listen = ":8080",
                         .probe_interval_ms = RELAY_PROBES_DEFAULT_INTERVAL_MS,
                         .probe_timeout_ms = RELAY_PROBES_DEFAULT_TIMEOUT_MS};
    dc_log_init();
    int rc = parse_flags(argc, argv, &o);
    if (rc != 0) {
        free(o.relay_args);
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
