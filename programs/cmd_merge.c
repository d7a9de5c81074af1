/* cmd_merge.c - `eplb merge` (not yet implemented). */
#include <stdio.h>

#include "cli.h"

int cmd_merge(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "eplb merge: not implemented yet\n");
  return CLI_EXIT_FAIL;
}
