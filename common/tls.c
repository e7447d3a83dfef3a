#include "tls.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHA256_LEN      32
#define SERIAL_BYTES    16 /* 128-bit random serial for self-signed certificates */
#define PIN_HEX_LEN     (2 * SHA256_LEN)
#define META_CN_LEN     (sizeof(DC_TLS_META_CN_PREFIX) - 1 + 2 * DC_TLS_META_KEY_LEN)
#define REASON_LEN      160
#define PROTO_VER_MAX   255 /* parseMetaCert accepts serials of at most 8 bits */
#define HOST_IP_BUF_LEN 16  /* in6_addr */
/* "`server_name' (verifying `verify_name')" in handshake errors; longer is cut. */
#define NAME_LABEL_LEN (2 * DC_TLS_HOSTNAME_MAX + 32)

struct dc_tls_server {
    SSL_CTX *ctx;                          /* owned */
    char pin[DC_TLS_PIN_LEN];              /* of the leaf, computed once at construction */
    bool has_meta;                         /* dc_tls_server_add_meta_cert() done */
    uint8_t meta_pub[DC_TLS_META_KEY_LEN]; /* its key, for reloads */
    int meta_version;                      /* its serial, for reloads */
};

/* What the pinning verify callback compares; lives on dc_tls_client_connect's
 * stack and is unhooked from the SSL_CTX before that function returns. */
struct pin_check {
    uint8_t want[SHA256_LEN]; /* from opts->pin */
    uint8_t got[SHA256_LEN];  /* the leaf's hash, once seen */
    bool has_got;             /* got is filled */
};

int dc_tls_init(void)
{
    if (OPENSSL_init_ssl(0, NULL) != 1) {
        return -ENOMEM;
    }
    return 0;
}

/* Copies the reason of the oldest queued OpenSSL error (the most specific
 * one) into buf and empties the queue. Returns buf. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    const char *r = NULL;
    if (e == 0) {
        r = "unknown error";
    } else if (ERR_SYSTEM_ERROR(e)) {
        r = strerror(ERR_GET_REASON(e));
    } else {
        r = ERR_reason_error_string(e);
    }
    int n = (r != NULL) ? snprintf(buf, len, "%s", r) : snprintf(buf, len, "error %#lx", e);
    if (n < 0) {
        buf[0] = '\0';
    }
    ERR_clear_error();
    return buf;
}

static void hex_lower(char *out, size_t out_len, const uint8_t *bin, size_t bin_len)
{
    sodium_bin2hex(out, out_len, bin, bin_len);
}

static void pin_format(const uint8_t md[SHA256_LEN], char out[static DC_TLS_PIN_LEN])
{
    memcpy(out, DC_TLS_PIN_PREFIX, DC_TLS_PIN_PREFIX_LEN);
    hex_lower(out + DC_TLS_PIN_PREFIX_LEN, PIN_HEX_LEN + 1, md, SHA256_LEN);
}

int dc_tls_pin_from_der(const uint8_t *der, size_t len, char out[static DC_TLS_PIN_LEN])
{
    uint8_t md[SHA256_LEN];
    unsigned int md_len = 0;
    if (len == 0) {
        return -EINVAL;
    }
    if (EVP_Digest(der, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != SHA256_LEN) {
        ERR_clear_error();
        return -ENOMEM;
    }
    pin_format(md, out);
    return 0;
}

/* SHA-256 over the certificate's DER encoding. Returns 0 or -ENOMEM. */
static int cert_sha256(const X509 *cert, uint8_t md[SHA256_LEN])
{
    unsigned int md_len = 0;
    if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1 || md_len != SHA256_LEN) {
        ERR_clear_error();
        return -ENOMEM;
    }
    return 0;
}

int dc_tls_pin_from_x509(X509 *cert, char out[static DC_TLS_PIN_LEN])
{
    uint8_t md[SHA256_LEN];
    if (cert == NULL) {
        return -EINVAL;
    }
    int rc = cert_sha256(cert, md);
    if (rc < 0) {
        return rc;
    }
    pin_format(md, out);
    return 0;
}

/* Parses "sha256-raw:<64 hex>" into want. Returns 0 or -EINVAL quoting it. */
static int pin_parse(const char *pin, uint8_t want[SHA256_LEN], char *err)
{
    size_t bin_len = 0;
    const char *end = NULL;
    const char *hex = pin + DC_TLS_PIN_PREFIX_LEN;
    if (strncmp(pin, DC_TLS_PIN_PREFIX, DC_TLS_PIN_PREFIX_LEN) != 0 || strlen(hex) != PIN_HEX_LEN ||
        sodium_hex2bin(want, SHA256_LEN, hex, PIN_HEX_LEN, NULL, &bin_len, &end) != 0 ||
        bin_len != SHA256_LEN || end != hex + PIN_HEX_LEN) {
        return dc_err_set(err, -EINVAL, "tls: pin: want sha256-raw:<64 hex digits>: `%s'", pin);
    }
    return 0;
}

/* ---- certificate building ---- */

/* Allocates a v3 certificate for key with subject = issuer = CN=cn (ASN.1
 * string type cn_type, which skips OpenSSL's 64-character CN limit the way Go
 * does), valid from now+from_s to now+to_s. Serial, extensions and signature
 * are the caller's. Returns NULL on allocation failure. */
static X509 *cert_new(EVP_PKEY *key, const char *cn, int cn_type, long from_s, long to_s)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    bool ok = x != NULL && name != NULL && X509_set_version(x, X509_VERSION_3) == 1 &&
              X509_NAME_add_entry_by_NID(name, NID_commonName, cn_type, (const unsigned char *)cn,
                                         (int)strlen(cn), -1, 0) == 1 &&
              X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), from_s) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(x), to_s) != NULL && X509_set_pubkey(x, key) == 1;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Adds an extension from OpenSSL's config syntax ("critical,CA:FALSE"). */
static int cert_add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, value);
    if (ext == NULL) {
        return -ENOMEM;
    }
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -ENOMEM;
}

/* Adds subjectAltName with one entry: IP:host for an IP literal, else DNS:host. */
static int cert_add_san(X509 *x, const char *host, bool is_ip)
{
    int rc = -ENOMEM;
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    if (names == NULL || gn == NULL) {
        goto out;
    }
    if (is_ip) {
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
        if (ip == NULL) {
            goto out;
        }
        GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
    } else {
        ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
        if (dns == NULL || ASN1_STRING_set(dns, host, -1) != 1) {
            ASN1_IA5STRING_free(dns);
            goto out;
        }
        GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
    }
    if (sk_GENERAL_NAME_push(names, gn) <= 0) {
        goto out;
    }
    gn = NULL; /* owned by names now */
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1) {
        rc = 0;
    }
out:
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(names);
    return rc;
}

/* Sets a uniformly random positive serial below 2^128 (never zero). */
static int cert_set_random_serial(X509 *x)
{
    uint8_t raw[SERIAL_BYTES];
    int rc = -ENOMEM;
    randombytes_buf(raw, sizeof(raw));
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (bn != NULL && BN_is_zero(bn)) {
        BN_one(bn);
    }
    if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL) {
        rc = 0;
    }
    BN_free(bn);
    return rc;
}

/* A host name is an IP literal or LDH labels separated by dots. */
static int hostname_check(const char *host, bool *is_ip, char *err)
{
    uint8_t buf[HOST_IP_BUF_LEN];
    size_t len = strlen(host);
    *is_ip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
    if (*is_ip) {
        return 0;
    }
    bool ok = len > 0 && len <= DC_TLS_HOSTNAME_MAX && host[0] != '.' && host[0] != '-';
    for (size_t i = 0; ok && i < len; i++) {
        char c = host[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '.';
    }
    if (!ok) {
        return dc_err_set(err, -EINVAL, "self-signed: want a DNS name or an IP address: `%s'",
                          host);
    }
    return 0;
}

/* Makes the self-signed server certificate for host, signed by key. */
static int self_signed_cert(EVP_PKEY *key, const char *host, bool is_ip, X509 **out)
{
    X509 *x = cert_new(key, host, V_ASN1_UTF8STRING, -DC_TLS_SELF_SIGNED_BACKDATE_S,
                       DC_TLS_SELF_SIGNED_LIFETIME_S);
    if (x == NULL || cert_set_random_serial(x) < 0 ||
        cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        cert_add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
        cert_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 || cert_add_san(x, host, is_ip) < 0 ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_free(x);
        ERR_clear_error();
        return -ENOMEM;
    }
    *out = x;
    return 0;
}

/* ---- server ---- */

/* Refuses to prompt on the terminal for an encrypted key's passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int server_ctx_new(SSL_CTX **out, char *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ERR_clear_error();
        return dc_err_set(err, -ENOMEM, "tls: cannot create a server context");
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return dc_err_set(err, -ENOMEM, "tls: cannot set the minimum TLS version");
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    *out = ctx;
    return 0;
}

/* Wraps *ctx (taken, set to NULL) into a new dc_tls_server with its pin. */
static int server_wrap(SSL_CTX **ctx, struct dc_tls_server **out, char *err)
{
    struct dc_tls_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return dc_err_set(err, -ENOMEM, "tls: out of memory");
    }
    int rc = dc_tls_pin_from_x509(SSL_CTX_get0_certificate(*ctx), s->pin);
    if (rc < 0) {
        free(s);
        return dc_err_set(err, rc, "tls: cannot hash the certificate");
    }
    s->ctx = *ctx;
    *ctx = NULL;
    *out = s;
    return 0;
}

/* Checks path opens for reading, so a missing file gets its errno. */
static int file_check(const char *path, const char *what, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        return dc_err_set(err, rc, "%s `%s': %s", what, path, dc_strerror(rc));
    }
    close(fd);
    return 0;
}

/* True when the queued OpenSSL error says the key does not fit the
 * certificate. A key of another type than the certificate's loads into
 * another OpenSSL slot, and only the final check notices: "no certificate
 * assigned" to that key. */
static bool is_key_mismatch(void)
{
    unsigned long e = ERR_peek_error();
    int lib = ERR_GET_LIB(e);
    int reason = ERR_GET_REASON(e);
    return (lib == ERR_LIB_X509 &&
            (reason == X509_R_KEY_VALUES_MISMATCH || reason == X509_R_KEY_TYPE_MISMATCH)) ||
           (lib == ERR_LIB_SSL && reason == SSL_R_NO_CERTIFICATE_ASSIGNED);
}

int dc_tls_server_new_files(const char *cert_chain_pem, const char *key_pem,
                            struct dc_tls_server **out, char *err)
{
    char reason[REASON_LEN];
    SSL_CTX *ctx = NULL;
    *out = NULL;
    int rc = file_check(cert_chain_pem, "tls-cert", err);
    if (rc == 0) {
        rc = file_check(key_pem, "tls-key", err);
    }
    if (rc == 0) {
        rc = server_ctx_new(&ctx, err);
    }
    if (rc < 0) {
        goto out;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_chain_pem) != 1) {
        rc = dc_err_set(err, -EINVAL, "tls-cert `%s': cannot load a PEM certificate chain: %s",
                        cert_chain_pem, ossl_reason(reason, sizeof(reason)));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_pem, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        bool mismatch = is_key_mismatch();
        ossl_reason(reason, sizeof(reason));
        if (mismatch) {
            rc = dc_err_set(err, -EINVAL,
                            "tls-key `%s': does not match the certificate in `%s' (%s)", key_pem,
                            cert_chain_pem, reason);
        } else {
            rc = dc_err_set(err, -EINVAL, "tls-key `%s': cannot load a PEM private key: %s",
                            key_pem, reason);
        }
        goto out;
    }
    rc = server_wrap(&ctx, out, err);
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int dc_tls_server_new_self_signed(const char *hostname, struct dc_tls_server **out, char *err)
{
    bool is_ip = false;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    SSL_CTX *ctx = NULL;
    *out = NULL;
    int rc = hostname_check(hostname, &is_ip, err);
    if (rc < 0) {
        return rc;
    }
    rc = server_ctx_new(&ctx, err);
    if (rc < 0) {
        goto out;
    }
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL || self_signed_cert(key, hostname, is_ip, &cert) < 0) {
        rc = dc_err_set(err, -ENOMEM, "self-signed `%s': cannot make a key and certificate",
                        hostname);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        char reason[REASON_LEN];
        rc = dc_err_set(err, -ENOMEM, "self-signed `%s': %s", hostname,
                        ossl_reason(reason, sizeof(reason)));
        goto out;
    }
    rc = server_wrap(&ctx, out, err);
out:
    SSL_CTX_free(ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

/* Makes derper's meta certificate: see dc_tls_server_add_meta_cert(). */
static int meta_cert_new(const uint8_t server_pub[static DC_TLS_META_KEY_LEN], int version,
                         X509 **out)
{
    char cn[META_CN_LEN + 1];
    memcpy(cn, DC_TLS_META_CN_PREFIX, sizeof(DC_TLS_META_CN_PREFIX) - 1);
    hex_lower(cn + sizeof(DC_TLS_META_CN_PREFIX) - 1, 2 * DC_TLS_META_KEY_LEN + 1, server_pub,
              DC_TLS_META_KEY_LEN);
    X509 *x = NULL;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (key != NULL) {
        /* Go writes the CN as a PrintableString; all of it is printable. */
        x = cert_new(key, cn, V_ASN1_PRINTABLESTRING, -DC_TLS_META_VALIDITY_S,
                     DC_TLS_META_VALIDITY_S);
    }
    if (x == NULL || ASN1_INTEGER_set(X509_get_serialNumber(x), version) != 1 ||
        cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        X509_sign(x, key, NULL) <= 0) {
        X509_free(x);
        EVP_PKEY_free(key);
        ERR_clear_error();
        return -ENOMEM;
    }
    EVP_PKEY_free(key); /* never needed again: nothing else is signed with it */
    *out = x;
    return 0;
}

int dc_tls_server_add_meta_cert(struct dc_tls_server *s,
                                const uint8_t server_pub[static DC_TLS_META_KEY_LEN],
                                int protocol_version, char *err)
{
    X509 *meta = NULL;
    if (protocol_version < 1 || protocol_version > PROTO_VER_MAX) {
        return dc_err_set(err, -EINVAL, "tls: meta certificate: protocol version out of range: %d",
                          protocol_version);
    }
    if (s->has_meta) {
        return dc_err_set(err, -EEXIST, "tls: meta certificate already added");
    }
    int rc = meta_cert_new(server_pub, protocol_version, &meta);
    if (rc < 0) {
        return dc_err_set(err, rc, "tls: cannot make the meta certificate");
    }
    /* Appends to the current certificate's chain, after anything
     * SSL_CTX_use_certificate_chain_file put there; a non-empty chain also
     * turns off OpenSSL's auto-chaining, so the order sent is leaf, chain,
     * meta. */
    if (SSL_CTX_add1_chain_cert(s->ctx, meta) != 1) {
        char reason[REASON_LEN];
        rc = dc_err_set(err, -ENOMEM, "tls: meta certificate: %s",
                        ossl_reason(reason, sizeof(reason)));
    } else {
        s->has_meta = true;
        memcpy(s->meta_pub, server_pub, DC_TLS_META_KEY_LEN);
        s->meta_version = protocol_version;
    }
    X509_free(meta);
    return rc;
}

int dc_tls_server_reload_files(struct dc_tls_server *s, const char *cert_chain_pem,
                               const char *key_pem, char *err)
{
    struct dc_tls_server *fresh = NULL;
    int rc = dc_tls_server_new_files(cert_chain_pem, key_pem, &fresh, err);
    if (rc == 0 && s->has_meta) {
        rc = dc_tls_server_add_meta_cert(fresh, s->meta_pub, s->meta_version, err);
    }
    if (rc == 0) {
        SSL_CTX *old = s->ctx;
        s->ctx = fresh->ctx;
        fresh->ctx = old; /* freed below; live SSLs keep their own reference */
        memcpy(s->pin, fresh->pin, DC_TLS_PIN_LEN);
    }
    dc_tls_server_free(fresh);
    return rc;
}

void dc_tls_server_pin(const struct dc_tls_server *s, char out[static DC_TLS_PIN_LEN])
{
    memcpy(out, s->pin, DC_TLS_PIN_LEN);
}

SSL_CTX *dc_tls_server_ctx(struct dc_tls_server *s)
{
    return s->ctx;
}

void dc_tls_server_free(struct dc_tls_server *s)
{
    if (s == NULL) {
        return;
    }
    SSL_CTX_free(s->ctx);
    free(s);
}

/* ---- client ---- */

/* Replaces chain verification when a pin is set: the leaf's hash decides. */
static int pin_verify_cb(X509_STORE_CTX *xs, void *arg)
{
    struct pin_check *pc = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    if (pc == NULL || leaf == NULL || cert_sha256(leaf, pc->got) < 0) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    pc->has_got = true;
    if (memcmp(pc->got, pc->want, SHA256_LEN) != 0) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    X509_STORE_CTX_set_error(xs, X509_V_OK);
    return 1;
}

/* Installed once the handshake is over, so nothing can reach the
 * pin_check on a stack frame that is gone. */
static int reject_verify_cb(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
    return 0;
}

static int client_ctx_new(const struct dc_tls_client_opts *o, struct pin_check *pc, SSL_CTX **out,
                          char *err)
{
    char reason[REASON_LEN];
    int rc = 0;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return dc_err_set(err, -ENOMEM, "tls: cannot create a client context");
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (o->pin != NULL) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, pin_verify_cb, pc);
    } else if (o->insecure_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca_file != NULL) {
            rc = file_check(o->ca_file, "tls: ca-file", err);
            if (rc == 0 && SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1) {
                rc = dc_err_set(err, -EINVAL, "tls: ca-file `%s': %s", o->ca_file,
                                ossl_reason(reason, sizeof(reason)));
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            rc = dc_err_set(err, -ENOMEM, "tls: cannot load the system CAs: %s",
                            ossl_reason(reason, sizeof(reason)));
        }
    }
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static bool is_ip_literal(const char *name)
{
    uint8_t buf[HOST_IP_BUF_LEN];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The name the certificate must match: verify_name, else server_name; ""
 * when there is neither. */
static const char *client_verify_name(const struct dc_tls_client_opts *o)
{
    if (o->verify_name != NULL && o->verify_name[0] != '\0') {
        return o->verify_name;
    }
    return o->server_name != NULL ? o->server_name : "";
}

/* SNI from server_name (DNS names only: RFC 6066 forbids IP literals there)
 * and the name or address the certificate must carry (client_verify_name). */
static int client_ssl_setup(SSL *ssl, const struct dc_tls_client_opts *o, char *err)
{
    const char *sni = o->server_name;
    if (sni != NULL && sni[0] != '\0' && !is_ip_literal(sni) &&
        SSL_set_tlsext_host_name(ssl, sni) != 1) {
        ERR_clear_error();
        return dc_err_set(err, -EINVAL, "tls: bad server name: `%s'", sni);
    }
    const char *name = client_verify_name(o);
    if (o->pin != NULL || o->insecure_skip_verify || name[0] == '\0') {
        return 0;
    }
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                                 : X509_VERIFY_PARAM_set1_host(param, name, 0);
    if (ok != 1) {
        ERR_clear_error();
        return dc_err_set(err, -EINVAL, "tls: bad name to verify: `%s'", name);
    }
    return 0;
}

/* Writes what handshake errors call the server into label: "`server_name'",
 * plus " (verifying `verify_name')" when another name is checked. */
static void client_name_label(const struct dc_tls_client_opts *o, char *label, size_t len)
{
    const char *sni = o->server_name != NULL ? o->server_name : "";
    const char *name = client_verify_name(o);
    bool is_checked = o->pin == NULL && !o->insecure_skip_verify;
    if (sni[0] != '\0' && is_checked && strcmp(sni, name) != 0) {
        snprintf(label, len, "`%s' (verifying `%s')", sni, name);
    } else {
        snprintf(label, len, "`%s'", sni[0] != '\0' ? sni : name);
    }
}

/* Turns a failed SSL_connect into an errno and a sentence naming label
 * (client_name_label). sys_errno is errno as it was right after the call. */
static int handshake_error(SSL *ssl, int ssl_err, int sys_errno, const char *label,
                           const struct pin_check *pc, bool is_pinned, char *err)
{
    char reason[REASON_LEN];
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_error();
    if (is_pinned && pc->has_got && vr == X509_V_ERR_CERT_REJECTED) {
        char got[DC_TLS_PIN_LEN];
        char want[DC_TLS_PIN_LEN];
        pin_format(pc->got, got);
        pin_format(pc->want, want);
        ERR_clear_error();
        return dc_err_set(err, -EKEYREJECTED,
                          "tls: handshake with %s: certificate pin mismatch: got %s, want %s",
                          label, got, want);
    }
    if (ssl_err == SSL_ERROR_SSL && vr != X509_V_OK &&
        SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE) {
        ossl_reason(reason, sizeof(reason));
        return dc_err_set(err, -EKEYREJECTED, "tls: handshake with %s: %s: %s", label, reason,
                          X509_verify_cert_error_string(vr));
    }
    if (ssl_err == SSL_ERROR_SYSCALL && e == 0) {
        int rc = sys_errno != 0 ? -sys_errno : -ECONNRESET;
        return dc_err_set(err, rc, "tls: handshake with %s: %s", label,
                          sys_errno != 0 ? dc_strerror(rc) : "connection closed by peer");
    }
    if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return dc_err_set(err, -ECONNRESET, "tls: handshake with %s: connection closed by peer",
                          label);
    }
    return dc_err_set(err, -EPROTO, "tls: handshake with %s: %s", label,
                      ossl_reason(reason, sizeof(reason)));
}

/* Drives SSL_connect on the non-blocking fd until done or deadline. */
static int handshake(SSL *ssl, int fd, int timeout_ms, const char *label,
                     const struct pin_check *pc, bool is_pinned, char *err)
{
    uint64_t deadline = dc_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_connect(ssl);
        int sys_errno = errno;
        if (r == 1) {
            return 0;
        }
        int e = SSL_get_error(ssl, r);
        struct pollfd pfd = {.fd = fd, .events = 0, .revents = 0};
        if (e == SSL_ERROR_WANT_READ) {
            pfd.events = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            pfd.events = POLLOUT;
        } else {
            return handshake_error(ssl, e, sys_errno, label, pc, is_pinned, err);
        }
        int wait_ms = -1;
        if (timeout_ms > 0) {
            uint64_t now = dc_now_ms();
            if (now >= deadline) {
                return dc_err_set(err, -ETIMEDOUT, "tls: handshake with %s: timed out after %d ms",
                                  label, timeout_ms);
            }
            wait_ms = (int)(deadline - now);
        }
        if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
            int rc = -errno;
            return dc_err_set(err, rc, "tls: handshake with %s: poll: %s", label, dc_strerror(rc));
        }
    }
}

int dc_tls_client_connect(int fd, const struct dc_tls_client_opts *o, int timeout_ms, SSL **out,
                          char *err)
{
    char label[NAME_LABEL_LEN];
    client_name_label(o, label, sizeof(label));
    bool is_pinned = o->pin != NULL;
    struct pin_check pc = {0};
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int flags = -1;
    *out = NULL;
    int rc = dc_tls_init();
    if (rc < 0) {
        return dc_err_set(err, rc, "tls: cannot initialize OpenSSL");
    }
    if (is_pinned) {
        rc = pin_parse(o->pin, pc.want, err);
    } else if (!o->insecure_skip_verify && client_verify_name(o)[0] == '\0') {
        rc = dc_err_set(err, -EINVAL, "tls: a server name is needed to verify the server");
    }
    if (rc < 0) {
        return rc;
    }
    rc = client_ctx_new(o, &pc, &ctx, err);
    if (rc < 0) {
        goto out;
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        rc = dc_err_set(err, -ENOMEM, "tls: cannot create a connection for %s", label);
        goto out;
    }
    rc = client_ssl_setup(ssl, o, err);
    if (rc < 0) {
        goto out;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        rc = -errno;
        flags = -1;
        dc_err_set(err, rc, "tls: handshake with %s: fcntl: %s", label, dc_strerror(rc));
        goto out;
    }
    rc = handshake(ssl, fd, timeout_ms, label, &pc, is_pinned, err);
out:
    if (flags >= 0 && fcntl(fd, F_SETFL, flags) < 0 && rc == 0) {
        rc = -errno;
        dc_err_set(err, rc, "tls: handshake with %s: fcntl: %s", label, dc_strerror(rc));
    }
    if (ctx != NULL) {
        SSL_CTX_set_cert_verify_callback(ctx, reject_verify_cb, NULL);
        SSL_CTX_free(ctx); /* ssl keeps its own reference */
    }
    ERR_clear_error();
    if (rc < 0) {
        SSL_free(ssl);
        return rc;
    }
    *out = ssl;
    return 0;
}

void dc_tls_close(SSL *ssl)
{
    if (ssl == NULL) {
        return;
    }
    /* After a fatal error the session is no longer "init finished", and
     * OpenSSL says not to call SSL_shutdown then. */
    if (SSL_is_init_finished(ssl) && (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) == 0) {
        (void)SSL_shutdown(ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
}

/* Reads a meta certificate: the last CN (Go keeps the last one) must be
 * "derpkey" + 64 hex digits and the serial 0..255. Returns 0 or -ENOENT. */
static int meta_parse(const X509 *x, uint8_t server_pub[static DC_TLS_META_KEY_LEN], int *version)
{
    const X509_NAME *subject = X509_get_subject_name(x);
    int idx = -1;
    for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
        idx = i;
    }
    if (idx < 0) {
        return -ENOENT;
    }
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    const size_t prefix_len = sizeof(DC_TLS_META_CN_PREFIX) - 1;
    const char *p = (const char *)ASN1_STRING_get0_data(cn);
    if (ASN1_STRING_length(cn) != (int)META_CN_LEN ||
        memcmp(p, DC_TLS_META_CN_PREFIX, prefix_len) != 0) {
        return -ENOENT;
    }
    uint8_t key[DC_TLS_META_KEY_LEN];
    size_t bin_len = 0;
    const char *end = NULL;
    const char *hex = p + prefix_len;
    if (sodium_hex2bin(key, sizeof(key), hex, META_CN_LEN - prefix_len, NULL, &bin_len, &end) !=
            0 ||
        bin_len != sizeof(key) || end != hex + (META_CN_LEN - prefix_len)) {
        return -ENOENT;
    }
    int64_t serial = -1;
    if (ASN1_INTEGER_get_int64(&serial, X509_get0_serialNumber(x)) != 1 || serial < 0 ||
        serial > PROTO_VER_MAX) {
        ERR_clear_error();
        return -ENOENT;
    }
    memcpy(server_pub, key, sizeof(key));
    *version = (int)serial;
    return 0;
}

int dc_tls_peer_meta_key(SSL *ssl, uint8_t server_pub[static DC_TLS_META_KEY_LEN], int *version)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    if (chain == NULL) {
        return -ENOENT;
    }
    for (int i = 0; i < sk_X509_num(chain); i++) {
        if (meta_parse(sk_X509_value(chain, i), server_pub, version) == 0) {
            return 0;
        }
    }
    return -ENOENT;
}
