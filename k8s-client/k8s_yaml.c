#include "k8s_yaml.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* A sequence or mapping being filled. */
struct yaml_frame {
    json_t *node;      /* owned until attached to its parent: array or object */
    char *anchor;      /* owned; recorded when the node is complete, or NULL */
    size_t weight;     /* nodes under node after alias expansion, node included */
    char *key;         /* owned; pending mapping key, or NULL */
    size_t key_len;    /* bytes in key */
    bool has_key;      /* a key was read and its value is awaited */
    bool is_merge_key; /* the pending key is `<<` */
    json_t *merges;    /* owned array of merge sources (objects or arrays of them), or NULL */
};

/* An anchor of the current document. */
struct yaml_anchor {
    char *name;    /* owned */
    json_t *value; /* one reference owned */
    size_t weight; /* nodes under value after alias expansion */
};

/* The conversion state of one stream. */
struct yaml_conv {
    struct yaml_frame frames[K8S_YAML_MAX_DEPTH];
    size_t depth;                /* frames in use */
    struct yaml_anchor *anchors; /* owned */
    size_t n_anchors, cap_anchors;
    json_t *docs;   /* owned array of finished documents */
    json_t *root;   /* owned root of the current document, or NULL */
    size_t total;   /* nodes of the stream after alias expansion */
    yaml_mark_t at; /* start of the event being converted */
};

static size_t sat_add(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static int at_line(const struct yaml_conv *c)
{
    return (int)(c->at.line + 1 > INT32_MAX ? INT32_MAX : c->at.line + 1);
}

static int at_col(const struct yaml_conv *c)
{
    return (int)(c->at.column + 1 > INT32_MAX ? INT32_MAX : c->at.column + 1);
}

static bool text_in(const char *s, size_t len, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strlen(list[i]) == len && memcmp(s, list[i], len) == 0) {
            return true;
        }
    }
    return false;
}

static int digit_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A' + 10;
    }
    return 99;
}

/* Go's strconv.ParseInt(s, 0, 64), then ParseUint: returns 1 with *out for an
 * int64, 2 with *uout for a larger unsigned value, 0 when s is not an integer. */
static int parse_go_int(const char *s, size_t len, int64_t *out, uint64_t *uout)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }
    if (i >= len) {
        return 0;
    }
    unsigned base = 10;
    if (s[i] == '0' && i + 1 < len) {
        char p = (char)(s[i + 1] | 0x20);
        base = p == 'x' ? 16 : p == 'b' ? 2 : 8;
        i += (p == 'x' || p == 'b' || p == 'o') ? 2 : 1;
        if (i >= len) {
            return 0;
        }
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        int d = digit_value(s[i]);
        if (d >= (int)base || v > (UINT64_MAX - (uint64_t)d) / base) {
            return 0;
        }
        v = v * base + (uint64_t)d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return 0;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        return 1;
    }
    if (v <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v;
        return 1;
    }
    *uout = v;
    return 2;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* go-yaml v2's yamlStyleFloat: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool float_syntax(const char *s, size_t len)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;
    if (i < len && (s[i] == '+' || s[i] == '-')) {
        i++;
    }
    while (i < len && is_digit(s[i])) {
        i++;
        int_digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && is_digit(s[i])) {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t exp_digits = 0;
        while (i < len && is_digit(s[i])) {
            i++;
            exp_digits++;
        }
        if (exp_digits == 0) {
            return false;
        }
    }
    return i == len;
}

/* Resolves the text of a number-looking plain scalar (already without `_`). */
static json_t *resolve_number(const char *s, size_t len)
{
    int64_t iv;
    uint64_t uv;
    int kind = parse_go_int(s, len, &iv, &uv);
    if (kind == 1) {
        return json_integer((json_int_t)iv);
    }
    if (kind == 2) {
        return json_real((double)uv);
    }
    if (!float_syntax(s, len)) {
        return NULL;
    }
    char *copy = strndup(s, len);
    if (copy == NULL) {
        return NULL;
    }
    errno = 0;
    char *end = NULL;
    double d = strtod(copy, &end);
    bool ok = end == copy + len && !(errno == ERANGE && isinf(d)) && isfinite(d);
    free(copy);
    return ok ? json_real(d) : NULL;
}

/* Resolves a plain scalar to null, boolean, integer, float or string. Returns
 * NULL only when out of memory. */
static json_t *resolve_plain(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                        "True", "TRUE", "on",  "On",  "ON",  NULL};
    static const char *const falses[] = {"n",     "N",     "no",  "No",  "NO",  "false",
                                         "False", "FALSE", "off", "Off", "OFF", NULL};
    if (text_in(s, len, nulls)) {
        return json_null();
    }
    if (text_in(s, len, trues)) {
        return json_true();
    }
    if (text_in(s, len, falses)) {
        return json_false();
    }
    if (len > 0 && len <= 4096 && strchr("+-.0123456789", s[0]) != NULL) {
        char plain[4097];
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] != '_') {
                plain[n++] = s[i];
            }
        }
        json_t *num = resolve_number(plain, n);
        if (num != NULL) {
            return num;
        }
    }
    return json_stringn(s, len);
}

/* Converts a scalar event into *out. Returns 0, -EINVAL (value does not match
 * its tag) or -ENOMEM. */
static int scalar_value(const yaml_event_t *ev, json_t **out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    size_t plen = strlen(YAML_TAG_PREFIX);

    if (tag == NULL || strncmp(tag, YAML_TAG_PREFIX, plen) != 0) {
        *out = (tag == NULL && plain) ? resolve_plain(s, len) : json_stringn(s, len);
        return *out == NULL ? -ENOMEM : 0;
    }
    const char *kind = tag + plen;
    bool is_null = strcmp(kind, "null") == 0, is_bool = strcmp(kind, "bool") == 0;
    bool is_int = strcmp(kind, "int") == 0, is_float = strcmp(kind, "float") == 0;
    if (!is_null && !is_bool && !is_int && !is_float) {
        *out = json_stringn(s, len);
        return *out == NULL ? -ENOMEM : 0;
    }
    json_t *v = resolve_plain(s, len);
    if (v == NULL) {
        return -ENOMEM;
    }
    bool match = (is_null && json_is_null(v)) || (is_bool && json_is_boolean(v)) ||
                 (is_int && json_is_integer(v)) || (is_float && json_is_number(v));
    if (!match) {
        json_decref(v);
        return -EINVAL;
    }
    if (is_float && json_is_integer(v)) {
        json_t *r = json_real((double)json_integer_value(v));
        json_decref(v);
        v = r;
    }
    *out = v;
    return v == NULL ? -ENOMEM : 0;
}

static void anchors_clear(struct yaml_conv *c)
{
    for (size_t i = 0; i < c->n_anchors; i++) {
        free(c->anchors[i].name);
        json_decref(c->anchors[i].value);
    }
    c->n_anchors = 0;
}

static struct yaml_anchor *anchor_find(struct yaml_conv *c, const char *name)
{
    for (size_t i = c->n_anchors; i > 0; i--) {
        if (strcmp(c->anchors[i - 1].name, name) == 0) {
            return &c->anchors[i - 1];
        }
    }
    return NULL;
}

/* Records (or redefines) anchor name for v; takes a new reference to v. */
static int anchor_set(struct yaml_conv *c, const char *name, json_t *v, size_t weight)
{
    struct yaml_anchor *a = anchor_find(c, name);
    if (a != NULL) {
        json_decref(a->value);
        a->value = json_incref(v);
        a->weight = weight;
        return 0;
    }
    if (c->n_anchors == c->cap_anchors) {
        size_t cap = c->cap_anchors == 0 ? 8 : c->cap_anchors * 2;
        struct yaml_anchor *na = realloc(c->anchors, cap * sizeof(*na));
        if (na == NULL) {
            return -ENOMEM;
        }
        c->anchors = na;
        c->cap_anchors = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return -ENOMEM;
    }
    c->anchors[c->n_anchors++] = (struct yaml_anchor){copy, json_incref(v), weight};
    return 0;
}

static bool is_merge_source(json_t *v)
{
    if (json_is_object(v)) {
        return true;
    }
    if (!json_is_array(v)) {
        return false;
    }
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_object(item)) {
            return false;
        }
    }
    return true;
}

/* Stores v (a reference the caller hands over) under the pending key of the
 * mapping frame f. */
static int frame_set(struct yaml_conv *c, struct yaml_frame *f, json_t *v, char *err)
{
    int rc = 0;
    if (f->is_merge_key) {
        if (!is_merge_source(v)) {
            json_decref(v);
            return dc_err_set(err, -EINVAL,
                              "YAML error at line %d column %d: merge key `<<' needs a mapping "
                              "or a list of mappings",
                              at_line(c), at_col(c));
        }
        if (f->merges == NULL) {
            f->merges = json_array();
        }
        rc = f->merges == NULL || json_array_append_new(f->merges, v) != 0 ? -ENOMEM : 0;
    } else {
        rc = json_object_setn_new(f->node, f->key, f->key_len, v) != 0 ? -ENOMEM : 0;
    }
    free(f->key);
    f->key = NULL;
    f->has_key = false;
    f->is_merge_key = false;
    return rc;
}

/* Attaches a finished value (reference handed over) to its parent or makes
 * it the document root; records its anchor. weight is the value's expanded
 * size; count is what it adds to the stream's total (1 for a new node, the
 * whole weight for an alias: a collection's children were counted already). */
static int add_value(struct yaml_conv *c, json_t *v, size_t weight, size_t count,
                     const char *anchor, char *err)
{
    c->total = sat_add(c->total, count);
    if (c->total > K8S_YAML_MAX_NODES) {
        json_decref(v);
        return dc_err_set(err, -EMSGSIZE,
                          "YAML error at line %d column %d: more than %d nodes once aliases are "
                          "expanded",
                          at_line(c), at_col(c), K8S_YAML_MAX_NODES);
    }
    if (anchor != NULL && anchor_set(c, anchor, v, weight) != 0) {
        json_decref(v);
        return -ENOMEM;
    }
    if (c->depth == 0) {
        json_decref(c->root);
        c->root = v;
        return 0;
    }
    struct yaml_frame *f = &c->frames[c->depth - 1];
    f->weight = sat_add(f->weight, weight);
    if (json_is_array(f->node)) {
        return json_array_append_new(f->node, v) != 0 ? -ENOMEM : 0;
    }
    return frame_set(c, f, v, err);
}

static bool expecting_key(const struct yaml_conv *c)
{
    if (c->depth == 0) {
        return false;
    }
    const struct yaml_frame *f = &c->frames[c->depth - 1];
    return json_is_object(f->node) && !f->has_key;
}

/* Takes the key of the top mapping frame from a scalar or an alias. */
static int take_key(struct yaml_conv *c, const yaml_event_t *ev, char *err)
{
    struct yaml_frame *f = &c->frames[c->depth - 1];
    const char *s;
    size_t len;
    if (ev->type == YAML_SCALAR_EVENT) {
        s = (const char *)ev->data.scalar.value;
        len = ev->data.scalar.length;
        f->is_merge_key = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                          ev->data.scalar.tag == NULL && len == 2 && memcmp(s, "<<", 2) == 0;
    } else {
        struct yaml_anchor *a = anchor_find(c, (const char *)ev->data.alias.anchor);
        if (a == NULL || !json_is_string(a->value)) {
            return dc_err_set(err, -EINVAL,
                              "YAML error at line %d column %d: an alias used as a mapping key "
                              "must name a string",
                              at_line(c), at_col(c));
        }
        s = json_string_value(a->value);
        len = json_string_length(a->value);
    }
    f->key = malloc(len + 1);
    if (f->key == NULL) {
        return -ENOMEM;
    }
    memcpy(f->key, s, len);
    f->key[len] = '\0';
    f->key_len = len;
    f->has_key = true;
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor != NULL) {
        json_t *k = json_stringn(s, len);
        int rc = k == NULL ? -ENOMEM : anchor_set(c, (const char *)ev->data.scalar.anchor, k, 1);
        json_decref(k);
        return rc;
    }
    return 0;
}

static int push_frame(struct yaml_conv *c, const yaml_event_t *ev, char *err)
{
    if (expecting_key(c)) {
        return dc_err_set(err, -EINVAL,
                          "YAML error at line %d column %d: a mapping key must be a scalar",
                          at_line(c), at_col(c));
    }
    if (c->depth == K8S_YAML_MAX_DEPTH) {
        return dc_err_set(err, -EMSGSIZE,
                          "YAML error at line %d column %d: nested deeper than %d levels",
                          at_line(c), at_col(c), K8S_YAML_MAX_DEPTH);
    }
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    const yaml_char_t *anchor =
        is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    struct yaml_frame *f = &c->frames[c->depth];
    memset(f, 0, sizeof(*f));
    f->node = is_map ? json_object() : json_array();
    f->weight = 1;
    if (anchor != NULL) {
        f->anchor = strdup((const char *)anchor);
    }
    if (f->node == NULL || (anchor != NULL && f->anchor == NULL)) {
        json_decref(f->node);
        free(f->anchor);
        return -ENOMEM;
    }
    c->depth++;
    return 0;
}

static int apply_merges(json_t *node, json_t *merges)
{
    size_t i, j;
    json_t *src, *item;
    json_array_foreach(merges, i, src)
    {
        if (json_is_object(src)) {
            if (json_object_update_missing(node, src) != 0) {
                return -ENOMEM;
            }
            continue;
        }
        json_array_foreach(src, j, item)
        {
            if (json_object_update_missing(node, item) != 0) {
                return -ENOMEM;
            }
        }
    }
    return 0;
}

static int pop_frame(struct yaml_conv *c, char *err)
{
    struct yaml_frame f = c->frames[--c->depth];
    int rc = 0;
    if (f.merges != NULL) {
        rc = apply_merges(f.node, f.merges);
        json_decref(f.merges);
    }
    free(f.key);
    if (rc == 0) {
        rc = add_value(c, f.node, f.weight, 1, f.anchor, err);
    } else {
        json_decref(f.node);
    }
    free(f.anchor);
    return rc;
}

static int on_scalar(struct yaml_conv *c, const yaml_event_t *ev, char *err)
{
    if (expecting_key(c)) {
        return take_key(c, ev, err);
    }
    json_t *v = NULL;
    int rc = scalar_value(ev, &v);
    if (rc == -EINVAL) {
        return dc_err_set(err, -EINVAL,
                          "YAML error at line %d column %d: value does not match its tag `%s'",
                          at_line(c), at_col(c), (const char *)ev->data.scalar.tag);
    }
    if (rc != 0) {
        return rc;
    }
    return add_value(c, v, 1, 1, (const char *)ev->data.scalar.anchor, err);
}

static int on_alias(struct yaml_conv *c, const yaml_event_t *ev, char *err)
{
    if (expecting_key(c)) {
        return take_key(c, ev, err);
    }
    struct yaml_anchor *a = anchor_find(c, (const char *)ev->data.alias.anchor);
    if (a == NULL) {
        return dc_err_set(err, -EINVAL,
                          "YAML error at line %d column %d: alias `*%s' names no earlier "
                          "complete anchor",
                          at_line(c), at_col(c), (const char *)ev->data.alias.anchor);
    }
    return add_value(c, json_incref(a->value), a->weight, a->weight, NULL, err);
}

static int on_event(struct yaml_conv *c, const yaml_event_t *ev, char *err)
{
    c->at = ev->start_mark;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        anchors_clear(c);
        return 0;
    case YAML_DOCUMENT_END_EVENT: {
        json_t *root = c->root != NULL ? c->root : json_null();
        c->root = NULL;
        anchors_clear(c);
        return json_array_append_new(c->docs, root) != 0 ? -ENOMEM : 0;
    }
    case YAML_SCALAR_EVENT:
        return on_scalar(c, ev, err);
    case YAML_ALIAS_EVENT:
        return on_alias(c, ev, err);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return push_frame(c, ev, err);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return pop_frame(c, err);
    default:
        return 0;
    }
}

static int parser_error(const yaml_parser_t *p, char *err)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown problem";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return -ENOMEM;
    case YAML_READER_ERROR:
        return dc_err_set(err, -EINVAL, "YAML input error at byte offset %zu: %s",
                          p->problem_offset, problem);
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
        if (p->context != NULL) {
            return dc_err_set(err, -EINVAL,
                              "YAML syntax error at line %zu column %zu: %s (%s at line %zu "
                              "column %zu)",
                              p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                              p->context, p->context_mark.line + 1, p->context_mark.column + 1);
        }
        return dc_err_set(err, -EINVAL, "YAML syntax error at line %zu column %zu: %s",
                          p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
    default:
        return dc_err_set(err, -EINVAL, "YAML error: %s", problem);
    }
}

static void conv_free(struct yaml_conv *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->depth; i++) {
        json_decref(c->frames[i].node);
        json_decref(c->frames[i].merges);
        free(c->frames[i].anchor);
        free(c->frames[i].key);
    }
    anchors_clear(c);
    free(c->anchors);
    json_decref(c->root);
    json_decref(c->docs);
    free(c);
}

/* Wipes the scalar bytes libyaml copied out of the input, then frees the event. */
static void event_release(yaml_event_t *ev)
{
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.value != NULL) {
        sodium_memzero(ev->data.scalar.value, ev->data.scalar.length);
    }
    yaml_event_delete(ev);
}

int k8s_yaml_parse(const char *text, size_t len, json_t **docs, char *err)
{
    yaml_parser_t parser;
    bool has_parser = false;
    int rc = 0;
    struct yaml_conv *c = calloc(1, sizeof(*c));
    *docs = NULL;
    if (c != NULL) {
        c->docs = json_array();
    }
    if (c == NULL || c->docs == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = -ENOMEM;
        goto out;
    }
    has_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text != NULL ? text : ""),
                                 text != NULL ? len : 0);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&parser, err);
            goto out;
        }
        rc = on_event(c, &ev, err);
        bool done = ev.type == YAML_STREAM_END_EVENT;
        event_release(&ev);
        if (rc != 0) {
            goto out;
        }
        if (done) {
            break;
        }
    }
    *docs = c->docs;
    c->docs = NULL;
out:
    if (rc == -ENOMEM) {
        dc_err_set(err, rc, "out of memory while converting YAML");
    }
    if (has_parser) {
        yaml_parser_delete(&parser);
    }
    conv_free(c);
    return rc;
}

void k8s_yaml_wipe(json_t *v)
{
    size_t i;
    const char *key;
    json_t *item;
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n > 0) {
            /* The bytes belong to this jansson value; only their content changes. */
            sodium_memzero((void *)json_string_value(v), n);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            k8s_yaml_wipe(item);
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            k8s_yaml_wipe(item);
        }
    }
}
