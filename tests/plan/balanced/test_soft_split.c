/* test_soft_split.c - soft's decomposition (eplb__soft_split): on random layers, the plan it
 * returns with counts fixed (cap 0) has exactly the counts it was given, no expert twice on a
 * device, every expert's first replica on its home node, and the busiest load it reports is the
 * one recomputed here; with a cap (counts free) on R320-like layers the plan stays valid and its
 * nodes and devices come out even far more often than with fixed counts; a hand case where the
 * only legal place for an extra replica is forced; counts that cannot fit or do not fill the
 * slots are refused. */
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
#define CASES 300

#define SOFT_PLANS_SEED 21
#include "soft_plans.h"

static void split_keeps_counts_devices_and_the_first_replica_rule(void **state) {
  (void)state;
  int done = 0;
  for (int c = 0; c < CASES; c++) {
    int32_t N = 1 + (int32_t)(uniform() * 4), Gn = 1 + (int32_t)(uniform() * 4);
    int32_t S = 2 + (int32_t)(uniform() * 6), G = N * Gn, P = G * S;
    int32_t E = S + (int32_t)(uniform() * (P - S)); /* S <= E <= P */
    if (E < N)
      continue;
    double *w = malloc((size_t)E * sizeof *w);
    int32_t *home = malloc((size_t)E * sizeof *home), *cnt = malloc((size_t)E * sizeof *cnt);
    int32_t *row = malloc((size_t)P * sizeof *row);
    assert_true(w && home && cnt && row);
    double sigma = 0.5 + 1.5 * uniform();
    for (int32_t e = 0; e < E; e++) {
      double z = gauss();
      w[e] = floor(1000 * exp(sigma * z));
      home[e] = (int32_t)((int64_t)e * N / E); /* contiguous groups of experts per node */
    }
    eplb__min_max_share(w, E, P, G, cnt);
    double m = -1;
    int rc = eplb__soft_split(w, E, home, N, Gn, S, cnt, 0, row, &m);
    if (rc == EPLB_EPARAM) { /* a node with more experts than slots, or an extra fits nowhere */
      free(w);
      free(home);
      free(cnt);
      free(row);
      continue;
    }
    assert_int_equal(rc, 0);
    done++;
    assert_soft_plan(row, E, home, N, Gn, S, cnt);
    assert_true(fabs(m - busiest(w, E, row, P, S)) <= 1e-9 * (m + 1));
    free(w);
    free(home);
    free(cnt);
    free(row);
  }
  assert_true(done >= CASES / 2); /* the check is not vacuous */
}

/* Two nodes of one device of 3 slots. Experts 0, 1 live on node 0, experts 2, 3 on node 1;
 * loads 4, 1, 10, 1 with counts 2, 1, 1, 2. Node 0 is the lighter (2 + 1 against 10 + 0.5), but
 * expert 0's extra replica cannot join its first one on node 0's single device: it must go to
 * node 1, and expert 3's extra to node 0. Node 1 then carries 10 + 0.5 + 2. */
static void an_extra_replica_goes_where_it_may(void **state) {
  (void)state;
  const double w[4] = {4, 1, 10, 1};
  const int32_t home[4] = {0, 0, 1, 1}, cnt[4] = {2, 1, 1, 2};
  int32_t row[6];
  double m = 0;
  assert_int_equal(eplb__soft_split(w, 4, home, 2, 1, 3, cnt, 0, row, &m), 0);
  int node1_has_0 = 0, node0_has_3 = 0;
  for (int32_t i = 0; i < 3; i++)
    node0_has_3 |= row[i] == 3;
  for (int32_t i = 3; i < 6; i++)
    node1_has_0 |= row[i] == 0;
  assert_true(node1_has_0 && node0_has_3);
  assert_true(fabs(m - 12.5) < 1e-12);
}

/* A node whose experts outnumber its slots cannot keep their first replicas: refused. */
static void a_node_with_too_many_experts_is_refused(void **state) {
  (void)state;
  const double w[5] = {1, 1, 1, 1, 1};
  const int32_t home[5] = {0, 0, 0, 0, 1}, cnt[5] = {1, 1, 1, 1, 2};
  int32_t row[6];
  double m = 0;
  assert_int_equal(eplb__soft_split(w, 5, home, 2, 1, 3, cnt, 0, row, &m), EPLB_EPARAM);
}

/* Counts that leave slots empty, a zero count or a node out of range are refused. */
static void counts_that_do_not_fill_the_slots_are_refused(void **state) {
  (void)state;
  const double w[4] = {1, 1, 1, 1};
  const int32_t home[4] = {0, 0, 1, 1}, short_cnt[4] = {1, 1, 1, 1}, zero[4] = {3, 0, 2, 1};
  const int32_t far_home[4] = {0, 0, 1, 2}, cnt[4] = {2, 1, 2, 1};
  int32_t row[6];
  double m = 0;
  assert_int_equal(eplb__soft_split(w, 4, home, 2, 1, 3, short_cnt, 0, row, &m), EPLB_EPARAM);
  assert_int_equal(eplb__soft_split(w, 4, home, 2, 1, 3, zero, 0, row, &m), EPLB_EPARAM);
  assert_int_equal(eplb__soft_split(w, 4, far_home, 2, 1, 3, cnt, 0, row, &m), EPLB_EPARAM);
}

/* R320-like layers: 256 experts in 8 groups of 32, one per node, 8 nodes of 8 devices of 5 slots
 * (64 extra replicas), lognormal loads of sigma 0.7. */
#define WIDE_E 256
#define WIDE_N 8
#define WIDE_GN 8
#define WIDE_S 5
#define WIDE_P (WIDE_N * WIDE_GN * WIDE_S)
#define WIDE_LAYERS 16
/* A layer counts as even when its heaviest node is within 0.1% of the mean node (where the node
 * search stops) and its busiest device within 0.5% of the bound. Measured with the node search
 * (cap = the bound): 14 of 16; with the counts fixed (cap 0): 5 of 16 (their busiest devices up
 * to 8% above the bound). */
#define WIDE_NODE_TOL 1e-3
#define WIDE_DEVICE_TOL 5e-3
#define WIDE_EVEN_MIN 12

/* Splits one wide layer with the given cap and checks the plan (every expert placed, its first
 * replica on its home node, never twice on a device, no replica past a positive cap, the busiest
 * load reported right). @return 1 when the layer comes out even. */
static int wide_split_is_even(const double *w, const int32_t *home, const int32_t *cnt,
                              double cap, double lb) {
  int32_t G = WIDE_N * WIDE_GN, row[WIDE_P], got[WIDE_E] = {0};
  double nodes[WIDE_N] = {0}, total = 0, m = -1;
  assert_int_equal(
      eplb__soft_split(w, WIDE_E, home, WIDE_N, WIDE_GN, WIDE_S, cnt, cap, row, &m), 0);
  for (int32_t i = 0; i < WIDE_P; i++)
    got[row[i]]++;
  for (int32_t e = 0; e < WIDE_E; e++) {
    assert_true(got[e] >= 1);
    assert_true(cap <= 0 || w[e] / got[e] <= cap * (1 + 1e-12));
    int at_home = 0;
    for (int32_t i = home[e] * WIDE_GN * WIDE_S; i < (home[e] + 1) * WIDE_GN * WIDE_S; i++)
      at_home |= row[i] == e;
    assert_true(at_home);
    total += w[e];
  }
  for (int32_t d = 0; d < G; d++)
    for (int32_t i = d * WIDE_S; i < (d + 1) * WIDE_S; i++) {
      for (int32_t j = d * WIDE_S; j < i; j++)
        assert_int_not_equal(row[j], row[i]);
      nodes[d / WIDE_GN] += w[row[i]] / got[row[i]];
    }
  assert_true(fabs(m - busiest(w, WIDE_E, row, WIDE_P, WIDE_S)) <= 1e-9 * m);
  double heaviest = 0;
  for (int32_t n = 0; n < WIDE_N; n++)
    heaviest = nodes[n] > heaviest ? nodes[n] : heaviest;
  return heaviest <= total / WIDE_N * (1 + WIDE_NODE_TOL) && m <= lb * (1 + WIDE_DEVICE_TOL);
}

/* With a cap the split may change counts (the node search): on R320-like layers the plan stays
 * valid, and nearly every layer comes out even, far more than with the counts fixed. */
static void node_search_evens_the_nodes_of_wide_layers(void **state) {
  (void)state;
  double w[WIDE_E];
  int32_t home[WIDE_E], cnt[WIDE_E], even = 0, even_fixed = 0;
  for (int layer = 0; layer < WIDE_LAYERS; layer++) {
    for (int32_t e = 0; e < WIDE_E; e++) {
      double z = gauss();
      w[e] = floor(4096 * exp(0.7 * z - 0.245));
      home[e] = e / (WIDE_E / WIDE_N);
    }
    eplb__min_max_share(w, WIDE_E, WIDE_P, WIDE_N * WIDE_GN, cnt);
    double lb = eplb__pool_bound(w, WIDE_E, WIDE_P, WIDE_N * WIDE_GN);
    even += wide_split_is_even(w, home, cnt, lb, lb);
    even_fixed += wide_split_is_even(w, home, cnt, 0, lb);
  }
  assert_true(even >= WIDE_EVEN_MIN);
  assert_true(even > even_fixed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(split_keeps_counts_devices_and_the_first_replica_rule),
      cmocka_unit_test(node_search_evens_the_nodes_of_wide_layers),
      cmocka_unit_test(an_extra_replica_goes_where_it_may),
      cmocka_unit_test(a_node_with_too_many_experts_is_refused),
      cmocka_unit_test(counts_that_do_not_fill_the_slots_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
