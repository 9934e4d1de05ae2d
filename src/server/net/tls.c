/* tls.c — OpenSSL glue (see tls.h). */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "err.h"
#include "log.h"

struct tls_ctx {
  SSL_CTX *ctx;
};

struct tls_conn {
  SSL *ssl;
  BIO *rbio, *wbio; /* rbio: ciphertext in; wbio: ciphertext out */
  buf_t queue;      /* ciphertext for the socket (tls_queue) */
};

int tls_ctx_new(const char *cert_path, const char *key_path, tls_ctx_t **out) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return TERN_ECONFIG;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    char msg[256];
    ERR_error_string_n(ERR_get_error(), msg, sizeof msg);
    log_at(LOG_ERROR, "tls: cannot load certificate %s / key %s: %s", cert_path, key_path, msg);
    SSL_CTX_free(ctx);
    return TERN_ECONFIG;
  }
  tls_ctx_t *t = xcalloc(1, sizeof *t);
  t->ctx = ctx;
  *out = t;
  return 0;
}

void tls_ctx_free(tls_ctx_t *ctx) {
  if (!ctx) return;
  SSL_CTX_free(ctx->ctx);
  free(ctx);
}

tls_conn_t *tls_conn_new(tls_ctx_t *ctx) {
  tls_conn_t *t = xcalloc(1, sizeof *t);
  t->ssl = SSL_new(ctx->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->rbio || !t->wbio) abort(); /* out of memory: the server's policy */
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_accept_state(t->ssl);
  return t;
}

void tls_conn_free(tls_conn_t *t) {
  if (!t) return;
  SSL_free(t->ssl); /* frees both BIOs */
  buf_free(&t->queue);
  free(t);
}

buf_t *tls_queue(tls_conn_t *t) { return &t->queue; }

static void drain_wbio(tls_conn_t *t, buf_t *out) {
  size_t pending;
  while ((pending = BIO_ctrl_pending(t->wbio)) > 0) {
    buf_reserve(out, pending);
    int n = BIO_read(t->wbio, out->data + out->len, (int)pending);
    if (n <= 0) break;
    out->len += (size_t)n;
  }
}

int tls_feed(tls_conn_t *t, const uint8_t *cipher, size_t n, buf_t *plain, buf_t *out) {
  while (n > 0) {
    int w = BIO_write(t->rbio, cipher, (int)n);
    if (w <= 0) return TERN_EPROTO;
    cipher += w;
    n -= (size_t)w;
  }
  for (;;) {
    buf_reserve(plain, 16384);
    int r = SSL_read(t->ssl, plain->data + plain->len, 16384);
    if (r > 0) {
      plain->len += (size_t)r;
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    drain_wbio(t, out);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return 0; /* close_notify: the peer closes next */
    ERR_clear_error();
    return TERN_EPROTO;
  }
}

int tls_ready(tls_conn_t *t) { return SSL_is_init_finished(t->ssl); }

int tls_seal(tls_conn_t *t, const uint8_t *plain, size_t n, buf_t *out) {
  while (n > 0) {
    int w = SSL_write(t->ssl, plain, (int)n);
    if (w <= 0) {
      ERR_clear_error();
      return TERN_EPROTO;
    }
    plain += w;
    n -= (size_t)w;
  }
  drain_wbio(t, out);
  return 0;
}
