#include "k8s_event.h"

#include "k8s_http.h"
#include "log.h"
#include "loop.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENT_LOG_SUBSYS "derp-k8s"
/* Buckets of each LRU's hash table: a power of two, twice K8S_EVENT_MAX_CACHE, so chains stay
 * short when the cache is full. */
#define LRU_BUCKETS 8192u
/* Random bytes in an Event name's suffix (16 hex digits). */
#define NAME_SUFFIX_BYTES 8u
/* "2006-01-02T15:04:05.000000Z" plus NUL. */
#define TIME_LEN 32u
/* Longest namespace: a DNS label. */
#define NAMESPACE_MAX_LEN 63u
/* Longest path built for an Event request: the prefix, a 63-byte namespace and a 253-byte
 * Event name fit, so the snprintf()s building paths cannot truncate. */
#define PATH_MAX_LEN 512u

/* Which API the recorder writes. */
enum event_api {
    EVENT_API_EVENTS_V1, /* events.k8s.io/v1 */
    EVENT_API_CORE_V1,   /* core/v1, after events.k8s.io answered "not served" */
};

/* An entry of an LRU map: embedded first in its owner. */
struct lru_node {
    char *key;              /* owned */
    size_t key_len;         /* bytes in key */
    uint64_t hash;          /* SipHash of key */
    struct lru_node *chain; /* next in the bucket */
    struct lru_node *newer; /* toward the most recently used */
    struct lru_node *older; /* toward the least recently used */
};

/* A string-keyed map ordered by use (SipHash-keyed buckets: keys come from object names). */
struct lru {
    struct lru_node **buckets;                  /* owned: LRU_BUCKETS chains */
    struct lru_node *newest;                    /* most recently used, or NULL */
    struct lru_node *oldest;                    /* least recently used, or NULL */
    size_t count;                               /* entries */
    uint8_t sip_key[crypto_shorthash_KEYBYTES]; /* random per map */
};

/* One Event on the server (or to be created): a cache entry. */
struct ev_entry {
    struct lru_node node;                  /* first: the cache's node */
    struct k8s_recorder *r;                /* borrowed: the owner */
    json_t *what;                          /* owned: regarding, type, reason, action, note */
    char name[K8S_EVENT_MAX_NAME_LEN + 1]; /* the Event's name */
    char ns[NAMESPACE_MAX_LEN + 1];        /* the Event's namespace */
    struct timespec first;                 /* wall time of the first occurrence */
    struct timespec last;                  /* wall time of the latest occurrence */
    uint32_t count;                        /* occurrences so far */
    uint32_t sent_count;                   /* count carried by the request in flight */
    bool is_created;                       /* the server holds the Event, as far as we know */
    bool is_patch;                         /* the request in flight is a PATCH (else a POST) */
    struct k8s_call *call;                 /* the request in flight, or NULL */
};

/* Token bucket of one (object, type) for the spam filter. */
struct spam_entry {
    struct lru_node node; /* first: the filter's node */
    double tokens;        /* emissions allowed now, up to K8S_EVENT_SPAM_BURST */
    uint64_t last_ms;     /* dc_now_ms() of the last refill */
};

struct k8s_recorder {
    struct k8s_client *client;       /* borrowed */
    char *component;                 /* owned: reportingController / source.component */
    char *instance;                  /* owned: reportingInstance / source.host */
    enum event_api api;              /* which API writes go to */
    struct lru events;               /* ev_entry by dedup key */
    struct lru spam;                 /* spam_entry by (object, type) key */
    size_t in_flight;                /* entries with a request in flight */
    struct k8s_recorder_stats stats; /* counters */
};

static void entry_send(struct ev_entry *e);

/* --- LRU map --- */

static int lru_init(struct lru *m)
{
    memset(m, 0, sizeof(*m));
    m->buckets = calloc(LRU_BUCKETS, sizeof(*m->buckets));
    if (m->buckets == NULL) {
        return -ENOMEM;
    }
    crypto_shorthash_keygen(m->sip_key);
    return 0;
}

static uint64_t lru_hash(const struct lru *m, const char *key, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, len, m->sip_key);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h;
}

static void lru_unlink_use(struct lru *m, struct lru_node *n)
{
    if (n->newer != NULL) {
        n->newer->older = n->older;
    } else {
        m->newest = n->older;
    }
    if (n->older != NULL) {
        n->older->newer = n->newer;
    } else {
        m->oldest = n->newer;
    }
    n->newer = n->older = NULL;
}

static void lru_push_newest(struct lru *m, struct lru_node *n)
{
    n->older = m->newest;
    n->newer = NULL;
    if (m->newest != NULL) {
        m->newest->newer = n;
    } else {
        m->oldest = n;
    }
    m->newest = n;
}

/* The node with key, moved to the newest position; NULL when absent. */
static struct lru_node *lru_get(struct lru *m, const char *key, size_t len)
{
    uint64_t h = lru_hash(m, key, len);
    for (struct lru_node *n = m->buckets[h & (LRU_BUCKETS - 1)]; n != NULL; n = n->chain) {
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0) {
            lru_unlink_use(m, n);
            lru_push_newest(m, n);
            return n;
        }
    }
    return NULL;
}

/* Adds n (its key already set) as the newest entry. The caller made room first. */
static void lru_add(struct lru *m, struct lru_node *n)
{
    n->hash = lru_hash(m, n->key, n->key_len);
    struct lru_node **b = &m->buckets[n->hash & (LRU_BUCKETS - 1)];
    n->chain = *b;
    *b = n;
    lru_push_newest(m, n);
    m->count++;
}

/* Takes n out of the map; the caller frees it. */
static void lru_remove(struct lru *m, struct lru_node *n)
{
    struct lru_node **p = &m->buckets[n->hash & (LRU_BUCKETS - 1)];
    while (*p != n) {
        p = &(*p)->chain;
    }
    *p = n->chain;
    lru_unlink_use(m, n);
    m->count--;
}

/* --- keys and small helpers --- */

/* Appends "<len>:<s>" to key, so joined fields never collide ("ab"+"c" vs "a"+"bc"). */
static int key_add(char **key, size_t *len, const char *s)
{
    if (s == NULL) {
        s = "";
    }
    size_t n = strlen(s);
    char head[24];
    int h = snprintf(head, sizeof(head), "%zu:", n);
    char *p = realloc(*key, *len + (size_t)h + n + 1);
    if (p == NULL) {
        return -ENOMEM;
    }
    memcpy(p + *len, head, (size_t)h);
    memcpy(p + *len + (size_t)h, s, n + 1);
    *key = p;
    *len += (size_t)h + n;
    return 0;
}

/* Builds a key from n strings; *out is malloc'd. */
static int key_build(const char *const *fields, size_t n, char **out, size_t *out_len)
{
    char *key = NULL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (key_add(&key, &len, fields[i]) != 0) {
            free(key);
            return -ENOMEM;
        }
    }
    *out = key;
    *out_len = len;
    return 0;
}

static bool is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* Writes t as MicroTime ("2006-01-02T15:04:05.000000Z") or, with is_micro false, as metav1.Time
 * ("2006-01-02T15:04:05Z"). */
static void format_time(const struct timespec *t, bool is_micro, char out[static TIME_LEN])
{
    struct tm tm;
    gmtime_r(&t->tv_sec, &tm);
    size_t n = strftime(out, TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    if (is_micro) {
        snprintf(out + n, TIME_LEN - n, ".%06ldZ", t->tv_nsec / 1000);
    } else {
        snprintf(out + n, TIME_LEN - n, "Z");
    }
}

/* Whether c may appear in a DNS-1123 subdomain. */
static bool is_dns_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Whether s[0..len) is a DNS-1123 subdomain prefix that can take ".<suffix>": lowercase
 * alphanumerics, '-' and '.', every label starting and ending alphanumeric. */
static bool is_name_prefix(const char *s, size_t len)
{
    if (len == 0 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[len - 1])) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_dns_char(s[i])) {
            return false;
        }
        if (s[i] == '.' && (!is_alnum_lower(s[i - 1]) || !is_alnum_lower(s[i + 1]))) {
            return false;
        }
    }
    return true;
}

/* "<object name>.<16 hex>" (client-go uses name + "." + hex of the time; any unique suffix
 * does), the object part cut so the whole stays a 253-byte DNS subdomain. A name that cannot
 * start an Event name gets "event." instead, as client-go falls back to a UUID. */
static void event_name(const char *obj_name, char out[static K8S_EVENT_MAX_NAME_LEN + 1])
{
    uint8_t rnd[NAME_SUFFIX_BYTES];
    char hex[2 * NAME_SUFFIX_BYTES + 1];
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    size_t room = K8S_EVENT_MAX_NAME_LEN - 1 - (sizeof(hex) - 1);
    size_t len = strnlen(obj_name, room);
    while (len > 0 && !is_alnum_lower(obj_name[len - 1])) {
        len--; /* a cut must not leave "-." or ".." before the suffix */
    }
    if (!is_name_prefix(obj_name, len)) {
        obj_name = "event";
        len = strlen(obj_name);
    }
    snprintf(out, K8S_EVENT_MAX_NAME_LEN + 1, "%.*s.%s", (int)len, obj_name, hex);
}

/* Length of note cut to K8S_EVENT_MAX_NOTE_LEN bytes without splitting a UTF-8 character. */
static size_t note_len(const char *note)
{
    size_t len = strlen(note);
    if (len <= K8S_EVENT_MAX_NOTE_LEN) {
        return len;
    }
    len = K8S_EVENT_MAX_NOTE_LEN;
    while (len > 0 && ((unsigned char)note[len] & 0xc0u) == 0x80u) {
        len--; /* note[len] continues a character that started before the cut */
    }
    return len;
}

/* --- request bodies --- */

static int set_str(json_t *o, const char *key, const char *value)
{
    return json_object_set_new(o, key, json_string(value));
}

/* The ObjectReference JSON of obj: fields that are empty are left out, as Go's omitempty. */
static json_t *object_ref_json(const struct k8s_object_ref *obj)
{
    json_t *o = json_object();
    int rc = 0;
    rc |= set_str(o, "apiVersion", obj->api_version);
    rc |= set_str(o, "kind", obj->kind);
    if (!is_empty(obj->namespace_)) {
        rc |= set_str(o, "namespace", obj->namespace_);
    }
    rc |= set_str(o, "name", obj->name);
    if (!is_empty(obj->uid)) {
        rc |= set_str(o, "uid", obj->uid);
    }
    if (o == NULL || rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* What identifies the Event: copied into the entry, rebuilt into bodies for either API. */
static json_t *what_json(const struct k8s_object_ref *obj, const char *type, const char *reason,
                         const char *action, const char *note)
{
    const char *n = note != NULL ? note : "";
    json_t *w = json_object();
    json_t *ref = object_ref_json(obj);
    if (w == NULL || ref == NULL || json_object_set_new(w, "regarding", ref) != 0) {
        json_decref(w);
        return NULL;
    }
    if (set_str(w, "type", type) != 0 || set_str(w, "reason", reason) != 0 ||
        set_str(w, "action", action) != 0 ||
        json_object_set_new(w, "note", json_stringn(n, note_len(n))) != 0) {
        json_decref(w);
        return NULL;
    }
    return w;
}

/* Copies what's string field from into to under key. */
static int copy_field(json_t *to, const char *key, const json_t *what, const char *from)
{
    return json_object_set(to, key, json_object_get(what, from));
}

static json_t *metadata_json(const struct ev_entry *e)
{
    return json_pack("{s:s, s:s}", "name", e->name, "namespace", e->ns);
}

/* events.k8s.io/v1 Event with a series once it has repeated. */
static json_t *body_events_v1(const struct ev_entry *e)
{
    char event_time[TIME_LEN], last[TIME_LEN];
    format_time(&e->first, true, event_time);
    format_time(&e->last, true, last);
    json_t *b =
        json_pack("{s:s, s:s, s:o, s:s, s:s, s:s}", "apiVersion", "events.k8s.io/v1", "kind",
                  "Event", "metadata", metadata_json(e), "eventTime", event_time,
                  "reportingController", e->r->component, "reportingInstance", e->r->instance);
    if (b == NULL) {
        return NULL;
    }
    int rc = copy_field(b, "regarding", e->what, "regarding");
    rc |= copy_field(b, "type", e->what, "type");
    rc |= copy_field(b, "reason", e->what, "reason");
    rc |= copy_field(b, "action", e->what, "action");
    rc |= copy_field(b, "note", e->what, "note");
    if (e->count >= 2) {
        rc |= json_object_set_new(
            b, "series",
            json_pack("{s:I, s:s}", "count", (json_int_t)e->count, "lastObservedTime", last));
    }
    if (rc != 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

/* core/v1 Event as tools/record writes it (source, first/last timestamps, count). */
static json_t *body_core_v1(const struct ev_entry *e)
{
    char first[TIME_LEN], last[TIME_LEN];
    format_time(&e->first, false, first);
    format_time(&e->last, false, last);
    json_t *b =
        json_pack("{s:s, s:s, s:o, s:{s:s, s:s}, s:s, s:s, s:I, s:s, s:s}", "apiVersion", "v1",
                  "kind", "Event", "metadata", metadata_json(e), "source", "component",
                  e->r->component, "host", e->r->instance, "firstTimestamp", first, "lastTimestamp",
                  last, "count", (json_int_t)e->count, "reportingComponent", e->r->component,
                  "reportingInstance", e->r->instance);
    if (b == NULL) {
        return NULL;
    }
    int rc = copy_field(b, "involvedObject", e->what, "regarding");
    rc |= copy_field(b, "type", e->what, "type");
    rc |= copy_field(b, "reason", e->what, "reason");
    rc |= copy_field(b, "action", e->what, "action");
    rc |= copy_field(b, "message", e->what, "note");
    if (rc != 0) {
        json_decref(b);
        return NULL;
    }
    return b;
}

/* The merge patch of a repeat: series (events.k8s.io) or count and lastTimestamp (core). */
static json_t *body_patch(const struct ev_entry *e)
{
    char last[TIME_LEN];
    if (e->r->api == EVENT_API_CORE_V1) {
        format_time(&e->last, false, last);
        return json_pack("{s:I, s:s}", "count", (json_int_t)e->count, "lastTimestamp", last);
    }
    format_time(&e->last, true, last);
    return json_pack("{s:{s:I, s:s}}", "series", "count", (json_int_t)e->count, "lastObservedTime",
                     last);
}

/* --- sending --- */

static void entry_fail(struct ev_entry *e, const char *why)
{
    struct k8s_recorder *r = e->r;
    r->stats.failed++;
    const json_t *ref = json_object_get(e->what, "regarding");
    dc_log(DC_LOG_WARN, EVENT_LOG_SUBSYS, "event %s/%s for %s %s: %s", e->ns, e->name,
           json_string_value(json_object_get(ref, "kind")),
           json_string_value(json_object_get(ref, "name")), why);
}

/* Whether a 404 says the API itself is missing (kube's "the server could not find the
 * requested resource", with no object name in its details), not a NotFound for an object. */
static bool is_api_missing(const struct k8s_response *resp)
{
    if (resp->status != 404) {
        return false;
    }
    json_t *st = json_loadb((const char *)resp->body.p, resp->body.len, 0, NULL);
    const json_t *name = json_object_get(json_object_get(st, "details"), "name");
    bool is_named = json_is_string(name) && json_string_length(name) > 0;
    json_decref(st);
    return !is_named;
}

/* Decides what follows an answer; returns true when the entry must be sent again now. */
static bool entry_answer(struct ev_entry *e, const struct k8s_response *resp)
{
    struct k8s_recorder *r = e->r;
    if (k8s_response_is_ok(resp)) {
        if (e->is_patch) {
            r->stats.updated++;
        } else {
            r->stats.created++;
        }
        e->is_created = true;
        return e->count > e->sent_count;
    }
    if (is_api_missing(resp) && r->api == EVENT_API_EVENTS_V1) {
        r->api = EVENT_API_CORE_V1;
        dc_log(DC_LOG_INFO, EVENT_LOG_SUBSYS,
               "events.k8s.io/v1 is not served (%s); writing core/v1 Events", resp->err);
        e->is_created = false;
        return true;
    }
    if (resp->status == 404 && e->is_patch) {
        e->is_created = false; /* someone deleted the Event: create it again */
        return true;
    }
    if (resp->status == 409 && !e->is_patch) {
        e->is_created = true; /* an earlier create went through after all */
        return e->count > 1;
    }
    entry_fail(e, resp->err);
    return e->count > e->sent_count;
}

static void entry_done(void *arg, const struct k8s_response *resp)
{
    struct ev_entry *e = arg;
    e->call = NULL;
    e->r->in_flight--;
    if (entry_answer(e, resp)) {
        entry_send(e);
    }
}

static void entry_path(const struct ev_entry *e, char *path, size_t len)
{
    const char *base = e->r->api == EVENT_API_CORE_V1 ? "/api/v1" : "/apis/events.k8s.io/v1";
    if (e->is_patch) {
        snprintf(path, len, "%s/namespaces/%s/events/%s", base, e->ns, e->name);
    } else {
        snprintf(path, len, "%s/namespaces/%s/events", base, e->ns);
    }
}

/* Sends the entry's current state: a PATCH when the server has the Event, else a POST. */
static void entry_send(struct ev_entry *e)
{
    struct k8s_recorder *r = e->r;
    e->is_patch = e->is_created;
    json_t *body = NULL;
    if (e->is_patch) {
        body = body_patch(e);
    } else {
        body = r->api == EVENT_API_CORE_V1 ? body_core_v1(e) : body_events_v1(e);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        entry_fail(e, "out of memory building the request");
        return;
    }
    char path[PATH_MAX_LEN];
    entry_path(e, path, sizeof(path));
    struct k8s_request_opts o = {
        .method = e->is_patch ? K8S_PATCH : K8S_POST,
        .path = path,
        .body = text,
        .body_len = strlen(text),
        .content_type = e->is_patch ? K8S_CONTENT_MERGE_PATCH : K8S_CONTENT_JSON,
        .timeout_ms = K8S_EVENT_TIMEOUT_MS,
        .retries = K8S_EVENT_RETRIES,
    };
    char err[DC_ERR_LEN] = "";
    e->sent_count = e->count;
    int rc = k8s_request(r->client, &o, entry_done, e, &e->call, err);
    free(text);
    if (rc != 0) {
        e->call = NULL;
        entry_fail(e, err);
        return;
    }
    r->in_flight++;
}

/* --- cache and spam filter --- */

static void entry_free(struct ev_entry *e)
{
    if (e == NULL) {
        return;
    }
    if (e->call != NULL) {
        k8s_call_cancel(e->call);
        e->r->in_flight--;
    }
    json_decref(e->what);
    free(e->node.key);
    free(e);
}

/* Makes room for one more entry by evicting the least recently used idle one. Returns 0, or
 * -EBUSY when every entry has a request in flight. */
static int events_make_room(struct k8s_recorder *r)
{
    if (r->events.count < K8S_EVENT_MAX_CACHE) {
        return 0;
    }
    for (struct lru_node *n = r->events.oldest; n != NULL; n = n->newer) {
        struct ev_entry *e = (struct ev_entry *)n;
        if (e->call == NULL) {
            lru_remove(&r->events, n);
            entry_free(e);
            return 0;
        }
    }
    return -EBUSY;
}

/* Takes one token from (object, type)'s bucket; false when it is empty (spam). */
static int spam_accept(struct k8s_recorder *r, const struct k8s_object_ref *obj, const char *type,
                       bool *is_accepted)
{
    const char *fields[] = {obj->api_version, obj->kind, obj->namespace_,
                            obj->name,        obj->uid,  type};
    char *key = NULL;
    size_t len = 0;
    if (key_build(fields, sizeof(fields) / sizeof(fields[0]), &key, &len) != 0) {
        return -ENOMEM;
    }
    uint64_t now = dc_now_ms();
    struct spam_entry *s = (struct spam_entry *)lru_get(&r->spam, key, len);
    if (s != NULL) {
        free(key);
        s->tokens += (double)(now - s->last_ms) / K8S_EVENT_SPAM_REFILL_MS;
        if (s->tokens > K8S_EVENT_SPAM_BURST) {
            s->tokens = K8S_EVENT_SPAM_BURST;
        }
        s->last_ms = now;
    } else {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            free(key);
            return -ENOMEM;
        }
        if (r->spam.count >= K8S_EVENT_MAX_CACHE) {
            struct lru_node *old = r->spam.oldest;
            lru_remove(&r->spam, old);
            free(old->key);
            free(old);
        }
        s->node.key = key;
        s->node.key_len = len;
        s->tokens = K8S_EVENT_SPAM_BURST;
        s->last_ms = now;
        lru_add(&r->spam, &s->node);
    }
    *is_accepted = s->tokens >= 1.0;
    if (*is_accepted) {
        s->tokens -= 1.0;
    }
    return 0;
}

/* A new cache entry for key (taken over), with a fresh Event name. */
static int entry_new(struct k8s_recorder *r, const struct k8s_object_ref *obj, json_t *what,
                     char *key, size_t key_len, struct ev_entry **out)
{
    if (events_make_room(r) != 0) {
        return -EBUSY;
    }
    struct ev_entry *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return -ENOMEM;
    }
    e->r = r;
    e->what = what;
    e->node.key = key;
    e->node.key_len = key_len;
    event_name(obj->name, e->name);
    snprintf(e->ns, sizeof(e->ns), "%s",
             is_empty(obj->namespace_) ? K8S_EVENT_CLUSTER_NAMESPACE : obj->namespace_);
    clock_gettime(CLOCK_REALTIME, &e->first);
    lru_add(&r->events, &e->node);
    *out = e;
    return 0;
}

/* --- public --- */

static int check_field(const char *name, const char *value, char *err)
{
    if (is_empty(value)) {
        return dc_err_set(err, -EINVAL, "event recorder: %s is empty", name);
    }
    if (strlen(value) > K8S_EVENT_MAX_FIELD_LEN) {
        return dc_err_set(err, -EINVAL, "event recorder: %s is longer than %u bytes", name,
                          K8S_EVENT_MAX_FIELD_LEN);
    }
    return 0;
}

int k8s_recorder_new(struct k8s_client *c, const char *component, const char *instance,
                     struct k8s_recorder **out, char *err)
{
    int rc = check_field("component", component, err);
    if (rc == 0) {
        rc = check_field("instance", instance, err);
    }
    if (rc != 0) {
        return rc;
    }
    struct k8s_recorder *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return dc_err_set(err, -ENOMEM, "event recorder: out of memory");
    }
    r->client = c;
    r->component = strdup(component);
    r->instance = strdup(instance);
    if (r->component == NULL || r->instance == NULL || lru_init(&r->events) != 0 ||
        lru_init(&r->spam) != 0) {
        k8s_recorder_free(r);
        return dc_err_set(err, -ENOMEM, "event recorder: out of memory");
    }
    *out = r;
    return 0;
}

void k8s_recorder_free(struct k8s_recorder *r)
{
    if (r == NULL) {
        return;
    }
    while (r->events.oldest != NULL) {
        struct lru_node *n = r->events.oldest;
        lru_remove(&r->events, n);
        entry_free((struct ev_entry *)n);
    }
    while (r->spam.oldest != NULL) {
        struct lru_node *n = r->spam.oldest;
        lru_remove(&r->spam, n);
        free(n->key);
        free(n);
    }
    free(r->events.buckets);
    free(r->spam.buckets);
    free(r->component);
    free(r->instance);
    free(r);
}

static bool is_valid_emit(const struct k8s_object_ref *obj, const char *type, const char *reason,
                          const char *action)
{
    if (obj == NULL || is_empty(obj->api_version) || is_empty(obj->kind) || is_empty(obj->name)) {
        return false;
    }
    if (type == NULL ||
        (strcmp(type, K8S_EVENT_NORMAL) != 0 && strcmp(type, K8S_EVENT_WARNING) != 0)) {
        return false;
    }
    if (!is_empty(obj->namespace_) && strlen(obj->namespace_) > NAMESPACE_MAX_LEN) {
        return false;
    }
    return check_field("reason", reason, NULL) == 0 && check_field("action", action, NULL) == 0;
}

int k8s_event_emit(struct k8s_recorder *r, const struct k8s_object_ref *obj, const char *type,
                   const char *reason, const char *action, const char *note)
{
    if (!is_valid_emit(obj, type, reason, action)) {
        return -EINVAL;
    }
    bool is_accepted = false;
    if (spam_accept(r, obj, type, &is_accepted) != 0) {
        return -ENOMEM;
    }
    r->stats.emitted++;
    if (!is_accepted) {
        r->stats.dropped++;
        return 0;
    }
    json_t *what = what_json(obj, type, reason, action, note);
    const char *fields[] = {
        obj->api_version, obj->kind, obj->namespace_,
        obj->name,        obj->uid,  type,
        reason,           action,    json_string_value(json_object_get(what, "note"))};
    char *key = NULL;
    size_t key_len = 0;
    if (what == NULL ||
        key_build(fields, sizeof(fields) / sizeof(fields[0]), &key, &key_len) != 0) {
        json_decref(what);
        return -ENOMEM;
    }
    struct ev_entry *e = (struct ev_entry *)lru_get(&r->events, key, key_len);
    if (e != NULL) {
        free(key);
        json_decref(what);
    } else {
        int rc = entry_new(r, obj, what, key, key_len, &e);
        if (rc != 0) {
            free(key);
            json_decref(what);
            r->stats.failed++;
            dc_log(DC_LOG_WARN, EVENT_LOG_SUBSYS, "event for %s %s dropped: %s", obj->kind,
                   obj->name,
                   rc == -EBUSY ? "every cached Event has a write in flight" : "out of memory");
            return rc == -EBUSY ? 0 : rc;
        }
    }
    e->count++;
    clock_gettime(CLOCK_REALTIME, &e->last);
    if (e->call == NULL) {
        entry_send(e); /* else entry_done() sends the new count after the answer */
    }
    return 0;
}

size_t k8s_recorder_pending(const struct k8s_recorder *r)
{
    return r->in_flight;
}

bool k8s_recorder_is_core_v1(const struct k8s_recorder *r)
{
    return r->api == EVENT_API_CORE_V1;
}

void k8s_recorder_stats(const struct k8s_recorder *r, struct k8s_recorder_stats *out)
{
    *out = r->stats;
}
