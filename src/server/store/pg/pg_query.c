/* pg_query.c — queries of the PostgreSQL backend: what the query threads run (store/qpool.c;
 * each query within its deadline: statement_timeout is the time left), parsed conversation
 * queries (convq.h) compiled to SQL over the member table and the document as jsonb
 * (pg_convq.c), and `_Installation` queries compiled to SQL over
 * jsonb. Every value is a bound parameter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "classq.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"
#include "timeutil.h"

static int pg_query_read(store_reader_t *r, store_read_t *rd) {
  return qpool_run_query(r, QPOOL_QUERY_OF(rd), pg_conv_count_until, pg_conv_query_until);
}

int pg_query_submit(store_t *s, store_query_t *q) { return qpool_submit_query(s->qpool, q, pg_query_read); }

/* ---- conversation queries (compiled by pg_convq.c) */

int pg_conv_query_check(store_t *s, const store_conv_q_t *cq, char *err, size_t errlen) {
  (void)s;
  if (!cq->query) return snprintf(err, errlen, "no query"), TERN_EINVAL;
  pgq_t q = {0};
  buf_t order = BUF_INIT;
  int rc = pg_convq_compile(cq->query, &q, &order, err, errlen);
  pgq_free(&q);
  buf_free(&order);
  return rc;
}

/* The conversation rows with their newest message's time (qlm: the stored lm lags it). */
#define FROM_CONV                                                                                                      \
  "(SELECT c.*, coalesce((SELECT ts FROM msg WHERE msg.conv = c.id ORDER BY ts DESC, seq DESC LIMIT 1), c.lm)"         \
  " AS qlm, c.doc::jsonb AS dj FROM conv c) c"

/* Runs sql within the deadline: statement_timeout is the time left, for this statement
 * only (the reader's own again after); a statement it cancels is TERN_ETIMEDOUT, a pattern
 * PostgreSQL refuses TERN_EINVAL. */
static int run_until(store_reader_t *r, const char *sql, pgq_t *q, uint64_t deadline_ns, PGresult **res) {
  int timed = 0, rc = 0;
  *res = NULL;
  if (deadline_ns) {
    uint64_t now = mono_ns();
    if (now >= deadline_ns) return TERN_ETIMEDOUT;
    int ms = (int)((deadline_ns - now) / 1000000);
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %d", ms < 1 ? 1 : ms);
    if (pgc_cmd(&r->c, set) < 0) return TERN_ESTORE;
    timed = 1;
  }
  if (pgc_sqlv(&r->c, sql, q->n, (const char *const *)q->vals, res) < 0)
    rc = strcmp(r->c.sqlstate, "57014") == 0   ? TERN_ETIMEDOUT
         : strcmp(r->c.sqlstate, "2201B") == 0 ? TERN_EINVAL
                                               : TERN_ESTORE;
  if (timed && r->c.c) {
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %d", r->c.stmt_timeout_ms);
    pgc_cmd(&r->c, set);
  }
  return rc;
}

int pg_conv_query_until(store_reader_t *r, const store_conv_q_t *cq, uint64_t deadline_ns, conv_view_cb cb, void *arg) {
  if (!cq->query) return TERN_EINVAL;
  pgq_t q = {0};
  buf_t order = BUF_INIT;
  char err[200];
  int rc = pg_convq_compile(cq->query, &q, &order, err, sizeof err);
  if (rc == 0) {
    buf_t sql = BUF_INIT;
    buf_printf(&sql,
               "SELECT c.id, c.cid, c.kind, c.created_at, c.updated_at, c.qlm, c.doc, c.expire_at FROM " FROM_CONV
               " WHERE %s ORDER BY %s LIMIT %d OFFSET %d",
               buf_cstr(&q.sql), buf_cstr(&order), cq->limit, cq->skip);
    PGresult *res;
    rc = run_until(r, buf_cstr(&sql), &q, deadline_ns, &res);
    if (rc == 0) rc = pg_conv_rows(r, res, cq->flags, cb, arg);
    PQclear(res);
    if (rc == 0 && deadline_ns && mono_ns() > deadline_ns) rc = TERN_ETIMEDOUT; /* the rows' reads ran past it */
    buf_free(&sql);
  }
  pgq_free(&q);
  buf_free(&order);
  return rc;
}

int pg_conv_count_until(store_reader_t *r, const store_conv_q_t *cq, uint64_t deadline_ns, int64_t *n) {
  if (!cq->query) return TERN_EINVAL;
  pgq_t q = {0};
  char err[200];
  int rc = pg_convq_compile(cq->query, &q, NULL, err, sizeof err);
  if (rc == 0) {
    buf_t sql = BUF_INIT;
    buf_printf(&sql, "SELECT count(*) FROM " FROM_CONV " WHERE %s", buf_cstr(&q.sql));
    PGresult *res;
    rc = run_until(r, buf_cstr(&sql), &q, deadline_ns, &res);
    if (rc == 0) *n = pg_i64(res, 0, 0);
    PQclear(res);
    buf_free(&sql);
  }
  pgq_free(&q);
  return rc;
}

int pg_conv_count(store_reader_t *r, const store_conv_q_t *cq, int64_t *n) { return pg_conv_count_until(r, cq, 0, n); }

/* ---- installations: an AND of simple conditions (store_class_q_t) over jsonb */

/* A condition on a column (classq.h: inst_where_sql). */
static void inst_col_sql(void *arg, const char *col, const store_cond_t *c) {
  pgq_t *q = arg;
  if (c->op == STORE_IN || c->op == STORE_NIN) {
    buf_printf(&q->sql, "%sto_jsonb(%s) IN (SELECT jsonb_array_elements(", c->op == STORE_NIN ? "NOT " : "", col);
    param_json(q, c->val);
    buf_append_str(&q->sql, "))");
  } else if (c->is_time) {
    buf_printf(&q->sql, "%s%s", col, CLASS_CMP_SQL[c->op]);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)c->ms);
    param_text(q, xstrdup(num), "::bigint");
  } else if (json_is_string(c->val) && !strstr(col, "_at")) {
    buf_printf(&q->sql, "%s%s", col, CLASS_CMP_SQL[c->op]);
    param_text(q, xstrdup(json_string_value(c->val)), "::text");
  } else {
    buf_printf(&q->sql, "to_jsonb(%s)%s", col, CLASS_CMP_SQL[c->op]);
    param_json(q, c->val);
  }
}

/* A condition on a path into the stored object. */
static void inst_path_sql(void *arg, const store_cond_t *c) {
  pgq_t *q = arg;
  if (strchr(c->field, '"') && strchr(c->field, '[')) {
    buf_append_str(&q->sql, "false");
    return;
  }
  json_t *path = json_array();
  for (const char *s = c->field; *s;) {
    size_t n = strcspn(s, ".");
    json_array_append_new(path, json_stringn(s, n));
    s += n + (s[n] == '.');
  }
  /* the path as a text[] built from a jsonb array: no quoting of the keys by hand */
  buf_t x = BUF_INIT;
  buf_printf(&x, "(body::jsonb #> ARRAY(SELECT jsonb_array_elements_text($%d::jsonb)))", q->n + 1);
  pgq_param(q, json_dumps(path, JSON_COMPACT));
  json_decref(path);
  const char *v = buf_cstr(&x);
  switch (c->op) {
  case STORE_EXISTS: buf_printf(&q->sql, "%s IS %sNULL", v, json_is_true(c->val) ? "NOT " : ""); break;
  case STORE_EQ:
  case STORE_NE: /* an array field equals a value it contains, as in LeanCloud */
    buf_printf(&q->sql, "%scoalesce(%s = ", c->op == STORE_NE ? "NOT " : "", v);
    param_json(q, c->val);
    buf_printf(&q->sql, " OR (jsonb_typeof(%s) = 'array' AND %s @> jsonb_build_array(", v, v);
    param_json(q, c->val);
    buf_append_str(&q->sql, ")), false)");
    break;
  case STORE_IN:
  case STORE_NIN:
    buf_printf(&q->sql,
               "%scoalesce(EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(%s) = 'array' THEN %s"
               " ELSE jsonb_build_array(%s) END) e WHERE %s IS NOT NULL AND e IN (SELECT jsonb_array_elements(",
               c->op == STORE_NIN ? "NOT " : "", v, v, v, v);
    param_json(q, c->val);
    buf_append_str(&q->sql, "))), false)");
    break;
  default: /* ordered comparisons: numbers with numbers, strings with strings */
    if (json_is_string(c->val)) {
      buf_printf(&q->sql, "(jsonb_typeof(%s) = 'string' AND (%s #>> '{}') COLLATE \"C\"%s", v, v, CLASS_CMP_SQL[c->op]);
      param_text(q, xstrdup(json_string_value(c->val)), "::text)");
    } else {
      buf_printf(&q->sql, "(jsonb_typeof(%s) = 'number' AND (%s)::numeric%s", v, v, CLASS_CMP_SQL[c->op]);
      param_json(q, c->val);
      buf_append_str(&q->sql, "::numeric)");
    }
  }
  buf_free(&x);
}

/* The compiled where of cq into q (every value a parameter). Fields that are not columns
 * are paths into the stored object (body::jsonb #> path). As on SQLite (store_class.c): an
 * array field equals a value it contains; a key with both '"' and '[' matches nothing (the
 * api never sends one; SQLite cannot address it and the backends answer alike). */
static void inst_where(const store_class_q_t *cq, pgq_t *q) {
  static const char *const truth[2] = {"false", "true"};
  inst_where_sql(cq, &q->sql, truth, inst_col_sql, inst_path_sql, q);
}

int pg_installation_count(store_reader_t *r, const store_class_q_t *cq, int64_t *n) {
  pgq_t q = {0};
  inst_where(cq, &q);
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT count(*) FROM installation WHERE %s", buf_cstr(&q.sql));
  PGresult *res;
  int rc = pgc_sqlv(&r->c, buf_cstr(&sql), q.n, (const char *const *)q.vals, &res);
  buf_free(&sql);
  pgq_free(&q);
  if (rc < 0) return TERN_ESTORE;
  *n = pg_i64(res, 0, 0);
  PQclear(res);
  return 0;
}

int pg_installation_query(store_reader_t *r, const store_class_q_t *cq,
                          void (*cb)(void *arg, const installation_row_t *row), void *arg) {
  pgq_t q = {0};
  inst_where(cq, &q);
  buf_t sql = BUF_INIT;
  inst_select_sql(cq, buf_cstr(&q.sql), &sql);
  PGresult *res;
  int rc = pgc_sqlv(&r->c, buf_cstr(&sql), q.n, (const char *const *)q.vals, &res);
  buf_free(&sql);
  pgq_free(&q);
  if (rc < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    installation_row_t row = {(char *)pg_str(res, i, 0), (char *)pg_str(res, i, 1), (char *)pg_str(res, i, 2),
                              (char *)pg_str(res, i, 3), pg_i64(res, i, 4),         pg_i64(res, i, 5)};
    cb(arg, &row);
  }
  PQclear(res);
  return 0;
}
