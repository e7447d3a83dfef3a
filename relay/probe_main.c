/* derp-probe: end-to-end check of one DERP relay. Two fresh keys log in, a
 * packet goes from the first to the second and back, and the round-trip
 * time is printed. Exit status 0 only when every step passed. */
#include "derp_client.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct probe_opts {
    const char *url;
    struct derp_client_opts client;
    unsigned count;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: derp-probe [flags] URL\n"
               "  URL                   http(s)://host[:port]/derp, or a bare host (https)\n"
               "  --insecure            accept any TLS certificate\n"
               "  --pin sha256-raw:HEX  accept exactly this (self-signed) certificate\n"
               "  --ca-file PATH        trust these CAs instead of the system's\n"
               "  --websocket           carry DERP over WebSocket (Upgrade: websocket)\n"
               "  --timeout-ms MS       per step (default 10000)\n"
               "  --count N             round trips to measure (default 1)\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Waits for a RecvPacket from src carrying want; skips keepalives and the like. */
static int wait_packet(struct derp_client *c, const uint8_t *src, const uint8_t *want, size_t len,
                       int timeout_ms, char *err)
{
    double deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            return dc_err_set(err, -ETIMEDOUT, "timeout: packet did not come through the relay");
        }
        struct derp_client_msg m;
        int rc = derp_client_recv(c, &m, left, err);
        if (rc < 0) {
            return rc;
        }
        if (m.type == DERP_FRAME_RECV_PACKET && memcmp(m.key, src, DERP_KEY_LEN) == 0 &&
            m.len == len && memcmp(m.data, want, len) == 0) {
            return 0;
        }
    }
}

static int round_trip(struct derp_client *a, struct derp_client *b, int timeout_ms, double *rtt,
                      char *err)
{
    uint8_t pkt[64];
    randombytes_buf(pkt, sizeof(pkt));
    double t0 = now_ms();
    int rc = derp_client_send(a, derp_client_public_key(b), pkt, sizeof(pkt));
    if (rc == 0) {
        rc = derp_client_flush(a);
    }
    if (rc < 0) {
        return dc_err_set(err, rc, "io: send: %s", dc_strerror(rc));
    }
    rc = wait_packet(b, derp_client_public_key(a), pkt, sizeof(pkt), timeout_ms, err);
    if (rc < 0) {
        return rc;
    }
    rc = derp_client_send(b, derp_client_public_key(a), pkt, sizeof(pkt));
    if (rc == 0) {
        rc = derp_client_flush(b);
    }
    if (rc < 0) {
        return dc_err_set(err, rc, "io: send: %s", dc_strerror(rc));
    }
    rc = wait_packet(a, derp_client_public_key(b), pkt, sizeof(pkt), timeout_ms, err);
    *rtt = now_ms() - t0;
    return rc;
}

static int probe(const struct probe_opts *o)
{
    struct derp_client *a = NULL;
    struct derp_client *b = NULL;
    char err[DC_ERR_LEN];
    int status = 1;
    struct derp_client_opts co = o->client;
    co.url = o->url;
    co.is_prober = true;
    co.app_name = "derp-probe";
    double t0 = now_ms();
    if (derp_client_connect(&co, &a, err) < 0 || derp_client_connect(&co, &b, err) < 0) {
        fprintf(stderr, "derp-probe: %s: %s\n", o->url, err);
        goto out;
    }
    double connect_ms = now_ms() - t0;
    double best = 0;
    for (unsigned i = 0; i < o->count; i++) {
        double rtt = 0;
        if (round_trip(a, b, co.timeout_ms > 0 ? co.timeout_ms : 10000, &rtt, err) < 0) {
            fprintf(stderr, "derp-probe: %s: %s\n", o->url, err);
            goto out;
        }
        best = (i == 0 || rtt < best) ? rtt : best;
    }
    printf("derp-probe: %s ok: rtt=%.3fms connect=%.3fms round_trips=%u\n", o->url, best,
           connect_ms, o->count);
    status = 0;
out:
    derp_client_free(a);
    derp_client_free(b);
    return status;
}

static int parse_flags(int argc, char **argv, struct probe_opts *o)
{
    static const struct option longopts[] = {
        {"insecure", no_argument, NULL, 'i'},      {"pin", required_argument, NULL, 'p'},
        {"ca-file", required_argument, NULL, 'c'}, {"timeout-ms", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},   {"websocket", no_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'i':
            o->client.insecure_skip_verify = true;
            break;
        case 'p':
            o->client.pin = optarg;
            break;
        case 'c':
            o->client.ca_file = optarg;
            break;
        case 'w':
            o->client.websocket = true;
            break;
        case 't':
        case 'n': {
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno != 0 || v == 0 || v > 3600000) {
                fprintf(stderr, "derp-probe: want a positive number: `%s'\n", optarg);
                return 2;
            }
            if (ch == 't') {
                o->client.timeout_ms = (int)v;
            } else {
                o->count = (unsigned)v;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o->url = argv[optind];
    return 0;
}

int main(int argc, char **argv)
{
    struct probe_opts o = {.count = 1};
    dc_log_init();
    int rc = parse_flags(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    /* A relay that hangs up mid-write must be an error message, not SIGPIPE. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);
    if (sodium_init() < 0 || dc_tls_init() < 0) {
        fprintf(stderr, "derp-probe: crypto library init failed\n");
        return 1;
    }
    if (o.client.insecure_skip_verify) {
        fprintf(stderr, "derp-probe: warning: TLS certificate verification is off (--insecure)\n");
    }
    return probe(&o);
}
