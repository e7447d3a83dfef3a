/* derp_map: reads a Tailscale DERP map (tailcfg.DERPMap JSON) into a flat,
 * sorted list of nodes, each carrying its region's ID, code and name. Pure.
 *
 * The map comes from outside (a URL, a file, another controller), so nothing
 * in it is trusted: a field of the wrong type, a string or number out of
 * range, a region key that is not a decimal ID, two regions with one ID, or
 * more than DERP_MAP_MAX_REGIONS / DERP_MAP_MAX_NODES is an error sentence
 * naming the place, e.g. "derp-map: Regions[\"901\"].Nodes[0].DERPPort: want
 * an integer from 0 to 65535, got 70000". Field names match the way Go's
 * encoding/json matches them (exact, else ASCII case-insensitive); unknown
 * fields are ignored and JSON null counts as absent, as in Go. What a prober
 * must judge per node (an empty HostName, IPv4 "none") is kept as is, so one
 * odd node fails its own probe instead of the whole map.
 *
 * Field facts (tailscale tailcfg/derpmap.go): DERPMap{Regions map[int]
 * *DERPRegion keyed by decimal ID}; DERPRegion{RegionID, RegionCode,
 * RegionName, Nodes}; DERPNode{Name, RegionID, HostName, CertName, IPv4, IPv6,
 * STUNPort (0 = 3478, -1 = off), STUNOnly, DERPPort (0 = 443),
 * InsecureForTests, STUNTestIP}. The region's ID is its key.
 *
 * It does not: fetch or probe anything, log, or write maps
 * (controller/derpmap writes them). */
#ifndef DC_RELAY_DERP_MAP_H
#define DC_RELAY_DERP_MAP_H

#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest map document accepted (bytes); the controller writes at most
 * DERPMAP_MAX_JSON, the same 32 MiB. */
#define DERP_MAP_MAX_JSON_LEN (32u << 20)
/* Most regions, and most nodes over all regions, in one map. */
#define DERP_MAP_MAX_REGIONS 16384u
#define DERP_MAP_MAX_NODES   16384u
/* Name-like strings (names, codes, host and cert names): at most 255 bytes
 * (a DNS name is at most 253) plus NUL. */
#define DERP_MAP_NAME_LEN 256
/* Address strings (IPv4, IPv6, STUNTestIP): at most 63 bytes plus NUL. */
#define DERP_MAP_ADDR_LEN 64

/* One DERP node with its region. The all-zero node is an empty node. */
struct derp_map_node {
    uint32_t region_id;                   /* the region's key (= its RegionID) */
    char region_code[DERP_MAP_NAME_LEN];  /* RegionCode */
    char region_name[DERP_MAP_NAME_LEN];  /* RegionName */
    char name[DERP_MAP_NAME_LEN];         /* Name, e.g. "901a" */
    char host_name[DERP_MAP_NAME_LEN];    /* HostName: DNS name or IP literal, no brackets */
    char cert_name[DERP_MAP_NAME_LEN];    /* CertName: "" (= HostName), a name, or
                                             "sha256-raw:<hex>" (a pin) */
    char ipv4[DERP_MAP_ADDR_LEN];         /* IPv4: "" = DNS, an address, or "none" */
    char ipv6[DERP_MAP_ADDR_LEN];         /* IPv6: likewise */
    char stun_test_ip[DERP_MAP_ADDR_LEN]; /* STUNTestIP: "" = the node's own address */
    int derp_port;                        /* DERPPort 0..65535; 0 = 443 */
    int stun_port;                        /* STUNPort -1..65535; 0 = 3478, -1 = no STUN */
    bool is_stun_only;                    /* STUNOnly: no DERP server on this node */
    bool is_insecure_for_tests;           /* InsecureForTests: no TLS verification */
};

/* A parsed map: nodes ordered by region ID, then as listed in their region.
 * The all-zero struct is a valid empty map. */
struct derp_map {
    struct derp_map_node *nodes; /* owned; num_nodes entries */
    size_t num_nodes;
    size_t num_regions; /* regions in the map, with or without nodes */
};

/* Parses the JSON document json[0..len) (no NUL needed) into *out, which it
 * overwrites; free it with derp_map_deinit(). Returns 0; -EINVAL for a
 * document that is not a DERP map; -EMSGSIZE past a limit; -ENOMEM. Every
 * error also writes one sentence starting with "derp-map:" into err
 * (DC_ERR_LEN, may be NULL) and leaves *out empty. */
int derp_map_parse(const char *json, size_t len, struct derp_map *out, char *err) DC_MUST_CHECK;

/* Frees what derp_map_parse() allocated and empties m; accepts NULL and an
 * all-zero map. */
void derp_map_deinit(struct derp_map *m);

#endif
