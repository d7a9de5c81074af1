/* gather.c - step 1 over MPI: sum every rank's counters on one rank, which writes the file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mpi/mpi_int.h"

/* Bytes of a failure's detail message sent to the other ranks. */
#define DETAIL_MAX 512

/* What one gather needs on this rank. */
typedef struct gather_state {
  MPI_Comm comm;  /* private duplicate, MPI_ERRORS_RETURN */
  int rank;
  int size;
  int root;
  size_t cells;   /* layers x experts */
  uint64_t *send; /* this rank's ring sum */
  uint64_t *recv; /* root: the sum over ranks */
  MPI_Op sum;     /* saturating sum of uint64 counters (see saturating_sum) */
} gather_state;

/* ---- agreeing on errors ---- */

/* Sends the detail of `from`'s failure to every rank; the others record it as their own detail,
 * prefixed with the failing rank, so every rank returns the same code with the same reason. */
static int share_failure(const gather_state *g, int rc, int from) {
  char msg[DETAIL_MAX];
  if (g->rank == from)
    snprintf(msg, sizeof msg, "%s", eplb_last_error());
  if (MPI_Bcast(msg, DETAIL_MAX, MPI_CHAR, from, g->comm) != MPI_SUCCESS)
    snprintf(msg, sizeof msg, "%s", eplb_strerror(rc));
  msg[DETAIL_MAX - 1] = '\0';
  if (g->rank == from)
    return rc;
  return eplb__err(rc, "gather: rank %d: %s", from, msg);
}

/* Makes every rank learn the worst local code (the most negative, lowest rank on ties) with its
 * detail. @return 0 when every rank succeeded, else that code on every rank. */
static int agree(const gather_state *g, int local_rc) {
  int in[2] = {local_rc, g->rank}, out[2] = {0, 0};
  int mrc = MPI_Allreduce(in, out, 1, MPI_2INT, MPI_MINLOC, g->comm);
  if (mrc != MPI_SUCCESS)
    return eplb__mpi_err(mrc, "gather: agreeing on errors");
  if (out[0] == 0)
    return 0;
  return share_failure(g, out[0], out[1]);
}

/* Checks that every rank names the same root and that the shapes of every rank's collector
 * agree (one MPI_Allreduce of each value and its negation: MIN of both gives the range), and
 * whether collection is enabled. Runs after agree(), so every root is in 0..size-1 here.
 * @return 1 when every rank is enabled, 0 when none is, or a negative code. */
static int agree_shape(const gather_state *g, const eplb_collector *c) {
  int32_t layers = 0, experts = 0;
  eplb_collector_dims(c, &layers, &experts, NULL);
  int on = c != NULL;
  int in[8] = {layers, -layers, experts, -experts, on, -on, g->root, -g->root}, out[8];
  int mrc = MPI_Allreduce(in, out, 8, MPI_INT, MPI_MIN, g->comm);
  if (mrc != MPI_SUCCESS)
    return eplb__mpi_err(mrc, "gather: agreeing on shapes");
  if (out[6] != -out[7])
    return eplb__err(EPLB_EINVAL, "gather: root: the ranks name different roots (%d..%d); "
                     "every rank must pass the same one", out[6], -out[7]);
  if (out[4] != -out[5])
    return eplb__err(EPLB_EINVAL, "gather: the collector is NULL (disabled) on some ranks only");
  if (out[0] != -out[1] || out[2] != -out[3])
    return eplb__err(EPLB_EINVAL, "gather: collectors differ in shape across ranks "
                     "(layers %d..%d, experts %d..%d)", out[0], -out[1], out[2], -out[3]);
  return out[4];
}

/* ---- the saturating sum ---- */

/* MPI_User_function of the counters' sum: inout[i] += in[i], clamped at UINT64_MAX, so that a
 * sum past 2^64 - 1 stays detectable (above INT64_MAX) instead of wrapping. Commutative and
 * associative (a clamped sum of non-negative terms is min(true sum, UINT64_MAX)). */
static void saturating_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
  (void)type;
  const uint64_t *a = in;
  uint64_t *b = inout;
  for (int i = 0; i < *len; i++)
    b[i] = a[i] > UINT64_MAX - b[i] ? UINT64_MAX : b[i] + a[i];
}

/* ---- local preparation ---- */

/* Checks on root that save_dir is an existing, writable folder. */
static int check_folder(const char *save_dir) {
  struct stat st;
  if (!save_dir || !*save_dir)
    return eplb__err(EPLB_EINVAL, "gather: no save folder (token_save_path) given on root");
  if (stat(save_dir, &st) != 0)
    return eplb__err(EPLB_EIO, "%s: token_save_path: %s", save_dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return eplb__err(EPLB_EIO, "%s: token_save_path: not a folder", save_dir);
  if (access(save_dir, W_OK | X_OK) != 0)
    return eplb__err(EPLB_EIO, "%s: token_save_path: not writable: %s", save_dir,
                     strerror(errno));
  return 0;
}

/* Does every check that needs no other rank and fills the send buffer. */
static int prepare(gather_state *g, const eplb_collector *c, const char *save_dir) {
  int mrc = MPI_Op_create(saturating_sum, 1, &g->sum);
  if (mrc != MPI_SUCCESS) {
    g->sum = MPI_OP_NULL;
    return eplb__mpi_err(mrc, "gather: creating the sum operation");
  }
  if (g->root < 0 || g->root >= g->size)
    return eplb__err(EPLB_EINVAL, "gather: root %d outside 0..%d", g->root, g->size - 1);
  if (!c)
    return 0;
  int32_t layers = 0, experts = 0;
  eplb_collector_dims(c, &layers, &experts, NULL);
  g->cells = (size_t)layers * (size_t)experts;
  if (g->rank == g->root) {
    int rc = check_folder(save_dir);
    if (rc != 0)
      return rc;
    g->recv = eplb__mallocn(g->cells, sizeof *g->recv);
    if (!g->recv)
      return eplb__err(EPLB_ENOMEM, "gather: out of memory");
  }
  g->send = eplb__mallocn(g->cells, sizeof *g->send);
  if (!g->send)
    return eplb__err(EPLB_ENOMEM, "gather: out of memory");
  return eplb_collector_counts(c, EPLB_WINDOW_ALL, g->send, g->cells);
}

/* ---- reduce and write ---- */

/* Sums the send buffers on root with the saturating sum, in pieces of at most INT_MAX
 * counters. */
static int reduce(const gather_state *g) {
  for (size_t at = 0; at < g->cells;) {
    size_t n = g->cells - at < (size_t)INT_MAX ? g->cells - at : (size_t)INT_MAX;
    int mrc = MPI_Reduce(g->send + at, g->recv ? g->recv + at : NULL, (int)n, MPI_UINT64_T,
                         g->sum, g->root, g->comm);
    if (mrc != MPI_SUCCESS)
      return eplb__mpi_err(mrc, "gather: summing counts");
    at += n;
  }
  return 0;
}

/* Checks on root that every summed counter fits the file's int64 counts (a saturated sum is
 * above INT64_MAX too). */
static int check_range(const gather_state *g, const eplb_collector *c) {
  int32_t experts = 0;
  eplb_collector_dims(c, NULL, &experts, NULL);
  for (size_t i = 0; i < g->cells; i++)
    if (g->recv[i] > (uint64_t)INT64_MAX)
      return eplb__err(EPLB_ERANGE, "gather: layer %zu: expert %zu: the sum over %d ranks "
                       "passes 2^63-1", i / (size_t)experts, i % (size_t)experts, g->size);
  return 0;
}

/* Writes the summed counts (root) to <save_dir>/token_collects_all.json through the core. */
static int write_sum(const gather_state *g, const eplb_collector *c, const char *save_dir) {
  int32_t layers = 0, experts = 0;
  eplb_collector_dims(c, &layers, &experts, NULL);
  size_t dlen = strlen(save_dir);
  int slash = save_dir[dlen - 1] != '/';
  size_t path_size = dlen + (size_t)slash + sizeof EPLB_TOKEN_FILE;
  char *path = malloc(path_size);
  eplb_collector *sum = eplb_collector_create(layers, experts, 1);
  eplb_loads *loads = NULL;
  int rc = 0;
  if (!path || !sum)
    rc = eplb__err(EPLB_ENOMEM, "gather: out of memory");
  for (int32_t l = 0; rc == 0 && l < layers; l++)
    rc = eplb_collector_add_counts(sum, l, g->recv + (size_t)l * (size_t)experts);
  if (rc == 0)
    rc = eplb_collector_loads(sum, EPLB_WINDOW_ALL, &loads);
  if (rc == 0) {
    snprintf(path, path_size, "%s%s%s", save_dir, slash ? "/" : "", EPLB_TOKEN_FILE);
    rc = eplb_loads_write(loads, path);
  }
  eplb_loads_free(loads);
  eplb_collector_free(sum);
  free(path);
  return rc;
}

/* Root tells every rank how its write went. */
static int share_outcome(const gather_state *g, int root_rc) {
  int rc = root_rc;
  int mrc = MPI_Bcast(&rc, 1, MPI_INT, g->root, g->comm);
  if (mrc != MPI_SUCCESS)
    return eplb__mpi_err(mrc, "gather: sharing the outcome");
  return rc == 0 ? 0 : share_failure(g, rc, g->root);
}

/* ---- public ---- */

/* Runs the steps of the gather on an open duplicate communicator. */
static int gather(gather_state *g, const eplb_collector *c, const char *save_dir) {
  int rc = agree(g, prepare(g, c, save_dir));
  if (rc != 0)
    return rc;
  int enabled = agree_shape(g, c);
  if (enabled <= 0)
    return enabled;
  int reduce_rc = reduce(g);
  int root_rc = reduce_rc;
  if (g->rank == g->root && root_rc == 0)
    root_rc = check_range(g, c);
  if (g->rank == g->root && root_rc == 0)
    root_rc = write_sum(g, c, save_dir);
  rc = share_outcome(g, root_rc);
  /* A rank whose own reduce failed reports that, even if root saw no error. */
  return rc == 0 ? reduce_rc : rc;
}

int eplb_mpi_gather(const eplb_collector *c, MPI_Comm comm, int root, const char *save_dir) {
  if (comm == MPI_COMM_NULL)
    return eplb__err(EPLB_EINVAL, "gather: MPI_COMM_NULL");
  gather_state g = {.comm = MPI_COMM_NULL, .root = root, .sum = MPI_OP_NULL};
  int mrc = MPI_Comm_dup(comm, &g.comm);
  if (mrc != MPI_SUCCESS)
    return eplb__mpi_err(mrc, "gather: duplicating the communicator");
  int rc = 0;
  mrc = MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
  if (mrc == MPI_SUCCESS)
    mrc = MPI_Comm_rank(g.comm, &g.rank);
  if (mrc == MPI_SUCCESS)
    mrc = MPI_Comm_size(g.comm, &g.size);
  if (mrc != MPI_SUCCESS)
    rc = eplb__mpi_err(mrc, "gather: setting up the communicator");
  else
    rc = gather(&g, c, save_dir);
  free(g.send);
  free(g.recv);
  if (g.sum != MPI_OP_NULL)
    MPI_Op_free(&g.sum);
  MPI_Comm_free(&g.comm);
  return rc;
}
