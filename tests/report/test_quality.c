/* test_quality.c - the lower bound against brute force, and every figure of a report against
 * values worked out by hand (in the comments) on small maps. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "eplb.h"

#define TOL 1e-12

/* ---- lower bound ---- */

/* min over d (1 <= d_e <= G, sum d <= R) of max w_e / d_e, by trying every d. */
static double brute_share(const double *w, int32_t E, int32_t R, int32_t G, int32_t e,
                          int32_t used, int32_t *cur) {
  if (e == E) {
    double m = 0;
    for (int32_t i = 0; i < E; i++)
      m = w[i] / cur[i] > m ? w[i] / cur[i] : m;
    return m;
  }
  double best = INFINITY;
  for (int32_t k = 1; k <= G && used + k + (E - e - 1) <= R; k++) {
    cur[e] = k;
    double v = brute_share(w, E, R, G, e + 1, used + k, cur);
    best = v < best ? v : best;
  }
  return best;
}

static void lower_bound_matches_brute_force(void **state) {
  (void)state;
  uint64_t st = 5;
  for (int c = 0; c < 300; c++) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    int32_t E = 1 + (int32_t)((st >> 33) % 5), G = 1 + (int32_t)((st >> 40) % 4);
    int32_t R = E + (int32_t)((st >> 50) % 6);
    eplb_loads *x = NULL;
    assert_int_equal(eplb_loads_create(1, E, &x), 0);
    double total = 0;
    for (int32_t e = 0; e < E; e++) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      x->load[e] = (double)((st >> 33) % 1000);
      total += x->load[e];
    }
    int32_t cur[8];
    double share = brute_share(x->load, E, R, G, 0, 0, cur);
    double expect = total / G > share ? total / G : share, lb = -1;
    assert_int_equal(eplb_lower_bound(x, 0, R, G, &lb), 0);
    assert_true(fabs(lb - expect) <= TOL * (1 + expect));
    eplb_loads_free(x);
  }
}

static void lower_bound_refuses_bad_arguments(void **state) {
  (void)state;
  eplb_loads *x = NULL;
  double lb;
  assert_int_equal(eplb_loads_create(2, 4, &x), 0);
  assert_int_equal(eplb_lower_bound(x, 2, 8, 2, &lb), EPLB_EINVAL); /* no layer 2 */
  assert_int_equal(eplb_lower_bound(x, 0, 3, 2, &lb), EPLB_EINVAL); /* fewer slots than experts */
  assert_int_equal(eplb_lower_bound(x, 0, 8, 0, &lb), EPLB_EINVAL);
  assert_int_equal(eplb_lower_bound(NULL, 0, 8, 2, &lb), EPLB_EINVAL);
  eplb_loads_free(x);
}

/* ---- report ---- */

/* A placement from rows, layer ids given. */
static eplb_placement *make_map(int32_t L, int32_t E, int32_t R, int32_t G, const int64_t *ids,
                                const int32_t *rows) {
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_create(L, E, R, G, &p), 0);
  memcpy(p->layer_ids, ids, (size_t)L * sizeof *ids);
  memcpy(p->phy2log, rows, (size_t)L * R * sizeof *rows);
  assert_int_equal(eplb_placement_build_index(p), 0);
  return p;
}

/* Loads with layer ids 3, 5, 7 (5 is not in the maps) over 4 experts. */
static eplb_loads *sample_loads(void) {
  static const double W[3][4] = {{6, 2, 2, 2}, {9, 9, 9, 9}, {1, 1, 1, 1}};
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(3, 4, &x), 0);
  x->layer_ids[0] = 3;
  x->layer_ids[1] = 5;
  x->layer_ids[2] = 7;
  memcpy(x->load, W, sizeof W);
  return x;
}

/* Layer 3: device 0 = {0, 1, 2}, device 1 = {0, 3, 3} (expert 3 twice). Layer 7: {0, 1, 2},
 * {3, 2, 1}. Groups {0, 1}, {2, 3}; device d is node d. */
static const int64_t IDS[2] = {3, 7};
static const int32_t MAP[2][6] = {{0, 1, 2, 0, 3, 3}, {0, 1, 2, 3, 2, 1}};
static const int32_t OLD[2][6] = {{1, 2, 3, 0, 3, 2}, {0, 1, 2, 3, 2, 1}};

static void report_figures_match_hand_computation(void **state) {
  (void)state;
  eplb_loads *x = sample_loads();
  eplb_placement *map = make_map(2, 4, 6, 2, IDS, &MAP[0][0]);
  eplb_placement *old = make_map(2, 4, 6, 2, IDS, &OLD[0][0]);
  eplb_report *r = NULL;
  assert_int_equal(eplb_report_compute(x, map, old, 2, 2, &r), 0);
  assert_int_equal(r->num_layers, 2);
  const eplb_layer_report *a = &r->layers[0], *b = &r->layers[1], *o = &r->overall;
  /* Layer 3: counts 0:2 1:1 2:1 3:2. Device 0 = 3+2+2 = 7, device 1 = 3+1+1 = 5. Total 12, mean
   * 6, LB = max(12/2, 3) = 6. */
  assert_int_equal(a->layer_id, 3);
  assert_true(fabs(a->total - 12) < TOL && fabs(a->max_load - 7) < TOL);
  assert_true(fabs(a->balancedness - 6.0 / 7) < TOL);
  assert_true(fabs(a->max_over_lb - 7.0 / 6) < TOL);
  assert_true(fabs(a->imbalance - 1.0 / 6) < TOL);
  assert_int_equal(a->duplicates, 1);
  assert_int_equal(a->missing, 0);
  /* Moves: device 0 gets expert 0, which old device 0 {1,2,3} lacks; device 1 {0,3} had both. */
  assert_int_equal(a->moves, 1);
  /* Off node: group {0,1} node 0 serves 3+2, node 1 serves 3: off 3. Group {2,3}: node 0
   * serves 2, node 1 serves 1+1: a tie, home node 0, off 2. Share 5/12. */
  assert_true(fabs(a->off_node_share - 5.0 / 12) < TOL);
  /* Layer 7: counts 0:1 1:2 2:2 3:1; both devices 1+0.5+0.5 = 2; LB = max(2, 1) = 2. Groups:
   * {0,1} node 0: 1.5, node 1: 0.5; {2,3} node 0: 0.5, node 1: 1.5: off 1 of 4. */
  assert_int_equal(b->layer_id, 7);
  assert_true(fabs(b->balancedness - 1) < TOL && fabs(b->max_over_lb - 1) < TOL);
  assert_true(fabs(b->imbalance) < TOL);
  assert_int_equal(b->duplicates, 0);
  assert_int_equal(b->moves, 0);
  assert_true(fabs(b->off_node_share - 0.25) < TOL);
  /* Overall: sums of means 8, of maxima 9, of bounds 8; off (5 + 1) / 16. */
  assert_true(fabs(o->balancedness - 8.0 / 9) < TOL);
  assert_true(fabs(o->max_over_lb - 9.0 / 8) < TOL);
  assert_true(fabs(o->imbalance - 1.0 / 8) < TOL);
  assert_int_equal(o->duplicates, 1);
  assert_int_equal(o->moves, 1);
  assert_true(fabs(o->off_node_share - 6.0 / 16) < TOL);
  eplb_report_free(r);
  eplb_placement_free(map);
  eplb_placement_free(old);
  eplb_loads_free(x);
}

static void report_without_old_map_has_no_moves_and_one_node_no_off_node(void **state) {
  (void)state;
  eplb_loads *x = sample_loads();
  eplb_placement *map = make_map(2, 4, 6, 2, IDS, &MAP[0][0]);
  eplb_report *r = NULL;
  assert_int_equal(eplb_report_compute(x, map, NULL, 1, 1, &r), 0);
  assert_true(r->layers[0].moves == -1 && r->overall.moves == -1);
  assert_true(r->layers[0].off_node_share == 0 && r->overall.off_node_share == 0);
  eplb_report_free(r);
  eplb_placement_free(map);
  eplb_loads_free(x);
}

static void experts_beyond_the_map_are_counted_missing(void **state) {
  (void)state;
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(1, 6, &x), 0);
  for (int e = 0; e < 6; e++)
    x->load[e] = 1;
  static const int64_t id[1] = {0};
  static const int32_t row[4] = {0, 1, 2, 3};
  eplb_placement *map = make_map(1, 4, 4, 2, id, row);
  eplb_report *r = NULL;
  assert_int_equal(eplb_report_compute(x, map, NULL, 1, 1, &r), 0);
  assert_int_equal(r->layers[0].missing, 2);
  /* Served: 2 per device of a total 6, mean 3: max 2 is below the mean. */
  assert_true(fabs(r->layers[0].max_load - 2) < TOL);
  eplb_report_free(r);
  eplb_placement_free(map);
  eplb_loads_free(x);
}

static void report_refuses_mismatched_inputs(void **state) {
  (void)state;
  eplb_loads *x = sample_loads();
  static const int64_t bad_ids[2] = {3, 4}; /* no loads for layer 4 */
  eplb_placement *map = make_map(2, 4, 6, 2, IDS, &MAP[0][0]);
  eplb_placement *bad = make_map(2, 4, 6, 2, bad_ids, &MAP[0][0]);
  eplb_placement *other = NULL; /* 3 devices */
  static const int32_t rows3[12] = {0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 0, 1};
  other = make_map(2, 4, 6, 3, IDS, rows3);
  eplb_report *r = NULL;
  assert_int_equal(eplb_report_compute(x, bad, NULL, 1, 1, &r), EPLB_EINVAL);
  assert_null(r);
  assert_non_null(strstr(eplb_last_error(), "layer 4"));
  assert_int_equal(eplb_report_compute(x, map, other, 1, 1, &r), EPLB_EINVAL);
  assert_int_equal(eplb_report_compute(x, map, NULL, 3, 1, &r), EPLB_EINVAL); /* 3 !| 4 */
  assert_int_equal(eplb_report_compute(x, map, NULL, 1, 3, &r), EPLB_EINVAL); /* 3 !| 2 */
  eplb_placement_free(map);
  eplb_placement_free(bad);
  eplb_placement_free(other);
  eplb_loads_free(x);
}

static void moves_against_itself_are_zero(void **state) {
  (void)state;
  eplb_placement *map = make_map(2, 4, 6, 2, IDS, &MAP[0][0]);
  assert_int_equal(eplb_placement_moves(map, map, 0), 0);
  assert_int_equal(eplb_placement_moves(map, map, 1), 0);
  assert_true(eplb_placement_moves(map, map, 2) < 0);
  eplb_placement_free(map);
}

/* ---- svg ---- */

static void svg_failure_leaves_the_file_untouched(void **state) {
  (void)state;
  char path[] = "/tmp/eplb_svg_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "keep", 4), 4);
  close(fd);
  eplb_loads *x = sample_loads();
  static const int64_t bad_ids[2] = {3, 4};
  eplb_placement *bad = make_map(2, 4, 6, 2, bad_ids, &MAP[0][0]);
  assert_int_equal(eplb_report_svg(x, bad, NULL, path), EPLB_EINVAL);
  FILE *f = fopen(path, "r");
  char buf[16] = {0};
  assert_non_null(f);
  assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 4);
  fclose(f);
  assert_string_equal(buf, "keep");
  eplb_placement *map = make_map(2, 4, 6, 2, IDS, &MAP[0][0]);
  assert_int_equal(eplb_report_svg(x, map, NULL, path), 0);
  f = fopen(path, "r");
  assert_non_null(f);
  assert_int_equal(fread(buf, 1, 5, f), 5);
  fclose(f);
  assert_memory_equal(buf, "<?xml", 5);
  unlink(path);
  eplb_placement_free(bad);
  eplb_placement_free(map);
  eplb_loads_free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(lower_bound_matches_brute_force),
      cmocka_unit_test(lower_bound_refuses_bad_arguments),
      cmocka_unit_test(report_figures_match_hand_computation),
      cmocka_unit_test(report_without_old_map_has_no_moves_and_one_node_no_off_node),
      cmocka_unit_test(experts_beyond_the_map_are_counted_missing),
      cmocka_unit_test(report_refuses_mismatched_inputs),
      cmocka_unit_test(moves_against_itself_are_zero),
      cmocka_unit_test(svg_failure_leaves_the_file_untouched),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
