/* counts.c - replica counts for pools with few slots per device. With 2-4 slots a
 * device's load is the sum of a few items, and the min-max greedy's counts (which make the
 * largest items as small as possible) can pair badly: a device with a large item needs small
 * partners. A descent then moves replicas one at a time from a pseudo-random donor (an expert
 * with two or more replicas) to an expert of the busiest device, judged by a fast largest-first
 * packing without the duplicate rule, and keeps every move that does not raise the maximum
 * (sideways moves let it cross plateaus). Optionally it anneals: a move that raises the maximum
 * is kept with a probability that shrinks with the rise and over the run, and the lightest
 * counts seen are returned. The generator is seeded with a constant and the start number, so
 * the result depends on the input only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"
#include "core/eplb_rand.h"

/* Seed of the descent's generator (any constant: it only has to be fixed). */
#define DESCENT_SEED 0x5eed5eedu
/* The descent stops after this share of its moves in a row did not lower the maximum. */
#define DESCENT_PATIENCE_SHARE 0.3

/* ---- state ---- */

typedef struct descent {
  const double *w;
  int32_t n, G, S, P;
  int32_t *cnt;    /* [n] current counts */
  int32_t *order;  /* [n] experts by item size w/cnt, largest first */
  int32_t *pos;    /* [n] position of each expert in order */
  double *key;     /* [n] item size w/cnt of each expert */
  int32_t *heap;   /* [G] devices with room, lightest first */
  double *load;    /* [G] */
  int32_t *fill;   /* [G] */
  int32_t *who;    /* [G*S] experts of each device */
  int32_t *donor;  /* [n] experts with two or more replicas (the only possible donors) */
  int32_t *at;     /* [n] position of each expert in donor, -1 when absent */
  int32_t ndonor;
  int32_t *best;   /* [n] annealing: the lightest counts seen (NULL for a plain descent) */
  int32_t top[EPLB__DESCENT_MAX_SLOTS]; /* experts of the busiest device */
  uint64_t rng;
  eplb__scratch sc; /* owns the arrays above */
} descent;

/* splitmix64. */
static uint64_t next_rand(uint64_t *st) {
  return eplb__splitmix64(st);
}

/* Sets expert e's replica count and its item size. */
static void set_count(descent *x, int32_t e, int32_t c) {
  x->cnt[e] = c;
  x->key[e] = x->w[e] / (double)c;
}

/* Whether expert a's item comes before b's: larger first, then lower index. */
static int before(const descent *x, int32_t a, int32_t b) {
  double sa = x->key[a], sb = x->key[b];
  return sa != sb ? sa > sb : a < b;
}

/* Sorts the order from scratch (insertion sort) and fills pos. */
static void resort(descent *x) {
  for (int32_t i = 1; i < x->n; i++) {
    int32_t e = x->order[i], j = i;
    while (j > 0 && before(x, e, x->order[j - 1])) {
      x->order[j] = x->order[j - 1];
      j--;
    }
    x->order[j] = e;
  }
  for (int32_t i = 0; i < x->n; i++)
    x->pos[x->order[i]] = i;
}

/* Moves expert e, whose count just changed, to its place in the otherwise sorted order. */
static void reposition(descent *x, int32_t e) {
  int32_t i = x->pos[e];
  while (i > 0 && before(x, e, x->order[i - 1])) {
    x->order[i] = x->order[i - 1];
    x->pos[x->order[i]] = i;
    i--;
  }
  while (i < x->n - 1 && before(x, x->order[i + 1], e)) {
    x->order[i] = x->order[i + 1];
    x->pos[x->order[i]] = i;
    i++;
  }
  x->order[i] = e;
  x->pos[e] = i;
}

/* ---- fast packing ---- */

/* Whether device a is lighter than b (then lower index). */
static int lighter(const descent *x, int32_t a, int32_t b) {
  return x->load[a] != x->load[b] ? x->load[a] < x->load[b] : a < b;
}

/* Restores the heap below position i. */
static void heap_down(descent *x, int32_t len, int32_t i) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < len && lighter(x, x->heap[l], x->heap[m]))
      m = l;
    if (r < len && lighter(x, x->heap[r], x->heap[m]))
      m = r;
    if (m == i)
      return;
    int32_t t = x->heap[i];
    x->heap[i] = x->heap[m];
    x->heap[m] = t;
    i = m;
  }
}

/* With two slots per device, largest-first packing pairs the k-th largest item with the k-th
 * smallest; returns the largest pair and fills x->top with its experts. Returns early (a load
 * above `limit`, x->top then unspecified) once a pair exceeds limit. */
static double evaluate_pairs(descent *x, double limit) {
  int32_t m = 0;
  for (int32_t i = 0; i < x->n; i++)
    for (int32_t r = 0; r < x->cnt[x->order[i]]; r++)
      x->who[m++] = x->order[i];
  double best = -1;
  for (int32_t k = 0; k < x->G; k++) {
    int32_t a = x->who[k], b = x->who[x->P - 1 - k];
    double v = x->key[a] + x->key[b];
    if (v > limit)
      return v;
    if (v > best) {
      best = v;
      x->top[0] = a;
      x->top[1] = b;
    }
  }
  return best;
}

/* Packs the current counts largest first onto the lightest device with room (no duplicate rule)
 * and returns the largest device load; fills x->top with the busiest device's experts. Loads
 * only grow while packing, so once one exceeds `limit` that load is returned at once (x->top
 * then unspecified). */
static double evaluate(descent *x, double limit) {
  if (x->S == 2)
    return evaluate_pairs(x, limit);
  memset(x->load, 0, (size_t)x->G * sizeof *x->load);
  memset(x->fill, 0, (size_t)x->G * sizeof *x->fill);
  /* While every device is empty or holds one item larger than zero, the lightest device (lowest
   * index on ties) is the next empty one: the first G replicas go to devices 0, 1, ... */
  int32_t q = 0, i = 0, r = 0;
  for (; i < x->n && q < x->G; i++, r = 0) {
    int32_t e = x->order[i];
    double size = x->key[e];
    if (size <= 0)
      break;
    for (; r < x->cnt[e] && q < x->G; r++, q++) {
      if (size > limit)
        return size;
      x->load[q] = size;
      x->who[(size_t)q * x->S] = e;
      x->fill[q] = 1;
    }
    if (r < x->cnt[e])
      break;
  }
  int32_t len = 0;
  for (int32_t d = 0; d < x->G; d++)
    if (x->fill[d] < x->S)
      x->heap[len++] = d;
  for (int32_t k = len / 2 - 1; k >= 0; k--)
    heap_down(x, len, k);
  for (; i < x->n; i++, r = 0) {
    int32_t e = x->order[i];
    double size = x->key[e];
    for (; r < x->cnt[e]; r++) {
      int32_t d = x->heap[0];
      x->load[d] += size;
      if (x->load[d] > limit)
        return x->load[d];
      x->who[d * x->S + x->fill[d]++] = e;
      if (x->fill[d] == x->S)
        x->heap[0] = x->heap[--len];
      heap_down(x, len, 0);
    }
  }
  int32_t a = 0;
  for (int32_t d = 1; d < x->G; d++)
    if (x->load[d] > x->load[a])
      a = d;
  memcpy(x->top, x->who + (size_t)a * x->S, (size_t)x->S * sizeof *x->top);
  return x->load[a];
}

/* ---- descent ---- */

/* Adds or removes expert e from the donor list to match its count (swap-with-last removal; the
 * list order depends on the move history only, so the descent stays deterministic). */
static void sync_donor(descent *x, int32_t e) {
  int in = x->at[e] >= 0, want = x->cnt[e] >= 2;
  if (want && !in) {
    x->at[e] = x->ndonor;
    x->donor[x->ndonor++] = e;
  } else if (!want && in) {
    int32_t last = x->donor[--x->ndonor];
    x->donor[x->at[e]] = last;
    x->at[last] = x->at[e];
    x->at[e] = -1;
  }
}

/* Allocates x's arrays for n experts on G devices of S slots and loads the counts cnt[n] (each
 * >= 1; x keeps the pointer and changes cnt in place), sorted. @return 0 or ENOMEM (x then
 * still needs descent_close). */
static int descent_open(descent *x, const double *w, int32_t n, int32_t G, int32_t S,
                        int32_t *cnt) {
  memset(x, 0, sizeof *x);
  x->w = w;
  x->n = n;
  x->G = G;
  x->S = S;
  x->P = G * S;
  x->cnt = cnt;
  x->order = eplb__take(&x->sc, (size_t)n, sizeof *x->order);
  x->pos = eplb__take(&x->sc, (size_t)n, sizeof *x->pos);
  x->key = eplb__take(&x->sc, (size_t)n, sizeof *x->key);
  x->heap = eplb__take(&x->sc, (size_t)G, sizeof *x->heap);
  x->load = eplb__take(&x->sc, (size_t)G, sizeof *x->load);
  x->fill = eplb__take(&x->sc, (size_t)G, sizeof *x->fill);
  x->who = eplb__take(&x->sc, (size_t)G * (size_t)S, sizeof *x->who);
  x->donor = eplb__take(&x->sc, (size_t)n, sizeof *x->donor);
  x->at = eplb__take(&x->sc, (size_t)n, sizeof *x->at);
  if (x->sc.failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  for (int32_t e = 0; e < n; e++) {
    x->order[e] = e;
    x->at[e] = -1;
    set_count(x, e, cnt[e]);
  }
  resort(x);
  return 0;
}

/* Releases x's arrays. */
static void descent_close(descent *x) {
  eplb__scratch_free(&x->sc);
}

int eplb__count_descent(const double *w, int32_t n, int32_t G, int32_t S, int32_t *cnt,
                        int32_t iters, double stop, uint32_t start, double temp) {
  if (S > EPLB__DESCENT_MAX_SLOTS || iters <= 0)
    return 0;
  descent x;
  int rc = descent_open(&x, w, n, G, S, cnt);
  if (rc)
    goto done;
  x.rng = DESCENT_SEED ^ (uint64_t)n ^ ((uint64_t)start << 32);
  for (int32_t e = 0; e < n; e++)
    sync_donor(&x, e);
  double cur = evaluate(&x, INFINITY), best = cur, heat = temp * cur;
  int32_t patience = temp > 0 ? iters : (int32_t)(iters * DESCENT_PATIENCE_SHARE) + 1;
  int32_t top[EPLB__DESCENT_MAX_SLOTS];
  if (temp > 0) {
    x.best = eplb__take(&x.sc, (size_t)n, sizeof *x.best);
    if (!x.best) {
      rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
      goto done;
    }
    memcpy(x.best, cnt, (size_t)n * sizeof *cnt);
  }
  for (int32_t it = 0, idle = 0; it < iters && best > stop && idle < patience;
       it++, idle++) {
    memcpy(top, x.top, sizeof top);
    int32_t g = top[next_rand(&x.rng) % (uint64_t)S];
    if (x.ndonor == 0)
      break;
    int32_t h = x.donor[next_rand(&x.rng) % (uint64_t)x.ndonor];
    /* Annealing accepts a rise below heat * (1 - progress) * -ln(u) (u uniform in (0, 1]);
     * drawn first, so the packing can stop as soon as it passes the limit. */
    double limit = cur;
    if (temp > 0) {
      double u = ((double)(next_rand(&x.rng) >> 11) + 1) / 9007199254740992.0;
      limit = cur - heat * (1 - (double)it / (double)iters) * log(u);
    }
    if (g == h || cnt[g] >= G || w[h] / (double)(cnt[h] - 1) > limit)
      continue;
    set_count(&x, g, cnt[g] + 1);
    set_count(&x, h, cnt[h] - 1);
    reposition(&x, g);
    reposition(&x, h);
    double v = evaluate(&x, limit);
    if (v <= limit) {
      if (v < cur)
        idle = 0;
      cur = v;
      sync_donor(&x, g);
      sync_donor(&x, h);
      if (x.best && cur < best)
        memcpy(x.best, cnt, (size_t)n * sizeof *cnt);
      best = cur < best ? cur : best;
      continue;
    }
    set_count(&x, g, cnt[g] - 1);
    set_count(&x, h, cnt[h] + 1);
    reposition(&x, g);
    reposition(&x, h);
    memcpy(x.top, top, sizeof top);
  }
  if (x.best)
    memcpy(cnt, x.best, (size_t)n * sizeof *cnt);
done:
  descent_close(&x);
  return rc;
}

/* ---- exact counts for small pools with two slots per device ---- */

/* Small pools are searched over every count vector when there are at most this many (the
 * descent's single moves can all be uphill there: one replica is a large share of a load). */
#define PAIR_EXACT_MAX_VECTORS 5e5

/* The state of the enumeration: the descent's sorted experts and pairing evaluate it. */
typedef struct pair_exact {
  descent x;    /* its cnt: the counts being tried */
  int32_t keep;
  int32_t kept; /* count vectors in out so far (<= keep) */
  double *val;  /* [keep] their largest pairs, ascending */
  int32_t *out; /* [keep*n] the best count vectors, in the order of val */
} pair_exact;

/* The value a count vector must beat to enter the kept list. */
static double pair_cutoff(const pair_exact *q) {
  return q->kept < q->keep ? INFINITY : q->val[q->keep - 1];
}

/* Inserts cur (largest pair v) into the kept list, dropping the worst when it is full. */
static void pair_keep(pair_exact *q, double v) {
  int32_t n = q->x.n, i = q->kept < q->keep ? q->kept++ : q->keep - 1;
  for (; i > 0 && q->val[i - 1] > v; i--) {
    q->val[i] = q->val[i - 1];
    memcpy(q->out + (size_t)i * n, q->out + (size_t)(i - 1) * n, (size_t)n * sizeof *q->out);
  }
  q->val[i] = v;
  memcpy(q->out + (size_t)i * n, q->x.cnt, (size_t)n * sizeof *q->out);
}

/* Tries every count of expert e and those after it, `left` slots to give; a count whose item
 * alone is above the cutoff is skipped. */
static void pair_enumerate(pair_exact *q, int32_t e, int32_t left) {
  descent *x = &q->x;
  int32_t rest = x->n - 1 - e, hi = left - rest < x->G ? left - rest : x->G;
  for (int32_t c = rest == 0 ? left : 1; c <= hi; c++) {
    if (c < 1 || x->w[e] / c > pair_cutoff(q))
      continue;
    set_count(x, e, c);
    reposition(x, e);
    if (rest > 0) {
      pair_enumerate(q, e + 1, left - c);
      continue;
    }
    double v = evaluate_pairs(x, pair_cutoff(q));
    if (v < pair_cutoff(q))
      pair_keep(q, v);
  }
}

int eplb__pair_counts_exact(const double *w, int32_t n, int32_t G, int32_t keep, int32_t *out,
                            int32_t *kept) {
  *kept = 0;
  /* compositions of 2G into n positive parts: C(2G-1, n-1) bounds the vectors tried */
  double vectors = 1;
  for (int32_t i = 1; i < n && vectors <= PAIR_EXACT_MAX_VECTORS; i++)
    vectors = vectors * (double)(2 * G - i) / (double)i;
  if (n < 2 || n > 2 * G || keep < 1 || vectors > PAIR_EXACT_MAX_VECTORS)
    return 0;
  pair_exact q;
  int32_t *cur = eplb__calloc((size_t)n, sizeof *cur);
  int rc = cur ? 0 : eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  for (int32_t e = 0; !rc && e < n; e++)
    cur[e] = 1;
  if (!rc)
    rc = descent_open(&q.x, w, n, G, 2, cur);
  q.keep = keep;
  q.kept = 0;
  q.out = out;
  q.val = rc ? NULL : eplb__calloc((size_t)keep, sizeof *q.val);
  if (!rc && !q.val)
    rc = eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  if (!rc) {
    pair_enumerate(&q, 0, 2 * G);
    *kept = q.kept;
  }
  if (cur)
    descent_close(&q.x);
  free(q.val);
  free(cur);
  return rc;
}

/* ---- neighbourhood search over the counts of a few experts (two slots per device) ---- */

/* Experts whose counts one step rewrites together. */
#define LNS_FREE 5
/* Each freed count ranges this far around its current value. */
#define LNS_SPAN 3
/* A pair of two replicas of one expert (which the plan must split) counts as this share of the
 * aim above it. */
#define LNS_TWIN 1e-3
/* With a deadline, the clock is read every this many steps. */
#define LNS_CLOCK_EVERY 8
/* A step aims this share below the lightest maximum so far. */
#define LNS_AIM 1e-3

/* The state of the neighbourhood search: the descent's sorted experts evaluate it. */
typedef struct lns {
  descent x;
  double aim;                /* pairs above it count as excess */
  int32_t fr[LNS_FREE];      /* the freed experts */
  int32_t lo[LNS_FREE], hi[LNS_FREE];
  int32_t pick[LNS_FREE];    /* the counts chosen for them so far */
  double pick_excess, pick_max;
  uint32_t ties;             /* combinations as good as the pick (one is kept at random) */
} lns;

/* The excess of the current counts, the sum over the pairs of the best pairing (k-th largest
 * replica with k-th smallest) of what they carry above q->aim, and in *max the largest pair.
 * Stops, returning a value above `limit`, once the excess passes it (*max is then unspecified). */
static double lns_excess(lns *q, double limit, double *max) {
  descent *x = &q->x;
  int32_t m = 0;
  for (int32_t i = 0; i < x->n; i++)
    for (int32_t r = 0; r < x->cnt[x->order[i]]; r++)
      x->who[m++] = x->order[i];
  double ex = 0, top = 0;
  for (int32_t k = 0; k < x->G; k++) {
    int32_t a = x->who[k], b = x->who[x->P - 1 - k];
    double v = x->key[a] + x->key[b];
    top = v > top ? v : top;
    if (v > q->aim || a == b) {
      ex += (v > q->aim ? v - q->aim : 0) + (a == b ? q->aim * LNS_TWIN : 0);
      if (ex > limit)
        return ex;
    }
  }
  *max = top;
  return ex;
}

/* Tries every count of freed expert i and those after it that gives `left` replicas to them all;
 * keeps the combination of least excess, then least maximum, one of equals at random. */
static void lns_enumerate(lns *q, int32_t i, int32_t left) {
  descent *x = &q->x;
  int32_t e = q->fr[i];
  int32_t lo = q->lo[i], hi = q->hi[i] < left ? q->hi[i] : left;
  if (i == LNS_FREE - 1)
    lo = hi = left;
  for (int32_t c = lo; c <= hi && c >= q->lo[i] && c <= q->hi[i]; c++) {
    set_count(x, e, c);
    reposition(x, e);
    if (i < LNS_FREE - 1) {
      lns_enumerate(q, i + 1, left - c);
      continue;
    }
    double max = 0, ex = lns_excess(q, q->pick_excess * (1 + 1e-12), &max);
    if (ex > q->pick_excess * (1 + 1e-12))
      continue;
    int better = ex < q->pick_excess * (1 - 1e-12) || max < q->pick_max * (1 - 1e-12);
    int equal = !better && max <= q->pick_max * (1 + 1e-12);
    if (equal && next_rand(&x->rng) % ++q->ties != 0)
      continue;
    if (better)
      q->ties = 1;
    if (better || equal) {
      q->pick_excess = ex;
      q->pick_max = max;
      for (int32_t j = 0; j < LNS_FREE; j++)
        q->pick[j] = x->cnt[q->fr[j]];
    }
  }
}

int eplb__pair_lns(const double *w, int32_t n, int32_t G, int32_t *cnt, int32_t steps,
                   double stop, uint32_t start, double deadline) {
  if (n <= LNS_FREE || steps <= 0)
    return 0;
  lns q;
  descent *x = &q.x;
  int32_t *best = eplb__calloc((size_t)n, sizeof *best);
  if (!best)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  int rc = descent_open(x, w, n, G, 2, cnt);
  if (rc)
    goto done;
  x->rng = DESCENT_SEED ^ (uint64_t)n ^ ((uint64_t)(start + 1) << 40);
  memcpy(best, cnt, (size_t)n * sizeof *best);
  double top = evaluate_pairs(x, INFINITY);
  q.aim = top * (1 - LNS_AIM);
  for (int32_t it = 0; it < steps && top > stop; it++) {
    if (deadline > 0 && it % LNS_CLOCK_EVERY == 0 && eplb__now() > deadline)
      break;
    /* Free both experts of a pair above the aim (drawn at random) and LNS_FREE - 2 others. */
    double now = 0, ex = lns_excess(&q, INFINITY, &now);
    int32_t over = 0;
    for (int32_t k = 0; k < G; k++)
      over += x->key[x->who[k]] + x->key[x->who[x->P - 1 - k]] > q.aim;
    int32_t k = 0, pick = over ? (int32_t)(next_rand(&x->rng) % (uint64_t)over) : 0;
    for (int32_t j = 0; j < G; j++)
      if (x->key[x->who[j]] + x->key[x->who[x->P - 1 - j]] > q.aim && pick-- == 0)
        k = j;
    int32_t nf = 0;
    q.fr[nf++] = x->who[k];
    if (x->who[x->P - 1 - k] != q.fr[0])
      q.fr[nf++] = x->who[x->P - 1 - k];
    while (nf < LNS_FREE) {
      int32_t e = (int32_t)(next_rand(&x->rng) % (uint64_t)n), seen = 0;
      for (int32_t j = 0; j < nf; j++)
        seen |= q.fr[j] == e;
      if (!seen)
        q.fr[nf++] = e;
    }
    int32_t left = 0;
    for (int32_t j = 0; j < LNS_FREE; j++) {
      int32_t c = cnt[q.fr[j]];
      left += c;
      q.pick[j] = c;
      q.lo[j] = c - LNS_SPAN > 1 ? c - LNS_SPAN : 1;
      q.hi[j] = c + LNS_SPAN < G ? c + LNS_SPAN : G;
    }
    q.pick_excess = ex;
    q.pick_max = now;
    q.ties = 1;
    lns_enumerate(&q, 0, left);
    for (int32_t j = 0; j < LNS_FREE; j++) {
      set_count(x, q.fr[j], q.pick[j]);
      reposition(x, q.fr[j]);
    }
    if (q.pick_max < top) {
      top = q.pick_max;
      memcpy(best, cnt, (size_t)n * sizeof *best);
    }
    if (q.pick_excess <= 0)
      q.aim = top * (1 - LNS_AIM);
  }
  memcpy(cnt, best, (size_t)n * sizeof *cnt);
done:
  descent_close(x);
  free(best);
  return rc;
}
