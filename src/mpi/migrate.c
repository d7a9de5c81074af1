/* migrate.c - the MPI executor of a transfer plan: argument checks agreed on by every rank, the
 * reusable workspace, the layers one after the other (migrate_layer.c) and one agreement on the
 * result at the end. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/migrate_int.h"

/* ---- checks (local to this rank) ---- */

/* Checks the tensors against the plan; sets m->in_place and m->copy_bytes. */
static int check_tensors(eplb__migrator *m) {
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

/* Checks the plan against the workspace's communicator, and the tag range. */
static int check_plan(eplb__migrator *m) {
  const eplb_transfer *plan = m->plan;
  if (!plan || !plan->xfers || !plan->staged || plan->num_gpus < 1)
    return eplb__err(EPLB_EINVAL, "migrate: no plan");
  if (plan->from_slots < plan->num_gpus || plan->to_slots < plan->num_gpus)
    return eplb__err(EPLB_EINVAL, "migrate: the plan gives a device no slot (%d and %d slots, "
                                  "%d devices)",
                     plan->from_slots, plan->to_slots, plan->num_gpus);
  if (m->ws->size != plan->num_gpus)
    return eplb__err(EPLB_EINVAL, "migrate: the communicator has %d ranks but the plan %d devices",
                     m->ws->size, plan->num_gpus);
  long long max_tag = (long long)plan->to_slots * (long long)m->n_tensors - 1;
  if (max_tag > (long long)m->ws->tag_ub)
    return eplb__err(EPLB_ERANGE, "migrate: %d slots x %zu tensors need tags up to %lld, above "
                                  "MPI_TAG_UB %d",
                     plan->to_slots, m->n_tensors, max_tag, m->ws->tag_ub);
  m->Sf = plan->from_slots / plan->num_gpus, m->St = plan->to_slots / plan->num_gpus;
  m->info.num_layers = plan->num_layers;
  return 0;
}

/* ---- buffers ---- */

/* Grows the workspace's buffers to what this migration needs on this rank: staging for its
 * most staged slots in a layer, requests for its most messages in a layer, per-slot state. */
static int grow_buffers(eplb__migrator *m) {
  eplb_migrate_ws *ws = m->ws;
  const eplb_transfer *plan = m->plan;
  int32_t stage = 0;
  size_t msgs = 0;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    const eplb_xfer *x = eplb_transfer_layer(plan, l);
    size_t n = 0;
    for (int32_t s = 0; s < plan->to_slots; s++)
      n += x[s].kind == EPLB_XFER_RECV && (x[s].src_rank == m->rank || s / m->St == m->rank);
    msgs = n > msgs ? n : msgs;
    int32_t k = m->in_place ? eplb_transfer_staging_slots(plan, l, m->rank) : 0;
    stage = k > stage ? k : stage;
  }
  if (stage > 0 && m->copy_bytes > SIZE_MAX / (size_t)stage)
    return eplb__err(EPLB_ENOMEM, "migrate: staging of %d copies overflows", stage);
  m->info.staging_bytes = (size_t)stage * m->copy_bytes;
  if (m->info.staging_bytes > ws->staging_cap) {
    free(ws->staging);
    ws->staging_cap = 0;
    if (!(ws->staging = malloc(m->info.staging_bytes)))
      return eplb__err(EPLB_ENOMEM, "migrate: cannot allocate %zu bytes of staging",
                       m->info.staging_bytes);
    ws->staging_cap = m->info.staging_bytes;
  }
  size_t nreq = msgs * m->n_tensors;
  if (nreq > ws->req_cap) {
    free(ws->req), free(ws->status), free(ws->done), free(ws->req_slot), free(ws->req_send);
    ws->req_cap = 0;
    ws->req = eplb__mallocn(nreq, sizeof(MPI_Request)); /* a handle (a pointer type) */
    ws->status = eplb__mallocn(nreq, sizeof *ws->status);
    ws->done = eplb__mallocn(nreq, sizeof *ws->done);
    ws->req_slot = eplb__mallocn(nreq, sizeof *ws->req_slot);
    ws->req_send = eplb__mallocn(nreq, sizeof *ws->req_send);
    if (!ws->req || !ws->status || !ws->done || !ws->req_slot || !ws->req_send)
      return eplb__err(EPLB_ENOMEM, "migrate: cannot allocate %zu requests", nreq);
    ws->req_cap = nreq;
  }
  size_t slots = (size_t)(m->Sf > m->St ? m->Sf : m->St);
  if (slots > ws->slot_cap) {
    free(ws->slot_buf), free(ws->work);
    ws->slot_cap = 0;
    ws->slot_buf = eplb__mallocn(slots * EPLB__MIGRATE_SLOT_ARRAYS, sizeof *ws->slot_buf);
    ws->work = eplb__mallocn(slots, sizeof *ws->work);
    if (!ws->slot_buf || !ws->work)
      return eplb__err(EPLB_ENOMEM, "migrate: out of memory");
    ws->slot_cap = slots;
  }
  m->readers = ws->slot_buf, m->stage_idx = ws->slot_buf + slots;
  m->flags = ws->slot_buf + 2 * slots;
  return 0;
}

/* ---- agreement ---- */

/* Makes every rank return the same code: the most negative one over the communicator, with the
 * lowest rank that met it named in the detail of the ranks that did not. */
static int agree(MPI_Comm comm, int rank, int rc, const char *stage) {
  struct {
    int code, rank;
  } mine = {rc, rank}, all = {0, 0};
  int mrc = MPI_Allreduce(&mine, &all, 1, MPI_2INT, MPI_MINLOC, comm);
  if (mrc != MPI_SUCCESS)
    return rc ? rc : eplb__mpi_err(mrc, "migrate: MPI_Allreduce");
  if (all.code != 0 && rc == 0)
    return eplb__err(all.code, "migrate: %s failed on rank %d: %s", stage, all.rank,
                     eplb_strerror(all.code));
  return all.code;
}

/* FNV-1a's 64-bit offset basis and prime, for the checksums of agree_inputs(). */
#define HASH_BASIS UINT64_C(0xcbf29ce484222325)
#define HASH_PRIME UINT64_C(0x100000001b3)

/* Folds one value into a checksum, byte by byte from the low end (the same on any byte order). */
static uint64_t hash_value(uint64_t h, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    h = (h ^ ((v >> (8 * i)) & 0xff)) * HASH_PRIME;
  return h;
}

/* Checksum of what each rank must share about the tensors: their count and sizes. */
static uint64_t hash_tensors(const eplb__migrator *m) {
  uint64_t h = hash_value(HASH_BASIS, m->n_tensors, 8);
  for (size_t t = 0; t < m->n_tensors; t++)
    h = hash_value(h, m->tensors[t].expert_bytes, 8);
  return h;
}

/* Checksum of the plan's transfers (every field of every xfer) and staging marks. */
static uint64_t hash_plan(const eplb_transfer *plan) {
  uint64_t h = HASH_BASIS;
  size_t n = (size_t)plan->num_layers * (size_t)plan->to_slots;
  for (size_t i = 0; i < n; i++) {
    const eplb_xfer *x = &plan->xfers[i];
    const int32_t f[6] = {x->layer, x->dst_slot, x->expert, x->kind, x->src_rank, x->src_slot};
    for (int k = 0; k < 6; k++)
      h = hash_value(h, (uint32_t)f[k], 4);
    h = hash_value(h, plan->staged[i], 1);
  }
  return h;
}

/* Names of the values agree_inputs() compares, in its order. */
static const char *const INPUT_NAMES[] = {
    "num_layers", "num_gpus", "from_slots", "to_slots", "n_tensors",
    "tensor sizes (checksum of each expert_bytes)", "transfers (checksum of the plan's xfers)"};
#define N_INPUTS (sizeof INPUT_NAMES / sizeof INPUT_NAMES[0])

/* After the local checks passed everywhere: checks that every rank holds the same plan and
 * tensor sizes, so that no rank waits for a message another rank will never send. One
 * MPI_Allreduce (MIN) of each value and its complement: MIN of ~v is ~MAX of v, so ranks agree
 * exactly when both give back the same value. Every rank computes the same verdict. */
static int agree_inputs(const eplb__migrator *m) {
  const eplb_transfer *plan = m->plan;
  uint64_t v[N_INPUTS] = {(uint64_t)plan->num_layers, (uint64_t)plan->num_gpus,
                          (uint64_t)plan->from_slots, (uint64_t)plan->to_slots, m->n_tensors,
                          hash_tensors(m), hash_plan(plan)};
  uint64_t in[2 * N_INPUTS], out[2 * N_INPUTS];
  for (size_t i = 0; i < N_INPUTS; i++)
    in[2 * i] = v[i], in[2 * i + 1] = ~v[i];
  int mrc = MPI_Allreduce(in, out, (int)(2 * N_INPUTS), MPI_UINT64_T, MPI_MIN, m->ws->comm);
  if (mrc != MPI_SUCCESS)
    return eplb__mpi_err(mrc, "migrate: agreeing on the plan");
  for (size_t i = 0; i < N_INPUTS; i++)
    if (out[2 * i] != ~out[2 * i + 1])
      return eplb__err(EPLB_EINVAL, "migrate: the ranks hold different plans or tensors: %s "
                       "differs (%llu..%llu); every rank must pass the same plan and sizes",
                       INPUT_NAMES[i], (unsigned long long)out[2 * i],
                       (unsigned long long)(out[2 * i + 1] ^ UINT64_MAX));
  return 0;
}

/* ---- the workspace ---- */

/* Duplicates comm with errors returned and reads its rank, size and tag bound; no agreement,
 * except without memory for the workspace: then this rank takes part in the first agreement
 * the other ranks make on their duplicate (any caller's next step) with EPLB_ENOMEM, frees its
 * duplicate and leaves *out NULL. On other failures *out holds what must still be freed. */
static int ws_open(MPI_Comm comm, eplb_migrate_ws **out) {
  eplb_migrate_ws *ws = calloc(1, sizeof *ws);
  MPI_Comm dup = MPI_COMM_NULL;
  int rc = MPI_Comm_dup(comm, &dup); /* even without memory: the other ranks take part */
  *out = ws;
  if (!ws) {
    int me = 0;
    rc = eplb__err(EPLB_ENOMEM, "migrate: out of memory");
    if (dup != MPI_COMM_NULL) {
      MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
      MPI_Comm_rank(dup, &me);
      agree(dup, me, rc, "workspace");
      MPI_Comm_free(&dup);
    }
    return rc;
  }
  ws->comm = dup;
  if (rc != MPI_SUCCESS)
    return eplb__mpi_err(rc, "migrate: MPI_Comm_dup");
  int flag = 0, *tag_ub = NULL;
  rc = MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_size(dup, &ws->size);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_rank(dup, &ws->rank);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_get_attr(dup, MPI_TAG_UB, &tag_ub, &flag);
  if (rc != MPI_SUCCESS)
    return eplb__mpi_err(rc, "migrate: communicator");
  ws->tag_ub = flag && tag_ub ? *tag_ub : 0;
  return 0;
}

/* Creates a workspace: open it, then agree on the result. */
int eplb_mpi_migrate_ws_create(MPI_Comm comm, eplb_migrate_ws **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "migrate: no output");
  *out = NULL;
  if (comm == MPI_COMM_NULL)
    return eplb__err(EPLB_EINVAL, "migrate: MPI_COMM_NULL");
  eplb_migrate_ws *ws = NULL;
  int rc = ws_open(comm, &ws);
  if (ws && ws->comm != MPI_COMM_NULL)
    rc = agree(ws->comm, ws->rank, rc, "workspace");
  if (rc) {
    eplb_mpi_migrate_ws_free(ws);
    return rc;
  }
  *out = ws;
  return 0;
}

/* Frees the buffers and the duplicate communicator. */
void eplb_mpi_migrate_ws_free(eplb_migrate_ws *ws) {
  if (!ws)
    return;
  free(ws->staging), free(ws->req), free(ws->status), free(ws->done), free(ws->req_slot);
  free(ws->req_send), free(ws->slot_buf), free(ws->work);
  if (ws->comm != MPI_COMM_NULL)
    MPI_Comm_free(&ws->comm);
  free(ws);
}

/* The staging the workspace holds. */
size_t eplb_mpi_migrate_ws_staging_bytes(const eplb_migrate_ws *ws) {
  return ws ? ws->staging_cap : 0;
}

/* ---- the migration ---- */

/* Runs the migration on an open workspace: checks (local error `rc` from the caller folded in)
 * agreed on, the shared inputs compared, the layers, the result agreed on. */
static int run(eplb_migrate_ws *ws, int rc, int rank, const eplb_transfer *plan,
               const eplb_tensor *tensors, size_t n_tensors, eplb_migrate_progress progress,
               void *user) {
  eplb__migrator m;
  memset(&m, 0, sizeof m);
  m.ws = ws, m.plan = plan, m.tensors = tensors, m.n_tensors = n_tensors, m.rank = ws->rank;
  if (!rc && rank != ws->rank)
    rc = eplb__err(EPLB_EINVAL, "migrate: rank %d given, but this process is rank %d", rank,
                   ws->rank);
  if (!rc)
    rc = check_plan(&m);
  if (!rc)
    rc = check_tensors(&m);
  if (!rc)
    rc = grow_buffers(&m);
  rc = agree(ws->comm, ws->rank, rc, "argument check");
  if (!rc)
    rc = agree_inputs(&m);
  if (rc)
    return rc;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    eplb__migrate_layer(&m, l);
    m.info.layers_done = l + 1;
    if (progress)
      progress(&m.info, user);
  }
  return agree(ws->comm, ws->rank, m.rc, "migration");
}

/* Runs a transfer plan on a workspace (contract in eplb_mpi.h). */
int eplb_mpi_migrate_ws(eplb_migrate_ws *ws, const eplb_transfer *plan,
                        const eplb_tensor *tensors, size_t n_tensors,
                        eplb_migrate_progress progress, void *user) {
  if (!ws)
    return eplb__err(EPLB_EINVAL, "migrate: no workspace");
  return run(ws, 0, ws->rank, plan, tensors, n_tensors, progress, user);
}

/* Runs a transfer plan over MPI on this rank with a workspace of its own (contract in
 * eplb_mpi.h). */
int eplb_mpi_migrate(MPI_Comm comm, const eplb_transfer *plan, int rank,
                     const eplb_tensor *tensors, size_t n_tensors, eplb_migrate_progress progress,
                     void *user) {
  if (comm == MPI_COMM_NULL)
    return eplb__err(EPLB_EINVAL, "migrate: MPI_COMM_NULL");
  eplb_migrate_ws *ws = NULL;
  int rc = ws_open(comm, &ws);
  if (ws && ws->comm != MPI_COMM_NULL)
    rc = run(ws, rc, rank, plan, tensors, n_tensors, progress, user);
  eplb_mpi_migrate_ws_free(ws);
  return rc;
}
