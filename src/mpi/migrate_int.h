/* migrate_int.h - internals of the MPI migration (not installed): the workspace, the state of
 * one migration, the per-layer engine and a fault hook for tests. */
#ifndef EPLB_MIGRATE_INT_H
#define EPLB_MIGRATE_INT_H

#include "mpi/mpi_int.h"

/* A workspace: the duplicate communicator and buffers grown to the largest migration so far. */
struct eplb_migrate_ws {
  MPI_Comm comm;           /* duplicate of the caller's communicator, errors returned */
  int rank, size;
  int tag_ub;              /* the communicator's MPI_TAG_UB */
  unsigned char *staging;  /* staging_cap bytes */
  size_t staging_cap;
  MPI_Request *req;        /* [req_cap] requests of one layer */
  MPI_Status *status;      /* [req_cap] */
  int *done;               /* [req_cap] indices MPI_Waitsome returns */
  int32_t *req_slot;       /* [req_cap] local slot a request reads (send) or fills (receive) */
  uint8_t *req_send;       /* [req_cap] 1 for a send */
  size_t req_cap;
  int32_t *slot_buf;       /* [slot_cap * SLOT_ARRAYS] per-slot state of one layer */
  int32_t *work;           /* [slot_cap] slots freed, waiting to be filled */
  size_t slot_cap;
};

/* Arrays of per-slot state (readers, staging index, flags) in slot_buf. */
#define EPLB__MIGRATE_SLOT_ARRAYS 3

/* State of one migration on one rank. */
typedef struct eplb__migrator {
  eplb_migrate_ws *ws;
  const eplb_transfer *plan;
  const eplb_tensor *tensors;
  size_t n_tensors;
  int rank, in_place;
  int32_t Sf, St;          /* slots per rank, old and new layout */
  size_t copy_bytes;       /* one expert copy in all tensors */
  int rc;                  /* first error met on this rank (0: none); set: drain mode */
  int fault_op;            /* test hook armed for this layer: 0 send, 1 receive, -1 none */
  eplb_migrate_info info;
  /* per-layer state, in ws->slot_buf and ws->work (local slots of this rank) */
  int32_t *readers;        /* [Sf] reads of the old slot not done yet (in place) */
  int32_t *stage_idx;      /* [St] the slot's old content in the staging area, -1 if not staged */
  int32_t *flags;          /* [St] EPLB__SLOT_* bits */
  int32_t n_work;
  size_t nreq, active;     /* requests posted in the layer, not complete yet */
} eplb__migrator;

/* Bits of eplb__migrator.flags. */
#define EPLB__SLOT_POSTED 1 /* the receive or the copy into the slot has been started */

/* Moves layer l on this rank (contract of the order in eplb_mpi.h). Errors are recorded in
 * m->rc, after which the rank drains: it keeps posting the layer's messages (its sends carry no
 * data) and skips copies, so peers are not left waiting. */
void eplb__migrate_layer(eplb__migrator *m, int32_t l);

/* Test hook: the rank `rank` makes its first send (op 0) or receive (op 1) of layer `layer` fail
 * with a real MPI error (a peer outside the communicator). rank -1 (the default) disables it. */
typedef struct eplb__migrate_fault {
  int rank, layer, op;
} eplb__migrate_fault;
extern eplb__migrate_fault eplb__migrate_fault_at;

#endif /* EPLB_MIGRATE_INT_H */
