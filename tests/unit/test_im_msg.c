/* test_im_msg.c — im_msg.c's handlers on a fake link (im_harness.h): direct (ack after the
 * commit, the push to the other members, what is stored), ack, read, logs, receipts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"

static int count_cb(void *arg, const msg_view_t *m) {
  (void)m;
  (*(int *)arg)++;
  return 0;
}

static void direct_is_acked_after_the_commit_and_pushed(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_clear(b);
  /* held: the store's completion has not run, so there is no ack and no push yet */
  th_send_held(a, "{\"cmd\":\"direct\",\"i\":2,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"hello\"}}", cid);
  assert_null(th_reply(a, 2));
  assert_int_equal(th_count(b, "direct", NULL), 0);
  th_drain();
  json_t *ack = th_reply(a, 2);
  assert_non_null(ack);
  assert_string_equal(th_str(ack, "cmd"), "ack");
  const char *uid = th_str(ack, "ackMessage.uid");
  assert_non_null(uid);
  json_t *p = th_take(b, "direct", NULL);
  assert_non_null(p);
  assert_string_equal(th_str(p, "directMessage.msg"), "hello");
  assert_string_equal(th_str(p, "directMessage.fromPeerId"), "alice");
  assert_string_equal(th_str(p, "directMessage.cid"), cid);
  assert_string_equal(th_str(p, "directMessage.id"), uid);
  json_decref(p);
  /* stored */
  logs_req_t q = {.conv = th_conv_id(cid), .limit = 10};
  int n = 0;
  assert_int_equal(store_logs(th_reader(), &q, count_cb, &n), 0);
  assert_int_equal(n, 1);
  free(cid);
  th_end();
}

static void direct_refused_to_a_non_member(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *c = th_login("carol");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_send(c, "{\"cmd\":\"direct\",\"i\":2,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"x\"}}", cid);
  assert_int_equal(th_error(th_reply(c, 2)), LC_INVALID_MESSAGING_TARGET);
  logs_req_t q = {.conv = th_conv_id(cid), .limit = 10};
  int n = 0;
  assert_int_equal(store_logs(th_reader(), &q, count_cb, &n), 0);
  assert_int_equal(n, 0);
  free(cid);
  th_end();
}

typedef struct {
  int64_t ack_ts, read_ts;
} prog_t;

static void prog_cb(void *arg, const member_progress_t *p) {
  if (strcmp(p->client, "bob") == 0) {
    ((prog_t *)arg)->ack_ts = p->ack_ts;
    ((prog_t *)arg)->read_ts = p->read_ts;
  }
}

static void ack_and_read_move_the_member_forward_and_send_receipts(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_send(a, "{\"cmd\":\"direct\",\"i\":2,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"r?\",\"r\":true}}", cid);
  json_t *ack = th_reply(a, 2);
  long long t = th_int(ack, "ackMessage.t");
  char *mid = strdup(th_str(ack, "ackMessage.uid"));
  th_clear(a);
  th_send(b, "{\"cmd\":\"ack\",\"ackMessage\":{\"cid\":\"%s\",\"mid\":\"%s\",\"t\":%lld}}", cid, mid, t);
  prog_t pg = {0};
  assert_int_equal(store_progress(th_reader(), th_conv_id(cid), prog_cb, &pg), 0);
  assert_int_equal(pg.ack_ts, t);
  json_t *rcp = th_take(a, "rcp", NULL);
  assert_non_null(rcp); /* alice asked for a receipt */
  assert_string_equal(th_str(rcp, "rcpMessage.id"), mid);
  json_decref(rcp);
  th_send(b, "{\"cmd\":\"read\",\"readMessage\":{\"convs\":[{\"cid\":\"%s\",\"timestamp\":%lld,\"mid\":\"%s\"}]}}", cid,
          t, mid);
  assert_int_equal(store_progress(th_reader(), th_conv_id(cid), prog_cb, &pg), 0);
  assert_int_equal(pg.read_ts, t);
  free(mid);
  free(cid);
  th_end();
}

static void logs_return_history_oldest_first(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_direct(a, 2, cid, "one");
  th_direct(a, 3, cid, "two");
  th_direct(a, 4, cid, "three");
  th_send(a, "{\"cmd\":\"logs\",\"i\":5,\"logsMessage\":{\"cid\":\"%s\",\"limit\":2}}", cid);
  json_t *r = th_reply(a, 5);
  assert_non_null(r);
  assert_string_equal(th_str(r, "cmd"), "logs");
  assert_string_equal(th_str(r, "logsMessage.logs.0.data"), "two");
  assert_string_equal(th_str(r, "logsMessage.logs.1.data"), "three");
  assert_null(th_str(r, "logsMessage.logs.2.data"));
  th_link_t *c = th_login("carol"); /* not a member */
  th_send(c, "{\"cmd\":\"logs\",\"i\":6,\"logsMessage\":{\"cid\":\"%s\"}}", cid);
  assert_true(th_error(th_reply(c, 6)) != 0);
  free(cid);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(direct_is_acked_after_the_commit_and_pushed),
      cmocka_unit_test(direct_refused_to_a_non_member),
      cmocka_unit_test(ack_and_read_move_the_member_forward_and_send_receipts),
      cmocka_unit_test(logs_return_history_oldest_first),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
