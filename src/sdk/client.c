/* client.c — AVIMClient: one client id's session on a connection.
 *
 * A client logs in when the socket opens (session/open), and logs in again by itself after
 * every reconnect with r:true and its session token `st`, which is how the server knows it
 * is the same device coming back (protocol.md §3.1). Pushes without `i` arrive here and are
 * routed by peerId to the client, which turns them into delegate calls in the server's
 * order: notifications (joined/left/members_*, updated), messages, receipts, unread counts
 * and the server ending the session (4111 tag conflict, 4115 kick). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "timeutil.h"
#include "utf8.h"

#define CONFIG_BITMAP (1 | 2 | 8 | 32) /* patch, temp convs, transient acks, partial failures */

tern_client_t *tern_client_get(tern_t *t, const char *client_id, const char *tag) {
  if (!t || !client_id || !*client_id || utf8_chars(client_id) > 64) return NULL;
  for (tern_client_t *c = t->clients; c; c = c->next)
    if (strcmp(c->id, client_id) == 0) return c;
  tern_client_t *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->t = t;
  c->id = strdup(client_id);
  c->tag = tag && *tag && strcmp(tag, "default") != 0 ? strdup(tag) : NULL;
  if (!c->id || (tag && *tag && strcmp(tag, "default") != 0 && !c->tag)) {
    free(c->id);
    free(c->tag);
    free(c);
    return NULL;
  }
  c->msg_cache = 1;
  tern_client_t **pp = &t->clients;
  while (*pp) pp = &(*pp)->next;
  *pp = c;
  return c;
}

void client_free(tern_client_t *c) {
  while (c->convs) {
    tern_conv_t *v = c->convs;
    c->convs = v->next;
    conv_free(v);
  }
  while (c->receipts) {
    sent_msg_t *s = c->receipts;
    c->receipts = s->next;
    tern_msg_free(s->m);
    free(s);
  }
  cache_close(c);
  free(c->id);
  free(c->tag);
  free(c->st);
  free(c);
}

const char *tern_client_id(const tern_client_t *c) { return c ? c->id : NULL; }
const char *tern_client_tag(const tern_client_t *c) { return c ? c->tag : NULL; }
tern_t *tern_client_tern(const tern_client_t *c) { return c ? c->t : NULL; }
tern_client_status_t tern_client_status(const tern_client_t *c) { return c ? c->status : TERN_CLIENT_CLOSED; }

void tern_client_set_delegate(tern_client_t *c, const tern_delegate_t *d, void *data) {
  if (!c) return;
  if (d) c->d = *d;
  else memset(&c->d, 0, sizeof c->d);
  c->ddata = data;
}

void tern_client_set_signature_cb(tern_client_t *c, tern_signature_cb cb, void *data) {
  if (!c) return;
  c->sig = cb;
  c->sigdata = data;
}

void tern_client_set_message_cache(tern_client_t *c, int enabled) {
  if (c) c->msg_cache = enabled != 0;
}

int client_ready(const tern_client_t *c) {
  return c->status == TERN_CLIENT_OPEN && conn_is_open(c->t) ? 0 : TERN_ENOTOPEN;
}

int client_sign(tern_client_t *c, const char *cid, const char *action, char **ids, size_t n, char *s, size_t slen,
                int64_t *ts, char *nonce, size_t nlen) {
  if (!c->sig) return 1; /* no data source: unsigned */
  tern_signature_t sig;
  memset(&sig, 0, sizeof sig);
  char **sorted = NULL;
  if (n && str_sorted_ids(ids, n, &sorted) < 0) return TERN_ENOMEM;
  int rc = c->sig(c, cid, action, (const char *const *)sorted, n, &sig, c->sigdata);
  strv_free(sorted, n);
  if (rc < 0) return TERN_ESIGNATURE;
  sig.signature[sizeof sig.signature - 1] = 0;
  sig.nonce[sizeof sig.nonce - 1] = 0;
  snprintf(s, slen, "%s", sig.signature);
  snprintf(nonce, nlen, "%s", sig.nonce);
  *ts = sig.timestamp;
  return 0;
}

/* ---- login ---- */

static void finish_open(tern_client_t *c, int status) {
  tern_client_cb cb = c->open_cb;
  void *data = c->open_data;
  c->open_cb = NULL;
  c->open_data = NULL;
  if (cb) cb(c, status, data);
}

static void send_login(tern_client_t *c);

static void on_login_reply(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  tern_client_t *c = r->c;
  c->open_pending = 0;
  if (c->status == TERN_CLIENT_CLOSED) {
    /* closed while the login was in flight: undo a login the server granted meanwhile */
    if (status == 0 && reply && reply->op == LC__OP_TYPE__opened && conn_is_open(t)) {
      lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
      PB_SET(cmd, cmd, LC__COMMAND_TYPE__session);
      PB_SET(cmd, op, LC__OP_TYPE__close);
      cmd.peerid = c->id;
      conn_send(t, &cmd, NULL);
    }
    conn_maybe_idle(t);
    return;
  }
  int resuming = c->ever_opened && c->status != TERN_CLIENT_OPENING;
  if (status == 0 && reply && reply->cmd == LC__COMMAND_TYPE__session && reply->op == LC__OP_TYPE__opened) {
    if (reply->sessionmessage && reply->sessionmessage->st) {
      free(c->st);
      c->st = strdup(reply->sessionmessage->st);
    }
    c->ever_opened = 1;
    c->kicked = 0;
    c->relogin_no_st = 0;
    c->status = TERN_CLIENT_OPEN;
    t->attempt = 0;
    tlog(t, TERN_LOG_INFO, "client %s %s", c->id, resuming ? "resumed" : "opened");
    if (resuming) {
      if (c->d.on_resumed) c->d.on_resumed(c, c->ddata);
    } else {
      finish_open(c, 0);
    }
    return;
  }
  if (status == 0) status = TERN_EPROTO;
  if (status == TERN_ECLOSED || status == TERN_ECANCELED) return; /* the drop handler decides */
  if (status == -4112 && c->st) {
    /* the token expired: forget it and log in afresh (as the JS SDK does) */
    free(c->st);
    c->st = NULL;
    c->relogin_no_st = 1;
    send_login(c);
    return;
  }
  tlog(t, TERN_LOG_WARN, "login of %s failed: %s", c->id, tern_err_name(status));
  c->status = TERN_CLIENT_CLOSED;
  if (status == -4111) c->kicked = 1;
  if (resuming) {
    if (c->d.on_offline) c->d.on_offline(c, status, c->ddata);
  } else {
    finish_open(c, status);
  }
  conn_maybe_idle(t);
}

static void send_login(tern_client_t *c) {
  tern_t *t = c->t;
  if (c->open_pending) return;
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__session);
  PB_SET(cmd, op, LC__OP_TYPE__open);
  cmd.appid = t->app_id;
  cmd.peerid = c->id;
  char ua[32];
  snprintf(ua, sizeof ua, "libtern/%s", tern_version());
  sm.ua = ua;
  PB_SET(sm, configbitmap, CONFIG_BITMAP);
  int relogin = c->status != TERN_CLIENT_OPENING; /* automatic: after a reconnect */
  int r_flag = relogin || (c->kicked && !c->force);
  if (r_flag) PB_SET(sm, r, 1);
  else PB_SET(sm, r, 0);
  if (relogin && c->st && !c->relogin_no_st) sm.st = c->st;
  if (!relogin && c->tag) sm.tag = c->tag;
  if (c->last_unread_notif) PB_SET(sm, lastunreadnotiftime, c->last_unread_notif);
  char s[128], nonce[128];
  int64_t ts = 0;
  if (!relogin) {
    int rc = client_sign(c, NULL, "open", NULL, 0, s, sizeof s, &ts, nonce, sizeof nonce);
    if (rc < 0) {
      c->status = TERN_CLIENT_CLOSED;
      finish_open(c, rc);
      conn_maybe_idle(t);
      return;
    }
    if (rc == 0) {
      sm.s = s;
      sm.n = nonce;
      PB_SET(sm, t, ts);
    }
  }
  cmd.sessionmessage = &sm;
  req_t *r = req_new(c, on_login_reply, NULL, NULL);
  if (!r) return;
  c->open_pending = 1;
  if (conn_send(t, &cmd, r) < 0) c->open_pending = 0;
}

int tern_client_open(tern_client_t *c, const tern_open_options_t *opt, tern_client_cb cb, void *data) {
  if (!c) return TERN_EINVAL;
  if (c->status != TERN_CLIENT_CLOSED) return TERN_EINVAL;
  if (!c->t->attached) return TERN_ECONFIG;
  c->force = opt ? opt->force != 0 : 0;
  c->status = TERN_CLIENT_OPENING;
  c->open_cb = cb;
  c->open_data = data;
  cache_open(c); /* a cache that cannot open only costs the cache */
  if (conn_is_open(c->t)) send_login(c);
  else conn_need(c->t);
  conn_sched(c->t);
  return 0;
}

typedef struct {
  tern_client_cb cb;
  void *data;
} close_ctx_t;

static void on_close_reply(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  tern_client_t *c = r->c;
  c->status = TERN_CLIENT_CLOSED;
  tern_client_cb cb = (tern_client_cb)r->cb;
  if (status == TERN_ECLOSED) status = 0; /* the socket went: the session is gone as well */
  if (cb) cb(c, status, r->data);
  conn_maybe_idle(t);
}

typedef struct {
  tern_client_t *c;
  tern_client_cb cb, open_cb;
  void *data, *open_data;
} local_close_t;

static void local_close_done(tern_t *t, void *ctx, int canceled) {
  local_close_t *x = ctx;
  if (x->open_cb) x->open_cb(x->c, TERN_ECANCELED, x->open_data);
  if (x->cb) x->cb(x->c, 0, x->data);
  free(x);
}

int tern_client_close(tern_client_t *c, tern_client_cb cb, void *data) {
  if (!c) return TERN_EINVAL;
  if (c->status == TERN_CLIENT_CLOSED) return TERN_EINVAL;
  if (c->status == TERN_CLIENT_OPEN && conn_is_open(c->t)) {
    lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
    PB_SET(cmd, cmd, LC__COMMAND_TYPE__session);
    PB_SET(cmd, op, LC__OP_TYPE__close);
    cmd.peerid = c->id;
    req_t *r = req_new(c, on_close_reply, (void *)cb, data);
    if (!r) return TERN_ENOMEM;
    return conn_send(c->t, &cmd, r);
  }
  /* not logged in right now: closing is local; the callbacks run from the loop */
  local_close_t *x = calloc(1, sizeof *x);
  if (!x) return TERN_ENOMEM;
  x->c = c;
  x->cb = cb;
  x->data = data;
  if (c->status == TERN_CLIENT_OPENING) {
    x->open_cb = c->open_cb;
    x->open_data = c->open_data;
    c->open_cb = NULL;
    c->open_data = NULL;
  }
  int rc = conn_defer(c->t, local_close_done, x);
  if (rc < 0) {
    free(x);
    return rc;
  }
  c->status = TERN_CLIENT_CLOSED;
  conn_maybe_idle(c->t);
  return 0;
}

/* ---- connection events ---- */

void client_on_connected(tern_client_t *c) {
  if (c->status == TERN_CLIENT_OPENING || c->status == TERN_CLIENT_RESUMING || c->status == TERN_CLIENT_PAUSED) {
    if (c->status == TERN_CLIENT_PAUSED) {
      c->status = TERN_CLIENT_RESUMING;
      if (c->d.on_resuming) c->d.on_resuming(c, c->ddata);
    }
    send_login(c);
  }
}

void client_on_dropped(tern_client_t *c, int err) {
  c->open_pending = 0;
  switch (c->status) {
  case TERN_CLIENT_OPEN:
    c->status = TERN_CLIENT_PAUSED;
    if (c->d.on_paused) c->d.on_paused(c, c->ddata);
    break;
  case TERN_CLIENT_OPENING:
    /* the first login could not reach the server: report it, as openWithCallback does */
    c->status = TERN_CLIENT_CLOSED;
    finish_open(c, err);
    break;
  case TERN_CLIENT_RESUMING: c->status = TERN_CLIENT_PAUSED; break;
  default: break;
  }
}

void client_on_resuming(tern_client_t *c) {
  if (c->status == TERN_CLIENT_PAUSED) {
    c->status = TERN_CLIENT_RESUMING;
    if (c->d.on_resuming) c->d.on_resuming(c, c->ddata);
  }
}

/* ---- pushes ---- */

static tern_client_t *route(tern_t *t, const char *peer) {
  for (tern_client_t *c = t->clients; c; c = c->next)
    if (peer && strcmp(c->id, peer) == 0) return c;
  if (peer && *peer) return NULL;
  for (tern_client_t *c = t->clients; c; c = c->next)
    if (c->status == TERN_CLIENT_OPEN) return c; /* no peerId: the first client (§1.6) */
  return NULL;
}

static void on_conv_push(tern_client_t *c, lc_cmd_t *cmd) {
  Lc__ConvCommand *cm = cmd->convmessage;
  if (!cm || !cm->cid) return;
  tern_conv_t *conv = conv_get(c, cm->cid, 1);
  if (!conv) return;
  const char *by = cm->initby;
  int64_t udate = 0;
  if (cm->udate && iso_parse(cm->udate, &udate) == 0) conv->updated = udate;
  switch (cmd->op) {
  case LC__OP_TYPE__joined: {
    char *self = c->id;
    conv_add_members_local(conv, &self, 1);
    if (c->d.on_invited) c->d.on_invited(c, conv, by, c->ddata);
    break;
  }
  case LC__OP_TYPE__members_joined:
    conv_add_members_local(conv, cm->m, cm->n_m);
    if (c->d.on_members_added) c->d.on_members_added(c, conv, (const char *const *)cm->m, cm->n_m, by, c->ddata);
    break;
  case LC__OP_TYPE__left: {
    char *self = c->id;
    conv_remove_members_local(conv, &self, 1);
    if (c->d.on_kicked) c->d.on_kicked(c, conv, by, c->ddata);
    break;
  }
  case LC__OP_TYPE__members_left:
    conv_remove_members_local(conv, cm->m, cm->n_m);
    if (c->d.on_members_removed) c->d.on_members_removed(c, conv, (const char *const *)cm->m, cm->n_m, by, c->ddata);
    break;
  case LC__OP_TYPE__updated: {
    json_t *attr = cm->attr && cm->attr->data ? json_loads(cm->attr->data, 0, NULL) : NULL;
    if (attr) conv_apply_update(conv, attr);
    cache_put_conv(c, conv);
    if (c->d.on_conv_updated)
      c->d.on_conv_updated(c, conv, cm->attr && cm->attr->data ? cm->attr->data : "{}", by, c->ddata);
    json_decref(attr);
    break;
  }
  default: break;
  }
}

static void on_unread(tern_client_t *c, lc_cmd_t *cmd) {
  Lc__UnreadCommand *u = cmd->unreadmessage;
  if (!u) return;
  if (u->has_notiftime) c->last_unread_notif = u->notiftime;
  for (size_t i = 0; i < u->n_convs; i++) {
    Lc__UnreadTuple *ut = u->convs[i];
    tern_conv_t *conv = conv_get(c, ut->cid, 1);
    if (!conv) continue;
    conv->unread = ut->unread;
    if (ut->mid && ut->data) {
      tern_msg_t *m = msg_from_content(c->t, ut->data);
      if (m) {
        msg_set_str(&m->id, ut->mid);
        msg_set_str(&m->cid, ut->cid);
        msg_set_str(&m->from, ut->from);
        m->ts = ut->has_timestamp ? ut->timestamp : 0;
        m->io = ut->from && strcmp(ut->from, c->id) == 0 ? TERN_IO_OUT : TERN_IO_IN;
        m->status = TERN_STATUS_SENT;
        conv_set_last(conv, m);
        tern_msg_free(m);
      }
    }
    if (c->d.on_unread) c->d.on_unread(c, conv, ut->unread, c->ddata);
  }
}

void client_on_push(tern_t *t, lc_cmd_t *cmd) {
  tern_client_t *c = route(t, cmd->peerid);
  if (!c) return;
  if (cmd->cmd == LC__COMMAND_TYPE__session && cmd->op == LC__OP_TYPE__closed) {
    int code = cmd->sessionmessage && cmd->sessionmessage->has_code ? cmd->sessionmessage->code : 0;
    tlog(t, TERN_LOG_WARN, "server ended the session of %s (%d)", c->id, code);
    c->status = TERN_CLIENT_CLOSED;
    c->open_pending = 0;
    if (code == 4111) c->kicked = 1;
    if (c->d.on_offline) c->d.on_offline(c, code ? -code : TERN_EOFFLINE, c->ddata);
    conn_maybe_idle(t);
    return;
  }
  if (c->status != TERN_CLIENT_OPEN) return;
  switch (cmd->cmd) {
  case LC__COMMAND_TYPE__direct: send_on_direct(c, cmd); break;
  case LC__COMMAND_TYPE__rcp: send_on_rcp(c, cmd); break;
  case LC__COMMAND_TYPE__unread: on_unread(c, cmd); break;
  case LC__COMMAND_TYPE__conv: on_conv_push(c, cmd); break;
  default: break;
  }
}
