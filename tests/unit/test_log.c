/* test_log.c — log.c: the log file (appended, 0600, reopened in place after a rotation)
 * and log_allow, the one-line-a-second limiter for events a peer can provoke. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static void test_file_and_rotation(void **state) {
  char dir[] = "/tmp/tern-log-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64], rotated[64];
  snprintf(path, sizeof path, "%s/ternd.log", dir);
  snprintf(rotated, sizeof rotated, "%s/ternd.log.1", dir);
  mode_t old = umask(022);
  assert_int_equal(log_open(path), 0);
  umask(old);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  log_write(LOG_WARN, "first %d", 1);
  assert_non_null(strstr(slurp(path), " warn  first 1\n"));
  /* logrotate moves the file away; lines still go to it until the reopen */
  assert_int_equal(rename(path, rotated), 0);
  log_write(LOG_INFO, "second");
  assert_int_equal(log_open(path), 0);
  log_write(LOG_INFO, "third");
  const char *a = slurp(rotated);
  assert_non_null(strstr(a, "first 1"));
  assert_non_null(strstr(a, "second"));
  assert_null(strstr(a, "third"));
  const char *b = slurp(path);
  assert_non_null(strstr(b, "third"));
  assert_null(strstr(b, "second"));
  /* a file that cannot be opened: an error, and the log stays where it was */
  assert_true(log_open("/nonexistent-dir/x.log") < 0);
  log_write(LOG_INFO, "fourth");
  assert_non_null(strstr(slurp(path), "fourth"));
  assert_int_equal(log_open(NULL), 0); /* back to stderr */
  log_write(LOG_INFO, "fifth");
  assert_null(strstr(slurp(path), "fifth"));
  unlink(path);
  unlink(rotated);
  rmdir(dir);
}

static void test_allow(void **state) {
  log_limit_t l = {0};
  unsigned long skipped = 99;
  assert_int_equal(log_allow(&l, &skipped), 1);
  assert_int_equal(skipped, 0);
  for (int i = 0; i < 1000; i++) assert_int_equal(log_allow(&l, &skipped), 0);
  struct timespec ts = {1, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(log_allow(&l, &skipped), 1);
  assert_int_equal(skipped, 1000);
  assert_int_equal(log_allow(&l, &skipped), 0);
}

/* log_event: one line per event, key=value text or one JSON object, values escaped so a
 * peer's bytes can neither break a line nor the JSON. */
/* A NULL the compiler cannot see (a literal NULL for %s is a format warning). */
static const char *nothing(void) { return getenv("TERN_TEST_UNSET_VARIABLE"); }

static void test_event(void **state) {
  char dir[] = "/tmp/tern-log-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/ev.log", dir);
  assert_int_equal(log_open(path), 0);
  log_json = 0;
  log_event_write(LOG_INFO, "login", "addr=%s client=%s tag=%s code=%d n=%lld ms=%f", "1.2.3.4", "a b\"c", nothing(),
                  4112, (long long)-5, 1.5);
  assert_non_null(strstr(slurp(path), " info  login addr=1.2.3.4 client=\"a b\\\"c\" tag=- code=4112 n=-5 ms=1.500\n"));
  log_json = 1;
  log_event_write(LOG_WARN, "x", "s=%s nul=%s u=%zu bad=%s", "line\nbreak", nothing(), (size_t)7,
                  "\xff\xc3\xa9\xed\xa0\x80");
  const char *t = slurp(path);
  const char *j = strstr(t, "{\"ts\":");
  assert_non_null(j);
  assert_non_null(strstr(j, "\"level\":\"warn\",\"event\":\"x\",\"s\":\"line\\nbreak\",\"nul\":null,\"u\":7,"
                            "\"bad\":\"\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffd\"}\n"));
  /* free text in JSON: msg */
  log_write(LOG_ERROR, "quote \" here");
  assert_non_null(strstr(slurp(path), "\"level\":\"error\",\"msg\":\"quote \\\" here\"}\n"));
  /* a value longer than a line: cut, still one line, still an object */
  char big[5000];
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = 0;
  truncate(path, 0);
  log_event_write(LOG_INFO, "big", "v=%s after=%d", big, 1);
  t = slurp(path);
  size_t n = strlen(t);
  assert_true(n > 1000 && n <= 2048);
  assert_int_equal(t[n - 1], '\n');
  assert_int_equal(t[n - 2], '}');
  assert_ptr_equal(strchr(t, '\n'), t + n - 1); /* one line */
  /* a full line then more string fields: each is left out whole (no stray quotes past the
   * line's end), and a value cut mid-escape still closes the object */
  truncate(path, 0);
  log_event_write(LOG_INFO, "big", "v=%s a=%s b=%s c=%s d=%s e=%s", big, "x", "y", "z", "w", "u");
  t = slurp(path);
  n = strlen(t);
  assert_true(n > 1000 && n <= 2048);
  assert_string_equal(t + n - 4, "v\"}\n");
  /* a value cut at every offset of its escapes and UTF-8 sequences against the line's end:
   * the last whole one, the closing quote, and no half of the next field */
  char quotes[5000], euros[6001];
  memset(quotes, '"', sizeof quotes - 1);
  quotes[sizeof quotes - 1] = 0;
  for (size_t i = 0; i + 3 < sizeof euros; i += 3) memcpy(euros + i, "\xe2\x82\xac", 3);
  euros[sizeof euros - 1] = 0;
  for (int k = 0; k < 8; k++) {
    const char *pad = big + sizeof big - 1 - 1000 - k;
    truncate(path, 0);
    log_event_write(LOG_INFO, "big", "pad=%s v=%s after=%d", pad, quotes, 1);
    log_event_write(LOG_INFO, "big", "pad=%s v=%s after=%d", pad, euros, 1);
    t = slurp(path);
    const char *second = strchr(t, '\n') + 1;
    assert_memory_equal(second - 5, "\\\"\"}\n", 5); /* the last whole \" and the closing quote */
    n = strlen(second);
    assert_string_equal(second + n - 6, "\xe2\x82\xac\"}\n");
  }
  truncate(path, 0);
  log_json = 0;
  log_event_write(LOG_INFO, "big", "v=%s a=%s b=%s c=%s d=%s", big, "x y", "x y", "x y", "x y");
  t = slurp(path);
  n = strlen(t);
  assert_true(n > 1000 && n <= 2048);
  assert_int_equal(t[n - 1], '\n');
  assert_int_equal(t[n - 2], 'v');
  assert_int_equal(log_open(NULL), 0);
  unlink(path);
  rmdir(dir);
}

static void test_allow_n(void **state) {
  log_limit_t l = {0};
  unsigned long held = 99;
  for (int i = 0; i < 5; i++) assert_int_equal(log_allow_n(&l, 5, &held), 1);
  for (int i = 0; i < 7; i++) assert_int_equal(log_allow_n(&l, 5, &held), 0);
  struct timespec ts = {1, 20 * 1000 * 1000};
  nanosleep(&ts, NULL);
  assert_int_equal(log_allow_n(&l, 5, &held), 1);
  assert_int_equal(held, 7);
}

/* log_batch_begin/flush (a network worker's loop): info lines wait for the flush; a
 * warning writes what waits, then itself, in order. In a thread of its own, as a worker's
 * batch is per thread. Returns NULL, or what went wrong. */
static void *batch_thread(void *arg) {
  const char *path = arg;
  log_batch_begin();
  log_event(LOG_INFO, "conn.open", "addr=%s", "192.0.2.1");
  log_write(LOG_INFO, "held %d", 1);
  if (strstr(slurp(path), "conn.open") || strstr(slurp(path), "held 1")) return "an info line left before the flush";
  log_write(LOG_WARN, "urgent");
  const char *s = slurp(path);
  const char *a = strstr(s, "conn.open addr=192.0.2.1\n"), *b = strstr(s, "held 1\n"), *c = strstr(s, "urgent\n");
  if (!a || !b || !c) return "a warning did not write the held lines and itself";
  if (!(a < b && b < c)) return "lines out of order";
  log_write(LOG_INFO, "later");
  if (strstr(slurp(path), "later")) return "an info line after the warning left before the flush";
  log_batch_flush();
  if (!strstr(slurp(path), "later\n")) return "the flush did not write the held line";
  for (int i = 0; i < 80; i++) log_write(LOG_INFO, "filler %03d ....................", i);
  s = slurp(path); /* past 4 KiB the held lines go out whole, without a flush */
  if (!strstr(s, "filler 000")) return "a full batch was not written";
  if (strstr(s, "filler 079")) return "the last lines left before the flush";
  log_batch_flush();
  if (!strstr(slurp(path), "filler 079 ....")) return "the flush did not write the rest";
  return NULL;
}

static void test_batch(void **state) {
  char dir[] = "/tmp/tern-log-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof path, "%s/ternd.log", dir);
  assert_int_equal(log_open(path), 0);
  pthread_t t;
  void *err = NULL;
  assert_int_equal(pthread_create(&t, NULL, batch_thread, path), 0);
  assert_int_equal(pthread_join(t, &err), 0);
  if (err) fail_msg("%s", (const char *)err);
  log_write(LOG_INFO, "main thread"); /* a thread that never began a batch writes at once */
  assert_non_null(strstr(slurp(path), "main thread\n"));
  assert_int_equal(log_open(NULL), 0);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_and_rotation), cmocka_unit_test(test_allow), cmocka_unit_test(test_event),
      cmocka_unit_test(test_allow_n),           cmocka_unit_test(test_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
