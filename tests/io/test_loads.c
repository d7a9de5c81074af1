/* test_loads.c - the load loaders: seed format, SGLang format, summing files and folders,
 * exact integers, and every malformed input rejected with a message naming file and key. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "eplb.h"

/* ---- helpers ---- */

static char tmpdir[64];

static int make_tmpdir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/eplb_loads_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Writes `text` to tmpdir/name and returns the path (static buffer rotated over 4 slots). */
static const char *put(const char *name, const char *text) {
  static char paths[4][256];
  static int k;
  char *p = paths[k++ % 4];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return p;
}

static eplb_loads *parse_ok(const char *text, int64_t E) {
  eplb_loads *x = NULL;
  int rc = eplb_loads_parse(text, strlen(text), "t.json", E, &x);
  if (rc)
    fail_msg("parse failed: %s", eplb_last_error());
  return x;
}

static double at(const eplb_loads *x, int32_t l, int32_t e) {
  return x->load[(size_t)l * (size_t)x->num_experts + (size_t)e];
}

/* ---- good inputs ---- */

static void seed_layers_sorted_by_key_and_missing_experts_zero(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"7\": {\"2\": 5}, \"3\": {\"0\": 1, \"4\": 9}}", 0);
  assert_int_equal(x->num_layers, 2);
  assert_int_equal(x->num_experts, 5);
  assert_int_equal(x->layer_ids[0], 3);
  assert_int_equal(x->layer_ids[1], 7);
  assert_true(at(x, 0, 0) == 1 && at(x, 0, 4) == 9 && at(x, 0, 2) == 0);
  assert_true(at(x, 1, 2) == 5 && at(x, 1, 0) == 0);
  assert_non_null(x->count);
  assert_int_equal(x->count[4], 9);
  eplb_loads_free(x);
}

static void num_experts_widens_the_matrix(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"0\": {\"1\": 3}}", 16);
  assert_int_equal(x->num_experts, 16);
  assert_true(at(x, 0, 1) == 3 && at(x, 0, 15) == 0);
  eplb_loads_free(x);
}

static void float_counts_drop_exact_counts(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"0\": {\"0\": 1.5, \"1\": 2}}", 0);
  assert_null(x->count);
  assert_true(at(x, 0, 0) == 1.5 && at(x, 0, 1) == 2);
  eplb_loads_free(x);
}

static void largest_int64_count_is_exact(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"0\": {\"0\": 9223372036854775807}}", 0);
  assert_non_null(x->count);
  assert_true(x->count[0] == INT64_MAX);
  eplb_loads_free(x);
}

static void sglang_rows_are_layers(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"logical_count\": [[1, 2, 3], [4.5, 0, 6]]}", 0);
  assert_int_equal(x->num_layers, 2);
  assert_int_equal(x->num_experts, 3);
  assert_int_equal(x->layer_ids[1], 1);
  assert_true(at(x, 1, 0) == 4.5 && at(x, 1, 2) == 6 && at(x, 0, 1) == 2);
  eplb_loads_free(x);
}

static void sglang_passes_are_summed(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"logical_count\": [[[1, 2], [3, 4]], [[10, 20], [30, 40]]]}", 0);
  assert_int_equal(x->num_layers, 2);
  assert_true(at(x, 0, 0) == 11 && at(x, 0, 1) == 22 && at(x, 1, 0) == 33 && at(x, 1, 1) == 44);
  eplb_loads_free(x);
}

/* Thousands of sparse layers in scrambled order come out in ascending id order, each with its
 * own counts (the layer of key k holds k % 97 at expert k % 5). */
static void many_scrambled_layers_are_sorted_and_kept_apart(void **state) {
  (void)state;
  enum { N = 5000 };
  size_t cap = (size_t)N * 48, len = 0;
  char *text = malloc(cap);
  assert_non_null(text);
  len += (size_t)snprintf(text + len, cap - len, "{");
  for (int i = 0; i < N; i++) {
    long long key = (long long)((i * 7919) % N) * 1000003LL; /* a permutation, spread out */
    len += (size_t)snprintf(text + len, cap - len, "%s\"%lld\": {\"%lld\": %lld}", i ? "," : "",
                            key, key % 5, key % 97);
  }
  len += (size_t)snprintf(text + len, cap - len, "}");
  eplb_loads *x = parse_ok(text, 0);
  free(text);
  assert_int_equal(x->num_layers, N);
  assert_int_equal(x->num_experts, 5);
  for (int l = 0; l < N; l++) {
    long long key = (long long)l * 1000003LL;
    assert_int_equal(x->layer_ids[l], key);
    for (int e = 0; e < 5; e++)
      assert_true(at(x, l, e) == (e == key % 5 ? (double)(key % 97) : 0));
  }
  eplb_loads_free(x);
}

static void files_are_summed_elementwise_over_the_union_of_layers(void **state) {
  (void)state;
  const char *paths[2];
  paths[0] = put("r0.json", "{\"0\": {\"0\": 1, \"1\": 2}, \"1\": {\"0\": 5}}");
  paths[1] = put("r1.json", "{\"0\": {\"1\": 10, \"3\": 4}, \"2\": {\"2\": 7}}");
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_read_files(paths, 2, 0, &x), 0);
  assert_int_equal(x->num_layers, 3);
  assert_int_equal(x->num_experts, 4);
  assert_true(at(x, 0, 0) == 1 && at(x, 0, 1) == 12 && at(x, 0, 3) == 4);
  assert_true(at(x, 1, 0) == 5 && at(x, 2, 2) == 7);
  eplb_loads_free(x);
}

static void folder_sums_only_json_files(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/folder", tmpdir);
  mkdir(dir, 0755);
  put("folder/a.json", "{\"0\": {\"0\": 1}}");
  put("folder/b.json", "{\"0\": {\"0\": 2, \"1\": 3}}");
  put("folder/notes.txt", "not json");
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_read_folder(dir, 0, &x), 0);
  assert_true(at(x, 0, 0) == 3 && at(x, 0, 1) == 3);
  eplb_loads_free(x);
}

static void write_then_read_round_trips_exactly(void **state) {
  (void)state;
  eplb_loads *x = parse_ok("{\"4\": {\"0\": 9223372036854775807, \"2\": 1}, \"9\": {\"1\": 0}}", 0);
  char path[128];
  snprintf(path, sizeof path, "%s/rt.json", tmpdir);
  assert_int_equal(eplb_loads_write(x, path), 0);
  eplb_loads *y = NULL;
  assert_int_equal(eplb_loads_read_file(path, 0, &y), 0);
  assert_int_equal(y->num_layers, x->num_layers);
  assert_int_equal(y->num_experts, x->num_experts);
  assert_memory_equal(y->layer_ids, x->layer_ids, 2 * sizeof *x->layer_ids);
  assert_memory_equal(y->count, x->count, 6 * sizeof *x->count);
  eplb_loads_free(x);
  eplb_loads_free(y);
}

/* ---- bad inputs: each is rejected with its code and a message naming file and key ---- */

typedef struct bad_case {
  const char *text;
  int64_t num_experts;
  int code;
  const char *needle; /* must appear in the detail */
} bad_case;

static const bad_case bad_cases[] = {
    {"", 0, EPLB_EFORMAT, "t.json: file is empty"},
    {"  \n ", 0, EPLB_EFORMAT, "file is empty"},
    {"{\"0\": {\"1\": 2}", 0, EPLB_EFORMAT, "t.json:1:"},
    {"[1, 2]", 0, EPLB_EFORMAT, "expected a JSON object"},
    {"{}", 0, EPLB_EFORMAT, "no layers"},
    {"{\"x\": {\"0\": 1}}", 0, EPLB_EFORMAT, "layer \"x\": key is not a non-negative integer"},
    {"{\"-1\": {\"0\": 1}}", 0, EPLB_EFORMAT, "layer \"-1\""},
    {"{\"1.5\": {\"0\": 1}}", 0, EPLB_EFORMAT, "layer \"1.5\""},
    {"{\"0\": {\"e\": 1}}", 0, EPLB_EFORMAT, "layer \"0\": expert \"e\""},
    {"{\"0\": {\"-3\": 1}}", 0, EPLB_EFORMAT, "expert \"-3\""},
    {"{\"0\": {\"1\": 1, \"1\": 2}}", 0, EPLB_EFORMAT, "duplicate"},
    {"{\"0\": {\"1\": 1}, \"0\": {\"2\": 2}}", 0, EPLB_EFORMAT, "duplicate"},
    {"{\"0\": {\"1\": \"7\"}}", 0, EPLB_EFORMAT, "expert \"1\": count is a string"},
    {"{\"0\": {\"1\": true}}", 0, EPLB_EFORMAT, "count is a boolean"},
    {"{\"0\": {\"1\": null}}", 0, EPLB_EFORMAT, "count is null"},
    {"{\"0\": {\"1\": -4}}", 0, EPLB_EFORMAT, "count -4 is negative"},
    {"{\"0\": {\"1\": -0.5}}", 0, EPLB_EFORMAT, "negative"},
    {"{\"0\": {\"1\": NaN}}", 0, EPLB_EFORMAT, "invalid JSON"},
    {"{\"0\": {\"1\": 1e400}}", 0, EPLB_EFORMAT, "invalid JSON"},
    {"{\"0\": {\"1\": 99999999999999999999}}", 0, EPLB_EFORMAT, "invalid JSON"},
    {"{\"0\": [1, 2]}", 0, EPLB_EFORMAT, "layer \"0\": expected an object"},
    {"{\"0\": {\"5\": 1}}", 4, EPLB_ERANGE, "expert \"5\": expert id 5 is not below"},
    {"{\"0\": {\"99999999\": 1}}", 0, EPLB_ERANGE, "exceeds"},
    {"{\"0\": {}}", 0, EPLB_EFORMAT, "no experts"},
    {"{\"logical_count\": []}", 0, EPLB_EFORMAT, "logical_count"},
    {"{\"logical_count\": [[1, \"a\"]]}", 0, EPLB_EFORMAT, "logical_count[0][1]"},
    {"{\"logical_count\": [5]}", 0, EPLB_EFORMAT, "logical_count[0]: expected an array"},
    {"{\"0\": {\"0\": 1}, \"logical_count\": [[1]]}", 0, EPLB_EFORMAT, "beside other keys"},
    /* Damaged dumps: a short row is not an expert with 0 tokens (issue #17). */
    {"{\"logical_count\": [[1, 2, 3], [4, 5]]}", 0, EPLB_EFORMAT,
     "logical_count[1]: 2 counts, but the first row has 3"},
    {"{\"logical_count\": [[1, 2], [3, 4, 5]]}", 0, EPLB_EFORMAT, "logical_count[1]: 3 counts"},
    {"{\"logical_count\": [[], [1]]}", 0, EPLB_EFORMAT, "logical_count[1]: 1 counts"},
    {"{\"logical_count\": [[[1, 2], [3, 4]], [[5, 6]]]}", 0, EPLB_EFORMAT,
     "logical_count[1]: 1 layers, but the first pass has 2"},
    {"{\"logical_count\": [[[1, 2], [3, 4]], [[5, 6], [7]]]}", 0, EPLB_EFORMAT,
     "logical_count[1][1]: 1 counts, but the first row has 2"},
    {"{\"logical_count\": [[[1, 2]], [5]]}", 0, EPLB_EFORMAT,
     "logical_count[1][0]: expected an array"},
    {"{\"logical_count\": [[1, \"NaN\"]]}", 0, EPLB_EFORMAT, "logical_count[0][1]: count is a string"},
    {"{\"0\": {\"1\": \"NaN\"}}", 0, EPLB_EFORMAT, "expert \"1\": count is a string"},
};

static void every_bad_input_is_rejected_with_file_and_key(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *c = &bad_cases[i];
    eplb_loads *x = (eplb_loads *)1;
    int rc = eplb_loads_parse(c->text, strlen(c->text), "t.json", c->num_experts, &x);
    if (rc != c->code || x != NULL)
      fail_msg("case %zu (%s): rc %d (%s), expected %d", i, c->text, rc, eplb_last_error(),
               c->code);
    if (!strstr(eplb_last_error(), c->needle))
      fail_msg("case %zu (%s): message '%s' lacks '%s'", i, c->text, eplb_last_error(), c->needle);
    if (strncmp(eplb_last_error(), "t.json", 6) != 0)
      fail_msg("case %zu: message '%s' does not start with the file name", i, eplb_last_error());
    if (strchr(eplb_last_error(), '\n'))
      fail_msg("case %zu: message is not one line", i);
  }
}

static void sum_overflow_across_files_is_an_error(void **state) {
  (void)state;
  const char *paths[2];
  paths[0] = put("big0.json", "{\"0\": {\"0\": 9223372036854775807}}");
  paths[1] = put("big1.json", "{\"0\": {\"0\": 1}}");
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_read_files(paths, 2, 0, &x), EPLB_ERANGE);
  assert_null(x);
  assert_non_null(strstr(eplb_last_error(), "overflows"));
}

static void missing_file_and_empty_folder_are_io_errors(void **state) {
  (void)state;
  eplb_loads *x = NULL;
  char path[128];
  snprintf(path, sizeof path, "%s/absent.json", tmpdir);
  assert_int_equal(eplb_loads_read_file(path, 0, &x), EPLB_EIO);
  assert_non_null(strstr(eplb_last_error(), "absent.json"));
  char dir[128];
  snprintf(dir, sizeof dir, "%s/empty", tmpdir);
  mkdir(dir, 0755);
  put("empty/readme.txt", "x");
  assert_int_equal(eplb_loads_read_folder(dir, 0, &x), EPLB_EIO);
  assert_non_null(strstr(eplb_last_error(), "no .json file"));
  snprintf(dir, sizeof dir, "%s/nowhere", tmpdir);
  assert_int_equal(eplb_loads_read_folder(dir, 0, &x), EPLB_EIO);
}

static void a_bad_file_in_a_folder_names_that_file(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/mixed", tmpdir);
  mkdir(dir, 0755);
  put("mixed/a.json", "{\"0\": {\"0\": 1}}");
  put("mixed/b.json", "{\"0\": {\"0\": -1}}");
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_read_folder(dir, 0, &x), EPLB_EFORMAT);
  assert_non_null(strstr(eplb_last_error(), "mixed/b.json: layer \"0\": expert \"0\""));
}

static void failed_write_leaves_the_old_file(void **state) {
  (void)state;
  const char *path = put("keep.json", "old content\n");
  eplb_loads bad = {0};
  assert_int_equal(eplb_loads_write(&bad, path), EPLB_EINVAL);
  char buf[64] = {0};
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "old content\n");
}

static void error_names_and_messages_come_from_one_table(void **state) {
  (void)state;
  assert_string_equal(eplb_err_name(EPLB_EFORMAT), "EPLB_EFORMAT");
  assert_string_equal(eplb_strerror(EPLB_ENOMEM), "out of memory");
  assert_string_equal(eplb_strerror(12345), "unknown error");
  assert_string_equal(eplb_version_string(), EPLB_VERSION_STRING);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(seed_layers_sorted_by_key_and_missing_experts_zero),
      cmocka_unit_test(num_experts_widens_the_matrix),
      cmocka_unit_test(float_counts_drop_exact_counts),
      cmocka_unit_test(largest_int64_count_is_exact),
      cmocka_unit_test(sglang_rows_are_layers),
      cmocka_unit_test(sglang_passes_are_summed),
      cmocka_unit_test(many_scrambled_layers_are_sorted_and_kept_apart),
      cmocka_unit_test(files_are_summed_elementwise_over_the_union_of_layers),
      cmocka_unit_test(folder_sums_only_json_files),
      cmocka_unit_test(write_then_read_round_trips_exactly),
      cmocka_unit_test(every_bad_input_is_rejected_with_file_and_key),
      cmocka_unit_test(sum_overflow_across_files_is_an_error),
      cmocka_unit_test(missing_file_and_empty_folder_are_io_errors),
      cmocka_unit_test(a_bad_file_in_a_folder_names_that_file),
      cmocka_unit_test(failed_write_leaves_the_old_file),
      cmocka_unit_test(error_names_and_messages_come_from_one_table),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
