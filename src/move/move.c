/* move.c - step 3 placements: the initial layout a job starts from, and aligning a new layout's
 * slot order to an old one so that experts staying on a device keep their slot. */
#include <stdlib.h>
#include <string.h>

#include "core/eplb_int.h"

/* ---- initial layout ---- */

int eplb_placement_initial(int32_t num_layers, int32_t num_experts, int32_t num_gpus, int32_t k,
                           eplb_placement **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "initial placement: no output");
  *out = NULL;
  if (num_layers < 1 || num_experts < 1 || num_gpus < 1 || k < 1)
    return eplb__err(EPLB_EINVAL, "initial placement: sizes must be >= 1 (layers %d, experts %d, "
                                  "devices %d, slots per device %d)",
                     num_layers, num_experts, num_gpus, k);
  if ((int64_t)num_gpus * k < num_experts)
    return eplb__err(EPLB_EINVAL, "initial placement: %d devices x %d slots cannot hold %d experts",
                     num_gpus, k, num_experts);
  if (k > num_experts)
    return eplb__err(EPLB_EINVAL, "initial placement: %d slots per device exceed %d experts (a "
                                  "device would hold an expert twice)",
                     k, num_experts);
  if ((int64_t)num_gpus * k > INT32_MAX)
    return eplb__err(EPLB_EINVAL, "initial placement: %d x %d slots overflow", num_gpus, k);
  eplb_placement *p = NULL;
  int rc = eplb_placement_create(num_layers, num_experts, num_gpus * k, num_gpus, &p);
  if (rc)
    return rc;
  int32_t R = num_gpus * k;
  for (int32_t l = 0; l < num_layers; l++)
    for (int32_t d = 0; d < num_gpus; d++)
      for (int32_t j = 0; j < k; j++)
        p->phy2log[(size_t)l * R + (size_t)d * k + j] =
            (int32_t)(((int64_t)d * k + j) % num_experts);
  rc = eplb_placement_build_index(p);
  if (rc) {
    eplb_placement_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* ---- alignment ---- */

/* Reorders one device's slots `row` (n_to entries) against the old device's `old` (n_from):
 * matched experts go to the old index, the rest keep their relative order. `used` and `tmp`
 * are scratch of n_to entries. */
static void align_device(int32_t *row, int32_t n_to, const int32_t *old, int32_t n_from,
                         uint8_t *used, int32_t *tmp) {
  int32_t n = n_to < n_from ? n_to : n_from;
  memset(used, 0, (size_t)n_to);
  for (int32_t i = 0; i < n_to; i++)
    tmp[i] = -1;
  /* Position i of the old device claims the first unmatched occurrence of its expert. */
  for (int32_t i = 0; i < n; i++)
    for (int32_t j = 0; j < n_to; j++)
      if (!used[j] && row[j] == old[i]) {
        used[j] = 1;
        tmp[i] = row[j];
        break;
      }
  int32_t next = 0;
  for (int32_t j = 0; j < n_to; j++) {
    if (used[j])
      continue;
    while (tmp[next] >= 0)
      next++;
    tmp[next] = row[j];
  }
  memcpy(row, tmp, (size_t)n_to * sizeof *row);
}

/* Checks that every slot of `p` holds an expert id in 0 .. E-1. */
static int check_ids(const eplb_placement *p, const char *what) {
  size_t total = (size_t)p->num_layers * (size_t)p->num_slots;
  for (size_t i = 0; i < total; i++)
    if (p->phy2log[i] < 0 || p->phy2log[i] >= p->num_experts)
      return eplb__err(EPLB_EINVALID, "%s: layer %lld: slot %d holds expert %d, outside 0..%d",
                       what, (long long)p->layer_ids[i / (size_t)p->num_slots],
                       (int)(i % (size_t)p->num_slots), p->phy2log[i], p->num_experts - 1);
  return 0;
}

/* Aligns every device of `to` to the same device of `from` (contract in eplb/move.h). */
int eplb_placement_align(eplb_placement *to, const eplb_placement *from) {
  if (!to || !from || !to->phy2log || !from->phy2log)
    return eplb__err(EPLB_EINVAL, "align: NULL placement");
  if (to->num_layers != from->num_layers || to->num_experts != from->num_experts ||
      to->num_gpus != from->num_gpus)
    return eplb__err(EPLB_EINVAL, "align: shapes differ (layers %d/%d, experts %d/%d, devices "
                                  "%d/%d)",
                     from->num_layers, to->num_layers, from->num_experts, to->num_experts,
                     from->num_gpus, to->num_gpus);
  int rc = check_ids(to, "align: new layout");
  if (!rc)
    rc = check_ids(from, "align: old layout");
  if (rc)
    return rc;
  int32_t G = to->num_gpus, St = to->num_slots / G, Sf = from->num_slots / G;
  size_t total = (size_t)to->num_layers * (size_t)to->num_slots;
  int32_t *saved = eplb__mallocn(total, sizeof *saved);
  uint8_t *used = eplb__calloc((size_t)St, 1);
  int32_t *tmp = eplb__mallocn((size_t)St, sizeof *tmp);
  if (!saved || !used || !tmp) {
    free(saved), free(used), free(tmp);
    return eplb__err(EPLB_ENOMEM, "align: out of memory");
  }
  memcpy(saved, to->phy2log, total * sizeof *saved);
  for (int32_t l = 0; l < to->num_layers; l++)
    for (int32_t d = 0; d < G; d++)
      align_device(to->phy2log + (size_t)l * to->num_slots + (size_t)d * St, St,
                   from->phy2log + (size_t)l * from->num_slots + (size_t)d * Sf, Sf, used, tmp);
  rc = eplb_placement_build_index(to);
  if (rc) /* out of memory: the counts are unchanged, restore the slot order */
    memcpy(to->phy2log, saved, total * sizeof *saved);
  free(saved), free(used), free(tmp);
  return rc;
}
