/* routes.c — the HTTP endpoints: the RTM router, the SDKs' /1.1 calls, health.
 *
 * Handlers read a complete request and append one response; they run on the worker loop
 * like the WebSocket handlers and never block it. */
#include <http_parser.h>
#include <string.h>

#include "hooks.h"
#include "http.h"
#include "im_internal.h"
#include "push.h"
#include "rest.h"
#include "store.h"
#include "worker.h"

/* GET /v1/route — protocol.md §1.4(b): where clients should open their WebSocket. */
static void route_router(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "groupId", "g0", "server", srv->public_url, "secondary",
                        srv->public_url, "ttl", 3600);
  http_respond_json(c, r, 200, j);
}

/* POST /debug/faults {"store_fail": bool} — fault injection for the storage-failure
 * tests: every commit fails while it is on. Exists only with debug_faults; master key. */
static void route_faults(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  if (!srv->cfg->debug_faults) {
    http_respond_error(c, r, 404, 404, "not found");
    return;
  }
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
  json_t *f = json_object_get(j, "store_fail");
  if (!json_is_boolean(f)) {
    json_decref(j);
    http_respond_error(c, r, 400, 107, "body must be {\"store_fail\": true|false}");
    return;
  }
  store_fail_writes(srv->store, json_is_true(f));
  json_decref(j);
  http_respond_json(c, r, 200, json_pack("{s:b}", "store_fail", json_is_true(f)));
}

/* GET /metrics — Prometheus text: what is online, what is being shed, how the hooks do. */
static void route_metrics(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  im_t *im = srv->im;
  buf_t b = BUF_INIT;
  size_t conns = 0;
  for (int i = 0; i < srv->nworkers; i++)
    conns += srv->workers[i]->nconns; /* each read is one word: fine */
  buf_printf(&b,
             "# HELP tern_connections Open client connections.\n# TYPE tern_connections gauge\ntern_connections %zu\n",
             conns);
  buf_printf(&b,
             "# HELP tern_clients_online Client ids with at least one session.\n# TYPE tern_clients_online gauge\n"
             "tern_clients_online %zu\n",
             presence_count(im->presence));
  buf_printf(&b,
             "# HELP tern_room_drops_total Chat-room messages shed for congested recipients.\n"
             "# TYPE tern_room_drops_total counter\ntern_room_drops_total %zu\n",
             atomic_load(&im->room_drops));
  hooks_metrics(im->hooks, &b);
  push_metrics(im->push, &b);
  http_respond(c, r, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
  buf_free(&b);
}

static void route_health(conn_t *c, const http_req_t *r) {
  http_respond_json(c, r, 200, json_pack("{s:s}", "status", "ok"));
}

/* ---------------------------------------------------------------- path patterns */

/* Length of the segment at s (up to '/' or the end). */
static size_t seg_len(const char *s) { return strcspn(s, "/"); }

int route_match(const char *pattern, const char *raw_path, http_req_t *r) {
  struct {
    const char *name, *val;
    size_t nlen, vlen;
  } got[HTTP_MAX_PARAMS];
  int n = 0;
  const char *p = pattern, *s = raw_path;
  for (;;) {
    if (*p != '/' || *s != '/') { /* both ended, or both continue with a segment */
      if (*p || *s) return 0;
      break;
    }
    p++;
    s++;
    size_t pl = seg_len(p), sl = seg_len(s);
    if (pl > 1 && (*p == ':' || *p == '*')) {
      int rest = *p == '*';
      if (rest) {
        if (p[pl]) return 0; /* "*name" is last only */
        sl = strlen(s);
      }
      if (sl == 0 || n == HTTP_MAX_PARAMS) return 0;
      got[n].name = p + 1;
      got[n].nlen = pl - 1;
      got[n].val = s;
      got[n].vlen = sl;
      n++;
    } else if (pl != sl || memcmp(p, s, pl) != 0) {
      return 0;
    }
    p += pl;
    s += sl;
  }
  if (r) {
    for (int i = 0; i < r->nparams; i++) {
      free(r->params[i].name);
      free(r->params[i].value);
    }
    for (int i = 0; i < n; i++) {
      r->params[i].name = xstrndup(got[i].name, got[i].nlen);
      r->params[i].value = http_url_decode(got[i].val, got[i].vlen, 0);
    }
    r->nparams = n;
  }
  return 1;
}

/* ---------------------------------------------------------------- the table */

/* One row per method and path pattern (see route_match); the first row that matches both
 * wins, this table before the REST API's. A path that matches only rows of other methods
 * gets 405. */
typedef rest_route_t route_t;

static const route_t routes[] = {
    {HTTP_GET, "/v1/route", route_router},
    {HTTP_GET, "/1.1/rtm/notifications", rest_notifications},
    {HTTP_GET, "/1.1/classes/_ConversationMemberInfo", rest_member_infos},
    {HTTP_GET, "/health", route_health},
    {HTTP_GET, "/metrics", route_metrics},
    {HTTP_POST, "/1.1/installations", push_rest_installations},
    {HTTP_GET, "/1.1/installations/:id", push_rest_installations},
    {HTTP_PUT, "/1.1/installations/:id", push_rest_installations},
    {HTTP_DELETE, "/1.1/installations/:id", push_rest_installations},
    {HTTP_POST, "/debug/faults", route_faults},
    {HTTP_POST, "/1.1/files", rest_file_upload, rest_files_body_limit},
    {HTTP_POST, "/1.2/files", rest_file_upload, rest_files_body_limit},
    {HTTP_POST, "/1.1/files/*name", rest_file_upload, rest_files_body_limit},
    {HTTP_POST, "/1.2/files/*name", rest_file_upload, rest_files_body_limit},
    {HTTP_GET, "/1.1/files/:id", rest_file_meta},
    {HTTP_GET, "/1.2/files/:id", rest_file_meta},
    {HTTP_DELETE, "/1.1/files/:id", rest_file_delete},
    {HTTP_DELETE, "/1.2/files/:id", rest_file_delete},
    {HTTP_POST, "/1.1/fileTokens", rest_file_token},
    {HTTP_POST, "/1.2/fileTokens", rest_file_token},
    {HTTP_PUT, "/1.1/fileUploads/:id", rest_file_token_upload, rest_files_body_limit},
    {HTTP_POST, "/1.1/fileCallback", rest_file_callback},
    {HTTP_POST, "/1.2/fileCallback", rest_file_callback},
    {HTTP_POST, "/1.2/import/records", rest_import_records, rest_import_body_limit},
    {HTTP_PUT, "/1.2/import/files/:id", rest_import_file, rest_import_body_limit},
    {HTTP_GET, "/1.1/classes/_Conversation", rest_class_conversations},
    {HTTP_GET, "/1.1/classes/_Conversation/:id", rest_class_conversations},
    {HTTP_GET, "/1.1/classes/_Installation", rest_class_installations},
    {HTTP_GET, "/1.1/classes/_Installation/:id", rest_class_installations},
    {HTTP_GET, "/1.1/installations", rest_class_installations},
    {HTTP_GET, "/1.1/classes/_File", rest_class_files},
    {HTTP_GET, "/1.1/classes/_File/:id", rest_class_files},
    {HTTP_GET, "/1.1/files", rest_class_files},
    {HTTP_GET, "/files/:id", rest_file_download},
    {HTTP_HEAD, "/files/:id", rest_file_download},
    {HTTP_GET, "/files/:id/*name", rest_file_download},
    {HTTP_HEAD, "/files/:id/*name", rest_file_download},
};

/* The row for r's method and path; NULL with *path_known set when only the method differs. */
static const route_t *find_route(const http_req_t *r, int *path_known) {
  *path_known = 0;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (!route_match(routes[i].path, r->raw_path, NULL)) continue;
    *path_known = 1;
    if (routes[i].method == r->method) return &routes[i];
  }
  for (const route_t *rt = rest_rtm_routes; rt->path; rt++) {
    if (!route_match(rt->path, r->raw_path, NULL)) continue;
    *path_known = 1;
    if (rt->method == r->method) return rt;
  }
  return NULL;
}

size_t routes_body_limit(conn_t *c, const http_req_t *r) {
  /* Only uploads (POST, PUT) ask for more. Every WebSocket upgrade comes through here, and
   * matching it against the whole table was 2.6% of the server's CPU in a login storm. */
  if (r->method != HTTP_POST && r->method != HTTP_PUT) return HTTP_MAX_BODY;
  int path_known;
  const route_t *rt = find_route(r, &path_known);
  return rt && rt->body_limit ? rt->body_limit(c, r) : HTTP_MAX_BODY;
}

/* CORS preflight from browser SDKs. The headers allowed are those the browser asks for:
 * the SDKs send more than one list could keep up with (leancloud-storage adds X-LC-Prod,
 * X-LC-Session, and Cache-Control on its PUT of a file to an upload URL). The request is
 * echoed only when it is a plain list of header names; otherwise the SDKs' usual set. */
static void preflight(conn_t *c, const http_req_t *r) {
  const char *asked = http_header(r, "Access-Control-Request-Headers");
  size_t n = asked ? strlen(asked) : 0;
  int plain = n > 0 && n <= 512;
  for (size_t i = 0; plain && i < n; i++)
    plain = (asked[i] >= 'a' && asked[i] <= 'z') || (asked[i] >= 'A' && asked[i] <= 'Z') ||
            (asked[i] >= '0' && asked[i] <= '9') || asked[i] == '-' || asked[i] == '_' || asked[i] == ',' ||
            asked[i] == ' ';
  char extra[768];
  snprintf(extra, sizeof extra,
           "Access-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, OPTIONS\r\n"
           "Access-Control-Allow-Headers: %s\r\nAccess-Control-Max-Age: 86400\r\n",
           plain ? asked
                 : "Content-Type, Cache-Control, Range, X-LC-Id, X-LC-Key, X-LC-Sign, X-LC-Session, X-LC-Prod, "
                   "X-LC-IM-Session-Token, X-LC-UA");
  http_respond(c, r, 204, "text/plain", "", 0, extra);
}

void routes_dispatch(conn_t *c, http_req_t *r) {
  if (r->method == HTTP_OPTIONS) {
    preflight(c, r);
    return;
  }
  int path_known;
  const route_t *rt = find_route(r, &path_known);
  if (rt) {
    route_match(rt->path, r->raw_path, r);
    rt->fn(c, r);
  } else if (path_known) {
    http_respond_error(c, r, 405, 405, "method not allowed");
  } else {
    http_respond_error(c, r, 404, 404, "not found");
  }
}
