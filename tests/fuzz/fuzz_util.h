/* fuzz_util.h - what the fuzz targets share: a check that aborts (so libFuzzer and the replay
 * driver both report it as a crash) and a per-process scratch file for loaders that read paths.
 * Each target defines LLVMFuzzerTestOneInput(); clang's libFuzzer drives it in `make fuzz`,
 * replay_main.c drives it over the kept corpus and crash inputs in `make test`. */
#ifndef EPLB_FUZZ_UTIL_H
#define EPLB_FUZZ_UTIL_H

#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the failed claim, file and line: a broken invariant is a finding. */
#define FUZZ_CHECK(cond)                                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "%s:%d: invariant failed: %s (last error: %s)\n", __FILE__, __LINE__,   \
              #cond, eplb_last_error());                                                       \
      abort();                                                                                 \
    }                                                                                          \
  } while (0)

/* Fills path[size] with a scratch file name unique to this process and `tag`, in $TMPDIR or
 * /tmp ("/tmp/eplb_fuzz.1234.map.json"). */
static inline void fuzz_scratch(char *path, size_t size, const char *tag) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, size, "%s/eplb_fuzz.%ld.%s", dir && *dir ? dir : "/tmp", (long)getpid(), tag);
}

/* Writes data[size] to `path`, replacing it. @return 0, or -1 when the file cannot be written
 * (the target then skips the input: the environment failed, not the library). */
static inline int fuzz_write(const char *path, const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t put = size ? fwrite(data, 1, size, f) : 0;
  int rc = fclose(f);
  return put == size && rc == 0 ? 0 : -1;
}

#endif /* EPLB_FUZZ_UTIL_H */
