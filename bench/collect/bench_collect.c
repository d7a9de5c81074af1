/* bench_collect.c - record throughput of the collector against the upstream way of counting.
 *
 * Shape of the issue: 64 layers x 256 experts, top-8, 4096 tokens per call (32768 ids a call),
 * int32 and int64 ids, one core. The baseline is what the upstream framework does on every
 * forward of every MoE layer (MindSpeed-RL's vLLM adapter, fused_moe.py, per-rank
 * eplb_token_collects_<rank>.json): read the rank's JSON file of counts, add the call's counts,
 * write the file back as json.dump(..., indent=2) writes it. Three baselines run in this process:
 *   - upstream's Python: that code path, in Python, run by an embedded CPython (Debian's
 *     libpython3.11): json.load, int keys, torch.unique(return_counts=True) - or numpy.unique,
 *     the same operation, where torch is not installed - a Python loop adding the counts, then
 *     json.dump(indent=2). The ids are made into arrays once, before timing, as our collector is
 *     handed ready buffers; interpreter start and imports are outside the timed region. After
 *     its runs, its file is read back and checked against the counts the calls must add up to.
 *     This is the baseline the issue names; it needs libpython3-dev (and numpy or torch) at
 *     build and run time, and says so when it is missing.
 *   - a C re-implementation with jansson (JSON_INDENT(2)): the same work without the
 *     interpreter, faster than upstream's Python, so ratios against it are a floor.
 *   - the C one writing compact JSON: cheaper still, to show how much the ratio owes to the layout.
 * The figures are ids per second (medians) and ratios of ours to each baseline.
 *
 * usage: bench_collect [SECONDS_PER_MEASURE] [BASELINE_CALLS]   (defaults 0.5 and 128)
 * Ours: median of MEASURES measures of SECONDS each. Each baseline: median of MEASURES runs of
 * BASELINE_CALLS calls, interleaved with ours. A baseline's file starts with every layer at zero
 * (upstream's file holds every layer at steady state) and grows as its counts do.
 */
#ifdef EPLB_BENCH_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first, as its manual asks */
#endif
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "eplb.h"
#include "core/eplb_rand.h"

#define LAYERS 64
#define EXPERTS 256
#define TOPK 8
#define TOKENS 4096
#define IDS_PER_CALL (TOKENS * TOPK)
#define BUFFERS 8          /* distinct calls' worth of ids, cycled */
#define SKEW_SIGMA 1.0     /* lognormal expert popularity, as a real router is skewed */
#define DEFAULT_SECONDS 0.5
#define DEFAULT_BASELINE_CALLS 128 /* 2 forwards of every layer */
#define MEASURES 5
#define TWO_PI 6.283185307179586
#define GOAL_IDS_PER_S 5e8 /* the goal: ids per second on one core */
#define GOAL_RATIO 1000.0 /* and times the upstream baseline */

/* ---- data ---- */

/* splitmix64: a small seeded generator. */
static uint64_t next_rand(uint64_t *s) {
  return eplb__splitmix64(s);
}

/* A uniform double in [0, 1). */
static double uniform(uint64_t *s) { return (double)(next_rand(s) >> 11) * 0x1.0p-53; }

/* Fills ids with TOKENS tokens of TOPK distinct experts drawn from a lognormal popularity. */
static void make_ids(int32_t *ids, uint64_t *s) {
  double cdf[EXPERTS], total = 0;
  for (int e = 0; e < EXPERTS; e++) {
    double z = sqrt(-2 * log(1 - uniform(s))) * cos(TWO_PI * uniform(s));
    total += exp(SKEW_SIGMA * z);
    cdf[e] = total;
  }
  for (int t = 0; t < TOKENS; t++) {
    int32_t *tok = ids + t * TOPK;
    for (int k = 0; k < TOPK;) {
      double u = uniform(s) * total;
      int lo = 0, hi = EXPERTS - 1;
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] > u)
          hi = mid;
        else
          lo = mid + 1;
      }
      int dup = 0;
      for (int j = 0; j < k; j++)
        dup |= tok[j] == lo;
      if (!dup)
        tok[k++] = lo;
    }
  }
}

/* Seconds from a monotonic clock. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- ours ---- */

/* Records calls of IDS_PER_CALL ids for about `seconds`; returns ids per second. */
static double bench_ours(const void *const *bufs, eplb_id_type type, double seconds,
                         uint64_t *total_ids) {
  eplb_collector *c = eplb_collector_create(LAYERS, EXPERTS, 1);
  if (!c)
    return 0;
  uint64_t calls = 0;
  double t0 = now(), t = t0;
  while (t - t0 < seconds) {
    for (int rep = 0; rep < LAYERS; rep++, calls++)
      if (eplb_collector_record(c, rep, bufs[calls % BUFFERS], IDS_PER_CALL, type) != 0)
        return 0;
    t = now();
  }
  /* Check what was counted: every layer's sum must be its calls x IDS_PER_CALL. */
  uint64_t *sum = malloc(sizeof(uint64_t) * LAYERS * EXPERTS), got = 0;
  eplb_collector_counts(c, EPLB_WINDOW_ALL, sum, LAYERS * EXPERTS);
  for (int i = 0; i < LAYERS * EXPERTS; i++)
    got += sum[i];
  free(sum);
  eplb_collector_free(c);
  *total_ids = calls * IDS_PER_CALL;
  if (got != *total_ids) {
    fprintf(stderr, "bench_collect: counted %llu ids, recorded %llu\n", (unsigned long long)got,
            (unsigned long long)*total_ids);
    return 0;
  }
  return (double)*total_ids / (t - t0);
}

/* ---- baseline: the upstream way ---- */

/* Writes an all-zero counts file {"<layer>": {"<expert>": 0}} for the baseline. */
static int write_zero_file(const char *path, size_t dump_flags) {
  json_t *root = json_object();
  char key[16];
  for (int l = 0; l < LAYERS; l++) {
    json_t *layer = json_object();
    for (int e = 0; e < EXPERTS; e++) {
      snprintf(key, sizeof key, "%d", e);
      json_object_set_new(layer, key, json_integer(0));
    }
    snprintf(key, sizeof key, "%d", l);
    json_object_set_new(root, key, layer);
  }
  int rc = json_dump_file(root, path, dump_flags);
  json_decref(root);
  return rc;
}

/* One upstream forward of one layer: read the file, add the call's counts, write it back. */
static int baseline_call(const char *path, int layer, const int32_t *ids, size_t dump_flags) {
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root)
    return -1;
  uint64_t counts[EXPERTS] = {0};
  for (int i = 0; i < IDS_PER_CALL; i++)
    counts[ids[i]]++;
  char key[16];
  snprintf(key, sizeof key, "%d", layer);
  json_t *row = json_object_get(root, key);
  for (int e = 0; e < EXPERTS && row; e++) {
    snprintf(key, sizeof key, "%d", e);
    json_t *v = json_object_get(row, key);
    json_object_set_new(row, key, json_integer(json_integer_value(v) + (json_int_t)counts[e]));
  }
  int rc = row ? json_dump_file(root, path, dump_flags) : -1;
  json_decref(root);
  return rc;
}

/* Runs `calls` baseline calls writing with `dump_flags`; returns ids per second. */
static double bench_baseline(const int32_t *const *bufs, int calls, size_t dump_flags) {
  char path[] = "/tmp/eplb_bench_collect.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return 0;
  close(fd);
  if (write_zero_file(path, dump_flags) != 0)
    return 0;
  double t0 = now();
  for (int i = 0; i < calls; i++)
    if (baseline_call(path, i % LAYERS, bufs[i % BUFFERS], dump_flags) != 0) {
      unlink(path);
      return 0;
    }
  double t = now() - t0;
  unlink(path);
  return (double)calls * IDS_PER_CALL / t;
}

/* ---- baseline: upstream's Python, in an embedded interpreter ---- */

#define PY_RANK 0 /* the rank whose file the Python baseline keeps */
#define WHY_LEN 256

#ifdef EPLB_BENCH_PYTHON

/* Counts that `calls` calls (layer i % LAYERS, buffer i % BUFFERS) must add to a file of zeros. */
static void expected_counts(const void *const *bufs, eplb_id_type type, int calls, uint64_t *exp) {
  memset(exp, 0, sizeof(uint64_t) * LAYERS * EXPERTS);
  for (int i = 0; i < calls; i++) {
    uint64_t *row = exp + (size_t)(i % LAYERS) * EXPERTS;
    for (int j = 0; j < IDS_PER_CALL; j++)
      row[type == EPLB_ID_INT32 ? ((const int32_t *)bufs[i % BUFFERS])[j]
                                : ((const int64_t *)bufs[i % BUFFERS])[j]]++;
  }
}

/* Upstream's per-call code path (MindSpeed-RL fused_moe.py, per-rank file), restated in Python,
 * with the set-up and read-back helpers the benchmark needs around it. */
static const char py_source[] =
    "import json, os\n"
    "UNIQUE, WHY = None, None\n"
    "try:\n"
    "    import torch\n"
    "    UNIQUE = 'torch.unique ' + torch.__version__\n"
    "    def as_ids(raw, dtype, topk):\n"
    "        t = torch.frombuffer(bytearray(raw), dtype=getattr(torch, dtype))\n"
    "        return t.reshape(-1, topk)\n"
    "    def unique_counts(ids):\n"
    "        return torch.unique(ids, return_counts=True)\n"
    "except ImportError:\n"
    "    try:\n"
    "        import numpy\n"
    "        UNIQUE = 'numpy.unique ' + numpy.__version__ + ' (torch not installed)'\n"
    "        def as_ids(raw, dtype, topk):\n"
    "            return numpy.frombuffer(raw, dtype=dtype).reshape(-1, topk)\n"
    "        def unique_counts(ids):\n"
    "            return numpy.unique(ids, return_counts=True)\n"
    "    except ImportError as e:\n"
    "        WHY = 'neither torch nor numpy imports (' + str(e) + ')'\n"
    "\n"
    "def file_of(save_path, rank):\n"
    "    return os.path.join(save_path, f'eplb_token_collects_{rank}.json')\n"
    "\n"
    "def collect(save_path, rank, layer_id, topk_ids, num_experts):\n"
    "    path = file_of(save_path, rank)\n"
    "    if os.path.exists(path):\n"
    "        with open(path) as f:\n"
    "            loaded = json.load(f)\n"
    "        loads = {int(k): {int(e): v for e, v in d.items()} for k, d in loaded.items()}\n"
    "    else:\n"
    "        loads = {}\n"
    "    if layer_id not in loads:\n"
    "        loads[layer_id] = {eid: 0 for eid in range(num_experts)}\n"
    "    unique_ids, counts = unique_counts(topk_ids)\n"
    "    for eid, cnt in zip(unique_ids.tolist(), counts.tolist()):\n"
    "        loads[layer_id][eid] += cnt\n"
    "    with open(path, 'w') as f:\n"
    "        json.dump(loads, f, indent=2)\n"
    "\n"
    "def prefill(save_path, rank, layers, experts):\n"
    "    with open(file_of(save_path, rank), 'w') as f:\n"
    "        json.dump({l: {e: 0 for e in range(experts)} for l in range(layers)}, f, indent=2)\n"
    "\n"
    "def totals(save_path, rank, layers, experts):\n"
    "    with open(file_of(save_path, rank)) as f:\n"
    "        d = json.load(f)\n"
    "    return [d[str(l)][str(e)] for l in range(layers) for e in range(experts)]\n"
    "\n"
    "def where():\n"
    "    import sys\n"
    "    mod = torch if UNIQUE and UNIQUE.startswith('torch') else (numpy if UNIQUE else None)\n"
    "    at = ', ' + mod.__file__ if mod else ''\n"
    "    return sys.version.split()[0] + ' at ' + sys.prefix + at\n";

/* The interpreter's functions and the ids as arrays ([0] int32, [1] int64), made once. */
struct py_base {
  PyObject *globals, *collect, *prefill, *totals;
  PyObject *ids[2][BUFFERS];
  char unique[WHY_LEN], where[WHY_LEN];
};

/* Copies the str value of a global of the embedded module into out; returns 0 if it is a str. */
static int py_str(PyObject *globals, const char *name, char *out, size_t len) {
  PyObject *v = PyDict_GetItemString(globals, name); /* borrowed */
  const char *u = v && PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
  if (!u)
    return -1;
  snprintf(out, len, "%s", u);
  return 0;
}

/* Starts Debian's CPython, runs py_source and makes the ids arrays. Returns 0, 1 when the baseline
 * cannot run here (reason in why), or -1 on a Python error (printed). */
static int py_start(struct py_base *pb, const void *const *b32, const void *const *b64, char *why) {
  PyConfig cfg;
  PyConfig_InitIsolatedConfig(&cfg); /* ignore PYTHON* variables: the system's own paths */
  PyStatus st = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(st)) {
    snprintf(why, WHY_LEN, "CPython did not start: %s", st.err_msg ? st.err_msg : "unknown");
    return 1;
  }
  pb->globals = PyDict_New();
  if (!pb->globals || PyDict_SetItemString(pb->globals, "__builtins__", PyEval_GetBuiltins()) != 0)
    goto fail;
  PyObject *r = PyRun_String(py_source, Py_file_input, pb->globals, pb->globals);
  if (!r)
    goto fail;
  Py_DECREF(r);
  if (py_str(pb->globals, "UNIQUE", pb->unique, sizeof pb->unique) != 0) {
    if (py_str(pb->globals, "WHY", why, WHY_LEN) != 0)
      snprintf(why, WHY_LEN, "no unique()");
    return 1;
  }
  pb->collect = PyDict_GetItemString(pb->globals, "collect");
  pb->prefill = PyDict_GetItemString(pb->globals, "prefill");
  pb->totals = PyDict_GetItemString(pb->globals, "totals");
  r = PyObject_CallFunction(PyDict_GetItemString(pb->globals, "where"), NULL);
  if (!r || !PyUnicode_Check(r))
    goto fail;
  snprintf(pb->where, sizeof pb->where, "%s", PyUnicode_AsUTF8(r));
  Py_DECREF(r);
  PyObject *as_ids = PyDict_GetItemString(pb->globals, "as_ids");
  for (int t = 0; t < 2; t++)
    for (int b = 0; b < BUFFERS; b++) {
      const char *raw = t == 0 ? (const char *)b32[b] : (const char *)b64[b];
      size_t size = t == 0 ? sizeof(int32_t) : sizeof(int64_t);
      PyObject *bytes = PyBytes_FromStringAndSize(raw, (Py_ssize_t)(size * IDS_PER_CALL));
      if (!bytes)
        goto fail;
      pb->ids[t][b] =
          PyObject_CallFunction(as_ids, "Osi", bytes, t == 0 ? "int32" : "int64", TOPK);
      Py_DECREF(bytes);
      if (!pb->ids[t][b])
        goto fail;
    }
  return 0;
fail:
  PyErr_Print();
  return -1;
}

/* Runs `calls` upstream calls on the type's arrays, checks the file they leave, and returns ids
 * per second (0 on failure, said on stderr). */
static double bench_python(struct py_base *pb, const void *const *bufs, eplb_id_type type,
                           int calls) {
  char dir[] = "/tmp/eplb_bench_py.XXXXXX", path[64];
  if (!mkdtemp(dir))
    return 0;
  snprintf(path, sizeof path, "%s/eplb_token_collects_%d.json", dir, PY_RANK);
  PyObject *save_path = PyUnicode_FromString(dir), *r = NULL;
  double rate = 0, t0 = 0, t = 0;
  PyObject *const *ids = pb->ids[type == EPLB_ID_INT32 ? 0 : 1];
  if (!save_path)
    goto out;
  r = PyObject_CallFunction(pb->prefill, "Oiii", save_path, PY_RANK, LAYERS, EXPERTS);
  if (!r)
    goto out;
  Py_CLEAR(r);
  t0 = now();
  for (int i = 0; i < calls; i++) {
    r = PyObject_CallFunction(pb->collect, "OiiOi", save_path, PY_RANK, i % LAYERS,
                              ids[i % BUFFERS], EXPERTS);
    if (!r)
      goto out;
    Py_CLEAR(r);
  }
  t = now() - t0;
  /* Prove the work: the file must hold exactly the counts of the calls made. */
  r = PyObject_CallFunction(pb->totals, "Oiii", save_path, PY_RANK, LAYERS, EXPERTS);
  if (!r || !PyList_Check(r) || PyList_Size(r) != LAYERS * EXPERTS)
    goto out;
  uint64_t *exp = malloc(sizeof(uint64_t) * LAYERS * EXPERTS);
  if (!exp)
    goto out;
  expected_counts(bufs, type, calls, exp);
  int bad = -1;
  for (int i = 0; i < LAYERS * EXPERTS && bad < 0; i++)
    if (PyLong_AsUnsignedLongLong(PyList_GET_ITEM(r, i)) != exp[i])
      bad = i;
  if (bad >= 0)
    fprintf(stderr, "bench_collect: Python baseline's file: layer %d expert %d = %llu, want %llu\n",
            bad / EXPERTS, bad % EXPERTS,
            (unsigned long long)PyLong_AsUnsignedLongLong(PyList_GET_ITEM(r, bad)),
            (unsigned long long)exp[bad]);
  else
    rate = (double)calls * IDS_PER_CALL / t;
  free(exp);
out:
  if (PyErr_Occurred())
    PyErr_Print();
  Py_XDECREF(r);
  Py_XDECREF(save_path);
  unlink(path);
  rmdir(dir);
  return rate;
}

/* Frees the arrays and ends the interpreter. */
static void py_stop(struct py_base *pb) {
  for (int t = 0; t < 2; t++)
    for (int b = 0; b < BUFFERS; b++)
      Py_XDECREF(pb->ids[t][b]);
  Py_XDECREF(pb->globals);
  Py_FinalizeEx();
}

#endif /* EPLB_BENCH_PYTHON */

/* The median of n values (sorts them). */
static double median(double *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Medians of the measures, ids per second. */
struct figures {
  double ours32, ours64;  /* eplb_collector_record */
  double py32, py64;      /* upstream's Python code path (0 when it did not run) */
  double c_indent, c_compact; /* the C re-implementations */
};

/* "met" or "NOT met" for a rate against the goal's absolute floor and ratio to a baseline. */
static const char *verdict(double ours, double base) {
  return ours >= GOAL_IDS_PER_S && ours / base >= GOAL_RATIO ? "met" : "NOT met";
}

/* Prints one ratio, ours over a baseline, aligned with the figures. */
static void print_ratio(const char *what, double ours, double base) {
  printf("  ratio %-47s %10.0fx\n", what, ours / base);
}

/* Prints the figures, the ratios to every baseline and the goal's verdicts. */
static void report(const struct figures *f, int calls, const char *py_why) {
  int py = f->py32 > 0;
  printf("  medians of %d measures, ids per second:\n", MEASURES);
  printf("  eplb_collector_record int32                           %10.4g\n", f->ours32);
  printf("  eplb_collector_record int64                           %10.4g\n", f->ours64);
  if (py) {
    printf("  baseline 1, upstream's Python code path, int32 ids    %10.4g  (%d calls a measure)\n",
           f->py32, calls);
    printf("  baseline 1, upstream's Python code path, int64 ids    %10.4g\n", f->py64);
  } else {
    printf("  baseline 1, upstream's Python code path: not run: %s\n", py_why);
  }
  printf("  baseline 2, C re-implementation, indent 2 (a floor)   %10.4g  (%d calls a measure)\n",
         f->c_indent, calls);
  printf("  baseline 3, C, compact JSON (cheaper than upstream)   %10.4g\n", f->c_compact);
  if (py) {
    print_ratio("int32 / baseline 1 (Python, int32)", f->ours32, f->py32);
    print_ratio("int64 / baseline 1 (Python, int64)", f->ours64, f->py64);
  }
  print_ratio("int32 / baseline 2 (C, indent 2)", f->ours32, f->c_indent);
  print_ratio("int64 / baseline 2 (C, indent 2)", f->ours64, f->c_indent);
  print_ratio("int32 / baseline 3 (C, compact)", f->ours32, f->c_compact);
  print_ratio("int64 / baseline 3 (C, compact)", f->ours64, f->c_compact);
  if (py)
    printf("  goal (>= %.0e ids/s and >= %.0fx the upstream baseline, judged against baseline 1, "
           "upstream's Python): int32 %s, int64 %s\n",
           GOAL_IDS_PER_S, GOAL_RATIO, verdict(f->ours32, f->py32), verdict(f->ours64, f->py64));
  else
    printf("  goal (>= %.0e ids/s and >= %.0fx the upstream baseline): not judged against "
           "upstream's Python, which did not run\n",
           GOAL_IDS_PER_S, GOAL_RATIO);
  printf("  vs C re-implementation (baseline 2, an honest floor): int32 %s (%.0fx), "
         "int64 %s (%.0fx)\n",
         verdict(f->ours32, f->c_indent), f->ours32 / f->c_indent, verdict(f->ours64, f->c_indent),
         f->ours64 / f->c_indent);
}

/* Measures ours (int32, int64) and the baselines on the same ids, interleaved so that a busy
 * moment of the machine hits all of them, and prints medians and ratios. */
int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : DEFAULT_SECONDS;
  int baseline_calls = argc > 2 ? atoi(argv[2]) : DEFAULT_BASELINE_CALLS;
  if (seconds <= 0 || baseline_calls < 1) {
    fprintf(stderr, "usage: bench_collect [SECONDS_PER_MEASURE] [BASELINE_CALLS]\n");
    return 2;
  }
  static int32_t ids32[BUFFERS][IDS_PER_CALL];
  static int64_t ids64[BUFFERS][IDS_PER_CALL];
  const void *b32[BUFFERS], *b64[BUFFERS];
  const int32_t *base[BUFFERS];
  uint64_t s = 2024;
  for (int b = 0; b < BUFFERS; b++) {
    make_ids(ids32[b], &s);
    for (int i = 0; i < IDS_PER_CALL; i++)
      ids64[b][i] = ids32[b][i];
    b32[b] = ids32[b];
    b64[b] = ids64[b];
    base[b] = ids32[b];
  }
  printf("bench_collect: %d layers x %d experts, top-%d, %d tokens per call (%d ids), one core\n",
         LAYERS, EXPERTS, TOPK, TOKENS, IDS_PER_CALL);
  char py_why[WHY_LEN] = "not built (CPython's embedding library, libpython3-dev, was missing at "
                         "build time: make bench-deps)";
  int py = 0; /* 1 when the Python baseline runs */
#ifdef EPLB_BENCH_PYTHON
  struct py_base pb = {0};
  int st = py_start(&pb, b32, b64, py_why); /* start and imports: not timed */
  if (st < 0) {
    fprintf(stderr, "bench_collect: the Python baseline failed to set up\n");
    return 1;
  }
  py = st == 0;
  if (py)
    printf("  baseline 1 runs in CPython %s, counting with %s\n", pb.where, pb.unique);
#endif
  double r32[MEASURES], r64[MEASURES], rb[MEASURES], rc[MEASURES];
  double rp32[MEASURES] = {0}, rp64[MEASURES] = {0};
  uint64_t n;
  for (int m = 0; m < MEASURES; m++) {
    r32[m] = bench_ours(b32, EPLB_ID_INT32, seconds, &n);
    r64[m] = bench_ours(b64, EPLB_ID_INT64, seconds, &n);
#ifdef EPLB_BENCH_PYTHON
    if (py) {
      rp32[m] = bench_python(&pb, b32, EPLB_ID_INT32, baseline_calls);
      rp64[m] = bench_python(&pb, b64, EPLB_ID_INT64, baseline_calls);
    }
#endif
    rb[m] = bench_baseline(base, baseline_calls, JSON_INDENT(2));
    rc[m] = bench_baseline(base, baseline_calls, JSON_COMPACT);
    if (r32[m] <= 0 || r64[m] <= 0 || rb[m] <= 0 || rc[m] <= 0 ||
        (py && (rp32[m] <= 0 || rp64[m] <= 0))) {
      const char *e = eplb_last_error();
      fprintf(stderr, "bench_collect: a measure failed%s%s\n", *e ? ": " : " (see above)", e);
      return 1;
    }
  }
#ifdef EPLB_BENCH_PYTHON
  py_stop(&pb);
#endif
  struct figures f = {median(r32, MEASURES), median(r64, MEASURES), median(rp32, MEASURES),
                      median(rp64, MEASURES), median(rb, MEASURES), median(rc, MEASURES)};
  report(&f, baseline_calls, py_why);
  return 0;
}
