/* test_jsonlim.c — src/common/jsonlim.c (nesting caps on JSON text and values) and the
 * UTF-8 checks of src/common/utf8.c that issue #11 added (utf8_valid, utf8_sanitize). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "jsonlim.h"
#include "utf8.h"

/* JSON text of an array nested n levels deep; caller frees. */
static char *nest(int n) {
  char *s = malloc((size_t)n * 2 + 1);
  memset(s, '[', (size_t)n);
  memset(s + n, ']', (size_t)n);
  s[2 * n] = 0;
  return s;
}

static int depth(const char *s) { return json_text_depth(s, strlen(s), JSON_MAX_DEPTH); }

static void test_text_depth(void **state) {
  assert_int_equal(depth("1"), 0);
  assert_int_equal(depth("\"[[[\""), 0); /* brackets in strings do not count */
  assert_int_equal(depth("{}"), 1);
  assert_int_equal(depth("{\"a\":[{\"b\":[]}]}"), 4);
  assert_int_equal(depth("[\"\\\"[[\", [1]]"), 2); /* an escaped quote does not end the string */
  assert_int_equal(depth("[\"\\\\\", [[1]]]"), 3); /* an escaped backslash does not escape the quote */
  assert_int_equal(depth("]]]]["), 1);             /* malformed: some number, never negative */
  char *s = nest(64);
  assert_int_equal(depth(s), 64);
  free(s);
  s = nest(5000);
  assert_int_equal(depth(s), JSON_MAX_DEPTH + 1); /* stops counting past max */
  free(s);
}

static void test_capped_load(void **state) {
  char *ok = nest(64), *deep = nest(65);
  json_error_t err;
  json_t *v = json_loads_capped(ok, 0, &err);
  assert_non_null(v);
  assert_int_equal(json_value_depth(v, JSON_MAX_DEPTH), 64);
  json_decref(v);
  assert_null(json_loads_capped(deep, 0, &err));
  assert_non_null(strstr(err.text, "deeper than 64"));
  assert_null(json_loadb_capped(deep, strlen(deep), 0, NULL)); /* err is optional */
  /* a value past the cap: json_value_depth stops at max + 1 */
  v = json_loads(deep, 0, NULL);
  assert_int_equal(json_value_depth(v, JSON_MAX_DEPTH), JSON_MAX_DEPTH + 1);
  assert_int_equal(json_value_depth(v, 200), 65);
  json_decref(v);
  free(ok);
  free(deep);
  v = json_pack("{s:s, s:[i, i]}", "a", "x\"y", "b", 1, 22);
  char *text = json_dumps(v, JSON_COMPACT);
  assert_int_equal(json_compact_size(v), strlen(text));
  free(text);
  json_decref(v);
}

static void test_utf8_valid(void **state) {
  static const struct {
    const char *s;
    int ok;
  } cases[] = {
      {"plain ascii", 1},
      {"\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80", 1}, /* 你好 😀 */
      {"\xff", 0},                                      /* never a UTF-8 byte */
      {"\xc0\xaf", 0},                                  /* overlong '/' */
      {"\xe0\x80\xaf", 0},                              /* overlong, three bytes */
      {"\xed\xa0\x80", 0},                              /* a surrogate */
      {"\xf4\x90\x80\x80", 0},                          /* above U+10FFFF */
      {"\xc3", 0},                                      /* truncated */
      {"\xc3\x28", 0},                                  /* bad continuation */
      {"\xf4\x8f\xbf\xbf", 1},                          /* U+10FFFF */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_int_equal(utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok);
  assert_int_equal(utf8_valid("", 0), 1);
}

static void test_utf8_sanitize(void **state) {
  const char in[] = "tw"
                    "a\xff\xfe"
                    "b\xc3("
                    "\xed\xa0\x80"
                    "\xe4\xbd\xa0";
  buf_t b = BUF_INIT;
  utf8_sanitize(in, sizeof in - 1, &b);
  assert_string_equal(buf_cstr(&b), "twa\xef\xbf\xbd\xef\xbf\xbd"
                                    "b\xef\xbf\xbd(\xef\xbf\xbd\xe4\xbd\xa0");
  assert_int_equal(utf8_valid((const char *)b.data, b.len), 1);
  buf_free(&b);
  json_t *j = json_stringn_lossy(in, sizeof in - 1);
  assert_non_null(j);
  assert_non_null(strstr(json_string_value(j), "\xef\xbf\xbd"));
  json_decref(j);
  j = json_stringn_lossy("ok", 2);
  assert_string_equal(json_string_value(j), "ok");
  json_decref(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_depth),
      cmocka_unit_test(test_capped_load),
      cmocka_unit_test(test_utf8_valid),
      cmocka_unit_test(test_utf8_sanitize),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
