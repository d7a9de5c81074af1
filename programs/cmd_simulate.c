/* cmd_simulate.c - `eplb simulate` (not yet implemented). */
#include <stdio.h>

#include "cli.h"

int cmd_simulate(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "eplb simulate: not implemented yet\n");
  return CLI_EXIT_FAIL;
}
