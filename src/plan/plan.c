/* plan.c - eplb_plan(): common parameter checks, policy dispatch, validation; and the
 * measures of a placement (device loads, balancedness). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan_int.h"

/* Checks the rules every policy shares; the policies check their own. */
static int check_common(const eplb_loads *loads, const eplb_params *pr) {
  if (pr->num_replicas < 1 || pr->num_groups < 1 || pr->num_nodes < 1 || pr->num_gpus < 1)
    return eplb__err(EPLB_EPARAM, "num_replicas, num_groups, num_nodes and num_gpus must all be "
                                  ">= 1 (got %d, %d, %d, %d)",
                     pr->num_replicas, pr->num_groups, pr->num_nodes, pr->num_gpus);
  if (pr->num_replicas % pr->num_gpus != 0)
    return eplb__err(EPLB_EPARAM, "num_replicas %d is not a multiple of num_gpus %d",
                     pr->num_replicas, pr->num_gpus);
  if (pr->num_gpus % pr->num_nodes != 0)
    return eplb__err(EPLB_EPARAM, "num_gpus %d is not a multiple of num_nodes %d", pr->num_gpus,
                     pr->num_nodes);
  if (pr->num_replicas < loads->num_experts)
    return eplb__err(EPLB_EPARAM, "num_replicas %d is less than the %d experts: every expert "
                                  "needs a slot",
                     pr->num_replicas, loads->num_experts);
  if (pr->policy != EPLB_POLICY_DEEPSEEK && pr->policy != EPLB_POLICY_BALANCED)
    return eplb__err(EPLB_EPARAM, "unknown policy %d", (int)pr->policy);
  if (pr->hierarchy < EPLB_HIER_AUTO || pr->hierarchy > EPLB_HIER_NONE)
    return eplb__err(EPLB_EPARAM, "unknown hierarchy %d", (int)pr->hierarchy);
  if (pr->policy == EPLB_POLICY_BALANCED && pr->allow_duplicates)
    return eplb__err(EPLB_EPARAM, "allow_duplicates reproduces the deepseek policy's reference "
                                  "output: set policy deepseek (balanced never duplicates)");
  size_t n = (size_t)loads->num_layers * (size_t)loads->num_experts;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(loads->load[i]) || loads->load[i] < 0)
      return eplb__err(EPLB_EINVAL, "layer %lld: expert %zu: load %g is not finite and >= 0",
                       (long long)loads->layer_ids[i / (size_t)loads->num_experts],
                       i % (size_t)loads->num_experts, loads->load[i]);
  return 0;
}

int eplb_plan(const eplb_loads *loads, const eplb_params *params, eplb_placement **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "plan: no output");
  *out = NULL;
  if (!loads || !params || !loads->load || !loads->layer_ids || loads->num_layers < 1 ||
      loads->num_experts < 1)
    return eplb__err(EPLB_EINVAL, "plan: no loads or parameters");
  int rc = check_common(loads, params);
  if (rc)
    return rc;
  eplb_placement *p = NULL;
  rc = eplb_placement_create(loads->num_layers, loads->num_experts, params->num_replicas,
                             params->num_gpus, &p);
  if (rc)
    return rc;
  memcpy(p->layer_ids, loads->layer_ids, (size_t)loads->num_layers * sizeof *p->layer_ids);
  if (params->policy == EPLB_POLICY_BALANCED)
    rc = eplb__plan_balanced(loads, params, p);
  else
    rc = eplb__plan_deepseek(loads, params, p);
  if (!rc)
    rc = eplb_placement_build_index(p);
  if (!rc) {
    int dups_ok = params->policy == EPLB_POLICY_DEEPSEEK && params->allow_duplicates;
    rc = eplb_placement_validate(p, dups_ok);
  }
  if (rc) {
    eplb_placement_free(p);
    return rc;
  }
  *out = p;
  return 0;
}
