/* derp_policy: the data of client admission (pure): the allowed-keys file,
 * a set of node keys, and the JSON of derper's --verify-client-url.
 *
 * Allowed-keys file: one node public key per line as Tailscale writes it
 * (key.NodePublic text, "nodekey:" + 64 hex digits), surrounding blanks
 * ignored; blank lines and lines starting with '#' are skipped, and so is
 * anything from a '#' after the key. A bad line is reported (line number and
 * why) through a callback and skipped: the rest of the file still counts.
 *
 * Admission controller (derper --verify-client-url; tailcfg/derpmap.go
 * DERPAdmitClientRequest / DERPAdmitClientResponse): the server POSTs
 *   {"NodePublic":"nodekey:<64 hex>","Source":"<client IP>"}
 * (Source is netip.Addr text: IPv4 dotted, IPv6 without brackets or port)
 * and reads {"Allow":true|false} from at most DERP_ADMIT_MAX_BODY_LEN bytes
 * of the answer. Field names match case-insensitively, as Go's
 * encoding/json does; a missing or null Allow means false.
 *
 * No I/O, no logging, no clock. */
#ifndef DC_RELAY_DERP_POLICY_H
#define DC_RELAY_DERP_POLICY_H

#include "derp_proto.h"
#include "err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Text prefix of a node public key (tailscale types/key/node.go
 * nodePublicHexPrefix). */
#define DERP_NODEKEY_PREFIX     "nodekey:"
#define DERP_NODEKEY_PREFIX_LEN 8
/* Largest allowed-keys file read (bytes): about 170000 keys. */
#define DERP_ALLOWED_KEYS_MAX_LEN (16u << 20)
/* Bytes of the admission controller's answer that are read (derper:
 * io.LimitReader(res.Body, 4<<10)). */
#define DERP_ADMIT_MAX_BODY_LEN 4096
/* Longest admission request JSON: both fields at their longest. */
#define DERP_ADMIT_REQUEST_MAX 192

/* A set of node public keys: sorted, no duplicates. All-zero = empty. */
struct derp_keyset {
    uint8_t (*keys)[DERP_KEY_LEN]; /* owned, sorted by memcmp */
    size_t n;                      /* keys in the set */
};

/* Told about each bad line of an allowed-keys file: its 1-based number and
 * a sentence saying why (valid for the call). */
typedef void (*derp_keyset_bad_line_cb)(void *data, unsigned line, const char *why);

/* Parses allowed-keys text into *out (replacing nothing: out must be empty).
 * Bad lines go to bad_line (may be NULL) and are skipped. Returns 0, or
 * -ENOMEM (out left empty). */
int derp_keyset_parse(const char *text, size_t len, struct derp_keyset *out,
                      derp_keyset_bad_line_cb bad_line, void *data) DC_MUST_CHECK;
/* True when key is in s. */
bool derp_keyset_has(const struct derp_keyset *s, const uint8_t key[static DERP_KEY_LEN]);
/* Frees the keys; s becomes empty. Accepts an all-zero set. */
void derp_keyset_deinit(struct derp_keyset *s);

/* Formats the admission request for key from ip16 (IPv4 as ::ffff:a.b.c.d,
 * written as IPv4) into out. Returns the length or -EMSGSIZE. */
int derp_admit_request_format(const uint8_t key[static DERP_KEY_LEN], const uint8_t ip16[static 16],
                              char *out, size_t out_len) DC_MUST_CHECK;
/* Parses the admission controller's answer body (the first JSON value in
 * it). Returns 0 with *allow set, or -EINVAL with err saying why (not JSON,
 * not an object, Allow not a boolean). */
int derp_admit_response_parse(const char *body, size_t len, bool *allow, char *err) DC_MUST_CHECK;

#endif
