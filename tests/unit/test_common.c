/* test_common.c — the small pure pieces: WebSocket frame headers, base64, ISO time,
 * session tokens, message ids, handle tables, the presence index and the config table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base64.h"
#include "config.h"
#include "crypto.h"
#include "err.h"
#include "handle_table.h"
#include "im_internal.h"
#include "jsonlim.h"
#include "presence.h"
#include "timeutil.h"
#include "token.h"
#include "utf8.h"
#include "ws_frame.h"

static void test_ws_header_roundtrip(void **state) {
  uint64_t lens[] = {0, 1, 125, 126, 65535, 65536, 1u << 20};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t hdr[WS_MAX_HEADER], mask[4] = {1, 2, 3, 4};
    size_t n = ws_write_header(hdr, WS_OP_BINARY, lens[i], mask);
    ws_header_t h;
    assert_int_equal(ws_parse_header(hdr, n, &h), 1);
    assert_int_equal(h.header_len, n);
    assert_int_equal(h.len, lens[i]);
    assert_int_equal(h.opcode, WS_OP_BINARY);
    assert_true(h.fin && h.masked);
    assert_memory_equal(h.mask, mask, 4);
    for (size_t k = 0; k < n; k++) assert_int_equal(ws_parse_header(hdr, k, &h), 0); /* needs more */
  }
}

static void test_ws_header_rejects(void **state) {
  ws_header_t h;
  const uint8_t rsv[] = {0xc2, 0x80, 0, 0, 0, 0};                 /* RSV1 set */
  const uint8_t badop[] = {0x83, 0x80, 0, 0, 0, 0};               /* opcode 3 */
  const uint8_t longping[] = {0x89, 0xfe, 0x00, 0x80};            /* control frame > 125 */
  const uint8_t fragping[] = {0x09, 0x80, 0, 0, 0, 0};            /* control frame without FIN */
  const uint8_t nonmin[] = {0x82, 0xfe, 0x00, 0x10};              /* 16 bit length for 16 bytes */
  const uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}; /* MSB set */
  assert_int_equal(ws_parse_header(rsv, sizeof rsv, &h), TERN_EPROTO);
  assert_int_equal(ws_parse_header(badop, sizeof badop, &h), TERN_EPROTO);
  assert_int_equal(ws_parse_header(longping, sizeof longping, &h), TERN_EPROTO);
  assert_int_equal(ws_parse_header(fragping, sizeof fragping, &h), TERN_EPROTO);
  assert_int_equal(ws_parse_header(nonmin, sizeof nonmin, &h), TERN_EPROTO);
  assert_int_equal(ws_parse_header(huge, sizeof huge, &h), TERN_EPROTO);
}

static void test_ws_unmask_offsets(void **state) {
  uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  uint8_t data[37], copy[37];
  for (int i = 0; i < 37; i++) data[i] = copy[i] = (uint8_t)i;
  ws_unmask(data, 37, mask, 0);
  for (int i = 0; i < 37; i++) assert_int_equal(data[i], copy[i] ^ mask[i & 3]);
  ws_unmask(data, 5, mask, 0); /* masking twice restores, also when split at odd offsets */
  ws_unmask(data + 5, 32, mask, 5);
  assert_memory_equal(data, copy, 37);
}

static void test_ws_accept(void **state) {
  char out[29];
  const char *key = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 §1.3 */
  ws_accept_key(key, strlen(key), out);
  assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* HMAC against RFC 4231 (SHA-256) and RFC 2202 (SHA-1): a short key, a key of "Jefe",
 * and a key longer than the block, which is hashed first. */
static void test_hmac(void **state) {
  (void)state;
  char hex[65];
  uint8_t mac[32], key20[20], key131[131];
  memset(key20, 0x0b, sizeof key20);
  memset(key131, 0xaa, sizeof key131);
  hmac_sha256(key20, 20, "Hi There", 8, mac);
  hex_encode(mac, 32, hex);
  assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
  hex_encode(mac, 32, hex);
  assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const char *big = "Test Using Larger Than Block-Size Key - Hash Key First";
  hmac_sha256(key131, 131, big, strlen(big), mac);
  hex_encode(mac, 32, hex);
  assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  hmac_sha1(key20, 20, "Hi There", 8, mac);
  hex_encode(mac, 20, hex);
  assert_string_equal(hex, "b617318655057264e28bc0b6fb378c8ef146be00");
  hmac_sha1(key131, 80, big, strlen(big), mac);
  hex_encode(mac, 20, hex);
  assert_string_equal(hex, "aa4ae5e15272d00e95705637ce8a3b55ed402112");
}

static void test_base64(void **state) {
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char out[16];
    size_t n = base64_encode((const uint8_t *)in[i], strlen(in[i]), out);
    out[n] = 0;
    assert_string_equal(out, std[i]);
    uint8_t back[16];
    long m = base64_decode(out, n, back);
    assert_int_equal(m, (long)strlen(in[i]));
    assert_memory_equal(back, in[i], (size_t)m);
  }
  uint8_t b[8];
  assert_int_equal(base64_decode("Zm9v!", 5, b), TERN_EINVAL);
  assert_int_equal(base64_decode("Z", 1, b), TERN_EINVAL);
  assert_int_equal(base64_decode("-_-_", 4, b), 3); /* URL-safe alphabet accepted */
}

static void test_iso(void **state) {
  char out[ISO_LEN + 1];
  iso_format(1516074037683, out);
  assert_string_equal(out, "2018-01-16T03:40:37.683Z");
  int64_t ms;
  assert_int_equal(iso_parse("2018-01-16T03:40:37.683Z", &ms), 0);
  assert_int_equal(ms, 1516074037683);
  assert_int_equal(iso_parse("2018-01-16T03:40:37Z", &ms), 0);
  assert_int_equal(ms, 1516074037000);
  assert_int_equal(iso_parse("2018-13-16T03:40:37Z", &ms), TERN_EINVAL);
  assert_int_equal(iso_parse("yesterday", &ms), TERN_EINVAL);
  assert_int_equal(iso_parse("2018-01-16T03:40:37.683+08:00", &ms), TERN_EINVAL);
}

static void test_token(void **state) {
  char st[TOKEN_MAX_LEN + 1];
  token_info_t info = {.tag = (char *)"x"};
  int64_t before = now_ms();
  token_make("master", "app", "Tom", NULL, 60, st);
  assert_int_equal(strlen(st), 46);
  assert_int_equal(token_check("master", "app", "Tom", st, &info), 0);
  assert_null(info.tag);
  assert_true(info.issued_ms >= before && info.issued_ms <= now_ms()); /* what an admin kick cuts at */
  assert_true(info.expires_ms / 1000 >= before / 1000 + 59 && info.expires_ms / 1000 <= now_ms() / 1000 + 60);
  assert_int_equal(token_check("master", "app", "Jerry", st, NULL), TERN_EINVAL); /* bound to the client */
  assert_int_equal(token_check("other", "app", "Tom", st, NULL), TERN_EINVAL);    /* and to the key */
  assert_int_equal(token_check("master", "app2", "Tom", st, NULL), TERN_EINVAL);  /* and to the app */
  st[5] ^= 1;
  assert_int_equal(token_check("master", "app", "Tom", st, NULL), TERN_EINVAL);
  token_make("master", "app", "Tom", NULL, -10, st);
  assert_int_equal(token_check("master", "app", "Tom", st, NULL), TERN_ETIMEDOUT);
  assert_int_equal(token_check("master", "app", "Tom", "short", NULL), TERN_EINVAL);
  /* the single-sign-on tag travels sealed in the token */
  token_make("master", "app", "Tom", "Mobile", 60, st);
  assert_int_equal(token_check("master", "app", "Tom", st, &info), 0);
  assert_string_equal(info.tag, "Mobile");
  free(info.tag);
  size_t n = strlen(st);
  st[n - 1] = st[n - 1] == 'A' ? 'B' : 'A'; /* a changed tag breaks the seal */
  assert_int_equal(token_check("master", "app", "Tom", st, NULL), TERN_EINVAL);
}

/* Every fresh token starts a lineage of its own; a token made for a lineage carries it
 * sealed, so revoking a lineage (a logout) names every token descended from one login. */
static void test_token_lineage(void **state) {
  char a[TOKEN_MAX_LEN + 1], b[TOKEN_MAX_LEN + 1], c[TOKEN_MAX_LEN + 1];
  token_info_t ia, ib, ic;
  token_make("master", "app", "Tom", NULL, 60, a);
  token_make("master", "app", "Tom", NULL, 60, b);
  assert_int_equal(token_check("master", "app", "Tom", a, &ia), 0);
  assert_int_equal(token_check("master", "app", "Tom", b, &ib), 0);
  assert_memory_not_equal(ia.lineage, ib.lineage, TOKEN_LINEAGE_LEN);
  token_make_lineage("master", "app", "Tom", "Mobile", ia.lineage, 60, c);
  assert_int_equal(token_check("master", "app", "Tom", c, &ic), 0);
  assert_memory_equal(ic.lineage, ia.lineage, TOKEN_LINEAGE_LEN);
  assert_string_equal(ic.tag, "Mobile");
  free(ic.tag);
  /* the lineage is sealed: changing a byte of it breaks the token */
  uint8_t raw[TOKEN_MAX_LEN];
  long len = base64_decode(c, strlen(c), raw);
  assert_true(len > 18);
  raw[12] ^= 1;
  char forged[TOKEN_MAX_LEN + 1];
  forged[base64url_encode(raw, (size_t)len, forged)] = 0;
  assert_int_equal(token_check("master", "app", "Tom", forged, NULL), TERN_EINVAL);
}

static void test_msgid(void **state) {
  char mid[MSGID_LEN + 1];
  msgid_make(1795642112602, 123456, mid);
  assert_int_equal(strlen(mid), 22);
  int64_t ts, seq;
  assert_int_equal(msgid_parse(mid, &ts, &seq), 0);
  assert_int_equal(ts, 1795642112602);
  assert_int_equal(seq, 123456);
  assert_null(strchr(mid, '/')); /* safe in REST paths */
  assert_int_equal(msgid_parse("qNkRkFWOeSqP65S9fDyHJ", &ts, &seq), TERN_EINVAL);
  assert_int_equal(msgid_parse("not an id at all here!", &ts, &seq), TERN_EINVAL);
  msgid_make(5, 0, mid); /* transient ids have no storage key */
  assert_int_equal(msgid_parse(mid, &ts, &seq), TERN_EINVAL);
}

static void test_handle_table(void **state) {
  handle_table_t t;
  handle_table_init(&t, 3);
  int a, b;
  uint64_t ha = handle_table_add(&t, &a), hb = handle_table_add(&t, &b);
  assert_int_equal(handle_owner(ha), 3);
  assert_ptr_equal(handle_table_get(&t, ha), &a);
  handle_table_del(&t, ha);
  assert_null(handle_table_get(&t, ha));
  uint64_t hc = handle_table_add(&t, &a); /* reuses the slot with a new generation */
  assert_true(hc != ha);
  assert_null(handle_table_get(&t, ha));
  assert_ptr_equal(handle_table_get(&t, hc), &a);
  assert_ptr_equal(handle_table_get(&t, hb), &b);
  handle_table_t other;
  handle_table_init(&other, 4);
  assert_null(handle_table_get(&other, hb)); /* a handle of another worker finds nothing */
  handle_table_free(&other);
  for (int i = 0; i < 10000; i++) handle_table_add(&t, &b);
  assert_ptr_equal(handle_table_get(&t, hc), &a);
  handle_table_free(&t);
}

static void test_presence(void **state) {
  presence_t *p = presence_new();
  presence_add(p, "Tom", 1, NULL);
  presence_add(p, "Tom", 2, "phone");
  presence_add(p, "Jerry", 3, NULL);
  uint64_t out[4];
  assert_int_equal(presence_get(p, "Tom", out, 4), 2);
  assert_int_equal(presence_get_tagged(p, "Tom", "phone", out, 4), 1);
  assert_int_equal(out[0], 2);
  assert_true(presence_online(p, "Jerry"));
  assert_int_equal(presence_count(p), 2);
  presence_del(p, "Jerry", 3);
  assert_false(presence_online(p, "Jerry"));
  char id[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(id, sizeof id, "c%d", i);
    presence_add(p, id, (uint64_t)i + 10, NULL);
  }
  assert_int_equal(presence_count(p), 5001);
  assert_int_equal(presence_get(p, "c4999", out, 4), 1);
  assert_int_equal(out[0], 5009);
  presence_free(p);
}

static void test_config(void **state) {
  tern_config_t cfg;
  config_defaults(&cfg);
  assert_string_equal(cfg.listen, "127.0.0.1:8080");
  assert_int_equal(cfg.max_message, 5120);
  char err[200];
  assert_int_equal(config_parse_text(&cfg,
                                     "# comment\nlisten = 0.0.0.0:9000\nidle-timeout=450 # inline\n"
                                     "log_frames = yes\npublic_url = \"ws://example.com/\"\n",
                                     err, sizeof err),
                   0);
  assert_string_equal(cfg.listen, "0.0.0.0:9000");
  assert_int_equal(cfg.idle_timeout, 450);
  assert_int_equal(cfg.log_frames, 1);
  assert_string_equal(cfg.public_url, "ws://example.com/");
  assert_int_equal(config_parse_text(&cfg, "idle_timeout = 0\n", err, sizeof err), TERN_ECONFIG);
  assert_non_null(strstr(err, "line 1"));
  assert_int_equal(config_parse_text(&cfg, "no_such = 1\n", err, sizeof err), TERN_ECONFIG);
  assert_int_equal(config_parse_text(&cfg, "workers = lots\n", err, sizeof err), TERN_ECONFIG);
  assert_int_equal(config_parse_text(&cfg, "just words\n", err, sizeof err), TERN_ECONFIG);
  assert_int_equal(config_set(&cfg, "log-frames", "maybe", err, sizeof err), TERN_ECONFIG);
  config_free(&cfg);
}

static void test_client_id(void **state) {
  static const char *const good[] = {"a",
                                     "Tom",
                                     "0123",
                                     "a b",
                                     "_-.@:/",
                                     "\xe5\xa5\xbd",
                                     "\xf0\x9f\x98\x80",
                                     "\xc2\x80" /* U+0080 */,
                                     "\xef\xbf\xbf" /* U+FFFF */,
                                     "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
                                     NULL};
  for (int i = 0; good[i]; i++) assert_true(utf8_client_id_ok(good[i]));
  static const char *const bad[] = {"",
                                    "a\nb",
                                    "\t",
                                    "a\x1f",
                                    "\x7f",
                                    "a\x80",
                                    "\xc0\xaf" /* overlong / */,
                                    "\xe0\x80\xaf" /* overlong */,
                                    "\xed\xa0\x80" /* surrogate */,
                                    "\xf4\x90\x80\x80" /* > U+10FFFF */,
                                    "\xf5\x80\x80\x80",
                                    "\xe5\xa5" /* cut */,
                                    "\xff",
                                    NULL};
  for (int i = 0; bad[i]; i++) assert_false(utf8_client_id_ok(bad[i]));
  assert_false(utf8_client_id_ok(NULL));
  char id[4 * 65 + 1] = "";
  for (int i = 0; i < 64; i++) strcat(id, "\xf0\x9f\x98\x80"); /* 64 emoji, 256 bytes */
  assert_true(utf8_client_id_ok(id));
  strcat(id, "a");
  assert_false(utf8_client_id_ok(id));
  memset(id, 'x', 64);
  id[64] = 0;
  assert_true(utf8_client_id_ok(id));
  id[64] = 'x';
  id[65] = 0;
  assert_false(utf8_client_id_ok(id));
}

static void hash_of(const char *text, char out[33]) {
  uint8_t d[16];
  md5(text, strlen(text), d);
  hex_encode(d, 16, out);
}

/* json_abort_on_oom: jansson allocates through xmalloc (which aborts when malloc fails)
 * and frees with free; values made afterwards work as before. */
static void test_json_abort_on_oom(void **state) {
  json_malloc_t m = NULL;
  json_free_t f = NULL;
  json_abort_on_oom();
  json_get_alloc_funcs(&m, &f);
  assert_true(m == xmalloc);
  assert_true(f == free);
  json_t *j = json_pack("{s:s, s:[i]}", "a", "b", "c", 1);
  assert_non_null(j);
  char *text = json_dumps(j, JSON_COMPACT);
  assert_string_equal(text, "{\"a\":\"b\",\"c\":[1]}");
  free(text);
  json_decref(j);
}

static void test_unique_id(void **state) {
  char got[33], want[33];
  /* ordinary ids keep the form tern always used: each id and a newline */
  char *ab[] = {"alice", "bob"};
  conv_unique_id(ab, 2, 0, got);
  hash_of("alice\nbob\n", want);
  assert_string_equal(got, want);
  /* an id holding '\n' no longer reads like two ids */
  char *forged[] = {"alice\nbob"};
  conv_unique_id(forged, 1, 0, got);
  assert_string_not_equal(got, want);
  char *split[] = {"a", "b\nc"}, *split2[] = {"a\nb", "c"};
  char other[33];
  conv_unique_id(split, 2, 0, got);
  conv_unique_id(split2, 2, 0, other);
  assert_string_not_equal(got, other);
  /* a temporary conversation's differs from a normal one's over the same members */
  conv_unique_id(ab, 2, 1, got);
  conv_unique_id(ab, 2, 0, other);
  assert_string_not_equal(got, other);
  assert_int_equal(strlen(got), 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ws_header_roundtrip),
      cmocka_unit_test(test_ws_header_rejects),
      cmocka_unit_test(test_ws_unmask_offsets),
      cmocka_unit_test(test_ws_accept),
      cmocka_unit_test(test_hmac),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_iso),
      cmocka_unit_test(test_token),
      cmocka_unit_test(test_token_lineage),
      cmocka_unit_test(test_msgid),
      cmocka_unit_test(test_handle_table),
      cmocka_unit_test(test_presence),
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_client_id),
      cmocka_unit_test(test_unique_id),
      cmocka_unit_test(test_json_abort_on_oom),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
