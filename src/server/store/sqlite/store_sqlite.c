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
 * connection per worker.
 *
 * Files: this one opens and closes the store and holds the ops table;
 * store_sqlite_schema.c has the schema, its migrations and the member filter;
 * store_sqlite_writer.c the writer and checkpointer threads; store_sqlite_read.c the
 * reads; store_sqlite_core.h the state they share. */
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
#include "pcache.h"
#include "qpool.h"
#include "query.h"
#include "store.h"
#include "store_doc.h"
#include "store_sqlite.h"
#include "store_sqlite_core.h"
#include "store_sqlite_int.h"
#include "timeutil.h"
#include "walbuf.h"

static int sq_query_read(store_reader_t *r, store_read_t *rd) {
  return qpool_run_query(r, QPOOL_QUERY_OF(rd), sq_conv_count_until, sq_conv_query_until);
}
static int sq_query_submit(store_t *s, store_query_t *q) { return qpool_submit_query(s->qpool, q, sq_query_read); }

static void sq_fail_writes(store_t *s, int on) { atomic_store(&s->fail_writes, on); }

static void sq_close(store_t *s);

/* SQLite counts the memory it allocates under a global mutex (SQLITE_CONFIG_MEMSTATUS, on by
 * default), taken at every allocation of every connection: the workers' readers, whose rows
 * from the view msg_all go through allocated registers, queued on it (7% of ternd's samples
 * in pthread_mutex_lock serving history pages, bench/README.md "The hot tables"). Nothing
 * here reads those counts. Before SQLite initializes, i.e. before the first open; so is the
 * page cache's shim (pcache.c; where SQLite refuses it, its own cache serves alone). */
static void sq_config_once(void) {
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  pcache_install();
}

static int sq_open(const store_options_t *opt, store_t **out) {
  static pthread_once_t configured = PTHREAD_ONCE_INIT;
  pthread_once(&configured, sq_config_once);
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
  s->hot_interval_us = opt->hot_interval_us;
  s->hot_step_rows = opt->hot_step_rows;
  pthread_cond_init(&s->ckpt_cv, NULL);
  /* the writer gathers each commit's WAL frames into one write (walbuf.c) */
  if (sq_open_db(s->path, 0, walbuf_register() == 0 ? WALBUF_VFS : NULL, &s->wdb) < 0) goto fail;
  char pragmas[320];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-32768; "
           "PRAGMA mmap_size=1073741824; PRAGMA temp_store=MEMORY; PRAGMA journal_size_limit=67108864;",
           s->sync_full ? "FULL" : "NORMAL");
  if (sq_exec(s->wdb, pragmas) < 0 || sq_migrate(s->wdb) < 0 || sq_member_filter_load(s) < 0) goto fail;
  if (!s->inline_writes) {
    /* the writer never checkpoints itself: the checkpointer thread does */
    if (sq_open_db(s->path, 0, NULL, &s->cdb) < 0) goto fail;
    char sync[64];
    snprintf(sync, sizeof sync, "PRAGMA synchronous=%s;", s->sync_full ? "FULL" : "NORMAL");
    sq_exec(s->cdb, sync);
    sqlite3_wal_autocheckpoint(s->wdb, 0);
    sqlite3_wal_hook(s->wdb, sq_wal_hook, s);
    pthread_create(&s->checkpointer, NULL, sq_checkpointer_main, s);
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
      {&s->w_msg_by_dt, SQ_MSG_BY_DT_SQL},
      {&s->upd_lm, "UPDATE conv SET lm = ?1 WHERE id = ?2 AND (lm IS NULL OR lm < ?1)"},
      {&s->upd_ack, "UPDATE member SET ack_ts = ?1, ack_seq = ?2, ack_at = ?3"
                    " WHERE conv = ?4 AND client = ?5 AND (ack_ts, ack_seq) < (?1, ?2)"},
      {&s->upd_read, "UPDATE member SET read_ts = ?1, read_seq = ?2, read_at = ?3"
                     " WHERE conv = ?4 AND client = ?5 AND (read_ts, read_seq) < (?1, ?2)"},
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
    if (sq_prepare(s->wdb, stmts[i].sql, stmts[i].st) < 0) goto fail;
  if (sq_hot_open(s) < 0) goto fail;
  atomic_store(&s->notif_seq, now_ms() << 10); /* unique across restarts */
  static const qpool_conf_t qc = {"tern-query",  2, QPOOL_QUERY_NICE, STORE_QUERY_QUEUE_MAX, sq_reader_new,
                                  sq_reader_free};
  s->qpool = qpool_new(s, &qc, s->post, s->post_arg, !s->inline_writes);
  if (!s->inline_writes) {
    pthread_create(&s->writer, NULL, sq_writer_main, s);
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
  if (s->wdb && s->upd_lm) sq_lm_final(s); /* the writer has stopped: this thread may write */
  free(s->lm.v);
  sqlite3_stmt *all[] = {s->ins_conv,         s->ins_member,
                         s->del_member,       s->count_members,
                         s->find_unique,      s->upd_lm,
                         s->upd_ack,          s->upd_read,
                         s->del_conv_members, s->del_conv,
                         s->upd_time,         s->ins_set,
                         s->del_set,          s->ins_role,
                         s->del_role,         s->ins_cblock,
                         s->del_cblock,       s->del_conv_sets,
                         s->del_conv_roles,   s->ins_notif,
                         s->prune_notif,      s->ins_device,
                         s->move_device,      s->del_device_token,
                         s->set_badge,        s->add_badge,
                         s->ins_inst,         s->del_inst,
                         s->del_inst_devices, s->ins_inst_device,
                         s->ins_revoked,      s->ins_client_revoked,
                         s->prune_revoked,    s->prune_client_revoked,
                         s->w_msg_by_dt};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  sq_hot_close(s);
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
    .msg_by_dt = sq_msg_by_dt,
    .msg_ext_find = sq_msg_ext_find,
    .installation_count = sq_installation_count,
    .installation_query = sq_installation_query,
    .app_logs = sq_app_logs,
    .devices = sq_devices,
    .installation_get = sq_installation_get,
    .token_revoked = sq_token_revoked,
};
