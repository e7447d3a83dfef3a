/* derp_rate: a token bucket with golang.org/x/time/rate's Limiter semantics,
 * for per-client byte rates and the accept rate (pure).
 *
 * The bucket holds at most `burst` tokens, starts full and refills at `rate`
 * tokens per second. Taking n tokens succeeds when n are there; otherwise the
 * caller learns how long to wait and nothing is taken (derper reserves and
 * sleeps; the event loop instead pauses the connection and offers the same
 * frame again after the wait, which comes to the same rate). No clock reads:
 * the caller passes dc_now_ms(), and only when the bucket says it needs it. */
#ifndef DC_RELAY_DERP_RATE_H
#define DC_RELAY_DERP_RATE_H

#include <stdbool.h>
#include <stdint.h>

/* A token bucket. The all-zero bucket is unlimited (rate 0 means no limit). */
struct derp_rate {
    double rate_per_s; /* tokens added per second; 0 = unlimited */
    double burst;      /* most tokens held */
    double tokens;     /* tokens now (as of last_ms) */
    uint64_t last_ms;  /* dc_now_ms() of the last refill */
};

/* Sets up r with rate_per_s tokens per second and burst, full at now_ms.
 * rate_per_s <= 0 makes an unlimited bucket. */
void derp_rate_init(struct derp_rate *r, double rate_per_s, double burst, uint64_t now_ms);

/* True when r limits anything. */
bool derp_rate_is_limited(const struct derp_rate *r);

/* Takes n tokens if they are there without a refill (no clock needed). */
bool derp_rate_take_cached(struct derp_rate *r, double n);

/* Charges n tokens already spent (bytes read and skipped): the bucket may go
 * into debt, down to -burst, which later takes wait out of. */
void derp_rate_charge(struct derp_rate *r, double n);

/* Refills r up to now_ms, then takes n tokens (n above burst is clamped to
 * burst, so it can always succeed eventually). Returns 0 when taken, else the
 * milliseconds (>= 1) until n tokens will be there; nothing is taken then. */
uint64_t derp_rate_take(struct derp_rate *r, double n, uint64_t now_ms);

#endif
