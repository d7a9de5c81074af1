/* fuzz_loads.c - the counts loader on any bytes, in both formats (the seed's
 * {"<layer>": {"<expert>": count}} and SGLang's {"logical_count": ...}), with E free and fixed.
 * Claims: a failure is a known code with a detail; a success is a well-formed matrix (ids
 * ascending, loads finite and >= 0, exact counts equal to the loads); writing it and reading it
 * back gives the same matrix. */
#include <math.h>

#include "eplb.h"
#include "fuzz_util.h"

/* The fixed number of experts of the second parse. */
#define FUZZ_FIXED_EXPERTS 16

/* Checks every field of a matrix the loader returned. */
static void check_loads(const eplb_loads *x, int64_t num_experts) {
  FUZZ_CHECK(x->num_layers >= 1 && x->num_experts >= 1);
  FUZZ_CHECK(num_experts == 0 || x->num_experts == num_experts);
  for (int32_t l = 0; l < x->num_layers; l++) {
    FUZZ_CHECK(x->layer_ids[l] >= 0);
    FUZZ_CHECK(l == 0 || x->layer_ids[l] > x->layer_ids[l - 1]);
  }
  size_t n = (size_t)x->num_layers * (size_t)x->num_experts;
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(isfinite(x->load[i]) && x->load[i] >= 0);
    FUZZ_CHECK(!x->count || (x->count[i] >= 0 && (double)x->count[i] == x->load[i]));
  }
}

/* Writes x, reads it back, and checks both are the same matrix. */
static void check_round_trip(const eplb_loads *x) {
  char path[256];
  fuzz_scratch(path, sizeof path, "loads.json");
  if (eplb_loads_write(x, path) != 0)
    return; /* the scratch folder failed, not the loader */
  eplb_loads *y = NULL;
  int rc = eplb_loads_read_file(path, x->num_experts, &y);
  unlink(path);
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(y->num_layers == x->num_layers && y->num_experts == x->num_experts);
  FUZZ_CHECK(!x->count == !y->count);
  size_t n = (size_t)x->num_layers * (size_t)x->num_experts;
  FUZZ_CHECK(memcmp(x->layer_ids, y->layer_ids, (size_t)x->num_layers * sizeof *x->layer_ids) == 0);
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(x->load[i] == y->load[i]);
    FUZZ_CHECK(!x->count || x->count[i] == y->count[i]);
  }
  eplb_loads_free(y);
}

/* Parses with E given (or not) and checks the outcome. */
static void run(const uint8_t *data, size_t size, int64_t num_experts, int round_trip) {
  eplb_loads *x = (eplb_loads *)1; /* must be reset to NULL on failure */
  int rc = eplb_loads_parse((const char *)data, size, "fuzz.json", num_experts, &x);
  if (rc != 0) {
    FUZZ_CHECK(rc == EPLB_EFORMAT || rc == EPLB_ERANGE || rc == EPLB_ENOMEM);
    FUZZ_CHECK(x == NULL);
    FUZZ_CHECK(strncmp(eplb_last_error(), "fuzz.json", 9) == 0);
    return;
  }
  check_loads(x, num_experts);
  if (round_trip)
    check_round_trip(x);
  eplb_loads_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  run(data, size, 0, 1);
  run(data, size, FUZZ_FIXED_EXPERTS, 0);
  return 0;
}
