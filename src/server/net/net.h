/* net.h — what the network layer calls above it.
 *
 * net owns sockets, worker loops and the HTTP and WebSocket parsers, and knows nothing of
 * what requests mean: whole WebSocket messages go to the IM layer over the link (link.h),
 * whole HTTP requests to the route table, and each worker's per-loop work above net (IM's
 * tick and sweep, outgoing HTTP) is started and stopped through the same table. main.c
 * sets srv->net_app before server_start (the table is wire.c's); net never includes a
 * header of im, out or api, and the build gives it none of their include directories.
 *
 * Every callback runs on the worker's own thread, except worker_start and worker_free,
 * which run on the thread that calls server_start and server_free before the worker's
 * loop runs and after it has ended. */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "link.h"
#include "server.h"

typedef struct conn conn_t;
typedef struct http_req http_req_t;

typedef struct net_app {
  /* Worker idx is being made, with its loop: the layers above make their part of it, which
   * net keeps (worker_t.imw) and hands back to the calls below and to link_open. */
  im_worker_t *(*worker_start)(server_t *srv, int idx, uv_loop_t *loop);
  /* Once per loop iteration, before output is flushed and the loop sleeps. */
  void (*worker_tick)(im_worker_t *w);
  /* Every second (timeouts, expiry). */
  void (*worker_sweep)(im_worker_t *w, int64_t now);
  /* The worker begins stopping, its connections closing (what is written to them now is
   * still sent, nothing more is read): answer what would otherwise never be (the app's
   * kicks under way). May be NULL. */
  void (*worker_stopping)(im_worker_t *w);
  /* The worker is stopping, its connections already closed: end outgoing work (requests
   * in flight, retries waiting) while the loop still runs. */
  void (*worker_stop)(im_worker_t *w);
  /* After the loop ended and its leftover tasks ran. */
  void (*worker_free)(im_worker_t *w);
  /* A WebSocket connection is upgraded (link_open), has a whole message (link_message:
   * 0, or a close code to close it with), is gone (link_gone, with why). */
  void (*link_open)(im_link_t *l, im_worker_t *w, const im_link_ops_t *ops, int proto_version, const char *ip);
  int (*link_message)(im_link_t *l, const uint8_t *p, size_t n, int base64);
  void (*link_gone)(im_link_t *l, int code);
  /* An HTTP request's head is in (not for WebSocket upgrades): decide what it may do and
   * return the largest body it may carry (the route table's routes_head). */
  size_t (*http_head)(conn_t *c, http_req_t *r);
  /* The whole request is in: answer it, now or later (http_defer). */
  void (*http_request)(conn_t *c, http_req_t *r);
  /* An answered request ends (r->status set; r->t0_ns when it began): the access log and
   * the per-route counts. May be NULL. */
  void (*http_done)(conn_t *c, const http_req_t *r);
} net_app_t;

#endif
