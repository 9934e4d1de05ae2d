/* store_doc.c — conversation document edits on the writer (see store_doc.h).
 *
 * An attribute update reaches the writer as changed paths with their values (store.h,
 * job_conv_update_t); the writer turns all of one conversation's changes in a batch into
 * nested json_set(…)/json_remove(…) calls on the stored document, so SQLite parses and
 * rewrites it once per statement however many changes it carries. A document SQLite cannot
 * parse (nested deeper than JSON1 allows, from older builds) fails the statement, unless a
 * "$" change replaces it whole. */
#include "store_doc.h"

#include <stdlib.h>
#include <string.h>

void doc_group_init(doc_group_t *g) { memset(g, 0, sizeof *g); }

void doc_group_free(doc_group_t *g) {
  buf_free(&g->sql);
  free(g->params);
  doc_group_init(g);
}

#define GROUP_CALLS 16 /* nested calls per statement: the parser's stack is small */
#define GROUP_PAIRS 60 /* path/value pairs per call: SQLite takes 127 arguments */

static void group_param(doc_group_t *g, const char *p) {
  if (g->nparams == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 16;
    g->params = xrealloc(g->params, g->cap * sizeof *g->params);
  }
  g->params[g->nparams++] = p;
}

int doc_group_flush(sqlite3 *db, doc_group_t *g, int64_t conv) {
  if (!g->sql.len) return 0;
  buf_t stmt = BUF_INIT;
  buf_printf(&stmt, "UPDATE conv SET doc = %s WHERE id = ?", buf_cstr(&g->sql));
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, buf_cstr(&stmt), -1, &st, NULL);
  buf_free(&stmt);
  if (rc == SQLITE_OK) {
    for (size_t i = 0; i < g->nparams; i++) sqlite3_bind_text(st, (int)i + 1, g->params[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, (int)g->nparams + 1, conv);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite3_errcode(db);
    sqlite3_finalize(st);
  }
  g->sql.len = 0;
  g->nparams = 0;
  g->calls = g->pairs = g->last = 0;
  return rc;
}

/* Adds one change: "doc" becomes json_set(doc, ?, json(?)), or the open call of the same
 * kind takes another pair. The arguments of a call are written after its inner call, so
 * appending at the end keeps the text's '?' order the order of the changes. */
int doc_group_add(sqlite3 *db, doc_group_t *g, int64_t conv, const doc_change_t *ch) {
  int kind = !ch->value ? 2 : strcmp(ch->path, "$") == 0 ? 3 : 1;
  if (kind == 3) { /* the whole document: what came before is moot */
    g->sql.len = 0;
    g->nparams = 0;
    buf_append_str(&g->sql, "?");
    group_param(g, ch->value);
    g->calls = g->pairs = g->last = 0;
    return 0;
  }
  if (g->last != kind || g->pairs == GROUP_PAIRS) {
    if (g->calls == GROUP_CALLS) {
      int rc = doc_group_flush(db, g, conv);
      if (rc) return rc;
    }
    buf_t inner = BUF_INIT;
    buf_append_str(&inner, kind == 1 ? "json_set(" : "json_remove(");
    buf_append_str(&inner, g->sql.len ? buf_cstr(&g->sql) : "doc");
    buf_free(&g->sql);
    g->sql = inner;
    g->calls++;
    g->pairs = 0;
    g->last = kind;
  } else {
    g->sql.len--; /* reopen the call: drop its ')' */
  }
  buf_append_str(&g->sql, kind == 1 ? ", ?, json(?))" : ", ?)");
  group_param(g, ch->path);
  if (kind == 1) group_param(g, ch->value);
  g->pairs++;
  return 0;
}
