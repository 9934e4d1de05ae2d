/* im.h — the IM domain as the network layer sees it.
 *
 * The network layer hands im whole WebSocket messages through an im_link_t and gets
 * frames back through the link's ops; im never touches a socket (style rule 16), so the
 * unit tests and fuzzers drive it with a fake link. Everything here runs on the thread of
 * the worker that owns the link. */
#ifndef TERN_IM_H
#define TERN_IM_H

#include <stddef.h>
#include <stdint.h>

#include "bucket.h"

#include "server.h"

typedef struct im_link im_link_t;
typedef struct im_worker im_worker_t;
typedef struct session session_t;

typedef struct {
  /* Queue one GenericCommand for the peer: prefix bytes then body bytes (both already
   * protobuf; prefix may be empty). The link frames it in its negotiated format. */
  void (*send)(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen);
  /* Close the connection with a WebSocket close code (4xxx from err.h or 1000). */
  void (*close)(im_link_t *l, int code, const char *reason);
  /* Bytes queued to the peer and not yet written: how congested the link is. */
  size_t (*queued)(im_link_t *l);
} im_link_ops_t;


struct im_link {
  const im_link_ops_t *ops;
  im_worker_t *imw;
  uint64_t id;              /* handle in the worker's link table */
  const char *ip;           /* peer address, for hooks and limits */
  uint8_t proto_version;    /* 1 = push offline messages, 3 = unread notifications */
  uint8_t nsessions;
  uint8_t base64;           /* lc.proto2base64.* framing (metrics by protocol) */
  session_t *sessions;      /* in open order; the first is the default peer (protocol.md §1.6) */
  int64_t last_rx_ms;
  int64_t sessionless_since_ms; /* when the socket last had no session (login timeout) */
  bucket_t rate;                /* commands per second on this connection */
  uint16_t queries;             /* conversation queries running for it (im_conv.c) */
};

im_t *im_new(server_t *srv);
void im_free(im_t *im);
im_worker_t *im_worker_new(im_t *im, int idx);
void im_worker_free(im_worker_t *w);
/* Called once per worker loop iteration before the loop sleeps (flushes batched work). */
void im_worker_tick(im_worker_t *w);
/* Called every second by each worker: background expiry (only worker 0 acts). */
void im_worker_sweep(im_worker_t *w, int64_t now);

void im_link_open(im_link_t *l, im_worker_t *w, const im_link_ops_t *ops, int proto_version, const char *ip);
/* One complete WebSocket message. Returns 0, or a close code (4114 for undecodable bytes)
 * that the caller must close the connection with. */
int im_link_message(im_link_t *l, const uint8_t *p, size_t n, int base64);
/* The connection is gone (code = why: 1000/1006/4107/...). Drops its sessions. */
void im_link_gone(im_link_t *l, int code);

#endif
