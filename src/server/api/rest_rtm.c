/* rest_rtm.c — the server-to-server REST API, /1.2/rtm/… (protocol.md §7): the plumbing
 * its handlers share (rest_rtm.h) and the route table. The handlers are in rest_conv.c
 * (conversations and their lists), rest_msg.c (messages) and rest_client.c (clients). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonlim.h"
#include "rest_rtm.h"
#include "timeutil.h"
#include "utf8.h"

/* ---------------------------------------------------------------- plumbing */

/* The conversation kind a path prefix serves. */
int rest_path_kind(const http_req_t *r) {
  if (strncmp(r->path, "/1.2/rtm/chatrooms", 18) == 0) return CONV_ROOM;
  if (strncmp(r->path, "/1.2/rtm/service-conversations", 30) == 0) return CONV_SYSTEM;
  return CONV_NORMAL;
}

json_t *rest_body_json(const http_req_t *r) {
  if (!r->body.len) return json_object();
  /* every REST body is held to JSON_MAX_DEPTH levels: callers answer 400 for NULL */
  return json_loadb_capped((const char *)r->body.data, r->body.len, 0, NULL);
}

void rest_bad(conn_t *c, const http_req_t *r, const char *msg) { http_respond_error(c, r, 400, 107, msg); }

int rest_im_status(int code) {
  switch (code) {
  case LC_CONVERSATION_NOT_FOUND:
  case LC_INVALID_MESSAGING_TARGET:
  case LC_MESSAGE_NOT_FOUND: return 404;
  case LC_MESSAGE_OWNERSHIP_REQUIRED: return 403;
  case LC_INTERNAL_ERROR:
  case LC_CONVERSATION_API_FAILED:
  case LC_CONVERSATION_INTERNAL_ERROR: return 500;
  case TERN_ECLOSED: return 503; /* the server is stopping (im_session_kicks_stopping) */
  default: return 400;
  }
}

void rest_im_error(conn_t *c, const http_req_t *r, int code, const char *detail) {
  int status = rest_im_status(code);
  http_respond_error(c, r, status, code == TERN_ECLOSED ? status : code, detail ? detail : lc_error_name(code));
}

/* The conversation cid if it is of `kind` (normal includes temporary); answers 404 itself. */
conv_t *rest_find_conv(conn_t *c, const http_req_t *r, const char *cid, int kind) {
  conv_t *conv = cid && *cid ? conv_get(c->w->imw, cid, NULL) : NULL;
  if (conv && (conv->kind == kind || (kind == CONV_NORMAL && conv->kind == CONV_TEMP))) return conv;
  if (conv) conv_release(conv);
  http_respond_error(c, r, 404, LC_CONVERSATION_NOT_FOUND, "conversation not found");
  return NULL;
}

/* The conversation named by :cid, of the kind the path serves; answers 404 itself. */
conv_t *rest_path_conv(conn_t *c, const http_req_t *r) {
  return rest_find_conv(c, r, http_path_param(r, "cid"), rest_path_kind(r));
}

int rest_client_id_ok(conn_t *c, const http_req_t *r, const char *id, const char *what) {
  if (utf8_client_id_ok(id)) return 1;
  char msg[200];
  snprintf(msg, sizeof msg, "%s must be a client id: 1 to 64 characters of UTF-8, no control characters", what);
  http_respond_error(c, r, 400, LC_INVALID_LOGIN, msg);
  return 0;
}

/* client_ids from a JSON body as a C array (borrowed strings); NULL after a 400. */
char **rest_client_ids(conn_t *c, const http_req_t *r, json_t *body, size_t *n) {
  if (!json_is_object(body)) {
    rest_bad(c, r, "the body must be a JSON object");
    return NULL;
  }
  json_t *ids = json_object_get(body, "client_ids");
  if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 500) {
    rest_bad(c, r, "client_ids must be an array of 1 to 500 client ids");
    return NULL;
  }
  *n = json_array_size(ids);
  char **v = xcalloc(*n, sizeof(char *));
  for (size_t i = 0; i < *n; i++) {
    const char *s = json_string_value(json_array_get(ids, i));
    if (!s) {
      free(v);
      rest_bad(c, r, "client_ids must be strings");
      return NULL;
    }
    if (!rest_client_id_ok(c, r, s, "each of client_ids")) {
      free(v);
      return NULL;
    }
    v[i] = (char *)s;
  }
  return v;
}

rest_wait_t *rest_wait(conn_t *c, json_t *(*shape)(void *, json_t *), const char *cid) {
  rest_wait_t *wt = xcalloc(1, sizeof *wt);
  wt->srv = c->w->srv;
  wt->worker = c->w->idx;
  wt->conn = c->id;
  wt->shape = shape;
  wt->cid = cid ? xstrdup(cid) : NULL;
  wt->status = 200;
  http_defer(c);
  return wt;
}

void rest_answer(im_worker_t *w, void *arg, int code, json_t *result) {
  rest_wait_t *wt = arg;
  conn_t *c;
  const http_req_t *r = http_deferred_find(wt->srv->workers[wt->worker], wt->conn, &c);
  if (r) {
    if (code) {
      const char *err = json_string_value(json_object_get(result, "error"));
      rest_im_error(c, r, code, err);
    } else if (wt->headers) {
      json_t *body = wt->shape(wt, result);
      char *s = json_dumps(body, JSON_COMPACT);
      http_respond(c, r, wt->status, "application/json; charset=utf-8", s, strlen(s), wt->headers);
      free(s);
      json_decref(body);
    } else {
      http_respond_json(c, r, wt->status, wt->shape(wt, result));
    }
    http_resume(c);
  }
  rest_wait_free(wt);
}

void rest_wait_free(rest_wait_t *wt) {
  free(wt->cid);
  free(wt->headers);
  free(wt);
}

const im_done_t *rest_done(rest_wait_t *wt, im_done_t *d) {
  d->fn = rest_answer;
  d->arg = wt;
  return d;
}

typedef struct {
  server_t *srv;
  int worker;
  uint64_t conn;
  void (*h)(conn_t *c, const http_req_t *r);
} rest_fence_t;

static __thread int fenced_run; /* h runs again after its fence: not fenced twice */

static void rest_fence_done(void *arg) {
  rest_fence_t *f = arg;
  conn_t *c;
  const http_req_t *r =
      worker_current() == f->worker ? http_deferred_find(f->srv->workers[f->worker], f->conn, &c) : NULL;
  if (r) { /* else gone (closed, or its worker stopped): nothing to answer */
    fenced_run = 1;
    f->h(c, r);
    fenced_run = 0;
    /* h answered (r->status set): the connection reads on; else h deferred the request
     * again (a block waits for its commit) and its answer resumes it (rest_answer) */
    if (r->status) http_resume(c);
  }
  free(f);
}

int rest_presence_fence(conn_t *c, const http_req_t *r, void (*h)(conn_t *c, const http_req_t *r)) {
  (void)r;
  im_t *im = c->w->srv->im;
  if (fenced_run || !im_fence_needed(im)) return 0;
  rest_fence_t *f = xmalloc(sizeof *f);
  f->srv = c->w->srv;
  f->worker = c->w->idx;
  f->conn = c->id;
  f->h = h;
  http_defer(c);
  im_fence_start(im, rest_fence_done, f);
  return 1;
}

json_t *rest_shape_updated(void *ctx, json_t *result) {
  rest_wait_t *wt = ctx;
  char iso[ISO_LEN + 1];
  iso_format(json_integer_value(json_object_get(result, "updated_at")), iso);
  return json_pack("{s:s, s:s}", "updatedAt", iso, "objectId", wt->cid);
}

json_t *rest_shape_empty(void *ctx, json_t *result) { return json_object(); }

json_t *rest_shape_copy(void *ctx, json_t *result) { return json_deep_copy(result); }

/* A page size from ?limit: default def, at most max. */
int rest_page_limit(const http_req_t *r, int def, int max) {
  char *v = http_query_param(r, "limit");
  long long n = v && *v ? strtoll(v, NULL, 10) : def; /* not atoi: past int it is max, not undefined */
  free(v);
  return n < 1 ? def : n > max ? max : (int)n;
}

/* A JSON array of at most max non-empty strings as a borrowed C array (n set), or NULL
 * when it is something else; an absent array is an empty one. */
char **rest_string_array(json_t *a, size_t max, size_t *n) {
  *n = 0;
  if (!a) return xcalloc(1, sizeof(char *));
  if (!json_is_array(a) || json_array_size(a) > max) return NULL;
  char **v = xcalloc(json_array_size(a) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(a); i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!utf8_client_id_ok(s)) {
      free(v);
      return NULL;
    }
    v[(*n)++] = (char *)s;
  }
  return v;
}

int64_t rest_qint(const http_req_t *r, const char *key, int64_t def) {
  char *v = http_query_param(r, key);
  int64_t x = v && *v ? strtoll(v, NULL, 10) : def;
  free(v);
  return x;
}

int rest_qbool(const http_req_t *r, const char *key) {
  char *v = http_query_param(r, key);
  int yes = v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
  free(v);
  return yes;
}

/* ---------------------------------------------------------------- the table */

/* Rows that name no auth need the master key (AUTH_MASTER): everything here but the user
 * login signature (the app key and a user's session token, as LeanCloud had it) and a
 * client's unread count (the app key only with that client's session token: LeanCloud let
 * the app key alone read anyone's). */

#define CONV_ROUTES(prefix)                                                                                            \
  {HTTP_POST, prefix, rest_conv_create}, {HTTP_GET, prefix, rest_conv_list},                                           \
      {HTTP_GET, prefix "/:cid", rest_conv_get}, {HTTP_PUT, prefix "/:cid", rest_conv_update},                         \
      {HTTP_DELETE, prefix "/:cid", rest_conv_delete}, {HTTP_POST, prefix "/:cid/messages", rest_send},                \
      {HTTP_GET, prefix "/:cid/messages", rest_history}, {HTTP_PUT, prefix "/:cid/messages/:mid", rest_edit},          \
      {HTTP_PUT, prefix "/:cid/messages/:mid/recall", rest_recall},                                                    \
      {HTTP_DELETE, prefix "/:cid/messages/:mid", rest_delete_message},                                                \
      {HTTP_POST, prefix "/:cid/blacklists", rest_block_add},                                                          \
      {HTTP_DELETE, prefix "/:cid/blacklists", rest_block_remove}, {                                                   \
    HTTP_GET, prefix "/:cid/blacklists", rest_block_list                                                               \
  }

/* shut-up and roles: normal conversations and chat rooms (§7.1, §7.2) */
#define MODERATION_ROUTES(prefix)                                                                                      \
  {HTTP_POST, prefix "/:cid/permanent-silenceds", rest_silence_add},                                                   \
      {HTTP_DELETE, prefix "/:cid/permanent-silenceds", rest_silence_remove},                                          \
      {HTTP_GET, prefix "/:cid/permanent-silenceds", rest_silence_list},                                               \
      {HTTP_POST, prefix "/:cid/temporary-silenceds", rest_temp_silence},                                              \
      {HTTP_DELETE, prefix "/:cid/temporary-silenceds", rest_temp_unsilence},                                          \
      {HTTP_POST, prefix "/:cid/member-infos", rest_info_set},                                                         \
      {HTTP_GET, prefix "/:cid/member-infos", rest_info_list},                                                         \
      {HTTP_PUT, prefix "/:cid/member-infos/:info_id", rest_info_set}, {                                               \
    HTTP_DELETE, prefix "/:cid/member-infos/:info_id", rest_info_delete                                                \
  }

const rest_route_t rest_rtm_routes[] = {
    CONV_ROUTES("/1.2/rtm/conversations"),
    CONV_ROUTES("/1.2/rtm/chatrooms"),
    CONV_ROUTES("/1.2/rtm/service-conversations"),
    MODERATION_ROUTES("/1.2/rtm/conversations"),
    MODERATION_ROUTES("/1.2/rtm/chatrooms"),
    {HTTP_POST, "/1.2/rtm/conversations/:cid/members", rest_members_add},
    {HTTP_DELETE, "/1.2/rtm/conversations/:cid/members", rest_members_remove},
    {HTTP_GET, "/1.2/rtm/conversations/:cid/members", rest_members_list},
    {HTTP_GET, "/1.2/rtm/chatrooms/:cid/members", rest_members_list},
    {HTTP_GET, "/1.2/rtm/chatrooms/:cid/members/online-count", rest_room_online_count},
    {HTTP_POST, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_add},
    {HTTP_DELETE, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_remove},
    {HTTP_GET, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_list},
    {HTTP_POST, "/1.2/rtm/service-conversations/:cid/subscribers", rest_subscribe},
    {HTTP_DELETE, "/1.2/rtm/service-conversations/:cid/subscribers/:client_id", rest_unsubscribe},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers", rest_subscribers},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers/count", rest_subscriber_count},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers/:client_id/messages", rest_history},
    {HTTP_POST, "/1.2/rtm/service-conversations/:cid/broadcasts", rest_broadcast},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/service-conversations", rest_client_subscriptions},
    {HTTP_POST, "/1.2/rtm/clients/check-online", rest_check_online},
    {HTTP_GET, "/1.2/rtm/clients/sign", rest_user_sign, NULL, AUTH_APP},
    {HTTP_POST, "/1.1/rtm/sign", rest_user_sign, NULL, AUTH_APP},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/unread-count", rest_unread_count, NULL, AUTH_CLIENT, 1},
    {HTTP_POST, "/1.2/rtm/clients/:client_id/kick", rest_kick},
    {HTTP_GET, "/1.2/rtm/stats", rest_stats},
    {HTTP_GET, "/1.2/rtm/all-conversations", rest_all_conversations},
    {HTTP_GET, "/1.2/rtm/messages", rest_app_history},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/messages", rest_app_history},
    {HTTP_POST, "/1.2/rtm/broadcasts", rest_global_broadcast},
    {HTTP_GET, "/1.2/rtm/broadcasts", rest_broadcast_list},
    {HTTP_DELETE, "/1.2/rtm/broadcasts/:mid", rest_broadcast_delete},
    {0, NULL, NULL},
};
