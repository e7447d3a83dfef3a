#include "region_ids.h"

#include "derpmap.h"

#include <errno.h>
#include <fcntl.h>
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
    char path[4096], tmp[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, REGION_IDS_FILE) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, REGION_IDS_FILE) >= (int)sizeof(tmp)) {
        return dc_err_set(err, -ENAMETOOLONG, "state dir path too long");
    }
    char *text = region_ids_format(t);
    if (text == NULL) {
        return dc_err_set(err, -ENOMEM, "out of memory");
    }
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0) {
        rc = dc_err_set(err, -errno, "`%s': %s", tmp, strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = dc_err_set(err, -errno, "rename to `%s': %s", path, strerror(errno));
    }
    free(text);
    if (rc == 0) {
        t->is_dirty = false;
    } else {
        unlink(tmp);
    }
    return rc;
}
