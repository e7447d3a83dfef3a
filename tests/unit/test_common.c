/* test_common: the shared pieces of libdc_common: dc_buf (common/buf.c), the
 * epoll loop (common/loop.c) and the socket helpers (common/net.c). The live
 * cases use pipes and loopback only. */
#include "buf.h"
#include "loop.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* Upper bound on one loop run in the live tests; only reached on failure. */
#define LIVE_GUARD_MS 5000

/* ---- dc_buf ---- */

static void test_common_buf_limits(void **state)
{
    (void)state;
    struct dc_buf b;
    dc_buf_init(&b, 10);
    assert_int_equal(dc_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 10);
    /* Over the max: refused, contents unchanged. */
    assert_int_equal(dc_buf_append(&b, "x", 1), -EMSGSIZE);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.p, "0123456789", 10);
    assert_int_equal(dc_buf_printf(&b, "%d", 7), -EMSGSIZE);
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.p, "0123456789", 10);
    assert_true(b.cap <= 10);
    /* An empty append always fits. */
    assert_int_equal(dc_buf_append(&b, NULL, 0), 0);

    /* Room again after consuming; a too-big append still changes nothing. */
    dc_buf_consume(&b, 4);
    assert_int_equal(dc_buf_append(&b, "abcde", 5), -EMSGSIZE);
    assert_int_equal(b.len, 6);
    assert_memory_equal(b.p, "456789", 6);
    assert_int_equal(dc_buf_append(&b, "abcd", 4), 0);
    assert_memory_equal(b.p, "456789abcd", 10);
    /* A length so large that len + n would wrap. */
    assert_int_equal(dc_buf_append(&b, "x", SIZE_MAX), -EMSGSIZE);
    assert_int_equal(b.len, 10);
    dc_buf_deinit(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 10); /* kept */
    dc_buf_deinit(&b);           /* twice is fine */

    /* The all-zero buffer has no max: every non-empty append fails. */
    struct dc_buf z = {0};
    assert_int_equal(dc_buf_append(&z, "x", 1), -EMSGSIZE);
    assert_int_equal(dc_buf_printf(&z, "x"), -EMSGSIZE);
    assert_int_equal(z.len, 0);
    dc_buf_deinit(&z);
}

static void test_common_buf_growth(void **state)
{
    (void)state;
    struct dc_buf b;
    dc_buf_init(&b, 1u << 20);
    /* Many small appends: contents are the concatenation. */
    for (int i = 0; i < 10000; i++) {
        uint8_t c = (uint8_t)i;
        assert_int_equal(dc_buf_append(&b, &c, 1), 0);
    }
    assert_int_equal(b.len, 10000);
    assert_true(b.cap >= b.len);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(b.p[i], (uint8_t)i);
    }
    dc_buf_deinit(&b);

    /* Growth stops at max, which is then usable to the last byte. */
    dc_buf_init(&b, 1000);
    char block[1000];
    memset(block, 'q', sizeof(block));
    assert_int_equal(dc_buf_append(&b, block, 999), 0);
    assert_int_equal(dc_buf_append(&b, block, 1), 0);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap <= 1000);
    dc_buf_deinit(&b);
}

static void test_common_buf_printf(void **state)
{
    (void)state;
    struct dc_buf b;
    dc_buf_init(&b, 1u << 16);
    assert_int_equal(dc_buf_printf(&b, "%s=%d;", "a", 1), 0);
    assert_int_equal(dc_buf_printf(&b, "%s=%d;", "bb", 22), 0);
    assert_int_equal(b.len, strlen("a=1;bb=22;")); /* no NUL counted */
    assert_memory_equal(b.p, "a=1;bb=22;", b.len);

    /* Longer than the formatter's stack buffer: grows and stays exact. */
    char big[3000];
    for (size_t i = 0; i < sizeof(big) - 1; i++) {
        big[i] = (char)('A' + i % 26);
    }
    big[sizeof(big) - 1] = '\0';
    size_t before = b.len;
    assert_int_equal(dc_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.len, before + strlen(big) + 2);
    assert_int_equal(b.p[before], '[');
    assert_memory_equal(b.p + before + 1, big, strlen(big));
    assert_int_equal(b.p[b.len - 1], ']');
    /* Appends after printf continue right after the text. */
    assert_int_equal(dc_buf_append(&b, "!", 1), 0);
    assert_int_equal(b.p[b.len - 1], '!');
    assert_int_equal(b.p[b.len - 2], ']');
    dc_buf_deinit(&b);

    /* Long text over the max: refused, nothing appended. */
    dc_buf_init(&b, 2000);
    assert_int_equal(dc_buf_append(&b, "keep", 4), 0);
    assert_int_equal(dc_buf_printf(&b, "%s", big), -EMSGSIZE);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "keep", 4);
    /* Short text filling the max exactly fits (no NUL is stored). */
    dc_buf_deinit(&b);
    dc_buf_init(&b, 10);
    assert_int_equal(dc_buf_printf(&b, "%s", "0123456789"), 0);
    assert_int_equal(b.len, 10);
    dc_buf_deinit(&b);
}

/* Text of 512 bytes or more (past the formatter's stack buffer) may fill the
 * buffer up to exactly its max: only the text counts, not a NUL. */
static void test_common_buf_printf_long_at_max(void **state)
{
    (void)state;
    char text[702];
    for (size_t i = 0; i < sizeof(text) - 1; i++) {
        text[i] = (char)('a' + i % 26);
    }
    text[sizeof(text) - 1] = '\0';

    struct dc_buf b;
    /* Exactly the max, from empty, at and past the 512-byte stack buffer. */
    static const size_t sizes[] = {512, 513, 600, 701};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        dc_buf_init(&b, sizes[i]);
        int rc = dc_buf_printf(&b, "%.*s", (int)sizes[i], text);
        if (rc != 0) {
            fail_msg("%zu bytes into max %zu: rc %d", sizes[i], sizes[i], rc);
        }
        assert_int_equal(b.len, sizes[i]);
        assert_memory_equal(b.p, text, sizes[i]);
        /* Full: one more byte is refused. */
        assert_int_equal(dc_buf_printf(&b, "x"), -EMSGSIZE);
        assert_int_equal(b.len, sizes[i]);
        dc_buf_deinit(&b);
    }

    /* max 600: 600 bytes fit, 601 do not and change nothing. */
    dc_buf_init(&b, 600);
    assert_int_equal(dc_buf_printf(&b, "%.*s", 601, text), -EMSGSIZE);
    assert_int_equal(b.len, 0);
    assert_int_equal(dc_buf_printf(&b, "%.*s", 600, text), 0);
    assert_int_equal(b.len, 600);
    assert_memory_equal(b.p, text, 600);
    dc_buf_deinit(&b);

    /* After earlier bytes: the total may reach the max, not pass it. */
    dc_buf_init(&b, 600);
    assert_int_equal(dc_buf_append(&b, "keep", 4), 0);
    assert_int_equal(dc_buf_printf(&b, "%.*s", 597, text), -EMSGSIZE);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "keep", 4);
    assert_int_equal(dc_buf_printf(&b, "%.*s", 596, text), 0);
    assert_int_equal(b.len, 600);
    assert_memory_equal(b.p, "keep", 4);
    assert_memory_equal(b.p + 4, text, 596);
    assert_int_equal(dc_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 600);
    dc_buf_deinit(&b);
}

static void test_common_buf_consume(void **state)
{
    (void)state;
    struct dc_buf b;
    dc_buf_init(&b, 64);
    assert_int_equal(dc_buf_append(&b, "abcdef", 6), 0);
    dc_buf_consume(&b, 0);
    assert_int_equal(b.len, 6);
    dc_buf_consume(&b, 2);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.p, "cdef", 4);
    dc_buf_consume(&b, 4);
    assert_int_equal(b.len, 0);
    assert_int_equal(dc_buf_append(&b, "xyz", 3), 0);
    dc_buf_consume(&b, 100); /* more than there is: empties */
    assert_int_equal(b.len, 0);
    assert_int_equal(dc_buf_append(&b, "12", 2), 0);
    uint8_t *mem = b.p;
    dc_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, mem); /* memory kept */
    assert_int_equal(dc_buf_append(&b, "9", 1), 0);
    assert_memory_equal(b.p, "9", 1);
    dc_buf_deinit(&b);
}

/* ---- loop ---- */

/* What the live loop tests record. */
struct loop_rec {
    struct dc_loop *loop;
    int order[16]; /* timer ids in firing order */
    int fired;     /* entries in order */
    uint64_t due[16];
    int hook_calls;       /* before-sleep hook runs */
    int io_calls;         /* io callbacks */
    int io_seen_hook[16]; /* hook_calls when each io callback ran */
    bool is_timed_out;    /* the guard timer fired */
    int stop_after;       /* stop the loop after this many timers */
    int fds[4];
    struct dc_io ios[2];
    struct dc_timer *victim; /* stopped by the first timer */
};

struct rec_timer {
    struct dc_timer t;
    int id;
};

static void guard_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct loop_rec *r = t->data;
    r->is_timed_out = true;
    dc_loop_stop(loop);
}

static void record_timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct loop_rec *r = t->data;
    struct rec_timer *rt = (struct rec_timer *)t;
    assert_false(t->is_active);
    assert_true(dc_now_ms() >= t->due_ms);
    r->due[r->fired] = t->due_ms;
    r->order[r->fired++] = rt->id;
    if (r->victim != NULL) {
        dc_timer_stop(loop, r->victim);
        r->victim = NULL;
    }
    if (r->fired == r->stop_after) {
        dc_loop_stop(loop);
    }
}

static void test_common_loop_timers_in_due_order(void **state)
{
    (void)state;
    struct loop_rec r = {0};
    r.loop = dc_loop_new();
    assert_non_null(r.loop);
    static const uint64_t delays[] = {40, 0, 25, 10, 5, 30};
    struct rec_timer ts[6];
    memset(ts, 0, sizeof(ts));
    for (int i = 0; i < 6; i++) {
        ts[i].id = i;
        ts[i].t.cb = record_timer_cb;
        ts[i].t.data = &r;
        dc_timer_start(r.loop, &ts[i].t, delays[i]);
    }
    struct dc_timer guard = {.cb = guard_cb, .data = &r};
    dc_timer_start(r.loop, &guard, LIVE_GUARD_MS);
    r.stop_after = 6;
    assert_int_equal(dc_loop_run(r.loop), 0);
    assert_false(r.is_timed_out);
    assert_int_equal(r.fired, 6);
    /* Each fired once, in order of deadline. */
    int seen[6] = {0};
    for (int i = 0; i < 6; i++) {
        seen[r.order[i]]++;
        if (i > 0) {
            assert_true(r.due[i - 1] <= r.due[i]);
        }
    }
    for (int i = 0; i < 6; i++) {
        assert_int_equal(seen[i], 1);
        assert_false(ts[i].t.is_active);
    }
    dc_timer_stop(r.loop, &guard);
    dc_loop_free(r.loop);
}

static void test_common_loop_timer_stop_and_rearm(void **state)
{
    (void)state;
    struct loop_rec r = {0};
    r.loop = dc_loop_new();
    assert_non_null(r.loop);
    struct rec_timer a = {.id = 0}, b = {.id = 1}, c = {.id = 2}, d = {.id = 3};
    struct rec_timer *all[] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++) {
        all[i]->t.cb = record_timer_cb;
        all[i]->t.data = &r;
    }
    /* b is stopped before the run, c is stopped by a's callback although it is
     * already due, d is armed twice and fires once. */
    dc_timer_start(r.loop, &a.t, 0);
    dc_timer_start(r.loop, &b.t, 0);
    dc_timer_start(r.loop, &c.t, 1);
    dc_timer_start(r.loop, &d.t, 1000);
    dc_timer_start(r.loop, &d.t, 20);
    dc_timer_stop(r.loop, &b.t);
    dc_timer_stop(r.loop, &b.t); /* twice is fine */
    r.victim = &c.t;
    usleep(5000); /* a and c both due at the first pass */
    struct dc_timer guard = {.cb = guard_cb, .data = &r};
    dc_timer_start(r.loop, &guard, LIVE_GUARD_MS);
    r.stop_after = 2;
    assert_int_equal(dc_loop_run(r.loop), 0);
    assert_false(r.is_timed_out);
    assert_int_equal(r.fired, 2);
    assert_int_equal(r.order[0], 0);
    assert_int_equal(r.order[1], 3);
    assert_false(c.t.is_active);
    dc_timer_stop(r.loop, &guard);

    /* The loop runs again after a stop. */
    dc_timer_start(r.loop, &b.t, 0);
    r.stop_after = 3;
    dc_timer_start(r.loop, &guard, LIVE_GUARD_MS);
    assert_int_equal(dc_loop_run(r.loop), 0);
    assert_int_equal(r.fired, 3);
    assert_int_equal(r.order[2], 1);
    dc_timer_stop(r.loop, &guard);
    dc_loop_free(r.loop);
}

static void pipe_read_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    struct loop_rec *r = io->data;
    assert_true(events & DC_IO_READ);
    char c;
    assert_int_equal(read(io->fd, &c, 1), 1);
    r->io_seen_hook[r->io_calls++] = r->hook_calls;
}

/* The hook wakes the loop again by writing to the pipe, twice, then stops. */
static void hook_cb(struct dc_loop *loop, void *data)
{
    struct loop_rec *r = data;
    r->hook_calls++;
    if (r->hook_calls < 3) {
        assert_int_equal(write(r->fds[1], "x", 1), 1);
    } else {
        dc_loop_stop(loop);
    }
}

static void test_common_loop_before_sleep_once_per_wakeup(void **state)
{
    (void)state;
    struct loop_rec r = {0};
    r.loop = dc_loop_new();
    assert_non_null(r.loop);
    assert_int_equal(pipe2(r.fds, O_NONBLOCK | O_CLOEXEC), 0);
    r.ios[0] = (struct dc_io){.fd = r.fds[0], .cb = pipe_read_cb, .data = &r};
    assert_int_equal(dc_io_start(r.loop, &r.ios[0], DC_IO_READ), 0);
    assert_true(r.ios[0].is_active);
    dc_loop_set_before_sleep(r.loop, hook_cb, &r);
    struct dc_timer guard = {.cb = guard_cb, .data = &r};
    dc_timer_start(r.loop, &guard, LIVE_GUARD_MS);
    assert_int_equal(write(r.fds[1], "x", 1), 1);

    assert_int_equal(dc_loop_run(r.loop), 0);
    assert_false(r.is_timed_out);
    assert_int_equal(r.io_calls, 3);
    assert_int_equal(r.hook_calls, 3);
    /* Exactly one hook run between consecutive io callbacks, none before the first. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.io_seen_hook[i], i);
    }
    /* Removing the hook: it is not called again. */
    dc_loop_set_before_sleep(r.loop, NULL, NULL);
    dc_io_stop(r.loop, &r.ios[0]);
    assert_false(r.ios[0].is_active);
    dc_io_stop(r.loop, &r.ios[0]); /* twice is fine */
    dc_timer_stop(r.loop, &guard);
    close(r.fds[0]);
    close(r.fds[1]);
    dc_loop_free(r.loop);
}

/* Both pipes are ready in the same batch; whichever callback runs first
 * stops the other watch, which must then not be called. */
static void stop_other_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)events;
    struct loop_rec *r = io->data;
    r->io_calls++;
    struct dc_io *other = io == &r->ios[0] ? &r->ios[1] : &r->ios[0];
    dc_io_stop(loop, other);
    dc_io_stop(loop, io); /* and itself, from inside its own callback */
}

static void stop_hook_cb(struct dc_loop *loop, void *data)
{
    struct loop_rec *r = data;
    r->hook_calls++;
    dc_loop_stop(loop);
}

static void test_common_loop_io_stop_in_same_batch(void **state)
{
    (void)state;
    struct loop_rec r = {0};
    r.loop = dc_loop_new();
    assert_non_null(r.loop);
    assert_int_equal(pipe2(r.fds, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(pipe2(r.fds + 2, O_NONBLOCK | O_CLOEXEC), 0);
    r.ios[0] = (struct dc_io){.fd = r.fds[0], .cb = stop_other_cb, .data = &r};
    r.ios[1] = (struct dc_io){.fd = r.fds[2], .cb = stop_other_cb, .data = &r};
    assert_int_equal(dc_io_start(r.loop, &r.ios[0], DC_IO_READ), 0);
    assert_int_equal(dc_io_start(r.loop, &r.ios[1], DC_IO_READ), 0);
    assert_int_equal(write(r.fds[1], "a", 1), 1);
    assert_int_equal(write(r.fds[3], "b", 1), 1);
    dc_loop_set_before_sleep(r.loop, stop_hook_cb, &r);
    assert_int_equal(dc_loop_run(r.loop), 0);
    assert_int_equal(r.hook_calls, 1);
    assert_int_equal(r.io_calls, 1);
    assert_false(r.ios[0].is_active);
    assert_false(r.ios[1].is_active);
    for (int i = 0; i < 4; i++) {
        close(r.fds[i]);
    }
    dc_loop_free(r.loop);
}

struct pipe_state {
    int fds[2];
    struct dc_io rd, wr;
    uint32_t rd_events, wr_events;
    char got[16];
    size_t got_len;
    bool is_hup;
    bool is_timed_out;
};

static void pipe_data_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    struct pipe_state *p = io->data;
    p->rd_events |= events;
    ssize_t n = read(io->fd, p->got + p->got_len, sizeof(p->got) - p->got_len);
    if (n > 0) {
        p->got_len += (size_t)n;
    }
    if (events & DC_IO_HUP) {
        p->is_hup = true;
        dc_io_stop(loop, io);
        dc_loop_stop(loop);
    }
}

static void pipe_writable_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    struct pipe_state *p = io->data;
    p->wr_events |= events;
    assert_int_equal(write(io->fd, "hello", 5), 5);
    /* Done writing: hang up, so the reader sees data then HUP. */
    dc_io_stop(loop, io);
    close(p->fds[1]);
    p->fds[1] = -1;
}

static void pipe_guard_cb(struct dc_loop *loop, struct dc_timer *t)
{
    struct pipe_state *p = t->data;
    p->is_timed_out = true;
    dc_loop_stop(loop);
}

static void test_common_loop_io_pipe(void **state)
{
    (void)state;
    struct dc_loop *loop = dc_loop_new();
    assert_non_null(loop);
    struct pipe_state p = {0};
    assert_int_equal(pipe2(p.fds, O_NONBLOCK | O_CLOEXEC), 0);
    p.rd = (struct dc_io){.fd = p.fds[0], .cb = pipe_data_cb, .data = &p};
    p.wr = (struct dc_io){.fd = p.fds[1], .cb = pipe_writable_cb, .data = &p};
    assert_int_equal(dc_io_start(loop, &p.rd, DC_IO_READ), 0);
    assert_int_equal(dc_io_start(loop, &p.wr, DC_IO_WRITE), 0);
    assert_int_equal(p.wr.events, DC_IO_WRITE);
    /* Changing the set of an active watch, and back. */
    assert_int_equal(dc_io_start(loop, &p.rd, DC_IO_READ | DC_IO_WRITE), 0);
    assert_int_equal(p.rd.events, DC_IO_READ | DC_IO_WRITE);
    assert_int_equal(dc_io_start(loop, &p.rd, DC_IO_READ), 0);
    struct dc_timer guard = {.cb = pipe_guard_cb, .data = &p};
    dc_timer_start(loop, &guard, LIVE_GUARD_MS);

    assert_int_equal(dc_loop_run(loop), 0);
    assert_false(p.is_timed_out);
    assert_true(p.wr_events & DC_IO_WRITE);
    assert_true(p.rd_events & DC_IO_READ);
    assert_true(p.is_hup);
    assert_int_equal(p.got_len, 5);
    assert_memory_equal(p.got, "hello", 5);
    dc_timer_stop(loop, &guard);
    close(p.fds[0]);

    /* A closed fd cannot be watched. */
    struct dc_io bad = {.fd = p.fds[0]};
    assert_int_equal(dc_io_start(loop, &bad, DC_IO_READ), -EBADF);
    assert_false(bad.is_active);
    dc_loop_free(loop);
    dc_loop_free(NULL);
}

/* ---- net ---- */

static void test_common_net_split_hostport(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *host;
        uint16_t port;
    } ok[] = {
        {"example.com:443", "example.com", 443},
        {"10.0.0.5:8080", "10.0.0.5", 8080},
        {"[::1]:8443", "::1", 8443},
        {"[fe80::1%eth0]:3478", "fe80::1%eth0", 3478},
        {":80", "", 80},
        {"h:0", "h", 0},
        {"h:65535", "h", 65535},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char host[64] = "junk";
        uint16_t port = 1234;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(dc_net_split_hostport(ok[i].text, host, sizeof(host), &port, err), 0);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
    static const char *const bad[] = {
        "example.com",
        "example.com:",
        "h:65536",
        "h:-1",
        "h:+1",
        "h:1x",
        "::1:80",
        "[::1]80",
        "[::1",
        "[::1]:",
        "h:99999999999999999999",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        uint16_t port = 0;
        char err[DC_ERR_LEN] = "";
        assert_int_equal(dc_net_split_hostport(bad[i], host, sizeof(host), &port, err), -EINVAL);
        /* The message quotes the text. */
        char quoted[80];
        snprintf(quoted, sizeof(quoted), "`%s'", bad[i]);
        assert_non_null(strstr(err, quoted));
    }
    /* Host longer than the caller's buffer. */
    char small[4];
    uint16_t port;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(dc_net_split_hostport("abcd:1", small, sizeof(small), &port, err), -EINVAL);
    assert_int_equal(dc_net_split_hostport("abc:1", small, sizeof(small), &port, err), 0);
    assert_string_equal(small, "abc");
}

/* The port is digits only: strtoul would skip leading whitespace and take a
 * sign, so "h: 1" and "h:+1" must be caught before it. */
static void test_common_net_split_hostport_port_digits_only(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "h: 1",        "h:\t80",    "h:\n443", "h:\r443",      "h:\v443", "h:\f443", "h:  8080",
        "[::1]: 8443", "[::1]:\t1", "h:+1",    "h:-1",         "h:-0",    "h:+0",    "[::1]:+8443",
        "[::1]:-1",    "h: +1",     "h: -1",   "10.0.0.5: 80", "h:1 ",    "h:0x50",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        uint16_t port = 0;
        char err[DC_ERR_LEN] = "";
        int rc = dc_net_split_hostport(bad[i], host, sizeof(host), &port, err);
        if (rc != -EINVAL) {
            fail_msg("case %zu: want -EINVAL, got %d (port %u)", i, rc, (unsigned)port);
        }
        char quoted[80];
        snprintf(quoted, sizeof(quoted), "`%s'", bad[i]);
        assert_non_null(strstr(err, quoted));
        assert_int_equal(dc_net_split_hostport(bad[i], host, sizeof(host), &port, NULL), -EINVAL);
    }
    /* dc_net_parse_addr goes through the same check. */
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(dc_net_parse_addr("127.0.0.1: 80", &ss, &ss_len, err), -EINVAL);
    assert_int_equal(dc_net_parse_addr("127.0.0.1:+80", &ss, &ss_len, err), -EINVAL);
    /* Leading zeros are still plain digits. */
    char host[64];
    uint16_t port = 0;
    assert_int_equal(dc_net_split_hostport("h:0080", host, sizeof(host), &port, err), 0);
    assert_int_equal(port, 80);
}

static void test_common_net_parse_addr(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char err[DC_ERR_LEN] = "";
    char text[DC_ADDR_TEXT_LEN];

    assert_int_equal(dc_net_parse_addr("127.0.0.1:3340", &ss, &len, err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&ss;
    assert_int_equal(ntohs(v4->sin_port), 3340);
    assert_int_equal(ntohl(v4->sin_addr.s_addr), 0x7f000001u);
    dc_net_format_addr(&ss, text, sizeof(text));
    assert_string_equal(text, "127.0.0.1:3340");

    assert_int_equal(dc_net_parse_addr("[2001:db8::5]:443", &ss, &len, err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    dc_net_format_addr(&ss, text, sizeof(text));
    assert_string_equal(text, "[2001:db8::5]:443");

    /* ":port" is the IPv6 any address (dual stack). */
    assert_int_equal(dc_net_parse_addr(":3478", &ss, &len, err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&ss;
    assert_memory_equal(&v6->sin6_addr, &in6addr_any, sizeof(in6addr_any));
    assert_int_equal(ntohs(v6->sin6_port), 3478);
    dc_net_format_addr(&ss, text, sizeof(text));
    assert_string_equal(text, "[::]:3478");

    static const char *const bad[] = {"example.com:80", "1.2.3:80", "[1.2.3.4]:80x", "1.2.3.4",
                                      "[::g]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(dc_net_parse_addr(bad[i], &ss, &len, err), -EINVAL);
        assert_non_null(strstr(err, bad[i]));
    }
}

static void test_common_net_listen_and_connect(void **state)
{
    (void)state;
    char err[DC_ERR_LEN] = "";
    int lfd = dc_net_listen_tcp("127.0.0.1:0", 16, err);
    assert_true(lfd >= 0);
    assert_true(fcntl(lfd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
    uint16_t port = dc_net_local_port(lfd);
    assert_true(port != 0);

    struct sockaddr_storage peer;
    socklen_t peer_len;
    assert_int_equal(dc_net_accept(lfd, &peer, &peer_len), -EAGAIN);

    int cfd = dc_net_connect_tcp("127.0.0.1", port, 2000, err);
    assert_true(cfd >= 0);
    assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK); /* blocking, as documented */
    assert_int_equal(dc_net_set_nodelay(cfd), 0);

    int afd = -EAGAIN;
    for (int i = 0; i < 500 && afd == -EAGAIN; i++) {
        afd = dc_net_accept(lfd, &peer, &peer_len);
        if (afd == -EAGAIN) {
            usleep(10000);
        }
    }
    assert_true(afd >= 0);
    assert_true(fcntl(afd, F_GETFL) & O_NONBLOCK);
    assert_int_equal(peer.ss_family, AF_INET);
    char text[DC_ADDR_TEXT_LEN];
    dc_net_format_addr(&peer, text, sizeof(text));
    assert_int_equal(strncmp(text, "127.0.0.1:", 10), 0);

    assert_int_equal(write(cfd, "hi", 2), 2);
    char got[2];
    ssize_t n = -1;
    for (int i = 0; i < 500; i++) {
        n = read(afd, got, sizeof(got));
        if (n >= 0 || errno != EAGAIN) {
            break;
        }
        usleep(10000);
    }
    assert_int_equal(n, 2);
    assert_memory_equal(got, "hi", 2);

    assert_int_equal(dc_net_set_nonblock(cfd, 1), 0);
    assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
    assert_int_equal(dc_net_set_nonblock(cfd, 0), 0);
    assert_false(fcntl(cfd, F_GETFL) & O_NONBLOCK);

    close(afd);
    close(cfd);
    close(lfd);
    assert_int_equal(dc_net_local_port(lfd), 0); /* closed fd */

    /* Listening on a bad address says which. */
    err[0] = '\0';
    assert_int_equal(dc_net_listen_tcp("localhost:0", 16, err), -EINVAL);
    assert_non_null(strstr(err, "localhost:0"));

    /* UDP on port 0 is bound to a real port too. */
    int ufd = dc_net_listen_udp("127.0.0.1:0", err);
    assert_true(ufd >= 0);
    assert_true(dc_net_local_port(ufd) != 0);
    close(ufd);
}

static void test_common_net_connect_errors(void **state)
{
    (void)state;
    /* A name under .invalid never resolves (RFC 6761). */
    char err[DC_ERR_LEN] = "";
    int rc = dc_net_connect_tcp("nonexistent.invalid", 80, 2000, err);
    assert_int_equal(rc, -EHOSTUNREACH);
    assert_int_equal(strncmp(err, "dns:", 4), 0);
    assert_non_null(strstr(err, "nonexistent.invalid"));

    /* A bound but not listening port refuses; keeping it bound means no
     * other process can start listening there meanwhile. */
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    uint16_t port = dc_net_local_port(s);
    assert_true(port != 0);
    err[0] = '\0';
    rc = dc_net_connect_tcp("127.0.0.1", port, 2000, err);
    assert_int_equal(rc, -ECONNREFUSED);
    assert_int_equal(strncmp(err, "tcp:", 4), 0);
    char where[32];
    snprintf(where, sizeof(where), "127.0.0.1:%u", port);
    assert_non_null(strstr(err, where));
    close(s);

    /* err may be NULL. */
    assert_int_equal(dc_net_connect_tcp("nonexistent.invalid", 80, 2000, NULL), -EHOSTUNREACH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_buf_limits),
        cmocka_unit_test(test_common_buf_growth),
        cmocka_unit_test(test_common_buf_printf),
        cmocka_unit_test(test_common_buf_printf_long_at_max),
        cmocka_unit_test(test_common_buf_consume),
        cmocka_unit_test(test_common_loop_timers_in_due_order),
        cmocka_unit_test(test_common_loop_timer_stop_and_rearm),
        cmocka_unit_test(test_common_loop_before_sleep_once_per_wakeup),
        cmocka_unit_test(test_common_loop_io_stop_in_same_batch),
        cmocka_unit_test(test_common_loop_io_pipe),
        cmocka_unit_test(test_common_net_split_hostport),
        cmocka_unit_test(test_common_net_split_hostport_port_digits_only),
        cmocka_unit_test(test_common_net_parse_addr),
        cmocka_unit_test(test_common_net_listen_and_connect),
        cmocka_unit_test(test_common_net_connect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
