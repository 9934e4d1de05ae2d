/* test_im_session.c — im_session.c's handlers on a fake link (im_harness.h): session/open,
 * close, refresh, query; their replies, the pushes they cause, and what they store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"
#include "log.h"

static void open_replies_opened_with_a_token(void **state) {
  (void)state;
  th_begin();
  th_link_t *l = th_open();
  th_send(l,
          "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"alice\",\"i\":1,"
          "\"sessionMessage\":{\"ua\":\"test\"}}",
          FZ_APP_ID);
  json_t *r = th_reply(l, 1);
  assert_non_null(r);
  assert_string_equal(th_str(r, "cmd"), "session");
  assert_string_equal(th_str(r, "op"), "opened");
  assert_string_equal(th_str(r, "peerId"), "alice");
  assert_non_null(th_str(r, "sessionMessage.st"));
  assert_true(th_int(r, "sessionMessage.stTtl") > 0);
  assert_true(th_int(r, "serverTs") > 0);
  assert_int_equal(l->link.nsessions, 1);
  th_end();
}

static void open_refused_for_another_app_or_a_bad_id(void **state) {
  (void)state;
  th_begin();
  th_link_t *l = th_open();
  th_send(l, "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"someOtherApp\",\"peerId\":\"alice\",\"i\":1}");
  json_t *r = th_reply(l, 1);
  assert_true(l->closed || th_error(r) != 0);
  assert_int_equal(l->link.nsessions, 0);
  th_link_t *m = th_open();
  char longid[80];
  memset(longid, 'x', 70);
  longid[70] = 0;
  th_send(m, "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"%s\",\"i\":2}", FZ_APP_ID, longid);
  assert_int_equal(m->link.nsessions, 0);
  assert_true(m->closed || th_error(th_reply(m, 2)) != 0);
  th_end();
}

/* A peer provokes refused logins at will: their log lines are capped over the server (at
 * most 100 a second), as the other refusals' are, so a flood cannot fill the disk. */
static void refused_login_lines_are_capped(void **state) {
  (void)state;
  char path[] = "/tmp/tern-test-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  int level = log_level;
  log_level = LOG_INFO;
  assert_int_equal(log_open(path), 0);
  th_begin();
  th_link_t *l = th_open();
  for (int i = 1; i <= 300; i++)
    th_send(l, "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"bad\\u0001id\",\"i\":%d}", FZ_APP_ID,
            i);
  assert_false(l->closed);
  assert_int_equal(th_error(th_reply(l, 300)), LC_INVALID_LOGIN); /* each one answered */
  th_end();
  log_open(NULL);
  log_level = level;
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[4096];
  int n = 0;
  while (fgets(line, sizeof line, f))
    if (strstr(line, " login ") && strstr(line, "result=refused")) n++;
  fclose(f);
  unlink(path);
  /* 100 in the first second; a run crossing into the next may write 100 more */
  assert_true(n >= 100);
  assert_true(n <= 200);
}

static void close_replies_closed_and_ends_the_session(void **state) {
  (void)state;
  th_begin();
  th_link_t *l = th_login("alice");
  th_send(l, "{\"cmd\":\"session\",\"op\":\"close\",\"peerId\":\"alice\",\"i\":3}");
  json_t *r = th_reply(l, 3);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "closed");
  assert_int_equal(l->link.nsessions, 0);
  th_end();
}

static void refresh_gives_a_new_token(void **state) {
  (void)state;
  th_begin();
  th_link_t *l = th_login("alice");
  th_send(l, "{\"cmd\":\"session\",\"op\":\"refresh\",\"peerId\":\"alice\",\"i\":4,\"sessionMessage\":{}}");
  json_t *r = th_reply(l, 4);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "refreshed");
  assert_non_null(th_str(r, "sessionMessage.st"));
  th_end();
}

static void query_tells_who_is_online(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  th_login("bob");
  th_send(a, "{\"cmd\":\"session\",\"op\":\"query\",\"peerId\":\"alice\",\"i\":5,"
             "\"sessionMessage\":{\"sessionPeerIds\":[\"bob\",\"carol\"]}}");
  json_t *r = th_reply(a, 5);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "query_result");
  assert_string_equal(th_str(r, "sessionMessage.onlineSessionPeerIds.0"), "bob");
  assert_null(th_str(r, "sessionMessage.onlineSessionPeerIds.1"));
  th_end();
}

static void a_tagged_login_closes_the_older_device(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_open();
  th_send(a,
          "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"alice\",\"i\":1,"
          "\"sessionMessage\":{\"tag\":\"mobile\",\"deviceId\":\"d1\"}}",
          FZ_APP_ID);
  assert_string_equal(th_str(th_reply(a, 1), "op"), "opened");
  th_link_t *b = th_open();
  th_send(b,
          "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"alice\",\"i\":1,"
          "\"sessionMessage\":{\"tag\":\"mobile\",\"deviceId\":\"d2\"}}",
          FZ_APP_ID);
  assert_string_equal(th_str(th_reply(b, 1), "op"), "opened");
  json_t *kicked = th_take(a, "session", "closed");
  assert_non_null(kicked);
  assert_int_equal(th_int(kicked, "sessionMessage.code"), LC_SESSION_CONFLICT);
  json_decref(kicked);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(open_replies_opened_with_a_token),
      cmocka_unit_test(open_refused_for_another_app_or_a_bad_id),
      cmocka_unit_test(refused_login_lines_are_capped),
      cmocka_unit_test(close_replies_closed_and_ends_the_session),
      cmocka_unit_test(refresh_gives_a_new_token),
      cmocka_unit_test(query_tells_who_is_online),
      cmocka_unit_test(a_tagged_login_closes_the_older_device),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
