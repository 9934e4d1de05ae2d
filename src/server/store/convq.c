/* convq.c — the one parser of conversation queries: LeanCloud `where` JSON and `sort`
 * strings → the tree of convq.h, with every check of the query language.
 *
 * The parser walks the where in the client's key order and stops at the first refusal,
 * whose text is what the client reads (4310's detail, REST's 400 error), so the texts here
 * are part of the protocol: tests/proto, tests/unit/test_convq.c and the store suite assert
 * them. Backends never see JSON: operands arrive typed (convq_val_t), Dates and times
 * converted, regular expressions known to compile. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "convq.h"

#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "timeutil.h"

typedef struct {
  char *err;
  size_t errlen;
  int terms;
  int rc; /* first error; once set the walk stops at its next check */
} px_t;

static const char *const op_names[] = {"$eq", "$ne",  "$lt",  "$lte",    "$gt",    "$gte",
                                       "$in", "$nin", "$all", "$exists", "$regex", "$size"};
#define NOPS (sizeof op_names / sizeof op_names[0])

static int pfail(px_t *px, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int pfail(px_t *px, const char *fmt, ...) {
  if (!px->rc && px->err && px->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(px->err, px->errlen, fmt, ap);
    va_end(ap);
  }
  if (!px->rc) px->rc = TERN_EINVAL;
  return px->rc;
}

/* ---- values ------------------------------------------------------------------------------ */

static void val_clear(convq_val_t *v) {
  for (size_t i = 0; i < v->n; i++) {
    val_clear(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->s);
  memset(v, 0, sizeof *v);
}

/* The value as the client wrote it (no Date recognised anywhere inside). */
static void val_raw(convq_val_t *out, json_t *v) {
  size_t i;
  const char *k;
  json_t *e;
  memset(out, 0, sizeof *out);
  switch (json_typeof(v)) {
  case JSON_NULL: out->type = CONVQ_V_NULL; break;
  case JSON_TRUE:
  case JSON_FALSE: out->type = CONVQ_V_BOOL, out->b = json_is_true(v); break;
  case JSON_INTEGER: out->type = CONVQ_V_INT, out->i = json_integer_value(v); break;
  case JSON_REAL: out->type = CONVQ_V_REAL, out->d = json_real_value(v); break;
  case JSON_STRING:
    out->type = CONVQ_V_STRING;
    out->len = json_string_length(v);
    out->s = xmalloc(out->len + 1);
    memcpy(out->s, json_string_value(v), out->len + 1);
    break;
  case JSON_ARRAY:
    out->type = CONVQ_V_ARRAY;
    out->n = json_array_size(v);
    out->items = xcalloc(out->n ? out->n : 1, sizeof *out->items);
    json_array_foreach(v, i, e) val_raw(&out->items[i], e);
    break;
  case JSON_OBJECT:
    out->type = CONVQ_V_OBJECT;
    out->n = json_object_size(v);
    out->items = xcalloc(out->n ? out->n : 1, sizeof *out->items);
    out->keys = xcalloc(out->n ? out->n : 1, sizeof *out->keys);
    i = 0;
    json_object_foreach(v, k, e) {
      out->keys[i] = xstrdup(k);
      val_raw(&out->items[i++], e);
    }
    break;
  }
}

json_t *convq_val_json(const convq_val_t *v) {
  char iso[ISO_LEN + 1];
  json_t *o;
  switch (v->type) {
  case CONVQ_V_NULL: return json_null();
  case CONVQ_V_BOOL: return json_boolean(v->b);
  case CONVQ_V_INT: return json_integer(v->i);
  case CONVQ_V_REAL: return json_real(v->d);
  case CONVQ_V_STRING: return json_stringn_nocheck(v->s, v->len);
  case CONVQ_V_DATE: iso_format(v->i, iso); return json_pack("{s:s,s:s}", "__type", "Date", "iso", iso);
  case CONVQ_V_ARRAY:
    o = json_array();
    for (size_t i = 0; i < v->n; i++) json_array_append_new(o, convq_val_json(&v->items[i]));
    return o;
  case CONVQ_V_OBJECT:
    o = json_object();
    for (size_t i = 0; i < v->n; i++) json_object_set_new_nocheck(o, v->keys[i], convq_val_json(&v->items[i]));
    return o;
  }
  return json_null();
}

int convq_val_plain_string(const convq_val_t *v) { return v->type == CONVQ_V_STRING && strlen(v->s) == v->len; }

/* Parameters and keys are C strings, so a JSON string with a NUL inside is not "plain". */
static int plain_string(json_t *v) {
  return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* 1 and *ms for a valid Date object, 0 for anything that is not a Date, TERN_EINVAL (reason
 * set) for an object that claims to be a Date but has no parseable iso. */
static int date_of(px_t *px, json_t *v, int64_t *ms) {
  json_t *type = json_object_get(v, "__type");
  if (!json_is_string(type) || strcmp(json_string_value(type), "Date") != 0) return 0;
  json_t *iso = json_object_get(v, "iso");
  if (!json_is_string(iso) || iso_parse(json_string_value(iso), ms) != 0)
    return pfail(px, "invalid Date: iso must be an ISO-8601 UTC string");
  return 1;
}

/* An operand where a Date may stand: a Date object becomes CONVQ_V_DATE. */
static int val_dated(px_t *px, convq_val_t *out, json_t *v) {
  int64_t ms = 0;
  int rc = date_of(px, v, &ms);
  if (rc < 0) return rc;
  if (rc) {
    memset(out, 0, sizeof *out);
    out->type = CONVQ_V_DATE;
    out->i = ms;
  } else {
    val_raw(out, v);
  }
  return 0;
}

/* A time operand: Date object, ISO string or ms number → CONVQ_V_DATE; null → CONVQ_V_NULL. */
static int val_time(px_t *px, const convq_field_t *f, convq_val_t *out, json_t *v) {
  int64_t ms = 0;
  int rc = date_of(px, v, &ms);
  memset(out, 0, sizeof *out);
  if (rc < 0) return rc;
  if (rc == 0 && json_is_null(v)) return out->type = CONVQ_V_NULL, 0;
  if (rc == 0 && json_is_string(v) && iso_parse(json_string_value(v), &ms) == 0) rc = 1;
  if (rc == 0 && json_is_integer(v)) ms = json_integer_value(v), rc = 1;
  if (rc == 0 && json_is_real(v) && fabs(json_real_value(v)) < 9e15) ms = (int64_t)json_real_value(v), rc = 1;
  if (!rc) return pfail(px, "%s compares with Dates, ISO strings or milliseconds", f->name);
  out->type = CONVQ_V_DATE;
  out->i = ms;
  return 0;
}

/* Operands nested deeper than the query limit are refused. */
static int too_deep(json_t *v, int depth) {
  size_t i;
  const char *k;
  json_t *e;
  if (depth > CONVQ_MAX_DEPTH) return 1;
  if (json_is_array(v)) json_array_foreach(v, i, e) if (too_deep(e, depth + 1)) return 1;
  if (json_is_object(v)) json_object_foreach(v, k, e) if (too_deep(e, depth + 1)) return 1;
  return 0;
}

/* ---- regular expressions ---------------------------------------------------------------- */

int convq_regex_check(const char *pattern, const char *options, char *msg, size_t msglen) {
  static const char letters[] = "imxs";
  static const uint32_t bits[] = {PCRE2_CASELESS, PCRE2_MULTILINE, PCRE2_EXTENDED, PCRE2_DOTALL};
  uint32_t flags = 0;
  int errcode;
  PCRE2_SIZE erroff;
  if (msglen) msg[0] = 0;
  for (const char *p = options ? options : ""; *p; p++) {
    const char *at = strchr(letters, *p);
    if (!at) return snprintf(msg, msglen, "$options must be made of i, m, x, s"), TERN_EINVAL;
    flags |= bits[at - letters];
  }
  if (strlen(pattern) > CONVQ_MAX_PATTERN) return snprintf(msg, msglen, "pattern too long"), TERN_EINVAL;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   flags | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
  if (!code) {
    PCRE2_UCHAR text[120];
    pcre2_get_error_message(errcode, text, sizeof text);
    snprintf(msg, msglen, "%s at offset %zu", (const char *)text, (size_t)erroff);
    return TERN_EINVAL;
  }
  pcre2_code_free(code);
  return 0;
}

/* ---- fields ------------------------------------------------------------------------------ */

static void field_clear(convq_field_t *f) {
  free(f->name);
  for (size_t i = 0; i < f->nsegs; i++) free(f->segs[i]);
  free(f->segs);
  memset(f, 0, sizeof *f);
}

static void field_copy(convq_field_t *to, const convq_field_t *from) {
  *to = *from;
  to->name = xstrdup(from->name);
  to->segs = from->nsegs ? xcalloc(from->nsegs, sizeof *to->segs) : NULL;
  for (size_t i = 0; i < from->nsegs; i++) to->segs[i] = xstrdup(from->segs[i]);
}

static int field_resolve(px_t *px, const char *key, size_t klen, convq_field_t *f) {
  static const struct {
    const char *key;
    convq_field_kind_t kind;
  } named[] = {{"createdAt", CONVQ_F_CREATED_AT},
               {"updatedAt", CONVQ_F_UPDATED_AT},
               {"lm", CONVQ_F_LM},
               {"objectId", CONVQ_F_OBJECT_ID},
               {"m", CONVQ_F_MEMBERS}};
  memset(f, 0, sizeof *f);
  if (strlen(key) != klen) return pfail(px, "key contains a NUL byte");
  for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
    if (strcmp(key, named[i].key) == 0) return f->kind = named[i].kind, f->name = xstrdup(key), 0;
  if (klen == 0) return pfail(px, "empty key");
  if (key[0] == '$') return pfail(px, "unsupported operator %.64s", key);
  f->kind = CONVQ_F_PATH;
  for (const char *seg = key;; seg++) { /* "attr.topic" → ["attr", "topic"] */
    size_t n = strcspn(seg, ".");
    if (!n) {
      field_clear(f);
      return pfail(px, "key \"%.64s\" has an empty segment", key);
    }
    f->segs = xrealloc(f->segs, (f->nsegs + 1) * sizeof *f->segs);
    f->segs[f->nsegs++] = xstrndup(seg, n);
    seg += n;
    if (!*seg) break;
  }
  f->name = xstrdup(key);
  return 0;
}

/* ---- nodes -------------------------------------------------------------------------------- */

static void node_free(convq_node_t *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) node_free(n->kids[i]);
  free(n->kids);
  field_clear(&n->field);
  val_clear(&n->val);
  free(n->regex_options);
  free(n);
}

static convq_node_t *node_new(convq_node_kind_t kind) {
  convq_node_t *n = xcalloc(1, sizeof *n);
  n->kind = kind;
  return n;
}

static void node_add(convq_node_t *parent, convq_node_t *kid) {
  parent->kids = xrealloc(parent->kids, (parent->n + 1) * sizeof *parent->kids);
  parent->kids[parent->n++] = kid;
}

/* Shape checks that do not depend on the field, so every field refuses the same things. */
static int check_operand(px_t *px, const convq_field_t *f, convq_op_t op, json_t *v, json_t *opts) {
  int64_t ms = 0;
  char msg[160];
  const char *name = op_names[op];
  if (too_deep(v, 1)) return pfail(px, "%s: value nested deeper than %d levels", f->name, CONVQ_MAX_DEPTH);
  switch (op) {
  case CONVQ_IN:
  case CONVQ_NIN:
  case CONVQ_ALL: return json_is_array(v) ? 0 : pfail(px, "%s on %s needs an array", name, f->name);
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE:
    if (json_is_string(v) && !plain_string(v)) return pfail(px, "%s on %s: NUL bytes in strings", name, f->name);
    if (json_is_number(v) || json_is_string(v) || date_of(px, v, &ms) == 1) return 0;
    return pfail(px, "%s on %s needs a number, a string or a Date", name, f->name);
  case CONVQ_EXISTS: return json_is_boolean(v) ? 0 : pfail(px, "$exists on %s needs true or false", f->name);
  case CONVQ_SIZE:
    if (json_is_integer(v) && json_integer_value(v) >= 0) return 0;
    return pfail(px, "$size on %s needs a non-negative integer", f->name);
  case CONVQ_REGEX:
    if (!plain_string(v)) return pfail(px, "$regex on %s needs a string", f->name);
    if (opts && !plain_string(opts)) return pfail(px, "$options on %s must be a string of i, m, x, s", f->name);
    if (convq_regex_check(json_string_value(v), opts ? json_string_value(opts) : "", msg, sizeof msg) != 0)
      return pfail(px, "$regex on %s: %s", f->name, msg);
    return 0;
  default: return 0;
  }
}

static int is_time(const convq_field_t *f) {
  return f->kind == CONVQ_F_CREATED_AT || f->kind == CONVQ_F_UPDATED_AT || f->kind == CONVQ_F_LM;
}

/* One operand as the field takes it (convq.h: where Dates are recognised). */
static int operand(px_t *px, const convq_field_t *f, convq_val_t *out, json_t *v) {
  if (is_time(f)) return val_time(px, f, out, v);
  if (f->kind == CONVQ_F_PATH) return val_dated(px, out, v);
  val_raw(out, v);
  return 0;
}

static convq_node_t *leaf(px_t *px, const convq_field_t *f, convq_op_t op, json_t *v, json_t *opts) {
  if (++px->terms > CONVQ_MAX_TERMS) pfail(px, "query has more than %d conditions", CONVQ_MAX_TERMS);
  if (px->rc || check_operand(px, f, op, v, opts)) return NULL;
  convq_node_t *n = node_new(CONVQ_LEAF);
  field_copy(&n->field, f);
  n->op = op;
  switch (op) {
  case CONVQ_IN:
  case CONVQ_NIN:
  case CONVQ_ALL:
    n->val.type = CONVQ_V_ARRAY;
    n->val.n = json_array_size(v);
    n->val.items = xcalloc(n->val.n ? n->val.n : 1, sizeof *n->val.items);
    for (size_t i = 0; i < n->val.n && !px->rc; i++) operand(px, f, &n->val.items[i], json_array_get(v, i));
    break;
  case CONVQ_LT:
  case CONVQ_LTE:
  case CONVQ_GT:
  case CONVQ_GTE:
    if (is_time(f)) val_time(px, f, &n->val, v);
    else val_dated(px, &n->val, v); /* a Date is valid here: check_operand made sure */
    break;
  case CONVQ_REGEX:
    val_raw(&n->val, v);
    if (opts) n->regex_options = xstrdup(json_string_value(opts));
    break;
  case CONVQ_EXISTS:
  case CONVQ_SIZE: val_raw(&n->val, v); break;
  default: operand(px, f, &n->val, v); break;
  }
  if (px->rc) {
    node_free(n);
    return NULL;
  }
  return n;
}

/* An object value is an operator object when it has keys starting with '$' ({"$gt": 1});
 * Dates and other objects are plain values. Returns how many such keys it has. */
static size_t op_count(json_t *val) {
  const char *k;
  json_t *e;
  size_t n = 0;
  if (json_is_object(val)) json_object_foreach(val, k, e) n += k[0] == '$';
  return n;
}

/* {"field": value} or {"field": {"$op": operand, …}}: a leaf, or a group of leaves. */
static convq_node_t *field_node(px_t *px, const char *key, size_t klen, json_t *val) {
  convq_field_t f;
  const char *k;
  json_t *v, *opts = json_object_get(val, "$options");
  size_t i;
  if (field_resolve(px, key, klen, &f)) return NULL;
  if (!op_count(val)) { /* a plain value: equality */
    convq_node_t *n = leaf(px, &f, CONVQ_EQ, val, NULL);
    field_clear(&f);
    return n;
  }
  convq_node_t *group = node_new(CONVQ_AND);
  if (opts && !json_object_get(val, "$regex")) pfail(px, "%.64s: $options without $regex", key);
  json_object_foreach(val, k, v) {
    for (i = 0; i < NOPS && strcmp(op_names[i], k) != 0; i++) continue;
    if (k[0] != '$') pfail(px, "%.64s: cannot mix operators and plain keys in one object", key);
    else if (i == NOPS && strcmp(k, "$options") != 0) pfail(px, "unsupported operator %.32s on %.64s", k, key);
    if (px->rc) break;
    if (i == NOPS) continue; /* $options, consumed by $regex */
    convq_node_t *n = leaf(px, &f, (convq_op_t)i, v, opts);
    if (n) node_add(group, n);
  }
  field_clear(&f);
  if (px->rc) {
    node_free(group);
    return NULL;
  }
  if (group->n == 1) {
    convq_node_t *only = group->kids[0];
    group->n = 0;
    node_free(group);
    return only;
  }
  return group;
}

static convq_node_t *obj_node(px_t *px, json_t *w, int depth);

/* "$and" / "$or": a non-empty array of where objects. */
static convq_node_t *list_node(px_t *px, const char *key, json_t *arr, int depth) {
  size_t n = json_array_size(arr);
  if (!json_is_array(arr) || n == 0) return pfail(px, "%s needs a non-empty array of queries", key), NULL;
  convq_node_t *list = node_new(key[1] == 'a' ? CONVQ_AND : CONVQ_OR);
  list->list = 1;
  for (size_t i = 0; i < n && !px->rc; i++) {
    if (++px->terms > CONVQ_MAX_TERMS) pfail(px, "query has more than %d conditions", CONVQ_MAX_TERMS);
    convq_node_t *kid = px->rc ? NULL : obj_node(px, json_array_get(arr, i), depth + 1);
    if (kid) node_add(list, kid);
  }
  if (px->rc) {
    node_free(list);
    return NULL;
  }
  return list;
}

/* A where object: the AND of its keys. */
static convq_node_t *obj_node(px_t *px, json_t *w, int depth) {
  const char *key;
  size_t klen;
  json_t *val;
  if (depth > CONVQ_MAX_DEPTH) return pfail(px, "query nested deeper than %d levels", CONVQ_MAX_DEPTH), NULL;
  if (!json_is_object(w)) return pfail(px, "a query must be a JSON object"), NULL;
  convq_node_t *and = node_new(CONVQ_AND);
  json_object_keylen_foreach(w, key, klen, val) {
    convq_node_t *kid = strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0 ? list_node(px, key, val, depth)
                                                                            : field_node(px, key, klen, val);
    if (px->rc) break;
    node_add(and, kid);
  }
  if (px->rc) {
    node_free(and);
    return NULL;
  }
  return and;
}

/* ---- sort ---------------------------------------------------------------------------------- */

static void sort_add(convq_t *q, const convq_field_t *f, int desc) {
  q->sort = xrealloc(q->sort, (q->nsort + 1) * sizeof *q->sort);
  q->sort[q->nsort++] = (convq_sort_t){*f, desc};
}

static int sort_parse(px_t *px, convq_t *q, const char *sort) {
  convq_field_t f;
  if (!sort || !sort[strspn(sort, " \t")]) { /* LeanCloud's legacy "-lm", newest update next */
    sort_add(q, &(convq_field_t){CONVQ_F_LM, xstrdup("lm"), NULL, 0}, 1);
    sort_add(q, &(convq_field_t){CONVQ_F_UPDATED_AT, xstrdup("updatedAt"), NULL, 0}, 1);
    return 0;
  }
  for (const char *p = sort; !px->rc; p++) {
    size_t n = strcspn(p, ","), len = n;
    const char *s = p;
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    int desc = len && *s == '-';
    char *key = xstrndup(s + desc, len - (size_t)desc);
    if (!*key) pfail(px, "sort has an empty field");
    else if (strcmp(key, "m") == 0) pfail(px, "cannot sort by m");
    else if (field_resolve(px, key, strlen(key), &f) == 0) sort_add(q, &f, desc);
    free(key);
    p += n;
    if (!*p) break;
  }
  return px->rc;
}

/* ---- entry points ------------------------------------------------------------------------ */

void convq_free(convq_t *q) {
  if (!q) return;
  node_free(q->where);
  for (size_t i = 0; i < q->nsort; i++) field_clear(&q->sort[i].field);
  free(q->sort);
  free(q);
}

int convq_parse(json_t *where, const char *sort, const char *self, convq_t **out, char *err, size_t errlen) {
  px_t px = {err, errlen, 0, 0};
  convq_t *q = xcalloc(1, sizeof *q);
  *out = NULL;
  if (err && errlen) err[0] = 0;
  if (!where || json_is_null(where) || (json_is_object(where) && json_object_size(where) == 0)) {
    convq_node_t *me = node_new(CONVQ_LEAF);
    me->field = (convq_field_t){CONVQ_F_MEMBERS, xstrdup("m"), NULL, 0};
    me->op = CONVQ_EQ;
    me->val.type = CONVQ_V_STRING;
    me->val.s = xstrdup(self ? self : "");
    me->val.len = strlen(me->val.s);
    q->where = node_new(CONVQ_AND);
    node_add(q->where, me);
  } else {
    q->where = obj_node(&px, where, 1);
  }
  if (!px.rc) sort_parse(&px, q, sort);
  if (px.rc) {
    convq_free(q);
    return px.rc;
  }
  *out = q;
  return 0;
}
