/* im_notif.c — what the server keeps for clients that were away, and what it forgets.
 *
 * Reliable notifications (protocol.md §3.20): every permanent conversation notification
 * (joined, left, members_*, updated, member_info_changed, the shut-up and blacklist
 * families) is also written for each recipient, so a client that reconnects asks
 * GET /1.1/rtm/notifications for what it missed since the last serverTs it saw. The stored
 * body is the ConvCommand as JSON plus cmd/op/serverTs/notificationType — exactly what
 * the JS SDK turns back into a command.
 *
 * The sweep (worker 0, every sweep_interval) deletes temporary conversations past their
 * TTL, conversations idle longer than conv_idle_ttl (later use gets 4401), and
 * notifications older than notif_ttl. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"

static void notif_free(store_job_t *j) {
  job_notif_t *n = (job_notif_t *)j;
  for (size_t i = 0; i < n->n; i++) free(n->clients[i]);
  free(n->clients);
  free(n->body);
  free(n);
}

void notif_record(im_worker_t *w, const lc_cmd_t *cmd, char *const *to, size_t n) {
  if (!n || !cmd->convmessage) return;
  json_t *body = pb_to_json(&cmd->convmessage->base);
  json_object_set_new(body, "cmd", json_string(lc_cmd_name(cmd->cmd)));
  json_object_set_new(body, "op", json_string(lc_op_name(cmd->op)));
  json_object_set_new(body, "serverTs", json_integer(cmd->serverts));
  json_object_set_new(body, "notificationType", json_integer(1));
  job_notif_t *j = xcalloc(1, sizeof *j);
  j->body = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  j->ts = cmd->serverts;
  j->clients = xmalloc(n * sizeof(char *));
  for (size_t i = 0; i < n; i++) j->clients[j->n++] = xstrdup(to[i]);
  j->job.type = JOB_NOTIF;
  j->job.worker = -1;
  j->job.free_fn = notif_free;
  store_submit(w->im->store, &j->job);
}

/* ---------------------------------------------------------------- the sweep */

static void plain_free(store_job_t *j) { free(j); }

typedef struct {
  job_members_t j;
  im_t *im;
  conv_t *conv;
  im_done_t done;
} delete_job_t;

/* After the delete committed nothing can load the row again: the tombstone can go. */
static void delete_done(task_t *t) {
  delete_job_t *d = (delete_job_t *)t;
  convcache_drop(d->im, d->conv);
  if (d->j.job.result >= 0) im_conv_changed(d->im->workers[worker_current()], d->conv->cid); /* gone on every node */
  im_done(d->im->workers[worker_current()], &d->done, d->j.job.result < 0 ? LC_CONVERSATION_API_FAILED : 0, NULL);
  conv_release(d->conv);
  free(d);
}

int conv_delete(im_worker_t *w, conv_t *c, int idle_only, const im_done_t *done) {
  /* Marked deleted before the delete is queued: from here on every lookup finds the
   * tombstone instead of reloading the row. */
  pthread_mutex_lock(&c->mu);
  int busy = idle_only && c->kind == CONV_ROOM && atomic_load(&c->online) > 0; /* people are in it: not idle */
  if (!busy) c->deleted = 1;
  pthread_mutex_unlock(&c->mu);
  if (busy) {
    conv_release(c);
    return 0;
  }
  delete_job_t *d = xcalloc(1, sizeof *d);
  d->im = w->im;
  d->conv = c;
  if (done) d->done = *done;
  d->j.conv = c->id;
  d->j.job.type = JOB_CONV_DELETE;
  d->j.job.worker = w->idx;
  d->j.job.task.fn = delete_done;
  store_submit(w->im->store, &d->j.job);
  return 1;
}

/* The sweep's reads — the temporary shut-ups due, every tick, and the conversations
 * expired, every sweep_interval, with the conversations they name — run off the loop (store_read_submit: PostgreSQL's read
 * threads; SQLite reads at once, as before), and what they found is acted on here on worker
 * 0: on the loop, the shut-up read held every connection of worker 0 once a second for a
 * round trip, and for as long as PostgreSQL made it wait (a locked table). One at a time. */
typedef struct {
  int64_t id;
  char *cid, *client;
  int rc;             /* its conversation read beside it (store_conv_load), so that lifting or */
  conv_row_t cv;      /* deleting it on worker 0 finds it cached, not read on the loop */
  conv_claim_t claim; /* the marks before the read (convcache_claim_new) */
} row_t;

typedef struct {
  row_t *v;
  size_t n, cap;
} rows_t;

typedef struct {
  store_read_t rd; /* first */
  im_t *im;
  int64_t now, idle_before;
  int expire; /* the expired conversations too */
  rows_t shut, gone;
} sweep_read_t;

static int sweep_busy; /* a sweep read on its way (worker 0's thread only) */

static void rows_add(rows_t *r, int64_t id, const char *cid, const char *client) {
  if (!cid) return;
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->v = xrealloc(r->v, r->cap * sizeof *r->v);
  }
  r->v[r->n++] = (row_t){.id = id, .cid = xstrdup(cid), .client = client ? xstrdup(client) : NULL, .rc = TERN_ENOENT};
}

static void rows_load(store_reader_t *r, im_t *im, rows_t *rows) {
  for (size_t i = 0; i < rows->n; i++) {
    rows->v[i].claim = convcache_claim_new(im, rows->v[i].cid);
    rows->v[i].rc = store_conv_load(r, rows->v[i].cid, &rows->v[i].cv);
  }
}

/* On worker 0 (w NULL: the server is stopping): the row's conversation cached from what was
 * read, unless it is cached already; the row's strings freed after use by the caller. */
static void row_cache(im_worker_t *w, row_t *rw) {
  conv_t *c = w ? convcache_peek(w->im, rw->cid) : NULL;
  if (w && !c) {
    convcache_loaded(w, rw->cid, &rw->claim, rw->rc, &rw->cv); /* takes the row */
    return;
  }
  conv_release(c);
  if (rw->rc == 0) conv_row_free(&rw->cv);
}

static void shut_each(void *arg, int64_t conv, const char *cid, const char *client) {
  if (client) rows_add(&((sweep_read_t *)arg)->shut, conv, cid, client);
}

static void gone_each(void *arg, int64_t id, const char *cid, int kind) {
  (void)kind;
  rows_add(&((sweep_read_t *)arg)->gone, id, cid, NULL);
}

static int sweep_read(store_reader_t *r, store_read_t *rd) {
  sweep_read_t *x = (sweep_read_t *)rd;
  int rc = store_shutups_expired(r, x->now, 100, shut_each, x);
  if (x->expire && rc == 0) rc = store_expired(r, x->now, x->idle_before, 1000, gone_each, x);
  rows_load(r, x->im, &x->shut);
  rows_load(r, x->im, &x->gone);
  return rc;
}

static void sweep_done(task_t *t) {
  sweep_read_t *x = (sweep_read_t *)t;
  im_worker_t *w = x->im->workers[x->rd.worker]; /* NULL: the server is stopping */
  int lifted = 0, deleted = 0;
  for (size_t i = 0; i < x->shut.n; i++) {
    row_cache(w, &x->shut.v[i]);
    if (w) lifted += conv_silence_lift(w, x->shut.v[i].id, x->shut.v[i].cid, x->shut.v[i].client);
    free(x->shut.v[i].cid);
    free(x->shut.v[i].client);
  }
  for (size_t i = 0; i < x->gone.n; i++) {
    row_cache(w, &x->gone.v[i]);
    conv_t *c = w ? conv_get(w, x->gone.v[i].cid, NULL) : NULL;
    if (c && conv_delete(w, c, 1, NULL)) deleted++;
    free(x->gone.v[i].cid);
  }
  if (lifted) log_at(LOG_DEBUG, "sweep: lifted %d temporary shut-up%s", lifted, lifted == 1 ? "" : "s");
  if (deleted) log_at(LOG_INFO, "sweep: deleted %d expired conversation%s", deleted, deleted == 1 ? "" : "s");
  free(x->shut.v);
  free(x->gone.v);
  free(x);
  sweep_busy = 0;
}

void im_worker_sweep(im_worker_t *w, int64_t now) {
  static int64_t next; /* only worker 0 sweeps, so only its thread touches this */
  if (w->idx != 0 || sweep_busy) return;
  const tern_config_t *cfg = w->im->cfg;
  sweep_read_t *x = xcalloc(1, sizeof *x);
  x->rd.task.fn = sweep_done;
  x->rd.worker = w->idx;
  x->rd.fn = sweep_read;
  x->im = w->im;
  x->now = now; /* every tick: a temporary shut-up lifts on time */
  x->expire = now >= next;
  x->idle_before = now - cfg->conv_idle_ttl * 1000;
  sweep_busy = 1;
  if (store_read_submit(w->im->store, w->reader, &x->rd) < 0) { /* the read queue is full: next tick */
    free(x);
    sweep_busy = 0;
    return;
  }
  if (now < next) return;
  next = now + cfg->sweep_interval * 1000;
  job_prune_t *p = xcalloc(1, sizeof *p);
  p->notif_before = now - cfg->notif_ttl * 1000;
  p->job.type = JOB_PRUNE;
  p->job.worker = -1;
  p->job.free_fn = plain_free;
  store_submit(w->im->store, &p->job);
}
