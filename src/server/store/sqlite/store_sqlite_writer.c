/* store_sqlite_writer.c — the SQLite backend's write side: the writer thread's group
 * commit (one transaction per batch of jobs, a savepoint per multi-statement job), the
 * lagging lm notes, and the checkpointer thread that keeps the WAL bounded. */
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
#include "writer.h"

#define BATCH_MAX 4096
#define KEY_MAX INT64_MAX

int sq_step_done(sqlite3_stmt *st) {
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
  int rc = sq_step_done(st);
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
    sq_member_note(s, r->members[i]);
    sqlite3_stmt *m = s->ins_member;
    sqlite3_bind_int64(m, 1, r->id);
    sqlite3_bind_text(m, 2, r->members[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(m, 3, r->created_at);
    sqlite3_bind_int64(m, 4, 0);
    sqlite3_bind_int64(m, 5, 0);
    if ((rc = sq_step_done(m))) return rc;
  }
  return 0;
}

/* A possible resend (store.h: dt_since): is an equal message stored already — committed, or
 * earlier in this transaction? The one writer runs jobs in submission order, so a first
 * copy submitted before the resend was checked is found here, however long its commit took.
 * TERN_EEXIST (j->dup_mid, j->dup_ts set), 0, or an SQLite error (positive: never taken
 * for a match — SQLITE_ERROR is 1). */
static int msg_dup(store_t *s, job_msg_insert_t *j) {
  sqlite3_stmt *st = s->w_msg_by_dt;
  sqlite3_bind_int64(st, 1, j->conv);
  sqlite3_bind_int64(st, 2, j->dt_since);
  sqlite3_bind_text(st, 3, j->sender, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, j->dt);
  sqlite3_bind_int(st, 5, STORE_DT_SCAN);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    free(j->dup_mid);
    j->dup_mid = xstrdup((const char *)sqlite3_column_text(st, 0));
    j->dup_ts = sqlite3_column_int64(st, 1);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_ROW ? TERN_EEXIST : rc == SQLITE_DONE ? 0 : rc;
}

static int run_msg_insert(store_t *s, job_msg_insert_t *j) {
  store_msg_gone_settle(j); /* the one FIFO writer: every job submitted before it has run */
  if (j->dt_since && j->dt) {
    int dup = msg_dup(s, j);
    if (dup) return dup;
  }
  sqlite3_stmt *st;
  int rc = sq_hot_insert(s, j->conv, j->ts, j->seq, &st);
  if (rc) return rc;
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
  rc = sq_hot_insert_done(s, sq_step_done(st));
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

int64_t sq_mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

conv_slot_t *sq_conv_slot(conv_tab_t *t, int64_t conv) {
  if ((t->n + 1) * 2 > t->cap) { /* keep it at most half full: rehash into twice the room */
    conv_tab_t g = {xcalloc(t->cap ? t->cap * 2 : 64, sizeof(conv_slot_t)), t->cap ? t->cap * 2 : 64, 0};
    for (size_t i = 0; i < t->cap; i++)
      if (t->v[i].conv) sq_conv_slot(&g, t->v[i].conv)->v = t->v[i].v;
    free(t->v);
    *t = g;
  }
  size_t i = sq_conv_hash(conv, t->cap);
  while (t->v[i].conv && t->v[i].conv != conv) i = (i + 1) & (t->cap - 1);
  if (!t->v[i].conv) {
    t->v[i].conv = conv;
    t->n++;
  }
  return &t->v[i];
}

const conv_slot_t *sq_conv_find(const conv_tab_t *t, int64_t conv) {
  if (!t->cap) return NULL;
  size_t i = sq_conv_hash(conv, t->cap);
  while (t->v[i].conv && t->v[i].conv != conv) i = (i + 1) & (t->cap - 1);
  return t->v[i].conv ? &t->v[i] : NULL;
}

static void lm_note(conv_tab_t *t, int64_t conv, int64_t ts) {
  conv_slot_t *e = sq_conv_slot(t, conv);
  if (ts > e->v) e->v = ts;
}

static void lm_clear(conv_tab_t *t) {
  if (t->n) memset(t->v, 0, t->cap * sizeof *t->v);
  t->n = 0;
}

static int lm_flush(store_t *s, const conv_tab_t *t) {
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->v[i].conv) continue;
    sqlite3_bind_int64(s->upd_lm, 1, t->v[i].v);
    sqlite3_bind_int64(s->upd_lm, 2, t->v[i].conv);
    int rc = sq_step_done(s->upd_lm);
    if (rc) return rc;
  }
  return 0;
}

/* At shutdown: the pending notes. */
void sq_lm_final(store_t *s) {
  if (!s->lm.n || sq_exec(s->wdb, "BEGIN IMMEDIATE") < 0) return;
  if (lm_flush(s, &s->lm) != 0 || sq_exec(s->wdb, "COMMIT") < 0) {
    sq_exec(s->wdb, "ROLLBACK");
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
  return sq_step_done(st);
}

static int run_members(store_t *s, job_members_t *j, int add) {
  int rc;
  for (size_t i = 0; i < j->n; i++) {
    if (!add) { /* a member who leaves loses its role */
      sqlite3_bind_int64(s->del_role, 1, j->conv);
      sqlite3_bind_text(s->del_role, 2, j->clients[i], -1, SQLITE_STATIC);
      if ((rc = sq_step_done(s->del_role))) return rc;
    }
    if (add) sq_member_note(s, j->clients[i]);
    sqlite3_stmt *st = add ? s->ins_member : s->del_member;
    sqlite3_bind_int64(st, 1, j->conv);
    sqlite3_bind_text(st, 2, j->clients[i], -1, SQLITE_STATIC);
    if (add) {
      sqlite3_bind_int64(st, 3, j->updated_at);
      sqlite3_bind_int64(st, 4, j->seen_ts);
      sqlite3_bind_int64(st, 5, j->seen_seq);
    }
    if ((rc = sq_step_done(st))) return rc;
  }
  sqlite3_bind_int64(s->count_members, 1, j->updated_at);
  sqlite3_bind_int64(s->count_members, 2, j->conv);
  return sq_step_done(s->count_members);
}

static int run_conv_delete(store_t *s, job_members_t *j) {
  sqlite3_stmt *sts[7] = {s->del_conv_msgs[0], s->del_conv_msgs[1], s->del_conv_msgs[2], s->del_conv_members,
                          s->del_conv_sets,    s->del_conv_roles,   s->del_conv};
  for (int i = 0; i < 7; i++) {
    sqlite3_bind_int64(sts[i], 1, j->conv);
    int rc = sq_step_done(sts[i]);
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
    rc = sq_step_done(s->upd_time);
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
      if ((rc = sq_step_done(st))) return rc;
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
    if ((rc = sq_step_done(st))) return rc;
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
    int rc = sq_step_done(st);
    if (rc) return rc;
  }
  return 0;
}

/* A message's update or delete runs on msg and both hot tables (store_sqlite_hot.c): found
 * in one of them at least, or SQLITE_NOTFOUND. */
static int run_msg_delete(store_t *s, job_msg_patch_t *j) {
  int changed = 0;
  for (int i = 0; i < 3; i++) {
    sqlite3_stmt *st = s->del_msg[i];
    sqlite3_bind_int64(st, 1, j->conv);
    sqlite3_bind_int64(st, 2, j->ts);
    sqlite3_bind_int64(st, 3, j->seq);
    int rc = sq_step_done(st);
    if (rc) return rc;
    changed += sqlite3_changes(s->wdb);
  }
  return changed ? 0 : SQLITE_NOTFOUND;
}

static int run_msg_patch(store_t *s, job_msg_patch_t *j) {
  int changed = 0;
  for (int i = 0; i < 3; i++) {
    sqlite3_stmt *st = s->upd_msg[i];
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
    int rc = sq_step_done(st);
    sqlite3_clear_bindings(st);
    if (rc) return rc;
    changed += sqlite3_changes(s->wdb);
  }
  return changed ? 0 : SQLITE_NOTFOUND;
}

static int run_notif(store_t *s, job_notif_t *j) {
  for (size_t i = 0; i < j->n; i++) {
    sqlite3_stmt *st = s->ins_notif;
    sqlite3_bind_text(st, 1, j->clients[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, j->ts);
    sqlite3_bind_int64(st, 3, atomic_fetch_add(&s->notif_seq, 1));
    sqlite3_bind_text(st, 4, j->body, -1, SQLITE_STATIC);
    int rc = sq_step_done(st);
    if (rc) return rc;
  }
  return 0;
}

static int run_prune(store_t *s, job_prune_t *j) {
  sqlite3_bind_int64(s->prune_notif, 1, j->notif_before);
  return sq_step_done(s->prune_notif);
}

static int run_device(store_t *s, job_device_t *j) {
  int rc;
  if (j->op == DEVICE_PUT) {
    sqlite3_stmt *st = s->ins_device;
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, j->at);
    if ((rc = sq_step_done(st))) return rc;
    st = s->move_device; /* a device reports one client at a time: the last login wins */
    sqlite3_bind_text(st, 1, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->client, -1, SQLITE_STATIC);
    if ((rc = sq_step_done(st))) return rc;
    st = s->trim_devices;
    sqlite3_bind_text(st, 1, j->client, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, STORE_MAX_REPORTED_DEVICES);
    return sq_step_done(st);
  }
  sqlite3_stmt *st = j->op == DEVICE_DROP ? s->del_device_token : j->add ? s->add_badge : s->set_badge;
  sqlite3_bind_text(st, 1, j->token, -1, SQLITE_STATIC);
  if (j->op == DEVICE_BADGE) sqlite3_bind_int64(st, 2, j->badge);
  return sq_step_done(st);
}

static int run_installation(store_t *s, job_installation_t *j) {
  int rc;
  sqlite3_bind_text(s->del_inst_devices, 1, j->id, -1, SQLITE_STATIC);
  if ((rc = sq_step_done(s->del_inst_devices))) return rc;
  if (j->remove) {
    sqlite3_bind_text(s->del_inst, 1, j->id, -1, SQLITE_STATIC);
    return sq_step_done(s->del_inst);
  }
  sqlite3_stmt *st = s->ins_inst;
  sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, j->device_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, j->token, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, j->body ? j->body : "{}", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, j->created_at);
  sqlite3_bind_int64(st, 6, j->updated_at);
  if ((rc = sq_step_done(st))) return rc;
  for (size_t i = 0; i < j->n; i++) {
    st = s->ins_inst_device;
    sqlite3_bind_text(st, 1, j->channels[i], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->device_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, j->updated_at);
    if ((rc = sq_step_done(st))) return rc;
  }
  if (!j->has_badge) return 0;
  sqlite3_bind_text(s->set_badge, 1, j->token, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->set_badge, 2, j->badge);
  return sq_step_done(s->set_badge);
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
  if ((rc = sq_step_done(st))) return rc;
  sqlite3_bind_int64(s->prune_revoked, 1, j->at);
  if ((rc = sq_step_done(s->prune_revoked))) return rc;
  sqlite3_bind_int64(s->prune_client_revoked, 1, j->at);
  return sq_step_done(s->prune_client_revoked);
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
  conv_tab_t lm = {0}; /* this batch's; joins s->lm once committed */
  int64_t now = sq_mono_us();
  int flush_lm = now - s->lm_flushed_us >= LM_FLUSH_US;
  int txn_ok = sq_exec(s->wdb, "BEGIN IMMEDIATE") == 0;
  uint64_t njobs = 0;
  for (store_job_t *j = batch; j; j = j->next) njobs++;
  metric_observe_count(M_COMMIT_BATCH, njobs);
  if (txn_ok && sq_hot_batch(s, batch) != 0) txn_ok = 0;
  for (store_job_t *j = batch; j; j = j->next) {
    if (!txn_ok) {
      j->result = TERN_ESTORE;
      continue;
    }
    int sp = multi_statement(j->type);
    if (sp) sq_exec(s->wdb, "SAVEPOINT job");
    int rc = run_job(s, j);
    if (!rc && j->type == JOB_IMPORT)
      for (size_t k = 0; k < ((job_import_t *)j)->ntouched; k++) sq_hot_forget(s, ((job_import_t *)j)->touched[k].conv);
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
    if (sp) sq_exec(s->wdb, rc && rc != TERN_EEXIST ? "ROLLBACK TO job; RELEASE job" : "RELEASE job");
  }
  int committed = 0;
  if (txn_ok) {
    if ((flush_lm && (lm_flush(s, &s->lm) != 0 || lm_flush(s, &lm) != 0)) || sq_hot_step(s, now) != 0 ||
        atomic_load(&s->fail_writes) || sq_exec(s->wdb, "COMMIT") < 0) {
      sq_exec(s->wdb, "ROLLBACK");
      for (store_job_t *j = batch; j; j = j->next) j->result = TERN_ESTORE;
    } else {
      committed = 1;
      if (flush_lm) {
        lm_clear(&s->lm);
        s->lm_flushed_us = now;
      } else {
        for (size_t i = 0; i < lm.cap; i++)
          if (lm.v[i].conv) lm_note(&s->lm, lm.v[i].conv, lm.v[i].v);
      }
    }
  }
  sq_hot_done(s, committed);
  free(lm.v);
  int64_t took = sq_mono_us() - now;
  metric_observe_us(M_COMMIT, (uint64_t)took);
  metric_add(M_STAGE_COMMIT, took * 1000);
  store_post_done(batch, s->post, s->post_arg);
}

/* Attribute updates commit after the rest of their batch, at most one round of them per
 * STORE_DOCS_INTERVAL_US (store/writer.h says why). */

static void run_batch_split(store_t *s, store_job_t *batch, int force_docs) {
  store_job_t *rest = store_split_docs(batch, &s->docs_waiting);
  if (rest) run_batch(s, rest);
  if (s->docs_waiting && (force_docs || sq_mono_us() - s->docs_last_us >= STORE_DOCS_INTERVAL_US)) {
    store_job_t *docs = s->docs_waiting;
    s->docs_waiting = NULL;
    run_batch(s, docs);
    s->docs_last_us = sq_mono_us();
  }
}

/* Group commit. Work that finds the writer idle is committed at once; while work keeps
 * coming, commits are at least interval_us apart, so each carries many jobs. A commit
 * writes whole pages (the message table's last leaf, the conversation row, …) however
 * few rows changed: one commit per message at 25,000/s wrote ~300 MB/s of WAL and spent
 * ~50 µs of CPU per message, where a batch of 25 costs a few µs each. The wait bounds
 * what it adds to latency; a full batch never waits. */
void *sq_writer_main(void *arg) {
  store_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    /* asleep until there is work, or the round of held attribute updates is due */
    int docs_due = 0, lingered = 0;
    while (!s->head && !s->closing && !docs_due) {
      int64_t due = s->last_commit_us + s->interval_us;
      if (!lingered && s->last_commit_us && sq_mono_us() < due) {
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
        int64_t at = s->docs_last_us + STORE_DOCS_INTERVAL_US;
        struct timespec ts = {(time_t)(at / 1000000), (long)(at % 1000000) * 1000};
        docs_due = sq_mono_us() >= at || pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT;
        metric_inc(M_WRITER_WAKEUPS);
      }
      s->writer_asleep = 0;
    }
    if (!s->head && !s->docs_waiting) break; /* closing, and everything is committed */
    int64_t due = s->last_commit_us + s->interval_us;
    while (s->head && !s->closing && s->queued < BATCH_MAX && sq_mono_us() < due) {
      struct timespec ts = {(time_t)(due / 1000000), (long)(due % 1000000) * 1000};
      pthread_cond_timedwait(&s->cv, &s->mu, &ts); /* woken early only by a full batch or close */
      metric_inc(M_WRITER_WAKEUPS);
    }
    if (s->ckpt_hold && !s->closing) {
      int64_t h0 = sq_mono_us();
      while (s->ckpt_hold && !s->closing) { /* ~1 ms: see sq_checkpointer_main */
        pthread_cond_wait(&s->cv, &s->mu);
        metric_inc(M_WRITER_WAKEUPS);
      }
      metric_observe_us(M_CHECKPOINT_HOLD, (uint64_t)(sq_mono_us() - h0));
    }
    store_job_t *batch = s->head, *last = NULL;
    size_t n = 0;
    for (store_job_t *j = batch; j && n < BATCH_MAX; j = j->next, n++) last = j;
    if (last) {
      s->head = last->next;
      if (!s->head) s->tail = NULL;
      last->next = NULL;
      s->queued -= n;
      s->last_commit_us = sq_mono_us();
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
 * database. A page a busy conversation rewrites on every commit is copied once per round,
 * so rounds are worth spacing out: one per CKPT_FRAMES new frames. The WAL only starts over
 * (and stops growing) when a writer begins a transaction after a round that copied every
 * frame, which a round racing a writer that commits every few hundred µs seldom manages:
 * this thread used to run ~470 tiny rounds a second chasing the last commit, and at 50,000
 * messages/s lost the race for good (the WAL passed 1 GB in 10 s). So it catches up beside
 * the writer, then runs a last round while the writer waits, and the next transaction
 * restarts the WAL: one hold per CKPT_FRAMES, and the WAL stays near 64 MiB (the file keeps
 * its largest size, journal_size_limit trims it back at a restart).
 *
 * What the held round costs is what the p99 of paced traffic pays (every ack waits it
 * out). SQLite syncs the WAL at the start of every round but the database only at the end
 * of a round that copied every frame — beside a busy writer, only the held one, which
 * therefore flushed every page all the rounds before it had copied: 10–20 ms on this
 * project's disk. So each catch-up step first syncs the database and the WAL itself (what
 * the rounds copied, what the writer appended), then copies what came meanwhile; the
 * steps shrink until one is shorter than CKPT_SHORT_US or copied at most CKPT_FEW frames,
 * and the held round is left a few milliseconds of pages to copy and flush (~2 ms held
 * instead of 12–20 at 10,000 messages/s: bench/README.md, "The held round's flush").
 *
 * At 25,000 messages/s the transaction after a PASSIVE held round did not restart the WAL
 * about once in five holds (SQLite restarts it only if no connection holds a read mark on
 * the WAL's frames then). The WAL went on to ~2 × CKPT_FRAMES, the steps, bounded by the
 * WAL's size, were skipped, and the held round flushed a whole first round's ~8,000 copied
 * pages: 8–21 ms held (bench/README.md, "Short holds at 25,000–50,000/s"). So:
 *   - the held round is a RESTART checkpoint: it takes the WAL's write lock and waits,
 *     briefly (CKPT_READER_WAITS: a long reader is not waited out), until no reader is on
 *     the WAL's frames. No restart was missed after one in any run measured, though the
 *     traced run never needed the wait: which lock the PASSIVE round lost to is not known;
 *   - the steps are bounded by the frames written while they run (CKPT_FRAMES_MAX), not by
 *     the WAL's size nor by a count of steps: a missed restart or a slow disk costs WAL,
 *     not a long hold; CKPT_WAL_MAX bounds the WAL if restarts keep being missed;
 *   - no hold while a reader keeps the rounds from copying what they see (below).
 * tern_store_checkpoint_hold_frames counts what each held round left to flush,
 * tern_store_wal_restarts_total the restarts (tests/store/test_store_commit.c). */
#define CKPT_FRAMES 8192                  /* ~32 MiB of WAL */
#define CKPT_SHORT_US 4000                /* a catch-up step this short leaves little for the held round */
#define CKPT_FEW 256                      /* and so does one that copied this few frames */
#define CKPT_FRAMES_MAX (2 * CKPT_FRAMES) /* hold once ~64 MiB came during a catch-up: a writer faster than the disk */
#define CKPT_WAL_MAX (4 * CKPT_FRAMES)    /* hold past ~128 MiB of WAL, however little came since */
#define CKPT_READER_WAITS 20              /* the held round waits ~20 × 100 µs for readers */

/* Called by SQLite on the writer thread after each commit with the WAL's size. */
int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames) {
  store_t *s = arg;
  /* the WAL's size in frames: what grew since the last commit (or, after a restart, all of
   * it) is this commit's pages */
  metric_add(M_WAL_FRAMES, (int64_t)(frames > s->wal_frames ? frames - s->wal_frames : frames));
  if (frames < s->wal_frames) { /* the WAL started over */
    metric_inc(M_WAL_RESTARTS);
    atomic_fetch_add(&s->wal_restarts, 1);
  }
  s->wal_frames = frames;
  int done = atomic_load(&s->ckpt_done);
  if (frames - (frames < done ? 0 : done) >= CKPT_FRAMES) { /* frames < done: the WAL restarted */
    pthread_mutex_lock(&s->mu);
    s->ckpt_wanted = 1;
    pthread_cond_signal(&s->ckpt_cv);
    pthread_mutex_unlock(&s->mu);
  }
  return SQLITE_OK;
}

/* fdatasync of the checkpointer connection's database file (SQLITE_FCNTL_FILE_POINTER) or
 * WAL (SQLITE_FCNTL_JOURNAL_POINTER) through SQLite's own handle; nothing if not open. An
 * extra sync never changes what a crash leaves, only when the flushing is paid. */
static void ckpt_sync(store_t *s, int which) {
  sqlite3_file *f = NULL;
  int64_t t0 = sq_mono_us();
  if (sqlite3_file_control(s->cdb, "main", which, &f) == SQLITE_OK && f && f->pMethods)
    f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
  metric_add(M_STAGE_CHECKPOINT, (sq_mono_us() - t0) * 1000);
}

/* The held round's busy handler: SQLite calls it while a reader is still on the WAL. */
static int ckpt_reader_wait(void *arg, int n) {
  (void)arg;
  if (n >= CKPT_READER_WAITS) return 0; /* give up: this restart is missed, the next cycle copes */
  struct timespec ts = {0, 100000};
  nanosleep(&ts, NULL);
  return 1;
}

/* One round (PASSIVE: copies what it can without blocking the writer or the readers;
 * RESTART: the held round, which also waits for the readers). *log: the WAL's frames
 * (unchanged if the round failed); *copied: the frames this round copied. 0 if the round
 * failed. */
static int ckpt_round(store_t *s, int mode, int *log, int *copied) {
  int64_t t0 = sq_mono_us();
  int before = atomic_load(&s->ckpt_done), n = -1, done = -1;
  int rc = sqlite3_wal_checkpoint_v2(s->cdb, NULL, mode, &n, &done);
  *copied = 0;
  /* BUSY and both figures: a reader outwaited RESTART, the copy is done; BUSY and -1: the
   * round could not start (SQLite's WAL index was changing under a commit) */
  int ok = (rc == SQLITE_OK || rc == SQLITE_BUSY) && n >= 0 && done >= 0;
  if (ok) {
    atomic_store(&s->ckpt_done, done);
    *copied = done - (done >= before ? before : 0); /* done < before: the WAL started over */
    *log = n;
  }
  int64_t took = sq_mono_us() - t0;
  if (n > 0) {                                       /* a round with frames to copy */
    metric_observe_us(M_CHECKPOINT, (uint64_t)took); /* first: a scrape never sees more rounds than timings */
    metric_inc(M_CHECKPOINTS);
  }
  metric_add(M_STAGE_CHECKPOINT, took * 1000);
  return ok;
}

void *sq_checkpointer_main(void *arg) {
  store_t *s = arg;
  int restarts = atomic_load(&s->wal_restarts);
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
    int log = 0, copied = 0, base = atomic_load(&s->ckpt_done);
    ckpt_round(s, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    int now = atomic_load(&s->wal_restarts);
    if (now != restarts || log < base) base = 0; /* the frames before this cycle: none if the WAL started over */
    restarts = now;
    /* the frames copied since this thread last synced the database (SQLite syncs it only
     * after a round that found nothing more to copy: beside a busy writer, the held one) */
    int unsynced = copied;
    int hold = log - base >= CKPT_FRAMES || log >= CKPT_WAL_MAX;
    /* the catch-up's bound counts what the writer appends while it runs, not since `base`:
     * after a reader pinned the rounds, `base` is where they stopped, and a bound tripped by
     * that backlog ended the catch-up after one slow step, leaving its frames to the hold */
    int start = log;
    for (int failed = 0; hold;) {
      int64_t t0 = sq_mono_us();
      ckpt_sync(s, SQLITE_FCNTL_FILE_POINTER);
      ckpt_sync(s, SQLITE_FCNTL_JOURNAL_POINTER);
      int ok = ckpt_round(s, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      unsynced = copied;
      if (!ok && ++failed < 3) continue; /* a round that raced a commit copied nothing: not few left */
      if (sq_mono_us() - t0 < CKPT_SHORT_US || copied <= CKPT_FEW || log - start >= CKPT_FRAMES_MAX ||
          log >= CKPT_WAL_MAX)
        break;
    }
    /* A reader on an old snapshot (a backup, a long read) kept the last step from copying
     * what it saw: the held round would copy all that while the writer waits once the
     * reader let go, and could not restart the WAL before. So no hold until it is done. */
    if (hold && log - atomic_load(&s->ckpt_done) > CKPT_FEW) hold = 0;
    pthread_mutex_lock(&s->mu);
    if (!hold || s->ckpt_stop) continue;
    s->ckpt_hold = 1;
    while (s->writer_busy && !s->ckpt_stop) pthread_cond_wait(&s->ckpt_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    /* the next transaction restarts the WAL, unless a reader outwaited this round */
    sqlite3_busy_handler(s->cdb, ckpt_reader_wait, NULL);
    ckpt_round(s, SQLITE_CHECKPOINT_RESTART, &log, &copied);
    sqlite3_busy_handler(s->cdb, NULL, NULL);
    metric_observe_count(M_CHECKPOINT_HOLD_FRAMES, (uint64_t)(unsynced + copied));
    pthread_mutex_lock(&s->mu);
    s->ckpt_hold = 0;
    s->ckpt_wanted = 0;
    pthread_cond_signal(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

void sq_submit(store_t *s, store_job_t *j) {
  j->next = NULL;
  if (s->inline_writes) {
    run_batch(s, j);
    return;
  }
  pthread_mutex_lock(&s->mu);
  if (s->tail) s->tail->next = j;
  else s->head = j, s->head_since_us = sq_mono_us();
  s->tail = j;
  /* a writer waiting out the commit interval needs no wake-up per job, only a full batch */
  if (++s->queued == BATCH_MAX || s->writer_asleep) pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}
