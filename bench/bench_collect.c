/* bench_collect.c - record throughput of the collector against the upstream way of counting.
 *
 * Shape of the issue: 64 layers x 256 experts, top-8, 4096 tokens per call (32768 ids a call),
 * int32 and int64 ids, one core. The baseline is what the upstream framework does on every
 * forward of every MoE layer: read the rank's JSON file of counts, add the call's counts, write
 * the file back (jansson, plain write). Both run in this process; the figures are ids per second
 * and the ratio of ours to the baseline.
 *
 * usage: bench_collect [SECONDS_PER_MEASURE] [BASELINE_CALLS]   (defaults 1.0 and 256)
 * Ours is the best of 3 measures; the baseline file grows as its counts do, as upstream's does.
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
#define DEFAULT_SECONDS 1.0
#define DEFAULT_BASELINE_CALLS 256 /* 4 forwards of every layer */
#define REPEATS 3
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
static int write_zero_file(const char *path) {
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
  int rc = json_dump_file(root, path, 0);
  json_decref(root);
  return rc;
}

/* One upstream forward of one layer: read the file, add the call's counts, write it back. */
static int baseline_call(const char *path, int layer, const int32_t *ids) {
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
  int rc = row ? json_dump_file(root, path, 0) : -1;
  json_decref(root);
  return rc;
}

/* Runs `calls` baseline calls; returns ids per second. */
static double bench_baseline(const int32_t *const *bufs, int calls) {
  char path[] = "/tmp/eplb_bench_collect.XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return 0;
  close(fd);
  if (write_zero_file(path) != 0)
    return 0;
  double t0 = now();
  for (int i = 0; i < calls; i++)
    if (baseline_call(path, i % LAYERS, bufs[i % BUFFERS]) != 0) {
      unlink(path);
      return 0;
    }
  double t = now() - t0;
  unlink(path);
  return (double)calls * IDS_PER_CALL / t;
}

/* Measures ours (int32, int64) and the baseline on the same ids, and prints ids/s and ratios. */
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
  uint64_t n32 = 0, n64 = 0;
  double r32 = 0, r64 = 0;
  for (int rep = 0; rep < REPEATS; rep++) { /* best of REPEATS: the machine may be shared */
    double x = bench_ours(b32, EPLB_ID_INT32, seconds, &n32);
    double y = bench_ours(b64, EPLB_ID_INT64, seconds, &n64);
    r32 = x > r32 ? x : r32;
    r64 = y > r64 ? y : r64;
  }
  double rb = bench_baseline(base, baseline_calls);
  if (r32 <= 0 || r64 <= 0 || rb <= 0) {
    fprintf(stderr, "bench_collect: a measure failed: %s\n", eplb_last_error());
    return 1;
  }
  printf("  eplb_collector_record int32   %12.4g ids/s  (best of %d)\n", r32,
         REPEATS);
  printf("  eplb_collector_record int64   %12.4g ids/s  (best of %d)\n", r64,
         REPEATS);
  printf("  baseline read+add+write JSON  %12.4g ids/s  (%d calls)\n", rb, baseline_calls);
  printf("  ratio int32 / baseline        %12.0fx\n", r32 / rb);
  printf("  ratio int64 / baseline        %12.0fx\n", r64 / rb);
  printf("  goal: >= 5e8 ids/s and >= 1000x: int32 %s, int64 %s\n",
         r32 >= 5e8 && r32 / rb >= 1000 ? "met" : "NOT met",
         r64 >= 5e8 && r64 / rb >= 1000 ? "met" : "NOT met");
  return 0;
}
