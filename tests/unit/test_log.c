/* test_log.c — log.c: the log file (appended, 0600, reopened in place after a rotation)
 * and log_allow, the one-line-a-second limiter for events a peer can provoke. */
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_file_and_rotation),
      cmocka_unit_test(test_allow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
