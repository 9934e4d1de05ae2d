/* test_im.c — im.c's dispatch on a fake link (im_harness.h): echo, a command before any
 * session, an unsupported command, an undecodable frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im.h"
#include "im_harness.h"

static void echo_answers_with_its_i(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  th_send(a, "{\"cmd\":\"echo\",\"i\":7}");
  json_t *r = th_reply(a, 7);
  assert_non_null(r);
  assert_string_equal(th_str(r, "cmd"), "echo");
  th_end();
}

static void a_command_needs_a_session(void **state) {
  (void)state;
  th_begin();
  th_link_t *l = th_open();
  th_send(l, "{\"cmd\":\"direct\",\"i\":1,\"directMessage\":{\"cid\":\"x\",\"msg\":\"hi\"}}");
  json_t *r = th_reply(l, 1);
  assert_true(l->closed || th_error(r) == LC_SESSION_REQUIRED);
  th_end();
}

static void unsupported_commands_get_4114(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  th_send(a, "{\"cmd\":\"presence\",\"op\":\"query\",\"i\":2}");
  assert_int_equal(th_error(th_reply(a, 2)), LC_UNPARSEABLE_RAW_MESSAGE);
  th_end();
}

static void undecodable_frames_close_the_link(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  int code = im_link_message(&a->link, junk, sizeof junk, 0);
  assert_true(code != 0 || th_count(a, "error", NULL) > 0 || a->closed);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(echo_answers_with_its_i),
      cmocka_unit_test(a_command_needs_a_session),
      cmocka_unit_test(unsupported_commands_get_4114),
      cmocka_unit_test(undecodable_frames_close_the_link),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
