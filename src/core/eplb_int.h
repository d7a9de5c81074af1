/* eplb_int.h - src/core: internal helpers every part of the library uses (not installed).
 * Names here carry the internal prefix eplb__. */
#ifndef EPLB_INT_H
#define EPLB_INT_H

#include <stdio.h>

#include "eplb.h"

#if defined(__GNUC__)
#define EPLB__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EPLB__PRINTF(a, b)
#endif

/* The library is built with hidden visibility, but libeplb_mpi.so calls a few of these helpers
 * from libeplb.so. They are exported (default visibility) rather than copied into the MPI library
 * so that both share one thread-local error detail. Mark only what src/mpi/ uses; the names stay
 * internal (not in any installed header). */
#if defined(__GNUC__) && !defined(_WIN32)
#define EPLB__INTERNAL __attribute__((visibility("default")))
#else
#define EPLB__INTERNAL
#endif

/* ---- errors (error.c) ---- */

/* Records a one-line detail message for this thread (printf-style); returns 0. */
EPLB__INTERNAL int eplb__err_msg(const char *fmt, ...) EPLB__PRINTF(1, 2);

/* Returns `code` (what eplb__err() gives back once the message is recorded). */
static inline int eplb__err_code(int code, int recorded) {
  (void)recorded;
  return code;
}

/* Records a one-line detail message for this thread and returns `code`, so a failure reads
 * `return eplb__err(EPLB_EFORMAT, "%s: layer \"%s\": not an object", name, key);`. A macro
 * over a plain inline function, so that code readers (clang's analyzer among them) see that the
 * result is `code`, evaluated once, and never mistake a failure path for a success. */
#define eplb__err(code, ...) eplb__err_code((code), eplb__err_msg(__VA_ARGS__))

/* ---- memory (util.c) ---- */

/* calloc(n, size) that fails (NULL) on n*size overflow and on n == 0 returns a valid pointer. */
void *eplb__calloc(size_t n, size_t size);
/* malloc(n * size) with the same overflow check. */
EPLB__INTERNAL void *eplb__mallocn(size_t n, size_t size);

/* Scratch arrays of one computation, freed together: a search that needs a dozen arrays takes
 * each with eplb__take() and checks once, instead of a calloc, a test and a free per array.
 *   eplb__scratch sc = {0};
 *   double *load = eplb__take(&sc, G, sizeof *load);
 *   int32_t *fill = eplb__take(&sc, G, sizeof *fill);
 *   if (sc.failed) ...   (ENOMEM; eplb__scratch_free(&sc) is still needed)
 *   eplb__scratch_free(&sc); */
typedef struct eplb__scratch {
  void *head;  /* the blocks taken, newest first */
  int failed;  /* an eplb__take() ran out of memory (it returned NULL) */
} eplb__scratch;

/* A zeroed array of n items of `size` bytes (n == 0 gives a valid pointer), owned by sc; NULL,
 * with sc->failed set, when out of memory or n * size overflows. */
void *eplb__take(eplb__scratch *sc, size_t n, size_t size);
/* Frees every array sc owns; sc can be used again. */
void eplb__scratch_free(eplb__scratch *sc);

/* An expert and a load, for sorting (the comparison reads the load from the item itself, so no
 * static context is needed). */
typedef struct eplb__keyed {
  double w;
  int32_t e;
} eplb__keyed;

/* qsort comparison of eplb__keyed: larger load first, then lower expert. */
EPLB__INTERNAL int eplb__keyed_cmp(const void *pa, const void *pb);

/* Fills order[n] with the experts 0..n-1 by load w, heaviest first, then lower index.
 * @return 0 or EPLB_ENOMEM. */
EPLB__INTERNAL int eplb__order_heaviest(const double *w, int32_t n, int32_t *order);

/* ---- files (util.c) ---- */

/* Writes a file atomically: `fill(f, user)` writes the content into a temp file created next to
 * `path` (same folder, so rename is atomic; `path`.tmp.XXXXXXXX, mode 0666 less the umask); then
 * fflush, fsync, rename over `path`, fsync of the folder. If fill returns non-zero or any step
 * before the rename fails, the temp file is removed, `path` is left as it was and the error
 * (fill's own, or EPLB_EIO with the detail) is returned. The one exception: when only the final
 * fsync of the folder fails, `path` already holds the new content, and EPLB_EIO says so (the
 * rename may not survive a power loss). A process killed mid-write can leave a temp file behind,
 * never a partial `path`. */
int eplb__write_atomic(const char *path, int (*fill)(FILE *f, void *user), void *user);
/* Reads a whole file into a NUL-terminated malloc'ed buffer. @return 0 or EPLB_EIO/ENOMEM. */
int eplb__read_file(const char *path, char **text, size_t *len);

/* ---- JSON keys (util.c) ---- */

/* Parses a decimal non-negative integer key ("0", "17"; no sign, no leading zero, no spaces)
 * into *out. @return 1 on success, 0 when the text is not such a key or exceeds INT64_MAX. */
int eplb__parse_key(const char *s, int64_t *out);

/* ---- placements (placement.c) ---- */

/* Extra replicas in one layer of p (as eplb_placement_duplicates counts them), or a negative
 * error code. */
int64_t eplb__layer_duplicates(const eplb_placement *p, int32_t layer);

/* ---- assignment (assign.c) ---- */

/* Solves the n x n assignment problem maximising sum gain[i*n + assign[i]] exactly (Hungarian
 * algorithm with potentials, O(n^3); ties go to the lower index, so the result is
 * deterministic). @return 0 or EPLB_ENOMEM. */
int eplb__assign_max(const int64_t *gain, int32_t n, int32_t *assign);

/* ---- clock (util.c) ---- */

/* Seconds from a monotonic clock (the balanced policy's optional deadline, timings). */
double eplb__now(void);

#endif /* EPLB_INT_H */
