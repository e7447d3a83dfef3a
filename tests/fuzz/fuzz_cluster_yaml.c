/* fuzz_cluster_yaml: the Cluster document reader of controller/cluster_yaml.c on arbitrary
 * bytes. Pure: no file is read. Every delivered value is also fed to the annotation parsers,
 * the way the controller does.
 *
 * Checks: the same answer and the same callbacks with and without err; callbacks come in
 * document order, each either a Cluster (a valid name, its strings NUL-free, err NULL) or a
 * sentence starting "document N (line L)" for that index and line; a failure fills err with
 * a NUL-terminated sentence. The parser owns everything it hands out and frees it itself, so
 * leaks show. */
#include "annot.h"
#include "cluster_yaml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the callbacks of one parse saw. */
struct tally {
    size_t calls;      /* callbacks */
    size_t valid;      /* of which valid Clusters */
    size_t next_index; /* every index is at least this */
    uint64_t digest;   /* of the indices, lines and validity, to compare two parses */
};

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_sentence(const char *s)
{
    check(s != NULL && memchr(s, '\0', DC_ERR_LEN) != NULL && s[0] != '\0');
}

static void feed_annotations(const struct cluster_doc *doc)
{
    char err[DC_ERR_LEN];
    if (doc->endpoint != NULL) {
        struct annot_endpoint ep;
        if (annot_endpoint_parse(doc->endpoint, strlen(doc->endpoint), &ep, err) != 0) {
            check_sentence(err);
        }
    }
    if (doc->insecure != NULL) {
        bool insecure;
        if (annot_insecure_parse(doc->insecure, strlen(doc->insecure), &insecure, err) != 0) {
            check_sentence(err);
        }
    }
}

static void on_doc(void *arg, const struct cluster_doc *doc, size_t index, int line,
                   const char *err)
{
    struct tally *t = arg;
    check(index >= t->next_index && index < CLUSTER_YAML_MAX_DOCS && line >= 1);
    t->next_index = index + 1;
    t->calls++;
    t->digest = t->digest * 1000003u + index * 31u + (uint64_t)line * 7u + (doc != NULL);
    if (doc == NULL) {
        check_sentence(err);
        char prefix[64];
        int n = snprintf(prefix, sizeof(prefix), "document %zu (line %d)", index + 1, line);
        check(n > 0 && strncmp(err, prefix, (size_t)n) == 0);
        return;
    }
    check(err == NULL && doc->index == index && doc->line == line);
    size_t name_len = strlen(doc->name);
    check(name_len >= 1 && name_len <= CLUSTER_YAML_NAME_MAX_LEN);
    for (size_t i = 0; i < name_len; i++) {
        char ch = doc->name[i];
        check((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.');
    }
    if (doc->display_name != NULL) {
        (void)strlen(doc->display_name);
    }
    t->valid++;
    feed_annotations(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct tally loud = {0}, quiet = {0};
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = cluster_yaml_parse(text, size, on_doc, &loud, err);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE || rc == -ENOMEM);
    if (rc != 0) {
        check_sentence(err);
    }
    check(cluster_yaml_parse(text, size, on_doc, &quiet, NULL) == rc);
    check(loud.calls == quiet.calls && loud.valid == quiet.valid && loud.digest == quiet.digest);
    return 0;
}
