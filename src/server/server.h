/* server.h — the process-wide state of ternd and the cross-thread task queue.
 *
 * A server owns N workers; each worker is one thread with one libuv loop that owns its
 * connections outright (style rule: one loop per worker, never block it). The only ways
 * into another worker are worker_post() (a task run on that worker's loop) and the
 * shared, lock-protected indexes in im (presence, conversation cache). */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

#define MAX_WORKERS 64

typedef struct task task_t;
typedef void (*task_fn)(task_t *t);
/* Embed a task_t in whatever carries the work; the function owns the container. */
struct task {
  task_fn fn;
  task_t *next;
};

typedef struct worker worker_t;
typedef struct im im_t;
typedef struct store store_t;
typedef struct ipcount ipcount_t;
typedef struct tls_ctx tls_ctx_t;
typedef struct files files_t;

typedef struct server {
  tern_config_t *cfg;
  char *app_id, *app_key, *master_key; /* effective keys (config or generated) */
  char *public_url;                    /* what /v1/route hands out */
  char bound[80];                      /* host:port actually listened on (port 0 resolved) */
  int nworkers;
  worker_t *workers[MAX_WORKERS];
  im_t *im;
  store_t *store;
  ipcount_t *ips; /* open connections per peer address */
  tls_ctx_t *tls; /* set when the listener speaks TLS */
  files_t *files; /* uploaded files (files.c); NULL: the file endpoint answers 404 */
  struct web *web; /* the console's and chat's assets (web.h); NULL: /console and /chat answer 404 */
  atomic_int stopping;
  long nofile;          /* the open-files limit ternd runs with (raised to the hard one) */
  atomic_long nconns;   /* open connections on every worker, refused ones included */
  /* Output queues that outlived a flush, in bytes, over every worker (conn.c keeps it:
   * output_limit_total); and what was shed or refused, for /metrics. */
  atomic_llong out_queued;
  atomic_ulong out_dropped_conn, out_dropped_ip, out_dropped_total;
  atomic_ulong refused_ip, refused_server, accept_errors;
} server_t;

/* Runs t->fn(t) on worker `idx`'s loop thread — and likewise every task chained after t
 * through t->next, in order (a whole batch costs one lock and one wake-up). Set t->next to
 * NULL for a single task. Thread-safe; never blocks on the target. */
void worker_post(server_t *srv, int idx, task_t *t);
/* Index of the worker whose thread is calling, or -1 for other threads. */
int worker_current(void);
/* For unit tests and fuzzers that drive im on their own thread, as worker `idx`. */
void worker_set_current(int idx);

/* Binds, starts the workers. A port another process listens on, even with SO_REUSEPORT,
 * fails with TERN_EIO ("address in use"): SO_REUSEPORT is shared among this process's
 * workers only (worker.c). */
int server_start(server_t *srv);
/* Open connections allowed in all: max_conns, or when it is 0 the open-files limit less a
 * reserve for the database, files and outgoing HTTP. */
long server_conn_cap(const server_t *srv);
/* Runs fn(arg) on the calling thread while every worker waits, parked in a task between
 * two barriers: whatever workers read without locks (the configuration) may change in fn.
 * Not from a worker thread; the workers must be running. */
void server_with_workers_parked(server_t *srv, void (*fn)(void *arg), void *arg);
void server_stop(server_t *srv);   /* asks every worker to finish; joins them */
/* After server_stop and the store's close: runs tasks still queued (they find their
 * connections gone and only free memory) and frees the workers. */
void server_free(server_t *srv);

#endif
