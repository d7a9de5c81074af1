/* map_io.c - expert_map.json: writing placements (the seed's format, optionally with the full
 * index) and reading them back with every field checked. */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/eplb_int.h"

/* Largest expert id accepted in a map when the number of experts is not given. */
#define EPLB__MAX_MAP_EXPERTS (1 << 20)

/* ---- writer ---- */

typedef struct map_writer {
  const eplb_placement *p;
  eplb_map_format fmt;
} map_writer;

/* Writes `n` integers as a JSON array on one line. */
static void put_ints(FILE *f, const int32_t *v, size_t n) {
  fputc('[', f);
  for (size_t i = 0; i < n; i++)
    fprintf(f, i ? ", %d" : "%d", v[i]);
  fputc(']', f);
}

static int fill_map(FILE *f, void *user) {
  const map_writer *w = user;
  const eplb_placement *p = w->p;
  int32_t R = p->num_slots, G = p->num_gpus, S = R / G, E = p->num_experts, X = p->max_replicas;
  fprintf(f, "{\n  \"moe_layer_count\": %d,\n  \"layer_list\": [", p->num_layers);
  for (int32_t l = 0; l < p->num_layers; l++) {
    const int32_t *row = p->phy2log + (size_t)l * R;
    fprintf(f, "%s\n    {\n      \"layer_id\": %" PRId64 ",\n      \"device_count\": %d,\n"
               "      \"device_list\": [",
            l ? "," : "", p->layer_ids[l], G);
    for (int32_t d = 0; d < G; d++) {
      fprintf(f, "%s\n        {\"device_id\": %d, \"device_expert\": ", d ? "," : "", d);
      put_ints(f, row + (size_t)d * S, (size_t)S);
      fputc('}', f);
    }
    fputs("\n      ]", f);
    if (w->fmt == EPLB_MAP_FULL) {
      fputs(",\n      \"phy2log\": ", f);
      put_ints(f, row, (size_t)R);
      fputs(",\n      \"logcnt\": ", f);
      put_ints(f, p->logcnt + (size_t)l * E, (size_t)E);
      fputs(",\n      \"log2phy\": [", f);
      for (int32_t e = 0; e < E; e++) {
        fputs(e ? ", " : "", f);
        put_ints(f, p->log2phy + ((size_t)l * E + (size_t)e) * X, (size_t)X);
      }
      fputc(']', f);
    }
    fputs("\n    }", f);
  }
  fputs("\n  ]\n}\n", f);
  return 0;
}

int eplb_placement_write(const eplb_placement *p, const char *path, eplb_map_format fmt) {
  if (!path)
    return eplb__err(EPLB_EINVAL, "write map: no output path");
  if (fmt != EPLB_MAP_EXPERT_MAP && fmt != EPLB_MAP_FULL)
    return eplb__err(EPLB_EINVAL, "%s: unknown map format %d", path, (int)fmt);
  int rc = eplb_placement_validate(p, 1);
  if (rc) {
    char why[512];
    snprintf(why, sizeof why, "%s", eplb_last_error());
    return eplb__err(rc, "%s: refusing to write an invalid placement: %s", path, why);
  }
  map_writer w = {p, fmt};
  return eplb__write_atomic(path, fill_map, &w);
}

/* ---- reader ---- */

/* Reads integer member `key` of object `obj` into *out, checking it lies in [min, max]. */
static int get_int(const json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out,
                   const char *path, const char *where) {
  json_t *v = json_object_get(obj, key);
  if (!v)
    return eplb__err(EPLB_EFORMAT, "%s: %s: missing \"%s\"", path, where, key);
  if (!json_is_integer(v))
    return eplb__err(EPLB_EFORMAT, "%s: %s: \"%s\" is not an integer", path, where, key);
  int64_t x = json_integer_value(v);
  if (x < min || x > max)
    return eplb__err(EPLB_EFORMAT, "%s: %s: \"%s\" = %" PRId64 " is outside [%" PRId64
                                   ", %" PRId64 "]",
                     path, where, key, x, min, max);
  *out = x;
  return 0;
}

/* Checks a map document's shape and reports L, G and S (slots per device). */
static int map_shape(json_t *root, const char *path, int32_t *L, int32_t *G, int32_t *S) {
  int64_t count = 0, g = -1, s = -1;
  if (!json_is_object(root))
    return eplb__err(EPLB_EFORMAT, "%s: expected a JSON object with \"moe_layer_count\" and "
                                   "\"layer_list\"",
                     path);
  int rc = get_int(root, "moe_layer_count", 1, INT32_MAX, &count, path, "top level");
  if (rc)
    return rc;
  json_t *list = json_object_get(root, "layer_list");
  if (!json_is_array(list))
    return eplb__err(EPLB_EFORMAT, "%s: \"layer_list\" is missing or not an array", path);
  if ((int64_t)json_array_size(list) != count)
    return eplb__err(EPLB_EFORMAT, "%s: \"moe_layer_count\" is %" PRId64 " but \"layer_list\" "
                                   "holds %zu layers",
                     path, count, json_array_size(list));
  size_t l;
  json_t *layer;
  char where[128];
  json_array_foreach(list, l, layer) {
    snprintf(where, sizeof where, "layer_list[%zu]", l);
    if (!json_is_object(layer))
      return eplb__err(EPLB_EFORMAT, "%s: %s: not an object", path, where);
    int64_t dc = 0;
    if ((rc = get_int(layer, "device_count", 1, INT32_MAX, &dc, path, where)))
      return rc;
    if (g >= 0 && dc != g)
      return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_count\" %" PRId64 " differs from the "
                                     "first layer's %" PRId64,
                       path, where, dc, g);
    g = dc;
    json_t *devs = json_object_get(layer, "device_list");
    if (!json_is_array(devs))
      return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_list\" is missing or not an array", path,
                       where);
    if ((int64_t)json_array_size(devs) != g)
      return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_count\" is %" PRId64 " but "
                                     "\"device_list\" holds %zu devices",
                       path, where, g, json_array_size(devs));
    size_t d;
    json_t *dev;
    json_array_foreach(devs, d, dev) {
      char dwhere[192];
      snprintf(dwhere, sizeof dwhere, "%s.device_list[%zu]", where, d);
      if (!json_is_object(dev))
        return eplb__err(EPLB_EFORMAT, "%s: %s: not an object", path, dwhere);
      int64_t id = 0;
      if ((rc = get_int(dev, "device_id", 0, INT32_MAX, &id, path, dwhere)))
        return rc;
      if (id != (int64_t)d)
        return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_id\" is %" PRId64 ", expected %zu "
                                       "(devices in order)",
                         path, dwhere, id, d);
      json_t *ex = json_object_get(dev, "device_expert");
      if (!json_is_array(ex))
        return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_expert\" is missing or not an array",
                         path, dwhere);
      int64_t n = (int64_t)json_array_size(ex);
      if (n == 0)
        return eplb__err(EPLB_EFORMAT, "%s: %s: \"device_expert\" is empty", path, dwhere);
      if (s >= 0 && n != s)
        return eplb__err(EPLB_EFORMAT, "%s: %s: holds %" PRId64 " experts, other devices "
                                       "%" PRId64 " (every device needs the same slot count)",
                         path, dwhere, n, s);
      s = n;
    }
  }
  if (g * s > INT32_MAX)
    return eplb__err(EPLB_ERANGE, "%s: too many slots", path);
  *L = (int32_t)count;
  *G = (int32_t)g;
  *S = (int32_t)s;
  return 0;
}

/* Fills p's layer ids and phy2log from a document map_shape() accepted; reports E. */
static int map_fill(json_t *root, const char *path, int64_t num_experts, eplb_placement *p,
                    int64_t *max_expert) {
  json_t *list = json_object_get(root, "layer_list");
  int32_t S = p->num_slots / p->num_gpus;
  int64_t limit = num_experts > 0 ? num_experts : EPLB__MAX_MAP_EXPERTS;
  size_t l;
  json_t *layer;
  *max_expert = -1;
  json_array_foreach(list, l, layer) {
    char where[128];
    snprintf(where, sizeof where, "layer_list[%zu]", l);
    int64_t id = 0;
    int rc = get_int(layer, "layer_id", 0, INT64_MAX, &id, path, where);
    if (rc)
      return rc;
    if (l > 0 && id <= p->layer_ids[l - 1])
      return eplb__err(EPLB_EFORMAT, "%s: %s: \"layer_id\" %" PRId64 " is not above the "
                                     "previous layer's %" PRId64,
                       path, where, id, p->layer_ids[l - 1]);
    p->layer_ids[l] = id;
    json_t *devs = json_object_get(layer, "device_list");
    for (size_t d = 0; d < json_array_size(devs); d++) {
      json_t *ex = json_object_get(json_array_get(devs, d), "device_expert");
      for (size_t j = 0; j < json_array_size(ex); j++) {
        json_t *v = json_array_get(ex, j);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= limit)
          return eplb__err(EPLB_EFORMAT, "%s: %s.device_list[%zu].device_expert[%zu]: not an "
                                         "expert id in [0, %" PRId64 ")",
                           path, where, d, j, limit);
        int64_t e = json_integer_value(v);
        p->phy2log[(size_t)l * p->num_slots + d * (size_t)S + j] = (int32_t)e;
        if (e > *max_expert)
          *max_expert = e;
      }
    }
  }
  return 0;
}

/* Checks that the integer array `v` (the full format's `key` of layer `l`) holds exactly
 * want[0..n). */
static int check_ints(const json_t *v, const char *key, const int32_t *want, size_t n,
                      const char *path, size_t l, const char *what) {
  if (!json_is_array(v) || json_array_size(v) != n)
    return eplb__err(EPLB_EFORMAT, "%s: layer_list[%zu].%s: expected an array of %zu integers "
                                   "(%s)",
                     path, l, key, n, what);
  for (size_t i = 0; i < n; i++) {
    json_t *x = json_array_get(v, i);
    if (!json_is_integer(x) || json_integer_value(x) != want[i])
      return eplb__err(EPLB_EFORMAT, "%s: layer_list[%zu].%s[%zu]: %s%" PRId64 " disagrees with "
                                     "device_list, which gives %d",
                       path, l, key, i, json_is_integer(x) ? "" : "not an integer, ",
                       json_is_integer(x) ? (int64_t)json_integer_value(x) : (int64_t)0, want[i]);
  }
  return 0;
}

/* The full format repeats each layer's placement as phy2log, logcnt and log2phy. When a layer
 * has them they must agree with its device_list (which is what is read): a map whose copies
 * disagree is damaged, and a reader trusting the other copy would route differently. */
static int check_full_index(json_t *root, const char *path, const eplb_placement *p) {
  json_t *list = json_object_get(root, "layer_list");
  int32_t R = p->num_slots, E = p->num_experts, X = p->max_replicas;
  for (size_t l = 0; l < json_array_size(list); l++) {
    json_t *layer = json_array_get(list, l), *v;
    int rc = 0;
    if ((v = json_object_get(layer, "phy2log")) != NULL)
      rc = check_ints(v, "phy2log", p->phy2log + l * (size_t)R, (size_t)R, path, l,
                      "the expert of every slot");
    if (!rc && (v = json_object_get(layer, "logcnt")) != NULL)
      rc = check_ints(v, "logcnt", p->logcnt + l * (size_t)E, (size_t)E, path, l,
                      "the replicas of every expert");
    if (!rc && (v = json_object_get(layer, "log2phy")) != NULL) {
      if (!json_is_array(v) || json_array_size(v) != (size_t)E)
        return eplb__err(EPLB_EFORMAT, "%s: layer_list[%zu].log2phy: expected one row per "
                                       "expert (%d)",
                         path, l, E);
      for (int32_t e = 0; !rc && e < E; e++) {
        char key[64];
        snprintf(key, sizeof key, "log2phy[%d]", e);
        rc = check_ints(json_array_get(v, (size_t)e), key,
                        p->log2phy + (l * (size_t)E + (size_t)e) * (size_t)X, (size_t)X, path, l,
                        "the expert's slots, -1 padded");
      }
    }
    if (rc)
      return rc;
  }
  return 0;
}

int eplb_placement_read(const char *path, int64_t num_experts, eplb_placement **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "read map: no output");
  *out = NULL;
  if (!path)
    return eplb__err(EPLB_EINVAL, "read map: no path");
  if (num_experts < 0 || num_experts > INT32_MAX)
    return eplb__err(EPLB_EINVAL, "%s: bad number of experts %" PRId64, path, num_experts);
  char *text;
  size_t len;
  int rc = eplb__read_file(path, &text, &len);
  if (rc)
    return rc;
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  free(text);
  if (!root)
    return eplb__err(EPLB_EFORMAT, "%s:%d:%d: invalid JSON: %s", path, jerr.line, jerr.column,
                     jerr.text);
  int32_t L = 0, G = 0, S = 0;
  eplb_placement *p = NULL;
  int64_t max_expert = -1;
  rc = map_shape(root, path, &L, &G, &S);
  if (!rc)
    rc = eplb_placement_create(L, 1, G * S, G, &p);
  if (!rc)
    rc = map_fill(root, path, num_experts, p, &max_expert);
  if (!rc && (num_experts > 0 ? num_experts : max_expert + 1) > (int64_t)G * S)
    rc = eplb__err(EPLB_EINVALID, "%s: experts 0..%" PRId64 " cannot all have a replica in %d "
                                  "slots per layer",
                   path, (num_experts > 0 ? num_experts : max_expert + 1) - 1, G * S);
  if (!rc) {
    /* Now that E is known (and E <= R, so the index stays within L*R*R), size logcnt for it. */
    p->num_experts = num_experts > 0 ? (int32_t)num_experts : (int32_t)(max_expert + 1);
    free(p->logcnt);
    p->logcnt = eplb__calloc((size_t)L * (size_t)p->num_experts, sizeof *p->logcnt);
    if (!p->logcnt)
      rc = eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
  }
  if (!rc)
    rc = eplb_placement_build_index(p);
  if (!rc)
    rc = eplb_placement_validate(p, 1);
  if (!rc)
    rc = check_full_index(root, path, p);
  json_decref(root);
  if (rc) {
    if (strncmp(eplb_last_error(), path, strlen(path)) != 0) { /* name the file in every error */
      char why[512];
      snprintf(why, sizeof why, "%s", eplb_last_error());
      eplb__err(rc, "%s: %s", path, why);
    }
    eplb_placement_free(p);
    return rc;
  }
  *out = p;
  return 0;
}
