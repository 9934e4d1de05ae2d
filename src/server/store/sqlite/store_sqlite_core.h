/* store_sqlite_core.h — the SQLite backend's own state and the helpers its files share
 * (store_sqlite.c: open, close and the ops table; store_sqlite_schema.c; store_sqlite_writer.c;
 * store_sqlite_read.c). Only those files include it; the other files of the folder see
 * store_sqlite_int.h. */
#ifndef TERN_STORE_SQLITE_CORE_H
#define TERN_STORE_SQLITE_CORE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "qpool.h"
#include "store.h"
#include "store_sqlite_int.h"

typedef struct {
  int64_t conv, v;
} conv_slot_t;
typedef struct { /* conv id → an int64 (lm: the newest message time), open addressing (conv 0 = empty) */
  conv_slot_t *v;
  size_t cap, n;
} conv_tab_t;
/* Where conv goes in a table of cap (a power of two) slots. Conversation ids are the
 * store's own row ids, never a client's choice. */
static inline size_t sq_conv_hash(int64_t conv, size_t cap) {
  return (size_t)((uint64_t)conv * 0x9E3779B97F4A7C15ull >> 32) & (cap - 1);
}

/* The hot tables' state (store_sqlite_hot.c): a mirror of msg_hot_state's row. */
typedef struct {
  int active;   /* msg_hot<active> takes new messages */
  int draining; /* msg_hot<draining> is moving into msg, or -1 */
  int64_t upto; /* its conversations up to this id have moved */
} sq_hot_state_t;
typedef struct {
  int64_t conv, ts, seq; /* conv's newest stored key (conv 0: an empty slot) */
} sq_hot_key_t;
#define HOT_NEWEST_SLOTS 16384
typedef struct {
  sq_hot_state_t state, work;                      /* as committed; as this transaction has it */
  int64_t since_us, switched_us;                   /* when the active table took over (committed; this transaction's) */
  int64_t inserted;                                /* messages this batch put in a hot table so far */
  sq_hot_key_t *newest;                            /* HOT_NEWEST_SLOTS, direct-mapped by conv */
  conv_tab_t count;                                /* the batch's messages per conversation */
  sqlite3_stmt *ins[3], *ins_checked[3], *last[3]; /* [2]: msg */
  sqlite3_stmt *next[2], *move[2], *empty[2], *put;
} sq_hot_t;

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
  conv_tab_t lm;             /* writer only: lm not yet written (see lm_note) */
  int64_t lm_flushed_us;
  sq_hot_t hot;            /* writer only (store_sqlite_hot.c) */
  int64_t hot_interval_us; /* how long new messages collect in a hot table */
  int hot_step_rows;       /* rows a move step takes at least (0: by the batch's size) */
  int closing, started;
  atomic_int fail_writes;
  /* checkpoints run on their own thread and connection, so the writer waits only for the
   * short last round of a catch-up (checkpointer_main), not for every checkpoint's fsyncs
   * (tern-bench saw 47 ms commit stalls when the writer checkpointed itself) */
  pthread_t checkpointer;
  sqlite3 *cdb;
  int ckpt_started, ckpt_stop, ckpt_wanted;
  atomic_int ckpt_done;    /* the WAL frames the last round had copied */
  atomic_int wal_restarts; /* times the writer saw the WAL start over (sq_wal_hook) */
  int wal_frames;          /* writer only: the WAL's frames after the last commit (sq_wal_hook) */
  int ckpt_hold;           /* the checkpointer's last round is waiting: start no batch */
  int writer_busy;         /* a batch is running (between taking it and posting its completions) */
  pthread_cond_t ckpt_cv;
  sqlite3_stmt *ins_conv, *ins_member, *del_member, *count_members, *find_unique, *upd_lm, *upd_ack, *upd_read,
      *del_conv_members, *del_conv, *upd_time, *ins_set, *del_set, *ins_role, *del_role, *ins_cblock, *del_cblock,
      *del_conv_sets, *del_conv_roles, *ins_notif, *prune_notif;
  sqlite3_stmt *upd_msg[3], *del_msg[3], *del_conv_msgs[3]; /* on each table of messages (sq_hot_open) */
  sqlite3_stmt *w_msg_by_dt; /* SQ_MSG_BY_DT_SQL on the writer: a possible resend's check (dt_since) */
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

/* ---- store_sqlite_schema.c */
/* Prepares a persistent statement; logs and returns TERN_ESTORE on failure. */
int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* A resend (store_msg_by_dt, and a job's dt_since in the writer): the newest ?5 messages of
 * conv ?1 since ?2 (a range of the primary key), then the one sender ?3 stored with dt ?4:
 * its mid and ts. */
#define SQ_MSG_BY_DT_SQL                                                                                               \
  "SELECT mid, ts FROM (SELECT mid, ts, seq, sender, dt FROM msg_all WHERE conv = ?1 AND ts >= ?2"                     \
  " ORDER BY ts DESC, seq DESC LIMIT ?5) WHERE sender = ?3 AND dt = ?4 LIMIT 1"
/* Runs SQL with no result rows; logs and returns TERN_ESTORE on failure. */
int sq_exec(sqlite3 *db, const char *sql);
/* Opens a connection (readonly: a worker's reader, with regexp()); vfs: NULL for the
 * default, or WALBUF_VFS for the writer's connection. 0 or TERN_ESTORE. */
int sq_open_db(const char *path, int readonly, const char *vfs, sqlite3 **out);
/* Brings the schema to the newest version, one transaction per migration. */
int sq_migrate(sqlite3 *db);
/* The member filter: note a client before its member row commits (writer); 0 when the
 * client surely has no member row, 1 when it may have (readers); load it at open. */
void sq_member_note(store_t *s, const char *client);
int sq_member_maybe(store_t *s, const char *client);
int sq_member_filter_load(store_t *s);

/* ---- store_sqlite_writer.c */
int64_t sq_mono_us(void);
/* Steps a write statement once and resets it: 0 or the SQLite error. */
int sq_step_done(sqlite3_stmt *st);
void *sq_writer_main(void *arg); /* the writer thread */
/* conv's slot in t, added with v 0 if it was not there (t grows to stay at most half full). */
conv_slot_t *sq_conv_slot(conv_tab_t *t, int64_t conv);
/* conv's slot in t, or NULL. */
const conv_slot_t *sq_conv_find(const conv_tab_t *t, int64_t conv);
void *sq_checkpointer_main(void *arg); /* the checkpointer thread */
/* The writer connection's WAL hook: wakes the checkpointer every CKPT_FRAMES frames. */
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);
/* At close, after the writer stopped: commits the lm notes not yet written. */
void sq_lm_final(store_t *s);
void sq_submit(store_t *s, store_job_t *j);

/* ---- store_sqlite_hot.c: new messages in arrival order, moved into msg in steps; all on
 * the writer's connection, inside a batch's transaction */
/* The columns of msg and of the hot tables, in the order the view msg_all has them. */
#define SQ_HOT_COLS "conv, ts, seq, mid, sender, data, flags, mentions, lctype, patch_ts, readers, dt"
#define SQ_HOT_COLS_DEF                                                                                                \
  "conv INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, mid TEXT NOT NULL, sender TEXT NOT NULL,"         \
  " data BLOB, flags INTEGER NOT NULL DEFAULT 0, mentions TEXT, lctype INTEGER, patch_ts INTEGER NOT NULL DEFAULT 0,"  \
  " readers TEXT, dt INTEGER"
/* Loads the state and prepares the statements (after sq_migrate), upd_msg, del_msg and
 * del_conv_msgs of the store's included: 0 or TERN_ESTORE. */
int sq_hot_open(store_t *s);
void sq_hot_close(store_t *s);
/* Before a batch's jobs run, in its transaction: counts its messages per conversation (a
 * conversation's second and later go straight into msg) and, if it holds a bulk import
 * (which reads and writes msg alone), moves every hot row into msg. 0 or the SQLite error
 * (the transaction must not commit). */
int sq_hot_batch(store_t *s, const store_job_t *batch);
/* The insert of a new message with key (conv, ts, seq), SQ_HOT_COLS bound ?1..?12 (*st: into
 * the active table or msg), and what its step's result rc means: 0, or the SQLite error
 * (SQLITE_CONSTRAINT_PRIMARYKEY: the key is taken, in any of the three tables). */
int sq_hot_insert(store_t *s, int64_t conv, int64_t ts, int64_t seq, sqlite3_stmt **st);
int sq_hot_insert_done(store_t *s, int rc);
/* conv's messages changed by another way (the bulk import): its newest key is sought again. */
void sq_hot_forget(store_t *s, int64_t conv);
/* Once per batch, before its COMMIT: switches tables when hot_interval has passed, or moves
 * the next step of the draining one. 0 or the SQLite error (the transaction must not commit). */
int sq_hot_step(store_t *s, int64_t now_us);
/* After the batch: its transaction committed (1) or was rolled back (0). */
void sq_hot_done(store_t *s, int committed);

/* ---- store_sqlite_read.c: the reads of store_sqlite_ops (store.h has their contracts) */
int sq_conv_load(store_reader_t *r, const char *cid, conv_row_t *out);
int sq_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg);
int sq_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
                     void (*cb)(void *arg, const char *cid), void *arg);
int sq_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                    void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg);
int sq_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                    void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg);
int sq_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                     void (*cb)(void *arg, const char *client, int64_t at), void *arg);
int sq_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at);
int sq_shutups_expired(store_reader_t *r, int64_t now, int max,
                       void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg);
int sq_app_logs(store_reader_t *r, const app_logs_req_t *q,
                void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);
int sq_client_blocked(store_reader_t *r, const char *client, const char *cid);
int sq_conv_doc(store_reader_t *r, int64_t conv, char **doc);
int sq_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at);
int sq_conv_query_check(store_t *s, const store_conv_q_t *cq, char *err, size_t errlen);
int sq_conv_count(store_reader_t *r, const store_conv_q_t *cq, int64_t *n);
int sq_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg);
int sq_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg);
int sq_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg);
int sq_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                    int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg);
int sq_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg);
int sq_offline(store_reader_t *r, const char *client, int max,
               void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);
int sq_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg);
int sq_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
                     void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg);
int sq_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                     void (*cb)(void *arg, int64_t ts, const char *body), void *arg);
int sq_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
               void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg);
int sq_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
               void *arg);
int sq_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
                        installation_row_t *out);
int sq_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                     int *lineage_revoked);
int sq_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq);
int sq_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                 int64_t *ts, int64_t *newest_ts);

#endif
