/* plan_multi.c - planning for several load inputs (workloads, or windows of the collector) at
 * once: plan on their sum, or minimise the mean or the largest over inputs of the busiest
 * device's load. Candidates (the plan of the sum, of the sum with every input scaled to one
 * total, of each input alone) are judged per layer by the objective; the best then goes through
 * a swap search on the objective itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/bound.h"

/* Swap-search steps per slot (deterministic cap). */
#define MULTI_STEPS_PER_SLOT 2
/* A swap must improve the objective by at least this share. */
#define MULTI_MIN_GAIN 1e-9

/* ---- inputs ---- */

/* Checks that every input has the first one's experts and layer ids. */
static int check_inputs(const eplb_loads *const *in, size_t n) {
  if (!in || n == 0)
    return eplb__err(EPLB_EINVAL, "plan multi: no inputs");
  for (size_t i = 0; i < n; i++) {
    if (!in[i] || !in[i]->load || !in[i]->layer_ids)
      return eplb__err(EPLB_EINVAL, "plan multi: input %zu is empty", i);
    if (in[i]->num_experts != in[0]->num_experts || in[i]->num_layers != in[0]->num_layers)
      return eplb__err(EPLB_EINVAL, "plan multi: input %zu has %d layers x %d experts, input 0 "
                                    "has %d x %d",
                       i, in[i]->num_layers, in[i]->num_experts, in[0]->num_layers,
                       in[0]->num_experts);
    for (int32_t l = 0; l < in[0]->num_layers; l++)
      if (in[i]->layer_ids[l] != in[0]->layer_ids[l])
        return eplb__err(EPLB_EINVAL, "plan multi: input %zu has layer %lld where input 0 has "
                                      "layer %lld",
                         i, (long long)in[i]->layer_ids[l], (long long)in[0]->layer_ids[l]);
  }
  return 0;
}

/* A new load matrix: the sum of the inputs, each scaled to total 1 per layer when `scaled`. */
static int sum_inputs(const eplb_loads *const *in, size_t n, int scaled, eplb_loads **out) {
  int32_t L = in[0]->num_layers, E = in[0]->num_experts;
  int rc = eplb_loads_create(L, E, out);
  if (rc)
    return rc;
  eplb_loads *s = *out;
  free(s->count);
  s->count = NULL;
  memcpy(s->layer_ids, in[0]->layer_ids, (size_t)L * sizeof *s->layer_ids);
  for (size_t i = 0; i < n; i++)
    for (int32_t l = 0; l < L; l++) {
      const double *w = in[i]->load + (size_t)l * E;
      double total = 0, k = 1;
      for (int32_t e = 0; e < E && scaled; e++)
        total += w[e];
      if (scaled)
        k = total > 0 ? 1 / total : 0;
      for (int32_t e = 0; e < E; e++)
        s->load[(size_t)l * E + e] += w[e] * k;
    }
  return 0;
}

/* ---- objective ---- */

/* Scratch of one layer's evaluation and search. */
typedef struct multi {
  const eplb_loads *const *in;
  size_t n;
  int32_t E, R, G, S, nodes;
  eplb_objective obj;
  int32_t *cnt;          /* [E] */
  double *load;          /* [n*G] */
  unsigned char *has;    /* [G*E] */
  int32_t *top;          /* [n*3] the three busiest devices of each input */
} multi;

/* Aggregates per-input maxima by the objective. */
static double aggregate(const multi *m, const double *mx) {
  double v = 0;
  for (size_t i = 0; i < m->n; i++)
    v = m->obj == EPLB_OBJECTIVE_MAX ? (mx[i] > v ? mx[i] : v) : v + mx[i] / (double)m->n;
  return v;
}

/* Recomputes counts, device loads and membership of `row` (layer l). */
static void load_row(multi *m, int32_t l, const int32_t *row) {
  memset(m->cnt, 0, (size_t)m->E * sizeof *m->cnt);
  memset(m->load, 0, m->n * (size_t)m->G * sizeof *m->load);
  memset(m->has, 0, (size_t)m->G * (size_t)m->E);
  for (int32_t s = 0; s < m->R; s++)
    m->cnt[row[s]]++;
  for (int32_t s = 0; s < m->R; s++) {
    int32_t e = row[s], d = s / m->S;
    m->has[(size_t)d * m->E + e] = 1;
    for (size_t i = 0; i < m->n; i++)
      m->load[i * m->G + d] += m->in[i]->load[(size_t)l * m->E + e] / m->cnt[e];
  }
}

/* The objective of the loaded row, filling m->top. */
static double objective(multi *m) {
  double v = 0;
  for (size_t i = 0; i < m->n; i++) {
    const double *L = m->load + i * m->G;
    int32_t *t = m->top + i * 3;
    t[0] = t[1] = t[2] = -1;
    for (int32_t d = 0; d < m->G; d++) {
      if (t[0] < 0 || L[d] > L[t[0]]) {
        t[2] = t[1], t[1] = t[0], t[0] = d;
      } else if (t[1] < 0 || L[d] > L[t[1]]) {
        t[2] = t[1], t[1] = d;
      } else if (t[2] < 0 || L[d] > L[t[2]]) {
        t[2] = d;
      }
    }
    double mx = L[t[0]];
    v = m->obj == EPLB_OBJECTIVE_MAX ? (mx > v ? mx : v) : v + mx / (double)m->n;
  }
  return v;
}

/* The busiest load of input i outside devices a and b. */
static double max_except(const multi *m, size_t i, int32_t a, int32_t b) {
  const int32_t *t = m->top + i * 3;
  for (int k = 0; k < 3; k++)
    if (t[k] >= 0 && t[k] != a && t[k] != b)
      return m->load[i * m->G + t[k]];
  return 0;
}

/* ---- swap search ---- */

/* Exchanges slot replicas between a busiest device (of some input) and another device of the
 * same node (any device when nodes == 1) while that lowers the objective; counts are kept. */
static void multi_search(multi *m, int32_t l, int32_t *row, double *mx_scratch) {
  int64_t steps = (int64_t)MULTI_STEPS_PER_SLOT * m->R;
  int32_t Gn = m->G / m->nodes;
  for (int64_t it = 0; it < steps; it++) {
    double f = objective(m), best = f - MULTI_MIN_GAIN * f;
    int32_t bx = -1, by = -1;
    for (size_t c = 0; c < m->n; c++) {
      int32_t a = m->top[c * 3];
      for (int32_t b = 0; b < m->G; b++) {
        if (b == a || b / Gn != a / Gn)
          continue;
        for (int32_t x = a * m->S; x < (a + 1) * m->S; x++)
          for (int32_t y = b * m->S; y < (b + 1) * m->S; y++) {
            int32_t ex = row[x], ey = row[y];
            if (ex == ey || m->has[(size_t)b * m->E + ex] || m->has[(size_t)a * m->E + ey])
              continue;
            for (size_t i = 0; i < m->n; i++) {
              const double *w = m->in[i]->load + (size_t)l * m->E;
              double dx = w[ex] / m->cnt[ex] - w[ey] / m->cnt[ey];
              double la = m->load[i * m->G + a] - dx, lb = m->load[i * m->G + b] + dx;
              double o = max_except(m, i, a, b);
              mx_scratch[i] = la > lb ? (la > o ? la : o) : (lb > o ? lb : o);
            }
            double v = aggregate(m, mx_scratch);
            if (v < best) {
              best = v;
              bx = x;
              by = y;
            }
          }
      }
    }
    if (bx < 0)
      return;
    int32_t t = row[bx];
    row[bx] = row[by];
    row[by] = t;
    load_row(m, l, row);
  }
}

/* ---- planning ---- */

/* Plans the sum, then (mean, max) picks the best candidate per layer and swap-searches it. */
int eplb_plan_multi(const eplb_loads *const *inputs, size_t n, const eplb_params *params,
                    eplb_objective objective_kind, eplb_placement **out) {
  eplb__scratch sc = {0};
  if (!out)
    return eplb__err(EPLB_EINVAL, "plan multi: no output");
  *out = NULL;
  int rc = check_inputs(inputs, n);
  if (rc)
    return rc;
  if (!params)
    return eplb__err(EPLB_EINVAL, "plan multi: no parameters");
  if (objective_kind < EPLB_OBJECTIVE_SUM || objective_kind > EPLB_OBJECTIVE_MAX)
    return eplb__err(EPLB_EINVAL, "plan multi: unknown objective %d", (int)objective_kind);
  eplb_loads *sum = NULL;
  rc = sum_inputs(inputs, n, 0, &sum);
  if (rc)
    return rc;
  eplb_placement *best = NULL;
  rc = eplb_plan(sum, params, &best);
  if (rc || objective_kind == EPLB_OBJECTIVE_SUM) {
    eplb_loads_free(sum);
    *out = best;
    return rc;
  }
  int32_t L = sum->num_layers, E = sum->num_experts, R = best->num_slots, G = best->num_gpus;
  multi m = {inputs, n, E, R, G, R / G, 1, objective_kind, NULL, NULL, NULL, NULL};
  if (params->num_nodes > 1 &&
      (params->policy == EPLB_POLICY_DEEPSEEK
           ? eplb_params_mode(params) == EPLB_MODE_HIERARCHICAL
           : eplb_params_hierarchy(params) != EPLB_HIER_NONE))
    m.nodes = params->num_nodes;
  m.cnt = eplb__take(&sc, (size_t)E, sizeof *m.cnt);
  m.load = eplb__take(&sc, n * (size_t)G, sizeof *m.load);
  m.has = eplb__take(&sc, (size_t)G * (size_t)E, 1);
  m.top = eplb__take(&sc, n * 3, sizeof *m.top);
  double *mx = eplb__take(&sc, n, sizeof *mx);
  double *score = eplb__take(&sc, (size_t)L, sizeof *score);
  if (sc.failed)
    rc = eplb__err(EPLB_ENOMEM, "plan multi: out of memory");
  for (int32_t l = 0; !rc && l < L; l++) {
    load_row(&m, l, best->phy2log + (size_t)l * R);
    score[l] = objective(&m);
  }
  /* Other candidates: the scaled sum, then each input alone; a layer takes the best. */
  for (size_t c = 0; !rc && c <= n; c++) {
    eplb_loads *cand_loads = NULL;
    eplb_placement *cand = NULL;
    if (c == 0)
      rc = sum_inputs(inputs, n, 1, &cand_loads);
    if (!rc)
      rc = eplb_plan(c == 0 ? cand_loads : inputs[c - 1], params, &cand);
    for (int32_t l = 0; !rc && l < L; l++) {
      int32_t *row = cand->phy2log + (size_t)l * R;
      load_row(&m, l, row);
      double v = objective(&m);
      if (v < score[l]) {
        score[l] = v;
        memcpy(best->phy2log + (size_t)l * R, row, (size_t)R * sizeof *row);
      }
    }
    eplb_loads_free(cand_loads);
    eplb_placement_free(cand);
  }
  for (int32_t l = 0; !rc && l < L; l++) {
    int32_t *row = best->phy2log + (size_t)l * R;
    load_row(&m, l, row);
    multi_search(&m, l, row, mx);
  }
  if (!rc)
    rc = eplb_placement_build_index(best);
  if (!rc)
    rc = eplb_placement_validate(best, params->policy == EPLB_POLICY_DEEPSEEK &&
                                           params->allow_duplicates);
  eplb__scratch_free(&sc);
  eplb_loads_free(sum);
  if (rc) {
    eplb_placement_free(best);
    return rc;
  }
  *out = best;
  return 0;
}
