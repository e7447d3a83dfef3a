/* test_k8s_fields: JSON pointer projections (k8s-client/k8s_fields.c) on a
 * management.loft.sh/v1 Cluster and a discovery.k8s.io/v1 EndpointSlice as
 * kube-apiserver returns them, plus RFC 6901's own examples. */
#include "k8s_fields.h"

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

static const char CLUSTER[] =
    "{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft.sh/v1\",\"metadata\":{\"name\":"
    "\"eu-prod\",\"uid\":\"6f1c2a8e-3b7d-4e0a-9c55-0d2f8b1e7a43\",\"resourceVersion\":\"48213\","
    "\"generation\":3,\"creationTimestamp\":\"2026-11-20T09:14:02Z\",\"annotations\":{"
    "\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"apiVersion\\\":\\\"management."
    "loft.sh/"
    "v1\\\",\\\"kind\\\":\\\"Cluster\\\",\\\"metadata\\\":{\\\"annotations\\\":{\\\"loft.sh/"
    "derp-endpoint\\\":\\\"derp-eu.example.com:443\\\"},\\\"name\\\":\\\"eu-prod\\\"},\\\"spec\\\":"
    "{"
    "\\\"displayName\\\":\\\"EU production\\\"}}\\n\",\"loft.sh/derp-endpoint\":\"derp-eu.example."
    "com:443\",\"loft.sh/derp-insecure\":\"false\",\"odd~key/x\":\"tilde\"},\"finalizers\":["
    "\"loft.sh/cleanup\"],\"managedFields\":[{\"manager\":\"kubectl-client-side-apply\","
    "\"operation\":\"Update\",\"apiVersion\":\"management.loft.sh/v1\",\"time\":\"2026-11-20T09:14:"
    "02Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:annotations\":{\".\":{},"
    "\"f:loft.sh/derp-endpoint\":{}}},\"f:spec\":{\".\":{},\"f:displayName\":{}}}}]},\"spec\":{"
    "\"displayName\":\"EU production\",\"owner\":{\"user\":\"admin\"},\"config\":{\"secretName\":"
    "\"loft-cluster-config-eu-prod\",\"secretNamespace\":\"loft\"},\"local\":false,\"networkPeer\":"
    "true,\"access\":[{\"verbs\":[\"*\"],\"subresources\":[\"*\"],\"users\":[\"admin\"]}]},"
    "\"status\":{\"phase\":\"Initialized\",\"message\":\"\"}}";

static const char ENDPOINT_SLICE[] =
    "{\"kind\":\"EndpointSlice\",\"apiVersion\":\"discovery.k8s.io/v1\",\"metadata\":{\"name\":"
    "\"derp-controller-x7k2p\",\"generateName\":\"derp-controller-\",\"namespace\":\"vcluster-"
    "platform\",\"uid\":\"9a1d5e3c-7b2f-4c8e-a6d0-1f3e5b7c9d2a\",\"resourceVersion\":\"91234\","
    "\"generation\":7,\"creationTimestamp\":\"2026-11-18T16:02:11Z\",\"labels\":{\"endpointslice."
    "kubernetes.io/managed-by\":\"endpointslice-controller.k8s.io\",\"kubernetes.io/service-name\":"
    "\"derp-controller\"},\"annotations\":{\"endpoints.kubernetes.io/last-change-trigger-time\":"
    "\"2026-11-20T09:30:00Z\"},\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Service\","
    "\"name\":\"derp-controller\",\"uid\":\"5e0c1b2a-3d4f-4a5b-8c6d-7e8f9a0b1c2d\",\"controller\":"
    "true,\"blockOwnerDeletion\":true}]},\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":["
    "\"10.244.1.17\"],\"conditions\":{\"ready\":true,\"serving\":true,\"terminating\":false},"
    "\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"vcluster-platform\",\"name\":\"derp-"
    "controller-"
    "7d9f8c6b5-abcde\",\"uid\":\"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d\"},\"nodeName\":\"node-a\","
    "\"zone\":\"eu-west-1a\"},{\"addresses\":[\"10.244.2.9\"],\"conditions\":{\"ready\":false,"
    "\"serving\":true,\"terminating\":true},\"targetRef\":{\"kind\":\"Pod\",\"namespace\":"
    "\"vcluster-"
    "platform\",\"name\":\"derp-controller-7d9f8c6b5-fghij\",\"uid\":\"2b3c4d5e-6f7a-4b8c-9d0e-"
    "1f2a3b4c5d6e\"},\"nodeName\":\"node-b\",\"zone\":\"eu-west-1b\"},{\"addresses\":[\"10.244.3."
    "4\"],"
    "\"conditions\":{\"ready\":true,\"serving\":true,\"terminating\":false},\"nodeName\":\"node-"
    "c\","
    "\"zone\":\"eu-west-1c\"}],\"ports\":[{\"name\":\"derp\",\"protocol\":\"TCP\",\"port\":443},{"
    "\"name\":\"metrics\",\"protocol\":\"TCP\",\"port\":9090}]}";

/* RFC 6901 section 5's example document. */
static const char RFC_DOC[] = "{\"foo\":[\"bar\",\"baz\"],\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,"
                              "\"g|h\":4,\"i\\\\j\":5,\"k\\\"l\":6,\" \":7,\"m~n\":8}";

static json_t *load(const char *s)
{
    json_error_t jerr;
    json_t *v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        fail_msg("test JSON: %s at %d", jerr.text, jerr.position);
    }
    return v;
}

static void assert_json_equal(const json_t *got, const char *want)
{
    json_t *w = load(want);
    if (!json_equal(got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, want %s", g != NULL ? g : "(null)", want);
    }
    json_decref(w);
}

/* Projects src by ptrs; returns the new value after checking the promise:
 * every kept pointer resolves to an equal value in the result. */
static json_t *project(const json_t *src, const char *const *ptrs, size_t n)
{
    struct k8s_projection p;
    char err[DC_ERR_LEN] = "";
    if (k8s_projection_init(&p, ptrs, n, err) != 0) {
        fail_msg("projection_init: %s", err);
    }
    json_t *out = k8s_project(&p, src);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        const json_t *want = k8s_pointer_get(src, ptrs[i]);
        const json_t *got = k8s_pointer_get(out, ptrs[i]);
        assert_true(want == NULL ? got == NULL : json_equal(got, want));
    }
    k8s_projection_deinit(&p);
    return out;
}

#define PROJECT(src, ...)                                                                          \
    project(src, (const char *const[]){__VA_ARGS__},                                               \
            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* Every value reachable from v has exactly one reference: nothing in a
 * projection is shared with anything else (true, false and null are
 * jansson's immortal singletons). */
static void assert_unshared(const json_t *v)
{
    if (json_is_true(v) || json_is_false(v) || json_is_null(v)) {
        return;
    }
    assert_int_equal(v->refcount, 1);
    if (json_is_object(v)) {
        const char *k;
        const json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            assert_unshared(m);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            assert_unshared(json_array_get(v, i));
        }
    }
}

static void test_k8s_fields_cluster(void **state)
{
    (void)state;
    json_t *src = load(CLUSTER);
    json_t *out = PROJECT(
        src, "/metadata/name", "/metadata/annotations/loft.sh~1derp-endpoint", "/spec/displayName",
        "/metadata/resourceVersion", "/metadata/annotations/loft.sh~1derp-insecure",
        "/metadata/annotations/odd~0key~1x", "/spec/access/0/verbs", "/status/phase");
    assert_json_equal(out, "{\"metadata\":{\"name\":\"eu-prod\",\"resourceVersion\":\"48213\","
                           "\"annotations\":{\"loft.sh/derp-endpoint\":\"derp-eu.example.com:443\","
                           "\"loft.sh/derp-insecure\":\"false\",\"odd~key/x\":\"tilde\"}},"
                           "\"spec\":{\"displayName\":\"EU production\",\"access\":[{\"verbs\":"
                           "[\"*\"]}]},\"status\":{\"phase\":\"Initialized\"}}");
    assert_string_equal(k8s_pointer_get_string(out, "/metadata/annotations/loft.sh~1derp-endpoint"),
                        "derp-eu.example.com:443");
    assert_unshared(out);
    json_decref(out);
    json_decref(src);
}

static void test_k8s_fields_endpoint_slice(void **state)
{
    (void)state;
    json_t *src = load(ENDPOINT_SLICE);
    json_t *out = PROJECT(src, "/metadata/name", "/metadata/namespace", "/endpoints/0/addresses",
                          "/endpoints/1/addresses", "/endpoints/1/conditions/ready",
                          "/endpoints/2/addresses", "/endpoints/3/addresses", "/ports/0/port",
                          "/metadata/labels/kubernetes.io~1service-name");
    assert_json_equal(
        out, "{\"metadata\":{\"name\":\"derp-controller-x7k2p\",\"namespace\":\"vcluster-"
             "platform\",\"labels\":{\"kubernetes.io/service-name\":\"derp-controller\"}},"
             "\"endpoints\":[{\"addresses\":[\"10.244.1.17\"]},{\"addresses\":[\"10.244.2.9\"],"
             "\"conditions\":{\"ready\":false}},{\"addresses\":[\"10.244.3.4\"]}],"
             "\"ports\":[{\"port\":443}]}");
    assert_unshared(out);
    json_decref(out);

    /* an element kept alone keeps its index: nulls pad the ones not kept */
    out = PROJECT(src, "/endpoints/2/nodeName", "/ports/1");
    assert_json_equal(out, "{\"endpoints\":[null,null,{\"nodeName\":\"node-c\"}],\"ports\":[null,"
                           "{\"name\":\"metrics\",\"protocol\":\"TCP\",\"port\":9090}]}");
    json_decref(out);
    /* a later pointer through a padding null replaces it with a container */
    out = PROJECT(src, "/endpoints/2/zone", "/endpoints/0/zone", "/endpoints/1");
    assert_json_equal(out, "{\"endpoints\":[{\"zone\":\"eu-west-1a\"},{\"addresses\":["
                           "\"10.244.2.9\"],\"conditions\":{\"ready\":false,\"serving\":true,"
                           "\"terminating\":true},\"targetRef\":{\"kind\":\"Pod\",\"namespace\":"
                           "\"vcluster-platform\",\"name\":\"derp-controller-7d9f8c6b5-fghij\","
                           "\"uid\":\"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e\"},\"nodeName\":"
                           "\"node-b\",\"zone\":\"eu-west-1b\"},{\"zone\":\"eu-west-1c\"}]}");
    json_decref(out);
    json_decref(src);
}

static void test_k8s_fields_escapes(void **state)
{
    (void)state;
    json_t *doc = load(RFC_DOC);
    /* RFC 6901 section 5, one by one */
    assert_ptr_equal(k8s_pointer_get(doc, ""), doc);
    assert_json_equal(k8s_pointer_get(doc, "/foo"), "[\"bar\",\"baz\"]");
    assert_string_equal(k8s_pointer_get_string(doc, "/foo/0"), "bar");
    static const char *const ptrs[] = {"/",     "/a~1b", "/c%d", "/e^f", "/g|h",
                                       "/i\\j", "/k\"l", "/ ",   "/m~0n"};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++) {
        const json_t *v = k8s_pointer_get(doc, ptrs[i]);
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), (json_int_t)i);
    }
    json_t *out = project(doc, ptrs, sizeof(ptrs) / sizeof(ptrs[0]));
    assert_json_equal(out, "{\"\":0,\"a/b\":1,\"c%d\":2,\"e^f\":3,\"g|h\":4,\"i\\\\j\":5,"
                           "\"k\\\"l\":6,\" \":7,\"m~n\":8}");
    json_decref(out);
    json_decref(doc);

    /* "~01" is "~1" (decode ~0 last), "~10" is "/0"; empty tokens are empty keys */
    doc = load("{\"~1\":\"a\",\"/0\":\"b\",\"~\":{\"\":{\"\":\"c\"}},\"x\":{\"~0\":\"d\"}}");
    assert_string_equal(k8s_pointer_get_string(doc, "/~01"), "a");
    assert_string_equal(k8s_pointer_get_string(doc, "/~10"), "b");
    assert_string_equal(k8s_pointer_get_string(doc, "/~0//"), "c");
    assert_string_equal(k8s_pointer_get_string(doc, "/x/~00"), "d");
    assert_null(k8s_pointer_get(doc, "/~1"));
    out = PROJECT(doc, "/~01", "/~0//", "/x/~00");
    assert_json_equal(out, "{\"~1\":\"a\",\"~\":{\"\":{\"\":\"c\"}},\"x\":{\"~0\":\"d\"}}");
    json_decref(out);
    json_decref(doc);
}

static void test_k8s_fields_missing(void **state)
{
    (void)state;
    json_t *src = load(ENDPOINT_SLICE);
    /* absent paths leave nothing behind, not even their parents */
    json_t *out =
        PROJECT(src, "/metadata/labels/app", "/metadata/name/x", "/endpoints/-", "/endpoints/3",
                "/endpoints/01", "/endpoints/1x", "/endpoints/+1", "/endpoints/ 1", "/endpoints/-1",
                "/endpoints/99999999999999999999999", "/endpoints/0/addresses/0/x",
                "/ports/0/port/0", "/spec", "/addressType/IPv4");
    assert_json_equal(out, "{}");
    json_decref(out);
    /* numeric tokens are plain member names in an object */
    json_t *num = load("{\"0\":{\"01\":true},\"-\":null}");
    out = PROJECT(num, "/0/01", "/-", "/1");
    assert_json_equal(out, "{\"0\":{\"01\":true},\"-\":null}");
    json_decref(out);
    json_decref(num);
    assert_null(k8s_pointer_get(src, "/endpoints/3/addresses"));
    assert_null(k8s_pointer_get_string(src, "/endpoints/0/addresses")); /* an array */
    assert_null(k8s_pointer_get_string(src, "/ports/0/port"));          /* a number */
    assert_string_equal(k8s_pointer_get_string(src, "/endpoints/2/addresses/0"), "10.244.3.4");
    assert_null(k8s_pointer_get(NULL, "/a"));
    assert_null(k8s_pointer_get(NULL, ""));
    assert_null(k8s_pointer_get(src, NULL));
    json_decref(src);

    json_t *nul = load("{\"a\":\"x\\u0000y\"}");
    assert_non_null(k8s_pointer_get(nul, "/a"));
    assert_null(k8s_pointer_get_string(nul, "/a"));
    json_decref(nul);
}

/* k8s_projection_init must fail with code and err containing want. */
static void assert_init_fails(const char *const *ptrs, size_t n, int code, const char *want)
{
    struct k8s_projection p;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(k8s_projection_init(&p, ptrs, n, err), code);
    assert_null(p.ptrs);
    assert_int_equal(p.n, 0);
    if (strstr(err, want) == NULL) {
        fail_msg("error `%s' lacks `%s'", err, want);
    }
    k8s_projection_deinit(&p);
    assert_int_equal(k8s_projection_init(&p, ptrs, n, NULL), code);
}

static void test_k8s_fields_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *ptr;
        const char *want;
    } bad[] = {
        {"", "must start with '/': `'"},
        {"metadata/name", "must start with '/': `metadata/name'"},
        {"#/metadata", "must start with '/'"},
        {"/a~2", "'~' must be followed by 0 or 1: `/a~2'"},
        {"/a~", "'~' must be followed by 0 or 1"},
        {"/~/b", "'~' must be followed by 0 or 1"},
        {"/a/~x~1", "'~' must be followed by 0 or 1"},
        {"/a\tb~", "`/a?b~'"},
    };
    json_t *doc = load("{\"a\":{\"~x/\":1}}");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *ptrs[] = {"/metadata/name", bad[i].ptr};
        assert_init_fails(ptrs, 2, -EINVAL, bad[i].want);
        if (bad[i].ptr[0] != '\0') {
            assert_null(k8s_pointer_get(doc, bad[i].ptr));
        }
    }
    const char *nullp[] = {"/a", NULL};
    assert_init_fails(nullp, 2, -EINVAL, "NULL");

    /* K8S_POINTER_MAX_LEN bytes is fine, one more is not */
    char long_ptr[K8S_POINTER_MAX_LEN + 2];
    long_ptr[0] = '/';
    memset(long_ptr + 1, 'a', K8S_POINTER_MAX_LEN);
    long_ptr[K8S_POINTER_MAX_LEN + 1] = '\0';
    const char *lp[] = {long_ptr};
    assert_init_fails(lp, 1, -EMSGSIZE, "longer than 1024 bytes: `/aaaa");
    assert_null(k8s_pointer_get(doc, long_ptr));
    long_ptr[K8S_POINTER_MAX_LEN] = '\0';
    struct k8s_projection p;
    assert_int_equal(k8s_projection_init(&p, lp, 1, NULL), 0);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.ptrs[0].ntokens, 1);
    k8s_projection_deinit(&p);

    /* K8S_PROJECTION_MAX_POINTERS pointers are fine, one more is not */
    const char *many[K8S_PROJECTION_MAX_POINTERS + 1];
    for (size_t i = 0; i <= K8S_PROJECTION_MAX_POINTERS; i++) {
        many[i] = "/metadata/name";
    }
    assert_init_fails(many, K8S_PROJECTION_MAX_POINTERS + 1, -EMSGSIZE, "257 given, at most 256");
    assert_int_equal(k8s_projection_init(&p, many, K8S_PROJECTION_MAX_POINTERS, NULL), 0);
    k8s_projection_deinit(&p);
    json_decref(doc);
}

static void test_k8s_fields_not_shared(void **state)
{
    (void)state;
    json_t *src = load(CLUSTER);
    json_t *out = PROJECT(src, "/metadata/name", "/metadata/annotations", "/spec/access/0",
                          "/metadata/generation", "/spec/networkPeer");
    char *before = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(before);
    assert_unshared(out);

    /* mutate the source in place, every kind of value */
    json_t *meta = json_object_get(src, "metadata");
    assert_int_equal(json_string_set(json_object_get(meta, "name"), "changed"), 0);
    assert_int_equal(json_integer_set(json_object_get(meta, "generation"), 99), 0);
    json_t *ann = json_object_get(meta, "annotations");
    assert_int_equal(json_string_set(json_object_get(ann, "loft.sh/derp-endpoint"), "x:1"), 0);
    assert_int_equal(json_object_set_new(ann, "new", json_string("v")), 0);
    json_t *access0 = json_array_get(json_object_get(json_object_get(src, "spec"), "access"), 0);
    assert_int_equal(json_array_clear(json_object_get(access0, "verbs")), 0);
    assert_int_equal(json_object_clear(json_object_get(src, "spec")), 0);

    char *after = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(after, before);
    free(after);
    /* and the projection outlives the source */
    json_decref(src);
    after = json_dumps(out, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(after, before);
    free(after);
    free(before);
    json_decref(out);
}

static void test_k8s_fields_overlap(void **state)
{
    (void)state;
    json_t *src = load(CLUSTER);
    json_t *whole = PROJECT(src, "/metadata");
    json_t *a = PROJECT(src, "/metadata", "/metadata/name",
                        "/metadata/annotations/loft.sh~1derp-"
                        "endpoint");
    json_t *b = PROJECT(src, "/metadata/name", "/metadata/annotations/loft.sh~1derp-endpoint",
                        "/metadata", "/metadata/name");
    assert_true(json_equal(a, whole));
    assert_true(json_equal(b, whole));
    assert_true(json_equal(json_object_get(whole, "metadata"), json_object_get(src, "metadata")));
    json_decref(whole);
    json_decref(a);
    json_decref(b);
    json_decref(src);
}

static void test_k8s_fields_roots(void **state)
{
    (void)state;
    json_t *arr = load("[{\"a\":1,\"b\":2},{\"a\":3}]");
    json_t *out = PROJECT(arr, "/1/a", "/0/b");
    assert_json_equal(out, "[{\"b\":2},{\"a\":3}]");
    json_decref(out);
    json_decref(arr);

    struct k8s_projection p = {0};
    json_t *s = json_string("x");
    assert_null(k8s_project(&p, s));
    assert_null(k8s_project(&p, NULL));
    assert_ptr_equal(k8s_pointer_get(s, ""), s);
    assert_null(k8s_pointer_get(s, "/x"));
    json_decref(s);

    /* the empty projection keeps nothing; zero state deinits */
    json_t *src = load(CLUSTER);
    out = k8s_project(&p, src);
    assert_json_equal(out, "{}");
    json_decref(out);
    assert_int_equal(k8s_projection_init(&p, NULL, 0, NULL), 0);
    out = k8s_project(&p, src);
    assert_json_equal(out, "{}");
    json_decref(out);
    k8s_projection_deinit(&p);
    k8s_projection_deinit(&p);
    json_decref(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_k8s_fields_cluster), cmocka_unit_test(test_k8s_fields_endpoint_slice),
        cmocka_unit_test(test_k8s_fields_escapes), cmocka_unit_test(test_k8s_fields_missing),
        cmocka_unit_test(test_k8s_fields_invalid), cmocka_unit_test(test_k8s_fields_not_shared),
        cmocka_unit_test(test_k8s_fields_overlap), cmocka_unit_test(test_k8s_fields_roots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
