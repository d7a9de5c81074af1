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
 * rank `root` (MPI_Reduce of uint64 counters with a sum that saturates instead of wrapping) and
 * has root alone write them to
 * `<save_dir>/token_collects_all.json` (EPLB_TOKEN_FILE) in the seed format, atomically: a temp
 * file in save_dir, fsync, rename, fsync of the folder; on failure any existing file is left as
 * it was. Exactly one file is written whatever the number of ranks, also when some ranks recorded
 * nothing. Collective over `comm`: every rank calls it with the same root (roots that differ are
 * EPLB_EINVAL on every rank, checked before any sum); save_dir is read on root only (other ranks
 * may pass NULL) and must be an existing, writable folder.
 * Every collector must have the same number of layers and experts. A NULL collector is the
 * disabled one (token_collects: false): when every rank passes NULL nothing is written and 0 is
 * returned; NULL on some ranks only is EPLB_EINVAL.
 * Errors on any rank (bad arguments, shapes that differ, a bad folder on root, a failed write
 * such as a full disk) reach every rank: all ranks return the same code, and the detail says
 * which rank failed and why. MPI errors are returned as EPLB_ECOMM (the call works on a duplicate
 * of comm with MPI_ERRORS_RETURN; it never aborts). `comm` itself is not modified.
 * @return 0, EPLB_EINVAL, EPLB_ERANGE (a rank's ring sum past 2^64 - 1, or a sum over the ranks
 *         above 2^63 - 1: nothing is written), EPLB_EIO, EPLB_ENOMEM, EPLB_ECOMM. */
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
  int32_t layers_done;    /* layers finished on this rank, 1 .. num_layers */
  int32_t num_layers;     /* L */
  int64_t bytes_sent;     /* by this rank so far, all tensors */
  int64_t bytes_received; /* by this rank so far, all tensors */
  size_t staging_bytes;   /* the staging this migration needs on this rank: its most staged
                             slots in one layer times the bytes of one expert in all tensors
                             (0 out of place) */
} eplb_migrate_info;

/* Called on every rank after each layer; must not call MPI on the migration's communicator. */
typedef void (*eplb_migrate_progress)(const eplb_migrate_info *info, void *user);

/* Moves expert weights from the old layout to plan->to, collectively over `comm`, whose rank d
 * is device d of the plan (the communicator's size must be the plan's G and `rank` this process's
 * rank in it). All n_tensors tensors move together, layer by layer (a layer's buffers may be
 * anywhere; layers are moved one after the other).
 *
 * In a layer, each rank posts the receives it can (MPI_Irecv, ascending slot order) and its
 * sends (MPI_Isend, ascending destination slot order), makes its local copies, and completes
 * the rest as messages complete (MPI_Waitsome); DUP copies come last. Out of place, every
 * receive lands directly in dst and no staging is used. In place, a slot is overwritten only
 * after every read of its old content is done (its sends completed, its local copies made):
 * such a slot gets its receive posted (or its local copy made) when that is done, directly into
 * place. Only the slots plan->staged marks (one per cycle of slots waiting for each other, e.g.
 * a swap, and slots that would wait long; see eplb_transfer_staging_slots) have their old
 * content copied to the staging area at the start of the layer, sized for this rank's largest
 * layer; their sends and local copies read it from there, so they are free at once. The order
 * only depends on the plan and the completions, and no chain of waits closes on itself, so no
 * rank count deadlocks.
 * Messages are tagged slot * n_tensors + tensor within a layer (a pair of ranks matches a
 * layer's messages before the next layer's: MPI keeps their order); the largest tag must not
 * exceed the communicator's MPI_TAG_UB (at least 32767).
 *
 * Errors: MPI errors are returned, never aborted on: the work runs on a duplicate of `comm`
 * with MPI_ERRORS_RETURN. Argument checks are agreed on by all ranks before any transfer (one
 * MPI_Allreduce), so a bad argument on one rank makes every rank return the same code without
 * moving anything. Then every rank must hold the same inputs: L, G, both slot counts,
 * n_tensors, each tensor's expert_bytes and the plan's transfers (a checksum of every xfer and
 * staging mark) are compared in one more MPI_Allreduce; ranks whose plans or sizes differ
 * (say, one built its plan from another `to`) all return EPLB_EINVAL instead of waiting for
 * messages that never come. Buffers and strides are each rank's own and may differ.
 * There is no collective per layer: a rank that meets an MPI error in a layer keeps posting
 * every remaining receive and send of the migration (its sends then carry no data, which tells
 * their receivers it failed; a failed post is retried once) and skips its copies, so no rank is
 * left waiting as long as MPI still delivers messages; one MPI_Allreduce at the end gives every
 * rank the same result.
 * Costs per call: an MPI_Comm_dup, three MPI_Allreduce, one pass over the plan (its checksum)
 * and the staging allocation; use a workspace (eplb_mpi_migrate_ws) to pay the first and the
 * last once for many migrations.
 * progress may be NULL.
 * @return 0 on every rank, or the same negative code on every rank: EPLB_EINVAL (bad argument:
 *         NULL, sizes, rank, in place with different slot counts, strides; plans or tensor
 *         sizes that differ between ranks), EPLB_ERANGE (a tag or an expert size beyond MPI's
 *         limits), EPLB_ENOMEM, EPLB_ECOMM (an MPI call failed on some rank, or a peer sent
 *         no data; the detail names the rank and, there, MPI's message; the tensors' contents
 *         are then undefined). */
EPLB_API int eplb_mpi_migrate(MPI_Comm comm, const eplb_transfer *plan, int rank,
                              const eplb_tensor *tensors, size_t n_tensors,
                              eplb_migrate_progress progress, void *user);

/* A reusable migration workspace: a duplicate of a communicator (MPI_ERRORS_RETURN) and buffers
 * (staging, requests) kept from one migration to the next, grown when a migration needs more.
 * Use one for repeated re-balancing; one migration at a time per workspace. */
typedef struct eplb_migrate_ws eplb_migrate_ws;

/* Creates a workspace for migrations over `comm` (collective over comm: every rank calls it;
 * `comm` itself is not modified). Nothing is allocated for staging until a migration needs it.
 * @return 0 on every rank, or the same code on every rank: EPLB_EINVAL (NULL out,
 *         MPI_COMM_NULL), EPLB_ENOMEM, EPLB_ECOMM. *out is NULL on failure; free with
 *         eplb_mpi_migrate_ws_free(). */
EPLB_API int eplb_mpi_migrate_ws_create(MPI_Comm comm, eplb_migrate_ws **out);

/* eplb_mpi_migrate() on a workspace's communicator (same contract; this process's rank in it is
 * the plan's device): the staging and request buffers are reused, so a repeated migration pays
 * no allocation and no MPI_Comm_dup. @return as eplb_mpi_migrate(); EPLB_EINVAL for a NULL ws
 * (on that rank only). */
EPLB_API int eplb_mpi_migrate_ws(eplb_migrate_ws *ws, const eplb_transfer *plan,
                                 const eplb_tensor *tensors, size_t n_tensors,
                                 eplb_migrate_progress progress, void *user);

/* Bytes of staging the workspace holds now (the most any migration on it needed so far);
 * 0 for NULL. */
EPLB_API size_t eplb_mpi_migrate_ws_staging_bytes(const eplb_migrate_ws *ws);

/* Releases a workspace and frees its communicator (MPI_Comm_free: call it on every rank).
 * NULL is a no-op. */
EPLB_API void eplb_mpi_migrate_ws_free(eplb_migrate_ws *ws);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MPI_H */
