/* mpi_common.c - helpers shared by the MPI module. */
#include "mpi/mpi_int.h"

int eplb__mpi_err(int mpi_rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(mpi_rc, msg, &len) != MPI_SUCCESS)
    len = 0;
  msg[len] = '\0';
  return eplb__err(EPLB_ECOMM, "%s: MPI error %d: %s", what, mpi_rc, msg);
}
