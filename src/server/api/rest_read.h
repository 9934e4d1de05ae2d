/* rest_read.h — a REST handler's store reads, off the worker's loop.
 *
 * On PostgreSQL a store read is a network round trip, and it takes as long as the database
 * makes it wait (a locked row or table: up to statement_timeout). Made on the worker's
 * loop it holds every connection of that worker — every chat — for that long, so a REST
 * route anyone with the app key (and a session token) may call at will must not read there.
 * A handler puts its reads in fn and its answer in answer, and calls rest_read_run: on
 * PostgreSQL (store_reads_off_loop) the reads go to the store's read threads
 * (store_read_submit), the request is deferred (http_defer: the connection reads nothing
 * more until it is answered, so one connection has at most one read in flight), and answer
 * runs on the worker with what fn read. On SQLite, whose reads are local and cheap, fn runs
 * at once on the worker's own reader, then answer, as the handler did before.
 *
 * Limits, as for history pages (im_internal.h): at most MAX_IP_READS reads in flight per
 * client address (shared with the WebSocket's, im->read_ips; past it 429 "too many reads
 * from this address"), and the read queue's STORE_READ_QUEUE_MAX server-wide (past it 503
 * "server busy: too many reads waiting"). Refused, never read on the loop instead.
 *
 * An AUTH_CLIENT route's session token (rest.h), on a row with token_read, is checked in
 * two parts on PostgreSQL: what
 * needs no store from the head (rest_authorize: sealed for the client, unexpired, no
 * revocation held in memory), and the store's revocations here, read with fn's reads off
 * the loop (revoke_read) and checked on the worker before answer runs (revoke_check_read:
 * a revocation committed meanwhile is seen). A token found revoked is answered 401 as
 * from the head, and answer does not run. So the handler of a row with token_read must
 * call rest_read_run (for its reads, or with none) before it answers anything but a
 * refusal. */
#ifndef TERN_REST_READ_H
#define TERN_REST_READ_H

#include "http.h"
#include "im_internal.h"
#include "revoke.h"
#include "store.h"

typedef struct rest_read rest_read_t;
struct rest_read {
  store_read_t rd; /* first; rest_read_run's. rd.result is fn's return when answer runs */
  /* the handler's, set before rest_read_run: */
  int (*fn)(store_reader_t *r, rest_read_t *x);                   /* the reads; any thread, touches only x */
  void (*answer)(conn_t *c, const http_req_t *r, rest_read_t *x); /* on the worker: answers r, or hands
                                                                   * it on to work that answers later
                                                                   * (rest_wait: a write's commit) */
  void (*free)(rest_read_t *x);                                   /* frees x, answered or not */
  /* rest_read_run's: */
  worker_t *w;
  uint64_t conn;
  im_t *im;
  struct ipcount_entry *ip; /* holds one of its address's MAX_IP_READS */
  int token;                /* the session token's store check is made here (r->auth_pending) */
  char *client;             /* … for this client */
  token_info_t info;        /* … and this token (its tag freed) */
  revoke_read_t tok;
};

/* Runs x's reads and answers r with x->answer (see above); x is then freed with x->free.
 * Call from r's handler, as its last act: the request may be answered before it returns. */
void rest_read_run(conn_t *c, const http_req_t *r, rest_read_t *x);

#endif
