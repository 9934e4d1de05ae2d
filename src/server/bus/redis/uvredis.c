/* uvredis.c — see uvredis.h.
 *
 * What the poll watches changes only when it must: every uv_poll_start is an epoll_ctl
 * DEL at once and an ADD at the next poll (libuv 1.44), and hiredis asks for reading after
 * every read and every write, and for writing at every command. Those calls were 1.26
 * epoll_ctl a message on a node of bench/cluster.sh's pg3 at 10,000 msgs/s, where a system
 * call is dear (bench/README.md, "The Redis adapter's system calls").
 *
 * Commands are written without waiting for the socket to be writable: a command queued on a
 * connected context starts an idle handle (the loop does not sleep while output waits) and
 * a check handle; whichever runs first writes everything queued so far (one write for the
 * commands of the iteration), the check phase of the same iteration for commands queued by
 * I/O callbacks, the idle phase of the next one otherwise. Only output the socket did not
 * take waits for it to be writable (the poll's UV_WRITABLE), as before. */
#include "uvredis.h"

#include <stdlib.h>

typedef struct {
  redisAsyncContext *ac;
  uv_poll_t handle;
  uv_idle_t idle;   /* output is due: the loop must not sleep before it is written */
  uv_check_t check; /* writes it in the iteration it was queued in */
  int events;       /* what the poll watches (0: stopped) */
  int flushing;     /* in redisAsyncHandleWrite: a write request is for the poll */
  int open;         /* handles not yet closed (cleanup) */
  atomic_int *busy; /* uvredis_set_busy */
} uvr_t;

void uvredis_set_busy(redisAsyncContext *ac, atomic_int *busy) {
  uvr_t *p = ac->ev.data;
  if (p) p->busy = busy;
}

static void handle_read(uvr_t *p) {
  if (p->busy) atomic_store(p->busy, 1);
  redisAsyncHandleRead(p->ac);
  if (p->busy) atomic_store(p->busy, 0);
}

static void handle_write(uvr_t *p) {
  p->flushing = 1;
  redisAsyncHandleWrite(p->ac);
  p->flushing = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

static void set_events(uvr_t *p, int events) {
  if (events == p->events) return;
  p->events = events;
  if (events) uv_poll_start(&p->handle, events, on_poll);
  else uv_poll_stop(&p->handle);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  uvr_t *p = h->data;
  if (status < 0) { /* EPOLLERR: libuv stopped the poll; let hiredis find the error */
    p->events = 0;
    if (!p->ac) return;
    if (!(p->ac->c.flags & REDIS_CONNECTED)) handle_write(p); /* connect failed */
    else handle_read(p);                                      /* reset: read fails */
    return;
  }
  if (p->ac && (events & UV_READABLE)) handle_read(p);
  if (p->ac && (events & UV_WRITABLE)) handle_write(p);
}

static void write_due_stop(uvr_t *p) {
  uv_idle_stop(&p->idle);
  uv_check_stop(&p->check);
}

/* The output queued since the last write, written now (idle or check phase). */
static void write_due(uvr_t *p) {
  write_due_stop(p);
  if (p->ac) handle_write(p);
}

void uvredis_write_now(redisAsyncContext *ac) {
  uvr_t *p = ac->ev.data;
  if (p && uv_is_active((uv_handle_t *)&p->check)) write_due(p);
}

static void on_idle(uv_idle_t *h) { write_due(h->data); }
static void on_check(uv_check_t *h) { write_due(h->data); }

static void add_read(void *d) {
  uvr_t *p = d;
  set_events(p, p->events | UV_READABLE);
}

static void del_read(void *d) {
  uvr_t *p = d;
  set_events(p, p->events & ~UV_READABLE);
}

static void add_write(void *d) {
  uvr_t *p = d;
  /* output the socket did not take, or a connect in progress (its end is the socket
   * turning writable): wait for the poll */
  if (p->flushing || !(p->ac->c.flags & REDIS_CONNECTED)) {
    set_events(p, p->events | UV_WRITABLE);
    return;
  }
  if (p->events & UV_WRITABLE) return; /* the poll writes it when the socket takes more */
  uv_idle_start(&p->idle, on_idle);
  uv_check_start(&p->check, on_check);
}

static void del_write(void *d) {
  uvr_t *p = d;
  write_due_stop(p);
  set_events(p, p->events & ~UV_WRITABLE);
}

static void on_close(uv_handle_t *h) {
  uvr_t *p = h->data;
  if (--p->open == 0) free(p);
}

static void cleanup(void *d) {
  uvr_t *p = d;
  p->ac = NULL; /* the context is being freed */
  uv_close((uv_handle_t *)&p->handle, on_close);
  uv_close((uv_handle_t *)&p->idle, on_close);
  uv_close((uv_handle_t *)&p->check, on_close);
}

int uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return REDIS_ERR;
  uvr_t *p = calloc(1, sizeof *p);
  if (!p) return REDIS_ERR;
  if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
    free(p);
    return REDIS_ERR;
  }
  uv_idle_init(loop, &p->idle);
  uv_check_init(loop, &p->check);
  p->open = 3;
  p->ac = ac;
  p->handle.data = p;
  p->idle.data = p;
  p->check.data = p;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}
