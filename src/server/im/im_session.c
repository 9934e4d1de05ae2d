/* im_session.c — logging in and out: session open/close/refresh/query (protocol.md §3.1–3.3).
 *
 * A session is one client id logged in on one socket. Several may share a socket (the JS
 * SDK multiplexes every IMClient of a Realtime over one WebSocket); the first opened is
 * the socket's default peer. Tokens (`st`) are sealed, so a reconnect with r:true + st
 * works on any worker and after a restart; a logout, an admin kick and a displacing
 * single-sign-on login revoke them (revoke.h). */
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "im_internal.h"
#include "ipcount.h"
#include "log.h"
#include "revoke.h"
#include "sign.h"
#include "timeutil.h"
#include "token.h"
#include "utf8.h"

/* Every session/open is answered, with its i or without one. Java's automatic re-login
 * after a reconnect carries none (LCSession.reopen → openWithSessionToken with requestId
 * null) and still waits for session/opened (LCDefaultConnectionListener.processSession-
 * Command: "session resumed"); without it the session stays Closed and every call fails
 * "Connection Lost". A reply without i goes like a push: service 2 and the peerId. */
static void open_reply(req_t *r, lc_cmd_t *out) {
  if (r->has_i) PB_SET(*out, i, r->i);
  else PB_SET(*out, service, 2);
  if (!out->peerid) out->peerid = r->cmd->peerid;
  buf_t b = BUF_INIT;
  codec_pack(out, &b);
  im_link_send(r->link, NULL, 0, b.data, b.len);
  buf_free(&b);
}

/* A refused login goes back as {cmd: error} (§2.5). The C# SDK reads only that as a failed
 * open: LCIMSessionController.Open takes any other reply as success and registers the
 * client. The Java SDK completes the open callback with the code only that way
 * (processErrorCommand), and on an i-less 4112 drops its token and logs in afresh; a
 * session/closed makes it report the client offline and the open time out. JS, Swift and
 * ObjC read both forms. A re-login that loses to the device holding its <clientId, tag>
 * (4111) stays session/closed with the code: that is the session ending, which Swift,
 * ObjC, C# (LCIMSessionController.Reopen) and Java (onSessionClosedFromServer) handle as
 * such. */
/* A client id or tag as the log may show it: a peer's bytes that are not a valid id are
 * replaced, never written as they came. */
static const char *loggable_id(const char *s) {
  if (!s) return NULL;
  return utf8_client_id_ok(s) ? s : "(invalid)";
}

/* A peer can provoke refused logins at will (a bad id, a forged token), so their lines are
 * capped as the other refusals' are (im.c: log_refused), at most this many a second over
 * the server; tern_login_failures_total counts them all. */
#define REFUSED_LOGIN_LOG_PER_S 100
static log_limit_t refused_login_log;

static void open_refuse(req_t *r, int code, const char *detail) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  Lc__ErrorCommand em = LC__ERROR_COMMAND__INIT;
  if (code != LC_SESSION_CONFLICT) {
    PB_SET(out, cmd, LC__COMMAND_TYPE__error);
    em.code = code;
    em.reason = (char *)lc_error_name(code);
    em.detail = (char *)detail;
    out.errormessage = &em;
  } else {
    PB_SET(out, cmd, LC__COMMAND_TYPE__session);
    PB_SET(out, op, LC__OP_TYPE__closed);
    PB_SET(sm, code, code);
    sm.reason = (char *)lc_error_name(code);
    sm.detail = (char *)detail;
    out.sessionmessage = &sm;
  }
  metric_error(code);
  metric_login_failed(code);
  const Lc__SessionCommand *in = r->cmd->sessionmessage;
  unsigned long held;
  if (LOG_INFO <= log_level && log_allow_n(&refused_login_log, REFUSED_LOGIN_LOG_PER_S, &held))
    log_event(LOG_INFO, "login", "addr=%s client=%s tag=%s result=%s code=%d reason=%s", r->link->ip,
              loggable_id(r->cmd->peerid), loggable_id(in ? in->tag : NULL), "refused", code, lc_error_name(code));
  open_reply(r, &out);
}

static void open_failed(req_t *r, int code, const char *detail) {
  open_refuse(r, code, detail);
  metric_inc(M_LOGINS_REFUSED);
}

static session_t *session_new(im_worker_t *w, im_link_t *l, const char *client_id, const char *tag, int64_t bitmap) {
  session_t *s = xcalloc(1, sizeof *s);
  s->link = l;
  s->client_id = xstrdup(client_id);
  s->tag = tag ? xstrdup(tag) : NULL;
  s->config_bitmap = bitmap;
  s->opened_ms = now_ms();
  random_bytes(s->lineage, sizeof s->lineage); /* a fresh login's; a reconnect takes its token's */
  s->id = handle_table_add(&w->sessions, s);
  /* append: the first session on a socket stays its default peer */
  session_t **pp = &l->sessions;
  while (*pp) pp = &(*pp)->next;
  *pp = s;
  l->nsessions++;
  presence_add(w->im->presence, s->client_id, s->id, s->tag);
  if (w->im->bus) bus_presence_add(w->im->bus, s->client_id, s->id, s->tag);
  metric_inc(l->base64 ? M_SESSIONS_BASE64 : M_SESSIONS_PROTOBUF);
  return s;
}

/* _clientOffline (§8): closeCode 1 logout, 2 connection lost, 3 tag conflict, 4 kicked by
 * the API; errorCode/errorMsg for the protocol's own reasons to close. */
static void offline_hook(im_worker_t *w, session_t *s, int code) {
  if (!im_hook_enabled(w->im, HOOK_CLIENT_OFFLINE)) return;
  int close_code = code == 1000 ? 1 : code == LC_SESSION_CONFLICT ? 3 : code == LC_KICKED_BY_APP ? 4 : 2;
  static const char *const msgs[] = {"", "logout", "connection lost", "session conflict", "kicked by the app"};
  json_t *p =
      json_pack("{s:s, s:i, s:s}", "peerId", s->client_id, "closeCode", close_code, "closeMsg", msgs[close_code]);
  if (s->tag) json_object_set_new(p, "tag", json_string(s->tag));
  if (close_code != 2 && s->link->ip) json_object_set_new(p, "sourceIP", json_string(s->link->ip));
  if (code == LC_READ_TIMEOUT || code == LC_LOGIN_TIMEOUT || code == LC_FRAME_TOO_LONG ||
      code == LC_UNPARSEABLE_RAW_MESSAGE || code == LC_INTERNAL_ERROR) {
    json_object_set_new(p, "errorCode", json_integer(code));
    json_object_set_new(p, "errorMsg", json_string(lc_error_name(code)));
  }
  im_hook_call(w, HOOK_CLIENT_OFFLINE, p, NULL, NULL);
}

void im_session_drop(im_worker_t *w, session_t *s, int code) {
  im_msg_sending_gone(s);
  offline_hook(w, s, code);
  im_link_t *l = s->link;
  for (session_t **pp = &l->sessions; *pp; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      break;
    }
  }
  if (--l->nsessions == 0) l->sessionless_since_ms = now_ms(); /* the login timer starts over */
  /* 1000 is a goodbye (session close, a WebSocket close frame); anything else — a reset,
   * a timeout, a dropped slow consumer — is the unexpected end a will is for */
  if (code != 1000 && code != 1001) { /* 1001: the server itself is going away */
    im_wills_fire(w, s);
    im_room_remember(w->im, s);
  } else {
    im_wills_free(s);
  }
  im_room_leave(w, s);
  presence_del(w->im->presence, s->client_id, s->id);
  if (w->im->bus) bus_presence_del(w->im->bus, s->client_id, s->id);
  ipcount_del(w->im->session_ips, s->ipe);
  handle_table_del(&w->sessions, s->id);
  metric_add(l->base64 ? M_SESSIONS_BASE64 : M_SESSIONS_PROTOBUF, -1);
  log_event(LOG_INFO, "logout", "addr=%s client=%s tag=%s code=%d duration_ms=%lld", l->ip, s->client_id, s->tag, code,
            (long long)(now_ms() - s->opened_ms));
  im_login_told_free(s);
  free(s->client_id);
  free(s->tag);
  free(s);
}

/* ---------------------------------------------------------------- kicks */

/* The session ends (4111, 4115), then its session/closed is pushed — held, like a logout's
 * answer, until the other nodes have the end queued (im_hold.c): a client told it is out
 * is not listed online (nor counted in its chat room) by a node it, or the app, asks next. */
static void kick_local(im_worker_t *w, session_t *s, int code, const char *detail) {
  /* a login pushed out by another with its tag loses its token: the device that took over
   * is the one that may resume (an admin kick revoked every token of the client already) */
  if (code == LC_SESSION_CONFLICT) revoke_lineage(w, s->lineage);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__session);
  PB_SET(out, op, LC__OP_TYPE__closed);
  PB_SET(out, service, 2);
  out.peerid = s->client_id;
  out.sessionmessage = &sm;
  PB_SET(sm, code, code);
  sm.reason = (char *)lc_error_name(code);
  sm.detail = (char *)detail;
  buf_t b = BUF_INIT;
  codec_pack(&out, &b); /* packed before the drop frees the id it names */
  im_link_t *l = s->link;
  im_session_drop(w, s, code);
  im_hold_reply(w, l);
  im_link_send(l, NULL, 0, b.data, b.len);
  buf_free(&b);
  metric_inc(M_FANOUT);
}

/* im_session_kick_app's: the kicks under way, counted on the caller's worker */
typedef struct kick_all {
  bus_wait_t wait; /* first: its task calls done */
  im_t *im;
  int worker; /* the caller's: left, done and the list are its */
  size_t left;
  im_done_t done;
  struct kick_all *prev, *next; /* on the caller's kicks while done is still to be called */
  int listed;
  /* im_session_kick_app's, kept across its presence fence */
  char *client, *detail;
  int code;
  /* its sessions on other nodes, sent their kick: the answer waits until this node's
   * replica lists none of them (kick_remote_*), on BUS_HOME_WORKER's im->kwait list */
  bus_ref_t *refs;
  size_t nrefs;
  int remote_done;        /* seen ended, or given up on: answer now */
  int64_t rdeadline;      /* on the home worker's loop clock (uv_now) */
  struct kick_all *rnext; /* on im->kwait_head while waiting there */
} kick_all_t;

typedef struct {
  task_t task;
  im_t *im;
  uint64_t handle;
  int code;
  char *detail;
  char *client;    /* NULL, or the client the session must be (a kick from another node) */
  kick_all_t *all; /* NULL, or the kicks it is one of: told on all->worker once it ran */
} kick_t;

static void kick_all_one(kick_all_t *a);
static void kick_back(task_t *t);

static int kick_is(const session_t *s, const char *client) {
  return s && (!client || strcmp(s->client_id, client) == 0);
}

static void kick_run(task_t *t) {
  kick_t *k = (kick_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? k->im->workers[idx] : NULL;
  session_t *s = w ? handle_table_get(&w->sessions, k->handle) : NULL;
  if (kick_is(s, k->client)) kick_local(w, s, k->code, k->detail);
  free(k->detail);
  free(k->client);
  if (k->all) { /* its end is queued (drop → bus_presence_del): counted where the caller is */
    k->task.fn = kick_back;
    k->task.next = NULL; /* posted again: worker_post follows next */
    k->im->post(k->im->post_arg, k->all->worker, &k->task);
    return;
  }
  free(k);
}

static void kick_post(im_worker_t *w, int owner, uint64_t handle, const char *client, int code, const char *detail,
                      kick_all_t *all) {
  kick_t *k = xcalloc(1, sizeof *k);
  k->task.fn = kick_run;
  k->im = w->im;
  k->handle = handle;
  k->code = code;
  k->detail = detail ? xstrdup(detail) : NULL;
  k->client = client ? xstrdup(client) : NULL;
  k->all = all;
  w->im->post(w->im->post_arg, owner, &k->task);
}

void im_session_kick_client(im_worker_t *w, uint64_t handle, const char *client, int code, const char *detail) {
  int owner = handle_owner(handle);
  if (owner == w->idx) {
    session_t *s = handle_table_get(&w->sessions, handle);
    if (kick_is(s, client)) kick_local(w, s, code, detail);
    return;
  }
  kick_post(w, owner, handle, client, code, detail, NULL);
}

/* ---- a reconnect elsewhere: the older session's sends in flight */

typedef struct {
  task_t task;
  im_t *im;
  uint64_t handle;
  char *client;
} sends_gone_t;

static void sends_gone_local(im_worker_t *w, uint64_t handle, const char *client) {
  session_t *s = w ? handle_table_get(&w->sessions, handle) : NULL;
  if (s && strcmp(s->client_id, client) == 0) im_msg_sending_gone(s);
}

static void sends_gone_run(task_t *t) {
  sends_gone_t *g = (sends_gone_t *)t;
  int idx = worker_current();
  sends_gone_local(idx >= 0 ? g->im->workers[idx] : NULL, g->handle, g->client);
  free(g->client);
  free(g);
}

void im_session_sends_gone(im_worker_t *w, uint64_t handle, const char *client) {
  int owner = handle_owner(handle);
  if (owner == w->idx) {
    sends_gone_local(w, handle, client);
    return;
  }
  sends_gone_t *g = xcalloc(1, sizeof *g);
  g->task.fn = sends_gone_run;
  g->im = w->im;
  g->handle = handle;
  g->client = xstrdup(client);
  w->im->post(w->im->post_arg, owner, &g->task);
}

void im_session_kick(im_worker_t *w, uint64_t handle, int code, const char *detail) {
  im_session_kick_client(w, handle, NULL, code, detail);
}

/* ---- the app's kick, answered once the ends are known everywhere */

static void kicks_unlink(im_worker_t *w, kick_all_t *a) {
  if (a->prev) a->prev->next = a->next;
  else w->kicks = a->next;
  if (a->next) a->next->prev = a->prev;
  a->prev = a->next = NULL;
  a->listed = 0;
}

static void kick_all_free(kick_all_t *a) {
  free(a->refs);
  free(a->client);
  free(a->detail);
  free(a);
}

static void kick_remote_add(task_t *t);

static void kick_all_done(task_t *t) {
  kick_all_t *a = (kick_all_t *)t;
  if (a->listed && a->nrefs && !a->remote_done) {
    /* this node's ends are confirmed; the other nodes' are awaited in the replica, which
     * the home worker keeps */
    a->wait.task.fn = kick_remote_add;
    a->wait.task.next = NULL;
    a->im->post(a->im->post_arg, BUS_HOME_WORKER, &a->wait.task);
    return;
  }
  if (a->listed) { /* else answered when its worker began stopping */
    im_worker_t *w = a->im->workers[a->worker];
    kicks_unlink(w, a);
    a->done.fn(w, a->done.arg, 0, NULL);
  }
  kick_all_free(a);
}

/* ---- the other nodes' ends, seen in this node's replica (BUS_HOME_WORKER's thread only)
 *
 * The kick's sessions on other nodes end when the kick arrives there; each node then
 * publishes the ends as presence deltas, which this node applies on its home worker
 * (bus.h). The kick is answered once the replica lists none of the sessions it sent a
 * kick to (checked at every change of the replica, bus_set_applied), so the app asking
 * this node next (check-online, stats) finds the client gone — or after KICK_REMOTE_WAIT_MS
 * anyway (a node that never got the kick, or cannot publish), counted and logged. */

static int cmp_ref(const void *x, const void *y) {
  const bus_ref_t *a = x, *b = y;
  if (a->node != b->node) return a->node < b->node ? -1 : 1;
  return a->session < b->session ? -1 : a->session > b->session;
}

/* 1 when the replica lists none of a's kicked sessions on other nodes (a->refs sorted:
 * kick_app_run). A lookup per session listed now, not a comparison per pair: a client may
 * hold thousands, and this runs at every change of the replica while the kick waits. */
static int kick_remote_gone(im_t *im, const kick_all_t *a) {
  size_t n;
  bus_ref_t *now = bus_sessions_all(im->bus, a->client, &n);
  int gone = 1;
  for (size_t i = 0; i < n && gone; i++) gone = !bsearch(&now[i], a->refs, a->nrefs, sizeof *a->refs, cmp_ref);
  free(now);
  return gone;
}

enum { KR_SEEN, KR_TIMEOUT, KR_STOPPING };

static log_limit_t kick_wait_log; /* a node that stopped ending kicked sessions: many kicks, one line a second */

/* a goes back to its worker to be answered: its sessions on other nodes were seen ended,
 * or were not by the deadline, or the home worker is stopping (not counted) */
static void kick_remote_back(kick_all_t *a, int outcome) {
  im_t *im = a->im;
  if (outcome != KR_STOPPING) atomic_fetch_add(&im->kick_remote[outcome], 1);
  if (outcome == KR_TIMEOUT)
    log_limited(&kick_wait_log, LOG_WARN,
                "kick: %zu session(s) of %s on other nodes not seen ended within %d ms: answered anyway", a->nrefs,
                a->client, KICK_REMOTE_WAIT_MS);
  a->remote_done = 1;
  a->wait.task.fn = kick_all_done;
  a->wait.task.next = NULL;
  im->post(im->post_arg, a->worker, &a->wait.task);
}

static void kwait_arm(im_t *im) {
  uv_timer_t *t = im->kwait_timer;
  if (!im->kwait_head) {
    uv_timer_stop(t);
    return;
  }
  int64_t left = im->kwait_dirty ? 0 : im->kwait_head->rdeadline - (int64_t)uv_now(t->loop);
  uv_timer_start(t, im_session_kick_waits_tick, left > 0 ? (uint64_t)left : 0, 0);
}

/* The waits whose sessions left the replica are answered (seen), in one pass however many
 * changes the replica took since the last: a subscriber read applies many deltas at once,
 * and a pass per delta would cost the home worker waits × deltas lookups in a kick storm. */
static void kwait_scan(im_t *im) {
  im->kwait_dirty = 0;
  kick_all_t **p = &im->kwait_head, *last = NULL;
  while (*p) {
    kick_all_t *a = *p;
    if (kick_remote_gone(im, a)) {
      *p = a->rnext;
      kick_remote_back(a, KR_SEEN);
    } else {
      last = a;
      p = &a->rnext;
    }
  }
  im->kwait_tail = last;
}

void im_session_kick_waits_tick(uv_timer_t *t) {
  im_t *im = t->data;
  if (im->kwait_dirty) kwait_scan(im);
  int64_t now = (int64_t)uv_now(t->loop);
  while (im->kwait_head && im->kwait_head->rdeadline <= now) {
    kick_all_t *a = im->kwait_head;
    im->kwait_head = a->rnext;
    if (!im->kwait_head) im->kwait_tail = NULL;
    kick_remote_back(a, kick_remote_gone(im, a) ? KR_SEEN : KR_TIMEOUT);
  }
  kwait_arm(im);
}

static void kick_remote_add(task_t *t) {
  kick_all_t *a = (kick_all_t *)t;
  im_t *im = a->im;
  if (!im->kwait_timer) { /* the home worker stopped, or this runs at exit (server_free) */
    kick_remote_back(a, KR_STOPPING);
    return;
  }
  if (kick_remote_gone(im, a)) {
    kick_remote_back(a, KR_SEEN);
    return;
  }
  a->rdeadline = (int64_t)uv_now(im->kwait_timer->loop) + KICK_REMOTE_WAIT_MS;
  a->rnext = NULL;
  if (im->kwait_tail) im->kwait_tail->rnext = a;
  else im->kwait_head = a;
  im->kwait_tail = a;
  if (im->kwait_head == a) kwait_arm(im); /* deadlines come in order: only a first one arms */
}

/* The replica changed: the waits are looked at once this loop iteration's changes are in
 * (the timer at 0), not at each change. */
void im_session_kick_waits_seen(void *arg) {
  im_t *im = arg;
  if (!im->kwait_head || im->kwait_dirty || !im->kwait_timer) return;
  im->kwait_dirty = 1;
  kwait_arm(im);
}

static void kwait_timer_free(uv_handle_t *h) { free(h); }

void im_session_kick_waits_start(im_t *im, uv_loop_t *loop) {
  uv_timer_t *t = xcalloc(1, sizeof *t);
  uv_timer_init(loop, t);
  t->data = im;
  im->kwait_timer = t;
}

void im_session_kick_waits_stop(im_t *im) {
  uv_timer_t *t = im->kwait_timer;
  if (!t) return;
  im->kwait_timer = NULL;
  while (im->kwait_head) { /* answered now: the replica is no longer kept */
    kick_all_t *a = im->kwait_head;
    im->kwait_head = a->rnext;
    kick_remote_back(a, kick_remote_gone(im, a) ? KR_SEEN : KR_STOPPING);
  }
  im->kwait_tail = NULL;
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, kwait_timer_free);
}

void im_session_kicks_stopping(im_worker_t *w) {
  json_t *e = json_pack("{s:s}", "error", "server stopping: the kick may not have ended every session; ask again");
  while (w->kicks) {
    kick_all_t *a = w->kicks;
    kicks_unlink(w, a);
    a->done.fn(w, a->done.arg, TERN_ECLOSED, e);
  }
  json_decref(e);
}

/* One kick of a ran (on a->worker). The last: the ends are all queued for the bus now
 * (each drop ran before its kick_back was posted here), so the ticket taken now covers
 * them; done waits for it like a held reply (im_hold.c). */
static void kick_all_one(kick_all_t *a) {
  if (--a->left) return;
  bus_t *b = a->im->bus;
  uint64_t ticket = b ? bus_ticket(b) : 0;
  a->wait.task.fn = kick_all_done;
  if (b && !bus_confirmed(b, ticket)) bus_wait(b, ticket, a->worker, &a->wait);
  else a->im->post(a->im->post_arg, a->worker, &a->wait.task); /* later, never inside the call */
}

static void kick_back(task_t *t) {
  kick_t *k = (kick_t *)t;
  kick_all_t *a = k->all;
  free(k);
  kick_all_one(a);
}

/* Listed on w's kicks (answered by im_session_kicks_stopping if w stops first), not started */
static kick_all_t *kick_all_new(im_worker_t *w, const im_done_t *done) {
  kick_all_t *a = xcalloc(1, sizeof *a);
  a->im = w->im;
  a->worker = w->idx;
  a->done = *done;
  a->next = w->kicks;
  if (w->kicks) w->kicks->prev = a;
  w->kicks = a;
  a->listed = 1;
  return a;
}

static void kick_all_start(im_worker_t *w, kick_all_t *a, const uint64_t *handles, size_t n, int code,
                           const char *detail) {
  a->left = n + 1; /* + this call's own: done cannot come before every kick is counted */
  for (size_t i = 0; i < n; i++) {
    int owner = handle_owner(handles[i]);
    if (owner == w->idx) {
      session_t *s = handle_table_get(&w->sessions, handles[i]);
      if (s) kick_local(w, s, code, detail);
      a->left--;
    } else {
      kick_post(w, owner, handles[i], NULL, code, detail, a);
    }
  }
  kick_all_one(a);
}

/* The client's sessions on the other nodes (the replica) are sent their kick, and
 * remembered (a->refs: the answer waits for their ends in the replica); this node's are
 * ended (kick_all_start). */
static void kick_app_run(im_worker_t *w, kick_all_t *a, const char *client, int code, const char *detail) {
  im_t *im = w->im;
  if (im->bus) a->refs = bus_sessions_all(im->bus, client, &a->nrefs);
  for (size_t i = 0; i < a->nrefs; i++) im_bus_kick(w, &a->refs[i], client, code, detail);
  if (a->nrefs > 1) qsort(a->refs, a->nrefs, sizeof *a->refs, cmp_ref); /* kick_remote_gone */
  if (a->nrefs && !a->client) a->client = xstrdup(client);
  uint64_t buf[64];
  size_t n;
  uint64_t *held = presence_get_all(im->presence, client, buf, 64, &n);
  kick_all_start(w, a, held, n, code, detail);
  if (held != buf) free(held);
}

static void kick_app_fenced(void *arg) {
  kick_all_t *a = arg;
  if (!a->listed) { /* answered when its worker began stopping: nothing is started now */
    kick_all_free(a);
    return;
  }
  kick_app_run(a->im->workers[a->worker], a, a->client, a->code, a->detail);
}

void im_session_kick_app(im_worker_t *w, const char *client, int code, const char *detail, const im_done_t *done) {
  kick_all_t *a = kick_all_new(w, done);
  im_t *im = w->im;
  if (im_fence_needed(im)) {
    a->client = xstrdup(client);
    a->detail = detail ? xstrdup(detail) : NULL;
    a->code = code;
    im_fence_start(im, kick_app_fenced, a);
    return;
  }
  kick_app_run(w, a, client, code, detail);
}

/* ---------------------------------------------------------------- open */

static void send_opened(req_t *r, session_t *s) {
  im_t *im = r->w->im;
  char st[TOKEN_MAX_LEN + 1];
  token_make_lineage(im->master_key, im->app_id, s->client_id, s->tag, s->lineage, im->cfg->session_ttl, st);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__session);
  PB_SET(out, op, LC__OP_TYPE__opened);
  out.peerid = s->client_id;
  PB_SET(out, serverts, now_ms());
  sm.st = st;
  PB_SET(sm, stttl, (int32_t)im->cfg->session_ttl);
  out.sessionmessage = &sm;
  open_reply(r, &out); /* peerId set: an anonymous login must get the invented one */
}

void im_session_open(req_t *r) {
  im_t *im = r->w->im;
  lc_cmd_t *c = r->cmd;
  Lc__SessionCommand empty = LC__SESSION_COMMAND__INIT;
  Lc__SessionCommand *sm = c->sessionmessage ? c->sessionmessage : &empty;
  if (c->appid && strcmp(c->appid, im->app_id) != 0) {
    open_failed(r, LC_APP_NOT_AVAILABLE, "unknown appId");
    return;
  }
  char anon[40];
  const char *peer = c->peerid;
  if (!peer || !*peer) { /* anonymous login: invent an id and return it (§1.6) */
    uint8_t rnd[12];
    random_bytes(rnd, sizeof rnd);
    memcpy(anon, "anon-", 5);
    hex_encode(rnd, sizeof rnd, anon + 5);
    peer = anon;
  }
  if (!utf8_client_id_ok(peer)) { /* §9.1; and an id is framed and hashed as it is (utf8.h) */
    open_failed(r, LC_INVALID_LOGIN, "client id must be 1 to 64 characters of UTF-8, no control characters");
    return;
  }
  int reconnect = sm->has_r && sm->r;
  char *tag = NULL; /* single sign-on: explicit logins name it, reconnects carry it in st */
  int token_ok = 0;
  token_info_t st_info;
  if (reconnect && sm->st) {
    /* sealed for this client and unexpired, and not revoked by a logout, a kick or a
     * displacing login since (revoke.h: one store read, made off the loop beforehand on
     * PostgreSQL: im_prefetch_token, r->w->token_read) */
    int rc = token_check(im->master_key, im->app_id, peer, sm->st, &st_info);
    if (rc == 0 && (rc = revoke_check_read(r->w, peer, &st_info, r->loaded ? r->w->token_read : NULL)) < 0) {
      /* A tagged login displaced by single sign-on lost its token with it. While the session
       * that displaced it holds <clientId, tag>, its re-login hears what it heard before
       * revocation existed — 4111, the session ended elsewhere — for an SDK told 4112 logs in
       * afresh (Java, JS), which would push the holder out in turn. */
      int held = st_info.tag && (presence_get_tagged(im->presence, peer, st_info.tag, NULL, 0) > 0 ||
                                 (im->bus && bus_sessions(im->bus, peer, st_info.tag, NULL, 0) > 0));
      free(st_info.tag);
      if (held) {
        open_failed(r, LC_SESSION_CONFLICT, "another device holds this login");
        return;
      }
    }
    if (rc < 0) {
      /* As {cmd: error}: the JS SDK only drops its token and logs in afresh when the open
       * is rejected that way; a session/closed reply would end its reconnect for good. */
      open_refuse(r, LC_SESSION_TOKEN_EXPIRED,
                  rc == TERN_ETIMEDOUT ? "session token expired"
                  : rc == TERN_EPERM   ? "session token revoked"
                                       : "invalid session token");
      metric_inc(M_LOGINS_BAD_TOKEN);
      return;
    }
    tag = st_info.tag;
    token_ok = 1;
  } else if (sm->tag && *sm->tag && strcmp(sm->tag, "default") != 0) {
    if (strlen(sm->tag) > TOKEN_TAG_MAX) {
      open_failed(r, LC_INVALID_LOGIN, "tag too long");
      return;
    }
    tag = xstrdup(sm->tag);
  }
  /* A login signature is needed unless a valid session token vouches for the client. */
  if (im->cfg->sign_login && !token_ok) {
    char *text = sign_string_login(im->app_id, peer, sm->has_t ? sm->t : 0, sm->n);
    int rc = im_sign_check(r, text, sm->has_t ? sm->t : 0, sm->n, sm->s);
    free(text);
    if (rc == IM_PARKED) { /* it runs again once the bus has answered about the nonce */
      free(tag);
      return;
    }
    if (rc < 0) {
      open_failed(r, LC_SIGNATURE_FAILED,
                  rc == TERN_ETIMEDOUT ? "signature timestamp outside the validity window"
                  : rc == TERN_EEXIST  ? "signature nonce already used"
                                       : "signature does not match");
      free(tag);
      return;
    }
  }
  /* Single sign-on reads the other nodes' sessions of <client, tag> (bus_sessions, below):
   * an explicit tagged login first waits for the changes this node's subscriber already
   * holds — another device's login answered on another node a moment ago — as commands
   * that answer from the other nodes' presence do (im.c:im_reads_presence). A reconnect
   * does not: a login that displaced it revoked its token. */
  if (tag && !reconnect && im_presence_fence(r) == IM_PARKED) {
    free(tag);
    return;
  }
  session_t *s = session_find(r->link, peer);
  uint64_t held[16]; /* older sessions this login pushes out: kicked once it is answered */
  size_t nheld = 0;
  bus_ref_t rheld[16]; /* the same on other nodes */
  size_t nrheld = 0;
  if (!s && r->link->nsessions >= im->cfg->max_sessions_per_conn) {
    open_failed(r, LC_APP_QUOTA_EXCEEDED, "too many clients on one connection");
    free(tag);
    return;
  }
  /* a new session also counts against its address (max_sessions_per_ip): many connections,
   * each under max_sessions_per_conn, cannot hold more than that together */
  ipcount_entry_t *ipe = NULL;
  if (!s) {
    ipe = ipcount_add(im->session_ips, r->link->ip ? r->link->ip : "", im->cfg->max_sessions_per_ip);
    if (!ipe) {
      open_failed(r, LC_APP_QUOTA_EXCEEDED, "too many clients from this address");
      free(tag);
      return;
    }
  }
  if (!s && tag) {
    /* <clientId, tag> is unique: an explicit login pushes the older session out (4111);
     * an automatic re-login loses to the session that is there (§3.1) */
    pthread_mutex_lock(&im->sso_mu);
    size_t n = presence_get_tagged(im->presence, peer, tag, held, 16);
    size_t rn = im->bus ? bus_sessions(im->bus, peer, tag, rheld, 16) : 0;
    if ((n || rn) && reconnect) {
      pthread_mutex_unlock(&im->sso_mu);
      ipcount_del(im->session_ips, ipe);
      open_failed(r, LC_SESSION_CONFLICT, "another device holds this login");
      free(tag);
      return;
    }
    nheld = n < 16 ? n : 16;
    nrheld = rn < 16 ? rn : 16;
    s = session_new(r->w, r->link, peer, tag, sm->has_configbitmap ? sm->configbitmap : 0);
    pthread_mutex_unlock(&im->sso_mu);
  } else if (!s) {
    s = session_new(r->w, r->link, peer, NULL, sm->has_configbitmap ? sm->configbitmap : 0);
  } else if (sm->has_configbitmap) {
    s->config_bitmap = sm->configbitmap;
  }
  /* a new session: "session opened" (and whatever follows it) waits until the other
   * nodes have it queued (im_hold.c) */
  if (ipe) im_hold_reply(r->w, r->link);
  free(tag);
  if (ipe) s->ipe = ipe;
  if (token_ok) memcpy(s->lineage, st_info.lineage, sizeof s->lineage); /* the device's chain goes on */
  r->s = s;
  if (reconnect) s->resumed_ms = now_ms(), s->dedupe_left = IM_DEDUPE_CHECKS; /* resends may follow: im_dedupe.c */
  if (reconnect && im->bus) im_bus_sends_gone(r->w, s->client_id);            /* before the reply: see im_bus.c, 'S' */
  im_hold_open(r->link); /* the answer waits for the login's counts (im_login.c) */
  send_opened(r, s);
  metric_inc(M_LOGINS_OK);
  log_event(LOG_INFO, "login", "addr=%s client=%s tag=%s result=%s code=%d reconnect=%d", r->link->ip, s->client_id,
            s->tag, "ok", 0, reconnect);
  /* the reply first, then what it causes (the older sessions' session/closed 4111) */
  for (size_t i = 0; i < nheld; i++) im_session_kick(r->w, held[i], LC_SESSION_CONFLICT, "logged in elsewhere");
  for (size_t i = 0; i < nrheld; i++)
    im_bus_kick(r->w, &rheld[i], s->client_id, LC_SESSION_CONFLICT, "logged in elsewhere");
  im_daily_note(s->client_id, now_ms());
  if (sm->devicetoken) im_device_login_token(r->w, s->client_id, sm->devicetoken); /* Swift (§3.1) */
  if (im_hook_enabled(im, HOOK_CLIENT_ONLINE)) {
    json_t *p = json_pack("{s:s, s:i}", "peerId", s->client_id, "reconnect", reconnect ? 1 : 0);
    if (r->link->ip) json_object_set_new(p, "sourceIP", json_string(r->link->ip));
    if (s->tag) json_object_set_new(p, "tag", json_string(s->tag));
    im_hook_call(r->w, HOOK_CLIENT_ONLINE, p, NULL, NULL);
  }
  if (reconnect) {
    im_room_rejoin(r->w, s);
    if (s->room) im_hold_reply(r->w, r->link); /* the hold, if any, waits for the re-join too */
  }
  /* the counts, then the patches since lastPatchTime: read together, off the loop on PostgreSQL */
  im_msg_after_login(r->w, s, sm->has_lastunreadnotiftime ? sm->lastunreadnotiftime : 0,
                     sm->has_lastpatchtime ? sm->lastpatchtime : 0);
}

void im_session_close(req_t *r) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__session);
  PB_SET(out, op, LC__OP_TYPE__closed);
  out.sessionmessage = &sm;            /* present and empty, as the cloud sends it */
  revoke_lineage(r->w, r->s->lineage); /* a logout: this device's token no longer resumes */
  /* gone first, then the answer, held until the other nodes have the logout queued
   * (im_hold.c); the session's own frames queued before it still go out first */
  im_session_drop(r->w, r->s, 1000);
  r->s = NULL;
  im_hold_reply(r->w, r->link);
  reply(r, &out);
}

void im_session_refresh(req_t *r) {
  im_t *im = r->w->im;
  char st[TOKEN_MAX_LEN + 1];
  token_make_lineage(im->master_key, im->app_id, r->s->client_id, r->s->tag, r->s->lineage, im->cfg->session_ttl, st);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__session);
  PB_SET(out, op, LC__OP_TYPE__refreshed);
  sm.st = st;
  PB_SET(sm, stttl, (int32_t)im->cfg->session_ttl);
  out.sessionmessage = &sm;
  reply(r, &out);
}

void im_session_query(req_t *r) {
  Lc__SessionCommand *in = r->cmd->sessionmessage;
  size_t n = in ? in->n_sessionpeerids : 0;
  if (n > 20) n = 20; /* the documented cap; later ids are not looked at */
  char **online = xcalloc(n ? n : 1, sizeof *online);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (im_client_online(r->w->im, in->sessionpeerids[i])) online[k++] = in->sessionpeerids[i];
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__session);
  PB_SET(out, op, LC__OP_TYPE__query_result);
  sm.n_onlinesessionpeerids = k;
  sm.onlinesessionpeerids = online;
  out.sessionmessage = &sm;
  reply(r, &out);
  free(online);
}

/* ---------------------------------------------------------------- clients seen today */

/* user_count_today (REST /1.2/rtm/stats): a set of 64-bit hashes of the client ids that
 * opened a session since 00:00 UTC, dropped when the day changes. 8 bytes a client instead
 * of the ids themselves; two ids sharing a hash (odds about n²/2^65) count once. In memory
 * only, so a restart starts the day's count again. One lock, held for a probe per login.
 * Its own open addressing, not map.h: 8 bytes a slot where a map entry would be 24 plus an
 * allocation. The hash is the map's keyed one, so ids cannot be chosen to collide. */
static struct {
  pthread_mutex_t mu;
  int64_t day;
  uint64_t *slots; /* open addressing; 0 = empty */
  size_t cap, n;
} daily = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t id_hash(const char *s) {
  uint64_t h = map_hash(s, strlen(s));
  return h ? h : 1; /* 0 marks an empty slot */
}

/* A new UTC day empties the set. Call under daily.mu. */
static void daily_roll(int64_t now) {
  int64_t day = now / 86400000;
  if (day == daily.day) return;
  daily.day = day;
  free(daily.slots);
  daily.slots = NULL;
  daily.cap = daily.n = 0;
}

static void daily_put(uint64_t *slots, size_t cap, uint64_t h, size_t *n) {
  size_t i = (size_t)h & (cap - 1);
  while (slots[i] && slots[i] != h) i = (i + 1) & (cap - 1);
  if (!slots[i]) {
    slots[i] = h;
    (*n)++;
  }
}

void im_daily_note(const char *client, int64_t now) {
  uint64_t h = id_hash(client);
  pthread_mutex_lock(&daily.mu);
  daily_roll(now);
  if ((daily.n + 1) * 2 > daily.cap) { /* at most half full: probes stay short */
    size_t cap = daily.cap ? daily.cap * 2 : 1024, n = 0;
    uint64_t *slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < daily.cap; i++)
      if (daily.slots[i]) daily_put(slots, cap, daily.slots[i], &n);
    free(daily.slots);
    daily.slots = slots;
    daily.cap = cap;
  }
  daily_put(daily.slots, daily.cap, h, &daily.n);
  pthread_mutex_unlock(&daily.mu);
}

size_t im_daily_count(int64_t now) {
  pthread_mutex_lock(&daily.mu);
  daily_roll(now);
  size_t n = daily.n;
  pthread_mutex_unlock(&daily.mu);
  return n;
}
