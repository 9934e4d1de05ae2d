/* pg_doc.c — attribute updates of a conversation document on the PostgreSQL writer.
 *
 * A job carries its changes as key segments with values (store.h: doc_change_t): set,
 * unset, or replace the whole document. The writer applies all of one conversation's
 * changes of a round here, to the stored text, and writes the document back once; the text
 * keeps its keys in their order (jansson preserves it), as SQLite's functions do. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

char *pg_doc_apply(const char *text, const doc_change_t *const *changes, size_t n) {
  json_t *doc = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
  for (size_t i = 0; i < n; i++) {
    const doc_change_t *c = changes[i];
    if (c->op == DOC_REPLACE) {
      json_t *v = c->value ? json_loads(c->value, JSON_ALLOW_NUL, NULL) : NULL;
      if (json_is_object(v)) {
        json_decref(doc);
        doc = v;
      } else {
        json_decref(v);
      }
      continue;
    }
    if (!json_is_object(doc) || c->depth == 0) continue;
    /* the objects on the way are there (store.h); one that is not is made, as SQLite's
     * writer does for the keys its paths cannot say (store_doc.c) */
    json_t *cur = doc;
    for (size_t k = 0; k + 1 < c->depth; k++) {
      json_t *next = json_object_get(cur, c->path[k]);
      if (!json_is_object(next)) {
        if (c->op == DOC_UNSET) goto next_change; /* nothing below a missing member to remove */
        next = json_object();
        json_object_set_new(cur, c->path[k], next);
      }
      cur = next;
    }
    if (c->op == DOC_UNSET) {
      json_object_del(cur, c->path[c->depth - 1]);
    } else {
      json_t *v = c->value ? json_loads(c->value, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL) : NULL;
      json_object_set_new(cur, c->path[c->depth - 1], v ? v : json_null());
    }
  next_change:;
  }
  char *out = json_is_object(doc) ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  return out;
}
