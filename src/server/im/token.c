/* token.c — seal and check session tokens (see token.h for why they are stateless). */
#include "token.h"

#include <string.h>

#include "base64.h"
#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "timeutil.h"

#define MAC_LEN 16

static void seal(const char *master_key, const char *app_id, const char *client_id, const uint8_t *head,
                 const uint8_t *tag, size_t taglen, uint8_t mac[32]) {
  buf_t m = BUF_INIT;
  buf_append_str(&m, "st3:"); /* st2 tokens (no issue time, no lineage) do not verify */
  buf_append_str(&m, app_id);
  buf_append(&m, "\0", 1);
  buf_append_str(&m, client_id);
  buf_append(&m, "\0", 1);
  buf_append(&m, head, TOKEN_HEAD_LEN);
  buf_append(&m, tag, taglen);
  hmac_sha256(master_key, strlen(master_key), m.data, m.len, mac);
  buf_free(&m);
}

static void put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

void token_make_lineage(const char *master_key, const char *app_id, const char *client_id, const char *tag,
                        const uint8_t lineage[TOKEN_LINEAGE_LEN], int64_t ttl_s, char *out) {
  uint8_t raw[TOKEN_HEAD_LEN + MAC_LEN + TOKEN_TAG_MAX], mac[32];
  size_t taglen = tag ? strlen(tag) : 0;
  if (taglen > TOKEN_TAG_MAX) taglen = TOKEN_TAG_MAX;
  int64_t now = now_ms();
  put_be(raw, (uint32_t)(now / 1000 + ttl_s), 4);
  put_be(raw + 4, (uint64_t)now, 6);
  memcpy(raw + 10, lineage, TOKEN_LINEAGE_LEN);
  seal(master_key, app_id, client_id, raw, (const uint8_t *)tag, taglen, mac);
  memcpy(raw + TOKEN_HEAD_LEN, mac, MAC_LEN);
  if (taglen) memcpy(raw + TOKEN_HEAD_LEN + MAC_LEN, tag, taglen);
  size_t n = base64url_encode(raw, TOKEN_HEAD_LEN + MAC_LEN + taglen, out);
  out[n] = 0;
}

void token_make(const char *master_key, const char *app_id, const char *client_id, const char *tag, int64_t ttl_s,
                char *out) {
  uint8_t lineage[TOKEN_LINEAGE_LEN];
  random_bytes(lineage, sizeof lineage);
  token_make_lineage(master_key, app_id, client_id, tag, lineage, ttl_s, out);
}

int token_check(const char *master_key, const char *app_id, const char *client_id, const char *st, token_info_t *info) {
  if (info) info->tag = NULL;
  size_t n = strlen(st);
  if (n < ((TOKEN_HEAD_LEN + MAC_LEN) * 4 + 2) / 3 || n > TOKEN_MAX_LEN) return TERN_EINVAL;
  uint8_t raw[TOKEN_HEAD_LEN + MAC_LEN + TOKEN_TAG_MAX + 3], mac[32];
  long len = base64_decode(st, n, raw);
  if (len < TOKEN_HEAD_LEN + MAC_LEN) return TERN_EINVAL;
  size_t taglen = (size_t)len - TOKEN_HEAD_LEN - MAC_LEN;
  seal(master_key, app_id, client_id, raw, raw + TOKEN_HEAD_LEN + MAC_LEN, taglen, mac);
  if (!ct_equal(mac, MAC_LEN, raw + TOKEN_HEAD_LEN, MAC_LEN)) return TERN_EINVAL;
  int64_t exp = (int64_t)get_be(raw, 4) * 1000;
  if (exp <= now_ms()) return TERN_ETIMEDOUT;
  if (info) {
    info->expires_ms = exp;
    info->issued_ms = (int64_t)get_be(raw + 4, 6);
    memcpy(info->lineage, raw + 10, TOKEN_LINEAGE_LEN);
    if (taglen) info->tag = xstrndup((const char *)raw + TOKEN_HEAD_LEN + MAC_LEN, taglen);
  }
  return 0;
}
