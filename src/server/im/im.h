/* im.h — the IM layer's entry points: what main.c makes, and what it wires into the
 * network layer's callbacks (net.h, wire.c).
 *
 * The network layer hands im whole WebSocket messages through an im_link_t (link.h) and
 * gets frames back through the link's ops; im never touches a socket (style rule 16), so
 * the unit tests and fuzzers drive it with a fake link. Everything but im_new and im_free
 * runs on the thread of the worker that owns the link. */
#ifndef TERN_IM_H
#define TERN_IM_H

#include <uv.h>

#include "link.h"
#include "server.h"

im_t *im_new(server_t *srv);
void im_free(im_t *im);
im_worker_t *im_worker_new(im_t *im, int idx);
void im_worker_free(im_worker_t *w);
/* The worker's part of the bus (im_bus.c), on its loop; no-ops without a bus. */
void im_worker_bus_start(im_worker_t *w, uv_loop_t *loop);
void im_worker_bus_stop(im_worker_t *w);
/* The worker begins stopping, its connections closing but still written: what it must
 * still answer (the app's kicks under way) is answered now (im_session_kicks_stopping). */
void im_worker_stopping(im_worker_t *w);
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
