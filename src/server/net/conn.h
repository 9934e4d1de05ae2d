/* conn.h — one client TCP connection, from accept to close.
 *
 * The struct is explicit (style rule 14): a state, input kept only while a frame is
 * incomplete, an output queue with a byte count and a hard limit that drops slow
 * consumers, and the timestamps the worker's 1-second sweep uses for the idle (4107) and
 * login (4108) timeouts. Handlers only append output; the worker flushes each connection
 * once per loop iteration — all of them in one io_uring submission (uring.h), else with
 * uv_try_write each — the rest with uv_write (rule 15); an append that would pass
 * output_limit writes the queue at once first (conn_writev). A queue
 * that outlives a flush also counts towards its address's and the server's totals
 * (output_limit_ip, output_limit_total), and so does output the IM layer holds back for
 * the connection (link.held, from the moment it is held); past either, the largest such queues are dropped
 * first, since their readers are the slowest (conn_shed). A
 * connection is never freed inside its own call stack: conn_close() marks it, the worker
 * reaps it before the loop sleeps (rule 8). */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <uv.h>

#include "buf.h"
#include "link.h"
#include "server.h"

typedef enum {
  CONN_HTTP = 0, /* parsing HTTP requests (router, REST, or the upgrade) */
  CONN_WS,       /* WebSocket frames carrying GenericCommands */
  CONN_CLOSING,  /* output drains, then the socket closes; input is ignored */
  CONN_SHUTDOWN, /* everything written, FIN sent; closes when the shutdown completes */
} conn_state_t;

typedef struct http_conn http_conn_t;
typedef struct tls_conn tls_conn_t;
typedef struct conn_source conn_source_t;
typedef struct conn conn_t;

/* A response body produced piece by piece (file downloads), so a large one is never held
 * whole. While c->source is set, each time the output queue has been written out the
 * connection calls drained(), which appends the next piece with conn_write — at once or
 * from a later callback — and clears c->source after the last one. If the connection goes
 * first, it calls gone() instead (and never drained() again): the source releases itself,
 * later if it has I/O in flight. */
struct conn_source {
  void (*drained)(conn_t *c, conn_source_t *s);
  void (*gone)(conn_source_t *s);
};

struct conn {
  uv_tcp_t tcp;
  worker_t *w;
  uint64_t id;
  conn_state_t state;
  uint8_t ws_base64;         /* lc.proto2base64.*: text frames of base64 */
  uint8_t in_flush;          /* on the worker's flush list */
  uint8_t reaping;           /* on the worker's reap list; uv_close pending */
  uint8_t writing;           /* a uv_write is in flight with wbuf */
  uint8_t close_sent;        /* WebSocket close frame queued */
  uint8_t from_proxy;        /* the peer is in trusted_proxies: its X-Forwarded-For names the client */
  struct ipcount_entry *ipe; /* its address in srv->ips (counted), NULL when refused */
  size_t acct;               /* bytes of its queue counted in srv->out_queued and ipe */
  int close_code;            /* why it closes, for im (1000, 1006, 4107, ...) */
  int frag_opcode;           /* opcode of a fragmented message in progress, 0 if none */
  http_conn_t *http;         /* HTTP parser state, only while state == CONN_HTTP */
  im_link_t link;            /* the IM view: sessions on this socket */
  buf_t in;                  /* bytes of an incomplete frame or request */
  buf_t *frag;               /* payload of a fragmented WebSocket message in progress, or NULL */
  buf_t out;                 /* queued output */
  buf_t wbuf;                /* output handed to an in-flight uv_write */
  size_t woff;               /* bytes at wbuf's front the kernel took already (not shifted out) */
  conn_source_t *source;     /* a response body still being produced, or NULL */
  tls_conn_t *tls;           /* TLS state (and its ciphertext queue) when the listener speaks TLS;
                         out is then plaintext */
  uv_write_t *wreq;
  int64_t last_rx_ms; /* (link.sessionless_since_ms: since when without a session, from accept) */
  struct conn *flush_next, *reap_next;
  struct conn *prev, *next; /* all connections of the worker */
  int64_t opened_ms;        /* accepted (the close line's duration) */
  char ip[46];              /* the peer, or the client a trusted proxy names (X-Forwarded-For) */
  char via[46];             /* that proxy's address when ip is the forwarded one, else "" */
};

/* Appends bytes to the output queue and schedules a flush. Drops the connection (and
 * returns TERN_E2BIG) when the queue would pass the configured output limit — a WebSocket
 * connection with no write in flight is first written as a flush would, so what the kernel
 * takes at once does not count (TERN_ECLOSED if that write finds the socket dead). */
int conn_write(conn_t *c, const void *p, size_t n);
/* The same for several pieces that must stay together (a frame header and its payload). */
int conn_writev(conn_t *c, const uv_buf_t *bufs, int nbufs);
/* Marks the connection for closing after its queued output is written. For WebSocket
 * connections a close frame with `code` and `reason` is queued first (code 0: none). */
void conn_close(conn_t *c, int code, const char *reason);
/* A trusted proxy's request names its client (X-Forwarded-For): from now on the connection
 * is logged and counted (max_conns_per_ip, output_limit_ip, queries, uploads) as that
 * address, the proxy's kept in c->via; client NULL (a request that names none) makes it
 * the proxy's again. 0, or TERN_EAGAIN when the client's address is at max_conns_per_ip
 * (answer 429). Nothing changes while output is queued (counted under the address it has). */
int conn_forwarded(conn_t *c, const char *client);
/* Bytes queued and not yet written (plaintext, in flight, and ciphertext); not what the
 * IM layer holds back (c->link.held), which output_limit does not count. */
size_t conn_queued(const conn_t *c);
/* c->link.held changed: the output budgets (output_limit_ip, output_limit_total) count it
 * with the queue from now on, and drop the largest queues when it passes one (marking
 * them only: safe in any send's call stack). */
void conn_held(conn_t *c);
/* Immediate teardown without flushing (peer reset, fatal input). */
void conn_abort(conn_t *c, int code);
/* Stop reading from the socket (a request is being answered asynchronously), and start
 * again: resuming first feeds the input already received to the parser. */
void conn_pause_input(conn_t *c);
void conn_resume_input(conn_t *c);

/* Worker-side plumbing, called by worker.c. conn_accept takes over a socket accept()
 * returned, with the peer's address accept() gave (NULL: it asks the socket); conn_shed drops the largest queues while output_limit_ip or
 * output_limit_total is exceeded — the server's largest, when the largest of all is on
 * another worker, by asking that one to look (worker_wake_shed). */
void conn_accept(worker_t *w, int fd, const struct sockaddr_storage *peer);
void conn_shed(worker_t *w);
void conn_flush(conn_t *c);
/* conn_flush in two halves, for a caller that writes many connections at once (uring.c):
 * begin returns the queue to write now (its bytes stay put until end), or NULL when there is
 * nothing to write or the flush is complete; end takes what the kernel made of it — the
 * bytes taken, UV_EAGAIN / -EAGAIN for none, another negative errno for a dead socket —
 * and goes on as conn_flush: the rest to uv_write, then a download's next piece or the
 * close. Nothing may append to c between the two but conn_abort. */
buf_t *conn_flush_begin(conn_t *c);
void conn_flush_end(conn_t *c, buf_t *src, int n);
int conn_fd(const conn_t *c); /* the socket's descriptor, -1 if it has none */
/* Frees the output buffers worker w keeps for reuse (its teardown). */
void conn_outcache_free(worker_t *w);
/* The input loop: what a read's bytes go through (on_read, after TLS opens them). The
 * bytes go to the HTTP or WebSocket parser by state; what they leave unconsumed (a cut
 * frame or head) waits in c->in for the next read. The fuzz harnesses feed it directly. */
void conn_input(conn_t *c, uint8_t *p, size_t n);
void conn_reap(conn_t *c);
void conn_sweep(worker_t *w, int64_t now);

/* ws.c — ws_input returns the bytes consumed (the rest is an incomplete frame). */
void ws_start(conn_t *c, int base64, int proto_version);
int ws_input(conn_t *c, uint8_t *p, size_t n);
void ws_send_close(conn_t *c, int code, const char *reason);
/* http.c — http_input returns the bytes consumed; after an upgrade it has already fed
 * the remaining bytes to ws_input. */
int http_input(conn_t *c, uint8_t *p, size_t n);
void http_conn_free(http_conn_t *h);

#endif
