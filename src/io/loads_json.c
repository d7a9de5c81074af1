/* loads.c - the load matrix and its loaders: the seed's token_collects_all.json and SGLang's
 * {"logical_count": ...} dump, one file, several files or a folder summed, and the writer.
 *
 * Files are parsed with jansson into an accumulator of sparse layers (any non-negative layer id,
 * experts grown as ids appear), summed across files exactly (int64 with overflow checks while
 * every value is an integer), then turned into a dense matrix in ascending layer id order. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/eplb_int.h"

/* Largest expert id accepted when the number of experts is not given (guards memory against a
 * stray huge key); pass num_experts to go beyond. */
#define EPLB__MAX_AUTO_EXPERTS (1 << 20)
/* Largest number of layers in one load matrix. */
#define EPLB__MAX_LAYERS (1 << 20)
/* Reals up to this magnitude that hold an integer are kept as exact counts (2^53). */
#define EPLB__EXACT_REAL_MAX 9007199254740992.0
/* JSON key of SGLang's expert distribution dump. */
#define EPLB__SGLANG_KEY "logical_count"

/* ---- accumulator of sparse layers ---- */

typedef struct acc_layer {
  int64_t id;
  int64_t width;  /* experts allocated */
  double *load;   /* [width] */
  int64_t *count; /* [width], exact while acc.exact */
} acc_layer;

typedef struct acc {
  acc_layer *layers;
  size_t n, cap;
  size_t *slot;        /* open-addressing table: layer index + 1, 0 = empty */
  size_t slot_cap;     /* power of two, kept at least twice n */
  int exact;           /* every value so far was an integer */
  int64_t max_expert;  /* largest expert id seen, -1 when none */
  int64_t num_experts; /* fixed E, or 0 */
} acc;

static void acc_free(acc *a) {
  for (size_t i = 0; i < a->n; i++) {
    free(a->layers[i].load);
    free(a->layers[i].count);
  }
  free(a->layers);
  free(a->slot);
}

/* The table position where layer `id` is, or where it would go. */
static size_t acc_slot(const acc *a, int64_t id) {
  size_t mask = a->slot_cap - 1, i = ((uint64_t)id * 0x9E3779B97F4A7C15ull >> 17) & mask;
  while (a->slot[i] && a->layers[a->slot[i] - 1].id != id)
    i = (i + 1) & mask;
  return i;
}

/* Doubles the hash table (or makes the first one) and re-inserts every layer. */
static int acc_grow_table(acc *a) {
  size_t cap = a->slot_cap ? a->slot_cap * 2 : 64;
  size_t *old = a->slot;
  a->slot = calloc(cap, sizeof *a->slot);
  if (!a->slot) {
    a->slot = old;
    return EPLB_ENOMEM;
  }
  a->slot_cap = cap;
  free(old);
  for (size_t k = 0; k < a->n; k++)
    a->slot[acc_slot(a, a->layers[k].id)] = k + 1;
  return 0;
}

/* Finds layer `id`, creating it (empty) when absent; NULL when out of memory. Layers are found
 * through a hash table (files may hold many layers); they are kept in the order first seen and
 * sorted when the matrix is built. */
static acc_layer *acc_layer_get(acc *a, int64_t id) {
  if (a->slot_cap < 2 * (a->n + 1) && acc_grow_table(a))
    return NULL;
  size_t i = acc_slot(a, id);
  if (a->slot[i])
    return &a->layers[a->slot[i] - 1];
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    acc_layer *nl = realloc(a->layers, cap * sizeof *nl);
    if (!nl)
      return NULL;
    a->layers = nl;
    a->cap = cap;
  }
  acc_layer *l = &a->layers[a->n++];
  memset(l, 0, sizeof *l);
  l->id = id;
  a->slot[i] = a->n;
  return l;
}

/* Grows a layer's arrays to hold expert `e`. @return 0 or EPLB_ENOMEM. */
static int acc_layer_reserve(acc_layer *l, int64_t e) {
  if (e < l->width)
    return 0;
  int64_t w = l->width ? l->width : 64;
  while (w <= e)
    w *= 2;
  double *nl = realloc(l->load, (size_t)w * sizeof *nl);
  if (!nl)
    return EPLB_ENOMEM;
  l->load = nl;
  int64_t *nc = realloc(l->count, (size_t)w * sizeof *nc);
  if (!nc)
    return EPLB_ENOMEM;
  l->count = nc;
  for (int64_t i = l->width; i < w; i++) {
    l->load[i] = 0;
    l->count[i] = 0;
  }
  l->width = w;
  return 0;
}

/* Adds one JSON count for (layer, expert); `where` names it in messages ("f.json: layer \"3\":
 * expert \"7\""). Checks the value's type, sign, finiteness, the expert range and overflow. */
static int acc_add(acc *a, acc_layer *l, int64_t e, const json_t *v, const char *where) {
  if (a->num_experts > 0 && e >= a->num_experts)
    return eplb__err(EPLB_ERANGE, "%s: expert id %" PRId64 " is not below --num_experts %" PRId64,
                     where, e, a->num_experts);
  if (a->num_experts == 0 && e >= EPLB__MAX_AUTO_EXPERTS)
    return eplb__err(EPLB_ERANGE, "%s: expert id %" PRId64 " exceeds %d (give the number of "
                                  "experts to allow it)",
                     where, e, EPLB__MAX_AUTO_EXPERTS);
  int64_t iv = 0;
  double dv;
  int is_int;
  if (json_is_integer(v)) {
    iv = json_integer_value(v);
    if (iv < 0)
      return eplb__err(EPLB_EFORMAT, "%s: count %" PRId64 " is negative", where, iv);
    dv = (double)iv;
    is_int = 1;
  } else if (json_is_real(v)) {
    dv = json_real_value(v);
    if (!isfinite(dv))
      return eplb__err(EPLB_EFORMAT, "%s: count is not finite", where);
    if (dv < 0)
      return eplb__err(EPLB_EFORMAT, "%s: count %g is negative", where, dv);
    is_int = dv <= EPLB__EXACT_REAL_MAX && dv == floor(dv);
    if (is_int)
      iv = (int64_t)dv;
  } else {
    const char *type = json_is_string(v)   ? "a string"
                       : json_is_boolean(v) ? "a boolean"
                       : json_is_null(v)    ? "null"
                       : json_is_array(v)   ? "an array"
                                            : "an object";
    return eplb__err(EPLB_EFORMAT, "%s: count is %s, not a number", where, type);
  }
  if (acc_layer_reserve(l, e))
    return eplb__err(EPLB_ENOMEM, "%s: out of memory", where);
  if (!is_int)
    a->exact = 0;
  if (a->exact) {
    int64_t sum;
    if (__builtin_add_overflow(l->count[e], iv, &sum))
      return eplb__err(EPLB_ERANGE, "%s: the sum of counts overflows 2^63-1", where);
    l->count[e] = sum;
  }
  double s = l->load[e] + dv;
  if (!isfinite(s))
    return eplb__err(EPLB_ERANGE, "%s: the sum of counts overflows", where);
  l->load[e] = s;
  if (e > a->max_expert)
    a->max_expert = e;
  return 0;
}

/* ---- formats ---- */

/* Adds the seed format {"<layer>": {"<expert>": count}}. */
static int add_seed(acc *a, json_t *root, const char *name) {
  const char *lkey;
  json_t *layer;
  char where[512];
  if (json_object_size(root) == 0)
    return eplb__err(EPLB_EFORMAT, "%s: no layers (empty object)", name);
  json_object_foreach(root, lkey, layer) {
    int64_t lid;
    if (!eplb__parse_key(lkey, &lid))
      return eplb__err(EPLB_EFORMAT, "%s: layer \"%s\": key is not a non-negative integer", name,
                       lkey);
    if (!json_is_object(layer))
      return eplb__err(EPLB_EFORMAT, "%s: layer \"%s\": expected an object of expert counts",
                       name, lkey);
    acc_layer *l = acc_layer_get(a, lid);
    if (!l)
      return eplb__err(EPLB_ENOMEM, "%s: out of memory", name);
    const char *ekey;
    json_t *v;
    json_object_foreach(layer, ekey, v) {
      int64_t e;
      if (!eplb__parse_key(ekey, &e))
        return eplb__err(EPLB_EFORMAT, "%s: layer \"%s\": expert \"%s\": key is not a "
                                       "non-negative integer",
                         name, lkey, ekey);
      snprintf(where, sizeof where, "%s: layer \"%s\": expert \"%s\"", name, lkey, ekey);
      int rc = acc_add(a, l, e, v, where);
      if (rc)
        return rc;
    }
  }
  return 0;
}

/* Adds one row of SGLang counts (a JSON array of numbers) to layer `lid`. `pass` is 0 for a
 * 2-D dump, else the pass index + 1 (for messages). A dump is dense: every row holds one count
 * per expert, so a row whose length differs from `width` (the first row's) is refused, naming
 * the row, rather than read as if the missing experts had 0 tokens. */
static int add_sglang_row(acc *a, int64_t lid, json_t *row, const char *name, size_t pass,
                          size_t width) {
  char where[512];
  if (pass)
    snprintf(where, sizeof where, "%s: %s[%zu][%" PRId64 "]", name, EPLB__SGLANG_KEY, pass - 1,
             lid);
  else
    snprintf(where, sizeof where, "%s: %s[%" PRId64 "]", name, EPLB__SGLANG_KEY, lid);
  if (!json_is_array(row))
    return eplb__err(EPLB_EFORMAT, "%s: expected an array of counts", where);
  if (json_array_size(row) != width)
    return eplb__err(EPLB_EFORMAT, "%s: %zu counts, but the first row has %zu (rows of different "
                                   "lengths: a damaged dump)",
                     where, json_array_size(row), width);
  acc_layer *l = acc_layer_get(a, lid);
  if (!l)
    return eplb__err(EPLB_ENOMEM, "%s: out of memory", name);
  size_t e;
  json_t *v;
  size_t base = strlen(where);
  json_array_foreach(row, e, v) {
    snprintf(where + base, sizeof where - base, "[%zu]", e);
    int rc = acc_add(a, l, (int64_t)e, v, where);
    if (rc)
      return rc;
  }
  return 0;
}

/* Adds SGLang's dump {"logical_count": [[...], ...]} (rows are layers 0..L-1). A 3-D array
 * [pass][layer][expert] (one matrix per recorded forward pass) is summed over passes; every
 * pass must have the first pass's shape (layers and experts), every row the first row's
 * length. */
static int add_sglang(acc *a, json_t *lc, const char *name) {
  if (!json_is_array(lc) || json_array_size(lc) == 0)
    return eplb__err(EPLB_EFORMAT, "%s: %s: expected a non-empty array of per-layer rows", name,
                     EPLB__SGLANG_KEY);
  json_t *first = json_array_get(lc, 0);
  int three_d = json_is_array(first) && json_array_size(first) > 0 &&
                json_is_array(json_array_get(first, 0));
  size_t layers = three_d ? json_array_size(first) : json_array_size(lc);
  size_t width = json_array_size(three_d ? json_array_get(first, 0) : first);
  size_t i;
  json_t *row;
  json_array_foreach(lc, i, row) {
    int rc;
    if (three_d) {
      if (!json_is_array(row))
        return eplb__err(EPLB_EFORMAT, "%s: %s[%zu]: expected an array of per-layer rows", name,
                         EPLB__SGLANG_KEY, i);
      if (json_array_size(row) != layers)
        return eplb__err(EPLB_EFORMAT, "%s: %s[%zu]: %zu layers, but the first pass has %zu "
                                       "(passes of different shapes: a damaged dump)",
                         name, EPLB__SGLANG_KEY, i, json_array_size(row), layers);
      size_t l;
      json_t *r;
      json_array_foreach(row, l, r) {
        if ((rc = add_sglang_row(a, (int64_t)l, r, name, i + 1, width)))
          return rc;
      }
    } else if ((rc = add_sglang_row(a, (int64_t)i, row, name, 0, width))) {
      return rc;
    }
  }
  return 0;
}

/* Parses one document and adds it to the accumulator. */
static int acc_parse(acc *a, const char *text, size_t len, const char *name) {
  size_t k = 0;
  while (k < len && (text[k] == ' ' || text[k] == '\n' || text[k] == '\t' || text[k] == '\r'))
    k++;
  if (k == len)
    return eplb__err(EPLB_EFORMAT, "%s: file is empty", name);
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return eplb__err(EPLB_EFORMAT, "%s:%d:%d: invalid JSON: %s", name, jerr.line, jerr.column,
                     jerr.text);
  int rc;
  if (!json_is_object(root))
    rc = eplb__err(EPLB_EFORMAT, "%s: expected a JSON object {\"<layer>\": {\"<expert>\": "
                                 "count}}",
                   name);
  else if (json_object_get(root, EPLB__SGLANG_KEY) && json_object_size(root) > 1)
    rc = eplb__err(EPLB_EFORMAT, "%s: \"%s\" beside other keys: a file holds either SGLang's "
                                 "dump or {\"<layer>\": {...}}, not both",
                   name, EPLB__SGLANG_KEY);
  else if (json_object_get(root, EPLB__SGLANG_KEY))
    rc = add_sglang(a, json_object_get(root, EPLB__SGLANG_KEY), name);
  else
    rc = add_seed(a, root, name);
  json_decref(root);
  return rc;
}

static int cmp_layer(const void *x, const void *y) {
  int64_t a = ((const acc_layer *)x)->id, b = ((const acc_layer *)y)->id;
  return (a > b) - (a < b);
}

/* Turns the accumulator into a dense matrix, layers in ascending id order. */
static int acc_finish(acc *a, const char *name, eplb_loads **out) {
  int64_t E = a->num_experts > 0 ? a->num_experts : a->max_expert + 1;
  if (a->n == 0)
    return eplb__err(EPLB_EFORMAT, "%s: no layers", name);
  if (E < 1)
    return eplb__err(EPLB_EFORMAT, "%s: no experts in any layer", name);
  if (a->n > EPLB__MAX_LAYERS || E > INT32_MAX)
    return eplb__err(EPLB_ERANGE, "%s: too many layers or experts", name);
  qsort(a->layers, a->n, sizeof *a->layers, cmp_layer);
  eplb_loads *x;
  int rc = eplb_loads_create((int32_t)a->n, (int32_t)E, &x);
  if (rc)
    return rc;
  for (size_t i = 0; i < a->n; i++) {
    const acc_layer *l = &a->layers[i];
    x->layer_ids[i] = l->id;
    int64_t w = l->width < E ? l->width : E;
    for (int64_t e = 0; e < w; e++) {
      x->load[i * (size_t)E + (size_t)e] = l->load[e];
      x->count[i * (size_t)E + (size_t)e] = l->count[e];
    }
  }
  if (!a->exact) {
    free(x->count);
    x->count = NULL;
  }
  *out = x;
  return 0;
}

static void acc_init(acc *a, int64_t num_experts) {
  memset(a, 0, sizeof *a);
  a->exact = 1;
  a->max_expert = -1;
  a->num_experts = num_experts;
}

/* ---- public loaders ---- */

int eplb_loads_parse(const char *text, size_t len, const char *name, int64_t num_experts,
                     eplb_loads **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "loads: no output");
  *out = NULL;
  if (!name)
    name = "<input>";
  if (!text)
    return eplb__err(EPLB_EINVAL, "%s: no text", name);
  if (num_experts < 0 || num_experts > INT32_MAX)
    return eplb__err(EPLB_EINVAL, "%s: bad number of experts %" PRId64, name, num_experts);
  acc a;
  acc_init(&a, num_experts);
  int rc = acc_parse(&a, text, len, name);
  if (!rc)
    rc = acc_finish(&a, name, out);
  acc_free(&a);
  return rc;
}

int eplb_loads_read_files(const char *const *paths, size_t n, int64_t num_experts,
                          eplb_loads **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "loads: no output");
  *out = NULL;
  if (!paths || n == 0)
    return eplb__err(EPLB_EINVAL, "loads: no input file");
  if (num_experts < 0 || num_experts > INT32_MAX)
    return eplb__err(EPLB_EINVAL, "loads: bad number of experts %" PRId64, num_experts);
  acc a;
  acc_init(&a, num_experts);
  int rc = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    char *text;
    size_t len;
    rc = eplb__read_file(paths[i], &text, &len);
    if (!rc) {
      rc = acc_parse(&a, text, len, paths[i]);
      free(text);
    }
  }
  if (!rc)
    rc = acc_finish(&a, n == 1 ? paths[0] : "inputs", out);
  acc_free(&a);
  return rc;
}

int eplb_loads_read_file(const char *path, int64_t num_experts, eplb_loads **out) {
  if (!path)
    return eplb__err(EPLB_EINVAL, "loads: no input file");
  return eplb_loads_read_files(&path, 1, num_experts, out);
}

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

int eplb_loads_read_folder(const char *dir, int64_t num_experts, eplb_loads **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "loads: no output");
  *out = NULL;
  if (!dir)
    return eplb__err(EPLB_EINVAL, "loads: no folder");
  DIR *d = opendir(dir);
  if (!d)
    return eplb__err(EPLB_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
  char **paths = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *ent;
  while (!rc && (ent = readdir(d)) != NULL) {
    size_t len = strlen(ent->d_name);
    if (len <= 5 || strcmp(ent->d_name + len - 5, ".json") != 0)
      continue;
    size_t plen = strlen(dir) + 1 + len + 1;
    char *p = malloc(plen);
    if (!p) {
      rc = eplb__err(EPLB_ENOMEM, "%s: out of memory", dir);
      break;
    }
    snprintf(p, plen, "%s/%s", dir, ent->d_name);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(p);
      continue;
    }
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char **np = realloc(paths, ncap * sizeof *np);
      if (!np) {
        free(p);
        rc = eplb__err(EPLB_ENOMEM, "%s: out of memory", dir);
        break;
      }
      paths = np;
      cap = ncap;
    }
    paths[n++] = p;
  }
  closedir(d);
  if (!rc && n == 0)
    rc = eplb__err(EPLB_EIO, "%s: folder holds no .json file", dir);
  if (!rc) {
    qsort(paths, n, sizeof *paths, cmp_str);
    rc = eplb_loads_read_files((const char *const *)paths, n, num_experts, out);
  }
  for (size_t i = 0; i < n; i++)
    free(paths[i]);
  free(paths);
  return rc;
}

/* ---- writer ---- */

static int fill_loads(FILE *f, void *user) {
  const eplb_loads *x = user;
  size_t E = (size_t)x->num_experts;
  fputc('{', f);
  for (int32_t l = 0; l < x->num_layers; l++) {
    fprintf(f, "%s\n  \"%" PRId64 "\": {", l ? "," : "", x->layer_ids[l]);
    for (size_t e = 0; e < E; e++) {
      size_t i = (size_t)l * E + e;
      if (x->count)
        fprintf(f, "%s\"%zu\": %" PRId64, e ? ", " : "", e, x->count[i]);
      else
        fprintf(f, "%s\"%zu\": %.17g", e ? ", " : "", e, x->load[i]);
    }
    fputc('}', f);
  }
  fputs("\n}\n", f);
  return 0;
}

int eplb_loads_write(const eplb_loads *loads, const char *path) {
  if (!loads || !loads->load || !loads->layer_ids || loads->num_layers < 1 ||
      loads->num_experts < 1)
    return eplb__err(EPLB_EINVAL, "%s: no loads to write", path ? path : "<output>");
  size_t n = (size_t)loads->num_layers * (size_t)loads->num_experts;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(loads->load[i]) || loads->load[i] < 0 || (loads->count && loads->count[i] < 0))
      return eplb__err(EPLB_EINVAL, "%s: load %zu is negative or not finite", path, i);
  return eplb__write_atomic(path, fill_loads, (void *)(uintptr_t)loads);
}
