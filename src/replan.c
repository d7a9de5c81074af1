/* replan.c - migration-aware re-planning: a fresh plan is matched to the old placement so that
 * the fewest expert weights move (which old device takes which new device's content is an
 * assignment problem on overlap, solved exactly by the Hungarian algorithm; experts already on a
 * device keep their slot), and with a budget, whole layers are re-planned in order of gain per
 * move while the budget lasts, the others keep the old placement. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quality_int.h"

/* ---- assignment ---- */

/* Solves the n x n assignment problem maximising sum gain[i*n + assign[i]] exactly (Hungarian
 * algorithm with potentials, O(n^3)); assign[i] is the column of row i. @return 0 or ENOMEM. */
int eplb__assign_max(const int64_t *gain, int32_t n, int32_t *assign) {
  /* Minimise cost = -gain; rows and columns are 1-based inside, 0 is the virtual start. */
  size_t m = (size_t)n + 1;
  int64_t *u = eplb__calloc(m, sizeof *u), *v = eplb__calloc(m, sizeof *v);
  int64_t *minv = eplb__calloc(m, sizeof *minv);
  int32_t *p = eplb__calloc(m, sizeof *p), *way = eplb__calloc(m, sizeof *way);
  unsigned char *used = eplb__calloc(m, 1);
  int rc = 0;
  if (!u || !v || !minv || !p || !way || !used) {
    rc = eplb__err(EPLB_ENOMEM, "replan: out of memory");
    goto done;
  }
  for (int32_t i = 1; i <= n; i++) {
    p[0] = i;
    int32_t j0 = 0;
    for (int32_t j = 0; j <= n; j++) {
      minv[j] = INT64_MAX;
      used[j] = 0;
    }
    do {
      used[j0] = 1;
      int32_t i0 = p[j0], j1 = 0;
      int64_t delta = INT64_MAX;
      for (int32_t j = 1; j <= n; j++) {
        if (used[j])
          continue;
        int64_t cur = -gain[(size_t)(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int32_t j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      int32_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  for (int32_t j = 1; j <= n; j++)
    assign[p[j] - 1] = j - 1;
done:
  free(u);
  free(v);
  free(minv);
  free(p);
  free(way);
  free(used);
  return rc;
}

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
    const int32_t *src = new_row + m->assign[d] * S;
    int32_t *dst = out + d * S;
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

/* The busiest device's load of one row under loads w (replicas share their expert's load). */
static double row_busiest(const double *w, const int32_t *row, int32_t R, int32_t G, int32_t E,
                          int32_t *cnt) {
  int32_t S = R / G;
  memset(cnt, 0, (size_t)E * sizeof *cnt);
  for (int32_t s = 0; s < R; s++)
    cnt[row[s]]++;
  double mx = 0;
  for (int32_t d = 0; d < G; d++) {
    double sum = 0;
    for (int32_t s = d * S; s < (d + 1) * S; s++)
      sum += w[row[s]] / (double)cnt[row[s]];
    mx = sum > mx ? sum : mx;
  }
  return mx;
}

/* One layer's candidate: the matched fresh row, its moves and its gain. */
typedef struct layer_gain {
  int32_t layer;
  int64_t moves;
  double gain; /* old busiest load - new busiest load */
} layer_gain;

/* Orders layers by gain per move, best first, then by index. */
static int gain_cmp(const void *pa, const void *pb) {
  const layer_gain *a = pa, *b = pb;
  double ra = a->gain / (double)a->moves, rb = b->gain / (double)b->moves;
  if (ra != rb)
    return ra > rb ? -1 : 1;
  return a->layer - b->layer;
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

int eplb_plan_replan(const eplb_loads *loads, const eplb_params *params,
                     const eplb_placement *old, int64_t max_moves, eplb_placement **out) {
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
           : eplb__resolve_hierarchy(params) != EPLB_HIER_NONE)) {
    m.nodes = params->num_nodes;
    m.Gn = G / m.nodes;
  }
  m.on = eplb__calloc((size_t)G * (size_t)E, 1);
  m.gain = eplb__calloc((size_t)G * (size_t)G, sizeof *m.gain);
  m.assign = eplb__calloc((size_t)G, sizeof *m.assign);
  m.node_of = eplb__calloc((size_t)m.nodes, sizeof *m.node_of);
  m.ngain = eplb__calloc((size_t)m.nodes * (size_t)m.nodes, sizeof *m.ngain);
  m.tmp = eplb__calloc((size_t)G, sizeof *m.tmp);
  m.taken = eplb__calloc((size_t)m.S, 1);
  m.out = eplb__calloc((size_t)R, sizeof *m.out);
  layer_gain *lg = eplb__calloc((size_t)L, sizeof *lg);
  int32_t *cnt = eplb__calloc((size_t)E, sizeof *cnt);
  if (!m.on || !m.gain || !m.assign || !m.node_of || !m.ngain || !m.tmp || !m.taken || !m.out ||
      !lg || !cnt)
    rc = eplb__err(EPLB_ENOMEM, "replan: out of memory");
  int32_t nl = 0;
  for (int32_t l = 0; !rc && l < L; l++) {
    const int32_t *orow = old->phy2log + (size_t)l * R;
    int32_t *nrow = fresh->phy2log + (size_t)l * R;
    rc = match_layer(&m, orow, nrow);
    if (rc)
      break;
    int64_t moves = eplb_placement_moves(old, fresh, l);
    const double *w = loads->load + (size_t)l * E;
    double gain = row_busiest(w, orow, R, G, E, cnt) - row_busiest(w, nrow, R, G, E, cnt);
    if (moves == 0 || max_moves < 0)
      continue; /* the matched fresh row is taken as it is */
    lg[nl].layer = l;
    lg[nl].moves = moves;
    lg[nl].gain = gain;
    nl++;
  }
  /* Within the budget: whole layers by gain per move; the rest keep the old row. */
  if (!rc && max_moves >= 0) {
    qsort(lg, (size_t)nl, sizeof *lg, gain_cmp);
    int64_t left = max_moves;
    for (int32_t i = 0; i < nl; i++) {
      int32_t l = lg[i].layer;
      if (lg[i].gain > 0 && lg[i].moves <= left) {
        left -= lg[i].moves;
        continue;
      }
      memcpy(fresh->phy2log + (size_t)l * R, old->phy2log + (size_t)l * R,
             (size_t)R * sizeof *fresh->phy2log);
    }
  }
  if (!rc)
    rc = eplb_placement_build_index(fresh);
  if (!rc)
    rc = eplb_placement_validate(fresh, params->policy == EPLB_POLICY_DEEPSEEK &&
                                            params->allow_duplicates);
  free(m.on);
  free(m.gain);
  free(m.assign);
  free(m.node_of);
  free(m.ngain);
  free(m.tmp);
  free(m.taken);
  free(m.out);
  free(lg);
  free(cnt);
  if (rc) {
    eplb_placement_free(fresh);
    return rc;
  }
  *out = fresh;
  return 0;
}
