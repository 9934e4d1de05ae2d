/* crypto.c — thin wrappers over libcrypto so the rest of the code never sees OpenSSL types. */
#include "crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <sys/random.h>

void random_bytes(void *out, size_t n) {
  uint8_t *p = out;
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) abort();
    p += r;
    n -= (size_t)r;
  }
}

void sha1(const void *in, size_t n, uint8_t out[20]) { SHA1(in, n, out); }

void hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[20]) {
  unsigned len = 20;
  HMAC(EVP_sha1(), key, (int)keylen, msg, n, out, &len);
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[32]) {
  unsigned len = 32;
  HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &len);
}

void md5(const void *in, size_t n, uint8_t out[16]) {
  unsigned len = 16;
  EVP_Digest(in, n, out, &len, EVP_md5(), NULL);
}

void hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[in[i] >> 4];
    out[2 * i + 1] = d[in[i] & 15];
  }
  out[2 * n] = 0;
}

int ct_equal(const void *a, size_t alen, const void *b, size_t blen) {
  if (alen != blen) return 0;
  const volatile uint8_t *x = a, *y = b;
  uint8_t acc = 0;
  for (size_t i = 0; i < alen; i++) acc |= x[i] ^ y[i];
  return acc == 0;
}
