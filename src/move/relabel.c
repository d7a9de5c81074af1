/* relabel.c - renumbering the devices of a new layout so that it overlaps the old one as much as
 * possible (fewest copies to move), per layer, by optimal assignment (core/assign.c). */
#include <stdlib.h>
#include <string.h>

#include "core/eplb_int.h"

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
  int32_t St = to->num_slots / G, Sf = from->num_slots / G;
  int rc = 0;
  int32_t *stamp = eplb__calloc((size_t)E, sizeof *stamp);
  int64_t *ov = eplb__mallocn((size_t)G * G, sizeof *ov);
  int64_t *sub = eplb__mallocn((size_t)P * P, sizeof *sub);
  int64_t *node_gain = eplb__mallocn((size_t)N * N, sizeof *node_gain);
  int32_t *dev_match = eplb__mallocn((size_t)N * N * P, sizeof *dev_match); /* [nt][nf][P] */
  int32_t *node_match = eplb__mallocn((size_t)N, sizeof *node_match);
  int32_t *row = eplb__mallocn((size_t)to->num_slots, sizeof *row);
  size_t total = (size_t)to->num_layers * (size_t)to->num_slots;
  int32_t *saved = eplb__mallocn(total, sizeof *saved);
  if (!stamp || !ov || !sub || !node_gain || !dev_match || !node_match || !row || !saved)
    rc = eplb__err(EPLB_ENOMEM, "relabel: out of memory");
  int copied = !rc;
  if (copied)
    memcpy(saved, to->phy2log, total * sizeof *saved);
  for (int32_t l = 0; l < to->num_layers && !rc; l++) {
    int32_t *row_to = to->phy2log + (size_t)l * to->num_slots;
    overlaps(row_to, St, from->phy2log + (size_t)l * from->num_slots, Sf, G, stamp, ov);
    /* Best device assignment inside each (new node, old node) pair, then the best node pairs. */
    for (int32_t nt = 0; nt < N && !rc; nt++)
      for (int32_t nf = 0; nf < N && !rc; nf++) {
        int32_t *m = dev_match + ((size_t)nt * N + nf) * P;
        for (int32_t i = 0; i < P; i++)
          for (int32_t j = 0; j < P; j++)
            sub[(size_t)i * P + j] = ov[(size_t)(nt * P + i) * G + (nf * P + j)];
        rc = eplb__assign_max(sub, P, m);
        int64_t sum = 0;
        for (int32_t i = 0; i < P && !rc; i++)
          sum += sub[(size_t)i * P + m[i]];
        node_gain[(size_t)nt * N + nf] = sum;
      }
    if (!rc)
      rc = eplb__assign_max(node_gain, N, node_match);
    if (rc)
      break;
    memcpy(row, row_to, (size_t)to->num_slots * sizeof *row);
    for (int32_t nt = 0; nt < N; nt++) {
      const int32_t *m = dev_match + ((size_t)nt * N + node_match[nt]) * P;
      for (int32_t i = 0; i < P; i++) /* new device nt*P+i becomes old rank node_match*P+m[i] */
        memcpy(row_to + (size_t)(node_match[nt] * P + m[i]) * St, row + (size_t)(nt * P + i) * St,
               (size_t)St * sizeof *row);
    }
  }
  if (!rc)
    rc = eplb_placement_build_index(to);
  if (rc && copied) /* out of memory: undo */
    memcpy(to->phy2log, saved, total * sizeof *saved);
  free(stamp), free(ov), free(sub), free(node_gain), free(dev_match), free(node_match), free(row);
  free(saved);
  return rc;
}
