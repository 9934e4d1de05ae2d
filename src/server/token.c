/* token.c — seal and check session tokens (see token.h for why they are stateless). */
#include "token.h"

#include <string.h>

#include "base64.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "timeutil.h"

#define RAW_LEN 28 /* 4 expiry (s) + 8 nonce + 16 mac */

static void seal(const char *master_key, const char *app_id, const char *client_id, const uint8_t head[12],
                 uint8_t mac[32]) {
  buf_t m = BUF_INIT;
  buf_append_str(&m, "st1:");
  buf_append_str(&m, app_id);
  buf_append(&m, "\0", 1);
  buf_append_str(&m, client_id);
  buf_append(&m, "\0", 1);
  buf_append(&m, head, 12);
  hmac_sha256(master_key, strlen(master_key), m.data, m.len, mac);
  buf_free(&m);
}

void token_make(const char *master_key, const char *app_id, const char *client_id, int64_t ttl_s, char *out) {
  uint8_t raw[RAW_LEN], mac[32];
  uint32_t exp = (uint32_t)(now_ms() / 1000 + ttl_s);
  raw[0] = (uint8_t)(exp >> 24);
  raw[1] = (uint8_t)(exp >> 16);
  raw[2] = (uint8_t)(exp >> 8);
  raw[3] = (uint8_t)exp;
  random_bytes(raw + 4, 8);
  seal(master_key, app_id, client_id, raw, mac);
  memcpy(raw + 12, mac, 16);
  size_t n = base64url_encode(raw, RAW_LEN, out);
  out[n] = 0;
}

int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, int64_t *expires_ms) {
  size_t n = strlen(st);
  if (n != TOKEN_LEN) return TERN_EINVAL;
  uint8_t raw[RAW_LEN + 3], mac[32];
  if (base64_decode(st, n, raw) != RAW_LEN) return TERN_EINVAL;
  seal(master_key, app_id, client_id, raw, mac);
  if (!ct_equal(mac, 16, raw + 12, 16)) return TERN_EINVAL;
  int64_t exp = (int64_t)((uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3]);
  if (expires_ms) *expires_ms = exp * 1000;
  if (exp * 1000 <= now_ms()) return TERN_ETIMEDOUT;
  return 0;
}
