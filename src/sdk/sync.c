/* sync.c — the blocking layer: a tern_t on a private libuv loop, and calls that start an
 * operation and run that loop until its callback fired.
 *
 * Nothing here knows the protocol; each tern_sync_* is the async call plus a completion
 * record on the stack. The loop is private so that blocking never steals another loop's
 * events, and it is closed by tern_free() through the adapter's cleanup hook. */
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "internal.h"
#include "tern/sync.h"
#include "tern/uv.h"

typedef struct {
  uv_loop_t loop;
  uv_timer_t tmo;
  uv_timer_t tick; /* notices a caller's flag set by a callback that did not stop the loop */
  const int *flag;
  uint64_t deadline; /* uv_now() of the running wait's end; 0 = none */
  int fired;
} sync_t;

/* uv_stop(): a callback that ran in the timer phase must not leave uv_run(UV_RUN_ONCE)
 * blocking in poll until some later event; stopping makes its poll timeout zero. */
static void on_tmo(uv_timer_t *h) {
  ((sync_t *)h->data)->fired = 1;
  uv_stop(h->loop);
}

/* Called by tern_free() after the adapter's cleanup: finish the closes, drop the loop. */
static void sync_free(tern_t *t) {
  sync_t *s = t->sync;
  uv_close((uv_handle_t *)&s->tmo, NULL);
  uv_close((uv_handle_t *)&s->tick, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  uv_loop_close(&s->loop);
  free(s);
  t->sync = NULL;
}

tern_t *tern_sync_new(const tern_options_t *o) {
  tern_t *t = tern_new(o);
  if (!t) return NULL;
  sync_t *s = calloc(1, sizeof *s);
  if (!s || uv_loop_init(&s->loop) != 0) {
    free(s);
    tern_free(t);
    return NULL;
  }
  uv_timer_init(&s->loop, &s->tmo);
  s->tmo.data = s;
  uv_timer_init(&s->loop, &s->tick);
  s->tick.data = s;
  if (tern_uv_attach(t, &s->loop) < 0) {
    uv_close((uv_handle_t *)&s->tmo, NULL);
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    free(s);
    tern_free(t);
    return NULL;
  }
  t->sync = s;
  t->sync_free = sync_free;
  return t;
}

static void on_tick(uv_timer_t *h) {
  sync_t *s = h->data;
  if (s->flag && *s->flag) uv_stop(h->loop);
}

int tern_sync_until(tern_t *t, const int *flag, int timeout_ms) {
  if (!t || !t->sync) return TERN_EINVAL;
  sync_t *s = t->sync;
  /* a callback may block again (nested waits): keep the outer wait's flag and deadline */
  const int *outer = s->flag;
  uint64_t outer_deadline = s->deadline;
  s->fired = 0;
  s->flag = flag;
  uv_update_time(&s->loop);
  s->deadline = uv_now(&s->loop) + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
  uv_timer_start(&s->tmo, on_tmo, timeout_ms < 0 ? 0 : (uint64_t)timeout_ms, 0);
  if (flag) uv_timer_start(&s->tick, on_tick, 10, 10);
  while (!(flag && *flag) && !s->fired) uv_run(&s->loop, UV_RUN_ONCE);
  uv_timer_stop(&s->tmo);
  uv_timer_stop(&s->tick);
  s->flag = outer;
  s->deadline = outer_deadline;
  if (outer) uv_timer_start(&s->tick, on_tick, 10, 10);
  if (outer_deadline) {
    uint64_t now = uv_now(&s->loop);
    uv_timer_start(&s->tmo, on_tmo, outer_deadline > now ? outer_deadline - now : 0, 0);
  }
  s->fired = 0;
  if (flag && !*flag) return TERN_ETIMEDOUT;
  return 0;
}

int tern_sync_wait(tern_t *t, int timeout_ms) {
  if (!t || !t->sync) return TERN_EINVAL;
  if (timeout_ms <= 0) {
    uv_run(&((sync_t *)t->sync)->loop, UV_RUN_NOWAIT);
    return 0;
  }
  tern_sync_until(t, NULL, timeout_ms);
  return 0;
}

typedef struct {
  tern_t *t;
  int done;
  int status;
  tern_conv_t *conv;
  int count;
  tern_msg_t *msg;
  tern_conv_t **convs;
  size_t n;
  tern_msg_t **msgs;
  int from_cache;
  int ctn; /* a cache-then-network query: wait for the second answer */
} res_t;

static void res_done(res_t *r) {
  r->done = 1;
  if (r->t && r->t->sync) uv_stop(&((sync_t *)r->t->sync)->loop);
}

static int wait_res(tern_t *t, res_t *r, int rc) {
  if (rc < 0) return rc;
  r->t = t; /* callbacks only run inside the loop below (or already did) */
  rc = tern_sync_until(t, &r->done, t->o.command_timeout_ms + 5000);
  return rc < 0 ? rc : r->status;
}

static void client_cb(tern_client_t *c, int status, void *data) {
  res_t *r = data;
  r->status = status;
  res_done(r);
}

int tern_sync_open(tern_client_t *c, const tern_open_options_t *opt) {
  if (!c) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(c->t, &r, tern_client_open(c, opt, client_cb, &r));
}

int tern_sync_close(tern_client_t *c) {
  if (!c) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(c->t, &r, tern_client_close(c, client_cb, &r));
}

static void conv_cb(tern_client_t *c, tern_conv_t *conv, int status, void *data) {
  res_t *r = data;
  r->status = status;
  r->conv = conv;
  res_done(r);
}

int tern_sync_create_conv(tern_client_t *c, const char *name, const char *const *members, size_t n,
                          const char *attrs_json, unsigned options, tern_conv_t **out) {
  if (!c) return TERN_EINVAL;
  res_t r = {0};
  int rc = wait_res(c->t, &r, tern_client_create_conv(c, name, members, n, attrs_json, options, conv_cb, &r));
  if (out) *out = rc == 0 ? r.conv : NULL;
  return rc;
}

int tern_sync_get_conv(tern_client_t *c, const char *conv_id, tern_conv_t **out) {
  if (!c) return TERN_EINVAL;
  tern_query_t *q = tern_query_new(c);
  if (!q) return TERN_ENOMEM;
  tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
  res_t r = {0};
  int rc = wait_res(c->t, &r, tern_query_get(q, conv_id, conv_cb, &r));
  tern_query_free(q);
  if (out) *out = rc == 0 ? r.conv : NULL;
  return rc;
}

static void find_cb(tern_client_t *c, tern_conv_t *const *convs, size_t n, int from_cache, int status, void *data) {
  res_t *r = data;
  r->status = status;
  r->from_cache = from_cache;
  free(r->convs); /* cache-then-network: the network's answer replaces the cache's */
  r->convs = NULL;
  r->n = 0;
  if (status == 0) {
    r->convs = calloc(n ? n : 1, sizeof *r->convs);
    if (!r->convs) r->status = TERN_ENOMEM;
    else {
      memcpy(r->convs, convs, n * sizeof *convs);
      r->n = n;
    }
  }
  if (!(r->ctn && from_cache && status == 0)) res_done(r);
}

int tern_sync_find(const tern_query_t *q, tern_conv_t ***out, size_t *n) {
  if (!q || !out || !n) return TERN_EINVAL;
  tern_client_t *c = query_client(q);
  res_t r = {0};
  r.ctn = query_policy(q) == TERN_CACHE_THEN_NETWORK;
  int rc = wait_res(c->t, &r, tern_query_find(q, find_cb, &r));
  *out = rc == 0 ? r.convs : NULL;
  *n = rc == 0 ? r.n : 0;
  if (rc != 0) free(r.convs);
  return rc;
}

static void send_cb(tern_conv_t *conv, const tern_msg_t *sent, int status, void *data) {
  res_t *r = data;
  r->status = status;
  r->msg = tern_msg_dup(sent);
  res_done(r);
}

int tern_sync_send(tern_conv_t *conv, const tern_msg_t *msg, unsigned options, tern_msg_t **sent) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  int rc = wait_res(conv->c->t, &r, tern_conv_send(conv, msg, options, send_cb, &r));
  if (sent) *sent = r.msg;
  else tern_msg_free(r.msg);
  return rc;
}

static void done_cb(tern_conv_t *conv, int status, void *data) {
  res_t *r = data;
  r->status = status;
  res_done(r);
}

int tern_sync_join(tern_conv_t *conv) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, tern_conv_join(conv, done_cb, &r));
}
int tern_sync_quit(tern_conv_t *conv) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, tern_conv_quit(conv, done_cb, &r));
}
int tern_sync_add_members(tern_conv_t *conv, const char *const *ids, size_t n) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, tern_conv_add_members(conv, ids, n, done_cb, &r));
}
int tern_sync_remove_members(tern_conv_t *conv, const char *const *ids, size_t n) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, tern_conv_remove_members(conv, ids, n, done_cb, &r));
}
int tern_sync_update(tern_conv_t *conv, const tern_update_t *u) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, tern_conv_update(conv, u, done_cb, &r));
}
int tern_sync_mute(tern_conv_t *conv, int mute) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  return wait_res(conv->c->t, &r, mute ? tern_conv_mute(conv, done_cb, &r) : tern_conv_unmute(conv, done_cb, &r));
}

static void count_cb(tern_conv_t *conv, int status, int count, void *data) {
  res_t *r = data;
  r->status = status;
  r->count = count;
  res_done(r);
}

int tern_sync_count_members(tern_conv_t *conv, int *count) {
  if (!conv) return TERN_EINVAL;
  res_t r = {0};
  int rc = wait_res(conv->c->t, &r, tern_conv_count_members(conv, count_cb, &r));
  if (count) *count = r.count;
  return rc;
}

static void hist_cb(tern_conv_t *conv, const tern_msg_t *const *msgs, size_t n, int from_cache, int status,
                    void *data) {
  res_t *r = data;
  r->status = status;
  r->from_cache = from_cache;
  if (status == 0) {
    r->msgs = calloc(n ? n : 1, sizeof *r->msgs);
    for (size_t i = 0; r->msgs && i < n; i++) r->msgs[r->n++] = tern_msg_dup(msgs[i]);
    if (!r->msgs) r->status = TERN_ENOMEM;
  }
  res_done(r);
}

int tern_sync_history(tern_conv_t *conv, const char *before_id, int64_t before_ts, int limit, tern_msg_t ***msgs,
                      size_t *n, int *from_cache) {
  if (!conv || !msgs || !n) return TERN_EINVAL;
  res_t r = {0};
  int rc = before_id || before_ts ? tern_conv_query_messages_before(conv, before_id, before_ts, limit, hist_cb, &r)
                                  : tern_conv_query_messages(conv, limit, hist_cb, &r);
  rc = wait_res(conv->c->t, &r, rc);
  if (rc != 0) {
    tern_sync_msgs_free(r.msgs, r.n);
    *msgs = NULL;
    *n = 0;
    return rc;
  }
  *msgs = r.msgs;
  *n = r.n;
  if (from_cache) *from_cache = r.from_cache;
  return 0;
}

void tern_sync_msgs_free(tern_msg_t **msgs, size_t n) {
  if (!msgs) return;
  for (size_t i = 0; i < n; i++) tern_msg_free(msgs[i]);
  free(msgs);
}
