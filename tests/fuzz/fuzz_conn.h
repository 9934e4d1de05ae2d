/* fuzz_conn.h — a client connection without a socket, for fuzz_http and fuzz_ws_frame.
 *
 * http_input() and ws_input() only need a conn_t whose worker knows the server and im:
 * everything they do to the connection goes through conn_write/conn_close/conn_abort,
 * which append to c->out and put the connection on the worker's flush or reap list — no
 * libuv call until the worker flushes or reaps, which the harness does not do. So the
 * real parsers run unchanged on a calloc'd conn_t and a calloc'd worker_t.
 *
 * fz_conn_feed() splits the input into reads the way a socket would deliver it and runs
 * each through a copy of conn.c's on_read/handle_input (static there), then plays the
 * rest of a loop iteration: store completions run, and the queued output is "written":
 * parsed and checked (HTTP responses well-formed with the right Content-Length; after a
 * 101, server frames unmasked, final, of a known opcode, nothing after a close frame,
 * and every data frame a GenericCommand that decodes), then dropped. */
#ifndef TERN_FUZZ_CONN_H
#define TERN_FUZZ_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

/* A fresh connection in state CONN_HTTP from address ip (fz_begin() must have run). */
conn_t *fz_conn_new(const char *ip);
/* Makes it a WebSocket connection as the 101 would (ws_start), minus the response. */
void fz_conn_ws_start(conn_t *c, int base64, int proto_version);
/* Feeds data in reads of `chunk` bytes, or with chunk 0 one read per HTTP request (head
 * and Content-Length body) or WebSocket frame, so a message can use ids from the replies
 * to the one before (ids are learned from frames and from quoted strings in HTTP
 * bodies); no
 * read exceeds the worker's 64 KiB buffer. Learned-id placeholders in each read are
 * substituted first (they cannot be seen through a mask or base64). */
void fz_conn_feed(conn_t *c, const uint8_t *data, size_t size, size_t chunk);
/* The status of the last complete response written (0: none yet) and its body (valid
 * until the next feed). */
int fz_conn_last_response(conn_t *c, const char **body, size_t *len);
/* Tears the connection down as conn_reap would, then frees it. */
void fz_conn_free(conn_t *c);

#endif
