/* pg_int.h — what the files of the PostgreSQL backend share (store/pg/): the connection
 * wrapper with its lazily prepared statements and reconnect backoff (pg_conn.c), the
 * statement table (pg_sql.h), the store and reader structs. Nothing outside store/pg/
 * includes it. */
#ifndef TERN_PG_INT_H
#define TERN_PG_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "convq.h"
#include "map.h"
#include "qpool.h"
#include "store.h"

/* ---- the statement table: every fixed statement, prepared on a connection at first use */
#define X(id, sql) PS_##id,
enum {
#include "pg_sql.h"
  PS_N
};
#undef X

/* ---- one connection */
typedef struct {
  PGconn *c;
  const char *uri;           /* the store's */
  const char *role;          /* "writer", "reader", "query": for the log */
  int stmt_timeout_ms;       /* statement_timeout on this connection (0: none) */
  int retry_reads;           /* a reader: a statement that finds the connection dead runs again once */
  int writer;                /* the writer's planner settings (pgc_ensure says why) */
  uint8_t prepared[PS_N];    /* which statements this connection has prepared */
  int64_t retry_at_us;       /* no new attempt before (monotonic µs) */
  int backoff_ms;            /* the next wait after a failed connect (doubles to PG_BACKOFF_MAX_MS) */
  char sqlstate[6];          /* of the last failed statement ("" if none, or the connection went) */
  atomic_int *reconnects;    /* the store's counter */
  atomic_llong *round_trips; /* the store's counter of this connection's round trips, or NULL */
  /* pipeline mode (pgc_pipe_*): what the current flight queued, in order, and its results */
  int piping;
  int nq, capq;
  int *qid;        /* a statement's id; PGQ_CMD a command; PGQ_PREPARE(id) the preparing of id */
  PGresult **qres; /* after pgc_pipe_sync: one result per item of the flight (NULL if none came) */
  int nres;
  int failed_at; /* after pgc_pipe_sync: the first item that failed, or -1 */
  int doomed;    /* PostgreSQL said FATAL on this connection while it was idle (it is closing it) */
} pgc_t;
#define PGQ_CMD (-1)
#define PGQ_PREPARE(id) (-2 - (id))

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 5000

/* Parameters of one statement, text format but for bytea (binary). */
#define PGA_MAX 128
typedef struct {
  int n, overflow;
  const char *v[PGA_MAX];
  int len[PGA_MAX], fmt[PGA_MAX];
  char num[PGA_MAX][24];
} pgargs_t;

void pga_i64(pgargs_t *a, int64_t v);
void pga_txt(pgargs_t *a, const char *s); /* NULL: SQL NULL */
void pga_bin(pgargs_t *a, const void *p, size_t n);
void pga_null(pgargs_t *a);
void pga_i64_or_null(pgargs_t *a, int64_t v); /* 0: NULL */

/* Connects if not connected (once its backoff has passed); 0, or TERN_ESTORE. */
int pgc_ensure(pgc_t *p);
void pgc_close(pgc_t *p);
/* Connections to PostgreSQL open in this process (all stores). */
int pg_open_connections(void);
/* Runs statement `id` (prepared on first use) or `sql` (id < 0), with a's parameters.
 * 0 with *out the result (PQclear it; out may be NULL), or TERN_ESTORE (logged; sqlstate
 * set; a connection that broke is closed and reconnects later by itself). */
int pgc_run(pgc_t *p, int id, const pgargs_t *a, PGresult **out);
int pgc_sql(pgc_t *p, const char *sql, const pgargs_t *a, PGresult **out);
/* The same with n text parameters v (any number: compiled queries). */
int pgc_sqlv(pgc_t *p, const char *sql, int n, const char *const *v, PGresult **out);
/* A command without parameters (BEGIN, COMMIT, SAVEPOINT …): 0 or TERN_ESTORE. */
int pgc_cmd(pgc_t *p, const char *sql);
/* ---- pipeline mode: statements queued without waiting, sent together and answered
 * together — one round trip per pgc_pipe_sync, however many statements (libpq's pipeline
 * mode). A statement that fails makes PostgreSQL skip the rest of the flight (their results
 * are PGRES_PIPELINE_ABORTED); inside BEGIN the transaction is then aborted.
 *
 * pgc_pipe_begin: enters pipeline mode: 0 or TERN_ESTORE. fresh (no transaction open on
 * p): first probes an idle connection for a close PostgreSQL sent while it was idle (a
 * restart) and replaces it, and connects if needed; else (inside a transaction) a
 * connection that went is not replaced.
 * pgc_pipe_run / pgc_pipe_cmd: queue statement id (prepared in the same flight on its first
 * use) or a parameterless command; the item's index in the flight, or TERN_ESTORE (the
 * connection broke: closed). Parameters are copied: a may go at once.
 * pgc_pipe_sync: sends the flight and reads every result (pgc_pipe_result(p, index), owned
 * by p until the next sync or pgc_pipe_end): 0 if every item succeeded; TERN_ESTORE if one
 * failed (p->failed_at, sqlstate set, logged unless it is `quiet`: a state the caller's
 * flight may fail by design, or NULL) or the connection went (closed: failed_at is
 * the first item without an answer). The connection stays in pipeline mode for another
 * flight. pgc_pipe_end: leaves pipeline mode (or nothing, if the connection went). */
int pgc_pipe_begin(pgc_t *p, int fresh);
int pgc_pipe_run(pgc_t *p, int id, const pgargs_t *a);
int pgc_pipe_cmd(pgc_t *p, const char *sql);
int pgc_pipe_sync(pgc_t *p, const char *quiet);
PGresult *pgc_pipe_result(pgc_t *p, int i);
void pgc_pipe_end(pgc_t *p);

/* Rows a command changed. */
int64_t pg_changes(PGresult *r);

/* Result values: NULL reads as 0 / NULL. */
int64_t pg_i64(const PGresult *r, int row, int col);
const char *pg_str(const PGresult *r, int row, int col);
char *pg_dup(const PGresult *r, int row, int col); /* xstrdup, NULL for NULL */

/* A message row of the columns MSG_COLS at base into m; data is unescaped into *buf
 * (PQfreemem it after the callback). */
#define PG_MSG_COLS "ts, seq, mid, sender, data, flags, mentions, patch_ts, readers"
void pg_read_msg(const PGresult *r, int row, int base, msg_view_t *m, unsigned char **buf);

int64_t pg_mono_us(void);

/* ---- the store */

/* The writer's notes per conversation, on map.h: conversation id → a key (ts, seq) that only
 * moves forward (pg_writer.c: note_raise). */
typedef struct {
  map_node_t node; /* key: conv's 8 bytes */
  int64_t conv, ts, seq;
} pg_note_t;
/* Frees every note of m (m stays usable). */
void pg_notes_clear(map_t *m);

struct store {
  const store_ops_t *ops; /* first: store.c finds the table here */
  char *uri;
  int inline_writes;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  pgc_t w; /* the writer's connection */
  pthread_t writer;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC */
  store_job_t *head, *tail;
  size_t queued;
  int writer_asleep, closing, started;
  int64_t interval_us, last_commit_us;
  store_job_t *docs_waiting; /* writer only: attribute updates held for the next docs round */
  int64_t docs_last_us;
  /* writer only, each a map of pg_note_t: */
  map_t fwd;   /* pg_import_finish owed by this transaction's imports (up to the key) */
  map_t touch; /* conversations whose members this transaction changed (ts: updated_at) */
  map_t lm;    /* conversations' newest message times not yet written (ts) */
  int64_t lm_flushed_us;
  int lm_slice; /* the slice of lm the next flush writes (pg_writer.c: LM_SLICES) */
  map_t order;  /* writer only: the newest stored key of each conversation this transaction
                * holds the order lock of (pg_writer.c: order_lock) */
  atomic_llong rekeyed;
  int order_wary;            /* writer only: batches left to run ordered after a key behind */
  atomic_llong order_behind; /* such flights, run again: tern_store_pg_order_retries_total */
  atomic_int fail_writes;
  atomic_int reconnects, writer_up;
  atomic_llong round_trips; /* the writer's, to PostgreSQL: tern_store_round_trips_total */
  atomic_llong batches_failed, batch_reruns;
  qpool_t *qpool;
  qpool_t *rpool; /* the read threads behind store_read_submit: not the query threads, which
                   * run lower and may be held by costly `where`s that must not hold a history
                   * page (store/qpool.c) */
};

struct store_reader {
  const store_ops_t *ops; /* first, as in struct store */
  store_t *s;
  pgc_t c;
};

/* pg_schema.c: creates or migrates the schema on a connected p (advisory lock held). */
int pg_migrate(pgc_t *p);
/* pg_writer.c */
void pg_submit(store_t *s, store_job_t *j);
void *pg_writer_main(void *arg);
void pg_run_batch(store_t *s, store_job_t *batch);
void pg_lm_final(store_t *s);
/* pg_doc.c: applies one conversation's changes (store.h: doc_change_t) to its document
 * text; returns the new text (malloc'd) or NULL when doc is not a JSON object and no
 * DOC_REPLACE replaces it. */
char *pg_doc_apply(const char *doc, const doc_change_t *const *changes, size_t n);
/* pg_import.c: a JOB_IMPORT on the writer's connection, in the batch's transaction:
 * 0, or TERN_ESTORE (a statement failed: the transaction is aborted). */
int pg_import_run(pgc_t *p, job_import_t *j);
/* What a JOB_IMPORT leaves for the end of the transaction, once per conversation: members
 * read and received up to (ts, seq), the conversation flagged ext_ids. */
int pg_import_finish(pgc_t *p, int64_t conv, int64_t ts, int64_t seq);
/* pg_reads.c */
store_reader_t *pg_reader_new(store_t *s);
void pg_reader_free(store_reader_t *r);
/* Hands cb each row of res (columns id, cid, kind, created_at, updated_at, lm, doc,
 * expire_at) as conv_view_t: members unless flags & 1 (or a room or service conversation),
 * the newest message when flags & 2 (pg_reads.c). */
int pg_conv_rows(store_reader_t *r, PGresult *res, int flags, conv_view_cb cb, void *arg);
/* ---- a compiled query: SQL text and its parameters ($1 …, text; any number of them) */
typedef struct {
  buf_t sql;
  char **vals; /* owned */
  int n, cap;
} pgq_t;
/* Takes owned (malloc'd text, or NULL for SQL NULL) as the next parameter: $n. */
void pgq_param(pgq_t *q, char *owned);
/* Writes "$n<cast>" into q->sql for a new parameter owned. */
void param_text(pgq_t *q, char *owned, const char *cast);
void param_json(pgq_t *q, json_t *v); /* "$n::jsonb" */
void pgq_free(pgq_t *q);
/* pg_convq.c: q's where (with "c.kind IN (1,2,3)") and ORDER BY (after the where's
 * parameters; order NULL: none, for a count); 0, or TERN_EINVAL with err set (a $regex
 * PostgreSQL would read otherwise). The SQL reads c.cid, c.kind, c.created_at, c.updated_at,
 * c.member_count, c.qlm (the newest message's time) and c.dj (the document as jsonb). */
int pg_convq_compile(const convq_t *cq, pgq_t *q, buf_t *order, char *err, size_t errlen);

/* pg_query.c */
int pg_query_submit(store_t *s, store_query_t *q);
int pg_conv_query_check(store_t *s, const store_conv_q_t *q, char *err, size_t errlen);
int pg_conv_query_until(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, conv_view_cb cb, void *arg);
int pg_conv_count(store_reader_t *r, const store_conv_q_t *q, int64_t *n);
int pg_conv_count_until(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, int64_t *n);
int pg_installation_count(store_reader_t *r, const store_class_q_t *q, int64_t *n);
int pg_installation_query(store_reader_t *r, const store_class_q_t *q,
                          void (*cb)(void *arg, const installation_row_t *row), void *arg);

#endif
