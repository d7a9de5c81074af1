/* bench_mpi_migrate.c - step 3 benchmark, two parts.
 *
 * 1. Bandwidth (all ranks): eplb_mpi_migrate() moving every slot of every rank to the previous
 *    rank (the initial layout rotated by one device: each rank sends k experts per layer and
 *    receives k; in place every slot is both sent and overwritten, the hardest case) against a
 *    plain MPI_Sendrecv exchange of the same message size and the same number of messages, in
 *    the same run: each rank sends to the previous rank and receives from the next (a ping-pong
 *    both ways with 2 ranks). Variants: out of place and in place, each as a one-shot call
 *    (eplb_mpi_migrate: duplicates the communicator and allocates staging every call) and on a
 *    reused workspace (eplb_mpi_migrate_ws). Every repetition times all variants one after the
 *    other (so load from other processes hits all alike); time = the slowest rank's; figures
 *    are medians over the repetitions, after one warm-up. Per-rank GB/s = bytes a rank receives
 *    / time; ratio = variant GB/s / Sendrecv GB/s; goal: ratio >= 0.70 for every variant.
 *    Also shown: MPI_Sendrecv_replace, the plain MPI way in place, against which in place is
 *    fairer (Sendrecv re-sends buffers nobody writes, which stay clean in the caches; in place
 *    writes every buffer it sends next, at any size that fits in the caches this costs).
 * 2. Copies (rank 0, no communication): a re-plan from the initial layout (k = E/G) to the map
 *    eplb_plan() computes (deepseek policy) for real counts from examples/ and ../shared/data,
 *    and for the DeepSeek-V3-like golden case: copies our transfer plan moves over the network
 *    against the upstream way (every target slot fetched from the expert's home rank, local
 *    ones included), and the most copies one rank sends; then the same with the new map's
 *    devices renumbered (eplb_placement_relabel, nodes kept whole, balance unchanged); and, for
 *    a re-balance in place (that map -> the map of the counts with each layer's loads reversed,
 *    same slot count), the most slots one rank stages: a receive into any slot whose old content
 *    is still read (the simple rule) against plan->staged (one per cycle of waits).
 *
 * Usage: mpirun -np G bench_mpi_migrate [reps]   (default 15) */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eplb_mpi.h"

#define DEFAULT_REPS 15
#define LAYERS 4           /* layers moved in the bandwidth part */
#define SLOTS_PER_RANK 4   /* k: experts per rank in the bandwidth part */
#define GOAL_RATIO 0.70    /* the goal: migrate / Sendrecv */
#define GB 1e9
#define KIB 1024
static const size_t MSG_BYTES[] = {64 * KIB, 1024 * KIB, 4096 * KIB};
#define N_MSG (sizeof MSG_BYTES / sizeof MSG_BYTES[0])

static int g_rank, g_size;

/* ---- part 1: bandwidth ---- */

/* What is timed. */
enum variant { V_SENDRECV, V_OUT, V_IN, V_OUT_WS, V_IN_WS, V_REPLACE, N_VARIANTS };
static const char *const VARIANT_NAMES[N_VARIANTS] = {"Sendrecv", "out", "in place", "out ws",
                                                      "in place ws", "S_replace"};

/* Buffers and plan of one message size. */
typedef struct bw_case {
  const eplb_transfer *plan;
  eplb_migrate_ws *ws;
  unsigned char *src[LAYERS], *dst[LAYERS];
  size_t bytes;
} bw_case;

/* The baseline: LAYERS * k MPI_Sendrecv calls of `bytes`, to the previous rank and from the
 * next one (the migration's pattern). */
static int run_sendrecv(const bw_case *c) {
  int to = (g_rank + g_size - 1) % g_size, from = (g_rank + 1) % g_size;
  for (int l = 0; l < LAYERS; l++)
    for (int i = 0; i < SLOTS_PER_RANK; i++)
      if (MPI_Sendrecv(c->src[l] + (size_t)i * c->bytes, (int)c->bytes, MPI_BYTE, to, i,
                       c->dst[l] + (size_t)i * c->bytes, (int)c->bytes, MPI_BYTE, from, i,
                       MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return 1;
  return 0;
}

/* A plain MPI in-place baseline: the same exchange with MPI_Sendrecv_replace on src. */
static int run_replace(const bw_case *c) {
  int to = (g_rank + g_size - 1) % g_size, from = (g_rank + 1) % g_size;
  for (int l = 0; l < LAYERS; l++)
    for (int i = 0; i < SLOTS_PER_RANK; i++)
      if (MPI_Sendrecv_replace(c->src[l] + (size_t)i * c->bytes, (int)c->bytes, MPI_BYTE, to, i,
                               from, i, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
        return 1;
  return 0;
}

/* One run of variant v. In place, the data moves one device further each time, which costs
 * the same. @return 0 or 1 on a failure. */
static int run_variant(bw_case *c, enum variant v) {
  if (v == V_SENDRECV)
    return run_sendrecv(c);
  if (v == V_REPLACE)
    return run_replace(c);
  int in_place = v == V_IN || v == V_IN_WS;
  eplb_tensor t = {.src = (void *const *)c->src,
                   .dst = in_place ? NULL : (void *const *)c->dst,
                   .expert_bytes = c->bytes,
                   .src_stride = c->bytes,
                   .dst_stride = c->bytes};
  int rc = v == V_OUT_WS || v == V_IN_WS
               ? eplb_mpi_migrate_ws(c->ws, c->plan, &t, 1, NULL, NULL)
               : eplb_mpi_migrate(MPI_COMM_WORLD, c->plan, g_rank, &t, 1, NULL, NULL);
  if (rc && g_rank == 0)
    fprintf(stderr, "bench_mpi_migrate: %s\n", eplb_last_error());
  return rc != 0;
}

/* Compares doubles for qsort. */
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Times every variant `reps` times, interleaved, after one warm-up each; med[v] gets the
 * median of the slowest rank's seconds. @return 0 or 1 on a failure. */
static int time_variants(bw_case *c, int reps, double *med) {
  double *t = malloc((size_t)reps * N_VARIANTS * sizeof *t);
  if (!t)
    return 1;
  for (int r = -1; r < reps; r++)
    for (int v = 0; v < N_VARIANTS; v++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      int fail = run_variant(c, (enum variant)v), any = 0;
      double mine = MPI_Wtime() - t0, all = 0;
      MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      MPI_Allreduce(&fail, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      if (any) {
        free(t);
        return 1;
      }
      if (r >= 0)
        t[(size_t)v * reps + r] = all;
    }
  for (int v = 0; v < N_VARIANTS; v++) {
    double *tv = t + (size_t)v * reps;
    qsort(tv, (size_t)reps, sizeof *tv, cmp_double);
    med[v] = reps % 2 ? tv[reps / 2] : (tv[reps / 2 - 1] + tv[reps / 2]) / 2;
  }
  free(t);
  return 0;
}

/* Prints one message size's line: GB/s and ratio to Sendrecv of each variant, the goal check
 * over the eplb variants, and in place against MPI_Sendrecv_replace (plain MPI in place). */
static void print_line(size_t bytes, const double *med, size_t staging) {
  double moved = (double)LAYERS * SLOTS_PER_RANK * (double)bytes; /* received per rank */
  double base = moved / med[V_SENDRECV] / GB, worst = 1e30;
  printf("%8zu KiB %9.3f", bytes / KIB, base);
  for (int v = 1; v < N_VARIANTS; v++) {
    double bw = moved / med[v] / GB;
    if (v != V_REPLACE)
      worst = bw / base < worst ? bw / base : worst;
    printf(" %7.3f %5.2f", bw, bw / base);
  }
  printf(" %9zu %6.2f  %s (worst %.2f)\n", staging, med[V_REPLACE] / med[V_IN_WS],
         worst >= GOAL_RATIO ? "met" : "MISSED", worst);
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
  bw_case c = {.plan = plan};
  if (eplb_mpi_migrate_ws_create(MPI_COMM_WORLD, &c.ws))
    return 1;
  if (g_rank == 0)
    printf("== bandwidth: %d ranks, %d layers x %d experts per rank, all move to the previous "
           "rank; per-rank GB/s (ratio to Sendrecv), medians of %d; goal >= %.2f\n"
           "(ws = on a reused workspace; S_replace = MPI_Sendrecv_replace, plain MPI in place; "
           "staging = bytes per rank; ws/repl = in place ws against S_replace)\n"
           "%12s %9s %13s %13s %13s %13s %13s %9s %6s\n",
           g_size, LAYERS, k, reps, GOAL_RATIO, "message", VARIANT_NAMES[0], VARIANT_NAMES[1],
           VARIANT_NAMES[2], VARIANT_NAMES[3], VARIANT_NAMES[4], VARIANT_NAMES[5], "staging",
           "ws/repl");
  int fail = 0;
  for (size_t m = 0; m < N_MSG && !fail; m++) {
    size_t bytes = MSG_BYTES[m];
    c.bytes = bytes;
    for (int l = 0; l < LAYERS; l++) {
      c.src[l] = malloc((size_t)k * bytes);
      c.dst[l] = malloc((size_t)k * bytes);
      if (!c.src[l] || !c.dst[l])
        return 1;
      memset(c.src[l], l + 1, (size_t)k * bytes); /* touch the pages before timing */
      memset(c.dst[l], 0, (size_t)k * bytes);
    }
    double med[N_VARIANTS];
    fail = time_variants(&c, reps, med);
    size_t staging = eplb_mpi_migrate_ws_staging_bytes(c.ws);
    if (!fail && g_rank == 0)
      print_line(bytes, med, staging);
    for (int l = 0; l < LAYERS; l++)
      free(c.src[l]), free(c.dst[l]);
  }
  eplb_mpi_migrate_ws_free(c.ws);
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

/* The most copies one rank would stage in one layer moving in place by the simple rule: every
 * local copy and every receive into a slot whose old content is still read. */
static int32_t simple_staging(const eplb_transfer *plan) {
  int32_t G = plan->num_gpus, S = plan->to_slots / G, most = 0;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    const eplb_xfer *x = eplb_transfer_layer(plan, l);
    const uint8_t *needed = plan->needed + (size_t)l * plan->from_slots;
    for (int32_t d = 0; d < G; d++) {
      int32_t n = 0;
      for (int32_t s = d * S; s < (d + 1) * S; s++)
        n += x[s].kind == EPLB_XFER_LOCAL || (x[s].kind == EPLB_XFER_RECV && needed[s]);
      most = n > most ? n : most;
    }
  }
  return most;
}

/* Plans a re-balance in place: from `to` (the map of `loads`) to the map of the same counts
 * with each layer's loads reversed. @return 0 or a library error. */
static int plan_rebalance(eplb_loads *loads, const eplb_params *p, const eplb_placement *to,
                          eplb_transfer **out) {
  int32_t E = loads->num_experts;
  for (int32_t l = 0; l < loads->num_layers; l++)
    for (int32_t e = 0; e < E / 2; e++) {
      double t = loads->load[l * E + e];
      loads->load[l * E + e] = loads->load[l * E + E - 1 - e], loads->load[l * E + E - 1 - e] = t;
    }
  eplb_placement *to2 = NULL;
  int rc = eplb_plan(loads, p, &to2);
  if (!rc)
    rc = eplb_transfer_plan(to, to2, out);
  eplb_placement_free(to2);
  return rc;
}

/* Runs part 2 on rank 0. @return 0 or 1 on a failure. */
static int bench_copies(void) {
  printf("\n== copies: initial layout (k = E/G) -> deepseek plan; ours = copies over the "
         "network, upstream = every target slot fetched from the expert's home rank\n"
         "in place = most slots one rank stages in a layer re-balancing in place to the map of "
         "reversed loads: simple rule / plan->staged\n"
         "%-20s %14s %8s %9s %8s %6s %9s %11s %9s %8s %10s\n",
         "counts", "shape", "ours", "upstream", "ratio", "keeps", "max sent", "upstr. max",
         "relabel", "ratio", "in place");
  for (size_t i = 0; i < N_REPLANS; i++) {
    const replan *r = &REPLANS[i];
    eplb_loads *loads = NULL;
    eplb_placement *from = NULL, *to = NULL;
    eplb_transfer *plan = NULL, *re = NULL, *bal = NULL;
    eplb_params p;
    eplb_params_init(&p);
    p.num_replicas = r->replicas, p.num_groups = r->groups, p.num_nodes = r->nodes;
    p.num_gpus = r->gpus;
    p.policy = EPLB_POLICY_DEEPSEEK; /* the maps of the earlier figures */
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
    if (!rc)
      rc = plan_rebalance(loads, &p, to, &bal);
    if (rc) {
      fprintf(stderr, "bench_mpi_migrate: %s: %s\n", r->name, eplb_last_error());
      return 1;
    }
    const eplb_transfer_stats *s = &plan->stats;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d->%d/%d", to->num_layers, to->num_experts, r->replicas,
             r->gpus);
    char stage[32];
    snprintf(stage, sizeof stage, "%d / %d", simple_staging(bal), bal->stats.staging_slots);
    printf("%-20s %14s %8lld %9lld %8.3f %6lld %9lld %11lld %9lld %8.3f %10s\n", r->name, shape,
           (long long)s->receives, (long long)s->upstream_copies,
           (double)s->receives / (double)s->upstream_copies, (long long)s->keeps,
           (long long)s->max_sent, (long long)s->upstream_max_sent,
           (long long)re->stats.receives,
           (double)re->stats.receives / (double)s->upstream_copies, stage);
    eplb_transfer_free(plan), eplb_transfer_free(re), eplb_transfer_free(bal);
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
