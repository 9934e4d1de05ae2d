/* store_doc.h — a conversation's document changes as few SQL statements as SQLite allows:
 * the writer's side of attribute updates (store_doc.c). Private to the store. */
#ifndef TERN_STORE_DOC_H
#define TERN_STORE_DOC_H

#include <sqlite3.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/* Changes gathered for one statement: `sql` is the document expression built so far. */
typedef struct {
  buf_t sql;
  const char **params; /* the changes' values and owned[] paths, in the order of the '?' in sql */
  size_t nparams, cap;
  char **owned; /* the SQLite JSON paths built from the changes' key segments */
  size_t nowned;
  int calls, pairs, last; /* last: 1 json_set, 2 json_remove, 0 none open */
} doc_group_t;

void doc_group_init(doc_group_t *g);
void doc_group_free(doc_group_t *g);
/* Adds one change of conversation conv; runs the statement so far first when it is full.
 * A key SQLite's paths cannot say (a segment with '"', '\\' or a control character: SQLite
 * 3.40 would create a differently escaped key) is applied at once, after what is gathered, by
 * editing the document with jansson. Returns 0 or an SQLite error
 * code. The change's value must outlive the group. */
int doc_group_add(sqlite3 *db, doc_group_t *g, int64_t conv, const doc_change_t *ch);
/* Runs what is gathered (UPDATE conv SET doc = … WHERE id = conv) and empties the group. */
int doc_group_flush(sqlite3 *db, doc_group_t *g, int64_t conv);

#endif
