/* test_rebalance.c - the online re-balancing decision: nothing moves when the loads are those
 * the placement was planned for or the gain misses the threshold, layers move independently,
 * the move budget holds, the result is deterministic and consistent with its transfer plan,
 * windows combine by weight or decay, and bad options are refused with a detail naming them. */
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

#define L 4
#define E 32
#define R 40
#define G 8

static uint64_t rng = 17;

static uint64_t rnd(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return rng >> 33;
}

static double uniform(void) {
  return ((double)rnd() + 0.5) / 2147483648.0;
}

/* Skewed loads: lognormal (sigma 1) integer counts, a different draw per call. */
static eplb_loads *skewed(void) {
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(L, E, &x), 0);
  for (size_t i = 0; i < (size_t)L * E; i++) {
    double z = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
    x->count[i] = (int64_t)floor(1000 * exp(z));
    x->load[i] = (double)x->count[i];
  }
  return x;
}

static eplb_params params(void) {
  eplb_params p;
  eplb_params_init(&p);
  p.num_replicas = R;
  p.num_gpus = G;
  p.num_groups = 1;
  p.num_nodes = 1;
  p.policy = EPLB_POLICY_BALANCED;
  p.hierarchy = EPLB_HIER_NONE;
  p.time_budget_ms = 0;
  return p;
}

static eplb_placement *plan_of(const eplb_loads *x) {
  eplb_params p = params();
  eplb_placement *m = NULL;
  assert_int_equal(eplb_plan(x, &p, &m), 0);
  return m;
}

static int same_row(const eplb_placement *a, const eplb_placement *b, int32_t l) {
  return !memcmp(a->phy2log + (size_t)l * R, b->phy2log + (size_t)l * R, R * sizeof(int32_t));
}

static eplb_rebalance_result *decide(const eplb_loads *x, const eplb_placement *cur,
                                     int64_t max_moves, double min_gain) {
  eplb_params p = params();
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  o.max_moves = max_moves;
  o.min_gain = min_gain;
  eplb_rebalance_result *r = NULL;
  assert_int_equal(eplb_rebalance(x, &p, cur, &o, &r), 0);
  assert_non_null(r);
  assert_int_equal(eplb_placement_validate(r->placement, 0), 0);
  assert_ptr_equal(r->placement, r->transfer->to);
  return r;
}

/* ---- defaults ---- */

static void opts_init_sets_the_documented_defaults(void **state) {
  (void)state;
  eplb_rebalance_opts o;
  memset(&o, 0x5a, sizeof o);
  eplb_rebalance_opts_init(&o);
  assert_int_equal(o.first_window, 0);
  assert_int_equal(o.num_windows, 0);
  assert_null(o.weights);
  assert_true(o.decay == 1.0);
  assert_int_equal(o.max_moves, -1);
  assert_true(o.min_gain == EPLB_REBALANCE_MIN_GAIN);
}

/* ---- keep ---- */

static void loads_the_placement_was_planned_for_keep_it(void **state) {
  (void)state;
  eplb_loads *x = skewed();
  eplb_placement *cur = plan_of(x);
  eplb_rebalance_result *r = decide(x, cur, -1, 0.0);
  assert_int_equal(r->num_moved, 0);
  assert_int_equal(r->copies_moved, 0);
  for (int32_t l = 0; l < L; l++) {
    assert_true(same_row(r->placement, cur, l));
    assert_int_equal(r->moved[l], 0);
    assert_true(r->new_max_over_mean[l] == r->cur_max_over_mean[l]);
  }
  eplb_rebalance_result_free(r);
  eplb_placement_free(cur);
  eplb_loads_free(x);
}

static void a_gain_below_the_threshold_keeps_and_reports_the_prediction(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_rebalance_result *r = decide(b, cur, -1, 1e9);
  assert_int_equal(r->num_moved, 0);
  assert_int_equal(r->copies_moved, 0);
  assert_int_equal(r->transfer->stats.keeps, (int64_t)L * R);
  for (int32_t l = 0; l < L; l++) {
    assert_true(same_row(r->placement, cur, l));
    assert_true(r->cur_max_over_mean[l] >= 1.0);
    assert_true(r->candidate_max_over_mean[l] < r->cur_max_over_mean[l]);
  }
  assert_true(r->new_overall == r->cur_overall);
  eplb_rebalance_result_free(r);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

/* ---- move ---- */

static void drifted_loads_move_and_every_moved_layer_clears_the_threshold(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_rebalance_result *r = decide(b, cur, -1, 0.02);
  assert_true(r->num_moved > 0);
  int64_t sum = 0;
  for (int32_t l = 0; l < L; l++) {
    double gain = r->cur_max_over_mean[l] - r->new_max_over_mean[l];
    if (r->moved[l])
      assert_true(gain >= 0.02);
    else
      assert_true(same_row(r->placement, cur, l));
    sum += r->moves[l];
  }
  assert_int_equal(sum, r->copies_moved);
  assert_true(r->new_overall < r->cur_overall);
  eplb_rebalance_result_free(r);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

static void only_the_layers_that_changed_move(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = NULL;
  assert_int_equal(eplb_loads_create(L, E, &b), 0);
  memcpy(b->load, a->load, (size_t)L * E * sizeof(double));
  free(b->count);
  b->count = NULL;
  /* Layer 2's hottest expert moves to another expert: a large shift in that layer only. */
  for (int32_t e = 0; e < E; e++)
    b->load[2 * E + e] = a->load[2 * E + (e + 7) % E] * (e == 3 ? 20.0 : 1.0);
  eplb_placement *cur = plan_of(a);
  eplb_rebalance_result *r = decide(b, cur, -1, 0.02);
  assert_int_equal(r->num_moved, 1);
  assert_int_equal(r->moved[2], 1);
  for (int32_t l = 0; l < L; l++)
    if (l != 2) {
      assert_true(same_row(r->placement, cur, l));
      assert_int_equal(r->moves[l], 0);
    }
  assert_true(r->moves[2] > 0);
  eplb_rebalance_result_free(r);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

static void the_move_budget_holds(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_rebalance_result *free_r = decide(b, cur, -1, 0.0);
  int64_t budgets[] = {0, 1, 3, free_r->copies_moved / 2};
  for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
    eplb_rebalance_result *r = decide(b, cur, budgets[i], 0.0);
    assert_true(r->copies_moved <= budgets[i]);
    if (budgets[i] == 0)
      assert_int_equal(r->num_moved, 0);
    assert_true(r->new_overall <= r->cur_overall);
    eplb_rebalance_result_free(r);
  }
  eplb_rebalance_result_free(free_r);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

static void with_a_budget_every_moved_layer_still_clears_the_threshold(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_params p = params();
  p.num_groups = 8;
  p.num_nodes = 2;
  p.hierarchy = EPLB_HIER_STRICT;
  eplb_placement *strict = NULL;
  assert_int_equal(eplb_plan(a, &p, &strict), 0);
  const eplb_placement *curs[2] = {cur, strict};
  const eplb_params ps[2] = {params(), p};
  for (int k = 0; k < 2; k++)
    for (int64_t budget = 2; budget <= 64; budget *= 4) {
      eplb_rebalance_opts o;
      eplb_rebalance_opts_init(&o);
      o.max_moves = budget;
      o.min_gain = 0.03;
      eplb_rebalance_result *r = NULL;
      assert_int_equal(eplb_rebalance(b, &ps[k], curs[k], &o, &r), 0);
      assert_int_equal(eplb_placement_validate(r->placement, 0), 0);
      assert_true(r->copies_moved <= budget);
      for (int32_t l = 0; l < L; l++)
        if (r->moved[l])
          assert_true(r->cur_max_over_mean[l] - r->new_max_over_mean[l] >= 0.03);
        else
          assert_true(same_row(r->placement, curs[k], l));
      eplb_rebalance_result_free(r);
    }
  eplb_placement_free(strict);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

static void the_decision_is_deterministic(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_rebalance_result *r1 = decide(b, cur, 12, 0.01), *r2 = decide(b, cur, 12, 0.01);
  assert_int_equal(r1->num_moved, r2->num_moved);
  assert_int_equal(r1->copies_moved, r2->copies_moved);
  assert_memory_equal(r1->placement->phy2log, r2->placement->phy2log,
                      (size_t)L * R * sizeof(int32_t));
  assert_memory_equal(r1->moved, r2->moved, L);
  assert_memory_equal(r1->transfer->xfers, r2->transfer->xfers, (size_t)L * R * sizeof(eplb_xfer));
  eplb_rebalance_result_free(r1);
  eplb_rebalance_result_free(r2);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

/* ---- windows ---- */

/* A collector with windows of ages 2, 1, 0 counting 1, 10 and 100 tokens of expert e = age. */
static eplb_collector *three_windows(void) {
  eplb_collector *c = eplb_collector_create(L, E, 4);
  assert_non_null(c);
  uint64_t counts[E];
  for (int age = 2; age >= 0; age--) {
    memset(counts, 0, sizeof counts);
    counts[age] = age == 2 ? 1 : age == 1 ? 10 : 100;
    for (int32_t l = 0; l < L; l++)
      assert_int_equal(eplb_collector_add_counts(c, l, counts), 0);
    if (age > 0)
      assert_int_equal(eplb_collector_next_window(c), 0);
  }
  return c;
}

static void windows_combine_by_weight_and_by_decay(void **state) {
  (void)state;
  eplb_collector *c = three_windows();
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), 0);
  assert_non_null(x->count);
  assert_int_equal(x->count[0], 100);
  assert_int_equal(x->count[1], 10);
  assert_int_equal(x->count[2], 1);
  eplb_loads_free(x);

  o.decay = 0.5;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), 0);
  assert_null(x->count);
  assert_true(x->load[E + 0] == 100 && x->load[E + 1] == 5 && x->load[E + 2] == 0.25);
  eplb_loads_free(x);

  double w[2] = {0.0, 3.0};
  o.first_window = 1;
  o.num_windows = 2;
  o.weights = w;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), 0);
  assert_true(x->load[0] == 0 && x->load[1] == 0 && x->load[2] == 3);
  eplb_loads_free(x);
  eplb_collector_free(c);
}

static void the_collector_variant_decides_on_its_windows(void **state) {
  (void)state;
  eplb_loads *a = skewed(), *b = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_collector *c = eplb_collector_create(L, E, 2);
  uint64_t counts[E];
  for (int32_t l = 0; l < L; l++) {
    for (int32_t e = 0; e < E; e++)
      counts[e] = (uint64_t)b->count[l * E + e];
    assert_int_equal(eplb_collector_add_counts(c, l, counts), 0);
  }
  assert_int_equal(eplb_collector_next_window(c), 0); /* the current window is now empty */
  eplb_params p = params();
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  eplb_rebalance_result *rc = NULL;
  assert_int_equal(eplb_rebalance_collector(c, &p, cur, &o, &rc), 0);
  eplb_rebalance_result *rl = decide(b, cur, -1, EPLB_REBALANCE_MIN_GAIN);
  assert_int_equal(rc->num_moved, rl->num_moved);
  assert_memory_equal(rc->placement->phy2log, rl->placement->phy2log,
                      (size_t)L * R * sizeof(int32_t));
  eplb_rebalance_result_free(rc);
  eplb_rebalance_result_free(rl);
  eplb_collector_free(c);
  eplb_placement_free(cur);
  eplb_loads_free(a);
  eplb_loads_free(b);
}

static void an_empty_window_keeps_the_placement(void **state) {
  (void)state;
  eplb_loads *a = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_collector *c = eplb_collector_create(L, E, 2);
  eplb_params p = params();
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  o.num_windows = 1; /* only the current window, which counted nothing */
  o.min_gain = 0;
  eplb_rebalance_result *r = NULL;
  assert_int_equal(eplb_rebalance_collector(c, &p, cur, &o, &r), 0);
  assert_int_equal(r->num_moved, 0);
  for (int32_t l = 0; l < L; l++) {
    assert_true(same_row(r->placement, cur, l));
    assert_true(r->cur_max_over_mean[l] == 1.0);
  }
  eplb_rebalance_result_free(r);
  eplb_collector_free(c);
  eplb_placement_free(cur);
  eplb_loads_free(a);
}

/* ---- refusals ---- */

/* Checks a refusal: EPLB_EINVAL, *r cleared, a detail holding `needle`. */
static void expect_refused(int rc, eplb_rebalance_result *const *r, const char *needle) {
  assert_int_equal(rc, EPLB_EINVAL);
  assert_null(*r);
  if (!strstr(eplb_last_error(), needle))
    fail_msg("detail '%s' lacks '%s'", eplb_last_error(), needle);
}

static void bad_options_and_shapes_are_refused_with_a_detail(void **state) {
  (void)state;
  eplb_loads *a = skewed();
  eplb_placement *cur = plan_of(a);
  eplb_params p = params();
  eplb_rebalance_opts o;
  eplb_rebalance_result *r = (eplb_rebalance_result *)&o;

  eplb_rebalance_opts_init(&o);
  o.max_moves = -2;
  expect_refused(eplb_rebalance(a, &p, cur, &o, &r), &r, "max_moves");
  eplb_rebalance_opts_init(&o);
  o.min_gain = NAN;
  expect_refused(eplb_rebalance(a, &p, cur, &o, &r), &r, "min_gain");
  o.min_gain = -0.1;
  expect_refused(eplb_rebalance(a, &p, cur, &o, &r), &r, "min_gain");
  eplb_rebalance_opts_init(&o);
  eplb_params q = p;
  q.num_replicas = 48;
  expect_refused(eplb_rebalance(a, &q, cur, &o, &r), &r, "slots");
  a->layer_ids[1] = 9;
  expect_refused(eplb_rebalance(a, &p, cur, &o, &r), &r, "layer 9");
  expect_refused(eplb_rebalance(NULL, &p, cur, &o, &r), &r, "NULL");

  eplb_collector *c = three_windows();
  eplb_loads *x = (eplb_loads *)&o;
  o.decay = 0;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), EPLB_EINVAL);
  assert_null(x);
  assert_non_null(strstr(eplb_last_error(), "decay"));
  eplb_rebalance_opts_init(&o);
  o.first_window = 4;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "first_window"));
  o.first_window = 1;
  o.num_windows = 4;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "num_windows"));
  double w[2] = {1.0, -1.0};
  o.num_windows = 2;
  o.weights = w;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "weights[1]"));
  w[1] = 0;
  w[0] = 0;
  assert_int_equal(eplb_loads_from_windows(c, &o, &x), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "all 0"));
  eplb_rebalance_result_free(NULL);
  eplb_collector_free(c);
  eplb_placement_free(cur);
  eplb_loads_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(opts_init_sets_the_documented_defaults),
      cmocka_unit_test(loads_the_placement_was_planned_for_keep_it),
      cmocka_unit_test(a_gain_below_the_threshold_keeps_and_reports_the_prediction),
      cmocka_unit_test(drifted_loads_move_and_every_moved_layer_clears_the_threshold),
      cmocka_unit_test(only_the_layers_that_changed_move),
      cmocka_unit_test(the_move_budget_holds),
      cmocka_unit_test(with_a_budget_every_moved_layer_still_clears_the_threshold),
      cmocka_unit_test(the_decision_is_deterministic),
      cmocka_unit_test(windows_combine_by_weight_and_by_decay),
      cmocka_unit_test(the_collector_variant_decides_on_its_windows),
      cmocka_unit_test(an_empty_window_keeps_the_placement),
      cmocka_unit_test(bad_options_and_shapes_are_refused_with_a_detail),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
