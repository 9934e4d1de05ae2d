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
  store_conv_q_t q = {.where = w, .self = self, .sort = sort, .limit = limit ? limit : 100, .skip = skip};
  char err[200] = "";
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

static void what_a_row_carries(void **state) {
  (void)state;
  NEEDS_CONV_QUERIES();
  st_t *t = fixture();
  rows_t r;
  json_t *w = json_loads("{\"objectId\":{\"$exists\":true}}", 0, NULL);
  store_conv_q_t q = {.where = w, .self = "", .sort = "createdAt", .limit = 10, .flags = 2};
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
  st_close(t);
}

static void refused_queries(void **state) {
  (void)state;
  NEEDS_CONV_QUERIES();
  st_t *t = fixture();
  static const char *const bad[][2] = {
      {"{\"name\":{\"$bogus\":1}}", NULL}, /* unknown operator */
      {"{\"name\":{\"$in\":1}}", NULL},    /* wrong operand */
      {"{}", "m"},                         /* sorting by members */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *w = json_loads(bad[i][0], 0, NULL);
    store_conv_q_t q = {.where = w, .self = "alice", .sort = bad[i][1], .limit = 10};
    char err[200] = "";
    assert_int_equal(store_conv_query_check(t->s, &q, err, sizeof err), TERN_EINVAL);
    assert_true(err[0] != 0);
    rows_t r = {0};
    assert_int_equal(store_conv_query(t->r, &q, rows_cb, &r), TERN_EINVAL);
    assert_int_equal(r.n, 0);
    int64_t n = -1;
    assert_int_equal(store_conv_count(t->r, &q, &n), TERN_EINVAL);
    json_decref(w);
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
  st_close(t);
}

/* A backend without conversation queries refuses each one, and hands out no row. */
static void refused_where_not_done(void **state) {
  (void)state;
  if (st_current->conv_queries) skip();
  st_t *t = fixture();
  static const char *const wheres[][2] = {
      {"{\"name\":\"alpha\"}", NULL},
      {"{\"name\":{\"$regex\":\"^al\"}}", NULL},
      {"{\"$or\":[{\"m\":\"bob\"},{\"m\":\"carol\"}]}", NULL},
      {"{}", "attr.level"},
  };
  for (size_t i = 0; i < sizeof wheres / sizeof wheres[0]; i++) {
    json_t *w = json_loads(wheres[i][0], 0, NULL);
    store_conv_q_t q = {.where = w, .self = "alice", .sort = wheres[i][1], .limit = 10};
    char err[200] = "";
    assert_int_equal(store_conv_query_check(t->s, &q, err, sizeof err), TERN_ENOTSUP);
    assert_non_null(strstr(err, "not supported"));
    rows_t r = {0};
    assert_int_equal(store_conv_query(t->r, &q, rows_cb, &r), TERN_ENOTSUP);
    assert_int_equal(r.n, 0);
    int64_t n = -1;
    assert_int_equal(store_conv_count(t->r, &q, &n), TERN_ENOTSUP);
    json_decref(w);
  }
  st_close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(where_sort_count_page), cmocka_unit_test(what_a_row_carries),
      cmocka_unit_test(refused_queries),       cmocka_unit_test(fetch_by_ids),
      cmocka_unit_test(sdk_queries),           cmocka_unit_test(refused_where_not_done),
  };
  return st_run_groups(tests, sizeof tests / sizeof tests[0]);
}
