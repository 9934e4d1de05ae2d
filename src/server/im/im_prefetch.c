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
  convcache_loaded(w, p->cid, p->stale, p->x.rd.result, &p->row); /* w NULL: the server is stopping */
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
  convcache_load_abandoned(stale); /* the read queue is full: conv_get reads it on the loop */
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

/* ---- a read's other conversations, an imported id's key ---- */

#define KEYS_READ_TUPLES 200 /* a read's tuples read ahead (its cid besides) */

typedef struct {
  char *cid, *mid; /* mid: its key is wanted, NULL: only the conversation */
  int load;        /* the conversation is read: the cache lacks it, or holds it stale */
  int dup;         /* … read by the item before with this cid: this one's conv and ext come from it */
  conv_t *stale;
  int load_rc;
  conv_row_t row;
  int64_t conv; /* as cached or read; -1: unknown */
  int ext;
  int key_rc; /* store_msg_ext_get's; 1: not read */
  int64_t ts, seq;
} key_item_t;

struct keys_read {
  size_t n, max; /* max: what the request can name (an ack 1, a history page 2, a read its tuples and cid) */
  key_item_t *it;
};

typedef struct {
  im_rerun_t x; /* first */
  struct keys_read ans;
} keys_prefetch_t;

int im_keys_absent(const im_worker_t *w, const char *cid) {
  const struct keys_read *k = w->keys_read;
  for (size_t i = 0; k && i < k->n; i++)
    if (k->it[i].load && k->it[i].load_rc == TERN_ENOENT && !strcmp(k->it[i].cid, cid)) return 1;
  return 0;
}

int im_keys_answer(const im_worker_t *w, int64_t conv, const char *mid, int64_t *ts, int64_t *seq) {
  const struct keys_read *k = w->keys_read;
  for (size_t i = 0; k && i < k->n; i++) {
    const key_item_t *a = &k->it[i];
    if (a->conv != conv || !a->mid || strcmp(a->mid, mid) != 0 || a->key_rc == 1) continue;
    if (a->key_rc == 0) {
      *ts = a->ts;
      *seq = a->seq;
      return 1;
    }
    if (a->key_rc == TERN_ENOENT) return 0;
  }
  return -1;
}

static int keys_load(store_reader_t *r, store_read_t *rd) {
  keys_prefetch_t *p = (keys_prefetch_t *)rd;
  for (size_t i = 0; i < p->ans.n; i++) {
    key_item_t *a = &p->ans.it[i];
    if (a->load) {
      a->load_rc = store_conv_load(r, a->cid, &a->row);
      if (a->load_rc == 0) {
        a->conv = a->row.id;
        a->ext = a->row.ext_ids != 0;
      }
    } else if (a->dup) {
      for (size_t j = 0; j < i; j++)
        if (!strcmp(p->ans.it[j].cid, a->cid)) {
          a->conv = p->ans.it[j].conv;
          a->ext = p->ans.it[j].ext;
          break;
        }
    }
    if (a->mid && a->ext && a->conv >= 0) a->key_rc = store_msg_ext_get(r, a->conv, a->mid, &a->ts, &a->seq);
  }
  return 0;
}

static void keys_loaded(task_t *t) {
  keys_prefetch_t *p = (keys_prefetch_t *)t;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  for (size_t i = 0; i < p->ans.n; i++) {
    key_item_t *a = &p->ans.it[i];
    if (!a->load) continue;
    convcache_loaded(w, a->cid, a->stale, a->load_rc, &a->row); /* takes the row */
    a->stale = NULL;
  }
  if (l) {
    if (p->x.rd.result == 0) w->keys_read = &p->ans; /* no reader: nothing was read; read on the loop */
    int code = im_rerun_run(l, &p->x);
    w->keys_read = NULL; /* before the frames behind it run (im_rerun_end) */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  for (size_t i = 0; i < p->ans.n; i++) {
    free(p->ans.it[i].cid);
    free(p->ans.it[i].mid);
  }
  free(p->ans.it);
  free(p);
}

/* Adds (cid, mid) to p: the conversation is read when the cache lacks it, mid's key when
 * the conversation has imported ids. Returns 1 when something is to be read. */
static int keys_add(im_t *im, keys_prefetch_t *p, const char *cid, const char *mid) {
  if (!cid || !*cid || strlen(cid) > 64 || (mid && strlen(mid) > 64) || p->ans.n == p->ans.max) return 0;
  key_item_t *a = &p->ans.it[p->ans.n++];
  a->cid = xstrdup(cid);
  a->mid = mid && *mid ? xstrdup(mid) : NULL;
  a->conv = -1;
  a->key_rc = 1;
  a->load_rc = TERN_ESTORE;
  for (size_t j = 0; j + 1 < p->ans.n; j++)
    if (!strcmp(p->ans.it[j].cid, cid)) {
      a->dup = p->ans.it[j].load || p->ans.it[j].dup;
      if (!a->dup) {
        a->conv = p->ans.it[j].conv;
        a->ext = p->ans.it[j].ext;
      }
      return a->dup || (a->mid && a->ext);
    }
  a->load = convcache_wants_load(im, cid, &a->stale);
  if (a->load) return 1;
  conv_t *c = convcache_peek(im, cid);
  if (c) {
    a->conv = c->id;
    a->ext = atomic_load(&c->ext_ids) != 0;
    conv_release(c);
  }
  return a->mid && a->ext;
}

int im_prefetch_keys(req_t *r) {
  im_worker_t *w = r->w;
  const lc_cmd_t *c = r->cmd;
  int cmd = c->has_cmd ? (int)c->cmd : -1;
  size_t max; /* asked first: every frame comes here, and only these three read ahead */
  if (cmd == LC__COMMAND_TYPE__ack && c->ackmessage && c->ackmessage->mid) max = 1;
  else if (cmd == LC__COMMAND_TYPE__logs && c->logsmessage) max = 2;
  else if (cmd == LC__COMMAND_TYPE__read && c->readmessage)
    max = (c->readmessage->n_convs < KEYS_READ_TUPLES ? c->readmessage->n_convs : KEYS_READ_TUPLES) + 1;
  else return 0;
  if (w->keys_read || !im_rerun_may(r)) return 0; /* keys_read: this is its run again */
  keys_prefetch_t *p = xcalloc(1, sizeof *p);
  p->ans.max = max;
  p->ans.it = xcalloc(max, sizeof *p->ans.it);
  int want = 0;
  if (cmd == LC__COMMAND_TYPE__ack && c->ackmessage && c->ackmessage->mid) {
    want |= keys_add(w->im, p, c->ackmessage->cid, c->ackmessage->mid);
  } else if (cmd == LC__COMMAND_TYPE__logs && c->logsmessage) {
    if (c->logsmessage->mid) want |= keys_add(w->im, p, c->logsmessage->cid, c->logsmessage->mid);
    if (c->logsmessage->tmid) want |= keys_add(w->im, p, c->logsmessage->cid, c->logsmessage->tmid);
  } else if (cmd == LC__COMMAND_TYPE__read && c->readmessage) {
    const Lc__ReadCommand *rm = c->readmessage;
    for (size_t i = 0; i < rm->n_convs && i < KEYS_READ_TUPLES; i++)
      if (rm->convs[i]) want |= keys_add(w->im, p, rm->convs[i]->cid, rm->convs[i]->mid);
    if (rm->cid) want |= keys_add(w->im, p, rm->cid, NULL);
    /* rm->cids (up to 200 more) read their conversations on the loop, as before */
  }
  if (want && im_rerun_submit(r, &p->x, keys_load, keys_loaded, M_KEYS_PREFETCHES) == IM_PARKED) return IM_PARKED;
  for (size_t i = 0; i < p->ans.n; i++) { /* nothing to read, or the read queue is full: on the loop */
    convcache_load_abandoned(p->ans.it[i].stale);
    free(p->ans.it[i].cid);
    free(p->ans.it[i].mid);
  }
  free(p->ans.it);
  free(p);
  return 0;
}
