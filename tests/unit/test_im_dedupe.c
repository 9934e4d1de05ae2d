/* test_im_dedupe.c — a resent message is stored once (im_dedupe.c).
 *
 * On one node: the first send is committed but its ack has not left (its completion is
 * held, im_harness.h) when the connection goes; the client reconnects (r:true + st) and
 * resends with the same dt: the resend is acked with the first id, nothing more is stored,
 * and the other member gets the message once.
 *
 * What the store keeps of a message's dt (im_dt_hash): the hash is stored (SQLite msg.dt, PostgreSQL msg.dt) and compared by every node, so it
 * must never change: these are FNV-1a-64's published values (the FNV test suite: "a",
 * "foobar"). A dt that is absent, empty, over IM_DT_MAX bytes or not UTF-8 is not kept (0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_harness.h"
#include "im_internal.h"

static int count_cb(void *arg, const msg_view_t *m) {
  (void)m;
  (*(int *)arg)++;
  return 0;
}

/* session/open of peer on a new link with r:true and st (NULL: a fresh login); the reply. */
static th_link_t *open_as(const char *peer, const char *st, json_t **reply) {
  th_link_t *l = th_open();
  char sm[512];
  if (st) snprintf(sm, sizeof sm, "{\"ua\":\"test\",\"r\":true,\"st\":\"%s\"}", st);
  else snprintf(sm, sizeof sm, "{\"ua\":\"test\"}");
  th_send(l, "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"%s\",\"i\":1,\"sessionMessage\":%s}",
          FZ_APP_ID, peer, sm);
  *reply = th_reply(l, 1);
  assert_non_null(*reply);
  assert_string_equal(th_str(*reply, "op"), "opened");
  return l;
}

static void resend_after_reconnect_while_the_ack_was_held(void **state) {
  (void)state;
  th_begin();
  json_t *opened;
  th_link_t *a = open_as("alice", NULL, &opened);
  char *st = strdup(th_str(opened, "sessionMessage.st"));
  th_link_t *b = th_login("bob");
  char *cid = th_start(a, 2, "[\"bob\"]", NULL);
  th_clear(b);
#define DM "{\"cmd\":\"direct\",\"i\":3,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"once\",\"dt\":\"u-1\"}}"
  th_send_held(a, DM, cid); /* committed (inline writes), the ack not sent */
  assert_null(th_reply(a, 3));
  th_gone(a, 1006);
  /* a fresh login is not a reconnect: not compared (docs/protocol-map.md) — so use r:true */
  th_link_t *a2 = open_as("alice", st, &opened);
  th_send_held(a2, DM, cid);
  json_t *ack = th_reply(a2, 3); /* answered at once, from the store */
  assert_non_null(ack);
  assert_string_equal(th_str(ack, "cmd"), "ack");
  char *uid = strdup(th_str(ack, "ackMessage.uid"));
  th_drain(); /* the first send's completion: its push to bob */
  json_t *p = th_take(b, "direct", NULL);
  assert_non_null(p);
  assert_string_equal(th_str(p, "directMessage.id"), uid);
  json_decref(p);
  assert_int_equal(th_count(b, "direct", NULL), 0);
  logs_req_t q = {.conv = th_conv_id(cid), .limit = 10};
  int n = 0;
  assert_int_equal(store_logs(th_reader(), &q, count_cb, &n), 0);
  assert_int_equal(n, 1);
  free(uid);
  free(cid);
  free(st);
  th_end();
}

/* r:true is the client's word: after one reconnect only its first IM_DEDUPE_CHECKS sends
 * with a dt are compared (each is a store read); a resend after them is stored again. */
static void only_the_first_sends_after_a_reconnect_are_compared(void **state) {
  (void)state;
  th_begin();
  json_t *opened;
  th_link_t *a = open_as("alice", NULL, &opened);
  char *st = strdup(th_str(opened, "sessionMessage.st"));
  char *cid = th_start(a, 2, "[\"bob\"]", NULL);
  th_send(a, "{\"cmd\":\"direct\",\"i\":3,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"m\",\"dt\":\"u-0\"}}", cid);
  json_t *first = th_reply(a, 3);
  assert_non_null(first);
  char *uid = strdup(th_str(first, "ackMessage.uid"));
  th_gone(a, 1006);
  th_link_t *a2 = open_as("alice", st, &opened);
  int i = 2;
  for (int k = 0; k < IM_DEDUPE_CHECKS; k++, i++) {
    th_send(a2, "{\"cmd\":\"direct\",\"i\":%d,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"n\",\"dt\":\"v-%d\"}}", i,
            cid, k);
    json_t *ack = th_reply(a2, i);
    assert_non_null(ack);
    assert_string_equal(th_str(ack, "cmd"), "ack");
  }
  th_send(a2, "{\"cmd\":\"direct\",\"i\":%d,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"m\",\"dt\":\"u-0\"}}", i, cid);
  json_t *late = th_reply(a2, i);
  assert_non_null(late);
  assert_string_equal(th_str(late, "cmd"), "ack");
  assert_string_not_equal(th_str(late, "ackMessage.uid"), uid); /* not compared: stored again */
  logs_req_t q = {.conv = th_conv_id(cid), .limit = 1000};
  int n = 0;
  assert_int_equal(store_logs(th_reader(), &q, count_cb, &n), 0);
  assert_int_equal(n, IM_DEDUPE_CHECKS + 2);
  free(uid);
  free(cid);
  free(st);
  th_end();
}

static void hash_is_fnv1a_64(void **state) {
  (void)state;
  assert_true((uint64_t)im_dt_hash("a") == 0xaf63dc4c8601ec8cULL);
  assert_true((uint64_t)im_dt_hash("foobar") == 0x85944171f73967e8ULL);
  /* the JS SDK's dt: a uuid */
  assert_true((uint64_t)im_dt_hash("3b1c1e9c-5e7b-4b7e-9a57-0c9d8e2f6a11") == 0x04034aba429e95fbULL);
  assert_true((uint64_t)im_dt_hash("\xc3\xa9") == 0x0ac21707b7181e01ULL); /* é, UTF-8 */
}

static void unusable_dt_is_not_kept(void **state) {
  (void)state;
  assert_true(im_dt_hash(NULL) == 0);
  assert_true(im_dt_hash("") == 0);
  char s[IM_DT_MAX + 2];
  memset(s, 'd', sizeof s);
  s[IM_DT_MAX] = 0;
  assert_true(im_dt_hash(s) != 0); /* at the cap */
  s[IM_DT_MAX] = 'd';
  s[IM_DT_MAX + 1] = 0;
  assert_true(im_dt_hash(s) == 0);        /* one past it */
  assert_true(im_dt_hash("ab\xff") == 0); /* not UTF-8: as the SDKs never send it */
  assert_true(im_dt_hash("\xc3") == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hash_is_fnv1a_64),
      cmocka_unit_test(unusable_dt_is_not_kept),
      cmocka_unit_test(resend_after_reconnect_while_the_ack_was_held),
      cmocka_unit_test(only_the_first_sends_after_a_reconnect_are_compared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
