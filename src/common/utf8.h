/* utf8.h — counting characters. Client ids are limited to 64 *characters* (protocol.md
 * §9.1), and ids in Chinese or with emoji are normal in IM apps, so byte lengths won't do. */
#ifndef TERN_UTF8_H
#define TERN_UTF8_H

#include <stddef.h>

#include "buf.h"

/* Number of code points in a NUL-terminated string (invalid bytes count as one each). */
size_t utf8_chars(const char *s);
/* 1 if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), else 0. Message text must be: JSON cannot carry anything else. */
int utf8_valid(const char *s, size_t len);
/* Appends s[0..len) to out with every ill-formed sequence replaced by U+FFFD (the
 * Unicode "maximal subpart" practice), so text that must become JSON never disappears. */
void utf8_sanitize(const char *s, size_t len, buf_t *out);

#endif
