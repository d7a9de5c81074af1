/* cli.h - what the subcommands of the eplb program share: the command table and small helpers
 * for flags and errors. The program only parses flags, calls the library and prints. */
#ifndef EPLB_CLI_H
#define EPLB_CLI_H

#include <stdint.h>

#include "eplb.h"

/* Exit codes of the program. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1  /* the work failed: bad input, I/O, verification */
#define CLI_EXIT_USAGE 2 /* bad command line */

/* One subcommand: `eplb NAME ...` calls run(argc, argv) with argv[0] == NAME. */
typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_command;

/* The subcommands, one per file programs/cmd_NAME.c. */
int cmd_plan(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_replay(int argc, char **argv);

/* Prints "eplb CMD: <library detail or strerror>" on stderr and returns CLI_EXIT_FAIL. */
int cli_fail(const char *cmd, int rc);
/* As cli_fail, for a failure of work on files the library does not know the names of: prints
 * "eplb CMD: ABOUT: <detail>" (e.g. ABOUT = "map.json against loads.json"), or just the detail
 * when it starts with ABOUT already. */
int cli_fail_about(const char *cmd, int rc, const char *about);
/* Prints "eplb CMD: <message>" and a hint to --help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The usage error for what getopt_long (with a leading ':' in its short options) returned when
 * it did not recognise the option: ':' for a missing value, anything else for an unknown option.
 * Call it with the last option argv[optind - 1] still in place. @return CLI_EXIT_USAGE. */
int cli_getopt_error(const char *cmd, int c, char **argv);
/* Parses a whole decimal integer in [min, max] given for flag `flag`.
 * @return 0, or prints a usage error and returns CLI_EXIT_USAGE. */
int cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max,
                  int64_t *out);
/* Parses a finite real number in [min, max]; as cli_parse_i64. */
int cli_parse_double(const char *cmd, const char *flag, const char *s, double min, double max,
                     double *out);
/* Seconds from a monotonic clock. */
double cli_now(void);

#endif /* EPLB_CLI_H */
