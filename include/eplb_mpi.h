/* eplb_mpi.h - the MPI module of eplb (libeplb_mpi): gathering counts (step 1) and migrating
 * expert weights between ranks (step 3). Link with -leplb_mpi -leplb and your MPI.
 * Every function returns 0 or a negative enum eplb_err, never aborts, and reports the same result
 * on every rank of the communicator (collective functions). */
#ifndef EPLB_MPI_H
#define EPLB_MPI_H

#include <mpi.h>

#include "eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- step 1: gather ---- */

/* Sums the counts of every rank's collector (the sum of each one's ring, see eplb/collect.h) on
 * rank `root` (MPI_Reduce of uint64 counters) and has root alone write them to
 * `<save_dir>/token_collects_all.json` (EPLB_TOKEN_FILE) in the seed format, atomically: a temp
 * file in save_dir, fsync, rename, fsync of the folder; on failure any existing file is left as
 * it was. Exactly one file is written whatever the number of ranks, also when some ranks recorded
 * nothing. Collective over `comm`: every rank calls it with the same root; save_dir is read on
 * root only (other ranks may pass NULL) and must be an existing, writable folder.
 * Every collector must have the same number of layers and experts. A NULL collector is the
 * disabled one (token_collects: false): when every rank passes NULL nothing is written and 0 is
 * returned; NULL on some ranks only is EPLB_EINVAL.
 * Errors on any rank (bad arguments, shapes that differ, a bad folder on root, a failed write
 * such as a full disk) reach every rank: all ranks return the same code, and the detail says
 * which rank failed and why. MPI errors are returned as EPLB_ECOMM (the call works on a duplicate
 * of comm with MPI_ERRORS_RETURN; it never aborts). `comm` itself is not modified.
 * @return 0, EPLB_EINVAL, EPLB_ERANGE (a sum above 2^63 - 1), EPLB_EIO, EPLB_ENOMEM,
 *         EPLB_ECOMM. */
EPLB_API int eplb_mpi_gather(const eplb_collector *c, MPI_Comm comm, int root,
                             const char *save_dir);

/* ---- step 3: migrate ---- */

/* One weight tensor that moves with the experts (w13, w2, their quantization scales...): on
 * this rank, per layer, an array of slots, each holding one expert's `expert_bytes` bytes. */
typedef struct eplb_tensor {
  void *const *src;    /* [L] this rank's slot 0 of the tensor in each layer (old layout) */
  void *const *dst;    /* [L] slot 0 in the new layout (out of place, must not overlap src);
                          NULL: move in place within src (then the old and new layouts must
                          have the same slot count) */
  size_t expert_bytes; /* bytes of one expert copy, 1 .. INT_MAX */
  size_t src_stride;   /* bytes from one local slot to the next in src, >= expert_bytes */
  size_t dst_stride;   /* the same in dst (unused in place) */
} eplb_tensor;

/* What eplb_mpi_migrate() reports to its progress callback after each layer. */
typedef struct eplb_migrate_info {
  int32_t layers_done;    /* layers finished, 1 .. num_layers */
  int32_t num_layers;     /* L */
  int64_t bytes_sent;     /* by this rank so far, all tensors */
  int64_t bytes_received; /* by this rank so far, all tensors */
  size_t staging_bytes;   /* the staging area this rank allocated (0 out of place) */
} eplb_migrate_info;

/* Called on every rank after each layer; must not call MPI on the migration's communicator. */
typedef void (*eplb_migrate_progress)(const eplb_migrate_info *info, void *user);

/* Moves expert weights from the old layout to plan->to, collectively over `comm`, whose rank d
 * is device d of the plan (the communicator's size must be the plan's G and `rank` this process's
 * rank in it). All n_tensors tensors move together. Layer by layer: RECVs are posted
 * (MPI_Irecv), then sends (MPI_Isend) from the unmodified old slots, KEEP and LOCAL copies are
 * done meanwhile, then everything is waited for, then DUP copies. Every rank posts in ascending
 * slot order; non-blocking posts cannot deadlock at any rank count.
 * Out of place, receives land directly in dst and no staging is used. In place, a receive into
 * a slot whose old content is still needed (sent or copied locally in the same layer) and every
 * local copy go through one staging area sized for this rank's largest layer
 * (eplb_transfer_staging_slots times the bytes of one expert in all tensors); the staged copies
 * are applied after the layer's sends completed, so no slot is overwritten before its old
 * content was sent. Messages are tagged slot * n_tensors + tensor within a layer (layers never
 * overlap in time), which must not exceed the communicator's MPI_TAG_UB (at least 32767).
 * MPI errors are returned, not aborted on: the work runs on a duplicate of `comm` with
 * MPI_ERRORS_RETURN. Argument checks are agreed on by all ranks before any transfer, so a bad
 * argument on one rank makes every rank return the same code without moving anything; the ranks
 * also agree after each layer (one MPI_Allreduce), so all stop after the first failed layer.
 * The staging area is allocated per call and freed before returning.
 * progress may be NULL.
 * @return 0 on every rank, or the same negative code on every rank: EPLB_EINVAL (bad argument:
 *         NULL, sizes, rank, in place with different slot counts, strides), EPLB_ERANGE (a tag
 *         or an expert size beyond MPI's limits), EPLB_ENOMEM, EPLB_ECOMM (an MPI call failed;
 *         the detail has MPI's message; the tensors' contents are then undefined). */
EPLB_API int eplb_mpi_migrate(MPI_Comm comm, const eplb_transfer *plan, int rank,
                              const eplb_tensor *tensors, size_t n_tensors,
                              eplb_migrate_progress progress, void *user);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MPI_H */
