/* fuzz_dispatch.c — protobuf decode + command dispatch, against the real store.
 *
 * Input: a sequence of records, each one WebSocket message from a client:
 *
 *   flags:u8  len:u16 (big-endian)  payload[len]
 *
 *   flags bit 0   which of two sockets sends it (two links, so pushes between clients and
 *                 multi-device logins happen)
 *   flags bit 1   a text frame: payload is base64 (lc.proto2base64.*)
 *   flags bit 2   hold: do not let store completions run after this message, so the next
 *                 messages arrive while its writes are still in flight
 *   flags bit 3   the socket negotiated lc.protobuf2.1 (offline messages pushed at login)
 *                 rather than .3; read when the socket (re)opens
 *   flags bit 4   the socket reports a full output queue (ops->queued) from now until
 *                 its next record, so chat-room pushes to it are shed by priority
 *   flags bit 5   the disk is full: every store write this message (and the completions
 *                 run after it) submits fails (store_fail_writes), as in production
 *   flags bit 6   after this record the socket drops (1006: will messages go out)
 *   flags bit 7   after this record the socket closes normally (1000)
 *   flags 0xff    not a message: the worker's 1-second sweep runs (im_worker_sweep), at a
 *                 time the payload's first 4 bytes (big-endian seconds, mod 400 days) put
 *                 ahead of now — temporary shut-ups lift, and expired temporary or idle
 *                 conversations and old notifications go (those at most once per
 *                 sweep_interval of that time, as in production: the first sweep of a
 *                 process always runs them)
 *   flags 0xfe    not a message: switches (from now to the end of the input) the options
 *                 the payload's first byte names: bit 0 member_roles on (owner and
 *                 Manager rules for add/remove, #11.19), bit 1 message_edit off, bit 2
 *                 message_recall off (every input starts with the defaults)
 *
 * A short last record takes whatever bytes are left. Learned-id placeholders (fuzz_im.h)
 * in a payload are replaced before it is handed over (in a text record, inside the
 * base64). A socket im closes is gone (with im's close code) at the end of the record;
 * the next record for a gone socket opens a new one, as a reconnecting client would. At
 * the end of the input socket 0 drops (1006) and socket 1 closes (1000).
 *
 * Checks: sanitizers; every frame the server sends must decode with all required fields;
 * pb_to_json/pb_from_json never crash on whatever decodes; the JSON view of a decoded
 * command is accepted back by pb_from_json. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "codec.h"
#include "config.h"
#include "fuzz_im.h"
#include "fuzz_target.h"
#include "store.h"
#include "timeutil.h"

typedef struct {
  im_link_t link;
  int open;   /* im_link_open done and not yet gone */
  int closed; /* im asked to close it, with close_code */
  int close_code;
  size_t queued; /* what ops->queued reports */
} fake_link_t;

static fake_link_t links[2];

static void link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  fake_link_t *fl = (fake_link_t *)l;
  if (fl->closed) return; /* the connection is closing: ws.c drops output then too */
  uint8_t stackbuf[4096];
  uint8_t *tmp = plen + blen <= sizeof stackbuf ? stackbuf : malloc(plen + blen);
  if (plen) memcpy(tmp, prefix, plen);
  if (blen) memcpy(tmp + plen, body, blen);
  fz_server_frame(tmp, plen + blen);
  if (tmp != stackbuf) free(tmp);
}

static void link_close(im_link_t *l, int code, const char *reason) {
  (void)reason;
  fake_link_t *fl = (fake_link_t *)l;
  if (fl->closed) return; /* conn_close: the first reason stands */
  fl->closed = 1;
  fl->close_code = code ? code : 1000;
}

static size_t link_queued(im_link_t *l) { return ((fake_link_t *)l)->queued; }

static const im_link_ops_t ops = {.send = link_send, .close = link_close, .queued = link_queued};

static void link_gone(fake_link_t *fl, int code) {
  if (!fl->open) return;
  im_link_gone(&fl->link, fl->closed ? fl->close_code : code);
  fl->open = fl->closed = 0;
}

/* The JSON view of a client command, both ways (codec.c's descriptor walkers). */
static void json_roundtrip(const uint8_t *p, size_t n, int base64) {
  lc_cmd_t *cmd = codec_decode(p, n, base64 ? LC_FMT_BASE64 : LC_FMT_BINARY);
  if (!cmd) return;
  json_t *j = pb_to_json(&cmd->base);
  char *text = json_dumps(j, JSON_COMPACT);
  free(text);
  char err[200];
  ProtobufCMessage *back = pb_from_json(&lc__generic_command__descriptor, j, err, sizeof err);
  if (back) protobuf_c_message_free_unpacked(back, NULL);
  json_decref(j);
  codec_free(cmd);
}

/* Placeholders hide inside base64 text: decode, substitute, encode again — only when
 * something was replaced, so every other text frame reaches the decoder as it came. */
static size_t substitute_base64(uint8_t **buf, size_t len) {
  uint8_t *raw = malloc(len / 4 * 3 + 3);
  long rl = base64_decode((const char *)*buf, len, raw);
  if (rl > 0) {
    uint8_t *orig = malloc((size_t)rl);
    memcpy(orig, raw, (size_t)rl);
    fz_substitute(raw, (size_t)rl);
    if (memcmp(orig, raw, (size_t)rl) != 0) {
      size_t el = base64_encoded_len((size_t)rl);
      if (el > len) *buf = realloc(*buf, el); /* unpadded text grows by its padding */
      len = base64_encode(raw, (size_t)rl, (char *)*buf);
    }
    free(orig);
  }
  free(raw);
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_begin();
  tern_config_t *cfg = fz_server()->cfg; /* the defaults, whatever the last input set */
  cfg->member_roles = 0;
  cfg->message_edit = cfg->message_recall = 1;
  im_worker_t *imw = fz_imw();
  uint8_t *buf = malloc(size ? size : 1);
  size_t off = 0;
  while (off < size) {
    int flags = data[off++];
    size_t len = size - off;
    if (len >= 2) {
      size_t want = (size_t)data[off] << 8 | data[off + 1];
      off += 2;
      len = size - off < want ? size - off : want;
    } else {
      off += len;
      len = 0;
    }
    if (flags == 0xff) {
      uint32_t secs = 0;
      for (size_t k = 0; k < 4 && k < len; k++) secs = secs << 8 | data[off + k];
      off += len;
      im_worker_sweep(imw, now_ms() + (int64_t)(secs % (400u * 86400u)) * 1000);
      fz_drain();
      continue;
    }
    if (flags == 0xfe) {
      int opt = len ? data[off] : 0;
      off += len;
      cfg->member_roles = opt & 1;
      cfg->message_edit = !(opt & 2);
      cfg->message_recall = !(opt & 4);
      continue;
    }
    fake_link_t *fl = &links[flags & 1];
    if (!fl->open) {
      memset(fl, 0, sizeof *fl);
      im_link_open(&fl->link, imw, &ops, flags & 8 ? 1 : 3, "127.0.0.1");
      fl->open = 1;
    }
    fl->queued = flags & 16 ? (size_t)fz_server()->cfg->output_limit : 0;
    memcpy(buf, data + off, len);
    off += len;
    int base64 = (flags & 2) != 0;
    if (base64) len = substitute_base64(&buf, len);
    else fz_substitute(buf, len);
    json_roundtrip(buf, len, base64);
    if (flags & 32) store_fail_writes(fz_server()->store, 1);
    if (len) { /* ws.c ignores empty messages (legacy heartbeats) */
      int code = im_link_message(&fl->link, buf, len, base64);
      if (code) link_close(&fl->link, code, NULL); /* ws.c's deliver() */
    }
    if (!(flags & 4)) fz_drain();
    store_fail_writes(fz_server()->store, 0);
    if (flags & 64) link_gone(fl, 1006);
    else if (flags & 128) link_gone(fl, 1000);
    for (int k = 0; k < 2; k++)
      if (links[k].closed) link_gone(&links[k], 0);
    if (!(flags & 4)) fz_drain(); /* held: the completions wait for a later record */
  }
  fz_drain();
  link_gone(&links[0], 1006);
  link_gone(&links[1], 1000);
  fz_drain();
  fz_end();
  free(buf);
  return 0;
}
