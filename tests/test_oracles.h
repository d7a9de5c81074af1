/* test_oracles.h - reference computations the quality tests (and bench_quality) check the
 * library against. Written independently of src/: brute force or straight from the definition,
 * never calling the code under test. Header only. */
#ifndef EPLB_TEST_ORACLES_H
#define EPLB_TEST_ORACLES_H

#include <stdint.h>
#include <stdlib.h>

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

#endif /* EPLB_TEST_ORACLES_H */
