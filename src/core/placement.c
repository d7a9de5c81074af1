/* placement.c - the placement type: allocation, index (logcnt, log2phy), validation. */
#include <stdlib.h>
#include <string.h>

#include "core/eplb_int.h"

/* The byte whose repetition makes an int32_t -1 (memset fill). */
#define EPLB__ALL_ONES 0xff

/* ---- allocation ---- */

int eplb_placement_create(int32_t num_layers, int32_t num_experts, int32_t num_slots,
                          int32_t num_gpus, eplb_placement **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "placement: no output");
  *out = NULL;
  if (num_layers < 1 || num_experts < 1 || num_slots < 1 || num_gpus < 1)
    return eplb__err(EPLB_EINVAL, "placement: sizes must be >= 1 (layers %d, experts %d, "
                                  "slots %d, devices %d)",
                     num_layers, num_experts, num_slots, num_gpus);
  if (num_slots % num_gpus != 0)
    return eplb__err(EPLB_EINVAL, "placement: %d slots do not divide over %d devices", num_slots,
                     num_gpus);
  eplb_placement *p = calloc(1, sizeof *p);
  if (!p)
    return eplb__err(EPLB_ENOMEM, "placement: out of memory");
  p->num_layers = num_layers;
  p->num_experts = num_experts;
  p->num_slots = num_slots;
  p->num_gpus = num_gpus;
  p->layer_ids = eplb__calloc((size_t)num_layers, sizeof *p->layer_ids);
  p->phy2log = eplb__calloc((size_t)num_layers * (size_t)num_slots, sizeof *p->phy2log);
  p->logcnt = eplb__calloc((size_t)num_layers * (size_t)num_experts, sizeof *p->logcnt);
  if (!p->layer_ids || !p->phy2log || !p->logcnt) {
    eplb_placement_free(p);
    return eplb__err(EPLB_ENOMEM, "placement: out of memory");
  }
  for (int32_t l = 0; l < num_layers; l++)
    p->layer_ids[l] = l;
  *out = p;
  return 0;
}

void eplb_placement_free(eplb_placement *p) {
  if (!p)
    return;
  free(p->layer_ids);
  free(p->phy2log);
  free(p->logcnt);
  free(p->log2phy);
  free(p);
}

int eplb_placement_clone(const eplb_placement *p, eplb_placement **out) {
  if (!p || !out)
    return eplb__err(EPLB_EINVAL, "placement clone: NULL argument");
  int rc = eplb_placement_create(p->num_layers, p->num_experts, p->num_slots, p->num_gpus, out);
  if (rc)
    return rc;
  eplb_placement *c = *out;
  size_t L = (size_t)p->num_layers, E = (size_t)p->num_experts, R = (size_t)p->num_slots;
  memcpy(c->layer_ids, p->layer_ids, L * sizeof *c->layer_ids);
  memcpy(c->phy2log, p->phy2log, L * R * sizeof *c->phy2log);
  memcpy(c->logcnt, p->logcnt, L * E * sizeof *c->logcnt);
  c->max_replicas = p->max_replicas;
  if (p->log2phy) {
    size_t n = L * E * (size_t)p->max_replicas;
    c->log2phy = eplb__mallocn(n, sizeof *c->log2phy);
    if (!c->log2phy) {
      eplb_placement_free(c);
      *out = NULL;
      return eplb__err(EPLB_ENOMEM, "placement clone: out of memory");
    }
    memcpy(c->log2phy, p->log2phy, n * sizeof *c->log2phy);
  }
  return 0;
}

/* ---- index ---- */

int eplb_placement_build_index(eplb_placement *p) {
  if (!p)
    return eplb__err(EPLB_EINVAL, "placement: NULL");
  int32_t L = p->num_layers, E = p->num_experts, R = p->num_slots;
  memset(p->logcnt, 0, (size_t)L * (size_t)E * sizeof *p->logcnt);
  int32_t X = 0;
  for (int32_t l = 0; l < L; l++) {
    const int32_t *row = p->phy2log + (size_t)l * R;
    int32_t *cnt = p->logcnt + (size_t)l * E;
    for (int32_t s = 0; s < R; s++) {
      if (row[s] < 0 || row[s] >= E)
        return eplb__err(EPLB_EINVALID, "layer %lld: slot %d holds expert %d, outside 0..%d",
                         (long long)p->layer_ids[l], s, row[s], E - 1);
      if (++cnt[row[s]] > X)
        X = cnt[row[s]];
    }
  }
  if (X < 1)
    X = 1;
  size_t n = (size_t)L * (size_t)E * (size_t)X;
  int32_t *idx = eplb__mallocn(n, sizeof *idx);
  int32_t *fill = eplb__mallocn((size_t)E, sizeof *fill); /* per expert: entries written */
  if (!idx || !fill) {
    free(idx);
    free(fill);
    return eplb__err(EPLB_ENOMEM, "placement: out of memory");
  }
  memset(idx, EPLB__ALL_ONES, n * sizeof *idx); /* every entry -1 */
  for (int32_t l = 0; l < L; l++) {
    const int32_t *row = p->phy2log + (size_t)l * R;
    int32_t *lay = idx + (size_t)l * E * X;
    memset(fill, 0, (size_t)E * sizeof *fill);
    /* Slots ascending: append each slot to its expert's next free entry. */
    for (int32_t s = 0; s < R; s++)
      lay[(size_t)row[s] * X + fill[row[s]]++] = s;
  }
  free(fill);
  free(p->log2phy);
  p->log2phy = idx;
  p->max_replicas = X;
  return 0;
}

/* ---- validation ---- */

int eplb_placement_validate(const eplb_placement *p, int allow_duplicates) {
  if (!p || !p->phy2log || !p->logcnt || !p->layer_ids)
    return eplb__err(EPLB_EINVAL, "placement: NULL or incomplete");
  int32_t L = p->num_layers, E = p->num_experts, R = p->num_slots, G = p->num_gpus;
  if (L < 1 || E < 1 || R < 1 || G < 1 || R % G != 0)
    return eplb__err(EPLB_EINVALID, "placement: bad shape (layers %d, experts %d, slots %d, "
                                    "devices %d)",
                     L, E, R, G);
  if (!p->log2phy || p->max_replicas < 1)
    return eplb__err(EPLB_EINVALID, "placement: no log2phy index");
  int32_t S = R / G, X = p->max_replicas;
  int32_t *seen = eplb__calloc((size_t)E, sizeof *seen); /* per expert: replicas counted */
  int32_t *mark = eplb__calloc((size_t)E, sizeof *mark); /* per expert: last device + 1 seen */
  int32_t *listed = eplb__calloc((size_t)R, sizeof *listed); /* per slot: layer + 1 when in log2phy */
  int32_t *pad = eplb__mallocn((size_t)X, sizeof *pad); /* X entries -1: what padding must be */
  if (!seen || !mark || !listed || !pad) {
    free(seen);
    free(mark);
    free(listed);
    free(pad);
    return eplb__err(EPLB_ENOMEM, "placement: out of memory");
  }
  memset(pad, EPLB__ALL_ONES, (size_t)X * sizeof *pad);
  int rc = 0;
  int32_t maxcnt = 0;
  for (int32_t l = 0; l < L && !rc; l++) {
    long long id = (long long)p->layer_ids[l];
    if (l > 0 && p->layer_ids[l] <= p->layer_ids[l - 1]) {
      rc = eplb__err(EPLB_EINVALID, "layer %lld: layer ids are not ascending", id);
      break;
    }
    const int32_t *row = p->phy2log + (size_t)l * R;
    const int32_t *cnt = p->logcnt + (size_t)l * E;
    const int32_t *lay = p->log2phy + (size_t)l * E * X;
    memset(seen, 0, (size_t)E * sizeof *seen);
    memset(mark, 0, (size_t)E * sizeof *mark);
    for (int32_t s = 0, d = 0, k = 0; s < R && !rc; s++) {
      int32_t e = row[s]; /* slot s is entry k of device d */
      if (e < 0 || e >= E) {
        rc = eplb__err(EPLB_EINVALID, "layer %lld: slot %d holds expert %d, outside 0..%d", id, s,
                       e, E - 1);
        break;
      }
      seen[e]++;
      if (mark[e] == d + 1 && !allow_duplicates)
        rc = eplb__err(EPLB_EINVALID, "layer %lld: device %d holds expert %d twice", id, d, e);
      mark[e] = d + 1;
      if (++k == S) {
        k = 0;
        d++;
      }
    }
    for (int32_t e = 0; e < E && !rc; e++) {
      if (seen[e] < 1)
        rc = eplb__err(EPLB_EINVALID, "layer %lld: expert %d has no replica", id, e);
      else if (cnt[e] != seen[e])
        rc = eplb__err(EPLB_EINVALID, "layer %lld: logcnt[%d] = %d but %d slots hold it", id, e,
                       cnt[e], seen[e]);
      else if (cnt[e] > X)
        rc = eplb__err(EPLB_EINVALID, "layer %lld: expert %d has %d replicas, more than "
                                      "max_replicas %d",
                       id, e, cnt[e], X);
      if (rc)
        break;
      if (cnt[e] > maxcnt)
        maxcnt = cnt[e];
      const int32_t *r = lay + (size_t)e * X;
      for (int32_t k = 0; k < cnt[e] && !rc; k++) {
        if (r[k] < 0 || r[k] >= R || row[r[k]] != e) {
          rc = eplb__err(EPLB_EINVALID, "layer %lld: log2phy[%d][%d] = %d does not hold expert %d",
                         id, e, k, r[k], e);
        } else if (listed[r[k]] == l + 1) {
          /* A slot holds one expert, so a slot listed twice in a layer is listed twice by e. */
          rc = eplb__err(EPLB_EINVALID, "layer %lld: log2phy[%d] lists slot %d twice", id, e, r[k]);
        } else {
          listed[r[k]] = l + 1;
        }
      }
      /* The padding after the entries: one block compare, then a search if it failed. */
      int bad = memcmp(r + cnt[e], pad, (size_t)(X - cnt[e]) * sizeof *r) != 0;
      for (int32_t k = cnt[e]; bad && k < X && !rc; k++)
        if (r[k] != -1)
          rc = eplb__err(EPLB_EINVALID, "layer %lld: log2phy[%d][%d] = %d, expected -1", id, e, k,
                         r[k]);
    }
  }
  if (!rc && maxcnt != X)
    rc = eplb__err(EPLB_EINVALID, "placement: max_replicas is %d but the largest logcnt is %d", X,
                   maxcnt);
  free(seen);
  free(mark);
  free(listed);
  free(pad);
  return rc;
}

/* Counts the extra replicas of one layer (a device holding an expert k times counts k - 1):
 * `mark` holds E entries, each below (layer + 1) * G + 1 on entry, for example zeros. */
static int64_t layer_duplicates(const eplb_placement *p, int32_t l, int64_t *mark) {
  int32_t R = p->num_slots, S = R / p->num_gpus;
  const int32_t *row = p->phy2log + (size_t)l * R;
  int64_t dups = 0;
  for (int32_t s = 0; s < R; s++) {
    int32_t e = row[s];
    if (e < 0 || e >= p->num_experts)
      continue;
    int64_t here = (int64_t)l * p->num_gpus + s / S + 1; /* this (layer, device) */
    dups += mark[e] == here;
    mark[e] = here;
  }
  return dups;
}

int64_t eplb__layer_duplicates(const eplb_placement *p, int32_t layer) {
  if (!p || !p->phy2log || layer < 0 || layer >= p->num_layers || p->num_gpus < 1)
    return eplb__err(EPLB_EINVAL, "duplicates: bad placement or layer %d", layer);
  int64_t *mark = eplb__calloc((size_t)p->num_experts, sizeof *mark);
  if (!mark)
    return eplb__err(EPLB_ENOMEM, "duplicates: out of memory");
  int64_t dups = layer_duplicates(p, layer, mark);
  free(mark);
  return dups;
}

int64_t eplb_placement_duplicates(const eplb_placement *p) {
  if (!p || !p->phy2log || p->num_gpus < 1 || p->num_experts < 1)
    return 0;
  int64_t *mark = eplb__calloc((size_t)p->num_experts, sizeof *mark);
  if (!mark)
    return 0;
  int64_t dups = 0;
  for (int32_t l = 0; l < p->num_layers; l++)
    dups += layer_duplicates(p, l, mark);
  free(mark);
  return dups;
}
