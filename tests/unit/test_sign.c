/* test_sign.c — the nonce replay cache of sign.c (sign_nonce_fresh), now on the common map:
 * a nonce is fresh once and refused after, across the prunes the cache makes as it grows,
 * and nonces with the same FNV-1a hash (what the cache used before) are told apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "err.h"
#include "sign.h"

static void test_replay(void **state) {
  (void)state;
  signer_t *sg = signer_new("app", "key", 300);
  assert_int_equal(sign_nonce_fresh(sg, "n1"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "n1"), TERN_EEXIST);
  assert_int_equal(sign_nonce_fresh(sg, "n2"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "n1"), TERN_EEXIST);
  signer_free(sg);
}

/* 20,000 nonces: the cache passes its prune mark (1024, then twice the live count) several
 * times; within the window nothing expires, so every one is still refused afterwards. */
static void test_many(void **state) {
  (void)state;
  enum { N = 20000 };
  signer_t *sg = signer_new("app", "key", 300);
  char k[32];
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof k, "nonce-%d", i);
    assert_int_equal(sign_nonce_fresh(sg, k), 0);
  }
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof k, "nonce-%d", i);
    assert_int_equal(sign_nonce_fresh(sg, k), TERN_EEXIST);
  }
  signer_free(sg);
}

/* "costarring" and "liquid" collide under 32-bit FNV-1a; so do "declinate" and "macallums". */
static void test_fnv_collisions(void **state) {
  (void)state;
  signer_t *sg = signer_new("app", "key", 300);
  assert_int_equal(sign_nonce_fresh(sg, "costarring"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "liquid"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "declinate"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "macallums"), 0);
  assert_int_equal(sign_nonce_fresh(sg, "liquid"), TERN_EEXIST);
  assert_int_equal(sign_nonce_fresh(sg, "macallums"), TERN_EEXIST);
  signer_free(sg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replay),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_fnv_collisions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
