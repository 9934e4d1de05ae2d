/* fuzz_http.c — connections from their first byte: HTTP/1.1 requests (router, REST,
 * CORS), the WebSocket upgrade with its header checks and subprotocol choice, and —
 * when the upgrade succeeds — the frames that follow it in the same stream.
 *
 * Input:  chunk:u8  stream...
 *   chunk  the stream arrives in reads of this many bytes (0: one read per request head
 *          or frame); a request split
 *          across reads, or an upgrade with frames in the same read, must work alike
 *   stream the bytes of connection 0, until a switch: the three bytes 00 fe k hand what
 *          follows to connection k & 3 (opened when first used; 0 and 1 come from
 *          127.0.0.1, 2 and 3 from 127.0.0.2), and so on. A connection keeps its state
 *          between its pieces (a request cut by a switch goes on when it is next fed), so
 *          uploads and queries of several connections overlap: the per-address and
 *          server-wide upload slots (max_uploads_per_ip 1, max_uploads 2 in the harness)
 *          are reachable.
 *
 * A session token for client "Tom" is placed in learned slot $s0 (fuzz_im.h), so requests
 * to the REST routes can get past authentication, and four X-LC-Sign values made now go
 * in $g0..$g3: the app key's and the master key's at this moment, and the master key's
 * 30 s inside and 30 s outside sign_header_window (the past side and the future side),
 * so signed requests can be valid, at the edge and just past it, whenever the input runs.
 *
 * Checks, besides the sanitizers: every response is well-formed with a Content-Length
 * that matches its body, and after a 101 the server's frames are valid (fuzz_conn.h);
 * once every connection is gone no upload slot is still held. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "files.h"
#include "fuzz_conn.h"
#include "fuzz_im.h"
#include "fuzz_target.h"
#include "timeutil.h"
#include "token.h"

#define NCONNS 4

/* "md5hex(ts + key),ts" for a timestamp ms from now. */
static void learn_sign(const char *key, int64_t ms) {
  char ts[24], text[160], out[64];
  snprintf(ts, sizeof ts, "%lld", (long long)ms);
  snprintf(text, sizeof text, "%s%s", ts, key);
  uint8_t d[16];
  md5(text, strlen(text), d);
  hex_encode(d, 16, out);
  snprintf(out + 32, sizeof out - 32, ",%s", ts);
  fz_learn(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = data[0];
  fz_begin();
  server_t *srv = fz_server();
  /* A session token for Tom, as $s0: the REST routes act for a client holding one. */
  char st[TOKEN_MAX_LEN + 1];
  token_make(srv->master_key, srv->app_id, "Tom", NULL, 3600, st);
  fz_learn(st);
  int64_t now = now_ms(), window = (int64_t)srv->cfg->sign_header_window * 1000;
  learn_sign(srv->app_key, now);
  learn_sign(srv->master_key, now);
  learn_sign(srv->master_key, now - window + 30000);
  learn_sign(srv->master_key, now + window + 30000);

  conn_t *conns[NCONNS] = {0};
  int k = 0;
  const uint8_t *p = data + 1, *end = data + size;
  while (p < end) {
    const uint8_t *q = p;
    while (q + 2 < end && !(q[0] == 0 && q[1] == 0xfe)) q++;
    const uint8_t *stop = q + 2 < end ? q : end;
    if (!conns[k]) conns[k] = fz_conn_new(k < 2 ? "127.0.0.1" : "127.0.0.2");
    fz_conn_feed(conns[k], p, (size_t)(stop - p), chunk);
    if (stop == end) break;
    k = stop[2] & (NCONNS - 1);
    p = stop + 3;
  }
  for (int i = 0; i < NCONNS; i++)
    if (conns[i]) fz_conn_free(conns[i]);
  fz_end();
  long in_use = 0, refused = 0;
  if (srv->files) files_slot_stats(srv->files, &in_use, &refused);
  if (in_use != 0) fz_fail("an upload slot is still held after every connection went", data, size);
  return 0;
}
