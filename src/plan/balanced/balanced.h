/* balanced.h - the stages of the balanced policy (src/plan/balanced/README.md; not installed).
 * Names carry the internal prefix eplb__. */
#ifndef EPLB_BALANCED_H
#define EPLB_BALANCED_H

#include <stdint.h>

#include "core/eplb_int.h"
#include "plan/bound.h"

/* ---- stage 1: locality (locality.c) ---- */

/* The locality rule of one layer of E experts (loads w) as data: home[e] receives the node whose
 * devices (G/N of them, node n holding devices n*G/N..) hold expert e's bound replicas: all of
 * them under strict, the first under soft. Groups (E/K experts each) go to nodes by an exact
 * search over set partitions, or largest-first beyond EXACT_MAX_GROUPS groups; with hierarchy
 * none or one node every home is 0. @return 0, EPLB_ENOMEM, EPLB_EPARAM (the groups cannot be
 * split over the nodes without duplicates). */
int eplb__locality(const double *w, int32_t E, const eplb_params *pr, eplb_hierarchy h,
                   int32_t *home);

/* ---- stage 2 under soft: bound and counts (bounds.c) ---- */

/* A lower bound for plans that keep one replica of every expert on its group's node (hierarchy
 * soft; also valid for strict): max(eplb__pool_bound, min over counts d of the largest group's
 * sum of load_e / d_e over the G/N devices of a node), counts shared (sum d_e <= R, d_e <= G).
 * Expert e is in group e / (E/K). Falls back to eplb__pool_bound when N <= 1 or K, N do not
 * divide E, G. The inner minimum is exact. @return the bound, NAN when out of memory. */
double eplb__soft_bound(const double *w, int32_t E, int32_t K, int32_t N, int32_t R, int32_t G);

/* Replica counts for a pool whose experts keep one replica in their home set (soft): the
 * counts that minimise the largest set's anchored load sum w_e / d_e (exact, as in
 * eplb__soft_bound, sets given by home[e] in [0, nsets)), the slots left over then going one by
 * one to the expert with the largest share. Fills cnt[n] (1 <= cnt <= G, summing to R when
 * R <= n * G). @return 0 or EPLB_ENOMEM. */
int eplb__anchor_counts(const double *w, int32_t n, const int32_t *home, int32_t nsets,
                        int32_t R, int32_t G, int32_t *cnt);

/* ---- stages 3 and 4: the engine, one pool of devices (pool.c) ---- */

/* A pool: n experts to place on ndev identical devices of `slots` slots each, every slot used,
 * never two replicas of one expert on a device. */
typedef struct eplb__pool {
  int32_t n;            /* experts, slots <= n <= ndev * slots */
  const double *w;      /* [n] their loads */
  int32_t ndev;         /* devices */
  int32_t slots;        /* slots per device */
  const int32_t *home;  /* [n] soft locality: block (devices home*block_size..) that must hold
                           one replica of the expert; NULL when there is no such rule */
  int32_t block_size;   /* devices per block when home is set */
  int32_t max_rounds;   /* replica-count refinement rounds (deterministic cap) */
  int32_t descent_iters; /* moves tried by eplb__count_descent (slots <= 16) */
  int32_t descent_starts; /* descents from the greedy's counts, each with its own seed (< 1: 1) */
  double descent_temp;    /* > 0: the descents anneal at this temperature (see eplb__count_descent) */
  double deadline;      /* monotonic seconds after which refinement stops; 0: never */
  const int32_t *init_cnt; /* [n] counts to start from instead of the min-max greedy's (soft:
                              eplb__anchor_counts); NULL: the greedy's */
  double target;        /* the search also stops once the busiest device is <= target (strict:
                           a node need not be better than the heaviest node's bound); 0: none */
  int fixed_counts;     /* 1: keep init_cnt as it is (only packing and swaps) */
  const int32_t *init_plan; /* [ndev*slots] a complete plan to polish (swaps and count rounds
                               only; under a home rule every expert needs a replica in its home
                               block); NULL: build one */
} eplb__pool;

/* Chooses replica counts and places the replicas of a pool to minimise the largest device load:
 * greedy counts, largest-first packing, swap search from the busiest device, then rounds that
 * move one replica from the expert that loses least to the busiest device's largest expert.
 * Writes the pool-local expert of each slot to slot_expert[ndev*slots] (device d owns slots
 * d*slots..) and the largest device load to *max_load. @return 0, EPLB_ENOMEM, EPLB_EPARAM
 * (the pool cannot be filled without duplicates). */
int eplb__pool_solve(const eplb__pool *pool, int32_t *slot_expert, double *max_load);

/* ---- candidates: target-driven construction (target.c) ---- */

/* Builds plans for a pool of G devices of S slots without locality rules by a binary search on
 * a target T in [lo, hi]: experts largest first, each split into the fewest equal replicas that
 * fit on the devices with the most room under T, keeping a free slot for every expert still to
 * come; leftover slots take extra replicas. Writes the lightest plan built to slot_expert[G*S]
 * and its largest device load to *max_load (0 when no target could be built, slot_expert then
 * untouched). Needs S <= n <= G*S. @return 0 or EPLB_ENOMEM. */
int eplb__target_solve(const double *w, int32_t n, int32_t G, int32_t S, double lo, double hi,
                       int32_t *slot_expert, double *max_load);

/* ---- soft candidates: target-driven construction (target.c) ---- */

/* Builds plans for N nodes of Gn devices of S slots under soft's first-replica rule (expert e
 * keeps a replica on node home[e]) by a binary search on a target T in [lo, hi]: experts largest
 * first, each split into the fewest equal replicas that fit on the devices with the most room
 * under T, one on its home node, every node keeping a free slot and room for the estimated first
 * replicas of its experts still to come (an expert that fits nowhere goes whole to its home
 * node's roomiest device with a free slot, and T counts as missed); leftover slots take extra
 * replicas. With absorb set, a device is also taken only while its node's devices can still take
 * the first replicas the node owes, each device at most its room and at most the largest owed
 * replicas its free slots hold. Writes the lightest plan built to
 * slot_expert[N*Gn*S] and its busiest device's load to *max_load (0 when no target could be
 * built, slot_expert then untouched). Needs every node's experts to fit its Gn*S slots and
 * S <= n <= N*Gn*S. Deterministic. @return 0 or EPLB_ENOMEM. */
int eplb__soft_target_solve(const double *w, int32_t n, const int32_t *home, int32_t N,
                            int32_t Gn, int32_t S, double lo, double hi, int absorb,
                            int32_t *slot_expert, double *max_load);

/* ---- candidates: counts for few slots per device (counts.c) ---- */

/* Largest slots per device for which eplb__count_descent runs. */
#define EPLB__DESCENT_MAX_SLOTS 16

/* Improves replica counts cnt[n] (summing to G*S, each <= G) for a pool of G devices with S <=
 * EPLB__DESCENT_MAX_SLOTS slots: at most `iters` moves of one replica from a pseudo-random donor
 * among the experts holding two or more (fixed seed, varied by `start`: different starts take
 * different paths) to an expert of the busiest device of a largest-first packing, each kept when
 * the maximum does not rise; stops once it is <= stop. With temp > 0 it anneals instead: a move
 * raising the maximum by r is also kept with probability exp(-r / (temp * m0 * (1 - i/iters)))
 * (m0 the starting maximum, i the move), all `iters` moves run, and the lightest counts seen
 * are returned. No-op for larger S. @return 0 or ENOMEM. */
int eplb__count_descent(const double *w, int32_t n, int32_t G, int32_t S, int32_t *cnt,
                        int32_t iters, double stop, uint32_t start, double temp);

/* With two slots per device and few enough count vectors (at most 5e5 compositions of 2G into
 * n parts, each part 1..G), tries them all and writes to out[keep*n] the `keep` vectors whose
 * best pairing with duplicates allowed (the k-th largest replica with the k-th smallest) has the
 * smallest largest pair, lightest first; *kept gets how many were written (0 when the pool is
 * too large). Duplicates can make the lightest vector pack worse than the next ones, hence
 * several. @return 0 or ENOMEM. */
int eplb__pair_counts_exact(const double *w, int32_t n, int32_t G, int32_t keep, int32_t *out,
                            int32_t *kept);

/* With two slots per device, improves counts cnt[n] (each 1..G, summing to 2G) by a neighbourhood
 * search: each of `steps` steps frees the two experts of a pair above an aim 0.1% below the
 * lightest largest pair so far (one such pair at random) and others at random, five in all, and
 * tries every recount of the five (each within 3 of its count, same total), keeping the one whose
 * best pairing (the k-th largest replica with the k-th smallest) carries least above the aim,
 * a pair of one expert's two replicas counting as a little above it, then the one with the
 * smallest largest pair, one of equals at random; the aim drops once nothing is above it. Stops
 * at `stop`, or once eplb__now() passes `deadline` (0: never; the clock is read every few
 * steps); writes the lightest counts seen to cnt; n <= 5 leaves cnt alone. Seeded by a constant
 * and `start`, so deterministic without a deadline. @return 0 or EPLB_ENOMEM. */
int eplb__pair_lns(const double *w, int32_t n, int32_t G, int32_t *cnt, int32_t steps,
                   double stop, uint32_t start, double deadline);

/* ---- candidates: the exact optimum of a tiny pool (tiny.c) ---- */

/* Searches every replica count and placement (up to interchangeable empty devices) of n experts
 * on G devices of S slots, no expert twice on a device, for the plan with the lightest busiest
 * device below `upper`, by branch and bound (branches capped, so on large pools it may stop
 * early). Exponential: for tiny pools (EPLB__TINY_MAX_EXPERTS, EPLB__TINY_MAX_SLOTS). Writes a
 * plan found to slot_expert[G*S] and its busiest load to *max_load. Deterministic. @return 1
 * when a plan below upper was found, 0 when none was (outputs untouched), EPLB_ENOMEM. */
int eplb__tiny_exact(const double *w, int32_t n, int32_t G, int32_t S, double upper,
                     int32_t *slot_expert, double *max_load);
#define EPLB__TINY_MAX_EXPERTS 8
#define EPLB__TINY_MAX_SLOTS 16

/* ---- stage 4 under soft: the improvement search (soft.c) ---- */

/* Plans one layer of E experts (loads w) under hierarchy soft (expert e keeps a replica on node
 * home[e] of N) into row[G*S] (G = engine->ndev, S = engine->slots; the engine's other settings
 * are the rounds, descents and deadline to use): candidates from the decomposition, the pool
 * under the rule, the target construction and node-level annealing, each polished by the
 * engine; the lightest wins. @return 0, EPLB_ENOMEM or EPLB_EPARAM (no placement found). */
int eplb__plan_soft(const double *w, int32_t E, const int32_t *home, int32_t N,
                    const eplb__pool *engine, int32_t *row);

/* ---- soft candidates: decomposition (soft_split.c) ---- */

/* Places a layer of E experts on N nodes of Gn devices of S slots from the replica counts cnt[E]
 * (summing to N*Gn*S, each <= N*Gn): the first replica of expert e on node home[e], the extra
 * replicas spread over the nodes to even their loads; with cap > 0 a node search then also moves
 * replicas between experts (no replica grows past cap; cap 0 keeps cnt as it is) while that
 * lowers the heaviest node; each node is then packed on its own and its devices evened out in
 * pairs. Writes the logical expert of every slot to row[N*Gn*S] (its counts are the plan's) and
 * the busiest device's load to *max_load. @return 0, EPLB_ENOMEM, EPLB_EPARAM (counts out of
 * range or not summing to N*Gn*S, a node with more experts than slots, or an extra replica that
 * fits nowhere). */
int eplb__soft_split(const double *w, int32_t E, const int32_t *home, int32_t N, int32_t Gn,
                     int32_t S, const int32_t *cnt, double cap, int32_t *row, double *max_load);

/* ---- soft candidates: annealing at node level (soft_anneal.c) ---- */

/* Improves a soft plan row[N*Gn*S] (every expert e with a replica on node home[e], no expert
 * twice on a device) by annealing what each node holds: trades of copies between nodes and
 * count moves on a node (a free copy of an expert with two or more replicas gives way to a new
 * replica of another), each node touched packed alone (largest first, then exchanges of one or
 * two replicas between its devices), the cost being the nodes' squared excess over just under
 * `goal`; stops once the busiest device is at most goal, at a fixed cap of moves and packings,
 * or once eplb__now() passes `deadline` (0: never; read every 256 moves). Replaces row by the
 * annealed plan only when its busiest device is lighter; *max_load gets the busiest device's
 * load of row as returned. Deterministic. @return 0 or EPLB_ENOMEM. */
int eplb__soft_anneal(const double *w, int32_t E, const int32_t *home, int32_t N, int32_t Gn,
                      int32_t S, double goal, double deadline, int32_t *row, double *max_load);

/* ---- stage 5: the safety net (net.c) ---- */

/* Gives every layer l with stuck[l] set (its search found no placement) a plain layout that
 * obeys hierarchy h, then takes the deepseek policy's row (no duplicates) for every layer where
 * its busiest device is lighter and its placement obeys h. @return 0, EPLB_ENOMEM, or
 * EPLB_EPARAM when a stuck layer cannot be placed at all. */
int eplb__safety_net(const eplb_loads *loads, const eplb_params *params, eplb_hierarchy h,
                     const unsigned char *stuck, eplb_placement *p);

#endif /* EPLB_BALANCED_H */
