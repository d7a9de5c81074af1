/* route.c - the routing table: each token's logical expert to one of its physical slots. */
#include <stdlib.h>

#include "core/eplb_int.h"

/* Picks among the replicas `slots[0..cnt-1]` of one expert for its token number `i` (the count
 * of its earlier tokens in the call), preferring those on `rank`, then those on rank's node;
 * several candidates are taken in turn. */
static int32_t pick_local(const int32_t *slots, int32_t cnt, size_t i, int32_t rank, int32_t S,
                          int32_t node) {
  int32_t n_rank = 0, n_node = 0;
  for (int32_t k = 0; k < cnt; k++) {
    int32_t d = slots[k] / S;
    n_rank += d == rank;
    n_node += d / node == rank / node;
  }
  int32_t want; /* 0: on rank, 1: on node, 2: any */
  int32_t n = n_rank ? (want = 0, n_rank) : n_node ? (want = 1, n_node) : (want = 2, cnt);
  int32_t pick = (int32_t)(i % (size_t)n);
  for (int32_t k = 0; k < cnt; k++) {
    int32_t d = slots[k] / S;
    int ok = want == 2 || (want == 0 ? d == rank : d / node == rank / node);
    if (ok && pick-- == 0)
      return slots[k];
  }
  return slots[0]; /* unreachable: pick < n */
}

/* Routes n tokens of one layer to physical slots (contract in eplb/move.h). */
int eplb_route_nodes(const eplb_placement *p, int32_t layer, const int32_t *logical_ids, size_t n,
                     int32_t *physical_slots, eplb_route_mode mode, int32_t rank,
                     int32_t gpus_per_node) {
  if (!p || !p->log2phy || !p->logcnt || (n > 0 && (!logical_ids || !physical_slots)))
    return eplb__err(EPLB_EINVAL, "route: NULL argument or placement without index");
  if (layer < 0 || layer >= p->num_layers)
    return eplb__err(EPLB_EINVAL, "route: layer index %d outside 0..%d", layer, p->num_layers - 1);
  if (mode != EPLB_ROUTE_ROUND_ROBIN && mode != EPLB_ROUTE_PREFER_LOCAL)
    return eplb__err(EPLB_EINVAL, "route: unknown mode %d", (int)mode);
  if (rank < 0 || rank >= p->num_gpus)
    return eplb__err(EPLB_EINVAL, "route: rank %d outside 0..%d", rank, p->num_gpus - 1);
  int32_t node = gpus_per_node > 0 ? gpus_per_node : p->num_gpus;
  if (p->num_gpus % node != 0)
    return eplb__err(EPLB_EINVAL, "route: gpus_per_node %d does not divide %d devices", node,
                     p->num_gpus);
  int32_t E = p->num_experts, X = p->max_replicas, S = p->num_slots / p->num_gpus;
  const int32_t *cnt = p->logcnt + (size_t)layer * E;
  const int32_t *map = p->log2phy + (size_t)layer * E * X;
  size_t *seen = eplb__calloc((size_t)E, sizeof *seen); /* earlier tokens of each expert */
  if (!seen)
    return eplb__err(EPLB_ENOMEM, "route: out of memory");
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t e = logical_ids[i];
    if (e < 0 || e >= E) {
      rc = eplb__err(EPLB_ERANGE, "route: token %zu: expert %d outside 0..%d", i, e, E - 1);
      break;
    }
    if (cnt[e] < 1) {
      rc = eplb__err(EPLB_EINVALID, "route: layer %d: expert %d has no replica", layer, e);
      break;
    }
    const int32_t *slots = map + (size_t)e * X;
    size_t k = seen[e]++;
    if (mode == EPLB_ROUTE_ROUND_ROBIN)
      physical_slots[i] = slots[k % (size_t)cnt[e]];
    else
      physical_slots[i] = pick_local(slots, cnt[e], k, rank, S, node);
  }
  free(seen);
  return rc;
}

/* Lists, for every expert of one layer, the replicas eplb_route_nodes() picks among (contract in
 * eplb/move.h): all of them round robin, the preferred ones with PREFER_LOCAL. */
int eplb_route_table(const eplb_placement *p, int32_t layer, eplb_route_mode mode, int32_t rank,
                     int32_t gpus_per_node, int32_t *slots, int32_t *counts) {
  if (!slots || !counts)
    return eplb__err(EPLB_EINVAL, "route table: NULL argument");
  int32_t probe = 0, out;
  int rc = eplb_route_nodes(p, layer, &probe, 0, &out, mode, rank, gpus_per_node);
  if (rc != 0)
    return rc;
  int32_t E = p->num_experts, X = p->max_replicas, S = p->num_slots / p->num_gpus;
  int32_t node = gpus_per_node > 0 ? gpus_per_node : p->num_gpus;
  const int32_t *cnt = p->logcnt + (size_t)layer * E;
  const int32_t *map = p->log2phy + (size_t)layer * E * X;
  for (int32_t e = 0; e < E; e++) {
    const int32_t *row = map + (size_t)e * X;
    int32_t *dst = slots + (size_t)e * X, n = 0;
    for (int32_t want = mode == EPLB_ROUTE_ROUND_ROBIN ? 2 : 0; want <= 2 && n == 0; want++)
      for (int32_t k = 0; k < cnt[e]; k++) {
        int32_t d = row[k] / S;
        if (want == 2 || (want == 0 ? d == rank : d / node == rank / node))
          dst[n++] = row[k];
      }
    counts[e] = n;
    for (int32_t k = n; k < X; k++)
      dst[k] = -1;
  }
  return 0;
}

/* Routes with all ranks on one node. */
int eplb_route(const eplb_placement *p, int32_t layer, const int32_t *logical_ids, size_t n,
               int32_t *physical_slots, eplb_route_mode mode, int32_t rank) {
  return eplb_route_nodes(p, layer, logical_ids, n, physical_slots, mode, rank, 0);
}
