/* migrate_layer.c - moves one layer of a transfer plan on one rank: receives, sends, local copies
 * and, in place, each slot filled as soon as its old content has been read (sent and copied),
 * driven by message completions. A staged slot's old content is copied to the staging area
 * first; its sends and local copies read it from there, so the slot is free at once. */
#include <string.h>

#include "mpi/migrate_int.h"

eplb__migrate_fault eplb__migrate_fault_at = {-1, -1, -1};

/* ---- addresses ---- */

/* Address of local slot `i` of tensor t in layer l, old layout. */
static unsigned char *old_slot(const eplb__migrator *m, size_t t, int32_t l, int32_t i) {
  const eplb_tensor *x = &m->tensors[t];
  return (unsigned char *)x->src[l] + (size_t)i * x->src_stride;
}

/* Address of local slot `i` of tensor t in layer l, new layout (the old buffer in place). */
static unsigned char *new_slot(const eplb__migrator *m, size_t t, int32_t l, int32_t i) {
  const eplb_tensor *x = &m->tensors[t];
  if (m->in_place)
    return (unsigned char *)x->src[l] + (size_t)i * x->src_stride;
  return (unsigned char *)x->dst[l] + (size_t)i * x->dst_stride;
}

/* Address of tensor t's part of staged copy k (tensors are packed one after the other). */
static unsigned char *staged(const eplb__migrator *m, size_t t, int32_t k) {
  size_t off = (size_t)k * m->copy_bytes;
  for (size_t j = 0; j < t; j++)
    off += m->tensors[j].expert_bytes;
  return m->ws->staging + off;
}

/* Whether old local slot i is staged (only in place, where old and new slots coincide). */
static int is_staged(const eplb__migrator *m, int32_t i) {
  return m->in_place && m->stage_idx[i] >= 0;
}

/* Address of the old content of local slot `i` of tensor t in layer l: its staged copy when
 * staged, else the slot itself. */
static unsigned char *old_content(const eplb__migrator *m, size_t t, int32_t l, int32_t i) {
  return is_staged(m, i) ? staged(m, t, m->stage_idx[i]) : old_slot(m, t, l, i);
}

/* ---- bookkeeping ---- */

/* Records the first MPI error of this rank (later ones keep the first detail). */
static void note_mpi(eplb__migrator *m, int mpi_rc, const char *what) {
  if (!m->rc)
    m->rc = eplb__mpi_err(mpi_rc, what);
}

/* The peer to post to: a rank outside the communicator when the test hook fires on this op. */
static int peer_of(eplb__migrator *m, int op, int peer) {
  if (m->fault_op != op)
    return peer;
  m->fault_op = -1;
  return m->ws->size;
}

/* Whether the new slot i may be written: in place, once every read of its old content is done. */
static int slot_free(const eplb__migrator *m, int32_t i) {
  return !m->in_place || m->readers[i] == 0;
}

/* Counts one read of old slot i as done (a staged slot's reads do not count: it was free from
 * the start); a slot that becomes free joins the work list, once. */
static void read_done(eplb__migrator *m, int32_t i) {
  if (m->in_place && !is_staged(m, i) && --m->readers[i] == 0)
    m->ws->work[m->n_work++] = i;
}

/* Where copy_expert() reads or writes. */
enum where { OLD_SLOT, OLD_CONTENT, NEW_SLOT, STAGED };

/* Address of place `i` of tensor t in layer l: a slot (old, new, or the old content) or a copy
 * in the staging area. */
static unsigned char *addr(const eplb__migrator *m, enum where w, size_t t, int32_t l, int32_t i) {
  switch (w) {
  case OLD_SLOT:
    return old_slot(m, t, l, i);
  case OLD_CONTENT:
    return old_content(m, t, l, i);
  case NEW_SLOT:
    return new_slot(m, t, l, i);
  default:
    return staged(m, t, i);
  }
}

/* Copies one expert, every tensor, from place (wf, fi) to place (wt, ti), unless this rank
 * failed (then contents no longer matter and it only keeps the messages going). */
static void copy_expert(eplb__migrator *m, int32_t l, enum where wt, int32_t ti, enum where wf,
                        int32_t fi) {
  if (m->rc)
    return;
  for (size_t t = 0; t < m->n_tensors; t++)
    memcpy(addr(m, wt, t, l, ti), addr(m, wf, t, l, fi), m->tensors[t].expert_bytes);
}

/* Adds a posted request to the layer's table. */
static void add_req(eplb__migrator *m, int32_t slot, int send) {
  m->ws->req_slot[m->nreq] = slot;
  m->ws->req_send[m->nreq] = (uint8_t)send;
  m->nreq++, m->active++;
}

/* ---- posting ---- */

/* Posts the receives of new local slot i, into the slot. A failed post is retried once; a second
 * failure gives the receive up. */
static void post_recv(eplb__migrator *m, int32_t l, int32_t i) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l) + (size_t)m->rank * m->St + i;
  m->flags[i] |= EPLB__SLOT_POSTED;
  for (size_t t = 0; t < m->n_tensors; t++) {
    void *buf = new_slot(m, t, l, i);
    int count = (int)m->tensors[t].expert_bytes;
    int tag = (int)((size_t)x->dst_slot * m->n_tensors + t);
    MPI_Request *q = &m->ws->req[m->nreq];
    int rc = MPI_Irecv(buf, count, MPI_BYTE, peer_of(m, 1, x->src_rank), tag, m->ws->comm, q);
    if (rc != MPI_SUCCESS) {
      note_mpi(m, rc, "migrate: MPI_Irecv");
      rc = MPI_Irecv(buf, count, MPI_BYTE, x->src_rank, tag, m->ws->comm, q);
    }
    if (rc == MPI_SUCCESS)
      add_req(m, i, 0);
  }
}

/* Posts the sends for new slot s of another rank from this rank's old content. After an error the
 * sends carry no data, which tells the receiver that this rank failed. A failed post is retried
 * once without data; a second failure gives it up. */
static void post_send(eplb__migrator *m, int32_t l, const eplb_xfer *x) {
  int32_t i = x->src_slot - m->rank * m->Sf;
  int peer = x->dst_slot / m->St;
  for (size_t t = 0; t < m->n_tensors; t++) {
    void *buf = old_content(m, t, l, i);
    int count = m->rc ? 0 : (int)m->tensors[t].expert_bytes;
    int tag = (int)((size_t)x->dst_slot * m->n_tensors + t);
    MPI_Request *q = &m->ws->req[m->nreq];
    int rc = MPI_Isend(buf, count, MPI_BYTE, peer_of(m, 0, peer), tag, m->ws->comm, q);
    if (rc != MPI_SUCCESS) {
      note_mpi(m, rc, "migrate: MPI_Isend");
      count = 0;
      rc = MPI_Isend(buf, count, MPI_BYTE, peer, tag, m->ws->comm, q);
    }
    if (rc == MPI_SUCCESS) {
      add_req(m, i, 1);
      m->info.bytes_sent += count;
    } else {
      read_done(m, i);
    }
  }
}

/* ---- filling slots ---- */

/* Fills new local slot i, which may now be written: posts its receive, or makes its local copy
 * (which frees the source slot when it was its last read), or copies the kept slot (out of
 * place). */
static void fill(eplb__migrator *m, int32_t l, int32_t i) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l) + (size_t)m->rank * m->St + i;
  int32_t *f = &m->flags[i];
  if (*f & EPLB__SLOT_POSTED)
    return;
  *f |= EPLB__SLOT_POSTED;
  if (x->kind == EPLB_XFER_RECV) {
    post_recv(m, l, i);
  } else if (x->kind == EPLB_XFER_LOCAL) {
    int32_t src = x->src_slot - m->rank * m->Sf;
    copy_expert(m, l, NEW_SLOT, i, OLD_CONTENT, src);
    read_done(m, src);
  } else if (x->kind == EPLB_XFER_KEEP && !m->in_place) {
    copy_expert(m, l, NEW_SLOT, i, OLD_SLOT, x->src_slot - m->rank * m->Sf);
  }
}

/* Fills the slots on the work list until it is empty. */
static void run_work(eplb__migrator *m, int32_t l) {
  while (m->n_work > 0)
    fill(m, l, m->ws->work[--m->n_work]);
}

/* Handles one completed request (status st, MPI error err): a send counts as a read of its old
 * slot; a receive with no data means its sender failed. */
static void complete(eplb__migrator *m, int32_t l, int q, MPI_Status *st, int err) {
  int32_t i = m->ws->req_slot[q];
  m->active--;
  if (err != MPI_SUCCESS)
    note_mpi(m, err, "migrate: a message");
  if (m->ws->req_send[q]) {
    read_done(m, i);
    return;
  }
  int count = 0;
  if (err == MPI_SUCCESS && MPI_Get_count(st, MPI_BYTE, &count) == MPI_SUCCESS && count == 0 &&
      !m->rc) {
    const eplb_xfer *x = eplb_transfer_layer(m->plan, l) + (size_t)m->rank * m->St + i;
    m->rc = eplb__err(EPLB_ECOMM, "migrate: layer %d: rank %d failed (it sent no data for slot %d)",
                      l, x->src_rank, x->dst_slot);
  }
  m->info.bytes_received += count;
}

/* Waits for every posted request, handling completions as they come. */
static void wait_layer(eplb__migrator *m, int32_t l) {
  eplb_migrate_ws *ws = m->ws;
  while (m->active > 0) {
    int n = 0;
    int rc = MPI_Waitsome((int)m->nreq, ws->req, &n, ws->done, ws->status);
    if ((rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) || n == MPI_UNDEFINED) {
      /* The requests' states are unknown: wait for all of them and give their slots up. */
      note_mpi(m, rc != MPI_SUCCESS ? rc : MPI_ERR_INTERN, "migrate: MPI_Waitsome");
      MPI_Waitall((int)m->nreq, ws->req, MPI_STATUSES_IGNORE);
      m->active = 0;
      return;
    }
    for (int j = 0; j < n; j++)
      complete(m, l, ws->done[j], &ws->status[j],
               rc == MPI_ERR_IN_STATUS ? ws->status[j].MPI_ERROR : MPI_SUCCESS);
    run_work(m, l);
  }
}

/* ---- one layer ---- */

/* Resets the per-slot state of layer l: staging places, then the reads of each old slot that is
 * not staged (a staged slot's content is read from the staging area). */
static void setup(eplb__migrator *m, int32_t l) {
  const eplb_transfer *plan = m->plan;
  const eplb_xfer *x = eplb_transfer_layer(plan, l);
  const uint8_t *stage = plan->staged + (size_t)l * (size_t)plan->to_slots + (size_t)m->rank * m->St;
  int32_t k = 0;
  for (int32_t i = 0; i < m->St; i++) {
    m->flags[i] = 0;
    m->stage_idx[i] = m->in_place && stage[i] ? k++ : -1;
  }
  memset(m->readers, 0, (size_t)m->Sf * sizeof *m->readers);
  for (int32_t s = 0; s < plan->to_slots && m->in_place; s++) {
    int32_t src = x[s].src_slot - m->rank * m->Sf;
    if (x[s].kind == EPLB_XFER_RECV && x[s].src_rank == m->rank && m->stage_idx[src] < 0)
      m->readers[src] += (int32_t)m->n_tensors;
    else if (x[s].kind == EPLB_XFER_LOCAL && s / m->St == m->rank && m->stage_idx[src] < 0)
      m->readers[src]++;
  }
  m->n_work = 0, m->nreq = 0, m->active = 0;
  m->fault_op = eplb__migrate_fault_at.rank == m->rank && eplb__migrate_fault_at.layer == l
                    ? eplb__migrate_fault_at.op
                    : -1;
}

/* Posts the sends of layer l whose old content is staged (staged != 0) or not. */
static void post_sends(eplb__migrator *m, int32_t l, int staged_ones) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l);
  for (int32_t s = 0; s < m->plan->to_slots; s++)
    if (x[s].kind == EPLB_XFER_RECV && x[s].src_rank == m->rank &&
        is_staged(m, x[s].src_slot - m->rank * m->Sf) == staged_ones)
      post_send(m, l, &x[s]);
}

/* Moves layer l (see migrate_int.h): receives into free slots, sends from slots that are not
 * staged, the staged copies (while those messages fly), sends from them, then every free slot
 * is filled, and the rest as sends complete. */
void eplb__migrate_layer(eplb__migrator *m, int32_t l) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l);
  int32_t first = m->rank * m->St;
  setup(m, l);
  for (int32_t i = m->St - 1; i >= 0; i--) /* free from the start; the lowest pops first */
    if (slot_free(m, i))
      m->ws->work[m->n_work++] = i;
  for (int32_t i = 0; i < m->St; i++) /* receives first, so that messages find them */
    if (x[first + i].kind == EPLB_XFER_RECV && m->stage_idx[i] < 0 && slot_free(m, i))
      fill(m, l, i);
  post_sends(m, l, 0);
  for (int32_t i = 0; i < m->St; i++)
    if (m->stage_idx[i] >= 0)
      copy_expert(m, l, STAGED, m->stage_idx[i], OLD_SLOT, i);
  post_sends(m, l, 1);
  run_work(m, l);
  wait_layer(m, l);
  /* A receive never posted would leave its sender waiting: post what is left (only after an
   * error) and wait for it. */
  for (int32_t i = 0; i < m->St; i++)
    if (x[first + i].kind == EPLB_XFER_RECV && !(m->flags[i] & EPLB__SLOT_POSTED)) {
      if (!m->rc)
        m->rc = eplb__err(EPLB_ECOMM, "migrate: layer %d: slot %d was never free", l, first + i);
      post_recv(m, l, i);
    }
  if (m->active > 0)
    MPI_Waitall((int)m->nreq, m->ws->req, MPI_STATUSES_IGNORE);
  for (int32_t i = 0; i < m->St && !m->rc; i++)
    if (x[first + i].kind == EPLB_XFER_DUP)
      copy_expert(m, l, NEW_SLOT, i, NEW_SLOT, x[first + i].src_slot - first);
}
