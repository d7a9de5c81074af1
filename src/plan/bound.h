/* bound.h - the lower bound on a pool's busiest device (src/plan/bound.c; not installed). The
 * balanced policy, the re-planner and the reports use it. */
#ifndef EPLB_PLAN_BOUND_H
#define EPLB_PLAN_BOUND_H

#include <stdint.h>

#include "core/eplb_int.h"

/* The smallest possible largest item when n experts of loads w[] get replica counts d_e with
 * 1 <= d_e <= cap and sum d_e <= slots: the greedy that keeps giving one more replica to the
 * expert with the largest w_e / d_e is exact. When cnt is not NULL it receives the counts, which
 * then sum to exactly `slots` (every slot used; slots <= n * cap is required). */
double eplb__min_max_share(const double *w, int32_t n, int32_t slots, int32_t cap, int32_t *cnt);

/* The lower bound of one pool: max(sum w / ndev, eplb__min_max_share(w, n, slots, ndev)). */
double eplb__pool_bound(const double *w, int32_t n, int32_t slots, int32_t ndev);

#endif /* EPLB_PLAN_BOUND_H */
