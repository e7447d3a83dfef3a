#include "region_ids.h"

#include "derpmap.h"
#include "file.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest persisted table read (10 000 names of 253 bytes fit easily). */
#define REGION_IDS_MAX_FILE (16u << 20)

void region_ids_init(struct region_ids *t)
{
    memset(t, 0, sizeof(*t));
    t->next_id = DERPMAP_FIRST_CLUSTER_ID;
}

void region_ids_deinit(struct region_ids *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
    }
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/* Binary search: index of name, or where it would go (*found false). */
static size_t find(const struct region_ids *t, const char *name, bool *found)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static int insert(struct region_ids *t, size_t at, const char *name, uint32_t id)
{
    if (t->n == t->cap) {
        size_t cap = t->cap == 0 ? 64 : t->cap * 2;
        struct region_ids_entry *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        t->v = v;
        t->cap = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memmove(&t->v[at + 1], &t->v[at], (t->n - at) * sizeof(*t->v));
    t->v[at].name = copy;
    t->v[at].id = id;
    t->n++;
    if (id >= t->next_id) {
        t->next_id = id + 1;
    }
    return 0;
}

uint32_t region_ids_get(struct region_ids *t, const char *name)
{
    bool found;
    size_t at = find(t, name, &found);
    if (found) {
        return t->v[at].id;
    }
    if (t->next_id > REGION_IDS_MAX_ID) {
        return 0;
    }
    uint32_t id = t->next_id;
    if (insert(t, at, name, id) < 0) {
        return 0;
    }
    t->is_dirty = true;
    return id;
}

int region_ids_parse(struct region_ids *t, const char *text, size_t len, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return dc_err_set(err, -EINVAL, "region IDs: not a JSON object (line %d)", jerr.line);
    }
    struct region_ids fresh;
    region_ids_init(&fresh);
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, name, v)
    {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : 0;
        bool dup_id = false;
        for (size_t i = 0; i < fresh.n && !dup_id; i++) {
            dup_id = fresh.v[i].id == (uint32_t)id;
        }
        if (id < DERPMAP_FIRST_CLUSTER_ID || id > REGION_IDS_MAX_ID || dup_id) {
            rc = dc_err_set(err, -EINVAL, "region IDs: `%s' has a bad or repeated ID", name);
            break;
        }
        bool found;
        size_t at = find(&fresh, name, &found);
        rc = insert(&fresh, at, name, (uint32_t)id);
        if (rc < 0) {
            break;
        }
    }
    json_decref(root);
    if (rc < 0) {
        region_ids_deinit(&fresh);
        return rc;
    }
    region_ids_deinit(t);
    *t = fresh;
    return 0;
}

char *region_ids_format(const struct region_ids *t)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < t->n; i++) {
        if (json_object_set_new(o, t->v[i].name, json_integer(t->v[i].id)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    char *s = o != NULL ? json_dumps(o, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return s;
}

int region_ids_load(struct region_ids *t, const char *dir, char *err)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, REGION_IDS_FILE) >= (int)sizeof(path)) {
        return dc_err_set(err, -ENAMETOOLONG, "state dir path too long");
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return errno == ENOENT ? 0 : dc_err_set(err, -errno, "`%s': %s", path, strerror(errno));
    }
    char *buf = malloc(REGION_IDS_MAX_FILE);
    size_t n = buf != NULL ? fread(buf, 1, REGION_IDS_MAX_FILE, f) : 0;
    fclose(f);
    if (buf == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    char why[DC_ERR_LEN];
    int rc = n == REGION_IDS_MAX_FILE ? dc_err_set(why, -EMSGSIZE, "file too large")
                                      : region_ids_parse(t, buf, n, why);
    free(buf);
    if (rc < 0) {
        return dc_err_set(err, rc, "`%s': %s", path, why);
    }
    return 0;
}

int region_ids_save(struct region_ids *t, const char *dir, char *err)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, REGION_IDS_FILE) >= (int)sizeof(path)) {
        return dc_err_set(err, -ENAMETOOLONG, "state dir path too long");
    }
    char *text = region_ids_format(t);
    size_t len = text != NULL ? strlen(text) : 0;
    char *line = text != NULL ? realloc(text, len + 2) : NULL; /* a final newline */
    if (line == NULL) {
        free(text);
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    line[len++] = '\n';
    int rc = dc_file_write_atomic(path, line, len, err);
    free(line);
    if (rc == 0) {
        t->is_dirty = false;
    }
    return rc;
}

uint32_t region_ids_lookup(const struct region_ids *t, const char *name)
{
    bool found;
    size_t at = find(t, name, &found);
    return found ? t->v[at].id : 0;
}

static int id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The IDs of t, sorted, for bsearch; NULL with n 0 for an empty table. */
static uint32_t *sorted_ids(const struct region_ids *t)
{
    uint32_t *ids = malloc((t->n + 1) * sizeof(*ids));
    for (size_t i = 0; ids != NULL && i < t->n; i++) {
        ids[i] = t->v[i].id;
    }
    if (ids != NULL && t->n > 1) {
        qsort(ids, t->n, sizeof(*ids), id_cmp);
    }
    return ids;
}

/* Copies authority, then adds t's own names: with their ID when free, else a
 * fresh one after the highest of both tables. */
static int merge_into(struct region_ids *out, const struct region_ids *t,
                      const struct region_ids *authority, const uint32_t *taken, bool *has_own)
{
    for (size_t i = 0; i < authority->n; i++) {
        if (insert(out, out->n, authority->v[i].name, authority->v[i].id) < 0) {
            return -ENOMEM;
        }
    }
    if (t->next_id > out->next_id) {
        out->next_id = t->next_id;
    }
    for (size_t i = 0; i < t->n; i++) {
        bool found;
        size_t at = find(out, t->v[i].name, &found);
        if (found) {
            continue;
        }
        uint32_t id = t->v[i].id;
        if (bsearch(&id, taken, authority->n, sizeof(*taken), id_cmp) != NULL) {
            id = out->next_id; /* authority gave this ID to another name */
        }
        if (id > REGION_IDS_MAX_ID || insert(out, at, t->v[i].name, id) < 0) {
            return -ENOMEM;
        }
        *has_own = true;
    }
    return 0;
}

int region_ids_merge(struct region_ids *t, const struct region_ids *authority)
{
    uint32_t *taken = sorted_ids(authority);
    struct region_ids out;
    region_ids_init(&out);
    bool has_own = false;
    if (taken == NULL || merge_into(&out, t, authority, taken, &has_own) < 0) {
        free(taken);
        region_ids_deinit(&out);
        return -ENOMEM;
    }
    free(taken);
    int changed = 0;
    for (size_t i = 0; i < out.n; i++) {
        changed += region_ids_lookup(t, out.v[i].name) != out.v[i].id;
    }
    region_ids_deinit(t);
    *t = out;
    t->is_dirty = has_own;
    return changed;
}

/* Parses a ConfigMap value: decimal digits only, in the cluster ID range. */
static uint32_t parse_data_id(const char *s)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 8; i++) {
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || s[i] != '\0' || v < DERPMAP_FIRST_CLUSTER_ID || v > REGION_IDS_MAX_ID) {
        return 0;
    }
    return (uint32_t)v;
}

struct id_slot {
    uint32_t id;
    size_t at; /* index in the table, so the first name (sorted) keeps a repeated ID */
};

static int slot_cmp(const void *a, const void *b)
{
    const struct id_slot *x = a, *y = b;
    if (x->id != y->id) {
        return x->id < y->id ? -1 : 1;
    }
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Removes entries whose ID an earlier name (in name order) holds; returns how
 * many went (first_name gets the first such name), or -ENOMEM. n log n. */
static int drop_repeated_ids(struct region_ids *t, char *first_name, size_t first_len)
{
    struct id_slot *slots = malloc((t->n + 1) * sizeof(*slots));
    if (slots == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        slots[i] = (struct id_slot){.id = t->v[i].id, .at = i};
    }
    qsort(slots, t->n, sizeof(*slots), slot_cmp);
    int dropped = 0;
    for (size_t i = 1; i < t->n; i++) {
        if (slots[i].id == slots[i - 1].id) {
            struct region_ids_entry *e = &t->v[slots[i].at];
            if (dropped++ == 0) {
                snprintf(first_name, first_len, "%s", e->name);
            }
            free(e->name);
            e->name = NULL; /* compacted below */
        }
    }
    free(slots);
    size_t out = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].name != NULL) {
            t->v[out++] = t->v[i];
        }
    }
    t->n = out;
    return dropped;
}

int region_ids_from_data(struct region_ids *t, const void *data, size_t *skipped, char *err)
{
    const json_t *obj = data;
    struct region_ids fresh;
    region_ids_init(&fresh);
    char bad[256] = "";
    *skipped = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        uint32_t id = json_is_string(v) ? parse_data_id(json_string_value(v)) : 0;
        bool found;
        size_t at = find(&fresh, name, &found);
        if (id == 0) {
            if ((*skipped)++ == 0) {
                snprintf(bad, sizeof(bad), "%s", name);
            }
            continue;
        }
        if (insert(&fresh, at, name, id) < 0) {
            region_ids_deinit(&fresh);
            return -ENOMEM;
        }
    }
    char repeated[256] = "";
    int dropped = drop_repeated_ids(&fresh, repeated, sizeof(repeated));
    if (dropped < 0) {
        region_ids_deinit(&fresh);
        return -ENOMEM;
    }
    *skipped += (size_t)dropped;
    err[0] = '\0';
    if (*skipped > 0) {
        char q[DC_QUOTE_BUF_LEN];
        const char *first = bad[0] ? bad : repeated;
        dc_err_set(err, -EINVAL, "entry `%s' has a bad or repeated region ID",
                   dc_err_quote(first, strlen(first), q));
    }
    region_ids_deinit(t);
    *t = fresh;
    return 0;
}

void *region_ids_to_data(const struct region_ids *t)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < t->n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%u", t->v[i].id);
        if (json_object_set_new(o, t->v[i].name, json_string(id)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
