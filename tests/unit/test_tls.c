/* test_tls: common/tls.c. Certificates are inspected with OpenSSL directly;
 * handshakes run over loopback TCP against a forked child serving one
 * connection with the server context under test. */
#include "tls.h"

#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* Generous bound for a loopback handshake; only reached on failure. */
#define HANDSHAKE_MS 5000
/* A forked server gives up after this long, so a failed test cannot hang. */
#define CHILD_ALARM_S 20
/* Exit codes of the forked server. */
#define CHILD_OK            0
#define CHILD_ACCEPT_FAILED 2
#define CHILD_TLS_FAILED    3
#define CHILD_SNI_MISMATCH  4

#define DAY_S (24L * 60 * 60)

static const char GREETING[] = "hello";

static const uint8_t SERVER_PUB[DC_TLS_META_KEY_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
};

/* ---- helpers ---- */

static void hex(char *out, const uint8_t *bin, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bin[i] >> 4];
        out[2 * i + 1] = digits[bin[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

/* Computes the expected pin independently of tls.c: SHA-256 over i2d_X509. */
static void expected_pin(X509 *x, char out[DC_TLS_PIN_LEN])
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    uint8_t md[32];
    unsigned int md_len = 0;
    assert_int_equal(EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL), 1);
    assert_int_equal(md_len, 32);
    OPENSSL_free(der);
    memcpy(out, "sha256-raw:", 11);
    hex(out + 11, md, 32);
}

/* The CN of x as a NUL-terminated copy in out. */
static void subject_cn(const X509 *x, char *out, size_t out_len)
{
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)out_len);
    assert_true(n > 0);
}

/* Seconds from now to t (negative: in the past). */
static long secs_from_now(const ASN1_TIME *t)
{
    int days = 0;
    int secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
    return days * DAY_S + secs;
}

/* A blocking listener on 127.0.0.1 with a kernel-chosen port. */
static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Child side: one TLS connection; greet, then read until the client leaves.
 * With want_sni, the SNI the client sent ("" = none) must equal it, or the
 * exit code says so. Never returns; _exit skips the parent's atexit
 * handlers (cmocka, LSan). */
static void child_serve(int lfd, SSL_CTX *ctx, const char *want_sni)
{
    alarm(CHILD_ALARM_S);
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
        _exit(CHILD_ACCEPT_FAILED);
    }
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
        _exit(CHILD_TLS_FAILED);
    }
    if (SSL_write(ssl, GREETING, (int)strlen(GREETING)) <= 0) {
        _exit(CHILD_TLS_FAILED);
    }
    char buf[64];
    while (SSL_read(ssl, buf, sizeof(buf)) > 0) {
    }
    (void)SSL_shutdown(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (want_sni != NULL && strcmp(sni != NULL ? sni : "", want_sni) != 0) {
        _exit(CHILD_SNI_MISMATCH);
    }
    _exit(CHILD_OK);
}

/* A forked server for one connection and the client's TCP socket to it. */
struct served {
    pid_t pid; /* the child */
    int fd;    /* client's connected socket */
};

/* Like serve_one, and the child checks the SNI (child_serve). */
static struct served serve_one_sni(struct dc_tls_server *s, const char *want_sni)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_serve(lfd, dc_tls_server_ctx(s), want_sni);
    }
    close(lfd);
    char err[DC_ERR_LEN] = "";
    int fd = dc_net_connect_tcp("127.0.0.1", port, HANDSHAKE_MS, err);
    if (fd < 0) {
        fail_msg("connect: %s", err);
    }
    struct served sv = {.pid = pid, .fd = fd};
    return sv;
}

static struct served serve_one(struct dc_tls_server *s)
{
    return serve_one_sni(s, NULL);
}

/* Closes the client side and returns the child's exit code. */
static int served_finish(struct served *sv)
{
    close(sv->fd);
    int status = 0;
    assert_int_equal(waitpid(sv->pid, &status, 0), sv->pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Connects to s with opts; on success checks the greeting and returns the
 * SSL, on failure returns NULL with *rc and err set. */
static SSL *connect_to(struct served *sv, const struct dc_tls_client_opts *o, int *rc, char *err)
{
    SSL *ssl = NULL;
    *rc = dc_tls_client_connect(sv->fd, o, HANDSHAKE_MS, &ssl, err);
    if (*rc < 0) {
        assert_null(ssl);
        return NULL;
    }
    assert_non_null(ssl);
    char buf[16] = "";
    assert_int_equal(SSL_read(ssl, buf, sizeof(buf) - 1), (int)strlen(GREETING));
    assert_string_equal(buf, GREETING);
    return ssl;
}

/* Makes an EC P-256 key and a certificate for it, signed by (issuer, ikey)
 * or self-signed when issuer is NULL. */
static X509 *make_cert(const char *cn, bool is_ca, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), is_ca ? 1 : 2), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0),
        1);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), DAY_S));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    const char *bc = is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints, bc);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    if (is_ca) {
        ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        char san[128];
        snprintf(san, sizeof(san), "DNS:%s", cn);
        ext = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
    }
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    assert_true(X509_sign(x, issuer != NULL ? ikey : key, EVP_sha256()) > 0);
    return x;
}

static EVP_PKEY *make_key(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    return key;
}

/* A temp dir holding the files a test writes; removed by tmp_done. */
struct tmp {
    char dir[64];
    char paths[4][128];
    int n;
};

static void tmp_init(struct tmp *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_tls.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
}

/* Opens dir/name for writing and remembers its path in *path. */
static FILE *tmp_open(struct tmp *t, const char *name, const char **path)
{
    assert_true(t->n < 4);
    char *p = t->paths[t->n++];
    char buf[sizeof(t->paths[0])];
    int n = snprintf(buf, sizeof(buf), "%s/%s", t->dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    memcpy(p, buf, (size_t)n + 1);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    *path = p;
    return f;
}

static void tmp_done(struct tmp *t)
{
    for (int i = 0; i < t->n; i++) {
        unlink(t->paths[i]);
    }
    rmdir(t->dir);
}

static const char *write_certs(struct tmp *t, const char *name, X509 *a, X509 *b)
{
    const char *path = NULL;
    FILE *f = tmp_open(t, name, &path);
    assert_int_equal(PEM_write_X509(f, a), 1);
    if (b != NULL) {
        assert_int_equal(PEM_write_X509(f, b), 1);
    }
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_key(struct tmp *t, const char *name, EVP_PKEY *key)
{
    const char *path = NULL;
    FILE *f = tmp_open(t, name, &path);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct dc_tls_server *self_signed(const char *host)
{
    struct dc_tls_server *s = NULL;
    char err[DC_ERR_LEN] = "";
    int rc = dc_tls_server_new_self_signed(host, &s, err);
    if (rc < 0) {
        fail_msg("self-signed %s: %s", host, err);
    }
    assert_non_null(s);
    return s;
}

/* ---- self-signed certificates ---- */

/* The parts both self-signed cases share. */
static void check_self_signed_common(X509 *x, const char *host)
{
    char cn[256];
    subject_cn(x, cn, sizeof(cn));
    assert_string_equal(cn, host);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);

    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[32] = "";
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(pub, group, sizeof(group), &glen), 1);
    assert_string_equal(group, "prime256v1");

    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_non_null(serial);
    assert_false(BN_is_zero(serial));
    assert_false(BN_is_negative(serial));
    assert_true(BN_num_bits(serial) <= 128);
    BN_free(serial);

    long nb = secs_from_now(X509_get0_notBefore(x));
    long na = secs_from_now(X509_get0_notAfter(x));
    assert_true(nb <= -3600 + 120 && nb >= -3600 - 120);
    assert_true(na >= 365 * DAY_S - 120 && na <= 365 * DAY_S + 120);

    uint32_t flags = X509_get_extension_flags(x);
    assert_true(flags & EXFLAG_BCONS);
    assert_false(flags & EXFLAG_CA);
    assert_true(flags & EXFLAG_KUSAGE);
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_true(flags & EXFLAG_XKUSAGE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);
}

static void test_tls_self_signed_dns(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("relay.example.com");
    X509 *x = SSL_CTX_get0_certificate(dc_tls_server_ctx(s));
    assert_non_null(x);
    check_self_signed_common(x, "relay.example.com");
    assert_int_equal(X509_check_host(x, "relay.example.com", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(x, "other.example.com", 0, 0, NULL), 1);

    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(sans);
    assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
    assert_int_equal(sk_GENERAL_NAME_value(sans, 0)->type, GEN_DNS);
    GENERAL_NAMES_free(sans);
    dc_tls_server_free(s);
}

static void test_tls_self_signed_ip(void **state)
{
    (void)state;
    static const char *const hosts[] = {"127.0.0.1", "::1", "2001:db8::7"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        struct dc_tls_server *s = self_signed(hosts[i]);
        X509 *x = SSL_CTX_get0_certificate(dc_tls_server_ctx(s));
        check_self_signed_common(x, hosts[i]);
        assert_int_equal(X509_check_ip_asc(x, hosts[i], 0), 1);
        GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        assert_non_null(sans);
        assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
        assert_int_equal(sk_GENERAL_NAME_value(sans, 0)->type, GEN_IPADD);
        GENERAL_NAMES_free(sans);
        dc_tls_server_free(s);
    }
}

static void test_tls_self_signed_bad_hostname(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "two words", "a,b", "-x.example", "x/y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dc_tls_server *s = NULL;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(dc_tls_server_new_self_signed(bad[i], &s, err), -EINVAL);
        assert_null(s);
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "`%s'", bad[i]);
        assert_non_null(strstr(err, quoted));
    }
    dc_tls_server_free(NULL);
}

/* ---- pins ---- */

static void test_tls_pin_format(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("relay.example.com");
    char pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);
    assert_int_equal(strlen(pin), DC_TLS_PIN_LEN - 1);
    assert_memory_equal(pin, "sha256-raw:", 11);
    for (size_t i = 11; i < DC_TLS_PIN_LEN - 1; i++) {
        assert_true((pin[i] >= '0' && pin[i] <= '9') || (pin[i] >= 'a' && pin[i] <= 'f'));
    }
    X509 *leaf = SSL_CTX_get0_certificate(dc_tls_server_ctx(s));
    char want[DC_TLS_PIN_LEN];
    expected_pin(leaf, want);
    assert_string_equal(pin, want);
    char via_x509[DC_TLS_PIN_LEN];
    assert_int_equal(dc_tls_pin_from_x509(leaf, via_x509), 0);
    assert_string_equal(via_x509, want);

    /* Two fresh certificates never share a pin. */
    struct dc_tls_server *s2 = self_signed("relay.example.com");
    char pin2[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s2, pin2);
    assert_string_not_equal(pin, pin2);
    dc_tls_server_free(s2);
    dc_tls_server_free(s);
}

static void test_tls_pin_from_der(void **state)
{
    (void)state;
    char pin[DC_TLS_PIN_LEN];
    /* FIPS 180-2 test vector: SHA-256("abc"). */
    assert_int_equal(dc_tls_pin_from_der((const uint8_t *)"abc", 3, pin), 0);
    assert_string_equal(
        pin, "sha256-raw:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(dc_tls_pin_from_der((const uint8_t *)"", 0, pin), -EINVAL);
    assert_int_equal(dc_tls_pin_from_x509(NULL, pin), -EINVAL);
}

/* ---- handshakes ---- */

static void test_tls_handshake_pin_ok(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("127.0.0.1");
    char pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);
    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .pin = pin};
    char err[DC_ERR_LEN] = "";
    int rc = 0;
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("pinned handshake: %s", err);
    }
    /* The pin is SHA-256 over the DER of the leaf the server really sent. */
    X509 *peer = SSL_get0_peer_certificate(ssl);
    assert_non_null(peer);
    char got[DC_TLS_PIN_LEN];
    expected_pin(peer, got);
    assert_string_equal(got, pin);
    /* Without a meta certificate there is no key to find. */
    uint8_t key[DC_TLS_META_KEY_LEN];
    int version = -1;
    assert_int_equal(dc_tls_peer_meta_key(ssl, key, &version), -ENOENT);
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);
    dc_tls_server_free(s);
}

static void test_tls_handshake_wrong_pin(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("127.0.0.1");
    struct dc_tls_server *other = self_signed("127.0.0.1");
    char want[DC_TLS_PIN_LEN];
    char real[DC_TLS_PIN_LEN];
    dc_tls_server_pin(other, want);
    dc_tls_server_pin(s, real);
    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .pin = want};
    char err[DC_ERR_LEN] = "";
    int rc = 0;
    assert_null(connect_to(&sv, &o, &rc, err));
    assert_int_equal(rc, -EKEYREJECTED);
    assert_non_null(strstr(err, "tls: "));
    assert_non_null(strstr(err, "pin mismatch"));
    assert_non_null(strstr(err, want));
    assert_non_null(strstr(err, real));
    assert_int_equal(served_finish(&sv), CHILD_TLS_FAILED);
    dc_tls_server_free(other);
    dc_tls_server_free(s);
}

static void test_tls_handshake_bad_pin_text(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha256-raw:ba7816bf",
        "sha256-raw:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "sha256-raw:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .pin = bad[i]};
        char err[DC_ERR_LEN] = "";
        SSL *ssl = NULL;
        assert_int_equal(dc_tls_client_connect(-1, &o, HANDSHAKE_MS, &ssl, err), -EINVAL);
        assert_null(ssl);
        assert_non_null(strstr(err, bad[i]));
    }
    /* Verification needs a name to check. */
    struct dc_tls_client_opts none = {0};
    char err[DC_ERR_LEN] = "";
    SSL *ssl = NULL;
    assert_int_equal(dc_tls_client_connect(-1, &none, HANDSHAKE_MS, &ssl, err), -EINVAL);
    assert_non_null(strstr(err, "tls: "));
}

static void test_tls_handshake_insecure(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("relay.example.com");
    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "relay.example.com",
                                   .insecure_skip_verify = true};
    char err[DC_ERR_LEN] = "";
    int rc = 0;
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("insecure handshake: %s", err);
    }
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);
    dc_tls_server_free(s);
}

static void test_tls_handshake_default_verify_fails(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("127.0.0.1");
    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1"};
    char err[DC_ERR_LEN] = "";
    int rc = 0;
    assert_null(connect_to(&sv, &o, &rc, err));
    assert_int_equal(rc, -EKEYREJECTED);
    assert_non_null(strstr(err, "tls: handshake with `127.0.0.1'"));
    assert_non_null(strstr(err, "certificate verify failed"));
    assert_non_null(strstr(err, "self-signed certificate"));
    assert_int_equal(served_finish(&sv), CHILD_TLS_FAILED);
    dc_tls_server_free(s);
}

/* Trusting the self-signed certificate itself as a CA works for the right
 * name and fails for another. */
static void test_tls_handshake_ca_file(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    struct dc_tls_server *s = self_signed("relay.example.com");
    const char *ca =
        write_certs(&t, "ca.pem", SSL_CTX_get0_certificate(dc_tls_server_ctx(s)), NULL);
    char err[DC_ERR_LEN] = "";
    int rc = 0;

    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "relay.example.com", .ca_file = ca};
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("ca-file handshake: %s", err);
    }
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);

    sv = serve_one(s);
    o.server_name = "other.example.com";
    assert_null(connect_to(&sv, &o, &rc, err));
    assert_int_equal(rc, -EKEYREJECTED);
    assert_non_null(strstr(err, "hostname mismatch"));
    assert_int_equal(served_finish(&sv), CHILD_TLS_FAILED);

    /* A missing CA file is named before any network I/O. */
    o.ca_file = "/nonexistent/ca.pem";
    o.server_name = "relay.example.com";
    assert_int_equal(dc_tls_client_connect(-1, &o, HANDSHAKE_MS, &ssl, err), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));

    dc_tls_server_free(s);
    tmp_done(&t);
}

/* verify_name: the certificate is checked against it while server_name is
 * still what goes out as SNI (none for an IP literal), as Tailscale's client
 * sends HostName and verifies CertName. */
static void test_tls_handshake_verify_name(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    struct dc_tls_server *s = self_signed("relay.example.com");
    const char *ca =
        write_certs(&t, "ca.pem", SSL_CTX_get0_certificate(dc_tls_server_ctx(s)), NULL);
    struct dc_tls_server *ip = self_signed("127.0.0.1");
    const char *ip_ca =
        write_certs(&t, "ip.pem", SSL_CTX_get0_certificate(dc_tls_server_ctx(ip)), NULL);
    char err[DC_ERR_LEN] = "";
    int rc = 0;
    static const struct {
        const char *server_name; /* SNI expected at the server: this one, "" for an IP */
        const char *want_sni;
    } ok[] = {
        {"node.example.net", "node.example.net"},
        {"127.0.0.1", ""},
        {"::1", ""},
        {NULL, ""},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct served sv = serve_one_sni(s, ok[i].want_sni);
        struct dc_tls_client_opts o = {
            .server_name = ok[i].server_name, .verify_name = "relay.example.com", .ca_file = ca};
        SSL *ssl = connect_to(&sv, &o, &rc, err);
        if (ssl == NULL) {
            fail_msg("verify_name handshake, SNI %s: %s", ok[i].want_sni, err);
        }
        dc_tls_close(ssl);
        assert_int_equal(served_finish(&sv), CHILD_OK);
    }

    /* An IP literal to verify is matched as an IP SAN; SNI still a name. */
    struct served sv = serve_one_sni(ip, "localhost");
    struct dc_tls_client_opts o = {
        .server_name = "localhost", .verify_name = "127.0.0.1", .ca_file = ip_ca};
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("verify_name IP handshake: %s", err);
    }
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);

    /* The certificate must carry verify_name, even when it carries server_name. */
    sv = serve_one(s);
    o = (struct dc_tls_client_opts){
        .server_name = "relay.example.com", .verify_name = "other.example.com", .ca_file = ca};
    assert_null(connect_to(&sv, &o, &rc, err));
    assert_int_equal(rc, -EKEYREJECTED);
    assert_non_null(
        strstr(err, "tls: handshake with `relay.example.com' (verifying `other.example.com')"));
    assert_non_null(strstr(err, "hostname mismatch"));
    assert_int_equal(served_finish(&sv), CHILD_TLS_FAILED);

    /* "" means server_name, which then must match. */
    sv = serve_one(s);
    o = (struct dc_tls_client_opts){
        .server_name = "other.example.com", .verify_name = "", .ca_file = ca};
    assert_null(connect_to(&sv, &o, &rc, err));
    assert_int_equal(rc, -EKEYREJECTED);
    assert_non_null(strstr(err, "tls: handshake with `other.example.com':"));
    assert_int_equal(served_finish(&sv), CHILD_TLS_FAILED);

    /* A pin wins over verify_name, as over everything else. */
    char pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);
    sv = serve_one_sni(s, "node.example.net");
    o = (struct dc_tls_client_opts){
        .server_name = "node.example.net", .verify_name = "other.example.com", .pin = pin};
    ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("pinned handshake with verify_name: %s", err);
    }
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);

    dc_tls_server_free(ip);
    dc_tls_server_free(s);
    tmp_done(&t);
}

static void test_tls_handshake_timeout(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = listen_loopback(&port); /* the kernel completes TCP; nobody speaks TLS */
    char err[DC_ERR_LEN] = "";
    int fd = dc_net_connect_tcp("127.0.0.1", port, HANDSHAKE_MS, err);
    assert_true(fd >= 0);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .insecure_skip_verify = true};
    SSL *ssl = NULL;
    assert_int_equal(dc_tls_client_connect(fd, &o, 100, &ssl, err), -ETIMEDOUT);
    assert_null(ssl);
    assert_non_null(strstr(err, "timed out"));
    close(fd);
    close(lfd);
}

static void test_tls_handshake_peer_closes(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    char err[DC_ERR_LEN] = "";
    int fd = dc_net_connect_tcp("127.0.0.1", port, HANDSHAKE_MS, err);
    assert_true(fd >= 0);
    int afd = accept(lfd, NULL, NULL);
    assert_true(afd >= 0);
    close(afd);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .insecure_skip_verify = true};
    SSL *ssl = NULL;
    int rc = dc_tls_client_connect(fd, &o, HANDSHAKE_MS, &ssl, err);
    assert_true(rc == -ECONNRESET || rc == -EPIPE);
    assert_non_null(strstr(err, "tls: handshake with `127.0.0.1'"));
    close(fd);
    close(lfd);
}

/* ---- meta certificate ---- */

static void check_meta_cert(X509 *meta)
{
    char cn[128];
    subject_cn(meta, cn, sizeof(cn));
    char want_cn[128];
    snprintf(want_cn, sizeof(want_cn), "derpkey");
    hex(want_cn + 7, SERVER_PUB, sizeof(SERVER_PUB));
    assert_string_equal(cn, want_cn);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(meta), X509_get_issuer_name(meta)), 0);
    assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(meta)), 2);
    assert_true(EVP_PKEY_is_a(X509_get0_pubkey(meta), "ED25519"));
    assert_int_equal(X509_verify(meta, X509_get0_pubkey(meta)), 1);
    long nb = secs_from_now(X509_get0_notBefore(meta));
    long na = secs_from_now(X509_get0_notAfter(meta));
    assert_true(nb <= -30 * DAY_S + 120 && nb >= -30 * DAY_S - 120);
    assert_true(na >= 30 * DAY_S - 120 && na <= 30 * DAY_S + 120);
    uint32_t flags = X509_get_extension_flags(meta);
    assert_true(flags & EXFLAG_BCONS);
    assert_false(flags & EXFLAG_CA);
}

static void test_tls_meta_cert(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("127.0.0.1");
    char err[DC_ERR_LEN] = "";
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 2, err), 0);
    char pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);

    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "127.0.0.1", .pin = pin};
    int rc = 0;
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("handshake with meta cert: %s", err);
    }
    assert_int_equal(SSL_version(ssl), TLS1_3_VERSION);
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    assert_non_null(chain);
    assert_int_equal(sk_X509_num(chain), 2);
    char leaf_pin[DC_TLS_PIN_LEN];
    expected_pin(sk_X509_value(chain, 0), leaf_pin);
    assert_string_equal(leaf_pin, pin); /* the leaf still comes first */
    check_meta_cert(sk_X509_value(chain, 1));

    uint8_t key[DC_TLS_META_KEY_LEN] = {0};
    int version = 0;
    assert_int_equal(dc_tls_peer_meta_key(ssl, key, &version), 0);
    assert_memory_equal(key, SERVER_PUB, sizeof(key));
    assert_int_equal(version, 2);
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);
    dc_tls_server_free(s);
}

static void test_tls_meta_cert_bad_args(void **state)
{
    (void)state;
    struct dc_tls_server *s = self_signed("127.0.0.1");
    char err[DC_ERR_LEN] = "";
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 0, err), -EINVAL);
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 256, err), -EINVAL);
    assert_non_null(strstr(err, "256"));
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 2, err), 0);
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 2, err), -EEXIST);
    dc_tls_server_free(s);
}

/* A CA-issued chain (leaf + intermediate) loaded from files: the meta
 * certificate goes after the intermediate, and CA verification still passes. */
static void test_tls_meta_after_chain(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    EVP_PKEY *root_key = make_key();
    EVP_PKEY *mid_key = make_key();
    EVP_PKEY *leaf_key = make_key();
    X509 *root = make_cert("Test Root", true, root_key, NULL, NULL);
    X509 *mid = make_cert("Test Intermediate", true, mid_key, root, root_key);
    X509 *leaf = make_cert("relay.example.com", false, leaf_key, mid, mid_key);
    const char *chain_path = write_certs(&t, "chain.pem", leaf, mid);
    const char *key_path = write_key(&t, "key.pem", leaf_key);
    const char *root_path = write_certs(&t, "root.pem", root, NULL);

    struct dc_tls_server *s = NULL;
    char err[DC_ERR_LEN] = "";
    if (dc_tls_server_new_files(chain_path, key_path, &s, err) < 0) {
        fail_msg("load: %s", err);
    }
    assert_int_equal(dc_tls_server_add_meta_cert(s, SERVER_PUB, 2, err), 0);
    char pin[DC_TLS_PIN_LEN];
    char want_pin[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);
    expected_pin(leaf, want_pin);
    assert_string_equal(pin, want_pin);

    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "relay.example.com", .ca_file = root_path};
    int rc = 0;
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("verified handshake with meta cert: %s", err);
    }
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    assert_int_equal(sk_X509_num(chain), 3);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 0), leaf), 0);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), mid), 0);
    check_meta_cert(sk_X509_value(chain, 2));
    uint8_t key[DC_TLS_META_KEY_LEN] = {0};
    int version = 0;
    assert_int_equal(dc_tls_peer_meta_key(ssl, key, &version), 0);
    assert_memory_equal(key, SERVER_PUB, sizeof(key));
    assert_int_equal(version, 2);
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);

    dc_tls_server_free(s);
    X509_free(leaf);
    X509_free(mid);
    X509_free(root);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(mid_key);
    EVP_PKEY_free(root_key);
    tmp_done(&t);
}

/* ---- files ---- */

static void test_tls_files_ok(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    EVP_PKEY *key = make_key();
    X509 *cert = make_cert("relay.example.com", false, key, NULL, NULL);
    const char *cert_path = write_certs(&t, "cert.pem", cert, NULL);
    const char *key_path = write_key(&t, "key.pem", key);
    struct dc_tls_server *s = NULL;
    char err[DC_ERR_LEN] = "";
    if (dc_tls_server_new_files(cert_path, key_path, &s, err) < 0) {
        fail_msg("load: %s", err);
    }
    char pin[DC_TLS_PIN_LEN];
    char want[DC_TLS_PIN_LEN];
    dc_tls_server_pin(s, pin);
    expected_pin(cert, want);
    assert_string_equal(pin, want);

    struct served sv = serve_one(s);
    struct dc_tls_client_opts o = {.server_name = "relay.example.com", .pin = pin};
    int rc = 0;
    SSL *ssl = connect_to(&sv, &o, &rc, err);
    if (ssl == NULL) {
        fail_msg("handshake: %s", err);
    }
    dc_tls_close(ssl);
    assert_int_equal(served_finish(&sv), CHILD_OK);
    dc_tls_server_free(s);
    X509_free(cert);
    EVP_PKEY_free(key);
    tmp_done(&t);
}

static void test_tls_files_mismatch(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    EVP_PKEY *key = make_key();
    EVP_PKEY *other = make_key();
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(ed);
    X509 *cert = make_cert("relay.example.com", false, key, NULL, NULL);
    const char *cert_path = write_certs(&t, "cert.pem", cert, NULL);
    const char *other_path = write_key(&t, "other.pem", other);
    const char *ed_path = write_key(&t, "ed.pem", ed);
    struct dc_tls_server *s = NULL;
    char err[DC_ERR_LEN] = "";

    assert_int_equal(dc_tls_server_new_files(cert_path, other_path, &s, err), -EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, other_path));
    assert_non_null(strstr(err, "does not match"));

    /* A key of another type lands in another OpenSSL slot; still caught. */
    assert_int_equal(dc_tls_server_new_files(cert_path, ed_path, &s, err), -EINVAL);
    assert_null(s);
    assert_non_null(strstr(err, ed_path));
    assert_non_null(strstr(err, "does not match"));

    /* A key where the certificate should be. */
    assert_int_equal(dc_tls_server_new_files(other_path, other_path, &s, err), -EINVAL);
    assert_non_null(strstr(err, "tls-cert"));
    assert_non_null(strstr(err, other_path));

    X509_free(cert);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(other);
    EVP_PKEY_free(key);
    tmp_done(&t);
}

static void test_tls_files_missing(void **state)
{
    (void)state;
    struct tmp t;
    tmp_init(&t);
    EVP_PKEY *key = make_key();
    X509 *cert = make_cert("relay.example.com", false, key, NULL, NULL);
    const char *cert_path = write_certs(&t, "cert.pem", cert, NULL);
    const char *key_path = write_key(&t, "key.pem", key);
    struct dc_tls_server *s = NULL;
    char err[DC_ERR_LEN] = "";

    assert_int_equal(dc_tls_server_new_files("/nonexistent/cert.pem", key_path, &s, err), -ENOENT);
    assert_null(s);
    assert_non_null(strstr(err, "tls-cert `/nonexistent/cert.pem'"));
    assert_non_null(strstr(err, "No such file"));

    assert_int_equal(dc_tls_server_new_files(cert_path, "/nonexistent/key.pem", &s, err), -ENOENT);
    assert_null(s);
    assert_non_null(strstr(err, "tls-key `/nonexistent/key.pem'"));

    X509_free(cert);
    EVP_PKEY_free(key);
    tmp_done(&t);
}

int main(void)
{
    /* dc_tls_close() may write close_notify to a peer that already left. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    assert_true(sodium_init() >= 0);
    assert_int_equal(dc_tls_init(), 0);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_self_signed_dns),
        cmocka_unit_test(test_tls_self_signed_ip),
        cmocka_unit_test(test_tls_self_signed_bad_hostname),
        cmocka_unit_test(test_tls_pin_format),
        cmocka_unit_test(test_tls_pin_from_der),
        cmocka_unit_test(test_tls_handshake_pin_ok),
        cmocka_unit_test(test_tls_handshake_wrong_pin),
        cmocka_unit_test(test_tls_handshake_bad_pin_text),
        cmocka_unit_test(test_tls_handshake_insecure),
        cmocka_unit_test(test_tls_handshake_default_verify_fails),
        cmocka_unit_test(test_tls_handshake_ca_file),
        cmocka_unit_test(test_tls_handshake_verify_name),
        cmocka_unit_test(test_tls_handshake_timeout),
        cmocka_unit_test(test_tls_handshake_peer_closes),
        cmocka_unit_test(test_tls_meta_cert),
        cmocka_unit_test(test_tls_meta_cert_bad_args),
        cmocka_unit_test(test_tls_meta_after_chain),
        cmocka_unit_test(test_tls_files_ok),
        cmocka_unit_test(test_tls_files_mismatch),
        cmocka_unit_test(test_tls_files_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
