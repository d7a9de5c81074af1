/* plan_balanced.c - the balanced policy (placeholder until implemented). */
#include "eplb_int.h"

int eplb__plan_balanced(const eplb_loads *loads, const eplb_params *params, eplb_placement *p) {
  (void)loads;
  (void)params;
  (void)p;
  return eplb__err(EPLB_ENOTSUP, "policy balanced: not implemented yet");
}
