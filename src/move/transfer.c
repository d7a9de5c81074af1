/* transfer.c - transfer plans: which slot of a new layout keeps its content, copies it locally or
 * receives it from which rank, with the fewest receives and the sends spread over the holders. */
#include <stdlib.h>
#include <string.h>

#include "move/move_int.h"

/* Scratch of the planner, sized once for all layers. */
typedef struct planner {
  const eplb_placement *from;
  const eplb_placement *to;
  const eplb_placement *to_given; /* `to` as the caller gave it: the upstream way's target */
  int32_t G, Sf, St, E, node; /* devices, slots per device (old, new), experts, node size */
  int32_t *first;             /* [G*E] first old slot of expert e on rank d, -1 if none */
  int32_t *got;               /* [G*E] new slot where rank d first receives e, -1 if none */
  int64_t *sent_layer;        /* [G] copies sent in this layer */
  int64_t *sent_total;        /* [G] copies sent in all layers so far */
  int64_t *recv_total;        /* [G] copies received in all layers */
  int64_t *up_sent;           /* [G] upstream: copies home ranks send to other ranks */
} planner;

/* ---- options and helpers ---- */

void eplb_transfer_opts_init(eplb_transfer_opts *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof *opts);
  opts->align = 1;
}

/* Releases a plan, its xfers, its marks and its own copy of the new layout. */
void eplb_transfer_free(eplb_transfer *plan) {
  if (!plan)
    return;
  eplb_placement_free(plan->to);
  free(plan->xfers);
  free(plan->needed);
  free(plan->staged);
  free(plan->step);
  free(plan);
}

/* Points at layer `layer`'s row of xfers. */
const eplb_xfer *eplb_transfer_layer(const eplb_transfer *plan, int32_t layer) {
  if (!plan || layer < 0 || layer >= plan->num_layers)
    return NULL;
  return plan->xfers + (size_t)layer * (size_t)plan->to_slots;
}

/* Bytes over the network: one copy per receive. */
int64_t eplb_transfer_plan_bytes(const eplb_transfer *plan, int64_t bytes_per_copy) {
  if (!plan || bytes_per_copy < 0)
    return 0;
  return plan->stats.receives * bytes_per_copy;
}

/* Counts the copies rank `rank` stages in layer `layer` when moving in place. */
int32_t eplb_transfer_staging_slots(const eplb_transfer *plan, int32_t layer, int32_t rank) {
  const eplb_xfer *x = eplb_transfer_layer(plan, layer);
  if (!x || !plan->staged || rank < 0 || rank >= plan->num_gpus)
    return -1;
  int32_t St = plan->to_slots / plan->num_gpus, n = 0;
  const uint8_t *staged = plan->staged + (size_t)layer * (size_t)plan->to_slots;
  for (int32_t s = rank * St; s < (rank + 1) * St; s++)
    n += staged[s];
  return n;
}

/* Checks that `from` and `to` can be planned between. */
static int check_shapes(const eplb_placement *from, const eplb_placement *to, int32_t node) {
  if (!from || !to || !from->phy2log || !to->phy2log)
    return eplb__err(EPLB_EINVAL, "transfer plan: NULL placement");
  if (from->num_layers != to->num_layers || from->num_experts != to->num_experts ||
      from->num_gpus != to->num_gpus)
    return eplb__err(EPLB_EINVAL, "transfer plan: layouts differ in shape (layers %d/%d, experts "
                                  "%d/%d, devices %d/%d)",
                     from->num_layers, to->num_layers, from->num_experts, to->num_experts,
                     from->num_gpus, to->num_gpus);
  for (int32_t l = 0; l < from->num_layers; l++)
    if (from->layer_ids[l] != to->layer_ids[l])
      return eplb__err(EPLB_EINVAL, "transfer plan: layer %d has id %lld in the old layout but "
                                    "%lld in the new one",
                       l, (long long)from->layer_ids[l], (long long)to->layer_ids[l]);
  if (node < 0 || (node > 0 && from->num_gpus % node != 0))
    return eplb__err(EPLB_EINVAL, "transfer plan: gpus_per_node %d does not divide %d devices",
                     node, from->num_gpus);
  size_t nf = (size_t)from->num_layers * (size_t)from->num_slots;
  size_t nt = (size_t)to->num_layers * (size_t)to->num_slots;
  for (size_t i = 0; i < nf; i++)
    if (from->phy2log[i] < 0 || from->phy2log[i] >= from->num_experts)
      return eplb__err(EPLB_EINVALID, "transfer plan: old layout: slot %zu of layer %zu holds "
                                      "expert %d, outside 0..%d",
                       i % (size_t)from->num_slots, i / (size_t)from->num_slots,
                       from->phy2log[i], from->num_experts - 1);
  for (size_t i = 0; i < nt; i++)
    if (to->phy2log[i] < 0 || to->phy2log[i] >= to->num_experts)
      return eplb__err(EPLB_EINVALID, "transfer plan: new layout: slot %zu of layer %zu holds "
                                      "expert %d, outside 0..%d",
                       i % (size_t)to->num_slots, i / (size_t)to->num_slots, to->phy2log[i],
                       to->num_experts - 1);
  return 0;
}

/* Checks, layer by layer, that every expert `to` holds has a slot in `from`. Relabel and align
 * only move experts between slots of a layer, so the planned copy of `to` then holds no expert
 * without a sender either. Needs check_shapes() to have passed (ids in range). */
static int check_sources(const eplb_placement *from, const eplb_placement *to) {
  uint8_t *held = eplb__calloc((size_t)from->num_experts, sizeof *held);
  if (!held)
    return eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  int rc = 0;
  for (int32_t l = 0; l < from->num_layers && !rc; l++) {
    const int32_t *old = from->phy2log + (size_t)l * (size_t)from->num_slots;
    const int32_t *row = to->phy2log + (size_t)l * (size_t)to->num_slots;
    memset(held, 0, (size_t)from->num_experts);
    for (int32_t s = 0; s < from->num_slots; s++)
      held[old[s]] = 1;
    for (int32_t s = 0; s < to->num_slots && !rc; s++)
      if (!held[row[s]])
        rc = eplb__err(EPLB_EINVALID, "transfer plan: layer %lld: expert %d (slot %d of the new "
                                      "layout) has no slot in the old layout",
                       (long long)to->layer_ids[l], row[s], s);
  }
  free(held);
  return rc;
}

/* ---- choosing a sender ---- */

/* Whether candidate sender r beats the best so far (b) for a receiver: fewer sends in this
 * layer, then fewer sends in all layers (the node rule is applied by the caller). */
static int fewer_sends(const planner *pl, int32_t r, int32_t b) {
  if (pl->sent_layer[r] != pl->sent_layer[b])
    return pl->sent_layer[r] < pl->sent_layer[b];
  return pl->sent_total[r] < pl->sent_total[b];
}

/* Picks the rank that sends expert e to rank `dst` (see eplb_transfer_plan_ex for the rule), or
 * -1 when no rank holds e. Candidates are visited from dst+1 on, so the first wins ties. */
static int32_t pick_sender(const planner *pl, int32_t e, int32_t dst) {
  int32_t best = -1, best_near = 0;
  for (int32_t i = 1; i <= pl->G; i++) {
    int32_t r = (dst + i) % pl->G;
    if (pl->first[(size_t)r * pl->E + e] < 0)
      continue;
    int32_t near = r / pl->node == dst / pl->node;
    if (best < 0 || near > best_near || (near == best_near && fewer_sends(pl, r, best))) {
      best = r;
      best_near = near;
    }
  }
  return best;
}

/* ---- planning one layer ---- */

/* Fills the xfers of layer l and the layer's `needed` marks. */
static int plan_layer(planner *pl, int32_t l, eplb_xfer *x, uint8_t *needed,
                      eplb_transfer_stats *st) {
  const int32_t *old = pl->from->phy2log + (size_t)l * pl->from->num_slots;
  const int32_t *row = pl->to->phy2log + (size_t)l * pl->to->num_slots;
  const int32_t *given = pl->to_given->phy2log + (size_t)l * pl->to->num_slots;
  int32_t G = pl->G, E = pl->E, Sf = pl->Sf, St = pl->St;
  for (size_t i = 0; i < (size_t)G * E; i++)
    pl->first[i] = pl->got[i] = -1;
  for (int32_t s = Sf * G - 1; s >= 0; s--) /* descending so the first slot wins */
    pl->first[(size_t)(s / Sf) * E + old[s]] = s;
  memset(pl->sent_layer, 0, (size_t)G * sizeof *pl->sent_layer);
  memset(needed, 0, (size_t)Sf * G);
  for (int32_t s = 0; s < St * G; s++) {
    int32_t d = s / St, i = s % St, e = row[s];
    eplb_xfer *t = &x[s];
    t->layer = l, t->dst_slot = s, t->expert = e, t->src_rank = d;
    /* Upstream fetches slot s of the map as given from its expert's home: the first rank
     * holding it in the old layout. */
    int32_t home = -1;
    for (int32_t r = 0; r < G && home < 0; r++)
      if (pl->first[(size_t)r * E + given[s]] >= 0)
        home = r;
    if (home < 0) /* check_sources() rules this out; never index with -1 */
      return eplb__err(EPLB_EINVALID, "transfer plan: layer %lld: expert %d of the new layout has "
                                      "no slot in the old one",
                       (long long)pl->to->layer_ids[l], given[s]);
    if (home != d) {
      pl->up_sent[home]++;
      st->upstream_remote++;
    }
    if (i < Sf && old[d * Sf + i] == e) {
      t->kind = EPLB_XFER_KEEP, t->src_slot = d * Sf + i;
      st->keeps++;
    } else if (pl->first[(size_t)d * E + e] >= 0) {
      t->kind = EPLB_XFER_LOCAL, t->src_slot = pl->first[(size_t)d * E + e];
      needed[t->src_slot] = 1;
      st->local_copies++;
    } else if (pl->got[(size_t)d * E + e] >= 0) {
      t->kind = EPLB_XFER_DUP, t->src_slot = pl->got[(size_t)d * E + e];
      st->local_copies++;
    } else {
      int32_t r = pick_sender(pl, e, d);
      if (r < 0) /* check_sources() rules this out; never index with -1 */
        return eplb__err(EPLB_EINVALID, "transfer plan: layer %lld: expert %d of the new layout "
                                        "has no slot in the old one",
                         (long long)pl->to->layer_ids[l], e);
      t->kind = EPLB_XFER_RECV, t->src_rank = r, t->src_slot = pl->first[(size_t)r * E + e];
      needed[t->src_slot] = 1;
      pl->got[(size_t)d * E + e] = s;
      pl->sent_layer[r]++;
      pl->sent_total[r]++;
      pl->recv_total[d]++;
      st->receives++;
    }
  }
  for (int32_t r = 0; r < G; r++)
    if (pl->sent_layer[r] > st->max_layer_sent)
      st->max_layer_sent = pl->sent_layer[r];
  return 0;
}

/* ---- the plan ---- */

/* Allocates the planner's scratch; returns 0 or EPLB_ENOMEM. */
static int planner_init(planner *pl, const eplb_placement *from, const eplb_placement *to,
                        const eplb_placement *to_given, int32_t node) {
  memset(pl, 0, sizeof *pl);
  pl->from = from, pl->to = to, pl->to_given = to_given;
  pl->G = from->num_gpus, pl->E = from->num_experts;
  pl->Sf = from->num_slots / pl->G, pl->St = to->num_slots / pl->G;
  pl->node = node > 0 ? node : pl->G;
  size_t ge = (size_t)pl->G * (size_t)pl->E;
  pl->first = eplb__mallocn(ge, sizeof *pl->first);
  pl->got = eplb__mallocn(ge, sizeof *pl->got);
  pl->sent_layer = eplb__calloc((size_t)pl->G, sizeof *pl->sent_layer);
  pl->sent_total = eplb__calloc((size_t)pl->G, sizeof *pl->sent_total);
  pl->recv_total = eplb__calloc((size_t)pl->G, sizeof *pl->recv_total);
  pl->up_sent = eplb__calloc((size_t)pl->G, sizeof *pl->up_sent);
  if (!pl->first || !pl->got || !pl->sent_layer || !pl->sent_total || !pl->recv_total ||
      !pl->up_sent)
    return eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  return 0;
}

/* Releases the planner's scratch. */
static void planner_free(planner *pl) {
  free(pl->first), free(pl->got), free(pl->sent_layer), free(pl->sent_total);
  free(pl->recv_total), free(pl->up_sent);
}

/* Plans with the default options. */
int eplb_transfer_plan(const eplb_placement *from, const eplb_placement *to,
                       eplb_transfer **out) {
  return eplb_transfer_plan_ex(from, to, NULL, out);
}

/* Plans the move from `from` to `to`: relabel and align a copy of `to`, then each layer. */
int eplb_transfer_plan_ex(const eplb_placement *from, const eplb_placement *to,
                          const eplb_transfer_opts *opts, eplb_transfer **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "transfer plan: no output");
  *out = NULL;
  eplb_transfer_opts o;
  eplb_transfer_opts_init(&o);
  if (opts)
    o = *opts;
  int rc = check_shapes(from, to, o.gpus_per_node);
  if (!rc)
    rc = check_sources(from, to);
  if (rc)
    return rc;
  eplb_transfer *plan = calloc(1, sizeof *plan);
  if (!plan)
    return eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  planner pl;
  memset(&pl, 0, sizeof pl);
  rc = eplb_placement_clone(to, &plan->to);
  if (!rc && o.relabel)
    rc = eplb_placement_relabel(plan->to, from, o.gpus_per_node);
  if (!rc && o.align)
    rc = eplb_placement_align(plan->to, from);
  if (!rc && !plan->to->log2phy)
    rc = eplb_placement_build_index(plan->to);
  if (!rc)
    rc = planner_init(&pl, from, plan->to, to, o.gpus_per_node);
  int32_t L = from->num_layers;
  plan->num_layers = L, plan->num_gpus = from->num_gpus;
  plan->from_slots = from->num_slots, plan->to_slots = to->num_slots;
  if (!rc) {
    plan->xfers = eplb__calloc((size_t)L * (size_t)to->num_slots, sizeof *plan->xfers);
    plan->needed = eplb__calloc((size_t)L * (size_t)from->num_slots, 1);
    if (!plan->xfers || !plan->needed)
      rc = eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  }
  eplb_transfer_stats *st = &plan->stats;
  for (int32_t l = 0; l < L && !rc; l++)
    rc = plan_layer(&pl, l, plan->xfers + (size_t)l * to->num_slots,
                    plan->needed + (size_t)l * from->num_slots, st);
  if (!rc)
    rc = eplb__transfer_stage(plan);
  if (!rc) {
    st->slots = (int64_t)L * to->num_slots;
    st->upstream_copies = st->slots;
    for (int32_t r = 0; r < plan->num_gpus; r++) {
      if (pl.sent_total[r] > st->max_sent)
        st->max_sent = pl.sent_total[r];
      if (pl.recv_total[r] > st->max_received)
        st->max_received = pl.recv_total[r];
      if (pl.up_sent[r] > st->upstream_max_sent)
        st->upstream_max_sent = pl.up_sent[r];
    }
    for (int32_t l = 0; l < L; l++)
      for (int32_t r = 0; r < plan->num_gpus; r++) {
        int32_t n = eplb_transfer_staging_slots(plan, l, r);
        if (n > st->staging_slots)
          st->staging_slots = n;
      }
  }
  planner_free(&pl);
  if (rc) {
    eplb_transfer_free(plan);
    return rc;
  }
  *out = plan;
  return 0;
}
