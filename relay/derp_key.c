#include "derp_key.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Key file: "privkey:" then the key in hex (tailscale key.NodePrivate text). */
#define KEY_FILE_PREFIX     "privkey:"
#define KEY_FILE_PREFIX_LEN 8
/* Largest key file read; derper's is about 90 bytes. */
#define KEY_FILE_MAX_LEN 4096

void derp_keypair_generate(struct derp_keypair *kp)
{
    crypto_box_keypair(kp->pub, kp->priv);
}

void derp_keypair_from_private(struct derp_keypair *kp)
{
    crypto_scalarmult_base(kp->pub, kp->priv);
}

void derp_keypair_wipe(struct derp_keypair *kp)
{
    sodium_memzero(kp->priv, sizeof(kp->priv));
}

void derp_key_hex(const uint8_t key[static DERP_KEY_LEN], char out[static DERP_KEY_HEX_LEN + 1])
{
    sodium_bin2hex(out, DERP_KEY_HEX_LEN + 1, key, DERP_KEY_LEN);
}

void derp_key_short(const uint8_t key[static DERP_KEY_LEN], char out[static DERP_KEY_SHORT_LEN])
{
    sodium_bin2hex(out, DERP_KEY_SHORT_LEN, key, 4);
}

void derp_key_short_string(const uint8_t key[static DERP_KEY_LEN],
                           char out[static DERP_KEY_SHORT_STRING_LEN])
{
    char b64[9]; /* 4 bytes encode to 8 characters */
    sodium_bin2base64(b64, sizeof(b64), key, 4, sodium_base64_VARIANT_ORIGINAL);
    out[0] = '[';
    memcpy(out + 1, b64, 5);
    out[6] = ']';
    out[7] = '\0';
}

int derp_key_parse_hex(const char *s, size_t len, uint8_t key[static DERP_KEY_LEN])
{
    if (len != DERP_KEY_HEX_LEN) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return -EINVAL;
        }
    }
    size_t got = 0;
    if (sodium_hex2bin(key, DERP_KEY_LEN, s, len, NULL, &got, NULL) != 0 || got != DERP_KEY_LEN) {
        return -EINVAL;
    }
    return 0;
}

size_t derp_box_seal(const struct derp_keypair *kp, const uint8_t peer_pub[static DERP_KEY_LEN],
                     const uint8_t *msg, size_t msg_len, uint8_t *out)
{
    randombytes_buf(out, DERP_NONCE_LEN);
    if (crypto_box_easy(out + DERP_NONCE_LEN, msg, msg_len, out, peer_pub, kp->priv) != 0) {
        return 0; /* only fails for a degenerate (all-zero shared) peer key */
    }
    return msg_len + DERP_BOX_SEAL_OVERHEAD;
}

long derp_box_open(const struct derp_keypair *kp, const uint8_t peer_pub[static DERP_KEY_LEN],
                   const uint8_t *box, size_t box_len, uint8_t *out)
{
    if (box_len < DERP_BOX_SEAL_OVERHEAD) {
        return -EPROTO;
    }
    if (crypto_box_open_easy(out, box + DERP_NONCE_LEN, box_len - DERP_NONCE_LEN, box, peer_pub,
                             kp->priv) != 0) {
        return -EPROTO;
    }
    return (long)(box_len - DERP_BOX_SEAL_OVERHEAD);
}

int derp_key_file_parse(const char *text, size_t len, struct derp_keypair *kp, char *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (root == NULL) {
        /* jansson's text may quote the token it choked on: part of the key. */
        return dc_err_set(err, -EINVAL, "key file: not valid JSON (line %d, column %d)", jerr.line,
                          jerr.column);
    }
    json_t *pk = json_is_object(root) ? json_object_get(root, "PrivateKey") : NULL;
    if (!json_is_string(pk)) {
        rc = dc_err_set(err, -EINVAL, "key file: want a string field `PrivateKey'");
        goto out;
    }
    const char *s = json_string_value(pk);
    size_t slen = json_string_length(pk);
    if (slen != KEY_FILE_PREFIX_LEN + DERP_KEY_HEX_LEN ||
        memcmp(s, KEY_FILE_PREFIX, KEY_FILE_PREFIX_LEN) != 0) {
        rc =
            dc_err_set(err, -EINVAL, "key file: PrivateKey: want `privkey:' and 64 hex characters");
        goto out;
    }
    if (derp_key_parse_hex(s + KEY_FILE_PREFIX_LEN, DERP_KEY_HEX_LEN, kp->priv) < 0) {
        rc = dc_err_set(err, -EINVAL, "key file: PrivateKey: not hex");
        goto out;
    }
    derp_keypair_from_private(kp);
out:
    json_decref(root);
    return rc;
}

static int write_new_key_file(const char *path, struct derp_keypair *kp, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return dc_err_set(err, -errno, "key file `%s': create: %s", path, strerror(errno));
    }
    derp_keypair_generate(kp);
    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(kp->priv, hex);
    char text[128];
    int n = snprintf(text, sizeof(text), "{\n\t\"PrivateKey\": \"" KEY_FILE_PREFIX "%s\"\n}", hex);
    sodium_memzero(hex, sizeof(hex));
    int rc = 0;
    if (n < 0 || (size_t)n >= sizeof(text) || write(fd, text, (size_t)n) != n || fsync(fd) != 0) {
        rc = dc_err_set(err, -EIO, "key file `%s': write failed", path);
        unlink(path);
    }
    sodium_memzero(text, sizeof(text));
    close(fd);
    return rc;
}

int derp_key_file_load_or_create(const char *path, struct derp_keypair *kp, int *created, char *err)
{
    *created = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        int rc = write_new_key_file(path, kp, err);
        if (rc == 0) {
            *created = 1;
            return 0;
        }
        if (rc != -EEXIST) {
            return rc;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC); /* lost a race: read the winner's */
    }
    if (fd < 0) {
        return dc_err_set(err, -errno, "key file `%s': open: %s", path, strerror(errno));
    }
    char buf[KEY_FILE_MAX_LEN];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0) {
        return dc_err_set(err, -EIO, "key file `%s': read failed", path);
    }
    if ((size_t)n == sizeof(buf)) {
        return dc_err_set(err, -EMSGSIZE, "key file `%s': larger than %d bytes", path,
                          KEY_FILE_MAX_LEN);
    }
    char why[DC_ERR_LEN];
    int rc = derp_key_file_parse(buf, (size_t)n, kp, why);
    sodium_memzero(buf, sizeof(buf));
    if (rc < 0) {
        return dc_err_set(err, rc, "`%s': %s", path, why);
    }
    return 0;
}

int derp_mesh_key_parse(const char *text, size_t len, uint8_t key[static DERP_MESH_KEY_LEN],
                        char *err)
{
    while (len > 0 && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
                       text[len - 1] == '\r')) {
        len--;
    }
    if (len != 2 * DERP_MESH_KEY_LEN) {
        return dc_err_set(err, -EINVAL, "mesh key: want 64 lowercase hex characters, got %zu", len);
    }
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return dc_err_set(err, -EINVAL, "mesh key: character %zu is not lowercase hex", i);
        }
    }
    size_t got = 0;
    if (sodium_hex2bin(key, DERP_MESH_KEY_LEN, text, len, NULL, &got, NULL) != 0) {
        return dc_err_set(err, -EINVAL, "mesh key: not hex");
    }
    return 0;
}
