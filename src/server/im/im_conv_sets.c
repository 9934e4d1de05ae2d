/* im_conv_sets.c — who may do what in a conversation: roles (§3.15), shut-up members
 * (§3.16) and blacklists (§3.17).
 *
 * All three are sets of client ids per conversation, cached in the conversation as sorted
 * snapshots (checked on every send and join) and changed by one mechanism: the new
 * snapshot is swapped in under the conversation's lock, the change is queued for storage,
 * and the reply and notifications follow the commit. The REST API (rest_rtm.c) drives the
 * same steps as the app's back end through the *_apply functions. A shut-up may be
 * temporary: stored with its end and lifted by worker 0's 1-second tick, so the check on
 * every send stays one look in the snapshot. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#define SET_MAX 500 /* shut-up list and blacklist, per conversation (4561, 4543) */

typedef struct {
  int set, add;
  int cmd, reply_op;       /* the reply */
  int target_op, group_op; /* pushes: to each target, to the members */
  int full_code;           /* when the set would pass SET_MAX */
} set_spec_t;

static const set_spec_t shutup_add = {SET_SHUTUP,
                                      1,
                                      LC__COMMAND_TYPE__conv,
                                      LC__OP_TYPE__shutup_added,
                                      LC__OP_TYPE__shutuped,
                                      LC__OP_TYPE__members_shutuped,
                                      LC_SILIENCED_MEMBER_LIST_FULL};
static const set_spec_t shutup_remove = {SET_SHUTUP,
                                         0,
                                         LC__COMMAND_TYPE__conv,
                                         LC__OP_TYPE__shutup_removed,
                                         LC__OP_TYPE__unshutuped,
                                         LC__OP_TYPE__members_unshutuped,
                                         0};
static const set_spec_t block_add = {SET_BLOCK,
                                     1,
                                     LC__COMMAND_TYPE__blacklist,
                                     LC__OP_TYPE__blocked,
                                     LC__OP_TYPE__blocked,
                                     LC__OP_TYPE__members_blocked,
                                     LC_BLACKLIST_FULL};
static const set_spec_t block_remove = {SET_BLOCK,
                                        0,
                                        LC__COMMAND_TYPE__blacklist,
                                        LC__OP_TYPE__unblocked,
                                        LC__OP_TYPE__unblocked,
                                        LC__OP_TYPE__members_unblocked,
                                        0};

typedef struct {
  char **v;
  size_t n;
} strv_t;

static void strv_add(strv_t *s, const char *x) {
  s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
  s->v[s->n++] = xstrdup(x);
}

static void strv_free(strv_t *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

/* A new snapshot: old ± ids. */
static members_t *set_with(members_t *old, char **ids, size_t n, int add) {
  size_t cap = (old ? old->n : 0) + n + 1, k = 0;
  char **all = xmalloc(cap * sizeof(char *));
  for (size_t i = 0; old && i < old->n; i++) {
    int drop = 0;
    for (size_t j = 0; !add && j < n; j++) drop |= strcmp(old->ids[i], ids[j]) == 0;
    if (!drop) all[k++] = old->ids[i];
  }
  for (size_t j = 0; add && j < n; j++) all[k++] = ids[j];
  members_t *m = k ? members_new(all, k) : NULL;
  free(all);
  return m;
}

/* ---------------------------------------------------------------- replies */

static void reply_sets(im_worker_t *w, const reply_to_t *rt, const set_spec_t *sp, const char *cid, strv_t *allowed,
                       failed_pids_t *failed) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__BlacklistCommand bm = LC__BLACKLIST_COMMAND__INIT;
  PB_SET(out, cmd, sp->cmd);
  PB_SET(out, op, sp->reply_op);
  if (sp->cmd == LC__COMMAND_TYPE__blacklist) {
    out.blacklistmessage = &bm;
    bm.srccid = (char *)cid;
    bm.allowedpids = allowed->v;
    bm.n_allowedpids = allowed->n;
    bm.failedpids = failed->v;
    bm.n_failedpids = failed->n;
  } else {
    out.convmessage = &cm;
    cm.cid = (char *)cid;
    cm.allowedpids = allowed->v;
    cm.n_allowedpids = allowed->n;
    cm.failedpids = failed->v;
    cm.n_failedpids = failed->n;
  }
  reply_async(w, rt, &out);
}

/* ---------------------------------------------------------------- set changes */

typedef struct {
  job_set_t j; /* j.clients: every allowed id, written whether or not it changed (so a
                * permanent shut-up over a temporary one sticks, and a stale row goes) */
  im_t *im;
  const set_spec_t *sp;
  reply_to_t rt;
  im_done_t done;
  conv_t *conv;
  char *initby;
  strv_t allowed;
  strv_t changed; /* the ids whose membership in the set changed: the ones announced */
  strv_t left;    /* block: targets that were members and are out now */
  failed_pids_t failed;
} set_job_t;

static void set_job_free(set_job_t *sj) {
  for (size_t i = 0; i < sj->j.n; i++) free(sj->j.clients[i]);
  free(sj->j.clients);
  strv_free(&sj->allowed);
  strv_free(&sj->changed);
  strv_free(&sj->left);
  failed_pids_free(&sj->failed);
  free(sj->initby);
  reply_to_free(&sj->rt);
  conv_release(sj->conv);
  free(sj);
}

/* What the REST API hears: {"allowed": [ids], "failed": [{client_id, code, error}], "updated_at"} */
static void set_done_rest(im_worker_t *w, set_job_t *sj) {
  if (!sj->done.fn) return;
  json_t *res = pids_result_json(sj->allowed.v, sj->allowed.n, &sj->failed, sj->j.at);
  im_done(w, &sj->done, 0, res);
  json_decref(res);
}

/* A chat room has no member list, so blocking takes the blocked clients' sessions out of
 * the room itself: each in the room gets `left` (after `blocked`), as a member removed from
 * a conversation does (§3.12, §3.17) — the JS SDK emits KICKED for it. The rest of the room
 * hears nothing, as of any coming and going in a room. */
static void room_kick(im_worker_t *w, set_job_t *sj) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(out, op, LC__OP_TYPE__left);
  PB_SET(out, service, 2);
  PB_SET(out, serverts, now_ms());
  PB_SET(out, notificationtype, 1);
  out.convmessage = &cm;
  char iso[ISO_LEN + 1];
  iso_format(sj->j.at, iso);
  cm.cid = sj->conv->cid;
  cm.initby = sj->initby;
  cm.udate = iso;
  fanout_t *p = fanout_new(&out);
  im_room_kick(w, sj->conv, p, sj->changed.v, sj->changed.n);
  fanout_release(p);
}

static void set_done(task_t *t) {
  set_job_t *sj = (set_job_t *)t;
  im_worker_t *w = sj->im->workers[worker_current()];
  conv_t *c = sj->conv;
  conv_set_stored(c);
  if (sj->j.job.result < 0) {
    convcache_drop(sj->im, c);
    reply_error_async(w, &sj->rt, LC_CONVERSATION_INTERNAL_ERROR, "storage failed");
    im_done(w, &sj->done, LC_CONVERSATION_INTERNAL_ERROR, NULL);
    set_job_free(sj);
    return;
  }
  im_conv_changed(w, c->cid); /* other nodes reload it */
  reply_sets(w, &sj->rt, sj->sp, c->cid, &sj->allowed, &sj->failed);
  set_done_rest(w, sj);
  if (sj->changed.n) {
    const set_spec_t *sp = sj->sp;
    strv_t *ch = &sj->changed;
    conv_notify(w, c->cid, sp->target_op, sj->initby, NULL, 0, sj->j.at, ch->v, ch->n, 0);
    if (c->kind == CONV_ROOM && sp->set == SET_BLOCK && sp->add) room_kick(w, sj);
    /* a service conversation's subscribers are told nothing about each other (§3.12) */
    members_t *m = c->kind == CONV_SYSTEM ? NULL : conv_members(c);
    if (sj->left.n && c->kind != CONV_SYSTEM)
      conv_notify(w, c->cid, LC__OP_TYPE__left, sj->initby, NULL, 0, sj->j.at, sj->left.v, sj->left.n, 0);
    if (m && m->n) {
      conv_notify(w, c->cid, sp->group_op, sj->initby, ch->v, ch->n, sj->j.at, m->ids, m->n, 0);
      if (sj->left.n)
        conv_notify(w, c->cid, LC__OP_TYPE__members_left, sj->initby, sj->left.v, sj->left.n, sj->j.at, m->ids, m->n,
                    0);
    }
    members_release(m);
  }
  set_job_free(sj);
}

/* Applies a change of one of c's sets for `initby` (authorised by the caller): the new
 * snapshot is swapped in now, storage follows, then the reply (rt, may be NULL), done (may
 * be NULL) and the notifications. expire_at: a temporary shut-up. Takes c's reference. */
static void set_apply(im_worker_t *w, conv_t *c, const set_spec_t *sp, const char *initby, char *const *ids, size_t n,
                      int64_t expire_at, const reply_to_t *rt, const im_done_t *done) {
  set_job_t *sj = xcalloc(1, sizeof *sj);
  sj->im = w->im;
  sj->sp = sp;
  sj->conv = c;
  sj->initby = xstrdup(initby);
  sj->j.clients = xcalloc(n + 1, sizeof(char *));
  if (rt) {
    sj->rt = *rt;
    sj->rt.peer = rt->peer ? xstrdup(rt->peer) : NULL;
  }
  if (done) sj->done = *done;

  size_t *first = ids_first_index(ids, n);
  uint8_t *taken = xcalloc(n + 1, 1); /* taken[first[i]]: an earlier ids[i] was allowed */
  pthread_mutex_lock(&c->mu);
  members_t *cur = c->sets[sp->set];
  size_t size = cur ? cur->n : 0;
  for (size_t i = 0; i < n; i++) {
    const char *id = ids[i];
    if (taken[first[i]]) continue;
    int have = members_has(cur, id);
    if (!(have && !sp->add) && !utf8_client_id_ok(id)) { /* one stored before ids were checked may go */
      failed_pids_add(&sj->failed, LC_INVALID_LOGIN, id);
      continue;
    }
    if (sp->add && c->creator && strcmp(c->creator, id) == 0) { /* the owner stays in and may speak */
      failed_pids_add(&sj->failed,
                      sp->set == SET_BLOCK ? LC_CONVERSATION_NEED_OWNER : LC_CONVERSATION_OPERATION_UNAUTHORIZED, id);
      continue;
    }
    if (sp->add && !have && size >= SET_MAX) {
      failed_pids_add(&sj->failed, sp->full_code, id);
      continue;
    }
    strv_add(&sj->allowed, id);
    taken[first[i]] = 1;
    sj->j.clients[sj->j.n++] = xstrdup(id);
    if (have == sp->add) continue; /* already so: succeeds, changes nothing, announced to nobody */
    if (sp->add) size++;
    strv_add(&sj->changed, id);
  }
  free(first);
  free(taken);
  int64_t at = now_ms();
  if (sj->changed.n) {
    c->sets[sp->set] = set_with(cur, sj->changed.v, sj->changed.n, sp->add);
    members_release(cur);
    if (sp->set == SET_BLOCK && sp->add && c->members) {
      /* blocking takes the clients out of the conversation */
      for (size_t i = 0; i < sj->changed.n; i++)
        if (members_has(c->members, sj->changed.v[i])) strv_add(&sj->left, sj->changed.v[i]);
      if (sj->left.n) {
        members_t *old = c->members;
        c->members = set_with(old, sj->left.v, sj->left.n, 0);
        if (!c->members) c->members = members_new(NULL, 0);
        members_release(old);
        conv_forget_roles(c, sj->left.v, sj->left.n);
        sj->j.remove_members = 1;
      }
      at = conv_touch(c);
    }
  }
  sj->j.set = sp->set;
  sj->j.add = sp->add;
  sj->j.expire_at = sp->add && sp->set == SET_SHUTUP ? expire_at : 0;
  sj->j.conv = c->id;
  sj->j.at = at;
  sj->j.job.type = JOB_SET_CHANGE;
  sj->j.job.worker = w->idx;
  sj->j.job.task.fn = set_done;
  c->set_writes++;                        /* the stored rows lack this change until set_done */
  store_submit(w->im->store, &sj->j.job); /* under c->mu: storage sees changes in cache order */
  pthread_mutex_unlock(&c->mu);
}

static void set_change(req_t *r, conv_t *c, const set_spec_t *sp, char **ids, size_t n) {
  if (n > SET_MAX) { /* more than the list can hold: refused whole, before any per-id work */
    reply_error(r, sp->set == SET_SHUTUP ? LC_SILIENCED_MEMBER_LIST_FULL : LC_BLACKLIST_FULL,
                "too many client ids in one request (at most 500)");
    conv_release(c);
    return;
  }
  if (conv_role(c, r->s->client_id) < ROLE_MANAGER) {
    reply_error(r, LC_CONVERSATION_OPERATION_UNAUTHORIZED, "only the owner and managers may do this");
    conv_release(c);
    return;
  }
  if (sp == &shutup_remove && conv_in_set(c, SET_SHUTUP, r->s->client_id)) {
    /* a silenced Manager lifts no shut-up, its own nor another's (§3.16: a muted member
     * cannot unmute others) — else two silenced Managers would free each other */
    reply_error(r, LC_CONVERSATION_OPERATION_UNAUTHORIZED, "a member who is shut up cannot lift shut-ups");
    conv_release(c);
    return;
  }
  reply_to_t rt;
  reply_to_init(&rt, r);
  set_apply(r->w, c, sp, r->s->client_id, ids, n, 0, &rt, NULL);
  reply_to_free(&rt);
}

void conv_shutup_apply(im_worker_t *w, conv_t *c, const char *initby, char *const *ids, size_t n, int add,
                       int64_t expire_at, const im_done_t *done) {
  set_apply(w, c, add ? &shutup_add : &shutup_remove, initby, ids, n, expire_at, NULL, done);
}

void conv_block_apply(im_worker_t *w, conv_t *c, const char *initby, char *const *ids, size_t n, int add,
                      const im_done_t *done) {
  set_apply(w, c, add ? &block_add : &block_remove, initby, ids, n, 0, NULL, done);
}

static void plain_set_free(store_job_t *j) {
  job_set_t *sj = (job_set_t *)j;
  free(sj->clients[0]);
  free(sj->clients);
  free(sj);
}

int conv_silence_lift(im_worker_t *w, int64_t conv, const char *cid, const char *client) {
  conv_t *c = conv_get(w, cid, NULL);
  if (!c) { /* being deleted, or unreadable: drop the row so it cannot stay due forever */
    job_set_t *j = xcalloc(1, sizeof *j);
    j->clients = xmalloc(sizeof(char *));
    j->clients[0] = xstrdup(client);
    j->n = 1;
    j->set = SET_SHUTUP;
    j->conv = conv;
    j->job.type = JOB_SET_CHANGE;
    j->job.worker = -1;
    j->job.free_fn = plain_set_free;
    store_submit(w->im->store, &j->job);
    return 0;
  }
  char *ids[1] = {(char *)client};
  /* as if the app's back end lifted it: the target and the members hear unshutuped */
  set_apply(w, c, &shutup_remove, "", ids, 1, 0, NULL, NULL);
  return 1;
}

void im_conv_shutup(req_t *r, int add) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  set_change(r, c, add ? &shutup_add : &shutup_remove, in->m, in->n_m);
}

/* ---------------------------------------------------------------- roles */

typedef struct {
  job_set_t j;
  im_t *im;
  reply_to_t rt;
  im_done_t done;
  conv_t *conv;
  char *initby, *pid, *role;
} role_job_t;

typedef struct {
  const char *client;
  char *info_id;
} info_find_t;

static void info_find(void *arg, const member_info_t *mi) {
  info_find_t *f = arg;
  if (!f->info_id && strcmp(mi->client, f->client) == 0) f->info_id = xstrdup(mi->info_id);
}

/* What the REST API hears: {"updated_at", "client_id", "role", "info_id"?} — the row's id is
 * read back after the commit (the writer made it); none when the row went. */
static void role_done_rest(im_worker_t *w, role_job_t *rj) {
  if (!rj->done.fn) return;
  json_t *res =
      json_pack("{s:I, s:s, s:s}", "updated_at", (json_int_t)rj->j.at, "client_id", rj->pid, "role", rj->role);
  info_find_t f = {rj->pid, NULL};
  if (rj->j.add && store_member_infos(w->reader, rj->conv->id, info_find, &f) == 0 && f.info_id)
    json_object_set_new(res, "info_id", json_string(f.info_id));
  free(f.info_id);
  im_done(w, &rj->done, 0, res);
  json_decref(res);
}

static void role_done(task_t *t) {
  role_job_t *rj = (role_job_t *)t;
  im_worker_t *w = rj->im->workers[worker_current()];
  conv_t *c = rj->conv;
  conv_set_stored(c);
  if (rj->j.job.result < 0) {
    convcache_drop(rj->im, c);
    reply_error_async(w, &rj->rt, LC_CONVERSATION_INTERNAL_ERROR, "storage failed");
    im_done(w, &rj->done, LC_CONVERSATION_INTERNAL_ERROR, NULL);
  } else {
    im_conv_changed(w, c->cid); /* other nodes reload it */
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
    Lc__ConvMemberInfo info = LC__CONV_MEMBER_INFO__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
    PB_SET(out, op, LC__OP_TYPE__member_info_updated);
    out.convmessage = &cm;
    cm.cid = c->cid;
    reply_async(w, &rj->rt, &out);
    role_done_rest(w, rj);
    /* every member hears of it: member_info_changed {cid, initBy, info {pid, role}} */
    memset(&out, 0, sizeof out);
    lc__generic_command__init(&out);
    PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
    PB_SET(out, op, LC__OP_TYPE__member_info_changed);
    PB_SET(out, service, 2);
    PB_SET(out, serverts, now_ms());
    PB_SET(out, notificationtype, 1);
    out.convmessage = &cm;
    cm.initby = rj->initby;
    info.pid = rj->pid;
    info.role = rj->role;
    cm.info = &info;
    fanout_t *p = fanout_new(&out);
    members_t *m = conv_members(c);
    if (m) {
      fanout_to_clients(w, p, m->ids, m->n, 0);
      notif_record(w, &out, m->ids, m->n);
    }
    members_release(m);
    fanout_release(p);
  }
  free(rj->j.clients[0]);
  free(rj->j.clients);
  free(rj->initby);
  free(rj->pid);
  free(rj->role);
  reply_to_free(&rj->rt);
  conv_release(c);
  free(rj);
}

/* Why pid may not be given `role` in c, or 0. requester: the client asking, who must be the
 * owner (NULL: the app's back end, which may). */
static int role_refused(conv_t *c, const char *requester, const char *pid, const char *role, const char **detail) {
  *detail = NULL;
  if (!pid || !role) {
    *detail = "info {pid, role} is required";
    return LC_UNKNOWN_CONVERSATION_ROLE;
  }
  if (strcmp(role, "Owner") == 0 || (c->creator && strcmp(pid, c->creator) == 0)) {
    *detail = "the owner is the creator and cannot change";
    return LC_CONVERSATION_OPERATION_UNAUTHORIZED;
  }
  if (strcmp(role, "Manager") != 0 && strcmp(role, "Member") != 0) return LC_UNKNOWN_CONVERSATION_ROLE;
  if (!utf8_client_id_ok(pid)) {
    *detail = "pid must be 1 to 64 characters of UTF-8, no control characters";
    return LC_INVALID_LOGIN;
  }
  if (requester && conv_role(c, requester) < ROLE_OWNER) {
    *detail = "only the owner may change roles";
    return LC_CONVERSATION_OPERATION_UNAUTHORIZED;
  }
  if (conv_role(c, pid) < ROLE_MEMBER) return LC_CONVERSATION_MEMBERSHIP_REQUIRED;
  return 0;
}

/* Gives pid `role` (checked): the cache now, the member_info row next (kept with the role
 * unless drop_row: then Member is the row's absence), then reply, done and pushes. Takes
 * c's reference. */
static void role_apply(im_worker_t *w, conv_t *c, const char *initby, const char *pid, const char *role, int drop_row,
                       const reply_to_t *rt, const im_done_t *done) {
  int manager = strcmp(role, "Manager") == 0;
  role_job_t *rj = xcalloc(1, sizeof *rj);
  rj->im = w->im;
  rj->conv = c;
  rj->initby = xstrdup(initby);
  rj->pid = xstrdup(pid);
  rj->role = xstrdup(role);
  if (rt) {
    rj->rt = *rt;
    rj->rt.peer = rt->peer ? xstrdup(rt->peer) : NULL;
  }
  if (done) rj->done = *done;
  rj->j.clients = xmalloc(sizeof(char *));
  rj->j.clients[0] = xstrdup(pid);
  rj->j.n = 1;
  rj->j.set = SET_MANAGER;
  rj->j.add = manager || !drop_row;
  rj->j.role = rj->role;
  rj->j.conv = c->id;
  rj->j.job.type = JOB_SET_CHANGE;
  rj->j.job.worker = w->idx;
  rj->j.job.task.fn = role_done;
  pthread_mutex_lock(&c->mu);
  rj->j.at = conv_touch(c);
  members_t *cur = c->sets[SET_MANAGER];
  if (members_has(cur, pid) != manager) {
    c->sets[SET_MANAGER] = set_with(cur, rj->j.clients, 1, manager);
    members_release(cur);
  }
  c->set_writes++;                        /* the stored roles lack this change until role_done */
  store_submit(w->im->store, &rj->j.job); /* under c->mu: storage sees changes in cache order */
  pthread_mutex_unlock(&c->mu);
}

void im_conv_member_info(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  const char *pid = in->info && in->info->pid ? in->info->pid : in->targetclientid;
  const char *role = in->info ? in->info->role : NULL;
  const char *detail;
  int code = role_refused(c, r->s->client_id, pid, role, &detail);
  if (code) {
    reply_error(r, code, detail);
    conv_release(c);
    return;
  }
  reply_to_t rt;
  reply_to_init(&rt, r);
  role_apply(r->w, c, r->s->client_id, pid, role, strcmp(role, "Manager") != 0, &rt, NULL);
  reply_to_free(&rt);
}

int conv_role_apply(im_worker_t *w, conv_t *c, const char *initby, const char *pid, const char *role, int drop_row,
                    const im_done_t *done, const char **detail) {
  int code = role_refused(c, NULL, pid, role, detail);
  if (code) {
    conv_release(c);
    return code;
  }
  role_apply(w, c, initby, pid, role, drop_row, NULL, done);
  return 0;
}

/* ---------------------------------------------------------------- queries and checks */

/* One page of a sorted set after `next` (exclusive): limit 1..100, default 10. */
static size_t page(members_t *m, const char *next, int limit, size_t *start) {
  if (limit <= 0) limit = 10;
  if (limit > 100) limit = 100;
  size_t i = 0;
  while (m && next && *next && i < m->n && strcmp(m->ids[i], next) <= 0) i++;
  *start = i;
  size_t left = m ? m->n - i : 0;
  return left < (size_t)limit ? left : (size_t)limit;
}

static int may_see(req_t *r, conv_t *c) { return conv_role(c, r->s->client_id) >= ROLE_MEMBER; }

void im_conv_query_shutup(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  if (!may_see(r, c)) {
    reply_error(r, LC_CONVERSATION_MEMBERSHIP_REQUIRED, NULL);
    conv_release(c);
    return;
  }
  members_t *m = conv_set(c, SET_SHUTUP);
  size_t start, n = page(m, in->next, in->has_limit ? in->limit : 0, &start);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(out, op, LC__OP_TYPE__shutup_result);
  out.convmessage = &cm;
  cm.m = n ? m->ids + start : NULL;
  cm.n_m = n;
  if (m && start + n < m->n) cm.next = m->ids[start + n - 1];
  reply(r, &out);
  members_release(m);
  conv_release(c);
}

void im_conv_check_shutup(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  members_t *m = conv_set(c, SET_SHUTUP);
  char **hit = xcalloc(in->n_m + 1, sizeof(char *));
  size_t k = 0;
  for (size_t i = 0; i < in->n_m && i < 100; i++)
    if (members_has(m, in->m[i])) hit[k++] = in->m[i];
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(out, op, LC__OP_TYPE__check_result);
  out.convmessage = &cm;
  cm.cid = c->cid;
  cm.m = hit;
  cm.n_m = k;
  reply(r, &out);
  free(hit);
  members_release(m);
  conv_release(c);
}

/* ---------------------------------------------------------------- blacklist */

typedef struct {
  job_client_block_t j;
  im_t *im;
  reply_to_t rt;
  int op;
} cblock_job_t;

static void cblock_done(task_t *t) {
  cblock_job_t *cj = (cblock_job_t *)t;
  im_worker_t *w = cj->im->workers[worker_current()];
  if (cj->j.job.result < 0) {
    reply_error_async(w, &cj->rt, LC_INTERNAL_ERROR, "storage failed");
  } else {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__BlacklistCommand bm = LC__BLACKLIST_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__blacklist);
    PB_SET(out, op, cj->op);
    out.blacklistmessage = &bm;
    bm.srcpid = cj->j.client;
    bm.allowedpids = cj->j.cids; /* the SDKs read allowedPids for either direction */
    bm.n_allowedpids = cj->j.n;
    reply_async(w, &cj->rt, &out);
  }
  for (size_t i = 0; i < cj->j.n; i++) free(cj->j.cids[i]);
  free(cj->j.cids);
  free(cj->j.client);
  reply_to_free(&cj->rt);
  free(cj);
}

typedef struct {
  strv_t ids;
} collect_t;

static void collect(void *arg, const char *cid) { strv_add(&((collect_t *)arg)->ids, cid); }

/* A client blocking conversations (srcPid + toCids): they can no longer add it. */
static void client_blacklist(req_t *r, Lc__BlacklistCommand *bm, int op) {
  const char *self = r->s->client_id;
  if (strcmp(bm->srcpid, self) != 0) {
    reply_error(r, LC_CONVERSATION_OPERATION_UNAUTHORIZED, "srcPid must be the requesting client");
    return;
  }
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__BlacklistCommand res = LC__BLACKLIST_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__blacklist);
  out.blacklistmessage = &res;
  res.srcpid = bm->srcpid;
  if (op == LC__OP_TYPE__block || op == LC__OP_TYPE__unblock) {
    cblock_job_t *cj = xcalloc(1, sizeof *cj);
    cj->im = r->w->im;
    cj->op = op == LC__OP_TYPE__block ? LC__OP_TYPE__blocked : LC__OP_TYPE__unblocked;
    reply_to_init(&cj->rt, r);
    cj->j.client = xstrdup(self);
    cj->j.add = op == LC__OP_TYPE__block;
    cj->j.at = now_ms();
    cj->j.cids = xcalloc(bm->n_tocids + 1, sizeof(char *));
    for (size_t i = 0; i < bm->n_tocids && i < SET_MAX; i++) cj->j.cids[cj->j.n++] = xstrdup(bm->tocids[i]);
    cj->j.job.type = JOB_CLIENT_BLOCK;
    cj->j.job.worker = r->w->idx;
    cj->j.job.task.fn = cblock_done;
    store_submit(r->w->im->store, &cj->j.job);
    return;
  }
  collect_t got = {0};
  if (op == LC__OP_TYPE__query) {
    int limit = bm->has_limit && bm->limit > 0 ? (bm->limit > 100 ? 100 : bm->limit) : 10;
    if (im_cmd_blocks(r->w, self, bm->next, limit + 1, collect, &got) == 1) /* read ahead (im_prefetch_cmd) */
      store_client_blocks(r->w->reader, self, bm->next, limit + 1, collect, &got);
    PB_SET(out, op, LC__OP_TYPE__query_result);
    res.blockedcids = got.ids.v;
    res.n_blockedcids = got.ids.n > (size_t)limit ? (size_t)limit : got.ids.n;
    if (got.ids.n > (size_t)limit) res.next = got.ids.v[limit - 1];
  } else {
    for (size_t i = 0; i < bm->n_tocids && i < 100; i++) {
      int b = im_cmd_blocked(r->w, self, bm->tocids[i]); /* read ahead, off the loop (im_prefetch_cmd) */
      if (b == -2) b = store_client_blocked(r->w->reader, self, bm->tocids[i]);
      if (b == 1) strv_add(&got.ids, bm->tocids[i]);
    }
    PB_SET(out, op, LC__OP_TYPE__check_result);
    res.blockedcids = got.ids.v;
    res.n_blockedcids = got.ids.n;
  }
  reply(r, &out);
  strv_free(&got.ids);
}

/* Blacklist changes are signed (§5): conversation-(un)block-clients over the conversation
 * and the client ids; client-(un)block-conversations over the sorted conversation ids in
 * the conversation slot (UNCONFIRMED, see docs/protocol-map.md). */
static int blacklist_signed(req_t *r, Lc__BlacklistCommand *bm, int op) {
  im_t *im = r->w->im;
  if (!im->cfg->sign_blacklist || (op != LC__OP_TYPE__block && op != LC__OP_TYPE__unblock)) return 0;
  int block = op == LC__OP_TYPE__block;
  char *text;
  if (bm->srccid) {
    text = sign_string_action(im->app_id, r->s->client_id, bm->srccid, bm->topids, bm->n_topids, bm->has_t ? bm->t : 0,
                              bm->n, block ? "conversation-block-clients" : "conversation-unblock-clients");
  } else {
    char *cids = sign_join_sorted(bm->tocids, bm->n_tocids);
    text = sign_string_action(im->app_id, r->s->client_id, cids, NULL, 0, bm->has_t ? bm->t : 0, bm->n,
                              block ? "client-block-conversations" : "client-unblock-conversations");
    free(cids);
  }
  return im_check_signature(r, text, bm->has_t ? bm->t : 0, bm->n, bm->s, LC_BLACKLIST_SIGNATURE_FAILED);
}

void im_blacklist(req_t *r) {
  Lc__BlacklistCommand *bm = r->cmd->blacklistmessage;
  int op = r->cmd->has_op ? r->cmd->op : 0;
  if (bm && blacklist_signed(r, bm, op) < 0) return;
  if (bm && bm->srcpid && !bm->srccid) {
    client_blacklist(r, bm, op);
    return;
  }
  if (!bm) { /* what need_conv answers for no cid, said here so bm is known below */
    reply_error(r, LC_CONVERSATION_NOT_FOUND, NULL);
    return;
  }
  conv_t *c = need_conv(r, bm->srccid, LC_CONVERSATION_NOT_FOUND);
  if (!c) return;
  switch (op) {
  case LC__OP_TYPE__block: set_change(r, c, &block_add, bm->topids, bm->n_topids); return;
  case LC__OP_TYPE__unblock: set_change(r, c, &block_remove, bm->topids, bm->n_topids); return;
  }
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__BlacklistCommand res = LC__BLACKLIST_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__blacklist);
  out.blacklistmessage = &res;
  res.srccid = c->cid;
  members_t *m = conv_set(c, SET_BLOCK);
  char **hit = NULL;
  if (op == LC__OP_TYPE__query) {
    if (!may_see(r, c)) {
      reply_error(r, LC_CONVERSATION_MEMBERSHIP_REQUIRED, NULL);
      goto done;
    }
    size_t start, n = page(m, bm->next, bm->has_limit ? bm->limit : 0, &start);
    PB_SET(out, op, LC__OP_TYPE__query_result);
    res.blockedpids = n ? m->ids + start : NULL;
    res.n_blockedpids = n;
    if (m && start + n < m->n) res.next = m->ids[start + n - 1];
  } else if (op == LC__OP_TYPE__check_block) {
    hit = xcalloc(bm->n_topids + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < bm->n_topids && i < 100; i++)
      if (members_has(m, bm->topids[i])) hit[k++] = bm->topids[i];
    PB_SET(out, op, LC__OP_TYPE__check_result);
    res.blockedpids = hit;
    res.n_blockedpids = k;
  } else {
    reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, "unsupported blacklist op");
    goto done;
  }
  reply(r, &out);
done:
  free(hit);
  members_release(m);
  conv_release(c);
}
