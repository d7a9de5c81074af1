/* plan_int.h - what src/plan/plan.c dispatches to: the planning policies (not installed). */
#ifndef EPLB_PLAN_INT_H
#define EPLB_PLAN_INT_H

#include "core/eplb_int.h"

/* ---- planning policies (deepseek/deepseek.c, balanced/balanced.c) ---- */

/* Each policy fills p->phy2log for every layer of `loads`; `p` was created by eplb_plan() with
 * the loads' L and E, R = num_replicas, G = num_gpus and the loads' layer ids. eplb_plan() has
 * checked the common parameter rules (sizes >= 1, R % G == 0, R >= E, finite non-negative loads)
 * and builds the index and validates the result afterwards. A policy checks its own rules and
 * returns EPLB_EPARAM with a detail when they fail. */
int eplb__plan_deepseek(const eplb_loads *loads, const eplb_params *params, eplb_placement *p);
int eplb__plan_balanced(const eplb_loads *loads, const eplb_params *params, eplb_placement *p);

#endif /* EPLB_PLAN_INT_H */
