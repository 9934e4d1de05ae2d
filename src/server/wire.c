/* wire.c — the network layer's callbacks pointed at the layers above it (see wire.h). */
#include "wire.h"

#include "im.h"
#include "out.h"
#include "rest.h"

/* A worker's IM state, then its outgoing HTTP on the worker's loop (hooks, push). */
static im_worker_t *worker_start(server_t *srv, int idx, uv_loop_t *loop) {
  im_worker_t *w = im_worker_new(srv->im, idx);
  out_worker_start(w, loop);
  im_worker_bus_start(w, loop);
  return w;
}

/* Outgoing HTTP ends, then the bus: the home worker's goodbye leaves the cluster. */
static void worker_stop(im_worker_t *w) {
  out_worker_stop(w);
  im_worker_bus_stop(w);
}

const net_app_t wire_net_app = {
    .worker_start = worker_start,
    .worker_tick = im_worker_tick,
    .worker_sweep = im_worker_sweep,
    .worker_stopping = im_worker_stopping,
    .worker_stop = worker_stop,
    .worker_free = im_worker_free,
    .link_open = im_link_open,
    .link_message = im_link_message,
    .link_gone = im_link_gone,
    .http_head = routes_head,
    .http_request = routes_dispatch,
    .http_done = routes_done,
};
