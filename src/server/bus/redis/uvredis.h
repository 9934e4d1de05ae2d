/* uvredis.h — hiredis's async context on a libuv loop.
 *
 * Debian's hiredis 0.14 ships adapters/libuv.h, but its poll callback returns at once
 * when libuv reports an error (status < 0) — which libuv does for EPOLLERR, i.e. for a
 * refused connect and for a connection reset. The context then never learns that its
 * socket failed: no connect or disconnect callback, no reconnect, ever. This is that
 * adapter with the error handed to hiredis (a failed connect is found by the write
 * handler's SO_ERROR check, a broken connection by the read handler's read). */
#ifndef TERN_UVREDIS_H
#define TERN_UVREDIS_H

#include <hiredis/async.h>
#include <stdatomic.h>
#include <uv.h>

/* REDIS_OK, or REDIS_ERR (the caller frees the context). */
int uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop);
/* *busy is 1 while the context reads and handles what it read (another thread may then
 * tell "read but not yet handled" from "handled"); after uvredis_attach. */
void uvredis_set_busy(redisAsyncContext *ac, atomic_int *busy);
/* The commands queued and not yet written (those the idle or check handle would write
 * later in this iteration or the next), written now, on the context's loop. What the socket
 * does not take waits for it to be writable, as always. */
void uvredis_write_now(redisAsyncContext *ac);

#endif
