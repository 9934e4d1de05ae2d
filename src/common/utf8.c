/* utf8.c — see utf8.h. */
#include "utf8.h"

#include <stdint.h>

size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++; /* every byte but continuation bytes starts a character */
  return n;
}

/* Decodes one code point at s; returns its length in bytes, or 0 when the bytes there are
 * not well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). A
 * NUL ends the input, so a truncated sequence is refused at its terminator. */
static size_t decode(const unsigned char *s, uint32_t *cp) {
  unsigned char c = s[0];
  size_t len;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0; /* a continuation byte, C0/C1 (always overlong) or F5..FF */
  }
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = v << 6 | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return len;
}

int utf8_client_id_ok(const char *s) {
  if (!s || !*s) return 0;
  const unsigned char *p = (const unsigned char *)s;
  size_t n = 0;
  while (*p) {
    uint32_t cp;
    size_t len = decode(p, &cp);
    if (!len || cp < 0x20 || cp == 0x7F || ++n > UTF8_CLIENT_ID_MAX) return 0;
    p += len;
  }
  return 1;
}
