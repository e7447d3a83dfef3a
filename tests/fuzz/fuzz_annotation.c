/* fuzz_annotation: the loft.sh/derp-endpoint and loft.sh/derp-endpoint-insecure parsers of
 * controller/annot.c on arbitrary bytes (the whole input is one annotation value).
 *
 * Checks: the same answer with and without err; a failure fills err with one printable,
 * NUL-terminated line and leaves the endpoint zeroed; an accepted endpoint has a lower-case
 * host of at most 253 bytes, at most one address family, and formatted back as host[:port]
 * (brackets for IPv6) it parses to exactly the same result; insecure accepts only `true' and
 * `false'. Nothing is allocated. */
#include "annot.h"

#include <errno.h>
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

static void check_err(const char *err, const char *prefix)
{
    check(memchr(err, '\0', DC_ERR_LEN) != NULL);
    check(strncmp(err, prefix, strlen(prefix)) == 0);
    for (const char *p = err; *p != '\0'; p++) {
        check(*p >= 0x20 && *p < 0x7f);
    }
}

static bool same(const struct annot_endpoint *a, const struct annot_endpoint *b)
{
    return strcmp(a->host, b->host) == 0 && a->port == b->port && a->is_ipv4 == b->is_ipv4 &&
           a->is_ipv6 == b->is_ipv6;
}

static void check_endpoint(const char *s, size_t len)
{
    struct annot_endpoint ep, quiet;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = annot_endpoint_parse(s, len, &ep, err);
    check(rc == 0 || rc == -EINVAL);
    check(annot_endpoint_parse(s, len, &quiet, NULL) == rc);
    if (rc != 0) {
        static const struct annot_endpoint zero;
        check(memcmp(&ep, &zero, sizeof(ep)) == 0);
        check_err(err, "derp-endpoint: ");
        return;
    }
    check(same(&ep, &quiet));
    size_t host_len = strnlen(ep.host, sizeof(ep.host));
    check(host_len >= 1 && host_len <= ANNOT_HOST_MAX_LEN);
    check(!(ep.is_ipv4 && ep.is_ipv6));
    for (size_t i = 0; i < host_len; i++) {
        check(!(ep.host[i] >= 'A' && ep.host[i] <= 'Z'));
    }
    /* Round trip: host[:port], with brackets for IPv6 when a port follows or always. */
    char text[ANNOT_ENDPOINT_MAX_LEN + 16];
    const char *open = ep.is_ipv6 ? "[" : "", *close = ep.is_ipv6 ? "]" : "";
    int n = ep.port != 0
                ? snprintf(text, sizeof(text), "%s%s%s:%u", open, ep.host, close, (unsigned)ep.port)
                : snprintf(text, sizeof(text), "%s%s%s", open, ep.host, close);
    check(n > 0 && (size_t)n < sizeof(text));
    struct annot_endpoint again;
    check(annot_endpoint_parse(text, (size_t)n, &again, err) == 0);
    check(same(&ep, &again));
    if (ep.is_ipv6 && ep.port == 0) {
        check(annot_endpoint_parse(ep.host, host_len, &again, err) == 0 && same(&ep, &again));
    }
}

static void check_insecure(const char *s, size_t len)
{
    bool v = false, quiet = false;
    char err[DC_ERR_LEN];
    memset(err, 'x', sizeof(err));
    int rc = annot_insecure_parse(s, len, &v, err);
    check(annot_insecure_parse(s, len, &quiet, NULL) == rc);
    if (rc == 0) {
        check(v == quiet);
        check(len == (v ? 4u : 5u) && memcmp(s, v ? "true" : "false", len) == 0);
        return;
    }
    check(rc == -EINVAL);
    check_err(err, "derp-endpoint-insecure: not `true' or `false': `");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_endpoint((const char *)data, size);
    check_insecure((const char *)data, size);
    return 0;
}
