/* fuzz_key_file: the two key-text parsers of relay/derp_key.c on arbitrary
 * bytes: derp_key_file_parse() (derper's JSON key file) and
 * derp_mesh_key_parse() (the mesh key file or flag).
 *
 * Checks: the same answer with and without err; a failure fills err with a
 * NUL-terminated sentence; an accepted key file yields a public key that
 * matches its private key, and derper's own text for that key parses to the
 * same pair; an accepted mesh key is the input's 64 lowercase hex characters
 * and its hex parses back to the same key. Nothing is allocated outside the
 * calls. */
#include "derp_key.h"

#include <errno.h>
#include <sodium.h>
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

static void check_key_file(const char *text, size_t len)
{
    struct derp_keypair kp, quiet, back;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = derp_key_file_parse(text, len, &kp, err);
    check(rc == 0 || rc == -EINVAL);
    check(derp_key_file_parse(text, len, &quiet, NULL) == rc);
    if (rc != 0) {
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    uint8_t pub[DERP_KEY_LEN];
    check(crypto_scalarmult_base(pub, kp.priv) == 0);
    check(memcmp(pub, kp.pub, DERP_KEY_LEN) == 0);

    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(kp.priv, hex);
    char derper[128];
    int n = snprintf(derper, sizeof(derper), "{\n\t\"PrivateKey\": \"privkey:%s\"\n}", hex);
    check(n > 0 && (size_t)n < sizeof(derper));
    check(derp_key_file_parse(derper, (size_t)n, &back, err) == 0);
    check(memcmp(back.priv, kp.priv, DERP_KEY_LEN) == 0);
    check(memcmp(back.pub, kp.pub, DERP_KEY_LEN) == 0);
    derp_keypair_wipe(&kp);
    derp_keypair_wipe(&quiet);
    derp_keypair_wipe(&back);
}

static void check_mesh_key(const char *text, size_t len)
{
    uint8_t key[DERP_MESH_KEY_LEN], quiet[DERP_MESH_KEY_LEN], back[DERP_MESH_KEY_LEN];
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = derp_mesh_key_parse(text, len, key, err);
    check(rc == 0 || rc == -EINVAL);
    check(derp_mesh_key_parse(text, len, quiet, NULL) == rc);
    if (rc != 0) {
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    check(memcmp(key, quiet, sizeof(key)) == 0);
    /* The key's lowercase hex is in the input, surrounded only by whitespace. */
    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(key, hex);
    check(len >= DERP_KEY_HEX_LEN);
    size_t start = 0;
    while (start < len && strchr(" \t\r\n", text[start]) != NULL && text[start] != '\0') {
        start++;
    }
    check(len - start >= DERP_KEY_HEX_LEN);
    check(memcmp(text + start, hex, DERP_KEY_HEX_LEN) == 0);
    for (size_t i = start + DERP_KEY_HEX_LEN; i < len; i++) {
        check(text[i] != '\0' && strchr(" \t\r\n", text[i]) != NULL);
    }
    check(derp_mesh_key_parse(hex, DERP_KEY_HEX_LEN, back, NULL) == 0);
    check(memcmp(key, back, sizeof(key)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sodium_init() < 0) {
        abort();
    }
    check_key_file((const char *)data, size);
    check_mesh_key((const char *)data, size);
    return 0;
}
