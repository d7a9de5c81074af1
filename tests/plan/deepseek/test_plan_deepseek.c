/* test_plan_deepseek.c - the deepseek policy against DeepSeek's reference outputs (golden files
 * in tests/data/golden, copies of ../shared/golden/deepseek), its parameter rules, and
 * hand-worked float32 cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>

#include "eplb.h"
#include "plan/plan_int.h"

#define GOLDEN_DIR EPLB_TEST_DATA "/golden"
/* Number of golden cases copied from ../shared/golden/deepseek. */
#define GOLDEN_CASES 8
#define MAX_CASES 64
#define PATH_LEN 1024

/* ---- golden files ---- */

/* One golden case: the parameters, the loads and the reference's output. */
typedef struct golden {
  char name[PATH_LEN];
  eplb_params params;
  eplb_loads *loads;
  int32_t L, E, R, X;
  int32_t *phy2log; /* [L*R] */
  int32_t *logcnt;  /* [L*E] */
  int32_t *log2phy; /* [L*E*X] */
} golden;

/* Reads an integer member of a JSON object, failing the test when it is missing. */
static int32_t get_int(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  assert_non_null(v);
  assert_true(json_is_integer(v));
  return (int32_t)json_integer_value(v);
}

/* Loads one golden file: loads {"<layer>": {"<expert>": float}} become an eplb_loads without
 * exact counts (the values are fractional). */
static void golden_load(const char *path, golden *g) {
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root)
    fail_msg("%s: %s (line %d)", path, err.text, err.line);
  snprintf(g->name, sizeof g->name, "%s", path);
  json_t *params = json_object_get(root, "params");
  eplb_params_init(&g->params);
  g->params.num_replicas = get_int(params, "num_replicas");
  g->params.num_groups = get_int(params, "num_groups");
  g->params.num_nodes = get_int(params, "num_nodes");
  g->params.num_gpus = get_int(params, "num_gpus");
  g->params.policy = EPLB_POLICY_DEEPSEEK;
  g->R = g->params.num_replicas;

  json_t *jl = json_object_get(root, "loads");
  assert_true(json_is_object(jl));
  g->L = (int32_t)json_object_size(jl);
  g->E = 0;
  const char *lk, *ek;
  json_t *row, *v;
  json_object_foreach(jl, lk, row) {
    json_object_foreach(row, ek, v) {
      int32_t e = atoi(ek);
      if (e + 1 > g->E)
        g->E = e + 1;
    }
  }
  assert_int_equal(eplb_loads_create(g->L, g->E, &g->loads), 0);
  free(g->loads->count);
  g->loads->count = NULL;
  json_object_foreach(jl, lk, row) {
    int32_t l = atoi(lk);
    assert_true(l >= 0 && l < g->L);
    json_object_foreach(row, ek, v) {
      assert_true(json_is_number(v));
      g->loads->load[(size_t)l * g->E + (size_t)atoi(ek)] = json_number_value(v);
    }
  }

  json_t *exp = json_object_get(root, "expected");
  json_t *jp = json_object_get(exp, "phy2log"), *jc = json_object_get(exp, "logcnt"),
         *jm = json_object_get(exp, "log2phy");
  assert_int_equal(json_array_size(jp), (size_t)g->L);
  g->X = (int32_t)json_array_size(json_array_get(json_array_get(jm, 0), 0));
  g->phy2log = calloc((size_t)g->L * g->R, sizeof *g->phy2log);
  g->logcnt = calloc((size_t)g->L * g->E, sizeof *g->logcnt);
  g->log2phy = calloc((size_t)g->L * g->E * g->X, sizeof *g->log2phy);
  assert_non_null(g->phy2log);
  assert_non_null(g->logcnt);
  assert_non_null(g->log2phy);
  for (int32_t l = 0; l < g->L; l++) {
    json_t *pr = json_array_get(jp, (size_t)l), *cr = json_array_get(jc, (size_t)l),
           *mr = json_array_get(jm, (size_t)l);
    assert_int_equal(json_array_size(pr), (size_t)g->R);
    assert_int_equal(json_array_size(cr), (size_t)g->E);
    for (int32_t s = 0; s < g->R; s++)
      g->phy2log[(size_t)l * g->R + s] = (int32_t)json_integer_value(json_array_get(pr, (size_t)s));
    for (int32_t e = 0; e < g->E; e++) {
      g->logcnt[(size_t)l * g->E + e] = (int32_t)json_integer_value(json_array_get(cr, (size_t)e));
      json_t *slots = json_array_get(mr, (size_t)e);
      assert_int_equal(json_array_size(slots), (size_t)g->X);
      for (int32_t r = 0; r < g->X; r++)
        g->log2phy[((size_t)l * g->E + e) * g->X + r] =
            (int32_t)json_integer_value(json_array_get(slots, (size_t)r));
    }
  }
  json_decref(root);
}

/* Releases a golden case. */
static void golden_free(golden *g) {
  eplb_loads_free(g->loads);
  free(g->phy2log);
  free(g->logcnt);
  free(g->log2phy);
}

/* qsort order of file names. */
static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the golden files (sorted), failing when the folder does not hold all of them. */
static int golden_list(char **names) {
  DIR *dir = opendir(GOLDEN_DIR);
  assert_non_null(dir);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 && n < MAX_CASES) {
      names[n] = malloc(PATH_LEN);
      assert_non_null(names[n]);
      snprintf(names[n], PATH_LEN, "%s/%s", GOLDEN_DIR, de->d_name);
      n++;
    }
  }
  closedir(dir);
  qsort(names, (size_t)n, sizeof *names, name_cmp);
  assert_int_equal(n, GOLDEN_CASES);
  return n;
}

/* Sorts a small int array ascending (insertion sort). */
static void sort_ints(int32_t *a, int32_t n) {
  for (int32_t i = 1; i < n; i++) {
    int32_t v = a[i], j = i;
    for (; j > 0 && a[j - 1] > v; j--)
      a[j] = a[j - 1];
    a[j] = v;
  }
}

/* Whether layer l of a golden output puts two replicas of one expert on a device. */
static int golden_has_duplicate(const golden *g, int32_t l) {
  int32_t S = g->R / g->params.num_gpus;
  const int32_t *row = g->phy2log + (size_t)l * g->R;
  for (int32_t s = 0; s < g->R; s++)
    for (int32_t t = s + 1; t < (s / S + 1) * S; t++)
      if (row[s] == row[t])
        return 1;
  return 0;
}

/* Devices per node of the policy's mode (the global mode uses one node). */
static int32_t devices_per_node(const eplb_params *pr) {
  return eplb_params_mode(pr) == EPLB_MODE_HIERARCHICAL ? pr->num_gpus / pr->num_nodes
                                                         : pr->num_gpus;
}

/* ---- golden: exact mode ---- */

/* With allow_duplicates, every golden case and layer gives the reference's phy2log and logcnt,
 * and log2phy up to the order of one expert's slots. */
static void test_golden_exact(void **state) {
  (void)state;
  char *names[MAX_CASES];
  int n = golden_list(names);
  for (int c = 0; c < n; c++) {
    golden g;
    golden_load(names[c], &g);
    g.params.allow_duplicates = 1;
    eplb_placement *p = NULL;
    int rc = eplb_plan(g.loads, &g.params, &p);
    if (rc)
      fail_msg("%s: %s", g.name, eplb_last_error());
    assert_int_equal(p->max_replicas, g.X);
    for (int32_t l = 0; l < g.L; l++) {
      for (int32_t s = 0; s < g.R; s++)
        if (p->phy2log[(size_t)l * g.R + s] != g.phy2log[(size_t)l * g.R + s])
          fail_msg("%s: layer %d slot %d: phy2log %d, reference %d", g.name, l, s,
                   p->phy2log[(size_t)l * g.R + s], g.phy2log[(size_t)l * g.R + s]);
      for (int32_t e = 0; e < g.E; e++) {
        size_t i = (size_t)l * g.E + e;
        assert_int_equal(p->logcnt[i], g.logcnt[i]);
        int32_t mine[64], ref[64];
        assert_true(g.X <= 64);
        memcpy(mine, p->log2phy + i * g.X, (size_t)g.X * sizeof *mine);
        memcpy(ref, g.log2phy + i * g.X, (size_t)g.X * sizeof *ref);
        sort_ints(mine, g.logcnt[i]);
        sort_ints(ref, g.logcnt[i]);
        assert_memory_equal(mine, ref, (size_t)g.X * sizeof *mine);
      }
    }
    eplb_placement_free(p);
    golden_free(&g);
    free(names[c]);
  }
}

/* ---- golden: no-duplicate mode ---- */

/* Without duplicates every golden case plans a valid duplicate-free placement, identical to the
 * reference in every layer where the reference has no duplicate, with at most one replica of an
 * expert per device of its node. */
static void test_golden_no_duplicates(void **state) {
  (void)state;
  char *names[MAX_CASES];
  int n = golden_list(names);
  int same_layers = 0, dup_layers = 0;
  for (int c = 0; c < n; c++) {
    golden g;
    golden_load(names[c], &g);
    g.params.allow_duplicates = 0;
    eplb_placement *p = NULL;
    int rc = eplb_plan(g.loads, &g.params, &p);
    if (rc)
      fail_msg("%s: %s", g.name, eplb_last_error());
    assert_int_equal(eplb_placement_validate(p, 0), 0);
    assert_int_equal(eplb_placement_duplicates(p), 0);
    int32_t gn = devices_per_node(&g.params);
    for (int32_t l = 0; l < g.L; l++) {
      for (int32_t e = 0; e < g.E; e++)
        assert_true(p->logcnt[(size_t)l * g.E + e] <= gn);
      if (golden_has_duplicate(&g, l)) {
        dup_layers++;
        continue;
      }
      same_layers++;
      assert_memory_equal(p->phy2log + (size_t)l * g.R, g.phy2log + (size_t)l * g.R,
                          (size_t)g.R * sizeof *p->phy2log);
    }
    eplb_placement_free(p);
    golden_free(&g);
    free(names[c]);
  }
  print_message("no-duplicate mode: %d golden layers identical to the reference, %d layers "
                "where the reference has duplicates\n",
                same_layers, dup_layers);
  assert_true(same_layers > 0);
}

/* ---- parameter rules ---- */

/* Makes a 1-layer loads matrix of E experts with loads 1..E (exact counts). */
static eplb_loads *make_loads(int32_t E) {
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(1, E, &x), 0);
  for (int32_t e = 0; e < E; e++) {
    x->count[e] = e + 1;
    x->load[e] = e + 1;
  }
  return x;
}

/* Fills parameters R, K, N, G for the deepseek policy. */
static eplb_params make_params(int32_t R, int32_t K, int32_t N, int32_t G, int dups) {
  eplb_params pr;
  eplb_params_init(&pr);
  pr.num_replicas = R;
  pr.num_groups = K;
  pr.num_nodes = N;
  pr.num_gpus = G;
  pr.policy = EPLB_POLICY_DEEPSEEK;
  pr.allow_duplicates = dups;
  return pr;
}

/* Plans and expects failure `code` with `words` in the detail. */
static void expect_error(const eplb_loads *x, const eplb_params *pr, int code, const char *words) {
  eplb_placement *p = (eplb_placement *)1;
  int rc = eplb_plan(x, pr, &p);
  assert_int_equal(rc, code);
  assert_null(p);
  if (!strstr(eplb_last_error(), words))
    fail_msg("detail \"%s\" does not name \"%s\"", eplb_last_error(), words);
}

/* Hierarchical mode (K % N == 0) requires E % K == 0. */
static void test_error_groups_divide_experts(void **state) {
  (void)state;
  eplb_loads *x = make_loads(10);
  eplb_params pr = make_params(12, 4, 2, 2, 1);
  expect_error(x, &pr, EPLB_EPARAM, "num_experts % num_groups");
  eplb_loads_free(x);
}

/* The global mode ignores the groups: E % K != 0 is fine when K % N != 0. */
static void test_global_ignores_groups(void **state) {
  (void)state;
  eplb_loads *x = make_loads(10);
  eplb_params pr = make_params(12, 3, 2, 2, 1);
  assert_int_equal(eplb_params_mode(&pr), EPLB_MODE_GLOBAL);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* Slots per node must cover the experts per node; eplb_plan() already rejects R < E, so the
 * policy's own check is reached directly. */
static void test_error_slots_per_node(void **state) {
  (void)state;
  eplb_loads *x = make_loads(8);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_create(1, 8, 4, 2, &p), 0);
  eplb_params pr = make_params(4, 2, 2, 2, 1);
  assert_int_equal(eplb__plan_deepseek(x, &pr, p), EPLB_EPARAM);
  assert_non_null(strstr(eplb_last_error(), "slots per node"));
  eplb_placement_free(p);
  pr = make_params(4, 2, 2, 2, 1);
  expect_error(x, &pr, EPLB_EPARAM, "num_replicas 4 is less than the 8 experts");
  eplb_loads_free(x);
}

/* Without duplicates a device cannot hold more slots than its node has experts. */
static void test_error_no_duplicates_capacity(void **state) {
  (void)state;
  eplb_loads *x = make_loads(4);
  eplb_params pr = make_params(10, 1, 1, 2, 0); /* 5 slots per device, 4 experts */
  expect_error(x, &pr, EPLB_EPARAM, "without duplicates");
  pr = make_params(16, 2, 2, 4, 0); /* hierarchical: 2 experts and 2 devices per node, 8 slots */
  expect_error(x, &pr, EPLB_EPARAM, "without duplicates");
  pr = make_params(10, 1, 1, 2, 1); /* the same shape is fine with duplicates */
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_true(eplb_placement_duplicates(p) > 0);
  eplb_placement_free(p);
  pr = make_params(8, 1, 1, 2, 0); /* exactly 4 slots per device: every expert on both */
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_int_equal(eplb_placement_duplicates(p), 0);
  for (int32_t e = 0; e < 4; e++)
    assert_int_equal(p->logcnt[e], 2);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* A negative load is rejected before planning. */
static void test_error_negative_load(void **state) {
  (void)state;
  eplb_loads *x = make_loads(4);
  free(x->count);
  x->count = NULL;
  x->load[2] = -1;
  eplb_params pr = make_params(4, 1, 1, 2, 1);
  expect_error(x, &pr, EPLB_EINVAL, "expert 2");
  eplb_loads_free(x);
}

/* ---- float32 semantics, worked by hand ---- */

/* Replication compares float32 quotients. Loads 2^24 and 2^24 + 1, one redundant slot (E 2,
 * R 3, one device): 2^24 + 1 is not a float32 and rounds to even, 2^24, so both experts tie at
 * 16777216.0f and the first index wins: logcnt {2, 1}. Doubles would pick expert 1. */
static void test_float32_replication_tie(void **state) {
  (void)state;
  eplb_loads *x = make_loads(2);
  x->count[0] = 16777216;
  x->count[1] = 16777217;
  x->load[0] = 16777216.0;
  x->load[1] = 16777217.0;
  eplb_params pr = make_params(3, 1, 1, 1, 1);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_int_equal(p->logcnt[0], 2);
  assert_int_equal(p->logcnt[1], 1);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* Exact counts are cast int64 -> float32 directly, as torch does. A = 2^60 + 2^36 + 1 is just
 * above the midpoint between the float32 neighbours 2^60 and 2^60 + 2^37, so it rounds up to
 * 2^60 + 2^37 = B and ties with B: expert 0 (first) gets the redundant replica. Through double,
 * A would first round to the midpoint 2^60 + 2^36, then to even, 2^60 < B: expert 1. */
static void test_float32_int64_cast(void **state) {
  (void)state;
  eplb_loads *x = make_loads(2);
  const int64_t two60 = (int64_t)1 << 60;
  x->count[0] = two60 + ((int64_t)1 << 36) + 1;
  x->count[1] = two60 + ((int64_t)1 << 37);
  x->load[0] = (double)x->count[0];
  x->load[1] = (double)x->count[1];
  eplb_params pr = make_params(3, 1, 1, 1, 1);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  assert_int_equal(p->logcnt[0], 2);
  assert_int_equal(p->logcnt[1], 1);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* Pack loads accumulate in float32. Loads {2^24, 2^24, 1, 1, 1, 1} on 2 devices of 3 slots:
 * the heavy items go to devices 0 and 1; item 2 (tie at 2^24) to device 0, whose float32 load
 * 2^24 + 1 rounds back to 2^24, so item 3 ties again and takes device 0 (full now); items 4 and
 * 5 go to device 1: phy2log {0, 2, 3, 1, 4, 5}. Doubles would give {0, 2, 4, 1, 3, 5}. */
static void test_float32_pack_sums(void **state) {
  (void)state;
  eplb_loads *x = make_loads(6);
  const int64_t w[6] = {16777216, 16777216, 1, 1, 1, 1};
  for (int e = 0; e < 6; e++) {
    x->count[e] = w[e];
    x->load[e] = (double)w[e];
  }
  const int32_t want[6] = {0, 2, 3, 1, 4, 5};
  for (int dups = 0; dups <= 1; dups++) {
    eplb_params pr = make_params(6, 1, 1, 2, dups);
    eplb_placement *p = NULL;
    assert_int_equal(eplb_plan(x, &pr, &p), 0);
    assert_memory_equal(p->phy2log, want, sizeof want);
    eplb_placement_free(p);
  }
  eplb_loads_free(x);
}

/* An all-zero layer gives every redundant replica to the node's first expert (argmax ties go to
 * the first node-local position); hierarchical: groups tie too, so group k goes to node
 * k / (K / N) and node n's first expert is expert n * E / N. */
static void test_zero_loads_first_expert(void **state) {
  (void)state;
  eplb_loads *x = NULL;
  assert_int_equal(eplb_loads_create(1, 16, &x), 0);
  eplb_params pr = make_params(24, 4, 2, 4, 1); /* 8 experts, 12 slots per node */
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  for (int32_t e = 0; e < 16; e++)
    assert_int_equal(p->logcnt[e], e == 0 || e == 8 ? 5 : 1);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* ---- no-duplicate repair, worked by hand ---- */

/* Plans one layer of `E` exact loads on G devices (global mode) and compares phy2log. */
static void expect_phy2log(const int64_t *w, int32_t E, int32_t R, int32_t G, int dups,
                           const int32_t *want) {
  eplb_loads *x = make_loads(E);
  for (int32_t e = 0; e < E; e++) {
    x->count[e] = w[e];
    x->load[e] = (double)w[e];
  }
  eplb_params pr = make_params(R, 1, 1, G, dups);
  eplb_placement *p = NULL;
  assert_int_equal(eplb_plan(x, &pr, &p), 0);
  for (int32_t s = 0; s < R; s++)
    if (p->phy2log[s] != want[s])
      fail_msg("dups %d: slot %d holds expert %d, expected %d", dups, s, p->phy2log[s], want[s]);
  eplb_placement_free(p);
  eplb_loads_free(x);
}

/* Loads {1, 2, 1}, 2 devices of 2 slots: expert 1 gets the redundant replica; all four replicas
 * weigh 1. Greedy: e0 -> d0, e1 -> d1, e2 -> d0 (tie, lowest index; d0 full), and the second e1
 * can only go to d1, which holds e1: stuck. Repair: P = d0 (full, no e1), Q = d1; moving e0 or
 * e2 both give max(2 - 1 + 1, 1 + 1) = 2, so the first (rank 0, e0) moves: d0 = {e1, e2},
 * d1 = {e1, e0}. The reference keeps {0, 2 | 1, 1}. */
static void test_repair_simple(void **state) {
  (void)state;
  const int64_t w[3] = {1, 2, 1};
  const int32_t want_exact[4] = {0, 2, 1, 1}, want[4] = {1, 2, 1, 0};
  expect_phy2log(w, 3, 4, 2, 1, want_exact);
  expect_phy2log(w, 3, 4, 2, 0, want);
}

/* Loads {20, 10, 19, 11, 14}, 2 devices of 3 slots: expert 0 is split into 10 + 10. Order
 * e2 19, e4 14, e3 11, e0 10, e1 10, e0 10: d0 = {e2, e0} (29), d1 = {e4, e3, e1} (35, full);
 * the last e0 is stuck (only d0 has room). Swapping e4, e3 or e1 from d1 to d0 gives maxima
 * max(31, 43) = 43, max(34, 40) = 40, max(35, 39) = 39: e1 moves, d0 = {e2, e0, e1},
 * d1 = {e4, e3, e0}. The reference keeps {2, 0, 0 | 4, 3, 1}. */
static void test_repair_minimises_max(void **state) {
  (void)state;
  const int64_t w[5] = {20, 10, 19, 11, 14};
  const int32_t want_exact[6] = {2, 0, 0, 4, 3, 1}, want[6] = {2, 0, 1, 4, 3, 0};
  expect_phy2log(w, 5, 6, 2, 1, want_exact);
  expect_phy2log(w, 5, 6, 2, 0, want);
}

/* ---- an independent re-statement ---- */

/* Compares one plan's phy2log with a JSON array of rows. */
static void expect_rows(const eplb_placement *p, json_t *rows, int c, const char *mode) {
  assert_int_equal(json_array_size(rows), (size_t)p->num_layers);
  for (int32_t l = 0; l < p->num_layers; l++) {
    json_t *row = json_array_get(rows, (size_t)l);
    assert_int_equal(json_array_size(row), (size_t)p->num_slots);
    for (int32_t s = 0; s < p->num_slots; s++) {
      int32_t want = (int32_t)json_integer_value(json_array_get(row, (size_t)s));
      if (p->phy2log[(size_t)l * p->num_slots + s] != want)
        fail_msg("case %d %s layer %d slot %d: %d, re-statement %d", c, mode, l, s,
                 p->phy2log[(size_t)l * p->num_slots + s], want);
    }
  }
}

/* Both modes equal tests/deepseek_pyref.py, a plain Python re-statement of the spec and of the
 * no-duplicate rules, on its 500 random cases (exact ties, counts up to 2^62, 2^24 + 1). */
static void test_python_restatement(void **state) {
  (void)state;
  json_error_t err;
  json_t *root = json_load_file(EPLB_TEST_DATA "/deepseek_pyref.json", 0, &err);
  if (!root)
    fail_msg("deepseek_pyref.json: %s", err.text);
  json_t *cases = json_object_get(root, "cases");
  assert_true(json_array_size(cases) >= 500);
  for (size_t c = 0; c < json_array_size(cases); c++) {
    json_t *jc = json_array_get(cases, c), *jl = json_object_get(jc, "loads");
    int32_t L = get_int(jc, "L"), E = get_int(jc, "E");
    eplb_loads *x = NULL;
    assert_int_equal(eplb_loads_create(L, E, &x), 0);
    for (int32_t l = 0; l < L; l++)
      for (int32_t e = 0; e < E; e++) {
        json_int_t v = json_integer_value(json_array_get(json_array_get(jl, (size_t)l), (size_t)e));
        x->count[(size_t)l * E + e] = (int64_t)v;
        x->load[(size_t)l * E + e] = (double)v;
      }
    for (int dups = 0; dups <= 1; dups++) {
      eplb_params pr = make_params(get_int(jc, "R"), get_int(jc, "K"), get_int(jc, "N"),
                                   get_int(jc, "G"), dups);
      eplb_placement *p = NULL;
      if (eplb_plan(x, &pr, &p) != 0)
        fail_msg("case %zu: %s", c, eplb_last_error());
      const char *mode = dups ? "phy2log_exact" : "phy2log_nodup";
      expect_rows(p, json_object_get(jc, mode), (int)c, mode);
      eplb_placement_free(p);
    }
    eplb_loads_free(x);
  }
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_exact),
      cmocka_unit_test(test_golden_no_duplicates),
      cmocka_unit_test(test_error_groups_divide_experts),
      cmocka_unit_test(test_global_ignores_groups),
      cmocka_unit_test(test_error_slots_per_node),
      cmocka_unit_test(test_error_no_duplicates_capacity),
      cmocka_unit_test(test_error_negative_load),
      cmocka_unit_test(test_float32_replication_tie),
      cmocka_unit_test(test_float32_int64_cast),
      cmocka_unit_test(test_float32_pack_sums),
      cmocka_unit_test(test_zero_loads_first_expert),
      cmocka_unit_test(test_repair_simple),
      cmocka_unit_test(test_repair_minimises_max),
      cmocka_unit_test(test_python_restatement),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
