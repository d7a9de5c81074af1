/* plan_deepseek.c - the deepseek policy (placeholder until implemented). */
#include "eplb_int.h"

int eplb__plan_deepseek(const eplb_loads *loads, const eplb_params *params, eplb_placement *p) {
  (void)loads;
  (void)params;
  (void)p;
  return eplb__err(EPLB_ENOTSUP, "policy deepseek: not implemented yet");
}
