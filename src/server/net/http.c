/* http.c — request collection on libhttp-parser, the WebSocket upgrade, responses. */
#include "http.h"

#include <ctype.h>
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "proxies.h"
#include "timeutil.h"
#include "worker.h"
#include "ws_frame.h"

struct http_conn {
  http_parser parser;
  http_req_t req;
  conn_t *conn;
  buf_t url, field, value;
  int last_was_value;
  size_t header_bytes;
  size_t body_limit;     /* this request's, from net_app->http_head (routes_head) */
  int error_status;      /* set by callbacks to stop with an HTTP error */
  int error_code;        /* its LeanCloud code (0: the status) */
  const char *error_msg; /* its message (NULL: a generic one); static */
  int complete;          /* a request finished; dispatch after execute returns */
  int deferred;          /* its handler answers later (http_defer) */
  int64_t deadline_ms;   /* the request under way must be read by then (0: none) */
};

static void req_reset(http_conn_t *h) {
  http_req_t *r = &h->req;
  /* an answered request ends: one access-log line, one count (net.h http_done) */
  if (r->status && r->path && h->conn->w->srv->net_app->http_done) h->conn->w->srv->net_app->http_done(h->conn, r);
  free(r->path);
  free(r->raw_path);
  free(r->query);
  for (int i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  for (int i = 0; i < r->nparams; i++) {
    free(r->params[i].name);
    free(r->params[i].value);
  }
  buf_free(&r->body);
  if (r->slot) r->slot_free(r->slot); /* after the body: the slot counts its memory */
  memset(r, 0, sizeof *r);
  buf_free(&h->url);
  buf_free(&h->field);
  buf_free(&h->value);
  h->last_was_value = 0;
  h->header_bytes = 0;
  h->body_limit = 0;
  h->complete = 0;
}

void http_conn_free(http_conn_t *h) {
  if (!h) return;
  req_reset(h);
  free(h);
}

static int push_header(http_conn_t *h) {
  if (!h->field.len) return 0;
  http_req_t *r = &h->req;
  if (r->nheaders == HTTP_MAX_HEADERS) {
    h->error_status = 431;
    return -1;
  }
  r->headers[r->nheaders].name = xstrndup((char *)h->field.data, h->field.len);
  r->headers[r->nheaders].value = xstrndup(h->value.len ? (char *)h->value.data : "", h->value.len);
  r->nheaders++;
  h->field.len = h->value.len = 0;
  return 0;
}

static int count_header(http_conn_t *h, size_t n) {
  h->header_bytes += n;
  if (h->header_bytes > HTTP_MAX_HEADER_BYTES) {
    h->error_status = 431;
    return -1;
  }
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  http_conn_t *h = p->data;
  if (count_header(h, n)) return -1;
  buf_append(&h->url, at, n);
  return 0;
}

static int on_field(http_parser *p, const char *at, size_t n) {
  http_conn_t *h = p->data;
  if (count_header(h, n)) return -1;
  if (h->last_was_value && push_header(h)) return -1;
  h->last_was_value = 0;
  buf_append(&h->field, at, n);
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t n) {
  http_conn_t *h = p->data;
  if (count_header(h, n)) return -1;
  h->last_was_value = 1;
  buf_append(&h->value, at, n);
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Percent-decoding; '+' becomes a space only in query strings. */
char *http_url_decode(const char *s, size_t n, int plus) {
  char *out = xmalloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int hi = 0, lo = 0;
    if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
        (lo = hexval((unsigned char)s[i + 2])) >= 0) {
      out[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else if (plus && s[i] == '+') {
      out[o++] = ' ';
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = 0;
  return out;
}

/* Request deadlines (enforced by conn_sweep): the head must arrive within login_timeout of
 * its first byte however it is trickled (slowloris), the whole request within idle_timeout. */
static int on_message_begin(http_parser *p) {
  http_conn_t *h = p->data;
  h->deadline_ms = now_ms() + (int64_t)h->conn->w->srv->cfg->login_timeout * 1000;
  h->req.t0_ns = mono_ns();
  return 0;
}

static int on_headers_complete(http_parser *p) {
  http_conn_t *h = p->data;
  const tern_config_t *cfg = h->conn->w->srv->cfg;
  if (cfg->idle_timeout > cfg->login_timeout)
    h->deadline_ms += (int64_t)(cfg->idle_timeout - cfg->login_timeout) * 1000;
  if (h->last_was_value && push_header(h)) return -1;
  http_req_t *r = &h->req;
  if (h->conn->from_proxy) {
    char client[64], *xff = http_header_list(r, "X-Forwarded-For");
    int named = proxies_client(h->conn->w->srv->proxies, xff, client, sizeof client);
    free(xff);
    if (conn_forwarded(h->conn, named ? client : NULL) < 0) {
      h->error_status = 429;
      h->error_msg = "too many connections from this address";
      return -1;
    }
  }
  r->method = p->method;
  r->keep_alive = http_should_keep_alive(p);
  const char *u = h->url.len ? (const char *)buf_cstr(&h->url) : "/";
  const char *q = strchr(u, '?');
  size_t plen = q ? (size_t)(q - u) : strlen(u);
  r->path = http_url_decode(u, plen, 0);
  r->raw_path = xstrndup(u, plen);
  r->query = xstrdup(q ? q + 1 : "");
  /* The route decides, from the head, who may send this (keys, an upload token, an upload
   * slot) and how much body it takes (file uploads take more than JSON calls). A refused
   * request with a body is answered now and the connection closed: not a byte of the body
   * is buffered. One without waits for its turn and keeps the connection. A declared
   * length over the limit is refused likewise. Upgrades are not routed. */
  h->body_limit = p->upgrade ? HTTP_MAX_BODY : h->conn->w->srv->net_app->http_head(h->conn, r);
  int has_body = (p->flags & F_CHUNKED) || (p->content_length != ULLONG_MAX && p->content_length > 0);
  if (r->deny_status && has_body) {
    h->error_status = r->deny_status;
    h->error_code = r->deny_code;
    h->error_msg = r->deny_msg;
    return -1;
  }
  if (p->content_length != ULLONG_MAX && p->content_length > h->body_limit) {
    h->error_status = 413;
    return -1;
  }
  /* A client that waits for leave to send its body (curl does, for uploads over 1 MiB)
   * gets it now, having passed the size check (RFC 9110 §10.1.1). */
  const char *expect = http_header(r, "Expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_major == 1 && p->http_minor >= 1) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_write(h->conn, cont, sizeof cont - 1);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  http_conn_t *h = p->data;
  if (h->req.body.len + n > h->body_limit) {
    h->error_status = 413;
    return -1;
  }
  buf_append(&h->req.body, at, n);
  return 0;
}

static int on_message_complete(http_parser *p) {
  http_conn_t *h = p->data;
  h->complete = 1;
  h->deadline_ms = 0;
  http_parser_pause(p, 1); /* one request at a time: dispatch, then continue */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

const char *http_header(const http_req_t *r, const char *name) {
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}

char *http_header_list(const http_req_t *r, const char *name) {
  buf_t b = BUF_INIT;
  int found = 0;
  for (int i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) buf_printf(&b, "%s%s", found++ ? ", " : "", r->headers[i].value);
  return found ? buf_cstr(&b) : NULL; /* the buffer's own memory, NUL-terminated */
}

char *http_query_param(const http_req_t *r, const char *key) {
  size_t klen = strlen(key);
  const char *s = r->query;
  while (s && *s) {
    const char *amp = strchr(s, '&');
    size_t len = amp ? (size_t)(amp - s) : strlen(s);
    const char *eq = memchr(s, '=', len);
    size_t nlen = eq ? (size_t)(eq - s) : len;
    char *name = http_url_decode(s, nlen, 1);
    int match = strlen(name) == klen && memcmp(name, key, klen) == 0;
    free(name);
    if (match) return eq ? http_url_decode(eq + 1, len - nlen - 1, 1) : xstrdup("");
    s = amp ? amp + 1 : NULL;
  }
  return NULL;
}

/* Digits at *s into *v (at most 18, so no overflow); advances *s. -1 when there are none. */
static int range_num(const char **s, int64_t *v) {
  int64_t x = 0;
  int n = 0;
  for (; **s >= '0' && **s <= '9'; (*s)++) {
    if (++n > 18) return -1;
    x = x * 10 + (**s - '0');
  }
  *v = x;
  return n ? 0 : -1;
}

int http_parse_range(const char *value, int64_t size, int64_t *first, int64_t *last) {
  if (!value) return 0;
  while (*value == ' ' || *value == '\t') value++;
  if (strncasecmp(value, "bytes=", 6) != 0) return 0;
  const char *s = value + 6;
  while (*s == ' ') s++;
  int64_t a, b;
  if (*s == '-') { /* suffix: the last b bytes */
    s++;
    if (range_num(&s, &b) < 0) return 0;
    while (*s == ' ') s++;
    if (*s) return 0;
    if (b == 0 || size == 0) return -1;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return 1;
  }
  if (range_num(&s, &a) < 0 || *s++ != '-') return 0;
  b = -1;
  if (*s >= '0' && *s <= '9' && range_num(&s, &b) < 0) return 0;
  while (*s == ' ') s++;
  if (*s || (b >= 0 && b < a)) return 0; /* several ranges, or not a range at all */
  if (a >= size) return -1;
  *first = a;
  *last = b < 0 || b >= size ? size - 1 : b;
  return 1;
}

const char *http_path_param(const http_req_t *r, const char *name) {
  for (int i = 0; i < r->nparams; i++)
    if (strcmp(r->params[i].name, name) == 0) return r->params[i].value;
  return NULL;
}

const char *http_status_text(int status) {
  switch (status) {
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 413: return "Payload Too Large";
  case 416: return "Range Not Satisfiable";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  }
  return "Unknown";
}

void http_respond(conn_t *c, const http_req_t *r, int status, const char *content_type, const void *body, size_t len,
                  const char *extra_headers) {
  buf_t b = BUF_INIT;
  int keep = r && r->keep_alive && status < 500;
  /* A response to HEAD has no body (RFC 9110 §9.3.2); handlers that serve HEAD write their
   * own head with the real length, so what comes through here says 0. */
  if (r && r->method == HTTP_HEAD) len = 0;
  http_note_status(c, status);
  buf_printf(&b,
             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
             "Access-Control-Allow-Origin: *\r\nConnection: %s\r\n%s\r\n",
             status, http_status_text(status), content_type, len, keep ? "keep-alive" : "close",
             extra_headers ? extra_headers : "");
  buf_append(&b, body, len);
  conn_write(c, b.data, b.len);
  buf_free(&b);
  if (!keep) conn_close(c, 0, NULL);
}

void http_respond_json(conn_t *c, const http_req_t *r, int status, json_t *j) {
  /* j is NULL when json_pack refused its input (a string that is not UTF-8): answer 500
   * rather than pass json_dumps' NULL on */
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!s) {
    static const char body[] = "{\"code\":500,\"error\":\"internal error: unencodable response\"}";
    http_respond(c, r, 500, "application/json; charset=utf-8", body, sizeof body - 1, NULL);
    return;
  }
  http_respond(c, r, status, "application/json; charset=utf-8", s, strlen(s), NULL);
  free(s);
}

void http_note_status(conn_t *c, int status) {
  if (c->http) c->http->req.status = status;
}

void http_respond_error(conn_t *c, const http_req_t *r, int status, int code, const char *message) {
  if (c->http) c->http->req.err_code = code;
  http_respond_json(c, r, status, json_pack("{s:i, s:s}", "code", code, "error", message));
}

void http_defer(conn_t *c) {
  c->http->deferred = 1;
  conn_pause_input(c);
}

void http_resume(conn_t *c) {
  http_conn_t *h = c->http;
  if (!h || !h->deferred) return;
  h->deferred = 0;
  int keep = h->req.keep_alive;
  req_reset(h);
  if (!keep) conn_close(c, 0, NULL);
  else conn_resume_input(c);
}

int64_t http_deadline(const conn_t *c) { return c->http ? c->http->deadline_ms : 0; }

const http_req_t *http_deferred_req(conn_t *c) { return c->http && c->http->deferred ? &c->http->req : NULL; }

const http_req_t *http_deferred_find(worker_t *w, uint64_t id, conn_t **c) {
  *c = handle_table_get(&w->conns, id);
  return *c && !(*c)->reaping ? http_deferred_req(*c) : NULL;
}

void http_take_body(conn_t *c, buf_t *out) {
  *out = c->http->req.body;
  c->http->req.body = (buf_t)BUF_INIT;
}

void *http_take_slot(conn_t *c) {
  void *slot = c->http->req.slot;
  c->http->req.slot = NULL;
  return slot;
}

/* Pick the first offered subprotocol we speak. Returns its format/version or -1. */
static int pick_subprotocol(const char *offer, char *chosen, size_t chosen_len, int *base64, int *version) {
  static const struct {
    const char *name;
    int base64, version;
  } known[] = {
      {"lc.protobuf2.3", 0, 3},    {"lc.protobuf2.2", 0, 2},    {"lc.protobuf2.1", 0, 1},
      {"lc.proto2base64.3", 1, 3}, {"lc.proto2base64.2", 1, 2}, {"lc.proto2base64.1", 1, 1},
  };
  const char *s = offer;
  while (*s) {
    while (*s == ' ' || *s == ',') s++;
    const char *e = s;
    while (*e && *e != ',' && *e != ' ') e++;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
      if ((size_t)(e - s) == strlen(known[i].name) && memcmp(s, known[i].name, (size_t)(e - s)) == 0) {
        snprintf(chosen, chosen_len, "%s", known[i].name);
        *base64 = known[i].base64;
        *version = known[i].version;
        return 0;
      }
    }
    s = e;
  }
  return -1;
}

static int header_has_token(const char *v, const char *token) {
  size_t tl = strlen(token);
  for (const char *s = v; s && *s;) {
    while (*s == ' ' || *s == ',') s++;
    const char *e = s;
    while (*e && *e != ',') e++;
    const char *te = e;
    while (te > s && te[-1] == ' ') te--;
    if ((size_t)(te - s) == tl && strncasecmp(s, token, tl) == 0) return 1;
    s = e;
  }
  return 0;
}

/* RFC 6455 §4.2: validate, choose the subprotocol, answer 101. Returns 0 when upgraded. */
/* RFC 6455 §4.2: validate, choose the subprotocol, answer 101. Returns 0 when upgraded.
 * A refused upgrade closes the connection: bytes pipelined behind it were meant for a
 * WebSocket and cannot be read as HTTP. */
static int upgrade(conn_t *c, const http_req_t *r) {
  const char *up = http_header(r, "Upgrade"), *conn_h = http_header(r, "Connection");
  const char *key = http_header(r, "Sec-WebSocket-Key"), *ver = http_header(r, "Sec-WebSocket-Version");
  const char *proto = http_header(r, "Sec-WebSocket-Protocol");
  if (r->method != HTTP_GET || !up || strcasecmp(up, "websocket") != 0 || !conn_h ||
      !header_has_token(conn_h, "upgrade")) {
    http_respond_error(c, NULL, 400, 400, "bad WebSocket upgrade request");
    return -1;
  }
  if (!ver || strcmp(ver, "13") != 0) {
    static const char body[] = "{\"code\":426,\"error\":\"WebSocket version 13 required\"}";
    http_respond(c, NULL, 426, "application/json; charset=utf-8", body, sizeof body - 1,
                 "Sec-WebSocket-Version: 13\r\n");
    return -1;
  }
  if (!key || strlen(key) < 16 || strlen(key) > 64) {
    http_respond_error(c, NULL, 400, 400, "missing or malformed Sec-WebSocket-Key");
    return -1;
  }
  char chosen[32];
  int base64 = 0, version = 3;
  if (!proto || pick_subprotocol(proto, chosen, sizeof chosen, &base64, &version) < 0) {
    /* Echo the offer as printable ASCII only: the JSON body must be valid UTF-8, and a
     * subprotocol name is a token anyway (RFC 6455 §4.1). */
    char offer[61];
    size_t k = 0;
    for (const char *s = proto ? proto : ""; *s && k < sizeof offer - 1; s++)
      offer[k++] = *s >= 0x20 && *s < 0x7f ? *s : '?';
    offer[k] = 0;
    char msg[200];
    snprintf(msg, sizeof msg, "unsupported subprotocol \"%s\"; use lc.protobuf2.3, lc.protobuf2.1 or lc.proto2base64.3",
             offer);
    http_respond_error(c, NULL, 400, 400, msg);
    return -1;
  }
  char accept[29];
  ws_accept_key(key, strlen(key), accept);
  buf_t b = BUF_INIT;
  buf_printf(&b,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
             accept, chosen);
  conn_write(c, b.data, b.len);
  buf_free(&b);
  ws_start(c, base64, version);
  return 0;
}

int http_input(conn_t *c, uint8_t *p, size_t n) {
  if (!c->http) {
    c->http = xcalloc(1, sizeof *c->http);
    http_parser_init(&c->http->parser, HTTP_REQUEST);
    c->http->parser.data = c->http;
    c->http->conn = c;
  }
  if (c->http->deferred) return 0; /* not now: the input waits in c->in (reading is stopped) */
  http_conn_t *h = c->http;
  size_t off = 0;
  while (off < n && c->state == CONN_HTTP) {
    size_t used = http_parser_execute(&h->parser, &settings, (const char *)p + off, n - off);
    off += used;
    enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
    if (err != HPE_OK && err != HPE_PAUSED) {
      int status = h->error_status ? h->error_status : 400;
      const char *msg = h->error_msg      ? h->error_msg
                        : h->error_status ? "request too large"
                                          : http_errno_description(err);
      http_respond_error(c, NULL, status, h->error_code ? h->error_code : status, msg);
      return (int)n;
    }
    if (!h->complete) break; /* need more bytes */
    if (err == HPE_PAUSED) http_parser_pause(&h->parser, 0);
    if (h->parser.upgrade) {
      int ok = upgrade(c, &h->req) == 0;
      http_conn_free(c->http);
      c->http = NULL;
      if (!ok) return (int)n;
      int r = ws_input(c, p + off, n - off);
      return r < 0 ? (int)n : (int)(off + (size_t)r);
    }
    c->w->srv->net_app->http_request(c, &h->req);
    if (h->deferred) return (int)off; /* the rest waits for http_resume */
    req_reset(h);
  }
  /* Bytes the parser consumed are its own now (it keeps partial-token state itself). */
  return (int)n;
}
