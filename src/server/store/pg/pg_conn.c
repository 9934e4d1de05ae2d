/* pg_conn.c — one libpq connection of the PostgreSQL backend (pg_int.h): connecting with a
 * backoff, so that a database that is down costs a caller one failed attempt per backoff
 * period and not a connect timeout per call; statements prepared at their first use on
 * each connection; parameters; result values. */
#include <endian.h>
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

void pgc_close(pgc_t *p) {
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

static void notice_quiet(void *arg, const PGresult *res) {
  (void)arg;
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
  PQsetNoticeReceiver(c, notice_quiet, NULL);
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

static int runv(pgc_t *p, const char *name, const char *sql, uint8_t *prepared, int n, const char *const *v,
                const int *len, const int *fmt, PGresult **out) {
  if (out) *out = NULL;
  p->sqlstate[0] = 0;
  if (pgc_ensure(p) < 0) return TERN_ESTORE;
  PGresult *r;
  if (name) {
    if (!*prepared) {
      r = PQprepare(p->c, name, sql, 0, NULL);
      if (!result_ok(r)) return failed(p, r, sql);
      PQclear(r);
      *prepared = 1;
    }
    r = PQexecPrepared(p->c, name, n, v, len, fmt, 0);
  } else {
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
  PGresult *r = PQexec(p->c, sql);
  if (!result_ok(r)) return failed(p, r, sql);
  PQclear(r);
  return 0;
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
