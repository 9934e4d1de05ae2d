/* pg_convq.c — a parsed conversation query (convq.h) compiled to PostgreSQL SQL, with the
 * meaning store/sqlite/query/query.c gives it (the store suite's operators_on_every_field
 * runs on both): m through the member table, objectId and the times through columns, every
 * other key a path into the document read as jsonb. Every value is a bound parameter.
 *
 * A document field's rows K are its value and, when that is an array, its elements; EQ
 * holds when some row of K equals the operand (types exact: 2 is not "2"; a Date operand
 * matches a Date object with the same ISO text), NE when none does (a missing field
 * matches), LT … GTE compare numbers with numbers, strings with strings (bytewise) and
 * Dates with Dates. $regex runs PostgreSQL's regular expressions (POSIX AREs), which agree
 * with PCRE2 (what SQLite uses) on the common syntax; a pattern using what they read
 * differently is refused (regex_refuse, docs/cluster.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "pg_int.h"
#include "timeutil.h"

void pgq_param(pgq_t *q, char *owned) {
  if (q->n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 16;
    q->vals = xrealloc(q->vals, (size_t)q->cap * sizeof *q->vals);
  }
  q->vals[q->n++] = owned;
}

void param_text(pgq_t *q, char *owned, const char *cast) {
  pgq_param(q, owned);
  buf_printf(&q->sql, "$%d%s", q->n, cast);
}

void param_json(pgq_t *q, json_t *v) { param_text(q, json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), "::jsonb"); }

void pgq_free(pgq_t *q) {
  buf_free(&q->sql);
  for (int i = 0; i < q->n; i++) free(q->vals[i]);
  free(q->vals);
  memset(q, 0, sizeof *q);
}

typedef struct {
  pgq_t *q;
  buf_t *out;
  char *err;
  size_t errlen;
  int rc;
} cx_t;

static void put(cx_t *cx, const char *s) { buf_append_str(cx->out, s); }

static void bind(cx_t *cx, char *owned, const char *cast) {
  pgq_param(cx->q, owned);
  buf_printf(cx->out, "$%d%s", cx->q->n, cast);
}

static const char *const cmp[] = {[CONVQ_LT] = " < ", [CONVQ_LTE] = " <= ", [CONVQ_GT] = " > ", [CONVQ_GTE] = " >= "};

/* ---- regular expressions: PCRE2's reading or a refusal */

/* What an ARE reads otherwise than PCRE2, or cannot read: NULL when the pattern may run. */
static const char *regex_refuse(const char *p) {
  for (const char *s = p; *s; s++) {
    if (*s == '\\') {
      char c = s[1];
      if (!c) return "a trailing backslash";
      if (strchr("bBzZGKQERXhHvVpPNgk", c)) return "an escape that PostgreSQL reads otherwise (\\b, \\z, \\p, …)";
      if (c == 'x' && s[2] == '{') return "\\x{…}";
      s++;
      continue;
    }
    if (*s == '(' && s[1] == '?') {
      char c = s[2];
      if (!(c == ':' || c == '=' || c == '!' || (c == '<' && (s[3] == '=' || s[3] == '!'))))
        return "a group kind PostgreSQL does not read alike (atomic, named, inline options, …)";
    }
    if ((*s == '+' || *s == '*' || *s == '?' || *s == '}') && s[1] == '+') return "a possessive quantifier";
  }
  return NULL;
}

/* PCRE's \Q…\E quoting (what the SDKs' startsWith / endsWith / contains send) as an ARE's:
 * each character quoted by a backslash unless it is alphanumeric (a backslash before a
 * letter or digit is an escape in an ARE, before anything else the character itself). */
static void unquote_qe(const char *p, buf_t *out) {
  while (*p) {
    if (p[0] == '\\' && p[1] == 'Q') {
      p += 2;
      while (*p && !(p[0] == '\\' && p[1] == 'E')) {
        unsigned char ch = (unsigned char)*p;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch >= 0x80))
          buf_append_str(out, "\\");
        buf_append(out, p++, 1);
      }
      if (*p) p += 2; /* \E */
      continue;
    }
    if (p[0] == '\\' && p[1]) buf_append(out, p++, 1); /* an escape: both characters as they are */
    buf_append(out, p++, 1);
  }
  buf_cstr(out);
}

/* "<subject> ~ $n": the pattern with the options as an ARE's embedded options (i via ~*). */
static void regex_match(cx_t *cx, const char *subject, const convq_node_t *n) {
  buf_t re = BUF_INIT;
  unquote_qe(n->val.s, &re);
  const char *why = regex_refuse(buf_cstr(&re));
  if (why) {
    if (!cx->rc)
      snprintf(cx->err, cx->errlen, "$regex on %.64s: %s is not supported on a PostgreSQL store", n->field.name, why);
    cx->rc = TERN_EINVAL;
    put(cx, "false");
    buf_free(&re);
    return;
  }
  const char *o = n->regex_options ? n->regex_options : "";
  buf_t pat = BUF_INIT;
  /* PCRE2's defaults: '.' does not match a newline unless s, ^ and $ only at the ends
   * unless m. An ARE's (?p): '.' and brackets do not match newline; (?w): ^/$ at lines
   * too and '.' does not match newline; (?s) / (?n) as the pair asks. */
  int m = strchr(o, 'm') != NULL, sflag = strchr(o, 's') != NULL;
  buf_append_str(&pat, "(?");
  buf_append_str(&pat, m ? (sflag ? "w" : "n") : (sflag ? "s" : "p"));
  if (strchr(o, 'x')) buf_append_str(&pat, "x");
  buf_append_str(&pat, ")");
  buf_append_str(&pat, buf_cstr(&re));
  buf_free(&re);
  buf_printf(cx->out, "%s %s ", subject, strchr(o, 'i') ? "~*" : "~");
  bind(cx, xstrdup(buf_cstr(&pat)), "::text");
  buf_free(&pat);
}

/* ---- operands */

/* A JSON array of v (or of v's elements): for a document field every value (Dates in their
 * canonical form); for a time column ms or null; for objectId and m the plain strings only,
 * *foreign set when something else was left out (it could never match). */
static char *list_json(const convq_field_t *f, const convq_val_t *v, int elements, int *foreign) {
  json_t *arr = json_array();
  size_t n = elements ? v->n : 1;
  if (foreign) *foreign = 0;
  for (size_t i = 0; i < n; i++) {
    const convq_val_t *e = elements ? &v->items[i] : v;
    if (f->kind == CONVQ_F_PATH) json_array_append_new(arr, convq_val_json(e));
    else if (f->kind != CONVQ_F_OBJECT_ID && f->kind != CONVQ_F_MEMBERS)
      json_array_append_new(arr, e->type == CONVQ_V_DATE ? json_integer(e->i) : json_null());
    else if (convq_val_plain_string(e)) json_array_append_new(arr, json_string(e->s));
    else if (foreign) *foreign = 1;
  }
  char *text = json_dumps(arr, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(arr);
  return text;
}

static const char *column_of(const convq_field_t *f) {
  switch (f->kind) {
  case CONVQ_F_OBJECT_ID: return "c.cid";
  case CONVQ_F_CREATED_AT: return "c.created_at";
  case CONVQ_F_UPDATED_AT: return "c.updated_at";
  case CONVQ_F_LM: return "c.qlm";
  default: return NULL;
  }
}

static void emit_column(cx_t *cx, const convq_node_t *n) {
  const convq_field_t *f = &n->field;
  const convq_val_t *v = &n->val;
  const char *col = column_of(f);
  int cid = f->kind == CONVQ_F_OBJECT_ID, foreign;
  int has = cid ? convq_val_plain_string(v) : v->type == CONVQ_V_DATE;
  char num[32];
  if (!cid && has) snprintf(num, sizeof num, "%lld", (long long)v->i);
  switch (n->op) {
  case CONVQ_EQ:
  case CONVQ_NE:
    if (cid && !has) return put(cx, n->op == CONVQ_EQ ? "false" : "true");
    if (!has) return buf_printf(cx->out, "%s IS %sNULL", col, n->op == CONVQ_EQ ? "" : "NOT "), (void)0;
    buf_printf(cx->out, "%s IS %sDISTINCT FROM ", col, n->op == CONVQ_EQ ? "NOT " : "");
    return bind(cx, xstrdup(cid ? v->s : num), cid ? "::text" : "::bigint");
  case CONVQ_IN:
  case CONVQ_NIN:
    put(cx, n->op == CONVQ_NIN ? "NOT " : "");
    put(cx, "EXISTS (SELECT 1 FROM jsonb_array_elements(");
    bind(cx, list_json(f, v, 1, NULL), "::jsonb");
    if (cid) return buf_printf(cx->out, ") o WHERE o #>> '{}' = %s)", col), (void)0;
    return buf_printf(cx->out, ") o WHERE (o #>> '{}')::bigint IS NOT DISTINCT FROM %s)", col), (void)0;
  case CONVQ_ALL:
    if (v->n == 0) return put(cx, "false");
    put(cx, "NOT EXISTS (SELECT 1 FROM jsonb_array_elements(");
    bind(cx, list_json(f, v, 1, &foreign), "::jsonb");
    if (cid) buf_printf(cx->out, ") o WHERE o #>> '{}' IS DISTINCT FROM %s)", col);
    else buf_printf(cx->out, ") o WHERE (o #>> '{}')::bigint IS DISTINCT FROM %s)", col);
    return put(cx, foreign ? " AND false" : "");
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE:
    if (!has) return put(cx, "false");
    buf_printf(cx->out, "%s%s", col, cmp[n->op]);
    return bind(cx, xstrdup(cid ? v->s : num), cid ? "::text" : "::bigint");
  case CONVQ_REGEX:
    if (!cid) return put(cx, "false"); /* times are not text */
    return regex_match(cx, "c.cid", n);
  case CONVQ_EXISTS: return buf_printf(cx->out, "%s IS %sNULL", col, v->b ? "NOT " : ""), (void)0;
  case CONVQ_SIZE: return put(cx, "false");
  }
}

#define MEMBER_OF "EXISTS (SELECT 1 FROM member WHERE member.conv = c.id AND "

static void emit_members(cx_t *cx, const convq_node_t *n) {
  const convq_field_t *f = &n->field;
  const convq_val_t *v = &n->val;
  int foreign;
  int neg = n->op == CONVQ_NE || n->op == CONVQ_NIN;
  put(cx, neg ? "NOT (" : "(");
  switch (n->op) {
  case CONVQ_EQ:
  case CONVQ_NE:
    if (v->type == CONVQ_V_ARRAY) { /* the member set is exactly that set */
      char *list = list_json(f, v, 1, &foreign);
      put(cx, "c.member_count = (SELECT count(DISTINCT e) FROM jsonb_array_elements_text(");
      bind(cx, list, "::jsonb");
      put(cx, ") e) AND NOT EXISTS (SELECT 1 FROM member WHERE member.conv = c.id AND member.client NOT IN"
              " (SELECT jsonb_array_elements_text(");
      buf_printf(cx->out, "$%d::jsonb)))%s", cx->q->n, foreign ? " AND false" : "");
      break;
    }
    if (!convq_val_plain_string(v)) {
      put(cx, "false");
      break;
    }
    put(cx, MEMBER_OF "member.client = ");
    bind(cx, xstrdup(v->s), "::text)");
    break;
  case CONVQ_IN:
  case CONVQ_NIN:
    put(cx, MEMBER_OF "member.client IN (SELECT jsonb_array_elements_text(");
    bind(cx, list_json(f, v, 1, NULL), "::jsonb)))");
    break;
  case CONVQ_ALL:
    if (v->n == 0) {
      put(cx, "false");
      break;
    }
    put(cx, "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(");
    bind(cx, list_json(f, v, 1, &foreign), "::jsonb");
    put(cx, ") o(v) WHERE NOT " MEMBER_OF "member.client = o.v))");
    put(cx, foreign ? " AND false" : "");
    break;
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE:
    if (!convq_val_plain_string(v)) {
      put(cx, "false");
      break;
    }
    buf_printf(cx->out, MEMBER_OF "member.client%s", cmp[n->op]);
    bind(cx, xstrdup(v->s), "::text)");
    break;
  case CONVQ_REGEX:
    put(cx, MEMBER_OF);
    regex_match(cx, "member.client", n);
    put(cx, ")");
    break;
  case CONVQ_EXISTS: put(cx, v->b ? "c.member_count > 0" : "c.member_count = 0"); break;
  case CONVQ_SIZE: buf_printf(cx->out, "c.member_count = %lld", (long long)v->i); break;
  }
  put(cx, ")");
}

/* The field's value: "(c.dj #> $p::text[])", dj the document as jsonb (pg_query.c reads
 * it once per row), the path a text[] literal with every segment quoted. Written into x. */
static void doc_value(cx_t *cx, const convq_field_t *f, buf_t *x) {
  buf_t lit = BUF_INIT;
  buf_append_str(&lit, "{");
  for (size_t i = 0; i < f->nsegs; i++) {
    buf_append_str(&lit, i ? ",\"" : "\"");
    for (const char *p = f->segs[i]; *p; p++) {
      if (*p == '"' || *p == '\\') buf_append_str(&lit, "\\");
      buf_append(&lit, p, 1);
    }
    buf_append_str(&lit, "\"");
  }
  buf_append_str(&lit, "}");
  pgq_param(cx->q, xstrdup(buf_cstr(&lit)));
  buf_free(&lit);
  x->len = 0;
  buf_printf(x, "(c.dj #> $%d::text[])", cx->q->n);
}

/* K: the value and, when an array, its elements (rows k(v)). */
static void emit_k(cx_t *cx, const char *v) {
  buf_printf(cx->out,
             "(SELECT %s AS v UNION ALL SELECT jsonb_array_elements(CASE WHEN jsonb_typeof(%s) = 'array' THEN %s END))"
             " k WHERE k.v IS NOT NULL",
             v, v, v);
}

/* k.v equals o (types exact; a Date operand matches a Date object of the same ISO text). */
#define EQ_KO                                                                                                          \
  "CASE WHEN jsonb_typeof(o) = 'object' AND o ->> '__type' = 'Date' THEN jsonb_typeof(k.v) = 'object'"                 \
  " AND k.v ->> '__type' = 'Date' AND k.v -> 'iso' = o -> 'iso' ELSE k.v = o END"

static void emit_doc(cx_t *cx, const convq_node_t *n) {
  const convq_val_t *v = &n->val;
  buf_t x = BUF_INIT;
  doc_value(cx, &n->field, &x);
  const char *val = buf_cstr(&x);
  char iso[ISO_LEN + 1];
  switch (n->op) {
  case CONVQ_NE:
  case CONVQ_NIN: put(cx, "NOT "); /* fall through */
  case CONVQ_EQ:
  case CONVQ_IN:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, val);
    put(cx, " AND EXISTS (SELECT 1 FROM jsonb_array_elements(");
    bind(cx, list_json(&n->field, v, n->op == CONVQ_IN || n->op == CONVQ_NIN, NULL), "::jsonb");
    put(cx, ") o WHERE " EQ_KO "))");
    break;
  case CONVQ_ALL: /* every operand is matched by some row of K */
    if (v->n == 0) {
      put(cx, "false");
      break;
    }
    put(cx, "NOT EXISTS (SELECT 1 FROM jsonb_array_elements(");
    bind(cx, list_json(&n->field, v, 1, NULL), "::jsonb");
    put(cx, ") o WHERE NOT EXISTS (SELECT 1 FROM ");
    emit_k(cx, val);
    put(cx, " AND " EQ_KO "))");
    break;
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE: /* numbers with numbers, strings with strings, Dates with Dates */
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, val);
    if (v->type == CONVQ_V_INT || v->type == CONVQ_V_REAL) {
      char num[64];
      if (v->type == CONVQ_V_INT) snprintf(num, sizeof num, "%lld", (long long)v->i);
      else snprintf(num, sizeof num, "%.17g", v->d);
      buf_printf(cx->out, " AND jsonb_typeof(k.v) = 'number' AND (k.v)::numeric%s", cmp[n->op]);
      bind(cx, xstrdup(num), "::numeric");
    } else if (v->type == CONVQ_V_STRING) {
      buf_printf(cx->out, " AND jsonb_typeof(k.v) = 'string' AND (k.v #>> '{}') COLLATE \"C\"%s", cmp[n->op]);
      bind(cx, xstrndup(v->s, v->len), "::text");
    } else { /* a Date (the parser made sure) */
      iso_format(v->i, iso);
      buf_printf(cx->out,
                 " AND jsonb_typeof(k.v) = 'object' AND k.v ->> '__type' = 'Date'"
                 " AND jsonb_typeof(k.v -> 'iso') = 'string' AND (k.v ->> 'iso') COLLATE \"C\"%s",
                 cmp[n->op]);
      bind(cx, xstrdup(iso), "::text");
    }
    put(cx, ")");
    break;
  case CONVQ_REGEX:
    put(cx, "EXISTS (SELECT 1 FROM ");
    emit_k(cx, val);
    put(cx, " AND jsonb_typeof(k.v) = 'string' AND ");
    regex_match(cx, "(k.v #>> '{}')", n);
    put(cx, ")");
    break;
  case CONVQ_EXISTS: buf_printf(cx->out, "%s IS %sNULL", val, v->b ? "NOT " : ""); break;
  case CONVQ_SIZE:
    buf_printf(cx->out, "(jsonb_typeof(%s) = 'array' AND jsonb_array_length(%s) = %lld)", val, val, (long long)v->i);
    break;
  }
  buf_free(&x);
}

static void emit_node(cx_t *cx, const convq_node_t *n) {
  if (n->kind == CONVQ_LEAF) {
    if (n->field.kind == CONVQ_F_MEMBERS) emit_members(cx, n);
    else if (n->field.kind == CONVQ_F_PATH) emit_doc(cx, n);
    else emit_column(cx, n);
    return;
  }
  if (n->n == 0) return put(cx, "true");
  put(cx, "(");
  for (size_t i = 0; i < n->n; i++) {
    if (i) put(cx, n->kind == CONVQ_AND ? " AND " : " OR ");
    emit_node(cx, n->kids[i]);
  }
  put(cx, ")");
}

/* ORDER BY: NULLs (no lm, no such field) sort low, as on SQLite; a document field sorts by
 * SQLite's type order (null, then numbers and booleans, then text and JSON text) and within
 * a type by value, text bytewise. */
static void emit_sort(cx_t *cx, const convq_sort_t *s) {
  const char *dir = s->desc ? "DESC" : "ASC", *nulls = s->desc ? "NULLS LAST" : "NULLS FIRST";
  if (s->field.kind != CONVQ_F_PATH) {
    buf_printf(cx->out, "%s %s %s, ", column_of(&s->field), dir, nulls);
    return;
  }
  buf_t x = BUF_INIT;
  doc_value(cx, &s->field, &x);
  const char *v = buf_cstr(&x);
  buf_printf(cx->out,
             "CASE WHEN %s IS NULL OR jsonb_typeof(%s) = 'null' THEN 0 WHEN jsonb_typeof(%s) IN ('number', 'boolean')"
             " THEN 1 ELSE 2 END %s, CASE jsonb_typeof(%s) WHEN 'number' THEN (%s)::numeric WHEN 'boolean' THEN"
             " (%s)::boolean::int END %s, CASE jsonb_typeof(%s) WHEN 'string' THEN %s #>> '{}' WHEN 'object' THEN"
             " %s::text WHEN 'array' THEN %s::text END COLLATE \"C\" %s, ",
             v, v, v, dir, v, v, v, dir, v, v, v, v, dir);
  buf_free(&x);
}

int pg_convq_compile(const convq_t *cq, pgq_t *q, buf_t *order, char *err, size_t errlen) {
  cx_t cx = {q, &q->sql, err, errlen, 0};
  if (err && errlen) err[0] = 0;
  put(&cx, "(c.kind IN (1,2,3) AND ");
  emit_node(&cx, cq->where);
  put(&cx, ")");
  buf_cstr(&q->sql);
  if (!order) return cx.rc; /* a count: no ORDER BY, none of its parameters */
  cx.out = order;
  for (size_t i = 0; i < cq->nsort; i++) emit_sort(&cx, &cq->sort[i]);
  put(&cx, "c.id DESC");
  buf_cstr(&q->sql);
  buf_cstr(order);
  return cx.rc;
}
