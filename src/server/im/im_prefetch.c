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
 * read on the loop as before. The run again may park once more for what else it reads
 * (im_prefetch_keys, im_prefetch_cmd, an edit's, a send's dedupe): the link stays paused
 * until that second answer's run (l->loads), else the frames behind it would run first —
 * pipelined conv/updates were merged out of order, and the last value stored was not the
 * last one sent (issue #14, tests/cluster/conv-coalesce.test.mjs).
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
  r->link->loads++; /* a re-run parked again counts twice: its first end leaves the link paused */
  im_link_pause(r->link, IM_PAUSE_LOAD, 1); /* after the submit: its task runs later, on this worker */
  return IM_PARKED;
}

im_link_t *im_rerun_link(im_rerun_t *x, im_worker_t **w) {
  *w = x->im->workers[x->rd.worker];
  return *w ? handle_table_get(&(*w)->links, x->link) : NULL;
}

int im_rerun_run(im_link_t *l, im_rerun_t *x) { return im_link_run(l, x->d, x->n, x->base64, IM_RUN_LOADED); }

void im_rerun_end(im_link_t *l, int code) {
  l->loads--;
  if (code) l->ops->close(l, code, lc_error_name(code));
  else if (!l->loads) im_link_pause(l, IM_PAUSE_LOAD, 0); /* the frames behind it run now */
}

void im_rerun_free(im_rerun_t *x) {
  if (x->ip) ipcount_del(x->im->read_ips, x->ip);
  x->ip = NULL;
  free(x->d);
  x->d = NULL;
}

/* ---- a conversation the cache lacks ---- */

typedef struct {
  im_rerun_t x;       /* first */
  conv_claim_t claim; /* the cached entry being reloaded (or NULL: not cached), and its marks */
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
  convcache_loaded(w, p->cid, &p->claim, p->x.rd.result, &p->row); /* w NULL: the server is stopping */
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
  conv_claim_t claim;
  if (!convcache_wants_load(im, cid, &claim)) return 0;
  prefetch_t *p = xcalloc(1, sizeof *p);
  p->claim = claim;
  p->cid = xstrdup(cid);
  if (im_rerun_submit(r, &p->x, load, loaded, M_CONV_PREFETCHES) == IM_PARKED) return IM_PARKED;
  convcache_load_abandoned(&claim); /* the read queue is full: conv_get reads it on the loop */
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

#define KEYS_READ_TUPLES 200 /* a read's tuples read ahead (its cid besides), and as many of its cids */
#define KEYS_IS_MEMBER 100   /* an is_member's cids, as im_conv_is_member reads them */

typedef struct {
  char *cid, *mid; /* mid: its key is wanted, NULL: only the conversation */
  int load;        /* the conversation is read: the cache lacks it, or holds it stale */
  int dup;         /* … read by the item before with this cid: this one's conv and ext come from it */
  conv_claim_t claim;
  int load_rc;
  conv_row_t row;
  int64_t conv; /* as cached or read; -1: unknown */
  int ext;
  int key_rc; /* store_msg_ext_get's; 1: not read */
  int64_t ts, seq;
} key_item_t;

struct keys_read {
  /* max: what the request can name (an ack 1, a history page 2, a read its tuples, its cid
   * and its cids, an is_member its cids) */
  size_t n, max;
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
    convcache_loaded(w, a->cid, &a->claim, a->load_rc, &a->row); /* takes the row */
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
  a->load = convcache_wants_load(im, cid, &a->claim);
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
  size_t max; /* asked first: every frame comes here, and only these four read ahead */
  if (cmd == LC__COMMAND_TYPE__ack && c->ackmessage && c->ackmessage->mid) max = 1;
  else if (cmd == LC__COMMAND_TYPE__logs && c->logsmessage) max = 2;
  else if (cmd == LC__COMMAND_TYPE__read && c->readmessage) {
    const Lc__ReadCommand *rm = c->readmessage;
    max = (rm->n_convs < KEYS_READ_TUPLES ? rm->n_convs : KEYS_READ_TUPLES) + 1 +
          (rm->n_cids < KEYS_READ_TUPLES ? rm->n_cids : KEYS_READ_TUPLES);
  } else if (cmd == LC__COMMAND_TYPE__conv && c->has_op && c->op == LC__OP_TYPE__is_member && c->convmessage &&
             c->convmessage->n_cids)
    max = c->convmessage->n_cids < KEYS_IS_MEMBER ? c->convmessage->n_cids : KEYS_IS_MEMBER;
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
    for (size_t i = 0; i < rm->n_cids && i < KEYS_READ_TUPLES; i++) want |= keys_add(w->im, p, rm->cids[i], NULL);
  } else if (cmd == LC__COMMAND_TYPE__conv) { /* is_member */
    for (size_t i = 0; i < max; i++) want |= keys_add(w->im, p, c->convmessage->cids[i], NULL);
  }
  if (want && im_rerun_submit(r, &p->x, keys_load, keys_loaded, M_KEYS_PREFETCHES) == IM_PARKED) return IM_PARKED;
  for (size_t i = 0; i < p->ans.n; i++) { /* nothing to read, or the read queue is full: on the loop */
    convcache_load_abandoned(&p->ans.it[i].claim);
    free(p->ans.it[i].cid);
    free(p->ans.it[i].mid);
  }
  free(p->ans.it);
  free(p);
  return 0;
}

/* ---- what a conversation command reads besides its conversation's row ---- */

/* A conv/start with `unique` looks for the conversation the same members made before
 * (store_conv_find_unique) and, when found, reads that twin's row (temp_left, its delete
 * when expired) and its document (the unique id shown: conv_visible_unique_id); a
 * conv/max_read reads its members' progress (store_progress); a conv/update of a
 * conversation cached without its document reads the document (its merge: conv_doc); an
 * add (a join) whether each client it adds blocked the conversation, a client blacklist's
 * check whether the client blocked each conversation named (store_client_blocked), its
 * query a page of them (store_client_blocks); a conv/query its tempConvIds
 * (store_conv_fetch). Any logged-in client makes them once per command: read here, off the
 * loop, and handed to the run again through w->cmd_read (im_cmd_unique, im_cmd_doc,
 * im_cmd_progress, im_cmd_blocked, im_cmd_blocks, im_cmd_temps), as im_prefetch_keys does.
 * An answer that failed is not one: the run again reads it on the loop. */
enum { CMD_UNIQUE = 1, CMD_PROGRESS, CMD_BLOCKED, CMD_BLOCKS, CMD_DOC, CMD_TEMPS };

typedef struct {
  char *client, *cid;
  int rc; /* store_client_blocked's: 1, 0 or <0 */
} blocked_item_t;

struct cmd_read {
  int kind;
  /* CMD_UNIQUE */
  char hex[33];
  int find_rc; /* store_conv_find_unique's */
  char *cid;   /* the twin's */
  int64_t created;
  int load_rc;           /* its row's (store_conv_load), cached by cmd_loaded */
  convcache_mark_t mark; /* before the read: a mark or a set change since, the row is not cached */
  conv_row_t row;
  int64_t twin; /* its row's id */
  int doc_rc;   /* its document's; 1: not read */
  char *doc;
  /* CMD_DOC: the entry whose document is read (referenced), and its doc_gen then */
  conv_t *doc_conv;
  uint64_t doc_gen;
  /* CMD_PROGRESS */
  int64_t conv;
  int progress_rc;
  member_progress_t *p;
  size_t n;
  /* CMD_BLOCKED: whether each client blocked its conversation (a join's, an add's clients;
   * a client blacklist's check) */
  blocked_item_t *b;
  size_t nb;
  /* CMD_BLOCKS: a page of the conversations a client blocked (its blacklist's query) */
  char *client, *after;
  int limit, blocks_rc;
  char **got;
  size_t ngot;
  /* CMD_TEMPS: a conv/query's temporary conversations (tempConvIds, up to 1,000) */
  char **temps;
  size_t ntemps;
  int flags, temps_rc;
  json_t *arr;
};

typedef struct {
  im_rerun_t x; /* first */
  struct cmd_read ans;
} cmd_prefetch_t;

static void take_progress(void *arg, const member_progress_t *mp) {
  struct cmd_read *a = arg;
  a->p = xrealloc(a->p, (a->n + 1) * sizeof *a->p);
  a->p[a->n] = *mp;
  a->p[a->n++].client = xstrdup(mp->client);
}

static void take_block(void *arg, const char *cid) {
  struct cmd_read *a = arg;
  a->got = xrealloc(a->got, (a->ngot + 1) * sizeof *a->got);
  a->got[a->ngot++] = xstrdup(cid);
}

static int cmd_load(store_reader_t *r, store_read_t *rd) {
  struct cmd_read *a = &((cmd_prefetch_t *)rd)->ans;
  if (a->kind == CMD_BLOCKED) {
    for (size_t i = 0; i < a->nb; i++) a->b[i].rc = store_client_blocked(r, a->b[i].client, a->b[i].cid);
    return 0;
  }
  if (a->kind == CMD_TEMPS) {
    a->arr = json_array(); /* built here, handed whole to the worker */
    a->temps_rc = store_conv_fetch(r, (const char *const *)a->temps, a->ntemps, a->flags, conv_view_append, a->arr);
    return 0;
  }
  if (a->kind == CMD_DOC) {
    a->doc_rc = store_conv_doc(r, a->twin, &a->doc);
    return 0;
  }
  if (a->kind == CMD_BLOCKS) {
    a->blocks_rc = store_client_blocks(r, a->client, a->after, a->limit, take_block, a);
    return 0;
  }
  if (a->kind == CMD_PROGRESS) {
    a->progress_rc = store_progress(r, a->conv, take_progress, a);
    return 0;
  }
  a->find_rc = store_conv_find_unique(r, a->hex, &a->cid, &a->created);
  if (a->find_rc != 0) return 0;
  a->load_rc = store_conv_load(r, a->cid, &a->row);
  if (a->load_rc == 0) {
    a->twin = a->row.id;
    a->doc_rc = store_conv_doc(r, a->twin, &a->doc);
  }
  return 0;
}

static void cmd_free(struct cmd_read *a) {
  if (a->doc_conv) conv_release(a->doc_conv);
  free(a->cid);
  free(a->doc);
  for (size_t i = 0; i < a->n; i++) free((char *)a->p[i].client);
  free(a->p);
  for (size_t i = 0; i < a->nb; i++) {
    free(a->b[i].client);
    free(a->b[i].cid);
  }
  free(a->b);
  free(a->client);
  free(a->after);
  for (size_t i = 0; i < a->ngot; i++) free(a->got[i]);
  free(a->got);
  for (size_t i = 0; i < a->ntemps; i++) free(a->temps[i]);
  free(a->temps);
  json_decref(a->arr);
}

static void blocked_add(struct cmd_read *a, const char *client, const char *cid) {
  if (!client || !cid || !*client || !*cid || strlen(client) > 64 || strlen(cid) > 64) return;
  a->b = xrealloc(a->b, (a->nb + 1) * sizeof *a->b);
  a->b[a->nb++] = (blocked_item_t){.client = xstrdup(client), .cid = xstrdup(cid), .rc = TERN_ESTORE};
}

/* A join's or an add's clients that conv_join_refused would look up: not members already,
 * not blocked by the conversation itself (cid is cached: im_prefetch read it). */
static void blocked_join(im_worker_t *w, const req_t *r, const Lc__ConvCommand *cm, struct cmd_read *a) {
  if ((long)cm->n_m > w->im->cfg->max_members) return; /* refused whole (too_many_ids) */
  conv_t *c = convcache_peek(w->im, cm->cid);
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  size_t n = cm->n_m ? cm->n_m : 1; /* none: a chat room's join, oneself */
  for (size_t i = 0; i < n; i++) {
    const char *id = cm->n_m ? cm->m[i] : r->s->client_id;
    if (members_has(c->members, id) || members_has(c->sets[SET_BLOCK], id)) continue;
    int dup = 0;
    for (size_t k = 0; k < a->nb && !dup; k++) dup = !strcmp(a->b[k].client, id);
    if (!dup) blocked_add(a, id, c->cid);
  }
  pthread_mutex_unlock(&c->mu);
  conv_release(c);
}

static void cmd_loaded(task_t *t) {
  cmd_prefetch_t *p = (cmd_prefetch_t *)t;
  struct cmd_read *a = &p->ans;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  if (p->x.rd.result < 0) { /* no reader: nothing was read; the run again reads on the loop */
    a->find_rc = a->progress_rc = a->blocks_rc = a->temps_rc = TERN_ESTORE;
    a->load_rc = TERN_ESTORE; /* doc_rc stays 1, the blocked items' rc TERN_ESTORE */
  }
  if (a->kind == CMD_UNIQUE && a->find_rc == 0 && (a->load_rc == 0 || a->load_rc == TERN_ENOENT)) {
    /* the twin, cached as conv_get would have (unless cached meanwhile). Read before the
     * load was asked for (the twin's cid came with the read): a reload applying it must
     * not count only marks and changes from now on, so one since the read was submitted
     * leaves the row unused (conv_get reads it again) */
    conv_claim_t claim;
    if (w && convcache_wants_load_since(w->im, a->cid, &claim, &a->mark)) {
      convcache_loaded(w, a->cid, &claim, a->load_rc, &a->row); /* takes the row */
      memset(&a->row, 0, sizeof a->row);
    }
  }
  if (a->load_rc == 0) conv_row_free(&a->row);
  if (l) {
    w->cmd_read = a;
    int code = im_rerun_run(l, &p->x);
    w->cmd_read = NULL; /* before the frames behind it run (im_rerun_end): the answers are this request's */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  cmd_free(a);
  free(p);
}

int im_prefetch_cmd(req_t *r) {
  im_worker_t *w = r->w;
  if (w->cmd_read || !im_rerun_may(r)) return 0; /* cmd_read: this is its run again */
  const lc_cmd_t *c = r->cmd;
  const Lc__ConvCommand *cm = c->convmessage;
  const Lc__BlacklistCommand *bm = c->blacklistmessage;
  if (!c->has_cmd || !c->has_op || !r->s) return 0;
  if (c->cmd == LC__COMMAND_TYPE__blacklist) {
    if (!bm || !bm->srcpid || bm->srccid || strcmp(bm->srcpid, r->s->client_id) != 0) return 0;
    if (c->op == LC__OP_TYPE__block || c->op == LC__OP_TYPE__unblock) return 0; /* store jobs */
  } else if (c->cmd != LC__COMMAND_TYPE__conv || !cm) {
    return 0;
  }
  cmd_prefetch_t *p = xcalloc(1, sizeof *p);
  struct cmd_read *a = &p->ans;
  a->doc_rc = 1;
  if (c->cmd == LC__COMMAND_TYPE__blacklist && c->op == LC__OP_TYPE__query) { /* as client_blacklist pages it */
    a->kind = CMD_BLOCKS;
    a->client = xstrdup(r->s->client_id);
    a->after = bm->next ? xstrdup(bm->next) : NULL;
    a->limit = (bm->has_limit && bm->limit > 0 ? (bm->limit > 100 ? 100 : bm->limit) : 10) + 1;
  } else if (c->cmd == LC__COMMAND_TYPE__blacklist) { /* a check: up to 100 conversations */
    a->kind = CMD_BLOCKED;
    for (size_t i = 0; i < bm->n_tocids && i < 100; i++) blocked_add(a, r->s->client_id, bm->tocids[i]);
    if (!a->nb) a->kind = 0;
  } else if (c->op == LC__OP_TYPE__query && cm->n_tempconvids) { /* as im_conv_query fetches them */
    a->kind = CMD_TEMPS;
    a->ntemps = cm->n_tempconvids > 1000 ? 1000 : cm->n_tempconvids;
    a->temps = xcalloc(a->ntemps, sizeof *a->temps);
    for (size_t i = 0; i < a->ntemps; i++) a->temps[i] = xstrdup(cm->tempconvids[i] ? cm->tempconvids[i] : "");
    a->flags = cm->has_flag ? cm->flag & 3 : 0;
  } else if (c->op == LC__OP_TYPE__update && cm->cid) { /* its merge, when the cache holds the row only */
    conv_t *cv = convcache_peek(w->im, cm->cid);
    if (cv) {
      pthread_mutex_lock(&cv->mu);
      if (!cv->doc) { /* none of this node's changes of it is waiting in the writer (doc_writes) */
        a->kind = CMD_DOC;
        a->twin = cv->id;
        a->doc_gen = cv->doc_gen;
        a->doc_conv = cv; /* the reference: compared with the run again's entry */
      }
      pthread_mutex_unlock(&cv->mu);
      if (!a->doc_conv) conv_release(cv);
    }
  } else if (c->op == LC__OP_TYPE__add && cm->cid) {
    a->kind = CMD_BLOCKED;
    blocked_join(w, r, cm, a);
    if (!a->nb) a->kind = 0;
  } else if (c->op == LC__OP_TYPE__start && cm->has_unique && cm->unique && !(cm->has_transient && cm->transient) &&
             (long)cm->n_m <= w->im->cfg->max_members) {
    /* the unique id as im_conv_start makes it: the members listed and the creator, sorted */
    char **listed = xcalloc(cm->n_m + 1, sizeof(char *));
    for (size_t i = 0; i < cm->n_m; i++) listed[i] = cm->m[i] ? cm->m[i] : "";
    listed[cm->n_m] = r->s->client_id;
    members_t *m = members_new(listed, cm->n_m + 1);
    free(listed);
    conv_unique_id(m->ids, m->n, cm->has_tempconv && cm->tempconv, a->hex);
    members_release(m);
    a->kind = CMD_UNIQUE;
    convcache_mark_now(w->im, &a->mark); /* before the read is submitted */
  } else if (c->op == LC__OP_TYPE__max_read && cm->cid) {
    conv_t *cv = convcache_peek(w->im, cm->cid); /* read ahead by im_prefetch; not cached: not found */
    if (cv) {
      members_t *m = conv_members(cv);
      if (members_has(m, r->s->client_id)) { /* a non-member is refused without it */
        a->kind = CMD_PROGRESS;
        a->conv = cv->id;
      }
      members_release(m);
      conv_release(cv);
    }
  }
  if (a->kind && im_rerun_submit(r, &p->x, cmd_load, cmd_loaded, M_CMD_PREFETCHES) == IM_PARKED) return IM_PARKED;
  cmd_free(a); /* nothing to read, or the read queue is full: on the loop */
  free(p);
  return 0;
}

int im_cmd_blocked(const im_worker_t *w, const char *client, const char *cid) {
  const struct cmd_read *a = w->cmd_read;
  for (size_t i = 0; a && a->kind == CMD_BLOCKED && i < a->nb; i++)
    if (!strcmp(a->b[i].client, client) && !strcmp(a->b[i].cid, cid)) return a->b[i].rc < 0 ? -2 : a->b[i].rc;
  return -2;
}

int im_cmd_blocks(const im_worker_t *w, const char *client, const char *after, int limit,
                  void (*cb)(void *arg, const char *cid), void *arg) {
  const struct cmd_read *a = w->cmd_read;
  if (!a || a->kind != CMD_BLOCKS || a->blocks_rc < 0 || a->limit != limit || strcmp(a->client, client) != 0 ||
      !a->after != !after || (after && strcmp(a->after, after) != 0))
    return 1;
  for (size_t i = 0; i < a->ngot; i++) cb(arg, a->got[i]);
  return 0;
}

json_t *im_cmd_temps(const im_worker_t *w, size_t n, int flags) {
  const struct cmd_read *a = w->cmd_read;
  if (!a || a->kind != CMD_TEMPS || a->ntemps != n || a->flags != flags || a->temps_rc < 0 || !a->arr) return NULL;
  return json_incref(a->arr);
}

int im_cmd_unique(const im_worker_t *w, const char *hex, char **cid, int64_t *created) {
  const struct cmd_read *a = w->cmd_read;
  if (!a || a->kind != CMD_UNIQUE || strcmp(a->hex, hex) != 0 || (a->find_rc < 0 && a->find_rc != TERN_ENOENT))
    return 1;
  if (a->find_rc == 0) {
    *cid = xstrdup(a->cid);
    *created = a->created;
  }
  return a->find_rc;
}

int im_cmd_doc(const im_worker_t *w, const conv_t *c, char **text) {
  const struct cmd_read *a = w->cmd_read;
  if (!a || (a->kind != CMD_UNIQUE && a->kind != CMD_DOC) || a->twin != c->id || a->doc_rc != 0) return 1;
  /* an update's: read before a change of this node was queued (another connection's, the
   * document since dropped), or for an entry since replaced, it may lack it: read again */
  if (a->kind == CMD_DOC && (a->doc_conv != c || a->doc_gen != c->doc_gen)) return 1;
  *text = a->doc ? xstrdup(a->doc) : NULL;
  return 0;
}

int im_cmd_progress(const im_worker_t *w, int64_t conv, progress_cb cb, void *arg) {
  const struct cmd_read *a = w->cmd_read;
  if (!a || a->kind != CMD_PROGRESS || a->conv != conv || a->progress_rc < 0) return 1;
  for (size_t i = 0; i < a->n; i++) cb(arg, &a->p[i]);
  return 0;
}
