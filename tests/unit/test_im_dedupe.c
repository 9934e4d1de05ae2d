/* test_im_dedupe.c — what the store keeps of a message's dt (im_dedupe.c: im_dt_hash).
 *
 * The hash is stored (SQLite msg.dt, PostgreSQL msg.dt) and compared by every node, so it
 * must never change: these are FNV-1a-64's published values (the FNV test suite: "a",
 * "foobar"). A dt that is absent, empty, over IM_DT_MAX bytes or not UTF-8 is not kept (0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "im_internal.h"

static void hash_is_fnv1a_64(void **state) {
  (void)state;
  assert_true((uint64_t)im_dt_hash("a") == 0xaf63dc4c8601ec8cULL);
  assert_true((uint64_t)im_dt_hash("foobar") == 0x85944171f73967e8ULL);
  /* the JS SDK's dt: a uuid */
  assert_true((uint64_t)im_dt_hash("3b1c1e9c-5e7b-4b7e-9a57-0c9d8e2f6a11") == 0x04034aba429e95fbULL);
  assert_true((uint64_t)im_dt_hash("\xc3\xa9") == 0x0ac21707b7181e01ULL); /* é, UTF-8 */
}

static void unusable_dt_is_not_kept(void **state) {
  (void)state;
  assert_true(im_dt_hash(NULL) == 0);
  assert_true(im_dt_hash("") == 0);
  char s[IM_DT_MAX + 2];
  memset(s, 'd', sizeof s);
  s[IM_DT_MAX] = 0;
  assert_true(im_dt_hash(s) != 0); /* at the cap */
  s[IM_DT_MAX] = 'd';
  s[IM_DT_MAX + 1] = 0;
  assert_true(im_dt_hash(s) == 0); /* one past it */
  assert_true(im_dt_hash("ab\xff") == 0); /* not UTF-8: as the SDKs never send it */
  assert_true(im_dt_hash("\xc3") == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hash_is_fnv1a_64),
      cmocka_unit_test(unusable_dt_is_not_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
