/* store.h — persistence behind one interface (design.md: store).
 *
 * Reads are synchronous calls on a per-worker reader, because a SQLite read of an indexed
 * range costs microseconds and WAL lets readers run beside the writer. Writes are jobs:
 * the caller fills a job, submits it, and gets it back on its own worker (job->task) after
 * the batch that contains it has committed — so an ack never leaves before its message is
 * durable. One writer thread commits whatever has queued up in one transaction (group
 * commit); while it commits, the next batch gathers.
 *
 * The backend is an ops table (store_ops_t, at the end): store_open takes the one to use,
 * every call below goes through it (store.c), and a backend's handles begin with a pointer
 * to its table. store/sqlite is the one backend today (store_sqlite.h: store_sqlite_ops);
 * tests/store runs the conformance suite against every backend in its table. */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "convq.h"
#include "server.h"

typedef struct store_reader store_reader_t;

/* A conversation query (protocol.md §3.5): the where and sort parsed once, by the store
 * layer's parser (convq.h: convq_parse, which makes every check of the query language), and
 * compiled by the backend (store/sqlite: query/query.c to SQL). Nothing here is backend
 * language. Used by store_conv_query_check, store_conv_query, store_conv_count (limit, skip
 * and flags unused there) and store_query_submit. */
typedef struct {
  const convq_t *query; /* the parsed where and sort: borrowed for the call (for
                         * store_query_submit, until task.fn runs); never NULL */
  int limit, skip;
  int flags; /* 1 compact (no m), 2 with the last message */
} store_conv_q_t;

/* An AND of simple conditions over a class's fields (`_Installation` reads): the parsed
 * form api/rest_classes.c makes of a `where`. */
typedef enum {
  STORE_EQ,
  STORE_NE,
  STORE_LT,
  STORE_LTE,
  STORE_GT,
  STORE_GTE,
  STORE_IN,
  STORE_NIN,
  STORE_EXISTS
} store_cmp_t;
typedef struct {
  const char *field; /* objectId, createdAt, updatedAt, deviceType, or a dotted path into the object */
  store_cmp_t op;
  json_t *val; /* the operand: string, number or boolean; an array for IN / NIN; a boolean for EXISTS */
  int is_time; /* createdAt / updatedAt: compare ms */
  int64_t ms;
} store_cond_t;
typedef struct {
  const store_cond_t *conds;
  size_t n;
  const char *order; /* "createdAt", "-updatedAt,objectId": objectId, createdAt, updatedAt only */
  int limit, skip;
} store_class_q_t;

enum { CONV_NORMAL = 1, CONV_ROOM = 2, CONV_SYSTEM = 3, CONV_TEMP = 4 };

enum {
  MSG_F_BIN = 1,         /* data is binary (binaryMsg) */
  MSG_F_RECEIPT = 2,     /* sender asked for receipts (r) */
  MSG_F_MENTION_ALL = 4, /* mentionAll */
  MSG_F_RECALLED = 8,    /* replaced by a recall */
};

/* A conversation as stored, for the cache. Strings are owned; free with conv_row_free. */
typedef struct {
  int64_t id;
  char *cid;
  int kind;
  char *creator;
  char *unique_id;
  int64_t created_at, updated_at, lm, expire_at;
  int64_t last_ts, last_seq; /* newest message's key, 0/0 if none */
  int ext_ids;               /* some messages were imported with ids of their own (msg_ext) */
  int rcp;                   /* some message asked for receipts (MSG_F_RECEIPT): acks look for them */
  char **members;
  size_t nmembers;
  /* the conversation's client sets (sorted): managers, shut-up members, blocked clients */
  char **sets[3];
  size_t nsets[3];
} conv_row_t;

enum { SET_MANAGER = 0, SET_SHUTUP = 1, SET_BLOCK = 2 };
void conv_row_free(conv_row_t *r);

/* A stored message, borrowed for the duration of a callback. */
typedef struct {
  int64_t ts, seq;
  const char *mid, *sender;
  const uint8_t *data;
  size_t len;
  int flags;
  const char *mentions; /* JSON array text or NULL */
  int64_t patch_ts;
  const char *readers; /* NULL, or the only readers besides the sender: ids framed by \x1f */
} msg_view_t;
typedef int (*msg_cb)(void *arg, const msg_view_t *m); /* nonzero stops the scan */
/* Does a message's mentions (JSON array text, NULL: none) name client? (backends' unread counts) */
int store_mentions_contain(const char *mentions, const char *client);

/* History request, already resolved to key bounds by the caller (protocol.md §3.11). */
typedef struct {
  int64_t conv;
  int newer; /* 0: walk from hi down (OLD), 1: from lo up (NEW) */
  int has_lo, has_hi;
  int64_t lo_ts, lo_seq; /* lower bound key */
  int64_t hi_ts, hi_seq; /* upper bound key */
  int lo_incl, hi_incl;
  int limit;
  int has_lctype, lctype;
  const char *viewer; /* only the messages this client may read; NULL: all */
} logs_req_t;

/* One conversation's unread state for a client (protocol.md §3.10). */
typedef struct {
  const char *cid;
  int kind;
  int unread; /* capped at 100 */
  int mentioned;
  int64_t read_changed_at;
  msg_view_t last; /* last.mid == NULL if the conversation has no message */
} unread_view_t;
typedef void (*unread_cb)(void *arg, const unread_view_t *u);

/* Per-member read/ack progress. */
typedef struct {
  const char *client;
  int64_t read_ts, read_seq, read_at, ack_ts, ack_seq, ack_at;
} member_progress_t;
typedef void (*progress_cb)(void *arg, const member_progress_t *p);

/* A conversation as queries and fetches hand it out, borrowed for the duration of the
 * callback; the IM layer shapes the protocol's JSON from it (im/conv_json.c). */
typedef struct {
  const char *cid;
  int kind;
  int64_t created_at, updated_at, expire_at;
  int has_lm;
  int64_t lm;                 /* the newest message's time (else the stored lm) */
  const char *doc;            /* JSON object text of the other fields */
  const char *const *members; /* NULL: not asked for (compact), or a chat room / service conversation */
  size_t nmembers;
  const msg_view_t *last; /* the newest message: NULL if not asked for (flags & 2) or none */
} conv_view_t;
typedef void (*conv_view_cb)(void *arg, const conv_view_t *c);

/* ---- reads off the worker's loop ----
 * A read whose backend answers over the network (PostgreSQL: a round trip, ~76 µs a row,
 * and as long as the database makes it wait when it is slow or a row is locked) must not
 * hold the worker's loop, where every other connection of the worker waits behind it.
 * store_read_submit runs rd->fn with a reader of the backend's read threads and then posts
 * rd->task to rd->worker, as a job's completion. A backend whose reads are local and cheap
 * (SQLite, whose table has no read_submit) runs fn on `own` (the caller's reader) and then
 * task.fn, both before store_read_submit returns. fn must touch nothing but rd (and what it
 * owns) and the reader it is given: it may run on another thread. */
typedef struct store_read store_read_t;
struct store_read {
  task_t task; /* first; set task.fn: runs on `worker` once fn has run; owns rd then */
  int worker;
  int (*fn)(store_reader_t *r, store_read_t *rd); /* the reads; its return is result */
  int result;                                     /* fn's, or TERN_ESTORE when the backend had no reader to give it */
  store_read_t *next;                             /* the backend's */
};
/* Reads waiting for a read thread, server-wide; past it submit refuses. */
#define STORE_READ_QUEUE_MAX 1024
/* 0 (task.fn runs, or has run); TERN_EAGAIN when the queue is full (nothing ran). */
int store_read_submit(store_t *s, store_reader_t *own, store_read_t *rd);
/* 1 when store_read_submit runs reads on threads of its own (PostgreSQL), 0 when it runs
 * them at once on the caller (SQLite): whether waiting for a read is worth a task hop. */
int store_reads_off_loop(const store_t *s);

/* ---- conversation queries, off the network loops (qpool.c) ----
 * A `where` can be made to cost a lot per row (a regular expression, JSON1 over big
 * documents), so queries run on query threads of their own, never on a worker's loop, each
 * within a deadline that counts from submission (time spent queued included). */
typedef struct store_query store_query_t;
struct store_query {
  task_t task; /* set task.fn: runs on `worker` when done; owns the query then */
  int worker;
  store_conv_q_t q;     /* borrowed until then */
  uint64_t deadline_ns; /* mono_ns() by which it must be answered */
  int count;            /* 1: first count what q's where selects into n (limit and skip
                         * unused), under the same deadline; then the page, unless q.limit is 0 */
  int64_t n;            /* count: the backend's answer */
  int result;           /* 0, TERN_ETIMEDOUT, TERN_E2BIG (see the ops' conv_query_until), TERN_ESTORE */
  conv_view_cb cb;      /* each row, on the query thread, before task.fn; with result != 0 */
  void *cb_arg;         /* what cb gave is to be dropped */
  store_read_t rd;      /* the backend's: the query runs as a read on its query threads (qpool.c) */
};
/* Most queries waiting for a query thread, server-wide; past it submit refuses. */
#define STORE_QUERY_QUEUE_MAX 256
/* Queues q; TERN_EAGAIN (nothing queued, task not run) when the queue is full. With
 * inline_writes it runs at once on the caller's thread and posts like any other. */
int store_query_submit(store_t *s, store_query_t *q);

/* ---- write jobs ---- */

typedef enum {
  JOB_CONV_CREATE,
  JOB_MSG_INSERT,
  JOB_MEMBER_ACK,
  JOB_MEMBER_READ,
  JOB_MEMBERS_ADD,
  JOB_MEMBERS_REMOVE,
  JOB_CONV_DELETE,
  JOB_CONV_UPDATE,
  JOB_SET_CHANGE,
  JOB_CLIENT_BLOCK,
  JOB_MSG_PATCH,
  JOB_MSG_DELETE,
  JOB_NOTIF,
  JOB_PRUNE,
  JOB_DEVICE,
  JOB_INSTALLATION,
  JOB_REVOKE,
  JOB_IMPORT,
} job_type_t;

typedef struct store_job store_job_t;
struct store_job {
  task_t task; /* set task.fn: runs on `worker` after commit; owns the job then */
  job_type_t type;
  int worker; /* -1: fire and forget, the store frees it with free_fn */
  int result; /* 0, TERN_EEXIST (unique conflict; a message: an equal resend, dup_mid), or TERN_ESTORE */
  void (*free_fn)(store_job_t *j);
  store_job_t *next;
};

typedef struct {
  store_job_t job;
  conv_row_t row;     /* id is filled in on success */
  char *doc;          /* JSON object text of the other fields */
  char *existing_cid; /* set when result == TERN_EEXIST: the unique twin */
  int64_t existing_created_at;
} job_conv_create_t;

typedef struct job_msg_insert {
  store_job_t job;
  int64_t conv, ts, seq, patch_ts;
  char *mid, *sender;
  uint8_t *data;
  size_t len;
  int flags;
  char *mentions; /* JSON array text or NULL */
  int has_lctype, lctype;
  char *readers; /* NULL (every member) or the readers besides the sender, framed by \x1f */
  /* History order is commit order (docs/cluster.md, "Message order across nodes"). With
   * rekey set, the message must come after every message of the conversation stored before
   * it: a backend whose writer can find a later key already stored (several nodes on one
   * PostgreSQL; never a single SQLite writer, whose one node allocates keys in order) moves
   * it, under a per-conversation lock held to its commit, to ts = max(ts, newest ts), seq =
   * newest seq + 1, sets rekeyed, and calls rekey on the writer thread to make mid name the
   * new key (the id is the key: msgid.c). rekey NULL: stored under the key as given, and a
   * taken key fails the job alone. */
  void (*rekey)(struct job_msg_insert *j);
  int rekeyed;
  int64_t dt; /* 0, or a 64-bit hash of the client's dedupe token (directCommand dt;
                  * im_dedupe.c), kept with the message so that a resend can be found by
                  * store_msg_by_dt: 8 bytes a row instead of the token's 36 */
  /* A possible resend (im_dedupe.c; docs/protocol-map.md, "dt"): dt_since not 0 asks the
   * writer to store the message only if the conversation holds no message of the same sender
   * with the same dt at or after dt_since (store_msg_by_dt's rule), compared in the writer's
   * transaction, after every job submitted before it (and, on a backend with an order lock,
   * under that lock: after another node's copy that took it first). An equal one found: the
   * job stores nothing, result TERN_EEXIST, dup_mid (malloc'd, the job owner frees it) and
   * dup_ts name the stored message. 0 (every ordinary send): stored as given, no read. */
  int64_t dt_since;
  char *dup_mid;
  int64_t dup_ts;
  /* A first copy that may have been resent (docs/cluster.md, "A send whose ack died with its
   * node is stored once"): its sender's session ended (the connection closed, the session
   * was closed, kicked or pushed out) before the commit, so the client may have resent it on
   * a new connection — on another node, whose writer can commit the resend first. The owner
   * sets `gone` (any thread, at any time while the job is queued; never cleared); the writer
   * reads it when it queues the job behind its order lock (store_msg_gone_settle) and then checks the
   * job exactly as a resend (dt_since = gone_since): an equal message of the same sender
   * already stored makes this copy the one dropped (TERN_EEXIST, dup_mid). gone_since 0: the
   * job is never checked this way (no dt, or dedupe off); a plain job costs nothing more. */
  atomic_int gone;
  int64_t gone_since;
} job_msg_insert_t;

/* The writer, when it queues the job behind its order lock (a backend with one: in the
 * lock's flight, or after the lock is granted; SQLite: when it runs the job), before it
 * decides between a plain and a checked insert: a job marked gone becomes a checked one. */
static inline void store_msg_gone_settle(job_msg_insert_t *j) {
  if (!j->dt_since && j->dt && j->gone_since && atomic_load_explicit(&j->gone, memory_order_acquire))
    j->dt_since = j->gone_since;
}

typedef struct {
  store_job_t job;
  int64_t conv, ts, seq, at;
  char *client;
} job_progress_t;

typedef struct {
  store_job_t job;
  int64_t conv, ts, seq, patch_ts;
  uint8_t *data;
  size_t len;
  int flags;
  char *mentions;
  int has_lctype, lctype; /* of the new content (a recall is -127) */
} job_msg_patch_t;    /* JOB_MSG_PATCH: an edit or a recall replaces the stored content;
                         JOB_MSG_DELETE (conv, ts, seq only): the server's copy goes */       /* JOB_MEMBER_ACK, JOB_MEMBER_READ: only ever moves forward */

typedef struct {
  store_job_t job;
  int64_t conv, updated_at;
  int64_t seen_ts, seen_seq; /* add: the conversation's newest key at the join — newcomers
                              * start with everything up to it read and delivered */
  char **clients;
  size_t n;
} job_members_t; /* JOB_MEMBERS_ADD / JOB_MEMBERS_REMOVE; JOB_CONV_DELETE uses conv only */

/* One change of a conversation document (the JSON object beside the columns), addressed by
 * key segments, not by any backend's path language: the backend builds its own paths
 * (store/sqlite: `$."a"."b"` for json_set / json_remove) and must take every key jansson
 * can hold (quotes, brackets, dots inside a segment, backslashes, control characters,
 * UTF-8). Every object on the way to the last segment is there already: the IM layer sends
 * the topmost place that changed, with the whole new branch as its value. */
typedef enum {
  DOC_SET,     /* path[0..depth) holds value now (created or replaced) */
  DOC_UNSET,   /* path[0..depth) is gone (it may already be absent); value NULL */
  DOC_REPLACE, /* the whole document is value (depth 0, the only change of its job): the IM
                * layer sends it when the stored document is deeper than JSON_MAX_DEPTH,
                * which a backend may be unable to parse in order to edit it */
} doc_op_t;
typedef struct {
  doc_op_t op;
  char **path;  /* owned: depth NUL-terminated key segments, each non-empty */
  size_t depth; /* DOC_SET / DOC_UNSET: at least 1 */
  char *value;  /* owned: JSON text (DOC_SET: any value; DOC_REPLACE: an object) */
} doc_change_t;

typedef struct {
  store_job_t job;
  int64_t conv, updated_at;
  /* applied in order (store/sqlite: json_set / json_remove): an update costs the writer what
   * it changed, and a queued job holds only the changed values, never the whole document.
   * changes[0..n) and everything in them are the job's: doc_changes_free */
  doc_change_t *changes;
  size_t n;
  int merged, merged_rc; /* the writer's: already run with an earlier job of the batch */
} job_conv_update_t;     /* JOB_CONV_UPDATE (no change: only updated_at moves) */
void doc_changes_free(doc_change_t *v, size_t n);

typedef struct {
  store_job_t job;
  int set;            /* SET_* */
  int add;            /* 1 add to the set, 0 remove */
  int remove_members; /* blocking also takes the clients out of the member list */
  int64_t conv, at;
  char **clients;
  size_t n;
  int64_t expire_at; /* SET_SHUTUP adds: when a temporary shut-up lifts (0: never). Adding a
                       * permanent entry over a temporary one makes it permanent; a
                       * temporary one never shortens a permanent one */
  const char *role;  /* SET_MANAGER adds: the role the row keeps (NULL: Manager; REST keeps
                       * Member rows so their objectId stays valid) */
} job_set_t;         /* JOB_SET_CHANGE */

typedef struct {
  store_job_t job;
  int add;
  char *client;
  char **cids;
  size_t n;
  int64_t at;
} job_client_block_t; /* JOB_CLIENT_BLOCK: a client blocks conversations */

typedef struct {
  store_job_t job;
  int64_t ts; /* the notification's serverTs */
  char *body; /* its JSON, as /rtm/notifications returns it */
  char **clients;
  size_t n;
} job_notif_t; /* JOB_NOTIF: keep one permanent notification for each recipient */

typedef struct {
  store_job_t job;
  int64_t notif_before;
} job_prune_t; /* JOB_PRUNE: forget notifications older than that */

enum { DEVICE_PUT = 0, DEVICE_DROP = 1, DEVICE_BADGE = 2 };

typedef struct {
  store_job_t job;
  int op; /* DEVICE_PUT: `client` receives its offline pushes on `token` (of `type`), and a
                 * token reported this way leaves the other clients it was reported for;
                 * DEVICE_DROP: the provider says the token is dead — every row of it goes;
                 * DEVICE_BADGE: every row of the token gets badge (add: badge += badge) */
  char *client, *token, *type;
  int64_t badge;
  int add;
  int64_t at;
} job_device_t; /* JOB_DEVICE (push.h's device registry) */
/* free_fn of fire-and-forget JOB_DEVICE jobs: frees client, token, type and the job. */
void job_device_free(store_job_t *j);

typedef struct {
  store_job_t job;
  int remove; /* 1: delete the installation and its device rows (only id is used) */
  char *id, *device_type, *token;
  char *body;      /* the whole `_Installation` object as JSON text */
  char **channels; /* client ids whose offline pushes go to this device */
  size_t n;
  int has_badge;
  int64_t badge;
  int64_t created_at, updated_at;
} job_installation_t; /* JOB_INSTALLATION: create or replace; its channels replace the old ones */

typedef struct {
  store_job_t job;
  char *client;       /* set: every session token of client issued at or before `at` is revoked */
  uint8_t lineage[8]; /* else: every token of this lineage (token.h) */
  int64_t at;
  int64_t expires_at; /* when every token the row names has expired: it may go then */
} job_revoke_t;       /* JOB_REVOKE (revoke.h); each also prunes a few expired rows */

/* ---- bulk import (rest_import.c, docs/migrate-api.md): one job carries a whole request */

enum { IMP_CONV = 1, IMP_ROLES, IMP_SHUTUP, IMP_BLOCK, IMP_SUBSCRIBERS, IMP_MUTES, IMP_MSG, IMP_INSTALLATION };
enum { IMP_APPLIED = 1, IMP_UNCHANGED, IMP_SKIPPED };

typedef struct {
  int type;           /* IMP_* */
  int line;           /* in the request body, from 1 */
  int outcome;        /* IMP_APPLIED, IMP_UNCHANGED or IMP_SKIPPED, set by the store */
  const char *reason; /* IMP_SKIPPED: why (static text) */
  char *cid;          /* the conversation, for every type but IMP_INSTALLATION */
  /* IMP_CONV: created with exactly these columns if absent, else replaced by them. row.id,
   * row.last_* are unused; members (sorted, distinct) only for normal and temporary ones. */
  conv_row_t *conv;
  char *doc;  /* the document (JSON object text, keys sorted) */
  int64_t lm; /* the record's lm (0: none); the stored one only ever grows */
  /* IMP_ROLES (roles[i] of clients[i], Member or Manager), IMP_SHUTUP (permanent shut-ups),
   * IMP_BLOCK: the whole set is replaced. IMP_SUBSCRIBERS: added, or the set replaced.
   * IMP_MUTES: the document's `mu` becomes clients. */
  char **clients, **roles;
  size_t n;
  int replace;
  /* IMP_MSG: stored under mid at (ts, seq); seq 0: the store picks the next free one at ts.
   * If mid is there already, only a newer patch_ts replaces its content and flags. */
  int64_t ts, seq, patch_ts;
  char *mid, *sender;
  uint8_t *data;
  size_t len;
  int flags;
  char *mentions;
  int has_lctype, lctype;
  /* IMP_INSTALLATION: as JOB_INSTALLATION (remove unused); unchanged when identical */
  job_installation_t *inst;
} import_op_t;

/* What a JOB_IMPORT did to one conversation's messages: the newest key it wrote and the
 * largest seq it used (the cache's next key must stay beyond both). */
typedef struct {
  int64_t conv;
  char *cid;
  int64_t max_ts, max_ts_seq, max_seq;
} import_conv_t;

typedef struct {
  store_job_t job;
  import_op_t *ops;
  size_t n;
  /* out: the conversations that got new messages (the caller frees each cid, and touched) */
  import_conv_t *touched;
  size_t ntouched;
} job_import_t; /* JOB_IMPORT: ops in order, in the batch's transaction. A failing
                       * statement fails the job (result TERN_ESTORE, nothing kept); a line
                       * that cannot apply is IMP_SKIPPED with its reason */

/* A device a client's offline pushes go to, borrowed for the duration of a callback. */
typedef struct {
  const char *token, *type;
  const char *installation_id; /* NULL for a reported token */
  int64_t badge;
} device_view_t;

/* A stored installation; strings are owned (free with installation_row_free). */
typedef struct {
  char *id, *device_type, *token, *body;
  int64_t created_at, updated_at;
} installation_row_t;
void installation_row_free(installation_row_t *r);

/* A role assignment (`_ConversationMemberInfo`). */
typedef struct {
  const char *client, *role, *info_id;
  int64_t created_at, updated_at;
} member_info_t;

typedef struct {
  const char *path;       /* database file; ":memory:" is not shared between threads */
  int sync_full;          /* synchronous=FULL instead of NORMAL */
  int inline_writes;      /* run jobs on the submitting thread (fuzzers, unit tests) */
  int commit_interval_us; /* at most one commit per interval while jobs keep coming (0: none) */
  int hot_interval_us;    /* SQLite: how long new messages collect in arrival order before they move (0: at once) */
  int hot_step_rows;      /* SQLite: rows a step of that move takes at least (0: the default; tests set few) */
  void (*post)(void *arg, int worker, task_t *t); /* how completions reach a worker */
  void *post_arg;
} store_options_t;

typedef struct store store_t;
typedef struct store_ops store_ops_t;

/* Opens the store on backend `ops` (store_sqlite_ops, …). */
int store_open(const store_ops_t *ops, const store_options_t *opt, store_t **out);
/* Drains the queue (every submitted job completes), stops the writer, closes. NULL: no-op. */
void store_close(store_t *s);
void store_submit(store_t *s, store_job_t *j);
/* ---- operations (store_backup.c) ---- */
/* A consistent copy of the whole database in a new file `dest`, made with SQLite's online
 * backup API on a connection of its own: one read transaction, so the copy is the database
 * as some commit left it (every job acked before the call is in it), while the writer and
 * the readers go on (WAL). Written to dest.part and renamed once complete. Blocking, and
 * as long as the database is large: call it off the network loops. 0, TERN_EEXIST (dest
 * exists), TERN_ESTORE (logged). *bytes gets the copy's size. */
int store_backup(store_t *s, const char *dest, int64_t *bytes);
/* /metrics lines: tern_store_db_bytes and tern_store_wal_bytes (the files' sizes). */
void store_metrics(store_t *s, buf_t *out);

/* Test hook: make every later commit fail as if the disk were full (fault injection). */
void store_fail_writes(store_t *s, int on);

store_reader_t *store_reader_new(store_t *s);
void store_reader_free(store_reader_t *r); /* NULL: no-op */

/* Reads. All return 0, TERN_ENOENT, or TERN_ESTORE. */
int store_conv_load(store_reader_t *r, const char *cid, conv_row_t *out);
/* The conversation's JSON document (everything that is not a column), malloc'd. */
int store_conv_doc(store_reader_t *r, int64_t conv, char **doc);
int store_conv_find_unique(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at);
/* Whether the backend takes q's parsed where and sort: 0, or TERN_EINVAL with a reason for
 * the client in err — only limits of the backend's own engine are left to refuse here (the
 * SQLite backend: more than 1,000 bound parameters, nesting its SQL parser cannot hold, a key
 * with both '"' and '[' that its JSON paths cannot address); everything else convq_parse
 * checked. Call it before submitting: a query that fails here fails the same way when run. */
int store_conv_query_check(store_t *s, const store_conv_q_t *q, char *err, size_t errlen);
/* Runs q: cb gets each conversation, in order. On failure what cb got is to be dropped. */
int store_conv_query(store_reader_t *r, const store_conv_q_t *q, conv_view_cb cb, void *arg);
/* How many conversations q's where selects (limit and skip unused). */
int store_conv_count(store_reader_t *r, const store_conv_q_t *q, int64_t *n);
/* The same for explicit ids of any kind (temporary conversations included), in no
 * particular order; ids that are not there are left out. flags as store_conv_q_t's. */
int store_conv_fetch(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg);
/* History: OLD takes the newest `limit` below hi, NEW the oldest above lo; either way
 * they are handed out oldest first (protocol.md §3.11). */
int store_logs(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg);
int store_msg_get(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg);
/* Messages in (from, to] of conv not sent by `client` that asked for receipts. */
int store_msg_receipts(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                       int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg);
/* Unread state of every conversation of `client` changed after `since` (ms), newest
 * first, at most `max` conversations. */
int store_unread(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg);
/* Messages of `client`'s conversations it has not acked, oldest first, at most `max`
 * (the lc.protobuf2.1 offline push). */
int store_offline(store_reader_t *r, const char *client, int max,
                  void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);
int store_progress(store_reader_t *r, int64_t conv, progress_cb cb, void *arg);
/* Notifications kept for client after `after` (serverTs), oldest first, about `limit`. */
int store_notifications(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                        void (*cb)(void *arg, int64_t ts, const char *body), void *arg);
/* Conversations to delete: temporary ones past their TTL, others idle since idle_before. */
int store_expired(store_reader_t *r, int64_t now, int64_t idle_before, int max,
                  void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg);
/* Edits and recalls newer than `since` (patch_ts) in `client`'s conversations, oldest first. */
int store_patches_since(store_reader_t *r, const char *client, int64_t since, int max,
                        void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg);
/* Role assignments of a conversation (managers; the owner is the creator). */
int store_member_infos(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg);
/* Members (subscribers) of conv in client order after `after` (NULL: from the start), with
 * when each joined. */
int store_members_page(store_reader_t *r, int64_t conv, const char *after, int limit,
                       void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg);
/* The conversations of one kind `client` is a member of, in cid order after `after`. */
int store_client_convs(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                       void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg);
/* Conversations `client` has blocked, in cid order after `after` (NULL: from the start). */
int store_client_blocks(store_reader_t *r, const char *client, const char *after, int limit,
                        void (*cb)(void *arg, const char *cid), void *arg);
int store_client_blocked(store_reader_t *r, const char *client, const char *cid); /* 1, 0 or <0 */
/* One page of a conversation's shut-up (SET_SHUTUP) or blocked (SET_BLOCK) clients in client
 * order after `after` (NULL: from the start), with when each was added; permanent_only
 * leaves out temporary shut-ups. */
int store_conv_set_page(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                        void (*cb)(void *arg, const char *client, int64_t at), void *arg);
/* When client's entry in one of conv's sets lifts (*expire_at 0: never); TERN_ENOENT if it
 * has none. */
int store_conv_set_expiry(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at);
/* Temporary shut-ups whose time has come (expire_at <= now), at most max. */
int store_shutups_expired(store_reader_t *r, int64_t now, int max,
                          void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg);

/* The key of an imported message (ids that are not tern's: msg_ext), 0 or TERN_ENOENT. */
int store_msg_ext_get(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq);
/* Imported messages named mid in any conversation (app-wide history bounds): the first. */
int store_msg_ext_find(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq);
/* A resend (docs/protocol-map.md, "dt"): the message of conv that `sender` stored with
 * dedupe token hash dt (not 0) at or after since_ts, looked for among the conversation's newest
 * STORE_DT_SCAN messages of that range only (a range of the primary key, no index of its
 * own: nothing is added to an insert). 0 with its id (malloc'd) and timestamp,
 * TERN_ENOENT, or TERN_ESTORE. With TERN_ENOENT, *newest_ts (when not NULL): the newest
 * timestamp among conv's messages the lookup saw (0: none). A conversation's history is in
 * commit order (one writer's FIFO; the order lock across nodes), so every message of conv
 * committed after the lookup is stored at or after it: a writer's second look (dt_since)
 * need only read from there. */
#define STORE_DT_SCAN 1000
int store_msg_by_dt(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                    int64_t *ts, int64_t *newest_ts);
/* Installations that match every condition of q: how many, and a page in q's order
 * (then objectId). */
int store_installation_count(store_reader_t *r, const store_class_q_t *q, int64_t *n);
int store_installation_query(store_reader_t *r, const store_class_q_t *q,
                             void (*cb)(void *arg, const installation_row_t *row), void *arg);

/* A position in the app-wide message order (ts, seq, mid); mid NULL: the time ts itself. */
typedef struct {
  int has, incl;
  int64_t ts, seq;
  const char *mid;
} msg_bound_t;

/* History across every conversation (REST GET /1.2/rtm/messages, …/clients/:id/messages). */
typedef struct {
  int newer; /* 0: newest first from hi down; 1: oldest first from lo up */
  msg_bound_t lo, hi;
  int limit;
  const char *sender; /* only the messages this client sent; NULL: all */
} app_logs_req_t;

/* Runs an app-wide history page. There is no index across conversations (it would tax
 * every insert for an admin read), so this scans the message table: call it off the network
 * loop, on a reader of its own. */
int store_app_logs(store_reader_t *r, const app_logs_req_t *q,
                   void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);

/* Devices a client keeps from `report upload` and login deviceTokens: storing one more
 * drops its least recently reported beyond this, so a client cannot grow its rows (or the
 * pushes it is sent) without end. _Installation devices are bound by the app, not counted. */
#define STORE_MAX_REPORTED_DEVICES 32

/* The devices `client` receives offline pushes on (protocol.md §10), the most recently
 * reported first, at most `max`. */
int store_devices(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
                  void *arg);
/* An installation by objectId (id not NULL), else by (device_type, token). */
int store_installation_get(store_reader_t *r, const char *id, const char *device_type, const char *token,
                           installation_row_t *out);
/* Session-token revocations (revoke.h): *before gets the time up to which client's tokens
 * are revoked (0: none), *lineage_revoked whether the 8-byte lineage is. One indexed read. */
int store_token_revoked(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                        int *lineage_revoked);

/* ---- the backend's table ----
 * Every function above except store_open runs the backend's entry of the same name, with
 * the same contract. A backend defines its own `struct store` and `struct store_reader`,
 * each beginning with `const store_ops_t *ops` (store.c finds the table there: a pointer to
 * a struct is a pointer to its first member), and sets it in open and reader_new.
 *
 * What every backend guarantees (tests/store/ checks each of them on each backend):
 *   - a job's completion (task.fn on `worker`, through opt->post) runs only after the
 *     transaction holding the job committed; completions of one worker's jobs run in the
 *     order that worker submitted them — except that attribute updates (JOB_CONV_UPDATE)
 *     may commit in rounds of their own, later than the jobs beside them, and keep that
 *     order only among themselves (nothing else reads or writes the document); a commit
 *     that fails fails every job of it (result TERN_ESTORE) and keeps none of them; a job
 *     that fails alone (a key taken) fails alone;
 *   - after a crash (SIGKILL) and open, every job whose completion ran is there, and no job
 *     is there in part;
 *   - a reader sees every job whose completion has run. */
struct store_ops {
  const char *name; /* "sqlite" */
  int (*open)(const store_options_t *opt, store_t **out);
  void (*close)(store_t *s);
  void (*submit)(store_t *s, store_job_t *j);
  void (*fail_writes)(store_t *s, int on);
  int (*backup)(store_t *s, const char *dest, int64_t *bytes);
  void (*metrics)(store_t *s, buf_t *out);
  int (*query_submit)(store_t *s, store_query_t *q);
  /* NULL: store_read_submit runs the read at once on the caller's reader (store.c) */
  int (*read_submit)(store_t *s, store_read_t *rd);
  store_reader_t *(*reader_new)(store_t *s);
  void (*reader_free)(store_reader_t *r);
  int (*conv_load)(store_reader_t *r, const char *cid, conv_row_t *out);
  int (*conv_doc)(store_reader_t *r, int64_t conv, char **doc);
  int (*conv_find_unique)(store_reader_t *r, const char *unique_id, char **cid, int64_t *created_at);
  int (*conv_query_check)(store_t *s, const store_conv_q_t *q, char *err, size_t errlen);
  /* store_conv_query with a budget (deadline 0: none), also what the backend's query threads
   * run: past deadline_ns (mono_ns()) it stops the query and returns TERN_ETIMEDOUT; a
   * regular expression that hits its match, depth or heap limit gives TERN_E2BIG;
   * TERN_EINVAL when q does not check. */
  int (*conv_query_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, conv_view_cb cb, void *arg);
  int (*conv_count)(store_reader_t *r, const store_conv_q_t *q, int64_t *n);
  int (*conv_fetch)(store_reader_t *r, const char *const *cids, size_t n, int flags, conv_view_cb cb, void *arg);
  int (*logs)(store_reader_t *r, const logs_req_t *q, msg_cb cb, void *arg);
  int (*msg_get)(store_reader_t *r, int64_t conv, int64_t ts, int64_t seq, msg_cb cb, void *arg);
  int (*msg_receipts)(store_reader_t *r, int64_t conv, const char *client, int64_t from_ts, int64_t from_seq,
                      int64_t to_ts, int64_t to_seq, msg_cb cb, void *arg);
  int (*unread)(store_reader_t *r, const char *client, int64_t since, int max, unread_cb cb, void *arg);
  int (*offline)(store_reader_t *r, const char *client, int max,
                 void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);
  int (*progress)(store_reader_t *r, int64_t conv, progress_cb cb, void *arg);
  int (*notifications)(store_reader_t *r, const char *client, int64_t after, int limit, int *has_more,
                       void (*cb)(void *arg, int64_t ts, const char *body), void *arg);
  int (*expired)(store_reader_t *r, int64_t now, int64_t idle_before, int max,
                 void (*cb)(void *arg, int64_t id, const char *cid, int kind), void *arg);
  int (*patches_since)(store_reader_t *r, const char *client, int64_t since, int max,
                       void (*cb)(void *arg, const char *cid, const msg_view_t *m), void *arg);
  int (*member_infos)(store_reader_t *r, int64_t conv, void (*cb)(void *arg, const member_info_t *mi), void *arg);
  int (*members_page)(store_reader_t *r, int64_t conv, const char *after, int limit,
                      void (*cb)(void *arg, const char *client, int64_t joined_at), void *arg);
  int (*client_convs)(store_reader_t *r, const char *client, int kind, const char *after, int limit,
                      void (*cb)(void *arg, const char *cid, int64_t joined_at), void *arg);
  int (*client_blocks)(store_reader_t *r, const char *client, const char *after, int limit,
                       void (*cb)(void *arg, const char *cid), void *arg);
  int (*client_blocked)(store_reader_t *r, const char *client, const char *cid);
  int (*conv_set_page)(store_reader_t *r, int64_t conv, int set, int permanent_only, const char *after, int limit,
                       void (*cb)(void *arg, const char *client, int64_t at), void *arg);
  int (*conv_set_expiry)(store_reader_t *r, int64_t conv, int set, const char *client, int64_t *expire_at);
  int (*shutups_expired)(store_reader_t *r, int64_t now, int max,
                         void (*cb)(void *arg, int64_t conv, const char *cid, const char *client), void *arg);
  int (*msg_ext_get)(store_reader_t *r, int64_t conv, const char *mid, int64_t *ts, int64_t *seq);
  int (*msg_ext_find)(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq);
  int (*msg_by_dt)(store_reader_t *r, int64_t conv, const char *sender, int64_t dt, int64_t since_ts, char **mid,
                   int64_t *ts, int64_t *newest_ts);
  int (*installation_count)(store_reader_t *r, const store_class_q_t *q, int64_t *n);
  int (*installation_query)(store_reader_t *r, const store_class_q_t *q,
                            void (*cb)(void *arg, const installation_row_t *row), void *arg);
  int (*app_logs)(store_reader_t *r, const app_logs_req_t *q,
                  void (*cb)(void *arg, const char *cid, int kind, const msg_view_t *m), void *arg);
  int (*devices)(store_reader_t *r, const char *client, int max, void (*cb)(void *arg, const device_view_t *d),
                 void *arg);
  int (*installation_get)(store_reader_t *r, const char *id, const char *device_type, const char *token,
                          installation_row_t *out);
  int (*token_revoked)(store_reader_t *r, const char *client, const uint8_t lineage[8], int64_t *before,
                       int *lineage_revoked);
};

#endif
