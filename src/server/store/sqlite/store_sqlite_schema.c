/* store_sqlite_schema.c — the SQLite backend's schema and its migrations, opening a
 * connection, and the member filter the writer feeds and logins consult. */
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

/* Migration 12's trigger on each table a message is inserted into: its conversation's rcp
 * set by the first message that asks for receipts (a lookup, no write, after that). */
#define SQ_RCP_TRIGGER(t)                                                                                              \
  "CREATE TRIGGER " t "_rcp AFTER INSERT ON " t " WHEN new.flags & 2 BEGIN"                                            \
  "  UPDATE conv SET rcp = 1 WHERE id = new.conv AND rcp = 0; END;"

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
    /* 11: new messages go first into one of two rowid tables, in arrival order, and move into
     * msg in conversation order a range of conversations at a time (store_sqlite_hot.c); the
     * moving table's rows whose conversation is at most upto are already in msg. msg_all is
     * every message once: what reads of messages select from */
    ("CREATE TABLE msg_hot0 (" SQ_HOT_COLS_DEF ");"
     "CREATE UNIQUE INDEX msg_hot0_key ON msg_hot0(conv, ts, seq);"
     "CREATE INDEX msg_hot0_patch ON msg_hot0(patch_ts, conv) WHERE patch_ts > 0;"
     "CREATE TABLE msg_hot1 (" SQ_HOT_COLS_DEF ");"
     "CREATE UNIQUE INDEX msg_hot1_key ON msg_hot1(conv, ts, seq);"
     "CREATE INDEX msg_hot1_patch ON msg_hot1(patch_ts, conv) WHERE patch_ts > 0;"
     "CREATE TABLE msg_hot_state (k INTEGER PRIMARY KEY CHECK (k = 0), active INTEGER NOT NULL,"
     "  draining INTEGER NOT NULL, upto INTEGER NOT NULL);"
     "INSERT INTO msg_hot_state VALUES (0, 0, -1, 0);"
     "CREATE VIEW msg_all AS SELECT " SQ_HOT_COLS " FROM msg"
     " UNION ALL SELECT " SQ_HOT_COLS " FROM msg_hot0"
     "  WHERE conv > (SELECT CASE draining WHEN 0 THEN upto ELSE 0 END FROM msg_hot_state)"
     " UNION ALL SELECT " SQ_HOT_COLS " FROM msg_hot1"
     "  WHERE conv > (SELECT CASE draining WHEN 1 THEN upto ELSE 0 END FROM msg_hot_state);"),
    /* 12: whether any message of a conversation asked for receipts, so that an ack looks
     * for them only where one may be (im_msg_ack): set by the message's insert, wherever
     * it lands; a conversation that had messages before this version is taken to have
     * asked (finding out would read every message once) */
    ("ALTER TABLE conv ADD COLUMN rcp INTEGER NOT NULL DEFAULT 0;"
     "UPDATE conv SET rcp = 1 WHERE EXISTS (SELECT 1 FROM msg_all WHERE msg_all.conv = conv.id);" SQ_RCP_TRIGGER("msg")
         SQ_RCP_TRIGGER("msg_hot0") SQ_RCP_TRIGGER("msg_hot1")),
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])

int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
    log_at(LOG_ERROR, "sqlite prepare failed: %s: %s", sqlite3_errmsg(db), sql);
    return TERN_ESTORE;
  }
  return 0;
}

int sq_exec(sqlite3 *db, const char *sql) {
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

void sq_member_note(store_t *s, const char *client) {
  uint32_t b = (uint32_t)member_hash(client) & (MEMBER_BITS - 1);
  atomic_fetch_or(&s->member_bits[b >> 6], 1ull << (b & 63));
}

/* 0: the client has no row in member; 1: it may have. */
int sq_member_maybe(store_t *s, const char *client) {
  if (atomic_load(&s->member_off)) return 1;
  uint32_t b = (uint32_t)member_hash(client) & (MEMBER_BITS - 1);
  return (atomic_load(&s->member_bits[b >> 6]) >> (b & 63)) & 1;
}

int sq_member_filter_load(store_t *s) {
  s->member_bits = xcalloc(MEMBER_BITS / 64, sizeof *s->member_bits);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->wdb, "SELECT DISTINCT client FROM member", -1, &st, NULL) != SQLITE_OK) return TERN_ESTORE;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) sq_member_note(s, (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : TERN_ESTORE;
}

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
int sq_open_db(const char *path, int readonly, const char *vfs, sqlite3 **out) {
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
    sq_exec(db, "PRAGMA query_only=1; PRAGMA cache_size=-16384; PRAGMA mmap_size=268435456;");
    sqlite3_create_function(db, "regexp", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, regexp_fn, NULL, NULL);
  }
  *out = db;
  return 0;
}

int sq_migrate(sqlite3 *db) {
  if (sq_exec(db, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;") < 0)
    return TERN_ESTORE;
  int version = 0;
  sqlite3_stmt *st;
  if (sq_prepare(db, "SELECT value FROM meta WHERE key='schema_version'", &st) < 0) return TERN_ESTORE;
  if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (version > (int)N_MIGRATIONS) {
    log_at(LOG_ERROR, "database schema version %d is newer than this ternd (%d)", version, (int)N_MIGRATIONS);
    return TERN_ESTORE;
  }
  for (int v = version; v < (int)N_MIGRATIONS; v++) {
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta VALUES ('schema_version', '%d');", v + 1);
    if (sq_exec(db, "BEGIN") < 0) return TERN_ESTORE;
    if (sq_exec(db, migrations[v]) < 0 || sq_exec(db, sql) < 0) {
      sq_exec(db, "ROLLBACK");
      return TERN_ESTORE;
    }
    if (sq_exec(db, "COMMIT") < 0) return TERN_ESTORE;
    log_at(LOG_INFO, "database schema migrated to version %d", v + 1);
  }
  return 0;
}

/* ---------------------------------------------------------------- writer side */
