/* store_sqlite_import.c — the SQLite primitives of the bulk import (JOB_IMPORT; its rules
 * are store/import.c's, for every backend), and the read the import adds to the store.
 *
 * The statements are the import's own, prepared on the writer's connection by the first
 * job; each primitive steps one of them (import.h says what each does). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "import.h"
#include "log.h"
#include "store_sqlite_int.h"
#include "timeutil.h"

struct store_import {
  sqlite3_stmt *conv_get, *conv_ins, *conv_upd, *unique_owner, *members, *member_ins, *member_del, *role_del,
      *member_count, *last_key, *roles, *role_put, *set_of, *set_ins, *set_del, *ext_get, *ext_ins, *seq_at, *msg_ins,
      *msg_upd, *read_fwd, *ack_fwd, *conv_ext, *inst_get, *inst_clients, *inst_put, *inst_devices_del,
      *inst_device_ins, *badge, *doc_get, *doc_put;
};

#define N_STMTS (sizeof(struct store_import) / sizeof(sqlite3_stmt *))

static const char *const SQL[N_STMTS] = {
    /* conv_get */
    "SELECT id, kind, creator, unique_id, created_at, updated_at, coalesce(lm, 0), coalesce(expire_at, 0), doc"
    " FROM conv WHERE cid = ?1",
    /* conv_ins */
    "INSERT INTO conv (cid, kind, creator, unique_id, created_at, updated_at, lm, expire_at, member_count, doc, imported_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    /* conv_upd: lm only ever grows (messages move it too) */
    "UPDATE conv SET creator = ?2, unique_id = ?3, created_at = ?4, updated_at = ?5,"
    " lm = CASE WHEN ?6 IS NULL THEN lm ELSE max(coalesce(lm, 0), ?6) END, expire_at = ?7, doc = ?8, imported_at = ?9"
    " WHERE id = ?1",
    /* unique_owner */
    "SELECT cid FROM conv WHERE unique_id = ?1",
    /* members */
    "SELECT client FROM member WHERE conv = ?1 ORDER BY client",
    /* member_ins: read and received up to (?4, ?5) */
    "INSERT OR IGNORE INTO member (conv, client, joined_at, read_ts, read_seq, ack_ts, ack_seq)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?5)",
    /* member_del */
    "DELETE FROM member WHERE conv = ?1 AND client = ?2",
    /* role_del */
    "DELETE FROM member_info WHERE conv = ?1 AND client = ?2",
    /* member_count */
    "UPDATE conv SET member_count = (SELECT count(*) FROM member WHERE conv = ?1) WHERE id = ?1",
    /* last_key */
    "SELECT ts, seq FROM msg WHERE conv = ?1 ORDER BY ts DESC, seq DESC LIMIT 1",
    /* roles */
    "SELECT client, role FROM member_info WHERE conv = ?1 ORDER BY client",
    /* role_put */
    "INSERT INTO member_info (conv, client, role, info_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
    " ON CONFLICT (conv, client) DO UPDATE SET role = ?3, updated_at = ?5",
    /* set_of: shut-ups (kind 1) only the permanent ones */
    "SELECT client FROM conv_set WHERE conv = ?1 AND kind = ?2 AND (?2 <> 1 OR expire_at IS NULL) ORDER BY client",
    /* set_ins: over a temporary shut-up it makes it permanent */
    "INSERT INTO conv_set (conv, kind, client, created_at, expire_at) VALUES (?1, ?2, ?3, ?4, NULL)"
    " ON CONFLICT (conv, kind, client) DO UPDATE SET expire_at = NULL",
    /* set_del */
    "DELETE FROM conv_set WHERE conv = ?1 AND kind = ?2 AND client = ?3",
    /* ext_get: the message may have been deleted since (the mapping stays: a delete stands) */
    "SELECT e.ts, e.seq, coalesce(m.patch_ts, 0), m.ts IS NOT NULL FROM msg_ext e"
    " LEFT JOIN msg m ON m.conv = e.conv AND m.ts = e.ts AND m.seq = e.seq WHERE e.conv = ?1 AND e.mid = ?2",
    /* ext_ins */
    "INSERT INTO msg_ext (conv, mid, ts, seq) VALUES (?1, ?2, ?3, ?4)",
    /* seq_at */
    "SELECT coalesce(max(seq), 0) FROM msg WHERE conv = ?1 AND ts = ?2",
    /* msg_ins */
    "INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    /* msg_upd */
    "UPDATE msg SET data = ?4, flags = ?5, mentions = ?6, lctype = ?7, patch_ts = ?8"
    " WHERE conv = ?1 AND ts = ?2 AND seq = ?3",
    /* read_fwd, ack_fwd: only ever forward */
    "UPDATE member SET read_ts = ?2, read_seq = ?3 WHERE conv = ?1 AND (read_ts, read_seq) < (?2, ?3)",
    "UPDATE member SET ack_ts = ?2, ack_seq = ?3 WHERE conv = ?1 AND (ack_ts, ack_seq) < (?2, ?3)",
    /* conv_ext */
    "UPDATE conv SET ext_ids = 1, lm = max(coalesce(lm, 0), ?2), imported_at = ?3 WHERE id = ?1",
    /* inst_get */
    "SELECT device_type, token, body, created_at, updated_at FROM installation WHERE id = ?1",
    /* inst_clients */
    "SELECT client FROM device WHERE installation_id = ?1 ORDER BY client",
    /* inst_put: REPLACE also evicts an older installation of the same token */
    "INSERT OR REPLACE INTO installation (id, device_type, token, body, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* inst_devices_del */
    "DELETE FROM device WHERE installation_id = ?1",
    /* inst_device_ins */
    "INSERT INTO device (client, token, type, installation_id, badge, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, coalesce((SELECT max(badge) FROM device WHERE token = ?2), 0), ?5)"
    " ON CONFLICT (client, token) DO UPDATE SET type = ?3, installation_id = ?4, updated_at = ?5",
    /* badge */
    "UPDATE device SET badge = ?2 WHERE token = ?1",
    /* doc_get, doc_put */
    "SELECT doc FROM conv WHERE id = ?1",
    "UPDATE conv SET doc = ?2, imported_at = ?3 WHERE id = ?1",
};

void store_import_free(store_import_t *imp) {
  if (!imp) return;
  sqlite3_stmt **v = (sqlite3_stmt **)imp;
  for (size_t i = 0; i < N_STMTS; i++) sqlite3_finalize(v[i]);
  free(imp);
}

static store_import_t *imp_new(sqlite3 *db) {
  store_import_t *imp = xcalloc(1, sizeof *imp);
  sqlite3_stmt **v = (sqlite3_stmt **)imp;
  for (size_t i = 0; i < N_STMTS; i++) {
    if (sqlite3_prepare_v3(db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &v[i], NULL) != SQLITE_OK) {
      log_at(LOG_ERROR, "import: sqlite prepare failed: %s: %s", sqlite3_errmsg(db), SQL[i]);
      store_import_free(imp);
      return NULL;
    }
  }
  return imp;
}

/* ---------------------------------------------------------------- primitives (import.h) */

typedef struct {
  sqlite3 *db;
  store_import_t *st;
} sq_imp_t;

#define ST(b) (((sq_imp_t *)(b))->st)

/* Binds st's parameters from ?1 by types: 't' text (NULL: NULL), 'i' int64_t, 'n' int64_t
 * with 0 as NULL. The texts must outlive the statement's step. */
static sqlite3_stmt *bind(sqlite3_stmt *st, const char *types, ...) {
  va_list ap;
  va_start(ap, types);
  for (int i = 0; types[i]; i++) {
    if (types[i] == 't') {
      const char *s = va_arg(ap, const char *);
      if (s) sqlite3_bind_text(st, i + 1, s, -1, SQLITE_STATIC);
      else sqlite3_bind_null(st, i + 1);
    } else {
      int64_t v = va_arg(ap, int64_t);
      if (types[i] == 'n' && !v) sqlite3_bind_null(st, i + 1);
      else sqlite3_bind_int64(st, i + 1, v);
    }
  }
  va_end(ap);
  return st;
}

/* Steps a write statement to its end and resets it (bindings stay until rebound). */
static int done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

/* Steps a read statement once: 0 or the error; *found when there is a row, which the
 * caller reads and then resets (without one the statement is reset here). */
static int row(sqlite3_stmt *st, int *found) {
  int rc = sqlite3_step(st);
  *found = rc == SQLITE_ROW;
  if (rc != SQLITE_ROW) sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? xstrdup((const char *)t) : NULL;
}

/* Column 0 (and 1 into out2) of every row of a bound statement (reset after). */
static int lists(sqlite3_stmt *st, imp_list_t *out, imp_list_t *out2) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    imp_list_add(out, (const char *)sqlite3_column_text(st, 0));
    if (out2) imp_list_add(out2, (const char *)sqlite3_column_text(st, 1));
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

static int conv_get(void *b, const char *cid, imp_conv_t *c) {
  sqlite3_stmt *g = bind(ST(b)->conv_get, "t", cid);
  int rc = row(g, &c->found);
  if (rc || !c->found) return rc;
  c->id = sqlite3_column_int64(g, 0);
  c->kind = sqlite3_column_int(g, 1);
  c->creator = col_dup(g, 2);
  c->unique_id = col_dup(g, 3);
  c->created_at = sqlite3_column_int64(g, 4);
  c->updated_at = sqlite3_column_int64(g, 5);
  c->lm = sqlite3_column_int64(g, 6);
  c->expire_at = sqlite3_column_int64(g, 7);
  c->doc = col_dup(g, 8);
  sqlite3_reset(g);
  return 0;
}

static int unique_owner(void *b, const char *unique_id, char **cid) {
  sqlite3_stmt *st = bind(ST(b)->unique_owner, "t", unique_id);
  int found, rc = row(st, &found);
  if (found) {
    *cid = col_dup(st, 0);
    sqlite3_reset(st);
  }
  return rc;
}

static int conv_insert(void *b, const conv_row_t *r, const char *unique_id, int64_t lm, int64_t member_count,
                       const char *doc, int64_t now, int64_t *id) {
  int rc = done(bind(ST(b)->conv_ins, "tittiinniti", r->cid, (int64_t)r->kind, r->creator, unique_id, r->created_at,
                     r->updated_at, lm, r->expire_at, member_count, doc, now));
  *id = sqlite3_last_insert_rowid(((sq_imp_t *)b)->db);
  return rc;
}

static int conv_update(void *b, int64_t id, const conv_row_t *r, const char *unique_id, int64_t lm, const char *doc,
                       int64_t now) {
  return done(bind(ST(b)->conv_upd, "ittiinnti", id, r->creator, unique_id, r->created_at, r->updated_at, lm,
                   r->expire_at, doc, now));
}

static int members(void *b, int64_t conv, imp_list_t *out) { return lists(bind(ST(b)->members, "i", conv), out, NULL); }

static int member_add(void *b, int64_t conv, const char *client, int64_t joined_at, int64_t ts, int64_t seq) {
  return done(bind(ST(b)->member_ins, "itiii", conv, client, joined_at, ts, seq));
}

static int member_del(void *b, int64_t conv, const char *client) {
  return done(bind(ST(b)->member_del, "it", conv, client));
}

static int member_count(void *b, int64_t conv) { return done(bind(ST(b)->member_count, "i", conv)); }

static int last_key(void *b, int64_t conv, int64_t *ts, int64_t *seq) {
  sqlite3_stmt *st = bind(ST(b)->last_key, "i", conv);
  int found, rc = row(st, &found);
  *ts = found ? sqlite3_column_int64(st, 0) : 0;
  *seq = found ? sqlite3_column_int64(st, 1) : 0;
  if (found) sqlite3_reset(st);
  return rc;
}

static int roles(void *b, int64_t conv, imp_list_t *clients, imp_list_t *roles_out) {
  return lists(bind(ST(b)->roles, "i", conv), clients, roles_out);
}

static int role_put(void *b, int64_t conv, const char *client, const char *role, const char *info_id, int64_t now) {
  return done(bind(ST(b)->role_put, "ittti", conv, client, role, info_id, now));
}

static int role_del(void *b, int64_t conv, const char *client) {
  return done(bind(ST(b)->role_del, "it", conv, client));
}

static int set_of(void *b, int64_t conv, int set, imp_list_t *out) {
  return lists(bind(ST(b)->set_of, "ii", conv, (int64_t)set), out, NULL);
}

static int set_add(void *b, int64_t conv, int set, const char *client, int64_t now) {
  return done(bind(ST(b)->set_ins, "iiti", conv, (int64_t)set, client, now));
}

static int set_del(void *b, int64_t conv, int set, const char *client) {
  return done(bind(ST(b)->set_del, "iit", conv, (int64_t)set, client));
}

static int doc_get(void *b, int64_t conv, int *found, char **doc) {
  sqlite3_stmt *st = bind(ST(b)->doc_get, "i", conv);
  int rc = row(st, found);
  if (*found) {
    *doc = col_dup(st, 0);
    sqlite3_reset(st);
  }
  return rc;
}

static int doc_put(void *b, int64_t conv, const char *doc, int64_t now) {
  return done(bind(ST(b)->doc_put, "iti", conv, doc, now));
}

static int ext_get(void *b, int64_t conv, const char *mid, imp_ext_t *e) {
  sqlite3_stmt *g = bind(ST(b)->ext_get, "it", conv, mid);
  int rc = row(g, &e->found);
  if (!e->found) return rc;
  e->ts = sqlite3_column_int64(g, 0);
  e->seq = sqlite3_column_int64(g, 1);
  e->patch_ts = sqlite3_column_int64(g, 2);
  e->present = sqlite3_column_int(g, 3);
  sqlite3_reset(g);
  return 0;
}

static int ext_add(void *b, int64_t conv, const char *mid, int64_t ts, int64_t seq) {
  return done(bind(ST(b)->ext_ins, "itii", conv, mid, ts, seq));
}

static int max_seq_at(void *b, int64_t conv, int64_t ts, int64_t *seq) {
  sqlite3_stmt *st = bind(ST(b)->seq_at, "ii", conv, ts);
  int found, rc = row(st, &found);
  *seq = found ? sqlite3_column_int64(st, 0) : 0;
  if (found) sqlite3_reset(st);
  return rc;
}

/* data, flags, mentions and lctype of op at parameters from i */
static void bind_content(sqlite3_stmt *st, const import_op_t *op, int i) {
  sqlite3_bind_blob(st, i, op->data ? (const void *)op->data : "", (int)op->len, SQLITE_STATIC);
  sqlite3_bind_int(st, i + 1, op->flags);
  if (op->mentions) sqlite3_bind_text(st, i + 2, op->mentions, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i + 2);
  if (op->has_lctype) sqlite3_bind_int(st, i + 3, op->lctype);
  else sqlite3_bind_null(st, i + 3);
}

static int msg_insert(void *b, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op, int *taken) {
  sqlite3_stmt *ins = bind(ST(b)->msg_ins, "iiitt", conv, ts, seq, op->mid, op->sender);
  bind_content(ins, op, 6);
  sqlite3_bind_int64(ins, 10, op->patch_ts);
  int rc = done(ins);
  sqlite3_clear_bindings(ins);
  *taken = rc == SQLITE_CONSTRAINT_PRIMARYKEY;
  return *taken ? 0 : rc;
}

static int msg_update(void *b, int64_t conv, int64_t ts, int64_t seq, const import_op_t *op) {
  sqlite3_stmt *u = bind(ST(b)->msg_upd, "iii", conv, ts, seq);
  bind_content(u, op, 4);
  sqlite3_bind_int64(u, 8, op->patch_ts);
  int rc = done(u);
  sqlite3_clear_bindings(u);
  return rc;
}

static int inst_get(void *b, const char *id, imp_inst_t *in) {
  sqlite3_stmt *g = bind(ST(b)->inst_get, "t", id);
  int rc = row(g, &in->found);
  if (!in->found) return rc;
  in->device_type = col_dup(g, 0);
  in->token = col_dup(g, 1);
  in->body = col_dup(g, 2);
  in->created_at = sqlite3_column_int64(g, 3);
  in->updated_at = sqlite3_column_int64(g, 4);
  sqlite3_reset(g);
  return 0;
}

static int inst_clients(void *b, const char *id, imp_list_t *out) {
  return lists(bind(ST(b)->inst_clients, "t", id), out, NULL);
}

static int inst_devices_del(void *b, const char *id) { return done(bind(ST(b)->inst_devices_del, "t", id)); }

/* INSERT OR REPLACE: also evicts an older installation of the same token */
static int inst_put(void *b, const job_installation_t *in) {
  return done(bind(ST(b)->inst_put, "ttttii", in->id, in->device_type, in->token, in->body ? in->body : "{}",
                   in->created_at, in->updated_at));
}

static int inst_device_add(void *b, const job_installation_t *in, const char *client) {
  return done(bind(ST(b)->inst_device_ins, "tttti", client, in->token, in->device_type, in->id, in->updated_at));
}

static int badge(void *b, const char *token, int64_t n) { return done(bind(ST(b)->badge, "ti", token, n)); }

/* members read and received up to the newest imported key, and the ext_ids flag */
static int finish(void *b, int64_t conv, int64_t ts, int64_t seq) {
  int rc = done(bind(ST(b)->read_fwd, "iii", conv, ts, seq));
  if (!rc) rc = done(bind(ST(b)->ack_fwd, "iii", conv, ts, seq));
  if (!rc) rc = done(bind(ST(b)->conv_ext, "iii", conv, ts, now_ms()));
  return rc;
}

static const import_backend_t SQ_IMPORT = IMPORT_BACKEND(finish);

int store_import_run(sqlite3 *db, store_import_t **pimp, job_import_t *j) {
  if (!*pimp && !(*pimp = imp_new(db))) return SQLITE_ERROR;
  sq_imp_t b = {db, *pimp};
  int rc = import_apply(&SQ_IMPORT, &b, j);
  if (rc) log_at(LOG_ERROR, "import: %s", sqlite3_errmsg(db));
  return rc;
}

/* ---------------------------------------------------------------- reads */

int sq_msg_ext_find(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq) {
  sqlite3_stmt *st;
  /* no index on mid alone (it would tax every imported message): a scan, off the loop */
  if (sqlite3_prepare_v2(store_reader_db(r), "SELECT ts, seq FROM msg_ext WHERE mid = ?1 LIMIT 1", -1, &st, NULL) !=
      SQLITE_OK)
    return TERN_ESTORE;
  sqlite3_bind_text(st, 1, mid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *ts = sqlite3_column_int64(st, 0);
    *seq = sqlite3_column_int64(st, 1);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}
