/* uv.c — the libuv adapter: sockets, name lookups and the timer for a tern_t.
 *
 * Shaped like hiredis' adapters/libuv.h: the core asks (connect, want_write, close, timer,
 * http) and the adapter answers by calling tern_io_*. Every handle the adapter opens counts
 * in `handles`; after tern_free() the adapter is "dead", makes no more calls into the core,
 * and frees itself when the last close callback ran (libuv's rule: memory of a handle is
 * released only in its close callback). A connection attempt is its own object, so a late
 * callback of an abandoned attempt is recognised and only cleans up.
 *
 * TLS (wss://, https://, tern_io_tls) sits between the socket and the core as an OpenSSL
 * engine on two memory BIOs, as ternd's own tls.c does on the server side: bytes read from
 * the socket go into one, bytes OpenSSL wants sent come out of the other, and the core only
 * ever sees plaintext — it is told "connected" once the handshake, the chain and the host
 * name have been checked. One SSL_CTX per adapter holds the trust settings. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "sbuf.h"
#include "tern/uv.h"

typedef struct uva uva_t;

typedef struct {
  uva_t *a;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  char *host;
  int port;
  int tcp_inited;
  int closing;
  int err; /* why it closed, for tern_io_closed (0: EOF or asked) */
  /* TLS: the engine, the BIOs it reads the network from and writes it to */
  SSL *ssl;
  BIO *net_in, *net_out;
  int want_tls; /* tern_io_tls said so when the socket was made */
  int secure;   /* handshake done */
  /* http exchanges */
  int is_http;
  uint64_t http_id;
  sbuf_t req, resp;
  int http_failed;
} sock_t;

struct uva {
  tern_t *t;
  uv_loop_t *loop;
  SSL_CTX *ssl_ctx; /* made at the first TLS connection */
  uv_timer_t timer;
  sock_t *cur; /* the WebSocket's socket */
  int writing;
  int dead;
  int handles;      /* open handles and lookups */
  char slab[65536]; /* read buffer: one read at a time per loop, and one loop per adapter */
};

typedef struct {
  uv_write_t w;
  sock_t *s;
  char *data;
} wreq_t;

static void maybe_free(uva_t *a) {
  if (a->dead && a->handles == 0) {
    SSL_CTX_free(a->ssl_ctx);
    free(a);
  }
}

static void sock_free(sock_t *s) {
  uva_t *a = s->a;
  sbuf_free(&s->req);
  sbuf_free(&s->resp);
  SSL_free(s->ssl); /* and its BIOs */
  free(s->host);
  free(s);
  a->handles--;
  maybe_free(a);
}

static void on_sock_closed(uv_handle_t *h) {
  sock_t *s = h->data;
  uva_t *a = s->a;
  if (!s->is_http && a->cur == s) {
    a->cur = NULL;
    a->writing = 0;
    if (!a->dead) tern_io_closed(a->t, s->err);
  }
  sock_free(s);
}

static void sock_close(sock_t *s) {
  if (s->closing) return;
  s->closing = 1;
  if (s->tcp_inited) uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
  /* else: the lookup callback sees `closing` and finishes */
}

static void http_finish(sock_t *s) {
  uva_t *a = s->a;
  if (!a->dead) {
    if (s->http_failed) tern_io_http_done(a->t, s->http_id, -36 /* TERN_EUPLOAD */, NULL, 0);
    else tern_io_http_done(a->t, s->http_id, 0, s->resp.data, s->resp.len);
  }
}

/* The exchange failed: answered (once) as TERN_EUPLOAD, then the socket closes. A WebSocket
 * socket only closes. */
static void sock_fail(sock_t *s) {
  if (s->is_http && !s->closing) {
    s->http_failed = 1;
    http_finish(s);
  }
  sock_close(s);
}

/* An upload's answer is a small JSON object; a files host that sends more is not one. */
#define HTTP_ANSWER_MAX (1u << 20)

/* Plaintext from the peer: into the HTTP answer, or to the core. -1 when the socket closed
 * meanwhile (nothing more is to be delivered). */
static int deliver(sock_t *s, const char *p, size_t n) {
  uva_t *a = s->a;
  if (s->is_http) {
    if (!s->http_failed && (s->resp.len + n > HTTP_ANSWER_MAX || sbuf_append(&s->resp, p, n) < 0)) {
      sock_fail(s);
      return -1;
    }
  } else if (!a->dead && a->cur == s) {
    tern_io_input(a->t, p, n);
    if (s->closing || a->cur != s) return -1; /* the core closed it */
  }
  return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  sock_t *s = h->data;
  (void)suggested;
  b->base = s->a->slab;
  b->len = sizeof s->a->slab;
}

static void tls_input(sock_t *s, const char *p, size_t n);

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  sock_t *s = st->data;
  if (n > 0 && s->ssl) {
    tls_input(s, b->base, (size_t)n);
    return;
  }
  if (n > 0) {
    deliver(s, b->base, (size_t)n);
    return;
  }
  if (n < 0) {
    if (s->ssl && !s->secure && !s->err) s->err = -38; /* TERN_ETLS: closed in the handshake */
    if (s->is_http && !s->closing) {
      if (n != UV_EOF || (s->ssl && !s->secure)) s->http_failed = 1;
      http_finish(s);
    }
    sock_close(s);
  }
}

static void flush(uva_t *a);

static void on_written(uv_write_t *w, int status) {
  wreq_t *r = (wreq_t *)w;
  sock_t *s = r->s;
  uva_t *a = s->a;
  free(r->data);
  free(r);
  if (s->is_http) {
    if (status < 0) sock_fail(s);
    return;
  }
  if (a->cur == s) a->writing = 0;
  if (status < 0) {
    sock_close(s);
    return;
  }
  if (!a->dead && a->cur == s) flush(a);
}

static int write_raw(sock_t *s, const void *p, size_t n) {
  wreq_t *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->s = s;
  r->data = malloc(n);
  if (!r->data) {
    free(r);
    return -1;
  }
  memcpy(r->data, p, n);
  uv_buf_t b = uv_buf_init(r->data, (unsigned)n);
  if (uv_write(&r->w, (uv_stream_t *)&s->tcp, &b, 1, on_written) < 0) {
    free(r->data);
    free(r);
    return -1;
  }
  return 0;
}

/* What OpenSSL produced for the network, written to the socket. */
static int tls_flush(sock_t *s) {
  char buf[16384];
  int n;
  while ((n = BIO_read(s->net_out, buf, sizeof buf)) > 0)
    if (write_raw(s, buf, (size_t)n) < 0) return -1;
  return 0;
}

/* Plaintext to the peer: through the TLS engine when there is one. */
static int write_bytes(sock_t *s, const void *p, size_t n) {
  if (!s->ssl) return write_raw(s, p, n);
  while (n > 0) { /* a memory BIO takes all of it: SSL_write only splits into records */
    int k = SSL_write(s->ssl, p, n > 1u << 30 ? 1 << 30 : (int)n);
    if (k <= 0) return -1;
    p = (const char *)p + k;
    n -= (size_t)k;
  }
  return tls_flush(s);
}

static void flush(uva_t *a) {
  sock_t *s = a->cur;
  if (!s || s->closing || !s->tcp_inited || a->writing || a->dead) return;
  if (!uv_is_writable((uv_stream_t *)&s->tcp)) return;
  const void *p;
  size_t n = tern_io_output(a->t, &p);
  if (n == 0) return;
  if (write_bytes(s, p, n) < 0) {
    sock_close(s);
    return;
  }
  tern_io_written(a->t, n);
  a->writing = 1;
}

static void on_established(sock_t *s);
static int tls_start(sock_t *s);

static void on_connect(uv_connect_t *req, int status) {
  sock_t *s = req->data;
  uva_t *a = s->a;
  if (s->closing) return;
  if (status < 0) {
    sock_fail(s);
    return;
  }
  uv_tcp_nodelay(&s->tcp, 1);
  uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read);
  if (s->want_tls) {
    if (a->dead || tls_start(s) < 0) {
      s->err = -38; /* TERN_ETLS */
      sock_fail(s);
    }
    return;
  }
  on_established(s);
}

/* The connection is up (and, with TLS, checked): the request, or the core's handshake. */
static void on_established(sock_t *s) {
  uva_t *a = s->a;
  if (s->is_http) {
    if (write_bytes(s, s->req.data, s->req.len) < 0) sock_fail(s);
    return;
  }
  if (a->dead || a->cur != s) {
    sock_close(s);
    return;
  }
  tern_io_connected(a->t);
  flush(a);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res) {
  sock_t *s = g->data;
  uva_t *a = s->a;
  if (s->closing || status < 0 || !res || (!s->is_http && (a->dead || a->cur != s))) {
    if (res) uv_freeaddrinfo(res);
    if (s->is_http) {
      s->http_failed = 1;
      if (!s->closing) http_finish(s);
    } else if (a->cur == s) {
      a->cur = NULL;
      if (!a->dead) tern_io_closed(a->t, -31 /* TERN_ECONNECT */);
    }
    sock_free(s);
    return;
  }
  uv_tcp_init(a->loop, &s->tcp);
  s->tcp.data = s;
  s->tcp_inited = 1;
  s->creq.data = s;
  struct sockaddr_storage addr;
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  if (addr.ss_family == AF_INET) ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)s->port);
  else ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)s->port);
  uv_freeaddrinfo(res);
  if (uv_tcp_connect(&s->creq, &s->tcp, (struct sockaddr *)&addr, on_connect) < 0) sock_fail(s);
}

static sock_t *sock_start(uva_t *a, const char *host, int port, int is_http) {
  sock_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->a = a;
  s->port = port;
  s->is_http = is_http;
  s->gai.data = s;
  s->want_tls = tern_io_tls(a->t, is_http, NULL, NULL);
  s->host = strdup(host);
  if (!s->host) {
    free(s);
    return NULL;
  }
  a->handles++;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(a->loop, &s->gai, on_resolved, host, NULL, &hints) < 0) {
    a->handles--;
    free(s->host);
    free(s);
    return NULL;
  }
  return s;
}

static void io_connect(void *data, const char *host, int port) {
  uva_t *a = data;
  if (a->cur) sock_close(a->cur);
  a->cur = sock_start(a, host, port, 0);
  if (!a->cur) tern_io_closed(a->t, -31 /* TERN_ECONNECT */);
}

static void io_want_write(void *data) { flush(data); }

static void io_close(void *data) {
  uva_t *a = data;
  if (!a->cur) {
    tern_io_closed(a->t, 0);
    return;
  }
  sock_t *s = a->cur;
  if (!s->tcp_inited) { /* still resolving: the lookup callback finishes the close */
    s->closing = 1;
    a->cur = NULL;
    tern_io_closed(a->t, 0);
    return;
  }
  /* let queued bytes (a close frame) go first; shutdown then close */
  flush(a);
  sock_close(s);
}

static void on_timer(uv_timer_t *h) {
  uva_t *a = h->data;
  if (!a->dead) tern_io_timer(a->t);
}

static void io_timer(void *data, int64_t delay) {
  uva_t *a = data;
  if (delay < 0) uv_timer_stop(&a->timer);
  else uv_timer_start(&a->timer, on_timer, (uint64_t)delay, 0);
}

static void io_http(void *data, uint64_t id, const char *host, int port, const void *req, size_t len) {
  uva_t *a = data;
  sock_t *s = sock_start(a, host, port, 1);
  if (!s) {
    tern_io_http_done(a->t, id, -36, NULL, 0);
    return;
  }
  s->http_id = id;
  if (sbuf_append(&s->req, req, len) < 0) {
    s->closing = 1; /* the lookup callback only frees it */
    tern_io_http_done(a->t, id, -1 /* TERN_ENOMEM */, NULL, 0);
  }
}

/* ---- TLS */

static void tls_log(sock_t *s, const char *what) {
  char line[512], err[256] = "";
  unsigned long e = ERR_get_error();
  if (e) ERR_error_string_n(e, err, sizeof err);
  long v = s->ssl ? SSL_get_verify_result(s->ssl) : X509_V_OK;
  if (v != X509_V_OK)
    snprintf(line, sizeof line, "TLS with %s:%d: %s: certificate verify failed: %s", s->host, s->port, what,
             X509_verify_cert_error_string(v));
  else snprintf(line, sizeof line, "TLS with %s:%d: %s%s%s", s->host, s->port, what, *err ? ": " : "", err);
  ERR_clear_error();
  if (!s->a->dead) tern_io_log(s->a->t, 0 /* TERN_LOG_ERROR */, line);
}

static int tls_ctx(uva_t *a, sock_t *s) {
  if (a->ssl_ctx) return 0;
  const char *ca = NULL;
  int insecure = 0;
  tern_io_tls(a->t, s->is_http, &ca, &insecure);
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return -1;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
  int ok = ca && *ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) : SSL_CTX_set_default_verify_paths(ctx);
  if (ok != 1) {
    char what[600];
    snprintf(what, sizeof what, "cannot load the CA certificates %s", ca && *ca ? ca : "of the system");
    tls_log(s, what);
    SSL_CTX_free(ctx);
    return -1;
  }
  a->ssl_ctx = ctx;
  return 0;
}

static void tls_pump(sock_t *s);

/* The client side of a handshake: SNI for a name, the chain and the name (or IP address)
 * checked unless insecure, then the ClientHello. */
static int tls_start(sock_t *s) {
  uva_t *a = s->a;
  int insecure = 0;
  tern_io_tls(a->t, s->is_http, NULL, &insecure);
  if (tls_ctx(a, s) < 0) return -1;
  s->ssl = SSL_new(a->ssl_ctx);
  s->net_in = BIO_new(BIO_s_mem());
  s->net_out = BIO_new(BIO_s_mem());
  if (!s->ssl || !s->net_in || !s->net_out) {
    BIO_free(s->net_in);
    BIO_free(s->net_out);
    s->net_in = s->net_out = NULL;
    tls_log(s, "out of memory");
    return -1;
  }
  SSL_set_bio(s->ssl, s->net_in, s->net_out); /* the SSL owns them now */
  SSL_set_connect_state(s->ssl);
  unsigned char ip[16];
  int is_ip = inet_pton(AF_INET, s->host, ip) == 1 || inet_pton(AF_INET6, s->host, ip) == 1;
  if (!is_ip) SSL_set_tlsext_host_name(s->ssl, s->host);
  if (!insecure) {
    X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, s->host) != 1 : SSL_set1_host(s->ssl, s->host) != 1) {
      tls_log(s, "cannot set the name to check");
      return -1;
    }
  }
  tls_pump(s);
  return 0;
}

static void tls_fail(sock_t *s, const char *what) {
  tls_log(s, what);
  s->err = -38; /* TERN_ETLS */
  sock_fail(s);
}

/* Drives the engine after input: the handshake, then plaintext to the core. */
static void tls_pump(sock_t *s) {
  if (!s->secure) {
    int r = SSL_do_handshake(s->ssl);
    if (tls_flush(s) < 0) {
      tls_fail(s, "cannot write");
      return;
    }
    if (r != 1) {
      int e = SSL_get_error(s->ssl, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) tls_fail(s, "handshake failed");
      return;
    }
    s->secure = 1;
    on_established(s);
    if (s->closing) return;
  }
  char buf[16384];
  for (;;) {
    int n = SSL_read(s->ssl, buf, sizeof buf);
    if (n <= 0) {
      int e = SSL_get_error(s->ssl, n);
      if (e == SSL_ERROR_ZERO_RETURN) { /* close_notify: the peer is done */
        if (s->is_http && !s->closing) http_finish(s);
        sock_close(s);
      } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        tls_log(s, "read failed");
        sock_fail(s);
      }
      break;
    }
    if (deliver(s, buf, (size_t)n) < 0) return;
  }
  if (!s->closing && tls_flush(s) < 0) sock_fail(s); /* an exchange is answered as failed */
}

static void tls_input(sock_t *s, const char *p, size_t n) {
  if (s->closing) return;
  if (BIO_write(s->net_in, p, (int)n) != (int)n) {
    tls_fail(s, "out of memory");
    return;
  }
  tls_pump(s);
}

static void on_timer_closed(uv_handle_t *h) {
  uva_t *a = h->data;
  a->handles--;
  maybe_free(a);
}

static void io_cleanup(void *data) {
  uva_t *a = data;
  a->dead = 1;
  if (a->cur) {
    sock_t *s = a->cur;
    a->cur = NULL;
    if (s->tcp_inited) {
      const void *p;
      size_t n = tern_io_output(a->t, &p);
      if (n && !s->closing) write_bytes(s, p, n); /* the close frame, if it fits */
      sock_close(s);
    } else {
      s->closing = 1;
    }
  }
  uv_close((uv_handle_t *)&a->timer, on_timer_closed);
}

int tern_uv_attach(tern_t *t, uv_loop_t *loop) {
  if (!t || !loop) return TERN_EINVAL;
  uva_t *a = calloc(1, sizeof *a);
  if (!a) return TERN_ENOMEM;
  a->t = t;
  a->loop = loop;
  uv_timer_init(loop, &a->timer);
  a->timer.data = a;
  a->handles = 1;
  tern_io_t io = {
      .data = a,
      .connect = io_connect,
      .want_write = io_want_write,
      .close = io_close,
      .timer = io_timer,
      .http = io_http,
      .cleanup = io_cleanup,
  };
  int rc = tern_attach(t, &io);
  if (rc < 0) {
    a->dead = 1;
    uv_close((uv_handle_t *)&a->timer, on_timer_closed);
  }
  return rc;
}
