/* test_im_device.c — im_device.c's handler on a fake link (im_harness.h): report/upload of
 * a device token (stored as the client's device, answered after the commit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"

static void dev_cb(void *arg, const device_view_t *d) { snprintf((char *)arg, 64, "%s/%s", d->token, d->type); }

static void report_upload_stores_the_token(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  th_send_held(
      a, "{\"cmd\":\"report\",\"op\":\"upload\",\"i\":1,\"reportMessage\":{\"type\":\"token\",\"data\":\"tok-abc\"}}");
  assert_null(th_reply(a, 1)); /* answered after the commit */
  th_drain();
  assert_string_equal(th_str(th_reply(a, 1), "op"), "uploaded");
  char got[64] = "";
  assert_int_equal(store_devices(th_reader(), "alice", 10, dev_cb, got), 0);
  assert_string_equal(got, "tok-abc/ios");
  /* a bad token: refused, nothing stored */
  th_link_t *b = th_login("bob");
  th_send(b, "{\"cmd\":\"report\",\"op\":\"upload\",\"i\":2,\"reportMessage\":{\"type\":\"token\",\"data\":\"a b\"}}");
  assert_int_equal(th_error(th_reply(b, 2)), LC_UNPARSEABLE_RAW_MESSAGE);
  char none[64] = "";
  assert_int_equal(store_devices(th_reader(), "bob", 10, dev_cb, none), 0);
  assert_string_equal(none, "");
  /* another kind of report: acknowledged, not kept */
  th_send(b, "{\"cmd\":\"report\",\"op\":\"upload\",\"i\":3,\"reportMessage\":{\"type\":\"crash\",\"data\":\"x\"}}");
  assert_string_equal(th_str(th_reply(b, 3), "op"), "uploaded");
  assert_int_equal(store_devices(th_reader(), "bob", 10, dev_cb, none), 0);
  assert_string_equal(none, "");
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(report_upload_stores_the_token),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
