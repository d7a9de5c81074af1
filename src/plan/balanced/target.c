/* target.c - target-driven construction: counts and placement chosen together. For a target T
 * every device has capacity T and S slots; experts go largest first, each split into the fewest
 * equal replicas d that fit on the d devices with the most room left, while enough free slots
 * stay for the experts still to come; slots left over take extra replicas of the expert whose
 * new replica best fits the roomiest device. A binary search on T keeps the lightest plan built.
 * Under hierarchy soft's first-replica rule one replica of each expert goes to its home node,
 * and every node keeps a free slot and room for the estimated first replica of each of its
 * experts still to come (an expert that fits nowhere goes whole to its home node's roomiest
 * device, and the target counts as missed); with `absorb` a device is also taken only while its
 * node can still take the first replicas it owes. Counts and placement come out together, which
 * the decomposition of soft_split.c (counts first, nodes next, devices last) cannot do.
 * Deterministic (ties to the lower index). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Binary-search steps on the target. */
#define TARGET_STEPS 14
/* Relative slack of the check that a node can still take the first replicas it owes (rounding). */
#define ABSORB_SLACK 1e-9

/* ---- state ---- */

typedef struct tstate {
  const double *w;
  const int32_t *home;
  int32_t n, N, Gn, S, G;
  int32_t *order;   /* [n] experts by load, largest first */
  int32_t *dev;     /* [G] devices by room, most first (none: only those with a free slot) */
  int32_t ndev;     /* entries of dev */
  int32_t *tmp;     /* [G] none: merge scratch */
  double *room;     /* [G] target minus load */
  int32_t *fill;    /* [G] used slots */
  int32_t *nfree;   /* [N] free slots per node */
  int32_t *quota;   /* [N] scratch: free replicas the node may still take for one expert */
  double *spare;    /* [N] the node's room minus the estimated load of the first replicas it
                       still owes */
  double *budget;   /* [N] scratch: spare left while picking devices for one expert */
  int over;         /* the plan being built went over the target */
  int32_t *pick;    /* [G] scratch: the devices chosen for one expert */
  int32_t *cnt;     /* [n] replica counts */
  int32_t *slot;    /* [G*S] expert per slot */
  int32_t *nstart;  /* [N+1] where each node's experts begin in nlist */
  int32_t *nlist;   /* [n] experts by home node, each node's in the order of placement */
  int32_t *ndone;   /* [N] how many of the node's experts are placed (a prefix of its list) */
  double *ncum;     /* [n+N] per node, sums of the estimated first replicas of its first k */
  int absorb;       /* check that every node can still take the first replicas it owes */
} tstate;

/* Whether device a has more room than b (then lower index). */
static int roomier(const tstate *t, int32_t a, int32_t b) {
  return t->room[a] != t->room[b] ? t->room[a] > t->room[b] : a < b;
}

/* Sorts t->dev[0..ndev) by room, most first (insertion sort: the order changes little between
 * calls). */
static void sort_devices(tstate *t) {
  for (int32_t a = 1; a < t->ndev; a++) {
    int32_t x = t->dev[a], b = a;
    while (b > 0 && roomier(t, x, t->dev[b - 1])) {
      t->dev[b] = t->dev[b - 1];
      b--;
    }
    t->dev[b] = x;
  }
}

/* Places a replica of expert e of size sz on device d. */
static void put(tstate *t, int32_t d, int32_t e, double sz) {
  t->slot[d * t->S + t->fill[d]++] = e;
  t->room[d] -= sz;
  t->nfree[d / t->Gn]--;
}

/* Whether device d already holds expert e. */
static int holds(const tstate *t, int32_t d, int32_t e) {
  for (int32_t k = d * t->S; k < d * t->S + t->fill[d]; k++)
    if (t->slot[k] == e)
      return 1;
  return 0;
}

/* The estimated load of the i-th to (j-1)-th first replicas node nd still owes, in the order of
 * placement (j past the end: to the end). */
static double owed(const tstate *t, int32_t nd, int32_t i, int32_t j) {
  int32_t len = t->nstart[nd + 1] - t->nstart[nd];
  const double *c = t->ncum + t->nstart[nd] + nd;
  i += t->ndone[nd];
  j += t->ndone[nd];
  return c[j < len ? j : len] - c[i < len ? i : len];
}

/* Whether node nd's devices can still take the first replicas it owes (at their estimated
 * sizes): a device takes at most its room and at most the next owed replicas, in the order of
 * placement (largest loads first), that its free slots hold, and in all that must cover what the
 * node owes. With the owed replicas in decreasing size this is a necessary condition of a packing
 * within the target; split experts can break that order, so it is a guide, not a proof. */
static int can_absorb(const tstate *t, int32_t nd) {
  double cap = 0;
  for (int32_t d = nd * t->Gn; d < (nd + 1) * t->Gn; d++) {
    double top = owed(t, nd, 0, t->S - t->fill[d]);
    double r = t->room[d] > 0 ? t->room[d] : 0;
    cap += r < top ? r : top;
  }
  return cap >= owed(t, nd, 0, t->n) * (1 - ABSORB_SLACK);
}

/* Picks d devices for a replica of size sz of expert e (home h): most room first, each with
 * room for sz, a free slot and a node that keeps, after it, a free slot and room (t->spare) for
 * the first replicas it still owes; when none of them is on h, the last gives way to h's roomiest
 * device that qualifies. Writes them to t->pick. @return 1 when d were found. */
static int pick_devices(tstate *t, int32_t e, int32_t d, double sz, int force) {
  int32_t h = t->home[e], taken = 0, hdev = -1, has_home = 0;
  for (int32_t n = 0; n < t->N; n++) {
    t->quota[n] = t->nfree[n] - (t->nstart[n + 1] - t->nstart[n] - t->ndone[n]);
    t->budget[n] = t->spare[n];
  }
  /* One pass, most room first: the devices taken, and h's first device that qualifies. */
  for (int32_t i = 0; i < t->G && (taken < d || hdev < 0); i++) {
    int32_t x = t->dev[i], nd = x / t->Gn;
    if (t->room[x] < sz && !force)
      break;
    if (t->fill[x] >= t->S)
      continue;
    if (hdev < 0 && nd == h)
      hdev = x;
    if (taken == d || t->quota[nd] <= 0 || (t->budget[nd] < sz && !force))
      continue;
    /* Tried on the device: the node must still be able to take what it owes. */
    t->room[x] -= sz;
    t->fill[x]++;
    if (!force && t->absorb && !can_absorb(t, nd)) {
      t->room[x] += sz;
      t->fill[x]--;
      continue;
    }
    t->quota[nd]--;
    t->budget[nd] -= sz;
    t->pick[taken++] = x;
    has_home |= nd == h;
  }
  int ok = taken == d && hdev >= 0;
  if (ok && !has_home) {
    /* The last pick gives way to h's device, which must pass the same check. */
    int32_t x = t->pick[d - 1];
    t->room[x] += sz;
    t->fill[x]--;
    t->room[hdev] -= sz;
    t->fill[hdev]++;
    ok = force || !t->absorb || can_absorb(t, h);
    t->pick[d - 1] = hdev;
  }
  /* Undo the trials: put() places the picks. */
  for (int32_t j = 0; j < taken; j++) {
    t->room[t->pick[j]] += sz;
    t->fill[t->pick[j]]--;
  }
  return ok;
}

/* Chooses the fewest devices for expert e (its first replica on node home[e], already taken off
 * the node's pending first replicas and their load) that each have room for w/d (pick_devices),
 * at most limit; failing that, over the target, one replica on the home node (t->over set).
 * @return d, or 0 when even that finds no device. */
static int32_t choose(tstate *t, int32_t e, int32_t limit) {
  /* No device has more room than the first: fewer replicas than w over that room cannot fit. */
  double most = t->room[t->dev[0]];
  int32_t d0 = 1;
  if (most > 0 && t->w[e] / most > 1)
    d0 = t->w[e] / most < (double)limit ? (int32_t)ceil(t->w[e] / most) : limit;
  /* The d replicas take w from the nodes' spare room in all: too little, and no d fits. */
  double spare = 0;
  for (int32_t n = 0; n < t->N; n++)
    spare += t->spare[n] > 0 ? t->spare[n] : 0;
  for (int32_t d = d0; d <= limit && spare >= t->w[e]; d++)
    if (pick_devices(t, e, d, t->w[e] / d, 0))
      return d;
  /* Over the target: one replica on the home node's roomiest device with a free slot. */
  t->over = 1;
  return pick_devices(t, e, 1, t->w[e], 1);
}

/* The room of every node minus the estimated load of the first replicas it still owes, into
 * t->spare. */
static void node_spare(tstate *t) {
  for (int32_t n = 0; n < t->N; n++) {
    t->spare[n] = -owed(t, n, 0, t->n);
    for (int32_t d = n * t->Gn; d < (n + 1) * t->Gn; d++)
      t->spare[n] += t->room[d];
  }
}

/* The estimated size of an expert's first replica under target T: its load split into the
 * fewest equal replicas of at most T. */
static double first_size(double w, double T) {
  double k = ceil(w / T);
  return k > 1 ? w / k : w;
}

/* Fills the free_slots left once every expert has its replicas (any node may take them),
 * roomiest device with a free slot first: one more replica of the expert whose new replica is
 * the largest that still fits the device's room (else the smallest new replica), among the
 * experts it lacks. @return 1, or 0 when no device can take another replica. */
static int leftovers(tstate *t, int64_t free_slots) {
  int32_t G = t->G, S = t->S;
  while (free_slots > 0) {
    int32_t d0 = -1;
    for (int32_t i = 0; i < t->ndev && d0 < 0; i++)
      if (t->fill[t->dev[i]] < S)
        d0 = t->dev[i];
    int32_t best = -1, fits = 0;
    for (int32_t i = 0; i < t->n; i++) {
      int32_t e = t->order[i];
      if (t->cnt[e] >= G || holds(t, d0, e))
        continue;
      double v = t->w[e] / (t->cnt[e] + 1);
      int f = v <= t->room[d0];
      double bv = best >= 0 ? t->w[best] / (t->cnt[best] + 1) : 0;
      if (best < 0 || (f && !fits) || (f && fits && v > bv) || (!f && !fits && v < bv)) {
        best = e;
        fits = f;
      }
    }
    if (best < 0)
      return 0;
    /* The expert's replicas shrink from w/c to w/(c+1) wherever they are. */
    double shrink = t->w[best] / t->cnt[best] - t->w[best] / (t->cnt[best] + 1);
    for (int32_t d = 0; d < G; d++)
      if (holds(t, d, best))
        t->room[d] += shrink;
    t->cnt[best]++;
    put(t, d0, best, t->w[best] / t->cnt[best]);
    free_slots--;
    sort_devices(t);
  }
  return 1;
}

/* Empties every device for target T. */
static void reset(tstate *t, double T) {
  for (int32_t d = 0; d < t->G; d++) {
    t->room[d] = T;
    t->fill[d] = 0;
    t->dev[d] = d;
  }
  t->ndev = t->G;
  for (int32_t n = 0; n < t->N; n++)
    t->nfree[n] = t->Gn * t->S;
}

/* Builds a plan for target T under the first-replica rule: every node keeps a free slot and room
 * for the estimated first replicas of its experts still to come; an expert that fits nowhere goes
 * whole to its home node's roomiest device (t->over). @return 1 when every expert was placed,
 * else 0. */
static int build_soft(tstate *t, double T) {
  int32_t G = t->G, S = t->S;
  reset(t, T);
  for (int32_t nd = 0; nd < t->N; nd++) {
    double *c = t->ncum + t->nstart[nd] + nd;
    c[0] = 0;
    for (int32_t k = t->nstart[nd]; k < t->nstart[nd + 1]; k++, c++)
      c[1] = c[0] + first_size(t->w[t->nlist[k]], T);
    t->ndone[nd] = 0;
  }
  int64_t free_slots = (int64_t)G * S;
  t->over = 0;
  for (int32_t i = 0; i < t->n; i++) {
    int32_t e = t->order[i], left = t->n - i - 1;
    t->ndone[t->home[e]]++;
    node_spare(t);
    int64_t spare = free_slots - left;
    int32_t d = choose(t, e, spare < G ? (int32_t)spare : G);
    if (!d)
      return 0;
    double sz = t->w[e] / d;
    for (int32_t j = 0; j < d; j++)
      put(t, t->pick[j], e, sz);
    t->cnt[e] = d;
    free_slots -= d;
    sort_devices(t);
  }
  return leftovers(t, free_slots);
}

/* After the first k entries of t->dev lost room (and full devices were dropped from them),
 * merges them back into order with the rest. */
static void remerge(tstate *t, int32_t k) {
  int32_t m = 0;
  for (int32_t i = 0; i < k; i++)
    if (t->fill[t->dev[i]] < t->S)
      t->tmp[m++] = t->dev[i];
  /* The kept prefix is in tmp[0..m) (still in order: all lost the same room), the rest in
   * dev[k..ndev). Each kept device goes before the first of the rest it is roomier than, found
   * by binary search; the runs of the rest between move as blocks, into dev from the front
   * (o never passes b because m <= k). */
  int32_t b = k, o = 0;
  for (int32_t a = 0; a < m; a++) {
    int32_t lo = b, hi = t->ndev;
    while (lo < hi) {
      int32_t mid = lo + (hi - lo) / 2;
      if (roomier(t, t->tmp[a], t->dev[mid]))
        hi = mid;
      else
        lo = mid + 1;
    }
    memmove(t->dev + o, t->dev + b, (size_t)(lo - b) * sizeof *t->dev);
    o += lo - b;
    b = lo;
    t->dev[o++] = t->tmp[a];
  }
  memmove(t->dev + o, t->dev + b, (size_t)(t->ndev - b) * sizeof *t->dev);
  t->ndev = o + (t->ndev - b);
}

/* Builds a plan for target T without a locality rule: each expert on the d roomiest devices with
 * a free slot, kept in order by merging (the d devices lost the same room). @return 1 when every
 * expert found room within T, else 0. */
static int build_none(tstate *t, double T) {
  int32_t G = t->G, S = t->S;
  reset(t, T);
  int64_t free_slots = (int64_t)G * S;
  for (int32_t i = 0; i < t->n; i++) {
    int32_t e = t->order[i], left = t->n - i - 1, d = 1;
    while (d <= t->ndev && t->room[t->dev[d - 1]] * d < t->w[e])
      d++;
    if (d > t->ndev || free_slots - d < left)
      return 0;
    double sz = t->w[e] / d;
    for (int32_t j = 0; j < d; j++)
      put(t, t->dev[j], e, sz);
    t->cnt[e] = d;
    free_slots -= d;
    remerge(t, d);
  }
  return leftovers(t, free_slots);
}

/* The largest device load of the plan in t (room is target minus load). */
static double plan_max(const tstate *t, double T) {
  double m = 0;
  for (int32_t d = 0; d < t->G; d++)
    if (T - t->room[d] > m)
      m = T - t->room[d];
  return m;
}

/* ---- search ---- */

/* Runs the binary search on T in [lo, hi] over t (home NULL: no rule). */
static int solve(tstate *t, double lo, double hi, int32_t *slot_expert, double *max_load) {
  eplb__scratch sc = {0};
  int32_t n = t->n, N = t->N, G = t->G;
  *max_load = 0;
  t->order = eplb__take(&sc, (size_t)n, sizeof *t->order);
  t->dev = eplb__take(&sc, (size_t)G, sizeof *t->dev);
  t->tmp = eplb__take(&sc, (size_t)G, sizeof *t->tmp);
  t->room = eplb__take(&sc, (size_t)G, sizeof *t->room);
  t->fill = eplb__take(&sc, (size_t)G, sizeof *t->fill);
  t->nfree = eplb__take(&sc, (size_t)N, sizeof *t->nfree);
  t->quota = eplb__take(&sc, (size_t)N, sizeof *t->quota);
  t->spare = eplb__take(&sc, (size_t)N, sizeof *t->spare);
  t->budget = eplb__take(&sc, (size_t)N, sizeof *t->budget);
  t->pick = eplb__take(&sc, (size_t)G, sizeof *t->pick);
  t->cnt = eplb__take(&sc, (size_t)n, sizeof *t->cnt);
  t->slot = eplb__take(&sc, (size_t)G * (size_t)t->S, sizeof *t->slot);
  t->nstart = eplb__take(&sc, (size_t)N + 1, sizeof *t->nstart);
  t->nlist = eplb__take(&sc, (size_t)n, sizeof *t->nlist);
  t->ndone = eplb__take(&sc, (size_t)N, sizeof *t->ndone);
  t->ncum = eplb__take(&sc, (size_t)n + (size_t)N, sizeof *t->ncum);
  int rc = sc.failed ? eplb__err(EPLB_ENOMEM, "plan balanced: out of memory")
                     : eplb__order_heaviest(t->w, n, t->order);
  if (!rc && t->home) {
    /* Each node's experts in the order of placement, for what the node still owes. */
    for (int32_t e = 0; e < n; e++)
      t->nstart[t->home[e] + 1]++;
    for (int32_t nd = 0; nd < N; nd++)
      t->nstart[nd + 1] += t->nstart[nd];
    for (int32_t i = 0; i < n; i++) {
      int32_t e = t->order[i];
      t->nlist[t->nstart[t->home[e]] + t->ndone[t->home[e]]++] = e;
    }
  }
  double best = 0;
  for (int step = 0; !rc && step < TARGET_STEPS && hi > lo; step++) {
    double T = (lo + hi) / 2;
    if (!(t->home ? build_soft(t, T) : build_none(t, T))) {
      lo = T;
      continue;
    }
    double m = plan_max(t, T);
    if (best == 0 || m < best) {
      best = m;
      memcpy(slot_expert, t->slot, (size_t)G * (size_t)t->S * sizeof *slot_expert);
    }
    if (t->over)
      lo = T;
    else
      hi = T < m ? T : m;
  }
  *max_load = best;
  eplb__scratch_free(&sc);
  return rc;
}

int eplb__target_solve(const double *w, int32_t n, int32_t G, int32_t S, double lo, double hi,
                       int32_t *slot_expert, double *max_load) {
  tstate t = {.w = w, .n = n, .N = 1, .Gn = G, .S = S, .G = G};
  return solve(&t, lo, hi, slot_expert, max_load);
}

int eplb__soft_target_solve(const double *w, int32_t n, const int32_t *home, int32_t N,
                            int32_t Gn, int32_t S, double lo, double hi, int absorb,
                            int32_t *slot_expert, double *max_load) {
  tstate t = {.w = w, .home = home, .n = n, .N = N, .Gn = Gn, .S = S, .G = N * Gn,
              .absorb = absorb};
  return solve(&t, lo, hi, slot_expert, max_load);
}
