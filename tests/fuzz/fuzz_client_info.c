/* fuzz_client_info: derp_client_info_parse() on arbitrary bytes, the JSON a
 * client boxes into its ClientInfo frame (relay/derp_frame.c).
 *
 * Checks: the same answer with and without err; a failure fills err with a
 * NUL-terminated sentence; a success formats (or is -EMSGSIZE when escaping
 * makes it longer than DERP_INFO_JSON_MAX) into JSON that parses back to the
 * same fields, AppName included, and formatting that again gives the same
 * bytes. The parser cuts a long AppName at a UTF-8 character boundary, so any
 * name it returns must format (never -EINVAL) and round-trip exactly.
 * Everything is freed (jansson objects live only inside the calls). */
#include "derp_frame.h"

#include <errno.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct derp_client_info ci, back, quiet;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = derp_client_info_parse((const char *)data, size, &ci, err);
    check(rc == 0 || rc == -EINVAL);
    check(derp_client_info_parse((const char *)data, size, &quiet, NULL) == rc);
    if (rc != 0) {
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return 0;
    }
    check(memcmp(&ci, &quiet, sizeof(ci)) == 0);
    check(memchr(ci.app_name, '\0', sizeof(ci.app_name)) != NULL);

    char out[DERP_INFO_JSON_MAX];
    int n = derp_client_info_format(&ci, out, sizeof(out));
    if (n == -EMSGSIZE) {
        return 0;
    }
    check(n > 0 && (size_t)n < sizeof(out) && out[n] == '\0');
    check(derp_client_info_parse(out, (size_t)n, &back, err) == 0);
    check(back.version == ci.version && back.has_mesh_key == ci.has_mesh_key &&
          back.can_ack_pings == ci.can_ack_pings && back.is_prober == ci.is_prober);
    if (ci.has_mesh_key) {
        check(memcmp(back.mesh_key, ci.mesh_key, sizeof(ci.mesh_key)) == 0);
    }
    check(strcmp(back.app_name, ci.app_name) == 0);

    char again[DERP_INFO_JSON_MAX];
    int m = derp_client_info_format(&back, again, sizeof(again));
    check(m == n && memcmp(out, again, (size_t)n + 1) == 0);
    return 0;
}
