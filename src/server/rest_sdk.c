/* rest_sdk.c — the HTTP endpoints the official SDKs call on their own (protocol.md §7.4):
 * `_ConversationMemberInfo` (member roles) and `/rtm/notifications`.
 *
 * Both act for one client and are authorised by its session token (`st`, sent as
 * X-LC-IM-Session-Token with `client_id`), after the app's X-LC-Id/X-LC-Key check. They run
 * on the worker that parsed the request and read through its store reader, like the
 * WebSocket handlers. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"
#include "http.h"
#include "im_internal.h"
#include "rest.h"
#include "timeutil.h"
#include "token.h"
#include "worker.h"

/* X-LC-Sign: md5hex(timestamp + key) "," timestamp-ms [",master"] — the key never travels.
 * Returns 1 master, 0 app key, -1 invalid. */
static int check_sign_header(server_t *srv, const char *sign) {
  char hex[33];
  const char *comma = strchr(sign, ',');
  if (!comma || comma - sign != 32) return -1;
  memcpy(hex, sign, 32);
  hex[32] = 0;
  char ts[32];
  const char *end = strchr(comma + 1, ',');
  size_t tl = end ? (size_t)(end - comma - 1) : strlen(comma + 1);
  if (tl == 0 || tl >= sizeof ts) return -1;
  memcpy(ts, comma + 1, tl);
  ts[tl] = 0;
  int master = end && strcmp(end + 1, "master") == 0;
  if (end && !master) return -1;
  int64_t t = strtoll(ts, NULL, 10), now = now_ms(), window = srv->cfg->sign_ttl * 1000;
  if (t < now - window || t > now + window) return -1;
  buf_t b = BUF_INIT;
  buf_append_str(&b, ts);
  buf_append_str(&b, master ? srv->master_key : srv->app_key);
  uint8_t d[16];
  md5(b.data, b.len, d);
  buf_free(&b);
  char want[33];
  hex_encode(d, 16, want);
  for (int i = 0; i < 32; i++)
    if (hex[i] >= 'A' && hex[i] <= 'F') hex[i] = (char)(hex[i] + 32);
  return ct_equal(want, 32, hex, 32) ? master : -1;
}

/* X-LC-Id must name this app, and X-LC-Key carry its app key (or master key with
 * ",master") or X-LC-Sign a valid signature of one. Answers 401/403 itself and returns -1
 * when not. */
int rest_check_app(conn_t *c, const http_req_t *r, int need_master) {
  server_t *srv = c->w->srv;
  const char *id = http_header(r, "X-LC-Id");
  const char *key = http_header(r, "X-LC-Key");
  const char *sign = http_header(r, "X-LC-Sign");
  if (!id || strcmp(id, srv->app_id) != 0) {
    http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Id does not name this app.");
    return -1;
  }
  if (!key && sign) {
    int master = check_sign_header(srv, sign);
    if (master < 0) {
      http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Sign is not valid.");
      return -1;
    }
    if (need_master && !master) {
      http_respond_error(c, r, 403, 403, "Forbidden: the master key is required.");
      return -1;
    }
    return 0;
  }
  if (!key) {
    http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Key is missing.");
    return -1;
  }
  size_t kl = strlen(key);
  int master = kl > 7 && strcmp(key + kl - 7, ",master") == 0;
  size_t bare = master ? kl - 7 : kl;
  const char *want = master ? srv->master_key : srv->app_key;
  if (!ct_equal(key, bare, want, strlen(want))) {
    http_respond_error(c, r, 401, 401, "Unauthorized: wrong key.");
    return -1;
  }
  if (need_master && !master) {
    http_respond_error(c, r, 403, 403, "Forbidden: the master key is required.");
    return -1;
  }
  return 0;
}

int rest_is_master(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  const char *id = http_header(r, "X-LC-Id"), *key = http_header(r, "X-LC-Key"), *sign = http_header(r, "X-LC-Sign");
  if (!id || strcmp(id, srv->app_id) != 0) return 0;
  if (!key) return sign && check_sign_header(srv, sign) == 1;
  size_t kl = strlen(key);
  return kl > 7 && strcmp(key + kl - 7, ",master") == 0 && ct_equal(key, kl - 7, srv->master_key, strlen(srv->master_key));
}

/* The client a session-token request acts for, or NULL after answering 401. */
char *rest_session_client(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  char *client = http_query_param(r, "client_id");
  const char *st = http_header(r, "X-LC-IM-Session-Token");
  if (!client || !st || token_check(srv->master_key, srv->app_id, client, st, NULL, NULL) != 0) {
    free(client);
    http_respond_error(c, r, 401, 4112, "SESSION_TOKEN_EXPIRED");
    return NULL;
  }
  return client;
}

typedef struct {
  json_t *results;
  const char *cid;
} infos_acc_t;

static void info_each(void *arg, const member_info_t *mi) {
  infos_acc_t *a = arg;
  char created[ISO_LEN + 1], updated[ISO_LEN + 1];
  iso_format(mi->created_at, created);
  iso_format(mi->updated_at, updated);
  json_array_append_new(a->results, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "objectId", mi->info_id, "cid", a->cid,
                                              "clientId", mi->client, "role", mi->role, "createdAt", created,
                                              "updatedAt", updated));
}

typedef struct {
  json_t *list;
  int swift; /* the Swift SDK's shape: op names hyphenated, attr as objects */
} notif_acc_t;

static void notif_each(void *arg, int64_t ts, const char *body) {
  notif_acc_t *a = arg;
  json_t *n = json_loads(body, 0, NULL);
  if (!n) return;
  if (a->swift) {
    char op[64];
    snprintf(op, sizeof op, "%s", json_string_value(json_object_get(n, "op")) ? json_string_value(json_object_get(n, "op")) : "");
    for (char *p = op; *p; p++)
      if (*p == '_') *p = '-';
    json_object_set_new(n, "op", json_string(op));
    const char *keys[] = {"attr", "attrModified"};
    for (int i = 0; i < 2; i++) {
      const char *data = json_string_value(json_object_get(json_object_get(n, keys[i]), "data"));
      if (data) json_object_set_new(n, keys[i], json_loads(data, 0, NULL));
    }
  }
  json_array_append_new(a->list, n);
}

/* GET /1.1/rtm/notifications?client_id&start_ts[&notification_type=permanent] (§3.20):
 * the permanent notifications the client may have missed since start_ts, in the JS SDK's
 * shape {hasMore, notifications}; without notification_type, the Swift SDK's
 * {permanent: {notifications}, droppable: {notifications, invalidLocalConvCache}}. */
void rest_notifications(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 0) < 0) return;
  char *client = rest_session_client(c, r);
  if (!client) return;
  char *start = http_query_param(r, "start_ts"), *type = http_query_param(r, "notification_type");
  int64_t after = start ? strtoll(start, NULL, 10) : 0;
  notif_acc_t acc = {json_array(), type == NULL};
  int more = 0;
  if (store_notifications(c->w->imw->reader, client, after, 100, &more, notif_each, &acc) < 0) {
    json_decref(acc.list);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else if (acc.swift) {
    http_respond_json(c, r, 200,
                      json_pack("{s:{s:o}, s:{s:[], s:b}}", "permanent", "notifications", acc.list, "droppable",
                                "notifications", "invalidLocalConvCache", 0));
  } else {
    http_respond_json(c, r, 200, json_pack("{s:b, s:o}", "hasMore", more, "notifications", acc.list));
  }
  free(start);
  free(type);
  free(client);
}

/* GET /1.1/classes/_ConversationMemberInfo?where={"cid": …}&client_id=… (§3.15): the role
 * assignments of a conversation the client belongs to. Members without a row are plain
 * Members; the owner is the creator. */
void rest_member_infos(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 0) < 0) return;
  char *client = rest_session_client(c, r);
  if (!client) return;
  char *where_s = http_query_param(r, "where");
  json_t *where = where_s ? json_loads(where_s, 0, NULL) : NULL;
  const char *cid = json_string_value(json_object_get(where, "cid"));
  im_worker_t *w = c->w->imw;
  conv_t *conv = cid ? conv_get(w, cid, NULL) : NULL;
  if (!cid) {
    http_respond_error(c, r, 400, 107, "where must name a conversation: {\"cid\": \"…\"}");
  } else if (!conv) {
    http_respond_json(c, r, 200, json_pack("{s:[]}", "results"));
  } else if (conv_role(conv, client) < ROLE_MEMBER) {
    http_respond_error(c, r, 403, 119, "not a member of this conversation");
  } else {
    infos_acc_t acc = {json_array(), conv->cid};
    if (store_member_infos(w->reader, conv->id, info_each, &acc) < 0) {
      json_decref(acc.results);
      http_respond_error(c, r, 500, 1, "storage failed");
    } else {
      http_respond_json(c, r, 200, json_pack("{s:o}", "results", acc.results));
    }
  }
  if (conv) conv_release(conv);
  json_decref(where);
  free(where_s);
  free(client);
}
