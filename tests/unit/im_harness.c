/* im_harness.c — see im_harness.h. */
#include "im_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "codec.h"
#include "im.h"

#define TH_LINKS 8
static th_link_t links[TH_LINKS];
static int nlinks;
static store_reader_t *reader;

static void link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  th_link_t *tl = (th_link_t *)l;
  if (tl->closed) return;
  uint8_t *tmp = malloc(plen + blen + 1);
  if (plen) memcpy(tmp, prefix, plen);
  if (blen) memcpy(tmp + plen, body, blen);
  fz_server_frame(tmp, plen + blen); /* every frame decodes, with its required fields */
  lc_cmd_t *cmd = codec_decode(tmp, plen + blen, LC_FMT_BINARY);
  if (cmd) {
    json_array_append_new(tl->frames, pb_to_json(&cmd->base));
    codec_free(cmd);
  }
  free(tmp);
}

static void link_close(im_link_t *l, int code, const char *reason) {
  (void)reason;
  th_link_t *tl = (th_link_t *)l;
  if (tl->closed) return;
  tl->closed = 1;
  tl->close_code = code ? code : 1000;
}

static size_t link_queued(im_link_t *l) {
  (void)l;
  return 0;
}

static const im_link_ops_t ops = {.send = link_send, .close = link_close, .queued = link_queued};

void th_begin(void) {
  fz_begin();
  nlinks = 0;
  memset(links, 0, sizeof links);
  reader = store_reader_new(fz_server()->store);
  assert_non_null(reader);
}

void th_end(void) {
  for (int i = 0; i < nlinks; i++) {
    th_gone(&links[i], 1000);
    json_decref(links[i].frames);
    links[i].frames = NULL;
  }
  fz_drain();
  store_reader_free(reader);
  reader = NULL;
  fz_end();
}

store_reader_t *th_reader(void) { return reader; }

th_link_t *th_open(void) {
  assert_true(nlinks < TH_LINKS);
  th_link_t *l = &links[nlinks++];
  memset(l, 0, sizeof *l);
  l->frames = json_array();
  im_link_open(&l->link, fz_imw(), &ops, 3, "127.0.0.1");
  l->open = 1;
  return l;
}

void th_gone(th_link_t *l, int code) {
  if (!l->open) return;
  im_link_gone(&l->link, l->closed ? l->close_code : code);
  l->open = 0;
  fz_drain();
}

void th_drain(void) { fz_drain(); }

static void vsend(th_link_t *l, int hold, const char *fmt, va_list ap) {
  char text[8192];
  vsnprintf(text, sizeof text, fmt, ap);
  json_error_t jerr;
  json_t *j = json_loads(text, 0, &jerr);
  if (!j) fail_msg("bad test JSON %s: %s", text, jerr.text);
  char err[200];
  ProtobufCMessage *m = pb_from_json(&lc__generic_command__descriptor, j, err, sizeof err);
  if (!m) fail_msg("not a command %s: %s", text, err);
  buf_t out = BUF_INIT;
  codec_pack((const lc_cmd_t *)m, &out);
  protobuf_c_message_free_unpacked(m, NULL);
  json_decref(j);
  int code = im_link_message(&l->link, out.data, out.len, 0);
  if (code) link_close(&l->link, code, NULL); /* as ws.c's deliver() */
  buf_free(&out);
  if (!hold) fz_drain();
}

void th_send(th_link_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsend(l, 0, fmt, ap);
  va_end(ap);
}

void th_send_held(th_link_t *l, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsend(l, 1, fmt, ap);
  va_end(ap);
}

json_t *th_reply(th_link_t *l, int i) {
  size_t k;
  json_t *f;
  json_array_foreach(l->frames, k, f) {
    json_t *fi = json_object_get(f, "i");
    if (fi && json_integer_value(fi) == i) return f;
  }
  return NULL;
}

static int matches(json_t *f, const char *cmd, const char *op) {
  if (json_object_get(f, "i")) return 0;
  const char *c = json_string_value(json_object_get(f, "cmd"));
  const char *o = json_string_value(json_object_get(f, "op"));
  return c && strcmp(c, cmd) == 0 && (!op || (o && strcmp(o, op) == 0));
}

json_t *th_take(th_link_t *l, const char *cmd, const char *op) {
  size_t k;
  json_t *f;
  json_array_foreach(l->frames, k, f) {
    if (matches(f, cmd, op)) {
      json_incref(f);
      json_array_remove(l->frames, k);
      return f;
    }
  }
  return NULL;
}

int th_count(th_link_t *l, const char *cmd, const char *op) {
  int n = 0;
  size_t k;
  json_t *f;
  json_array_foreach(l->frames, k, f) n += matches(f, cmd, op);
  return n;
}

void th_clear(th_link_t *l) { json_array_clear(l->frames); }

th_link_t *th_login(const char *peer) {
  th_link_t *l = th_open();
  th_send(l,
          "{\"cmd\":\"session\",\"op\":\"open\",\"appId\":\"%s\",\"peerId\":\"%s\",\"i\":9000,"
          "\"sessionMessage\":{\"ua\":\"test\"}}",
          FZ_APP_ID, peer);
  json_t *r = th_reply(l, 9000);
  if (!r || strcmp(json_string_value(json_object_get(r, "op")), "opened") != 0) {
    char *s = r ? json_dumps(r, 0) : NULL;
    fail_msg("login of %s: %s", peer, s ? s : "no reply");
  }
  th_clear(l);
  return l;
}

static json_t *at(json_t *f, const char *path) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", path);
  json_t *v = f;
  for (char *save = NULL, *p = strtok_r(buf, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
    if (json_is_array(v)) v = json_array_get(v, (size_t)atoi(p));
    else v = json_object_get(v, p);
  }
  return v;
}

const char *th_str(json_t *frame, const char *path) { return json_string_value(at(frame, path)); }

long long th_int(json_t *frame, const char *path) {
  json_t *v = at(frame, path);
  if (json_is_string(v)) return atoll(json_string_value(v)); /* int64 fields come as strings */
  return json_is_integer(v) ? json_integer_value(v) : json_is_true(v) ? 1 : 0;
}

int th_error(json_t *reply) {
  if (!reply) return 0;
  long long c = th_int(reply, "errorMessage.code");
  if (c) return (int)c;
  return (int)th_int(reply, "convMessage.code");
}

char *th_start(th_link_t *l, int i, const char *m, const char *extra) {
  th_send(l, "{\"cmd\":\"conv\",\"op\":\"start\",\"i\":%d,\"convMessage\":{\"m\":%s%s%s}}", i, m, extra ? "," : "",
          extra ? extra : "");
  json_t *r = th_reply(l, i);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "started");
  char *cid = strdup(th_str(r, "convMessage.cid"));
  assert_non_null(cid);
  return cid;
}

long long th_direct(th_link_t *l, int i, const char *cid, const char *text) {
  th_send(l, "{\"cmd\":\"direct\",\"i\":%d,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"%s\"}}", i, cid, text);
  json_t *r = th_reply(l, i);
  assert_non_null(r);
  assert_string_equal(th_str(r, "cmd"), "ack");
  assert_int_equal(th_error(r), 0);
  return th_int(r, "ackMessage.t");
}

int64_t th_conv_id(const char *cid) {
  conv_row_t row;
  assert_int_equal(store_conv_load(th_reader(), cid, &row), 0);
  int64_t id = row.id;
  conv_row_free(&row);
  return id;
}
