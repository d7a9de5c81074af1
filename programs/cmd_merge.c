/* cmd_merge.c - `eplb merge IN... -o OUT`: sums token-count files into one (step 1).
 * The inputs go through the same validating loader as `eplb plan`; the output is written
 * atomically, so an existing OUT is untouched when anything fails. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define CMD "merge"

/* Prints the help of `eplb merge` to f. */
static void merge_usage(FILE *f) {
  fprintf(f, "usage: eplb merge IN.json... -o OUT.json [--num_experts E]\n"
             "\n"
             "Sums token-count files element-wise (layers: the union of the inputs' layers) and\n"
             "writes the sum in the seed format {\"<layer>\": {\"<expert>\": count}}, e.g. the\n"
             "per-rank files of a run into one token_collects_all.json. Inputs may also be\n"
             "SGLang dumps {\"logical_count\": [[...]]}. Integer counts are summed exactly.\n"
             "\n"
             "  -o, --output OUT       the file to write (replaced atomically; untouched on error)\n"
             "  --num_experts E        number of experts (default: largest id + 1)\n"
             "  -h, --help             this help\n"
             "\n"
             "Prints one summary line on stderr. Exit status 0 on success, 1 on a failure (the\n"
             "message names the file and field), 2 on a bad command line.\n");
}

enum { OPT_EXPERTS = 256 };

static const struct option merge_options[] = {
    {"output", required_argument, NULL, 'o'},
    {"num_experts", required_argument, NULL, OPT_EXPERTS},
    {"num-experts", required_argument, NULL, OPT_EXPERTS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Sums the inputs named on the command line into the output file. */
int cmd_merge(int argc, char **argv) {
  const char *output = NULL;
  int64_t num_experts = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":o:h", merge_options, NULL)) != -1) {
    switch (c) {
    case 'o':
      output = optarg;
      break;
    case OPT_EXPERTS:
      if (cli_parse_i64(CMD, "num_experts", optarg, 1, INT32_MAX, &num_experts))
        return CLI_EXIT_USAGE;
      break;
    case 'h':
      merge_usage(stdout);
      return CLI_EXIT_OK;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
  }
  if (optind >= argc)
    return cli_usage_error(CMD, "no input file");
  if (!output)
    return cli_usage_error(CMD, "-o OUT is required");
  size_t n = (size_t)(argc - optind);
  double t0 = cli_now();
  eplb_loads *sum = NULL;
  int rc = eplb_loads_read_files((const char *const *)(argv + optind), n, num_experts, &sum);
  if (rc == 0)
    rc = eplb_loads_write(sum, output);
  if (rc != 0) {
    eplb_loads_free(sum);
    return cli_fail(CMD, rc);
  }
  double total = 0;
  for (size_t i = 0; i < (size_t)sum->num_layers * (size_t)sum->num_experts; i++)
    total += sum->load[i];
  fprintf(stderr, "eplb merge: %zu file%s, %d layers x %d experts, %.17g tokens -> %s (%.3f s)\n",
          n, n == 1 ? "" : "s", sum->num_layers, sum->num_experts, total, output,
          cli_now() - t0);
  eplb_loads_free(sum);
  return CLI_EXIT_OK;
}
