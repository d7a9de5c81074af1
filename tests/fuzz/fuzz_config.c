/* fuzz_config.c - the YAML config loader (libyaml) on any bytes, through a scratch file.
 * Claims: a failure is a known code with a detail naming the file and leaves the config as it
 * was; a success leaves NUL-terminated paths, and token_collects true has a save path. */
#include "eplb.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[256];
  fuzz_scratch(path, sizeof path, "config.yaml");
  if (fuzz_write(path, data, size) != 0)
    return 0;
  eplb_config cfg, before;
  eplb_config_init(&cfg);
  memcpy(cfg.expert_map_path, "keep", 5);
  before = cfg;
  int rc = eplb_config_load(path, &cfg);
  if (rc != 0) {
    FUZZ_CHECK(rc == EPLB_EFORMAT || rc == EPLB_ENOMEM);
    FUZZ_CHECK(memcmp(&cfg, &before, sizeof cfg) == 0);
    FUZZ_CHECK(strncmp(eplb_last_error(), path, strlen(path)) == 0);
  } else {
    FUZZ_CHECK(cfg.token_collects == 0 || cfg.token_collects == 1);
    FUZZ_CHECK(memchr(cfg.token_save_path, 0, sizeof cfg.token_save_path) != NULL);
    FUZZ_CHECK(memchr(cfg.expert_map_path, 0, sizeof cfg.expert_map_path) != NULL);
    FUZZ_CHECK(!cfg.token_collects || cfg.token_save_path[0] != '\0');
  }
  unlink(path);
  return 0;
}
