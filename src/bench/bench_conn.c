/* bench_conn.c — the WebSocket client under every simulated session.
 *
 * One TCP connection per client, bound to one of several loopback source addresses so
 * that N can exceed one address's ephemeral port range (IP_BIND_ADDRESS_NO_PORT defers
 * the port choice to connect(), which can then reuse ports across destinations). The
 * write side copies the server's discipline: commands are framed (masked, RFC 6455 §5.3)
 * into the connection's output buffer, and one flush per loop iteration writes the lot
 * with uv_try_write, handing any rest to uv_write. Buffers are kept between iterations,
 * so sending costs no allocation once a connection is warm. Reads land in the thread's
 * one 64 KiB buffer; only an incomplete frame's bytes are copied into the client. */
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base64.h"
#include "bench.h"
#include "crypto.h"
#include "lc.pb-c.h"
#include "timeutil.h"
#include "ws_frame.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define KEEP_BUF (64 * 1024) /* larger output buffers are given back after a flush */

void bench_fail(const char *fmt, ...) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&bench.failed, &expected, 1)) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(bench.fail_msg, sizeof bench.fail_msg, fmt, ap);
  va_end(ap);
}

/* ---------------------------------------------------------------- requests */

int32_t client_req(client_t *c, pend_kind_t kind, uint32_t arg, uint64_t t) {
  if (c->npend + 1 > c->pcap / 2) {
    /* Grow the ring. Outstanding ids are within one window of each other, so they stay
     * distinct modulo the new size. */
    uint32_t ncap = c->pcap ? c->pcap * 2 : 16;
    pend_t *np = xcalloc(ncap, sizeof *np);
    for (uint32_t k = 0; k < c->pcap; k++) {
      if (!c->pend[k].kind) continue;
      pend_t *to = &np[(uint32_t)c->pend[k].i & (ncap - 1)];
      if (to->kind) { /* a request the server never answered met a newer one: give it up */
        pend_t *old = to->i - c->pend[k].i < 0 ? to : &c->pend[k];
        pend_t keep = old == to ? c->pend[k] : *to;
        scen_settle(c, old);
        c->npend--;
        *to = keep;
      } else {
        *to = c->pend[k];
      }
    }
    free(c->pend);
    c->pend = np;
    c->pcap = ncap;
  }
  int32_t i;
  pend_t *slot;
  do { /* skip ids whose slot is still taken by a much older request */
    i = c->next_i++;
    if (c->next_i <= 0 || (bench.mqtt && c->next_i > 0xffff)) c->next_i = 1; /* MQTT packet ids are 16 bits */
    slot = &c->pend[(uint32_t)i & (c->pcap - 1)];
  } while (slot->kind);
  slot->i = i;
  slot->kind = (uint8_t)kind;
  slot->arg = arg;
  slot->t = t;
  c->npend++;
  return i;
}

int client_pend_take(client_t *c, int32_t i, pend_t *out) {
  if (!c->pcap) return 0;
  pend_t *slot = &c->pend[(uint32_t)i & (c->pcap - 1)];
  if (!slot->kind || slot->i != i) return 0;
  *out = *slot;
  slot->kind = P_NONE;
  c->npend--;
  return 1;
}

/* ---------------------------------------------------------------- output */

static void schedule_flush(client_t *c) {
  if (c->in_flush) return;
  c->in_flush = 1;
  c->flush_next = c->th->flush_list;
  c->th->flush_list = c;
}

static void append_frame(client_t *c, int opcode, const uint8_t *p, size_t n) {
  uint32_t key = rng_next(c->th);
  uint8_t mask[4];
  memcpy(mask, &key, 4);
  buf_reserve(&c->out, n + WS_MAX_HEADER);
  uint8_t *dst = c->out.data + c->out.len;
  size_t hl = ws_write_header(dst, opcode, n, mask);
  memcpy(dst + hl, p, n);
  ws_unmask(dst + hl, n, mask, 0); /* masking is the same XOR */
  c->out.len += hl + n;
  schedule_flush(c);
}

void client_send(client_t *c, const uint8_t *p, size_t n) {
  if (c->state != C_OPENING && c->state != C_READY) return;
  append_frame(c, WS_OP_BINARY, p, n);
}

static void on_write(uv_write_t *req, int status) {
  client_t *c = req->data;
  c->writing = 0;
  c->wbuf.len = 0;
  if (c->wbuf.cap > KEEP_BUF) buf_free(&c->wbuf);
  if (status < 0) return; /* the read side sees the failure and closes */
  if (c->out.len) schedule_flush(c);
}

static void client_flush(client_t *c) {
  if (c->writing || !c->out.len) return;
  if (c->state == C_IDLE || c->state == C_CONNECTING || c->state >= C_CLOSING) return;
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) return; /* the read side will see the error */
  if ((size_t)n == c->out.len) {
    c->out.len = 0;
    if (c->out.cap > KEEP_BUF) buf_free(&c->out);
    return;
  }
  buf_consume(&c->out, (size_t)n);
  buf_t t = c->wbuf; /* the idle spare becomes the next queue: nothing is allocated */
  c->wbuf = c->out;
  c->out = t;
  c->out.len = 0;
  c->wreq.data = c;
  b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
  c->writing = 1;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) c->writing = 0;
}

void thread_flush(bthread_t *th) {
  while (th->flush_list) {
    client_t *c = th->flush_list;
    th->flush_list = c->flush_next;
    c->in_flush = 0;
    client_flush(c);
  }
}

/* ---------------------------------------------------------------- closing */

static void on_closed(uv_handle_t *h) {
  client_t *c = h->data;
  c->in.len = 0;
  c->out.len = 0;
  buf_free(&c->in);
  buf_free(&c->out);
  buf_free(&c->wbuf);
  buf_free(&c->mq);
  c->writing = 0;
  int dead = c->state == C_DEAD;
  c->state = C_IDLE;
  if (dead) c->state = C_DEAD;
  scen_lost(c);
}

static void unlink_flush(client_t *c) {
  if (!c->in_flush) return;
  client_t **pp = &c->th->flush_list;
  while (*pp && *pp != c) pp = &(*pp)->flush_next;
  if (*pp) *pp = c->flush_next;
  c->in_flush = 0;
}

/* The server closed or broke the connection: count it, then close our side. */
static void client_gone(client_t *c, int code) {
  if (c->state >= C_CLOSING || c->state == C_IDLE) return;
  bthread_t *th = c->th;
  if (c->state == C_READY) {
    CNT_ADD(th->cnt.disconnects, 1);
    CNT_ADD(th->cnt.ready, -1);
  } else {
    CNT_ADD(th->cnt.login_fail, 1);
  }
  c->close_code = code;
  if (atomic_load(&bench.step) != STEP_STOP && code != 0 &&
      CNT_GET(th->cnt.disconnects) + CNT_GET(th->cnt.login_fail) <= 3)
    fprintf(stderr, "tern-bench: client %d: connection closed (%d)\n", c->idx, code);
  unlink_flush(c);
  c->state = C_DEAD;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void client_reset(client_t *c) {
  if (c->state >= C_CLOSING || c->state == C_IDLE) return;
  if (c->state == C_READY) CNT_ADD(c->th->cnt.ready, -1);
  unlink_flush(c);
  c->state = C_CLOSING;
  if (uv_tcp_close_reset(&c->tcp, on_closed) != 0) uv_close((uv_handle_t *)&c->tcp, on_closed);
}

void client_close(client_t *c) {
  if (c->state >= C_CLOSING || c->state == C_IDLE) return;
  if (c->state == C_READY) CNT_ADD(c->th->cnt.ready, -1);
  unlink_flush(c);
  c->state = C_DEAD;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---------------------------------------------------------------- input */

static void send_login(client_t *c) {
  bthread_t *th = c->th;
  buf_t *b = &th->scratch;
  b->len = 0;
  char peer[64];
  snprintf(peer, sizeof peer, "%s%d", bench.prefix, c->idx);
  pb_put_varint(b, 1, LC__COMMAND_TYPE__session);
  pb_put_varint(b, 2, LC__OP_TYPE__open);
  pb_put_str(b, 3, bench.o.app_id);
  pb_put_str(b, 4, peer);
  pb_put_varint(b, 5, (uint64_t)client_req(c, P_OPEN, 0, c->t_login));
  size_t m = pb_begin(b, 102);
  pb_put_str(b, 4, "tern-bench");
  pb_put_varint(b, 19, 187); /* what JS 5.x and Swift announce (protocol.md §3.1) */
  pb_end(b, m);
  client_send(c, b->data, b->len);
}

/* The 101 response: status line and Sec-WebSocket-Accept. Returns the bytes of the
 * response, 0 if incomplete, -1 if it is not an acceptance. */
static long upgrade_reply(client_t *c, const uint8_t *p, size_t n) {
  const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end) return n > 8192 ? -1 : 0;
  size_t hl = (size_t)(end - p) + 4;
  if (hl < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) return -1;
  char want[29];
  ws_accept_key(c->key, strlen(c->key), want);
  const char *h = memmem(p, hl, "Sec-WebSocket-Accept:", 21);
  if (!h) h = memmem(p, hl, "sec-websocket-accept:", 21);
  if (!h) return -1;
  h += 21;
  while (*h == ' ') h++;
  if ((size_t)((const uint8_t *)h - p) + 28 > hl || memcmp(h, want, 28) != 0) return -1;
  return (long)hl;
}

/* Consumes complete frames (and the upgrade response) from p; returns bytes used, or -1
 * after the connection was closed. */
static long process(client_t *c, uint8_t *p, size_t n, uint64_t now) {
  size_t off = 0;
  if (c->state == C_UPGRADING) {
    long r = upgrade_reply(c, p, n);
    if (r == 0) return 0;
    if (r < 0) {
      client_gone(c, -1);
      return -1;
    }
    off = (size_t)r;
    c->state = C_OPENING;
    if (bench.mqtt) mqtt_send_connect(c);
    else send_login(c);
  }
  while (off < n) {
    ws_header_t h;
    int r = ws_parse_header(p + off, n - off, &h);
    if (r == 0) break;
    if (r < 0 || h.masked || !h.fin) { /* servers never mask, tern never fragments */
      client_gone(c, 1002);
      return -1;
    }
    if (n - off - h.header_len < h.len) break;
    uint8_t *payload = p + off + h.header_len;
    size_t len = (size_t)h.len;
    off += h.header_len + len;
    switch (h.opcode) {
    case WS_OP_BINARY:
    case WS_OP_TEXT:
      if (bench.mqtt && mqtt_input(c, payload, len, now) < 0) {
        client_gone(c, 1002);
        return -1;
      }
      if (!bench.mqtt) scen_frame(c, payload, len, now);
      if (c->state >= C_CLOSING || c->state == C_IDLE) return -1;
      break;
    case WS_OP_PING: append_frame(c, WS_OP_PONG, payload, len); break;
    case WS_OP_CLOSE: client_gone(c, len >= 2 ? (payload[0] << 8 | payload[1]) : 1005); return -1;
    default: break;
    }
  }
  return (long)off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  client_t *c = h->data;
  bthread_t *th = c->th;
  if (th->readbuf_busy) {
    b->base = NULL;
    b->len = 0;
    return;
  }
  th->readbuf_busy = 1;
  b->base = (char *)th->readbuf;
  b->len = sizeof th->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  client_t *c = s->data;
  bthread_t *th = c->th;
  if (b->base == (char *)th->readbuf) th->readbuf_busy = 0;
  if (nread < 0) {
    client_gone(c, nread == UV_EOF ? 1000 : 1006);
    return;
  }
  if (nread == 0) return;
  uint64_t now = mono_ns(); /* one clock read for everything that arrived together */
  if (c->in.len) {
    buf_append(&c->in, b->base, (size_t)nread);
    long used = process(c, c->in.data, c->in.len, now);
    if (used < 0) return;
    buf_consume(&c->in, (size_t)used);
    if (!c->in.len && c->in.cap > KEEP_BUF) buf_free(&c->in);
    return;
  }
  long used = process(c, (uint8_t *)b->base, (size_t)nread, now);
  if (used >= 0 && (size_t)used < (size_t)nread) buf_append(&c->in, b->base + used, (size_t)nread - (size_t)used);
}

/* ---------------------------------------------------------------- connecting */

static void on_connect(uv_connect_t *req, int status) {
  client_t *c = req->data;
  if (c->state != C_CONNECTING) return;
  if (status < 0) {
    if (CNT_GET(c->th->cnt.login_fail) < 3) fprintf(stderr, "tern-bench: connect: %s\n", uv_strerror(status));
    client_gone(c, 0);
    return;
  }
  uint8_t raw[16];
  for (int k = 0; k < 4; k++) {
    uint32_t v = rng_next(c->th);
    memcpy(raw + 4 * k, &v, 4);
  }
  c->key[base64_encode(raw, 16, c->key)] = 0;
  buf_printf(&c->out,
             "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
             "User-Agent: tern-bench\r\n\r\n",
             bench.nodes[c->idx % bench.nnodes].path, bench.nodes[c->idx % bench.nnodes].host_hdr, c->key,
             bench.mqtt ? "mqtt" : "lc.protobuf2.3");
  c->state = C_UPGRADING;
  schedule_flush(c); /* reading started with the connect (client_connect) */
}

void client_connect(client_t *c) {
  bthread_t *th = c->th;
  c->state = C_CONNECTING;
  c->tcp.data = c;
  c->creq.data = c;
  c->npend = 0;
  if (c->pend) memset(c->pend, 0, c->pcap * sizeof *c->pend);
  int rc = uv_tcp_init_ex(&th->loop, &c->tcp, AF_INET);
  if (rc != 0) { /* no handle to close: fail the attempt right here */
    fprintf(stderr, "tern-bench: socket: %s\n", uv_strerror(rc));
    CNT_ADD(th->cnt.login_fail, 1);
    c->state = C_DEAD;
    scen_lost(c);
    return;
  }
  if (bench.nsources > 1) {
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&c->tcp, &fd);
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src;
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(c->idx % bench.nsources));
    rc = uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
  }
  /* A storm's client sends one frame a round trip (the upgrade, then the open after the 101
   * that acknowledged it), which Nagle never holds back: no TCP_NODELAY call per login. */
  if (rc == 0 && bench.sc != SC_LOGIN) uv_tcp_nodelay(&c->tcp, 1);
  if (rc == 0) {
    const struct sockaddr_in *to = &bench.nodes[c->idx % bench.nnodes].addr; /* round-robin over --url */
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)to, on_connect);
  }
  /* Reading is armed with the connect, so the socket joins epoll once for both directions
   * (started after the connect, libuv tries EPOLL_CTL_ADD again, fails, then MODs). Nothing
   * arrives before the upgrade request has gone out. */
  if (rc == 0) rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc != 0) {
    if (CNT_GET(th->cnt.login_fail) < 3) fprintf(stderr, "tern-bench: connect: %s\n", uv_strerror(rc));
    CNT_ADD(th->cnt.login_fail, 1);
    c->state = C_DEAD;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
}
