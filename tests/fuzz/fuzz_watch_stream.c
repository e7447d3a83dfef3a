/* fuzz_watch_stream: k8s_stream_feed() on arbitrary bytes, whole and chunked.
 *
 * Input: byte 0 picks the setup: bits 0-3 = number of chunk-size bytes that
 * follow (0-15), bits 4-5 = max event (16 MiB, 64, 512 or 4096 bytes), bit 6
 * = the callback stops at the second event. The chunk sizes are used in a
 * cycle (0 = an empty feed, 255 = all the rest); the remaining bytes are the
 * watch body. The body is fed whole to one stream and in those chunks to
 * another; both must deliver the same events (type, raw text, object) and
 * end with the same code and the same pending bytes, or the target aborts.
 * The chunked stream is then reset and fed the body whole: same again. */
#include "k8s_stream.h"

#include <errno.h>
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

static const size_t MAX_EVENTS[4] = {K8S_STREAM_MAX_EVENT, 64, 512, 4096};

struct seen {
    enum k8s_event_type type;
    uint8_t *raw; /* owned copy */
    size_t raw_len;
    json_t *object; /* owned reference */
};

/* Events one run delivered, and where its input lay (to check that events
 * of a whole feed are passed in place, without a copy). */
struct run {
    struct seen *ev; /* owned */
    size_t n, cap;
    size_t stop_at;       /* 1-based event to answer -ECANCELED; 0: never */
    const uint8_t *whole; /* the body when fed in one call, else NULL */
    size_t whole_len;
};

/* Uses the helpers on every object: they must not crash or lie. */
static void poke(const struct k8s_event *ev)
{
    struct k8s_status st;
    int rc = k8s_status_parse(ev->object, &st);
    check(rc == 0 || rc == -EINVAL);
    check(st.status != NULL && st.reason != NULL && st.message != NULL);
    check(st.code >= 0 && st.code <= 999);
    check(rc == 0 || st.code == 0);
    (void)k8s_status_is_expired(&st);
    const char *s[] = {k8s_meta_name(ev->object), k8s_meta_namespace(ev->object),
                       k8s_meta_uid(ev->object), k8s_meta_resource_version(ev->object),
                       k8s_meta_annotation(ev->object, K8S_ANNOT_INITIAL_EVENTS_END)};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        check(s[i] == NULL || strlen(s[i]) < ev->raw.len);
    }
    check(strcmp(k8s_event_type_name(ev->type), "?") != 0);
}

static int record(const struct k8s_event *ev, void *arg)
{
    struct run *r = arg;
    check(json_is_object(ev->object));
    check(ev->raw.len >= 2 && ev->raw.p[0] == '{' && ev->raw.p[ev->raw.len - 1] == '}');
    if (r->whole != NULL) {
        uintptr_t p = (uintptr_t)ev->raw.p, b = (uintptr_t)r->whole;
        check(p >= b && p - b <= r->whole_len && ev->raw.len <= r->whole_len - (p - b));
    }
    poke(ev);
    if (r->n == r->cap) {
        size_t cap = r->cap == 0 ? 8 : r->cap * 2;
        struct seen *ev2 = realloc(r->ev, cap * sizeof(*ev2));
        check(ev2 != NULL);
        r->ev = ev2;
        r->cap = cap;
    }
    struct seen *s = &r->ev[r->n++];
    s->type = ev->type;
    s->raw_len = ev->raw.len;
    s->raw = malloc(ev->raw.len);
    check(s->raw != NULL);
    memcpy(s->raw, ev->raw.p, ev->raw.len);
    s->object = json_incref(ev->object);
    return r->stop_at != 0 && r->n == r->stop_at ? -ECANCELED : 0;
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].raw);
        json_decref(r->ev[i].object);
    }
    free(r->ev);
    r->ev = NULL;
    r->n = r->cap = 0;
}

static void check_same(const struct run *a, const struct run *b)
{
    check(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        check(a->ev[i].type == b->ev[i].type);
        check(a->ev[i].raw_len == b->ev[i].raw_len);
        check(memcmp(a->ev[i].raw, b->ev[i].raw, a->ev[i].raw_len) == 0);
        check(json_equal(a->ev[i].object, b->ev[i].object));
    }
}

static void check_rc(int rc, const char *err)
{
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE || rc == -ECANCELED);
    if (rc != 0) {
        check(memchr(err, '\0', DC_ERR_LEN) != NULL && strncmp(err, "watch ", 6) == 0);
    }
}

/* Feeds body in an exact-size heap copy, so a read past len is caught. */
static int feed_copy(struct k8s_stream *st, const uint8_t *p, size_t len, struct run *r, char *err)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    check(copy != NULL);
    memcpy(copy, p, len);
    int rc = k8s_stream_feed(st, (const char *)copy, len, record, r, err);
    free(copy);
    check_rc(rc, err);
    return rc;
}

/* Feeds body whole: the events point into it. */
static int feed_whole(struct k8s_stream *st, const uint8_t *body, size_t len, struct run *r)
{
    char err[DC_ERR_LEN];
    r->whole = body;
    r->whole_len = len;
    int rc = k8s_stream_feed(st, (const char *)body, len, record, r, err);
    r->whole = NULL;
    check_rc(rc, err);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t nsizes = data[0] & 0x0f;
    size_t max_event = MAX_EVENTS[(data[0] >> 4) & 3];
    size_t stop_at = (data[0] & 0x40) ? 2 : 0;
    if (nsizes > size - 1) {
        nsizes = size - 1;
    }
    const uint8_t *sizes = data + 1;
    const uint8_t *body = data + 1 + nsizes;
    size_t len = size - 1 - nsizes;

    struct k8s_stream whole, chunked;
    struct run rw = {.stop_at = stop_at}, rc_ = {.stop_at = stop_at}, again = {.stop_at = stop_at};
    char err[DC_ERR_LEN];
    k8s_stream_init(&whole, max_event);
    k8s_stream_init(&chunked, max_event);

    int rc_whole = feed_whole(&whole, body, len, &rw);

    int rc_chunked = feed_copy(&chunked, body, 0, &rc_, err);
    size_t off = 0;
    bool last_empty = true;
    for (size_t k = 0; off < len && rc_chunked == 0; k++) {
        size_t n = nsizes == 0 ? len - off : sizes[k % nsizes];
        if (n == 255 || n > len - off) {
            n = len - off;
        }
        if (n == 0 && last_empty) {
            n = 1;
        }
        last_empty = n == 0;
        rc_chunked = feed_copy(&chunked, body + off, n, &rc_, err);
        off += n;
    }
    check(rc_chunked == rc_whole);
    check_same(&rw, &rc_);
    check(k8s_stream_pending(&whole) == k8s_stream_pending(&chunked));
    check(rc_whole != 0 || k8s_stream_pending(&whole) <= max_event);
    if (rc_whole != 0) {
        /* sticky until reset */
        check(feed_copy(&whole, (const uint8_t *)"{}", 2, &rw, err) == rc_whole);
    }

    k8s_stream_reset(&chunked);
    check(k8s_stream_pending(&chunked) == 0);
    check(feed_whole(&chunked, body, len, &again) == rc_whole);
    check_same(&rw, &again);

    run_free(&rw);
    run_free(&rc_);
    run_free(&again);
    k8s_stream_deinit(&whole);
    k8s_stream_deinit(&chunked);
    return 0;
}
