/* balanced_soft.c - hierarchy soft by decomposition. With the replica counts given (and fixed),
 * every expert's first replica stays on its home node and the extra replicas are the only free
 * choice: they are spread over the nodes so that the nodes' loads come out even (largest first
 * to the lightest node with a free slot, then trades between the heaviest node and the others),
 * and each node is then packed on its own with its counts fixed. Deterministic; ties go to the
 * lower index. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quality_int.h"

/* Exchange rounds between the heaviest node and the others (a deterministic cap; each round
 * lowers the heaviest node or stops). */
#define EXCHANGE_ROUNDS 256

/* One extra replica: its expert, its size and the node it is on. */
typedef struct extra {
  double size;
  int32_t e, node;
} extra;

/* Orders extras largest first, then by expert. */
static int extra_cmp(const void *pa, const void *pb) {
  const extra *a = pa, *b = pb;
  if (a->size != b->size)
    return a->size > b->size ? -1 : 1;
  return a->e - b->e;
}

/* The scratch of one split. */
typedef struct split {
  int32_t E, N, Gn, S;
  const int32_t *home;
  double *size;    /* [E] load of one replica */
  double *load;    /* [N] node loads */
  int32_t *room;   /* [N] free slots */
  int32_t *copies; /* [E*N] replicas of e on node n */
  int32_t *big;    /* [N] replicas on the node larger than half a device's mean load */
  double half;     /* half a device's mean load */
  extra *x;        /* [extras] */
  int32_t nx;
} split;

/* Places the extras largest first, each on the lightest node with a free slot and a device that
 * lacks the expert. @return 0 or EPLB_EPARAM when one fits nowhere. */
static int spread(split *sp) {
  qsort(sp->x, (size_t)sp->nx, sizeof *sp->x, extra_cmp);
  for (int32_t i = 0; i < sp->nx; i++) {
    int32_t e = sp->x[i].e, best = -1, isbig = sp->x[i].size > sp->half;
    for (int pass = 0; pass < 2 && best < 0; pass++)
      for (int32_t n = 0; n < sp->N; n++)
        if (sp->room[n] > 0 && sp->copies[(size_t)e * sp->N + n] < sp->Gn &&
            (pass || !isbig || sp->big[n] < sp->Gn) &&
            (best < 0 || sp->load[n] < sp->load[best]))
          best = n;
    if (best < 0)
      return eplb__err(EPLB_EPARAM, "plan balanced: soft: no node can take a replica of "
                                    "expert %d",
                       e);
    sp->x[i].node = best;
    sp->big[best] += isbig;
    sp->room[best]--;
    sp->load[best] += sp->x[i].size;
    sp->copies[(size_t)e * sp->N + best]++;
  }
  return 0;
}

/* Whether extra a (on the heaviest node) and extra b (elsewhere) may trade nodes: different
 * experts, each new node with a device lacking the expert, and no node past one replica over
 * half a device's mean per device. */
static int may_trade(const split *sp, const extra *a, const extra *b) {
  if (a->e == b->e)
    return 0;
  int ba = a->size > sp->half, bb = b->size > sp->half;
  if (ba > bb && sp->big[b->node] >= sp->Gn)
    return 0;
  return sp->copies[(size_t)a->e * sp->N + b->node] < sp->Gn &&
         sp->copies[(size_t)b->e * sp->N + a->node] < sp->Gn;
}

/* Trades extras between the heaviest node and another while that lowers the pair's larger load
 * below the heaviest load. */
static void exchange(split *sp) {
  for (int round = 0; round < EXCHANGE_ROUNDS; round++) {
    int32_t top = 0;
    for (int32_t n = 1; n < sp->N; n++)
      if (sp->load[n] > sp->load[top])
        top = n;
    double lt = sp->load[top], best = lt;
    int32_t bi = -1, bj = -1;
    for (int32_t i = 0; i < sp->nx; i++) {
      if (sp->x[i].node != top)
        continue;
      for (int32_t j = 0; j < sp->nx; j++) {
        const extra *a = &sp->x[i], *b = &sp->x[j];
        if (b->node == top || b->size >= a->size || !may_trade(sp, a, b))
          continue;
        double nt = lt - a->size + b->size, nm = sp->load[b->node] + a->size - b->size;
        double v = nt > nm ? nt : nm;
        if (v < best) {
          best = v;
          bi = i;
          bj = j;
        }
      }
    }
    if (bi < 0)
      return;
    extra *a = &sp->x[bi], *b = &sp->x[bj];
    int32_t na = a->node, nb = b->node;
    sp->copies[(size_t)a->e * sp->N + na]--;
    sp->copies[(size_t)b->e * sp->N + nb]--;
    sp->copies[(size_t)a->e * sp->N + nb]++;
    sp->copies[(size_t)b->e * sp->N + na]++;
    sp->big[na] += (b->size > sp->half) - (a->size > sp->half);
    sp->big[nb] += (a->size > sp->half) - (b->size > sp->half);
    sp->load[na] += b->size - a->size;
    sp->load[nb] += a->size - b->size;
    a->node = nb;
    b->node = na;
  }
}

/* Packs node n alone with its counts fixed; writes logical ids to row[n*Gn*S..] and returns the
 * node's busiest device in *mx. @return 0 or an error of eplb__pool_solve. */
static int pack_node(const split *sp, int32_t n, int32_t *ids, double *w, int32_t *cnt,
                     int32_t *slots, int32_t *row, double *mx) {
  int32_t m = 0;
  for (int32_t e = 0; e < sp->E; e++) {
    int32_t k = sp->copies[(size_t)e * sp->N + n];
    if (!k)
      continue;
    ids[m] = e;
    cnt[m] = k;
    w[m] = sp->size[e] * (double)k;
    m++;
  }
  eplb__pool pl = {0};
  pl.n = m;
  pl.w = w;
  pl.ndev = sp->Gn;
  pl.slots = sp->S;
  pl.init_cnt = cnt;
  pl.fixed_counts = 1;
  int rc = eplb__pool_solve(&pl, slots, mx);
  if (rc)
    return rc;
  int32_t P = sp->Gn * sp->S;
  for (int32_t i = 0; i < P; i++)
    row[n * P + i] = ids[slots[i]];
  return 0;
}

int eplb__soft_split(const double *w, int32_t E, const int32_t *home, int32_t N, int32_t Gn,
                     int32_t S, const int32_t *cnt, int32_t *row, double *max_load) {
  split sp = {E, N, Gn, S, home, NULL, NULL, NULL, NULL, NULL, 0, NULL, 0};
  int32_t R = N * Gn * S, P = Gn * S;
  sp.size = eplb__calloc((size_t)E, sizeof *sp.size);
  sp.load = eplb__calloc((size_t)N, sizeof *sp.load);
  sp.room = eplb__calloc((size_t)N, sizeof *sp.room);
  sp.copies = eplb__calloc((size_t)E * (size_t)N, sizeof *sp.copies);
  sp.big = eplb__calloc((size_t)N, sizeof *sp.big);
  sp.x = eplb__calloc((size_t)R, sizeof *sp.x);
  int32_t *ids = eplb__calloc((size_t)P, sizeof *ids), *lc = eplb__calloc((size_t)P, sizeof *lc);
  int32_t *slots = eplb__calloc((size_t)P, sizeof *slots);
  double *lw = eplb__calloc((size_t)P, sizeof *lw);
  int rc = 0;
  if (!sp.size || !sp.load || !sp.room || !sp.copies || !sp.big || !sp.x || !ids || !lc ||
      !slots || !lw) {
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
    goto done;
  }
  int64_t sum = 0;
  for (int32_t e = 0; e < E; e++) {
    if (cnt[e] < 1 || cnt[e] > N * Gn || home[e] < 0 || home[e] >= N) {
      rc = eplb__err(EPLB_EPARAM, "plan balanced: soft: expert %d: count %d or node %d out of "
                                  "range",
                     e, cnt[e], home[e]);
      goto done;
    }
    sum += cnt[e];
  }
  if (sum != R) {
    rc = eplb__err(EPLB_EPARAM, "plan balanced: soft: counts sum to %lld, not the %d slots",
                   (long long)sum, R);
    goto done;
  }
  for (int32_t n = 0; n < N; n++)
    sp.room[n] = P;
  double total = 0;
  for (int32_t e = 0; e < E; e++)
    total += w[e];
  sp.half = total / (double)(N * Gn) / 2;
  for (int32_t e = 0; e < E; e++) {
    sp.size[e] = w[e] / (double)cnt[e];
    sp.big[home[e]] += sp.size[e] > sp.half;
    sp.load[home[e]] += sp.size[e];
    sp.room[home[e]]--;
    sp.copies[(size_t)e * N + home[e]] = 1;
    for (int32_t r = 1; r < cnt[e]; r++) {
      sp.x[sp.nx].size = sp.size[e];
      sp.x[sp.nx].e = e;
      sp.x[sp.nx].node = -1;
      sp.nx++;
    }
  }
  for (int32_t n = 0; n < N && !rc; n++)
    if (sp.room[n] < 0)
      rc = eplb__err(EPLB_EPARAM, "plan balanced: soft: node %d has more experts than slots", n);
  if (!rc)
    rc = spread(&sp);
  if (!rc)
    exchange(&sp);
  double mx = 0;
  for (int32_t n = 0; n < N && !rc; n++) {
    double m = 0;
    rc = pack_node(&sp, n, ids, lw, lc, slots, row, &m);
    mx = m > mx ? m : mx;
  }
  if (!rc)
    *max_load = mx;
done:
  free(sp.size);
  free(sp.load);
  free(sp.room);
  free(sp.copies);
  free(sp.big);
  free(sp.x);
  free(ids);
  free(lc);
  free(slots);
  free(lw);
  return rc;
}
