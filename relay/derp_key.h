/* derp_key: node keys, NaCl boxes and derper's key file (libsodium only).
 *
 * A DERP node key is a Curve25519 key pair. Boxes are NaCl crypto_box
 * (Curve25519 + XSalsa20 + Poly1305) laid out as derp expects:
 * 24-byte random nonce, then crypto_box_easy output (16-byte tag + text).
 * The key file is derper's config format:
 *   {"PrivateKey": "privkey:<64 lowercase hex>"}
 * Call sodium_init() once in main before using this module. */
#ifndef DC_RELAY_DERP_KEY_H
#define DC_RELAY_DERP_KEY_H

#include "derp_proto.h"
#include "err.h"

#include <stddef.h>
#include <stdint.h>

/* Bytes a sealed box adds to its plaintext: nonce + tag. */
#define DERP_BOX_SEAL_OVERHEAD (DERP_NONCE_LEN + DERP_BOX_OVERHEAD)
/* Length of a key as hex text, without NUL. */
#define DERP_KEY_HEX_LEN (2 * DERP_KEY_LEN)
/* Short log form of a public key: 8 hex characters plus NUL. */
#define DERP_KEY_SHORT_LEN 9
/* Tailscale's short form of a key (key.NodePublic.ShortString, types/key/util.go
 * debug32): "[" + the first 5 characters of standard base64 + "]", plus NUL. */
#define DERP_KEY_SHORT_STRING_LEN 8

/* A node's key pair. Wipe with derp_keypair_wipe() when done. */
struct derp_keypair {
    uint8_t pub[DERP_KEY_LEN];
    uint8_t priv[DERP_KEY_LEN];
};

/* Makes a fresh random key pair. */
void derp_keypair_generate(struct derp_keypair *kp);
/* Derives pub from priv (which the caller has filled). */
void derp_keypair_from_private(struct derp_keypair *kp);
/* Zeroes the private key. */
void derp_keypair_wipe(struct derp_keypair *kp);

/* Writes the 64-character lowercase hex of key plus NUL into out. */
void derp_key_hex(const uint8_t key[static DERP_KEY_LEN], char out[static DERP_KEY_HEX_LEN + 1]);
/* Writes the first 8 hex characters of key plus NUL (for logs). */
void derp_key_short(const uint8_t key[static DERP_KEY_LEN], char out[static DERP_KEY_SHORT_LEN]);
/* Writes Tailscale's ShortString of key ("[AbC+d]") plus NUL, as derper logs keys. */
void derp_key_short_string(const uint8_t key[static DERP_KEY_LEN],
                           char out[static DERP_KEY_SHORT_STRING_LEN]);
/* Parses exactly 64 hex characters (s, len) into key; returns 0 or -EINVAL. */
int derp_key_parse_hex(const char *s, size_t len, uint8_t key[static DERP_KEY_LEN]) DC_MUST_CHECK;

/* Seals msg to peer_pub from kp into out (msg_len + DERP_BOX_SEAL_OVERHEAD
 * bytes) with a fresh random nonce. Returns bytes written, or 0 when peer_pub
 * is a degenerate key that libsodium refuses. */
size_t derp_box_seal(const struct derp_keypair *kp, const uint8_t peer_pub[static DERP_KEY_LEN],
                     const uint8_t *msg, size_t msg_len, uint8_t *out);
/* Opens a nonce+box from peer_pub into out (box_len - DERP_BOX_SEAL_OVERHEAD
 * bytes). Returns plaintext length, or -EPROTO when short or forged. */
long derp_box_open(const struct derp_keypair *kp, const uint8_t peer_pub[static DERP_KEY_LEN],
                   const uint8_t *box, size_t box_len, uint8_t *out) DC_MUST_CHECK;

/* Parses key-file text (derper's JSON) into kp. Returns 0 or -EINVAL with
 * err naming what is wrong (never quoting the private key). */
int derp_key_file_parse(const char *text, size_t len, struct derp_keypair *kp,
                        char *err) DC_MUST_CHECK;
/* Loads path, or creates it (mode 0600, exclusive create) with a fresh key
 * when missing; an existing file is never overwritten. *created is set when
 * a new file was written. Returns 0 or negative errno with err filled. */
int derp_key_file_load_or_create(const char *path, struct derp_keypair *kp, int *created,
                                 char *err) DC_MUST_CHECK;

/* Parses a mesh key: 64 lowercase hex characters, surrounding whitespace
 * ignored. Returns 0 or -EINVAL with err filled (the key is not quoted). */
int derp_mesh_key_parse(const char *text, size_t len, uint8_t key[static DERP_MESH_KEY_LEN],
                        char *err) DC_MUST_CHECK;

#endif
