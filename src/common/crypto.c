/* crypto.c — thin wrappers over libcrypto so the rest of the code never sees OpenSSL types. */
#include "crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
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

/* HMAC (RFC 2104) over digests fetched once. OpenSSL 3's one-shot HMAC() looks the
 * algorithm up by name and builds a MAC context on every call (EVP_Q_mac): most of
 * libcrypto's share of a login, which seals one token (bench/README.md, "login storm"). */
static EVP_MD *md_sha1, *md_sha256;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static void md_fetch(void) {
  md_sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
  md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!md_sha1 || !md_sha256) abort();
}

#define HMAC_BLOCK 64 /* SHA-1's and SHA-256's block */

static void hmac(const EVP_MD *md, const void *key, size_t keylen, const void *msg, size_t n, uint8_t *out) {
  uint8_t k[HMAC_BLOCK] = {0}, pad[HMAC_BLOCK], inner[EVP_MAX_MD_SIZE];
  unsigned dlen = 0;
  if (keylen > HMAC_BLOCK) { /* a long key is hashed first */
    if (!EVP_Digest(key, keylen, k, &dlen, md, NULL)) abort();
  } else if (keylen) {
    memcpy(k, key, keylen);
  }
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c) abort();
  for (size_t i = 0; i < HMAC_BLOCK; i++) pad[i] = k[i] ^ 0x36;
  int ok = EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, pad, HMAC_BLOCK) && EVP_DigestUpdate(c, msg, n) &&
           EVP_DigestFinal_ex(c, inner, &dlen);
  for (size_t i = 0; i < HMAC_BLOCK; i++) pad[i] = k[i] ^ 0x5c;
  ok = ok && EVP_DigestInit_ex(c, md, NULL) && EVP_DigestUpdate(c, pad, HMAC_BLOCK) &&
       EVP_DigestUpdate(c, inner, dlen) && EVP_DigestFinal_ex(c, out, &dlen);
  EVP_MD_CTX_free(c);
  OPENSSL_cleanse(k, sizeof k);
  OPENSSL_cleanse(pad, sizeof pad);
  OPENSSL_cleanse(inner, sizeof inner);
  if (!ok) abort();
}

void hmac_sha1(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[20]) {
  pthread_once(&md_once, md_fetch);
  hmac(md_sha1, key, keylen, msg, n, out);
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, uint8_t out[32]) {
  pthread_once(&md_once, md_fetch);
  hmac(md_sha256, key, keylen, msg, n, out);
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
