/* sbuf.c — the SDK's byte buffer (see sbuf.h for why it is not buf.c). */
#include "sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/error.h"

int sbuf_reserve(sbuf_t *b, size_t extra) {
  if (b->len + extra <= b->cap) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return TERN_ENOMEM;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra) cap *= 2;
  uint8_t *d = realloc(b->data, cap);
  if (!d) return TERN_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int sbuf_append(sbuf_t *b, const void *p, size_t n) {
  if (!n) return 0;
  if (sbuf_reserve(b, n) < 0) return TERN_ENOMEM;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int sbuf_append_str(sbuf_t *b, const char *s) { return sbuf_append(b, s, strlen(s)); }

int sbuf_printf(sbuf_t *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || sbuf_reserve(b, (size_t)n + 1) < 0) return TERN_ENOMEM;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void sbuf_consume(sbuf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void sbuf_free(sbuf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *sbuf_cstr(sbuf_t *b) {
  if (sbuf_reserve(b, 1) < 0) return NULL;
  b->data[b->len] = 0;
  return (char *)b->data;
}

int sbuf_pack(sbuf_t *b, const lc_cmd_t *cmd) {
  size_t n = lc__generic_command__get_packed_size(cmd);
  if (sbuf_reserve(b, n) < 0) return TERN_ENOMEM;
  lc__generic_command__pack(cmd, b->data + b->len);
  b->len += n;
  return 0;
}
