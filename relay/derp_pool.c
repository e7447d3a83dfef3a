/* derp_pool: recycled frame buffers in four size classes. Buffers return to
 * a free list, so steady-state relaying allocates nothing; the lists are
 * capped so a burst does not pin memory forever. */
#include "internal.h"

#include <stdlib.h>

static const uint32_t pool_class_size[DERP_POOL_CLASSES] = {DERP_POOL_SMALL, DERP_POOL_MEDIUM,
                                                            DERP_POOL_LARGE, DERP_RBUF_CAP};
/* Free buffers kept per class (about 16, 16, 32 and 64 MiB at most). */
static const uint32_t pool_class_keep[DERP_POOL_CLASSES] = {8192, 1024, 512, 256};

struct derp_pkt *derp__pkt_get(struct derp_pool *pool, size_t len)
{
    int cls = 0;
    while (cls < DERP_POOL_CLASSES && pool_class_size[cls] < len) {
        cls++;
    }
    if (cls == DERP_POOL_CLASSES) {
        return NULL;
    }
    struct derp_pkt *p = pool->free[cls];
    if (p != NULL) {
        pool->free[cls] = p->next;
        pool->nfree[cls]--;
    } else {
        p = malloc(sizeof(*p) + pool_class_size[cls]);
        if (p == NULL) {
            return NULL;
        }
        p->cap = pool_class_size[cls];
        p->cls = (uint8_t)cls;
    }
    p->next = NULL;
    p->len = 0;
    pool->live++;
    return p;
}

void derp__pkt_put(struct derp_pool *pool, struct derp_pkt *p)
{
    if (p == NULL) {
        return;
    }
    pool->live--;
    if (pool->nfree[p->cls] >= pool_class_keep[p->cls]) {
        free(p);
        return;
    }
    p->next = pool->free[p->cls];
    pool->free[p->cls] = p;
    pool->nfree[p->cls]++;
}

void derp__pool_deinit(struct derp_pool *pool)
{
    for (int i = 0; i < DERP_POOL_CLASSES; i++) {
        while (pool->free[i] != NULL) {
            struct derp_pkt *p = pool->free[i];
            pool->free[i] = p->next;
            free(p);
        }
        pool->nfree[i] = 0;
    }
}
