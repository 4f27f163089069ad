/* xorshift64*: a small, fast, deterministic generator (random model weights, sampling). Not for
 * anything that needs unpredictability. The state must not be 0. */
#ifndef PHI_RNG_H
#define PHI_RNG_H

#include <stdint.h>

static inline uint64_t rng_next(uint64_t *st) {
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1): the top 24 bits, so every value is exact in float. */
static inline float rng_float01(uint64_t *st) { return (float)(rng_next(st) >> 40) / 16777216.0f; }

#endif
