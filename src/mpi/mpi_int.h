/* mpi_int.h - internal helpers of the MPI module (not installed). */
#ifndef EPLB_MPI_INT_H
#define EPLB_MPI_INT_H

#include "core/eplb_int.h"
#include "eplb_mpi.h"

/* Turns an MPI error code into EPLB_ECOMM with MPI's own message in the detail. */
int eplb__mpi_err(int mpi_rc, const char *what);

#endif /* EPLB_MPI_INT_H */
