/* cmd_report.c - `eplb report`: measures a map against loads (balance, lower bound, duplicates,
 * moves against an old map, off-node share) as a table or JSON, and draws it as SVG. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CMD "report"

/* Prints the help of `eplb report`. */
static void report_usage(FILE *f) {
  fprintf(f,
          "usage: eplb report --input LOADS --map MAP [--old_map OLD] [--json] [--svg OUT.svg]\n"
          "                   [--num_groups K] [--num_nodes N]\n"
          "\n"
          "Measures an expert map against token counts, per layer and overall:\n"
          "  balancedness  mean / max device load (1 = perfect)\n"
          "  max/LB        max device load over the lower bound LB = max(total / G,\n"
          "                min over replica counts of max_e load_e / d_e); no map without\n"
          "                duplicates does better than 1\n"
          "  imbalance     (max - mean) / mean\n"
          "  duplicates    extra replicas of an expert on a device that already holds it\n"
          "  missing       experts of the loads without a replica\n"
          "  moves         expert weights a device must receive to go from OLD to MAP\n"
          "  off-node      share of the load served off its group's home node (group of e:\n"
          "                e / (E/K); home: the node serving most of the group's load)\n"
          "The overall line sums loads over layers (ratios of the sums).\n"
          "\n"
          "  --input LOADS      token counts ({\"<layer>\": {\"<expert>\": count}} or SGLang's)\n"
          "  --map MAP          expert_map.json to measure\n"
          "  --old_map OLD      expert_map.json to count moves against (same layers, devices)\n"
          "  --num_groups K     expert groups for the off-node share (default 1)\n"
          "  --num_nodes N      nodes for the off-node share (default 1)\n"
          "  --json             print JSON instead of the table\n"
          "  --svg OUT.svg      also draw the initial placement (OLD if given, else the one\n"
          "                     without redundancy) and MAP per layer, and an expert heat map\n"
          "  -h, --help         this help\n"
          "Exit status 0 on success, 1 on a failure, 2 on a bad command line.\n");
}

enum { OPT_INPUT = 256, OPT_MAP, OPT_OLD, OPT_JSON, OPT_SVG, OPT_GROUPS, OPT_NODES };

static const struct option report_options[] = {
    {"input", required_argument, NULL, OPT_INPUT},
    {"map", required_argument, NULL, OPT_MAP},
    {"old_map", required_argument, NULL, OPT_OLD},
    {"old-map", required_argument, NULL, OPT_OLD},
    {"json", no_argument, NULL, OPT_JSON},
    {"svg", required_argument, NULL, OPT_SVG},
    {"num_groups", required_argument, NULL, OPT_GROUPS},
    {"num-groups", required_argument, NULL, OPT_GROUPS},
    {"num_nodes", required_argument, NULL, OPT_NODES},
    {"num-nodes", required_argument, NULL, OPT_NODES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* ---- output ---- */

/* One line's measures as a JSON object. */
static json_t *line_json(const eplb_layer_report *x) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  if (x->layer_id >= 0)
    json_object_set_new(o, "layer_id", json_integer(x->layer_id));
  json_object_set_new(o, "total_load", json_real(x->total));
  json_object_set_new(o, "mean_load", json_real(x->mean_load));
  json_object_set_new(o, "max_load", json_real(x->max_load));
  json_object_set_new(o, "lower_bound", json_real(x->lower_bound));
  json_object_set_new(o, "balancedness", json_real(x->balancedness));
  json_object_set_new(o, "max_over_lb", json_real(x->max_over_lb));
  json_object_set_new(o, "imbalance", json_real(x->imbalance));
  json_object_set_new(o, "duplicates", json_integer(x->duplicates));
  json_object_set_new(o, "missing", json_integer(x->missing));
  json_object_set_new(o, "moves", x->moves >= 0 ? json_integer(x->moves) : json_null());
  json_object_set_new(o, "off_node_share", json_real(x->off_node_share));
  return o;
}

/* Prints the report as one JSON document. @return a CLI exit code. */
static int print_json(const eplb_report *r) {
  json_t *root = json_object(), *layers = json_array();
  if (!root || !layers) {
    json_decref(root);
    json_decref(layers);
    return cli_fail(CMD, EPLB_ENOMEM);
  }
  json_object_set_new(root, "num_gpus", json_integer(r->num_gpus));
  json_object_set_new(root, "num_slots", json_integer(r->num_slots));
  for (int32_t l = 0; l < r->num_layers; l++)
    json_array_append_new(layers, line_json(&r->layers[l]));
  json_object_set_new(root, "layers", layers);
  json_object_set_new(root, "overall", line_json(&r->overall));
  int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
  json_decref(root);
  printf("\n");
  return rc ? cli_fail(CMD, EPLB_EIO) : CLI_EXIT_OK;
}

/* Prints one table row. */
static void print_row(const char *name, const eplb_layer_report *x) {
  char moves[32];
  if (x->moves >= 0)
    snprintf(moves, sizeof moves, "%lld", (long long)x->moves);
  else
    snprintf(moves, sizeof moves, "-");
  printf("%-8s %12.4f %8.4f %9.4f %10lld %7d %7s %8.4f\n", name, x->balancedness,
         x->max_over_lb, x->imbalance, (long long)x->duplicates, x->missing, moves,
         x->off_node_share);
}

/* Prints the report as a plain table. */
static void print_table(const eplb_report *r) {
  printf("%-8s %12s %8s %9s %10s %7s %7s %8s\n", "layer", "balancedness", "max/LB", "imbalance",
         "duplicates", "missing", "moves", "off-node");
  for (int32_t l = 0; l < r->num_layers; l++) {
    char name[32];
    snprintf(name, sizeof name, "%lld", (long long)r->layers[l].layer_id);
    print_row(name, &r->layers[l]);
  }
  print_row("overall", &r->overall);
}

/* ---- command ---- */

int cmd_report(int argc, char **argv) {
  const char *input = NULL, *map_path = NULL, *old_path = NULL, *svg = NULL;
  int json = 0, c;
  int64_t K = 1, N = 1;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", report_options, NULL)) != -1) {
    switch (c) {
    case OPT_INPUT:
      input = optarg;
      break;
    case OPT_MAP:
      map_path = optarg;
      break;
    case OPT_OLD:
      old_path = optarg;
      break;
    case OPT_JSON:
      json = 1;
      break;
    case OPT_SVG:
      svg = optarg;
      break;
    case OPT_GROUPS:
      if (cli_parse_i64(CMD, "num_groups", optarg, 1, INT32_MAX, &K))
        return CLI_EXIT_USAGE;
      break;
    case OPT_NODES:
      if (cli_parse_i64(CMD, "num_nodes", optarg, 1, INT32_MAX, &N))
        return CLI_EXIT_USAGE;
      break;
    case 'h':
      report_usage(stdout);
      return CLI_EXIT_OK;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!input || !map_path)
    return cli_usage_error(CMD, "--input LOADS and --map MAP are required");
  eplb_loads *loads = NULL;
  eplb_placement *map = NULL, *old = NULL;
  eplb_report *r = NULL;
  int rc = eplb_loads_read_file(input, 0, &loads);
  if (!rc)
    rc = eplb_placement_read(map_path, 0, &map);
  if (!rc && old_path)
    rc = eplb_placement_read(old_path, 0, &old);
  int reading = rc != 0; /* the readers name their file; the rest needs the names given */
  if (!rc)
    rc = eplb_report_compute(loads, map, old, (int32_t)K, (int32_t)N, &r);
  if (!rc && svg)
    rc = eplb_report_svg(loads, map, old, svg);
  int status = CLI_EXIT_OK;
  if (rc && reading) {
    status = cli_fail(CMD, rc);
  } else if (rc) {
    char about[1024];
    snprintf(about, sizeof about, "%s against %s%s%s", map_path, input, old_path ? " and " : "",
             old_path ? old_path : "");
    status = cli_fail_about(CMD, rc, about);
  } else if (json) {
    status = print_json(r);
  } else {
    print_table(r);
  }
  eplb_report_free(r);
  eplb_loads_free(loads);
  eplb_placement_free(map);
  eplb_placement_free(old);
  return status;
}
