/* cmd_migrate.c - `eplb migrate`: move synthetic expert weights from one layout to another under
 * mpirun, verify every byte, report the speed (step 3); or, with --dry-run, print the transfer
 * plan's statistics as JSON without MPI. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eplb_mpi.h"

#define CMD "migrate"
/* Most tensors one migration moves together. */
#define MAX_TENSORS 16
/* Seeds of the synthetic pattern's hash (splitmix64 constants). */
#define MIX_GOLDEN 0x9e3779b97f4a7c15ULL
#define MIX_A 0xbf58476d1ce4e5b9ULL
#define MIX_B 0x94d049bb133111ebULL
#define WORD 8 /* the pattern is generated 8 bytes at a time */

static void migrate_usage(FILE *f) {
  fprintf(f,
          "usage: mpirun -np G eplb migrate --from initial|MAP --to MAP --expert_bytes B[,B...]\n"
          "                                 [--tensors T] [--in_place] [--verify] [options]\n"
          "       eplb migrate --dry-run --from initial|MAP --to MAP [--expert_bytes B[,B...]]\n"
          "\n"
          "Moves expert weights between the ranks so that each rank's slots hold the experts MAP\n"
          "puts there. Every rank fills synthetic weights whose bytes encode (layer, expert,\n"
          "tensor, offset), runs the transfer plan (only what must move, senders spread), and\n"
          "rank 0 prints copies moved, bytes, seconds, GB/s and staging bytes.\n"
          "\n"
          "  --from initial|MAP     the layout now: 'initial' is the training layout (device d\n"
          "                         holds experts d*k .. d*k+k-1, k = ceil(E/G)), else a map file\n"
          "  --to MAP               the layout wanted (expert_map.json, e.g. from eplb plan)\n"
          "  --expert_bytes B       bytes of one expert in one tensor; a comma list gives one\n"
          "                         size per tensor (e.g. 4096,2048,64 for w13, w2, scales)\n"
          "  --tensors T            tensors moved together (default 1, or the list's length);\n"
          "                         with one size given, T tensors of that size\n"
          "  --in_place             one set of buffers, staged (needs equal slot counts);\n"
          "                         default: separate destination buffers\n"
          "  --verify               check every byte of every slot afterwards; exit 1 if wrong\n"
          "  --gpus_per_node N      node size for choosing senders (default: all on one node)\n"
          "  --relabel              renumber MAP's devices (nodes kept whole) per layer so that\n"
          "                         the fewest copies move; each layer's balance is unchanged\n"
          "  --no_align             keep MAP's slot order (default: experts that stay on a rank\n"
          "                         keep their slot; routing follows the table either way)\n"
          "  --write_map OUT        save the layout the ranks hold afterwards (MAP with its\n"
          "                         slots aligned or its devices relabelled): the routing\n"
          "                         table to load; written atomically after a good move\n"
          "  --num_experts E        number of logical experts (default: largest id + 1)\n"
          "  --dry-run              no MPI: print the plan's statistics as JSON on stdout\n"
          "  --corrupt              testing: flip one byte on rank 0 after the move, to show\n"
          "                         that --verify catches it\n"
          "  -h, --help             this help\n"
          "\n"
          "A progress line is shown on a terminal. Exit status 0 on success, 1 on a failure\n"
          "(bad map, MPI error, a wrong byte), 2 on a bad command line.\n");
}

/* ---- command line ---- */

enum { OPT_FROM = 256, OPT_TO, OPT_BYTES, OPT_TENSORS, OPT_IN_PLACE, OPT_VERIFY, OPT_NODE,
       OPT_NO_ALIGN, OPT_EXPERTS, OPT_DRY, OPT_CORRUPT, OPT_RELABEL, OPT_WRITE_MAP };

static const struct option migrate_options[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"to", required_argument, NULL, OPT_TO},
    {"expert_bytes", required_argument, NULL, OPT_BYTES},
    {"expert-bytes", required_argument, NULL, OPT_BYTES},
    {"tensors", required_argument, NULL, OPT_TENSORS},
    {"in_place", no_argument, NULL, OPT_IN_PLACE},
    {"in-place", no_argument, NULL, OPT_IN_PLACE},
    {"verify", no_argument, NULL, OPT_VERIFY},
    {"gpus_per_node", required_argument, NULL, OPT_NODE},
    {"gpus-per-node", required_argument, NULL, OPT_NODE},
    {"no_align", no_argument, NULL, OPT_NO_ALIGN},
    {"no-align", no_argument, NULL, OPT_NO_ALIGN},
    {"num_experts", required_argument, NULL, OPT_EXPERTS},
    {"num-experts", required_argument, NULL, OPT_EXPERTS},
    {"dry-run", no_argument, NULL, OPT_DRY},
    {"dry_run", no_argument, NULL, OPT_DRY},
    {"corrupt", no_argument, NULL, OPT_CORRUPT},
    {"relabel", no_argument, NULL, OPT_RELABEL},
    {"write_map", required_argument, NULL, OPT_WRITE_MAP},
    {"write-map", required_argument, NULL, OPT_WRITE_MAP},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* What the command line asked for. */
typedef struct migrate_args {
  const char *from; /* "initial" or a map file */
  const char *to;
  const char *write_map; /* --write_map: where to save the layout the ranks hold afterwards */
  size_t bytes[MAX_TENSORS];
  size_t n_tensors;
  int64_t tensors_flag; /* --tensors, 0 when not given */
  int in_place, verify, dry_run, corrupt;
  int64_t num_experts;
  eplb_transfer_opts opts;
} migrate_args;

/* Parses --expert_bytes "B[,B...]" into a->bytes. @return 0 or CLI_EXIT_USAGE. */
static int parse_bytes(const char *s, migrate_args *a) {
  a->n_tensors = 0;
  char buf[32];
  while (*s) {
    const char *comma = strchr(s, ',');
    size_t n = comma ? (size_t)(comma - s) : strlen(s);
    if (n == 0 || n >= sizeof buf)
      return cli_usage_error(CMD, "--expert_bytes: '%s' is not a list of sizes", s);
    if (a->n_tensors == MAX_TENSORS)
      return cli_usage_error(CMD, "--expert_bytes: more than %d tensors", MAX_TENSORS);
    memcpy(buf, s, n);
    buf[n] = '\0';
    int64_t v;
    int rc = cli_parse_i64(CMD, "expert_bytes", buf, 1, INT32_MAX, &v);
    if (rc)
      return rc;
    a->bytes[a->n_tensors++] = (size_t)v;
    s += n + (comma != NULL);
    if (comma && !*s)
      return cli_usage_error(CMD, "--expert_bytes: trailing comma");
  }
  return 0;
}

/* Parses argv into `a`. @return 0, CLI_EXIT_USAGE, or -1 after --help. */
static int migrate_parse(int argc, char **argv, migrate_args *a) {
  memset(a, 0, sizeof *a);
  eplb_transfer_opts_init(&a->opts);
  int64_t v;
  int c, rc = 0;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", migrate_options, NULL)) != -1) {
    switch (c) {
    case OPT_FROM: a->from = optarg; break;
    case OPT_TO: a->to = optarg; break;
    case OPT_BYTES: rc = parse_bytes(optarg, a); break;
    case OPT_TENSORS:
      rc = cli_parse_i64(CMD, "tensors", optarg, 1, MAX_TENSORS, &a->tensors_flag);
      break;
    case OPT_IN_PLACE: a->in_place = 1; break;
    case OPT_VERIFY: a->verify = 1; break;
    case OPT_NO_ALIGN: a->opts.align = 0; break;
    case OPT_DRY: a->dry_run = 1; break;
    case OPT_CORRUPT: a->corrupt = 1; break;
    case OPT_RELABEL: a->opts.relabel = 1; break;
    case OPT_WRITE_MAP: a->write_map = optarg; break;
    case OPT_EXPERTS:
      rc = cli_parse_i64(CMD, "num_experts", optarg, 1, INT32_MAX, &a->num_experts);
      break;
    case OPT_NODE:
      if (!(rc = cli_parse_i64(CMD, "gpus_per_node", optarg, 1, INT32_MAX, &v)))
        a->opts.gpus_per_node = (int32_t)v;
      break;
    case 'h':
      migrate_usage(stdout);
      return -1;
    default:
      return cli_getopt_error(CMD, c, argv);
    }
    if (rc)
      return rc;
  }
  if (optind < argc)
    return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
  if (!a->from || !a->to)
    return cli_usage_error(CMD, "--from and --to are required");
  if (!a->dry_run && !a->n_tensors)
    return cli_usage_error(CMD, "--expert_bytes is required");
  if (a->tensors_flag) {
    if (a->n_tensors > 1 && (size_t)a->tensors_flag != a->n_tensors)
      return cli_usage_error(CMD, "--tensors %lld but --expert_bytes lists %zu sizes",
                             (long long)a->tensors_flag, a->n_tensors);
    for (size_t t = 1; t < (size_t)a->tensors_flag; t++)
      a->bytes[t] = a->bytes[0];
    if (a->n_tensors)
      a->n_tensors = (size_t)a->tensors_flag;
  }
  return 0;
}

/* ---- layouts and plan (the same on every rank) ---- */

/* Reads or builds the two layouts and plans the transfer. @return 0 or a library error. */
static int load_plan(const migrate_args *a, eplb_transfer **plan, eplb_placement **from_out) {
  eplb_placement *from = NULL, *to = NULL;
  *plan = NULL;
  int rc = eplb_placement_read(a->to, a->num_experts, &to);
  if (!rc && strcmp(a->from, "initial") != 0) {
    rc = eplb_placement_read(a->from, a->num_experts ? a->num_experts : to->num_experts, &from);
    if (rc == EPLB_EFORMAT && !a->num_experts) { /* `from` names a larger expert id */
      eplb_placement *probe = NULL;
      if (!eplb_placement_read(a->from, 0, &probe) && probe->num_experts > to->num_experts) {
        int32_t E = probe->num_experts;
        eplb_placement_free(to);
        to = NULL;
        rc = eplb_placement_read(a->to, E, &to);
        if (!rc)
          rc = eplb_placement_read(a->from, E, &from);
      }
      eplb_placement_free(probe);
    }
  } else if (!rc) {
    int32_t G = to->num_gpus, k = (to->num_experts + G - 1) / G;
    rc = eplb_placement_initial(to->num_layers, to->num_experts, G, k, &from);
    if (!rc)
      memcpy(from->layer_ids, to->layer_ids, (size_t)to->num_layers * sizeof *to->layer_ids);
  }
  if (!rc)
    rc = eplb_transfer_plan_ex(from, to, &a->opts, plan);
  eplb_placement_free(to);
  if (rc || !from_out)
    eplb_placement_free(from);
  else
    *from_out = from;
  return rc;
}

/* Sum of the tensors' expert sizes: the bytes of one expert copy. */
static int64_t copy_bytes(const migrate_args *a) {
  int64_t n = 0;
  for (size_t t = 0; t < a->n_tensors; t++)
    n += (int64_t)a->bytes[t];
  return n;
}

/* Prints the plan's statistics as one JSON object on stdout. */
static int print_stats(const eplb_transfer *plan, const migrate_args *a) {
  const eplb_transfer_stats *s = &plan->stats;
  json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                        "s:I, s:i}",
                        "layers", plan->num_layers, "gpus", plan->num_gpus, "experts",
                        plan->to->num_experts, "from_slots", plan->from_slots, "to_slots",
                        plan->to_slots, "slots", (json_int_t)s->slots, "keeps",
                        (json_int_t)s->keeps, "local_copies", (json_int_t)s->local_copies,
                        "receives", (json_int_t)s->receives, "upstream_copies",
                        (json_int_t)s->upstream_copies, "upstream_remote",
                        (json_int_t)s->upstream_remote, "max_sent", (json_int_t)s->max_sent,
                        "max_received", (json_int_t)s->max_received, "upstream_max_sent",
                        (json_int_t)s->upstream_max_sent, "max_layer_sent",
                        (json_int_t)s->max_layer_sent, "staging_slots", s->staging_slots);
  if (!o)
    return -1;
  if (a->n_tensors) {
    int64_t cb = copy_bytes(a);
    json_object_set_new(o, "copy_bytes", json_integer(cb));
    json_object_set_new(o, "bytes", json_integer(eplb_transfer_plan_bytes(plan, cb)));
    json_object_set_new(o, "upstream_bytes", json_integer(s->upstream_copies * cb));
    json_object_set_new(o, "staging_bytes", json_integer((json_int_t)s->staging_slots * cb));
  }
  int rc = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(o);
  return rc;
}

/* ---- synthetic weights ---- */

/* A splitmix64 step: a well mixed 64-bit word from x. */
static uint64_t mix(uint64_t x) {
  x += MIX_GOLDEN;
  x = (x ^ (x >> 30)) * MIX_A;
  x = (x ^ (x >> 27)) * MIX_B;
  return x ^ (x >> 31);
}

/* Writes expert e's synthetic bytes of tensor t in layer l (word w of the copy is
 * mix(l, e, t, w), least significant byte first), or with check != 0 counts the bytes of `p`
 * that differ from them. */
static int64_t pattern(unsigned char *p, size_t bytes, int32_t l, int32_t e, size_t t, int check) {
  uint64_t key = ((uint64_t)l << 48) ^ ((uint64_t)e << 28) ^ ((uint64_t)t << 20);
  int64_t bad = 0;
  for (size_t off = 0; off < bytes; off += WORD) {
    uint64_t w = mix(key ^ (off / WORD));
    size_t n = bytes - off < WORD ? bytes - off : WORD;
    for (size_t i = 0; i < n; i++) {
      unsigned char b = (unsigned char)(w >> (8 * i));
      if (!check)
        p[off + i] = b;
      else
        bad += p[off + i] != b;
    }
  }
  return bad;
}

/* ---- the migration (under mpirun) ---- */

/* This rank's buffers: per tensor, per layer, the old and (out of place) the new slots. */
typedef struct buffers {
  void **src[MAX_TENSORS];
  void **dst[MAX_TENSORS];
  eplb_tensor t[MAX_TENSORS];
} buffers;

/* Allocates and fills this rank's old slots. @return 0 or EPLB_ENOMEM. */
static int buffers_init(buffers *b, const migrate_args *a, const eplb_placement *from,
                        const eplb_transfer *plan, int rank) {
  memset(b, 0, sizeof *b);
  int32_t L = plan->num_layers, G = plan->num_gpus;
  int32_t Sf = plan->from_slots / G, St = plan->to_slots / G;
  for (size_t t = 0; t < a->n_tensors; t++) {
    b->src[t] = calloc((size_t)L, sizeof(void *));
    b->dst[t] = calloc((size_t)L, sizeof(void *));
    if (!b->src[t] || !b->dst[t])
      return EPLB_ENOMEM;
    for (int32_t l = 0; l < L; l++) {
      b->src[t][l] = malloc((size_t)Sf * a->bytes[t]);
      b->dst[t][l] = a->in_place ? NULL : malloc((size_t)St * a->bytes[t]);
      if (!b->src[t][l] || (!a->in_place && !b->dst[t][l]))
        return EPLB_ENOMEM;
      for (int32_t i = 0; i < Sf; i++)
        pattern((unsigned char *)b->src[t][l] + (size_t)i * a->bytes[t], a->bytes[t], l,
                from->phy2log[(size_t)l * plan->from_slots + (size_t)rank * Sf + i], t, 0);
    }
    b->t[t].src = b->src[t];
    b->t[t].dst = a->in_place ? NULL : b->dst[t];
    b->t[t].expert_bytes = b->t[t].src_stride = b->t[t].dst_stride = a->bytes[t];
  }
  return 0;
}

/* Releases this rank's buffers. */
static void buffers_free(buffers *b, const migrate_args *a, int32_t L) {
  for (size_t t = 0; t < a->n_tensors; t++) {
    for (int32_t l = 0; l < L; l++) {
      if (b->src[t])
        free(b->src[t][l]);
      if (b->dst[t])
        free(b->dst[t][l]);
    }
    free(b->src[t]);
    free(b->dst[t]);
  }
}

/* Counts the bytes of this rank's new slots that do not hold the expert plan->to puts there. */
static int64_t verify(const buffers *b, const migrate_args *a, const eplb_transfer *plan,
                      int rank) {
  int32_t St = plan->to_slots / plan->num_gpus;
  int64_t bad = 0;
  for (size_t t = 0; t < a->n_tensors; t++)
    for (int32_t l = 0; l < plan->num_layers; l++) {
      unsigned char *base = a->in_place ? b->src[t][l] : b->dst[t][l];
      for (int32_t i = 0; i < St; i++)
        bad += pattern(base + (size_t)i * a->bytes[t], a->bytes[t], l,
                       plan->to->phy2log[(size_t)l * plan->to_slots + (size_t)rank * St + i], t,
                       1);
    }
  return bad;
}

/* What the progress callback needs. */
typedef struct progress_state {
  int show; /* rank 0 on a terminal */
  eplb_migrate_info last;
} progress_state;

/* Progress callback: remembers the report, draws "layer i/L" on rank 0's terminal. */
static void on_layer(const eplb_migrate_info *info, void *user) {
  progress_state *ps = user;
  ps->last = *info;
  if (ps->show) {
    fprintf(stderr, "\replb migrate: layer %d/%d", info->layers_done, info->num_layers);
    if (info->layers_done == info->num_layers)
      fputc('\n', stderr);
    fflush(stderr);
  }
}

/* Runs the migration on every rank; rank 0 prints the result. @return the exit status. */
/* Writes the layout the ranks hold after the move (the map aligned or relabelled: the table
 * routing must follow) to --write_map, atomically. @return 0, or prints the error and returns 1. */
static int write_map(const eplb_transfer *plan, const migrate_args *a) {
  int rc = eplb_placement_write(plan->to, a->write_map, EPLB_MAP_EXPERT_MAP);
  return rc ? cli_fail(CMD, rc) : 0;
}

static int run_mpi(const migrate_args *a) {
  int rank = 0, size = 0;
  MPI_Init(NULL, NULL);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  eplb_transfer *plan = NULL;
  eplb_placement *from = NULL;
  buffers b;
  memset(&b, 0, sizeof b);
  char why[256] = ""; /* a failure the library does not describe */
  int rc = load_plan(a, &plan, &from), all = 0, status = CLI_EXIT_FAIL;
  if (!rc && plan->num_gpus != size)
    rc = EPLB_EINVAL, snprintf(why, sizeof why, "%s has %d devices but mpirun started %d ranks",
                               a->to, plan->num_gpus, size);
  if (!rc && a->in_place && plan->from_slots != plan->to_slots)
    rc = EPLB_EINVAL, snprintf(why, sizeof why, "--in_place needs the same slot count in both "
                               "layouts (%d and %d)", plan->from_slots, plan->to_slots);
  if (!rc && buffers_init(&b, a, from, plan, rank))
    rc = EPLB_ENOMEM, snprintf(why, sizeof why, "rank %d: cannot allocate the weights", rank);
  int rc0 = rc, mine = rc; /* the collectives get copies: rc stays this rank's own */
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Bcast(&rc0, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (all || rc) { /* all is set whenever rc is; rc says so to readers (and the analyzer) */
    /* Every rank reads the same maps, so rank 0's message speaks for all; when rank 0 is fine
     * the ranks that failed (out of memory) print their own. */
    if (rc && (rank == 0 || rc0 == 0))
      why[0] ? (void)fprintf(stderr, "eplb %s: %s\n", CMD, why) : (void)cli_fail(CMD, rc);
    goto done;
  }
  progress_state ps = {.show = rank == 0 && isatty(STDERR_FILENO)};
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  rc = eplb_mpi_migrate(MPI_COMM_WORLD, plan, rank, b.t, a->n_tensors, on_layer, &ps);
  double secs = MPI_Wtime() - t0, max_secs = 0;
  MPI_Allreduce(&secs, &max_secs, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (rc) {
    if (rank == 0)
      cli_fail(CMD, rc);
    goto done;
  }
  if (a->corrupt && rank == 0 && plan->to_slots > 0) {
    unsigned char *p = a->in_place ? b.src[0][0] : b.dst[0][0];
    p[a->bytes[0] / 2] ^= 1;
  }
  long long bad = a->verify ? (long long)verify(&b, a, plan, rank) : 0, bad_all = 0;
  unsigned long long stage = ps.last.staging_bytes, stage_max = 0;
  MPI_Allreduce(&bad, &bad_all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&stage, &stage_max, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
  int64_t bytes = eplb_transfer_plan_bytes(plan, copy_bytes(a));
  if (rank == 0) {
    printf("eplb migrate: %d ranks, %d layers, %s: copies moved %lld (upstream way: %lld "
           "fetches, %lld remote), bytes %lld, seconds %.6f, GB/s %.3f, staging bytes %llu "
           "(largest rank)%s\n",
           size, plan->num_layers, a->in_place ? "in place" : "out of place",
           (long long)plan->stats.receives, (long long)plan->stats.upstream_copies,
           (long long)plan->stats.upstream_remote,
           (long long)bytes, max_secs, max_secs > 0 ? (double)bytes / max_secs / 1e9 : 0.0,
           stage_max, a->verify ? (bad_all ? "" : ", every byte verified") : "");
    if (bad_all)
      fprintf(stderr, "eplb migrate: verification failed: %lld bytes differ from the map\n",
              bad_all);
    fflush(stdout);
  }
  status = bad_all ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  if (!bad_all && rank == 0 && a->write_map && write_map(plan, a) != 0)
    status = CLI_EXIT_FAIL;
  MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
done:
  buffers_free(&b, a, plan ? plan->num_layers : 0);
  eplb_transfer_free(plan);
  eplb_placement_free(from);
  MPI_Finalize();
  return status;
}

/* `eplb migrate`: the dry run here, the MPI run in run_mpi(). */
int cmd_migrate(int argc, char **argv) {
  migrate_args a;
  int rc = migrate_parse(argc, argv, &a);
  if (rc)
    return rc < 0 ? CLI_EXIT_OK : rc;
  if (!a.dry_run)
    return run_mpi(&a);
  eplb_transfer *plan = NULL;
  rc = load_plan(&a, &plan, NULL);
  if (rc)
    return cli_fail(CMD, rc);
  if (a.in_place && plan->from_slots != plan->to_slots) {
    rc = cli_usage_error(CMD, "--in_place needs the same slot count in both layouts (%d and %d)",
                         plan->from_slots, plan->to_slots);
    eplb_transfer_free(plan);
    return rc;
  }
  rc = print_stats(plan, &a);
  if (!rc && a.write_map)
    rc = write_map(plan, &a);
  eplb_transfer_free(plan);
  return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
