/* pairs.c - replica counts for two slots per device that meet a target T. With two
 * slots a device holds a pair, and counts pair within T exactly when every replica above T/2
 * (a "big" one, of load b) can get its own partner of load <= T - b (its tolerance). Sweeping a
 * position t from 0 to T/2, the replicas of load <= t (supply) must never be outnumbered by the
 * big replicas of tolerance <= t (demand): Hall's condition on nested sets. Each expert chooses
 * one count, hence either demand (c replicas of tolerance T - w/c) or supply (c replicas of
 * load w/c), and all counts together may use at most 2G slots (extra slots then go to replicas
 * of load <= T/2, which only adds supply earlier).
 *
 * The search is depth-first over experts, heaviest first, with a bound that is exact for each
 * position alone: a table gives, for the experts still to choose, the most supply minus demand
 * they can have at position t within the slots left (a knapsack over experts per position).
 * A branch is cut when some position falls short even so. Options are tried with the most
 * room at the tightest position first. The search is deterministic and stops after a node
 * budget; it finds counts such as "the heaviest expert keeps few big replicas and a middling
 * expert is split into many partners", which one-replica moves from the greedy's counts do not
 * reach. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"

/* Small options tried beyond the first count whose replicas are <= T/2 (supply comes earlier
 * with each). */
#define PAIR_SMALL_OPTIONS 4
/* Big options tried per expert at most, from its fewest replicas up (a dominant expert has
 * many; the fewest leave the most slots). */
#define PAIR_BIG_OPTIONS 16
/* When every expert's every count (fewest within T to G) makes at most this many options in
 * all, all are tried and the search is complete; past it the caps above apply. */
#define PAIR_ALL_OPTIONS 2048
/* Positions the bound checks at most (a subset of the tolerances when there are more; the
 * complete condition is checked on every finished vector). */
#define PAIR_MAX_ROWS 64
/* Entries of the bound's table at most; fewer positions are checked past it. */
#define PAIR_MAX_TABLE (1 << 22)

/* One choice of count for an expert. */
typedef struct pair_option {
  int32_t c;  /* replicas */
  double pos; /* supply: load w/c; demand: tolerance T - w/c */
  int big;    /* 1: demand (w/c > T/2), 0: supply */
} pair_option;

typedef struct pair_search {
  int32_t n, G, J, room;    /* experts, devices, positions, slots above the fewest counts */
  const double *w;
  double T;
  int32_t *order;           /* [n] experts, heaviest first */
  int32_t *nopt, *first;    /* [n] options of the k-th expert, and where they start in opt */
  pair_option *opt;
  int32_t *base;            /* [n] fewest replicas of the k-th expert (its first option) */
  double *row;              /* [J] positions checked, ascending */
  int32_t *best;            /* [(n+1)*J*(room+1)] most supply minus demand of experts k.. at
                               row j with s slots above their fewest */
  int32_t *bal;             /* [(n+1)*J] supply minus demand of the chosen experts, per depth */
  int32_t *pick;            /* [n] chosen option of the k-th expert */
  int32_t *got;             /* [n] counts of a finished vector, by expert */
  double *item;             /* [2G] its replica loads, sorted */
  int32_t *cand;            /* [n*max options] candidate options per depth */
  int32_t *cslack;          /* [n*max options] their room at the tightest row */
  int32_t maxopt;
  int64_t nodes, max_nodes;
  eplb__scratch sc;         /* owns the arrays above */
} pair_search;

/* The value of option o at position t: +c supply at or below t, -c demand at or below t. */
static int32_t option_value(const pair_option *o, double t) {
  if (o->pos > t)
    return 0;
  return o->big ? -o->c : o->c;
}

/* The table entry of experts k.. at row j with s extra slots. */
static int32_t *table(const pair_search *q, int32_t k, int32_t j) {
  return q->best + ((size_t)k * (size_t)q->J + (size_t)j) * (size_t)(q->room + 1);
}

/* Fewest replicas c of load w/c at most `cap` (at least 1). */
static int32_t fewest_within(double w, double cap) {
  double c = ceil(w / cap);
  int32_t k = c < 1 ? 1 : (c > INT32_MAX / 2 ? INT32_MAX / 2 : (int32_t)c);
  while (w / (double)k > cap)
    k++;
  while (k > 1 && w / (double)(k - 1) <= cap)
    k--;
  return k;
}

/* Ascending order of doubles for qsort. */
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Lists each expert's options and the positions to check. @return 1 ready, 0 no counts can
 * meet T (an expert needs more than G replicas or the fewest counts exceed 2G), or ENOMEM. */
static int search_open(pair_search *q) {
  int32_t n = q->n, G = q->G;
  q->order = eplb__take(&q->sc, (size_t)n, sizeof *q->order);
  q->nopt = eplb__take(&q->sc, (size_t)n, sizeof *q->nopt);
  q->first = eplb__take(&q->sc, (size_t)n, sizeof *q->first);
  q->base = eplb__take(&q->sc, (size_t)n, sizeof *q->base);
  q->pick = eplb__take(&q->sc, (size_t)n, sizeof *q->pick);
  q->got = eplb__take(&q->sc, (size_t)n, sizeof *q->got);
  q->item = eplb__take(&q->sc, 2 * (size_t)G, sizeof *q->item);
  int64_t all = 0;
  for (int32_t e = 0; e < n; e++) {
    int32_t lo = fewest_within(q->w[e], q->T);
    all += lo <= G ? G - lo + 1 : 0;
  }
  int complete = all <= PAIR_ALL_OPTIONS;
  size_t per = complete ? (size_t)G : PAIR_BIG_OPTIONS + PAIR_SMALL_OPTIONS + 1;
  q->opt = eplb__take(&q->sc, (size_t)n * per, sizeof *q->opt);
  if (q->sc.failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  if (eplb__order_heaviest(q->w, n, q->order) != 0) /* its one failure */
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  int64_t fewest = 0;
  int32_t m = 0, nbig = 0;
  for (int32_t k = 0; k < n; k++) {
    double w = q->w[q->order[k]];
    int32_t lo = fewest_within(w, q->T), small = fewest_within(w, q->T / 2);
    if (lo > G)
      return 0;
    q->first[k] = m;
    q->base[k] = lo;
    fewest += lo;
    int32_t big_end = complete ? G + 1 : lo + PAIR_BIG_OPTIONS;
    int32_t small_end = complete ? G : small + PAIR_SMALL_OPTIONS;
    for (int32_t c = lo; c < small && c < big_end && c <= G; c++, nbig++)
      q->opt[m++] = (pair_option){c, q->T - w / (double)c, 1};
    for (int32_t c = small; c <= small_end && c <= G; c++)
      q->opt[m++] = (pair_option){c, w / (double)c, 0};
    q->nopt[k] = m - q->first[k];
    if (q->nopt[k] > q->maxopt)
      q->maxopt = q->nopt[k];
  }
  if (fewest > 2 * (int64_t)G)
    return 0;
  q->room = (int32_t)(2 * (int64_t)G - fewest);
  /* positions: the tolerances of all big options, a spread subset when there are many */
  double *tol = eplb__take(&q->sc, (size_t)(nbig > 0 ? nbig : 1), sizeof *tol);
  if (q->sc.failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  int32_t t = 0;
  for (int32_t i = 0; i < m; i++)
    if (q->opt[i].big)
      tol[t++] = q->opt[i].pos;
  qsort(tol, (size_t)t, sizeof *tol, cmp_double);
  int32_t u = 0;
  for (int32_t i = 0; i < t; i++)
    if (u == 0 || tol[i] != tol[u - 1])
      tol[u++] = tol[i];
  int32_t J = u < PAIR_MAX_ROWS ? u : PAIR_MAX_ROWS;
  while (J > 1 && (double)(n + 1) * J * (q->room + 1) > PAIR_MAX_TABLE)
    J /= 2;
  q->J = J;
  q->row = eplb__take(&q->sc, (size_t)(J > 0 ? J : 1), sizeof *q->row);
  if (q->sc.failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  for (int32_t j = 0; j < J; j++)
    q->row[j] = tol[J == u ? j : (int32_t)((int64_t)j * (u - 1) / (J > 1 ? J - 1 : 1))];
  size_t cells = (size_t)(n + 1) * (size_t)J * (size_t)(q->room + 1);
  q->best = eplb__take(&q->sc, cells ? cells : 1, sizeof *q->best);
  q->bal = eplb__take(&q->sc, (size_t)(n + 1) * (size_t)(J > 0 ? J : 1), sizeof *q->bal);
  q->cand = eplb__take(&q->sc, (size_t)n * (size_t)q->maxopt, sizeof *q->cand);
  q->cslack = eplb__take(&q->sc, (size_t)n * (size_t)q->maxopt, sizeof *q->cslack);
  if (q->sc.failed)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  return 1;
}

/* Fills the bound's table from the last expert back: best[k][j][s] = the largest supply minus
 * demand at row j of experts k.. using at most s slots above their fewest counts. */
static void fill_table(pair_search *q) {
  for (int32_t k = q->n - 1; k >= 0; k--)
    for (int32_t j = 0; j < q->J; j++) {
      int32_t *out = table(q, k, j);
      const int32_t *next = table(q, k + 1, j);
      for (int32_t s = 0; s <= q->room; s++) {
        int32_t top = INT32_MIN;
        for (int32_t i = 0; i < q->nopt[k]; i++) {
          const pair_option *o = &q->opt[q->first[k] + i];
          int32_t extra = o->c - q->base[k];
          if (extra > s)
            break; /* options ascend in c */
          int32_t v = option_value(o, q->row[j]) + next[s - extra];
          if (v > top)
            top = v;
        }
        out[s] = top;
      }
    }
}

/* Gives the slots left after the search one by one to the expert with the largest replicas
 * among those at or below T/2 (more supply, earlier: the pairs stay within T), or when there is
 * none, to the expert with the largest replicas; no count passes G. */
static void fill_slots(const double *w, int32_t n, int32_t G, double T, int32_t *cnt) {
  int64_t sum = 0;
  for (int32_t e = 0; e < n; e++)
    sum += cnt[e];
  for (; sum < 2 * (int64_t)G; sum++) {
    int32_t pick = -1, any = -1;
    for (int32_t e = 0; e < n; e++) {
      if (cnt[e] >= G)
        continue;
      double size = w[e] / (double)cnt[e];
      if (any < 0 || size > w[any] / (double)cnt[any])
        any = e;
      if (size <= T / 2 && (pick < 0 || size > w[pick] / (double)cnt[pick]))
        pick = e;
    }
    if (pick < 0)
      pick = any;
    if (pick < 0)
      return;
    cnt[pick]++;
  }
}

/* Whether counts cnt[n] pair within T: exactly 2G replicas, their loads sorted (into
 * item[2G]), the k-th largest with the k-th smallest. */
static int pairs_within(const double *w, int32_t n, int32_t G, double T, const int32_t *cnt,
                        double *item) {
  int32_t m = 0;
  for (int32_t e = 0; e < n; e++)
    for (int32_t r = 0; r < cnt[e] && m < 2 * G; r++)
      item[m++] = w[e] / (double)cnt[e];
  qsort(item, (size_t)m, sizeof *item, cmp_double);
  int ok = m == 2 * G;
  for (int32_t k = 0; ok && k < G; k++)
    ok = item[k] + item[m - 1 - k] <= T;
  return ok;
}

/* Whether the chosen counts meet T exactly: supply never outnumbered by demand at any
 * tolerance, checked on every option's own position (not only the rows). */
static int finished_ok(const pair_search *q) {
  for (int32_t a = 0; a < q->n; a++) {
    const pair_option *d = &q->opt[q->first[a] + q->pick[a]];
    if (!d->big)
      continue;
    int64_t bal = 0;
    for (int32_t k = 0; k < q->n; k++)
      bal += option_value(&q->opt[q->first[k] + q->pick[k]], d->pos);
    if (bal < 0)
      return 0;
  }
  return 1;
}

/* Chooses the k-th expert's count and those after it with `left` slots above their fewest.
 * @return 1 found, 0 none below this node, -1 out of nodes. */
static int search(pair_search *q, int32_t k, int32_t left) {
  if (++q->nodes > q->max_nodes)
    return -1;
  if (k == q->n) {
    /* the slots left go to replicas at or below T/2; only when there are none can that break
     * the pairs, hence the check after */
    if (!finished_ok(q))
      return 0;
    for (int32_t i = 0; i < q->n; i++)
      q->got[q->order[i]] = q->opt[q->first[i] + q->pick[i]].c;
    fill_slots(q->w, q->n, q->G, q->T, q->got);
    return pairs_within(q->w, q->n, q->G, q->T, q->got, q->item);
  }
  const int32_t *bal = q->bal + (size_t)k * (size_t)q->J;
  int32_t *next = q->bal + (size_t)(k + 1) * (size_t)q->J;
  int32_t *cand = q->cand + (size_t)k * (size_t)q->maxopt;
  int32_t *slack = q->cslack + (size_t)k * (size_t)q->maxopt;
  int32_t nc = 0;
  for (int32_t i = 0; i < q->nopt[k]; i++) {
    const pair_option *o = &q->opt[q->first[k] + i];
    int32_t extra = o->c - q->base[k];
    if (extra > left)
      break;
    int32_t low = INT32_MAX;
    for (int32_t j = 0; j < q->J && low >= 0; j++) {
      int32_t v = bal[j] + option_value(o, q->row[j]) + table(q, k + 1, j)[left - extra];
      low = v < low ? v : low;
    }
    if (low < 0)
      continue;
    /* insert by room at the tightest row, most first; ties keep fewer replicas first */
    int32_t p = nc++;
    for (; p > 0 && slack[p - 1] < low; p--) {
      cand[p] = cand[p - 1];
      slack[p] = slack[p - 1];
    }
    cand[p] = i;
    slack[p] = low;
  }
  for (int32_t r = 0; r < nc; r++) {
    const pair_option *o = &q->opt[q->first[k] + cand[r]];
    for (int32_t j = 0; j < q->J; j++)
      next[j] = bal[j] + option_value(o, q->row[j]);
    q->pick[k] = cand[r];
    int rc = search(q, k + 1, left - (o->c - q->base[k]));
    if (rc != 0)
      return rc;
  }
  return 0;
}

int eplb__pair_counts_at(const double *w, int32_t n, int32_t G, double T, int64_t max_nodes,
                         int32_t *cnt) {
  if (n < 1 || G < 1 || n > 2 * G || !(T > 0))
    return 0;
  pair_search q;
  memset(&q, 0, sizeof q);
  q.n = n;
  q.G = G;
  q.w = w;
  q.T = T;
  q.max_nodes = max_nodes;
  int rc = search_open(&q);
  if (rc == 1) {
    fill_table(&q);
    rc = search(&q, 0, q.room) == 1;
    if (rc)
      memcpy(cnt, q.got, (size_t)n * sizeof *cnt);
  }
  eplb__scratch_free(&q.sc);
  return rc;
}
