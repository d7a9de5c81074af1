/* eplb.h - expert-parallel load balancing for Mixture-of-Experts models.
 *
 * This header is the manual of the core library (libeplb). It covers:
 *   - errors          negative codes, eplb_strerror(), a per-thread detail message;
 *   - loads           the load matrix (per layer, per logical expert token counts) and its loaders;
 *   - placements      which logical expert every physical slot holds, and their JSON files;
 *   - planning        eplb_plan(): DeepSeek's EPLB, with or without duplicates on a device.
 * The three steps of the job have their own headers, included at the end:
 *   eplb/collect.h (step 1, counting), eplb/move.h (step 3, moving weights), eplb/quality.h
 * (plan quality and reports), eplb/rebalance.h (online re-balancing of a serving job). MPI
 * lives in a separate library, libeplb_mpi (eplb_mpi.h).
 *
 * Conventions
 *   - Every function that can fail returns 0 (EPLB_OK) or a negative enum eplb_err value, and on
 *     failure leaves a one-line detail in eplb_last_error() naming the file and field at fault.
 *   - Objects returned through an `**out` argument are owned by the caller and released with the
 *     matching _free() function; every _free(NULL) is a no-op. On failure *out is set to NULL.
 *   - The library never prints, never exits and never aborts on bad input.
 *   - Thread safety: distinct objects may be used from distinct threads freely; the detail
 *     message is per thread.
 */
#ifndef EPLB_H
#define EPLB_H

#include <stddef.h>
#include <stdint.h>

#include "eplb/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) || !defined(__GNUC__)
#define EPLB_API
#else
#define EPLB_API __attribute__((visibility("default")))
#endif

/* ---- version ---- */

/* The library's version as MAJOR*10000 + MINOR*100 + PATCH (to compare with the header's). */
EPLB_API unsigned eplb_version(void);
/* The library's version as "MAJOR.MINOR.PATCH". */
EPLB_API const char *eplb_version_string(void);

/* ---- errors ---- */

/* X-macro table of error codes: XX(name, value, message). */
#define EPLB_ERRNO_MAP(XX)                                                       \
  XX(OK, 0, "success")                                                           \
  XX(EINVAL, -1, "invalid argument")                                             \
  XX(ENOMEM, -2, "out of memory")                                                \
  XX(EIO, -3, "input/output error")                                              \
  XX(EFORMAT, -4, "malformed input")                                             \
  XX(ERANGE, -5, "value out of range")                                           \
  XX(EPARAM, -6, "invalid planning parameters")                                  \
  XX(EINVALID, -7, "placement violates an invariant")                            \
  XX(ECOMM, -8, "communication error")                                           \
  XX(EVERIFY, -9, "verification failed")                                         \
  XX(ENOTSUP, -10, "not supported")

enum eplb_err {
#define EPLB__ERR_ENUM(name, val, msg) EPLB_##name = (val),
  EPLB_ERRNO_MAP(EPLB__ERR_ENUM)
#undef EPLB__ERR_ENUM
};

/* A fixed, human message for an error code ("malformed input"); "unknown error" for others. */
EPLB_API const char *eplb_strerror(int err);
/* The code's name ("EPLB_EFORMAT"); "EPLB_UNKNOWN" for others. */
EPLB_API const char *eplb_err_name(int err);
/* The detail of the last failure in this thread, one line without a trailing newline, e.g.
 * `loads.json: layer "3": expert "x": key is not a non-negative integer`. Valid until the next
 * failing call in this thread; "" when nothing failed yet. */
EPLB_API const char *eplb_last_error(void);

/* ---- loads ---- */

/* A load matrix: for each MoE layer, how many tokens each logical expert received.
 * Rows are layers in ascending order of their id (the input's key); columns are experts 0..E-1. */
typedef struct eplb_loads {
  int32_t num_layers;  /* L, >= 1 */
  int32_t num_experts; /* E, >= 1 */
  int64_t *layer_ids;  /* [L], strictly ascending, >= 0 */
  double *load;        /* [L*E] row-major, finite and >= 0 */
  int64_t *count;      /* [L*E] exact integer counts; NULL when some input value was fractional */
} eplb_loads;

/* Allocates an all-zero L x E load matrix with layer ids 0..L-1 and an exact `count` array.
 * @return 0, EPLB_EINVAL (L or E < 1), EPLB_ENOMEM. */
EPLB_API int eplb_loads_create(int32_t num_layers, int32_t num_experts, eplb_loads **out);
/* Releases a load matrix. NULL is a no-op. */
EPLB_API void eplb_loads_free(eplb_loads *loads);

/* Parses one JSON document of counts. Two formats are recognised:
 *   - the seed format {"<layer>": {"<expert>": count}} (token_collects_all.json);
 *   - SGLang's expert distribution dump {"logical_count": [[...], ...]}, rows are layers 0..L-1.
 * Keys must be non-negative decimal integers without sign or leading zeros; they may be sparse
 * and unordered. Counts are integers in [0, 2^63-1] or finite non-negative reals. A missing
 * expert counts 0. `name` is used in messages only (a file name). num_experts > 0 fixes E (an
 * expert id >= E is then an error); 0 sets E to the largest id + 1 over all layers.
 * @return 0, EPLB_EFORMAT (bad JSON, with line/column, bad key, duplicate key, bad value,
 *         empty document), EPLB_ERANGE (id too large), EPLB_ENOMEM. */
EPLB_API int eplb_loads_parse(const char *text, size_t len, const char *name, int64_t num_experts,
                              eplb_loads **out);
/* Reads and parses one file (see eplb_loads_parse). @return as parse, or EPLB_EIO. */
EPLB_API int eplb_loads_read_file(const char *path, int64_t num_experts, eplb_loads **out);
/* Reads n files and sums them element-wise (layers are the union of all files' layers; E is the
 * largest over all files unless num_experts > 0). Integer sums are exact; a sum over 2^63-1 is
 * EPLB_ERANGE. Used for a folder of per-rank files and for `eplb merge`.
 * @return as eplb_loads_read_file, or EPLB_EINVAL when n == 0. */
EPLB_API int eplb_loads_read_files(const char *const *paths, size_t n, int64_t num_experts,
                                   eplb_loads **out);
/* Reads every regular file named *.json in `dir` (sorted by name) and sums them as
 * eplb_loads_read_files does, like the upstream --json_folder.
 * @return as eplb_loads_read_files; EPLB_EIO when dir cannot be read or holds no .json file. */
EPLB_API int eplb_loads_read_folder(const char *dir, int64_t num_experts, eplb_loads **out);
/* Writes loads in the seed format atomically (temp file in the same folder, fsync, rename, fsync
 * of the folder): exact integers when loads->count is set, reals otherwise. On failure the file
 * at `path` is left as it was, except when only the last step, the folder's fsync, fails: then
 * the new file is in place and the EPLB_EIO detail says so. A crash never leaves a partial file
 * (at most a `path`.tmp.* file beside it). @return 0, EPLB_EINVAL, EPLB_EIO, EPLB_ENOMEM. */
EPLB_API int eplb_loads_write(const eplb_loads *loads, const char *path);

/* ---- placements ---- */

/* Where every replica of every logical expert lives, for each layer. Physical slot p (0..R-1)
 * belongs to device p / (R/G); a device's slots are consecutive. */
typedef struct eplb_placement {
  int32_t num_layers;   /* L */
  int32_t num_experts;  /* E, logical experts */
  int32_t num_slots;    /* R, physical slots (replicas) per layer, a multiple of num_gpus */
  int32_t num_gpus;     /* G, devices */
  int32_t max_replicas; /* X, width of a log2phy row: max over layers and experts of logcnt */
  int64_t *layer_ids;   /* [L], the loads' layer ids */
  int32_t *phy2log;     /* [L*R] logical expert held by each physical slot */
  int32_t *logcnt;      /* [L*E] number of replicas of each logical expert */
  int32_t *log2phy;     /* [L*E*X] slots of each expert's replicas, -1 padded */
} eplb_placement;

/* Allocates a placement of the given shape with phy2log all 0, layer ids 0..L-1 and no index
 * (max_replicas 0, logcnt zeroed, log2phy NULL); fill phy2log then call
 * eplb_placement_build_index(). @return 0, EPLB_EINVAL (a size < 1, R % G != 0), EPLB_ENOMEM. */
EPLB_API int eplb_placement_create(int32_t num_layers, int32_t num_experts, int32_t num_slots,
                                   int32_t num_gpus, eplb_placement **out);
/* Releases a placement. NULL is a no-op. */
EPLB_API void eplb_placement_free(eplb_placement *p);
/* Deep copy. @return 0 or EPLB_ENOMEM. */
EPLB_API int eplb_placement_clone(const eplb_placement *p, eplb_placement **out);
/* Recomputes logcnt, max_replicas and log2phy from phy2log, each expert's slots in ascending
 * order. @return 0, EPLB_EINVALID (an expert id outside 0..E-1), EPLB_ENOMEM. */
EPLB_API int eplb_placement_build_index(eplb_placement *p);
/* Checks every invariant of a placement, layer by layer:
 *   every logical expert has >= 1 replica; every device holds exactly R/G slots (by shape);
 *   no device holds two replicas of one expert unless allow_duplicates; logcnt equals the counts
 *   in phy2log; log2phy lists exactly the slots of each expert, -1 padded, and max_replicas is
 *   the largest logcnt. @return 0 or EPLB_EINVALID with the first violation in the detail. */
EPLB_API int eplb_placement_validate(const eplb_placement *p, int allow_duplicates);
/* Number of (layer, device, expert) triples that hold more than one replica, counted once per
 * extra copy (0 for a duplicate-free placement). */
EPLB_API int64_t eplb_placement_duplicates(const eplb_placement *p);

/* Output formats of eplb_placement_write(). */
typedef enum eplb_map_format {
  EPLB_MAP_EXPERT_MAP = 0, /* the seed's expert_map.json */
  EPLB_MAP_FULL = 1        /* expert_map.json plus phy2log, logcnt, log2phy in each layer */
} eplb_map_format;

/* Writes `p` as expert_map.json:
 *   {"moe_layer_count": L, "layer_list": [{"layer_id": id, "device_count": G,
 *     "device_list": [{"device_id": d, "device_expert": [experts of d's slots, in slot order]}]}]}
 * atomically, as eplb_loads_write does (on failure the file at `path` is left as it was, unless
 * only the folder's fsync failed). The placement is validated first (duplicates allowed).
 * @return 0, EPLB_EINVAL, EPLB_EINVALID, EPLB_EIO, EPLB_ENOMEM. */
EPLB_API int eplb_placement_write(const eplb_placement *p, const char *path, eplb_map_format fmt);
/* Reads an expert_map.json (either format; extra keys are ignored) and validates it with
 * duplicates allowed (maps from other tools may hold them). Every device must list the same
 * number of experts; device ids must be 0..G-1 in order; layers in ascending id order. E is the
 * largest expert id + 1, or num_experts when > 0 (then a larger id is an error).
 * @return 0, EPLB_EIO, EPLB_EFORMAT (names file and field), EPLB_EINVALID, EPLB_ENOMEM. */
EPLB_API int eplb_placement_read(const char *path, int64_t num_experts, eplb_placement **out);

/* ---- planning ---- */

typedef enum eplb_policy {
  EPLB_POLICY_DEEPSEEK = 0, /* DeepSeek's rebalance_experts (hierarchical or global) */
  EPLB_POLICY_BALANCED = 1  /* eplb's own: near the lower bound, see eplb/quality.h */
} eplb_policy;

/* Locality of the balanced policy (ignored by deepseek, which always uses its own rule). */
typedef enum eplb_hierarchy {
  EPLB_HIER_AUTO = 0,   /* strict when num_nodes > 1 and num_groups % num_nodes == 0, else none */
  EPLB_HIER_STRICT = 1, /* all replicas of an expert on the node of its group */
  EPLB_HIER_SOFT = 2,   /* first replica on its group's node, extra replicas anywhere */
  EPLB_HIER_NONE = 3    /* groups and nodes ignored */
} eplb_hierarchy;

/* Parameters of eplb_plan(). Call eplb_params_init() first, then set what you need. */
typedef struct eplb_params {
  int32_t num_replicas;   /* R: physical slots per layer, a multiple of num_gpus, >= E */
  int32_t num_groups;     /* K: expert groups (E % K == 0 for the hierarchical policy) */
  int32_t num_nodes;      /* N: nodes; num_gpus % num_nodes == 0 */
  int32_t num_gpus;       /* G: devices */
  eplb_policy policy;     /* default EPLB_POLICY_BALANCED */
  int allow_duplicates;   /* deepseek only (EPLB_EPARAM with balanced): 1 reproduces the
                             reference exactly, duplicates and all; 0 (default) never puts two
                             replicas of one expert on a device */
  eplb_hierarchy hierarchy; /* balanced only, default EPLB_HIER_AUTO */
  double time_budget_ms;  /* balanced only: wall-clock cap on the local search per plan,
                             shared out over the layers (each may use its even share of what
                             the earlier ones left); 0 (default) = none: the plan depends on
                             the input only */
} eplb_params;

/* Fills `params` with the defaults (sizes 0: they must be set). */
EPLB_API void eplb_params_init(eplb_params *params);

/* Which variant of DeepSeek's algorithm a parameter set selects. */
typedef enum eplb_mode {
  EPLB_MODE_HIERARCHICAL = 0, /* num_groups % num_nodes == 0 */
  EPLB_MODE_GLOBAL = 1        /* otherwise: one group, one node */
} eplb_mode;
/* The mode the deepseek policy uses for these parameters. */
EPLB_API eplb_mode eplb_params_mode(const eplb_params *params);
/* The locality the balanced policy uses for these parameters: their hierarchy, with
 * EPLB_HIER_AUTO resolved (strict when num_nodes > 1 and num_groups % num_nodes == 0, else
 * none). */
EPLB_API eplb_hierarchy eplb_params_hierarchy(const eplb_params *params);

/* Plans a placement of `loads` on the devices described by `params`.
 *
 * Policy deepseek (see ../shared/DEEPSEEK_EPLB.md for the exact computation):
 *   hierarchical when K % N == 0: groups are packed onto nodes, experts replicated within each
 *   node, replicas packed onto the node's devices; else global (K = N = 1). Arithmetic is float32
 *   as in the reference. Ties between equal sort keys are broken stably: the lower index first.
 *   With allow_duplicates the output equals the reference's. Without (the default) an expert gets
 *   at most as many replicas as its node has devices, and each replica goes to the lightest
 *   device with room that does not hold the expert yet (with a repair swap when greedy is stuck);
 *   a layer where the reference places no duplicate is planned exactly as the reference does.
 * Policy balanced (the default; see eplb/quality.h): replica counts and placement chosen
 *   together to minimise the busiest device's load, never two replicas of an expert on a device;
 *   with the default hierarchy (strict when N > 1 and K % N == 0) every replica stays on its
 *   group's node as in deepseek's hierarchical mode, and no layer is worse than deepseek's.
 * The result is validated (eplb_placement_validate) before it is returned.
 * @return 0, EPLB_EPARAM (the detail says which rule: R % G, G % N, E % K, R < E, a size < 1,
 *         allow_duplicates with balanced,
 *         more slots per node than distinct (device, expert) pairs allow without duplicates),
 *         EPLB_EINVAL (NULL argument, non-finite or negative load), EPLB_ENOMEM. */
EPLB_API int eplb_plan(const eplb_loads *loads, const eplb_params *params, eplb_placement **out);

/* ---- measuring a placement ---- */

/* Fills dev_load[0..G-1] with the load each device of `p` carries in layer index `layer` (a row
 * index, not a layer id) when every replica carries an equal share of its expert's load.
 * `loads` must have p's L and E. @return 0 or EPLB_EINVAL. */
EPLB_API int eplb_device_loads(const eplb_loads *loads, const eplb_placement *p, int32_t layer,
                               double *dev_load);
/* Balancedness of one layer: mean device load / max device load (1 = perfect; 1 when the layer
 * carries no load). Returns a negative value on bad arguments. */
EPLB_API double eplb_balancedness(const eplb_loads *loads, const eplb_placement *p, int32_t layer);

#ifdef __cplusplus
}
#endif

#include "eplb/collect.h"
#include "eplb/move.h"
#include "eplb/quality.h"
#include "eplb/rebalance.h"

#endif /* EPLB_H */
