/* store_sqlite_hot.c — where the writer puts new messages: two small tables in arrival
 * order, moved into msg a conversation range at a time (issue #17 point 3).
 *
 * msg is a b-tree keyed (conv, ts, seq). A commit of N messages to N conversations wrote
 * one leaf of it per conversation, and since a conversation's newest messages share a leaf
 * with the next conversation's oldest, that leaf filled in the middle and SQLite rebalanced
 * it with its siblings: 1.8–1.9 WAL pages a message at 10,000–50,000 paced messages/s, each
 * page copied again by the checkpointer, the WAL restarting (a writer hold) every ~4,500
 * messages (bench/README.md, "Pairs that do not send in step").
 *
 * So a commit appends its messages to msg_hot<active> (a rowid table: its new rows share
 * the table's last pages; its (conv, ts, seq) index is small and stays in the cache), and
 * every hot_interval the other table becomes the active one and the full one moves into msg:
 * one step per commit, each the rows of the next range of conversation ids (whole
 * conversations, at least HOT_STEP_ROWS rows or twice the commit's messages, in key order),
 * until the table is emptied in one statement. A conversation that got k messages in the
 * interval costs its msg leaf once for the k.
 * Moved rows stay in the moving table until it is emptied; msg_hot_state.upto (same
 * transaction as the step) says which, and the view msg_all, which every read of messages
 * selects from, leaves them out. Updates and deletes of a message apply to all three
 * tables, so a moved row's stale copy always equals the copy in msg (reads that only take
 * the newest ts, QUERY_LAST_TS, may look at it).
 *
 * That pays when a commit carries one or two messages of each conversation, as paced
 * traffic does; a conversation with several in one commit (flat out, a busy group) already
 * shares its leaf among them, and its messages, moved later, would cost two writes each: a
 * commit's second and later messages of a conversation go straight into msg (flat out, 9.5
 * against 6.7 µs a message before that).
 *
 * A key taken fails its insert (store.h) wherever it is: the target table's own key sees
 * its own, seeks in the other two see theirs — ~3 µs a message at 50,000/s. The writer keeps
 * each conversation's newest stored key (a direct-mapped cache, filled by a seek in each table
 * on a miss), and a key past it, as the allocator's always are, needs no seek.
 *
 * Everything here runs on the writer's connection inside the batch's transaction; the
 * in-memory state (work) follows the statements and becomes the committed one (state)
 * only when the transaction commits (sq_hot_done). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "store_sqlite_core.h"

/* A step moves whole conversations, at least this many rows, or twice the messages its
 * batch inserted: the move keeps ahead of the inserts, and no commit carries much of it. */
#define HOT_STEP_ROWS 64

static const char *const TABLE[3] = {"msg_hot0", "msg_hot1", "msg"};
#define MSG 2 /* TABLE[MSG] */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

int sq_hot_open(store_t *s) {
  sq_hot_t *h = &s->hot;
  sqlite3_stmt *st;
  if (sq_prepare(s->wdb, "SELECT active, draining, upto FROM msg_hot_state", &st) < 0) return TERN_ESTORE;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    h->state.active = sqlite3_column_int(st, 0);
    h->state.draining = sqlite3_column_int(st, 1);
    h->state.upto = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW) return TERN_ESTORE;
  h->work = h->state;
  h->since_us = sq_mono_us();
  h->newest = xcalloc(HOT_NEWEST_SLOTS, sizeof *h->newest);
  for (int i = 0; i < 3; i++) {
    char sql[480];
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (" SQ_HOT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &h->ins[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql,
             "INSERT INTO %s (" SQ_HOT_COLS ") SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12"
             " WHERE NOT EXISTS (SELECT 1 FROM %s WHERE conv = ?1 AND ts = ?2 AND seq = ?3)"
             " AND NOT EXISTS (SELECT 1 FROM %s WHERE conv = ?1 AND ts = ?2 AND seq = ?3)",
             TABLE[i], TABLE[(i + 1) % 3], TABLE[(i + 2) % 3]);
    if (sq_prepare(s->wdb, sql, &h->ins_checked[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql, "SELECT ts, seq FROM %s WHERE conv = ?1 ORDER BY ts DESC, seq DESC LIMIT 1", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &h->last[i]) < 0) return TERN_ESTORE;
    /* a message's update and delete run on all three (a moved row's stale copy stays equal
     * to msg's); lctype follows the new content: a recall is a -127 message from then on */
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE conv = ?1", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &s->del_conv_msgs[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE conv = ?1 AND ts = ?2 AND seq = ?3", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &s->del_msg[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql,
             "UPDATE %s SET data = ?1, flags = ?2, mentions = ?3, patch_ts = ?4, lctype = ?8"
             " WHERE conv = ?5 AND ts = ?6 AND seq = ?7",
             TABLE[i]);
    if (sq_prepare(s->wdb, sql, &s->upd_msg[i]) < 0) return TERN_ESTORE;
    if (i == MSG) continue;
    snprintf(sql, sizeof sql, "SELECT conv FROM %s WHERE conv > ?1 ORDER BY conv LIMIT 1 OFFSET ?2", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &h->next[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql,
             "INSERT INTO msg (" SQ_HOT_COLS ") SELECT " SQ_HOT_COLS " FROM %s WHERE conv > ?1 AND conv <= ?2"
             " ORDER BY conv, ts, seq",
             TABLE[i]);
    if (sq_prepare(s->wdb, sql, &h->move[i]) < 0) return TERN_ESTORE;
    snprintf(sql, sizeof sql, "DELETE FROM %s", TABLE[i]);
    if (sq_prepare(s->wdb, sql, &h->empty[i]) < 0) return TERN_ESTORE;
  }
  return sq_prepare(s->wdb, "UPDATE msg_hot_state SET active = ?1, draining = ?2, upto = ?3", &h->put);
}

void sq_hot_close(store_t *s) {
  sq_hot_t *h = &s->hot;
  for (int i = 0; i < 3; i++) {
    sqlite3_finalize(h->ins[i]);
    sqlite3_finalize(h->ins_checked[i]);
    sqlite3_finalize(h->last[i]);
    sqlite3_finalize(s->upd_msg[i]);
    sqlite3_finalize(s->del_msg[i]);
    sqlite3_finalize(s->del_conv_msgs[i]);
    if (i == MSG) continue;
    sqlite3_finalize(h->next[i]);
    sqlite3_finalize(h->move[i]);
    sqlite3_finalize(h->empty[i]);
  }
  sqlite3_finalize(h->put);
  free(h->newest);
  free(h->count.v);
}

/* conv's newest stored key, from the cache or by a seek in each table; 0 or the SQLite error. */
static int newest_key(sq_hot_t *h, int64_t conv, sq_hot_key_t **out) {
  sq_hot_key_t *k = &h->newest[sq_conv_hash(conv, HOT_NEWEST_SLOTS)];
  *out = k;
  if (k->conv == conv) return 0;
  k->conv = 0;
  int64_t ts = 0, seq = 0;
  for (int i = 0; i < 3; i++) {
    sqlite3_stmt *st = h->last[i];
    sqlite3_bind_int64(st, 1, conv);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && (sqlite3_column_int64(st, 0) > ts ||
                             (sqlite3_column_int64(st, 0) == ts && sqlite3_column_int64(st, 1) > seq))) {
      ts = sqlite3_column_int64(st, 0);
      seq = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  }
  *k = (sq_hot_key_t){conv, ts, seq};
  return 0;
}

int sq_hot_insert(store_t *s, int64_t conv, int64_t ts, int64_t seq, sqlite3_stmt **st) {
  sq_hot_t *h = &s->hot;
  sq_hot_key_t *k;
  int rc = newest_key(h, conv, &k);
  if (rc) return rc;
  const conv_slot_t *c = sq_conv_find(&h->count, conv);
  int table = c && c->v > 1 ? MSG : h->work.active;
  int checked = ts < k->ts || (ts == k->ts && seq <= k->seq); /* not past the newest: it may be taken */
  if (!checked) {
    k->ts = ts; /* too new when the batch rolls back: that only costs a seek */
    k->seq = seq;
  }
  h->inserted += table != MSG;
  *st = (checked ? h->ins_checked : h->ins)[table];
  return 0;
}

int sq_hot_insert_done(store_t *s, int rc) {
  /* a checked insert that found its key taken inserts nothing; a plain one inserts its row */
  if (rc) return rc;
  return sqlite3_changes(s->wdb) == 1 ? 0 : SQLITE_CONSTRAINT_PRIMARYKEY;
}

void sq_hot_forget(store_t *s, int64_t conv) {
  sq_hot_key_t *k = &s->hot.newest[sq_conv_hash(conv, HOT_NEWEST_SLOTS)];
  if (k->conv == conv) k->conv = 0;
}

static int put_state(sq_hot_t *h) {
  sqlite3_bind_int(h->put, 1, h->work.active);
  sqlite3_bind_int(h->put, 2, h->work.draining);
  sqlite3_bind_int64(h->put, 3, h->work.upto);
  return sq_step_done(h->put);
}

/* The active table stops taking messages, to be moved. */
static void retire_active(sq_hot_t *h) {
  h->work.draining = h->work.active;
  h->work.upto = 0;
}

/* Moves the draining table's conversations in (upto, hi] into msg; with hi INT64_MAX,
 * the rest, and empties it. */
static int move_range(sq_hot_t *h, int64_t hi) {
  int d = h->work.draining;
  sqlite3_bind_int64(h->move[d], 1, h->work.upto);
  sqlite3_bind_int64(h->move[d], 2, hi);
  int rc = sq_step_done(h->move[d]);
  if (rc) return rc;
  if (hi == INT64_MAX) {
    if ((rc = sq_step_done(h->empty[d]))) return rc;
    h->work.draining = -1;
    h->work.upto = 0;
  } else {
    h->work.upto = hi;
  }
  return put_state(h);
}

int sq_hot_step(store_t *s, int64_t now_us) {
  sq_hot_t *h = &s->hot;
  if (h->work.draining < 0) {
    if (now_us - h->since_us < s->hot_interval_us) return 0;
    retire_active(h);
    h->work.active ^= 1; /* the other table was emptied by the last drain */
    h->switched_us = now_us;
    return put_state(h);
  }
  int d = h->work.draining;
  int64_t hi = INT64_MAX, rows = s->hot_step_rows ? s->hot_step_rows : max64(HOT_STEP_ROWS, 2 * h->inserted);
  sqlite3_stmt *st = h->next[d];
  sqlite3_bind_int64(st, 1, h->work.upto);
  sqlite3_bind_int64(st, 2, rows);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) hi = sqlite3_column_int64(st, 0); /* that conversation whole: always progress */
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  return move_range(h, hi);
}

/* Moves every hot row into msg. */
static int flush_all(store_t *s) {
  sq_hot_t *h = &s->hot;
  int rc;
  if (h->work.draining >= 0 && (rc = move_range(h, INT64_MAX))) return rc;
  retire_active(h);
  return move_range(h, INT64_MAX);
}

int sq_hot_batch(store_t *s, const store_job_t *batch) {
  int import = 0;
  for (const store_job_t *j = batch; j; j = j->next) {
    if (j->type == JOB_MSG_INSERT) sq_conv_slot(&s->hot.count, ((const job_msg_insert_t *)j)->conv)->v++;
    import |= j->type == JOB_IMPORT;
  }
  return import ? flush_all(s) : 0; /* the import reads and writes msg alone */
}

void sq_hot_done(store_t *s, int committed) {
  sq_hot_t *h = &s->hot;
  h->inserted = 0;
  free(h->count.v); /* sized by the batch: a flat-out one's table is not kept for the paced ones after */
  h->count = (conv_tab_t){0};
  if (!committed) {
    h->work = h->state;
    return;
  }
  if (h->work.active != h->state.active) h->since_us = h->switched_us;
  h->state = h->work;
}
