/* loads.c - the load matrix and its loaders (work in progress). */
#include <stdlib.h>

#include "eplb_int.h"

int eplb_loads_create(int32_t num_layers, int32_t num_experts, eplb_loads **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "loads: no output");
  *out = NULL;
  if (num_layers < 1 || num_experts < 1)
    return eplb__err(EPLB_EINVAL, "loads: sizes must be >= 1 (layers %d, experts %d)", num_layers,
                     num_experts);
  eplb_loads *x = calloc(1, sizeof *x);
  if (!x)
    return eplb__err(EPLB_ENOMEM, "loads: out of memory");
  size_t n = (size_t)num_layers * (size_t)num_experts;
  x->num_layers = num_layers;
  x->num_experts = num_experts;
  x->layer_ids = eplb__calloc((size_t)num_layers, sizeof *x->layer_ids);
  x->load = eplb__calloc(n, sizeof *x->load);
  x->count = eplb__calloc(n, sizeof *x->count);
  if (!x->layer_ids || !x->load || !x->count) {
    eplb_loads_free(x);
    return eplb__err(EPLB_ENOMEM, "loads: out of memory");
  }
  for (int32_t l = 0; l < num_layers; l++)
    x->layer_ids[l] = l;
  *out = x;
  return 0;
}

void eplb_loads_free(eplb_loads *loads) {
  if (!loads)
    return;
  free(loads->layer_ids);
  free(loads->load);
  free(loads->count);
  free(loads);
}

int eplb_loads_parse(const char *text, size_t len, const char *name, int64_t num_experts,
                     eplb_loads **out) {
  (void)text, (void)len, (void)num_experts;
  *out = NULL;
  return eplb__err(EPLB_ENOTSUP, "%s: loader not implemented yet", name);
}
int eplb_loads_read_file(const char *path, int64_t num_experts, eplb_loads **out) {
  return eplb_loads_parse("", 0, path, num_experts, out);
}
int eplb_loads_read_files(const char *const *paths, size_t n, int64_t num_experts,
                          eplb_loads **out) {
  (void)n;
  return eplb_loads_parse("", 0, paths[0], num_experts, out);
}
int eplb_loads_read_folder(const char *dir, int64_t num_experts, eplb_loads **out) {
  return eplb_loads_parse("", 0, dir, num_experts, out);
}
int eplb_loads_write(const eplb_loads *loads, const char *path) {
  (void)loads;
  return eplb__err(EPLB_ENOTSUP, "%s: not implemented yet", path);
}
