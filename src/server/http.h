/* http.h — HTTP/1.1 requests on a connection before (or instead of) the WebSocket.
 *
 * Parsing is libhttp-parser's; this layer collects one request at a time with hard
 * limits on header and body size, then hands it to the route table in routes.c. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "buf.h"
#include "conn.h"

#define HTTP_MAX_HEADERS 64
#define HTTP_MAX_HEADER_BYTES (16 * 1024)
#define HTTP_MAX_BODY (1024 * 1024) /* for every route that does not ask for more */

#define HTTP_MAX_PARAMS 8

typedef struct {
  char *name, *value;
} http_header_t;

/* One path parameter of the matched route (":cid" in the pattern → name "cid"). */
typedef struct {
  char *name, *value; /* value percent-decoded */
} http_param_t;

typedef struct {
  int method;     /* http_parser's enum http_method */
  char *path;     /* decoded path, no query */
  char *raw_path; /* the path as sent (still percent-encoded), no query: what routes match */
  char *query;    /* raw query string (after '?'), or "" */
  http_header_t headers[HTTP_MAX_HEADERS];
  int nheaders;
  http_param_t params[HTTP_MAX_PARAMS]; /* set by the router for the route it chose */
  int nparams;
  buf_t body;
  int keep_alive;
  /* Decided by routes_head() from the head, before any body byte is read (routes.c): */
  const void *route;   /* the route row chosen (rest_route_t), NULL when none matched */
  int route_known;     /* no row for this method, but the path has rows (405) */
  int key;             /* what X-LC-Key / X-LC-Sign proved (rest.h REST_KEY_*) */
  int deny_status, deny_code; /* refused (401, 403, 429, 503 …): answered instead of the route */
  const char *deny_msg;       /* a static string */
  void *slot;                 /* a resource held while the body is in memory (an upload slot) */
  void (*slot_free)(void *slot); /* releases it: when the request ends, unless taken */
} http_req_t;

const char *http_header(const http_req_t *r, const char *name); /* case-insensitive; NULL if absent */
/* Copies the URL-decoded value of query parameter `key` into a new string; NULL if absent. */
char *http_query_param(const http_req_t *r, const char *key);
/* The decoded value of the matched route's path parameter `name` (borrowed from r); NULL
 * if the route has none of that name. */
const char *http_path_param(const http_req_t *r, const char *name);
/* A Range header (RFC 9110 §14.1.2) for a body of `size` bytes: 1 with the inclusive
 * [*first, *last] for one satisfiable byte range, 0 when the header is absent or is to be
 * ignored (not bytes, several ranges, malformed: serve the whole body), -1 when
 * unsatisfiable (answer 416). */
int http_parse_range(const char *value, int64_t size, int64_t *first, int64_t *last);
/* Percent-decoding of n bytes into a new string; `plus` turns '+' into ' ' (query strings). */
char *http_url_decode(const char *s, size_t n, int plus);

void http_respond(conn_t *c, const http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                  const char *extra_headers);
/* Serialises j (stealing the reference) as the JSON body. */
void http_respond_json(conn_t *c, const http_req_t *r, int status, json_t *j);
/* The reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);
/* LeanCloud REST error shape {"code": code, "error": message}. */
void http_respond_error(conn_t *c, const http_req_t *r, int status, int code, const char *message);

/* Deferred answers. A handler that answers after asynchronous work (file I/O on the
 * thread pool) calls http_defer() before it returns: the request — r and all it holds —
 * stays valid and the connection reads nothing more until http_resume(), so pipelined
 * requests wait their turn. The work must find the connection again by handle (c->id in
 * its worker's conns table): the connection may close meanwhile, and r goes with it. */
void http_defer(conn_t *c);
/* Ends a deferred request once its answer is queued: frees the request, closes the
 * connection if the client did not ask for keep-alive, else reads on (serving requests
 * already received). */
void http_resume(conn_t *c);
/* The request c is answering later, or NULL when none is deferred (it closed or was
 * answered): how deferred work finds what to answer. */
const http_req_t *http_deferred_req(conn_t *c);
/* When the request c is reading must be complete (conn_sweep closes it after), 0 if none:
 * its head within login_timeout of its first byte, the whole within idle_timeout. */
int64_t http_deadline(const conn_t *c);
/* Moves the current request's body into *out (the caller frees it): for work that may
 * outlive the connection. */
void http_take_body(conn_t *c, buf_t *out);
/* Moves the current request's slot (r->slot) to the caller, who releases it with
 * r->slot_free once it has freed the body: an upload's memory is counted until then, even
 * if the connection goes first. NULL when it holds none. */
void *http_take_slot(conn_t *c);

/* routes.c: everything decided from a request's head, before any body byte is read: the
 * route (r->route, r->params), whether its keys may call it (r->key, or r->deny_* — a
 * refused request with a body is answered at once and the connection closed, one without
 * is answered in turn), an upload slot for upload routes; returns the largest body r may
 * carry: the route's own limit when its row names one, else HTTP_MAX_BODY. Not called for
 * WebSocket upgrades. */
size_t routes_head(conn_t *c, http_req_t *r);
/* routes.c: the request router. The upgrade path is handled before it. It answers the
 * refusal routes_head() decided, or calls the handler of the route it chose. */
void routes_dispatch(conn_t *c, http_req_t *r);
/* Route patterns. A pattern is a path of segments: a literal segment matches itself,
 * ":name" matches any one non-empty segment, and "*name" — last only — matches the
 * non-empty rest of the path, slashes included. Examples: "/1.2/rtm/conversations/:cid/members"
 * gives cid; "/files/:id" followed by the segment "*name" gives id and name.
 * Matching is on the raw (percent-encoded) path, so an encoded '/' stays inside its
 * segment; values are decoded afterwards. Returns 1 on a match — then, when r is not NULL,
 * r->params holds the parameters (replacing earlier ones) — else 0. Patterns with more
 * than HTTP_MAX_PARAMS parameters never match. */
int route_match(const char *pattern, const char *raw_path, http_req_t *r);

#endif
