/* test_cluster_yaml: the Cluster document reader (controller/cluster_yaml.c):
 * what each document delivers, what makes one invalid, and how the stream
 * stops on a syntax error with the documents before it already delivered. */
#include "cluster_yaml.h"

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

#define MAX_SEEN 16

/* One callback, copied. */
struct seen {
    bool is_valid;
    char *name, *display_name, *endpoint, *insecure; /* owned copies or NULL */
    size_t index;
    int line;
    char err[DC_ERR_LEN]; /* when !is_valid */
};

struct record {
    struct seen items[MAX_SEEN];
    size_t n;
};

static char *dup_or_null(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    char *c = strdup(s);
    assert_non_null(c);
    return c;
}

static void on_doc(void *arg, const struct cluster_doc *doc, size_t index, int line,
                   const char *err)
{
    struct record *r = arg;
    assert_true(r->n < MAX_SEEN);
    struct seen *s = &r->items[r->n++];
    s->index = index;
    s->line = line;
    s->is_valid = doc != NULL;
    if (doc == NULL) {
        assert_non_null(err);
        assert_true(strlen(err) < DC_ERR_LEN);
        memcpy(s->err, err, strlen(err) + 1);
        return;
    }
    assert_null(err);
    assert_int_equal(doc->index, index);
    assert_int_equal(doc->line, line);
    assert_non_null(doc->name);
    s->name = dup_or_null(doc->name);
    s->display_name = dup_or_null(doc->display_name);
    s->endpoint = dup_or_null(doc->endpoint);
    s->insecure = dup_or_null(doc->insecure);
}

static void record_free(struct record *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->items[i].name);
        free(r->items[i].display_name);
        free(r->items[i].endpoint);
        free(r->items[i].insecure);
    }
    memset(r, 0, sizeof(*r));
}

/* Parses text into r; returns the parser's answer, err in err. */
static int parse(const char *text, struct record *r, char *err)
{
    memset(r, 0, sizeof(*r));
    err[0] = '\0';
    return cluster_yaml_parse(text, strlen(text), on_doc, r, err);
}

static void expect_valid(const struct record *r, size_t i, const char *name, const char *display,
                         const char *endpoint, const char *insecure, size_t index, int line)
{
    assert_true(i < r->n);
    const struct seen *s = &r->items[i];
    if (!s->is_valid) {
        print_error("item %zu: %s\n", i, s->err);
    }
    assert_true(s->is_valid);
    assert_string_equal(s->name, name);
#define STR_OR_NULL(got, want)                                                                     \
    do {                                                                                           \
        if ((want) == NULL) {                                                                      \
            assert_null(got);                                                                      \
        } else {                                                                                   \
            assert_non_null(got);                                                                  \
            assert_string_equal((got), (want));                                                    \
        }                                                                                          \
    } while (0)
    STR_OR_NULL(s->display_name, display);
    STR_OR_NULL(s->endpoint, endpoint);
    STR_OR_NULL(s->insecure, insecure);
#undef STR_OR_NULL
    assert_int_equal(s->index, index);
    assert_int_equal(s->line, line);
}

static void expect_invalid(const struct record *r, size_t i, size_t index, int line,
                           const char *err)
{
    assert_true(i < r->n);
    const struct seen *s = &r->items[i];
    assert_false(s->is_valid);
    assert_int_equal(s->index, index);
    assert_int_equal(s->line, line);
    assert_string_equal(s->err, err);
}

/* Parses text, which must hold exactly one invalid document, and checks its sentence. */
static void expect_one_invalid(const char *text, const char *want)
{
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 1);
    assert_false(r.items[0].is_valid);
    if (strcmp(r.items[0].err, want) != 0) {
        print_error("got:  %s\nwant: %s\n", r.items[0].err, want);
    }
    assert_string_equal(r.items[0].err, want);
    record_free(&r);
}

#define HEAD "apiVersion: management.loft.sh/v1\nkind: Cluster\n"

static const char eu_west[] = HEAD "metadata:\n"
                                   "  name: eu-west-cluster\n"
                                   "  annotations:\n"
                                   "    loft.sh/derp-endpoint: eu-west-cluster.example.com\n";

static void test_cluster_yaml_one_doc(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(eu_west, &r, err), 0);
    assert_string_equal(err, "");
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "eu-west-cluster", NULL, "eu-west-cluster.example.com", NULL, 0, 1);
    record_free(&r);
    /* No NUL needed: only len bytes are read. */
    memset(&r, 0, sizeof(r));
    char copy[sizeof(eu_west) + 8];
    memcpy(copy, eu_west, sizeof(eu_west) - 1);
    memcpy(copy + sizeof(eu_west) - 1, "  x: [", 6);
    assert_int_equal(cluster_yaml_parse(copy, sizeof(eu_west) - 1, on_doc, &r, err), 0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "eu-west-cluster", NULL, "eu-west-cluster.example.com", NULL, 0, 1);
    record_free(&r);
}

static void test_cluster_yaml_full_doc(void **state)
{
    (void)state;
    /* What `kubectl get cluster -o yaml' prints, with everything else skipped. */
    static const char text[] =
        "apiVersion: management.loft.sh/v1\n"
        "kind: Cluster\n"
        "metadata:\n"
        "  annotations:\n"
        "    kubectl.kubernetes.io/last-applied-configuration: |\n"
        "      {\"apiVersion\":\"management.loft.sh/v1\",\"kind\":\"Cluster\"}\n"
        "    loft.sh/derp-endpoint: '[fd00::1]:8443'\n"
        "    loft.sh/derp-endpoint-insecure: \"true\"\n"
        "  creationTimestamp: \"2026-11-20T09:14:02Z\"\n"
        "  finalizers:\n"
        "  - loft.sh/cleanup\n"
        "  generation: 3\n"
        "  labels: {team: net}\n"
        "  name: eu-prod\n"
        "  resourceVersion: \"48213\"\n"
        "spec:\n"
        "  access:\n"
        "  - subresources: ['*']\n"
        "    users: [admin]\n"
        "    verbs: ['*']\n"
        "  config:\n"
        "    secretName: loft-cluster-config-eu-prod\n"
        "  displayName: EU production\n"
        "  local: false\n"
        "status:\n"
        "  phase: Initialized\n";
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "eu-prod", "EU production", "[fd00::1]:8443", "true", 0, 1);
    record_free(&r);
}

static void test_cluster_yaml_three_docs_middle_invalid(void **state)
{
    (void)state;
    static const char text[] = HEAD "metadata:\n"
                                    "  name: a\n"
                                    "  annotations: {loft.sh/derp-endpoint: a.example.com}\n"
                                    "---\n"
                                    "apiVersion: management.loft.sh/v1\n"
                                    "kind: Cluster\n"
                                    "metadata:\n"
                                    "  name: b\n"
                                    "  annotations:\n"
                                    "    loft.sh/derp-endpoint: {host: b.example.com}\n"
                                    "---\n" HEAD "metadata:\n"
                                    "  name: c\n"
                                    "  annotations:\n"
                                    "    loft.sh/derp-endpoint: c.example.com:8443\n"
                                    "    loft.sh/derp-endpoint-insecure: 'false'\n";
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 3);
    expect_valid(&r, 0, "a", NULL, "a.example.com", NULL, 0, 1);
    expect_invalid(&r, 1, 1, 6,
                   "document 2 (line 6), Cluster `b': metadata.annotations: value of "
                   "`loft.sh/derp-endpoint' is not a string (it is a mapping)");
    expect_valid(&r, 2, "c", NULL, "c.example.com:8443", "false", 2, 13);
    record_free(&r);
}

static void test_cluster_yaml_display_name(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(HEAD "metadata: {name: eu}\n"
                                "spec:\n"
                                "  displayName: \"EU \\\"west\\\" \\u00e9\"\n"
                                "---\n" HEAD "metadata: {name: us}\n"
                                "spec:\n"
                                "  displayName: ~\n"
                                "---\n" HEAD "metadata: {name: ap}\n"
                                "spec: {displayName: ''}\n"
                                "---\n" HEAD "metadata: {name: sa}\n"
                                "spec:\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 4);
    expect_valid(&r, 0, "eu", "EU \"west\" \xc3\xa9", NULL, NULL, 0, 1);
    expect_valid(&r, 1, "us", NULL, NULL, NULL, 1, 6);
    expect_valid(&r, 2, "ap", "", NULL, NULL, 2, 12);
    expect_valid(&r, 3, "sa", NULL, NULL, NULL, 3, 17);
    record_free(&r);
}

static void test_cluster_yaml_missing_annotations(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(HEAD "metadata:\n  name: plain\n"
                                "---\n" HEAD "metadata:\n  name: nulls\n  annotations:\n"
                                "---\n" HEAD "metadata:\n  name: others\n  annotations:\n"
                                "    example.com/x: y\n"
                                "---\n" HEAD "metadata:\n  name: only-insecure\n  annotations:\n"
                                "    loft.sh/derp-endpoint-insecure: true\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 4);
    expect_valid(&r, 0, "plain", NULL, NULL, NULL, 0, 1);
    expect_valid(&r, 1, "nulls", NULL, NULL, NULL, 1, 5);
    expect_valid(&r, 2, "others", NULL, NULL, NULL, 2, 11);
    expect_valid(&r, 3, "only-insecure", NULL, NULL, "true", 3, 18);
    record_free(&r);
}

static void test_cluster_yaml_plain_scalars(void **state)
{
    (void)state;
    /* Plain scalars are their text, whatever YAML would type them as; a null
     * annotation value is the empty string. */
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(HEAD "metadata:\n"
                                "  name: 123\n"
                                "  annotations:\n"
                                "    loft.sh/derp-endpoint: 10.0.0.1:443\n"
                                "    loft.sh/derp-endpoint-insecure: True\n"
                                "---\n" HEAD "metadata:\n"
                                "  name: n\n"
                                "  annotations:\n"
                                "    loft.sh/derp-endpoint: null\n"
                                "    loft.sh/derp-endpoint-insecure:\n"
                                "---\n" HEAD "metadata:\n"
                                "  name: q\n"
                                "  annotations:\n"
                                "    loft.sh/derp-endpoint: 'null'\n"
                                "    loft.sh/derp-endpoint-insecure: !!bool false\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 3);
    expect_valid(&r, 0, "123", NULL, "10.0.0.1:443", "True", 0, 1);
    expect_valid(&r, 1, "n", NULL, "", "", 1, 8);
    expect_valid(&r, 2, "q", NULL, "null", "false", 2, 16);
    record_free(&r);
}

static void test_cluster_yaml_non_string_annotation(void **state)
{
    (void)state;
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations:\n"
                            "    loft.sh/derp-endpoint: [a.example.com, b.example.com]\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations: value of "
                       "`loft.sh/derp-endpoint' is not a string (it is a list)");
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations:\n"
                            "    loft.sh/derp-endpoint-insecure: {a: b}\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations: value of "
                       "`loft.sh/derp-endpoint-insecure' is not a string (it is a mapping)");
    /* Any annotation: kubectl would refuse the object. */
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations:\n"
                            "    example.com/list: [1]\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations: value of "
                       "`example.com/list' is not a string (it is a list)");
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations:\n"
                            "    loft.sh/derp-endpoint: \"a\\0b\"\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations: value of "
                       "`loft.sh/derp-endpoint' contains a NUL byte");
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations: [loft.sh/derp-endpoint]\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations is a list, not "
                       "a mapping");
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: eu\n"
                            "  annotations: loft.sh/derp-endpoint=a\n",
                       "document 1 (line 1), Cluster `eu': metadata.annotations is a scalar, not "
                       "a mapping");
}

static void test_cluster_yaml_config_map(void **state)
{
    (void)state;
    expect_one_invalid("apiVersion: v1\n"
                       "kind: ConfigMap\n"
                       "metadata:\n"
                       "  name: eu\n"
                       "  annotations: {loft.sh/derp-endpoint: [x]}\n"
                       "data: {a: b}\n",
                       "document 1 (line 1): kind is `ConfigMap', want `Cluster'");
    expect_one_invalid("apiVersion: v1\nkind: List\nitems: []\n",
                       "document 1 (line 1): kind is `List', want `Cluster' (write each Cluster "
                       "as its own document)");
    expect_one_invalid(
        "apiVersion: management.loft.sh/v2\nkind: Cluster\nmetadata: {name: a}\n",
        "document 1 (line 1), Cluster `a': apiVersion is `management.loft.sh/v2', want "
        "`management.loft.sh/v1'");
    expect_one_invalid("kind: Cluster\nmetadata: {name: a}\n",
                       "document 1 (line 1), Cluster `a': apiVersion missing, want "
                       "`management.loft.sh/v1'");
    expect_one_invalid("apiVersion: management.loft.sh/v1\nmetadata: {name: a}\n",
                       "document 1 (line 1): kind missing, want `Cluster'");
    expect_one_invalid("apiVersion: management.loft.sh/v1\nkind: cluster\nmetadata: {name: a}\n",
                       "document 1 (line 1): kind is `cluster', want `Cluster'");
}

static void test_cluster_yaml_name(void **state)
{
    (void)state;
    expect_one_invalid(HEAD "metadata:\n  annotations: {loft.sh/derp-endpoint: a}\n",
                       "document 1 (line 1): metadata.name missing");
    expect_one_invalid(HEAD "spec: {displayName: x}\n",
                       "document 1 (line 1): metadata.name missing");
    expect_one_invalid(HEAD "metadata:\n  name: ~\n", "document 1 (line 1): metadata.name missing");
    expect_one_invalid(HEAD "metadata:\n  name: Bad_Name\n",
                       "document 1 (line 1): metadata.name `Bad_Name' is not a valid name: want "
                       "at most 253 lower-case letters, digits, `-' and `.', starting and "
                       "ending with a letter or digit");
    expect_one_invalid(HEAD "metadata:\n  name: a..b\n",
                       "document 1 (line 1): metadata.name `a..b' is not a valid name: want "
                       "at most 253 lower-case letters, digits, `-' and `.', starting and "
                       "ending with a letter or digit");
    expect_one_invalid(HEAD "metadata:\n  name: -a\n",
                       "document 1 (line 1): metadata.name `-a' is not a valid name: want "
                       "at most 253 lower-case letters, digits, `-' and `.', starting and "
                       "ending with a letter or digit");
    expect_one_invalid(HEAD "metadata:\n  name: ''\n",
                       "document 1 (line 1): metadata.name `' is "
                       "not a valid name: want at most 253 "
                       "lower-case letters, digits, `-' and `.', "
                       "starting and ending with a letter or digit");
    expect_one_invalid(HEAD "metadata:\n  name: [a]\n",
                       "document 1 (line 1): metadata.name is a list, not a string");
    expect_one_invalid(HEAD "metadata:\n  name: a\n  name: b\n",
                       "document 1 (line 1), Cluster `a': metadata: key `name' repeated");
    /* 253 bytes: fine; 254: not. */
    char text[600];
    char name[255];
    memset(name, 'a', 254);
    name[100] = '.';
    name[253] = '\0';
    int n = snprintf(text, sizeof(text), HEAD "metadata: {name: %s}\n", name);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, name, NULL, NULL, NULL, 0, 1);
    record_free(&r);
    name[253] = 'a';
    name[254] = '\0';
    n = snprintf(text, sizeof(text), HEAD "metadata: {name: %s}\n", name);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 1);
    assert_false(r.items[0].is_valid);
    assert_non_null(strstr(r.items[0].err, "is not a valid name"));
    record_free(&r);
}

static void test_cluster_yaml_list_where_map(void **state)
{
    (void)state;
    expect_one_invalid("- apiVersion: management.loft.sh/v1\n  kind: Cluster\n",
                       "document 1 (line 1): the document is a list, not a Cluster mapping");
    expect_one_invalid(HEAD "metadata:\n  - name: a\n",
                       "document 1 (line 1): metadata is a list, not a mapping");
    expect_one_invalid(HEAD "metadata: {name: a}\nspec: [displayName]\n",
                       "document 1 (line 1), Cluster `a': spec is a list, not a mapping");
    expect_one_invalid(HEAD "metadata: {name: a}\nspec: {displayName: [x]}\n",
                       "document 1 (line 1), Cluster `a': spec.displayName is a list, not a "
                       "string");
    expect_one_invalid("apiVersion: [management.loft.sh/v1]\nkind: Cluster\nmetadata: {name: a}\n",
                       "document 1 (line 1), Cluster `a': apiVersion is a list, not a string");
    expect_one_invalid("just text\n",
                       "document 1 (line 1): the document is the scalar `just text', not a "
                       "Cluster mapping");
    expect_one_invalid(HEAD "metadata:\n  ? [name]\n  : a\n",
                       "document 1 (line 1): metadata: a key is a list, not a string");
}

static void test_cluster_yaml_syntax_error(void **state)
{
    (void)state;
    static const char text[] = HEAD "metadata: {name: a}\n" /* 1-3 */
                                    "---\n" HEAD            /* 4 */
                                    "metadata: {name: b}\n"
                                    "---\n"
                                    "apiVersion: management.loft.sh/v1\n"
                                    "kind: Cluster\n"
                                    "metadata:\n"
                                    "  name: c\n"
                                    "    annotations: x\n" /* 13: bad indentation */
                                    "---\n" HEAD "metadata: {name: d}\n";
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), -EINVAL);
    assert_string_equal(err, "document 3 (line 8): YAML syntax error at line 13 column 16: "
                             "mapping values are not allowed in this context");
    assert_int_equal(r.n, 2);
    expect_valid(&r, 0, "a", NULL, NULL, NULL, 0, 1);
    expect_valid(&r, 1, "b", NULL, NULL, NULL, 1, 4);
    record_free(&r);

    assert_int_equal(parse(HEAD "metadata: {name: \"a\n", &r, err), -EINVAL);
    assert_string_equal(err, "document 1 (line 1): YAML syntax error at line 4 column 1: found "
                             "unexpected end of stream (while scanning a quoted scalar at line 3 "
                             "column 18)");
    assert_int_equal(r.n, 0);
    /* Bad UTF-8 is reported by byte offset. */
    assert_int_equal(parse("a: \xff\n", &r, err), -EINVAL);
    assert_string_equal(err, "document 1: bad input at byte offset 3: invalid leading UTF-8 octet");
    assert_int_equal(r.n, 0);
    /* err may be NULL. */
    assert_int_equal(cluster_yaml_parse("a: [", 4, on_doc, &r, NULL), -EINVAL);
}

static void test_cluster_yaml_empty_docs(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse("", &r, err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(parse("---\n---\n# nothing\n---\n...\n", &r, err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(parse("\n\n# only a comment\n", &r, err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(parse("~\n", &r, err), 0);
    assert_int_equal(r.n, 0);
    /* Empty documents still count in the numbering. */
    assert_int_equal(parse("---\n---\n" HEAD "metadata: {name: a}\n---\n---\nkind: x\n", &r, err),
                     0);
    assert_int_equal(r.n, 2);
    expect_valid(&r, 0, "a", NULL, NULL, NULL, 1, 2);
    expect_invalid(&r, 1, 3, 7, "document 4 (line 7): kind is `x', want `Cluster'");
    record_free(&r);
}

static void test_cluster_yaml_aliases(void **state)
{
    (void)state;
    expect_one_invalid(HEAD "metadata:\n"
                            "  name: &n eu\n"
                            "  annotations:\n"
                            "    loft.sh/derp-endpoint: *n\n",
                       "document 1 (line 1), Cluster `eu': alias `*n' at line 6 column 28: "
                       "aliases are not accepted");
    /* Also where nothing is read, and at the root. */
    expect_one_invalid(HEAD "metadata: {name: eu}\nspec:\n  a: &a [x, x]\n  b: [*a, *a]\n",
                       "document 1 (line 1), Cluster `eu': alias `*a' at line 6 column 7: aliases "
                       "are not accepted");
    expect_one_invalid("--- *x\n",
                       "document 1 (line 1): alias `*x' at line 1 column 5: aliases are not "
                       "accepted");
    /* Billion laughs: refused at the first alias, never expanded. */
    static const char laughs[] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
                                 "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                                 "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                                 "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                                 "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                                 "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                                 "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                                 "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                                 "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    expect_one_invalid(
        laughs, "document 1 (line 1): alias `*a' at line 2 column 8: aliases are not accepted");
    /* An anchor alone is harmless. */
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(HEAD "metadata: &m {name: eu}\n", &r, err), 0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "eu", NULL, NULL, NULL, 0, 1);
    record_free(&r);
}

static void test_cluster_yaml_comments(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse("# Clusters of the EU fleet\n"
                           "\n"
                           "apiVersion: management.loft.sh/v1 # the CRD's group\n"
                           "kind: Cluster\n"
                           "metadata:\n"
                           "  # the region code\n"
                           "  name: eu # trailing\n"
                           "  annotations:\n"
                           "    loft.sh/derp-endpoint: eu.example.com#not-a-comment\n"
                           "    # loft.sh/derp-endpoint-insecure: \"true\"\n"
                           "--- # second\n"
                           "# nothing but comments\n"
                           "--- # third\n" HEAD "metadata: {name: us} # done\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 2);
    expect_valid(&r, 0, "eu", NULL, "eu.example.com#not-a-comment", NULL, 0, 3);
    expect_valid(&r, 1, "us", NULL, NULL, NULL, 2, 13);
    record_free(&r);
}

static void test_cluster_yaml_crlf(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse("apiVersion: management.loft.sh/v1\r\n"
                           "kind: Cluster\r\n"
                           "metadata:\r\n"
                           "  name: eu\r\n"
                           "  annotations:\r\n"
                           "    loft.sh/derp-endpoint: eu.example.com:443\r\n"
                           "    loft.sh/derp-endpoint-insecure: \"false\"\r\n"
                           "spec:\r\n"
                           "  displayName: |\r\n"
                           "    EU\r\n"
                           "---\r\n"
                           "kind: ConfigMap\r\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 2);
    expect_valid(&r, 0, "eu", "EU\n", "eu.example.com:443", "false", 0, 1);
    expect_invalid(&r, 1, 1, 11, "document 2 (line 11): kind is `ConfigMap', want `Cluster'");
    record_free(&r);
}

static void test_cluster_yaml_json(void **state)
{
    (void)state;
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse("{\n"
                           "\t\"apiVersion\": \"management.loft.sh/v1\",\n"
                           "\t\"kind\": \"Cluster\",\n"
                           "\t\"metadata\": {\n"
                           "\t\t\"name\": \"eu\",\n"
                           "\t\t\"annotations\": {\"loft.sh/derp-endpoint\": \"192.0.2.1:8443\",\n"
                           "\t\t\t\"loft.sh/derp-endpoint-insecure\": \"true\"}\n"
                           "\t},\n"
                           "\t\"spec\": {\"displayName\": \"EU \\u00e9\", \"local\": false}\n"
                           "}\n",
                           &r, err),
                     0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "eu", "EU \xc3\xa9", "192.0.2.1:8443", "true", 0, 1);
    record_free(&r);
    /* One-line JSON, as kubectl -o json | jq -c writes it. */
    assert_int_equal(parse("{\"kind\":\"Cluster\",\"apiVersion\":\"management.loft.sh/v1\","
                           "\"metadata\":{\"name\":\"us\"}}",
                           &r, err),
                     0);
    assert_int_equal(r.n, 1);
    expect_valid(&r, 0, "us", NULL, NULL, NULL, 0, 1);
    record_free(&r);
}

static void test_cluster_yaml_quoting(void **state)
{
    (void)state;
    /* Quoted values stay on one printable line, and long ones are cut. */
    expect_one_invalid("apiVersion: v1\nkind: \"Config\\nMap\\t\\u00e9\"\n",
                       "document 1 (line 1): kind is `Config\\x0aMap\\x09\\xc3\\xa9', want "
                       "`Cluster'");
    char text[400];
    char kind[201];
    memset(kind, 'k', 200);
    kind[200] = '\0';
    int n = snprintf(text, sizeof(text), "kind: %s\n", kind);
    assert_true(n > 0 && (size_t)n < sizeof(text));
    struct record r;
    char err[DC_ERR_LEN];
    assert_int_equal(parse(text, &r, err), 0);
    assert_int_equal(r.n, 1);
    assert_non_null(strstr(r.items[0].err, "kkk...', want `Cluster'"));
    record_free(&r);
}

static void test_cluster_yaml_limits(void **state)
{
    (void)state;
    struct record r = {0};
    char err[DC_ERR_LEN];
    /* Over the size limit: refused before any parsing (text is never read). */
    assert_int_equal(cluster_yaml_parse("", (size_t)CLUSTER_YAML_MAX_LEN + 1, on_doc, &r, err),
                     -EMSGSIZE);
    assert_non_null(strstr(err, "more than the limit of 16777216"));
    assert_int_equal(r.n, 0);
    /* 10000 documents are fine; the 10001st stops the stream. */
    size_t len = (size_t)CLUSTER_YAML_MAX_DOCS * 4;
    char *text = malloc(len + 64);
    assert_non_null(text);
    for (size_t i = 0; i < CLUSTER_YAML_MAX_DOCS; i++) {
        memcpy(text + i * 4, "---\n", 4);
    }
    assert_int_equal(cluster_yaml_parse(text, len, on_doc, &r, err), 0);
    memcpy(text + len, "---\nkind: x\n", 12);
    assert_int_equal(cluster_yaml_parse(text, len + 12, on_doc, &r, err), -EMSGSIZE);
    assert_string_equal(err, "more than 10000 documents (line 10001)");
    assert_int_equal(r.n, 0);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_yaml_one_doc),
        cmocka_unit_test(test_cluster_yaml_full_doc),
        cmocka_unit_test(test_cluster_yaml_three_docs_middle_invalid),
        cmocka_unit_test(test_cluster_yaml_display_name),
        cmocka_unit_test(test_cluster_yaml_missing_annotations),
        cmocka_unit_test(test_cluster_yaml_plain_scalars),
        cmocka_unit_test(test_cluster_yaml_non_string_annotation),
        cmocka_unit_test(test_cluster_yaml_config_map),
        cmocka_unit_test(test_cluster_yaml_name),
        cmocka_unit_test(test_cluster_yaml_list_where_map),
        cmocka_unit_test(test_cluster_yaml_syntax_error),
        cmocka_unit_test(test_cluster_yaml_empty_docs),
        cmocka_unit_test(test_cluster_yaml_aliases),
        cmocka_unit_test(test_cluster_yaml_comments),
        cmocka_unit_test(test_cluster_yaml_crlf),
        cmocka_unit_test(test_cluster_yaml_json),
        cmocka_unit_test(test_cluster_yaml_quoting),
        cmocka_unit_test(test_cluster_yaml_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
