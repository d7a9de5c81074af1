/* pair_pools.h - random small two-slot pools and an independent check of their counts, shared by
 * the tests of the two-slot count searches (include after cmocka.h and test_oracles.h). */
#ifndef EPLB_TESTS_PAIR_POOLS_H
#define EPLB_TESTS_PAIR_POOLS_H

/* Most replicas (2G) a pool of these tests has. */
#define PAIR_POOLS_MAX_ITEMS 64

static uint64_t rng_state;

/* A heavy-tailed load in [1, ~1e4) (exp of a sum of uniforms). */
static double heavy_load(void) {
  double u = 0;
  for (int i = 0; i < 4; i++)
    u += (double)(eplb__splitmix64(&rng_state) % 1000) / 1000.0;
  return floor(exp(2.3 * u)) + 1;
}

/* A random pool: n experts in [min_n, max_n] with heavy-tailed loads, G devices in
 * [ceil(n/2), max_g]. */
static void random_pool_of(double *w, int32_t *n, int32_t *G, int32_t min_n, int32_t max_n,
                           int32_t max_g) {
  *n = min_n + (int32_t)(eplb__splitmix64(&rng_state) % (uint64_t)(max_n - min_n + 1));
  int32_t lo = (*n + 1) / 2;
  *G = lo + (int32_t)(eplb__splitmix64(&rng_state) % (uint64_t)(max_g - lo + 1));
  for (int32_t e = 0; e < *n; e++)
    w[e] = heavy_load();
}

/* The largest pair of counts cnt: items sorted, the k-th largest with the k-th smallest;
 * checks the counts are complete on the way (each 1..G, summing to 2G). */
static double largest_pair(const double *w, int32_t n, int32_t G, const int32_t *cnt) {
  double it[PAIR_POOLS_MAX_ITEMS];
  int32_t m = 0;
  assert_true(2 * G <= PAIR_POOLS_MAX_ITEMS);
  for (int32_t e = 0; e < n; e++) {
    assert_true(cnt[e] >= 1 && cnt[e] <= G);
    for (int32_t r = 0; r < cnt[e]; r++) {
      assert_true(m < 2 * G);
      it[m++] = w[e] / cnt[e];
    }
  }
  assert_int_equal(m, 2 * G);
  qsort(it, (size_t)m, sizeof *it, oracle_desc_cmp);
  double mx = 0;
  for (int32_t k = 0; k < G; k++)
    mx = fmax(mx, it[k] + it[m - 1 - k]);
  return mx;
}

#endif
