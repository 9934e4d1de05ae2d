/* test_files.c — the pure and blocking halves of the file endpoint: image dimensions
 * (imgsize.c) for every format and every truncation, Range headers (http.c), and the
 * local storage (files.c) in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "files.h"
#include "http.h"
#include "imgsize.h"

/* 3×2 PNG: signature and IHDR (the rest of the file does not matter to the parser). */
static const uint8_t PNG[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
                              'R',  0,   0,   0,   3,    0,    0,    0,    2, 8, 2, 0,  0,   0};
/* JPEG 640×480: SOI, an APP0 segment to skip, fill bytes, then SOF2. */
static const uint8_t JPEG[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 6,    'J',  'F',  'I', 'F', 0xFF, 0xFF,
                               0xC2, 0,    11,   8,    1, 0xE0, 0x02, 0x80, 3,   1,   0x22, 0};
/* GIF 5×7 */
static const uint8_t GIF[] = {'G', 'I', 'F', '8', '9', 'a', 5, 0, 7, 0, 0, 0, 0};
/* WebP lossy 300×200, lossless 17×9, extended 1000×800 */
static const uint8_t WEBP_VP8[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W',  'E',  'B',  'P',  'V',  'P',  '8',
                                   ' ', 0,   0,   0,   0, 0, 0, 0, 0x9d, 0x01, 0x2a, 0x2c, 0x01, 0xc8, 0x00};
static const uint8_t WEBP_VP8L[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0,    'W',  'E',  'B',  'P', 'V',
                                    'P', '8', 'L', 0,   0, 0, 0, 0x2f, 0x10, 0x00, 0x02, 0x00};
static const uint8_t WEBP_VP8X[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E',  'B',  'P',  'V',  'P',  '8',
                                    'X', 0,   0,   0,   0, 0, 0, 0, 0,   0xe7, 0x03, 0x00, 0x1f, 0x03, 0x00};
/* BMP 4×-3 (top-down) with a BITMAPINFOHEADER, and an OS/2 core-header one 6×2 */
static const uint8_t BMP[] = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0,    0,    0,    0,
                              0,   40,  0, 0, 0, 4, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff};
static const uint8_t BMP_CORE[] = {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 6, 0, 2, 0, 1, 0, 24, 0};

static const struct {
  const uint8_t *p;
  size_t n;
  long w, h;
  const char *format;
} IMAGES[] = {
    {PNG, sizeof PNG, 3, 2, "png"},
    {JPEG, sizeof JPEG, 640, 480, "jpeg"},
    {GIF, sizeof GIF, 5, 7, "gif"},
    {WEBP_VP8, sizeof WEBP_VP8, 300, 200, "webp"},
    {WEBP_VP8L, sizeof WEBP_VP8L, 17, 9, "webp"},
    {WEBP_VP8X, sizeof WEBP_VP8X, 1000, 800, "webp"},
    {BMP, sizeof BMP, 4, 3, "bmp"},
    {BMP_CORE, sizeof BMP_CORE, 6, 2, "bmp"},
};

static void test_imgsize_formats(void **state) {
  for (size_t i = 0; i < sizeof IMAGES / sizeof IMAGES[0]; i++) {
    imgsize_t im;
    assert_int_equal(imgsize_parse(IMAGES[i].p, IMAGES[i].n, &im), 0);
    assert_int_equal(im.width, IMAGES[i].w);
    assert_int_equal(im.height, IMAGES[i].h);
    assert_string_equal(im.format, IMAGES[i].format);
  }
}

/* Every prefix either is refused or gives the full answer (never a size read from past
 * its end): each one is parsed from an exact-size heap copy, so ASan sees any overread. */
static void test_imgsize_truncated(void **state) {
  for (size_t i = 0; i < sizeof IMAGES / sizeof IMAGES[0]; i++) {
    for (size_t k = 0; k < IMAGES[i].n; k++) {
      uint8_t *copy = malloc(k ? k : 1);
      memcpy(copy, IMAGES[i].p, k);
      imgsize_t im;
      if (imgsize_parse(copy, k, &im) == 0) {
        assert_int_equal(im.width, IMAGES[i].w);
        assert_int_equal(im.height, IMAGES[i].h);
      }
      free(copy);
    }
  }
}

static void test_imgsize_refuses(void **state) {
  imgsize_t im;
  assert_int_equal(imgsize_parse((const uint8_t *)"hello world, not an image", 25, &im), TERN_EINVAL);
  assert_int_equal(imgsize_parse(NULL, 0, &im), TERN_EINVAL);
  uint8_t zero[sizeof PNG];
  memcpy(zero, PNG, sizeof PNG);
  zero[19] = 0; /* width 0 */
  assert_int_equal(imgsize_parse(zero, sizeof zero, &im), TERN_EINVAL);
  /* JPEG: SOS before any frame header, and a segment length running past the end */
  static const uint8_t sos[] = {0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 0, 0, 0, 0, 0, 0};
  assert_int_equal(imgsize_parse(sos, sizeof sos, &im), TERN_EINVAL);
  static const uint8_t longseg[] = {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0};
  assert_int_equal(imgsize_parse(longseg, sizeof longseg, &im), TERN_EINVAL);
  static const uint8_t shortlen[] = {0xFF, 0xD8, 0xFF, 0xE1, 0, 1, 0xFF, 0xC0, 0, 11, 8, 0, 1, 0, 1};
  assert_int_equal(imgsize_parse(shortlen, sizeof shortlen, &im), TERN_EINVAL);
  /* BMP whose height is INT32_MIN */
  uint8_t bmp[sizeof BMP];
  memcpy(bmp, BMP, sizeof BMP);
  bmp[22] = 0, bmp[23] = 0, bmp[24] = 0, bmp[25] = 0x80;
  assert_int_equal(imgsize_parse(bmp, sizeof bmp, &im), TERN_EINVAL);
}

static void test_range(void **state) {
  static const struct {
    const char *h;
    int64_t size;
    int rc;
    int64_t first, last;
  } cases[] = {
      {NULL, 10, 0, 0, 0},
      {"bytes=0-4", 10, 1, 0, 4},
      {"bytes=2-", 10, 1, 2, 9},
      {"bytes=-3", 10, 1, 7, 9},
      {"bytes=-30", 10, 1, 0, 9},
      {"bytes=5-100", 10, 1, 5, 9},
      {"BYTES=1-1", 10, 1, 1, 1},
      {"bytes=9-9", 10, 1, 9, 9},
      {"bytes=10-", 10, -1, 0, 0},
      {"bytes=10-20", 10, -1, 0, 0},
      {"bytes=-0", 10, -1, 0, 0},
      {"bytes=-5", 0, -1, 0, 0},
      {"bytes=0-", 0, -1, 0, 0},
      {"bytes=4-2", 10, 0, 0, 0},     /* not a range: ignored */
      {"bytes=0-1,3-4", 10, 0, 0, 0}, /* several: whole body */
      {"items=0-1", 10, 0, 0, 0},
      {"bytes=", 10, 0, 0, 0},
      {"bytes=-", 10, 0, 0, 0},
      {"bytes=a-b", 10, 0, 0, 0},
      {"bytes=1234567890123456789-", 10, 0, 0, 0}, /* 19 digits: ignored, not overflowed */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int64_t a = -1, b = -1;
    int rc = http_parse_range(cases[i].h, cases[i].size, &a, &b);
    if (rc != cases[i].rc)
      fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].h ? cases[i].h : "NULL", rc, cases[i].rc);
    if (rc == 1) {
      assert_int_equal(a, cases[i].first);
      assert_int_equal(b, cases[i].last);
    }
  }
}

static void test_storage(void **state) {
  char dir[] = "/tmp/tern-files-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char sub[64];
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  files_t *f;
  assert_int_equal(files_open(sub, &f), 0); /* parents are created */
  char id[FILES_ID_LEN + 1];
  files_new_id(id);
  assert_true(files_valid_id(id));
  assert_false(files_valid_id("../../etc/passwd"));
  assert_false(files_valid_id("0123456789ABCDEF01234567")); /* upper case is not ours */
  assert_false(files_valid_id("0123456789abcdef0123456"));
  assert_false(files_valid_id("0123456789abcdef012345678"));

  json_t *meta = json_pack("{s:s, s:s}", "objectId", id, "name", "x.bin");
  assert_int_equal(files_put(f, id, "abc", 3, meta), 0);
  json_decref(meta);
  json_t *got = NULL;
  assert_int_equal(files_get_meta(f, id, &got), 0);
  assert_string_equal(json_string_value(json_object_get(got, "name")), "x.bin");
  json_decref(got);
  int fd;
  int64_t size;
  assert_int_equal(files_open_data(f, id, &fd, &size), 0);
  assert_int_equal(size, 3);
  char b[4] = {0};
  assert_int_equal(read(fd, b, 3), 3);
  assert_string_equal(b, "abc");
  close(fd);
  assert_int_equal(files_delete(f, id), 0);
  assert_int_equal(files_delete(f, id), TERN_ENOENT);
  assert_int_equal(files_get_meta(f, id, &got), TERN_ENOENT);
  assert_int_equal(files_open_data(f, id, &fd, &size), TERN_ENOENT);
  assert_int_equal(files_get_meta(f, "nope", &got), TERN_ENOENT);
  /* a deleted id is never stored again (an upload token names it for an hour) */
  meta = json_pack("{s:s}", "name", "again.bin");
  assert_int_equal(files_put(f, id, "xyz", 3, meta), TERN_EEXIST);
  assert_int_equal(files_open_data(f, id, &fd, &size), TERN_ENOENT);
  /* nor one deleted before it was ever stored (an upload given up before its bytes came) */
  char id2[FILES_ID_LEN + 1];
  files_new_id(id2);
  assert_int_equal(files_delete(f, id2), TERN_ENOENT);
  assert_int_equal(files_put(f, id2, "xyz", 3, meta), TERN_EEXIST);
  json_decref(meta);
  files_free(f);
  files_free(NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Upload slots: per address and in all, 0 meaning no limit; a release frees both. */
static void test_slots(void **state) {
  char dir[] = "/tmp/tern-files-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  files_t *f;
  assert_int_equal(files_open(dir, &f), 0);
  files_slot_t *a1, *a2, *b1, *x;
  long in_use, refused;
  assert_int_equal(files_slot_take(f, "10.0.0.1", 2, 3, &a1), 0);
  assert_int_equal(files_slot_take(f, "10.0.0.1", 2, 3, &a2), 0);
  assert_int_equal(files_slot_take(f, "10.0.0.1", 2, 3, &x), TERN_EAGAIN); /* that address is full */
  assert_int_equal(files_slot_take(f, "10.0.0.2", 2, 3, &b1), 0);
  assert_int_equal(files_slot_take(f, "10.0.0.3", 2, 3, &x), TERN_E2BIG); /* the server is full */
  files_slot_stats(f, &in_use, &refused);
  assert_int_equal(in_use, 3);
  assert_int_equal(refused, 2);
  files_slot_release(a1);
  assert_int_equal(files_slot_take(f, "10.0.0.3", 2, 3, &x), 0);
  files_slot_release(x);
  assert_int_equal(files_slot_take(f, "10.0.0.1", 2, 3, &a1), 0); /* its address has room again */
  files_slot_release(a1);
  files_slot_release(a2);
  files_slot_release(b1);
  files_slot_release(NULL);
  files_slot_stats(f, &in_use, &refused);
  assert_int_equal(in_use, 0);
  files_slot_t *many[100]; /* limits of 0: none */
  for (int i = 0; i < 100; i++) assert_int_equal(files_slot_take(f, "10.0.0.9", 0, 0, &many[i]), 0);
  for (int i = 0; i < 100; i++) files_slot_release(many[i]);
  files_free(f);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_imgsize_formats), cmocka_unit_test(test_imgsize_truncated),
      cmocka_unit_test(test_imgsize_refuses), cmocka_unit_test(test_range),
      cmocka_unit_test(test_storage),         cmocka_unit_test(test_slots),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
