/* soft_anneal.c - hierarchy soft: annealing at node level, the last step for a layer
 * still far above the bound (typically one dominant expert whose copies fill most devices, so
 * that the nodes' totals must be evened out by coordinated moves across nodes). The state is
 * what each node holds: the replica counts and the copies of every expert on every node (the
 * first replica on its home node, at most one copy per device). A move trades a free copy
 * between two nodes, or on one node lets a free copy of an expert with two or more replicas give
 * way to a new replica of another (which resizes both experts' replicas everywhere). Each node
 * touched is packed alone (largest first to the lightest device, then exchanges of one or two
 * replicas between its devices), and the cost is the sum over nodes of the squared share by
 * which the node's busiest device exceeds a target just under the goal. Moves are accepted by
 * the Metropolis rule at a temperature falling linearly to zero; a node's mean load, a lower
 * bound on its busiest device, rules most moves out before any packing. Deterministic (fixed
 * seed, capped moves and packings). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/eplb_rand.h"
#include "plan/balanced/balanced.h"

/* Moves tried (a deterministic cap; the temperature reaches zero at the last). */
#define ANNEAL_ITERS 300000
/* Node packings (deterministic caps on the work): at most ANNEAL_PACKS in all, and the search
 * stops after ANNEAL_STALL without a lighter plan (measured at R 320 on the seven dominant-expert
 * layers the other soft steps leave over 1% above none: the four it brings within 1% took 62-1,748
 * packings; the three it does not, 0.2 ms a packing, kept the full cap of 20,000). */
#define ANNEAL_PACKS 12000
/* With a deadline, the clock is read once per this many moves. */
#define ANNEAL_CLOCK_EVERY 256
#define ANNEAL_STALL 3000
/* Starting temperature, in squared shares of the target (an excess of 0.07% of the target costs
 * about one temperature). */
#define ANNEAL_TEMP 5e-7
/* Share of count moves among the moves; the rest are trades. */
#define ANNEAL_COUNT_SHARE 0.3
/* Share of trades that start from the node with the busiest device (else a random node). */
#define ANNEAL_TOP_SHARE 0.5
/* The cost counts excess over this share below the goal. */
#define ANNEAL_BELOW 1e-3
/* Seed of the pseudo-random moves. */
#define ANNEAL_SEED 0x50f7a22e11ull
/* Node packing: passes of exchanges over all device pairs, then rounds from the busiest device
 * (deterministic caps). */
#define PACK_PASSES 8
#define PACK_ROUNDS 200
/* Two-for-two exchanges only with up to this many slots per device (their number grows as S^4). */
#define PACK_TWO_MAX_SLOTS 8
/* Least relative gain of an exchange. */
#define PACK_MIN_GAIN 1e-9

/* The annealing state and the scratch of one node packing. */
typedef struct anneal {
  const double *w;      /* [E] expert loads */
  const int32_t *home;  /* [E] home nodes */
  int32_t E, N, Gn, S;  /* experts, nodes, devices per node, slots per device */
  int32_t *cnt;         /* [E] replica counts */
  int32_t *cp;          /* [E*N] copies of expert e on node n */
  eplb__keyed *items;   /* [Gn*S] packing: the node's replicas (size, expert) */
  int32_t *sl;          /* [Gn*S] packing: expert per slot */
  int32_t *fill;        /* [Gn] packing: used slots */
  double *dl;           /* [Gn] packing: device loads */
  int32_t *la, *lb;     /* [E] move scratch: candidate experts */
  int64_t packs;        /* packings so far */
} anneal;

/* The size of one replica of expert e. */
static double rsize(const anneal *a, int32_t e) {
  return a->w[e] / (double)a->cnt[e];
}

/* Whether device d of the packing holds expert e among its first `upto` slots. */
static int dev_holds(const anneal *a, int32_t d, int32_t e, int32_t upto) {
  for (int32_t k = 0; k < upto; k++)
    if (a->sl[d * a->S + k] == e)
      return 1;
  return 0;
}

/* The change of load of device h when the replicas in its slots i1, i2 (i2 == i1: one) go to
 * device l for those in l's slots j1, j2; *ok is 0 when that would put an expert twice on a
 * device. */
static double exchange_gain(const anneal *a, int32_t h, int32_t l, int32_t i1, int32_t i2,
                            int32_t j1, int32_t j2, int *ok) {
  int32_t S = a->S;
  const int32_t *sh = a->sl + (size_t)h * S, *sl = a->sl + (size_t)l * S;
  int32_t a1 = sh[i1], a2 = sh[i2], b1 = sl[j1], b2 = sl[j2];
  double t = rsize(a, a1) - rsize(a, b1);
  if (i2 != i1)
    t += rsize(a, a2) - rsize(a, b2);
  *ok = 1;
  for (int32_t k = 0; k < S; k++) {
    if (k != j1 && k != j2 && (sl[k] == a1 || sl[k] == a2))
      *ok = 0;
    if (k != i1 && k != i2 && (sh[k] == b1 || sh[k] == b2))
      *ok = 0;
  }
  return t;
}

/* Applies the exchange of exchange_gain, which moves t of load from h to l. */
static void exchange_apply(anneal *a, int32_t h, int32_t l, int32_t i1, int32_t i2, int32_t j1,
                           int32_t j2, double t) {
  int32_t S = a->S, *sh = a->sl + (size_t)h * S, *sl = a->sl + (size_t)l * S, x = sh[i1];
  sh[i1] = sl[j1];
  sl[j1] = x;
  if (i2 != i1) {
    x = sh[i2];
    sh[i2] = sl[j2];
    sl[j2] = x;
  }
  a->dl[h] -= t;
  a->dl[l] += t;
}

/* The exchange of one replica for one, or two for two, between devices h (heavier) and l that
 * moves t with 0 < t < diff from h to l: with `half`, the t nearest diff / 2 (any t evens the
 * pair), else the t leaving max(dl[h] - t, dl[l] + t) smallest. @return the best score (|t -
 * diff/2| or the pair's new maximum) and the exchange in e[4], *t_out; e[0] = -1 when none. */
static void best_exchange(anneal *a, int32_t h, int32_t l, int half, double *score,
                          int32_t *e, double *t_out) {
  int32_t S = a->S;
  double diff = a->dl[h] - a->dl[l];
  int two = S <= PACK_TWO_MAX_SLOTS;
  for (int32_t i1 = 0; i1 < S; i1++)
    for (int32_t i2 = i1; i2 < (two ? S : i1 + 1); i2++)
      for (int32_t j1 = 0; j1 < S; j1++)
        for (int32_t j2 = j1; j2 < (two ? S : j1 + 1); j2++) {
          if ((i1 == i2) != (j1 == j2))
            continue;
          int ok;
          double t = exchange_gain(a, h, l, i1, i2, j1, j2, &ok);
          if (!ok || t <= 0 || t >= diff)
            continue;
          double v = half ? fabs(t - diff / 2)
                          : (a->dl[h] - t > a->dl[l] + t ? a->dl[h] - t : a->dl[l] + t);
          if (v >= *score)
            continue;
          *score = v;
          e[0] = i1;
          e[1] = i2;
          e[2] = j1;
          e[3] = j2;
          *t_out = t;
        }
}

/* Packs node n alone with the current counts and copies: largest replica first to the lightest
 * device with a free slot lacking its expert (none: a device lacking it gives a replica the one
 * with room lacks to it, and takes this one), then passes over all device pairs with the
 * exchange that evens each pair best, then exchanges from the busiest device while they lower
 * it. Writes the experts of the node's slots to out[Gn*S] when out is not NULL. @return the
 * busiest device's load, INFINITY when the packing fails. */
static double pack_node(anneal *a, int32_t n, int32_t *out) {
  int32_t Gn = a->Gn, S = a->S, N = a->N, m = 0;
  a->packs++;
  for (int32_t e = 0; e < a->E; e++)
    for (int32_t k = a->cp[(size_t)e * N + n]; k > 0; k--)
      a->items[m++] = (eplb__keyed){rsize(a, e), e};
  qsort(a->items, (size_t)m, sizeof *a->items, eplb__keyed_cmp);
  for (int32_t d = 0; d < Gn; d++) {
    a->fill[d] = 0;
    a->dl[d] = 0;
  }
  for (int32_t i = 0; i < m; i++) {
    int32_t e = a->items[i].e, best = -1;
    for (int32_t d = 0; d < Gn; d++)
      if (a->fill[d] < S && !dev_holds(a, d, e, a->fill[d]) &&
          (best < 0 || a->dl[d] < a->dl[best]))
        best = d;
    if (best >= 0) {
      a->sl[best * S + a->fill[best]++] = e;
      a->dl[best] += a->items[i].w;
      continue;
    }
    int32_t r = -1;
    for (int32_t d = 0; d < Gn; d++)
      if (a->fill[d] < S)
        r = d;
    int done = 0;
    for (int32_t d = 0; d < Gn && !done && r >= 0; d++) {
      if (d == r || dev_holds(a, d, e, a->fill[d]))
        continue;
      for (int32_t k = 0; k < a->fill[d] && !done; k++) {
        int32_t z = a->sl[d * S + k];
        if (dev_holds(a, r, z, a->fill[r]))
          continue;
        a->sl[r * S + a->fill[r]++] = z;
        a->dl[r] += rsize(a, z);
        a->dl[d] += a->items[i].w - rsize(a, z);
        a->sl[d * S + k] = e;
        done = 1;
      }
    }
    if (!done)
      return INFINITY;
  }
  int32_t ex[4];
  for (int pass = 0; pass < PACK_PASSES; pass++) {
    int moved = 0;
    for (int32_t d1 = 0; d1 < Gn; d1++)
      for (int32_t d2 = d1 + 1; d2 < Gn; d2++) {
        int32_t h = a->dl[d1] >= a->dl[d2] ? d1 : d2, l = h == d1 ? d2 : d1;
        double diff = a->dl[h] - a->dl[l], score = diff / 2 * (1 - PACK_MIN_GAIN), t = 0;
        if (diff <= 0)
          continue;
        ex[0] = -1;
        best_exchange(a, h, l, 1, &score, ex, &t);
        if (ex[0] < 0)
          continue;
        exchange_apply(a, h, l, ex[0], ex[1], ex[2], ex[3], t);
        moved = 1;
      }
    if (!moved)
      break;
  }
  for (int round = 0; round < PACK_ROUNDS; round++) {
    int32_t h = 0, bl = -1, be[4] = {0, 0, 0, 0};
    for (int32_t d = 1; d < Gn; d++)
      if (a->dl[d] > a->dl[h])
        h = d;
    double score = a->dl[h] * (1 - PACK_MIN_GAIN), bt = 0;
    for (int32_t l = 0; l < Gn; l++) {
      if (l == h || a->dl[l] >= a->dl[h])
        continue;
      double t = 0, was = score;
      ex[0] = -1;
      best_exchange(a, h, l, 0, &score, ex, &t);
      if (ex[0] >= 0 && score < was) {
        bl = l;
        memcpy(be, ex, sizeof be);
        bt = t;
      }
    }
    if (bl < 0)
      break;
    exchange_apply(a, h, bl, be[0], be[1], be[2], be[3], bt);
  }
  double mx = 0;
  for (int32_t d = 0; d < Gn; d++)
    mx = a->dl[d] > mx ? a->dl[d] : mx;
  if (out)
    memcpy(out, a->sl, (size_t)(Gn * S) * sizeof *out);
  return mx;
}

/* The mean device load of node n, a lower bound on its busiest device. */
static double node_mean(const anneal *a, int32_t n) {
  double t = 0;
  for (int32_t e = 0; e < a->E; e++)
    if (a->cp[(size_t)e * a->N + n])
      t += (double)a->cp[(size_t)e * a->N + n] * rsize(a, e);
  return t / (double)a->Gn;
}

/* The cost of a node whose busiest device carries v: its squared share above the target. */
static double node_cost(double v, double target) {
  double x = v > target ? (v - target) / target : 0;
  return x * x;
}

/* A uniform draw in (0, 1). */
static double draw(uint64_t *st) {
  return ((double)(eplb__splitmix64(st) >> 11) + 0.5) / 9007199254740992.0;
}

/* A uniform draw in [0, n). */
static int32_t draw_int(uint64_t *st, int32_t n) {
  return (int32_t)(eplb__splitmix64(st) % (uint64_t)n);
}

/* Lists in out the experts with a copy on node n that may leave it (not the first replica),
 * with two or more replicas when `multi`. @return how many. */
static int32_t free_copies(const anneal *a, int32_t n, int multi, int32_t *out) {
  int32_t m = 0;
  for (int32_t e = 0; e < a->E; e++)
    if (a->cp[(size_t)e * a->N + n] - (a->home[e] == n) >= 1 && (!multi || a->cnt[e] >= 2))
      out[m++] = e;
  return m;
}

/* One annealing move at temperature temp; pm[N] holds each node's packed busiest device and is
 * updated when the move is taken, nv[N] is scratch. */
static void anneal_move(anneal *a, uint64_t *st, double temp, double target, double *pm,
                        double *nv) {
  int32_t N = a->N, E = a->E, Gn = a->Gn;
  /* Drawn first: the move is taken when its cost change is at most thr, so a lower bound above
   * thr rules it out before any packing. */
  int count = draw(st) < ANNEAL_COUNT_SHARE;
  double thr = -temp * log(draw(st));
  memcpy(nv, pm, (size_t)N * sizeof *nv);
  if (!count) {
    int32_t A = draw_int(st, N), B;
    if (draw(st) < ANNEAL_TOP_SHARE)
      for (int32_t n = 0; n < N; n++)
        if (pm[n] > pm[A])
          A = n;
    do
      B = draw_int(st, N);
    while (B == A);
    int32_t na = free_copies(a, A, 0, a->la), nb = free_copies(a, B, 0, a->lb);
    if (!na || !nb)
      return;
    int32_t x = a->la[draw_int(st, na)], y = a->lb[draw_int(st, nb)];
    if (x == y || a->cp[(size_t)x * N + B] >= Gn || a->cp[(size_t)y * N + A] >= Gn)
      return;
    a->cp[(size_t)x * N + A]--;
    a->cp[(size_t)x * N + B]++;
    a->cp[(size_t)y * N + B]--;
    a->cp[(size_t)y * N + A]++;
    double base = node_cost(pm[A], target) + node_cost(pm[B], target);
    double vA = node_mean(a, A), vB = node_mean(a, B);
    double dc = node_cost(vA, target) + node_cost(vB, target) - base;
    if (dc <= thr) {
      vA = nv[A] = pack_node(a, A, NULL);
      dc = node_cost(vA, target) + node_cost(vB, target) - base;
    }
    if (dc <= thr) {
      vB = nv[B] = pack_node(a, B, NULL);
      dc = node_cost(vA, target) + node_cost(vB, target) - base;
    }
    if (dc <= thr) {
      memcpy(pm, nv, (size_t)N * sizeof *pm);
      return;
    }
    a->cp[(size_t)x * N + A]++;
    a->cp[(size_t)x * N + B]--;
    a->cp[(size_t)y * N + B]++;
    a->cp[(size_t)y * N + A]--;
    return;
  }
  /* On node A a free copy of y (two or more replicas) gives way to a new replica of x. */
  int32_t A = draw_int(st, N), x = draw_int(st, E);
  int32_t nb = free_copies(a, A, 1, a->lb);
  if (!nb)
    return;
  int32_t y = a->lb[draw_int(st, nb)];
  if (x == y || a->cp[(size_t)x * N + A] >= Gn)
    return;
  a->cnt[x]++;
  a->cnt[y]--;
  a->cp[(size_t)x * N + A]++;
  a->cp[(size_t)y * N + A]--;
  double dc = 0;
  int32_t nch = 0;
  for (int32_t n = 0; n < N; n++)
    if (n == A || a->cp[(size_t)x * N + n] || a->cp[(size_t)y * N + n]) {
      a->la[nch++] = n;
      nv[n] = node_mean(a, n);
      dc += node_cost(nv[n], target) - node_cost(pm[n], target);
    }
  for (int32_t q = 0; q < nch && dc <= thr; q++) {
    int32_t n = a->la[q];
    double v = pack_node(a, n, NULL);
    dc += node_cost(v, target) - node_cost(nv[n], target);
    nv[n] = v;
  }
  if (dc <= thr) {
    memcpy(pm, nv, (size_t)N * sizeof *pm);
    return;
  }
  a->cnt[x]--;
  a->cnt[y]++;
  a->cp[(size_t)x * N + A]--;
  a->cp[(size_t)y * N + A]++;
}

/* The busiest device's load of a whole row under its own counts. */
static double row_busiest(const double *w, const int32_t *row, int32_t R, int32_t S,
                          const int32_t *cnt) {
  double mx = 0;
  for (int32_t d = 0; d < R / S; d++) {
    double l = 0;
    for (int32_t k = d * S; k < (d + 1) * S; k++)
      l += w[row[k]] / (double)cnt[row[k]];
    mx = l > mx ? l : mx;
  }
  return mx;
}

int eplb__soft_anneal(const double *w, int32_t E, const int32_t *home, int32_t N, int32_t Gn,
                      int32_t S, double goal, double deadline, int32_t *row, double *max_load) {
  eplb__scratch sc = {0};
  int32_t P = Gn * S, R = N * P;
  anneal a = {.w = w, .home = home, .E = E, .N = N, .Gn = Gn, .S = S};
  a.cnt = eplb__take(&sc, (size_t)E, sizeof *a.cnt);
  a.cp = eplb__take(&sc, (size_t)E * (size_t)N, sizeof *a.cp);
  a.items = eplb__take(&sc, (size_t)P, sizeof *a.items);
  a.sl = eplb__take(&sc, (size_t)P, sizeof *a.sl);
  a.fill = eplb__take(&sc, (size_t)Gn, sizeof *a.fill);
  a.dl = eplb__take(&sc, (size_t)Gn, sizeof *a.dl);
  a.la = eplb__take(&sc, (size_t)(E > N ? E : N), sizeof *a.la);
  a.lb = eplb__take(&sc, (size_t)E, sizeof *a.lb);
  int32_t *bcnt = eplb__take(&sc, (size_t)E, sizeof *bcnt);
  int32_t *bcp = eplb__take(&sc, (size_t)E * (size_t)N, sizeof *bcp);
  int32_t *out = eplb__take(&sc, (size_t)R, sizeof *out);
  double *pm = eplb__take(&sc, (size_t)N, sizeof *pm);
  double *nv = eplb__take(&sc, (size_t)N, sizeof *nv);
  int rc = 0;
  if (sc.failed) {
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
    goto done;
  }
  for (int32_t i = 0; i < R; i++) {
    a.cnt[row[i]]++;
    a.cp[(size_t)row[i] * N + i / P]++;
  }
  double start = row_busiest(w, row, R, S, a.cnt), target = goal * (1 - ANNEAL_BELOW);
  double best = 0;
  for (int32_t n = 0; n < N; n++) {
    pm[n] = pack_node(&a, n, NULL);
    best = pm[n] > best ? pm[n] : best;
  }
  memcpy(bcnt, a.cnt, (size_t)E * sizeof *bcnt);
  memcpy(bcp, a.cp, (size_t)E * (size_t)N * sizeof *bcp);
  uint64_t st = ANNEAL_SEED;
  int64_t last = 0;
  for (int32_t it = 0; it < ANNEAL_ITERS && a.packs < ANNEAL_PACKS &&
                      a.packs - last < ANNEAL_STALL && best > goal;
       it++) {
    if (deadline > 0 && it % ANNEAL_CLOCK_EVERY == 0 && eplb__now() > deadline)
      break;
    double temp = ANNEAL_TEMP * (1 - (double)it / ANNEAL_ITERS);
    anneal_move(&a, &st, temp, target, pm, nv);
    double mx = 0;
    for (int32_t n = 0; n < N; n++)
      mx = pm[n] > mx ? pm[n] : mx;
    if (mx < best) {
      best = mx;
      last = a.packs;
      memcpy(bcnt, a.cnt, (size_t)E * sizeof *bcnt);
      memcpy(bcp, a.cp, (size_t)E * (size_t)N * sizeof *bcp);
    }
  }
  *max_load = start;
  if (best < start) {
    memcpy(a.cnt, bcnt, (size_t)E * sizeof *bcnt);
    memcpy(a.cp, bcp, (size_t)E * (size_t)N * sizeof *bcp);
    for (int32_t n = 0; n < N; n++)
      pack_node(&a, n, out + (size_t)n * P);
    double m = row_busiest(w, out, R, S, a.cnt);
    if (m < start) {
      memcpy(row, out, (size_t)R * sizeof *row);
      *max_load = m;
    }
  }
done:
  eplb__scratch_free(&sc);
  return rc;
}
