/* test_plan_random.c - the deepseek policy on seeded random inputs (shapes in both modes,
 * hierarchical and global; zeros, equal loads, one dominant expert, small integers with many
 * ties, huge counts up to 2^62), each result checked by code independent of the planner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "eplb.h"
#include "core/eplb_rand.h"

/* Random cases; each is planned in both modes. */
#define NUM_CASES 1200
#define SEED 0x5eed5eedULL
/* Load kinds (see make_loads). */
enum { KIND_UNIFORM, KIND_LOGNORMAL, KIND_ZERO, KIND_EQUAL, KIND_DOMINANT, KIND_SMALL_INT,
       KIND_HUGE, NUM_KINDS };

/* ---- splitmix64 ---- */

/* The next value of a splitmix64 generator. */
static uint64_t rng_next(uint64_t *state) {
  return eplb__splitmix64(state);
}

/* A uniform integer in [lo, hi]. */
static int32_t rng_range(uint64_t *state, int32_t lo, int32_t hi) {
  return lo + (int32_t)(rng_next(state) % (uint64_t)(hi - lo + 1));
}

/* A uniform double in [0, 1). */
static double rng_unit(uint64_t *state) {
  return (double)(rng_next(state) >> 11) * 0x1p-53;
}

/* ---- random cases ---- */

/* A random shape and its parameters; `hier` says which mode the shape was built for. */
typedef struct rcase {
  int32_t L, E, R, K, N, G;
  int hier;
} rcase;

/* Builds a random shape valid for both modes: in hierarchical shapes K % N == 0, E % K == 0;
 * in global shapes K % N != 0. Slots per device never exceed the experts per node, so the
 * no-duplicate mode accepts it too. */
static rcase make_shape(uint64_t *rs) {
  rcase c;
  c.L = rng_range(rs, 1, 3);
  c.hier = rng_range(rs, 0, 1);
  if (c.hier) {
    c.N = rng_range(rs, 1, 4);
    c.K = c.N * rng_range(rs, 1, 4);
    c.E = c.K * rng_range(rs, 1, 6);
  } else {
    c.N = rng_range(rs, 2, 4);
    c.K = c.N * rng_range(rs, 0, 3) + rng_range(rs, 1, c.N - 1);
    c.E = rng_range(rs, 1, 40);
  }
  int32_t nodes = c.hier ? c.N : 1, gn = rng_range(rs, 1, 4);
  c.G = c.N * gn;
  int32_t en = c.E / nodes, gpn_dev = c.G / nodes;
  int32_t smin = (en + gpn_dev - 1) / gpn_dev; /* slots per device so that P/N >= E/N */
  int32_t smax = smin + rng_range(rs, 0, 4);
  if (smax > en)
    smax = en;
  if (smin < 1)
    smin = 1;
  int32_t S = rng_range(rs, smin, smax < smin ? smin : smax);
  c.R = c.G * S;
  return c;
}

/* Fills the loads of a case with one of the kinds. */
static eplb_loads *make_loads(const rcase *c, int kind, uint64_t *rs) {
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(c->L, c->E, &x), 0);
  size_t n = (size_t)c->L * c->E;
  int32_t dominant = rng_range(rs, 0, c->E - 1);
  for (size_t i = 0; i < n; i++) {
    int64_t v = 0;
    switch (kind) {
    case KIND_UNIFORM:
      v = (int64_t)(rng_unit(rs) * 1e6);
      break;
    case KIND_LOGNORMAL:
      v = (int64_t)exp(8 + 2 * (rng_unit(rs) + rng_unit(rs) + rng_unit(rs) - 1.5));
      break;
    case KIND_ZERO:
      v = 0;
      break;
    case KIND_EQUAL:
      v = 1000;
      break;
    case KIND_DOMINANT:
      v = (int32_t)(i % (size_t)c->E) == dominant ? 1000000 : rng_range(rs, 0, 10);
      break;
    case KIND_SMALL_INT:
      v = rng_range(rs, 0, 4);
      break;
    default: /* KIND_HUGE */
      v = (int64_t)(rng_next(rs) >> 2); /* up to 2^62 */
      break;
    }
    x->count[i] = v;
    x->load[i] = (double)v;
  }
  return x;
}

/* ---- independent checks ---- */

/* Checks one plan's invariants from phy2log alone: replica counts (>= 1, equal logcnt, at most
 * `cap` when cap > 0), log2phy rows, no duplicate on a device unless allowed, and, in
 * hierarchical mode, every group's replicas inside one node's slot range. */
static void check_plan(const rcase *c, const eplb_params *pr, const eplb_placement *p) {
  assert_int_equal(p->num_slots, c->R);
  assert_int_equal(p->num_gpus, c->G);
  assert_int_equal(p->num_experts, c->E);
  int hier = c->K % c->N == 0;
  assert_int_equal(hier, c->hier);
  int32_t nodes = hier ? c->N : 1, S = c->R / c->G, Pn = c->R / nodes, gn = c->G / nodes;
  int32_t gs = hier ? c->E / c->K : c->E, groups = hier ? c->K : 1;
  int32_t *cnt = calloc((size_t)c->E, sizeof *cnt), *node_of = calloc((size_t)groups, sizeof(int32_t));
  assert_non_null(cnt);
  assert_non_null(node_of);
  for (int32_t l = 0; l < c->L; l++) {
    const int32_t *row = p->phy2log + (size_t)l * c->R;
    memset(cnt, 0, (size_t)c->E * sizeof *cnt);
    for (int32_t k = 0; k < groups; k++)
      node_of[k] = -1;
    for (int32_t s = 0; s < c->R; s++) {
      int32_t e = row[s];
      assert_true(e >= 0 && e < c->E);
      cnt[e]++;
      int32_t k = e / gs;
      if (node_of[k] < 0)
        node_of[k] = s / Pn;
      assert_int_equal(node_of[k], s / Pn); /* one group, one node */
      if (!pr->allow_duplicates)
        for (int32_t t = s + 1; t < (s / S + 1) * S; t++)
          assert_int_not_equal(row[t], e);
    }
    for (int32_t e = 0; e < c->E; e++) {
      assert_true(cnt[e] >= 1);
      assert_int_equal(p->logcnt[(size_t)l * c->E + e], cnt[e]);
      if (!pr->allow_duplicates)
        assert_true(cnt[e] <= gn);
      const int32_t *slots = p->log2phy + ((size_t)l * c->E + e) * p->max_replicas;
      for (int32_t r = 0; r < p->max_replicas; r++) {
        if (r >= cnt[e]) {
          assert_int_equal(slots[r], -1);
          continue;
        }
        assert_true(slots[r] >= 0 && slots[r] < c->R);
        assert_int_equal(row[slots[r]], e);
        for (int32_t t = 0; t < r; t++)
          assert_int_not_equal(slots[t], slots[r]);
      }
    }
  }
  free(cnt);
  free(node_of);
}

/* Whether layer l of p puts two replicas of one expert on a device. */
static int layer_has_duplicate(const eplb_placement *p, int32_t l) {
  int32_t S = p->num_slots / p->num_gpus;
  const int32_t *row = p->phy2log + (size_t)l * p->num_slots;
  for (int32_t s = 0; s < p->num_slots; s++)
    for (int32_t t = s + 1; t < (s / S + 1) * S; t++)
      if (row[s] == row[t])
        return 1;
  return 0;
}

/* ---- tests ---- */

/* Every random case plans in both modes, the results pass the independent checks, and the
 * no-duplicate plan equals the exact one in each layer where the exact one has no duplicate. */
static void test_random_invariants(void **state) {
  (void)state;
  uint64_t rs = SEED;
  int same = 0, differ_allowed = 0, hier_cases = 0;
  for (int i = 0; i < NUM_CASES; i++) {
    rcase c = make_shape(&rs);
    hier_cases += c.hier;
    eplb_loads *x = make_loads(&c, i % NUM_KINDS, &rs);
    eplb_placement *out[2] = {NULL, NULL};
    for (int dups = 0; dups <= 1; dups++) {
      eplb_params pr;
      eplb_params_init(&pr);
      pr.num_replicas = c.R;
      pr.num_groups = c.K;
      pr.num_nodes = c.N;
      pr.num_gpus = c.G;
      pr.policy = EPLB_POLICY_DEEPSEEK;
      pr.allow_duplicates = dups;
      int rc = eplb_plan(x, &pr, &out[dups]);
      if (rc)
        fail_msg("case %d (L%d E%d R%d K%d N%d G%d dups %d): %s", i, c.L, c.E, c.R, c.K, c.N,
                 c.G, dups, eplb_last_error());
      check_plan(&c, &pr, out[dups]);
    }
    for (int32_t l = 0; l < c.L; l++) {
      if (layer_has_duplicate(out[1], l)) {
        differ_allowed++;
        continue;
      }
      same++;
      assert_memory_equal(out[0]->phy2log + (size_t)l * c.R, out[1]->phy2log + (size_t)l * c.R,
                          (size_t)c.R * sizeof(int32_t));
    }
    eplb_placement_free(out[0]);
    eplb_placement_free(out[1]);
    eplb_loads_free(x);
  }
  print_message("%d cases (%d hierarchical): %d layers identical in both modes, %d layers "
                "where the exact mode has duplicates\n",
                NUM_CASES, hier_cases, same, differ_allowed);
  assert_true(hier_cases > NUM_CASES / 4 && hier_cases < NUM_CASES * 3 / 4);
  assert_true(differ_allowed > 0); /* the repair paths were exercised */
}

/* Planning is deterministic: the same input gives the same output twice. */
static void test_random_deterministic(void **state) {
  (void)state;
  uint64_t rs = SEED ^ 0xabcdefULL;
  for (int i = 0; i < 50; i++) {
    rcase c = make_shape(&rs);
    eplb_loads *x = make_loads(&c, KIND_SMALL_INT, &rs);
    eplb_params pr;
    eplb_params_init(&pr);
    pr.num_replicas = c.R;
    pr.num_groups = c.K;
    pr.num_nodes = c.N;
    pr.num_gpus = c.G;
    pr.policy = EPLB_POLICY_DEEPSEEK;
    eplb_placement *a = NULL, *b = NULL;
    assert_int_equal(eplb_plan(x, &pr, &a), 0);
    assert_int_equal(eplb_plan(x, &pr, &b), 0);
    assert_memory_equal(a->phy2log, b->phy2log, (size_t)c.L * c.R * sizeof(int32_t));
    eplb_placement_free(a);
    eplb_placement_free(b);
    eplb_loads_free(x);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_invariants),
      cmocka_unit_test(test_random_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
