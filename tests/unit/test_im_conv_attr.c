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
      cmocka_unit_test(mute_and_unmute),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
