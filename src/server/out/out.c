/* out.c — the outgoing layer's object (out.h) and the table through which im calls it
 * (im_out.h). */
#include "out.h"

#include <stdlib.h>

#include "err.h"

static int out_hook_enabled(const im_t *im, hook_t which) {
  out_t *o = out_of(im);
  return o && hook_enabled(o->hooks, which);
}

static int out_push_enabled(const im_t *im) {
  out_t *o = out_of(im);
  return o && o->push;
}

static const im_out_t out_ops = {
    .hook_enabled = out_hook_enabled,
    .hook_call = hook_call,
    .push_enabled = out_push_enabled,
    .push_offline = push_offline,
};

int out_new(const server_t *srv, out_t **out) {
  const tern_config_t *cfg = srv->cfg;
  out_t *o = xcalloc(1, sizeof *o);
  o->hooks = hooks_new(cfg->hook_url, srv->app_id, srv->app_key, cfg->hook_key, cfg->hooks, cfg->hook_timeout,
                       cfg->hook_fail_closed);
  int rc = push_hub_new(cfg, &o->push);
  if (rc < 0) {
    out_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

void out_free(out_t *o) {
  if (!o) return;
  push_hub_free(o->push);
  hooks_free(o->hooks);
  free(o);
}

void out_attach(out_t *o, im_t *im) {
  im->out = &out_ops;
  im->out_arg = o;
}

out_t *out_of(const im_t *im) { return im && im->out == &out_ops ? im->out_arg : NULL; }

httpc_t *out_http(const im_worker_t *w) {
  out_t *o = out_of(w->im);
  return o ? o->http[w->idx] : NULL;
}

void out_worker_start(im_worker_t *w, uv_loop_t *loop) {
  out_t *o = out_of(w->im);
  if (o) o->http[w->idx] = httpc_new(loop);
}

void out_worker_stop(im_worker_t *w) {
  out_t *o = out_of(w->im);
  if (!o) return;
  push_worker_stop(w);          /* pushes waiting for a retry go to the dead-letter log */
  httpc_close(o->http[w->idx]); /* cancels hook and push calls in flight */
  o->http[w->idx] = NULL;
}

void out_metrics(const out_t *o, buf_t *b) {
  if (!o) return;
  hooks_metrics(o->hooks, b);
  push_metrics(o->push, b);
}
