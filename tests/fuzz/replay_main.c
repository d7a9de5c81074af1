/* replay_main.c - the driver that replays fuzz inputs without libFuzzer: each argument is a file
 * (run once through LLVMFuzzerTestOneInput) or a folder (every regular file in it, sorted by
 * name). A crash aborts the process, so ctest fails on it; exit 1 when a file cannot be read or
 * no input was found. Used by `make test` (tests/fuzz/CMakeLists.txt) with gcc and the sanitizers. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Largest input replayed (libFuzzer's default -max_len is far below). */
#define REPLAY_MAX_BYTES (16u << 20)

/* Reads one file and runs it. @return 0 or -1 (cannot read). */
static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: %s: cannot open\n", path);
    return -1;
  }
  uint8_t *buf = malloc(REPLAY_MAX_BYTES);
  size_t n = buf ? fread(buf, 1, REPLAY_MAX_BYTES, f) : 0;
  int bad = !buf || ferror(f) || !feof(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "replay: %s: cannot read (or over %u bytes)\n", path, REPLAY_MAX_BYTES);
    free(buf);
    return -1;
  }
  /* An exact-size copy, so that ASan sees a read past the input's end. */
  uint8_t *copy = malloc(n ? n : 1);
  if (!copy) {
    free(buf);
    return -1;
  }
  if (n)
    memcpy(copy, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(copy, n);
  free(copy);
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of a folder, sorted by name. @return the number run, or -1. */
static long replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "replay: %s: cannot open folder\n", dir);
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn)
        break;
      names = nn;
    }
    size_t len = strlen(dir) + strlen(ent->d_name) + 2;
    if ((names[n] = malloc(len)) == NULL)
      break;
    snprintf(names[n], len, "%s/%s", dir, ent->d_name);
    n++;
  }
  closedir(d);
  if (n)
    qsort(names, n, sizeof *names, cmp_name);
  long run = 0;
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    if (run >= 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
      run = replay_file(names[i]) == 0 ? run + 1 : -1;
    free(names[i]);
  }
  free(names);
  return run;
}

int main(int argc, char **argv) {
  long total = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: not found\n", argv[i]);
      return 1;
    }
    long run = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) == 0 ? 1 : -1);
    if (run < 0)
      return 1;
    total += run;
  }
  if (total == 0) {
    fprintf(stderr, "replay: no input\n");
    return 1;
  }
  printf("replay: %ld inputs, no crash\n", total);
  return 0;
}
