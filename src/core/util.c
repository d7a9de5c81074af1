/* util.c - memory helpers and atomic file writes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "core/eplb_int.h"

/* ---- memory ---- */

void *eplb__calloc(size_t n, size_t size) {
  if (n == 0 || size == 0)
    return calloc(1, 1);
  if (n > SIZE_MAX / size)
    return NULL;
  return calloc(n, size);
}

int eplb__keyed_cmp(const void *pa, const void *pb) {
  const eplb__keyed *a = pa, *b = pb;
  if (a->w != b->w)
    return a->w > b->w ? -1 : 1;
  return (a->e > b->e) - (a->e < b->e);
}

int eplb__order_heaviest(const double *w, int32_t n, int32_t *order) {
  eplb__keyed *keys = eplb__calloc((size_t)n, sizeof *keys);
  if (!keys)
    return eplb__err(EPLB_ENOMEM, "out of memory");
  for (int32_t e = 0; e < n; e++)
    keys[e] = (eplb__keyed){w[e], e};
  qsort(keys, (size_t)n, sizeof *keys, eplb__keyed_cmp);
  for (int32_t e = 0; e < n; e++)
    order[e] = keys[e].e;
  free(keys);
  return 0;
}

void *eplb__mallocn(size_t n, size_t size) {
  if (n == 0 || size == 0)
    return malloc(1);
  if (n > SIZE_MAX / size)
    return NULL;
  return malloc(n * size);
}

/* ---- scratch ---- */

/* A block of scratch: its header, then the array (aligned for any type). */
typedef union scratch_block {
  void *next;
  max_align_t align;
} scratch_block;

void *eplb__take(eplb__scratch *sc, size_t n, size_t size) {
  if (size && n > (SIZE_MAX - sizeof(scratch_block)) / size) {
    sc->failed = 1;
    return NULL;
  }
  scratch_block *b = calloc(1, sizeof *b + n * size);
  if (!b) {
    sc->failed = 1;
    return NULL;
  }
  b->next = sc->head;
  sc->head = b;
  return b + 1;
}

void eplb__scratch_free(eplb__scratch *sc) {
  while (sc->head) {
    scratch_block *b = sc->head;
    sc->head = b->next;
    free(b);
  }
  sc->failed = 0;
}

/* ---- files ---- */

/* Opens the folder holding `path` and fsyncs it, so a rename in it is durable. */
static int fsync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (!slash)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  if (!dir)
    return EPLB_ENOMEM;
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  int rc = 0;
  if (fd < 0 || fsync(fd) != 0)
    rc = eplb__err(EPLB_EIO, "%s: replaced, but its folder %s could not be synced, so the new "
                             "file may not survive a power loss: %s",
                   path, dir, strerror(errno));
  if (fd >= 0)
    close(fd);
  free(dir);
  return rc;
}

/* Attempts at a free temp name before giving up (names collide only with leftovers). */
#define EPLB__TEMP_TRIES 64

/* Creates `path`.tmp.XXXXXXXX exclusively with mode 0666 (the umask applies, as for any new
 * file; mkstemp's 0600 would need an fchmod, and reading the umask means changing it, which is
 * not thread-safe). Fills `tmp` (size n + 32) with the name. @return the fd, or -1 with errno. */
static int create_temp(const char *path, char *tmp, size_t size) {
  static _Atomic unsigned long counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 20);
  for (int attempt = 0; attempt < EPLB__TEMP_TRIES; attempt++) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(++counter);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z ^= z >> 31;
    snprintf(tmp, size, "%s.tmp.%08x", path, (unsigned)(z & 0xffffffffu));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  return -1;
}

int eplb__write_atomic(const char *path, int (*fill)(FILE *f, void *user), void *user) {
  if (!path || !*path || !fill)
    return eplb__err(EPLB_EINVAL, "write: no output path");
  size_t size = strlen(path) + 32;
  char *tmp = malloc(size);
  if (!tmp)
    return eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
  int fd = create_temp(path, tmp, size);
  if (fd < 0) {
    int rc = eplb__err(EPLB_EIO, "%s: cannot create temp file: %s", path, strerror(errno));
    free(tmp);
    return rc;
  }
  FILE *f = fdopen(fd, "w");
  if (!f) {
    int rc = eplb__err(EPLB_EIO, "%s: %s", tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    free(tmp);
    return rc;
  }
  int rc = fill(f, user);
  if (rc == 0 && (fflush(f) != 0 || ferror(f)))
    rc = eplb__err(EPLB_EIO, "%s: write failed: %s", path, strerror(errno));
  if (rc == 0 && fsync(fileno(f)) != 0)
    rc = eplb__err(EPLB_EIO, "%s: fsync failed: %s", path, strerror(errno));
  if (fclose(f) != 0 && rc == 0)
    rc = eplb__err(EPLB_EIO, "%s: close failed: %s", path, strerror(errno));
  if (rc == 0 && rename(tmp, path) != 0)
    rc = eplb__err(EPLB_EIO, "%s: cannot rename temp file into place: %s", path, strerror(errno));
  if (rc != 0)
    unlink(tmp);
  else
    rc = fsync_parent(path);
  free(tmp);
  return rc;
}

int eplb__read_file(const char *path, char **text, size_t *len) {
  *text = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return eplb__err(EPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    fclose(f);
    return eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
  }
  for (;;) {
    if (cap - n < 2) {
      char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
      if (!nb) {
        free(buf);
        fclose(f);
        return eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return eplb__err(EPLB_EIO, "%s: read failed", path);
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return 0;
}

int eplb__parse_key(const char *s, int64_t *out) {
  if (!s || !*s)
    return 0;
  if (s[0] == '0' && s[1] != '\0')
    return 0;
  int64_t v = 0;
  for (const char *c = s; *c; c++) {
    if (*c < '0' || *c > '9')
      return 0;
    int d = *c - '0';
    if (v > (INT64_MAX - d) / 10)
      return 0;
    v = v * 10 + d;
  }
  *out = v;
  return 1;
}

/* ---- clock ---- */

/* Seconds from a monotonic clock. */
double eplb__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
