/* store_sqlite_read.c — the SQLite backend's read side: one read connection per worker
 * (store_reader_t) and the reads of the store interface on it. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "jsonlim.h"
#include "log.h"
#include "metrics.h"
#include "qpool.h"
#include "query.h"
#include "store.h"
#include "store_doc.h"
#include "store_sqlite.h"
#include "store_sqlite_core.h"
#include "store_sqlite_int.h"
#include "timeutil.h"

/* ---------------------------------------------------------------- reader side */

#define MSG_COLS "ts, seq, mid, sender, data, flags, mentions, patch_ts, readers"
/* May client ?N read the message? (every member, or it sent it, or it is one of readers) */
#define VISIBLE_TO(n) " AND (readers IS NULL OR sender = ?" n " OR instr(readers, char(31) || ?" n " || char(31)) > 0)"

const char *store_db_path(const store_t *s) { return s->path; }

store_reader_t *sq_reader_new(store_t *s) {
  store_reader_t *r = xcalloc(1, sizeof *r);
  r->ops = &store_sqlite_ops;
  r->s = s;
  if (sq_open_db(s->path, 1, NULL, &r->db) < 0) {
    free(r);
    return NULL;
  }
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&r->conv_load,
       "SELECT id, cid, kind, creator, unique_id, created_at, updated_at, lm, expire_at, ext_ids, rcp FROM conv"
       " WHERE cid = ?1"},
      {&r->conv_doc, "SELECT doc FROM conv WHERE id = ?1"},
      {&r->conv_members, "SELECT client FROM member WHERE conv = ?1 ORDER BY client"},
      {&r->conv_sets, "SELECT 0, client FROM member_info WHERE conv = ?1 AND role = 'Manager'"
                      " UNION ALL SELECT kind, client FROM conv_set WHERE conv = ?1"},
      {&r->member_infos, "SELECT client, role, info_id, created_at, updated_at FROM member_info WHERE conv = ?1"
                         " ORDER BY client"},
      {&r->client_blocks, "SELECT cid FROM client_block WHERE client = ?1 AND cid > ?2 ORDER BY cid LIMIT ?3"},
      {&r->client_blocked, "SELECT 1 FROM client_block WHERE client = ?1 AND cid = ?2"},
      {&r->find_unique, "SELECT cid, created_at FROM conv WHERE unique_id = ?1"},
      {&r->last_msg, "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1 ORDER BY ts DESC, seq DESC LIMIT 1"},
      {&r->last_msg_for,
       "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1" VISIBLE_TO("2") " ORDER BY ts DESC, seq DESC LIMIT 1"},
      {&r->msg_get, "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1 AND ts = ?2 AND seq = ?3"},
      {&r->receipts,
       "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND (ts, seq) <= (?4, ?5)"
       " AND flags & 2 AND sender <> ?6 ORDER BY ts, seq LIMIT 100"},
      /* the client's conversations with news since ?2 — from msg, exact, where lm lags */
      {&r->unread_convs,
       "SELECT id, cid, kind, read_ts, read_seq, read_at FROM (SELECT c.id, c.cid, c.kind, m.read_ts,"
       " m.read_seq, m.read_at, (" QUERY_LAST_TS(
           "c.id") ") AS last FROM member m JOIN conv c ON c.id = m.conv"
                   " WHERE m.client = ?1 AND c.kind <> 2)"
                   " WHERE (last >= read_ts AND last > ?2) OR (?2 > 0 AND read_at > ?2) ORDER BY last DESC LIMIT ?3"},
      {&r->unread_msgs,
       "SELECT flags, mentions, ts, seq FROM msg_all WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND sender <> ?4" VISIBLE_TO(
           "4") " ORDER BY ts DESC, seq DESC LIMIT 100"},
      {&r->offline_convs,
       "SELECT id, cid, kind, ack_ts, ack_seq FROM (SELECT c.id, c.cid, c.kind, m.ack_ts, m.ack_seq,"
       " (" QUERY_LAST_TS("c.id") ") AS last FROM member m JOIN conv c ON c.id = m.conv"
                                  " WHERE m.client = ?1 AND c.kind <> 2) WHERE last >= ack_ts ORDER BY last"},
      {&r->offline_msgs,
       "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND sender <> ?4" VISIBLE_TO(
           "4") " ORDER BY ts, seq LIMIT ?5"},
      {&r->progress, "SELECT client, read_ts, read_seq, read_at, ack_ts, ack_seq, ack_at FROM member WHERE conv = ?1"},
      {&r->notifs, "SELECT ts, body FROM notif WHERE client = ?1 AND ts > ?2 ORDER BY ts, seq LIMIT ?3"},
      {&r->expired, "SELECT id, cid, kind FROM conv WHERE (kind = 4 AND expire_at <= ?1)"
                    " OR (kind <> 4 AND max(coalesce(lm, 0), updated_at, coalesce(imported_at, 0)) < ?2) LIMIT ?3"},
      {&r->patches,
       "SELECT c.cid, " MSG_COLS " FROM msg_all msg JOIN member mb ON mb.conv = msg.conv JOIN conv c ON c.id = msg.conv"
       " WHERE msg.patch_ts > 0 AND msg.patch_ts > ?2 AND mb.client = ?1" VISIBLE_TO(
           "1") " ORDER BY msg.patch_ts LIMIT ?3"},
      {&r->devices, "SELECT token, type, installation_id, badge FROM device WHERE client = ?1"
                    " ORDER BY updated_at DESC, token LIMIT ?2"},
      {&r->inst_by_id, "SELECT id, device_type, token, body, created_at, updated_at FROM installation WHERE id = ?1"},
      {&r->inst_by_token, "SELECT id, device_type, token, body, created_at, updated_at FROM installation"
                          " WHERE device_type = ?1 AND token = ?2"},
      {&r->revoked, "SELECT (SELECT before FROM client_revoked WHERE client = ?1),"
                    " EXISTS (SELECT 1 FROM token_revoked WHERE lineage = ?2)"},
  };
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
    if (sq_prepare(r->db, stmts[i].sql, stmts[i].st) < 0) {
      sq_reader_free(r);
      return NULL;
    }
  return r;
}

void sq_reader_free(store_reader_t *r) {
  if (!r) return;
  sqlite3_stmt *all[] = {r->conv_load,     r->conv_doc,       r->conv_members,  r->conv_sets,   r->member_infos,
                         r->client_blocks, r->client_blocked, r->find_unique,   r->last_msg,    r->last_msg_for,
                         r->msg_get,       r->receipts,       r->unread_convs,  r->unread_msgs, r->offline_convs,
                         r->offline_msgs,  r->progress,       r->patches,       r->notifs,      r->expired,
                         r->devices,       r->inst_by_id,     r->inst_by_token, r->revoked};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  sqlite3_finalize(r->msg_ext_get);
  sqlite3_finalize(r->msg_by_dt);
  for (int i = 0; i < LOGS_VARIANTS; i++) sqlite3_finalize(r->logs[i]);
  sqlite3_close(r->db);
  free(r);
}

static char *col_strdup(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? xstrdup((const char *)t) : NULL;
}

/* Steps st (bound by the caller) to its end, copying its first column into *out (NULL when
 * there is no row), and resets it. Returns how many strings it copied. */
static size_t col_strings(sqlite3_stmt *st, char ***out) {
  size_t n = 0, cap = 0;
  *out = NULL;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      *out = xrealloc(*out, cap * sizeof **out);
    }
    (*out)[n++] = col_strdup(st, 0);
  }
  sqlite3_reset(st);
  return n;
}

static void read_msg(sqlite3_stmt *st, int base, msg_view_t *m) {
  m->ts = sqlite3_column_int64(st, base);
  m->seq = sqlite3_column_int64(st, base + 1);
  m->mid = (const char *)sqlite3_column_text(st, base + 2);
  m->sender = (const char *)sqlite3_column_text(st, base + 3);
  m->data = sqlite3_column_blob(st, base + 4);
  if (!m->data) m->data = (const uint8_t *)""; /* SQLite's empty blob is NULL: views are never NULL (memcpy) */
  m->len = (size_t)sqlite3_column_bytes(st, base + 4);
  m->flags = sqlite3_column_int(st, base + 5);
  m->mentions = (const char *)sqlite3_column_text(st, base + 6);
  m->patch_ts = sqlite3_column_int64(st, base + 7);
  m->readers = (const char *)sqlite3_column_text(st, base + 8);
}

/* Runs a bound message query, calling cb per row; resets the statement. */
static int scan_msgs(sqlite3_stmt *st, msg_cb cb, void *arg) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    msg_view_t m;
    read_msg(st, 0, &m);
    if (cb(arg, &m)) break;
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_conv_load(store_reader_t *r, const char *cid, conv_row_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = r->conv_load;
  sqlite3_bind_text(st, 1, cid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
  }
  out->id = sqlite3_column_int64(st, 0);
  out->cid = col_strdup(st, 1);
  out->kind = sqlite3_column_int(st, 2);
  out->creator = col_strdup(st, 3);
  out->unique_id = col_strdup(st, 4);
  out->created_at = sqlite3_column_int64(st, 5);
  out->updated_at = sqlite3_column_int64(st, 6);
  out->lm = sqlite3_column_int64(st, 7);
  out->expire_at = sqlite3_column_int64(st, 8);
  out->ext_ids = sqlite3_column_int(st, 9);
  out->rcp = sqlite3_column_int(st, 10);
  sqlite3_reset(st);
  sqlite3_bind_int64(r->conv_members, 1, out->id);
  out->nmembers = col_strings(r->conv_members, &out->members);
  st = r->conv_sets;
  sqlite3_bind_int64(st, 1, out->id);
  size_t caps[3] = {0, 0, 0};
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int k = sqlite3_column_int(st, 0);
    if (k < 0 || k > 2) continue;
    if (out->nsets[k] == caps[k]) {
      caps[k] = caps[k] ? caps[k] * 2 : 8;
      out->sets[k] = xrealloc(out->sets[k], caps[k] * sizeof(char *));
    }
    out->sets[k][out->nsets[k]++] = col_strdup(st, 1);
  }
  sqlite3_reset(st);
  st = r->last_msg;
  sqlite3_bind_int64(st, 1, out->id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    out->last_ts = sqlite3_column_int64(st, 0);
    out->last_seq = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return 0;
}

int sq_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg) {
  sqlite3_stmt *st = r->member_infos;
  sqlite3_bind_int64(st, 1, conv);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    member_info_t mi = {(const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
                        sqlite3_column_int64(st, 4)};
    cb(arg, &mi);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
                     void (*cb)(void *arg, const char *cid), void *arg) {
  sqlite3_stmt *st = r->client_blocks;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 3, limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) cb(arg, (const char *)sqlite3_column_text(st, 0));
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

/* Runs one of the pair queries below: key and time per row. Prepared per call (admin
 * reads, not the message path). */
static int scan_pairs(store_reader_t *r, const char *sql, int64_t id, const char *text, const char *after, int limit,
                      void (*cb)(void *arg, const char *key, int64_t at), void *arg) {
  sqlite3_stmt *st;
  if (sq_prepare(r->db, sql, &st) < 0) return TERN_ESTORE;
  sqlite3_bind_int64(st, 1, id);
  if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, after ? after : "", -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, limit);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                    void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg) {
  return scan_pairs(r, "SELECT client, joined_at FROM member WHERE conv = ?1 AND client > ?2 ORDER BY client LIMIT ?3",
                    conv, NULL, after, limit, cb, arg);
}

int sq_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                    void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT c.cid, m.joined_at FROM member m JOIN conv c ON c.id = m.conv WHERE m.client = ?1 AND c.kind = %d"
           " AND c.cid > ?2 ORDER BY c.cid LIMIT ?3",
           kind);
  return scan_pairs(r, sql, 0, client, after, limit, cb, arg);
}

int sq_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                     void (*cb)(void *arg, const char *client, int64_t at), void *arg) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT client, created_at FROM conv_set WHERE conv = ?1 AND kind = %d%s AND client > ?2 ORDER BY client "
           "LIMIT ?3",
           set, permanent_only ? " AND expire_at IS NULL" : "");
  return scan_pairs(r, sql, conv, NULL, after, limit, cb, arg);
}

int sq_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at) {
  sqlite3_stmt *st;
  if (sq_prepare(r->db, "SELECT coalesce(expire_at, 0) FROM conv_set WHERE conv = ?1 AND kind = ?2 AND client = ?3",
                 &st) < 0)
    return TERN_ESTORE;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int(st, 2, set);
  sqlite3_bind_text(st, 3, client, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *expire_at = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

/* Asked every second by the sweep: the partial index makes it a look at an empty range. */
int sq_shutups_expired(store_reader_t *r, int64_t now, int max,
                       void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg) {
  sqlite3_stmt *st;
  if (sq_prepare(r->db,
                 "SELECT s.conv, c.cid, s.client FROM conv_set s JOIN conv c ON c.id = s.conv"
                 " WHERE s.expire_at IS NOT NULL AND s.expire_at <= ?1 AND s.kind = 1 LIMIT ?2",
                 &st) < 0)
    return TERN_ESTORE;
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int(st, 2, max);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
       (const char *)sqlite3_column_text(st, 2));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

/* One bound of an app-wide page as SQL: the key triple when the message is named, else the
 * time alone. Parameters ?first.. are bound by bind_bound. */
static void put_bound(buf_t *sql, const msg_bound_t *b, int lower, int first) {
  const char *op = lower ? (b->incl ? ">=" : ">") : (b->incl ? "<=" : "<");
  if (b->mid) buf_printf(sql, " AND (m.ts, m.seq, m.mid) %s (?%d, ?%d, ?%d)", op, first, first + 1, first + 2);
  else buf_printf(sql, " AND m.ts %s ?%d", op, first);
}

static void bind_bound(sqlite3_stmt *st, const msg_bound_t *b, int first) {
  sqlite3_bind_int64(st, first, b->ts);
  if (!b->mid) return;
  sqlite3_bind_int64(st, first + 1, b->seq);
  sqlite3_bind_text(st, first + 2, b->mid, -1, SQLITE_STATIC);
}

int sq_app_logs(store_reader_t *r, const app_logs_req_t *q,
                void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  buf_t sql = BUF_INIT;
  const char *dir = q->newer ? "ASC" : "DESC";
  buf_append_str(
      &sql, "SELECT m.ts, m.seq, m.mid, m.sender, m.data, m.flags, m.mentions, m.patch_ts, m.readers, c.cid, c.kind"
            " FROM msg_all m JOIN conv c ON c.id = m.conv WHERE (?1 IS NULL OR m.sender = ?1)");
  if (q->lo.has) put_bound(&sql, &q->lo, 1, 3);
  if (q->hi.has) put_bound(&sql, &q->hi, 0, 6);
  /* mid breaks ties between conversations: (ts, seq) is unique only within one */
  buf_printf(&sql, " ORDER BY m.ts %s, m.seq %s, m.mid %s LIMIT ?2", dir, dir, dir);
  sqlite3_stmt *st;
  int rc = sq_prepare(r->db, buf_cstr(&sql), &st);
  buf_free(&sql);
  if (rc < 0) return rc;
  if (q->sender) sqlite3_bind_text(st, 1, q->sender, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, q->limit);
  if (q->lo.has) bind_bound(st, &q->lo, 3);
  if (q->hi.has) bind_bound(st, &q->hi, 6);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    msg_view_t m;
    read_msg(st, 0, &m);
    cb(arg, (const char *)sqlite3_column_text(st, 9), sqlite3_column_int(st, 10), &m);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_client_blocked(store_reader_t *r, const char *client, const char *cid) {
  sqlite3_stmt *st = r->client_blocked;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_conv_doc(store_reader_t *r, int64_t conv, char **doc) {
  sqlite3_stmt *st = r->conv_doc;
  sqlite3_bind_int64(st, 1, conv);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *doc = col_strdup(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

int sq_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at) {
  sqlite3_stmt *st = r->find_unique;
  sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *cid = col_strdup(st, 0);
    *created_at = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

/* Hands cb the current row of a statement whose columns are id, cid, kind, created_at,
 * updated_at, lm, doc, expire_at; with its members unless compact (flags & 1) or a room or
 * service conversation, and its newest message when flags & 2. */
static void conv_row_view(store_reader_t *r, sqlite3_stmt *st, int flags, conv_view_cb cb, void *arg) {
  int64_t id = sqlite3_column_int64(st, 0);
  conv_view_t v = {
      .cid = (const char *)sqlite3_column_text(st, 1),
      .kind = sqlite3_column_int(st, 2),
      .created_at = sqlite3_column_int64(st, 3),
      .updated_at = sqlite3_column_int64(st, 4),
      .has_lm = sqlite3_column_type(st, 5) != SQLITE_NULL,
      .lm = sqlite3_column_int64(st, 5),
      .doc = (const char *)sqlite3_column_text(st, 6),
      .expire_at = sqlite3_column_int64(st, 7),
  };
  char **members = NULL;
  size_t n = 0;
  if (!(flags & 1) && v.kind != CONV_ROOM && v.kind != CONV_SYSTEM) {
    sqlite3_bind_int64(r->conv_members, 1, id);
    n = col_strings(r->conv_members, &members);
    static const char *const none[1] = {NULL};
    v.members = members ? (const char *const *)members : none;
    v.nmembers = n;
  }
  msg_view_t last;
  sqlite3_stmt *ls = NULL;
  if (flags & 2) {
    ls = r->last_msg;
    sqlite3_bind_int64(ls, 1, id);
    if (sqlite3_step(ls) == SQLITE_ROW) {
      read_msg(ls, 0, &last);
      v.last = &last;
    }
  }
  cb(arg, &v);
  if (ls) sqlite3_reset(ls);
  for (size_t i = 0; i < n; i++) free(members[i]);
  free(members);
}

#define CONV_COLS "c.id, c.cid, c.kind, c.created_at, c.updated_at, " QUERY_LM_SQL ", c.doc, c.expire_at"

static int run_conv_select(store_reader_t *r, sqlite3_stmt *st, int flags, conv_view_cb cb, void *arg) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) conv_row_view(r, st, flags, cb, arg);
  int why = query_budget_failure(); /* a row's member list may have been cut short too */
  if (rc != SQLITE_DONE || why) {
    if (!why) log_at(LOG_WARN, "conversation query failed: %s", sqlite3_errmsg(r->db));
    return why ? why : TERN_ESTORE;
  }
  return 0;
}

/* SQLite calls this every PROGRESS_OPS virtual-machine steps of a budgeted statement. */
#define PROGRESS_OPS 1000
static int progress_fn(void *arg) { return query_budget_expired(); }

static int conv_query_sql(store_reader_t *r, query_t *q, const char *order_by, int limit, int skip, int flags,
                          uint64_t deadline_ns, conv_view_cb cb, void *arg) {
  buf_t sql = BUF_INIT;
  buf_printf(&sql, "SELECT " CONV_COLS " FROM conv c WHERE %s ORDER BY %s LIMIT %d OFFSET %d", buf_cstr(&q->sql),
             order_by, limit, skip);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(r->db, buf_cstr(&sql), -1, &st, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) {
    log_at(LOG_WARN, "conversation query did not prepare: %s", sqlite3_errmsg(r->db));
    return TERN_ESTORE;
  }
  sq_bind_query(st, q);
  query_budget_begin(deadline_ns);
  if (deadline_ns) sqlite3_progress_handler(r->db, PROGRESS_OPS, progress_fn, NULL);
  rc = run_conv_select(r, st, flags, cb, arg);
  if (deadline_ns) sqlite3_progress_handler(r->db, 0, NULL, NULL);
  query_budget_end();
  sqlite3_finalize(st);
  return rc;
}

/* A parsed conversation query compiled to SQL (query/query.c): the where, then its ORDER BY
 * (whose parameters follow the where's). 0, or TERN_EINVAL with err set and nothing to free. */
static int conv_compile(const store_conv_q_t *cq, query_t *q, buf_t *order, char *err, size_t errlen) {
  query_init(q);
  if (!cq->query) return snprintf(err, errlen, "no query"), TERN_EINVAL;
  int rc = query_where(q, cq->query->where, err, errlen);
  if (rc == 0) rc = query_sort(q, cq->query->sort, cq->query->nsort, order, err, errlen);
  if (rc < 0) {
    query_free(q);
    buf_free(order);
  }
  return rc;
}

int sq_conv_query_check(store_t *s, const store_conv_q_t *cq, char *err, size_t errlen) {
  (void)s;
  query_t q;
  buf_t order = BUF_INIT;
  int rc = conv_compile(cq, &q, &order, err, errlen);
  if (rc == 0) {
    query_free(&q);
    buf_free(&order);
  }
  return rc;
}

int sq_conv_query_until(store_reader_t *r, const store_conv_q_t *cq, uint64_t deadline_ns, conv_view_cb cb, void *arg) {
  query_t q;
  buf_t order = BUF_INIT;
  char err[200];
  int rc = conv_compile(cq, &q, &order, err, sizeof err);
  if (rc < 0) return rc;
  rc = conv_query_sql(r, &q, buf_cstr(&order), cq->limit, cq->skip, cq->flags, deadline_ns, cb, arg);
  query_free(&q);
  buf_free(&order);
  return rc;
}

int sq_conv_count_until(store_reader_t *r, const store_conv_q_t *cq, uint64_t deadline_ns, int64_t *n) {
  query_t q;
  buf_t order = BUF_INIT;
  char err[200];
  int rc = conv_compile(cq, &q, &order, err, sizeof err);
  if (rc < 0) return rc;
  query_budget_begin(deadline_ns);
  if (deadline_ns) sqlite3_progress_handler(r->db, PROGRESS_OPS, progress_fn, NULL);
  rc = sq_count(r, "conv c", &q, n);
  int why = query_budget_failure(); /* why the count failed, if the budget ran out */
  if (deadline_ns) sqlite3_progress_handler(r->db, 0, NULL, NULL);
  query_budget_end();
  if (rc && why) rc = why;
  query_free(&q);
  buf_free(&order);
  return rc;
}

int sq_conv_count(store_reader_t *r, const store_conv_q_t *cq, int64_t *n) { return sq_conv_count_until(r, cq, 0, n); }

int sq_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg) {
  if (n == 0) return 0;
  buf_t sql = BUF_INIT;
  buf_append_str(&sql, "SELECT " CONV_COLS " FROM conv c WHERE c.cid IN (");
  for (size_t i = 0; i < n; i++) buf_append_str(&sql, i ? ",?" : "?");
  buf_append_str(&sql, ")");
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(r->db, buf_cstr(&sql), -1, &st, NULL);
  buf_free(&sql);
  if (rc != SQLITE_OK) return TERN_ESTORE;
  for (size_t i = 0; i < n; i++) sqlite3_bind_text(st, (int)i + 1, cids[i], -1, SQLITE_STATIC);
  rc = run_conv_select(r, st, flags, cb, arg);
  sqlite3_finalize(st);
  return rc;
}

/* Logs statements differ only in their bounds and direction: 36 variants, each prepared
 * once per reader on first use. */
int sq_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg) {
  int lo = q->has_lo ? 1 + (q->lo_incl != 0) : 0, hi = q->has_hi ? 1 + (q->hi_incl != 0) : 0;
  int variant = ((q->newer * 3 + lo) * 3 + hi) * 2 + (q->has_lctype != 0);
  sqlite3_stmt **slot = &r->logs[variant];
  if (!*slot) {
    buf_t sql = BUF_INIT;
    buf_append_str(&sql, "SELECT " MSG_COLS " FROM msg_all WHERE conv = ?1");
    if (lo) buf_printf(&sql, " AND (ts, seq) %s (?2, ?3)", lo == 2 ? ">=" : ">");
    if (hi) buf_printf(&sql, " AND (ts, seq) %s (?4, ?5)", hi == 2 ? "<=" : "<");
    if (q->has_lctype) buf_append_str(&sql, " AND lctype = ?6");
    buf_append_str(
        &sql, " AND (?8 IS NULL OR readers IS NULL OR sender = ?8 OR instr(readers, char(31) || ?8 || char(31)) > 0)");
    buf_printf(&sql, " ORDER BY ts %s, seq %s LIMIT ?7", q->newer ? "ASC" : "DESC", q->newer ? "ASC" : "DESC");
    int rc = sq_prepare(r->db, buf_cstr(&sql), slot);
    buf_free(&sql);
    if (rc < 0) return rc;
  }
  sqlite3_stmt *st = *slot;
  sqlite3_bind_int64(st, 1, q->conv);
  if (lo) {
    sqlite3_bind_int64(st, 2, q->lo_ts);
    sqlite3_bind_int64(st, 3, q->lo_seq);
  }
  if (hi) {
    sqlite3_bind_int64(st, 4, q->hi_ts);
    sqlite3_bind_int64(st, 5, q->hi_seq);
  }
  if (q->has_lctype) sqlite3_bind_int(st, 6, q->lctype);
  sqlite3_bind_int(st, 7, q->limit);
  if (q->viewer) sqlite3_bind_text(st, 8, q->viewer, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 8);
  if (q->newer) return scan_msgs(st, cb, arg);
  /* Walking backwards: collect the rows, then hand them out oldest first (the reply is
   * always ascending, protocol.md §3.11). */
  typedef struct {
    msg_view_t m;
    char *mid, *sender, *mentions;
    uint8_t *data;
  } row_t;
  row_t *rows = NULL;
  size_t n = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      rows = xrealloc(rows, cap * sizeof *rows);
    }
    row_t *w = &rows[n++];
    read_msg(st, 0, &w->m);
    w->mid = xstrdup(w->m.mid);
    w->sender = xstrdup(w->m.sender);
    w->mentions = w->m.mentions ? xstrdup(w->m.mentions) : NULL;
    w->data = xmalloc(w->m.len + 1);
    memcpy(w->data, w->m.data, w->m.len);
    w->m.mid = w->mid;
    w->m.sender = w->sender;
    w->m.mentions = w->mentions;
    w->m.data = w->data;
  }
  sqlite3_reset(st);
  int stop = 0;
  for (size_t i = n; i-- > 0;) {
    if (!stop) stop = cb(arg, &rows[i].m);
    free(rows[i].mid);
    free(rows[i].sender);
    free(rows[i].mentions);
    free(rows[i].data);
  }
  free(rows);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg) {
  sqlite3_stmt *st = r->msg_get;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int64(st, 2, ts);
  sqlite3_bind_int64(st, 3, seq);
  int found = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    msg_view_t m;
    read_msg(st, 0, &m);
    found = 1;
    cb(arg, &m);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return TERN_ESTORE;
  return found ? 0 : TERN_ENOENT;
}

int sq_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                    int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg) {
  sqlite3_stmt *st = r->receipts;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int64(st, 2, from_ts);
  sqlite3_bind_int64(st, 3, from_seq);
  sqlite3_bind_int64(st, 4, to_ts);
  sqlite3_bind_int64(st, 5, to_seq);
  sqlite3_bind_text(st, 6, client, -1, SQLITE_STATIC);
  return scan_msgs(st, cb, arg);
}

/* A member's conversation and its position in it (read or ack), copied out of a statement
 * whose columns are id, cid, kind, ts, seq[, at] before the per-conversation statements
 * run: they must not interleave with its cursor on the same connection's shared cache. */
typedef struct {
  int64_t id, ts, seq, at;
  int kind;
  char *cid;
} conv_pos_t;

/* Steps st to its end (and resets it) into *rows, n of them; 0, or TERN_ESTORE when a step
 * failed (the rows before it are kept). Free with conv_pos_free. */
static int conv_pos_rows(sqlite3_stmt *st, conv_pos_t **rows, size_t *n) {
  int has_at = sqlite3_column_count(st) > 5, rc;
  size_t cap = 0;
  *rows = NULL;
  *n = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      *rows = xrealloc(*rows, cap * sizeof **rows);
    }
    (*rows)[(*n)++] = (conv_pos_t){.id = sqlite3_column_int64(st, 0),
                                   .cid = col_strdup(st, 1),
                                   .kind = sqlite3_column_int(st, 2),
                                   .ts = sqlite3_column_int64(st, 3),
                                   .seq = sqlite3_column_int64(st, 4),
                                   .at = has_at ? sqlite3_column_int64(st, 5) : 0};
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

static void conv_pos_free(conv_pos_t *rows, size_t n) {
  for (size_t i = 0; i < n; i++) free(rows[i].cid);
  free(rows);
}

static int unread_in(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg);

/* One read transaction (one snapshot of the WAL): a conversation's count and its last
 * message agree (the login's live pushes are checked against that message, im_login.c). */
int sq_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg) {
  if (!sq_member_maybe(r->s, client)) return 0; /* in no conversation: nothing unread */
  int tx = sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
  int rc = unread_in(r, client, since, max, cb, arg);
  if (tx) sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
  return rc;
}

static int unread_in(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg) {
  sqlite3_stmt *st = r->unread_convs;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, since);
  sqlite3_bind_int(st, 3, max);
  conv_pos_t *rows;
  size_t n;
  int rc = conv_pos_rows(st, &rows, &n);
  for (size_t i = 0; i < n; i++) {
    unread_view_t u = {.cid = rows[i].cid, .kind = rows[i].kind, .read_changed_at = rows[i].at};
    sqlite3_stmt *ms = r->unread_msgs;
    sqlite3_bind_int64(ms, 1, rows[i].id);
    sqlite3_bind_int64(ms, 2, rows[i].ts);
    sqlite3_bind_int64(ms, 3, rows[i].seq);
    sqlite3_bind_text(ms, 4, client, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(ms) == SQLITE_ROW) {
      u.unread++;
      if (!u.mentioned && ((sqlite3_column_int(ms, 0) & MSG_F_MENTION_ALL) ||
                           store_mentions_contain((const char *)sqlite3_column_text(ms, 1), client)))
        u.mentioned = 1;
    }
    sqlite3_reset(ms);
    sqlite3_stmt *ls = r->last_msg_for;
    sqlite3_bind_int64(ls, 1, rows[i].id);
    sqlite3_bind_text(ls, 2, client, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ls) == SQLITE_ROW) read_msg(ls, 0, &u.last);
    cb(arg, &u);
    sqlite3_reset(ls);
  }
  conv_pos_free(rows, n);
  return rc;
}

int sq_offline(store_reader_t *r, const char *client, int max,
               void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  if (!sq_member_maybe(r->s, client)) return 0; /* in no conversation: nothing waits */
  sqlite3_stmt *st = r->offline_convs;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  conv_pos_t *rows;
  size_t n;
  int rc = conv_pos_rows(st, &rows, &n);
  int left = max;
  for (size_t i = 0; i < n && left > 0; i++) {
    sqlite3_stmt *ms = r->offline_msgs;
    sqlite3_bind_int64(ms, 1, rows[i].id);
    sqlite3_bind_int64(ms, 2, rows[i].ts);
    sqlite3_bind_int64(ms, 3, rows[i].seq);
    sqlite3_bind_text(ms, 4, client, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(ms, 5, left);
    while (sqlite3_step(ms) == SQLITE_ROW) {
      msg_view_t m;
      read_msg(ms, 0, &m);
      cb(arg, rows[i].cid, rows[i].kind, &m);
      left--;
    }
    sqlite3_reset(ms);
  }
  conv_pos_free(rows, n);
  return rc;
}

int sq_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg) {
  sqlite3_stmt *st = r->progress;
  sqlite3_bind_int64(st, 1, conv);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    member_progress_t p = {
        .client = (const char *)sqlite3_column_text(st, 0),
        .read_ts = sqlite3_column_int64(st, 1),
        .read_seq = sqlite3_column_int64(st, 2),
        .read_at = sqlite3_column_int64(st, 3),
        .ack_ts = sqlite3_column_int64(st, 4),
        .ack_seq = sqlite3_column_int64(st, 5),
        .ack_at = sqlite3_column_int64(st, 6),
    };
    cb(arg, &p);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
                     void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg) {
  sqlite3_stmt *st = r->patches;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, since);
  sqlite3_bind_int(st, 3, max);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    msg_view_t m;
    read_msg(st, 1, &m);
    cb(arg, (const char *)sqlite3_column_text(st, 0), &m);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                     void (*cb)(void *arg, int64_t ts, const char *body), void *arg) {
  /* One row past the limit tells whether there is more; a page never ends inside a group
   * of equal timestamps, because the client's next cursor is the last timestamp it saw. */
  sqlite3_stmt *st = r->notifs;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, after);
  sqlite3_bind_int(st, 3, limit + 200);
  int rc, n = 0;
  int64_t last_ts = 0;
  *has_more = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t ts = sqlite3_column_int64(st, 0);
    if (n >= limit && ts != last_ts) {
      *has_more = 1;
      break;
    }
    cb(arg, ts, (const char *)sqlite3_column_text(st, 1));
    last_ts = ts;
    n++;
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
               void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg) {
  sqlite3_stmt *st = r->expired;
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, idle_before);
  sqlite3_bind_int(st, 3, max);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1), sqlite3_column_int(st, 2));
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
               void *arg) {
  sqlite3_stmt *st = r->devices;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 2, max);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    device_view_t d = {(const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                       (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3)};
    cb(arg, &d);
  }
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

int sq_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
                        installation_row_t *out) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st = id ? r->inst_by_id : r->inst_by_token;
  if (id) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_text(st, 1, device_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, token, -1, SQLITE_TRANSIENT);
  }
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    out->id = col_strdup(st, 0);
    out->device_type = col_strdup(st, 1);
    out->token = col_strdup(st, 2);
    out->body = col_strdup(st, 3);
    out->created_at = sqlite3_column_int64(st, 4);
    out->updated_at = sqlite3_column_int64(st, 5);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

int sq_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                     int *lineage_revoked) {
  sqlite3_stmt *st = r->revoked;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_blob(st, 2, lineage, 8, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *before = sqlite3_column_int64(st, 0); /* NULL reads as 0: no kick */
    *lineage_revoked = sqlite3_column_int(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : TERN_ESTORE;
}

sqlite3 *store_reader_db(store_reader_t *r) { return r->db; }

int sq_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq) {
  if (!r->msg_ext_get &&
      sq_prepare(r->db, "SELECT ts, seq FROM msg_ext WHERE conv = ?1 AND mid = ?2", &r->msg_ext_get) < 0)
    return TERN_ESTORE;
  sqlite3_stmt *st = r->msg_ext_get;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_text(st, 2, mid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *ts = sqlite3_column_int64(st, 0);
    *seq = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

/* The newest STORE_DT_SCAN messages of conv since since_ts (a range of the primary key),
 * then the one of them sender stored with dt; beside it, in the same statement (one
 * snapshot), the conversation's newest timestamp (a seek to the end of its key range). */
int sq_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                 int64_t *ts, int64_t *newest_ts) {
  if (!r->msg_by_dt && sq_prepare(r->db,
                                  "SELECT n.ts, d.mid, d.ts FROM (SELECT ts, seq FROM msg_all WHERE conv = ?1"
                                  " ORDER BY ts DESC, seq DESC LIMIT 1) n LEFT JOIN (" SQ_MSG_BY_DT_SQL ") d ON 1",
                                  &r->msg_by_dt) < 0)
    return TERN_ESTORE;
  sqlite3_stmt *st = r->msg_by_dt;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int64(st, 2, since_ts);
  sqlite3_bind_text(st, 3, sender, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, dt);
  sqlite3_bind_int(st, 5, STORE_DT_SCAN);
  int rc = sqlite3_step(st), found = 0;
  *newest_ts = 0;
  if (rc == SQLITE_ROW) {
    *newest_ts = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
      found = 1;
      *mid = col_strdup(st, 1);
      *ts = sqlite3_column_int64(st, 2);
    }
  }
  sqlite3_reset(st);
  return rc != SQLITE_ROW && rc != SQLITE_DONE ? TERN_ESTORE : found ? 0 : TERN_ENOENT;
}
