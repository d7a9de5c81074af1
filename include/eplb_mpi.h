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

/* ---- step 3: migrate ---- */

#ifdef __cplusplus
}
#endif

#endif /* EPLB_MPI_H */
