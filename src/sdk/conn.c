/* conn.c — the connection core of libtern: a WebSocket client that does no I/O.
 *
 * Bytes come in through tern_io_input() and go out through tern_io_output(); the adapter
 * (uv.c, or anything implementing tern_io_t) owns sockets and the one timer. This file
 * owns what is per-socket: the HTTP upgrade, RFC 6455 client framing (masked frames), the
 * table of requests waiting for a reply by `i`, the echo keepalive and input watchdog, and
 * reconnecting with exponential backoff (1 s, 2 s, 4 s … capped, like the JS SDK) while any
 * client wants to be online. Keeping it free of I/O is what lets the fake-server tests and
 * any event loop drive it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "crypto.h"
#include "internal.h"
#include "timeutil.h"
#include "ws_frame.h"

#define MAX_FRAME (4u << 20) /* a server frame larger than this is a protocol error */

const char *tern_version(void) { return "0.1.0"; }

int64_t tern_now(void) { return (int64_t)(mono_ns() / 1000000u); }

void tlog(tern_t *t, int level, const char *fmt, ...) {
  if (!t->o.log_cb || level > t->o.log_level) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  t->o.log_cb(t->o.log_data, level, line);
}

void tern_options_init(tern_options_t *o) {
  memset(o, 0, sizeof *o);
  o->ping_interval_ms = 180000;
  o->watchdog_ms = 380000;
  o->command_timeout_ms = 20000;
  o->reconnect_initial_ms = 1000;
  o->reconnect_max_ms = 300000;
  o->log_level = TERN_LOG_INFO;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* scheme://host[:port][/path] → host, port, path, and whether the scheme is the TLS one:
 * ws:// (80) or wss:// (443) with base "ws", http:// (80) or https:// (443) with "http". */
static int parse_url(const char *url, const char *base, int *tls, char **host, int *port, char **path) {
  size_t bl = strlen(base);
  if (strncmp(url, base, bl) != 0) return TERN_EINVAL;
  *tls = url[bl] == 's';
  if (strncmp(url + bl + *tls, "://", 3) != 0) return TERN_EINVAL;
  int defport = *tls ? 443 : 80;
  const char *h = url + bl + *tls + 3;
  const char *slash = strchr(h, '/');
  size_t hl = slash ? (size_t)(slash - h) : strlen(h);
  if (hl == 0) return TERN_EINVAL;
  const char *colon = memchr(h, ':', hl);
  size_t namel = colon ? (size_t)(colon - h) : hl;
  if (namel == 0) return TERN_EINVAL;
  *port = defport;
  if (colon) {
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end != h + hl || p <= 0 || p > 65535) return TERN_EINVAL;
    *port = (int)p;
  }
  *host = strndup(h, namel);
  if (path) *path = strdup(slash ? slash : "/");
  if (!*host || (path && !*path)) {
    /* the caller frees its fields when this fails (tern_new's fail:): leave nothing to free twice */
    free(*host);
    *host = NULL;
    if (path) {
      free(*path);
      *path = NULL;
    }
    return TERN_ENOMEM;
  }
  return 0;
}

/* The strings tern_new copies or derives (options, URL parts): freed on its failure and by
 * tern_free, so a new one is added here once. */
static void free_strings(tern_t *t) {
  free(t->url);
  free(t->app_id);
  free(t->app_key);
  free(t->files_url);
  free(t->cache_dir);
  free(t->tls_ca_file);
  free(t->host);
  free(t->path);
  free(t->http_host);
}

tern_t *tern_new(const tern_options_t *o) {
  if (!o || !o->url || !o->app_id || !*o->app_id) return NULL;
  tern_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->o = *o;
  if (t->o.ping_interval_ms <= 0) t->o.ping_interval_ms = 180000;
  if (t->o.watchdog_ms <= 0) t->o.watchdog_ms = 380000;
  if (t->o.command_timeout_ms <= 0) t->o.command_timeout_ms = 20000;
  if (t->o.reconnect_initial_ms <= 0) t->o.reconnect_initial_ms = 1000;
  if (t->o.reconnect_max_ms <= 0) t->o.reconnect_max_ms = 300000;
  t->url = dup_or_null(o->url);
  t->app_id = dup_or_null(o->app_id);
  t->app_key = dup_or_null(o->app_key);
  t->files_url = dup_or_null(o->files_url);
  t->cache_dir = dup_or_null(o->cache_dir);
  t->tls_ca_file = dup_or_null(o->tls_ca_file);
  t->o.tls_ca_file = t->tls_ca_file;
  t->o.url = t->url;
  t->o.app_id = t->app_id;
  t->o.app_key = t->app_key;
  t->o.files_url = t->files_url;
  t->o.cache_dir = t->cache_dir;
  t->next_i = 1;
  t->armed = -1;
  if (!t->url || !t->app_id || (o->app_key && !t->app_key) || (o->files_url && !t->files_url) ||
      (o->cache_dir && !t->cache_dir) || (o->tls_ca_file && !t->tls_ca_file))
    goto fail;
  if (parse_url(t->url, "ws", &t->tls, &t->host, &t->port, &t->path) < 0) goto fail;
  if (t->files_url) {
    if (parse_url(t->files_url, "http", &t->http_tls, &t->http_host, &t->http_port, NULL) < 0) goto fail;
  } else {
    t->http_host = strdup(t->host);
    t->http_port = t->port;
    t->http_tls = t->tls;
    if (!t->http_host) goto fail;
  }
  return t;
fail:
  free_strings(t);
  free(t);
  return NULL;
}

int tern_io_tls(const tern_t *t, int http, const char **ca_file, int *insecure) {
  if (ca_file) *ca_file = t->tls_ca_file;
  if (insecure) *insecure = t->o.tls_insecure;
  return http ? t->http_tls : t->tls;
}

void tern_io_log(tern_t *t, int level, const char *line) { tlog(t, level, "%s", line); }

int tern_register_message_type(tern_t *t, int type) {
  if (!t || type <= 0) return TERN_EINVAL;
  if (tern_type_registered(t, type)) return 0;
  int *n = realloc(t->types, (t->ntypes + 1) * sizeof *n);
  if (!n) return TERN_ENOMEM;
  t->types = n;
  t->types[t->ntypes++] = type;
  return 0;
}

int tern_type_registered(const tern_t *t, int type) {
  if (type < 0) return 1;
  for (size_t i = 0; i < t->ntypes; i++)
    if (t->types[i] == type) return 1;
  return 0;
}

int tern_attach(tern_t *t, const tern_io_t *io) {
  if (!t || !io || t->attached) return TERN_EINVAL;
  t->io = *io;
  t->attached = 1;
  return 0;
}

int conn_is_open(const tern_t *t) { return t->state == CONN_OPEN; }

/* ---- requests ---- */

req_t *req_new(tern_client_t *c, req_reply_fn fn, void *cb, void *data) {
  req_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->c = c;
  r->on_reply = fn;
  r->cb = cb;
  r->data = data;
  return r;
}

void req_free(req_t *r) {
  if (!r) return;
  if (r->ctx_free) r->ctx_free(r->ctx);
  free(r);
}

static void req_unlink(tern_t *t, req_t *r) {
  for (req_t **pp = &t->reqs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      return;
    }
}

/* Fails every request; callbacks may queue new ones, which are kept (they wait for the
 * next connection only if the caller checks readiness; they normally fail ENOTOPEN). */
static void fail_all(tern_t *t, int status) {
  req_t *list = t->reqs;
  t->reqs = NULL;
  while (list) {
    req_t *r = list;
    list = r->next;
    r->on_reply(t, r, NULL, status);
    req_free(r);
  }
}

/* ---- output ---- */

static void want_write(tern_t *t, size_t before) {
  if (before == 0 && t->out.len > 0 && t->attached && t->io.want_write) t->io.want_write(t->io.data);
}

/* Queues one masked client frame; all of it or nothing (TERN_ENOMEM). */
static int ws_send_frame(tern_t *t, int opcode, const void *p, size_t n) {
  size_t before = t->out.len;
  uint8_t mask[4];
  random_bytes(mask, 4);
  uint8_t hdr[WS_MAX_HEADER];
  size_t hl = ws_write_header(hdr, opcode, n, mask);
  if (sbuf_reserve(&t->out, hl + n) < 0) return TERN_ENOMEM;
  sbuf_append(&t->out, hdr, hl);
  size_t off = t->out.len;
  sbuf_append(&t->out, p, n);
  ws_unmask(t->out.data + off, n, mask, 0); /* masking is the same XOR */
  want_write(t, before);
  return 0;
}

int conn_send(tern_t *t, lc_cmd_t *cmd, req_t *r) {
  if (t->state != CONN_OPEN) {
    req_free(r);
    return TERN_ENOTOPEN;
  }
  if (r) PB_SET(*cmd, i, t->next_i);
  sbuf_t b = SBUF_INIT;
  if (sbuf_pack(&b, cmd) < 0 || ws_send_frame(t, WS_OP_BINARY, b.data, b.len) < 0) {
    sbuf_free(&b);
    req_free(r);
    return TERN_ENOMEM;
  }
  sbuf_free(&b);
  if (r) {
    r->i = t->next_i;
    t->next_i = t->next_i >= 0x7ffffff0 ? 1 : t->next_i + 1;
    r->deadline = tern_now() + t->o.command_timeout_ms;
    req_t **pp = &t->reqs; /* append: timeouts fire in order */
    while (*pp) pp = &(*pp)->next;
    *pp = r;
  }
  if (t->o.log_level >= TERN_LOG_DEBUG && t->o.log_cb) {
    json_t *j = pb_to_json(&cmd->base);
    char *s = json_dumps(j, JSON_COMPACT);
    tlog(t, TERN_LOG_DEBUG, "> %s", s ? s : "?");
    free(s);
    json_decref(j);
  }
  conn_sched(t);
  return 0;
}

size_t tern_io_output(tern_t *t, const void **p) {
  *p = t->out.data;
  return t->out.len;
}

void tern_io_written(tern_t *t, size_t n) {
  if (n > t->out.len) n = t->out.len;
  sbuf_consume(&t->out, n);
}

/* ---- timers ---- */

static int64_t earliest(tern_t *t) {
  int64_t d = -1;
#define CONSIDER(x)                                                                                                    \
  do {                                                                                                                 \
    int64_t v_ = (x);                                                                                                  \
    if (d < 0 || v_ < d) d = v_;                                                                                       \
  } while (0)
  if (t->state == CONN_WAIT) CONSIDER(t->retry_at);
  if (t->state == CONN_OPEN) {
    CONSIDER(t->next_ping);
    CONSIDER(t->last_input + t->o.watchdog_ms);
  }
  if (t->deferred) CONSIDER(0);
  for (req_t *r = t->reqs; r; r = r->next) CONSIDER(r->deadline);
#undef CONSIDER
  return d;
}

void conn_sched(tern_t *t) {
  if (!t->attached || !t->io.timer || t->freeing) return;
  int64_t d = earliest(t);
  if (d == t->armed) return;
  t->armed = d;
  if (d < 0) {
    t->io.timer(t->io.data, -1);
  } else {
    int64_t delay = d - tern_now();
    t->io.timer(t->io.data, delay < 0 ? 0 : delay);
  }
}

static void start_connect(tern_t *t) {
  t->state = CONN_CONNECTING;
  t->in.len = 0;
  t->out.len = 0;
  tlog(t, TERN_LOG_INFO, "connecting to %s:%d%s", t->host, t->port, t->tls ? " (TLS)" : "");
  t->io.connect(t->io.data, t->host, t->port);
}

static int any_client_wants_socket(tern_t *t) {
  for (tern_client_t *c = t->clients; c; c = c->next)
    if (c->status != TERN_CLIENT_CLOSED) return 1;
  return 0;
}

void conn_need(tern_t *t) {
  if (!t->attached) return;
  if (t->state == CONN_IDLE) start_connect(t);
  else if (t->state == CONN_WAIT) {
    /* a fresh open does not wait for the backoff of older failures */
    t->retry_at = tern_now();
    conn_sched(t);
  }
}

static void conn_drop(tern_t *t, const char *why) {
  if (t->state == CONN_CLOSING || t->state == CONN_IDLE || t->state == CONN_WAIT) return;
  tlog(t, TERN_LOG_WARN, "dropping connection: %s", why);
  t->state = CONN_CLOSING;
  t->idle_close = 0;
  t->io.close(t->io.data);
}

void conn_maybe_idle(tern_t *t) {
  if (any_client_wants_socket(t) || t->reqs) return;
  if (t->state == CONN_OPEN || t->state == CONN_HANDSHAKE || t->state == CONN_CONNECTING) {
    if (t->state == CONN_OPEN) ws_send_frame(t, WS_OP_CLOSE, "\x03\xe8", 2);
    t->state = CONN_CLOSING;
    t->idle_close = 1;
    t->io.close(t->io.data);
  } else if (t->state == CONN_WAIT) {
    t->state = CONN_IDLE;
  }
  conn_sched(t);
}

static void send_ping(tern_t *t) {
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__echo);
  /* with an `i`, as the JS SDK sends it, but not tracked as a request: a lost echo is the
   * input watchdog's business, not a command timeout's */
  PB_SET(cmd, i, t->next_i);
  t->next_i = t->next_i >= 0x7ffffff0 ? 1 : t->next_i + 1;
  sbuf_t b = SBUF_INIT;
  if (sbuf_pack(&b, &cmd) == 0) ws_send_frame(t, WS_OP_BINARY, b.data, b.len);
  sbuf_free(&b);
  tlog(t, TERN_LOG_DEBUG, "> echo");
}

int conn_defer(tern_t *t, void (*fn)(tern_t *t, void *ctx, int canceled), void *ctx) {
  defer_t *d = calloc(1, sizeof *d);
  if (!d) return TERN_ENOMEM;
  d->fn = fn;
  d->ctx = ctx;
  defer_t **pp = &t->deferred;
  while (*pp) pp = &(*pp)->next;
  *pp = d;
  conn_sched(t);
  return 0;
}

static void run_deferred(tern_t *t, int canceled) {
  defer_t *list = t->deferred;
  t->deferred = NULL;
  while (list) {
    defer_t *d = list;
    list = d->next;
    d->fn(t, d->ctx, canceled);
    free(d);
  }
}

void tern_io_timer(tern_t *t) {
  t->armed = -1;
  run_deferred(t, 0);
  int64_t now = tern_now();
  /* timeouts: fail requests whose deadline passed */
  for (;;) {
    req_t *due = NULL;
    for (req_t *r = t->reqs; r; r = r->next)
      if (r->deadline <= now) {
        due = r;
        break;
      }
    if (!due) break;
    req_unlink(t, due);
    tlog(t, TERN_LOG_WARN, "request %d timed out", due->i);
    due->on_reply(t, due, NULL, TERN_ETIMEDOUT);
    req_free(due);
  }
  if (t->state == CONN_OPEN) {
    if (now - t->last_input >= t->o.watchdog_ms) {
      conn_drop(t, "no input within the watchdog period");
    } else if (now >= t->next_ping) {
      send_ping(t);
      t->next_ping = now + t->o.ping_interval_ms;
    }
  } else if (t->state == CONN_WAIT && now >= t->retry_at) {
    if (any_client_wants_socket(t)) {
      for (tern_client_t *c = t->clients; c; c = c->next) client_on_resuming(c);
      start_connect(t);
    } else {
      t->state = CONN_IDLE;
    }
  }
  conn_sched(t);
}

/* ---- connection events ---- */

void tern_io_connected(tern_t *t) {
  if (t->state != CONN_CONNECTING) return;
  uint8_t key[16];
  random_bytes(key, sizeof key);
  size_t kl = base64_encode(key, sizeof key, t->ws_key);
  t->ws_key[kl] = 0;
  size_t before = t->out.len;
  int rc = sbuf_printf(&t->out,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
                       "User-Agent: libtern/%s\r\n\r\n",
                       t->path, t->host, t->port, t->ws_key, t->o.push_offline ? "lc.protobuf2.1" : "lc.protobuf2.3",
                       tern_version());
  t->state = CONN_HANDSHAKE;
  if (rc < 0) {
    conn_drop(t, "out of memory");
    return;
  }
  want_write(t, before);
  conn_sched(t);
}

void tern_io_closed(tern_t *t, int err) {
  if (t->freeing) return;
  enum conn_state was = t->state;
  t->in.len = 0;
  t->out.len = 0;
  if (was == CONN_IDLE || was == CONN_WAIT) return;
  tlog(t, TERN_LOG_INFO, "connection closed (%s)", err ? tern_err_name(err) : "EOF");
  t->state = CONN_WAIT; /* provisional, so callbacks see "not open" */
  int idle_close = t->idle_close;
  t->idle_close = 0;
  fail_all(t, TERN_ECLOSED);
  int status = err == TERN_ETLS ? TERN_ETLS : was == CONN_HANDSHAKE ? TERN_EHANDSHAKE : TERN_ECONNECT;
  /* a socket closed because nobody needed it failed nobody: a client that opened meanwhile
   * simply waits for the next one */
  if (!idle_close)
    for (tern_client_t *c = t->clients; c; c = c->next) client_on_dropped(c, status);
  if (idle_close && any_client_wants_socket(t)) {
    /* a client opened while the idle socket was closing: connect again at once */
    t->retry_at = tern_now();
    t->state = CONN_WAIT;
  } else if (any_client_wants_socket(t)) {
    int64_t delay = t->o.reconnect_initial_ms;
    for (int i = 0; i < t->attempt && delay < t->o.reconnect_max_ms; i++) delay *= 2;
    if (delay > t->o.reconnect_max_ms) delay = t->o.reconnect_max_ms;
    t->attempt++;
    t->retry_at = tern_now() + delay;
    t->state = CONN_WAIT;
    tlog(t, TERN_LOG_INFO, "reconnecting in %lld ms (attempt %d)", (long long)delay, t->attempt);
  } else {
    t->state = CONN_IDLE;
  }
  conn_sched(t);
}

/* Parses the 101 response; returns bytes consumed, 0 if incomplete, <0 on refusal. */
static long handshake_input(tern_t *t) {
  char *s = (char *)t->in.data;
  size_t n = t->in.len;
  const char *end = NULL;
  for (size_t i = 0; i + 3 < n; i++)
    if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
      end = s + i + 4;
      break;
    }
  if (!end) return n > 16384 ? TERN_EHANDSHAKE : 0;
  size_t hl = (size_t)(end - s);
  char *h = strndup(s, hl);
  if (!h) return TERN_ENOMEM;
  int ok = strncmp(h, "HTTP/1.1 101", 12) == 0;
  char want[29];
  ws_accept_key(t->ws_key, strlen(t->ws_key), want);
  int accept_ok = 0, proto_ok = 0;
  for (char *line = strstr(h, "\r\n"); ok && line && line[2]; line = strstr(line + 2, "\r\n")) {
    char *l = line + 2;
    if (strncasecmp(l, "Sec-WebSocket-Accept:", 21) == 0) {
      char *v = l + 21;
      while (*v == ' ') v++;
      accept_ok = strncmp(v, want, 28) == 0;
    } else if (strncasecmp(l, "Sec-WebSocket-Protocol:", 23) == 0) {
      char *v = l + 23;
      while (*v == ' ') v++;
      proto_ok = strncmp(v, "lc.protobuf2.", 13) == 0;
    }
  }
  free(h);
  if (!ok || !accept_ok || !proto_ok) return TERN_EHANDSHAKE;
  return (long)hl;
}

static void on_open(tern_t *t) {
  t->state = CONN_OPEN;
  t->last_input = tern_now();
  t->next_ping = t->last_input + t->o.ping_interval_ms;
  tlog(t, TERN_LOG_INFO, "WebSocket open");
  for (tern_client_t *c = t->clients; c; c = c->next) client_on_connected(c);
}

int reply_status(const lc_cmd_t *cmd) {
  if (!cmd) return TERN_EPROTO;
  if (cmd->cmd == LC__COMMAND_TYPE__error)
    return cmd->errormessage && cmd->errormessage->code > 0 ? -cmd->errormessage->code : TERN_EPROTO;
  if (cmd->cmd == LC__COMMAND_TYPE__ack && cmd->ackmessage && cmd->ackmessage->has_code && cmd->ackmessage->code)
    return -cmd->ackmessage->code;
  if (cmd->cmd == LC__COMMAND_TYPE__session && cmd->op == LC__OP_TYPE__closed && cmd->sessionmessage &&
      cmd->sessionmessage->has_code && cmd->sessionmessage->code)
    return -cmd->sessionmessage->code;
  return 0;
}

static void on_command(tern_t *t, const uint8_t *p, size_t n) {
  lc_cmd_t *cmd = codec_decode(p, n, LC_FMT_BINARY);
  if (!cmd) {
    tlog(t, TERN_LOG_WARN, "undecodable frame of %zu bytes", n);
    return;
  }
  if (t->o.log_level >= TERN_LOG_DEBUG && t->o.log_cb) {
    json_t *j = pb_to_json(&cmd->base);
    char *s = json_dumps(j, JSON_COMPACT);
    tlog(t, TERN_LOG_DEBUG, "< %s", s ? s : "?");
    free(s);
    json_decref(j);
  }
  if (cmd->has_i && cmd->cmd != LC__COMMAND_TYPE__echo) {
    req_t *r = NULL;
    for (req_t *x = t->reqs; x; x = x->next)
      if (x->i == cmd->i) {
        r = x;
        break;
      }
    if (r) {
      req_unlink(t, r);
      r->on_reply(t, r, cmd, reply_status(cmd));
      req_free(r);
    }
  } else if (cmd->cmd == LC__COMMAND_TYPE__goaway) {
    conn_drop(t, "goaway");
  } else if (cmd->cmd != LC__COMMAND_TYPE__echo) {
    client_on_push(t, cmd);
  }
  codec_free(cmd);
}

void tern_io_input(tern_t *t, const void *p, size_t n) {
  if (t->state != CONN_HANDSHAKE && t->state != CONN_OPEN) return;
  t->last_input = tern_now();
  if (sbuf_append(&t->in, p, n) < 0) {
    conn_drop(t, "out of memory");
    conn_sched(t);
    return;
  }
  if (t->state == CONN_HANDSHAKE) {
    long hl = handshake_input(t);
    if (hl < 0) {
      tlog(t, TERN_LOG_ERROR, "WebSocket handshake refused");
      conn_drop(t, "handshake refused");
      conn_sched(t);
      return;
    }
    if (hl == 0) return;
    sbuf_consume(&t->in, (size_t)hl);
    on_open(t);
  }
  while (t->state == CONN_OPEN && t->in.len > 0) {
    ws_header_t h;
    int rc = ws_parse_header(t->in.data, t->in.len, &h);
    if (rc < 0 || (rc == 1 && h.len > MAX_FRAME)) {
      conn_drop(t, "bad frame from server");
      break;
    }
    if (rc == 0 || t->in.len < h.header_len + h.len) break;
    uint8_t *payload = t->in.data + h.header_len;
    if (h.masked) ws_unmask(payload, (size_t)h.len, h.mask, 0);
    size_t total = h.header_len + (size_t)h.len;
    switch (h.opcode) {
    case WS_OP_BINARY: on_command(t, payload, (size_t)h.len); break;
    case WS_OP_PING: ws_send_frame(t, WS_OP_PONG, payload, (size_t)h.len); break;
    case WS_OP_CLOSE:
      tlog(t, TERN_LOG_INFO, "server closed the WebSocket (%d)", h.len >= 2 ? payload[0] << 8 | payload[1] : 0);
      conn_drop(t, "close frame");
      break;
    default: break; /* text (we asked for binary), pong, continuation: ignored */
    }
    if (t->state != CONN_OPEN && t->state != CONN_CLOSING) break; /* freed input */
    sbuf_consume(&t->in, total);
  }
  conn_sched(t);
}

void tern_io_http_done(tern_t *t, uint64_t id, int status, const void *resp, size_t n) {
  upload_on_http_done(t, id, status, resp, n);
  conn_sched(t);
}

void tern_free(tern_t *t) {
  if (!t) return;
  t->freeing = 1;
  run_deferred(t, 1);
  fail_all(t, TERN_ECANCELED);
  upload_cancel_all(t);
  /* a courtesy close frame; the adapter flushes what it can */
  if (t->state == CONN_OPEN && t->attached) ws_send_frame(t, WS_OP_CLOSE, "\x03\xe8", 2);
  if (t->attached && t->io.cleanup) t->io.cleanup(t->io.data);
  if (t->sync_free) t->sync_free(t);
  while (t->clients) {
    tern_client_t *c = t->clients;
    t->clients = c->next;
    client_free(c);
  }
  free(t->types);
  sbuf_free(&t->in);
  sbuf_free(&t->out);
  free_strings(t);
  free(t);
}
