/* config.c - the `generate:` section of the job's YAML config, read with libyaml. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/eplb_int.h"

/* The section this module reads, and its keys. */
#define SECTION "generate"
#define KEY_COLLECTS "token_collects"
#define KEY_SAVE_PATH "token_save_path"
#define KEY_MAP_PATH "expert_map_path"

/* What a plain (unquoted) YAML scalar resolves to under the core schema. */
typedef enum scalar_kind { KIND_STRING, KIND_NULL, KIND_BOOL, KIND_NUMBER } scalar_kind;

/* ---- scalars ---- */

/* Returns 1 when s equals one of the NULL-terminated words. */
static int is_one_of(const char *s, const char *const *words) {
  for (; *words; words++)
    if (!strcmp(s, *words))
      return 1;
  return 0;
}

static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                         "on",   "On",   "ON",   NULL};
static const char *const false_words[] = {"false", "False", "FALSE", "no", "No", "NO",
                                          "off",   "Off",   "OFF",   NULL};
static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const special_numbers[] = {".inf", ".Inf", ".INF", "-.inf", "-.Inf", "-.INF",
                                              "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN",
                                              NULL};

/* Returns 1 when s reads as a YAML int or float: [-+]digits[.digits][e[-+]digits], 0x.., 0o... */
static int looks_numeric(const char *s) {
  if (is_one_of(s, special_numbers))
    return 1;
  if ((s[0] == '0') && (s[1] == 'x' || s[1] == 'o') && s[2])
    return strspn(s + 2, "0123456789abcdefABCDEF") == strlen(s + 2);
  if (*s == '-' || *s == '+')
    s++;
  size_t digits = strspn(s, "0123456789");
  s += digits;
  if (*s == '.') {
    size_t frac = strspn(s + 1, "0123456789");
    digits += frac;
    s += 1 + frac;
  }
  if (digits == 0)
    return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+')
      s++;
    size_t exp = strspn(s, "0123456789");
    if (exp == 0)
      return 0;
    s += exp;
  }
  return *s == '\0';
}

/* Resolves a scalar node the way YAML's core schema does: quoted scalars are strings. */
static scalar_kind scalar_kind_of(const yaml_node_t *node) {
  const char *s = (const char *)node->data.scalar.value;
  if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return KIND_STRING;
  if (is_one_of(s, null_words))
    return KIND_NULL;
  if (is_one_of(s, true_words) || is_one_of(s, false_words))
    return KIND_BOOL;
  if (looks_numeric(s))
    return KIND_NUMBER;
  return KIND_STRING;
}

/* Names a node's type for messages. */
static const char *kind_name(const yaml_node_t *node) {
  if (node->type == YAML_MAPPING_NODE)
    return "a mapping";
  if (node->type == YAML_SEQUENCE_NODE)
    return "a sequence";
  switch (scalar_kind_of(node)) {
  case KIND_NULL:
    return "null";
  case KIND_BOOL:
    return "a bool";
  case KIND_NUMBER:
    return "a number";
  default:
    return "a string";
  }
}

/* 1-based line of a node, for messages. */
static unsigned long line_of(const yaml_node_t *node) {
  return (unsigned long)node->start_mark.line + 1;
}

/* ---- keys ---- */

/* Reads a bool key into *out; a null value leaves *out. */
static int read_bool(const char *path, const char *key, const yaml_node_t *v, int *out) {
  if (v->type == YAML_SCALAR_NODE && scalar_kind_of(v) == KIND_NULL)
    return 0;
  if (v->type != YAML_SCALAR_NODE || scalar_kind_of(v) != KIND_BOOL)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: " SECTION ".%s: expected a bool (true/false), got %s",
                     path, line_of(v), key, kind_name(v));
  *out = is_one_of((const char *)v->data.scalar.value, true_words);
  return 0;
}

/* Reads a string key into out[EPLB_CONFIG_PATH_MAX]; a null value leaves out. */
static int read_path(const char *path, const char *key, const yaml_node_t *v, char *out) {
  if (v->type == YAML_SCALAR_NODE && scalar_kind_of(v) == KIND_NULL)
    return 0;
  if (v->type != YAML_SCALAR_NODE || scalar_kind_of(v) != KIND_STRING)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: " SECTION ".%s: expected a string (a path), got %s%s",
                     path, line_of(v), key, kind_name(v),
                     v->type == YAML_SCALAR_NODE ? " (quote it)" : "");
  size_t len = v->data.scalar.length;
  if (len >= EPLB_CONFIG_PATH_MAX || memchr(v->data.scalar.value, '\0', len))
    return eplb__err(EPLB_EFORMAT, "%s:%lu: " SECTION ".%s: path too long or holds a NUL byte",
                     path, line_of(v), key);
  memcpy(out, v->data.scalar.value, len);
  out[len] = '\0';
  return 0;
}

/* Returns the value node of `key` in mapping `map`, NULL when absent; a repeated key is an error
 * reported through *rc. */
static yaml_node_t *find_key(yaml_document_t *doc, const yaml_node_t *map, const char *key,
                             const char *path, const char *where, int *rc) {
  yaml_node_t *found = NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    /* Compare lengths too: a quoted key may hold a NUL ("token_collects\0x" is another key). */
    if (!k || k->type != YAML_SCALAR_NODE || k->data.scalar.length != strlen(key) ||
        memcmp(k->data.scalar.value, key, k->data.scalar.length) != 0)
      continue;
    if (found) {
      *rc = eplb__err(EPLB_EFORMAT, "%s:%lu: %s%s: duplicate key", path, line_of(k), where, key);
      return NULL;
    }
    found = yaml_document_get_node(doc, p->value);
  }
  return found;
}

/* ---- the section ---- */

/* Reads the keys of the `generate:` mapping `gen` (NULL for an empty section) into *cfg. */
static int read_section(const char *path, yaml_document_t *doc, const yaml_node_t *gen,
                        unsigned long gen_line, eplb_config *cfg) {
  int rc = 0;
  if (gen) {
    yaml_node_t *v = find_key(doc, gen, KEY_COLLECTS, path, SECTION ".", &rc);
    if (rc == 0 && v)
      rc = read_bool(path, KEY_COLLECTS, v, &cfg->token_collects);
    if (rc == 0 && (v = find_key(doc, gen, KEY_SAVE_PATH, path, SECTION ".", &rc)) != NULL)
      rc = read_path(path, KEY_SAVE_PATH, v, cfg->token_save_path);
    if (rc == 0 && (v = find_key(doc, gen, KEY_MAP_PATH, path, SECTION ".", &rc)) != NULL)
      rc = read_path(path, KEY_MAP_PATH, v, cfg->expert_map_path);
    if (rc != 0)
      return rc;
  }
  if (cfg->token_collects && !cfg->token_save_path[0])
    return eplb__err(EPLB_EFORMAT,
                     "%s:%lu: " SECTION "." KEY_SAVE_PATH ": missing, required when "
                     KEY_COLLECTS " is true",
                     path, gen_line);
  return 0;
}

/* Finds the `generate:` node in the document's root mapping and reads it into *cfg. */
static int read_document(const char *path, yaml_document_t *doc, eplb_config *cfg) {
  yaml_node_t *root = yaml_document_get_root_node(doc);
  if (!root)
    return eplb__err(EPLB_EFORMAT, "%s: empty document, no `" SECTION ":` section", path);
  if (root->type != YAML_MAPPING_NODE)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: top level is %s, expected a mapping with `" SECTION
                     ":`", path, line_of(root), kind_name(root));
  int rc = 0;
  yaml_node_t *gen = find_key(doc, root, SECTION, path, "", &rc);
  if (rc != 0)
    return rc;
  if (!gen)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: " SECTION ": missing section", path, line_of(root));
  int empty = gen->type == YAML_SCALAR_NODE && scalar_kind_of(gen) == KIND_NULL;
  if (!empty && gen->type != YAML_MAPPING_NODE)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: " SECTION ": expected a mapping, got %s", path,
                     line_of(gen), kind_name(gen));
  return read_section(path, doc, empty ? NULL : gen, line_of(gen), cfg);
}

/* ---- public ---- */

void eplb_config_init(eplb_config *cfg) {
  if (cfg)
    memset(cfg, 0, sizeof *cfg);
}

/* The error of a failed yaml_parser_load, with the file, line and column. */
static int parse_error(const char *path, const yaml_parser_t *parser) {
  if (parser->error == YAML_MEMORY_ERROR)
    return eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
  if (parser->error == YAML_READER_ERROR)
    return eplb__err(EPLB_EFORMAT, "%s: YAML read error: %s at byte %zu", path,
                     parser->problem ? parser->problem : "unknown", parser->problem_offset);
  return eplb__err(EPLB_EFORMAT, "%s:%lu:%lu: YAML syntax error: %s%s%s", path,
                   (unsigned long)parser->problem_mark.line + 1,
                   (unsigned long)parser->problem_mark.column + 1,
                   parser->problem ? parser->problem : "unknown", parser->context ? " " : "",
                   parser->context ? parser->context : "");
}

/* Checks that nothing follows the first document: a second one (after `---`) would be ignored
 * silently otherwise. */
static int check_single_document(const char *path, yaml_parser_t *parser) {
  yaml_document_t next;
  if (!yaml_parser_load(parser, &next))
    return parse_error(path, parser);
  int more = yaml_document_get_root_node(&next) != NULL;
  unsigned long line = (unsigned long)next.start_mark.line + 1;
  yaml_document_delete(&next);
  if (more)
    return eplb__err(EPLB_EFORMAT, "%s:%lu: a second YAML document: the config must be one "
                                   "document",
                     path, line);
  return 0;
}

int eplb_config_load(const char *path, eplb_config *cfg) {
  if (!path || !cfg)
    return eplb__err(EPLB_EINVAL, "config: NULL path or config");
  FILE *f = fopen(path, "rb");
  if (!f)
    return eplb__err(EPLB_EIO, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    fclose(f);
    return eplb__err(EPLB_ENOMEM, "%s: cannot initialise the YAML parser", path);
  }
  yaml_parser_set_input_file(&parser, f);
  int rc = 0;
  if (!yaml_parser_load(&parser, &doc)) {
    rc = parse_error(path, &parser);
  } else {
    /* Work on a copy so that *cfg is untouched on failure. */
    eplb_config *tmp = malloc(sizeof *tmp);
    if (!tmp) {
      rc = eplb__err(EPLB_ENOMEM, "%s: out of memory", path);
    } else {
      memcpy(tmp, cfg, sizeof *tmp);
      rc = read_document(path, &doc, tmp);
      if (rc == 0)
        rc = check_single_document(path, &parser);
      if (rc == 0)
        memcpy(cfg, tmp, sizeof *cfg);
      free(tmp);
    }
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&parser);
  fclose(f);
  return rc;
}
