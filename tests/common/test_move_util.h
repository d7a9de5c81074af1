/* test_move_util.h - helpers of the step 3 tests: random placements, the synthetic weight
 * pattern, and an independent count of the receives a move needs. Header-only (static). */
#ifndef TEST_MOVE_UTIL_H
#define TEST_MOVE_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eplb.h"

/* A small deterministic generator (splitmix64) so every rank draws the same placements. */
static inline uint64_t tm_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Next random number of the stream *state, in 0 .. n-1. */
static inline uint32_t tm_rand(uint64_t *state, uint32_t n) {
  *state = tm_mix(*state);
  return (uint32_t)(*state % n);
}

/* The synthetic byte at `off` of expert e's copy of tensor t in layer l. */
static inline unsigned char tm_byte(int32_t l, int32_t e, size_t t, size_t off) {
  uint64_t w = tm_mix(((uint64_t)l << 48) ^ ((uint64_t)e << 28) ^ ((uint64_t)t << 20) ^ (off >> 3));
  return (unsigned char)(w >> (8 * (off & 7)));
}

/* A random valid placement: every expert at least once, S slots per device, no device holds an
 * expert twice (S <= E), slots shuffled within each device. Needs G*S >= E. */
static inline eplb_placement *tm_random_placement(int32_t L, int32_t E, int32_t G, int32_t S,
                                                  uint64_t *rng) {
  eplb_placement *p = NULL;
  if (eplb_placement_create(L, E, G * S, G, &p))
    return NULL;
  int32_t *perm = malloc((size_t)E * sizeof *perm);
  int32_t *fill = calloc((size_t)G, sizeof *fill);
  for (int32_t l = 0; l < L; l++) {
    int32_t *row = p->phy2log + (size_t)l * G * S;
    for (int32_t e = 0; e < E; e++)
      perm[e] = e;
    for (int32_t e = E - 1; e > 0; e--) {
      int32_t j = (int32_t)tm_rand(rng, (uint32_t)e + 1), tmp = perm[e];
      perm[e] = perm[j], perm[j] = tmp;
    }
    memset(fill, 0, (size_t)G * sizeof *fill);
    for (int32_t i = 0; i < E; i++) /* cover every expert, spread over devices */
      row[(i % G) * S + fill[i % G]++] = perm[i];
    for (int32_t d = 0; d < G; d++)
      while (fill[d] < S) {
        int32_t e = (int32_t)tm_rand(rng, (uint32_t)E), dup = 0;
        for (int32_t j = 0; j < fill[d]; j++)
          dup |= row[d * S + j] == e;
        if (!dup)
          row[d * S + fill[d]++] = e;
      }
    for (int32_t d = 0; d < G; d++) /* shuffle within the device */
      for (int32_t j = S - 1; j > 0; j--) {
        int32_t k = (int32_t)tm_rand(rng, (uint32_t)j + 1), tmp = row[d * S + j];
        row[d * S + j] = row[d * S + k], row[d * S + k] = tmp;
      }
  }
  free(perm);
  free(fill);
  if (eplb_placement_build_index(p)) {
    eplb_placement_free(p);
    return NULL;
  }
  return p;
}

/* Independent count of the copies that must cross the network: (layer, rank, expert) triples
 * of `to` whose rank holds no copy of the expert in `from`, each counted once. */
static inline int64_t tm_needed_receives(const eplb_placement *from, const eplb_placement *to) {
  int32_t G = to->num_gpus, St = to->num_slots / G, Sf = from->num_slots / G;
  int64_t n = 0;
  for (int32_t l = 0; l < to->num_layers; l++)
    for (int32_t d = 0; d < G; d++)
      for (int32_t i = 0; i < St; i++) {
        int32_t e = to->phy2log[(size_t)l * to->num_slots + d * St + i], seen = 0;
        for (int32_t j = 0; j < i; j++) /* counted already for an earlier slot */
          seen |= to->phy2log[(size_t)l * to->num_slots + d * St + j] == e;
        for (int32_t j = 0; j < Sf; j++)
          seen |= from->phy2log[(size_t)l * from->num_slots + d * Sf + j] == e;
        n += !seen;
      }
  return n;
}

#endif /* TEST_MOVE_UTIL_H */
