/* fuzz_conn.c — a socketless client connection for the HTTP and WebSocket fuzz targets. */
#include "fuzz_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "fuzz_im.h"
#include "http.h"
#include "worker.h"
#include "ws_frame.h"

typedef struct {
  conn_t c;         /* first: the harness's conn_t * is this struct */
  int out_ws;       /* the output is WebSocket frames (a 101 went out) */
  int out_closed;   /* a close frame went out */
  size_t body_left; /* bytes of a download's body still to come (its head went out) */
  int last_status;  /* the last complete response (fz_conn_last_response) */
  buf_t last_body;
} fz_conn_t;

conn_t *fz_conn_new(const char *ip) {
  fz_conn_t *fc = xcalloc(1, sizeof *fc);
  conn_t *c = &fc->c;
  c->w = fz_server()->workers[0];
  c->w->flush_list = c->w->reap_list = NULL;
  c->id = handle_table_add(&c->w->conns, c); /* deferred REST answers find it by handle */
  c->state = CONN_HTTP;
  c->link.sessionless_since_ms = c->last_rx_ms = 1;
  snprintf(c->ip, sizeof c->ip, "%s", ip);
  return c;
}

void fz_conn_ws_start(conn_t *c, int base64, int proto_version) {
  ws_start(c, base64, proto_version);
  ((fz_conn_t *)c)->out_ws = 1;
}

/* Ids in a REST answer ("objectId": "…", "msgId": "…"): every quoted string of the right
 * shape is learned, as ids in server frames are. */
static void learn_strings(const char *p, size_t n) {
  char tmp[64];
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '"') continue;
    size_t j = i + 1;
    while (j < n && p[j] != '"' && p[j] != '\\' && j - i < sizeof tmp) j++;
    if (j < n && p[j] == '"' && j - i - 1 < sizeof tmp) {
      memcpy(tmp, p + i + 1, j - i - 1);
      tmp[j - i - 1] = 0;
      fz_learn(tmp);
    }
    i = j;
  }
}

static int starts_response(const uint8_t *p, size_t n) { return n >= 9 && memcmp(p, "HTTP/1.1 ", 9) == 0; }

/* One HTTP response at the front of the output; returns its length. */
static size_t check_response(fz_conn_t *fc, const uint8_t *p, size_t n) {
  if (n < 12 || memcmp(p, "HTTP/1.1 ", 9) != 0) fz_fail("response does not start with HTTP/1.1", p, n);
  const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end) fz_fail("response head without an end", p, n);
  size_t head = (size_t)(end - p) + 4;
  int status = atoi((const char *)p + 9);
  if (status == 100) return head; /* interim: the real response follows */
  if (status == 101) {
    fc->out_ws = 1;
    return head;
  }
  const uint8_t *cl = memmem(p, head, "\r\nContent-Length: ", 18);
  if (!cl) fz_fail("response without Content-Length", p, n);
  size_t len = strtoul((const char *)cl + 18, NULL, 10);
  /* An answer to HEAD has the GET's length and no body: another response follows its head
   * at once, and none at the end of the length (a GET body starting with "HTTP/1.1 " and
   * ending the output is read as a body). */
  if (len && head < n && starts_response(p + head, n - head) &&
      (head + len > n || (head + len < n && !starts_response(p + head + len, n - head - len))))
    return head;
  if (head + len > n) {
    if (fc->c.source) { /* a download: the rest of the body comes piece by piece */
      fc->body_left = head + len - n;
      return n;
    }
    if (head != n) fz_fail("response shorter than its Content-Length", p, n);
    return head; /* HEAD, last in the output */
  }
  if (getenv("TERN_FUZZ_TRACE")) fprintf(stderr, "HTTP %d %.*s\n", status, (int)len, (const char *)p + head);
  learn_strings((const char *)p + head, len);
  fc->last_status = status;
  fc->last_body.len = 0;
  buf_append(&fc->last_body, p + head, len);
  return head + len;
}

/* One server frame at the front of the output; returns its length. */
static size_t check_frame(fz_conn_t *fc, const uint8_t *p, size_t n) {
  ws_header_t h;
  if (ws_parse_header(p, n, &h) != 1) fz_fail("server frame header does not parse or is cut", p, n);
  if (h.masked || !h.fin) fz_fail("server frame masked or not final", p, n);
  if (n - h.header_len < h.len) fz_fail("server frame payload cut", p, n);
  if (fc->out_closed) fz_fail("a frame after the close frame", p, n);
  const uint8_t *pl = p + h.header_len;
  size_t len = (size_t)h.len;
  switch (h.opcode) {
  case WS_OP_BINARY: fz_server_frame(pl, len); break;
  case WS_OP_TEXT: {
    uint8_t *raw = xmalloc(len / 4 * 3 + 3);
    long rl = base64_decode((const char *)pl, len, raw);
    if (rl < 0) fz_fail("text frame is not base64", pl, len);
    fz_server_frame(raw, (size_t)rl);
    free(raw);
    break;
  }
  case WS_OP_CLOSE:
    if (len == 1) fz_fail("close frame with a 1-byte body", p, n); /* RFC 6455 §5.5.1 */
    fc->out_closed = 1;
    break;
  case WS_OP_PONG: break;
  default: fz_fail("server sent an unexpected opcode", p, n);
  }
  return h.header_len + len;
}

/* "Writes" the queued output: checks every response and frame, then drops them. */
static void flush_once(fz_conn_t *fc) {
  conn_t *c = &fc->c;
  size_t off = fc->body_left < c->out.len ? fc->body_left : c->out.len;
  fc->body_left -= off;
  while (off < c->out.len) {
    const uint8_t *p = c->out.data + off;
    size_t n = c->out.len - off;
    off += fc->out_ws ? check_frame(fc, p, n) : check_response(fc, p, n);
  }
  buf_free(&c->out);
  c->in_flush = 0;
  c->w->flush_list = NULL;
}

/* As conn.c's flush: once everything is written, a download (c->source) adds its next
 * piece, read on the loop (fz_drain), until its body is complete. */
static void flush(fz_conn_t *fc) {
  conn_t *c = &fc->c;
  flush_once(fc);
  while (c->source && c->state == CONN_HTTP) {
    c->source->drained(c, c->source);
    fz_drain();
    flush_once(fc);
  }
}

/* chunk 0: one read per request head or frame, so each message's replies (and the ids
 * in them) are out before the next message is read. */
static size_t message_len(conn_t *c, const uint8_t *p, size_t n) {
  if (c->state == CONN_HTTP) {
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end) return n;
    size_t head = (size_t)(end - p) + 4, body = 0;
    for (size_t i = 0; i + 17 < head; i++) /* the body too, when a Content-Length says how long */
      if (strncasecmp((const char *)p + i, "\r\nContent-Length:", 17) == 0) {
        body = strtoul((const char *)p + i + 17, NULL, 10);
        break;
      }
    return body < n - head ? head + body : n;
  }
  ws_header_t h;
  if (ws_parse_header(p, n, &h) == 1 && h.len <= n - h.header_len) return h.header_len + (size_t)h.len;
  return n;
}

void fz_conn_feed(conn_t *c, const uint8_t *data, size_t size, size_t chunk) {
  fz_conn_t *fc = (fz_conn_t *)c;
  uint8_t *readbuf = xmalloc(WORKER_READBUF);
  for (size_t off = 0, n; off < size; off += n) {
    /* on_read: nothing more is read once the connection is closing or being reaped, nor
     * while a deferred request waits for its answer (http_defer stops reading) */
    if (http_deferred_req(c)) fz_drain();
    if (c->state == CONN_CLOSING || c->reaping || http_deferred_req(c)) break;
    n = chunk ? chunk : message_len(c, data + off, size - off);
    if (n > size - off) n = size - off;
    if (n > WORKER_READBUF) n = WORKER_READBUF;
    memcpy(readbuf, data + off, n);
    fz_substitute(readbuf, n);
    c->last_rx_ms = c->link.last_rx_ms = 2;
    conn_input(c, readbuf, n); /* conn.c's own input loop */
    /* the rest of the loop iteration: completions arrive, output is written */
    fz_drain();
    flush(fc);
  }
  free(readbuf);
}

void fz_conn_free(conn_t *c) {
  fz_conn_t *fc = (fz_conn_t *)c;
  fz_drain();
  flush(fc);
  /* conn_reap + on_closed */
  if (c->link.imw) im_link_gone(&c->link, c->close_code ? c->close_code : 1006);
  if (c->source) { /* a response body still being produced (a download cut short) */
    conn_source_t *s = c->source;
    c->source = NULL;
    s->gone(s);
  }
  if (c->http) http_conn_free(c->http);
  handle_table_del(&c->w->conns, c->id);
  fz_drain();
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  buf_free(&fc->last_body);
  if (c->frag) buf_free(c->frag);
  free(c->frag);
  free(c->wreq);
  c->w->flush_list = c->w->reap_list = NULL;
  free(fc);
}

int fz_conn_last_response(conn_t *c, const char **body, size_t *len) {
  fz_conn_t *fc = (fz_conn_t *)c;
  *body = fc->last_body.data ? (const char *)fc->last_body.data : "";
  *len = fc->last_body.len;
  return fc->last_status;
}
