/* test_config.c — the option table's loaders (config.c): flags looked up before their
 * values (unknown ones reported as such), and SIGHUP's config_reload, which applies the
 * reloadable options only and names every other option that changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "err.h"

/* config_load over argv with the messages captured; returns its result. */
static int load(tern_config_t *cfg, char *errs, size_t n, int argc, char **argv) {
  FILE *f = fmemopen(errs, n, "w");
  unsetenv("TERN_CONFIG");
  int rc = config_load_to(cfg, argc, argv, f);
  fclose(f);
  return rc;
}

static void test_unknown_flags(void **state) {
  char errs[512];
  tern_config_t cfg;
  char *a1[] = {"ternd", "--bogus", NULL};
  assert_int_equal(load(&cfg, errs, sizeof errs, 1 + 1, a1), TERN_ECONFIG);
  assert_string_equal(errs, "ternd: unknown option --bogus (see --help)\n");
  config_free(&cfg);
  char *a2[] = {"ternd", "--bogus=1", NULL};
  assert_int_equal(load(&cfg, errs, sizeof errs, 2, a2), TERN_ECONFIG);
  assert_string_equal(errs, "ternd: unknown option --bogus (see --help)\n");
  config_free(&cfg);
  /* a misspelt boolean is not taken for an option wanting the next argument */
  char *a3[] = {"ternd", "--sign-loginn", "--workers=3", NULL};
  assert_int_equal(load(&cfg, errs, sizeof errs, 3, a3), TERN_ECONFIG);
  assert_string_equal(errs, "ternd: unknown option --sign-loginn (see --help)\n");
  config_free(&cfg);
  /* dashes, case and the value in the next argument still work */
  char *a4[] = {"ternd", "--Max-Conns-Per-IP", "7", "--sign-login", "--log_file=/x", NULL};
  assert_int_equal(load(&cfg, errs, sizeof errs, 5, a4), 0);
  assert_int_equal(cfg.max_conns_per_ip, 7);
  assert_int_equal(cfg.sign_login, 1);
  assert_string_equal(cfg.log_file, "/x");
  config_free(&cfg);
}

static int changes;
static char seen[512];

static void note(const char *name, int applied, void *arg) {
  changes++;
  size_t n = strlen(seen);
  snprintf(seen + n, sizeof seen - n, "%s%s=%d", n ? " " : "", name, applied);
}

static void test_reload(void **state) {
  tern_config_t cur, next;
  config_defaults(&cur);
  config_defaults(&next);
  char err[200];
  assert_int_equal(config_set(&next, "max_conn_rate", "5", err, sizeof err), 0);
  assert_int_equal(config_set(&next, "log_level", "debug", err, sizeof err), 0);
  assert_int_equal(config_set(&next, "output_limit_total", "1048576", err, sizeof err), 0);
  assert_int_equal(config_set(&next, "listen", "0.0.0.0:9", err, sizeof err), 0);
  assert_int_equal(config_set(&next, "sign_login", "1", err, sizeof err), 0);
  changes = 0;
  seen[0] = 0;
  config_reload(&cur, &next, note, NULL);
  assert_int_equal(changes, 5);
  assert_string_equal(seen, "listen=0 max_conn_rate=1 output_limit_total=1 sign_login=0 log_level=1");
  /* applied: the reloadable ones; the rest keep their running values */
  assert_int_equal(cur.max_conn_rate, 5);
  assert_string_equal(cur.log_level, "debug");
  assert_int_equal(cur.output_limit_total, 1048576);
  assert_string_equal(cur.listen, "127.0.0.1:8080");
  assert_int_equal(cur.sign_login, 0);
  /* nothing differs any more but the restart-only ones */
  changes = 0;
  seen[0] = 0;
  config_reload(&cur, &next, note, NULL);
  assert_string_equal(seen, "listen=0 sign_login=0");
  config_free(&cur);
  config_free(&next);
  assert_int_equal(config_reloadable("max_conns_per_ip"), 1);
  assert_int_equal(config_reloadable("data_dir"), 0);
  assert_int_equal(config_reloadable("hooks"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unknown_flags),
      cmocka_unit_test(test_reload),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
