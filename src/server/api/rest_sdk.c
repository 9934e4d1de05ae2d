/* rest_sdk.c — the HTTP endpoints the official SDKs call on their own (protocol.md §7.4):
 * `_ConversationMemberInfo` (member roles) and `/rtm/notifications`.
 *
 * Both act for one client and are authorised by its session token (`st`, sent as
 * X-LC-IM-Session-Token with `client_id`) with the app key, or by the master key: the
 * route level AUTH_CLIENT, checked from the head (rest_auth.c). They run on the worker that
 * parsed the request and read through its store reader, like the WebSocket handlers. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "im_internal.h"
#include "jsonlim.h"
#include "rest.h"
#include "timeutil.h"
#include "worker.h"

typedef struct {
  json_t *results;
  const char *cid;
} infos_acc_t;

static void info_each(void *arg, const member_info_t *mi) {
  infos_acc_t *a = arg;
  char created[ISO_LEN + 1], updated[ISO_LEN + 1];
  iso_format(mi->created_at, created);
  iso_format(mi->updated_at, updated);
  json_array_append_new(a->results,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "objectId", mi->info_id, "cid", a->cid, "clientId",
                                  mi->client, "role", mi->role, "createdAt", created, "updatedAt", updated));
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
    snprintf(op, sizeof op, "%s",
             json_string_value(json_object_get(n, "op")) ? json_string_value(json_object_get(n, "op")) : "");
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
  char *client = rest_session_client(c, r);
  if (!client) return;
  char *where_s = http_query_param(r, "where");
  json_t *where = where_s ? json_loads_capped(where_s, 0, NULL) : NULL;
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
