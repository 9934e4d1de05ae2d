/* ws_frame.h — RFC 6455 frame headers, for both ends of a connection.
 *
 * tern writes its own frame layer rather than wslay's event API because that API copies
 * every outgoing message into its own queue and sends one frame per callback, which would
 * defeat encode-once fan-out and writev coalescing (design.md). Headers are tiny; the
 * parser is pure and fuzzed. */
#ifndef TERN_WS_FRAME_H
#define TERN_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
  WS_OP_CONT = 0x0,
  WS_OP_TEXT = 0x1,
  WS_OP_BINARY = 0x2,
  WS_OP_CLOSE = 0x8,
  WS_OP_PING = 0x9,
  WS_OP_PONG = 0xA,
};

#define WS_MAX_HEADER 14

typedef struct {
  int fin;
  int opcode;
  int masked;
  uint8_t mask[4];
  uint64_t len;      /* payload length */
  size_t header_len; /* bytes of header before the payload */
} ws_header_t;

/* Parses a frame header at p[0..n). Returns 1 with *h filled when the whole header is
 * present, 0 when more bytes are needed, TERN_EPROTO for a malformed header (reserved bits
 * set, unknown opcode, fragmented or long control frame, non-minimal 64-bit length). */
int ws_parse_header(const uint8_t *p, size_t n, ws_header_t *h);

/* XORs n payload bytes with the mask; `offset` is the position of p within the payload. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* Writes a header for a final frame of `len` bytes; mask != NULL makes a client frame.
 * Returns the header length (2..14). */
size_t ws_write_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask);

/* Computes Sec-WebSocket-Accept for a client key into out (29 bytes incl. NUL). */
void ws_accept_key(const char *key, size_t keylen, char out[29]);

#endif
