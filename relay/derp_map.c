#include "derp_map.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where in the map an error happened: "Regions[\"901\"].Nodes[0]" at most. */
#define PATH_LEN 160
/* Region keys longer than this cannot be a decimal uint32 anyway. */
#define REGION_KEY_MAX 10

enum field_kind {
    FIELD_STRING, /* copied into a char[len] at off */
    FIELD_INT,    /* int at off, from min to max */
    FIELD_BOOL,   /* bool at off */
    FIELD_ID,     /* a RegionID: type-checked as an integer, not kept */
};

struct field {
    const char *name;     /* Go's field name (matched as Go matches it) */
    enum field_kind kind; /* how to read and where to put it */
    size_t off;           /* offset in struct derp_map_node */
    size_t len;           /* FIELD_STRING: buffer size, NUL included */
    long min, max;        /* FIELD_INT: accepted range */
};

#define NODE_STR(n, f)                                                                             \
    {                                                                                              \
        n, FIELD_STRING, offsetof(struct derp_map_node, f),                                        \
            sizeof(((struct derp_map_node *)NULL)->f), 0, 0                                        \
    }
#define NODE_INT(n, f, lo, hi)                                                                     \
    {                                                                                              \
        n, FIELD_INT, offsetof(struct derp_map_node, f), 0, lo, hi                                 \
    }
#define NODE_BOOL(n, f)                                                                            \
    {                                                                                              \
        n, FIELD_BOOL, offsetof(struct derp_map_node, f), 0, 0, 0                                  \
    }

static const struct field region_fields[] = {
    {"RegionID", FIELD_ID, 0, 0, 0, 0},
    NODE_STR("RegionCode", region_code),
    NODE_STR("RegionName", region_name),
};

static const struct field node_fields[] = {
    NODE_STR("Name", name),
    {"RegionID", FIELD_ID, 0, 0, 0, 0},
    NODE_STR("HostName", host_name),
    NODE_STR("CertName", cert_name),
    NODE_STR("IPv4", ipv4),
    NODE_STR("IPv6", ipv6),
    NODE_INT("STUNPort", stun_port, -1, 65535),
    NODE_BOOL("STUNOnly", is_stun_only),
    NODE_INT("DERPPort", derp_port, 0, 65535),
    NODE_BOOL("InsecureForTests", is_insecure_for_tests),
    NODE_STR("STUNTestIP", stun_test_ip),
};

/* One region key, parsed and ready to sort. */
struct region_ref {
    uint32_t id;
    const char *key; /* borrowed from the document */
    json_t *value;   /* borrowed */
};

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}

/* Stores one string field; too long is an error, as is any other type. */
static int set_string(const struct field *f, json_t *v, uint8_t *base, const char *path, char *err)
{
    if (!json_is_string(v)) {
        return dc_err_set(err, -EINVAL, "derp-map: %s.%s: want a string, got %s", path, f->name,
                          json_kind(v));
    }
    size_t n = json_string_length(v);
    if (n >= f->len) {
        return dc_err_set(err, -EINVAL, "derp-map: %s.%s: longer than %zu bytes", path, f->name,
                          f->len - 1);
    }
    memcpy(base + f->off, json_string_value(v), n);
    base[f->off + n] = '\0';
    return 0;
}

static int set_field(const struct field *f, json_t *v, uint8_t *base, const char *path, char *err)
{
    if (json_is_null(v)) {
        return 0; /* Go leaves the zero value */
    }
    switch (f->kind) {
    case FIELD_STRING:
        return set_string(f, v, base, path, err);
    case FIELD_BOOL:
        if (!json_is_boolean(v)) {
            return dc_err_set(err, -EINVAL, "derp-map: %s.%s: want true or false, got %s", path,
                              f->name, json_kind(v));
        }
        *(bool *)(void *)(base + f->off) = json_is_true(v);
        return 0;
    case FIELD_ID:
        if (!json_is_integer(v)) {
            return dc_err_set(err, -EINVAL, "derp-map: %s.%s: want an integer, got %s", path,
                              f->name, json_kind(v));
        }
        return 0;
    case FIELD_INT:
        break;
    }
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : 0;
    if (!json_is_integer(v) || i < f->min || i > f->max) {
        char got[32];
        if (json_is_integer(v)) {
            snprintf(got, sizeof(got), "%lld", (long long)i);
        }
        return dc_err_set(err, -EINVAL, "derp-map: %s.%s: want an integer from %ld to %ld, got %s",
                          path, f->name, f->min, f->max, json_is_integer(v) ? got : json_kind(v));
    }
    *(int *)(void *)(base + f->off) = (int)i;
    return 0;
}

/* Finds the field Go's decoder would fill for key: an exact match first,
 * else one that differs only in ASCII case. NULL for an unknown key. */
static const struct field *find_field(const struct field *fields, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(fields[i].name, key) == 0) {
            return &fields[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(fields[i].name, key) == 0) {
            return &fields[i];
        }
    }
    return NULL;
}

/* Reads the known fields of obj into base; other keys are skipped. */
static int read_fields(json_t *obj, const struct field *fields, size_t n, void *base,
                       const char *path, char *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const struct field *f = find_field(fields, n, key);
        if (f == NULL) {
            continue;
        }
        int rc = set_field(f, v, base, path, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Looks a member up the way Go matches field names. NULL when absent. */
static json_t *get_member(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (v != NULL) {
        return v;
    }
    const char *key;
    json_object_foreach(obj, key, v)
    {
        if (strcasecmp(key, name) == 0) {
            return v;
        }
    }
    return NULL;
}

static int add_node(struct derp_map *m, const struct derp_map_node *tmpl, json_t *v,
                    const char *path, char *err)
{
    struct derp_map_node *n = &m->nodes[m->num_nodes];
    *n = *tmpl;
    int rc =
        read_fields(v, node_fields, sizeof(node_fields) / sizeof(node_fields[0]), n, path, err);
    if (rc == 0) {
        m->num_nodes++;
    }
    return rc;
}

static int read_nodes(struct derp_map *m, const struct derp_map_node *tmpl, json_t *nodes,
                      const char *rpath, char *err)
{
    if (nodes == NULL || json_is_null(nodes)) {
        return 0;
    }
    if (!json_is_array(nodes)) {
        return dc_err_set(err, -EINVAL, "derp-map: %s.Nodes: want an array, got %s", rpath,
                          json_kind(nodes));
    }
    size_t i;
    json_t *v;
    json_array_foreach(nodes, i, v)
    {
        char path[PATH_LEN + 32]; /* rpath plus ".Nodes[<index>]" */
        snprintf(path, sizeof(path), "%s.Nodes[%zu]", rpath, i);
        if (json_is_null(v)) {
            continue; /* a nil *DERPNode: nothing to probe */
        }
        if (!json_is_object(v)) {
            return dc_err_set(err, -EINVAL, "derp-map: %s: want an object, got %s", path,
                              json_kind(v));
        }
        int rc = add_node(m, tmpl, v, path, err);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int read_region(struct derp_map *m, const struct region_ref *r, char *err)
{
    char path[PATH_LEN];
    snprintf(path, sizeof(path), "Regions[\"%s\"]", r->key);
    if (!json_is_object(r->value)) {
        return dc_err_set(err, -EINVAL, "derp-map: %s: want an object, got %s", path,
                          json_kind(r->value));
    }
    struct derp_map_node tmpl = {.region_id = r->id};
    int rc = read_fields(r->value, region_fields, sizeof(region_fields) / sizeof(region_fields[0]),
                         &tmpl, path, err);
    if (rc < 0) {
        return rc;
    }
    return read_nodes(m, &tmpl, get_member(r->value, "Nodes"), path, err);
}

/* Parses a Regions key: decimal digits for a uint32 (Go's map[int] keys). */
static int parse_region_key(const char *key, uint32_t *id, char *err)
{
    size_t n = strlen(key);
    unsigned long long v = 0;
    bool ok = n > 0 && n <= REGION_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = key[i] >= '0' && key[i] <= '9';
        v = v * 10 + (unsigned)(key[i] - '0');
    }
    if (!ok || v > UINT32_MAX) {
        char q[DC_QUOTE_BUF_LEN];
        return dc_err_set(err, -EINVAL, "derp-map: Regions: key is not a region ID: `%s'",
                          dc_err_quote(key, n, q));
    }
    *id = (uint32_t)v;
    return 0;
}

static int ref_cmp(const void *a, const void *b)
{
    const struct region_ref *x = a;
    const struct region_ref *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Collects and sorts the region keys; refuses duplicates after parsing
 * ("901" and "0901" are one region). */
static int collect_regions(json_t *regions, struct region_ref *refs, char *err)
{
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(regions, key, v)
    {
        int rc = parse_region_key(key, &refs[i].id, err);
        if (rc < 0) {
            return rc;
        }
        refs[i].key = key;
        refs[i].value = v;
        i++;
    }
    qsort(refs, i, sizeof(refs[0]), ref_cmp);
    for (size_t k = 1; k < i; k++) {
        if (refs[k].id == refs[k - 1].id) {
            return dc_err_set(err, -EINVAL, "derp-map: Regions: region ID %u appears twice",
                              refs[k].id);
        }
    }
    return 0;
}

/* Counts the node entries of every region (wrong types are reported later,
 * in order), so the node array is allocated once and the limit checked first. */
static size_t count_nodes(const struct region_ref *refs, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *nodes = json_is_object(refs[i].value) ? get_member(refs[i].value, "Nodes") : NULL;
        total += json_is_array(nodes) ? json_array_size(nodes) : 0;
    }
    return total;
}

static int read_regions(struct derp_map *m, json_t *regions, char *err)
{
    size_t n = json_object_size(regions);
    if (n > DERP_MAP_MAX_REGIONS) {
        return dc_err_set(err, -EMSGSIZE, "derp-map: more than %u regions (%zu)",
                          DERP_MAP_MAX_REGIONS, n);
    }
    if (n == 0) {
        return 0;
    }
    struct region_ref *refs = calloc(n, sizeof(*refs));
    if (refs == NULL) {
        return dc_err_set(err, -ENOMEM, "derp-map: out of memory");
    }
    int rc = collect_regions(regions, refs, err);
    size_t total = rc == 0 ? count_nodes(refs, n) : 0;
    if (rc == 0 && total > DERP_MAP_MAX_NODES) {
        rc = dc_err_set(err, -EMSGSIZE, "derp-map: more than %u nodes (%zu)", DERP_MAP_MAX_NODES,
                        total);
    }
    if (rc == 0 && total > 0) {
        m->nodes = calloc(total, sizeof(*m->nodes));
        rc = m->nodes == NULL ? dc_err_set(err, -ENOMEM, "derp-map: out of memory") : 0;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!json_is_null(refs[i].value)) {
            m->num_regions++;
            rc = read_region(m, &refs[i], err);
        }
    }
    free(refs);
    return rc;
}

int derp_map_parse(const char *json, size_t len, struct derp_map *out, char *err)
{
    memset(out, 0, sizeof(*out));
    if (len > DERP_MAP_MAX_JSON_LEN) {
        return dc_err_set(err, -EMSGSIZE, "derp-map: document of %zu bytes is over the %u limit",
                          len, DERP_MAP_MAX_JSON_LEN);
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL) {
        return dc_err_set(err, -EINVAL, "derp-map: not JSON: %s (line %d column %d)", jerr.text,
                          jerr.line, jerr.column);
    }
    int rc = 0;
    json_t *regions = json_is_object(root) ? get_member(root, "Regions") : NULL;
    if (!json_is_object(root)) {
        rc = dc_err_set(err, -EINVAL, "derp-map: want a JSON object, got %s", json_kind(root));
    } else if (regions != NULL && !json_is_null(regions) && !json_is_object(regions)) {
        rc = dc_err_set(err, -EINVAL, "derp-map: Regions: want an object, got %s",
                        json_kind(regions));
    } else if (regions != NULL && !json_is_null(regions)) {
        rc = read_regions(out, regions, err);
    }
    json_decref(root);
    if (rc < 0) {
        derp_map_deinit(out);
    }
    return rc;
}

void derp_map_deinit(struct derp_map *m)
{
    if (m == NULL) {
        return;
    }
    free(m->nodes);
    memset(m, 0, sizeof(*m));
}
