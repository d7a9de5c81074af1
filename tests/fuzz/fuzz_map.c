/* fuzz_map.c - the expert_map.json loader on any bytes (it reads a path, so the input goes
 * through a scratch file). Claims: a failure is a known code with a detail naming the file; a
 * success is a valid placement (duplicates allowed) that writes and reads back unchanged. */
#include "eplb.h"
#include "fuzz_util.h"

/* Checks that the map read from `path` writes and reads back as the same placement. */
static void check_round_trip(const eplb_placement *p) {
  char path[256];
  fuzz_scratch(path, sizeof path, "map_out.json");
  for (int fmt = EPLB_MAP_EXPERT_MAP; fmt <= EPLB_MAP_FULL; fmt++) {
    if (eplb_placement_write(p, path, (eplb_map_format)fmt) != 0)
      return;
    eplb_placement *q = NULL;
    int rc = eplb_placement_read(path, p->num_experts, &q);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(q->num_layers == p->num_layers && q->num_experts == p->num_experts &&
               q->num_slots == p->num_slots && q->num_gpus == p->num_gpus &&
               q->max_replicas == p->max_replicas);
    size_t L = (size_t)p->num_layers;
    FUZZ_CHECK(memcmp(q->layer_ids, p->layer_ids, L * sizeof *p->layer_ids) == 0);
    FUZZ_CHECK(memcmp(q->phy2log, p->phy2log, L * (size_t)p->num_slots * sizeof *p->phy2log) == 0);
    FUZZ_CHECK(memcmp(q->logcnt, p->logcnt, L * (size_t)p->num_experts * sizeof *p->logcnt) == 0);
    eplb_placement_free(q);
  }
  unlink(path);
}

/* Reads the input with E free (0) or fixed and checks the outcome. */
static void run(const char *path, int64_t num_experts) {
  eplb_placement *p = (eplb_placement *)1; /* must be reset to NULL on failure */
  int rc = eplb_placement_read(path, num_experts, &p);
  if (rc != 0) {
    FUZZ_CHECK(rc == EPLB_EFORMAT || rc == EPLB_EINVALID || rc == EPLB_ERANGE ||
               rc == EPLB_ENOMEM);
    FUZZ_CHECK(p == NULL);
    FUZZ_CHECK(strncmp(eplb_last_error(), path, strlen(path)) == 0);
    return;
  }
  FUZZ_CHECK(eplb_placement_validate(p, 1) == 0);
  FUZZ_CHECK(num_experts == 0 || p->num_experts == num_experts);
  FUZZ_CHECK(p->num_slots % p->num_gpus == 0);
  for (int32_t l = 1; l < p->num_layers; l++)
    FUZZ_CHECK(p->layer_ids[l] > p->layer_ids[l - 1]);
  if (num_experts == 0)
    check_round_trip(p);
  eplb_placement_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  fuzz_scratch(path, sizeof path, "map.json");
  if (fuzz_write(path, data, size) != 0)
    return 0;
  run(path, 0);
  run(path, 8);
  unlink(path);
  return 0;
}
