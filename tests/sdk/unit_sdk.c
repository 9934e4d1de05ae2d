/* unit_sdk.c — cmocka unit tests of libtern's pure parts, driven without a network:
 * the error table, typed-message encoding and parsing, the query builder's JSON, image
 * headers, the history cache's continuity rules, and the I/O-free core through a fake
 * adapter (handshake, login frame, reply, drop → paused and a 1 s reconnect timer). */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "internal.h"
#include "ws_frame.h"

static tern_t *new_tern(void) {
  tern_options_t o;
  tern_options_init(&o);
  o.url = "ws://127.0.0.1:9/im";
  o.app_id = "app";
  tern_t *t = tern_new(&o);
  assert_non_null(t);
  return t;
}

static void test_errors(void **state) {
  assert_string_equal(tern_err_name(0), "OK");
  assert_string_equal(tern_err_name(TERN_ENOMEM), "TERN_ENOMEM");
  assert_string_equal(tern_err_name(TERN_ECACHEMISS), "TERN_ECACHEMISS");
  assert_string_equal(tern_err_name(-4303), "CONVERSATION_NOT_FOUND");
  assert_string_equal(tern_strerror(-4111), "session conflict");
  assert_string_equal(tern_err_name(-12345), "TERN_EUNKNOWN");
  assert_true(TERN_ERR_IS_SERVER(-4563));
  assert_false(TERN_ERR_IS_SERVER(TERN_EIO));
}

static void test_options(void **state) {
  tern_options_t o;
  tern_options_init(&o);
  assert_null(tern_new(&o)); /* no url */
  o.url = "http://x";
  o.app_id = "a";
  assert_null(tern_new(&o)); /* not ws:// */
  o.url = "ws://h:99999/";
  assert_null(tern_new(&o));
  o.url = "ws://h";
  tern_t *t = tern_new(&o);
  assert_non_null(t);
  assert_int_equal(t->port, 80);
  assert_string_equal(t->path, "/");
  tern_free(t);
  tern_free(NULL);
}

static void test_message_encoding(void **state) {
  tern_t *t = new_tern();
  tern_msg_t *m = tern_msg_new_text("hi", "{\"a\":1}");
  assert_string_equal(tern_msg_content(m), "{\"_lctype\":-1,\"_lctext\":\"hi\",\"_lcattrs\":{\"a\":1}}");
  tern_msg_free(m);
  m = tern_msg_new_location(NULL, 45.5, 34.25, NULL);
  assert_string_equal(tern_msg_content(m), "{\"_lctype\":-5,\"_lcloc\":{\"latitude\":45.5,\"longitude\":34.25}}");
  tern_msg_free(m);
  m = tern_msg_new_file_url(TERN_MSG_IMAGE, NULL, "http://x/y.png", NULL);
  assert_string_equal(tern_msg_content(m), "{\"_lctype\":-2,\"_lcfile\":{\"url\":\"http://x/y.png\"}}");
  tern_msg_free(m);
  assert_null(tern_msg_new_typed(0, "x", NULL));
  assert_null(tern_msg_new_text("x", "[1]")); /* attributes must be an object */
  assert_null(tern_msg_new_file_url(TERN_MSG_LOCATION, NULL, "http://x", NULL));

  /* parsing: built-in types, metadata, custom fields; unregistered types stay common */
  tern_msg_t *p = msg_from_content(
      t, "{\"_lctype\":-3,\"_lctext\":\"song\",\"_lcfile\":{\"url\":\"u\",\"objId\":\"o\",\"metaData\":"
         "{\"name\":\"a.mp3\",\"format\":\"mp3\",\"size\":10,\"duration\":2.5}},\"extra\":[1]}");
  assert_int_equal(tern_msg_type(p), TERN_MSG_AUDIO);
  assert_string_equal(tern_msg_text(p), "song");
  assert_string_equal(tern_msg_file_obj_id(p), "o");
  assert_string_equal(tern_msg_file_name(p), "a.mp3");
  assert_int_equal(tern_msg_file_size(p), 10);
  assert_true(tern_msg_file_duration(p) == 2.5);
  char *f = tern_msg_field(p, "extra");
  assert_string_equal(f, "[1]");
  free(f);
  tern_msg_t *d = tern_msg_dup(p);
  assert_string_equal(tern_msg_file_url(d), "u");
  tern_msg_free(d);
  tern_msg_free(p);
  p = msg_from_content(t, "{\"_lctype\":5,\"_lctext\":\"x\"}");
  assert_int_equal(tern_msg_type(p), TERN_MSG_COMMON);
  tern_msg_free(p);
  assert_int_equal(tern_register_message_type(t, 5), 0);
  p = msg_from_content(t, "{\"_lctype\":5,\"_lctext\":\"x\"}");
  assert_int_equal(tern_msg_type(p), 5);
  tern_msg_free(p);
  p = msg_from_content(t, "not json");
  assert_int_equal(tern_msg_type(p), TERN_MSG_COMMON);
  assert_string_equal(tern_msg_content(p), "not json");
  tern_msg_free(p);
  tern_free(t);
}

static void test_query_json(void **state) {
  tern_t *t = new_tern();
  tern_client_t *c = tern_client_get(t, "Tom", NULL);
  tern_query_t *q = tern_query_new(c);
  tern_query_where_str(q, TERN_ATTR("topic"), TERN_EQ, "movie");
  tern_query_where_int(q, "attr.age", TERN_GTE, 18);
  tern_query_where_int(q, "attr.age", TERN_LT, 30);
  tern_query_contains_string(q, "name", "a.b\\Ec");
  tern_query_matches_regex(q, "attr.lang", "^zh", "i");
  const char *m[] = {"Bob", "Jerry"};
  tern_query_contains_all(q, "m", m, 2);
  char *w = tern_query_where_json(q);
  assert_string_equal(w, "{\"attr.age\":{\"$gte\":18,\"$lt\":30},\"attr.lang\":{\"$options\":\"i\",\"$regex\":\"^zh\"},"
                         "\"attr.topic\":\"movie\",\"m\":{\"$all\":[\"Bob\",\"Jerry\"]},"
                         "\"name\":{\"$regex\":\"\\\\Qa.b\\\\E\\\\\\\\E\\\\Qc\\\\E\"}}");
  free(w);
  assert_int_equal(tern_query_set_limit(q, 0), TERN_EINVAL);
  assert_int_equal(tern_query_set_limit(q, 1001), TERN_EINVAL);
  assert_int_equal(tern_query_where(q, "k", TERN_EQ, "{bad"), TERN_EINVAL);
  tern_query_free(q);
  tern_free(t);
}

static void test_image_size(void **state) {
  const uint8_t png[24] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                           'I',  'H', 'D', 'R', 0,    0,    2,    0,    0, 0, 1, 0x10};
  const uint8_t gif[10] = {'G', 'I', 'F', '8', '9', 'a', 0x40, 0x01, 0xf0, 0x00};
  const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 11, 8, 0, 30, 0, 40, 3, 0, 0, 0};
  int w = 0, h = 0;
  assert_int_equal(image_size(png, sizeof png, &w, &h), 0);
  assert_int_equal(w, 512);
  assert_int_equal(h, 272);
  assert_int_equal(image_size(gif, sizeof gif, &w, &h), 0);
  assert_int_equal(w, 320);
  assert_int_equal(h, 240);
  assert_int_equal(image_size(jpg, sizeof jpg, &w, &h), 0);
  assert_int_equal(w, 40);
  assert_int_equal(h, 30);
  assert_int_not_equal(image_size((const uint8_t *)"nope", 4, &w, &h), 0);
}

static tern_msg_t *mk(const char *id, int64_t ts) {
  tern_msg_t *m = tern_msg_new_text(id, NULL);
  msg_set_str(&m->id, id);
  msg_set_str(&m->cid, "c");
  m->ts = ts;
  return m;
}

static void free_msgs(tern_msg_t **v, size_t n) {
  for (size_t i = 0; i < n; i++) tern_msg_free(v[i]);
  free(v);
}

static void test_cache_continuity(void **state) {
  tern_t *t = new_tern();
  tern_client_t *c = tern_client_get(t, "Tom", NULL);
  assert_int_equal(cache_open(c), 0);
  tern_msg_t *all[8];
  char id[8];
  for (int i = 0; i < 8; i++) {
    snprintf(id, sizeof id, "m%d", i);
    all[i] = mk(id, 1000 + i);
  }
  tern_msg_t **v;
  size_t n;
  /* a live message alone says nothing about what is before it */
  cache_put_msg(c, all[7]);
  assert_int_equal(cache_get_before(c, "c", "m7", 1007, 2, 0, &v, &n), TERN_ECACHEMISS);
  /* newest page m4..m7 (a full page: m4 may have older neighbours) */
  cache_put_msgs(c, "c", all + 4, 4, 0, NULL);
  assert_int_equal(cache_get_before(c, "c", "m7", 1007, 3, 0, &v, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(tern_msg_id(v[0]), "m4");
  free_msgs(v, n);
  assert_int_equal(cache_get_before(c, "c", "m7", 1007, 4, 0, &v, &n), TERN_ECACHEMISS);
  assert_int_equal(cache_get_before(c, "c", "m4", 1004, 1, 0, &v, &n), TERN_ECACHEMISS);
  /* the page before m4 came back short: m0 is the first message */
  cache_put_msgs(c, "c", all, 4, 1, "m4");
  assert_int_equal(cache_get_before(c, "c", "m7", 1007, 5, 0, &v, &n), 0);
  assert_int_equal(n, 5);
  assert_string_equal(tern_msg_id(v[0]), "m2");
  assert_string_equal(tern_msg_id(v[4]), "m6");
  free_msgs(v, n);
  assert_int_equal(cache_get_before(c, "c", "m2", 1002, 10, 0, &v, &n), 0);
  assert_int_equal(n, 2); /* m0, m1: everything there is */
  free_msgs(v, n);
  assert_int_equal(cache_get_before(c, "c", "m0", 1000, 10, 0, &v, &n), 0);
  assert_int_equal(n, 0);
  free(v);
  /* offline newest */
  assert_int_equal(cache_get_before(c, "c", NULL, 0, 3, 1, &v, &n), 0);
  assert_string_equal(tern_msg_id(v[2]), "m7");
  free_msgs(v, n);
  /* disabled cache answers nothing */
  tern_client_set_message_cache(c, 0);
  assert_int_equal(cache_get_before(c, "c", "m7", 1007, 1, 0, &v, &n), TERN_ECACHEMISS);
  /* query results honour max age */
  cache_put_query(c, "k", "[]");
  char *r = cache_get_query(c, "k", 3600);
  assert_string_equal(r, "[]");
  free(r);
  assert_null(cache_get_query(c, "other", 3600));
  for (int i = 0; i < 8; i++) tern_msg_free(all[i]);
  tern_free(t);
}

/* ---- the core through a fake adapter ---- */

typedef struct {
  char host[64];
  int port, connects, closes, cleanups, writes;
  int64_t timer;
} fake_io_t;

static void f_connect(void *d, const char *host, int port) {
  fake_io_t *f = d;
  snprintf(f->host, sizeof f->host, "%s", host);
  f->port = port;
  f->connects++;
}
static void f_want_write(void *d) { ((fake_io_t *)d)->writes++; }
static void f_close(void *d) { ((fake_io_t *)d)->closes++; }
static void f_timer(void *d, int64_t ms) { ((fake_io_t *)d)->timer = ms; }
static void f_cleanup(void *d) { ((fake_io_t *)d)->cleanups++; }

static int opened_status = 99, paused;
static void opened(tern_client_t *c, int status, void *data) { opened_status = status; }
static void on_paused(tern_client_t *c, void *d) { paused++; }

/* Takes everything the core wants to write. */
static buf_t drain(tern_t *t) {
  buf_t b = BUF_INIT;
  const void *p;
  size_t n = tern_io_output(t, &p);
  buf_append(&b, p, n);
  tern_io_written(t, n);
  return b;
}

static void test_core(void **state) {
  tern_t *t = new_tern();
  fake_io_t f = {.timer = -2};
  tern_io_t io = {.data = &f,
                  .connect = f_connect,
                  .want_write = f_want_write,
                  .close = f_close,
                  .timer = f_timer,
                  .cleanup = f_cleanup};
  tern_client_t *c = tern_client_get(t, "Tom", NULL);
  assert_int_equal(tern_client_open(c, NULL, opened, NULL), TERN_ECONFIG); /* no adapter yet */
  assert_int_equal(tern_attach(t, &io), 0);
  assert_int_equal(tern_attach(t, &io), TERN_EINVAL);
  tern_delegate_t d = {.on_paused = on_paused};
  tern_client_set_delegate(c, &d, NULL);
  assert_int_equal(tern_client_open(c, NULL, opened, NULL), 0);
  assert_int_equal(f.connects, 1);
  assert_string_equal(f.host, "127.0.0.1");
  assert_int_equal(f.port, 9);

  /* the upgrade request */
  tern_io_connected(t);
  buf_t req = drain(t);
  char *text = buf_cstr(&req);
  assert_non_null(strstr(text, "GET /im HTTP/1.1\r\n"));
  assert_non_null(strstr(text, "Sec-WebSocket-Protocol: lc.protobuf2.3\r\n"));
  char *key = strstr(text, "Sec-WebSocket-Key: ");
  assert_non_null(key);
  key += 19;
  char accept[29];
  ws_accept_key(key, (size_t)(strchr(key, '\r') - key), accept);
  buf_free(&req);
  char resp[256];
  snprintf(resp, sizeof resp,
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: lc.protobuf2.3\r\n\r\n",
           accept);
  tern_io_input(t, resp, strlen(resp));

  /* the login: one masked binary frame holding session/open */
  buf_t out = drain(t);
  ws_header_t h;
  assert_int_equal(ws_parse_header(out.data, out.len, &h), 1);
  assert_true(h.masked);
  assert_int_equal(h.opcode, WS_OP_BINARY);
  ws_unmask(out.data + h.header_len, (size_t)h.len, h.mask, 0);
  lc_cmd_t *cmd = codec_decode(out.data + h.header_len, (size_t)h.len, LC_FMT_BINARY);
  assert_non_null(cmd);
  assert_int_equal(cmd->cmd, LC__COMMAND_TYPE__session);
  assert_int_equal(cmd->op, LC__OP_TYPE__open);
  assert_string_equal(cmd->peerid, "Tom");
  assert_string_equal(cmd->appid, "app");
  int32_t i = cmd->i;
  codec_free(cmd);
  buf_free(&out);

  /* the reply, as an unmasked server frame; the callback is deferred */
  lc_cmd_t rep = LC__GENERIC_COMMAND__INIT;
  Lc__SessionCommand sm = LC__SESSION_COMMAND__INIT;
  PB_SET(rep, cmd, LC__COMMAND_TYPE__session);
  PB_SET(rep, op, LC__OP_TYPE__opened);
  PB_SET(rep, i, i);
  rep.peerid = "Tom";
  sm.st = "token";
  rep.sessionmessage = &sm;
  buf_t body = BUF_INIT, frame = BUF_INIT;
  codec_pack(&rep, &body);
  uint8_t hdr[WS_MAX_HEADER];
  buf_append(&frame, hdr, ws_write_header(hdr, WS_OP_BINARY, body.len, NULL));
  buf_append(&frame, body.data, body.len);
  tern_io_input(t, frame.data, 3); /* split delivery */
  tern_io_input(t, frame.data + 3, frame.len - 3);
  buf_free(&body);
  buf_free(&frame);
  assert_int_equal(opened_status, 0);
  assert_int_equal(tern_client_status(c), TERN_CLIENT_OPEN);
  assert_string_equal(c->st, "token");
  assert_true(f.timer > 0 && f.timer <= 180000); /* keepalive armed */

  /* the connection drops: paused, and a reconnect in ~1 s */
  tern_io_closed(t, TERN_EIO);
  assert_int_equal(paused, 1);
  assert_int_equal(tern_client_status(c), TERN_CLIENT_PAUSED);
  assert_true(f.timer > 900 && f.timer <= 1000);
  tern_free(t);
  assert_int_equal(f.cleanups, 1);
}

/* Bytes from a hostile or broken server never crash the core: random frames (valid headers
 * around random protobuf, then raw noise) after a real handshake, and random content
 * through the typed-message parser. A seeded PRNG keeps it reproducible. */
static uint32_t rng = 12345;
static uint32_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void handshake(tern_t *t) {
  tern_io_connected(t);
  buf_t req = drain(t);
  char *key = strstr(buf_cstr(&req), "Sec-WebSocket-Key: ") + 19;
  char accept[29], resp[256];
  ws_accept_key(key, (size_t)(strchr(key, '\r') - key), accept);
  buf_free(&req);
  snprintf(
      resp, sizeof resp,
      "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: lc.protobuf2.3\r\n\r\n",
      accept);
  tern_io_input(t, resp, strlen(resp));
}

static void test_hostile_input(void **state) {
  for (int round = 0; round < 300; round++) {
    tern_t *t = new_tern();
    fake_io_t f = {.timer = -2};
    tern_io_t io = {.data = &f,
                    .connect = f_connect,
                    .want_write = f_want_write,
                    .close = f_close,
                    .timer = f_timer,
                    .cleanup = f_cleanup};
    tern_attach(t, &io);
    tern_client_t *c = tern_client_get(t, "Tom", NULL);
    tern_client_open(c, NULL, NULL, NULL);
    handshake(t);
    buf_t out = drain(t);
    buf_free(&out);
    for (int k = 0; k < 8; k++) {
      uint8_t payload[300];
      size_t n = rnd() % sizeof payload;
      for (size_t i = 0; i < n; i++) payload[i] = (uint8_t)rnd();
      if (k % 2 == 0) { /* a well-formed frame of random protobuf bytes */
        uint8_t hdr[WS_MAX_HEADER];
        size_t hl = ws_write_header(hdr, (rnd() % 4) ? WS_OP_BINARY : WS_OP_PING, n > 125 ? 125 : n, NULL);
        tern_io_input(t, hdr, hl);
        tern_io_input(t, payload, n > 125 ? 125 : n);
      } else {
        tern_io_input(t, payload, n);
      }
      out = drain(t);
      buf_free(&out);
    }
    tern_free(t);
  }
  /* random content into the typed-message parser */
  tern_t *t = new_tern();
  const char *vals[] = {"null",
                        "1",
                        "\"s\"",
                        "[]",
                        "{}",
                        "{\"url\":5,\"metaData\":[]}",
                        "{\"latitude\":\"x\"}",
                        "{\"metaData\":{\"size\":\"big\",\"width\":1e300}}"};
  for (int i = 0; i < 400; i++) {
    char content[512];
    int type = (int)(rnd() % 9) - 6;
    const char *v1 = vals[rnd() % 8], *v2 = vals[rnd() % 8];
    switch (rnd() % 3) { /* literal formats, so the compiler checks each against its arguments */
    case 0: snprintf(content, sizeof content, "{\"_lctype\":%d,\"_lcfile\":%s}", type, v1); break;
    case 1: snprintf(content, sizeof content, "{\"_lctype\":%d,\"_lcloc\":%s}", type, v1); break;
    default: snprintf(content, sizeof content, "{\"_lctype\":%d,\"_lcattrs\":%s,\"_lctext\":%s}", type, v1, v2); break;
    }
    tern_msg_t *m = msg_from_content(t, content);
    assert_non_null(m);
    assert_non_null(tern_msg_content(m));
    tern_msg_t *d = tern_msg_dup(m);
    tern_msg_free(d);
    tern_msg_free(m);
  }
  tern_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),     cmocka_unit_test(test_options),       cmocka_unit_test(test_message_encoding),
      cmocka_unit_test(test_query_json), cmocka_unit_test(test_image_size),    cmocka_unit_test(test_cache_continuity),
      cmocka_unit_test(test_core),       cmocka_unit_test(test_hostile_input),
  };
  return cmocka_run_group_tests_name("libtern", tests, NULL, NULL);
}
