/* pool.c - stages 3 and 4 of the balanced policy, the engine: one pool of identical devices and
 * the experts that live on it. It chooses replica counts and places every replica, never two of
 * one expert on a device and only where the locality rule allows (allowed()), so that the
 * largest device load is as small as it can find:
 *   1. counts from the caller or the exact min-max greedy (the lower bound's own counts);
 *   2. largest-first packing: each replica to the lightest allowed device with room that lacks
 *      it (a repair exchange when none can);
 *   3. swap search: exchange a replica of the busiest device with a smaller one elsewhere while
 *      that lowers the pair's maximum;
 *   4. count rounds: one replica moves from the expert that loses least to the largest expert of
 *      the busiest device, then 2-3 again; kept when the maximum drops;
 *   5. still far above the bound without a home rule: the candidates of generators() (target.c,
 *      counts.c, tiny.c), each through 2-4; the lightest plan wins (include/eplb/
 *      quality.h numbers these steps 1-7).
 * With fixed counts (soft's per-node packing) only 2-3 run; given a complete plan to polish,
 * only 3-4. Everything is deterministic (ties go to the lower index); the only clock is an
 * optional deadline that cuts step 4 and the two-slot searches short. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan/balanced/balanced.h"

/* Swap-search steps per replica of the pool (a deterministic cap; the search usually stops far
 * earlier, when no swap helps). */
#define SWAP_STEPS_PER_SLOT 4
/* Relative margin under which two loads count as equal. */
#define REL_EPS 1e-12
/* A swap must lower the busiest load by at least this share of it (smaller gains are noise
 * next to STOP_TOL and only cost time). */
#define MIN_GAIN 1e-5
/* The search stops once the busiest device is within this share of the pool's lower bound. */
#define STOP_TOL 5e-4
/* The count descent runs only when the plan is this share above where the search stops. */
#define DESCENT_FROM 2e-3
/* Further descents (pl->descent_starts) run only while the plan is this share above where the
 * search stops, and until RESTART_PATIENCE of them in a row found nothing lighter: below that
 * gap, or after such a run, they rarely find anything (measured: same maxima, 2-5x the time). */
#define RESTART_FROM 4e-3
#define RESTART_PATIENCE 3
/* Count vectors of the exact two-slot search packed for real (see eplb__pair_counts_exact). */
#define PAIR_EXACT_KEEP 8
/* Two slots: neighbourhood searches (eplb__pair_lns) from the greedy's counts, each with its own
 * seed: LNS_STARTS of them on pools of up to LNS_FULL_SLOTS slots, proportionally fewer on
 * larger ones; each takes LNS_WORK / slots steps (a step's cost grows with the slots), so a
 * search costs about the same on every pool (measured: 0.03-0.05 s), but at most
 * LNS_STEPS_PER_EXPERT steps per expert (small pools need far fewer). */
#define LNS_STARTS 6
#define LNS_FULL_SLOTS 128
#define LNS_WORK 96000
#define LNS_STEPS_PER_EXPERT 12
/* ... and only on pools still LNS_FROM above where the search stops. Pools of more than
 * LNS_MAX_SLOTS slots instead get LNS_LARGE_STARTS searches of LNS_LARGE_STEPS steps, only when
 * LNS_LARGE_FROM above: there the short searches above gained little for their time (R512 G256
 * synthetic, 12 workloads, layers 1% above: mean max/LB 1.0136 -> 1.0133, worst unchanged, 1.4x
 * the time), while longer ones on the few layers far above take them most of the way (a layer
 * at 1.0211 of the bound to 1.0132 in 3 x 1000 steps, 0.3 s). 6 of them take the place of a
 * search for counts meeting a ladder of targets, which they match or beat for less time
 * (bench_quality: R512 none worst 1.0394 -> 1.0386, goal sweep E256/s2.0 1.0697 -> 1.0649; 24
 * workloads: the same mean and worst, 0.63x the time). */
#define LNS_FROM 1e-2
#define LNS_MAX_SLOTS 256
#define LNS_LARGE_FROM 2e-2
#define LNS_LARGE_STARTS 6
#define LNS_LARGE_STEPS 1000
#define LNS_SEED 2000
/* Count rounds: experts of the busiest device tried as gainers, cheapest donors tried for each. */
#define GAIN_TRIES 2
#define DONOR_TRIES 8
/* Share below the maximum within which a device counts as at the top (see near_top). */
#define PLATEAU 1e-3

/* ---- state ---- */

typedef struct item {
  double size;   /* load of one replica */
  int32_t e;     /* pool-local expert */
  int32_t anch;  /* 1 for the replica that must stay in the expert's home block */
} item;

typedef struct pstate {
  const eplb__pool *pl;
  int32_t n, G, S, P;
  int32_t *cnt;         /* [n] replica counts */
  double *size;         /* [n] w / cnt */
  int32_t *slot;        /* [P] expert in each slot, -1 when empty */
  unsigned char *anch;  /* [P] the slot holds its expert's anchored replica */
  int32_t *fill;        /* [G] used slots */
  double *load;         /* [G] */
  unsigned char *has;   /* [G*n] device holds the expert */
  int32_t *pending;     /* [blocks] anchored replicas still to place */
  int32_t *freeb;       /* [blocks] free slots */
  item *items;          /* [P] */
  int32_t *ord;         /* [G] devices by load, lightest first (swap search scratch) */
  int32_t *dpos;        /* [G] position of each device in ord */
  int32_t *avail;       /* [G] packing: devices with a free slot, lightest first */
  double *into;         /* [P] swap search: sizes of one device's replicas that may move */
  int32_t *lst;         /* [3*S] swap search: slot lists of the busiest device and a partner */
  int32_t *blk;         /* [G] block of each device (0 without a home rule) */
  eplb__scratch sc;     /* owns the arrays above */
} pstate;

/* Releases the state's arrays. */
static void state_free(pstate *s) {
  eplb__scratch_free(&s->sc);
}

/* Allocates the state's arrays for a pool. @return 0 or EPLB_ENOMEM. */
static int state_init(pstate *s, const eplb__pool *pl) {
  memset(s, 0, sizeof *s);
  s->pl = pl;
  s->n = pl->n;
  s->G = pl->ndev;
  s->S = pl->slots;
  s->P = pl->ndev * pl->slots;
  size_t nb = pl->home ? (size_t)(pl->ndev / pl->block_size) : 1;
  eplb__scratch *sc = &s->sc;
  s->cnt = eplb__take(sc, (size_t)s->n, sizeof *s->cnt);
  s->size = eplb__take(sc, (size_t)s->n, sizeof *s->size);
  s->slot = eplb__take(sc, (size_t)s->P, sizeof *s->slot);
  s->anch = eplb__take(sc, (size_t)s->P, 1);
  s->fill = eplb__take(sc, (size_t)s->G, sizeof *s->fill);
  s->load = eplb__take(sc, (size_t)s->G, sizeof *s->load);
  s->has = eplb__take(sc, (size_t)s->G * (size_t)s->n, 1);
  s->pending = eplb__take(sc, nb, sizeof *s->pending);
  s->freeb = eplb__take(sc, nb, sizeof *s->freeb);
  s->items = eplb__take(sc, (size_t)s->P, sizeof *s->items);
  s->ord = eplb__take(sc, (size_t)s->G, sizeof *s->ord);
  s->dpos = eplb__take(sc, (size_t)s->G, sizeof *s->dpos);
  s->avail = eplb__take(sc, (size_t)s->G, sizeof *s->avail);
  s->into = eplb__take(sc, (size_t)s->P, sizeof *s->into);
  s->lst = eplb__take(sc, (size_t)s->S * 3, sizeof *s->lst);
  s->blk = eplb__take(sc, (size_t)s->G, sizeof *s->blk);
  if (sc->failed) {
    state_free(s);
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  }
  for (int32_t d = 0; d < s->G; d++) {
    s->ord[d] = d;
    s->blk[d] = pl->home ? d / pl->block_size : 0;
  }
  return 0;
}

/* The block of device d (0 when the pool has no locality rule). */
static int32_t block_of(const pstate *s, int32_t d) {
  return s->blk[d];
}

/* ---- packing ---- */

/* Orders items by size, largest first; equal sizes by expert, the anchored replica first. */
static int item_cmp(const void *pa, const void *pb) {
  const item *a = pa, *b = pb;
  if (a->size != b->size)
    return a->size > b->size ? -1 : 1;
  if (a->e != b->e)
    return a->e < b->e ? -1 : 1;
  return b->anch - a->anch;
}

/* Puts a replica of expert e into device d. */
static void put(pstate *s, int32_t d, int32_t e, int anch) {
  int32_t k = d * s->S + s->fill[d]++;
  s->slot[k] = e;
  s->anch[k] = (unsigned char)anch;
  s->load[d] += s->size[e];
  s->has[(size_t)d * s->n + e] = 1;
  int32_t b = block_of(s, d);
  s->freeb[b]--;
  if (anch)
    s->pending[b]--;
}

/* Whether a non-anchored replica may take a free slot of device d without eating a slot that
 * an anchored replica of d's block still needs. */
static int room_for_free(const pstate *s, int32_t d) {
  int32_t b = block_of(s, d);
  return s->freeb[b] > s->pending[b];
}

/* Whether device d may hold the (anchored or free) replica of expert e. */
static int allowed(const pstate *s, int32_t d, int32_t e, int anch) {
  if (!s->pl->home || !anch)
    return 1;
  return block_of(s, d) == s->pl->home[e];
}

/* Makes room for a replica of e that no device with room can take: moves another expert f from
 * a full device a (which lacks e) to a device b with room (which lacks f), then e goes to a.
 * @return 0, or EPLB_EPARAM when no such exchange exists. */
static int repair(pstate *s, int32_t e, int anch) {
  for (int32_t a = 0; a < s->G; a++) {
    if (s->fill[a] < s->S || s->has[(size_t)a * s->n + e] || !allowed(s, a, e, anch))
      continue;
    for (int32_t b = 0; b < s->G; b++) {
      if (b == a || s->fill[b] == s->S)
        continue;
      int32_t bb = block_of(s, b);
      int relief = anch && s->pl->home && s->pl->home[e] == bb;
      if (s->freeb[bb] - 1 < s->pending[bb] - relief)
        continue;
      for (int32_t k = a * s->S; k < (a + 1) * s->S; k++) {
        int32_t f = s->slot[k];
        if (s->has[(size_t)b * s->n + f] || !allowed(s, b, f, s->anch[k]))
          continue;
        /* Take f out of a, put it into b, put e into a's freed slot. */
        int fa = s->anch[k];
        s->load[a] -= s->size[f];
        s->has[(size_t)a * s->n + f] = 0;
        int32_t kb = b * s->S + s->fill[b]++;
        s->slot[kb] = f;
        s->anch[kb] = (unsigned char)fa;
        s->load[b] += s->size[f];
        s->has[(size_t)b * s->n + f] = 1;
        s->freeb[bb]--;
        s->slot[k] = e;
        s->anch[k] = (unsigned char)anch;
        s->load[a] += s->size[e];
        s->has[(size_t)a * s->n + e] = 1;
        if (anch)
          s->pending[block_of(s, a)]--;
        return 0;
      }
    }
  }
  return eplb__err(EPLB_EPARAM, "plan balanced: cannot place every replica without duplicates");
}

/* Whether device x comes before y in s->ord: lighter, then lower index. */
static int dev_before(const pstate *s, int32_t x, int32_t y) {
  return s->load[x] != s->load[y] ? s->load[x] < s->load[y] : x < y;
}

/* Places items[0..m) in their order, each to the lightest allowed device with room that does
 * not hold its expert yet (repairing when none can). @return 0 or EPLB_EPARAM. */
static int place_items(pstate *s, const item *items, int32_t m) {
  for (int32_t i = 0; i < m; i++) {
    int32_t e = items[i].e, anch = items[i].anch, best = -1;
    for (int32_t d = 0; d < s->G; d++) {
      if (s->fill[d] == s->S || s->has[(size_t)d * s->n + e] || !allowed(s, d, e, anch))
        continue;
      if (!anch && !room_for_free(s, d))
        continue;
      if (best < 0 || s->load[d] < s->load[best])
        best = d;
    }
    if (best >= 0) {
      put(s, best, e, anch);
      continue;
    }
    int rc = repair(s, e, anch);
    if (rc)
      return rc;
  }
  return 0;
}

/* Lists the devices with a free slot in s->avail, lightest first. @return how many. */
static int32_t list_avail(pstate *s) {
  int32_t len = 0;
  for (int32_t d = 0; d < s->G; d++) {
    if (s->fill[d] == s->S)
      continue;
    int32_t i = len++;
    while (i > 0 && dev_before(s, d, s->avail[i - 1])) {
      s->avail[i] = s->avail[i - 1];
      i--;
    }
    s->avail[i] = d;
  }
  return len;
}

/* place_items for many items: the devices with room are kept sorted by load, so the first one
 * that may take an item is the one place_items would choose. @return 0 or EPLB_EPARAM. */
static int place_sorted(pstate *s, const item *items, int32_t m) {
  int32_t len = list_avail(s);
  for (int32_t it = 0; it < m; it++) {
    int32_t e = items[it].e, anch = items[it].anch, i = 0;
    for (; i < len; i++) {
      int32_t d = s->avail[i];
      if (!s->has[(size_t)d * s->n + e] && allowed(s, d, e, anch) &&
          (anch || room_for_free(s, d)))
        break;
    }
    if (i == len) {
      int rc = repair(s, e, anch);
      if (rc)
        return rc;
      len = list_avail(s);
      continue;
    }
    int32_t d = s->avail[i];
    put(s, d, e, anch);
    if (s->fill[d] == s->S) {
      memmove(s->avail + i, s->avail + i + 1, (size_t)(len - i - 1) * sizeof *s->avail);
      len--;
      continue;
    }
    while (i + 1 < len && dev_before(s, s->avail[i + 1], d)) {
      s->avail[i] = s->avail[i + 1];
      i++;
    }
    s->avail[i] = d;
  }
  return 0;
}

/* Packs the replicas given by s->cnt from scratch, largest first. @return 0 or EPLB_EPARAM. */
static int pack(pstate *s) {
  int32_t nb = s->pl->home ? s->G / s->pl->block_size : 1;
  memset(s->fill, 0, (size_t)s->G * sizeof *s->fill);
  memset(s->load, 0, (size_t)s->G * sizeof *s->load);
  memset(s->has, 0, (size_t)s->G * (size_t)s->n);
  memset(s->pending, 0, (size_t)nb * sizeof *s->pending);
  for (int32_t b = 0; b < nb; b++)
    s->freeb[b] = (s->G / nb) * s->S;
  int32_t m = 0;
  for (int32_t e = 0; e < s->n; e++) {
    s->size[e] = s->pl->w[e] / (double)s->cnt[e];
    for (int32_t r = 0; r < s->cnt[e]; r++) {
      s->items[m].size = s->size[e];
      s->items[m].e = e;
      s->items[m].anch = s->pl->home && r == 0;
      m++;
    }
    if (s->pl->home)
      s->pending[s->pl->home[e]]++;
  }
  qsort(s->items, (size_t)m, sizeof *s->items, item_cmp);
  return place_sorted(s, s->items, m);
}

/* ---- swap search ---- */

/* The busiest device (lowest index on ties). */
static int32_t busiest(const pstate *s) {
  int32_t a = 0;
  for (int32_t d = 1; d < s->G; d++)
    if (s->load[d] > s->load[a])
      a = d;
  return a;
}

/* Orders s->ord by load, lightest first (insertion sort from the last order), and fills
 * s->dpos. */
static void order_devices(pstate *s) {
  int32_t *ord = s->ord;
  for (int32_t i = 1; i < s->G; i++) {
    int32_t d = ord[i], j = i;
    while (j > 0 && dev_before(s, d, ord[j - 1])) {
      ord[j] = ord[j - 1];
      j--;
    }
    ord[j] = d;
  }
  for (int32_t i = 0; i < s->G; i++)
    s->dpos[ord[i]] = i;
}

/* Moves device d, whose load just changed, to its place in the otherwise sorted s->ord. */
static void reorder_device(pstate *s, int32_t d) {
  int32_t *ord = s->ord, i = s->dpos[d];
  while (i > 0 && dev_before(s, d, ord[i - 1])) {
    ord[i] = ord[i - 1];
    s->dpos[ord[i]] = i;
    i--;
  }
  while (i < s->G - 1 && dev_before(s, ord[i + 1], d)) {
    ord[i] = ord[i + 1];
    s->dpos[ord[i]] = i;
    i++;
  }
  ord[i] = d;
  s->dpos[d] = i;
}

/* The busiest device (lowest index on ties) from the sorted s->ord. */
static int32_t top_device(const pstate *s) {
  int32_t i = s->G - 1;
  while (i > 0 && s->load[s->ord[i - 1]] == s->load[s->ord[s->G - 1]])
    i--;
  return s->ord[i];
}

/* The larger of the two loads after trading a replica of size sa on a device of load la for
 * one of size sb on a device of load lb; infinity unless sb < sa. */
static double swap_value(double la, double lb, double sa, double sb) {
  double na = la - sa + sb, nb = lb + sa - sb;
  double m = na > nb ? na : nb;
  return sb < sa ? m : INFINITY;
}

/* Repeatedly exchanges a replica of the busiest device with a smaller replica of another device,
 * choosing the exchange that leaves the pair's larger load smallest, while that is below the
 * busiest load and the busiest load is above `stop`; ties go to the lower device, then the lower
 * slots. Devices are scanned lightest first: a pair can do no better than its mean, so once that
 * exceeds the best found the rest are skipped. Only the replicas that may move are visited: an
 * anchored replica never leaves its home block, so across blocks only free replicas trade. */
static void swap_search(pstate *s, double stop) {
  int64_t steps = (int64_t)SWAP_STEPS_PER_SLOT * s->P;
  const int32_t *ord = s->ord, *home = s->pl->home;
  int32_t S = s->S;
  int32_t *ka = s->lst, *kf = s->lst + S, *jb = s->lst + 2 * (size_t)S;
  double *sbv = s->into;
  order_devices(s);
  for (int64_t it = 0; it < steps; it++) {
    int32_t a = top_device(s), ba = block_of(s, a);
    double la = s->load[a], best = la - MIN_GAIN * la;
    if (la <= stop)
      return;
    const unsigned char *hasa = s->has + (size_t)a * s->n;
    /* a's slots: all of them (partners in a's block), and the free ones (other blocks). */
    int32_t na = 0, nf = 0;
    for (int32_t k = a * S; k < (a + 1) * S; k++) {
      ka[na++] = k;
      if (!home || !s->anch[k])
        kf[nf++] = k;
    }
    int32_t bk = -1, bj = -1, bb = -1;
    for (int32_t i = 0; i < s->G; i++) {
      int32_t b = ord[i], blk = block_of(s, b);
      double lb = s->load[b];
      if ((la + lb) / 2 > best)
        break;
      if (b == a)
        continue;
      int same = !home || blk == ba;
      const int32_t *kl = same ? ka : kf;
      int32_t nk = same ? na : nf;
      if (nk == 0)
        continue;
      /* b's replicas that may move to a, in slot order. */
      int32_t nb = 0;
      for (int32_t j = b * S; j < (b + 1) * S; j++) {
        if (!same && s->anch[j]) /* anchored in b's block, which is not a's */
          continue;
        int32_t e = s->slot[j];
        if (hasa[e] || (home && s->anch[j] && home[e] != ba))
          continue;
        jb[nb] = j;
        sbv[nb++] = s->size[e];
      }
      if (nb == 0)
        continue;
      const unsigned char *hasb = s->has + (size_t)b * s->n;
      for (int32_t q = 0; q < nk; q++) {
        int32_t k = kl[q], ea = s->slot[k];
        double sa = s->size[ea];
        if (la - sa > best || hasb[ea])
          continue;
        double mn = INFINITY;
        for (int32_t r = 0; r < nb; r++) {
          double v = swap_value(la, lb, sa, sbv[r]);
          mn = v < mn ? v : mn;
        }
        if (!(mn < best || (mn == best && bk >= 0 && (b < bb || (b == bb && k < bk)))))
          continue;
        int32_t r = 0;
        while (swap_value(la, lb, sa, sbv[r]) != mn)
          r++;
        best = mn;
        bk = k;
        bj = jb[r];
        bb = b;
      }
    }
    if (bk < 0)
      return;
    int32_t b = bj / S, ea = s->slot[bk], eb = s->slot[bj];
    unsigned char aa = s->anch[bk];
    s->slot[bk] = eb;
    s->anch[bk] = s->anch[bj];
    s->slot[bj] = ea;
    s->anch[bj] = aa;
    s->has[(size_t)a * s->n + ea] = 0;
    s->has[(size_t)a * s->n + eb] = 1;
    s->has[(size_t)b * s->n + eb] = 0;
    s->has[(size_t)b * s->n + ea] = 1;
    s->load[a] += s->size[eb] - s->size[ea];
    s->load[b] += s->size[ea] - s->size[eb];
    reorder_device(s, a);
    reorder_device(s, b);
  }
}

/* ---- count rounds ---- */

/* Copies the placement part of a state (the arrays that a count round changes). */
static void copy_state(pstate *dst, const pstate *src) {
  size_t n = (size_t)src->n, G = (size_t)src->G, P = (size_t)src->P;
  size_t nb = src->pl->home ? G / (size_t)src->pl->block_size : 1;
  memcpy(dst->cnt, src->cnt, n * sizeof *dst->cnt);
  memcpy(dst->size, src->size, n * sizeof *dst->size);
  memcpy(dst->slot, src->slot, P * sizeof *dst->slot);
  memcpy(dst->anch, src->anch, P);
  memcpy(dst->fill, src->fill, G * sizeof *dst->fill);
  memcpy(dst->load, src->load, G * sizeof *dst->load);
  memcpy(dst->has, src->has, G * n);
  memcpy(dst->pending, src->pending, nb * sizeof *dst->pending);
  memcpy(dst->freeb, src->freeb, nb * sizeof *dst->freeb);
}

/* Takes every replica of expert e off its device, keeping each device's used slots first. */
static void remove_expert(pstate *s, int32_t e) {
  for (int32_t d = 0; d < s->G; d++) {
    if (!s->has[(size_t)d * s->n + e])
      continue;
    for (int32_t k = d * s->S; k < d * s->S + s->fill[d]; k++) {
      if (s->slot[k] != e)
        continue;
      int32_t last = d * s->S + s->fill[d] - 1, b = block_of(s, d);
      if (s->anch[k])
        s->pending[b]++;
      s->slot[k] = s->slot[last];
      s->anch[k] = s->anch[last];
      s->slot[last] = -1;
      s->anch[last] = 0;
      s->fill[d]--;
      s->freeb[b]++;
      s->load[d] -= s->size[e];
      s->has[(size_t)d * s->n + e] = 0;
      break;
    }
  }
}

/* Moves one replica from expert `donor` to expert `gain`: both experts' replicas are taken off
 * and put back largest first into the freed slots. @return 0 or EPLB_EPARAM. */
static int shift_replica(pstate *s, int32_t gain, int32_t donor) {
  remove_expert(s, gain);
  remove_expert(s, donor);
  s->cnt[gain]++;
  s->cnt[donor]--;
  s->size[gain] = s->pl->w[gain] / (double)s->cnt[gain];
  s->size[donor] = s->pl->w[donor] / (double)s->cnt[donor];
  int32_t m = 0;
  int32_t ex[2] = {gain, donor};
  for (int i = 0; i < 2; i++)
    for (int32_t r = 0; r < s->cnt[ex[i]]; r++) {
      s->items[m].size = s->size[ex[i]];
      s->items[m].e = ex[i];
      s->items[m].anch = s->pl->home && r == 0;
      m++;
    }
  qsort(s->items, (size_t)m, sizeof *s->items, item_cmp);
  return place_items(s, s->items, m);
}

/* Orders donor candidates by the item they would be left with (smaller first), then by id. */
static int donor_cmp(const void *pa, const void *pb) {
  const item *a = pa, *b = pb;
  if (a->size != b->size)
    return a->size < b->size ? -1 : 1;
  return a->e - b->e;
}

/* Lists in s->items up to `max` experts with two or more replicas whose item after giving one
 * up, w/(cnt-1), stays below `limit`, cheapest first. @return how many. */
static int32_t list_donors(pstate *s, double limit, int32_t max) {
  int32_t m = 0;
  for (int32_t e = 0; e < s->n; e++) {
    if (s->cnt[e] < 2)
      continue;
    double v = s->pl->w[e] / (double)(s->cnt[e] - 1);
    if (v < limit) {
      s->items[m].size = v;
      s->items[m].e = e;
      s->items[m].anch = 0;
      m++;
    }
  }
  qsort(s->items, (size_t)m, sizeof *s->items, donor_cmp);
  return m < max ? m : max;
}

/* Devices whose load is within PLATEAU of m: a shift that leaves the maximum but lowers this
 * count is progress (it opens the way for the next one). */
static int32_t near_top(const pstate *s, double m) {
  int32_t k = 0;
  for (int32_t d = 0; d < s->G; d++)
    k += s->load[d] >= m * (1 - PLATEAU);
  return k;
}

/* Runs count rounds on a packed and searched state until the busiest device is within STOP_TOL
 * of the bound, no shift helps, the round cap or the deadline. @return 0 or an error. */
static int count_rounds(pstate *s, pstate *save, double stop) {
  if (s->pl->fixed_counts)
    return 0;
  int32_t tries = 0, donors[DONOR_TRIES];
  int rc = 0;
  while (tries < s->pl->max_rounds) {
    int32_t a = busiest(s);
    double M = s->load[a];
    if (M <= stop || (s->pl->deadline > 0 && eplb__now() > s->pl->deadline))
      break;
    int32_t near = near_top(s, M);
    int32_t nd = list_donors(s, M, DONOR_TRIES);
    for (int32_t i = 0; i < nd; i++)
      donors[i] = s->items[i].e;
    /* Gainers: the busiest device's experts that may get another replica, largest item first. */
    int32_t gains[GAIN_TRIES], ng = 0;
    for (; ng < GAIN_TRIES; ng++) {
      int32_t g = -1;
      for (int32_t k = a * s->S; k < a * s->S + s->fill[a]; k++) {
        int32_t e = s->slot[k], dup = 0;
        for (int32_t j = 0; j < ng; j++)
          dup |= gains[j] == e;
        if (dup || s->cnt[e] >= s->G)
          continue;
        if (g < 0 || s->size[e] > s->size[g] || (s->size[e] == s->size[g] && e < g))
          g = e;
      }
      if (g < 0)
        break;
      gains[ng] = g;
    }
    /* A failed try restores s from save, so save needs copying once per round. */
    int improved = 0, saved = 0;
    for (int32_t gi = 0; gi < ng && !improved && tries < s->pl->max_rounds; gi++)
      for (int32_t di = 0; di < nd && !improved && tries < s->pl->max_rounds; di++) {
        if (donors[di] == gains[gi])
          continue;
        if (!saved)
          copy_state(save, s);
        saved = 1;
        tries++;
        rc = shift_replica(s, gains[gi], donors[di]);
        if (!rc) {
          swap_search(s, stop);
          double m2 = s->load[busiest(s)];
          improved = m2 < M * (1 - REL_EPS) ||
                     (m2 <= M * (1 + REL_EPS) && near_top(s, M) < near);
        }
        if (!improved)
          copy_state(s, save);
        rc = 0;
      }
    if (!improved)
      break;
  }
  return rc;
}

/* Packs the counts in s->cnt, searches, runs count rounds; leaves the result in s. */
static int solve_counts(pstate *s, pstate *save, double stop) {
  int rc = pack(s);
  if (rc)
    return rc;
  swap_search(s, stop);
  return count_rounds(s, save, stop);
}

/* Loads a complete placement (pool-local expert per slot, no duplicates; with a home rule, every
 * expert with a replica in its home block) into the state, with the counts it implies. Under a
 * home rule the expert's first replica in its home block (slot order) is the anchored one.
 * @return 0, EPLB_ENOMEM, or EPLB_EPARAM when an expert lacks a replica in its home block. */
static int load_plan(pstate *s, const int32_t *slot_expert) {
  const int32_t *home = s->pl->home;
  int32_t nb = home ? s->G / s->pl->block_size : 1;
  memset(s->cnt, 0, (size_t)s->n * sizeof *s->cnt);
  memset(s->load, 0, (size_t)s->G * sizeof *s->load);
  memset(s->has, 0, (size_t)s->G * (size_t)s->n);
  memset(s->freeb, 0, (size_t)nb * sizeof *s->freeb);
  memset(s->pending, 0, (size_t)nb * sizeof *s->pending);
  for (int32_t k = 0; k < s->P; k++)
    s->cnt[slot_expert[k]]++;
  for (int32_t e = 0; e < s->n; e++)
    s->size[e] = s->pl->w[e] / (double)s->cnt[e];
  for (int32_t d = 0; d < s->G; d++) {
    s->fill[d] = s->S;
    for (int32_t k = d * s->S; k < (d + 1) * s->S; k++) {
      int32_t e = slot_expert[k];
      s->slot[k] = e;
      s->anch[k] = 0;
      s->load[d] += s->size[e];
      s->has[(size_t)d * s->n + e] = 1;
    }
  }
  if (!home)
    return 0;
  unsigned char *anchored = eplb__calloc((size_t)s->n, 1);
  if (!anchored)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  for (int32_t d = 0; d < s->G; d++)
    for (int32_t k = d * s->S; k < (d + 1) * s->S; k++) {
      int32_t e = s->slot[k];
      if (block_of(s, d) == home[e] && !anchored[e]) {
        s->anch[k] = 1;
        anchored[e] = 1;
      }
    }
  int rc = 0;
  for (int32_t e = 0; e < s->n && !rc; e++)
    if (!anchored[e])
      rc = eplb__err(EPLB_EPARAM, "plan balanced: expert %d has no replica in its home block", e);
  free(anchored);
  return rc;
}

/* ---- the improvement search ---- */

/* One pool's search: the engine's state and a copy to restore, the lightest plan so far. */
typedef struct search {
  pstate s, save;
  double stop;     /* the search ends once the busiest device is at most this */
  int32_t *out;    /* [P] the lightest plan so far (the caller's slot_expert) */
  double best;     /* its busiest device (infinity before the first) */
  int32_t *start;  /* [n] the counts the search started from */
  int32_t *cnt;    /* [n] counts a generator proposes */
} search;

/* Keeps the state's plan when it is lighter than the lightest so far. @return whether it was. */
static int keep_if_lighter(search *q) {
  double m = q->s.load[busiest(&q->s)];
  if (m >= q->best)
    return 0;
  memcpy(q->out, q->s.slot, (size_t)q->s.P * sizeof *q->out);
  q->best = m;
  return 1;
}

/* Packs the counts cnt, searches (swaps, count rounds) and keeps the plan when lighter; *kept
 * (when not NULL) says whether it was. @return 0 or an error. */
static int try_counts(search *q, const int32_t *cnt, int *kept) {
  memcpy(q->s.cnt, cnt, (size_t)q->s.n * sizeof *cnt);
  int rc = solve_counts(&q->s, &q->save, q->stop);
  int k = !rc && keep_if_lighter(q);
  if (kept)
    *kept = k;
  return rc;
}

/* Polishes a complete plan (swaps, count rounds) and keeps it when lighter. */
static int try_plan(search *q, const int32_t *plan) {
  int rc = load_plan(&q->s, plan);
  if (!rc) {
    swap_search(&q->s, q->stop);
    rc = count_rounds(&q->s, &q->save, q->stop);
  }
  if (!rc)
    keep_if_lighter(q);
  return rc;
}

/* Whether the lightest plan is more than `share` above where the search stops. */
static int far(const search *q, double share) {
  return q->best > q->stop * (1 + share);
}

/* Whether the pool's deadline has passed. */
static int late(const eplb__pool *pl) {
  return pl->deadline > 0 && eplb__now() > pl->deadline;
}

/* The generators of a pool without a home rule, each only while the lightest plan is still far
 * above the bound; each candidate goes through the search, the lightest plan wins. */
static int generators(search *q, const eplb__pool *pl, eplb__scratch *sc) {
  int32_t n = q->s.n, G = q->s.G, S = q->s.S, P = q->s.P;
  double lb = q->stop / (1 + STOP_TOL), m = 0;
  int32_t *plan = eplb__take(sc, (size_t)P, sizeof *plan);
  int32_t *vec = eplb__take(sc, (size_t)PAIR_EXACT_KEEP * (size_t)n, sizeof *vec);
  if (sc->failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  /* The target-driven construction (target.c): counts and places together. */
  int rc = 0;
  if (far(q, DESCENT_FROM)) {
    rc = eplb__target_solve(pl->w, n, G, S, lb, q->best, plan, &m);
    if (!rc && m > 0)
      rc = try_plan(q, plan);
  }
  /* Two slots on a small pool: the count vectors of the best pairings over all of them. */
  if (!rc && far(q, DESCENT_FROM) && S == 2) {
    int32_t kept = 0;
    rc = eplb__pair_counts_exact(pl->w, n, G, PAIR_EXACT_KEEP, vec, &kept);
    for (int32_t k = 0; !rc && k < kept && q->best > q->stop; k++)
      rc = try_counts(q, vec + (size_t)k * n, NULL);
  }
  if (pl->descent_iters <= 0)
    return rc;
  /* Few slots per device: the descent's counts (counts.c) from up to descent_starts seeds, the
   * later ones only while far above and until RESTART_PATIENCE in a row found nothing. */
  int kept = 0;
  if (!rc && far(q, DESCENT_FROM) && S <= EPLB__DESCENT_MAX_SLOTS)
    for (int32_t start = 0, idle = -1;
         !rc && (start == 0 || (start < pl->descent_starts && idle < RESTART_PATIENCE &&
                                far(q, RESTART_FROM)));
         start++, idle = kept ? 0 : idle + 1) {
      memcpy(q->cnt, q->start, (size_t)n * sizeof *q->cnt);
      rc = eplb__count_descent(pl->w, n, G, S, q->cnt, pl->descent_iters, q->stop,
                               (uint32_t)start, pl->descent_temp);
      if (!rc)
        rc = try_counts(q, q->cnt, &kept);
    }
  if (S != 2)
    return rc;
  /* Two slots: neighbourhood searches from the starting counts (counts.c), which recount five
   * experts at a time; the budget of steps is spread so that a search costs about the same on
   * every pool. */
  int large = P > LNS_MAX_SLOTS;
  int32_t starts = large ? LNS_LARGE_STARTS : LNS_STARTS * LNS_FULL_SLOTS / P;
  int32_t steps = large ? LNS_LARGE_STEPS : LNS_WORK / P;
  starts = starts > LNS_STARTS ? LNS_STARTS : starts;
  steps = steps < LNS_STEPS_PER_EXPERT * n ? steps : LNS_STEPS_PER_EXPERT * n;
  for (int32_t k = 0; !rc && k < starts && far(q, large ? LNS_LARGE_FROM : LNS_FROM) && !late(pl);
       k++) {
    memcpy(q->cnt, q->start, (size_t)n * sizeof *q->cnt);
    rc = eplb__pair_lns(pl->w, n, G, q->cnt, steps, q->stop, (uint32_t)(LNS_SEED + k),
                        pl->deadline);
    if (!rc)
      rc = try_counts(q, q->cnt, NULL);
  }
  return rc;
}

int eplb__pool_solve(const eplb__pool *pl, int32_t *slot_expert, double *max_load) {
  if (pl->n < pl->slots || pl->n > pl->ndev * pl->slots)
    return eplb__err(EPLB_EPARAM, "plan balanced: %d experts cannot fill %d devices of %d slots "
                                  "without duplicates",
                     pl->n, pl->ndev, pl->slots);
  eplb__scratch sc = {0};
  search q = {.out = slot_expert, .best = INFINITY};
  int rc = state_init(&q.s, pl);
  if (!rc && (rc = state_init(&q.save, pl)) != 0)
    state_free(&q.s);
  if (rc)
    return rc;
  q.start = eplb__take(&sc, (size_t)pl->n, sizeof *q.start);
  q.cnt = eplb__take(&sc, (size_t)pl->n, sizeof *q.cnt);
  rc = sc.failed ? eplb__err(EPLB_ENOMEM, "plan balanced: out of memory") : 0;
  q.stop = eplb__pool_bound(pl->w, pl->n, q.s.P, q.s.G) * (1 + STOP_TOL);
  if (pl->target > q.stop)
    q.stop = pl->target;
  if (!rc && pl->init_plan) { /* polish a given plan: swaps and count rounds only */
    rc = try_plan(&q, pl->init_plan);
    goto done;
  }
  if (!rc && pl->init_cnt)
    memcpy(q.start, pl->init_cnt, (size_t)pl->n * sizeof *q.start);
  else if (!rc)
    eplb__min_max_share(pl->w, pl->n, q.s.P, q.s.G, q.start);
  if (!rc)
    rc = try_counts(&q, q.start, NULL);
  if (rc || pl->fixed_counts || pl->home)
    goto done;
  rc = generators(&q, pl, &sc);
  /* A tiny pool (Mixtral's 8 experts on a few devices) with 3 slots or more per device (two
   * slots have their exact counts above): the exact optimum below the lightest plan so far. */
  if (!rc && q.best > q.stop && q.s.S > 2 && pl->n <= EPLB__TINY_MAX_EXPERTS &&
      q.s.P <= EPLB__TINY_MAX_SLOTS) {
    double m = 0;
    rc = eplb__tiny_exact(pl->w, pl->n, q.s.G, q.s.S, q.best, slot_expert, &m);
    if (rc == 1)
      rc = 0, q.best = m;
  }
done:
  if (!rc)
    *max_load = q.best;
  eplb__scratch_free(&sc);
  state_free(&q.s);
  state_free(&q.save);
  return rc;
}
