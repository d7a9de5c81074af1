/* svg.c - the picture of `eplb report --svg`: per layer, device loads before and after (the
 * initial placement and the map side by side), and a heat map of expert load across layers.
 * Hand-written SVG 1.1 text; only numbers and fixed words go into it, so nothing needs escaping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/bound.h"

/* Page layout, in SVG user units (pixels). */
#define PAGE_WIDTH 1240
#define MARGIN 20
#define HEADER_HEIGHT 70
#define PANEL_COLS 4
#define PANEL_WIDTH 290
#define PANEL_HEIGHT 130
#define PANEL_GAP 10
#define PLOT_TOP 22     /* inside a panel: room for its title */
#define PLOT_BOTTOM 18  /* inside a panel: room for the x labels */
#define PLOT_LEFT 42    /* inside a panel: room for the y labels */
#define HEAT_ROW 8      /* height of one layer's row in the heat map */
#define HEAT_LEFT 60
#define HEAT_WIDTH 1100
#define HEAT_LOG_RANGE 3.0 /* the colour scale spans e^-3 .. e^3 times the layer mean */

/* What the writer needs. */
typedef struct svg_job {
  const eplb_loads *loads;
  const eplb_placement *map;
  const eplb_placement *initial;
  double *before, *after; /* [G] scratch */
} svg_job;

/* ---- pieces ---- */

/* Device loads of the placement without redundancy: device d serves experts d*E/G..(d+1)*E/G-1. */
static void plain_loads(const double *w, int32_t E, int32_t G, double *dev) {
  memset(dev, 0, (size_t)G * sizeof *dev);
  for (int32_t e = 0; e < E; e++)
    dev[(int64_t)e * G / E] += w[e];
}

/* The heat colour of a load ratio: blue below the mean, white at it, red above. */
static void heat_colour(double ratio, int *r, int *g, int *b) {
  double x = ratio > 0 ? log(ratio) / HEAT_LOG_RANGE : -1;
  if (x > 1)
    x = 1;
  if (x < -1)
    x = -1;
  int v = (int)lround(255 * (1 - fabs(x)));
  if (x >= 0) {
    *r = 255, *g = v, *b = v;
  } else {
    *r = v, *g = v, *b = 255;
  }
}

/* One set of device bars in [x0, x0+width) of a plot of height h whose top is y0. */
static void bars(FILE *f, const double *dev, int32_t G, double x0, double width, double y0,
                 double h, double ymax, const char *cls) {
  double bw = width / G;
  for (int32_t d = 0; d < G; d++) {
    double bh = ymax > 0 ? h * dev[d] / ymax : 0;
    fprintf(f, "<rect class=\"%s\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\">"
               "<title>device %d: %.6g</title></rect>\n",
            cls, x0 + d * bw, y0 + h - bh, bw > 1.5 ? bw - 0.5 : bw, bh, d, dev[d]);
  }
}

/* One layer's panel at (px, py). */
static int panel(FILE *f, const svg_job *j, int32_t l, int32_t row, double px, double py) {
  int32_t G = j->map->num_gpus, E = j->loads->num_experts;
  const double *w = j->loads->load + (size_t)row * (size_t)E;
  int rc = eplb_map_device_loads(j->loads, row, j->map, l, j->after);
  if (!rc && j->initial)
    rc = eplb_map_device_loads(j->loads, row, j->initial, l, j->before);
  if (rc)
    return rc;
  if (!j->initial)
    plain_loads(w, E, G, j->before);
  double total = 0, ymax = 0;
  for (int32_t e = 0; e < E; e++)
    total += w[e];
  for (int32_t d = 0; d < G; d++) {
    ymax = j->before[d] > ymax ? j->before[d] : ymax;
    ymax = j->after[d] > ymax ? j->after[d] : ymax;
  }
  double mean = total / G;
  double lb = j->map->num_slots >= E ? eplb__pool_bound(w, E, j->map->num_slots, G) : mean;
  double x0 = px + PLOT_LEFT, y0 = py + PLOT_TOP;
  double pw = PANEL_WIDTH - PLOT_LEFT - 6, ph = PANEL_HEIGHT - PLOT_TOP - PLOT_BOTTOM;
  double half = (pw - 8) / 2;
  fprintf(f, "<g>\n<rect class=\"frame\" x=\"%.2f\" y=\"%.2f\" width=\"%d\" height=\"%d\"/>\n", px,
          py, PANEL_WIDTH, PANEL_HEIGHT);
  fprintf(f, "<text class=\"ptitle\" x=\"%.2f\" y=\"%.2f\">layer %lld</text>\n", px + 6, py + 15,
          (long long)j->map->layer_ids[l]);
  bars(f, j->before, G, x0, half, y0, ph, ymax, "before");
  bars(f, j->after, G, x0 + half + 8, half, y0, ph, ymax, "after");
  if (ymax > 0) {
    double ym = y0 + ph - ph * mean / ymax, yl = y0 + ph - ph * lb / ymax;
    fprintf(f, "<line class=\"mean\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, ym,
            x0 + pw, ym);
    fprintf(f, "<line class=\"lb\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, yl,
            x0 + pw, yl);
  }
  fprintf(f, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0, y0,
          x0, y0 + ph);
  fprintf(f, "<line class=\"axis\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", x0,
          y0 + ph, x0 + pw, y0 + ph);
  fprintf(f, "<text class=\"ylab\" x=\"%.2f\" y=\"%.2f\">%.3g</text>\n", x0 - 3, y0 + 4, ymax);
  fprintf(f, "<text class=\"ylab\" x=\"%.2f\" y=\"%.2f\">0</text>\n", x0 - 3, y0 + ph);
  fprintf(f, "<text class=\"xlab\" x=\"%.2f\" y=\"%.2f\">initial (devices)</text>\n",
          x0 + half / 2, y0 + ph + 13);
  fprintf(f, "<text class=\"xlab\" x=\"%.2f\" y=\"%.2f\">map (devices)</text>\n",
          x0 + half + 8 + half / 2, y0 + ph + 13);
  fprintf(f, "</g>\n");
  return 0;
}

/* The heat map of expert loads, one row per layer, starting at y. */
static void heat_map(FILE *f, const svg_job *j, const int32_t *rows, double y) {
  int32_t E = j->loads->num_experts, L = j->map->num_layers;
  double cw = (double)HEAT_WIDTH / E;
  fprintf(f, "<text class=\"title\" x=\"%d\" y=\"%.2f\">Expert load across layers (load / layer "
             "mean, log scale)</text>\n",
          MARGIN, y + 16);
  double y0 = y + 28;
  for (int32_t l = 0; l < L; l++) {
    const double *w = j->loads->load + (size_t)rows[l] * (size_t)E;
    double total = 0;
    for (int32_t e = 0; e < E; e++)
      total += w[e];
    double mean = total / E;
    fprintf(f, "<g><title>layer %lld</title>\n", (long long)j->map->layer_ids[l]);
    for (int32_t e = 0; e < E; e++) {
      int r, g, b;
      heat_colour(mean > 0 ? w[e] / mean : 1, &r, &g, &b);
      fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%d\" "
                 "fill=\"rgb(%d,%d,%d)\"><title>layer %lld expert %d: %.6g</title></rect>\n",
              HEAT_LEFT + e * cw, y0 + l * HEAT_ROW, cw + 0.05, HEAT_ROW, r, g, b,
              (long long)j->map->layer_ids[l], e, w[e]);
    }
    fprintf(f, "</g>\n");
  }
  fprintf(f, "<text class=\"ylab\" x=\"%d\" y=\"%.2f\">layer</text>\n", HEAT_LEFT - 6,
          y0 + 8);
  fprintf(f, "<text class=\"xlab\" x=\"%.2f\" y=\"%.2f\">expert 0 .. %d</text>\n",
          HEAT_LEFT + HEAT_WIDTH / 2.0, y0 + L * HEAT_ROW + 14, E - 1);
  /* Colour legend. */
  double ly = y0 + L * HEAT_ROW + 24;
  for (int i = 0; i <= 20; i++) {
    int r, g, b;
    heat_colour(exp(HEAT_LOG_RANGE * (i - 10) / 10.0), &r, &g, &b);
    fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"12\" height=\"10\" fill=\"rgb(%d,%d,%d)\"/>\n",
            HEAT_LEFT + 120 + 12 * i, ly, r, g, b);
  }
  fprintf(f, "<text class=\"leg\" x=\"%d\" y=\"%.2f\">%.2gx mean</text>\n", HEAT_LEFT, ly + 9,
          exp(-HEAT_LOG_RANGE));
  fprintf(f, "<text class=\"leg\" x=\"%d\" y=\"%.2f\">%.2gx mean</text>\n", HEAT_LEFT + 380,
          ly + 9, exp(HEAT_LOG_RANGE));
}

/* ---- the document ---- */

/* Writes the whole document; the fill callback of eplb__write_atomic. */
static int write_svg(FILE *f, void *user) {
  const svg_job *j = user;
  int32_t L = j->map->num_layers;
  int32_t *rows = eplb__calloc((size_t)L, sizeof *rows);
  if (!rows)
    return eplb__err(EPLB_ENOMEM, "svg: out of memory");
  for (int32_t l = 0; l < L; l++) {
    rows[l] = -1;
    for (int32_t r = 0; r < j->loads->num_layers && rows[l] < 0; r++)
      if (j->loads->layer_ids[r] == j->map->layer_ids[l])
        rows[l] = r;
    if (rows[l] < 0) {
      free(rows);
      return eplb__err(EPLB_EINVAL, "svg: layer %lld of the map has no loads",
                       (long long)j->map->layer_ids[l]);
    }
  }
  int32_t prow = (L + PANEL_COLS - 1) / PANEL_COLS;
  double heat_y = HEADER_HEIGHT + prow * (PANEL_HEIGHT + PANEL_GAP) + 10;
  double height = heat_y + 28 + L * HEAT_ROW + 50;
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
             "height=\"%.0f\" viewBox=\"0 0 %d %.0f\">\n",
          PAGE_WIDTH, height, PAGE_WIDTH, height);
  fprintf(f, "<title>eplb report: device loads per layer, initial placement and map</title>\n"
             "<style>\n"
             "text { font-family: sans-serif; font-size: 10px; fill: #222; }\n"
             ".title { font-size: 15px; font-weight: bold; }\n"
             ".ptitle { font-size: 11px; font-weight: bold; }\n"
             ".ylab { text-anchor: end; font-size: 9px; }\n"
             ".xlab { text-anchor: middle; font-size: 9px; fill: #555; }\n"
             ".leg { font-size: 11px; }\n"
             ".frame { fill: #fafafa; stroke: #ccc; }\n"
             ".before { fill: #9e9e9e; }\n"
             ".after { fill: #1f77b4; }\n"
             ".mean { stroke: #2ca02c; stroke-width: 1; stroke-dasharray: 4 2; }\n"
             ".lb { stroke: #d62728; stroke-width: 1; stroke-dasharray: 2 2; }\n"
             ".axis { stroke: #444; stroke-width: 1; }\n"
             "</style>\n"
             "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text class=\"title\" x=\"%d\" y=\"26\">Device load per layer: %s (grey) and the "
             "map (blue), %d devices, %d slots</text>\n",
          MARGIN, j->initial ? "old map" : "initial placement without redundancy",
          j->map->num_gpus, j->map->num_slots);
  fprintf(f, "<rect class=\"before\" x=\"%d\" y=\"42\" width=\"12\" height=\"10\"/>"
             "<text class=\"leg\" x=\"%d\" y=\"51\">initial</text>\n"
             "<rect class=\"after\" x=\"%d\" y=\"42\" width=\"12\" height=\"10\"/>"
             "<text class=\"leg\" x=\"%d\" y=\"51\">map</text>\n"
             "<line class=\"mean\" x1=\"%d\" y1=\"47\" x2=\"%d\" y2=\"47\"/>"
             "<text class=\"leg\" x=\"%d\" y=\"51\">mean device load</text>\n"
             "<line class=\"lb\" x1=\"%d\" y1=\"47\" x2=\"%d\" y2=\"47\"/>"
             "<text class=\"leg\" x=\"%d\" y=\"51\">lower bound LB</text>\n",
          MARGIN, MARGIN + 16, MARGIN + 80, MARGIN + 96, MARGIN + 140, MARGIN + 164, MARGIN + 168,
          MARGIN + 280, MARGIN + 304, MARGIN + 308);
  int rc = 0;
  for (int32_t l = 0; l < L && !rc; l++) {
    int32_t panel_row = l / PANEL_COLS; /* panels fill rows of PANEL_COLS */
    rc = panel(f, j, l, rows[l], MARGIN + (l % PANEL_COLS) * (PANEL_WIDTH + PANEL_GAP),
               HEADER_HEIGHT + (double)panel_row * (PANEL_HEIGHT + PANEL_GAP));
  }
  if (!rc) {
    heat_map(f, j, rows, heat_y);
    fprintf(f, "</svg>\n");
  }
  free(rows);
  return rc;
}

/* Checks the shapes and writes the picture atomically through write_svg. */
int eplb_report_svg(const eplb_loads *loads, const eplb_placement *map,
                    const eplb_placement *initial, const char *path) {
  if (!loads || !map || !path || !map->logcnt || !loads->load)
    return eplb__err(EPLB_EINVAL, "svg: no loads, map or path");
  if (initial && (initial->num_gpus != map->num_gpus || initial->num_layers != map->num_layers ||
                  !initial->logcnt))
    return eplb__err(EPLB_EINVAL, "svg: the initial placement has another shape than the map");
  svg_job j = {loads, map, initial, NULL, NULL};
  j.before = eplb__calloc((size_t)map->num_gpus, sizeof *j.before);
  j.after = eplb__calloc((size_t)map->num_gpus, sizeof *j.after);
  int rc = (!j.before || !j.after) ? eplb__err(EPLB_ENOMEM, "svg: out of memory")
                                   : eplb__write_atomic(path, write_svg, &j);
  free(j.before);
  free(j.after);
  return rc;
}
