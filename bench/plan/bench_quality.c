/* bench_quality.c - plan quality and speed of the deepseek and balanced policies on synthetic
 * lognormal loads, for the settings of the table (58 layers x 256 experts, 8 groups):
 * max device load over the lower bound LB (mean and worst over layers and workloads), weights
 * moved between consecutive workloads' plans, and time per plan. Then the goals sweep: 64-256
 * experts, sigma 0.7-2.0, hierarchy none; the same goals on the real counts of ../shared/data;
 * soft against none layer by layer; strict's node partition against every partition of the
 * groups. Usage: bench_quality [workloads] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eplb.h"
#include "plan/balanced/balanced.h"
#include "core/eplb_rand.h"
#include "test_oracles.h"

/* Layers and experts of a DeepSeek-V3-like model. */
#define BENCH_LAYERS 58
#define BENCH_EXPERTS 256
#define BENCH_GROUPS 8
/* Workloads per setting unless given on the command line. */
#define DEFAULT_WORKLOADS 12
/* Mean token count per expert of a synthetic layer. */
#define MEAN_COUNT 4096.0
#define BENCH_TWO_PI 6.283185307179586

/* One row of the table. */
typedef struct setting {
  int32_t R, K, N, G;
} setting;

static const setting SETTINGS[] = {{288, 8, 4, 32}, {320, 8, 8, 64}, {384, 8, 16, 128},
                                   {512, 8, 32, 256}};
static const double SIGMAS[] = {0.7, 1.0, 1.4, 2.0};
/* The goals for hierarchy none, max/LB, per setting: >= 8, 5, 3 and 2 slots/device. */
static const double GOALS[] = {1.002, 1.005, 1.01, 1.02};
#define NUM_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])
#define NUM_SIGMAS (sizeof SIGMAS / sizeof SIGMAS[0])

/* ---- random loads ---- */

/* splitmix64: a small deterministic generator. */
static uint64_t next_u64(uint64_t *st) {
  return eplb__splitmix64(st);
}

/* A uniform number in (0, 1). */
static double uniform(uint64_t *st) {
  return ((double)(next_u64(st) >> 11) + 0.5) / 9007199254740992.0;
}

/* Integer lognormal counts with the given sigma, every layer drawn afresh. */
static eplb_loads *lognormal_loads(int32_t L, int32_t E, double sigma, uint64_t seed) {
  eplb_loads *x = NULL;
  if (eplb_loads_create(L, E, &x))
    return NULL;
  uint64_t st = seed;
  for (size_t i = 0; i < (size_t)L * (size_t)E; i++) {
    double z = sqrt(-2 * log(uniform(&st))) * cos(BENCH_TWO_PI * uniform(&st));
    double v = floor(MEAN_COUNT * exp(sigma * z - sigma * sigma / 2));
    x->load[i] = v;
    x->count[i] = (int64_t)v;
  }
  return x;
}

/* ---- measures ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Parameters for R slots on G devices, K groups, N nodes, with no time budget (deterministic). */
static eplb_params bench_params(int32_t R, int32_t K, int32_t N, int32_t G, eplb_policy pol,
                                eplb_hierarchy h) {
  eplb_params pr;
  eplb_params_init(&pr);
  pr.num_replicas = R;
  pr.num_groups = K;
  pr.num_nodes = N;
  pr.num_gpus = G;
  pr.policy = pol;
  pr.hierarchy = h;
  pr.time_budget_ms = 0;
  return pr;
}

/* Accumulated figures of one policy on one setting. */
typedef struct tally {
  double sum_ratio, worst, seconds;
  double sum_soft, worst_soft; /* max over the soft bound (hierarchy soft only) */
  int32_t K, N;                /* groups and nodes for the soft bound; 0: not measured */
  int64_t layers, plans, moves, failed;
} tally;

/* Adds max/LB of every layer of p. */
static void add_ratios(tally *t, const eplb_loads *x, const eplb_placement *p) {
  double *dev = malloc((size_t)p->num_gpus * sizeof *dev);
  for (int32_t l = 0; dev && l < x->num_layers; l++) {
    double lb = 0, mx = 0;
    eplb_device_loads(x, p, l, dev);
    eplb_lower_bound(x, l, p->num_slots, p->num_gpus, &lb);
    for (int32_t d = 0; d < p->num_gpus; d++)
      mx = dev[d] > mx ? dev[d] : mx;
    double r = lb > 0 ? mx / lb : 1;
    if (t->N > 1) {
      double sb = eplb__soft_bound(x->load + (size_t)l * (size_t)x->num_experts, x->num_experts,
                                   t->K, t->N, p->num_slots, p->num_gpus);
      double rs = sb > 0 ? mx / sb : 1;
      t->sum_soft += rs;
      t->worst_soft = rs > t->worst_soft ? rs : t->worst_soft;
    }
    t->sum_ratio += r;
    t->worst = r > t->worst ? r : t->worst;
    t->layers++;
  }
  free(dev);
}

/* Weights that move from placement a to b: per layer and device, b's experts absent on a's. */
static int64_t count_moves(const eplb_placement *a, const eplb_placement *b) {
  int32_t S = a->num_slots / a->num_gpus;
  int64_t moves = 0;
  for (int32_t l = 0; l < a->num_layers; l++)
    for (int32_t d = 0; d < a->num_gpus; d++)
      for (int32_t i = 0; i < S; i++) {
        int32_t e = b->phy2log[(size_t)l * b->num_slots + d * S + i], found = 0;
        for (int32_t j = 0; j < S && !found; j++)
          found = a->phy2log[(size_t)l * a->num_slots + d * S + j] == e;
        moves += !found;
      }
  return moves;
}

/* Plans every workload with one parameter set and tallies quality, moves and time. */
static void run_policy(eplb_loads **wl, int nw, const eplb_params *pr, tally *t) {
  memset(t, 0, sizeof *t);
  if (pr->hierarchy == EPLB_HIER_SOFT) {
    t->K = pr->num_groups;
    t->N = pr->num_nodes;
  }
  eplb_placement *prev = NULL;
  for (int i = 0; i < nw; i++) {
    eplb_placement *p = NULL;
    double t0 = now_s();
    int rc = eplb_plan(wl[i], pr, &p);
    t->seconds += now_s() - t0;
    if (rc) {
      t->failed++;
      continue;
    }
    t->plans++;
    add_ratios(t, wl[i], p);
    if (prev)
      t->moves += count_moves(prev, p);
    eplb_placement_free(prev);
    prev = p;
  }
  eplb_placement_free(prev);
}

/* Prints one table line. */
static void print_tally(const char *name, const tally *t, const tally *base) {
  if (!t->plans) {
    printf("  %-20s  (fails: %s)\n", name, eplb_last_error());
    return;
  }
  double mean = t->sum_ratio / (double)t->layers, ms = 1e3 * t->seconds / (double)t->plans;
  printf("  %-20s  max/LB mean %.4f worst %.4f  moves/plan %8.1f  %8.2f ms/plan", name, mean,
         t->worst, t->plans > 1 ? (double)t->moves / (double)(t->plans - 1) : 0.0, ms);
  if (t->N > 1)
    printf("  max/LB_soft mean %.4f worst %.4f", t->sum_soft / (double)t->layers, t->worst_soft);
  if (base && base->plans && base != t)
    printf("  (x%.3f max/LB, x%.2f time vs deepseek)", mean / (base->sum_ratio / base->layers),
           ms / (1e3 * base->seconds / (double)base->plans));
  printf("\n");
}

/* ---- load shift on real counts ---- */

/* OLMoE domains of ../shared/data: plan on three, judge on the fourth. */
static const char *DOMAINS[] = {"olmoe_arxiv", "olmoe_c4", "olmoe_github", "olmoe_wikipedia"};
#define NUM_DOMAINS 4

/* Mean max/LB of p on every layer of x. */
static double mean_ratio(const eplb_loads *x, const eplb_placement *p) {
  tally t = {0};
  add_ratios(&t, x, p);
  return t.layers ? t.sum_ratio / (double)t.layers : NAN;
}

/* Plans on three domains with each objective and judges on the held-out one, for a few shapes. */
static void load_shift(void) {
  eplb_loads *dom[NUM_DOMAINS] = {NULL};
  for (int i = 0; i < NUM_DOMAINS; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/../shared/data/olmoe/%s.json", EPLB_SOURCE_DIR, DOMAINS[i]);
    if (eplb_loads_read_file(path, 0, &dom[i])) {
      printf("load shift: %s\n", eplb_last_error());
      goto done;
    }
  }
  static const setting SHIFT[] = {{80, 8, 2, 8}, {96, 8, 2, 16}, {128, 8, 4, 64}};
  printf("load shift, OLMoE (64 experts, 3 layers): plan on 3 domains, judge on the 4th; mean "
         "max/LB on the held-out domain over 4 rotations\n");
  for (size_t k = 0; k < sizeof SHIFT / sizeof SHIFT[0]; k++) {
    const setting *st = &SHIFT[k];
    static const struct {
      const char *name;
      eplb_policy pol;
      eplb_objective obj;
    } RUNS[] = {{"deepseek sum", EPLB_POLICY_DEEPSEEK, EPLB_OBJECTIVE_SUM},
                {"deepseek max", EPLB_POLICY_DEEPSEEK, EPLB_OBJECTIVE_MAX},
                {"balanced sum", EPLB_POLICY_BALANCED, EPLB_OBJECTIVE_SUM},
                {"balanced mean", EPLB_POLICY_BALANCED, EPLB_OBJECTIVE_MEAN},
                {"balanced max", EPLB_POLICY_BALANCED, EPLB_OBJECTIVE_MAX}};
    printf("  R %d, K %d, N %d, G %d (%d/device):", st->R, st->K, st->N, st->G, st->R / st->G);
    double base = NAN;
    for (size_t r = 0; r < sizeof RUNS / sizeof RUNS[0]; r++) {
      eplb_params pr = bench_params(st->R, st->K, st->N, st->G, RUNS[r].pol, EPLB_HIER_NONE);
      double sum = 0, seen = 0;
      for (int held = 0; held < NUM_DOMAINS; held++) {
        const eplb_loads *train[NUM_DOMAINS - 1];
        int m = 0;
        for (int i = 0; i < NUM_DOMAINS; i++)
          if (i != held)
            train[m++] = dom[i];
        eplb_placement *p = NULL;
        if (eplb_plan_multi(train, (size_t)m, &pr, RUNS[r].obj, &p) == 0) {
          sum += mean_ratio(dom[held], p);
          seen++;
        }
        eplb_placement_free(p);
      }
      double v = seen ? sum / seen : NAN;
      if (r == 0)
        base = v;
      printf("  %s %.4f (x%.3f)", RUNS[r].name, v, v / base);
    }
    printf("\n");
  }
done:
  for (int i = 0; i < NUM_DOMAINS; i++)
    eplb_loads_free(dom[i]);
}

/* ---- migration-aware re-planning ---- */

/* Re-plans from an OLMoE arxiv plan to the c4 counts with move budgets 0, 10%, 25% of the slots
 * and none; prints mean max/LB on c4 and weights moved, next to a plain (unmatched) plan. */
static void replan_budgets(void) {
  eplb_loads *a = NULL, *b = NULL;
  char pa[512], pb[512];
  snprintf(pa, sizeof pa, "%s/../shared/data/olmoe/olmoe_arxiv.json", EPLB_SOURCE_DIR);
  snprintf(pb, sizeof pb, "%s/../shared/data/olmoe/olmoe_c4.json", EPLB_SOURCE_DIR);
  if (eplb_loads_read_file(pa, 0, &a) || eplb_loads_read_file(pb, 0, &b)) {
    printf("replan: %s\n", eplb_last_error());
    eplb_loads_free(a);
    return;
  }
  static const setting SH[] = {{80, 8, 2, 8}, {96, 8, 2, 16}};
  printf("re-plan OLMoE arxiv -> c4, balanced: mean max/LB on c4, weights moved\n");
  for (size_t k = 0; k < 2 * sizeof SH / sizeof SH[0]; k++) {
    eplb_hierarchy h = k % 2 ? EPLB_HIER_NONE : EPLB_HIER_STRICT;
    const setting *sh = &SH[k / 2];
    eplb_params pr = bench_params(sh->R, sh->K, sh->N, sh->G, EPLB_POLICY_BALANCED, h);
    eplb_placement *old = NULL, *plain = NULL;
    if (eplb_plan(a, &pr, &old) || eplb_plan(b, &pr, &plain)) {
      printf("  (fails: %s)\n", eplb_last_error());
      eplb_placement_free(old);
      continue;
    }
    int64_t slots = (int64_t)a->num_layers * sh->R;
    printf("  R %d G %d K %d N %d %s, %lld slots: old plan on c4 %.4f; plain new plan %.4f, "
           "%lld moves\n",
           sh->R, sh->G, sh->K, sh->N, h == EPLB_HIER_NONE ? "none" : "strict", (long long)slots,
           mean_ratio(b, old), mean_ratio(b, plain), (long long)count_moves(old, plain));
    static const int PCT[] = {0, 10, 25, -1};
    for (size_t i = 0; i < sizeof PCT / sizeof PCT[0]; i++) {
      int64_t budget = PCT[i] < 0 ? -1 : slots * PCT[i] / 100;
      eplb_placement *p = NULL;
      double t0 = now_s();
      if (eplb_plan_replan(b, &pr, old, budget, &p) == 0)
        printf("    budget %-9s max/LB %.4f  moves %4lld  (%.2f ms)\n",
               PCT[i] < 0 ? "unlimited" : (PCT[i] == 0 ? "0" : (PCT[i] == 10 ? "10%" : "25%")),
               mean_ratio(b, p), (long long)count_moves(old, p), 1e3 * (now_s() - t0));
      eplb_placement_free(p);
    }
    eplb_placement_free(old);
    eplb_placement_free(plain);
  }
  eplb_loads_free(a);
  eplb_loads_free(b);
}

/* ---- how loose LB is with two slots per device ---- */

/* Small pools with two slots per device searched over every count vector. */
#define PAIR_SIZES 2
#define PAIR_POOLS 20

/* Prints, for small lognormal pools with 2 slots per device, the exact optimum over counts
 * against LB and the balanced engine against that optimum. */
static void pair_gaps(void) {
  static const int32_t SIZES[PAIR_SIZES][2] = {{8, 8}, {10, 10}};
  printf("2 slots/device, small pools (experts = devices), exact optimum over replica counts "
         "(duplicates allowed) vs LB, and balanced vs that optimum (%d pools each):\n",
         PAIR_POOLS);
  for (size_t z = 0; z < PAIR_SIZES; z++)
    for (size_t g = 0; g < NUM_SIGMAS; g++) {
      int32_t n = SIZES[z][0], G = SIZES[z][1], d[16];
      double it[40], s_lb = 0, w_lb = 1, s_en = 0, w_en = 1;
      uint64_t st = 500u + z * 10 + g;
      eplb_loads *x = NULL;
      if (eplb_loads_create(1, n, &x))
        return;
      double *w = x->load;
      eplb_params pr = bench_params(2 * G, 1, 1, G, EPLB_POLICY_BALANCED, EPLB_HIER_NONE);
      for (int c = 0; c < PAIR_POOLS; c++) {
        for (int32_t e = 0; e < n; e++) {
          double u = sqrt(-2 * log(uniform(&st))) * cos(BENCH_TWO_PI * uniform(&st));
          w[e] = floor(MEAN_COUNT * exp(SIGMAS[g] * u - SIGMAS[g] * SIGMAS[g] / 2)) + 1;
          x->count[e] = (int64_t)w[e];
        }
        double opt = INFINITY, lb = eplb__pool_bound(w, n, 2 * G, G);
        oracle_pair_optimum(w, n, G, d, 0, 2 * G, it, &opt);
        eplb_placement *p = NULL;
        if (eplb_plan(x, &pr, &p))
          continue;
        double m = oracle_busiest(x, p, 0);
        eplb_placement_free(p);
        s_lb += opt / lb;
        w_lb = opt / lb > w_lb ? opt / lb : w_lb;
        s_en += m / opt;
        w_en = m / opt > w_en ? m / opt : w_en;
      }
      printf("  E %2d G %2d sigma %.1f: exact/LB mean %.4f worst %.4f; balanced/exact mean %.4f "
             "worst %.4f\n",
             n, G, SIGMAS[g], s_lb / PAIR_POOLS, w_lb, s_en / PAIR_POOLS, w_en);
      eplb_loads_free(x);
    }
}

/* ---- goals out of reach ---- */

/* Lines of text gathered while a sweep runs, printed after it. */
typedef struct note {
  char text[4096]; /* NUL-terminated */
  size_t len;
} note;

/* For every layer of p over the goal (max/LB), the dominant-expert lower bound of
 * test_oracles.h: returns 1 when it is above the goal on all of them (no plan can meet the goal
 * there), and notes each such layer's plan, bound and the heaviest expert's share. */
static int goal_out_of_reach(const eplb_loads *x, const eplb_placement *p, double goal,
                             double sigma, note *misses) {
  int all = 1;
  int32_t E = x->num_experts, G = p->num_gpus, S = p->num_slots / p->num_gpus;
  for (int32_t l = 0; l < x->num_layers; l++) {
    const double *w = x->load + (size_t)l * (size_t)E;
    double lb = 0, mx = oracle_busiest(x, p, l), total = 0, top = 0;
    eplb_lower_bound(x, l, p->num_slots, G, &lb);
    if (lb <= 0 || mx <= lb * goal)
      continue;
    for (int32_t e = 0; e < E; e++) {
      total += w[e];
      top = w[e] > top ? w[e] : top;
    }
    double b = oracle_dominant_bound(w, E, G, S, lb, mx);
    all &= b > lb * goal;
    if (misses->len < sizeof misses->text) {
      int k = snprintf(misses->text + misses->len, sizeof misses->text - misses->len,
                       "      E%d/s%.1f layer %d: plan %.4f, no plan below %.4f (max/LB); "
                       "heaviest expert %.0f%% of the load\n",
                       E, sigma, l, mx / lb, b / lb, 100 * top / total);
      misses->len = k > 0 ? misses->len + (size_t)k : misses->len;
      misses->len = misses->len < sizeof misses->text ? misses->len : sizeof misses->text - 1;
    }
  }
  return all;
}

/* ---- soft against none, layer by layer ---- */

/* The busiest device of every layer of p, into mx[num_layers]. */
static void layer_max(const eplb_loads *x, const eplb_placement *p, double *mx) {
  double *dev = malloc((size_t)p->num_gpus * sizeof *dev);
  for (int32_t l = 0; dev && l < x->num_layers; l++) {
    eplb_device_loads(x, p, l, dev);
    mx[l] = 0;
    for (int32_t d = 0; d < p->num_gpus; d++)
      mx[l] = dev[d] > mx[l] ? dev[d] : mx[l];
  }
  free(dev);
}

/* For the settings where soft applies: soft's busiest device over none's, layer by layer. */
static void soft_vs_none(eplb_loads **wl, int nw) {
  printf("soft vs none, layer by layer (soft's busiest device / none's):\n");
  for (size_t s = 0; s < NUM_SETTINGS; s++) {
    const setting *st = &SETTINGS[s];
    if (st->K % st->N)
      continue;
    double sum = 0, worst = 0;
    int64_t layers = 0, within = 0;
    for (int i = 0; i < nw; i++) {
      eplb_placement *ps = NULL, *pn = NULL;
      eplb_params pr = bench_params(st->R, st->K, st->N, st->G, EPLB_POLICY_BALANCED,
                                    EPLB_HIER_SOFT);
      double *ms = malloc(2 * (size_t)wl[i]->num_layers * sizeof *ms);
      int ok = ms && eplb_plan(wl[i], &pr, &ps) == 0;
      pr.hierarchy = EPLB_HIER_NONE;
      ok = ok && eplb_plan(wl[i], &pr, &pn) == 0;
      if (ok) {
        double *mn = ms + wl[i]->num_layers;
        layer_max(wl[i], ps, ms);
        layer_max(wl[i], pn, mn);
        for (int32_t l = 0; l < wl[i]->num_layers; l++) {
          double r = ms[l] / mn[l];
          sum += r;
          worst = r > worst ? r : worst;
          within += r <= 1.01;
          layers++;
        }
      }
      free(ms);
      eplb_placement_free(ps);
      eplb_placement_free(pn);
    }
    printf("  R %d, K %d, N %d, G %d: mean %.4f worst %.4f; within 1%% in %lld of %lld layers\n",
           st->R, st->K, st->N, st->G, layers ? sum / (double)layers : NAN, worst,
           (long long)within, (long long)layers);
  }
}

/* ---- goals on real counts ---- */

/* Real-count files of ../shared/data and the four slot densities of the table: R/E of
 * 1.125, 1.25, 1.5 and 2 (9, 5, 3 and 2 slots per device). */
static const char *REAL_FILES[] = {"olmoe_arxiv", "olmoe_c4", "olmoe_github", "olmoe_sft_tulu",
                                   "olmoe_wikipedia", "mixtral_arxiv", "mixtral_github"};
static const int32_t REAL_SLOTS[] = {9, 5, 3, 2};
static const int32_t REAL_GOAL_DIV[] = {8, 4, 2, 1}; /* G = E / div */
#define NUM_REAL_FILES (sizeof REAL_FILES / sizeof REAL_FILES[0])
#define NUM_REAL_SLOTS (sizeof REAL_SLOTS / sizeof REAL_SLOTS[0])

/* Largest pool whose exact two-slot optimum is computed for the real counts. */
#define PAIR_EXACT_MAX 10

/* Prints the exact two-slot optimum (duplicates allowed: no duplicate-free plan beats it) over
 * LB, worst over the layers of x on G devices. */
static void pair_exact_note(const eplb_loads *x, int32_t G) {
  int32_t n = x->num_experts, d[PAIR_EXACT_MAX];
  double it[4 * PAIR_EXACT_MAX], worst = 0;
  if (2 * G > 4 * PAIR_EXACT_MAX)
    return;
  for (int32_t l = 0; l < x->num_layers; l++) {
    double opt = INFINITY, lb = 0;
    oracle_pair_optimum(x->load + (size_t)l * (size_t)n, n, G, d, 0, 2 * G, it, &opt);
    eplb_lower_bound(x, l, 2 * G, G, &lb);
    worst = lb > 0 && opt / lb > worst ? opt / lb : worst;
  }
  printf(" [exact optimum/LB %.4f]", worst);
}

/* Tiny pools whose duplicate-free optimum is searched exhaustively for the real counts. */
#define SMALL_EXACT_MAX_EXPERTS 8
#define SMALL_EXACT_MAX_SLOTS 16

/* Prints the duplicate-free optimum over LB, worst over the layers of x on G devices of S. */
static void small_exact_note(const eplb_loads *x, int32_t G, int32_t S) {
  double worst = 0;
  for (int32_t l = 0; l < x->num_layers; l++) {
    double lb = 0;
    double opt = oracle_small_optimum(x->load + (size_t)l * (size_t)x->num_experts,
                                      x->num_experts, G, S);
    eplb_lower_bound(x, l, G * S, G, &lb);
    worst = lb > 0 && opt / lb > worst ? opt / lb : worst;
  }
  printf(" [exact optimum/LB %.4f]", worst);
}

/* Worst max/LB of balanced none and deepseek over the layers of every real-count file, at 9, 5,
 * 3 and 2 slots per device. */
static void real_goals(void) {
  printf("goals on ../shared/data (real counts), worst max/LB over layers, balanced none "
         "(deepseek in brackets):\n");
  for (size_t f = 0; f < NUM_REAL_FILES; f++) {
    char path[512];
    snprintf(path, sizeof path, "%s/../shared/data/olmoe/%s.json", EPLB_SOURCE_DIR,
             REAL_FILES[f]);
    eplb_loads *x = NULL;
    if (eplb_loads_read_file(path, 0, &x)) {
      printf("  %s\n", eplb_last_error());
      continue;
    }
    printf("  %-16s E %3d:", REAL_FILES[f], x->num_experts);
    for (size_t k = 0; k < NUM_REAL_SLOTS; k++) {
      int32_t G = x->num_experts / REAL_GOAL_DIV[k], S = REAL_SLOTS[k];
      if (S > x->num_experts) {
        printf("  %d/dev n/a (%d experts)", S, x->num_experts);
        continue;
      }
      double worst[2] = {NAN, NAN};
      for (int pol = 0; pol < 2; pol++) {
        eplb_params pr = bench_params(G * S, 1, 1, G,
                                      pol ? EPLB_POLICY_DEEPSEEK : EPLB_POLICY_BALANCED,
                                      EPLB_HIER_NONE);
        eplb_placement *p = NULL;
        tally t = {0};
        if (eplb_plan(x, &pr, &p) == 0)
          add_ratios(&t, x, p);
        else
          printf(" [%s]", eplb_last_error());
        worst[pol] = t.layers ? t.worst : NAN;
        eplb_placement_free(p);
      }
      printf("  %d/dev G%-3d %.4f (%.4f)", S, G, worst[0], worst[1]);
      if (x->num_experts <= SMALL_EXACT_MAX_EXPERTS && G * S <= SMALL_EXACT_MAX_SLOTS)
        small_exact_note(x, G, S);
      else if (S == 2 && x->num_experts <= PAIR_EXACT_MAX)
        pair_exact_note(x, G);
    }
    printf("\n");
    eplb_loads_free(x);
  }
}

/* ---- strict: the node partition against every partition ---- */

/* The setting where strict chooses among partitions (K 8, N 4: 105 ways to pair the groups). */
#define PART_R 288
#define PART_K 8
#define PART_N 4
#define PART_G 32
#define PART_MAX 128
/* A node's pool at the strict policy's own effort (plan_balanced.c: COUNT_ROUNDS,
 * DESCENT_ITERS), without its early stop. */
#define PART_ROUNDS 24
#define PART_DESCENT 400

/* Appends to out every way to finish node_of: block `block` has `fill` groups so far, its next
 * member is taken from groups >= from; a new block starts with the lowest free group (blocks
 * are unordered). */
static void split_groups(int32_t *node_of, int32_t block, int32_t fill, int32_t from,
                         int32_t (*out)[PART_K], int *count) {
  int32_t b = PART_K / PART_N;
  if (block == PART_N) {
    if (*count < PART_MAX)
      memcpy(out[(*count)++], node_of, PART_K * sizeof *node_of);
    return;
  }
  for (int32_t g = from; g < PART_K; g++) {
    if (node_of[g] >= 0)
      continue;
    node_of[g] = block;
    if (fill + 1 == b)
      split_groups(node_of, block + 1, 0, 0, out, count);
    else
      split_groups(node_of, block, fill + 1, g + 1, out, count);
    node_of[g] = -1;
    if (fill == 0)
      break; /* the lowest free group opens the block */
  }
}

/* Lists every split of PART_K groups into PART_N unordered blocks of PART_K / PART_N groups as
 * node_of rows. @return how many (<= PART_MAX). */
static int list_partitions(int32_t (*out)[PART_K]) {
  int32_t node_of[PART_K];
  int count = 0;
  for (int32_t g = 0; g < PART_K; g++)
    node_of[g] = -1;
  split_groups(node_of, 0, 0, 0, out, &count);
  return count;
}

/* The busiest device load of strict plans per node for one partition of one layer: every node's
 * pool solved with the same engine, at full effort (no early stop at the heaviest node's bound). */
static double partition_value(const double *w, const int32_t *node_of, int32_t *slot) {
  int32_t E = BENCH_EXPERTS, gs = E / PART_K, Gn = PART_G / PART_N, S = PART_R / PART_G;
  double buf[BENCH_EXPERTS], worst = 0;
  for (int32_t n = 0; n < PART_N; n++) {
    int32_t m = 0;
    for (int32_t e = 0; e < E; e++)
      if (node_of[e / gs] == n)
        buf[m++] = w[e];
    eplb__pool pl = {0};
    pl.n = m;
    pl.w = buf;
    pl.ndev = Gn;
    pl.slots = S;
    pl.max_rounds = PART_ROUNDS;
    pl.descent_iters = PART_DESCENT;
    double mx = 0;
    if (eplb__pool_solve(&pl, slot, &mx))
      return INFINITY;
    worst = mx > worst ? mx : worst;
  }
  return worst;
}

/* For every layer of the first workloads: strict's busiest device against the best over all
 * partitions of the groups (each solved per node at full effort). */
static void partition_check(eplb_loads **wl, int nw) {
  static int32_t parts[PART_MAX][PART_K];
  int np = list_partitions(parts);
  int32_t slot[PART_R];
  eplb_params pr = bench_params(PART_R, PART_K, PART_N, PART_G, EPLB_POLICY_BALANCED,
                                EPLB_HIER_STRICT);
  double sum = 0, worst = 0;
  int64_t layers = 0, within = 0, best_is_ours = 0;
  for (int i = 0; i < nw && i < (int)NUM_SIGMAS; i++) {
    eplb_placement *p = NULL;
    if (eplb_plan(wl[i], &pr, &p))
      continue;
    double *dev = malloc(PART_G * sizeof *dev);
    for (int32_t l = 0; dev && l < wl[i]->num_layers; l++) {
      const double *w = wl[i]->load + (size_t)l * BENCH_EXPERTS;
      eplb_device_loads(wl[i], p, l, dev);
      double ours = 0, best = INFINITY;
      for (int32_t d = 0; d < PART_G; d++)
        ours = dev[d] > ours ? dev[d] : ours;
      for (int k = 0; k < np; k++) {
        double v = partition_value(w, parts[k], slot);
        best = v < best ? v : best;
      }
      double r = ours / best;
      sum += r;
      worst = r > worst ? r : worst;
      within += r <= 1.01;
      best_is_ours += r <= 1 + 1e-12;
      layers++;
    }
    free(dev);
    eplb_placement_free(p);
  }
  printf("strict node partition, R %d K %d N %d G %d: %d partitions of the groups, each planned "
         "per node; strict's busiest device / best partition's, over %lld layers: mean %.4f "
         "worst %.4f; within 1%%: %lld layers; at or below the best: %lld\n",
         PART_R, PART_K, PART_N, PART_G, np, (long long)layers, layers ? sum / layers : NAN,
         worst, (long long)within, (long long)best_is_ours);
}

/* ---- main ---- */

int main(int argc, char **argv) {
  int nw = argc > 1 ? atoi(argv[1]) : DEFAULT_WORKLOADS;
  if (nw < 1)
    nw = DEFAULT_WORKLOADS;
  eplb_loads **wl = calloc((size_t)nw, sizeof *wl);
  for (int i = 0; i < nw; i++)
    wl[i] = lognormal_loads(BENCH_LAYERS, BENCH_EXPERTS, SIGMAS[i % NUM_SIGMAS], 1000u + i);
  printf("bench_quality: %d synthetic workloads (sigma %.1f-%.1f), %d layers x %d experts, %d "
         "groups; time_budget_ms 0 (deterministic)\n",
         nw, SIGMAS[0], SIGMAS[NUM_SIGMAS - 1], BENCH_LAYERS, BENCH_EXPERTS, BENCH_GROUPS);
  static const struct {
    const char *name;
    eplb_policy pol;
    eplb_hierarchy h;
    int global; /* plan with one group on one node (DeepSeek's global mode) */
  } POLICIES[] = {{"deepseek", EPLB_POLICY_DEEPSEEK, EPLB_HIER_AUTO, 0},
                  {"deepseek global", EPLB_POLICY_DEEPSEEK, EPLB_HIER_AUTO, 1},
                  {"balanced strict", EPLB_POLICY_BALANCED, EPLB_HIER_STRICT, 0},
                  {"balanced soft", EPLB_POLICY_BALANCED, EPLB_HIER_SOFT, 0},
                  {"balanced none", EPLB_POLICY_BALANCED, EPLB_HIER_NONE, 0}};
  for (size_t s = 0; s < NUM_SETTINGS; s++) {
    const setting *st = &SETTINGS[s];
    printf("R %d, K %d, N %d, G %d (%d slots/device)\n", st->R, st->K, st->N, st->G,
           st->R / st->G);
    tally base;
    for (size_t k = 0; k < sizeof POLICIES / sizeof POLICIES[0]; k++) {
      eplb_params pr = bench_params(st->R, POLICIES[k].global ? 1 : st->K,
                                    POLICIES[k].global ? 1 : st->N, st->G, POLICIES[k].pol,
                                    POLICIES[k].h);
      tally t;
      run_policy(wl, nw, &pr, &t);
      if (k == 0)
        base = t;
      print_tally(POLICIES[k].name, &t, &base);
    }
  }
  printf("goals sweep, balanced none (worst max/LB over 8 layers per cell):\n");
  for (size_t s = 0; s < NUM_SETTINGS; s++) {
    const setting *st = &SETTINGS[s];
    printf("  R %3d G %3d (%d/device):", st->R, st->G, st->R / st->G);
    int cells = 0, met = 0, unreachable = 0;
    note misses = {{0}, 0};
    double goal = GOALS[s];
    for (int32_t E = 64; E <= 256; E *= 2)
      for (size_t g = 0; g < NUM_SIGMAS; g++) {
        eplb_loads *x = lognormal_loads(8, E, SIGMAS[g], 77u + (uint64_t)E + g);
        eplb_params pr = bench_params(st->R, 1, 1, st->G, EPLB_POLICY_BALANCED, EPLB_HIER_NONE);
        eplb_placement *p = NULL;
        tally t = {0};
        if (x && eplb_plan(x, &pr, &p) == 0)
          add_ratios(&t, x, p);
        printf(" E%d/s%.1f %.4f", E, SIGMAS[g], t.layers ? t.worst : NAN);
        cells++;
        met += t.layers && t.worst <= goal;
        if (t.layers && t.worst > goal)
          unreachable += goal_out_of_reach(x, p, goal, SIGMAS[g], &misses);
        eplb_placement_free(p);
        eplb_loads_free(x);
      }
    printf("\n    goal <= %.3f: met in %d of %d cells; of the %d missed, out of reach (the "
           "dominant-expert bound above the goal on every missed layer) in %d\n%s",
           goal, met, cells, cells - met, unreachable, misses.len ? misses.text : "");
  }
  soft_vs_none(wl, nw);
  real_goals();
  partition_check(wl, nw);
  pair_gaps();
  load_shift();
  replan_budgets();
  for (int i = 0; i < nw; i++)
    eplb_loads_free(wl[i]);
  free(wl);
  return 0;
}
