/* bound_soft.c - a tighter lower bound for hierarchy soft. Under soft every expert keeps one
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

#include "quality_int.h"

/* ---- one group's curve ---- */

/* Fills f[0..budget] with a group's smallest anchored load after k extra replicas (the curve
 * stays flat once every expert holds cap replicas). d[] is scratch for the group's counts. */
static void group_curve(const double *w, int32_t n, int32_t cap, int32_t budget, int32_t *d,
                        double *f) {
  double sum = 0;
  for (int32_t e = 0; e < n; e++) {
    d[e] = 1;
    sum += w[e];
  }
  f[0] = sum;
  for (int32_t k = 1; k <= budget; k++) {
    int32_t best = -1;
    double gain = 0;
    for (int32_t e = 0; e < n; e++) {
      if (d[e] >= cap)
        continue;
      double g = w[e] / d[e] - w[e] / (d[e] + 1);
      if (best < 0 || g > gain) {
        best = e;
        gain = g;
      }
    }
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

/* Whether every group can bring its anchored load to v within the shared budget. */
static int fits(const double *f, int32_t K, int32_t budget, double v) {
  int64_t need = 0;
  for (int32_t g = 0; g < K; g++) {
    const double *fg = f + (size_t)g * ((size_t)budget + 1);
    int32_t k = 0;
    while (k <= budget && fg[k] > v)
      k++;
    if (k > budget)
      return 0;
    need += k;
  }
  return need <= budget;
}

/* ---- bound ---- */

double eplb__soft_bound(const double *w, int32_t E, int32_t K, int32_t N, int32_t R, int32_t G) {
  double lb = eplb__pool_bound(w, E, R, G);
  if (isnan(lb) || N <= 1 || K < 1 || E % K != 0 || G % N != 0 || R < E)
    return lb;
  int32_t gs = E / K, budget = R - E, Gn = G / N;
  size_t per = (size_t)budget + 1;
  double *f = eplb__calloc((size_t)K * per, sizeof *f);
  double *cand = eplb__calloc((size_t)K * per, sizeof *cand);
  int32_t *d = eplb__calloc((size_t)gs, sizeof *d);
  if (!f || !cand || !d) {
    free(f);
    free(cand);
    free(d);
    return NAN;
  }
  for (int32_t g = 0; g < K; g++)
    group_curve(w + (size_t)g * gs, gs, G, budget, d, f + (size_t)g * per);
  memcpy(cand, f, (size_t)K * per * sizeof *cand);
  qsort(cand, (size_t)K * per, sizeof *cand, dbl_cmp);
  /* The smallest candidate value that fits (the largest always does: every curve starts at or
   * below it with k = 0). */
  size_t lo = 0, hi = (size_t)K * per - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (fits(f, K, budget, cand[mid]))
      hi = mid;
    else
      lo = mid + 1;
  }
  double node = cand[lo] / Gn;
  free(f);
  free(cand);
  free(d);
  return node > lb ? node : lb;
}
