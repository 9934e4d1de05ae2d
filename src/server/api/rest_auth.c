/* rest_auth.c — who may call an HTTP route: the keys a request carries, and the level its
 * route row asks for (rest.h rest_auth_t).
 *
 * The decision is made from the request's head, before any body byte is buffered
 * (routes_head): an upload without a key, or with a forged upload token, costs the server
 * a header's worth of memory, not ten megabytes. Keys are LeanCloud's: X-LC-Id naming this
 * app, and X-LC-Key "<app key>" or "<master key>,master", or X-LC-Sign "md5(ts + key),ts"
 * [",master"] so the key itself never travels. A signed request is good within
 * sign_header_window of its timestamp, either side (LeanCloud: 15 minutes) — not the
 * hours a login signature may live, since a captured header can be replayed until then.
 * Comparisons of secrets are constant-time. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "im_internal.h"
#include "rest.h"
#include "revoke.h"
#include "timeutil.h"
#include "token.h"
#include "worker.h"

/* X-LC-Sign: md5hex(timestamp + key) "," timestamp-ms [",master"]. Returns REST_KEY_MASTER,
 * REST_KEY_APP, or -1 when malformed, outside the window, or not made with either key. */
static int sign_header_key(const server_t *srv, const char *sign) {
  char hex[33];
  const char *comma = strchr(sign, ',');
  if (!comma || comma - sign != 32) return -1;
  memcpy(hex, sign, 32);
  hex[32] = 0;
  char ts[32];
  const char *end = strchr(comma + 1, ',');
  size_t tl = end ? (size_t)(end - comma - 1) : strlen(comma + 1);
  if (tl == 0 || tl > 15 || strspn(comma + 1, "0123456789") != tl) return -1;
  memcpy(ts, comma + 1, tl);
  ts[tl] = 0;
  int master = end && strcmp(end + 1, "master") == 0;
  if (end && !master) return -1;
  int64_t t = strtoll(ts, NULL, 10), now = now_ms(), window = (int64_t)srv->cfg->sign_header_window * 1000;
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
  if (!ct_equal(want, 32, hex, 32)) return -1;
  return master ? REST_KEY_MASTER : REST_KEY_APP;
}

/* What r's keys prove: REST_KEY_*, or -1 with *why when they are wrong (a wrong key is an
 * error even where none is needed: the caller meant to use it). */
static int request_key(const server_t *srv, const http_req_t *r, const char **why) {
  const char *id = http_header(r, "X-LC-Id");
  const char *key = http_header(r, "X-LC-Key");
  const char *sign = http_header(r, "X-LC-Sign");
  if (!key && !sign) return REST_KEY_NONE;
  if (!id || strcmp(id, srv->app_id) != 0) {
    *why = "Unauthorized: X-LC-Id does not name this app.";
    return -1;
  }
  if (!key) {
    int k = sign_header_key(srv, sign);
    if (k < 0) *why = "Unauthorized: X-LC-Sign is not valid, or its timestamp is too far from now.";
    return k;
  }
  size_t kl = strlen(key);
  int master = kl > 7 && strcmp(key + kl - 7, ",master") == 0;
  size_t bare = master ? kl - 7 : kl;
  const char *want = master ? srv->master_key : srv->app_key;
  if (!ct_equal(key, bare, want, strlen(want))) {
    *why = "Unauthorized: wrong key.";
    return -1;
  }
  return master ? REST_KEY_MASTER : REST_KEY_APP;
}

/* "Authorization: Bearer <master key>", what a Prometheus scrape config sends; 2 when the
 * bearer is the metrics_token instead (it reads /metrics and nothing else). */
static int bearer_master(const server_t *srv, const http_req_t *r) {
  const char *a = http_header(r, "Authorization");
  if (!a || strncasecmp(a, "Bearer ", 7) != 0) return 0;
  a += 7;
  while (*a == ' ') a++;
  if (ct_equal(a, strlen(a), srv->master_key, strlen(srv->master_key))) return 1;
  const char *t = srv->cfg->metrics_token;
  return t && *t && ct_equal(a, strlen(a), t, strlen(t)) ? 2 : 0;
}

static int deny(http_req_t *r, int status, int code, const char *msg) {
  r->deny_status = status;
  r->deny_code = code;
  r->deny_msg = msg;
  return -1;
}

char *rest_auth_client(const http_req_t *r) {
  const char *p = http_path_param(r, "client_id");
  return p ? xstrdup(p) : http_query_param(r, "client_id");
}

int rest_token_live(conn_t *c, const char *client, const char *st) {
  im_worker_t *w = c->w->imw;
  token_info_t info;
  int rc = token_check(w->im->master_key, w->im->app_id, client, st, &info);
  if (rc < 0) return rc;
  free(info.tag);
  return revoke_check(w, client, &info);
}

/* A session token checked from the head: all of rest_token_live when reads are local and
 * cheap (SQLite) or the route's handler does not read through rest_read_run; else what
 * needs no store, *pending set: the store's revocations are read off the loop with the
 * handler's reads (rest_read_run). */
static int head_token_check(conn_t *c, const http_req_t *r, const char *client, const char *st, int *pending) {
  im_worker_t *w = c->w->imw;
  const rest_route_t *rt = r->route;
  if (!rt || !rt->token_read || !store_reads_off_loop(w->im->store)) return rest_token_live(c, client, st);
  token_info_t info;
  int rc = token_check(w->im->master_key, w->im->app_id, client, st, &info);
  if (rc < 0) return rc;
  free(info.tag);
  rc = revoke_check_memory(w, client, &info);
  if (rc == 0) *pending = 1;
  return rc;
}

int rest_authorize(conn_t *c, http_req_t *r, rest_auth_t need) {
  if (need == AUTH_OPEN) return 0;
  if (need == AUTH_UPLOAD) /* the token is the permission, as a presigned URL's; keys do not matter */
    return rest_files_token_ok(c, r)
               ? 0
               : deny(r, 403, 403, "the upload token is not valid for this file, or it has expired");
  const server_t *srv = c->w->srv;
  const char *why = NULL;
  int key = request_key(srv, r, &why);
  if (key < 0) return deny(r, 401, 401, why);
  r->key = key;
  if (key == REST_KEY_MASTER) return 0;
  switch (need) {
  case AUTH_MASTER:
    return key == REST_KEY_APP ? deny(r, 403, 403, "Forbidden: the master key is required.")
                               : deny(r, 401, 401, "Unauthorized: X-LC-Key is missing.");
  case AUTH_METRICS: {
    int b = bearer_master(srv, r);
    if (b) {
      r->key = b == 1 ? REST_KEY_MASTER : REST_KEY_NONE; /* the metrics_token proves nothing else */
      return 0;
    }
    return key == REST_KEY_APP
               ? deny(r, 403, 403, "Forbidden: the master key or metrics_token is required.")
               : deny(r, 401, 401,
                      "Unauthorized: the master key or metrics_token is required (X-LC-Key or Authorization: Bearer).");
  }
  case AUTH_APP: return key ? 0 : deny(r, 401, 401, "Unauthorized: X-LC-Key is missing.");
  case AUTH_CLIENT: {
    if (!key) return deny(r, 401, 401, "Unauthorized: X-LC-Key is missing.");
    const char *st = http_header(r, "X-LC-IM-Session-Token");
    char *client = rest_auth_client(r);
    int rc = client && st ? head_token_check(c, r, client, st, &r->auth_pending) : TERN_EINVAL;
    free(client);
    if (rc == 0) return 0;
    return deny(r, 401, LC_SESSION_TOKEN_EXPIRED,
                !st ? "Unauthorized: the master key, or the app key with the client's session token "
                      "(X-LC-IM-Session-Token), is required."
                    : "SESSION_TOKEN_EXPIRED: the session token is not a live one of this client.");
  }
  case AUTH_UPLOAD:
  case AUTH_OPEN: return 0; /* decided above */
  }
  return deny(r, 403, 403, "Forbidden.");
}

int rest_check_app(conn_t *c, const http_req_t *r, int need_master) {
  const char *why = NULL;
  int key = request_key(c->w->srv, r, &why);
  if (key < 0) {
    http_respond_error(c, r, 401, 401, why);
    return -1;
  }
  if (key == REST_KEY_NONE) {
    http_respond_error(c, r, 401, 401, "Unauthorized: X-LC-Key is missing.");
    return -1;
  }
  if (need_master && key != REST_KEY_MASTER) {
    http_respond_error(c, r, 403, 403, "Forbidden: the master key is required.");
    return -1;
  }
  return 0;
}

char *rest_session_client(conn_t *c, const http_req_t *r) {
  char *client = rest_auth_client(r);
  if (!client || !*client) {
    free(client);
    http_respond_error(c, r, 400, 107, "client_id is required");
    return NULL;
  }
  return client;
}
