/* test_balanced_target.c - the target-driven construction of the balanced policy: its plans are
 * complete and duplicate-free and it reports their true largest load (recomputed here), no plan
 * goes below the lower bound, and on tiny pools the lower bound and the pool engine are checked
 * against the true optimum found by enumerating every placement. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plan/balanced/balanced.h"
#include "core/eplb_rand.h"
#include "test_oracles.h"

/* Random pools per check. */
#define RANDOM_CASES 300
/* Largest pool enumerated exactly (experts, devices, slots). */
#define BRUTE_MAX_N 6
#define BRUTE_MAX_G 3
#define BRUTE_MAX_S 3
/* Relative tolerance on float sums. */
#define TOL 1e-9

/* ---- helpers ---- */

static uint64_t rng_state;

/* splitmix64. */
static uint64_t rnd(void) {
  return eplb__splitmix64(&rng_state);
}

/* A lognormal-like load in [1, ~1e4) with heavy tails (exp of a sum of uniforms). */
static double heavy_load(void) {
  double u = 0;
  for (int i = 0; i < 4; i++)
    u += (double)(rnd() % 1000) / 1000.0;
  return floor(exp(2.3 * u)) + 1;
}

/* Checks a plan independently: every slot holds an expert of the pool, no device holds one
 * twice, every expert has a replica; returns its largest device load (equal shares). */
static double check_plan(const double *w, int32_t n, int32_t G, int32_t S, const int32_t *slot) {
  int32_t cnt[64] = {0};
  for (int32_t k = 0; k < G * S; k++) {
    assert_true(slot[k] >= 0 && slot[k] < n);
    cnt[slot[k]]++;
  }
  for (int32_t e = 0; e < n; e++)
    assert_true(cnt[e] >= 1);
  double mx = 0;
  for (int32_t d = 0; d < G; d++) {
    double l = 0;
    for (int32_t i = 0; i < S; i++) {
      for (int32_t j = 0; j < i; j++)
        assert_int_not_equal(slot[d * S + i], slot[d * S + j]);
      l += w[slot[d * S + i]] / cnt[slot[d * S + i]];
    }
    mx = l > mx ? l : mx;
  }
  return mx;
}

/* ---- brute force ---- */

typedef struct brute {
  const double *w;
  int32_t n, G, S, nsub;
  uint32_t subs[64]; /* S-subsets of the experts as bit masks */
  int32_t pick[BRUTE_MAX_G];
  double best;
} brute;

/* Enumerates devices' subsets in non-decreasing order (devices are interchangeable). */
static void brute_rec(brute *b, int32_t d, int32_t from) {
  if (d == b->G) {
    int32_t cnt[BRUTE_MAX_N] = {0};
    for (int32_t i = 0; i < b->G; i++)
      for (int32_t e = 0; e < b->n; e++)
        cnt[e] += (int32_t)(b->subs[b->pick[i]] >> e & 1u);
    for (int32_t e = 0; e < b->n; e++)
      if (!cnt[e])
        return;
    double mx = 0;
    for (int32_t i = 0; i < b->G; i++) {
      double l = 0;
      for (int32_t e = 0; e < b->n; e++)
        if (b->subs[b->pick[i]] >> e & 1u)
          l += b->w[e] / cnt[e];
      mx = l > mx ? l : mx;
    }
    if (mx < b->best)
      b->best = mx;
    return;
  }
  for (int32_t s = from; s < b->nsub; s++) {
    b->pick[d] = s;
    brute_rec(b, d + 1, s);
  }
}

/* The true optimum: the smallest largest load over every duplicate-free placement. */
static double brute_optimum(const double *w, int32_t n, int32_t G, int32_t S) {
  brute b = {w, n, G, S, 0, {0}, {0}, INFINITY};
  for (uint32_t m = 0; m < (1u << n); m++)
    if (__builtin_popcount(m) == S)
      b.subs[b.nsub++] = m;
  brute_rec(&b, 0, 0);
  return b.best;
}

/* ---- tests ---- */

/* Target plans are valid, report their own largest load, and never beat the lower bound. */
static void target_plans_are_valid_and_report_their_true_maximum(void **state) {
  (void)state;
  rng_state = 11;
  int built = 0;
  for (int c = 0; c < RANDOM_CASES; c++) {
    int32_t G = 2 + (int32_t)(rnd() % 12), S = 2 + (int32_t)(rnd() % 5);
    int32_t n = S + (int32_t)(rnd() % (uint64_t)(G * S - S + 1));
    if (n > 64)
      n = 64;
    double w[64];
    for (int32_t e = 0; e < n; e++)
      w[e] = heavy_load();
    double lb = eplb__pool_bound(w, n, G * S, G), m = 0;
    int32_t slot[64 * 7];
    assert_int_equal(eplb__target_solve(w, n, G, S, lb, 2 * lb, slot, &m), 0);
    if (m == 0)
      continue;
    built++;
    double mx = check_plan(w, n, G, S, slot);
    assert_true(fabs(mx - m) <= TOL * mx);
    assert_true(m >= lb * (1 - TOL));
  }
  /* The construction must succeed on most pools with room up to twice the bound. */
  assert_true(built > RANDOM_CASES / 2);
}

/* On tiny pools the pool engine's plans are valid and never below the true optimum (a check of
 * the enumeration), and the lower bound never exceeds the optimum; how often the engine reaches
 * the optimum is printed (a measure, not a claim). */
static void optimum_of_tiny_pools_is_above_the_bound_and_below_the_engine(void **state) {
  (void)state;
  rng_state = 23;
  int exact = 0, cases = 0;
  double worst = 1;
  for (int c = 0; c < 120; c++) {
    int32_t G = 2 + (int32_t)(rnd() % (BRUTE_MAX_G - 1)), S = 2 + (int32_t)(rnd() % 2);
    int32_t n = S + (int32_t)(rnd() % (uint64_t)(BRUTE_MAX_N - S + 1));
    if (n > G * S)
      n = G * S;
    double w[BRUTE_MAX_N];
    for (int32_t e = 0; e < n; e++)
      w[e] = heavy_load();
    double opt = brute_optimum(w, n, G, S);
    double lb = eplb__pool_bound(w, n, G * S, G);
    assert_true(lb <= opt * (1 + TOL));
    eplb__pool pl = {0};
    pl.n = n;
    pl.w = w;
    pl.ndev = G;
    pl.slots = S;
    pl.max_rounds = 24;
    pl.descent_iters = 1000;
    int32_t slot[BRUTE_MAX_G * BRUTE_MAX_S];
    double m = 0;
    assert_int_equal(eplb__pool_solve(&pl, slot, &m), 0);
    double mx = check_plan(w, n, G, S, slot);
    assert_true(fabs(mx - m) <= TOL * mx);
    assert_true(m >= opt * (1 - TOL));
    exact += m <= opt * (1 + 1e-6);
    worst = m / opt > worst ? m / opt : worst;
    cases++;
  }
  printf("pool engine at the exhaustive optimum on %d of %d tiny pools, worst %.4f x optimum\n",
         exact, cases, worst);
}

/* ---- exact counts with two slots per device ---- */

/* Pools of this many experts and devices are searched over every count vector. */
#define PAIR_N 8
#define PAIR_G 8
#define PAIR_CASES 20

/* With 2 slots per device: LB <= the exact optimum over counts <= the engine's plan, for pools
 * of 8 experts on 8 devices; the gaps are printed (they show how loose LB is with pairs). Pools
 * this small are searched over every count vector, so the engine reaches that optimum (which
 * allows duplicates) on most of them and is within 0.5% of it on average. */
static void pairs_exact_optimum_lies_between_the_bound_and_the_engine(void **state) {
  (void)state;
  rng_state = 31;
  double gap_lb = 0, gap_engine = 0, worst_lb = 1;
  int at_opt = 0;
  for (int c = 0; c < PAIR_CASES; c++) {
    double w[PAIR_N];
    for (int32_t e = 0; e < PAIR_N; e++)
      w[e] = heavy_load();
    int32_t d[PAIR_N];
    double opt = INFINITY, it[2 * PAIR_G];
    oracle_pair_optimum(w, PAIR_N, PAIR_G, d, 0, 2 * PAIR_G, it, &opt);
    double lb = eplb__pool_bound(w, PAIR_N, 2 * PAIR_G, PAIR_G);
    eplb__pool pl = {0};
    pl.n = PAIR_N;
    pl.w = w;
    pl.ndev = PAIR_G;
    pl.slots = 2;
    pl.max_rounds = 24;
    pl.descent_iters = 1200;
    int32_t slot[2 * PAIR_G];
    double m = 0;
    assert_int_equal(eplb__pool_solve(&pl, slot, &m), 0);
    assert_true(fabs(check_plan(w, PAIR_N, PAIR_G, 2, slot) - m) <= TOL * m);
    assert_true(lb <= opt * (1 + TOL));
    assert_true(opt <= m * (1 + TOL));
    gap_lb += opt / lb;
    gap_engine += m / opt;
    at_opt += m <= opt * (1 + TOL);
    worst_lb = opt / lb > worst_lb ? opt / lb : worst_lb;
  }
  printf("2 slots, %d experts on %d devices: exact/LB mean %.4f worst %.4f, engine/exact mean "
         "%.4f, at the exact optimum on %d of %d\n",
         PAIR_N, PAIR_G, gap_lb / PAIR_CASES, worst_lb, gap_engine / PAIR_CASES, at_opt,
         PAIR_CASES);
  assert_true(at_opt * 4 >= PAIR_CASES * 3);
  assert_true(gap_engine / PAIR_CASES <= 1.005);
}

/* ---- the annealing count descent ---- */

/* The largest pair when the items of counts cnt (w_e / cnt_e, cnt_e times) are sorted and the
 * k-th largest goes with the k-th smallest: the best pairing on two slots per device when
 * duplicates are allowed (written here from the definition). */
static double pairing_max(const double *w, const int32_t *cnt, int32_t n, int32_t G) {
  double *it = malloc(2 * (size_t)G * sizeof *it), mx = 0;
  int32_t m = 0;
  for (int32_t e = 0; e < n; e++)
    for (int32_t r = 0; r < cnt[e]; r++)
      it[m++] = w[e] / cnt[e];
  assert_int_equal(m, 2 * G);
  qsort(it, (size_t)m, sizeof *it, oracle_desc_cmp);
  for (int32_t k = 0; k < G; k++)
    mx = it[k] + it[m - 1 - k] > mx ? it[k] + it[m - 1 - k] : mx;
  free(it);
  return mx;
}

/* Temperatures for the annealing test: the one plans use, and one hot enough to wander. */
#define ANNEAL_PLAN 3e-3
#define ANNEAL_HOT 0.5

/* With annealing the descent may keep moves that raise the maximum, so what it returns must be
 * the lightest counts it saw: never heavier than where it started (by the pairing measure it
 * judges with two slots), each count in 1..G summing to 2G, the same counts on a second run,
 * and lighter than the start on some pools (it is not a no-op). */
static void annealed_descent_returns_valid_counts_no_heavier_than_its_start(void **state) {
  (void)state;
  rng_state = 37;
  int lighter = 0;
  for (int c = 0; c < 60; c++) {
    int32_t G = 8 + (int32_t)(rnd() % 57), n = G / 2 + (int32_t)(rnd() % (uint64_t)(G + 1));
    double *w = malloc((size_t)n * sizeof *w);
    int32_t *cnt = malloc((size_t)n * sizeof *cnt), *again = malloc((size_t)n * sizeof *again);
    for (int32_t e = 0; e < n; e++)
      w[e] = heavy_load();
    eplb__min_max_share(w, n, 2 * G, G, cnt);
    double start = pairing_max(w, cnt, n, G);
    /* Every other pool runs hot, so that its last state is often far from the best one. */
    double temp = c % 2 ? ANNEAL_HOT : ANNEAL_PLAN;
    memcpy(again, cnt, (size_t)n * sizeof *cnt);
    assert_int_equal(eplb__count_descent(w, n, G, 2, cnt, 800, 0, 1, temp), 0);
    assert_int_equal(eplb__count_descent(w, n, G, 2, again, 800, 0, 1, temp), 0);
    int32_t sum = 0;
    for (int32_t e = 0; e < n; e++) {
      assert_true(cnt[e] >= 1 && cnt[e] <= G);
      assert_int_equal(cnt[e], again[e]);
      sum += cnt[e];
    }
    assert_int_equal(sum, 2 * G);
    double end = pairing_max(w, cnt, n, G);
    assert_true(end <= start * (1 + TOL));
    lighter += end < start * (1 - 1e-6);
    free(w);
    free(cnt);
    free(again);
  }
  printf("annealed descent lighter than its start on %d of 60 pools\n", lighter);
  assert_true(lighter >= 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(target_plans_are_valid_and_report_their_true_maximum),
      cmocka_unit_test(optimum_of_tiny_pools_is_above_the_bound_and_below_the_engine),
      cmocka_unit_test(pairs_exact_optimum_lies_between_the_bound_and_the_engine),
      cmocka_unit_test(annealed_descent_returns_valid_counts_no_heavier_than_its_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
