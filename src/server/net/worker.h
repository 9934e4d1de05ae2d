/* worker.h — a worker thread: its loop, listener, task inbox and connection lists; and
 * the server's start, stop and cross-thread posting, which are the workers'. */
#ifndef TERN_WORKER_H
#define TERN_WORKER_H

#include <pthread.h>
#include <uv.h>

#include "conn.h"
#include "handle_table.h"
#include "net.h"
#include "server.h"
#include "uring.h"

#define WORKER_READBUF (64 * 1024)
#define WORKER_OUTCACHE 256 /* output buffers a worker keeps for reuse (conn.c) */

struct worker {
  int idx;
  server_t *srv;
  uv_loop_t loop;
  int listen_fd;           /* this worker's SO_REUSEPORT socket */
  int listen_nodelay;      /* TCP_NODELAY is set on it, so accepted sockets have it */
  uv_poll_t listener;      /* readable: connections wait in listen_fd's queue */
  uv_timer_t listen_retry; /* re-arms the listener after accept() ran out of descriptors */
  uv_async_t async;        /* wakes the loop for the inbox and for stop */
  uv_prepare_t prep;       /* flush + reap before the loop sleeps */
  uv_check_t check;        /* flush + reap right after I/O callbacks */
  uv_timer_t tick;         /* 1 s: timeouts */
  pthread_t thread;
  pthread_mutex_t mu; /* guards the inbox */
  task_t *inbox_head, *inbox_tail;
  uint64_t inbox_since_ns; /* when the inbox last became non-empty (tern_worker_inbox_wait_seconds) */
  uint64_t read_t0_ns;     /* the socket read under way began (on_alloc → on_read: stage "read") */
  int stop;
  int dead;             /* loop finished: posts queue up but must not touch the loop */
  handle_table_t conns; /* handle → conn_t */
  conn_t *all;          /* every live connection */
  conn_t *flush_list;   /* connections with output to write */
  conn_t *reap_list;    /* connections to close */
  /* written by this worker only, read by /metrics on any worker: atomics, relaxed */
  atomic_size_t nconns;
  atomic_size_t accepted; /* connections accepted since start (/metrics) */
  /* Output accounting (conn.c): the largest queue this worker holds, as it last knew it,
   * for the other workers to compare with theirs; shed: a queue grew past
   * output_limit_ip or output_limit_total and the drop waits for drain();
   * shed_wanted: another worker asks this one to look (its queue may be the largest). */
  atomic_size_t out_max;
  int shed;
  int shed_deferred; /* this iteration already asked another worker to drop its largest */
  atomic_int shed_wanted;
  im_worker_t *imw; /* the layers above's part of this worker (net_app->worker_start) */
  wring_t *wring;   /* the loop's writes in one io_uring submission (uring.h), NULL: write(2) each */
  uint8_t readbuf[WORKER_READBUF];
  int readbuf_busy;
  /* Output memory written out and kept for the next queue that starts empty (conn.c,
   * out_give/out_take): a busy worker's queues do not go back to malloc and grow again
   * from nothing at every flush, while an idle connection still holds no buffer. */
  buf_t outcache[WORKER_OUTCACHE];
  int noutcache;
};

/* Runs t->fn(t) on worker `idx`'s loop thread — and likewise every task chained after t
 * through t->next, in order (a whole batch costs one lock and one wake-up). Set t->next to
 * NULL for a single task. Thread-safe; never blocks on the target. */
void worker_post(server_t *srv, int idx, task_t *t);

/* Binds, starts the workers; srv->net_app must be set. A port another process listens on,
 * even with SO_REUSEPORT, fails with TERN_EIO ("address in use"): SO_REUSEPORT is shared
 * among this process's workers only (worker.c). */
int server_start(server_t *srv);
/* Open connections allowed in all: max_conns, or when it is 0 the open-files limit less a
 * reserve for the database, files and outgoing HTTP. */
long server_conn_cap(const server_t *srv);
/* Runs fn(arg) on the calling thread while every worker waits, parked in a task (a
 * rendezvous under a mutex): whatever workers read without locks (the configuration) may change in fn.
 * Not from a worker thread; the workers must be running. */
void server_with_workers_parked(server_t *srv, void (*fn)(void *arg), void *arg);
/* A stopping cluster node, before it tells its clients goaway: every worker stops
 * listening, so new connections are refused (a load balancer tries another node) while the
 * open ones drain; open connections go on. Returns once every worker has (at most 1 s).
 * From the main thread, with the workers running. */
void server_stop_accepting(server_t *srv);
void server_stop(server_t *srv); /* asks every worker to finish; joins them */
/* After server_stop and the store's close: runs tasks still queued (they find their
 * connections gone and only free memory) and frees the workers. */
void server_free(server_t *srv);

void worker_schedule_flush(worker_t *w, conn_t *c);
void worker_schedule_reap(worker_t *w, conn_t *c);
/* Asks worker idx to run the output shedding (conn_shed) soon; any thread. */
void worker_wake_shed(server_t *srv, int idx);

#endif
