/* store_class.c — the SQLite backend's class reads: counts of a compiled conversation
 * query, and `_Installation` queries (store.h: store_class_q_t, an AND of simple
 * conditions) compiled here to SQL over the installation table. Every value travels as a
 * bound parameter. */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "classq.h"
#include "err.h"
#include "log.h"
#include "query.h"
#include "store_sqlite_int.h"

void sq_bind_query(sqlite3_stmt *st, const struct query *q) {
  for (size_t i = 0; i < q->nparams; i++) {
    const query_param_t *p = &q->params[i];
    if (p->type == QP_TEXT) sqlite3_bind_text(st, (int)i + 1, p->s, -1, SQLITE_STATIC);
    else if (p->type == QP_INT) sqlite3_bind_int64(st, (int)i + 1, p->i);
    else sqlite3_bind_double(st, (int)i + 1, p->d);
  }
}

int sq_count(store_reader_t *r, const char *from, const struct query *q, int64_t *n) {
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT count(*) FROM %s WHERE %s", from, q->sql.data ? (const char *)q->sql.data : "1");
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(store_reader_db(r), buf_cstr(&sql), -1, &st, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) {
    log_at(LOG_WARN, "count did not prepare: %s", sqlite3_errmsg(store_reader_db(r)));
    return TERN_ESTORE;
  }
  sq_bind_query(st, q);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : TERN_ESTORE;
}

/* ---- installations */

/* "?" in q->sql and its parameter (query.c's list, bound by sq_bind_query). */
static query_param_t *sql_param(query_t *q, query_param_type_t type, const char *s, int64_t i) {
  query_param_t *p = query_param_add(q, type);
  p->s = s ? xstrdup(s) : NULL;
  p->i = i;
  buf_append_str(&q->sql, "?");
  return p;
}

static void sql_value(query_t *q, json_t *v) {
  if (json_is_string(v)) sql_param(q, QP_TEXT, json_string_value(v), 0);
  else if (json_is_integer(v)) sql_param(q, QP_INT, NULL, json_integer_value(v));
  else if (json_is_boolean(v)) sql_param(q, QP_INT, NULL, json_is_true(v));
  else sql_param(q, QP_REAL, NULL, 0)->d = json_real_value(v);
}

static void sql_list(query_t *q, json_t *arr) {
  char *text = json_dumps(arr, JSON_COMPACT);
  buf_append_str(&q->sql, "(SELECT value FROM json_each(");
  sql_param(q, QP_TEXT, text, 0);
  buf_append_str(&q->sql, "))");
  free(text);
}

/* A condition on a column (classq.h: inst_where_sql). */
static void inst_col_sql(void *arg, const char *col, const store_cond_t *c) {
  query_t *q = arg;
  if (c->op == STORE_IN || c->op == STORE_NIN) {
    buf_printf(&q->sql, "%s %sIN ", col, c->op == STORE_NIN ? "NOT " : "");
    sql_list(q, c->val);
  } else {
    buf_printf(&q->sql, "%s%s", col, CLASS_CMP_SQL[c->op]);
    if (c->is_time) sql_param(q, QP_INT, NULL, c->ms);
    else sql_value(q, c->val);
  }
}

/* Paths into the stored object are written as query.c writes them (query_path_segment:
 * as jansson wrote the keys); a segment SQLite's JSON functions cannot address makes the
 * condition false rather than reach another member. */
static void inst_path_sql(void *arg, const store_cond_t *c) {
  query_t *q = arg;
  buf_t path = BUF_INIT;
  buf_append_str(&path, "$");
  int addressable = 1; /* api allows only letters, digits and '_'; a backend does not rely on it */
  for (const char *s = c->field; *s && addressable;) {
    size_t n = strcspn(s, ".");
    addressable = query_path_segment(&path, s, n) == 0;
    s += n + (s[n] == '.');
  }
  if (!addressable) {
    buf_append_str(&q->sql, "0");
    buf_free(&path);
    return;
  }
  const char *p = buf_cstr(&path);
  switch (c->op) {
  case STORE_EXISTS:
    buf_append_str(&q->sql, "json_type(body, ");
    sql_param(q, QP_TEXT, p, 0);
    buf_append_str(&q->sql, json_is_true(c->val) ? ") IS NOT NULL" : ") IS NULL");
    break;
  case STORE_EQ:
  case STORE_NE: /* an array field equals a value it contains, as in LeanCloud */
  case STORE_IN:
  case STORE_NIN:
    buf_append_str(&q->sql, c->op == STORE_NE || c->op == STORE_NIN ? "NOT EXISTS" : "EXISTS");
    buf_append_str(&q->sql, " (SELECT 1 FROM json_each(body, ");
    sql_param(q, QP_TEXT, p, 0);
    buf_append_str(&q->sql, ") WHERE value ");
    if (c->op == STORE_IN || c->op == STORE_NIN) {
      buf_append_str(&q->sql, "IN ");
      sql_list(q, c->val);
    } else {
      buf_append_str(&q->sql, "= ");
      sql_value(q, c->val);
    }
    buf_append_str(&q->sql, ")");
    break;
  default:
    buf_append_str(&q->sql, "json_extract(body, ");
    sql_param(q, QP_TEXT, p, 0);
    buf_printf(&q->sql, ")%s", CLASS_CMP_SQL[c->op]);
    sql_value(q, c->val);
  }
  buf_free(&path);
}

/* The where of cq into q (every value a parameter). */
static void inst_sql(const store_class_q_t *cq, query_t *q) {
  static const char *const truth[2] = {"0", "1"};
  inst_where_sql(cq, &q->sql, truth, inst_col_sql, inst_path_sql, q);
}

int sq_installation_count(store_reader_t *r, const store_class_q_t *cq, int64_t *n) {
  query_t q;
  query_init(&q);
  inst_sql(cq, &q);
  int rc = sq_count(r, "installation", &q, n);
  query_free(&q);
  return rc;
}

int sq_installation_query(store_reader_t *r, const store_class_q_t *cq,
                          void (*cb)(void *arg, const installation_row_t *row), void *arg) {
  query_t q;
  query_init(&q);
  inst_sql(cq, &q);
  buf_t sql = BUF_INIT;
  inst_select_sql(cq, buf_cstr(&q.sql), &sql);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(store_reader_db(r), buf_cstr(&sql), -1, &st, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) {
    log_at(LOG_WARN, "installation query did not prepare: %s", sqlite3_errmsg(store_reader_db(r)));
    query_free(&q);
    return TERN_ESTORE;
  }
  sq_bind_query(st, &q);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    installation_row_t row = {
        (char *)sqlite3_column_text(st, 0), (char *)sqlite3_column_text(st, 1), (char *)sqlite3_column_text(st, 2),
        (char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),        sqlite3_column_int64(st, 5),
    };
    cb(arg, &row);
  }
  sqlite3_finalize(st);
  query_free(&q);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}
