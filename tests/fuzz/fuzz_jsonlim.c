/* fuzz_jsonlim.c — the scanners issue #11 put in front of parsers: jsonlim.c's text depth
 * check (JSON_MAX_DEPTH, run on every document a peer sends before jansson sees it) and
 * utf8.c's well-formedness, repair and client-id checks; plus im_msg.c's _lctype scanner,
 * which reads message text the same way. Each is compared with an independent judge.
 *
 * Input:  max:u8  text...
 *   max   a depth cap for the early-stopping calls (mod 80)
 *   text  any bytes: JSON text, or a string / client id
 *
 * Checks, besides the sanitizers:
 *   - json_text_depth equals the nesting depth of what jansson parses (valid JSON), and
 *     with a cap returns min(depth, cap + 1); json_value_depth on the parsed value likewise;
 *   - json_loadb_capped refuses (with a message) exactly what is deeper than 64 levels, and
 *     otherwise parses what json_loadb parses, to an equal value;
 *   - json_compact_size equals the length of json_dumps' compact text;
 *   - utf8_valid agrees with jansson's own UTF-8 judgement (json_stringn);
 *   - utf8_sanitize's output is well-formed, and is the input itself when that was;
 *     json_stringn_lossy never fails;
 *   - utf8_client_id_ok is exactly: well-formed, 1 to 64 code points, no C0 control
 *     character and no DEL (utf8.h's contract), on the text up to its first NUL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_target.h"
#include "im_internal.h" /* scan_lctype */
#include "jsonlim.h"
#include "utf8.h"

static void fail(const char *what, const uint8_t *in, size_t n) {
  fprintf(stderr, "FUZZ CHECK FAILED: %s (%zu bytes):", what, n);
  for (size_t i = 0; i < n && i < 2048; i++) fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", in[i]);
  fprintf(stderr, "\n");
  abort();
}

static int imin(int a, int b) { return a < b ? a : b; }

static void check_json(const char *s, size_t n, int cap) {
  const uint8_t *in = (const uint8_t *)s;
  int full = json_text_depth(s, n, 1 << 20);
  if (json_text_depth(s, n, cap) != imin(full, cap + 1))
    fail("json_text_depth with a cap is not min(depth, cap + 1)", in, n);
  json_error_t e1, e2;
  json_t *v = json_loadb(s, n, JSON_DECODE_ANY, &e1);
  json_t *c = json_loadb_capped(s, n, JSON_DECODE_ANY, &e2);
  if (full > JSON_MAX_DEPTH) {
    if (c) fail("json_loadb_capped took text deeper than JSON_MAX_DEPTH", in, n);
    if (!strstr(e2.text, "deeper")) fail("json_loadb_capped refused deep text without saying so", in, n);
  } else if (!v != !c || (v && !json_equal(v, c))) {
    fail("json_loadb_capped and json_loadb disagree on text within the cap", in, n);
  }
  if (v) {
    if (json_value_depth(v, 1 << 20) != full) fail("json_text_depth differs from the parsed value's depth", in, n);
    if (json_value_depth(v, cap) != imin(full, cap + 1))
      fail("json_value_depth with a cap is not min(depth, cap + 1)", in, n);
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text || json_compact_size(v) != strlen(text))
      fail("json_compact_size is not the compact text's length", in, n);
    free(text);
  }
  json_decref(v);
  json_decref(c);
}

static void check_utf8(const char *s, size_t n) {
  const uint8_t *in = (const uint8_t *)s;
  int valid = utf8_valid(s, n);
  json_t *j = json_stringn(s, n);
  if (valid != (j != NULL))
    fail(valid ? "utf8_valid took what jansson refuses" : "utf8_valid refused what jansson takes", in, n);
  json_decref(j);

  buf_t b = BUF_INIT;
  utf8_sanitize(s, n, &b);
  if (!utf8_valid((const char *)b.data, b.len)) fail("utf8_sanitize left ill-formed UTF-8", in, n);
  if (valid && (b.len != n || (n && memcmp(b.data, s, n) != 0))) fail("utf8_sanitize changed well-formed text", in, n);
  buf_free(&b);
  json_t *l = json_stringn_lossy(s, n);
  if (!json_is_string(l)) fail("json_stringn_lossy failed", in, n);
  json_decref(l);

  /* the client-id rule on the C string the server would see */
  size_t len = strnlen(s, n);
  char *id = malloc(len + 1);
  memcpy(id, s, len);
  id[len] = 0;
  int want = len > 0 && utf8_valid(id, len) && utf8_chars(id) <= UTF8_CLIENT_ID_MAX;
  for (size_t i = 0; i < len && want; i++)
    if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) want = 0;
  if (utf8_client_id_ok(id) != want)
    fail(want ? "utf8_client_id_ok refused a valid id" : "utf8_client_id_ok took an invalid id", in, n);
  free(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int cap = data[0] % 80;
  /* an exact-size copy, so nothing reads past the text unnoticed */
  size_t n = size - 1;
  char *s = malloc(n ? n : 1);
  memcpy(s, data + 1, n);
  check_json(s, n, cap);
  check_utf8(s, n);
  int lctype;
  (void)scan_lctype(s, n, &lctype);
  free(s);
  return 0;
}
