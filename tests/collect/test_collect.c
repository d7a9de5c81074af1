/* test_collect.c - the in-memory collector: counting, bad input, windows, merge, threads, loads.
 * Expected counts are computed here independently (literal tables or a naive count). */
#include <pthread.h>
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

#define L 3
#define E 5

/* ---- helpers ---- */

/* A small deterministic generator (splitmix64), so tests need no seed from the library. */
static uint64_t next_rand(uint64_t *s) {
  return eplb__splitmix64(s);
}

/* Reads one window of c into a fresh buffer of L*E counts (caller frees). */
static uint64_t *read_window(const eplb_collector *c, int32_t window) {
  int32_t l = 0, e = 0;
  eplb_collector_dims(c, &l, &e, NULL);
  uint64_t *out = calloc((size_t)l * (size_t)e, sizeof *out);
  assert_non_null(out);
  assert_int_equal(eplb_collector_counts(c, window, out, (size_t)l * (size_t)e), 0);
  return out;
}

/* Asserts that a window of c equals `expect` (L*E values). */
static void assert_window(const eplb_collector *c, int32_t window, const uint64_t *expect) {
  uint64_t *got = read_window(c, window);
  int32_t l = 0, e = 0;
  eplb_collector_dims(c, &l, &e, NULL);
  for (size_t i = 0; i < (size_t)l * (size_t)e; i++)
    assert_int_equal(got[i], expect[i]);
  free(got);
}

/* ---- creation ---- */

static void create_rejects_sizes_below_one(void **state) {
  (void)state;
  assert_null(eplb_collector_create(0, E, 1));
  assert_non_null(strstr(eplb_last_error(), "sizes"));
  assert_null(eplb_collector_create(L, 0, 1));
  assert_null(eplb_collector_create(L, E, 0));
  assert_null(eplb_collector_create(-1, E, 1));
  eplb_collector_free(NULL);
}

static void create_starts_at_zero(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 2);
  assert_non_null(c);
  int32_t l = 0, e = 0, w = 0;
  eplb_collector_dims(c, &l, &e, &w);
  assert_int_equal(l, L);
  assert_int_equal(e, E);
  assert_int_equal(w, 2);
  uint64_t zero[L * E] = {0};
  assert_window(c, EPLB_WINDOW_ALL, zero);
  eplb_collector_free(c);
}

/* ---- recording ---- */

static void record_int32_counts_every_id(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  const int32_t ids[] = {0, 4, 4, 2, 0, 4, 1, 3};
  assert_int_equal(eplb_collector_record(c, 1, ids, 8, EPLB_ID_INT32), 0);
  const uint64_t expect[L * E] = {0, 0, 0, 0, 0, /* layer 1: */ 2, 1, 1, 1, 3, 0, 0, 0, 0, 0};
  assert_window(c, EPLB_WINDOW_ALL, expect);
  eplb_collector_free(c);
}

static void record_int64_counts_every_id(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  const int64_t ids[] = {3, 3, 3, 0, 1};
  assert_int_equal(eplb_collector_record(c, 2, ids, 5, EPLB_ID_INT64), 0);
  assert_int_equal(eplb_collector_record(c, 2, ids, 2, EPLB_ID_INT64), 0);
  const uint64_t expect[L * E] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* layer 2: */ 1, 1, 0, 5, 0};
  assert_window(c, EPLB_WINDOW_ALL, expect);
  eplb_collector_free(c);
}

static void record_many_random_ids_matches_naive_count(void **state) {
  (void)state;
  enum { NL = 4, NE = 64, N = 10007 };
  eplb_collector *c = eplb_collector_create(NL, NE, 1);
  static uint64_t naive[NL * NE];
  static int32_t ids32[N];
  static int64_t ids64[N];
  memset(naive, 0, sizeof naive);
  uint64_t s = 42;
  for (int call = 0; call < 20; call++) {
    int layer = call % NL;
    for (int i = 0; i < N; i++) {
      ids32[i] = (int32_t)(next_rand(&s) % NE);
      ids64[i] = ids32[i];
      naive[layer * NE + ids32[i]] += 2; /* recorded once as int32, once as int64 */
    }
    assert_int_equal(eplb_collector_record(c, layer, ids32, N, EPLB_ID_INT32), 0);
    assert_int_equal(eplb_collector_record(c, layer, ids64, N, EPLB_ID_INT64), 0);
  }
  assert_window(c, EPLB_WINDOW_ALL, naive);
  eplb_collector_free(c);
}

static void record_bad_id_counts_nothing(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  const int32_t good[] = {1, 2};
  assert_int_equal(eplb_collector_record(c, 0, good, 2, EPLB_ID_INT32), 0);
  uint64_t *before = read_window(c, EPLB_WINDOW_ALL);

  const int32_t neg[] = {0, 1, -1, 2};
  assert_int_equal(eplb_collector_record(c, 0, neg, 4, EPLB_ID_INT32), EPLB_ERANGE);
  assert_non_null(strstr(eplb_last_error(), "ids[2] = -1"));
  const int32_t big[] = {0, E};
  assert_int_equal(eplb_collector_record(c, 0, big, 2, EPLB_ID_INT32), EPLB_ERANGE);
  const int32_t min32[] = {INT32_MIN};
  assert_int_equal(eplb_collector_record(c, 0, min32, 1, EPLB_ID_INT32), EPLB_ERANGE);
  /* An int64 id whose low 32 bits are valid must not be truncated into range. */
  const int64_t wide[] = {0, ((int64_t)1 << 40) + 1};
  assert_int_equal(eplb_collector_record(c, 0, wide, 2, EPLB_ID_INT64), EPLB_ERANGE);
  const int64_t neg64[] = {-1, 0};
  assert_int_equal(eplb_collector_record(c, 0, neg64, 2, EPLB_ID_INT64), EPLB_ERANGE);

  assert_window(c, EPLB_WINDOW_ALL, before);
  free(before);
  eplb_collector_free(c);
}

/* Large calls take the partial-histogram path; a bad id late in one must count nothing either. */
static void record_bad_id_late_in_a_large_call_counts_nothing(void **state) {
  (void)state;
  enum { NE = 256, N = 50000 };
  static int32_t ids32[N];
  static int64_t ids64[N];
  eplb_collector *c = eplb_collector_create(1, NE, 1);
  for (int i = 0; i < N; i++)
    ids32[i] = (int32_t)(i % NE), ids64[i] = i % NE;
  assert_int_equal(eplb_collector_record(c, 0, ids32, N, EPLB_ID_INT32), 0);
  uint64_t *before = read_window(c, EPLB_WINDOW_ALL);
  const size_t at[] = {0, 1, 3, 4, 4097, N - 2, N - 1};
  for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
    ids32[at[k]] = NE;
    ids64[at[k]] = -5;
    assert_int_equal(eplb_collector_record(c, 0, ids32, N, EPLB_ID_INT32), EPLB_ERANGE);
    assert_int_equal(eplb_collector_record(c, 0, ids64, N, EPLB_ID_INT64), EPLB_ERANGE);
    char want[64];
    snprintf(want, sizeof want, "ids[%zu] = -5", at[k]);
    assert_non_null(strstr(eplb_last_error(), want));
    ids32[at[k]] = 0;
    ids64[at[k]] = 0;
    assert_window(c, EPLB_WINDOW_ALL, before);
  }
  free(before);
  eplb_collector_free(c);
}

/* A call longer than one fold of the partial histograms (over 2^18 ids), every id the same hot
 * expert so one partial counter fills fastest, is counted exactly; a bad id in a later fold
 * takes back the earlier folds' counts too. */
static void record_calls_longer_than_a_fold_are_exact(void **state) {
  (void)state;
  enum { NE = 64, N = 700001 };
  int32_t *ids32 = malloc(N * sizeof *ids32);
  int64_t *ids64 = malloc(N * sizeof *ids64);
  assert_true(ids32 && ids64);
  for (int i = 0; i < N; i++)
    ids32[i] = 7, ids64[i] = 7;
  ids32[N - 1] = 3, ids64[N - 1] = 3;
  eplb_collector *c = eplb_collector_create(1, NE, 1);
  assert_int_equal(eplb_collector_record(c, 0, ids32, N, EPLB_ID_INT32), 0);
  assert_int_equal(eplb_collector_record(c, 0, ids64, N, EPLB_ID_INT64), 0);
  uint64_t *got = read_window(c, EPLB_WINDOW_ALL);
  assert_int_equal(got[7], 2 * (uint64_t)(N - 1));
  assert_int_equal(got[3], 2);
  ids32[600000] = -1, ids64[600000] = NE;
  assert_int_equal(eplb_collector_record(c, 0, ids32, N, EPLB_ID_INT32), EPLB_ERANGE);
  assert_int_equal(eplb_collector_record(c, 0, ids64, N, EPLB_ID_INT64), EPLB_ERANGE);
  assert_window(c, EPLB_WINDOW_ALL, got);
  free(got);
  free(ids32);
  free(ids64);
  eplb_collector_free(c);
}

/* Many experts (above the partial-histogram limit) are counted straight into the row. */
static void record_many_experts_matches_naive_count(void **state) {
  (void)state;
  enum { NE = 5000, N = 30011 };
  static int64_t ids[N];
  static uint64_t naive[NE];
  memset(naive, 0, sizeof naive);
  eplb_collector *c = eplb_collector_create(1, NE, 1);
  uint64_t s = 7;
  for (int i = 0; i < N; i++) {
    ids[i] = (int64_t)(next_rand(&s) % NE);
    naive[ids[i]]++;
  }
  assert_int_equal(eplb_collector_record(c, 0, ids, N, EPLB_ID_INT64), 0);
  assert_window(c, EPLB_WINDOW_ALL, naive);
  eplb_collector_free(c);
}

static void record_bad_layer_counts_nothing(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  const int32_t ids[] = {1, 2};
  assert_int_equal(eplb_collector_record(c, -1, ids, 2, EPLB_ID_INT32), EPLB_ERANGE);
  assert_non_null(strstr(eplb_last_error(), "layer -1"));
  assert_int_equal(eplb_collector_record(c, L, ids, 2, EPLB_ID_INT32), EPLB_ERANGE);
  uint64_t zero[L * E] = {0};
  assert_window(c, EPLB_WINDOW_ALL, zero);
  eplb_collector_free(c);
}

static void record_rejects_null_ids_and_bad_type(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  assert_int_equal(eplb_collector_record(c, 0, NULL, 3, EPLB_ID_INT32), EPLB_EINVAL);
  assert_int_equal(eplb_collector_record(c, 0, NULL, 0, EPLB_ID_INT32), 0);
  const int32_t ids[] = {1};
  assert_int_equal(eplb_collector_record(c, 0, ids, 1, (eplb_id_type)7), EPLB_EINVAL);
  uint64_t zero[L * E] = {0};
  assert_window(c, EPLB_WINDOW_ALL, zero);
  eplb_collector_free(c);
}

static void null_collector_is_disabled_noop(void **state) {
  (void)state;
  const int32_t ids[] = {1, 99};
  const uint64_t counts[E] = {1, 2, 3, 4, 5};
  assert_int_equal(eplb_collector_record(NULL, 0, ids, 2, EPLB_ID_INT32), 0);
  assert_int_equal(eplb_collector_add_counts(NULL, 0, counts), 0);
  assert_int_equal(eplb_collector_next_window(NULL), 0);
  assert_int_equal(eplb_collector_reset(NULL), 0);
}

/* ---- add_counts ---- */

static void add_counts_adds_a_row(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(L, E, 1);
  const uint64_t row[E] = {10, 0, 7, 1, 2};
  assert_int_equal(eplb_collector_add_counts(c, 1, row), 0);
  assert_int_equal(eplb_collector_add_counts(c, 1, row), 0);
  const uint64_t expect[L * E] = {0, 0, 0, 0, 0, 20, 0, 14, 2, 4, 0, 0, 0, 0, 0};
  assert_window(c, EPLB_WINDOW_ALL, expect);
  assert_int_equal(eplb_collector_add_counts(c, 3, row), EPLB_ERANGE);
  assert_int_equal(eplb_collector_add_counts(c, 0, NULL), EPLB_EINVAL);
  assert_window(c, EPLB_WINDOW_ALL, expect);
  eplb_collector_free(c);
}

static void add_counts_overflow_adds_nothing(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(1, 2, 1);
  const uint64_t a[2] = {5, UINT64_MAX - 1};
  const uint64_t b[2] = {1, 2};
  assert_int_equal(eplb_collector_add_counts(c, 0, a), 0);
  assert_int_equal(eplb_collector_add_counts(c, 0, b), EPLB_ERANGE);
  assert_window(c, EPLB_WINDOW_ALL, a);
  eplb_collector_free(c);
}

/* ---- windows ---- */

/* Records `k` ids of expert `e` into layer 0 of the current window. */
static void put(eplb_collector *c, int32_t e, int k) {
  for (int i = 0; i < k; i++)
    assert_int_equal(eplb_collector_record(c, 0, &e, 1, EPLB_ID_INT32), 0);
}

static void windows_ring_keeps_the_last_n(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(1, 4, 3);
  put(c, 0, 1); /* window A */
  eplb_collector_next_window(c);
  put(c, 1, 2); /* window B */
  const uint64_t before_fill[4] = {1, 2, 0, 0};
  assert_window(c, EPLB_WINDOW_ALL, before_fill);
  const uint64_t zero[4] = {0};
  assert_window(c, 2, zero); /* not opened yet */
  eplb_collector_next_window(c);
  put(c, 2, 3); /* window C */
  eplb_collector_next_window(c);
  put(c, 3, 4); /* window D replaces A */
  const uint64_t ring[4] = {0, 2, 3, 4};
  assert_window(c, EPLB_WINDOW_ALL, ring);
  const uint64_t d[4] = {0, 0, 0, 4}, cc[4] = {0, 0, 3, 0}, b[4] = {0, 2, 0, 0};
  assert_window(c, 0, d);
  assert_window(c, 1, cc);
  assert_window(c, 2, b);
  uint64_t out[4];
  assert_int_equal(eplb_collector_counts(c, 3, out, 4), EPLB_ERANGE);
  assert_int_equal(eplb_collector_counts(c, -2, out, 4), EPLB_ERANGE);
  assert_int_equal(eplb_collector_counts(c, 0, out, 3), EPLB_EINVAL);
  eplb_collector_free(c);
}

static void one_window_is_a_plain_counter(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(1, 2, 1);
  put(c, 0, 3);
  put(c, 1, 1);
  const uint64_t total[2] = {3, 1};
  assert_window(c, EPLB_WINDOW_ALL, total);
  assert_window(c, 0, total);
  eplb_collector_next_window(c); /* starts it afresh */
  put(c, 1, 2);
  const uint64_t after[2] = {0, 2};
  assert_window(c, EPLB_WINDOW_ALL, after);
  eplb_collector_free(c);
}

static void reset_clears_every_window(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(1, 2, 2);
  put(c, 0, 3);
  eplb_collector_next_window(c);
  put(c, 1, 5);
  assert_int_equal(eplb_collector_reset(c), 0);
  const uint64_t zero[2] = {0, 0};
  assert_window(c, EPLB_WINDOW_ALL, zero);
  assert_window(c, 1, zero);
  put(c, 1, 1);
  const uint64_t one[2] = {0, 1};
  assert_window(c, EPLB_WINDOW_ALL, one);
  eplb_collector_free(c);
}

/* ---- merge ---- */

static void merge_adds_window_by_age(void **state) {
  (void)state;
  eplb_collector *a = eplb_collector_create(1, 3, 2);
  eplb_collector *b = eplb_collector_create(1, 3, 2);
  put(a, 0, 1); /* a: old window {1,0,0}, current {0,2,0} */
  eplb_collector_next_window(a);
  put(a, 1, 2);
  put(b, 2, 5); /* b: only a current window {0,0,5} */
  assert_int_equal(eplb_collector_merge(b, a), 0);
  const uint64_t cur[3] = {0, 2, 5}, old[3] = {1, 0, 0}, all[3] = {1, 2, 5};
  assert_window(b, 0, cur);
  assert_window(b, 1, old);
  assert_window(b, EPLB_WINDOW_ALL, all);
  const uint64_t a_cur[3] = {0, 2, 0};
  assert_window(a, 0, a_cur); /* src unchanged */
  eplb_collector_free(a);
  eplb_collector_free(b);
}

static void merge_rejects_other_shapes(void **state) {
  (void)state;
  eplb_collector *a = eplb_collector_create(1, 3, 2);
  eplb_collector *b = eplb_collector_create(1, 4, 2);
  eplb_collector *w = eplb_collector_create(1, 3, 1);
  assert_int_equal(eplb_collector_merge(a, b), EPLB_EINVAL);
  assert_int_equal(eplb_collector_merge(a, w), EPLB_EINVAL);
  assert_int_equal(eplb_collector_merge(a, a), EPLB_EINVAL);
  assert_int_equal(eplb_collector_merge(a, NULL), EPLB_EINVAL);
  eplb_collector_free(a);
  eplb_collector_free(b);
  eplb_collector_free(w);
}

/* ---- threads ---- */

enum { THREADS = 4, T_LAYERS = 8, T_EXPERTS = 32, T_CALLS = 200, T_IDS = 512 };

typedef struct thread_job {
  eplb_collector *c;
  uint64_t seed;
  int rc;
} thread_job;

/* Records T_CALLS random calls into the thread's own collector. */
static void *thread_main(void *arg) {
  thread_job *job = arg;
  int32_t ids[T_IDS];
  uint64_t s = job->seed;
  for (int call = 0; call < T_CALLS && job->rc == 0; call++) {
    for (int i = 0; i < T_IDS; i++)
      ids[i] = (int32_t)(next_rand(&s) % T_EXPERTS);
    job->rc = eplb_collector_record(job->c, call % T_LAYERS, ids, T_IDS, EPLB_ID_INT32);
  }
  return NULL;
}

static void one_collector_per_thread_then_merge_is_exact(void **state) {
  (void)state;
  pthread_t tid[THREADS];
  thread_job jobs[THREADS];
  for (int t = 0; t < THREADS; t++) {
    jobs[t] = (thread_job){eplb_collector_create(T_LAYERS, T_EXPERTS, 1), 1000u + (uint64_t)t, 0};
    assert_int_equal(pthread_create(&tid[t], NULL, thread_main, &jobs[t]), 0);
  }
  for (int t = 0; t < THREADS; t++)
    assert_int_equal(pthread_join(tid[t], NULL), 0);
  /* The same draws, counted naively in this thread. */
  static uint64_t naive[T_LAYERS * T_EXPERTS];
  memset(naive, 0, sizeof naive);
  for (int t = 0; t < THREADS; t++) {
    uint64_t s = 1000u + (uint64_t)t;
    for (int call = 0; call < T_CALLS; call++)
      for (int i = 0; i < T_IDS; i++)
        naive[(call % T_LAYERS) * T_EXPERTS + (int)(next_rand(&s) % T_EXPERTS)]++;
  }
  eplb_collector *all = eplb_collector_create(T_LAYERS, T_EXPERTS, 1);
  for (int t = 0; t < THREADS; t++) {
    assert_int_equal(jobs[t].rc, 0);
    assert_int_equal(eplb_collector_merge(all, jobs[t].c), 0);
    eplb_collector_free(jobs[t].c);
  }
  assert_window(all, EPLB_WINDOW_ALL, naive);
  eplb_collector_free(all);
}

/* ---- loads ---- */

static void loads_is_the_planner_matrix(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(2, 3, 2);
  const uint64_t r0[3] = {4, 0, 9}, r1[3] = {1, 1, 1};
  eplb_collector_add_counts(c, 0, r0);
  eplb_collector_next_window(c);
  eplb_collector_add_counts(c, 1, r1);
  eplb_loads *x = NULL;
  assert_int_equal(eplb_collector_loads(c, EPLB_WINDOW_ALL, &x), 0);
  assert_int_equal(x->num_layers, 2);
  assert_int_equal(x->num_experts, 3);
  assert_int_equal(x->layer_ids[0], 0);
  assert_int_equal(x->layer_ids[1], 1);
  assert_non_null(x->count);
  const int64_t expect[6] = {4, 0, 9, 1, 1, 1};
  for (int i = 0; i < 6; i++) {
    assert_int_equal(x->count[i], expect[i]);
    assert_true(x->load[i] == (double)expect[i]);
  }
  eplb_loads_free(x);
  assert_int_equal(eplb_collector_loads(c, 1, &x), 0); /* the closed window: layer 0 only */
  assert_int_equal(x->count[2], 9);
  assert_int_equal(x->count[3], 0);
  eplb_loads_free(x);
  assert_int_equal(eplb_collector_loads(c, 2, &x), EPLB_ERANGE);
  assert_null(x);
  eplb_collector_free(c);
}

static void loads_rejects_counts_above_int64(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(1, 1, 1);
  const uint64_t big[1] = {(uint64_t)INT64_MAX + 1};
  eplb_collector_add_counts(c, 0, big);
  eplb_loads *x = NULL;
  assert_int_equal(eplb_collector_loads(c, EPLB_WINDOW_ALL, &x), EPLB_ERANGE);
  assert_null(x);
  eplb_collector_free(c);
}

/* Runs every test of the collector. */
int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(create_rejects_sizes_below_one),
      cmocka_unit_test(create_starts_at_zero),
      cmocka_unit_test(record_int32_counts_every_id),
      cmocka_unit_test(record_int64_counts_every_id),
      cmocka_unit_test(record_many_random_ids_matches_naive_count),
      cmocka_unit_test(record_bad_id_counts_nothing),
      cmocka_unit_test(record_bad_id_late_in_a_large_call_counts_nothing),
      cmocka_unit_test(record_calls_longer_than_a_fold_are_exact),
      cmocka_unit_test(record_many_experts_matches_naive_count),
      cmocka_unit_test(record_bad_layer_counts_nothing),
      cmocka_unit_test(record_rejects_null_ids_and_bad_type),
      cmocka_unit_test(null_collector_is_disabled_noop),
      cmocka_unit_test(add_counts_adds_a_row),
      cmocka_unit_test(add_counts_overflow_adds_nothing),
      cmocka_unit_test(windows_ring_keeps_the_last_n),
      cmocka_unit_test(one_window_is_a_plain_counter),
      cmocka_unit_test(reset_clears_every_window),
      cmocka_unit_test(merge_adds_window_by_age),
      cmocka_unit_test(merge_rejects_other_shapes),
      cmocka_unit_test(one_collector_per_thread_then_merge_is_exact),
      cmocka_unit_test(loads_is_the_planner_matrix),
      cmocka_unit_test(loads_rejects_counts_above_int64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
