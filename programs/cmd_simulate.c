/* cmd_simulate.c - `mpirun -np R eplb simulate ...`: a synthetic MoE router on every rank, counted
 * by the collector and gathered over MPI into the file the config names (step 1, end to end).
 * MPI is started here only, so the other commands run without mpirun. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eplb_mpi.h"

#define CMD "simulate"
#define ROOT 0
#define DEFAULT_SKEW 1.0
#define MAX_SKEW 10.0
#define MAX_LAYERS 100000
#define MAX_EXPERTS 1000000
#define MAX_TOPK 1024
#define MAX_TOKENS (1 << 24)
#define MAX_STEPS 1000000000
#define MAX_IDS_PER_CALL ((int64_t)1 << 28) /* tokens x topk: 2 GiB of int64 ids */
#define MAX_REDRAWS 64   /* draws of an already chosen expert before the exact fallback */
#define RANK_TAG "{rank}" /* replaced by the rank in --dump-local */
#define TWO_PI 6.283185307179586

/* Prints the help of `eplb simulate` to f. */
static void simulate_usage(FILE *f) {
  fprintf(f,
          "usage: mpirun -np R eplb simulate --config CFG.yaml --layers L --experts E --topk K\n"
          "                                  --tokens T --steps S --seed X [--skew SIGMA]\n"
          "                                  [--dump-local FILE]\n"
          "\n"
          "Every rank runs a synthetic MoE router: per layer a skewed expert popularity\n"
          "(lognormal with SIGMA, the same on every rank, drawn from the seed), and per step T\n"
          "tokens, each routed to K distinct experts drawn by popularity (different tokens on\n"
          "every rank). Each step's topk ids are recorded through the collector; at the end the\n"
          "counts are summed over MPI on rank 0, which writes <token_save_path>/"
          EPLB_TOKEN_FILE "\n"
          "(the generate: section of CFG.yaml). With token_collects: false nothing is recorded\n"
          "and nothing is written. Runs without mpirun as one rank.\n"
          "\n"
          "  --config CFG.yaml      the job's config (generate: token_collects, token_save_path)\n"
          "  --layers L             MoE layers\n"
          "  --experts E            experts per layer\n"
          "  --topk K               experts per token (K <= E)\n"
          "  --tokens T             tokens per step and rank\n"
          "  --steps S              forward steps\n"
          "  --seed X               seed (non-negative integer)\n"
          "  --skew SIGMA           popularity skew, 0 = uniform (default %.1f)\n"
          "  --dump-local FILE      also write what this rank recorded to FILE (seed format);\n"
          "                         with several ranks FILE must contain " RANK_TAG "\n"
          "  -h, --help             this help\n"
          "\n"
          "Exit status 0 on success, 1 on a failure, 2 on a bad command line.\n",
          DEFAULT_SKEW);
}

enum { OPT_CONFIG = 256, OPT_LAYERS, OPT_EXPERTS, OPT_TOPK, OPT_TOKENS, OPT_STEPS, OPT_SEED,
       OPT_SKEW, OPT_DUMP };

static const struct option simulate_options[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"layers", required_argument, NULL, OPT_LAYERS},
    {"experts", required_argument, NULL, OPT_EXPERTS},
    {"topk", required_argument, NULL, OPT_TOPK},
    {"tokens", required_argument, NULL, OPT_TOKENS},
    {"steps", required_argument, NULL, OPT_STEPS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"skew", required_argument, NULL, OPT_SKEW},
    {"dump-local", required_argument, NULL, OPT_DUMP},
    {"dump_local", required_argument, NULL, OPT_DUMP},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
typedef struct sim_args {
  const char *config;
  const char *dump;
  int64_t layers, experts, topk, tokens, steps, seed;
  double skew;
} sim_args;

/* Parses argv into `a`. @return 0, CLI_EXIT_USAGE, or -1 after --help. */
static int simulate_parse(int argc, char **argv, sim_args *a) {
  memset(a, 0, sizeof *a);
  a->skew = DEFAULT_SKEW;
  a->seed = -1;
  int c, rc = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", simulate_options, NULL)) != -1) {
    switch (c) {
    case OPT_CONFIG: a->config = optarg; break;
    case OPT_DUMP: a->dump = optarg; break;
    case OPT_LAYERS: rc = cli_parse_i64(CMD, "layers", optarg, 1, MAX_LAYERS, &a->layers); break;
    case OPT_EXPERTS:
      rc = cli_parse_i64(CMD, "experts", optarg, 1, MAX_EXPERTS, &a->experts);
      break;
    case OPT_TOPK: rc = cli_parse_i64(CMD, "topk", optarg, 1, MAX_TOPK, &a->topk); break;
    case OPT_TOKENS: rc = cli_parse_i64(CMD, "tokens", optarg, 1, MAX_TOKENS, &a->tokens); break;
    case OPT_STEPS: rc = cli_parse_i64(CMD, "steps", optarg, 1, MAX_STEPS, &a->steps); break;
    case OPT_SEED: rc = cli_parse_i64(CMD, "seed", optarg, 0, INT64_MAX, &a->seed); break;
    case OPT_SKEW: rc = cli_parse_double(CMD, "skew", optarg, 0, MAX_SKEW, &a->skew); break;
    case 'h':
      simulate_usage(stdout);
      return -1;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
    if (rc)
      return rc;
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!a->config)
    return cli_usage_error(CMD, "--config is required");
  const char *missing = !a->layers ? "layers" : !a->experts ? "experts" : !a->topk ? "topk"
                        : !a->tokens ? "tokens" : !a->steps ? "steps" : a->seed < 0 ? "seed"
                        : NULL;
  if (missing)
    return cli_usage_error(CMD, "--%s is required", missing);
  if (a->topk > a->experts)
    return cli_usage_error(CMD, "--topk %lld is larger than --experts %lld", (long long)a->topk,
                           (long long)a->experts);
  if (a->tokens * a->topk > MAX_IDS_PER_CALL)
    return cli_usage_error(CMD, "--tokens x --topk is above %lld ids per call",
                           (long long)MAX_IDS_PER_CALL);
  return 0;
}

/* ---- the synthetic router ---- */

/* splitmix64: small, seedable, and good enough for a synthetic router. */
static uint64_t next_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* A uniform double in [0, 1). */
static double uniform(uint64_t *s) { return (double)(next_rand(s) >> 11) * 0x1.0p-53; }

/* Mixes several numbers into one seed, so that (seed, rank, step, layer) streams differ. */
static uint64_t mix(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t s = a;
  uint64_t h = next_rand(&s) ^ b;
  h = next_rand(&h) ^ c;
  h = next_rand(&h) ^ d;
  return next_rand(&h);
}

/* Fills cdf[0..E-1] with the running sum of one layer's popularity exp(SIGMA z), z ~ N(0, 1);
 * the same on every rank (it depends on the seed and the layer only). */
static void popularity(double *cdf, int64_t experts, double skew, uint64_t seed, int64_t layer) {
  uint64_t s = mix(seed, (uint64_t)layer, 0x706f70, 0);
  double total = 0;
  for (int64_t e = 0; e < experts; e++) {
    double z = sqrt(-2 * log(1 - uniform(&s))) * cos(TWO_PI * uniform(&s));
    total += exp(skew * z);
    cdf[e] = total;
  }
}

/* Draws one expert from the running sums by binary search. */
static int64_t pick(const double *cdf, int64_t experts, uint64_t *s) {
  double u = uniform(s) * cdf[experts - 1];
  int64_t lo = 0, hi = experts - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] > u)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

/* Draws an expert not in tok[0..k-1] exactly, by scanning the weights left (O(E)); used when
 * redrawing keeps hitting chosen experts (very skewed popularity, K close to E). */
static int64_t pick_exact(const double *cdf, int64_t experts, const int64_t *tok, int64_t k,
                          uint64_t *s) {
  double left = cdf[experts - 1];
  for (int64_t j = 0; j < k; j++)
    left -= cdf[tok[j]] - (tok[j] ? cdf[tok[j] - 1] : 0);
  double u = uniform(s) * left;
  int64_t last = -1;
  for (int64_t e = 0; e < experts; e++) {
    int taken = 0;
    for (int64_t j = 0; j < k && !taken; j++)
      taken = tok[j] == e;
    if (taken)
      continue;
    last = e;
    u -= cdf[e] - (e ? cdf[e - 1] : 0);
    if (u < 0)
      return e;
  }
  return last; /* rounding left u just above 0 */
}

/* Routes `tokens` tokens to `topk` distinct experts each, by popularity: ids[t*topk + k]. */
static void route(int64_t *ids, const double *cdf, const sim_args *a, uint64_t *s) {
  for (int64_t t = 0; t < a->tokens; t++) {
    int64_t *tok = ids + t * a->topk;
    for (int64_t k = 0; k < a->topk; k++) {
      int64_t e = -1;
      for (int tries = 0; e < 0 && tries < MAX_REDRAWS; tries++) {
        e = pick(cdf, a->experts, s);
        for (int64_t j = 0; j < k; j++)
          if (tok[j] == e)
            e = -1;
      }
      tok[k] = e >= 0 ? e : pick_exact(cdf, a->experts, tok, k, s);
    }
  }
}

/* ---- one rank's run ---- */

/* Makes every rank learn the worst code among the ranks. */
static int agree(int rc) {
  int worst = rc;
  if (MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
    return EPLB_ECOMM;
  return worst;
}

/* Runs the router for every step and layer, recording into c. */
static int run_router(eplb_collector *c, const sim_args *a, int rank) {
  if (a->layers < 1 || a->experts < 1 || a->tokens < 1 || a->topk < 1) /* the flags are checked */
    return EPLB_EINVAL;
  double *cdf = malloc(sizeof *cdf * (size_t)a->layers * (size_t)a->experts);
  int64_t *ids = malloc(sizeof *ids * (size_t)(a->tokens * a->topk));
  int rc = 0;
  if (!cdf || !ids)
    rc = EPLB_ENOMEM;
  for (int64_t l = 0; rc == 0 && l < a->layers; l++)
    popularity(cdf + l * a->experts, a->experts, a->skew, (uint64_t)a->seed, l);
  for (int64_t step = 0; rc == 0 && step < a->steps; step++)
    for (int64_t l = 0; rc == 0 && l < a->layers; l++) {
      uint64_t s = mix((uint64_t)a->seed, (uint64_t)rank + 1, (uint64_t)step, (uint64_t)l);
      route(ids, cdf + l * a->experts, a, &s);
      rc = eplb_collector_record(c, (int32_t)l, ids, (size_t)(a->tokens * a->topk),
                                 EPLB_ID_INT64);
    }
  free(cdf);
  free(ids);
  return rc;
}

/* Room for a rank number where {rank} stands in a --dump-local path. */
#define DUMP_RANK_DIGITS 12

/* Writes this rank's own counts to the --dump-local path ({rank} replaced). */
static int dump_local(const eplb_collector *c, const char *pattern, int rank) {
  char path[EPLB_CONFIG_PATH_MAX];
  const char *tag = strstr(pattern, RANK_TAG);
  int n;
  if (tag)
    n = snprintf(path, sizeof path, "%.*s%d%s", (int)(tag - pattern), pattern, rank,
                 tag + strlen(RANK_TAG));
  else
    n = snprintf(path, sizeof path, "%s", pattern);
  if (n < 0 || (size_t)n >= sizeof path) /* never write to a cut path (simulate() checks first) */
    return EPLB_EINVAL;
  eplb_loads *loads = NULL;
  int rc = eplb_collector_loads(c, EPLB_WINDOW_ALL, &loads);
  if (rc == 0)
    rc = eplb_loads_write(loads, path);
  eplb_loads_free(loads);
  return rc;
}

/* Loads the config, records, dumps, gathers. @return a CLI exit code, the same on every rank. */
static int simulate(const sim_args *a, int rank, int size) {
  if (a->dump && strlen(a->dump) + DUMP_RANK_DIGITS >= EPLB_CONFIG_PATH_MAX)
    return rank == ROOT ? cli_usage_error(CMD, "--dump-local: path longer than %d bytes",
                                          EPLB_CONFIG_PATH_MAX - 1 - DUMP_RANK_DIGITS)
                        : CLI_EXIT_USAGE;
  if (a->dump && size > 1 && !strstr(a->dump, RANK_TAG))
    return rank == ROOT ? cli_usage_error(CMD, "--dump-local: with %d ranks FILE must contain "
                                          RANK_TAG, size) : CLI_EXIT_USAGE;
  eplb_config cfg;
  eplb_config_init(&cfg);
  int rc = eplb_config_load(a->config, &cfg);
  if (agree(rc) != 0)
    return rc != 0 ? cli_fail(CMD, rc) : CLI_EXIT_FAIL;
  if (!cfg.token_collects) {
    if (rank == ROOT)
      fprintf(stderr, "eplb simulate: token_collects is false in %s: nothing recorded, nothing "
                      "written\n", a->config);
    return CLI_EXIT_OK;
  }
  double t0 = cli_now();
  eplb_collector *c = eplb_collector_create((int32_t)a->layers, (int32_t)a->experts, 1);
  rc = c ? run_router(c, a, rank) : EPLB_ENOMEM;
  double t_record = cli_now() - t0;
  if (rc == 0 && a->dump)
    rc = dump_local(c, a->dump, rank);
  if (agree(rc) != 0) {
    eplb_collector_free(c);
    return rc != 0 ? cli_fail(CMD, rc) : CLI_EXIT_FAIL;
  }
  double t1 = cli_now();
  rc = eplb_mpi_gather(c, MPI_COMM_WORLD, ROOT, cfg.token_save_path);
  double t_gather = cli_now() - t1;
  eplb_collector_free(c);
  if (rc != 0) /* every rank has the same code; root alone says why */
    return rank == ROOT ? cli_fail(CMD, rc) : CLI_EXIT_FAIL;
  if (rank == ROOT)
    fprintf(stderr,
            "eplb simulate: %d rank%s x %lld steps x %lld tokens x top-%lld, %lld layers x %lld "
            "experts -> %s/%s (route+record %.3f s, gather %.3f s)\n",
            size, size == 1 ? "" : "s", (long long)a->steps, (long long)a->tokens,
            (long long)a->topk, (long long)a->layers, (long long)a->experts, cfg.token_save_path,
            EPLB_TOKEN_FILE, t_record, t_gather);
  return CLI_EXIT_OK;
}

/* Parses the flags, then runs the simulation between MPI_Init and MPI_Finalize. */
int cmd_simulate(int argc, char **argv) {
  sim_args a;
  int rc = simulate_parse(argc, argv, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
    fprintf(stderr, "eplb simulate: MPI_Init failed\n");
    return CLI_EXIT_FAIL;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  rc = simulate(&a, rank, size);
  MPI_Finalize();
  return rc;
}
