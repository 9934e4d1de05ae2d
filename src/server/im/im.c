/* im.c — IM plumbing: command dispatch, replies, encode-once fan-out, links.
 *
 * A request is decoded once, routed to its session (by peerId, else the socket's default
 * peer, protocol.md §1.6) and handed to one handler. Replies carry the request's `i`;
 * fan-out frames (the protocol's server pushes) never do and always carry `service: 2`
 * and the recipient's peerId. A fan-out frame is protobuf-encoded once; each recipient
 * gets a tiny peerId prefix in front of the shared body (protobuf fields may come in any
 * order), and recipients on other workers get it through one task per worker. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "ipcount.h"
#include "log.h"
#include "revoke.h"
#include "timeutil.h"
#include "utf8.h"

int64_t conv_kind_wire(int kind) { return kind; }

void iso_now(char out[25]) { iso_format(now_ms(), out); }

/* ---------------------------------------------------------------- lifecycle */

im_t *im_new(server_t *srv) {
  im_t *im = xcalloc(1, sizeof *im);
  im->cfg = srv->cfg;
  im->app_id = srv->app_id;
  im->master_key = srv->master_key;
  im->store = srv->store;
  im->presence = presence_new();
  im->convs = convcache_new();
  im->query_ips = ipcount_new();
  im->park_ips = ipcount_new();
  im->session_ips = ipcount_new();
  im->read_ips = ipcount_new();
  pthread_mutex_init(&im->rejoin_mu, NULL);
  pthread_mutex_init(&im->sso_mu, NULL);
  im->signer = signer_new(srv->app_id, srv->master_key, srv->cfg->sign_ttl);
  im->revoke = revoke_new();
  return im;
}

struct rejoin {
  struct rejoin *next;
  char *client, *cid;
  int64_t until;
};

void im_free(im_t *im) {
  if (!im) return;
  while (im->rejoin) {
    struct rejoin *n = im->rejoin->next;
    free(im->rejoin->client);
    free(im->rejoin->cid);
    free(im->rejoin);
    im->rejoin = n;
  }
  pthread_mutex_destroy(&im->rejoin_mu);
  pthread_mutex_destroy(&im->sso_mu);
  signer_free(im->signer);
  revoke_free(im->revoke);
  presence_free(im->presence);
  convcache_free(im->convs);
  ipcount_free(im->query_ips);
  ipcount_free(im->park_ips);
  ipcount_free(im->session_ips);
  ipcount_free(im->read_ips);
  im_bus_free(im);
  free(im);
}

im_worker_t *im_worker_new(im_t *im, int idx) {
  im_worker_t *w = xcalloc(1, sizeof *w);
  w->im = im;
  w->idx = idx;
  handle_table_init(&w->links, idx);
  handle_table_init(&w->sessions, idx);
  w->reader = store_reader_new(im->store);
  if (!w->reader) abort(); /* the store opened a moment ago; a reader failing is fatal */
  im->workers[idx] = w;
  if (idx >= im->nworkers) im->nworkers = idx + 1;
  return w;
}

static void relays_release(im_worker_t *w, int all);

void im_worker_free(im_worker_t *w) {
  if (!w) return;
  relays_release(w, 1);
  im_msg_rechecks_free(w);
  store_reader_free(w->reader);
  handle_table_free(&w->links);
  handle_table_free(&w->sessions);
  w->im->workers[w->idx] = NULL;
  free(w);
}

void im_worker_stopping(im_worker_t *w) { im_session_kicks_stopping(w); }

void im_worker_tick(im_worker_t *w) {
  if (w->parked) relays_release(w, 0);
  /* net writes the clients' output next: the publishes behind its acks go first */
  if (w->im->bus) bus_write_out(w->im->bus);
}

/* ---------------------------------------------------------------- hooks and offline push */

int im_hook_enabled(const im_t *im, hook_t which) { return im->out && im->out->hook_enabled(im, which); }

void im_hook_call(im_worker_t *w, hook_t which, json_t *params, hook_cb cb, void *arg) {
  if (w->im->out) {
    w->im->out->hook_call(w, which, params, cb, arg);
    return;
  }
  json_decref(params); /* no hook is configured: carry on as usual */
  if (cb) cb(w, arg, NULL, 0);
}

int im_push_enabled(const im_t *im) { return im->out && im->out->push_enabled(im); }

void im_push_offline(im_worker_t *w, const push_request_t *req) {
  if (w->im->out) w->im->out->push_offline(w, req);
}

void im_link_open(im_link_t *l, im_worker_t *w, const im_link_ops_t *ops, int proto_version, const char *ip) {
  l->ops = ops;
  l->imw = w;
  l->ip = ip;
  l->proto_version = (uint8_t)proto_version;
  l->sessions = NULL;
  l->nsessions = 0;
  l->sessionless_since_ms = now_ms();
  l->park = NULL;
  l->hold = NULL;
  l->id = handle_table_add(&w->links, l);
}

void im_link_gone(im_link_t *l, int code) {
  im_worker_t *w = l->imw;
  while (l->sessions) im_session_drop(w, l->sessions, code);
  im_park_free(l);
  im_hold_free(l);
  handle_table_del(&w->links, l->id);
  l->imw = NULL;
}

session_t *session_find(im_link_t *l, const char *client_id) {
  for (session_t *s = l->sessions; s; s = s->next)
    if (strcmp(s->client_id, client_id) == 0) return s;
  return NULL;
}

session_t *im_session_get(im_worker_t *w, uint64_t handle) { return handle_table_get(&w->sessions, handle); }

/* ---------------------------------------------------------------- replies */

static void send_cmd(im_link_t *l, lc_cmd_t *cmd) {
  buf_t b = BUF_INIT;
  codec_pack(cmd, &b);
  im_link_send(l, NULL, 0, b.data, b.len);
  buf_free(&b);
}

void reply(const req_t *r, lc_cmd_t *cmd) {
  if (!r->has_i) return; /* fire-and-forget request: nobody waits for an answer */
  PB_SET(*cmd, i, r->i);
  if (r->cmd->peerid) cmd->peerid = r->cmd->peerid;
  send_cmd(r->link, cmd);
}

static void fill_error(lc_cmd_t *cmd, Lc__ErrorCommand *em, int code, const char *detail) {
  PB_SET(*cmd, cmd, LC__COMMAND_TYPE__error);
  em->code = code;
  metric_error(code);
  /* reason is the NAME (§6), which the SDKs show as the error's message. 4323 goes with an
   * empty reason and no detail: the SDKs then show their own text for it ("Temporary
   * conversation expired or does not exist."), which is what an app shows its users. The
   * field is required, so it is sent, empty. */
  int own_text = code == LC_TEMPORARY_CONVERSATION_EXPIRED;
  em->reason = own_text ? "" : (char *)lc_error_name(code);
  em->detail = own_text ? NULL : (char *)detail;
  cmd->errormessage = em;
}

/* The refused-request line: what was asked (cmd, op) and the answer's code and NAME —
 * never the detail, which may quote what the peer sent. A peer can provoke refusals at
 * will, so at most REFUSED_LOG_PER_S lines a second over the server (the rest counted in
 * tern_errors_total and in the next line's "held back"). */
#define REFUSED_LOG_PER_S 100
static log_limit_t refused_log;

static const char *enum_name(const ProtobufCEnumDescriptor *d, int v, int has) {
  const ProtobufCEnumValue *ev = has ? protobuf_c_enum_descriptor_get_value(d, v) : NULL;
  return ev ? ev->name : NULL;
}

static void log_refused(const im_link_t *l, const char *client, const lc_cmd_t *in, int code) {
  unsigned long held = 0;
  if (LOG_INFO > log_level || !log_allow_n(&refused_log, REFUSED_LOG_PER_S, &held)) return;
  if (client && !utf8_client_id_ok(client)) client = "(invalid)";
  log_event_write(LOG_INFO, "refused", "addr=%s client=%s cmd=%s op=%s code=%d reason=%s held_back=%lu",
                  l ? l->ip : NULL, client, in ? enum_name(&lc__command_type__descriptor, in->cmd, in->has_cmd) : NULL,
                  in ? enum_name(&lc__op_type__descriptor, in->op, in->has_op) : NULL, code, lc_error_name(code), held);
}

void reply_error(const req_t *r, int code, const char *detail) {
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ErrorCommand em = LC__ERROR_COMMAND__INIT;
  log_refused(r->link, r->s ? r->s->client_id : NULL, r->cmd, code);
  fill_error(&cmd, &em, code, detail);
  reply(r, &cmd);
}

void reply_to_init(reply_to_t *rt, const req_t *r) {
  rt->link = r->link->id;
  rt->session = r->s ? r->s->id : 0;
  rt->has_i = r->has_i;
  rt->i = r->i;
  rt->peer = r->cmd->peerid ? xstrdup(r->cmd->peerid) : NULL;
}

void reply_to_free(reply_to_t *rt) {
  free(rt->peer);
  rt->peer = NULL;
}

im_link_t *reply_to_link(im_worker_t *w, const reply_to_t *rt) { return handle_table_get(&w->links, rt->link); }

void reply_async(im_worker_t *w, const reply_to_t *rt, lc_cmd_t *cmd) {
  im_link_t *l = reply_to_link(w, rt);
  if (!l || !rt->has_i) return;
  PB_SET(*cmd, i, rt->i);
  if (rt->peer) cmd->peerid = rt->peer;
  send_cmd(l, cmd);
}

void reply_error_async(im_worker_t *w, const reply_to_t *rt, int code, const char *detail) {
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ErrorCommand em = LC__ERROR_COMMAND__INIT;
  log_refused(reply_to_link(w, rt), rt->peer, NULL, code);
  fill_error(&cmd, &em, code, detail);
  reply_async(w, rt, &cmd);
}

void reply_rejected_async(im_worker_t *w, const reply_to_t *rt, int code, json_t *hook_result) {
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ErrorCommand em = LC__ERROR_COMMAND__INIT;
  json_t *app_code = json_object_get(hook_result, "code");
  const char *app_msg = json_string_value(json_object_get(hook_result, "detail"));
  fill_error(&cmd, &em, code, hook_result ? "rejected by the app" : "the app's hook failed");
  if (json_is_integer(app_code)) PB_SET(em, appcode, (int32_t)json_integer_value(app_code));
  em.appmsg = (char *)app_msg;
  reply_async(w, rt, &cmd);
}

/* ---------------------------------------------------------------- fan-out */

fanout_t *fanout_new(const lc_cmd_t *cmd) {
  /* Every frame is stamped service 2 (IM) here rather than by each caller: the Swift and
   * Objective-C SDKs route a command without `i` only when it carries service 2 and drop
   * the rest without a word (RTMConnection.swift, LCRTMConnection.m). */
  lc_cmd_t c = *cmd;
  PB_SET(c, service, 2);
  size_t n = lc__generic_command__get_packed_size(&c);
  fanout_t *p = xmalloc(sizeof *p + n);
  atomic_init(&p->ref, 1);
  p->priority = 2;
  p->not_to = NULL;
  const Lc__DirectCommand *dm = cmd->cmd == LC__COMMAND_TYPE__direct ? cmd->directmessage : NULL;
  p->msg = !dm ? 0 : dm->transient ? 2 : 1;
  p->ts = p->msg == 1 && dm->has_timestamp ? dm->timestamp : -1;
  p->len = n;
  lc__generic_command__pack(&c, p->body);
  return p;
}

void fanout_release(fanout_t *p) {
  if (p && atomic_fetch_sub(&p->ref, 1) == 1) {
    free(p->not_to);
    free(p);
  }
}

void fanout_to_session(session_t *s, const fanout_t *p) {
  /* field 4 (peerId), wire type 2: tag 0x22, a varint length, the id. Ids are at most 64
   * characters, so at most 256 bytes: the length takes one or two bytes. */
  uint8_t prefix[3 + 256];
  size_t len = strlen(s->client_id), o = 0;
  if (len > 256) return;
  if (s->told && p->msg == 1 && im_login_told(s, p)) return; /* its login's counts have it */
  prefix[o++] = 0x22;
  if (len < 128) {
    prefix[o++] = (uint8_t)len;
  } else {
    prefix[o++] = (uint8_t)(len | 0x80);
    prefix[o++] = (uint8_t)(len >> 7);
  }
  memcpy(prefix + o, s->client_id, len);
  im_link_send(s->link, prefix, o + len, p->body, p->len);
  metric_inc(M_FANOUT);
  if (p->msg) metric_inc(p->msg == 2 ? M_MESSAGES_OUT_TRANSIENT : M_MESSAGES_OUT);
}

typedef struct {
  task_t task;
  im_t *im;
  fanout_t *frame;
  conv_t *ordered; /* fanout_*_ordered: counted in its dlv_posted until it ran, or NULL */
  size_t n;
  uint64_t sessions[];
} delivery_t;

/* An ordered delivery has run: c's next one may be written at once again. */
static void ordered_done(conv_t *c) {
  if (!c) return;
  atomic_fetch_sub(&c->dlv_posted, 1);
  conv_release(c);
}

static void delivery_run(task_t *t) {
  delivery_t *d = (delivery_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? d->im->workers[idx] : NULL;
  for (size_t i = 0; w && i < d->n; i++) {
    session_t *s = handle_table_get(&w->sessions, d->sessions[i]);
    if (s) fanout_to_session(s, d->frame);
  }
  ordered_done(d->ordered);
  fanout_release(d->frame);
  free(d);
}

typedef struct {
  uint64_t *v;
  size_t n, cap;
} handles_t;

static void handles_add(handles_t *h, uint64_t x) {
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->v = xrealloc(h->v, h->cap * sizeof *h->v);
  }
  h->v[h->n++] = x;
}

/* The session handles of every client in ids (but skip), grouped by owning worker; the
 * caller frees per[k].v. */
static void handles_by_worker(im_t *im, char *const *ids, size_t n, uint64_t skip, handles_t *per) {
  memset(per, 0, sizeof(handles_t) * (size_t)im->nworkers);
  uint64_t tmp[32];
  for (size_t i = 0; i < n; i++) {
    size_t k;
    uint64_t *hs = presence_get_all(im->presence, ids[i], tmp, 32, &k);
    for (size_t j = 0; j < k; j++) {
      if (hs[j] == skip) continue;
      int owner = handle_owner(hs[j]);
      if (owner < im->nworkers) handles_add(&per[owner], hs[j]);
    }
    if (hs != tmp) free(hs);
  }
}

void fanout_to_clients(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip) {
  fanout_to_clients_local(w, p, ids, n, skip);
  if (w->im->bus) im_bus_fanout(w, p, ids, n);
}

static void clients_local(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip,
                          conv_t *ordered);

void fanout_to_clients_local(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip) {
  clients_local(w, p, ids, n, skip, NULL);
}

/* Ordered: called under c->mu, the calls' deliveries reach each session in the order of the
 * calls whichever worker makes them. Another worker's share goes to its inbox, which runs in
 * order; this worker's own share is written at once only while no delivery of c waits in an
 * inbox (dlv_posted), else it is posted too, behind those. */
void fanout_to_clients_ordered(im_worker_t *w, const fanout_t *p, conv_t *c, char *const *ids, size_t n,
                               uint64_t skip) {
  clients_local(w, p, ids, n, skip, c);
}

static void clients_local(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip,
                          conv_t *ordered) {
  im_t *im = w->im;
  handles_t per[MAX_WORKERS];
  handles_by_worker(im, ids, n, skip, per);
  int direct = !ordered || atomic_load(&ordered->dlv_posted) == 0;
  for (int k = 0; k < im->nworkers; k++) {
    if (!per[k].n) continue;
    if (k == w->idx && direct) {
      for (size_t j = 0; j < per[k].n; j++) {
        session_t *s = handle_table_get(&w->sessions, per[k].v[j]);
        if (s) fanout_to_session(s, p);
      }
    } else {
      delivery_t *d = xmalloc(sizeof *d + per[k].n * sizeof(uint64_t));
      d->task.fn = delivery_run;
      d->task.next = NULL;
      d->im = im;
      d->frame = (fanout_t *)p;
      atomic_fetch_add(&d->frame->ref, 1);
      d->ordered = ordered;
      if (ordered) {
        conv_retain(ordered);
        atomic_fetch_add(&ordered->dlv_posted, 1);
      }
      d->n = per[k].n;
      memcpy(d->sessions, per[k].v, per[k].n * sizeof(uint64_t));
      im->post(im->post_arg, k, &d->task);
    }
    free(per[k].v);
  }
}

typedef struct {
  task_t task;
  im_t *im;
  fanout_t *frame;
  conv_t *conv;
  uint64_t skip;
  int ordered; /* counted in conv->dlv_posted (fanout_to_room_ordered) */
} room_delivery_t;

/* Under congestion a chat room sheds load by priority (DOC): LOW goes first, then NORMAL;
 * HIGH is always queued (a connection that cannot keep up even so is dropped by the output
 * limit). Thresholds are fractions of that limit. */
static int congested_drop(im_worker_t *w, session_t *s, int priority) {
  if (priority <= 1) return 0;
  size_t q = s->link->ops->queued(s->link), limit = (size_t)w->im->cfg->output_limit;
  return priority >= 3 ? q > limit / 8 : q > limit / 2;
}

static void room_deliver_local(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip) {
  room_slice_t *sl = &c->room[w->idx];
  for (uint32_t i = 0; i < sl->n; i++) {
    session_t *s = sl->v[i];
    if (s->id == skip || (p->not_to && strcmp(s->client_id, p->not_to) == 0)) continue;
    if (congested_drop(w, s, p->priority)) {
      atomic_fetch_add(&w->im->room_drops, 1);
      continue;
    }
    fanout_to_session(s, p);
  }
}

static void room_delivery_run(task_t *t) {
  room_delivery_t *d = (room_delivery_t *)t;
  int idx = worker_current();
  if (idx >= 0 && d->im->workers[idx]) room_deliver_local(d->im->workers[idx], d->frame, d->conv, d->skip);
  if (d->ordered) atomic_fetch_sub(&d->conv->dlv_posted, 1);
  fanout_release(d->frame);
  conv_release(d->conv);
  free(d);
}

void fanout_to_room(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip) {
  if (w->im->bus && c->room) im_bus_room(w, p, c);
  fanout_to_room_local(w, p, c, skip);
}

static void room_local(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip, int ordered);

void fanout_to_room_local(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip) { room_local(w, p, c, skip, 0); }

/* As fanout_to_clients_ordered, for a chat room (this node only: no bus). */
void fanout_to_room_ordered(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip) {
  room_local(w, p, c, skip, 1);
}

void im_link_pause(im_link_t *l, int why, int on) {
  int was = l->paused;
  l->paused = (uint8_t)(on ? was | why : was & ~why);
  if (!was && l->paused) l->ops->pause(l, 1);
  else if (was && !l->paused) l->ops->pause(l, 0); /* last: it runs the frames that waited */
}

/* worker_relay_t: the worker after `from` that is not the relay's origin, else origin. */
static int relay_next(const worker_relay_t *r, int from) {
  int next = from + 1 == r->origin ? from + 2 : from + 1;
  return next < r->im->nworkers ? next : r->origin;
}

static void relay_run(task_t *t);

static void relay_hop(worker_relay_t *r, int to) {
  r->at = to;
  if (!r->im->workers[to]) { /* freed already: the server is stopping (server_free) */
    conv_release(r->room);
    r->room = NULL;
    r->done(r, NULL);
    return;
  }
  r->task.fn = relay_run;
  r->task.next = NULL;
  r->im->post(r->im->post_arg, to, &r->task);
}

/* A chat room's members on this worker are behind when more than half of them have more
 * than ROOM_MEMBER_BEHIND bytes queued and not written: their readers, or this worker's
 * writes, do not keep up with the room. A few slow members do not hold the room (they are
 * the output limits' and the priority shedding's); a room that stays behind holds each ack
 * ROOM_WAIT_MAX_MS at most per stop. */
#define ROOM_MEMBER_BEHIND (32 * 1024)
#define ROOM_WAIT_MAX_MS 2000
/* ... and at least this many of them: in a small room one slow reader would be "most". */
#define ROOM_BEHIND_MIN 16

static int room_behind(im_worker_t *w, conv_t *c) {
  room_slice_t *sl = &c->room[w->idx];
  if (sl->n < ROOM_BEHIND_MIN) return 0;
  uint32_t behind = 0;
  for (uint32_t i = 0; i < sl->n; i++)
    if (sl->v[i]->link->ops->queued(sl->v[i]->link) > ROOM_MEMBER_BEHIND && ++behind * 2 > sl->n &&
        behind >= ROOM_BEHIND_MIN)
      return 1;
  return 0;
}

static void relay_go(worker_relay_t *r, im_worker_t *w) {
  if (r->at != r->origin) {
    relay_hop(r, relay_next(r, r->at));
    return;
  }
  conv_release(r->room);
  r->room = NULL;
  r->done(r, w);
}

static void relay_park(im_worker_t *w, worker_relay_t *r) {
  r->next = NULL;
  if (w->parked_tail) w->parked_tail->next = r;
  else w->parked = r;
  w->parked_tail = r;
}

/* The relays parked on w whose room is no longer behind there, or which waited their
 * ROOM_WAIT_MAX_MS, go on (all: every one, unsent: the server is stopping); the others stay,
 * in order. A room held does not hold another room's acks. room_behind is asked once per
 * run of relays of one room. */
static void relays_release(im_worker_t *w, int all) {
  int64_t now = all ? 0 : now_ms();
  worker_relay_t *r = w->parked;
  w->parked = w->parked_tail = NULL;
  conv_t *seen = NULL;
  int behind = 0;
  while (r) {
    worker_relay_t *next = r->next;
    r->next = NULL;
    if (!all && now - r->parked_ms < ROOM_WAIT_MAX_MS) {
      if (r->room != seen) behind = room_behind(w, seen = r->room);
      if (behind) {
        relay_park(w, r);
        r = next;
        continue;
      }
    }
    if (all) {
      conv_release(r->room);
      r->room = NULL;
      r->done(r, NULL);
    } else {
      relay_go(r, w);
    }
    r = next;
  }
}

void worker_relay_finish(im_worker_t *w, worker_relay_t *r) {
  r->im = w->im;
  relay_hop(r, r->origin); /* posted, even to this worker: the caller may hold a conversation's lock */
}

static void relay_run(task_t *t) {
  worker_relay_t *r = (worker_relay_t *)t;
  im_worker_t *w = r->im->workers[r->at];
  if (w && r->room && room_behind(w, r->room)) {
    metric_inc(M_ROOM_ACKS_HELD);
    r->parked_ms = now_ms();
    relay_park(w, r);
    return;
  }
  relay_go(r, w);
}

static void room_local(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip, int ordered) {
  if (!c->room || atomic_load(&c->online) == 0) return;
  im_t *im = w->im;
  int direct = !ordered || atomic_load(&c->dlv_posted) == 0;
  worker_relay_t *relay = w->room_relay;
  w->room_relay = NULL;
  for (int k = 0; k < im->nworkers; k++) {
    if (k == w->idx && direct) {
      room_deliver_local(w, p, c, skip);
      continue;
    }
    room_delivery_t *d = xmalloc(sizeof *d);
    d->task.fn = room_delivery_run;
    d->task.next = NULL;
    d->im = im;
    d->frame = (fanout_t *)p;
    atomic_fetch_add(&d->frame->ref, 1);
    conv_retain(c);
    d->conv = c;
    d->skip = skip;
    d->ordered = ordered;
    if (ordered) atomic_fetch_add(&c->dlv_posted, 1);
    im->post(im->post_arg, k, &d->task);
  }
  if (relay) {
    relay->im = im;
    conv_retain(c);
    relay->room = c;
    relay_hop(relay, relay_next(relay, -1));
  }
}

/* ---------------------------------------------------------------- chat rooms */

/* A worker's slice of a room is written only by that worker, under the room's mutex so
 * that other threads listing online members (conv/members) read a consistent slice; the
 * owner reads its own slice for delivery without the lock. Callers hold no room lock. */
void im_room_join(im_worker_t *w, session_t *s, conv_t *c) {
  if (s->room == c) return;
  im_room_leave(w, s); /* one chat room per login */
  pthread_mutex_lock(&c->mu);
  room_slice_t *sl = &c->room[w->idx];
  if (sl->n == sl->cap) {
    sl->cap = sl->cap ? sl->cap * 2 : 8;
    sl->v = xrealloc(sl->v, sl->cap * sizeof *sl->v);
  }
  s->room_slot = sl->n;
  sl->v[sl->n++] = s;
  pthread_mutex_unlock(&c->mu);
  conv_retain(c);
  s->room = c;
  atomic_fetch_add(&c->online, 1);
  if (w->im->bus) {
    bus_room_add(w->im->bus, c->cid, 1);
    bus_room_member(w->im->bus, c->cid, s->client_id, 1);
  }
}

void im_room_leave(im_worker_t *w, session_t *s) {
  conv_t *c = s->room;
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  room_slice_t *sl = &c->room[w->idx];
  uint32_t i = s->room_slot;
  if (i < sl->n && sl->v[i] == s) {
    sl->v[i] = sl->v[--sl->n];
    sl->v[i]->room_slot = i;
  }
  pthread_mutex_unlock(&c->mu);
  atomic_fetch_sub(&c->online, 1);
  if (w->im->bus) {
    bus_room_add(w->im->bus, c->cid, -1);
    bus_room_member(w->im->bus, c->cid, s->client_id, -1);
  }
  s->room = NULL;
  conv_release(c);
}

/* ---- taking clients out of a room (blacklist, §3.17) */

typedef struct {
  task_t task;
  im_t *im;
  char *cid;
  fanout_t *frame;
  size_t n;
  uint64_t sessions[];
} room_kick_t;

/* Of the sessions hs (this worker's), those in room cid leave it and are sent p. Like a
 * quit's answer, p waits until the other nodes have the leave queued (im_hold.c): a client
 * told it is out of the room is not counted in it by a node it asks next. */
static void room_kick_local(im_worker_t *w, const char *cid, const fanout_t *p, const uint64_t *hs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    session_t *s = handle_table_get(&w->sessions, hs[i]);
    /* by id: a room reloaded into the cache is another conv_t for the same room */
    if (!s || !s->room || strcmp(s->room->cid, cid) != 0) continue;
    im_room_leave(w, s);
    im_hold_reply(w, s->link);
    fanout_to_session(s, p);
  }
}

static void room_kick_run(task_t *t) {
  room_kick_t *k = (room_kick_t *)t;
  int idx = worker_current();
  if (idx >= 0 && k->im->workers[idx]) room_kick_local(k->im->workers[idx], k->cid, k->frame, k->sessions, k->n);
  fanout_release(k->frame);
  free(k->cid);
  free(k);
}

void im_room_kick(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n) {
  im_room_kick_local(w, c, p, ids, n);
  if (w->im->bus) im_bus_room_kick(w, c, p, ids, n);
}

void im_room_kick_local(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n) {
  im_t *im = w->im;
  handles_t per[MAX_WORKERS];
  handles_by_worker(im, ids, n, 0, per);
  for (int k = 0; k < im->nworkers; k++) {
    if (!per[k].n) continue;
    if (k == w->idx) {
      room_kick_local(w, c->cid, p, per[k].v, per[k].n);
    } else {
      /* queued behind whatever fanout_to_clients sent that worker before: the order holds */
      room_kick_t *rk = xmalloc(sizeof *rk + per[k].n * sizeof(uint64_t));
      rk->task.fn = room_kick_run;
      rk->task.next = NULL;
      rk->im = im;
      rk->cid = xstrdup(c->cid);
      rk->frame = (fanout_t *)p;
      atomic_fetch_add(&rk->frame->ref, 1);
      rk->n = per[k].n;
      memcpy(rk->sessions, per[k].v, per[k].n * sizeof(uint64_t));
      im->post(im->post_arg, k, &rk->task);
    }
    free(per[k].v);
  }
}

#define REJOIN_MS (30 * 60 * 1000)

void im_room_remember(im_t *im, session_t *s) {
  if (!s->room) return;
  struct rejoin *e = xcalloc(1, sizeof *e);
  e->client = xstrdup(s->client_id);
  e->cid = xstrdup(s->room->cid);
  int64_t now = now_ms();
  e->until = now + REJOIN_MS;
  pthread_mutex_lock(&im->rejoin_mu);
  /* drop expired entries and an older one for the same client on the way */
  for (struct rejoin **pp = &im->rejoin; *pp;) {
    struct rejoin *x = *pp;
    if (x->until <= now || strcmp(x->client, e->client) == 0) {
      *pp = x->next;
      free(x->client);
      free(x->cid);
      free(x);
    } else {
      pp = &x->next;
    }
  }
  e->next = im->rejoin;
  im->rejoin = e;
  pthread_mutex_unlock(&im->rejoin_mu);
}

void im_room_rejoin(im_worker_t *w, session_t *s) {
  im_t *im = w->im;
  char *cid = NULL;
  pthread_mutex_lock(&im->rejoin_mu);
  for (struct rejoin **pp = &im->rejoin; *pp; pp = &(*pp)->next) {
    struct rejoin *x = *pp;
    if (strcmp(x->client, s->client_id) != 0) continue;
    if (x->until > now_ms()) cid = x->cid;
    else free(x->cid);
    *pp = x->next;
    free(x->client);
    free(x);
    break;
  }
  pthread_mutex_unlock(&im->rejoin_mu);
  if (!cid) return;
  conv_t *c = conv_get(w, cid, NULL);
  int refused = 1;
  if (c && c->kind == CONV_ROOM) { /* what a join would be refused for, a re-join is too */
    pthread_mutex_lock(&c->mu);
    refused = conv_join_refused(w, c, s->client_id) != 0;
    pthread_mutex_unlock(&c->mu);
  }
  if (!refused) im_room_join(w, s, c);
  if (c) conv_release(c);
  free(cid);
}

int im_check_signature(req_t *r, char *text, int64_t t, const char *n, const char *s, int code) {
  int rc = im_sign_check(r, text, t, n, s);
  free(text);
  if (rc == 0 || rc == IM_PARKED) return rc == 0 ? 0 : -1; /* parked: it runs again with the answer */
  reply_error(r, code,
              rc == TERN_ETIMEDOUT ? "signature timestamp outside the validity window"
              : rc == TERN_EEXIST  ? "signature nonce already used"
                                   : "signature does not match");
  return -1;
}

/* ---------------------------------------------------------------- dispatch */

static void unsupported(req_t *r) {
  char detail[96];
  snprintf(detail, sizeof detail, "unsupported command %s/%s", lc_cmd_name(r->cmd->cmd),
           r->cmd->has_op ? lc_op_name(r->cmd->op) : "-");
  reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, detail);
}

/* An echo is answered in kind: with its `i` (JS), or without one. The C# SDK's heartbeat
 * (Realtime/Internal/Connection/LCRTMHeartBeat.cs) is an echo with no `i`, and only an
 * i-less echo coming back counts as its pong (ConnectedState.OnMessage): left unanswered,
 * it drops and reconnects the socket every six minutes. */
static void echo(req_t *r) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__echo);
  if (r->has_i) {
    reply(r, &out);
    return;
  }
  out.peerid = r->cmd->peerid;
  send_cmd(r->link, &out);
}

/* Over the rate: a request gets 4116 and is not run; fire-and-forget commands are
 * dropped (an ack or read lost to a flood only means a redelivery). */
static int over_rate(req_t *r, int took, const char *what) {
  if (took) return 0;
  reply_error(r, LC_MESSAGE_SENT_QUOTA_EXCEEDED, what);
  return 1;
}

/* Commands whose answer or fan-out reads the other nodes' presence (im_presence_fence):
 * session query; a chat room's count and online members; a start (its INVITED pushes);
 * adding members (their joined pushes); a block (from a chat room, the nodes its blocked
 * members are on, sent their `left`: bus_room_nodes). A send to a chat room fences in im_msg_direct,
 * once its conversation is known; an explicit tagged login (single sign-on) in
 * im_session_open, once its tag is known. */
static int im_reads_presence(int cmd, int op) {
  if (cmd == LC__COMMAND_TYPE__session) return op == LC__OP_TYPE__query;
  if (cmd == LC__COMMAND_TYPE__conv)
    return op == LC__OP_TYPE__count || op == LC__OP_TYPE__members || op == LC__OP_TYPE__start || op == LC__OP_TYPE__add;
  if (cmd == LC__COMMAND_TYPE__blacklist) return op == LC__OP_TYPE__block;
  return 0;
}

static void dispatch(req_t *r) {
  lc_cmd_t *c = r->cmd;
  int cmd = c->has_cmd ? (int)c->cmd : LC__COMMAND_TYPE__session;
  int op = c->has_op ? (int)c->op : 0;
  const tern_config_t *cfg = r->w->im->cfg;
  int64_t now = r->link->last_rx_ms ? r->link->last_rx_ms : now_ms();
  /* a request run again with the bus's answer about its nonce was counted the first time */
  if (!r->nonce && !r->fenced && !r->loaded &&
      over_rate(r, bucket_take(&r->link->rate, cfg->max_conn_rate, now), "too many commands on this connection"))
    return;
  if (cmd == LC__COMMAND_TYPE__echo) {
    echo(r);
    return;
  }
  if (cmd == LC__COMMAND_TYPE__session && op == LC__OP_TYPE__open) {
    if (im_prefetch_token(r) == IM_PARKED) return; /* a reconnect's token revocations, off the loop */
    im_session_open(r);
    return;
  }
  /* Every other command acts for a session: the one named by peerId, else the socket's
   * first (clients omit peerId while they are alone on the socket). */
  r->s = c->peerid ? session_find(r->link, c->peerid) : r->link->sessions;
  if (!r->s) {
    reply_error(r, LC_SESSION_REQUIRED, c->peerid ? "no open session for this peerId" : "open a session first");
    return;
  }
  /* The client's bucket is shared by all its sessions, on every socket and worker. */
  if (cfg->max_client_rate > 0 && !r->nonce && !r->fenced && !r->loaded &&
      over_rate(r,
                presence_take(r->w->im->presence, r->s->client_id,
                              im_client_rate(r->w->im, r->s->client_id, cfg->max_client_rate), now),
                "too many commands from this client"))
    return;
  /* what answers from the other nodes' presence waits for the changes already received */
  if (im_reads_presence(cmd, op) && im_presence_fence(r) == IM_PARKED) return;
  /* a conversation the cache lacks is read off the loop first (PostgreSQL) */
  if (im_prefetch(r) == IM_PARKED) return;
  if (im_prefetch_keys(r) == IM_PARKED) return; /* and what else it reads: other conversations, imported ids */
  if (im_prefetch_cmd(r) == IM_PARKED) return;  /* a unique start's twin, a max_read's progress */
  switch (cmd) {
  case LC__COMMAND_TYPE__session:
    switch (op) {
    case LC__OP_TYPE__close: im_session_close(r); return;
    case LC__OP_TYPE__refresh: im_session_refresh(r); return;
    case LC__OP_TYPE__query: im_session_query(r); return;
    }
    break;
  case LC__COMMAND_TYPE__conv:
    switch (op) {
    case LC__OP_TYPE__start: im_conv_start(r); return;
    case LC__OP_TYPE__query: im_conv_query(r); return;
    case LC__OP_TYPE__count: im_conv_count(r); return;
    case LC__OP_TYPE__add: im_conv_members_change(r, 1); return;
    case LC__OP_TYPE__remove: im_conv_members_change(r, 0); return;
    case LC__OP_TYPE__members: im_conv_online_members(r); return;
    case LC__OP_TYPE__is_member: im_conv_is_member(r); return;
    case LC__OP_TYPE__max_read: im_conv_max_read(r); return;
    case LC__OP_TYPE__update: im_conv_update(r); return;
    case LC__OP_TYPE__mute: im_conv_mute(r, 1); return;
    case LC__OP_TYPE__unmute: im_conv_mute(r, 0); return;
    case LC__OP_TYPE__member_info_update: im_conv_member_info(r); return;
    case LC__OP_TYPE__add_shutup: im_conv_shutup(r, 1); return;
    case LC__OP_TYPE__remove_shutup: im_conv_shutup(r, 0); return;
    case LC__OP_TYPE__query_shutup: im_conv_query_shutup(r); return;
    case LC__OP_TYPE__check_shutup: im_conv_check_shutup(r); return;
    }
    break;
  case LC__COMMAND_TYPE__blacklist: im_blacklist(r); return;
  case LC__COMMAND_TYPE__patch:
    if (op == LC__OP_TYPE__modify) {
      im_patch_modify(r);
      return;
    }
    if (op == LC__OP_TYPE__modified) return; /* Java acks a patch push this way: no reply */
    break;
  case LC__COMMAND_TYPE__direct: im_msg_direct(r); return;
  case LC__COMMAND_TYPE__ack: im_msg_ack(r); return;
  case LC__COMMAND_TYPE__read: im_msg_read(r); return;
  case LC__COMMAND_TYPE__logs: im_msg_logs(r); return;
  case LC__COMMAND_TYPE__report: im_device_report(r); return;
  }
  unsupported(r);
}

int im_link_message(im_link_t *l, const uint8_t *p, size_t n, int base64) {
  if (l->park) return im_park_hold(l, p, n, base64); /* behind a request that waits on the bus */
  return im_link_run(l, p, n, base64, 0);
}

int im_link_run(im_link_t *l, const uint8_t *p, size_t n, int base64, int nonce) {
  int timed = metric_stage_sampled(STAGE_SITE_FRAME);
  uint64_t t0 = timed ? mono_ns() : 0;
  lc_cmd_t *cmd = codec_decode(p, n, base64 ? LC_FMT_BASE64 : LC_FMT_BINARY);
  uint64_t t1 = timed ? mono_ns() : 0;
  if (timed) metric_add(M_STAGE_DECODE, STAGE_SAMPLE * (int64_t)(t1 - t0));
  if (!cmd) return LC_UNPARSEABLE_RAW_MESSAGE;
  if (l->imw->im->cfg->log_frames && log_level >= LOG_DEBUG) {
    json_t *j = pb_to_json(&cmd->base);
    char *s = json_dumps(j, JSON_COMPACT);
    log_at(LOG_DEBUG, "C->S %s", s);
    free(s);
    json_decref(j);
  }
  req_t r = {.w = l->imw,
             .link = l,
             .cmd = cmd,
             .has_i = cmd->has_i && cmd->i != 0,
             .i = cmd->i,
             .raw = p,
             .rawlen = n,
             .base64 = base64,
             .nonce = nonce == IM_RUN_FENCED || nonce == IM_RUN_LOADED ? 0 : nonce,
             .fenced = nonce == IM_RUN_FENCED,
             .loaded = nonce == IM_RUN_LOADED};
  dispatch(&r);
  codec_free(cmd);
  if (timed) metric_add(M_STAGE_HANDLE, STAGE_SAMPLE * (int64_t)(mono_ns() - t1));
  return 0;
}
