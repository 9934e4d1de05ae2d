/* worker.h — a worker thread: its loop, listener, task inbox and connection lists. */
#ifndef TERN_WORKER_H
#define TERN_WORKER_H

#include <pthread.h>
#include <uv.h>

#include "conn.h"
#include "htab.h"
#include "server.h"

#define WORKER_READBUF (64 * 1024)

struct worker {
  int idx;
  server_t *srv;
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t async;   /* wakes the loop for the inbox and for stop */
  uv_prepare_t prep;  /* flush + reap before the loop sleeps */
  uv_check_t check;   /* flush + reap right after I/O callbacks */
  uv_timer_t tick;    /* 1 s: timeouts */
  pthread_t thread;
  pthread_mutex_t mu; /* guards the inbox */
  task_t *inbox_head, *inbox_tail;
  int stop;
  int dead; /* loop finished: posts queue up but must not touch the loop */
  htab_t conns;        /* handle → conn_t */
  conn_t *all;         /* every live connection */
  conn_t *flush_list;  /* connections with output to write */
  conn_t *reap_list;   /* connections to close */
  size_t nconns;
  im_worker_t *imw;
  uint8_t readbuf[WORKER_READBUF];
  int readbuf_busy;
};

void worker_schedule_flush(worker_t *w, conn_t *c);
void worker_schedule_reap(worker_t *w, conn_t *c);

#endif
