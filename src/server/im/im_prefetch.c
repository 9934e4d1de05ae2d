/* im_prefetch.c — a request waits off the loop for a conversation the cache lacks.
 *
 * conv_get reads a conversation the cache does not hold (or holds stale: changed on another
 * node, and in a cluster before every conversation command, need_conv) from the store, on
 * the worker's loop. On PostgreSQL that read is a network round trip, and it takes as long
 * as the database makes it wait (a locked row, a busy server): every other connection of
 * the worker waits behind it. So before a send, an ack or a conversation command runs, the
 * conversation it names is looked up; when conv_get would read, the read goes to the
 * store's read threads (store_read_submit), the link is paused (its later frames wait, in
 * order: im_link_pause), and once the row is cached the request runs again and the link
 * reads on. With SQLite, whose reads are local and cheap, nothing changes.
 *
 * A request runs again at most once for this (IM_RUN_LOADED), and never one already run
 * again for the bus (a nonce's answer, a presence fence: their state is not to be redone),
 * nor one of the frames a bus park held (park_resume runs them in a row: l->replaying).
 * Those, and a full read queue, read on the loop as before.
 *
 * A reconnect's session/open with a session token is the same story with another read: the
 * token's revocations (revoke.h, one indexed read per reconnect, and after a node dies its
 * whole reconnect storm at once). im_prefetch_token checks what needs no store — the token
 * sealed for this client and unexpired, no revocation of it waiting in memory — then reads
 * the store's revocations off the loop, pauses the link, and runs the open again with the
 * answer (w->token_read) from the start. Nothing of the open ran the first time, so its
 * signature nonce, its session and its kicks happen once. The re-run checks the in-memory
 * revocations again and uses the answer only if none that could name the token committed
 * meanwhile (revoke_check_read): a token revoked before the open is answered is refused. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "revoke.h"
#include "token.h"
#include "utf8.h"

typedef struct {
  store_read_t rd; /* first: the read, and the task that runs on the worker after it */
  im_t *im;
  uint64_t link;
  conv_t *stale; /* the cached entry being reloaded, or NULL (not cached) */
  conv_row_t row;
  char *cid;
  int base64;
  size_t n;
  uint8_t d[]; /* the request's frame */
} prefetch_t;

static int load(store_reader_t *r, store_read_t *rd) {
  prefetch_t *p = (prefetch_t *)rd;
  return store_conv_load(r, p->cid, &p->row);
}

static void loaded(task_t *t) {
  prefetch_t *p = (prefetch_t *)t;
  im_worker_t *w = p->im->workers[p->rd.worker];
  if (w) {
    convcache_loaded(w, p->cid, p->stale, p->rd.result, &p->row);
  } else { /* the server is stopping */
    if (p->rd.result == 0) conv_row_free(&p->row);
    if (p->stale) conv_release(p->stale);
  }
  im_link_t *l = w ? handle_table_get(&w->links, p->link) : NULL;
  if (l) {
    int code = im_link_run(l, p->d, p->n, p->base64, IM_RUN_LOADED);
    if (code) l->ops->close(l, code, lc_error_name(code));
    else im_link_pause(l, IM_PAUSE_LOAD, 0); /* the frames behind it run now */
  }
  free(p->cid);
  free(p);
}

/* The conversation a request acts on, when conv_get will be asked for it. */
static const char *request_cid(const lc_cmd_t *c) {
  int cmd = c->has_cmd ? (int)c->cmd : -1;
  if (cmd == LC__COMMAND_TYPE__direct) return c->directmessage ? c->directmessage->cid : NULL;
  if (cmd == LC__COMMAND_TYPE__ack) return c->ackmessage ? c->ackmessage->cid : NULL;
  if (cmd != LC__COMMAND_TYPE__conv || !c->convmessage || !c->has_op) return NULL;
  switch (c->op) { /* start makes one, query and is_member name none or many */
  case LC__OP_TYPE__start:
  case LC__OP_TYPE__query:
  case LC__OP_TYPE__is_member: return NULL;
  default: return c->convmessage->cid;
  }
}

int im_prefetch(req_t *r) {
  im_t *im = r->w->im;
  im_link_t *l = r->link;
  if (r->nonce || r->fenced || r->loaded || l->replaying || !r->raw || !l->ops->pause ||
      !store_reads_off_loop(im->store))
    return 0;
  const char *cid = request_cid(r->cmd);
  conv_t *stale;
  if (!cid || !*cid || strlen(cid) > 64 || !convcache_wants_load(im, cid, &stale)) return 0;
  prefetch_t *p = xcalloc(1, sizeof *p + r->rawlen);
  p->rd.task.fn = loaded;
  p->rd.worker = r->w->idx;
  p->rd.fn = load;
  p->im = im;
  p->link = l->id;
  p->stale = stale;
  p->cid = xstrdup(cid);
  p->base64 = r->base64;
  p->n = r->rawlen;
  memcpy(p->d, r->raw, r->rawlen);
  if (store_read_submit(im->store, r->w->reader, &p->rd) < 0) { /* the read queue is full: on the loop */
    if (stale) {
      atomic_store(&stale->stale, 1);
      conv_release(stale);
    }
    free(p->cid);
    free(p);
    return 0;
  }
  metric_inc(M_CONV_PREFETCHES);
  im_link_pause(l, IM_PAUSE_LOAD, 1); /* after the submit: its task runs later, on this worker */
  return IM_PARKED;
}

/* ---- a reconnect's session token ---- */

typedef struct {
  store_read_t rd; /* first */
  im_t *im;
  uint64_t link;
  revoke_read_t ans;
  int base64;
  size_t n;
  uint8_t d[]; /* the session/open frame */
} token_prefetch_t;

static int token_load(store_reader_t *r, store_read_t *rd) {
  token_prefetch_t *p = (token_prefetch_t *)rd;
  revoke_read(r, &p->ans);
  return p->ans.rc;
}

static void token_loaded(task_t *t) {
  token_prefetch_t *p = (token_prefetch_t *)t;
  im_worker_t *w = p->im->workers[p->rd.worker];
  im_link_t *l = w ? handle_table_get(&w->links, p->link) : NULL;
  if (l) {
    if (p->rd.result < 0) p->ans.rc = TERN_ESTORE; /* no reader: refused, as a failed read is */
    w->token_read = &p->ans;
    int code = im_link_run(l, p->d, p->n, p->base64, IM_RUN_LOADED);
    w->token_read = NULL;
    if (code) l->ops->close(l, code, lc_error_name(code));
    else im_link_pause(l, IM_PAUSE_LOAD, 0); /* the frames behind it run now */
  }
  free(p);
}

int im_prefetch_token(req_t *r) {
  im_t *im = r->w->im;
  im_link_t *l = r->link;
  if (r->nonce || r->fenced || r->loaded || l->replaying || !r->raw || !l->ops->pause ||
      !store_reads_off_loop(im->store))
    return 0;
  const lc_cmd_t *c = r->cmd;
  const Lc__SessionCommand *sm = c->sessionmessage;
  /* what im_session_open reads the revocations for; anything else it refuses or opens
   * without them */
  if (!sm || !sm->has_r || !sm->r || !sm->st || !c->peerid || !*c->peerid) return 0;
  if ((c->appid && strcmp(c->appid, im->app_id) != 0) || !utf8_client_id_ok(c->peerid)) return 0;
  token_info_t info;
  if (token_check(im->master_key, im->app_id, c->peerid, sm->st, &info) < 0) return 0;
  free(info.tag);
  if (revoke_check_memory(r->w, c->peerid, &info) < 0) return 0; /* refused without a read */
  token_prefetch_t *p = xcalloc(1, sizeof *p + r->rawlen);
  p->rd.task.fn = token_loaded;
  p->rd.worker = r->w->idx;
  p->rd.fn = token_load;
  p->im = im;
  p->link = l->id;
  revoke_read_start(r->w, c->peerid, &info, &p->ans);
  p->base64 = r->base64;
  p->n = r->rawlen;
  memcpy(p->d, r->raw, r->rawlen);
  if (store_read_submit(im->store, r->w->reader, &p->rd) < 0) { /* the read queue is full: on the loop */
    free(p);
    return 0;
  }
  metric_inc(M_TOKEN_PREFETCHES);
  im_link_pause(l, IM_PAUSE_LOAD, 1);
  return IM_PARKED;
}
