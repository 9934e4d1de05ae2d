/* test_codec.c — the codec against the golden frames captured from the official JS SDK
 * (tests/unit/data/vectors.jsonl, from shared/spec): every C->S frame the SDK sent must
 * decode to the recorded command, and every command must encode back to the same bytes
 * (protobufjs writes fields in number order, as protobuf-c does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"
#include "codec.h"

static uint8_t *unhex(const char *hex, size_t *n) {
  size_t len = strlen(hex) / 2;
  uint8_t *out = malloc(len + 1);
  for (size_t i = 0; i < len; i++) sscanf(hex + 2 * i, "%2hhx", &out[i]);
  *n = len;
  return out;
}

/* protobufjs' toObject shows `direction: 1` (the schema default) even when the field is
 * not on the wire; drop such defaults from the expectation before comparing. */
static void drop_wire_absent_defaults(json_t *expected, json_t *got) {
  json_t *el = json_object_get(expected, "logsMessage"), *gl = json_object_get(got, "logsMessage");
  if (el && !json_object_get(gl, "direction")) json_object_del(el, "direction");
}

static void test_vectors(void **state) {
  FILE *f = fopen(TERN_SOURCE_DIR "/tests/unit/data/vectors.jsonl", "r");
  assert_non_null(f);
  char line[65536];
  int n = 0, encoded = 0;
  while (fgets(line, sizeof line, f)) {
    json_error_t err;
    json_t *v = json_loads(line, 0, &err);
    assert_non_null(v);
    json_t *expected = json_object_get(v, "command");
    size_t len;
    uint8_t *bytes = unhex(json_string_value(json_object_get(v, "hex")), &len);
    const char *frame = json_string_value(json_object_get(v, "frame"));
    lc_cmd_t *cmd;
    if (strcmp(frame, "text") == 0) cmd = codec_decode(bytes, len, LC_FMT_BASE64);
    else cmd = codec_decode(bytes, len, LC_FMT_BINARY);
    assert_non_null(cmd);
    json_t *got = pb_to_json(&cmd->base);
    json_t *exp = json_deep_copy(expected);
    drop_wire_absent_defaults(exp, got);
    if (!json_equal(exp, got)) {
      char *a = json_dumps(exp, JSON_SORT_KEYS), *b = json_dumps(got, JSON_SORT_KEYS);
      fail_msg("vector %d decoded differently:\n expected %s\n got      %s", n, a, b);
    }
    /* encode: the recorded command (as JSON) must pack to the recorded bytes */
    if (strcmp(frame, "binary") == 0 && json_equal(exp, expected)) {
      char msg[256];
      ProtobufCMessage *m = pb_from_json(&lc__generic_command__descriptor, expected, msg, sizeof msg);
      assert_non_null(m);
      buf_t b = BUF_INIT;
      codec_pack((lc_cmd_t *)m, &b);
      assert_int_equal(b.len, len);
      assert_memory_equal(b.data, bytes, len);
      buf_free(&b);
      protobuf_c_message_free_unpacked(m, NULL);
      encoded++;
    }
    json_decref(got);
    json_decref(exp);
    codec_free(cmd);
    free(bytes);
    json_decref(v);
    n++;
  }
  fclose(f);
  assert_true(n >= 100);
  assert_true(encoded >= 80);
}

static void test_base64_framing(void **state) {
  lc_cmd_t c = LC__GENERIC_COMMAND__INIT;
  PB_SET(c, cmd, LC__COMMAND_TYPE__echo);
  PB_SET(c, i, 7);
  buf_t b = BUF_INIT;
  codec_pack(&c, &b);
  char text[64];
  size_t tn = base64_encode(b.data, b.len, text);
  lc_cmd_t *d = codec_decode((uint8_t *)text, tn, LC_FMT_BASE64);
  assert_non_null(d);
  assert_int_equal(d->cmd, LC__COMMAND_TYPE__echo);
  assert_int_equal(d->i, 7);
  codec_free(d);
  buf_free(&b);
}

static void test_rejects_garbage(void **state) {
  const uint8_t bad1[] = {0xff, 0xff, 0xff, 0xff};
  const uint8_t bad2[] = {0x08};                   /* truncated varint value */
  const uint8_t bad3[] = {0xb2, 0x06, 0x05, 0x01}; /* sub-message longer than the frame */
  assert_null(codec_decode(bad1, sizeof bad1, LC_FMT_BINARY));
  assert_null(codec_decode(bad2, sizeof bad2, LC_FMT_BINARY));
  assert_null(codec_decode(bad3, sizeof bad3, LC_FMT_BINARY));
  assert_null(codec_decode((const uint8_t *)"!!!!", 4, LC_FMT_BASE64));
  /* an ErrorCommand without its required reason must not decode (protocol.md §2.1) */
  const uint8_t noreason[] = {0x08, 0x07, 0xba, 0x06, 0x02, 0x08, 0x01};
  assert_null(codec_decode(noreason, sizeof noreason, LC_FMT_BINARY));
}

static void test_peer_prefix(void **state) {
  /* prefix + shared body decodes like one command with peerId set */
  lc_cmd_t c = LC__GENERIC_COMMAND__INIT;
  PB_SET(c, cmd, LC__COMMAND_TYPE__direct);
  PB_SET(c, service, 2);
  buf_t b = BUF_INIT;
  codec_pack_peer("Jerry", &b);
  codec_pack(&c, &b);
  lc_cmd_t *d = codec_decode(b.data, b.len, LC_FMT_BINARY);
  assert_non_null(d);
  assert_string_equal(d->peerid, "Jerry");
  assert_int_equal(d->cmd, LC__COMMAND_TYPE__direct);
  assert_int_equal(d->service, 2);
  codec_free(d);
  buf_free(&b);
}

static void test_json_roundtrip_errors(void **state) {
  char err[128];
  json_t *j = json_pack("{s:s}", "nosuch", "x");
  assert_null(pb_from_json(&lc__generic_command__descriptor, j, err, sizeof err));
  assert_non_null(strstr(err, "nosuch"));
  json_decref(j);
  j = json_pack("{s:i}", "cmd", 1);
  ProtobufCMessage *m = pb_from_json(&lc__generic_command__descriptor, j, err, sizeof err);
  assert_non_null(m);
  assert_int_equal(((lc_cmd_t *)m)->cmd, 1);
  protobuf_c_message_free_unpacked(m, NULL);
  json_decref(j);
  assert_string_equal(lc_cmd_name(2), "direct");
  assert_string_equal(lc_op_name(33), "members_joined");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_base64_framing),
      cmocka_unit_test(test_rejects_garbage),
      cmocka_unit_test(test_peer_prefix),
      cmocka_unit_test(test_json_roundtrip_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
