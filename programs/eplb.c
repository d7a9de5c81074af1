/* eplb.c - the eplb program: dispatches to a subcommand, one per file cmd_*.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const cli_command commands[] = {
    {"plan", "compute a redundant-expert map from token counts (step 2)", cmd_plan},
    {"merge", "sum token-count files into one (step 1)", cmd_merge},
    {"simulate", "run a synthetic MoE router under mpirun, gather its counts (step 1)", cmd_simulate},
    {"migrate", "move expert weights between ranks to match a map (step 3)", cmd_migrate},
    {"report", "measure a map against loads: balance, lower bound, moves, SVG", cmd_report},
    {"replay", "replay a series of counts: static vs online re-balancing vs oracle", cmd_replay},
};
#define NUM_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: eplb COMMAND [OPTIONS]\n"
          "Expert-parallel load balancing for Mixture-of-Experts models.\n\ncommands:\n");
  for (size_t i = 0; i < NUM_COMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n  eplb COMMAND --help   options of one command\n"
             "  eplb --version        print the version\n");
}

/* Runs the command line and returns its exit status. */
static int run(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
    printf("eplb %s\n", eplb_version_string());
    return CLI_EXIT_OK;
  }
  for (size_t i = 0; i < NUM_COMMANDS; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "eplb: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  int status = run(argc, argv);
  /* What a command printed is part of its work: output that could not be written (a full disk,
   * a closed pipe) is a failure, whatever the command returned. */
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "eplb: cannot write the output: %s\n", strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return status;
}

/* ---- helpers shared by the commands ---- */

int cli_fail(const char *cmd, int rc) {
  const char *detail = eplb_last_error();
  fprintf(stderr, "eplb %s: %s\n", cmd, (detail && *detail) ? detail : eplb_strerror(rc));
  return CLI_EXIT_FAIL;
}

int cli_fail_about(const char *cmd, int rc, const char *about) {
  const char *detail = eplb_last_error();
  if (detail && !strncmp(detail, about, strlen(about))) /* it names the file already */
    return cli_fail(cmd, rc);
  fprintf(stderr, "eplb %s: %s: %s\n", cmd, about,
          (detail && *detail) ? detail : eplb_strerror(rc));
  return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "eplb %s: ", cmd);
  va_start(ap, fmt);
  /* va_start is right above: clang 14's analyzer misreads it here (a false positive). */
  vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
  va_end(ap);
  fprintf(stderr, " (see 'eplb %s --help')\n", cmd);
  return CLI_EXIT_USAGE;
}

int cli_getopt_error(const char *cmd, int c, char **argv) {
  if (c == ':')
    return cli_usage_error(cmd, "%s needs a value", argv[optind - 1]);
  return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

int cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max,
                  int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || errno == ERANGE || v < min || v > max)
    return cli_usage_error(cmd, "--%s: '%s' is not an integer in [%lld, %lld]", flag, s,
                           (long long)min, (long long)max);
  *out = v;
  return 0;
}

int cli_parse_double(const char *cmd, const char *flag, const char *s, double min, double max,
                     double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno == ERANGE || !isfinite(v) || v < min || v > max)
    return cli_usage_error(cmd, "--%s: '%s' is not a number in [%g, %g]", flag, s, min, max);
  *out = v;
  return 0;
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
