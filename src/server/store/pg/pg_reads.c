/* pg_reads.c — the PostgreSQL backend's reads (store.h): each reader is a connection of
 * its own with statement_timeout set, and each read is a prepared statement, so a read
 * blocks the worker that makes it for about one loopback round trip (docs/cluster.md has
 * the measure). A read on a connection that is gone fails (TERN_ESTORE) and the next one
 * reconnects, once the backoff has passed. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"
#include "store_pg.h"

/* statement_timeout of the readers: longer than any indexed read, short enough that a
 * database that hangs gives the worker back */
#define READ_TIMEOUT_MS 5000

store_reader_t *pg_reader_new(store_t *s) {
  store_reader_t *r = xcalloc(1, sizeof *r);
  r->ops = &store_pg_ops;
  r->s = s;
  r->c.uri = s->uri;
  r->c.role = "reader";
  r->c.stmt_timeout_ms = READ_TIMEOUT_MS;
  r->c.retry_reads = 1;
  r->c.reconnects = &s->reconnects;
  /* a reader that cannot connect now is still a reader: it connects at its first read */
  pgc_ensure(&r->c);
  return r;
}

void pg_reader_free(store_reader_t *r) {
  if (!r) return; /* the store may be closed already (main.c frees the workers' readers last) */
  pgc_close(&r->c);
  free(r);
}

/* Runs statement id; 0 with *out (PQclear it), or TERN_ESTORE. */
static int rq(store_reader_t *r, int id, pgargs_t *a, PGresult **out) { return pgc_run(&r->c, id, a, out); }

/* A JSON array of strings into an owned list. */
static size_t json_strings(const char *text, char ***out) {
  *out = NULL;
  json_t *a = text ? json_loads(text, 0, NULL) : NULL;
  size_t n = 0;
  if (json_array_size(a)) {
    *out = xcalloc(json_array_size(a), sizeof **out);
    for (size_t i = 0; i < json_array_size(a); i++) {
      const char *s = json_string_value(json_array_get(a, i));
      if (s) (*out)[n++] = xstrdup(s);
    }
  }
  json_decref(a);
  return n;
}

static int pg_conv_load(store_reader_t *r, const char *cid, conv_row_t *out) {
  memset(out, 0, sizeof *out);
  pgargs_t a = {0};
  pga_txt(&a, cid);
  PGresult *res;
  if (rq(r, PS_CONV_LOAD, &a, &res) < 0) return TERN_ESTORE;
  if (!PQntuples(res)) {
    PQclear(res);
    return TERN_ENOENT;
  }
  out->id = pg_i64(res, 0, 0);
  out->cid = pg_dup(res, 0, 1);
  out->kind = (int)pg_i64(res, 0, 2);
  out->creator = pg_dup(res, 0, 3);
  out->unique_id = pg_dup(res, 0, 4);
  out->created_at = pg_i64(res, 0, 5);
  out->updated_at = pg_i64(res, 0, 6);
  out->lm = pg_i64(res, 0, 7);
  out->expire_at = pg_i64(res, 0, 8);
  out->ext_ids = (int)pg_i64(res, 0, 9);
  out->nmembers = json_strings(pg_str(res, 0, 10), &out->members);
  json_t *sets = pg_str(res, 0, 11) ? json_loads(pg_str(res, 0, 11), 0, NULL) : NULL;
  size_t caps[3] = {0, 0, 0};
  for (size_t i = 0; i < json_array_size(sets); i++) {
    json_t *pair = json_array_get(sets, i);
    int k = (int)json_integer_value(json_array_get(pair, 0));
    const char *client = json_string_value(json_array_get(pair, 1));
    if (k < 0 || k > 2 || !client) continue;
    if (out->nsets[k] == caps[k]) {
      caps[k] = caps[k] ? caps[k] * 2 : 8;
      out->sets[k] = xrealloc(out->sets[k], caps[k] * sizeof(char *));
    }
    out->sets[k][out->nsets[k]++] = xstrdup(client);
  }
  json_decref(sets);
  out->last_ts = pg_i64(res, 0, 12);
  out->last_seq = pg_i64(res, 0, 13);
  out->rcp = (int)pg_i64(res, 0, 14);
  PQclear(res);
  return 0;
}

static int pg_conv_doc(store_reader_t *r, int64_t conv, char **doc) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *res;
  if (rq(r, PS_CONV_DOC, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) == 1;
  if (found) *doc = pg_dup(res, 0, 0);
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at) {
  pgargs_t a = {0};
  pga_txt(&a, unique_id);
  PGresult *res;
  if (rq(r, PS_FIND_UNIQUE, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) == 1;
  if (found) {
    *cid = pg_dup(res, 0, 0);
    *created_at = pg_i64(res, 0, 1);
  }
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

/* Every row of res as a message (columns PG_MSG_COLS from base) to cb; stops when cb says. */
static void scan_msgs(PGresult *res, int base, msg_cb cb, void *arg) {
  for (int i = 0; i < PQntuples(res); i++) {
    msg_view_t m;
    unsigned char *data;
    pg_read_msg(res, i, base, &m, &data);
    int stop = cb(arg, &m);
    PQfreemem(data);
    if (stop) break;
  }
}

/* History: one prepared statement per shape (direction, bounds, lctype) and connection. */
static int pg_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg) {
  int lo = q->has_lo ? 1 + (q->lo_incl != 0) : 0, hi = q->has_hi ? 1 + (q->hi_incl != 0) : 0;
  buf_t sql = BUF_INIT;
  buf_append_str(&sql, "SELECT " PG_MSG_COLS " FROM msg WHERE conv = $1");
  pgargs_t a = {0};
  pga_i64(&a, q->conv);
  if (lo) {
    buf_printf(&sql, " AND (ts, seq) %s ($%d, $%d)", lo == 2 ? ">=" : ">", a.n + 1, a.n + 2);
    pga_i64(&a, q->lo_ts);
    pga_i64(&a, q->lo_seq);
  }
  if (hi) {
    buf_printf(&sql, " AND (ts, seq) %s ($%d, $%d)", hi == 2 ? "<=" : "<", a.n + 1, a.n + 2);
    pga_i64(&a, q->hi_ts);
    pga_i64(&a, q->hi_seq);
  }
  if (q->has_lctype) {
    buf_printf(&sql, " AND lctype = $%d", a.n + 1);
    pga_i64(&a, q->lctype);
  }
  if (q->viewer) {
    int v = a.n + 1;
    buf_printf(&sql, " AND (readers IS NULL OR sender = $%d OR strpos(readers, chr(31) || $%d || chr(31)) > 0)", v, v);
    pga_txt(&a, q->viewer);
  }
  /* OLD takes the newest below hi: walk down, hand out reversed */
  buf_printf(&sql, " ORDER BY ts %s, seq %s LIMIT $%d", q->newer ? "ASC" : "DESC", q->newer ? "ASC" : "DESC", a.n + 1);
  pga_i64(&a, q->limit);
  PGresult *res;
  int rc = pgc_sql(&r->c, buf_cstr(&sql), &a, &res);
  buf_free(&sql);
  if (rc < 0) return TERN_ESTORE;
  if (q->newer) {
    scan_msgs(res, 0, cb, arg);
  } else {
    for (int i = PQntuples(res); i-- > 0;) {
      msg_view_t m;
      unsigned char *data;
      pg_read_msg(res, i, 0, &m, &data);
      int stop = cb(arg, &m);
      PQfreemem(data);
      if (stop) break;
    }
  }
  PQclear(res);
  return 0;
}

static int pg_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, ts);
  pga_i64(&a, seq);
  PGresult *res;
  if (rq(r, PS_MSG_GET, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) > 0;
  scan_msgs(res, 0, cb, arg);
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                           int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, from_ts);
  pga_i64(&a, from_seq);
  pga_i64(&a, to_ts);
  pga_i64(&a, to_seq);
  pga_txt(&a, client);
  PGresult *res;
  if (rq(r, PS_RECEIPTS, &a, &res) < 0) return TERN_ESTORE;
  scan_msgs(res, 0, cb, arg);
  PQclear(res);
  return 0;
}

static int unread_in(store_reader_t *r, PGresult *convs, const char *client, unread_cb cb, void *arg);

/* The client's conversations with their read positions, then per conversation its count
 * and its last message in one snapshot, so that they agree (a message committed between
 * the two reads would be the last one but not counted; the login's live pushes are checked
 * against that last message, im_login.c). The list itself needs no snapshot with them, so a
 * client in no conversation (a login storm's) costs one round trip, not three. */
static int pg_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_i64(&a, since);
  pga_i64(&a, max);
  PGresult *convs;
  if (rq(r, PS_UNREAD_CONVS, &a, &convs) < 0) return TERN_ESTORE;
  int rc = 0;
  if (PQntuples(convs) > 0) {
    if (pgc_cmd(&r->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") < 0) rc = TERN_ESTORE;
    else {
      rc = unread_in(r, convs, client, cb, arg);
      if (pgc_cmd(&r->c, rc < 0 ? "ROLLBACK" : "COMMIT") < 0 && rc == 0) rc = TERN_ESTORE;
    }
  }
  PQclear(convs);
  return rc;
}

static int unread_in(store_reader_t *r, PGresult *convs, const char *client, unread_cb cb, void *arg) {
  int rc = 0;
  for (int i = 0; i < PQntuples(convs) && !rc; i++) {
    unread_view_t u = {
        .cid = pg_str(convs, i, 1), .kind = (int)pg_i64(convs, i, 2), .read_changed_at = pg_i64(convs, i, 5)};
    pgargs_t m = {0};
    pga_i64(&m, pg_i64(convs, i, 0));
    pga_i64(&m, pg_i64(convs, i, 3));
    pga_i64(&m, pg_i64(convs, i, 4));
    pga_txt(&m, client);
    PGresult *ms, *ls;
    if (rq(r, PS_UNREAD_MSGS, &m, &ms) < 0) {
      rc = TERN_ESTORE;
      break;
    }
    for (int k = 0; k < PQntuples(ms); k++) {
      u.unread++;
      if (!u.mentioned &&
          (((int)pg_i64(ms, k, 0) & MSG_F_MENTION_ALL) || store_mentions_contain(pg_str(ms, k, 1), client)))
        u.mentioned = 1;
    }
    PQclear(ms);
    pgargs_t l = {0};
    pga_i64(&l, pg_i64(convs, i, 0));
    pga_txt(&l, client);
    if (rq(r, PS_LAST_MSG_FOR, &l, &ls) < 0) {
      rc = TERN_ESTORE;
      break;
    }
    unsigned char *data = NULL;
    if (PQntuples(ls)) pg_read_msg(ls, 0, 0, &u.last, &data);
    cb(arg, &u);
    PQfreemem(data);
    PQclear(ls);
  }
  return rc;
}

static int pg_offline(store_reader_t *r, const char *client, int max,
                      void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  PGresult *convs;
  if (rq(r, PS_OFFLINE_CONVS, &a, &convs) < 0) return TERN_ESTORE;
  int left = max, rc = 0;
  for (int i = 0; i < PQntuples(convs) && left > 0; i++) {
    pgargs_t m = {0};
    pga_i64(&m, pg_i64(convs, i, 0));
    pga_i64(&m, pg_i64(convs, i, 3));
    pga_i64(&m, pg_i64(convs, i, 4));
    pga_txt(&m, client);
    pga_i64(&m, left);
    PGresult *ms;
    if (rq(r, PS_OFFLINE_MSGS, &m, &ms) < 0) {
      rc = TERN_ESTORE;
      break;
    }
    for (int k = 0; k < PQntuples(ms); k++) {
      msg_view_t v;
      unsigned char *data;
      pg_read_msg(ms, k, 0, &v, &data);
      cb(arg, pg_str(convs, i, 1), (int)pg_i64(convs, i, 2), &v);
      PQfreemem(data);
      left--;
    }
    PQclear(ms);
  }
  PQclear(convs);
  return rc;
}

static int pg_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *res;
  if (rq(r, PS_PROGRESS, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    member_progress_t p = {.client = pg_str(res, i, 0),
                           .read_ts = pg_i64(res, i, 1),
                           .read_seq = pg_i64(res, i, 2),
                           .read_at = pg_i64(res, i, 3),
                           .ack_ts = pg_i64(res, i, 4),
                           .ack_seq = pg_i64(res, i, 5),
                           .ack_at = pg_i64(res, i, 6)};
    cb(arg, &p);
  }
  PQclear(res);
  return 0;
}

static int pg_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                            void (*cb)(void *arg, int64_t ts, const char *body), void *arg) {
  /* one row past the limit tells whether there is more; a page never ends inside a group
   * of equal timestamps (store_sqlite.c) */
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_i64(&a, after);
  pga_i64(&a, (int64_t)limit + 200);
  PGresult *res;
  if (rq(r, PS_NOTIFS, &a, &res) < 0) return TERN_ESTORE;
  int n = 0;
  int64_t last_ts = 0;
  *has_more = 0;
  for (int i = 0; i < PQntuples(res); i++) {
    int64_t ts = pg_i64(res, i, 0);
    if (n >= limit && ts != last_ts) {
      *has_more = 1;
      break;
    }
    cb(arg, ts, pg_str(res, i, 1));
    last_ts = ts;
    n++;
  }
  PQclear(res);
  return 0;
}

static int pg_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
                      void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, now);
  pga_i64(&a, idle_before);
  pga_i64(&a, max);
  PGresult *res;
  if (rq(r, PS_EXPIRED, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) cb(arg, pg_i64(res, i, 0), pg_str(res, i, 1), (int)pg_i64(res, i, 2));
  PQclear(res);
  return 0;
}

static int pg_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
                            void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_i64(&a, since);
  pga_i64(&a, max);
  PGresult *res;
  if (rq(r, PS_PATCHES, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    msg_view_t m;
    unsigned char *data;
    pg_read_msg(res, i, 1, &m, &data);
    cb(arg, pg_str(res, i, 0), &m);
    PQfreemem(data);
  }
  PQclear(res);
  return 0;
}

static int pg_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  PGresult *res;
  if (rq(r, PS_MEMBER_INFOS, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    member_info_t mi = {pg_str(res, i, 0), pg_str(res, i, 1), pg_str(res, i, 2), pg_i64(res, i, 3), pg_i64(res, i, 4)};
    cb(arg, &mi);
  }
  PQclear(res);
  return 0;
}

/* (key, time) pages: members, a client's conversations, a conversation's sets. */
static int pairs(store_reader_t *r, int id, pgargs_t *a, void (*cb)(void *arg, const char *key, int64_t at),
                 void *arg) {
  PGresult *res;
  if (rq(r, id, a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) cb(arg, pg_str(res, i, 0), pg_i64(res, i, 1));
  PQclear(res);
  return 0;
}

static int pg_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                           void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_txt(&a, after ? after : "");
  pga_i64(&a, limit);
  return pairs(r, PS_MEMBERS_PAGE, &a, cb, arg);
}

static int pg_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                           void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_txt(&a, after ? after : "");
  pga_i64(&a, limit);
  pga_i64(&a, kind);
  return pairs(r, PS_CLIENT_CONVS, &a, cb, arg);
}

static int pg_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                            void (*cb)(void *arg, const char *client, int64_t at), void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_txt(&a, after ? after : "");
  pga_i64(&a, limit);
  pga_i64(&a, set);
  pga_i64(&a, permanent_only != 0);
  return pairs(r, PS_CONV_SET_PAGE, &a, cb, arg);
}

static int pg_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
                            void (*cb)(void *arg, const char *cid), void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_txt(&a, after ? after : "");
  pga_i64(&a, limit);
  PGresult *res;
  if (rq(r, PS_CLIENT_BLOCKS, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) cb(arg, pg_str(res, i, 0));
  PQclear(res);
  return 0;
}

static int pg_client_blocked(store_reader_t *r, const char *client, const char *cid) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_txt(&a, cid);
  PGresult *res;
  if (rq(r, PS_CLIENT_BLOCKED, &a, &res) < 0) return TERN_ESTORE;
  int n = PQntuples(res) > 0;
  PQclear(res);
  return n;
}

static int pg_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, set);
  pga_txt(&a, client);
  PGresult *res;
  if (rq(r, PS_CONV_SET_EXPIRY, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) == 1;
  if (found) *expire_at = pg_i64(res, 0, 0);
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_shutups_expired(store_reader_t *r, int64_t now, int max,
                              void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg) {
  pgargs_t a = {0};
  pga_i64(&a, now);
  pga_i64(&a, max);
  PGresult *res;
  if (rq(r, PS_SHUTUPS_EXPIRED, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) cb(arg, pg_i64(res, i, 0), pg_str(res, i, 1), pg_str(res, i, 2));
  PQclear(res);
  return 0;
}

static int key_of(store_reader_t *r, int id, pgargs_t *a, int64_t *ts, int64_t *seq) {
  PGresult *res;
  if (rq(r, id, a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) > 0;
  if (found) {
    *ts = pg_i64(res, 0, 0);
    *seq = pg_i64(res, 0, 1);
  }
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_txt(&a, mid);
  return key_of(r, PS_MSG_EXT_GET, &a, ts, seq);
}

static int pg_msg_ext_find(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq) {
  pgargs_t a = {0};
  pga_txt(&a, mid);
  return key_of(r, PS_MSG_EXT_FIND, &a, ts, seq);
}

static int pg_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                        int64_t *ts, int64_t *newest_ts) {
  pgargs_t a = {0};
  pga_i64(&a, conv);
  pga_i64(&a, since_ts);
  pga_txt(&a, sender);
  pga_i64(&a, dt);
  pga_i64(&a, STORE_DT_SCAN);
  PGresult *res;
  if (rq(r, PS_MSG_BY_DT, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) > 0 && !PQgetisnull(res, 0, 1);
  *newest_ts = PQntuples(res) > 0 ? pg_i64(res, 0, 0) : 0;
  if (found) {
    *mid = xstrdup(pg_str(res, 0, 1));
    *ts = pg_i64(res, 0, 2);
  }
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
                      void *arg) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_i64(&a, max);
  PGresult *res;
  if (rq(r, PS_DEVICES, &a, &res) < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    device_view_t d = {pg_str(res, i, 0), pg_str(res, i, 1), pg_str(res, i, 2), pg_i64(res, i, 3)};
    cb(arg, &d);
  }
  PQclear(res);
  return 0;
}

static int pg_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
                               installation_row_t *out) {
  memset(out, 0, sizeof *out);
  pgargs_t a = {0};
  if (id) {
    pga_txt(&a, id);
  } else {
    pga_txt(&a, device_type);
    pga_txt(&a, token);
  }
  PGresult *res;
  if (rq(r, id ? PS_INST_BY_ID : PS_INST_BY_TOKEN, &a, &res) < 0) return TERN_ESTORE;
  int found = PQntuples(res) == 1;
  if (found) {
    out->id = pg_dup(res, 0, 0);
    out->device_type = pg_dup(res, 0, 1);
    out->token = pg_dup(res, 0, 2);
    out->body = pg_dup(res, 0, 3);
    out->created_at = pg_i64(res, 0, 4);
    out->updated_at = pg_i64(res, 0, 5);
  }
  PQclear(res);
  return found ? 0 : TERN_ENOENT;
}

static int pg_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                            int *lineage_revoked) {
  pgargs_t a = {0};
  pga_txt(&a, client);
  pga_bin(&a, lineage, 8);
  PGresult *res;
  if (rq(r, PS_REVOKED, &a, &res) < 0) return TERN_ESTORE;
  *before = pg_i64(res, 0, 0); /* NULL reads as 0: no kick */
  *lineage_revoked = (int)pg_i64(res, 0, 1);
  PQclear(res);
  return 0;
}

/* One bound of an app-wide page (store_sqlite.c: put_bound), its parameters appended. */
static void put_bound(buf_t *sql, pgargs_t *a, const msg_bound_t *b, int lower) {
  const char *op = lower ? (b->incl ? ">=" : ">") : (b->incl ? "<=" : "<");
  if (b->mid) {
    buf_printf(sql, " AND (m.ts, m.seq, m.mid) %s ($%d, $%d, $%d)", op, a->n + 1, a->n + 2, a->n + 3);
    pga_i64(a, b->ts);
    pga_i64(a, b->seq);
    pga_txt(a, b->mid);
  } else {
    buf_printf(sql, " AND m.ts %s $%d", op, a->n + 1);
    pga_i64(a, b->ts);
  }
}

static int pg_app_logs(store_reader_t *r, const app_logs_req_t *q,
                       void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  buf_t sql = BUF_INIT;
  pgargs_t a = {0};
  const char *dir = q->newer ? "ASC" : "DESC";
  buf_append_str(&sql, "SELECT m.ts, m.seq, m.mid, m.sender, m.data, m.flags, m.mentions, m.patch_ts, m.readers,"
                       " c.cid, c.kind FROM msg m JOIN conv c ON c.id = m.conv WHERE true");
  if (q->sender) {
    buf_printf(&sql, " AND m.sender = $%d", a.n + 1);
    pga_txt(&a, q->sender);
  }
  if (q->lo.has) put_bound(&sql, &a, &q->lo, 1);
  if (q->hi.has) put_bound(&sql, &a, &q->hi, 0);
  /* mid breaks ties between conversations: (ts, seq) is unique only within one */
  buf_printf(&sql, " ORDER BY m.ts %s, m.seq %s, m.mid %s LIMIT $%d", dir, dir, dir, a.n + 1);
  pga_i64(&a, q->limit);
  PGresult *res;
  int rc = pgc_sql(&r->c, buf_cstr(&sql), &a, &res);
  buf_free(&sql);
  if (rc < 0) return TERN_ESTORE;
  for (int i = 0; i < PQntuples(res); i++) {
    msg_view_t m;
    unsigned char *data;
    pg_read_msg(res, i, 0, &m, &data);
    cb(arg, pg_str(res, i, 9), (int)pg_i64(res, i, 10), &m);
    PQfreemem(data);
  }
  PQclear(res);
  return 0;
}

/* ---- conversation rows as queries and fetches hand them out */

int pg_conv_rows(store_reader_t *r, PGresult *res, int flags, conv_view_cb cb, void *arg) {
  for (int i = 0; i < PQntuples(res); i++) {
    int64_t id = pg_i64(res, i, 0);
    conv_view_t v = {
        .cid = pg_str(res, i, 1),
        .kind = (int)pg_i64(res, i, 2),
        .created_at = pg_i64(res, i, 3),
        .updated_at = pg_i64(res, i, 4),
        .has_lm = !PQgetisnull(res, i, 5),
        .lm = pg_i64(res, i, 5),
        .doc = pg_str(res, i, 6),
        .expire_at = pg_i64(res, i, 7),
    };
    pgargs_t a = {0};
    pga_i64(&a, id);
    PGresult *mres = NULL, *lres = NULL;
    char **members = NULL;
    size_t n = 0;
    if (!(flags & 1) && v.kind != CONV_ROOM && v.kind != CONV_SYSTEM) {
      if (rq(r, PS_CONV_MEMBERS, &a, &mres) < 0) return TERN_ESTORE;
      n = (size_t)PQntuples(mres);
      members = xcalloc(n + 1, sizeof *members);
      for (size_t k = 0; k < n; k++) members[k] = (char *)pg_str(mres, (int)k, 0);
      v.members = (const char *const *)members;
      v.nmembers = n;
    }
    msg_view_t last;
    unsigned char *data = NULL;
    if (flags & 2) {
      if (rq(r, PS_LAST_MSG, &a, &lres) < 0) {
        PQclear(mres);
        free(members);
        return TERN_ESTORE;
      }
      if (PQntuples(lres)) {
        pg_read_msg(lres, 0, 0, &last, &data);
        v.last = &last;
      }
    }
    cb(arg, &v);
    PQfreemem(data);
    PQclear(lres);
    PQclear(mres);
    free(members);
  }
  return 0;
}

#define PG_CONV_COLS                                                                                                   \
  "c.id, c.cid, c.kind, c.created_at, c.updated_at, coalesce(" PG_LAST_TS("c.id") ", c.lm), c.doc, c.expire_at"

static int pg_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg) {
  if (n == 0) return 0;
  json_t *list = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(list, json_string(cids[i]));
  char *text = json_dumps(list, JSON_COMPACT);
  json_decref(list);
  pgargs_t a = {0};
  pga_txt(&a, text);
  PGresult *res;
  int rc =
      pgc_sql(&r->c, "SELECT " PG_CONV_COLS " FROM conv c WHERE c.cid IN (SELECT jsonb_array_elements_text($1::jsonb))",
              &a, &res);
  free(text);
  if (rc < 0) return TERN_ESTORE;
  rc = pg_conv_rows(r, res, flags, cb, arg);
  PQclear(res);
  return rc;
}

static int pg_read_submit(store_t *s, store_read_t *rd) { return qpool_submit(s->rpool, rd); }

static int pg_fail_backup(store_t *s, const char *dest, int64_t *bytes) {
  (void)s;
  (void)dest;
  (void)bytes;
  log_at(LOG_ERROR, "backup: use pg_dump / pg_basebackup on a PostgreSQL store");
  return TERN_ENOTSUP;
}

int pg_open(const store_options_t *opt, store_t **out);
void pg_close(store_t *s);
void pg_metrics(store_t *s, buf_t *out);
static void pg_fail_writes(store_t *s, int on) { atomic_store(&s->fail_writes, on); }

const store_ops_t store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .submit = pg_submit,
    .fail_writes = pg_fail_writes,
    .backup = pg_fail_backup,
    .metrics = pg_metrics,
    .query_submit = pg_query_submit,
    .read_submit = pg_read_submit,
    .reader_new = pg_reader_new,
    .reader_free = pg_reader_free,
    .conv_load = pg_conv_load,
    .conv_doc = pg_conv_doc,
    .conv_find_unique = pg_conv_find_unique,
    .conv_query_check = pg_conv_query_check,
    .conv_query_until = pg_conv_query_until,
    .conv_count = pg_conv_count,
    .conv_fetch = pg_conv_fetch,
    .logs = pg_logs,
    .msg_get = pg_msg_get,
    .msg_receipts = pg_msg_receipts,
    .unread = pg_unread,
    .offline = pg_offline,
    .progress = pg_progress,
    .notifications = pg_notifications,
    .expired = pg_expired,
    .patches_since = pg_patches_since,
    .member_infos = pg_member_infos,
    .members_page = pg_members_page,
    .client_convs = pg_client_convs,
    .client_blocks = pg_client_blocks,
    .client_blocked = pg_client_blocked,
    .conv_set_page = pg_conv_set_page,
    .conv_set_expiry = pg_conv_set_expiry,
    .shutups_expired = pg_shutups_expired,
    .msg_ext_get = pg_msg_ext_get,
    .msg_ext_find = pg_msg_ext_find,
    .msg_by_dt = pg_msg_by_dt,
    .installation_count = pg_installation_count,
    .installation_query = pg_installation_query,
    .app_logs = pg_app_logs,
    .devices = pg_devices,
    .installation_get = pg_installation_get,
    .token_revoked = pg_token_revoked,
};
