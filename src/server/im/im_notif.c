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
  im_worker_t *w;
  int deleted;
} sweep_t;

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

static void expired_each(void *arg, int64_t id, const char *cid, int kind) {
  sweep_t *sw = arg;
  (void)id;
  (void)kind;
  conv_t *c = conv_get(sw->w, cid, NULL); /* loads it if it is not cached */
  if (c && conv_delete(sw->w, c, 1, NULL)) sw->deleted++;
}

void im_worker_sweep(im_worker_t *w, int64_t now) {
  static int64_t next;                         /* only worker 0 sweeps, so only its thread touches this */
  if (w->idx == 0) conv_silence_sweep(w, now); /* every tick: a temporary shut-up lifts on time */
  if (w->idx != 0 || now < next) return;
  const tern_config_t *cfg = w->im->cfg;
  next = now + cfg->sweep_interval * 1000;
  sweep_t sw = {w, 0};
  store_expired(w->reader, now, now - cfg->conv_idle_ttl * 1000, 1000, expired_each, &sw);
  if (sw.deleted) log_at(LOG_INFO, "sweep: deleted %d expired conversation%s", sw.deleted, sw.deleted == 1 ? "" : "s");
  job_prune_t *p = xcalloc(1, sizeof *p);
  p->notif_before = now - cfg->notif_ttl * 1000;
  p->job.type = JOB_PRUNE;
  p->job.worker = -1;
  p->job.free_fn = plain_free;
  store_submit(w->im->store, &p->job);
}
