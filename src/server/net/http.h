/* http.h — HTTP/1.1 requests on a connection before (or instead of) the WebSocket.
 *
 * Parsing is libhttp-parser's; this layer collects one request at a time with hard
 * limits on header and body size, then hands it to the layer above through net.h's
 * http_head and http_request (the route table, api/routes.c). */
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

typedef struct http_req {
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
  /* Decided from the head by the layer above (net.h http_head: routes_head), before any
   * body byte is read: */
  const void *route;             /* the route row chosen (rest_route_t), NULL when none matched */
  int route_known;               /* no row for this method, but the path has rows (405) */
  int key;                       /* what X-LC-Key / X-LC-Sign proved (rest.h REST_KEY_*) */
  int deny_status, deny_code;    /* refused (401, 403, 429, 503 …): answered instead of the route */
  const char *deny_msg;          /* a static string */
  int auth_pending;              /* allowed so far; the store's part of the check is the handler's
                                  * to make with its reads (rest.h AUTH_CLIENT, rest_read_run) */
  void *slot;                    /* a resource held while the body is in memory (an upload slot) */
  void (*slot_free)(void *slot); /* releases it: when the request ends, unless taken */
  /* What became of it, for the access log and /metrics (net.h http_done): */
  uint64_t t0_ns; /* mono_ns() at its first byte */
  int status;     /* the status answered (0: none yet) */
  int err_code;   /* http_respond_error's code, 0 otherwise */
} http_req_t;

const char *http_header(const http_req_t *r, const char *name); /* case-insensitive; NULL if absent */
/* Every line of a list header, joined with ", " in their order as RFC 9110 §5.3 combines
 * them (a proxy may add its own X-Forwarded-For line after the client's); NULL if absent.
 * The caller frees it. */
char *http_header_list(const http_req_t *r, const char *name);
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
/* Records the status of an answer a handler wrote itself (its own head: downloads, web
 * assets), for the access log and /metrics; http_respond does it for the rest. */
void http_note_status(conn_t *c, int status);
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
/* What deferred work calls when it is done: the connection of handle id on w (into *c)
 * and the request it deferred, or NULL when the connection closed, is being closed, or
 * has no deferred request. */
const http_req_t *http_deferred_find(worker_t *w, uint64_t id, conn_t **c);
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

#endif
