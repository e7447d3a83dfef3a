/* tls: OpenSSL contexts for the relay (server) and the DERP client (blocking
 * client handshake), plus the "sha256-raw:" certificate pin.
 *
 * Server side: a struct dc_tls_server wraps one SSL_CTX (TLS 1.2 and 1.3)
 * loaded from PEM files or made up on the spot (--self-signed HOSTNAME),
 * optionally carrying derper's "meta certificate" after the real chain. The
 * event loop creates its own SSL objects from dc_tls_server_ctx(); this module
 * does no server-side I/O and sets no SSL_MODE_* bits (the caller picks them).
 *
 * Client side: dc_tls_client_connect() runs one blocking handshake on a
 * connected fd with a deadline, verifying the server by CA + host name, by
 * pin, or not at all (insecure_skip_verify; the caller logs that at warn).
 *
 * The pin is Tailscale's DERPNode.CertName special case (tailcfg/derpmap.go):
 * "sha256-raw:" followed by the lowercase hex of SHA-256 over the leaf
 * certificate's DER. A pinned client checks only that hash, like tlsdial's
 * SetConfigExpectedCertHash.
 *
 * The meta certificate (derpserver.go initMetacert, derphttp_client.go
 * parseMetaCert): a fresh self-signed Ed25519 certificate whose serial number
 * is the DERP protocol version and whose subject CN is "derpkey" + 64 lowercase
 * hex of the server's public key. Sent after the real chain, it lets a client
 * learn the server key during the TLS 1.3 handshake and skip a round trip
 * (Go clients only trust it over TLS 1.3, whose certificates are encrypted).
 *
 * Not here: ALPN, client certificates, session tickets policy, non-blocking
 * client handshakes. Writing to a socket the peer closed raises SIGPIPE, so
 * programs ignore SIGPIPE. */
#ifndef DC_COMMON_TLS_H
#define DC_COMMON_TLS_H

#include "err.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "sha256-raw:" + 64 hex + NUL: the size of every pin buffer. */
#define DC_TLS_PIN_PREFIX     "sha256-raw:"
#define DC_TLS_PIN_PREFIX_LEN 11
#define DC_TLS_PIN_LEN        (DC_TLS_PIN_PREFIX_LEN + 64 + 1)

/* Meta certificate CN prefix (derpconst.MetaCertCommonNamePrefix) and the
 * size of the key after it: a Curve25519 public key, 32 bytes / 64 hex. */
#define DC_TLS_META_CN_PREFIX "derpkey"
#define DC_TLS_META_KEY_LEN   32

/* Self-signed certificate validity: from 1 hour ago (clock skew) to 1 year. */
#define DC_TLS_SELF_SIGNED_BACKDATE_S (60L * 60)
#define DC_TLS_SELF_SIGNED_LIFETIME_S (365L * 24 * 60 * 60)
/* Meta certificate validity: now -30 days to now +30 days (initMetacert). */
#define DC_TLS_META_VALIDITY_S (30L * 24 * 60 * 60)

/* Longest host name accepted by dc_tls_server_new_self_signed (RFC 1035). */
#define DC_TLS_HOSTNAME_MAX 253

struct dc_tls_server;

/* How dc_tls_client_connect() checks the server. All-zero = verify against
 * the system CAs, no SNI, and fail (a name is needed to check the host).
 * SNI and the name verified are the same unless verify_name says otherwise,
 * as Tailscale's derphttp client sends HostName as SNI but verifies a
 * DERPNode.CertName (tlsdial SetConfigExpectedCert). */
struct dc_tls_client_opts {
    const char *server_name;   /* borrowed; sent as SNI (DNS names only: an IP literal sends
                                  none) and, without verify_name, the name the certificate
                                  must match; an IPv4/IPv6 literal is matched as an IP SAN */
    const char *verify_name;   /* borrowed; the name (or IP literal, matched as an IP SAN) the
                                  certificate must match instead of server_name; not sent.
                                  NULL or "" = server_name */
    bool insecure_skip_verify; /* accept any certificate; the caller logs this at warn */
    const char *pin;           /* borrowed; "sha256-raw:<64 hex>" or NULL. When set, the leaf
                                  must hash to it and nothing else is checked (no CA, no name);
                                  it wins over insecure_skip_verify */
    const char *ca_file;       /* borrowed; PEM bundle of trusted CAs, NULL = system default */
};

/* Process-wide OpenSSL setup (OPENSSL_init_ssl; OpenSSL 3 would also do it
 * lazily). Idempotent and thread-safe; dc_tls_client_connect() calls it
 * itself. Returns 0 or -ENOMEM. Serial numbers come from libsodium's
 * randombytes_buf, so main calls sodium_init() first, as everywhere. */
int dc_tls_init(void) DC_MUST_CHECK;

/* Builds a server context from a PEM file holding the full chain (leaf first)
 * and a PEM private key, and checks they match. Returns 0 and *out (caller
 * frees with dc_tls_server_free()), or -ENOENT / -EACCES (file unreadable),
 * -EINVAL (bad PEM, key does not match) or -ENOMEM, with err naming the file
 * and OpenSSL's reason: "tls-key `/x/key.pem': key values mismatch ...". */
int dc_tls_server_new_files(const char *cert_chain_pem, const char *key_pem,
                            struct dc_tls_server **out, char *err) DC_MUST_CHECK;

/* Builds a server context with a fresh ECDSA P-256 key and a self-signed v3
 * certificate for hostname: CN=hostname, subjectAltName DNS:hostname (IP:
 * for an IPv4/IPv6 literal), valid now-1h .. now+1y, random 128-bit serial,
 * CA:FALSE, keyUsage digitalSignature, extKeyUsage serverAuth. Returns 0 and
 * *out (free with dc_tls_server_free()), -EINVAL for a bad hostname (quoted
 * in err) or -ENOMEM. Log dc_tls_server_pin() so clients can pin it. */
int dc_tls_server_new_self_signed(const char *hostname, struct dc_tls_server **out,
                                  char *err) DC_MUST_CHECK;

/* Appends derper's meta certificate (fresh Ed25519 key, serial =
 * protocol_version, CN "derpkey<hex server_pub>", valid now +-30 days,
 * basicConstraints CA:FALSE) after the chain the server already sends.
 * protocol_version must be 1..255. Call at most once, before serving.
 * Returns 0, -EINVAL, -EEXIST (already added) or -ENOMEM. */
int dc_tls_server_add_meta_cert(struct dc_tls_server *s,
                                const uint8_t server_pub[static DC_TLS_META_KEY_LEN],
                                int protocol_version, char *err) DC_MUST_CHECK;

/* Reloads a files-based server: builds a fresh context from the two files
 * exactly as dc_tls_server_new_files() does (re-adding a meta certificate
 * for the same key and version if s has one) and swaps it in, so SSL objects
 * made from dc_tls_server_ctx() afterwards use the new certificate while live
 * ones keep the old context (each SSL holds a reference). On any error s is
 * left unchanged and err says why, as dc_tls_server_new_files() would.
 * Returns 0 or its negative errno. */
int dc_tls_server_reload_files(struct dc_tls_server *s, const char *cert_chain_pem,
                               const char *key_pem, char *err) DC_MUST_CHECK;

/* Writes the leaf certificate's pin, "sha256-raw:<64 lowercase hex>", into out. */
void dc_tls_server_pin(const struct dc_tls_server *s, char out[static DC_TLS_PIN_LEN]);

/* The server's current SSL_CTX, borrowed: valid until the next
 * dc_tls_server_reload_files() or dc_tls_server_free(), so look it up for
 * each new connection. SSL objects made from it hold their own reference,
 * so they may outlive both. */
SSL_CTX *dc_tls_server_ctx(struct dc_tls_server *s);

/* Frees the server context; accepts NULL. */
void dc_tls_server_free(struct dc_tls_server *s);

/* Formats the pin of a DER certificate (len bytes) into out. Pure: hashes the
 * bytes, does not parse them. Returns 0, -EINVAL (len 0) or -ENOMEM. */
int dc_tls_pin_from_der(const uint8_t *der, size_t len,
                        char out[static DC_TLS_PIN_LEN]) DC_MUST_CHECK;
/* Formats the pin of cert (borrowed) into out. Returns 0, -EINVAL or -ENOMEM. */
int dc_tls_pin_from_x509(X509 *cert, char out[static DC_TLS_PIN_LEN]) DC_MUST_CHECK;

/* Runs a TLS 1.2+ client handshake on fd (connected TCP; blocking or not,
 * its mode is restored before returning), checking the server as o says,
 * within timeout_ms (<= 0: no limit). On success returns 0 and *out, a
 * blocking-style SSL bound to fd that holds the only reference to its own
 * SSL_CTX; the caller frees it with dc_tls_close() and still owns (closes)
 * fd. Errors, each with a "tls: ..." sentence in err naming server_name
 * (and verify_name when it differs), OpenSSL's reason and the verify result:
 *   -EINVAL       bad opts (malformed pin, verification with neither server_name
 *                 nor verify_name)
 *   -EKEYREJECTED certificate not accepted (untrusted, wrong name, pin mismatch)
 *   -ETIMEDOUT    no handshake within timeout_ms
 *   -ECONNRESET   peer closed the connection; another errno for socket errors
 *   -EPROTO       any other TLS failure; -ENOENT/-EINVAL for an unusable ca_file */
int dc_tls_client_connect(int fd, const struct dc_tls_client_opts *o, int timeout_ms, SSL **out,
                          char *err) DC_MUST_CHECK;

/* Sends close_notify if the session is up (may block briefly on a full socket
 * buffer), then frees ssl and, with it, the SSL_CTX dc_tls_client_connect()
 * made. Does not close the fd. Accepts NULL. */
void dc_tls_close(SSL *ssl);

/* Scans the chain the peer presented (SSL_get_peer_cert_chain; on a client
 * the leaf comes first) for a meta certificate: a CN of "derpkey" followed by
 * exactly 64 hex digits and a serial number from 0 to 255. On success writes
 * the key into server_pub and the serial into *version and returns 0;
 * returns -ENOENT when there is none. Pure with respect to I/O. */
int dc_tls_peer_meta_key(SSL *ssl, uint8_t server_pub[static DC_TLS_META_KEY_LEN],
                         int *version) DC_MUST_CHECK;

#endif
