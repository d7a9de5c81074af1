/* test_route.c - the routing table: tokens' logical experts to physical slots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "test_move_util.h"

#define N_TOKENS 4096

/* A random placement with replicas (R = 2E on G devices) and a random token stream. */
static eplb_placement *fixture(int32_t **ids, uint64_t seed) {
  uint64_t rng = seed;
  eplb_placement *p = tm_random_placement(2, 16, 4, 8, &rng);
  assert_non_null(p);
  *ids = malloc(N_TOKENS * sizeof **ids);
  for (int i = 0; i < N_TOKENS; i++)
    (*ids)[i] = (int32_t)tm_rand(&rng, 16);
  return p;
}

static void every_mapped_slot_holds_the_tokens_expert(void **state) {
  (void)state;
  int32_t *ids, slots[N_TOKENS];
  eplb_placement *p = fixture(&ids, 1);
  for (int mode = 0; mode < 2; mode++)
    for (int32_t l = 0; l < 2; l++)
      for (int32_t rank = 0; rank < 4; rank++) {
        assert_int_equal(eplb_route_nodes(p, l, ids, N_TOKENS, slots, (eplb_route_mode)mode, rank,
                                          2),
                         0);
        for (int i = 0; i < N_TOKENS; i++) {
          assert_in_range(slots[i], 0, p->num_slots - 1);
          assert_int_equal(p->phy2log[l * p->num_slots + slots[i]], ids[i]);
        }
      }
  free(ids);
  eplb_placement_free(p);
}

static void round_robin_spreads_tokens_evenly_over_replicas(void **state) {
  (void)state;
  int32_t *ids, slots[N_TOKENS];
  eplb_placement *p = fixture(&ids, 2);
  /* A stream of one expert: token i goes to replica i mod count, so counts differ by <= 1. */
  for (int32_t e = 0; e < 16; e++) {
    for (int i = 0; i < N_TOKENS; i++)
      ids[i] = e;
    assert_int_equal(eplb_route(p, 1, ids, N_TOKENS, slots, EPLB_ROUTE_ROUND_ROBIN, 0), 0);
    int hits[32] = {0};
    for (int i = 0; i < N_TOKENS; i++)
      hits[slots[i]]++;
    int32_t cnt = p->logcnt[16 + e], lo = N_TOKENS, hi = 0, used = 0;
    for (int32_t s = 0; s < 32; s++)
      if (p->phy2log[32 + s] == e) {
        used++;
        lo = hits[s] < lo ? hits[s] : lo;
        hi = hits[s] > hi ? hits[s] : hi;
      }
    assert_int_equal(used, cnt);
    assert_true(hi - lo <= 1);
    assert_int_equal(lo, N_TOKENS / cnt);
  }
  free(ids);
  eplb_placement_free(p);
}

static void prefer_local_uses_the_callers_rank_then_its_node(void **state) {
  (void)state;
  /* 4 ranks x 2 slots, nodes {0,1} {2,3}: expert 0 on ranks 1 and 2, expert 1 on rank 3 only. */
  const int32_t row[8] = {2, 3, 0, 4, 0, 5, 1, 6};
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_create(1, 7, 8, 4, &p), 0);
  memcpy(p->phy2log, row, sizeof row);
  assert_int_equal(eplb_placement_build_index(p), 0);
  int32_t ids[6] = {0, 0, 0, 1, 1, 1}, slots[6];
  assert_int_equal(eplb_route_nodes(p, 0, ids, 6, slots, EPLB_ROUTE_PREFER_LOCAL, 2, 2), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(slots[i], 4); /* on rank 2 itself */
  for (int i = 3; i < 6; i++)
    assert_int_equal(slots[i], 6); /* the only replica */
  assert_int_equal(eplb_route_nodes(p, 0, ids, 6, slots, EPLB_ROUTE_PREFER_LOCAL, 0, 2), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(slots[i], 2); /* rank 0 lacks it; rank 1 is on its node */
  /* One node: rank 3 has no replica of 0, so both are used round robin. */
  assert_int_equal(eplb_route(p, 0, ids, 6, slots, EPLB_ROUTE_PREFER_LOCAL, 3), 0);
  assert_int_equal(slots[0], 2);
  assert_int_equal(slots[1], 4);
  assert_int_equal(slots[2], 2);
  eplb_placement_free(p);
}

static void routing_is_deterministic(void **state) {
  (void)state;
  int32_t *ids, a[N_TOKENS], b[N_TOKENS];
  eplb_placement *p = fixture(&ids, 3);
  for (int mode = 0; mode < 2; mode++) {
    assert_int_equal(eplb_route(p, 0, ids, N_TOKENS, a, (eplb_route_mode)mode, 1), 0);
    assert_int_equal(eplb_route(p, 0, ids, N_TOKENS, b, (eplb_route_mode)mode, 1), 0);
    assert_memory_equal(a, b, sizeof a);
  }
  free(ids);
  eplb_placement_free(p);
}

/* In a tokens x top-2 array where every token's first choice is one hot expert with two
 * replicas, the expert's ids sit at even positions only; they still split evenly over both
 * replicas (a rule by position would send them all to one), in both modes. */
static void replicas_share_an_experts_tokens_whatever_their_positions(void **state) {
  (void)state;
  uint64_t rng = 6;
  eplb_placement *p = tm_random_placement(1, 16, 4, 8, &rng);
  int32_t hot = -1;
  for (int32_t e = 0; e < 16 && hot < 0; e++)
    if (p->logcnt[e] == 2)
      hot = e;
  assert_true(hot >= 0);
  int32_t ids[2 * 512], slots[2 * 512];
  for (int t = 0; t < 512; t++) {
    ids[2 * t] = hot;
    ids[2 * t + 1] = (hot + 1 + t % 15) % 16;
  }
  for (int mode = 0; mode < 2; mode++) {
    /* From a rank holding neither replica, both are candidates in both modes. */
    int32_t rank = 0;
    while (p->log2phy[hot * p->max_replicas] / 8 == rank ||
           p->log2phy[hot * p->max_replicas + 1] / 8 == rank)
      rank++;
    assert_int_equal(eplb_route(p, 0, ids, 1024, slots, (eplb_route_mode)mode, rank), 0);
    int on_first = 0;
    for (int t = 0; t < 512; t++)
      on_first += slots[2 * t] == p->log2phy[hot * p->max_replicas];
    assert_int_equal(on_first, 256);
  }
  eplb_placement_free(p);
}

/* eplb_route_table() is eplb_route_nodes() as a table: the n-th id of expert e goes to
 * slots[e*X + n % counts[e]], in both modes, from every rank, with and without nodes. */
static void route_table_gives_the_slot_route_picks(void **state) {
  (void)state;
  int32_t *ids, slots[N_TOKENS];
  eplb_placement *p = fixture(&ids, 5);
  int32_t E = p->num_experts, X = p->max_replicas;
  int32_t *table = malloc((size_t)E * X * sizeof *table), counts[16];
  for (int mode = 0; mode < 2; mode++)
    for (int32_t ppn = 0; ppn <= 2; ppn += 2)
      for (int32_t l = 0; l < 2; l++)
        for (int32_t rank = 0; rank < 4; rank++) {
          assert_int_equal(eplb_route_table(p, l, (eplb_route_mode)mode, rank, ppn, table, counts),
                           0);
          assert_int_equal(eplb_route_nodes(p, l, ids, N_TOKENS, slots, (eplb_route_mode)mode,
                                            rank, ppn),
                           0);
          int32_t seen[16] = {0};
          for (int i = 0; i < N_TOKENS; i++) {
            int32_t e = ids[i];
            assert_in_range(counts[e], 1, X);
            assert_int_equal(slots[i], table[e * X + seen[e]++ % counts[e]]);
          }
        }
  assert_int_equal(eplb_route_table(p, 2, EPLB_ROUTE_ROUND_ROBIN, 0, 0, table, counts),
                   EPLB_EINVAL);
  assert_int_equal(eplb_route_table(p, 0, EPLB_ROUTE_ROUND_ROBIN, 0, 3, table, counts),
                   EPLB_EINVAL);
  assert_int_equal(eplb_route_table(p, 0, EPLB_ROUTE_ROUND_ROBIN, 0, 0, NULL, counts),
                   EPLB_EINVAL);
  free(table);
  free(ids);
  eplb_placement_free(p);
}

static void route_rejects_bad_arguments(void **state) {
  (void)state;
  int32_t *ids, slots[4];
  eplb_placement *p = fixture(&ids, 4);
  int32_t bad[2] = {3, 16};
  assert_int_equal(eplb_route(p, 0, bad, 2, slots, EPLB_ROUTE_ROUND_ROBIN, 0), EPLB_ERANGE);
  assert_non_null(strstr(eplb_last_error(), "token 1"));
  assert_int_equal(eplb_route(p, 2, ids, 2, slots, EPLB_ROUTE_ROUND_ROBIN, 0), EPLB_EINVAL);
  assert_int_equal(eplb_route(p, 0, ids, 2, slots, EPLB_ROUTE_ROUND_ROBIN, 4), EPLB_EINVAL);
  assert_int_equal(eplb_route(p, 0, ids, 2, slots, (eplb_route_mode)7, 0), EPLB_EINVAL);
  assert_int_equal(eplb_route_nodes(p, 0, ids, 2, slots, EPLB_ROUTE_PREFER_LOCAL, 0, 3),
                   EPLB_EINVAL);
  assert_int_equal(eplb_route(NULL, 0, ids, 2, slots, EPLB_ROUTE_ROUND_ROBIN, 0), EPLB_EINVAL);
  free(ids);
  eplb_placement_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_mapped_slot_holds_the_tokens_expert),
      cmocka_unit_test(round_robin_spreads_tokens_evenly_over_replicas),
      cmocka_unit_test(prefer_local_uses_the_callers_rank_then_its_node),
      cmocka_unit_test(routing_is_deterministic),
      cmocka_unit_test(replicas_share_an_experts_tokens_whatever_their_positions),
      cmocka_unit_test(route_table_gives_the_slot_route_picks),
      cmocka_unit_test(route_rejects_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
