/* store_doc.c — conversation document edits on the writer (see store_doc.h).
 *
 * An attribute update reaches the writer as changed paths with their values (store.h,
 * job_conv_update_t); the writer turns all of one conversation's changes in a batch into
 * nested json_set(…)/json_remove(…) calls on the stored document, so SQLite parses and
 * rewrites it once per statement however many changes it carries. A document SQLite cannot
 * parse (nested deeper than JSON1 allows, from older builds) fails the statement, unless a
 * DOC_REPLACE change replaces it whole. The key segments become SQLite JSON paths here
 * (query.h query_path): the IM layer knows no backend's path language. */
#include "store_doc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

void doc_group_init(doc_group_t *g) { memset(g, 0, sizeof *g); }

static void owned_free(doc_group_t *g) {
  for (size_t i = 0; i < g->nowned; i++) free(g->owned[i]);
  free(g->owned);
  g->owned = NULL;
  g->nowned = 0;
}

void doc_group_free(doc_group_t *g) {
  buf_free(&g->sql);
  free(g->params);
  owned_free(g);
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
  owned_free(g);
  return rc;
}

/* A change SQLite's paths cannot say, applied to the stored document in C: the group so far
 * first, then read, edit with jansson, write back. Rare (a key with '"', '\\' or a control
 * character: label_plain). */
static int doc_edit_c(sqlite3 *db, doc_group_t *g, int64_t conv, const doc_change_t *ch) {
  int rc = doc_group_flush(db, g, conv);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = sqlite3_prepare_v2(db, "SELECT doc FROM conv WHERE id = ?", -1, &st, NULL)) != SQLITE_OK) return rc;
  sqlite3_bind_int64(st, 1, conv);
  json_t *doc = NULL;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(st, 0);
    doc = text ? json_loads(text, 0, NULL) : NULL;
    rc = 0;
  } else if (rc == SQLITE_DONE) { /* no such conversation: nothing to edit */
    sqlite3_finalize(st);
    return 0;
  } else {
    rc = sqlite3_errcode(db);
  }
  sqlite3_finalize(st);
  if (rc) return rc;
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  json_t *cur = doc;
  for (size_t i = 0; i + 1 < ch->depth; i++) {
    json_t *next = json_object_get(cur, ch->path[i]);
    if (!json_is_object(next)) {
      next = json_object();
      json_object_set_new(cur, ch->path[i], next);
    }
    cur = next;
  }
  if (ch->op == DOC_UNSET) {
    json_object_del(cur, ch->path[ch->depth - 1]);
  } else {
    json_t *v = json_loads(ch->value, JSON_DECODE_ANY, NULL);
    json_object_set_new(cur, ch->path[ch->depth - 1], v ? v : json_null());
  }
  char *text = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  if ((rc = sqlite3_prepare_v2(db, "UPDATE conv SET doc = ? WHERE id = ?", -1, &st, NULL)) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, conv);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite3_errcode(db);
    sqlite3_finalize(st);
  }
  free(text);
  return rc;
}

/* Whether SQLite 3.40's json_set writes a key it creates from this path label as the key
 * itself: it copies a label's text into the new key without unescaping, so a key with '"',
 * '\\' or a control character (which the label must escape) would be created as a different
 * key — such changes go through doc_edit_c. */
static int label_plain(const char *seg) {
  for (const unsigned char *p = (const unsigned char *)seg; *p; p++)
    if (*p == '"' || *p == '\\' || *p < 0x20) return 0;
  return 1;
}

/* Adds one change: "doc" becomes json_set(doc, ?, json(?)), or the open call of the same
 * kind takes another pair. The arguments of a call are written after its inner call, so
 * appending at the end keeps the text's '?' order the order of the changes. */
int doc_group_add(sqlite3 *db, doc_group_t *g, int64_t conv, const doc_change_t *ch) {
  int kind = ch->op == DOC_UNSET ? 2 : ch->op == DOC_REPLACE ? 3 : 1;
  if (kind == 3) { /* the whole document: what came before is moot */
    g->sql.len = 0;
    g->nparams = 0;
    owned_free(g);
    buf_append_str(&g->sql, "?");
    group_param(g, ch->value);
    g->calls = g->pairs = g->last = 0;
    return 0;
  }
  if (ch->depth == 0) return SQLITE_MISUSE;
  int plain = 1;
  for (size_t i = 0; i < ch->depth && plain; i++) plain = label_plain(ch->path[i]);
  buf_t path = BUF_INIT;
  if (!plain || query_path(&path, (const char *const *)ch->path, ch->depth) < 0) {
    buf_free(&path);
    return doc_edit_c(db, g, conv, ch);
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
  g->owned = xrealloc(g->owned, (g->nowned + 1) * sizeof *g->owned);
  g->owned[g->nowned++] = xstrdup(buf_cstr(&path));
  buf_free(&path);
  group_param(g, g->owned[g->nowned - 1]);
  if (kind == 1) group_param(g, ch->value);
  g->pairs++;
  return 0;
}
