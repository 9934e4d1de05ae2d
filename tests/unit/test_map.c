/* test_map.c — the one hash map (src/common/map.c): insert, find, delete, growth through many
 * resizes, deletion during iteration, keys sharing a bucket, keys with NUL bytes, and that
 * keys crafted to collide under the FNV-1a hash the tables used before do not pile up in one
 * bucket of the keyed map. Leaks fail the run under ASan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "map.h"

typedef struct {
  map_node_t node;
  int val;
  size_t len;
  char key[];
} ent_t;

static ent_t *ent_new(const void *key, size_t len, int val) {
  ent_t *e = xcalloc(1, sizeof *e + len + 1);
  memcpy(e->key, key, len);
  e->len = len;
  e->val = val;
  e->node.key = e->key;
  e->node.klen = (uint32_t)len;
  return e;
}

static ent_t *get(map_t *m, const void *key, size_t len) {
  map_node_t *n = map_find(m, key, len);
  return n ? MAP_ENTRY(n, ent_t, node) : NULL;
}

static void drain(map_t *m) {
  map_iter_t it;
  for (map_node_t *n = map_first(m, &it); n; n = map_next(m, &it)) {
    map_remove(m, n);
    free(MAP_ENTRY(n, ent_t, node));
  }
  assert_int_equal(map_count(m), 0);
  map_fini(m);
}

static void test_basic(void **state) {
  (void)state;
  map_t m;
  map_init(&m);
  assert_null(get(&m, "a", 1));
  map_add(&m, &ent_new("a", 1, 1)->node);
  map_add(&m, &ent_new("b", 1, 2)->node);
  map_add(&m, &ent_new("", 0, 3)->node); /* the empty key is a key */
  assert_int_equal(map_count(&m), 3);
  assert_int_equal(get(&m, "a", 1)->val, 1);
  assert_int_equal(get(&m, "b", 1)->val, 2);
  assert_int_equal(get(&m, "", 0)->val, 3);
  assert_null(get(&m, "ab", 2));
  ent_t *b = get(&m, "b", 1);
  map_remove(&m, &b->node);
  free(b);
  assert_null(get(&m, "b", 1));
  assert_int_equal(get(&m, "a", 1)->val, 1);
  assert_int_equal(map_count(&m), 2);
  drain(&m);
}

/* 100,000 keys: the bucket array doubles from 16 past 2^17 (13 resizes); every key is still
 * found with its value, absent keys are not, and half can be deleted and the rest found. */
static void test_growth(void **state) {
  (void)state;
  enum { N = 100000 };
  map_t m;
  map_init(&m);
  char k[32];
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "client-%d", i);
    map_add(&m, &ent_new(k, (size_t)n, i)->node);
  }
  assert_int_equal(map_count(&m), N);
  assert_true(m.nb >= N);
  assert_true(map_longest_chain(&m) < 12); /* load ≤ 1 with a random hash: chains stay short */
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "client-%d", i);
    ent_t *e = get(&m, k, (size_t)n);
    assert_non_null(e);
    assert_int_equal(e->val, i);
  }
  assert_null(get(&m, "client-100000", 13));
  for (int i = 0; i < N; i += 2) {
    int n = snprintf(k, sizeof k, "client-%d", i);
    ent_t *e = get(&m, k, (size_t)n);
    map_remove(&m, &e->node);
    free(e);
  }
  assert_int_equal(map_count(&m), N / 2);
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "client-%d", i);
    ent_t *e = get(&m, k, (size_t)n);
    if (i % 2) assert_int_equal(e->val, i);
    else assert_null(e);
  }
  drain(&m);
}

/* Removing the node just returned, while iterating, visits every node exactly once. */
static void test_delete_while_iterating(void **state) {
  (void)state;
  enum { N = 5000 };
  map_t m;
  map_init(&m);
  char k[32];
  for (int i = 0; i < N; i++) {
    int n = snprintf(k, sizeof k, "%d", i);
    map_add(&m, &ent_new(k, (size_t)n, i)->node);
  }
  char *seen = xcalloc(N, 1);
  map_iter_t it;
  size_t visits = 0;
  for (map_node_t *n = map_first(&m, &it); n; n = map_next(&m, &it)) {
    ent_t *e = MAP_ENTRY(n, ent_t, node);
    assert_int_equal(seen[e->val], 0);
    seen[e->val] = 1;
    visits++;
    if (e->val % 3 == 0) { /* every third goes */
      map_remove(&m, n);
      free(e);
    }
  }
  assert_int_equal(visits, N);
  assert_int_equal(map_count(&m), N - (N + 2) / 3);
  visits = 0;
  for (map_node_t *n = map_first(&m, &it); n; n = map_next(&m, &it)) {
    assert_int_not_equal(MAP_ENTRY(n, ent_t, node)->val % 3, 0);
    visits++;
  }
  assert_int_equal(visits, map_count(&m));
  free(seen);
  drain(&m);
}

/* 64 keys whose hashes agree in their low 10 bits share one bucket until the array passes
 * 1024 buckets (it stays at 64): the chain holds them all, each is found, and deleting from
 * its head, middle and tail keeps the others. */
static void test_same_bucket(void **state) {
  (void)state;
  enum { N = 64 };
  char keys[N][24];
  size_t lens[N];
  uint64_t want = 0;
  int have = 0;
  for (unsigned long i = 0; have < N; i++) {
    char k[24];
    int n = snprintf(k, sizeof k, "k%lu", i);
    uint64_t h = map_hash(k, (size_t)n);
    if (have == 0) want = h & 1023;
    if ((h & 1023) != want) continue;
    memcpy(keys[have], k, (size_t)n + 1);
    lens[have++] = (size_t)n;
  }
  map_t m;
  map_init(&m);
  for (int i = 0; i < N; i++) map_add(&m, &ent_new(keys[i], lens[i], i)->node);
  assert_int_equal(map_longest_chain(&m), N);
  for (int i = 0; i < N; i++) assert_int_equal(get(&m, keys[i], lens[i])->val, i);
  int gone[] = {0, N / 2, N - 1};
  for (size_t g = 0; g < sizeof gone / sizeof *gone; g++) {
    ent_t *e = get(&m, keys[gone[g]], lens[gone[g]]);
    map_remove(&m, &e->node);
    free(e);
  }
  for (int i = 0; i < N; i++) {
    ent_t *e = get(&m, keys[i], lens[i]);
    if (i == 0 || i == N / 2 || i == N - 1) assert_null(e);
    else assert_int_equal(e->val, i);
  }
  drain(&m);
}

/* Byte keys: NULs inside are part of the key, and a key is not equal to its own prefix. */
static void test_nul_bytes(void **state) {
  (void)state;
  map_t m;
  map_init(&m);
  map_add(&m, &ent_new("a\0b", 3, 1)->node);
  map_add(&m, &ent_new("a\0c", 3, 2)->node);
  map_add(&m, &ent_new("a", 1, 3)->node);
  map_add(&m, &ent_new("a\0", 2, 4)->node);
  assert_int_equal(get(&m, "a\0b", 3)->val, 1);
  assert_int_equal(get(&m, "a\0c", 3)->val, 2);
  assert_int_equal(get(&m, "a", 1)->val, 3);
  assert_int_equal(get(&m, "a\0", 2)->val, 4);
  assert_null(get(&m, "a\0d", 3));
  assert_true(map_hash("a\0b", 3) != map_hash("a\0c", 3));
  drain(&m);
}

/* The hash is SipHash-shaped: every length 0..64 hashes, the same bytes always give the same
 * value within the process, and one flipped bit changes about half the output bits. */
static void test_hash(void **state) {
  (void)state;
  uint8_t buf[65];
  for (int i = 0; i < 65; i++) buf[i] = (uint8_t)(i * 7 + 1);
  long flips = 0, trials = 0;
  for (size_t n = 1; n <= 64; n++) {
    uint64_t h = map_hash(buf, n);
    assert_true(h == map_hash(buf, n));
    for (size_t bit = 0; bit < n * 8; bit += 5) {
      buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
      flips += __builtin_popcountll(h ^ map_hash(buf, n));
      trials++;
      buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
  }
  double avg = (double)flips / (double)trials;
  assert_true(avg > 28 && avg < 36);
}

/* Hash flooding: ids crafted so that their FNV-1a hash (the one every table used before)
 * agrees in its low 12 bits — for ipcount (h % 4096) that was one bucket, always; for the
 * presence and conversation tables one shard (h % 64) and one bucket up to 64 buckets a
 * shard — are spread by the keyed map like any other ids: its longest chain stays short. */
static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static void test_flood(void **state) {
  (void)state;
  enum { N = 1000 };
  map_t m;
  map_init(&m);
  char k[32];
  int have = 0;
  uint32_t want = fnv1a("attacker-0") & 0xfff;
  for (unsigned long i = 0; have < N; i++) {
    int n = snprintf(k, sizeof k, "attacker-%lu", i);
    if ((fnv1a(k) & 0xfff) != want) continue;
    map_add(&m, &ent_new(k, (size_t)n, have++)->node);
  }
  /* the old hash: all 1000 in one bucket of ipcount's 4096 */
  assert_int_equal(map_count(&m), N);
  size_t longest = map_longest_chain(&m);
  assert_true(longest < 10); /* a random hash at load ≤ 1 gives ~5-6 for 1000 keys */
  drain(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_growth),
      cmocka_unit_test(test_delete_while_iterating),
      cmocka_unit_test(test_same_bucket),
      cmocka_unit_test(test_nul_bytes),
      cmocka_unit_test(test_hash),
      cmocka_unit_test(test_flood),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
