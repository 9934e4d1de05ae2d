/* fuzz_http.c — a connection from its first byte: HTTP/1.1 requests (router, REST,
 * CORS), the WebSocket upgrade with its header checks and subprotocol choice, and —
 * when the upgrade succeeds — the frames that follow it in the same stream.
 *
 * Input:  chunk:u8  stream...
 *   chunk  the stream arrives in reads of this many bytes (0: one read per request head
 *          or frame); a request split
 *          across reads, or an upgrade with frames in the same read, must work alike
 *
 * A session token for client "Tom" is placed in learned slot $s0 (fuzz_im.h), so requests
 * to the REST routes can get past authentication.
 *
 * Checks, besides the sanitizers: every response is well-formed with a Content-Length
 * that matches its body, and after a 101 the server's frames are valid (fuzz_conn.h). */
#include <stdint.h>

#include "fuzz_conn.h"
#include "fuzz_im.h"
#include "fuzz_target.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = data[0];
  fz_begin();
  /* A session token for Tom, as $s0: the REST routes act for a client holding one. */
  char st[TOKEN_MAX_LEN + 1];
  server_t *srv = fz_server();
  token_make(srv->master_key, srv->app_id, "Tom", NULL, 3600, st);
  fz_learn(st);
  conn_t *c = fz_conn_new();
  fz_conn_feed(c, data + 1, size - 1, chunk);
  fz_conn_free(c);
  fz_end();
  return 0;
}
