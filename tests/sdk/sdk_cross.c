/* sdk_cross.c — the libtern half of the cross-client test (tests/integration/
 * cross.test.mjs): libtern's Tom and the official JS SDK's Jerry chat both ways.
 *
 *   sdk_cross <tom-id> <jerry-id>
 *
 * Tom creates a conversation with Jerry, prints "conv <id>", sends one message of every
 * built-in type plus custom type 1001 (with attributes and custom fields) and prints each
 * as sent ("sent {json}"); then prints every message Jerry sends back ("got {json}") until
 * seven arrived. The JSON shows exactly what libtern parsed, for the Node side to compare
 * with what the JS SDK sent. Env: TERN_URL, TERN_APP_ID. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/sync.h"
#include "tern/tern.h"

#define FAIL(...)                                                                                                      \
  do {                                                                                                                 \
    fprintf(stderr, __VA_ARGS__);                                                                                      \
    fprintf(stderr, "\n");                                                                                             \
    exit(1);                                                                                                           \
  } while (0)

static int received;

static json_t *describe(const tern_msg_t *m) {
  json_t *j = json_pack("{s:s?,s:s?,s:I,s:i}", "id", tern_msg_id(m), "from", tern_msg_from(m), "timestamp",
                        (json_int_t)tern_msg_timestamp(m), "type", tern_msg_type(m));
  if (tern_msg_text(m)) json_object_set_new(j, "text", json_string(tern_msg_text(m)));
  if (tern_msg_attributes(m)) json_object_set_new(j, "attributes", json_loads(tern_msg_attributes(m), 0, NULL));
  if (tern_msg_file_url(m)) {
    json_t *f = json_pack("{s:s}", "url", tern_msg_file_url(m));
    if (tern_msg_file_obj_id(m)) json_object_set_new(f, "objId", json_string(tern_msg_file_obj_id(m)));
    json_t *meta = json_object();
    if (tern_msg_file_name(m)) json_object_set_new(meta, "name", json_string(tern_msg_file_name(m)));
    if (tern_msg_file_format(m)) json_object_set_new(meta, "format", json_string(tern_msg_file_format(m)));
    if (tern_msg_file_size(m) >= 0) json_object_set_new(meta, "size", json_integer(tern_msg_file_size(m)));
    if (tern_msg_file_width(m) >= 0) json_object_set_new(meta, "width", json_integer(tern_msg_file_width(m)));
    if (tern_msg_file_height(m) >= 0) json_object_set_new(meta, "height", json_integer(tern_msg_file_height(m)));
    if (tern_msg_file_duration(m) >= 0) json_object_set_new(meta, "duration", json_real(tern_msg_file_duration(m)));
    json_object_set_new(f, "metaData", meta);
    json_object_set_new(j, "file", f);
  }
  if (tern_msg_type(m) == TERN_MSG_LOCATION)
    json_object_set_new(j, "location",
                        json_pack("{s:f,s:f}", "latitude", tern_msg_latitude(m), "longitude", tern_msg_longitude(m)));
  const char *fields[] = {"pokes", "target"};
  for (int i = 0; i < 2; i++) {
    char *v = tern_msg_field(m, fields[i]);
    if (v) json_object_set_new(j, fields[i], json_loads(v, JSON_DECODE_ANY, NULL));
    free(v);
  }
  json_object_set_new(j, "content", json_string(tern_msg_content(m)));
  return j;
}

static void print(const char *tag, const tern_msg_t *m) {
  json_t *j = describe(m);
  char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  printf("%s %s\n", tag, s);
  fflush(stdout);
  free(s);
  json_decref(j);
}

static void on_msg(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *d) {
  print("got", m);
  received++;
}

int main(int argc, char **argv) {
  if (argc < 3) FAIL("usage: sdk_cross TOM JERRY");
  tern_options_t o;
  tern_options_init(&o);
  o.url = getenv("TERN_URL");
  o.app_id = getenv("TERN_APP_ID");
  tern_t *t = tern_sync_new(&o);
  if (!t) FAIL("tern_sync_new");
  tern_register_message_type(t, 1001);
  tern_client_t *tom = tern_client_get(t, argv[1], NULL);
  tern_delegate_t d = {.on_message = on_msg, .on_common_message = on_msg};
  tern_client_set_delegate(tom, &d, NULL);
  int rc = tern_sync_open(tom, NULL);
  if (rc) FAIL("open: %s", tern_err_name(rc));
  const char *members[] = {argv[2]};
  tern_conv_t *conv;
  rc = tern_sync_create_conv(tom, "cross", members, 1, "{\"topic\":\"interop\"}", 0, &conv);
  if (rc) FAIL("create: %s", tern_err_name(rc));
  printf("conv %s\n", tern_conv_id(conv));
  fflush(stdout);
  /* give the JS client a moment to learn the conversation (INVITED) */
  tern_sync_wait(t, 300);

  tern_msg_t *msgs[7];
  char attrs[7][256];
  for (int i = 0; i < 7; i++)
    snprintf(
        attrs[i], sizeof attrs[i],
        "{\"index\":%d,\"unicode\":\"猫🐱 \\\"q\\\" \\\\ back\\nslash\",\"nested\":{\"list\":[1,\"two\",{\"three\":3}],"
        "\"nothing\":null},\"n\":-1.5,\"flag\":true}",
        i);
  msgs[0] = tern_msg_new_text("hello from libtern", attrs[0]);
  msgs[1] =
      tern_msg_new_file_url(TERN_MSG_IMAGE, "萌妹子一枚", "http://files.example.invalid/a%20b.png?x=1&y=2", attrs[1]);
  msgs[2] =
      tern_msg_new_file_url(TERN_MSG_AUDIO, "听听人类的神曲~", "http://files.example.invalid/1427444393952", attrs[2]);
  msgs[3] = tern_msg_new_file_url(TERN_MSG_VIDEO, NULL, "http://files.example.invalid/1427267336319", attrs[3]);
  msgs[4] = tern_msg_new_location("新开的蛋糕店！", 39.9042, 116.4074, attrs[4]);
  msgs[5] = tern_msg_new_file_url(TERN_MSG_FILE, "a doc", "http://files.example.invalid/doc.pdf", attrs[5]);
  msgs[6] = tern_msg_new_typed(1001, "poke", attrs[6]);
  tern_msg_set_field(msgs[6], "pokes", "3");
  tern_msg_set_field(msgs[6], "target", "{\"who\":\"Jerry\",\"where\":[\"kitchen\",\"hole\"]}");
  for (int i = 0; i < 7; i++) {
    tern_msg_t *sent = NULL;
    rc = tern_sync_send(conv, msgs[i], 0, &sent);
    if (rc) FAIL("send %d: %s", i, tern_err_name(rc));
    print("sent", sent);
    tern_msg_free(sent);
    tern_msg_free(msgs[i]);
  }
  for (int waited = 0; received < 7 && waited < 30000; waited += 50) tern_sync_wait(t, 50);
  if (received < 7) FAIL("got %d of 7 replies", received);
  tern_sync_close(tom);
  tern_free(t);
  return 0;
}
