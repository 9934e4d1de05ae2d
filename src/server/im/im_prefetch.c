/* im_prefetch.c — a request waits off the loop for a conversation the cache lacks.
 *
 * conv_get reads a conversation the cache does not hold (or holds stale: changed on another
 * node, and in a cluster before every conversation command, need_conv) from the store, on
 * the worker's loop. On PostgreSQL that read is a network round trip, and it takes as long
 * as the database makes it wait (a locked row, a busy server): every other connection of
 * the worker waits behind it. So before a send, an ack, a history page or a conversation command runs, the
 * conversation it names is looked up; when conv_get would read, the read goes to the
 * store's read threads (store_read_submit), the link is paused (its later frames wait, in
 * order: im_link_pause), and once the row is cached the request runs again and the link
 * reads on. With SQLite, whose reads are local and cheap, nothing changes.
 *
 * A request runs again at most once for this (IM_RUN_LOADED), and only as im_rerun_may
 * allows; the others, an address with MAX_IP_READS reads running and a full read queue
 * read on the loop as before.
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
#include "ipcount.h"
#include "revoke.h"
#include "token.h"
#include "utf8.h"

int im_rerun_may(const req_t *r) {
  const im_link_t *l = r->link;
  return !r->nonce && !r->fenced && !l->replaying && r->raw && l->ops->pause && store_reads_off_loop(r->w->im->store);
}

int im_rerun_submit(req_t *r, im_rerun_t *x, int (*fn)(store_reader_t *, store_read_t *), void (*done)(task_t *),
                    metric_t counted) {
  x->ip = ipcount_add(r->w->im->read_ips, r->link->ip ? r->link->ip : "", MAX_IP_READS);
  if (!x->ip) return 0; /* one address cannot fill the server's read queue */
  x->rd.task.fn = done;
  x->rd.worker = r->w->idx;
  x->rd.fn = fn;
  x->im = r->w->im;
  x->link = r->link->id;
  x->base64 = r->base64;
  x->n = r->rawlen;
  x->d = xmalloc(r->rawlen);
  memcpy(x->d, r->raw, r->rawlen);
  if (store_read_submit(x->im->store, r->w->reader, &x->rd) < 0) { /* the read queue is full */
    im_rerun_free(x);
    return 0;
  }
  metric_inc(counted);
  im_link_pause(r->link, IM_PAUSE_LOAD, 1); /* after the submit: its task runs later, on this worker */
  return IM_PARKED;
}

im_link_t *im_rerun_link(im_rerun_t *x, im_worker_t **w) {
  *w = x->im->workers[x->rd.worker];
  return *w ? handle_table_get(&(*w)->links, x->link) : NULL;
}

int im_rerun_run(im_link_t *l, im_rerun_t *x) { return im_link_run(l, x->d, x->n, x->base64, IM_RUN_LOADED); }

void im_rerun_end(im_link_t *l, int code) {
  if (code) l->ops->close(l, code, lc_error_name(code));
  else im_link_pause(l, IM_PAUSE_LOAD, 0); /* the frames behind it run now */
}

void im_rerun_free(im_rerun_t *x) {
  if (x->ip) ipcount_del(x->im->read_ips, x->ip);
  x->ip = NULL;
  free(x->d);
  x->d = NULL;
}

/* ---- a conversation the cache lacks ---- */

typedef struct {
  im_rerun_t x;  /* first */
  conv_t *stale; /* the cached entry being reloaded, or NULL (not cached) */
  conv_row_t row;
  char *cid;
} prefetch_t;

static int load(store_reader_t *r, store_read_t *rd) {
  prefetch_t *p = (prefetch_t *)rd; /* rd is first in x, first in p */
  return store_conv_load(r, p->cid, &p->row);
}

static void loaded(task_t *t) {
  prefetch_t *p = (prefetch_t *)t;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  if (w) {
    convcache_loaded(w, p->cid, p->stale, p->x.rd.result, &p->row);
  } else { /* the server is stopping */
    if (p->x.rd.result == 0) conv_row_free(&p->row);
    if (p->stale) conv_release(p->stale);
  }
  if (l) {
    w->absent_cid = p->x.rd.result == TERN_ENOENT ? p->cid : NULL; /* not read again for the re-run */
    int code = im_rerun_run(l, &p->x);
    w->absent_cid = NULL; /* before the frames behind it run (im_rerun_end) */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  free(p->cid);
  free(p);
}

/* The conversation a request acts on, when conv_get will be asked for it; *command: it is
 * a conversation command, whose need_conv reads it afresh in a cluster (im_conv.c). */
static const char *request_cid(const lc_cmd_t *c, int *command) {
  int cmd = c->has_cmd ? (int)c->cmd : -1;
  *command = 0;
  if (cmd == LC__COMMAND_TYPE__direct) return c->directmessage ? c->directmessage->cid : NULL;
  if (cmd == LC__COMMAND_TYPE__ack) return c->ackmessage ? c->ackmessage->cid : NULL;
  if (cmd == LC__COMMAND_TYPE__logs) return c->logsmessage ? c->logsmessage->cid : NULL;
  *command = 1;
  if (cmd == LC__COMMAND_TYPE__blacklist) return c->blacklistmessage ? c->blacklistmessage->srccid : NULL;
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
  if (r->loaded || !im_rerun_may(r)) return 0;
  int command;
  const char *cid = request_cid(r->cmd, &command);
  if (!cid || !*cid || strlen(cid) > 64) return 0;
  if (command && im->bus) convcache_stale(im, cid); /* what need_conv would do, on the loop */
  conv_t *stale;
  if (!convcache_wants_load(im, cid, &stale)) return 0;
  prefetch_t *p = xcalloc(1, sizeof *p);
  p->stale = stale;
  p->cid = xstrdup(cid);
  if (im_rerun_submit(r, &p->x, load, loaded, M_CONV_PREFETCHES) == IM_PARKED) return IM_PARKED;
  if (stale) { /* the read queue is full: conv_get reads it on the loop */
    atomic_store(&stale->stale, 1);
    conv_release(stale);
  }
  free(p->cid);
  free(p);
  return 0;
}

/* ---- a reconnect's session token ---- */

typedef struct {
  im_rerun_t x; /* first */
  revoke_read_t ans;
} token_prefetch_t;

static int token_load(store_reader_t *r, store_read_t *rd) {
  token_prefetch_t *p = (token_prefetch_t *)rd;
  revoke_read(r, &p->ans);
  return p->ans.rc;
}

static void token_loaded(task_t *t) {
  token_prefetch_t *p = (token_prefetch_t *)t;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  if (l) {
    if (p->x.rd.result < 0) p->ans.rc = TERN_ESTORE; /* no reader: refused, as a failed read is */
    w->token_read = &p->ans;
    int code = im_rerun_run(l, &p->x);
    w->token_read = NULL; /* before the frames behind it run (im_rerun_end): the answer is this open's */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  free(p);
}

int im_prefetch_token(req_t *r) {
  im_t *im = r->w->im;
  if (r->loaded || !im_rerun_may(r)) return 0;
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
  token_prefetch_t *p = xcalloc(1, sizeof *p);
  revoke_read_start(r->w, c->peerid, &info, &p->ans);
  if (im_rerun_submit(r, &p->x, token_load, token_loaded, M_TOKEN_PREFETCHES) == IM_PARKED) return IM_PARKED;
  free(p); /* the read queue is full: on the loop */
  return 0;
}
