/* assign.c - the assignment problem, solved exactly: which row goes with which column of an
 * n x n matrix so that the total is largest. Re-planning matches old devices to new ones with it,
 * relabelling matches new devices to old ranks. */
#include <stdint.h>
#include <stdlib.h>

#include "core/eplb_int.h"

/* Solves the n x n assignment problem maximising sum gain[i*n + assign[i]] exactly (Hungarian
 * algorithm with potentials, O(n^3)); assign[i] is the column of row i. @return 0 or ENOMEM. */
int eplb__assign_max(const int64_t *gain, int32_t n, int32_t *assign) {
  /* Minimise cost = -gain; rows and columns are 1-based inside, 0 is the virtual start. */
  size_t m = (size_t)n + 1;
  int64_t *u = eplb__calloc(m, sizeof *u), *v = eplb__calloc(m, sizeof *v);
  int64_t *minv = eplb__calloc(m, sizeof *minv);
  int32_t *p = eplb__calloc(m, sizeof *p), *way = eplb__calloc(m, sizeof *way);
  unsigned char *used = eplb__calloc(m, 1);
  int rc = 0;
  if (!u || !v || !minv || !p || !way || !used) {
    rc = eplb__err(EPLB_ENOMEM, "assignment: out of memory");
    goto done;
  }
  for (int32_t i = 1; i <= n; i++) {
    p[0] = i;
    int32_t j0 = 0;
    for (int32_t j = 0; j <= n; j++) {
      minv[j] = INT64_MAX;
      used[j] = 0;
    }
    do {
      used[j0] = 1;
      int32_t i0 = p[j0], j1 = 0;
      int64_t delta = INT64_MAX;
      for (int32_t j = 1; j <= n; j++) {
        if (used[j])
          continue;
        int64_t cur = -gain[(size_t)(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int32_t j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      int32_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  for (int32_t j = 1; j <= n; j++)
    assign[p[j] - 1] = j - 1;
done:
  free(u);
  free(v);
  free(minv);
  free(p);
  free(way);
  free(used);
  return rc;
}
