/* store_sqlite_import.c — the bulk import's writes (JOB_IMPORT), and the reads that the
 * import and the LeanCloud-shaped class endpoints (rest_classes.c) add to the SQLite store.
 *
 * One job is one request body of POST /1.2/import/records (docs/migrate-api.md): up to
 * thousands of conversation, list, message and installation records, applied in order in
 * the writer's batch transaction — so 5,000 messages cost one commit, not 5,000. Every
 * record is compared with what is stored and written only when it differs, which makes a
 * replayed body report its lines unchanged. The statements are the import's own, prepared
 * on the writer's connection by the first job.
 *
 * Imported messages keep the ids they had (LeanCloud's are 22 characters like tern's, but
 * do not encode a key), so each one also gets a row in msg_ext (conv, mid) → (ts, seq), and
 * its conversation the ext_ids flag that tells msg_key_resolve (msgid.c) to look there.
 * Members have read and received everything imported: LeanCloud's API cannot export read
 * positions, and a switch that made every old message unread would be worse. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
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

/* ---------------------------------------------------------------- helpers */

typedef struct {
  sqlite3 *db;
  store_import_t *st;
  job_import_t *j;
  size_t touched_cap;
  /* the last conversation looked up: a body's messages mostly come one conversation at a time */
  char *memo_cid;
  int64_t memo_id;
  int memo_kind;
} ctx_t;

/* Steps a write statement to its end and resets it (bindings stay until rebound). */
static int done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, i);
}

static void bind_int_or_null(sqlite3_stmt *st, int i, int64_t v) {
  if (v) sqlite3_bind_int64(st, i, v);
  else sqlite3_bind_null(st, i);
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

typedef struct {
  char **v;
  size_t n;
} list_t;

static void list_free(list_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

/* Column 0 of every row of a bound statement (reset after). */
static int list_read(sqlite3_stmt *st, list_t *out) {
  size_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == cap) {
      cap = cap ? cap * 2 : 16;
      out->v = xrealloc(out->v, cap * sizeof(char *));
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    out->v[out->n++] = xstrdup(t ? (const char *)t : "");
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : rc;
}

static int in_sorted(char *const *v, size_t n, const char *s) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(v[mid], s);
    if (c == 0) return 1;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

static int lists_equal(char *const *a, size_t na, char *const *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return 1;
}

/* The conversation's row id and kind; *id 0 when there is none. */
static int conv_lookup(ctx_t *x, const char *cid, int64_t *id, int *kind) {
  if (x->memo_cid && strcmp(x->memo_cid, cid) == 0) {
    *id = x->memo_id;
    *kind = x->memo_kind;
    return 0;
  }
  sqlite3_stmt *st = x->st->conv_get;
  sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  *id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  *kind = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  free(x->memo_cid);
  x->memo_cid = xstrdup(cid);
  x->memo_id = *id;
  x->memo_kind = *kind;
  return 0;
}

static void skip(import_op_t *op, const char *why) {
  op->outcome = IMP_SKIPPED;
  op->reason = why;
}

/* The newest key of the conversation: where members that join now start reading. */
static void last_key(ctx_t *x, int64_t conv, int64_t *ts, int64_t *seq) {
  sqlite3_stmt *st = x->st->last_key;
  sqlite3_bind_int64(st, 1, conv);
  *ts = *seq = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    *ts = sqlite3_column_int64(st, 0);
    *seq = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
}

/* Adds and removes members so that conv's are exactly want (add_only: only adds).
 * *changed is set when anything moved. */
static int members_sync(ctx_t *x, int64_t conv, char *const *want, size_t n, int add_only, int64_t joined_at,
                        int *changed) {
  store_import_t *st = x->st;
  list_t have = {0};
  sqlite3_bind_int64(st->members, 1, conv);
  int rc = list_read(st->members, &have);
  int64_t ts = 0, seq = 0;
  int have_key = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    if (in_sorted(have.v, have.n, want[i])) continue;
    if (!have_key) {
      last_key(x, conv, &ts, &seq);
      have_key = 1;
    }
    sqlite3_bind_int64(st->member_ins, 1, conv);
    sqlite3_bind_text(st->member_ins, 2, want[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->member_ins, 3, joined_at);
    sqlite3_bind_int64(st->member_ins, 4, ts);
    sqlite3_bind_int64(st->member_ins, 5, seq);
    rc = done(st->member_ins);
    *changed = 1;
  }
  for (size_t i = 0; !rc && !add_only && i < have.n; i++) {
    if (in_sorted(want, n, have.v[i])) continue;
    sqlite3_stmt *del[2] = {st->role_del, st->member_del}; /* a member who leaves loses its role */
    for (int k = 0; k < 2 && !rc; k++) {
      sqlite3_bind_int64(del[k], 1, conv);
      sqlite3_bind_text(del[k], 2, have.v[i], -1, SQLITE_STATIC);
      rc = done(del[k]);
    }
    *changed = 1;
  }
  list_free(&have);
  if (!rc && *changed) {
    sqlite3_bind_int64(st->member_count, 1, conv);
    rc = done(st->member_count);
  }
  return rc;
}

/* ---------------------------------------------------------------- records */

/* The unique index key the conversation may have: none when another conversation holds it
 * (two imported unique conversations with the same members now: the first keeps it). */
static int unique_key(ctx_t *x, const char *cid, const char *want, const char **out) {
  *out = want;
  if (!want) return 0;
  sqlite3_stmt *st = x->st->unique_owner;
  sqlite3_bind_text(st, 1, want, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), cid) != 0) {
    log_at(LOG_WARN, "import: unique conversation %s has the members of %s, which keeps the unique lookup", cid,
           (const char *)sqlite3_column_text(st, 0));
    *out = NULL;
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : rc;
}

static int docs_equal(const char *a, const char *b) {
  if (!a || !b) return a == b;
  if (strcmp(a, b) == 0) return 1;
  json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
  int eq = ja && jb && json_equal(ja, jb);
  json_decref(ja);
  json_decref(jb);
  return eq;
}

static int import_conv(ctx_t *x, import_op_t *op) {
  store_import_t *st = x->st;
  conv_row_t *r = op->conv;
  int members = r->kind == CONV_NORMAL || r->kind == CONV_TEMP;
  const char *ukey;
  int rc = unique_key(x, r->cid, r->unique_id, &ukey);
  if (rc) return rc;
  sqlite3_stmt *g = st->conv_get;
  sqlite3_bind_text(g, 1, r->cid, -1, SQLITE_STATIC);
  rc = sqlite3_step(g);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(g);
    if (rc != SQLITE_DONE) return rc;
    int64_t now = now_ms(); /* the record gave no times: the import's */
    if (!r->created_at) r->created_at = now;
    if (!r->updated_at) r->updated_at = now;
    sqlite3_stmt *ins = st->conv_ins;
    sqlite3_bind_text(ins, 1, r->cid, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 2, r->kind);
    bind_text_or_null(ins, 3, r->creator);
    bind_text_or_null(ins, 4, ukey);
    sqlite3_bind_int64(ins, 5, r->created_at);
    sqlite3_bind_int64(ins, 6, r->updated_at);
    bind_int_or_null(ins, 7, op->lm);
    bind_int_or_null(ins, 8, r->expire_at);
    sqlite3_bind_int64(ins, 9, members ? (int64_t)r->nmembers : 0);
    sqlite3_bind_text(ins, 10, op->doc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 11, now_ms());
    if ((rc = done(ins))) return rc;
    int64_t id = sqlite3_last_insert_rowid(x->db);
    for (size_t i = 0; members && i < r->nmembers; i++) {
      sqlite3_bind_int64(st->member_ins, 1, id);
      sqlite3_bind_text(st->member_ins, 2, r->members[i], -1, SQLITE_STATIC);
      sqlite3_bind_int64(st->member_ins, 3, r->created_at);
      sqlite3_bind_int64(st->member_ins, 4, 0);
      sqlite3_bind_int64(st->member_ins, 5, 0);
      if ((rc = done(st->member_ins))) return rc;
    }
    free(x->memo_cid);
    x->memo_cid = xstrdup(r->cid);
    x->memo_id = id;
    x->memo_kind = r->kind;
    op->outcome = IMP_APPLIED;
    return 0;
  }
  int64_t id = sqlite3_column_int64(g, 0);
  int kind = sqlite3_column_int(g, 1);
  if (!r->created_at) r->created_at = sqlite3_column_int64(g, 4); /* the record gave none: as stored */
  if (!r->updated_at) r->updated_at = sqlite3_column_int64(g, 5);
  const char *creator = (const char *)sqlite3_column_text(g, 2), *uid = (const char *)sqlite3_column_text(g, 3);
  int same = str_eq(creator, r->creator) && str_eq(uid, ukey) && sqlite3_column_int64(g, 4) == r->created_at &&
             sqlite3_column_int64(g, 5) == r->updated_at && op->lm <= sqlite3_column_int64(g, 6) &&
             sqlite3_column_int64(g, 7) == r->expire_at && docs_equal((const char *)sqlite3_column_text(g, 8), op->doc);
  sqlite3_reset(g);
  if (kind != r->kind) {
    skip(op, "the conversation exists as another kind (normal, chat room, service, temporary)");
    return 0;
  }
  int changed = !same;
  if (changed) {
    sqlite3_stmt *u = st->conv_upd;
    sqlite3_bind_int64(u, 1, id);
    bind_text_or_null(u, 2, r->creator);
    bind_text_or_null(u, 3, ukey);
    sqlite3_bind_int64(u, 4, r->created_at);
    sqlite3_bind_int64(u, 5, r->updated_at);
    bind_int_or_null(u, 6, op->lm);
    bind_int_or_null(u, 7, r->expire_at);
    sqlite3_bind_text(u, 8, op->doc, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 9, now_ms());
    if ((rc = done(u))) return rc;
  }
  if (members && (rc = members_sync(x, id, r->members, r->nmembers, 0, now_ms(), &changed))) return rc;
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return 0;
}

/* A role per client (sorted by client): the member_info rows become exactly these. */
static int import_roles(ctx_t *x, import_op_t *op, int64_t conv) {
  store_import_t *st = x->st;
  list_t have = {0}, roles = {0};
  sqlite3_bind_int64(st->roles, 1, conv);
  int rc, changed = 0;
  size_t cap = 0;
  while ((rc = sqlite3_step(st->roles)) == SQLITE_ROW) {
    if (have.n == cap) {
      cap = cap ? cap * 2 : 8;
      have.v = xrealloc(have.v, cap * sizeof(char *));
      roles.v = xrealloc(roles.v, cap * sizeof(char *));
    }
    have.v[have.n++] = xstrdup((const char *)sqlite3_column_text(st->roles, 0));
    roles.v[roles.n++] = xstrdup((const char *)sqlite3_column_text(st->roles, 1));
  }
  sqlite3_reset(st->roles);
  rc = rc == SQLITE_DONE ? 0 : rc;
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++) {
    size_t k = 0;
    while (k < have.n && strcmp(have.v[k], op->clients[i]) != 0) k++;
    if (k < have.n && strcmp(roles.v[k], op->roles[i]) == 0) continue;
    uint8_t rnd[12];
    char info_id[25];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, info_id);
    sqlite3_bind_int64(st->role_put, 1, conv);
    sqlite3_bind_text(st->role_put, 2, op->clients[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(st->role_put, 3, op->roles[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(st->role_put, 4, info_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st->role_put, 5, now);
    rc = done(st->role_put);
    changed = 1;
  }
  for (size_t k = 0; !rc && k < have.n; k++) {
    if (in_sorted(op->clients, op->n, have.v[k])) continue;
    sqlite3_bind_int64(st->role_del, 1, conv);
    sqlite3_bind_text(st->role_del, 2, have.v[k], -1, SQLITE_STATIC);
    rc = done(st->role_del);
    changed = 1;
  }
  list_free(&have);
  list_free(&roles);
  op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
  return rc;
}

/* The permanent shut-ups (set 1) or the blacklist (set 2) become exactly op->clients. */
static int import_set(ctx_t *x, import_op_t *op, int64_t conv, int set) {
  store_import_t *st = x->st;
  list_t have = {0};
  sqlite3_bind_int64(st->set_of, 1, conv);
  sqlite3_bind_int(st->set_of, 2, set);
  int rc = list_read(st->set_of, &have);
  if (rc) return rc;
  if (lists_equal(have.v, have.n, op->clients, op->n)) {
    list_free(&have);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  int64_t now = now_ms();
  for (size_t i = 0; !rc && i < op->n; i++) {
    if (in_sorted(have.v, have.n, op->clients[i])) continue;
    sqlite3_bind_int64(st->set_ins, 1, conv);
    sqlite3_bind_int(st->set_ins, 2, set);
    sqlite3_bind_text(st->set_ins, 3, op->clients[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->set_ins, 4, now);
    rc = done(st->set_ins);
  }
  for (size_t k = 0; !rc && k < have.n; k++) {
    if (in_sorted(op->clients, op->n, have.v[k])) continue;
    sqlite3_bind_int64(st->set_del, 1, conv);
    sqlite3_bind_int(st->set_del, 2, set);
    sqlite3_bind_text(st->set_del, 3, have.v[k], -1, SQLITE_STATIC);
    rc = done(st->set_del);
  }
  list_free(&have);
  op->outcome = IMP_APPLIED;
  return rc;
}

/* The document's mu (who muted offline push) becomes op->clients (sorted). */
static int import_mutes(ctx_t *x, import_op_t *op, int64_t conv) {
  store_import_t *st = x->st;
  sqlite3_bind_int64(st->doc_get, 1, conv);
  int rc = sqlite3_step(st->doc_get);
  json_t *doc = rc == SQLITE_ROW ? json_loads((const char *)sqlite3_column_text(st->doc_get, 0), 0, NULL) : NULL;
  sqlite3_reset(st->doc_get);
  if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? 0 : rc;
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  list_t have = {0};
  json_t *mu = json_object_get(doc, "mu");
  have.v = xcalloc(json_array_size(mu) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(mu); i++)
    if (json_is_string(json_array_get(mu, i))) have.v[have.n++] = xstrdup(json_string_value(json_array_get(mu, i)));
  for (size_t i = 1; i < have.n; i++) /* sorted, to compare with the record's */
    for (size_t k = i; k > 0 && strcmp(have.v[k - 1], have.v[k]) > 0; k--) {
      char *t = have.v[k];
      have.v[k] = have.v[k - 1];
      have.v[k - 1] = t;
    }
  int same = json_is_array(mu) && have.n == json_array_size(mu) && lists_equal(have.v, have.n, op->clients, op->n);
  list_free(&have);
  if (same) {
    json_decref(doc);
    op->outcome = IMP_UNCHANGED;
    return 0;
  }
  json_t *a = json_array();
  for (size_t i = 0; i < op->n; i++) json_array_append_new(a, json_string(op->clients[i]));
  json_object_set_new(doc, "mu", a);
  char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(doc);
  sqlite3_bind_int64(st->doc_put, 1, conv);
  sqlite3_bind_text(st->doc_put, 2, text, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st->doc_put, 3, now_ms());
  rc = done(st->doc_put);
  free(text);
  if (!rc) op->outcome = IMP_APPLIED;
  return rc;
}

static import_conv_t *touched(ctx_t *x, int64_t conv, const char *cid) {
  job_import_t *j = x->j;
  for (size_t i = j->ntouched; i-- > 0;)
    if (j->touched[i].conv == conv) return &j->touched[i];
  if (j->ntouched == x->touched_cap) {
    x->touched_cap = x->touched_cap ? x->touched_cap * 2 : 8;
    j->touched = xrealloc(j->touched, x->touched_cap * sizeof *j->touched);
  }
  import_conv_t *t = &j->touched[j->ntouched++];
  memset(t, 0, sizeof *t);
  t->conv = conv;
  t->cid = xstrdup(cid);
  return t;
}

static int next_seq_at(ctx_t *x, int64_t conv, int64_t ts, int64_t *seq) {
  sqlite3_stmt *st = x->st->seq_at;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int64(st, 2, ts);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *seq = sqlite3_column_int64(st, 0) + 1;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc;
}

static void bind_content(sqlite3_stmt *st, const import_op_t *op, int data, int flags, int mentions, int lctype) {
  sqlite3_bind_blob(st, data, op->data ? (const void *)op->data : "", (int)op->len, SQLITE_STATIC);
  sqlite3_bind_int(st, flags, op->flags);
  bind_text_or_null(st, mentions, op->mentions);
  if (op->has_lctype) sqlite3_bind_int(st, lctype, op->lctype);
  else sqlite3_bind_null(st, lctype);
}

static int import_msg(ctx_t *x, import_op_t *op, int64_t conv) {
  store_import_t *st = x->st;
  sqlite3_stmt *g = st->ext_get;
  sqlite3_bind_int64(g, 1, conv);
  sqlite3_bind_text(g, 2, op->mid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(g);
  if (rc == SQLITE_ROW) { /* known: only a newer edit or recall changes it */
    int64_t ts = sqlite3_column_int64(g, 0), seq = sqlite3_column_int64(g, 1), patch_ts = sqlite3_column_int64(g, 2);
    int present = sqlite3_column_int(g, 3);
    sqlite3_reset(g);
    if (!present || op->patch_ts <= patch_ts) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
    sqlite3_stmt *u = st->msg_upd;
    sqlite3_bind_int64(u, 1, conv);
    sqlite3_bind_int64(u, 2, ts);
    sqlite3_bind_int64(u, 3, seq);
    bind_content(u, op, 4, 5, 6, 7);
    sqlite3_bind_int64(u, 8, op->patch_ts);
    rc = done(u);
    sqlite3_clear_bindings(u);
    if (!rc) op->outcome = IMP_APPLIED;
    return rc;
  }
  sqlite3_reset(g);
  if (rc != SQLITE_DONE) return rc;
  int64_t seq = op->seq;
  if (!seq && (rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  sqlite3_stmt *ins = st->msg_ins;
  for (int attempt = 0;; attempt++) {
    sqlite3_bind_int64(ins, 1, conv);
    sqlite3_bind_int64(ins, 2, op->ts);
    sqlite3_bind_int64(ins, 3, seq);
    sqlite3_bind_text(ins, 4, op->mid, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, op->sender, -1, SQLITE_STATIC);
    bind_content(ins, op, 6, 7, 8, 9);
    sqlite3_bind_int64(ins, 10, op->patch_ts);
    rc = done(ins);
    sqlite3_clear_bindings(ins);
    /* The key the worker reserved can be taken after a restart (the cache starts from the
     * newest message, and an earlier delta may have put an older one above it): the next
     * free seq at that time is as good, and no live send uses a time that old. */
    if (rc != SQLITE_CONSTRAINT_PRIMARYKEY || attempt) break;
    if ((rc = next_seq_at(x, conv, op->ts, &seq))) return rc;
  }
  if (rc) return rc;
  sqlite3_bind_int64(st->ext_ins, 1, conv);
  sqlite3_bind_text(st->ext_ins, 2, op->mid, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st->ext_ins, 3, op->ts);
  sqlite3_bind_int64(st->ext_ins, 4, seq);
  if ((rc = done(st->ext_ins))) return rc;
  import_conv_t *t = touched(x, conv, op->cid);
  if (op->ts > t->max_ts || (op->ts == t->max_ts && seq > t->max_ts_seq)) {
    t->max_ts = op->ts;
    t->max_ts_seq = seq;
  }
  if (seq > t->max_seq) t->max_seq = seq;
  op->outcome = IMP_APPLIED;
  return 0;
}

static int import_installation(ctx_t *x, import_op_t *op) {
  store_import_t *st = x->st;
  job_installation_t *in = op->inst;
  sqlite3_stmt *g = st->inst_get;
  sqlite3_bind_text(g, 1, in->id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(g), same = 0;
  int64_t now = now_ms(); /* times the record did not give: as stored, else the import's */
  if (!in->created_at) in->created_at = rc == SQLITE_ROW ? sqlite3_column_int64(g, 3) : now;
  if (!in->updated_at) in->updated_at = rc == SQLITE_ROW ? sqlite3_column_int64(g, 4) : now;
  if (rc == SQLITE_ROW) {
    same = str_eq((const char *)sqlite3_column_text(g, 0), in->device_type) &&
           str_eq((const char *)sqlite3_column_text(g, 1), in->token) &&
           docs_equal((const char *)sqlite3_column_text(g, 2), in->body) &&
           sqlite3_column_int64(g, 3) == in->created_at && sqlite3_column_int64(g, 4) == in->updated_at;
  }
  sqlite3_reset(g);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
  if (same) {
    list_t have = {0};
    sqlite3_bind_text(st->inst_clients, 1, in->id, -1, SQLITE_STATIC);
    if ((rc = list_read(st->inst_clients, &have))) return rc;
    same = lists_equal(have.v, have.n, in->channels, in->n);
    list_free(&have);
    if (same) {
      op->outcome = IMP_UNCHANGED;
      return 0;
    }
  }
  sqlite3_bind_text(st->inst_devices_del, 1, in->id, -1, SQLITE_STATIC);
  if ((rc = done(st->inst_devices_del))) return rc;
  sqlite3_stmt *p = st->inst_put;
  sqlite3_bind_text(p, 1, in->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 2, in->device_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 3, in->token, -1, SQLITE_STATIC);
  sqlite3_bind_text(p, 4, in->body ? in->body : "{}", -1, SQLITE_STATIC);
  sqlite3_bind_int64(p, 5, in->created_at);
  sqlite3_bind_int64(p, 6, in->updated_at);
  if ((rc = done(p))) return rc;
  for (size_t i = 0; i < in->n; i++) {
    sqlite3_stmt *d = st->inst_device_ins;
    sqlite3_bind_text(d, 1, in->channels[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 2, in->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 3, in->device_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(d, 4, in->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d, 5, in->updated_at);
    if ((rc = done(d))) return rc;
  }
  if (in->has_badge) {
    sqlite3_bind_text(st->badge, 1, in->token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->badge, 2, in->badge);
    if ((rc = done(st->badge))) return rc;
  }
  op->outcome = IMP_APPLIED;
  return 0;
}

/* After the messages: members have read and received up to the newest imported key, and
 * the conversation knows it has ids of its own. */
static int finish_touched(ctx_t *x) {
  store_import_t *st = x->st;
  int rc = 0;
  for (size_t i = 0; !rc && i < x->j->ntouched; i++) {
    import_conv_t *t = &x->j->touched[i];
    sqlite3_stmt *fwd[2] = {st->read_fwd, st->ack_fwd};
    for (int k = 0; k < 2 && !rc; k++) {
      sqlite3_bind_int64(fwd[k], 1, t->conv);
      sqlite3_bind_int64(fwd[k], 2, t->max_ts);
      sqlite3_bind_int64(fwd[k], 3, t->max_ts_seq);
      rc = done(fwd[k]);
    }
    if (rc) break;
    sqlite3_bind_int64(st->conv_ext, 1, t->conv);
    sqlite3_bind_int64(st->conv_ext, 2, t->max_ts);
    sqlite3_bind_int64(st->conv_ext, 3, now_ms());
    rc = done(st->conv_ext);
  }
  return rc;
}

int store_import_run(sqlite3 *db, store_import_t **pimp, job_import_t *j) {
  if (!*pimp && !(*pimp = imp_new(db))) return SQLITE_ERROR;
  ctx_t x = {.db = db, .st = *pimp, .j = j};
  int rc = 0;
  for (size_t i = 0; i < j->n && !rc; i++) {
    import_op_t *op = &j->ops[i];
    if (op->outcome == IMP_SKIPPED) continue;
    if (op->type == IMP_CONV) {
      rc = import_conv(&x, op);
      continue;
    }
    if (op->type == IMP_INSTALLATION) {
      rc = import_installation(&x, op);
      continue;
    }
    int64_t conv;
    int kind;
    if ((rc = conv_lookup(&x, op->cid, &conv, &kind))) break;
    if (!conv) {
      skip(op, "unknown conversation");
      continue;
    }
    switch (op->type) {
    case IMP_MSG: rc = import_msg(&x, op, conv); break;
    case IMP_ROLES: rc = import_roles(&x, op, conv); break;
    case IMP_SHUTUP: rc = import_set(&x, op, conv, SET_SHUTUP); break;
    case IMP_BLOCK: rc = import_set(&x, op, conv, SET_BLOCK); break;
    case IMP_MUTES: rc = import_mutes(&x, op, conv); break;
    case IMP_SUBSCRIBERS: {
      if (kind != CONV_SYSTEM) {
        skip(op, "subscribers are for service conversations");
        break;
      }
      int changed = 0;
      rc = members_sync(&x, conv, op->clients, op->n, !op->replace, now_ms(), &changed);
      op->outcome = changed ? IMP_APPLIED : IMP_UNCHANGED;
      break;
    }
    default: skip(op, "unknown record type");
    }
  }
  if (!rc) rc = finish_touched(&x);
  free(x.memo_cid);
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
