/* token.c — seal and check session tokens (see token.h for why they are stateless). */
#include "token.h"

#include <string.h>

#include "base64.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "timeutil.h"

#define HEAD_LEN 12 /* 4 expiry (s) + 8 nonce */
#define MAC_LEN 16

static void seal(const char *master_key, const char *app_id, const char *client_id, const uint8_t *head,
                 const uint8_t *tag, size_t taglen, uint8_t mac[32]) {
  buf_t m = BUF_INIT;
  buf_append_str(&m, "st2:");
  buf_append_str(&m, app_id);
  buf_append(&m, "\0", 1);
  buf_append_str(&m, client_id);
  buf_append(&m, "\0", 1);
  buf_append(&m, head, HEAD_LEN);
  buf_append(&m, tag, taglen);
  hmac_sha256(master_key, strlen(master_key), m.data, m.len, mac);
  buf_free(&m);
}

void token_make(const char *master_key, const char *app_id, const char *client_id, const char *tag, int64_t ttl_s,
                char *out) {
  uint8_t raw[HEAD_LEN + MAC_LEN + TOKEN_TAG_MAX], mac[32];
  size_t taglen = tag ? strlen(tag) : 0;
  if (taglen > TOKEN_TAG_MAX) taglen = TOKEN_TAG_MAX;
  uint32_t exp = (uint32_t)(now_ms() / 1000 + ttl_s);
  raw[0] = (uint8_t)(exp >> 24);
  raw[1] = (uint8_t)(exp >> 16);
  raw[2] = (uint8_t)(exp >> 8);
  raw[3] = (uint8_t)exp;
  random_bytes(raw + 4, 8);
  seal(master_key, app_id, client_id, raw, (const uint8_t *)tag, taglen, mac);
  memcpy(raw + HEAD_LEN, mac, MAC_LEN);
  if (taglen) memcpy(raw + HEAD_LEN + MAC_LEN, tag, taglen);
  size_t n = base64url_encode(raw, HEAD_LEN + MAC_LEN + taglen, out);
  out[n] = 0;
}

int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, int64_t *expires_ms,
                char **tag) {
  if (tag) *tag = NULL;
  size_t n = strlen(st);
  if (n < 38 || n > TOKEN_MAX_LEN) return TERN_EINVAL;
  uint8_t raw[HEAD_LEN + MAC_LEN + TOKEN_TAG_MAX + 3], mac[32];
  long len = base64_decode(st, n, raw);
  if (len < HEAD_LEN + MAC_LEN) return TERN_EINVAL;
  size_t taglen = (size_t)len - HEAD_LEN - MAC_LEN;
  seal(master_key, app_id, client_id, raw, raw + HEAD_LEN + MAC_LEN, taglen, mac);
  if (!ct_equal(mac, MAC_LEN, raw + HEAD_LEN, MAC_LEN)) return TERN_EINVAL;
  int64_t exp = (int64_t)((uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3]);
  if (expires_ms) *expires_ms = exp * 1000;
  if (exp * 1000 <= now_ms()) return TERN_ETIMEDOUT;
  if (tag && taglen) *tag = xstrndup((const char *)raw + HEAD_LEN + MAC_LEN, taglen);
  return 0;
}
