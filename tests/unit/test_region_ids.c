/* test_region_ids: the region-ID table (controller/region_ids.c): handing
 * out IDs, merging what the API holds (its entries win, clashes get fresh
 * IDs), and the ConfigMap data form with bad entries skipped. */
#include "region_ids.h"

#include "derpmap.h"

#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_ids_are_handed_out_once(void **state)
{
    (void)state;
    struct region_ids t;
    region_ids_init(&t);
    assert_int_equal(region_ids_get(&t, "b"), DERPMAP_FIRST_CLUSTER_ID);
    assert_int_equal(region_ids_get(&t, "a"), DERPMAP_FIRST_CLUSTER_ID + 1);
    assert_int_equal(region_ids_get(&t, "b"), DERPMAP_FIRST_CLUSTER_ID);
    assert_int_equal(region_ids_lookup(&t, "a"), DERPMAP_FIRST_CLUSTER_ID + 1);
    assert_int_equal(region_ids_lookup(&t, "c"), 0);
    assert_true(t.is_dirty);
    region_ids_deinit(&t);
}

/* Builds a table from "name=id" pairs. */
static void table(struct region_ids *t, const char *const *pairs, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(pairs[i], '=');
        char name[64];
        memcpy(name, pairs[i], (size_t)(eq - pairs[i]));
        name[eq - pairs[i]] = '\0';
        json_object_set_new(o, name, json_string(eq + 1));
    }
    size_t skipped = 9;
    char err[DC_ERR_LEN];
    region_ids_init(t);
    assert_int_equal(region_ids_from_data(t, o, &skipped, err), 0);
    assert_int_equal(skipped, 0);
    json_decref(o);
}

static void test_merge_authority_wins_and_clashes_move(void **state)
{
    (void)state;
    struct region_ids local, api;
    static const char *const mine[] = {"a=901", "b=902", "c=903"};
    static const char *const theirs[] = {"a=901", "b=905", "x=903"};
    table(&local, mine, 3);
    table(&api, theirs, 3);
    int changed = region_ids_merge(&local, &api);
    /* b changes to 905, x appears with 903, c (whose 903 went to x) moves to 906 */
    assert_int_equal(changed, 3);
    assert_int_equal(region_ids_lookup(&local, "a"), 901);
    assert_int_equal(region_ids_lookup(&local, "b"), 905);
    assert_int_equal(region_ids_lookup(&local, "x"), 903);
    assert_int_equal(region_ids_lookup(&local, "c"), 906);
    assert_true(local.is_dirty); /* c is not in the API yet */
    assert_int_equal(region_ids_get(&local, "new"), 907);

    /* Merging the same authority again after c was written changes nothing. */
    struct region_ids api2;
    static const char *const written[] = {"a=901", "b=905", "x=903", "c=906", "new=907"};
    table(&api2, written, 5);
    assert_int_equal(region_ids_merge(&local, &api2), 0);
    assert_false(local.is_dirty);
    region_ids_deinit(&local);
    region_ids_deinit(&api);
    region_ids_deinit(&api2);
}

static void test_data_round_trip_and_bad_entries(void **state)
{
    (void)state;
    struct region_ids t;
    region_ids_init(&t);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "ok", "901", "zero", "0", "junk",
                          "90x", "huge", "99999999", "repeat", "901", "number", 902, "neg", "-901");
    size_t skipped = 0;
    char err[DC_ERR_LEN];
    assert_int_equal(region_ids_from_data(&t, o, &skipped, err), 0);
    assert_int_equal(skipped, 6);
    assert_non_null(strstr(err, "bad or repeated region ID"));
    assert_int_equal(t.n, 1);
    assert_int_equal(region_ids_lookup(&t, "ok"), 901);
    json_decref(o);

    json_t *data = region_ids_to_data(&t);
    assert_string_equal(json_string_value(json_object_get(data, "ok")), "901");
    json_decref(data);

    assert_int_equal(region_ids_from_data(&t, NULL, &skipped, err), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(skipped, 0);
    region_ids_deinit(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_handed_out_once),
        cmocka_unit_test(test_merge_authority_wins_and_clashes_move),
        cmocka_unit_test(test_data_round_trip_and_bad_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
