/* routes.c — the HTTP endpoints: the RTM router, the SDKs' /1.1 calls, health.
 *
 * Handlers read a complete request and append one response; they run on the worker loop
 * like the WebSocket handlers and never block it. */
#include <http_parser.h>
#include <string.h>

#include "http.h"
#include "im_internal.h"
#include "log.h"
#include "metrics.h"
#include "out.h"
#include "rest.h"
#include "store.h"
#include "timeutil.h"
#include "web.h"
#include "worker.h"

/* GET /v1/route — protocol.md §1.4(b): where clients should open their WebSocket. */
static void route_router(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  char url[1024];
  /* in a cluster: the live node with the fewest sessions (bus.h), else this one */
  if (srv->im->bus) bus_route(srv->im->bus, url, sizeof url);
  else snprintf(url, sizeof url, "%s", srv->public_url);
  json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "groupId", "g0", "server", url, "secondary", url, "ttl",
                        srv->im->bus ? 60 : 3600);
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

/* GET /metrics — Prometheus text: what is online, what is being shed, how the hooks do.
 * The master key (AUTH_METRICS): the counts say how busy the app is and who is online. */
static void route_metrics(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  im_t *im = srv->im;
  buf_t b = BUF_INIT;
  size_t conns = 0;
  for (int i = 0; i < srv->nworkers; i++)
    conns += atomic_load_explicit(&srv->workers[i]->nconns, memory_order_relaxed); /* another worker's count */
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
  buf_printf(&b, "# HELP tern_worker_connections_accepted_total Connections each worker accepted.\n"
                 "# TYPE tern_worker_connections_accepted_total counter\n");
  for (int i = 0; i < srv->nworkers; i++)
    buf_printf(&b, "tern_worker_connections_accepted_total{worker=\"%d\"} %zu\n", i,
               atomic_load_explicit(&srv->workers[i]->accepted, memory_order_relaxed));
  buf_printf(&b,
             "# HELP tern_connections_refused_total Connections refused at accept (max_conns_per_ip: ip, "
             "max_conns: server).\n"
             "# TYPE tern_connections_refused_total counter\ntern_connections_refused_total{limit=\"ip\"} %lu\n"
             "tern_connections_refused_total{limit=\"server\"} %lu\n",
             atomic_load(&srv->refused_ip), atomic_load(&srv->refused_server));
  buf_printf(&b,
             "# HELP tern_accept_errors_total Times accept() failed for want of descriptors or memory (the listener "
             "then rests).\n"
             "# TYPE tern_accept_errors_total counter\ntern_accept_errors_total %lu\n",
             atomic_load(&srv->accept_errors));
  buf_printf(&b,
             "# HELP tern_output_queued_bytes Output queued to connections that did not take it at once, and (in a "
             "cluster) output held behind an answer waiting for Redis: what output_limit_ip and output_limit_total "
             "count.\n"
             "# TYPE tern_output_queued_bytes gauge\ntern_output_queued_bytes %lld\n",
             (long long)atomic_load(&srv->out_queued));
  buf_printf(&b,
             "# HELP tern_output_dropped_total Slow connections dropped for their output queue, by the limit it hit.\n"
             "# TYPE tern_output_dropped_total counter\ntern_output_dropped_total{limit=\"connection\"} %lu\n"
             "tern_output_dropped_total{limit=\"ip\"} %lu\ntern_output_dropped_total{limit=\"total\"} %lu\n",
             atomic_load(&srv->out_dropped_conn), atomic_load(&srv->out_dropped_ip),
             atomic_load(&srv->out_dropped_total));
  rest_files_metrics(srv, &b);
  metrics_render(&b);
  out_metrics(out_of(im), &b);
  routes_metrics(&b);
  store_metrics(srv->store, &b);
  if (im->bus) {
    bus_metrics(im->bus, &b);
    im_bus_metrics(im, &b);
  }
  metrics_render_process(&b);
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
 * gets 405. The last column says who may call the route (rest.h rest_auth_t; rows of
 * rest_rtm_routes that say nothing need the master key); docs/rest.md lists every row with
 * its key, and tests/unit/test_routes.c holds the two to each other. */
typedef rest_route_t route_t;

static const route_t routes[] = {
    {HTTP_GET, "/v1/route", route_router, NULL, AUTH_OPEN},
    {HTTP_GET, "/1.1/rtm/notifications", rest_notifications, NULL, AUTH_CLIENT, 1},
    {HTTP_GET, "/1.1/classes/_ConversationMemberInfo", rest_member_infos, NULL, AUTH_CLIENT, 1},
    {HTTP_GET, "/health", route_health, NULL, AUTH_OPEN},
    {HTTP_GET, "/ready", rest_ready, NULL, AUTH_OPEN},
    {HTTP_GET, "/metrics", route_metrics, NULL, AUTH_METRICS},
    {HTTP_POST, "/1.1/installations", rest_installations, NULL, AUTH_APP},
    {HTTP_GET, "/1.1/installations/:id", rest_installations, NULL, AUTH_APP},
    {HTTP_PUT, "/1.1/installations/:id", rest_installations, NULL, AUTH_APP},
    {HTTP_DELETE, "/1.1/installations/:id", rest_installations, NULL, AUTH_MASTER},
    {HTTP_POST, "/debug/faults", route_faults, NULL, AUTH_MASTER},
    {HTTP_POST, "/1.1/files", rest_file_upload, rest_files_body_limit, AUTH_APP},
    {HTTP_POST, "/1.2/files", rest_file_upload, rest_files_body_limit, AUTH_APP},
    {HTTP_POST, "/1.1/files/*name", rest_file_upload, rest_files_body_limit, AUTH_APP},
    {HTTP_POST, "/1.2/files/*name", rest_file_upload, rest_files_body_limit, AUTH_APP},
    {HTTP_GET, "/1.1/files/:id", rest_file_meta, NULL, AUTH_APP},
    {HTTP_GET, "/1.2/files/:id", rest_file_meta, NULL, AUTH_APP},
    {HTTP_DELETE, "/1.1/files/:id", rest_file_delete, NULL, AUTH_MASTER},
    {HTTP_DELETE, "/1.2/files/:id", rest_file_delete, NULL, AUTH_MASTER},
    {HTTP_POST, "/1.1/fileTokens", rest_file_token, NULL, AUTH_APP},
    {HTTP_POST, "/1.2/fileTokens", rest_file_token, NULL, AUTH_APP},
    {HTTP_PUT, "/1.1/fileUploads/:id", rest_file_token_upload, rest_files_body_limit, AUTH_UPLOAD},
    {HTTP_POST, "/1.1/fileCallback", rest_file_callback, NULL, AUTH_APP},
    {HTTP_POST, "/1.2/fileCallback", rest_file_callback, NULL, AUTH_APP},
    {HTTP_GET, "/files/:id", rest_file_download, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/files/:id", rest_file_download, NULL, AUTH_OPEN},
    {HTTP_GET, "/files/:id/*name", rest_file_download, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/files/:id/*name", rest_file_download, NULL, AUTH_OPEN},
    {HTTP_GET, "/1.2/tern/hooks", rest_hooks_status, NULL, AUTH_MASTER},
    {HTTP_GET, "/1.2/tern/push/dead-letters", rest_dead_letters, NULL, AUTH_MASTER},
    {HTTP_POST, "/1.2/tern/backup", rest_backup, NULL, AUTH_MASTER},
    {HTTP_GET, "/console", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/console", web_serve, NULL, AUTH_OPEN},
    {HTTP_GET, "/console/", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/console/", web_serve, NULL, AUTH_OPEN},
    {HTTP_GET, "/console/*file", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/console/*file", web_serve, NULL, AUTH_OPEN},
    {HTTP_GET, "/chat", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/chat", web_serve, NULL, AUTH_OPEN},
    {HTTP_GET, "/chat/", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/chat/", web_serve, NULL, AUTH_OPEN},
    {HTTP_GET, "/chat/*file", web_serve, NULL, AUTH_OPEN},
    {HTTP_HEAD, "/chat/*file", web_serve, NULL, AUTH_OPEN},
    /* the master key (no auth named): the import API and the LeanCloud-shaped class reads */
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
};

void routes_each(void (*cb)(void *arg, const rest_route_t *rt), void *arg) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) cb(arg, &routes[i]);
  for (const route_t *rt = rest_rtm_routes; rt->path; rt++) cb(arg, rt);
}

/* The path routes see: a run of leading slashes counts as one. The C# SDK builds its
 * router URL as "{server}/v1/route" (Realtime/Internal/Router/LCRTMRouter.cs) and the JS
 * SDK 5 "${RTMRouter}/v1/route" and "${api}/1.1/…", so a server URL configured with a
 * trailing slash asks for "//v1/route". */
static const char *route_path(const http_req_t *r) {
  const char *p = r->raw_path;
  while (p[0] == '/' && p[1] == '/') p++;
  return p;
}

/* The row for r's method and path; NULL with *path_known set when only the method differs. */
static const route_t *find_route(const http_req_t *r, int *path_known) {
  const char *path = route_path(r);
  *path_known = 0;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    if (!route_match(routes[i].path, path, NULL)) continue;
    *path_known = 1;
    if (routes[i].method == r->method) return &routes[i];
  }
  for (const route_t *rt = rest_rtm_routes; rt->path; rt++) {
    if (!route_match(rt->path, path, NULL)) continue;
    *path_known = 1;
    if (rt->method == r->method) return rt;
  }
  return NULL;
}

size_t routes_head(conn_t *c, http_req_t *r) {
  if (r->method == HTTP_OPTIONS) return HTTP_MAX_BODY; /* a preflight: no route, no keys */
  const route_t *rt = find_route(r, &r->route_known);
  r->route = rt;
  if (!rt) return HTTP_MAX_BODY;           /* 404 / 405 in turn */
  route_match(rt->path, route_path(r), r); /* the parameters: auth may need :client_id, :id */
  if (rest_authorize(c, r, rt->auth) < 0) return 0;
  if (!rt->body_limit) return HTTP_MAX_BODY;
  if (rest_files_admit(c, r) < 0) return 0;
  return rt->body_limit(c, r);
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
  const route_t *rt = r->route;
  if (r->deny_status) {
    http_respond_error(c, r, r->deny_status, r->deny_code, r->deny_msg);
  } else if (rt) {
    rt->fn(c, r);
  } else if (r->route_known) {
    http_respond_error(c, r, 405, 405, "method not allowed");
  } else {
    http_respond_error(c, r, 404, 404, "not found");
  }
}

/* ---------------------------------------------------------------- access log, per-route counts */

/* Counts by route row and status. REST calls are not the hot path: one shared atomic add
 * each. The last row is "no route" (404, 405, preflights), the last column "other". */
#define ROUTES_MAX 255
static const int statuses[] = {200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 416, 429, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
static _Atomic uint64_t route_counts[ROUTES_MAX + 1][N_STATUS + 1];

/* The row's place in routes_each order, ROUTES_MAX for none. */
static size_t route_index(const route_t *rt) {
  if (!rt) return ROUTES_MAX;
  size_t i = 0;
  for (; i < sizeof routes / sizeof routes[0]; i++)
    if (&routes[i] == rt) return i;
  for (const route_t *x = rest_rtm_routes; x->path && i < ROUTES_MAX; x++, i++)
    if (x == rt) return i;
  return ROUTES_MAX;
}

static const char *method_name(int m) { return http_method_str((enum http_method)m); }

void routes_done(conn_t *c, const http_req_t *r) {
  uint64_t us = (mono_ns() - r->t0_ns) / 1000;
  size_t s = 0;
  while (s < N_STATUS && statuses[s] != r->status) s++;
  atomic_fetch_add_explicit(&route_counts[route_index(r->route)][s], 1, memory_order_relaxed);
  metric_observe_us(M_HTTP_REQUEST, us);
  /* the path without its query (upload tokens, client ids ride there); never a body */
  log_event(LOG_INFO, "http", "addr=%s method=%s path=%s status=%d code=%d duration_ms=%f", c->ip,
            method_name(r->method), r->raw_path, r->status, r->err_code, (double)us / 1000);
}

static void route_rows(void *arg, const rest_route_t *rt) {
  buf_t *out = ((void **)arg)[0];
  size_t *i = ((void **)arg)[1];
  if (rt && *i >= ROUTES_MAX) return;
  for (size_t s = 0; s <= N_STATUS; s++) {
    uint64_t v = atomic_load_explicit(&route_counts[*i][s], memory_order_relaxed);
    if (!v) continue;
    char st[8];
    if (s < N_STATUS) snprintf(st, sizeof st, "%d", statuses[s]);
    else snprintf(st, sizeof st, "other");
    buf_printf(out, "tern_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
               rt ? method_name(rt->method) : "", rt ? rt->path : "none", st, (unsigned long long)v);
  }
  (*i)++;
}

void routes_metrics(buf_t *out) {
  buf_append_str(out, "# HELP tern_http_requests_total HTTP requests answered, by route (the route table's "
                      "pattern; none: no route matched, preflights) and status; a series appears with its first.\n"
                      "# TYPE tern_http_requests_total counter\n");
  size_t i = 0;
  void *arg[2] = {out, &i};
  routes_each(route_rows, arg);
  i = ROUTES_MAX;
  route_rows(arg, NULL);
}
