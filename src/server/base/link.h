/* link.h — the one interface between the network layer (net/) and the IM layer (im/).
 *
 * net owns sockets, loops and the WebSocket framing; im owns sessions and never touches a
 * socket (style rule 16). Neither includes a header of the other (the build gives neither
 * the other's include directory): they meet here, and main.c connects them (wire.c).
 *
 * An im_link_t is the IM view of one WebSocket connection. net embeds it in its
 * connection, opens it after the upgrade, hands it every whole message and says when it is
 * gone — through the callbacks of net.h, which point at im_link_open, im_link_message and
 * im_link_gone (im.h). im answers through link->ops, which net implements: frames go out
 * in the connection's negotiated format. Everything runs on the thread of the worker that
 * owns the connection. */
#ifndef TERN_LINK_H
#define TERN_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "bucket.h"

typedef struct im_link im_link_t;
typedef struct im_worker im_worker_t; /* the IM layer's part of one worker (opaque to net) */
typedef struct session session_t;     /* a login on the link (opaque to net) */

typedef struct {
  /* Queue one GenericCommand for the peer: prefix bytes then body bytes (both already
   * protobuf; prefix may be empty). The link frames it in its negotiated format. */
  void (*send)(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen);
  /* Close the connection with a WebSocket close code (4xxx from err.h or 1000). */
  void (*close)(im_link_t *l, int code, const char *reason);
  /* Bytes queued to the peer and not yet written: how congested the link is. */
  size_t (*queued)(im_link_t *l);
  /* l->held changed (im_hold.c): net counts those bytes with the connection's queue in its
   * per-address and per-server output budgets (output_limit_ip, output_limit_total), from
   * now on, and past a budget drops the largest queues as for socket output. It only marks
   * connections for closing, so it may be called in any send's call stack. NULL: nothing
   * is counted (test harnesses). */
  void (*held)(im_link_t *l);
  /* Stop reading the peer's frames (on = 1: the frames already received wait, unread ones
   * stay in the socket, so TCP pushes back on the peer), or read again (on = 0: the ones
   * waiting are handled first). Inside im_link_message only to pause: the frames after
   * the one being handled wait. NULL: the link is never paused (test harnesses). */
  void (*pause)(im_link_t *l, int on);
} im_link_ops_t;

/* net reads nsessions and sessionless_since_ms (the login timeout), held (the output
 * budgets) and paused (a paused link's frames wait: ops->pause), and keeps last_rx_ms and base64; the other fields are the IM layer's. */
struct im_link {
  const im_link_ops_t *ops;
  im_worker_t *imw;
  uint64_t id;           /* handle in the worker's link table */
  const char *ip;        /* peer address, for hooks and limits */
  uint8_t proto_version; /* 1 = push offline messages, 3 = unread notifications */
  uint8_t nsessions;
  uint8_t base64;      /* lc.proto2base64.* framing (metrics by protocol) */
  session_t *sessions; /* in open order; the first is the default peer (protocol.md §1.6) */
  int64_t last_rx_ms;
  int64_t sessionless_since_ms; /* when the socket last had no session (login timeout) */
  bucket_t rate;                /* commands per second on this connection */
  uint16_t queries;             /* conversation queries running for it (im_conv.c) */
  uint16_t reads;               /* history reads running for it off the loop (im_msg.c) */
  struct im_park *park;         /* in a cluster: frames held while a nonce is asked of the bus (im_bus.c) */
  struct im_hold *hold;         /* output held: for a presence change (cluster) or a login's counts (im_hold.c) */
  size_t held;                  /* bytes the hold keeps from the peer now (0 without one); see ops->held */
  uint16_t room_acks;           /* chat-room acks waiting for the other workers' fan-out (im_msg.c) */
  uint8_t paused;               /* why ops->pause(l, 1) is in force (IM_PAUSE_*), 0: it is not */
  uint8_t loads;                /* reads off the loop a request of it waits for (im_prefetch.c): IM_PAUSE_LOAD
                                 * stays until the last is done */
  uint8_t replaying;            /* frames a bus park held are being run (im_bus.c, park_resume) */
};

#endif
