/* fuzz_admit_response: derp_admit_response_parse() (relay/derp_policy.c),
 * the admission controller's {"Allow":bool} answer, on arbitrary bytes, and
 * derp_admit_request_format() on keys and addresses taken from them.
 *
 * Checks: the same answer with and without err; a failure fills err with a
 * sentence and leaves allow false; the canonical encodings of both answers
 * parse back to themselves; a request formats within its limit, names the
 * key as "nodekey:<hex>" and parses as a JSON object. Frees everything. */
#include "derp_key.h"
#include "derp_policy.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_response(const char *body, size_t len)
{
    char err[DC_ERR_LEN];
    bool allow = true, quiet = true;
    memset(err, 'x', sizeof(err));
    int rc = derp_admit_response_parse(body, len, &allow, err);
    check(rc == 0 || rc == -EINVAL);
    check(derp_admit_response_parse(body, len, &quiet, NULL) == rc);
    check(allow == quiet);
    if (rc != 0) {
        check(!allow && memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    }
    check(derp_admit_response_parse("{\"Allow\":true}", 14, &allow, err) == 0 && allow);
    check(derp_admit_response_parse("{\"Allow\":false}", 15, &allow, err) == 0 && !allow);
}

static void check_request(const uint8_t *data, size_t size)
{
    uint8_t key[DERP_KEY_LEN] = {0}, ip16[16] = {0};
    memcpy(key, data, size < sizeof(key) ? size : sizeof(key));
    if (size > sizeof(key)) {
        size_t rest = size - sizeof(key);
        memcpy(ip16, data + sizeof(key), rest < sizeof(ip16) ? rest : sizeof(ip16));
    }
    char out[DERP_ADMIT_REQUEST_MAX];
    int n = derp_admit_request_format(key, ip16, out, sizeof(out));
    check(n > 0 && (size_t)n < sizeof(out));
    char hex[DERP_KEY_HEX_LEN + 1];
    derp_key_hex(key, hex);
    check(strstr(out, hex) != NULL && strstr(out, DERP_NODEKEY_PREFIX) != NULL);
    json_t *o = json_loadb(out, (size_t)n, 0, NULL);
    check(o != NULL && json_is_object(o) && json_is_string(json_object_get(o, "NodePublic")) &&
          json_is_string(json_object_get(o, "Source")));
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_response((const char *)data, size);
    check_request(data, size);
    return 0;
}
