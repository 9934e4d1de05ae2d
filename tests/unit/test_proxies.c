/* test_proxies.c — trusted_proxies (proxies.c): parsing addresses and CIDRs, matching
 * IPv4, IPv6 and IPv4-mapped peers, and which X-Forwarded-For entry is the client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "proxies.h"

static void test_parse(void **state) {
  proxies_t *p;
  char err[128];
  assert_int_equal(proxies_parse("", &p, err, sizeof err), 0);
  assert_null(p);
  assert_int_equal(proxies_match(NULL, "127.0.0.1"), 0);
  static const char *const bad[] = {"10.0.0.0/33", "::/129", "10.0.0.1/", "10.0.0.1/x", "host.example", "1.2.3",
                                    "10.0.0.0/8,garbage",
                                    /* past int: strtol's long wrapped to 8 in the int cast */
                                    "10.0.0.0/4294967304", "10.0.0.0/+8", "10.0.0.0/-0", "10.0.0.0/ 8"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(proxies_parse(bad[i], &p, err, sizeof err), TERN_ECONFIG);
    assert_non_null(strstr(err, "is not an address or CIDR"));
  }
}

static void test_match(void **state) {
  proxies_t *p;
  char err[128];
  assert_int_equal(proxies_parse("10.0.0.0/8, 192.168.1.5 fd00::/8,::1", &p, err, sizeof err), 0);
  assert_true(proxies_match(p, "10.200.3.4"));
  assert_true(proxies_match(p, "192.168.1.5"));
  assert_false(proxies_match(p, "192.168.1.6"));
  assert_false(proxies_match(p, "11.0.0.1"));
  assert_true(proxies_match(p, "::ffff:10.1.1.1")); /* an IPv4 peer on a dual-stack socket */
  assert_true(proxies_match(p, "fd12::1"));
  assert_true(proxies_match(p, "::1"));
  assert_false(proxies_match(p, "::2"));
  assert_false(proxies_match(p, "not an ip"));
  proxies_free(p);
}

static void test_client(void **state) {
  proxies_t *p;
  char err[128], out[64];
  assert_int_equal(proxies_parse("10.0.0.0/8", &p, err, sizeof err), 0);
  /* the rightmost entry that is not a trusted proxy; the client's own claims to its left */
  assert_true(proxies_client(p, "1.1.1.1, 203.0.113.7, 10.0.0.2", out, sizeof out));
  assert_string_equal(out, "203.0.113.7");
  assert_true(proxies_client(p, "203.0.113.7", out, sizeof out));
  assert_string_equal(out, "203.0.113.7");
  assert_true(proxies_client(p, " 2001:DB8::1 ", out, sizeof out));
  assert_string_equal(out, "2001:db8::1");                                /* normalised */
  assert_false(proxies_client(p, "10.0.0.1, 10.0.0.2", out, sizeof out)); /* only proxies */
  assert_false(proxies_client(p, "unknown, 10.0.0.2", out, sizeof out));
  assert_false(proxies_client(p, "203.0.113.7:443", out, sizeof out));
  assert_false(proxies_client(p, "", out, sizeof out));
  assert_false(proxies_client(p, ",,", out, sizeof out));
  assert_false(proxies_client(p, NULL, out, sizeof out));
  proxies_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_match),
      cmocka_unit_test(test_client),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
