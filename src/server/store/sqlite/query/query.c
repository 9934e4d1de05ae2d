/* query.c — compile a parsed conversation query (convq.h) into SQLite SQL.
 *
 * The parser (store/convq.c) has checked everything the query language asks; this file only
 * says it in SQL, and refuses what SQLite itself cannot take (bound parameters, its parser's
 * stack, a key its JSON paths cannot address).
 *
 * The output is one boolean expression over `conv c`. Keys with their own storage (objectId, the
 * three times, members) become column tests and `member` subqueries; every other key is a path
 * into the JSON `doc`. User text never becomes SQL text: each `?` is written by the same call
 * that appends its parameter, so text order and parameter order cannot drift apart.
 *
 * A doc field is tested through a row set K = {the value itself} ∪ {its elements, if it is an
 * array}; one SQL shape then gives every operator the MongoDB/LeanCloud rule "an array matches if
 * any element does". Operand lists are bound as one JSON array walked with json_each, so a
 * 999-id $in costs one parameter, and equality is type-exact because it compares json_each types
 * (true is never 1). Dates compare by canonical ISO text. Whatever can sit under NOT ($ne, $nin)
 * yields 0/1, never NULL, so a missing field matches the negative operators.
 *
 * SQLite 3.40 parses with a fixed 100-entry stack, so nesting is planned, not just emitted: AND
 * chains carry no parentheses (AND binds tighter than OR), the costliest item of every chain goes
 * first (it then parses on a shallow stack), and a query whose estimated need still exceeds the
 * budget is refused rather than handed to SQLite to fail at prepare time. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "query.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "timeutil.h"

/* Parser stack entries (see need_obj): `SELECT … FROM conv c WHERE` then 92 nested parentheses
 * is the most SQLite 3.40 accepts; NEED_LEAF is the most any single condition below uses. */
#define STACK_BUDGET 90
#define NEED_LEAF 32

typedef struct {
  query_t *q;
  buf_t *out; /* where SQL text goes: q->sql, or a scratch buffer for ORDER BY */
  char *err;
  size_t errlen;
  int uses_doc; /* some condition reads the document */
  int rc;       /* first error; once set, binds do nothing and emitters stop at their next check */
} ctx_t;

static const char *const cmp_sql[] = {
    [CONVQ_LT] = " < ", [CONVQ_LTE] = " <= ", [CONVQ_GT] = " > ", [CONVQ_GTE] = " >= "};

/* Fixed SQL. `k` is a row of K (t = json type, v = value), `o` an operand from json_each over the
 * bound list. CASE guards calls that are only valid for some types: SQLite promises CASE is lazy. */
#define SQL_EQ_KO                                                                                                      \
  "CASE o.type WHEN 'text' THEN k.t IS 'text' AND k.v = o.value"                                                       \
  " WHEN 'integer' THEN k.t IN ('integer','real') AND k.v = o.value"                                                   \
  " WHEN 'real' THEN k.t IN ('integer','real') AND k.v = o.value"                                                      \
  " WHEN 'object' THEN CASE WHEN k.t IS NOT 'object' THEN 0"                                                           \
  " WHEN json_extract(o.value, '$.__type') IS 'Date' THEN json_extract(k.v, '$.__type') IS 'Date'"                     \
  " AND json_extract(k.v, '$.iso') IS json_extract(o.value, '$.iso') ELSE k.v = o.value END"                           \
  " WHEN 'array' THEN k.t IS 'array' AND k.v = o.value ELSE k.t IS o.type END"
/* The document as JSON1 may read it. SQLite refuses a document nested deeper than ~1,000
 * levels with an error that fails the whole statement, so one such row (stored by an older
 * build; JSON_MAX_DEPTH keeps new ones out) made every query on a document field fail for
 * everyone. Guarded, it reads as NULL — no field — and query_where skips the row. CASE is
 * lazy, so the JSON functions never see it; json_valid is served by SQLite's parse cache. */
#define DOC_SQL "(CASE WHEN json_valid(c.doc) THEN c.doc END)"
#define SQL_MEMBER_OF "EXISTS (SELECT 1 FROM member WHERE conv = c.id AND "
#define SQL_LIST "(SELECT value FROM json_each("

static int fail(ctx_t *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx_t *cx, const char *fmt, ...) {
  if (!cx->rc && cx->err && cx->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->err, cx->errlen, fmt, ap);
    va_end(ap);
  }
  if (!cx->rc) cx->rc = TERN_EINVAL;
  return cx->rc;
}

/* The emitters' output calls all return cx->rc, so an emitter can end with `return put(…)`. */
static int put(ctx_t *cx, const char *s) {
  buf_append_str(cx->out, s);
  return cx->rc;
}

static int putf(ctx_t *cx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int putf(ctx_t *cx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  buf_reserve(cx->out, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf((char *)cx->out->data + cx->out->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  cx->out->len += (size_t)n;
  return cx->rc;
}
/* Appends "?" and its parameter, or records the error when the query is full. */
static query_param_t *param_push(ctx_t *cx, query_param_type_t type) {
  query_t *q = cx->q;
  if (cx->rc) return NULL;
  if (q->nparams >= QUERY_MAX_PARAMS) return fail(cx, "query needs more than %d parameters", QUERY_MAX_PARAMS), NULL;
  put(cx, "?");
  return query_param_add(q, type);
}

static int bind_text(ctx_t *cx, const char *s) {
  query_param_t *p = param_push(cx, QP_TEXT);
  if (p) p->s = xstrdup(s);
  return cx->rc;
}

static int bind_int(ctx_t *cx, int64_t i) {
  query_param_t *p = param_push(cx, QP_INT);
  if (p) p->i = i;
  return cx->rc;
}

static int bind_number(ctx_t *cx, const convq_val_t *v) {
  if (v->type == CONVQ_V_INT) return bind_int(cx, v->i);
  query_param_t *p = param_push(cx, QP_REAL);
  if (p) p->d = v->d;
  return cx->rc;
}

/* Appends one key segment in SQLite JSON-path form. SQLite 3.40 compares path labels with the
 * stored key's raw JSON text, so the segment is written JSON-escaped exactly as jansson writes
 * keys. A quoted label ends at the first '"', so segments containing '"' go unquoted (fine, as
 * they cannot contain '.'), which only fails if they also contain '[' — that we refuse. */
int query_path_segment(buf_t *b, const char *seg, size_t n) {
  static const char from[] = "\"\\\b\f\n\r\t", to[] = "\"\\bfnrt";
  int quote = memchr(seg, '"', n) != NULL;
  if (quote && memchr(seg, '[', n)) return TERN_EINVAL;
  buf_append_str(b, quote ? "." : ".\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)seg[i];
    const char *hit = ch ? strchr(from, ch) : NULL;
    if (hit) buf_printf(b, "\\%c", to[hit - from]);
    else if (ch < 0x20) buf_printf(b, "\\u%04X", ch);
    else buf_append(b, &seg[i], 1);
  }
  if (!quote) buf_append_str(b, "\"");
  return 0;
}

int query_path(buf_t *b, const char *const *segs, size_t n) {
  buf_append_str(b, "$");
  for (size_t i = 0; i < n; i++)
    if (query_path_segment(b, segs[i], strlen(segs[i])) < 0) return TERN_EINVAL;
  return 0;
}

/* The SQLite JSON path of a document field, malloc'd, or NULL with the error recorded. */
static char *doc_path(ctx_t *cx, const convq_field_t *f) {
  buf_t b = BUF_INIT;
  char *path = NULL;
  if (query_path(&b, (const char *const *)f->segs, f->nsegs) < 0) fail(cx, "key \"%.64s\" mixes '\"' and '['", f->name);
  else path = xstrdup(buf_cstr(&b));
  buf_free(&b);
  return path;
}

static const char *column_of(const convq_field_t *f) {
  switch (f->kind) {
  case CONVQ_F_OBJECT_ID: return "c.cid";
  case CONVQ_F_CREATED_AT: return "c.created_at";
  case CONVQ_F_UPDATED_AT: return "c.updated_at";
  case CONVQ_F_LM: return QUERY_LM_SQL;
  default: return NULL;
  }
}

/* Binds v (or v's elements) as one JSON array. Doc operands keep Dates in canonical ISO form
 * (what SQL_EQ_KO compares); time columns get ms or null; objectId/m keep strings only and
 * return 1 when something else was dropped (it could never match). */
static int bind_list(ctx_t *cx, const convq_field_t *f, const convq_val_t *v, int elements) {
  json_t *arr = json_array();
  size_t n = elements ? v->n : 1;
  int foreign = 0;
  for (size_t i = 0; i < n; i++) {
    const convq_val_t *e = elements ? &v->items[i] : v;
    if (f->kind == CONVQ_F_PATH) json_array_append_new(arr, convq_val_json(e));
    else if (column_of(f) && f->kind != CONVQ_F_OBJECT_ID) /* a time: Date (ms) or null */
      json_array_append_new(arr, e->type == CONVQ_V_DATE ? json_integer(e->i) : json_null());
    else if (convq_val_plain_string(e)) json_array_append_new(arr, json_string(e->s));
    else foreign = 1;
  }
  char *text = json_dumps(arr, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(arr);
  if (!text) fail(cx, "%s: operand cannot be encoded as JSON", f->name);
  else bind_text(cx, text);
  free(text);
  return foreign;
}

static int bind_regex(ctx_t *cx, const convq_node_t *n) {
  bind_text(cx, n->val.s);
  put(cx, ", ");
  return bind_text(cx, n->regex_options ? n->regex_options : "");
}

/* ---- regexp(): PCRE2 with a small per-thread cache of compiled patterns ----------------------
 * SQLite calls regexp() once per candidate row with the same pattern, so compiling once per
 * (thread, pattern, options) matters; a thread-local cache needs no locks. The pthread key exists
 * only so the cache is freed when a store thread exits. */
#define RX_SLOTS 16
#define RX_MAX_PATTERN 16384
/* Limits of one match, set in the match context: a pattern's own (*LIMIT_MATCH=…),
 * (*LIMIT_DEPTH=…), (*LIMIT_HEAP=…) can lower them, never raise them. 1,000,000 steps take
 * about 10 ms; the whole query's budget is its deadline (query_budget_begin), checked before
 * every match and every 1,000 SQLite steps, so no query runs much past it however many rows
 * it matches. */
#define RX_MATCH_LIMIT 1000000
#define RX_DEPTH_LIMIT 10000
#define RX_HEAP_LIMIT 8192 /* KiB */

typedef struct {
  char *pattern;
  uint32_t flags;
  pcre2_code *code;
  pcre2_match_data *md;
} rx_slot_t;

typedef struct {
  rx_slot_t slot[RX_SLOTS];
  unsigned next;
  pcre2_match_context *mctx;
} rx_cache_t;

static pthread_once_t rx_once = PTHREAD_ONCE_INIT;
static pthread_key_t rx_key;
static _Thread_local rx_cache_t *rx_tls;

static void rx_slot_clear(rx_slot_t *s) {
  pcre2_match_data_free(s->md);
  pcre2_code_free(s->code);
  free(s->pattern);
  memset(s, 0, sizeof *s);
}

static void rx_cache_free(void *p) {
  rx_cache_t *c = p;
  for (int i = 0; i < RX_SLOTS; i++) rx_slot_clear(&c->slot[i]);
  pcre2_match_context_free(c->mctx);
  free(c);
  rx_tls = NULL;
}

static void rx_key_create(void) { pthread_key_create(&rx_key, rx_cache_free); }

static rx_cache_t *rx_cache(void) {
  if (rx_tls) return rx_tls;
  pthread_once(&rx_once, rx_key_create);
  rx_cache_t *c = xcalloc(1, sizeof *c);
  c->mctx = pcre2_match_context_create(NULL);
  if (!c->mctx) {
    free(c);
    return NULL;
  }
  pcre2_set_match_limit(c->mctx, RX_MATCH_LIMIT);
  pcre2_set_depth_limit(c->mctx, RX_DEPTH_LIMIT);
  pcre2_set_heap_limit(c->mctx, RX_HEAP_LIMIT);
  pthread_setspecific(rx_key, c);
  return rx_tls = c;
}

static int rx_flags(const char *options, uint32_t *flags) {
  static const char letters[] = "imxs";
  static const uint32_t bits[] = {PCRE2_CASELESS, PCRE2_MULTILINE, PCRE2_EXTENDED, PCRE2_DOTALL};
  *flags = 0;
  for (const char *p = options ? options : ""; *p; p++) {
    const char *at = strchr(letters, *p);
    if (!at) return TERN_EINVAL;
    *flags |= bits[at - letters];
  }
  return 0;
}

/* Finds or compiles (pattern, options) in this thread's cache; msg gets PCRE2's reason on error. */
static int rx_get(const char *pattern, const char *options, rx_slot_t **out, char *msg, size_t msglen) {
  uint32_t flags;
  int errcode;
  PCRE2_SIZE erroff;
  if (msglen) msg[0] = 0;
  if (rx_flags(options, &flags) != 0) return snprintf(msg, msglen, "$options must be made of i, m, x, s"), TERN_EINVAL;
  if (strlen(pattern) > RX_MAX_PATTERN) return snprintf(msg, msglen, "pattern too long"), TERN_EINVAL;
  rx_cache_t *c = rx_cache();
  if (!c) return TERN_ENOMEM;
  for (int i = 0; i < RX_SLOTS; i++) {
    if (c->slot[i].code && c->slot[i].flags == flags && strcmp(c->slot[i].pattern, pattern) == 0) {
      *out = &c->slot[i];
      return 0;
    }
  }
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   flags | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
  if (!code) {
    PCRE2_UCHAR text[120];
    pcre2_get_error_message(errcode, text, sizeof text);
    snprintf(msg, msglen, "%s at offset %zu", (const char *)text, (size_t)erroff);
    return TERN_EINVAL;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
  if (!md) {
    pcre2_code_free(code);
    return TERN_ENOMEM;
  }
  rx_slot_t *s = &c->slot[c->next];
  c->next = (c->next + 1) % RX_SLOTS;
  rx_slot_clear(s);
  *s = (rx_slot_t){xstrdup(pattern), flags, code, md};
  *out = s;
  return 0;
}

/* The budget of the query running on this thread (query.h). */
static _Thread_local struct {
  uint64_t deadline_ns;
  int failure;
} budget;

void query_budget_begin(uint64_t deadline_ns) {
  budget.deadline_ns = deadline_ns;
  budget.failure = 0;
}

void query_budget_end(void) {
  budget.deadline_ns = 0;
  budget.failure = 0;
}

int query_budget_expired(void) {
  if (!budget.deadline_ns || mono_ns() < budget.deadline_ns) return 0;
  budget.failure = TERN_ETIMEDOUT;
  return 1;
}

int query_budget_failure(void) { return budget.failure; }

int query_regex_match(const char *pattern, const char *options, const char *subject, size_t subject_len) {
  rx_slot_t *s;
  char msg[8];
  if (!pattern) return TERN_EINVAL;
  if (query_budget_expired()) return TERN_ETIMEDOUT;
  int rc = rx_get(pattern, options, &s, msg, sizeof msg);
  if (rc) return rc;
  rc = pcre2_match(s->code, (PCRE2_SPTR)(subject ? subject : ""), subject ? subject_len : 0, 0, 0, s->md, rx_tls->mctx);
  if (rc >= 0) return 1;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT) {
    if (!budget.failure) budget.failure = TERN_E2BIG;
    return TERN_E2BIG;
  }
  if (rc == PCRE2_ERROR_NOMEMORY) return TERN_ENOMEM;
  return 0;
}

/* objectId (text, never NULL) and the ms columns (lm is NULL without messages). */
static int emit_column(ctx_t *cx, const convq_node_t *n) {
  const convq_field_t *f = &n->field;
  const convq_val_t *v = &n->val;
  const char *col = column_of(f);
  convq_op_t op = n->op;
  int cid = f->kind == CONVQ_F_OBJECT_ID, foreign;
  int has = cid ? convq_val_plain_string(v) : v->type == CONVQ_V_DATE; /* times: a Date or null */
  switch (op) {
  case CONVQ_EQ:
  case CONVQ_NE:
    if (cid && !has) return put(cx, op == CONVQ_EQ ? "0" : "1");
    putf(cx, "%s IS %s", col, op == CONVQ_EQ ? "" : "NOT ");
    if (!has) return put(cx, "NULL");
    return cid ? bind_text(cx, v->s) : bind_int(cx, v->i);
  case CONVQ_IN:
  case CONVQ_NIN: /* IN (subquery) lets SQLite probe the cid index; IS also matches a NULL lm with null */
    put(cx, op == CONVQ_NIN ? "NOT " : "");
    put(cx, cid ? "c.cid IN " SQL_LIST : "EXISTS (SELECT 1 FROM json_each(");
    bind_list(cx, f, v, 1);
    if (cid) return put(cx, "))");
    return putf(cx, ") WHERE value IS %s)", col);
  case CONVQ_ALL: /* a scalar "contains all" only if every element is that one value */
    if (v->n == 0) return put(cx, "0");
    put(cx, "NOT EXISTS (SELECT 1 FROM json_each(");
    foreign = bind_list(cx, f, v, 1);
    return putf(cx, ") WHERE value IS NOT %s)%s", col, foreign ? " AND 0" : "");
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE: /* never negated, so a NULL lm may stay NULL (= no match) */
    if (cid && !has) return put(cx, "0");
    putf(cx, "%s%s", col, cmp_sql[op]);
    return cid ? bind_text(cx, v->s) : bind_int(cx, v->i);
  case CONVQ_REGEX:
    if (!cid) return put(cx, "0"); /* times are not text */
    put(cx, "regexp(");
    bind_regex(cx, n);
    return put(cx, ", c.cid)");
  case CONVQ_EXISTS: return putf(cx, "%s IS %sNULL", col, v->b ? "NOT " : "");
  case CONVQ_SIZE: return put(cx, "0");
  }
  return cx->rc;
}

/* m lives in the member table (one row per conversation and client); member_count mirrors it. */
static int emit_members(ctx_t *cx, const convq_node_t *n) {
  const convq_field_t *f = &n->field;
  const convq_val_t *v = &n->val;
  convq_op_t op = n->op;
  int foreign;
  if (op == CONVQ_NE || op == CONVQ_NIN) put(cx, "NOT ");
  switch (op) {
  case CONVQ_EQ:
  case CONVQ_NE:
    if (v->type == CONVQ_V_ARRAY) { /* equality with an array: the member set is exactly that set */
      put(cx, "(c.member_count = (SELECT count(DISTINCT value) FROM json_each(");
      bind_list(cx, f, v, 1);
      put(cx, ")) AND NOT EXISTS (SELECT 1 FROM member WHERE conv = c.id AND client NOT IN " SQL_LIST);
      return put(cx, bind_list(cx, f, v, 1) ? "))) AND 0)" : "))))");
    }
    if (!convq_val_plain_string(v)) return put(cx, "0");
    put(cx, SQL_MEMBER_OF "client = ");
    bind_text(cx, v->s);
    return put(cx, ")");
  case CONVQ_IN:
  case CONVQ_NIN:
    put(cx, SQL_MEMBER_OF "client IN " SQL_LIST);
    bind_list(cx, f, v, 1);
    return put(cx, ")))");
  case CONVQ_ALL:
    if (v->n == 0) return put(cx, "0");
    put(cx, "NOT EXISTS (SELECT 1 FROM json_each(");
    foreign = bind_list(cx, f, v, 1);
    put(cx, ") o WHERE NOT " SQL_MEMBER_OF "client = o.value))");
    return put(cx, foreign ? " AND 0" : "");
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE:
    if (!convq_val_plain_string(v)) return put(cx, "0");
    putf(cx, SQL_MEMBER_OF "client%s", cmp_sql[op]);
    bind_text(cx, v->s);
    return put(cx, ")");
  case CONVQ_REGEX:
    put(cx, SQL_MEMBER_OF "regexp(");
    bind_regex(cx, n);
    return put(cx, ", client))");
  case CONVQ_EXISTS: return put(cx, v->b ? "c.member_count > 0" : "c.member_count = 0");
  case CONVQ_SIZE: put(cx, "c.member_count = "); return bind_int(cx, v->i);
  }
  return cx->rc;
}

/* The row set K of a doc field: the value itself, plus its elements when it is an array. */
static int emit_k(ctx_t *cx, const char *path) {
  static const char *const parts[] = {"(SELECT json_type(" DOC_SQL ", ", ") AS t, json_extract(" DOC_SQL ", ",
                                      ") AS v UNION ALL SELECT type, value FROM json_each(" DOC_SQL ", "};
  for (int i = 0; i < 3; i++) {
    put(cx, parts[i]);
    bind_text(cx, path);
  }
  return put(cx, ") WHERE typeof(key) = 'integer') k");
}

static int emit_doc_at(ctx_t *cx, const convq_node_t *n, const char *path) {
  const convq_field_t *f = &n->field;
  const convq_val_t *v = &n->val;
  convq_op_t op = n->op;
  char iso[ISO_LEN + 1];
  switch (op) {
  case CONVQ_NE:
  case CONVQ_NIN: put(cx, "NOT "); /* fall through */
  case CONVQ_EQ:
  case CONVQ_IN:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, path);
    put(cx, ", json_each(");
    bind_list(cx, f, v, op == CONVQ_IN || op == CONVQ_NIN);
    return put(cx, ") o WHERE " SQL_EQ_KO ")");
  case CONVQ_ALL: /* every operand index o.key is matched by some row of K */
    if (v->n == 0) return put(cx, "0");
    put(cx, "(SELECT count(DISTINCT o.key) FROM ");
    emit_k(cx, path);
    put(cx, ", json_each(");
    bind_list(cx, f, v, 1);
    return putf(cx, ") o WHERE " SQL_EQ_KO ") = %zu", v->n);
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE: /* numbers with numbers, strings with strings, Dates with Dates */
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, path);
    if (v->type == CONVQ_V_INT || v->type == CONVQ_V_REAL) {
      putf(cx, " WHERE k.t IN ('integer','real') AND k.v%s", cmp_sql[op]);
      bind_number(cx, v);
    } else if (v->type == CONVQ_V_STRING) {
      putf(cx, " WHERE k.t IS 'text' AND k.v%s", cmp_sql[op]);
      bind_text(cx, v->s);
    } else { /* a Date (the parser made sure) */
      iso_format(v->i, iso);
      buf_printf(cx->out,
                 " WHERE CASE WHEN k.t IS 'object' THEN json_extract(k.v, '$.__type') IS 'Date'"
                 " AND json_type(k.v, '$.iso') IS 'text' AND json_extract(k.v, '$.iso')%s",
                 cmp_sql[op]);
      bind_text(cx, iso);
      put(cx, " ELSE 0 END");
    }
    return put(cx, ")");
  case CONVQ_REGEX:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, path);
    put(cx, " WHERE CASE WHEN k.t IS 'text' THEN regexp(");
    bind_regex(cx, n);
    return put(cx, ", k.v) ELSE 0 END)");
  case CONVQ_EXISTS:
    put(cx, "json_type(" DOC_SQL ", ");
    bind_text(cx, path);
    return put(cx, v->b ? ") IS NOT NULL" : ") IS NULL");
  case CONVQ_SIZE: /* json_array_length is 0 for scalars, hence the type test */
    put(cx, "(json_type(" DOC_SQL ", ");
    bind_text(cx, path);
    put(cx, ") IS 'array' AND json_array_length(" DOC_SQL ", ");
    bind_text(cx, path);
    put(cx, ") = ");
    bind_int(cx, v->i);
    return put(cx, ")");
  }
  return cx->rc;
}

static int emit_leaf(ctx_t *cx, const convq_node_t *n) {
  if (cx->rc) return cx->rc;
  if (n->field.kind == CONVQ_F_MEMBERS) return emit_members(cx, n);
  if (n->field.kind != CONVQ_F_PATH) return emit_column(cx, n);
  cx->uses_doc = 1;
  char *path = doc_path(cx, &n->field);
  if (path) emit_doc_at(cx, n, path);
  free(path);
  return cx->rc;
}

/* ---- nesting plan ----------------------------------------------------------------------------
 * need = parser stack entries a construct holds at its deepest point. A chain "a AND b AND c"
 * parses its first item on the current stack and every later one on top of "expr AND" (+2:
 * SQLite reduces left-associative chains as it goes), so the costliest item goes first. An
 * $or/$and list adds its parenthesis (+1). Leaves cost NEED_LEAF (measured worst case + margin);
 * a field's operator group is a chain of leaves (+2). */
static int need_obj(const convq_node_t *w);

static int chain_need(int top1, int top2) { return top2 < 0 || top1 >= top2 + 2 ? top1 : top2 + 2; }
static void rank(int need, int *top1, int *top2) {
  if (need > *top1) *top2 = *top1, *top1 = need;
  else if (need > *top2) *top2 = need;
}

/* An item of a where object: a leaf, a field's operator group, or an $and/$or list. */
static int need_item(const convq_node_t *it) {
  int top1 = 1, top2 = -1;
  if (it->kind == CONVQ_LEAF) return NEED_LEAF;
  if (!it->list) return NEED_LEAF + 2;
  for (size_t i = 0; i < it->n; i++) rank(need_obj(it->kids[i]), &top1, &top2);
  return 1 + chain_need(top1, top2);
}

static int need_obj(const convq_node_t *w) {
  int top1 = 1, top2 = -1;
  for (size_t i = 0; i < w->n; i++) rank(need_item(w->kids[i]), &top1, &top2);
  return chain_need(top1, top2);
}

typedef struct {
  const convq_node_t *node;
  int need;
  size_t idx;
} item_t;

static int item_cmp(const void *a, const void *b) {
  const item_t *x = a, *y = b;
  if (x->need != y->need) return x->need > y->need ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int emit_obj(ctx_t *cx, const convq_node_t *w);

/* "(e1 OR e2 …)" / "(e1 AND e2 …)": elements are AND chains, costliest first. */
static int emit_list(ctx_t *cx, const convq_node_t *list) {
  size_t n = list->n, i;
  item_t *items = xcalloc(n ? n : 1, sizeof *items);
  for (i = 0; i < n; i++) items[i] = (item_t){list->kids[i], need_obj(list->kids[i]), i};
  qsort(items, n, sizeof *items, item_cmp);
  put(cx, "(");
  for (i = 0; i < n && !cx->rc; i++) {
    if (i) put(cx, list->kind == CONVQ_AND ? " AND " : " OR ");
    emit_obj(cx, items[i].node);
  }
  put(cx, ")");
  free(items);
  return cx->rc;
}

/* A where object as an AND chain without parentheses (callers only place it where that is safe). */
static int emit_obj(ctx_t *cx, const convq_node_t *w) {
  size_t i, n = w->n;
  if (n == 0 || cx->rc) return put(cx, "1"); /* {} inside $and/$or: no condition */
  item_t *items = xcalloc(n, sizeof *items);
  for (i = 0; i < n; i++) items[i] = (item_t){w->kids[i], need_item(w->kids[i]), i};
  qsort(items, n, sizeof *items, item_cmp);
  for (i = 0; i < n && !cx->rc; i++) {
    const convq_node_t *it = items[i].node;
    if (i) put(cx, " AND ");
    if (it->kind == CONVQ_LEAF) {
      emit_leaf(cx, it);
    } else if (it->list) {
      emit_list(cx, it);
    } else { /* a field's operators: one chain */
      for (size_t k = 0; k < it->n && !cx->rc; k++) {
        if (k) put(cx, " AND ");
        emit_leaf(cx, it->kids[k]);
      }
    }
  }
  free(items);
  return cx->rc;
}
void query_init(query_t *q) { memset(q, 0, sizeof *q); }

query_param_t *query_param_add(query_t *q, query_param_type_t type) {
  if (q->nparams == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 16;
    q->params = xrealloc(q->params, q->cap * sizeof *q->params);
  }
  query_param_t *p = &q->params[q->nparams++];
  memset(p, 0, sizeof *p);
  p->type = type;
  return p;
}

/* Drops parameters from index `from` on (also undoes a failed query_sort). */
static void params_truncate(query_t *q, size_t from) {
  for (size_t i = from; i < q->nparams; i++) free(q->params[i].s);
  if (from < q->nparams) q->nparams = from;
}

void query_free(query_t *q) {
  if (!q) return;
  params_truncate(q, 0);
  free(q->params);
  buf_free(&q->sql);
  query_init(q);
}

int query_where(query_t *q, const convq_node_t *where, char *err, size_t errlen) {
  ctx_t cx = {q, &q->sql, err, errlen, 0, 0};
  if (err && errlen) err[0] = 0;
  put(&cx, "(c.kind IN (1,2,3) AND ");
  emit_obj(&cx, where);
  if (!cx.rc && 3 + need_obj(where) > STACK_BUDGET) /* 3: "(c.kind … AND" */
    fail(&cx, "query nests too many $and/$or with other conditions beside them");
  if (cx.uses_doc) put(&cx, " AND json_valid(c.doc)"); /* last in the chain: costs no stack */
  put(&cx, ")");
  if (cx.rc) query_free(q);
  buf_cstr(&q->sql);
  return cx.rc;
}

int query_sort(query_t *q, const convq_sort_t *sort, size_t nsort, buf_t *out, char *err, size_t errlen) {
  buf_t tmp = BUF_INIT;
  ctx_t cx = {q, &tmp, err, errlen, 0, 0};
  size_t saved = q->nparams;
  if (err && errlen) err[0] = 0;
  for (size_t i = 0; i < nsort && !cx.rc; i++) {
    const convq_field_t *f = &sort[i].field;
    if (f->kind == CONVQ_F_PATH) {
      char *path = doc_path(&cx, f);
      if (path) put(&cx, "json_extract(" DOC_SQL ", "), bind_text(&cx, path), put(&cx, ")");
      free(path);
    } else if (f->kind == CONVQ_F_MEMBERS) {
      fail(&cx, "cannot sort by m");
    } else {
      put(&cx, column_of(f));
    }
    put(&cx, sort[i].desc ? " DESC, " : " ASC, ");
  }
  if (cx.rc) params_truncate(q, saved);
  else put(&cx, "c.id DESC"), buf_append(out, tmp.data, tmp.len);
  buf_free(&tmp);
  return cx.rc;
}
