/* test_mesh_peers_file: the --mesh-peers-file parser (derp_mesh_peers_parse
 * in relay/derp_mesh.c): comments, blanks, CRLF, bad lines reported with
 * their numbers and skipped, and the cap on peers. */
#include "derp_server.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

struct bad {
    unsigned lines[8];
    char why[8][DC_ERR_LEN];
    size_t n;
};

static void on_bad(void *data, unsigned line_no, const char *err)
{
    struct bad *b = data;
    if (b->n < 8) {
        b->lines[b->n] = line_no;
        snprintf(b->why[b->n], sizeof(b->why[b->n]), "%s", err);
    }
    b->n++;
}

static void test_urls_comments_and_blanks(void **state)
{
    (void)state;
    char text[] = "# the relays of region eu\n"
                  "http://10.0.0.5:3340/derp\n"
                  "\n"
                  "   https://relay-1.example.com/derp   # with a comment\r\n"
                  "relay-2.example.com\n"
                  "\thttp://[fd00::7]:3340/derp";
    const char *urls[8];
    struct bad b = {0};
    size_t n = derp_mesh_peers_parse(text, strlen(text), urls, 8, on_bad, &b);
    assert_int_equal(b.n, 0);
    assert_int_equal(n, 4);
    assert_string_equal(urls[0], "http://10.0.0.5:3340/derp");
    assert_string_equal(urls[1], "https://relay-1.example.com/derp");
    assert_string_equal(urls[2], "relay-2.example.com");
    assert_string_equal(urls[3], "http://[fd00::7]:3340/derp");
}

static void test_bad_lines_are_numbered_and_skipped(void **state)
{
    (void)state;
    char text[] = "ftp://relay.example.com/derp\n"
                  "http://10.0.0.5:3340/derp\n"
                  "http://a b/derp\n"
                  "http://c\x01/derp\n"
                  "http://10.0.0.6:3340/derp\n";
    const char *urls[8];
    struct bad b = {0};
    size_t n = derp_mesh_peers_parse(text, strlen(text), urls, 8, on_bad, &b);
    assert_int_equal(n, 2);
    assert_string_equal(urls[0], "http://10.0.0.5:3340/derp");
    assert_string_equal(urls[1], "http://10.0.0.6:3340/derp");
    assert_int_equal(b.n, 3);
    assert_int_equal(b.lines[0], 1);
    assert_int_equal(b.lines[1], 3);
    assert_int_equal(b.lines[2], 4);
    assert_non_null(strstr(b.why[1], "blank inside"));
    assert_non_null(strstr(b.why[2], "control byte"));
}

static void test_more_peers_than_room(void **state)
{
    (void)state;
    char text[] = "http://10.0.0.1/derp\nhttp://10.0.0.2/derp\nhttp://10.0.0.3/derp\n";
    const char *urls[2];
    struct bad b = {0};
    size_t n = derp_mesh_peers_parse(text, strlen(text), urls, 2, on_bad, &b);
    assert_int_equal(n, 2);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.lines[0], 3);
    char empty[] = "";
    assert_int_equal(derp_mesh_peers_parse(empty, 0, urls, 2, on_bad, &b), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls_comments_and_blanks),
        cmocka_unit_test(test_bad_lines_are_numbered_and_skipped),
        cmocka_unit_test(test_more_peers_than_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
