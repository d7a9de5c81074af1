/* bench_mpi_migrate.c - step 3 benchmark, two parts.
 *
 * 1. Bandwidth (all ranks): eplb_mpi_migrate() moving every slot of every rank to the previous
 *    rank (the initial layout rotated by one device: each rank sends k experts per layer and
 *    receives k) against a plain MPI_Sendrecv ring of the same message size and the same number
 *    of messages, in the same run. Per-rank GB/s = bytes a rank receives / slowest rank's time;
 *    best of `reps` repetitions each. Goal: migrate >= 70% of MPI_Sendrecv.
 * 2. Copies (rank 0, no communication): a re-plan from the initial layout (k = E/G) to the map
 *    eplb_plan() computes (deepseek policy) for real counts from examples/ and ../shared/data,
 *    and for the DeepSeek-V3-like golden case: copies our transfer plan moves over the network
 *    against the upstream way (every target slot fetched from the expert's home rank, local
 *    ones included), and the most copies one rank sends; then the same with the new map's
 *    devices renumbered (eplb_placement_relabel, nodes kept whole, balance unchanged).
 *
 * Usage: mpirun -np G bench_mpi_migrate [reps]   (default 5) */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eplb_mpi.h"

#define DEFAULT_REPS 5
#define LAYERS 4           /* layers moved in the bandwidth part */
#define SLOTS_PER_RANK 4   /* k: experts per rank in the bandwidth part */
#define GOAL_RATIO 0.70    /* the goal: migrate / Sendrecv */
#define GB 1e9
#define KIB 1024
static const size_t MSG_BYTES[] = {64 * KIB, 1024 * KIB, 4096 * KIB};
#define N_MSG (sizeof MSG_BYTES / sizeof MSG_BYTES[0])

static int g_rank, g_size;

/* ---- part 1: bandwidth ---- */

/* The slowest rank's time of `secs`. */
static double slowest(double secs) {
  double all = 0;
  MPI_Allreduce(&secs, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

/* Times the baseline: LAYERS * k MPI_Sendrecv calls of `bytes`, to the previous rank and from
 * the next one (the migration's pattern). @return the best time over reps. */
static double time_sendrecv(unsigned char *const *src, unsigned char *const *dst, size_t bytes,
                            int reps) {
  int to = (g_rank + g_size - 1) % g_size, from = (g_rank + 1) % g_size;
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int l = 0; l < LAYERS; l++)
      for (int i = 0; i < SLOTS_PER_RANK; i++)
        MPI_Sendrecv(src[l] + (size_t)i * bytes, (int)bytes, MPI_BYTE, to, i,
                     dst[l] + (size_t)i * bytes, (int)bytes, MPI_BYTE, from, i, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
    double t = slowest(MPI_Wtime() - t0);
    best = t < best ? t : best;
  }
  return best;
}

/* Times eplb_mpi_migrate of `plan` (in place when dst is NULL). @return the best time, or a
 * negative value when the migration failed. In place, the data moves one device further on
 * every repetition, which costs the same. */
static double time_migrate(const eplb_transfer *plan, unsigned char **src, unsigned char **dst,
                           size_t bytes, int reps) {
  eplb_tensor t = {.src = (void *const *)src, .dst = (void *const *)dst, .expert_bytes = bytes,
                   .src_stride = bytes, .dst_stride = bytes};
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    int rc = eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, &t, 1, NULL, NULL);
    double t1 = slowest(MPI_Wtime() - t0);
    if (rc) {
      if (g_rank == 0)
        fprintf(stderr, "bench_mpi_migrate: %s\n", eplb_last_error());
      return -1;
    }
    best = t1 < best ? t1 : best;
  }
  return best;
}

/* Runs part 1 for each message size. @return 0 or 1 on a failure. */
static int bench_bandwidth(int reps) {
  int32_t k = SLOTS_PER_RANK, E = g_size * k, R = E;
  eplb_placement *from = NULL, *to = NULL;
  eplb_transfer *plan = NULL;
  if (eplb_placement_initial(LAYERS, E, g_size, k, &from) || eplb_placement_clone(from, &to))
    return 1;
  for (int32_t l = 0; l < LAYERS; l++) /* rank d gets rank d+1's experts */
    for (int32_t s = 0; s < R; s++)
      to->phy2log[l * R + s] = from->phy2log[l * R + (s + k) % R];
  if (eplb_placement_build_index(to) || eplb_transfer_plan(from, to, &plan))
    return 1;
  if (g_rank == 0)
    printf("== bandwidth: %d ranks, %d layers x %d experts per rank, all move to the previous "
           "rank; per-rank GB/s, best of %d\n"
           "%12s %12s %12s %8s %12s %8s %s\n",
           g_size, LAYERS, k, reps, "message", "Sendrecv", "migrate", "ratio", "in place",
           "ratio", "goal (out of place)");
  int fail = 0;
  for (size_t m = 0; m < N_MSG && !fail; m++) {
    size_t bytes = MSG_BYTES[m];
    unsigned char *src[LAYERS], *dst[LAYERS];
    for (int l = 0; l < LAYERS; l++) {
      src[l] = malloc((size_t)k * bytes);
      dst[l] = malloc((size_t)k * bytes);
      if (!src[l] || !dst[l])
        return 1;
      memset(src[l], l + 1, (size_t)k * bytes); /* touch the pages before timing */
      memset(dst[l], 0, (size_t)k * bytes);
    }
    double moved = (double)LAYERS * k * (double)bytes; /* received per rank */
    double t_sr = time_sendrecv(src, dst, bytes, reps);
    double t_out = time_migrate(plan, src, dst, bytes, reps);
    double t_in = time_migrate(plan, src, NULL, bytes, reps);
    fail = t_out < 0 || t_in < 0;
    if (!fail && g_rank == 0) {
      double bw_sr = moved / t_sr / GB, bw_out = moved / t_out / GB, bw_in = moved / t_in / GB;
      printf("%10zu B %12.3f %12.3f %8.2f %12.3f %8.2f %s\n", bytes, bw_sr, bw_out,
             bw_out / bw_sr, bw_in, bw_in / bw_sr,
             bw_out / bw_sr >= GOAL_RATIO ? "met (>= 0.70)" : "MISSED (< 0.70)");
    }
    for (int l = 0; l < LAYERS; l++)
      free(src[l]), free(dst[l]);
  }
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
  return fail;
}

/* ---- part 2: copies against the upstream way ---- */

/* One re-plan: counts from `path` (or the "loads" of a golden file), planned with these sizes. */
typedef struct replan {
  const char *name;
  const char *path;  /* relative to the source tree */
  int golden;        /* 1: a golden file whose "loads" member holds the counts */
  int32_t replicas, groups, nodes, gpus;
} replan;

static const replan REPLANS[] = {
    {"examples (OLMoE C4)", "examples/token_collects_all.json", 0, 80, 8, 2, 8},
    {"OLMoE github", "../shared/data/olmoe/olmoe_github.json", 0, 80, 8, 2, 8},
    {"OLMoE wikipedia", "../shared/data/olmoe/olmoe_wikipedia.json", 0, 96, 8, 2, 16},
    {"Mixtral arxiv", "../shared/data/olmoe/mixtral_arxiv.json", 0, 16, 1, 1, 8},
    {"DeepSeek-V3-like", "../shared/golden/deepseek/dsv3_like_58x256_r288_g8_n4_gpu32.json", 1,
     288, 8, 4, 32},
};
#define N_REPLANS (sizeof REPLANS / sizeof REPLANS[0])

/* Reads the counts of one re-plan. @return 0 or a library error. */
static int read_loads(const replan *r, eplb_loads **out) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", EPLB_SOURCE_DIR, r->path);
  if (!r->golden)
    return eplb_loads_read_file(path, 0, out);
  json_error_t err;
  json_t *doc = json_load_file(path, 0, &err);
  char *text = doc ? json_dumps(json_object_get(doc, "loads"), JSON_COMPACT) : NULL;
  int rc = text ? eplb_loads_parse(text, strlen(text), path, 0, out) : EPLB_EIO;
  free(text);
  json_decref(doc);
  return rc;
}

/* Runs part 2 on rank 0. @return 0 or 1 on a failure. */
static int bench_copies(void) {
  printf("\n== copies: initial layout (k = E/G) -> deepseek plan; ours = copies over the "
         "network, upstream = every target slot fetched from the expert's home rank\n"
         "%-20s %14s %8s %9s %8s %6s %9s %11s %9s %8s\n",
         "counts", "shape", "ours", "upstream", "ratio", "keeps", "max sent", "upstr. max",
         "relabel", "ratio");
  for (size_t i = 0; i < N_REPLANS; i++) {
    const replan *r = &REPLANS[i];
    eplb_loads *loads = NULL;
    eplb_placement *from = NULL, *to = NULL;
    eplb_transfer *plan = NULL, *re = NULL;
    eplb_params p;
    eplb_params_init(&p);
    p.num_replicas = r->replicas, p.num_groups = r->groups, p.num_nodes = r->nodes;
    p.num_gpus = r->gpus;
    eplb_transfer_opts o;
    eplb_transfer_opts_init(&o);
    o.gpus_per_node = r->gpus / r->nodes;
    int rc = read_loads(r, &loads);
    if (!rc)
      rc = eplb_plan(loads, &p, &to);
    if (!rc)
      rc = eplb_placement_initial(to->num_layers, to->num_experts, r->gpus,
                                  to->num_experts / r->gpus, &from);
    if (!rc) {
      memcpy(from->layer_ids, to->layer_ids, (size_t)to->num_layers * sizeof *to->layer_ids);
      rc = eplb_transfer_plan_ex(from, to, &o, &plan);
    }
    o.relabel = 1;
    if (!rc)
      rc = eplb_transfer_plan_ex(from, to, &o, &re);
    if (rc) {
      fprintf(stderr, "bench_mpi_migrate: %s: %s\n", r->name, eplb_last_error());
      return 1;
    }
    const eplb_transfer_stats *s = &plan->stats;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d->%d/%d", to->num_layers, to->num_experts, r->replicas,
             r->gpus);
    printf("%-20s %14s %8lld %9lld %8.3f %6lld %9lld %11lld %9lld %8.3f\n", r->name, shape,
           (long long)s->receives, (long long)s->upstream_copies,
           (double)s->receives / (double)s->upstream_copies, (long long)s->keeps,
           (long long)s->max_sent, (long long)s->upstream_max_sent,
           (long long)re->stats.receives,
           (double)re->stats.receives / (double)s->upstream_copies);
    eplb_transfer_free(plan), eplb_transfer_free(re);
    eplb_placement_free(from), eplb_placement_free(to);
    eplb_loads_free(loads);
  }
  return 0;
}

/* Runs part 1 on every rank, then part 2 on rank 0. */
int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  int reps = argc > 1 ? atoi(argv[1]) : DEFAULT_REPS;
  if (reps < 1)
    reps = DEFAULT_REPS;
  int fail = g_size < 2;
  if (fail && g_rank == 0)
    fprintf(stderr, "bench_mpi_migrate: run with mpirun -np 2 or more\n");
  if (!fail)
    fail = bench_bandwidth(reps);
  if (!fail && g_rank == 0)
    fail = bench_copies();
  MPI_Finalize();
  return fail;
}
