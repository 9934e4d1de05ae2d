/* test_routes.c — the router's path patterns (routes.c route_match): literal segments,
 * ":name" parameters, a final "*name" rest, and percent-decoding after matching; and the
 * route table's auth column against docs/rest.md's "Who may call what" table, row for row,
 * so the documented key of every route is the one the code enforces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <http_parser.h>
#include <stdio.h>

#include "http.h"
#include "rest.h"

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

/* ---------------------------------------------------------------- the auth audit */

static const char *const LEVELS[] = {"master", "client", "app", "upload", "metrics", "open"};

typedef struct {
  char method[8], path[160];
  int auth, seen;
} doc_row_t;

typedef struct {
  doc_row_t rows[512];
  int n;
} doc_t;

static const char *method_name(int m) { return http_method_str((enum http_method)m); }

/* Adds one documented row; "{a,b}" in the path (one group) stands for each alternative. */
static void doc_add(doc_t *d, const char *method, const char *path, int auth) {
  const char *open = strchr(path, '{'), *close = open ? strchr(open, '}') : NULL;
  if (!open || !close) {
    assert_true(d->n < 512);
    snprintf(d->rows[d->n].method, sizeof d->rows[d->n].method, "%s", method);
    snprintf(d->rows[d->n].path, sizeof d->rows[d->n].path, "%s", path);
    d->rows[d->n].auth = auth;
    d->n++;
    return;
  }
  for (const char *alt = open + 1; alt < close;) {
    const char *end = memchr(alt, ',', (size_t)(close - alt));
    if (!end) end = close;
    char one[160];
    snprintf(one, sizeof one, "%.*s%.*s%s", (int)(open - path), path, (int)(end - alt), alt, close + 1);
    doc_add(d, method, one, auth);
    alt = end + 1;
  }
}

/* The table under "## Who may call what": | `METHOD[, METHOD]` | `path` | level | … | */
static void doc_load(doc_t *d) {
  FILE *f = fopen(TERN_SOURCE_DIR "/docs/rest.md", "r");
  assert_non_null(f);
  char line[1024];
  int in = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "## ", 3)) in = !strncmp(line, "## Who may call what", 20);
    if (!in || strncmp(line, "| `", 3) != 0) continue;
    char methods[64], path[160], level[16];
    assert_int_equal(sscanf(line, "| `%63[^`]` | `%159[^`]` | %15[a-z] |", methods, path, level), 3);
    int auth = -1;
    for (int i = 0; i < 6; i++)
      if (!strcmp(level, LEVELS[i])) auth = i;
    if (auth < 0) fail_msg("docs/rest.md: unknown key level \"%s\" for %s", level, path);
    for (char *m = strtok(methods, ", "); m; m = strtok(NULL, ", ")) doc_add(d, m, path, auth);
  }
  fclose(f);
  assert_true(d->n > 50);
}

typedef struct {
  doc_t *doc;
  int missing;
} audit_t;

static void audit_row(void *arg, const rest_route_t *rt) {
  audit_t *a = arg;
  for (int i = 0; i < a->doc->n; i++) {
    doc_row_t *row = &a->doc->rows[i];
    if (strcmp(row->method, method_name(rt->method)) || strcmp(row->path, rt->path)) continue;
    row->seen = 1;
    if (row->auth != (int)rt->auth) {
      print_error("%s %s: docs/rest.md says %s, the route table %s\n", row->method, rt->path, LEVELS[row->auth],
                  LEVELS[rt->auth]);
      a->missing++;
    }
    return;
  }
  print_error("%s %s (%s) is not in docs/rest.md's \"Who may call what\"\n", method_name(rt->method), rt->path,
              LEVELS[rt->auth]);
  a->missing++;
}

static void test_auth_documented(void **state) {
  static doc_t doc;
  doc_load(&doc);
  audit_t a = {&doc, 0};
  routes_each(audit_row, &a);
  for (int i = 0; i < doc.n; i++)
    if (!doc.rows[i].seen) {
      print_error("docs/rest.md lists %s %s, which is no route\n", doc.rows[i].method, doc.rows[i].path);
      a.missing++;
    }
  assert_int_equal(a.missing, 0);
}

/* Only the routes the official SDKs call with the app key, and the public ones, are open to
 * less than the master key — whatever the doc says, a new route needs a reason to be here. */
static void open_row(void *arg, const rest_route_t *rt) {
  static const char *const weaker[] = {
      "/v1/route",
      "/health",
      "/ready",
      "/files/:id",
      "/files/:id/*name", /* open (probes: /ready answers from a cache past 8 in flight) */
      "/1.1/rtm/notifications",
      "/1.1/classes/_ConversationMemberInfo",     /* the JS SDK, with st */
      "/1.2/rtm/clients/:client_id/unread-count", /* with st */
      "/1.1/rtm/sign",
      "/1.2/rtm/clients/sign", /* user login signatures */
      "/1.1/installations",
      "/1.1/installations/:id", /* leancloud-storage */
      "/1.1/files",
      "/1.2/files",
      "/1.1/files/*name",
      "/1.2/files/*name",
      "/1.1/files/:id",
      "/1.2/files/:id",
      "/1.1/fileTokens",
      "/1.2/fileTokens",
      "/1.1/fileUploads/:id",
      "/1.1/fileCallback",
      "/1.2/fileCallback",
      "/metrics",
      "/console",
      "/console/",
      "/console/*file",
      "/chat",
      "/chat/",
      "/chat/*file", /* static pages */
  };
  int *bad = arg;
  if (rt->auth == AUTH_MASTER) return;
  for (size_t i = 0; i < sizeof weaker / sizeof weaker[0]; i++)
    if (!strcmp(rt->path, weaker[i])) return;
  print_error("%s %s is open to less than the master key\n", method_name(rt->method), rt->path);
  (*bad)++;
}

static void test_auth_default_master(void **state) {
  int bad = 0;
  routes_each(open_row, &bad);
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literal),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_rest),
      cmocka_unit_test(test_too_many_params),
      cmocka_unit_test(test_auth_documented),
      cmocka_unit_test(test_auth_default_master),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
