/* cmd_migrate.c - `eplb migrate` (not yet implemented). */
#include <stdio.h>

#include "cli.h"

int cmd_migrate(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "eplb migrate: not implemented yet\n");
  return CLI_EXIT_FAIL;
}
