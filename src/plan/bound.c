/* bound.c - the lower bound on the busiest device's load: no plan of a pool of identical devices,
 * whatever its replica counts and placement, does better (eplb_lower_bound; the balanced policy
 * and the reports share it). */
#include <math.h>
#include <stdlib.h>

#include "plan/bound.h"

/* ---- min-max greedy ---- */

/* Whether expert a's share sh[a] outranks b's in the greedy's heap: larger share, then lower
 * index. */
static int share_above(const double *sh, int32_t a, int32_t b) {
  if (sh[a] != sh[b])
    return sh[a] > sh[b];
  return a < b;
}

/* Restores the heap order below position i. */
static void sift_down(int32_t *heap, int32_t len, int32_t i, const double *sh) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, top = i;
    if (l < len && share_above(sh, heap[l], heap[top]))
      top = l;
    if (r < len && share_above(sh, heap[r], heap[top]))
      top = r;
    if (top == i)
      return;
    int32_t t = heap[i];
    heap[i] = heap[top];
    heap[top] = t;
    i = top;
  }
}

/* The exact min-max greedy of the lower bound, on a heap of shares (see quality_int.h). The
 * shares w[e] / d[e] are kept beside the counts, so the heap compares without dividing. */
double eplb__min_max_share(const double *w, int32_t n, int32_t slots, int32_t cap, int32_t *cnt) {
  int32_t *d = cnt ? cnt : eplb__calloc((size_t)n, sizeof *d);
  int32_t *heap = eplb__calloc((size_t)n, sizeof *heap);
  double *sh = eplb__calloc((size_t)n, sizeof *sh);
  if (!d || !heap || !sh) {
    if (!cnt)
      free(d);
    free(heap);
    free(sh);
    return NAN;
  }
  for (int32_t e = 0; e < n; e++) {
    d[e] = 1;
    heap[e] = e;
    sh[e] = w[e];
  }
  int32_t len = n;
  for (int32_t i = n / 2 - 1; i >= 0; i--)
    sift_down(heap, len, i, sh);
  for (int64_t extra = (int64_t)slots - n; extra > 0 && len > 0;) {
    int32_t e = heap[0];
    if (d[e] >= cap) {
      heap[0] = heap[--len];
      sift_down(heap, len, 0, sh);
      continue;
    }
    d[e]++;
    sh[e] = w[e] / (double)d[e];
    extra--;
    sift_down(heap, len, 0, sh);
  }
  double m = 0;
  for (int32_t e = 0; e < n; e++)
    if (sh[e] > m)
      m = sh[e];
  free(heap);
  free(sh);
  if (!cnt)
    free(d);
  return m;
}

/* max(mean device load, min-max share): no pool plan does better. */
double eplb__pool_bound(const double *w, int32_t n, int32_t slots, int32_t ndev) {
  double sum = 0;
  for (int32_t e = 0; e < n; e++)
    sum += w[e];
  double share = eplb__min_max_share(w, n, slots, ndev, NULL);
  double avg = sum / (double)ndev;
  return share > avg ? share : avg;
}

/* ---- public lower bound ---- */

int eplb_lower_bound(const eplb_loads *loads, int32_t layer, int32_t num_slots, int32_t num_gpus,
                     double *out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "lower bound: no output");
  *out = 0;
  if (!loads || !loads->load || layer < 0 || layer >= loads->num_layers)
    return eplb__err(EPLB_EINVAL, "lower bound: no loads or layer %d out of range", layer);
  if (num_gpus < 1 || num_slots < loads->num_experts)
    return eplb__err(EPLB_EINVAL, "lower bound: need num_gpus >= 1 and num_slots >= %d experts "
                                  "(got %d, %d)",
                     loads->num_experts, num_gpus, num_slots);
  const double *w = loads->load + (size_t)layer * (size_t)loads->num_experts;
  double lb = eplb__pool_bound(w, loads->num_experts, num_slots, num_gpus);
  if (isnan(lb))
    return eplb__err(EPLB_ENOMEM, "lower bound: out of memory");
  *out = lb;
  return 0;
}
