/* admin_http.c — the HTTP/1.1 client under `tern admin`: one blocking request per call.
 *
 * Why not libtern's: libtern moves HTTP bytes through its I/O adapter (tern_io_t.http), a
 * hook made for non-blocking uploads inside an event loop, and answers only the upload
 * it started; reaching it from here would mean a tern_t, a loop and new SDK API for what
 * a command-line tool does once and then exits. Why not libcurl here: four REST verbs
 * with small JSON bodies, one at a time, do not need it. The CLI does link libcurl, for
 * `tern admin import|export leancloud` only (admin_import_net.c: many requests in flight,
 * connection reuse, HTTPS to LeanCloud), and these one-shot commands keep this client.
 * So: getaddrinfo, a socket with send/receive timeouts, `Connection: close`, and an
 * answer read by Content-Length, chunks, or to the end. https:// goes through OpenSSL,
 * which ternd already needs, with the certificate checked against the host name or IP. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin.h"

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (512u << 20) /* kept in memory; downloads to a sink have no cap */

static int errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---------------------------------------------------------------- the server URL */

int ahttp_server_parse(ahttp_server_t *s, const char *url, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->timeout_ms = 30000;
  const char *p;
  if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7;
  } else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8;
    s->tls = 1;
  } else {
    return errf(err, errlen, "--server must start with http:// or https:// (got %s)", url);
  }
  size_t alen = strcspn(p, "/?#");
  if (alen == 0) return errf(err, errlen, "--server %s has no host", url);
  s->authority = xstrndup(p, alen);
  const char *host = s->authority, *colon;
  size_t hlen;
  if (host[0] == '[') { /* [v6]:port */
    const char *close = strchr(host, ']');
    if (!close) goto bad;
    host++;
    hlen = (size_t)(close - host);
    colon = close[1] == ':' ? close + 1 : NULL;
    if (close[1] && !colon) goto bad;
  } else {
    colon = strchr(host, ':');
    hlen = colon ? (size_t)(colon - host) : strlen(host);
  }
  if (hlen == 0) goto bad;
  s->host = xstrndup(host, hlen);
  if (colon) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535) goto bad;
    s->port = xstrdup(colon + 1);
  } else {
    s->port = xstrdup(s->tls ? "443" : "80");
  }
  const char *path = p + alen;
  size_t plen = strcspn(path, "?#");
  while (plen && path[plen - 1] == '/')
    plen--;
  s->prefix = xstrndup(path, plen);
  return 0;
bad:
  ahttp_server_free(s);
  return errf(err, errlen, "--server %s: cannot read host and port", url);
}

void ahttp_server_free(ahttp_server_t *s) {
  free(s->host);
  free(s->port);
  free(s->authority);
  free(s->prefix);
  s->host = s->port = s->authority = s->prefix = NULL;
}

/* ---------------------------------------------------------------- the connection */

typedef struct {
  int fd;
  SSL_CTX *ctx;
  SSL *ssl;
} link_t;

static void link_close(link_t *l) {
  if (l->ssl) SSL_free(l->ssl);
  if (l->ctx) SSL_CTX_free(l->ctx);
  if (l->fd >= 0) close(l->fd);
  l->ssl = NULL;
  l->ctx = NULL;
  l->fd = -1;
}

/* The last OpenSSL error as text (certificate problems say why). */
static const char *ssl_reason(SSL *ssl) {
  static char buf[256];
  long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (v != X509_V_OK) return X509_verify_cert_error_string(v);
  unsigned long e = ERR_get_error();
  if (!e) return "connection closed during the handshake";
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

static int link_open(link_t *l, const ahttp_server_t *s, char *err, size_t errlen) {
  l->fd = -1;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
  int rc = getaddrinfo(s->host, s->port, &hints, &res);
  if (rc != 0) return errf(err, errlen, "cannot resolve %s: %s", s->host, gai_strerror(rc));
  struct timeval tv = {.tv_sec = s->timeout_ms / 1000, .tv_usec = (s->timeout_ms % 1000) * 1000};
  int last = 0;
  for (struct addrinfo *ai = res; ai && l->fd < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    /* Linux applies the send timeout to connect() as well */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      l->fd = fd;
    } else {
      last = errno;
      close(fd);
    }
  }
  freeaddrinfo(res);
  if (l->fd < 0)
    return errf(err, errlen, "cannot connect to %s:%s: %s", s->host, s->port,
                last == EINPROGRESS || last == EAGAIN ? "timed out" : strerror(last));
  if (!s->tls) return 0;

  l->ctx = SSL_CTX_new(TLS_client_method());
  if (!l->ctx) goto tls_fail;
  SSL_CTX_set_min_proto_version(l->ctx, TLS1_2_VERSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  /* ternd closes after `Connection: close` without a close_notify; the body's length
   * (Content-Length or the last chunk) is what tells a cut answer from a whole one */
  SSL_CTX_set_options(l->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  if (!s->insecure) {
    SSL_CTX_set_verify(l->ctx, SSL_VERIFY_PEER, NULL);
    int loaded =
        s->cacert ? SSL_CTX_load_verify_locations(l->ctx, s->cacert, NULL) : SSL_CTX_set_default_verify_paths(l->ctx);
    if (loaded != 1) {
      link_close(l);
      return errf(err, errlen, "cannot load %s", s->cacert ? s->cacert : "the system's CA certificates");
    }
  }
  l->ssl = SSL_new(l->ctx);
  if (!l->ssl) goto tls_fail;
  SSL_set_fd(l->ssl, l->fd);
  /* the name to check: an IP address is matched against the certificate's IP SANs */
  unsigned char ipbuf[16];
  int is_ip = inet_pton(AF_INET, s->host, ipbuf) == 1 || inet_pton(AF_INET6, s->host, ipbuf) == 1;
  if (!s->insecure) {
    if (is_ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), s->host);
    else
      SSL_set1_host(l->ssl, s->host);
  }
  if (!is_ip) SSL_set_tlsext_host_name(l->ssl, s->host);
  if (SSL_connect(l->ssl) != 1) {
    int e = errf(err, errlen, "TLS with %s:%s failed: %s%s", s->host, s->port, ssl_reason(l->ssl),
                 s->insecure ? "" : " (--cacert FILE trusts a private CA; --insecure skips the check)");
    link_close(l);
    return e;
  }
  return 0;
tls_fail:
  errf(err, errlen, "TLS setup failed: %s", ssl_reason(NULL));
  link_close(l);
  return -1;
}

static int link_write(link_t *l, const void *p, size_t n, char *err, size_t errlen) {
  const char *c = p;
  while (n > 0) {
    ssize_t k;
    if (l->ssl) {
      int w = SSL_write(l->ssl, c, n > 1 << 30 ? 1 << 30 : (int)n);
      k = w > 0 ? w : -1;
    } else {
      k = send(l->fd, c, n, MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
    }
    if (k <= 0)
      return errf(err, errlen, "sending the request failed: %s", errno == EAGAIN ? "timed out" : strerror(errno));
    c += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Bytes read (0 at the end), or -1 with err set. */
static ssize_t link_read(link_t *l, void *p, size_t n, char *err, size_t errlen) {
  for (;;) {
    ssize_t k;
    if (l->ssl) {
      int r = SSL_read(l->ssl, p, n > 1 << 30 ? 1 << 30 : (int)n);
      if (r > 0) return r;
      int e = SSL_get_error(l->ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) return 0;
      if (e == SSL_ERROR_SSL) {
        errf(err, errlen, "reading the answer failed: %s", ssl_reason(NULL));
        return -1;
      }
      k = -1;
    } else {
      k = recv(l->fd, p, n, 0);
      if (k < 0 && errno == EINTR) continue;
      if (k >= 0) return k;
    }
    errf(err, errlen, "reading the answer failed: %s",
         errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
    return -1;
  }
}

/* ---------------------------------------------------------------- the answer's body */

enum { BODY_LENGTH, BODY_CHUNKED, BODY_EOF };
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER, CH_DONE };

typedef struct {
  int mode;
  uint64_t left; /* BODY_LENGTH: bytes to go; chunked: of this chunk */
  int ch;        /* chunked state */
  buf_t line;    /* chunked: a size or trailer line being read */
  FILE *sink;
  buf_t *keep;
  uint64_t total;
  int done;
} body_t;

static int body_emit(body_t *b, const char *p, size_t n, char *err, size_t errlen) {
  if (!n) return 0;
  b->total += n;
  if (b->sink) {
    if (fwrite(p, 1, n, b->sink) != n) return errf(err, errlen, "writing the body failed: %s", strerror(errno));
    return 0;
  }
  if (b->total > BODY_MAX) return errf(err, errlen, "the answer is larger than %u bytes", BODY_MAX);
  buf_append(b->keep, p, n);
  return 0;
}

/* Feeds bytes of the body; sets b->done at its end. Extra bytes after it are ignored. */
static int body_feed(body_t *b, const char *p, size_t n, char *err, size_t errlen) {
  while (n > 0 && !b->done) {
    if (b->mode == BODY_EOF) return body_emit(b, p, n, err, errlen);
    if (b->mode == BODY_LENGTH) {
      size_t k = n < b->left ? n : (size_t)b->left;
      if (body_emit(b, p, k, err, errlen) < 0) return -1;
      b->left -= k;
      b->done = b->left == 0;
      return 0;
    }
    switch (b->ch) {
    case CH_SIZE:
    case CH_TRAILER:
    case CH_DATA_END: {
      const char *nl = memchr(p, '\n', n);
      size_t k = nl ? (size_t)(nl - p) + 1 : n;
      buf_append(&b->line, p, k);
      if (b->line.len > 4096) return errf(err, errlen, "a chunk header is too long");
      p += k;
      n -= k;
      if (!nl) break;
      char *line = buf_cstr(&b->line);
      int blank = line[0] == '\r' || line[0] == '\n';
      if (b->ch == CH_SIZE) {
        char *end;
        unsigned long long size = strtoull(line, &end, 16);
        if (end == line) return errf(err, errlen, "a chunk size is not hexadecimal");
        b->left = size;
        b->ch = size ? CH_DATA : CH_TRAILER;
      } else if (b->ch == CH_DATA_END) {
        if (!blank) return errf(err, errlen, "a chunk does not end with CRLF");
        b->ch = CH_SIZE;
      } else if (blank) {
        b->ch = CH_DONE;
        b->done = 1;
      }
      b->line.len = 0;
      break;
    }
    case CH_DATA: {
      size_t k = n < b->left ? n : (size_t)b->left;
      if (body_emit(b, p, k, err, errlen) < 0) return -1;
      b->left -= k;
      p += k;
      n -= k;
      if (b->left == 0) b->ch = CH_DATA_END;
      break;
    }
    }
  }
  return 0;
}

/* The value of header `name` in the head (CRLF lines), copied into out; 0 if found. */
static int header_value(const char *head, const char *name, char *out, size_t outlen) {
  size_t nl = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    const char *h = line + 2;
    if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
      const char *v = h + nl + 1;
      while (*v == ' ' || *v == '\t')
        v++;
      size_t vl = strcspn(v, "\r\n");
      while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
      snprintf(out, outlen, "%.*s", (int)vl, v);
      return 0;
    }
  }
  return -1;
}

/* ---------------------------------------------------------------- one exchange */

int ahttp_request(const ahttp_server_t *s, const char *method, const char *path, const char *headers, const void *body,
                  size_t len, FILE *sink, ahttp_resp_t *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  buf_t req = BUF_INIT, in = BUF_INIT;
  body_t b = {.keep = &out->body};
  link_t l = {.fd = -1};
  int rc = -1;
  buf_printf(&req, "%s %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tern-admin\r\nAccept: application/json\r\n", method,
             s->prefix, path, s->authority);
  if (headers) buf_append_str(&req, headers);
  if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
    buf_printf(&req, "Content-Length: %zu\r\n", len);
  buf_append_str(&req, "Connection: close\r\n\r\n");
  if (len) buf_append(&req, body, len);
  if (link_open(&l, s, err, errlen) < 0) goto out;
  if (link_write(&l, req.data, req.len, err, errlen) < 0) goto out;

  /* the head: status line and headers, up to the blank line */
  char chunk[65536];
  size_t head_end = 0;
  for (;;) {
    ssize_t k = link_read(&l, chunk, sizeof chunk, err, errlen);
    if (k < 0) goto out;
    if (k == 0) {
      errf(err, errlen,
           in.len ? "the server closed the connection in the middle of the answer"
                  : "the server closed the connection without an answer");
      goto out;
    }
    buf_append(&in, chunk, (size_t)k);
    const char *text = buf_cstr(&in);
    const char *end = strstr(text, "\r\n\r\n");
    if (end) {
      head_end = (size_t)(end - text) + 4;
      break;
    }
    if (in.len > HEAD_MAX) {
      errf(err, errlen, "the answer's headers are too long");
      goto out;
    }
  }
  char *head = xstrndup((char *)in.data, head_end - 2); /* keeps the last header's CRLF */
  int major, minor, status;
  if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 999) {
    free(head);
    errf(err, errlen, "the server did not answer in HTTP");
    goto out;
  }
  out->status = status;
  char v[64];
  if (header_value(head, "Transfer-Encoding", v, sizeof v) == 0 && strcasestr(v, "chunked")) {
    b.mode = BODY_CHUNKED;
  } else if (header_value(head, "Content-Length", v, sizeof v) == 0) {
    char *end;
    b.mode = BODY_LENGTH;
    b.left = strtoull(v, &end, 10);
    if (*end || !*v) {
      free(head);
      errf(err, errlen, "the answer's Content-Length is not a number");
      goto out;
    }
  } else {
    b.mode = BODY_EOF;
  }
  free(head);
  b.done = (b.mode == BODY_LENGTH && b.left == 0) || status == 204 || status == 304 || strcmp(method, "HEAD") == 0;
  b.sink = status >= 200 && status < 300 ? sink : NULL;
  if (body_feed(&b, (char *)in.data + head_end, in.len - head_end, err, errlen) < 0) goto out;
  while (!b.done) {
    ssize_t k = link_read(&l, chunk, sizeof chunk, err, errlen);
    if (k < 0) goto out;
    if (k == 0) {
      if (b.mode != BODY_EOF) {
        errf(err, errlen, "the server closed the connection in the middle of the answer");
        goto out;
      }
      break;
    }
    if (body_feed(&b, chunk, (size_t)k, err, errlen) < 0) goto out;
  }
  if (b.sink && fflush(b.sink) != 0) {
    errf(err, errlen, "writing the body failed: %s", strerror(errno));
    goto out;
  }
  out->length = b.total;
  rc = 0;
out:
  link_close(&l);
  buf_free(&req);
  buf_free(&in);
  buf_free(&b.line);
  if (rc < 0) ahttp_resp_free(out);
  return rc;
}

void ahttp_resp_free(ahttp_resp_t *r) { buf_free(&r->body); }
