/* rest_msg.c — messages over REST: send, history, edit, recall, delete, broadcasts.
 *
 * Part of the /1.2/rtm REST API (protocol.md §7); the plumbing every handler uses and the
 * route table are in rest_rtm.c, declared in rest_rtm.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "err.h"
#include "jsonlim.h"
#include "rest_rtm.h"
#include "timeutil.h"
#include "utf8.h"

/* ---------------------------------------------------------------- messages */

static int priority_of(const char *p) {
  if (!p) return 2;
  if (strcasecmp(p, "high") == 0) return 1;
  if (strcasecmp(p, "low") == 0) return 3;
  return 2;
}

/* The message a REST body carries: a string, or an object sent as its JSON text. */
static char *message_text(json_t *body) {
  json_t *message = json_object_get(body, "message");
  return json_is_string(message)   ? xstrdup(json_string_value(message))
         : json_is_object(message) ? json_dumps(message, JSON_COMPACT)
                                   : NULL;
}

enum { SEND_PLAIN, SEND_BROADCAST };

/* POST /1.2/rtm/{…}/:cid/messages {from_client, message, transient, no_sync, push_data,
 * priority, mention_all, mention_client_ids} → {"msg-id", "timestamp"} once stored. A
 * service conversation's /messages go to to_clients (≤ 20) only; its /broadcasts to every
 * subscriber. */
static void send_message(conn_t *c, const http_req_t *r, int mode, int global) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  /* POST /1.2/rtm/broadcasts names its service conversation in the body */
  const char *conv_id = global ? json_string_value(json_object_get(body, "conv_id")) : NULL;
  json_t *valid_till = global ? json_object_get(body, "valid_till") : NULL;
  int64_t now = now_ms();
  const char *from = json_string_value(json_object_get(body, "from_client"));
  char *text = message_text(body);
  json_t *pd = json_object_get(body, "push_data");
  if (!pd) pd = json_object_get(body, "push");
  char *push_data = json_is_object(pd)   ? json_dumps(pd, JSON_COMPACT)
                    : json_is_string(pd) ? xstrdup(json_string_value(pd))
                                         : NULL;
  size_t nm = 0, nto = 0;
  char **mentions =
      json_is_object(body) ? rest_string_array(json_object_get(body, "mention_client_ids"), 20, &nm) : NULL;
  char **to = json_is_object(body) ? rest_string_array(json_object_get(body, "to_clients"), 20, &nto) : NULL;
  im_worker_t *w = c->w->imw;
  int sys = rest_path_kind(r) == CONV_SYSTEM;
  if (!json_is_object(body) || !from || !text) {
    rest_bad(c, r, "from_client (a client id) and message (a string) are required");
  } else if (!rest_client_id_ok(c, r, from, "from_client")) {
    /* answered */
  } else if (global && (!conv_id || !*conv_id)) {
    rest_bad(c, r, "conv_id (a service conversation) is required");
  } else if (valid_till && (!json_is_integer(valid_till) || json_integer_value(valid_till) <= now ||
                            json_integer_value(valid_till) > now + 31 * 86400000LL)) {
    rest_bad(c, r, "valid_till must be a time in ms within the next month");
  } else if (strlen(text) > (size_t)w->im->cfg->max_message) {
    http_respond_error(c, r, 400, LC_FRAME_TOO_LONG, "message larger than the configured limit");
  } else if (!mentions) {
    rest_bad(c, r, "mention_client_ids must be an array of at most 20 client ids");
  } else if (!to || (sys && mode == SEND_PLAIN && nto == 0)) {
    rest_bad(c, r, "to_clients must be an array of 1 to 20 client ids (…/broadcasts reaches every subscriber)");
  } else if (nto && (!sys || mode != SEND_PLAIN)) {
    rest_bad(c, r, "to_clients is for a service conversation's …/messages");
  } else if (pd && !push_data) {
    rest_bad(c, r, "push_data must be a JSON object");
  } else {
    conv_t *conv = global ? rest_find_conv(c, r, conv_id, CONV_SYSTEM) : rest_path_conv(c, r);
    if (conv) {
      im_done_t d;
      /* a REST message to a chat room is never copied to the sender's own sessions */
      rest_msg_t msg = {.data = (const uint8_t *)text,
                        .len = strlen(text),
                        .transient = json_is_true(json_object_get(body, "transient")),
                        .no_sync = json_is_true(json_object_get(body, "no_sync")) || conv->kind == CONV_ROOM,
                        .priority = priority_of(json_string_value(json_object_get(body, "priority"))),
                        .mention_all = json_is_true(json_object_get(body, "mention_all")),
                        .mentions = mentions,
                        .nm = nm,
                        .push_data = push_data,
                        .to = to,
                        .nto = nto};
      im_rest_send(w, conv, from, &msg, rest_done(rest_wait(c, rest_shape_copy, conv->cid), &d));
    }
  }
  free(mentions);
  free(to);
  free(push_data);
  free(text);
  json_decref(body);
}

void rest_send(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_PLAIN, 0); }
void rest_broadcast(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_BROADCAST, 0); }
/* POST /1.2/rtm/broadcasts {from_client, conv_id, message, valid_till, push, transient}: a
 * broadcast to the service conversation's subscribers, as …/:cid/broadcasts. valid_till
 * is checked (≤ a month ahead) and not otherwise used: see docs/protocol-map.md. */
void rest_global_broadcast(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_BROADCAST, 1); }

/* PUT …/:cid/messages/:mid {"from_client", "message"} (edit) and …/:mid/recall
 * {"from_client"}: only as the message's sender; members get the patch push (§3.18).
 * "timestamp" is accepted and not needed: tern's message ids carry it. */
static void patch_message(conn_t *c, const http_req_t *r, int recall) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  const char *from = json_string_value(json_object_get(body, "from_client"));
  json_t *message = json_object_get(body, "message");
  char *text = json_is_string(message)   ? xstrdup(json_string_value(message))
               : json_is_object(message) ? json_dumps(message, JSON_COMPACT)
                                         : NULL;
  if (!json_is_object(body) || !from || (!recall && !text)) {
    rest_bad(c, r,
             recall ? "from_client (the sender) is required" : "from_client (the sender) and message are required");
  } else if (rest_client_id_ok(c, r, from, "from_client")) {
    conv_t *conv = rest_path_conv(c, r);
    if (conv) {
      im_done_t d;
      rest_wait_t *wt = rest_wait(c, rest_shape_empty, conv->cid);
      int code = im_rest_patch(c->w->imw, conv->cid, http_path_param(r, "mid"), from, (const uint8_t *)text,
                               text ? strlen(text) : 0, 0, recall, rest_done(wt, &d));
      if (code) rest_answer(c->w->imw, wt, code, NULL);
      conv_release(conv);
    }
  }
  free(text);
  json_decref(body);
}

void rest_edit(conn_t *c, const http_req_t *r) { patch_message(c, r, 0); }
void rest_recall(conn_t *c, const http_req_t *r) { patch_message(c, r, 1); }

/* DELETE …/:cid/messages/:mid?from_client&timestamp — the server's copy only. */
void rest_delete_message(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  char *from = http_query_param(r, "from_client");
  if (from && *from && !rest_client_id_ok(c, r, from, "from_client")) {
    free(from);
    conv_release(conv);
    return;
  }
  im_done_t d;
  rest_wait_t *wt = rest_wait(c, rest_shape_empty, conv->cid);
  int code = im_rest_delete(c->w->imw, conv, http_path_param(r, "mid"), from && *from ? from : NULL, rest_done(wt, &d));
  if (code) rest_answer(c->w->imw, wt, code, NULL);
  free(from);
  conv_release(conv);
}

/* GET /1.2/rtm/{…}/:cid/messages?msgid&timestamp&till_msgid&till_timestamp&include_start&
 * include_stop&reversed&limit — newest first unless reversed; limit default 100, max 1000. */
void rest_history(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  const char *viewer = http_path_param(r, "client_id"); /* …/subscribers/:client_id/messages */
  if (viewer && !rest_client_id_ok(c, r, viewer, "the client id in the path")) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  char *msgid = http_query_param(r, "msgid"), *till = http_query_param(r, "till_msgid");
  int limit = (int)rest_qint(r, "limit", 100);
  if (limit < 0) limit = 0;
  if (limit > 1000) limit = 1000;
  json_t *arr;
  /* …/subscribers/:client_id/messages: what that subscriber may read */
  if (im_rest_history(c->w->imw, conv, viewer, msgid, rest_qint(r, "timestamp", 0), till,
                      rest_qint(r, "till_timestamp", 0), rest_qbool(r, "include_start"), rest_qbool(r, "include_stop"),
                      rest_qbool(r, "reversed"), limit, &arr) < 0)
    http_respond_error(c, r, 500, 1, "history failed");
  else http_respond_json(c, r, 200, arr);
  free(msgid);
  free(till);
  conv_release(conv);
}

/* ---------------------------------------------------------------- app-wide history */

/* One history item (the shape of im_rest_history's) for a message of any conversation. */
static json_t *app_item(const char *cid, int kind, const msg_view_t *m) {
  int bin = m->flags & MSG_F_BIN;
  json_t *data;
  if (bin) {
    char *b64 = xmalloc(base64_encoded_len(m->len) + 1);
    data = json_stringn(b64, base64_encode(m->data, m->len, b64));
    free(b64);
  } else {
    data = json_stringn_lossy((const char *)m->data, m->len);
  }
  json_t *it = json_pack("{s:I, s:o, s:s, s:s, s:b, s:s, s:s, s:b, s:b}", "timestamp", (json_int_t)m->ts, "data", data,
                         "from", m->sender, "msg-id", m->mid, "bin", bin != 0, "conv-id", cid, "to", cid, "is-conv", 1,
                         "is-room", kind == CONV_ROOM);
  im_rest_item_extras(it, m);
  return it;
}

static void app_row(void *arg, const char *cid, int kind, const msg_view_t *m) {
  json_array_append_new(arg, app_item(cid, kind, m));
}

/* A page of the app's history, read on the thread pool with a reader of its own: it scans
 * the message table (store_app_logs), which must not hold up a network loop. */
typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  store_t *store;
  app_logs_req_t q;
  char *sender, *lo_mid, *hi_mid;
  int lo_ext, hi_ext; /* the bound's id may be an imported one: find its key */
  json_t *out;        /* NULL: the read failed */
} app_hist_t;

/* An imported message's id encodes no key: its mapping gives it, else the time alone. */
static void ext_bound(store_reader_t *rd, msg_bound_t *b) {
  int64_t ts, seq;
  if (store_msg_ext_find(rd, b->mid, &ts, &seq) == 0) {
    b->ts = ts;
    b->seq = seq;
    return;
  }
  b->mid = NULL;
  b->has = b->ts > 0;
}

static void app_hist_work(uv_work_t *wk) {
  app_hist_t *h = (app_hist_t *)wk;
  store_reader_t *rd = store_reader_new(h->store);
  if (rd && h->lo_ext) ext_bound(rd, &h->q.lo);
  if (rd && h->hi_ext) ext_bound(rd, &h->q.hi);
  json_t *arr = json_array();
  if (!rd || store_app_logs(rd, &h->q, app_row, arr) < 0) {
    json_decref(arr);
    arr = NULL;
  }
  store_reader_free(rd);
  h->out = arr;
}

static void app_hist_after(uv_work_t *wk, int status) {
  app_hist_t *h = (app_hist_t *)wk;
  conn_t *c;
  const http_req_t *r = http_deferred_find(h->w, h->conn, &c);
  if (r) {
    if (h->out) http_respond_json(c, r, 200, json_incref(h->out));
    else http_respond_error(c, r, 500, 1, "history failed");
    http_resume(c);
  }
  json_decref(h->out);
  free(h->sender);
  free(h->lo_mid);
  free(h->hi_mid);
  free(h);
}

/* A page bound from (msgid, timestamp): the message itself when the id is ours, else the
 * time. *mid_out keeps the id the bound points into. An id that does not encode the
 * timestamp given with it may be an imported one: *ext asks the work to look it up. */
static void app_bound(const http_req_t *r, const char *mid_key, const char *ts_key, const char *incl_key,
                      msg_bound_t *b, char **mid_out, int *ext) {
  char *mid = http_query_param(r, mid_key);
  int64_t ts = rest_qint(r, ts_key, 0), mts, mseq;
  b->incl = rest_qbool(r, incl_key);
  if (mid && msgid_parse(mid, &mts, &mseq) == 0 && (ts <= 0 || ts == mts)) {
    b->has = 1;
    b->ts = mts;
    b->seq = mseq;
    b->mid = *mid_out = mid;
    return;
  }
  if (mid && *mid && strlen(mid) <= 64) {
    b->has = 1;
    b->ts = ts > 0 ? ts : 0;
    b->mid = *mid_out = mid;
    *ext = 1;
    return;
  }
  free(mid);
  if (ts > 0) {
    b->has = 1;
    b->ts = ts;
  }
}

/* GET /1.2/rtm/messages and GET /1.2/rtm/clients/:client_id/messages (the messages that
 * client sent): history params as …/:cid/messages (msgid+timestamp start, till_msgid+
 * till_timestamp end, include_start, include_stop, reversed, limit 100 ≤ 1000), across
 * every conversation in (timestamp, msg-id) order. */
void rest_app_history(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  const char *sender = http_path_param(r, "client_id");
  if (sender && !rest_client_id_ok(c, r, sender, "the client id in the path")) return;
  app_hist_t *h = xcalloc(1, sizeof *h);
  h->w = c->w;
  h->conn = c->id;
  h->store = c->w->imw->im->store;
  h->q.newer = rest_qbool(r, "reversed");
  h->q.limit = (int)rest_qint(r, "limit", 100);
  if (h->q.limit < 0) h->q.limit = 0;
  if (h->q.limit > 1000) h->q.limit = 1000;
  h->q.sender = h->sender = sender ? xstrdup(sender) : NULL;
  /* newest first: the start is the upper bound; reversed: the lower */
  msg_bound_t *start = h->q.newer ? &h->q.lo : &h->q.hi, *stop = h->q.newer ? &h->q.hi : &h->q.lo;
  app_bound(r, "msgid", "timestamp", "include_start", start, h->q.newer ? &h->lo_mid : &h->hi_mid,
            h->q.newer ? &h->lo_ext : &h->hi_ext);
  app_bound(r, "till_msgid", "till_timestamp", "include_stop", stop, h->q.newer ? &h->hi_mid : &h->lo_mid,
            h->q.newer ? &h->hi_ext : &h->lo_ext);
  http_defer(c);
  uv_queue_work(&c->w->loop, &h->work, app_hist_work, app_hist_after);
}

/* ---------------------------------------------------------------- broadcasts */

/* The service conversation named by ?conv_id; answers 400 or 404 itself. */
static conv_t *query_service_conv(conn_t *c, const http_req_t *r) {
  char *cid = http_query_param(r, "conv_id");
  conv_t *conv = NULL;
  if (!cid || !*cid) rest_bad(c, r, "conv_id (a service conversation) is required");
  else conv = rest_find_conv(c, r, cid, CONV_SYSTEM);
  free(cid);
  return conv;
}

/* GET /1.2/rtm/broadcasts?conv_id&limit(default 10, ≤ 1000)&skip → the service
 * conversation's broadcasts, newest first, as history items: its messages for every
 * subscriber, not those for chosen subscribers or a subscriber's own. */
void rest_broadcast_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = query_service_conv(c, r);
  if (!conv) return;
  int limit = rest_page_limit(r, 10, 1000);
  int64_t skip = rest_qint(r, "skip", 0);
  if (skip < 0) skip = 0;
  if (skip > 10000) skip = 10000;
  json_t *arr;
  /* viewer "": no client is named "", so only the messages with no readers list match */
  if (im_rest_history(c->w->imw, conv, "", NULL, 0, NULL, 0, 0, 0, 0, limit + (int)skip, &arr) < 0) {
    http_respond_error(c, r, 500, 1, "history failed");
  } else {
    json_t *page = json_array();
    for (size_t i = (size_t)skip; i < json_array_size(arr); i++) json_array_append(page, json_array_get(arr, i));
    json_decref(arr);
    http_respond_json(c, r, 200, page);
  }
  conv_release(conv);
}

/* DELETE /1.2/rtm/broadcasts/:mid?conv_id → {}: the server's copy goes (as …/messages/:mid). */
void rest_broadcast_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = query_service_conv(c, r);
  if (!conv) return;
  im_done_t d;
  rest_wait_t *wt = rest_wait(c, rest_shape_empty, conv->cid);
  int code = im_rest_delete(c->w->imw, conv, http_path_param(r, "mid"), NULL, rest_done(wt, &d));
  if (code) rest_answer(c->w->imw, wt, code, NULL);
  conv_release(conv);
}
