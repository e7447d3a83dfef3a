/* derp_admit: see derp_admit.h. The libcurl multi-socket integration has the
 * shape of k8s-client/k8s_http.c: curl tells which sockets to watch and when
 * to time out (CURLMOPT_SOCKETFUNCTION / TIMERFUNCTION), the loop tells curl
 * when they are ready (curl_multi_socket_action), and finished transfers are
 * collected after every action. */
#include "derp_admit.h"

#include "buf.h"
#include "derp_filewatch.h"
#include "derp_key.h"
#include "derp_policy.h"
#include "log.h"
#include "loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One controller answer kept for DERP_ADMIT_CACHE_MS. */
struct cache_slot {
    uint8_t key[DERP_KEY_LEN];
    uint64_t expires_ms; /* 0 = empty */
    bool allow;
};

/* A socket curl asked us to watch. */
struct admit_sock {
    struct dc_io io;
    struct derp_admit *a; /* borrowed */
    bool is_used;
    struct admit_sock *next; /* owned list of the admit */
};

struct derp_admit_req {
    struct derp_admit *a; /* borrowed */
    CURL *easy;           /* owned */
    derp_admit_cb cb;     /* NULL once cancelled */
    void *data;           /* borrowed */
    uint8_t key[DERP_KEY_LEN];
    char body[DERP_ADMIT_MAX_BODY_LEN]; /* first bytes of the answer */
    size_t body_len;
    struct derp_admit_req *next, *prev; /* in-flight list */
};

struct derp_admit {
    struct dc_loop *loop; /* borrowed */
    char *keys_path;      /* owned; NULL = no list */
    struct derp_keyset keys;
    uint8_t keys_digest[crypto_generichash_BYTES]; /* of the file last loaded */
    bool has_digest;                               /* keys_digest is set */
    struct derp_filewatch watch;
    derp_admit_changed_cb changed_cb;
    void *changed_data;
    char *url; /* owned; NULL = no controller */
    bool fail_open;
    bool has_curl_global;
    CURLM *multi;               /* owned */
    struct curl_slist *headers; /* owned: Content-Type of every request */
    struct dc_timer timer;
    struct admit_sock *socks;        /* owned */
    struct derp_admit_req *inflight; /* owned */
    uint32_t npending;
    struct cache_slot *cache; /* owned, DERP_ADMIT_CACHE_SLOTS */
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    /* counters */
    uint64_t requests[DERP_ADMIT_RESULT_COUNT]; /* controller requests by outcome */
    uint64_t cache_hits;
    uint64_t reloads_ok, reloads_failed;
};

static const char *const result_names[DERP_ADMIT_RESULT_COUNT] = {
    "allowed", "fail_open", "not_listed", "denied", "unreachable", "error", "pending"};

const char *derp_admit_result_name(enum derp_admit_result r)
{
    return (unsigned)r < DERP_ADMIT_RESULT_COUNT ? result_names[r] : "unknown";
}

bool derp_admit_result_is_allowed(enum derp_admit_result r)
{
    return r == DERP_ADMIT_ALLOWED || r == DERP_ADMIT_FAIL_OPEN;
}

/* ---- allowed-keys file ---- */

/* Reads all of path (at most DERP_ALLOWED_KEYS_MAX_LEN) into *out (caller frees). */
static int read_file(const char *path, char **out, size_t *out_len, char *err)
{
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        dc_err_set(err, rc, "allowed keys file `%s': %s", path, dc_strerror(rc));
        goto out;
    }
    if (st.st_size > (off_t)DERP_ALLOWED_KEYS_MAX_LEN) {
        rc = dc_err_set(err, -EMSGSIZE, "allowed keys file `%s': larger than %u bytes", path,
                        DERP_ALLOWED_KEYS_MAX_LEN);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            dc_err_set(err, rc, "allowed keys file `%s': %s", path, dc_strerror(rc));
            goto out;
        }
        got += (size_t)n;
    }
    if (buf == NULL) {
        rc = dc_err_set(err, -ENOMEM, "allowed keys file `%s': out of memory", path);
        goto out;
    }
    *out = buf;
    *out_len = got;
    buf = NULL;
out:
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

struct bad_lines {
    const char *path;
    unsigned n;
};

static void log_bad_line(void *data, unsigned line, const char *why)
{
    struct bad_lines *b = data;
    b->n++;
    dc_log(DC_LOG_WARN, "derp", "allowed keys file `%s' line %u: %s (line skipped)", b->path, line,
           why);
}

/* Loads the file; keeps the old list on failure. force: even if unchanged. */
static int keys_load(struct derp_admit *a, bool force, char *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(a->keys_path, &text, &len, err);
    if (rc < 0) {
        return rc;
    }
    uint8_t digest[crypto_generichash_BYTES];
    crypto_generichash(digest, sizeof(digest), (const uint8_t *)text, len, NULL, 0);
    if (!force && a->has_digest && memcmp(digest, a->keys_digest, sizeof(digest)) == 0) {
        free(text);
        return 1; /* unchanged */
    }
    struct derp_keyset fresh = {0};
    struct bad_lines bad = {.path = a->keys_path};
    rc = derp_keyset_parse(text, len, &fresh, log_bad_line, &bad);
    free(text);
    if (rc < 0) {
        return dc_err_set(err, rc, "allowed keys file `%s': out of memory", a->keys_path);
    }
    derp_keyset_deinit(&a->keys);
    a->keys = fresh;
    memcpy(a->keys_digest, digest, sizeof(digest));
    a->has_digest = true;
    dc_log(DC_LOG_INFO, "derp", "allowed keys file `%s' loaded: %zu keys, %u bad lines",
           a->keys_path, a->keys.n, bad.n);
    return 0;
}

static void keys_reload(struct derp_admit *a, bool force)
{
    char err[DC_ERR_LEN];
    int rc = keys_load(a, force, err);
    if (rc < 0) {
        a->reloads_failed++;
        dc_log(DC_LOG_WARN, "derp", "%s; keeping the previous %zu keys", err, a->keys.n);
        return;
    }
    if (rc == 0) {
        a->reloads_ok++;
        if (a->changed_cb != NULL) {
            a->changed_cb(a->changed_data);
        }
    }
}

static void keys_changed(void *data)
{
    keys_reload(data, false);
}

void derp_admit_reload(struct derp_admit *a)
{
    if (a->keys_path != NULL) {
        keys_reload(a, true);
    }
}

bool derp_admit_is_listed(const struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN])
{
    return a->keys_path == NULL || derp_keyset_has(&a->keys, key);
}

void derp_admit_set_changed_cb(struct derp_admit *a, derp_admit_changed_cb cb, void *data)
{
    a->changed_cb = cb;
    a->changed_data = data;
}

/* ---- the verdict cache ---- */

static struct cache_slot *cache_slot(struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, DERP_KEY_LEN, a->hash_key);
    uint32_t i =
        ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16) % DERP_ADMIT_CACHE_SLOTS;
    return &a->cache[i];
}

static void cache_put(struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN], bool allow)
{
    struct cache_slot *s = cache_slot(a, key);
    memcpy(s->key, key, DERP_KEY_LEN);
    s->allow = allow;
    s->expires_ms = dc_now_ms() + DERP_ADMIT_CACHE_MS;
}

/* Returns 1 (allow), 0 (deny) or -1 (no fresh answer). */
static int cache_get(struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN])
{
    struct cache_slot *s = cache_slot(a, key);
    if (s->expires_ms == 0 || s->expires_ms <= dc_now_ms() ||
        memcmp(s->key, key, DERP_KEY_LEN) != 0) {
        return -1;
    }
    return s->allow ? 1 : 0;
}

/* ---- the controller: libcurl multi on the loop ---- */

static void after_action(struct derp_admit *a);

static void sock_io_cb(struct dc_loop *loop, struct dc_io *io, uint32_t events)
{
    (void)loop;
    struct admit_sock *sk = io->data;
    struct derp_admit *a = sk->a;
    int mask = ((events & DC_IO_READ) ? CURL_CSELECT_IN : 0) |
               ((events & DC_IO_WRITE) ? CURL_CSELECT_OUT : 0) |
               ((events & (DC_IO_ERROR | DC_IO_HUP)) ? CURL_CSELECT_ERR : 0);
    int running = 0;
    /* sk may be recycled by the socket callback from here on: use only a. */
    curl_multi_socket_action(a->multi, io->fd, mask, &running);
    after_action(a);
}

static struct admit_sock *sock_get(struct derp_admit *a)
{
    for (struct admit_sock *sk = a->socks; sk != NULL; sk = sk->next) {
        if (!sk->is_used) {
            sk->is_used = true;
            return sk;
        }
    }
    struct admit_sock *sk = calloc(1, sizeof(*sk));
    if (sk == NULL) {
        return NULL;
    }
    sk->a = a;
    sk->is_used = true;
    sk->next = a->socks;
    a->socks = sk;
    return sk;
}

static int socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct derp_admit *a = userp;
    struct admit_sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL) {
            dc_io_stop(a->loop, &sk->io);
            sk->is_used = false;
            curl_multi_assign(a->multi, s, NULL);
        }
        return 0;
    }
    if (sk == NULL) {
        sk = sock_get(a);
        if (sk == NULL) {
            return -1;
        }
        sk->io = (struct dc_io){.fd = s, .cb = sock_io_cb, .data = sk};
        curl_multi_assign(a->multi, s, sk);
    }
    uint32_t ev =
        ((what & CURL_POLL_IN) ? DC_IO_READ : 0) | ((what & CURL_POLL_OUT) ? DC_IO_WRITE : 0);
    return dc_io_start(a->loop, &sk->io, ev) < 0 ? -1 : 0;
}

static void timer_cb(struct dc_loop *loop, struct dc_timer *t)
{
    (void)loop;
    struct derp_admit *a = t->data;
    int running = 0;
    curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    after_action(a);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct derp_admit *a = userp;
    if (timeout_ms < 0) {
        dc_timer_stop(a->loop, &a->timer);
    } else {
        dc_timer_start(a->loop, &a->timer, (uint64_t)timeout_ms);
    }
    return 0;
}

static size_t write_fn(char *p, size_t size, size_t nmemb, void *userp)
{
    struct derp_admit_req *r = userp;
    size_t n = size * nmemb;
    size_t room = sizeof(r->body) - r->body_len;
    size_t take = n < room ? n : room; /* the rest is read and dropped, as LimitReader does */
    memcpy(r->body + r->body_len, p, take);
    r->body_len += take;
    return n;
}

static void req_free(struct derp_admit *a, struct derp_admit_req *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        a->inflight = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    a->npending--;
    curl_multi_remove_handle(a->multi, r->easy);
    curl_easy_cleanup(r->easy);
    free(r);
}

/* Turns a finished transfer into an outcome, with why for refusals. */
static enum derp_admit_result req_outcome(struct derp_admit *a, struct derp_admit_req *r,
                                          CURLcode cc, char *why)
{
    long status = 0;
    bool allow = false;
    char perr[DC_ERR_LEN];
    if (cc != CURLE_OK) {
        dc_err_set(why, -EHOSTUNREACH, "admission controller unreachable: %s",
                   curl_easy_strerror(cc));
        return a->fail_open ? DERP_ADMIT_FAIL_OPEN : DERP_ADMIT_UNREACHABLE;
    }
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        dc_err_set(why, -EPROTO, "admission controller answered HTTP %ld", status);
        return DERP_ADMIT_ERROR;
    }
    if (derp_admit_response_parse(r->body, r->body_len, &allow, perr) < 0) {
        dc_err_set(why, -EPROTO, "%s", perr);
        return DERP_ADMIT_ERROR;
    }
    cache_put(a, r->key, allow);
    if (!allow) {
        dc_err_set(why, -EACCES, "admission controller said Allow false");
        return DERP_ADMIT_DENIED;
    }
    return DERP_ADMIT_ALLOWED;
}

static void after_action(struct derp_admit *a)
{
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(a->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        struct derp_admit_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        char why[DC_ERR_LEN] = "";
        enum derp_admit_result res = req_outcome(a, r, m->data.result, why);
        a->requests[res]++;
        derp_admit_cb cb = r->cb;
        void *data = r->data;
        req_free(a, r); /* m is invalid from here on */
        if (cb != NULL) {
            cb(data, res, why);
        }
    }
}

/* Starts a POST for key from ip16. Returns 0 and *out, or negative errno. */
static int req_start(struct derp_admit *a, const uint8_t key[static DERP_KEY_LEN],
                     const uint8_t ip16[static 16], struct derp_admit_req **out)
{
    char json[DERP_ADMIT_REQUEST_MAX];
    int n = derp_admit_request_format(key, ip16, json, sizeof(json));
    if (n < 0) {
        return n;
    }
    struct derp_admit_req *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->easy = curl_easy_init()) == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->a = a;
    memcpy(r->key, key, DERP_KEY_LEN);
    CURLcode cc = CURLE_OK;
    cc |= curl_easy_setopt(r->easy, CURLOPT_URL, a->url);
    cc |= curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE, (long)n);
    cc |= curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, json);
    cc |= curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, a->headers);
    cc |= curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)DERP_ADMIT_TIMEOUT_MS);
    cc |= curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    cc |= curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_fn);
    cc |= curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    cc |= curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    cc |= curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cc != CURLE_OK || curl_multi_add_handle(a->multi, r->easy) != CURLM_OK) {
        curl_easy_cleanup(r->easy);
        free(r);
        return -ENOMEM;
    }
    r->next = a->inflight;
    if (a->inflight != NULL) {
        a->inflight->prev = r;
    }
    a->inflight = r;
    a->npending++;
    *out = r;
    return 0;
}

enum derp_admit_result derp_admit_check(struct derp_admit *a,
                                        const uint8_t key[static DERP_KEY_LEN],
                                        const uint8_t ip16[static 16], derp_admit_cb cb, void *data,
                                        struct derp_admit_req **req, char *why)
{
    *req = NULL;
    if (!derp_admit_is_listed(a, key)) {
        dc_err_set(why, -EACCES, "not in the allowed keys file");
        return DERP_ADMIT_NOT_LISTED;
    }
    if (a->url == NULL) {
        return DERP_ADMIT_ALLOWED;
    }
    int cached = cache_get(a, key);
    if (cached >= 0) {
        a->cache_hits++;
        if (cached == 0) {
            dc_err_set(why, -EACCES, "admission controller said Allow false (cached)");
            return DERP_ADMIT_DENIED;
        }
        return DERP_ADMIT_ALLOWED;
    }
    int rc = a->npending >= DERP_ADMIT_MAX_PENDING ? -EBUSY : req_start(a, key, ip16, req);
    if (rc < 0) {
        enum derp_admit_result r = a->fail_open ? DERP_ADMIT_FAIL_OPEN : DERP_ADMIT_UNREACHABLE;
        a->requests[r]++;
        dc_err_set(why, rc, "admission controller not asked: %s",
                   rc == -EBUSY ? "too many requests in flight" : dc_strerror(rc));
        return r;
    }
    (*req)->cb = cb;
    (*req)->data = data;
    return DERP_ADMIT_PENDING;
}

void derp_admit_cancel(struct derp_admit *a, struct derp_admit_req *req)
{
    (void)a;
    if (req != NULL) {
        req->cb = NULL;
        req->data = NULL;
    }
}

/* ---- lifetime ---- */

static int verify_setup(struct derp_admit *a, const struct derp_admit_config *cfg, char *err)
{
    if (strncmp(cfg->verify_url, "http://", 7) != 0 &&
        strncmp(cfg->verify_url, "https://", 8) != 0) {
        return dc_err_set(err, -EINVAL, "verify-client-url: want an http:// or https:// URL: `%s'",
                          cfg->verify_url);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return dc_err_set(err, -ENOMEM, "verify-client-url: libcurl init failed");
    }
    a->has_curl_global = true;
    a->url = strdup(cfg->verify_url);
    a->cache = calloc(DERP_ADMIT_CACHE_SLOTS, sizeof(*a->cache));
    a->multi = curl_multi_init();
    a->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (a->url == NULL || a->cache == NULL || a->multi == NULL || a->headers == NULL) {
        return dc_err_set(err, -ENOMEM, "verify-client-url: out of memory");
    }
    a->fail_open = cfg->verify_fail_open;
    a->timer = (struct dc_timer){.cb = timer_cb, .data = a};
    randombytes_buf(a->hash_key, sizeof(a->hash_key));
    CURLMcode mc = CURLM_OK;
    mc |= curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    mc |= curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
    mc |= curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    mc |= curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
    return mc == CURLM_OK ? 0 : dc_err_set(err, -ENOMEM, "verify-client-url: libcurl setup failed");
}

static int keys_setup(struct derp_admit *a, const char *path, char *err)
{
    a->keys_path = strdup(path);
    if (a->keys_path == NULL) {
        return dc_err_set(err, -ENOMEM, "allowed keys file: out of memory");
    }
    int rc = keys_load(a, true, err);
    if (rc < 0) {
        return rc;
    }
    const char *paths[1] = {path};
    return derp_filewatch_start(&a->watch, a->loop, paths, 1, keys_changed, a, err);
}

int derp_admit_new(struct dc_loop *loop, const struct derp_admit_config *cfg,
                   struct derp_admit **out, char *err)
{
    struct derp_admit *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return dc_err_set(err, -ENOMEM, "admission: out of memory");
    }
    a->loop = loop;
    a->watch.io.fd = -1;
    int rc = 0;
    if (cfg->allowed_keys_file != NULL) {
        rc = keys_setup(a, cfg->allowed_keys_file, err);
    }
    if (rc == 0 && cfg->verify_url != NULL) {
        rc = verify_setup(a, cfg, err);
    }
    if (rc < 0) {
        derp_admit_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void derp_admit_free(struct derp_admit *a)
{
    if (a == NULL) {
        return;
    }
    derp_filewatch_stop(&a->watch);
    while (a->inflight != NULL) {
        req_free(a, a->inflight);
    }
    if (a->loop != NULL) {
        dc_timer_stop(a->loop, &a->timer);
    }
    curl_multi_cleanup(a->multi); /* after the easy handles: its sockets are closed now */
    while (a->socks != NULL) {
        struct admit_sock *sk = a->socks;
        a->socks = sk->next;
        dc_io_stop(a->loop, &sk->io);
        free(sk);
    }
    curl_slist_free_all(a->headers);
    if (a->has_curl_global) {
        curl_global_cleanup();
    }
    derp_keyset_deinit(&a->keys);
    free(a->keys_path);
    free(a->url);
    free(a->cache);
    free(a);
}

void derp_admit_metrics_format(const struct derp_admit *a, struct dc_buf *out)
{
    if (a->keys_path != NULL) {
        dc_buf_printf(out,
                      "# HELP derp_allowed_keys Keys in the allowed keys file.\n"
                      "# TYPE derp_allowed_keys gauge\nderp_allowed_keys %zu\n"
                      "# HELP derp_allowed_keys_reloads_total Reloads of the allowed keys file.\n"
                      "# TYPE derp_allowed_keys_reloads_total counter\n"
                      "derp_allowed_keys_reloads_total{result=\"ok\"} %llu\n"
                      "derp_allowed_keys_reloads_total{result=\"error\"} %llu\n",
                      a->keys.n, (unsigned long long)a->reloads_ok,
                      (unsigned long long)a->reloads_failed);
    }
    if (a->url == NULL) {
        return;
    }
    dc_buf_printf(out, "# HELP derp_admission_requests_total Admission controller requests, by "
                       "outcome.\n# TYPE derp_admission_requests_total counter\n");
    static const enum derp_admit_result shown[] = {DERP_ADMIT_ALLOWED, DERP_ADMIT_DENIED,
                                                   DERP_ADMIT_FAIL_OPEN, DERP_ADMIT_UNREACHABLE,
                                                   DERP_ADMIT_ERROR};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++) {
        dc_buf_printf(out, "derp_admission_requests_total{result=\"%s\"} %llu\n",
                      derp_admit_result_name(shown[i]), (unsigned long long)a->requests[shown[i]]);
    }
    dc_buf_printf(out,
                  "# HELP derp_admission_cache_hits_total Admission answers reused from the "
                  "cache.\n# TYPE derp_admission_cache_hits_total counter\n"
                  "derp_admission_cache_hits_total %llu\n# HELP derp_admission_pending Admission "
                  "requests in flight.\n# TYPE derp_admission_pending gauge\n"
                  "derp_admission_pending %u\n",
                  (unsigned long long)a->cache_hits, a->npending);
}
