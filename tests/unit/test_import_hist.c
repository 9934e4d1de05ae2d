/* test_import_hist.c — the importer's history page scanner (src/cli/admin_import_hist.c)
 * and message record writer (admin_import_rec.c), against jansson: a scanned page must
 * give what the same page parsed by json_loadb(…, JSON_ALLOW_NUL) gives, item by item and
 * record by record, and must be refused where jansson refuses it — for hand-written
 * pages and for thousands of mutations of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin_import.h"

/* The page scanned from an exact-size copy (ASan sees any read past its end). */
static imp_items_t *scan(const char *text, size_t n, int *not_array, char *err) {
  char *copy = malloc(n ? n : 1);
  memcpy(copy, text, n);
  imp_items_t *p = imp_items_scan(copy, n, not_array, err, 200);
  if (!p) free(copy);
  return p;
}

static void same_str(const imp_str_t *a, const imp_str_t *b, const char *what, size_t i) {
  if (!a->p || !b->p) {
    if (a->p != b->p) fail_msg("item %zu: %s present in one only", i, what);
    return;
  }
  if (a->n != b->n || memcmp(a->p, b->p, a->n) != 0 || a->p[a->n] != 0)
    fail_msg("item %zu: %s differs (%zu / %zu bytes)", i, what, a->n, b->n);
}

/* The record lines of both views of an item, parsed, must be equal. */
static void same_line(const imp_item_t *a, const imp_item_t *b, size_t i) {
  buf_t la = BUF_INIT, lb = BUF_INIT;
  const char *wa = NULL, *wb = NULL;
  int ra = imp_rec_message_line(&la, "cid\"1", a, NULL, 0, &wa);
  int rb = imp_rec_message_line(&lb, "cid\"1", b, NULL, 0, &wb);
  assert_int_equal(ra, rb);
  if (ra < 0) {
    assert_string_equal(wa, wb);
  } else {
    json_error_t e;
    json_t *ja = json_loadb((const char *)la.data, la.len, JSON_ALLOW_NUL, &e);
    if (!ja)
      fail_msg("item %zu: the scanned record is not JSON: %s: %.*s", i, e.text, (int)la.len, (const char *)la.data);
    json_t *jb = json_loadb((const char *)lb.data, lb.len, JSON_ALLOW_NUL, &e);
    assert_non_null(jb);
    if (!json_equal(ja, jb))
      fail_msg("item %zu: records differ: %.*s / %.*s", i, (int)la.len, (const char *)la.data, (int)lb.len,
               (const char *)lb.data);
    json_decref(ja);
    json_decref(jb);
  }
  buf_free(&la);
  buf_free(&lb);
}

/* Scans text and parses it: both accept it and agree, or both refuse it (a number past
 * what jansson holds is the one difference allowed: jansson refuses the page). Returns
 * 1 when accepted. */
static int differential(const char *text, size_t n) {
  int not_array;
  char err[200];
  imp_items_t *s = scan(text, n, &not_array, err);
  json_error_t je;
  json_t *j = json_loadb(n ? text : "", n, JSON_ALLOW_NUL, &je);
  int jok = json_is_array(j);
  if (!jok) {
    if (s && (strstr(je.text, "too big") || strstr(je.text, "overflow"))) jok = -1;
    else if (s) fail_msg("scanned, but jansson says: %s: %.*s", je.text, (int)(n > 300 ? 300 : n), text);
    json_decref(j);
    imp_items_free(s);
    return 0;
  }
  if (!s) fail_msg("jansson parses it, the scan says: %s: %.*s", err, (int)(n > 300 ? 300 : n), text);
  imp_items_t *v = imp_items_from_json(j);
  json_decref(j);
  assert_int_equal(s->n, v->n);
  for (size_t i = 0; i < s->n; i++) {
    const imp_item_t *a = &s->v[i], *b = &v->v[i];
    same_str(&a->mid, &b->mid, "msg-id", i);
    same_str(&a->from, &b->from, "from", i);
    same_str(&a->data, &b->data, "data", i);
    same_str(&a->to, &b->to, "to", i);
    same_str(&a->conv_id, &b->conv_id, "conv-id", i);
    assert_int_equal(a->has_ts, b->has_ts);
    if (a->has_ts) assert_int_equal(a->ts, b->ts);
    assert_int_equal(a->patch_ts, b->patch_ts);
    assert_int_equal(a->bin, b->bin);
    assert_int_equal(a->recall, b->recall);
    assert_int_equal(a->recalled, b->recalled);
    assert_int_equal(a->mention_all, b->mention_all);
    assert_null(a->obj);
    assert_ptr_equal(b->obj, json_array_get(v->json, i));
    assert_int_equal(!!a->mention_pids.p, !!b->mention_pids_json);
    if (a->mention_pids.p) {
      json_t *mp = json_loadb(a->mention_pids.p, a->mention_pids.n, JSON_ALLOW_NUL, NULL);
      assert_true(json_equal(mp, b->mention_pids_json));
      json_decref(mp);
    }
    same_line(a, b, i);
  }
  imp_items_free(s);
  imp_items_free(v);
  return 1;
}

#define DIFF(lit) differential(lit, sizeof lit - 1)

static const char *const good[] = {
    "[]",
    " \n[ ] \t",
    "[{}]",
    "[{\"timestamp\":1735689600000,\"data\":\"{\\\"_lctype\\\":-1,\\\"_lctext\\\":\\\"hi\\\"}\",\"from\":\"user999\","
    "\"msg-id\":\"3TOBsQtBDkaCYcZ-bO5XGw\",\"bin\":false,\"conv-id\":\"a66d\",\"to\":\"a66d\",\"is-conv\":true,\"is-room\":false}]",
    /* every escape, surrogate pairs, raw UTF-8, U+0000 in a value, / escaped */
    "[{\"msg-id\":\"m1\",\"timestamp\":1,\"data\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t \\u0001\\u001f\\u007f \\u00e9\\u597d "
    "\\ud83d\\ude00 \\u2028 \\u0000 end \xc3\xa9\xe5\xa5\xbd\xf0\x9f\x98\x80\",\"from\":\"\\u0041\"}]",
    /* whitespace everywhere, keys escaped, duplicates (the last wins), fields of other types */
    "[ { \"msg\\u002did\" : \"a\" , \"msg-id\" : \"b\" , \"timestamp\" : 5 , \"timestamp\" : 7 ,"
    " \"from\" : 12 , \"data\" : null , \"bin\" : \"true\" } , { \"data\" : \"x\" , \"data\" : [\"y\"] } ]",
    /* the two spellings of patch time, mention-all and mention-pids, in both orders */
    "[{\"msg-id\":\"a\",\"timestamp\":1,\"data\":\"d\",\"patch-timestamp\":9,\"patchTimestamp\":8,"
    "\"mention-all\":false,\"mentionAll\":true,\"mention-pids\":[],\"mentionPids\":[\"x\"]},"
    "{\"msg-id\":\"b\",\"timestamp\":2,\"data\":\"d\",\"patchTimestamp\":8,\"patch-timestamp\":9,"
    "\"mentionAll\":true,\"mention-all\":false,\"mentionPids\":[\"x\"],\"mention-pids\":[ ]},"
    "{\"msg-id\":\"c\",\"timestamp\":3,\"data\":\"d\",\"patchTimestamp\":8,\"mentionAll\":true,"
    "\"mentionPids\":[ \"\\u00e9\" , \"t\\\"om\" ]},"
    "{\"msg-id\":\"d\",\"timestamp\":4,\"data\":\"d\",\"patch-timestamp\":-3,\"mention-pids\":{\"a\":1},\"recall\":true},"
    "{\"msg-id\":\"e\",\"timestamp\":4.5,\"data\":\"d\",\"patch-timestamp\":1e3,\"recalled\":true,\"bin\":true}]",
    /* numbers of every form, nested values, non-object elements */
    "[1, -0, 2.5e-3, 1E+2, \"s\", true, null, [[[]]], {\"a\":{\"b\":[{\"c\":\"\\u0000\"}]}}, {\"timestamp\":-9223372036854775808},"
    " {\"timestamp\":9223372036854775807}, {\"msg-id\":\"\",\"timestamp\":1,\"data\":\"\"}]",
    /* recalled content, binary */
    "[{\"msg-id\":\"r\",\"timestamp\":1,\"data\":\"{\\\"_lctype\\\":-127}\"},{\"msg-id\":\"q\",\"timestamp\":1,"
    "\"data\":\"{\\\"_lctype\\\": -127 }\",\"bin\":true}]",
};

static const char *const bad[] = {
    "",
    "   ",
    "[",
    "[{",
    "[{}",
    "[{},]",
    "[,]",
    "[{}{}]",
    "[{\"a\"}]",
    "[{\"a\":}]",
    "[{\"a\" 1}]",
    "[{\"a\":1,}]",
    "[{1:1}]",
    "[\"abc]",
    "[\"\\x\"]",
    "[\"\\u12\"]",
    "[\"\\u12g4\"]",
    "[\"\\ud800\"]",
    "[\"\\ud800\\u0041\"]",
    "[\"\\udc00\"]",
    "[\"\t\"]",
    "[\"\x01\"]",
    "[\"\xc0\x80\"]",
    "[\"\xc3\"]",
    "[\"\xe0\x80\x80\"]",
    "[\"\xed\xa0\x80\"]",
    "[\"\xf4\x90\x80\x80\"]",
    "[\"\xf5\x80\x80\x80\"]",
    "[\"\xff\"]",
    "[\"\x80\"]",
    "[01]",
    "[-]",
    "[1.]",
    "[.5]",
    "[1e]",
    "[+1]",
    "[tru]",
    "[nulls]",
    "[True]",
    "[] x",
    "[][]",
    "[{\"\\u0000\":1}]",
    "[{\"a\":{\"\\u0000\":1}}]",
    "\xef\xbb\xbf[]",
};

static void test_good_pages(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    if (!differential(good[i], strlen(good[i]))) fail_msg("good page %zu refused", i);
}

static void test_bad_pages(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int not_array;
    char err[200];
    imp_items_t *s = scan(bad[i], strlen(bad[i]), &not_array, err);
    if (s) fail_msg("bad page %zu scanned: %s", i, bad[i]);
    json_t *j = json_loadb(bad[i], strlen(bad[i]), JSON_ALLOW_NUL, NULL);
    if (j) fail_msg("bad page %zu: jansson parses it: %s", i, bad[i]);
  }
  /* not an array: untouched, so the caller can tell JSON of another shape */
  int not_array;
  char err[200];
  char text[] = "{\"code\":1,\"error\":\"\\u0041\"}";
  assert_null(imp_items_scan(text, strlen(text), &not_array, err, sizeof err));
  assert_int_equal(not_array, 1);
  assert_string_equal(text, "{\"code\":1,\"error\":\"\\u0041\"}");
  assert_null(scan("[1", 2, &not_array, err));
  assert_int_equal(not_array, 0);
  assert_null(imp_items_scan(NULL, 0, &not_array, err, sizeof err)); /* an empty answer's buffer */
  assert_int_equal(not_array, 1);
  /* nesting: as deep as jansson goes, no deeper, and never by recursion without end */
  size_t deep = 100000;
  char *d = malloc(deep * 2);
  memset(d, '[', deep);
  memset(d + deep, ']', deep);
  assert_null(scan(d, deep * 2, &not_array, err));
  assert_non_null(strstr(err, "nested too deep"));
  assert_null(json_loadb(d, deep * 2, 0, NULL));
  free(d);
  /* a 64-bit overflow is no integer (jansson refuses the whole page) */
  imp_items_t *p =
      scan("[{\"timestamp\":9223372036854775808},{\"timestamp\":-9223372036854775809}]", 70, &not_array, err);
  assert_non_null(p);
  assert_int_equal(p->n, 2);
  assert_int_equal(p->v[0].has_ts, 0);
  assert_int_equal(p->v[1].has_ts, 0);
  imp_items_free(p);
}

/* xorshift: the same mutations on every run */
static uint64_t rnd_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

static void test_mutations(void **state) {
  (void)state;
  static const char pieces[] = "[]{}\",:\\u0123456789abcdefABCDEF.-+eE \t\nxtrufalsn\x80\xc3\xa9\xed\xf0\x9f\xff";
  int accepted = 0, total = 0;
  char buf[4096];
  for (size_t g = 0; g < sizeof good / sizeof good[0]; g++) {
    for (int k = 0; k < 1500; k++) {
      size_t n = strlen(good[g]);
      if (n > sizeof buf - 16) continue;
      memcpy(buf, good[g], n);
      int edits = 1 + (int)(rnd() % 3);
      for (int e = 0; e < edits; e++) {
        size_t at = n ? (size_t)(rnd() % n) : 0;
        char c = pieces[rnd() % (sizeof pieces - 1)];
        switch (rnd() % 3) {
        case 0: /* replace */
          if (n) buf[at] = c;
          break;
        case 1: /* insert */
          memmove(buf + at + 1, buf + at, n - at);
          buf[at] = c;
          n++;
          break;
        default: /* delete */
          if (n) {
            memmove(buf + at, buf + at + 1, n - at - 1);
            n--;
          }
        }
      }
      accepted += differential(buf, n);
      total++;
    }
  }
  /* both kinds were seen: the mutations do test acceptance and refusal */
  assert_true(accepted > total / 20);
  assert_true(accepted < total - total / 20);
}

/* The record writer escapes what JSON requires and nothing it need not. */
static void test_record_line(void **state) {
  (void)state;
  const char page[] =
      "[{\"msg-id\":\"m\\\"1\",\"timestamp\":-5,\"from\":\"\\u0000a\",\"data\":\"\\u0001\\u001f\\\"\\\\\\b\\f\\n\\r\\t/"
      "\xc3\xa9\\u2028\",\"bin\":true,\"patchTimestamp\":7,\"mentionPids\":[\"a\"]}]";
  int not_array;
  char err[200];
  imp_items_t *p = scan(page, sizeof page - 1, &not_array, err);
  assert_non_null(p);
  buf_t line = BUF_INIT;
  const char *why;
  assert_int_equal(imp_rec_message_line(&line, "c", &p->v[0], NULL, 0, &why), 0);
  buf_append(&line, "", 1);
  assert_string_equal(
      (const char *)line.data,
      "{\"type\":\"message\",\"cid\":\"c\",\"msg-id\":\"m\\\"1\",\"timestamp\":-5,\"from\":\"\\u0000a\",\"bin\":true,"
      "\"binary\":\"\\u0001\\u001f\\\"\\\\\\b\\f\\n\\r\\t/\xc3\xa9\xe2\x80\xa8\",\"patch-timestamp\":7,"
      "\"mention-pids\":[\"a\"]}");
  /* data in place of the item's (a rewritten URL) */
  line.len = 0;
  assert_int_equal(imp_rec_message_line(&line, "c", &p->v[0], "new", 3, &why), 0);
  buf_append(&line, "", 1);
  assert_non_null(strstr((const char *)line.data, "\"binary\":\"new\""));
  buf_free(&line);
  imp_items_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_pages),
      cmocka_unit_test(test_bad_pages),
      cmocka_unit_test(test_mutations),
      cmocka_unit_test(test_record_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
