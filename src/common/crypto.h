/* crypto.h — the few primitives the protocol needs, on OpenSSL's libcrypto.
 * HMAC-SHA1 signs logins and conversation operations (protocol.md §5), SHA-1 builds the
 * WebSocket accept key, HMAC-SHA256 seals session tokens, MD5 names unique conversations. */
#ifndef TERN_CRYPTO_H
#define TERN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

void random_bytes(void *out, size_t n); /* cryptographically strong; aborts if unavailable */
void sha1(const void *in, size_t n, uint8_t out[20]);
void hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[20]);
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[32]);
void md5(const void *in, size_t n, uint8_t out[16]);
void hex_encode(const uint8_t *in, size_t n, char *out); /* lowercase, writes 2n chars + NUL */
/* Constant-time comparison of equal-length byte strings; different lengths compare unequal. */
int ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
