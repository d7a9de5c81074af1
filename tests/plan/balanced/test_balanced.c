/* test_balanced.c - the balanced policy: every plan valid and duplicate-free (checked here
 * independently of eplb_placement_validate), locality of strict and soft, determinism, never
 * below the lower bound, near it where the issue sets goals, never worse than DeepSeek's golden
 * reference placements, and bad parameters refused. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
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
#include "core/eplb_rand.h"
#include "test_oracles.h"

/* Random cases per check. */
#define RANDOM_CASES 200

/* ---- helpers ---- */

static uint64_t rng_state;

/* splitmix64. */
static uint64_t rnd(void) {
  return eplb__splitmix64(&rng_state);
}

static double uniform(void) {
  return ((double)(rnd() >> 11) + 0.5) / 9007199254740992.0;
}

/* Integer lognormal loads, L x E, with the given sigma. */
static eplb_loads *lognormal(int32_t L, int32_t E, double sigma) {
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(L, E, &x), 0);
  for (size_t i = 0; i < (size_t)L * (size_t)E; i++) {
    double z = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
    x->load[i] = floor(1000 * exp(sigma * z));
    x->count[i] = (int64_t)x->load[i];
  }
  return x;
}

static eplb_params params(int32_t R, int32_t K, int32_t N, int32_t G, eplb_hierarchy h) {
  eplb_params p;
  eplb_params_init(&p);
  p.num_replicas = R;
  p.num_groups = K;
  p.num_nodes = N;
  p.num_gpus = G;
  p.policy = EPLB_POLICY_BALANCED;
  p.hierarchy = h;
  p.time_budget_ms = 0;
  return p;
}

/* Asserts every expert has a replica and no device holds one expert twice, from phy2log. */
static void assert_valid(const eplb_placement *p) {
  int32_t R = p->num_slots, G = p->num_gpus, S = R / G, E = p->num_experts;
  for (int32_t l = 0; l < p->num_layers; l++) {
    const int32_t *row = p->phy2log + (size_t)l * R;
    int32_t *seen = calloc((size_t)E, sizeof *seen);
    assert_non_null(seen);
    for (int32_t s = 0; s < R; s++) {
      assert_true(row[s] >= 0 && row[s] < E);
      seen[row[s]] = 1;
    }
    for (int32_t e = 0; e < E; e++)
      assert_int_equal(seen[e], 1);
    for (int32_t d = 0; d < G; d++)
      for (int32_t i = d * S; i < (d + 1) * S; i++)
        for (int32_t j = d * S; j < i; j++)
          assert_int_not_equal(row[i], row[j]);
    free(seen);
  }
}

/* A random shape: E experts in K groups on N nodes, G devices, S slots per device. */
typedef struct shape {
  int32_t E, K, N, G, R;
} shape;

static shape random_shape(void) {
  static const int32_t NODES[] = {1, 2, 4};
  shape s;
  s.N = NODES[rnd() % 3];
  s.K = s.N * (int32_t)(1 + rnd() % 3);
  s.G = s.N * (int32_t)(1 + rnd() % 4);
  int32_t gs = 2 + (int32_t)(rnd() % 6);
  s.E = s.K * gs;
  int32_t S = (s.E + s.G - 1) / s.G + (int32_t)(rnd() % 3);
  /* A node's experts must fill its devices' slots without duplicates. */
  while (S > s.E / s.N && S > 1)
    S--;
  s.R = S * s.G;
  if (s.R < s.E)
    s.R = ((s.E + s.G - 1) / s.G) * s.G;
  return s;
}

/* ---- validity and locality ---- */

static void plans_are_valid_without_duplicates_in_every_hierarchy(void **state) {
  (void)state;
  rng_state = 11;
  int planned = 0;
  for (int c = 0; c < RANDOM_CASES; c++) {
    shape s = random_shape();
    if (s.R / s.G > s.E / s.N)
      continue;
    eplb_loads *x = lognormal(2, s.E, 0.5 + uniform() * 1.5);
    for (int h = EPLB_HIER_STRICT; h <= EPLB_HIER_NONE; h++) {
      eplb_params pr = params(s.R, s.K, s.N, s.G, (eplb_hierarchy)h);
      eplb_placement *p = NULL;
      int rc = eplb_plan(x, &pr, &p);
      if (rc == EPLB_EPARAM)
        continue; /* e.g. no group split fills every node; the message says why */
      assert_int_equal(rc, 0);
      assert_valid(p);
      planned++;
      eplb_placement_free(p);
    }
    eplb_loads_free(x);
  }
  assert_true(planned > RANDOM_CASES);
}

/* The node holding device d. */
static int32_t node_of_device(int32_t d, int32_t G, int32_t N) {
  return d / (G / N);
}

static void strict_keeps_every_replica_of_a_group_on_one_node(void **state) {
  (void)state;
  rng_state = 12;
  int32_t E = 64, K = 8, N = 4, G = 16, R = 96, gs = E / K, S = R / G;
  eplb_loads *x = lognormal(4, E, 1.5);
  eplb_params pr = params(R, K, N, G, EPLB_HIER_STRICT);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  for (int32_t l = 0; l < 4; l++) {
    int32_t node[8];
    for (int32_t k = 0; k < K; k++)
      node[k] = -1;
    for (int32_t s = 0; s < R; s++) {
      int32_t e = p->phy2log[(size_t)l * R + s], n = node_of_device(s / S, G, N);
      if (node[e / gs] < 0)
        node[e / gs] = n;
      assert_int_equal(node[e / gs], n);
    }
  }
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* Plans L layers of lognormal loads under soft and asserts, from phy2log alone, that every group
 * has a node holding all of its experts; returns how many (layer, expert) pairs use more than
 * one node. With bound > 0, also asserts every layer's busiest device is within that factor of
 * the lower bound. */
static int check_soft(int32_t L, int32_t E, int32_t K, int32_t N, int32_t G, int32_t R,
                      double sigma, double bound) {
  int32_t gs = E / K, S = R / G;
  eplb_loads *x = lognormal(L, E, sigma);
  eplb_params pr = params(R, K, N, G, EPLB_HIER_SOFT);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_valid(p);
  int spread = 0;
  unsigned char *on = calloc((size_t)E * (size_t)N, 1); /* on[e*N + n]: e has a replica on n */
  assert_non_null(on);
  for (int32_t l = 0; l < L; l++) {
    memset(on, 0, (size_t)E * (size_t)N);
    for (int32_t s = 0; s < R; s++)
      on[(size_t)p->phy2log[(size_t)l * R + s] * N + node_of_device(s / S, G, N)] = 1;
    for (int32_t k = 0; k < K; k++) {
      int found = 0;
      for (int32_t n = 0; n < N && !found; n++) {
        int all = 1;
        for (int32_t j = 0; j < gs; j++)
          all &= on[(size_t)(k * gs + j) * N + n];
        found = all;
      }
      assert_true(found);
    }
    for (int32_t e = 0; e < E; e++) {
      int nodes = 0;
      for (int32_t n = 0; n < N; n++)
        nodes += on[(size_t)e * N + n];
      spread += nodes > 1;
    }
    if (bound > 0) {
      double lb = 0;
      assert_int_equal(eplb_lower_bound(x, l, R, G, &lb), 0);
      assert_true(oracle_busiest(x, p, l) <= bound * lb);
    }
  }
  free(on);
  eplb_placement_free(p);
  eplb_loads_free(x);
  return spread;
}

static void soft_keeps_one_replica_of_each_expert_on_its_groups_node(void **state) {
  (void)state;
  rng_state = 13;
  /* Many extra replicas (a third of the slots): the pool under the first-replica rule. */
  assert_true(check_soft(4, 64, 8, 4, 16, 96, 1.5, 0) > 0); /* extras do use other nodes */
}

/* Few extra replicas (R 288 for 256 experts): soft plans by splitting fixed counts over the
 * nodes, then polishing; the rule holds and every layer is within 1% of the lower bound (the
 * issue asks soft to be within 1% of none, which is within 0.05% of the bound here). */
static void soft_by_split_keeps_the_rule_and_stays_near_the_bound(void **state) {
  (void)state;
  rng_state = 14;
  assert_true(check_soft(8, 256, 8, 4, 32, 288, 1.0, 1.01) > 0);
  assert_true(check_soft(4, 128, 8, 2, 16, 144, 0.7, 1.01) > 0);
}

/* R 320 for 256 experts on 8 nodes of 8 devices, sigma 2.0: layers the split leaves over 1%
 * above the bound go through the target-driven construction under the rule; the rule holds and
 * every layer ends within 2% of the bound. */
static void soft_at_five_slots_keeps_the_rule_near_the_bound(void **state) {
  (void)state;
  rng_state = 15;
  assert_true(check_soft(6, 256, 8, 8, 64, 320, 2.0, 1.02) > 0);
}

static void plans_are_deterministic(void **state) {
  (void)state;
  rng_state = 14;
  eplb_loads *x = lognormal(6, 128, 1.2);
  for (int h = EPLB_HIER_STRICT; h <= EPLB_HIER_NONE; h++) {
    eplb_params pr = params(160, 8, 2, 16, (eplb_hierarchy)h);
    eplb_placement *a = NULL, *b = NULL;
    assert_int_equal(eplb_plan(x, &pr, &a), 0);
    assert_int_equal(eplb_plan(x, &pr, &b), 0);
    assert_memory_equal(a->phy2log, b->phy2log, (size_t)6 * 160 * sizeof *a->phy2log);
    eplb_placement_free(a);
    eplb_placement_free(b);
  }
  eplb_loads_free(x);
}

static void no_plan_beats_the_lower_bound(void **state) {
  (void)state;
  rng_state = 15;
  for (int c = 0; c < RANDOM_CASES / 2; c++) {
    shape s = random_shape();
    eplb_loads *x = lognormal(1, s.E, 0.3 + uniform() * 1.7);
    eplb_params pr = params(s.R, 1, 1, s.G, EPLB_HIER_NONE);
    eplb_placement *p = NULL;
    if (eplb_plan(x, &pr, &p) == 0) {
      double lb;
      assert_int_equal(eplb_lower_bound(x, 0, s.R, s.G, &lb), 0);
      assert_true(oracle_busiest(x, p, 0) >= lb * (1 - 1e-12));
    }
    eplb_placement_free(p);
    eplb_loads_free(x);
  }
}

/* Tiny pools (up to 9 experts, 3 devices, 3 slots): no plan beats the exhaustive optimum (an
 * independent check of the plan and its cost), the exhaustive search never beats the lower
 * bound nor, with two slots, the relaxation that allows duplicates, and balanced reaches the
 * optimum on every pool (its exact search of tiny pools; before it, 145 of 150). */
static void balanced_reaches_the_exact_optimum_of_tiny_pools(void **state) {
  (void)state;
  rng_state = 16;
  double sum = 0;
  int pools = 0, optimal = 0;
  for (int c = 0; c < 150; c++) {
    int32_t G = 1 + (int32_t)(uniform() * 3), S = 2 + (int32_t)(uniform() * 2);
    int32_t E = S + (int32_t)(uniform() * (G * S - S + 1)); /* S <= E <= G*S */
    if (E > G * S)
      E = G * S;
    eplb_loads *x = lognormal(1, E, 0.3 + uniform() * 1.7);
    eplb_params pr = params(G * S, 1, 1, G, EPLB_HIER_NONE);
    eplb_placement *p = NULL;
    assert_int_equal(eplb_plan(x, &pr, &p), 0);
    double opt = oracle_small_optimum(x->load, E, G, S), lb = 0, mine = oracle_busiest(x, p, 0);
    assert_int_equal(eplb_lower_bound(x, 0, G * S, G, &lb), 0);
    assert_true(opt >= lb * (1 - 1e-12));
    assert_true(mine >= opt * (1 - 1e-12));
    if (S == 2) {
      int32_t d[8];
      double it[16], relaxed = INFINITY;
      oracle_pair_optimum(x->load, E, G, d, 0, 2 * G, it, &relaxed);
      assert_true(opt >= relaxed * (1 - 1e-12));
    }
    if (opt > 0) {
      sum += mine / opt;
      optimal += mine <= opt * (1 + 1e-12);
      pools++;
    }
    eplb_placement_free(p);
    eplb_loads_free(x);
  }
  printf("tiny pools: %d, balanced optimal on %d, mean balanced/optimum %.4f\n", pools, optimal,
         sum / pools);
  assert_true(pools > 100);
  assert_int_equal(optimal, pools);
}

/* Mixtral's shape: 8 experts on 4 devices of 3 slots and of 4 (16 slots, the largest pool the
 * exact search covers), lognormal loads: balanced equals the exhaustive optimum of
 * test_oracles.h on every layer. (8 devices of 2 slots are left out: the exhaustive oracle takes
 * seconds per layer there.) */
#define MIXTRAL_LAYERS 6
static void balanced_reaches_the_optimum_of_mixtral_sized_pools(void **state) {
  (void)state;
  rng_state = 23;
  const int32_t shapes[2][2] = {{4, 3}, {4, 4}};
  for (int k = 0; k < 2; k++) {
    int32_t G = shapes[k][0], S = shapes[k][1];
    eplb_loads *x = lognormal(MIXTRAL_LAYERS, 8, 1.0);
    eplb_params pr = params(G * S, 1, 1, G, EPLB_HIER_NONE);
    eplb_placement *p = NULL;
    assert_int_equal(eplb_plan(x, &pr, &p), 0);
    for (int32_t l = 0; l < MIXTRAL_LAYERS; l++) {
      double opt = oracle_small_optimum(x->load + (size_t)l * 8, 8, G, S);
      assert_true(fabs(oracle_busiest(x, p, l) - opt) <= 1e-9 * opt);
    }
    eplb_placement_free(p);
    eplb_loads_free(x);
  }
}

/* The dominant-expert bound of test_oracles.h (which bench_quality uses to show some goals out of
 * reach) on tiny pools whose heaviest expert carries up to all devices' worth of load: it never
 * exceeds the exhaustive optimum (it is a lower bound), never falls below LB, and it is strictly
 * above LB on some pools (it says something LB does not). */
static void dominant_bound_never_exceeds_the_exact_optimum(void **state) {
  (void)state;
  rng_state = 17;
  int above = 0;
  for (int c = 0; c < 120; c++) {
    int32_t G = 2 + (int32_t)(uniform() * 3), S = 2 + (int32_t)(uniform() * 2);
    int32_t E = S + 1 + (int32_t)(uniform() * (G * S - S)); /* S < E <= G*S */
    if (E > G * S)
      E = G * S;
    eplb_loads *x = lognormal(1, E, 0.3 + uniform() * 1.7);
    double total = 0;
    for (int32_t e = 1; e < E; e++)
      total += x->load[e];
    /* Expert 0 carries between 0.5 and G devices' worth of the others' mean device load. */
    x->load[0] = floor(total / G * (0.5 + uniform() * (G - 0.5))) + 1;
    double opt = oracle_small_optimum(x->load, E, G, S), lb = 0;
    assert_int_equal(eplb_lower_bound(x, 0, G * S, G, &lb), 0);
    double b = oracle_dominant_bound(x->load, E, G, S, lb, opt * 2);
    if (b > opt * (1 + 1e-9))
      fail_msg("pool %d (E %d G %d S %d): bound %.6f above the optimum %.6f", c, E, G, S, b, opt);
    assert_true(b >= lb);
    above += b > lb * (1 + 1e-6);
    eplb_loads_free(x);
  }
  printf("dominant bound above LB on %d of 120 tiny pools\n", above);
  assert_true(above >= 10);
}

/* A hand case for the exhaustive optimum: loads 3, 3, 2, 2 on two devices of two slots (every
 * expert once) pair as {3, 2} and {3, 2}. */
static void exact_optimum_of_a_hand_case(void **state) {
  (void)state;
  const double w[4] = {3, 3, 2, 2};
  assert_true(fabs(oracle_small_optimum(w, 4, 2, 2) - 5) < 1e-12);
  /* Loads 6 and 2 on two devices of two slots: each expert on both devices (at most one
   * replica per device), {3, 1} and {3, 1}: 4. */
  const double v[2] = {6, 2};
  assert_true(fabs(oracle_small_optimum(v, 2, 2, 2) - 4) < 1e-12);
}

/* Worst max/LB of `layers` lognormal layers planned with hierarchy none. */
static double worst_ratio(int32_t E, double sigma, int32_t R, int32_t G, int32_t layers) {
  eplb_loads *x = lognormal(layers, E, sigma);
  eplb_params pr = params(R, 1, 1, G, EPLB_HIER_NONE);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  double worst = 0;
  for (int32_t l = 0; l < layers; l++) {
    double lb;
    assert_int_equal(eplb_lower_bound(x, l, R, G, &lb), 0);
    double r = oracle_busiest(x, p, l) / lb;
    worst = r > worst ? r : worst;
  }
  eplb_placement_free(p);
  eplb_loads_free(x);
  return worst;
}

static void none_is_within_0_2_percent_of_the_bound_at_9_slots_per_device(void **state) {
  (void)state;
  rng_state = 16;
  static const double SIG[] = {0.7, 1.0, 1.4, 2.0};
  for (int32_t E = 64; E <= 256; E *= 2)
    for (int i = 0; i < 4; i++) {
      double r = worst_ratio(E, SIG[i], 288, 32, 4);
      if (r > 1.002)
        fail_msg("E %d sigma %.1f: max/LB %.5f > 1.002", E, SIG[i], r);
    }
}

/* The golden DeepSeek case's max device load per layer, computed here from its phy2log. */
static void golden_case(const char *name, int32_t *R, int32_t *K, int32_t *N, int32_t *G,
                        eplb_loads **loads, eplb_placement **ref) {
  char path[512];
  snprintf(path, sizeof path, "%s/golden/%s", EPLB_TEST_DATA, name);
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root)
    fail_msg("%s: %s", path, err.text);
  json_t *pp = json_object_get(root, "params");
  *R = (int32_t)json_integer_value(json_object_get(pp, "num_replicas"));
  *K = (int32_t)json_integer_value(json_object_get(pp, "num_groups"));
  *N = (int32_t)json_integer_value(json_object_get(pp, "num_nodes"));
  *G = (int32_t)json_integer_value(json_object_get(pp, "num_gpus"));
  json_t *phy = json_object_get(json_object_get(root, "expected"), "phy2log");
  json_t *ld = json_object_get(root, "loads");
  int32_t L = (int32_t)json_array_size(phy);
  int32_t E = (int32_t)json_object_size(json_object_get(ld, "0"));
  assert_int_equal(eplb_loads_create(L, E, loads), 0);
  assert_int_equal(eplb_placement_create(L, E, *R, *G, ref), 0);
  for (int32_t l = 0; l < L; l++) {
    char key[16];
    snprintf(key, sizeof key, "%d", l);
    json_t *row = json_object_get(ld, key);
    for (int32_t e = 0; e < E; e++) {
      snprintf(key, sizeof key, "%d", e);
      (*loads)->load[(size_t)l * E + e] = json_number_value(json_object_get(row, key));
    }
    for (int32_t s = 0; s < *R; s++)
      (*ref)->phy2log[(size_t)l * *R + s] =
          (int32_t)json_integer_value(json_array_get(json_array_get(phy, (size_t)l), (size_t)s));
  }
  json_decref(root);
}

/* Whether some device of layer l holds one expert twice. */
static int has_duplicates(const eplb_placement *p, int32_t l) {
  int32_t S = p->num_slots / p->num_gpus;
  const int32_t *row = p->phy2log + (size_t)l * p->num_slots;
  for (int32_t d = 0; d < p->num_gpus; d++)
    for (int32_t i = d * S; i < (d + 1) * S; i++)
      for (int32_t j = d * S; j < i; j++)
        if (row[i] == row[j])
          return 1;
  return 0;
}

static void balanced_is_never_worse_than_the_reference_where_it_has_no_duplicates(void **state) {
  (void)state;
  int compared = 0;
  static const char *CASES[] = {"dsv3_like_58x256_r288_g8_n4_gpu32.json",
                                "global_fallback_3x12_r16_g3_n2_gpu4.json",
                                "groups_eq_nodes_8x64_r80_g8_n8_gpu16.json",
                                "hier_4x16_r24_g4_n2_gpu4.json",
                                "no_redundancy_2x8_r8_g2_n1_gpu8.json",
                                "seed_example_1x32_r40_g4_n1_gpu8.json",
                                "skewed_6x32_r64_g1_n1_gpu8.json",
                                "wide_16x128_r256_g4_n2_gpu32.json"};
  for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
    int32_t R, K, N, G;
    eplb_loads *x = NULL;
    eplb_placement *ref = NULL;
    golden_case(CASES[c], &R, &K, &N, &G, &x, &ref);
    /* Same locality as the reference: strict where it is hierarchical, else none. */
    eplb_hierarchy h = K % N == 0 && N > 1 ? EPLB_HIER_STRICT : EPLB_HIER_NONE;
    eplb_params pr = params(R, K % N == 0 ? K : 1, K % N == 0 ? N : 1, G, h);
    eplb_placement *p = NULL;
    assert_int_equal(eplb_plan(x, &pr, &p), 0);
    for (int32_t l = 0; l < x->num_layers; l++) {
      if (has_duplicates(ref, l))
        continue; /* the reference's duplicates are not allowed to balanced */
      compared++;
      double mine = oracle_busiest(x, p, l), theirs = oracle_busiest(x, ref, l);
      if (mine > theirs * (1 + 1e-9))
        fail_msg("%s layer %d: balanced %.6g > deepseek %.6g", CASES[c], l, mine, theirs);
    }
    eplb_placement_free(p);
    eplb_placement_free(ref);
    eplb_loads_free(x);
  }
  assert_true(compared >= 9); /* 9 golden layers are duplicate-free */
}

/* Balanced (default hierarchy, and none) against the deepseek policy with the same parameters
 * on 500 random inputs: the busiest device never heavier, layer by layer. */
static void balanced_is_never_worse_than_deepseek_on_500_random_inputs(void **state) {
  (void)state;
  rng_state = 17;
  int cases = 0, layers = 0;
  while (cases < 500) {
    shape s = random_shape();
    if (rnd() % 4 == 0 && s.N > 1)
      s.K = s.N + 1 > s.E ? s.K : (s.E % (s.N + 1) == 0 ? s.N + 1 : s.K); /* global fallback */
    eplb_loads *x = lognormal(3, s.E, 0.3 + uniform() * 1.7);
    eplb_params ds = params(s.R, s.K, s.N, s.G, EPLB_HIER_AUTO);
    ds.policy = EPLB_POLICY_DEEPSEEK;
    eplb_placement *ref = NULL;
    if (eplb_plan(x, &ds, &ref) != 0) { /* deepseek's own capacity rule */
      eplb_loads_free(x);
      continue;
    }
    cases++;
    for (int h = EPLB_HIER_AUTO; h <= EPLB_HIER_NONE; h += EPLB_HIER_NONE) {
      eplb_params pr = params(s.R, s.K, s.N, s.G, (eplb_hierarchy)h);
      eplb_placement *p = NULL;
      assert_int_equal(eplb_plan(x, &pr, &p), 0);
      for (int32_t l = 0; l < 3; l++) {
        double mine = oracle_busiest(x, p, l), theirs = oracle_busiest(x, ref, l);
        if (mine > theirs * (1 + 1e-9))
          fail_msg("E %d K %d N %d G %d R %d hierarchy %d layer %d: balanced %.9g > deepseek %.9g",
                   s.E, s.K, s.N, s.G, s.R, h, l, mine, theirs);
        layers++;
      }
      eplb_placement_free(p);
    }
    eplb_placement_free(ref);
    eplb_loads_free(x);
  }
  assert_true(layers >= 3000);
}

static void all_zero_layer_is_planned(void **state) {
  (void)state;
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(1, 16, &x), 0);
  eplb_params pr = params(32, 1, 1, 8, EPLB_HIER_NONE);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_valid(p);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* ---- bad parameters ---- */

static void strict_without_divisible_groups_is_refused(void **state) {
  (void)state;
  eplb_loads *x = lognormal(1, 24, 1.0);
  eplb_params pr = params(48, 3, 2, 8, EPLB_HIER_STRICT);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), EPLB_EPARAM);
  assert_null(p);
  assert_non_null(strstr(eplb_last_error(), "num_groups"));
  eplb_loads_free(x);
}

/* The defaults plan with balanced; allow_duplicates (the reference's duplicates) is deepseek's
 * and is refused with balanced rather than ignored. */
static void balanced_is_the_default_and_refuses_allow_duplicates(void **state) {
  (void)state;
  eplb_params d;
  eplb_params_init(&d);
  assert_int_equal(d.policy, EPLB_POLICY_BALANCED);
  assert_int_equal(d.hierarchy, EPLB_HIER_AUTO);
  eplb_loads *x = lognormal(1, 24, 1.0);
  eplb_params pr = params(48, 4, 2, 8, EPLB_HIER_AUTO);
  pr.allow_duplicates = 1;
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), EPLB_EPARAM);
  assert_null(p);
  assert_non_null(strstr(eplb_last_error(), "allow_duplicates"));
  pr.policy = EPLB_POLICY_DEEPSEEK;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* eplb_params_hierarchy resolves auto: strict when N > 1 and K % N == 0, else none; an explicit
 * hierarchy is kept. */
static void auto_hierarchy_resolves_by_groups_and_nodes(void **state) {
  (void)state;
  eplb_params pr = params(48, 4, 2, 8, EPLB_HIER_AUTO);
  assert_int_equal(eplb_params_hierarchy(&pr), EPLB_HIER_STRICT);
  pr.num_groups = 3;
  assert_int_equal(eplb_params_hierarchy(&pr), EPLB_HIER_NONE);
  pr.num_groups = 4;
  pr.num_nodes = 1;
  assert_int_equal(eplb_params_hierarchy(&pr), EPLB_HIER_NONE);
  pr.hierarchy = EPLB_HIER_SOFT;
  assert_int_equal(eplb_params_hierarchy(&pr), EPLB_HIER_SOFT);
}

static void too_few_experts_for_the_slots_of_a_device_is_refused(void **state) {
  (void)state;
  eplb_loads *x = lognormal(1, 4, 1.0);
  eplb_params pr = params(10, 1, 1, 2, EPLB_HIER_NONE); /* 5 slots per device, 4 experts */
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), EPLB_EPARAM);
  assert_null(p);
  assert_non_null(strstr(eplb_last_error(), "distinct experts"));
  eplb_loads_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plans_are_valid_without_duplicates_in_every_hierarchy),
      cmocka_unit_test(strict_keeps_every_replica_of_a_group_on_one_node),
      cmocka_unit_test(soft_keeps_one_replica_of_each_expert_on_its_groups_node),
      cmocka_unit_test(soft_by_split_keeps_the_rule_and_stays_near_the_bound),
      cmocka_unit_test(soft_at_five_slots_keeps_the_rule_near_the_bound),
      cmocka_unit_test(plans_are_deterministic),
      cmocka_unit_test(no_plan_beats_the_lower_bound),
      cmocka_unit_test(exact_optimum_of_a_hand_case),
      cmocka_unit_test(dominant_bound_never_exceeds_the_exact_optimum),
      cmocka_unit_test(balanced_reaches_the_exact_optimum_of_tiny_pools),
      cmocka_unit_test(balanced_reaches_the_optimum_of_mixtral_sized_pools),
      cmocka_unit_test(none_is_within_0_2_percent_of_the_bound_at_9_slots_per_device),
      cmocka_unit_test(balanced_is_never_worse_than_the_reference_where_it_has_no_duplicates),
      cmocka_unit_test(balanced_is_never_worse_than_deepseek_on_500_random_inputs),
      cmocka_unit_test(all_zero_layer_is_planned),
      cmocka_unit_test(strict_without_divisible_groups_is_refused),
      cmocka_unit_test(balanced_is_the_default_and_refuses_allow_duplicates),
      cmocka_unit_test(auto_hierarchy_resolves_by_groups_and_nodes),
      cmocka_unit_test(too_few_experts_for_the_slots_of_a_device_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
