/* tiny.c - the exact duplicate-free optimum of a tiny pool (a handful of experts, as in
 * Mixtral's 8, on a few devices) by branch and bound. Experts go heaviest first; for each, every
 * replica count, and for each count every set of that many distinct devices with a free slot
 * and room under the best plan so far (two devices with the same load and used slots are
 * interchangeable for the experts still to come, so only the first of them is tried), counts
 * from the most replicas down. A branch ends once a device would reach the best. Deterministic;
 * a cap on the branches bounds the time (the best plan found by then is kept). */
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Branches explored at most (a deterministic cap; tiny pools need far fewer). */
#define TINY_BRANCH_CAP 1000000

/* The search state. */
typedef struct tiny {
  const double *w;
  int32_t n, G, S;
  const int32_t *order; /* [n] experts heaviest first */
  double *load;         /* [G] device loads */
  int32_t *fill;        /* [G] used slots */
  int32_t *slot;        /* [G*S] expert per slot of the plan being built */
  int32_t *best_slot;   /* [G*S] the best plan found */
  double best;          /* its busiest device; plans must beat it */
  long branches;
  int found;
} tiny;

static void place_expert(tiny *t, int32_t i, int32_t slots_left);

/* Whether a device in [d, x) has device x's load and used slots. Later experts differ from every
 * expert placed so far, so two such devices are interchangeable for the rest of the search: a
 * set with x and without the earlier one was searched as the set with the earlier one instead. */
static int same_as_earlier(const tiny *t, int32_t d, int32_t x) {
  for (int32_t y = d; y < x; y++)
    if (t->fill[y] == t->fill[x] && t->load[y] == t->load[x])
      return 1;
  return 0;
}

/* Places the replicas of expert at position i (count c, size sz) on distinct devices from device
 * d on, `need` of them still to place, then goes on to the next expert. */
static void place_replicas(tiny *t, int32_t i, int32_t c, double sz, int32_t d, int32_t need,
                           int32_t slots_left) {
  if (++t->branches > TINY_BRANCH_CAP)
    return;
  if (need == 0) {
    place_expert(t, i + 1, slots_left - c);
    return;
  }
  for (int32_t x = d; x <= t->G - need; x++) {
    if (t->fill[x] >= t->S || t->load[x] + sz >= t->best || same_as_earlier(t, d, x))
      continue;
    t->slot[x * t->S + t->fill[x]++] = t->order[i];
    t->load[x] += sz;
    place_replicas(t, i, c, sz, x + 1, need - 1, slots_left);
    t->load[x] -= sz;
    t->fill[x]--;
  }
}

/* Chooses the replica count of the expert at position i (every slot left must end up used) and
 * places it; with every expert placed, keeps the plan when it beats the best. */
static void place_expert(tiny *t, int32_t i, int32_t slots_left) {
  if (i == t->n) {
    if (slots_left != 0)
      return;
    double m = 0;
    for (int32_t x = 0; x < t->G; x++)
      m = t->load[x] > m ? t->load[x] : m;
    if (m < t->best) {
      t->best = m;
      t->found = 1;
      memcpy(t->best_slot, t->slot, (size_t)t->G * (size_t)t->S * sizeof *t->slot);
    }
    return;
  }
  int32_t later = t->n - i - 1, e = t->order[i];
  int32_t cmax = slots_left - later < t->G ? slots_left - later : t->G;
  /* Most replicas first: heavy experts split finely lead to light plans early, which prune. */
  for (int32_t c = cmax; c >= 1; c--) {
    /* The later experts can fill at most G slots each. */
    if ((int64_t)(slots_left - c) > (int64_t)later * t->G)
      continue;
    double sz = t->w[e] / c;
    if (sz >= t->best)
      continue;
    place_replicas(t, i, c, sz, 0, c, slots_left);
  }
}

int eplb__tiny_exact(const double *w, int32_t n, int32_t G, int32_t S, double upper,
                     int32_t *slot_expert, double *max_load) {
  eplb__scratch sc = {0};
  tiny t;
  memset(&t, 0, sizeof t);
  t.w = w;
  t.n = n;
  t.G = G;
  t.S = S;
  t.best = upper;
  int32_t *order = eplb__take(&sc, (size_t)n, sizeof *order);
  t.load = eplb__take(&sc, (size_t)G, sizeof *t.load);
  t.fill = eplb__take(&sc, (size_t)G, sizeof *t.fill);
  t.slot = eplb__take(&sc, (size_t)G * (size_t)S, sizeof *t.slot);
  t.best_slot = eplb__take(&sc, (size_t)G * (size_t)S, sizeof *t.best_slot);
  int rc = 0;
  if (sc.failed) {
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
    goto done;
  }
  rc = eplb__order_heaviest(w, n, order);
  if (rc)
    goto done;
  t.order = order;
  /* No plan beats the whole load spread evenly. */
  double total = 0;
  for (int32_t e = 0; e < n; e++)
    total += w[e];
  if (total < upper * G)
    place_expert(&t, 0, G * S);
  if (t.found) {
    memcpy(slot_expert, t.best_slot, (size_t)G * (size_t)S * sizeof *slot_expert);
    *max_load = t.best;
    rc = 1;
  }
done:
  eplb__scratch_free(&sc);
  return rc;
}
