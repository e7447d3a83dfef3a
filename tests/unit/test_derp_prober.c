/* test_derp_prober: the prober pool of relay/derp_prober.c (worker threads,
 * results on a dc_loop, cancel, pending, free). The probes go to loopback:
 * a bound but not listening port refuses at once (stage tcp), and a
 * listener nobody accepts from keeps a worker busy until the probe's
 * timeout (stage timeout), which holds later probes in the queue. */
#include "derp_prober.h"

#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

/* Upper bound on one loop run; only reached on failure. */
#define GUARD_MS 10000
/* How long the loop keeps running after the expected callbacks, to catch
 * any that should not come. */
#define SETTLE_MS 200
/* Limit of a probe that reaches a closed port (refused long before). */
#define REFUSED_TIMEOUT_MS 5000
/* Limit of a probe to the silent listener: how long it holds its worker. */
#define SILENT_TIMEOUT_MS 400
/* Probes one group may hold. */
#define GROUP_MAX 16

/* Loopback ports: one bound without listen (refuses), one listening that
 * never accepts (the kernel completes TCP, then nothing answers). */
struct ports {
    int closed_fd;
    int silent_fd;
    uint16_t closed;
    uint16_t silent;
};

/* The loop, the prober under test and the guard timer. */
struct fixture {
    struct dc_loop *loop;
    struct derp_prober *p;
    struct dc_timer guard;
    bool is_timed_out;
    size_t calls;      /* callbacks so far, all groups */
    size_t stop_after; /* stop the loop when calls reaches this */
    pthread_t loop_thread;
    struct ports ports;
};

struct group;
typedef void (*group_hook)(struct group *g);

/* The data pointer of a set of probes (cancel works per data pointer).
 * Node names are "<prefix><index>"; seen[index] counts deliveries. */
struct group {
    struct fixture *f;
    char prefix;
    int seen[GROUP_MAX];
    int calls;
    int bad_thread;       /* callbacks not on the loop's thread */
    int bad_node;         /* callbacks whose node is not one of ours */
    size_t last_pending;  /* derp_prober_pending() seen in the last callback */
    size_t fixture_calls; /* f->calls when this group's last callback ran */
    enum derp_probe_stage stage;
    char error[DC_ERR_LEN];
    group_hook hook; /* run in each callback, may be NULL */
};

/* ---- helpers ---- */

static int bind_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void on_guard(struct dc_loop *loop, struct dc_timer *t)
{
    struct fixture *f = t->data;
    f->is_timed_out = true;
    dc_loop_stop(loop);
}

static void fixture_init(struct fixture *f, unsigned threads)
{
    memset(f, 0, sizeof(*f));
    f->loop = dc_loop_new();
    assert_non_null(f->loop);
    f->loop_thread = pthread_self();
    f->guard.cb = on_guard;
    f->guard.data = f;
    f->stop_after = SIZE_MAX;
    char err[DC_ERR_LEN] = "";
    if (derp_prober_new(f->loop, threads, &f->p, err) < 0) {
        fail_msg("derp_prober_new: %s", err);
    }
    f->ports.closed_fd = bind_loopback(&f->ports.closed);
    f->ports.silent_fd = bind_loopback(&f->ports.silent);
    assert_int_equal(listen(f->ports.silent_fd, 64), 0);
}

static void fixture_deinit(struct fixture *f)
{
    derp_prober_free(f->p);
    dc_timer_stop(f->loop, &f->guard);
    dc_loop_free(f->loop);
    close(f->ports.closed_fd);
    close(f->ports.silent_fd);
}

/* Runs the loop until `calls` more callbacks have run (fails on the guard),
 * then SETTLE_MS more, and checks no other callback came meanwhile. */
static void run_for_calls(struct fixture *f, size_t calls)
{
    size_t want = f->calls + calls;
    f->stop_after = want;
    if (calls > 0) {
        dc_timer_start(f->loop, &f->guard, GUARD_MS);
        assert_int_equal(dc_loop_run(f->loop), 0);
        assert_false(f->is_timed_out);
        assert_int_equal(f->calls, want);
    }
    f->stop_after = SIZE_MAX;
    dc_timer_start(f->loop, &f->guard, SETTLE_MS);
    assert_int_equal(dc_loop_run(f->loop), 0);
    f->is_timed_out = false;
    assert_int_equal(f->calls, want);
}

static void on_probe(void *data, const struct derp_map_node *node,
                     const struct derp_probe_result *r)
{
    struct group *g = data;
    struct fixture *f = g->f;
    f->calls++;
    g->calls++;
    g->fixture_calls = f->calls;
    if (!pthread_equal(pthread_self(), f->loop_thread)) {
        g->bad_thread++;
    }
    unsigned idx = GROUP_MAX;
    if (node->name[0] == g->prefix && sscanf(node->name + 1, "%u", &idx) == 1 && idx < GROUP_MAX) {
        g->seen[idx]++;
    } else {
        g->bad_node++;
    }
    g->stage = r->stage;
    snprintf(g->error, sizeof(g->error), "%s", r->error);
    g->last_pending = derp_prober_pending(f->p);
    if (g->hook != NULL) {
        g->hook(g);
    }
    if (f->calls == f->stop_after) {
        dc_loop_stop(f->loop);
    }
}

static void group_init(struct group *g, struct fixture *f, char prefix)
{
    memset(g, 0, sizeof(*g));
    g->f = f;
    g->prefix = prefix;
}

/* Submits probe <prefix><idx> of g to port: plain HTTP, no STUN. */
static void submit(struct group *g, unsigned idx, uint16_t port, int timeout_ms)
{
    struct derp_map_node n;
    memset(&n, 0, sizeof(n));
    n.region_id = 900 + idx;
    snprintf(n.name, sizeof(n.name), "%c%u", g->prefix, idx);
    snprintf(n.host_name, sizeof(n.host_name), "127.0.0.1");
    n.derp_port = port;
    n.stun_port = -1;
    struct derp_probe_opts o = {.timeout_ms = timeout_ms, .is_plain_http = true, .skip_stun = true};
    assert_int_equal(derp_prober_submit(g->f->p, &n, &o, on_probe, g), 0);
}

static void submit_refused(struct group *g, unsigned idx)
{
    submit(g, idx, g->f->ports.closed, REFUSED_TIMEOUT_MS);
}

static void submit_silent(struct group *g, unsigned idx)
{
    submit(g, idx, g->f->ports.silent, SILENT_TIMEOUT_MS);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- tests ---- */

static void test_prober_new_bad_threads(void **state)
{
    (void)state;
    struct dc_loop *loop = dc_loop_new();
    assert_non_null(loop);
    struct derp_prober *p = NULL;
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_prober_new(loop, 0, &p, err), -EINVAL);
    assert_null(p);
    assert_non_null(strstr(err, "not 0"));
    assert_int_equal(derp_prober_new(loop, DERP_PROBER_MAX_THREADS + 1, &p, err), -EINVAL);
    assert_null(p);
    derp_prober_free(NULL);
    dc_loop_free(loop);
}

/* Every probe's callback runs exactly once, on the loop's thread, with its
 * own node and a tcp failure; pending counts down one per delivery. */
static void test_prober_each_callback_once(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 4);
    struct group g;
    group_init(&g, &f, 'n');
    enum { N = 10 };
    assert_int_equal(derp_prober_pending(f.p), 0);
    for (unsigned i = 0; i < N; i++) {
        submit_refused(&g, i);
        assert_int_equal(derp_prober_pending(f.p), i + 1);
    }
    run_for_calls(&f, N);
    assert_int_equal(g.calls, N);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(g.seen[i], 1);
    }
    assert_int_equal(g.bad_thread, 0);
    assert_int_equal(g.bad_node, 0);
    assert_int_equal(g.stage, DERP_PROBE_STAGE_TCP);
    if (strncmp(g.error, "tcp:", 4) != 0) {
        fail_msg("want a tcp: error, got `%s'", g.error);
    }
    /* The count is taken before each callback: the last one saw 0. */
    assert_int_equal(g.last_pending, 0);
    assert_int_equal(derp_prober_pending(f.p), 0);
    fixture_deinit(&f);
}

/* Probes of one data pointer cancelled while queued behind a busy worker
 * never reach their callback; the others still do. */
static void test_prober_cancel_queued(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 1);
    struct group blocker, a, b;
    group_init(&blocker, &f, 's');
    group_init(&a, &f, 'a');
    group_init(&b, &f, 'b');
    submit_silent(&blocker, 0); /* holds the only worker for SILENT_TIMEOUT_MS */
    for (unsigned i = 0; i < 3; i++) {
        submit_refused(&a, i);
        submit_refused(&b, i);
    }
    assert_int_equal(derp_prober_pending(f.p), 7);
    derp_prober_cancel(f.p, &a);
    assert_int_equal(derp_prober_pending(f.p), 4);
    derp_prober_cancel(f.p, &a); /* twice is harmless */
    derp_prober_cancel(f.p, &f); /* nothing submitted with it */
    assert_int_equal(derp_prober_pending(f.p), 4);
    run_for_calls(&f, 4);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 3);
    assert_int_equal(blocker.calls, 1);
    assert_int_equal(blocker.stage, DERP_PROBE_STAGE_TIMEOUT);
    assert_int_equal(b.stage, DERP_PROBE_STAGE_TCP);
    assert_int_equal(derp_prober_pending(f.p), 0);
    fixture_deinit(&f);
}

/* Cancelling a probe that is running, or finished but not yet delivered
 * (the loop has not run), also keeps its callback from running. */
static void test_prober_cancel_running_and_finished(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 2);
    struct group running, finished, other;
    group_init(&running, &f, 'r');
    group_init(&finished, &f, 'f');
    group_init(&other, &f, 'o');
    submit_refused(&finished, 0);
    submit_refused(&finished, 1);
    sleep_ms(SETTLE_MS); /* refused at once: both wait for the loop now */
    submit_silent(&running, 0);
    sleep_ms(SILENT_TIMEOUT_MS / 4); /* a worker has it and waits for the relay */
    assert_int_equal(derp_prober_pending(f.p), 3);
    derp_prober_cancel(f.p, &finished);
    derp_prober_cancel(f.p, &running);
    assert_int_equal(derp_prober_pending(f.p), 0);
    submit_refused(&other, 0);
    assert_int_equal(derp_prober_pending(f.p), 1);
    run_for_calls(&f, 1);
    assert_int_equal(other.calls, 1);
    /* The silent probe ends within its timeout; its result is dropped. */
    sleep_ms(SILENT_TIMEOUT_MS);
    run_for_calls(&f, 0);
    assert_int_equal(running.calls, 0);
    assert_int_equal(finished.calls, 0);
    assert_int_equal(derp_prober_pending(f.p), 0);
    fixture_deinit(&f);
}

/* x's first callback cancels y (queued, running or finished by then) and x
 * itself (its second probe); z, submitted last, still arrives. */
static struct group *g_cancel_target;

static void cancel_hook(struct group *g)
{
    if (g->calls == 1) {
        derp_prober_cancel(g->f->p, g_cancel_target);
        derp_prober_cancel(g->f->p, g);
        assert_int_equal(derp_prober_pending(g->f->p), 1); /* z */
    }
}

static void test_prober_cancel_from_callback(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 1);
    struct group x, y, z;
    group_init(&x, &f, 'x');
    group_init(&y, &f, 'y');
    group_init(&z, &f, 'z');
    x.hook = cancel_hook;
    g_cancel_target = &y;
    submit_refused(&x, 0); /* one worker: results come in submission order */
    submit_refused(&y, 0);
    submit_refused(&y, 1);
    submit_refused(&x, 1);
    submit_refused(&z, 0);
    assert_int_equal(derp_prober_pending(f.p), 5);
    run_for_calls(&f, 2);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.seen[0], 1);
    assert_int_equal(y.calls, 0);
    assert_int_equal(z.calls, 1);
    assert_int_equal(z.fixture_calls, 2);
    assert_int_equal(derp_prober_pending(f.p), 0);
    g_cancel_target = NULL;
    fixture_deinit(&f);
}

/* Freeing with probes queued, running and finished returns within about
 * one probe's timeout and runs no callback. */
static void test_prober_free_with_queued(void **state)
{
    (void)state;
    struct fixture f;
    fixture_init(&f, 1);
    struct group g;
    group_init(&g, &f, 'q');
    submit_silent(&g, 0);
    for (unsigned i = 1; i < GROUP_MAX; i++) {
        submit_refused(&g, i);
    }
    assert_int_equal(derp_prober_pending(f.p), GROUP_MAX);
    uint64_t t0 = dc_now_ms();
    derp_prober_free(f.p);
    f.p = NULL;
    uint64_t took = dc_now_ms() - t0;
    if (took > SILENT_TIMEOUT_MS + 2000) {
        fail_msg("derp_prober_free took %llu ms", (unsigned long long)took);
    }
    run_for_calls(&f, 0);
    assert_int_equal(g.calls, 0);

    /* Results already waiting for the loop are dropped too. */
    char err[DC_ERR_LEN] = "";
    assert_int_equal(derp_prober_new(f.loop, 2, &f.p, err), 0);
    submit_refused(&g, 0);
    submit_refused(&g, 1);
    sleep_ms(SETTLE_MS);
    derp_prober_free(f.p);
    f.p = NULL;
    run_for_calls(&f, 0);
    assert_int_equal(g.calls, 0);
    fixture_deinit(&f);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    assert_true(sodium_init() >= 0);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prober_new_bad_threads),
        cmocka_unit_test(test_prober_each_callback_once),
        cmocka_unit_test(test_prober_cancel_queued),
        cmocka_unit_test(test_prober_cancel_running_and_finished),
        cmocka_unit_test(test_prober_cancel_from_callback),
        cmocka_unit_test(test_prober_free_with_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
