/* map_io.c - expert_map.json: writing and reading placements (work in progress). */
#include "eplb_int.h"

int eplb_placement_write(const eplb_placement *p, const char *path, eplb_map_format fmt) {
  (void)p, (void)fmt;
  return eplb__err(EPLB_ENOTSUP, "%s: not implemented yet", path);
}
int eplb_placement_read(const char *path, int64_t num_experts, eplb_placement **out) {
  (void)num_experts;
  *out = NULL;
  return eplb__err(EPLB_ENOTSUP, "%s: not implemented yet", path);
}
