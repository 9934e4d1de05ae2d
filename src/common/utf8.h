/* utf8.h — counting characters and checking client ids. Client ids are limited to 64
 * *characters* (protocol.md §9.1), and ids in Chinese or with emoji are normal in IM apps,
 * so byte lengths won't do. */
#ifndef TERN_UTF8_H
#define TERN_UTF8_H

#include <stddef.h>

#include "buf.h"

/* Number of code points in a NUL-terminated string (invalid bytes count as one each). */
size_t utf8_chars(const char *s);
/* 1 if s[0..len) is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF), else 0. Message text must be: JSON cannot carry anything else. */
int utf8_valid(const char *s, size_t len);
/* Length (1–4) of the well-formed sequence at s[0..len), or 0 if none starts there (or
 * len is 0): the one UTF-8 decoder every check here and the importer's scanner use. */
size_t utf8_seq_len(const char *s, size_t len);
/* Writes code point cp (≤ U+10FFFF, not a surrogate: the caller checked) as 1–4 bytes at w;
 * returns the byte after them. */
char *utf8_put(char *w, unsigned cp);
/* Appends s[0..len) to out with every ill-formed sequence replaced by U+FFFD (the
 * Unicode "maximal subpart" practice), so text that must become JSON never disappears. */
void utf8_sanitize(const char *s, size_t len, buf_t *out);

/* 1 when s (NUL-terminated, may be NULL) is an acceptable client id, else 0: valid UTF-8
 * (shortest form, no surrogates, nothing above U+10FFFF), 1 to 64 code points, and no
 * control character (U+0000–U+001F, U+007F). Ids are compared, hashed and framed as they
 * are, so anything that could make two lists of ids read alike is refused here. Reads at
 * most 64 × 4 + 1 bytes of s, so a huge id costs nothing to refuse. */
int utf8_client_id_ok(const char *s);

#define UTF8_CLIENT_ID_MAX 64 /* characters */

#endif
