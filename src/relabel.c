/* relabel.c - renumbering the devices of a new layout so that it overlaps the old one as much as
 * possible (fewest copies to move), per layer, by optimal assignment (Hungarian algorithm). */
#include <stdlib.h>
#include <string.h>

#include "eplb_int.h"

/* A cost larger than any sum of assignment costs here (overlaps are at most slots per device). */
#define ASSIGN_INF ((int64_t)1 << 60)

/* ---- optimal assignment ---- */

/* Scratch of assign(), for matrices up to n x n. */
typedef struct assigner {
  int32_t n;
  int64_t *u, *v, *minv; /* [n+1] potentials of rows and columns, slack of columns */
  int32_t *p, *way;      /* [n+1] row matched to each column (1-based, 0 = none), path */
  uint8_t *used;         /* [n+1] */
} assigner;

/* Allocates the scratch for n x n problems. @return 0 or EPLB_ENOMEM. */
static int assigner_init(assigner *a, int32_t n) {
  size_t m = (size_t)n + 1;
  a->n = n;
  a->u = eplb__calloc(m, sizeof *a->u);
  a->v = eplb__calloc(m, sizeof *a->v);
  a->minv = eplb__calloc(m, sizeof *a->minv);
  a->p = eplb__calloc(m, sizeof *a->p);
  a->way = eplb__calloc(m, sizeof *a->way);
  a->used = eplb__calloc(m, 1);
  if (!a->u || !a->v || !a->minv || !a->p || !a->way || !a->used)
    return eplb__err(EPLB_ENOMEM, "relabel: out of memory");
  return 0;
}

/* Releases the scratch. */
static void assigner_free(assigner *a) {
  free(a->u), free(a->v), free(a->minv), free(a->p), free(a->way), free(a->used);
}

/* Finds the assignment of rows to columns of the n x n matrix `cost` (row-major) with the least
 * total cost: col_of_row[i] = the column of row i. Shortest augmenting paths with potentials,
 * O(n^3); the lowest index wins ties, so the result is deterministic. Returns the total. */
static int64_t assign(assigner *a, int32_t n, const int64_t *cost, int32_t *col_of_row) {
  int64_t *u = a->u, *v = a->v, *minv = a->minv;
  int32_t *p = a->p, *way = a->way;
  memset(u, 0, ((size_t)n + 1) * sizeof *u);
  memset(v, 0, ((size_t)n + 1) * sizeof *v);
  memset(p, 0, ((size_t)n + 1) * sizeof *p);
  for (int32_t i = 1; i <= n; i++) {
    p[0] = i;
    int32_t j0 = 0;
    for (int32_t j = 0; j <= n; j++)
      minv[j] = ASSIGN_INF, a->used[j] = 0;
    do { /* grow the alternating tree from row i until it reaches a free column */
      a->used[j0] = 1;
      int32_t i0 = p[j0], j1 = 0;
      int64_t delta = ASSIGN_INF;
      for (int32_t j = 1; j <= n; j++) {
        if (a->used[j])
          continue;
        int64_t cur = cost[(size_t)(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j])
          minv[j] = cur, way[j] = j0;
        if (minv[j] < delta)
          delta = minv[j], j1 = j;
      }
      for (int32_t j = 0; j <= n; j++) {
        if (a->used[j])
          u[p[j]] += delta, v[j] -= delta;
        else
          minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] != 0);
    do { /* flip the path */
      int32_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  int64_t total = 0;
  for (int32_t j = 1; j <= n; j++) {
    col_of_row[p[j] - 1] = j - 1;
    total += cost[(size_t)(p[j] - 1) * n + (j - 1)];
  }
  return total;
}

/* ---- relabelling one layer ---- */

/* Fills ov[d * G + r] with the number of distinct experts new device d holds that old rank r
 * holds too. `stamp` is scratch of E entries. */
static void overlaps(const int32_t *row_to, int32_t St, const int32_t *row_from, int32_t Sf,
                     int32_t G, int32_t *stamp, int64_t *ov) {
  for (int32_t r = 0; r < G; r++) {
    for (int32_t i = 0; i < Sf; i++)
      stamp[row_from[r * Sf + i]] = r + 1;
    for (int32_t d = 0; d < G; d++) {
      int64_t n = 0;
      for (int32_t i = 0; i < St; i++) {
        int32_t e = row_to[d * St + i];
        if (stamp[e] == r + 1) {
          n++;
          stamp[e] = -(r + 1); /* count each expert once per device */
        }
      }
      for (int32_t i = 0; i < St; i++) /* re-arm for the next device */
        if (stamp[row_to[d * St + i]] == -(r + 1))
          stamp[row_to[d * St + i]] = r + 1;
      ov[(size_t)d * G + r] = n;
    }
    for (int32_t i = 0; i < Sf; i++)
      stamp[row_from[r * Sf + i]] = 0;
  }
}

/* Renumbers the devices of `to`, layer by layer, to overlap `from` the most. */
int eplb_placement_relabel(eplb_placement *to, const eplb_placement *from,
                           int32_t gpus_per_node) {
  if (!to || !from || !to->phy2log || !from->phy2log)
    return eplb__err(EPLB_EINVAL, "relabel: NULL placement");
  if (to->num_layers != from->num_layers || to->num_experts != from->num_experts ||
      to->num_gpus != from->num_gpus)
    return eplb__err(EPLB_EINVAL, "relabel: shapes differ (layers %d/%d, experts %d/%d, devices "
                                  "%d/%d)",
                     from->num_layers, to->num_layers, from->num_experts, to->num_experts,
                     from->num_gpus, to->num_gpus);
  int32_t G = to->num_gpus, E = to->num_experts;
  int32_t P = gpus_per_node > 0 ? gpus_per_node : G, N = G / P;
  if (P > G || G % P != 0)
    return eplb__err(EPLB_EINVAL, "relabel: gpus_per_node %d does not divide %d devices", P, G);
  for (size_t i = 0; i < (size_t)to->num_layers * (size_t)to->num_slots; i++)
    if (to->phy2log[i] < 0 || to->phy2log[i] >= E)
      return eplb__err(EPLB_EINVALID, "relabel: new layout: expert %d outside 0..%d",
                       to->phy2log[i], E - 1);
  for (size_t i = 0; i < (size_t)from->num_layers * (size_t)from->num_slots; i++)
    if (from->phy2log[i] < 0 || from->phy2log[i] >= E)
      return eplb__err(EPLB_EINVALID, "relabel: old layout: expert %d outside 0..%d",
                       from->phy2log[i], E - 1);
  int32_t St = to->num_slots / G, Sf = from->num_slots / G, M = N > P ? N : P;
  assigner as;
  memset(&as, 0, sizeof as);
  int rc = assigner_init(&as, M);
  int32_t *stamp = eplb__calloc((size_t)E, sizeof *stamp);
  int64_t *ov = eplb__mallocn((size_t)G * G, sizeof *ov);
  int64_t *sub = eplb__mallocn((size_t)M * M, sizeof *sub);
  int64_t *node_cost = eplb__mallocn((size_t)N * N, sizeof *node_cost);
  int32_t *dev_match = eplb__mallocn((size_t)N * N * P, sizeof *dev_match); /* [nt][nf][P] */
  int32_t *node_match = eplb__mallocn((size_t)N, sizeof *node_match);
  int32_t *row = eplb__mallocn((size_t)to->num_slots, sizeof *row);
  size_t total = (size_t)to->num_layers * (size_t)to->num_slots;
  int32_t *saved = eplb__mallocn(total, sizeof *saved);
  if (!rc && (!stamp || !ov || !sub || !node_cost || !dev_match || !node_match || !row || !saved))
    rc = eplb__err(EPLB_ENOMEM, "relabel: out of memory");
  if (!rc)
    memcpy(saved, to->phy2log, total * sizeof *saved);
  for (int32_t l = 0; l < to->num_layers && !rc; l++) {
    int32_t *row_to = to->phy2log + (size_t)l * to->num_slots;
    overlaps(row_to, St, from->phy2log + (size_t)l * from->num_slots, Sf, G, stamp, ov);
    /* Best device assignment inside each (new node, old node) pair, then the best node pairs. */
    for (int32_t nt = 0; nt < N; nt++)
      for (int32_t nf = 0; nf < N; nf++) {
        for (int32_t i = 0; i < P; i++)
          for (int32_t j = 0; j < P; j++)
            sub[(size_t)i * P + j] = -ov[(size_t)(nt * P + i) * G + (nf * P + j)];
        node_cost[(size_t)nt * N + nf] = assign(&as, P, sub, dev_match + ((size_t)nt * N + nf) * P);
      }
    assign(&as, N, node_cost, node_match);
    memcpy(row, row_to, (size_t)to->num_slots * sizeof *row);
    for (int32_t nt = 0; nt < N; nt++) {
      const int32_t *m = dev_match + ((size_t)nt * N + node_match[nt]) * P;
      for (int32_t i = 0; i < P; i++) /* new device nt*P+i becomes old rank node_match*P+m[i] */
        memcpy(row_to + (size_t)(node_match[nt] * P + m[i]) * St, row + (size_t)(nt * P + i) * St,
               (size_t)St * sizeof *row);
    }
  }
  if (!rc && (rc = eplb_placement_build_index(to)) != 0) /* out of memory: undo */
    memcpy(to->phy2log, saved, total * sizeof *saved);
  assigner_free(&as);
  free(stamp), free(ov), free(sub), free(node_cost), free(dev_match), free(node_match), free(row);
  free(saved);
  return rc;
}
