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

#include "http.h"
#include "im_internal.h"
#include "rest.h"
#include "timeutil.h"
#include "token.h"
#include "worker.h"

/* X-LC-Id must name this app and X-LC-Key carry its app key (or master key with
 * ",master"). Answers 401 itself and returns -1 when not. */
int rest_check_app(conn_t *c, const http_req_t *r, int need_master) {
  server_t *srv = c->w->srv;
  const char *id = http_header(r, "X-LC-Id");
  const char *key = http_header(r, "X-LC-Key");
  if (!id || strcmp(id, srv->app_id) != 0) {
    http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Id does not name this app.");
    return -1;
  }
  if (!key) {
    http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Key is missing.");
    return -1;
  }
  size_t kl = strlen(key);
  int master = kl > 7 && strcmp(key + kl - 7, ",master") == 0;
  size_t bare = master ? kl - 7 : kl;
  const char *want = master ? srv->master_key : srv->app_key;
  if (bare != strlen(want) || memcmp(key, want, bare) != 0) {
    http_respond_error(c, r, 401, 401, "Unauthorized: wrong key.");
    return -1;
  }
  if (need_master && !master) {
    http_respond_error(c, r, 403, 403, "Forbidden: the master key is required.");
    return -1;
  }
  return 0;
}

/* The client a session-token request acts for, or NULL after answering 401. */
char *rest_session_client(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  char *client = http_query_param(r, "client_id");
  const char *st = http_header(r, "X-LC-IM-Session-Token");
  if (!client || !st || token_check(srv->master_key, srv->app_id, client, st, NULL) != 0) {
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

/* GET /1.1/rtm/notifications — reliable-notification catch-up (§3.20). tern keeps no
 * permanent notifications yet, so the answer is the empty page the JS SDK accepts. */
void rest_notifications(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 0) < 0) return;
  char *client = rest_session_client(c, r);
  if (!client) return;
  free(client);
  http_respond_json(c, r, 200, json_pack("{s:b, s:[]}", "hasMore", 0, "notifications"));
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
