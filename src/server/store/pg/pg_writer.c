/* pg_writer.c — the PostgreSQL backend's writes: one writer thread with one connection,
 * group commit, every write job type.
 *
 * As on SQLite (store_sqlite.c): whatever has queued while the last transaction committed
 * goes into the next one, and each job's completion is posted to its worker only once the
 * commit has returned (its COMMIT, or the Sync of a flight without one: attempt_piped_run)
 * — with synchronous_commit on, once PostgreSQL has flushed its WAL.
 * One connection keeps each worker's jobs (and every conversation's messages) in
 * submission order without any further bookkeeping.
 *
 * Failing alone. A PostgreSQL error aborts the whole transaction, so the expected
 * conflicts never raise one: a message key or a conversation id that is taken is an
 * INSERT … ON CONFLICT DO NOTHING that changed no row, and the job fails by itself (the
 * same results as SQLite's). A batch is first run without savepoints (a savepoint costs a
 * round trip per job); if a statement does fail, the transaction is rolled back and the
 * batch run again with a savepoint around each job, so that only the failing job fails.
 * A commit that fails, or a connection that goes, fails every job of the batch
 * (TERN_ESTORE): none of them is acked. Whether a COMMIT whose answer was lost committed
 * cannot be known; its jobs are reported failed, never acked — a client retries a send,
 * and the retry is a new message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "pg_int.h"
#include "writer.h"

#define BATCH_MAX 4096
/* How long a conversation's stored lm may lag its messages (store_sqlite_writer.c says why
 * it may). The notes are written in LM_SLICES slices, one every LM_FLUSH_US / LM_SLICES,
 * each the conversations whose id is the slice's number modulo LM_SLICES: one statement
 * for every conversation a busy second touched (500 at 10,000 paced msgs/s) held the batch
 * it rode in ~6 ms, and every message queued behind it, once a second — p99 7–26 ms on one
 * node at 10,000/s against 4.6–6.5 without the flush (bench/README.md, "The lm flush"). */
#define LM_FLUSH_US 1000000
#define LM_SLICES 8

/* What a job's run gives: done, a conflict the caller learns of (TERN_EEXIST), a failure
 * of this job alone with nothing written (JOB_SOFT), or a failed statement (JOB_SQL: the
 * transaction is aborted). */
enum { JOB_SOFT = 1, JOB_SQL = -1 };

static int run1(store_t *s, int id, pgargs_t *a, int64_t *changes) {
  PGresult *r;
  if (pgc_run(&s->w, id, a, &r) < 0) return JOB_SQL;
  if (changes) *changes = pg_changes(r);
  PQclear(r);
  return 0;
}

/* ---- notes per conversation (pg_int.h: pg_note_t), on the one hash map (map.h) */

static pg_note_t *note_find(const map_t *m, int64_t conv) {
  map_node_t *n = map_find(m, &conv, sizeof conv);
  return n ? (pg_note_t *)n : NULL;
}

static int key_after(int64_t ts, int64_t seq, int64_t ts2, int64_t seq2) {
  return ts > ts2 || (ts == ts2 && seq > seq2);
}

/* conv's note, created at (ts, seq) or moved forward to it. */
static pg_note_t *note_raise(map_t *m, int64_t conv, int64_t ts, int64_t seq) {
  pg_note_t *e = note_find(m, conv);
  if (!e) {
    e = xcalloc(1, sizeof *e);
    e->conv = conv;
    e->ts = ts;
    e->seq = seq;
    e->node.key = &e->conv;
    e->node.klen = sizeof e->conv;
    map_add(m, &e->node);
  } else if (key_after(ts, seq, e->ts, e->seq)) {
    e->ts = ts;
    e->seq = seq;
  }
  return e;
}

/* Whether conv is in lm's slice `slice` (LM_SLICES; -1: every conversation). */
static int in_slice(int64_t conv, int slice) { return slice < 0 || (uint64_t)conv % LM_SLICES == (uint64_t)slice; }

/* m's notes in the slice, removed and freed. */
static void notes_drop(map_t *m, int slice) {
  if (!m->b || !m->n) return;
  map_iter_t it;
  for (map_node_t *n = map_first(m, &it); n; n = map_next(m, &it))
    if (in_slice(((pg_note_t *)n)->conv, slice)) {
      map_remove(m, n);
      free(n);
    }
}

void pg_notes_clear(map_t *m) { notes_drop(m, -1); }

/* ---- message order across writers (docs/cluster.md, "Message order across nodes")
 *
 * Several nodes' writers insert into one conversation; each node allocates keys from its own
 * cache, so a key can reach the store after a later one (a node whose clock is behind, or
 * whose cached newest key is stale). Messages whose job asks for it (store.h: rekey) are
 * therefore stored past the conversation's newest key: the transaction first takes one
 * advisory lock per conversation of its messages (sorted, before any other lock: no cycle
 * with another writer), held to its COMMIT, then reads the newest stored keys; a message
 * not past its conversation's newest is moved to (max(ts, newest ts), newest seq + 1). So a
 * conversation's history is in commit order, and an ack never names a place before a
 * message acked earlier. Two round trips per batch holding messages, not per message.
 *
 * Usually nothing moves: each node's keys come from the clock, and another node's later
 * key is rare (a clock behind, two sends in one millisecond). So the first attempt hopes:
 * the locks and a check go in the batch's one flight (PG_ORDER_GATE, in its first message
 * statement: each conversation's first key of the batch against its newest, after the
 * locks), the keys as given — one round trip per batch. A key behind fails the check, the flight aborts and nothing of it commits
 * (PG_ORDER_BEHIND), and the batch runs again the way above, as do the next
 * ORDER_HOPE_AFTER batches (tern_store_pg_order_retries_total): a conversation flooded from
 * two nodes keeps doing it, while a key behind now and then (two ends within one
 * millisecond) should not cost many batches their round trip. One thing is read before the
 * locks are granted then, not after: whether a job's sender left (store_msg_gone_settle) —
 * a mark that comes within that round trip finds the job already queued as a plain insert
 * (docs/cluster.md, "A send whose ack died with its node is stored once"). */
#define PG_ORDER_BEHIND "TN001" /* tern_order_behind (pg_schema.c): a key not past the newest */
#define ORDER_HOPE_AFTER 64

typedef struct {
  int64_t conv, ts, seq;
} okey_t;

static int cmp_okey(const void *a, const void *b) {
  const okey_t *x = a, *y = b;
  if (x->conv != y->conv) return x->conv < y->conv ? -1 : 1;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The sorted distinct conversations of the batch's messages that ask for their order
 * (rekey), as PostgreSQL arrays: their ids into arr[0] and, when arr[1] and arr[2] are
 * given, each one's first key of the batch (ts, seq); how many messages (0: none, the
 * arrays left empty). */
static size_t order_ids(store_job_t *batch, buf_t *arr[3]) {
  size_t n = 0, cap = 0;
  okey_t *k = NULL;
  for (store_job_t *j = batch; j; j = j->next) {
    const job_msg_insert_t *m = (const job_msg_insert_t *)j;
    if (j->type != JOB_MSG_INSERT || !m->rekey) continue;
    if (n == cap) k = xrealloc(k, (cap = cap ? cap * 2 : 16) * sizeof *k);
    k[n++] = (okey_t){m->conv, m->ts, m->seq};
  }
  if (!n) return 0;
  qsort(k, n, sizeof *k, cmp_okey);
  for (size_t i = 0; i < n; i++) {
    if (i && k[i].conv == k[i - 1].conv) continue;
    const char *sep = i ? "," : "{";
    buf_printf(arr[0], "%s%lld", sep, (long long)k[i].conv);
    if (arr[1]) buf_printf(arr[1], "%s%lld", sep, (long long)k[i].ts);
    if (arr[2]) buf_printf(arr[2], "%s%lld", sep, (long long)k[i].seq);
  }
  for (int a = 0; a < 3; a++)
    if (arr[a]) buf_append_str(arr[a], "}");
  free(k);
  return n;
}

/* s->order from ORDER_NEWEST's rows. */
static void order_note(store_t *s, const PGresult *r) {
  for (int i = 0; i < PQntuples(r); i++) note_raise(&s->order, pg_i64(r, i, 0), pg_i64(r, i, 1), pg_i64(r, i, 2));
}

/* 0 (s->order holds the newest key of every locked conversation), or JOB_SQL. */
static int order_lock(store_t *s, store_job_t *batch) {
  pg_notes_clear(&s->order);
  buf_t arr = BUF_INIT;
  if (!order_ids(batch, (buf_t *[3]){&arr, NULL, NULL})) return 0;
  pgargs_t a = {0};
  pga_txt(&a, buf_cstr(&arr));
  PGresult *r = NULL;
  int rc = run1(s, PS_ORDER_LOCK, &a, NULL);
  if (!rc && pgc_run(&s->w, PS_ORDER_NEWEST, &a, &r) < 0) rc = JOB_SQL;
  buf_free(&arr);
  if (rc) return rc;
  order_note(s, r);
  PQclear(r);
  return 0;
}

/* Before j is inserted: past its conversation's newest key if it asks to be, and the newest
 * key moved to it. */
static void order_key(store_t *s, job_msg_insert_t *j) {
  pg_note_t *e = note_find(&s->order, j->conv);
  if (!e) return;
  if (j->rekey && !key_after(j->ts, j->seq, e->ts, e->seq)) {
    if (j->ts < e->ts) j->ts = e->ts;
    j->seq = e->seq + 1;
    j->rekeyed = 1;
    j->rekey(j);
    atomic_fetch_add(&s->rekeyed, 1);
  }
  note_raise(&s->order, j->conv, j->ts, j->seq);
}

/* ---- lm notes (store_sqlite.c: lm_note), member-count touches and import forwards: each a
 * note per conversation (note_raise), flushed in one statement or one call per conversation */

static void lm_note(map_t *m, int64_t conv, int64_t ts) { note_raise(m, conv, ts, 0); }

static int cmp_note(const void *a, const void *b) {
  const pg_note_t *x = *(const pg_note_t *const *)a, *y = *(const pg_note_t *const *)b;
  return x->conv < y->conv ? -1 : x->conv > y->conv;
}

/* Every (conv, ts) of the maps whose conv is in the slice (-1: all) in one statement `id`
 * taking two arrays, ids and times; queued in the writer's pipeline when piped (pg_conn.c:
 * pgc_pipe_run), else run. The conversations' rows are first locked in the order of their
 * ids (LOCK_CONVS): other nodes' writers update the same rows (lm: each conversation once a
 * second, an eighth of them at a time), and rows locked in the order of each node's hash
 * map made two of them deadlock, which cost a batch its rerun job by job (seen in
 * bench/cluster.sh runs). */
static int notes_flush(store_t *s, int id, const map_t *const *maps, int nmaps, int piped, int slice) {
  size_t n = 0;
  for (int k = 0; k < nmaps; k++) n += maps[k]->n;
  if (!n) return 0;
  const pg_note_t **v = xmalloc(n * sizeof *v);
  n = 0;
  for (int k = 0; k < nmaps; k++) {
    if (!maps[k]->n) continue;
    map_iter_t it;
    for (map_node_t *e = map_first(maps[k], &it); e; e = map_next(maps[k], &it))
      if (in_slice(((const pg_note_t *)e)->conv, slice)) v[n++] = (const pg_note_t *)e;
  }
  if (!n) {
    free(v);
    return 0;
  }
  qsort(v, n, sizeof *v, cmp_note);
  buf_t ids = BUF_INIT, tss = BUF_INIT;
  for (size_t i = 0; i < n; i++) { /* a conversation in two maps: once, at the later time */
    if (i + 1 < n && v[i + 1]->conv == v[i]->conv) {
      if (v[i + 1]->ts < v[i]->ts) v[i + 1] = v[i];
      continue;
    }
    buf_printf(&ids, "%s%lld", ids.len ? "," : "{", (long long)v[i]->conv);
    buf_printf(&tss, "%s%lld", tss.len ? "," : "{", (long long)v[i]->ts);
  }
  free(v);
  buf_append_str(&ids, "}");
  buf_append_str(&tss, "}");
  pgargs_t l = {0};
  pga_txt(&l, buf_cstr(&ids));
  pgargs_t p = {0};
  pga_txt(&p, buf_cstr(&ids));
  pga_txt(&p, buf_cstr(&tss));
  int rc;
  if (piped) rc = pgc_pipe_run(&s->w, PS_LOCK_CONVS, &l) < 0 || pgc_pipe_run(&s->w, id, &p) < 0 ? JOB_SQL : 0;
  else rc = run1(s, PS_LOCK_CONVS, &l, NULL) || run1(s, id, &p, NULL) ? JOB_SQL : 0;
  buf_free(&ids);
  buf_free(&tss);
  return rc;
}

/* The lm notes of a and b in the slice (a conversation in both: the later time wins). */
static int lm_flush(store_t *s, const map_t *a, const map_t *b, int piped, int slice) {
  const map_t *maps[2] = {a, b};
  return notes_flush(s, PS_UPD_LM, maps, 2, piped, slice);
}

/* The member counts and times of the conversations noted in s->touch (run_members). */
static int touch_flush(store_t *s) {
  const map_t *maps[1] = {&s->touch};
  int rc = notes_flush(s, PS_TOUCH_CONVS, maps, 1, 0, -1);
  pg_notes_clear(&s->touch);
  return rc;
}

/* ---- what imports owe at the end of the transaction (pg_import_finish) */

static void fwd_note(store_t *s, const job_import_t *im) {
  for (size_t i = 0; i < im->ntouched; i++)
    note_raise(&s->fwd, im->touched[i].conv, im->touched[i].max_ts, im->touched[i].max_ts_seq);
}

static int fwd_flush(store_t *s) {
  int rc = 0;
  if (s->fwd.n) {
    map_iter_t it;
    for (map_node_t *n = map_first(&s->fwd, &it); n && !rc; n = map_next(&s->fwd, &it)) {
      const pg_note_t *e = (const pg_note_t *)n;
      rc = pg_import_finish(&s->w, e->conv, e->ts, e->seq) < 0 ? JOB_SQL : 0;
    }
  }
  pg_notes_clear(&s->fwd);
  return rc;
}

void pg_lm_final(store_t *s) {
  if (!s->lm.n || pgc_cmd(&s->w, "BEGIN") < 0) return;
  const map_t *maps[1] = {&s->lm};
  if (notes_flush(s, PS_UPD_LM, maps, 1, 0, -1) != 0 || pgc_cmd(&s->w, "COMMIT") < 0) {
    pgc_cmd(&s->w, "ROLLBACK");
    return;
  }
  pg_notes_clear(&s->lm);
}

/* ---- the jobs */

static int run_conv_create(store_t *s, job_conv_create_t *j) {
  conv_row_t *r = &j->row;
  pgargs_t a = {0};
  pga_txt(&a, r->cid);
  pga_i64(&a, r->kind);
  pga_txt(&a, r->creator);
  pga_txt(&a, r->unique_id);
  pga_i64(&a, r->created_at);
  pga_i64(&a, r->updated_at);
  pga_i64_or_null(&a, r->expire_at);
  pga_i64(&a, (int64_t)r->nmembers);
  pga_txt(&a, j->doc ? j->doc : "{}");
  PGresult *res;
  if (pgc_run(&s->w, PS_INS_CONV, &a, &res) < 0) return JOB_SQL;
  int inserted = PQntuples(res) == 1;
  if (inserted) r->id = pg_i64(res, 0, 0);
  PQclear(res);
  if (!inserted) {
    if (!r->unique_id) return JOB_SOFT; /* the cid is taken */
    /* another start with the same member set committed first: answer with that one */
    pgargs_t f = {0};
    pga_txt(&f, r->unique_id);
    if (pgc_run(&s->w, PS_FIND_UNIQUE, &f, &res) < 0) return JOB_SQL;
    if (PQntuples(res)) {
      j->existing_cid = pg_dup(res, 0, 0);
      j->existing_created_at = pg_i64(res, 0, 1);
    }
    PQclear(res);
    return j->existing_cid ? TERN_EEXIST : JOB_SOFT;
  }
  for (size_t i = 0; i < r->nmembers; i++) {
    pgargs_t m = {0};
    pga_i64(&m, r->id);
    pga_txt(&m, r->members[i]);
    pga_i64(&m, r->created_at);
    pga_i64(&m, 0);
    pga_i64(&m, 0);
    if (run1(s, PS_INS_MEMBER, &m, NULL)) return JOB_SQL;
  }
  return 0;
}

/* A possible resend (store.h: dt_since) is inserted by INS_MSG_UNLESS_DT: unless an equal
 * message is stored — committed, or earlier in this transaction. The statement runs after
 * the order lock (the transaction's first statements), so a first copy another writer
 * locked the conversation for first has committed by then and is seen (READ COMMITTED: a
 * statement sees what committed before it began), and after every statement queued before
 * it (a pipeline runs them in order), with no round trip of its own. */
static int msg_checked(const job_msg_insert_t *j) { return j->dt_since && j->dt; }

/* INS_MSG's parameters, and for a checked message INS_MSG_UNLESS_DT's two more. */
static void msg_args(pgargs_t *a, const job_msg_insert_t *j) {
  pga_i64(a, j->conv);
  pga_i64(a, j->ts);
  pga_i64(a, j->seq);
  pga_txt(a, j->mid);
  pga_txt(a, j->sender);
  pga_bin(a, j->data, j->len);
  pga_i64(a, j->flags);
  pga_txt(a, j->mentions);
  if (j->has_lctype) pga_i64(a, j->lctype);
  else pga_null(a);
  pga_i64(a, j->patch_ts);
  pga_txt(a, j->readers);
  pga_i64_or_null(a, j->dt);
  if (msg_checked(j)) {
    pga_i64(a, j->dt_since);
    pga_i64(a, STORE_DT_SCAN);
  }
}

/* A checked message's result from INS_MSG_UNLESS_DT's row: 0 stored (noted in lm, if
 * given), TERN_EEXIST an equal one is stored (dup_mid, dup_ts), TERN_ESTORE its key was
 * taken. Set as the job's result too. */
static int checked_settle(const PGresult *r, job_msg_insert_t *j, map_t *lm) {
  int rc = TERN_ESTORE;
  if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
    free(j->dup_mid);
    j->dup_mid = xstrdup(pg_str(r, 0, 0));
    j->dup_ts = pg_i64(r, 0, 1);
    rc = TERN_EEXIST;
  } else if (r && PQntuples(r) == 1 && pg_i64(r, 0, 2) == 1) {
    if (lm) lm_note(lm, j->conv, j->ts);
    rc = 0;
  }
  return j->job.result = rc;
}

static int run_msg_insert(store_t *s, job_msg_insert_t *j) {
  order_key(s, j);
  store_msg_gone_settle(j); /* after the order lock (attempt_careful: order_lock first) */
  pgargs_t a = {0};
  msg_args(&a, j);
  if (msg_checked(j)) {
    PGresult *r;
    if (pgc_run(&s->w, PS_INS_MSG_UNLESS_DT, &a, &r) < 0) return JOB_SQL;
    int rc = checked_settle(r, j, NULL);
    PQclear(r);
    return rc == TERN_EEXIST ? TERN_EEXIST : rc ? JOB_SOFT : 0;
  }
  int64_t n = 0;
  if (run1(s, PS_INS_MSG, &a, &n)) return JOB_SQL;
  return n == 1 ? 0 : JOB_SOFT; /* the key is taken */
}

/* ---- consecutive messages in one statement: a round trip per message would bound the
 * writer at ~13,000 messages/s on loopback (docs/cluster.md); arrays of each column cost
 * one round trip for up to MSGS_MAX. */
#define MSGS_MAX 512

static void arr_str(buf_t *b, const char *v) {
  if (!v) {
    buf_append_str(b, "NULL");
    return;
  }
  buf_append_str(b, "\"");
  for (const char *p = v; *p; p++) {
    if (*p == '"' || *p == '\\') buf_append_str(b, "\\");
    buf_append(b, p, 1);
  }
  buf_append_str(b, "\"");
}

static void arr_bytes(buf_t *b, const uint8_t *d, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_append_str(b, "\"\\\\x"); /* the element \x…, its backslash quoted in the array */
  for (size_t i = 0; i < n; i++) {
    char two[2] = {hex[d[i] >> 4], hex[d[i] & 15]};
    buf_append(b, two, 2);
  }
  buf_append_str(b, "\"");
}

/* Queues jobs[0..n) (JOB_MSG_INSERT, in batch order, keys final: order_key) as one INSERT;
 * msgs_settle reads its result. gate: the batch's order check (order_ids' three arrays) to
 * run first in the same statement (PG_ORDER_GATE), or NULL. The index of its result in the
 * flight, or JOB_SQL. */
static int msgs_queue(store_t *s, job_msg_insert_t **jobs, size_t n, buf_t *gate) {
  buf_t col[12];
  for (int c = 0; c < 12; c++) {
    memset(&col[c], 0, sizeof col[c]);
    buf_append_str(&col[c], "{");
  }
  int rcp = 0; /* some message asks for receipts: the insert that notes them (PG_NOTE_RCP) */
  for (size_t i = 0; i < n; i++) {
    job_msg_insert_t *j = jobs[i];
    rcp |= (j->flags & MSG_F_RECEIPT) != 0;
    for (int c = 0; c < 12; c++)
      if (i) buf_append_str(&col[c], ",");
    buf_printf(&col[0], "%lld", (long long)j->conv);
    buf_printf(&col[1], "%lld", (long long)j->ts);
    buf_printf(&col[2], "%lld", (long long)j->seq);
    arr_str(&col[3], j->mid);
    arr_str(&col[4], j->sender);
    arr_bytes(&col[5], j->data, j->len);
    buf_printf(&col[6], "%d", j->flags);
    arr_str(&col[7], j->mentions);
    if (j->has_lctype) buf_printf(&col[8], "%d", j->lctype);
    else buf_append_str(&col[8], "NULL");
    buf_printf(&col[9], "%lld", (long long)j->patch_ts);
    arr_str(&col[10], j->readers);
    if (j->dt) buf_printf(&col[11], "%lld", (long long)j->dt);
    else buf_append_str(&col[11], "NULL");
  }
  pgargs_t a = {0};
  for (int c = 0; c < 12; c++) {
    buf_append_str(&col[c], "}");
    pga_txt(&a, buf_cstr(&col[c]));
  }
  if (gate)
    for (int c = 0; c < 3; c++) pga_txt(&a, buf_cstr(&gate[c]));
  static const int ps[2][2] = {{PS_INS_MSGS, PS_INS_MSGS_RCP}, {PS_INS_MSGS_GATED, PS_INS_MSGS_RCP_GATED}};
  int idx = pgc_pipe_run(&s->w, ps[gate != NULL][rcp], &a);
  for (int c = 0; c < 12; c++) buf_free(&col[c]);
  return idx < 0 ? JOB_SQL : idx;
}

/* Each job's result from the INSERT's returned keys: a key that was taken (or given twice
 * in the batch: the first wins) fails its job alone; an inserted one is noted in lm. */
static void msgs_settle(PGresult *r, job_msg_insert_t **jobs, size_t n, map_t *lm) {
  int rows = PQntuples(r);
  uint8_t *used = xcalloc((size_t)rows + 1, 1);
  for (size_t i = 0; i < n; i++) {
    job_msg_insert_t *j = jobs[i];
    j->job.result = TERN_ESTORE; /* the key was taken */
    for (int k = 0; k < rows; k++) {
      if (used[k] || pg_i64(r, k, 0) != j->conv || pg_i64(r, k, 1) != j->ts || pg_i64(r, k, 2) != j->seq) continue;
      used[k] = 1;
      j->job.result = 0;
      lm_note(lm, j->conv, j->ts);
      break;
    }
  }
  free(used);
}

static int run_progress(store_t *s, job_progress_t *j, int id) {
  pgargs_t a = {0};
  pga_i64(&a, j->ts);
  pga_i64(&a, j->seq);
  pga_i64(&a, j->at);
  pga_i64(&a, j->conv);
  pga_txt(&a, j->client);
  return run1(s, id, &a, NULL);
}

static int conv_client(store_t *s, int id, int64_t conv, const char *client) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_txt(&a, client);
  return run1(s, id, &a, NULL);
}

static int run_members(store_t *s, job_members_t *j, int add) {
  for (size_t i = 0; i < j->n; i++) {
    if (!add && conv_client(s, PS_DEL_ROLE, j->conv, j->clients[i])) return JOB_SQL; /* a leaver loses its role */
    pgargs_t a = {0};
    pga_i64(&a, j->conv);
    pga_txt(&a, j->clients[i]);
    if (add) {
      pga_i64(&a, j->updated_at);
      pga_i64(&a, j->seen_ts);
      pga_i64(&a, j->seen_seq);
    }
    if (run1(s, add ? PS_INS_MEMBER : PS_DEL_MEMBER, &a, NULL)) return JOB_SQL;
  }
  /* the count and the time are written once per conversation per transaction (touch_flush):
   * PostgreSQL writes a new version of a row at each UPDATE, and a batch of thousands of
   * member changes of one conversation made each UPDATE walk the versions before it */
  lm_note(&s->touch, j->conv, j->updated_at);
  return 0;
}

static int run_conv_delete(store_t *s, job_members_t *j) {
  static const int ids[] = {PS_DEL_CONV_MSGS, PS_DEL_CONV_MEMBERS, PS_DEL_CONV_SETS, PS_DEL_CONV_ROLES,
                            PS_DEL_CONV_EXT,  PS_DEL_CONV_RCP,     PS_DEL_CONV};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    pgargs_t a = {0};
    pga_i64(&a, j->conv);
    if (run1(s, ids[i], &a, NULL)) return JOB_SQL;
  }
  return 0;
}

/* Every update of one conversation in the batch, applied to its document at once: the
 * document is read (locked), changed and written once, however many changes (pg_doc.c). */
static int run_conv_update(store_t *s, job_conv_update_t *j) {
  if (j->merged) return j->merged_rc;
  int64_t updated_at = j->updated_at;
  size_t n = 0, cap = 0;
  const doc_change_t **ch = NULL;
  for (store_job_t *k = &j->job; k; k = k->next) {
    job_conv_update_t *u = (job_conv_update_t *)k;
    if (k->type != JOB_CONV_UPDATE || u->conv != j->conv || u->merged) continue;
    if (u != j) u->merged = 1;
    if (u->updated_at > updated_at) updated_at = u->updated_at;
    for (size_t i = 0; i < u->n; i++) {
      if (n == cap) {
        cap = cap ? cap * 2 : 16;
        ch = xrealloc(ch, cap * sizeof *ch);
      }
      ch[n++] = &u->changes[i];
    }
  }
  int rc = 0;
  pgargs_t a = {0};
  pga_i64(&a, j->conv);
  PGresult *r = NULL;
  if (n && pgc_run(&s->w, PS_DOC_LOCK, &a, &r) < 0) {
    rc = JOB_SQL;
  } else if (n && PQntuples(r) == 0) {
    rc = 0; /* the conversation is gone: nothing to change (SQLite's UPDATE touches no row) */
  } else if (n) {
    char *doc = pg_doc_apply(pg_str(r, 0, 0), ch, n);
    if (!doc) {
      log_at(LOG_ERROR, "store: conversation %lld's document is not a JSON object", (long long)j->conv);
      rc = JOB_SOFT;
    } else {
      pgargs_t p = {0};
      pga_i64(&p, j->conv);
      pga_txt(&p, doc);
      pga_i64(&p, updated_at);
      rc = run1(s, PS_DOC_PUT, &p, NULL);
      free(doc);
    }
  } else {
    pgargs_t t = {0};
    pga_i64(&t, updated_at);
    pga_i64(&t, j->conv);
    rc = run1(s, PS_UPD_TIME, &t, NULL);
  }
  PQclear(r);
  free(ch);
  for (store_job_t *k = j->job.next; k; k = k->next) /* the merged ones report the same */
    if (k->type == JOB_CONV_UPDATE && ((job_conv_update_t *)k)->conv == j->conv && ((job_conv_update_t *)k)->merged)
      ((job_conv_update_t *)k)->merged_rc = rc;
  return rc;
}

static int run_set_change(store_t *s, job_set_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    pgargs_t a = {0};
    pga_i64(&a, j->conv);
    if (j->set == SET_MANAGER) { /* roles live in member_info; Member is the absence of a row */
      pga_txt(&a, j->clients[i]);
      char id[25];
      if (j->add) {
        uint8_t rnd[12];
        random_bytes(rnd, sizeof rnd);
        hex_encode(rnd, sizeof rnd, id);
        pga_txt(&a, id);
        pga_i64(&a, j->at);
        pga_txt(&a, j->role);
      }
      if (run1(s, j->add ? PS_INS_ROLE : PS_DEL_ROLE, &a, NULL)) return JOB_SQL;
      continue;
    }
    pga_i64(&a, j->set);
    pga_txt(&a, j->clients[i]);
    if (j->add) {
      pga_i64(&a, j->at);
      pga_i64_or_null(&a, j->expire_at);
    }
    if (run1(s, j->add ? PS_INS_SET : PS_DEL_SET, &a, NULL)) return JOB_SQL;
  }
  if (!j->remove_members) return 0;
  job_members_t m = {.conv = j->conv, .updated_at = j->at, .clients = j->clients, .n = j->n};
  return run_members(s, &m, 0);
}

static int run_client_block(store_t *s, job_client_block_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    pgargs_t a = {0};
    pga_txt(&a, j->client);
    pga_txt(&a, j->cids[i]);
    if (j->add) pga_i64(&a, j->at);
    if (run1(s, j->add ? PS_INS_CBLOCK : PS_DEL_CBLOCK, &a, NULL)) return JOB_SQL;
  }
  return 0;
}

static int run_msg_delete(store_t *s, job_msg_patch_t *j) {
  pgargs_t a = {0};
  pga_i64(&a, j->conv);
  pga_i64(&a, j->ts);
  pga_i64(&a, j->seq);
  int64_t n = 0;
  if (run1(s, PS_DEL_MSG, &a, &n)) return JOB_SQL;
  return n == 1 ? 0 : JOB_SOFT;
}

static int run_msg_patch(store_t *s, job_msg_patch_t *j) {
  pgargs_t a = {0};
  pga_bin(&a, j->data, j->len);
  pga_i64(&a, j->flags);
  pga_txt(&a, j->mentions);
  pga_i64(&a, j->patch_ts);
  pga_i64(&a, j->conv);
  pga_i64(&a, j->ts);
  pga_i64(&a, j->seq);
  if (j->has_lctype) pga_i64(&a, j->lctype);
  else pga_null(&a);
  int64_t n = 0;
  if (run1(s, PS_UPD_MSG, &a, &n)) return JOB_SQL;
  return n == 1 ? 0 : JOB_SOFT;
}

static int run_notif(store_t *s, job_notif_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    pgargs_t a = {0};
    pga_txt(&a, j->clients[i]);
    pga_i64(&a, j->ts);
    pga_txt(&a, j->body);
    if (run1(s, PS_INS_NOTIF, &a, NULL)) return JOB_SQL;
  }
  return 0;
}

static int run_device(store_t *s, job_device_t *j) {
  pgargs_t a = {0};
  if (j->op == DEVICE_PUT) {
    pga_txt(&a, j->client);
    pga_txt(&a, j->token);
    pga_txt(&a, j->type);
    pga_i64(&a, j->at);
    if (run1(s, PS_INS_DEVICE, &a, NULL)) return JOB_SQL;
    pgargs_t m = {0}; /* a device reports one client at a time: the last login wins */
    pga_txt(&m, j->token);
    pga_txt(&m, j->client);
    if (run1(s, PS_MOVE_DEVICE, &m, NULL)) return JOB_SQL;
    pgargs_t t = {0};
    pga_txt(&t, j->client);
    pga_i64(&t, STORE_MAX_REPORTED_DEVICES);
    return run1(s, PS_TRIM_DEVICES, &t, NULL);
  }
  pga_txt(&a, j->token);
  if (j->op == DEVICE_BADGE) pga_i64(&a, j->badge);
  return run1(s, j->op == DEVICE_DROP ? PS_DEL_DEVICE_TOKEN : j->add ? PS_ADD_BADGE : PS_SET_BADGE, &a, NULL);
}

static int run_installation(store_t *s, job_installation_t *j) {
  pgargs_t d = {0};
  pga_txt(&d, j->id);
  if (run1(s, PS_DEL_INST_DEVICES, &d, NULL)) return JOB_SQL;
  if (j->remove) return run1(s, PS_DEL_INST, &d, NULL);
  pgargs_t e = {0};
  pga_txt(&e, j->device_type);
  pga_txt(&e, j->token);
  pga_txt(&e, j->id);
  if (run1(s, PS_DEL_INST_TOKEN, &e, NULL)) return JOB_SQL;
  pgargs_t a = {0};
  pga_txt(&a, j->id);
  pga_txt(&a, j->device_type);
  pga_txt(&a, j->token);
  pga_txt(&a, j->body ? j->body : "{}");
  pga_i64(&a, j->created_at);
  pga_i64(&a, j->updated_at);
  if (run1(s, PS_PUT_INST, &a, NULL)) return JOB_SQL;
  for (size_t i = 0; i < j->n; i++) {
    pgargs_t c = {0};
    pga_txt(&c, j->channels[i]);
    pga_txt(&c, j->token);
    pga_txt(&c, j->device_type);
    pga_txt(&c, j->id);
    pga_i64(&c, j->updated_at);
    if (run1(s, PS_INS_INST_DEVICE, &c, NULL)) return JOB_SQL;
  }
  if (!j->has_badge) return 0;
  pgargs_t b = {0};
  pga_txt(&b, j->token);
  pga_i64(&b, j->badge);
  return run1(s, PS_SET_BADGE, &b, NULL);
}

/* A revocation, then up to 16 rows of each kind whose tokens have all expired. */
static int run_revoke(store_t *s, job_revoke_t *j) {
  pgargs_t a = {0};
  if (j->client) {
    pga_txt(&a, j->client);
    pga_i64(&a, j->at);
    pga_i64(&a, j->expires_at);
  } else {
    pga_bin(&a, j->lineage, sizeof j->lineage);
    pga_i64(&a, j->expires_at);
  }
  if (run1(s, j->client ? PS_INS_CLIENT_REVOKED : PS_INS_REVOKED, &a, NULL)) return JOB_SQL;
  pgargs_t p = {0};
  pga_i64(&p, j->at);
  if (run1(s, PS_PRUNE_REVOKED, &p, NULL)) return JOB_SQL;
  return run1(s, PS_PRUNE_CLIENT_REVOKED, &p, NULL);
}

static int run_job(store_t *s, store_job_t *j) {
  switch (j->type) {
  case JOB_CONV_CREATE: return run_conv_create(s, (job_conv_create_t *)j);
  case JOB_MSG_INSERT: return run_msg_insert(s, (job_msg_insert_t *)j);
  case JOB_MEMBER_ACK: return run_progress(s, (job_progress_t *)j, PS_UPD_ACK);
  case JOB_MEMBER_READ: return run_progress(s, (job_progress_t *)j, PS_UPD_READ);
  case JOB_MEMBERS_ADD: return run_members(s, (job_members_t *)j, 1);
  case JOB_MEMBERS_REMOVE: return run_members(s, (job_members_t *)j, 0);
  case JOB_CONV_DELETE: return run_conv_delete(s, (job_members_t *)j);
  case JOB_CONV_UPDATE: return run_conv_update(s, (job_conv_update_t *)j);
  case JOB_SET_CHANGE: return run_set_change(s, (job_set_t *)j);
  case JOB_CLIENT_BLOCK: return run_client_block(s, (job_client_block_t *)j);
  case JOB_MSG_PATCH: return run_msg_patch(s, (job_msg_patch_t *)j);
  case JOB_MSG_DELETE: return run_msg_delete(s, (job_msg_patch_t *)j);
  case JOB_NOTIF: return run_notif(s, (job_notif_t *)j);
  case JOB_PRUNE: {
    pgargs_t a = {0};
    pga_i64(&a, ((job_prune_t *)j)->notif_before);
    return run1(s, PS_PRUNE_NOTIF, &a, NULL);
  }
  case JOB_DEVICE: return run_device(s, (job_device_t *)j);
  case JOB_INSTALLATION: return run_installation(s, (job_installation_t *)j);
  case JOB_REVOKE: return run_revoke(s, (job_revoke_t *)j);
  case JOB_IMPORT:
    if (pg_import_run(&s->w, (job_import_t *)j) < 0) return JOB_SQL;
    fwd_note(s, (job_import_t *)j);
    return 0;
  }
  return JOB_SOFT;
}

/* What a run may have left on a job, undone before the batch runs again. */
typedef struct {
  job_import_t *j;
  int *outcomes; /* as the caller gave them (IMP_SKIPPED ones stay skipped) */
} import_save_t;

static void job_reset(store_job_t *j) {
  if (j->type == JOB_CONV_CREATE) {
    job_conv_create_t *c = (job_conv_create_t *)j;
    c->row.id = 0;
    free(c->existing_cid);
    c->existing_cid = NULL;
  } else if (j->type == JOB_CONV_UPDATE) {
    ((job_conv_update_t *)j)->merged = 0;
    ((job_conv_update_t *)j)->merged_rc = 0;
  } else if (j->type == JOB_MSG_INSERT) {
    job_msg_insert_t *m = (job_msg_insert_t *)j;
    free(m->dup_mid);
    m->dup_mid = NULL;
  } else if (j->type == JOB_IMPORT) {
    job_import_t *im = (job_import_t *)j;
    for (size_t i = 0; i < im->ntouched; i++) free(im->touched[i].cid);
    free(im->touched);
    im->touched = NULL;
    im->ntouched = 0;
  }
}

/* The careful attempt, after a statement failed: the batch again, each job in a savepoint
 * of its own, one statement at a time, so that only the failing job fails. 0 committed
 * (each job's result set), or TERN_ESTORE nothing is committed. */
static int attempt_careful(store_t *s, store_job_t *batch, map_t *lm, int lm_slice) {
  pg_notes_clear(&s->touch);
  pg_notes_clear(&s->fwd);
  /* a connection found dead at BEGIN (the server restarted while the writer was idle) is
   * replaced at once: nothing of this batch had run on it */
  int had = s->w.c != NULL;
  if (pgc_cmd(&s->w, "BEGIN") < 0 && !(had && !s->w.c && pgc_cmd(&s->w, "BEGIN") == 0)) return TERN_ESTORE;
  if (order_lock(s, batch) != 0) goto abort; /* first: before any savepoint or row lock */
  for (store_job_t *j = batch; j; j = j->next) {
    if (pgc_cmd(&s->w, "SAVEPOINT job") < 0) goto abort;
    int rc = run_job(s, j);
    if (rc != JOB_SQL && (touch_flush(s) != 0 || fwd_flush(s) != 0)) rc = JOB_SQL; /* in its savepoint */
    if (rc == JOB_SQL) {
      if (!s->w.c) return TERN_ESTORE; /* the connection went: the transaction with it */
      pg_notes_clear(&s->touch);
      pg_notes_clear(&s->fwd);
      if (pgc_cmd(&s->w, "ROLLBACK TO SAVEPOINT job") < 0) goto abort;
      log_at(LOG_ERROR, "store: job %d failed (postgres)", j->type);
      j->result = TERN_ESTORE;
      job_reset(j);
      continue;
    }
    if (pgc_cmd(&s->w, "RELEASE SAVEPOINT job") < 0) goto abort;
    j->result = rc == TERN_EEXIST ? TERN_EEXIST : rc ? TERN_ESTORE : 0;
    if (!rc && j->type == JOB_MSG_INSERT) lm_note(lm, ((job_msg_insert_t *)j)->conv, ((job_msg_insert_t *)j)->ts);
  }
  if (touch_flush(s) != 0 || fwd_flush(s) != 0) goto abort;
  if (lm_slice >= 0 && lm_flush(s, &s->lm, lm, 0, lm_slice) != 0) goto abort;
  if (atomic_load(&s->fail_writes)) goto abort;
  PGresult *r = s->w.c ? PQexec(s->w.c, "COMMIT") : NULL;
  if (r) atomic_fetch_add(&s->round_trips, 1);
  /* a COMMIT of an aborted transaction answers ROLLBACK */
  int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
  if (!ok) {
    log_at(LOG_ERROR, "postgres (writer): COMMIT failed: %s", r ? PQresultErrorMessage(r) : "no connection");
    PQclear(r);
    if (s->w.c && PQstatus(s->w.c) != CONNECTION_OK) pgc_close(&s->w);
    return TERN_ESTORE;
  }
  PQclear(r);
  return 0;
abort:
  if (s->w.c) pgc_cmd(&s->w, "ROLLBACK");
  return TERN_ESTORE;
}

/* ---- the first attempt: one round trip per commit (libpq's pipeline mode, pg_conn.c)
 *
 * The batch's statements are queued and sent as one flight, answered as one: the messages
 * (runs of up to MSGS_MAX in one INSERT, across the acks and reads between them: those touch
 * only member rows, so they commit the same in either order), the acks and the reads (one
 * UPDATE each kind for the run), lm — between BEGIN and COMMIT only when the batch takes
 * more than one flight (below); one flight is one implicit transaction. A possible resend
 * (dt_since) is a statement of its own in the flight (INS_MSG_UNLESS_DT), after the run
 * before it. Two steps keep a round trip of their own because what follows needs their
 * answer:
 *   - the order lock (order_lock): when messages ask for their order, BEGIN, the locks and
 *     the newest keys are one flight, and the keys moved past them before the rest is sent
 *     (rekey: the id given to the IM layer names the moved key) — two round trips a batch;
 *   - the other jobs (conversations, members, documents, imports, devices …) read results
 *     between their statements: what is queued before one is sent first, and the job runs
 *     statement by statement as before.
 * A statement that fails aborts the flight and the transaction: rolled back, and the batch
 * runs again with a savepoint per job (attempt_careful) — as before. A commit that fails,
 * or a connection that goes, fails every job (TERN_ESTORE), never acked. lm: a message
 * whose INSERT returned no row had its key taken by a stored message — of the same
 * conversation and time — so every queued message's time is a stored message's time, and
 * lm is flushed in the same flight from the messages queued. (A resend answered with its
 * stored copy leaves lm at its own key's time: past the conversation's newest message by
 * the moments between them, which lm tolerates — only the idle-expiry sweep compares it.) */

typedef struct {
  buf_t col[5]; /* conv, client, ts, seq, at */
  size_t n;
} progress_arr_t;

typedef struct {
  int idx; /* its result in the flight */
  job_msg_insert_t **msgs;
  size_t n;
  int checked; /* one message, by INS_MSG_UNLESS_DT (checked_settle) */
} msgs_post_t;

typedef struct {
  store_t *s;
  map_t *lm;  /* the messages inserted (from the answers) */
  map_t sent; /* the messages queued (see above) */
  job_msg_insert_t *msgs[MSGS_MAX];
  size_t nmsgs;
  progress_arr_t ack, read;
  int past;      /* the statement that carries the order check, or -1 */
  buf_t gate[3]; /* the order check not yet queued (order_hope): order_ids' arrays, freed
                  * once it is (gate_queued); it rides with the first message statement */
  int implicit;  /* no BEGIN or COMMIT: the Sync commits (attempt_piped_run) */
  msgs_post_t *posts;
  size_t nposts, cap;
} flight_t;

static void progress_add(progress_arr_t *p, const job_progress_t *j) {
  for (int c = 0; c < 5; c++) buf_append_str(&p->col[c], p->n ? "," : "{");
  buf_printf(&p->col[0], "%lld", (long long)j->conv);
  arr_str(&p->col[1], j->client);
  buf_printf(&p->col[2], "%lld", (long long)j->ts);
  buf_printf(&p->col[3], "%lld", (long long)j->seq);
  buf_printf(&p->col[4], "%lld", (long long)j->at);
  p->n++;
}

static int progress_queue(store_t *s, progress_arr_t *p, int id) {
  if (!p->n) return 0;
  pgargs_t a = {0};
  for (int c = 0; c < 5; c++) {
    buf_append_str(&p->col[c], "}");
    pga_txt(&a, buf_cstr(&p->col[c]));
  }
  int idx = pgc_pipe_run(&s->w, id, &a);
  for (int c = 0; c < 5; c++) buf_free(&p->col[c]);
  p->n = 0;
  return idx < 0 ? JOB_SQL : 0;
}

/* The order check's arrays while it is still to be queued, else NULL. */
static buf_t *gate_due(flight_t *f) { return f->gate[0].data ? f->gate : NULL; }

/* The order check queued as the flight's item idx (libpq has copied its arrays): idx. */
static int gate_queued(flight_t *f, int idx) {
  for (int c = 0; c < 3; c++) buf_free(&f->gate[c]);
  f->past = idx;
  return idx;
}

static int flight_msgs(flight_t *f) {
  if (!f->nmsgs) return 0;
  buf_t *gate = gate_due(f);
  int idx = msgs_queue(f->s, f->msgs, f->nmsgs, gate);
  if (gate) gate_queued(f, idx);
  if (idx < 0) return JOB_SQL;
  if (f->nposts == f->cap) f->posts = xrealloc(f->posts, (f->cap = f->cap ? f->cap * 2 : 8) * sizeof *f->posts);
  msgs_post_t *p = &f->posts[f->nposts++];
  p->idx = idx;
  p->n = f->nmsgs;
  p->checked = 0;
  p->msgs = xmalloc(f->nmsgs * sizeof *p->msgs);
  memcpy(p->msgs, f->msgs, f->nmsgs * sizeof *p->msgs);
  f->nmsgs = 0;
  return 0;
}

/* A possible resend queued (INS_MSG_UNLESS_DT), after everything queued before it. */
static int flight_checked(flight_t *f, job_msg_insert_t *m) {
  if (gate_due(f)) { /* the batch's first message statement: the order check goes alone, before it */
    pgargs_t k = {0};
    for (int c = 0; c < 3; c++) pga_txt(&k, buf_cstr(&f->gate[c]));
    if (gate_queued(f, pgc_pipe_run(&f->s->w, PS_ORDER_PAST, &k)) < 0) return JOB_SQL;
  }
  pgargs_t a = {0};
  msg_args(&a, m);
  int idx = pgc_pipe_run(&f->s->w, PS_INS_MSG_UNLESS_DT, &a);
  if (idx < 0) return JOB_SQL;
  if (f->nposts == f->cap) f->posts = xrealloc(f->posts, (f->cap = f->cap ? f->cap * 2 : 8) * sizeof *f->posts);
  msgs_post_t *p = &f->posts[f->nposts++];
  p->idx = idx;
  p->n = 1;
  p->checked = 1;
  p->msgs = xmalloc(sizeof *p->msgs);
  p->msgs[0] = m;
  return 0;
}

/* Everything the run of messages, acks and reads so far left to queue. */
static int flight_pending(flight_t *f) {
  if (flight_msgs(f) != 0 || progress_queue(f->s, &f->ack, PS_UPD_ACKS) != 0 ||
      progress_queue(f->s, &f->read, PS_UPD_READS) != 0)
    return JOB_SQL;
  return 0;
}

static void posts_free(flight_t *f) {
  for (size_t i = 0; i < f->nposts; i++) free(f->posts[i].msgs);
  f->nposts = 0;
}

/* One round trip: 0 (the messages' results set), or TERN_ESTORE (p->failed_at). */
static int flight_sync(flight_t *f) {
  int rc = pgc_pipe_sync(&f->s->w, f->past >= 0 ? PG_ORDER_BEHIND : NULL); /* that one, by design */
  for (size_t i = 0; i < f->nposts && rc == 0; i++) {
    PGresult *r = pgc_pipe_result(&f->s->w, f->posts[i].idx);
    if (f->posts[i].checked) checked_settle(r, f->posts[i].msgs[0], f->lm);
    else msgs_settle(r, f->posts[i].msgs, f->posts[i].n, f->lm);
  }
  posts_free(f);
  return rc;
}

/* 1 if the batch is one flight when it hopes for its order: no job of it reads between its
 * statements (the kinds attempt_piped_run queues), so touch and fwd stay empty too. */
static int batch_one_flight(const store_job_t *batch) {
  for (const store_job_t *j = batch; j; j = j->next)
    if (j->type != JOB_MSG_INSERT && j->type != JOB_MEMBER_ACK && j->type != JOB_MEMBER_READ && j->type != JOB_NOTIF &&
        j->type != JOB_PRUNE)
      return 0;
  return 1;
}

/* What a first attempt that did not commit asks of pg_run_batch: */
enum { ATTEMPT_CAREFUL = 1, ATTEMPT_ORDERED = 2 };

/* After a flight failed: TERN_ESTORE if the connection went (the transaction with it) or
 * the item at `commit` (the COMMIT) is the one that failed; else rolled back, and
 * ATTEMPT_ORDERED if it was the order check (a key behind), or ATTEMPT_CAREFUL (a
 * statement failed). */
static int flight_failed(flight_t *f, int commit) {
  store_t *s = f->s;
  if (!s->w.c) return TERN_ESTORE;
  int at = s->w.failed_at;
  int behind = at >= 0 && at == f->past && strcmp(s->w.sqlstate, PG_ORDER_BEHIND) == 0;
  pgc_pipe_end(&s->w);
  if (s->w.c && !f->implicit) pgc_cmd(&s->w, "ROLLBACK"); /* an implicit one ended at the Sync */
  if (commit >= 0 && at == commit) {
    log_at(LOG_ERROR, "postgres (writer): COMMIT failed");
    return TERN_ESTORE;
  }
  if (!s->w.c) return TERN_ESTORE;
  return behind ? ATTEMPT_ORDERED : ATTEMPT_CAREFUL;
}

/* A JOB_NOTIF's rows, or a JOB_PRUNE, queued: 0 or JOB_SQL. */
static int notif_queue(store_t *s, store_job_t *j) {
  if (j->type == JOB_PRUNE) {
    pgargs_t a = {0};
    pga_i64(&a, ((job_prune_t *)j)->notif_before);
    return pgc_pipe_run(&s->w, PS_PRUNE_NOTIF, &a) < 0 ? JOB_SQL : 0;
  }
  job_notif_t *n = (job_notif_t *)j;
  for (size_t i = 0; i < n->n; i++) {
    pgargs_t a = {0};
    pga_txt(&a, n->clients[i]);
    pga_i64(&a, n->ts);
    pga_txt(&a, n->body);
    if (pgc_pipe_run(&s->w, PS_INS_NOTIF, &a) < 0) return JOB_SQL;
  }
  return 0;
}

/* The order locks queued in the flight (hoping: see "message order across writers"), and
 * the check kept (arr, taken) for the batch's first message statement: a plain INSERT runs
 * it first (PG_ORDER_GATE: a statement of its own would cost PostgreSQL more than the
 * check), a possible resend's gets it queued alone before it (flight_checked). Of what the
 * flight holds before that statement, only a job run statement by statement (an import, a
 * deletion) writes msg; the check then sees its rows — at worst a key behind an imported
 * one, and the batch's ordered retry. 0, or JOB_SQL. */
static int order_hope(flight_t *f, buf_t arr[3]) {
  pgargs_t a = {0};
  pga_txt(&a, buf_cstr(&arr[0]));
  for (int i = 0; i < 3; i++) {
    f->gate[i] = arr[i];
    arr[i] = (buf_t)BUF_INIT;
  }
  return pgc_pipe_run(&f->s->w, PS_ORDER_LOCK, &a) < 0 ? JOB_SQL : 0;
}

static int attempt_piped_run(flight_t *f, store_job_t *batch, int lm_slice, int hope) {
  store_t *s = f->s;
  /* A batch sent as one flight needs no BEGIN and COMMIT: the statements before a
   * pipeline's Sync are one implicit transaction, which the Sync commits and any failing
   * statement rolls back — two statements fewer a commit (bench/README.md, "One implicit
   * transaction a flight"). A commit that fails at the Sync answers an error in place of
   * the Sync's: pgc_pipe_sync closes the connection, and every job fails. Batches of more
   * than one flight, and the fail_writes test switch (which must end a flight without
   * committing it), keep BEGIN … COMMIT. */
  f->implicit = hope && !atomic_load(&s->fail_writes) && batch_one_flight(batch);
  for (int tries = 0;; tries++) {
    int had = s->w.c != NULL;
    if (pgc_pipe_begin(&s->w, 1) < 0 || (!f->implicit && pgc_pipe_cmd(&s->w, "BEGIN") < 0)) return TERN_ESTORE;
    pg_notes_clear(&s->order);
    buf_t arr[3] = {BUF_INIT, BUF_INIT, BUF_INIT};
    if (!order_ids(batch, (buf_t *[3]){&arr[0], hope ? &arr[1] : NULL, hope ? &arr[2] : NULL})) break;
    if (hope) { /* no answer awaited: the keys stay as given unless the flight fails */
      int rc = order_hope(f, arr);
      for (int i = 0; i < 3; i++) buf_free(&arr[i]);
      if (rc != 0) return flight_failed(f, -1);
      break;
    }
    pgargs_t a = {0};
    pga_txt(&a, buf_cstr(&arr[0]));
    int newest = -1;
    if (pgc_pipe_run(&s->w, PS_ORDER_LOCK, &a) >= 0) newest = pgc_pipe_run(&s->w, PS_ORDER_NEWEST, &a);
    buf_free(&arr[0]);
    int rc = newest < 0 ? TERN_ESTORE : pgc_pipe_sync(&s->w, NULL);
    if (rc == 0) {
      order_note(s, pgc_pipe_result(&s->w, newest));
      break;
    }
    /* a connection that went before this flight's answer (the server restarted while the
     * writer was idle): nothing of the batch had run but BEGIN and the locks — once more,
     * on a new connection */
    if (!(had && !s->w.c && tries == 0)) return flight_failed(f, -1);
  }
  for (store_job_t *j = batch; j; j = j->next) {
    switch (j->type) {
    case JOB_MSG_INSERT: {
      job_msg_insert_t *m = (job_msg_insert_t *)j;
      order_key(s, m);
      /* Read now: once the order lock is granted, in a batch that waited for its newest keys;
       * in the same flight as the lock otherwise (hoping). A marked copy's check runs after
       * the lock either way: a resend another node committed before it was is seen, and one
       * it did not commit yet waits behind this transaction and finds this copy — unless the
       * mark comes after the flight was sent (docs/cluster.md, "A send whose ack died with
       * its node is stored once"). */
      store_msg_gone_settle(m);
      lm_note(&f->sent, m->conv, m->ts);
      if (msg_checked(m)) { /* a possible resend: a statement of its own, after those before it */
        if (flight_msgs(f) != 0 || flight_checked(f, m) != 0) return flight_failed(f, -1);
        continue;
      }
      f->msgs[f->nmsgs++] = m;
      if (f->nmsgs == MSGS_MAX && flight_msgs(f) != 0) return flight_failed(f, -1);
      continue;
    }
    case JOB_MEMBER_ACK:
    case JOB_MEMBER_READ:
      progress_add(j->type == JOB_MEMBER_ACK ? &f->ack : &f->read, (job_progress_t *)j);
      j->result = 0;
      continue;
    case JOB_NOTIF:
    case JOB_PRUNE: /* statements whose answers nothing reads (notif rows only): queued as they are */
      if (notif_queue(s, j) != 0) return flight_failed(f, -1);
      j->result = 0;
      continue;
    default: break;
    }
    /* a job that reads between its statements: what is queued goes first */
    log_at(LOG_DEBUG, "store: job type %d runs statement by statement (postgres)", j->type);
    if (flight_pending(f) != 0 || flight_sync(f) != 0) return flight_failed(f, -1);
    pgc_pipe_end(&s->w);
    int rc = run_job(s, j);
    if (rc == JOB_SQL) {
      if (!s->w.c) return TERN_ESTORE; /* the connection went: the transaction with it */
      pgc_cmd(&s->w, "ROLLBACK");
      return 1;
    }
    j->result = rc == TERN_EEXIST ? TERN_EEXIST : rc ? TERN_ESTORE : 0;
    if (pgc_pipe_begin(&s->w, 0) < 0) return TERN_ESTORE;
  }
  if (flight_pending(f) != 0) return flight_failed(f, -1);
  if (s->touch.n || s->fwd.n) { /* members or imports changed: their statements run as before */
    if (flight_sync(f) != 0) return flight_failed(f, -1);
    pgc_pipe_end(&s->w);
    if (touch_flush(s) != 0 || fwd_flush(s) != 0) {
      if (!s->w.c) return TERN_ESTORE;
      pgc_cmd(&s->w, "ROLLBACK");
      return 1;
    }
    if (pgc_pipe_begin(&s->w, 0) < 0) return TERN_ESTORE;
  }
  if (lm_slice >= 0 && lm_flush(s, &s->lm, &f->sent, 1, lm_slice) != 0) return flight_failed(f, -1);
  if (f->implicit) { /* the Sync commits */
    if (flight_sync(f) != 0) return flight_failed(f, -1);
    pgc_pipe_end(&s->w);
    return 0;
  }
  if (atomic_load(&s->fail_writes)) {
    pgc_pipe_sync(&s->w, NULL);
    if (s->w.c) {
      pgc_pipe_end(&s->w);
      pgc_cmd(&s->w, "ROLLBACK");
    }
    return TERN_ESTORE;
  }
  int commit = pgc_pipe_cmd(&s->w, "COMMIT");
  if (commit < 0) return TERN_ESTORE;
  if (flight_sync(f) != 0) return flight_failed(f, commit);
  /* a COMMIT of an aborted transaction answers ROLLBACK */
  PGresult *r = pgc_pipe_result(&s->w, commit);
  if (!r || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
    log_at(LOG_ERROR, "postgres (writer): COMMIT answered %s", r ? PQcmdStatus(r) : "nothing");
    pgc_pipe_end(&s->w);
    return TERN_ESTORE;
  }
  pgc_pipe_end(&s->w);
  return 0;
}

/* 0 committed (each job's result set), ATTEMPT_CAREFUL or ATTEMPT_ORDERED (what runs
 * next), or TERN_ESTORE nothing is committed. hope: the order check in the flight. */
static int attempt_piped(store_t *s, store_job_t *batch, map_t *lm, int lm_slice, int hope) {
  pg_notes_clear(&s->touch);
  pg_notes_clear(&s->fwd);
  flight_t *f = xcalloc(1, sizeof *f);
  f->s = s;
  f->lm = lm;
  f->past = -1;
  map_init(&f->sent);
  int rc = attempt_piped_run(f, batch, lm_slice, hope);
  if (s->w.piping) pgc_pipe_end(&s->w);
  posts_free(f);
  free(f->posts);
  for (int c = 0; c < 3; c++) buf_free(&f->gate[c]); /* a check never queued */
  for (int c = 0; c < 5; c++) {
    buf_free(&f->ack.col[c]);
    buf_free(&f->read.col[c]);
  }
  pg_notes_clear(&f->sent);
  map_fini(&f->sent);
  free(f);
  return rc;
}

/* Before a batch runs again: what the attempt left on its jobs and in lm, undone. */
static void batch_reset(store_job_t *batch, const import_save_t *saved, size_t ns, map_t *lm) {
  for (store_job_t *j = batch; j; j = j->next) job_reset(j);
  for (size_t k = 0; k < ns; k++)
    for (size_t i = 0; i < saved[k].j->n; i++) saved[k].j->ops[i].outcome = saved[k].outcomes[i];
  pg_notes_clear(lm);
}

void pg_run_batch(store_t *s, store_job_t *batch) {
  int64_t now = pg_mono_us();
  int lm_slice = now - s->lm_flushed_us >= LM_FLUSH_US / LM_SLICES ? s->lm_slice : -1; /* -1: none due */
  uint64_t njobs = 0, nimports = 0;
  for (store_job_t *j = batch; j; j = j->next) {
    njobs++;
    nimports += j->type == JOB_IMPORT;
  }
  metric_observe_count(M_COMMIT_BATCH, njobs);
  import_save_t *saved = nimports ? xcalloc(nimports, sizeof *saved) : NULL;
  size_t ns = 0;
  for (store_job_t *j = batch; j; j = j->next)
    if (j->type == JOB_IMPORT) {
      job_import_t *im = (job_import_t *)j;
      saved[ns].j = im;
      saved[ns].outcomes = xcalloc(im->n + 1, sizeof(int));
      for (size_t i = 0; i < im->n; i++) saved[ns].outcomes[i] = im->ops[i].outcome;
      ns++;
    }
  map_t lm; /* this batch's notes; they join s->lm once committed */
  map_init(&lm);
  int hope = s->order_wary == 0;
  if (!hope) s->order_wary--;
  int rc = attempt_piped(s, batch, &lm, lm_slice, hope);
  if (rc == ATTEMPT_ORDERED) { /* a key behind: the same attempt, the newest keys first */
    s->order_wary = ORDER_HOPE_AFTER;
    atomic_fetch_add(&s->order_behind, 1);
    batch_reset(batch, saved, ns, &lm);
    rc = attempt_piped(s, batch, &lm, lm_slice, 0);
  }
  if (rc == ATTEMPT_CAREFUL) { /* a statement failed: job by job */
    atomic_fetch_add(&s->batch_reruns, 1);
    batch_reset(batch, saved, ns, &lm);
    rc = attempt_careful(s, batch, &lm, lm_slice);
  }
  if (rc != 0) {
    atomic_fetch_add(&s->batches_failed, 1);
    for (store_job_t *j = batch; j; j = j->next) j->result = TERN_ESTORE;
  } else {
    if (lm.n) {
      map_iter_t it;
      for (map_node_t *n = map_first(&lm, &it); n; n = map_next(&lm, &it))
        lm_note(&s->lm, ((pg_note_t *)n)->conv, ((pg_note_t *)n)->ts);
    }
    if (lm_slice >= 0) { /* written, this batch's notes of the slice with them */
      notes_drop(&s->lm, lm_slice);
      s->lm_slice = (lm_slice + 1) % LM_SLICES;
      s->lm_flushed_us = now;
    }
  }
  atomic_store(&s->writer_up, s->w.c != NULL);
  for (size_t k = 0; k < ns; k++) free(saved[k].outcomes);
  free(saved);
  pg_notes_clear(&lm);
  map_fini(&lm);
  metric_observe_us(M_COMMIT, (uint64_t)(pg_mono_us() - now));
  store_post_done(batch, s->post, s->post_arg);
}

/* Attribute updates commit after the rest of their batch, at most one round of them per
 * STORE_DOCS_INTERVAL_US (store/writer.h says why). */
static void run_batch_split(store_t *s, store_job_t *batch, int force_docs) {
  store_job_t *rest = store_split_docs(batch, &s->docs_waiting);
  if (rest) pg_run_batch(s, rest);
  if (s->docs_waiting && (force_docs || pg_mono_us() - s->docs_last_us >= STORE_DOCS_INTERVAL_US)) {
    store_job_t *docs = s->docs_waiting;
    s->docs_waiting = NULL;
    pg_run_batch(s, docs);
    s->docs_last_us = pg_mono_us();
  }
}

/* Group commit: work that finds the writer idle is committed at once; while work keeps
 * coming, commits are at least interval_us apart (store_sqlite.c: writer_main). */
void *pg_writer_main(void *arg) {
  store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    int docs_due = 0;
    while (!s->head && !s->closing && !docs_due) {
      s->writer_asleep = 1;
      if (!s->docs_waiting) {
        pthread_cond_wait(&s->cv, &s->mu);
      } else {
        int64_t at = s->docs_last_us + STORE_DOCS_INTERVAL_US;
        struct timespec ts = {(time_t)(at / 1000000), (long)(at % 1000000) * 1000};
        docs_due = pg_mono_us() >= at || pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT;
      }
      s->writer_asleep = 0;
    }
    if (!s->head && !s->docs_waiting) break; /* closing, and everything is committed */
    int64_t due = s->last_commit_us + s->interval_us;
    while (s->head && !s->closing && s->queued < BATCH_MAX && pg_mono_us() < due) {
      struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
      pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    store_job_t *batch = s->head, *last = NULL;
    size_t n = 0;
    for (store_job_t *j = batch; j && n < BATCH_MAX; j = j->next, n++) last = j;
    if (last) {
      s->head = last->next;
      if (!s->head) s->tail = NULL;
      last->next = NULL;
      s->queued -= n;
      s->last_commit_us = pg_mono_us();
    }
    int force_docs = s->closing || docs_due;
    pthread_mutex_unlock(&s->mu);
    run_batch_split(s, batch, force_docs);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

void pg_submit(store_t *s, store_job_t *j) {
  j->next = NULL;
  if (s->inline_writes) {
    pg_run_batch(s, j);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = j;
  else s->head = j;
  s->tail = j;
  if (++s->queued == BATCH_MAX || s->writer_asleep) pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}
