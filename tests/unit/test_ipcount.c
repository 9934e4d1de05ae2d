/* test_ipcount.c — connections and queued output per peer address (ipcount.c): the
 * max_conns_per_ip count, the entry a connection holds, and the record of the address's
 * largest queue that lets the worker noticing output_limit_ip leave the drop to the worker
 * holding that queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ipcount.h"

static void test_count(void **state) {
  ipcount_t *t = ipcount_new();
  ipcount_entry_t *a = ipcount_add(t, "10.0.0.1", 2);
  ipcount_entry_t *b = ipcount_add(t, "10.0.0.1", 2);
  assert_non_null(a);
  assert_ptr_equal(a, b);                     /* one entry per address */
  assert_null(ipcount_add(t, "10.0.0.1", 2)); /* past the limit: refused, nothing counted */
  assert_non_null(ipcount_add(t, "10.0.0.2", 2));
  ipcount_del(t, a);
  ipcount_entry_t *c = ipcount_add(t, "10.0.0.1", 2); /* a slot again */
  assert_ptr_equal(c, b);
  for (int k = 0; k < 100; k++) assert_non_null(ipcount_add(t, "10.0.0.3", 0)); /* limit 0: none */
  ipcount_free(t);
}

static void test_out(void **state) {
  ipcount_t *t = ipcount_new();
  ipcount_entry_t *e = ipcount_add(t, "::1", 0);
  assert_int_equal(ipcount_out_add(e, 1000), 1000);
  assert_int_equal(ipcount_out_add(e, 500), 1500);
  assert_int_equal(ipcount_out_add(e, -1200), 300);
  assert_int_equal(ipcount_out(e), 300);
  ipcount_del(t, e);
  ipcount_free(t);
}

static void test_top(void **state) {
  ipcount_t *t = ipcount_new();
  ipcount_entry_t *e = ipcount_add(t, "192.0.2.9", 0);
  size_t q;
  int w;
  ipcount_top(e, &q, &w);
  assert_int_equal(w, -1);           /* none known */
  ipcount_top_update(e, 0, 5000, 1); /* worker 1's queue grows to 5000: the record */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 5000);
  assert_int_equal(w, 1);
  ipcount_top_update(e, 0, 3000, 0); /* worker 0's smaller queue changes nothing */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 5000);
  assert_int_equal(w, 1);
  ipcount_top_update(e, 3000, 1000, 0); /* nor does it shrinking */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 5000);
  ipcount_top_update(e, 5000, 4000, 1); /* the record's queue shrinks: the record follows */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 4000);
  assert_int_equal(w, 1);
  ipcount_top_update(e, 1000, 6000, 0); /* overtaken */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 6000);
  assert_int_equal(w, 0);
  ipcount_top_update(e, 6000, 0, 0); /* the record's queue goes: none known */
  ipcount_top(e, &q, &w);
  assert_int_equal(q, 0);
  assert_int_equal(w, -1);
  ipcount_del(t, e);
  ipcount_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_count),
      cmocka_unit_test(test_out),
      cmocka_unit_test(test_top),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
