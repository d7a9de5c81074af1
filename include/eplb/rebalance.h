/* eplb/rebalance.h - Online re-balancing: the decision a serving job takes every N steps.
 * Included by eplb.h; may be included on its own.
 *
 * A job serves with placement `cur` and counts routed tokens in a collector's ring of windows
 * (eplb/collect.h). Every N steps it closes the window (eplb_collector_next_window), asks
 * eplb_rebalance_collector() what to do, and, when the answer moves something, executes the
 * transfer plan (eplb_mpi_migrate, or the framework's own copy) and routes with the new
 * placement. The decision, per layer (layers are independent):
 *   1. the recent windows are combined into one load matrix: window of age a gets weight w_a
 *      (opts.weights, or opts.decay^(a - first_window)), loads are sum_a w_a * count_a;
 *   2. a candidate is planned from those loads with the migration-aware re-planner
 *      (eplb_plan_replan, relative to `cur`, within opts.max_moves expert copies in all);
 *   3. a layer moves only when the predicted gain, its max/mean under `cur` minus its max/mean
 *      under the candidate (both measured on the combined loads), is positive and at least
 *      opts.min_gain; the other layers keep cur's rows exactly. When the budget was spent on
 *      layers that then stay, the re-planner runs again on the layers still in play only, until
 *      every layer in play clears the threshold.
 * max/mean is the busiest device's load over the mean device load (1 = perfect, 1 for a layer
 * without load). The decision is deterministic when params->time_budget_ms <= 0.
 *
 * A job that sums counts across ranks itself (an all-reduce of an L x E array) calls
 * eplb_rebalance() with that array in an eplb_loads (eplb_loads_create, then fill `load`).
 *
 * Typical use, on every rank, every N steps:
 *   eplb_collector_next_window(c);
 *   eplb_rebalance_opts o;  eplb_rebalance_opts_init(&o);  o.num_windows = 4;  o.max_moves = 64;
 *   eplb_rebalance_result *r = NULL;
 *   if (eplb_rebalance_collector(c, &params, cur, &o, &r) == 0 && r->num_moved > 0) {
 *     ... execute r->transfer, then route with r->placement (keep it, free cur) ...
 *   }
 *   eplb_rebalance_result_free(r);
 */
#ifndef EPLB_REBALANCE_H
#define EPLB_REBALANCE_H

#include "../eplb.h"
#include "collect.h"
#include "move.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default minimum predicted gain in max/mean for a layer to move (0.02: a layer whose busiest
 * device would carry 2% of the mean less). */
#define EPLB_REBALANCE_MIN_GAIN 0.02

/* Options of a re-balancing decision; eplb_rebalance_opts_init() sets the defaults. */
typedef struct eplb_rebalance_opts {
  int32_t first_window;  /* age of the newest window used (0 = the current one, the default;
                            after next_window() it is empty and contributes nothing) */
  int32_t num_windows;   /* windows used, ages first_window .. first_window + num_windows - 1;
                            0 (default) = every window the ring can hold from first_window on */
  const double *weights; /* [num_windows] weight of each window, newest first, finite, >= 0,
                            not all 0; NULL (default) = opts.decay. Only read during the call */
  double decay;          /* with weights NULL: the window of age first_window + i weighs
                            decay^i; in (0, 1], default 1 (all windows alike) */
  int64_t max_moves;     /* at most this many expert copies move in one decision (all layers
                            together, as eplb_placement_moves counts them); -1 (default) = no
                            limit, 0 = nothing moves */
  double min_gain;       /* a layer moves only when its max/mean drops by at least this much;
                            finite, >= 0; default EPLB_REBALANCE_MIN_GAIN */
} eplb_rebalance_opts;

/* The decision: the placement to serve with, how to get there, and the predicted figures. All
 * arrays have num_layers entries in the placement's layer order. */
typedef struct eplb_rebalance_result {
  int32_t num_layers;        /* L */
  int32_t num_moved;         /* layers that move (0: keep cur as it is) */
  int64_t copies_moved;      /* expert copies sent over the network = transfer->stats.receives */
  eplb_placement *placement; /* the new placement (== transfer->to, owned by the result; clone
                                it to keep it past eplb_rebalance_result_free): kept layers
                                hold cur's rows exactly, moved layers are slot-aligned with cur
                                so that experts a device keeps stay in their slot */
  eplb_transfer *transfer;   /* the plan from cur to placement (eplb_transfer_plan; all keeps
                                when nothing moves) */
  uint8_t *moved;            /* [L] 1 when the layer takes the candidate */
  double *cur_max_over_mean; /* [L] predicted max/mean of cur on the combined loads */
  double *new_max_over_mean; /* [L] predicted max/mean of the returned placement */
  double *candidate_max_over_mean; /* [L] the candidate's, moved or not (the figure the gain
                                      was judged on) */
  int64_t *moves;            /* [L] copies the layer moves (0 when kept) */
  double cur_overall;        /* sum over layers of max / sum of mean, under cur */
  double new_overall;        /* the same under the returned placement */
} eplb_rebalance_result;

/* Fills `opts` with the defaults: all windows from the current one, equal weights, no move
 * limit, min_gain EPLB_REBALANCE_MIN_GAIN. */
EPLB_API void eplb_rebalance_opts_init(eplb_rebalance_opts *opts);

/* Combines windows of collector `c` into one load matrix as step 1 above (L x E of the
 * collector, layer ids 0..L-1). `count` holds the exact sum when every weight used is 1 and
 * is NULL otherwise. *out is owned by the caller (eplb_loads_free); NULL on failure.
 * @return 0, EPLB_EINVAL (NULL argument, a bad option: first_window outside 0..W-1,
 *         num_windows < 0 or past the ring, decay outside (0, 1], a weight negative or not
 *         finite, all weights 0; the detail names the option), EPLB_ERANGE (a count above
 *         2^63 - 1), EPLB_ENOMEM. */
EPLB_API int eplb_loads_from_windows(const eplb_collector *c, const eplb_rebalance_opts *opts,
                                     eplb_loads **out);

/* Decides, from `loads` (already combined: the window options of opts are not used here, only
 * max_moves and min_gain), whether and where to move experts of `cur`, as steps 2-3 above.
 * `params` plans the candidate (its num_replicas and num_gpus must be cur's); `loads` must have
 * cur's layers (same ids, same order) and experts; `cur` must be valid for params (no duplicate
 * unless deepseek with allow_duplicates). `cur` is not modified. opts may be NULL (defaults).
 * @return 0, EPLB_EINVAL (NULL argument, shapes or layer ids differ, a bad option: max_moves
 *         < -1, min_gain negative or not finite; the detail names it), eplb_plan_replan's
 *         errors, EPLB_ENOMEM. *out is owned by the caller (eplb_rebalance_result_free); NULL on
 *         failure. */
EPLB_API int eplb_rebalance(const eplb_loads *loads, const eplb_params *params,
                            const eplb_placement *cur, const eplb_rebalance_opts *opts,
                            eplb_rebalance_result **out);

/* eplb_loads_from_windows(c, opts) then eplb_rebalance() on the result; the collector's layers
 * 0..L-1 must be cur's layer ids. @return as those two. */
EPLB_API int eplb_rebalance_collector(const eplb_collector *c, const eplb_params *params,
                                      const eplb_placement *cur, const eplb_rebalance_opts *opts,
                                      eplb_rebalance_result **out);

/* Releases a result, its placement and its transfer plan. NULL is a no-op. */
EPLB_API void eplb_rebalance_result_free(eplb_rebalance_result *r);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_REBALANCE_H */
