/* derp-probe: end-to-end checks of DERP relays.
 *
 *   derp-probe URL          one relay: two fresh keys log in, a packet goes from
 *                           the first to the second and back, the RTT is printed;
 *   derp-probe --map SRC    every node of a DERP map (URL, file or "-"), probed
 *                           concurrently by derp_prober (DERP and STUN), as a
 *                           table or JSON;
 *   derp-probe --read-pin URL  the sha256-raw pin of the relay's certificate.
 *
 * Exit status 0 only when every probe passed, 1 when one failed (or the map
 * could not be read), 2 for a usage error. */
#include "buf.h"
#include "derp_client.h"
#include "derp_map.h"
#include "derp_prober.h"
#include "log.h"
#include "loop.h"
#include "tls.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_PASSED 0
#define EXIT_FAILED 1
#define EXIT_USAGE  2
/* Probes run at once in --map mode unless --concurrency says otherwise. */
#define DEFAULT_CONCURRENCY 32u
/* Longest --timeout: an hour. */
#define MAX_TIMEOUT_MS 3600000.0

enum output_format { OUTPUT_TABLE, OUTPUT_JSON };

struct probe_opts {
    const char *url;                /* single-relay mode */
    const char *map;                /* --map SRC */
    const char *read_pin;           /* --read-pin URL */
    const char *region;             /* --region CODE|ID */
    const char *plain_http;         /* --plain-http NODES */
    enum output_format output;      /* -o */
    unsigned concurrency;           /* --concurrency */
    bool no_stun;                   /* --no-stun */
    struct derp_client_opts client; /* single-relay mode; timeout_ms and TLS flags shared */
    unsigned count;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: derp-probe [flags] URL\n"
        "       derp-probe [flags] --map URL|FILE|-\n"
        "       derp-probe [flags] --read-pin URL\n"
        "\n"
        "  URL                   http(s)://host[:port]/derp, or a bare host (https)\n"
        "  --map SRC             probe every node of a DERP map (tailcfg.DERPMap JSON) read\n"
        "                        from an http(s) URL, a file, or - (stdin): TLS as the node\n"
        "                        asks (CertName sha256-raw pin, CertName, InsecureForTests),\n"
        "                        a packet between two fresh keys, and STUN unless STUNPort\n"
        "                        is -1; at most --concurrency nodes at a time\n"
        "  --read-pin URL        print the sha256-raw:<hex> pin of the certificate the relay\n"
        "                        at URL (https://host[:port] or host[:port]) presents; no\n"
        "                        verification, SNI = host\n"
        "  -o, --output FORMAT   --map results as `table' (default) or `json'\n"
        "  --timeout DURATION    limit of each check (DERP, STUN) of a relay: 10s, 500ms, 2.5\n"
        "                        (seconds); default 10s\n"
        "  --timeout-ms MS       the same in milliseconds\n"
        "  --concurrency N       --map: nodes probed at once (default 32, at most 256)\n"
        "  --region CODE|ID      --map: only this region\n"
        "  --plain-http NODES    --map: DERP over plain http:// for these node names\n"
        "                        (comma-separated, or `all'); a DERP map cannot say so\n"
        "                        itself (Tailscale: TS_DEBUG_USE_DERP_HTTP). DERPPort 0 then\n"
        "                        means 3340\n"
        "  --no-stun             --map: skip the STUN checks\n"
        "  --insecure            accept any TLS certificate (pins are still checked)\n"
        "  --pin sha256-raw:HEX  URL: accept exactly this (self-signed) certificate\n"
        "  --ca-file PATH        trust these CAs instead of the system's (map URL too)\n"
        "  --websocket           carry DERP over WebSocket (Upgrade: websocket)\n"
        "  --count N             URL: round trips to measure (default 1)\n"
        "\n"
        "--map -o json prints one object:\n"
        "  {\"ok\": bool, \"map\": SRC, \"error\": null|\"why the map could not be used\",\n"
        "   \"passed\": N, \"failed\": N, \"nodes\": [{\n"
        "     \"region_id\": N, \"region_code\": S, \"region_name\": S, \"node\": S,\n"
        "     \"host\": S, \"url\": S, \"dial\": S, \"tls\": \"off\"|\"ca\"|\"pin\"|\"insecure\",\n"
        "     \"ok\": bool, \"stage\": "
        "null|\"url\"|\"dns\"|\"tcp\"|\"tls\"|\"http\"|\"handshake\"|\n"
        "              \"timeout\"|\"packet\"|\"stun\", \"error\": null|S,\n"
        "     \"derp\": \"ok\"|\"failed\"|\"skipped\", \"connect_ms\": null|F, \"rtt_ms\": "
        "null|F,\n"
        "     \"cert_pin\": null|\"sha256-raw:<hex>\",\n"
        "     \"stun\": \"ok\"|\"failed\"|\"skipped\", \"stun_addr\": null|S,\n"
        "     \"stun_mapped\": null|S, \"stun_rtt_ms\": null|F, \"stun_error\": null|S}]}\n"
        "\n"
        "Exit status: 0 every probe passed; 1 a probe failed, or the map could not be\n"
        "fetched or parsed, or has no node to probe; 2 usage error.\n");
}

/* ---- single relay (the original mode) ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int probe_url(const struct probe_opts *o)
{
    struct derp_client *a = NULL;
    struct derp_client *b = NULL;
    char err[DC_ERR_LEN];
    int status = EXIT_FAILED;
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
    int64_t best = 0;
    for (unsigned i = 0; i < o->count; i++) {
        int64_t rtt = 0;
        int timeout = co.timeout_ms > 0 ? co.timeout_ms : DERP_PROBE_DEFAULT_TIMEOUT_MS;
        if (derp_probe_round_trip(a, b, timeout, &rtt, err) < 0) {
            fprintf(stderr, "derp-probe: %s: %s\n", o->url, err);
            goto out;
        }
        best = (i == 0 || rtt < best) ? rtt : best;
    }
    printf("derp-probe: %s ok: rtt=%.3fms connect=%.3fms round_trips=%u\n", o->url,
           (double)best / 1000.0, connect_ms, o->count);
    status = EXIT_PASSED;
out:
    derp_client_free(a);
    derp_client_free(b);
    return status;
}

static int read_pin(const struct probe_opts *o)
{
    char pin[DC_TLS_PIN_LEN];
    char err[DC_ERR_LEN];
    int timeout = o->client.timeout_ms > 0 ? o->client.timeout_ms : DERP_PROBE_DEFAULT_TIMEOUT_MS;
    if (derp_probe_read_pin(o->read_pin, NULL, timeout, pin, err) < 0) {
        fprintf(stderr, "derp-probe: %s: %s\n", o->read_pin, err);
        return EXIT_FAILED;
    }
    printf("%s\n", pin);
    return EXIT_PASSED;
}

/* ---- reading the map ---- */

static size_t curl_write(char *p, size_t size, size_t n, void *data)
{
    struct dc_buf *b = data;
    return dc_buf_append(b, p, size * n) == 0 ? size * n : 0;
}

static int fetch_url(const char *url, const struct probe_opts *o, struct dc_buf *b, char *err)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return dc_err_set(err, -ENOMEM, "derp-map: cannot start libcurl");
    }
    char cerr[CURL_ERROR_SIZE] = "";
    long timeout = o->client.timeout_ms > 0 ? o->client.timeout_ms : DERP_PROBE_DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "derp-probe");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (o->client.ca_file != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, o->client.ca_file);
    }
    if (o->client.insecure_skip_verify) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (cc == CURLE_WRITE_ERROR && b->len + CURL_MAX_WRITE_SIZE > b->max) {
        return dc_err_set(err, -EMSGSIZE, "derp-map: %s: larger than %u bytes", url,
                          DERP_MAP_MAX_JSON_LEN);
    }
    if (cc != CURLE_OK) {
        return dc_err_set(err, -EIO, "derp-map: GET %s: %s", url,
                          cerr[0] != '\0' ? cerr : curl_easy_strerror(cc));
    }
    if (status != 200) {
        return dc_err_set(err, -EIO, "derp-map: GET %s: HTTP status %ld (want 200)", url, status);
    }
    return 0;
}

static int read_stream(FILE *f, const char *name, struct dc_buf *b, char *err)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (dc_buf_append(b, chunk, n) < 0) {
            return dc_err_set(err, -EMSGSIZE, "derp-map: %s: larger than %u bytes", name,
                              DERP_MAP_MAX_JSON_LEN);
        }
    }
    if (ferror(f)) {
        return dc_err_set(err, -EIO, "derp-map: cannot read %s", name);
    }
    return 0;
}

static int load_map(const struct probe_opts *o, struct derp_map *m, char *err)
{
    struct dc_buf b = {0};
    dc_buf_init(&b, DERP_MAP_MAX_JSON_LEN);
    const char *src = o->map;
    int rc;
    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
        rc = fetch_url(src, o, &b, err);
    } else if (strcmp(src, "-") == 0) {
        rc = read_stream(stdin, "stdin", &b, err);
    } else {
        FILE *f = fopen(src, "rb");
        rc = f == NULL ? -errno : 0;
        if (f == NULL) {
            dc_err_set(err, rc, "derp-map: cannot open `%s': %s", src, dc_strerror(rc));
        } else {
            rc = read_stream(f, src, &b, err);
            fclose(f);
        }
    }
    if (rc == 0) {
        rc = derp_map_parse((const char *)b.p, b.len, m, err);
    }
    dc_buf_deinit(&b);
    return rc;
}

/* ---- probing the map ---- */

struct node_slot {
    struct map_run *run;             /* borrowed */
    struct derp_probe_result result; /* filled by the callback */
    bool is_done;
};

struct map_run {
    struct dc_loop *loop;
    struct node_slot *slots; /* one per node */
    size_t total, done;
};

static void on_probe_done(void *data, const struct derp_map_node *node,
                          const struct derp_probe_result *r)
{
    (void)node;
    struct node_slot *s = data;
    s->result = *r;
    s->is_done = true;
    if (++s->run->done == s->run->total) {
        dc_loop_stop(s->run->loop);
    }
}

/* Reports whether name is in the comma-separated list (or the list is "all"). */
static bool in_list(const char *list, const char *name)
{
    if (list == NULL) {
        return false;
    }
    if (strcmp(list, "all") == 0) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

static bool region_selected(const struct probe_opts *o, const struct derp_map_node *n)
{
    if (o->region == NULL) {
        return true;
    }
    char id[16];
    snprintf(id, sizeof(id), "%u", n->region_id);
    return strcmp(o->region, n->region_code) == 0 || strcmp(o->region, id) == 0;
}

static int submit_all(struct derp_prober *p, const struct probe_opts *o, const struct derp_map *m,
                      struct map_run *run, char *err)
{
    for (size_t i = 0; i < m->num_nodes; i++) {
        if (!region_selected(o, &m->nodes[i])) {
            continue;
        }
        struct derp_probe_opts po = {.timeout_ms = o->client.timeout_ms,
                                     .is_plain_http = in_list(o->plain_http, m->nodes[i].name),
                                     .is_insecure = o->client.insecure_skip_verify,
                                     .is_websocket = o->client.websocket,
                                     .skip_stun = o->no_stun,
                                     .ca_file = o->client.ca_file};
        run->slots[i].run = run;
        run->total++;
        int rc = derp_prober_submit(p, &m->nodes[i], &po, on_probe_done, &run->slots[i]);
        if (rc < 0) {
            return dc_err_set(err, rc, "derp-probe: cannot queue a probe: %s", dc_strerror(rc));
        }
    }
    return 0;
}

/* Probes every selected node; slots[i] gets node i's result. */
static int run_probes(const struct probe_opts *o, const struct derp_map *m, struct node_slot *slots,
                      char *err)
{
    struct map_run run = {.slots = slots};
    struct derp_prober *p = NULL;
    run.loop = dc_loop_new();
    if (run.loop == NULL) {
        return dc_err_set(err, -ENOMEM, "derp-probe: cannot create the event loop");
    }
    unsigned threads = o->concurrency;
    if (m->num_nodes < threads) {
        threads = (unsigned)m->num_nodes;
    }
    int rc = derp_prober_new(run.loop, threads, &p, err);
    if (rc == 0) {
        rc = submit_all(p, o, m, &run, err);
    }
    if (rc == 0 && run.total == 0) {
        rc = dc_err_set(err, -ENOENT, "derp-map: no node in region `%s'", o->region);
    }
    if (rc == 0) {
        rc = dc_loop_run(run.loop);
    }
    derp_prober_free(p);
    dc_loop_free(run.loop);
    return rc;
}

/* ---- output ---- */

static const char *tls_mode(const struct derp_map_node *n, const struct derp_probe_result *r,
                            const struct probe_opts *o)
{
    if (!r->is_tls) {
        return "off";
    }
    if (strncmp(n->cert_name, DC_TLS_PIN_PREFIX, DC_TLS_PIN_PREFIX_LEN) == 0) {
        return "pin";
    }
    return n->is_insecure_for_tests || o->client.insecure_skip_verify ? "insecure" : "ca";
}

static const char *check_word(enum derp_probe_check c)
{
    return c == DERP_PROBE_PASSED ? "ok" : c == DERP_PROBE_FAILED ? "failed" : "skipped";
}

#define NUM_COLS 9

static void table_row(const char *cols[NUM_COLS], const int width[NUM_COLS])
{
    for (int i = 0; i < NUM_COLS - 1; i++) {
        printf("%-*s  ", width[i], cols[i]);
    }
    printf("%s\n", cols[NUM_COLS - 1]);
}

/* Fills the columns of node n's row; bufs holds the formatted numbers. */
static void table_cols(const struct derp_map_node *n, const struct node_slot *s,
                       const struct probe_opts *o, char bufs[2][32], const char *cols[NUM_COLS])
{
    const struct derp_probe_result *r = &s->result;
    snprintf(bufs[0], 32, "%u", n->region_id);
    if (r->rtt_us >= 0) {
        snprintf(bufs[1], 32, "%.2fms", (double)r->rtt_us / 1000.0);
    } else {
        snprintf(bufs[1], 32, "-");
    }
    cols[0] = bufs[0];
    cols[1] = n->region_code;
    cols[2] = n->name;
    cols[3] = n->host_name;
    cols[4] = n->is_stun_only ? "-" : tls_mode(n, r, o);
    cols[5] = r->derp == DERP_PROBE_PASSED ? "ok" : r->derp == DERP_PROBE_FAILED ? "FAIL" : "-";
    cols[6] = bufs[1];
    cols[7] = r->stun == DERP_PROBE_PASSED ? "ok" : r->stun == DERP_PROBE_FAILED ? "FAIL" : "off";
    cols[8] = r->ok ? "ok" : r->error;
}

static void print_table(const struct probe_opts *o, const struct derp_map *m,
                        const struct node_slot *slots)
{
    const char *head[NUM_COLS] = {"REGION", "CODE", "NODE", "HOST",  "TLS",
                                  "DERP",   "RTT",  "STUN", "RESULT"};
    int width[NUM_COLS];
    for (int i = 0; i < NUM_COLS; i++) {
        width[i] = (int)strlen(head[i]);
    }
    for (size_t k = 0; k < m->num_nodes; k++) {
        char bufs[2][32];
        const char *cols[NUM_COLS];
        if (!slots[k].is_done) {
            continue;
        }
        table_cols(&m->nodes[k], &slots[k], o, bufs, cols);
        for (int i = 0; i < NUM_COLS; i++) {
            int w = (int)strlen(cols[i]);
            width[i] = w > width[i] ? (w < 40 ? w : 40) : width[i];
        }
    }
    table_row(head, width);
    for (size_t k = 0; k < m->num_nodes; k++) {
        char bufs[2][32];
        const char *cols[NUM_COLS];
        if (slots[k].is_done) {
            table_cols(&m->nodes[k], &slots[k], o, bufs, cols);
            table_row(cols, width);
        }
    }
}

static json_t *json_str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *json_ms_or_null(int64_t us)
{
    return us >= 0 ? json_real((double)us / 1000.0) : json_null();
}

static json_t *node_json(const struct derp_map_node *n, const struct derp_probe_result *r,
                         const struct probe_opts *o)
{
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:s, s:o, s:o, "
        "s:o, s:s, s:o, s:o, s:o, s:o}",
        "region_id", (json_int_t)n->region_id, "region_code", n->region_code, "region_name",
        n->region_name, "node", n->name, "host", n->host_name, "url", r->url, "dial", r->dial,
        "tls", n->is_stun_only ? "off" : tls_mode(n, r, o), "ok", r->ok, "stage",
        json_str_or_null(derp_probe_stage_name(r->stage)), "error", json_str_or_null(r->error),
        "derp", check_word(r->derp), "connect_ms", json_ms_or_null(r->connect_us), "rtt_ms",
        json_ms_or_null(r->rtt_us), "cert_pin", json_str_or_null(r->cert_pin), "stun",
        check_word(r->stun), "stun_addr", json_str_or_null(r->stun_addr), "stun_mapped",
        json_str_or_null(r->stun_mapped), "stun_rtt_ms", json_ms_or_null(r->stun_rtt_us),
        "stun_error", json_str_or_null(r->stun_error));
}

/* Prints the JSON report; m and slots may be NULL when the map failed. */
static int print_json(const struct probe_opts *o, const struct derp_map *m,
                      const struct node_slot *slots, const char *map_err)
{
    json_t *nodes = json_array();
    size_t passed = 0, failed = 0;
    for (size_t k = 0; m != NULL && k < m->num_nodes; k++) {
        if (slots[k].is_done) {
            json_array_append_new(nodes, node_json(&m->nodes[k], &slots[k].result, o));
            passed += slots[k].result.ok;
            failed += !slots[k].result.ok;
        }
    }
    bool ok = map_err == NULL && failed == 0;
    json_t *root = json_pack("{s:b, s:s, s:o, s:I, s:I, s:o}", "ok", ok, "map", o->map, "error",
                             map_err != NULL ? json_string(map_err) : json_null(), "passed",
                             (json_int_t)passed, "failed", (json_int_t)failed, "nodes", nodes);
    char *text =
        root != NULL
            ? json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
            : NULL;
    json_decref(root);
    if (text == NULL) {
        fprintf(stderr, "derp-probe: out of memory\n");
        return EXIT_FAILED;
    }
    printf("%s\n", text);
    free(text);
    return ok ? EXIT_PASSED : EXIT_FAILED;
}

static int map_failed(const struct probe_opts *o, const char *err)
{
    fprintf(stderr, "derp-probe: %s: %s\n", o->map, err);
    if (o->output == OUTPUT_JSON) {
        (void)print_json(o, NULL, NULL, err);
    }
    return EXIT_FAILED;
}

static int probe_map(const struct probe_opts *o)
{
    struct derp_map m = {0};
    char err[DC_ERR_LEN];
    if (load_map(o, &m, err) < 0) {
        return map_failed(o, err);
    }
    if (m.num_nodes == 0) {
        derp_map_deinit(&m);
        return map_failed(o, "derp-map: no nodes to probe");
    }
    struct node_slot *slots = calloc(m.num_nodes, sizeof(*slots));
    int rc = slots == NULL ? dc_err_set(err, -ENOMEM, "derp-probe: out of memory") : 0;
    if (rc == 0) {
        rc = run_probes(o, &m, slots, err);
    }
    int status = EXIT_FAILED;
    if (rc < 0) {
        status = map_failed(o, err);
    } else if (o->output == OUTPUT_JSON) {
        status = print_json(o, &m, slots, NULL);
    } else {
        print_table(o, &m, slots);
        status = EXIT_PASSED;
        for (size_t k = 0; k < m.num_nodes; k++) {
            status = slots[k].is_done && !slots[k].result.ok ? EXIT_FAILED : status;
        }
    }
    free(slots);
    derp_map_deinit(&m);
    return status;
}

/* ---- flags ---- */

/* Parses "10s", "500ms" or "2.5" (seconds) into milliseconds. */
static int parse_duration(const char *s, int *out_ms)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v > 0)) {
        return -EINVAL;
    }
    if (strcmp(end, "ms") == 0) {
        v /= 1000.0;
    } else if (strcmp(end, "s") != 0 && *end != '\0') {
        return -EINVAL;
    }
    double ms = v * 1000.0;
    if (ms > MAX_TIMEOUT_MS) {
        return -EINVAL;
    }
    *out_ms = ms < 1.0 ? 1 : (int)(ms + 0.999); /* round up: never a zero limit */
    return 0;
}

static int parse_number(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v == 0 || v > max) {
        fprintf(stderr, "derp-probe: want a number from 1 to %lu: `%s'\n", max, s);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* Handles the flags that take a number or a word. */
static int parse_value_flag(int ch, const char *arg, struct probe_opts *o)
{
    unsigned long v = 0;
    switch (ch) {
    case 'T':
        if (parse_duration(arg, &o->client.timeout_ms) < 0) {
            fprintf(stderr, "derp-probe: --timeout: want 10s, 500ms or seconds: `%s'\n", arg);
            return EXIT_USAGE;
        }
        return 0;
    case 'o':
        if (strcmp(arg, "table") != 0 && strcmp(arg, "json") != 0) {
            fprintf(stderr, "derp-probe: -o: want `table' or `json': `%s'\n", arg);
            return EXIT_USAGE;
        }
        o->output = strcmp(arg, "json") == 0 ? OUTPUT_JSON : OUTPUT_TABLE;
        return 0;
    case 't':
        if (parse_number(arg, (unsigned long)MAX_TIMEOUT_MS, &v) != 0) {
            return EXIT_USAGE;
        }
        o->client.timeout_ms = (int)v;
        return 0;
    case 'n':
        if (parse_number(arg, 1000000, &v) != 0) {
            return EXIT_USAGE;
        }
        o->count = (unsigned)v;
        return 0;
    case 'C':
        if (parse_number(arg, DERP_PROBER_MAX_THREADS, &v) != 0) {
            return EXIT_USAGE;
        }
        o->concurrency = (unsigned)v;
        return 0;
    }
    return EXIT_USAGE;
}

static int parse_flag(int ch, const char *arg, struct probe_opts *o)
{
    switch (ch) {
    case 'i':
        o->client.insecure_skip_verify = true;
        return 0;
    case 'p':
        o->client.pin = arg;
        return 0;
    case 'c':
        o->client.ca_file = arg;
        return 0;
    case 'w':
        o->client.websocket = true;
        return 0;
    case 'm':
        o->map = arg;
        return 0;
    case 'R':
        o->read_pin = arg;
        return 0;
    case 'g':
        o->region = arg;
        return 0;
    case 'P':
        o->plain_http = arg;
        return 0;
    case 'S':
        o->no_stun = true;
        return 0;
    }
    return parse_value_flag(ch, arg, o);
}

/* Checks that the flags make one mode. Returns 0 or EXIT_USAGE. */
static int check_mode(int argc, char **argv, struct probe_opts *o)
{
    int modes = (o->map != NULL) + (o->read_pin != NULL);
    if (modes > 1 || (modes == 1 && optind != argc) || (modes == 0 && optind != argc - 1)) {
        fprintf(stderr, "derp-probe: want exactly one of URL, --map SRC, --read-pin URL "
                        "(see --help)\n");
        return EXIT_USAGE;
    }
    if (o->map != NULL && o->client.pin != NULL) {
        fprintf(stderr, "derp-probe: --pin is for one URL; in a map, CertName carries the pin\n");
        return EXIT_USAGE;
    }
    if (o->map == NULL &&
        (o->region != NULL || o->plain_http != NULL || o->no_stun || o->output != OUTPUT_TABLE)) {
        fprintf(stderr, "derp-probe: -o, --region, --plain-http and --no-stun need --map\n");
        return EXIT_USAGE;
    }
    o->url = modes == 0 ? argv[optind] : NULL;
    return 0;
}

/* Returns 0 to go on, EXIT_USAGE, or -1 after --help. */
static int parse_flags(int argc, char **argv, struct probe_opts *o)
{
    static const struct option longopts[] = {
        {"insecure", no_argument, NULL, 'i'},       {"pin", required_argument, NULL, 'p'},
        {"ca-file", required_argument, NULL, 'c'},  {"timeout-ms", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'},  {"count", required_argument, NULL, 'n'},
        {"websocket", no_argument, NULL, 'w'},      {"map", required_argument, NULL, 'm'},
        {"read-pin", required_argument, NULL, 'R'}, {"output", required_argument, NULL, 'o'},
        {"region", required_argument, NULL, 'g'},   {"plain-http", required_argument, NULL, 'P'},
        {"no-stun", no_argument, NULL, 'S'},        {"concurrency", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return -1;
        }
        if (ch == '?' || parse_flag(ch, optarg, o) != 0) {
            if (ch == '?') {
                usage(stderr);
            }
            return EXIT_USAGE;
        }
    }
    return check_mode(argc, argv, o);
}

static int run(const struct probe_opts *o)
{
    if (o->client.insecure_skip_verify) {
        fprintf(stderr, "derp-probe: warning: TLS certificate verification is off (--insecure)\n");
    }
    if (o->read_pin != NULL) {
        return read_pin(o);
    }
    if (o->map != NULL) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "derp-probe: libcurl init failed\n");
            return EXIT_FAILED;
        }
        int status = probe_map(o);
        curl_global_cleanup();
        return status;
    }
    return probe_url(o);
}

int main(int argc, char **argv)
{
    struct probe_opts o = {.count = 1, .concurrency = DEFAULT_CONCURRENCY};
    dc_log_init();
    int rc = parse_flags(argc, argv, &o);
    if (rc != 0) {
        return rc < 0 ? EXIT_PASSED : rc;
    }
    /* A relay that hangs up mid-write must be an error message, not SIGPIPE. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);
    if (sodium_init() < 0 || dc_tls_init() < 0) {
        fprintf(stderr, "derp-probe: crypto library init failed\n");
        return EXIT_FAILED;
    }
    return run(&o);
}
