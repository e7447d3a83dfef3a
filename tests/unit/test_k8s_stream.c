/* test_k8s_stream: the watch-event splitter, Status decoding and metadata
 * helpers (k8s-client/k8s_stream.c). The events below are kube-apiserver
 * watch output (compact JSON, Go's HTML escaping of < > & and U+2028, raw
 * UTF-8, annotations sorted) for management.loft.sh/v1 Clusters. */
#include "k8s_stream.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Generated from Go-style JSON encodings; one event each, no trailing newline. */
#define EV_ADDED_EU                                                                                \
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft.sh"     \
    "/v1\",\"metadata\":{\"name\":\"eu-prod\",\"uid\":\"6f1c2a8e-3b7d-4e0a-9c55-0d2f8b1e7a43"      \
    "\",\"resourceVersion\":\"48213\",\"generation\":3,\"creationTimestamp\":\"2026-11-20T09:"     \
    "14:02Z\",\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"ap"     \
    "iVersion\\\":\\\"management.loft.sh/v1\\\",\\\"kind\\\":\\\"Cluster\\\",\\\"metadata\\\""     \
    ":{\\\"annotations\\\":{\\\"loft.sh/derp-endpoint\\\":\\\"derp-eu.example.com:443\\\"},\\"     \
    "\"name\\\":\\\"eu-prod\\\"},\\\"spec\\\":{\\\"displayName\\\":\\\"EU production\\\"}}\\n"     \
    "\",\"loft.sh/derp-endpoint\":\"derp-eu.example.com:443\",\"loft.sh/derp-insecure\":\"fal"     \
    "se\"},\"finalizers\":[\"loft.sh/cleanup\"],\"managedFields\":[{\"manager\":\"kubectl-cli"     \
    "ent-side-apply\",\"operation\":\"Update\",\"apiVersion\":\"management.loft.sh/v1\",\"tim"     \
    "e\":\"2026-11-20T09:14:02Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{"      \
    "\"f:annotations\":{\".\":{},\"f:loft.sh/derp-endpoint\":{}}},\"f:spec\":{\".\":{},\"f:di"     \
    "splayName\":{}}}}]},\"spec\":{\"displayName\":\"EU production\",\"owner\":{\"user\":\"ad"     \
    "min\"},\"config\":{\"secretName\":\"loft-cluster-config-eu-prod\",\"secretNamespace\":\""     \
    "loft\"},\"local\":false,\"networkPeer\":true,\"access\":[{\"verbs\":[\"*\"],\"subresourc"     \
    "es\":[\"*\"],\"users\":[\"admin\"]}]},\"status\":{\"phase\":\"Initialized\",\"message\":"     \
    "\"\"}}}"
#define EV_ADDED_US                                                                                \
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft.sh"     \
    "/v1\",\"metadata\":{\"name\":\"us-east\",\"uid\":\"0b9e4d17-52c8-4f3a-8e61-7a2c9d5b3f10"      \
    "\",\"resourceVersion\":\"48217\",\"generation\":1,\"creationTimestamp\":\"2026-11-20T09:"     \
    "14:02Z\",\"annotations\":{\"example.com/html\":\"\\u003cb\\u003eR\\u0026D\\u003c/b\\u003"     \
    "e\",\"example.com/note\":\"close } open { [ ] quote \\\" backslash \\\\ end \\\\\",\"exa"     \
    "mple.com/utf8\":\"caf\303\251 \360\237\232\200 \346\227\245\346\234\254 \\u2028\",\"loft"     \
    ".sh/derp-endpoint\":\"derp-us.example.com:8443\"},\"finalizers\":[\"loft.sh/cleanup\"],"      \
    "\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\","      \
    "\"apiVersion\":\"management.loft.sh/v1\",\"time\":\"2026-11-20T09:14:02Z\",\"fieldsType"      \
    "\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:annotations\":{\".\":{},\"f:loft.sh/de"     \
    "rp-endpoint\":{}}},\"f:spec\":{\".\":{},\"f:displayName\":{}}}}]},\"spec\":{\"displayNam"     \
    "e\":\"US \\\"east\\\" {1}\",\"owner\":{\"user\":\"admin\"},\"config\":{\"secretName\":\""     \
    "loft-cluster-config-us-east\",\"secretNamespace\":\"loft\"},\"local\":false,\"networkPee"     \
    "r\":true,\"access\":[{\"verbs\":[\"*\"],\"subresources\":[\"*\"],\"users\":[\"admin\"]}]"     \
    "},\"status\":{\"phase\":\"Initialized\",\"message\":\"\"}}}"
#define EV_MODIFIED_EU                                                                             \
    "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft"     \
    ".sh/v1\",\"metadata\":{\"name\":\"eu-prod\",\"uid\":\"6f1c2a8e-3b7d-4e0a-9c55-0d2f8b1e7a"     \
    "43\",\"resourceVersion\":\"48230\",\"generation\":4,\"creationTimestamp\":\"2026-11-20T0"     \
    "9:14:02Z\",\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\""     \
    "apiVersion\\\":\\\"management.loft.sh/v1\\\",\\\"kind\\\":\\\"Cluster\\\",\\\"metadata\\"     \
    "\":{\\\"annotations\\\":{\\\"loft.sh/derp-endpoint\\\":\\\"derp-eu.example.com:443\\\"},"     \
    "\\\"name\\\":\\\"eu-prod\\\"},\\\"spec\\\":{\\\"displayName\\\":\\\"EU production\\\"}}"      \
    "\\n\",\"loft.sh/derp-endpoint\":\"derp-eu2.example.com:443\",\"loft.sh/derp-insecure\":"      \
    "\"false\"},\"finalizers\":[\"loft.sh/cleanup\"],\"managedFields\":[{\"manager\":\"kubect"     \
    "l-client-side-apply\",\"operation\":\"Update\",\"apiVersion\":\"management.loft.sh/v1\","     \
    "\"time\":\"2026-11-20T09:14:02Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata"     \
    "\":{\"f:annotations\":{\".\":{},\"f:loft.sh/derp-endpoint\":{}}},\"f:spec\":{\".\":{},\""     \
    "f:displayName\":{}}}}]},\"spec\":{\"displayName\":\"EU production\",\"owner\":{\"user\":"     \
    "\"admin\"},\"config\":{\"secretName\":\"loft-cluster-config-eu-prod\",\"secretNamespace"      \
    "\":\"loft\"},\"local\":false,\"networkPeer\":true,\"access\":[{\"verbs\":[\"*\"],\"subre"     \
    "sources\":[\"*\"],\"users\":[\"admin\"]}]},\"status\":{\"phase\":\"Initialized\",\"messa"     \
    "ge\":\"\"}}}"
#define EV_DELETED_US                                                                              \
    "{\"type\":\"DELETED\",\"object\":{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft."     \
    "sh/v1\",\"metadata\":{\"name\":\"us-east\",\"uid\":\"0b9e4d17-52c8-4f3a-8e61-7a2c9d5b3f1"     \
    "0\",\"resourceVersion\":\"48241\",\"generation\":2,\"creationTimestamp\":\"2026-11-20T09"     \
    ":14:02Z\",\"deletionTimestamp\":\"2026-11-20T10:01:44Z\",\"deletionGracePeriodSeconds\":"     \
    "0,\"annotations\":{\"example.com/html\":\"\\u003cb\\u003eR\\u0026D\\u003c/b\\u003e\",\"e"     \
    "xample.com/note\":\"close } open { [ ] quote \\\" backslash \\\\ end \\\\\",\"example.co"     \
    "m/utf8\":\"caf\303\251 \360\237\232\200 \346\227\245\346\234\254 \\u2028\",\"loft.sh/der"     \
    "p-endpoint\":\"derp-us.example.com:8443\"},\"finalizers\":[\"loft.sh/cleanup\"],\"manage"     \
    "dFields\":[{\"manager\":\"kubectl-client-side-apply\",\"operation\":\"Update\",\"apiVers"     \
    "ion\":\"management.loft.sh/v1\",\"time\":\"2026-11-20T09:14:02Z\",\"fieldsType\":\"Field"     \
    "sV1\",\"fieldsV1\":{\"f:metadata\":{\"f:annotations\":{\".\":{},\"f:loft.sh/derp-endpoin"     \
    "t\":{}}},\"f:spec\":{\".\":{},\"f:displayName\":{}}}}]},\"spec\":{\"displayName\":\"US "      \
    "\\\"east\\\" {1}\",\"owner\":{\"user\":\"admin\"},\"config\":{\"secretName\":\"loft-clus"     \
    "ter-config-us-east\",\"secretNamespace\":\"loft\"},\"local\":false,\"networkPeer\":true,"     \
    "\"access\":[{\"verbs\":[\"*\"],\"subresources\":[\"*\"],\"users\":[\"admin\"]}]},\"statu"     \
    "s\":{\"phase\":\"Initialized\",\"message\":\"\"}}}"
#define EV_BOOKMARK                                                                                \
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft"     \
    ".sh/v1\",\"metadata\":{\"resourceVersion\":\"48250\",\"annotations\":{\"k8s.io/initial-e"     \
    "vents-end\":\"true\"}}}}"
#define EV_ERROR                                                                                   \
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{"     \
    "},\"status\":\"Failure\",\"message\":\"too old resource version: 48000 (48213)\",\"reaso"     \
    "n\":\"Expired\",\"code\":410}}"

/* The whole body as the apiserver writes it: one event per line. */
static const char STREAM[] = EV_ADDED_EU "\n" EV_ADDED_US "\n" EV_MODIFIED_EU "\n" EV_DELETED_US
                                         "\n" EV_BOOKMARK "\n" EV_ERROR "\n";

/* Annotation values of us-east, decoded. */
static const char NOTE[] = "close } open { [ ] quote \" backslash \\ end \\";
static const char HTML[] = "<b>R&D</b>";
static const char UTF8[] = "caf\303\251 \360\237\232\200 \346\227\245\346\234\254 \342\200\250";

#define MAX_EVENTS 64

/* What the callback saw, copied out of each event. */
struct rec {
    size_t n;
    enum k8s_event_type type[MAX_EVENTS];
    char *raw[MAX_EVENTS];      /* owned: the event text, NUL-terminated */
    char *dump[MAX_EVENTS];     /* owned: the object re-encoded with sorted keys */
    json_t *object[MAX_EVENTS]; /* owned reference (json_incref in the callback) */
    size_t stop_at;             /* return -ECANCELED at this event (1-based); 0: never */
};

static int record(const struct k8s_event *ev, void *arg)
{
    struct rec *r = arg;
    assert_true(r->n < MAX_EVENTS);
    assert_true(json_is_object(ev->object));
    assert_true(ev->raw.len >= 2);
    assert_int_equal(ev->raw.p[0], '{');
    assert_int_equal(ev->raw.p[ev->raw.len - 1], '}');
    size_t i = r->n++;
    r->type[i] = ev->type;
    r->raw[i] = malloc(ev->raw.len + 1);
    assert_non_null(r->raw[i]);
    memcpy(r->raw[i], ev->raw.p, ev->raw.len);
    r->raw[i][ev->raw.len] = '\0';
    r->dump[i] = json_dumps(ev->object, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(r->dump[i]);
    r->object[i] = json_incref(ev->object);
    if (r->stop_at != 0 && r->n == r->stop_at) {
        return -ECANCELED;
    }
    return 0;
}

static void rec_free(struct rec *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->raw[i]);
        free(r->dump[i]);
        json_decref(r->object[i]);
    }
    memset(r, 0, sizeof(*r));
}

static void assert_rec_equal(const struct rec *a, const struct rec *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->type[i], b->type[i]);
        assert_string_equal(a->raw[i], b->raw[i]);
        assert_string_equal(a->dump[i], b->dump[i]);
    }
}

/* Feeds an exact-size heap copy of p[0..len), so AddressSanitizer catches a
 * read past len (a string literal would hide one). */
static int feed_copy(struct k8s_stream *st, const char *p, size_t len, struct rec *r, char *err)
{
    char *buf = malloc(len > 0 ? len : 1);
    assert_non_null(buf);
    memcpy(buf, p, len);
    int rc = k8s_stream_feed(st, buf, len, record, r, err);
    free(buf);
    return rc;
}

/* Feeds s in one call to a fresh stream; expects success, no leftovers. */
static void feed_whole(const char *s, size_t len, size_t max, struct rec *r)
{
    struct k8s_stream st;
    char err[DC_ERR_LEN] = "";
    k8s_stream_init(&st, max);
    assert_int_equal(feed_copy(&st, s, len, r, err), 0);
    assert_int_equal(k8s_stream_pending(&st), 0);
    k8s_stream_deinit(&st);
}

/* Feeds s to a fresh stream in chunks of sizes[0], sizes[1], ... (cycled;
 * 0 is an empty feed) and checks the events match `want`. */
static void assert_chunked(const char *s, size_t len, const size_t *sizes, size_t nsizes,
                           const struct rec *want)
{
    struct k8s_stream st;
    struct rec got = {0};
    char err[DC_ERR_LEN] = "";
    k8s_stream_init(&st, 0);
    size_t off = 0;
    for (size_t k = 0; off < len; k++) {
        size_t n = sizes[k % nsizes];
        if (n > len - off) {
            n = len - off;
        }
        assert_int_equal(feed_copy(&st, s + off, n, &got, err), 0);
        off += n;
    }
    assert_int_equal(k8s_stream_pending(&st), 0);
    assert_rec_equal(&got, want);
    rec_free(&got);
    k8s_stream_deinit(&st);
}

/* Splits s at every position into two feeds; each split gives `want`. */
static void assert_every_split(const char *s, size_t len, const struct rec *want)
{
    for (size_t at = 0; at <= len; at++) {
        size_t sizes[2] = {at, len - at};
        assert_chunked(s, len, sizes, 2, want);
    }
}

static void test_k8s_stream_whole(void **state)
{
    (void)state;
    struct rec r = {0};
    struct k8s_status status;
    feed_whole(STREAM, sizeof(STREAM) - 1, 0, &r);
    assert_int_equal(r.n, 6);

    static const enum k8s_event_type types[] = {K8S_EVENT_ADDED,    K8S_EVENT_ADDED,
                                                K8S_EVENT_MODIFIED, K8S_EVENT_DELETED,
                                                K8S_EVENT_BOOKMARK, K8S_EVENT_ERROR};
    static const char *const names[] = {"eu-prod", "us-east", "eu-prod", "us-east", NULL, NULL};
    static const char *const rvs[] = {"48213", "48217", "48230", "48241", "48250", NULL};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r.type[i], types[i]);
        if (names[i] == NULL) {
            assert_null(k8s_meta_name(r.object[i]));
        } else {
            assert_string_equal(k8s_meta_name(r.object[i]), names[i]);
        }
        if (rvs[i] == NULL) {
            assert_null(k8s_meta_resource_version(r.object[i]));
        } else {
            assert_string_equal(k8s_meta_resource_version(r.object[i]), rvs[i]);
        }
        assert_null(k8s_meta_namespace(r.object[i])); /* Clusters are cluster-scoped */
    }
    assert_string_equal(r.raw[0], EV_ADDED_EU);
    assert_string_equal(r.raw[5], EV_ERROR);
    assert_string_equal(k8s_meta_uid(r.object[0]), "6f1c2a8e-3b7d-4e0a-9c55-0d2f8b1e7a43");
    assert_string_equal(k8s_meta_annotation(r.object[0], "loft.sh/derp-endpoint"),
                        "derp-eu.example.com:443");
    assert_string_equal(k8s_meta_annotation(r.object[2], "loft.sh/derp-endpoint"),
                        "derp-eu2.example.com:443");
    assert_string_equal(k8s_meta_annotation(r.object[1], "example.com/note"), NOTE);
    assert_string_equal(k8s_meta_annotation(r.object[1], "example.com/html"), HTML);
    assert_string_equal(k8s_meta_annotation(r.object[1], "example.com/utf8"), UTF8);
    assert_string_equal(k8s_meta_annotation(r.object[4], K8S_ANNOT_INITIAL_EVENTS_END), "true");
    assert_null(k8s_meta_annotation(r.object[0], K8S_ANNOT_INITIAL_EVENTS_END));

    assert_int_equal(k8s_status_parse(r.object[5], &status), 0);
    assert_int_equal(status.code, 410);
    assert_string_equal(status.status, "Failure");
    assert_string_equal(status.reason, "Expired");
    assert_string_equal(status.message, "too old resource version: 48000 (48213)");
    assert_true(k8s_status_is_expired(&status));
    rec_free(&r);
}

static void test_k8s_stream_byte_by_byte(void **state)
{
    (void)state;
    struct rec want = {0};
    static const size_t one[] = {1};
    feed_whole(STREAM, sizeof(STREAM) - 1, 0, &want);
    assert_chunked(STREAM, sizeof(STREAM) - 1, one, 1, &want);
    rec_free(&want);
}

static void test_k8s_stream_every_split(void **state)
{
    (void)state;
    struct rec want = {0};
    feed_whole(STREAM, sizeof(STREAM) - 1, 0, &want);
    assert_every_split(STREAM, sizeof(STREAM) - 1, &want);
    rec_free(&want);
}

static void test_k8s_stream_odd_chunks(void **state)
{
    (void)state;
    struct rec want = {0};
    /* empty feeds, primes, a chunk bigger than one event, one of the whole rest */
    static const size_t a[] = {0, 3, 0, 7, 13, 1, 2, 1500, 31};
    static const size_t b[] = {4095, 2, 8192};
    feed_whole(STREAM, sizeof(STREAM) - 1, 0, &want);
    assert_chunked(STREAM, sizeof(STREAM) - 1, a, sizeof(a) / sizeof(a[0]), &want);
    assert_chunked(STREAM, sizeof(STREAM) - 1, b, sizeof(b) / sizeof(b[0]), &want);
    rec_free(&want);
}

static void test_k8s_stream_strings(void **state)
{
    (void)state;
    /* braces, brackets, quotes and backslashes inside strings and keys;
     * escapes split anywhere; \u escapes for '}' and '"' and a surrogate pair */
    static const char s[] =
        "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a}b\",\"annotations\":{"
        "\"q\":\"\\\"}{\",\"bs\":\"\\\\\",\"bsq\":\"\\\\\\\"}\",\"u\":\"\\u007d\\u0022"
        "\\ud83d\\ude80\",\"}{\":\"]\"}},\"list\":[\"]\",\"[\",{\"x\":\"}\"},[[]]]}}"
        "{\"type\":\"DELETED\",\"object\":{\"k\":\"\\\\\"}}";
    struct rec r = {0};
    feed_whole(s, sizeof(s) - 1, 0, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.type[0], K8S_EVENT_MODIFIED);
    assert_int_equal(r.type[1], K8S_EVENT_DELETED);
    assert_string_equal(k8s_meta_name(r.object[0]), "a}b");
    assert_string_equal(k8s_meta_annotation(r.object[0], "q"), "\"}{");
    assert_string_equal(k8s_meta_annotation(r.object[0], "bs"), "\\");
    assert_string_equal(k8s_meta_annotation(r.object[0], "bsq"), "\\\"}");
    assert_string_equal(k8s_meta_annotation(r.object[0], "u"), "}\"\360\237\232\200");
    assert_string_equal(k8s_meta_annotation(r.object[0], "}{"), "]");
    assert_int_equal(json_array_size(json_object_get(r.object[0], "list")), 4);
    assert_string_equal(json_string_value(json_object_get(r.object[1], "k")), "\\");
    assert_every_split(s, sizeof(s) - 1, &r);
    rec_free(&r);
}

static void test_k8s_stream_no_newline(void **state)
{
    (void)state;
    static const char two[] = EV_BOOKMARK EV_ERROR;
    struct rec r = {0};
    feed_whole(two, sizeof(two) - 1, 0, &r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.type[0], K8S_EVENT_BOOKMARK);
    assert_int_equal(r.type[1], K8S_EVENT_ERROR);
    assert_string_equal(r.raw[0], EV_BOOKMARK);
    assert_string_equal(r.raw[1], EV_ERROR);
    assert_every_split(two, sizeof(two) - 1, &r);
    rec_free(&r);
}

static void test_k8s_stream_whitespace(void **state)
{
    (void)state;
    static const char spaced[] =
        " \r\n\t" EV_ADDED_EU "\r\n" EV_ADDED_US "\r\n\r\n  \t" EV_MODIFIED_EU
        "\n\n\n" EV_DELETED_US " " EV_BOOKMARK "\t" EV_ERROR "\r\n \r\n";
    struct rec want = {0}, got = {0};
    feed_whole(STREAM, sizeof(STREAM) - 1, 0, &want);
    feed_whole(spaced, sizeof(spaced) - 1, 0, &got);
    assert_rec_equal(&got, &want);
    rec_free(&got);
    /* whitespace alone, or only between events, yields nothing and holds nothing */
    feed_whole(" \r\n\t\r\n", 6, 0, &got);
    assert_int_equal(got.n, 0);
    static const size_t one[] = {1};
    assert_chunked(spaced, sizeof(spaced) - 1, one, 1, &want);
    rec_free(&want);
}

/* Writes {"type":"ADDED","object":{"p":"xx...x"}} of exactly len bytes (>= 33)
 * into a new heap string. */
static char *event_of_len(size_t len)
{
    static const char head[] = "{\"type\":\"ADDED\",\"object\":{\"p\":\"";
    static const char tail[] = "\"}}";
    size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
    assert_true(len >= fixed);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'x', len - fixed);
    memcpy(s + len - (sizeof(tail) - 1), tail, sizeof(tail));
    return s;
}

static void test_k8s_stream_too_big(void **state)
{
    (void)state;
    struct k8s_stream st;
    struct rec r = {0};
    char err[DC_ERR_LEN] = "";
    char *exact = event_of_len(64);
    char *over = event_of_len(65);

    k8s_stream_init(&st, 0);
    assert_int_equal(st.max_event, K8S_STREAM_MAX_EVENT);
    k8s_stream_deinit(&st);

    /* exactly the max is fine, whole or split */
    k8s_stream_init(&st, 64);
    assert_int_equal(feed_copy(&st, exact, 64, &r, err), 0);
    assert_int_equal(feed_copy(&st, exact, 10, &r, err), 0);
    assert_int_equal(feed_copy(&st, exact + 10, 54, &r, err), 0);
    assert_int_equal(r.n, 2);

    /* one byte more fails as soon as that byte arrives, after earlier events */
    assert_int_equal(feed_copy(&st, exact, 64, &r, err), 0);
    assert_int_equal(feed_copy(&st, over, 64, &r, err), 0);
    assert_int_equal(k8s_stream_pending(&st), 64);
    assert_int_equal(feed_copy(&st, over + 64, 1, &r, err), -EMSGSIZE);
    assert_non_null(strstr(err, "longer than 64 bytes"));
    assert_int_equal(r.n, 3);
    /* sticky until reset */
    assert_int_equal(feed_copy(&st, exact, 64, &r, err), -EMSGSIZE);
    assert_int_equal(r.n, 3);
    k8s_stream_reset(&st);
    assert_int_equal(feed_copy(&st, exact, 64, &r, err), 0);
    assert_int_equal(r.n, 4);

    /* in one feed: the event before is delivered, then the error */
    k8s_stream_reset(&st);
    char both[64 + 65];
    memcpy(both, exact, 64);
    memcpy(both + 64, over, 65);
    assert_int_equal(feed_copy(&st, both, sizeof(both), &r, err), -EMSGSIZE);
    assert_int_equal(r.n, 5);
    /* an event that never ends is cut at max + 1 bytes, not buffered forever */
    k8s_stream_reset(&st);
    assert_int_equal(feed_copy(&st, over, 60, &r, err), 0);
    char more[100];
    memset(more, 'x', sizeof(more));
    assert_int_equal(feed_copy(&st, more, sizeof(more), &r, err), -EMSGSIZE);
    assert_int_equal(st.buf.len, 0);
    k8s_stream_deinit(&st);
    rec_free(&r);
    free(exact);
    free(over);
}

/* Feeds s to a fresh stream whole and byte by byte; both must fail with
 * code after `events` events and an error text containing `want`. */
static void assert_fails(const char *s, size_t len, int code, size_t events, const char *want)
{
    struct k8s_stream st;
    struct rec r = {0};
    char err[DC_ERR_LEN] = "";
    k8s_stream_init(&st, 0);
    assert_int_equal(feed_copy(&st, s, len, &r, err), code);
    assert_int_equal(r.n, events);
    assert_non_null(memchr(err, '\0', sizeof(err)));
    if (strstr(err, want) == NULL) {
        fail_msg("error `%s' lacks `%s'", err, want);
    }
    rec_free(&r);
    k8s_stream_reset(&st);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        rc = feed_copy(&st, s + i, 1, &r, err);
    }
    assert_int_equal(rc, code);
    assert_int_equal(r.n, events);
    rec_free(&r);
    k8s_stream_deinit(&st);
}

#define FAILS(lit, code, events, want) assert_fails(lit, sizeof(lit) - 1, code, events, want)

static void test_k8s_stream_malformed(void **state)
{
    (void)state;
    FAILS("{\"type\":\"ADDED\",\"object\":{\"a\":1,}}", -EINVAL, 0,
          "malformed JSON at byte 33 (string or '}' expected near '}'): "
          "`{\"type\":\"ADDED\",\"object\":{\"a\":1,}}'");
    FAILS(EV_BOOKMARK "{\"type\":\"ADDED\",\"object\":{\"a\":[1}]}", -EINVAL, 1,
          "`{\"type\":\"ADDED\",\"object\":{\"a\":[1}]}'");
    /* a long event is quoted by its first bytes; control bytes become '?' */
    FAILS("{\"type\":\"ADDED\",\n\"object\":{\"metadata\":{\"name\":\"x\"}},}", -EINVAL, 0,
          "`{\"type\":\"ADDED\",?\"object\":{\"metadata\":{\"...'");
    FAILS("{\"type\":\"ADDED\",\"object\":{\"a\":\"tab\there\"}}", -EINVAL, 0, "malformed JSON");
    FAILS("{\"type\":\"ADDED\",\"object\":{\"a\":\"\377\"}}", -EINVAL, 0, "malformed JSON");
    /* between events only whitespace and '{' may appear */
    FAILS(EV_BOOKMARK "\nHTTP/1.1 200 OK\r\n", -EINVAL, 1, "expected '{' between events: `HTTP");
    FAILS("[{\"type\":\"ADDED\",\"object\":{}}]", -EINVAL, 0, "expected '{'");
    FAILS("\"type\"", -EINVAL, 0, "expected '{'");
    FAILS("\xef\xbb\xbf{}", -EINVAL, 0, "`???{}'");
    FAILS("{}}", -EINVAL, 0, "no \"type\" string");
    FAILS("{\"type\":\"ADDED\",\"object\":{}}}", -EINVAL, 1, "expected '{' between events: `}'");
}

static void test_k8s_stream_bad_type(void **state)
{
    (void)state;
    FAILS("{\"type\":\"SYNC\",\"object\":{}}", -EINVAL, 0, "unknown type `SYNC'");
    FAILS("{\"type\":\"added\",\"object\":{}}", -EINVAL, 0, "unknown type `added'");
    FAILS("{\"type\":\"ADDED\\u0000\",\"object\":{}}", -EINVAL, 0, "unknown type `ADDED?'");
    FAILS("{\"type\":\"\",\"object\":{}}", -EINVAL, 0, "unknown type `'");
    FAILS("{\"type\":1,\"object\":{}}", -EINVAL, 0, "no \"type\" string");
    FAILS("{\"object\":{}}", -EINVAL, 0, "no \"type\" string");
    FAILS("{\"type\":\"ADDED\"}", -EINVAL, 0, "ADDED event without an \"object\" object");
    FAILS("{\"type\":\"ERROR\",\"object\":\"gone\"}", -EINVAL, 0, "ERROR event without");
    FAILS("{\"type\":\"DELETED\",\"object\":[]}", -EINVAL, 0, "DELETED event without");
    FAILS(EV_ADDED_EU "\n{\"type\":\"BOOKMARK\",\"object\":null}\n" EV_ERROR, -EINVAL, 1,
          "BOOKMARK event without");
}

static void test_k8s_stream_reset_mid_event(void **state)
{
    (void)state;
    struct k8s_stream st;
    struct rec r = {0};
    char err[DC_ERR_LEN] = "";
    static const char added[] = EV_ADDED_EU;
    k8s_stream_init(&st, 0);
    assert_int_equal(feed_copy(&st, added, 500, &r, err), 0);
    assert_int_equal(k8s_stream_pending(&st), 500);
    assert_int_equal(r.n, 0);
    /* the connection drops; the new one starts with a bookmark */
    k8s_stream_reset(&st);
    assert_int_equal(k8s_stream_pending(&st), 0);
    assert_int_equal(feed_copy(&st, EV_BOOKMARK "\n", sizeof(EV_BOOKMARK), &r, err), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.type[0], K8S_EVENT_BOOKMARK);
    /* reset inside a string, inside an escape */
    static const char esc[] = "{\"type\":\"ADDED\",\"object\":{\"a\":\"\\";
    assert_int_equal(feed_copy(&st, esc, sizeof(esc) - 1, &r, err), 0);
    k8s_stream_reset(&st);
    assert_int_equal(feed_copy(&st, EV_ERROR, sizeof(EV_ERROR) - 1, &r, err), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.type[1], K8S_EVENT_ERROR);
    k8s_stream_deinit(&st);
    /* deinit mid-event frees the partial event; the stream can be fed again */
    assert_int_equal(feed_copy(&st, added, 100, &r, err), 0);
    k8s_stream_deinit(&st);
    assert_int_equal(feed_copy(&st, added, sizeof(added) - 1, &r, err), 0);
    assert_int_equal(r.n, 3);
    k8s_stream_deinit(&st);
    rec_free(&r);
}

static void test_k8s_stream_callback_stops(void **state)
{
    (void)state;
    struct k8s_stream st;
    struct rec r = {.stop_at = 2};
    char err[DC_ERR_LEN] = "";
    k8s_stream_init(&st, 0);
    assert_int_equal(feed_copy(&st, STREAM, sizeof(STREAM) - 1, &r, err), -ECANCELED);
    assert_int_equal(r.n, 2);
    assert_non_null(strstr(err, "watch event: ADDED handler failed: "));
    assert_int_equal(feed_copy(&st, EV_BOOKMARK, sizeof(EV_BOOKMARK) - 1, &r, err), -ECANCELED);
    assert_non_null(strstr(err, "reset"));
    assert_int_equal(r.n, 2);
    k8s_stream_reset(&st);
    assert_int_equal(feed_copy(&st, EV_BOOKMARK, sizeof(EV_BOOKMARK) - 1, &r, err), 0);
    assert_int_equal(r.n, 3);
    k8s_stream_deinit(&st);
    rec_free(&r);
}

static void test_k8s_stream_buffer_memory(void **state)
{
    (void)state;
    struct k8s_stream st;
    struct rec r = {0};
    char err[DC_ERR_LEN] = "";
    size_t big_len = 3 * K8S_STREAM_KEEP_LEN;
    char *big = event_of_len(big_len);
    k8s_stream_init(&st, 0);
    /* a small event split across feeds keeps its buffer for the next one */
    assert_int_equal(feed_copy(&st, EV_BOOKMARK, 10, &r, err), 0);
    assert_int_equal(feed_copy(&st, EV_BOOKMARK + 10, sizeof(EV_BOOKMARK) - 11, &r, err), 0);
    assert_int_equal(st.buf.len, 0);
    assert_true(st.buf.cap > 0 && st.buf.cap <= K8S_STREAM_KEEP_LEN);
    /* a large one is freed once delivered */
    assert_int_equal(feed_copy(&st, big, big_len / 2, &r, err), 0);
    assert_int_equal(k8s_stream_pending(&st), big_len / 2);
    assert_int_equal(feed_copy(&st, big + big_len / 2, big_len - big_len / 2, &r, err), 0);
    assert_int_equal(st.buf.cap, 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(strlen(r.raw[1]), big_len);
    /* a large event inside one feed is never copied */
    assert_int_equal(feed_copy(&st, big, big_len, &r, err), 0);
    assert_int_equal(st.buf.cap, 0);
    assert_int_equal(r.n, 3);
    k8s_stream_deinit(&st);
    rec_free(&r);
    free(big);
}

static void test_k8s_stream_status(void **state)
{
    (void)state;
    struct k8s_status st;
    json_t *o = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion",
                          "v1", "metadata", "status", "Failure", "message",
                          "The resourceVersion for the provided watch is too old.", "reason",
                          "Gone", "code", 410);
    assert_non_null(o);
    assert_int_equal(k8s_status_parse(o, &st), 0);
    assert_int_equal(st.code, 410);
    assert_string_equal(st.reason, "Gone");
    assert_string_equal(st.message, "The resourceVersion for the provided watch is too old.");
    assert_true(k8s_status_is_expired(&st));
    json_decref(o);

    /* a 500 with another reason is not "relist" */
    o = json_pack("{s:s, s:s, s:s, s:i}", "kind", "Status", "reason", "InternalError", "message",
                  "etcd timeout", "code", 500);
    assert_int_equal(k8s_status_parse(o, &st), 0);
    assert_false(k8s_status_is_expired(&st));
    json_decref(o);
    /* 410 without a reason still is; absent fields are "" and 0 */
    o = json_pack("{s:i}", "code", 410);
    assert_int_equal(k8s_status_parse(o, &st), 0);
    assert_string_equal(st.reason, "");
    assert_string_equal(st.status, "");
    assert_true(k8s_status_is_expired(&st));
    json_decref(o);
    o = json_pack("{s:s}", "reason", "Expired");
    assert_int_equal(k8s_status_parse(o, &st), 0);
    assert_int_equal(st.code, 0);
    assert_true(k8s_status_is_expired(&st));
    json_decref(o);

    /* wrong shapes */
    static const char *const bad[] = {
        "{\"kind\":\"Cluster\",\"code\":410}",
        "{\"code\":\"410\"}",
        "{\"code\":4100}",
        "{\"code\":-1}",
        "{\"code\":410.0}",
        "{\"reason\":7}",
        "{\"message\":null}",
        "{\"status\":[]}",
        "{\"kind\":null}",
        "[]",
        "\"Status\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        assert_non_null(o);
        st.code = 7;
        assert_int_equal(k8s_status_parse(o, &st), -EINVAL);
        assert_int_equal(st.code, 0);
        assert_string_equal(st.reason, "");
        assert_string_equal(st.message, "");
        json_decref(o);
    }
    assert_int_equal(k8s_status_parse(NULL, &st), -EINVAL);
}

static void test_k8s_stream_meta(void **state)
{
    (void)state;
    json_t *o = json_loads("{\"metadata\":{\"name\":\"derp-controller-x7k2p\",\"namespace\":"
                           "\"vcluster-platform\",\"uid\":\"3c2b\",\"resourceVersion\":\"91234\","
                           "\"annotations\":{\"a\":\"x\\u0000y\",\"b\":1,\"c\":\"\"}}}",
                           JSON_ALLOW_NUL, NULL);
    assert_non_null(o);
    assert_string_equal(k8s_meta_name(o), "derp-controller-x7k2p");
    assert_string_equal(k8s_meta_namespace(o), "vcluster-platform");
    assert_string_equal(k8s_meta_uid(o), "3c2b");
    assert_string_equal(k8s_meta_resource_version(o), "91234");
    assert_null(k8s_meta_annotation(o, "a")); /* holds a NUL byte */
    assert_null(k8s_meta_annotation(o, "b"));
    assert_string_equal(k8s_meta_annotation(o, "c"), "");
    assert_null(k8s_meta_annotation(o, "d"));
    json_decref(o);

    static const char *const odd[] = {
        "{}", "{\"metadata\":[]}", "{\"metadata\":{\"name\":5}}",
        "[]", "\"metadata\"",      "{\"metadata\":{\"annotations\":[]}}"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        o = json_loads(odd[i], JSON_DECODE_ANY, NULL);
        assert_non_null(o);
        assert_null(k8s_meta_name(o));
        assert_null(k8s_meta_resource_version(o));
        assert_null(k8s_meta_annotation(o, "a"));
        json_decref(o);
    }
    assert_null(k8s_meta_uid(NULL));
    assert_null(k8s_meta_annotation(NULL, "a"));
}

static void test_k8s_stream_null_in_string(void **state)
{
    (void)state;
    /* Go may send \u0000 inside a string; the event still decodes */
    static const char s[] =
        "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\u0000b\",\"resourceVersion\":"
        "\"7\"}}}\n";
    struct rec r = {0};
    feed_whole(s, sizeof(s) - 1, 0, &r);
    assert_int_equal(r.n, 1);
    assert_null(k8s_meta_name(r.object[0]));
    assert_string_equal(k8s_meta_resource_version(r.object[0]), "7");
    rec_free(&r);
}

static void test_k8s_stream_type_names(void **state)
{
    (void)state;
    struct k8s_stream zero = {0};
    k8s_stream_deinit(&zero); /* the all-zero struct is safe to deinit */
    assert_int_equal(k8s_stream_pending(&zero), 0);
    assert_string_equal(k8s_event_type_name(K8S_EVENT_ADDED), "ADDED");
    assert_string_equal(k8s_event_type_name(K8S_EVENT_MODIFIED), "MODIFIED");
    assert_string_equal(k8s_event_type_name(K8S_EVENT_DELETED), "DELETED");
    assert_string_equal(k8s_event_type_name(K8S_EVENT_BOOKMARK), "BOOKMARK");
    assert_string_equal(k8s_event_type_name(K8S_EVENT_ERROR), "ERROR");
    assert_string_equal(k8s_event_type_name((enum k8s_event_type)0), "?");
    assert_string_equal(k8s_event_type_name((enum k8s_event_type)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k8s_stream_whole),
        cmocka_unit_test(test_k8s_stream_byte_by_byte),
        cmocka_unit_test(test_k8s_stream_every_split),
        cmocka_unit_test(test_k8s_stream_odd_chunks),
        cmocka_unit_test(test_k8s_stream_strings),
        cmocka_unit_test(test_k8s_stream_no_newline),
        cmocka_unit_test(test_k8s_stream_whitespace),
        cmocka_unit_test(test_k8s_stream_too_big),
        cmocka_unit_test(test_k8s_stream_malformed),
        cmocka_unit_test(test_k8s_stream_bad_type),
        cmocka_unit_test(test_k8s_stream_reset_mid_event),
        cmocka_unit_test(test_k8s_stream_callback_stops),
        cmocka_unit_test(test_k8s_stream_buffer_memory),
        cmocka_unit_test(test_k8s_stream_status),
        cmocka_unit_test(test_k8s_stream_meta),
        cmocka_unit_test(test_k8s_stream_null_in_string),
        cmocka_unit_test(test_k8s_stream_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
