/* eplb_rand.h - the one small seeded generator the library, its tests and benchmarks share
 * (header only, not installed): splitmix64, deterministic for a given seed on every platform. */
#ifndef EPLB_RAND_H
#define EPLB_RAND_H

#include <stdint.h>

/* Advances *state and returns the next 64 random bits (splitmix64). */
static inline uint64_t eplb__splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

#endif /* EPLB_RAND_H */
