/* stage.c - which slots of a transfer plan go through staging when moving in place.
 *
 * In place, a slot may be overwritten only once every read of its old content is done: the
 * sends of it have completed (their receivers posted a receive) and the local copies of it are
 * made. A slot whose content is read by others thus waits for its readers, who may wait for
 * theirs: slot u waits on the slots that read u. Each slot reads one source, so these waits form
 * trees hanging off cycles (a swap between two ranks is a cycle of two). A staged slot has its
 * old content copied to the staging area first, and its readers read it there, so it waits for
 * nobody: one staged slot per cycle removes every cycle, and staging the slots that would wait
 * more than EPLB__STAGE_MAX_WAIT message times keeps chains of waits short. Every other slot
 * receives directly into place, with no extra copy. */
#include <stdlib.h>
#include <string.h>

#include "move/move_int.h"

/* Scratch for one layer's graph. */
typedef struct stager {
  int32_t R, S, G;
  int32_t *par;   /* [R] the slot u reads (RECV or LOCAL), else -1 */
  int32_t *head;  /* [R] first reader of slot u, -1 if none */
  int32_t *sib;   /* [R] next reader of the same slot */
  int32_t *state; /* [R] cycle search: 0 unseen, 1 on the current walk, 2 done */
  int32_t *post;  /* [R] message times before u's receive or copy can be posted */
  int32_t *stack; /* [R] depth-first walk */
  int32_t *it;    /* [R] next reader to visit of each slot on the stack */
  int32_t *cnt;   /* [G] staged slots of each rank in this layer */
} stager;

/* ---- cycles ---- */

/* Stages one slot of the cycle through v: the one whose rank stages least so far, then the
 * lowest slot. */
static void stage_cycle(stager *g, uint8_t *staged, int32_t v) {
  int32_t best = v;
  for (int32_t w = g->par[v]; w != v; w = g->par[w]) {
    int32_t cw = g->cnt[w / g->S], cb = g->cnt[best / g->S];
    if (cw < cb || (cw == cb && w < best))
      best = w;
  }
  staged[best] = 1;
  g->cnt[best / g->S]++;
}

/* Walks up from every slot along what it reads; a walk that meets itself found a cycle. */
static void break_cycles(stager *g, uint8_t *staged) {
  memset(g->state, 0, (size_t)g->R * sizeof *g->state);
  for (int32_t u = 0; u < g->R; u++) {
    int32_t v = u;
    while (v >= 0 && g->state[v] == 0) {
      g->state[v] = 1;
      v = g->par[v];
    }
    if (v >= 0 && g->state[v] == 1)
      stage_cycle(g, staged, v);
    for (v = u; v >= 0 && g->state[v] == 1; v = g->par[v])
      g->state[v] = 2;
  }
}

/* ---- waits ---- */

/* Computes, readers before the slot they read, when each slot can be posted: a staged slot at
 * once; another when its last reader's read is done (a receive one message time after the
 * reader was posted, a local copy at once). Stages a slot whose wait exceeds the bound. The
 * walk starts at slots that wait for no reader's slot: those that read nothing or are staged. */
static void bound_waits(stager *g, const eplb_xfer *x, uint8_t *staged) {
  for (int32_t r = 0; r < g->R; r++) /* the starts, before the walk stages more slots */
    g->state[r] = g->par[r] < 0 || staged[r];
  for (int32_t r = 0; r < g->R; r++) {
    if (!g->state[r])
      continue;
    int32_t sp = 0;
    g->stack[sp++] = r, g->it[r] = g->head[r];
    while (sp > 0) {
      int32_t u = g->stack[sp - 1], c = g->it[u];
      if (c >= 0) {
        g->it[u] = g->sib[c];
        if (!staged[c])
          g->stack[sp++] = c, g->it[c] = g->head[c];
        continue;
      }
      sp--;
      int32_t wait = 0;
      for (c = g->head[u]; c >= 0; c = g->sib[c]) {
        int32_t done = (staged[c] ? 0 : g->post[c]) + (x[c].kind == EPLB_XFER_RECV);
        wait = done > wait ? done : wait;
      }
      if (!staged[u] && g->par[u] >= 0 && wait > EPLB__STAGE_MAX_WAIT) {
        staged[u] = 1;
        g->cnt[u / g->S]++;
      }
      g->post[u] = staged[u] ? 0 : wait;
    }
  }
}

/* ---- the plan ---- */

/* Marks the staged slots of one layer and records the round each slot can be written in. */
static void stage_layer(stager *g, const eplb_xfer *x, uint8_t *staged, int32_t *step) {
  memset(g->cnt, 0, (size_t)g->G * sizeof *g->cnt);
  memset(g->post, 0, (size_t)g->R * sizeof *g->post);
  for (int32_t u = 0; u < g->R; u++) {
    g->head[u] = -1;
    g->par[u] = x[u].kind == EPLB_XFER_RECV || x[u].kind == EPLB_XFER_LOCAL ? x[u].src_slot : -1;
  }
  for (int32_t u = g->R - 1; u >= 0; u--) /* readers listed in ascending order */
    if (g->par[u] >= 0)
      g->sib[u] = g->head[g->par[u]], g->head[g->par[u]] = u;
  break_cycles(g, staged);
  bound_waits(g, x, staged);
  for (int32_t u = 0; u < g->R; u++)
    step[u] = g->par[u] >= 0 ? g->post[u] : 0;
}

/* Allocates the marks and the scratch, then marks every layer. */
int eplb__transfer_stage(eplb_transfer *plan) {
  int32_t R = plan->to_slots, G = plan->num_gpus;
  size_t n = (size_t)plan->num_layers * (size_t)R;
  plan->staged = eplb__calloc(n, 1);
  plan->step = eplb__calloc(n, sizeof *plan->step);
  if (!plan->staged || !plan->step)
    return eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  if (plan->from_slots != plan->to_slots)
    return 0;
  stager g = {.R = R, .S = R / G, .G = G};
  int32_t **bufs[] = {&g.par, &g.head, &g.sib, &g.state, &g.post, &g.stack, &g.it};
  int fail = 0;
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    fail |= (*bufs[i] = eplb__mallocn((size_t)R, sizeof(int32_t))) == NULL;
  g.cnt = eplb__mallocn((size_t)G, sizeof *g.cnt);
  if (!fail && g.cnt)
    for (int32_t l = 0; l < plan->num_layers; l++)
      stage_layer(&g, plan->xfers + (size_t)l * R, plan->staged + (size_t)l * R,
                  plan->step + (size_t)l * R);
  for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
    free(*bufs[i]);
  free(g.cnt);
  if (fail || !g.cnt)
    return eplb__err(EPLB_ENOMEM, "transfer plan: out of memory");
  return 0;
}
