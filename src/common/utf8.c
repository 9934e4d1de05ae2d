/* utf8.c — see utf8.h. */
#include "utf8.h"

size_t utf8_chars(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++; /* every byte but continuation bytes starts a character */
  return n;
}
