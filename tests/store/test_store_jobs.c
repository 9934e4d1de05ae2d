/* test_store_jobs.c — conformance: every write job type of store.h, each checked through
 * the reads that show it, on every backend of st_backends (st_harness.c).
 *
 * Only the interface is used: a backend passes when what it hands back through the reads
 * is what the jobs wrote, whatever it stores underneath. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "st_util.h"
#include "timeutil.h"

static const char *const AB[] = {"alice", "bob", NULL};

static void conv_create_and_load(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  static const char *const members[] = {"carol", "alice", "bob", NULL};
  int64_t id =
      st_conv_create(t, "conv-1", CONV_NORMAL, members, "u:alice,bob,carol", "{\"name\":\"team\"}", 1000, NULL);
  assert_true(id > 0);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "conv-1", &row), 0);
  assert_int_equal(row.id, id);
  assert_string_equal(row.cid, "conv-1");
  assert_int_equal(row.kind, CONV_NORMAL);
  assert_string_equal(row.creator, "carol");
  assert_string_equal(row.unique_id, "u:alice,bob,carol");
  assert_int_equal(row.created_at, 1000);
  assert_int_equal(row.nmembers, 3); /* in client order */
  assert_string_equal(row.members[0], "alice");
  assert_string_equal(row.members[1], "bob");
  assert_string_equal(row.members[2], "carol");
  assert_int_equal(row.last_ts, 0); /* no message yet */
  conv_row_free(&row);
  char *doc = NULL;
  assert_int_equal(store_conv_doc(t->r, id, &doc), 0);
  assert_non_null(strstr(doc, "\"name\""));
  assert_non_null(strstr(doc, "\"team\""));
  free(doc);
  char *cid = NULL;
  int64_t created = 0;
  assert_int_equal(store_conv_find_unique(t->r, "u:alice,bob,carol", &cid, &created), 0);
  assert_string_equal(cid, "conv-1");
  assert_int_equal(created, 1000);
  free(cid);
  /* the same unique id again: TERN_EEXIST, naming the twin; nothing else is stored */
  char *twin = NULL;
  assert_int_equal(st_conv_create(t, "conv-2", CONV_NORMAL, members, "u:alice,bob,carol", NULL, 2000, &twin),
                   TERN_EEXIST);
  assert_non_null(twin);
  assert_string_equal(twin, "conv-1");
  free(twin);
  assert_int_equal(store_conv_load(t->r, "conv-2", &row), TERN_ENOENT);
  assert_int_equal(store_conv_load(t->r, "nothing", &row), TERN_ENOENT);
  assert_int_equal(store_conv_find_unique(t->r, "u:nobody", &cid, &created), TERN_ENOENT);
  /* the same cid again is a conflict without a twin: the job fails alone */
  assert_true(st_conv_create(t, "conv-1", CONV_NORMAL, members, NULL, NULL, 3000, NULL) <= 0);
  st_close(t);
}

static void msg_insert_logs_get(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  for (int i = 1; i <= 5; i++) {
    char text[16];
    snprintf(text, sizeof text, "hello %d", i);
    assert_int_equal(st_msg_insert(t, conv, 2000 + i / 2, i, i % 2 ? "alice" : "bob", text, 0), 0);
  }
  /* the same key again fails, alone */
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "dup", 0), TERN_ESTORE);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.last_ts, 2002);
  assert_int_equal(row.last_seq, 5);
  conv_row_free(&row);
  /* OLD: the newest `limit` from the top, handed out oldest first */
  logs_req_t q = {.conv = conv, .limit = 3};
  st_msgs_t got = {0};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 3);
  assert_int_equal(got.seq[0], 3);
  assert_int_equal(got.seq[2], 5);
  assert_string_equal(got.text[2], "hello 5");
  /* OLD below an upper bound, exclusive */
  logs_req_t qh = {.conv = conv, .has_hi = 1, .hi_ts = 2001, .hi_seq = 3, .limit = 10};
  st_msgs_t below = {0};
  assert_int_equal(store_logs(t->r, &qh, st_msgs_cb, &below), 0);
  assert_int_equal(below.n, 2);
  assert_int_equal(below.seq[0], 1);
  assert_int_equal(below.seq[1], 2);
  /* NEW from a lower bound, exclusive */
  logs_req_t q2 = {.conv = conv, .newer = 1, .has_lo = 1, .lo_ts = 2001, .lo_seq = 2, .limit = 10};
  st_msgs_t up = {0};
  assert_int_equal(store_logs(t->r, &q2, st_msgs_cb, &up), 0);
  assert_int_equal(up.n, 3);
  assert_int_equal(up.seq[0], 3);
  assert_int_equal(up.seq[2], 5);
  st_msgs_t one = {0};
  assert_int_equal(store_msg_get(t->r, conv, 2001, 3, st_msgs_cb, &one), 0);
  assert_int_equal(one.n, 1);
  assert_string_equal(one.text[0], "hello 3");
  assert_string_equal(one.sender[0], "alice");
  st_msgs_t none = {0};
  store_msg_get(t->r, conv, 2001, 99, st_msgs_cb, &none);
  assert_int_equal(none.n, 0);
  st_close(t);
}

/* store_conv_load's rcp: whether some message of the conversation asked for receipts, so
 * that an ack looks for them only there (im_msg_ack). Set by the message's insert however it
 * is stored: alone, as a conversation's repeat within one commit, after a reopen. */
static int conv_rcp(st_t *t, const char *cid) {
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, cid, &row), 0);
  int rcp = row.rcp;
  conv_row_free(&row);
  return rcp;
}

static void receipts_flag_their_conversation(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 20000); /* jobs submitted together commit together */
  int64_t plain = st_conv_create(t, "plain", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t asked = st_conv_create(t, "asked", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t later = st_conv_create(t, "later", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(conv_rcp(t, "plain"), 0); /* no message at all */
  assert_int_equal(st_msg_insert(t, plain, 2000, 1, "alice", "no receipt", MSG_F_BIN | MSG_F_MENTION_ALL), 0);
  assert_int_equal(st_msg_insert(t, asked, 2000, 1, "alice", "receipt please", MSG_F_RECEIPT), 0);
  /* three in one commit, the receipt the conversation's second: its repeat */
  job_msg_insert_t m[3];
  for (int i = 0; i < 3; i++) st_msg_fill(t, &m[i], 0, later, 3000, i + 1, "bob", "x", i == 1 ? MSG_F_RECEIPT : 0);
  for (int i = 0; i < 3; i++) store_submit(t->s, &m[i].job);
  st_wait_done(t, t->ndone + 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  assert_int_equal(conv_rcp(t, "plain"), 0);
  assert_int_equal(conv_rcp(t, "asked"), 1);
  assert_int_equal(conv_rcp(t, "later"), 1);
  /* a failed insert (its key taken) asks nothing */
  assert_int_equal(st_msg_insert(t, plain, 2000, 1, "alice", "dup", MSG_F_RECEIPT), TERN_ESTORE);
  assert_int_equal(conv_rcp(t, "plain"), 0);
  st_reopen(t);
  assert_int_equal(conv_rcp(t, "plain"), 0);
  assert_int_equal(conv_rcp(t, "asked"), 1);
  assert_int_equal(conv_rcp(t, "later"), 1);
  assert_int_equal(st_msg_insert(t, plain, 4000, 2, "bob", "now one", MSG_F_RECEIPT), 0);
  assert_int_equal(conv_rcp(t, "plain"), 1);
  st_close(t);
}

static void msg_readers_visibility(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  static const char *const abc[] = {"alice", "bob", "carol", NULL};
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, abc, NULL, NULL, 1000, NULL);
  job_msg_insert_t m;
  st_msg_fill(t, &m, 0, conv, 2000, 1, "alice", "for bob", 0);
  m.readers = st_dup("\x1f"
                     "bob"
                     "\x1f");
  assert_int_equal(st_submit_wait(t, &m.job), 0);
  st_msg_free(&m);
  logs_req_t q = {.conv = conv, .limit = 10, .viewer = "carol"};
  st_msgs_t got = {0};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 0);
  q.viewer = "bob";
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 1);
  q.viewer = "alice"; /* the sender always */
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 2);
  st_close(t);
}

typedef struct {
  int n;
  member_progress_t p[8];
  char names[8][16];
} progress_t;

static void progress_cb_(void *arg, const member_progress_t *p) {
  progress_t *c = arg;
  if (c->n >= 8) return;
  c->p[c->n] = *p;
  snprintf(c->names[c->n], sizeof c->names[c->n], "%s", p->client);
  c->p[c->n].client = c->names[c->n];
  c->n++;
}

static int progress_job(st_t *t, job_type_t type, int64_t conv, const char *client, int64_t ts, int64_t seq,
                        int64_t at) {
  job_progress_t j = {0};
  st_job_init(t, &j.job, type, 0);
  j.conv = conv;
  j.client = st_dup(client);
  j.ts = ts;
  j.seq = seq;
  j.at = at;
  int rc = st_submit_wait(t, &j.job);
  free(j.client);
  return rc;
}

typedef struct {
  int n;
  char cid[8][16];
  int unread[8], mentioned[8];
  int64_t last_seq[8];
} unread_t;

static void unread_cb_(void *arg, const unread_view_t *u) {
  unread_t *c = arg;
  if (c->n >= 8) return;
  snprintf(c->cid[c->n], sizeof c->cid[c->n], "%s", u->cid);
  c->unread[c->n] = u->unread;
  c->mentioned[c->n] = u->mentioned;
  c->last_seq[c->n] = u->last.mid ? u->last.seq : -1;
  c->n++;
}

typedef struct {
  int n;
  char cid[16][16];
  int64_t seq[16];
} offline_t;

static void offline_cb_(void *arg, const char *cid, int kind, const msg_view_t *m) {
  (void)kind;
  offline_t *c = arg;
  if (c->n >= 16) return;
  snprintf(c->cid[c->n], sizeof c->cid[c->n], "%s", cid);
  c->seq[c->n++] = m->seq;
}

static void ack_read_progress_unread(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  for (int i = 1; i <= 4; i++)
    assert_int_equal(st_msg_insert(t, conv, 2000, i, "alice", "x", i == 2 ? MSG_F_RECEIPT : 0), 0);
  assert_int_equal(progress_job(t, JOB_MEMBER_ACK, conv, "bob", 2000, 3, 5000), 0);
  assert_int_equal(progress_job(t, JOB_MEMBER_READ, conv, "bob", 2000, 1, 5001), 0);
  /* only ever forward: an older position changes nothing */
  assert_int_equal(progress_job(t, JOB_MEMBER_ACK, conv, "bob", 2000, 2, 6000), 0);
  progress_t p = {0};
  assert_int_equal(store_progress(t->r, conv, progress_cb_, &p), 0);
  assert_int_equal(p.n, 2);
  int b = strcmp(p.names[0], "bob") == 0 ? 0 : 1;
  assert_string_equal(p.names[b], "bob");
  assert_int_equal(p.p[b].ack_seq, 3);
  assert_int_equal(p.p[b].ack_at, 5000);
  assert_int_equal(p.p[b].read_seq, 1);
  assert_int_equal(p.p[b].read_at, 5001);
  /* bob: 3 unread (after seq 1, not his own), the last is seq 4 */
  unread_t u = {0};
  assert_int_equal(store_unread(t->r, "bob", 0, 10, unread_cb_, &u), 0);
  assert_int_equal(u.n, 1);
  assert_string_equal(u.cid[0], "c");
  assert_int_equal(u.unread[0], 3);
  assert_int_equal(u.last_seq[0], 4);
  /* alice sent them all: nothing unread for her */
  unread_t ua = {0};
  assert_int_equal(store_unread(t->r, "alice", 0, 10, unread_cb_, &ua), 0);
  assert_true(ua.n == 0 || ua.unread[0] == 0);
  /* offline: what bob has not acked */
  offline_t o = {0};
  assert_int_equal(store_offline(t->r, "bob", 10, offline_cb_, &o), 0);
  assert_int_equal(o.n, 1);
  assert_int_equal(o.seq[0], 4);
  /* receipts: messages in (from, to] that asked for one, not bob's own */
  st_msgs_t r = {0};
  assert_int_equal(store_msg_receipts(t->r, conv, "bob", 2000, 0, 2000, 4, st_msgs_cb, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.seq[0], 2);
  st_close(t);
}

static int members_job(st_t *t, job_type_t type, int64_t conv, const char *const *clients, int64_t at, int64_t seen_ts,
                       int64_t seen_seq) {
  job_members_t j = {0};
  st_job_init(t, &j.job, type, 0);
  j.conv = conv;
  j.updated_at = at;
  j.seen_ts = seen_ts;
  j.seen_seq = seen_seq;
  static const char *const none[] = {NULL};
  j.clients = st_list(clients ? clients : none, &j.n);
  int rc = st_submit_wait(t, &j.job);
  st_list_free(j.clients, j.n);
  return rc;
}

static void members_add_remove(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "before", 0), 0);
  static const char *const cd[] = {"carol", "dave", NULL};
  assert_int_equal(members_job(t, JOB_MEMBERS_ADD, conv, cd, 3000, 2000, 1), 0);
  st_pairs_t m = {0};
  assert_int_equal(store_members_page(t->r, conv, NULL, 10, st_pairs_cb, &m), 0);
  assert_int_equal(m.n, 4);
  assert_string_equal(m.s[2], "carol");
  assert_int_equal(m.v[2], 3000); /* joined at */
  st_pairs_t page = {0};
  assert_int_equal(store_members_page(t->r, conv, "bob", 1, st_pairs_cb, &page), 0);
  assert_int_equal(page.n, 1);
  assert_string_equal(page.s[0], "carol");
  /* a newcomer starts with what was sent before it joined read */
  unread_t u = {0};
  assert_int_equal(store_unread(t->r, "carol", 0, 10, unread_cb_, &u), 0);
  assert_true(u.n == 0 || u.unread[0] == 0);
  st_pairs_t convs = {0};
  assert_int_equal(store_client_convs(t->r, "dave", CONV_NORMAL, NULL, 10, st_pairs_cb, &convs), 0);
  assert_int_equal(convs.n, 1);
  assert_string_equal(convs.s[0], "c");
  static const char *const d[] = {"dave", NULL};
  assert_int_equal(members_job(t, JOB_MEMBERS_REMOVE, conv, d, 4000, 0, 0), 0);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.nmembers, 3);
  assert_true(row.updated_at >= 4000);
  conv_row_free(&row);
  st_pairs_t none = {0};
  assert_int_equal(store_client_convs(t->r, "dave", CONV_NORMAL, NULL, 10, st_pairs_cb, &none), 0);
  assert_int_equal(none.n, 0);
  st_close(t);
}

/* The reads at login (unread, offline) find every member's conversations: for members who
 * came with the conversation, who were added later, and after the store is reopened. The
 * SQLite backend answers clients in no conversation without a read (store_sqlite.c, the
 * member filter); a filter that missed any of these paths would make a row here vanish. */
static void unread_for_every_kind_of_member(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  unread_t none = {0};
  assert_int_equal(store_unread(t->r, "bob", 0, 10, unread_cb_, &none), 0);
  assert_int_equal(none.n, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  static const char *const e[] = {"erin", NULL};
  assert_int_equal(members_job(t, JOB_MEMBERS_ADD, conv, e, 1500, 0, 0), 0);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "x", 0), 0);
  for (int round = 0; round < 2; round++) { /* then again, reopened */
    static const char *const who[] = {"bob", "erin"};
    for (int k = 0; k < 2; k++) {
      unread_t u = {0};
      assert_int_equal(store_unread(t->r, who[k], 0, 10, unread_cb_, &u), 0);
      assert_int_equal(u.n, 1);
      assert_string_equal(u.cid[0], "c");
      assert_int_equal(u.unread[0], 1);
      offline_t o = {0};
      assert_int_equal(store_offline(t->r, who[k], 10, offline_cb_, &o), 0);
      assert_int_equal(o.n, 1);
    }
    unread_t stranger = {0};
    assert_int_equal(store_unread(t->r, "mallory", 0, 10, unread_cb_, &stranger), 0);
    assert_int_equal(stranger.n, 0);
    if (round == 0) st_reopen(t);
  }
  st_close(t);
}

static int update_job(st_t *t, int64_t conv, int64_t at, const char *path, const char *value) {
  job_conv_update_t j = {0};
  st_job_init(t, &j.job, JOB_CONV_UPDATE, 0);
  j.conv = conv;
  j.updated_at = at;
  j.changes = calloc(1, sizeof *j.changes);
  j.changes[0] = st_change(path, value);
  j.n = 1;
  int rc = st_submit_wait(t, &j.job);
  doc_changes_free(j.changes, j.n);
  return rc;
}

static void conv_update_doc(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, "{\"name\":\"a\",\"attr\":{\"x\":1}}", 1000, NULL);
  assert_int_equal(update_job(t, conv, 2000, "name", "\"b\""), 0);
  assert_int_equal(update_job(t, conv, 2001, "attr|y", "[1,2]"), 0);
  assert_int_equal(update_job(t, conv, 2002, "attr|x", NULL), 0); /* removed */
  char *doc = NULL;
  assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
  assert_non_null(strstr(doc, "\"b\""));
  assert_non_null(strstr(doc, "\"y\""));
  assert_null(strstr(doc, "\"x\""));
  free(doc);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.updated_at, 2002);
  conv_row_free(&row);
  /* DOC_REPLACE: the whole document */
  assert_int_equal(update_job(t, conv, 2003, "", "{\"only\":true}"), 0);
  assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
  assert_null(strstr(doc, "name"));
  assert_non_null(strstr(doc, "only"));
  free(doc);
  st_close(t);
}

/* Paths are key segments, not any backend's path language: every key jansson can hold is
 * set and removed exactly there, whatever the backend's own paths would make of it. */
static void conv_update_any_key(void **state) {
  (void)state;
  static const char *const keys[] = {
      "a.b",                      /* a dot inside one segment */
      "q\"uote",                  /* a quote */
      "br[0]",                    /* brackets */
      "mix\"[0]",                 /* a quote and a bracket (SQLite's paths cannot say it) */
      "back\\slash",              /* a backslash */
      "tab\tnl\n",                /* control characters */
      "\xe4\xb8\xad\xe6\x96\x87", /* UTF-8 */
      "$",                        /* path syntax as a key */
      "*",
  };
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, "{\"attr\":{\"keep\":1}}", 1000, NULL);
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    char value[16];
    snprintf(value, sizeof value, "%zu", i + 10);
    /* set under attr, then read the document back with jansson */
    job_conv_update_t j = {0};
    st_job_init(t, &j.job, JOB_CONV_UPDATE, 0);
    j.conv = conv;
    j.updated_at = 2000 + (int64_t)i;
    j.changes = calloc(1, sizeof *j.changes);
    j.changes[0] = (doc_change_t){DOC_SET, calloc(2, sizeof(char *)), 2, st_dup(value)};
    j.changes[0].path[0] = st_dup("attr");
    j.changes[0].path[1] = st_dup(keys[i]);
    j.n = 1;
    assert_int_equal(st_submit_wait(t, &j.job), 0);
    doc_changes_free(j.changes, j.n);
    char *doc = NULL;
    assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
    json_t *d = json_loads(doc, 0, NULL);
    if (!d) fail_msg("stored document %s", doc);
    if (json_integer_value(json_object_get(json_object_get(d, "attr"), keys[i])) != (json_int_t)i + 10)
      fail_msg("key %s: stored document %s", keys[i], doc);
    json_t *attr = json_object_get(d, "attr");
    assert_int_equal(json_integer_value(json_object_get(attr, keys[i])), (json_int_t)i + 10);
    assert_int_equal(json_integer_value(json_object_get(attr, "keep")), 1);
    assert_int_equal(json_object_size(attr), i + 2); /* nothing else appeared */
    json_decref(d);
    free(doc);
  }
  /* several in one job, paths SQLite can say between ones it cannot, in order */
  {
    job_conv_update_t j = {0};
    st_job_init(t, &j.job, JOB_CONV_UPDATE, 0);
    j.conv = conv;
    j.updated_at = 2500;
    j.changes = calloc(4, sizeof *j.changes);
    j.changes[0] = st_change("list", "[1,3]");
    j.changes[1] = st_change("k\"q", "\"quoted\"");
    j.changes[2] = st_change("we[ird", "1");
    j.changes[3] = st_change("odd\"[", "2");
    j.n = 4;
    assert_int_equal(st_submit_wait(t, &j.job), 0);
    doc_changes_free(j.changes, j.n);
    char *doc = NULL;
    assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
    json_t *d = json_loads(doc, 0, NULL);
    const char *kq = json_string_value(json_object_get(d, "k\"q"));
    if (!kq || strcmp(kq, "quoted") != 0 || !json_object_get(d, "list") || !json_object_get(d, "we[ird") ||
        !json_object_get(d, "odd\"["))
      fail_msg("stored document %s", doc);
    json_decref(d);
    free(doc);
  }
  /* and each goes again, alone */
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    job_conv_update_t j = {0};
    st_job_init(t, &j.job, JOB_CONV_UPDATE, 0);
    j.conv = conv;
    j.updated_at = 3000 + (int64_t)i;
    j.changes = calloc(1, sizeof *j.changes);
    j.changes[0] = (doc_change_t){DOC_UNSET, calloc(2, sizeof(char *)), 2, NULL};
    j.changes[0].path[0] = st_dup("attr");
    j.changes[0].path[1] = st_dup(keys[i]);
    j.n = 1;
    assert_int_equal(st_submit_wait(t, &j.job), 0);
    doc_changes_free(j.changes, j.n);
  }
  char *doc = NULL;
  assert_int_equal(store_conv_doc(t->r, conv, &doc), 0);
  json_t *d = json_loads(doc, 0, NULL);
  assert_int_equal(json_object_size(json_object_get(d, "attr")), 1);
  json_decref(d);
  free(doc);
  st_close(t);
}

static int set_job(st_t *t, int64_t conv, int set, int add, const char *client, int64_t at, int64_t expire_at,
                   int remove_members) {
  job_set_t j = {0};
  st_job_init(t, &j.job, JOB_SET_CHANGE, 0);
  j.conv = conv;
  j.set = set;
  j.add = add;
  j.at = at;
  j.expire_at = expire_at;
  j.remove_members = remove_members;
  const char *const v[] = {client, NULL};
  j.clients = st_list(v, &j.n);
  int rc = st_submit_wait(t, &j.job);
  st_list_free(j.clients, j.n);
  return rc;
}

typedef struct {
  int n;
  char client[8][16], role[8][16];
} infos_t;

static void infos_cb(void *arg, const member_info_t *mi) {
  infos_t *c = arg;
  if (c->n >= 8) return;
  snprintf(c->client[c->n], 16, "%s", mi->client);
  snprintf(c->role[c->n], 16, "%s", mi->role);
  c->n++;
}

typedef struct {
  int n;
  int64_t conv[8];
  char client[8][16];
} shutups_t;

static void shutups_cb(void *arg, int64_t conv, const char *cid, const char *client) {
  (void)cid;
  shutups_t *c = arg;
  if (c->n >= 8) return;
  c->conv[c->n] = conv;
  snprintf(c->client[c->n++], 16, "%s", client);
}

static void sets_roles_shutups_blocks(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  static const char *const abc[] = {"alice", "bob", "carol", NULL};
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, abc, NULL, NULL, 1000, NULL);
  assert_int_equal(set_job(t, conv, SET_MANAGER, 1, "bob", 2000, 0, 0), 0);
  infos_t in = {0};
  assert_int_equal(store_member_infos(t->r, conv, infos_cb, &in), 0);
  assert_int_equal(in.n, 1);
  assert_string_equal(in.client[0], "bob");
  assert_string_equal(in.role[0], "Manager");
  /* a temporary shut-up, then a permanent one of another client */
  assert_int_equal(set_job(t, conv, SET_SHUTUP, 1, "carol", 2000, 5000, 0), 0);
  assert_int_equal(set_job(t, conv, SET_SHUTUP, 1, "alice", 2000, 0, 0), 0);
  int64_t exp = -1;
  assert_int_equal(store_conv_set_expiry(t->r, conv, SET_SHUTUP, "carol", &exp), 0);
  assert_int_equal(exp, 5000);
  assert_int_equal(store_conv_set_expiry(t->r, conv, SET_SHUTUP, "alice", &exp), 0);
  assert_int_equal(exp, 0);
  assert_int_equal(store_conv_set_expiry(t->r, conv, SET_SHUTUP, "bob", &exp), TERN_ENOENT);
  st_pairs_t all = {0}, perm = {0};
  assert_int_equal(store_conv_set_page(t->r, conv, SET_SHUTUP, 0, NULL, 10, st_pairs_cb, &all), 0);
  assert_int_equal(all.n, 2);
  assert_int_equal(store_conv_set_page(t->r, conv, SET_SHUTUP, 1, NULL, 10, st_pairs_cb, &perm), 0);
  assert_int_equal(perm.n, 1);
  assert_string_equal(perm.s[0], "alice");
  shutups_t due = {0}, early = {0};
  assert_int_equal(store_shutups_expired(t->r, 4999, 10, shutups_cb, &early), 0);
  assert_int_equal(early.n, 0);
  assert_int_equal(store_shutups_expired(t->r, 5000, 10, shutups_cb, &due), 0);
  assert_int_equal(due.n, 1);
  assert_string_equal(due.client[0], "carol");
  assert_int_equal(due.conv[0], conv);
  /* a permanent entry over the temporary one makes it permanent */
  assert_int_equal(set_job(t, conv, SET_SHUTUP, 1, "carol", 2100, 0, 0), 0);
  assert_int_equal(store_conv_set_expiry(t->r, conv, SET_SHUTUP, "carol", &exp), 0);
  assert_int_equal(exp, 0);
  /* blocking with remove_members takes carol out of the members */
  assert_int_equal(set_job(t, conv, SET_BLOCK, 1, "carol", 2200, 0, 1), 0);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.nmembers, 2);
  assert_int_equal(row.nsets[SET_MANAGER], 1);
  assert_int_equal(row.nsets[SET_BLOCK], 1);
  assert_string_equal(row.sets[SET_BLOCK][0], "carol");
  conv_row_free(&row);
  /* and removals */
  assert_int_equal(set_job(t, conv, SET_BLOCK, 0, "carol", 2300, 0, 0), 0);
  assert_int_equal(set_job(t, conv, SET_MANAGER, 0, "bob", 2300, 0, 0), 0);
  assert_int_equal(store_conv_load(t->r, "c", &row), 0);
  assert_int_equal(row.nsets[SET_MANAGER], 0);
  assert_int_equal(row.nsets[SET_BLOCK], 0);
  conv_row_free(&row);
  st_close(t);
}

static int client_block_job(st_t *t, const char *client, const char *cid, int add) {
  job_client_block_t j = {0};
  st_job_init(t, &j.job, JOB_CLIENT_BLOCK, 0);
  j.add = add;
  j.client = st_dup(client);
  const char *const v[] = {cid, NULL};
  j.cids = st_list(v, &j.n);
  j.at = 1000;
  int rc = st_submit_wait(t, &j.job);
  free(j.client);
  st_list_free(j.cids, j.n);
  return rc;
}

static void client_blocks(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  assert_int_equal(client_block_job(t, "alice", "c1", 1), 0);
  assert_int_equal(client_block_job(t, "alice", "c2", 1), 0);
  assert_int_equal(store_client_blocked(t->r, "alice", "c1"), 1);
  assert_int_equal(store_client_blocked(t->r, "bob", "c1"), 0);
  st_pairs_t b = {0};
  assert_int_equal(store_client_blocks(t->r, "alice", "c1", 10, st_names_cb, &b), 0);
  assert_int_equal(b.n, 1);
  assert_string_equal(b.s[0], "c2");
  assert_int_equal(client_block_job(t, "alice", "c1", 0), 0);
  assert_int_equal(store_client_blocked(t->r, "alice", "c1"), 0);
  st_close(t);
}

typedef struct {
  int n;
  char cid[8][16];
  int64_t seq[8], patch_ts[8];
} patches_t;

static void patches_cb(void *arg, const char *cid, const msg_view_t *m) {
  patches_t *c = arg;
  if (c->n >= 8) return;
  snprintf(c->cid[c->n], 16, "%s", cid);
  c->seq[c->n] = m->seq;
  c->patch_ts[c->n++] = m->patch_ts;
}

static void msg_patch_delete(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "one", 0), 0);
  assert_int_equal(st_msg_insert(t, conv, 2000, 2, "alice", "two", 0), 0);
  assert_int_equal(st_msg_patch(t, JOB_MSG_PATCH, conv, 2000, 1, "edited", 3000), 0);
  st_msgs_t g = {0};
  assert_int_equal(store_msg_get(t->r, conv, 2000, 1, st_msgs_cb, &g), 0);
  assert_int_equal(g.n, 1);
  assert_string_equal(g.text[0], "edited");
  assert_int_equal(g.flags[0], MSG_F_RECALLED);
  assert_int_equal(g.patch_ts[0], 3000);
  patches_t p = {0};
  assert_int_equal(store_patches_since(t->r, "bob", 0, 10, patches_cb, &p), 0);
  assert_int_equal(p.n, 1);
  assert_string_equal(p.cid[0], "c");
  assert_int_equal(p.seq[0], 1);
  patches_t later = {0};
  assert_int_equal(store_patches_since(t->r, "bob", 3000, 10, patches_cb, &later), 0);
  assert_int_equal(later.n, 0);
  /* a patch or delete of a message that is not there fails */
  assert_int_equal(st_msg_patch(t, JOB_MSG_PATCH, conv, 2000, 9, "x", 3001), TERN_ESTORE);
  assert_int_equal(st_msg_patch(t, JOB_MSG_DELETE, conv, 2000, 2, NULL, 0), 0);
  st_msgs_t gone = {0};
  store_msg_get(t->r, conv, 2000, 2, st_msgs_cb, &gone);
  assert_int_equal(gone.n, 0);
  assert_int_equal(st_msg_patch(t, JOB_MSG_DELETE, conv, 2000, 2, NULL, 0), TERN_ESTORE);
  st_close(t);
}

typedef struct {
  int n;
  int64_t ts[8];
  char body[8][32];
} notifs_t;

static void notifs_cb(void *arg, int64_t ts, const char *body) {
  notifs_t *c = arg;
  if (c->n >= 8) return;
  c->ts[c->n] = ts;
  snprintf(c->body[c->n++], 32, "%s", body);
}

static int notif_job(st_t *t, int64_t ts, const char *body) {
  job_notif_t j = {0};
  st_job_init(t, &j.job, JOB_NOTIF, 0);
  j.ts = ts;
  j.body = st_dup(body);
  j.clients = st_list(AB, &j.n);
  int rc = st_submit_wait(t, &j.job);
  free(j.body);
  st_list_free(j.clients, j.n);
  return rc;
}

static void notifications_and_prune(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  assert_int_equal(notif_job(t, 1000, "{\"n\":1}"), 0);
  assert_int_equal(notif_job(t, 2000, "{\"n\":2}"), 0);
  assert_int_equal(notif_job(t, 3000, "{\"n\":3}"), 0);
  notifs_t n = {0};
  int more = -1;
  assert_int_equal(store_notifications(t->r, "bob", 1000, 10, &more, notifs_cb, &n), 0);
  assert_int_equal(n.n, 2);
  assert_int_equal(n.ts[0], 2000);
  assert_string_equal(n.body[1], "{\"n\":3}");
  assert_int_equal(more, 0);
  notifs_t lim = {0};
  assert_int_equal(store_notifications(t->r, "alice", 0, 1, &more, notifs_cb, &lim), 0);
  assert_int_equal(lim.n, 1);
  assert_int_equal(more, 1);
  job_prune_t p = {0};
  st_job_init(t, &p.job, JOB_PRUNE, 0);
  p.notif_before = 2500;
  assert_int_equal(st_submit_wait(t, &p.job), 0);
  notifs_t left = {0};
  assert_int_equal(store_notifications(t->r, "alice", 0, 10, &more, notifs_cb, &left), 0);
  assert_int_equal(left.n, 1);
  assert_int_equal(left.ts[0], 3000);
  st_close(t);
}

typedef struct {
  int n;
  char token[8][24], type[8][16];
  int inst[8];
  int64_t badge[8];
} devices_t;

static void devices_cb(void *arg, const device_view_t *d) {
  devices_t *c = arg;
  if (c->n >= 8) return;
  snprintf(c->token[c->n], 24, "%s", d->token);
  snprintf(c->type[c->n], 16, "%s", d->type);
  c->inst[c->n] = d->installation_id != NULL;
  c->badge[c->n++] = d->badge;
}

static int device_job(st_t *t, int op, const char *client, const char *token, int64_t badge, int add) {
  job_device_t j = {0};
  st_job_init(t, &j.job, JOB_DEVICE, 0);
  j.op = op;
  j.client = st_dup(client);
  j.token = st_dup(token);
  j.type = st_dup("ios");
  j.badge = badge;
  j.add = add;
  j.at = 1000;
  int rc = st_submit_wait(t, &j.job);
  free(j.client);
  free(j.token);
  free(j.type);
  return rc;
}

static void devices_and_badges(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  assert_int_equal(device_job(t, DEVICE_PUT, "alice", "tok-1", 0, 0), 0);
  assert_int_equal(device_job(t, DEVICE_BADGE, NULL, "tok-1", 3, 0), 0);
  assert_int_equal(device_job(t, DEVICE_BADGE, NULL, "tok-1", 2, 1), 0);
  devices_t d = {0};
  assert_int_equal(store_devices(t->r, "alice", 10, devices_cb, &d), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.token[0], "tok-1");
  assert_string_equal(d.type[0], "ios");
  assert_int_equal(d.badge[0], 5);
  /* the token reported for bob leaves alice */
  assert_int_equal(device_job(t, DEVICE_PUT, "bob", "tok-1", 0, 0), 0);
  devices_t a = {0}, b = {0};
  assert_int_equal(store_devices(t->r, "alice", 10, devices_cb, &a), 0);
  assert_int_equal(a.n, 0);
  assert_int_equal(store_devices(t->r, "bob", 10, devices_cb, &b), 0);
  assert_int_equal(b.n, 1);
  assert_int_equal(device_job(t, DEVICE_DROP, NULL, "tok-1", 0, 0), 0);
  devices_t none = {0};
  assert_int_equal(store_devices(t->r, "bob", 10, devices_cb, &none), 0);
  assert_int_equal(none.n, 0);
  st_close(t);
}

static void installations(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  job_installation_t j = {0};
  st_job_init(t, &j.job, JOB_INSTALLATION, 0);
  j.id = st_dup("inst-1");
  j.device_type = st_dup("android");
  j.token = st_dup("tok-9");
  j.body = st_dup("{\"deviceType\":\"android\"}");
  static const char *const ch[] = {"alice", "bob", NULL};
  j.channels = st_list(ch, &j.n);
  j.has_badge = 1;
  j.badge = 7;
  j.created_at = 1000;
  j.updated_at = 1001;
  assert_int_equal(st_submit_wait(t, &j.job), 0);
  installation_row_t row;
  assert_int_equal(store_installation_get(t->r, "inst-1", NULL, NULL, &row), 0);
  assert_string_equal(row.token, "tok-9");
  assert_string_equal(row.device_type, "android");
  assert_int_equal(row.created_at, 1000);
  assert_non_null(strstr(row.body, "deviceType"));
  installation_row_free(&row);
  assert_int_equal(store_installation_get(t->r, NULL, "android", "tok-9", &row), 0);
  assert_string_equal(row.id, "inst-1");
  installation_row_free(&row);
  devices_t d = {0};
  assert_int_equal(store_devices(t->r, "bob", 10, devices_cb, &d), 0);
  assert_int_equal(d.n, 1);
  assert_int_equal(d.inst[0], 1);
  assert_int_equal(d.badge[0], 7);
  /* removed: the row and its devices */
  j.job.result = 1;
  j.remove = 1;
  assert_int_equal(st_submit_wait(t, &j.job), 0);
  assert_int_equal(store_installation_get(t->r, "inst-1", NULL, NULL, &row), TERN_ENOENT);
  devices_t none = {0};
  assert_int_equal(store_devices(t->r, "bob", 10, devices_cb, &none), 0);
  assert_int_equal(none.n, 0);
  free(j.id);
  free(j.device_type);
  free(j.token);
  free(j.body);
  st_list_free(j.channels, j.n);
  st_close(t);
}

static void inst_put(st_t *t, const char *id, const char *type, const char *body, int64_t at) {
  job_installation_t j = {0};
  st_job_init(t, &j.job, JOB_INSTALLATION, 0);
  j.id = st_dup(id);
  j.device_type = st_dup(type);
  j.token = st_dup(id);
  j.body = st_dup(body);
  static const char *const none[] = {NULL};
  j.channels = st_list(none, &j.n);
  j.created_at = j.updated_at = at;
  assert_int_equal(st_submit_wait(t, &j.job), 0);
  free(j.id);
  free(j.device_type);
  free(j.token);
  free(j.body);
  st_list_free(j.channels, j.n);
}

static void inst_ids_cb(void *arg, const installation_row_t *row) {
  buf_t *b = arg;
  buf_printf(b, "%s%s", b->len ? "," : "", row->id);
}

/* The ids q selects, in its order, comma-separated (static: valid until the next call);
 * the count of the same where must agree with them when there is no limit or skip. */
static const char *inst_query(st_t *t, const store_cond_t *conds, size_t n, const char *order, int limit, int skip) {
  static char out[256];
  store_class_q_t q = {.conds = conds, .n = n, .order = order, .limit = limit ? limit : 100, .skip = skip};
  buf_t b = BUF_INIT;
  assert_int_equal(store_installation_query(t->r, &q, inst_ids_cb, &b), 0);
  snprintf(out, sizeof out, "%s", b.len ? buf_cstr(&b) : "");
  int64_t count = -1;
  assert_int_equal(store_installation_count(t->r, &q, &count), 0);
  int64_t ids = *out ? 1 : 0;
  for (const char *p = out; *p; p++) ids += *p == ',';
  if (!limit && !skip) assert_int_equal(count, ids);
  buf_free(&b);
  return out;
}

/* _Installation queries (store_class_q_t): columns, paths into the object (an array field
 * equals a value it contains), IN / NIN, EXISTS, numbers, times, order, limit and skip. */
static void installation_queries(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  inst_put(t, "a", "android", "{\"badge\":1,\"channels\":[\"x\",\"y\"],\"meta\":{\"size\":2.5},\"q\\\"k\":\"v\"}",
           1000);
  inst_put(t, "b", "ios", "{\"badge\":3,\"channels\":[\"y\"]}", 2000);
  inst_put(t, "c", "ios", "{\"badge\":2}", 3000);
  json_t *ios = json_string("ios"), *y = json_string("y"), *in13 = json_pack("[i,i]", 1, 3), *one = json_integer(1),
         *two = json_real(2.0), *yes = json_true(), *no = json_false(), *v = json_string("v");
  assert_string_equal(inst_query(t, NULL, 0, NULL, 0, 0), "a,b,c");
  store_cond_t c1[] = {{"deviceType", STORE_EQ, ios, 0, 0}};
  assert_string_equal(inst_query(t, c1, 1, "-createdAt", 0, 0), "c,b");
  store_cond_t c2[] = {{"channels", STORE_EQ, y, 0, 0}};
  assert_string_equal(inst_query(t, c2, 1, "objectId", 0, 0), "a,b");
  store_cond_t c3[] = {{"channels", STORE_NE, y, 0, 0}};
  assert_string_equal(inst_query(t, c3, 1, NULL, 0, 0), "c");
  store_cond_t c4[] = {{"badge", STORE_IN, in13, 0, 0}};
  assert_string_equal(inst_query(t, c4, 1, NULL, 0, 0), "a,b");
  store_cond_t c5[] = {{"badge", STORE_NIN, in13, 0, 0}};
  assert_string_equal(inst_query(t, c5, 1, NULL, 0, 0), "c");
  store_cond_t c6[] = {{"badge", STORE_GT, one, 0, 0}, {"deviceType", STORE_EQ, ios, 0, 0}};
  assert_string_equal(inst_query(t, c6, 2, "-badge,-objectId", 0, 0), "c,b"); /* badge: no such order key */
  store_cond_t c7[] = {{"meta.size", STORE_GT, two, 0, 0}};
  assert_string_equal(inst_query(t, c7, 1, NULL, 0, 0), "a");
  store_cond_t c8[] = {{"meta.size", STORE_EXISTS, yes, 0, 0}};
  assert_string_equal(inst_query(t, c8, 1, NULL, 0, 0), "a");
  store_cond_t c9[] = {{"meta.size", STORE_EXISTS, no, 0, 0}};
  assert_string_equal(inst_query(t, c9, 1, NULL, 0, 0), "b,c");
  store_cond_t c10[] = {{"createdAt", STORE_GTE, NULL, 1, 2000}};
  assert_string_equal(inst_query(t, c10, 1, NULL, 0, 0), "b,c");
  /* a key as the object holds it, quote and all; one SQLite cannot address matches nothing */
  store_cond_t c11[] = {{"q\"k", STORE_EQ, v, 0, 0}};
  assert_string_equal(inst_query(t, c11, 1, NULL, 0, 0), "a");
  store_cond_t c12[] = {{"q\"[k", STORE_EXISTS, no, 0, 0}};
  assert_string_equal(inst_query(t, c12, 1, NULL, 0, 0), "");
  assert_string_equal(inst_query(t, NULL, 0, "-createdAt", 1, 1), "b");
  json_decref(ios);
  json_decref(y);
  json_decref(in13);
  json_decref(one);
  json_decref(two);
  json_decref(yes);
  json_decref(no);
  json_decref(v);
  st_close(t);
}

static void revocations(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t now = now_ms();
  job_revoke_t a = {0};
  st_job_init(t, &a.job, JOB_REVOKE, 0);
  a.client = st_dup("alice");
  a.at = now;
  a.expires_at = now + 3600000;
  assert_int_equal(st_submit_wait(t, &a.job), 0);
  job_revoke_t l = {0};
  st_job_init(t, &l.job, JOB_REVOKE, 0);
  memcpy(l.lineage, "LINEAGE1", 8);
  l.at = now;
  l.expires_at = now + 3600000;
  assert_int_equal(st_submit_wait(t, &l.job), 0);
  int64_t before = -1;
  int lin = -1;
  assert_int_equal(store_token_revoked(t->r, "alice", (const uint8_t *)"OTHERLIN", &before, &lin), 0);
  assert_int_equal(before, now);
  assert_int_equal(lin, 0);
  assert_int_equal(store_token_revoked(t->r, "bob", (const uint8_t *)"LINEAGE1", &before, &lin), 0);
  assert_int_equal(before, 0);
  assert_int_equal(lin, 1);
  /* a later kick moves the cut forward, an earlier one never back */
  a.job.result = 1;
  a.at = now - 5000;
  assert_int_equal(st_submit_wait(t, &a.job), 0);
  assert_int_equal(store_token_revoked(t->r, "alice", (const uint8_t *)"OTHERLIN", &before, &lin), 0);
  assert_int_equal(before, now);
  /* rows whose tokens have all expired go with a later revocation */
  job_revoke_t old = {0};
  st_job_init(t, &old.job, JOB_REVOKE, 0);
  old.client = st_dup("carol");
  old.at = now - 10000;
  old.expires_at = now - 5000;
  assert_int_equal(st_submit_wait(t, &old.job), 0);
  job_revoke_t later = {0};
  st_job_init(t, &later.job, JOB_REVOKE, 0);
  later.client = st_dup("dave");
  later.at = now;
  later.expires_at = now + 1000;
  assert_int_equal(st_submit_wait(t, &later.job), 0);
  assert_int_equal(store_token_revoked(t->r, "carol", (const uint8_t *)"OTHERLIN", &before, &lin), 0);
  assert_int_equal(before, 0);
  free(a.client);
  free(old.client);
  free(later.client);
  st_close(t);
}

typedef struct {
  int n;
  int64_t id[8];
  char cid[8][16];
} expired_t;

static void expired_cb(void *arg, int64_t id, const char *cid, int kind) {
  (void)kind;
  expired_t *c = arg;
  if (c->n >= 8) return;
  c->id[c->n] = id;
  snprintf(c->cid[c->n++], 16, "%s", cid);
}

typedef struct {
  int n;
  char cid[8][16], doc[8][64];
  int kind[8];
  long nmembers[8];    /* -1: no member list */
  int64_t last_seq[8]; /* -1: no last message */
} views_t;

static void views_cb(void *arg, const conv_view_t *c) {
  views_t *v = arg;
  if (v->n >= 8) return;
  snprintf(v->cid[v->n], 16, "%s", c->cid);
  snprintf(v->doc[v->n], 64, "%s", c->doc ? c->doc : "");
  v->kind[v->n] = c->kind;
  v->nmembers[v->n] = c->members ? (long)c->nmembers : -1;
  v->last_seq[v->n] = c->last ? c->last->seq : -1;
  v->n++;
}

/* A conversation's stored lm (its last message's time, what the idle sweep compares) may lag
 * its messages by about a second, and no more while commits keep coming: every one of
 * conversations spread over the PostgreSQL writer's lm slices (pg_writer.c: LM_SLICES), and
 * SQLite's one flush a second, is written within LM_FLUSH_US of its message. */
#define LM_CONVS 20
static void lm_written_within_a_second(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t filler = st_conv_create(t, "lm-filler", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  for (int i = 0; i < LM_CONVS; i++) {
    char cid[16];
    snprintf(cid, sizeof cid, "lm%d", i);
    int64_t conv = st_conv_create(t, cid, CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
    assert_true(conv > 0);
    assert_int_equal(st_msg_insert(t, conv, 5000, 1, "alice", "x", 0), 0);
  }
  /* idle since before 3,000 by their rows until lm is written: all of them, and the filler */
  expired_t e = {0};
  int64_t t0 = now_ms(), waited = 0;
  for (int seq = 1;; seq++) {
    e.n = 0;
    assert_int_equal(store_expired(t->r, 6000, 3000, LM_CONVS + 1, expired_cb, &e), 0);
    waited = now_ms() - t0;
    if (e.n == 0 || waited > 2500) break;
    assert_int_equal(st_msg_insert(t, filler, 5000, seq, "bob", "keep committing", 0), 0);
    usleep(20000);
  }
  print_message("lm: every conversation's written after %lld ms\n", (long long)waited);
  assert_int_equal(e.n, 0);
  st_close(t);
}

static void conv_delete_and_expiry(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t tmp = st_conv_create(t, "_tmp:x", CONV_TEMP, AB, NULL, NULL, 1000, NULL); /* expires at 2000 */
  assert_true(tmp > 0);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "x", 0), 0);
  assert_int_equal(set_job(t, conv, SET_MANAGER, 1, "bob", 2000, 0, 0), 0);
  expired_t e = {0};
  assert_int_equal(store_expired(t->r, 2000, 0, 10, expired_cb, &e), 0);
  assert_int_equal(e.n, 1);
  assert_string_equal(e.cid[0], "_tmp:x");
  expired_t idle = {0}; /* idle since before 10,000: both */
  assert_int_equal(store_expired(t->r, 2000, 10000, 10, expired_cb, &idle), 0);
  assert_int_equal(idle.n, 2);
  const char *const cids[] = {"c", "_tmp:x", "missing"};
  views_t v = {0};
  assert_int_equal(store_conv_fetch(t->r, cids, 3, 0, views_cb, &v), 0);
  assert_int_equal(v.n, 2);
  int c = strcmp(v.cid[0], "c") == 0 ? 0 : 1;
  assert_string_equal(v.cid[c], "c");
  assert_int_equal(v.kind[c], CONV_NORMAL);
  assert_int_equal(v.nmembers[c], 2);
  assert_int_equal(v.kind[1 - c], CONV_TEMP);
  assert_int_equal(v.last_seq[c], -1); /* not asked for */
  views_t wl = {0};
  assert_int_equal(store_conv_fetch(t->r, cids, 1, 3, views_cb, &wl), 0); /* compact, with the last message */
  assert_int_equal(wl.n, 1);
  assert_int_equal(wl.nmembers[0], -1);
  assert_int_equal(wl.last_seq[0], 1);
  assert_non_null(strstr(wl.doc[0], "{"));
  assert_int_equal(members_job(t, JOB_CONV_DELETE, conv, NULL, 3000, 0, 0), 0);
  conv_row_t row;
  assert_int_equal(store_conv_load(t->r, "c", &row), TERN_ENOENT);
  st_msgs_t g = {0};
  store_msg_get(t->r, conv, 2000, 1, st_msgs_cb, &g);
  assert_int_equal(g.n, 0);
  infos_t in = {0};
  assert_int_equal(store_member_infos(t->r, conv, infos_cb, &in), 0);
  assert_int_equal(in.n, 0);
  st_pairs_t convs = {0};
  assert_int_equal(store_client_convs(t->r, "alice", CONV_NORMAL, NULL, 10, st_pairs_cb, &convs), 0);
  assert_int_equal(convs.n, 0);
  st_close(t);
}

typedef struct {
  int n;
  char cid[16][16];
  int64_t seq[16];
} app_t;

static void app_cb(void *arg, const char *cid, int kind, const msg_view_t *m) {
  (void)kind;
  app_t *c = arg;
  if (c->n >= 16) return;
  snprintf(c->cid[c->n], 16, "%s", cid);
  c->seq[c->n++] = m->seq;
}

static void app_wide_history(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t c1 = st_conv_create(t, "c1", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t c2 = st_conv_create(t, "c2", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, c1, 2000, 1, "alice", "a", 0), 0);
  assert_int_equal(st_msg_insert(t, c2, 2001, 1, "bob", "b", 0), 0);
  assert_int_equal(st_msg_insert(t, c1, 2002, 2, "alice", "c", 0), 0);
  app_logs_req_t q = {.limit = 10};
  app_t all = {0};
  assert_int_equal(store_app_logs(t->r, &q, app_cb, &all), 0);
  assert_int_equal(all.n, 3);
  assert_string_equal(all.cid[0], "c1"); /* newest first */
  assert_int_equal(all.seq[0], 2);
  assert_string_equal(all.cid[1], "c2");
  app_logs_req_t qs = {.limit = 10, .newer = 1, .sender = "alice"};
  app_t mine = {0};
  assert_int_equal(store_app_logs(t->r, &qs, app_cb, &mine), 0);
  assert_int_equal(mine.n, 2);
  assert_int_equal(mine.seq[0], 1);
  st_close(t);
}

/* An online backup is a store of its own with every committed job in it; a second one to
 * the same file is refused. A backend without one (PostgreSQL: pg_dump's job) says so. */
static void backup_and_metrics(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "kept", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  assert_int_equal(st_msg_insert(t, conv, 2000, 1, "alice", "in the copy", 0), 0);
  buf_t m = BUF_INIT;
  store_metrics(t->s, &m);
  assert_non_null(strstr(buf_cstr(&m), st_current->metric));
  buf_free(&m);
  char dest[600];
  snprintf(dest, sizeof dest, "%s/copy.db", t->dir);
  int64_t bytes = 0;
  if (!st_current->online_backup) {
    assert_int_equal(store_backup(t->s, dest, &bytes), TERN_ENOTSUP);
    assert_int_equal(access(dest, F_OK), -1); /* and nothing made */
    st_close(t);
    return;
  }
  assert_int_equal(store_backup(t->s, dest, &bytes), 0);
  assert_true(bytes > 0);
  assert_int_equal(store_backup(t->s, dest, &bytes), TERN_EEXIST);
  store_options_t so = {.path = dest, .inline_writes = 1};
  store_t *copy = NULL;
  assert_int_equal(store_open(t->b->ops, &so, &copy), 0);
  store_reader_t *r = store_reader_new(copy);
  conv_row_t row;
  assert_int_equal(store_conv_load(r, "kept", &row), 0);
  assert_int_equal(row.last_seq, 1);
  conv_row_free(&row);
  store_reader_free(r);
  store_close(copy);
  st_close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(conv_create_and_load),
      cmocka_unit_test(msg_insert_logs_get),
      cmocka_unit_test(msg_readers_visibility),
      cmocka_unit_test(receipts_flag_their_conversation),
      cmocka_unit_test(ack_read_progress_unread),
      cmocka_unit_test(members_add_remove),
      cmocka_unit_test(unread_for_every_kind_of_member),
      cmocka_unit_test(conv_update_doc),
      cmocka_unit_test(conv_update_any_key),
      cmocka_unit_test(sets_roles_shutups_blocks),
      cmocka_unit_test(client_blocks),
      cmocka_unit_test(msg_patch_delete),
      cmocka_unit_test(notifications_and_prune),
      cmocka_unit_test(devices_and_badges),
      cmocka_unit_test(installations),
      cmocka_unit_test(installation_queries), /* store_class_q_t */
      cmocka_unit_test(revocations),
      cmocka_unit_test(conv_delete_and_expiry),
      cmocka_unit_test(lm_written_within_a_second),
      cmocka_unit_test(app_wide_history),
      cmocka_unit_test(backup_and_metrics),
  };
  return st_run_groups(tests, sizeof tests / sizeof tests[0]);
}
