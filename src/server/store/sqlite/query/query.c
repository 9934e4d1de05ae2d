/* query.c — translate LeanCloud storage queries (`where` JSON, `sort` strings) into SQLite SQL.
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

#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "timeutil.h"

/* Leaf conditions per query: AND/OR chains become left-deep expression trees, and SQLite refuses
 * trees deeper than 1000; 256 leaves plus 16 levels of nesting stay far inside that. */
#define QUERY_MAX_TERMS 256
/* Parser stack entries (see need_obj): `SELECT … FROM conv c WHERE` then 92 nested parentheses
 * is the most SQLite 3.40 accepts; NEED_LEAF is the most any single condition below uses. */
#define STACK_BUDGET 90
#define NEED_LEAF 32

typedef struct {
  query_t *q;
  buf_t *out; /* where SQL text goes: q->sql, or a scratch buffer for ORDER BY */
  char *err;
  size_t errlen;
  int terms;
  int uses_doc; /* some condition reads the document */
  int rc;       /* first error; once set, binds do nothing and emitters stop at their next check */
} ctx_t;

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LTE, OP_GT, OP_GTE, OP_IN, OP_NIN, OP_ALL, OP_EXISTS, OP_REGEX, OP_SIZE } op_t;
static const char *const op_names[] = {"$eq", "$ne",  "$lt",  "$lte",    "$gt",    "$gte",
                                       "$in", "$nin", "$all", "$exists", "$regex", "$size"};
static const char *const cmp_sql[] = {[OP_LT] = " < ", [OP_LTE] = " <= ", [OP_GT] = " > ", [OP_GTE] = " >= "};

typedef enum { F_CID, F_TIME, F_MEMBERS, F_DOC } field_kind_t;
typedef struct {
  field_kind_t kind;
  const char *name; /* the key as the client wrote it, for error messages */
  const char *col;  /* F_CID / F_TIME column */
  char *path;       /* F_DOC: SQLite JSON path, owned */
} field_t;

/* One item of an AND chain or OR list, with the parser stack it needs (its ordering key). */
typedef struct {
  const char *key;
  size_t klen;
  json_t *val;
  int need;
  size_t idx;
} item_t;

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

static int bind_number(ctx_t *cx, json_t *v) {
  if (json_is_integer(v)) return bind_int(cx, json_integer_value(v));
  query_param_t *p = param_push(cx, QP_REAL);
  if (p) p->d = json_real_value(v);
  return cx->rc;
}

/* Parameters are C strings, so a JSON string with a NUL inside cannot be bound faithfully. */
static int plain_string(json_t *v) {
  return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* 1 and *ms for a valid Date object, 0 for anything that is not a Date, TERN_EINVAL (reason set)
 * for an object that claims to be a Date but has no parseable iso. */
static int date_of(ctx_t *cx, json_t *v, int64_t *ms) {
  json_t *type = json_object_get(v, "__type");
  if (!json_is_string(type) || strcmp(json_string_value(type), "Date") != 0) return 0;
  json_t *iso = json_object_get(v, "iso");
  if (!json_is_string(iso) || iso_parse(json_string_value(iso), ms) != 0)
    return fail(cx, "invalid Date: iso must be an ISO-8601 UTC string");
  return 1;
}

/* Operands nested deeper than the query limit are refused (SQLite's JSON parser has a limit too). */
static int too_deep(json_t *v, int depth) {
  size_t i;
  const char *k;
  json_t *e;
  if (depth > QUERY_MAX_DEPTH) return 1;
  if (json_is_array(v)) json_array_foreach(v, i, e) if (too_deep(e, depth + 1)) return 1;
  if (json_is_object(v)) json_object_foreach(v, k, e) if (too_deep(e, depth + 1)) return 1;
  return 0;
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

static void path_segment(ctx_t *cx, buf_t *b, const char *seg, size_t n, const char *key) {
  if (query_path_segment(b, seg, n) < 0) fail(cx, "key \"%.64s\" mixes '\"' and '['", key);
}

static int field_resolve(ctx_t *cx, const char *key, size_t klen, field_t *f) {
  static const char *const times[][2] = {
      {"createdAt", "c.created_at"}, {"updatedAt", "c.updated_at"}, {"lm", QUERY_LM_SQL}};
  memset(f, 0, sizeof *f);
  f->name = key;
  if (strlen(key) != klen) return fail(cx, "key contains a NUL byte");
  f->kind = F_TIME;
  for (int i = 0; i < 3; i++)
    if (strcmp(key, times[i][0]) == 0) return f->col = times[i][1], 0;
  if (strcmp(key, "objectId") == 0) return f->kind = F_CID, f->col = "c.cid", 0;
  if (strcmp(key, "m") == 0) return f->kind = F_MEMBERS, 0;
  f->kind = F_DOC;
  cx->uses_doc = 1;
  if (klen == 0) return fail(cx, "empty key");
  if (key[0] == '$') return fail(cx, "unsupported operator %.64s", key);
  buf_t b = BUF_INIT;
  buf_append_str(&b, "$");
  for (const char *seg = key; !cx->rc; seg++) { /* "attr.topic" → $."attr"."topic" */
    size_t n = strcspn(seg, ".");
    if (n) path_segment(cx, &b, seg, n, key);
    else fail(cx, "key \"%.64s\" has an empty segment", key);
    seg += n;
    if (!*seg) break;
  }
  if (!cx->rc) f->path = xstrdup(buf_cstr(&b));
  buf_free(&b);
  return cx->rc;
}

/* A time operand: Date object, ISO string or ms number → 1 and *ms; null → 0; else TERN_EINVAL. */
static int time_of(ctx_t *cx, const field_t *f, json_t *v, int64_t *ms) {
  int rc = date_of(cx, v, ms);
  if (rc) return rc;
  if (json_is_null(v)) return 0;
  if (json_is_string(v) && iso_parse(json_string_value(v), ms) == 0) return 1;
  if (json_is_integer(v)) return *ms = json_integer_value(v), 1;
  if (json_is_real(v) && fabs(json_real_value(v)) < 9e15) return *ms = (int64_t)json_real_value(v), 1;
  return fail(cx, "%s compares with Dates, ISO strings or milliseconds", f->name);
}

/* Binds v (or v's elements) as one JSON array. Doc operands get Dates in canonical ISO form (what
 * SQL_EQ_KO compares); time columns get ms or null; objectId/m keep strings only and return 1
 * when something else was dropped (it could never match). */
static int bind_list(ctx_t *cx, const field_t *f, json_t *v, int elements) {
  json_t *arr = json_array(), *e, *conv;
  size_t n = elements ? json_array_size(v) : 1;
  int rc = 0, foreign = 0;
  int64_t ms = 0;
  char iso[ISO_LEN + 1];
  for (size_t i = 0; i < n && rc >= 0; i++) {
    e = elements ? json_array_get(v, i) : v;
    conv = NULL;
    if (f->kind == F_TIME) {
      if ((rc = time_of(cx, f, e, &ms)) >= 0) conv = rc ? json_integer(ms) : json_null();
    } else if (f->kind != F_DOC) {
      if (plain_string(e)) conv = json_incref(e);
      else foreign = 1;
    } else if ((rc = date_of(cx, e, &ms)) > 0) {
      iso_format(ms, iso);
      conv = json_pack("{s:s,s:s}", "__type", "Date", "iso", iso);
    } else if (rc == 0) {
      conv = json_incref(e);
    }
    if (conv) json_array_append_new(arr, conv);
  }
  char *text = rc < 0 ? NULL : json_dumps(arr, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(arr);
  if (rc >= 0 && !text) fail(cx, "%s: operand cannot be encoded as JSON", f->name);
  if (text) bind_text(cx, text);
  free(text);
  return foreign;
}

static int bind_regex(ctx_t *cx, json_t *pattern, json_t *options) {
  bind_text(cx, json_string_value(pattern));
  put(cx, ", ");
  return bind_text(cx, options ? json_string_value(options) : "");
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
static int emit_column(ctx_t *cx, const field_t *f, op_t op, json_t *v, json_t *opts) {
  int64_t ms = 0;
  int cid = f->kind == F_CID, has = cid && plain_string(v), foreign;
  switch (op) {
  case OP_EQ:
  case OP_NE:
    if (!cid && (has = time_of(cx, f, v, &ms)) < 0) return cx->rc;
    if (cid && !has) return put(cx, op == OP_EQ ? "0" : "1");
    putf(cx, "%s IS %s", f->col, op == OP_EQ ? "" : "NOT ");
    if (!has) return put(cx, "NULL");
    return cid ? bind_text(cx, json_string_value(v)) : bind_int(cx, ms);
  case OP_IN:
  case OP_NIN: /* IN (subquery) lets SQLite probe the cid index; IS also matches a NULL lm with null */
    put(cx, op == OP_NIN ? "NOT " : "");
    put(cx, cid ? "c.cid IN " SQL_LIST : "EXISTS (SELECT 1 FROM json_each(");
    bind_list(cx, f, v, 1);
    if (cid) return put(cx, "))");
    return putf(cx, ") WHERE value IS %s)", f->col);
  case OP_ALL: /* a scalar "contains all" only if every element is that one value */
    if (json_array_size(v) == 0) return put(cx, "0");
    put(cx, "NOT EXISTS (SELECT 1 FROM json_each(");
    foreign = bind_list(cx, f, v, 1);
    return putf(cx, ") WHERE value IS NOT %s)%s", f->col, foreign ? " AND 0" : "");
  case OP_LT:
  case OP_LTE:
  case OP_GT:
  case OP_GTE: /* never negated, so a NULL lm may stay NULL (= no match) */
    if (!cid && time_of(cx, f, v, &ms) < 0) return cx->rc;
    if (cid && !has) return put(cx, "0");
    putf(cx, "%s%s", f->col, cmp_sql[op]);
    return cid ? bind_text(cx, json_string_value(v)) : bind_int(cx, ms);
  case OP_REGEX:
    if (!cid) return put(cx, "0"); /* times are not text */
    put(cx, "regexp(");
    bind_regex(cx, v, opts);
    return put(cx, ", c.cid)");
  case OP_EXISTS: return putf(cx, "%s IS %sNULL", f->col, json_is_true(v) ? "NOT " : "");
  case OP_SIZE: return put(cx, "0");
  }
  return cx->rc;
}

/* m lives in the member table (one row per conversation and client); member_count mirrors it. */
static int emit_members(ctx_t *cx, const field_t *f, op_t op, json_t *v, json_t *opts) {
  int foreign;
  if (op == OP_NE || op == OP_NIN) put(cx, "NOT ");
  switch (op) {
  case OP_EQ:
  case OP_NE:
    if (json_is_array(v)) { /* equality with an array: the member set is exactly that set */
      put(cx, "(c.member_count = (SELECT count(DISTINCT value) FROM json_each(");
      bind_list(cx, f, v, 1);
      put(cx, ")) AND NOT EXISTS (SELECT 1 FROM member WHERE conv = c.id AND client NOT IN " SQL_LIST);
      return put(cx, bind_list(cx, f, v, 1) ? "))) AND 0)" : "))))");
    }
    if (!plain_string(v)) return put(cx, "0");
    put(cx, SQL_MEMBER_OF "client = ");
    bind_text(cx, json_string_value(v));
    return put(cx, ")");
  case OP_IN:
  case OP_NIN:
    put(cx, SQL_MEMBER_OF "client IN " SQL_LIST);
    bind_list(cx, f, v, 1);
    return put(cx, ")))");
  case OP_ALL:
    if (json_array_size(v) == 0) return put(cx, "0");
    put(cx, "NOT EXISTS (SELECT 1 FROM json_each(");
    foreign = bind_list(cx, f, v, 1);
    put(cx, ") o WHERE NOT " SQL_MEMBER_OF "client = o.value))");
    return put(cx, foreign ? " AND 0" : "");
  case OP_LT:
  case OP_LTE:
  case OP_GT:
  case OP_GTE:
    if (!plain_string(v)) return put(cx, "0");
    putf(cx, SQL_MEMBER_OF "client%s", cmp_sql[op]);
    bind_text(cx, json_string_value(v));
    return put(cx, ")");
  case OP_REGEX:
    put(cx, SQL_MEMBER_OF "regexp(");
    bind_regex(cx, v, opts);
    return put(cx, ", client))");
  case OP_EXISTS: return put(cx, json_is_true(v) ? "c.member_count > 0" : "c.member_count = 0");
  case OP_SIZE: put(cx, "c.member_count = "); return bind_int(cx, json_integer_value(v));
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

static int emit_doc(ctx_t *cx, const field_t *f, op_t op, json_t *v, json_t *opts) {
  int64_t ms;
  char iso[ISO_LEN + 1];
  switch (op) {
  case OP_NE:
  case OP_NIN: put(cx, "NOT "); /* fall through */
  case OP_EQ:
  case OP_IN:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, f->path);
    put(cx, ", json_each(");
    bind_list(cx, f, v, op == OP_IN || op == OP_NIN);
    return put(cx, ") o WHERE " SQL_EQ_KO ")");
  case OP_ALL: /* every operand index o.key is matched by some row of K */
    if (json_array_size(v) == 0) return put(cx, "0");
    put(cx, "(SELECT count(DISTINCT o.key) FROM ");
    emit_k(cx, f->path);
    put(cx, ", json_each(");
    bind_list(cx, f, v, 1);
    return putf(cx, ") o WHERE " SQL_EQ_KO ") = %zu", json_array_size(v));
  case OP_LT:
  case OP_LTE:
  case OP_GT:
  case OP_GTE: /* numbers with numbers, strings with strings, Dates with Dates */
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, f->path);
    if (json_is_number(v)) {
      putf(cx, " WHERE k.t IN ('integer','real') AND k.v%s", cmp_sql[op]);
      bind_number(cx, v);
    } else if (json_is_string(v)) {
      putf(cx, " WHERE k.t IS 'text' AND k.v%s", cmp_sql[op]);
      bind_text(cx, json_string_value(v));
    } else { /* a Date (check_operand made sure) */
      date_of(cx, v, &ms);
      iso_format(ms, iso);
      buf_printf(cx->out,
                 " WHERE CASE WHEN k.t IS 'object' THEN json_extract(k.v, '$.__type') IS 'Date'"
                 " AND json_type(k.v, '$.iso') IS 'text' AND json_extract(k.v, '$.iso')%s",
                 cmp_sql[op]);
      bind_text(cx, iso);
      put(cx, " ELSE 0 END");
    }
    return put(cx, ")");
  case OP_REGEX:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, f->path);
    put(cx, " WHERE CASE WHEN k.t IS 'text' THEN regexp(");
    bind_regex(cx, v, opts);
    return put(cx, ", k.v) ELSE 0 END)");
  case OP_EXISTS:
    put(cx, "json_type(" DOC_SQL ", ");
    bind_text(cx, f->path);
    return put(cx, json_is_true(v) ? ") IS NOT NULL" : ") IS NULL");
  case OP_SIZE: /* json_array_length is 0 for scalars, hence the type test */
    put(cx, "(json_type(" DOC_SQL ", ");
    bind_text(cx, f->path);
    put(cx, ") IS 'array' AND json_array_length(" DOC_SQL ", ");
    bind_text(cx, f->path);
    put(cx, ") = ");
    bind_int(cx, json_integer_value(v));
    return put(cx, ")");
  }
  return cx->rc;
}

/* Shape checks that do not depend on the field, so every field kind refuses the same things. */
static int check_operand(ctx_t *cx, const field_t *f, op_t op, json_t *v, json_t *opts) {
  int64_t ms;
  rx_slot_t *rx;
  char msg[160];
  const char *name = op_names[op];
  if (too_deep(v, 1)) return fail(cx, "%s: value nested deeper than %d levels", f->name, QUERY_MAX_DEPTH);
  switch (op) {
  case OP_IN:
  case OP_NIN:
  case OP_ALL: return json_is_array(v) ? 0 : fail(cx, "%s on %s needs an array", name, f->name);
  case OP_LT:
  case OP_LTE:
  case OP_GT:
  case OP_GTE:
    if (json_is_string(v) && !plain_string(v)) return fail(cx, "%s on %s: NUL bytes in strings", name, f->name);
    if (json_is_number(v) || json_is_string(v) || date_of(cx, v, &ms) == 1) return 0;
    return fail(cx, "%s on %s needs a number, a string or a Date", name, f->name);
  case OP_EXISTS: return json_is_boolean(v) ? 0 : fail(cx, "$exists on %s needs true or false", f->name);
  case OP_SIZE:
    if (json_is_integer(v) && json_integer_value(v) >= 0) return 0;
    return fail(cx, "$size on %s needs a non-negative integer", f->name);
  case OP_REGEX:
    if (!plain_string(v)) return fail(cx, "$regex on %s needs a string", f->name);
    if (opts && !plain_string(opts)) return fail(cx, "$options on %s must be a string of i, m, x, s", f->name);
    if (rx_get(json_string_value(v), opts ? json_string_value(opts) : "", &rx, msg, sizeof msg) != 0)
      return fail(cx, "$regex on %s: %s", f->name, msg);
    return 0;
  default: return 0;
  }
}

static int emit_op(ctx_t *cx, const field_t *f, op_t op, json_t *v, json_t *opts) {
  if (++cx->terms > QUERY_MAX_TERMS) fail(cx, "query has more than %d conditions", QUERY_MAX_TERMS);
  if (cx->rc || check_operand(cx, f, op, v, opts)) return cx->rc;
  if (f->kind == F_DOC) return emit_doc(cx, f, op, v, opts);
  if (f->kind == F_MEMBERS) return emit_members(cx, f, op, v, opts);
  return emit_column(cx, f, op, v, opts);
}

/* An object value is an operator object when it has keys starting with '$' ({"$gt": 1}); Dates
 * and other objects are plain values. Returns how many such keys it has. */
static size_t op_count(json_t *val) {
  const char *k;
  json_t *e;
  size_t n = 0;
  if (json_is_object(val)) json_object_foreach(val, k, e) n += k[0] == '$';
  return n;
}

/* {"field": value} or {"field": {"$op": operand, …}}: one AND chain item per operator. */
static int emit_field(ctx_t *cx, const char *key, size_t klen, json_t *val) {
  field_t f;
  const char *k;
  json_t *operand, *opts = json_object_get(val, "$options");
  size_t n = 0, i, nops = sizeof op_names / sizeof op_names[0];
  if (field_resolve(cx, key, klen, &f)) return cx->rc;
  if (!op_count(val)) { /* a plain value: equality */
    emit_op(cx, &f, OP_EQ, val, NULL);
    free(f.path);
    return cx->rc;
  }
  if (opts && !json_object_get(val, "$regex")) fail(cx, "%.64s: $options without $regex", key);
  json_object_foreach(val, k, operand) {
    for (i = 0; i < nops && strcmp(op_names[i], k) != 0; i++) continue;
    if (k[0] != '$') fail(cx, "%.64s: cannot mix operators and plain keys in one object", key);
    else if (i == nops && strcmp(k, "$options") != 0) fail(cx, "unsupported operator %.32s on %.64s", k, key);
    if (cx->rc) break;
    if (i == nops) continue; /* $options, consumed by $regex */
    if (n++) put(cx, " AND ");
    emit_op(cx, &f, (op_t)i, operand, opts);
  }
  free(f.path);
  return cx->rc;
}

/* ---- nesting plan ----------------------------------------------------------------------------
 * need = parser stack entries a construct holds at its deepest point. A chain "a AND b AND c"
 * parses its first item on the current stack and every later one on top of "expr AND" (+2:
 * SQLite reduces left-associative chains as it goes), so the costliest item goes first. An
 * $or/$and list adds its parenthesis (+1). Leaves cost NEED_LEAF (measured worst case + margin). */
static int need_obj(json_t *w, int depth);

static int chain_need(int top1, int top2) { return top2 < 0 || top1 >= top2 + 2 ? top1 : top2 + 2; }
static void rank(int need, int *top1, int *top2) {
  if (need > *top1) *top2 = *top1, *top1 = need;
  else if (need > *top2) *top2 = need;
}

static int need_item(const char *key, json_t *val, int depth) {
  int top1 = 1, top2 = -1;
  size_t i;
  json_t *e;
  if (strcmp(key, "$and") != 0 && strcmp(key, "$or") != 0) return op_count(val) > 1 ? NEED_LEAF + 2 : NEED_LEAF;
  json_array_foreach(val, i, e) rank(need_obj(e, depth + 1), &top1, &top2);
  return 1 + chain_need(top1, top2);
}

static int need_obj(json_t *w, int depth) {
  int top1 = 1, top2 = -1;
  const char *k;
  json_t *v;
  if (depth > QUERY_MAX_DEPTH || !json_is_object(w)) return 1; /* refused while emitting anyway */
  json_object_foreach(w, k, v) rank(need_item(k, v, depth), &top1, &top2);
  return chain_need(top1, top2);
}

static int item_cmp(const void *a, const void *b) {
  const item_t *x = a, *y = b;
  if (x->need != y->need) return x->need > y->need ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int emit_obj(ctx_t *cx, json_t *w, int depth);

/* "(e1 OR e2 …)" / "(e1 AND e2 …)": elements are AND chains, costliest first. */
static int emit_list(ctx_t *cx, const char *key, json_t *arr, int depth) {
  size_t n = json_array_size(arr), i;
  if (!json_is_array(arr) || n == 0) return fail(cx, "%s needs a non-empty array of queries", key);
  item_t *items = xcalloc(n, sizeof *items);
  for (i = 0; i < n; i++)
    items[i] = (item_t){NULL, 0, json_array_get(arr, i), need_obj(json_array_get(arr, i), depth + 1), i};
  qsort(items, n, sizeof *items, item_cmp);
  put(cx, "(");
  for (i = 0; i < n && !cx->rc; i++) {
    if (i) put(cx, key[1] == 'a' ? " AND " : " OR ");
    if (++cx->terms > QUERY_MAX_TERMS) fail(cx, "query has more than %d conditions", QUERY_MAX_TERMS);
    emit_obj(cx, items[i].val, depth + 1);
  }
  put(cx, ")");
  free(items);
  return cx->rc;
}

/* A where object as an AND chain without parentheses (callers only place it where that is safe). */
static int emit_obj(ctx_t *cx, json_t *w, int depth) {
  const char *key;
  size_t klen, i = 0, n = json_object_size(w);
  json_t *val;
  if (depth > QUERY_MAX_DEPTH) return fail(cx, "query nested deeper than %d levels", QUERY_MAX_DEPTH);
  if (!json_is_object(w)) return fail(cx, "a query must be a JSON object");
  if (n == 0 || cx->rc) return put(cx, "1"); /* {} inside $and/$or: no condition */
  item_t *items = xcalloc(n, sizeof *items);
  json_object_keylen_foreach(w, key, klen, val) {
    items[i] = (item_t){key, klen, val, need_item(key, val, depth), i};
    i++;
  }
  qsort(items, n, sizeof *items, item_cmp);
  for (i = 0; i < n && !cx->rc; i++) {
    if (i) put(cx, " AND ");
    if (strcmp(items[i].key, "$and") == 0 || strcmp(items[i].key, "$or") == 0)
      emit_list(cx, items[i].key, items[i].val, depth);
    else emit_field(cx, items[i].key, items[i].klen, items[i].val);
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

int query_where(query_t *q, json_t *where, const char *self, char *err, size_t errlen) {
  ctx_t cx = {q, &q->sql, err, errlen, 0, 0};
  if (err && errlen) err[0] = 0;
  put(&cx, "(c.kind IN (1,2,3) AND ");
  if (!where || json_is_null(where) || (json_is_object(where) && json_object_size(where) == 0)) {
    put(&cx, SQL_MEMBER_OF "client = ");
    bind_text(&cx, self ? self : "");
    put(&cx, ")");
  } else {
    emit_obj(&cx, where, 1);
    if (!cx.rc && 3 + need_obj(where, 1) > STACK_BUDGET) /* 3: "(c.kind … AND" */
      fail(&cx, "query nests too many $and/$or with other conditions beside them");
    if (cx.uses_doc) put(&cx, " AND json_valid(c.doc)"); /* last in the chain: costs no stack */
  }
  put(&cx, ")");
  if (cx.rc) query_free(q);
  buf_cstr(&q->sql);
  return cx.rc;
}

int query_sort(query_t *q, const char *sort, buf_t *out, char *err, size_t errlen) {
  buf_t tmp = BUF_INIT;
  ctx_t cx = {q, &tmp, err, errlen, 0, 0};
  size_t saved = q->nparams;
  field_t f;
  if (err && errlen) err[0] = 0;
  if (!sort || !sort[strspn(sort, " \t")])
    return buf_append_str(out, QUERY_LM_SQL " DESC, c.updated_at DESC, c.id DESC"), 0;
  for (const char *p = sort; !cx.rc; p++) {
    size_t n = strcspn(p, ","), len = n;
    const char *s = p;
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    int desc = len && *s == '-';
    char *key = xstrndup(s + desc, len - (size_t)desc);
    if (!*key) fail(&cx, "sort has an empty field");
    else if (strcmp(key, "m") == 0) fail(&cx, "cannot sort by m");
    else if (field_resolve(&cx, key, strlen(key), &f) == 0) {
      put(&cx, f.kind == F_DOC ? "json_extract(" DOC_SQL ", " : f.col);
      if (f.kind == F_DOC) bind_text(&cx, f.path), put(&cx, ")");
      put(&cx, desc ? " DESC, " : " ASC, ");
      free(f.path);
    }
    free(key);
    p += n;
    if (!*p) break;
  }
  if (cx.rc) params_truncate(q, saved);
  else put(&cx, "c.id DESC"), buf_append(out, tmp.data, tmp.len);
  buf_free(&tmp);
  return cx.rc;
}
