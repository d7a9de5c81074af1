/* test_oracles.h - reference computations the quality tests (and bench_quality) check the
 * library against. Written independently of src/: brute force or straight from the definition,
 * never calling the code under test. Header only. */
#ifndef EPLB_TEST_ORACLES_H
#define EPLB_TEST_ORACLES_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eplb.h"

/* The busiest device's load of layer l of p under loads x (same L and E), from phy2log alone:
 * every replica carries an equal share of its expert's load. Returns -1 when out of memory. */
static inline double oracle_busiest(const eplb_loads *x, const eplb_placement *p, int32_t l) {
  int32_t R = p->num_slots, G = p->num_gpus, S = R / G, E = x->num_experts;
  const int32_t *row = p->phy2log + (size_t)l * R;
  int32_t *cnt = calloc((size_t)E, sizeof *cnt);
  if (!cnt)
    return -1;
  for (int32_t s = 0; s < R; s++)
    cnt[row[s]]++;
  double mx = 0;
  for (int32_t d = 0; d < G; d++) {
    double sum = 0;
    for (int32_t s = d * S; s < (d + 1) * S; s++)
      sum += x->load[(size_t)l * E + row[s]] / cnt[row[s]];
    mx = sum > mx ? sum : mx;
  }
  free(cnt);
  return mx;
}

/* Orders doubles descending (for qsort). */
static inline int oracle_desc_cmp(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return a < b ? 1 : a > b ? -1 : 0;
}

/* The optimum with two slots per device when duplicates are allowed (so a lower bound on the
 * duplicate-free optimum): every count vector d[0..n-1] (1 <= d_i <= G, sum 2G) is tried, its
 * items w_i / d_i paired largest with smallest (the pairing that minimises the largest pair sum,
 * by the classic exchange argument). Call with e = 0, left = 2G, *best = a large value; d holds
 * n entries, it 2G. Exponential: tiny pools only. */
static inline void oracle_pair_optimum(const double *w, int32_t n, int32_t G, int32_t *d,
                                       int32_t e, int32_t left, double *it, double *best) {
  if (e == n - 1) {
    if (left < 1 || left > G)
      return;
    d[e] = left;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
      for (int32_t r = 0; r < d[i]; r++)
        it[m++] = w[i] / d[i];
    qsort(it, (size_t)m, sizeof *it, oracle_desc_cmp);
    double mx = 0;
    for (int32_t k = 0; k < G; k++)
      mx = it[k] + it[m - 1 - k] > mx ? it[k] + it[m - 1 - k] : mx;
    *best = mx < *best ? mx : *best;
    return;
  }
  for (int32_t c = 1; c <= G && c <= left - (n - 1 - e); c++) {
    d[e] = c;
    oracle_pair_optimum(w, n, G, d, e + 1, left - c, it, best);
  }
}

/* Tiny-pool exact optimum, duplicate-free, any slots per device: state of the search. */
typedef struct oracle_pool {
  const double *w;
  int32_t n, G, S;
  int32_t d[16];        /* counts being tried */
  double item[64];      /* their items, largest first */
  int32_t owner[64];    /* expert of each item */
  int32_t m;            /* items */
  double load[16];      /* device loads */
  int32_t fill[16];     /* device fills */
  unsigned char has[16][16];
  double best;
} oracle_pool;

/* Places items i.. of the current counts, depth first, keeping only placements lighter than
 * the best so far; an empty device is tried once (they are all alike). */
static inline void oracle_place(oracle_pool *o, int32_t i, double mx) {
  if (mx >= o->best)
    return;
  if (i == o->m) {
    o->best = mx;
    return;
  }
  int tried_empty = 0;
  for (int32_t g = 0; g < o->G; g++) {
    int32_t e = o->owner[i];
    if (o->fill[g] == o->S || o->has[g][e])
      continue;
    if (o->fill[g] == 0) {
      if (tried_empty)
        continue;
      tried_empty = 1;
    }
    o->fill[g]++;
    o->has[g][e] = 1;
    o->load[g] += o->item[i];
    oracle_place(o, i + 1, o->load[g] > mx ? o->load[g] : mx);
    o->load[g] -= o->item[i];
    o->has[g][e] = 0;
    o->fill[g]--;
  }
}

/* Tries every count vector (1 <= d_e <= G, sum G*S) from expert e on, `left` slots to give. */
static inline void oracle_counts(oracle_pool *o, int32_t e, int32_t left) {
  if (e == o->n) {
    if (left)
      return;
    o->m = 0;
    for (int32_t i = 0; i < o->n; i++)
      for (int32_t r = 0; r < o->d[i]; r++) {
        int32_t k = o->m++;
        /* insertion, largest first */
        while (k > 0 && o->item[k - 1] < o->w[i] / o->d[i]) {
          o->item[k] = o->item[k - 1];
          o->owner[k] = o->owner[k - 1];
          k--;
        }
        o->item[k] = o->w[i] / o->d[i];
        o->owner[k] = i;
      }
    oracle_place(o, 0, 0);
    return;
  }
  for (int32_t c = 1; c <= o->G && c <= left - (o->n - 1 - e); c++) {
    o->d[e] = c;
    oracle_counts(o, e + 1, left - c);
  }
}

/* The duplicate-free optimum (smallest possible busiest device) of n <= 16 experts on G <= 16
 * devices of S slots (G*S <= 64), by exhaustive search: every count vector, every placement up
 * to device symmetry, pruned by the best so far. Exponential: tiny pools only. */
static inline double oracle_small_optimum(const double *w, int32_t n, int32_t G, int32_t S) {
  static oracle_pool o; /* large: off the stack */
  memset(&o, 0, sizeof o);
  o.w = w;
  o.n = n;
  o.G = G;
  o.S = S;
  o.best = INFINITY;
  oracle_counts(&o, 0, G * S);
  return o.best;
}

#endif /* EPLB_TEST_ORACLES_H */
