/* bounds.c - stage 2 under soft: a tighter lower bound. Under soft every expert keeps one
 * replica on its group's node, so the node of group g carries at least the sum over its experts
 * of load_e / d_e, whatever else it holds; one of its G/N devices carries at least that over
 * G/N. The counts are shared by all groups (sum d_e <= R, 1 <= d_e <= G), so the bound is
 *   LB_soft = max(LB, min over d of max over g of sum_{e in g} load_e / d_e / (G/N)).
 * The inner minimum is exact: for each group, giving its extra replicas one at a time to the
 * expert whose share drops most is optimal for every number of extra replicas (each expert's
 * drops shrink as it gains replicas), so the group's smallest anchored load after k extras,
 * F_g(k), is known for every k; the answer is the smallest value F_g(k) / (G/N) at which the
 * extras every group needs to get there fit in R - E. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* ---- one set's curve ---- */

/* The member of set `set` (home[e] == set, or every e of [first, first + n) when home is NULL)
 * whose next replica lowers its share most, or -1 when all hold cap replicas. */
static int32_t best_gain(const double *w, int32_t first, int32_t n, const int32_t *home,
                         int32_t set, int32_t cap, const int32_t *d, double *gain) {
  int32_t best = -1;
  for (int32_t e = first; e < first + n; e++) {
    if ((home && home[e] != set) || d[e] >= cap)
      continue;
    double g = w[e] / d[e] - w[e] / (d[e] + 1);
    if (best < 0 || g > *gain) {
      best = e;
      *gain = g;
    }
  }
  return best;
}

/* Fills f[0..budget] with a set's smallest anchored load after k extra replicas (flat once
 * every member holds cap replicas); d[] (indexed like w) ends with the counts of the last k. */
static void set_curve(const double *w, int32_t first, int32_t n, const int32_t *home,
                      int32_t set, int32_t cap, int32_t budget, int32_t *d, double *f) {
  double sum = 0;
  for (int32_t e = first; e < first + n; e++)
    if (!home || home[e] == set) {
      d[e] = 1;
      sum += w[e];
    }
  f[0] = sum;
  for (int32_t k = 1; k <= budget; k++) {
    double gain = 0;
    int32_t best = best_gain(w, first, n, home, set, cap, d, &gain);
    if (best >= 0) {
      d[best]++;
      sum -= gain;
    }
    f[k] = sum;
  }
}

/* Orders doubles ascending. */
static int dbl_cmp(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;
  return a < b ? -1 : a > b;
}

/* The extras set g needs to bring its anchored load to v (budget + 1 when it cannot). */
static int32_t need_of(const double *f, int32_t g, int32_t budget, double v) {
  const double *fg = f + (size_t)g * ((size_t)budget + 1);
  int32_t k = 0;
  while (k <= budget && fg[k] > v)
    k++;
  return k;
}

/* Whether every set can bring its anchored load to v within the shared budget. */
static int fits(const double *f, int32_t K, int32_t budget, double v) {
  int64_t need = 0;
  for (int32_t g = 0; g < K; g++) {
    int32_t k = need_of(f, g, budget, v);
    if (k > budget)
      return 0;
    need += k;
  }
  return need <= budget;
}

/* The smallest candidate value (entries of f) at which every set fits; f has K curves. The
 * largest entry always fits: every curve starts at or below it with no extras. */
static double smallest_fit(const double *f, double *cand, int32_t K, int32_t budget) {
  size_t per = (size_t)budget + 1;
  memcpy(cand, f, (size_t)K * per * sizeof *cand);
  qsort(cand, (size_t)K * per, sizeof *cand, dbl_cmp);
  size_t lo = 0, hi = (size_t)K * per - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (fits(f, K, budget, cand[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  return cand[lo];
}

/* ---- bound ---- */

double eplb__soft_bound(const double *w, int32_t E, int32_t K, int32_t N, int32_t R, int32_t G) {
  eplb__scratch sc = {0};
  double lb = eplb__pool_bound(w, E, R, G);
  if (isnan(lb) || N <= 1 || K < 1 || E % K != 0 || G % N != 0 || R < E)
    return lb;
  int32_t gs = E / K, budget = R - E, Gn = G / N;
  size_t per = (size_t)budget + 1;
  double *f = eplb__take(&sc, (size_t)K * per, sizeof *f);
  double *cand = eplb__take(&sc, (size_t)K * per, sizeof *cand);
  int32_t *d = eplb__take(&sc, (size_t)E, sizeof *d);
  if (sc.failed) {
    eplb__scratch_free(&sc);
    return NAN;
  }
  for (int32_t g = 0; g < K; g++)
    set_curve(w, g * gs, gs, NULL, 0, G, budget, d, f + (size_t)g * per);
  double node = smallest_fit(f, cand, K, budget) / Gn;
  eplb__scratch_free(&sc);
  return node > lb ? node : lb;
}

/* ---- counts for soft ---- */

int eplb__anchor_counts(const double *w, int32_t n, const int32_t *home, int32_t nsets,
                        int32_t R, int32_t G, int32_t *cnt) {
  eplb__scratch sc = {0};
  int32_t budget = R - n;
  size_t per = (size_t)budget + 1;
  double *f = eplb__take(&sc, (size_t)nsets * per, sizeof *f);
  double *cand = eplb__take(&sc, (size_t)nsets * per, sizeof *cand);
  if (sc.failed) {
    eplb__scratch_free(&sc);
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  }
  for (int32_t b = 0; b < nsets; b++)
    set_curve(w, 0, n, home, b, G, budget, cnt, f + (size_t)b * per);
  double top = smallest_fit(f, cand, nsets, budget);
  /* Replay each set's greedy for the extras it needs, then spend the rest on the largest
   * shares (min-max share greedy from there). */
  for (int32_t e = 0; e < n; e++)
    cnt[e] = 1;
  int32_t left = budget;
  for (int32_t b = 0; b < nsets; b++)
    for (int32_t k = need_of(f, b, budget, top); k > 0; k--, left--) {
      double gain = 0;
      int32_t e = best_gain(w, 0, n, home, b, G, cnt, &gain);
      if (e < 0)
        break;
      cnt[e]++;
    }
  for (; left > 0; left--) {
    int32_t best = -1;
    for (int32_t e = 0; e < n; e++)
      if (cnt[e] < G && (best < 0 || w[e] / cnt[e] > w[best] / cnt[best]))
        best = e;
    if (best < 0)
      break;
    cnt[best]++;
  }
  eplb__scratch_free(&sc);
  return 0;
}
