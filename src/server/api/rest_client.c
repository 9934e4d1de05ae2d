/* rest_client.c — clients over REST: online status, unread counts, kicks, stats, and
 * login signatures for an app's users.
 *
 * Part of the /1.2/rtm REST API (protocol.md §7); the plumbing every handler uses and the
 * route table are in rest_rtm.c, declared in rest_rtm.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "out.h"
#include "rest_read.h"
#include "rest_rtm.h"
#include "revoke.h"
#include "sign.h"
#include "timeutil.h"
#include "utf8.h"

/* ---------------------------------------------------------------- clients */

/* POST /1.2/rtm/clients/check-online {"client_ids": [≤ 20]} → {"results": [online ids]},
 * in a cluster after the presence fence (rest_presence_fence) */
void rest_check_online(conn_t *c, const http_req_t *r) {
  if (rest_presence_fence(c, r, rest_check_online)) return;
  json_t *body = rest_body_json(r);
  size_t n;
  char **ids = rest_client_ids(c, r, body, &n);
  if (ids) {
    json_t *res = json_array();
    for (size_t i = 0; i < n && i < 20; i++)
      if (im_client_online(c->w->srv->im, ids[i])) json_array_append_new(res, json_string(ids[i]));
    http_respond_json(c, r, 200, json_pack("{s:o}", "results", res));
    free(ids);
  }
  json_decref(body);
}

typedef struct {
  rest_read_t x; /* first */
  char *client, *only;
  int total;
} unread_read_t;

static void unread_sum(void *arg, const unread_view_t *u) {
  unread_read_t *s = arg;
  if (!s->only || strcmp(s->only, u->cid) == 0) s->total += u->unread;
}

static int unread_read(store_reader_t *rd, rest_read_t *x) {
  unread_read_t *s = (unread_read_t *)x;
  return store_unread(rd, s->client, 0, 1000, unread_sum, s);
}

static void unread_answer(conn_t *c, const http_req_t *r, rest_read_t *x) {
  unread_read_t *s = (unread_read_t *)x;
  if (x->rd.result < 0) http_respond_error(c, r, 500, 1, "storage failed");
  else http_respond_json(c, r, 200, json_pack("{s:i}", "count", s->total));
}

static void unread_free(rest_read_t *x) {
  unread_read_t *s = (unread_read_t *)x;
  free(s->client);
  free(s->only);
  free(s);
}

/* GET /1.2/rtm/clients/:client_id/unread-count[?conv_id] — the master key, or the app key
 * with that client's own session token (AUTH_CLIENT): LeanCloud let the app key, which
 * every app ships, read anyone's. Read off the loop (rest_read.h), with the token's
 * revocations. */
void rest_unread_count(conn_t *c, const http_req_t *r) {
  const char *client = http_path_param(r, "client_id");
  if (!rest_client_id_ok(c, r, client, "the client id in the path")) return;
  unread_read_t *s = xcalloc(1, sizeof *s);
  s->client = xstrdup(client);
  s->only = http_query_param(r, "conv_id");
  s->x.fn = unread_read;
  s->x.answer = unread_answer;
  s->x.free = unread_free;
  rest_read_run(c, r, &s->x);
}

/* POST /1.2/rtm/clients/:client_id/kick {"reason"} — every session gets session/closed 4115,
 * and every session token the client was given until now is revoked (revoke.h), on the
 * devices that are offline too: a kicked client logs in afresh (with a signature, when
 * sign_login is on), it does not slip back in on a token. Answered once this node's
 * sessions of the client have ended and, in a cluster, the other nodes have those ends
 * queued, and once its sessions on other nodes — found in the replica after a presence
 * fence, so a login answered on another node a moment before is among them, and sent
 * their kick — are gone from this node's replica, or after 2 s anyway
 * (im_session_kick_app; docs/cluster.md, "Sessions across nodes"). A kick still waiting
 * when its worker stops is answered 503 "server stopping" (im_session_kicks_stopping). */
void rest_kick(conn_t *c, const http_req_t *r) {
  const char *client = http_path_param(r, "client_id");
  if (!rest_client_id_ok(c, r, client, "the client id in the path")) return;
  json_t *body = rest_body_json(r);
  const char *reason = json_string_value(json_object_get(body, "reason"));
  if (reason && utf8_chars(reason) > 20) {
    rest_bad(c, r, "reason is at most 20 characters");
  } else {
    revoke_client(c->w->imw, client);
    im_done_t d;
    im_session_kick_app(c->w->imw, client, LC_KICKED_BY_APP, reason,
                        rest_done(rest_wait(c, rest_shape_empty, NULL), &d));
  }
  json_decref(body);
}

/* GET /1.2/rtm/stats → {"result": {"online_user_count", "user_count_today"}}: clients online
 * now (in a cluster: on any node, counted after the presence fence, rest_presence_fence),
 * and distinct clients that opened a session since 00:00 UTC on this node (since start-up,
 * if that was later today: the count lives in memory). */
void rest_stats(conn_t *c, const http_req_t *r) {
  if (rest_presence_fence(c, r, rest_stats)) return; /* the other nodes' clients */
  http_respond_json(c, r, 200,
                    json_pack("{s:{s:I, s:I}}", "result", "online_user_count",
                              (json_int_t)im_clients_online(c->w->srv->im), "user_count_today",
                              (json_int_t)im_daily_count(now_ms())));
}

/* ---------------------------------------------------------------- user login signatures */

/* POST /1.1/rtm/sign {"session_token"} (what JS and Swift call for createIMClient(user))
 * and GET /1.2/rtm/clients/sign?session_token= → {"signature", "nonce", "client_id",
 * "timestamp"}: a login signature for the user the token belongs to, its objectId as the
 * client id. tern keeps no users: it asks the storage API named by users_url (GET
 * /1.1/users/me with X-LC-Session-Token), then _rtmClientSign when that hook is on. */
typedef struct {
  rest_wait_t *wt;
  im_t *im;
  char *user_id;
} user_sign_t;

static void user_sign_finish(im_worker_t *w, user_sign_t *us, int code, const char *why) {
  if (code) {
    json_t *e = json_pack("{s:s}", "error", why);
    rest_answer(w, us->wt, code, e);
    json_decref(e);
  } else {
    uint8_t raw[8];
    char nonce[17], sig[41];
    random_bytes(raw, sizeof raw);
    hex_encode(raw, sizeof raw, nonce);
    int64_t ts = now_ms();
    char *text = sign_string_login(w->im->app_id, us->user_id, ts, nonce);
    sign_make(w->im->master_key, text, sig);
    free(text);
    json_t *res = json_pack("{s:s, s:s, s:s, s:I}", "signature", sig, "nonce", nonce, "client_id", us->user_id,
                            "timestamp", (json_int_t)ts);
    rest_answer(w, us->wt, 0, res);
    json_decref(res);
  }
  free(us->user_id);
  free(us);
}

static void user_sign_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  /* only a clear yes signs: true, or an object (a cloud function that returned one) */
  int yes = !failed && result && (json_is_true(result) || json_is_object(result));
  const char *why = json_string_value(json_object_get(result, "error"));
  user_sign_finish(w, arg, yes ? 0 : LC_SIGNATURE_FAILED, why ? why : "refused by _rtmClientSign");
}

static void user_sign_me_done(void *arg, const httpc_result_t *res) {
  user_sign_t *us = arg;
  im_worker_t *w = us->im->workers[worker_current()];
  json_t *user = res->status ? json_loadb(res->body, res->len, 0, NULL) : NULL;
  const char *id = json_string_value(json_object_get(user, "objectId"));
  if (res->status != 200 || !utf8_client_id_ok(id)) { /* its objectId becomes the client id */
    log_at(LOG_WARN, "rtm/sign: users_url answered %ld%s%s", res->status, res->error ? ": " : "",
           res->error ? res->error : "");
    json_decref(user);
    int status = res->status;
    user_sign_finish(w, us, status >= 400 && status < 500 ? LC_SIGNATURE_FAILED : LC_INTERNAL_ERROR,
                     status >= 400 && status < 500 ? "the session token belongs to no user"
                                                   : "the user service did not answer");
    return;
  }
  us->user_id = xstrdup(id);
  if (im_hook_enabled(w->im, HOOK_RTM_CLIENT_SIGN)) {
    im_hook_call(w, HOOK_RTM_CLIENT_SIGN, json_pack("{s:O}", "user", user), user_sign_hook_done, us);
  } else {
    user_sign_finish(w, us, 0, NULL);
  }
  json_decref(user);
}

void rest_user_sign(conn_t *c, const http_req_t *r) {
  const tern_config_t *cfg = c->w->srv->cfg;
  json_t *body = r->method == HTTP_POST ? rest_body_json(r) : NULL;
  char *token = r->method == HTTP_POST ? xstrdup(json_string_value(json_object_get(body, "session_token")) ?: "")
                                       : http_query_param(r, "session_token");
  json_decref(body);
  im_worker_t *w = c->w->imw;
  if (!token || !*token || strlen(token) > 256 || strpbrk(token, "\r\n")) {
    rest_bad(c, r, "session_token is required");
  } else if (!*cfg->users_url || !out_http(w)) {
    http_respond_error(c, r, 501, 1, "user login needs users_url: the storage API that knows the app's users");
  } else {
    user_sign_t *us = xcalloc(1, sizeof *us);
    us->im = w->im;
    us->wt = rest_wait(c, rest_shape_copy, NULL);
    char url[1024], id[256], key[256], tok[300];
    snprintf(url, sizeof url, "%s/1.1/users/me", cfg->users_url);
    snprintf(id, sizeof id, "X-LC-Id: %s", c->w->srv->app_id);
    snprintf(key, sizeof key, "X-LC-Key: %s", c->w->srv->app_key);
    snprintf(tok, sizeof tok, "X-LC-Session-Token: %s", token);
    const char *headers[] = {id, key, tok, NULL};
    if (httpc_request(out_http(w), "GET", url, headers, NULL, 0, cfg->hook_timeout, 0, user_sign_me_done, us) < 0) {
      httpc_result_t res = {.error = "request not started", .body = ""};
      user_sign_me_done(us, &res);
    }
  }
  free(token);
}
