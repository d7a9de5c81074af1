/* cmd_plan.c - `eplb plan` (work in progress). */
#include <stdio.h>

#include "cli.h"

int cmd_plan(int argc, char **argv) {
  (void)argc, (void)argv;
  fprintf(stderr, "eplb plan: not implemented yet\n");
  return CLI_EXIT_FAIL;
}
