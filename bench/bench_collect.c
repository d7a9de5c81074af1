/* bench_collect.c - record throughput of the collector against the upstream way of counting.
 *
 * Shape of the issue: 64 layers x 256 experts, top-8, 4096 tokens per call (32768 ids a call),
 * int32 and int64 ids, one core. The baseline is what the upstream framework does on every
 * forward of every MoE layer (MindSpeed-RL's vLLM adapter, fused_moe.py, per-rank
 * eplb_token_collects_<rank>.json): read the rank's JSON file of counts, add the call's counts,
 * write the file back as json.dump(..., indent=2) writes it. Here it is written in C with jansson
 * (JSON_INDENT(2)), which is faster than upstream's Python, so the ratio is a floor. A second,
 * cheaper baseline writes compact JSON (no indent), to show how much the ratio owes to the layout.
 * Both run in this process; the figures are ids per second (medians) and ratios of ours to each.
 *
 * usage: bench_collect [SECONDS_PER_MEASURE] [BASELINE_CALLS]   (defaults 0.5 and 128)
 * Ours: median of MEASURES measures of SECONDS each. Each baseline: median of MEASURES runs of
 * BASELINE_CALLS calls. The baseline file grows as its counts do, as upstream's does.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "eplb.h"
#include "eplb_rand.h"

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

/* Measures ours (int32, int64) and the two baselines on the same ids, interleaved so that a busy
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
  double r32[MEASURES], r64[MEASURES], rb[MEASURES], rc[MEASURES];
  uint64_t n;
  for (int m = 0; m < MEASURES; m++) {
    r32[m] = bench_ours(b32, EPLB_ID_INT32, seconds, &n);
    r64[m] = bench_ours(b64, EPLB_ID_INT64, seconds, &n);
    rb[m] = bench_baseline(base, baseline_calls, JSON_INDENT(2));
    rc[m] = bench_baseline(base, baseline_calls, JSON_COMPACT);
    if (r32[m] <= 0 || r64[m] <= 0 || rb[m] <= 0 || rc[m] <= 0) {
      fprintf(stderr, "bench_collect: a measure failed: %s\n", eplb_last_error());
      return 1;
    }
  }
  double m32 = median(r32, MEASURES), m64 = median(r64, MEASURES);
  double mb = median(rb, MEASURES), mc = median(rc, MEASURES);
  printf("  medians of %d measures, ids per second:\n", MEASURES);
  printf("  eplb_collector_record int32                 %10.4g\n", m32);
  printf("  eplb_collector_record int64                 %10.4g\n", m64);
  printf("  baseline, upstream's file (indent 2)        %10.4g  (%d calls a measure)\n", mb,
         baseline_calls);
  printf("  baseline, compact JSON (cheaper than upstream) %7.4g\n", mc);
  printf("  ratio int32 / upstream baseline             %10.0fx\n", m32 / mb);
  printf("  ratio int64 / upstream baseline             %10.0fx\n", m64 / mb);
  printf("  ratio int32 / compact baseline              %10.0fx\n", m32 / mc);
  printf("  ratio int64 / compact baseline              %10.0fx\n", m64 / mc);
  printf("  goal (>= 5e8 ids/s and >= 1000x the upstream baseline): int32 %s, int64 %s\n",
         m32 >= 5e8 && m32 / mb >= 1000 ? "met" : "NOT met",
         m64 >= 5e8 && m64 / mb >= 1000 ? "met" : "NOT met");
  return 0;
}
