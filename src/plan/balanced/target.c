/* balanced_target.c - a target-driven construction for one pool without locality rules. For a
 * target T every device has capacity T and S slots; experts go largest first, each split into
 * the fewest equal replicas d that fit on the d devices with the most room left (so counts and
 * placement are chosen together), while enough free slots stay for the experts still to come.
 * Slots left over at the end take extra replicas of the expert with the largest replica. A
 * binary search on T keeps the lightest plan built. Deterministic (ties to the lower index). */
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Binary-search steps on the target. */
#define TARGET_STEPS 14

/* ---- state ---- */

typedef struct tstate {
  const double *w;
  int32_t n, G, S;
  int32_t *order;     /* [n] experts by load, largest first */
  int32_t *dev;       /* [G] devices with a free slot, most room first */
  int32_t ndev;       /* entries of dev */
  double *room;       /* [G] target minus load */
  int32_t *fill;      /* [G] used slots */
  int32_t *cnt;       /* [n] replica counts */
  int32_t *slot;      /* [G*S] expert per slot */
  int32_t *tmp;       /* [G] merge scratch */
} tstate;

/* Whether device a has more room than b (then lower index). */
static int roomier(const tstate *t, int32_t a, int32_t b) {
  return t->room[a] != t->room[b] ? t->room[a] > t->room[b] : a < b;
}

/* After the first k entries of t->dev lost room (and full devices were dropped from them),
 * merges them back into order with the rest. */
static void remerge(tstate *t, int32_t k) {
  int32_t m = 0;
  for (int32_t i = 0; i < k; i++)
    if (t->fill[t->dev[i]] < t->S)
      t->tmp[m++] = t->dev[i];
  /* The kept prefix is in tmp[0..m) (still in order: all lost the same room), the rest in
   * dev[k..ndev). Each kept device goes before the first of the rest it is roomier than, found
   * by binary search; the runs of the rest between move as blocks, into dev from the front
   * (o never passes b because m <= k). */
  int32_t b = k, o = 0;
  for (int32_t a = 0; a < m; a++) {
    int32_t lo = b, hi = t->ndev;
    while (lo < hi) {
      int32_t mid = lo + (hi - lo) / 2;
      if (roomier(t, t->tmp[a], t->dev[mid]))
        hi = mid;
      else
        lo = mid + 1;
    }
    memmove(t->dev + o, t->dev + b, (size_t)(lo - b) * sizeof *t->dev);
    o += lo - b;
    b = lo;
    t->dev[o++] = t->tmp[a];
  }
  memmove(t->dev + o, t->dev + b, (size_t)(t->ndev - b) * sizeof *t->dev);
  t->ndev = o + (t->ndev - b);
}

/* Places a replica of expert e of size sz on device d. */
static void put(tstate *t, int32_t d, int32_t e, double sz) {
  t->slot[d * t->S + t->fill[d]++] = e;
  t->room[d] -= sz;
}

/* Builds a plan for target T. @return 1 when every expert found room within T, else 0. */
static int build(tstate *t, double T) {
  int32_t G = t->G, S = t->S;
  for (int32_t d = 0; d < G; d++) {
    t->room[d] = T;
    t->fill[d] = 0;
    t->dev[d] = d;
  }
  t->ndev = G;
  int64_t free_slots = (int64_t)G * S;
  for (int32_t i = 0; i < t->n; i++) {
    int32_t e = t->order[i], left = t->n - i - 1, d = 1;
    while (d <= t->ndev && t->room[t->dev[d - 1]] * d < t->w[e])
      d++;
    if (d > t->ndev || free_slots - d < left)
      return 0;
    double sz = t->w[e] / d;
    for (int32_t j = 0; j < d; j++)
      put(t, t->dev[j], e, sz);
    t->cnt[e] = d;
    free_slots -= d;
    remerge(t, d);
  }
  /* Leftover slots, roomiest device first: one more replica of the expert whose new replica is
   * the largest that still fits the device's room (else the smallest new replica), among the
   * experts the device lacks. */
  while (free_slots > 0) {
    int32_t d0 = t->dev[0], best = -1, fits = 0;
    for (int32_t i = 0; i < t->n; i++) {
      int32_t e = t->order[i], held = 0;
      if (t->cnt[e] >= G)
        continue;
      for (int32_t k = d0 * S; k < d0 * S + t->fill[d0] && !held; k++)
        held = t->slot[k] == e;
      if (held)
        continue;
      double v = t->w[e] / (t->cnt[e] + 1);
      int f = v <= t->room[d0];
      double bv = best >= 0 ? t->w[best] / (t->cnt[best] + 1) : 0;
      if (best < 0 || (f && !fits) || (f && fits && v > bv) || (!f && !fits && v < bv)) {
        best = e;
        fits = f;
      }
    }
    if (best < 0)
      return 0;
    /* The expert's replicas shrink from w/c to w/(c+1) wherever they are. */
    double shrink = t->w[best] / t->cnt[best] - t->w[best] / (t->cnt[best] + 1);
    for (int32_t d = 0; d < G; d++)
      for (int32_t k = d * S; k < d * S + t->fill[d]; k++)
        if (t->slot[k] == best)
          t->room[d] += shrink;
    t->cnt[best]++;
    put(t, d0, best, t->w[best] / t->cnt[best]);
    free_slots--;
    /* Room changed on many devices: re-sort the list of devices with free slots. */
    int32_t m = 0;
    for (int32_t j = 0; j < t->ndev; j++)
      if (t->fill[t->dev[j]] < S)
        t->dev[m++] = t->dev[j];
    t->ndev = m;
    for (int32_t a = 1; a < m; a++) {
      int32_t x = t->dev[a], b = a;
      while (b > 0 && roomier(t, x, t->dev[b - 1])) {
        t->dev[b] = t->dev[b - 1];
        b--;
      }
      t->dev[b] = x;
    }
  }
  return 1;
}

/* The largest device load of the plan in t (room is target minus load). */
static double plan_max(const tstate *t, double T) {
  double m = 0;
  for (int32_t d = 0; d < t->G; d++)
    if (T - t->room[d] > m)
      m = T - t->room[d];
  return m;
}

/* ---- search ---- */

int eplb__target_solve(const double *w, int32_t n, int32_t G, int32_t S, double lo, double hi,
                       int32_t *slot_expert, double *max_load) {
  eplb__scratch sc = {0};
  *max_load = 0;
  tstate t;
  memset(&t, 0, sizeof t);
  t.w = w;
  t.n = n;
  t.G = G;
  t.S = S;
  t.order = eplb__take(&sc, (size_t)n, sizeof *t.order);
  t.dev = eplb__take(&sc, (size_t)G, sizeof *t.dev);
  t.room = eplb__take(&sc, (size_t)G, sizeof *t.room);
  t.fill = eplb__take(&sc, (size_t)G, sizeof *t.fill);
  t.cnt = eplb__take(&sc, (size_t)n, sizeof *t.cnt);
  t.slot = eplb__take(&sc, (size_t)G * (size_t)S, sizeof *t.slot);
  t.tmp = eplb__take(&sc, (size_t)G, sizeof *t.tmp);
  int rc = 0;
  if (sc.failed) {
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
    goto done;
  }
  rc = eplb__order_heaviest(w, n, t.order);
  if (rc)
    goto done;
  double best = 0;
  for (int step = 0; step < TARGET_STEPS && hi > lo; step++) {
    double T = (lo + hi) / 2;
    if (!build(&t, T)) {
      lo = T;
      continue;
    }
    double m = plan_max(&t, T);
    if (best == 0 || m < best) {
      best = m;
      memcpy(slot_expert, t.slot, (size_t)G * (size_t)S * sizeof *slot_expert);
    }
    hi = T < m ? T : m;
  }
  *max_load = best;
done:
  eplb__scratch_free(&sc);
  return rc;
}
