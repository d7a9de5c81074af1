/* params.c - planning parameters: their defaults and the mode and hierarchy they imply (used by
 * the planner and by the move step's routing alike). */
#include <string.h>

#include "core/eplb_int.h"

/* Default wall-clock budget of the balanced policy's search: none, so that a plan depends on its
 * input only (the search is bounded by iteration caps); callers may set one. */
#define EPLB__DEFAULT_BUDGET_MS 0.0

void eplb_params_init(eplb_params *params) {
  if (!params)
    return;
  memset(params, 0, sizeof *params);
  params->policy = EPLB_POLICY_BALANCED;
  params->allow_duplicates = 0;
  params->hierarchy = EPLB_HIER_AUTO;
  params->time_budget_ms = EPLB__DEFAULT_BUDGET_MS;
}

eplb_mode eplb_params_mode(const eplb_params *params) {
  if (params && params->num_nodes > 0 && params->num_groups % params->num_nodes == 0)
    return EPLB_MODE_HIERARCHICAL;
  return EPLB_MODE_GLOBAL;
}

eplb_hierarchy eplb_params_hierarchy(const eplb_params *params) {
  if (!params || params->hierarchy != EPLB_HIER_AUTO)
    return params ? params->hierarchy : EPLB_HIER_NONE;
  if (params->num_nodes > 1 && params->num_groups % params->num_nodes == 0)
    return EPLB_HIER_STRICT;
  return EPLB_HIER_NONE;
}
