/* tls.h — TLS for client connections (wss://, https://) on OpenSSL memory BIOs.
 *
 * The socket stays libuv's: ciphertext read from it is fed in, plaintext comes out for the
 * HTTP/WebSocket code; plaintext queued for the peer is encrypted just before the flush.
 * So nothing above conn.c knows whether a connection is encrypted. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

/* Loads a PEM certificate chain and private key. Returns 0 or TERN_ECONFIG (logged). */
int tls_ctx_new(const char *cert_path, const char *key_path, tls_ctx_t **out);
void tls_ctx_free(tls_ctx_t *ctx);

tls_conn_t *tls_conn_new(tls_ctx_t *ctx);
void tls_conn_free(tls_conn_t *t);
/* Feeds ciphertext from the peer: decrypted bytes are appended to plain, records to send
 * (handshake, alerts) to out. Returns 0, or TERN_EPROTO when the peer broke the protocol. */
int tls_feed(tls_conn_t *t, const uint8_t *cipher, size_t n, buf_t *plain, buf_t *out);
/* 1 once the handshake is done (plaintext can be sent). */
int tls_ready(tls_conn_t *t);
/* Encrypts plaintext into records appended to out. Call only when tls_ready(). */
int tls_seal(tls_conn_t *t, const uint8_t *plain, size_t n, buf_t *out);
/* The connection's ciphertext waiting for the socket: kept here, not in every conn_t, so
 * plain connections do not pay for it. */
buf_t *tls_queue(tls_conn_t *t);

#endif
