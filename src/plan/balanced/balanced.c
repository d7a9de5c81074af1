/* balanced.c - the balanced policy: each layer goes through the stages of README.md (locality,
 * bounds and counts, placement under the rule, improvement search), then the whole plan through
 * the safety net. This file holds the order of the stages and the engine's settings per
 * locality mode; the stages are in the other files of this folder. */
#include <stdlib.h>
#include <string.h>

#include "plan/balanced/balanced.h"
#include "plan/plan_int.h"

/* Replica-count refinement rounds per pool (deterministic cap). */
#define COUNT_ROUNDS 24
/* Soft pools get more: count rounds are their only move past the first-replica rule (measured
 * at R 320 on the benchmark: 64 -> 256 rounds, 653 -> 663 of 696 layers within 1% of none for
 * 5% more time; 512 find nothing further). */
#define SOFT_ROUNDS 256
/* Strict: a node's search stops within this share of the heaviest node's bound. */
#define STRICT_TOL 5e-4
/* Count-descent moves per pool with up to 16 slots per device (deterministic caps); two slots
 * per device get more, their fast packing being a plain pairing. */
#define DESCENT_ITERS 400
#define DESCENT_ITERS_PAIRS 2400
/* Two slots per device (no soft rule): descents from this many seeds, annealing at
 * PAIR_ANNEAL_TEMP (a share of the starting maximum), the best kept; count rounds only in pools
 * of at most PAIR_ROUNDS_MAX_DEVICES devices, whose swap searches on more devices cost more than
 * they find (measured at 256 devices: same time, lower maxima). Annealing takes the worst 2-slot
 * cells of the goal sweep from 1.020-1.024 to 1.016-1.018 of the bound at twice the time; at 3
 * slots it gained nothing. */
#define PAIR_DESCENT_STARTS 4
#define PAIR_ANNEAL_TEMP 3e-3
#define PAIR_ROUNDS_MAX_DEVICES 64
/* Descents with 3 or more slots per device, for a layer still far above the bound: each start
 * takes a different path, and the landscape there has many local minima (measured: one 5-slot
 * layer from 1.0065 to 1.0031 of the bound). */
#define DESCENT_STARTS 8

/* Checks the rules of the locality modes. @return 0 or EPLB_EPARAM. */
static int check_params(const eplb_loads *loads, const eplb_params *pr, eplb_hierarchy h) {
  int32_t E = loads->num_experts, K = pr->num_groups, N = pr->num_nodes;
  int32_t S = pr->num_replicas / pr->num_gpus;
  if (E < S)
    return eplb__err(EPLB_EPARAM, "policy balanced: %d slots per device need at least %d "
                                  "distinct experts, there are %d",
                     S, S, E);
  if (h == EPLB_HIER_NONE || N == 1)
    return 0;
  if (E % K != 0)
    return eplb__err(EPLB_EPARAM, "policy balanced: %d experts do not split into %d groups", E,
                     K);
  if (K % N != 0)
    return eplb__err(EPLB_EPARAM, "policy balanced: hierarchy %s needs num_groups %d to be a "
                                  "multiple of num_nodes %d",
                     h == EPLB_HIER_STRICT ? "strict" : "soft", K, N);
  return 0;
}

/* The engine's settings for a layer under hierarchy h (see eplb__pool). */
static eplb__pool engine(const eplb_params *pr, eplb_hierarchy h, double deadline) {
  int32_t G = pr->num_gpus, S = pr->num_replicas / G, N = pr->num_nodes;
  eplb__pool pl = {0};
  pl.ndev = G;
  pl.slots = S;
  pl.max_rounds = h == EPLB_HIER_SOFT ? SOFT_ROUNDS : COUNT_ROUNDS;
  pl.descent_iters = S == 2 ? DESCENT_ITERS_PAIRS : DESCENT_ITERS;
  pl.descent_starts = DESCENT_STARTS;
  if (S == 2 && h != EPLB_HIER_SOFT) {
    pl.descent_starts = PAIR_DESCENT_STARTS;
    pl.descent_temp = PAIR_ANNEAL_TEMP;
    if (G / (h == EPLB_HIER_STRICT ? N : 1) > PAIR_ROUNDS_MAX_DEVICES)
      pl.max_rounds = 0;
  }
  pl.deadline = deadline;
  return pl;
}

/* Plans the experts ids[0..m) (loads w[]) as one pool of pl->ndev devices into row[0..) as
 * logical ids; slots and wbuf are scratch. */
static int solve_pool(eplb__pool *pl, const double *w, const int32_t *ids, int32_t m,
                      int32_t *slots, int32_t *row) {
  double mx;
  pl->n = m;
  pl->w = w;
  int rc = eplb__pool_solve(pl, slots, &mx);
  for (int32_t i = 0; !rc && i < pl->ndev * pl->slots; i++)
    row[i] = ids[slots[i]];
  return rc;
}

/* Plans one layer under hierarchy h into row. Stage 1 gives every expert its node (home);
 * none is one pool; strict binds every replica to its node, so the nodes are independent pools
 * (each stopping once it is within STRICT_TOL of the heaviest node's bound: no node need be
 * better); soft binds the first replica (soft.c). */
static int plan_layer(const double *w, const eplb_params *pr, eplb_hierarchy h, int32_t E,
                      double deadline, int32_t *row) {
  eplb__scratch sc = {0};
  int32_t G = pr->num_gpus, N = h == EPLB_HIER_NONE ? 1 : pr->num_nodes, Gn = G / N;
  int32_t *home = eplb__take(&sc, (size_t)E, sizeof *home);
  int32_t *ids = eplb__take(&sc, (size_t)E, sizeof *ids);
  int32_t *slots = eplb__take(&sc, (size_t)pr->num_replicas, sizeof *slots);
  double *wn = eplb__take(&sc, (size_t)E, sizeof *wn);
  int rc = sc.failed ? eplb__err(EPLB_ENOMEM, "plan balanced: out of memory")
                     : eplb__locality(w, E, pr, h, home);
  eplb__pool pl = engine(pr, h, deadline);
  if (!rc && h == EPLB_HIER_SOFT && N > 1) {
    rc = eplb__plan_soft(w, E, home, N, &pl, row);
    goto done;
  }
  /* Strict: the bound of each node's experts on its devices, the heaviest one the target. */
  pl.ndev = Gn;
  for (int32_t n = 0; !rc && N > 1 && n < N; n++) {
    int32_t m = 0;
    for (int32_t e = 0; e < E; e++)
      if (home[e] == n)
        wn[m++] = w[e];
    double b = eplb__pool_bound(wn, m, Gn * pl.slots, Gn) * (1 + STRICT_TOL);
    pl.target = b > pl.target ? b : pl.target;
  }
  for (int32_t n = 0; !rc && n < N; n++) {
    int32_t m = 0;
    for (int32_t e = 0; e < E; e++)
      if (home[e] == n) {
        ids[m] = e;
        wn[m++] = w[e];
      }
    rc = solve_pool(&pl, wn, ids, m, slots, row + (size_t)n * Gn * pl.slots);
  }
done:
  eplb__scratch_free(&sc);
  return rc;
}

int eplb__plan_balanced(const eplb_loads *loads, const eplb_params *params, eplb_placement *p) {
  eplb_hierarchy h = eplb_params_hierarchy(params);
  int rc = check_params(loads, params, h);
  if (rc)
    return rc;
  int32_t E = loads->num_experts, R = params->num_replicas, L = loads->num_layers;
  unsigned char *stuck = eplb__calloc((size_t)L, 1);
  if (!stuck)
    return eplb__err(EPLB_ENOMEM, "plan balanced: out of memory");
  /* A budget is shared out layer by layer: each layer may search until its even share of what
   * is left, so a slow first layer cannot starve the rest. */
  double end = params->time_budget_ms > 0 ? eplb__now() + params->time_budget_ms / 1000.0 : 0;
  for (int32_t l = 0; !rc && l < L; l++) {
    double deadline = 0;
    if (end > 0) {
      double now = eplb__now(), left = end > now ? end - now : 0;
      deadline = now + left / (double)(L - l);
    }
    rc = plan_layer(loads->load + (size_t)l * E, params, h, E, deadline,
                    p->phy2log + (size_t)l * R);
    if (rc == EPLB_EPARAM) /* the search got stuck: the safety net's plain layout */
      rc = 0, stuck[l] = 1;
  }
  if (!rc)
    rc = eplb__safety_net(loads, params, h, stuck, p);
  free(stuck);
  return rc;
}
