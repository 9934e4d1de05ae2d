/* test_query.c — the parser (store/convq.c) and the SQLite compiler (query.c) together,
 * against a real SQLite database made by the store's migrations.
 *
 * Every case runs the full SELECT the store runs and compares the exact set (or order) of
 * conversation ids, so the tests check SQL semantics, not SQL text. A seeded random generator
 * then throws malformed where-JSON at query_where: each accepted query must prepare with the
 * right parameter count and run to completion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>

#include "buf.h"
#include "convq.h"
#include "err.h"
#include "query.h"
#include "store.h"
#include "store_sqlite.h"
#include "timeutil.h"

/* The schema is the store's own: setup opens a real SQLite store (store_open runs every
 * migration) in a temporary directory, closes it, and queries its file directly. */
static char dbdir[64];

/* id order = array order; times are days of January 2026 (created), updated = created + 1 s.
 * Each row is there to tell something apart: c2 has tr = 1 against c3's true, c3 a text score
 * "10", c4 a boolean score, c6 odd keys, a mixed-type array and an earlier Date, c7 an embedded
 * object, c8 a member "ALICE", a non-ASCII name and labels as a scalar; _tmp:abc (kind 4) shares
 * alice's membership but must never be listed. */
static const struct {
  const char *cid;
  int kind;
  int day;
  const char *lm; /* ISO or NULL */
  const char *members;
  const char *doc;
} fixture[] = {
    {"c1", 1, 1, "2026-03-01T00:00:00.000Z", "alice bob",
     "{\"name\":\"Team Alpha\",\"c\":\"alice\",\"mu\":[\"bob\"],\"tr\":false,\"unique\":true,"
     "\"attr\":{\"topic\":\"work\",\"level\":3,\"tags\":[\"x\",\"y\"]},\"score\":10,"
     "\"labels\":[\"red\",\"blue\"],\"due\":{\"__type\":\"Date\",\"iso\":\"2026-05-01T00:00:00.000Z\"}}"},
    {"c2", 1, 2, "2026-02-01T00:00:00.000Z", "alice carol",
     "{\"name\":\"team beta\",\"c\":\"carol\",\"tr\":1,\"attr\":{\"topic\":\"fun\",\"level\":1},"
     "\"score\":2.5,\"labels\":[\"green\"],\"flag\":null}"},
    {"c3", 2, 3, "2026-03-05T00:00:00.000Z", "",
     "{\"name\":\"Lobby\",\"tr\":true,\"attr\":{\"level\":5,\"nested\":{\"deep\":\"yes\"}},\"score\":\"10\","
     "\"labels\":[]}"},
    {"c4", 3, 4, NULL, "", "{\"name\":\"Notices\",\"sys\":true,\"score\":true}"},
    {"_tmp:abc", 4, 5, "2026-03-09T00:00:00.000Z", "alice bob", "{\"name\":\"Team Temp\",\"score\":10}"},
    {"c6", 1, 6, NULL, "bob dave erin",
     "{\"name\":\"(a+b)*c?\",\"c\":\"bob\",\"labels\":[\"red\",1,true,null,[\"nested\"],{\"k\":\"v\"}],"
     "\"due\":{\"__type\":\"Date\",\"iso\":\"2025-12-31T23:59:59.999Z\"},\"quote\\\"key\":\"q1\","
     "\"it's\":\"apos\",\"back\\\\slash\":7}"},
    {"c7", 1, 7, "2026-01-20T00:00:00.000Z", "alice",
     "{\"name\":\"Solo\",\"attr\":{\"topic\":\"work\",\"tags\":[\"y\",\"z\"]},\"score\":-1,"
     "\"obj\":{\"a\":1,\"b\":[1,2]},\"flag\":false}"},
    {"c8", 1, 8, "2026-02-15T00:00:00.000Z", "ALICE frank",
     "{\"name\":\"Ünïcode Straße\",\"score\":10000000000,\"dueStr\":\"2026-01-01T00:00:00.000Z\","
     "\"labels\":\"red\"}"},
};
#define ALL "c1 c2 c3 c4 c6 c7 c8"

static void sql_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const char *pattern = (const char *)sqlite3_value_text(argv[0]);
  const char *options = (const char *)sqlite3_value_text(argv[1]);
  if (!pattern || sqlite3_value_type(argv[2]) == SQLITE_NULL) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  const char *subject = (const char *)sqlite3_value_text(argv[2]);
  int rc = query_regex_match(pattern, options ? options : "", subject, (size_t)sqlite3_value_bytes(argv[2]));
  if (rc < 0) sqlite3_result_error(ctx, "regexp failed", -1);
  else sqlite3_result_int(ctx, rc);
}

static int setup(void **state) {
  sqlite3 *db;
  snprintf(dbdir, sizeof dbdir, "%s/tern-query-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  assert_non_null(mkdtemp(dbdir));
  char path[128];
  snprintf(path, sizeof path, "%s/store.db", dbdir);
  store_options_t so = {.path = path, .inline_writes = 1};
  store_t *st = NULL;
  assert_int_equal(store_open(&store_sqlite_ops, &so, &st), 0);
  store_close(st);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_create_function(db, "regexp", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_regexp, NULL, NULL),
      SQLITE_OK);
  sqlite3_stmt *ins, *mem;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO conv (id, cid, kind, created_at, updated_at, lm, member_count, doc)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                      -1, &ins, NULL),
                   SQLITE_OK);
  assert_int_equal(
      sqlite3_prepare_v2(db, "INSERT INTO member (conv, client, joined_at) VALUES (?, ?, 0)", -1, &mem, NULL),
      SQLITE_OK);
  for (size_t i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
    int64_t created = 1767225600000LL + (fixture[i].day - 1) * 86400000LL, lm;
    json_error_t jerr;
    json_t *doc = json_loads(fixture[i].doc, 0, &jerr);
    assert_non_null(doc);
    char *text = json_dumps(doc, JSON_COMPACT); /* the store writes docs with jansson too */
    char members[64], *save = NULL;
    int count = 0;
    snprintf(members, sizeof members, "%s", fixture[i].members);
    for (char *m = strtok_r(members, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
      sqlite3_bind_int64(mem, 1, (int64_t)i + 1);
      sqlite3_bind_text(mem, 2, m, -1, SQLITE_TRANSIENT);
      assert_int_equal(sqlite3_step(mem), SQLITE_DONE);
      sqlite3_reset(mem);
      count++;
    }
    sqlite3_bind_int64(ins, 1, (int64_t)i + 1);
    sqlite3_bind_text(ins, 2, fixture[i].cid, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 3, fixture[i].kind);
    sqlite3_bind_int64(ins, 4, created);
    sqlite3_bind_int64(ins, 5, created + 1000);
    if (fixture[i].lm) {
      assert_int_equal(iso_parse(fixture[i].lm, &lm), 0);
      sqlite3_bind_int64(ins, 6, lm);
    } else {
      sqlite3_bind_null(ins, 6);
    }
    sqlite3_bind_int(ins, 7, count);
    sqlite3_bind_text(ins, 8, text, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
    free(text);
    json_decref(doc);
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(mem);
  *state = db;
  return 0;
}

static int teardown(void **state) {
  assert_int_equal(sqlite3_close(*state), SQLITE_OK);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dbdir);
  assert_int_equal(system(cmd), 0);
  return 0;
}

/* What the store does with a where: the shared parser, then the SQLite compiler. */
static int tq_where(query_t *q, json_t *where, const char *self, char *err, size_t errlen) {
  convq_t *cq = NULL;
  int rc = convq_parse(where, NULL, self, &cq, err, errlen);
  if (rc == 0) rc = query_where(q, cq->where, err, errlen);
  convq_free(cq);
  return rc;
}

/* And with a sort (after the where, on the same q). */
static int tq_sort(query_t *q, const char *sort, buf_t *out, char *err, size_t errlen) {
  convq_t *cq = NULL;
  int rc = convq_parse(NULL, sort, "", &cq, err, errlen);
  if (rc == 0) rc = query_sort(q, cq->sort, cq->nsort, out, err, errlen);
  convq_free(cq);
  return rc;
}

static void bind_params(sqlite3_stmt *st, const query_t *q) {
  for (size_t i = 0; i < q->nparams; i++) {
    const query_param_t *p = &q->params[i];
    int rc = p->type == QP_TEXT  ? sqlite3_bind_text(st, (int)i + 1, p->s, -1, SQLITE_STATIC)
             : p->type == QP_INT ? sqlite3_bind_int64(st, (int)i + 1, p->i)
                                 : sqlite3_bind_double(st, (int)i + 1, p->d);
    assert_int_equal(rc, SQLITE_OK);
  }
}

/* The store's query: where + sort + paging. Appends the cids in result order to out (space
 * separated). Returns query_where/query_sort's code; a 0 means the SQL prepared and ran. */
static int run_query(sqlite3 *db, json_t *where, const char *sort, int limit, int offset, buf_t *out, char *err,
                     size_t errlen) {
  query_t q;
  buf_t order = BUF_INIT, sql = BUF_INIT;
  query_init(&q);
  int rc = tq_where(&q, where, "alice", err, errlen);
  if (rc == 0) rc = tq_sort(&q, sort, &order, err, errlen);
  if (rc == 0) {
    sqlite3_stmt *st = NULL;
    buf_printf(&sql, "SELECT c.cid FROM conv c WHERE %s ORDER BY %s LIMIT ? OFFSET ?", buf_cstr(&q.sql),
               buf_cstr(&order));
    if (sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK)
      fail_msg("prepare failed: %s\nSQL: %s", sqlite3_errmsg(db), buf_cstr(&sql));
    assert_int_equal(sqlite3_bind_parameter_count(st), (int)q.nparams + 2);
    bind_params(st, &q);
    sqlite3_bind_int(st, (int)q.nparams + 1, limit);
    sqlite3_bind_int(st, (int)q.nparams + 2, offset);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
      if (out->len) buf_append_str(out, " ");
      buf_append_str(out, (const char *)sqlite3_column_text(st, 0));
    }
    if (step != SQLITE_DONE) fail_msg("step failed: %s\nSQL: %s", sqlite3_errmsg(db), buf_cstr(&sql));
    sqlite3_finalize(st);
  }
  buf_cstr(out);
  query_free(&q);
  buf_free(&order);
  buf_free(&sql);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorts a space-separated list in place so sets compare as strings. */
static void sort_words(char *s) {
  char *words[64], *save = NULL, *copy = strdup(s);
  size_t n = 0;
  for (char *w = strtok_r(copy, " ", &save); w && n < 64; w = strtok_r(NULL, " ", &save)) words[n++] = w;
  qsort(words, n, sizeof *words, cmp_str);
  s[0] = 0;
  for (size_t i = 0; i < n; i++) strcat(strcat(s, i ? " " : ""), words[i]);
  free(copy);
}

static json_t *parse(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  if (!v) fail_msg("bad test JSON %s: %s", text, jerr.text);
  return v;
}

/* where (JSON text) must select exactly `expected` (space-separated cids, any order). */
static void expect_set(sqlite3 *db, const char *where_text, const char *expected) {
  json_t *where = parse(where_text);
  buf_t out = BUF_INIT;
  char err[256], want[256];
  int rc = run_query(db, where, NULL, 100, 0, &out, err, sizeof err);
  if (rc) fail_msg("tq_where(%s) = %d: %s", where_text, rc, err);
  sort_words(buf_cstr(&out));
  snprintf(want, sizeof want, "%s", expected);
  sort_words(want);
  if (strcmp(buf_cstr(&out), want) != 0)
    fail_msg("where %s\n  got:  [%s]\n  want: [%s]", where_text, buf_cstr(&out), want);
  buf_free(&out);
  json_decref(where);
}

/* where + sort + paging must return exactly `expected` in this order. */
static void expect_order(sqlite3 *db, const char *where_text, const char *sort, int limit, int offset,
                         const char *expected) {
  json_t *where = parse(where_text);
  buf_t out = BUF_INIT;
  char err[256];
  int rc = run_query(db, where, sort, limit, offset, &out, err, sizeof err);
  if (rc) fail_msg("sort %s: %d: %s", sort ? sort : "(null)", rc, err);
  if (strcmp(buf_cstr(&out), expected) != 0)
    fail_msg("sort %s\n  got:  [%s]\n  want: [%s]", sort ? sort : "(null)", buf_cstr(&out), expected);
  buf_free(&out);
  json_decref(where);
}

static char last_err[256]; /* the reason of the last expected rejection */

/* query_where must refuse the where with TERN_EINVAL and say why. */
static void expect_reject_json(json_t *where, const char *label) {
  query_t q;
  char *err = last_err;
  size_t errlen = sizeof last_err;
  err[0] = 0;
  query_init(&q);
  int rc = tq_where(&q, where, "alice", err, errlen);
  if (rc != TERN_EINVAL)
    fail_msg("%s: expected TERN_EINVAL, got %d (SQL %s)", label, rc, q.sql.data ? buf_cstr(&q.sql) : "");
  if (!err[0]) fail_msg("%s: empty error message", label);
  assert_int_equal(q.nparams, 0); /* left empty on error */
  query_free(&q);
}

static void expect_reject(const char *where_text) {
  json_t *where = parse(where_text);
  expect_reject_json(where, where_text);
  json_decref(where);
}

/* --- the cases ------------------------------------------------------------------------------ */

static void test_default_where(void **state) {
  sqlite3 *db = *state;
  /* m contains self; the temporary conversation _tmp:abc has alice too but is never listed */
  expect_set(db, "{}", "c1 c2 c7");
  expect_set(db, "null", "c1 c2 c7");
  buf_t out = BUF_INIT;
  char err[64];
  assert_int_equal(run_query(db, NULL, NULL, 100, 0, &out, err, sizeof err), 0);
  sort_words(buf_cstr(&out));
  assert_string_equal(buf_cstr(&out), "c1 c2 c7");
  buf_free(&out);
}

static void test_object_id(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"objectId\":\"c2\"}", "c2");
  expect_set(db, "{\"objectId\":\"_tmp:abc\"}", "");
  expect_set(db, "{\"objectId\":{\"$eq\":\"c3\"}}", "c3");
  expect_set(db, "{\"objectId\":5}", "");
  expect_set(db, "{\"objectId\":{\"$in\":[\"c1\",\"c3\",\"nope\",5]}}", "c1 c3");
  expect_set(db, "{\"objectId\":{\"$in\":[]}}", "");
  expect_set(db, "{\"objectId\":{\"$nin\":[\"c1\",\"c3\"]}}", "c2 c4 c6 c7 c8");
  expect_set(db, "{\"objectId\":{\"$ne\":\"c1\"}}", "c2 c3 c4 c6 c7 c8");
  expect_set(db, "{\"objectId\":{\"$gt\":\"c6\"}}", "c7 c8");
  expect_set(db, "{\"objectId\":{\"$regex\":\"^c[12]$\"}}", "c1 c2");
  expect_set(db, "{\"objectId\":{\"$exists\":true}}", ALL);
  expect_set(db, "{\"objectId\":{\"$all\":[\"c4\",\"c4\"]}}", "c4");
  expect_set(db, "{\"objectId\":{\"$all\":[\"c4\",\"c6\"]}}", "");
  expect_set(db, "{\"objectId\":{\"$all\":[\"c4\",4]}}", "");
  expect_set(db, "{\"objectId\":{\"$nin\":[]}}", ALL);
  expect_set(db, "{\"objectId\":{\"$size\":1}}", "");
}

static void test_times(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"createdAt\":{\"$gte\":{\"__type\":\"Date\",\"iso\":\"2026-01-04T00:00:00.000Z\"}}}",
             "c4 c6 c7 c8");
  expect_set(db, "{\"createdAt\":{\"$lt\":\"2026-01-03T00:00:00Z\"}}", "c1 c2"); /* ISO string, no ms */
  expect_set(db, "{\"createdAt\":{\"__type\":\"Date\",\"iso\":\"2026-01-02T00:00:00.000Z\"}}", "c2");
  expect_set(db, "{\"createdAt\":{\"$gt\":1767657600000}}", "c7 c8"); /* ms number: after Jan 6 */
  expect_set(db, "{\"createdAt\":{\"$gt\":1767225600000,\"$lte\":1767657600000.0}}", "c2 c3 c4 c6");
  expect_set(db, "{\"updatedAt\":{\"$lte\":{\"__type\":\"Date\",\"iso\":\"2026-01-02T00:00:01.000Z\"}}}", "c1 c2");
  expect_set(db, "{\"lm\":{\"$gt\":{\"__type\":\"Date\",\"iso\":\"2026-02-10T00:00:00.000Z\"}}}", "c1 c3 c8");
  expect_set(db, "{\"lm\":{\"$exists\":false}}", "c4 c6");
  expect_set(db, "{\"lm\":null}", "c4 c6");
  /* conversations without messages match $ne / $nin, as a missing field does */
  expect_set(db, "{\"lm\":{\"$ne\":{\"__type\":\"Date\",\"iso\":\"2026-03-01T00:00:00.000Z\"}}}", "c2 c3 c4 c6 c7 c8");
  expect_set(db,
             "{\"lm\":{\"$nin\":[{\"__type\":\"Date\",\"iso\":\"2026-03-01T00:00:00.000Z\"},"
             "\"2026-02-01T00:00:00.000Z\"]}}",
             "c3 c4 c6 c7 c8");
  expect_set(db, "{\"lm\":{\"$in\":[{\"__type\":\"Date\",\"iso\":\"2026-03-01T00:00:00.000Z\"},null]}}", "c1 c4 c6");
  expect_set(db, "{\"createdAt\":{\"$exists\":true}}", ALL);
  expect_set(db, "{\"createdAt\":{\"$regex\":\"2026\"}}", "");                          /* times are not text */
  expect_set(db, "{\"lm\":{\"$all\":[\"2026-03-01T00:00:00Z\",1772323200000]}}", "c1"); /* same instant twice */
  expect_set(db, "{\"lm\":{\"$all\":[null]}}", "c4 c6");
  expect_set(db, "{\"updatedAt\":{\"$in\":[]}}", "");
}

static void test_members(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"m\":\"bob\"}", "c1 c6");
  expect_set(db, "{\"m\":{\"$eq\":\"carol\"}}", "c2");
  expect_set(db, "{\"m\":\"ALICE\"}", "c8"); /* client ids are case-sensitive */
  expect_set(db, "{\"m\":{\"$all\":[\"alice\",\"bob\"]}}", "c1");
  expect_set(db, "{\"m\":{\"$all\":[\"alice\",\"bob\",\"alice\"]}}", "c1");
  expect_set(db, "{\"m\":{\"$all\":[\"alice\",7]}}", "");
  expect_set(db, "{\"m\":{\"$all\":[]}}", "");
  expect_set(db, "{\"m\":{\"$in\":[\"carol\",\"dave\",null]}}", "c2 c6");
  expect_set(db, "{\"m\":{\"$nin\":[\"alice\",\"bob\"]}}", "c3 c4 c8");
  expect_set(db, "{\"m\":{\"$ne\":\"alice\"}}", "c3 c4 c6 c8");
  expect_set(db, "{\"m\":{\"$size\":3}}", "c6");
  expect_set(db, "{\"m\":{\"$size\":2,\"$all\":[\"alice\",\"bob\"]}}", "c1"); /* JS withMembers */
  expect_set(db, "{\"m\":{\"$exists\":true}}", "c1 c2 c6 c7 c8");
  expect_set(db, "{\"m\":{\"$exists\":false}}", "c3 c4");
  expect_set(db, "{\"m\":{\"$regex\":\"^alice$\",\"$options\":\"i\"}}", "c1 c2 c7 c8");
  expect_set(db, "{\"m\":{\"$regex\":\"^alice$\"}}", "c1 c2 c7");
  expect_set(db, "{\"m\":[\"bob\",\"alice\"]}", "c1"); /* equality with an array: exactly that set */
  expect_set(db, "{\"m\":{\"$ne\":[\"bob\",\"alice\"]}}", "c2 c3 c4 c6 c7 c8");
  expect_set(db, "{\"m\":[]}", "c3 c4");
  expect_set(db, "{\"m\":{\"$gt\":\"e\"}}", "c6 c8");
  expect_set(db, "{\"m\":1}", "");
  expect_set(db, "{\"m\":{\"$in\":[]}}", "");
  expect_set(db, "{\"m\":{\"$nin\":[]}}", ALL);
  expect_set(db, "{\"m\":{\"$ne\":5}}", ALL);
  expect_set(db, "{\"m\":{\"$regex\":\"^(dave|frank)$\",\"$ne\":\"erin\"}}", "c8");
}

static void test_doc_equality(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"name\":\"Lobby\"}", "c3");
  expect_set(db, "{\"name\":\"lobby\"}", "");
  expect_set(db, "{\"name\":\"Ünïcode Straße\"}", "c8");
  /* type-exact: true is not 1, 10 is not "10" */
  expect_set(db, "{\"tr\":true}", "c3");
  expect_set(db, "{\"tr\":1}", "c2");
  expect_set(db, "{\"tr\":false}", "c1");
  expect_set(db, "{\"tr\":{\"$eq\":true}}", "c3");
  expect_set(db, "{\"score\":10}", "c1");
  expect_set(db, "{\"score\":10.0}", "c1"); /* numbers compare as numbers */
  expect_set(db, "{\"score\":\"10\"}", "c3");
  expect_set(db, "{\"score\":true}", "c4");
  expect_set(db, "{\"score\":1}", "");
  expect_set(db, "{\"flag\":null}", "c2"); /* stored null, not false, not missing */
  expect_set(db, "{\"attr.topic\":\"work\"}", "c1 c7");
  expect_set(db, "{\"attr.nested.deep\":\"yes\"}", "c3");
  expect_set(db, "{\"attr.nested\":{\"deep\":\"yes\"}}", "c3");
  expect_set(db, "{\"obj\":{\"a\":1,\"b\":[1,2]}}", "c7");
  expect_set(db, "{\"obj\":{\"b\":[1,2],\"a\":1}}", ""); /* embedded documents are order-sensitive */
  expect_set(db, "{\"obj.b\":2}", "c7");
  expect_set(db, "{\"mu\":\"bob\"}", "c1");
  /* arrays: equality means contains, element types stay exact */
  expect_set(db, "{\"attr.tags\":\"y\"}", "c1 c7");
  expect_set(db, "{\"labels\":\"red\"}", "c1 c6 c8"); /* c8 holds the scalar "red" */
  expect_set(db, "{\"labels\":1}", "c6");
  expect_set(db, "{\"labels\":true}", "c6");
  expect_set(db, "{\"labels\":null}", "c6");
  expect_set(db, "{\"labels\":[\"nested\"]}", "c6");
  expect_set(db, "{\"labels\":{\"k\":\"v\"}}", "c6");
  expect_set(db, "{\"labels\":[\"green\"]}", "c2"); /* whole-array equality */
  expect_set(db, "{\"labels\":[]}", "c3");
  expect_set(db, "{\"nothere\":null}", "");
}

static void test_doc_operators(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"tr\":{\"$ne\":true}}", "c1 c2 c4 c6 c7 c8");
  expect_set(db, "{\"tr\":{\"$exists\":true}}", "c1 c2 c3");
  expect_set(db, "{\"flag\":{\"$exists\":true}}", "c2 c7");
  expect_set(db, "{\"flag\":{\"$exists\":false}}", "c1 c3 c4 c6 c8");
  expect_set(db, "{\"score\":{\"$gt\":2}}", "c1 c2 c8");
  expect_set(db, "{\"score\":{\"$lte\":2.5}}", "c2 c7");
  expect_set(db, "{\"score\":{\"$lt\":0}}", "c7");
  expect_set(db, "{\"score\":{\"$gte\":\"1\"}}", "c3"); /* strings with strings only */
  expect_set(db, "{\"score\":{\"$gt\":1,\"$lt\":20}}", "c1 c2");
  expect_set(db, "{\"score\":{\"$in\":[10,\"10\",true]}}", "c1 c3 c4");
  expect_set(db, "{\"score\":{\"$nin\":[10,-1]}}", "c2 c3 c4 c6 c8"); /* c6: missing matches */
  expect_set(db, "{\"attr.level\":{\"$gte\":3}}", "c1 c3");
  expect_set(db, "{\"attr.tags\":{\"$all\":[\"y\",\"z\"]}}", "c7");
  expect_set(db, "{\"attr.tags\":{\"$all\":[\"y\"]}}", "c1 c7");
  expect_set(db, "{\"attr.tags\":{\"$all\":[]}}", "");
  expect_set(db, "{\"name\":{\"$all\":[\"Solo\"]}}", "c7");
  expect_set(db, "{\"attr.tags\":{\"$size\":2}}", "c1 c7");
  expect_set(db, "{\"labels\":{\"$size\":0}}", "c3");
  expect_set(db, "{\"name\":{\"$size\":4}}", ""); /* not an array */
  expect_set(db, "{\"labels\":{\"$in\":[\"green\",\"blue\"]}}", "c1 c2");
  expect_set(db, "{\"labels\":{\"$nin\":[\"red\"]}}", "c2 c3 c4 c7");
  expect_set(db, "{\"labels\":{\"$ne\":\"red\"}}", "c2 c3 c4 c7");
  expect_set(db, "{\"labels\":{\"$gt\":0}}", "c6"); /* any element */
  expect_set(db, "{\"name\":{\"$gt\":\"S\"}}", "c1 c2 c7 c8");
  expect_set(db, "{\"name\":{\"$regex\":\"^T\",\"$ne\":\"Team Alpha\"}}", "");
  expect_set(db, "{\"labels\":{\"$in\":[]}}", "");
  expect_set(db, "{\"labels\":{\"$nin\":[]}}", ALL);
  expect_set(db, "{\"attr\":{\"$exists\":true},\"attr.topic\":{\"$exists\":false}}", "c3");
}

static void test_dates_on_doc(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"due\":{\"$lt\":{\"__type\":\"Date\",\"iso\":\"2026-01-01T00:00:00.000Z\"}}}", "c6");
  expect_set(db, "{\"due\":{\"$gte\":{\"__type\":\"Date\",\"iso\":\"2026-01-01T00:00:00Z\"}}}", "c1");
  expect_set(db, "{\"due\":{\"__type\":\"Date\",\"iso\":\"2026-05-01T00:00:00Z\"}}", "c1"); /* normalised */
  expect_set(db, "{\"due\":{\"$in\":[{\"__type\":\"Date\",\"iso\":\"2025-12-31T23:59:59.999Z\"}]}}", "c6");
  expect_set(db, "{\"due\":{\"$ne\":{\"__type\":\"Date\",\"iso\":\"2026-05-01T00:00:00.000Z\"}}}", "c2 c3 c4 c6 c7 c8");
  expect_set(db, "{\"due\":{\"$exists\":true}}", "c1 c6");
  expect_set(db, "{\"dueStr\":{\"__type\":\"Date\",\"iso\":\"2026-01-01T00:00:00.000Z\"}}",
             ""); /* a string is no Date */
  expect_set(db, "{\"dueStr\":{\"$gt\":{\"__type\":\"Date\",\"iso\":\"2000-01-01T00:00:00.000Z\"}}}", "");
  expect_set(db, "{\"dueStr\":\"2026-01-01T00:00:00.000Z\"}", "c8");
}

static void test_regex(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"name\":{\"$regex\":\"^team\",\"$options\":\"i\"}}", "c1 c2");
  expect_set(db, "{\"name\":{\"$regex\":\"^team\"}}", "c2");
  expect_set(db, "{\"name\":{\"$regex\":\"\\\\Q(a+b)*c?\\\\E\"}}", "c6"); /* JS-quoted literal */
  expect_set(db, "{\"name\":{\"$regex\":\"^\\\\Q(a+b)*\\\\E$\"}}", "");
  expect_set(db, "{\"name\":{\"$regex\":\"^ünïcode str\",\"$options\":\"i\"}}", "c8"); /* UTF-8 caseless */
  expect_set(db, "{\"name\":{\"$regex\":\"^ t e a m  # comment\",\"$options\":\"xi\"}}", "c1 c2");
  expect_set(db, "{\"labels\":{\"$regex\":\"^gr\"}}", "c2"); /* any text element */
  expect_set(db, "{\"score\":{\"$regex\":\"1\"}}", "c3");    /* only text values: not 10, not 1e10 */
  expect_set(db, "{\"attr.topic\":{\"$regex\":\"o\",\"$options\":\"\"}}", "c1 c7");

  assert_int_equal(query_regex_match("^a.c$", "s", "a\nc", 3), 1);
  assert_int_equal(query_regex_match("^a.c$", "", "a\nc", 3), 0);
  assert_int_equal(query_regex_match("^c$", "m", "a\nc", 3), 1);
  assert_int_equal(query_regex_match("\\Q.*\\E", "", "x.*y", 4), 1);
  assert_int_equal(query_regex_match("\\Q.*\\E", "", "xxy", 3), 0);
  assert_int_equal(query_regex_match("b", "", "a\0b", 3), 1); /* length, not NUL, ends the subject */
  assert_int_equal(query_regex_match("a", "g", "a", 1), TERN_EINVAL);
  assert_int_equal(query_regex_match("(", "", "a", 1), TERN_EINVAL);
  assert_int_equal(query_regex_match("x", "", "\xff\xfex", 3), 1); /* invalid UTF-8 subject is safe */
  char subject[64];
  memset(subject, 'a', 40);
  strcpy(subject + 40, "!");
  assert_int_equal(query_regex_match("^(a|aa)+$", "", subject, strlen(subject)), TERN_E2BIG);
  for (int i = 0; i < 40; i++) { /* more patterns than cache slots: eviction must stay correct */
    char pat[16];
    snprintf(pat, sizeof pat, "^a{%d}", i % 20);
    assert_int_equal(query_regex_match(pat, i % 2 ? "i" : "", subject, 40), 1);
  }
}

static void *regex_thread(void *arg) {
  for (int i = 0; i < 200; i++) {
    char pat[32], subj[32];
    snprintf(pat, sizeof pat, "^t%d-%d$", (int)(intptr_t)arg, i % 24);
    snprintf(subj, sizeof subj, "T%d-%d", (int)(intptr_t)arg, i % 24);
    if (query_regex_match(pat, "i", subj, strlen(subj)) != 1) return (void *)1;
    if (query_regex_match(pat, "", subj, strlen(subj)) != 0) return (void *)1;
  }
  return NULL;
}

static void test_regex_threads(void **state) {
  pthread_t t[4];
  for (intptr_t i = 0; i < 4; i++) assert_int_equal(pthread_create(&t[i], NULL, regex_thread, (void *)i), 0);
  for (int i = 0; i < 4; i++) {
    void *res;
    assert_int_equal(pthread_join(t[i], &res), 0);
    assert_null(res);
  }
}

static void test_and_or(void **state) {
  sqlite3 *db = *state;
  expect_set(db, "{\"$or\":[{\"name\":\"Lobby\"},{\"m\":\"dave\"}]}", "c3 c6");
  expect_set(db, "{\"$and\":[{\"m\":\"alice\"},{\"$or\":[{\"attr.topic\":\"work\"},{\"score\":2.5}]}]}", "c1 c2 c7");
  expect_set(db, "{\"m\":\"alice\",\"attr.topic\":\"work\"}", "c1 c7");
  expect_set(db, "{\"$or\":[{},{\"name\":\"x\"}]}", ALL);
  expect_set(db, "{\"$or\":[{\"tr\":true},{\"sys\":true}],\"name\":{\"$ne\":\"Lobby\"}}", "c4");
  expect_set(db, "{\"$and\":[{\"score\":{\"$gt\":0}},{\"score\":{\"$lt\":5}}]}", "c2");
  /* 16 levels of nesting (the limit) still build, prepare and run */
  json_t *w = parse("{\"name\":\"Lobby\"}");
  for (int depth = 1; depth < 16; depth++)
    w = depth % 2 ? json_pack("{s:[o, {}]}", "$and", w)
                  : json_pack("{s:[o, {s:{s:[s]}}]}", "$or", w, "labels", "$all", "nope");
  buf_t out = BUF_INIT;
  char err[128];
  assert_int_equal(run_query(db, w, "attr.level,-name", 100, 0, &out, err, sizeof err), 0);
  assert_string_equal(buf_cstr(&out), "c3");
  buf_free(&out);
  /* the deepest SQL we can generate: every level nests last, behind other terms, around the
   * most deeply parenthesised leaf ($all on a doc field) — still within SQLite's parser stack */
  json_t *worst = parse("{\"attr.tags\":{\"$all\":[\"y\",\"z\"],\"$size\":2,\"$regex\":\"z\"}}");
  for (int depth = 1; depth < 16; depth++)
    worst = json_pack("{s:{s:b},s:{s:i},s:[{s:{s:[i]}},{s:b},o]}", "lm", "$exists", 1, "score", "$lt", 99,
                      depth % 2 ? "$or" : "$and", "labels", "$nin", 1, "tr", 0, worst);
  assert_int_equal(run_query(db, worst, "attr.level,-name", 100, 0, &out, err, sizeof err), 0);
  assert_string_equal(buf_cstr(&out), "c7 c2 c1"); /* lm and score < 99; the outer $or holds via labels */
  buf_free(&out);
  json_decref(worst);
  /* and one more level is refused */
  w = json_pack("{s:[o]}", "$or", w);
  expect_reject_json(w, "depth 17");
  json_decref(w);
}

static void test_sort(void **state) {
  sqlite3 *db = *state;
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "-lm", 100, 0, "c3 c1 c8 c2 c7 c6 c4");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", NULL, 100, 0, "c3 c1 c8 c2 c7 c6 c4");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", " ", 100, 0, "c3 c1 c8 c2 c7 c6 c4");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "lm", 100, 0, "c6 c4 c7 c2 c8 c1 c3");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "name", 100, 0, "c6 c3 c4 c7 c1 c2 c8");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "name", 2, 2, "c4 c7"); /* paging */
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "attr.level,-createdAt", 100, 0, "c8 c7 c6 c4 c2 c1 c3");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", " attr.level , -createdAt ", 100, 0, "c8 c7 c6 c4 c2 c1 c3");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "-score", 100, 0, "c3 c8 c1 c2 c4 c7 c6");
  expect_order(db, "{\"objectId\":{\"$exists\":true}}", "tr,-objectId", 100, 0, "c8 c7 c6 c4 c1 c3 c2");
  expect_order(db, "{}", "-createdAt", 100, 0, "c7 c2 c1");
  expect_order(db, "{\"m\":\"alice\"}", "-updatedAt", 100, 0, "c7 c2 c1");

  /* sort placeholders come after the where placeholders, and bad sorts change nothing */
  query_t q;
  buf_t order = BUF_INIT;
  char err[128];
  json_t *w = parse("{\"name\":\"x\"}");
  query_init(&q);
  assert_int_equal(tq_where(&q, w, "alice", err, sizeof err), 0);
  size_t n = q.nparams;
  const char *bad[] = {"m", "a,,b", "-", "name,", "$x", "a..b", "-m"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    assert_int_equal(tq_sort(&q, bad[i], &order, err, sizeof err), TERN_EINVAL);
    assert_true(err[0] != 0);
    assert_int_equal(q.nparams, n);
    assert_int_equal(order.len, 0);
  }
  assert_int_equal(tq_sort(&q, "attr.level,-lm", &order, err, sizeof err), 0);
  assert_int_equal(q.nparams, n + 1);
  assert_string_equal(q.params[n].s, "$.\"attr\".\"level\"");
  assert_string_equal(buf_cstr(&order),
                      "json_extract((CASE WHEN json_valid(c.doc) THEN c.doc END), ?) ASC, " QUERY_LM_SQL
                      " DESC, c.id DESC");
  query_free(&q);
  buf_free(&order);
  json_decref(w);
}

static void test_odd_keys(void **state) {
  sqlite3 *db = *state;
  /* keys with quotes and backslashes address the right field and stay parameters */
  expect_set(db, "{\"quote\\\"key\":\"q1\"}", "c6");
  expect_set(db, "{\"it's\":\"apos\"}", "c6");
  expect_set(db, "{\"back\\\\slash\":7}", "c6");
  expect_set(db, "{\"x') OR 1=1 --\":\"y\"}", "");
  expect_set(db, "{\"name\\\" OR 1=1 --\":{\"$exists\":false}}", ALL);
  expect_set(db, "{\"a\\\"]'); DROP TABLE conv; --\":1}", "");
  expect_set(db, "{\"name\":\"x'); DROP TABLE conv; --\"}", "");
  expect_set(db, "{\"weird[0]\":{\"$exists\":false}}", ALL);
  /* no key text ever reaches the SQL */
  query_t q;
  char err[128];
  json_t *w = parse("{\"a'\\\"; DROP TABLE conv; --\":1, \"b\":{\"$regex\":\"'; --\"}}");
  query_init(&q);
  assert_int_equal(tq_where(&q, w, "al'ice", err, sizeof err), 0);
  assert_null(strstr(buf_cstr(&q.sql), "DROP"));
  assert_null(strchr(buf_cstr(&q.sql), '"'));
  assert_null(strstr(buf_cstr(&q.sql), "--"));
  query_free(&q);
  json_decref(w);
  assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM conv", NULL, NULL, NULL), SQLITE_OK);
}

static void test_rejections(void **state) {
  const char *bad[] = {
      "{\"name\":{\"$foo\":1}}",
      "{\"$nor\":[{\"a\":1}]}",
      "{\"$where\":\"1\"}",
      "{\"name\":{\"$select\":{}}}",
      "{\"objectId\":{\"$in\":\"c1\"}}",
      "{\"m\":{\"$nin\":{}}}",
      "{\"a\":{\"$all\":5}}",
      "{\"name\":{\"$regex\":\"a\",\"$options\":\"g\"}}",
      "{\"name\":{\"$regex\":\"a\",\"$options\":1}}",
      "{\"name\":{\"$regex\":\"(\"}}",
      "{\"name\":{\"$regex\":5}}",
      "{\"name\":{\"$options\":\"i\"}}",
      "{\"a..b\":1}",
      "{\".a\":1}",
      "{\"a.\":1}",
      "{\"\":1}",
      "{\"a\\\"[0]\":1}",
      "{\"$or\":[]}",
      "{\"$and\":{}}",
      "{\"$or\":[1]}",
      "{\"score\":{\"$gt\":true}}",
      "{\"score\":{\"$lt\":null}}",
      "{\"score\":{\"$lt\":[1]}}",
      "{\"m\":{\"$size\":-1}}",
      "{\"m\":{\"$size\":\"2\"}}",
      "{\"name\":{\"$size\":1.5}}",
      "{\"name\":{\"$exists\":1}}",
      "{\"createdAt\":\"yesterday\"}",
      "{\"createdAt\":true}",
      "{\"lm\":{\"$in\":[{}]}}",
      "{\"createdAt\":{\"$gt\":{\"__type\":\"Date\"}}}",
      "{\"due\":{\"__type\":\"Date\",\"iso\":\"garbage\"}}",
      "{\"due\":{\"$in\":[{\"__type\":\"Date\",\"iso\":5}]}}",
      "{\"name\":{\"$gt\":1,\"x\":2}}",
      "[]",
      "\"str\"",
      "5",
      "{\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_reject(bad[i]);

  expect_reject("{\"name\":{\"$gt\":\"a\\u0000\"}}"); /* would be bound truncated */
  expect_reject("{\"name\":{\"$regex\":\"a\\u0000\"}}");
  expect_set(*state, "{\"name\":{\"$in\":[\"So\\u0000lo\",\"Solo\"]}}", "c7"); /* lists carry NULs safely */

  /* a NUL inside a key */
  json_t *w = json_object();
  json_object_setn_new(w, "a\0b", 3, json_integer(1));
  expect_reject_json(w, "NUL in key");
  json_decref(w);

  /* 999 ids (the JS bulk lookup) travel as one JSON parameter */
  json_t *ids = json_array();
  for (int i = 0; i < 999; i++) json_array_append_new(ids, json_sprintf("id%d", i));
  json_array_append_new(ids, json_string("c4"));
  w = json_pack("{s:{s:o}}", "objectId", "$in", ids);
  buf_t out = BUF_INIT;
  char err[128];
  assert_int_equal(run_query(*state, w, "-lm", 1000, 0, &out, err, sizeof err), 0);
  assert_string_equal(buf_cstr(&out), "c4");
  json_decref(w);
  buf_free(&out);

  /* 250 doc equalities take 4 parameters each: 1000 fit, one more condition does not */
  w = json_object();
  for (int i = 0; i < 250; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    json_object_set_new(w, key, json_string("v"));
  }
  assert_int_equal(run_query(*state, w, NULL, 10, 0, &out, err, sizeof err), 0);
  json_object_set_new(w, "one_more", json_integer(1));
  expect_reject_json(w, "1001+ parameters");
  assert_non_null(strstr(last_err, "parameters"));
  json_decref(w);
  buf_free(&out);

  /* too many conditions for SQLite's expression depth */
  w = json_object();
  for (int i = 0; i < 300; i++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", i);
    json_object_set_new(w, key, json_pack("{s:b}", "$exists", 1));
  }
  expect_reject_json(w, "300 conditions");
  assert_non_null(strstr(last_err, "conditions"));
  json_decref(w);
}

/* --- fuzz: random where values never crash, and whatever is accepted prepares and runs ------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11) % n;
}
#define PICK(arr) (arr)[rnd(sizeof(arr) / sizeof((arr)[0]))]

static const char *fuzz_fields[] = {"m",      "objectId", "createdAt", "updatedAt", "lm",   "name", "attr.topic",
                                    "labels", "score",    "tr",        "a..b",      "",     "$",    "q\"k",
                                    "x[0]",   "it's",     "__type",    "iso",       "$and", "$or",  "$bogus"};
static const char *fuzz_ops[] = {"$in", "$nin", "$all",  "$regex",  "$options", "$gt",  "$gte",  "$lt",    "$lte",
                                 "$ne", "$eq",  "$size", "$exists", "$bogus",   "$and", "plain", "__type", "iso"};
static const char *fuzz_strings[] = {"(",     "\\Q(a+b\\E", "2026-01-01T00:00:00Z",
                                     "imxs",  "g",          "",
                                     "alice", "Date",       "'; DROP TABLE conv; --",
                                     "\"",    "\\",         "ü",
                                     "^a.*$", "[",          "$"};

static json_t *gen_value(int depth) {
  switch (rnd(depth > 20 ? 6 : 10)) {
  case 0: {
    static const json_int_t ints[] = {0, 1, -1, 2, INT64_MAX, INT64_MIN, 1767225600000LL, 1000000};
    return json_integer(PICK(ints));
  }
  case 1: {
    static const double reals[] = {1e308, -1e308, 5e-324, 0.5, 2.0, 1e17, -9.5e15};
    return json_real(PICK(reals));
  }
  case 2: return json_string(PICK(fuzz_strings));
  case 3: return json_boolean(rnd(2));
  case 4: return json_null();
  case 5: return json_pack("{s:s,s:s}", "__type", "Date", "iso", rnd(2) ? "2026-01-01T00:00:00.000Z" : "nope");
  case 6:
  case 7: {
    json_t *o = json_object();
    for (uint32_t i = rnd(4); i > 0; i--)
      json_object_set_new(o, rnd(2) ? PICK(fuzz_ops) : PICK(fuzz_fields), gen_value(depth + 1));
    return o;
  }
  default: {
    json_t *a = json_array();
    for (uint32_t i = rnd(5); i > 0; i--) json_array_append_new(a, gen_value(depth + 1));
    return a;
  }
  }
}

static json_t *gen_where(int depth) {
  if (rnd(8) == 0) return gen_value(depth);
  json_t *w = json_object();
  for (uint32_t i = rnd(4); i > 0; i--) {
    const char *key = PICK(fuzz_fields);
    json_t *val;
    if ((!strcmp(key, "$and") || !strcmp(key, "$or")) && rnd(4)) {
      val = json_array();
      for (uint32_t j = rnd(3) + (depth > 18 ? 0 : 1); j > 0; j--) json_array_append_new(val, gen_where(depth + 1));
    } else if (rnd(2)) {
      val = json_object();
      for (uint32_t j = rnd(3) + 1; j > 0; j--) json_object_set_new(val, PICK(fuzz_ops), gen_value(depth + 1));
    } else {
      val = gen_value(depth + 1);
    }
    json_object_set_new(w, key, val);
  }
  return w;
}

/* Valid conditions only, nested down to `target` levels with shallow side branches: exercises
 * the nesting plan at every depth up to the limit. */
static json_t *gen_valid_where(int depth, int target) {
  static const char *leaves[] = {"{\"a\":1}",
                                 "{\"b\":{\"$ne\":\"x\"}}",
                                 "{\"attr.tags\":{\"$all\":[\"y\",\"z\"],\"$size\":2}}",
                                 "{\"score\":{\"$gt\":1,\"$lt\":99}}",
                                 "{\"name\":{\"$regex\":\"o\",\"$options\":\"i\"}}",
                                 "{\"m\":[\"alice\",\"bob\"]}",
                                 "{\"m\":{\"$ne\":[\"x\",1]}}",
                                 "{\"m\":{\"$nin\":[\"bob\"]}}",
                                 "{\"labels\":{\"$nin\":[1,\"red\"]}}",
                                 "{\"due\":{\"$lt\":{\"__type\":\"Date\",\"iso\":\"2026-01-01T00:00:00Z\"}}}",
                                 "{\"lm\":{\"$nin\":[null]}}",
                                 "{\"objectId\":{\"$in\":[\"c1\",\"c7\"]}}",
                                 "{\"tr\":false}"};
  json_t *w = json_object();
  if (depth < target) {
    json_t *list = json_array();
    uint32_t n = rnd(3) + 1, deep = rnd(n);
    for (uint32_t j = 0; j < n; j++)
      json_array_append_new(list, gen_valid_where(depth + 1, j == deep ? target : depth + 1 + (int)rnd(2)));
    json_object_set_new(w, rnd(2) ? "$and" : "$or", list);
  }
  for (uint32_t i = rnd(3) + (depth < target ? 0 : 1); i > 0; i--) {
    json_t *leaf = json_loads(PICK(leaves), 0, NULL);
    json_object_update(w, leaf);
    json_decref(leaf);
  }
  return w;
}

static void fuzz_one(sqlite3 *db, json_t *where, int *accepted, int valid_sort) {
  static const char *sorts[] = {NULL, "", "-lm", "name,-createdAt", "attr.x", "q\"k", "a..b", "m", ",", "-"};
  buf_t out = BUF_INIT;
  char err[128] = "";
  int rc = run_query(db, where, sorts[rnd(valid_sort ? 6 : 10)], 10, 0, &out, err, sizeof err);
  if (rc != 0 && rc != TERN_EINVAL) fail_msg("unexpected return %d", rc);
  if (rc == TERN_EINVAL && !err[0]) fail_msg("TERN_EINVAL without a reason");
  *accepted += rc == 0;
  buf_free(&out);
}

static void test_fuzz(void **state) {
  sqlite3 *db = *state;
  int accepted = 0, total = 0;
  for (int i = 0; i < 300; i++, total++) {
    json_t *w = gen_where(1);
    fuzz_one(db, w, &accepted, 0);
    json_decref(w);
  }
  int valid = 0, nvalid = 0;
  for (int i = 0; i < 300; i++, nvalid++) {
    json_t *w = gen_valid_where(1, 1 + (int)rnd(16));
    fuzz_one(db, w, &valid, 1);
    json_decref(w);
  }
  print_message("fuzz: %d of %d random valid nested queries accepted (others too big), all prepared and ran\n", valid,
                nvalid);
  assert_true(valid > nvalid / 2);
  /* extremes: huge numbers from text, very deep operands, very deep $and chains */
  static const char *texts[] = {"{\"score\":123456789012345678901234567890}", "{\"score\":{\"$gt\":1e308}}",
                                "{\"score\":-0.0}", "{\"createdAt\":1e300}", "{\"lm\":{\"$lt\":-9223372036854775808}}"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++, total++) {
    json_t *w = json_loads(texts[i], JSON_DECODE_INT_AS_REAL, NULL);
    assert_non_null(w);
    fuzz_one(db, w, &accepted, 0);
    json_decref(w);
  }
  json_t *deep = json_integer(1), *chain = parse("{\"name\":\"x\"}");
  for (int i = 0; i < 5000; i++) deep = json_pack("[o]", deep);
  for (int i = 0; i < 200; i++) chain = json_pack("{s:[o]}", i % 2 ? "$or" : "$and", chain);
  json_t *w = json_pack("{s:O}", "labels", deep);
  fuzz_one(db, w, &accepted, 0);
  json_decref(w);
  w = json_pack("{s:{s:[O]}}", "labels", "$in", deep);
  fuzz_one(db, w, &accepted, 0);
  json_decref(w);
  fuzz_one(db, chain, &accepted, 0);
  total += 3;
  json_decref(deep);
  json_decref(chain);
  print_message("fuzz: %d of %d random queries accepted, all prepared and ran\n", accepted, total);
  assert_true(accepted > 20); /* the generator must also produce valid queries */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_where), cmocka_unit_test(test_object_id),    cmocka_unit_test(test_times),
      cmocka_unit_test(test_members),       cmocka_unit_test(test_doc_equality), cmocka_unit_test(test_doc_operators),
      cmocka_unit_test(test_dates_on_doc),  cmocka_unit_test(test_regex),        cmocka_unit_test(test_regex_threads),
      cmocka_unit_test(test_and_or),        cmocka_unit_test(test_sort),         cmocka_unit_test(test_odd_keys),
      cmocka_unit_test(test_rejections),    cmocka_unit_test(test_fuzz),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
