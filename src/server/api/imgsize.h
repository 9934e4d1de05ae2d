/* imgsize.h — width and height from the first bytes of an image, for file metadata.
 *
 * Uploaded files are untrusted: the parser reads only inside the buffer it is given,
 * never allocates, and every loop advances, so any input ends in a result or a refusal
 * (fuzzed by tests/fuzz/fuzz_imgsize.c). */
#ifndef TERN_IMGSIZE_H
#define TERN_IMGSIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  long width, height;
  const char *format; /* "png", "jpeg", "gif", "webp" or "bmp" (static) */
} imgsize_t;

/* Recognises PNG, JPEG (its first SOFn frame header), GIF, WebP (VP8, VP8L and VP8X) and
 * BMP. Returns 0 with *out filled (both dimensions > 0), or TERN_EINVAL when the bytes are
 * not an image of those kinds, or are cut short before the dimensions. */
int imgsize_parse(const uint8_t *p, size_t n, imgsize_t *out);

#endif
