/* derp-relay: flags -> config -> run. No logic beyond wiring. */
#include "buf.h"
#include "derp_admit.h"
#include "derp_client.h"
#include "derp_filewatch.h"
#include "derp_key.h"
#include "derp_server.h"
#include "log.h"
#include "loop.h"
#include "sig.h"
#include "stun_server.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define RELAY_VERSION "0.1.0"
/* Largest --mesh-peers-file read (bytes): DERP_MESH_MAX_PEERS lines of
 * DERP_MESH_URL_MAX, with room for comments. */
#define RELAY_PEERS_FILE_MAX (256u * 1024u)

struct relay_opts {
    const char *listen;
    const char *tls_cert;
    const char *tls_key;
    const char *self_signed;
    const char *stun_listen;
    const char *key_file;
    const char *mesh_key_file;
    const char *mesh_with;
    const char *mesh_peers_file;
    const char *hostname;
    bool mesh_insecure;
    unsigned drain_ms;
    unsigned max_conns;
    unsigned max_conns_per_ip;
    const char *verify_url;
    bool verify_fail_open;
    const char *allowed_keys_file;
    uint64_t client_rate;
    uint64_t client_burst;
    double accept_limit;
    uint64_t accept_burst;
};

struct relay {
    struct dc_loop *loop;
    struct derp_server *server;
    struct stun_server stun;
    bool has_stun;
    struct dc_io sig_io;
    struct dc_io hup_io; /* SIGHUP: reload certificate and allowed keys */
    const struct relay_opts *opts;
    struct dc_tls_server *tls; /* borrowed from run() */
    struct derp_admit *admit;  /* owned by run() */
    struct derp_filewatch tls_watch;
    struct derp_filewatch peers_watch; /* --mesh-peers-file's directory */
    char *peers_text;                  /* owned: the peers file as last applied, NULL: none */
    size_t peers_len;                  /* bytes of peers_text */
    bool is_peers_missing;             /* the peers file was missing at the last read */
    uint64_t tls_reloads_ok, tls_reloads_failed;
    int exit_code;
};

static void usage(FILE *f)
{
    fprintf(
        f, "usage: derp-relay [flags]\n"
           "  --listen ADDR:PORT        HTTP(S) listen address (default :3340)\n"
           "  --tls-cert PATH           certificate chain (PEM); with --tls-key turns on TLS\n"
           "  --tls-key PATH            private key (PEM)\n"
           "  --self-signed HOSTNAME    make a self-signed certificate and log its sha256-raw pin\n"
           "  --stun-listen ADDR:PORT|off  STUN UDP address (default :3478)\n"
           "  --key-file PATH           node key in derper's format; created 0600 if missing\n"
           "  --mesh-key-file PATH      shared mesh key (64 lowercase hex)\n"
           "  --mesh-with URL[,URL]     other relays of the region to mesh with (a bare host\n"
           "                            means https://HOST/derp; this relay's own URL is skipped)\n"
           "  --mesh-peers-file PATH    more mesh peers, one URL per line as in --mesh-with\n"
           "                            (# comments; bad lines logged and skipped); re-read\n"
           "                            when it changes, peers added and removed live; a\n"
           "                            missing file is an empty list. Needs --mesh-key-file\n"
           "  --hostname NAME           this relay's public name (skipped in --mesh-with)\n"
           "  --mesh-insecure           do not verify mesh peers' TLS certificates\n"
           "  --drain-ms MS             after SIGTERM, relay on this long (default 2000)\n"
           "  --max-connections N       close new connections at once past N open ones\n"
           "                            (default unlimited; --max-conns is the same)\n"
           "  --max-connections-per-ip N  the same per source address (default unlimited)\n"
           "  --accept-connection-limit R  new connections per second, a token bucket as\n"
           "                            derper's (default unlimited); over it a connection\n"
           "                            is closed right after accept\n"
           "  --accept-connection-burst N  that bucket's size (default unlimited, as derper's:\n"
           "                            the limit only binds with a burst set)\n"
           "  --per-client-rate BYTES   bytes per second read from each client (mesh peers\n"
           "                            exempt), advertised in ServerInfo; reading slows down\n"
           "                            past it, nothing is dropped (default unlimited)\n"
           "  --per-client-burst BYTES  that bucket's size; at least one largest frame,\n"
           "                            65573 (the default)\n"
           "  --verify-client-url URL   admission controller: POST {\"NodePublic\",\"Source\"},\n"
           "                            expects {\"Allow\":bool}; answers cached 30 s per key\n"
           "  --verify-client-url-fail-open[=true|false]  admit clients when that URL is\n"
           "                            unreachable (default true, as derper)\n"
           "  --allowed-keys-file PATH  only these keys may log in (nodekey:<hex> per line,\n"
           "                            # comments); re-read when it changes and on SIGHUP\n"
           "  --verbose                 per-connection debug logs (as LOFT_LOG_DERP=true)\n"
           "  --version, --help\n");
}

static int parse_uint(const char *flag, const char *s, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v > 0x7fffffffUL || s[0] == '-') {
        fprintf(stderr, "derp-relay: %s: want a number: `%s'\n", flag, s);
        return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || s[0] == '-') {
        fprintf(stderr, "derp-relay: %s: want a number: `%s'\n", flag, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* A positive rate; "inf" (derper's default) means unlimited and gives 0. */
static int parse_rate(const char *flag, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || isnan(v) || v <= 0) {
        fprintf(stderr, "derp-relay: %s: want a positive number: `%s'\n", flag, s);
        return -EINVAL;
    }
    *out = isinf(v) ? 0 : v;
    return 0;
}

static int parse_bool(const char *flag, const char *s, bool *out)
{
    if (s == NULL || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
    } else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
    } else {
        fprintf(stderr, "derp-relay: %s: want true or false: `%s'\n", flag, s);
        return -EINVAL;
    }
    return 0;
}

/* Flags of the limits (issue 8); returns 0, 2 on a bad value, -1 if not ours. */
static int parse_limit_flag(int ch, struct relay_opts *o)
{
    int rc = 0;
    switch (ch) {
    case 'm':
        rc = parse_uint("--max-connections", optarg, &o->max_conns);
        break;
    case 'P':
        rc = parse_uint("--max-connections-per-ip", optarg, &o->max_conns_per_ip);
        break;
    case 'A':
        rc = parse_rate("--accept-connection-limit", optarg, &o->accept_limit);
        break;
    case 'B':
        rc = parse_u64("--accept-connection-burst", optarg, &o->accept_burst);
        if (rc == 0 && o->accept_burst == 0) {
            fprintf(stderr, "derp-relay: --accept-connection-burst: want at least 1\n");
            rc = -EINVAL;
        }
        break;
    case 'R':
        rc = parse_u64("--per-client-rate", optarg, &o->client_rate);
        break;
    case 'b':
        rc = parse_u64("--per-client-burst", optarg, &o->client_burst);
        break;
    case 'U':
        o->verify_url = optarg;
        break;
    case 'F':
        rc = parse_bool("--verify-client-url-fail-open", optarg, &o->verify_fail_open);
        break;
    case 'a':
        o->allowed_keys_file = optarg;
        break;
    default:
        return -1;
    }
    return rc < 0 ? 2 : 0;
}

static int parse_flags(int argc, char **argv, struct relay_opts *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"self-signed", required_argument, NULL, 's'},
        {"stun-listen", required_argument, NULL, 'u'},
        {"key-file", required_argument, NULL, 'K'},
        {"mesh-key-file", required_argument, NULL, 'M'},
        {"mesh-with", required_argument, NULL, 'W'},
        {"mesh-peers-file", required_argument, NULL, 'f'},
        {"drain-ms", required_argument, NULL, 'd'},
        {"hostname", required_argument, NULL, 'H'},
        {"mesh-insecure", no_argument, NULL, 'I'},
        {"max-conns", required_argument, NULL, 'm'},
        {"max-connections", required_argument, NULL, 'm'},
        {"max-connections-per-ip", required_argument, NULL, 'P'},
        {"accept-connection-limit", required_argument, NULL, 'A'},
        {"accept-connection-burst", required_argument, NULL, 'B'},
        {"per-client-rate", required_argument, NULL, 'R'},
        {"per-client-burst", required_argument, NULL, 'b'},
        {"verify-client-url", required_argument, NULL, 'U'},
        {"verify-client-url-fail-open", optional_argument, NULL, 'F'},
        {"allowed-keys-file", required_argument, NULL, 'a'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "hv", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            o->listen = optarg;
            break;
        case 'c':
            o->tls_cert = optarg;
            break;
        case 'k':
            o->tls_key = optarg;
            break;
        case 's':
            o->self_signed = optarg;
            break;
        case 'u':
            o->stun_listen = optarg;
            break;
        case 'K':
            o->key_file = optarg;
            break;
        case 'M':
            o->mesh_key_file = optarg;
            break;
        case 'W':
            o->mesh_with = optarg;
            break;
        case 'f':
            o->mesh_peers_file = optarg;
            break;
        case 'H':
            o->hostname = optarg;
            break;
        case 'I':
            o->mesh_insecure = true;
            break;
        case 'd':
            if (parse_uint("--drain-ms", optarg, &o->drain_ms) < 0) {
                return 2;
            }
            break;
        case 'v':
            dc_log_set_debug(true);
            break;
        case 'V':
            printf("derp-relay " RELAY_VERSION " (DERP protocol %d)\n", DERP_PROTOCOL_VERSION);
            return 1;
        case 'h':
            usage(stdout);
            return 1;
        default: {
            int rc = parse_limit_flag(ch, o);
            if (rc >= 0) {
                if (rc != 0) {
                    return rc;
                }
                break;
            }
            usage(stderr);
            return 2;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "derp-relay: unexpected argument `%s'\n", argv[optind]);
        return 2;
    }
    if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
        fprintf(stderr, "derp-relay: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (o->tls_cert != NULL && o->self_signed != NULL) {
        fprintf(stderr, "derp-relay: --self-signed and --tls-cert exclude each other\n");
        return 2;
    }
    return 0;
}

static int load_key(const struct relay_opts *o, struct derp_keypair *key)
{
    char err[DC_ERR_LEN];
    if (o->key_file == NULL) {
        derp_keypair_generate(key);
        dc_log(DC_LOG_WARN, "derp", "no --key-file: using a fresh key that dies with the process");
        return 0;
    }
    int created = 0;
    if (derp_key_file_load_or_create(o->key_file, key, &created, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "%s", err);
        return -1;
    }
    if (created) {
        dc_log(DC_LOG_INFO, "derp", "created key file %s (mode 0600)", o->key_file);
    }
    return 0;
}

static int load_mesh_key(const char *path, struct derp_server_config *cfg)
{
    char err[DC_ERR_LEN];
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dc_log(DC_LOG_ERROR, "derp", "mesh key file `%s': %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0 || (size_t)n == sizeof(buf) ||
        derp_mesh_key_parse(buf, (size_t)n, cfg->mesh_key, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "mesh key file `%s': %s", path,
               n < 0                      ? strerror(errno)
               : (size_t)n == sizeof(buf) ? "file too long"
                                          : err);
        sodium_memzero(buf, sizeof(buf));
        return -1;
    }
    sodium_memzero(buf, sizeof(buf));
    cfg->has_mesh_key = true;
    return 0;
}

static struct dc_tls_server *make_tls(const struct relay_opts *o, const struct derp_keypair *key)
{
    struct dc_tls_server *tls = NULL;
    char err[DC_ERR_LEN];
    int rc;
    if (o->self_signed != NULL) {
        rc = dc_tls_server_new_self_signed(o->self_signed, &tls, err);
    } else {
        rc = dc_tls_server_new_files(o->tls_cert, o->tls_key, &tls, err);
    }
    if (rc < 0) {
        dc_log(DC_LOG_ERROR, "derp", "tls: %s", err);
        return NULL;
    }
    if (dc_tls_server_add_meta_cert(tls, key->pub, DERP_PROTOCOL_VERSION, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "tls: meta certificate: %s", err);
        dc_tls_server_free(tls);
        return NULL;
    }
    char pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(tls, pin);
    if (o->self_signed != NULL) {
        dc_log(DC_LOG_INFO, "derp", "self-signed certificate for %s: CertName %s", o->self_signed,
               pin);
    } else {
        dc_log(DC_LOG_INFO, "derp", "TLS certificate %s: %s", o->tls_cert, pin);
    }
    return tls;
}

static void stun_metrics(void *data, struct dc_buf *out)
{
    const struct relay *r = data;
    if (r->tls != NULL && r->opts->tls_cert != NULL) {
        dc_buf_printf(out,
                      "# HELP derp_tls_reloads_total Certificate reloads (file change, SIGHUP).\n"
                      "# TYPE derp_tls_reloads_total counter\n"
                      "derp_tls_reloads_total{result=\"ok\"} %llu\n"
                      "derp_tls_reloads_total{result=\"error\"} %llu\n",
                      (unsigned long long)r->tls_reloads_ok,
                      (unsigned long long)r->tls_reloads_failed);
    }
    if (!r->has_stun) {
        return;
    }
    dc_buf_printf(out,
                  "# HELP derp_stun_requests_total STUN binding requests answered.\n"
                  "# TYPE derp_stun_requests_total counter\nderp_stun_requests_total %llu\n"
                  "# HELP derp_stun_ignored_total UDP datagrams that were not binding requests.\n"
                  "# TYPE derp_stun_ignored_total counter\nderp_stun_ignored_total %llu\n",
                  (unsigned long long)r->stun.requests, (unsigned long long)r->stun.ignored);
}

/* Re-reads --tls-cert/--tls-key into the live server context; a bad pair is
 * logged and the old one kept. */
static void tls_reload(struct relay *r, const char *why)
{
    char err[DC_ERR_LEN], before[DC_TLS_PIN_LEN], after[DC_TLS_PIN_LEN];
    if (r->tls == NULL || r->opts->tls_cert == NULL) {
        return;
    }
    dc_tls_server_pin(r->tls, before);
    if (dc_tls_server_reload_files(r->tls, r->opts->tls_cert, r->opts->tls_key, err) < 0) {
        r->tls_reloads_failed++;
        dc_log(DC_LOG_WARN, "derp", "TLS reload (%s) failed, keeping the old certificate: %s", why,
               err);
        return;
    }
    r->tls_reloads_ok++;
    dc_tls_server_pin(r->tls, after);
    bool changed = strcmp(before, after) != 0;
    dc_log(changed ? DC_LOG_INFO : DC_LOG_DEBUG, "derp", "TLS certificate %s reloaded (%s): %s%s",
           r->opts->tls_cert, why, after, changed ? "" : " (unchanged)");
}

static void tls_files_changed(void *data)
{
    tls_reload(data, "files changed");
}

static void peers_bad_line(void *data, unsigned line_no, const char *err)
{
    dc_log(DC_LOG_WARN, "derp-mesh", "mesh peers file `%s' line %u: %s; skipping the line",
           (const char *)data, line_no, err);
}

/* Reads path whole into *text (malloc'd, NUL-terminated, *len bytes).
 * Returns 0 or negative errno (-ENOENT: missing, -EMSGSIZE: too long). */
static int peers_read(const char *path, char **text, size_t *len)
{
    int rc = 0;
    size_t n = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    buf = malloc(RELAY_PEERS_FILE_MAX + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t k = read(fd, buf + n, RELAY_PEERS_FILE_MAX + 1 - n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            rc = -errno;
            goto out;
        }
        if (k == 0) {
            break;
        }
        n += (size_t)k;
        if (n > RELAY_PEERS_FILE_MAX) {
            rc = -EMSGSIZE;
            goto out;
        }
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Re-reads --mesh-peers-file and, when its text changed, hands the mesh the
 * new list. A missing file is an empty list; an unreadable one keeps the
 * current peers. */
static void peers_reload(struct relay *r, const char *why)
{
    const char *path = r->opts->mesh_peers_file;
    char *text = NULL, *work = NULL;
    const char **urls = NULL;
    size_t len = 0;
    if (path == NULL || r->server == NULL) {
        return;
    }
    int rc = peers_read(path, &text, &len);
    if (rc == -ENOENT) {
        if (!r->is_peers_missing) {
            dc_log(DC_LOG_INFO, "derp-mesh",
                   "mesh peers file `%s' does not exist: no peers from it until it appears", path);
        }
        r->is_peers_missing = true;
        text = strdup("");
        rc = text == NULL ? -ENOMEM : 0;
    } else if (rc == 0) {
        r->is_peers_missing = false;
    }
    if (rc < 0) {
        dc_log(DC_LOG_WARN, "derp-mesh", "mesh peers file `%s' (%s): %s; keeping the current peers",
               path, why, dc_strerror(rc));
        goto out;
    }
    if (r->peers_text != NULL && r->peers_len == len && memcmp(r->peers_text, text, len) == 0) {
        goto out; /* another file of the directory changed, or the same text again */
    }
    work = malloc(len + 1);
    urls = calloc(DERP_MESH_MAX_PEERS, sizeof(*urls));
    if (work == NULL || urls == NULL) {
        dc_log(DC_LOG_WARN, "derp-mesh", "mesh peers file `%s': out of memory", path);
        goto out;
    }
    memcpy(work, text, len + 1);
    size_t n =
        derp_mesh_peers_parse(work, len, urls, DERP_MESH_MAX_PEERS, peers_bad_line, (void *)path);
    char err[DC_ERR_LEN];
    if (derp_server_set_mesh_peers(r->server, urls, n, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "mesh peers file `%s': %s", path, err);
        goto out;
    }
    dc_log(DC_LOG_INFO, "derp-mesh", "mesh peers file `%s' read (%s): %zu peers", path, why, n);
    free(r->peers_text);
    r->peers_text = text;
    r->peers_len = len;
    text = NULL;
out:
    free(urls);
    free(work);
    free(text);
}

static void peers_file_changed(void *data)
{
    peers_reload(data, "file changed");
}

/* Follows --mesh-peers-file: watch its directory first, so no change
 * between the first read and the watch is missed. */
static int peers_start(struct relay *r)
{
    char err[DC_ERR_LEN];
    const char *path = r->opts->mesh_peers_file;
    if (path == NULL) {
        return 0;
    }
    if (derp_filewatch_start(&r->peers_watch, r->loop, &path, 1, peers_file_changed, r, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "--mesh-peers-file: %s", err);
        return -1;
    }
    peers_reload(r, "start");
    return 0;
}

static void hup_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    struct relay *r = io->data;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        dc_log(DC_LOG_INFO, "derp",
               "got SIGHUP: reloading certificate, allowed keys and mesh peers file");
        tls_reload(r, "SIGHUP");
        peers_reload(r, "SIGHUP");
        if (r->admit != NULL) {
            derp_admit_reload(r->admit);
        }
    }
}

/* SIGHUP through its own signalfd (common/sig handles the terminating ones). */
static int hup_start(struct relay *r)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
        return -errno;
    }
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    r->hup_io = (struct dc_io){.fd = fd, .cb = hup_cb, .data = r};
    int rc = dc_io_start(r->loop, &r->hup_io, DC_IO_READ);
    if (rc < 0) {
        close(fd);
        r->hup_io.fd = -1;
    }
    return rc;
}

/* Admission, limits and reloads (issue 8): fills cfg from the flags. */
static int setup_limits(struct relay *r, const struct relay_opts *o, struct derp_server_config *cfg)
{
    char err[DC_ERR_LEN];
    cfg->max_conns = o->max_conns;
    cfg->max_conns_per_ip = o->max_conns_per_ip;
    cfg->accept_rate_per_sec = o->accept_limit;
    cfg->accept_burst = o->accept_burst;
    cfg->client_rate_bytes_per_sec = o->client_rate;
    cfg->client_burst_bytes = o->client_burst;
    if (o->accept_limit > 0 && o->accept_burst == 0) {
        dc_log(DC_LOG_WARN, "derp",
               "--accept-connection-limit without --accept-connection-burst "
               "does not bind (the bucket is unlimited, as in derper)");
    }
    if (o->verify_url != NULL || o->allowed_keys_file != NULL) {
        struct derp_admit_config ac = {.allowed_keys_file = o->allowed_keys_file,
                                       .verify_url = o->verify_url,
                                       .verify_fail_open = o->verify_fail_open};
        if (derp_admit_new(r->loop, &ac, &r->admit, err) < 0) {
            dc_log(DC_LOG_ERROR, "derp", "%s", err);
            return -1;
        }
        cfg->admit = r->admit;
        if (o->verify_url != NULL) {
            dc_log(DC_LOG_INFO, "derp", "admission controller %s (fail-%s)", o->verify_url,
                   o->verify_fail_open ? "open" : "closed");
        }
    }
    if (o->tls_cert != NULL) {
        const char *paths[2] = {o->tls_cert, o->tls_key};
        if (derp_filewatch_start(&r->tls_watch, r->loop, paths, 2, tls_files_changed, r, err) < 0) {
            dc_log(DC_LOG_ERROR, "derp", "tls: %s", err);
            return -1;
        }
    }
    if (hup_start(r) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "cannot watch SIGHUP");
        return -1;
    }
    return 0;
}

static void drain_done(struct dc_loop *loop, void *data)
{
    (void)data;
    dc_loop_stop(loop);
}

static void signal_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct relay *r = io->data;
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            if (r->server == NULL) {
                dc_loop_stop(loop);
                return;
            }
            dc_log(DC_LOG_INFO, "derp", "got %s: draining",
                   si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            struct derp_server *s = r->server;
            static bool again;
            if (again) {
                dc_log(DC_LOG_INFO, "derp", "second signal: exiting now");
                dc_loop_stop(loop);
                return;
            }
            again = true;
            derp_server_drain(s, drain_done, r);
        }
    }
}

static int run(const struct relay_opts *o)
{
    struct relay r = {.exit_code = 1, .opts = o, .hup_io = {.fd = -1}};
    struct derp_server_config cfg = {.listen_addr = o->listen, .drain_ms = o->drain_ms};
    struct dc_tls_server *tls = NULL;
    char err[DC_ERR_LEN];
    r.loop = dc_loop_new();
    if (r.loop == NULL || dc_signals_start(r.loop, &r.sig_io, signal_cb, &r) < 0 ||
        load_key(o, &cfg.key) < 0) {
        goto out;
    }
    if (o->mesh_key_file != NULL && load_mesh_key(o->mesh_key_file, &cfg) < 0) {
        goto out;
    }
    if (o->mesh_with != NULL && !cfg.has_mesh_key) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "--mesh-with needs --mesh-key-file");
        goto out;
    }
    if (o->mesh_peers_file != NULL && !cfg.has_mesh_key) {
        dc_log(DC_LOG_ERROR, "derp-mesh", "--mesh-peers-file needs --mesh-key-file");
        goto out;
    }
    cfg.mesh_with = o->mesh_with;
    cfg.self_host = o->hostname != NULL ? o->hostname : o->self_signed;
    cfg.mesh_insecure = o->mesh_insecure;
    if (o->mesh_insecure) {
        dc_log(DC_LOG_WARN, "derp-mesh",
               "--mesh-insecure: mesh peers' certificates are not verified");
    }
    if (o->self_signed != NULL || o->tls_cert != NULL) {
        tls = make_tls(o, &cfg.key);
        if (tls == NULL) {
            goto out;
        }
        cfg.tls = tls;
        r.tls = tls;
    }
    if (setup_limits(&r, o, &cfg) < 0) {
        goto out;
    }
    if (strcmp(o->stun_listen, "off") != 0) {
        if (stun_server_start(&r.stun, r.loop, o->stun_listen, err) < 0) {
            dc_log(DC_LOG_ERROR, "derp-stun", "%s", err);
            goto out;
        }
        r.has_stun = true;
    }
    cfg.extra_metrics = stun_metrics;
    cfg.extra_metrics_data = &r;
    if (derp_server_new(r.loop, &cfg, &r.server, err) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "%s", err);
        goto out;
    }
    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(cfg.key.pub, hex);
    dc_log(DC_LOG_INFO, "derp", "derp-relay %s listening on %s (%s) port=%u key=%s mesh=%s",
           RELAY_VERSION, o->listen, tls != NULL ? "https" : "http", derp_server_port(r.server),
           hex, cfg.has_mesh_key ? "on" : "off");
    if (peers_start(&r) < 0) {
        goto out;
    }
    if (dc_loop_run(r.loop) < 0) {
        dc_log(DC_LOG_ERROR, "derp", "event loop failed");
        goto out;
    }
    dc_log(DC_LOG_INFO, "derp", "derp-relay stopped");
    r.exit_code = 0;
out:
    derp_server_free(r.server);
    derp_filewatch_stop(&r.tls_watch);
    derp_filewatch_stop(&r.peers_watch);
    free(r.peers_text);
    if (r.hup_io.is_active) {
        dc_io_stop(r.loop, &r.hup_io);
        close(r.hup_io.fd);
    }
    derp_admit_free(r.admit);
    if (r.has_stun) {
        stun_server_stop(&r.stun);
    }
    if (r.sig_io.is_active) {
        dc_io_stop(r.loop, &r.sig_io);
        close(r.sig_io.fd);
    }
    dc_tls_server_free(tls);
    dc_loop_free(r.loop);
    derp_keypair_wipe(&cfg.key);
    sodium_memzero(cfg.mesh_key, sizeof(cfg.mesh_key));
    return r.exit_code;
}

int main(int argc, char **argv)
{
    struct relay_opts o = {.listen = ":3340", .stun_listen = ":3478", .verify_fail_open = true};
    dc_log_init();
    int rc = parse_flags(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    if (sodium_init() < 0 || dc_tls_init() < 0) {
        fprintf(stderr, "derp-relay: crypto library init failed\n");
        return 1;
    }
    return run(&o);
}
