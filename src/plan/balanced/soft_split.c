/* soft_split.c - hierarchy soft by decomposition. Every expert's first replica stays on its
 * home node; the extra replicas are spread over the nodes so that the nodes' loads come out even
 * (largest first to the lightest node with a free slot, then trades between the heaviest node and
 * the others), then a node search moves replicas between experts and nodes together (a copy of
 * one expert on a node gives way to a new replica of another, which shrinks all of the latter's
 * replicas; or two nodes trade copies) while that lowers the heaviest node; each node is then
 * packed on its own with its counts fixed, and its devices evened out two at a time by exchanges
 * of one or two replicas. Deterministic; ties go to the lower index. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Exchange rounds between the heaviest node and the others (a deterministic cap; each round
 * lowers the heaviest node or stops). */
#define EXCHANGE_ROUNDS 256
/* Node search: moves per split (a deterministic cap), and the least relative gain of one. */
#define NODE_SEARCH_MOVES 400
#define NODE_MIN_GAIN 1e-9
/* The node search stops once the heaviest node is within this share of the mean node. */
#define NODE_STOP 1e-3
/* Node search: the largest replicas listed per node for the fold (enough to drop the replicas of
 * the two experts a move changes, up to Gn each, and keep 2 * Gn). */
#define FOLD_LIST(Gn) (4 * (Gn))
/* Pair balancing of a packed node: passes over all device pairs (a deterministic cap), and the
 * least relative gain of one exchange. */
#define PAIR_PASSES 64
#define PAIR_MIN_GAIN 1e-9
/* Pair balancing stops once a node's busiest device is within this share of its mean. */
#define PAIR_STOP 2e-4
/* Pair balancing turns to the node with the busiest device at most this many times per node. */
#define PAIR_NODE_ROUNDS 4
/* With more slots per device than this, pair balancing visits only pairs whose heavier device is
 * above where it stops (measured: at 9 slots per device all pairs cost twice the plan time for
 * 0.02%; at 5 they are cheap and gain 0.1%). */
#define PAIR_ALL_MAX_SLOTS 6

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
  const double *w; /* [E] expert loads */
  int32_t *cnt;    /* [E] replica counts (the node search may change them) */
  double cap;      /* largest replica the node search may make; 0: counts fixed */
  double *size;    /* [E] load of one replica */
  double *load;    /* [N] node loads */
  int32_t *room;   /* [N] free slots */
  int32_t *copies; /* [E*N] replicas of e on node n */
  int32_t *big;    /* [N] replicas on the node larger than half a device's mean load */
  double half;     /* half a device's mean load */
  int32_t *lst;    /* [E*(N+1)] node search: experts removable per node, then those on top */
  int32_t *nrem;   /* [N] node search: lengths of the lists */
  int32_t *order;  /* [E] node search: experts by the size one more replica would have */
  double *grow;    /* [E] node search: that size, w / (cnt + 1) */
  double *red;     /* [E] node search: what top sheds when the expert gains a replica */
  double *bl;      /* [N] node search: node loads after a count move's loss (loss_loads) */
  double *topv;    /* [N*FOLD_LIST(Gn)] node search: each node's largest replicas (node_tops) */
  int32_t *tope;   /* [N*FOLD_LIST(Gn)] their experts */
  int32_t *ntop;   /* [N] list lengths */
  double *fold;    /* [N] each node's fold */
  double *fv;      /* [2*Gn] node search: fold scratch */
  double target;   /* a device's load the folds should stay under: max(cap, mean) */
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

/* ---- node search ---- */

/* Node loads and big-replica tallies from the copies and counts. */
static void node_totals(split *sp) {
  memset(sp->load, 0, (size_t)sp->N * sizeof *sp->load);
  memset(sp->big, 0, (size_t)sp->N * sizeof *sp->big);
  for (int32_t e = 0; e < sp->E; e++) {
    sp->size[e] = sp->w[e] / (double)sp->cnt[e];
    for (int32_t n = 0; n < sp->N; n++) {
      int32_t k = sp->copies[(size_t)e * sp->N + n];
      sp->load[n] += (double)k * sp->size[e];
      sp->big[n] += k * (sp->size[e] > sp->half);
    }
  }
}

/* One candidate move of the node search: on node m, a copy of expert b gives way to a copy of
 * expert a; with `trade` set, b's copy goes to node m2 in exchange (counts unchanged), else b
 * loses a replica and a gains one. */
typedef struct nmove {
  int32_t m, m2, a, b, trade;
} nmove;

/* The node loads after move mv into nl[N]; @return the largest, or INFINITY when one exceeds
 * bound or the move breaks a node's limit on replicas over half a device's mean. */
static double after_move(const split *sp, const nmove *mv, double *nl, double bound) {
  int32_t N = sp->N, a = mv->a, b = mv->b;
  double sa = sp->size[a], sb = sp->size[b], sa2 = sa, sb2 = sb;
  if (!mv->trade) {
    sa2 = sp->w[a] / (double)(sp->cnt[a] + 1);
    sb2 = sp->w[b] / (double)(sp->cnt[b] - 1);
  }
  double mx = 0;
  for (int32_t n = 0; n < N; n++) {
    int32_t ka = sp->copies[(size_t)a * N + n], kb = sp->copies[(size_t)b * N + n];
    int32_t ka2 = ka + (n == mv->m) - (mv->trade && n == mv->m2);
    int32_t kb2 = kb - (n == mv->m) + (mv->trade && n == mv->m2);
    nl[n] = sp->load[n] - (double)ka * sa - (double)kb * sb + (double)ka2 * sa2 +
            (double)kb2 * sb2;
    int32_t bg = sp->big[n] - ka * (sa > sp->half) - kb * (sb > sp->half) +
                 ka2 * (sa2 > sp->half) + kb2 * (sb2 > sp->half);
    if ((bg > sp->Gn && bg > sp->big[n]) || nl[n] > bound)
      return INFINITY;
    mx = nl[n] > mx ? nl[n] : mx;
  }
  return mx;
}

/* The sum of squared node loads in nl[N]. */
static double sum_sq(const double *nl, int32_t N) {
  double q = 0;
  for (int32_t n = 0; n < N; n++)
    q += nl[n] * nl[n];
  return q;
}

/* Whether node n holds a copy of e that may leave it (not e's first replica). */
static int removable(const split *sp, int32_t e, int32_t n) {
  return sp->copies[(size_t)e * sp->N + n] > (sp->home[e] == n);
}

/* The fold of the 2*Gn largest replicas v[] of a node (largest first, missing ones 0): the
 * largest of v[Gn-1-j] + v[Gn+j], the pairing of the Gn largest with the next Gn that evens the
 * pairs best. A packing that puts two of them on a device (as it must once there are more than
 * Gn) can hardly beat it; a node whose fold exceeds a device's target packs badly however even
 * its load (measured at R 320, sigma 2.0: the fold and the packed maximum track each other). */
static double fold_of(const double *v, int32_t len, int32_t Gn) {
  double f = 0;
  for (int32_t j = 0; j < Gn; j++) {
    double x = (Gn - 1 - j < len ? v[Gn - 1 - j] : 0) + (Gn + j < len ? v[Gn + j] : 0);
    f = x > f ? x : f;
  }
  return f;
}

/* Lists the FOLD_LIST(Gn) largest replicas of node n, largest first (ties: lower expert), and
 * its fold (fold_of). */
static void node_top(split *sp, int32_t n) {
  int32_t N = sp->N, L = FOLD_LIST(sp->Gn), len = 0;
  double *tv = sp->topv + (size_t)n * L;
  int32_t *te = sp->tope + (size_t)n * L;
  for (int32_t e = 0; e < sp->E; e++)
    for (int32_t k = sp->copies[(size_t)e * N + n]; k > 0; k--) {
      if (len == L && sp->size[e] <= tv[L - 1])
        break;
      int32_t i = len < L ? len++ : L - 1;
      while (i > 0 && tv[i - 1] < sp->size[e]) {
        tv[i] = tv[i - 1];
        te[i] = te[i - 1];
        i--;
      }
      tv[i] = sp->size[e];
      te[i] = e;
    }
  sp->ntop[n] = len;
  sp->fold[n] = fold_of(tv, len, sp->Gn);
}

/* Node n's fold once experts a and b hold ka, kb replicas of sizes sa, sb there; v[2*Gn] is
 * scratch. */
static double fold_after(const split *sp, int32_t n, int32_t a, double sa, int32_t ka, int32_t b,
                         double sb, int32_t kb, double *v) {
  int32_t L = FOLD_LIST(sp->Gn), i = 0, got = 0, want = 2 * sp->Gn;
  const double *tv = sp->topv + (size_t)n * L;
  const int32_t *te = sp->tope + (size_t)n * L;
  double hi = sa >= sb ? sa : sb, lo = sa >= sb ? sb : sa;
  int32_t khi = sa >= sb ? ka : kb, klo = sa >= sb ? kb : ka;
  while (got < want) {
    while (i < sp->ntop[n] && (te[i] == a || te[i] == b))
      i++;
    double x = i < sp->ntop[n] ? tv[i] : -1;
    if (khi > 0 && hi >= x) {
      x = hi;
      khi--;
    } else if (klo > 0 && lo >= x) {
      x = lo;
      klo--;
    } else if (i < sp->ntop[n]) {
      i++;
    } else {
      break;
    }
    v[got++] = x;
  }
  return fold_of(v, got, sp->Gn);
}

/* node_top for every node. */
static void node_tops(split *sp) {
  for (int32_t n = 0; n < sp->N; n++)
    node_top(sp, n);
}

/* Whether move mv keeps every node it touches packable by the fold: none past the target (or
 * its own fold, when that is already past it). */
static int fold_ok(const split *sp, const nmove *mv) {
  int32_t N = sp->N, a = mv->a, b = mv->b;
  double sa2 = sp->size[a], sb2 = sp->size[b];
  if (!mv->trade) {
    sa2 = sp->w[a] / (double)(sp->cnt[a] + 1);
    sb2 = sp->w[b] / (double)(sp->cnt[b] - 1);
  }
  for (int32_t n = 0; n < N; n++) {
    int32_t ka = sp->copies[(size_t)a * N + n], kb = sp->copies[(size_t)b * N + n];
    int32_t ka2 = ka + (n == mv->m) - (mv->trade && n == mv->m2);
    int32_t kb2 = kb - (n == mv->m) + (mv->trade && n == mv->m2);
    if (!ka && !kb && !ka2 && !kb2)
      continue;
    double lim = sp->fold[n] > sp->target ? sp->fold[n] : sp->target;
    if (fold_after(sp, n, a, sa2, ka2, b, sb2, kb2, sp->fv) > lim * (1 + NODE_MIN_GAIN))
      return 0;
  }
  return 1;
}

/* Keeps mv as the best move so far when its node loads beat (*bmax, *bsq) and it keeps the
 * folds (fold_ok); node `top`'s load after the move, found first, rules most moves out. */
static void consider(const split *sp, const nmove *mv, int32_t top, double *nl, double *bmax,
                     double *bsq, nmove *best) {
  int32_t N = sp->N, a = mv->a, b = mv->b;
  double sa = sp->size[a], sb = sp->size[b], sa2 = sa, sb2 = sb;
  if (!mv->trade) {
    sa2 = sp->w[a] / (double)(sp->cnt[a] + 1);
    sb2 = sp->w[b] / (double)(sp->cnt[b] - 1);
  }
  int32_t ka = sp->copies[(size_t)a * N + top], kb = sp->copies[(size_t)b * N + top];
  int32_t ka2 = ka + (top == mv->m) - (mv->trade && top == mv->m2);
  int32_t kb2 = kb - (top == mv->m) + (mv->trade && top == mv->m2);
  double lt = sp->load[top] - (double)ka * sa - (double)kb * sb + (double)ka2 * sa2 +
              (double)kb2 * sb2;
  if (lt > *bmax)
    return;
  double mx = after_move(sp, mv, nl, *bmax);
  if (mx > *bmax)
    return;
  double q = sum_sq(nl, sp->N);
  if ((mx < *bmax || q < *bsq) && fold_ok(sp, mv)) {
    *bmax = mx;
    *bsq = q;
    *best = *mv;
  }
}

/* For count moves from b on node m: bl[n] = node n's load once b has given up its replica there
 * (b's other replicas grown), before any gain; t3 gets the (up to) three heaviest nodes other
 * than m, heaviest first. @return how many are in t3. */
static int32_t loss_loads(const split *sp, int32_t m, int32_t b, double *bl, int32_t *t3) {
  int32_t N = sp->N, nt = 0;
  double sb = sp->size[b], sb2 = sp->w[b] / (double)(sp->cnt[b] - 1);
  for (int32_t n = 0; n < N; n++) {
    int32_t kb = sp->copies[(size_t)b * N + n];
    bl[n] = sp->load[n] - (double)kb * sb + (double)(kb - (n == m)) * sb2;
    if (n == m)
      continue;
    int32_t i = nt < 3 ? nt++ : 3;
    while (i > 0 && bl[t3[i - 1]] < bl[n]) {
      if (i < 3)
        t3[i] = t3[i - 1];
      i--;
    }
    if (i < 3)
      t3[i] = n;
  }
  return nt;
}

/* A lower bound on the heaviest node after the count move (m, b -> a), from loss_loads: node m
 * with a's new replica, and the heaviest of t3 where a has no copy (a's copies only shrink). */
static double gain_bound(const split *sp, int32_t m, int32_t a, const double *bl,
                         const int32_t *t3, int32_t nt) {
  int32_t N = sp->N;
  double sa = sp->size[a], sa2 = sp->grow[a];
  int32_t ka = sp->copies[(size_t)a * N + m];
  double v = bl[m] + (double)ka * (sa2 - sa) + sa2;
  for (int32_t i = 0; i < nt; i++)
    if (!sp->copies[(size_t)a * N + t3[i]]) {
      v = bl[t3[i]] > v ? bl[t3[i]] : v;
      break;
    }
  return v;
}

/* Lowers the heaviest node by moves that keep every node's slot count: a copy of expert b on node
 * m gives way to a new replica of expert a (b keeps its first replica and one replica at least,
 * a's replicas all shrink, no replica past sp->cap; only with sp->cap > 0), or the heaviest node
 * trades a copy with another node. Every move must lower the heaviest node; the one leaving the
 * lightest maximum (then the smallest sum of squares) is taken, until the heaviest node is within
 * NODE_STOP of the mean, no move helps, or NODE_SEARCH_MOVES. No node gets more copies of an
 * expert than devices, past one replica over half a device's mean per device, or a fold past
 * max(target, its fold). Candidates are pruned by exact bounds (the heaviest node's new load, the
 * loads once b has given up its replica) before any full evaluation. nl[N] is scratch. */
static void node_search(split *sp, double *nl) {
  int32_t N = sp->N, E = sp->E, G = N * sp->Gn;
  node_totals(sp);
  node_tops(sp);
  double total = 0;
  for (int32_t n = 0; n < N; n++)
    total += sp->load[n];
  for (int it = 0; it < NODE_SEARCH_MOVES; it++) {
    int32_t top = 0;
    for (int32_t n = 1; n < N; n++)
      if (sp->load[n] > sp->load[top])
        top = n;
    if (sp->load[top] <= total / (double)N * (1 + NODE_STOP))
      break;
    double bmax = sp->load[top] * (1 - NODE_MIN_GAIN), bsq = INFINITY;
    nmove best = {-1, -1, -1, -1, 0}, mv;
    /* Experts by the size of one more replica, smallest first (sorted once, then by insertion
     * from the last order: a move changes two counts). */
    for (int32_t e = 0; e < E; e++)
      sp->grow[e] = sp->w[e] / (double)(sp->cnt[e] + 1);
    if (it == 0) { /* the extras' list is free once they are spread: sorted by -grow */
      for (int32_t e = 0; e < E; e++)
        sp->x[e] = (extra){-sp->grow[e], e, 0};
      qsort(sp->x, (size_t)E, sizeof *sp->x, extra_cmp);
      for (int32_t i = 0; i < E; i++)
        sp->order[i] = sp->x[i].e;
    }
    for (int32_t i = 1; i < E; i++) {
      int32_t e = sp->order[i], j = i;
      double v = sp->grow[e];
      while (j > 0 && (sp->grow[sp->order[j - 1]] > v ||
                       (sp->grow[sp->order[j - 1]] == v && sp->order[j - 1] > e))) {
        sp->order[j] = sp->order[j - 1];
        j--;
      }
      sp->order[j] = e;
    }
    /* The experts each node may give a copy away of, and those with a copy on top. */
    int32_t *ontop = sp->lst + (size_t)N * E, non = 0;
    for (int32_t n = 0; n < N; n++)
      sp->nrem[n] = 0;
    for (int32_t e = 0; e < E; e++) {
      int32_t k = sp->copies[(size_t)e * N + top];
      if (k) {
        /* Listed by how much top sheds when e gains a replica elsewhere, most first. */
        sp->red[e] = (double)k * (sp->size[e] - sp->grow[e]);
        int32_t i = non++;
        while (i > 0 && sp->red[ontop[i - 1]] < sp->red[e]) {
          ontop[i] = ontop[i - 1];
          i--;
        }
        ontop[i] = e;
      }
      for (int32_t n = 0; n < N; n++)
        if (removable(sp, e, n))
          sp->lst[(size_t)n * E + sp->nrem[n]++] = e;
    }
    for (int32_t m = 0; m < N; m++)
      for (int32_t ib = 0; ib < sp->nrem[m]; ib++) {
        int32_t b = sp->lst[(size_t)m * E + ib];
        /* Count moves: b gives a replica to a (one with a copy on top unless m is top). */
        double sb2 = sp->w[b] / (double)(sp->cnt[b] - 1);
        if (sp->cap > 0 && sb2 <= sp->cap) {
          int32_t t3[3], nt = loss_loads(sp, m, b, sp->bl, t3);
          for (int32_t ia = 0; ia < non; ia++) {
            int32_t a = ontop[ia];
            if (m != top && sp->bl[top] - sp->red[a] > bmax)
              break; /* top keeps b's loss and sheds only red[a], less further on */
            if (a == b || sp->cnt[a] >= G || sp->copies[(size_t)a * N + m] >= sp->Gn ||
                gain_bound(sp, m, a, sp->bl, t3, nt) > bmax)
              continue;
            mv = (nmove){m, -1, a, b, 0};
            consider(sp, &mv, top, nl, &bmax, &bsq, &best);
          }
          /* On top itself any expert may gain; without a copy on top, a's new replica is all
           * top gains, so the experts come smallest new replica first and stop at the first
           * that leaves top above the best maximum. */
          for (int32_t ia = 0; m == top && ia < E; ia++) {
            int32_t a = sp->order[ia];
            if (sp->copies[(size_t)a * N + top] || a == b || sp->cnt[a] >= G)
              continue;
            if (sp->bl[top] + sp->grow[a] > bmax)
              break;
            if (gain_bound(sp, m, a, sp->bl, t3, nt) > bmax)
              continue;
            mv = (nmove){m, -1, a, b, 0};
            consider(sp, &mv, top, nl, &bmax, &bsq, &best);
          }
        }
        /* Trades: b on top goes to m2, a's copy on m2 comes to top. */
        if (m != top)
          continue;
        for (int32_t m2 = 0; m2 < N; m2++) {
          if (m2 == top || sp->copies[(size_t)b * N + m2] >= sp->Gn)
            continue;
          for (int32_t ia = 0; ia < sp->nrem[m2]; ia++) {
            int32_t a = sp->lst[(size_t)m2 * E + ia];
            if (a == b || sp->size[a] >= sp->size[b] || sp->copies[(size_t)a * N + top] >= sp->Gn)
              continue;
            mv = (nmove){top, m2, a, b, 1};
            consider(sp, &mv, top, nl, &bmax, &bsq, &best);
          }
        }
      }
    if (best.a < 0)
      break;
    sp->copies[(size_t)best.a * N + best.m]++;
    sp->copies[(size_t)best.b * N + best.m]--;
    if (best.trade) {
      sp->copies[(size_t)best.a * N + best.m2]--;
      sp->copies[(size_t)best.b * N + best.m2]++;
    } else {
      sp->cnt[best.a]++;
      sp->cnt[best.b]--;
    }
    node_totals(sp);
    for (int32_t n = 0; n < N; n++) /* the folds of the nodes the move touched */
      if (n == best.m || n == best.m2 || sp->copies[(size_t)best.a * N + n] ||
          sp->copies[(size_t)best.b * N + n])
        node_top(sp, n);
  }
}

/* Whether device slots seg[0..S) hold expert e. */
static int holds(const int32_t *seg, int32_t S, int32_t e) {
  for (int32_t i = 0; i < S; i++)
    if (seg[i] == e)
      return 1;
  return 0;
}

/* One or two replicas of a device, by their total load. */
typedef struct group2 {
  double v;
  int32_t i, j; /* slots within the device; j = -1 for one replica */
} group2;

/* Scratch of pair balancing, sized for one device's groups of one or two replicas. */
typedef struct pair_scratch {
  unsigned char *ok; /* [S] */
  group2 *gh, *gl;   /* [S*(S+1)/2] */
} pair_scratch;

/* Lists the groups of one or of two replicas of device slots s[0..S) that may move to a device
 * holding o[0..S) (no expert the other device holds), in g; sorts them when `sorted`. @return
 * how many. */
static int32_t list_groups(const split *sp, const int32_t *s, const int32_t *o, int32_t two,
                           int sorted, unsigned char *ok, group2 *g) {
  int32_t S = sp->S, m = 0;
  for (int32_t i = 0; i < S; i++)
    ok[i] = !holds(o, S, s[i]);
  for (int32_t i = 0; i < S; i++) {
    if (!ok[i])
      continue;
    if (!two) {
      g[m++] = (group2){sp->size[s[i]], i, -1};
      continue;
    }
    for (int32_t j = i + 1; j < S; j++)
      if (ok[j])
        g[m++] = (group2){sp->size[s[i]] + sp->size[s[j]], i, j};
  }
  for (int32_t x = 1; sorted && x < m; x++) { /* stable: ties keep slot order */
    group2 t = g[x];
    int32_t y = x;
    while (y > 0 && g[y - 1].v > t.v) {
      g[y] = g[y - 1];
      y--;
    }
    g[y] = t;
  }
  return m;
}

/* The best exchange of `two`+1 replicas between devices h (heavier) and l: moving t = (h's group)
 * - (l's group) from h to l with 0 < t < diff, t nearest diff / 2. Updates *bt (the best |t -
 * diff/2| so far) and the groups *gh, *gl. */
static void best_exchange(const split *sp, const int32_t *sh, const int32_t *sl, double diff,
                          int32_t two, pair_scratch *ps, double *bt, group2 *gh, group2 *gl) {
  int32_t nh = list_groups(sp, sh, sl, two, 0, ps->ok, ps->gh);
  int32_t nl = list_groups(sp, sl, sh, two, 1, ps->ok, ps->gl);
  for (int32_t x = 0; x < nh; x++) {
    /* l's group nearest gh - diff/2: the first at or above it and the one before. */
    double want = ps->gh[x].v - diff / 2;
    int32_t lo = 0, hi = nl;
    while (lo < hi) {
      int32_t mid = (lo + hi) / 2;
      if (ps->gl[mid].v < want)
        lo = mid + 1;
      else
        hi = mid;
    }
    for (int32_t y = lo - 1; y <= lo; y++) {
      if (y < 0 || y >= nl)
        continue;
      double t = ps->gh[x].v - ps->gl[y].v, dev = fabs(t - diff / 2);
      if (t <= 0 || t >= diff || dev >= *bt)
        continue;
      *bt = dev;
      *gh = ps->gh[x];
      *gl = ps->gl[y];
    }
  }
}

/* Evens out the devices of one packed node two at a time: for a pair, the exchange of one replica
 * of the heavier device for one of the lighter (or, when none helps, of two for two; never an
 * expert twice on a device) that leaves the pair's larger load smallest, taken when it lowers it.
 * Each exchange lowers the sum of squared device loads and never raises the busiest, so passes
 * over the pairs repeat until none helps, the busiest device is within PAIR_STOP of the node's
 * mean or at most stop_at, or PAIR_PASSES. With more than PAIR_ALL_MAX_SLOTS slots per device
 * only pairs whose heavier device is above the stop are tried. seg holds the node's Gn*S slots,
 * dl[Gn] gets the device loads. @return 0 when it stopped at stop_at (the node may still gain),
 * else 1. */
static int balance_pairs(const split *sp, int32_t *seg, double *dl, pair_scratch *ps,
                         double stop_at) {
  int32_t Gn = sp->Gn, S = sp->S;
  double total = 0;
  for (int32_t d = 0; d < Gn; d++) {
    dl[d] = 0;
    for (int32_t i = d * S; i < (d + 1) * S; i++)
      dl[d] += sp->size[seg[i]];
    total += dl[d];
  }
  double own = total / (double)Gn * (1 + PAIR_STOP);
  double stop = own > stop_at ? own : stop_at;
  for (int pass = 0; pass < PAIR_PASSES; pass++) {
    double mx = 0;
    for (int32_t d = 0; d < Gn; d++)
      mx = dl[d] > mx ? dl[d] : mx;
    if (mx <= stop)
      return mx <= own;
    int moved = 0;
    for (int32_t d1 = 0; d1 < Gn; d1++)
      for (int32_t d2 = d1 + 1; d2 < Gn; d2++) {
        int32_t h = dl[d1] >= dl[d2] ? d1 : d2, l = h == d1 ? d2 : d1;
        int32_t *sh = seg + (size_t)h * S, *sl = seg + (size_t)l * S;
        double diff = dl[h] - dl[l];
        double bt = diff / 2 - dl[h] * PAIR_MIN_GAIN;
        if (bt <= 0 || (S > PAIR_ALL_MAX_SLOTS && dl[h] <= stop))
          continue;
        group2 gh = {0, -1, -1}, gl = {0, -1, -1};
        best_exchange(sp, sh, sl, diff, 0, ps, &bt, &gh, &gl);
        if (S >= 2 && gh.i < 0)
          best_exchange(sp, sh, sl, diff, 1, ps, &bt, &gh, &gl);
        if (gh.i < 0)
          continue;
        double t = gh.v - gl.v;
        int32_t x = sh[gh.i];
        sh[gh.i] = sl[gl.i];
        sl[gl.i] = x;
        if (gh.j >= 0) {
          x = sh[gh.j];
          sh[gh.j] = sl[gl.j];
          sl[gl.j] = x;
        }
        dl[h] -= t;
        dl[l] += t;
        moved = 1;
      }
    if (!moved)
      return 1;
  }
  return 1;
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
                     int32_t S, const int32_t *cnt, double cap, int32_t *row, double *max_load) {
  eplb__scratch sc = {0};
  split sp = {.E = E, .N = N, .Gn = Gn, .S = S, .home = home, .w = w, .cap = cap};
  int32_t R = N * Gn * S, P = Gn * S;
  sp.size = eplb__take(&sc, (size_t)E, sizeof *sp.size);
  sp.load = eplb__take(&sc, (size_t)N, sizeof *sp.load);
  sp.room = eplb__take(&sc, (size_t)N, sizeof *sp.room);
  sp.copies = eplb__take(&sc, (size_t)E * (size_t)N, sizeof *sp.copies);
  sp.big = eplb__take(&sc, (size_t)N, sizeof *sp.big);
  sp.x = eplb__take(&sc, (size_t)R, sizeof *sp.x);
  sp.cnt = eplb__take(&sc, (size_t)E, sizeof *sp.cnt);
  sp.lst = eplb__take(&sc, (size_t)E * (size_t)(N + 1), sizeof *sp.lst);
  sp.nrem = eplb__take(&sc, (size_t)N, sizeof *sp.nrem);
  sp.order = eplb__take(&sc, (size_t)E, sizeof *sp.order);
  sp.grow = eplb__take(&sc, (size_t)E, sizeof *sp.grow);
  sp.red = eplb__take(&sc, (size_t)E, sizeof *sp.red);
  sp.bl = eplb__take(&sc, (size_t)N, sizeof *sp.bl);
  sp.topv = eplb__take(&sc, (size_t)N * (size_t)FOLD_LIST(Gn), sizeof *sp.topv);
  sp.tope = eplb__take(&sc, (size_t)N * (size_t)FOLD_LIST(Gn), sizeof *sp.tope);
  sp.ntop = eplb__take(&sc, (size_t)N, sizeof *sp.ntop);
  sp.fold = eplb__take(&sc, (size_t)N, sizeof *sp.fold);
  sp.fv = eplb__take(&sc, 2 * (size_t)Gn, sizeof *sp.fv);
  double *nl = eplb__take(&sc, (size_t)N, sizeof *nl);
  double *dl = eplb__take(&sc, (size_t)Gn, sizeof *dl);
  double *nmx = eplb__take(&sc, (size_t)N, sizeof *nmx);
  unsigned char *done_node = eplb__take(&sc, (size_t)N, 1);
  size_t ng = (size_t)S * (size_t)(S + 1) / 2;
  pair_scratch ps = {eplb__take(&sc, (size_t)S, 1), eplb__take(&sc, ng, sizeof(group2)),
                     eplb__take(&sc, ng, sizeof(group2))};
  int32_t *ids = eplb__take(&sc, (size_t)P, sizeof *ids);
  int32_t *lc = eplb__take(&sc, (size_t)P, sizeof *lc);
  int32_t *slots = eplb__take(&sc, (size_t)P, sizeof *slots);
  double *lw = eplb__take(&sc, (size_t)P, sizeof *lw);
  int rc = 0;
  if (sc.failed) {
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
  memcpy(sp.cnt, cnt, (size_t)E * sizeof *sp.cnt);
  for (int32_t n = 0; n < N; n++)
    sp.room[n] = P;
  double total = 0;
  for (int32_t e = 0; e < E; e++)
    total += w[e];
  sp.half = total / (double)(N * Gn) / 2;
  sp.target = cap > 2 * sp.half ? cap : 2 * sp.half;
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
  if (!rc)
    node_search(&sp, nl);
  /* Every node packed, then pair balancing for the node with the busiest device, until it is no
   * longer the busiest (then the next one), or it is as even as balancing makes it. */
  double mx = 0;
  for (int32_t n = 0; n < N && !rc; n++)
    rc = pack_node(&sp, n, ids, lw, lc, slots, row, &nmx[n]);
  for (int32_t k = 0; k < N * PAIR_NODE_ROUNDS && !rc; k++) {
    int32_t top = 0;
    for (int32_t n = 1; n < N; n++)
      if (nmx[n] > nmx[top])
        top = n;
    double next = 0;
    for (int32_t n = 0; n < N; n++)
      if (n != top && nmx[n] > next)
        next = nmx[n];
    if (done_node[top])
      break;
    done_node[top] = (unsigned char)balance_pairs(&sp, row + (size_t)top * P, dl, &ps, next);
    nmx[top] = 0;
    for (int32_t d = 0; d < Gn; d++)
      nmx[top] = dl[d] > nmx[top] ? dl[d] : nmx[top];
  }
  for (int32_t n = 0; n < N; n++)
    mx = nmx[n] > mx ? nmx[n] : mx;
  if (!rc)
    *max_load = mx;
done:
  eplb__scratch_free(&sc);
  return rc;
}
