#include "cluster_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "annot.h"

#define QUOTE_BUF_LEN DC_QUOTE_BUF_LEN
/* Mappings read: the root, metadata, then annotations (or spec). */
#define MAX_FRAMES 3

/* Which mapping a frame is. */
enum cy_role {
    ROLE_ROOT,
    ROLE_METADATA,
    ROLE_ANNOTATIONS,
    ROLE_SPEC,
};

/* What the pending value of a mapping is. Values up to FIELD_INSECURE are
 * kept; each has a bit in struct cy_frame's seen. */
enum cy_field {
    FIELD_API_VERSION,
    FIELD_KIND,
    FIELD_NAME,
    FIELD_DISPLAY_NAME,
    FIELD_ENDPOINT,
    FIELD_INSECURE,
    FIELD_METADATA,
    FIELD_ANNOTATIONS,
    FIELD_SPEC,
    FIELD_ANNOTATION, /* another annotation: must be a string, not kept */
    FIELD_SKIP,       /* any other key: skipped whatever its shape */
};

/* A mapping being read. */
struct cy_frame {
    enum cy_role role;
    bool expect_key;         /* the next node is a key (else the value of field) */
    enum cy_field field;     /* what the pending value is */
    unsigned seen;           /* 1 << field for each field met, to refuse repeats */
    char key[QUOTE_BUF_LEN]; /* the pending key, quoted, for error sentences */
};

/* The document being read. */
struct cy_doc {
    size_t index;  /* from 0 */
    int line;      /* 1-based */
    bool is_empty; /* its root is a null scalar */
    struct cy_frame frames[MAX_FRAMES];
    size_t depth;                     /* frames in use */
    size_t skip;                      /* depth inside a skipped sequence or mapping */
    char *fields[FIELD_INSECURE + 1]; /* owned copies of kept scalars, by enum cy_field */
    bool has_error;                   /* error holds the first problem found */
    char error[DC_ERR_LEN];
};

/* The whole parse. */
struct cy_parse {
    yaml_parser_t parser;
    yaml_event_t event;
    struct cy_doc doc;
    size_t n_docs; /* documents started */
    cluster_yaml_cb cb;
    void *arg;
};

/* Quoting for error sentences is shared: common/err.h. */
static const char *quote(const char *s, size_t len, char *buf)
{
    return dc_err_quote(s, len, buf);
}

static int line_of(yaml_mark_t m)
{
    return m.line + 1 > INT32_MAX ? INT32_MAX : (int)(m.line + 1);
}

static int column_of(yaml_mark_t m)
{
    return m.column + 1 > INT32_MAX ? INT32_MAX : (int)(m.column + 1);
}

/* Records the first problem of the current document; later ones are dropped. */
DC_PRINTF(2, 3) static void doc_fail(struct cy_doc *d, const char *fmt, ...)
{
    if (d->has_error) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->error, sizeof(d->error), fmt, ap);
    va_end(ap);
    if (n < 0) {
        d->error[0] = '\0';
    }
    d->has_error = true;
}

static void doc_clear(struct cy_doc *d)
{
    for (size_t i = 0; i <= FIELD_INSECURE; i++) {
        free(d->fields[i]);
    }
    memset(d, 0, sizeof(*d));
}

static const char *scalar_text(const yaml_event_t *ev)
{
    return (const char *)ev->data.scalar.value;
}

/* A plain scalar YAML resolves to null (YAML 1.1 and 1.2 core schema). */
static bool is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag != NULL && strcmp(tag, YAML_NULL_TAG) != 0) {
        return false;
    }
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strlen(nulls[i]) == ev->data.scalar.length && strcmp(scalar_text(ev), nulls[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_collection_start(const yaml_event_t *ev)
{
    return ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT;
}

static const char *node_kind(const yaml_event_t *ev)
{
    return ev->type == YAML_SEQUENCE_START_EVENT  ? "a list"
           : ev->type == YAML_MAPPING_START_EVENT ? "a mapping"
           : ev->type == YAML_ALIAS_EVENT         ? "an alias"
                                                  : "a scalar";
}

static const char *field_path(enum cy_field f)
{
    static const char *const paths[] = {
        [FIELD_API_VERSION] = "apiVersion",
        [FIELD_KIND] = "kind",
        [FIELD_NAME] = "metadata.name",
        [FIELD_DISPLAY_NAME] = "spec.displayName",
        [FIELD_ENDPOINT] = "metadata.annotations",
        [FIELD_INSECURE] = "metadata.annotations",
        [FIELD_METADATA] = "metadata",
        [FIELD_ANNOTATIONS] = "metadata.annotations",
        [FIELD_SPEC] = "spec",
        [FIELD_ANNOTATION] = "metadata.annotations",
        [FIELD_SKIP] = "",
    };
    return paths[f];
}

static const char *role_path(enum cy_role r)
{
    return r == ROLE_ROOT          ? "the document"
           : r == ROLE_METADATA    ? "metadata"
           : r == ROLE_ANNOTATIONS ? "metadata.annotations"
                                   : "spec";
}

/* A key or value node of the top frame is complete. */
static void node_done(struct cy_doc *d)
{
    if (d->depth == 0) {
        return;
    }
    struct cy_frame *f = &d->frames[d->depth - 1];
    if (f->expect_key) {
        f->expect_key = false;
    } else {
        f->expect_key = true;
        f->field = FIELD_SKIP;
    }
}

/* Maps a scalar key of frame f to the field its value is. */
static enum cy_field key_field(const struct cy_frame *f, const char *k)
{
    static const struct {
        enum cy_role role;
        const char *key;
        enum cy_field field;
    } keys[] = {
        {ROLE_ROOT, "apiVersion", FIELD_API_VERSION},
        {ROLE_ROOT, "kind", FIELD_KIND},
        {ROLE_ROOT, "metadata", FIELD_METADATA},
        {ROLE_ROOT, "spec", FIELD_SPEC},
        {ROLE_METADATA, "name", FIELD_NAME},
        {ROLE_METADATA, "annotations", FIELD_ANNOTATIONS},
        {ROLE_ANNOTATIONS, ANNOT_ENDPOINT, FIELD_ENDPOINT},
        {ROLE_ANNOTATIONS, ANNOT_INSECURE, FIELD_INSECURE},
        {ROLE_SPEC, "displayName", FIELD_DISPLAY_NAME},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].role == f->role && strcmp(keys[i].key, k) == 0) {
            return keys[i].field;
        }
    }
    return f->role == ROLE_ANNOTATIONS ? FIELD_ANNOTATION : FIELD_SKIP;
}

/* A key node in frame f. */
static void on_key(struct cy_doc *d, struct cy_frame *f, const yaml_event_t *ev)
{
    f->field = FIELD_SKIP;
    f->key[0] = '\0';
    if (ev->type == YAML_ALIAS_EVENT) {
        return;
    }
    if (ev->type != YAML_SCALAR_EVENT) {
        d->skip = 1;
        doc_fail(d, "%s: a key is %s, not a string", role_path(f->role), node_kind(ev));
        return;
    }
    size_t len = ev->data.scalar.length;
    quote(scalar_text(ev), len, f->key);
    if (memchr(scalar_text(ev), '\0', len) != NULL) {
        return;
    }
    f->field = key_field(f, scalar_text(ev));
    if (f->field == FIELD_SKIP || f->field == FIELD_ANNOTATION) {
        return;
    }
    if ((f->seen & (1u << f->field)) != 0) {
        doc_fail(d, "%s: key `%s' repeated", role_path(f->role), f->key);
        f->field = FIELD_SKIP; /* the first value stays */
        return;
    }
    f->seen |= 1u << f->field;
}

/* Keeps the scalar value of field (NULL for a null one, "" for an annotation). */
static int keep_scalar(struct cy_doc *d, enum cy_field field, const yaml_event_t *ev)
{
    const char *s = scalar_text(ev);
    size_t len = ev->data.scalar.length;
    bool is_annotation = field == FIELD_ENDPOINT || field == FIELD_INSECURE;
    if (is_null(ev)) {
        s = is_annotation ? "" : NULL;
        len = 0;
    }
    if (s == NULL) {
        return 0;
    }
    if (memchr(s, '\0', len) != NULL) {
        doc_fail(d, "%s%s contains a NUL byte", field_path(field),
                 is_annotation ? (field == FIELD_ENDPOINT ? ": value of `" ANNOT_ENDPOINT "'"
                                                          : ": value of `" ANNOT_INSECURE "'")
                               : "");
        return 0;
    }
    char *copy = strndup(s, len);
    if (copy == NULL) {
        return -ENOMEM;
    }
    free(d->fields[field]);
    d->fields[field] = copy;
    return 0;
}

/* A value node of frame f (ev is not an alias). */
static int on_value(struct cy_doc *d, struct cy_frame *f, const yaml_event_t *ev)
{
    enum cy_field field = f->field;
    bool is_scalar = ev->type == YAML_SCALAR_EVENT;
    if (field == FIELD_SKIP) {
        d->skip = is_scalar ? 0 : 1;
    } else if (field <= FIELD_INSECURE || field == FIELD_ANNOTATION) {
        if (is_scalar) {
            return field == FIELD_ANNOTATION ? 0 : keep_scalar(d, field, ev);
        }
        d->skip = 1;
        if (f->role == ROLE_ANNOTATIONS) {
            doc_fail(d, "metadata.annotations: value of `%s' is not a string (it is %s)", f->key,
                     node_kind(ev));
        } else {
            doc_fail(d, "%s is %s, not a string", field_path(field), node_kind(ev));
        }
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        enum cy_role role = field == FIELD_METADATA      ? ROLE_METADATA
                            : field == FIELD_ANNOTATIONS ? ROLE_ANNOTATIONS
                                                         : ROLE_SPEC;
        d->frames[d->depth++] = (struct cy_frame){.role = role, .expect_key = true};
    } else if (!is_null(ev)) {
        d->skip = is_scalar ? 0 : 1;
        doc_fail(d, "%s is %s, not a mapping", field_path(field), node_kind(ev));
    }
    return 0;
}

/* The root node of the document. */
static void on_root(struct cy_doc *d, const yaml_event_t *ev)
{
    char q[QUOTE_BUF_LEN];
    if (ev->type == YAML_ALIAS_EVENT) {
        return;
    }
    if (ev->type == YAML_MAPPING_START_EVENT) {
        d->frames[d->depth++] = (struct cy_frame){.role = ROLE_ROOT, .expect_key = true};
    } else if (is_null(ev)) {
        d->is_empty = true;
    } else if (ev->type == YAML_SCALAR_EVENT) {
        doc_fail(d, "the document is the scalar `%s', not a Cluster mapping",
                 quote(scalar_text(ev), ev->data.scalar.length, q));
    } else {
        d->skip = 1;
        doc_fail(d, "the document is a list, not a Cluster mapping");
    }
}

/* Any node event: scalar, alias, or the start of a sequence or mapping. */
static int on_node(struct cy_doc *d, const yaml_event_t *ev)
{
    int rc = 0;
    if (ev->type == YAML_ALIAS_EVENT) {
        char q[QUOTE_BUF_LEN];
        const char *anchor = (const char *)ev->data.alias.anchor;
        doc_fail(d, "alias `*%s' at line %d column %d: aliases are not accepted",
                 quote(anchor, strlen(anchor), q), line_of(ev->start_mark),
                 column_of(ev->start_mark));
    }
    if (d->skip > 0) {
        d->skip += is_collection_start(ev) ? 1 : 0;
        return 0;
    }
    if (d->depth == 0) {
        on_root(d, ev);
        return 0;
    }
    struct cy_frame *f = &d->frames[d->depth - 1];
    if (f->expect_key) {
        on_key(d, f, ev);
    } else if (ev->type != YAML_ALIAS_EVENT) {
        rc = on_value(d, f, ev);
    }
    /* A scalar or alias is complete now; a sequence or mapping at its end event. */
    if (!is_collection_start(ev)) {
        node_done(d);
    }
    return rc;
}

/* The end of a sequence or mapping. */
static void on_collection_end(struct cy_doc *d)
{
    if (d->skip > 0) {
        d->skip--;
        if (d->skip == 0) {
            node_done(d);
        }
        return;
    }
    if (d->depth > 0) {
        d->depth--;
        node_done(d);
    }
}

/* Kubernetes' IsDNS1123Subdomain: at most 253 bytes of dot-separated labels of
 * [a-z0-9-], each starting and ending with [a-z0-9]. */
static bool is_dns1123_subdomain(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > CLUSTER_YAML_NAME_MAX_LEN) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            char ch = s[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-')) {
                return false;
            }
            continue;
        }
        if (i == start || s[start] == '-' || s[i - 1] == '-') {
            return false;
        }
        start = i + 1;
    }
    return true;
}

/* Why the finished document is not a valid Cluster, into why; false if it is one. */
static bool doc_invalid(const struct cy_doc *d, char *why, size_t cap)
{
    char q[QUOTE_BUF_LEN];
    const char *kind = d->fields[FIELD_KIND];
    const char *api = d->fields[FIELD_API_VERSION];
    const char *name = d->fields[FIELD_NAME];
    int n = 0;
    if (kind != NULL && strcmp(kind, CLUSTER_YAML_KIND) != 0) {
        n = snprintf(why, cap, "kind is `%s', want `" CLUSTER_YAML_KIND "'%s",
                     quote(kind, strlen(kind), q),
                     strcmp(kind, "List") == 0 ? " (write each Cluster as its own document)" : "");
    } else if (api != NULL && strcmp(api, CLUSTER_YAML_API_VERSION) != 0) {
        n = snprintf(why, cap, "apiVersion is `%s', want `" CLUSTER_YAML_API_VERSION "'",
                     quote(api, strlen(api), q));
    } else if (d->has_error) {
        n = snprintf(why, cap, "%s", d->error);
    } else if (kind == NULL) {
        n = snprintf(why, cap, "kind missing, want `" CLUSTER_YAML_KIND "'");
    } else if (api == NULL) {
        n = snprintf(why, cap, "apiVersion missing, want `" CLUSTER_YAML_API_VERSION "'");
    } else if (name == NULL) {
        n = snprintf(why, cap, "metadata.name missing");
    } else if (!is_dns1123_subdomain(name)) {
        n = snprintf(why, cap,
                     "metadata.name `%s' is not a valid name: want at most %d lower-case letters, "
                     "digits, `-' and `.', starting and ending with a letter or digit",
                     quote(name, strlen(name), q), CLUSTER_YAML_NAME_MAX_LEN);
    } else {
        return false;
    }
    if (n < 0) {
        why[0] = '\0';
    }
    return true;
}

/* Delivers the finished document (valid or not) unless it is empty. */
static void doc_end(struct cy_parse *p)
{
    struct cy_doc *d = &p->doc;
    if (d->is_empty && !d->has_error) {
        return;
    }
    char why[DC_ERR_LEN], q[QUOTE_BUF_LEN];
    if (!doc_invalid(d, why, sizeof(why))) {
        struct cluster_doc doc = {
            .name = d->fields[FIELD_NAME],
            .display_name = d->fields[FIELD_DISPLAY_NAME],
            .endpoint = d->fields[FIELD_ENDPOINT],
            .insecure = d->fields[FIELD_INSECURE],
            .index = d->index,
            .line = d->line,
        };
        p->cb(p->arg, &doc, d->index, d->line, NULL);
        return;
    }
    /* Name the Cluster when the document says it is one and its name is good. */
    const char *kind = d->fields[FIELD_KIND], *name = d->fields[FIELD_NAME];
    bool named = kind != NULL && strcmp(kind, CLUSTER_YAML_KIND) == 0 && name != NULL &&
                 is_dns1123_subdomain(name);
    char msg[DC_ERR_LEN];
    int n = snprintf(msg, sizeof(msg), "document %zu (line %d)%s%s%s: %s", d->index + 1, d->line,
                     named ? ", Cluster `" : "", named ? quote(name, strlen(name), q) : "",
                     named ? "'" : "", why);
    if (n < 0) {
        msg[0] = '\0';
    }
    p->cb(p->arg, NULL, d->index, d->line, msg);
}

/* Fills err for the libyaml error that stopped the stream. */
static int stream_error(struct cy_parse *p, char *err)
{
    const yaml_parser_t *y = &p->parser;
    char where[64];
    bool in_doc = p->doc.line > 0;
    int n = snprintf(where, sizeof(where), in_doc ? "document %zu (line %d): " : "document %zu: ",
                     in_doc ? p->doc.index + 1 : p->n_docs + 1, p->doc.line);
    if (n < 0) {
        where[0] = '\0';
    }
    const char *problem = y->problem != NULL ? y->problem : "unknown error";
    if (y->error == YAML_MEMORY_ERROR) {
        return dc_err_set(err, -ENOMEM, "%sout of memory parsing YAML", where);
    }
    if (y->error == YAML_READER_ERROR) {
        return dc_err_set(err, -EINVAL, "%sbad input at byte offset %zu: %s", where,
                          y->problem_offset, problem);
    }
    if (y->context != NULL) {
        return dc_err_set(err, -EINVAL,
                          "%sYAML syntax error at line %d column %d: %s (%s at line %d column %d)",
                          where, line_of(y->problem_mark), column_of(y->problem_mark), problem,
                          y->context, line_of(y->context_mark), column_of(y->context_mark));
    }
    return dc_err_set(err, -EINVAL, "%sYAML syntax error at line %d column %d: %s", where,
                      line_of(y->problem_mark), column_of(y->problem_mark), problem);
}

/* One event. Returns 1 at the end of the stream, 0 to go on, or a negative errno. */
static int on_event(struct cy_parse *p, const yaml_event_t *ev, char *err)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (p->n_docs >= CLUSTER_YAML_MAX_DOCS) {
            return dc_err_set(err, -EMSGSIZE, "more than %d documents (line %d)",
                              CLUSTER_YAML_MAX_DOCS, line_of(ev->start_mark));
        }
        doc_clear(&p->doc);
        p->doc.index = p->n_docs++;
        p->doc.line = line_of(ev->start_mark);
        return 0;
    case YAML_DOCUMENT_END_EVENT:
        doc_end(p);
        doc_clear(&p->doc);
        return 0;
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return on_node(&p->doc, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        on_collection_end(&p->doc);
        return 0;
    default:
        return 0;
    }
}

int cluster_yaml_parse(const char *text, size_t len, cluster_yaml_cb cb, void *arg, char *err)
{
    if (len > CLUSTER_YAML_MAX_LEN) {
        return dc_err_set(err, -EMSGSIZE, "%zu bytes of YAML, more than the limit of %u", len,
                          CLUSTER_YAML_MAX_LEN);
    }
    struct cy_parse *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    bool has_parser = false;
    p->cb = cb;
    p->arg = arg;
    if (yaml_parser_initialize(&p->parser) == 0) {
        rc = -ENOMEM;
        goto out;
    }
    has_parser = true;
    yaml_parser_set_input_string(&p->parser, (const unsigned char *)text, len);
    while (rc == 0) {
        if (yaml_parser_parse(&p->parser, &p->event) == 0) {
            rc = stream_error(p, err);
            goto out;
        }
        rc = on_event(p, &p->event, err);
        yaml_event_delete(&p->event);
    }
    rc = rc > 0 ? 0 : rc;
out:
    doc_clear(&p->doc);
    if (has_parser) {
        yaml_parser_delete(&p->parser);
    }
    free(p);
    return rc;
}
