/* fuzz_region_ids: the region-ID table's readers (controller/region_ids.c)
 * on arbitrary bytes: the --state-dir file (region_ids_parse) and a
 * ConfigMap's data as the API server sends it (region_ids_from_data), then a
 * merge of the two as a replica does when the ConfigMap changes.
 *
 * Checks: a table read from data has unique names and unique IDs in range;
 * after the merge every name of the authority keeps its ID, IDs stay unique,
 * and the result written back as data reads back to the same table. */
#include "derpmap.h"
#include "region_ids.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static int id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Names sorted and unique, IDs unique and in range. */
static void check_table(const struct region_ids *t)
{
    uint32_t *ids = malloc((t->n + 1) * sizeof(*ids));
    check(ids != NULL);
    for (size_t i = 0; i < t->n; i++) {
        check(i == 0 || strcmp(t->v[i - 1].name, t->v[i].name) < 0);
        check(t->v[i].id >= DERPMAP_FIRST_CLUSTER_ID && t->v[i].id <= REGION_IDS_MAX_ID);
        ids[i] = t->v[i].id;
    }
    qsort(ids, t->n, sizeof(*ids), id_cmp);
    for (size_t i = 1; i < t->n; i++) {
        check(ids[i - 1] != ids[i]);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[DC_ERR_LEN];
    struct region_ids file, api, back;
    region_ids_init(&file);
    region_ids_init(&api);
    region_ids_init(&back);
    if (region_ids_parse(&file, (const char *)data, size, err) == 0) {
        check_table(&file);
    }
    json_error_t e;
    json_t *obj = json_loadb((const char *)data, size, 0, &e);
    size_t skipped = 0;
    if (obj != NULL && region_ids_from_data(&api, obj, &skipped, err) == 0) {
        check_table(&api);
        int changed = region_ids_merge(&file, &api);
        check(changed >= 0);
        check_table(&file);
        for (size_t i = 0; i < api.n; i++) {
            check(region_ids_lookup(&file, api.v[i].name) == api.v[i].id);
        }
        json_t *out = region_ids_to_data(&file);
        check(out != NULL);
        check(region_ids_from_data(&back, out, &skipped, err) == 0 && skipped == 0);
        check(back.n == file.n);
        for (size_t i = 0; i < back.n; i++) {
            check(strcmp(back.v[i].name, file.v[i].name) == 0 && back.v[i].id == file.v[i].id);
        }
        json_decref(out);
    }
    json_decref(obj);
    region_ids_deinit(&file);
    region_ids_deinit(&api);
    region_ids_deinit(&back);
    return 0;
}
