/* admin_import_hist.c — pages of history items, as the importer uses them.
 *
 * A bulk import reads every message once, a million in a thousand pages of ~300 KB, and
 * parsing those pages into jansson values (an object, a hash table and a string
 * allocation per field) was half of the importer's CPU. A page from the REST API is
 * therefore scanned here instead: one pass over its bytes that validates them as JSON
 * (grammar, escapes, UTF-8, nesting — what jansson checks) and decodes the string fields
 * an item record needs in place, so an item is a few pointers into the page. Items from
 * a directory or for an export (which writes them out as they came) are parsed JSON, and
 * imp_items_from_json gives the same view of them.
 *
 * What the scan accepts is what jansson's json_loadb(…, JSON_ALLOW_NUL) accepts, except
 * that a number too large for jansson is taken here: an integer past 64 bits is not an
 * integer (that item is skipped for its timestamp) where jansson fails the whole page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_import.h"
#include "utf8.h"

#define MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct {
  char *p, *end;
  const char *err;
  int nul; /* the last string held \u0000 */
} sc_t;

static int fail(sc_t *s, const char *why) {
  if (!s->err) s->err = why;
  return -1;
}

static void ws(sc_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* The string whose opening quote is at s->p. dec: decoded in place and NUL-terminated
 * (an escape is never shorter than what it stands for), into *out; else only checked. */
static int str(sc_t *s, int dec, imp_str_t *out) {
  char *r = ++s->p, *w = r, *start = r;
  s->nul = 0;
  for (;;) {
    if (r >= s->end) return fail(s, "a string is not closed");
    unsigned char c = (unsigned char)*r;
    if (c == '"') break;
    if (c < 0x20) return fail(s, "a control character in a string");
    if (c == '\\') {
      if (s->end - r < 2) return fail(s, "a string is not closed");
      char e = r[1];
      char one = e == '"'    ? '"'
                 : e == '\\' ? '\\'
                 : e == '/'  ? '/'
                 : e == 'b'  ? '\b'
                 : e == 'f'  ? '\f'
                 : e == 'n'  ? '\n'
                 : e == 'r'  ? '\r'
                 : e == 't'  ? '\t'
                             : 0;
      if (one) {
        if (dec) *w++ = one;
        r += 2;
        continue;
      }
      unsigned v, lo;
      if (e != 'u' || s->end - r < 6 || hex4(r + 2, &v) < 0) return fail(s, "an invalid escape in a string");
      r += 6;
      if (v >= 0xDC00 && v <= 0xDFFF) return fail(s, "a lone low surrogate in a string");
      if (v >= 0xD800 && v <= 0xDBFF) {
        if (s->end - r < 6 || r[0] != '\\' || r[1] != 'u' || hex4(r + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
          return fail(s, "a lone high surrogate in a string");
        r += 6;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
      }
      if (!v) s->nul = 1;
      if (dec) w = utf8_put(w, v);
      continue;
    }
    size_t n = 1;
    if (c >= 0x80 && !(n = utf8_seq_len(r, (size_t)(s->end - r)))) return fail(s, "a string that is not UTF-8");
    if (dec && w != r) memmove(w, r, n);
    w += n;
    r += n;
  }
  s->p = r + 1;
  if (dec) {
    *w = 0; /* at most where the closing quote was */
    out->p = start;
    out->n = (size_t)(w - start);
  }
  return 0;
}

/* A number; *is_int and *v when it is an integer that fits in 64 bits. */
static int num(sc_t *s, int *is_int, int64_t *v) {
  char *p = s->p;
  int neg = 0, big = 0;
  uint64_t u = 0;
  if (p < s->end && *p == '-') neg = 1, p++;
  if (p >= s->end || *p < '0' || *p > '9') return fail(s, "an invalid number");
  if (*p == '0') {
    p++;
  } else {
    while (p < s->end && *p >= '0' && *p <= '9') {
      unsigned d = (unsigned)(*p++ - '0');
      if (u > (UINT64_MAX - d) / 10) big = 1;
      else u = u * 10 + d;
    }
  }
  int frac = 0;
  if (p < s->end && *p == '.') {
    frac = 1;
    p++;
    if (p >= s->end || *p < '0' || *p > '9') return fail(s, "an invalid number");
    while (p < s->end && *p >= '0' && *p <= '9') p++;
  }
  if (p < s->end && (*p == 'e' || *p == 'E')) {
    frac = 1;
    p++;
    if (p < s->end && (*p == '+' || *p == '-')) p++;
    if (p >= s->end || *p < '0' || *p > '9') return fail(s, "an invalid number");
    while (p < s->end && *p >= '0' && *p <= '9') p++;
  }
  s->p = p;
  *is_int = !frac && !big && (neg ? u <= (uint64_t)INT64_MAX + 1 : u <= (uint64_t)INT64_MAX);
  if (*is_int) *v = neg ? (int64_t)(0 - u) : (int64_t)u;
  return 0;
}

static int lit(sc_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return fail(s, "an invalid literal");
  s->p += n;
  return 0;
}

/* Checks any value (nothing decoded). */
static int skip(sc_t *s, int depth) {
  ws(s);
  if (s->p >= s->end) return fail(s, "a value is missing");
  char c = *s->p;
  if (c == '"') return str(s, 0, NULL);
  if (c == 't') return lit(s, "true");
  if (c == 'f') return lit(s, "false");
  if (c == 'n') return lit(s, "null");
  if (c == '-' || (c >= '0' && c <= '9')) {
    int is_int;
    int64_t v;
    return num(s, &is_int, &v);
  }
  if (c != '[' && c != '{') return fail(s, "an unexpected character");
  if (depth >= MAX_DEPTH) return fail(s, "nested too deep");
  char close = c == '[' ? ']' : '}';
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    return 0;
  }
  for (;;) {
    if (close == '}') {
      ws(s);
      if (s->p >= s->end || *s->p != '"') return fail(s, "an object key is missing");
      if (str(s, 0, NULL) < 0) return -1;
      if (s->nul) return fail(s, "U+0000 in an object key");
      ws(s);
      if (s->p >= s->end || *s->p != ':') return fail(s, "a ':' is missing");
      s->p++;
    }
    if (skip(s, depth + 1) < 0) return -1;
    ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      continue;
    }
    if (s->p < s->end && *s->p == close) {
      s->p++;
      return 0;
    }
    return fail(s, "a ',' or a closing bracket is missing");
  }
}

/* The value of a field the importer reads as a string: decoded when it is one. */
static int str_field(sc_t *s, imp_str_t *f) {
  ws(s);
  f->p = NULL;
  f->n = 0;
  if (s->p < s->end && *s->p == '"') return str(s, 1, f);
  return skip(s, 1);
}

/* true → 1, anything else → 0 (the value checked) */
static int true_field(sc_t *s, int *f) {
  ws(s);
  *f = s->end - s->p >= 4 && memcmp(s->p, "true", 4) == 0;
  return skip(s, 1);
}

/* An integer → 1 with *v; anything else → 0. */
static int int_field(sc_t *s, int64_t *v) {
  ws(s);
  int is_int = 0;
  if (s->p < s->end && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
    if (num(s, &is_int, v) < 0) return -1;
    return is_int;
  }
  return skip(s, 1) < 0 ? -1 : 0;
}

#define KEY(k, lit) ((k).n == sizeof(lit) - 1 && memcmp((k).p, (lit), sizeof(lit) - 1) == 0)

/* Which of two spellings a field came under: LeanCloud's history uses "patch-timestamp",
 * some answers "patchTimestamp"; the hyphenated one wins when both are there. */
enum { ALIAS_NONE, ALIAS_CAMEL, ALIAS_DASH };

static int item(sc_t *s, imp_item_t *it) {
  s->p++; /* '{' */
  ws(s);
  int pt_from = ALIAS_NONE, ma_from = ALIAS_NONE, mp_from = ALIAS_NONE;
  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return 0;
  }
  for (;;) {
    ws(s);
    imp_str_t k;
    if (s->p >= s->end || *s->p != '"') return fail(s, "an object key is missing");
    if (str(s, 1, &k) < 0) return -1;
    if (s->nul) return fail(s, "U+0000 in an object key"); /* as jansson */
    ws(s);
    if (s->p >= s->end || *s->p != ':') return fail(s, "a ':' is missing");
    s->p++;
    int rc = 0, dash;
    if (KEY(k, "msg-id")) rc = str_field(s, &it->mid);
    else if (KEY(k, "from")) rc = str_field(s, &it->from);
    else if (KEY(k, "data")) rc = str_field(s, &it->data);
    else if (KEY(k, "to")) rc = str_field(s, &it->to);
    else if (KEY(k, "conv-id")) rc = str_field(s, &it->conv_id);
    else if (KEY(k, "timestamp")) it->has_ts = (rc = int_field(s, &it->ts)) == 1;
    else if (KEY(k, "bin")) rc = true_field(s, &it->bin);
    else if (KEY(k, "recall")) rc = true_field(s, &it->recall);
    else if (KEY(k, "recalled")) rc = true_field(s, &it->recalled);
    else if ((dash = KEY(k, "patch-timestamp")) || KEY(k, "patchTimestamp")) {
      int64_t v = 0;
      int got = int_field(s, &v);
      rc = got;
      if (got >= 0 && (dash || pt_from != ALIAS_DASH)) {
        pt_from = dash ? ALIAS_DASH : ALIAS_CAMEL;
        it->patch_ts = got == 1 && v > 0 ? v : 0;
      }
    } else if ((dash = KEY(k, "mention-all")) || KEY(k, "mentionAll")) {
      int t = 0;
      rc = true_field(s, &t);
      if (dash || ma_from != ALIAS_DASH) {
        ma_from = dash ? ALIAS_DASH : ALIAS_CAMEL;
        it->mention_all = t;
      }
    } else if ((dash = KEY(k, "mention-pids")) || KEY(k, "mentionPids")) {
      ws(s);
      char *at = s->p;
      rc = skip(s, 1);
      if (rc == 0 && (dash || mp_from != ALIAS_DASH)) {
        mp_from = dash ? ALIAS_DASH : ALIAS_CAMEL;
        /* a non-empty array, as its text (checked, nothing in it decoded) */
        char *q = at + 1;
        while (q < s->p && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t')) q++;
        int nonempty = *at == '[' && *q != ']';
        it->mention_pids.p = nonempty ? at : NULL;
        it->mention_pids.n = nonempty ? (size_t)(s->p - at) : 0;
      }
    } else {
      rc = skip(s, 1);
    }
    if (rc < 0) return -1;
    ws(s);
    if (s->p < s->end && *s->p == ',') {
      s->p++;
      continue;
    }
    if (s->p < s->end && *s->p == '}') {
      s->p++;
      return 0;
    }
    return fail(s, "a ',' or '}' is missing");
  }
}

imp_items_t *imp_items_scan(char *data, size_t len, int *not_array, char *err, size_t errlen) {
  *not_array = 0;
  if (!data || !len) { /* an empty answer (its buffer may be NULL) */
    *not_array = 1;
    snprintf(err, errlen, "empty");
    return NULL;
  }
  sc_t s = {data, data + len, NULL, 0};
  ws(&s);
  if (s.p >= s.end || *s.p != '[') {
    *not_array = 1; /* nothing changed yet: the caller may look at it as JSON */
    snprintf(err, errlen, "not an array");
    return NULL;
  }
  s.p++;
  imp_items_t *page = xcalloc(1, sizeof *page);
  size_t cap = 0;
  ws(&s);
  int empty = s.p < s.end && *s.p == ']';
  if (empty) s.p++;
  while (!empty) {
    if (page->n == cap) {
      cap = cap ? cap * 2 : 256;
      page->v = xrealloc(page->v, cap * sizeof *page->v);
    }
    imp_item_t *it = &page->v[page->n++];
    memset(it, 0, sizeof *it);
    ws(&s);
    /* an element that is not an object is an item without any field (skipped later) */
    if ((s.p < s.end && *s.p == '{' ? item(&s, it) : skip(&s, 1)) < 0) break;
    ws(&s);
    if (s.p < s.end && *s.p == ',') {
      s.p++;
      continue;
    }
    if (s.p < s.end && *s.p == ']') {
      s.p++;
      break;
    }
    fail(&s, "a ',' or ']' is missing");
    break;
  }
  ws(&s);
  if (!s.err && s.p != s.end) fail(&s, "more after the end of the array");
  if (s.err) {
    snprintf(err, errlen, "%s at byte %zu", s.err, (size_t)(s.p - data));
    imp_items_free(page);
    return NULL;
  }
  page->mem = data;
  return page;
}

static void json_str(json_t *obj, const char *key, imp_str_t *f) {
  json_t *v = json_object_get(obj, key);
  f->p = json_string_value(v);
  f->n = f->p ? json_string_length(v) : 0;
}

imp_items_t *imp_items_from_json(json_t *arr) {
  imp_items_t *page = xcalloc(1, sizeof *page);
  page->json = json_incref(arr);
  page->n = json_array_size(arr);
  page->v = xcalloc(page->n + 1, sizeof *page->v);
  for (size_t i = 0; i < page->n; i++) {
    json_t *o = json_array_get(arr, i);
    imp_item_t *it = &page->v[i];
    it->obj = o;
    json_str(o, "msg-id", &it->mid);
    json_str(o, "from", &it->from);
    json_str(o, "data", &it->data);
    json_str(o, "to", &it->to);
    json_str(o, "conv-id", &it->conv_id);
    json_t *ts = json_object_get(o, "timestamp");
    it->has_ts = json_is_integer(ts);
    it->ts = json_integer_value(ts);
    it->bin = json_is_true(json_object_get(o, "bin"));
    it->recall = json_is_true(json_object_get(o, "recall"));
    it->recalled = json_is_true(json_object_get(o, "recalled"));
    json_t *pt = json_object_get(o, "patch-timestamp");
    if (!pt) pt = json_object_get(o, "patchTimestamp");
    it->patch_ts = json_is_integer(pt) && json_integer_value(pt) > 0 ? json_integer_value(pt) : 0;
    json_t *ma = json_object_get(o, "mention-all");
    if (!ma) ma = json_object_get(o, "mentionAll");
    it->mention_all = json_is_true(ma);
    json_t *mp = json_object_get(o, "mention-pids");
    if (!mp) mp = json_object_get(o, "mentionPids");
    if (json_is_array(mp) && json_array_size(mp)) it->mention_pids_json = mp;
  }
  return page;
}

void imp_items_free(imp_items_t *page) {
  if (!page) return;
  free(page->v);
  free(page->mem);
  json_decref(page->json);
  free(page);
}
