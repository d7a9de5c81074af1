/* test_soft_target.c - the target-driven construction under soft's first-replica rule
 * (eplb__soft_target_solve): on random layers every plan it returns, with and without the check
 * that nodes can still take the first replicas they owe, fills every slot with a valid expert,
 * never holds an expert twice on a device, keeps a replica of every expert on its home node,
 * reports the busiest load recomputed here, is no lighter than the lower bound, and comes out the
 * same twice; with a dominant expert whose home node owes first replicas, the check reaches the
 * optimum (found here by trying every plan) where the construction without it does not; on equal
 * loads where a perfect plan exists it gets within a sixth of it
 * (it is a construction, not a search); an empty target range builds nothing and leaves the
 * plan untouched. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/eplb_rand.h"
#include "plan/balanced/balanced.h"

/* Random layers checked. */
#define CASES 400

#define SOFT_PLANS_SEED 31
#include "soft_plans.h"

static void plans_keep_the_rule_and_report_their_busiest_device(void **state) {
  (void)state;
  int built = 0;
  for (int c = 0; c < CASES; c++) {
    int32_t N = 1 + (int32_t)(uniform() * 4), Gn = 1 + (int32_t)(uniform() * 4);
    int32_t S = 2 + (int32_t)(uniform() * 6), G = N * Gn, P = G * S;
    /* Each node's experts fit its Gn * S slots: E = N * per with S <= E. */
    int32_t per = 1 + (int32_t)(uniform() * Gn * S);
    int32_t E = N * per;
    if (E < S)
      continue;
    double *w = malloc((size_t)E * sizeof *w);
    int32_t *home = malloc((size_t)E * sizeof *home);
    int32_t *row = malloc((size_t)P * sizeof *row), *again = malloc((size_t)P * sizeof *again);
    assert_true(w && home && row && again);
    double sigma = 0.5 + 1.5 * uniform();
    for (int32_t e = 0; e < E; e++) {
      double z = gauss();
      w[e] = floor(1000 * exp(sigma * z)) + 1;
      home[e] = e / per;
    }
    double lb = eplb__pool_bound(w, E, P, G);
    for (int absorb = 0; absorb < 2; absorb++) {
      double m = -1, m2 = -1;
      assert_int_equal(
          eplb__soft_target_solve(w, E, home, N, Gn, S, lb, 2 * lb, absorb, row, &m), 0);
      if (m > 0) {
        built++;
        assert_soft_plan(row, E, home, N, Gn, S, NULL);
        assert_true(fabs(m - busiest(w, E, row, P, S)) <= 1e-9 * m);
        assert_true(m >= lb * (1 - 1e-12));
        assert_int_equal(
            eplb__soft_target_solve(w, E, home, N, Gn, S, lb, 2 * lb, absorb, again, &m2), 0);
        assert_true(m2 == m);
        assert_memory_equal(row, again, (size_t)P * sizeof *row);
      }
    }
    free(w);
    free(home);
    free(row);
    free(again);
  }
  assert_true(built >= CASES); /* the check is not vacuous: half the plans of both modes */
}

/* The lightest busiest device over every plan of E experts in N * Gn devices of S slots (at most
 * 8 slots) that uses every expert, keeps one of its replicas on its home node and none twice on a
 * device; the slots of a device are tried in nondecreasing expert order. */
static double exhaustive_soft_optimum(const double *w, int32_t E, const int32_t *home, int32_t N,
                                      int32_t Gn, int32_t S) {
  int32_t P = N * Gn * S, a[8] = {0};
  assert_true(P <= 8);
  double best = INFINITY;
  for (int64_t code = 0;; code++) {
    int64_t c = code;
    for (int32_t k = 0; k < P; k++, c /= E)
      a[k] = (int32_t)(c % E);
    if (c)
      break; /* every code tried */
    int32_t cnt[8] = {0}, ok = 1;
    for (int32_t k = 0; k < P; k++) {
      cnt[a[k]]++;
      if (k % S && a[k] <= a[k - 1])
        ok = 0; /* a device's slots in increasing order: no duplicate, each set once */
    }
    for (int32_t e = 0; e < E && ok; e++) {
      int at_home = 0;
      for (int32_t k = 0; k < P; k++)
        at_home |= a[k] == e && k / S / Gn == home[e];
      ok = cnt[e] > 0 && at_home;
    }
    if (!ok)
      continue;
    double mx = 0;
    for (int32_t d = 0; d < N * Gn; d++) {
      double l = 0;
      for (int32_t k = d * S; k < d * S + S; k++)
        l += w[a[k]] / cnt[a[k]];
      mx = l > mx ? l : mx;
    }
    best = mx < best ? mx : best;
  }
  return best;
}

/* Two nodes of two devices of 2 slots; expert 0 (126) dominates and shares node 0 with three
 * experts whose first replicas it would crowd out. Without the check its copies fill node 0's
 * devices and the owed first replicas go over the target; with it, the construction reaches the
 * optimum of every plan, computed here by trying them all. */
static void the_owed_first_replicas_check_reaches_the_optimum(void **state) {
  (void)state;
  const double w[6] = {126, 23, 19, 33, 13, 12};
  const int32_t home[6] = {0, 0, 0, 0, 1, 1};
  int32_t row[8];
  double opt = exhaustive_soft_optimum(w, 6, home, 2, 2, 2);
  double lb = eplb__pool_bound(w, 6, 8, 4), plain = 0, checked = 0;
  assert_int_equal(eplb__soft_target_solve(w, 6, home, 2, 2, 2, lb, 2 * lb, 0, row, &plain), 0);
  assert_int_equal(eplb__soft_target_solve(w, 6, home, 2, 2, 2, lb, 2 * lb, 1, row, &checked),
                   0);
  assert_soft_plan(row, 6, home, 2, 2, 2, NULL);
  assert_true(fabs(checked - busiest(w, 6, row, 8, 2)) <= 1e-12);
  assert_true(fabs(checked - opt) <= 1e-9 * opt);
  assert_true(plain > opt * (1 + 1e-6));
}

/* Two nodes of two devices of 3 slots, 4 experts per node of load 3 each and 4 slots left over:
 * plans with every device at the bound 6 exist (e.g. two whole experts and two halves of a third
 * on each device pair); the construction, given a range up to twice the bound, gets within a
 * sixth of it and keeps every first replica home. */
static void equal_loads_come_within_a_sixth_of_the_bound(void **state) {
  (void)state;
  const double w[8] = {3, 3, 3, 3, 3, 3, 3, 3};
  const int32_t home[8] = {0, 0, 0, 0, 1, 1, 1, 1};
  int32_t row[12];
  double m = 0, lb = eplb__pool_bound(w, 8, 12, 4);
  assert_true(fabs(lb - 6) < 1e-12);
  assert_int_equal(eplb__soft_target_solve(w, 8, home, 2, 2, 3, lb, 2 * lb, 1, row, &m), 0);
  assert_true(m > 0);
  assert_soft_plan(row, 8, home, 2, 2, 3, NULL);
  assert_true(fabs(m - busiest(w, 8, row, 12, 3)) <= 1e-12);
  assert_true(m <= 7 + 1e-12);
}

/* lo >= hi: no target to try, so nothing is built and the plan is left as it was. */
static void an_empty_range_builds_nothing(void **state) {
  (void)state;
  const double w[4] = {1, 2, 3, 4};
  const int32_t home[4] = {0, 0, 1, 1};
  int32_t row[6] = {-7, -7, -7, -7, -7, -7};
  double m = -1;
  assert_int_equal(eplb__soft_target_solve(w, 4, home, 2, 1, 3, 5, 5, 1, row, &m), 0);
  assert_true(m == 0);
  for (int32_t i = 0; i < 6; i++)
    assert_int_equal(row[i], -7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plans_keep_the_rule_and_report_their_busiest_device),
      cmocka_unit_test(the_owed_first_replicas_check_reaches_the_optimum),
      cmocka_unit_test(equal_loads_come_within_a_sixth_of_the_bound),
      cmocka_unit_test(an_empty_range_builds_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
