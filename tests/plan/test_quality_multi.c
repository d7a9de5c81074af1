/* test_quality_multi.c - planning for several load inputs: the sum objective is the plan of the
 * summed loads (summed here), mean and max never do worse on their own objective (recomputed
 * here) than the plan of the sum or of any single input, the result is valid, and mismatched
 * inputs are refused. */
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
#include "test_oracles.h"

#define NUM_INPUTS 3

static uint64_t rng = 21;

static double uniform(void) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

/* Three lognormal workloads whose hot experts differ (a load shift). */
static void make_inputs(int32_t L, int32_t E, eplb_loads **in) {
  for (int i = 0; i < NUM_INPUTS; i++) {
    assert_int_equal(eplb_loads_create(L, E, &in[i]), 0);
    for (int32_t l = 0; l < L; l++)
      for (int32_t e = 0; e < E; e++) {
        double z = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
        double hot = (e % NUM_INPUTS == i) ? 4 : 1;
        in[i]->load[(size_t)l * E + e] = floor(100 * hot * exp(1.2 * z));
      }
  }
}

/* The objective of layer l of p over the inputs. */
static double objective(eplb_loads **in, const eplb_placement *p, int32_t l, eplb_objective obj) {
  double v = 0;
  for (int i = 0; i < NUM_INPUTS; i++) {
    double m = oracle_busiest(in[i], p, l);
    v = obj == EPLB_OBJECTIVE_MAX ? (m > v ? m : v) : v + m / NUM_INPUTS;
  }
  return v;
}

static eplb_params params(void) {
  eplb_params p;
  eplb_params_init(&p);
  p.num_replicas = 48;
  p.num_groups = 4;
  p.num_nodes = 2;
  p.num_gpus = 8;
  p.policy = EPLB_POLICY_BALANCED;
  p.time_budget_ms = 0;
  return p;
}

static void sum_objective_plans_the_summed_loads(void **state) {
  (void)state;
  eplb_loads *in[NUM_INPUTS], *sum = NULL;
  make_inputs(4, 32, in);
  assert_int_equal(eplb_loads_create(4, 32, &sum), 0);
  for (size_t k = 0; k < 4 * 32; k++)
    sum->load[k] = in[0]->load[k] + in[1]->load[k] + in[2]->load[k];
  eplb_params pr = params();
  eplb_placement *a = NULL, *b = NULL;
  assert_int_equal(eplb_plan_multi((const eplb_loads *const *)in, NUM_INPUTS, &pr,
                                   EPLB_OBJECTIVE_SUM, &a),
                   0);
  assert_int_equal(eplb_plan(sum, &pr, &b), 0);
  assert_memory_equal(a->phy2log, b->phy2log, 4 * 48 * sizeof *a->phy2log);
  eplb_placement_free(a);
  eplb_placement_free(b);
  eplb_loads_free(sum);
  for (int i = 0; i < NUM_INPUTS; i++)
    eplb_loads_free(in[i]);
}

/* Plans with `obj` and checks it against the plans of the sum and of each input. */
static void check_objective(eplb_objective obj) {
  eplb_loads *in[NUM_INPUTS], *sum = NULL;
  make_inputs(6, 32, in);
  assert_int_equal(eplb_loads_create(6, 32, &sum), 0);
  for (size_t k = 0; k < 6 * 32; k++)
    sum->load[k] = in[0]->load[k] + in[1]->load[k] + in[2]->load[k];
  eplb_params pr = params();
  eplb_placement *p = NULL, *ref[NUM_INPUTS + 1] = {NULL};
  assert_int_equal(eplb_plan_multi((const eplb_loads *const *)in, NUM_INPUTS, &pr, obj, &p), 0);
  assert_int_equal(eplb_placement_validate(p, 0), 0);
  assert_int_equal(eplb_plan(sum, &pr, &ref[0]), 0);
  for (int i = 0; i < NUM_INPUTS; i++)
    assert_int_equal(eplb_plan(in[i], &pr, &ref[i + 1]), 0);
  int better = 0;
  for (int32_t l = 0; l < 6; l++) {
    double mine = objective(in, p, l, obj);
    for (int r = 0; r <= NUM_INPUTS; r++)
      assert_true(mine <= objective(in, ref[r], l, obj) * (1 + 1e-12));
    better += mine < objective(in, ref[0], l, obj) * (1 - 1e-9);
  }
  assert_true(better > 0); /* it does improve on the plan of the sum somewhere */
  for (int r = 0; r <= NUM_INPUTS; r++)
    eplb_placement_free(ref[r]);
  eplb_placement_free(p);
  eplb_loads_free(sum);
  for (int i = 0; i < NUM_INPUTS; i++)
    eplb_loads_free(in[i]);
}

static void max_objective_is_never_worse_than_any_candidate(void **state) {
  (void)state;
  check_objective(EPLB_OBJECTIVE_MAX);
}

static void mean_objective_is_never_worse_than_any_candidate(void **state) {
  (void)state;
  check_objective(EPLB_OBJECTIVE_MEAN);
}

static void mismatched_inputs_are_refused(void **state) {
  (void)state;
  eplb_loads *in[2] = {NULL, NULL};
  assert_int_equal(eplb_loads_create(2, 16, &in[0]), 0);
  assert_int_equal(eplb_loads_create(2, 16, &in[1]), 0);
  in[1]->layer_ids[1] = 5;
  eplb_params pr = params();
  pr.num_replicas = 16;
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan_multi((const eplb_loads *const *)in, 2, &pr, EPLB_OBJECTIVE_MAX, &p),
                   EPLB_EINVAL);
  assert_null(p);
  assert_non_null(strstr(eplb_last_error(), "layer 5"));
  assert_int_equal(eplb_plan_multi((const eplb_loads *const *)in, 0, &pr, EPLB_OBJECTIVE_MAX, &p),
                   EPLB_EINVAL);
  assert_int_equal(eplb_plan_multi((const eplb_loads *const *)in, 1, &pr, (eplb_objective)7, &p),
                   EPLB_EINVAL);
  eplb_loads_free(in[0]);
  eplb_loads_free(in[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sum_objective_plans_the_summed_loads),
      cmocka_unit_test(max_objective_is_never_worse_than_any_candidate),
      cmocka_unit_test(mean_objective_is_never_worse_than_any_candidate),
      cmocka_unit_test(mismatched_inputs_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
