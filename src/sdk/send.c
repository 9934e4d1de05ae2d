/* send.c — messages on the wire: sending (with ack), receiving (with the client ack),
 * delivery receipts, marking read, and history (`logs`) with the local cache.
 *
 * A send copies the caller's message, uploads its file first when it has a local path,
 * then sends `direct` and completes on the server's ack {uid, t}. Received messages are
 * acked one by one like the Swift/Java SDKs ({cid, mid}), de-duplicated by id (delivery is
 * at least once), written to the cache and handed to the delegate. History asks the cache
 * first where the guide says so (paging back from a message), and records every page the
 * server returns with the continuity facts the cache needs to answer later pages. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "internal.h"

#define RECEIPTS_MAX 256

/* ---- sending ---- */

typedef struct {
  tern_conv_t *conv;
  tern_msg_t *m;
  unsigned opts;
  tern_send_cb cb;
  void *data;
} send_ctx_t;

static void send_ctx_free(void *p) {
  send_ctx_t *x = p;
  if (!x) return;
  tern_msg_free(x->m);
  free(x);
}

static void keep_for_receipt(tern_client_t *c, const tern_msg_t *m) {
  sent_msg_t *s = calloc(1, sizeof *s);
  if (!s) return;
  s->m = tern_msg_dup(m);
  if (!s->m) {
    free(s);
    return;
  }
  s->next = c->receipts;
  c->receipts = s;
  if (++c->nreceipts > RECEIPTS_MAX) { /* forget the oldest */
    sent_msg_t **pp = &c->receipts;
    while ((*pp)->next) pp = &(*pp)->next;
    tern_msg_free((*pp)->m);
    free(*pp);
    *pp = NULL;
    c->nreceipts--;
  }
}

static void on_ack(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  send_ctx_t *x = r->ctx;
  tern_msg_t *m = x->m;
  if (status == 0 && (!reply || !reply->ackmessage)) status = TERN_EPROTO;
  if (status == 0) {
    Lc__AckCommand *a = reply->ackmessage;
    msg_set_str(&m->id, a->uid);
    if (a->has_t) m->ts = a->t;
    m->status = TERN_STATUS_SENT;
    if (!m->transient) {
      conv_set_last(x->conv, m);
      cache_put_msg(r->c, m);
    }
    if (x->opts & TERN_SEND_RECEIPT) keep_for_receipt(r->c, m);
  } else {
    m->status = TERN_STATUS_FAILED;
  }
  if (x->cb) x->cb(x->conv, m, status, x->data);
}

static int do_send(send_ctx_t *x) {
  tern_client_t *c = x->conv->c;
  int rc = client_ready(c);
  if (rc < 0) return rc;
  rc = msg_encode(x->m);
  if (rc < 0) return rc;
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__DirectCommand dm = LC__DIRECT_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__direct);
  cmd.peerid = c->id;
  dm.cid = x->conv->id;
  dm.msg = x->m->content;
  if (x->opts & TERN_SEND_RECEIPT) PB_SET(dm, r, 1);
  if (x->opts & TERN_SEND_TRANSIENT) PB_SET(dm, transient, 1);
  cmd.directmessage = &dm;
  req_t *r = req_new(c, on_ack, NULL, NULL);
  if (!r) return TERN_ENOMEM;
  r->conv = x->conv;
  r->ctx = x;
  rc = conn_send(c->t, &cmd, r); /* on failure r goes, x stays the caller's */
  if (rc == 0) r->ctx_free = send_ctx_free;
  return rc;
}

static void on_uploaded(tern_t *t, void *ctx, int status) {
  send_ctx_t *x = ctx;
  if (status == 0) {
    int rc = do_send(x);
    if (rc == 0) return;
    status = rc;
  }
  x->m->status = TERN_STATUS_FAILED;
  if (x->cb) x->cb(x->conv, x->m, status, x->data);
  send_ctx_free(x);
}

int tern_conv_send(tern_conv_t *conv, const tern_msg_t *msg, unsigned options, tern_send_cb cb, void *data) {
  if (!conv || !msg) return TERN_EINVAL;
  tern_client_t *c = conv->c;
  int rc = client_ready(c);
  if (rc < 0) return rc;
  send_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return TERN_ENOMEM;
  x->conv = conv;
  x->opts = options;
  x->cb = cb;
  x->data = data;
  x->m = tern_msg_dup(msg);
  if (!x->m) {
    free(x);
    return TERN_ENOMEM;
  }
  tern_msg_t *m = x->m;
  msg_set_str(&m->cid, conv->id);
  msg_set_str(&m->from, c->id);
  msg_set_str(&m->id, NULL);
  m->io = TERN_IO_OUT;
  m->status = TERN_STATUS_SENDING;
  m->transient = (options & TERN_SEND_TRANSIENT) != 0;
  if (m->typed) {
    free(m->content);
    m->content = NULL;
  }
  if (m->file_path && !m->file_url) {
    rc = upload_start(c->t, m, on_uploaded, x);
    if (rc < 0) send_ctx_free(x);
    return rc;
  }
  rc = do_send(x);
  if (rc < 0) send_ctx_free(x);
  return rc;
}

/* ---- receiving ---- */

static int seen_before(tern_client_t *c, const char *id) {
  for (size_t i = 0; i < sizeof c->recent / sizeof c->recent[0]; i++)
    if (c->recent[i] && strcmp(c->recent[i], id) == 0) return 1;
  unsigned slot = c->recent_pos++ % (sizeof c->recent / sizeof c->recent[0]);
  free(c->recent[slot]);
  c->recent[slot] = strdup(id);
  return 0;
}

static void send_ack(tern_client_t *c, const char *cid, const char *mid) {
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__AckCommand a = LC__ACK_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__ack);
  cmd.peerid = c->id;
  a.cid = (char *)cid;
  a.mid = (char *)mid;
  cmd.ackmessage = &a;
  conn_send(c->t, &cmd, NULL);
}

void send_on_direct(tern_client_t *c, lc_cmd_t *cmd) {
  Lc__DirectCommand *d = cmd->directmessage;
  if (!d || !d->cid || !d->id) return;
  int own = d->frompeerid && strcmp(d->frompeerid, c->id) == 0;
  int transient = d->has_transient && d->transient;
  tern_conv_t *conv = conv_get(c, d->cid, 1);
  if (!conv) return;
  if (!transient && !own && !conv->transient) send_ack(c, d->cid, d->id);
  if (seen_before(c, d->id)) return;
  char *content = d->msg;
  char *b64 = NULL;
  if (!content && d->has_binarymsg) { /* binary messages are shown as base64 text */
    b64 = malloc(base64_encoded_len(d->binarymsg.len) + 1);
    if (!b64) return;
    b64[base64_encode(d->binarymsg.data, d->binarymsg.len, b64)] = 0;
    content = b64;
  }
  tern_msg_t *m = msg_from_content(c->t, content);
  free(b64);
  if (!m) return;
  msg_set_str(&m->id, d->id);
  msg_set_str(&m->cid, d->cid);
  msg_set_str(&m->from, d->frompeerid);
  m->ts = d->has_timestamp ? d->timestamp : 0;
  m->io = own ? TERN_IO_OUT : TERN_IO_IN;
  m->status = own ? TERN_STATUS_SENT : TERN_STATUS_DELIVERED;
  m->transient = transient;
  if (!transient) {
    conv_set_last(conv, m);
    cache_put_msg(c, m);
  }
  if (m->typed) {
    if (c->d.on_message) c->d.on_message(c, conv, m, c->ddata);
  } else if (c->d.on_common_message) {
    c->d.on_common_message(c, conv, m, c->ddata);
  }
  tern_msg_free(m);
}

void send_on_rcp(tern_client_t *c, lc_cmd_t *cmd) {
  Lc__RcpCommand *rc = cmd->rcpmessage;
  if (!rc || !rc->cid || (rc->has_read && rc->read)) return; /* read receipts: not in the guide */
  tern_conv_t *conv = conv_get(c, rc->cid, 1);
  if (!conv) return;
  tern_msg_t *m = NULL;
  sent_msg_t **pp = &c->receipts;
  for (; rc->id && *pp; pp = &(*pp)->next)
    if ((*pp)->m->id && strcmp((*pp)->m->id, rc->id) == 0) break;
  if (rc->id && *pp) {
    sent_msg_t *s = *pp;
    *pp = s->next;
    c->nreceipts--;
    m = s->m;
    free(s);
  } else {
    m = msg_alloc();
    if (!m) return;
    msg_set_str(&m->id, rc->id);
    msg_set_str(&m->cid, rc->cid);
    msg_set_str(&m->from, c->id);
    m->io = TERN_IO_OUT;
  }
  m->delivered_at = rc->has_t ? rc->t : 0;
  m->status = TERN_STATUS_DELIVERED;
  if (m->content) cache_put_msg(c, m);
  if (c->d.on_message_delivered) c->d.on_message_delivered(c, conv, m, c->ddata);
  tern_msg_free(m);
}

int tern_conv_read(tern_conv_t *conv) {
  if (!conv) return TERN_EINVAL;
  int rc = client_ready(conv->c);
  if (rc < 0) return rc;
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ReadCommand rm = LC__READ_COMMAND__INIT;
  Lc__ReadTuple tup = LC__READ_TUPLE__INIT;
  Lc__ReadTuple *tups[1] = {&tup};
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__read);
  cmd.peerid = conv->c->id;
  tup.cid = conv->id;
  if (conv->last) {
    if (conv->last->id) tup.mid = conv->last->id;
    if (conv->last->ts) PB_SET(tup, timestamp, conv->last->ts);
  }
  rm.convs = tups;
  rm.n_convs = 1;
  cmd.readmessage = &rm;
  conv->unread = 0;
  return conn_send(conv->c->t, &cmd, NULL);
}

/* ---- history ---- */

typedef struct {
  tern_conv_t *conv;
  char *mid;
  int64_t ts;
  int limit;
  int use_cache;
  tern_history_cb cb;
  void *data;
  tern_msg_t **msgs;
  size_t n;
} hist_ctx_t;

static void hist_ctx_free(void *p) {
  hist_ctx_t *x = p;
  if (!x) return;
  for (size_t i = 0; i < x->n; i++) tern_msg_free(x->msgs[i]);
  free(x->msgs);
  free(x->mid);
  free(x);
}

static void hist_from_cache(tern_t *t, void *ctx, int canceled) {
  hist_ctx_t *x = ctx;
  if (x->cb) x->cb(x->conv, (const tern_msg_t *const *)x->msgs, x->n, 1, canceled ? TERN_ECANCELED : 0, x->data);
  hist_ctx_free(x);
}

static void on_logs(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  hist_ctx_t *x = r->ctx;
  tern_client_t *c = r->c;
  if (status == 0 && (!reply || !reply->logsmessage)) status = TERN_EPROTO;
  if (status == 0) {
    Lc__LogsCommand *lg = reply->logsmessage;
    x->msgs = calloc(lg->n_logs ? lg->n_logs : 1, sizeof *x->msgs);
    if (!x->msgs) status = TERN_ENOMEM;
    for (size_t i = 0; status == 0 && i < lg->n_logs; i++) {
      Lc__LogItem *it = lg->logs[i];
      tern_msg_t *m = msg_from_content(t, it->data ? it->data : "");
      if (!m) continue;
      msg_set_str(&m->id, it->msgid);
      msg_set_str(&m->cid, x->conv->id);
      msg_set_str(&m->from, it->from);
      m->ts = it->has_timestamp ? it->timestamp : 0;
      m->delivered_at = it->has_ackat ? it->ackat : 0;
      m->io = it->from && strcmp(it->from, c->id) == 0 ? TERN_IO_OUT : TERN_IO_IN;
      m->status = m->delivered_at ? TERN_STATUS_DELIVERED : TERN_STATUS_SENT;
      x->msgs[x->n++] = m;
    }
    if (status == 0) {
      if (x->n) conv_set_last(x->conv, x->msgs[x->n - 1]);
      if (x->use_cache) cache_put_msgs(c, x->conv->id, x->msgs, x->n, (int)x->n < x->limit, x->mid);
    }
  }
  if (status != 0 && x->use_cache && status != TERN_ECANCELED) {
    /* network else cache (the guide: offline, the cache answers) */
    tern_msg_t **msgs = NULL;
    size_t n = 0;
    if (cache_get_before(c, x->conv->id, x->mid, x->ts, x->limit, x->mid == NULL, &msgs, &n) == 0) {
      if (x->cb) x->cb(x->conv, (const tern_msg_t *const *)msgs, n, 1, 0, x->data);
      for (size_t i = 0; i < n; i++) tern_msg_free(msgs[i]);
      free(msgs);
      return;
    }
  }
  if (x->cb) x->cb(x->conv, (const tern_msg_t *const *)x->msgs, status == 0 ? x->n : 0, 0, status, x->data);
}

static int history(tern_conv_t *conv, const char *mid, int64_t ts, int limit, int cache_first, int use_cache,
                   tern_history_cb cb, void *data) {
  if (!conv || limit < 0 || limit > 1000) return TERN_EINVAL;
  if (limit == 0) limit = 20;
  tern_client_t *c = conv->c;
  hist_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return TERN_ENOMEM;
  x->conv = conv;
  x->ts = ts;
  x->limit = limit;
  x->cb = cb;
  x->data = data;
  x->use_cache = use_cache && c->msg_cache && c->db;
  if (mid && !(x->mid = strdup(mid))) {
    free(x);
    return TERN_ENOMEM;
  }
  int ready = client_ready(c);
  if (x->use_cache && (cache_first || ready < 0)) {
    if (cache_get_before(c, conv->id, x->mid, ts, limit, x->mid == NULL && ready < 0, &x->msgs, &x->n) == 0) {
      int rc = conn_defer(c->t, hist_from_cache, x);
      if (rc < 0) hist_ctx_free(x);
      return rc;
    }
  }
  if (ready < 0) {
    hist_ctx_free(x);
    return ready;
  }
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__LogsCommand lg = LC__LOGS_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__logs);
  cmd.peerid = c->id;
  lg.cid = conv->id;
  PB_SET(lg, limit, limit);
  PB_SET(lg, l, limit);
  if (x->mid || ts) {
    PB_SET(lg, t, ts);
    lg.mid = x->mid;
  }
  cmd.logsmessage = &lg;
  req_t *r = req_new(c, on_logs, NULL, NULL);
  if (!r) {
    hist_ctx_free(x);
    return TERN_ENOMEM;
  }
  r->conv = conv;
  r->ctx = x;
  r->ctx_free = hist_ctx_free;
  return conn_send(c->t, &cmd, r);
}

int tern_conv_query_messages(tern_conv_t *conv, int limit, tern_history_cb cb, void *data) {
  return history(conv, NULL, 0, limit, 0, 1, cb, data);
}

int tern_conv_query_messages_before(tern_conv_t *conv, const char *msg_id, int64_t timestamp, int limit,
                                    tern_history_cb cb, void *data) {
  if (!msg_id && !timestamp) return TERN_EINVAL;
  return history(conv, msg_id, timestamp, limit, 1, 1, cb, data);
}

int tern_conv_query_messages_from_server(tern_conv_t *conv, int limit, tern_history_cb cb, void *data) {
  return history(conv, NULL, 0, limit, 0, 0, cb, data);
}
