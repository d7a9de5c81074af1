/* bench_plan.c - times eplb_plan() with the deepseek policy in-process (no JSON I/O) on seeded
 * synthetic lognormal loads, and prints each median against DeepSeek's eplb.py (torch 1.13 CPU,
 * figures from the issue, measured on this machine) and against the goal of 2 ms per plan.
 *
 * Usage: bench_plan [runs]   (default 51 timed runs per setting, after 5 warm-up runs) */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "eplb.h"
#include "core/eplb_rand.h"

#define DEFAULT_RUNS 51
#define WARMUP_RUNS 5
#define SEED 0x5eedULL
/* Lognormal token counts: exp(N(mu, sigma)). */
#define LOG_MU 8.0
#define LOG_SIGMA 1.0
/* The goal for one whole plan of the first setting, in ms. */
#define GOAL_MS 2.0
#define MS_PER_S 1e3
#define NS_PER_MS 1e6
#define PI 3.14159265358979323846

/* One benchmark setting and the reference's time for it (0: no figure). */
typedef struct setting {
  int32_t layers, experts, replicas, groups, nodes, gpus;
  double ref_s; /* DeepSeek eplb.py, torch 1.13 CPU, seconds per plan */
} setting;

static const setting SETTINGS[] = {
    {58, 256, 288, 8, 4, 32, 0.21},
    {64, 256, 320, 8, 8, 64, 0},
    {58, 256, 512, 8, 32, 256, 3.9},
};

/* ---- data ---- */

/* The next value of a splitmix64 generator. */
static uint64_t rng_next(uint64_t *state) {
  return eplb__splitmix64(state);
}

/* A uniform double in (0, 1]. */
static double rng_unit(uint64_t *state) {
  return ((double)(rng_next(state) >> 11) + 1) * 0x1p-53;
}

/* Fills an L x E load matrix with integer lognormal counts (Box-Muller normals). */
static eplb_loads *make_loads(int32_t L, int32_t E, uint64_t *rs) {
  eplb_loads *x = NULL;
  if (eplb_loads_create(L, E, &x) != 0)
    return NULL;
  for (size_t i = 0; i < (size_t)L * E; i++) {
    double z = sqrt(-2 * log(rng_unit(rs))) * cos(2 * PI * rng_unit(rs));
    int64_t c = (int64_t)llround(exp(LOG_MU + LOG_SIGMA * z));
    x->count[i] = c;
    x->load[i] = (double)c;
  }
  return x;
}

/* ---- timing ---- */

/* Monotonic time in ms. */
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * MS_PER_S + (double)ts.tv_nsec / NS_PER_MS;
}

/* qsort order of doubles, ascending. */
static int dbl_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median time of `runs` plans after the warm-up, in ms; negative when planning fails. */
static double time_plan(const eplb_loads *x, const eplb_params *pr, int runs, double *t) {
  for (int i = 0; i < WARMUP_RUNS + runs; i++) {
    eplb_placement *p = NULL;
    double t0 = now_ms();
    int rc = eplb_plan(x, pr, &p);
    double t1 = now_ms();
    eplb_placement_free(p);
    if (rc) {
      fprintf(stderr, "bench_plan: %s\n", eplb_last_error());
      return -1;
    }
    if (i >= WARMUP_RUNS)
      t[i - WARMUP_RUNS] = t1 - t0;
  }
  qsort(t, (size_t)runs, sizeof *t, dbl_cmp);
  return t[runs / 2];
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : DEFAULT_RUNS;
  if (runs < 1)
    runs = DEFAULT_RUNS;
  double *t = malloc((size_t)runs * sizeof *t);
  if (!t)
    return 1;
  printf("eplb_plan, policy deepseek: median of %d runs after %d warm-up; lognormal loads "
         "(mu %.1f, sigma %.1f, seed %#llx)\n",
         runs, WARMUP_RUNS, LOG_MU, LOG_SIGMA, (unsigned long long)SEED);
  printf("%-28s %-7s %-6s %10s %14s %12s\n", "setting", "mode", "dups", "ms/plan",
         "vs eplb.py", "goal 2 ms");
  int goal_ok = 1;
  for (size_t s = 0; s < sizeof SETTINGS / sizeof *SETTINGS; s++) {
    const setting *c = &SETTINGS[s];
    uint64_t rs = SEED + s;
    eplb_loads *x = make_loads(c->layers, c->experts, &rs);
    if (!x)
      return 1;
    for (int dups = 1; dups >= 0; dups--) {
      eplb_params pr;
      eplb_params_init(&pr);
      pr.num_replicas = c->replicas;
      pr.num_groups = c->groups;
      pr.num_nodes = c->nodes;
      pr.num_gpus = c->gpus;
      pr.policy = EPLB_POLICY_DEEPSEEK;
      pr.allow_duplicates = dups;
      double ms = time_plan(x, &pr, runs, t);
      if (ms < 0)
        return 1;
      char name[64], ratio[32], goal[32];
      snprintf(name, sizeof name, "%dx%d R%d K%d N%d G%d", c->layers, c->experts, c->replicas,
               c->groups, c->nodes, c->gpus);
      if (c->ref_s > 0)
        snprintf(ratio, sizeof ratio, "%.0fx faster", c->ref_s * MS_PER_S / ms);
      else
        snprintf(ratio, sizeof ratio, "n/a");
      if (s == 0) {
        snprintf(goal, sizeof goal, "%.2fx %s", GOAL_MS / ms, ms <= GOAL_MS ? "PASS" : "FAIL");
        goal_ok &= ms <= GOAL_MS;
      } else {
        snprintf(goal, sizeof goal, "(%.2fx)", GOAL_MS / ms);
      }
      printf("%-28s %-7s %-6s %10.3f %14s %12s\n", name,
             eplb_params_mode(&pr) == EPLB_MODE_HIERARCHICAL ? "hier" : "global",
             dups ? "exact" : "nodup", ms, ratio, goal);
    }
    eplb_loads_free(x);
  }
  printf("reference eplb.py (torch 1.13 CPU, this machine): 0.21 s (setting 1), 3.9 s "
         "(setting 3), no figure for setting 2\n");
  printf("goal: <= %.1f ms per whole plan for 58x256 R288 K8 N4 G32 (both modes): %s\n", GOAL_MS,
         goal_ok ? "MET" : "NOT MET");
  free(t);
  return 0;
}
