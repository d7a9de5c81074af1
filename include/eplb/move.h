/* eplb/move.h - Step 3, move: initial placements, transfer plans between placements, routing.
 * Included by eplb.h; may be included on its own. The MPI executor of a transfer plan is
 * eplb_mpi_migrate() in eplb_mpi.h.
 *
 * Ranks: device d of a placement is MPI rank d. A device's slots are consecutive (slot p belongs to
 * device p / (R/G)); a slot's "local index" is its position among its device's slots (p % (R/G)).
 */
#ifndef EPLB_MOVE_H
#define EPLB_MOVE_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- placements ---- */

/* Builds the layout a job starts from, as the seed does: device d holds experts (d*k + j) % E in
 * its slots j = 0 .. k-1, in every layer (R = G*k). With k = E/G this is the training layout
 * (contiguous blocks, no replica); a larger k wraps around, giving some experts a second replica.
 * Layer ids are 0 .. L-1; the index (logcnt, log2phy) is built.
 * @return 0, EPLB_EINVAL (a size < 1, G*k < E so some expert would have no slot, k > E so a
 *         device would hold an expert twice, NULL out), EPLB_ENOMEM. */
EPLB_API int eplb_placement_initial(int32_t num_layers, int32_t num_experts, int32_t num_gpus,
                                    int32_t k, eplb_placement **out);

/* Reorders, in every layer and on every device, the slots of `to` so that an expert a device holds
 * in both placements stays in the slot (local index) it has in `from`: for each local index i
 * below min(slots per device of from, of to), if from's slot i holds an expert that the device
 * also holds in `to` and that is not matched yet, that expert takes local index i in `to`; the
 * other experts fill the remaining indices in their previous relative order. `from` and `to`
 * may have different slot counts per device; they must agree on L, E, G. This maximises the
 * slots whose content can stay where it is (the "keep"s of a transfer plan). Routing is not
 * affected (it follows log2phy, which is rebuilt). Duplicates are matched occurrence by occurrence.
 * @return 0, EPLB_EINVAL (NULL, shapes differ), EPLB_EINVALID (an expert id out of range),
 *         EPLB_ENOMEM. On failure `to` is unchanged. */
EPLB_API int eplb_placement_align(eplb_placement *to, const eplb_placement *from);

/* Renumbers, layer by layer, the devices of `to` so that it shares as much as possible with
 * `from`: the device lists of `to` are permuted (a whole list moves to another device) to
 * maximise the number of (device, expert) pairs both layouts hold, which minimises the copies a
 * transfer plan must move. Each layer's set of device lists is unchanged, so its balance is the
 * same; only which rank serves which list changes (routing follows log2phy, which is rebuilt).
 * Nodes stay whole: with gpus_per_node P (0 = one node) the devices of a new node all go to one
 * old node, so a hierarchical plan keeps its groups on one node. The choice is optimal: an
 * assignment of devices within each pair of nodes, then of nodes (Hungarian algorithm,
 * O(G^2 P + N^3) per layer for N nodes), deterministic. Slot counts may differ.
 * @return 0, EPLB_EINVAL (NULL, shapes differ, P does not divide G), EPLB_EINVALID (an expert
 *         id out of range), EPLB_ENOMEM. On failure `to` is unchanged. */
EPLB_API int eplb_placement_relabel(eplb_placement *to, const eplb_placement *from,
                                    int32_t gpus_per_node);

/* ---- transfer plans ---- */

/* What fills one slot of the new layout. */
typedef enum eplb_xfer_kind {
  EPLB_XFER_KEEP = 0,  /* the slot (same rank, same local index) already holds the expert */
  EPLB_XFER_LOCAL = 1, /* copied from another slot of the same rank in the old layout */
  EPLB_XFER_RECV = 2,  /* received from src_rank, which holds it in the old layout */
  EPLB_XFER_DUP = 3    /* a second copy on a rank that receives the expert once: copied from
                          slot src_slot of the NEW layout after the layer's receives landed */
} eplb_xfer_kind;

/* One slot of the new layout and where its content comes from. */
typedef struct eplb_xfer {
  int32_t layer;    /* layer index (row of the placements) */
  int32_t dst_slot; /* slot of `to` (global index 0 .. R_to-1) */
  int32_t expert;   /* logical expert it will hold */
  int32_t kind;     /* an eplb_xfer_kind */
  int32_t src_rank; /* rank that provides the bytes (the destination's own rank unless RECV) */
  int32_t src_slot; /* slot of `from` it is read from (of `to` for DUP) */
} eplb_xfer;

/* Options of eplb_transfer_plan_ex(); eplb_transfer_opts_init() sets the defaults. */
typedef struct eplb_transfer_opts {
  int32_t gpus_per_node; /* node size for choosing senders; 0 (default) = all ranks on one node */
  int align;             /* 1 (default): plan for eplb_placement_align(to, from) */
  int relabel;           /* 1: plan for eplb_placement_relabel(to, from, gpus_per_node) first
                            (default 0: each rank gets the device lists `to` gives it) */
} eplb_transfer_opts;

/* Counts of a plan (whole plan unless said otherwise). Bytes are counts times the bytes one
 * expert copy takes in all tensors; see eplb_transfer_plan_bytes(). */
typedef struct eplb_transfer_stats {
  int64_t slots;           /* slots of the new layout over all layers (L * R_to) */
  int64_t keeps;           /* EPLB_XFER_KEEP slots */
  int64_t local_copies;    /* EPLB_XFER_LOCAL plus EPLB_XFER_DUP slots */
  int64_t receives;        /* EPLB_XFER_RECV slots: expert copies sent over the network */
  int64_t upstream_copies; /* what upstream moves: every target slot fetched from the expert's
                              home rank (its first slot in `from`), local ones included = slots */
  int64_t upstream_remote; /* of those, fetches whose home rank is another rank; upstream_* count
                              the map `to` as given (not relabelled) */
  int64_t max_sent;        /* the largest number of copies one rank sends (all layers) */
  int64_t max_received;    /* the largest number of copies one rank receives (all layers) */
  int64_t upstream_max_sent; /* the same for upstream's way: the most copies one home rank
                                sends to other ranks */
  int64_t max_layer_sent;  /* the largest number of copies one rank sends in one layer */
  int32_t staging_slots;   /* in-place staging one rank needs: max over layers and ranks of the
                              slots it stages (see eplb_transfer_staging_slots) */
} eplb_transfer_stats;

/* A transfer plan: for every layer and every slot of the new layout, where its content comes
 * from. Computed identically on every rank from the same inputs (deterministic). */
typedef struct eplb_transfer {
  int32_t num_layers, num_gpus;
  int32_t from_slots;        /* R of the old layout */
  int32_t to_slots;          /* R of the new layout */
  eplb_placement *to;        /* the new layout the plan produces (aligned when opts.align):
                                route with this one, it is owned by the plan */
  eplb_xfer *xfers;          /* [L * to_slots], layer-major, slots ascending */
  uint8_t *needed;           /* [L * from_slots]: 1 when the old slot's content is read by
                                a send or a local copy of the layer */
  uint8_t *staged;           /* [L * to_slots]: 1 when moving in place copies the slot's old
                                content to the staging area first (see
                                eplb_transfer_staging_slots); all 0 when the slot counts differ */
  eplb_transfer_stats stats;
  int32_t *step;             /* [L * to_slots]: moving in place, the round (0..3) in which the
                                slot's receive or local copy can be posted: 0 when none of its
                                old content must be read first, or when it is staged; else the
                                round after its last send completed or the round of its last
                                local copy. An executor that runs a layer's rounds in turn, each
                                rank posting a round's sends (in the round of their destination
                                slot) and receives together and waiting for them, matches every
                                message within its round (as eplb.torch.migrate does). All 0 when
                                the slot counts differ (out of place: one round) */
} eplb_transfer;

/* Fills `opts` with the defaults (one node, align on, relabel off). */
EPLB_API void eplb_transfer_opts_init(eplb_transfer_opts *opts);

/* Plans how to turn layout `from` into layout `to` with default options
 * (eplb_transfer_plan_ex(from, to, NULL, out)). */
EPLB_API int eplb_transfer_plan(const eplb_placement *from, const eplb_placement *to,
                                eplb_transfer **out);

/* Plans how to turn layout `from` into layout `to` (L, E, G and layer ids equal; slot counts may
 * differ). The plan keeps its own copy of `to` in plan->to (relabelled when opts->relabel, then
 * aligned to `from` unless opts->align == 0); `to` itself is not modified. Each slot of plan->to
 * is KEEP when the same slot position already holds the expert, LOCAL when another slot of the
 * same rank holds it, DUP when the rank receives that expert for an earlier slot of the same
 * layer, else RECV from a rank holding it in `from`. The number of RECVs is minimal: one per
 * (rank, expert) pair of plan->to whose rank lacks the expert in `from`.
 * Senders are spread: slots are visited in ascending order and each receive takes, among the
 * ranks holding the expert, one on the receiver's node when there is one, then the one with
 * the fewest sends in this layer, then the fewest sends so far in all layers, then the first
 * in the order receiver+1, receiver+2, ... (mod G). The sender reads its first slot holding
 * the expert. `to` need not hold every expert (a partial layout is planned as it is); every
 * expert it holds must have a slot in `from`. opts may be NULL (defaults).
 * @return 0, EPLB_EINVAL (NULL, shapes differ, gpus_per_node does not divide G), EPLB_EINVALID
 *         (an expert of `to` has no slot in `from`, a bad expert id), EPLB_ENOMEM.
 *         Free with eplb_transfer_free(). */
EPLB_API int eplb_transfer_plan_ex(const eplb_placement *from, const eplb_placement *to,
                                   const eplb_transfer_opts *opts, eplb_transfer **out);

/* Releases a plan and its `to`. NULL is a no-op. */
EPLB_API void eplb_transfer_free(eplb_transfer *plan);

/* The xfers of layer `layer` (to_slots entries, slots ascending), NULL when out of range. */
EPLB_API const eplb_xfer *eplb_transfer_layer(const eplb_transfer *plan, int32_t layer);

/* Number of slots rank `rank` stages in layer `layer` when moving in place (the slots
 * plan->staged marks). In place, a slot may be overwritten only after every read of its
 * old content (its sends, its local copies) is done, so a slot waits for the slots that read it,
 * which may wait for theirs. Most slots receive directly into place once free; staging is only
 * where waiting could never end or would take long: one slot of every cycle of slots that wait
 * for each other (a swap between two ranks is such a cycle; in each cycle the slot of the rank
 * with the fewest staged slots so far in the layer, then the lowest slot), and any slot whose
 * chain of waits would exceed 3 message times. A staged slot's old content is copied to the
 * staging area first, its sends and local copies read it from there, and the slot is free at
 * once: one extra copy.
 * For example a swap of every slot between two ranks with 4 slots each stages 2 slots per rank.
 * Returns -1 on bad arguments. */
EPLB_API int32_t eplb_transfer_staging_slots(const eplb_transfer *plan, int32_t layer,
                                             int32_t rank);

/* Bytes the plan moves over the network (receives * bytes_per_copy) where bytes_per_copy is
 * what one expert copy takes in all tensors together. */
EPLB_API int64_t eplb_transfer_plan_bytes(const eplb_transfer *plan, int64_t bytes_per_copy);

/* ---- routing ---- */

/* How eplb_route() picks one of an expert's replicas for a token. */
typedef enum eplb_route_mode {
  EPLB_ROUTE_ROUND_ROBIN = 0, /* the expert's replicas in turn: its n-th token of the call goes
                                 to replica n mod replica count */
  EPLB_ROUTE_PREFER_LOCAL = 1 /* a replica on the caller's rank, else on its node, else any;
                                 several candidates are taken in turn the same way */
} eplb_route_mode;

/* Maps each token's logical expert to one of its physical slots in layer index `layer` of `p`
 * (which needs its index): physical_slots[i] gets a slot holding logical_ids[i]. `rank` is the
 * caller's device (used by PREFER_LOCAL; all ranks count as one node). Deterministic: the
 * result depends only on the arguments. Replicas are taken in turn per expert, by the count of
 * the expert's earlier ids in the call, not by position: in a tokens x top-k array a position
 * modulo the replica count would follow the choice's rank (with k = 2 and two replicas, every
 * first choice of an expert on one replica), so an expert's ids spread over its replicas within
 * one of each other whatever their order. For example with replicas {3, 9} of expert 5, ids
 * {5, 1, 5, 5} go to slots {3, s, 9, 3}. Each call starts again at the first replica: route a
 * step's tokens in one call (a call per token of a batch of one would use one replica only).
 * @return 0, EPLB_EINVAL (NULL, no index, bad layer, mode or rank), EPLB_ERANGE (an id outside
 *         0 .. E-1; physical_slots is then partly filled), EPLB_EINVALID (an expert without
 *         replica), EPLB_ENOMEM. */
EPLB_API int eplb_route(const eplb_placement *p, int32_t layer, const int32_t *logical_ids,
                        size_t n, int32_t *physical_slots, eplb_route_mode mode, int32_t rank);

/* eplb_route() with nodes of gpus_per_node ranks (0 = one node) for EPLB_ROUTE_PREFER_LOCAL.
 * @return as eplb_route, and EPLB_EINVAL when gpus_per_node does not divide G. */
EPLB_API int eplb_route_nodes(const eplb_placement *p, int32_t layer, const int32_t *logical_ids,
                              size_t n, int32_t *physical_slots, eplb_route_mode mode,
                              int32_t rank, int32_t gpus_per_node);

/* The routing rule of eplb_route_nodes() as a table, for routing on a device with tensor ops:
 * for every expert e of layer index `layer`, slots[e*X .. e*X+counts[e]-1] (X = p->max_replicas)
 * are the replicas a token may go to in `mode` from `rank` (all of e's replicas for ROUND_ROBIN;
 * those on rank, else on its node, else all for PREFER_LOCAL), ascending, -1 padded, so that
 * eplb_route_nodes() sends the n-th id of expert e in a call (n = 0, 1, ...) to
 * slots[e*X + n % counts[e]]. counts[e] is 0
 * only for an expert without replica. slots holds E*X values, counts E.
 * @return 0, or eplb_route_nodes()'s EPLB_EINVAL for the same bad arguments. */
EPLB_API int eplb_route_table(const eplb_placement *p, int32_t layer, eplb_route_mode mode,
                              int32_t rank, int32_t gpus_per_node, int32_t *slots,
                              int32_t *counts);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MOVE_H */
