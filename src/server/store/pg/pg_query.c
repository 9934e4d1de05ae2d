/* pg_query.c — queries of the PostgreSQL backend: the query threads (conversation queries
 * run there, never on a network loop, each within its deadline: statement_timeout is the
 * time left), and `_Installation` queries compiled to SQL over jsonb.
 *
 * NOT DONE (issue #14): the full conversation `where`. Its parsed, backend-neutral form is
 * being written (the AST branch) and its compiler to PostgreSQL comes with it. Until then
 * this backend runs only what the SDKs send by themselves — no where (the asker's
 * conversations), objectId equal or $in, m containing a client or $all / $in of a list,
 * sorted by lm, createdAt, updatedAt or objectId — with the meaning SQLite gives them
 * (query.c), and refuses anything else with TERN_ENOTSUP and a message that says so,
 * rather than answer with rows it cannot select correctly. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"
#include "timeutil.h"

#define QUERY_THREADS 2
#define QUERY_NICE 5

struct qpool {
  store_t *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  store_query_t *head, *tail;
  size_t queued;
  int closing, nthreads;
  pthread_t th[QUERY_THREADS];
  store_reader_t *inline_reader;
};

static void run_one(qpool_t *p, store_reader_t *r, store_query_t *q) {
  if (!r) q->result = TERN_ESTORE;
  else if (q->deadline_ns && mono_ns() >= q->deadline_ns) q->result = TERN_ETIMEDOUT;
  else q->result = pg_conv_query_until(r, &q->q, q->deadline_ns, q->cb, q->cb_arg);
  q->task.next = NULL;
  p->s->post(p->s->post_arg, q->worker, &q->task);
}

static void *query_main(void *arg) {
  qpool_t *p = arg;
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), QUERY_NICE) != 0)
    log_at(LOG_DEBUG, "query thread: setpriority failed");
  store_reader_t *r = pg_reader_new(p->s);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->closing) pthread_cond_wait(&p->cv, &p->mu);
    store_query_t *q = p->head;
    if (!q) break;
    p->head = q->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    run_one(p, r, q);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  pg_reader_free(r);
  return NULL;
}

qpool_t *pg_qpool_new(store_t *s, int threaded) {
  qpool_t *p = xcalloc(1, sizeof *p);
  p->s = s;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 0; threaded && i < QUERY_THREADS; i++) {
    if (pthread_create(&p->th[i], NULL, query_main, p) != 0) break;
    pthread_setname_np(p->th[i], "tern-query");
    p->nthreads++;
  }
  return p;
}

void pg_qpool_free(qpool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
  pg_reader_free(p->inline_reader);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int pg_query_submit(store_t *s, store_query_t *q) {
  qpool_t *p = s->qpool;
  q->next = NULL;
  if (!p->nthreads) {
    if (!p->inline_reader) p->inline_reader = pg_reader_new(p->s);
    run_one(p, p->inline_reader, q);
    return 0;
  }
  pthread_mutex_lock(&p->mu);
  if (p->queued >= STORE_QUERY_QUEUE_MAX || p->closing) {
    pthread_mutex_unlock(&p->mu);
    return TERN_EAGAIN;
  }
  if (p->tail) p->tail->next = q;
  else p->head = q;
  p->tail = q;
  p->queued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* A parameter: its text kept in owned (freed by the caller), "$n" written into sql. */
typedef struct {
  buf_t sql;
  pgargs_t a;
  char *owned[PGA_MAX];
  int nowned;
} pgq_t;

static void param_text(pgq_t *q, char *owned_text, const char *cast) {
  if (q->nowned < PGA_MAX) q->owned[q->nowned++] = owned_text;
  pga_txt(&q->a, owned_text);
  buf_printf(&q->sql, "$%d%s", q->a.n, cast);
}

static void pgq_free(pgq_t *q) {
  buf_free(&q->sql);
  for (int i = 0; i < q->nowned; i++) free(q->owned[i]);
}

static void param_json(pgq_t *q, json_t *v) { param_text(q, json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), "::jsonb"); }

/* ---- conversation queries, an interim subset (see the top) */

#define CONV_QUERY_NOT_DONE "not supported on a PostgreSQL store yet (issue #14): "

static int not_done(char *err, size_t errlen, const char *what) {
  if (err && errlen) snprintf(err, errlen, CONV_QUERY_NOT_DONE "%s", what);
  return TERN_ENOTSUP;
}

/* A JSON array of strings only, as a jsonb parameter; 0 or -1. */
static int string_list(pgq_t *q, json_t *v) {
  if (!json_is_array(v)) return -1;
  for (size_t i = 0; i < json_array_size(v); i++)
    if (!json_is_string(json_array_get(v, i))) return -1;
  param_json(q, v);
  return 0;
}

#define MEMBER_OF "EXISTS (SELECT 1 FROM member WHERE member.conv = c.id AND member.client = "

/* The where of cq as SQL into q: only what the SDKs send by themselves — the asker's
 * conversations (no where), objectId equal to or $in a list, m containing a client, $all
 * or $in of a list — with SQLite's meaning (query.c); anything else is TERN_ENOTSUP. */
static int conv_where(const store_conv_q_t *cq, pgq_t *q, char *err, size_t errlen) {
  buf_append_str(&q->sql, "(c.kind IN (1,2,3)");
  json_t *w = cq->where;
  if (!w || json_is_null(w) || (json_is_object(w) && json_object_size(w) == 0)) {
    buf_append_str(&q->sql, " AND " MEMBER_OF);
    param_text(q, xstrdup(cq->self ? cq->self : ""), "::text))");
    return 0;
  }
  if (!json_is_object(w)) return not_done(err, errlen, "a where that is not an object");
  const char *key;
  json_t *v;
  json_object_foreach(w, key, v) {
    int cid = strcmp(key, "objectId") == 0, m = strcmp(key, "m") == 0;
    if (!cid && !m) return not_done(err, errlen, "conditions on fields other than objectId and m");
    const char *op = "$eq";
    json_t *arg = v;
    if (json_is_object(v)) {
      if (json_object_size(v) != 1) return not_done(err, errlen, "several operators on one field");
      op = json_object_iter_key(json_object_iter(v));
      arg = json_object_iter_value(json_object_iter(v));
    }
    buf_append_str(&q->sql, " AND ");
    if (strcmp(op, "$eq") == 0 && json_is_string(arg)) {
      buf_append_str(&q->sql, cid ? "c.cid = " : MEMBER_OF);
      param_text(q, xstrdup(json_string_value(arg)), cid ? "::text" : "::text)");
    } else if (strcmp(op, "$in") == 0) {
      buf_append_str(&q->sql,
                     cid ? "c.cid IN (SELECT jsonb_array_elements_text("
                         : "EXISTS (SELECT 1 FROM member WHERE member.conv = c.id AND member.client IN (SELECT "
                           "jsonb_array_elements_text(");
      if (string_list(q, arg) < 0) return not_done(err, errlen, "$in with values that are not strings");
      buf_append_str(&q->sql, cid ? "))" : ")))");
    } else if (m && strcmp(op, "$all") == 0) { /* every listed client is a member; none listed: no match */
      buf_append_str(&q->sql, json_array_size(arg) ? "" : "false AND ");
      buf_append_str(&q->sql, "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(");
      if (string_list(q, arg) < 0) return not_done(err, errlen, "$all with values that are not strings");
      buf_append_str(&q->sql, ") o(v) WHERE NOT " MEMBER_OF "o.v))");
    } else {
      return not_done(err, errlen, "this operator");
    }
  }
  buf_append_str(&q->sql, ")");
  return 0;
}

/* The ORDER BY of a sort: lm, createdAt, updatedAt, objectId ('-': descending), then the
 * id; NULL lm sort as on SQLite (low). Sorting by attributes is not done here yet. */
static int conv_sort(const char *sort, buf_t *out, char *err, size_t errlen) {
  if (!sort || !sort[strspn(sort, " \t")]) {
    buf_append_str(out, "c.qlm DESC NULLS LAST, c.updated_at DESC, c.id DESC");
    return 0;
  }
  static const char *const keys[4] = {"lm", "createdAt", "updatedAt", "objectId"};
  static const char *const cols[4] = {"c.qlm", "c.created_at", "c.updated_at", "c.cid"};
  for (const char *p = sort;;) {
    size_t n = strcspn(p, ",");
    const char *f = p;
    size_t len = n;
    while (len && (*f == ' ' || *f == '\t')) f++, len--;
    while (len && (f[len - 1] == ' ' || f[len - 1] == '\t')) len--;
    int desc = len && *f == '-';
    f += desc;
    len -= (size_t)desc;
    size_t k = 0;
    while (k < 4 && !(strlen(keys[k]) == len && strncmp(keys[k], f, len) == 0)) k++;
    if (k == 4) {
      if (len == 1 && *f == 'm') {
        snprintf(err, errlen, "cannot sort by m");
        return TERN_EINVAL;
      }
      return not_done(err, errlen, "sorting by attributes");
    }
    buf_printf(out, "%s %s%s, ", cols[k], desc ? "DESC" : "ASC", k == 0 ? (desc ? " NULLS LAST" : " NULLS FIRST") : "");
    p += n;
    if (!*p) break;
    p++;
  }
  buf_append_str(out, "c.id DESC");
  return 0;
}

static int conv_compile(const store_conv_q_t *cq, pgq_t *q, buf_t *order, char *err, size_t errlen) {
  int rc = conv_where(cq, q, err, errlen);
  if (rc == 0) rc = conv_sort(cq->sort, order, err, errlen);
  buf_cstr(&q->sql);
  return rc;
}

int pg_conv_query_check(store_t *s, const store_conv_q_t *cq, char *err, size_t errlen) {
  (void)s;
  pgq_t q = {0};
  buf_t order = BUF_INIT;
  int rc = conv_compile(cq, &q, &order, err, errlen);
  pgq_free(&q);
  buf_free(&order);
  return rc;
}

#define CONV_COLS "c.id, c.cid, c.kind, c.created_at, c.updated_at, c.qlm, c.doc, c.expire_at"
#define LM_SQL "coalesce((SELECT ts FROM msg WHERE msg.conv = c.id ORDER BY ts DESC, seq DESC LIMIT 1), c.lm)"

/* Within the deadline: statement_timeout is the time left, for this statement only (the
 * reader's own timeout again after); a statement it cancels is TERN_ETIMEDOUT. */
int pg_conv_query_until(store_reader_t *r, const store_conv_q_t *cq, uint64_t deadline_ns, conv_view_cb cb, void *arg) {
  pgq_t q = {0};
  buf_t order = BUF_INIT;
  char err[200];
  int rc = conv_compile(cq, &q, &order, err, sizeof err);
  if (rc < 0) {
    pgq_free(&q);
    buf_free(&order);
    return rc;
  }
  buf_t sql = BUF_INIT;
  buf_printf(&sql,
             "SELECT " CONV_COLS " FROM (SELECT c.*, " LM_SQL
             " AS qlm FROM conv c WHERE %s) c ORDER BY %s LIMIT %d OFFSET %d",
             buf_cstr(&q.sql), buf_cstr(&order), cq->limit, cq->skip);
  buf_free(&order);
  int timed = 0;
  if (deadline_ns) {
    uint64_t now = mono_ns();
    int ms = deadline_ns > now ? (int)((deadline_ns - now) / 1000000) : 0;
    if (ms < 1) ms = 1;
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %d", ms);
    timed = pgc_cmd(&r->c, set) == 0;
    if (!timed) rc = TERN_ESTORE;
  }
  PGresult *res = NULL;
  if (rc == 0 && pgc_sql(&r->c, buf_cstr(&sql), &q.a, &res) < 0)
    rc = strcmp(r->c.sqlstate, "57014") == 0 ? TERN_ETIMEDOUT : TERN_ESTORE;
  if (rc == 0) rc = pg_conv_rows(r, res, cq->flags, cb, arg);
  PQclear(res);
  if (timed) {
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %d", r->c.stmt_timeout_ms);
    pgc_cmd(&r->c, set);
  }
  if (rc == 0 && deadline_ns && mono_ns() > deadline_ns) rc = TERN_ETIMEDOUT; /* the rows' reads ran past it */
  buf_free(&sql);
  pgq_free(&q);
  return rc;
}

int pg_conv_count(store_reader_t *r, const store_conv_q_t *cq, int64_t *n) {
  pgq_t q = {0};
  buf_t order = BUF_INIT;
  char err[200];
  int rc = conv_compile(cq, &q, &order, err, sizeof err);
  buf_free(&order);
  if (rc == 0) {
    buf_t sql = BUF_INIT;
    buf_printf(&sql, "SELECT count(*) FROM conv c WHERE %s", buf_cstr(&q.sql));
    PGresult *res;
    rc = pgc_sql(&r->c, buf_cstr(&sql), &q.a, &res) < 0 ? TERN_ESTORE : 0;
    if (rc == 0) {
      *n = pg_i64(res, 0, 0);
      PQclear(res);
    }
    buf_free(&sql);
  }
  pgq_free(&q);
  return rc;
}

/* ---- installations: an AND of simple conditions (store_class_q_t) over jsonb */

static const char *const cmp_sql[] = {[STORE_EQ] = " = ",   [STORE_NE] = " <> ", [STORE_LT] = " < ",
                                      [STORE_LTE] = " <= ", [STORE_GT] = " > ",  [STORE_GTE] = " >= "};

static const char *inst_column(const char *f) {
  if (strcmp(f, "objectId") == 0) return "id";
  if (strcmp(f, "createdAt") == 0) return "created_at";
  if (strcmp(f, "updatedAt") == 0) return "updated_at";
  if (strcmp(f, "deviceType") == 0) return "device_type";
  return NULL;
}

/* The compiled where of cq into q (every value a parameter). Fields that are not columns
 * are paths into the stored object (body::jsonb #> path). As on SQLite (store_class.c): an
 * array field equals a value it contains; a key with both '"' and '[' matches nothing (the
 * api never sends one; SQLite cannot address it and the backends answer alike). */
static void inst_where(const store_class_q_t *cq, pgq_t *q) {
  buf_append_str(&q->sql, "true");
  for (size_t i = 0; i < cq->n; i++) {
    const store_cond_t *c = &cq->conds[i];
    const char *col = inst_column(c->field);
    buf_append_str(&q->sql, " AND ");
    if (col) {
      if (c->op == STORE_EXISTS) {
        buf_append_str(&q->sql, json_is_true(c->val) ? "true" : "false");
      } else if (c->op == STORE_IN || c->op == STORE_NIN) {
        buf_printf(&q->sql, "%sto_jsonb(%s) IN (SELECT jsonb_array_elements(", c->op == STORE_NIN ? "NOT " : "", col);
        param_json(q, c->val);
        buf_append_str(&q->sql, "))");
      } else if (c->is_time) {
        buf_printf(&q->sql, "%s%s", col, cmp_sql[c->op]);
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)c->ms);
        param_text(q, xstrdup(num), "::bigint");
      } else if (json_is_string(c->val) && !strstr(col, "_at")) {
        buf_printf(&q->sql, "%s%s", col, cmp_sql[c->op]);
        param_text(q, xstrdup(json_string_value(c->val)), "::text");
      } else {
        buf_printf(&q->sql, "to_jsonb(%s)%s", col, cmp_sql[c->op]);
        param_json(q, c->val);
      }
      continue;
    }
    if (strchr(c->field, '"') && strchr(c->field, '[')) {
      buf_append_str(&q->sql, "false");
      continue;
    }
    json_t *path = json_array();
    for (const char *s = c->field; *s;) {
      size_t n = strcspn(s, ".");
      json_array_append_new(path, json_stringn(s, n));
      s += n + (s[n] == '.');
    }
    /* the path as a text[] built from a jsonb array: no quoting of the keys by hand */
    buf_t x = BUF_INIT;
    buf_append_str(&x, "(body::jsonb #> ARRAY(SELECT jsonb_array_elements_text(");
    {
      buf_t save = q->sql;
      q->sql = x;
      param_json(q, path);
      x = q->sql;
      q->sql = save;
    }
    buf_append_str(&x, ")))");
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
        buf_printf(&q->sql, "(jsonb_typeof(%s) = 'string' AND (%s #>> '{}') COLLATE \"C\"%s", v, v, cmp_sql[c->op]);
        param_text(q, xstrdup(json_string_value(c->val)), "::text)");
      } else {
        buf_printf(&q->sql, "(jsonb_typeof(%s) = 'number' AND (%s)::numeric%s", v, v, cmp_sql[c->op]);
        param_json(q, c->val);
        buf_append_str(&q->sql, "::numeric)");
      }
    }
    buf_free(&x);
  }
  buf_cstr(&q->sql);
}

static void inst_order(const char *order, buf_t *out) {
  static const char *const keys[3] = {"objectId", "createdAt", "updatedAt"};
  static const char *const cols[3] = {"id", "created_at", "updated_at"};
  const char *s = order && *order ? order : "createdAt";
  while (*s) {
    size_t n = strcspn(s, ",");
    int desc = *s == '-';
    size_t k = 0;
    while (k < 3 && !(strlen(keys[k]) == n - (size_t)desc && strncmp(keys[k], s + desc, n - (size_t)desc) == 0)) k++;
    if (k < 3) buf_printf(out, "%s %s, ", cols[k], desc ? "DESC" : "ASC");
    s += n + (s[n] == ',');
  }
  buf_append_str(out, "id ASC");
}

int pg_installation_count(store_reader_t *r, const store_class_q_t *cq, int64_t *n) {
  pgq_t q = {0};
  inst_where(cq, &q);
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT count(*) FROM installation WHERE %s", buf_cstr(&q.sql));
  PGresult *res;
  int rc = pgc_sql(&r->c, buf_cstr(&sql), &q.a, &res);
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
  buf_printf(&sql, "SELECT id, device_type, token, body, created_at, updated_at FROM installation WHERE %s ORDER BY ",
             buf_cstr(&q.sql));
  inst_order(cq->order, &sql);
  buf_printf(&sql, " LIMIT %d OFFSET %d", cq->limit, cq->skip);
  PGresult *res;
  int rc = pgc_sql(&r->c, buf_cstr(&sql), &q.a, &res);
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
