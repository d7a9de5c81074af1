/* eplb/collect.h - Step 1, collect: in-memory expert counters (no MPI; the gather is in eplb_mpi.h).
 * Included by eplb.h; may be included on its own.
 *
 * A collector counts, for every MoE layer, how many tokens the router sent to each expert. The
 * framework hands it the router's flattened `topk_ids` after every forward of every layer
 * (eplb_collector_record), or counts it already made on the device (eplb_collector_add_counts).
 * Counting happens in memory; nothing is read or written per call. At the end of a run
 * eplb_mpi_gather() (eplb_mpi.h) sums every rank's collector on one rank, which writes
 * `<token_save_path>/token_collects_all.json` in the seed format.
 *
 * Windows. The counts live in a ring of `num_windows` windows. Calls count into the current
 * window; eplb_collector_next_window() closes it and opens the next one, which, once the ring is
 * full, reuses (clears) the oldest. So the collector always holds the current window and at most
 * num_windows - 1 closed ones, and "the ring" means all windows it holds: before the ring has
 * filled that is simply every window opened so far. With num_windows == 1 the collector is a
 * plain counter (next_window() then starts it from zero, like eplb_collector_reset()).
 *
 * Disabled collection. A NULL collector stands for `token_collects: false`: record, add_counts,
 * next_window and reset on NULL do nothing and return 0, so a framework can call them
 * unconditionally at the cost of one branch; eplb_mpi_gather() on NULL on every rank writes nothing.
 *
 * Typical use, on every rank:
 *   eplb_config cfg;  eplb_config_init(&cfg);
 *   if (eplb_config_load("job.yaml", &cfg) != 0) { fprintf(stderr, "%s\n", eplb_last_error()); ... }
 *   eplb_collector *c = cfg.token_collects ? eplb_collector_create(layers, experts, 1) : NULL;
 *   ... every forward, every MoE layer l:  eplb_collector_record(c, l, topk_ids, n, EPLB_ID_INT64);
 *   eplb_mpi_gather(c, MPI_COMM_WORLD, 0, cfg.token_save_path);  // writes the folder's file
 *   eplb_collector_free(c);
 *
 * Threads. A collector is not locked. One collector must be used by one thread at a time; to count
 * from several threads give each thread its own collector (same shape) and, once the threads are
 * done with them, add them into one with eplb_collector_merge(). Functions that only read a
 * collector (loads, counts, dims) may run concurrently with each other but not with a writer.
 */
#ifndef EPLB_COLLECT_H
#define EPLB_COLLECT_H

#include "../eplb.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- collector ---- */

/* An opaque set of per-layer, per-expert token counters (64-bit) with a ring of windows. */
typedef struct eplb_collector eplb_collector;

/* Width of the expert ids handed to eplb_collector_record(). */
typedef enum eplb_id_type {
  EPLB_ID_INT32 = 0, /* int32_t ids (torch.int32) */
  EPLB_ID_INT64 = 1  /* int64_t ids (torch.int64, the router's usual topk_ids) */
} eplb_id_type;

/* Pass as `window` to read the sum of every window of the ring. */
#define EPLB_WINDOW_ALL (-1)

/* Creates a collector of num_layers x num_experts zero counters in a ring of num_windows windows
 * (layers are indexed 0..num_layers-1 and written with those ids). All sizes must be >= 1.
 * @return the collector, owned by the caller (release with eplb_collector_free), or NULL with
 *         the detail in eplb_last_error(): a size < 1 (EPLB_EINVAL) or out of memory. */
EPLB_API eplb_collector *eplb_collector_create(int32_t num_layers, int32_t num_experts,
                                               int32_t num_windows);
/* Releases a collector. NULL is a no-op. */
EPLB_API void eplb_collector_free(eplb_collector *c);
/* Reports the collector's shape; any output pointer may be NULL. */
EPLB_API void eplb_collector_dims(const eplb_collector *c, int32_t *num_layers,
                                  int32_t *num_experts, int32_t *num_windows);

/* Counts one forward of one layer: `ids` holds n expert ids of type `type` (the router's
 * flattened topk_ids, tokens x top-k; the order does not matter), each adding 1 to its expert in
 * the current window. All ids are checked first: an id < 0 or >= num_experts, a layer outside
 * 0..num_layers-1, or ids == NULL with n > 0 is an error and nothing of the call is counted.
 * n == 0 counts nothing. `ids` is only read during the call.
 * Example: eplb_collector_record(c, layer, topk_ids, tokens * 8, EPLB_ID_INT64);
 * @return 0, EPLB_EINVAL (NULL ids, bad type), EPLB_ERANGE (bad layer or id, the detail names
 *         the first bad one and its position). */
EPLB_API int eplb_collector_record(eplb_collector *c, int32_t layer, const void *ids, size_t n,
                                   eplb_id_type type);
/* Adds counts[0..num_experts-1] to `layer` of the current window, for frameworks that count on
 * the device. Nothing is added when an error is returned.
 * @return 0, EPLB_EINVAL (NULL counts), EPLB_ERANGE (bad layer, or a counter would pass
 *         2^64 - 1). */
EPLB_API int eplb_collector_add_counts(eplb_collector *c, int32_t layer, const uint64_t *counts);
/* Closes the current window and opens the next, clearing the oldest when the ring is full.
 * @return 0 (NULL included). */
EPLB_API int eplb_collector_next_window(eplb_collector *c);
/* Clears every counter of every window; the ring restarts with a single, current window.
 * @return 0 (NULL included). */
EPLB_API int eplb_collector_reset(eplb_collector *c);
/* Adds `src` into `dst`, window by window by age (src's current window into dst's current one,
 * src's previous into dst's previous, ...); dst then holds as many windows as the larger of the
 * two. Both must have the same shape; neither may be in use by another thread during the call.
 * `src` is unchanged. Nothing is added when an error is returned.
 * @return 0, EPLB_EINVAL (NULL, different shapes), EPLB_ERANGE (a counter would pass 2^64 - 1). */
EPLB_API int eplb_collector_merge(eplb_collector *dst, const eplb_collector *src);

/* Copies the counts of one window into out[layer * num_experts + expert] (out holds n >= L*E
 * values). `window` is EPLB_WINDOW_ALL for the sum of the ring, or an age: 0 is the current
 * window, 1 the last closed one, ... up to num_windows - 1; a window not opened yet reads as zeros.
 * @return 0, EPLB_EINVAL (NULL, n too small), EPLB_ERANGE (window outside -1..num_windows-1,
 *         or with EPLB_WINDOW_ALL a sum that would pass 2^64 - 1; out is then incomplete). */
EPLB_API int eplb_collector_counts(const eplb_collector *c, int32_t window, uint64_t *out,
                                   size_t n);
/* Builds the load matrix of one window (as eplb_collector_counts) in the form eplb_plan() takes:
 * L x E, layer ids 0..L-1, exact `count` and `load` = count. *out is owned by the caller
 * (eplb_loads_free); NULL on failure.
 * @return 0, EPLB_EINVAL, EPLB_ERANGE (bad window, or a count above 2^63 - 1), EPLB_ENOMEM. */
EPLB_API int eplb_collector_loads(const eplb_collector *c, int32_t window, eplb_loads **out);

/* ---- config ---- */

/* Longest path (with its NUL) a config may hold. */
#define EPLB_CONFIG_PATH_MAX 4096
/* Name of the gathered file inside token_save_path. */
#define EPLB_TOKEN_FILE "token_collects_all.json"

/* The `generate:` section of the job's YAML config. Strings are "" when unset. */
typedef struct eplb_config {
  int token_collects;                         /* count routed tokens (default 0) */
  char token_save_path[EPLB_CONFIG_PATH_MAX]; /* folder that receives EPLB_TOKEN_FILE */
  char expert_map_path[EPLB_CONFIG_PATH_MAX]; /* expert_map.json that step 3 applies */
} eplb_config;

/* Sets the code defaults: token_collects 0, both paths "". */
EPLB_API void eplb_config_init(eplb_config *cfg);
/* Reads the `generate:` mapping of the YAML file at `path` (libyaml) over the values already in
 * *cfg (call eplb_config_init, then set your own defaults): each of the keys
 *   token_collects   bool (true/false, yes/no, on/off)
 *   token_save_path  string, a folder; required when token_collects is true
 *   expert_map_path  string
 * present in the file replaces the value in cfg; `key: null` (or `key:`) leaves it; other keys,
 * and every other top-level section, are ignored. Paths longer than EPLB_CONFIG_PATH_MAX - 1
 * bytes are an error. On failure *cfg is left unchanged.
 * @return 0, EPLB_EIO (cannot read), EPLB_EFORMAT (YAML syntax, no `generate:` mapping, a wrong
 *         type, a duplicate key, a missing required key: the detail reads
 *         "cfg.yaml:LINE: generate.KEY: what is wrong"), EPLB_EINVAL (NULL), EPLB_ENOMEM. */
EPLB_API int eplb_config_load(const char *path, eplb_config *cfg);

#ifdef __cplusplus
}
#endif

#endif /* EPLB_COLLECT_H */
