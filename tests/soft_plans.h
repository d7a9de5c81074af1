/* soft_plans.h - a seeded uniform draw and an independent recount of a plan's busiest device,
 * shared by the tests of soft's split and target construction. Define SOFT_PLANS_SEED, then
 * include after cmocka.h and eplb_rand.h. */
#ifndef EPLB_TESTS_SOFT_PLANS_H
#define EPLB_TESTS_SOFT_PLANS_H

static uint64_t rng_state = SOFT_PLANS_SEED;

/* A uniform number in (0, 1). */
static double uniform(void) {
  return ((double)(eplb__splitmix64(&rng_state) >> 11) + 0.5) / 9007199254740992.0;
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

#endif
