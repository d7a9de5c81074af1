/* test_config.c - the `generate:` section of the YAML config: values, defaults, clear errors. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "eplb.h"

static char dir[] = "/tmp/eplb_test_config.XXXXXX";
static char path[sizeof dir + 32];

/* ---- helpers ---- */

/* Writes `text` as cfg.yaml in the test's folder and returns its path. */
static const char *yaml(const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* Asserts that the last error detail contains `part`. */
static void assert_detail(const char *part) {
  if (!strstr(eplb_last_error(), part))
    fail_msg("detail \"%s\" lacks \"%s\"", eplb_last_error(), part);
}

/* Makes the folder the configs are written to. */
static int setup(void **state) {
  (void)state;
  if (!mkdtemp(dir))
    return -1;
  snprintf(path, sizeof path, "%s/cfg.yaml", dir);
  return 0;
}

/* Removes the folder and its config. */
static int teardown(void **state) {
  (void)state;
  unlink(path);
  return rmdir(dir);
}

/* ---- good files ---- */

static void reads_every_key(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("model:\n  name: x\n"
                                         "generate:\n"
                                         "  token_collects: true\n"
                                         "  token_save_path: /data/counts\n"
                                         "  expert_map_path: \"/data/expert_map.json\"\n"),
                                    &cfg),
                   0);
  assert_int_equal(cfg.token_collects, 1);
  assert_string_equal(cfg.token_save_path, "/data/counts");
  assert_string_equal(cfg.expert_map_path, "/data/expert_map.json");
}

static void init_sets_the_code_defaults(void **state) {
  (void)state;
  eplb_config cfg;
  memset(&cfg, 0x55, sizeof cfg);
  eplb_config_init(&cfg);
  assert_int_equal(cfg.token_collects, 0);
  assert_string_equal(cfg.token_save_path, "");
  assert_string_equal(cfg.expert_map_path, "");
}

static void absent_keys_keep_the_defaults(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  strcpy(cfg.expert_map_path, "default_map.json");
  strcpy(cfg.token_save_path, "default_dir");
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: yes\n"
                                         "  expert_map_path: ~\n"),
                                    &cfg),
                   0);
  assert_int_equal(cfg.token_collects, 1);
  assert_string_equal(cfg.token_save_path, "default_dir");
  assert_string_equal(cfg.expert_map_path, "default_map.json");
}

static void yaml_overrides_the_defaults(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  cfg.token_collects = 1;
  strcpy(cfg.token_save_path, "default_dir");
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: False\n"
                                         "  token_save_path: 'from yaml'\n"),
                                    &cfg),
                   0);
  assert_int_equal(cfg.token_collects, 0);
  assert_string_equal(cfg.token_save_path, "from yaml");
}

static void unknown_keys_are_ignored(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("other: [1, 2]\n"
                                         "generate:\n  tokens_per_step: 12\n"
                                         "  nested: {a: 1}\n  token_collects: off\n"),
                                    &cfg),
                   0);
  assert_int_equal(cfg.token_collects, 0);
}

static void empty_generate_section_keeps_defaults(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n"), &cfg), 0);
  assert_int_equal(cfg.token_collects, 0);
}

/* ---- bad files ---- */

static void syntax_error_names_the_line(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: true\n"
                                         "  token_save_path: [unclosed\n"),
                                    &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:");
  assert_detail("YAML syntax error");
  assert_int_equal(cfg.token_collects, 0); /* untouched */
}

static void wrong_bool_type_names_key_and_line(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_save_path: out\n"
                                         "  token_collects: 3\n"),
                                    &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:3: generate.token_collects: expected a bool");
  /* A quoted "true" is a string, not a bool. */
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: \"true\"\n"), &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:2: generate.token_collects");
  assert_string_equal(cfg.token_save_path, ""); /* untouched by the failed loads */
}

static void wrong_path_type_names_key_and_line(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: true\n"
                                         "  token_save_path: 42\n"),
                                    &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:3: generate.token_save_path: expected a string");
  assert_int_equal(eplb_config_load(yaml("generate:\n\n  expert_map_path:\n    - a\n"), &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:4: generate.expert_map_path: expected a string (a path), got a sequence");
  assert_int_equal(cfg.token_collects, 0);
}

static void missing_save_path_is_an_error(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("x: 1\ngenerate:\n  token_collects: true\n"), &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:3: generate.token_save_path: missing, required when token_collects");
  assert_int_equal(cfg.token_collects, 0);
}

static void missing_or_bad_section_is_an_error(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("model: 1\n"), &cfg), EPLB_EFORMAT);
  assert_detail("generate: missing section");
  assert_int_equal(eplb_config_load(yaml("generate: 5\n"), &cfg), EPLB_EFORMAT);
  assert_detail("cfg.yaml:1: generate: expected a mapping");
  assert_int_equal(eplb_config_load(yaml("- a\n- b\n"), &cfg), EPLB_EFORMAT);
  assert_detail("top level is a sequence");
  assert_int_equal(eplb_config_load(yaml(""), &cfg), EPLB_EFORMAT);
  assert_detail("empty document");
}

static void duplicate_key_is_an_error(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: true\n"
                                         "  token_save_path: a\n  token_collects: false\n"),
                                    &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:4: generate.token_collects: duplicate key");
}

/* A key that only starts like a known one (a quoted key with a NUL after the name) is another,
 * unknown key: ignored, not read as token_collects. */
static void key_with_nul_is_not_a_known_key(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  \"token_collects\\0x\": true\n"), &cfg), 0);
  assert_int_equal(cfg.token_collects, 0);
}

/* A second document after `---` would be ignored silently: it is an error, and cfg is unchanged. */
static void second_document_is_an_error(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: false\n---\n"
                                         "generate:\n  token_collects: true\n"),
                                    &cfg),
                   EPLB_EFORMAT);
  assert_detail("cfg.yaml:3: a second YAML document");
  assert_int_equal(cfg.token_collects, 0);
  /* An explicit end marker alone is fine. */
  assert_int_equal(eplb_config_load(yaml("generate:\n  token_collects: false\n...\n"), &cfg), 0);
}

static void unreadable_file_is_eio(void **state) {
  (void)state;
  eplb_config cfg;
  eplb_config_init(&cfg);
  assert_int_equal(eplb_config_load("/nonexistent/cfg.yaml", &cfg), EPLB_EIO);
  assert_detail("/nonexistent/cfg.yaml: cannot open");
  assert_int_equal(eplb_config_load(NULL, &cfg), EPLB_EINVAL);
  assert_int_equal(eplb_config_load(path, NULL), EPLB_EINVAL);
}

/* Runs every test of the config reader. */
int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_every_key),
      cmocka_unit_test(init_sets_the_code_defaults),
      cmocka_unit_test(absent_keys_keep_the_defaults),
      cmocka_unit_test(yaml_overrides_the_defaults),
      cmocka_unit_test(unknown_keys_are_ignored),
      cmocka_unit_test(empty_generate_section_keeps_defaults),
      cmocka_unit_test(syntax_error_names_the_line),
      cmocka_unit_test(wrong_bool_type_names_key_and_line),
      cmocka_unit_test(wrong_path_type_names_key_and_line),
      cmocka_unit_test(missing_save_path_is_an_error),
      cmocka_unit_test(missing_or_bad_section_is_an_error),
      cmocka_unit_test(duplicate_key_is_an_error),
      cmocka_unit_test(key_with_nul_is_not_a_known_key),
      cmocka_unit_test(second_document_is_an_error),
      cmocka_unit_test(unreadable_file_is_eio),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
