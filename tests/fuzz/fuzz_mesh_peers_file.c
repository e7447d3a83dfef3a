/* fuzz_mesh_peers_file: derp_mesh_peers_parse() (relay/derp_mesh.c), the
 * --mesh-peers-file parser, on arbitrary bytes.
 *
 * Checks: bad lines are reported with strictly rising line numbers within
 * the input's line count and a reason; every URL returned is a NUL-terminated
 * string inside the (copied) text, non-empty, without blanks or control
 * bytes; at most max URLs. Frees all. */
#include "derp_server.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_URLS 8

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void on_bad(void *data, unsigned line, const char *why)
{
    unsigned *last = data;
    check(line > *last && why != NULL && why[0] != '\0');
    *last = line;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    check(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    const char *urls[MAX_URLS];
    unsigned last = 0;
    size_t n = derp_mesh_peers_parse(text, size, urls, MAX_URLS, on_bad, &last);
    size_t nlines = 1;
    for (size_t i = 0; i < size; i++) {
        nlines += data[i] == '\n';
    }
    check(n <= MAX_URLS && last <= nlines);
    for (size_t i = 0; i < n; i++) {
        check(urls[i] >= text && urls[i] < text + size);
        size_t len = strlen(urls[i]);
        check(len > 0 && urls[i] + len <= text + size);
        for (size_t k = 0; k < len; k++) {
            unsigned char ch = (unsigned char)urls[i][k];
            check(ch > 0x20 && ch != 0x7f && ch != '#');
        }
    }
    free(text);
    return 0;
}
