/* ws_frame.c — RFC 6455 §5.2 header parsing/writing and the §4.2.2 accept key. */
#include "ws_frame.h"

#include <string.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"

int ws_parse_header(const uint8_t *p, size_t n, ws_header_t *h) {
  if (n < 2) return 0;
  h->fin = (p[0] >> 7) & 1;
  if (p[0] & 0x70) return TERN_EPROTO; /* no extensions are negotiated */
  h->opcode = p[0] & 0x0f;
  switch (h->opcode) {
  case WS_OP_CONT:
  case WS_OP_TEXT:
  case WS_OP_BINARY:
  case WS_OP_CLOSE:
  case WS_OP_PING:
  case WS_OP_PONG: break;
  default: return TERN_EPROTO;
  }
  h->masked = (p[1] >> 7) & 1;
  uint64_t len = p[1] & 0x7f;
  size_t off = 2;
  if (len == 126) {
    if (n < 4) return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    if (len < 126) return TERN_EPROTO;
    off = 4;
  } else if (len == 127) {
    if (n < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    if (len >> 63 || len < 65536) return TERN_EPROTO;
    off = 10;
  }
  if (h->opcode >= 0x8 && (!h->fin || len > 125)) return TERN_EPROTO;
  if (h->masked) {
    if (n < off + 4) return 0;
    memcpy(h->mask, p + off, 4);
    off += 4;
  }
  h->len = len;
  h->header_len = off;
  return 1;
}

void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset) {
  size_t i = 0;
  unsigned k = (unsigned)(offset & 3);
  /* align to the mask period, then work a word at a time */
  while (i < n && k != 0) {
    p[i++] ^= mask[k];
    k = (k + 1) & 3;
  }
  uint32_t m32;
  memcpy(&m32, mask, 4);
  uint64_t m64 = (uint64_t)m32 << 32 | m32;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m64;
    memcpy(p + i, &v, 8);
  }
  for (k = 0; i < n; i++, k++) p[i] ^= mask[k & 3];
}

size_t ws_write_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask) {
  size_t o = 0;
  out[o++] = (uint8_t)(0x80 | (opcode & 0x0f));
  uint8_t mbit = mask ? 0x80 : 0;
  if (len < 126) {
    out[o++] = (uint8_t)(mbit | len);
  } else if (len < 65536) {
    out[o++] = mbit | 126;
    out[o++] = (uint8_t)(len >> 8);
    out[o++] = (uint8_t)len;
  } else {
    out[o++] = mbit | 127;
    for (int i = 7; i >= 0; i--) out[o++] = (uint8_t)(len >> (8 * i));
  }
  if (mask) {
    memcpy(out + o, mask, 4);
    o += 4;
  }
  return o;
}

void ws_accept_key(const char *key, size_t keylen, char out[29]) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  char tmp[128 + sizeof guid];
  if (keylen > 128) keylen = 128;
  memcpy(tmp, key, keylen);
  memcpy(tmp + keylen, guid, sizeof guid - 1);
  uint8_t digest[20];
  sha1(tmp, keylen + sizeof guid - 1, digest);
  size_t n = base64_encode(digest, 20, out);
  out[n] = 0;
}
