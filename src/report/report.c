/* quality.c - the lower bound on the largest device load, and the per-layer measures of a
 * placement that `eplb report` prints. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/bound.h"

/* ---- placement comparisons ---- */

int64_t eplb_placement_moves(const eplb_placement *old, const eplb_placement *p, int32_t layer) {
  if (!old || !p || layer < 0 || layer >= p->num_layers || layer >= old->num_layers ||
      old->num_gpus != p->num_gpus)
    return eplb__err(EPLB_EINVAL, "moves: placements do not match (layer %d)", layer);
  int32_t G = p->num_gpus, S = p->num_slots / G, So = old->num_slots / G;
  int32_t E = p->num_experts > old->num_experts ? p->num_experts : old->num_experts;
  const int32_t *row = p->phy2log + (size_t)layer * (size_t)p->num_slots;
  const int32_t *orow = old->phy2log + (size_t)layer * (size_t)old->num_slots;
  /* on[e] == d + 1 while device d is scanned and already holds e (old content, or an earlier
   * new slot): one pass over the slots, however many a device has. */
  int32_t *on = eplb__calloc((size_t)E, sizeof *on);
  if (!on)
    return eplb__err(EPLB_ENOMEM, "moves: out of memory");
  int64_t moves = 0;
  for (int32_t d = 0; d < G; d++) {
    for (int32_t j = 0; j < So; j++)
      on[orow[d * So + j]] = d + 1;
    for (int32_t i = 0; i < S; i++) {
      int32_t e = row[d * S + i];
      moves += on[e] != d + 1;
      on[e] = d + 1;
    }
  }
  free(on);
  return moves;
}

/* ---- report ---- */

/* Index of the loads row with id `id`, or -1. */
static int32_t find_layer(const eplb_loads *loads, int64_t id) {
  int32_t lo = 0, hi = loads->num_layers - 1;
  while (lo <= hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (loads->layer_ids[mid] == id)
      return mid;
    if (loads->layer_ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

/* Device loads of one map layer under one loads row; experts outside the loads carry nothing. */
int eplb_map_device_loads(const eplb_loads *loads, int32_t row, const eplb_placement *p,
                          int32_t layer, double *dev_load) {
  if (!loads || !p || !dev_load || row < 0 || row >= loads->num_layers || layer < 0 ||
      layer >= p->num_layers || !p->logcnt)
    return eplb__err(EPLB_EINVAL, "device loads: bad arguments");
  int32_t G = p->num_gpus, S = p->num_slots / G, E = p->num_experts, EL = loads->num_experts;
  const int32_t *ph = p->phy2log + (size_t)layer * (size_t)p->num_slots;
  const int32_t *cnt = p->logcnt + (size_t)layer * (size_t)E;
  const double *w = loads->load + (size_t)row * (size_t)EL;
  for (int32_t d = 0; d < G; d++) {
    double sum = 0;
    for (int32_t s = d * S; s < (d + 1) * S; s++) {
      int32_t e = ph[s];
      if (e >= 0 && e < EL && e < E && cnt[e] > 0)
        sum += w[e] / (double)cnt[e];
    }
    dev_load[d] = sum;
  }
  return 0;
}

/* Share of the layer's served load that runs off its group's home node: a group's home is the
 * node serving most of its load (the lowest such node on ties). */
static double off_node_share(const eplb_placement *p, int32_t layer, const double *w, int32_t EL,
                             int32_t K, int32_t N, double *node_load) {
  int32_t G = p->num_gpus, S = p->num_slots / G, E = p->num_experts, gs = EL / K, Gn = G / N;
  const int32_t *ph = p->phy2log + (size_t)layer * (size_t)p->num_slots;
  const int32_t *cnt = p->logcnt + (size_t)layer * (size_t)E;
  memset(node_load, 0, (size_t)K * (size_t)N * sizeof *node_load);
  double total = 0;
  for (int32_t s = 0; s < p->num_slots; s++) {
    int32_t e = ph[s];
    if (e < 0 || e >= EL || e >= E || cnt[e] < 1)
      continue;
    double x = w[e] / (double)cnt[e];
    node_load[(size_t)(e / gs) * N + (s / S) / Gn] += x;
    total += x;
  }
  if (total <= 0)
    return 0;
  double off = 0;
  for (int32_t k = 0; k < K; k++) {
    const double *nl = node_load + (size_t)k * N;
    int32_t home = 0;
    double sum = 0;
    for (int32_t n = 0; n < N; n++) {
      sum += nl[n];
      if (nl[n] > nl[home])
        home = n;
    }
    off += sum - nl[home];
  }
  return off / total;
}

/* Fills the measures of one layer row of the report. */
static int layer_report(const eplb_loads *loads, const eplb_placement *map,
                        const eplb_placement *old, int32_t K, int32_t N, int32_t l, double *dev,
                        double *node_load, double *served, eplb_layer_report *out) {
  int32_t row = find_layer(loads, map->layer_ids[l]);
  if (row < 0)
    return eplb__err(EPLB_EINVAL, "report: layer %lld of the map has no loads",
                     (long long)map->layer_ids[l]);
  int32_t G = map->num_gpus, EL = loads->num_experts, E = map->num_experts;
  const double *w = loads->load + (size_t)row * (size_t)EL;
  int rc = eplb_map_device_loads(loads, row, map, l, dev);
  if (rc)
    return rc;
  memset(out, 0, sizeof *out);
  out->layer_id = map->layer_ids[l];
  /* Every figure is over the load the map serves: an expert without a replica (counted in
   * `missing`) carries nothing, so the mean and the bound stay comparable with the maximum. */
  for (int32_t e = 0; e < EL; e++) {
    int has = e < E && map->logcnt[(size_t)l * E + e] > 0;
    served[e] = has ? w[e] : 0;
    out->missing += !has;
    out->total += served[e];
  }
  for (int32_t d = 0; d < G; d++)
    out->max_load = dev[d] > out->max_load ? dev[d] : out->max_load;
  out->mean_load = out->total / (double)G;
  if (map->num_slots >= EL)
    out->lower_bound = eplb__pool_bound(served, EL, map->num_slots, G);
  else
    out->lower_bound = out->mean_load;
  out->balancedness = out->max_load > 0 ? out->mean_load / out->max_load : 1;
  out->max_over_lb = out->lower_bound > 0 ? out->max_load / out->lower_bound : 1;
  out->imbalance = out->mean_load > 0 ? (out->max_load - out->mean_load) / out->mean_load : 0;
  out->duplicates = eplb__layer_duplicates(map, l);
  if (out->duplicates < 0)
    return (int)out->duplicates;
  out->moves = -1;
  if (old) {
    out->moves = eplb_placement_moves(old, map, l);
    if (out->moves < 0)
      return (int)out->moves;
  }
  out->off_node_share = K > 1 || N > 1 ? off_node_share(map, l, w, EL, K, N, node_load) : 0;
  return 0;
}

/* Sums the layers into the overall line: loads add up (a step runs the layers in turn, so
 * its time follows the sum of the busiest devices), ratios are taken of the sums. */
static void overall_report(eplb_report *r) {
  eplb_layer_report *o = &r->overall;
  double served = 0, off = 0;
  memset(o, 0, sizeof *o);
  o->layer_id = -1;
  o->moves = r->layers[0].moves < 0 ? -1 : 0;
  for (int32_t l = 0; l < r->num_layers; l++) {
    const eplb_layer_report *x = &r->layers[l];
    o->total += x->total;
    o->mean_load += x->mean_load;
    o->max_load += x->max_load;
    o->lower_bound += x->lower_bound;
    o->duplicates += x->duplicates;
    o->missing += x->missing;
    if (o->moves >= 0)
      o->moves += x->moves;
    served += x->total;
    off += x->off_node_share * x->total;
  }
  o->balancedness = o->max_load > 0 ? o->mean_load / o->max_load : 1;
  o->max_over_lb = o->lower_bound > 0 ? o->max_load / o->lower_bound : 1;
  o->imbalance = o->mean_load > 0 ? (o->max_load - o->mean_load) / o->mean_load : 0;
  o->off_node_share = served > 0 ? off / served : 0;
}

/* Measures every layer of the map, then the overall line (see eplb/quality.h). */
int eplb_report_compute(const eplb_loads *loads, const eplb_placement *map,
                        const eplb_placement *old, int32_t num_groups, int32_t num_nodes,
                        eplb_report **out) {
  if (!out)
    return eplb__err(EPLB_EINVAL, "report: no output");
  *out = NULL;
  if (!loads || !map || !map->logcnt || !loads->load)
    return eplb__err(EPLB_EINVAL, "report: no loads or map");
  int32_t K = num_groups, N = num_nodes, G = map->num_gpus;
  if (K < 1 || N < 1 || loads->num_experts % K != 0 || G % N != 0)
    return eplb__err(EPLB_EINVAL, "report: num_groups %d must divide the loads' %d experts and "
                                  "num_nodes %d the map's %d devices",
                     K, loads->num_experts, N, G);
  if (old && (old->num_layers != map->num_layers || old->num_gpus != G))
    return eplb__err(EPLB_EINVAL, "report: old map: %d layers on %d devices, the map has %d on %d",
                     old->num_layers, old->num_gpus, map->num_layers, G);
  for (int32_t l = 0; old && l < map->num_layers; l++)
    if (old->layer_ids[l] != map->layer_ids[l])
      return eplb__err(EPLB_EINVAL, "report: old map: layer %lld where the map has layer %lld",
                       (long long)old->layer_ids[l], (long long)map->layer_ids[l]);
  eplb_report *r = calloc(1, sizeof *r);
  double *dev = eplb__calloc((size_t)G, sizeof *dev);
  double *node_load = eplb__calloc((size_t)K * (size_t)N, sizeof *node_load);
  double *served = eplb__calloc((size_t)loads->num_experts, sizeof *served);
  int rc = 0;
  if (r)
    r->layers = eplb__calloc((size_t)map->num_layers, sizeof *r->layers);
  if (!r || !r->layers || !dev || !node_load || !served)
    rc = eplb__err(EPLB_ENOMEM, "report: out of memory");
  for (int32_t l = 0; !rc && l < map->num_layers; l++)
    rc = layer_report(loads, map, old, K, N, l, dev, node_load, served, &r->layers[l]);
  free(dev);
  free(node_load);
  free(served);
  if (rc) {
    eplb_report_free(r);
    return rc;
  }
  r->num_layers = map->num_layers;
  r->num_gpus = G;
  r->num_slots = map->num_slots;
  overall_report(r);
  *out = r;
  return 0;
}

/* Releases a report and its lines. */
void eplb_report_free(eplb_report *r) {
  if (!r)
    return;
  free(r->layers);
  free(r);
}

/* ---- device loads and balancedness ---- */

int eplb_device_loads(const eplb_loads *loads, const eplb_placement *p, int32_t layer,
                      double *dev_load) {
  if (!loads || !p || loads->num_layers != p->num_layers || loads->num_experts != p->num_experts)
    return eplb__err(EPLB_EINVAL, "device loads: loads and placement do not match");
  return eplb_map_device_loads(loads, layer, p, layer, dev_load);
}

double eplb_balancedness(const eplb_loads *loads, const eplb_placement *p, int32_t layer) {
  if (!p || p->num_gpus < 1)
    return -1;
  double *dev = eplb__mallocn((size_t)p->num_gpus, sizeof *dev);
  if (!dev)
    return -1;
  if (eplb_device_loads(loads, p, layer, dev) != 0) {
    free(dev);
    return -1;
  }
  double sum = 0, max = 0;
  for (int32_t d = 0; d < p->num_gpus; d++) {
    sum += dev[d];
    if (dev[d] > max)
      max = dev[d];
  }
  free(dev);
  return max > 0 ? sum / p->num_gpus / max : 1.0;
}
