/* test_pcache.c — the page cache's shim (store/sqlite/pcache.c): SQLite, with the shim
 * installed, rebalancing b-trees whose new pages come off the freelist in no order (as the
 * hot tables' do), so that it parks pages for its renumbering; every row must read back
 * as written, the database must pass SQLite's integrity check, on the connection that
 * wrote and on a new one, and the shim must have parked pages (or the test proved nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "pcache.h"

#define ROUNDS 40
#define B_ROWS 300 /* random keys into b a round */

static void exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql, err ? err : sqlite3_errstr(rc));
}

/* b's value for key k: its length and bytes follow from k, so a page mixed up shows */
static size_t value_of(int64_t k, uint8_t *v) {
  size_t n = 40 + (size_t)(k % 160);
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(k * 31 + (int64_t)i * 7);
  return n;
}

static void check(sqlite3 *db, const uint8_t *present, int64_t nkeys, int64_t count) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT k, v FROM b ORDER BY k", -1, &st, NULL), SQLITE_OK);
  int64_t seen = 0;
  uint8_t want[256];
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t k = sqlite3_column_int64(st, 0);
    assert_true(k >= 0 && k < nkeys && present[k]);
    size_t n = value_of(k, want);
    assert_int_equal(sqlite3_column_bytes(st, 1), n);
    assert_memory_equal(sqlite3_column_blob(st, 1), want, n);
    seen++;
  }
  sqlite3_finalize(st);
  assert_int_equal(seen, count);
}

static void rebalances_off_the_freelist_keep_every_row(void **state) {
  (void)state;
  char dir[] = "/tmp/tern-pcache-XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/t.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA cache_size=-32768;"
           "CREATE TABLE a(k INTEGER PRIMARY KEY, v BLOB);"
           "CREATE TABLE b(k INTEGER PRIMARY KEY, v BLOB); CREATE INDEX b_v ON b(v);");
  sqlite3_stmt *ins_a, *ins_b;
  assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO a(v) VALUES (zeroblob(300))", -1, &ins_a, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO b VALUES (?, ?)", -1, &ins_b, NULL), SQLITE_OK);
  const int64_t nkeys = 1 << 20;
  uint8_t *present = calloc((size_t)nkeys, 1);
  int64_t count = 0;
  uint64_t x = 88172645463325252ull, swaps0 = pcache_swaps();
  uint8_t v[256];
  for (int r = 0; r < ROUNDS; r++) {
    exec(db, "BEGIN");
    for (int i = 0; i < 400; i++) { /* a's pages: the freelist of the next DELETE */
      assert_int_equal(sqlite3_step(ins_a), SQLITE_DONE);
      sqlite3_reset(ins_a);
    }
    for (int i = 0; i < B_ROWS; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      int64_t k = (int64_t)(x % (uint64_t)nkeys);
      size_t n = value_of(k, v);
      sqlite3_bind_int64(ins_b, 1, k);
      sqlite3_bind_blob(ins_b, 2, v, (int)n, SQLITE_STATIC);
      assert_int_equal(sqlite3_step(ins_b), SQLITE_DONE);
      sqlite3_reset(ins_b);
      if (!present[k]) present[k] = 1, count++;
    }
    exec(db, r % 4 == 3 ? "DELETE FROM a; COMMIT" : "COMMIT");
  }
  sqlite3_finalize(ins_a);
  sqlite3_finalize(ins_b);
  assert_true(pcache_swaps() > swaps0); /* pages were parked, so the reads below check the shim */
  check(db, present, nkeys, count);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK); /* a new cache: what the file holds */
  check(db, present, nkeys, count);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(present);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  /* before SQLite initializes, as ternd does (store_sqlite.c) */
  if (pcache_install() != 0) {
    fprintf(stderr, "test_pcache: SQLite refused the page cache shim\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(rebalances_off_the_freelist_keep_every_row)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
