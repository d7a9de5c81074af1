/* test_move.c - step 3 without MPI: the initial layout, alignment, transfer plans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "move/move_int.h"
#include "test_move_util.h"

/* ---- helpers ---- */

/* Runs `plan` on expert ids instead of bytes: every slot of the old layout holds its expert id;
 * applies each xfer as its kind says (reading the old slot it names, or for DUP the new slot)
 * and checks that every new slot then holds the expert `to` puts there. Also checks that a KEEP
 * reads the same position, LOCAL and DUP stay on the rank, RECV crosses ranks. */
static void simulate_plan(const eplb_transfer *plan, const eplb_placement *from) {
  int32_t G = plan->num_gpus, Sf = plan->from_slots / G, St = plan->to_slots / G;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    const int32_t *old = from->phy2log + (size_t)l * plan->from_slots;
    const int32_t *want = plan->to->phy2log + (size_t)l * plan->to_slots;
    const eplb_xfer *x = eplb_transfer_layer(plan, l);
    int32_t *got = malloc((size_t)plan->to_slots * sizeof *got);
    for (int32_t s = 0; s < plan->to_slots; s++) {
      int32_t d = s / St;
      assert_int_equal(x[s].dst_slot, s);
      assert_int_equal(x[s].layer, l);
      assert_int_equal(x[s].expert, want[s]);
      switch (x[s].kind) {
      case EPLB_XFER_KEEP:
        assert_int_equal(x[s].src_slot, d * Sf + s % St);
        assert_int_equal(x[s].src_rank, d);
        got[s] = old[x[s].src_slot];
        break;
      case EPLB_XFER_LOCAL:
        assert_int_equal(x[s].src_slot / Sf, d);
        got[s] = old[x[s].src_slot];
        break;
      case EPLB_XFER_RECV:
        assert_int_not_equal(x[s].src_rank, d);
        assert_int_equal(x[s].src_slot / Sf, x[s].src_rank);
        got[s] = old[x[s].src_slot];
        break;
      default:
        break;
      }
    }
    for (int32_t s = 0; s < plan->to_slots; s++)
      if (x[s].kind == EPLB_XFER_DUP) {
        assert_int_equal(x[s].src_slot / St, s / St);
        assert_int_equal(x[s].kind == EPLB_XFER_DUP, x[x[s].src_slot].kind == EPLB_XFER_RECV);
        got[s] = got[x[s].src_slot];
      }
    for (int32_t s = 0; s < plan->to_slots; s++)
      assert_int_equal(got[s], want[s]);
    free(got);
  }
}

/* Checks the in-place staging marks by running every layer in place on expert ids, the way
 * the executor may: a staged slot's old content is set aside first and read from there; any
 * other slot is filled (received or copied) only once every slot that reads its old content
 * has been filled. Asserts: only RECV or LOCAL slots are staged, and only slots whose old
 * content is read (the simple rule stages all of those); the counts add up per rank; the run
 * never gets stuck (no cycle of waits is left unstaged); no read finds an overwritten slot;
 * and every slot ends with its expert. */
static void check_staging(const eplb_transfer *plan, const eplb_placement *from) {
  int32_t G = plan->num_gpus, R = plan->to_slots, S = R / G;
  int32_t *content = malloc((size_t)R * sizeof *content), *aside = malloc((size_t)R * sizeof *aside);
  int32_t *readers = malloc((size_t)R * sizeof *readers);
  uint8_t *done = malloc((size_t)R);
  int32_t most = 0;
  for (int32_t l = 0; l < plan->num_layers; l++) {
    const eplb_xfer *x = eplb_transfer_layer(plan, l);
    const uint8_t *staged = plan->staged + (size_t)l * R;
    const int32_t *old = from->phy2log + (size_t)l * R;
    memcpy(content, old, (size_t)R * sizeof *content);
    memset(readers, 0, (size_t)R * sizeof *readers);
    int32_t todo = 0;
    for (int32_t s = 0; s < R; s++) {
      int moving = x[s].kind == EPLB_XFER_RECV || x[s].kind == EPLB_XFER_LOCAL;
      done[s] = !moving;
      todo += moving;
      if (moving)
        readers[x[s].src_slot]++;
      aside[s] = staged[s] ? old[s] : -1;
    }
    for (int32_t s = 0; s < R; s++) {
      assert_true(!staged[s] || (x[s].kind == EPLB_XFER_RECV || x[s].kind == EPLB_XFER_LOCAL));
      assert_true(!staged[s] || readers[s] > 0); /* staged only where the simple rule stages */
      if (staged[s])
        readers[s] = 0;                        /* its readers read the copy set aside */
    }
    for (int progress = 1; todo > 0 && progress;) {
      progress = 0;
      for (int32_t u = 0; u < R; u++) {
        if (done[u] || readers[u] > 0)
          continue;
        int32_t src = x[u].src_slot;
        int32_t val = staged[src] ? aside[src] : content[src];
        assert_int_equal(val, old[src]); /* the source was not overwritten before this read */
        content[u] = val;
        done[u] = 1, todo--, progress = 1;
        if (!staged[src])
          readers[src]--;
      }
    }
    assert_int_equal(todo, 0); /* nothing stuck */
    for (int32_t s = 0; s < R; s++) {
      if (x[s].kind == EPLB_XFER_DUP)
        content[s] = content[x[s].src_slot];
      assert_int_equal(content[s], plan->to->phy2log[(size_t)l * R + s]);
    }
    for (int32_t d = 0; d < G; d++) {
      int32_t n = 0;
      for (int32_t s = d * S; s < (d + 1) * S; s++)
        n += staged[s];
      assert_int_equal(eplb_transfer_staging_slots(plan, l, d), n);
      most = n > most ? n : most;
    }
  }
  assert_int_equal(plan->stats.staging_slots, most);
  free(content), free(aside), free(readers), free(done);
}

/* Counts the slots of each kind in a plan. */
static void count_kinds(const eplb_transfer *plan, int64_t n[4]) {
  n[0] = n[1] = n[2] = n[3] = 0;
  for (size_t i = 0; i < (size_t)plan->num_layers * (size_t)plan->to_slots; i++)
    n[plan->xfers[i].kind]++;
}

/* ---- initial layout ---- */

static void initial_is_contiguous_blocks_with_k_e_over_g(void **state) {
  (void)state;
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_initial(2, 8, 4, 2, &p), 0);
  assert_int_equal(p->num_slots, 8);
  const int32_t want[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int32_t l = 0; l < 2; l++)
    assert_memory_equal(p->phy2log + l * 8, want, sizeof want);
  assert_int_equal(eplb_placement_validate(p, 0), 0);
  assert_int_equal(p->max_replicas, 1);
  eplb_placement_free(p);
}

static void initial_wraps_with_larger_k(void **state) {
  (void)state;
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_initial(1, 5, 3, 3, &p), 0);
  /* device d holds (3d + j) % 5 */
  const int32_t want[9] = {0, 1, 2, 3, 4, 0, 1, 2, 3};
  assert_memory_equal(p->phy2log, want, sizeof want);
  assert_int_equal(eplb_placement_validate(p, 0), 0);
  assert_int_equal(p->logcnt[0], 2);
  assert_int_equal(p->logcnt[4], 1);
  eplb_placement_free(p);
}

static void initial_rejects_bad_sizes(void **state) {
  (void)state;
  eplb_placement *p = (eplb_placement *)1;
  assert_int_equal(eplb_placement_initial(1, 9, 4, 2, &p), EPLB_EINVAL); /* 8 slots < 9 */
  assert_null(p);
  assert_int_equal(eplb_placement_initial(1, 4, 2, 5, &p), EPLB_EINVAL); /* k > E */
  assert_int_equal(eplb_placement_initial(0, 4, 2, 2, &p), EPLB_EINVAL);
  assert_int_equal(eplb_placement_initial(1, 4, 2, 0, &p), EPLB_EINVAL);
  assert_int_equal(eplb_placement_initial(1, 4, 2, 2, NULL), EPLB_EINVAL);
  assert_true(eplb_last_error()[0] != '\0');
}

/* ---- alignment ---- */

/* Independent count of the positions alignment can keep: per (layer, device, expert), the
 * smaller of its occurrences among the old device's first min(Sf, St) positions and in `to`. */
static int64_t max_keeps(const eplb_placement *from, const eplb_placement *to) {
  int32_t G = to->num_gpus, St = to->num_slots / G, Sf = from->num_slots / G;
  int32_t n = St < Sf ? St : Sf;
  int64_t keeps = 0;
  for (int32_t l = 0; l < to->num_layers; l++)
    for (int32_t d = 0; d < G; d++)
      for (int32_t e = 0; e < to->num_experts; e++) {
        int64_t a = 0, b = 0;
        for (int32_t i = 0; i < n; i++)
          a += from->phy2log[(size_t)l * from->num_slots + d * Sf + i] == e;
        for (int32_t i = 0; i < St; i++)
          b += to->phy2log[(size_t)l * to->num_slots + d * St + i] == e;
        keeps += a < b ? a : b;
      }
  return keeps;
}

static void align_keeps_every_staying_expert_in_its_slot(void **state) {
  (void)state;
  uint64_t rng = 11;
  for (int trial = 0; trial < 20; trial++) {
    int32_t G = 4, E = 12, Sf = 3 + trial % 3, St = 3 + (trial / 3) % 4;
    eplb_placement *from = tm_random_placement(3, E, G, Sf, &rng);
    eplb_placement *to = tm_random_placement(3, E, G, St, &rng), *orig = NULL;
    assert_non_null(from);
    assert_non_null(to);
    assert_int_equal(eplb_placement_clone(to, &orig), 0);
    int64_t best = max_keeps(from, to);
    assert_int_equal(eplb_placement_align(to, from), 0);
    int64_t keeps = 0;
    for (int32_t l = 0; l < 3; l++)
      for (int32_t d = 0; d < G; d++)
        for (int32_t i = 0; i < St && i < Sf; i++)
          keeps += to->phy2log[l * G * St + d * St + i] == from->phy2log[l * G * Sf + d * Sf + i];
    assert_int_equal(keeps, best);
    /* Same multiset per device, valid index. */
    assert_int_equal(eplb_placement_validate(to, 0), 0);
    for (int32_t l = 0; l < 3; l++)
      for (int32_t d = 0; d < G; d++)
        for (int32_t e = 0; e < E; e++) {
          int a = 0, b = 0;
          for (int32_t i = 0; i < St; i++) {
            a += to->phy2log[l * G * St + d * St + i] == e;
            b += orig->phy2log[l * G * St + d * St + i] == e;
          }
          assert_int_equal(a, b);
        }
    eplb_placement_free(from), eplb_placement_free(to), eplb_placement_free(orig);
  }
}

static void align_rejects_shape_mismatch_and_leaves_to_unchanged(void **state) {
  (void)state;
  eplb_placement *a = NULL, *b = NULL;
  assert_int_equal(eplb_placement_initial(1, 8, 4, 2, &a), 0);
  assert_int_equal(eplb_placement_initial(1, 8, 2, 4, &b), 0);
  int32_t before[8];
  memcpy(before, b->phy2log, sizeof before);
  assert_int_equal(eplb_placement_align(b, a), EPLB_EINVAL);
  assert_memory_equal(b->phy2log, before, sizeof before);
  b->phy2log[3] = 99; /* bad id */
  eplb_placement_free(a);
  assert_int_equal(eplb_placement_initial(1, 8, 2, 4, &a), 0);
  assert_int_equal(eplb_placement_align(b, a), EPLB_EINVALID);
  assert_int_equal(b->phy2log[3], 99);
  eplb_placement_free(a), eplb_placement_free(b);
}

/* ---- relabelling ---- */

/* Distinct experts new device d (list `to_dev`, St slots) shares with old device list `old`. */
static int64_t shared(const int32_t *to_dev, int32_t St, const int32_t *old, int32_t Sf) {
  int64_t n = 0;
  for (int32_t i = 0; i < St; i++) {
    int first = 1, held = 0;
    for (int32_t j = 0; j < i; j++)
      first &= to_dev[j] != to_dev[i];
    for (int32_t j = 0; j < Sf; j++)
      held |= old[j] == to_dev[i];
    n += first && held;
  }
  return n;
}

/* Best overlap of layer l over every node-preserving permutation of to's devices (brute force
 * over all G! permutations, keeping those that send each node's devices to one node). */
static int64_t brute_best(const eplb_placement *from, const eplb_placement *to, int32_t l,
                          int32_t P) {
  int32_t G = to->num_gpus, St = to->num_slots / G, Sf = from->num_slots / G, perm[8];
  for (int32_t i = 0; i < G; i++)
    perm[i] = i;
  int64_t best = -1;
  for (;;) {
    int whole = 1; /* perm[d] = the old rank new device d goes to */
    for (int32_t d = 0; d < G; d++)
      whole &= perm[d] / P == perm[d - d % P] / P;
    if (whole) {
      int64_t sum = 0;
      for (int32_t d = 0; d < G; d++)
        sum += shared(to->phy2log + (size_t)l * to->num_slots + d * St, St,
                      from->phy2log + (size_t)l * from->num_slots + perm[d] * Sf, Sf);
      best = sum > best ? sum : best;
    }
    int32_t i = G - 2; /* next permutation in lexicographic order */
    while (i >= 0 && perm[i] > perm[i + 1])
      i--;
    if (i < 0)
      break;
    int32_t j = G - 1;
    while (perm[j] < perm[i])
      j--;
    int32_t t = perm[i];
    perm[i] = perm[j], perm[j] = t;
    for (int32_t a = i + 1, b = G - 1; a < b; a++, b--)
      t = perm[a], perm[a] = perm[b], perm[b] = t;
  }
  return best;
}

static void relabel_finds_the_best_node_preserving_renumbering(void **state) {
  (void)state;
  uint64_t rng = 21;
  const int32_t shapes[][3] = {{4, 4, 4}, {4, 2, 3}, {6, 3, 2}, {6, 2, 4}, {6, 6, 3}, {8, 4, 2}};
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    int32_t G = shapes[c][0], P = shapes[c][1], S = shapes[c][2], E = G * S - G / 2;
    eplb_placement *from = tm_random_placement(2, E, G, S, &rng);
    eplb_placement *to = tm_random_placement(2, E, G, S + (int32_t)(c % 2), &rng), *orig = NULL;
    assert_int_equal(eplb_placement_clone(to, &orig), 0);
    assert_int_equal(eplb_placement_relabel(to, from, P), 0);
    int32_t St = to->num_slots / G;
    for (int32_t l = 0; l < 2; l++) {
      int64_t got = 0;
      for (int32_t d = 0; d < G; d++)
        got += shared(to->phy2log + (size_t)l * to->num_slots + d * St, St,
                      from->phy2log + (size_t)l * from->num_slots + d * S, S);
      assert_int_equal(got, brute_best(from, orig, l, P));
      /* The device lists are the original ones, each used once, nodes kept whole. */
      int used[8] = {0}, src_node[8];
      for (int32_t d = 0; d < G; d++) {
        int32_t match = -1;
        for (int32_t o = 0; o < G && match < 0; o++)
          if (!used[o] && !memcmp(to->phy2log + (size_t)l * to->num_slots + d * St,
                                  orig->phy2log + (size_t)l * to->num_slots + o * St,
                                  (size_t)St * sizeof(int32_t)))
            match = o;
        assert_true(match >= 0);
        used[match] = 1;
        src_node[d] = match / P;
        assert_int_equal(src_node[d], src_node[d - d % P]);
      }
    }
    assert_int_equal(eplb_placement_validate(to, 0), 0);
    /* Fewer or equal receives than without relabelling. */
    eplb_transfer_opts o;
    eplb_transfer_opts_init(&o);
    o.gpus_per_node = P;
    eplb_transfer *plain = NULL, *re = NULL;
    assert_int_equal(eplb_transfer_plan_ex(from, orig, &o, &plain), 0);
    o.relabel = 1;
    assert_int_equal(eplb_transfer_plan_ex(from, orig, &o, &re), 0);
    assert_true(re->stats.receives <= plain->stats.receives);
    /* The upstream way's figures describe the map as given, relabelled or not. */
    assert_int_equal(re->stats.upstream_remote, plain->stats.upstream_remote);
    assert_int_equal(re->stats.upstream_max_sent, plain->stats.upstream_max_sent);
    assert_int_equal(re->stats.receives, tm_needed_receives(from, re->to));
    simulate_plan(re, from);
    eplb_transfer_free(plain), eplb_transfer_free(re);
    eplb_placement_free(from), eplb_placement_free(to), eplb_placement_free(orig);
  }
}

static void relabel_of_a_renumbered_layout_moves_nothing(void **state) {
  (void)state;
  uint64_t rng = 5;
  eplb_placement *from = tm_random_placement(3, 20, 8, 4, &rng), *to = NULL;
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  for (int32_t l = 0; l < 3; l++) /* swap the two nodes of 4, reverse devices inside them */
    for (int32_t d = 0; d < 8; d++)
      memcpy(to->phy2log + l * 32 + d * 4,
             from->phy2log + l * 32 + ((d + 4) % 8 / 4 * 4 + 3 - d % 4) * 4, 4 * sizeof(int32_t));
  assert_int_equal(eplb_placement_build_index(to), 0);
  eplb_transfer_opts o;
  eplb_transfer_opts_init(&o);
  o.gpus_per_node = 4;
  o.relabel = 1;
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), 0);
  assert_int_equal(plan->stats.receives, 0);
  assert_int_equal(plan->stats.keeps, plan->stats.slots);
  eplb_transfer_free(plan);
  assert_int_equal(eplb_placement_relabel(to, from, 3), EPLB_EINVAL);
  eplb_placement_free(from), eplb_placement_free(to);
}

/* ---- transfer plans ---- */

static void plan_receives_are_minimal_on_random_pairs(void **state) {
  (void)state;
  uint64_t rng = 7;
  for (int trial = 0; trial < 40; trial++) {
    int32_t G = 2 + trial % 7, E = 6 + trial % 11;
    int32_t Sf = (E + G - 1) / G + trial % 2, St = (E + G - 1) / G + (trial / 2) % 3;
    if (Sf > E)
      Sf = E;
    if (St > E)
      St = E;
    eplb_placement *from = tm_random_placement(4, E, G, Sf, &rng);
    eplb_placement *to = tm_random_placement(4, E, G, St, &rng);
    eplb_transfer_opts o;
    eplb_transfer_opts_init(&o);
    o.align = trial % 3 != 0;
    eplb_transfer *plan = NULL;
    assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), 0);
    int64_t n[4];
    count_kinds(plan, n);
    assert_int_equal(n[EPLB_XFER_RECV], tm_needed_receives(from, to));
    assert_int_equal(plan->stats.receives, n[EPLB_XFER_RECV]);
    assert_int_equal(plan->stats.keeps, n[EPLB_XFER_KEEP]);
    assert_int_equal(plan->stats.local_copies, n[EPLB_XFER_LOCAL] + n[EPLB_XFER_DUP]);
    assert_int_equal(plan->stats.slots, 4 * G * St);
    simulate_plan(plan, from);
    if (Sf == St)
      check_staging(plan, from);
    if (o.align)
      assert_int_equal(n[EPLB_XFER_KEEP], max_keeps(from, to));
    eplb_transfer_free(plan);
    eplb_placement_free(from), eplb_placement_free(to);
  }
}

static void plan_with_nothing_moving_keeps_every_slot(void **state) {
  (void)state;
  uint64_t rng = 3;
  eplb_placement *p = tm_random_placement(3, 16, 4, 5, &rng);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(p, p, &plan), 0);
  assert_int_equal(plan->stats.keeps, 3 * 20);
  assert_int_equal(plan->stats.receives, 0);
  assert_int_equal(plan->stats.local_copies, 0);
  assert_int_equal(plan->stats.staging_slots, 0);
  assert_int_equal(plan->stats.max_sent, 0);
  eplb_transfer_free(plan);
  eplb_placement_free(p);
}

/* A plan from `from` to `from` with every layer's slots rotated by `shift` (slot s gets the
 * expert of slot s + shift). */
static eplb_transfer *rotated_plan(const eplb_placement *from, int32_t shift) {
  eplb_placement *to = NULL;
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  int32_t R = from->num_slots;
  for (int32_t l = 0; l < from->num_layers; l++)
    for (int32_t s = 0; s < R; s++)
      to->phy2log[l * R + s] = from->phy2log[l * R + (s + shift) % R];
  assert_int_equal(eplb_placement_build_index(to), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  eplb_placement_free(to);
  return plan;
}

/* Runs a layer's rounds as eplb.torch.migrate does and asserts that no slot is written before
 * every read of its old content is over: a RECV reader's send completes at the end of its
 * round, a LOCAL reader reads during its round (before the round's receives land, and before
 * the slot it reads, when that one is written by a local copy of the same round: readers of a
 * slot are then all done, the executor orders them). A staged slot's readers read the staging
 * area. Rounds are 0..3 (the wait bound), and every slot that reads nothing waits for nothing. */
static void rounds_never_overwrite_unread_content(void **state) {
  (void)state;
  uint64_t rng = 11;
  for (int trial = 0; trial < 60; trial++) {
    int32_t G = 2 + trial % 7, E = 6 + trial % 11, S = (E + G - 1) / G + trial % 2;
    if (S > E)
      S = E;
    eplb_placement *from = tm_random_placement(3, E, G, S, &rng);
    eplb_placement *to = tm_random_placement(3, E, G, S, &rng);
    eplb_transfer *plan = NULL;
    assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
    int32_t R = plan->to_slots;
    for (int32_t l = 0; l < 3; l++) {
      const eplb_xfer *x = plan->xfers + (size_t)l * R;
      const int32_t *step = plan->step + (size_t)l * R;
      const uint8_t *staged = plan->staged + (size_t)l * R;
      for (int32_t c = 0; c < R; c++) {
        int reads = x[c].kind == EPLB_XFER_RECV || x[c].kind == EPLB_XFER_LOCAL;
        assert_in_range(step[c], 0, EPLB__STAGE_MAX_WAIT);
        if (!reads) {
          assert_int_equal(step[c], 0);
          continue;
        }
        int32_t u = x[c].src_slot; /* c reads u's old content */
        if (staged[u] || x[u].kind == EPLB_XFER_KEEP || x[u].kind == EPLB_XFER_DUP)
          continue; /* read from staging, or u keeps its content until the DUPs at the end */
        int32_t done = step[c] + (x[c].kind == EPLB_XFER_RECV);
        assert_true(step[u] >= done);
      }
    }
    eplb_transfer_free(plan);
    eplb_placement_free(from), eplb_placement_free(to);
  }
}

/* Total staged slots of layer l. */
static int32_t staged_in_layer(const eplb_transfer *plan, int32_t l) {
  int32_t n = 0;
  for (int32_t d = 0; d < plan->num_gpus; d++)
    n += eplb_transfer_staging_slots(plan, l, d);
  return n;
}

static void plan_stages_cycles_and_long_chains_only(void **state) {
  (void)state;
  eplb_placement *from = NULL, *to = NULL;
  /* A swap of all 4 slots between 2 ranks: 4 cycles of two, one staged each, 2 per rank. */
  assert_int_equal(eplb_placement_initial(1, 8, 2, 4, &from), 0);
  eplb_transfer *plan = rotated_plan(from, 4);
  assert_int_equal(staged_in_layer(plan, 0), 4);
  assert_int_equal(eplb_transfer_staging_slots(plan, 0, 0), 2);
  assert_int_equal(eplb_transfer_staging_slots(plan, 0, 1), 2);
  check_staging(plan, from);
  eplb_transfer_free(plan), eplb_placement_free(from);
  /* Three ranks passing their 2 slots around: 2 cycles of three, staged on different ranks. */
  assert_int_equal(eplb_placement_initial(1, 6, 3, 2, &from), 0);
  plan = rotated_plan(from, 2);
  assert_int_equal(staged_in_layer(plan, 0), 2);
  assert_int_equal(plan->stats.staging_slots, 1);
  check_staging(plan, from);
  eplb_transfer_free(plan), eplb_placement_free(from);
  /* One cycle through 8 ranks of one slot: staged at rank 0 (cutting the cycle), then slot 1
   * waits 1 message time, 2 waits 2, 3 waits 3, 4 would wait 4 > 3: staged. */
  assert_int_equal(eplb_placement_initial(1, 8, 8, 1, &from), 0);
  plan = rotated_plan(from, 1);
  assert_int_equal(staged_in_layer(plan, 0), 2);
  assert_int_equal(plan->staged[0], 1);
  assert_int_equal(plan->staged[4], 1);
  check_staging(plan, from);
  eplb_transfer_free(plan), eplb_placement_free(from);
  /* A chain without a cycle, 3 message times long: rank d's slot 0 takes rank d+1's, rank 3's
   * slot 0 takes expert 1 (kept on rank 0), expert 0 is dropped. Nothing is staged; the simple
   * rule stages 3 (ranks 1, 2, 3 receive into a slot still to be sent). */
  assert_int_equal(eplb_placement_initial(1, 8, 4, 2, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  const int32_t row[8] = {2, 1, 4, 3, 6, 5, 1, 7};
  memcpy(to->phy2log, row, sizeof row);
  assert_int_equal(eplb_placement_build_index(to), 0);
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  assert_int_equal(plan->stats.receives, 4);
  assert_int_equal(staged_in_layer(plan, 0), 0);
  check_staging(plan, from);
  eplb_transfer_free(plan), eplb_placement_free(from), eplb_placement_free(to);
  /* Different slot counts cannot move in place: nothing is staged. */
  assert_int_equal(eplb_placement_initial(1, 8, 2, 4, &from), 0);
  assert_int_equal(eplb_placement_initial(1, 8, 2, 5, &to), 0);
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  assert_int_equal(plan->stats.staging_slots, 0);
  eplb_transfer_free(plan), eplb_placement_free(from), eplb_placement_free(to);
}

static void plan_with_everything_moving_receives_every_slot(void **state) {
  (void)state;
  /* Initial blocks shifted by one device: no device keeps any of its experts. */
  eplb_placement *from = NULL, *to = NULL;
  assert_int_equal(eplb_placement_initial(2, 12, 4, 3, &from), 0);
  assert_int_equal(eplb_placement_clone(from, &to), 0);
  for (int32_t l = 0; l < 2; l++)
    for (int32_t s = 0; s < 12; s++)
      to->phy2log[l * 12 + s] = from->phy2log[l * 12 + (s + 3) % 12];
  assert_int_equal(eplb_placement_build_index(to), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  assert_int_equal(plan->stats.receives, 24);
  assert_int_equal(plan->stats.keeps, 0);
  assert_int_equal(plan->stats.max_sent, 6);
  assert_int_equal(plan->stats.max_received, 6);
  /* In place, slot i of rank d waits for slot i of rank d-1, ...: three cycles of 4 ranks
   * (slot index 0, 1, 2), each staged once, on different ranks; the simple rule would stage
   * all 3 slots of every rank. */
  assert_int_equal(plan->stats.staging_slots, 1);
  check_staging(plan, from);
  simulate_plan(plan, from);
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

/* Builds a one-layer placement of G devices from a literal phy2log. */
static eplb_placement *literal(int32_t E, int32_t G, int32_t R, const int32_t *row) {
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_create(1, E, R, G, &p), 0);
  memcpy(p->phy2log, row, (size_t)R * sizeof *row);
  assert_int_equal(eplb_placement_build_index(p), 0);
  return p;
}

static void plan_spreads_senders_of_a_hot_expert(void **state) {
  (void)state;
  /* Expert 0 is on ranks 0..3; ranks 4..7 all need it (and drop one expert each, which the
   * plan allows): four senders, one copy each, not four copies from one home rank. */
  const int32_t from_row[16] = {0, 1, 0, 2, 0, 3, 0, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const int32_t to_row[16] = {0, 1, 0, 2, 0, 3, 0, 4, 0, 6, 0, 8, 0, 10, 0, 12};
  eplb_placement *from = literal(13, 8, 16, from_row), *to = literal(13, 8, 16, to_row);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  int sent[8] = {0};
  for (int32_t s = 0; s < 16; s++)
    if (plan->xfers[s].kind == EPLB_XFER_RECV && plan->xfers[s].expert == 0)
      sent[plan->xfers[s].src_rank]++;
  for (int r = 0; r < 4; r++)
    assert_int_equal(sent[r], 1);
  assert_int_equal(plan->stats.max_layer_sent, 1);
  assert_int_equal(plan->stats.receives, 4);
  simulate_plan(plan, from);
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

static void plan_prefers_a_sender_on_the_same_node(void **state) {
  (void)state;
  /* 4 ranks, nodes {0,1} {2,3}; expert 0 on ranks 0 and 2; rank 3 needs it. */
  const int32_t from_row[8] = {0, 1, 2, 3, 0, 4, 5, 6};
  const int32_t to_row[8] = {0, 1, 2, 3, 4, 5, 6, 0};
  eplb_placement *from = literal(7, 4, 8, from_row), *to = literal(7, 4, 8, to_row);
  eplb_transfer_opts o;
  eplb_transfer_opts_init(&o);
  o.gpus_per_node = 2;
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), 0);
  const eplb_xfer *x = eplb_transfer_layer(plan, 0);
  int found = 0;
  for (int32_t s = 6; s < 8; s++)
    if (x[s].expert == 0) {
      assert_int_equal(x[s].kind, EPLB_XFER_RECV);
      assert_int_equal(x[s].src_rank, 2);
      found = 1;
    }
  assert_true(found);
  eplb_transfer_free(plan);
  o.gpus_per_node = 3; /* does not divide 4 */
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), EPLB_EINVAL);
  assert_null(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

static void plan_receives_a_duplicated_expert_once(void **state) {
  (void)state;
  /* Rank 1 gets expert 0 twice in `to` but holds none: one RECV and one DUP. */
  const int32_t from_row[6] = {0, 1, 2, 3, 4, 5};
  const int32_t to_row[6] = {0, 1, 0, 0, 4, 5};
  eplb_placement *from = literal(6, 3, 6, from_row), *to = NULL;
  assert_int_equal(eplb_placement_create(1, 6, 6, 3, &to), 0);
  memcpy(to->phy2log, to_row, sizeof to_row);
  /* experts 2 and 3 vanish from `to`: a plan does not need every expert in `to` */
  eplb_placement_build_index(to);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  int64_t n[4];
  count_kinds(plan, n);
  assert_int_equal(n[EPLB_XFER_RECV], 1);
  assert_int_equal(n[EPLB_XFER_DUP], 1);
  assert_int_equal(n[EPLB_XFER_RECV], tm_needed_receives(from, to));
  simulate_plan(plan, from);
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

static void plan_rejects_mismatched_or_incomplete_layouts(void **state) {
  (void)state;
  eplb_placement *a = NULL, *b = NULL;
  eplb_transfer *plan = (eplb_transfer *)1;
  assert_int_equal(eplb_placement_initial(1, 8, 4, 2, &a), 0);
  assert_int_equal(eplb_placement_initial(1, 8, 2, 4, &b), 0);
  assert_int_equal(eplb_transfer_plan(a, b, &plan), EPLB_EINVAL);
  assert_null(plan);
  eplb_placement_free(b);
  assert_int_equal(eplb_placement_initial(1, 8, 4, 2, &b), 0);
  b->layer_ids[0] = 5;
  assert_int_equal(eplb_transfer_plan(a, b, &plan), EPLB_EINVAL);
  b->layer_ids[0] = 0;
  a->phy2log[0] = 1; /* old layout lacks expert 0, the new one needs it */
  assert_int_equal(eplb_transfer_plan(a, b, &plan), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "expert 0"));
  a->phy2log[0] = -3;
  assert_int_equal(eplb_transfer_plan(a, b, &plan), EPLB_EINVALID);
  assert_int_equal(eplb_transfer_plan(NULL, b, &plan), EPLB_EINVAL);
  eplb_placement_free(a), eplb_placement_free(b);
}

static void plan_rejects_a_missing_expert_that_align_moves_first(void **state) {
  (void)state;
  /* One device, old slots {0, 1}, new {1, 2}: aligning keeps expert 1 in slot 1 and moves the
   * missing expert 2 to slot 0, ahead of the slot the caller gave it. Before the check of every
   * expert up front the planner read and wrote the sender tables at index -1 (ASan). */
  const int32_t from_row[2] = {0, 1}, to_row[2] = {1, 2};
  eplb_placement *from = literal(3, 1, 2, from_row), *to = literal(3, 1, 2, to_row);
  eplb_transfer *plan = (eplb_transfer *)1;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), EPLB_EINVALID);
  assert_null(plan);
  assert_non_null(strstr(eplb_last_error(), "layer 0: expert 2 (slot 1 of the new layout)"));
  /* the same without align, and with relabel: one error, same detail */
  eplb_transfer_opts o;
  eplb_transfer_opts_init(&o);
  o.align = 0;
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "layer 0: expert 2"));
  o.align = 1, o.relabel = 1;
  assert_int_equal(eplb_transfer_plan_ex(from, to, &o, &plan), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "layer 0: expert 2"));
  assert_int_equal(to->phy2log[0], 1); /* the caller's `to` is not modified */
  assert_int_equal(to->phy2log[1], 2);
  /* a later layer is named by its id */
  eplb_placement *f2 = NULL, *t2 = NULL;
  assert_int_equal(eplb_placement_create(2, 3, 2, 1, &f2), 0);
  assert_int_equal(eplb_placement_create(2, 3, 2, 1, &t2), 0);
  const int32_t f2_rows[4] = {0, 1, 0, 1}, t2_rows[4] = {1, 0, 1, 2};
  memcpy(f2->phy2log, f2_rows, sizeof f2_rows), memcpy(t2->phy2log, t2_rows, sizeof t2_rows);
  f2->layer_ids[1] = t2->layer_ids[1] = 7;
  assert_int_equal(eplb_transfer_plan(f2, t2, &plan), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "layer 7: expert 2"));
  eplb_placement_free(f2), eplb_placement_free(t2);
  eplb_placement_free(from), eplb_placement_free(to);
}

static void plan_counts_upstream_copies_from_home_ranks(void **state) {
  (void)state;
  /* initial (4 ranks x 2) -> 12 slots where hot expert 0 is on every rank. */
  const int32_t to_row[12] = {0, 1, 2, 0, 3, 4, 0, 5, 6, 0, 7, 1};
  eplb_placement *from = NULL, *to = literal(8, 4, 12, to_row);
  assert_int_equal(eplb_placement_initial(1, 8, 4, 2, &from), 0);
  eplb_transfer *plan = NULL;
  assert_int_equal(eplb_transfer_plan(from, to, &plan), 0);
  assert_int_equal(plan->stats.upstream_copies, 12);
  /* home of e is rank e/2: remote fetches are slots whose rank differs from e/2 */
  int64_t remote = 0;
  for (int32_t s = 0; s < 12; s++)
    remote += to_row[s] / 2 != s / 3;
  assert_int_equal(plan->stats.upstream_remote, remote);
  /* rank 0 (home of 0 and 1) sends expert 0 to ranks 1, 2, 3 and expert 1 to rank 3 */
  assert_int_equal(plan->stats.upstream_max_sent, 4);
  assert_int_equal(plan->stats.receives, tm_needed_receives(from, to));
  eplb_transfer_free(plan);
  eplb_placement_free(from), eplb_placement_free(to);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(initial_is_contiguous_blocks_with_k_e_over_g),
      cmocka_unit_test(initial_wraps_with_larger_k),
      cmocka_unit_test(initial_rejects_bad_sizes),
      cmocka_unit_test(align_keeps_every_staying_expert_in_its_slot),
      cmocka_unit_test(align_rejects_shape_mismatch_and_leaves_to_unchanged),
      cmocka_unit_test(relabel_finds_the_best_node_preserving_renumbering),
      cmocka_unit_test(relabel_of_a_renumbered_layout_moves_nothing),
      cmocka_unit_test(plan_receives_are_minimal_on_random_pairs),
      cmocka_unit_test(plan_with_nothing_moving_keeps_every_slot),
      cmocka_unit_test(plan_with_everything_moving_receives_every_slot),
      cmocka_unit_test(plan_stages_cycles_and_long_chains_only),
      cmocka_unit_test(rounds_never_overwrite_unread_content),
      cmocka_unit_test(plan_spreads_senders_of_a_hot_expert),
      cmocka_unit_test(plan_prefers_a_sender_on_the_same_node),
      cmocka_unit_test(plan_receives_a_duplicated_expert_once),
      cmocka_unit_test(plan_rejects_mismatched_or_incomplete_layouts),
      cmocka_unit_test(plan_rejects_a_missing_expert_that_align_moves_first),
      cmocka_unit_test(plan_counts_upstream_copies_from_home_ranks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
