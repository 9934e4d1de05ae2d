/* fuzz_ws_frame.c — the WebSocket frame layer: ws_frame.c's pure functions, and ws.c's
 * frame loop (reassembly, control frames, limits, close) on an upgraded connection.
 *
 * Input:  chunk:u8  mode:u8  stream...
 *   chunk  the stream arrives in reads of this many bytes (0: one read per frame)
 *   mode   bit 0: the connection negotiated lc.proto2base64.* (text frames); bit 1:
 *          lc.protobuf2.1 instead of .3
 *   stream client frames (masked with any key; seeds use 00000000 so payloads stay
 *          readable and placeholders work, see fuzz_im.h)
 *
 * Checks, besides the sanitizers and fuzz_conn.h's output checks:
 *   - ws_parse_header on the stream's first header: every proper prefix of a header that
 *     parses returns 0 ("need more"), an error stays an error with more bytes, and a final
 *     frame's header is exactly what ws_write_header writes for it (lengths are minimal);
 *   - ws_unmask over a buffer in one call equals two calls split anywhere with the offset. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_conn.h"
#include "fuzz_im.h"
#include "fuzz_target.h"
#include "ws_frame.h"

static void check_header(const uint8_t *p, size_t n) {
  ws_header_t h;
  int r = ws_parse_header(p, n, &h);
  if (r == 1) {
    if (h.header_len < 2 || h.header_len > WS_MAX_HEADER || h.header_len > n) fz_fail("header_len out of range", p, n);
    for (size_t i = 0; i < h.header_len; i++) {
      ws_header_t h2;
      if (ws_parse_header(p, i, &h2) != 0) fz_fail("a prefix of a valid header did not ask for more", p, h.header_len);
    }
    if (h.fin) {
      uint8_t out[WS_MAX_HEADER];
      size_t ol = ws_write_header(out, h.opcode, h.len, h.masked ? h.mask : NULL);
      if (ol != h.header_len || memcmp(out, p, ol) != 0)
        fz_fail("ws_write_header disagrees with the parser", p, h.header_len);
    }
  } else if (r < 0) {
    ws_header_t h2;
    for (size_t m = n; m <= n + 16 && m <= 64; m++) {
      uint8_t more[64] = {0};
      memcpy(more, p, n < sizeof more ? n : sizeof more);
      if (n <= sizeof more && ws_parse_header(more, m, &h2) >= 0)
        fz_fail("an invalid header became valid with more bytes", p, n);
    }
  } else if (n >= WS_MAX_HEADER) {
    fz_fail("the parser asked for more than a maximal header", p, n);
  }
}

static void check_unmask(const uint8_t *p, size_t n) {
  if (n < 5) return;
  const uint8_t *mask = p;
  p += 4;
  n -= 4;
  if (n > 4096) n = 4096;
  uint8_t *a = malloc(n), *b = malloc(n);
  memcpy(a, p, n);
  memcpy(b, p, n);
  ws_unmask(a, n, mask, 0);
  size_t split = mask[0] % (n + 1);
  ws_unmask(b, split, mask, 0);
  ws_unmask(b + split, n - split, mask, split);
  for (size_t i = 0; i < n; i++)
    if (a[i] != (uint8_t)(p[i] ^ mask[i & 3]) || b[i] != a[i]) fz_fail("ws_unmask is not a position-keyed XOR", p, n);
  free(a);
  free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t chunk = data[0];
  int mode = data[1];
  data += 2;
  size -= 2;
  check_header(data, size < WS_MAX_HEADER ? size : WS_MAX_HEADER);
  check_unmask(data, size);

  fz_begin();
  conn_t *c = fz_conn_new("127.0.0.1");
  fz_conn_ws_start(c, mode & 1, mode & 2 ? 1 : 3);
  fz_conn_feed(c, data, size, chunk);
  fz_conn_free(c);
  fz_end();
  return 0;
}
