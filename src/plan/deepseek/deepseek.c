/* plan_deepseek.c - the deepseek policy: DeepSeek's EPLB (rebalance_experts of deepseek-ai/EPLB
 * eplb.py) computed as ../shared/DEEPSEEK_EPLB.md describes, in float32.
 *
 * Per layer: (1) group loads are packed onto nodes, which fixes each expert's node-major
 * position; (2) each node replicates its experts greedily (the next replica goes to the expert
 * with the largest load per replica); (3) each node's replicas are packed onto its devices
 * (heaviest first, each to the lightest device with room). Hierarchical when K % N == 0, else
 * global (K = N = 1). All arithmetic is float32 as in the reference: the input cast (an exact
 * int64 count is converted directly, int64 -> float32, as torch does; a real load double ->
 * float32; -0 becomes +0), group sums (sequential; torch's vectorised reduction may round a
 * large non-integer group sum differently, see the spec), quotients x / cnt, pack load sums (in
 * assignment order) and every comparison.
 *
 * Ties, eplb's contract: every sort orders by (value descending, index ascending), i.e. it is
 * stable; the pack choice takes the lowest pack index among the lightest non-full packs; the
 * replication argmax takes the first index in node-local position order. (The reference's own
 * sort order on ties depends on the torch build; on inputs without exact ties the outputs are
 * identical.)
 *
 * allow_duplicates == 0 (the default) changes two things only, so a layer where the reference
 * puts no two replicas of one expert on a device is planned exactly as the reference does:
 *   (a) replication never gives an expert more replicas than its node has devices;
 *   (b) each replica goes to the lightest non-full device that does not hold its expert yet,
 *       with a repair swap when every non-full device holds it (see repair_swap()).
 *
 * Speed: scratch is allocated once per plan; sorts, the argmax and the pack choice work on
 * integer order keys (float32 bits and index in one uint64) and the latter two on binary heaps
 * whose order is exactly the reference's scan order, so a layer costs O(P log P). Sorts of 64
 * items or more are radix sorts; a packing's first round (one item per pack) and a whole
 * two-per-pack packing need no heap (see place_first_round() and pack_pairs()).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/plan_int.h"

/* Smallest double that rounds to +inf as a float32 (FLT_MAX plus half an ulp, ties to even). */
#define DS_FLOAT_OVERFLOW 0x1.ffffffp127

/* Bits per digit of the radix sort, its bucket count, and the digits of a float32. */
#define DS_DIGIT_BITS 8
#define DS_BUCKETS (1 << DS_DIGIT_BITS)
#define DS_DIGITS (32 / DS_DIGIT_BITS)

/* ---- scratch ---- */

/* The shape of one plan, with the K and N actually used. */
typedef struct ds_shape {
  int32_t E, P, K, N, G;
  int32_t gs;  /* experts per group, E / K */
  int32_t gpn; /* groups per node, K / N */
  int32_t En;  /* experts per node */
  int32_t Pn;  /* slots per node */
  int32_t Gn;  /* devices per node */
  int32_t S;   /* slots per device */
} ds_shape;

/* Working memory of one plan, sized for the largest use and reused by every layer and node. */
typedef struct ds_scratch {
  float *w;          /* [E] the layer's loads in float32 */
  float *gw;         /* [K] group loads */
  int32_t *gpack;    /* [K] node of each group */
  int32_t *grank;    /* [K] position of each group within its node */
  int32_t *mlog2log; /* [E] node-major position -> logical expert */
  float *x;          /* [En] loads of the node's experts, in node-local order */
  int32_t *cnt;      /* [En] replicas of each node-local expert */
  float *xq;         /* [En] load per replica of each node-local expert, x / cnt */
  int32_t *ph;       /* [Pn] node-local expert of each replica */
  float *y;          /* [Pn] load of each replica */
  int32_t *pack;     /* [max(K, Pn)] pack of each item */
  int32_t *rank;     /* [max(K, Pn)] position of each item within its pack */
  uint64_t *order;   /* [max(K, Pn)] keys of the items, sorted heaviest first */
  uint64_t *tmp;     /* [max(K, Pn)] merge buffer of the sort */
  uint64_t *heap;    /* [max(En, N, Gn)] binary heap of keys */
  float *pload;      /* [max(N, Gn)] pack loads */
  int32_t *pcnt;     /* [max(N, Gn)] pack item counts */
  int32_t *stash;    /* [Gn] packs popped while looking for one without the expert */
  int32_t (*hist)[DS_BUCKETS]; /* [DS_DIGITS] digit counts of the radix sort */
  int32_t *lst;      /* [max(N, Gn)] packs in (load, index) order, two-per-pack packing */
  int32_t *lnext;    /* [max(N, Gn)] next position in lst of a non-full pack */
  int32_t *content;  /* [Pn] item at (pack, rank), pack * cap + rank */
  int32_t *dev_off;  /* [En + 1] start of each expert's device list in dev_list */
  int32_t *dev_num;  /* [En] length of each expert's device list */
  int32_t *dev_list; /* [Pn] devices holding each expert, per expert */
} ds_scratch;

/* Releases every buffer of the scratch. */
static void scratch_free(ds_scratch *s) {
  free(s->w);
  free(s->gw);
  free(s->gpack);
  free(s->grank);
  free(s->mlog2log);
  free(s->x);
  free(s->cnt);
  free(s->xq);
  free(s->ph);
  free(s->y);
  free(s->pack);
  free(s->rank);
  free(s->order);
  free(s->tmp);
  free(s->heap);
  free(s->pload);
  free(s->pcnt);
  free(s->stash);
  free(s->lst);
  free(s->hist);
  free(s->lnext);
  free(s->content);
  free(s->dev_off);
  free(s->dev_num);
  free(s->dev_list);
}

/* The larger of two sizes, as a size_t for the allocator. */
static size_t max2(int32_t a, int32_t b) {
  return (size_t)(a > b ? a : b);
}

/* Allocates the scratch for shape `sh`. @return 0 or EPLB_ENOMEM. */
static int scratch_alloc(ds_scratch *s, const ds_shape *sh) {
  memset(s, 0, sizeof *s);
  size_t E = (size_t)sh->E, K = (size_t)sh->K, En = (size_t)sh->En, Pn = (size_t)sh->Pn;
  size_t items = max2(sh->K, sh->Pn), packs = max2(sh->N, sh->Gn);
  s->w = eplb__mallocn(E, sizeof *s->w);
  s->gw = eplb__mallocn(K, sizeof *s->gw);
  s->gpack = eplb__mallocn(K, sizeof *s->gpack);
  s->grank = eplb__mallocn(K, sizeof *s->grank);
  s->mlog2log = eplb__mallocn(E, sizeof *s->mlog2log);
  s->x = eplb__mallocn(En, sizeof *s->x);
  s->cnt = eplb__mallocn(En, sizeof *s->cnt);
  s->xq = eplb__mallocn(En, sizeof *s->xq);
  s->ph = eplb__mallocn(Pn, sizeof *s->ph);
  s->y = eplb__mallocn(Pn, sizeof *s->y);
  s->pack = eplb__mallocn(items, sizeof *s->pack);
  s->rank = eplb__mallocn(items, sizeof *s->rank);
  s->order = eplb__mallocn(items, sizeof *s->order);
  s->tmp = eplb__mallocn(items, sizeof *s->tmp);
  s->heap = eplb__mallocn(packs > En ? packs : En, sizeof *s->heap);
  s->pload = eplb__mallocn(packs, sizeof *s->pload);
  s->pcnt = eplb__mallocn(packs, sizeof *s->pcnt);
  s->stash = eplb__mallocn((size_t)sh->Gn, sizeof *s->stash);
  s->lst = eplb__mallocn(packs, sizeof *s->lst);
  s->hist = eplb__mallocn(DS_DIGITS, sizeof *s->hist);
  s->lnext = eplb__mallocn(packs, sizeof *s->lnext);
  s->content = eplb__mallocn(items, sizeof *s->content);
  s->dev_off = eplb__mallocn(En + 1, sizeof *s->dev_off);
  s->dev_num = eplb__mallocn(En, sizeof *s->dev_num);
  s->dev_list = eplb__mallocn(Pn, sizeof *s->dev_list);
  if (!s->w || !s->gw || !s->gpack || !s->grank || !s->mlog2log || !s->x || !s->cnt || !s->xq ||
      !s->ph || !s->y || !s->pack || !s->rank || !s->order || !s->tmp || !s->heap || !s->pload ||
      !s->pcnt || !s->stash || !s->lst || !s->lnext || !s->hist || !s->content || !s->dev_off ||
      !s->dev_num || !s->dev_list) {
    scratch_free(s);
    return eplb__err(EPLB_ENOMEM, "policy deepseek: out of memory");
  }
  return 0;
}

/* ---- input cast ---- */

/* One load as float32 the way the reference gets it: an exact integer count goes int64 ->
 * float32 directly (rounding once; via double it could round twice), anything else
 * double -> float32, with an explicit overflow to +inf instead of an out-of-range conversion. */
static float load_to_float(const eplb_loads *loads, size_t i) {
  double d = loads->load[i];
  if (d == 0)
    return 0.0f; /* +0, also for -0 */
  if (loads->count && (double)loads->count[i] == d)
    return (float)loads->count[i];
  if (d >= DS_FLOAT_OVERFLOW)
    return INFINITY;
  return (float)d;
}

/* ---- order keys ---- */

/* An order key packs a float32 value and an index into one unsigned integer so that comparing
 * keys compares (value, then index). The bits of a non-negative, non-NaN float32 (+0 included,
 * -0 never occurs: loads are cast with it mapped to +0) are ordered like its value, and every
 * value here is such a float: loads, quotients, sums. */
#define DS_INDEX_BITS 32
#define DS_INDEX_MASK 0xffffffffULL

/* The bits of a float32. */
static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* The key ordering by value ascending, then index ascending. */
static uint64_t key_up(float v, int32_t i) {
  return (uint64_t)float_bits(v) << DS_INDEX_BITS | (uint32_t)i;
}

/* The key ordering by value descending, then index ascending. */
static uint64_t key_down(float v, int32_t i) {
  return (uint64_t)(uint32_t)~float_bits(v) << DS_INDEX_BITS | (uint32_t)i;
}

/* The index held by a key. */
static int32_t key_index(uint64_t k) {
  return (int32_t)(k & DS_INDEX_MASK);
}

/* ---- sorting ---- */

/* Runs shorter than this are insertion-sorted before merging. */
#define DS_RUN 16

/* Sorts n keys ascending: insertion sort of short runs, then bottom-up merges through tmp[n]. */
static void sort_keys(uint64_t *a, uint64_t *tmp, int32_t n) {
  for (int32_t lo = 0; lo < n; lo += DS_RUN) {
    int32_t hi = lo + DS_RUN < n ? lo + DS_RUN : n;
    for (int32_t i = lo + 1; i < hi; i++) {
      uint64_t v = a[i];
      int32_t j = i;
      for (; j > lo && a[j - 1] > v; j--)
        a[j] = a[j - 1];
      a[j] = v;
    }
  }
  uint64_t *src = a, *dst = tmp;
  for (int32_t width = DS_RUN; width < n; width *= 2) {
    for (int32_t lo = 0; lo < n; lo += 2 * width) {
      int32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      int32_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        uint64_t u = src[i], v = src[j];
        int right = v < u; /* no branch on the comparison: it is a coin flip */
        dst[k++] = right ? v : u;
        j += right;
        i += !right;
      }
      while (i < mid)
        dst[k++] = src[i++];
      while (j < hi)
        dst[k++] = src[j++];
    }
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a)
    memcpy(a, src, (size_t)n * sizeof *a);
}

/* From this many items on, sort_desc() sorts by radix instead of by comparisons. */
#define DS_RADIX_MIN 64

/* Sorts n keys of distinct indices 0..n-1, given in index order, by their high 32 bits (and so by
 * the whole key, the index order being kept for equal high halves): a stable LSD radix sort,
 * one pass per byte that is not the same in every key, through tmp[n]. */
static void radix_keys(uint64_t *a, uint64_t *tmp, int32_t n, int32_t (*hist)[DS_BUCKETS]) {
  memset(hist, 0, DS_DIGITS * sizeof *hist);
  for (int32_t i = 0; i < n; i++) {
    uint32_t v = (uint32_t)(a[i] >> DS_INDEX_BITS);
    for (int32_t d = 0; d < DS_DIGITS; d++)
      hist[d][(v >> (d * DS_DIGIT_BITS)) & (DS_BUCKETS - 1)]++;
  }
  uint64_t *src = a, *dst = tmp;
  for (int32_t d = 0; d < DS_DIGITS; d++) {
    int32_t shift = DS_INDEX_BITS + d * DS_DIGIT_BITS, *h = hist[d];
    if (h[(src[0] >> shift) & (DS_BUCKETS - 1)] == n)
      continue; /* one bucket holds every key: the pass would not move anything */
    int32_t sum = 0;
    for (int32_t b = 0; b < DS_BUCKETS; b++) {
      int32_t c = h[b];
      h[b] = sum;
      sum += c;
    }
    for (int32_t i = 0; i < n; i++)
      dst[h[(src[i] >> shift) & (DS_BUCKETS - 1)]++] = src[i];
    uint64_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != a)
    memcpy(a, src, (size_t)n * sizeof *a);
}

/* Sorts items 0..n-1 of weights w into s->order, heaviest first, ties by lower index. */
static void sort_desc(const float *w, int32_t n, ds_scratch *s) {
  for (int32_t i = 0; i < n; i++)
    s->order[i] = key_down(w[i], i);
  if (n >= DS_RADIX_MIN)
    radix_keys(s->order, s->tmp, n, s->hist);
  else
    sort_keys(s->order, s->tmp, n);
}

/* ---- heaps ---- */

/* A binary min-heap of order keys: the root is the smallest key. */
typedef struct ds_heap {
  uint64_t *a;
  int32_t n;
} ds_heap;

/* Restores the heap order below position i after its key grew. */
static void heap_down(ds_heap *h, int32_t i) {
  uint64_t v = h->a[i];
  for (;;) {
    int32_t c = 2 * i + 1;
    if (c >= h->n)
      break;
    if (c + 1 < h->n)
      c += h->a[c + 1] < h->a[c]; /* no branch on the comparison: it is a coin flip */
    if (h->a[c] >= v)
      break;
    h->a[i] = h->a[c];
    i = c;
  }
  h->a[i] = v;
}

/* Adds key v to the heap. */
static void heap_push(ds_heap *h, uint64_t v) {
  int32_t i = h->n++;
  while (i > 0) {
    int32_t parent = (i - 1) / 2;
    if (h->a[parent] <= v)
      break;
    h->a[i] = h->a[parent];
    i = parent;
  }
  h->a[i] = v;
}

/* Removes the root and returns its index. */
static int32_t heap_pop(ds_heap *h) {
  uint64_t top = h->a[0];
  h->a[0] = h->a[--h->n];
  if (h->n > 0)
    heap_down(h, 0);
  return key_index(top);
}

/* ---- replicate_experts ---- */

/* Gives n experts of loads x[] p >= n replicas: replica j < n is expert j, then each further
 * replica goes to the first expert (in node-local order) maximising float32 x[j] / cnt[j]
 * (a heap keyed by (x / cnt descending, j ascending) has exactly that expert at its root).
 * cap > 0 skips experts that already have cap replicas (the no-duplicate mode; cap * n >= p
 * was checked). Fills ph[0..p-1] and cnt[0..n-1]. */
static void replicate(const float *x, int32_t n, int32_t p, int32_t cap, ds_scratch *s) {
  ds_heap h = {s->heap, 0};
  for (int32_t j = 0; j < n; j++) {
    s->ph[j] = j;
    s->cnt[j] = 1;
  }
  if (p == n)
    return;
  for (int32_t j = 0; j < n; j++)
    if (cap == 0 || cap > 1)
      h.a[h.n++] = key_down(x[j], j);
  for (int32_t i = h.n / 2 - 1; i >= 0; i--)
    heap_down(&h, i);
  for (int32_t r = n; r < p; r++) {
    int32_t j = key_index(h.a[0]);
    s->ph[r] = j;
    s->cnt[j]++;
    if (cap > 0 && s->cnt[j] >= cap) {
      heap_pop(&h);
    } else {
      h.a[0] = key_down(x[j] / (float)s->cnt[j], j);
      heap_down(&h, 0);
    }
  }
}

/* ---- balanced_packing ---- */

/* Items per pack of the packing with its own shortcut (see pack_pairs()). */
#define DS_PAIR 2

/* What the no-duplicate packing needs: which expert each item is, and where experts are. */
typedef struct ds_excl {
  const int32_t *expert; /* [n] expert of each item; NULL: no constraint (exact mode) */
  int32_t num_experts;
} ds_excl;

/* Whether pack d holds expert e (a scan of e's short device list). */
static int holds(const ds_scratch *s, int32_t d, int32_t e) {
  const int32_t *list = s->dev_list + s->dev_off[e];
  for (int32_t k = 0; k < s->dev_num[e]; k++)
    if (list[k] == d)
      return 1;
  return 0;
}

/* Records item q in pack d at the next free rank. */
static void place(ds_scratch *s, const float *w, const ds_excl *ex, int32_t cap, int32_t q,
                  int32_t d) {
  s->pack[q] = d;
  s->rank[q] = s->pcnt[d];
  s->content[d * cap + s->pcnt[d]] = q;
  s->pload[d] += w[q];
  s->pcnt[d]++;
  if (ex->expert) {
    int32_t e = ex->expert[q];
    s->dev_list[s->dev_off[e] + s->dev_num[e]++] = d;
  }
}

/* The repair when greedy is stuck: item q (expert e) must be placed, and every non-full pack
 * already holds e. Picks a full pack P without e, an item x on P whose expert is not on a
 * non-full pack Q, moves x to Q and puts q in x's place on P, minimising max(new load of P, new
 * load of Q) (ties: lowest P, then x's rank, then lowest Q).
 *
 * Such a swap always exists. e has at most cap_e <= m replicas (replication is capped at the
 * node's device count m) and q is not placed yet, so at most m - 1 packs hold e: some pack P
 * lacks e, and as every non-full pack holds e, P is full. Take any non-full pack Q (one exists:
 * q itself still needs a slot). P holds `cap` distinct experts (no duplicates so far) and Q
 * fewer than cap, so some expert on P is not on Q: call its item x. x's expert is not e (P
 * lacks e), so Q gains no duplicate, and P loses x and gains e, which it lacked.
 * @return 0, or EPLB_EINVALID if the argument above were ever violated (a bug). */
static int repair_swap(ds_scratch *s, const float *w, const ds_excl *ex, int32_t m, int32_t cap,
                       int32_t q) {
  int32_t e = ex->expert[q], best_p = -1, best_k = -1, best_q = -1;
  float best = 0;
  for (int32_t P = 0; P < m; P++) {
    if (s->pcnt[P] < cap || holds(s, P, e))
      continue;
    for (int32_t k = 0; k < cap; k++) {
      int32_t x = s->content[P * cap + k], xe = ex->expert[x];
      for (int32_t Q = 0; Q < m; Q++) {
        if (s->pcnt[Q] >= cap || holds(s, Q, xe))
          continue;
        float lp = s->pload[P] - w[x] + w[q], lq = s->pload[Q] + w[x];
        float cost = lp > lq ? lp : lq;
        if (isnan(cost))
          cost = INFINITY;
        if (best_p < 0 || cost < best) {
          best = cost;
          best_p = P;
          best_k = k;
          best_q = Q;
        }
      }
    }
  }
  if (best_p < 0)
    return eplb__err(EPLB_EINVALID, "policy deepseek: internal error: no repair swap for a "
                                    "replica of node-local expert %d",
                     e);
  int32_t x = s->content[best_p * cap + best_k], xe = ex->expert[x];
  /* x moves from best_p to best_q: its device list entry changes in place. */
  int32_t *list = s->dev_list + s->dev_off[xe];
  for (int32_t k = 0; k < s->dev_num[xe]; k++)
    if (list[k] == best_p)
      list[k] = best_q;
  s->pcnt[best_p]--; /* place() below re-adds x's load and count to best_q */
  place(s, w, &(ds_excl){NULL, 0}, cap, x, best_q);
  /* q takes x's rank on best_p; best_p's load is re-summed (no inf - inf). */
  s->pack[q] = best_p;
  s->rank[q] = best_k;
  s->content[best_p * cap + best_k] = q;
  s->pcnt[best_p]++;
  s->dev_list[s->dev_off[e] + s->dev_num[e]++] = best_p;
  float sum = 0;
  for (int32_t k = 0; k < cap; k++)
    sum += w[s->content[best_p * cap + k]];
  s->pload[best_p] = sum;
  return 0;
}

/* Places the heaviest items one per pack while that is what the greedy does: item t (in
 * heaviest-first order) goes to empty pack t as long as the packs 0..t-1 before it all weigh more
 * than 0 (so empty pack t is the lightest, lowest index; an empty pack holds no expert either).
 * Pack t then weighs exactly w of item t, so the loads are non-increasing in the pack index.
 * @return the number of items placed, at most m. */
static int32_t place_first_round(const float *w, int32_t m, const ds_excl *ex, int32_t cap,
                                 ds_scratch *s) {
  int32_t t = 0;
  while (t < m && (t == 0 || w[key_index(s->order[t - 1])] > 0)) {
    place(s, w, ex, cap, key_index(s->order[t]), t);
    t++;
  }
  return t;
}

/* Finishes a packing of two items per pack after a full first round (every pack holds one
 * item). A pack is full after its second item, so the loads of the non-full packs never change
 * again and the greedy's choice is always the first pack, in (load ascending, index ascending)
 * order, that is still non-full (and, with ex->expert, does not hold the item's expert). That
 * order is the first round's: runs of equal loads from the last pack back, each run in index
 * order. Non-full packs sit in a singly linked list in that order. @return 0 or the error of
 * repair_swap(). */
static int pack_pairs(const float *w, int32_t n, int32_t m, const ds_excl *ex, ds_scratch *s) {
  int32_t k = 0;
  for (int32_t hi = m - 1; hi >= 0;) {
    int32_t lo = hi;
    while (lo > 0 && s->pload[lo - 1] == s->pload[hi])
      lo--;
    for (int32_t d = lo; d <= hi; d++)
      s->lst[k++] = d;
    hi = lo - 1;
  }
  if (!ex->expert) {
    for (int32_t t = m; t < n; t++)
      place(s, w, ex, DS_PAIR, key_index(s->order[t]), s->lst[t - m]);
    return 0;
  }
  for (int32_t i = 0; i < m; i++)
    s->lnext[i] = i + 1;
  int32_t head = 0; /* position in lst of the first non-full pack; m: none */
  for (int32_t t = m; t < n; t++) {
    int32_t q = key_index(s->order[t]), e = ex->expert[q], prev = -1, c = head;
    while (c < m && holds(s, s->lst[c], e)) {
      prev = c;
      c = s->lnext[c];
    }
    if (c < m) {
      place(s, w, ex, DS_PAIR, q, s->lst[c]);
      if (prev < 0)
        head = s->lnext[c];
      else
        s->lnext[prev] = s->lnext[c];
      continue;
    }
    int rc = repair_swap(s, w, ex, m, DS_PAIR, q);
    if (rc)
      return rc;
    /* The repair filled one listed pack (every listed pack holds only a replica of e, so they
     * weigh the same and the repair picks the head; unlinking by fullness does not rely on it). */
    prev = -1;
    for (c = head; c < m; c = s->lnext[c]) {
      if (s->pcnt[s->lst[c]] < DS_PAIR) {
        prev = c;
      } else if (prev < 0) {
        head = s->lnext[c];
      } else {
        s->lnext[prev] = s->lnext[c];
      }
    }
  }
  return 0;
}

/* Packs n items of weights w into m packs of n / m items each: heaviest item first (stable),
 * each into the lightest non-full pack (lowest index on ties); with ex->expert, into the
 * lightest non-full pack not holding the item's expert, repairing when there is none. One item
 * per pack (n == m) is the identity, as in the reference. The first round and the two-per-pack
 * case take shortcuts (see place_first_round() and pack_pairs()); the rest goes through a
 * binary heap of the non-full packs keyed (load, index). Fills s->pack and s->rank.
 * @return 0 or the error of repair_swap(). */
static int pack_items(const float *w, int32_t n, int32_t m, const ds_excl *ex, ds_scratch *s) {
  int32_t cap = n / m;
  if (cap == 1) {
    for (int32_t i = 0; i < n; i++) {
      s->pack[i] = i;
      s->rank[i] = 0;
    }
    return 0;
  }
  sort_desc(w, n, s);
  for (int32_t d = 0; d < m; d++) {
    s->pload[d] = 0;
    s->pcnt[d] = 0;
  }
  if (ex->expert) {
    for (int32_t e = 0; e < ex->num_experts; e++)
      s->dev_num[e] = 0;
  }
  int32_t t = place_first_round(w, m, ex, cap, s);
  if (t == m && cap == DS_PAIR)
    return pack_pairs(w, n, m, ex, s);
  ds_heap h = {s->heap, 0};
  for (int32_t d = 0; d < m; d++)
    if (s->pcnt[d] < cap)
      h.a[h.n++] = key_up(s->pload[d], d);
  for (int32_t i = h.n / 2 - 1; i >= 0; i--)
    heap_down(&h, i);
  for (; t < n; t++) {
    int32_t q = key_index(s->order[t]);
    if (!ex->expert) {
      int32_t d = key_index(h.a[0]);
      place(s, w, ex, cap, q, d);
      if (s->pcnt[d] == cap) {
        heap_pop(&h);
      } else {
        h.a[0] = key_up(s->pload[d], d);
        heap_down(&h, 0);
      }
      continue;
    }
    int32_t e = ex->expert[q], nstash = 0, d = -1;
    while (h.n > 0) {
      int32_t c = heap_pop(&h);
      if (!holds(s, c, e)) {
        d = c;
        break;
      }
      s->stash[nstash++] = c;
    }
    if (d >= 0) {
      place(s, w, ex, cap, q, d);
      if (s->pcnt[d] < cap)
        heap_push(&h, key_up(s->pload[d], d));
    } else {
      int rc = repair_swap(s, w, ex, m, cap, q);
      if (rc)
        return rc;
    }
    for (int32_t k = 0; k < nstash; k++)
      if (s->pcnt[s->stash[k]] < cap)
        heap_push(&h, key_up(s->pload[s->stash[k]], s->stash[k]));
  }
  return 0;
}

/* ---- one layer ---- */

/* Plans one layer: w[E] float32 loads in, phy2log[P] out. */
static int plan_layer(const ds_shape *sh, int no_dups, ds_scratch *s, int32_t *phy2log) {
  /* Step 1: group loads (sequential float32 sums) packed onto nodes. */
  for (int32_t k = 0; k < sh->K; k++) {
    float sum = 0;
    for (int32_t j = 0; j < sh->gs; j++)
      sum += s->w[k * sh->gs + j];
    s->gw[k] = sum;
  }
  ds_excl none = {NULL, 0};
  pack_items(s->gw, sh->K, sh->N, &none, s);
  for (int32_t k = 0; k < sh->K; k++) {
    s->gpack[k] = s->pack[k];
    s->grank[k] = s->rank[k];
  }
  for (int32_t k = 0; k < sh->K; k++)
    for (int32_t j = 0; j < sh->gs; j++)
      s->mlog2log[(s->gpack[k] * sh->gpn + s->grank[k]) * sh->gs + j] = k * sh->gs + j;
  for (int32_t node = 0; node < sh->N; node++) {
    const int32_t *mlog = s->mlog2log + (size_t)node * sh->En;
    /* Step 2: replicate the node's experts. */
    for (int32_t j = 0; j < sh->En; j++)
      s->x[j] = s->w[mlog[j]];
    replicate(s->x, sh->En, sh->Pn, no_dups ? sh->Gn : 0, s);
    /* Step 3: pack the replicas onto the node's devices. */
    for (int32_t j = 0; j < sh->En; j++)
      s->xq[j] = s->x[j] / (float)s->cnt[j]; /* one division per expert, not per replica */
    for (int32_t q = 0; q < sh->Pn; q++)
      s->y[q] = s->xq[s->ph[q]];
    ds_excl ex = {NULL, sh->En};
    if (no_dups) {
      ex.expert = s->ph;
      s->dev_off[0] = 0;
      for (int32_t j = 0; j < sh->En; j++)
        s->dev_off[j + 1] = s->dev_off[j] + s->cnt[j];
    }
    int rc = pack_items(s->y, sh->Pn, sh->Gn, &ex, s);
    if (rc)
      return rc;
    int32_t *out = phy2log + (size_t)node * sh->Pn;
    for (int32_t q = 0; q < sh->Pn; q++)
      out[s->pack[q] * sh->S + s->rank[q]] = mlog[s->ph[q]];
  }
  return 0;
}

/* ---- policy ---- */

/* Derives the shape the reference uses (global: K = N = 1) and checks the policy's rules. */
static int make_shape(const eplb_loads *loads, const eplb_params *pr, ds_shape *sh) {
  sh->E = loads->num_experts;
  sh->P = pr->num_replicas;
  sh->G = pr->num_gpus;
  int hier = pr->num_groups % pr->num_nodes == 0;
  sh->K = hier ? pr->num_groups : 1;
  sh->N = hier ? pr->num_nodes : 1;
  if (sh->E % sh->K != 0)
    return eplb__err(EPLB_EPARAM, "policy deepseek: hierarchical mode needs num_experts %% "
                                  "num_groups == 0 (E %d, K %d)",
                     sh->E, sh->K);
  if (sh->G % sh->N != 0 || sh->P % sh->G != 0)
    return eplb__err(EPLB_EPARAM, "policy deepseek: needs num_gpus %% num_nodes == 0 and "
                                  "num_replicas %% num_gpus == 0 (P %d, G %d, N %d)",
                     sh->P, sh->G, sh->N);
  sh->gs = sh->E / sh->K;
  sh->gpn = sh->K / sh->N;
  sh->En = sh->E / sh->N;
  sh->Pn = sh->P / sh->N;
  sh->Gn = sh->G / sh->N;
  sh->S = sh->P / sh->G;
  if (sh->Pn < sh->En)
    return eplb__err(EPLB_EPARAM, "policy deepseek: slots per node num_replicas/num_nodes = %d "
                                  "is less than experts per node num_experts/num_nodes = %d",
                     sh->Pn, sh->En);
  if (!pr->allow_duplicates && (int64_t)sh->Pn > (int64_t)sh->En * sh->Gn)
    return eplb__err(EPLB_EPARAM, "policy deepseek: without duplicates: %d slots per node "
                                  "exceed experts per node x devices per node = %d x %d "
                                  "(%d slots per device > %d experts per node); allow duplicates "
                                  "(--allow-duplicates) or use fewer replicas",
                     sh->Pn, sh->En, sh->Gn, sh->S, sh->En);
  return 0;
}

int eplb__plan_deepseek(const eplb_loads *loads, const eplb_params *params, eplb_placement *p) {
  ds_shape sh = {0};
  int rc = make_shape(loads, params, &sh);
  if (rc)
    return rc;
  if (p->num_slots != sh.P || p->num_experts != sh.E || p->num_layers != loads->num_layers)
    return eplb__err(EPLB_EINVAL, "policy deepseek: placement shape does not match the loads");
  ds_scratch s;
  rc = scratch_alloc(&s, &sh);
  if (rc)
    return rc;
  for (int32_t l = 0; l < loads->num_layers && !rc; l++) {
    size_t base = (size_t)l * (size_t)sh.E;
    for (int32_t e = 0; e < sh.E; e++)
      s.w[e] = load_to_float(loads, base + (size_t)e);
    rc = plan_layer(&sh, !params->allow_duplicates, &s, p->phy2log + (size_t)l * (size_t)sh.P);
  }
  scratch_free(&s);
  return rc;
}
