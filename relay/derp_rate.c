#include "derp_rate.h"

void derp_rate_init(struct derp_rate *r, double rate_per_s, double burst, uint64_t now_ms)
{
    r->rate_per_s = rate_per_s > 0 ? rate_per_s : 0;
    r->burst = burst > 0 ? burst : 0;
    r->tokens = r->burst;
    r->last_ms = now_ms;
}

bool derp_rate_is_limited(const struct derp_rate *r)
{
    return r->rate_per_s > 0;
}

bool derp_rate_take_cached(struct derp_rate *r, double n)
{
    if (r->rate_per_s <= 0) {
        return true;
    }
    if (n > r->burst) {
        n = r->burst;
    }
    if (r->tokens >= n) {
        r->tokens -= n;
        return true;
    }
    return false;
}

void derp_rate_charge(struct derp_rate *r, double n)
{
    if (r->rate_per_s <= 0) {
        return;
    }
    r->tokens -= n;
    if (r->tokens < -r->burst) {
        r->tokens = -r->burst;
    }
}

uint64_t derp_rate_take(struct derp_rate *r, double n, uint64_t now_ms)
{
    if (r->rate_per_s <= 0) {
        return 0;
    }
    if (now_ms > r->last_ms) {
        r->tokens += (double)(now_ms - r->last_ms) * r->rate_per_s / 1000.0;
        if (r->tokens > r->burst) {
            r->tokens = r->burst;
        }
        r->last_ms = now_ms;
    }
    if (derp_rate_take_cached(r, n)) {
        return 0;
    }
    double need = (n > r->burst ? r->burst : n) - r->tokens;
    double wait_ms = need * 1000.0 / r->rate_per_s;
    uint64_t ms = (uint64_t)wait_ms;
    if ((double)ms < wait_ms) {
        ms++; /* round up: waking early would only find too few tokens */
    }
    return ms < 1 ? 1 : ms;
}
