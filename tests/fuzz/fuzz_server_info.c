/* fuzz_server_info: derp_server_info_parse() on arbitrary bytes, the JSON
 * a server boxes into its ServerInfo frame (relay/derp_frame.c).
 *
 * Checks: the same answer with and without err; a failure fills err with a
 * NUL-terminated sentence; a success formats into JSON that parses back to
 * the same struct and formats again to the same bytes. Nothing outlives the
 * call. */
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
    struct derp_server_info si, back, quiet;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = derp_server_info_parse((const char *)data, size, &si, err);
    check(rc == 0 || rc == -EINVAL);
    check(derp_server_info_parse((const char *)data, size, &quiet, NULL) == rc);
    if (rc != 0) {
        check(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return 0;
    }
    check(si.version == quiet.version &&
          si.token_bucket_bytes_per_sec == quiet.token_bucket_bytes_per_sec &&
          si.token_bucket_bytes_burst == quiet.token_bucket_bytes_burst);

    /* Every accepted value fits: three int32 fields and their names. */
    char out[DERP_INFO_JSON_MAX];
    int n = derp_server_info_format(&si, out, sizeof(out));
    check(n > 0 && (size_t)n < sizeof(out) && out[n] == '\0');
    check(derp_server_info_parse(out, (size_t)n, &back, err) == 0);
    check(back.version == si.version &&
          back.token_bucket_bytes_per_sec == si.token_bucket_bytes_per_sec &&
          back.token_bucket_bytes_burst == si.token_bucket_bytes_burst);
    char again[DERP_INFO_JSON_MAX];
    check(derp_server_info_format(&back, again, sizeof(again)) == n);
    check(memcmp(out, again, (size_t)n) == 0);
    return 0;
}
