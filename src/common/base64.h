/* base64.h — standard (RFC 4648 §4, '=' padded) and URL-safe unpadded base64.
 * Standard base64 carries lc.proto2base64 frames and binary message content in history;
 * the URL-safe form makes message ids that are safe inside REST paths. */
#ifndef TERN_BASE64_H
#define TERN_BASE64_H

#include <stddef.h>
#include <stdint.h>

size_t base64_encoded_len(size_t n); /* padded length, without NUL */
/* Writes base64_encoded_len(n) chars to out (no NUL). Returns that length. */
size_t base64_encode(const uint8_t *in, size_t n, char *out);
/* URL-safe alphabet, no padding. Returns chars written. */
size_t base64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes standard or URL-safe base64, padding optional; whitespace is an error.
 * out must hold (n/4+1)*3 bytes. Returns decoded length, or TERN_EINVAL. */
long base64_decode(const char *in, size_t n, uint8_t *out);

#endif
