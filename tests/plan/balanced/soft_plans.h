/* soft_plans.h - seeded uniform and normal draws, an independent recount of a plan's busiest
 * device and a check of soft's first-replica rule, shared by the tests of soft's split, target
 * construction and annealing. Define SOFT_PLANS_SEED, then include after cmocka.h, math.h and
 * eplb_rand.h. */
#ifndef EPLB_TESTS_SOFT_PLANS_H
#define EPLB_TESTS_SOFT_PLANS_H

static uint64_t rng_state = SOFT_PLANS_SEED;

/* A uniform number in (0, 1). */
static double uniform(void) {
  return ((double)(eplb__splitmix64(&rng_state) >> 11) + 0.5) / 9007199254740992.0;
}

/* A standard normal number (Box-Muller from two uniform draws, the first for the radius). */
static double gauss(void) {
  double r = sqrt(-2 * log(uniform()));
  return r * cos(6.283185307179586 * uniform());
}

/* The busiest device of row (P slots, S per device), each replica carrying w / its count. */
static double busiest(const double *w, int32_t E, const int32_t *row, int32_t P, int32_t S) {
  int32_t *cnt = calloc((size_t)E, sizeof *cnt);
  assert_non_null(cnt);
  for (int32_t i = 0; i < P; i++)
    cnt[row[i]]++;
  double mx = 0;
  for (int32_t d = 0; d < P / S; d++) {
    double sum = 0;
    for (int32_t i = d * S; i < (d + 1) * S; i++)
      sum += w[row[i]] / cnt[row[i]];
    mx = sum > mx ? sum : mx;
  }
  free(cnt);
  return mx;
}

/* Asserts that row is a complete plan of E experts on N nodes of Gn devices of S slots with no
 * expert twice on a device and a replica of every expert on its home node; with cnt, that every
 * expert has exactly cnt[e] replicas (without, at least one). */
static void assert_soft_plan(const int32_t *row, int32_t E, const int32_t *home, int32_t N,
                             int32_t Gn, int32_t S, const int32_t *cnt) {
  int32_t G = N * Gn;
  int32_t *got = calloc((size_t)E, sizeof *got);
  unsigned char *at_home = calloc((size_t)E, 1);
  assert_true(got && at_home);
  for (int32_t d = 0; d < G; d++)
    for (int32_t i = d * S; i < (d + 1) * S; i++) {
      int32_t e = row[i];
      assert_true(e >= 0 && e < E);
      got[e]++;
      for (int32_t j = d * S; j < i; j++)
        assert_int_not_equal(row[j], e); /* never twice on a device */
      if (d / Gn == home[e])
        at_home[e] = 1;
    }
  for (int32_t e = 0; e < E; e++) {
    if (cnt)
      assert_int_equal(got[e], cnt[e]);
    else
      assert_true(got[e] >= 1);
    assert_true(at_home[e]);
  }
  free(got);
  free(at_home);
}

#endif
