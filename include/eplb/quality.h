/* eplb/quality.h - Plan quality: the balanced policy, the lower bound, reports, multi-input
 * planning and migration-aware re-planning. Included by eplb.h; may be included on its own.
 *
 * The balanced policy (EPLB_POLICY_BALANCED in eplb_plan)
 *   Chooses replica counts and placement together to minimise the largest device load of each
 *   layer, never two replicas of one expert on a device. Per pool of devices (the whole cluster
 *   for hierarchy none and soft, one node for strict):
 *     1. counts by the exact min-max greedy of the lower bound below (cap: the pool's devices);
 *     2. largest-first packing, each replica to the lightest device with room lacking it;
 *     3. swap search: exchange a replica of the busiest device with a smaller one of another
 *        device while that lowers the pair's maximum (at most 4 steps per slot);
 *     4. count rounds (at most 24 per pool): one replica moves from the expert whose replicas grow
 *        least to the largest expert of the busiest device, 2-3 again, kept if the maximum drops;
 *        they stop early when the maximum reaches the pool's lower bound.
 *   Locality (eplb_params.hierarchy):
 *     strict: all replicas of an expert on the node of its group (group of e = e / (E/K)). The
 *       group -> node partition minimises the largest node lower bound (ties: the smaller sum of
 *       squares), by exact search over set partitions into N non-empty blocks when K <= 10
 *       (blocks may differ in size: a heavy group may have a node to itself); beyond that, equal
 *       blocks by largest-first packing of group loads. Then steps 1-4 per node.
 *     soft: the same partition, balancing group load sums; each expert's first replica stays on
 *       its group's node, extra replicas go anywhere (packing reserves the node slots the first
 *       replicas still need; swaps keep a first replica on its node).
 *     none: groups and nodes ignored.
 *     auto (default): strict when N > 1 and K % N == 0, else none.
 *   Determinism: with time_budget_ms <= 0 the result depends on the input only. With a budget,
 *   count rounds (step 4) stop once the whole plan has run that long, a safety stop only: every
 *   layer still gets steps 1-3, but a slow machine may then return a different (valid) plan.
 *
 * The lower bound LB of one layer, R slots on G devices
 *   LB = max(total / G, min over d of max_e load_e / d_e), d_e >= 1 distinct devices holding e,
 *   d_e <= G, sum d_e <= R: some device carries at least the mean, and some device carries at
 *   least load_e / d_e of every expert. The inner minimum is exact by the greedy that keeps giving
 *   one more device to the expert with the largest load_e / d_e (an extra device for any other
 *   expert cannot lower the current maximum, and the maximum never rises). No placement without
 *   duplicates beats LB; hierarchy strict usually cannot reach it.
 */
#ifndef EPLB_QUALITY_H
#define EPLB_QUALITY_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- lower bound ---- */

/* Computes LB (above) of row index `layer` of `loads` for num_slots slots on num_gpus devices.
 * @return 0, EPLB_EINVAL (NULL, layer out of range, num_gpus < 1, num_slots < E), EPLB_ENOMEM. */
EPLB_API int eplb_lower_bound(const eplb_loads *loads, int32_t layer, int32_t num_slots,
                              int32_t num_gpus, double *out);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_QUALITY_H */
