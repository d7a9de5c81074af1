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

/* ---- a lower bound that sees a dominant expert ---- */

/* Multipliers tried for the combined top-side test in oracle_dominant_fits (each gives a valid
 * necessary condition; ORACLE_LAMBDA_LOAD_ONLY stands for the load test alone). */
#define ORACLE_LAMBDAS 7
#define ORACLE_LAMBDA_LOAD_ONLY (-1.0)

/* Whether busiest-device load T survives a relaxation built around the heaviest expert h (load
 * W) on G devices of S slots, duplicates forbidden. If h has c replicas (c distinct devices, c >=
 * W/T), each of those "top" devices has S-1 other slots whose items sum to at most
 * delta = T - W/c, so every item there is <= delta and the top devices take at most c*delta of
 * the other experts' load in at most (S-1)*c items; the other F = G-c devices offer S*F slots of
 * at most T each. Every other expert f (load w_f) is covered by u_f free slots and t_f top slots
 * with u_f*T + t_f*delta >= w_f, so with u_f free slots it needs t_f >= ceil((w_f - u_f*T)^+ /
 * delta) top slots (t_f <= c) and puts at least (w_f - u_f*T)^+ on the top devices (a zero load
 * still takes one slot). T fails for this c when no choice of the u_f with sum <= S*F keeps, for
 * some multiplier lam >= 0, sum t_f + lam * sum load_f / delta <= (S-1)*c + lam*c (a
 * consequence of the two top-side limits); a multiple-choice knapsack over the free slots
 * decides it exactly for each lam. T fails when it fails for every c. dp: S*G+1 scratch. */
static inline int oracle_dominant_fits(const double *w, int32_t n, int32_t G, int32_t S,
                                       double T, double *dp) {
  static const double LAMS[ORACLE_LAMBDAS] = {0, 0.25, 0.5, 1, 2, 4, ORACLE_LAMBDA_LOAD_ONLY};
  int32_t h = 0;
  for (int32_t e = 1; e < n; e++)
    h = w[e] > w[h] ? e : h;
  double W = w[h];
  int32_t cmin = W > 0 ? (int32_t)ceil(W / T - 1e-12) : 1;
  for (int32_t c = cmin < 1 ? 1 : cmin; c <= G; c++) {
    double delta = T - W / (double)c;
    int32_t F = G - c, A1 = (S - 1) * c, A2 = S * F, ok = 1;
    for (int k = 0; k < ORACLE_LAMBDAS && ok; k++) {
      double lam = LAMS[k], budget = lam < 0 ? (double)c * delta : A1 + lam * (double)c;
      for (int32_t u = 0; u <= A2; u++)
        dp[u] = u ? INFINITY : 0;
      for (int32_t f = 0; f < n; f++) {
        if (f == h)
          continue;
        int32_t umax = w[f] > 0 ? (int32_t)ceil(w[f] / T - 1e-12) : 1;
        umax = umax > F ? F : umax;
        /* Multiple choice: u descending so each dp[u] reads the previous expert's row. */
        for (int32_t u = A2; u >= 0; u--) {
          double best = INFINITY;
          for (int32_t uf = 0; uf <= umax && uf <= u; uf++) {
            if (dp[u - uf] == INFINITY)
              continue;
            double rem = w[f] - uf * T;
            rem = rem > 0 ? rem : 0;
            int32_t tf;
            if (rem > 0) {
              if (delta <= 0)
                continue;
              double q = ceil(rem / delta - 1e-9);
              if (q > c)
                continue;
              tf = (int32_t)q;
            } else {
              tf = uf == 0; /* a zero-load expert with no free slot takes a top slot */
            }
            if (tf > c)
              continue;
            double cost = lam < 0 ? rem : tf + (delta > 0 ? lam * rem / delta : 0);
            cost += dp[u - uf];
            best = cost < best ? cost : best;
          }
          dp[u] = best;
        }
      }
      double mn = INFINITY;
      for (int32_t u = 0; u <= A2; u++)
        mn = dp[u] < mn ? dp[u] : mn;
      ok = mn <= budget * (1 + 1e-12) + 1e-9;
    }
    if (ok)
      return 1;
  }
  return 0;
}

/* A lower bound on the duplicate-free optimum of G devices with S slots: the largest T in
 * [lb, hi] that oracle_dominant_fits rejects (found by bisection to a relative 1e-6; lb when it
 * rejects none). lb is a known lower bound (e.g. LB) and hi a load some plan reaches. Strong only
 * when one expert carries many devices' worth of load. */
static inline double oracle_dominant_bound(const double *w, int32_t n, int32_t G, int32_t S,
                                           double lb, double hi) {
  double *dp = malloc(((size_t)S * (size_t)G + 1) * sizeof *dp);
  if (!dp)
    return lb;
  if (oracle_dominant_fits(w, n, G, S, lb, dp)) {
    free(dp);
    return lb;
  }
  double lo = lb;
  while (hi - lo > lo * 1e-6) {
    double mid = (lo + hi) / 2;
    if (oracle_dominant_fits(w, n, G, S, mid, dp))
      hi = mid;
    else
      lo = mid;
  }
  free(dp);
  return lo;
}

#endif /* EPLB_TEST_ORACLES_H */
