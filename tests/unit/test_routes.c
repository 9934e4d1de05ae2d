/* test_routes.c — the router's path patterns (routes.c route_match): literal segments,
 * ":name" parameters, a final "*name" rest, and percent-decoding after matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static void free_params(http_req_t *r) {
  for (int i = 0; i < r->nparams; i++) {
    free(r->params[i].name);
    free(r->params[i].value);
  }
  r->nparams = 0;
}

static void test_literal(void **state) {
  assert_int_equal(route_match("/v1/route", "/v1/route", NULL), 1);
  assert_int_equal(route_match("/v1/route", "/v1/route/", NULL), 0);
  assert_int_equal(route_match("/v1/route", "/v1/rout", NULL), 0);
  assert_int_equal(route_match("/v1/route", "/v1/routes", NULL), 0);
  assert_int_equal(route_match("/v1/route", "/v1", NULL), 0);
  assert_int_equal(route_match("/", "/", NULL), 1);
  assert_int_equal(route_match("/health", "health", NULL), 0);
  assert_int_equal(route_match("/health", "", NULL), 0);
}

static void test_params(void **state) {
  http_req_t r = {0};
  assert_int_equal(route_match("/1.2/rtm/conversations/:cid/members", "/1.2/rtm/conversations/abc123/members", &r), 1);
  assert_int_equal(r.nparams, 1);
  assert_string_equal(http_path_param(&r, "cid"), "abc123");
  assert_null(http_path_param(&r, "members"));
  /* an encoded '/' stays inside its segment and is decoded afterwards */
  assert_int_equal(route_match("/c/:a/x/:b", "/c/a%2Fb/x/%E4%B8%AD", &r), 1);
  assert_int_equal(r.nparams, 2);
  assert_string_equal(http_path_param(&r, "a"), "a/b");
  assert_string_equal(http_path_param(&r, "b"), "\xe4\xb8\xad");
  /* a parameter is one non-empty segment */
  assert_int_equal(route_match("/c/:a/x", "/c//x", NULL), 0);
  assert_int_equal(route_match("/c/:a/x", "/c/1/2/x", NULL), 0);
  assert_int_equal(route_match("/c/:a", "/c/", NULL), 0);
  assert_int_equal(route_match("/c/:a", "/c", NULL), 0);
  free_params(&r);
}

static void test_rest(void **state) {
  http_req_t r = {0};
  assert_int_equal(route_match("/files/:id/*name", "/files/0123/a/b%20c.png", &r), 1);
  assert_string_equal(http_path_param(&r, "id"), "0123");
  assert_string_equal(http_path_param(&r, "name"), "a/b c.png");
  assert_int_equal(route_match("/files/:id/*name", "/files/0123/", NULL), 0);
  assert_int_equal(route_match("/files/:id/*name", "/files/0123", NULL), 0);
  assert_int_equal(route_match("/files/*name/x", "/files/a/x", NULL), 0); /* "*" is last only */
  /* a failed match leaves earlier parameters alone; a new match replaces them */
  assert_int_equal(route_match("/files/:id", "/files/9", &r), 1);
  assert_int_equal(r.nparams, 1);
  assert_string_equal(http_path_param(&r, "id"), "9");
  assert_null(http_path_param(&r, "name"));
  free_params(&r);
}

static void test_too_many_params(void **state) {
  char pat[256] = "", path[256] = "";
  for (int i = 0; i <= HTTP_MAX_PARAMS; i++) {
    char seg[16];
    snprintf(seg, sizeof seg, "/:p%d", i);
    strcat(pat, seg);
    strcat(path, "/v");
  }
  assert_int_equal(route_match(pat, path, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literal),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_rest),
      cmocka_unit_test(test_too_many_params),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
