/* rest_read.c — a REST handler's store reads, off the worker's loop (rest_read.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ipcount.h"
#include "rest.h"
#include "rest_read.h"
#include "token.h"
#include "worker.h"

static void read_free(rest_read_t *x) {
  if (x->ip) ipcount_del(x->im->read_ips, x->ip);
  free(x->client);
  x->free(x);
}

/* The token's revocations, then the handler's reads, with one reader of a read thread. */
static int reads(store_reader_t *r, store_read_t *rd) {
  rest_read_t *x = (rest_read_t *)rd;
  if (x->token) revoke_read(r, &x->tok);
  return x->fn(r, x);
}

static void token_refused(conn_t *c, const http_req_t *r) {
  http_respond_error(c, r, 401, LC_SESSION_TOKEN_EXPIRED,
                     "SESSION_TOKEN_EXPIRED: the session token is not a live one of this client.");
}

/* On the worker: the reads are done (or were refused a reader: rd.result TERN_ESTORE). */
static void read_done(task_t *t) {
  rest_read_t *x = (rest_read_t *)t;
  conn_t *c;
  const http_req_t *r = http_deferred_find(x->w, x->conn, &c);
  if (r) {
    /* no reader (rd.result < 0, tok.rc still TERN_ESTORE): refused, as a failed read is */
    if (x->token && revoke_check_read(c->w->imw, x->client, &x->info, &x->tok) < 0) token_refused(c, r);
    else x->answer(c, r, x);
    if (r->status) http_resume(c); /* answered; else answer handed it on (rest_wait: after a commit) */
  }
  read_free(x);
}

void rest_read_run(conn_t *c, const http_req_t *r, rest_read_t *x) {
  im_worker_t *w = c->w->imw;
  x->w = c->w;
  x->conn = c->id;
  x->im = w->im;
  if (!store_reads_off_loop(x->im->store)) { /* SQLite: at once, on the worker's reader, as before */
    x->rd.result = x->fn(w->reader, x);
    x->answer(c, r, x);
    read_free(x);
    return;
  }
  if (r->auth_pending) { /* the store's part of an AUTH_CLIENT check (rest_authorize) */
    const char *st = http_header(r, "X-LC-IM-Session-Token");
    x->client = rest_auth_client(r);
    if (!x->client || !st || token_check(w->im->master_key, w->im->app_id, x->client, st, &x->info) < 0) {
      token_refused(c, r); /* it expired since the head */
      read_free(x);
      return;
    }
    free(x->info.tag);
    x->info.tag = NULL;
    x->token = 1;
    revoke_read_start(w, x->client, &x->info, &x->tok);
  }
  x->ip = ipcount_add(x->im->read_ips, c->ip, MAX_IP_READS);
  if (!x->ip) {
    http_respond_error(c, r, 429, 429, "too many reads from this address");
    read_free(x);
    return;
  }
  x->rd.task.fn = read_done;
  x->rd.worker = c->w->idx;
  x->rd.fn = reads;
  if (store_read_submit(x->im->store, w->reader, &x->rd) < 0) {
    http_respond_error(c, r, 503, 503, "server busy: too many reads waiting");
    read_free(x);
    return;
  }
  http_defer(c);
}
