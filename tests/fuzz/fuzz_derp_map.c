/* fuzz_derp_map: derp_map_parse() (relay/derp_map.c) on arbitrary bytes, the
 * DERP map JSON that derp-probe --map and the prober read from outside.
 *
 * Checks: only the documented codes; the same answer with and without err; a
 * failure fills err with a sentence starting "derp-map:" and leaves the map
 * empty; an accepted map has nodes sorted by region ID with every number in
 * range, and writing it back as JSON (every field, as Go names them) parses
 * to the same nodes. Everything is freed, so leaks show. */
#include "derp_map.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static json_t *node_json(const struct derp_map_node *n)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:b, s:I, s:b, s:s}", "Name", n->name,
                     "RegionID", (json_int_t)n->region_id, "HostName", n->host_name, "CertName",
                     n->cert_name, "IPv4", n->ipv4, "IPv6", n->ipv6, "STUNPort",
                     (json_int_t)n->stun_port, "STUNOnly", n->is_stun_only, "DERPPort",
                     (json_int_t)n->derp_port, "InsecureForTests", n->is_insecure_for_tests,
                     "STUNTestIP", n->stun_test_ip);
}

/* Writes m's nodes back as a map document; the caller frees the text. */
static char *map_json(const struct derp_map *m)
{
    json_t *regions = json_object();
    for (size_t i = 0; i < m->num_nodes; i++) {
        const struct derp_map_node *n = &m->nodes[i];
        char key[16];
        snprintf(key, sizeof(key), "%u", n->region_id);
        json_t *r = json_object_get(regions, key);
        if (r == NULL) {
            r = json_pack("{s:I, s:s, s:s, s:[]}", "RegionID", (json_int_t)n->region_id,
                          "RegionCode", n->region_code, "RegionName", n->region_name, "Nodes");
            check(r != NULL && json_object_set_new(regions, key, r) == 0);
        }
        check(json_array_append_new(json_object_get(r, "Nodes"), node_json(n)) == 0);
    }
    json_t *root = json_pack("{s:o}", "Regions", regions);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    check(text != NULL);
    return text;
}

static bool same_node(const struct derp_map_node *a, const struct derp_map_node *b)
{
    return a->region_id == b->region_id && strcmp(a->region_code, b->region_code) == 0 &&
           strcmp(a->region_name, b->region_name) == 0 && strcmp(a->name, b->name) == 0 &&
           strcmp(a->host_name, b->host_name) == 0 && strcmp(a->cert_name, b->cert_name) == 0 &&
           strcmp(a->ipv4, b->ipv4) == 0 && strcmp(a->ipv6, b->ipv6) == 0 &&
           strcmp(a->stun_test_ip, b->stun_test_ip) == 0 && a->derp_port == b->derp_port &&
           a->stun_port == b->stun_port && a->is_stun_only == b->is_stun_only &&
           a->is_insecure_for_tests == b->is_insecure_for_tests;
}

static void check_accepted(const struct derp_map *m)
{
    check(m->num_nodes <= DERP_MAP_MAX_NODES && m->num_regions <= DERP_MAP_MAX_REGIONS);
    for (size_t i = 0; i < m->num_nodes; i++) {
        const struct derp_map_node *n = &m->nodes[i];
        check(i == 0 || m->nodes[i - 1].region_id <= n->region_id);
        check(n->derp_port >= 0 && n->derp_port <= 65535);
        check(n->stun_port >= -1 && n->stun_port <= 65535);
        check(memchr(n->host_name, '\0', sizeof(n->host_name)) != NULL);
        check(memchr(n->stun_test_ip, '\0', sizeof(n->stun_test_ip)) != NULL);
    }
    char *text = map_json(m);
    struct derp_map back;
    char err[DC_ERR_LEN];
    check(derp_map_parse(text, strlen(text), &back, err) == 0);
    check(back.num_nodes == m->num_nodes);
    for (size_t i = 0; i < m->num_nodes; i++) {
        check(same_node(&m->nodes[i], &back.nodes[i]));
    }
    derp_map_deinit(&back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct derp_map m, quiet;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = derp_map_parse((const char *)data, size, &m, err);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE || rc == -ENOMEM);
    check(derp_map_parse((const char *)data, size, &quiet, NULL) == rc);
    derp_map_deinit(&quiet);
    if (rc != 0) {
        check(memchr(err, '\0', sizeof(err)) != NULL && strncmp(err, "derp-map:", 9) == 0);
        check(m.nodes == NULL && m.num_nodes == 0 && m.num_regions == 0);
        return 0;
    }
    check_accepted(&m);
    derp_map_deinit(&m);
    return 0;
}
