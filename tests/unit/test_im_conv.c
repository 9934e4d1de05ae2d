/* test_im_conv.c — im_conv.c's handlers on a fake link (im_harness.h): conv/start (normal,
 * unique, chat room, temporary), add, remove, query, count, max_read, is_member, members;
 * their replies, the pushes to the other members, and the rows they store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"

#define start th_start

static void start_stores_the_conversation_and_tells_the_members(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = start(a, 1, "[\"bob\",\"carol\"]", "\"attr\":{\"data\":\"{\\\"name\\\":\\\"team\\\"}\"}");
  assert_int_equal(strlen(cid), 24);
  /* stored: the creator is a member, members sorted */
  conv_row_t row;
  assert_int_equal(store_conv_load(th_reader(), cid, &row), 0);
  assert_int_equal(row.kind, CONV_NORMAL);
  assert_string_equal(row.creator, "alice");
  assert_int_equal(row.nmembers, 3);
  assert_string_equal(row.members[0], "alice");
  assert_string_equal(row.members[2], "carol");
  char *doc = NULL;
  assert_int_equal(store_conv_doc(th_reader(), row.id, &doc), 0);
  assert_non_null(strstr(doc, "\"team\""));
  free(doc);
  conv_row_free(&row);
  /* bob hears joined and members_joined, after alice's reply */
  json_t *j = th_take(b, "conv", "joined");
  assert_non_null(j);
  assert_string_equal(th_str(j, "convMessage.cid"), cid);
  assert_string_equal(th_str(j, "convMessage.initBy"), "alice");
  json_decref(j);
  j = th_take(b, "conv", "members_joined");
  assert_non_null(j);
  assert_string_equal(th_str(j, "convMessage.m.0"), "alice");
  json_decref(j);
  free(cid);
  th_end();
}

static void unique_start_answers_the_twin(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *one = start(a, 1, "[\"bob\"]", "\"unique\":true");
  char *two = start(b, 2, "[\"alice\"]", "\"unique\":true"); /* the same member set */
  assert_string_equal(one, two);
  assert_true(th_int(th_reply(b, 2), "convMessage.existing"));
  assert_non_null(th_str(th_reply(b, 2), "convMessage.uniqueId"));
  free(one);
  free(two);
  th_end();
}

static void start_refuses_too_many_members_and_bad_ids(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"start\",\"i\":1,\"convMessage\":{\"m\":[\"\"]}}");
  assert_int_equal(th_error(th_reply(a, 1)), LC_INVALID_LOGIN);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"start\",\"i\":2,\"convMessage\":{\"attr\":{\"data\":\"[1]\"}}}");
  assert_int_equal(th_error(th_reply(a, 2)), LC_CONVERSATION_API_FAILED);
  th_end();
}

static void chat_room_and_temporary(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *room = start(a, 1, "[]", "\"transient\":true");
  conv_row_t row;
  assert_int_equal(store_conv_load(th_reader(), room, &row), 0);
  assert_int_equal(row.kind, CONV_ROOM);
  assert_int_equal(row.nmembers, 0);
  conv_row_free(&row);
  /* the creator is in the room at once: count says one online */
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"count\",\"i\":2,\"convMessage\":{\"cid\":\"%s\"}}", room);
  assert_int_equal(th_int(th_reply(a, 2), "convMessage.count"), 1);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"members\",\"i\":3,\"convMessage\":{\"cid\":\"%s\"}}", room);
  json_t *r = th_reply(a, 3);
  assert_non_null(r);
  assert_string_equal(th_str(r, "convMessage.m.0"), "alice");
  char *tmp = start(a, 4, "[\"bob\"]", "\"tempConv\":true,\"tempConvTTL\":60");
  assert_memory_equal(tmp, "_tmp:", 5);
  assert_int_equal(th_int(th_reply(a, 4), "convMessage.tempConvTTL"), 60);
  assert_int_equal(store_conv_load(th_reader(), tmp, &row), 0);
  assert_int_equal(row.kind, CONV_TEMP);
  assert_true(row.expire_at > row.created_at);
  conv_row_free(&row);
  free(room);
  free(tmp);
  th_end();
}

static int has_member(const char *cid, const char *who) {
  conv_row_t row;
  if (store_conv_load(th_reader(), cid, &row) != 0) return -1;
  int yes = 0;
  for (size_t i = 0; i < row.nmembers; i++) yes |= strcmp(row.members[i], who) == 0;
  conv_row_free(&row);
  return yes;
}

static void add_and_remove_members(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob"), *c = th_login("carol");
  char *cid = start(a, 1, "[\"bob\"]", NULL);
  th_clear(b);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"add\",\"i\":2,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"carol\"]}}", cid);
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "added");
  assert_int_equal(has_member(cid, "carol"), 1);
  json_t *j = th_take(c, "conv", "joined");
  assert_non_null(j);
  json_decref(j);
  j = th_take(b, "conv", "members_joined");
  assert_non_null(j);
  assert_string_equal(th_str(j, "convMessage.m.0"), "carol");
  json_decref(j);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"remove\",\"i\":3,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"carol\"]}}", cid);
  assert_string_equal(th_str(th_reply(a, 3), "op"), "removed");
  assert_int_equal(has_member(cid, "carol"), 0);
  j = th_take(c, "conv", "left");
  assert_non_null(j);
  json_decref(j);
  /* a non-member cannot add */
  th_link_t *d = th_login("dave");
  th_send(d, "{\"cmd\":\"conv\",\"op\":\"add\",\"i\":4,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"eve\"]}}", cid);
  assert_true(th_error(th_reply(d, 4)) != 0);
  assert_int_equal(has_member(cid, "eve"), 0);
  free(cid);
  th_end();
}

/* An id named twice in one request is taken once, where it first stands; a refused one is
 * refused each time it is named. */
static void repeated_ids_count_once(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = start(a, 1, "[\"bob\"]", NULL);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"add\",\"i\":2,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"dave\",\"erin\","
          "\"dave\",\"x\\u0001\",\"bob\",\"x\\u0001\",\"erin\"]}}",
          cid);
  json_t *r = th_reply(a, 2);
  assert_string_equal(th_str(r, "op"), "added");
  assert_string_equal(th_str(r, "convMessage.allowedPids.0"), "dave");
  assert_string_equal(th_str(r, "convMessage.allowedPids.1"), "erin");
  assert_string_equal(th_str(r, "convMessage.allowedPids.2"), "bob");
  assert_null(th_str(r, "convMessage.allowedPids.3"));
  assert_int_equal(th_int(r, "convMessage.failedPids.0.code"), LC_INVALID_LOGIN);
  assert_string_equal(th_str(r, "convMessage.failedPids.0.pids.0"), "x\x01");
  assert_string_equal(th_str(r, "convMessage.failedPids.0.pids.1"), "x\x01");
  assert_null(th_str(r, "convMessage.failedPids.0.pids.2"));
  assert_int_equal(has_member(cid, "dave"), 1);
  assert_int_equal(has_member(cid, "erin"), 1);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"remove\",\"i\":3,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"erin\",\"zed\","
          "\"erin\",\"zed\"]}}",
          cid);
  r = th_reply(a, 3);
  assert_string_equal(th_str(r, "op"), "removed");
  assert_string_equal(th_str(r, "convMessage.allowedPids.0"), "erin");
  assert_string_equal(th_str(r, "convMessage.allowedPids.1"), "zed");
  assert_null(th_str(r, "convMessage.allowedPids.2"));
  assert_int_equal(has_member(cid, "erin"), 0);
  free(cid);
  th_end();
}

static void query_count_is_member(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = start(a, 1, "[\"bob\"]", "\"attr\":{\"data\":\"{\\\"name\\\":\\\"q\\\"}\"}");
  th_send(
      a,
      "{\"cmd\":\"conv\",\"op\":\"query\",\"i\":2,\"convMessage\":{\"where\":{\"data\":\"{\\\"name\\\":\\\"q\\\"}\"},"
      "\"limit\":10}}");
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "results");
  json_t *res = json_loads(th_str(r, "convMessage.results.data"), 0, NULL);
  assert_int_equal(json_array_size(res), 1);
  assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "objectId")), cid);
  json_decref(res);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"query\",\"i\":3,\"convMessage\":{\"where\":{\"data\":\"{\\\"$bad\\\":1}\"}}}");
  assert_int_equal(th_error(th_reply(a, 3)), LC_CONVERSATION_QUERY_FAILED);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"count\",\"i\":4,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  assert_int_equal(th_int(th_reply(a, 4), "convMessage.count"), 2);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"is_member\",\"i\":5,\"convMessage\":{\"cids\":[\"%s\",\"nope\"]}}", cid);
  json_t *im = json_loads(th_str(th_reply(a, 5), "convMessage.results.data"), 0, NULL);
  assert_true(json_is_true(json_object_get(im, cid)));
  assert_true(json_is_false(json_object_get(im, "nope")));
  json_decref(im);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"count\",\"i\":6,\"convMessage\":{\"cid\":\"000000000000000000000000\"}}");
  assert_int_equal(th_error(th_reply(a, 6)), LC_CONVERSATION_NOT_FOUND);
  free(cid);
  th_end();
}

static void max_read_reports_the_others_progress(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = start(a, 1, "[\"bob\"]", NULL);
  th_send(a, "{\"cmd\":\"direct\",\"i\":2,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"hi\"}}", cid);
  long long t = th_int(th_reply(a, 2), "ackMessage.t");
  assert_true(t > 0);
  th_send(b, "{\"cmd\":\"read\",\"readMessage\":{\"convs\":[{\"cid\":\"%s\",\"timestamp\":%lld}]}}", cid, t);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"max_read\",\"i\":3,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  json_t *r = th_reply(a, 3);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "max_read");
  assert_int_equal(th_int(r, "convMessage.maxReadTimestamp"), t);
  th_link_t *c = th_login("carol"); /* not a member */
  th_send(c, "{\"cmd\":\"conv\",\"op\":\"max_read\",\"i\":4,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  assert_int_equal(th_error(th_reply(c, 4)), LC_CONVERSATION_MEMBERSHIP_REQUIRED);
  free(cid);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(start_stores_the_conversation_and_tells_the_members),
      cmocka_unit_test(unique_start_answers_the_twin),
      cmocka_unit_test(start_refuses_too_many_members_and_bad_ids),
      cmocka_unit_test(chat_room_and_temporary),
      cmocka_unit_test(add_and_remove_members),
      cmocka_unit_test(repeated_ids_count_once),
      cmocka_unit_test(query_count_is_member),
      cmocka_unit_test(max_read_reports_the_others_progress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
