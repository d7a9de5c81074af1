/* rebalance.c - online re-balancing: combines a collector's recent windows into loads, plans a
 * candidate relative to the current placement, and moves only the layers whose predicted gain in
 * max/mean clears the threshold (see eplb/rebalance.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eplb.h"
#include "core/eplb_int.h"

void eplb_rebalance_opts_init(eplb_rebalance_opts *opts) {
  if (!opts)
    return;
  memset(opts, 0, sizeof *opts);
  opts->first_window = 0;
  opts->num_windows = 0;
  opts->weights = NULL;
  opts->decay = 1.0;
  opts->max_moves = -1;
  opts->min_gain = EPLB_REBALANCE_MIN_GAIN;
}

/* ---- windows ---- */

/* Checks the window options against a ring of W windows and returns how many are used. */
static int window_span(const eplb_rebalance_opts *o, int32_t W, int32_t *n) {
  if (o->first_window < 0 || o->first_window >= W)
    return eplb__err(EPLB_EINVAL, "rebalance: first_window %d is outside 0..%d (the ring's ages)",
                     (int)o->first_window, (int)W - 1);
  if (o->num_windows < 0 || o->num_windows > W - o->first_window)
    return eplb__err(EPLB_EINVAL,
                     "rebalance: num_windows %d is outside 0..%d (ages from first_window %d in a "
                     "ring of %d)",
                     (int)o->num_windows, (int)(W - o->first_window), (int)o->first_window,
                     (int)W);
  *n = o->num_windows ? o->num_windows : W - o->first_window;
  if (o->weights) {
    double sum = 0;
    for (int32_t i = 0; i < *n; i++) {
      if (!isfinite(o->weights[i]) || o->weights[i] < 0)
        return eplb__err(EPLB_EINVAL, "rebalance: weights[%d] = %g is not a finite number >= 0",
                         (int)i, o->weights[i]);
      sum += o->weights[i];
    }
    if (!(sum > 0))
      return eplb__err(EPLB_EINVAL, "rebalance: weights are all 0");
  } else if (!(o->decay > 0 && o->decay <= 1)) {
    return eplb__err(EPLB_EINVAL, "rebalance: decay %g is outside (0, 1]", o->decay);
  }
  return 0;
}

int eplb_loads_from_windows(const eplb_collector *c, const eplb_rebalance_opts *opts,
                            eplb_loads **out) {
  if (out)
    *out = NULL;
  if (!c || !out)
    return eplb__err(EPLB_EINVAL, "rebalance: NULL argument");
  eplb_rebalance_opts defaults;
  if (!opts) {
    eplb_rebalance_opts_init(&defaults);
    opts = &defaults;
  }
  int32_t L = 0, E = 0, W = 0, n = 0;
  eplb_collector_dims(c, &L, &E, &W);
  int rc = window_span(opts, W, &n);
  if (rc)
    return rc;
  size_t cells = (size_t)L * (size_t)E;
  eplb_loads *loads = NULL;
  uint64_t *counts = eplb__mallocn(cells, sizeof *counts);
  rc = counts ? eplb_loads_create(L, E, &loads)
              : eplb__err(EPLB_ENOMEM, "rebalance: out of memory");
  int exact = 1;
  double w = 1.0;
  for (int32_t i = 0; !rc && i < n; i++, w *= opts->decay) {
    double wi = opts->weights ? opts->weights[i] : w;
    if (wi != 1.0)
      exact = 0;
    rc = eplb_collector_counts(c, opts->first_window + i, counts, cells);
    for (size_t k = 0; !rc && k < cells; k++) {
      if (counts[k] > (uint64_t)INT64_MAX ||
          (exact && loads->count[k] > INT64_MAX - (int64_t)counts[k])) {
        rc = eplb__err(EPLB_ERANGE, "rebalance: the count of layer %d expert %d passes 2^63 - 1",
                       (int)(k / (size_t)E), (int)(k % (size_t)E));
        break;
      }
      if (exact)
        loads->count[k] += (int64_t)counts[k];
      loads->load[k] += wi * (double)counts[k];
    }
  }
  free(counts);
  if (rc) {
    eplb_loads_free(loads);
    return rc;
  }
  if (!exact) {
    free(loads->count);
    loads->count = NULL;
  }
  *out = loads;
  return 0;
}

/* ---- measures ---- */

/* max/mean of layer index `l` of `p` under row `l` of loads (1 without load); dev has G room. */
static double layer_mom(const eplb_loads *loads, const eplb_placement *p, int32_t l, double *dev) {
  if (eplb_device_loads(loads, p, l, dev))
    return NAN;
  double sum = 0, max = 0;
  for (int32_t g = 0; g < p->num_gpus; g++) {
    sum += dev[g];
    if (dev[g] > max)
      max = dev[g];
  }
  return sum > 0 ? max * p->num_gpus / sum : 1.0;
}

/* Sum over layers of the busiest device over the sum of the mean device loads (1 without load). */
static double overall_mom(const eplb_loads *loads, const eplb_placement *p, double *dev) {
  double smax = 0, smean = 0;
  for (int32_t l = 0; l < p->num_layers; l++) {
    if (eplb_device_loads(loads, p, l, dev))
      return NAN;
    double sum = 0, max = 0;
    for (int32_t g = 0; g < p->num_gpus; g++) {
      sum += dev[g];
      if (dev[g] > max)
        max = dev[g];
    }
    smax += max;
    smean += sum / p->num_gpus;
  }
  return smean > 0 ? smax / smean : 1.0;
}

/* ---- layer subsets ---- */

/* Copies the rows `rows[0..n-1]` of loads and of placement p into new objects of n layers. */
static int subset(const eplb_loads *loads, const eplb_placement *p, const int32_t *rows, int32_t n,
                  eplb_loads **sl, eplb_placement **sp) {
  int32_t E = loads->num_experts, R = p->num_slots;
  int rc = eplb_loads_create(n, E, sl);
  if (!rc)
    rc = eplb_placement_create(n, E, R, p->num_gpus, sp);
  if (rc)
    return rc;
  if (!loads->count) {
    free((*sl)->count);
    (*sl)->count = NULL;
  }
  for (int32_t i = 0; i < n; i++) {
    int32_t l = rows[i];
    (*sl)->layer_ids[i] = loads->layer_ids[l];
    (*sp)->layer_ids[i] = p->layer_ids[l];
    memcpy((*sl)->load + (size_t)i * E, loads->load + (size_t)l * E, (size_t)E * sizeof(double));
    if (loads->count)
      memcpy((*sl)->count + (size_t)i * E, loads->count + (size_t)l * E,
             (size_t)E * sizeof(int64_t));
    memcpy((*sp)->phy2log + (size_t)i * R, p->phy2log + (size_t)l * R, (size_t)R * sizeof(int32_t));
  }
  return eplb_placement_build_index(*sp);
}

/* ---- the decision ---- */

/* Checks that loads, params and cur describe the same job. */
static int check_fit(const eplb_loads *loads, const eplb_params *params,
                     const eplb_placement *cur) {
  if (loads->num_layers != cur->num_layers || loads->num_experts != cur->num_experts)
    return eplb__err(EPLB_EINVAL,
                     "rebalance: loads are %d layers x %d experts, the current placement %d x %d",
                     (int)loads->num_layers, (int)loads->num_experts, (int)cur->num_layers,
                     (int)cur->num_experts);
  for (int32_t l = 0; l < cur->num_layers; l++)
    if (loads->layer_ids[l] != cur->layer_ids[l])
      return eplb__err(EPLB_EINVAL,
                       "rebalance: row %d is layer %lld in the loads, %lld in the current "
                       "placement",
                       (int)l, (long long)loads->layer_ids[l], (long long)cur->layer_ids[l]);
  if (params->num_replicas != cur->num_slots || params->num_gpus != cur->num_gpus)
    return eplb__err(EPLB_EINVAL,
                     "rebalance: params ask for %d slots on %d devices, the current placement has "
                     "%d on %d",
                     (int)params->num_replicas, (int)params->num_gpus, (int)cur->num_slots,
                     (int)cur->num_gpus);
  return 0;
}

static int result_alloc(int32_t L, eplb_rebalance_result **out) {
  eplb_rebalance_result *r = calloc(1, sizeof *r);
  if (!r)
    return eplb__err(EPLB_ENOMEM, "rebalance: out of memory");
  r->num_layers = L;
  r->moved = eplb__calloc((size_t)L, sizeof *r->moved);
  r->cur_max_over_mean = eplb__calloc((size_t)L, sizeof(double));
  r->new_max_over_mean = eplb__calloc((size_t)L, sizeof(double));
  r->candidate_max_over_mean = eplb__calloc((size_t)L, sizeof(double));
  r->moves = eplb__calloc((size_t)L, sizeof(int64_t));
  *out = r;
  if (!r->moved || !r->cur_max_over_mean || !r->new_max_over_mean ||
      !r->candidate_max_over_mean || !r->moves)
    return eplb__err(EPLB_ENOMEM, "rebalance: out of memory");
  return 0;
}

void eplb_rebalance_result_free(eplb_rebalance_result *r) {
  if (!r)
    return;
  eplb_transfer_free(r->transfer); /* owns r->placement */
  free(r->moved);
  free(r->cur_max_over_mean);
  free(r->new_max_over_mean);
  free(r->candidate_max_over_mean);
  free(r->moves);
  free(r);
}

/* Plans the rows `rows[0..n-1]` relative to cur within `budget` and writes the candidate's rows
 * into cand (a copy of cur's shape) and their max/mean into cmom. */
static int plan_rows(const eplb_loads *loads, const eplb_params *params, const eplb_placement *cur,
                     const int32_t *rows, int32_t n, int64_t budget, eplb_placement *cand,
                     double *cmom, double *dev) {
  eplb_loads *sl = NULL;
  eplb_placement *sp = NULL, *fresh = NULL;
  int rc = subset(loads, cur, rows, n, &sl, &sp);
  if (!rc)
    rc = eplb_plan_replan(sl, params, sp, budget, &fresh);
  int32_t R = cur->num_slots;
  for (int32_t i = 0; !rc && i < n; i++) {
    memcpy(cand->phy2log + (size_t)rows[i] * R, fresh->phy2log + (size_t)i * R,
           (size_t)R * sizeof(int32_t));
    cmom[rows[i]] = layer_mom(sl, fresh, i, dev);
  }
  eplb_loads_free(sl);
  eplb_placement_free(sp);
  eplb_placement_free(fresh);
  return rc;
}

int eplb_rebalance(const eplb_loads *loads, const eplb_params *params, const eplb_placement *cur,
                   const eplb_rebalance_opts *opts, eplb_rebalance_result **out) {
  if (out)
    *out = NULL;
  if (!loads || !params || !cur || !out)
    return eplb__err(EPLB_EINVAL, "rebalance: NULL argument");
  eplb_rebalance_opts defaults;
  if (!opts) {
    eplb_rebalance_opts_init(&defaults);
    opts = &defaults;
  }
  if (opts->max_moves < -1)
    return eplb__err(EPLB_EINVAL, "rebalance: max_moves %lld is below -1 (-1 = no limit)",
                     (long long)opts->max_moves);
  if (!isfinite(opts->min_gain) || opts->min_gain < 0)
    return eplb__err(EPLB_EINVAL, "rebalance: min_gain %g is not a finite number >= 0",
                     opts->min_gain);
  int rc = check_fit(loads, params, cur);
  if (rc)
    return rc;
  int32_t L = cur->num_layers, R = cur->num_slots;
  eplb_rebalance_result *r = NULL;
  eplb_placement *cand = NULL, *next = NULL;
  int32_t *rows = eplb__mallocn((size_t)L, sizeof *rows);
  double *dev = eplb__mallocn((size_t)cur->num_gpus, sizeof *dev);
  rc = result_alloc(L, &r);
  if (!rc && (!rows || !dev))
    rc = eplb__err(EPLB_ENOMEM, "rebalance: out of memory");
  if (!rc)
    rc = eplb_placement_clone(cur, &cand);
  if (!rc)
    rc = eplb_placement_clone(cur, &next);
  for (int32_t l = 0; !rc && l < L; l++)
    r->cur_max_over_mean[l] = layer_mom(loads, cur, l, dev);

  /* Which layers are in play: first all, planned within the budget; then, while some layer in
   * play misses the threshold, those that made it again with the whole budget. A layer dropped
   * once stays dropped, so this ends within L rounds. */
  int32_t n = rc ? 0 : L;
  for (int32_t l = 0; l < n; l++)
    rows[l] = l;
  while (!rc && n > 0) {
    rc = plan_rows(loads, params, cur, rows, n, opts->max_moves, cand, r->candidate_max_over_mean,
                   dev);
    int32_t kept = 0;
    for (int32_t i = 0; !rc && i < n; i++) {
      int32_t l = rows[i];
      double gain = r->cur_max_over_mean[l] - r->candidate_max_over_mean[l];
      if (gain > 0 && gain >= opts->min_gain)
        rows[kept++] = l;
    }
    if (rc || kept == n)
      break;
    n = kept;
  }
  if (!rc) {
    for (int32_t i = 0; i < n; i++) {
      int32_t l = rows[i];
      r->moved[l] = 1;
      memcpy(next->phy2log + (size_t)l * R, cand->phy2log + (size_t)l * R,
             (size_t)R * sizeof(int32_t));
    }
    r->num_moved = n;
    rc = eplb_placement_build_index(next);
  }
  if (!rc)
    rc = eplb_transfer_plan(cur, next, &r->transfer);
  if (!rc) {
    r->placement = r->transfer->to;
    r->copies_moved = r->transfer->stats.receives;
    for (int32_t l = 0; l < L; l++) {
      r->moves[l] = eplb_placement_moves(cur, r->placement, l);
      r->new_max_over_mean[l] = layer_mom(loads, r->placement, l, dev);
    }
    r->cur_overall = overall_mom(loads, cur, dev);
    r->new_overall = overall_mom(loads, r->placement, dev);
  }
  free(rows);
  free(dev);
  eplb_placement_free(cand);
  eplb_placement_free(next);
  if (rc) {
    eplb_rebalance_result_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

int eplb_rebalance_collector(const eplb_collector *c, const eplb_params *params,
                             const eplb_placement *cur, const eplb_rebalance_opts *opts,
                             eplb_rebalance_result **out) {
  if (out)
    *out = NULL;
  eplb_loads *loads = NULL;
  int rc = eplb_loads_from_windows(c, opts, &loads);
  if (!rc)
    rc = eplb_rebalance(loads, params, cur, opts, out);
  eplb_loads_free(loads);
  return rc;
}
