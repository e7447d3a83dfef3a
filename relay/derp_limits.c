/* derp_limits: what the server refuses at accept time (accept rate, total
 * and per-address connection caps) and the per-client byte rate set-up.
 * Refusals close the socket right after accept(), before any TLS or HTTP:
 * the cheapest answer, and what derper's rate-limited listener does. */
#include "internal.h"

#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void derp__ip16_from_sockaddr(const struct sockaddr_storage *ss, uint8_t ip16[static 16],
                              uint16_t *port)
{
    memset(ip16, 0, 16);
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        ip16[10] = 0xff;
        ip16[11] = 0xff;
        memcpy(ip16 + 12, &v4->sin_addr, 4);
        *port = ntohs(v4->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        memcpy(ip16, &v6->sin6_addr, 16);
        *port = ntohs(v6->sin6_port);
    }
}

int derp__limits_init(struct derp_server *s, char *err)
{
    const struct derp_server_config *cfg = &s->cfg;
    uint64_t now = dc_now_ms();
    if (cfg->accept_rate_per_sec > 0 && cfg->accept_burst != 0) {
        derp_rate_init(&s->accept_rate, cfg->accept_rate_per_sec, (double)cfg->accept_burst, now);
    }
    if (cfg->client_rate_bytes_per_sec != 0) {
        s->client_burst = cfg->client_burst_bytes;
        if (s->client_burst < DERP_RATE_MIN_BURST) {
            if (cfg->client_burst_bytes != 0) {
                dc_log(DC_LOG_INFO, "derp",
                       "per-client burst %llu bytes raised to %u: one largest frame must fit",
                       (unsigned long long)cfg->client_burst_bytes, DERP_RATE_MIN_BURST);
            }
            s->client_burst = DERP_RATE_MIN_BURST;
        }
    }
    if (cfg->max_conns_per_ip != 0) {
        s->ip_buckets = calloc(DERP_IP_BUCKETS, sizeof(*s->ip_buckets));
        if (s->ip_buckets == NULL) {
            return dc_err_set(err, -ENOMEM, "derp server: out of memory");
        }
        randombytes_buf(s->ip_hash_key, sizeof(s->ip_hash_key));
    }
    return 0;
}

void derp__limits_deinit(struct derp_server *s)
{
    if (s->ip_buckets == NULL) {
        return;
    }
    for (uint32_t i = 0; i < DERP_IP_BUCKETS; i++) {
        while (s->ip_buckets[i] != NULL) {
            struct derp_ip_count *e = s->ip_buckets[i];
            s->ip_buckets[i] = e->hnext;
            free(e);
        }
    }
    free(s->ip_buckets);
    s->ip_buckets = NULL;
}

static struct derp_ip_count **ip_slot(struct derp_server *s, const uint8_t ip16[static 16])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, ip16, 16, s->ip_hash_key);
    uint32_t b = ((uint32_t)h[0] | (uint32_t)h[1] << 8) % DERP_IP_BUCKETS;
    struct derp_ip_count **pp = &s->ip_buckets[b];
    while (*pp != NULL && memcmp((*pp)->ip16, ip16, 16) != 0) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

/* Counts one more connection from ip16 unless at the cap; false = refuse. */
static bool ip_take(struct derp_server *s, const uint8_t ip16[static 16])
{
    struct derp_ip_count **pp = ip_slot(s, ip16);
    if (*pp == NULL) {
        struct derp_ip_count *e = calloc(1, sizeof(*e));
        if (e == NULL) {
            return false;
        }
        memcpy(e->ip16, ip16, 16);
        *pp = e;
    }
    if ((*pp)->n >= s->cfg.max_conns_per_ip) {
        return false;
    }
    (*pp)->n++;
    return true;
}

void derp__limits_release_ip(struct derp_server *s, const uint8_t ip16[static 16])
{
    if (s->ip_buckets == NULL) {
        return;
    }
    struct derp_ip_count **pp = ip_slot(s, ip16);
    struct derp_ip_count *e = *pp;
    if (e == NULL) {
        return;
    }
    if (--e->n == 0) {
        *pp = e->hnext; /* no entry outlives its last connection */
        free(e);
    }
}

const char *derp__limits_accept(struct derp_server *s, const uint8_t ip16[static 16])
{
    if (derp_rate_is_limited(&s->accept_rate) && !derp_rate_take_cached(&s->accept_rate, 1) &&
        derp_rate_take(&s->accept_rate, 1, dc_now_ms()) != 0) {
        s->stats.refused_accept_rate++;
        return "accept_rate";
    }
    if (s->cfg.max_conns != 0 && s->stats.conns_current >= s->cfg.max_conns) {
        s->stats.refused_max_conns++;
        return "max_connections";
    }
    if (s->ip_buckets != NULL && !ip_take(s, ip16)) {
        s->stats.refused_per_ip++;
        return "max_connections_per_ip";
    }
    return NULL;
}
