/* server.h — the process-wide state of ternd and the cross-thread task.
 *
 * A server owns N workers; each worker is one thread with one libuv loop that owns its
 * connections outright (style rule: one loop per worker, never block it). The only ways
 * into another worker are a task posted to its inbox (worker_post, net/worker.h; the
 * store and im get it as a `post` callback) and the shared, lock-protected indexes in im
 * (presence, conversation cache).
 *
 * Every layer sees this struct; the pointers to each layer's state are opaque to the
 * layers below it, which cannot include the headers that define them. */
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
typedef struct net_app net_app_t;
typedef struct proxies proxies_t;

typedef struct server {
  tern_config_t *cfg;
  char *app_id, *app_key, *master_key; /* effective keys (config or generated) */
  char *public_url;                    /* what /v1/route hands out */
  char bound[80];                      /* host:port actually listened on (port 0 resolved) */
  int nworkers;
  worker_t *workers[MAX_WORKERS];
  im_t *im;
  store_t *store;
  ipcount_t *ips;           /* open connections per peer address */
  tls_ctx_t *tls;           /* set when the listener speaks TLS */
  files_t *files;           /* uploaded files (files.c); NULL: the file endpoint answers 404 */
  struct web *web;          /* the console's and chat's assets (web.h); NULL: /console and /chat answer 404 */
  proxies_t *proxies;       /* trusted_proxies (proxies.h), parsed at start; NULL: none */
  const net_app_t *net_app; /* what the network layer calls above it (net.h); set before server_start */
  atomic_int stopping;
  long nofile;        /* the open-files limit ternd runs with (raised to the hard one) */
  atomic_long nconns; /* open connections on every worker, refused ones included */
  /* Output queues that outlived a flush, in bytes, over every worker (conn.c keeps it:
   * output_limit_total); and what was shed or refused, for /metrics. */
  atomic_llong out_queued;
  atomic_ulong out_dropped_conn, out_dropped_ip, out_dropped_total;
  atomic_ulong refused_ip, refused_server, accept_errors;
} server_t;

/* Index of the worker whose thread is calling, or -1 for other threads (server.c). */
int worker_current(void);
/* Says which worker the calling thread is: worker threads at start (net), and unit tests
 * and fuzzers that drive im on their own thread as worker `idx`. */
void worker_set_current(int idx);

#endif
