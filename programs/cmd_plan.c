/* cmd_plan.c - `eplb plan`: token counts in, expert_map.json out (step 2).
 * Flags keep the upstream eplb_generate_map_ds.py spelling (underscores); kebab-case aliases
 * are accepted too. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CMD "plan"
/* Most --input files one command line may name. */
#define MAX_INPUTS 256

static void plan_usage(FILE *f) {
  fprintf(f,
          "usage: eplb plan (--json_folder DIR | --input FILE...) --num_replicas R --num_gpus G\n"
          "                 [--num_groups K] [--num_nodes N] --output_path OUT [options]\n"
          "\n"
          "Computes a redundant-expert map from per-expert token counts and writes\n"
          "expert_map.json atomically. The default policy, balanced, chooses replica counts\n"
          "and placement together to minimise the busiest device's load, keeping every replica\n"
          "on its group's node when K %% N == 0 and N > 1, as DeepSeek does (no layer worse than\n"
          "deepseek's); --policy deepseek computes DeepSeek's EPLB algorithm (hierarchical when\n"
          "K %% N == 0, else global). No device holds two replicas of one expert unless\n"
          "--allow-duplicates.\n"
          "\n"
          "inputs (token counts, {\"<layer>\": {\"<expert>\": count}} or SGLang's\n"
          "{\"logical_count\": [[...]]}):\n"
          "  --json_folder DIR      sum every *.json file in DIR (e.g. one per rank)\n"
          "  --input FILE           read FILE; repeat to sum several files\n"
          "  --num_experts E        number of logical experts (default: largest id + 1)\n"
          "placement:\n"
          "  --num_replicas R       physical expert slots per layer (multiple of G, >= E)\n"
          "  --num_groups K         expert groups (default 1)\n"
          "  --num_nodes N          nodes (default 1)\n"
          "  --num_gpus G           devices (expert-parallel ranks)\n"
          "  --policy P             balanced (default) or deepseek\n"
          "  --allow-duplicates     reproduce DeepSeek's eplb.py exactly, duplicates included\n"
          "                         (implies --policy deepseek)\n"
          "  --hierarchy H          balanced: strict, soft or none (default: strict when N > 1\n"
          "                         and K %% N == 0, else none)\n"
          "  --time_budget_ms T     balanced: cap the search at T ms per plan (default 0: no\n"
          "                         cap, the plan depends on the input only)\n"
          "several inputs and re-planning (balanced quality, see eplb/quality.h):\n"
          "  --objective O          sum (default: plan the summed --input files), mean or max:\n"
          "                         minimise the mean or the largest over the --input files of\n"
          "                         the busiest device's load\n"
          "  --old_map MAP          match the plan to MAP so the fewest expert weights move\n"
          "  --max_moves N          with --old_map: move at most N weights (default: no limit)\n"
          "output:\n"
          "  --output_path OUT      the map to write (replaced atomically; untouched on error)\n"
          "  --format F             expert_map (default) or full (adds phy2log, logcnt, log2phy)\n"
          "  -h, --help             this help\n"
          "\n"
          "Prints one summary line on stderr. Exit status 0 on success, 1 on a failure (the\n"
          "message names the file and field), 2 on a bad command line.\n");
}

enum {
  OPT_FOLDER = 256,
  OPT_INPUT,
  OPT_EXPERTS,
  OPT_REPLICAS,
  OPT_GROUPS,
  OPT_NODES,
  OPT_GPUS,
  OPT_POLICY,
  OPT_DUPS,
  OPT_HIER,
  OPT_BUDGET,
  OPT_OUTPUT,
  OPT_FORMAT,
  OPT_OBJECTIVE,
  OPT_OLD_MAP,
  OPT_MAX_MOVES,
};

static const struct option plan_options[] = {
    {"json_folder", required_argument, NULL, OPT_FOLDER},
    {"json-folder", required_argument, NULL, OPT_FOLDER},
    {"input", required_argument, NULL, OPT_INPUT},
    {"num_experts", required_argument, NULL, OPT_EXPERTS},
    {"num-experts", required_argument, NULL, OPT_EXPERTS},
    {"num_replicas", required_argument, NULL, OPT_REPLICAS},
    {"num-replicas", required_argument, NULL, OPT_REPLICAS},
    {"num_groups", required_argument, NULL, OPT_GROUPS},
    {"num-groups", required_argument, NULL, OPT_GROUPS},
    {"num_nodes", required_argument, NULL, OPT_NODES},
    {"num-nodes", required_argument, NULL, OPT_NODES},
    {"num_gpus", required_argument, NULL, OPT_GPUS},
    {"num-gpus", required_argument, NULL, OPT_GPUS},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"allow-duplicates", no_argument, NULL, OPT_DUPS},
    {"allow_duplicates", no_argument, NULL, OPT_DUPS},
    {"hierarchy", required_argument, NULL, OPT_HIER},
    {"time_budget_ms", required_argument, NULL, OPT_BUDGET},
    {"time-budget-ms", required_argument, NULL, OPT_BUDGET},
    {"output_path", required_argument, NULL, OPT_OUTPUT},
    {"output-path", required_argument, NULL, OPT_OUTPUT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"objective", required_argument, NULL, OPT_OBJECTIVE},
    {"old_map", required_argument, NULL, OPT_OLD_MAP},
    {"old-map", required_argument, NULL, OPT_OLD_MAP},
    {"max_moves", required_argument, NULL, OPT_MAX_MOVES},
    {"max-moves", required_argument, NULL, OPT_MAX_MOVES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
typedef struct plan_args {
  const char *folder;
  const char *inputs[MAX_INPUTS];
  size_t n_inputs;
  const char *output;
  int64_t num_experts;
  eplb_map_format format;
  eplb_params params;
  eplb_objective objective; /* --objective */
  const char *old_map;      /* --old_map */
  int64_t max_moves;        /* --max_moves, -1: no limit */
  int policy_given;         /* --policy was on the command line */
} plan_args;

/* Parses argv into `a`. @return 0, CLI_EXIT_USAGE, or -1 after --help. */
static int plan_parse(int argc, char **argv, plan_args *a) {
  memset(a, 0, sizeof *a);
  eplb_params_init(&a->params);
  a->params.num_groups = 1;
  a->params.num_nodes = 1;
  a->max_moves = -1;
  int64_t v;
  int c, rc = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", plan_options, NULL)) != -1) {
    switch (c) {
    case OPT_FOLDER:
      a->folder = optarg;
      break;
    case OPT_INPUT:
      if (a->n_inputs == MAX_INPUTS)
        return cli_usage_error(CMD, "more than %d --input files", MAX_INPUTS);
      a->inputs[a->n_inputs++] = optarg;
      break;
    case OPT_EXPERTS:
      rc = cli_parse_i64(CMD, "num_experts", optarg, 1, INT32_MAX, &a->num_experts);
      break;
    case OPT_REPLICAS:
      if (!(rc = cli_parse_i64(CMD, "num_replicas", optarg, 1, INT32_MAX, &v)))
        a->params.num_replicas = (int32_t)v;
      break;
    case OPT_GROUPS:
      if (!(rc = cli_parse_i64(CMD, "num_groups", optarg, 1, INT32_MAX, &v)))
        a->params.num_groups = (int32_t)v;
      break;
    case OPT_NODES:
      if (!(rc = cli_parse_i64(CMD, "num_nodes", optarg, 1, INT32_MAX, &v)))
        a->params.num_nodes = (int32_t)v;
      break;
    case OPT_GPUS:
      if (!(rc = cli_parse_i64(CMD, "num_gpus", optarg, 1, INT32_MAX, &v)))
        a->params.num_gpus = (int32_t)v;
      break;
    case OPT_POLICY:
      a->policy_given = 1;
      if (!strcmp(optarg, "deepseek"))
        a->params.policy = EPLB_POLICY_DEEPSEEK;
      else if (!strcmp(optarg, "balanced"))
        a->params.policy = EPLB_POLICY_BALANCED;
      else
        return cli_usage_error(CMD, "--policy: '%s' is not deepseek or balanced", optarg);
      break;
    case OPT_DUPS:
      a->params.allow_duplicates = 1;
      break;
    case OPT_HIER:
      if (!strcmp(optarg, "strict"))
        a->params.hierarchy = EPLB_HIER_STRICT;
      else if (!strcmp(optarg, "soft"))
        a->params.hierarchy = EPLB_HIER_SOFT;
      else if (!strcmp(optarg, "none"))
        a->params.hierarchy = EPLB_HIER_NONE;
      else
        return cli_usage_error(CMD, "--hierarchy: '%s' is not strict, soft or none", optarg);
      break;
    case OPT_BUDGET:
      rc = cli_parse_double(CMD, "time_budget_ms", optarg, 0, 1e9, &a->params.time_budget_ms);
      break;
    case OPT_OUTPUT:
      a->output = optarg;
      break;
    case OPT_FORMAT:
      if (!strcmp(optarg, "expert_map"))
        a->format = EPLB_MAP_EXPERT_MAP;
      else if (!strcmp(optarg, "full"))
        a->format = EPLB_MAP_FULL;
      else
        return cli_usage_error(CMD, "--format: '%s' is not expert_map or full", optarg);
      break;
    case OPT_OBJECTIVE:
      if (!strcmp(optarg, "sum"))
        a->objective = EPLB_OBJECTIVE_SUM;
      else if (!strcmp(optarg, "mean"))
        a->objective = EPLB_OBJECTIVE_MEAN;
      else if (!strcmp(optarg, "max"))
        a->objective = EPLB_OBJECTIVE_MAX;
      else
        return cli_usage_error(CMD, "--objective: '%s' is not sum, mean or max", optarg);
      break;
    case OPT_OLD_MAP:
      a->old_map = optarg;
      break;
    case OPT_MAX_MOVES:
      rc = cli_parse_i64(CMD, "max_moves", optarg, 0, INT64_MAX, &a->max_moves);
      break;
    case 'h':
      plan_usage(stdout);
      return -1;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
    if (rc)
      return rc;
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!a->folder == !a->n_inputs)
    return cli_usage_error(CMD, "give exactly one of --json_folder DIR or --input FILE");
  if (!a->params.num_replicas)
    return cli_usage_error(CMD, "--num_replicas is required");
  if (!a->params.num_gpus)
    return cli_usage_error(CMD, "--num_gpus is required");
  if (!a->output)
    return cli_usage_error(CMD, "--output_path is required");
  if (a->objective != EPLB_OBJECTIVE_SUM && (a->folder || a->old_map))
    return cli_usage_error(CMD, "--objective mean|max plans several --input files, without "
                                "--json_folder or --old_map");
  if (a->max_moves >= 0 && !a->old_map)
    return cli_usage_error(CMD, "--max_moves needs --old_map");
  /* Reproducing the reference, duplicates and all, is what the deepseek policy does. */
  if (a->params.allow_duplicates) {
    if (a->policy_given && a->params.policy == EPLB_POLICY_BALANCED)
      return cli_usage_error(CMD, "--allow-duplicates reproduces DeepSeek's output: it goes "
                                  "with --policy deepseek (balanced never duplicates)");
    a->params.policy = EPLB_POLICY_DEEPSEEK;
  }
  return 0;
}

/* Plans with --objective mean|max (each --input read on its own, with the summed loads' E) or
 * against --old_map; prints the moves of a re-plan. @return a library code. */
static int plan_quality(const plan_args *a, const eplb_loads *sum, eplb_placement **p) {
  int rc = 0;
  if (a->old_map) {
    eplb_placement *old = NULL;
    rc = eplb_placement_read(a->old_map, sum->num_experts, &old);
    if (!rc)
      rc = eplb_plan_replan(sum, &a->params, old, a->max_moves, p);
    int64_t moves = 0;
    for (int32_t l = 0; !rc && l < old->num_layers; l++)
      moves += eplb_placement_moves(old, *p, l);
    if (!rc)
      fprintf(stderr, "eplb plan: %lld expert weights move against %s\n", (long long)moves,
              a->old_map);
    eplb_placement_free(old);
    return rc;
  }
  eplb_loads *in[MAX_INPUTS] = {NULL};
  for (size_t i = 0; !rc && i < a->n_inputs; i++)
    rc = eplb_loads_read_file(a->inputs[i], sum->num_experts, &in[i]);
  if (!rc)
    rc = eplb_plan_multi((const eplb_loads *const *)in, a->n_inputs, &a->params, a->objective, p);
  for (size_t i = 0; i < a->n_inputs; i++)
    eplb_loads_free(in[i]);
  return rc;
}

/* The policy and locality the parameters select, for the summary line. */
static const char *plan_mode(const eplb_params *pr) {
  if (pr->policy != EPLB_POLICY_BALANCED)
    return eplb_params_mode(pr) == EPLB_MODE_HIERARCHICAL ? "deepseek hierarchical"
                                                          : "deepseek global";
  eplb_hierarchy h = eplb_params_hierarchy(pr);
  return h == EPLB_HIER_STRICT ? "balanced strict"
         : h == EPLB_HIER_SOFT ? "balanced soft"
                               : "balanced none";
}

/* Prints the one summary line: shape, policy, balancedness mean/min, duplicates, time. */
static void plan_summary(const eplb_loads *loads, const eplb_placement *p, const plan_args *a,
                         double plan_s, double total_s) {
  double sum = 0, min = 1;
  for (int32_t l = 0; l < p->num_layers; l++) {
    double b = eplb_balancedness(loads, p, l);
    sum += b;
    if (b < min)
      min = b;
  }
  const eplb_params *pr = &a->params;
  const char *mode = plan_mode(pr);
  fprintf(stderr,
          "eplb plan: %d layers x %d experts -> %d slots on %d devices, %d node%s; policy %s%s; "
          "balancedness mean %.4f min %.4f; duplicates %lld; plan %.2f ms, total %.1f ms; "
          "wrote %s\n",
          p->num_layers, p->num_experts, p->num_slots, p->num_gpus, pr->num_nodes,
          pr->num_nodes == 1 ? "" : "s", mode,
          pr->allow_duplicates && pr->policy == EPLB_POLICY_DEEPSEEK ? " (duplicates allowed)"
                                                                     : "",
          sum / p->num_layers, min, (long long)eplb_placement_duplicates(p), plan_s * 1e3,
          total_s * 1e3, a->output);
}

int cmd_plan(int argc, char **argv) {
  double t0 = cli_now();
  plan_args a;
  int rc = plan_parse(argc, argv, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  eplb_loads *loads = NULL;
  eplb_placement *p = NULL;
  if (a.folder)
    rc = eplb_loads_read_folder(a.folder, a.num_experts, &loads);
  else
    rc = eplb_loads_read_files(a.inputs, a.n_inputs, a.num_experts, &loads);
  if (rc)
    return cli_fail(CMD, rc);
  double t1 = cli_now();
  if (a.objective != EPLB_OBJECTIVE_SUM || a.old_map)
    rc = plan_quality(&a, loads, &p);
  else
    rc = eplb_plan(loads, &a.params, &p);
  double t2 = cli_now();
  int planning = rc != 0; /* a re-plan's mismatch names neither file: name the old map */
  if (!rc)
    rc = eplb_placement_write(p, a.output, a.format);
  if (rc) {
    eplb_loads_free(loads);
    eplb_placement_free(p);
    return planning && a.old_map ? cli_fail_about(CMD, rc, a.old_map) : cli_fail(CMD, rc);
  }
  plan_summary(loads, p, &a, t2 - t1, cli_now() - t0);
  eplb_loads_free(loads);
  eplb_placement_free(p);
  return CLI_EXIT_OK;
}
