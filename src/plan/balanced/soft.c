/* soft.c - the improvement search of a layer under hierarchy soft (every expert keeps one
 * replica on its home node, the others go anywhere). Candidates are built by different means and
 * each is polished by the pool engine under the first-replica rule (swaps and count rounds); the
 * lightest wins. In order, each only while the lightest plan so far is still far above the
 * layer's bound:
 *   1. the decomposition (soft_split.c): counts, then nodes, then devices, from the min-max
 *      greedy's counts and, far above, again from the counts of the pool without locality;
 *      with few extra replicas only, else 2 directly;
 *   2. the pool under the rule from the counts that lighten the heaviest node's first replicas
 *      (bounds.c's anchored counts);
 *   3. the target-driven construction under the rule (target.c), from several upper ends
 *      of its target search, without and then with its check of what nodes owe;
 *   4. node-level annealing of the lightest plan (soft_anneal.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* A plan this share above the bound is polished, down to this share. */
#define SOFT_POLISH_FROM 2e-3
/* A plan still this share above the bound after a stage goes on to the next one. */
#define SOFT_FALLBACK_FROM 1e-2
/* A split this share above the bound is split again from the counts of the pool without
 * locality, whose count rounds (SOFT_SECOND_ROUNDS, as elsewhere) move replicas between experts
 * until its packing fits (measured: without it the same benchmark figures within 0.0005 for
 * 0.84x the soft time, but a sigma 2.0 layer of other loads at R 288 1.0077 -> 1.0092 of the
 * mean). */
#define SOFT_SECOND_FROM 1e-2
#define SOFT_SECOND_ROUNDS 24
/* The decomposition runs when the extra replicas are at most this share of the slots (e.g. R 288
 * and R 320 for 256 experts): it spreads the extras over the nodes first, which pays while they
 * are few; with many the pool under the rule alone does as well. */
#define SOFT_SPLIT_MAX_EXTRA 0.25
/* The target construction's search runs from the bound to an upper end, and each end gives a
 * different plan: SOFT_TARGET_TRIES ends spread geometrically from SOFT_TARGET_HI_MIN (just above
 * SOFT_FALLBACK_FROM, the share a plan must beat) to SOFT_TARGET_HI_MAX above the bound, tightest
 * first (they find the most); once without and once with the check of what nodes owe (which
 * takes layers with one dominant expert, whose copies crowd its home node). A list of 16 ends
 * chosen on the benchmark did no better: the same figures on its 12 workloads, and on 24 worst
 * soft R288 1.0136 against the ladder's 1.0128. */
#define SOFT_TARGET_TRIES 16
#define SOFT_TARGET_HI_MIN 0.0105
#define SOFT_TARGET_HI_MAX 0.1

/* The annealing packs the nodes it touches at every move, at a cost that grows with the square of
 * the slots per device: it runs up to this many (measured at 9 slots on 24 workloads, where one
 * R 288 layer reaches it: 2.5x the soft time for worst 1.0136 -> 1.0128, which the target ends
 * above reach alone). */
#define SOFT_ANNEAL_MAX_SLOTS 8

/* One soft search: the layer, the engine's settings, the lightest plan so far. */
typedef struct soft {
  const double *w;
  int32_t E, N, G, R;
  const int32_t *home;
  eplb__pool pl;   /* the engine under the first-replica rule */
  double lb;       /* the layer's lower bound */
  int32_t *row;    /* [R] the lightest plan so far */
  double best;     /* its busiest device */
  int32_t *cand;   /* [R] a candidate */
  int32_t *out;    /* [R] a candidate polished */
  int32_t *cnt;    /* [E] counts */
  int32_t *cnt2;   /* [E] counts of a second split */
} soft;

/* Whether the lightest plan so far is still more than share above the bound. */
static int above(const soft *s, double share) {
  return s->best > s->lb * (1 + share);
}

/* The upper end of target try t, as a share above the bound (t < SOFT_TARGET_TRIES). */
static double target_end(int32_t t) {
  return SOFT_TARGET_HI_MIN *
         pow(SOFT_TARGET_HI_MAX / SOFT_TARGET_HI_MIN, (double)t / (SOFT_TARGET_TRIES - 1));
}

/* Keeps plan (busiest device m) when it is lighter than the lightest so far. */
static void keep(soft *s, const int32_t *plan, double m) {
  if (m < s->best) {
    s->best = m;
    memcpy(s->row, plan, (size_t)s->R * sizeof *plan);
  }
}

/* Polishes s->cand (swaps and count rounds under the rule, down to SOFT_POLISH_FROM above the
 * bound) and keeps the result when lighter. @return 0 or an error of the engine. */
static int polish(soft *s) {
  double m = 0;
  s->pl.init_plan = s->cand;
  s->pl.target = s->lb * (1 + SOFT_POLISH_FROM);
  int rc = eplb__pool_solve(&s->pl, s->out, &m);
  if (!rc)
    keep(s, s->out, m);
  return rc;
}

/* Splits the layer from counts cnt into s->cand and keeps it when lighter. @return 1 when a
 * split was made, 0 when none fits these counts, or an error. */
static int split_from(soft *s, const int32_t *cnt) {
  double m = 0;
  int rc = eplb__soft_split(s->w, s->E, s->home, s->N, s->G / s->N, s->pl.slots, cnt, s->lb,
                            s->cand, &m);
  if (rc == EPLB_EPARAM)
    return 0;
  if (!rc)
    keep(s, s->cand, m);
  return rc ? rc : 1;
}

/* A split from the counts of the pool without locality, which moves replicas between experts
 * until its packing fits (the min-max greedy's counts can pack badly). @return as split_from. */
static int second_split(soft *s) {
  double m = 0;
  eplb__pool q = s->pl;
  q.home = NULL;
  q.block_size = 0;
  q.max_rounds = SOFT_SECOND_ROUNDS;
  int rc = eplb__pool_solve(&q, s->cand, &m);
  if (rc)
    return rc;
  memset(s->cnt2, 0, (size_t)s->E * sizeof *s->cnt2);
  for (int32_t i = 0; i < s->R; i++)
    s->cnt2[s->cand[i]]++;
  if (memcmp(s->cnt, s->cnt2, (size_t)s->E * sizeof *s->cnt) == 0)
    return 0;
  return split_from(s, s->cnt2);
}

/* The pool under the rule from the anchored counts, into s->cand; kept when lighter. */
static int anchored_pool(soft *s) {
  double m = 0;
  int rc = eplb__anchor_counts(s->w, s->E, s->home, s->N, s->R, s->G, s->cnt);
  if (rc)
    return rc;
  eplb__pool q = s->pl;
  q.init_cnt = s->cnt;
  q.init_plan = NULL;
  q.target = 0;
  rc = eplb__pool_solve(&q, s->cand, &m);
  if (!rc)
    keep(s, s->cand, m);
  return rc;
}

int eplb__plan_soft(const double *w, int32_t E, const int32_t *home, int32_t N,
                    const eplb__pool *engine, int32_t *row) {
  eplb__scratch sc = {0};
  int32_t G = engine->ndev, S = engine->slots, R = G * S;
  soft s = {w, E, N, G, R, home, *engine, eplb__pool_bound(w, E, R, G), row, INFINITY,
            eplb__take(&sc, (size_t)R, sizeof(int32_t)), eplb__take(&sc, (size_t)R, sizeof(int32_t)),
            eplb__take(&sc, (size_t)E, sizeof(int32_t)), eplb__take(&sc, (size_t)E, sizeof(int32_t))};
  s.pl.n = E;
  s.pl.w = w;
  s.pl.home = home;
  s.pl.block_size = G / N;
  int rc = sc.failed ? eplb__err(EPLB_ENOMEM, "plan balanced: out of memory") : 0;
  double m = 0;
  /* 1: the min-max greedy's counts, which the split's node search may change (no replica above
   * the bound: no device can be lighter than it anyway). */
  int split = 0;
  if (!rc && (double)(R - E) <= (double)R * SOFT_SPLIT_MAX_EXTRA) {
    eplb__min_max_share(w, E, R, G, s.cnt);
    rc = split_from(&s, s.cnt);
    if (rc >= 0 && above(&s, SOFT_SECOND_FROM)) {
      int again = second_split(&s);
      rc = again < 0 ? again : rc | again;
    }
    split = rc > 0;
    rc = rc < 0 ? rc : 0;
    if (!rc && split && above(&s, SOFT_POLISH_FROM)) {
      memcpy(s.cand, row, (size_t)R * sizeof *row);
      rc = polish(&s);
    }
  }
  /* 2, and without a split only 2. */
  if (!rc && (!split || above(&s, SOFT_FALLBACK_FROM)))
    rc = anchored_pool(&s);
  if (!split)
    goto done;
  for (int32_t t = 0; !rc && t < 2 * SOFT_TARGET_TRIES && above(&s, SOFT_FALLBACK_FROM); t++) {
    double hi = s.lb * (1 + target_end(t % SOFT_TARGET_TRIES));
    rc = eplb__soft_target_solve(w, E, home, N, G / N, S, s.lb, hi, t >= SOFT_TARGET_TRIES,
                                 s.cand, &m);
    if (!rc && m > 0)
      rc = polish(&s);
  }
  if (rc || !above(&s, SOFT_FALLBACK_FROM) || S > SOFT_ANNEAL_MAX_SLOTS ||
      (engine->deadline > 0 && eplb__now() > engine->deadline))
    goto done;
  /* 4: the nodes' contents annealed from the lightest plan, then polished. */
  memcpy(s.cand, row, (size_t)R * sizeof *row);
  rc = eplb__soft_anneal(w, E, home, N, G / N, S, s.lb * (1 + SOFT_FALLBACK_FROM),
                         engine->deadline, s.cand, &m);
  if (!rc && m < s.best) {
    keep(&s, s.cand, m);
    rc = polish(&s);
  }
done:
  eplb__scratch_free(&sc);
  return rc;
}
