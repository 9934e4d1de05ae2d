/* store_sqlite.c — the embedded default backend: one SQLite file in WAL mode.
 *
 * Shape of the data, chosen for append-mostly writes (design.md: the index, not the log,
 * is the cost): messages live in a WITHOUT ROWID table keyed (conv, ts, seq), so a
 * conversation's history is one contiguous range, new messages go to the end of it, and
 * paging is a range scan with no secondary index. Per-member progress (read/ack) is a
 * position in that key space, so unread counts are range counts. Everything a `where` can
 * name that is not a column lives in the conversation's JSON `doc`.
 *
 * Threads: one writer connection owned by the writer thread (group commit), one read
 * connection per worker. */
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
#include "store_sqlite_int.h"
#include "timeutil.h"
#include "walbuf.h"

#define BATCH_MAX 4096
#define KEY_MAX INT64_MAX

/* Each entry migrates from version i to i+1; never edit a released entry, append. */
static const char *const migrations[] = {
    "CREATE TABLE conv ("
    "  id INTEGER PRIMARY KEY, cid TEXT NOT NULL UNIQUE, kind INTEGER NOT NULL, creator TEXT, unique_id TEXT,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, lm INTEGER, expire_at INTEGER,"
    "  member_count INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL DEFAULT '{}');"
    "CREATE UNIQUE INDEX conv_unique ON conv(unique_id) WHERE unique_id IS NOT NULL;"
    "CREATE INDEX conv_lm ON conv(lm);"
    "CREATE INDEX conv_updated ON conv(updated_at);"
    "CREATE TABLE member ("
    "  conv INTEGER NOT NULL, client TEXT NOT NULL, joined_at INTEGER NOT NULL,"
    "  read_ts INTEGER NOT NULL DEFAULT 0, read_seq INTEGER NOT NULL DEFAULT 0, read_at INTEGER NOT NULL DEFAULT 0,"
    "  ack_ts INTEGER NOT NULL DEFAULT 0, ack_seq INTEGER NOT NULL DEFAULT 0, ack_at INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conv, client)) WITHOUT ROWID;"
    "CREATE INDEX member_client ON member(client, conv);"
    "CREATE TABLE msg ("
    "  conv INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, sender TEXT NOT NULL,"
    "  data BLOB, flags INTEGER NOT NULL DEFAULT 0, mentions TEXT, lctype INTEGER,"
    "  patch_ts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (conv, ts, seq)) WITHOUT ROWID;",
    /* 2: roles, shut-up members, blacklists, and an index to find recent edits */
    "CREATE TABLE member_info (conv INTEGER NOT NULL, client TEXT NOT NULL, role TEXT NOT NULL, info_id TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (conv, client)) WITHOUT ROWID;"
    "CREATE TABLE conv_set (conv INTEGER NOT NULL, kind INTEGER NOT NULL, client TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (conv, kind, client)) WITHOUT ROWID;"
    "CREATE TABLE client_block (client TEXT NOT NULL, cid TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (client, cid)) WITHOUT ROWID;"
    "CREATE INDEX msg_patch ON msg(patch_ts, conv) WHERE patch_ts > 0;",
    /* 3: permanent conversation notifications kept for /rtm/notifications (§3.20) */
    "CREATE TABLE notif (client TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    "  PRIMARY KEY (client, ts, seq)) WITHOUT ROWID;"
    "CREATE INDEX notif_ts ON notif(ts);",
    /* 4: offline push (§10) — `_Installation` objects, and the devices each client's
     * offline messages go to: one row per (client, token), from an installation's channels
     * or from a `report upload` / login deviceToken (installation_id NULL) */
    "CREATE TABLE installation (id TEXT PRIMARY KEY, device_type TEXT NOT NULL, token TEXT NOT NULL,"
    "  body TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX installation_token ON installation(device_type, token);"
    "CREATE TABLE device (client TEXT NOT NULL, token TEXT NOT NULL, type TEXT NOT NULL, installation_id TEXT,"
    "  badge INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL, PRIMARY KEY (client, token)) WITHOUT ROWID;"
    "CREATE INDEX device_token ON device(token);"
    "CREATE INDEX device_installation ON device(installation_id) WHERE installation_id IS NOT NULL;",
    /* 5: messages only some members see (service conversations: a message to chosen
     * subscribers, a subscriber's own message): the readers besides the sender, each id
     * framed by char(31); NULL = every member */
    "ALTER TABLE msg ADD COLUMN readers TEXT;",
    /* 6: temporary shut-ups (REST …/temporary-silenceds): the time the entry lifts, NULL
     * for permanent ones; the sweep finds the due ones through the partial index */
    ("ALTER TABLE conv_set ADD COLUMN expire_at INTEGER;"
     "CREATE INDEX conv_set_expiry ON conv_set(expire_at) WHERE expire_at IS NOT NULL;"),
    /* 7: queries sort by the newest message's time (QUERY_LM_SQL), not the lagging lm
     * column, so its index only cost writes */
    "DROP INDEX conv_lm;",
    /* 8: session-token revocations (revoke.h): logged-out or displaced token lineages, and
     * per client the time up to which an admin kick revoked every token; each row goes
     * once every token it names has expired (expires_at) */
    ("CREATE TABLE token_revoked (lineage BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;"
     "CREATE INDEX token_revoked_expiry ON token_revoked(expires_at);"
     "CREATE TABLE client_revoked (client TEXT PRIMARY KEY, before INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
     " WITHOUT ROWID;"
     "CREATE INDEX client_revoked_expiry ON client_revoked(expires_at);"),
    /* 9: imported history (rest_import.c): message ids that are not tern's own map to
     * their key in msg_ext, looked up only in conversations flagged ext_ids; an import
     * keeps the cloud's updatedAt and lm, so the idle sweep counts from imported_at too
     * (else what was idle for a year in the cloud would go the second it arrived);
     * installations are read in updatedAt order by an importer's delta (`_Installation`).
     * A deleted conversation's mappings go with it: its row id can be handed out again,
     * and a stale mapping would make a new conversation's import skip its messages */
    ("CREATE TABLE msg_ext (conv INTEGER NOT NULL, mid TEXT NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,"
     "  PRIMARY KEY (conv, mid)) WITHOUT ROWID;"
     "CREATE TRIGGER msg_ext_conv_gone AFTER DELETE ON conv BEGIN DELETE FROM msg_ext WHERE conv = old.id; END;"
     "ALTER TABLE conv ADD COLUMN ext_ids INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE conv ADD COLUMN imported_at INTEGER;"
     "CREATE INDEX installation_updated ON installation(updated_at);"),
    /* 10: a hash of the client's dedupe token (directCommand dt) of each message, so a
     * resend after a reconnect is answered with the stored message (store_msg_by_dt); no
     * index: it is looked for only within a recent range of the conversation's primary key */
    "ALTER TABLE msg ADD COLUMN dt INTEGER;",
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

typedef struct {
  int64_t conv, ts;
} lm_slot_t;
typedef struct { /* conv id → newest message time, open addressing (conv 0 = empty) */
  lm_slot_t *v;
  size_t cap, n;
} lm_tab_t;

struct store {
  const store_ops_t *ops; /* first: store.c finds the table here */
  char *path;
  int sync_full, inline_writes;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  sqlite3 *wdb;
  pthread_t writer;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* CLOCK_MONOTONIC: the writer also waits out the commit interval */
  store_job_t *head, *tail;
  size_t queued;         /* jobs in head..tail */
  int64_t head_since_us; /* when head was queued (tern_store_queue_wait_seconds) */
  int writer_asleep;     /* waiting for work with none queued: a submit must wake it */
  int64_t interval_us, last_commit_us;
  store_job_t *docs_waiting; /* writer only: attribute updates held for the next docs round */
  int64_t docs_last_us;      /* writer only: when the last docs round ended */
  lm_tab_t lm;               /* writer only: lm not yet written (see lm_note) */
  int64_t lm_flushed_us;
  int closing, started;
  atomic_int fail_writes;
  /* checkpoints run on their own thread and connection, so the writer waits only for the
   * short last round of a catch-up (checkpointer_main), not for every checkpoint's fsyncs
   * (tern-bench saw 47 ms commit stalls when the writer checkpointed itself) */
  pthread_t checkpointer;
  sqlite3 *cdb;
  int ckpt_started, ckpt_stop, ckpt_wanted;
  atomic_int ckpt_done; /* the WAL frames the last round had copied */
  int ckpt_hold;        /* the checkpointer's last round is waiting: start no batch */
  int writer_busy;      /* a batch is running (between taking it and posting its completions) */
  pthread_cond_t ckpt_cv;
  sqlite3_stmt *ins_conv, *ins_member, *del_member, *count_members, *find_unique, *ins_msg, *upd_lm, *upd_ack,
      *upd_read, *del_conv_msgs, *del_conv_members, *del_conv, *upd_time, *ins_set, *del_set, *ins_role, *del_role,
      *ins_cblock, *del_cblock, *del_conv_sets, *del_conv_roles, *upd_msg, *del_msg, *ins_notif, *prune_notif;
  sqlite3_stmt *ins_device, *move_device, *trim_devices, *del_device_token, *set_badge, *add_badge, *ins_inst,
      *del_inst, *del_inst_devices, *ins_inst_device;
  sqlite3_stmt *ins_revoked, *ins_client_revoked, *prune_revoked, *prune_client_revoked;
  atomic_llong notif_seq;
  qpool_t *qpool;      /* conversation queries (store/qpool.c) */
  store_import_t *imp; /* the bulk import's statements, prepared on its first job */
  /* Which clients may have a row in member (member_note, member_maybe): one bit per hash of
   * a client id, set by the writer before a member row is written, read by the workers at
   * login; member_off turns the filter off (every lookup says "maybe"). */
  _Atomic uint64_t *member_bits;
  atomic_int member_off;
};

enum { LOGS_VARIANTS = 2 * 3 * 3 * 2 };

struct store_reader {
  const store_ops_t *ops; /* first, as in struct store */
  store_t *s;
  sqlite3 *db;
  sqlite3_stmt *conv_load, *conv_doc, *conv_members, *conv_sets, *member_infos, *client_blocks, *client_blocked,
      *find_unique, *last_msg, *last_msg_for, *msg_get, *receipts, *unread_convs, *unread_msgs, *offline_convs,
      *offline_msgs, *progress, *patches, *notifs, *expired, *devices, *inst_by_id, *inst_by_token, *revoked;
  sqlite3_stmt *msg_ext_get; /* prepared on first use: only conversations with imported ids ask */
  sqlite3_stmt *msg_by_dt;   /* prepared on first use: only resends after a reconnect ask */
  sqlite3_stmt *logs[LOGS_VARIANTS];
};

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
    log_at(LOG_ERROR, "sqlite prepare failed: %s: %s", sqlite3_errmsg(db), sql);
    return TERN_ESTORE;
  }
  return 0;
}

static int exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
    log_at(LOG_ERROR, "sqlite: %s (%s)", err ? err : "?", sql);
    sqlite3_free(err);
    return TERN_ESTORE;
  }
  return 0;
}

/* ---- the member filter: logins of clients that are in no conversation skip the store
 *
 * At login the unread (or offline) read looks for the client's member rows; a client with
 * none (a new one, a storm of them) gets nothing, yet the read cost a read transaction, and
 * with it SQLite's two fcntl() locks on the WAL index, ~14% of the server's CPU in a login
 * storm (bench/README.md, "login storm"). The filter answers "no member row" without the
 * store. Bits are only ever set (a client that left every conversation still reads), by
 * the writer before the row's commit, so a reader that sees a clear bit began before any
 * such row was visible: it misses nothing it could have read. A bulk import writes member
 * rows in store_sqlite_import.c and turns the filter off until the next open, which
 * rebuilds it from the table. 2^23 bits (1 MiB, touched only where set): at a million
 * members about one client in nine without rows still reads. */
#define MEMBER_BITS (1u << 23)

static uint64_t member_hash(const char *client) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a, then a finaliser */
  for (; *client; client++) h = (h ^ (uint8_t)*client) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

static void member_note(store_t *s, const char *client) {
  uint32_t b = (uint32_t)member_hash(client) & (MEMBER_BITS - 1);
  atomic_fetch_or(&s->member_bits[b >> 6], 1ull << (b & 63));
}

/* 0: the client has no row in member; 1: it may have. */
static int member_maybe(store_t *s, const char *client) {
  if (atomic_load(&s->member_off)) return 1;
  uint32_t b = (uint32_t)member_hash(client) & (MEMBER_BITS - 1);
  return (atomic_load(&s->member_bits[b >> 6]) >> (b & 63)) & 1;
}

static int member_filter_load(store_t *s) {
  s->member_bits = xcalloc(MEMBER_BITS / 64, sizeof *s->member_bits);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->wdb, "SELECT DISTINCT client FROM member", -1, &st, NULL) != SQLITE_OK) return TERN_ESTORE;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) member_note(s, (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

static int sq_query_submit(store_t *s, store_query_t *q) { return qpool_submit(s->qpool, q); }

static void regexp_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const char *pat = (const char *)sqlite3_value_text(argv[0]);
  const char *opts = (const char *)sqlite3_value_text(argv[1]);
  if (sqlite3_value_type(argv[2]) != SQLITE_TEXT || !pat) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  const char *subj = (const char *)sqlite3_value_text(argv[2]);
  int rc = query_regex_match(pat, opts ? opts : "", subj, (size_t)sqlite3_value_bytes(argv[2]));
  if (rc < 0)
    sqlite3_result_error(ctx, rc == TERN_ETIMEDOUT ? "query deadline passed" : "invalid regular expression", -1);
  else sqlite3_result_int(ctx, rc);
}

/* vfs: NULL for the default, or WALBUF_VFS for the writer's connection. */
static int open_db(const char *path, int readonly, const char *vfs, sqlite3 **out) {
  sqlite3 *db = NULL;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path, &db, flags, vfs) != SQLITE_OK) {
    log_at(LOG_ERROR, "cannot open database %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return TERN_ESTORE;
  }
  sqlite3_busy_timeout(db, 10000);
  sqlite3_extended_result_codes(db, 1);
  if (readonly) {
    exec(db, "PRAGMA query_only=1; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;");
    sqlite3_create_function(db, "regexp", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, regexp_fn, NULL, NULL);
  }
  *out = db;
  return 0;
}

static int migrate(sqlite3 *db) {
  if (exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;") < 0)
    return TERN_ESTORE;
  int version = 0;
  sqlite3_stmt *st;
  if (prepare(db, "SELECT value FROM meta WHERE key='schema_version'", &st) < 0) return TERN_ESTORE;
  if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version > (int)N_MIGRATIONS) {
    log_at(LOG_ERROR, "database schema version %d is newer than this ternd (%d)", version, (int)N_MIGRATIONS);
    return TERN_ESTORE;
  }
  for (int v = version; v < (int)N_MIGRATIONS; v++) {
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta VALUES ('schema_version', '%d');", v + 1);
    if (exec(db, "BEGIN") < 0) return TERN_ESTORE;
    if (exec(db, migrations[v]) < 0 || exec(db, sql) < 0) {
      exec(db, "ROLLBACK");
      return TERN_ESTORE;
    }
    if (exec(db, "COMMIT") < 0) return TERN_ESTORE;
    log_at(LOG_INFO, "database schema migrated to version %d", v + 1);
  }
  return 0;
}

/* ---------------------------------------------------------------- writer side */

static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rc;
}

static int run_conv_create(store_t *s, job_conv_create_t *j) {
  conv_row_t *r = &j->row;
  sqlite3_stmt *st = s->ins_conv;
  sqlite3_bind_text(st, 1, r->cid, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, r->kind);
  sqlite3_bind_text(st, 3, r->creator, -1, SQLITE_STATIC);
  if (r->unique_id) sqlite3_bind_text(st, 4, r->unique_id, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 4);
  sqlite3_bind_int64(st, 5, r->created_at);
  sqlite3_bind_int64(st, 6, r->updated_at);
  if (r->expire_at) sqlite3_bind_int64(st, 7, r->expire_at);
  else sqlite3_bind_null(st, 7);
  sqlite3_bind_int64(st, 8, (int64_t)r->nmembers);
  sqlite3_bind_text(st, 9, j->doc ? j->doc : "{}", -1, SQLITE_STATIC);
  int rc = step_done(st);
  sqlite3_clear_bindings(st);
  if (rc == SQLITE_CONSTRAINT_UNIQUE && r->unique_id) {
    /* Another start with the same member set committed first: answer with that one. */
    sqlite3_stmt *f = s->find_unique;
    sqlite3_bind_text(f, 1, r->unique_id, -1, SQLITE_STATIC);
    if (sqlite3_step(f) == SQLITE_ROW) {
      j->existing_cid = xstrdup((const char *)sqlite3_column_text(f, 0));
      j->existing_created_at = sqlite3_column_int64(f, 1);
    }
    sqlite3_reset(f);
    return j->existing_cid ? TERN_EEXIST : rc;
  }
  if (rc) return rc;
  r->id = sqlite3_last_insert_rowid(s->wdb);
  for (size_t i = 0; i < r->nmembers; i++) {
    member_note(s, r->members[i]);
    sqlite3_stmt *m = s->ins_member;
    sqlite3_bind_int64(m, 1, r->id);
    sqlite3_bind_text(m, 2, r->members[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(m, 3, r->created_at);
    sqlite3_bind_int64(m, 4, 0);
    sqlite3_bind_int64(m, 5, 0);
    if ((rc = step_done(m))) return rc;
  }
  return 0;
}

static int run_msg_insert(store_t *s, job_msg_insert_t *j) {
  sqlite3_stmt *st = s->ins_msg;
  sqlite3_bind_int64(st, 1, j->conv);
  sqlite3_bind_int64(st, 2, j->ts);
  sqlite3_bind_int64(st, 3, j->seq);
  sqlite3_bind_text(st, 4, j->mid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, j->sender, -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 6, j->data ? (const void *)j->data : "", (int)j->len, SQLITE_STATIC);
  sqlite3_bind_int(st, 7, j->flags);
  if (j->mentions) sqlite3_bind_text(st, 8, j->mentions, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 8);
  if (j->has_lctype) sqlite3_bind_int(st, 9, j->lctype);
  else sqlite3_bind_null(st, 9);
  sqlite3_bind_int64(st, 10, j->patch_ts);
  if (j->readers) sqlite3_bind_text(st, 11, j->readers, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 11);
  if (j->dt) sqlite3_bind_int64(st, 12, j->dt);
  else sqlite3_bind_null(st, 12);
  int rc = step_done(st);
  sqlite3_clear_bindings(st);
  return rc;
}

/* A conversation's stored `lm` (its last message's time) lags its messages by up to
 * LM_FLUSH_US. Updating the row in every commit cost a page of the conv table and one of
 * its lm index per conversation per commit — more than the message itself: p99 latency at
 * 25,000 messages/s went from ~60 ms to ~15 ms without it. So commits note the newest
 * timestamp per conversation in s->lm, and one commit a second writes them all. Everything
 * that shows or compares lm reads the newest message instead (QUERY_LM_SQL, LAST_TS); the
 * column is what the idle-expiry sweep compares, where a second (or a crash's loss of the
 * pending notes) does not matter, and the fallback once every message is deleted. */
#define LM_FLUSH_US 1000000

static int64_t mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void lm_note(lm_tab_t *t, int64_t conv, int64_t ts) {
  if ((t->n + 1) * 2 > t->cap) { /* keep it at most half full: rehash into twice the room */
    lm_tab_t g = {xcalloc(t->cap ? t->cap * 2 : 64, sizeof(lm_slot_t)), t->cap ? t->cap * 2 : 64, 0};
    for (size_t i = 0; i < t->cap; i++)
      if (t->v[i].conv) lm_note(&g, t->v[i].conv, t->v[i].ts);
    free(t->v);
    *t = g;
  }
  size_t i = (size_t)((uint64_t)conv * 0x9E3779B97F4A7C15ull) & (t->cap - 1);
  while (t->v[i].conv && t->v[i].conv != conv) i = (i + 1) & (t->cap - 1);
  if (!t->v[i].conv) {
    t->v[i].conv = conv;
    t->n++;
  }
  if (ts > t->v[i].ts) t->v[i].ts = ts;
}

static void lm_clear(lm_tab_t *t) {
  if (t->n) memset(t->v, 0, t->cap * sizeof *t->v);
  t->n = 0;
}

static int lm_flush(store_t *s, const lm_tab_t *t) {
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->v[i].conv) continue;
    sqlite3_bind_int64(s->upd_lm, 1, t->v[i].ts);
    sqlite3_bind_int64(s->upd_lm, 2, t->v[i].conv);
    int rc = step_done(s->upd_lm);
    if (rc) return rc;
  }
  return 0;
}

/* At shutdown: the pending notes. */
static void lm_final(store_t *s) {
  if (!s->lm.n || exec(s->wdb, "BEGIN IMMEDIATE") < 0) return;
  if (lm_flush(s, &s->lm) != 0 || exec(s->wdb, "COMMIT") < 0) {
    exec(s->wdb, "ROLLBACK");
    return;
  }
  lm_clear(&s->lm);
}

static int run_progress(store_t *s, job_progress_t *j, sqlite3_stmt *st) {
  sqlite3_bind_int64(st, 1, j->ts);
  sqlite3_bind_int64(st, 2, j->seq);
  sqlite3_bind_int64(st, 3, j->at);
  sqlite3_bind_int64(st, 4, j->conv);
  sqlite3_bind_text(st, 5, j->client, -1, SQLITE_STATIC);
  return step_done(st);
}

static int run_members(store_t *s, job_members_t *j, int add) {
  int rc;
  for (size_t i = 0; i < j->n; i++) {
    if (!add) { /* a member who leaves loses its role */
      sqlite3_bind_int64(s->del_role, 1, j->conv);
      sqlite3_bind_text(s->del_role, 2, j->clients[i], -1, SQLITE_STATIC);
      if ((rc = step_done(s->del_role))) return rc;
    }
    if (add) member_note(s, j->clients[i]);
    sqlite3_stmt *st = add ? s->ins_member : s->del_member;
    sqlite3_bind_int64(st, 1, j->conv);
    sqlite3_bind_text(st, 2, j->clients[i], -1, SQLITE_STATIC);
    if (add) {
      sqlite3_bind_int64(st, 3, j->updated_at);
      sqlite3_bind_int64(st, 4, j->seen_ts);
      sqlite3_bind_int64(st, 5, j->seen_seq);
    }
    if ((rc = step_done(st))) return rc;
  }
  sqlite3_bind_int64(s->count_members, 1, j->updated_at);
  sqlite3_bind_int64(s->count_members, 2, j->conv);
  return step_done(s->count_members);
}

static int run_conv_delete(store_t *s, job_members_t *j) {
  sqlite3_stmt *sts[5] = {s->del_conv_msgs, s->del_conv_members, s->del_conv_sets, s->del_conv_roles, s->del_conv};
  for (int i = 0; i < 5; i++) {
    sqlite3_bind_int64(sts[i], 1, j->conv);
    int rc = step_done(sts[i]);
    if (rc) return rc;
  }
  return 0;
}

/* Every update of one conversation in a batch is applied by as few statements as SQLite's
 * limits allow (store_doc.c): the stored document is parsed and rewritten once per
 * statement, not once per change, so updates hammering a large document cost the writer
 * (and everyone whose acks wait for it) about one rewrite per commit. */
static int run_conv_update(store_t *s, job_conv_update_t *j) {
  if (j->merged) return j->merged_rc;
  doc_group_t g;
  doc_group_init(&g);
  int64_t updated_at = j->updated_at;
  int rc = 0;
  for (store_job_t *k = &j->job; k && !rc; k = k->next) {
    job_conv_update_t *u = (job_conv_update_t *)k;
    if (k->type != JOB_CONV_UPDATE || u->conv != j->conv || u->merged) continue;
    if (u != j) u->merged = 1;
    if (u->updated_at > updated_at) updated_at = u->updated_at;
    for (size_t i = 0; i < u->n && !rc; i++) rc = doc_group_add(s->wdb, &g, j->conv, &u->changes[i]);
  }
  if (!rc) rc = doc_group_flush(s->wdb, &g, j->conv);
  doc_group_free(&g);
  if (!rc) {
    sqlite3_bind_int64(s->upd_time, 1, updated_at);
    sqlite3_bind_int64(s->upd_time, 2, j->conv);
    rc = step_done(s->upd_time);
  }
  for (store_job_t *k = j->job.next; k; k = k->next) /* the merged ones report the same */
    if (k->type == JOB_CONV_UPDATE && ((job_conv_update_t *)k)->conv == j->conv && ((job_conv_update_t *)k)->merged)
      ((job_conv_update_t *)k)->merged_rc = rc;
  return rc;
}

static int run_set_change(store_t *s, job_set_t *j) {
  int rc;
  for (size_t i = 0; i < j->n; i++) {
    if (j->set == SET_MANAGER) {
      /* roles live in member_info (`_ConversationMemberInfo`); Member is the absence of a row */
      sqlite3_stmt *st = j->add ? s->ins_role : s->del_role;
      sqlite3_bind_int64(st, 1, j->conv);
      sqlite3_bind_text(st, 2, j->clients[i], -1, SQLITE_STATIC);
      if (j->add) {
        uint8_t rnd[12];
        char id[25];
        random_bytes(rnd, sizeof rnd);
        hex_encode(rnd, sizeof rnd, id);
        sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, j->at);
        if (j->role) sqlite3_bind_text(st, 5, j->role, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 5);
      }
      if ((rc = step_done(st))) return rc;
      continue;
    }
    sqlite3_stmt *st = j->add ? s->ins_set : s->del_set;
    sqlite3_bind_int64(st, 1, j->conv);
    sqlite3_bind_int(st, 2, j->set);
    sqlite3_bind_text(st, 3, j->clients[i], -1, SQLITE_STATIC);
    if (j->add) {
      sqlite3_bind_int64(st, 4, j->at);
      if (j->expire_at) sqlite3_bind_int64(st, 5, j->expire_at);
      else sqlite3_bind_null(st, 5);
    }
    if ((rc = step_done(st))) return rc;
  }
  if (!j->remove_members) return 0;
  job_members_t m = {.conv = j->conv, .updated_at = j->at, .clients = j->clients, .n = j->n};
  return run_members(s, &m, 0);
}

static int run_client_block(store_t *s, job_client_block_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    sqlite3_stmt *st = j->add ? s->ins_cblock : s->del_cblock;
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->cids[i], -1, SQLITE_STATIC);
    if (j->add) sqlite3_bind_int64(st, 3, j->at);
    int rc = step_done(st);
    if (rc) return rc;
  }
  return 0;
}

static int run_msg_delete(store_t *s, job_msg_patch_t *j) {
  sqlite3_stmt *st = s->del_msg;
  sqlite3_bind_int64(st, 1, j->conv);
  sqlite3_bind_int64(st, 2, j->ts);
  sqlite3_bind_int64(st, 3, j->seq);
  int rc = step_done(st);
  if (rc) return rc;
  return sqlite3_changes(s->wdb) == 1 ? 0 : SQLITE_NOTFOUND;
}

static int run_msg_patch(store_t *s, job_msg_patch_t *j) {
  sqlite3_stmt *st = s->upd_msg;
  sqlite3_bind_blob(st, 1, j->data ? (const void *)j->data : "", (int)j->len, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, j->flags);
  if (j->mentions) sqlite3_bind_text(st, 3, j->mentions, -1, SQLITE_STATIC);
  else sqlite3_bind_null(st, 3);
  sqlite3_bind_int64(st, 4, j->patch_ts);
  sqlite3_bind_int64(st, 5, j->conv);
  sqlite3_bind_int64(st, 6, j->ts);
  sqlite3_bind_int64(st, 7, j->seq);
  if (j->has_lctype) sqlite3_bind_int(st, 8, j->lctype);
  else sqlite3_bind_null(st, 8);
  int rc = step_done(st);
  sqlite3_clear_bindings(st);
  if (rc) return rc;
  return sqlite3_changes(s->wdb) == 1 ? 0 : SQLITE_NOTFOUND;
}

static int run_notif(store_t *s, job_notif_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    sqlite3_stmt *st = s->ins_notif;
    sqlite3_bind_text(st, 1, j->clients[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->ts);
    sqlite3_bind_int64(st, 3, atomic_fetch_add(&s->notif_seq, 1));
    sqlite3_bind_text(st, 4, j->body, -1, SQLITE_STATIC);
    int rc = step_done(st);
    if (rc) return rc;
  }
  return 0;
}

static int run_prune(store_t *s, job_prune_t *j) {
  sqlite3_bind_int64(s->prune_notif, 1, j->notif_before);
  return step_done(s->prune_notif);
}

static int run_device(store_t *s, job_device_t *j) {
  int rc;
  if (j->op == DEVICE_PUT) {
    sqlite3_stmt *st = s->ins_device;
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, j->at);
    if ((rc = step_done(st))) return rc;
    st = s->move_device; /* a device reports one client at a time: the last login wins */
    sqlite3_bind_text(st, 1, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->client, -1, SQLITE_STATIC);
    if ((rc = step_done(st))) return rc;
    st = s->trim_devices;
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, STORE_MAX_REPORTED_DEVICES);
    return step_done(st);
  }
  sqlite3_stmt *st = j->op == DEVICE_DROP ? s->del_device_token : j->add ? s->add_badge : s->set_badge;
  sqlite3_bind_text(st, 1, j->token, -1, SQLITE_STATIC);
  if (j->op == DEVICE_BADGE) sqlite3_bind_int64(st, 2, j->badge);
  return step_done(st);
}

static int run_installation(store_t *s, job_installation_t *j) {
  int rc;
  sqlite3_bind_text(s->del_inst_devices, 1, j->id, -1, SQLITE_STATIC);
  if ((rc = step_done(s->del_inst_devices))) return rc;
  if (j->remove) {
    sqlite3_bind_text(s->del_inst, 1, j->id, -1, SQLITE_STATIC);
    return step_done(s->del_inst);
  }
  sqlite3_stmt *st = s->ins_inst;
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, j->device_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, j->token, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, j->body ? j->body : "{}", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, j->created_at);
  sqlite3_bind_int64(st, 6, j->updated_at);
  if ((rc = step_done(st))) return rc;
  for (size_t i = 0; i < j->n; i++) {
    st = s->ins_inst_device;
    sqlite3_bind_text(st, 1, j->channels[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->device_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, j->updated_at);
    if ((rc = step_done(st))) return rc;
  }
  if (!j->has_badge) return 0;
  sqlite3_bind_text(s->set_badge, 1, j->token, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->set_badge, 2, j->badge);
  return step_done(s->set_badge);
}

/* A revocation, then up to 16 rows of each kind whose tokens have all expired: pruning
 * rides on the writes that grow the tables, so no sweep is needed to bound them. */
static int run_revoke(store_t *s, job_revoke_t *j) {
  int rc;
  sqlite3_stmt *st = j->client ? s->ins_client_revoked : s->ins_revoked;
  if (j->client) {
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->at);
    sqlite3_bind_int64(st, 3, j->expires_at);
  } else {
    sqlite3_bind_blob(st, 1, j->lineage, sizeof j->lineage, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->expires_at);
  }
  if ((rc = step_done(st))) return rc;
  sqlite3_bind_int64(s->prune_revoked, 1, j->at);
  if ((rc = step_done(s->prune_revoked))) return rc;
  sqlite3_bind_int64(s->prune_client_revoked, 1, j->at);
  return step_done(s->prune_client_revoked);
}

static int run_job(store_t *s, store_job_t *j) {
  switch (j->type) {
  case JOB_CONV_CREATE: return run_conv_create(s, (job_conv_create_t *)j);
  case JOB_MSG_INSERT: return run_msg_insert(s, (job_msg_insert_t *)j);
  case JOB_MEMBER_ACK: return run_progress(s, (job_progress_t *)j, s->upd_ack);
  case JOB_MEMBER_READ: return run_progress(s, (job_progress_t *)j, s->upd_read);
  case JOB_MEMBERS_ADD: return run_members(s, (job_members_t *)j, 1);
  case JOB_MEMBERS_REMOVE: return run_members(s, (job_members_t *)j, 0);
  case JOB_CONV_DELETE: return run_conv_delete(s, (job_members_t *)j);
  case JOB_CONV_UPDATE: return run_conv_update(s, (job_conv_update_t *)j);
  case JOB_SET_CHANGE: return run_set_change(s, (job_set_t *)j);
  case JOB_CLIENT_BLOCK: return run_client_block(s, (job_client_block_t *)j);
  case JOB_MSG_PATCH: return run_msg_patch(s, (job_msg_patch_t *)j);
  case JOB_MSG_DELETE: return run_msg_delete(s, (job_msg_patch_t *)j);
  case JOB_NOTIF: return run_notif(s, (job_notif_t *)j);
  case JOB_PRUNE: return run_prune(s, (job_prune_t *)j);
  case JOB_DEVICE: return run_device(s, (job_device_t *)j);
  case JOB_INSTALLATION: return run_installation(s, (job_installation_t *)j);
  case JOB_REVOKE: return run_revoke(s, (job_revoke_t *)j);
  case JOB_IMPORT: /* writes member rows the filter does not see: off until the next open */
    atomic_store(&s->member_off, 1);
    return store_import_run(s->wdb, &s->imp, (job_import_t *)j);
  }
  return SQLITE_MISUSE;
}

static int multi_statement(job_type_t t) {
  return t == JOB_CONV_CREATE || t == JOB_CONV_UPDATE || t == JOB_MEMBERS_ADD || t == JOB_MEMBERS_REMOVE ||
         t == JOB_CONV_DELETE || t == JOB_SET_CHANGE || t == JOB_CLIENT_BLOCK || t == JOB_NOTIF || t == JOB_DEVICE ||
         t == JOB_INSTALLATION || t == JOB_REVOKE || t == JOB_IMPORT;
}

/* One transaction for the whole batch; a job that fails alone is rolled back alone
 * (savepoint), a failure that aborts the transaction (disk full, I/O error) fails every
 * job of the batch, because none of them is durable. */
static void run_batch(store_t *s, store_job_t *batch) {
  lm_tab_t lm = {0}; /* this batch's; joins s->lm once committed */
  int64_t now = mono_us();
  int flush_lm = now - s->lm_flushed_us >= LM_FLUSH_US;
  int txn_ok = exec(s->wdb, "BEGIN IMMEDIATE") == 0;
  uint64_t njobs = 0;
  for (store_job_t *j = batch; j; j = j->next) njobs++;
  metric_observe_count(M_COMMIT_BATCH, njobs);
  for (store_job_t *j = batch; j; j = j->next) {
    if (!txn_ok) {
      j->result = TERN_ESTORE;
      continue;
    }
    int sp = multi_statement(j->type);
    if (sp) exec(s->wdb, "SAVEPOINT job");
    int rc = run_job(s, j);
    if (rc == TERN_EEXIST) {
      j->result = TERN_EEXIST;
    } else if (rc) {
      log_at(LOG_ERROR, "store: job %d failed: %s", j->type, sqlite3_errstr(rc));
      j->result = TERN_ESTORE;
    } else {
      j->result = 0;
      if (j->type == JOB_MSG_INSERT) lm_note(&lm, ((job_msg_insert_t *)j)->conv, ((job_msg_insert_t *)j)->ts);
    }
    if (sqlite3_get_autocommit(s->wdb)) { /* SQLite rolled the whole transaction back */
      txn_ok = 0;
      for (store_job_t *k = batch; k; k = k->next) k->result = TERN_ESTORE;
      continue;
    }
    if (sp) exec(s->wdb, rc && rc != TERN_EEXIST ? "ROLLBACK TO job; RELEASE job" : "RELEASE job");
  }
  if (txn_ok) {
    if ((flush_lm && (lm_flush(s, &s->lm) != 0 || lm_flush(s, &lm) != 0)) || atomic_load(&s->fail_writes) ||
        exec(s->wdb, "COMMIT") < 0) {
      exec(s->wdb, "ROLLBACK");
      for (store_job_t *j = batch; j; j = j->next) j->result = TERN_ESTORE;
    } else if (flush_lm) {
      lm_clear(&s->lm);
      s->lm_flushed_us = now;
    } else {
      for (size_t i = 0; i < lm.cap; i++)
        if (lm.v[i].conv) lm_note(&s->lm, lm.v[i].conv, lm.v[i].ts);
    }
  }
  free(lm.v);
  int64_t took = mono_us() - now;
  metric_observe_us(M_COMMIT, (uint64_t)took);
  metric_add(M_STAGE_COMMIT, took * 1000);
  /* Completions go back as one chain per worker: one lock and one wake-up per batch. */
  task_t *head[MAX_WORKERS] = {0}, *tail[MAX_WORKERS] = {0};
  while (batch) {
    store_job_t *j = batch;
    batch = batch->next;
    if (j->worker >= 0 && j->worker < MAX_WORKERS) {
      j->task.next = NULL;
      if (tail[j->worker]) tail[j->worker]->next = &j->task;
      else head[j->worker] = &j->task;
      tail[j->worker] = &j->task;
    } else if (j->free_fn) {
      j->free_fn(j);
    }
  }
  for (int w = 0; w < MAX_WORKERS; w++)
    if (head[w]) s->post(s->post_arg, w, head[w]);
}

/* Document rewrites commit after the rest of their batch, in a transaction of their own:
 * one conversation update can rewrite a large document (max_conv_doc allows 16 MiB), and
 * the messages, acks and receipts gathered beside it must not wait for that. Nothing else
 * reads or writes conv.doc, so the order between the two parts does not matter.
 *
 * And at most one such round per DOCS_INTERVAL_US: updates that arrive sooner wait for the
 * next round and merge there (run_conv_update), so a client hammering a large document
 * costs the writer one rewrite of it per round, not one per commit — a commit comes every
 * few hundred µs under load, and every client's acks wait for the writer (issue #11: a
 * document at the size cap updated ~1,000 times a second held bystanders' acks for up to
 * 270 ms). An update's ack waits for its round, at most DOCS_INTERVAL_US more. */
#define DOCS_INTERVAL_US 10000

static void run_batch_split(store_t *s, store_job_t *batch, int force_docs) {
  store_job_t *rest = NULL, **rt = &rest, **dt = &s->docs_waiting;
  while (*dt) dt = &(*dt)->next;
  for (store_job_t *j = batch, *next; j; j = next) {
    next = j->next;
    j->next = NULL;
    if (j->type == JOB_CONV_UPDATE) *dt = j, dt = &j->next;
    else *rt = j, rt = &j->next;
  }
  if (rest) run_batch(s, rest);
  if (s->docs_waiting && (force_docs || mono_us() - s->docs_last_us >= DOCS_INTERVAL_US)) {
    store_job_t *docs = s->docs_waiting;
    s->docs_waiting = NULL;
    run_batch(s, docs);
    s->docs_last_us = mono_us();
  }
}

/* Group commit. Work that finds the writer idle is committed at once; while work keeps
 * coming, commits are at least interval_us apart, so each carries many jobs. A commit
 * writes whole pages (the message table's last leaf, the conversation row, …) however
 * few rows changed: one commit per message at 25,000/s wrote ~300 MB/s of WAL and spent
 * ~50 µs of CPU per message, where a batch of 25 costs a few µs each. The wait bounds
 * what it adds to latency; a full batch never waits. */
static void *writer_main(void *arg) {
  store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    /* asleep until there is work, or the round of held attribute updates is due */
    int docs_due = 0, lingered = 0;
    while (!s->head && !s->closing && !docs_due) {
      int64_t due = s->last_commit_us + s->interval_us;
      if (!lingered && s->last_commit_us && mono_us() < due) {
        /* The next commit could not start before `due` anyway: wait for it without asking
         * to be woken (writer_asleep stays 0), so the jobs that arrive meanwhile cost their
         * workers no signal and this thread no second sleep; at `due` they are committed
         * together. Under paced load that is one wake-up per commit instead of two. */
        struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
        pthread_cond_timedwait(&s->cv, &s->mu, &ts); /* woken early only by a full batch or close */
        metric_inc(M_WRITER_WAKEUPS);
        lingered = 1;
        continue;
      }
      s->writer_asleep = 1;
      if (!s->docs_waiting) {
        pthread_cond_wait(&s->cv, &s->mu);
        metric_inc(M_WRITER_WAKEUPS);
      } else {
        int64_t at = s->docs_last_us + DOCS_INTERVAL_US;
        struct timespec ts = {(time_t)(at / 1000000), (long)(at % 1000000) * 1000};
        docs_due = mono_us() >= at || pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT;
        metric_inc(M_WRITER_WAKEUPS);
      }
      s->writer_asleep = 0;
    }
    if (!s->head && !s->docs_waiting) break; /* closing, and everything is committed */
    int64_t due = s->last_commit_us + s->interval_us;
    while (s->head && !s->closing && s->queued < BATCH_MAX && mono_us() < due) {
      struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
      pthread_cond_timedwait(&s->cv, &s->mu, &ts); /* woken early only by a full batch or close */
      metric_inc(M_WRITER_WAKEUPS);
    }
    if (s->ckpt_hold && !s->closing) {
      int64_t h0 = mono_us();
      while (s->ckpt_hold && !s->closing) { /* ~1 ms: see checkpointer_main */
        pthread_cond_wait(&s->cv, &s->mu);
        metric_inc(M_WRITER_WAKEUPS);
      }
      metric_observe_us(M_CHECKPOINT_HOLD, (uint64_t)(mono_us() - h0));
    }
    store_job_t *batch = s->head, *last = NULL;
    size_t n = 0;
    for (store_job_t *j = batch; j && n < BATCH_MAX; j = j->next, n++) last = j;
    if (last) {
      s->head = last->next;
      if (!s->head) s->tail = NULL;
      last->next = NULL;
      s->queued -= n;
      s->last_commit_us = mono_us();
      metric_observe_us(M_QUEUE_WAIT, (uint64_t)(s->last_commit_us - s->head_since_us));
      s->head_since_us = s->last_commit_us; /* what stays queued (a full batch) waits from now on */
    }
    int force_docs = s->closing || docs_due;
    s->writer_busy = 1;
    pthread_mutex_unlock(&s->mu);
    run_batch_split(s, batch, force_docs);
    pthread_mutex_lock(&s->mu);
    s->writer_busy = 0;
    if (s->ckpt_hold) pthread_cond_signal(&s->ckpt_cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Checkpoints. A round copies the newest version of every page in the WAL back into the
 * database, with two fsyncs (the WAL, then the database). A page a busy conversation
 * rewrites on every commit is copied once per round, so rounds are worth spacing out: one
 * per CKPT_FRAMES new frames. The WAL only starts over (and stops growing) when a writer
 * begins a transaction after a round that copied every frame, which a round racing a
 * writer that commits every few hundred µs seldom manages: this thread used to run ~470
 * tiny rounds a second chasing the last commit, and at 50,000 messages/s lost the race
 * for good: the WAL passed 1 GB in 10 s. Now it catches up in rounds beside the writer
 * until one is short, then runs a last round while the writer waits (1–5 ms with its two
 * fsyncs, at most once per CKPT_FRAMES), and the next transaction restarts the WAL. The
 * WAL stays near 64 MiB at 50,000 messages/s, and the server spends ~10% less CPU at
 * 25,000 (tern-bench pairs). */
#define CKPT_FRAMES 8192   /* ~32 MiB of WAL */
#define CKPT_SHORT_US 2000 /* a round this short leaves little for the held one */

/* Called by SQLite on the writer thread after each commit with the WAL's size. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
  store_t *s = arg;
  int done = atomic_load(&s->ckpt_done);
  if (frames - (frames < done ? 0 : done) >= CKPT_FRAMES) { /* frames < done: the WAL restarted */
    pthread_mutex_lock(&s->mu);
    s->ckpt_wanted = 1;
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->mu);
  }
  return SQLITE_OK;
}

/* One PASSIVE round: copies what it can without blocking the writer or the readers. */
static int64_t ckpt_round(store_t *s, int *log) {
  int64_t t0 = mono_us();
  int done = 0;
  if (sqlite3_wal_checkpoint_v2(s->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, log, &done) == SQLITE_OK)
    atomic_store(&s->ckpt_done, done);
  int64_t took = mono_us() - t0;
  if (*log > 0) {                                    /* a round with frames to copy */
    metric_observe_us(M_CHECKPOINT, (uint64_t)took); /* first: a scrape never sees more rounds than timings */
    metric_inc(M_CHECKPOINTS);
  }
  metric_add(M_STAGE_CHECKPOINT, took * 1000);
  return took;
}

static void *checkpointer_main(void *arg) {
  store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->ckpt_stop) {
    if (!s->ckpt_wanted) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 1; /* at least once a second, so a quiet server's WAL stays small */
      pthread_cond_timedwait(&s->ckpt_cv, &s->mu, &ts);
    }
    if (s->ckpt_stop) break;
    s->ckpt_wanted = 0;
    pthread_mutex_unlock(&s->mu);
    int log = 0;
    int64_t took = ckpt_round(s, &log);
    for (int i = 0; log >= CKPT_FRAMES && took > CKPT_SHORT_US && i < 4; i++) took = ckpt_round(s, &log);
    pthread_mutex_lock(&s->mu);
    if (log < CKPT_FRAMES || s->ckpt_stop) continue;
    s->ckpt_hold = 1;
    while (s->writer_busy && !s->ckpt_stop) pthread_cond_wait(&s->ckpt_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    ckpt_round(s, &log); /* the next transaction restarts the WAL, unless a reader is on it */
    pthread_mutex_lock(&s->mu);
    s->ckpt_hold = 0;
    s->ckpt_wanted = 0;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void sq_submit(store_t *s, store_job_t *j) {
  j->next = NULL;
  if (s->inline_writes) {
    run_batch(s, j);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = j;
  else s->head = j, s->head_since_us = mono_us();
  s->tail = j;
  /* a writer waiting out the commit interval needs no wake-up per job, only a full batch */
  if (++s->queued == BATCH_MAX || s->writer_asleep) pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void sq_fail_writes(store_t *s, int on) { atomic_store(&s->fail_writes, on); }

static void sq_close(store_t *s);

static int sq_open(const store_options_t *opt, store_t **out) {
  store_t *s = xcalloc(1, sizeof *s);
  s->ops = &store_sqlite_ops;
  s->path = xstrdup(opt->path);
  s->sync_full = opt->sync_full;
  s->inline_writes = opt->inline_writes;
  s->post = opt->post;
  s->post_arg = opt->post_arg;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  s->interval_us = opt->commit_interval_us;
  pthread_cond_init(&s->ckpt_cv, NULL);
  /* the writer gathers each commit's WAL frames into one write (walbuf.c) */
  if (open_db(s->path, 0, walbuf_register() == 0 ? WALBUF_VFS : NULL, &s->wdb) < 0) goto fail;
  char pragmas[320];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-32768; "
           "PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=67108864;",
           s->sync_full ? "FULL" : "NORMAL");
  if (exec(s->wdb, pragmas) < 0 || migrate(s->wdb) < 0 || member_filter_load(s) < 0) goto fail;
  if (!s->inline_writes) {
    /* the writer never checkpoints itself: the checkpointer thread does */
    if (open_db(s->path, 0, NULL, &s->cdb) < 0) goto fail;
    char sync[64];
    snprintf(sync, sizeof sync, "PRAGMA synchronous=%s;", s->sync_full ? "FULL" : "NORMAL");
    exec(s->cdb, sync);
    sqlite3_wal_autocheckpoint(s->wdb, 0);
    sqlite3_wal_hook(s->wdb, wal_hook, s);
    pthread_create(&s->checkpointer, NULL, checkpointer_main, s);
    pthread_setname_np(s->checkpointer, "tern-ckpt"); /* names show in top -H, perf, gdb */
    s->ckpt_started = 1;
  }
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&s->ins_conv,
       "INSERT INTO conv (cid, kind, creator, unique_id, created_at, updated_at, expire_at, member_count, doc)"
       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      /* A new member has read and received everything sent before it joined (?4, ?5). */
      {&s->ins_member, "INSERT OR IGNORE INTO member (conv, client, joined_at, read_ts, read_seq, ack_ts, ack_seq)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?5)"},
      {&s->del_member, "DELETE FROM member WHERE conv = ?1 AND client = ?2"},
      {&s->count_members, "UPDATE conv SET member_count = (SELECT count(*) FROM member WHERE conv = ?2),"
                          " updated_at = max(updated_at, ?1) WHERE id = ?2"},
      {&s->find_unique, "SELECT cid, created_at FROM conv WHERE unique_id = ?1"},
      {&s->ins_msg, "INSERT INTO msg (conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts, readers, dt)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"},
      {&s->upd_lm, "UPDATE conv SET lm = ?1 WHERE id = ?2 AND (lm IS NULL OR lm < ?1)"},
      {&s->upd_ack, "UPDATE member SET ack_ts = ?1, ack_seq = ?2, ack_at = ?3"
                    " WHERE conv = ?4 AND client = ?5 AND (ack_ts, ack_seq) < (?1, ?2)"},
      {&s->upd_read, "UPDATE member SET read_ts = ?1, read_seq = ?2, read_at = ?3"
                     " WHERE conv = ?4 AND client = ?5 AND (read_ts, read_seq) < (?1, ?2)"},
      {&s->del_conv_msgs, "DELETE FROM msg WHERE conv = ?1"},
      {&s->del_msg, "DELETE FROM msg WHERE conv = ?1 AND ts = ?2 AND seq = ?3"},
      {&s->del_conv_members, "DELETE FROM member WHERE conv = ?1"},
      {&s->del_conv, "DELETE FROM conv WHERE id = ?1"},
      {&s->upd_time, "UPDATE conv SET updated_at = max(updated_at, ?1) WHERE id = ?2"},
      {&s->ins_set, "INSERT INTO conv_set (conv, kind, client, created_at, expire_at) VALUES (?1, ?2, ?3, ?4, ?5)"
                    " ON CONFLICT (conv, kind, client) DO UPDATE SET expire_at = CASE WHEN conv_set.expire_at IS NULL"
                    " OR excluded.expire_at IS NULL THEN NULL ELSE excluded.expire_at END"},
      {&s->del_set, "DELETE FROM conv_set WHERE conv = ?1 AND kind = ?2 AND client = ?3"},
      {&s->ins_role, "INSERT INTO member_info (conv, client, role, info_id, created_at, updated_at)"
                     " VALUES (?1, ?2, coalesce(?5, 'Manager'), ?3, ?4, ?4) ON CONFLICT (conv, client) DO UPDATE SET"
                     " role = coalesce(?5, 'Manager'), updated_at = ?4"},
      {&s->del_role, "DELETE FROM member_info WHERE conv = ?1 AND client = ?2"},
      {&s->ins_cblock, "INSERT OR IGNORE INTO client_block (client, cid, created_at) VALUES (?1, ?2, ?3)"},
      {&s->del_cblock, "DELETE FROM client_block WHERE client = ?1 AND cid = ?2"},
      {&s->del_conv_sets, "DELETE FROM conv_set WHERE conv = ?1"},
      {&s->del_conv_roles, "DELETE FROM member_info WHERE conv = ?1"},
      /* lctype follows the new content: a recall is a -127 message from then on */
      {&s->upd_msg, "UPDATE msg SET data = ?1, flags = ?2, mentions = ?3, patch_ts = ?4, lctype = ?8"
                    " WHERE conv = ?5 AND ts = ?6 AND seq = ?7"},
      {&s->ins_notif, "INSERT INTO notif (client, ts, seq, body) VALUES (?1, ?2, ?3, ?4)"},
      {&s->prune_notif, "DELETE FROM notif WHERE ts < ?1"},
      {&s->ins_device, "INSERT INTO device (client, token, type, updated_at) VALUES (?1, ?2, ?3, ?4)"
                       " ON CONFLICT (client, token) DO UPDATE SET type = ?3, updated_at = ?4"},
      {&s->move_device, "DELETE FROM device WHERE token = ?1 AND client <> ?2 AND installation_id IS NULL"},
      {&s->trim_devices, "DELETE FROM device WHERE client = ?1 AND installation_id IS NULL AND token NOT IN"
                         " (SELECT token FROM device WHERE client = ?1 AND installation_id IS NULL"
                         "  ORDER BY updated_at DESC, token LIMIT ?2)"},
      {&s->del_device_token, "DELETE FROM device WHERE token = ?1"},
      {&s->set_badge, "UPDATE device SET badge = ?2 WHERE token = ?1"},
      {&s->add_badge, "UPDATE device SET badge = badge + ?2 WHERE token = ?1"},
      /* REPLACE also evicts an older installation of the same token (a re-install) */
      {&s->ins_inst, "INSERT OR REPLACE INTO installation (id, device_type, token, body, created_at, updated_at)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&s->del_inst, "DELETE FROM installation WHERE id = ?1"},
      {&s->del_inst_devices, "DELETE FROM device WHERE installation_id = ?1"},
      {&s->ins_inst_device,
       "INSERT INTO device (client, token, type, installation_id, badge, updated_at)"
       " VALUES (?1, ?2, ?3, ?4, coalesce((SELECT max(badge) FROM device WHERE token = ?2), 0), ?5)"
       " ON CONFLICT (client, token) DO UPDATE SET type = ?3, installation_id = ?4, updated_at = ?5"},
      {&s->ins_revoked, "INSERT OR REPLACE INTO token_revoked (lineage, expires_at) VALUES (?1, ?2)"},
      /* a later kick moves the cut forward, never back */
      {&s->ins_client_revoked, "INSERT INTO client_revoked (client, before, expires_at) VALUES (?1, ?2, ?3)"
                               " ON CONFLICT (client) DO UPDATE SET before = max(before, ?2),"
                               " expires_at = max(expires_at, ?3)"},
      {&s->prune_revoked, "DELETE FROM token_revoked WHERE lineage IN"
                          " (SELECT lineage FROM token_revoked WHERE expires_at < ?1 LIMIT 16)"},
      {&s->prune_client_revoked, "DELETE FROM client_revoked WHERE client IN"
                                 " (SELECT client FROM client_revoked WHERE expires_at < ?1 LIMIT 16)"},
  };
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
    if (prepare(s->wdb, stmts[i].sql, stmts[i].st) < 0) goto fail;
  atomic_store(&s->notif_seq, now_ms() << 10); /* unique across restarts */
  static const qpool_backend_t qb = {sq_reader_new, sq_reader_free, sq_conv_query_until, sq_conv_count_until};
  s->qpool = qpool_new(s, &qb, s->post, s->post_arg, !s->inline_writes);
  if (!s->inline_writes) {
    pthread_create(&s->writer, NULL, writer_main, s);
    pthread_setname_np(s->writer, "tern-writer");
    s->started = 1;
  }
  *out = s;
  return 0;
fail:
  sq_close(s);
  return TERN_ESTORE;
}

static void sq_close(store_t *s) {
  if (!s) return;
  qpool_free(s->qpool); /* queries still queued run (within their deadlines) and post first */
  if (s->started) {
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
  }
  if (s->ckpt_started) {
    pthread_mutex_lock(&s->mu);
    s->ckpt_stop = 1;
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->checkpointer, NULL);
  }
  sqlite3_close(s->cdb);
  if (s->wdb && s->upd_lm) lm_final(s); /* the writer has stopped: this thread may write */
  free(s->lm.v);
  sqlite3_stmt *all[] = {s->ins_conv,         s->ins_member,
                         s->del_member,       s->count_members,
                         s->find_unique,      s->ins_msg,
                         s->upd_lm,           s->upd_ack,
                         s->upd_read,         s->del_conv_msgs,
                         s->del_conv_members, s->del_conv,
                         s->upd_time,         s->ins_set,
                         s->del_set,          s->ins_role,
                         s->del_role,         s->ins_cblock,
                         s->del_cblock,       s->del_conv_sets,
                         s->del_conv_roles,   s->upd_msg,
                         s->del_msg,          s->ins_notif,
                         s->prune_notif,      s->ins_device,
                         s->move_device,      s->del_device_token,
                         s->set_badge,        s->add_badge,
                         s->ins_inst,         s->del_inst,
                         s->del_inst_devices, s->ins_inst_device,
                         s->ins_revoked,      s->ins_client_revoked,
                         s->prune_revoked,    s->prune_client_revoked};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  store_import_free(s->imp);
  if (s->wdb) {
    sqlite3_exec(s->wdb, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    sqlite3_close(s->wdb);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->ckpt_cv);
  free(s->member_bits);
  free(s->path);
  free(s);
}

/* ---------------------------------------------------------------- reader side */

#define MSG_COLS "ts, seq, mid, sender, data, flags, mentions, patch_ts, readers"
/* The newest message's time in conversation `id` (a seek in msg's primary key). */
#define LAST_TS(id) "SELECT ts FROM msg WHERE msg.conv = " id " ORDER BY ts DESC, seq DESC LIMIT 1"
/* May client ?N read the message? (every member, or it sent it, or it is one of readers) */
#define VISIBLE_TO(n) " AND (readers IS NULL OR sender = ?" n " OR instr(readers, char(31) || ?" n " || char(31)) > 0)"

const char *store_db_path(const store_t *s) { return s->path; }

store_reader_t *sq_reader_new(store_t *s) {
  store_reader_t *r = xcalloc(1, sizeof *r);
  r->ops = &store_sqlite_ops;
  r->s = s;
  if (open_db(s->path, 1, NULL, &r->db) < 0) {
    free(r);
    return NULL;
  }
  const struct {
    sqlite3_stmt **st;
    const char *sql;
  } stmts[] = {
      {&r->conv_load,
       "SELECT id, cid, kind, creator, unique_id, created_at, updated_at, lm, expire_at, ext_ids FROM conv"
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
      {&r->last_msg, "SELECT " MSG_COLS " FROM msg WHERE conv = ?1 ORDER BY ts DESC, seq DESC LIMIT 1"},
      {&r->last_msg_for,
       "SELECT " MSG_COLS " FROM msg WHERE conv = ?1" VISIBLE_TO("2") " ORDER BY ts DESC, seq DESC LIMIT 1"},
      {&r->msg_get, "SELECT " MSG_COLS " FROM msg WHERE conv = ?1 AND ts = ?2 AND seq = ?3"},
      {&r->receipts, "SELECT " MSG_COLS " FROM msg WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND (ts, seq) <= (?4, ?5)"
                     " AND flags & 2 AND sender <> ?6 ORDER BY ts, seq LIMIT 100"},
      /* the client's conversations with news since ?2 — from msg, exact, where lm lags */
      {&r->unread_convs,
       "SELECT id, cid, kind, read_ts, read_seq, read_at FROM (SELECT c.id, c.cid, c.kind, m.read_ts,"
       " m.read_seq, m.read_at, (" LAST_TS(
           "c.id") ") AS last FROM member m JOIN conv c ON c.id = m.conv"
                   " WHERE m.client = ?1 AND c.kind <> 2)"
                   " WHERE (last >= read_ts AND last > ?2) OR (?2 > 0 AND read_at > ?2) ORDER BY last DESC LIMIT ?3"},
      {&r->unread_msgs,
       "SELECT flags, mentions FROM msg WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND sender <> ?4" VISIBLE_TO(
           "4") " ORDER BY ts DESC, seq DESC LIMIT 100"},
      {&r->offline_convs,
       "SELECT id, cid, kind, ack_ts, ack_seq FROM (SELECT c.id, c.cid, c.kind, m.ack_ts, m.ack_seq,"
       " (" LAST_TS("c.id") ") AS last FROM member m JOIN conv c ON c.id = m.conv"
                            " WHERE m.client = ?1 AND c.kind <> 2) WHERE last >= ack_ts ORDER BY last"},
      {&r->offline_msgs,
       "SELECT " MSG_COLS " FROM msg WHERE conv = ?1 AND (ts, seq) > (?2, ?3) AND sender <> ?4" VISIBLE_TO(
           "4") " ORDER BY ts, seq LIMIT ?5"},
      {&r->progress, "SELECT client, read_ts, read_seq, read_at, ack_ts, ack_seq, ack_at FROM member WHERE conv = ?1"},
      {&r->notifs, "SELECT ts, body FROM notif WHERE client = ?1 AND ts > ?2 ORDER BY ts, seq LIMIT ?3"},
      {&r->expired, "SELECT id, cid, kind FROM conv WHERE (kind = 4 AND expire_at <= ?1)"
                    " OR (kind <> 4 AND max(coalesce(lm, 0), updated_at, coalesce(imported_at, 0)) < ?2) LIMIT ?3"},
      {&r->patches,
       "SELECT c.cid, " MSG_COLS " FROM msg JOIN member mb ON mb.conv = msg.conv JOIN conv c ON c.id = msg.conv"
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
    if (prepare(r->db, stmts[i].sql, stmts[i].st) < 0) {
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

static int sq_conv_load(store_reader_t *r, const char *cid, conv_row_t *out) {
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

static int sq_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg) {
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

static int sq_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
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
  if (prepare(r->db, sql, &st) < 0) return TERN_ESTORE;
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

static int sq_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                           void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg) {
  return scan_pairs(r, "SELECT client, joined_at FROM member WHERE conv = ?1 AND client > ?2 ORDER BY client LIMIT ?3",
                    conv, NULL, after, limit, cb, arg);
}

static int sq_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                           void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT c.cid, m.joined_at FROM member m JOIN conv c ON c.id = m.conv WHERE m.client = ?1 AND c.kind = %d"
           " AND c.cid > ?2 ORDER BY c.cid LIMIT ?3",
           kind);
  return scan_pairs(r, sql, 0, client, after, limit, cb, arg);
}

static int sq_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                            void (*cb)(void *arg, const char *client, int64_t at), void *arg) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT client, created_at FROM conv_set WHERE conv = ?1 AND kind = %d%s AND client > ?2 ORDER BY client "
           "LIMIT ?3",
           set, permanent_only ? " AND expire_at IS NULL" : "");
  return scan_pairs(r, sql, conv, NULL, after, limit, cb, arg);
}

static int sq_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at) {
  sqlite3_stmt *st;
  if (prepare(r->db, "SELECT coalesce(expire_at, 0) FROM conv_set WHERE conv = ?1 AND kind = ?2 AND client = ?3", &st) <
      0)
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
static int sq_shutups_expired(store_reader_t *r, int64_t now, int max,
                              void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg) {
  sqlite3_stmt *st;
  if (prepare(r->db,
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

static int sq_app_logs(store_reader_t *r, const app_logs_req_t *q,
                       void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  buf_t sql = BUF_INIT;
  const char *dir = q->newer ? "ASC" : "DESC";
  buf_append_str(
      &sql, "SELECT m.ts, m.seq, m.mid, m.sender, m.data, m.flags, m.mentions, m.patch_ts, m.readers, c.cid, c.kind"
            " FROM msg m JOIN conv c ON c.id = m.conv WHERE (?1 IS NULL OR m.sender = ?1)");
  if (q->lo.has) put_bound(&sql, &q->lo, 1, 3);
  if (q->hi.has) put_bound(&sql, &q->hi, 0, 6);
  /* mid breaks ties between conversations: (ts, seq) is unique only within one */
  buf_printf(&sql, " ORDER BY m.ts %s, m.seq %s, m.mid %s LIMIT ?2", dir, dir, dir);
  sqlite3_stmt *st;
  int rc = prepare(r->db, buf_cstr(&sql), &st);
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

static int sq_client_blocked(store_reader_t *r, const char *client, const char *cid) {
  sqlite3_stmt *st = r->client_blocked;
  sqlite3_bind_text(st, 1, client, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, cid, -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

static int sq_conv_doc(store_reader_t *r, int64_t conv, char **doc) {
  sqlite3_stmt *st = r->conv_doc;
  sqlite3_bind_int64(st, 1, conv);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *doc = col_strdup(st, 0);
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

static int sq_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at) {
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

static int sq_conv_query_check(store_t *s, const store_conv_q_t *cq, char *err, size_t errlen) {
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

static int sq_conv_count(store_reader_t *r, const store_conv_q_t *cq, int64_t *n) {
  return sq_conv_count_until(r, cq, 0, n);
}

static int sq_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg) {
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
static int sq_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg) {
  int lo = q->has_lo ? 1 + (q->lo_incl != 0) : 0, hi = q->has_hi ? 1 + (q->hi_incl != 0) : 0;
  int variant = ((q->newer * 3 + lo) * 3 + hi) * 2 + (q->has_lctype != 0);
  sqlite3_stmt **slot = &r->logs[variant];
  if (!*slot) {
    buf_t sql = BUF_INIT;
    buf_append_str(&sql, "SELECT " MSG_COLS " FROM msg WHERE conv = ?1");
    if (lo) buf_printf(&sql, " AND (ts, seq) %s (?2, ?3)", lo == 2 ? ">=" : ">");
    if (hi) buf_printf(&sql, " AND (ts, seq) %s (?4, ?5)", hi == 2 ? "<=" : "<");
    if (q->has_lctype) buf_append_str(&sql, " AND lctype = ?6");
    buf_append_str(
        &sql, " AND (?8 IS NULL OR readers IS NULL OR sender = ?8 OR instr(readers, char(31) || ?8 || char(31)) > 0)");
    buf_printf(&sql, " ORDER BY ts %s, seq %s LIMIT ?7", q->newer ? "ASC" : "DESC", q->newer ? "ASC" : "DESC");
    int rc = prepare(r->db, buf_cstr(&sql), slot);
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

static int sq_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg) {
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

static int sq_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
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

static int mentions_contain(const char *mentions, const char *client) {
  if (!mentions) return 0;
  json_t *a = json_loads(mentions, 0, NULL);
  int hit = 0;
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) if (json_is_string(v) && strcmp(json_string_value(v), client) == 0) hit = 1;
  json_decref(a);
  return hit;
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

static int sq_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg) {
  if (!member_maybe(r->s, client)) return 0; /* in no conversation: nothing unread */
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
                           mentions_contain((const char *)sqlite3_column_text(ms, 1), client)))
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

static int sq_offline(store_reader_t *r, const char *client, int max,
                      void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg) {
  if (!member_maybe(r->s, client)) return 0; /* in no conversation: nothing waits */
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

static int sq_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg) {
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

static int sq_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
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

static int sq_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
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

static int sq_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
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

static int sq_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
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

static int sq_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
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

static int sq_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
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

static int sq_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq) {
  if (!r->msg_ext_get &&
      prepare(r->db, "SELECT ts, seq FROM msg_ext WHERE conv = ?1 AND mid = ?2", &r->msg_ext_get) < 0)
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
 * then the one of them sender stored with dt. */
static int sq_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                        int64_t *ts) {
  if (!r->msg_by_dt && prepare(r->db,
                               "SELECT mid, ts FROM (SELECT mid, ts, sender, dt FROM msg WHERE conv = ?1 AND ts >= ?2"
                               " ORDER BY ts DESC, seq DESC LIMIT ?5) WHERE sender = ?3 AND dt = ?4 LIMIT 1",
                               &r->msg_by_dt) < 0)
    return TERN_ESTORE;
  sqlite3_stmt *st = r->msg_by_dt;
  sqlite3_bind_int64(st, 1, conv);
  sqlite3_bind_int64(st, 2, since_ts);
  sqlite3_bind_text(st, 3, sender, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, dt);
  sqlite3_bind_int(st, 5, STORE_DT_SCAN);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *mid = col_strdup(st, 0);
    *ts = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? TERN_ENOENT : TERN_ESTORE;
}

const store_ops_t store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .submit = sq_submit,
    .fail_writes = sq_fail_writes,
    .backup = sq_backup,
    .metrics = sq_metrics,
    .query_submit = sq_query_submit,
    .reader_new = sq_reader_new,
    .reader_free = sq_reader_free,
    .conv_load = sq_conv_load,
    .conv_doc = sq_conv_doc,
    .conv_find_unique = sq_conv_find_unique,
    .conv_query_check = sq_conv_query_check,
    .conv_query_until = sq_conv_query_until,
    .conv_count = sq_conv_count,
    .conv_fetch = sq_conv_fetch,
    .logs = sq_logs,
    .msg_get = sq_msg_get,
    .msg_receipts = sq_msg_receipts,
    .unread = sq_unread,
    .offline = sq_offline,
    .progress = sq_progress,
    .notifications = sq_notifications,
    .expired = sq_expired,
    .patches_since = sq_patches_since,
    .member_infos = sq_member_infos,
    .members_page = sq_members_page,
    .client_convs = sq_client_convs,
    .client_blocks = sq_client_blocks,
    .client_blocked = sq_client_blocked,
    .conv_set_page = sq_conv_set_page,
    .conv_set_expiry = sq_conv_set_expiry,
    .shutups_expired = sq_shutups_expired,
    .msg_ext_get = sq_msg_ext_get,
    .msg_ext_find = sq_msg_ext_find,
    .msg_by_dt = sq_msg_by_dt,
    .installation_count = sq_installation_count,
    .installation_query = sq_installation_query,
    .app_logs = sq_app_logs,
    .devices = sq_devices,
    .installation_get = sq_installation_get,
    .token_revoked = sq_token_revoked,
};
