/* collect.c - the in-memory expert counters of step 1: recording, windows, merging, reading. */
#include <stdlib.h>
#include <string.h>

#include "core/eplb_int.h"

struct eplb_collector {
  int32_t num_layers;
  int32_t num_experts;
  int32_t num_windows;
  int32_t current; /* ring slot of the current window */
  int32_t opened;  /* windows held: 1..num_windows */
  size_t cells;    /* num_layers * num_experts, the size of one window */
  uint64_t *counts; /* [num_windows][cells] */
};

/* ---- lifetime ---- */

eplb_collector *eplb_collector_create(int32_t num_layers, int32_t num_experts,
                                      int32_t num_windows) {
  if (num_layers < 1 || num_experts < 1 || num_windows < 1) {
    eplb__err(EPLB_EINVAL, "collector: sizes must be >= 1 (layers %d, experts %d, windows %d)",
              num_layers, num_experts, num_windows);
    return NULL;
  }
  size_t cells = (size_t)num_layers * (size_t)num_experts;
  int fits = cells <= SIZE_MAX / (size_t)num_windows;
  eplb_collector *c = calloc(1, sizeof *c);
  uint64_t *counts = fits ? eplb__calloc(cells * (size_t)num_windows, sizeof *counts) : NULL;
  if (!c || !counts) {
    free(c);
    free(counts);
    eplb__err(EPLB_ENOMEM, "collector: out of memory (%d x %d x %d counters)", num_layers,
              num_experts, num_windows);
    return NULL;
  }
  c->num_layers = num_layers;
  c->num_experts = num_experts;
  c->num_windows = num_windows;
  c->opened = 1;
  c->cells = cells;
  c->counts = counts;
  return c;
}

void eplb_collector_free(eplb_collector *c) {
  if (!c)
    return;
  free(c->counts);
  free(c);
}

void eplb_collector_dims(const eplb_collector *c, int32_t *num_layers, int32_t *num_experts,
                         int32_t *num_windows) {
  if (num_layers)
    *num_layers = c ? c->num_layers : 0;
  if (num_experts)
    *num_experts = c ? c->num_experts : 0;
  if (num_windows)
    *num_windows = c ? c->num_windows : 0;
}

/* Returns the counters of the window of age `age` (0 = current), or NULL when not opened yet. */
static uint64_t *window_at(const eplb_collector *c, int32_t age) {
  if (age >= c->opened)
    return NULL;
  int32_t slot = (c->current - age + c->num_windows) % c->num_windows;
  return c->counts + (size_t)slot * c->cells;
}

/* ---- recording ---- */

/* Large calls with few experts count into SPLIT_WAYS partial 16-bit histograms on the stack, so
 * that consecutive equal ids (a hot expert) do not wait on each other's increment, then fold them
 * into the row. 16-bit partials measured 10% faster than 32-bit ones (less to zero and fold, more
 * of them per cache line). Small calls, or many experts, count straight into the row. */
#define SPLIT_WAYS 4
#define SPLIT_MAX_EXPERTS 1024 /* 8 KiB of partial counters */
#define SPLIT_MIN_IDS 2048     /* below this, zeroing and folding costs more than it saves */
/* ids per fold: each way takes a quarter of them, h0 up to SPLIT_WAYS - 1 more, so no partial
 * counter can pass UINT16_MAX. */
#define SPLIT_CHUNK ((size_t)SPLIT_WAYS * (UINT16_MAX - SPLIT_WAYS))

/* Adds the partial histograms h[0..SPLIT_WAYS-1][0..e-1] into row. */
static void fold(uint64_t *row, const uint16_t *h, uint32_t e) {
  for (uint32_t x = 0; x < e; x++)
    row[x] += (uint64_t)h[x] + h[e + x] + h[2 * e + x] + h[3 * e + x];
}

/* The counting loops, written once for both id widths: DEFINE_COUNTERS(32, int32_t, uint32_t)
 * defines count32() and count32_split() for int32 ids, DEFINE_COUNTERS(64, ...) the int64 ones.
 *
 * countW(row, ids, n, e) counts n ids into row, checking each: at the first id outside [0, e)
 * the ids already counted are taken back, so that a failing call counts nothing, and its index
 * is returned; n when all were counted. The check is a predictable branch inside the counting
 * loop (a negative id becomes a huge unsigned one), which costs half the time of a separate
 * checking pass.
 *
 * countW_split() does the same through SPLIT_WAYS partial histograms (e <= SPLIT_MAX_EXPERTS),
 * folded into row every SPLIT_CHUNK ids; a bad id drops the current chunk's partials and takes
 * back the earlier chunks' counts. */
#define DEFINE_COUNTERS(W, ID, UID)                                                           \
  static size_t count##W(uint64_t *row, const ID *ids, size_t n, UID e) {                     \
    for (size_t i = 0; i < n; i++) {                                                          \
      UID v = (UID)ids[i];                                                                    \
      if (v >= e) {                                                                           \
        for (size_t j = 0; j < i; j++)                                                        \
          row[ids[j]]--;                                                                      \
        return i;                                                                             \
      }                                                                                       \
      row[v]++;                                                                               \
    }                                                                                         \
    return n;                                                                                 \
  }                                                                                           \
                                                                                              \
  static size_t count##W##_split(uint64_t *row, const ID *ids, size_t n, UID e) {             \
    uint16_t h[SPLIT_WAYS * SPLIT_MAX_EXPERTS];                                               \
    uint16_t *h0 = h, *h1 = h + e, *h2 = h + 2 * (size_t)e, *h3 = h + 3 * (size_t)e;          \
    for (size_t start = 0; start < n; start += SPLIT_CHUNK) {                                 \
      size_t end = n - start < SPLIT_CHUNK ? n : start + SPLIT_CHUNK, i = start;              \
      memset(h, 0, sizeof *h * SPLIT_WAYS * e);                                               \
      for (; i + SPLIT_WAYS <= end; i += SPLIT_WAYS) {                                        \
        UID a = (UID)ids[i], b = (UID)ids[i + 1], c = (UID)ids[i + 2], d = (UID)ids[i + 3];   \
        if ((a >= e) | (b >= e) | (c >= e) | (d >= e))                                        \
          break; /* the loop below finds which one */                                         \
        h0[a]++, h1[b]++, h2[c]++, h3[d]++;                                                   \
      }                                                                                       \
      for (; i < end && (UID)ids[i] < e; i++)                                                 \
        h0[ids[i]]++;                                                                         \
      if (i < end) {                                                                          \
        for (size_t j = 0; j < start; j++)                                                    \
          row[ids[j]]--;                                                                      \
        return i;                                                                             \
      }                                                                                       \
      fold(row, h, (uint32_t)e);                                                              \
    }                                                                                         \
    return n;                                                                                 \
  }

DEFINE_COUNTERS(32, int32_t, uint32_t)
DEFINE_COUNTERS(64, int64_t, uint64_t)

int eplb_collector_record(eplb_collector *c, int32_t layer, const void *ids, size_t n,
                          eplb_id_type type) {
  if (!c)
    return 0;
  if (layer < 0 || layer >= c->num_layers)
    return eplb__err(EPLB_ERANGE, "collector: layer %d outside 0..%d", layer, c->num_layers - 1);
  if (type != EPLB_ID_INT32 && type != EPLB_ID_INT64)
    return eplb__err(EPLB_EINVAL, "collector: layer %d: unknown id type %d", layer, (int)type);
  if (n == 0)
    return 0;
  if (!ids)
    return eplb__err(EPLB_EINVAL, "collector: layer %d: ids is NULL", layer);
  uint64_t *row = window_at(c, 0) + (size_t)layer * (size_t)c->num_experts;
  int split = c->num_experts <= SPLIT_MAX_EXPERTS && n >= SPLIT_MIN_IDS;
  if (type == EPLB_ID_INT32) {
    const int32_t *p = ids;
    uint32_t e = (uint32_t)c->num_experts;
    size_t bad = split ? count32_split(row, p, n, e) : count32(row, p, n, e);
    if (bad < n)
      return eplb__err(EPLB_ERANGE, "collector: layer %d: ids[%zu] = %d outside 0..%d", layer,
                       bad, p[bad], c->num_experts - 1);
  } else {
    const int64_t *p = ids;
    uint64_t e = (uint64_t)c->num_experts;
    size_t bad = split ? count64_split(row, p, n, e) : count64(row, p, n, e);
    if (bad < n)
      return eplb__err(EPLB_ERANGE, "collector: layer %d: ids[%zu] = %lld outside 0..%d", layer,
                       bad, (long long)p[bad], c->num_experts - 1);
  }
  return 0;
}

int eplb_collector_add_counts(eplb_collector *c, int32_t layer, const uint64_t *counts) {
  if (!c)
    return 0;
  if (layer < 0 || layer >= c->num_layers)
    return eplb__err(EPLB_ERANGE, "collector: layer %d outside 0..%d", layer, c->num_layers - 1);
  if (!counts)
    return eplb__err(EPLB_EINVAL, "collector: layer %d: counts is NULL", layer);
  uint64_t *row = window_at(c, 0) + (size_t)layer * (size_t)c->num_experts;
  for (int32_t e = 0; e < c->num_experts; e++)
    if (counts[e] > UINT64_MAX - row[e])
      return eplb__err(EPLB_ERANGE, "collector: layer %d: expert %d: counter would overflow",
                       layer, e);
  for (int32_t e = 0; e < c->num_experts; e++)
    row[e] += counts[e];
  return 0;
}

/* ---- windows ---- */

int eplb_collector_next_window(eplb_collector *c) {
  if (!c)
    return 0;
  c->current = (c->current + 1) % c->num_windows;
  if (c->opened < c->num_windows)
    c->opened++;
  memset(window_at(c, 0), 0, c->cells * sizeof *c->counts);
  return 0;
}

int eplb_collector_reset(eplb_collector *c) {
  if (!c)
    return 0;
  memset(c->counts, 0, c->cells * (size_t)c->num_windows * sizeof *c->counts);
  c->current = 0;
  c->opened = 1;
  return 0;
}

int eplb_collector_merge(eplb_collector *dst, const eplb_collector *src) {
  if (!dst || !src)
    return eplb__err(EPLB_EINVAL, "collector merge: NULL collector");
  if (dst->num_layers != src->num_layers || dst->num_experts != src->num_experts ||
      dst->num_windows != src->num_windows)
    return eplb__err(EPLB_EINVAL,
                     "collector merge: shapes differ (%d x %d x %d windows vs %d x %d x %d)",
                     dst->num_layers, dst->num_experts, dst->num_windows, src->num_layers,
                     src->num_experts, src->num_windows);
  if (dst == src)
    return eplb__err(EPLB_EINVAL, "collector merge: a collector cannot be merged into itself");
  /* Windows dst has not opened yet are zero in memory (cleared when the ring last moved). */
  for (int32_t age = 0; age < src->opened; age++) {
    const uint64_t *s = window_at(src, age);
    int32_t slot = (dst->current - age + dst->num_windows) % dst->num_windows;
    const uint64_t *d = dst->counts + (size_t)slot * dst->cells;
    for (size_t i = 0; i < src->cells; i++)
      if (s[i] > UINT64_MAX - d[i])
        return eplb__err(EPLB_ERANGE, "collector merge: window %d: layer %zu: expert %zu: "
                         "counter would overflow", age, i / (size_t)src->num_experts,
                         i % (size_t)src->num_experts);
  }
  for (int32_t age = 0; age < src->opened; age++) {
    const uint64_t *s = window_at(src, age);
    int32_t slot = (dst->current - age + dst->num_windows) % dst->num_windows;
    uint64_t *d = dst->counts + (size_t)slot * dst->cells;
    for (size_t i = 0; i < src->cells; i++)
      d[i] += s[i];
  }
  if (dst->opened < src->opened)
    dst->opened = src->opened;
  return 0;
}

/* ---- reading ---- */

int eplb_collector_counts(const eplb_collector *c, int32_t window, uint64_t *out, size_t n) {
  if (!c || !out)
    return eplb__err(EPLB_EINVAL, "collector: NULL collector or output");
  if (n < c->cells)
    return eplb__err(EPLB_EINVAL, "collector: output holds %zu counts, %zu needed", n, c->cells);
  if (window < EPLB_WINDOW_ALL || window >= c->num_windows)
    return eplb__err(EPLB_ERANGE, "collector: window %d outside -1..%d", window,
                     c->num_windows - 1);
  memset(out, 0, c->cells * sizeof *out);
  int32_t first = window == EPLB_WINDOW_ALL ? 0 : window;
  int32_t last = window == EPLB_WINDOW_ALL ? c->opened - 1 : window;
  for (int32_t age = first; age <= last; age++) {
    const uint64_t *w = window_at(c, age);
    if (!w)
      continue;
    for (size_t i = 0; i < c->cells; i++) {
      if (w[i] > UINT64_MAX - out[i])
        return eplb__err(EPLB_ERANGE, "collector: layer %zu: expert %zu: the sum of the windows "
                         "passes 2^64-1", i / (size_t)c->num_experts,
                         i % (size_t)c->num_experts);
      out[i] += w[i];
    }
  }
  return 0;
}

int eplb_collector_loads(const eplb_collector *c, int32_t window, eplb_loads **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "collector: no output");
  *out = NULL;
  if (!c)
    return eplb__err(EPLB_EINVAL, "collector: NULL collector");
  uint64_t *sum = eplb__mallocn(c->cells, sizeof *sum);
  if (!sum)
    return eplb__err(EPLB_ENOMEM, "collector: out of memory");
  int rc = eplb_collector_counts(c, window, sum, c->cells);
  eplb_loads *loads = NULL;
  if (rc == 0)
    rc = eplb_loads_create(c->num_layers, c->num_experts, &loads);
  for (size_t i = 0; rc == 0 && i < c->cells; i++) {
    if (sum[i] > (uint64_t)INT64_MAX) {
      rc = eplb__err(EPLB_ERANGE, "collector: layer %zu: expert %zu: count %llu above 2^63-1",
                     i / (size_t)c->num_experts, i % (size_t)c->num_experts,
                     (unsigned long long)sum[i]);
      break;
    }
    loads->count[i] = (int64_t)sum[i];
    loads->load[i] = (double)sum[i];
  }
  free(sum);
  if (rc != 0) {
    eplb_loads_free(loads);
    return rc;
  }
  *out = loads;
  return 0;
}
