/* crypto.c — thin wrappers over libcrypto so the rest of the code never sees OpenSSL types. */
#include "crypto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A login draws 16 bytes, and on a VM a system call costs more than the bytes: each
 * thread takes getrandom()'s output RAND_POOL bytes at a time and hands it out, wiping
 * what it gave (bench/README.md, "login storm"). A forked child would replay its parent's
 * pool, so fork empties the forking thread's (the only thread a child has). libcrypto's
 * RAND_bytes is no cheaper here: it calls getpid() each time to notice forks. */
#define RAND_POOL 512
static __thread struct {
  uint8_t b[RAND_POOL];
  size_t left; /* unused bytes at the end of b */
} rand_pool;
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_pool_drop(void) {
  explicit_bzero(rand_pool.b, sizeof rand_pool.b);
  rand_pool.left = 0;
}
static void rand_atfork(void) { pthread_atfork(NULL, NULL, rand_pool_drop); }

static void getrandom_all(uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) abort();
    p += r;
    n -= (size_t)r;
  }
}

void random_bytes(void *out, size_t n) {
  if (n > RAND_POOL / 4) { /* large draws (keys) straight from the kernel */
    getrandom_all(out, n);
    return;
  }
  pthread_once(&rand_once, rand_atfork);
  if (rand_pool.left < n) {
    getrandom_all(rand_pool.b, sizeof rand_pool.b);
    rand_pool.left = sizeof rand_pool.b;
  }
  uint8_t *src = rand_pool.b + sizeof rand_pool.b - rand_pool.left;
  memcpy(out, src, n);
  explicit_bzero(src, n);
  rand_pool.left -= n;
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
