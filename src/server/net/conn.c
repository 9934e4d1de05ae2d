/* conn.c — reading, writing and closing client connections (see conn.h for the rules). */
#include "conn.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "http.h"
#include "ipcount.h"
#include "log.h"
#include "metrics.h"
#include "proxies.h"
#include "timeutil.h"
#include "tls.h"
#include "worker.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

/* All reads land in the worker's one 64 KiB buffer; only the tail of an incomplete frame
 * is copied into the connection (conn->in), so idle connections own no read buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  conn_t *c = h->data;
  worker_t *w = c->w;
  if (w->readbuf_busy) { /* cannot happen with one loop thread, but never share silently */
    b->base = NULL;
    b->len = 0;
    return;
  }
  w->readbuf_busy = 1;
  b->base = (char *)w->readbuf;
  b->len = sizeof w->readbuf;
  /* libuv reads right after this: on_read ends the "read" stage (0: this read is not timed) */
  w->read_t0_ns = metric_stage_sampled(STAGE_SITE_READ) ? mono_ns() : 0;
}

static size_t tls_queued(const conn_t *c) { return c->tls ? tls_queue(c->tls)->len : 0; }

size_t conn_queued(const conn_t *c) { return c->out.len + (c->wbuf.len - c->woff) + tls_queued(c); }

/* Output memory reuse. A queue written out whole goes back to the worker rather than to
 * malloc, up to WORKER_OUTCACHE buffers of OUTCACHE_CAP_MIN..OUTCACHE_CAP_MAX bytes (at
 * most 16 MiB a worker), and a queue that starts empty takes one. Under a chat room's
 * fan-out every member's queue is filled and written out each iteration: freed and grown
 * again from 64 bytes, those queues cost realloc copies and, once malloc gave the pages
 * back, a page fault per page (bench/README.md, "Chat-room floods"). An idle connection
 * still holds no buffer; the worker holds what its busiest moment wrote at once, at most. */
#define OUTCACHE_CAP_MIN 1024
#define OUTCACHE_CAP_MAX (64 * 1024)

static void out_give(worker_t *w, buf_t *b) {
  if (b->data && b->cap >= OUTCACHE_CAP_MIN && b->cap <= OUTCACHE_CAP_MAX && w->noutcache < WORKER_OUTCACHE) {
    b->len = 0;
    w->outcache[w->noutcache++] = *b;
    *b = (buf_t)BUF_INIT;
    return;
  }
  buf_free(b);
}

static void out_take(worker_t *w, buf_t *b) {
  if (!b->data && w->noutcache) *b = w->outcache[--w->noutcache];
}

void conn_outcache_free(worker_t *w) {
  while (w->noutcache) buf_free(&w->outcache[--w->noutcache]);
}

static log_limit_t refuse_log, drop_log;

/* An answer for a connection refused before it was read: plain HTTP, which both a REST
 * client and a WebSocket upgrade understand, then close. */
static void refuse(conn_t *c, int status, const char *phrase, const char *why) {
  char head[200], body[160];
  int bn = snprintf(body, sizeof body, "{\"code\":%d,\"error\":\"%s\"}", status, why);
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                    "Connection: close\r\n\r\n",
                    status, phrase, bn);
  uv_buf_t parts[2] = {uv_buf_init(head, (unsigned)hn), uv_buf_init(body, (unsigned)bn)};
  conn_writev(c, parts, 2);
  conn_close(c, 0, NULL);
}

void conn_accept(worker_t *w, int fd, const struct sockaddr_storage *peer) {
  server_t *srv = w->srv;
  conn_t *c = xcalloc(1, sizeof *c);
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_tcp_open(&c->tcp, fd) != 0) {
    close(fd);
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  if (!w->listen_nodelay) uv_tcp_nodelay(&c->tcp, 1); /* else inherited from the listener */
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (peer) ss = *peer;
  if (peer || uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
    else uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
  }
  c->id = handle_table_add(&w->conns, c);
  c->link.sessionless_since_ms = c->last_rx_ms = c->opened_ms = now_ms(); /* the login timer starts at accept */
  c->state = CONN_HTTP;
  c->next = w->all;
  if (w->all) w->all->prev = c;
  w->all = c;
  atomic_fetch_add_explicit(&w->nconns, 1, memory_order_relaxed);
  /* Every connection holds a descriptor, a refused one too until its answer is out. */
  long open = atomic_fetch_add(&srv->nconns, 1) + 1, cap = server_conn_cap(srv);
  if (open > cap) {
    atomic_fetch_add(&srv->refused_server, 1);
    log_limited(&refuse_log, LOG_WARN, "conn %s: over max_conns (%ld open), refused", c->ip, cap);
    refuse(c, 503, "Service Unavailable", "the server is at its connection limit");
    return;
  }
  /* a trusted proxy carries many clients: its connections are counted, not limited, until
   * a request names the client (conn_forwarded) */
  c->from_proxy = proxies_match(srv->proxies, c->ip);
  c->ipe = ipcount_add(srv->ips, c->ip, c->from_proxy ? 0 : srv->cfg->max_conns_per_ip);
  if (!c->ipe) {
    atomic_fetch_add(&srv->refused_ip, 1);
    log_limited(&refuse_log, LOG_WARN, "conn %s: over max_conns_per_ip, refused", c->ip);
    refuse(c, 429, "Too Many Requests", "too many connections from this address");
    return;
  }
  if (srv->tls) c->tls = tls_conn_new(srv->tls);
  log_event(LOG_INFO, "conn.open", "worker=%d conn=%llu addr=%s tls=%d", w->idx, (unsigned long long)c->id, c->ip,
            c->tls != NULL);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- output accounting (output_limit_ip, output_limit_total) ----
 *
 * What a handler queues normally leaves in the same loop iteration, so it is counted only
 * once it has outlived a flush: after each flush, and while a connection is backed up (a
 * uv_write in flight, or bytes counted already) on each ACCT_STEP more it is written,
 * c->acct is brought to the queue's size and the difference goes to the address's and the
 * server's sums. A reader that keeps up touches no shared counter, and a backed-up one
 * only every ACCT_STEP bytes between flushes. A sum past its cap sheds at once.
 *
 * Output the IM layer holds for the connection (c->link.held: a reply waiting for Redis
 * in a cluster, and the frames behind it, im_hold.c) counts as queued from the moment it
 * is held (conn_held, at each change): it is queued output that did not leave, however
 * briefly. When the hold ends it moves to the queue and leaves the sums when written. */
#define ACCT_STEP (16 * 1024)
static size_t acct_bytes(const conn_t *c) { return c->reaping ? 0 : conn_queued(c) + c->link.held; }

static void acct_sync(conn_t *c) {
  size_t q = acct_bytes(c);
  if (q == c->acct) return;
  int64_t d = (int64_t)q - (int64_t)c->acct;
  size_t was = c->acct;
  c->acct = q;
  worker_t *w = c->w;
  server_t *srv = w->srv;
  int64_t total = atomic_fetch_add(&srv->out_queued, d) + d;
  int64_t ip = 0;
  if (c->ipe) {
    ip = ipcount_out_add(c->ipe, d);
    ipcount_top_update(c->ipe, was, q, w->idx);
  }
  if (d <= 0) return;
  if (q > atomic_load_explicit(&w->out_max, memory_order_relaxed)) atomic_store(&w->out_max, q);
  const tern_config_t *cfg = srv->cfg;
  if ((cfg->output_limit_total > 0 && total > cfg->output_limit_total) ||
      (cfg->output_limit_ip > 0 && ip > cfg->output_limit_ip)) {
    /* Shed now: one loop iteration can queue a lot (a 100 KB message to a few hundred
     * backed-up members is tens of MB), so waiting for the drain would let a cap be
     * passed by that much. Dropping only marks connections (they are reaped later), so
     * this is safe in any write's call stack. Once this iteration has left the drop to
     * another worker, further writes do not scan again; the drain does. */
    w->shed = 1;
    if (!w->shed_deferred) conn_shed(w);
  }
}

/* Over the server's cap: takes n bytes off it only while it is over, in one step (as
 * ipcount_out_shed for an address). */
static int total_shed(server_t *srv, long cap, int64_t n) {
  long long cur = atomic_load(&srv->out_queued);
  do {
    if (cur <= cap) return 0;
  } while (!atomic_compare_exchange_weak(&srv->out_queued, &cur, cur - n));
  return 1;
}

/* Drops c, the largest queue while its address (by_ip) or the server is over its cap —
 * unless that sum is no longer over it: another worker's drop, made since this one looked,
 * was enough (both saw the sum over the cap at once; the check and the bytes' removal are
 * one step, so only one of them drops). Returns whether it dropped c. */
static int drop_queue(conn_t *c, int by_ip) {
  server_t *srv = c->w->srv;
  const tern_config_t *cfg = srv->cfg;
  int64_t n = (int64_t)c->acct;
  if (by_ip ? !ipcount_out_shed(c->ipe, cfg->output_limit_ip, n) : !total_shed(srv, cfg->output_limit_total, n))
    return 0;
  /* its bytes leave the other sum too, and the address's record of its largest queue */
  if (by_ip) atomic_fetch_sub(&srv->out_queued, n);
  else if (c->ipe) ipcount_out_add(c->ipe, -n);
  if (c->ipe) ipcount_top_update(c->ipe, c->acct, 0, c->w->idx);
  atomic_fetch_add(by_ip ? &srv->out_dropped_ip : &srv->out_dropped_total, 1);
  log_limited(&drop_log, LOG_WARN, "conn %s: %zu bytes queued, the largest while over %s (%ld): dropping it", c->ip,
              c->acct, by_ip ? "output_limit_ip" : "output_limit_total",
              by_ip ? cfg->output_limit_ip : cfg->output_limit_total);
  c->acct = 0;         /* counted nowhere now ... */
  conn_abort(c, 1008); /* ... and reaping: nothing of it is counted again (acct_bytes) */
  return 1;
}

void conn_shed(worker_t *w) {
  w->shed = 0;
  server_t *srv = w->srv;
  const tern_config_t *cfg = srv->cfg;
  int ip_left = 0; /* an address over its cap whose largest queue another worker holds */
  for (;;) {
    /* this worker's largest queue, and its largest from an address over output_limit_ip */
    conn_t *big = NULL, *big_ip = NULL;
    for (conn_t *c = w->all; c; c = c->next) {
      if (c->reaping || !c->acct) continue;
      if (!big || c->acct > big->acct) big = c;
      if (!ip_left && cfg->output_limit_ip > 0 && c->ipe && ipcount_out(c->ipe) > cfg->output_limit_ip &&
          (!big_ip || c->acct > big_ip->acct))
        big_ip = c;
    }
    atomic_store(&w->out_max, big ? big->acct : 0);
    if (big_ip) {
      /* The address's largest queue goes first, wherever it is: when its record names
       * another worker that may still hold it (its largest queue is at least that big),
       * that worker is asked to drop it. */
      size_t top;
      int tw;
      ipcount_top(big_ip->ipe, &top, &tw);
      if (tw >= 0 && tw != w->idx && tw < srv->nworkers && srv->workers[tw] && top > big_ip->acct &&
          atomic_load(&srv->workers[tw]->out_max) >= top) {
        worker_wake_shed(srv, tw);
        w->shed_deferred = 1;
        ip_left = 1;
        continue;
      }
      drop_queue(big_ip, 1); /* or no longer over: the next look finds no address over */
      continue;
    }
    if (cfg->output_limit_total <= 0 || atomic_load(&srv->out_queued) <= cfg->output_limit_total) return;
    /* Over the server's cap: the largest queue goes first, wherever it is. Another
     * worker's figure may be out of date (it only rises between its own sheds); the one
     * asked to look corrects it, and asks back when this one's is larger after all — or
     * when it has no counted queue left at all (its figure was stale: a queue that since
     * drained), else the drop would stop over the cap until some queue grew again. */
    int other = -1;
    size_t most = 0;
    for (int i = 0; i < srv->nworkers; i++) {
      if (i == w->idx || !srv->workers[i]) continue;
      size_t m = atomic_load(&srv->workers[i]->out_max);
      if (m > most) {
        most = m;
        other = i;
      }
    }
    if (!big && !most) return; /* nothing counted anywhere, as far as is known */
    if (other >= 0 && (!big || most > big->acct || (most == big->acct && other < w->idx))) {
      worker_wake_shed(srv, other);
      w->shed_deferred = 1;
      return;
    }
    if (!drop_queue(big, 0)) return;
  }
}

void conn_input(conn_t *c, uint8_t *p, size_t n) {
  /* A partial frame from an earlier read: join it with the new bytes. */
  if (c->in.len) {
    buf_append(&c->in, p, n);
    buf_t pending = c->in;
    c->in = (buf_t)BUF_INIT;
    int consumed =
        c->state == CONN_HTTP ? http_input(c, pending.data, pending.len) : ws_input(c, pending.data, pending.len);
    if (consumed >= 0 && (size_t)consumed < pending.len && c->state != CONN_CLOSING)
      buf_append(&c->in, pending.data + consumed, pending.len - (size_t)consumed);
    buf_free(&pending);
    return;
  }
  int consumed = c->state == CONN_HTTP ? http_input(c, p, n) : ws_input(c, p, n);
  if (consumed >= 0 && (size_t)consumed < n && c->state != CONN_CLOSING)
    buf_append(&c->in, p + consumed, n - (size_t)consumed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  conn_t *c = s->data;
  worker_t *w = c->w;
  if (b->base == (char *)w->readbuf) {
    w->readbuf_busy = 0;
    if (w->read_t0_ns) metric_add(M_STAGE_READ, STAGE_SAMPLE * (int64_t)(mono_ns() - w->read_t0_ns));
  }
  if (nread < 0) {
    /* EOF without a WebSocket close frame is still an abnormal end (1006): only a close
     * frame, which sets close_code first, is a goodbye */
    conn_abort(c, 1006);
    return;
  }
  if (nread == 0 || c->state == CONN_CLOSING || c->reaping) return;
  c->last_rx_ms = now_ms();
  c->link.last_rx_ms = c->last_rx_ms;
  if (c->tls) {
    buf_t plain = BUF_INIT;
    buf_t *q = tls_queue(c->tls);
    size_t before = q->len;
    if (tls_feed(c->tls, (uint8_t *)b->base, (size_t)nread, &plain, q) < 0) {
      buf_free(&plain);
      conn_abort(c, 1006);
      return;
    }
    if (q->len != before || (c->out.len && tls_ready(c->tls))) worker_schedule_flush(w, c);
    if (plain.len) conn_input(c, plain.data, plain.len);
    buf_free(&plain);
    return;
  }
  /* The handlers may switch state (HTTP → WebSocket) in the middle of a buffer; the
   * state functions return how much they consumed and conn_input carries the rest. */
  conn_input(c, (uint8_t *)b->base, (size_t)nread);
}

/* What was appended since the last flush has not been offered to the kernel yet, and one
 * loop iteration can append a lot to one connection: a worker runs every delivery its
 * inbox gathered while it was busy or off the CPU before it flushes, and a message to a
 * socket that carries many sessions is appended once for each. Such a queue says nothing
 * about its reader, so before it is held against output_limit it is written now, as the
 * flush would: what the kernel takes does not count. With a write in flight the kernel had
 * no room at the last flush, and the queue is judged as it is. Only a WebSocket connection
 * (not closing, no download: nothing is to run when its queue empties). */
static void flush_early(conn_t *c) {
  if (c->state == CONN_WS && !c->writing && c->out.len) conn_flush(c);
}

int conn_writev(conn_t *c, const uv_buf_t *bufs, int nbufs) {
  if (c->reaping) return TERN_ECLOSED;
  size_t total = 0;
  for (int i = 0; i < nbufs; i++) total += bufs[i].len;
  size_t limit = (size_t)c->w->srv->cfg->output_limit;
  if (conn_queued(c) + total > limit) {
    flush_early(c);
    if (c->reaping) return TERN_ECLOSED; /* the socket is gone (the write failed) */
  }
  if (conn_queued(c) + total > limit) {
    atomic_fetch_add(&c->w->srv->out_dropped_conn, 1);
    log_limited(&drop_log, LOG_WARN, "conn %s: output queue over %zu bytes, dropping slow consumer", c->ip, limit);
    conn_abort(c, 1008);
    acct_sync(c);
    return TERN_E2BIG;
  }
  out_take(c->w, &c->out);
  buf_reserve(&c->out, total);
  for (int i = 0; i < nbufs; i++) buf_append(&c->out, bufs[i].base, bufs[i].len);
  worker_schedule_flush(c->w, c);
  if ((c->writing || c->acct) && acct_bytes(c) >= c->acct + ACCT_STEP) acct_sync(c); /* backed up */
  return 0;
}

void conn_held(conn_t *c) { acct_sync(c); }

int conn_write(conn_t *c, const void *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  return conn_writev(c, &b, 1);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  free(req);
  conn_abort(c, c->close_code);
}

static void on_write(uv_write_t *req, int status) {
  conn_t *c = req->data;
  c->writing = 0;
  out_give(c->w, &c->wbuf);
  c->woff = 0;
  acct_sync(c);
  if (status < 0) {
    conn_abort(c, 1006);
    return;
  }
  if (c->out.len || tls_queued(c) || c->state == CONN_CLOSING || c->source) worker_schedule_flush(c->w, c);
}

void conn_flush(conn_t *c) {
  buf_t *src = conn_flush_begin(c);
  if (src) {
    uv_buf_t b = uv_buf_init((char *)src->data, (unsigned)src->len);
    conn_flush_end(c, src, uv_try_write((uv_stream_t *)&c->tcp, &b, 1));
  }
}

int conn_fd(const conn_t *c) {
  uv_os_fd_t fd = -1;
  return uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0 ? fd : -1;
}

static void flush_end(conn_t *c, buf_t *src, int n);
static buf_t *flush_begin(conn_t *c);

buf_t *conn_flush_begin(conn_t *c) {
  buf_t *src = c->reaping || c->writing ? NULL : flush_begin(c);
  if (!src) acct_sync(c);
  return src;
}

void conn_flush_end(conn_t *c, buf_t *src, int n) {
  if (!c->reaping) flush_end(c, src, n); /* dropped meanwhile (conn_shed): nothing more to do */
  acct_sync(c);                          /* what the kernel did not take now counts (or no longer does) */
}

static buf_t *flush_begin(conn_t *c) {
  /* With TLS, queued plaintext is sealed into records now (once the handshake is done) and
   * the records are what goes to the socket. */
  buf_t *src = &c->out;
  if (c->tls) {
    if (c->out.len && tls_ready(c->tls)) {
      if (tls_seal(c->tls, c->out.data, c->out.len, tls_queue(c->tls)) < 0) {
        conn_abort(c, 1006);
        return NULL;
      }
      buf_free(&c->out);
    }
    src = tls_queue(c->tls);
  }
  if (src->len) return src;
  flush_end(c, NULL, 0); /* nothing to write: what comes after everything is written */
  return NULL;
}

static void flush_end(conn_t *c, buf_t *src, int n) {
  if (src) {
    if (n == UV_EAGAIN) n = 0;
    if (n < 0) {
      conn_abort(c, 1006);
      return;
    }
    if ((size_t)n == src->len) {
      out_give(c->w, src); /* an idle connection holds no buffer (the worker may keep it) */
    } else {
      /* The kernel took part of it: hand the rest to uv_write from where the kernel
       * stopped (no shifting), and start a fresh queue so handlers never append to memory
       * an in-flight write points into. */
      c->wbuf = *src;
      c->woff = (size_t)n;
      *src = (buf_t)BUF_INIT;
      if (!c->wreq) c->wreq = xmalloc(sizeof *c->wreq);
      c->wreq->data = c;
      uv_buf_t b = uv_buf_init((char *)c->wbuf.data + c->woff, (unsigned)(c->wbuf.len - c->woff));
      c->writing = 1;
      if (uv_write(c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        c->writing = 0;
        conn_abort(c, 1006);
      }
      return;
    }
  }
  if (c->source && c->state == CONN_HTTP && !c->out.len && !tls_queued(c)) {
    /* Everything is written: the body being produced gets to add its next piece. A
     * download making progress counts as activity for the idle and login timeouts. */
    c->last_rx_ms = now_ms();
    c->source->drained(c, c->source);
    return;
  }
  if (c->state == CONN_CLOSING && !c->out.len) {
    /* Everything queued is written: send FIN, then close once the shutdown completes. */
    uv_shutdown_t *req = xmalloc(sizeof *req);
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
      free(req);
      conn_abort(c, c->close_code);
    }
    c->state = CONN_SHUTDOWN;
  }
}

void conn_close(conn_t *c, int code, const char *reason) {
  if (c->reaping || c->state >= CONN_CLOSING) return;
  if (c->state == CONN_WS && code) ws_send_close(c, code, reason);
  c->close_code = code ? code : 1000;
  c->state = CONN_CLOSING;
  worker_schedule_flush(c->w, c);
}

void conn_pause_input(conn_t *c) {
  if (!c->reaping) uv_read_stop((uv_stream_t *)&c->tcp);
}

void conn_resume_input(conn_t *c) {
  if (c->reaping || c->state >= CONN_CLOSING) return;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (c->in.len) { /* requests that arrived behind the one just answered */
    buf_t pending = c->in;
    c->in = (buf_t)BUF_INIT;
    conn_input(c, pending.data, pending.len);
    buf_free(&pending);
  }
}

void conn_abort(conn_t *c, int code) {
  if (c->reaping) return;
  if (!c->close_code) c->close_code = code;
  worker_schedule_reap(c->w, c);
}

static void on_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  if (c->frag) buf_free(c->frag);
  free(c->frag);
  tls_conn_free(c->tls);
  free(c->wreq);
  free(c);
}

int conn_forwarded(conn_t *c, const char *client) {
  server_t *srv = c->w->srv;
  if (!client) { /* a request that names no client: the proxy's own again (counted, not limited) */
    if (!c->via[0]) return 0;
    client = c->via;
  }
  if (strcmp(c->ip, client) == 0 || c->acct || !c->ipe) return 0;
  int back = client == c->via;
  ipcount_entry_t *e = ipcount_add(srv->ips, client, back ? 0 : srv->cfg->max_conns_per_ip);
  if (!e) {
    atomic_fetch_add(&srv->refused_ip, 1);
    log_limited(&refuse_log, LOG_WARN, "conn %s via %s: over max_conns_per_ip, refused", client, c->ip);
    return TERN_EAGAIN;
  }
  ipcount_del(srv->ips, c->ipe);
  c->ipe = e;
  if (back) {
    memcpy(c->ip, c->via, sizeof c->ip);
    c->via[0] = 0;
    return 0;
  }
  if (!c->via[0]) memcpy(c->via, c->ip, sizeof c->via);
  snprintf(c->ip, sizeof c->ip, "%s", client);
  return 0;
}

/* What the connection spoke, for its close line. */
static const char *conn_protocol(const conn_t *c) {
  if (c->link.ops) return c->ws_base64 ? "ws-base64" : "ws-protobuf";
  return c->tls ? "https" : "http";
}

void conn_reap(conn_t *c) {
  worker_t *w = c->w;
  if (c->ipe) /* refused connections were logged (rate-limited) when refused, and never opened */
    log_event(LOG_INFO, "conn.close", "worker=%d conn=%llu addr=%s via=%s protocol=%s duration_ms=%lld code=%d", w->idx,
              (unsigned long long)c->id, c->ip, c->via[0] ? c->via : NULL, conn_protocol(c),
              (long long)(now_ms() - c->opened_ms), c->close_code);
  if (c->link.ops) metric_add(c->ws_base64 ? M_WS_BASE64 : M_WS_PROTOBUF, -1); /* it was a WebSocket */
  if (c->link.imw) w->srv->net_app->link_gone(&c->link, c->close_code);
  if (c->source) {
    conn_source_t *s = c->source;
    c->source = NULL;
    s->gone(s);
  }
  if (c->http) {
    http_conn_free(c->http);
    c->http = NULL;
  }
  handle_table_del(&w->conns, c->id);
  acct_sync(c); /* reaping: its queue leaves the sums */
  ipcount_del(w->srv->ips, c->ipe);
  c->ipe = NULL;
  atomic_fetch_sub(&w->srv->nconns, 1);
  if (c->prev) c->prev->next = c->next;
  else w->all = c->next;
  if (c->next) c->next->prev = c->prev;
  atomic_fetch_sub_explicit(&w->nconns, 1, memory_order_relaxed);
  if (c->in_flush) { /* unlink from the flush list before the memory goes */
    conn_t **pp = &w->flush_list;
    while (*pp && *pp != c) pp = &(*pp)->flush_next;
    if (*pp) *pp = c->flush_next;
    c->in_flush = 0;
  }
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void conn_sweep(worker_t *w, int64_t now) {
  const tern_config_t *cfg = w->srv->cfg;
  int64_t idle_ms = cfg->idle_timeout * 1000, login_ms = cfg->login_timeout * 1000;
  for (conn_t *c = w->all; c; c = c->next) {
    if (c->reaping || c->state >= CONN_CLOSING) continue;
    int64_t deadline = c->state == CONN_HTTP ? http_deadline(c) : 0;
    if (now - c->last_rx_ms > idle_ms || (deadline && now > deadline)) {
      conn_close(c, 4107, "READ_TIMEOUT");
    } else if (c->link.nsessions == 0 && now - c->link.sessionless_since_ms > login_ms &&
               (c->state == CONN_WS || now - c->last_rx_ms > login_ms)) {
      /* No session in time (4108); an HTTP keep-alive connection is only dropped when it
       * has also been quiet that long (a trickled request meets its deadline above). */
      conn_close(c, 4108, "LOGIN_TIMEOUT");
    }
  }
}
