/* uvredis.c — see uvredis.h. */
#include "uvredis.h"

#include <stdlib.h>

typedef struct {
  redisAsyncContext *ac;
  uv_poll_t handle;
  int events;
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

static void on_poll(uv_poll_t *h, int status, int events) {
  uvr_t *p = h->data;
  if (status < 0) { /* EPOLLERR: libuv stopped the poll; let hiredis find the error */
    if (!p->ac) return;
    if (!(p->ac->c.flags & REDIS_CONNECTED)) redisAsyncHandleWrite(p->ac); /* connect failed */
    else handle_read(p);                                                   /* reset: read fails */
    return;
  }
  if (p->ac && (events & UV_READABLE)) handle_read(p);
  if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

static void update(uvr_t *p) {
  if (p->events) uv_poll_start(&p->handle, p->events, on_poll);
  else uv_poll_stop(&p->handle);
}

static void add_read(void *d) {
  uvr_t *p = d;
  p->events |= UV_READABLE;
  update(p);
}

static void del_read(void *d) {
  uvr_t *p = d;
  p->events &= ~UV_READABLE;
  update(p);
}

static void add_write(void *d) {
  uvr_t *p = d;
  p->events |= UV_WRITABLE;
  update(p);
}

static void del_write(void *d) {
  uvr_t *p = d;
  p->events &= ~UV_WRITABLE;
  update(p);
}

static void on_close(uv_handle_t *h) { free(h->data); }

static void cleanup(void *d) {
  uvr_t *p = d;
  p->ac = NULL; /* the context is being freed */
  uv_close((uv_handle_t *)&p->handle, on_close);
}

int uvredis_attach(redisAsyncContext *ac, uv_loop_t *loop) {
  if (ac->ev.data) return REDIS_ERR;
  uvr_t *p = calloc(1, sizeof *p);
  if (!p) return REDIS_ERR;
  if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
    free(p);
    return REDIS_ERR;
  }
  p->ac = ac;
  p->handle.data = p;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = p;
  return REDIS_OK;
}
