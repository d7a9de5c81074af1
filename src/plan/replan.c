/* replan.c - migration-aware re-planning: a fresh plan is matched to the old placement so that
 * the fewest expert weights move (which old device takes which new device's content is an
 * assignment problem on overlap, solved exactly by the Hungarian algorithm; experts already on a
 * device keep their slot), and with a budget, whole layers are re-planned in order of gain per
 * move while the budget lasts, the others keep the old placement. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/bound.h"
#include "plan/plan_int.h"

/* Budget curves: local-search steps per layer, and experts considered for another replica. */
#define CURVE_STEPS 64
#define SHORTLIST 16

/* ---- matching one layer ---- */

/* Scratch of one layer's matching. */
typedef struct match {
  int32_t G, S, E, nodes, Gn;
  unsigned char *on;  /* [G*E] old device holds expert */
  int64_t *gain;      /* [G*G] */
  int32_t *assign;    /* [G] */
  int32_t *node_of;   /* [nodes] new node of each old node */
  int64_t *ngain;     /* [nodes*nodes] */
  int32_t *tmp;       /* [G] */
  unsigned char *taken; /* [S] */
  int32_t *out;       /* [R] */
} match;

/* Overlap of old device a with new device b's content. */
static int64_t overlap(const match *m, const int32_t *old_row, const int32_t *new_row, int32_t a,
                       int32_t b) {
  (void)old_row;
  int64_t k = 0;
  for (int32_t i = 0; i < m->S; i++) {
    int32_t e = new_row[b * m->S + i], dup = 0;
    for (int32_t j = 0; j < i && !dup; j++)
      dup = new_row[b * m->S + j] == e;
    k += !dup && m->on[(size_t)a * m->E + e];
  }
  return k;
}

/* Best device matching between old node on and new node nn (devices within), written into
 * m->assign for the old node's devices; returns the total overlap. */
static int node_match(match *m, const int32_t *old_row, const int32_t *new_row, int32_t on,
                      int32_t nn, int64_t *total) {
  int32_t Gn = m->Gn;
  for (int32_t a = 0; a < Gn; a++)
    for (int32_t b = 0; b < Gn; b++)
      m->gain[(size_t)a * Gn + b] = overlap(m, old_row, new_row, on * Gn + a, nn * Gn + b);
  int32_t *loc = m->tmp;
  int rc = eplb__assign_max(m->gain, Gn, loc);
  if (rc)
    return rc;
  *total = 0;
  for (int32_t a = 0; a < Gn; a++) {
    *total += m->gain[(size_t)a * Gn + loc[a]];
    m->assign[on * Gn + a] = nn * Gn + loc[a];
  }
  return 0;
}

/* Rewrites new_row so that old device d holds the content of new device assign[d], each expert
 * that d already held kept in its old slot. */
static void apply_match(const match *m, const int32_t *old_row, const int32_t *new_row,
                        int32_t *out) {
  int32_t S = m->S;
  for (int32_t d = 0; d < m->G; d++) {
    const int32_t *src = new_row + (size_t)m->assign[d] * S;
    int32_t *dst = out + (size_t)d * S;
    unsigned char *taken = m->taken;
    memset(taken, 0, (size_t)S);
    for (int32_t s = 0; s < S; s++)
      dst[s] = -1;
    /* Experts d held keep their slot. */
    for (int32_t s = 0; s < S; s++)
      for (int32_t i = 0; i < S; i++)
        if (!taken[i] && src[i] == old_row[d * S + s]) {
          dst[s] = src[i];
          taken[i] = 1;
          break;
        }
    int32_t i = 0;
    for (int32_t s = 0; s < S; s++) {
      if (dst[s] >= 0)
        continue;
      while (taken[i])
        i++;
      dst[s] = src[i];
      taken[i] = 1;
    }
  }
}

/* Matches new_row (one layer of the fresh plan) to old_row in place: nodes as wholes first
 * (when the plan keeps groups on nodes), then devices within matched nodes. */
static int match_layer(match *m, const int32_t *old_row, int32_t *new_row) {
  memset(m->on, 0, (size_t)m->G * (size_t)m->E);
  for (int32_t s = 0; s < m->G * m->S; s++)
    if (old_row[s] >= 0 && old_row[s] < m->E)
      m->on[(size_t)(s / m->S) * m->E + old_row[s]] = 1;
  int rc = 0;
  if (m->nodes > 1) {
    for (int32_t on = 0; on < m->nodes && !rc; on++)
      for (int32_t nn = 0; nn < m->nodes && !rc; nn++)
        rc = node_match(m, old_row, new_row, on, nn, &m->ngain[(size_t)on * m->nodes + nn]);
    if (!rc)
      rc = eplb__assign_max(m->ngain, m->nodes, m->node_of);
    int64_t t;
    for (int32_t on = 0; on < m->nodes && !rc; on++)
      rc = node_match(m, old_row, new_row, on, m->node_of[on], &t);
  } else {
    for (int32_t a = 0; a < m->G; a++)
      for (int32_t b = 0; b < m->G; b++)
        m->gain[(size_t)a * m->G + b] = overlap(m, old_row, new_row, a, b);
    rc = eplb__assign_max(m->gain, m->G, m->assign);
  }
  if (rc)
    return rc;
  apply_match(m, old_row, new_row, m->out);
  memcpy(new_row, m->out, (size_t)m->G * m->S * sizeof *m->out);
  return 0;
}

/* ---- re-planning ---- */

/* ---- budget: per-layer curves of moves against balance ---- */

/* One layer's ways from the old row towards balance: points 0..npts-2 are the old row and the
 * steps of a local search started from it, the last point is the matched fresh row. */
typedef struct curve {
  int32_t npts;
  int64_t *moves;  /* [npts] weights moved to reach the point */
  double *busy;    /* [npts] busiest device there */
  int32_t *rows;   /* [npts*R] the rows */
  int32_t at;      /* the point chosen */
} curve;

/* Scratch for building curves. */
typedef struct curve_work {
  const double *w;
  int32_t R, G, S, E;
  int32_t Gn;              /* devices per node when the plan keeps groups on nodes, else G */
  int32_t *cnt;            /* [E] */
  int32_t *mix;            /* [R] */
  double *load;            /* [G] */
  unsigned char *on;       /* [G*E] */
  int32_t *shortlist;      /* [SHORTLIST] */
} curve_work;

/* Weights moved from row `from` to row `to`: per device, distinct experts of `to` not in `from`. */
static int64_t row_moves(const curve_work *c, const int32_t *from, const int32_t *to) {
  int64_t k = 0;
  for (int32_t d = 0; d < c->G; d++)
    for (int32_t i = 0; i < c->S; i++) {
      int32_t e = to[d * c->S + i], seen = 0;
      for (int32_t j = 0; j < i && !seen; j++)
        seen = to[d * c->S + j] == e;
      for (int32_t j = 0; j < c->S && !seen; j++)
        seen = from[d * c->S + j] == e;
      k += !seen;
    }
  return k;
}

/* Recomputes counts, device loads and membership of the mix; returns the busiest device. */
static int32_t mix_state(curve_work *c) {
  memset(c->cnt, 0, (size_t)c->E * sizeof *c->cnt);
  memset(c->on, 0, (size_t)c->G * (size_t)c->E);
  for (int32_t s = 0; s < c->R; s++) {
    c->cnt[c->mix[s]]++;
    c->on[(size_t)(s / c->S) * c->E + c->mix[s]] = 1;
  }
  int32_t a = 0;
  for (int32_t d = 0; d < c->G; d++) {
    double sum = 0;
    for (int32_t s = d * c->S; s < (d + 1) * c->S; s++)
      sum += c->w[c->mix[s]] / (double)c->cnt[c->mix[s]];
    c->load[d] = sum;
    if (sum > c->load[a])
      a = d;
  }
  return a;
}

/* The busiest load of the mix if slot k held expert f instead (counts change). */
static double replace_busiest(const curve_work *c, int32_t k, int32_t f) {
  int32_t e = c->mix[k];
  double mx = 0;
  for (int32_t d = 0; d < c->G; d++) {
    double sum = 0;
    for (int32_t s = d * c->S; s < (d + 1) * c->S; s++) {
      int32_t x = s == k ? f : c->mix[s];
      int32_t n = c->cnt[x] + (x == f) - (x == e);
      sum += c->w[x] / (double)n;
    }
    mx = sum > mx ? sum : mx;
  }
  return mx;
}

/* Replicas of expert e on the node of device a. */
static int32_t on_node(const curve_work *c, int32_t a, int32_t e) {
  int32_t k = 0, first = a / c->Gn * c->Gn;
  for (int32_t d = first; d < first + c->Gn; d++)
    k += c->on[(size_t)d * c->E + e];
  return k;
}

/* Appends the current mix as a point of the curve. */
static void add_point(curve *cv, const curve_work *c, int64_t moves, double busy) {
  cv->moves[cv->npts] = moves;
  cv->busy[cv->npts] = busy;
  memcpy(cv->rows + (size_t)cv->npts * c->R, c->mix, (size_t)c->R * sizeof *c->mix);
  cv->npts++;
}

/* Fills c->shortlist with the SHORTLIST experts of largest replica load w/cnt (the ones another
 * replica helps most); returns how many. */
static int32_t fill_shortlist(curve_work *c) {
  int32_t m = 0;
  for (int32_t e = 0; e < c->E; e++) {
    double v = c->w[e] / (double)c->cnt[e];
    int32_t i = m < SHORTLIST ? m++ : SHORTLIST;
    if (i == SHORTLIST) {
      double last = c->w[c->shortlist[i - 1]] / (double)c->cnt[c->shortlist[i - 1]];
      if (v <= last)
        continue;
      i--;
    }
    while (i > 0 && c->w[c->shortlist[i - 1]] / (double)c->cnt[c->shortlist[i - 1]] < v) {
      c->shortlist[i] = c->shortlist[i - 1];
      i--;
    }
    c->shortlist[i] = e;
  }
  return m;
}

/* Builds the curve from old row o: a local search from o (each step on the busiest device: give
 * a slot to one of the SHORTLIST experts, taking it from an expert with another replica, or swap
 * a replica with one of another device; the step leaving the lightest busiest device, while it
 * drops; with locality, within a's node only), then the matched fresh row f as the last point. */
static void build_curve(curve *cv, curve_work *c, const int32_t *o, const int32_t *f) {
  memcpy(c->mix, o, (size_t)c->R * sizeof *c->mix);
  cv->npts = 0;
  int32_t a = mix_state(c);
  add_point(cv, c, 0, c->load[a]);
  for (int32_t step = 0; step < CURVE_STEPS; step++) {
    double M = c->load[a], best = M * (1 - 1e-12), second = 0;
    for (int32_t d = 0; d < c->G; d++)
      if (d != a && c->load[d] > second)
        second = c->load[d];
    int32_t bk = -1, bf = -1, by = -1;
    int32_t ns = fill_shortlist(c);
    for (int32_t k = a * c->S; k < (a + 1) * c->S; k++) {
      int32_t e = c->mix[k];
      /* With locality, e keeps a replica on a's node and g already has one there. */
      int local = c->Gn < c->G;
      if (c->cnt[e] >= 2 && (!local || on_node(c, a, e) >= 2))
        for (int32_t i = 0; i < ns; i++) {
          int32_t g = c->shortlist[i];
          if (g == e || c->on[(size_t)a * c->E + g] || (local && on_node(c, a, g) == 0))
            continue;
          double v = replace_busiest(c, k, g);
          if (v < best) {
            best = v;
            bk = k, bf = g, by = -1;
          }
        }
      /* Swaps keep counts: only devices a and b change. */
      for (int32_t y = 0; y < c->R; y++) {
        int32_t b = y / c->S, g = c->mix[y];
        if (b == a || b / c->Gn != a / c->Gn || g == e || c->on[(size_t)b * c->E + e] ||
            c->on[(size_t)a * c->E + g])
          continue;
        double dx = c->w[e] / c->cnt[e] - c->w[g] / c->cnt[g];
        double la = M - dx, lb = c->load[b] + dx;
        double other = second;
        if (c->load[b] >= second) { /* b was the second busiest: bound by the rest */
          other = 0;
          for (int32_t d = 0; d < c->G; d++)
            if (d != a && d != b && c->load[d] > other)
              other = c->load[d];
        }
        double v = la > lb ? la : lb;
        v = v > other ? v : other;
        if (v < best) {
          best = v;
          bk = k, bf = -1, by = y;
        }
      }
    }
    if (bk < 0)
      break;
    if (by >= 0) {
      int32_t t = c->mix[bk];
      c->mix[bk] = c->mix[by];
      c->mix[by] = t;
    } else {
      c->mix[bk] = bf;
    }
    a = mix_state(c);
    add_point(cv, c, row_moves(c, o, c->mix), c->load[a]);
  }
  memcpy(c->mix, f, (size_t)c->R * sizeof *c->mix);
  a = mix_state(c);
  add_point(cv, c, row_moves(c, o, f), c->load[a]);
}

/* Spends the budget over the layers' curves: repeatedly the jump (layer, later point) with the
 * largest drop of the busiest load per move that still fits; a drop needing no move first. */
static void spend_budget(curve *cv, int32_t L, int64_t budget) {
  int64_t left = budget;
  for (;;) {
    int32_t bl = -1, bj = -1;
    double br = 0;
    for (int32_t l = 0; l < L; l++) {
      const curve *c = &cv[l];
      for (int32_t j = c->at + 1; j < c->npts; j++) {
        int64_t dm = c->moves[j] - c->moves[c->at];
        double drop = c->busy[c->at] - c->busy[j];
        if (dm > left || drop <= 0)
          continue;
        double r = dm > 0 ? drop / (double)dm : INFINITY;
        if (bl < 0 || r > br) {
          bl = l;
          bj = j;
          br = r;
        }
      }
    }
    if (bl < 0)
      return;
    left -= cv[bl].moves[bj] - cv[bl].moves[cv[bl].at];
    cv[bl].at = bj;
  }
}

/* Replaces each layer of `fresh` (already matched to old) by the point of its curve that the
 * budget buys. @return 0 or EPLB_ENOMEM. */
static int apply_budget(const eplb_loads *loads, const eplb_placement *old, eplb_placement *fresh,
                        int32_t nodes, int64_t budget) {
  eplb__scratch sc = {0};
  int32_t L = fresh->num_layers, R = fresh->num_slots, G = fresh->num_gpus, E = fresh->num_experts;
  int32_t pts = CURVE_STEPS + 2;
  curve *cv = eplb__take(&sc, (size_t)L, sizeof *cv);
  curve_work c = {NULL, R, G, R / G, E, G / nodes, NULL, NULL, NULL, NULL, NULL};
  c.cnt = eplb__take(&sc, (size_t)E, sizeof *c.cnt);
  c.mix = eplb__take(&sc, (size_t)R, sizeof *c.mix);
  c.load = eplb__take(&sc, (size_t)G, sizeof *c.load);
  c.on = eplb__take(&sc, (size_t)G * (size_t)E, 1);
  c.shortlist = eplb__take(&sc, SHORTLIST, sizeof *c.shortlist);
  int rc = sc.failed ? EPLB_ENOMEM : 0;
  for (int32_t l = 0; !rc && l < L; l++) {
    cv[l].moves = eplb__take(&sc, (size_t)pts, sizeof *cv[l].moves);
    cv[l].busy = eplb__take(&sc, (size_t)pts, sizeof *cv[l].busy);
    cv[l].rows = eplb__take(&sc, (size_t)pts * (size_t)R, sizeof *cv[l].rows);
    if (sc.failed) {
      rc = EPLB_ENOMEM;
      break;
    }
    c.w = loads->load + (size_t)l * E;
    build_curve(&cv[l], &c, old->phy2log + (size_t)l * R, fresh->phy2log + (size_t)l * R);
  }
  if (!rc) {
    spend_budget(cv, L, budget);
    for (int32_t l = 0; l < L; l++)
      memcpy(fresh->phy2log + (size_t)l * R, cv[l].rows + (size_t)cv[l].at * R,
             (size_t)R * sizeof *fresh->phy2log);
  }
  eplb__scratch_free(&sc);
  return rc ? eplb__err(EPLB_ENOMEM, "replan: out of memory") : 0;
}

/* Checks that `old` fits the loads and parameters. */
static int check_old(const eplb_loads *loads, const eplb_params *pr, const eplb_placement *old) {
  if (!old || !old->phy2log || !old->layer_ids)
    return eplb__err(EPLB_EINVAL, "replan: no old map");
  if (old->num_layers != loads->num_layers || old->num_slots != pr->num_replicas ||
      old->num_gpus != pr->num_gpus || old->num_experts != loads->num_experts)
    return eplb__err(EPLB_EINVAL, "replan: old map: %d layers, %d experts, %d slots on %d devices; "
                                  "the plan has %d, %d, %d on %d",
                     old->num_layers, old->num_experts, old->num_slots, old->num_gpus,
                     loads->num_layers, loads->num_experts, pr->num_replicas, pr->num_gpus);
  for (int32_t l = 0; l < old->num_layers; l++)
    if (old->layer_ids[l] != loads->layer_ids[l])
      return eplb__err(EPLB_EINVAL, "replan: old map: layer %lld where the loads have layer %lld",
                       (long long)old->layer_ids[l], (long long)loads->layer_ids[l]);
  int dups = pr->policy == EPLB_POLICY_DEEPSEEK && pr->allow_duplicates;
  if (eplb_placement_validate(old, dups) != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s", eplb_last_error());
    return eplb__err(EPLB_EINVAL, "replan: old map: %s", why);
  }
  return 0;
}

/* Plans fresh, matches every layer to the old map, then spends the budget if there is one. */
int eplb_plan_replan(const eplb_loads *loads, const eplb_params *params,
                     const eplb_placement *old, int64_t max_moves, eplb_placement **out) {
  eplb__scratch sc = {0};
  if (!out)
    return eplb__err(EPLB_EINVAL, "replan: no output");
  *out = NULL;
  if (!loads || !params)
    return eplb__err(EPLB_EINVAL, "replan: no loads or parameters");
  int rc = check_old(loads, params, old);
  if (rc)
    return rc;
  eplb_placement *fresh = NULL;
  rc = eplb_plan(loads, params, &fresh);
  if (rc)
    return rc;
  int32_t L = loads->num_layers, E = loads->num_experts, R = fresh->num_slots;
  int32_t G = fresh->num_gpus;
  match m = {G, R / G, E, 1, G, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  if (params->num_nodes > 1 &&
      (params->policy == EPLB_POLICY_DEEPSEEK
           ? eplb_params_mode(params) == EPLB_MODE_HIERARCHICAL
           : eplb_params_hierarchy(params) != EPLB_HIER_NONE)) {
    m.nodes = params->num_nodes;
    m.Gn = G / m.nodes;
  }
  m.on = eplb__take(&sc, (size_t)G * (size_t)E, 1);
  m.gain = eplb__take(&sc, (size_t)G * (size_t)G, sizeof *m.gain);
  m.assign = eplb__take(&sc, (size_t)G, sizeof *m.assign);
  m.node_of = eplb__take(&sc, (size_t)m.nodes, sizeof *m.node_of);
  m.ngain = eplb__take(&sc, (size_t)m.nodes * (size_t)m.nodes, sizeof *m.ngain);
  m.tmp = eplb__take(&sc, (size_t)G, sizeof *m.tmp);
  m.taken = eplb__take(&sc, (size_t)m.S, 1);
  m.out = eplb__take(&sc, (size_t)R, sizeof *m.out);
  if (sc.failed)
    rc = eplb__err(EPLB_ENOMEM, "replan: out of memory");
  for (int32_t l = 0; !rc && l < L; l++)
    rc = match_layer(&m, old->phy2log + (size_t)l * R, fresh->phy2log + (size_t)l * R);
  if (!rc && max_moves >= 0)
    rc = apply_budget(loads, old, fresh, m.nodes, max_moves);
  if (!rc)
    rc = eplb_placement_build_index(fresh);
  if (!rc)
    rc = eplb_placement_validate(fresh, params->policy == EPLB_POLICY_DEEPSEEK &&
                                            params->allow_duplicates);
  eplb__scratch_free(&sc);
  if (rc) {
    eplb_placement_free(fresh);
    return rc;
  }
  *out = fresh;
  return 0;
}
