/* fuzz_imgsize.c — image dimensions from uploaded bytes (imgsize.c), the one parser the
 * file endpoint runs on every upload.
 *
 * Input: any bytes, parsed from an exact-size copy so ASan sees a read past the end.
 * Checks, besides the sanitizers: a success has positive dimensions and a known format,
 * and no prefix of the input gives a different answer (a prefix can only be refused, or,
 * when the size was complete in it, say the same). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "imgsize.h"

static int parse_copy(const uint8_t *data, size_t n, imgsize_t *im) {
  uint8_t *p = malloc(n ? n : 1);
  memcpy(p, data, n);
  int rc = imgsize_parse(p, n, im);
  free(p);
  return rc;
}

static void fail(const char *why) {
  fprintf(stderr, "fuzz_imgsize: %s\n", why);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  imgsize_t im;
  if (parse_copy(data, size, &im) != 0) return 0;
  if (im.width <= 0 || im.height <= 0) fail("a size that is not positive");
  static const char *formats[] = {"png", "jpeg", "gif", "webp", "bmp"};
  int known = 0;
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) known |= strcmp(im.format, formats[i]) == 0;
  if (!known) fail("an unknown format name");
  for (size_t k = size > 4096 ? size - 4096 : 0; k < size; k++) {
    imgsize_t pre;
    if (parse_copy(data, k, &pre) == 0 &&
        (pre.width != im.width || pre.height != im.height || strcmp(pre.format, im.format)))
      fail("a prefix of the input gave another size");
  }
  return 0;
}
