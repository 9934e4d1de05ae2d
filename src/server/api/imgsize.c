/* imgsize.c — image dimensions from file headers (see imgsize.h).
 *
 * Each format is a fixed-offset read after a signature check, except JPEG, whose frame
 * header (SOFn) comes after a run of variable-length segments: that walk checks every
 * length against the buffer and moves forward by at least two bytes per step. */
#include "imgsize.h"

#include <string.h>

#include "err.h"

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le16(const uint8_t *p) { return (uint32_t)p[1] << 8 | p[0]; }
static uint32_t le24(const uint8_t *p) { return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }
static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int found(imgsize_t *out, const char *format, long w, long h) {
  if (w <= 0 || h <= 0) return TERN_EINVAL;
  out->width = w;
  out->height = h;
  out->format = format;
  return 0;
}

/* PNG: the signature, then the IHDR chunk with width and height (big-endian, < 2^31). */
static int png(const uint8_t *p, size_t n, imgsize_t *out) {
  if (n < 24 || memcmp(p + 12, "IHDR", 4) != 0) return TERN_EINVAL;
  uint32_t w = be32(p + 16), h = be32(p + 20);
  if (w > 0x7fffffff || h > 0x7fffffff) return TERN_EINVAL;
  return found(out, "png", (long)w, (long)h);
}

/* JPEG: segments FF xx [len16 payload] until a start-of-frame marker, whose payload is
 * precision, height, width. SOS ends the headers: no frame header before it, no size. */
static int jpeg(const uint8_t *p, size_t n, imgsize_t *out) {
  size_t i = 2;
  for (;;) {
    if (i >= n || p[i] != 0xFF) return TERN_EINVAL;
    while (i < n && p[i] == 0xFF) i++; /* fill bytes before a marker */
    if (i >= n) return TERN_EINVAL;
    uint8_t m = p[i++];
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue; /* TEM, RSTn, SOI: no length */
    if (m == 0xD9 || m == 0xDA) return TERN_EINVAL;      /* EOI, SOS */
    if (n - i < 2) return TERN_EINVAL;
    size_t len = be16(p + i);
    if (len < 2) return TERN_EINVAL;
    /* SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range */
    if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
      if (len < 7 || n - i < 7) return TERN_EINVAL;
      return found(out, "jpeg", (long)be16(p + i + 5), (long)be16(p + i + 3));
    }
    if (n - i < len) return TERN_EINVAL;
    i += len;
  }
}

/* GIF: the logical screen descriptor right after the signature (little-endian). */
static int gif(const uint8_t *p, size_t n, imgsize_t *out) {
  if (n < 10) return TERN_EINVAL;
  return found(out, "gif", (long)le16(p + 6), (long)le16(p + 8));
}

/* WebP: RIFF "WEBP", then the first chunk says which bitstream follows. */
static int webp(const uint8_t *p, size_t n, imgsize_t *out) {
  if (n < 30 && !(n >= 25 && memcmp(p + 12, "VP8L", 4) == 0)) return TERN_EINVAL;
  if (memcmp(p + 12, "VP8 ", 4) == 0) { /* lossy: a key frame's start code, then 14-bit sizes */
    if (p[23] != 0x9d || p[24] != 0x01 || p[25] != 0x2a) return TERN_EINVAL;
    return found(out, "webp", (long)(le16(p + 26) & 0x3fff), (long)(le16(p + 28) & 0x3fff));
  }
  if (memcmp(p + 12, "VP8L", 4) == 0) { /* lossless: signature 0x2f, then 14 bits each of w-1, h-1 */
    if (p[20] != 0x2f) return TERN_EINVAL;
    uint32_t b = le32(p + 21);
    return found(out, "webp", (long)(b & 0x3fff) + 1, (long)((b >> 14) & 0x3fff) + 1);
  }
  if (memcmp(p + 12, "VP8X", 4) == 0) /* extended: 24-bit canvas width-1 and height-1 */
    return found(out, "webp", (long)le24(p + 24) + 1, (long)le24(p + 27) + 1);
  return TERN_EINVAL;
}

/* BMP: the file header, then a DIB header whose size says its kind: the old OS/2 core
 * header has 16-bit sizes, the others signed 32-bit ones (a negative height is top-down). */
static int bmp(const uint8_t *p, size_t n, imgsize_t *out) {
  if (n < 26) return TERN_EINVAL;
  uint32_t dib = le32(p + 14);
  if (dib == 12) return found(out, "bmp", (long)le16(p + 18), (long)le16(p + 20));
  if (dib < 40) return TERN_EINVAL;
  int32_t w = (int32_t)le32(p + 18), h = (int32_t)le32(p + 22);
  if (h == INT32_MIN) return TERN_EINVAL;
  return found(out, "bmp", (long)w, (long)(h < 0 ? -h : h));
}

int imgsize_parse(const uint8_t *p, size_t n, imgsize_t *out) {
  if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return png(p, n, out);
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return jpeg(p, n, out);
  if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) return gif(p, n, out);
  if (n >= 16 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0) return webp(p, n, out);
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return bmp(p, n, out);
  return TERN_EINVAL;
}
