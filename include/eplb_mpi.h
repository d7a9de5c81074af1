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

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MPI_H */
