/* test_mesh_peers: EndpointSlices to mesh URLs (controller/mesh_peers.c):
 * ready endpoints only, the named port, IPv6 brackets, sorted and
 * deduplicated, and hostile slices skipped rather than trusted. */
#include "mesh_peers.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *format(const char *store_json, const char *port_name)
{
    json_error_t e;
    json_t *store = json_loads(store_json, 0, &e);
    assert_non_null(store);
    char *out = mesh_peers_format(store, port_name);
    json_decref(store);
    assert_non_null(out);
    return out;
}

static void test_ready_endpoints_on_the_named_port(void **state)
{
    (void)state;
    char *s = format(
        "{\"ns/derp-abc\": {\"addressType\": \"IPv4\","
        "  \"ports\": [{\"name\": \"http\", \"port\": 8080}, {\"name\": \"derp\", \"port\": 3340}],"
        "  \"endpoints\": ["
        "    {\"addresses\": [\"10.0.0.9\"], \"conditions\": {\"ready\": true}},"
        "    {\"addresses\": [\"10.0.0.5\"]},"
        "    {\"addresses\": [\"10.0.0.7\"], \"conditions\": {\"ready\": false}},"
        "    {\"addresses\": []}]},"
        " \"ns/derp-v6\": {\"addressType\": \"IPv6\", \"ports\": [{\"name\": \"derp\", \"port\": "
        "3340}],"
        "  \"endpoints\": [{\"addresses\": [\"fd00::5\"]}]},"
        " \"ns/derp-dup\": {\"addressType\": \"IPv4\", \"ports\": [{\"name\": \"derp\", \"port\": "
        "3340}],"
        "  \"endpoints\": [{\"addresses\": [\"10.0.0.9\"]}]}}",
        "derp");
    assert_string_equal(s, "http://10.0.0.5:3340/derp\n"
                           "http://10.0.0.9:3340/derp\n"
                           "http://[fd00::5]:3340/derp\n");
    free(s);
}

static void test_hostile_or_unusable_slices_are_skipped(void **state)
{
    (void)state;
    char *s = format(
        "{\"a\": {\"addressType\": \"FQDN\", \"ports\": [{\"name\": \"derp\", \"port\": 3340}],"
        "  \"endpoints\": [{\"addresses\": [\"relay.example.com\"]}]},"
        " \"b\": {\"addressType\": \"IPv4\", \"ports\": [{\"name\": \"other\", \"port\": 1}],"
        "  \"endpoints\": [{\"addresses\": [\"10.0.0.1\"]}]},"
        " \"c\": {\"addressType\": \"IPv4\", \"ports\": [{\"name\": \"derp\", \"port\": 70000}],"
        "  \"endpoints\": [{\"addresses\": [\"10.0.0.2\"]}]},"
        " \"d\": {\"addressType\": \"IPv4\", \"ports\": [{\"name\": \"derp\", \"port\": 3340}],"
        "  \"endpoints\": [{\"addresses\": [\"10.0.0.3/../x\"]}, {\"addresses\": [7]}, 5,"
        "    {\"addresses\": [\"\"]}, {\"addresses\": [\"1.2.3\"]}, {\"addresses\": [\"fd00::1\"]},"
        "    {\"addresses\": [\"010.0.0.1\"]}]},"
        " \"e\": 42, \"f\": {\"ports\": \"x\", \"endpoints\": {}}}",
        "derp");
    assert_string_equal(s, "");
    free(s);
    /* No port name: a slice with exactly one port uses it. */
    s = format("{\"a\": {\"addressType\": \"IPv4\", \"ports\": [{\"port\": 80}],"
               "  \"endpoints\": [{\"addresses\": [\"10.1.1.1\"]}]}}",
               "");
    assert_string_equal(s, "http://10.1.1.1:80/derp\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_endpoints_on_the_named_port),
        cmocka_unit_test(test_hostile_or_unusable_slices_are_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
