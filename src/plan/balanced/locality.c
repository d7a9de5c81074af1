/* locality.c - stage 1 of the balanced policy: the locality rule of a layer as data. Under
 * hierarchy strict and soft every expert group is given a node: an exact search over set
 * partitions of the groups (K <= EXACT_MAX_GROUPS) that minimises the largest node lower bound
 * (strict: the pool bound of the node's experts; soft: the load of their first replicas), or
 * largest-first packing of equal blocks of K/N groups beyond that. The stages after read the
 * result, home[e], as the devices expert e's bound replicas may use (all of them under strict,
 * the first under soft). */
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Largest group count searched exactly (3^K * N steps per layer). */
#define EXACT_MAX_GROUPS 10

/* One layer's partition problem. */
typedef struct part {
  const double *w;     /* [E] the layer's loads */
  int32_t K, N, gs;    /* groups, nodes, experts per group */
  int32_t Gn, S;       /* devices per node, slots per device */
  int strict;          /* blocks must fill their node's slots alone */
  double *wbuf;        /* [E] scratch */
  const int32_t *cnt;  /* soft: [E] global replica counts (the first replica carries w/cnt) */
} part;

/* The lower bound of a node serving the groups in `mask`, or -1 when it cannot serve them. */
static double block_value(const part *pt, uint32_t mask) {
  int32_t n = 0;
  for (int32_t k = 0; k < pt->K; k++)
    if (mask >> k & 1u) {
      memcpy(pt->wbuf + n, pt->w + (size_t)k * pt->gs, (size_t)pt->gs * sizeof *pt->wbuf);
      n += pt->gs;
    }
  int32_t Pn = pt->Gn * pt->S;
  if (n > Pn || (pt->strict && n < pt->S))
    return -1;
  if (!pt->strict) {
    /* Soft: the load the node must carry whatever happens, its experts' first replicas. */
    double sum = 0;
    for (int32_t k = 0; k < pt->K; k++)
      if (mask >> k & 1u)
        for (int32_t j = 0; j < pt->gs; j++) {
          size_t e = (size_t)k * pt->gs + (size_t)j;
          sum += pt->w[e] / (double)pt->cnt[e];
        }
    return sum / (double)pt->Gn;
  }
  return eplb__pool_bound(pt->wbuf, n, Pn, pt->Gn);
}

/* Exact search: f[k][mask] = the best split of the groups in mask over k nodes, compared by the
 * largest block value, then by the sum of squared values. Fills node_of[K].
 * @return 0, EPLB_ENOMEM, EPLB_EPARAM (no feasible split). */
static int partition_exact(const part *pt, int32_t *node_of) {
  eplb__scratch sc = {0};
  uint32_t full = (1u << pt->K) - 1;
  size_t M = (size_t)full + 1, NM = (size_t)(pt->N + 1) * M;
  double *val = eplb__take(&sc, M, sizeof *val);
  double *fmax = eplb__take(&sc, NM, sizeof *fmax);
  double *fsq = eplb__take(&sc, NM, sizeof *fsq);
  uint32_t *pick = eplb__take(&sc, NM, sizeof *pick);
  int rc = 0;
  if (sc.failed) {
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
    goto done;
  }
  for (size_t m = 1; m < M; m++)
    val[m] = block_value(pt, (uint32_t)m);
  for (size_t i = 0; i < NM; i++)
    fmax[i] = -1;
  for (size_t m = 1; m < M; m++)
    if (val[m] >= 0) {
      fmax[M + m] = val[m];
      fsq[M + m] = val[m] * val[m];
      pick[M + m] = (uint32_t)m;
    }
  for (int32_t k = 2; k <= pt->N; k++) {
    for (uint32_t m = 1; m <= full; m++) {
      uint32_t low = m & (~m + 1u), rest = m ^ low;
      size_t at = (size_t)k * M + m;
      /* Every block holding the lowest group of m; the rest goes to k-1 nodes. */
      for (uint32_t sub = rest;; sub = (sub - 1) & rest) {
        uint32_t b = sub | low, r = m ^ b;
        if (r && val[b] >= 0 && fmax[(size_t)(k - 1) * M + r] >= 0) {
          double mx = val[b] > fmax[(size_t)(k - 1) * M + r] ? val[b]
                                                               : fmax[(size_t)(k - 1) * M + r];
          double sq = val[b] * val[b] + fsq[(size_t)(k - 1) * M + r];
          if (fmax[at] < 0 || mx < fmax[at] || (mx == fmax[at] && sq < fsq[at])) {
            fmax[at] = mx;
            fsq[at] = sq;
            pick[at] = b;
          }
        }
        if (!sub)
          break;
      }
    }
  }
  if (fmax[(size_t)pt->N * M + full] < 0) {
    rc = eplb__err(EPLB_EPARAM, "policy balanced: the %d groups cannot be split over %d nodes "
                                "of %d slots without duplicates",
                   pt->K, pt->N, pt->Gn * pt->S);
    goto done;
  }
  uint32_t m = full;
  for (int32_t k = pt->N; k >= 1; k--) {
    uint32_t b = pick[(size_t)k * M + m];
    for (int32_t g = 0; g < pt->K; g++)
      if (b >> g & 1u)
        node_of[g] = pt->N - k;
    m ^= b;
  }
done:
  eplb__scratch_free(&sc);
  return rc;
}

/* Equal blocks of K/N groups, heaviest group first to the lightest node with room (ties: the
 * lower index). @return 0 or EPLB_ENOMEM. */
static int partition_greedy(const part *pt, int32_t *node_of) {
  eplb__scratch sc = {0};
  int32_t cap = pt->K / pt->N;
  double *gl = eplb__take(&sc, (size_t)pt->K, sizeof *gl);
  double *nodel = eplb__take(&sc, (size_t)pt->N, sizeof *nodel);
  int32_t *nodec = eplb__take(&sc, (size_t)pt->N, sizeof *nodec);
  if (sc.failed) {
    eplb__scratch_free(&sc);
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  }
  for (int32_t k = 0; k < pt->K; k++) {
    for (int32_t j = 0; j < pt->gs; j++)
      gl[k] += pt->w[(size_t)k * pt->gs + j];
    node_of[k] = -1;
  }
  for (int32_t i = 0; i < pt->K; i++) {
    int32_t g = -1;
    for (int32_t k = 0; k < pt->K; k++)
      if (node_of[k] < 0 && (g < 0 || gl[k] > gl[g]))
        g = k;
    int32_t best = -1;
    for (int32_t n = 0; n < pt->N; n++)
      if (nodec[n] < cap && (best < 0 || nodel[n] < nodel[best]))
        best = n;
    node_of[g] = best;
    nodel[best] += gl[g];
    nodec[best]++;
  }
  eplb__scratch_free(&sc);
  return 0;
}

/* ---- the rule ---- */

int eplb__locality(const double *w, int32_t E, const eplb_params *pr, eplb_hierarchy h,
                   int32_t *home) {
  int32_t G = pr->num_gpus, N = pr->num_nodes, K = pr->num_groups;
  if (h == EPLB_HIER_NONE || N == 1) {
    memset(home, 0, (size_t)E * sizeof *home);
    return 0;
  }
  eplb__scratch sc = {0};
  part pt = {w, K, N, E / K, G / N, pr->num_replicas / G, h == EPLB_HIER_STRICT,
             eplb__take(&sc, (size_t)E, sizeof(double)), NULL};
  int32_t *cnt = eplb__take(&sc, (size_t)E, sizeof *cnt);
  int32_t *node_of = eplb__take(&sc, (size_t)K, sizeof *node_of);
  int rc = sc.failed ? eplb__err(EPLB_ENOMEM, "plan balanced: out of memory") : 0;
  if (!rc && h == EPLB_HIER_SOFT) {
    /* Soft: a node carries its experts' first replicas at the min-max greedy's counts. */
    eplb__min_max_share(w, E, pr->num_replicas, G, cnt);
    pt.cnt = cnt;
  }
  if (!rc)
    rc = K <= EXACT_MAX_GROUPS ? partition_exact(&pt, node_of) : partition_greedy(&pt, node_of);
  for (int32_t e = 0; !rc && e < E; e++)
    home[e] = node_of[e / pt.gs];
  eplb__scratch_free(&sc);
  return rc;
}

