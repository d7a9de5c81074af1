/* test_balanced_lns.c - the two-slot neighbourhood search over counts (eplb__pair_lns): the
 * counts it returns are complete and never pair worse than those it was given (recomputed
 * here), from the min-max greedy's counts a few seeds reach the exhaustive optimum of small
 * pools, it is deterministic for a seed, and it leaves counts alone at the stop, past its
 * deadline, or on pools too small to recount. */
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
#include "pair_pools.h"

/* Random small pools per check. */
#define RANDOM_CASES 150
/* Pool sizes: experts in [MIN_N, MAX_N] (more than the five the search recounts at once),
 * devices in [ceil(n/2), MAX_G]. */
#define MIN_N 6
#define MAX_N 8
#define MAX_G 9
/* Steps and seeds per pool, as the library runs it on small pools. */
#define STEPS 200
#define SEEDS 6
/* Of the random pools, at least this many must reach the exhaustive optimum. */
#define MIN_AT_OPTIMUM (RANDOM_CASES * 9 / 10)

/* A random pool: n experts in [MIN_N, MAX_N], G devices in [ceil(n/2), MAX_G]. */
static void random_pool(double *w, int32_t *n, int32_t *G) {
  random_pool_of(w, n, G, MIN_N, MAX_N, MAX_G);
}

/* ---- tests ---- */

static void counts_stay_complete_and_never_pair_worse(void **state) {
  (void)state;
  rng_state = 101;
  for (int c = 0; c < RANDOM_CASES; c++) {
    double w[MAX_N];
    int32_t n, G, cnt[MAX_N];
    random_pool(w, &n, &G);
    eplb__min_max_share(w, n, 2 * G, G, cnt);
    double before = largest_pair(w, n, G, cnt);
    assert_int_equal(eplb__pair_lns(w, n, G, cnt, STEPS, 0, (uint32_t)c, 0), 0);
    assert_true(largest_pair(w, n, G, cnt) <= before * (1 + 1e-12));
  }
}

static void a_few_seeds_reach_the_exhaustive_optimum_of_small_pools(void **state) {
  (void)state;
  rng_state = 202;
  int at = 0, improved = 0;
  for (int c = 0; c < RANDOM_CASES; c++) {
    double w[MAX_N], it[2 * MAX_G], opt = INFINITY;
    int32_t n, G, d[MAX_N], greedy[MAX_N], cnt[MAX_N];
    random_pool(w, &n, &G);
    oracle_pair_optimum(w, n, G, d, 0, 2 * G, it, &opt);
    eplb__min_max_share(w, n, 2 * G, G, greedy);
    double start = largest_pair(w, n, G, greedy), best = start;
    for (uint32_t s = 0; s < SEEDS; s++) {
      memcpy(cnt, greedy, sizeof cnt);
      assert_int_equal(eplb__pair_lns(w, n, G, cnt, STEPS, 0, s, 0), 0);
      best = fmin(best, largest_pair(w, n, G, cnt));
    }
    assert_true(best >= opt * (1 - 1e-12)); /* the oracle is the optimum */
    at += best <= opt * (1 + 1e-12);
    improved += best < start * (1 - 1e-12);
  }
  print_message("at the optimum: %d of %d pools (greedy improved on %d)\n", at, RANDOM_CASES,
                improved);
  assert_true(at >= MIN_AT_OPTIMUM);
  assert_true(improved > 0); /* the greedy alone is not what is being measured */
}

static void the_same_seed_gives_the_same_counts(void **state) {
  (void)state;
  rng_state = 303;
  for (int c = 0; c < 20; c++) {
    double w[MAX_N];
    int32_t n, G, a[MAX_N], b[MAX_N];
    random_pool(w, &n, &G);
    eplb__min_max_share(w, n, 2 * G, G, a);
    memcpy(b, a, sizeof a);
    assert_int_equal(eplb__pair_lns(w, n, G, a, STEPS, 0, 7, 0), 0);
    assert_int_equal(eplb__pair_lns(w, n, G, b, STEPS, 0, 7, 0), 0);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
  }
}

static void counts_at_the_stop_past_the_deadline_or_on_tiny_pools_are_left_alone(void **state) {
  (void)state;
  rng_state = 404;
  for (int c = 0; c < 20; c++) {
    double w[MAX_N];
    int32_t n, G, cnt[MAX_N], orig[MAX_N];
    random_pool(w, &n, &G);
    eplb__min_max_share(w, n, 2 * G, G, cnt);
    memcpy(orig, cnt, sizeof cnt);
    /* at the stop already */
    double stop = largest_pair(w, n, G, cnt);
    assert_int_equal(eplb__pair_lns(w, n, G, cnt, STEPS, stop, 1, 0), 0);
    assert_memory_equal(cnt, orig, (size_t)n * sizeof *cnt);
    /* a deadline already past */
    assert_int_equal(eplb__pair_lns(w, n, G, cnt, STEPS, 0, 1, eplb__now() - 1), 0);
    assert_memory_equal(cnt, orig, (size_t)n * sizeof *cnt);
    /* five experts: all of them would be recounted at once, which is not a neighbourhood */
    assert_int_equal(eplb__pair_lns(w, 5, G, cnt, STEPS, 0, 1, 0), 0);
    assert_memory_equal(cnt, orig, (size_t)n * sizeof *cnt);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counts_stay_complete_and_never_pair_worse),
      cmocka_unit_test(a_few_seeds_reach_the_exhaustive_optimum_of_small_pools),
      cmocka_unit_test(the_same_seed_gives_the_same_counts),
      cmocka_unit_test(counts_at_the_stop_past_the_deadline_or_on_tiny_pools_are_left_alone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
