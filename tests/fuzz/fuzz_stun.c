/* fuzz_stun: both STUN parsers (relay/stun.c) on arbitrary datagrams.
 *
 * Whatever parses must survive a round trip: an accepted request's txid
 * re-encodes into a request the parser accepts with the same txid, and an
 * accepted response's txid and address re-encode into a response that parses
 * to the same values. Nothing is allocated. */
#include "stun.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Compares what matters of two parsed addresses: family, address, port. */
static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return 0;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port &&
               memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr)) == 0;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static void check_request(const uint8_t *data, size_t size)
{
    uint8_t txid[STUN_TXID_LEN], again[STUN_TXID_LEN];
    char err[DC_ERR_LEN];
    if (stun_parse_binding_request(data, size, txid, err) != 0) {
        return;
    }
    uint8_t req[STUN_BINDING_REQUEST_LEN];
    if (stun_encode_binding_request(txid, req, sizeof(req)) != sizeof(req) ||
        stun_parse_binding_request(req, sizeof(req), again, NULL) != 0 ||
        memcmp(txid, again, STUN_TXID_LEN) != 0) {
        abort();
    }
}

static void check_response(const uint8_t *data, size_t size)
{
    uint8_t txid[STUN_TXID_LEN], again[STUN_TXID_LEN];
    struct sockaddr_storage addr, addr2;
    char err[DC_ERR_LEN];
    if (stun_parse_binding_response(data, size, txid, &addr, err) != 0) {
        return;
    }
    uint8_t out[STUN_BINDING_RESPONSE_MAX_LEN];
    size_t len = stun_encode_binding_response(txid, &addr, out, sizeof(out));
    if (len == 0 || stun_parse_binding_response(out, len, again, &addr2, NULL) != 0 ||
        memcmp(txid, again, STUN_TXID_LEN) != 0 || !same_addr(&addr, &addr2)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_request(data, size);
    check_response(data, size);
    return 0;
}
