/* tern/uv.h — the libuv adapter of libtern (like hiredis' adapters/libuv.h).
 *
 * tern_uv_attach() connects a tern_t to a loop: a TCP handle per connection, one timer,
 * uv_getaddrinfo for names, and short-lived TCP handles for file uploads. The adapter's
 * handles are closed by tern_free(); their memory goes in the close callbacks, so run the
 * loop once more after tern_free() (uv_run(loop, UV_RUN_DEFAULT) then returns once idle).
 * Thread-safety: use the tern_t only on the loop's thread. */
#ifndef TERN_UV_H
#define TERN_UV_H

#include <uv.h>

#include "tern.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0, TERN_EINVAL if an adapter is already attached, or TERN_ENOMEM. */
int tern_uv_attach(tern_t *t, uv_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
