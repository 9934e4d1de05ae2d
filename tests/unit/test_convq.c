/* test_convq.c — the conversation query parser (store/convq.c): the tree every backend
 * compiles, and every refusal with the exact text a client reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "convq.h"
#include "err.h"

static json_t *js(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!v) fail_msg("bad test JSON %s: %s", text, jerr.text);
  return v;
}

/* Parses where (JSON text, NULL: none) and sort; fails the test unless it parses. */
static convq_t *ok(const char *where, const char *sort) {
  json_t *w = where ? js(where) : NULL;
  char err[256] = "";
  convq_t *q = NULL;
  int rc = convq_parse(w, sort, "alice", &q, err, sizeof err);
  if (rc) fail_msg("convq_parse(%s, %s) = %d: %s", where ? where : "NULL", sort ? sort : "NULL", rc, err);
  assert_non_null(q);
  json_decref(w);
  return q;
}

/* where + sort must be refused with exactly `why`. */
static void refused(const char *where, const char *sort, const char *why) {
  json_t *w = where ? js(where) : NULL;
  char err[256] = "";
  convq_t *q = (convq_t *)&err; /* must come back NULL */
  int rc = convq_parse(w, sort, "alice", &q, err, sizeof err);
  if (rc != TERN_EINVAL) fail_msg("%s / %s: expected TERN_EINVAL, got %d", where, sort ? sort : "", rc);
  assert_null(q);
  if (strcmp(err, why) != 0) fail_msg("%s\n  got:  %s\n  want: %s", where, err, why);
  json_decref(w);
}

/* The only leaf of a one-condition where. */
static const convq_node_t *only_leaf(const convq_t *q) {
  assert_int_equal(q->where->kind, CONVQ_AND);
  assert_int_equal(q->where->list, 0);
  assert_int_equal(q->where->n, 1);
  const convq_node_t *l = q->where->kids[0];
  assert_int_equal(l->kind, CONVQ_LEAF);
  return l;
}

static char *val_text(const convq_val_t *v) {
  json_t *j = convq_val_json(v);
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(j);
  return s;
}

static void expect_val(const convq_val_t *v, const char *json) {
  char *s = val_text(v);
  if (strcmp(s, json) != 0) fail_msg("value %s, want %s", s, json);
  free(s);
}

static void test_default_and_empty(void **state) {
  (void)state;
  const char *empties[] = {NULL, "null", "{}"};
  for (size_t i = 0; i < 3; i++) {
    convq_t *q = ok(empties[i], NULL);
    const convq_node_t *l = only_leaf(q);
    assert_int_equal(l->field.kind, CONVQ_F_MEMBERS);
    assert_int_equal(l->op, CONVQ_EQ);
    assert_int_equal(l->val.type, CONVQ_V_STRING);
    assert_string_equal(l->val.s, "alice");
    /* the default sort: -lm, then -updatedAt */
    assert_int_equal(q->nsort, 2);
    assert_int_equal(q->sort[0].field.kind, CONVQ_F_LM);
    assert_true(q->sort[0].desc);
    assert_int_equal(q->sort[1].field.kind, CONVQ_F_UPDATED_AT);
    assert_true(q->sort[1].desc);
    convq_free(q);
  }
  /* an empty object inside $or is an AND with no kids (true) */
  convq_t *q = ok("{\"$or\":[{},{\"name\":\"x\"}]}", " \t");
  assert_int_equal(q->where->n, 1);
  const convq_node_t * or = q->where->kids[0];
  assert_int_equal(or->kind, CONVQ_OR);
  assert_int_equal(or->n, 2);
  assert_int_equal(or->kids[0]->kind, CONVQ_AND);
  assert_int_equal(or->kids[0]->n, 0);
  assert_int_equal(q->nsort, 2); /* a blank sort is the default */
  convq_free(q);
}

static void test_every_operator(void **state) {
  (void)state;
  static const struct {
    const char *where;
    convq_op_t op;
    const char *val;
  } cases[] = {
      {"{\"name\":\"x\"}", CONVQ_EQ, "\"x\""},
      {"{\"name\":{\"$eq\":1}}", CONVQ_EQ, "1"},
      {"{\"name\":{\"$ne\":true}}", CONVQ_NE, "true"},
      {"{\"n\":{\"$lt\":1.5}}", CONVQ_LT, "1.5"},
      {"{\"n\":{\"$lte\":\"b\"}}", CONVQ_LTE, "\"b\""},
      {"{\"n\":{\"$gt\":{\"__type\":\"Date\",\"iso\":\"2024-01-02T03:04:05Z\"}}}", CONVQ_GT,
       "{\"__type\":\"Date\",\"iso\":\"2024-01-02T03:04:05.000Z\"}"},
      {"{\"n\":{\"$gte\":-3}}", CONVQ_GTE, "-3"},
      {"{\"n\":{\"$in\":[1,\"a\",null,[2],{\"k\":false}]}}", CONVQ_IN, "[1,\"a\",null,[2],{\"k\":false}]"},
      {"{\"n\":{\"$nin\":[]}}", CONVQ_NIN, "[]"},
      {"{\"n\":{\"$all\":[\"a\",\"b\"]}}", CONVQ_ALL, "[\"a\",\"b\"]"},
      {"{\"n\":{\"$exists\":false}}", CONVQ_EXISTS, "false"},
      {"{\"n\":{\"$regex\":\"^a.*b$\"}}", CONVQ_REGEX, "\"^a.*b$\""},
      {"{\"n\":{\"$size\":3}}", CONVQ_SIZE, "3"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    convq_t *q = ok(cases[i].where, NULL);
    const convq_node_t *l = only_leaf(q);
    assert_int_equal(l->op, cases[i].op);
    assert_int_equal(l->field.kind, CONVQ_F_PATH);
    expect_val(&l->val, cases[i].val);
    assert_null(l->regex_options);
    convq_free(q);
  }
  convq_t *q = ok("{\"name\":{\"$regex\":\"A\",\"$options\":\"im\"}}", NULL);
  const convq_node_t *l = only_leaf(q); /* $options is part of the $regex leaf */
  assert_int_equal(l->op, CONVQ_REGEX);
  assert_string_equal(l->regex_options, "im");
  convq_free(q);
  /* several operators on one field: a group of leaves in the client's order */
  q = ok("{\"n\":{\"$gt\":1,\"$lt\":5,\"$ne\":3}}", NULL);
  const convq_node_t *g = q->where->kids[0];
  assert_int_equal(g->kind, CONVQ_AND);
  assert_int_equal(g->list, 0);
  assert_int_equal(g->n, 3);
  assert_int_equal(g->kids[0]->op, CONVQ_GT);
  assert_int_equal(g->kids[1]->op, CONVQ_LT);
  assert_int_equal(g->kids[2]->op, CONVQ_NE);
  assert_string_equal(g->kids[2]->field.name, "n");
  convq_free(q);
}

static void test_lists(void **state) {
  (void)state;
  convq_t *q = ok("{\"$or\":[{\"a\":1},{\"$and\":[{\"b\":2},{\"c\":3,\"d\":4}]}],\"e\":5}", NULL);
  const convq_node_t *w = q->where;
  assert_int_equal(w->n, 2);
  const convq_node_t * or = w->kids[0];
  assert_int_equal(or->kind, CONVQ_OR);
  assert_int_equal(or->list, 1);
  assert_int_equal(or->n, 2);
  assert_int_equal(or->kids[0]->kind, CONVQ_AND); /* each element is a where object */
  assert_int_equal(or->kids[0]->n, 1);
  const convq_node_t *and = or->kids[1]->kids[0];
  assert_int_equal(and->kind, CONVQ_AND);
  assert_int_equal(and->list, 1);
  assert_int_equal(and->n, 2);
  assert_int_equal(and->kids[1]->n, 2);
  assert_string_equal(and->kids[1]->kids[1]->field.name, "d");
  assert_int_equal(w->kids[1]->kind, CONVQ_LEAF);
  convq_free(q);
}

static void test_fields_and_paths(void **state) {
  (void)state;
  static const struct {
    const char *key;
    convq_field_kind_t kind;
  } named[] = {{"objectId", CONVQ_F_OBJECT_ID},
               {"m", CONVQ_F_MEMBERS},
               {"createdAt", CONVQ_F_CREATED_AT},
               {"updatedAt", CONVQ_F_UPDATED_AT},
               {"lm", CONVQ_F_LM},
               {"name", CONVQ_F_PATH},
               {"c", CONVQ_F_PATH},
               {"tr", CONVQ_F_PATH},
               {"uniqueId", CONVQ_F_PATH}};
  for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
    char where[64];
    snprintf(where, sizeof where, "{\"%s\":{\"$exists\":true}}", named[i].key);
    convq_t *q = ok(where, NULL);
    assert_int_equal(only_leaf(q)->field.kind, named[i].kind);
    assert_string_equal(only_leaf(q)->field.name, named[i].key);
    assert_int_equal(only_leaf(q)->field.nsegs, named[i].kind == CONVQ_F_PATH ? 1 : 0);
    convq_free(q);
  }
  /* keys are split at dots only; quotes, brackets, backslashes, control characters and
   * UTF-8 stay in their segment as they are */
  static const struct {
    const char *where;
    size_t n;
    const char *segs[4];
  } paths[] = {
      {"{\"attr.level\":1}", 2, {"attr", "level"}},
      {"{\"a.b.c.d\":1}", 4, {"a", "b", "c", "d"}},
      {"{\"attr.q\\\"uote\":1}", 2, {"attr", "q\"uote"}},
      {"{\"attr.br[0]\":1}", 2, {"attr", "br[0]"}},
      {"{\"attr.mix\\\"[0]\":1}", 2, {"attr", "mix\"[0]"}},
      {"{\"back\\\\slash.x\":1}", 2, {"back\\slash", "x"}},
      {"{\"tab\\tnl\\n\":1}", 1, {"tab\tnl\n"}},
      {"{\"attr.\\u4e2d\\u6587\":1}", 2, {"attr", "\xe4\xb8\xad\xe6\x96\x87"}},
      {"{\"x') OR 1=1 --\":1}", 1, {"x') OR 1=1 --"}},
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    convq_t *q = ok(paths[i].where, NULL);
    const convq_node_t *l = only_leaf(q);
    assert_int_equal(l->field.kind, CONVQ_F_PATH);
    assert_int_equal(l->field.nsegs, paths[i].n);
    for (size_t k = 0; k < paths[i].n; k++) assert_string_equal(l->field.segs[k], paths[i].segs[k]);
    convq_free(q);
  }
}

static void test_operands(void **state) {
  (void)state;
  /* times: Dates, ISO strings and milliseconds become ms; null stays null */
  convq_t *q = ok("{\"createdAt\":{\"$in\":[{\"__type\":\"Date\",\"iso\":\"1970-01-01T00:00:01Z\"},"
                  "\"1970-01-01T00:00:02.000Z\",3000,4000.9,null]}}",
                  NULL);
  const convq_node_t *l = only_leaf(q);
  assert_int_equal(l->val.n, 5);
  int64_t want[] = {1000, 2000, 3000, 4000};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(l->val.items[i].type, CONVQ_V_DATE);
    assert_int_equal(l->val.items[i].i, want[i]);
  }
  assert_int_equal(l->val.items[4].type, CONVQ_V_NULL);
  convq_free(q);
  q = ok("{\"lm\":{\"$lt\":\"2024-01-01T00:00:00Z\"}}", NULL);
  assert_int_equal(only_leaf(q)->val.type, CONVQ_V_DATE);
  convq_free(q);
  /* a document field: a Date operand (or list element) is a Date; one deeper inside stays an object */
  q = ok("{\"d\":[{\"__type\":\"Date\",\"iso\":\"x\"}]}", NULL);
  expect_val(&only_leaf(q)->val, "[{\"__type\":\"Date\",\"iso\":\"x\"}]");
  convq_free(q);
  q = ok("{\"d\":{\"$in\":[{\"__type\":\"Date\",\"iso\":\"2024-05-06T07:08:09.1Z\"}]}}", NULL);
  assert_int_equal(only_leaf(q)->val.items[0].type, CONVQ_V_DATE);
  convq_free(q);
  /* objectId and m: a Date-looking operand is not checked, it just never matches */
  q = ok("{\"objectId\":{\"__type\":\"Date\",\"iso\":\"bad\"}}", NULL);
  assert_int_equal(only_leaf(q)->val.type, CONVQ_V_OBJECT);
  assert_false(convq_val_plain_string(&only_leaf(q)->val));
  convq_free(q);
  /* strings keep NUL bytes (not plain: objectId and m cannot equal them) */
  q = ok("{\"m\":\"a\\u0000b\"}", NULL);
  assert_int_equal(only_leaf(q)->val.len, 3);
  assert_false(convq_val_plain_string(&only_leaf(q)->val));
  expect_val(&only_leaf(q)->val, "\"a\\u0000b\"");
  convq_free(q);
  /* objects keep their key order */
  q = ok("{\"o\":{\"z\":1,\"a\":[true,{\"y\":null}]}}", NULL);
  expect_val(&only_leaf(q)->val, "{\"z\":1,\"a\":[true,{\"y\":null}]}");
  convq_free(q);
}

static void test_sort(void **state) {
  (void)state;
  convq_t *q = ok(NULL, " name , -createdAt,attr.level,-objectId, -lm");
  assert_int_equal(q->nsort, 5);
  assert_int_equal(q->sort[0].field.kind, CONVQ_F_PATH);
  assert_false(q->sort[0].desc);
  assert_int_equal(q->sort[1].field.kind, CONVQ_F_CREATED_AT);
  assert_true(q->sort[1].desc);
  assert_int_equal(q->sort[2].field.nsegs, 2);
  assert_string_equal(q->sort[2].field.segs[1], "level");
  assert_int_equal(q->sort[3].field.kind, CONVQ_F_OBJECT_ID);
  assert_int_equal(q->sort[4].field.kind, CONVQ_F_LM);
  assert_true(q->sort[4].desc);
  convq_free(q);
  refused(NULL, "m", "cannot sort by m");
  refused(NULL, "-m", "cannot sort by m");
  refused(NULL, "a,,b", "sort has an empty field");
  refused(NULL, "-", "sort has an empty field");
  refused(NULL, "name,", "sort has an empty field");
  refused(NULL, "$x", "unsupported operator $x");
  refused(NULL, "a..b", "key \"a..b\" has an empty segment");
  /* the where's refusal comes first */
  refused("{\"$x\":1}", "m", "unsupported operator $x");
}

static void test_rejections(void **state) {
  (void)state;
  static const char *const cases[][2] = {
      {"[1]", "a query must be a JSON object"},
      {"{\"$or\":[1]}", "a query must be a JSON object"},
      {"{\"$or\":[]}", "$or needs a non-empty array of queries"},
      {"{\"$and\":{}}", "$and needs a non-empty array of queries"},
      {"{\"$nor\":[{\"a\":1}]}", "unsupported operator $nor"},
      {"{\"\":1}", "empty key"},
      {"{\"a..b\":1}", "key \"a..b\" has an empty segment"},
      {"{\".a\":1}", "key \".a\" has an empty segment"},
      {"{\"a.\":1}", "key \"a.\" has an empty segment"},
      {"{\"name\":{\"$foo\":1}}", "unsupported operator $foo on name"},
      {"{\"name\":{\"$gt\":1,\"plain\":2}}", "name: cannot mix operators and plain keys in one object"},
      {"{\"name\":{\"$options\":\"i\"}}", "name: $options without $regex"},
      {"{\"n\":{\"$in\":1}}", "$in on n needs an array"},
      {"{\"n\":{\"$nin\":\"a\"}}", "$nin on n needs an array"},
      {"{\"n\":{\"$all\":{}}}", "$all on n needs an array"},
      {"{\"n\":{\"$lt\":true}}", "$lt on n needs a number, a string or a Date"},
      {"{\"n\":{\"$gte\":[1]}}", "$gte on n needs a number, a string or a Date"},
      {"{\"n\":{\"$gt\":\"a\\u0000\"}}", "$gt on n: NUL bytes in strings"},
      {"{\"n\":{\"$lte\":{\"__type\":\"Date\",\"iso\":\"nope\"}}}", "invalid Date: iso must be an ISO-8601 UTC string"},
      {"{\"n\":{\"__type\":\"Date\",\"iso\":1}}", "invalid Date: iso must be an ISO-8601 UTC string"},
      {"{\"n\":{\"$in\":[{\"__type\":\"Date\"}]}}", "invalid Date: iso must be an ISO-8601 UTC string"},
      {"{\"n\":{\"$exists\":1}}", "$exists on n needs true or false"},
      {"{\"n\":{\"$size\":-1}}", "$size on n needs a non-negative integer"},
      {"{\"n\":{\"$size\":1.0}}", "$size on n needs a non-negative integer"},
      {"{\"n\":{\"$regex\":1}}", "$regex on n needs a string"},
      {"{\"n\":{\"$regex\":\"a\\u0000\"}}", "$regex on n needs a string"},
      {"{\"n\":{\"$regex\":\"a\",\"$options\":1}}", "$options on n must be a string of i, m, x, s"},
      {"{\"n\":{\"$regex\":\"a\",\"$options\":\"q\"}}", "$regex on n: $options must be made of i, m, x, s"},
      {"{\"n\":{\"$regex\":\"(\"}}", "$regex on n: missing closing parenthesis at offset 1"},
      {"{\"createdAt\":true}", "createdAt compares with Dates, ISO strings or milliseconds"},
      {"{\"lm\":\"yesterday\"}", "lm compares with Dates, ISO strings or milliseconds"},
      {"{\"updatedAt\":{\"$in\":[1,\"x\"]}}", "updatedAt compares with Dates, ISO strings or milliseconds"},
      {"{\"createdAt\":{\"$lt\":\"soon\"}}", "createdAt compares with Dates, ISO strings or milliseconds"},
      {"{\"createdAt\":1e300}", "createdAt compares with Dates, ISO strings or milliseconds"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) refused(cases[i][0], NULL, cases[i][1]);
  /* a key with a NUL byte (jansson's text parser refuses one; a built object can hold it) */
  json_t *w = json_object();
  json_object_setn_new(w, "a\0b", 3, json_integer(1));
  char err[128] = "";
  convq_t *q = NULL;
  assert_int_equal(convq_parse(w, NULL, "alice", &q, err, sizeof err), TERN_EINVAL);
  assert_null(q);
  assert_string_equal(err, "key contains a NUL byte");
  json_decref(w);
}

/* {"$and":[{"$or":[ … levels deep … ]}]} */
static char *nested(int levels) {
  json_t *w = json_pack("{s:s}", "name", "x");
  for (int d = 1; d < levels; d++) w = json_pack("{s:[o, {s:s}]}", d % 2 ? "$and" : "$or", w, "m", "bob");
  char *s = json_dumps(w, JSON_COMPACT);
  json_decref(w);
  return s;
}

static char *conditions(int n) {
  json_t *w = json_object();
  for (int i = 0; i < n; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%d", i);
    json_object_set_new(w, k, json_pack("{s:b}", "$exists", 0));
  }
  char *s = json_dumps(w, JSON_COMPACT);
  json_decref(w);
  return s;
}

static char *value_levels(int levels) {
  json_t *v = json_integer(1);
  for (int d = 1; d < levels; d++) v = json_pack("[o]", v);
  json_t *w = json_pack("{s:o}", "n", v);
  char *s = json_dumps(w, JSON_COMPACT);
  json_decref(w);
  return s;
}

static char *pattern(size_t n) {
  char *p = malloc(n + 64);
  memset(p, 'a', n);
  p[n] = 0;
  char *s = malloc(n + 64);
  snprintf(s, n + 64, "{\"name\":{\"$regex\":\"%s\"}}", p);
  free(p);
  return s;
}

static void test_limits(void **state) {
  (void)state;
  char *s = nested(CONVQ_MAX_DEPTH);
  convq_free(ok(s, NULL));
  free(s);
  s = nested(CONVQ_MAX_DEPTH + 1);
  refused(s, NULL, "query nested deeper than 16 levels");
  free(s);
  s = conditions(CONVQ_MAX_TERMS);
  convq_free(ok(s, NULL));
  free(s);
  s = conditions(CONVQ_MAX_TERMS + 1);
  refused(s, NULL, "query has more than 256 conditions");
  free(s);
  /* $and/$or elements count as conditions too */
  json_t *w = json_pack("{s:[]}", "$or");
  for (int i = 0; i < 200; i++) json_array_append_new(json_object_get(w, "$or"), json_pack("{s:i}", "a", i));
  s = json_dumps(w, JSON_COMPACT);
  refused(s, NULL, "query has more than 256 conditions"); /* 200 elements + 200 leaves */
  free(s);
  json_decref(w);
  s = value_levels(CONVQ_MAX_DEPTH);
  convq_free(ok(s, NULL));
  free(s);
  s = value_levels(CONVQ_MAX_DEPTH + 1);
  refused(s, NULL, "n: value nested deeper than 16 levels");
  free(s);
  s = pattern(CONVQ_MAX_PATTERN);
  convq_free(ok(s, NULL));
  free(s);
  s = pattern(CONVQ_MAX_PATTERN + 1);
  refused(s, NULL, "$regex on name: pattern too long");
  free(s);
}

static void test_regex_check(void **state) {
  (void)state;
  char msg[160];
  assert_int_equal(convq_regex_check("^a+$", "imxs", msg, sizeof msg), 0);
  assert_int_equal(convq_regex_check("a", "g", msg, sizeof msg), TERN_EINVAL);
  assert_string_equal(msg, "$options must be made of i, m, x, s");
  assert_int_equal(convq_regex_check("[", NULL, msg, sizeof msg), TERN_EINVAL);
  assert_non_null(strstr(msg, "at offset 1"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_and_empty),
      cmocka_unit_test(test_every_operator),
      cmocka_unit_test(test_lists),
      cmocka_unit_test(test_fields_and_paths),
      cmocka_unit_test(test_operands),
      cmocka_unit_test(test_sort),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_regex_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
