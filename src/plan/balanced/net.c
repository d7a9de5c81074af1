/* net.c - the last stage of the balanced policy: its safety net. A layer whose search got stuck
 * (no placement found although one exists) gets a plain layout that obeys the locality rule;
 * then every layer is compared with the deepseek policy's plan (no duplicates), whose row is
 * taken wherever its busiest device is lighter and its placement obeys the rule. So balanced is
 * never worse than deepseek on a layer, and never fails where a placement exists. */
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"
#include "plan/plan_int.h"

/* ---- the plain layout ---- */

/* 1 when device row dev[0..n) holds expert e. */
static int row_holds(const int32_t *dev, int32_t n, int32_t e) {
  for (int32_t i = 0; i < n; i++)
    if (dev[i] == e)
      return 1;
  return 0;
}

/* Fills one layer's row with a plain layout that obeys hierarchy h, for a layer whose search
 * found no placement although one exists (the greedy packing and its repairs can get stuck:
 * found by tests/fuzz/fuzz_plan.c at E 16, G 8, 4 slots, N 4, K 8, soft). The groups split
 * evenly over the nodes (node n's experts are n*E/N .. (n+1)*E/N - 1); each node's experts get
 * one replica each, dealt over the node's devices in turn; then every device fills its other
 * slots with experts it lacks, in turn from its own position: the node's experts under strict,
 * any expert under soft and none. Loads are ignored (the deepseek safety net still runs after).
 * @return 0, or EPLB_EPARAM when even this split cannot fit (strict needs S <= E/N <= G/N * S,
 *         soft E/N <= G/N * S, all S <= E). */
static int fallback_row(const eplb_params *pr, eplb_hierarchy h, int32_t E, int32_t *row) {
  int32_t G = pr->num_gpus, S = pr->num_replicas / G;
  int32_t N = h == EPLB_HIER_NONE ? 1 : pr->num_nodes, Gn = G / N, En = E / N;
  int strict = h == EPLB_HIER_STRICT && N > 1;
  if (S > E || En > Gn * S || (strict && S > En))
    return eplb__err(EPLB_EPARAM, "plan balanced: cannot place every replica without "
                                  "duplicates");
  for (int32_t n = 0; n < N; n++) {
    int32_t *node = row + (size_t)n * Gn * S;
    /* First replicas: home expert i of the node goes to device i % Gn, slot i / Gn. */
    for (int32_t i = 0; i < En; i++)
      node[(i % Gn) * S + i / Gn] = n * En + i;
    for (int32_t d = 0; d < Gn; d++) {
      int32_t *dev = node + (size_t)d * S;
      int32_t have = En / Gn + (d < En % Gn);
      int32_t pool = strict ? En : E, base = strict ? n * En : 0;
      int32_t start = strict ? d * S : n * En + d * S;
      for (int32_t t = 0; have < S && t < pool; t++) {
        int32_t e = base + (start + t) % pool;
        if (!row_holds(dev, have, e))
          dev[have++] = e;
      }
    }
  }
  return 0;
}

/* ---- the deepseek safety net ---- */

/* The busiest device's load of one phy2log row (every replica carries load / its count). */
static double row_max(const double *w, const int32_t *row, int32_t R, int32_t G, int32_t *cnt,
                      int32_t E) {
  int32_t S = R / G;
  memset(cnt, 0, (size_t)E * sizeof *cnt);
  for (int32_t s = 0; s < R; s++)
    cnt[row[s]]++;
  double mx = 0;
  for (int32_t d = 0; d < G; d++) {
    double sum = 0;
    for (int32_t s = d * S; s < (d + 1) * S; s++)
      sum += w[row[s]] / (double)cnt[row[s]];
    mx = sum > mx ? sum : mx;
  }
  return mx;
}

/* ---- the stage ---- */

int eplb__safety_net(const eplb_loads *loads, const eplb_params *params, eplb_hierarchy h,
                     const unsigned char *stuck, eplb_placement *p) {
  int32_t R = p->num_slots, G = p->num_gpus, E = p->num_experts;
  for (int32_t l = 0; l < p->num_layers; l++) {
    int rc = stuck[l] ? fallback_row(params, h, E, p->phy2log + (size_t)l * R) : 0;
    if (rc)
      return rc;
  }
  if (h != EPLB_HIER_NONE && eplb_params_mode(params) != EPLB_MODE_HIERARCHICAL)
    return 0;
  int32_t *cnt = eplb__mallocn((size_t)E, sizeof *cnt);
  if (!cnt)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  eplb_params ds = *params;
  ds.policy = EPLB_POLICY_DEEPSEEK;
  ds.allow_duplicates = 0;
  eplb_placement *q = NULL;
  int rc = eplb_placement_create(p->num_layers, p->num_experts, p->num_slots, p->num_gpus, &q);
  if (!rc && eplb__plan_deepseek(loads, &ds, q) == 0)
    for (int32_t l = 0; l < p->num_layers; l++) {
      const double *w = loads->load + (size_t)l * E;
      int32_t *mine = p->phy2log + (size_t)l * R, *theirs = q->phy2log + (size_t)l * R;
      if (row_max(w, theirs, R, G, cnt, E) < row_max(w, mine, R, G, cnt, E))
        memcpy(mine, theirs, (size_t)R * sizeof *mine);
    }
  eplb_placement_free(q);
  free(cnt);
  return rc;
}
