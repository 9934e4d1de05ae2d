/* pg_doc.c — attribute updates of a conversation document on the PostgreSQL writer.
 *
 * A job carries its changes as SQLite JSON paths with values (store.h: doc_change_t,
 * written by query_path_segment: $."a"."b", or $.a"b unquoted when the key holds a '"').
 * The writer applies them here to the stored text with SQLite's json_set / json_remove
 * semantics — a missing object on the way is created, a non-object on the way leaves the
 * change out, "$" replaces the whole document — and writes the document back once. The
 * text keeps its keys in their order (jansson preserves it), as SQLite's functions do. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pg_int.h"

/* The next segment of path at *p (after "$"): its key into out (NUL-terminated, may hold
 * any byte but NUL); 0, 1 at the end, -1 malformed. */
static int next_segment(const char **p, buf_t *out) {
  const char *s = *p;
  out->len = 0;
  if (!*s) return 1;
  if (*s != '.') return -1;
  s++;
  int quoted = *s == '"';
  if (quoted) s++;
  while (*s && (quoted ? *s != '"' : *s != '.')) {
    if (*s != '\\') {
      buf_append(out, s++, 1);
      continue;
    }
    s++;
    char c = *s;
    static const char from[] = "\"\\bfnrt", to[] = "\"\\\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
      buf_append(out, &to[hit - from], 1);
      s++;
    } else if (c == 'u' && strlen(s) >= 5) {
      char hex[5] = {s[1], s[2], s[3], s[4], 0};
      char ch = (char)strtol(hex, NULL, 16);
      buf_append(out, &ch, 1);
      s += 5;
    } else {
      return -1;
    }
  }
  if (quoted) {
    if (*s != '"') return -1;
    s++;
  }
  *p = s;
  buf_cstr(out);
  return 0;
}

/* json_set / json_remove of one path on doc (an object). */
static void apply(json_t *doc, const char *path, json_t *value) {
  const char *p = path + 1; /* after '$' */
  buf_t key = BUF_INIT, next = BUF_INIT;
  json_t *at = doc;
  if (next_segment(&p, &key) != 0) goto done;
  for (;;) {
    const char *q = p;
    int last = next_segment(&q, &next);
    if (last < 0) goto done;
    if (last == 1) { /* key is the final segment */
      if (value) json_object_set(at, buf_cstr(&key), value);
      else json_object_del(at, buf_cstr(&key));
      goto done;
    }
    json_t *child = json_object_get(at, buf_cstr(&key));
    if (!child) {
      if (!value) goto done; /* removing below a missing member: nothing */
      child = json_object();
      json_object_set_new(at, buf_cstr(&key), child);
    } else if (!json_is_object(child)) {
      goto done; /* SQLite leaves it */
    }
    at = child;
    p = q;
    buf_t t = key;
    key = next;
    next = t;
  }
done:
  buf_free(&key);
  buf_free(&next);
}

char *pg_doc_apply(const char *text, const doc_change_t *const *changes, size_t n) {
  json_t *doc = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
  for (size_t i = 0; i < n; i++) {
    const doc_change_t *c = changes[i];
    if (strcmp(c->path, "$") == 0) {
      json_t *v = c->value ? json_loads(c->value, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL) : NULL;
      if (json_is_object(v)) {
        json_decref(doc);
        doc = v;
      } else {
        json_decref(v);
      }
      continue;
    }
    if (!json_is_object(doc)) continue;
    json_t *v = NULL;
    if (c->value && !(v = json_loads(c->value, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL))) continue;
    apply(doc, c->path, v);
    json_decref(v);
  }
  char *out = json_is_object(doc) ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return out;
}
