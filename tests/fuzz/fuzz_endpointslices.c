/* fuzz_endpointslices: mesh_peers_format() (controller/mesh_peers.c), which
 * turns a watch store of EndpointSlice projections into mesh URLs, on
 * arbitrary JSON (what an API server, or whoever can write EndpointSlices,
 * may send).
 *
 * Checks: no crash for any JSON; the output is newline-terminated lines,
 * each "http://" + an address of hex digits, dots and colons (IPv6 in
 * brackets) + ":" + a port 1..65535 + "/derp", sorted and without repeats,
 * at most MESH_PEERS_MAX. Frees all. */
#include "mesh_peers.h"

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

static void check_line(const char *line, size_t len)
{
    static const char head[] = "http://", tail[] = "/derp";
    check(len > sizeof(head) + sizeof(tail) && memcmp(line, head, sizeof(head) - 1) == 0);
    check(memcmp(line + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1) == 0);
    const char *colon = NULL;
    for (const char *p = line + sizeof(head) - 1; p < line + len - (sizeof(tail) - 1); p++) {
        check(strchr("0123456789abcdefABCDEF.:[]", *p) != NULL);
        colon = *p == ':' ? p : colon;
    }
    check(colon != NULL);
    long port = strtol(colon + 1, NULL, 10);
    check(port >= 1 && port <= 65535);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t e;
    json_t *store = json_loadb((const char *)data, size, 0, &e);
    if (store == NULL) {
        return 0;
    }
    for (int named = 0; named < 2; named++) {
        char *out = mesh_peers_format(store, named ? "derp" : "");
        check(out != NULL);
        size_t lines = 0;
        const char *prev = NULL;
        size_t prev_len = 0;
        for (const char *p = out; *p;) {
            const char *nl = strchr(p, '\n');
            check(nl != NULL);
            size_t len = (size_t)(nl - p);
            check_line(p, len);
            if (prev != NULL) {
                size_t m = prev_len < len ? prev_len : len;
                int c = memcmp(prev, p, m);
                check(c < 0 || (c == 0 && prev_len < len));
            }
            prev = p;
            prev_len = len;
            lines++;
            p = nl + 1;
        }
        check(lines <= MESH_PEERS_MAX);
        free(out);
    }
    json_decref(store);
    return 0;
}
