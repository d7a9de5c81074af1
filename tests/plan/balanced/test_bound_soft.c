/* test_bound_soft.c - the lower bound under hierarchy soft: on tiny pools it never exceeds the
 * true optimum over every placement that keeps one replica of each expert on its group's node
 * (found here by enumeration), it is never below the plain lower bound, it is reached on some
 * pools (so it is not trivially loose), and it equals the plain bound without nodes. Also soft's
 * starting counts against an enumeration of every count vector. */
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

#include "plan/balanced/balanced.h"
#include "core/eplb_rand.h"

/* Tiny shapes: 2 nodes, 2 groups. */
#define NODES 2
#define GROUPS 2
#define MAX_E 6
#define MAX_G 4
#define CASES 60
#define TOL 1e-9

static uint64_t rng_state;

/* splitmix64. */
static uint64_t rnd(void) {
  return eplb__splitmix64(&rng_state);
}

/* ---- brute force ---- */

typedef struct brute {
  const double *w;
  int32_t E, G, S, nsub;
  uint32_t subs[32];
  int32_t pick[MAX_G];
  double best;
} brute;

/* Whether every expert has a replica on its group's node when group g sits on node perm[g]. */
static int soft_ok(const brute *b, const int32_t *perm) {
  int32_t gs = b->E / GROUPS, Gn = b->G / NODES;
  for (int32_t e = 0; e < b->E; e++) {
    int32_t node = perm[e / gs], found = 0;
    for (int32_t d = node * Gn; d < (node + 1) * Gn && !found; d++)
      found = (int32_t)(b->subs[b->pick[d]] >> e & 1u);
    if (!found)
      return 0;
  }
  return 1;
}

/* Scores a complete placement when it covers every expert and obeys soft for some partition. */
static void score(brute *b) {
  int32_t cnt[MAX_E] = {0};
  for (int32_t d = 0; d < b->G; d++)
    for (int32_t e = 0; e < b->E; e++)
      cnt[e] += (int32_t)(b->subs[b->pick[d]] >> e & 1u);
  for (int32_t e = 0; e < b->E; e++)
    if (!cnt[e])
      return;
  static const int32_t PERMS[2][2] = {{0, 1}, {1, 0}};
  if (!soft_ok(b, PERMS[0]) && !soft_ok(b, PERMS[1]))
    return;
  double mx = 0;
  for (int32_t d = 0; d < b->G; d++) {
    double l = 0;
    for (int32_t e = 0; e < b->E; e++)
      if (b->subs[b->pick[d]] >> e & 1u)
        l += b->w[e] / cnt[e];
    mx = l > mx ? l : mx;
  }
  if (mx < b->best)
    b->best = mx;
}

/* Devices of one node take subsets in non-decreasing order (they are interchangeable). */
static void rec(brute *b, int32_t d) {
  if (d == b->G) {
    score(b);
    return;
  }
  int32_t Gn = b->G / NODES, from = d % Gn ? b->pick[d - 1] : 0;
  for (int32_t s = from; s < b->nsub; s++) {
    b->pick[d] = s;
    rec(b, d + 1);
  }
}

/* The true optimum of a soft placement (INFINITY when none exists). */
static double soft_optimum(const double *w, int32_t E, int32_t G, int32_t S) {
  brute b = {w, E, G, S, 0, {0}, {0}, INFINITY};
  for (uint32_t m = 0; m < (1u << E); m++)
    if (__builtin_popcount(m) == S)
      b.subs[b.nsub++] = m;
  rec(&b, 0);
  return b.best;
}

/* ---- tests ---- */

/* The bound is valid (at most the optimum), at least the plain bound, and sometimes tight. */
static void soft_bound_is_valid_and_sometimes_tight_on_tiny_pools(void **state) {
  (void)state;
  rng_state = 5;
  int tight = 0, above = 0, cases = 0;
  for (int c = 0; c < CASES; c++) {
    int32_t E = 4 + 2 * (int32_t)(rnd() % 2), G = 2 + 2 * (int32_t)(rnd() % 2);
    int32_t S = 2 + (int32_t)(rnd() % 2);
    if (S > E || E > G * S)
      continue;
    double w[MAX_E];
    for (int32_t e = 0; e < E; e++)
      w[e] = (double)(1 + rnd() % 100) * (rnd() % 4 ? 1 : 20);
    double opt = soft_optimum(w, E, G, S);
    if (!isfinite(opt))
      continue;
    double lb = eplb__pool_bound(w, E, G * S, G);
    double sb = eplb__soft_bound(w, E, GROUPS, NODES, G * S, G);
    assert_true(sb >= lb * (1 - TOL));
    assert_true(sb <= opt * (1 + TOL));
    tight += sb >= opt * (1 - TOL);
    above += sb > lb * (1 + TOL);
    cases++;
  }
  printf("soft bound: %d pools, tight on %d, above the plain bound on %d\n", cases, tight, above);
  assert_true(cases > CASES / 2);
  assert_true(above > 0);
  assert_true(tight > 0);
}

/* Without nodes (N = 1) the soft bound is the plain bound. */
static void soft_bound_is_the_plain_bound_without_nodes(void **state) {
  (void)state;
  double w[8] = {100, 1, 2, 3, 50, 7, 9, 30};
  assert_true(eplb__soft_bound(w, 8, 2, 1, 12, 4) == eplb__pool_bound(w, 8, 12, 4));
}

/* A hand case: groups {90, 10} and {1, 1}, 2 nodes of 1 device, 2 slots, R = E (every expert
 * has one replica): node 0 carries 100, node 1 carries 2, so the soft bound is 100 while the
 * plain bound is max(102 / 2, 90) = 90. */
static void soft_bound_matches_a_hand_computed_case(void **state) {
  (void)state;
  double w[4] = {90, 10, 1, 1};
  assert_true(fabs(eplb__pool_bound(w, 4, 4, 2) - 90) < 1e-12);
  assert_true(fabs(eplb__soft_bound(w, 4, 2, 2, 4, 2) - 100) < 1e-12);
}

/* The smallest, over every count vector (1 <= d_e <= G, sum <= R), of the heavier set's
 * anchored load sum w_e / d_e; sets are home[e] in {0, 1}. */
static void anchor_rec(const double *w, const int32_t *home, int32_t n, int32_t G, int32_t *d,
                       int32_t e, int32_t left, double *best) {
  if (e == n) {
    double a[2] = {0, 0};
    for (int32_t i = 0; i < n; i++)
      a[home[i]] += w[i] / d[i];
    double m = a[0] > a[1] ? a[0] : a[1];
    *best = m < *best ? m : *best;
    return;
  }
  for (int32_t c = 1; c <= G && c <= left - (n - 1 - e); c++) {
    d[e] = c;
    anchor_rec(w, home, n, G, d, e + 1, left - c, best);
  }
}

/* Soft's starting counts: valid (each in [1, G], summing to R) and their heavier set's anchored
 * load is the smallest any counts reach (enumerated). */
static void anchor_counts_minimise_the_heaviest_sets_first_replicas(void **state) {
  (void)state;
  rng_state = 9;
  for (int c = 0; c < CASES; c++) {
    int32_t n = 4 + (int32_t)(rnd() % 3), G = 2 + (int32_t)(rnd() % 3);
    int32_t R = n + (int32_t)(rnd() % (uint64_t)(n * G - n + 1));
    double w[MAX_E];
    int32_t home[MAX_E], cnt[MAX_E], d[MAX_E];
    for (int32_t e = 0; e < n; e++) {
      w[e] = (double)(1 + rnd() % 100) * (rnd() % 4 ? 1 : 20);
      home[e] = (int32_t)(rnd() % 2);
    }
    assert_int_equal(eplb__anchor_counts(w, n, home, 2, R, G, cnt), 0);
    int32_t sum = 0;
    double a[2] = {0, 0};
    for (int32_t e = 0; e < n; e++) {
      assert_true(cnt[e] >= 1 && cnt[e] <= G);
      sum += cnt[e];
      a[home[e]] += w[e] / cnt[e];
    }
    assert_int_equal(sum, R);
    double best = INFINITY;
    anchor_rec(w, home, n, G, d, 0, R, &best);
    double got = a[0] > a[1] ? a[0] : a[1];
    assert_true(fabs(got - best) <= TOL * best);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(soft_bound_is_valid_and_sometimes_tight_on_tiny_pools),
      cmocka_unit_test(soft_bound_is_the_plain_bound_without_nodes),
      cmocka_unit_test(soft_bound_matches_a_hand_computed_case),
      cmocka_unit_test(anchor_counts_minimise_the_heaviest_sets_first_replicas),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
