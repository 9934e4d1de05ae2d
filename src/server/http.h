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
#define HTTP_MAX_BODY (1024 * 1024)

typedef struct {
  char *name, *value;
} http_header_t;

typedef struct {
  int method; /* http_parser's enum http_method */
  char *path; /* decoded path, no query */
  char *query; /* raw query string (after '?'), or "" */
  http_header_t headers[HTTP_MAX_HEADERS];
  int nheaders;
  buf_t body;
  int keep_alive;
} http_req_t;

const char *http_header(const http_req_t *r, const char *name); /* case-insensitive; NULL if absent */
/* Copies the URL-decoded value of query parameter `key` into a new string; NULL if absent. */
char *http_query_param(const http_req_t *r, const char *key);

void http_respond(conn_t *c, const http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                  const char *extra_headers);
/* Serialises j (stealing the reference) as the JSON body. */
void http_respond_json(conn_t *c, const http_req_t *r, int status, json_t *j);
/* LeanCloud REST error shape {"code": code, "error": message}. */
void http_respond_error(conn_t *c, const http_req_t *r, int status, int code, const char *message);

/* routes.c: the request router. The upgrade path is handled before it. */
void routes_dispatch(conn_t *c, const http_req_t *r);

#endif
