/* test_gather.c - eplb_mpi_gather under mpirun (registered with 1, 2 and 4 ranks): the file on root
 * is the element-wise sum of every rank's own record, written once, atomically; errors on any
 * rank reach every rank. The expected sums are computed here by a naive count of the same draws,
 * and the file is read with jansson, not with eplb's loader. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "eplb_mpi.h"
#include "core/eplb_rand.h"

#define LAYERS 4
#define EXPERTS 16
#define TOPK 4
#define TOKENS 100
#define STEPS 3
#define ROOT 0

static int rank, size;
static char base[256]; /* a temp folder made by root, the same path on every rank */

/* ---- helpers ---- */

/* splitmix64, seeded per (rank, step, layer) so every rank can redo any rank's draws. */
static uint64_t next_rand(uint64_t *s) {
  return eplb__splitmix64(s);
}

/* The topk ids rank r draws for one step of one layer: TOKENS tokens of TOPK distinct experts. */
static void draw(int r, int step, int layer, int64_t *ids) {
  uint64_t s = ((uint64_t)r << 40) ^ ((uint64_t)step << 20) ^ (uint64_t)layer;
  for (int t = 0; t < TOKENS; t++) {
    int first = (int)(next_rand(&s) % EXPERTS);
    int stride = 1 + (int)(next_rand(&s) % 3); /* distinct while TOPK * 3 < EXPERTS */
    for (int k = 0; k < TOPK; k++)
      ids[t * TOPK + k] = (first + k * stride) % EXPERTS;
  }
}

/* Records every step of rank r into c (a next_window between steps), returns 0 or the error. */
static int record_rank(eplb_collector *c, int r) {
  int64_t ids[TOKENS * TOPK];
  for (int step = 0; step < STEPS; step++) {
    for (int l = 0; l < LAYERS; l++) {
      draw(r, step, l, ids);
      int rc = eplb_collector_record(c, l, ids, TOKENS * TOPK, EPLB_ID_INT64);
      if (rc)
        return rc;
    }
    if (step + 1 < STEPS)
      eplb_collector_next_window(c);
  }
  return 0;
}

/* Naive count of what the ranks in `who` (a mask, bit r = rank r) record. */
static void expected(uint64_t mask, uint64_t *out) {
  int64_t ids[TOKENS * TOPK];
  memset(out, 0, sizeof(uint64_t) * LAYERS * EXPERTS);
  for (int r = 0; r < size; r++) {
    if (!(mask >> r & 1))
      continue;
    for (int step = 0; step < STEPS; step++)
      for (int l = 0; l < LAYERS; l++) {
        draw(r, step, l, ids);
        for (int i = 0; i < TOKENS * TOPK; i++)
          out[l * EXPERTS + ids[i]]++;
      }
  }
}

/* Makes a fresh folder base/NAME (root) and returns its path. */
static const char *fresh_dir(const char *name) {
  static char dir[512];
  snprintf(dir, sizeof dir, "%s/%s", base, name);
  if (rank == ROOT)
    assert_int_equal(mkdir(dir, 0700), 0);
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

/* Number of entries in a folder, "." and ".." aside. */
static int entries(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  closedir(d);
  return n;
}

/* Asserts (root) that dir/token_collects_all.json holds exactly `expect`, read with jansson. */
static void assert_file(const char *dir, const uint64_t *expect) {
  char path[600];
  snprintf(path, sizeof path, "%s/" EPLB_TOKEN_FILE, dir);
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root)
    fail_msg("%s: %s", path, err.text);
  assert_int_equal(json_object_size(root), LAYERS);
  for (int l = 0; l < LAYERS; l++) {
    char key[16];
    snprintf(key, sizeof key, "%d", l);
    json_t *row = json_object_get(root, key);
    assert_non_null(row);
    for (int e = 0; e < EXPERTS; e++) {
      snprintf(key, sizeof key, "%d", e);
      json_t *v = json_object_get(row, key);
      uint64_t got = v ? (uint64_t)json_integer_value(v) : 0; /* a missing expert counts 0 */
      assert_true(!v || json_is_integer(v));
      assert_int_equal(got, expect[l * EXPERTS + e]);
    }
  }
  json_decref(root);
}

/* ---- the gathered file ---- */

static void file_is_the_sum_of_every_rank(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, STEPS);
  assert_int_equal(record_rank(c, rank), 0);
  const char *dir = fresh_dir("sum");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, rank == ROOT ? dir : NULL), 0);
  if (rank == ROOT) {
    uint64_t expect[LAYERS * EXPERTS];
    expected(~0ull, expect);
    assert_file(dir, expect);
    for (int l = 0; l < LAYERS; l++) { /* ranks x steps x tokens x topk per layer */
      uint64_t sum = 0;
      for (int e = 0; e < EXPERTS; e++)
        sum += expect[l * EXPERTS + e];
      assert_int_equal(sum, (uint64_t)size * STEPS * TOKENS * TOPK);
    }
    assert_int_equal(entries(dir), 1); /* exactly one file, no temp file left */
  }
  eplb_collector_free(c);
}

static void ranks_that_recorded_nothing_still_give_one_file(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, STEPS);
  int last = size - 1; /* only the last rank records */
  if (rank == last)
    assert_int_equal(record_rank(c, rank), 0);
  const char *dir = fresh_dir("one_rank");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), 0);
  if (rank == ROOT) {
    uint64_t expect[LAYERS * EXPERTS];
    expected(1ull << last, expect);
    assert_file(dir, expect);
    assert_int_equal(entries(dir), 1);
  }
  eplb_collector_free(c);
}

static void gather_to_the_last_rank(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, STEPS);
  assert_int_equal(record_rank(c, rank), 0);
  const char *dir = fresh_dir("last_root");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, size - 1, dir), 0);
  if (rank == size - 1) {
    uint64_t expect[LAYERS * EXPERTS];
    expected(~0ull, expect);
    assert_file(dir, expect);
    assert_int_equal(entries(dir), 1);
  }
  eplb_collector_free(c);
}

/* ---- errors reach every rank ---- */

static void bad_folder_fails_on_every_rank(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/no_such_folder", base);
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, missing), EPLB_EIO);
  assert_non_null(strstr(eplb_last_error(), "no_such_folder"));
  if (rank != ROOT)
    assert_non_null(strstr(eplb_last_error(), "rank 0"));
  /* A regular file is not a folder either. */
  const char *dir = fresh_dir("file_not_folder");
  char file[600];
  snprintf(file, sizeof file, "%s/plain", dir);
  if (rank == ROOT) {
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
  }
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, file), EPLB_EIO);
  assert_non_null(strstr(eplb_last_error(), "not a folder"));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 1); /* only "plain" */
  eplb_collector_free(c);
}

static void full_disk_fails_on_every_rank_and_keeps_the_old_file(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  const char *dir = fresh_dir("full");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), 0); /* the old, all-zero file */
  assert_int_equal(record_rank(c, rank), 0);
  struct rlimit old_limit;
  if (rank == ROOT) {
    /* A file size limit below the new file's size makes the write fail as a full disk does. */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
    struct rlimit small = {64, old_limit.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  }
  int rc = eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir);
  if (rank == ROOT)
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  assert_int_equal(rc, EPLB_EIO);
  if (rank != ROOT)
    assert_non_null(strstr(eplb_last_error(), "rank 0"));
  if (rank == ROOT) {
    uint64_t zero[LAYERS * EXPERTS] = {0};
    assert_file(dir, zero);
    assert_int_equal(entries(dir), 1); /* the temp file was removed */
  }
  eplb_collector_free(c);
}

static void bad_arguments_on_one_rank_fail_everywhere(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  const char *dir = fresh_dir("bad_root");
  int my_root = rank == size - 1 ? -1 : ROOT; /* the last rank passes a bad root */
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, my_root, dir), EPLB_EINVAL);
  char want[32];
  snprintf(want, sizeof want, "rank %d", size - 1);
  if (rank != size - 1)
    assert_non_null(strstr(eplb_last_error(), want));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  eplb_collector_free(c);
}

static void shapes_that_differ_fail_everywhere(void **state) {
  (void)state;
  if (size < 2)
    skip();
  eplb_collector *c = eplb_collector_create(LAYERS, rank == 1 ? EXPERTS + 1 : EXPERTS, 1);
  const char *dir = fresh_dir("shapes");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "differ in shape"));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  eplb_collector_free(c);
}

static void roots_that_differ_fail_everywhere(void **state) {
  (void)state;
  if (size < 2)
    skip();
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  assert_int_equal(record_rank(c, rank), 0);
  const char *dir = fresh_dir("roots");
  /* every rank names itself: each root is valid alone, but MPI_Reduce would wait forever */
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, rank, dir), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "different roots"));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  /* the same collectives still match afterwards: a good call succeeds */
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), 0);
  eplb_collector_free(c);
}

/* ---- sums beyond the counters ---- */

/* 2^63, the first count above INT64_MAX. */
#define TWO_POW_63 (UINT64_C(1) << 63)

static void sums_above_int64_fail_everywhere_and_write_nothing(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  uint64_t row[EXPERTS] = {0};
  /* ranks 0 and 1 each count 2^63 for expert 3 of layer 1: 2^64, which MPI_SUM wraps to 0 */
  row[3] = rank < 2 ? TWO_POW_63 : 0;
  assert_int_equal(eplb_collector_add_counts(c, 1, row), 0);
  const char *dir = fresh_dir("above_int64");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), EPLB_ERANGE);
  assert_non_null(strstr(eplb_last_error(), "layer 1: expert 3"));
  if (rank != ROOT)
    assert_non_null(strstr(eplb_last_error(), "rank 0"));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  eplb_collector_free(c);
}

static void a_sum_of_exactly_int64_max_is_written(void **state) {
  (void)state;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  uint64_t row[EXPERTS] = {0};
  /* rank 0 counts INT64_MAX - (size - 1), every other rank 1: the sum is INT64_MAX */
  row[5] = rank == 0 ? (uint64_t)INT64_MAX - (uint64_t)(size - 1) : 1;
  assert_int_equal(eplb_collector_add_counts(c, 2, row), 0);
  const char *dir = fresh_dir("int64_max");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), 0);
  if (rank == ROOT) {
    uint64_t expect[LAYERS * EXPERTS] = {0};
    expect[2 * EXPERTS + 5] = (uint64_t)INT64_MAX;
    assert_file(dir, expect);
  }
  eplb_collector_free(c);
}

static void window_sums_past_2_64_fail_everywhere_and_write_nothing(void **state) {
  (void)state;
  int last = size - 1;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 2);
  uint64_t row[EXPERTS] = {0};
  row[7] = rank == last ? TWO_POW_63 : 0;
  /* two windows of 2^63 each on the last rank: the ring's sum is 2^64 */
  assert_int_equal(eplb_collector_add_counts(c, 0, row), 0);
  eplb_collector_next_window(c);
  assert_int_equal(eplb_collector_add_counts(c, 0, row), 0);
  uint64_t sum[LAYERS * EXPERTS];
  assert_int_equal(eplb_collector_counts(c, EPLB_WINDOW_ALL, sum, LAYERS * EXPERTS),
                   rank == last ? EPLB_ERANGE : 0);
  if (rank == last)
    assert_non_null(strstr(eplb_last_error(), "layer 0: expert 7"));
  const char *dir = fresh_dir("windows_2_64");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), EPLB_ERANGE);
  assert_non_null(strstr(eplb_last_error(), "layer 0: expert 7"));
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  eplb_collector_free(c);
}

/* ---- disabled collection ---- */

static void disabled_everywhere_writes_nothing(void **state) {
  (void)state;
  const char *dir = fresh_dir("disabled");
  assert_int_equal(eplb_mpi_gather(NULL, MPI_COMM_WORLD, ROOT, dir), 0);
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
}

static void disabled_on_some_ranks_only_fails_everywhere(void **state) {
  (void)state;
  if (size < 2)
    skip();
  eplb_collector *c = rank == 1 ? NULL : eplb_collector_create(LAYERS, EXPERTS, 1);
  const char *dir = fresh_dir("half_disabled");
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, dir), EPLB_EINVAL);
  if (rank == ROOT)
    assert_int_equal(entries(dir), 0);
  eplb_collector_free(c);
}

static void caller_communicator_keeps_its_error_handler(void **state) {
  (void)state;
  MPI_Errhandler h;
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  assert_int_equal(eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, "/nonexistent"), EPLB_EIO);
  MPI_Comm_get_errhandler(MPI_COMM_WORLD, &h);
  assert_true(h == MPI_ERRORS_ARE_FATAL);
  MPI_Errhandler_free(&h);
  eplb_collector_free(c);
}

/* ---- main ---- */

/* Root makes the shared temp folder; every rank learns its path. */
static int setup(void **state) {
  (void)state;
  if (rank == ROOT) {
    snprintf(base, sizeof base, "/tmp/eplb_test_gather.XXXXXX");
    if (!mkdtemp(base))
      base[0] = '\0';
  }
  MPI_Bcast(base, sizeof base, MPI_CHAR, ROOT, MPI_COMM_WORLD);
  return base[0] ? 0 : -1;
}

/* Root removes the temp folder and what the tests left in it. */
static int teardown(void **state) {
  (void)state;
  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == ROOT) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
  }
  return 0;
}

/* Runs the tests on every rank between MPI_Init and MPI_Finalize. */
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(file_is_the_sum_of_every_rank),
      cmocka_unit_test(ranks_that_recorded_nothing_still_give_one_file),
      cmocka_unit_test(gather_to_the_last_rank),
      cmocka_unit_test(bad_folder_fails_on_every_rank),
      cmocka_unit_test(full_disk_fails_on_every_rank_and_keeps_the_old_file),
      cmocka_unit_test(bad_arguments_on_one_rank_fail_everywhere),
      cmocka_unit_test(shapes_that_differ_fail_everywhere),
      cmocka_unit_test(roots_that_differ_fail_everywhere),
      cmocka_unit_test(sums_above_int64_fail_everywhere_and_write_nothing),
      cmocka_unit_test(a_sum_of_exactly_int64_max_is_written),
      cmocka_unit_test(window_sums_past_2_64_fail_everywhere_and_write_nothing),
      cmocka_unit_test(disabled_everywhere_writes_nothing),
      cmocka_unit_test(disabled_on_some_ranks_only_fails_everywhere),
      cmocka_unit_test(caller_communicator_keeps_its_error_handler),
  };
  int failed = cmocka_run_group_tests(tests, setup, teardown);
  /* Any rank's failure fails the run (mpirun reports a non-zero exit). */
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any ? 1 : 0;
}
