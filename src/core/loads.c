/* loads.c - the load matrix: creating and freeing it (its JSON files are read and written in
 * src/io/loads_json.c). */
#include <stdlib.h>

#include "core/eplb_int.h"

/* ---- create, free ---- */

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
