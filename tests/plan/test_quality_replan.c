/* test_quality_replan.c - migration-aware re-planning: the assignment solver against brute
 * force, nothing moves when loads are unchanged (budget 0 or none), a re-plan keeps the fresh
 * plan's balance with no more moves than the unmatched plan, budgets are respected, locality is
 * kept, and an old map of another shape is refused. */
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

#include "eplb.h"
#include "plan/plan_int.h"
#include "test_oracles.h"

static uint64_t rng = 31;

static uint64_t rnd(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return rng >> 33;
}

static double uniform(void) {
  return ((double)rnd() + 0.5) / 2147483648.0;
}

static eplb_loads *lognormal(int32_t L, int32_t E, double sigma) {
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(L, E, &x), 0);
  for (size_t i = 0; i < (size_t)L * E; i++) {
    double z = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
    x->load[i] = floor(1000 * exp(sigma * z));
  }
  return x;
}

static eplb_params params(eplb_hierarchy h) {
  eplb_params p;
  eplb_params_init(&p);
  p.num_replicas = 80;
  p.num_groups = 8;
  p.num_nodes = 2;
  p.num_gpus = 8;
  p.policy = EPLB_POLICY_BALANCED;
  p.hierarchy = h;
  p.time_budget_ms = 0;
  return p;
}

static int64_t total_moves(const eplb_placement *old, const eplb_placement *p) {
  int64_t k = 0;
  for (int32_t l = 0; l < p->num_layers; l++) {
    int64_t m = eplb_placement_moves(old, p, l);
    assert_true(m >= 0);
    k += m;
  }
  return k;
}

/* ---- assignment ---- */

/* The best total gain over all permutations of n columns. */
static int64_t brute(const int64_t *g, int32_t n, int32_t i, unsigned used) {
  if (i == n)
    return 0;
  int64_t best = INT64_MIN;
  for (int32_t j = 0; j < n; j++)
    if (!(used >> j & 1u)) {
      int64_t v = g[i * n + j] + brute(g, n, i + 1, used | 1u << j);
      best = v > best ? v : best;
    }
  return best;
}

static void assignment_is_exact_against_brute_force(void **state) {
  (void)state;
  for (int c = 0; c < 200; c++) {
    int32_t n = 1 + (int32_t)(rnd() % 7), a[8];
    int64_t g[64];
    for (int32_t k = 0; k < n * n; k++)
      g[k] = (int64_t)(rnd() % 10);
    assert_int_equal(eplb__assign_max(g, n, a), 0);
    unsigned seen = 0;
    int64_t sum = 0;
    for (int32_t i = 0; i < n; i++) {
      assert_true(a[i] >= 0 && a[i] < n && !(seen >> a[i] & 1u));
      seen |= 1u << a[i];
      sum += g[i * n + a[i]];
    }
    assert_int_equal(sum, brute(g, n, 0, 0));
  }
}

/* ---- re-planning ---- */

static void unchanged_loads_move_nothing_with_budget_zero_or_none(void **state) {
  (void)state;
  eplb_loads *x = lognormal(4, 64, 1.0);
  for (int h = EPLB_HIER_STRICT; h <= EPLB_HIER_NONE; h++) {
    eplb_params pr = params((eplb_hierarchy)h);
    eplb_placement *old = NULL, *a = NULL, *b = NULL;
    assert_int_equal(eplb_plan(x, &pr, &old), 0);
    assert_int_equal(eplb_plan_replan(x, &pr, old, 0, &a), 0);
    assert_int_equal(eplb_plan_replan(x, &pr, old, -1, &b), 0);
    assert_int_equal(total_moves(old, a), 0);
    assert_int_equal(total_moves(old, b), 0);
    eplb_placement_free(old);
    eplb_placement_free(a);
    eplb_placement_free(b);
  }
  eplb_loads_free(x);
}

static void budget_zero_keeps_the_old_map_when_loads_change(void **state) {
  (void)state;
  eplb_loads *x = lognormal(4, 64, 1.0), *y = lognormal(4, 64, 1.0);
  eplb_params pr = params(EPLB_HIER_NONE);
  eplb_placement *old = NULL, *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &old), 0);
  assert_int_equal(eplb_plan_replan(y, &pr, old, 0, &p), 0);
  assert_int_equal(total_moves(old, p), 0);
  assert_memory_equal(old->phy2log, p->phy2log, 4 * 80 * sizeof *p->phy2log);
  eplb_placement_free(old);
  eplb_placement_free(p);
  eplb_loads_free(x);
  eplb_loads_free(y);
}

static void unlimited_replan_keeps_balance_and_moves_no_more_than_unmatched(void **state) {
  (void)state;
  eplb_loads *x = lognormal(4, 64, 1.0), *y = lognormal(4, 64, 1.0);
  for (int h = EPLB_HIER_STRICT; h <= EPLB_HIER_NONE; h++) {
    eplb_params pr = params((eplb_hierarchy)h);
    eplb_placement *old = NULL, *fresh = NULL, *p = NULL;
    assert_int_equal(eplb_plan(x, &pr, &old), 0);
    assert_int_equal(eplb_plan(y, &pr, &fresh), 0);
    assert_int_equal(eplb_plan_replan(y, &pr, old, -1, &p), 0);
    assert_int_equal(eplb_placement_validate(p, 0), 0);
    for (int32_t l = 0; l < 4; l++) {
      double got = oracle_busiest(y, p, l), want = oracle_busiest(y, fresh, l);
      assert_true(fabs(got - want) <= 1e-9 * want);
    }
    int64_t matched = total_moves(old, p), unmatched = total_moves(old, fresh);
    assert_true(matched <= unmatched);
    if (h == EPLB_HIER_NONE)
      assert_true(matched < unmatched); /* matching does find overlap to keep */
    eplb_placement_free(old);
    eplb_placement_free(fresh);
    eplb_placement_free(p);
  }
  eplb_loads_free(x);
  eplb_loads_free(y);
}

static void strict_replan_keeps_each_group_on_one_node(void **state) {
  (void)state;
  eplb_loads *x = lognormal(3, 64, 1.2), *y = lognormal(3, 64, 1.2);
  eplb_params pr = params(EPLB_HIER_STRICT);
  eplb_placement *old = NULL;
  assert_int_equal(eplb_plan(x, &pr, &old), 0);
  static const int64_t BUDGETS[] = {-1, 10, 40};
  for (int i = 0; i < 3; i++) {
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan_replan(y, &pr, old, BUDGETS[i], &p), 0);
  for (int32_t l = 0; l < 3; l++) {
    int32_t node[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    for (int32_t s = 0; s < 80; s++) {
      int32_t g = p->phy2log[(size_t)l * 80 + s] / 8, n = (s / 10) / 4;
      if (node[g] < 0)
        node[g] = n;
      assert_int_equal(node[g], n);
    }
  }
  eplb_placement_free(p);
  }
  eplb_placement_free(old);
  eplb_loads_free(x);
  eplb_loads_free(y);
}

static void budgets_are_respected_and_moves_only_buy_balance(void **state) {
  (void)state;
  eplb_loads *x = lognormal(8, 64, 1.0), *y = lognormal(8, 64, 1.0);
  eplb_params pr = params(EPLB_HIER_NONE);
  eplb_placement *old = NULL, *full = NULL;
  assert_int_equal(eplb_plan(x, &pr, &old), 0);
  assert_int_equal(eplb_plan_replan(y, &pr, old, -1, &full), 0);
  int64_t all = total_moves(old, full);
  double old_sum = 0;
  for (int32_t l = 0; l < 8; l++)
    old_sum += oracle_busiest(y, old, l);
  for (int k = 0; k <= 4; k++) {
    int64_t budget = all * k / 4;
    eplb_placement *p = NULL;
    assert_int_equal(eplb_plan_replan(y, &pr, old, budget, &p), 0);
    assert_true(total_moves(old, p) <= budget);
    assert_int_equal(eplb_placement_validate(p, 0), 0);
    double sum = 0;
    for (int32_t l = 0; l < 8; l++) {
      sum += oracle_busiest(y, p, l);
    }
    assert_true(sum <= old_sum * (1 + 1e-12)); /* moves are only spent where they help */
    if (k == 4)
      assert_true(sum < old_sum);
    eplb_placement_free(p);
  }
  eplb_placement_free(old);
  eplb_placement_free(full);
  eplb_loads_free(x);
  eplb_loads_free(y);
}

static void old_map_of_another_shape_is_refused(void **state) {
  (void)state;
  eplb_loads *x = lognormal(2, 64, 1.0);
  eplb_params pr = params(EPLB_HIER_NONE);
  eplb_placement *old = NULL, *p = NULL;
  pr.num_replicas = 96;
  assert_int_equal(eplb_plan(x, &pr, &old), 0);
  pr.num_replicas = 80;
  assert_int_equal(eplb_plan_replan(x, &pr, old, -1, &p), EPLB_EINVAL);
  assert_null(p);
  assert_non_null(strstr(eplb_last_error(), "old map"));
  eplb_placement_free(old);
  eplb_loads_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(assignment_is_exact_against_brute_force),
      cmocka_unit_test(unchanged_loads_move_nothing_with_budget_zero_or_none),
      cmocka_unit_test(budget_zero_keeps_the_old_map_when_loads_change),
      cmocka_unit_test(unlimited_replan_keeps_balance_and_moves_no_more_than_unmatched),
      cmocka_unit_test(strict_replan_keeps_each_group_on_one_node),
      cmocka_unit_test(budgets_are_respected_and_moves_only_buy_balance),
      cmocka_unit_test(old_map_of_another_shape_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
