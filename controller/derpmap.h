/* derpmap: builds the Tailscale DERP map (tailcfg.DERPMap JSON) and its ETag.
 *
 * Pure: no I/O, no logging, no clock. The JSON is written the way Go's
 * encoding/json writes tailcfg.DERPMap: struct fields in declaration order,
 * omitempty fields left out at their zero value, strings escaped as Go escapes
 * them (<, >, & and U+2028/U+2029 as \u sequences), so Tailscale's own types
 * decode it with unknown fields rejected. Regions are written in ascending
 * RegionID order, the central region (900) first.
 *
 * Field facts (tailscale tailcfg/derpmap.go): DERPRegion{RegionID, RegionCode,
 * RegionName, Latitude?, Longitude?, Avoid?, NoMeasureNoHome?, Nodes};
 * DERPNode{Name, RegionID, HostName, CertName?, IPv4?, IPv6?, STUNPort?,
 * STUNOnly?, DERPPort?, InsecureForTests?, STUNTestIP?, CanPort80?} (? =
 * omitempty). DERPPort 0 means 443 and STUNPort 0 means 3478; STUNPort -1
 * disables STUN. */
#ifndef DC_CONTROLLER_DERPMAP_H
#define DC_CONTROLLER_DERPMAP_H

#include "buf.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The central region's fixed ID and code. */
#define DERPMAP_CENTRAL_ID   900
#define DERPMAP_CENTRAL_CODE "central"
#define DERPMAP_CENTRAL_NAME "Central"
/* Cluster regions get IDs from here up. */
#define DERPMAP_FIRST_CLUSTER_ID 901
/* An ETag: a quoted 32-hex-digit digest of the JSON, plus NUL. */
#define DERPMAP_ETAG_LEN 35
/* Largest map this module writes (10 000 regions fit in about 3 MiB). */
#define DERPMAP_MAX_JSON (32u << 20)

/* One region with its one node. Strings are borrowed for the call. */
struct derpmap_region {
    uint32_t id;             /* RegionID; node is named "<id>a" */
    const char *code;        /* RegionCode: the Cluster's name (or "central") */
    const char *name;        /* RegionName: displayName, else the code */
    const char *host;        /* HostName: DNS name or IP literal, no brackets or port */
    bool is_ipv4;            /* host is an IPv4 literal: also written as IPv4 */
    bool is_ipv6;            /* host is an IPv6 literal: also written as IPv6 */
    uint16_t derp_port;      /* 0 or 443: not written */
    int stun_port;           /* 0: not written (3478); -1: STUN off */
    bool insecure_for_tests; /* InsecureForTests */
    const char *cert_name;   /* CertName ("sha256-raw:<hex>") or NULL */
};

/* Writes the map JSON for regions[0..n) (sorted by id by the caller) into out
 * (reset first). Returns 0, or -EMSGSIZE / -ENOMEM. */
int derpmap_format(const struct derpmap_region *regions, size_t n,
                   struct dc_buf *out) DC_MUST_CHECK;

/* Writes the strong ETag of json (a quoted digest) into out. */
void derpmap_etag(const uint8_t *json, size_t len, char out[static DERPMAP_ETAG_LEN]);

/* Appends s as a JSON string the way Go's encoding/json does (HTML-safe). */
int derpmap_json_string(struct dc_buf *out, const char *s) DC_MUST_CHECK;

#endif
