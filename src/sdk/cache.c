/* cache.c — the local cache: one SQLite file per client (or an in-memory database when no
 * cache_dir is set) holding messages and conversation-query results.
 *
 * History pages are only useful from the cache if they are known to be complete, so each
 * cached message carries two facts: `bp` ("breakpoint": messages older than this one may be
 * missing here) and `first` (nothing older exists on the server). A page fetched from the
 * server is contiguous, so within it only the oldest row may be a breakpoint; the message a
 * page was fetched "before" is contiguous with the page's newest row. Live messages arrive
 * as breakpoints until a page joins them up. Reading "limit messages before X" succeeds only
 * when that walk backwards never crosses a breakpoint: then the cache answers exactly what
 * the server would. Cache failures never fail an operation; they only cost the cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "timeutil.h"

static const char *SCHEMA =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS msgs(mid TEXT PRIMARY KEY, cid TEXT NOT NULL, ts INTEGER NOT NULL,"
    " json TEXT NOT NULL, bp INTEGER NOT NULL DEFAULT 1, first INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS msgs_cid_ts ON msgs(cid, ts, mid);"
    "CREATE TABLE IF NOT EXISTS queries(key TEXT PRIMARY KEY, at INTEGER NOT NULL, json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS convs(id TEXT PRIMARY KEY, json TEXT NOT NULL);";

int cache_open(tern_client_t *c) {
  if (c->db || c->db_failed) return c->db ? 0 : TERN_ESTORE;
  tern_t *t = c->t;
  char path[4096];
  if (t->cache_dir) {
    mkdir(t->cache_dir, 0700);
    /* client ids may hold any character: keep the file name safe */
    char safe[300];
    size_t k = 0;
    for (const char *p = c->id; *p && k + 4 < sizeof safe; p++) {
      unsigned char ch = (unsigned char)*p;
      if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')
        safe[k++] = (char)ch;
      else k += (size_t)snprintf(safe + k, sizeof safe - k, "%%%02X", ch);
    }
    safe[k] = 0;
    snprintf(path, sizeof path, "%s/%s-%s.db", t->cache_dir, t->app_id, safe);
  } else {
    snprintf(path, sizeof path, ":memory:");
  }
  if (sqlite3_open(path, &c->db) != SQLITE_OK) goto fail;
  sqlite3_busy_timeout(c->db, 1000);
  char *err = NULL;
  if (sqlite3_exec(c->db, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
    tlog(t, TERN_LOG_WARN, "cache schema: %s", err ? err : "?");
    sqlite3_free(err);
    goto fail;
  }
  return 0;
fail:
  tlog(t, TERN_LOG_WARN, "cache %s unavailable: %s", path, c->db ? sqlite3_errmsg(c->db) : "open failed");
  sqlite3_close(c->db);
  c->db = NULL;
  c->db_failed = 1;
  return TERN_ESTORE;
}

void cache_close(tern_client_t *c) {
  if (c->db) sqlite3_close(c->db);
  c->db = NULL;
  for (size_t i = 0; i < sizeof c->recent / sizeof c->recent[0]; i++) free(c->recent[i]);
}

static int put_one(tern_client_t *c, const tern_msg_t *m, int bp, int first) {
  if (!m->id || !m->cid) return 0;
  json_t *j = msg_to_json(m);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!text) return TERN_ENOMEM;
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(c->db,
                              "INSERT INTO msgs(mid,cid,ts,json,bp,first) VALUES(?,?,?,?,?,?) "
                              "ON CONFLICT(mid) DO UPDATE SET json=excluded.json, bp=min(bp,excluded.bp), "
                              "first=max(first,excluded.first)",
                              -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, m->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, m->cid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, m->ts);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 5, bp);
    sqlite3_bind_int(st, 6, first);
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  free(text);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

void cache_put_msg(tern_client_t *c, const tern_msg_t *m) {
  if (!c->db || !c->msg_cache) return;
  put_one(c, m, 1, 0);
}

void cache_put_msgs(tern_client_t *c, const char *cid, tern_msg_t **msgs, size_t n, int complete_before,
                    const char *newer_anchor) {
  if (!c->db) return;
  sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
  for (size_t i = 0; i < n; i++) {
    int oldest = i == 0;
    put_one(c, msgs[i], oldest ? !complete_before : 0, oldest && complete_before);
  }
  if (newer_anchor) {
    sqlite3_stmt *st = NULL;
    /* the anchor follows the page directly; with an empty complete page it is the first */
    const char *sql = n ? "UPDATE msgs SET bp=0 WHERE mid=? AND cid=?"
                        : (complete_before ? "UPDATE msgs SET bp=0, first=1 WHERE mid=? AND cid=?" : NULL);
    if (sql && sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
      sqlite3_bind_text(st, 1, newer_anchor, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
      sqlite3_step(st);
    }
    sqlite3_finalize(st);
  }
  sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
}

int cache_get_before(tern_client_t *c, const char *cid, const char *mid, int64_t ts, int limit, int newest_ok,
                     tern_msg_t ***out, size_t *nout) {
  *out = NULL;
  *nout = 0;
  if (!c->db || !c->msg_cache || limit <= 0) return TERN_ECACHEMISS;
  sqlite3_stmt *st = NULL;
  int anchor_bp = 0, anchor_first = 0;
  if (mid) {
    if (sqlite3_prepare_v2(c->db, "SELECT ts, bp, first FROM msgs WHERE mid=? AND cid=?", -1, &st, NULL) != SQLITE_OK)
      return TERN_ECACHEMISS;
    sqlite3_bind_text(st, 1, mid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_ROW) {
      sqlite3_finalize(st);
      return TERN_ECACHEMISS;
    }
    ts = sqlite3_column_int64(st, 0);
    anchor_bp = sqlite3_column_int(st, 1);
    anchor_first = sqlite3_column_int(st, 2);
    sqlite3_finalize(st);
    if (anchor_first) return (*out = calloc(1, sizeof **out)) ? 0 : TERN_ENOMEM; /* nothing older */
    if (anchor_bp) return TERN_ECACHEMISS;
  } else if (!newest_ok) {
    return TERN_ECACHEMISS;
  }
  const char *sql = mid ? "SELECT json, bp, first FROM msgs WHERE cid=?1 AND (ts<?2 OR (ts=?2 AND mid<?3)) "
                          "ORDER BY ts DESC, mid DESC LIMIT ?4"
                        : "SELECT json, bp, first FROM msgs WHERE cid=?1 ORDER BY ts DESC, mid DESC LIMIT ?4";
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return TERN_ECACHEMISS;
  sqlite3_bind_text(st, 1, cid, -1, SQLITE_TRANSIENT);
  if (mid) {
    sqlite3_bind_int64(st, 2, ts);
    sqlite3_bind_text(st, 3, mid, -1, SQLITE_TRANSIENT);
  }
  sqlite3_bind_int(st, 4, limit);
  tern_msg_t **v = calloc((size_t)limit, sizeof *v);
  size_t n = 0;
  int complete = 0, broken = 0;
  while (v && sqlite3_step(st) == SQLITE_ROW) {
    json_t *j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
    tern_msg_t *m = j ? msg_from_json(c->t, j) : NULL;
    json_decref(j);
    if (!m) break;
    v[n++] = m;
    int bp = sqlite3_column_int(st, 1), first = sqlite3_column_int(st, 2);
    if (first) {
      complete = 1;
      break;
    }
    if ((int)n == limit) {
      complete = 1;
      break;
    }
    if (bp) {
      broken = 1;
      break;
    }
  }
  sqlite3_finalize(st);
  if (!v || (mid && (!complete || broken)) || (!mid && n == 0)) {
    for (size_t i = 0; i < n; i++) tern_msg_free(v[i]);
    free(v);
    return TERN_ECACHEMISS;
  }
  for (size_t i = 0; i < n / 2; i++) { /* oldest first */
    tern_msg_t *x = v[i];
    v[i] = v[n - 1 - i];
    v[n - 1 - i] = x;
  }
  *out = v;
  *nout = n;
  return 0;
}

void cache_put_query(tern_client_t *c, const char *key, const char *json) {
  if (!c->db) return;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO queries(key,at,json) VALUES(?,?,?)", -1, &st, NULL) ==
      SQLITE_OK) {
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_ms());
    sqlite3_bind_text(st, 3, json, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
}

char *cache_get_query(tern_client_t *c, const char *key, int max_age_s) {
  if (!c->db) return NULL;
  sqlite3_stmt *st = NULL;
  char *out = NULL;
  if (sqlite3_prepare_v2(c->db, "SELECT json FROM queries WHERE key=? AND at>=?", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, max_age_s < 0 ? 0 : now_ms() - (int64_t)max_age_s * 1000);
    if (sqlite3_step(st) == SQLITE_ROW) out = strdup((const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return out;
}

void cache_put_conv(tern_client_t *c, const tern_conv_t *conv) {
  if (!c->db) return;
  json_t *j = conv_to_json(conv);
  char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!text) return;
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO convs(id,json) VALUES(?,?)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, conv->id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
  }
  sqlite3_finalize(st);
  free(text);
}
