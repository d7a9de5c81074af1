/* test_map_io.c - expert_map.json: the writer's format (checked with jansson, independently of
 * the reader), round trips, the placement index, and the reader's rejection of bad maps. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "eplb.h"

static char tmpdir[64];

static int make_tmpdir(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/eplb_map_XXXXXX");
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *path_of(const char *name) {
  static char p[256];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  return p;
}

static void put(const char *name, const char *text) {
  FILE *f = fopen(path_of(name), "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* A small valid placement: 2 layers (ids 4, 9), 6 experts, 8 slots on 4 devices. */
static eplb_placement *sample(void) {
  static const int32_t rows[2][8] = {{0, 1, 2, 3, 4, 5, 0, 1}, {5, 0, 4, 1, 3, 2, 5, 4}};
  eplb_placement *p = NULL;
  assert_int_equal(eplb_placement_create(2, 6, 8, 4, &p), 0);
  p->layer_ids[0] = 4;
  p->layer_ids[1] = 9;
  memcpy(p->phy2log, rows, sizeof rows);
  assert_int_equal(eplb_placement_build_index(p), 0);
  return p;
}

static void index_counts_replicas_and_lists_slots(void **state) {
  (void)state;
  eplb_placement *p = sample();
  assert_int_equal(p->max_replicas, 2);
  /* layer 0: expert 0 in slots 0 and 6; expert 5 in slot 5 only */
  assert_int_equal(p->logcnt[0], 2);
  assert_int_equal(p->log2phy[0 * 2 + 0], 0);
  assert_int_equal(p->log2phy[0 * 2 + 1], 6);
  assert_int_equal(p->logcnt[5], 1);
  assert_int_equal(p->log2phy[5 * 2 + 1], -1);
  assert_int_equal(eplb_placement_validate(p, 0), 0);
  eplb_placement_free(p);
}

static void validate_catches_each_broken_invariant(void **state) {
  (void)state;
  eplb_placement *p = sample();
  p->logcnt[3]++;
  assert_int_equal(eplb_placement_validate(p, 1), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "logcnt[3]"));
  p->logcnt[3]--;
  p->log2phy[1] = 2; /* expert 0's second replica pointed at expert 2's slot */
  assert_int_equal(eplb_placement_validate(p, 1), EPLB_EINVALID);
  p->log2phy[1] = 0; /* expert 0's slot 0 listed twice, slot 6 not at all */
  assert_int_equal(eplb_placement_validate(p, 1), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "lists slot 0 twice"));
  assert_int_equal(eplb_placement_build_index(p), 0);
  p->phy2log[1] = 0; /* device 0 now holds expert 0 twice; expert 1 keeps slot 7 */
  assert_int_equal(eplb_placement_build_index(p), 0);
  assert_int_equal(eplb_placement_validate(p, 0), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "device 0 holds expert 0 twice"));
  assert_int_equal(eplb_placement_validate(p, 1), 0);
  assert_int_equal(eplb_placement_duplicates(p), 1);
  p->phy2log[7] = 0; /* expert 1 loses its last replica */
  assert_int_equal(eplb_placement_build_index(p), 0);
  assert_int_equal(eplb_placement_validate(p, 1), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "expert 1 has no replica"));
  eplb_placement_free(p);
}

static void written_map_has_the_seed_format(void **state) {
  (void)state;
  eplb_placement *p = sample();
  assert_int_equal(eplb_placement_write(p, path_of("m.json"), EPLB_MAP_EXPERT_MAP), 0);
  json_error_t err;
  json_t *root = json_load_file(path_of("m.json"), 0, &err);
  assert_non_null(root);
  assert_int_equal(json_integer_value(json_object_get(root, "moe_layer_count")), 2);
  json_t *list = json_object_get(root, "layer_list");
  assert_int_equal(json_array_size(list), 2);
  for (size_t l = 0; l < 2; l++) {
    json_t *layer = json_array_get(list, l);
    assert_int_equal(json_integer_value(json_object_get(layer, "layer_id")), p->layer_ids[l]);
    assert_int_equal(json_integer_value(json_object_get(layer, "device_count")), 4);
    assert_null(json_object_get(layer, "phy2log"));
    json_t *devs = json_object_get(layer, "device_list");
    size_t slot = 0;
    for (size_t d = 0; d < 4; d++) {
      json_t *dev = json_array_get(devs, d);
      assert_int_equal(json_integer_value(json_object_get(dev, "device_id")), d);
      json_t *ex = json_object_get(dev, "device_expert");
      assert_int_equal(json_array_size(ex), 2);
      for (size_t j = 0; j < 2; j++, slot++)
        assert_int_equal(json_integer_value(json_array_get(ex, j)), p->phy2log[l * 8 + slot]);
    }
  }
  json_decref(root);
  eplb_placement_free(p);
}

static void full_format_adds_the_index(void **state) {
  (void)state;
  eplb_placement *p = sample();
  assert_int_equal(eplb_placement_write(p, path_of("full.json"), EPLB_MAP_FULL), 0);
  json_error_t err;
  json_t *root = json_load_file(path_of("full.json"), 0, &err);
  assert_non_null(root);
  json_t *layer = json_array_get(json_object_get(root, "layer_list"), 1);
  json_t *phy = json_object_get(layer, "phy2log");
  json_t *cnt = json_object_get(layer, "logcnt");
  json_t *l2p = json_object_get(layer, "log2phy");
  assert_int_equal(json_array_size(phy), 8);
  assert_int_equal(json_array_size(cnt), 6);
  assert_int_equal(json_array_size(l2p), 6);
  for (size_t s = 0; s < 8; s++)
    assert_int_equal(json_integer_value(json_array_get(phy, s)), p->phy2log[8 + s]);
  /* expert 5 of layer 1 sits in slots 0 and 6 */
  json_t *r5 = json_array_get(l2p, 5);
  assert_int_equal(json_integer_value(json_array_get(r5, 0)), 0);
  assert_int_equal(json_integer_value(json_array_get(r5, 1)), 6);
  json_decref(root);
  eplb_placement_free(p);
}

static void read_gives_back_what_was_written(void **state) {
  (void)state;
  eplb_placement *p = sample(), *q = NULL;
  assert_int_equal(eplb_placement_write(p, path_of("rt.json"), EPLB_MAP_FULL), 0);
  /* The full format's index agrees with its device lists, so it reads back (and is checked). */
  assert_int_equal(eplb_placement_read(path_of("rt.json"), 0, &q), 0);
  assert_int_equal(q->num_layers, 2);
  assert_int_equal(q->num_experts, 6);
  assert_int_equal(q->num_slots, 8);
  assert_int_equal(q->num_gpus, 4);
  assert_memory_equal(q->layer_ids, p->layer_ids, 2 * sizeof *p->layer_ids);
  assert_memory_equal(q->phy2log, p->phy2log, 16 * sizeof *p->phy2log);
  assert_memory_equal(q->logcnt, p->logcnt, 12 * sizeof *p->logcnt);
  eplb_placement_free(q);
  /* With 7 experts declared, expert 6 would have no replica: refused. */
  assert_int_equal(eplb_placement_read(path_of("rt.json"), 7, &q), EPLB_EINVALID);
  assert_null(q);
  assert_non_null(strstr(eplb_last_error(), "expert 6 has no replica"));
  /* With more experts than slots, some cannot have a replica: refused before any indexing. */
  assert_int_equal(eplb_placement_read(path_of("rt.json"), 10, &q), EPLB_EINVALID);
  assert_non_null(strstr(eplb_last_error(), "experts 0..9 cannot all have a replica in 8 slots"));
  /* With fewer experts declared than the map uses, the ids are out of range. */
  assert_int_equal(eplb_placement_read(path_of("rt.json"), 4, &q), EPLB_EFORMAT);
  eplb_placement_free(p);
}

typedef struct bad_map {
  const char *text;
  const char *needle;
} bad_map;

#define DEV(id, ex) "{\"device_id\": " #id ", \"device_expert\": " ex "}"
#define LAYER(id, devs) "{\"layer_id\": " #id ", \"device_count\": 2, \"device_list\": [" devs "]}"

static const bad_map bad_maps[] = {
    {"", "invalid JSON"},
    {"[]", "expected a JSON object"},
    {"{\"layer_list\": []}", "missing \"moe_layer_count\""},
    {"{\"moe_layer_count\": \"1\", \"layer_list\": []}", "\"moe_layer_count\" is not an integer"},
    {"{\"moe_layer_count\": 2, \"layer_list\": [" LAYER(0, DEV(0, "[0]") "," DEV(1, "[1]")) "]}",
     "holds 1 layers"},
    {"{\"moe_layer_count\": 1, \"layer_list\": {}}", "\"layer_list\" is missing or not an array"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0]")) "]}",
     "\"device_count\" is 2 but \"device_list\" holds 1"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(1, "[0]") "," DEV(0, "[1]")) "]}",
     "\"device_id\" is 1, expected 0"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0, 2]") "," DEV(1, "[1]")) "]}",
     "same slot count"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0]") "," DEV(1, "[-1]")) "]}",
     "device_expert[0]: not an expert id"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0]") "," DEV(1, "[\"1\"]")) "]}",
     "not an expert id"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0]") "," DEV(1, "[]")) "]}",
     "\"device_expert\" is empty"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0, 2]") "," DEV(1, "[2, 0]")) "]}",
     "expert 1 has no replica"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [" LAYER(0, DEV(0, "[0]") "," DEV(1, "[2]")) "]}",
     "experts 0..2 cannot all have a replica in 2 slots"},
    {"{\"moe_layer_count\": 2, \"layer_list\": [" LAYER(3, DEV(0, "[0]") "," DEV(1, "[1]")) ","
     LAYER(3, DEV(0, "[0]") "," DEV(1, "[1]")) "]}",
     "is not above the previous layer's"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [{\"layer_id\": 0, \"device_count\": 2}]}",
     "\"device_list\" is missing"},
    /* Devices whose counts differ in the second layer only (issue #17). */
    {"{\"moe_layer_count\": 2, \"layer_list\": [" LAYER(0, DEV(0, "[0, 1]") "," DEV(1, "[1, 0]")) ","
     LAYER(1, DEV(0, "[0, 1, 1]") "," DEV(1, "[0]")) "]}",
     "layer_list[1].device_list[0]: holds 3 experts, other devices 2"},
    /* The full format's copies of the placement must agree with device_list. */
    {"{\"moe_layer_count\": 1, \"layer_list\": [{\"layer_id\": 0, \"device_count\": 2, "
     "\"device_list\": [" DEV(0, "[0]") "," DEV(1, "[1]") "], \"phy2log\": [1, 0]}]}",
     "layer_list[0].phy2log[0]: 1 disagrees with device_list, which gives 0"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [{\"layer_id\": 0, \"device_count\": 2, "
     "\"device_list\": [" DEV(0, "[0]") "," DEV(1, "[1]") "], \"phy2log\": [0]}]}",
     "layer_list[0].phy2log: expected an array of 2 integers"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [{\"layer_id\": 0, \"device_count\": 2, "
     "\"device_list\": [" DEV(0, "[0]") "," DEV(1, "[1]") "], \"logcnt\": [2, 1]}]}",
     "layer_list[0].logcnt[0]: 2 disagrees"},
    {"{\"moe_layer_count\": 1, \"layer_list\": [{\"layer_id\": 0, \"device_count\": 2, "
     "\"device_list\": [" DEV(0, "[0]") "," DEV(1, "[1]") "], \"log2phy\": [[1], [0]]}]}",
     "layer_list[0].log2phy[0][0]: 1 disagrees"},
};

static void read_rejects_bad_maps_naming_file_and_field(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_maps / sizeof bad_maps[0]; i++) {
    put("bad.json", bad_maps[i].text);
    eplb_placement *q = (eplb_placement *)1;
    int rc = eplb_placement_read(path_of("bad.json"), 0, &q);
    if (rc == 0 || q != NULL)
      fail_msg("case %zu accepted", i);
    if (!strstr(eplb_last_error(), bad_maps[i].needle) || !strstr(eplb_last_error(), "bad.json"))
      fail_msg("case %zu: message '%s' lacks '%s'", i, eplb_last_error(), bad_maps[i].needle);
  }
}

static void writing_an_invalid_placement_leaves_the_old_file(void **state) {
  (void)state;
  put("old.json", "previous");
  eplb_placement *p = sample();
  p->logcnt[0] = 7; /* index no longer matches */
  assert_int_equal(eplb_placement_write(p, path_of("old.json"), EPLB_MAP_EXPERT_MAP),
                   EPLB_EINVALID);
  char buf[32] = {0};
  FILE *f = fopen(path_of("old.json"), "r");
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "previous");
  eplb_placement_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(index_counts_replicas_and_lists_slots),
      cmocka_unit_test(validate_catches_each_broken_invariant),
      cmocka_unit_test(written_map_has_the_seed_format),
      cmocka_unit_test(full_format_adds_the_index),
      cmocka_unit_test(read_gives_back_what_was_written),
      cmocka_unit_test(read_rejects_bad_maps_naming_file_and_field),
      cmocka_unit_test(writing_an_invalid_placement_leaves_the_old_file),
  };
  return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
