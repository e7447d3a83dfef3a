/* test_derp_key: node keys, NaCl boxes, derper's key file and the mesh key
 * (relay/derp_key.c). The key file format is derper's: json.MarshalIndent of
 * {PrivateKey key.NodePrivate} with a tab indent, written 0600. */
#include "derp_key.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* RFC 7748 section 6.1: Alice's X25519 private and public key. */
#define RFC7748_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define RFC7748_PUB  "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"

#define MESH_HEX "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef"

/* A scratch directory per test, removed with its files afterwards. */
struct tmpdir {
    char path[64];
};

static int tmpdir_setup(void **state)
{
    struct tmpdir *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return -1;
    }
    memcpy(t->path, "/tmp/test_derp_key.XXXXXX", sizeof("/tmp/test_derp_key.XXXXXX"));
    if (mkdtemp(t->path) == NULL) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static void join(char *out, size_t out_len, const char *dir, const char *name)
{
    int n = snprintf(out, out_len, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < out_len);
}

static int tmpdir_teardown(void **state)
{
    struct tmpdir *t = *state;
    static const char *const names[] = {"derper.key", "garbage.key", "derper-written.key",
                                        "big.key", "leak.key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char p[128];
        join(p, sizeof(p), t->path, names[i]);
        unlink(p);
    }
    rmdir(t->path);
    free(t);
    return 0;
}

static void write_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Reads a small file into out (NUL-terminated); returns its length. */
static size_t read_file(const char *path, char *out, size_t out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t n = read(fd, out, out_len - 1);
    assert_true(n >= 0);
    close(fd);
    out[n] = '\0';
    return (size_t)n;
}

/* Asserts that no 8-character run of hex appears in text (so err never
 * carries a usable piece of a key). */
static void assert_no_key_text(const char *text, const char *hex)
{
    size_t hl = strlen(hex);
    for (size_t i = 0; i + 8 <= hl; i++) {
        char piece[9];
        memcpy(piece, hex + i, 8);
        piece[8] = '\0';
        if (strstr(text, piece) != NULL) {
            fail_msg("error text `%s' contains key text `%s'", text, piece);
        }
    }
}

/* ---- keys and hex ---- */

static void test_derp_key_hex_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 16; i++) {
        uint8_t key[DERP_KEY_LEN], back[DERP_KEY_LEN];
        randombytes_buf(key, sizeof(key));
        char hex[DERP_KEY_HEX_LEN + 1];
        derp_key_hex(key, hex);
        assert_int_equal(strlen(hex), DERP_KEY_HEX_LEN);
        for (size_t j = 0; j < DERP_KEY_HEX_LEN; j++) {
            assert_true((hex[j] >= '0' && hex[j] <= '9') || (hex[j] >= 'a' && hex[j] <= 'f'));
        }
        assert_int_equal(derp_key_parse_hex(hex, DERP_KEY_HEX_LEN, back), 0);
        assert_memory_equal(key, back, DERP_KEY_LEN);
        char shortk[DERP_KEY_SHORT_LEN];
        derp_key_short(key, shortk);
        assert_int_equal(strlen(shortk), 8);
        assert_memory_equal(shortk, hex, 8);
    }
    uint8_t key[DERP_KEY_LEN];
    assert_int_equal(derp_key_parse_hex(MESH_HEX, 63, key), -EINVAL);
    assert_int_equal(derp_key_parse_hex(MESH_HEX "0", 65, key), -EINVAL);
    assert_int_equal(derp_key_parse_hex("", 0, key), -EINVAL);
    char bad[] = MESH_HEX;
    bad[40] = 'g';
    assert_int_equal(derp_key_parse_hex(bad, DERP_KEY_HEX_LEN, key), -EINVAL);
    bad[40] = ' ';
    assert_int_equal(derp_key_parse_hex(bad, DERP_KEY_HEX_LEN, key), -EINVAL);
    bad[40] = ':';
    assert_int_equal(derp_key_parse_hex(bad, DERP_KEY_HEX_LEN, key), -EINVAL);
}

static void test_derp_key_from_private_rfc7748(void **state)
{
    (void)state;
    struct derp_keypair kp;
    uint8_t want[DERP_KEY_LEN];
    assert_int_equal(derp_key_parse_hex(RFC7748_PRIV, DERP_KEY_HEX_LEN, kp.priv), 0);
    assert_int_equal(derp_key_parse_hex(RFC7748_PUB, DERP_KEY_HEX_LEN, want), 0);
    derp_keypair_from_private(&kp);
    assert_memory_equal(kp.pub, want, DERP_KEY_LEN);

    struct derp_keypair gen;
    derp_keypair_generate(&gen);
    struct derp_keypair again = gen;
    derp_keypair_from_private(&again);
    assert_memory_equal(again.pub, gen.pub, DERP_KEY_LEN);
    derp_keypair_wipe(&gen);
    static const uint8_t zero[DERP_KEY_LEN];
    assert_memory_equal(gen.priv, zero, DERP_KEY_LEN);
}

/* ---- boxes ---- */

static void test_derp_key_box_roundtrip(void **state)
{
    (void)state;
    struct derp_keypair a, b;
    derp_keypair_generate(&a);
    derp_keypair_generate(&b);
    static const char msg[] = "{\"version\":2,\"CanAckPings\":true}";
    uint8_t box[sizeof(msg) + DERP_BOX_SEAL_OVERHEAD];
    size_t n = derp_box_seal(&a, b.pub, (const uint8_t *)msg, sizeof(msg), box);
    assert_int_equal(n, sizeof(msg) + DERP_BOX_SEAL_OVERHEAD);
    assert_int_equal(DERP_BOX_SEAL_OVERHEAD, 40);

    uint8_t out[sizeof(msg)];
    assert_int_equal(derp_box_open(&b, a.pub, box, n, out), sizeof(msg));
    assert_memory_equal(out, msg, sizeof(msg));

    /* A fresh nonce each time: two boxes of one message differ. */
    uint8_t box2[sizeof(box)];
    assert_int_equal(derp_box_seal(&a, b.pub, (const uint8_t *)msg, sizeof(msg), box2), n);
    assert_memory_not_equal(box, box2, DERP_NONCE_LEN);

    /* The empty message: a box of exactly the overhead. */
    uint8_t ebox[DERP_BOX_SEAL_OVERHEAD];
    assert_int_equal(derp_box_seal(&b, a.pub, NULL, 0, ebox), DERP_BOX_SEAL_OVERHEAD);
    assert_int_equal(derp_box_open(&a, b.pub, ebox, sizeof(ebox), out), 0);

    /* Interop with plain libsodium: nonce first, then crypto_box_easy. */
    uint8_t plain[sizeof(msg)];
    assert_int_equal(
        crypto_box_open_easy(plain, box + DERP_NONCE_LEN, n - DERP_NONCE_LEN, box, a.pub, b.priv),
        0);
    assert_memory_equal(plain, msg, sizeof(msg));
    derp_keypair_wipe(&a);
    derp_keypair_wipe(&b);
}

static void test_derp_key_box_rejects(void **state)
{
    (void)state;
    struct derp_keypair a, b, c;
    derp_keypair_generate(&a);
    derp_keypair_generate(&b);
    derp_keypair_generate(&c);
    static const uint8_t msg[] = "ping pong";
    uint8_t box[sizeof(msg) + DERP_BOX_SEAL_OVERHEAD];
    size_t n = derp_box_seal(&a, b.pub, msg, sizeof(msg), box);
    assert_int_equal(n, sizeof(box));
    uint8_t out[sizeof(msg) + DERP_BOX_SEAL_OVERHEAD];

    /* Any flipped bit, in nonce, tag or text. */
    for (size_t i = 0; i < n; i++) {
        box[i] ^= 0x80;
        assert_int_equal(derp_box_open(&b, a.pub, box, n, out), -EPROTO);
        box[i] ^= 0x80;
    }
    /* Wrong receiver, wrong claimed sender. */
    assert_int_equal(derp_box_open(&c, a.pub, box, n, out), -EPROTO);
    assert_int_equal(derp_box_open(&b, c.pub, box, n, out), -EPROTO);
    /* Truncated: shorter than nonce + tag, or a byte of text missing. */
    for (size_t len = 0; len < DERP_BOX_SEAL_OVERHEAD; len++) {
        assert_int_equal(derp_box_open(&b, a.pub, box, len, out), -EPROTO);
    }
    assert_int_equal(derp_box_open(&b, a.pub, box, n - 1, out), -EPROTO);
    /* Still fine untouched. */
    assert_int_equal(derp_box_open(&b, a.pub, box, n, out), sizeof(msg));

    /* A degenerate (all-zero) peer key is refused when sealing. */
    static const uint8_t zero[DERP_KEY_LEN];
    assert_int_equal(derp_box_seal(&a, zero, msg, sizeof(msg), box), 0);
    derp_keypair_wipe(&a);
    derp_keypair_wipe(&b);
    derp_keypair_wipe(&c);
}

/* ---- key file ---- */

static void test_derp_key_file_create_and_load(void **state)
{
    struct tmpdir *t = *state;
    char path[128];
    join(path, sizeof(path), t->path, "derper.key");
    mode_t old = umask(022);

    struct derp_keypair kp;
    int created = -1;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_key_file_load_or_create(path, &kp, &created, err), 0);
    assert_int_equal(created, 1);
    umask(old);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);

    /* Exactly derper's bytes: MarshalIndent with a tab, no trailing newline. */
    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(kp.priv, hex);
    char want[128];
    int wn = snprintf(want, sizeof(want), "{\n\t\"PrivateKey\": \"privkey:%s\"\n}", hex);
    assert_true(wn > 0 && (size_t)wn < sizeof(want));
    char text[256];
    assert_int_equal(read_file(path, text, sizeof(text)), (size_t)wn);
    assert_string_equal(text, want);

    /* The public half matches the private one. */
    struct derp_keypair check = kp;
    derp_keypair_from_private(&check);
    assert_memory_equal(check.pub, kp.pub, DERP_KEY_LEN);

    /* Loading again yields the same key and does not create. */
    struct derp_keypair again;
    created = -1;
    assert_int_equal(derp_key_file_load_or_create(path, &again, &created, err), 0);
    assert_int_equal(created, 0);
    assert_memory_equal(again.priv, kp.priv, DERP_KEY_LEN);
    assert_memory_equal(again.pub, kp.pub, DERP_KEY_LEN);
    derp_keypair_wipe(&kp);
    derp_keypair_wipe(&again);
    derp_keypair_wipe(&check);
}

static void test_derp_key_file_never_overwritten(void **state)
{
    struct tmpdir *t = *state;
    char path[128];
    join(path, sizeof(path), t->path, "derper.key");
    struct derp_keypair kp;
    int created = 0;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_key_file_load_or_create(path, &kp, &created, err), 0);
    assert_int_equal(created, 1);
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    char text_before[256];
    read_file(path, text_before, sizeof(text_before));

    for (int i = 0; i < 3; i++) {
        struct derp_keypair again;
        assert_int_equal(derp_key_file_load_or_create(path, &again, &created, err), 0);
        assert_int_equal(created, 0);
        assert_memory_equal(again.priv, kp.priv, DERP_KEY_LEN);
        derp_keypair_wipe(&again);
    }
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    char text_after[256];
    read_file(path, text_after, sizeof(text_after));
    assert_string_equal(text_after, text_before);

    /* A broken existing file is an error, and it stays as it was. */
    char gpath[128];
    join(gpath, sizeof(gpath), t->path, "garbage.key");
    static const char junk[] = "not a key file\n";
    write_file(gpath, junk, strlen(junk));
    assert_int_equal(derp_key_file_load_or_create(gpath, &kp, &created, err), -EINVAL);
    assert_int_equal(created, 0);
    read_file(gpath, text_after, sizeof(text_after));
    assert_string_equal(text_after, junk);
    derp_keypair_wipe(&kp);
}

static void test_derp_key_file_garbage(void **state)
{
    struct tmpdir *t = *state;
    char path[128];
    join(path, sizeof(path), t->path, "garbage.key");
    /* Each holds (part of) a real-looking key; none may show up in err. */
    static const char *const texts[] = {
        "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "\"\n",     /* truncated */
        "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "\"\n},\n", /* trailing junk */
        "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "0\"\n}",   /* 65 hex */
        "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "\"",
        "{\n\t\"PrivateKey\": \"nodekey:" RFC7748_PRIV "\"\n}", /* wrong prefix */
        "{\n\t\"PrivateKey\": \"" RFC7748_PRIV "\"\n}",         /* no prefix */
        "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV
        "\",\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "\"\n}", /* duplicate */
        "{\n\t\"privatekey\": \"privkey:" RFC7748_PRIV "\"\n}",
        "[\"privkey:" RFC7748_PRIV "\"]",
        ("privkey:" RFC7748_PRIV),
        "",
        "\x01\x02{",
    };
    char hexg[] = RFC7748_PRIV;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        write_file(path, texts[i], strlen(texts[i]));
        struct derp_keypair kp;
        int created = -1;
        char err[DC_ERR_LEN] = "";
        int rc = derp_key_file_load_or_create(path, &kp, &created, err);
        assert_int_equal(rc, -EINVAL);
        assert_int_equal(created, 0);
        assert_non_null(strstr(err, path));
        assert_no_key_text(err, RFC7748_PRIV);

        /* The parser alone says the same without the path. */
        char perr[DC_ERR_LEN] = "";
        assert_int_equal(derp_key_file_parse(texts[i], strlen(texts[i]), &kp, perr), -EINVAL);
        assert_true(perr[0] != '\0');
        assert_no_key_text(perr, RFC7748_PRIV);
        assert_int_equal(derp_key_file_parse(texts[i], strlen(texts[i]), &kp, NULL), -EINVAL);
    }
    /* A non-hex character in the key. */
    hexg[20] = 'x';
    char text[128];
    int n = snprintf(text, sizeof(text), "{\"PrivateKey\": \"privkey:%s\"}", hexg);
    struct derp_keypair kp;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_key_file_parse(text, (size_t)n, &kp, err), -EINVAL);
    assert_no_key_text(err, hexg);
}

/* When the text is not JSON, jansson's message quotes the token it stopped
 * at, which inside a key file is part of the key: err must not pass it on. */
static void test_derp_key_file_not_json_quotes_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len;
    } cases[] = {
#define CASE(s) {s, sizeof(s) - 1}
        CASE("{\"PrivateKey\":\"privkey:0123456789a\x01"),
        CASE("{\"PrivateKey\":\"0123456789abcdef\x01"),
        CASE("{\"PrivateKey\":\"privkey:0123456789a\x01\"}"),
        CASE("{\"PrivateKey\":\"privkey:0123456789abcdef\n\"}"),
        CASE("{\"PrivateKey\":\"privkey:0123456789\\q\"}"),
        CASE("{\"PrivateKey\":\"privkey:0123456789\xff\"}"),
        CASE("{\"PrivateKey\":\"privkey:0123456789abcdef\\u12\"}"),
        CASE("{\"PrivateKey\":privkey:0123456789abcdef}"),
        CASE("{\"PrivateKey\":0123456789abcdef}"),
        CASE("{\"PrivateKey\":\"privkey:00\"} 0123456789abcdef"),
        CASE("{\"privkey:0123456789abcdef\"}"),
        CASE("0123456789abcdef"),
        CASE("\"privkey:0123456789abcdef"),
        CASE("{\"PrivateKey\":\"privkey:0123456789\0abcdef\"}"),
#undef CASE
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct derp_keypair kp;
        char err[DC_ERR_LEN] = "";
        int rc = derp_key_file_parse(cases[i].text, cases[i].len, &kp, err);
        if (rc != -EINVAL) {
            fail_msg("case %zu: want -EINVAL, got %d", i, rc);
        }
        assert_true(err[0] != '\0');
        assert_int_equal(strncmp(err, "key file:", 9), 0);
        if (strstr(err, "0123456789") != NULL) {
            fail_msg("case %zu: error text `%s' quotes the key", i, err);
        }
        /* Not even a few hex digits of it. */
        assert_no_key_text(err, "0123456789abcdef");
        assert_int_equal(derp_key_file_parse(cases[i].text, cases[i].len, &kp, NULL), -EINVAL);
    }
}

static void test_derp_key_file_derper_written(void **state)
{
    struct tmpdir *t = *state;
    char path[128];
    join(path, sizeof(path), t->path, "derper-written.key");
    /* By hand, as derper's writeNewConfig would. */
    static const char text[] = "{\n\t\"PrivateKey\": \"privkey:" RFC7748_PRIV "\"\n}";
    write_file(path, text, strlen(text));
    struct stat before;
    assert_int_equal(stat(path, &before), 0);

    struct derp_keypair kp;
    int created = -1;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_key_file_load_or_create(path, &kp, &created, err), 0);
    assert_int_equal(created, 0);
    uint8_t priv[DERP_KEY_LEN], pub[DERP_KEY_LEN];
    assert_int_equal(derp_key_parse_hex(RFC7748_PRIV, DERP_KEY_HEX_LEN, priv), 0);
    assert_int_equal(derp_key_parse_hex(RFC7748_PUB, DERP_KEY_HEX_LEN, pub), 0);
    assert_memory_equal(kp.priv, priv, DERP_KEY_LEN);
    assert_memory_equal(kp.pub, pub, DERP_KEY_LEN);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

    /* Other spacing, a trailing newline and extra fields parse the same. */
    static const char *const variants[] = {
        "{\"PrivateKey\":\"privkey:" RFC7748_PRIV "\"}",
        "{\n  \"PrivateKey\": \"privkey:" RFC7748_PRIV "\"\n}\n",
        "{\"Other\": 1, \"PrivateKey\": \"privkey:" RFC7748_PRIV "\"}",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        struct derp_keypair v;
        assert_int_equal(derp_key_file_parse(variants[i], strlen(variants[i]), &v, err), 0);
        assert_memory_equal(v.pub, pub, DERP_KEY_LEN);
        derp_keypair_wipe(&v);
    }
    derp_keypair_wipe(&kp);
}

static void test_derp_key_file_errors(void **state)
{
    struct tmpdir *t = *state;
    struct derp_keypair kp;
    int created = -1;
    char err[DC_ERR_LEN] = "";
    /* A directory that does not exist: the create fails and says where. */
    char path[128];
    join(path, sizeof(path), t->path, "missing/derper.key");
    int rc = derp_key_file_load_or_create(path, &kp, &created, err);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(created, 0);
    assert_non_null(strstr(err, path));

    /* Bigger than any key file. */
    join(path, sizeof(path), t->path, "big.key");
    char *big = malloc(8192);
    assert_non_null(big);
    memset(big, ' ', 8192);
    write_file(path, big, 8192);
    free(big);
    rc = derp_key_file_load_or_create(path, &kp, &created, err);
    assert_true(rc < 0);
    assert_int_equal(created, 0);
    assert_non_null(strstr(err, path));
}

/* ---- mesh key ---- */

static void test_derp_key_mesh_key_parse(void **state)
{
    (void)state;
    uint8_t want[DERP_MESH_KEY_LEN], key[DERP_MESH_KEY_LEN];
    assert_int_equal(derp_key_parse_hex(MESH_HEX, DERP_KEY_HEX_LEN, want), 0);
    char err[DC_ERR_LEN] = "";
    static const char *const ok[] = {
        MESH_HEX,
        MESH_HEX "\n",
        "  " MESH_HEX " \t\r\n",
        ("\n\n" MESH_HEX),
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memset(key, 0, sizeof(key));
        assert_int_equal(derp_mesh_key_parse(ok[i], strlen(ok[i]), key, err), 0);
        assert_memory_equal(key, want, DERP_MESH_KEY_LEN);
    }
    /* Only len bytes are read: a longer string cut at 64 is fine. */
    assert_int_equal(derp_mesh_key_parse(MESH_HEX "ff", DERP_KEY_HEX_LEN, key, err), 0);

    static const char *const bad[] = {
        "00112233445566778899AABBCCDDEEFF0123456789ABCDEF0123456789ABCDEF", /* uppercase */
        "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcdeF",
        "00112233445566778899aabbccddeeff0123456789abcdef0123456789abcde", /* 63 */
        MESH_HEX "0",                                                      /* 65 */
        "00112233445566778899aabbccddeeff 0123456789abcdef0123456789abcdef",
        "0x112233445566778899aabbccddeeff0123456789abcdef0123456789abcdef",
        "",
        "   \n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(derp_mesh_key_parse(bad[i], strlen(bad[i]), key, err), -EINVAL);
        assert_true(err[0] != '\0');
        assert_no_key_text(err, bad[i]);
        assert_int_equal(derp_mesh_key_parse(bad[i], strlen(bad[i]), key, NULL), -EINVAL);
    }
}

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derp_key_hex_roundtrip),
        cmocka_unit_test(test_derp_key_from_private_rfc7748),
        cmocka_unit_test(test_derp_key_box_roundtrip),
        cmocka_unit_test(test_derp_key_box_rejects),
        cmocka_unit_test_setup_teardown(test_derp_key_file_create_and_load, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_derp_key_file_never_overwritten, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_derp_key_file_garbage, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_derp_key_file_derper_written, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_derp_key_file_errors, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test(test_derp_key_file_not_json_quotes_nothing),
        cmocka_unit_test(test_derp_key_mesh_key_parse),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
