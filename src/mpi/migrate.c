/* migrate.c - the MPI executor of a transfer plan: moves expert weights between ranks layer by
 * layer with non-blocking point-to-point messages, in place (through staging) or out of place. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_int.h"

/* State of one migration on one rank. */
typedef struct migrator {
  MPI_Comm comm;               /* duplicate of the caller's communicator, errors returned */
  const eplb_transfer *plan;
  const eplb_tensor *tensors;
  size_t n_tensors;
  int rank, in_place;
  int32_t Sf, St;              /* slots per rank, old and new layout */
  size_t copy_bytes;           /* one expert copy in all tensors */
  unsigned char *staging;      /* in place: staging_slots * copy_bytes */
  int32_t *stage_dst;          /* [staging slots] local slot each staged copy goes to */
  MPI_Request *req;            /* [max_req] */
  size_t max_req;
  eplb_migrate_info info;
} migrator;

/* ---- slot addresses ---- */

/* Address of local slot `i` of tensor t in layer l, old layout. */
static unsigned char *old_slot(const migrator *m, size_t t, int32_t l, int32_t i) {
  const eplb_tensor *x = &m->tensors[t];
  return (unsigned char *)x->src[l] + (size_t)i * x->src_stride;
}

/* Address of local slot `i` of tensor t in layer l, new layout (the old buffer in place). */
static unsigned char *new_slot(const migrator *m, size_t t, int32_t l, int32_t i) {
  const eplb_tensor *x = &m->tensors[t];
  if (m->in_place)
    return (unsigned char *)x->src[l] + (size_t)i * x->src_stride;
  return (unsigned char *)x->dst[l] + (size_t)i * x->dst_stride;
}

/* Address of tensor t's part of staged copy k (tensors are packed one after the other). */
static unsigned char *staged(const migrator *m, size_t t, int32_t k) {
  size_t off = (size_t)k * m->copy_bytes;
  for (size_t j = 0; j < t; j++)
    off += m->tensors[j].expert_bytes;
  return m->staging + off;
}

/* ---- checks and setup (local to this rank) ---- */

/* Checks the tensors against the plan; sets m->in_place and m->copy_bytes. */
static int check_tensors(migrator *m) {
  const eplb_transfer *plan = m->plan;
  if (!m->tensors || m->n_tensors < 1)
    return eplb__err(EPLB_EINVAL, "migrate: no tensors");
  m->in_place = m->tensors[0].dst == NULL;
  m->copy_bytes = 0;
  for (size_t t = 0; t < m->n_tensors; t++) {
    const eplb_tensor *x = &m->tensors[t];
    if (!x->src)
      return eplb__err(EPLB_EINVAL, "migrate: tensor %zu: no source", t);
    if ((x->dst == NULL) != m->in_place)
      return eplb__err(EPLB_EINVAL, "migrate: tensor %zu: some tensors move in place and others "
                                    "not", t);
    if (x->expert_bytes < 1 || x->expert_bytes > INT_MAX)
      return eplb__err(EPLB_ERANGE, "migrate: tensor %zu: expert_bytes %zu outside 1..%d", t,
                       x->expert_bytes, INT_MAX);
    if (x->src_stride < x->expert_bytes || (!m->in_place && x->dst_stride < x->expert_bytes))
      return eplb__err(EPLB_EINVAL, "migrate: tensor %zu: a stride is below expert_bytes %zu", t,
                       x->expert_bytes);
    for (int32_t l = 0; l < plan->num_layers; l++)
      if (!x->src[l] || (!m->in_place && !x->dst[l]))
        return eplb__err(EPLB_EINVAL, "migrate: tensor %zu: layer %d: NULL buffer", t, l);
    if (m->copy_bytes > SIZE_MAX - x->expert_bytes)
      return eplb__err(EPLB_ERANGE, "migrate: tensor %zu: sizes overflow", t);
    m->copy_bytes += x->expert_bytes;
  }
  if (m->in_place && plan->from_slots != plan->to_slots)
    return eplb__err(EPLB_EINVAL, "migrate: in place needs equal slot counts (old %d, new %d)",
                     plan->from_slots, plan->to_slots);
  return 0;
}

/* Checks the communicator's size, the rank and the tag range. */
static int check_comm(migrator *m) {
  int size = 0, me = -1, flag = 0;
  int *tag_ub = NULL;
  int rc = MPI_Comm_size(m->comm, &size);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_rank(m->comm, &me);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_get_attr(m->comm, MPI_TAG_UB, &tag_ub, &flag);
  if (rc != MPI_SUCCESS)
    return eplb__mpi_err(rc, "migrate: communicator");
  if (size != m->plan->num_gpus)
    return eplb__err(EPLB_EINVAL, "migrate: the communicator has %d ranks but the plan %d devices",
                     size, m->plan->num_gpus);
  if (me != m->rank)
    return eplb__err(EPLB_EINVAL, "migrate: rank %d given, but this process is rank %d", m->rank,
                     me);
  long long max_tag = (long long)m->plan->to_slots * (long long)m->n_tensors - 1;
  if (!flag || !tag_ub || max_tag > (long long)*tag_ub)
    return eplb__err(EPLB_ERANGE, "migrate: %d slots x %zu tensors need tags up to %lld, above "
                                  "MPI_TAG_UB %d",
                     m->plan->to_slots, m->n_tensors, max_tag, flag && tag_ub ? *tag_ub : 0);
  return 0;
}

/* Allocates the staging area (in place) and the request array, both sized for the largest
 * layer of this rank. */
static int alloc_buffers(migrator *m) {
  const eplb_transfer *plan = m->plan;
  int32_t stage = 0;
  size_t msgs = 0;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    const eplb_xfer *x = eplb_transfer_layer(plan, l);
    size_t n = 0;
    for (int32_t s = 0; s < plan->to_slots; s++)
      if (x[s].kind == EPLB_XFER_RECV && (x[s].src_rank == m->rank || s / m->St == m->rank))
        n++;
    if (n > msgs)
      msgs = n;
    int32_t k = m->in_place ? eplb_transfer_staging_slots(plan, l, m->rank) : 0;
    if (k > stage)
      stage = k;
  }
  m->max_req = msgs * m->n_tensors;
  m->req = eplb__mallocn(m->max_req, sizeof *m->req);
  m->stage_dst = eplb__mallocn((size_t)stage, sizeof *m->stage_dst);
  m->info.staging_bytes = (size_t)stage * m->copy_bytes;
  if (stage > 0 && m->copy_bytes > SIZE_MAX / (size_t)stage)
    return eplb__err(EPLB_ENOMEM, "migrate: staging of %d copies overflows", stage);
  m->staging = eplb__mallocn((size_t)stage, m->copy_bytes);
  if (!m->req || !m->stage_dst || !m->staging)
    return eplb__err(EPLB_ENOMEM, "migrate: cannot allocate %zu bytes of staging",
                     m->info.staging_bytes);
  return 0;
}

/* ---- one layer ---- */

/* Posts this rank's receives of layer l; staged ones record their slot in stage_dst[*k]. */
static int post_receives(migrator *m, int32_t l, size_t *nreq, int32_t *k) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l);
  const uint8_t *needed = m->plan->needed + (size_t)l * (size_t)m->plan->from_slots;
  for (int32_t s = m->rank * m->St; s < (m->rank + 1) * m->St; s++) {
    if (x[s].kind != EPLB_XFER_RECV)
      continue;
    int32_t i = s - m->rank * m->St;
    int stage = m->in_place && needed[s];
    for (size_t t = 0; t < m->n_tensors; t++) {
      void *buf = stage ? staged(m, t, *k) : new_slot(m, t, l, i);
      int tag = (int)((size_t)s * m->n_tensors + t);
      int rc = MPI_Irecv(buf, (int)m->tensors[t].expert_bytes, MPI_BYTE, x[s].src_rank, tag,
                         m->comm, &m->req[(*nreq)++]);
      if (rc != MPI_SUCCESS) {
        (*nreq)--;
        return eplb__mpi_err(rc, "migrate: MPI_Irecv");
      }
      m->info.bytes_received += (int64_t)m->tensors[t].expert_bytes;
    }
    if (stage)
      m->stage_dst[(*k)++] = i;
  }
  return 0;
}

/* Posts this rank's sends of layer l, from the old slots, in ascending destination slot order. */
static int post_sends(migrator *m, int32_t l, size_t *nreq) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l);
  for (int32_t s = 0; s < m->plan->to_slots; s++) {
    if (x[s].kind != EPLB_XFER_RECV || x[s].src_rank != m->rank)
      continue;
    int32_t i = x[s].src_slot - m->rank * m->Sf;
    for (size_t t = 0; t < m->n_tensors; t++) {
      int tag = (int)((size_t)s * m->n_tensors + t);
      int rc = MPI_Isend(old_slot(m, t, l, i), (int)m->tensors[t].expert_bytes, MPI_BYTE,
                         s / m->St, tag, m->comm, &m->req[(*nreq)++]);
      if (rc != MPI_SUCCESS) {
        (*nreq)--;
        return eplb__mpi_err(rc, "migrate: MPI_Isend");
      }
      m->info.bytes_sent += (int64_t)m->tensors[t].expert_bytes;
    }
  }
  return 0;
}

/* Copies the expert of old local slot `from` into new local slot `to` in every tensor
 * (out of place), or into staged copy `k` (in place, k >= 0). */
static void copy_local(migrator *m, int32_t l, int32_t from, int32_t to, int32_t k) {
  for (size_t t = 0; t < m->n_tensors; t++)
    memcpy(k >= 0 ? staged(m, t, k) : new_slot(m, t, l, to), old_slot(m, t, l, from),
           m->tensors[t].expert_bytes);
}

/* Moves layer l: stage local copies (in place), post receives and sends, copy locally while
 * they fly (out of place), wait, apply the staging, then the DUP copies. */
static int run_layer(migrator *m, int32_t l) {
  const eplb_xfer *x = eplb_transfer_layer(m->plan, l);
  int32_t first = m->rank * m->St, k = 0;
  size_t nreq = 0;
  if (m->in_place)
    for (int32_t s = first; s < first + m->St; s++)
      if (x[s].kind == EPLB_XFER_LOCAL) {
        copy_local(m, l, x[s].src_slot - m->rank * m->Sf, -1, k);
        m->stage_dst[k++] = s - first;
      }
  int rc = post_receives(m, l, &nreq, &k);
  if (!rc)
    rc = post_sends(m, l, &nreq);
  if (!rc && !m->in_place)
    for (int32_t s = first; s < first + m->St; s++)
      if (x[s].kind == EPLB_XFER_KEEP || x[s].kind == EPLB_XFER_LOCAL)
        copy_local(m, l, x[s].src_slot - m->rank * m->Sf, s - first, -1);
  /* Wait even after a failed post: the posted requests still use the buffers. */
  int wrc = MPI_Waitall((int)nreq, m->req, MPI_STATUSES_IGNORE);
  if (rc)
    return rc;
  if (wrc != MPI_SUCCESS)
    return eplb__mpi_err(wrc, "migrate: MPI_Waitall");
  for (int32_t j = 0; j < k; j++)
    for (size_t t = 0; t < m->n_tensors; t++)
      memcpy(new_slot(m, t, l, m->stage_dst[j]), staged(m, t, j), m->tensors[t].expert_bytes);
  for (int32_t s = first; s < first + m->St; s++)
    if (x[s].kind == EPLB_XFER_DUP)
      for (size_t t = 0; t < m->n_tensors; t++)
        memcpy(new_slot(m, t, l, s - first), new_slot(m, t, l, x[s].src_slot - first),
               m->tensors[t].expert_bytes);
  return 0;
}

/* ---- the migration ---- */

/* Makes every rank return the same code: the most negative one over the communicator. */
static int agree(MPI_Comm comm, int rc, const char *stage) {
  int all = rc;
  int mrc = MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, comm);
  if (mrc != MPI_SUCCESS)
    return rc ? rc : eplb__mpi_err(mrc, "migrate: MPI_Allreduce");
  if (all != 0 && rc == 0)
    return eplb__err(all, "migrate: %s failed on another rank: %s", stage, eplb_strerror(all));
  return all;
}

/* Runs a transfer plan over MPI on this rank (contract in eplb_mpi.h). */
int eplb_mpi_migrate(MPI_Comm comm, const eplb_transfer *plan, int rank,
                     const eplb_tensor *tensors, size_t n_tensors, eplb_migrate_progress progress,
                     void *user) {
  if (comm == MPI_COMM_NULL)
    return eplb__err(EPLB_EINVAL, "migrate: MPI_COMM_NULL");
  migrator m;
  memset(&m, 0, sizeof m);
  int rc = MPI_Comm_dup(comm, &m.comm);
  if (rc != MPI_SUCCESS)
    return eplb__mpi_err(rc, "migrate: MPI_Comm_dup");
  rc = MPI_Comm_set_errhandler(m.comm, MPI_ERRORS_RETURN);
  if (rc != MPI_SUCCESS)
    rc = eplb__mpi_err(rc, "migrate: MPI_Comm_set_errhandler");
  m.plan = plan, m.tensors = tensors, m.n_tensors = n_tensors, m.rank = rank;
  if (!rc && (!plan || !plan->xfers || !plan->needed))
    rc = eplb__err(EPLB_EINVAL, "migrate: no plan");
  if (!rc) {
    m.Sf = plan->from_slots / plan->num_gpus, m.St = plan->to_slots / plan->num_gpus;
    m.info.num_layers = plan->num_layers;
    rc = check_tensors(&m);
  }
  if (!rc)
    rc = check_comm(&m);
  if (!rc)
    rc = alloc_buffers(&m);
  rc = agree(m.comm, rc, "argument check");
  /* Agreeing after each layer stops every rank at the first layer where one failed. */
  for (int32_t l = 0; !rc && l < plan->num_layers; l++) {
    rc = agree(m.comm, run_layer(&m, l), "migration");
    m.info.layers_done = l + 1;
    if (!rc && progress)
      progress(&m.info, user);
  }
  free(m.staging), free(m.stage_dst), free(m.req);
  MPI_Comm_free(&m.comm);
  return rc;
}
