/* uring.h — a worker's socket writes of one loop iteration in one system call (io_uring).
 *
 * Without it, drain() writes each connection on the flush list with its own write(2). With
 * it, every connection's pending output becomes a SEND in one submission queue, and one
 * io_uring_enter(2) sends them all. Each SEND carries MSG_DONTWAIT, so the kernel never
 * parks it waiting for room (it completes at once, with the bytes the socket took or
 * -EAGAIN, exactly as a non-blocking write would); all completions are therefore reaped
 * before wring_flush returns, no SEND outlives the iteration, and a connection closed
 * later never has a request in flight on its memory. What a socket did not take goes to
 * uv_write as before (conn_flush_end), so partial writes, backpressure and the output
 * limits are those of the plain path.
 *
 * Optional at run time: the io_uring option turns it off, and where the kernel or a
 * seccomp filter refuses io_uring (io_uring_disabled, containers) wring_open fails and
 * the worker writes as before. */
#ifndef TERN_URING_H
#define TERN_URING_H

typedef struct worker worker_t;
typedef struct wring wring_t;

/* A ring for worker w's writes, or NULL with *err set to the reason (negative errno). */
wring_t *wring_open(int *err);
void wring_close(wring_t *r);
/* Writes every connection on w's flush list, as conn_flush would one by one, until the
 * list stays empty (a file download's next piece queues its connection again). Returns 0,
 * or a negative errno when the kernel refuses io_uring_enter: what was not sent is written
 * with write(2) or left on the list, and the caller closes the ring and writes as before. */
int wring_flush(wring_t *r, worker_t *w);

#endif
