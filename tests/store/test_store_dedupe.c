/* test_store_dedupe.c — conformance: a message's dedupe token hash (store.h
 * job_msg_insert_t.dt, store_msg_by_dt; docs/protocol-map.md "dt") on every backend of
 * st_backends.
 *
 *   - the dt of a message is kept, whether it is committed alone or in a batch of messages
 *     (PostgreSQL writes consecutive messages as arrays), any 64-bit value, negative and the
 *     extremes included, and found again for the same conversation and sender only;
 *   - the lookup sees messages at or after since_ts only, and among the conversation's
 *     newest STORE_DT_SCAN of them;
 *   - a message stored without a dt is never found;
 *   - a message submitted with dt_since (a possible resend) is compared in the writer, after
 *     every job submitted before it: an equal message of the same conversation and sender
 *     (committed, or queued just before it, in the same batch) makes it store nothing and
 *     answer TERN_EEXIST with that message's id and time; otherwise it is stored. A message
 *     without dt_since is stored as given (no comparison);
 *   - a job marked gone (its session ended before the commit: the first copy of a message
 *     whose resend may have been stored first) is compared the same way from gone_since: an
 *     equal message already stored makes it store nothing (TERN_EEXIST with that one's id);
 *     unmarked, or marked with gone_since 0, it is stored as given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "st_harness.h"
#include "st_util.h"

static const char *const AB[] = {"alice", "bob", NULL};

/* store_msg_by_dt: its answer; the stored id and time when found. */
static int by_dt(st_t *t, int64_t conv, const char *sender, int64_t dt, int64_t since, char *mid, size_t n,
                 int64_t *ts) {
  char *m = NULL;
  *ts = 0;
  int rc = store_msg_by_dt(t->r, conv, sender, dt, since, &m, ts, NULL);
  if (rc == 0) {
    assert_non_null(m);
    snprintf(mid, n, "%s", m);
  }
  free(m);
  return rc;
}

static void dt_found_per_conversation_and_sender(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t c1 = st_conv_create(t, "c1", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  int64_t c2 = st_conv_create(t, "c2", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t m;
  st_msg_fill(t, &m, 0, c1, 2000, 1, "alice", "hello", 0);
  m.dt = 0x3f1c00000000abcdLL;
  assert_int_equal(st_submit_wait(t, &m.job), 0);
  st_msg_free(&m);
  assert_int_equal(st_msg_insert(t, c1, 2001, 2, "alice", "no dt", 0), 0);
  char mid[64];
  int64_t ts;
  assert_int_equal(by_dt(t, c1, "alice", 0x3f1c00000000abcdLL, 0, mid, sizeof mid, &ts), 0);
  assert_string_equal(mid, "m-1-2000-1");
  assert_int_equal(ts, 2000);
  assert_int_equal(by_dt(t, c1, "bob", 0x3f1c00000000abcdLL, 0, mid, sizeof mid, &ts), TERN_ENOENT);
  assert_int_equal(by_dt(t, c2, "alice", 0x3f1c00000000abcdLL, 0, mid, sizeof mid, &ts), TERN_ENOENT);
  assert_int_equal(by_dt(t, c1, "alice", 0x3f1c00000000abceLL, 0, mid, sizeof mid, &ts), TERN_ENOENT);
  /* 0 (no dt) finds nothing, not even the message stored without one */
  assert_int_equal(by_dt(t, c1, "alice", 0, 0, mid, sizeof mid, &ts), TERN_ENOENT);
  /* since_ts: at or after it only */
  assert_int_equal(by_dt(t, c1, "alice", 0x3f1c00000000abcdLL, 2000, mid, sizeof mid, &ts), 0);
  assert_int_equal(by_dt(t, c1, "alice", 0x3f1c00000000abcdLL, 2001, mid, sizeof mid, &ts), TERN_ENOENT);
  /* not found: the conversation's newest timestamp the lookup saw (0: no message), whatever
   * since_ts; found: 0 */
  char *m2 = NULL;
  int64_t newest = -1;
  assert_int_equal(store_msg_by_dt(t->r, c1, "bob", 5, 0, &m2, &ts, &newest), TERN_ENOENT);
  assert_int_equal(newest, 2001);
  assert_int_equal(store_msg_by_dt(t->r, c1, "bob", 5, 3000, &m2, &ts, &newest), TERN_ENOENT);
  assert_int_equal(newest, 2001);
  assert_int_equal(store_msg_by_dt(t->r, c2, "alice", 5, 0, &m2, &ts, &newest), TERN_ENOENT);
  assert_int_equal(newest, 0);
  assert_int_equal(store_msg_by_dt(t->r, c1, "alice", 0x3f1c00000000abcdLL, 0, &m2, &ts, &newest), 0);
  assert_int_equal(newest, 0);
  free(m2);
  st_close(t);
}

static void dt_kept_in_a_batch(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 5000); /* a commit interval: the messages share batches */
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  enum { N = 24 };
  static const int64_t dts[] = {INT64_MIN, INT64_MAX, -1, 1, -4242424242424242LL, 77, 0x7f00ff00ff00ff00LL, -2};
  job_msg_insert_t m[N];
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 3000 + i, 1, i % 2 ? "bob" : "alice", "text", 0);
    if (i % 3 != 2) m[i].dt = i < 8 ? dts[i] : dts[i % 8] ^ ((int64_t)i << 20);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(m[i].job.result, 0);
    char mid[64], want[64];
    int64_t ts;
    snprintf(want, sizeof want, "m-%lld-%d-1", (long long)conv, 3000 + i);
    if (m[i].dt) {
      assert_int_equal(by_dt(t, conv, m[i].sender, m[i].dt, 0, mid, sizeof mid, &ts), 0);
      assert_string_equal(mid, want);
      assert_int_equal(ts, 3000 + i);
      /* the other sender's message with the same dt does not exist */
      assert_int_equal(by_dt(t, conv, i % 2 ? "alice" : "bob", m[i].dt, 0, mid, sizeof mid, &ts), TERN_ENOENT);
    }
    st_msg_free(&m[i]);
  }
  st_close(t);
}

static void dt_looked_for_among_the_newest(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 5000);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t first;
  st_msg_fill(t, &first, 0, conv, 5000, 1, "alice", "old", 0);
  first.dt = 99;
  assert_int_equal(st_submit_wait(t, &first.job), 0);
  char mid[64];
  int64_t ts;
  assert_int_equal(by_dt(t, conv, "alice", 99, 0, mid, sizeof mid, &ts), 0);
  /* STORE_DT_SCAN newer messages: the old one is past the scan */
  enum { N = STORE_DT_SCAN };
  job_msg_insert_t *m = calloc(N, sizeof *m);
  size_t base = t->ndone;
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 5001 + i / 10, 1 + i % 10, "bob", "newer", 0);
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(m[i].job.result, 0);
    st_msg_free(&m[i]);
  }
  free(m);
  assert_int_equal(by_dt(t, conv, "alice", 99, 0, mid, sizeof mid, &ts), TERN_ENOENT);
  st_msg_free(&first);
  st_close(t);
}

static void dt_since_compared_in_the_writer(void **state) {
  (void)state;
  /* a long commit interval: the filler is committed at once (the writer is idle), the six
   * after it wait for the next commit and share its batch, so the resend (1) is compared
   * with a first copy (0) inserted earlier in the same transaction */
  st_t *t = st_open(st_current, 200000);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  size_t base = t->ndone;
  job_msg_insert_t filler;
  st_msg_fill(t, &filler, 0, conv, 5000, 1, "bob", "filler", 0);
  store_submit(t->s, &filler.job);
  enum { N = 6 };
  job_msg_insert_t m[N];
  /* 0: the first copy; 1: its resend, queued right behind it (nothing committed yet when it
   * was submitted); 2: bob's with alice's dt; 3: alice's other dt; 4: checked, but since
   * after the first copy: stored; 5: a copy not checked (dt_since 0): stored again */
  static const char *const who[N] = {"alice", "alice", "bob", "alice", "alice", "alice"};
  static const int64_t dts[N] = {7, 7, 7, 8, 7, 7};
  static const int64_t since[N] = {0, 1, 1, 1, 6001, 0};
  for (int i = 0; i < N; i++) {
    st_msg_fill(t, &m[i], 0, conv, 6000 + i, 1, who[i], "text", 0);
    m[i].dt = dts[i];
    m[i].dt_since = since[i];
    store_submit(t->s, &m[i].job);
  }
  st_wait_done(t, base + 1 + N);
  assert_int_equal(filler.job.result, 0);
  st_msg_free(&filler);
  assert_int_equal(m[0].job.result, 0);
  assert_null(m[0].dup_mid);
  assert_int_equal(m[1].job.result, TERN_EEXIST);
  assert_non_null(m[1].dup_mid);
  assert_string_equal(m[1].dup_mid, m[0].mid);
  assert_int_equal(m[1].dup_ts, 6000);
  for (int i = 2; i < N; i++) {
    assert_int_equal(m[i].job.result, 0);
    assert_null(m[i].dup_mid);
  }
  /* once committed: a checked copy is answered with the first, whatever its own key */
  job_msg_insert_t late;
  st_msg_fill(t, &late, 0, conv, 7000, 1, "alice", "text", 0);
  late.dt = 8;
  late.dt_since = 1;
  assert_int_equal(st_submit_wait(t, &late.job), TERN_EEXIST);
  assert_string_equal(late.dup_mid, m[3].mid);
  assert_int_equal(late.dup_ts, 6003);
  /* what is stored: the filler, 0, 2, 3, 4, 5 (not 1, not late) */
  st_msgs_t got = {0};
  logs_req_t q = {.conv = conv, .newer = 1, .limit = 20};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 6);
  static const int64_t want[] = {5000, 6000, 6002, 6003, 6004, 6005};
  for (int i = 0; i < 6; i++) assert_int_equal(got.ts[i], want[i]);
  st_msg_free(&late);
  for (int i = 0; i < N; i++) st_msg_free(&m[i]);
  st_close(t);
}

/* The first copy of a message whose resend another writer stored first (docs/cluster.md, "A
 * send whose ack died with its node is stored once"): marked gone, it is the one dropped. */
static void gone_copy_compared_in_the_writer(void **state) {
  (void)state;
  st_t *t = st_open(st_current, 0);
  int64_t conv = st_conv_create(t, "c", CONV_NORMAL, AB, NULL, NULL, 1000, NULL);
  job_msg_insert_t resend;
  st_msg_fill(t, &resend, 0, conv, 6000, 1, "alice", "text", 0);
  resend.dt = 9;
  resend.dt_since = 1;
  assert_int_equal(st_submit_wait(t, &resend.job), 0);
  /* the first copy, its key from before the resend's (another node's clock), marked */
  job_msg_insert_t first;
  st_msg_fill(t, &first, 0, conv, 5990, 1, "alice", "text", 0);
  first.dt = 9;
  first.gone_since = 1;
  atomic_store(&first.gone, 1);
  assert_int_equal(st_submit_wait(t, &first.job), TERN_EEXIST);
  assert_non_null(first.dup_mid);
  assert_string_equal(first.dup_mid, resend.mid);
  assert_int_equal(first.dup_ts, 6000);
  /* gone_since from after the resend: not found, stored */
  job_msg_insert_t later;
  st_msg_fill(t, &later, 0, conv, 6010, 1, "alice", "text", 0);
  later.dt = 9;
  later.gone_since = 6001;
  atomic_store(&later.gone, 1);
  assert_int_equal(st_submit_wait(t, &later.job), 0);
  assert_null(later.dup_mid);
  /* not marked, or marked without gone_since: stored as given, no comparison */
  job_msg_insert_t plain, unarmed;
  st_msg_fill(t, &plain, 0, conv, 6020, 1, "alice", "text", 0);
  plain.dt = 9;
  plain.gone_since = 1;
  assert_int_equal(st_submit_wait(t, &plain.job), 0);
  st_msg_fill(t, &unarmed, 0, conv, 6030, 1, "alice", "text", 0);
  unarmed.dt = 9;
  atomic_store(&unarmed.gone, 1);
  assert_int_equal(st_submit_wait(t, &unarmed.job), 0);
  st_msgs_t got = {0};
  logs_req_t q = {.conv = conv, .newer = 1, .limit = 20};
  assert_int_equal(store_logs(t->r, &q, st_msgs_cb, &got), 0);
  assert_int_equal(got.n, 4);
  static const int64_t want[] = {6000, 6010, 6020, 6030};
  for (int i = 0; i < 4; i++) assert_int_equal(got.ts[i], want[i]);
  st_msg_free(&resend);
  st_msg_free(&first);
  st_msg_free(&later);
  st_msg_free(&plain);
  st_msg_free(&unarmed);
  st_close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dt_found_per_conversation_and_sender), cmocka_unit_test(dt_kept_in_a_batch),
      cmocka_unit_test(dt_looked_for_among_the_newest),       cmocka_unit_test(dt_since_compared_in_the_writer),
      cmocka_unit_test(gone_copy_compared_in_the_writer),
  };
  return st_run_groups(tests, sizeof tests / sizeof tests[0]);
}
