/* test_ipcount.c — connections and queued output per peer address (ipcount.c): the
 * max_conns_per_ip count, the entry a connection holds, and the record of the address's
 * largest queue that lets the worker noticing output_limit_ip leave the drop to the worker
 * holding that queue. */
#include <pthread.h>
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

/* Taking bytes off the sum only while it is over the cap: the check and the take are one
 * step, so of two workers that both saw the address over its cap, the second drops
 * nothing when the first drop brought it under (held-budget.test.mjs once saw all four
 * held connections of an address dropped where three were enough). */
static void test_shed(void **state) {
  ipcount_t *t = ipcount_new();
  ipcount_entry_t *e = ipcount_add(t, "192.0.2.7", 0);
  ipcount_out_add(e, 120);
  assert_int_equal(ipcount_out_shed(e, 100, 30), 1); /* 120 > 100: taken */
  assert_int_equal(ipcount_out(e), 90);
  assert_int_equal(ipcount_out_shed(e, 100, 30), 0); /* under: nothing changes */
  assert_int_equal(ipcount_out(e), 90);
  assert_int_equal(ipcount_out_shed(e, 90, 10), 0); /* at the cap is not over it */
  ipcount_out_add(e, -90);
  ipcount_del(t, e);
  ipcount_free(t);
}

typedef struct {
  ipcount_entry_t *e;
  pthread_barrier_t *go;
  int rounds, taken;
} racer_t;

static void *racer(void *arg) {
  racer_t *r = arg;
  for (int k = 0; k < r->rounds; k++) {
    pthread_barrier_wait(&r->go[0]); /* the sum is 110 over a cap of 100 */
    r->taken += ipcount_out_shed(r->e, 100, 30);
    pthread_barrier_wait(&r->go[1]);
    pthread_barrier_wait(&r->go[2]); /* reset by the main thread */
  }
  return NULL;
}

static void test_shed_race(void **state) {
  ipcount_t *t = ipcount_new();
  ipcount_entry_t *e = ipcount_add(t, "192.0.2.8", 0);
  enum { THREADS = 2, ROUNDS = 2000 };
  pthread_barrier_t go[3];
  for (int i = 0; i < 3; i++) pthread_barrier_init(&go[i], NULL, THREADS + 1);
  racer_t r[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    r[i] = (racer_t){.e = e, .go = go, .rounds = ROUNDS};
    pthread_create(&th[i], NULL, racer, &r[i]);
  }
  for (int k = 0; k < ROUNDS; k++) {
    ipcount_out_add(e, 110 - ipcount_out(e));
    pthread_barrier_wait(&go[0]);
    pthread_barrier_wait(&go[1]);
    assert_int_equal(ipcount_out(e), 80); /* exactly one take, whichever came first */
    pthread_barrier_wait(&go[2]);
  }
  int taken = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    taken += r[i].taken;
  }
  assert_int_equal(taken, ROUNDS);
  for (int i = 0; i < 3; i++) pthread_barrier_destroy(&go[i]);
  ipcount_out_add(e, -80);
  ipcount_del(t, e);
  ipcount_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_count), cmocka_unit_test(test_out),       cmocka_unit_test(test_top),
      cmocka_unit_test(test_shed),  cmocka_unit_test(test_shed_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
