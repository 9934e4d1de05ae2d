/* test_im_patch.c — im_patch.c's handler on a fake link (im_harness.h): patch/modify, an
 * edit and a recall: the reply, the push to the other members, the stored content. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"

typedef struct {
  char text[64];
  int flags;
} got_t;

static int got_cb(void *arg, const msg_view_t *m) {
  got_t *g = arg;
  size_t n = m->len < 63 ? m->len : 63;
  memcpy(g->text, m->data, n);
  g->text[n] = 0;
  g->flags = m->flags;
  return 0;
}

static got_t stored(const char *cid, long long t) {
  logs_req_t q = {.conv = th_conv_id(cid), .limit = 1, .has_lo = 1, .lo_incl = 1, .lo_ts = t, .newer = 1};
  got_t g = {{0}, 0};
  assert_int_equal(store_logs(th_reader(), &q, got_cb, &g), 0);
  return g;
}

static void edit_and_recall(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  long long t = th_direct(a, 2, cid, "typo");
  char *mid = strdup(th_str(th_reply(a, 2), "ackMessage.uid"));
  th_clear(b);
  th_send(a,
          "{\"cmd\":\"patch\",\"op\":\"modify\",\"i\":3,\"patchMessage\":{\"patches\":[{\"cid\":\"%s\",\"mid\":\"%s\","
          "\"timestamp\":%lld,\"data\":\"fixed\"}]}}",
          cid, mid, t);
  json_t *r = th_reply(a, 3);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "modified");
  assert_true(th_int(r, "patchMessage.lastPatchTime") > 0);
  json_t *p = th_take(b, "patch", "modify");
  assert_non_null(p);
  assert_string_equal(th_str(p, "patchMessage.patches.0.data"), "fixed");
  assert_string_equal(th_str(p, "patchMessage.patches.0.mid"), mid);
  json_decref(p);
  assert_string_equal(stored(cid, t).text, "fixed");
  /* bob may not edit alice's message */
  th_send(b,
          "{\"cmd\":\"patch\",\"op\":\"modify\",\"i\":4,\"patchMessage\":{\"patches\":[{\"cid\":\"%s\",\"mid\":\"%s\","
          "\"timestamp\":%lld,\"data\":\"mine\"}]}}",
          cid, mid, t);
  assert_int_equal(th_error(th_reply(b, 4)), LC_MESSAGE_OWNERSHIP_REQUIRED);
  assert_string_equal(stored(cid, t).text, "fixed");
  /* a recall */
  th_send(a,
          "{\"cmd\":\"patch\",\"op\":\"modify\",\"i\":5,\"patchMessage\":{\"patches\":[{\"cid\":\"%s\",\"mid\":\"%s\","
          "\"timestamp\":%lld,\"recall\":true}]}}",
          cid, mid, t);
  assert_string_equal(th_str(th_reply(a, 5), "op"), "modified");
  got_t g = stored(cid, t);
  assert_true(g.flags & MSG_F_RECALLED);
  assert_non_null(strstr(g.text, "-127"));
  free(mid);
  free(cid);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(edit_and_recall),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
