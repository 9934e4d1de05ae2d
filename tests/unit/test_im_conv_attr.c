/* test_im_conv_attr.c — im_conv_attr.c's handlers on a fake link (im_harness.h):
 * conv/update (the reply, `updated` to the members, the stored document) and conv/mute,
 * conv/unmute (the member in `mu`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"

static json_t *stored_doc(const char *cid) {
  char *doc = NULL;
  assert_int_equal(store_conv_doc(th_reader(), th_conv_id(cid), &doc), 0);
  json_t *d = json_loads(doc, 0, NULL);
  free(doc);
  assert_non_null(d);
  return d;
}

static void update_stores_and_tells_the_members(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_clear(b);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"update\",\"i\":2,\"convMessage\":{\"cid\":\"%s\","
          "\"attr\":{\"data\":\"{\\\"name\\\":\\\"renamed\\\",\\\"attr.level\\\":3}\"}}}",
          cid);
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "updated");
  json_t *mod = json_loads(th_str(r, "convMessage.attrModified.data"), 0, NULL);
  assert_string_equal(json_string_value(json_object_get(mod, "name")), "renamed");
  json_decref(mod);
  json_t *p = th_take(b, "conv", "updated");
  assert_non_null(p);
  assert_string_equal(th_str(p, "convMessage.initBy"), "alice");
  json_decref(p);
  json_t *d = stored_doc(cid);
  assert_string_equal(json_string_value(json_object_get(d, "name")), "renamed");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "attr"), "level")), 3);
  json_decref(d);
  /* a non-member may not */
  th_link_t *c = th_login("carol");
  th_send(c,
          "{\"cmd\":\"conv\",\"op\":\"update\",\"i\":3,\"convMessage\":{\"cid\":\"%s\","
          "\"attr\":{\"data\":\"{\\\"name\\\":\\\"x\\\"}\"}}}",
          cid);
  assert_true(th_error(th_reply(c, 3)) != 0);
  d = stored_doc(cid);
  assert_string_equal(json_string_value(json_object_get(d, "name")), "renamed");
  json_decref(d);
  free(cid);
  th_end();
}

/* The job names keys by segments, whatever they hold; the stored document has exactly them
 * (before, a key with a quote set alone was stored under an escaped name). */
static void update_keys_of_any_text(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  /* the attr JSON as text, then as a JSON string inside the frame */
  const char *steps[] = {
      "{\"q\\\"k\":1,\"\u4e2d\":4,\"new.branch.leaf\":5,\"b\\\\s\":6}",
      "{\"b[0]\":2,\"mix\\\"[x\":3,\"new.branch.other\":true}",
      "{\"b[0]\":{\"__op\":\"Delete\"},\"new.branch.leaf\":{\"__op\":\"Increment\",\"amount\":1}}",
  };
  for (int i = 0; i < 3; i++) {
    json_t *attr = json_string(steps[i]);
    char *data = json_dumps(attr, JSON_ENCODE_ANY);
    th_send(a, "{\"cmd\":\"conv\",\"op\":\"update\",\"i\":%d,\"convMessage\":{\"cid\":\"%s\",\"attr\":{\"data\":%s}}}",
            10 + i, cid, data);
    free(data);
    json_decref(attr);
    json_t *r = th_reply(a, 10 + i);
    assert_non_null(r);
    assert_string_equal(th_str(r, "op"), "updated");
  }
  json_t *d = stored_doc(cid);
  json_t *want = json_loads("{\"q\\\"k\":1,\"\u4e2d\":4,\"b\\\\s\":6,\"mix\\\"[x\":3,"
                            "\"new\":{\"branch\":{\"leaf\":6,\"other\":true}}}",
                            0, NULL);
  assert_non_null(want);
  const char *k;
  json_t *v;
  json_object_foreach(want, k, v) {
    if (!json_equal(json_object_get(d, k), v)) {
      char *text = json_dumps(d, JSON_COMPACT);
      fail_msg("key %s: stored %s", k, text);
    }
  }
  assert_null(json_object_get(d, "b[0]"));
  json_decref(want);
  json_decref(d);
  free(cid);
  th_end();
}

static int muted(const char *cid, const char *who) {
  json_t *d = stored_doc(cid);
  int yes = 0;
  size_t k;
  json_t *v;
  json_array_foreach(json_object_get(d, "mu"), k, v) yes |= strcmp(json_string_value(v), who) == 0;
  json_decref(d);
  return yes;
}

static void mute_and_unmute(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"mute\",\"i\":2,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  assert_string_equal(th_str(th_reply(a, 2), "op"), "updated");
  assert_int_equal(muted(cid, "alice"), 1);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"unmute\",\"i\":3,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  assert_string_equal(th_str(th_reply(a, 3), "op"), "updated");
  assert_int_equal(muted(cid, "alice"), 0);
  free(cid);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(update_stores_and_tells_the_members),
      cmocka_unit_test(update_keys_of_any_text),
      cmocka_unit_test(mute_and_unmute),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
