/* httpc.h — outgoing HTTP for hooks and push providers, without blocking a loop.
 *
 * One client per worker loop: libcurl's multi interface tells us which sockets to watch
 * and when to time out, libuv watches them (uv_poll, uv_timer), and a finished transfer
 * calls back on the same loop. HTTP/2 is available (APNs needs it). */
#ifndef TERN_HTTPC_H
#define TERN_HTTPC_H

#include <stddef.h>
#include <uv.h>

typedef struct httpc httpc_t;

typedef struct {
  long status;      /* HTTP status, 0 when the transfer failed (see error) */
  const char *body; /* response body (NUL-terminated), borrowed for the callback */
  size_t len;
  const char *error; /* libcurl's message when status is 0 */
  double seconds;    /* total time */
} httpc_result_t;

typedef void (*httpc_cb)(void *arg, const httpc_result_t *res);

enum { HTTPC_HTTP2 = 1 /* negotiate HTTP/2 (h2 over TLS) */, HTTPC_H2C = 2 /* HTTP/2 without TLS (tests) */ };

httpc_t *httpc_new(uv_loop_t *loop);
/* Cancels every transfer (their callbacks run with status 0, error "cancelled") and closes
 * the libuv handles; the memory goes when the loop has run their close callbacks. */
void httpc_close(httpc_t *h);
/* Starts a request. headers: NULL-terminated "Name: value" strings (copied). body may be
 * NULL. cb runs exactly once, on this loop. Returns 0 or TERN_ENOMEM / TERN_EINVAL. */
int httpc_request(httpc_t *h, const char *method, const char *url, const char *const *headers, const void *body,
                  size_t len, long timeout_ms, int flags, httpc_cb cb, void *arg);
size_t httpc_active(httpc_t *h);
uv_loop_t *httpc_loop(httpc_t *h); /* the loop it runs on (push retries time out there) */

#endif
