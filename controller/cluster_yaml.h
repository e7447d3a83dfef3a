/* cluster_yaml: reads management.loft.sh/v1 Cluster documents from YAML (or JSON) text.
 *
 * Directory mode (`--clusters-dir`) keeps Clusters in *.yaml files, each one
 * or more `---` separated documents written as for `kubectl apply`:
 *
 *   apiVersion: management.loft.sh/v1
 *   kind: Cluster
 *   metadata:
 *     name: eu-west-cluster
 *     annotations:
 *       loft.sh/derp-endpoint: eu-west-cluster.example.com
 *   spec:
 *     displayName: EU West
 *
 * Only apiVersion, kind, metadata.name, the two loft.sh annotations and
 * spec.displayName are read; every other key is skipped whatever its shape.
 * Pure: parses bytes with libyaml's event API, no file I/O, no logging; it
 * keeps O(nesting) state, never a tree. It does not check the annotation
 * values (annot.h does) and does not read `kind: List' wrappers.
 *
 * Scalars: the text of any scalar is taken as written, so an unquoted
 * `loft.sh/derp-endpoint-insecure: true' reads as "true" (hand-written files
 * expect that to work, although kubectl would refuse a boolean annotation).
 * A plain `null', `Null', `NULL', `~' or empty scalar counts as absent for
 * apiVersion, kind, name, displayName, metadata, annotations and spec, and as
 * the empty string for an annotation value (what the API server stores).
 * Sequences or mappings where a string or a mapping belongs (as the value of
 * any annotation: kubectl would refuse the object), a key that is
 * not a scalar, a repeated key among those read, a NUL byte in a value read,
 * and any alias (`*x') make the document invalid. Aliases are refused
 * outright: this reader never expands them, and no Cluster needs one.
 *
 * Documents are numbered from 0 in stream order, empty ones included, and
 * error sentences say "document N" with N = index + 1, then name the Cluster
 * when kind is Cluster and metadata.name is valid. A wrong kind or apiVersion
 * is reported before any other problem of the document, e.g.
 *   document 2 (line 14): kind is `ConfigMap', want `Cluster'
 *   document 3 (line 20), Cluster `eu-west': metadata.annotations: value of
 *     `loft.sh/derp-endpoint' is not a string
 * Quoted values show bytes outside printable ASCII as \xNN and are cut short
 * past CLUSTER_YAML_QUOTE_MAX bytes with "...". */
#ifndef DC_CONTROLLER_CLUSTER_YAML_H
#define DC_CONTROLLER_CLUSTER_YAML_H

#include "err.h"

#include <stddef.h>

/* The apiVersion and kind every document must have. */
#define CLUSTER_YAML_API_VERSION "management.loft.sh/v1"
#define CLUSTER_YAML_KIND        "Cluster"
/* Largest input accepted, in bytes: far above any real fleet (10 000 Clusters
 * take about 3 MiB), low enough that a stray file cannot pin memory. */
#define CLUSTER_YAML_MAX_LEN (16u << 20)
/* Most documents in one input, empty ones included. */
#define CLUSTER_YAML_MAX_DOCS 10000
/* Longest metadata.name: a DNS-1123 subdomain (Kubernetes validation). */
#define CLUSTER_YAML_NAME_MAX_LEN 253
/* Bytes of a value quoted in an error sentence before it is cut short. */
#define CLUSTER_YAML_QUOTE_MAX DC_QUOTE_MAX

/* One valid Cluster document. Every string is NUL-terminated, holds no NUL
 * byte, is owned by the parser and is valid only during the callback: copy
 * what you keep. */
struct cluster_doc {
    const char *name;         /* metadata.name: a DNS-1123 subdomain, at most 253 bytes */
    const char *display_name; /* spec.displayName, or NULL if unset */
    const char *endpoint;     /* loft.sh/derp-endpoint as written (unchecked), or NULL if absent */
    const char *insecure;     /* loft.sh/derp-endpoint-insecure as written, or NULL if absent */
    size_t index;             /* document number in the stream, from 0 */
    int line;                 /* 1-based line where the document starts (its `---', or its
                                 first node when the start is implicit) */
};

/* Called once per non-empty document, in order: doc is the Cluster and err is
 * NULL, or doc is NULL and err is one sentence saying why the document is not
 * a valid Cluster, starting "document N (line L)". index and line are those of
 * the document either way. err is valid only during the call. */
typedef void (*cluster_yaml_cb)(void *arg, const struct cluster_doc *doc, size_t index, int line,
                                const char *err);

/* Parses text[0..len) (no NUL needed; UTF-8, or UTF-16 with a BOM), calling
 * cb(arg, ...) for each document as soon as it ends. Empty documents (only
 * `---', comments, or a null) are skipped without a call. Returns 0 once the
 * stream ends; -EINVAL with err naming the line and column (1-based) of a YAML
 * syntax error, or the byte offset of bad UTF-8, which stops the stream
 * (documents before it were delivered, the one it is in is not); -EMSGSIZE
 * with err for input over CLUSTER_YAML_MAX_LEN (no call made) or a stream
 * past CLUSTER_YAML_MAX_DOCS (stops there); -ENOMEM. err may be NULL. */
int cluster_yaml_parse(const char *text, size_t len, cluster_yaml_cb cb, void *arg,
                       char *err) DC_MUST_CHECK;

#endif
