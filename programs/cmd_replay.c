/* cmd_replay.c - `eplb replay`: replays a time series of token counts against four ways of
 * serving it (a static plan made on the first window, online re-balancing with eplb_rebalance,
 * re-planning from scratch at the same points, and an oracle planned on every window's own
 * counts) and prints balance per window and overall, the copies and bytes moved, as a table or
 * JSON, and draws balance over time as SVG. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define CMD "replay"
/* Default bytes of one expert copy: a DeepSeek-V3 expert in FP8, three 7168 x 2048 matrices. */
#define DEFAULT_EXPERT_BYTES (3LL * 7168 * 2048)
/* Longest path of a series file. */
#define PATH_LEN 4096

static void replay_usage(FILE *f) {
  fprintf(f,
          "usage: eplb replay --input SERIES --num_replicas R --num_gpus G [--num_groups K]\n"
          "                   [--num_nodes N] [--every N] [--windows W] [--max_moves M]\n"
          "                   [--min_gain X] [--decay D] [--json] [--svg OUT.svg] [options]\n"
          "\n"
          "Replays a time series of token counts, window by window, and measures four ways of\n"
          "serving it by max/mean (the busiest device's load over the mean device load, summed\n"
          "over layers; 1 = perfect):\n"
          "  static   the plan made on the first window, served throughout\n"
          "  online   starts from static; after every N windows eplb_rebalance re-plans from\n"
          "           the last W windows relative to the current map and moves only the layers\n"
          "           whose predicted max/mean drops by at least X, at most M copies per re-plan\n"
          "  scratch  re-plans from scratch (no old map) at the same points and adopts it\n"
          "  oracle   every window planned on its own counts (not reachable online)\n"
          "Overall figures are means over windows; copies are expert weights sent between\n"
          "devices, bytes = copies x --expert_bytes.\n"
          "\n"
          "  --input SERIES       a JSON list of windows, each in the seed format\n"
          "                       ({\"<layer>\": {\"<expert>\": count}}) or SGLang's, or a folder\n"
          "                       of such files (*.json, one window each, in name order)\n"
          "  --num_replicas R     physical expert slots per layer (multiple of G, >= E)\n"
          "  --num_gpus G         devices\n"
          "  --num_groups K       expert groups (default 1)\n"
          "  --num_nodes N        nodes (default 1)\n"
          "  --policy P           balanced (default) or deepseek\n"
          "  --hierarchy H        balanced: strict, soft or none (default as eplb plan)\n"
          "  --every N            re-plan after every N windows (default 1)\n"
          "  --windows W          re-plan from the last W windows (default 1)\n"
          "  --decay D            weight of a window i windows older than the newest: D^i, in\n"
          "                       (0, 1] (default 1)\n"
          "  --max_moves M        at most M copies per re-plan (default: no limit)\n"
          "  --min_gain X         least drop of a layer's predicted max/mean for it to move\n"
          "                       (default %g)\n"
          "  --expert_bytes B     bytes of one expert copy (default %lld, a DeepSeek-V3 expert\n"
          "                       in FP8)\n"
          "  --json               print the overall figures as JSON instead of the table\n"
          "  --svg OUT.svg        also draw max/mean over time (replaced atomically)\n"
          "  -h, --help           this help\n"
          "Exit status 0 on success, 1 on a failure (the message names the file and field),\n"
          "2 on a bad command line.\n",
          EPLB_REBALANCE_MIN_GAIN, (long long)DEFAULT_EXPERT_BYTES);
}

enum {
  OPT_INPUT = 256,
  OPT_REPLICAS,
  OPT_GPUS,
  OPT_GROUPS,
  OPT_NODES,
  OPT_POLICY,
  OPT_HIER,
  OPT_EVERY,
  OPT_WINDOWS,
  OPT_DECAY,
  OPT_MOVES,
  OPT_GAIN,
  OPT_BYTES,
  OPT_JSON,
  OPT_SVG
};

static const struct option replay_options[] = {
    {"input", required_argument, NULL, OPT_INPUT},
    {"num_replicas", required_argument, NULL, OPT_REPLICAS},
    {"num-replicas", required_argument, NULL, OPT_REPLICAS},
    {"num_gpus", required_argument, NULL, OPT_GPUS},
    {"num-gpus", required_argument, NULL, OPT_GPUS},
    {"num_groups", required_argument, NULL, OPT_GROUPS},
    {"num-groups", required_argument, NULL, OPT_GROUPS},
    {"num_nodes", required_argument, NULL, OPT_NODES},
    {"num-nodes", required_argument, NULL, OPT_NODES},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"hierarchy", required_argument, NULL, OPT_HIER},
    {"every", required_argument, NULL, OPT_EVERY},
    {"windows", required_argument, NULL, OPT_WINDOWS},
    {"decay", required_argument, NULL, OPT_DECAY},
    {"max_moves", required_argument, NULL, OPT_MOVES},
    {"max-moves", required_argument, NULL, OPT_MOVES},
    {"min_gain", required_argument, NULL, OPT_GAIN},
    {"min-gain", required_argument, NULL, OPT_GAIN},
    {"expert_bytes", required_argument, NULL, OPT_BYTES},
    {"expert-bytes", required_argument, NULL, OPT_BYTES},
    {"json", no_argument, NULL, OPT_JSON},
    {"svg", required_argument, NULL, OPT_SVG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the command line asks for. */
typedef struct replay_args {
  const char *input, *svg;
  eplb_params params;
  int64_t every, windows, max_moves, expert_bytes;
  double decay, min_gain;
  int json;
} replay_args;

/* ---- the series ---- */

/* The windows of a series, oldest first. */
typedef struct series {
  size_t n;
  eplb_loads **win;
  char **name; /* what messages call each window ("s.json[3]", "dir/b.json") */
} series;

static void series_free(series *s) {
  for (size_t i = 0; i < s->n; i++) {
    eplb_loads_free(s->win[i]);
    free(s->name[i]);
  }
  free(s->win);
  free(s->name);
  memset(s, 0, sizeof *s);
}

/* Makes room for one more window named `name`; its loads are set by the caller. */
static int series_push(series *s, const char *name) {
  /* an array of handles: the element is the pointer, as sizeof *w says */
  eplb_loads **w = realloc(s->win, (s->n + 1) * sizeof *w); // NOLINT(bugprone-sizeof-expression)
  if (!w)
    return EPLB_ENOMEM;
  s->win = w;
  char **nm = realloc(s->name, (s->n + 1) * sizeof *nm);
  if (!nm)
    return EPLB_ENOMEM;
  s->name = nm;
  s->win[s->n] = NULL;
  s->name[s->n] = strdup(name);
  if (!s->name[s->n])
    return EPLB_ENOMEM;
  s->n++;
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every *.json regular file of `dir` in name order, one window each. Prints the error. */
static int read_folder(const char *dir, series *s) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "eplb %s: %s: %s\n", CMD, dir, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  char **names = NULL;
  size_t n = 0;
  int status = 0;
  struct dirent *de;
  while (!status && (de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
      continue;
    char path[PATH_LEN];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (stat(path, &st) || !S_ISREG(st.st_mode))
      continue;
    char **grown = realloc(names, (n + 1) * sizeof *names);
    if (!grown || !(grown[n] = strdup(path))) {
      names = grown ? grown : names;
      status = cli_fail(CMD, EPLB_ENOMEM);
      break;
    }
    names = grown;
    n++;
  }
  closedir(d);
  if (!status && n == 0) {
    fprintf(stderr, "eplb %s: %s: no *.json file in the folder\n", CMD, dir);
    status = CLI_EXIT_FAIL;
  }
  if (!status)
    qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 0; !status && i < n; i++) {
    int rc = series_push(s, names[i]);
    if (!rc)
      rc = eplb_loads_read_file(names[i], 0, &s->win[s->n - 1]);
    if (rc)
      status = cli_fail(CMD, rc);
  }
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return status;
}

/* Reads a JSON list of windows. Prints the error. */
static int read_list(const char *path, series *s) {
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    if (jerr.line < 1)
      fprintf(stderr, "eplb %s: %s: %s\n", CMD, path, jerr.text);
    else
      fprintf(stderr, "eplb %s: %s: line %d column %d: %s\n", CMD, path, jerr.line, jerr.column,
              jerr.text);
    return CLI_EXIT_FAIL;
  }
  int status = 0;
  if (!json_is_array(root) || json_array_size(root) == 0) {
    fprintf(stderr, "eplb %s: %s: not a non-empty JSON list of windows\n", CMD, path);
    status = CLI_EXIT_FAIL;
  }
  for (size_t i = 0; !status && i < json_array_size(root); i++) {
    char name[PATH_LEN + 32];
    snprintf(name, sizeof name, "%s[%zu]", path, i);
    char *text = json_dumps(json_array_get(root, i), JSON_COMPACT);
    int rc = text ? series_push(s, name) : EPLB_ENOMEM;
    if (!rc)
      rc = eplb_loads_parse(text, strlen(text), name, 0, &s->win[s->n - 1]);
    free(text);
    if (rc)
      status = cli_fail(CMD, rc);
  }
  json_decref(root);
  return status;
}

/* Widens `x` to E experts (the new experts count 0). @return 0 or EPLB_ENOMEM. */
static int widen(eplb_loads **x, int32_t E) {
  eplb_loads *old = *x, *w = NULL;
  if (old->num_experts == E)
    return 0;
  int rc = eplb_loads_create(old->num_layers, E, &w);
  if (rc)
    return rc;
  for (int32_t l = 0; l < old->num_layers; l++) {
    w->layer_ids[l] = old->layer_ids[l];
    for (int32_t e = 0; e < old->num_experts; e++) {
      w->load[(size_t)l * E + e] = old->load[(size_t)l * old->num_experts + e];
      if (old->count)
        w->count[(size_t)l * E + e] = old->count[(size_t)l * old->num_experts + e];
    }
  }
  if (!old->count) {
    free(w->count);
    w->count = NULL;
  }
  eplb_loads_free(old);
  *x = w;
  return 0;
}

/* Reads the series and gives every window the same experts (the largest count over the
 * windows); every window must have the first one's layers. Prints the error. */
static int read_series(const char *path, series *s) {
  struct stat st;
  if (stat(path, &st)) {
    fprintf(stderr, "eplb %s: %s: %s\n", CMD, path, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  int status = S_ISDIR(st.st_mode) ? read_folder(path, s) : read_list(path, s);
  if (status)
    return status;
  int32_t E = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->win[i]->num_experts > E)
      E = s->win[i]->num_experts;
  const eplb_loads *first = s->win[0];
  for (size_t i = 0; i < s->n; i++) {
    const eplb_loads *x = s->win[i];
    int same = x->num_layers == first->num_layers;
    for (int32_t l = 0; same && l < x->num_layers; l++)
      same = x->layer_ids[l] == first->layer_ids[l];
    if (!same) {
      fprintf(stderr, "eplb %s: %s: its layer ids differ from those of %s\n", CMD,
              s->name[i], s->name[0]);
      return CLI_EXIT_FAIL;
    }
    if (widen(&s->win[i], E))
      return cli_fail(CMD, EPLB_ENOMEM);
  }
  return 0;
}

/* ---- measures ---- */

/* max/mean of `p` under `x` (same rows): sum over layers of the busiest device's load over the
 * sum of the mean device loads; 1 without load. dev has room for G values. */
static double max_over_mean(const eplb_loads *x, const eplb_placement *p, double *dev) {
  double smax = 0, smean = 0;
  for (int32_t l = 0; l < p->num_layers; l++) {
    if (eplb_device_loads(x, p, l, dev))
      return -1;
    double sum = 0, max = 0;
    for (int32_t g = 0; g < p->num_gpus; g++) {
      sum += dev[g];
      max = dev[g] > max ? dev[g] : max;
    }
    smax += max;
    smean += sum / p->num_gpus;
  }
  return smean > 0 ? smax / smean : 1.0;
}

/* The loads a re-plan after window t sees: windows t-W+1 .. t, window t-i weighing decay^i. */
static int recent_loads(const series *s, size_t t, const replay_args *a, eplb_loads **out) {
  const eplb_loads *w0 = s->win[0];
  int rc = eplb_loads_create(w0->num_layers, w0->num_experts, out);
  if (rc)
    return rc;
  eplb_loads *x = *out;
  memcpy(x->layer_ids, w0->layer_ids, (size_t)w0->num_layers * sizeof(int64_t));
  free(x->count);
  x->count = NULL;
  size_t cells = (size_t)w0->num_layers * (size_t)w0->num_experts;
  double w = 1.0;
  for (size_t i = 0; i < (size_t)a->windows && i <= t; i++, w *= a->decay)
    for (size_t k = 0; k < cells; k++)
      x->load[k] += w * s->win[t - i]->load[k];
  return 0;
}

/* ---- the replay ---- */

/* Figures of one window. */
typedef struct window_row {
  double stat, online, scratch, oracle; /* max/mean of each way of serving */
  int replanned;                        /* a re-plan follows this window */
  int32_t layers_moved;                 /* by online's re-plan after it */
  int64_t online_copies, scratch_copies; /* copies each re-plan after it moves */
} window_row;

/* Overall figures. */
typedef struct replay_totals {
  double stat, online, scratch, oracle; /* means over windows */
  int64_t replans, layers_moved, online_copies, scratch_copies;
} replay_totals;

/* Runs the replay; rows has s->n entries. @return 0 or a library error (detail set). */
static int replay(const series *s, const replay_args *a, window_row *rows, replay_totals *tot) {
  const eplb_params *pr = &a->params;
  eplb_placement *stat = NULL, *online = NULL, *scratch = NULL;
  double *dev = malloc((size_t)pr->num_gpus * sizeof *dev);
  if (!dev)
    return EPLB_ENOMEM;
  int rc = eplb_plan(s->win[0], pr, &stat);
  if (!rc)
    rc = eplb_placement_clone(stat, &online);
  if (!rc)
    rc = eplb_placement_clone(stat, &scratch);
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  o.max_moves = a->max_moves;
  o.min_gain = a->min_gain;
  memset(tot, 0, sizeof *tot);
  for (size_t t = 0; !rc && t < s->n; t++) {
    window_row *row = &rows[t];
    memset(row, 0, sizeof *row);
    eplb_placement *oracle = NULL;
    rc = eplb_plan(s->win[t], pr, &oracle);
    if (rc)
      break;
    row->stat = max_over_mean(s->win[t], stat, dev);
    row->online = max_over_mean(s->win[t], online, dev);
    row->scratch = max_over_mean(s->win[t], scratch, dev);
    row->oracle = max_over_mean(s->win[t], oracle, dev);
    eplb_placement_free(oracle);
    if ((t + 1) % (size_t)a->every != 0 || t + 1 == s->n)
      continue;
    /* Re-plan after window t, for the windows that follow. */
    eplb_loads *recent = NULL;
    eplb_rebalance_result *r = NULL;
    eplb_placement *fresh = NULL;
    eplb_transfer *xfer = NULL;
    rc = recent_loads(s, t, a, &recent);
    if (!rc)
      rc = eplb_rebalance(recent, pr, online, &o, &r);
    if (!rc)
      rc = eplb_plan(recent, pr, &fresh);
    if (!rc)
      rc = eplb_transfer_plan(scratch, fresh, &xfer);
    if (!rc) {
      row->replanned = 1;
      row->layers_moved = r->num_moved;
      row->online_copies = r->copies_moved;
      row->scratch_copies = xfer->stats.receives;
      eplb_placement *next = NULL;
      rc = eplb_placement_clone(r->placement, &next);
      if (!rc) {
        eplb_placement_free(online);
        online = next;
      }
      eplb_placement_free(scratch);
      scratch = fresh;
      fresh = NULL;
    }
    eplb_transfer_free(xfer);
    eplb_placement_free(fresh);
    eplb_rebalance_result_free(r);
    eplb_loads_free(recent);
  }
  for (size_t t = 0; !rc && t < s->n; t++) {
    tot->stat += rows[t].stat / (double)s->n;
    tot->online += rows[t].online / (double)s->n;
    tot->scratch += rows[t].scratch / (double)s->n;
    tot->oracle += rows[t].oracle / (double)s->n;
    tot->replans += rows[t].replanned;
    tot->layers_moved += rows[t].layers_moved;
    tot->online_copies += rows[t].online_copies;
    tot->scratch_copies += rows[t].scratch_copies;
  }
  free(dev);
  eplb_placement_free(stat);
  eplb_placement_free(online);
  eplb_placement_free(scratch);
  return rc;
}

/* ---- output ---- */

static void print_table(const series *s, const replay_args *a, const window_row *rows,
                        const replay_totals *tot) {
  const eplb_loads *w0 = s->win[0];
  char moves[32];
  if (a->max_moves < 0)
    snprintf(moves, sizeof moves, "none");
  else
    snprintf(moves, sizeof moves, "%lld", (long long)a->max_moves);
  printf("replay: %zu windows, %d layers x %d experts -> %d slots on %d devices; re-plan every "
         "%lld from the last %lld (decay %g), max_moves %s, min_gain %g\n",
         s->n, (int)w0->num_layers, (int)w0->num_experts, (int)a->params.num_replicas,
         (int)a->params.num_gpus, (long long)a->every, (long long)a->windows, a->decay,
         moves, a->min_gain);
  printf("%-8s %8s %8s %8s %8s %12s %13s %14s\n", "window", "static", "online", "scratch",
         "oracle", "layers_moved", "online_copies", "scratch_copies");
  for (size_t t = 0; t < s->n; t++) {
    const window_row *r = &rows[t];
    printf("%-8zu %8.4f %8.4f %8.4f %8.4f", t, r->stat, r->online, r->scratch, r->oracle);
    if (r->replanned)
      printf(" %12d %13lld %14lld\n", (int)r->layers_moved, (long long)r->online_copies,
             (long long)r->scratch_copies);
    else
      printf(" %12s %13s %14s\n", "-", "-", "-");
  }
  printf("%-8s %8.4f %8.4f %8.4f %8.4f %12lld %13lld %14lld\n", "overall", tot->stat, tot->online,
         tot->scratch, tot->oracle, (long long)tot->layers_moved, (long long)tot->online_copies,
         (long long)tot->scratch_copies);
  printf("overall max/mean is the mean over windows; copies are the expert weights the re-plan "
         "after the window moves.\n");
  printf("bytes moved: online %lld, scratch %lld (%lld re-plans, %lld bytes per copy)\n",
         (long long)tot->online_copies * a->expert_bytes,
         (long long)tot->scratch_copies * a->expert_bytes, (long long)tot->replans,
         (long long)a->expert_bytes);
}

/* {"max_over_mean": x} plus, when copies >= 0, the copies and bytes moved. */
static json_t *way_json(double mom, int64_t copies, int64_t expert_bytes) {
  json_t *o = json_object();
  if (!o)
    return NULL;
  json_object_set_new(o, "max_over_mean", json_real(mom));
  if (copies >= 0) {
    json_object_set_new(o, "copies_moved", json_integer(copies));
    json_object_set_new(o, "bytes_moved", json_integer(copies * expert_bytes));
  }
  return o;
}

static int print_json(const series *s, const replay_args *a, const replay_totals *tot) {
  json_t *root = json_object();
  if (!root)
    return cli_fail(CMD, EPLB_ENOMEM);
  json_t *online = way_json(tot->online, tot->online_copies, a->expert_bytes);
  if (online) {
    json_object_set_new(online, "layers_moved", json_integer(tot->layers_moved));
    json_object_set_new(online, "replans", json_integer(tot->replans));
  }
  json_object_set_new(root, "static", way_json(tot->stat, -1, 0));
  json_object_set_new(root, "online", online);
  json_object_set_new(root, "scratch",
                      way_json(tot->scratch, tot->scratch_copies, a->expert_bytes));
  json_object_set_new(root, "oracle", way_json(tot->oracle, -1, 0));
  json_object_set_new(root, "num_windows", json_integer((json_int_t)s->n));
  json_object_set_new(root, "expert_bytes", json_integer(a->expert_bytes));
  int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(10));
  json_decref(root);
  printf("\n");
  return rc ? cli_fail(CMD, EPLB_EIO) : CLI_EXIT_OK;
}

/* ---- svg ---- */

#define SVG_W 760
#define SVG_H 360
#define SVG_LEFT 60
#define SVG_RIGHT 130
#define SVG_TOP 30
#define SVG_BOTTOM 40

/* Draws one polyline of the series `pick` over windows. */
static void svg_line(FILE *f, const window_row *rows, size_t n, size_t field, double lo, double hi,
                     const char *colour, const char *label, int k) {
  double pw = SVG_W - SVG_LEFT - SVG_RIGHT, ph = SVG_H - SVG_TOP - SVG_BOTTOM;
  fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colour);
  for (size_t t = 0; t < n; t++) {
    double v = *(const double *)((const char *)&rows[t] + field);
    double x = SVG_LEFT + (n > 1 ? pw * (double)t / (double)(n - 1) : pw / 2);
    double y = SVG_TOP + ph * (1 - (v - lo) / (hi - lo));
    fprintf(f, "%s%.1f,%.1f", t ? " " : "", x, y);
  }
  fprintf(f, "\"/>\n");
  int ly = SVG_TOP + 10 + 18 * k;
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n",
          SVG_W - SVG_RIGHT + 10, ly, SVG_W - SVG_RIGHT + 30, ly, colour);
  fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", SVG_W - SVG_RIGHT + 35, ly + 4, label);
}

/* Writes the picture to f. */
static void svg_write(FILE *f, const window_row *rows, size_t n) {
  double lo = 1.0, hi = 1.0;
  for (size_t t = 0; t < n; t++) {
    const double v[4] = {rows[t].stat, rows[t].online, rows[t].scratch, rows[t].oracle};
    for (int i = 0; i < 4; i++)
      hi = v[i] > hi ? v[i] : hi;
  }
  hi = hi > lo ? lo + (hi - lo) * 1.05 : lo + 0.1;
  double pw = SVG_W - SVG_LEFT - SVG_RIGHT, ph = SVG_H - SVG_TOP - SVG_BOTTOM;
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
             "font-family=\"sans-serif\" font-size=\"12\">\n",
          SVG_W, SVG_H);
  fprintf(f, "<title>eplb replay: max/mean over time</title>\n");
  fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", SVG_W, SVG_H);
  fprintf(f, "<text x=\"%d\" y=\"18\">max/mean per window (1 = perfect); marks: re-plans that "
             "moved weights</text>\n",
          SVG_LEFT);
  for (int i = 0; i <= 4; i++) {
    double v = lo + (hi - lo) * i / 4, y = SVG_TOP + ph * (1 - (double)i / 4);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", SVG_LEFT,
            y, SVG_LEFT + pw, y);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>\n", SVG_LEFT - 5, y + 4,
            v);
  }
  for (size_t t = 0; t < n; t++)
    if (rows[t].online_copies > 0) {
      double x = SVG_LEFT + (n > 1 ? pw * ((double)t + 0.5) / (double)(n - 1) : pw / 2);
      fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#9c9\" "
                 "stroke-dasharray=\"3,3\"/>\n",
              x, SVG_TOP, x, SVG_TOP + ph);
    }
  fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">window (%zu)</text>\n",
          SVG_LEFT + pw / 2, SVG_H - 10, n);
  svg_line(f, rows, n, offsetof(window_row, stat), lo, hi, "#d62728", "static", 0);
  svg_line(f, rows, n, offsetof(window_row, online), lo, hi, "#2ca02c", "online", 1);
  svg_line(f, rows, n, offsetof(window_row, scratch), lo, hi, "#ff7f0e", "scratch", 2);
  svg_line(f, rows, n, offsetof(window_row, oracle), lo, hi, "#1f77b4", "oracle", 3);
  fprintf(f, "</svg>\n");
}

/* Writes the SVG to path through a temp file renamed over it. Prints the error. */
static int write_svg(const char *path, const window_row *rows, size_t n) {
  char tmp[PATH_LEN + 16];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "eplb %s: %s: %s\n", CMD, tmp, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  svg_write(f, rows, n);
  int bad = ferror(f);
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path)) {
    fprintf(stderr, "eplb %s: %s: %s\n", CMD, path, bad ? "cannot write" : strerror(errno));
    remove(tmp);
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* ---- command ---- */

/* Parses the command line into a; @return 0, -1 after --help, or CLI_EXIT_USAGE. */
static int parse_args(int argc, char **argv, replay_args *a) {
  memset(a, 0, sizeof *a);
  eplb_params_init(&a->params);
  a->params.num_groups = 1;
  a->params.num_nodes = 1;
  a->every = 1;
  a->windows = 1;
  a->max_moves = -1;
  a->decay = 1.0;
  a->min_gain = EPLB_REBALANCE_MIN_GAIN;
  a->expert_bytes = DEFAULT_EXPERT_BYTES;
  int64_t v = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", replay_options, NULL)) != -1) {
    int rc = 0;
    switch (c) {
    case OPT_INPUT:
      a->input = optarg;
      break;
    case OPT_REPLICAS:
      rc = cli_parse_i64(CMD, "num_replicas", optarg, 1, INT32_MAX, &v);
      a->params.num_replicas = (int32_t)v;
      break;
    case OPT_GPUS:
      rc = cli_parse_i64(CMD, "num_gpus", optarg, 1, INT32_MAX, &v);
      a->params.num_gpus = (int32_t)v;
      break;
    case OPT_GROUPS:
      rc = cli_parse_i64(CMD, "num_groups", optarg, 1, INT32_MAX, &v);
      a->params.num_groups = (int32_t)v;
      break;
    case OPT_NODES:
      rc = cli_parse_i64(CMD, "num_nodes", optarg, 1, INT32_MAX, &v);
      a->params.num_nodes = (int32_t)v;
      break;
    case OPT_POLICY:
      if (!strcmp(optarg, "deepseek"))
        a->params.policy = EPLB_POLICY_DEEPSEEK;
      else if (!strcmp(optarg, "balanced"))
        a->params.policy = EPLB_POLICY_BALANCED;
      else
        return cli_usage_error(CMD, "--policy: '%s' is not deepseek or balanced", optarg);
      break;
    case OPT_HIER:
      if (!strcmp(optarg, "strict"))
        a->params.hierarchy = EPLB_HIER_STRICT;
      else if (!strcmp(optarg, "soft"))
        a->params.hierarchy = EPLB_HIER_SOFT;
      else if (!strcmp(optarg, "none"))
        a->params.hierarchy = EPLB_HIER_NONE;
      else
        return cli_usage_error(CMD, "--hierarchy: '%s' is not strict, soft or none", optarg);
      break;
    case OPT_EVERY:
      rc = cli_parse_i64(CMD, "every", optarg, 1, INT32_MAX, &a->every);
      break;
    case OPT_WINDOWS:
      rc = cli_parse_i64(CMD, "windows", optarg, 1, INT32_MAX, &a->windows);
      break;
    case OPT_DECAY:
      rc = cli_parse_double(CMD, "decay", optarg, 0, 1, &a->decay);
      if (!rc && a->decay <= 0)
        return cli_usage_error(CMD, "--decay: '%s' is not in (0, 1]", optarg);
      break;
    case OPT_MOVES:
      rc = cli_parse_i64(CMD, "max_moves", optarg, 0, INT64_MAX, &a->max_moves);
      break;
    case OPT_GAIN:
      rc = cli_parse_double(CMD, "min_gain", optarg, 0, 1e9, &a->min_gain);
      break;
    case OPT_BYTES:
      rc = cli_parse_i64(CMD, "expert_bytes", optarg, 0, INT64_MAX / INT32_MAX, &a->expert_bytes);
      break;
    case OPT_JSON:
      a->json = 1;
      break;
    case OPT_SVG:
      a->svg = optarg;
      break;
    case 'h':
      replay_usage(stdout);
      return -1;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
    if (rc)
      return CLI_EXIT_USAGE;
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!a->input)
    return cli_usage_error(CMD, "--input SERIES is required");
  if (!a->params.num_replicas || !a->params.num_gpus)
    return cli_usage_error(CMD, "--num_replicas R and --num_gpus G are required");
  return 0;
}

int cmd_replay(int argc, char **argv) {
  replay_args a;
  int status = parse_args(argc, argv, &a);
  if (status)
    return status < 0 ? CLI_EXIT_OK : status;
  series s = {0};
  status = read_series(a.input, &s);
  window_row *rows = NULL;
  replay_totals tot;
  if (!status) {
    rows = calloc(s.n, sizeof *rows);
    int rc = rows ? replay(&s, &a, rows, &tot) : EPLB_ENOMEM;
    if (rc)
      status = cli_fail_about(CMD, rc, a.input);
  }
  if (!status && a.svg)
    status = write_svg(a.svg, rows, s.n);
  if (!status && a.json)
    status = print_json(&s, &a, &tot);
  else if (!status)
    print_table(&s, &a, rows, &tot);
  free(rows);
  series_free(&s);
  return status;
}
