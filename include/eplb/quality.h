/* eplb/quality.h - Plan quality: the balanced policy, the lower bound, reports, multi-input
 * planning and migration-aware re-planning. Included by eplb.h; may be included on its own.
 *
 * The balanced policy (EPLB_POLICY_BALANCED in eplb_plan, the default of eplb_params_init)
 *   Chooses replica counts and placement together to minimise the largest device load of each
 *   layer, never two replicas of one expert on a device. Per pool of devices (the whole cluster
 *   for hierarchy none and soft, one node for strict):
 *     1. counts by the exact min-max greedy of the lower bound below (cap: the pool's devices);
 *        under soft with many extra replicas (see Locality) instead the counts that make the
 *        heaviest node's first replicas (sum of load_e / d_e over its experts) as light as
 *        possible, exactly, the remaining replicas then going to the largest shares;
 *     2. largest-first packing, each replica to the lightest device with room lacking it;
 *     3. swap search: exchange a replica of the busiest device with a smaller one of another
 *        device while that lowers the pair's maximum (at most 4 steps per slot);
 *     4. count rounds (at most 24 tries per pool, 256 under soft): one replica moves from one of
 *        the 8 experts whose replicas grow least to an expert of the busiest device, 2-3 again on
 *        the two experts' replicas, kept if the maximum drops (or stays while fewer devices sit
 *        within 0.1% of it);
 *     5. when 1-4 ended over 0.2% above the bound (hierarchy none, or N = 1): a target-driven
 *        construction, a binary search (14 steps) on a target T between the bound and the plan
 *        so far: experts largest first, each split into the fewest equal replicas that fit on
 *        the devices with the most room under T while a free slot stays for every expert still
 *        to come; leftover slots take one more replica of the expert whose new replica best fits
 *        the roomiest device. Its lightest plan goes through 3-4 and is kept when lighter;
 *     6. with at most 16 slots per device, when still over 0.2% above the bound: a count descent
 *        (at most 400 moves; it stops after 30% of them in a row without gain) moves one replica
 *        from a pseudo-random expert holding two or more (fixed seed) to an expert of the
 *        busiest device of a fast largest-first packing, keeping moves that do not raise the
 *        maximum; its counts go through 2-4 again and the lighter plan is kept. While the plan
 *        stays more than 0.4% above where the search stops, further descents run from other
 *        seeds (up to 8 in all, ending after 3 in a row found nothing lighter), the best plan
 *        kept. With 2 slots per device (not soft) the fast packing is the exact pairing of the
 *        k-th largest replica with the k-th smallest, each descent anneals (2400 moves; a move
 *        raising the maximum by r is kept with probability exp(-r / t), t falling linearly from
 *        0.3% of the starting maximum to 0; the lightest counts seen are kept), up to 4 run,
 *        and on pools of more than 64 devices step 4 is skipped (there its swap searches cost
 *        more than they find; the seeds find more in the same time). Before that, a pool with 2
 *        slots per device and at most 5e5 count vectors (e.g. 8 experts on 8 devices, or 10 on
 *        10) has every count vector judged by that pairing, and the 8 lightest go through 2-4
 *        (duplicates can make the lightest pack worse than the next): such pools end at the
 *        optimum of the pairing on most inputs, where single moves of the descent all go uphill.
 *     7. with 2 slots per device (not soft), when still over 1% above the bound on pools of at
 *        most 256 slots, over 2% on larger ones: a neighbourhood search over counts from the
 *        greedy's counts of step 1, 6 times with 6 seeds on pools of up to 128 slots (3 times on
 *        256), 96000 / slots steps each; 6 times 1000 steps on larger pools; at most 12 steps
 *        per expert. A step frees the two experts of a pair above an aim
 *        0.1% below the lightest largest pair so far (a pair drawn at random) and three other
 *        experts at random, and tries every recount of the five (each within 3 of its count,
 *        the same total), judged by the pairing of 6: the least sum above the aim (a pair of
 *        two replicas of one expert counting as 0.1% of the aim above it), then the smallest
 *        largest pair, one of equals at random. The aim drops once no pair is above it. Each
 *        search's lightest counts go through 2-4, the lighter plan kept. Recounting several
 *        experts at once crosses the ridges where every single move of 6 goes uphill; on
 *        OLMoE's 2-slot layers it took the worst layer from 1.030 to 1.020 of the bound. It
 *        costs about 0.2 s per pool of 128 slots, 0.3 s per larger pool it runs on; a
 *        time_budget_ms cuts it short between searches. On the synthetic R512 G256 benchmark
 *        (12 workloads) it takes the worst layer from 1.0468 to 1.0394 of the bound for 1.6x
 *        the time per plan (about 2 -> 3 s); short searches on every layer 1% above gained
 *        little there, hence the 2% gate.
 *     9. on a tiny pool (at most 8 experts, as Mixtral's, at most 16 slots, 3 or more per
 *        device), when still above the bound: the exact optimum by branch and bound below the
 *        plan so far (every count and every placement up to devices with the same load and used
 *        slots, heavy experts with many replicas first; at most 10^6 branches, a few ms per
 *        layer). On 150 random tiny pools balanced now equals the exhaustive optimum on all,
 *        145 before; on Mixtral's arxiv counts at 3 slots per device (G4) max/LB went from
 *        1.0202 to the optimum, 1.0167.
 *   Every search stops once the busiest device is within 0.05% of the pool's lower bound (under
 *   strict, of the heaviest node's bound: a light node need not be better than the bottleneck).
 *   Under soft, 5-9 are skipped: none sees the first-replica rule.
 *   Safety net: the deepseek policy's duplicate-free plan for the same parameters is computed
 *   too, and its layer is kept wherever its busiest device is lighter (only where its placement
 *   obeys the hierarchy: always for hierarchical deepseek, for global deepseek with none). So
 *   balanced is never worse than deepseek on any layer; in tests this picks deepseek's layer in
 *   about 1% of small random shapes (mostly strict with R = E), never on the benchmark.
 *   Locality (eplb_params.hierarchy):
 *     strict: all replicas of an expert on the node of its group (group of e = e / (E/K)). The
 *       group -> node partition minimises the largest node lower bound (ties: the smaller sum of
 *       squares), by exact search over set partitions into N non-empty blocks when K <= 10
 *       (blocks may differ in size: a heavy group may have a node to itself); beyond that, equal
 *       blocks by largest-first packing of group loads. Then steps 1-4 per node.
 *     soft: the same partition search, a node's value being its first replicas' load under the
 *       min-max counts; each expert's first replica stays on its group's node, extra replicas go
 *       anywhere. With up to a quarter of the slots extra (R - E <= R / 4, e.g. 288 or 320 slots
 *       for 256 experts) by decomposition, from the min-max greedy's counts (and, when that plan
 *       ends over 1% above the bound, again from those steps 1-6 reach without locality): the
 *       extra replicas go largest first to the lightest node with a free slot and a device lacking
 *       the expert (a replica over half a device's mean load preferably to a node holding fewer
 *       such replicas than devices), then trade places between the heaviest node and another while
 *       that lowers the heavier of the two. A node search then changes counts and places together,
 *       at most 400 moves: on a node, a copy of one expert gives way to a new replica of another
 *       (shrinking all of its replicas; the one giving way keeps its first replica and one at
 *       least, no replica grows past the bound), or the heaviest node trades a copy with another
 *       node; each move taken is the one leaving the lightest heaviest node (then the smallest sum
 *       of squared node loads), it stops within 0.1% of the mean node. No move puts more copies
 *       of an expert on a node than devices, more replicas over half a device's mean than devices,
 *       or raises a node's fold past max(bound, its fold): the largest pair sum when its Gn
 *       largest replicas are paired with the next Gn, largest with smallest (a node with a large
 *       fold packs badly however even its load). Each node is then packed alone by steps 2-3 with
 *       its counts fixed, and the node with the busiest device evened out two devices at a time:
 *       the exchange of one replica for one (none helping: two for two) that evens the pair best,
 *       until no pair gains (with over 6 slots per device only pairs whose heavier device is above
 *       where this stops), the node is within 0.02% of its mean, or it is no longer the busiest
 *       (then the next). A plan still over 0.2% above the bound goes through 3-4 on all devices
 *       under the rule (stopping at 0.2%); one still over 1% above it is also planned as with more
 *       extra replicas (next sentence), and while the lightest plan stays over 1% above, by a
 *       target-driven construction under the rule, up to 16 times: a binary search (14 steps) on
 *       a target T from the bound up to 16 ends spread geometrically from 1.05% to 10% above it,
 *       tightest first (each end gives a different plan), experts
 *       largest first, each split into the fewest equal replicas that fit on the devices with the
 *       most room under T, one on its home node, while every node keeps a free slot and room for
 *       the estimated first replicas of its experts still to come (an expert that fits nowhere
 *       goes whole to its home node's roomiest device, and T counts as missed); leftover slots
 *       take extra replicas as in 5. A layer still over 1% above after the 16 ends gets them
 *       again, now also checking that a node's devices can still take the first replicas it owes
 *       (each device at most its room, and at most the next owed replicas its free slots hold),
 *       which keeps a dominant expert's copies from crowding out its home node's own experts.
 *       Each plan goes through 3-4 under the rule, the lightest kept (src/plan/balanced/README.md
 *       lists what each of these steps gains on the benchmark).
 *       A layer still over 1% above the bound (up to 8 slots per
 *       device, within a time budget) is then annealed at node level from the lightest plan: the
 *       state is each node's copies of every expert and the counts; a move trades a free copy
 *       (not an expert's first replica) between two nodes (half of them from the node with the
 *       busiest device), or (3 in 10) on a node lets a free copy of
 *       an expert with two or more replicas give way to a new replica of another; every node it
 *       touches is packed alone (largest first to the lightest device lacking the expert, then
 *       up to 8 passes over all device pairs with the exchange of one replica for one or two for
 *       two (two for two up to 8 slots per device) that evens the pair best, then such exchanges
 *       from the busiest device while they lower it). The cost is the sum over nodes of the
 *       squared share by which the node's busiest device exceeds 0.1% below the 1% goal; moves are
 *       taken by the Metropolis rule at a temperature falling linearly from 5e-7 to 0 over
 *       300000 moves, a node's mean load (a lower bound) ruling most out before packing. It
 *       stops at the goal, after 12000 packings, or 3000 packings without a lighter plan (fixed
 *       seed); the result goes through 3-4 under the rule and is kept when lighter (measured at R
 *       320 over four seeds' 12 workloads: layers within 1% of none 2778 -> 2781 of 2784; the
 *       benchmark's dominant-expert layer 1.0141 -> 1.0092 of none, its soft time 185 -> 228
 *       ms/plan; a layer it cannot bring there costs 0.3-2.6 s, which time_budget_ms caps). With
 *       more extra replicas steps 1-4 on all devices under the rule (packing reserves the node
 *       slots the first replicas still need; swaps keep a first replica on its node).
 *     none: groups and nodes ignored.
 *     auto (default): strict when N > 1 and K % N == 0, else none.
 *   Determinism: with time_budget_ms <= 0 the result depends on the input only. With a budget,
 *   count rounds (step 4), the two-slot searches and soft's node-level annealing stop once the
 *   plan has used its share of the budget, a safety stop only: every
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


/* ---- several load inputs ---- */

/* What eplb_plan_multi minimises. */
typedef enum eplb_objective {
  EPLB_OBJECTIVE_SUM = 0,  /* plan on the element-wise sum of the inputs (eplb_plan of the sum) */
  EPLB_OBJECTIVE_MEAN = 1, /* the mean over inputs of the busiest device's load */
  EPLB_OBJECTIVE_MAX = 2   /* the largest over inputs of the busiest device's load */
} eplb_objective;

/* Plans one placement for n load inputs (workloads, or windows of the collector) that share
 * experts and layer ids. SUM plans their sum. MEAN and MAX, per layer: the plans (with `params`)
 * of the sum, of the sum of the inputs each scaled to total 1, and of every input alone are
 * candidates, the best by the objective is kept and then improved by exchanging replicas between
 * an input's busiest device and another device (of the same node when the plan keeps groups on
 * nodes) while the objective drops (at most 2 steps per slot; replica counts are kept). The
 * result is validated as eplb_plan's. Deterministic.
 * @return 0, EPLB_EINVAL (no input, inputs of different shapes or layer ids, bad objective),
 *         eplb_plan's errors. */
EPLB_API int eplb_plan_multi(const eplb_loads *const *inputs, size_t n, const eplb_params *params,
                             eplb_objective objective, eplb_placement **out);

/* ---- migration-aware re-planning ---- */

/* Plans `loads` with `params` and matches the result to `old` so that the fewest expert weights
 * move (moves: eplb_placement_moves). Per layer, which old device takes which new device's
 * content is an assignment problem on overlap (distinct experts in common), solved exactly by the
 * Hungarian algorithm; when the plan keeps groups on nodes (strict/soft, hierarchical deepseek,
 * N > 1), whole nodes are matched first (each node pair scored by its own exact device
 * matching), then devices within matched nodes. Experts a device already held keep their slot.
 * Balance is unchanged by the matching. max_moves < 0: no budget, the matched plan is returned.
 * max_moves >= 0: per layer, a path from old's row to the matched new row adopts the new content
 * one device at a time (each step the device leaving the lightest busiest device while every
 * expert keeps a replica; with more than 64 devices, or when no single device can adopt, the rest
 * at once); then the budget buys, greedily, the steps with the largest drop of a layer's busiest
 * load per moved weight. So max_moves 0 moves nothing, a larger budget trades moves for balance,
 * and when old was planned from the same loads and parameters nothing moves at all.
 * `old` must have the loads' layers (same ids) and experts, R = num_replicas and G = num_gpus,
 * and be valid (no duplicates unless deepseek with allow_duplicates).
 * @return 0, EPLB_EINVAL (old does not fit), eplb_plan's errors, EPLB_ENOMEM. */
EPLB_API int eplb_plan_replan(const eplb_loads *loads, const eplb_params *params,
                              const eplb_placement *old, int64_t max_moves, eplb_placement **out);

/* ---- measuring maps ---- */

/* Fills dev_load[0..G-1] with the load of each device of `p`'s layer index `layer` under row
 * index `row` of `loads`, every replica carrying an equal share of its expert's load. Unlike
 * eplb_device_loads the expert counts may differ: experts of `p` beyond the loads carry nothing.
 * @return 0 or EPLB_EINVAL. */
EPLB_API int eplb_map_device_loads(const eplb_loads *loads, int32_t row, const eplb_placement *p,
                                   int32_t layer, double *dev_load);

/* Expert weights that move when layer index `layer` goes from `old` to `p`: the sum over devices
 * of the distinct experts p puts on a device that old's same device does not hold. Both need the
 * same number of devices (slots per device may differ). 0 when p equals old.
 * @return the count (>= 0) or EPLB_EINVAL. */
EPLB_API int64_t eplb_placement_moves(const eplb_placement *old, const eplb_placement *p,
                                      int32_t layer);

/* ---- reports ---- */

/* The measures of one layer of a map against loads (and the overall line, see below). */
typedef struct eplb_layer_report {
  int64_t layer_id;      /* the map's layer id; -1 in the overall line */
  double total;          /* the layer's total load */
  double mean_load;      /* total / G */
  double max_load;       /* load of the busiest device */
  double lower_bound;    /* LB above (for the map's R and G) */
  double balancedness;   /* mean / max, 1 = perfect (1 when max is 0) */
  double max_over_lb;    /* max / LB (1 when LB is 0) */
  double imbalance;      /* (max - mean) / mean (0 when mean is 0) */
  int64_t duplicates;    /* extra replicas of an expert on a device it already holds */
  int32_t missing;       /* experts of the loads with no replica in the map */
  int64_t moves;         /* eplb_placement_moves against the old map; -1 without one */
  double off_node_share; /* load served off its group's home node / total served (see below) */
} eplb_layer_report;

/* A report: one line per layer of the map, in the map's order, and an overall line. Overall,
 * loads are summed over layers (a step runs the layers in turn, so its time follows the sum of
 * the busiest devices): balancedness = sum mean / sum max, max_over_lb = sum max / sum LB,
 * imbalance = (sum max - sum mean) / sum mean; duplicates, missing and moves are summed, the
 * off-node share is weighted by load. */
typedef struct eplb_report {
  int32_t num_layers;         /* lines in `layers` */
  int32_t num_gpus;           /* G of the map */
  int32_t num_slots;          /* R of the map */
  eplb_layer_report *layers;  /* [num_layers] */
  eplb_layer_report overall;
} eplb_report;

/* Measures `map` against `loads` (rows matched by layer id; every layer of the map must have
 * loads) and, when `old` is not NULL, counts moves against it (same layers and devices).
 * Off-node share: expert e is in group e / (E/K) (E: the loads' experts), device d on node
 * d / (G/N); a group's home node is the node serving most of its load (the lowest on ties), and
 * the share is the load its other nodes serve; 0 when K = N = 1. A replica carries load/logcnt.
 * @return 0, EPLB_EINVAL (NULL, a map layer without loads, K not dividing the loads' E, N not
 *         dividing G, old map of another shape), EPLB_ENOMEM. The caller frees *out with
 *         eplb_report_free. */
EPLB_API int eplb_report_compute(const eplb_loads *loads, const eplb_placement *map,
                                 const eplb_placement *old, int32_t num_groups, int32_t num_nodes,
                                 eplb_report **out);
/* Releases a report. NULL is a no-op. */
EPLB_API void eplb_report_free(eplb_report *r);

/* Writes an SVG picture of `map` against `loads` to `path`, atomically (the file is replaced
 * only when complete; on failure it is left as it was):
 *   - per layer, the device loads of the initial placement (`initial` when not NULL, else the
 *     placement without redundancy that gives device d the experts d*E/G .. (d+1)*E/G-1) and of
 *     the map side by side, on one scale per layer, with the mean and LB marked;
 *   - a heat map of expert load across layers (load / layer mean, logarithmic colour scale).
 * The result is well-formed XML (SVG 1.1). `initial` must have the map's devices and layers.
 * @return 0, EPLB_EINVAL, EPLB_EIO, EPLB_ENOMEM. */
EPLB_API int eplb_report_svg(const eplb_loads *loads, const eplb_placement *map,
                             const eplb_placement *initial, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_QUALITY_H */
