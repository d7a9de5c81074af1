/* fuzz_plan.c - eplb_plan() on fuzzed counts with fuzzed small parameters: both policies, every
 * hierarchy, duplicates on or off, exact or fractional loads, then a transfer plan from the
 * training layout. Input: 5 bytes of parameters, then 2 bytes per count (layer-major; missing
 * bytes count 0; a count's top bit scales it by 2^40 to reach large values).
 * Claims on success: the placement validates, has the asked shape, places every expert,
 * holds no duplicate unless allowed, gives every device its R/G slots, keeps each group on one
 * node where the locality is strict; the transfer plan from the initial layout fills every slot
 * with a correct source and receives exactly once per (rank, expert) pair that is new to the
 * rank (the minimum), and relabelling never needs more. On failure: only EPARAM. */
#include "eplb.h"
#include "fuzz_util.h"

#define FUZZ_MAX_EXPERTS 16
#define FUZZ_MAX_GPUS 8
#define FUZZ_MAX_EXTRA_SLOTS 3 /* per device, above ceil(E / G) */
#define FUZZ_MAX_LAYERS 4
#define FUZZ_PARAM_BYTES 5
#define FUZZ_BIG_SHIFT 40      /* a count with its top bit set is (low 15 bits) << 40 */

/* The parameters the first bytes select. */
typedef struct fuzz_case {
  int32_t L, E, G, k, N, K;
  eplb_params params;
  int fractional;
} fuzz_case;

/* Returns the divisor of n chosen by byte b (1 when n has only itself). */
static int32_t pick_divisor(int32_t n, uint8_t b) {
  int32_t div[FUZZ_MAX_EXPERTS * 2], m = 0;
  for (int32_t d = 1; d <= n; d++)
    if (n % d == 0)
      div[m++] = d;
  return div[b % m];
}

/* Decodes the parameter bytes. */
static void decode(const uint8_t *b, fuzz_case *c) {
  c->E = 1 + b[0] % FUZZ_MAX_EXPERTS;
  c->G = 1 + b[1] % FUZZ_MAX_GPUS;
  c->k = (c->E + c->G - 1) / c->G + b[2] % (FUZZ_MAX_EXTRA_SLOTS + 1);
  c->N = pick_divisor(c->G, b[3] & 0x0f);
  /* The group count: a divisor of E, or (top bit) any value 1..E, which may not divide it. */
  c->K = (b[3] & 0x80) ? 1 + (b[3] >> 4 & 0x07) % c->E : pick_divisor(c->E, b[2] >> 4);
  c->L = 1 + (b[4] >> 4) % FUZZ_MAX_LAYERS;
  c->fractional = (b[4] >> 6) & 1;
  eplb_params_init(&c->params);
  c->params.num_replicas = c->G * c->k;
  c->params.num_gpus = c->G;
  c->params.num_nodes = c->N;
  c->params.num_groups = c->K;
  c->params.policy = (b[4] & 1) ? EPLB_POLICY_BALANCED : EPLB_POLICY_DEEPSEEK;
  c->params.allow_duplicates = c->params.policy == EPLB_POLICY_DEEPSEEK && (b[4] & 2);
  c->params.hierarchy = (eplb_hierarchy)((b[4] >> 2) & 3);
}

/* Builds the load matrix from the count bytes. */
static eplb_loads *make_loads(const fuzz_case *c, const uint8_t *data, size_t size) {
  eplb_loads *x = NULL;
  FUZZ_CHECK(eplb_loads_create(c->L, c->E, &x) == 0);
  for (size_t i = 0; i < (size_t)c->L * (size_t)c->E; i++) {
    uint32_t v = 0;
    if (2 * i + 1 < size)
      v = (uint32_t)data[2 * i] | (uint32_t)data[2 * i + 1] << 8;
    int64_t n = (v & 0x8000) ? (int64_t)(v & 0x7fff) << FUZZ_BIG_SHIFT : (int64_t)v;
    x->count[i] = n;
    x->load[i] = c->fractional ? (double)n / 7.0 : (double)n;
  }
  if (c->fractional) {
    free(x->count);
    x->count = NULL;
  }
  return x;
}

/* 1 when the parameters obviously admit a plan, so that EPARAM would break eplb_plan()'s
 * contract (EPARAM only for the rules the header lists): the deepseek policy's shape rules, or
 * for balanced an even split of the groups over the nodes that fits (k <= E/N <= G/N * k for
 * strict, E/N <= G/N * k for soft; k <= E distinct experts per device in every mode). */
static int feasible(const fuzz_case *c) {
  const eplb_params *pr = &c->params;
  int32_t E = c->E, G = c->G, N = c->N, K = c->K, k = c->k;
  if (pr->policy == EPLB_POLICY_DEEPSEEK) {
    int hier = K % N == 0;
    int32_t Kd = hier ? K : 1, Nd = hier ? N : 1;
    if (E % Kd || G % Nd)
      return 0;
    int32_t En = E / Nd, Pn = G * k / Nd, Gn = G / Nd;
    return Pn >= En && (pr->allow_duplicates || (int64_t)Pn <= (int64_t)En * Gn);
  }
  if (k > E)
    return 0;
  eplb_hierarchy h = eplb_params_hierarchy(pr);
  if (h == EPLB_HIER_NONE || N == 1)
    return 1;
  if (E % K || K % N)
    return 0;
  int32_t En = E / N, Gn = G / N;
  return h == EPLB_HIER_STRICT ? k <= En && En <= Gn * k : En <= Gn * k;
}

/* 1 when device d of layer l of p holds expert e. */
static int holds(const eplb_placement *p, int32_t l, int32_t d, int32_t e) {
  int32_t S = p->num_slots / p->num_gpus;
  const int32_t *row = p->phy2log + (size_t)l * p->num_slots + (size_t)d * S;
  for (int32_t j = 0; j < S; j++)
    if (row[j] == e)
      return 1;
  return 0;
}

/* Every claim on the placement itself. */
static void check_placement(const fuzz_case *c, const eplb_placement *p) {
  FUZZ_CHECK(eplb_placement_validate(p, c->params.allow_duplicates) == 0);
  FUZZ_CHECK(p->num_layers == c->L && p->num_experts == c->E && p->num_gpus == c->G &&
             p->num_slots == c->G * c->k);
  if (!c->params.allow_duplicates)
    FUZZ_CHECK(eplb_placement_duplicates(p) == 0);
  int strict = c->params.policy == EPLB_POLICY_DEEPSEEK
                   ? c->params.num_nodes > 1 && eplb_params_mode(&c->params) == EPLB_MODE_HIERARCHICAL
                   : eplb_params_hierarchy(&c->params) == EPLB_HIER_STRICT;
  strict = strict && c->E % c->K == 0 && c->G % c->N == 0;
  int32_t per_node = c->G / c->N, group = c->E / c->K;
  for (int32_t l = 0; l < c->L; l++) {
    int32_t seen[FUZZ_MAX_EXPERTS] = {0}, node_of[FUZZ_MAX_EXPERTS];
    for (int32_t s = 0; s < p->num_slots; s++) {
      int32_t e = p->phy2log[(size_t)l * p->num_slots + s];
      FUZZ_CHECK(e >= 0 && e < c->E);
      seen[e]++;
      if (!strict)
        continue;
      int32_t g = e / group, node = s / c->k / per_node;
      if (e % group == 0 && seen[e] == 1)
        node_of[g] = node;
    }
    for (int32_t e = 0; e < c->E; e++) {
      FUZZ_CHECK(seen[e] >= 1);
      FUZZ_CHECK(seen[e] == p->logcnt[(size_t)l * c->E + e]);
    }
    if (!strict)
      continue;
    /* Every replica of every expert of a group sits on the node of the group's first expert. */
    for (int32_t s = 0; s < p->num_slots; s++) {
      int32_t e = p->phy2log[(size_t)l * p->num_slots + s];
      FUZZ_CHECK(s / c->k / per_node == node_of[e / group]);
    }
  }
}

/* Every claim on the transfer plan from the training layout to p. */
static void check_transfer(const fuzz_case *c, const eplb_placement *p) {
  eplb_placement *from = NULL;
  int32_t k0 = (c->E + c->G - 1) / c->G;
  FUZZ_CHECK(eplb_placement_initial(c->L, c->E, c->G, k0, &from) == 0);
  eplb_transfer *t = NULL;
  FUZZ_CHECK(eplb_transfer_plan(from, p, &t) == 0);
  const eplb_placement *to = t->to;
  int32_t S = to->num_slots / c->G, S0 = k0;
  int64_t new_pairs = 0, recv = 0;
  for (int32_t l = 0; l < c->L; l++) {
    /* The aligned layout holds, device by device, what p holds (the same multiset). */
    for (int32_t d = 0; d < c->G; d++) {
      int32_t a[FUZZ_MAX_EXPERTS] = {0}, b[FUZZ_MAX_EXPERTS] = {0};
      for (int32_t j = 0; j < S; j++) {
        a[p->phy2log[(size_t)l * p->num_slots + (size_t)d * S + j]]++;
        b[to->phy2log[(size_t)l * to->num_slots + (size_t)d * S + j]]++;
      }
      FUZZ_CHECK(memcmp(a, b, sizeof a) == 0);
      for (int32_t e = 0; e < c->E; e++)
        new_pairs += b[e] > 0 && !holds(from, l, d, e);
    }
    const eplb_xfer *x = eplb_transfer_layer(t, l);
    FUZZ_CHECK(x != NULL);
    for (int32_t s = 0; s < to->num_slots; s++) {
      int32_t d = s / S, e = to->phy2log[(size_t)l * to->num_slots + s];
      FUZZ_CHECK(x[s].layer == l && x[s].dst_slot == s && x[s].expert == e);
      switch (x[s].kind) {
      case EPLB_XFER_KEEP:
        FUZZ_CHECK(s % S < S0 && from->phy2log[(size_t)l * from->num_slots + (size_t)d * S0 + s % S] == e);
        break;
      case EPLB_XFER_LOCAL:
        FUZZ_CHECK(x[s].src_rank == d && x[s].src_slot / S0 == d &&
                   from->phy2log[(size_t)l * from->num_slots + x[s].src_slot] == e);
        break;
      case EPLB_XFER_RECV:
        recv++;
        FUZZ_CHECK(x[s].src_rank != d && !holds(from, l, d, e));
        FUZZ_CHECK(x[s].src_slot / S0 == x[s].src_rank &&
                   from->phy2log[(size_t)l * from->num_slots + x[s].src_slot] == e);
        break;
      case EPLB_XFER_DUP:
        FUZZ_CHECK(x[s].src_rank == d && x[s].src_slot / S == d && x[s].src_slot < s &&
                   to->phy2log[(size_t)l * to->num_slots + x[s].src_slot] == e);
        FUZZ_CHECK(x[x[s].src_slot].kind == EPLB_XFER_RECV);
        break;
      default:
        FUZZ_CHECK(!"unknown xfer kind");
      }
    }
  }
  FUZZ_CHECK(recv == new_pairs && t->stats.receives == recv);
  FUZZ_CHECK(t->stats.slots == (int64_t)c->L * to->num_slots);
  FUZZ_CHECK(t->stats.keeps + t->stats.local_copies + t->stats.receives == t->stats.slots);
  /* Relabelling picks the best renumbering of devices, the identity included: never worse. */
  eplb_transfer_opts opts;
  eplb_transfer_opts_init(&opts);
  opts.relabel = 1;
  opts.gpus_per_node = c->G / c->N;
  eplb_transfer *r = NULL;
  FUZZ_CHECK(eplb_transfer_plan_ex(from, p, &opts, &r) == 0);
  FUZZ_CHECK(r->stats.receives <= t->stats.receives);
  eplb_transfer_free(r);
  eplb_transfer_free(t);
  eplb_placement_free(from);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < FUZZ_PARAM_BYTES)
    return 0;
  fuzz_case c;
  decode(data, &c);
  eplb_loads *x = make_loads(&c, data + FUZZ_PARAM_BYTES, size - FUZZ_PARAM_BYTES);
  eplb_placement *p = (eplb_placement *)1;
  int rc = eplb_plan(x, &c.params, &p);
  if (getenv("EPLB_FUZZ_VERBOSE")) /* what each input tried, to see what the corpus covers */
    fprintf(stderr, "L %d E %d G %d k %d N %d K %d policy %d dups %d hier %d frac %d: %s %s\n",
            c.L, c.E, c.G, c.k, c.N, c.K, (int)c.params.policy, c.params.allow_duplicates,
            (int)c.params.hierarchy, c.fractional, eplb_err_name(rc), rc ? eplb_last_error() : "");
  if (rc != 0) {
    FUZZ_CHECK(rc == EPLB_EPARAM && !feasible(&c));
    FUZZ_CHECK(p == NULL);
  } else {
    check_placement(&c, p);
    check_transfer(&c, p);
    eplb_placement_free(p);
  }
  eplb_loads_free(x);
  return 0;
}
