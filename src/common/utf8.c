/* utf8.c — see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++; /* every byte but continuation bytes starts a character */
  return n;
}

size_t utf8_seq_len(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  if (!len) return 0;
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F; /* no surrogates */
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else if (c == 0xF4) n = 4, hi = 0x8F; /* nothing above U+10FFFF */
  else return 0;
  if (len < n || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return n;
}

int utf8_valid(const char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t n = utf8_seq_len(s + i, len - i);
    if (!n) return 0;
    i += n;
  }
  return 1;
}

void utf8_sanitize(const char *s, size_t len, buf_t *out) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, run = 0; /* run: start of the pending well-formed stretch */
  while (i < len) {
    size_t n = utf8_seq_len(s + i, len - i);
    if (n) {
      i += n;
      continue;
    }
    buf_append(out, s + run, i - run);
    buf_append(out, "\xEF\xBF\xBD", 3);
    i++; /* one replacement per ill-formed byte: simple, and never loses a valid neighbour */
    while (i < len && (p[i] & 0xC0) == 0x80 && !utf8_seq_len(s + i, len - i)) i++; /* its stray continuation bytes */
    run = i;
  }
  buf_append(out, s + run, len - run);
}

char *utf8_put(char *w, unsigned cp) {
  if (cp < 0x80) {
    *w++ = (char)cp;
  } else if (cp < 0x800) {
    *w++ = (char)(0xC0 | (cp >> 6));
    *w++ = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *w++ = (char)(0xE0 | (cp >> 12));
    *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *w++ = (char)(0x80 | (cp & 0x3F));
  } else {
    *w++ = (char)(0xF0 | (cp >> 18));
    *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
    *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
    *w++ = (char)(0x80 | (cp & 0x3F));
  }
  return w;
}

int utf8_client_id_ok(const char *s) {
  if (!s || !*s) return 0;
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s), n = 0;
  for (size_t i = 0; i < len;) {
    size_t k = utf8_seq_len(s + i, len - i);
    if (!k || (k == 1 && (p[i] < 0x20 || p[i] == 0x7F)) || ++n > UTF8_CLIENT_ID_MAX) return 0;
    i += k;
  }
  return 1;
}
