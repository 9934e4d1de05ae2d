/* test_store_query.c — conformance: conversation queries through the interface (store.h:
 * store_conv_q_t, conv_view_t) on every backend of st_backends — the where and sort as the
 * client gives them, counts, pages, what a row carries, and explicit fetches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "err.h"
#include "st_util.h"

/* What the rows of one query or fetch carried, in the order they came. */
typedef struct {
  int n;
  char cid[8][16];
  int kind[8];
  int64_t created_at[8], lm[8], expire_at[8];
  int has_lm[8];
  int nmembers[8]; /* -1: members not given */
  char members[8][48];
  char last[8][32]; /* "sender:text", "" when no last message was given */
  char doc[8][96];
} rows_t;

static void rows_cb(void *arg, const conv_view_t *v) {
  rows_t *r = arg;
  if (r->n >= 8) return;
  int i = r->n++;
  snprintf(r->cid[i], sizeof r->cid[i], "%s", v->cid);
  r->kind[i] = v->kind;
  r->created_at[i] = v->created_at;
  r->has_lm[i] = v->has_lm;
  r->lm[i] = v->lm;
  r->expire_at[i] = v->expire_at;
  snprintf(r->doc[i], sizeof r->doc[i], "%s", v->doc ? v->doc : "");
  r->nmembers[i] = v->members ? (int)v->nmembers : -1;
  for (size_t k = 0; v->members && k < v->nmembers; k++)
    snprintf(r->members[i] + strlen(r->members[i]), sizeof r->members[i] - strlen(r->members[i]), "%s%s", k ? "," : "",
             v->members[k]);
  if (v->last)
    snprintf(r->last[i], sizeof r->last[i], "%s:%.*s", v->last->sender, (int)v->last->len, (const char *)v->last->data);
}

/* The cids of q's rows, comma-separated, with count checked against them (no limit/skip). */
static const char *cids(st_t *t, const char *where, const char *self, const char *sort, int limit, int skip,
                        rows_t *rows) {
  static char out[128];
  json_t *w = where ? json_loads(where, 0, NULL) : NULL;
  assert_true(!where || w);
  char err[200] = "";
  convq_t *parsed = NULL;
  assert_int_equal(convq_parse(w, sort, self, &parsed, err, sizeof err), 0); /* the one parser */
  store_conv_q_t q = {.query = parsed, .limit = limit ? limit : 100, .skip = skip};
  assert_int_equal(store_conv_query_check(t->s, &q, err, sizeof err), 0);
  memset(rows, 0, sizeof *rows);
  assert_int_equal(store_conv_query(t->r, &q, rows_cb, rows), 0);
  out[0] = 0;
  for (int i = 0; i < rows->n; i++)
    snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", rows->cid[i]);
  int64_t n = -1;
  assert_int_equal(store_conv_count(t->r, &q, &n), 0);
  if (!limit && !skip) assert_int_equal(n, rows->n);
  json_decref(w);
  convq_free(parsed);
  return out;
}

static const char *const AB[] = {"alice", "bob", NULL};

/* Conversation queries are not all done on every backend yet (PostgreSQL waits for the
 * parsed where of issue #14 and runs only what the SDKs send by themselves, sdk_queries):
 * there the other query tests are SKIPPED, visibly, and refused_where_not_done checks that
 * the backend refuses the rest with TERN_ENOTSUP rather than answer anything. */
#define NEEDS_CONV_QUERIES()                                                                                           \
  do {                                                                                                                 \
    if (!st_current->conv_queries) {                                                                                   \
      printf("[  SKIPPED ] %s: conversation queries are not implemented on %s yet\n", __func__, st_current->name);     \
      skip();                                                                                                          \
    }                                                                                                                  \
  } while (0)

static st_t *fixture(void) {
  st_t *t = st_open(st_current, 0);
  static const char *const CA[] = {"carol", "alice", NULL};
  assert_true(
      st_conv_create(t, "n1", CONV_NORMAL, AB, NULL, "{\"name\":\"alpha\",\"attr\":{\"level\":2}}", 1000, NULL) > 0);
  int64_t n2 = st_conv_create(t, "n2", CONV_NORMAL, CA, NULL, "{\"name\":\"beta\",\"attr\":{\"level\":1}}", 2000, NULL);
  assert_true(n2 > 0);
  assert_true(st_conv_create(t, "room", CONV_ROOM, NULL, NULL, "{\"name\":\"gamma\"}", 3000, NULL) > 0);
  assert_true(st_conv_create(t, "tmp", CONV_TEMP, AB, NULL, NULL, 4000, NULL) > 0);
  assert_int_equal(st_msg_insert(t, n2, 5000, 1, "carol", "hi", 0), 0);
  return t;
}

static void where_sort_count_page(void **state) {
  (void)state;
  NEEDS_CONV_QUERIES();
  st_t *t = fixture();
  rows_t r;
  /* no where: the asker's conversations (never temporary ones) */
  assert_string_equal(cids(t, NULL, "alice", "createdAt", 0, 0, &r), "n1,n2");
  assert_string_equal(cids(t, NULL, "bob", "createdAt", 0, 0, &r), "n1");
  assert_string_equal(cids(t, "{\"name\":{\"$regex\":\"^al\"}}", "", NULL, 0, 0, &r), "n1");
  assert_string_equal(cids(t, "{\"attr.level\":{\"$gte\":1}}", "", "-attr.level", 0, 0, &r), "n1,n2");
  assert_string_equal(cids(t, "{\"attr.level\":{\"$gte\":1}}", "", "attr.level", 0, 0, &r), "n2,n1");
  assert_string_equal(cids(t, "{\"m\":\"carol\"}", "", NULL, 0, 0, &r), "n2");
  /* every kind a query sees, newest first, a page of one after one */
  const char *all = "{\"objectId\":{\"$exists\":true}}";
  assert_string_equal(cids(t, all, "", "-createdAt", 0, 0, &r), "room,n2,n1");
  assert_string_equal(cids(t, all, "", "-createdAt", 1, 1, &r), "n2");
  /* -lm (the default): conversations with messages first */
  assert_string_equal(cids(t, all, "", NULL, 1, 0, &r), "n2");
  assert_true(r.has_lm[0]);
  assert_int_equal(r.lm[0], 5000);
  st_close(t);
}

/* The query language's semantics, operator by operator, on every field kind: what any
 * backend must answer for a parsed where (in createdAt order). */
static void operators_on_every_field(void **state) {
  (void)state;
  st_t *t = fixture();
  rows_t r;
  static const char *const cases[][2] = {
      {"{\"name\":\"alpha\"}", "n1"},
      {"{\"name\":{\"$ne\":\"alpha\"}}", "n2,room"},
      {"{\"name\":{\"$in\":[\"alpha\",\"gamma\",7]}}", "n1,room"},
      {"{\"name\":{\"$nin\":[\"alpha\"]}}", "n2,room"},
      {"{\"name\":{\"$gt\":\"alpha\",\"$lt\":\"gamma\"}}", "n2"},
      {"{\"name\":{\"$regex\":\"A\",\"$options\":\"i\"}}", "n1,n2,room"},
      {"{\"name\":{\"$regex\":\"^b\"}}", "n2"},
      {"{\"attr.level\":{\"$gt\":1}}", "n1"},
      {"{\"attr.level\":{\"$lte\":1}}", "n2"},
      {"{\"attr.level\":{\"$exists\":false}}", "room"},
      {"{\"attr.level\":\"2\"}", ""}, /* types are exact */
      {"{\"attr\":{\"level\":2}}", "n1"},
      {"{\"m\":\"bob\"}", "n1"},
      {"{\"m\":{\"$all\":[\"alice\",\"carol\"]}}", "n2"},
      {"{\"m\":{\"$in\":[\"bob\",\"carol\"]}}", "n1,n2"},
      {"{\"m\":{\"$nin\":[\"bob\"]}}", "n2,room"},
      {"{\"m\":{\"$size\":2}}", "n1,n2"},
      {"{\"m\":[\"bob\",\"alice\"]}", "n1"},
      {"{\"objectId\":{\"$in\":[\"n1\",\"room\",\"nope\"]}}", "n1,room"},
      {"{\"objectId\":{\"$regex\":\"^n\"}}", "n1,n2"},
      {"{\"objectId\":\"tmp\"}", ""}, /* temporary conversations are fetched by id only */
      {"{\"createdAt\":{\"$gte\":{\"__type\":\"Date\",\"iso\":\"1970-01-01T00:00:02.000Z\"}}}", "n2,room"},
      {"{\"createdAt\":{\"$lt\":\"1970-01-01T00:00:02Z\"}}", "n1"},
      {"{\"createdAt\":{\"$in\":[1000,3000]}}", "n1,room"},
      {"{\"$or\":[{\"name\":\"alpha\"},{\"name\":\"gamma\"}]}", "n1,room"},
      {"{\"$and\":[{\"m\":\"alice\"},{\"attr.level\":{\"$gte\":1}}]}", "n1,n2"},
      {"{\"$or\":[{},{\"name\":\"none\"}]}", "n1,n2,room"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *got = cids(t, cases[i][0], "", "createdAt", 0, 0, &r);
    if (strcmp(got, cases[i][1]) != 0) fail_msg("%s\n  got:  %s\n  want: %s", cases[i][0], got, cases[i][1]);
  }
  st_close(t);
}

static void what_a_row_carries(void **state) {
  (void)state;
  NEEDS_CONV_QUERIES();
  st_t *t = fixture();
  rows_t r;
  json_t *w = json_loads("{\"objectId\":{\"$exists\":true}}", 0, NULL);
  char err[200];
  convq_t *parsed = NULL;
  assert_int_equal(convq_parse(w, "createdAt", "", &parsed, err, sizeof err), 0);
  store_conv_q_t q = {.query = parsed, .limit = 10, .flags = 2};
  memset(&r, 0, sizeof r);
  assert_int_equal(store_conv_query(t->r, &q, rows_cb, &r), 0);
  assert_int_equal(r.n, 3);
  assert_string_equal(r.cid[0], "n1");
  assert_int_equal(r.kind[0], CONV_NORMAL);
  assert_int_equal(r.created_at[0], 1000);
  assert_string_equal(r.members[0], "alice,bob"); /* sorted */
  assert_string_equal(r.last[0], "");             /* no message yet */
  assert_non_null(strstr(r.doc[0], "alpha"));
  assert_string_equal(r.members[1], "alice,carol");
  assert_string_equal(r.last[1], "carol:hi");
  assert_string_equal(r.cid[2], "room");
  assert_int_equal(r.nmembers[2], -1); /* a chat room's members are not listed */
  /* compact: no member lists, and no last message unless asked */
  q.flags = 1;
  memset(&r, 0, sizeof r);
  assert_int_equal(store_conv_query(t->r, &q, rows_cb, &r), 0);
  assert_int_equal(r.n, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r.nmembers[i], -1);
    assert_string_equal(r.last[i], "");
  }
  json_decref(w);
  convq_free(parsed);
  st_close(t);
}

static void refused_queries(void **state) {
  (void)state;
  NEEDS_CONV_QUERIES();
  st_t *t = fixture();
  /* what the query language refuses, the parser refuses, with the client's text */
  static const char *const bad[][3] = {
      {"{\"name\":{\"$bogus\":1}}", NULL, "unsupported operator $bogus on name"},
      {"{\"name\":{\"$in\":1}}", NULL, "$in on name needs an array"},
      {"{}", "m", "cannot sort by m"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *w = json_loads(bad[i][0], 0, NULL);
    char err[200] = "";
    convq_t *parsed = (convq_t *)1;
    assert_int_equal(convq_parse(w, bad[i][1], "alice", &parsed, err, sizeof err), TERN_EINVAL);
    assert_null(parsed);
    assert_string_equal(err, bad[i][2]);
    json_decref(w);
  }
  st_close(t);
}

/* What a backend refuses of a parsed query (limits of its own engine) it refuses the same way
 * in check, query and count; what it takes it answers correctly. */
static const char *many_conditions(void) {
  static char text[8192];
  size_t n = 0;
  n += (size_t)snprintf(text + n, sizeof text - n, "{");
  for (int i = 0; i < 255; i++) n += (size_t)snprintf(text + n, sizeof text - n, "%s\"k%d\":\"v\"", i ? "," : "", i);
  snprintf(text + n, sizeof text - n, ",\"name\":\"alpha\"}");
  return text;
}

static void backend_limits_agree(void **state) {
  (void)state;
  st_t *t = fixture();
  const char *const queries[] = {
      "{\"attr.mix\\\"[0]\":1}", /* a key with '"' and '[' */
      "{\"attr.q\\\"uote\":1}",  /* a quote */
      "{\"attr.b[0]\":1}",       /* brackets */
      many_conditions(),         /* 256 conditions: many parameters */
  };
  for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
    json_t *w = json_loads(queries[i], 0, NULL);
    assert_non_null(w);
    char err[200] = "";
    convq_t *parsed = NULL;
    assert_int_equal(convq_parse(w, NULL, "", &parsed, err, sizeof err), 0);
    store_conv_q_t q = {.query = parsed, .limit = 10};
    int rc = store_conv_query_check(t->s, &q, err, sizeof err);
    assert_true(rc == 0 || (rc == TERN_EINVAL && err[0]));
    rows_t r = {0};
    assert_int_equal(store_conv_query(t->r, &q, rows_cb, &r), rc);
    assert_int_equal(r.n, 0); /* no conversation has these keys */
    int64_t n = -1;
    assert_int_equal(store_conv_count(t->r, &q, &n), rc);
    if (rc == 0) assert_int_equal(n, 0);
    json_decref(w);
    convq_free(parsed);
  }
  st_close(t);
}

static void fetch_by_ids(void **state) {
  (void)state;
  st_t *t = fixture();
  static const char *const ids[] = {"tmp", "n1", "nope"};
  rows_t r = {0};
  assert_int_equal(store_conv_fetch(t->r, ids, 3, 0, rows_cb, &r), 0);
  assert_int_equal(r.n, 2); /* any kind, temporary included; unknown ids left out */
  int tmp = strcmp(r.cid[0], "tmp") == 0 ? 0 : 1;
  assert_string_equal(r.cid[tmp], "tmp");
  assert_string_equal(r.cid[1 - tmp], "n1");
  assert_int_equal(r.kind[tmp], CONV_TEMP);
  assert_int_equal(r.expire_at[tmp], 5000);
  assert_string_equal(r.members[tmp], "alice,bob");
  memset(&r, 0, sizeof r);
  assert_int_equal(store_conv_fetch(t->r, ids, 0, 0, rows_cb, &r), 0);
  assert_int_equal(r.n, 0);
  st_close(t);
}

/* What the SDKs send by themselves (getConversation, the conversations of a message that
 * arrives uncached, the asker's list): every backend answers these alike, the PostgreSQL
 * store's interim subset included. */
static void sdk_queries(void **state) {
  (void)state;
  st_t *t = fixture();
  rows_t r;
  assert_string_equal(cids(t, NULL, "alice", NULL, 0, 0, &r), "n2,n1"); /* -lm: with messages first */
  assert_string_equal(cids(t, "{}", "carol", "-createdAt", 0, 0, &r), "n2");
  assert_string_equal(cids(t, "{\"objectId\":\"n1\"}", "alice", NULL, 0, 0, &r), "n1");
  assert_string_equal(cids(t, "{\"objectId\":\"tmp\"}", "alice", NULL, 0, 0, &r), ""); /* never temporary */
  assert_string_equal(cids(t, "{\"objectId\":{\"$in\":[\"n2\",\"room\",\"nope\"]}}", "", "createdAt", 0, 0, &r),
                      "n2,room");
  assert_string_equal(cids(t, "{\"m\":\"bob\"}", "", NULL, 0, 0, &r), "n1");
  assert_string_equal(cids(t, "{\"m\":{\"$all\":[\"alice\",\"carol\"]}}", "", NULL, 0, 0, &r), "n2");
  assert_string_equal(cids(t, "{\"m\":{\"$all\":[]}}", "", NULL, 0, 0, &r), "");
  assert_string_equal(cids(t, "{\"m\":{\"$in\":[\"bob\",\"carol\"]}}", "", "-createdAt", 0, 0, &r), "n2,n1");
  assert_string_equal(cids(t, "{\"m\":\"alice\",\"objectId\":\"n2\"}", "", NULL, 0, 0, &r), "n2");
  assert_string_equal(cids(t, NULL, "alice", "createdAt", 1, 1, &r), "n2");
  assert_string_equal(cids(t, NULL, "alice", "lm", 0, 0, &r), "n1,n2"); /* no message: lowest */
  /* startsWith / contains quote the text with \Q…\E */
  assert_string_equal(cids(t, "{\"name\":{\"$regex\":\"^\\\\Qal\\\\E\"}}", "", NULL, 0, 0, &r), "n1");
  assert_string_equal(cids(t, "{\"name\":{\"$regex\":\"\\\\Q.\\\\E\"}}", "", NULL, 0, 0, &r), "");
  assert_string_equal(cids(t, "{\"name\":{\"$regex\":\"\\\\Q\\\\E.\"}}", "", "createdAt", 0, 0, &r), "n1,n2,room");
  if (strcmp(st_current->name, "postgres") == 0) { /* what PostgreSQL's engine reads otherwise: refused */
    json_t *w = json_loads("{\"name\":{\"$regex\":\"\\\\balpha\"}}", 0, NULL);
    char err[200] = "";
    convq_t *parsed = NULL;
    assert_int_equal(convq_parse(w, NULL, "", &parsed, err, sizeof err), 0);
    store_conv_q_t q = {.query = parsed, .limit = 10};
    assert_int_equal(store_conv_query_check(t->s, &q, err, sizeof err), TERN_EINVAL);
    assert_non_null(strstr(err, "not supported on a PostgreSQL store"));
    rows_t none = {0};
    assert_int_equal(store_conv_query(t->r, &q, rows_cb, &none), TERN_EINVAL);
    assert_int_equal(none.n, 0);
    convq_free(parsed);
    json_decref(w);
  }
  st_close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(where_sort_count_page), cmocka_unit_test(operators_on_every_field),
      cmocka_unit_test(what_a_row_carries),    cmocka_unit_test(refused_queries),
      cmocka_unit_test(backend_limits_agree),  cmocka_unit_test(fetch_by_ids),
      cmocka_unit_test(sdk_queries),
  };
  return st_run_groups(tests, sizeof tests / sizeof tests[0]);
}
