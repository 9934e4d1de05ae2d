/* fuzz_where.c — `conv query` where-JSON and sort → the parser (store/convq.c) → SQL
 * (query.c), run for real.
 *
 * Input:  where-JSON [ NUL sort [ NUL flags ] ]
 *   where  any JSON text (objects, but also the scalars and arrays a client may send)
 *   sort   the sort string (absent: NULL, the default order)
 *   flags  one byte: the store's result flags (1 compact, 2 with last message)
 *
 * The store is the real one, on a temporary file whose conv/member/msg tables hold a small
 * fixture (the conversations of tests/unit/test_query.c): convq_parse, query_where +
 * query_sort over its tree, then store_conv_query — the exact path of im_conv_query.
 *
 * Checks, besides the sanitizers: a rejection (parser or compiler) leaves the query empty
 * and says why; a parsed tree's values turn back into JSON (convq_val_json); an
 * accepted where+sort prepares (on our own connection) with exactly as many placeholders
 * as parameters, and runs to the end with no error other than a regexp one (a pattern
 * hitting the backtracking limit is reported, by design, as a failed query). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convq.h"
#include "err.h"
#include "fuzz_target.h"
#include "im_internal.h" /* conv_view_append: the shape im_conv_query answers */
#include "log.h"
#include "query.h"
#include "store.h"
#include "store_sqlite.h"
#include "timeutil.h"

static struct {
  int ready;
  char dir[64], path[96];
  store_t *store;
  store_reader_t *reader;
  sqlite3 *db;
} fw;

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

static void sql_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  const char *pat = (const char *)sqlite3_value_text(argv[0]);
  const char *opts = (const char *)sqlite3_value_text(argv[1]);
  if (sqlite3_value_type(argv[2]) != SQLITE_TEXT || !pat) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  const char *subj = (const char *)sqlite3_value_text(argv[2]);
  int rc = query_regex_match(pat, opts ? opts : "", subj, (size_t)sqlite3_value_bytes(argv[2]));
  if (rc < 0) sqlite3_result_error(ctx, "invalid regular expression", -1);
  else sqlite3_result_int(ctx, rc);
}

static void must(int ok, const char *what) {
  if (ok) return;
  fprintf(stderr, "fuzz_where setup: %s: %s\n", what, fw.db ? sqlite3_errmsg(fw.db) : "");
  abort();
}

static void cleanup(void) {
  store_reader_free(fw.reader);
  store_close(fw.store);
  sqlite3_close(fw.db);
  char p[128];
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", fw.path, suffix[i]);
    unlink(p);
  }
  rmdir(fw.dir);
}

static void setup(void) {
  const char *lv = getenv("TERN_FUZZ_LOG");
  log_level = lv && log_level_parse(lv) >= 0 ? log_level_parse(lv) : -1;
  /* tmpfs when there is one: an input's database never waits on a busy disk */
  const char *tmp = getenv("TMPDIR");
  if (!tmp || strlen(tmp) >= 40) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(fw.dir, sizeof fw.dir, "%s/tern-fuzz-XXXXXX", tmp);
  must(mkdtemp(fw.dir) != NULL, "mkdtemp");
  snprintf(fw.path, sizeof fw.path, "%s/where.db", fw.dir);
  store_options_t so = {.path = fw.path, .inline_writes = 1};
  must(store_open(&store_sqlite_ops, &so, &fw.store) == 0, "store_open"); /* creates the schema */
  must(sqlite3_open(fw.path, &fw.db) == SQLITE_OK, "open");
  must(sqlite3_create_function(fw.db, "regexp", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_regexp, NULL, NULL) ==
           SQLITE_OK,
       "regexp");
  sqlite3_stmt *ins, *mem, *msg;
  must(sqlite3_prepare_v2(fw.db,
                          "INSERT INTO conv (id, cid, kind, creator, created_at, updated_at, lm, member_count, doc)"
                          " VALUES (?, ?, ?, 'alice', ?, ?, ?, ?, ?)",
                          -1, &ins, NULL) == SQLITE_OK,
       "prepare conv");
  must(sqlite3_prepare_v2(fw.db, "INSERT INTO member (conv, client, joined_at) VALUES (?, ?, 0)", -1, &mem, NULL) ==
           SQLITE_OK,
       "prepare member");
  must(sqlite3_prepare_v2(
           fw.db,
           "INSERT INTO msg (conv, ts, seq, mid, sender, data, flags) VALUES (?, ?, 1, 'AAAAAAAAAAAAAAAAAAAAAA',"
           " 'alice', '{\"_lctext\":\"hi\"}', 0)",
           -1, &msg, NULL) == SQLITE_OK,
       "prepare msg");
  for (size_t i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
    int64_t created = 1767225600000LL + (fixture[i].day - 1) * 86400000LL, lm = 0;
    char members[64], *save = NULL;
    int count = 0;
    snprintf(members, sizeof members, "%s", fixture[i].members);
    for (char *m = strtok_r(members, " ", &save); m; m = strtok_r(NULL, " ", &save)) {
      sqlite3_bind_int64(mem, 1, (int64_t)i + 1);
      sqlite3_bind_text(mem, 2, m, -1, SQLITE_TRANSIENT);
      must(sqlite3_step(mem) == SQLITE_DONE, "insert member");
      sqlite3_reset(mem);
      count++;
    }
    sqlite3_bind_int64(ins, 1, (int64_t)i + 1);
    sqlite3_bind_text(ins, 2, fixture[i].cid, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 3, fixture[i].kind);
    sqlite3_bind_int64(ins, 4, created);
    sqlite3_bind_int64(ins, 5, created + 1000);
    if (fixture[i].lm && iso_parse(fixture[i].lm, &lm) == 0) {
      sqlite3_bind_int64(ins, 6, lm);
      sqlite3_bind_int64(msg, 1, (int64_t)i + 1);
      sqlite3_bind_int64(msg, 2, lm);
      must(sqlite3_step(msg) == SQLITE_DONE, "insert msg");
      sqlite3_reset(msg);
    } else {
      sqlite3_bind_null(ins, 6);
    }
    sqlite3_bind_int(ins, 7, count);
    sqlite3_bind_text(ins, 8, fixture[i].doc, -1, SQLITE_STATIC);
    must(sqlite3_step(ins) == SQLITE_DONE, "insert conv");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(mem);
  sqlite3_finalize(msg);
  fw.reader = store_reader_new(fw.store);
  must(fw.reader != NULL, "store_reader_new");
  fw.ready = 1;
  atexit(cleanup);
}

static void fail(const char *what, const char *sql, const uint8_t *in, size_t n) {
  fprintf(stderr, "FUZZ CHECK FAILED: %s\n  SQL: %s\n  error: %s\n  input: %.*s\n", what, sql ? sql : "",
          sqlite3_errmsg(fw.db), (int)n, (const char *)in);
  abort();
}

static void check_sql(query_t *q, const char *order, const uint8_t *in, size_t n) {
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT c.cid FROM conv c WHERE %s ORDER BY %s LIMIT 100 OFFSET 0", buf_cstr(&q->sql), order);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(fw.db, buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK)
    fail("accepted query does not prepare", buf_cstr(&sql), in, n);
  if (sqlite3_bind_parameter_count(st) != (int)q->nparams) fail("placeholders != parameters", buf_cstr(&sql), in, n);
  for (size_t i = 0; i < q->nparams; i++) {
    const query_param_t *p = &q->params[i];
    if (p->type == QP_TEXT) sqlite3_bind_text(st, (int)i + 1, p->s, -1, SQLITE_STATIC);
    else if (p->type == QP_INT) sqlite3_bind_int64(st, (int)i + 1, p->i);
    else sqlite3_bind_double(st, (int)i + 1, p->d);
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE && !strstr(sqlite3_errmsg(fw.db), "regular expression"))
    fail("accepted query failed to run", buf_cstr(&sql), in, n);
  sqlite3_finalize(st);
  buf_free(&sql);
}

/* Every operand of the tree turns back into JSON (what backends bind). */
static void walk_values(const convq_node_t *n) {
  for (size_t i = 0; i < n->n; i++) walk_values(n->kids[i]);
  if (n->kind != CONVQ_LEAF) return;
  json_t *v = convq_val_json(&n->val);
  if (!v) fail("an operand has no JSON", n->field.name, (const uint8_t *)"", 0);
  json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fw.ready) setup();
  const uint8_t *nul = memchr(data, 0, size);
  size_t wlen = nul ? (size_t)(nul - data) : size;
  char *sort = NULL;
  int flags = 0;
  if (nul) {
    const uint8_t *s = nul + 1, *end = data + size;
    const uint8_t *nul2 = memchr(s, 0, (size_t)(end - s));
    sort = strndup((const char *)s, (size_t)((nul2 ? nul2 : end) - s));
    if (nul2 && nul2 + 1 < end) flags = nul2[1] & 3;
  }
  json_error_t jerr;
  json_t *where = json_loadb((const char *)data, wlen, JSON_DECODE_ANY, &jerr);
  if (!where && wlen) goto done; /* im_conv_query answers "where is not JSON" */
  query_t q;
  query_init(&q);
  buf_t order = BUF_INIT;
  char err[200] = "";
  convq_t *cq = NULL;
  int rc = convq_parse(where, sort, "alice", &cq, err, sizeof err);
  if (rc != 0 && (rc != TERN_EINVAL || !err[0] || cq)) fail("a rejected where or sort must say why", err, data, size);
  if (rc == 0) {
    walk_values(cq->where);
    rc = query_where(&q, cq->where, err, sizeof err);
    if (rc != 0 && (rc != TERN_EINVAL || !err[0] || q.nparams != 0 || q.sql.len != 0))
      fail("a rejected where must leave q empty and say why", err, data, wlen);
  }
  if (rc == 0) {
    rc = query_sort(&q, cq->sort, cq->nsort, &order, err, sizeof err);
    if (rc != 0 && (rc != TERN_EINVAL || !err[0])) fail("a rejected sort must say why", err, data, size);
  }
  if (rc == 0) {
    check_sql(&q, buf_cstr(&order), data, wlen);
    json_t *out = json_array(); /* and the same through the store's interface, which compiles it again */
    store_conv_q_t sq = {.query = cq, .limit = 100, .flags = flags};
    if (store_conv_query(fw.reader, &sq, conv_view_append, out) == 0) {
      char *text = json_dumps(out, JSON_COMPACT);
      free(text);
    }
    json_decref(out);
  }
  convq_free(cq);
  query_free(&q);
  buf_free(&order);
  json_decref(where);
done:
  free(sort);
  return 0;
}
