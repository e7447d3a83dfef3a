/* derp_registry: key -> connections, duplicate keys, and PeerGone bookkeeping.
 *
 * Duplicates follow derper's "last writer is active" policy: a new connection
 * for a key becomes active; afterwards whichever connection of the key last
 * sent a frame is active. When a key's last connection goes, every
 * connection that received packets from it gets PeerGone(Disconnected).
 *
 * As in derper, the same holds for a key that lives on a mesh peer: who
 * received its forwarded packets is kept in a remote set (no connections),
 * told PeerGone when the mesh loses the key. A key moving between this relay
 * and a peer keeps one set, switching is_remote, so its receivers carry over. */
#include "internal.h"

#include "derp_key.h"
#include "log.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define REG_INITIAL_BUCKETS 1024u

/* Health text sent to every connection of a duplicated key. */
static const char dup_health_text[] = "duplicate connection: this node key is connected to this "
                                      "DERP server more than once";

int derp__registry_init(struct derp_registry *reg)
{
    reg->buckets = calloc(REG_INITIAL_BUCKETS, sizeof(*reg->buckets));
    if (reg->buckets == NULL) {
        return -ENOMEM;
    }
    reg->nbuckets = REG_INITIAL_BUCKETS;
    reg->nsets = 0;
    randombytes_buf(reg->hash_key, sizeof(reg->hash_key));
    return 0;
}

static void set_free(struct derp_client_set *set)
{
    free(set->watchers);
    free(set);
}

void derp__registry_deinit(struct derp_registry *reg)
{
    for (uint32_t i = 0; i < reg->nbuckets && reg->buckets != NULL; i++) {
        struct derp_client_set *set = reg->buckets[i];
        while (set != NULL) {
            struct derp_client_set *next = set->hnext;
            set_free(set);
            set = next;
        }
    }
    free(reg->buckets);
    reg->buckets = NULL;
    reg->nbuckets = 0;
}

static uint32_t key_bucket(const struct derp_registry *reg, const uint8_t key[static DERP_KEY_LEN])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, DERP_KEY_LEN, reg->hash_key);
    uint32_t v;
    memcpy(&v, h, sizeof(v));
    return v & (reg->nbuckets - 1);
}

/* The key's set, local or remote, or NULL. */
static struct derp_client_set *set_lookup(struct derp_registry *reg,
                                          const uint8_t key[static DERP_KEY_LEN])
{
    struct derp_client_set *set = reg->buckets[key_bucket(reg, key)];
    while (set != NULL && memcmp(set->key, key, DERP_KEY_LEN) != 0) {
        set = set->hnext;
    }
    return set;
}

struct derp_client_set *derp__registry_find(struct derp_registry *reg,
                                            const uint8_t key[static DERP_KEY_LEN])
{
    struct derp_client_set *set = set_lookup(reg, key);
    return set != NULL && !set->is_remote ? set : NULL;
}

static void registry_grow(struct derp_registry *reg)
{
    uint32_t n = reg->nbuckets * 2;
    struct derp_client_set **nb = calloc(n, sizeof(*nb));
    if (nb == NULL) {
        return; /* keep the old table: slower, still correct */
    }
    struct derp_client_set **old = reg->buckets;
    uint32_t oldn = reg->nbuckets;
    reg->buckets = nb;
    reg->nbuckets = n;
    for (uint32_t i = 0; i < oldn; i++) {
        struct derp_client_set *set = old[i];
        while (set != NULL) {
            struct derp_client_set *next = set->hnext;
            uint32_t b = key_bucket(reg, set->key);
            set->hnext = nb[b];
            nb[b] = set;
            set = next;
        }
    }
    free(old);
}

static void send_health(struct derp_conn *c, const char *text)
{
    size_t len = strlen(text);
    uint8_t hdr[DERP_FRAME_HDR_LEN];
    derp_frame_header_encode(hdr, DERP_FRAME_HEALTH, (uint32_t)len);
    derp__conn_send(c, hdr, sizeof(hdr));
    derp__conn_send(c, text, len);
}

static void watchers_broadcast_present(struct derp_server *s, struct derp_conn *c)
{
    if (s->nwatchers == 0) {
        return;
    }
    uint8_t flags = 0;
    flags |= c->is_prober ? DERP_PEER_PRESENT_PROBER : 0;
    flags |= c->can_mesh ? DERP_PEER_PRESENT_MESH_PEER : 0;
    flags |= c->is_not_ideal ? DERP_PEER_PRESENT_NOT_IDEAL : 0;
    if (flags == 0) {
        flags = DERP_PEER_PRESENT_REGULAR;
    }
    uint8_t frame[DERP_PEER_PRESENT_FRAME_LEN];
    derp_frame_peer_present_encode(frame, c->key, c->ip16, c->port, flags);
    for (struct derp_conn *w = s->conns; w != NULL; w = w->next) {
        if (w->is_watcher && w != c) {
            derp__conn_send(w, frame, sizeof(frame));
        }
    }
}

static void watchers_broadcast_gone(struct derp_server *s, const uint8_t key[static DERP_KEY_LEN])
{
    if (s->nwatchers == 0) {
        return;
    }
    uint8_t frame[DERP_PEER_GONE_FRAME_LEN];
    derp_frame_peer_gone_encode(frame, key, DERP_PEER_GONE_DISCONNECTED);
    for (struct derp_conn *w = s->conns; w != NULL; w = w->next) {
        if (w->is_watcher && w->state == DERP_CONN_ACTIVE) {
            derp__conn_send(w, frame, sizeof(frame));
        }
    }
}

static struct derp_client_set *set_new(struct derp_registry *reg,
                                       const uint8_t key[static DERP_KEY_LEN])
{
    struct derp_client_set *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        return NULL;
    }
    memcpy(set->key, key, DERP_KEY_LEN);
    uint32_t b = key_bucket(reg, key);
    set->hnext = reg->buckets[b];
    reg->buckets[b] = set;
    if (++reg->nsets > reg->nbuckets) {
        registry_grow(reg);
    }
    return set;
}

int derp__registry_add(struct derp_server *s, struct derp_conn *c)
{
    struct derp_registry *reg = &s->reg;
    struct derp_client_set *set = set_lookup(reg, c->key);
    if (set == NULL) {
        set = set_new(reg, c->key);
        if (set == NULL) {
            return -ENOMEM;
        }
    }
    set->is_remote = false; /* a remote set's receivers now watch the local key */
    c->set = set;
    c->set_next = set->conns;
    set->conns = c;
    set->nconns++;
    set->active = c;
    if (set->nconns == 2) {
        s->stats.dup_client_keys++;
    }
    if (set->nconns >= 2) {
        for (struct derp_conn *d = set->conns; d != NULL; d = d->set_next) {
            if (!d->is_dup || d == c) {
                send_health(d, dup_health_text);
            }
            d->is_dup = true;
        }
        dc_log(DC_LOG_INFO, "derp", "duplicate connection for key=%s (%u connections)",
               c->key_short, set->nconns);
    }
    watchers_broadcast_present(s, c);
    return 0;
}

static void array_remove(void **arr, uint32_t *n, const void *item)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (arr[i] == item) {
            arr[i] = arr[*n - 1];
            (*n)--;
            return;
        }
    }
}

static void set_notify_gone(struct derp_server *s, struct derp_client_set *set)
{
    uint8_t frame[DERP_PEER_GONE_FRAME_LEN];
    derp_frame_peer_gone_encode(frame, set->key, DERP_PEER_GONE_DISCONNECTED);
    for (uint32_t i = 0; i < set->nwatchers; i++) {
        struct derp_conn *w = set->watchers[i];
        array_remove((void **)w->sources, &w->nsources, set);
        if (w->last_source == set) {
            w->last_source = NULL;
        }
        derp__conn_send(w, frame, sizeof(frame));
        s->stats.peer_gone_disconnected++;
    }
    set->nwatchers = 0;
}

static void set_unlink(struct derp_registry *reg, struct derp_client_set *set)
{
    struct derp_client_set **pp = &reg->buckets[key_bucket(reg, set->key)];
    while (*pp != NULL && *pp != set) {
        pp = &(*pp)->hnext;
    }
    if (*pp == set) {
        *pp = set->hnext;
        reg->nsets--;
    }
}

static void conn_forget_sources(struct derp_registry *reg, struct derp_conn *c)
{
    for (uint32_t i = 0; i < c->nsources; i++) {
        struct derp_client_set *src = c->sources[i];
        array_remove((void **)src->watchers, &src->nwatchers, c);
        if (src->is_remote && src->nwatchers == 0) {
            set_unlink(reg, src); /* nobody left to tell */
            set_free(src);
        }
    }
    c->nsources = 0;
    c->last_source = NULL;
    free(c->sources);
    c->sources = NULL;
    c->sources_cap = 0;
}

void derp__registry_remove(struct derp_server *s, struct derp_conn *c)
{
    struct derp_client_set *set = c->set;
    if (set == NULL) {
        return;
    }
    conn_forget_sources(&s->reg, c);
    struct derp_conn **pp = &set->conns;
    while (*pp != NULL && *pp != c) {
        pp = &(*pp)->set_next;
    }
    if (*pp == c) {
        *pp = c->set_next;
        set->nconns--;
    }
    c->set = NULL;
    c->set_next = NULL;
    if (set->nconns == 0) {
        set->active = NULL;
        watchers_broadcast_gone(s, set->key);
        if (set->nwatchers > 0 && s->mesh != NULL && derp__mesh_forwarder(s, set->key) != NULL) {
            /* Still in the region (on a mesh peer): receivers keep their path,
             * and hear PeerGone once the mesh loses the key too. */
            set->is_remote = true;
            return;
        }
        set_notify_gone(s, set);
        set_unlink(&s->reg, set);
        set_free(set);
        return;
    }
    if (set->nconns == 1) {
        s->stats.dup_client_keys--;
        set->conns->is_dup = false;
        send_health(set->conns, ""); /* clears the duplicate warning */
    }
    /* The most recently active remaining connection takes over. */
    set->active = set->conns;
}

void derp__registry_note_activity(struct derp_server *s, struct derp_conn *c)
{
    (void)s;
    struct derp_client_set *set = c->set;
    if (!c->is_dup || set == NULL || set->conns == c) {
        if (set != NULL && c->is_dup) {
            set->active = c;
        }
        return;
    }
    struct derp_conn **pp = &set->conns;
    while (*pp != NULL && *pp != c) {
        pp = &(*pp)->set_next;
    }
    if (*pp == c) {
        *pp = c->set_next;
        c->set_next = set->conns;
        set->conns = c;
    }
    set->active = c;
}

static int grow_ptr_array(void ***arr, uint32_t *cap)
{
    uint32_t ncap = *cap == 0 ? 4 : *cap * 2;
    void **n = realloc(*arr, ncap * sizeof(**arr));
    if (n == NULL) {
        return -ENOMEM;
    }
    *arr = n;
    *cap = ncap;
    return 0;
}

int derp__registry_note_source(struct derp_conn *dst, struct derp_client_set *src)
{
    if (dst->last_source == src) {
        return 0;
    }
    for (uint32_t i = 0; i < dst->nsources; i++) {
        if (dst->sources[i] == src) {
            dst->last_source = src;
            return 0;
        }
    }
    if (dst->nsources == dst->sources_cap &&
        grow_ptr_array((void ***)&dst->sources, &dst->sources_cap) < 0) {
        return -ENOMEM;
    }
    if (src->nwatchers == src->watchers_cap &&
        grow_ptr_array((void ***)&src->watchers, &src->watchers_cap) < 0) {
        return -ENOMEM;
    }
    dst->sources[dst->nsources++] = src;
    src->watchers[src->nwatchers++] = dst;
    dst->last_source = src;
    return 0;
}

struct derp_client_set *derp__registry_source(struct derp_registry *reg,
                                              const uint8_t key[static DERP_KEY_LEN],
                                              bool may_create_remote)
{
    struct derp_client_set *set = set_lookup(reg, key);
    if (set == NULL && may_create_remote) {
        set = set_new(reg, key);
        if (set != NULL) {
            set->is_remote = true;
        }
    }
    return set;
}

void derp__registry_remote_gone(struct derp_server *s, const uint8_t key[static DERP_KEY_LEN])
{
    struct derp_client_set *set = set_lookup(&s->reg, key);
    if (set == NULL || !set->is_remote) {
        return; /* never sent to anyone here, or connected here: nothing to say */
    }
    if (dc_log_debug_enabled("derp-mesh")) {
        char k[DERP_KEY_SHORT_LEN];
        derp_key_short(key, k);
        dc_log(DC_LOG_DEBUG, "derp-mesh", "client key=%s left the region: PeerGone to %u receivers",
               k, set->nwatchers);
    }
    set_notify_gone(s, set);
    set_unlink(&s->reg, set);
    set_free(set);
}
