/* out.h — the outgoing layer as one object: the app's hooks (hooks.h), offline push
 * (push.h), and each worker's HTTP client under both (httpc.h).
 *
 * main.c makes it from the configuration, attaches it to im (im->out: im calls hooks and
 * push only through im_out.h's table, which out_attach fills in), and starts and stops
 * each worker's part on that worker's loop (through net's worker callbacks, wire.c). The
 * REST API above reads it for /metrics and the operator endpoints, and calls the app's
 * user service through out_http. */
#ifndef TERN_OUT_H
#define TERN_OUT_H

#include <uv.h>

#include "buf.h"
#include "hooks.h"
#include "httpc.h"
#include "im_internal.h"
#include "push.h"

typedef struct out {
  hooks_t *hooks;             /* NULL: no hook configured */
  push_hub_t *push;           /* NULL: push_provider is none */
  httpc_t *http[MAX_WORKERS]; /* each worker's outgoing HTTP, on its loop; NULL before its
                               * start and after its stop */
} out_t;

/* Hooks and push from srv's configuration and keys: 0 with *out set, or TERN_ECONFIG after
 * logging what is wrong. Before the workers start; out_free after they have stopped. */
int out_new(const server_t *srv, out_t **out);
void out_free(out_t *o); /* NULL: no-op */
/* Makes o im's hooks and offline push (im->out, im->out_arg). */
void out_attach(out_t *o, im_t *im);
/* o as attached to im, or NULL (a harness without hooks or push). */
out_t *out_of(const im_t *im);
/* The worker's HTTP client (hooks, push, the user service), or NULL. */
httpc_t *out_http(const im_worker_t *w);

/* Worker w's part, made with its loop before the loop runs; and ended on its thread when it
 * stops: pushes waiting for a retry are dead-lettered, requests in flight cancelled. */
void out_worker_start(im_worker_t *w, uv_loop_t *loop);
void out_worker_stop(im_worker_t *w);

/* Prometheus text for /metrics: the hooks' and the push providers' series. o may be NULL. */
void out_metrics(const out_t *o, buf_t *b);

#endif
