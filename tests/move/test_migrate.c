/* test_migrate.c - eplb_mpi_migrate under mpirun: every byte of every slot checked after moving
 * synthetic weights between layouts, in place and out of place, several tensors of different
 * sizes and strides. Run with 2, 4 and 8 ranks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "eplb_mpi.h"
#include "mpi/migrate_int.h" /* the fault hook */
#include "test_move_util.h"

#define PAD_BYTE 0xA5   /* bytes between slots (stride > expert_bytes): must stay untouched */
#define EMPTY_BYTE 0x5A /* the new layout's buffers before the move (out of place) */
#define MAX_TENSORS 4

static int g_rank, g_size;

/* ---- one migration with full verification ---- */

/* The tensors of one case and what the progress callback saw. */
typedef struct mcase {
  size_t n_tensors;
  size_t bytes[MAX_TENSORS]; /* expert_bytes */
  size_t pad[MAX_TENSORS];   /* stride - expert_bytes */
  int in_place;
  int align;
  int relabel;
  eplb_migrate_ws *ws;       /* run on this workspace (NULL: eplb_mpi_migrate) */
  int calls;                 /* progress callbacks */
  eplb_migrate_info last;    /* the last progress report */
} mcase;

/* Progress callback: counts calls and checks that layers arrive in order. */
static void on_progress(const eplb_migrate_info *info, void *user) {
  mcase *c = user;
  c->calls++;
  assert_int_equal(info->layers_done, c->calls);
  c->last = *info;
}

/* Fills `n` slots of tensor t, layer l with the experts `row` lists, padding between them. */
static void fill_slots(unsigned char *base, const int32_t *row, int32_t n, int32_t l, size_t t,
                       size_t bytes, size_t stride) {
  memset(base, PAD_BYTE, (size_t)n * stride);
  for (int32_t i = 0; i < n; i++)
    for (size_t off = 0; off < bytes; off++)
      base[(size_t)i * stride + off] = tm_byte(l, row[i], t, off);
}

/* Counts wrong bytes: each slot must hold its expert's pattern, each pad byte `pad`. */
static int64_t count_wrong(const unsigned char *base, const int32_t *row, int32_t n, int32_t l,
                           size_t t, size_t bytes, size_t stride, unsigned char pad) {
  int64_t bad = 0;
  for (int32_t i = 0; i < n; i++) {
    for (size_t off = 0; off < bytes; off++)
      bad += base[(size_t)i * stride + off] != tm_byte(l, row[i], t, off);
    for (size_t off = bytes; off < stride; off++)
      bad += base[(size_t)i * stride + off] != pad;
  }
  return bad;
}

/* Sums an int64 over all ranks. */
static int64_t sum_all(int64_t v) {
  int64_t all = 0;
  assert_int_equal(MPI_Allreduce(&v, &all, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), MPI_SUCCESS);
  return all;
}

/* Moves synthetic weights from `from` to `to` as `c` says and checks, on every rank: the call
 * succeeds, every byte of every slot holds the expert plan->to puts there, the number of copies
 * received is the independent minimum, the bytes received add up, progress ran once per layer
 * and the staging is what the plan says. Returns the plan's stats. */
static eplb_transfer_stats run_case(const eplb_placement *from, const eplb_placement *to,
                                    mcase *c) {
  eplb_transfer_opts o;
  eplb_transfer_opts_init(&o);
  o.align = c->align;
  o.relabel = c->relabel;
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), 0);
  int32_t L = from->num_layers, G = from->num_gpus;
  int32_t Sf = from->num_slots / G, St = to->num_slots / G;
  eplb_tensor tens[MAX_TENSORS];
  void *src[MAX_TENSORS][8], *dst[MAX_TENSORS][8];
  assert_true(L <= 8 && c->n_tensors <= MAX_TENSORS);
  size_t copy_bytes = 0;
  for (size_t t = 0; t < c->n_tensors; t++) {
    size_t stride = c->bytes[t] + c->pad[t];
    size_t n = (size_t)(Sf > St ? Sf : St);
    for (int32_t l = 0; l < L; l++) {
      src[t][l] = malloc(n * stride);
      dst[t][l] = c->in_place ? NULL : malloc((size_t)St * stride);
      fill_slots(src[t][l], from->phy2log + (size_t)l * from->num_slots + g_rank * Sf, Sf, l, t,
                 c->bytes[t], stride);
      if (!c->in_place)
        memset(dst[t][l], EMPTY_BYTE, (size_t)St * stride);
    }
    tens[t].src = src[t];
    tens[t].dst = c->in_place ? NULL : dst[t];
    tens[t].expert_bytes = c->bytes[t];
    tens[t].src_stride = tens[t].dst_stride = stride;
    copy_bytes += c->bytes[t];
  }
  c->calls = 0;
  int rc = c->ws ? eplb_mpi_migrate_ws(c->ws, plan, tens, c->n_tensors, on_progress, c)
                 : eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, tens, c->n_tensors, on_progress, c);
  if (rc)
    print_error("rank %d: %s\n", g_rank, eplb_last_error());
  assert_int_equal(rc, 0);
  int64_t bad = 0;
  for (size_t t = 0; t < c->n_tensors; t++)
    for (int32_t l = 0; l < L; l++) {
      const unsigned char *b = c->in_place ? src[t][l] : dst[t][l];
      bad += count_wrong(b, plan->to->phy2log + (size_t)l * to->num_slots + g_rank * St, St, l, t,
                         c->bytes[t], c->bytes[t] + c->pad[t], c->in_place ? PAD_BYTE : EMPTY_BYTE);
    }
  assert_int_equal(sum_all(bad), 0);
  /* plan->to is `to` with each device's slots reordered (and devices renumbered when
   * relabelled, which the unit tests check); the count is over what the plan produces. */
  assert_int_equal(plan->stats.receives, tm_needed_receives(from, plan->to));
  if (!c->relabel)
    assert_int_equal(plan->stats.receives, tm_needed_receives(from, to));
  assert_int_equal(sum_all(c->last.bytes_received), plan->stats.receives * (int64_t)copy_bytes);
  assert_int_equal(sum_all(c->last.bytes_sent), plan->stats.receives * (int64_t)copy_bytes);
  assert_int_equal(c->calls, L);
  int32_t stage = 0;
  for (int32_t l = 0; l < L && c->in_place; l++) {
    int32_t k = eplb_transfer_staging_slots(plan, l, g_rank);
    stage = k > stage ? k : stage;
  }
  assert_int_equal(c->last.staging_bytes, (size_t)stage * copy_bytes);
  if (c->ws)
    assert_true(eplb_mpi_migrate_ws_staging_bytes(c->ws) >= c->last.staging_bytes);
  for (size_t t = 0; t < c->n_tensors; t++)
    for (int32_t l = 0; l < L; l++)
      free(src[t][l]), free(dst[t][l]);
  eplb_transfer_stats st = plan->stats;
  eplb_transfer_free(plan);
  return st;
}

/* Three tensors like w13, w2 and a scale: different sizes, padded strides. */
static mcase three_tensors(int in_place) {
  mcase c = {.n_tensors = 3, .bytes = {1536, 777, 24}, .pad = {0, 9, 40}, .in_place = in_place,
             .align = 1};
  return c;
}

/* ---- cases ---- */

static void initial_to_a_plans_map_out_of_place(void **state) {
  (void)state;
  uint64_t rng = 101;
  int32_t E = 4 * g_size;
  eplb_placement *from = NULL, *to = tm_random_placement(3, E, g_size, 5, &rng);
  assert_int_equal(eplb_placement_initial(3, E, g_size, 4, &from), 0);
  mcase c = three_tensors(0);
  eplb_transfer_stats st = run_case(from, to, &c);
  assert_true(st.receives > 0);
  eplb_placement_free(from), eplb_placement_free(to);
}

/* The real thing: initial layout -> eplb_plan's deepseek map of the OLMoE counts in examples/,
 * for this run's rank count, plain and relabelled. */
static void initial_to_a_deepseek_plan_of_examples(void **state) {
  (void)state;
  eplb_loads *loads = NULL;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_loads_read_file(EPLB_TEST_DATA "/../../examples/token_collects_all.json",
                                        0, &loads),
                   0);
  eplb_params p;
  eplb_params_init(&p);
  p.num_gpus = g_size, p.num_replicas = loads->num_experts + 2 * g_size;
  p.num_groups = 8, p.num_nodes = 1;
  assert_int_equal(eplb_plan(loads, &p, &to), 0);
  assert_int_equal(eplb_placement_initial(to->num_layers, to->num_experts, g_size,
                                          to->num_experts / g_size, &from),
                   0);
  memcpy(from->layer_ids, to->layer_ids, (size_t)to->num_layers * sizeof *to->layer_ids);
  mcase c = three_tensors(0);
  eplb_transfer_stats st = run_case(from, to, &c);
  assert_true(st.receives < st.upstream_copies);
  c.relabel = 1;
  eplb_transfer_stats re = run_case(from, to, &c);
  assert_true(re.receives <= st.receives);
  /* An online re-balance in place: the map of these counts -> the map of the counts with the
   * experts' loads reversed (same slot count). */
  eplb_placement *to2 = NULL;
  int32_t E = loads->num_experts;
  for (int32_t l = 0; l < loads->num_layers; l++)
    for (int32_t e = 0; e < E / 2; e++) {
      double t = loads->load[l * E + e];
      loads->load[l * E + e] = loads->load[l * E + E - 1 - e], loads->load[l * E + E - 1 - e] = t;
    }
  assert_int_equal(eplb_plan(loads, &p, &to2), 0);
  for (c.relabel = 0; c.relabel < 2; c.relabel++) {
    mcase d = three_tensors(1);
    d.relabel = c.relabel;
    eplb_transfer_stats sw = run_case(to, to2, &d);
    assert_true(sw.receives > 0);
  }
  eplb_placement_free(to2);
  eplb_loads_free(loads);
  eplb_placement_free(from), eplb_placement_free(to);
}

static void random_pairs_in_place(void **state) {
  (void)state;
  uint64_t rng = 202;
  for (int trial = 0; trial < 4; trial++) {
    int32_t E = 3 * g_size + trial, S = (E + g_size - 1) / g_size + trial % 2;
    eplb_placement *from = tm_random_placement(2, E, g_size, S, &rng);
    eplb_placement *to = tm_random_placement(2, E, g_size, S, &rng);
    mcase c = three_tensors(1);
    c.align = trial % 2;
    run_case(from, to, &c);
    eplb_placement_free(from), eplb_placement_free(to);
  }
}

static void random_pairs_out_of_place_with_other_slot_counts(void **state) {
  (void)state;
  uint64_t rng = 303;
  for (int trial = 0; trial < 3; trial++) {
    int32_t E = 2 * g_size + 1, S = (E + g_size - 1) / g_size;
    eplb_placement *from = tm_random_placement(2, E, g_size, S + trial, &rng);
    eplb_placement *to = tm_random_placement(2, E, g_size, S + 2 - trial, &rng);
    mcase c = three_tensors(0);
    run_case(from, to, &c);
    eplb_placement_free(from), eplb_placement_free(to);
  }
}

/* The initial layout rotated by one device: every slot's expert arrives from another rank. */
static void everything_moving(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(2, 3 * g_size, g_size, 3, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  int32_t R = from->num_slots;
  for (int32_t l = 0; l < 2; l++)
    for (int32_t s = 0; s < R; s++)
      to->phy2log[l * R + s] = from->phy2log[l * R + (s + 3) % R];
  assert_int_equal(eplb_placement_build_index(to), 0);
  for (int in_place = 0; in_place < 2; in_place++) {
    mcase c = three_tensors(in_place);
    eplb_transfer_stats st = run_case(from, to, &c);
    assert_int_equal(st.receives, 2 * R);
    assert_int_equal(st.keeps, 0);
  }
  eplb_placement_free(from), eplb_placement_free(to);
}

static void nothing_moving(void **state) {
  (void)state;
  uint64_t rng = 404;
  eplb_placement *p = tm_random_placement(2, 2 * g_size, g_size, 3, &rng);
  for (int in_place = 0; in_place < 2; in_place++) {
    mcase c = three_tensors(in_place);
    eplb_transfer_stats st = run_case(p, p, &c);
    assert_int_equal(st.receives, 0);
    assert_int_equal(c.last.bytes_received, 0);
  }
  eplb_placement_free(p);
}

/* Rank 0 holds one new expert twice: it is received once and copied (DUP). */
static void duplicates_received_once(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 2, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  int32_t R = from->num_slots;
  for (int32_t s = 0; s < R; s++)
    to->phy2log[s] = from->phy2log[(s + 2) % R];
  to->phy2log[1] = to->phy2log[0];
  assert_int_equal(eplb_placement_build_index(to), 0);
  for (int in_place = 0; in_place < 2; in_place++) {
    mcase c = three_tensors(in_place);
    eplb_transfer_stats st = run_case(from, to, &c);
    assert_int_equal(st.receives, R - 1);
    assert_int_equal(st.local_copies, 1);
  }
  eplb_placement_free(from), eplb_placement_free(to);
}

/* `from` with each layer's slots rotated: slot s gets the expert of slot perm(s) where ranks
 * are taken in groups of `group` consecutive ranks and each rank takes all the slots of the
 * next rank of its group (a swap for groups of 2, a cycle for 3); ranks left over keep theirs. */
static eplb_placement *grouped_rotation(const eplb_placement *from, int32_t group) {
  eplb_placement *to = NULL;
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  int32_t G = from->num_gpus, R = from->num_slots, S = R / G, whole = G / group * group;
  for (int32_t l = 0; l < from->num_layers; l++)
    for (int32_t s = 0; s < R; s++) {
      int32_t d = s / S, src = d;
      if (d < whole)
        src = d / group * group + (d % group + 1) % group;
      to->phy2log[l * R + s] = from->phy2log[l * R + src * S + s % S];
    }
  assert_int_equal(eplb_placement_build_index(to), 0);
  return to;
}

/* Swaps between pairs of ranks and cycles of three ranks, every slot moving, in place (the
 * cases staging exists for) and out of place; every byte checked by run_case. */
static void swaps_and_cycles_of_three_in_place(void **state) {
  (void)state;
  eplb_placement *from = NULL;
  assert_int_equal(eplb_placement_initial(2, 4 * g_size, g_size, 4, &from), 0);
  for (int32_t group = 2; group <= 3; group++) {
    if (group > g_size)
      continue;
    eplb_placement *to = grouped_rotation(from, group);
    for (int in_place = 1; in_place >= 0; in_place--) {
      mcase c = three_tensors(in_place);
      eplb_transfer_stats st = run_case(from, to, &c);
      assert_int_equal(st.receives, 2 * 4 * (g_size / group * group));
      /* one staged slot per cycle: 4 cycles of `group` slots per group of ranks and layer */
      if (in_place)
        assert_int_equal(st.staging_slots, 2); /* 4 cycles spread over 2 or 3 ranks */
    }
    eplb_placement_free(to);
  }
  eplb_placement_free(from);
}

/* One slot per rank, passed to the previous rank: one cycle through every rank, cut once and,
 * with more than 4 ranks, again where waits would get long. */
static void one_cycle_through_every_rank_in_place(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(3, g_size, g_size, 1, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  for (int32_t l = 0; l < 3; l++)
    for (int32_t s = 0; s < g_size; s++)
      to->phy2log[l * g_size + s] = from->phy2log[l * g_size + (s + 1) % g_size];
  assert_int_equal(eplb_placement_build_index(to), 0);
  mcase c = three_tensors(1);
  eplb_transfer_stats st = run_case(from, to, &c);
  assert_int_equal(st.receives, 3 * g_size);
  assert_int_equal(st.staging_slots, 1);
  eplb_placement_free(from), eplb_placement_free(to);
}

/* One workspace for several migrations, in place and out of place, forth and back: each is
 * checked byte by byte, the staging it holds only grows. */
static void a_workspace_serves_many_migrations(void **state) {
  (void)state;
  uint64_t rng = 505;
  eplb_migrate_ws *ws = NULL;
  assert_int_equal(eplb_mpi_migrate_ws_create(MPI_COMM_WORLD, &ws), 0);
  assert_int_equal(eplb_mpi_migrate_ws_staging_bytes(ws), 0);
  eplb_placement *a = tm_random_placement(2, 3 * g_size, g_size, 4, &rng);
  eplb_placement *b = tm_random_placement(2, 3 * g_size, g_size, 4, &rng);
  size_t held = 0;
  for (int round = 0; round < 4; round++) {
    mcase c = three_tensors(round % 2 == 0);
    c.ws = ws;
    run_case(round < 2 ? a : b, round < 2 ? b : a, &c);
    assert_true(eplb_mpi_migrate_ws_staging_bytes(ws) >= held);
    held = eplb_mpi_migrate_ws_staging_bytes(ws);
  }
  assert_int_equal(eplb_mpi_migrate_ws(NULL, NULL, NULL, 0, NULL, NULL), EPLB_EINVAL);
  eplb_migrate_ws *none = ws;
  assert_int_equal(eplb_mpi_migrate_ws_create(MPI_COMM_NULL, &none), EPLB_EINVAL);
  assert_null(none);
  eplb_mpi_migrate_ws_free(ws);
  eplb_mpi_migrate_ws_free(NULL);
  eplb_placement_free(a), eplb_placement_free(b);
}

/* ---- errors ---- */

static void a_bad_argument_on_one_rank_fails_every_rank_alike(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 2, &from), 0);
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 2, &to), 0);
  for (int32_t s = 0; s < to->num_slots; s++)
    to->phy2log[s] = from->phy2log[(s + 2) % to->num_slots];
  assert_int_equal(eplb_placement_build_index(to), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  unsigned char buf[2 * 64];
  memset(buf, 7, sizeof buf);
  void *ptr[1] = {buf};
  eplb_tensor t = {.src = ptr, .dst = NULL, .expert_bytes = 64, .src_stride = 64};
  /* The last rank claims to be rank 0: it alone finds the error, all ranks report it. */
  int claimed = g_rank == g_size - 1 ? 0 : g_rank;
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, plan, claimed, &t, 1, NULL, NULL),
                   EPLB_EINVAL);
  for (size_t i = 0; i < sizeof buf; i++)
    assert_int_equal(buf[i], 7); /* nothing moved */
  /* A stride below the expert size, on rank 0 only. */
  t.src_stride = g_rank == 0 ? 32 : 64;
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, &t, 1, NULL, NULL),
                   EPLB_EINVAL);
  t.src_stride = 64;
  /* A communicator of the wrong size. */
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_SELF, plan, 0, &t, 1, NULL, NULL), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "ranks"));
  /* No tensors; NULL plan. */
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, &t, 0, NULL, NULL), EPLB_EINVAL);
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, NULL, g_rank, &t, 1, NULL, NULL), EPLB_EINVAL);
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

/* A one-layer layout of 2 slots per rank whose slots are those of `from` turned by `shift`. */
static eplb_placement *turned(const eplb_placement *from, int32_t shift) {
  eplb_placement *to = NULL;
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  for (int32_t s = 0; s < to->num_slots; s++)
    to->phy2log[s] = from->phy2log[(s + shift) % to->num_slots];
  assert_int_equal(eplb_placement_build_index(to), 0);
  return to;
}

/* Asserts that eplb_mpi_migrate fails with EPLB_EINVAL on this rank, naming `what` differs, and
 * that no byte of the `n` bytes at buf moved. */
static void assert_disagreement(const eplb_transfer *plan, const eplb_tensor *t, size_t nt,
                                const char *what, const unsigned char *buf, size_t n) {
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, t, nt, NULL, NULL),
                   EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "different plans"));
  assert_non_null(strstr(eplb_last_error(), what));
  for (size_t i = 0; i < n; i++)
    assert_int_equal(buf[i], 7);
}

/* Ranks that call with different plans (the last one built its plan from another `to`), tensor
 * sizes, tensor counts or layer counts: each rank alone sees valid arguments, but the messages
 * would not match and the ranks would wait forever. Every rank returns EPLB_EINVAL naming what
 * differs, nothing moves, and a good migration works afterwards. */
static void ranks_with_different_plans_fail_every_rank_without_a_hang(void **state) {
  (void)state;
  int last = g_rank == g_size - 1;
  eplb_placement *from = NULL, *from2 = NULL;
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 2, &from), 0);
  assert_int_equal(eplb_placement_initial(2, 2 * g_size, g_size, 2, &from2), 0);
  /* every rank sends both slots on to the previous rank, but the last rank's `to` is `from`
   * itself: it expects no message and sends none */
  eplb_placement *to = turned(from, last ? 0 : 2);
  eplb_placement *good = turned(from, 2);
  eplb_transfer *plan = NULL, *plan2 = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  assert_int_equal(eplb_transfer_plan(from2, from2, &plan2), 0);
  enum { BYTES = 64 };
  unsigned char buf[2][2 * BYTES];
  memset(buf, 7, sizeof buf);
  void *ptr[2] = {buf[0], buf[1]};
  eplb_tensor t[2] = {{.src = ptr, .expert_bytes = BYTES, .src_stride = BYTES},
                      {.src = ptr + 1, .expert_bytes = BYTES, .src_stride = BYTES}};
  assert_disagreement(plan, t, 1, "transfers", buf[0], sizeof buf);
  eplb_transfer_free(plan);
  assert_int_equal(eplb_transfer_plan(from, good, &plan), 0);
  /* the same plan, but rank 0 moves experts of half the size */
  t[0].expert_bytes = g_rank == 0 ? BYTES / 2 : BYTES;
  assert_disagreement(plan, t, 1, "tensor sizes", buf[0], sizeof buf);
  t[0].expert_bytes = BYTES;
  /* rank 0 moves two tensors, the others one */
  assert_disagreement(plan, t, g_rank == 0 ? 2 : 1, "n_tensors", buf[0], sizeof buf);
  /* the last rank's plan has two layers (its buffers serve both) */
  void *ptr2[2] = {buf[0], buf[1]};
  eplb_tensor t2 = {.src = ptr2, .expert_bytes = BYTES, .src_stride = BYTES};
  assert_disagreement(last ? plan2 : plan, &t2, 1, "num_layers", buf[0], sizeof buf);
  /* the same plan everywhere still moves, and every byte lands */
  mcase c = three_tensors(1);
  run_case(from, good, &c);
  eplb_transfer_free(plan), eplb_transfer_free(plan2);
  eplb_placement_free(to), eplb_placement_free(good);
  eplb_placement_free(from), eplb_placement_free(from2);
}

/* A real MPI error (a message to a rank outside the communicator, by the test hook) on the
 * last rank, in its first send or its first receive of the first or the last layer, in place
 * and out of place: every rank returns EPLB_ECOMM (none hangs: ctest's timeout would catch it),
 * the failing rank's detail has MPI's message, the others name a failed rank; then the same
 * workspace moves data again correctly (no message was left behind). */
static void an_mpi_error_on_one_rank_fails_every_rank_without_a_hang(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(3, 2 * g_size, g_size, 2, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  int32_t R = from->num_slots;
  for (int32_t l = 0; l < 3; l++) /* every slot moves: every rank sends and receives */
    for (int32_t s = 0; s < R; s++)
      to->phy2log[l * R + s] = from->phy2log[l * R + (s + 2) % R];
  assert_int_equal(eplb_placement_build_index(to), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  eplb_migrate_ws *ws = NULL;
  assert_int_equal(eplb_mpi_migrate_ws_create(MPI_COMM_WORLD, &ws), 0);
  enum { BYTES = 4096 };
  unsigned char *src[3], *dst[3];
  for (int32_t l = 0; l < 3; l++) {
    src[l] = calloc(2, BYTES);
    dst[l] = calloc(2, BYTES);
  }
  eplb_tensor t = {.src = (void *const *)src, .expert_bytes = BYTES, .src_stride = BYTES,
                   .dst_stride = BYTES};
  for (int in_place = 0; in_place < 2; in_place++)
    for (int op = 0; op < 2; op++)
      for (int layer = 0; layer < 3; layer += 2) {
        t.dst = in_place ? NULL : (void *const *)dst;
        eplb__migrate_fault_at = (eplb__migrate_fault){g_size - 1, layer, op};
        int rc = eplb_mpi_migrate_ws(ws, plan, &t, 1, NULL, NULL);
        eplb__migrate_fault_at = (eplb__migrate_fault){-1, -1, -1};
        assert_int_equal(rc, EPLB_ECOMM);
        const char *why = eplb_last_error();
        if (g_rank == g_size - 1)
          assert_non_null(strstr(why, op ? "MPI_Irecv" : "MPI_Isend"));
        else
          assert_non_null(strstr(why, "rank"));
      }
  /* The workspace still works: a migration on it with every slot moving, checked. */
  mcase c = three_tensors(1);
  c.ws = ws;
  run_case(from, to, &c);
  eplb_placement_free(to);
  for (int32_t l = 0; l < 3; l++)
    free(src[l]), free(dst[l]);
  eplb_mpi_migrate_ws_free(ws);
  eplb_transfer_free(plan);
  eplb_placement_free(from);
}

static void in_place_needs_equal_slot_counts(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 2, &from), 0);
  assert_int_equal(eplb_placement_initial(1, 2 * g_size, g_size, 3, &to), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  unsigned char buf[3 * 16];
  void *ptr[1] = {buf};
  eplb_tensor t = {.src = ptr, .dst = NULL, .expert_bytes = 16, .src_stride = 16};
  assert_int_equal(eplb_mpi_migrate(MPI_COMM_WORLD, plan, g_rank, &t, 1, NULL, NULL), EPLB_EINVAL);
  assert_non_null(strstr(eplb_last_error(), "in place"));
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(initial_to_a_plans_map_out_of_place),
      cmocka_unit_test(initial_to_a_deepseek_plan_of_examples),
      cmocka_unit_test(random_pairs_in_place),
      cmocka_unit_test(random_pairs_out_of_place_with_other_slot_counts),
      cmocka_unit_test(everything_moving),
      cmocka_unit_test(nothing_moving),
      cmocka_unit_test(duplicates_received_once),
      cmocka_unit_test(swaps_and_cycles_of_three_in_place),
      cmocka_unit_test(one_cycle_through_every_rank_in_place),
      cmocka_unit_test(a_workspace_serves_many_migrations),
      cmocka_unit_test(a_bad_argument_on_one_rank_fails_every_rank_alike),
      cmocka_unit_test(in_place_needs_equal_slot_counts),
      cmocka_unit_test(an_mpi_error_on_one_rank_fails_every_rank_without_a_hang),
      cmocka_unit_test(ranks_with_different_plans_fail_every_rank_without_a_hang),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  /* A failure on any rank fails the test on rank 0's exit code too. */
  int all = 0;
  MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return all ? 1 : 0;
}
