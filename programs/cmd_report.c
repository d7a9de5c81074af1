/* cmd_report.c - `eplb report` (not yet implemented). */
#include <stdio.h>

#include "cli.h"

int cmd_report(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "eplb report: not implemented yet\n");
  return CLI_EXIT_FAIL;
}
