/* pg_conn.c — one libpq connection of the PostgreSQL backend (pg_int.h): connecting with a
 * backoff, so that a database that is down costs a caller one failed attempt per backoff
 * period and not a connect timeout per call; statements prepared at their first use on
 * each connection; parameters; result values. */
#include <endian.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"

#define X(id, sql) sql,
static const char *const stmt_sql[PS_N] = {
#include "pg_sql.h"
};
#undef X

int64_t pg_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- parameters */

static int pga_slot(pgargs_t *a) {
  if (a->n >= PGA_MAX) {
    a->overflow = 1;
    return -1;
  }
  int i = a->n++;
  a->v[i] = NULL;
  a->len[i] = 0;
  a->fmt[i] = 0;
  return i;
}

void pga_i64(pgargs_t *a, int64_t v) {
  int i = pga_slot(a);
  if (i < 0) return;
  snprintf(a->num[i], sizeof a->num[i], "%lld", (long long)v);
  a->v[i] = a->num[i];
}

void pga_txt(pgargs_t *a, const char *s) {
  int i = pga_slot(a);
  if (i >= 0) a->v[i] = s;
}

void pga_bin(pgargs_t *a, const void *p, size_t n) {
  int i = pga_slot(a);
  if (i < 0) return;
  a->v[i] = p ? (const char *)p : "";
  a->len[i] = (int)n;
  a->fmt[i] = 1;
}

void pga_null(pgargs_t *a) { pga_slot(a); }

void pga_i64_or_null(pgargs_t *a, int64_t v) {
  if (v) pga_i64(a, v);
  else pga_null(a);
}

/* ---- connections */

static atomic_int open_connections; /* process-wide: readers outlive their store at exit */

int pg_open_connections(void) { return atomic_load(&open_connections); }

static void pipe_clear(pgc_t *p);

void pgc_close(pgc_t *p) {
  pipe_clear(p);
  free(p->qid);
  p->qid = NULL;
  p->capq = 0;
  p->piping = 0;
  if (p->c) {
    PQfinish(p->c);
    atomic_fetch_sub(&open_connections, 1);
  }
  p->c = NULL;
  memset(p->prepared, 0, sizeof p->prepared);
}

static void pgc_fail_connect(pgc_t *p) {
  p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
  if (p->backoff_ms > PG_BACKOFF_MAX_MS) p->backoff_ms = PG_BACKOFF_MAX_MS;
  p->retry_at_us = pg_mono_us() + (int64_t)p->backoff_ms * 1000;
}

/* Notices, and what an idle connection is told before PostgreSQL closes it (a FATAL
 * "terminating connection": a restart, pg_terminate_backend), which dooms it. */
static void notice_quiet(void *arg, const PGresult *res) {
  pgc_t *p = arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) p->doomed = 1;
  log_at(LOG_DEBUG, "postgres: %s", PQresultErrorMessage(res));
}

int pgc_ensure(pgc_t *p) {
  if (p->c && PQstatus(p->c) == CONNECTION_OK) return 0;
  if (p->c) pgc_close(p);
  if (p->retry_at_us && pg_mono_us() < p->retry_at_us) return TERN_ESTORE;
  const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
  const char *vals[] = {p->uri, "5", "ternd", NULL};
  PGconn *c = PQconnectdbParams(keys, vals, 1);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    /* the message, not the URI: it may carry a password */
    log_at(p->backoff_ms ? LOG_DEBUG : LOG_ERROR, "postgres (%s): cannot connect: %s", p->role,
           c ? PQerrorMessage(c) : "out of memory");
    if (c) PQfinish(c);
    pgc_fail_connect(p);
    return TERN_ESTORE;
  }
  p->doomed = 0;
  PQsetNoticeReceiver(c, notice_quiet, p);
  char set[200];
  /* synchronous_commit on: a COMMIT returns once the WAL is flushed — the ack-after-commit
   * contract; statement_timeout bounds what a read can cost the worker that waits for it */
  snprintf(set, sizeof set, "SET synchronous_commit = on; SET statement_timeout = %d; SET client_encoding = 'UTF8'",
           p->stmt_timeout_ms);
  PGresult *r = PQexec(c, set);
  int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) log_at(LOG_ERROR, "postgres (%s): %s", p->role, PQresultErrorMessage(r));
  PQclear(r);
  if (!ok) {
    PQfinish(c);
    pgc_fail_connect(p);
    return TERN_ESTORE;
  }
  /* The writer's statements are keyed lookups, and those that take a batch's arrays (its
   * messages, acks, reads, lm) join each element to a row by its key. Their custom plans,
   * which know each array's length, look cheaper than a generic one, so PostgreSQL planned
   * the acks' UPDATE afresh at every commit (~170 µs of its CPU each, a sixth of its time
   * on one node at 10,000 msgs/s), and a generic plan alone chose a hash join over a
   * sequential scan of `member` on a small database. Generic plans with only nested loops
   * are the plan custom planning found, without the planning (bench/README.md, "What
   * PostgreSQL spends a commit on"). Readers keep the defaults: the query threads run what
   * a `where` compiled to, whose plan depends on its values. */
  if (p->writer) {
    r = PQexec(c, "SET plan_cache_mode = force_generic_plan; SET enable_hashjoin = off; SET enable_mergejoin = off");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) /* before PostgreSQL 12: planned as before */
      log_at(LOG_WARN, "postgres (%s): %s", p->role, PQresultErrorMessage(r));
    PQclear(r);
  }
  if (p->backoff_ms) log_at(LOG_INFO, "postgres (%s): connected again", p->role);
  p->c = c;
  atomic_fetch_add(&open_connections, 1);
  p->backoff_ms = 0;
  p->retry_at_us = 0;
  memset(p->prepared, 0, sizeof p->prepared);
  if (p->reconnects) atomic_fetch_add(p->reconnects, 1);
  return 0;
}

/* After a failed statement: note its SQLSTATE, and close a connection that broke. */
static int failed(pgc_t *p, PGresult *r, const char *what) {
  const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  snprintf(p->sqlstate, sizeof p->sqlstate, "%s", st ? st : "");
  int gone = PQstatus(p->c) != CONNECTION_OK;
  /* unique violations are expected by some callers (they decide); the rest is logged */
  if (gone || !st || strcmp(st, "23505") != 0)
    log_at(LOG_ERROR, "postgres (%s): %s: %s", p->role, what, r ? PQresultErrorMessage(r) : PQerrorMessage(p->c));
  PQclear(r);
  if (gone) pgc_close(p); /* the next use reconnects at once: the backoff is for connects that fail */
  return TERN_ESTORE;
}

static int result_ok(PGresult *r) {
  ExecStatusType t = PQresultStatus(r);
  return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

static void round_trip(pgc_t *p) {
  if (p->round_trips) atomic_fetch_add(p->round_trips, 1);
}

static int runv(pgc_t *p, const char *name, const char *sql, uint8_t *prepared, int n, const char *const *v,
                const int *len, const int *fmt, PGresult **out) {
  if (out) *out = NULL;
  p->sqlstate[0] = 0;
  if (pgc_ensure(p) < 0) return TERN_ESTORE;
  PGresult *r;
  if (name) {
    if (!*prepared) {
      round_trip(p);
      r = PQprepare(p->c, name, sql, 0, NULL);
      if (!result_ok(r)) return failed(p, r, sql);
      PQclear(r);
      *prepared = 1;
    }
    round_trip(p);
    r = PQexecPrepared(p->c, name, n, v, len, fmt, 0);
  } else {
    round_trip(p);
    r = PQexecParams(p->c, sql, n, NULL, v, len, fmt, 0);
  }
  if (!result_ok(r)) return failed(p, r, sql);
  if (out) *out = r;
  else PQclear(r);
  return 0;
}

static int run(pgc_t *p, const char *name, const char *sql, uint8_t *prepared, const pgargs_t *a, PGresult **out) {
  if (a && a->overflow) {
    if (out) *out = NULL;
    log_at(LOG_ERROR, "postgres: more than %d parameters", PGA_MAX);
    return TERN_ESTORE;
  }
  return runv(p, name, sql, prepared, a ? a->n : 0, a ? a->v : NULL, a ? a->len : NULL, a ? a->fmt : NULL, out);
}

int pgc_sqlv(pgc_t *p, const char *sql, int n, const char *const *v, PGresult **out) {
  int had = p->c != NULL;
  int rc = runv(p, NULL, sql, NULL, n, v, NULL, NULL, out);
  if (rc < 0 && had && !p->c && p->retry_reads) rc = runv(p, NULL, sql, NULL, n, v, NULL, NULL, out);
  return rc;
}

/* A read that finds its connection dead (the server restarted since its last use) is run
 * once more on a new one: after an outage, each reader's first read would fail otherwise.
 * Only readers: a writer's statement belongs to a transaction that died with it. */
static int run_again(pgc_t *p, const char *name, const char *sql, uint8_t *prepared, const pgargs_t *a,
                     PGresult **out) {
  int had = p->c != NULL;
  int rc = run(p, name, sql, name ? prepared : NULL, a, out);
  if (rc < 0 && had && !p->c && p->retry_reads) rc = run(p, name, sql, name ? prepared : NULL, a, out);
  return rc;
}

int pgc_run(pgc_t *p, int id, const pgargs_t *a, PGresult **out) {
  char name[16];
  snprintf(name, sizeof name, "t%d", id);
  return run_again(p, name, stmt_sql[id], &p->prepared[id], a, out);
}

int pgc_sql(pgc_t *p, const char *sql, const pgargs_t *a, PGresult **out) {
  return run_again(p, NULL, sql, NULL, a, out);
}

int pgc_cmd(pgc_t *p, const char *sql) {
  p->sqlstate[0] = 0;
  if (pgc_ensure(p) < 0) return TERN_ESTORE;
  round_trip(p);
  PGresult *r = PQexec(p->c, sql);
  if (!result_ok(r)) return failed(p, r, sql);
  PQclear(r);
  return 0;
}

/* ---- pipeline mode (pg_int.h) */

static void pipe_clear(pgc_t *p) {
  for (int i = 0; i < p->nres; i++) PQclear(p->qres[i]);
  free(p->qres);
  p->qres = NULL;
  p->nres = 0;
  p->nq = 0;
  p->failed_at = -1;
}

/* The connection broke while queueing or sending: closed; the flight is lost. */
static int pipe_broke(pgc_t *p, const char *what) {
  log_at(LOG_ERROR, "postgres (%s): %s: %s", p->role, what, p->c ? PQerrorMessage(p->c) : "no connection");
  p->sqlstate[0] = 0;
  pgc_close(p);
  return TERN_ESTORE;
}

/* The connection went during a sync: item `from` and those after it got no answer. The
 * answers that came stay readable; the connection is closed. */
static int pipe_lost(pgc_t *p, int from, const char *what) {
  if (p->failed_at < 0 || from < p->failed_at) p->failed_at = from;
  for (int i = from; i < p->nres; i++)
    if (p->qid[i] < PGQ_CMD) p->prepared[-2 - p->qid[i]] = 0;
  PGresult **res = p->qres;
  int nres = p->nres, failed_at = p->failed_at;
  p->qres = NULL;
  p->nres = 0;
  pipe_broke(p, what);
  p->qres = res;
  p->nres = nres;
  p->failed_at = failed_at;
  return TERN_ESTORE;
}

static int pipe_push(pgc_t *p, int id) {
  if (p->nq == p->capq) p->qid = xrealloc(p->qid, (size_t)(p->capq = p->capq ? p->capq * 2 : 32) * sizeof *p->qid);
  p->qid[p->nq] = id;
  return p->nq++;
}

int pgc_pipe_begin(pgc_t *p, int fresh) {
  p->sqlstate[0] = 0;
  pipe_clear(p);
  if (!fresh && !p->c) return TERN_ESTORE; /* the transaction went with the connection */
  if (fresh && p->c && !p->piping) {
    /* a server that restarted while this connection was idle has closed it (its FATAL
     * message, then the end of the stream): reading what is there finds either without a
     * round trip, and the batch goes to a new connection instead of failing */
    for (int k = 0; k < 2 && PQstatus(p->c) == CONNECTION_OK; k++) PQconsumeInput(p->c);
    PGnotify *nf; /* parses what came: a FATAL while idle goes to notice_quiet */
    while (PQstatus(p->c) == CONNECTION_OK && (nf = PQnotifies(p->c)) != NULL) PQfreemem(nf);
    if (PQstatus(p->c) != CONNECTION_OK || p->doomed) {
      log_at(LOG_INFO, "postgres (%s): the connection was closed while idle: connecting again", p->role);
      pgc_close(p);
    }
  }
  if (pgc_ensure(p) < 0) return TERN_ESTORE;
  if (p->piping) return 0;
  /* non-blocking while a flight is sent: pgc_pipe_sync reads answers while it writes, so
   * that a large flight never waits on a server waiting for us to read */
  if (!PQenterPipelineMode(p->c) || PQsetnonblocking(p->c, 1) != 0) return pipe_broke(p, "pipeline mode");
  p->piping = 1;
  return 0;
}

int pgc_pipe_run(pgc_t *p, int id, const pgargs_t *a) {
  if (!p->piping || !p->c) return TERN_ESTORE;
  if (a && a->overflow) return pipe_broke(p, "more parameters than PGA_MAX");
  char name[16];
  snprintf(name, sizeof name, "t%d", id);
  if (!p->prepared[id]) {
    if (!PQsendPrepare(p->c, name, stmt_sql[id], 0, NULL)) return pipe_broke(p, stmt_sql[id]);
    pipe_push(p, PGQ_PREPARE(id));
    p->prepared[id] = 1; /* undone by pgc_pipe_sync if it did not succeed */
  }
  if (!PQsendQueryPrepared(p->c, name, a ? a->n : 0, a ? a->v : NULL, a ? a->len : NULL, a ? a->fmt : NULL, 0))
    return pipe_broke(p, stmt_sql[id]);
  return pipe_push(p, id);
}

int pgc_pipe_cmd(pgc_t *p, const char *sql) {
  if (!p->piping || !p->c) return TERN_ESTORE;
  if (!PQsendQueryParams(p->c, sql, 0, NULL, NULL, NULL, NULL, 0)) return pipe_broke(p, sql);
  return pipe_push(p, PGQ_CMD);
}

static const char *item_sql(int id) { return id >= 0 ? stmt_sql[id] : id == PGQ_CMD ? "command" : "prepare"; }

int pgc_pipe_sync(pgc_t *p, const char *quiet) {
  if (!p->piping || !p->c) return TERN_ESTORE;
  p->sqlstate[0] = 0;
  int n = p->nq, rc = 0;
  for (int i = 0; i < p->nres; i++) PQclear(p->qres[i]);
  free(p->qres);
  p->qres = xcalloc((size_t)n + 1, sizeof *p->qres);
  p->nres = n;
  p->nq = 0;
  p->failed_at = -1;
  round_trip(p);
  if (!PQpipelineSync(p->c)) return pipe_lost(p, 0, "pipeline sync");
  int f;
  while ((f = PQflush(p->c)) == 1) { /* the documented loop: read what comes while writing */
    struct pollfd pf = {PQsocket(p->c), POLLIN | POLLOUT, 0};
    if (poll(&pf, 1, -1) < 0) continue;
    if ((pf.revents & POLLIN) && !PQconsumeInput(p->c)) break;
  }
  if (f != 0) return pipe_lost(p, 0, "pipeline send");
  for (int i = 0; i < n; i++) {
    PGresult *r = PQgetResult(p->c);
    if (!r) return pipe_lost(p, i, "pipeline"); /* the connection went: no answer from here on */
    PGresult *z;
    while ((z = PQgetResult(p->c)) != NULL) PQclear(z); /* each item's results end with NULL */
    p->qres[i] = r;
    int id = p->qid[i];
    if (result_ok(r)) continue;
    if (id < PGQ_CMD) p->prepared[-2 - id] = 0;
    rc = TERN_ESTORE;
    if (p->failed_at >= 0) continue;
    p->failed_at = i;
    if (PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
      const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      snprintf(p->sqlstate, sizeof p->sqlstate, "%s", st ? st : "");
      if (!quiet || strcmp(p->sqlstate, quiet) != 0)
        log_at(LOG_ERROR, "postgres (%s): %s: %s", p->role, item_sql(id), PQresultErrorMessage(r));
    }
  }
  PGresult *sync = PQstatus(p->c) == CONNECTION_OK ? PQgetResult(p->c) : NULL;
  int synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced) return pipe_lost(p, p->failed_at >= 0 ? p->failed_at : n, "pipeline sync");
  return rc;
}

PGresult *pgc_pipe_result(pgc_t *p, int i) { return p->qres && i >= 0 && i < p->nres ? p->qres[i] : NULL; }

void pgc_pipe_end(pgc_t *p) {
  pipe_clear(p);
  if (!p->piping) return;
  p->piping = 0;
  if (!p->c) return;
  if (PQsetnonblocking(p->c, 0) != 0 || !PQexitPipelineMode(p->c)) pipe_broke(p, "leaving pipeline mode");
}

int64_t pg_changes(PGresult *r) { return r ? strtoll(PQcmdTuples(r), NULL, 10) : 0; }

/* ---- values */

int64_t pg_i64(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return 0;
  const char *v = PQgetvalue(r, row, col);
  if (*v == 't') return 1; /* booleans */
  if (*v == 'f') return 0;
  return strtoll(v, NULL, 10);
}

const char *pg_str(const PGresult *r, int row, int col) {
  return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

char *pg_dup(const PGresult *r, int row, int col) {
  const char *s = pg_str(r, row, col);
  return s ? xstrdup(s) : NULL;
}

void pg_read_msg(const PGresult *r, int row, int base, msg_view_t *m, unsigned char **buf) {
  m->ts = pg_i64(r, row, base);
  m->seq = pg_i64(r, row, base + 1);
  m->mid = pg_str(r, row, base + 2);
  m->sender = pg_str(r, row, base + 3);
  size_t n = 0;
  *buf = NULL;
  if (!PQgetisnull(r, row, base + 4)) *buf = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, base + 4), &n);
  m->data = *buf ? *buf : (const uint8_t *)""; /* views are never NULL (memcpy) */
  m->len = *buf ? n : 0;
  m->flags = (int)pg_i64(r, row, base + 5);
  m->mentions = pg_str(r, row, base + 6);
  m->patch_ts = pg_i64(r, row, base + 7);
  m->readers = pg_str(r, row, base + 8);
}
