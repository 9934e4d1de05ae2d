/* worker.c — worker threads: one libuv loop each, SO_REUSEPORT listeners, a task inbox.
 *
 * Each worker binds its own listening socket on the same address with SO_REUSEPORT, so
 * the kernel spreads connections over the loops and no connection ever changes thread.
 * SO_REUSEPORT would as gladly let a second ternd (or anything of the same user) join in
 * and be handed half the clients, so before the workers bind, a probe socket without it
 * binds the address: on Linux that fails with EADDRINUSE whenever any other socket holds
 * it, and ternd refuses to start (docs/architecture.md, "Listening").
 *
 * Connections are accepted here rather than by uv_listen: once descriptors run out
 * (EMFILE), libuv's listener accepts and drops connections with a spare descriptor, and
 * when another thread has taken that one it calls back with EMFILE and tries again at
 * once, for ever, at full CPU. This one stops watching the socket and tries again after
 * ACCEPT_BACKOFF_MS; the connections wait in the kernel's queue meanwhile, and the ones
 * already open go on as usual.
 *
 * The inbox is a mutex-protected list drained in one swap per wake-up: a poster holds the
 * lock for a pointer write, never while the target runs its tasks. */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

void worker_post(server_t *srv, int idx, task_t *t) {
  worker_t *w = srv->workers[idx];
  task_t *last = t;
  while (last->next) last = last->next;
  pthread_mutex_lock(&w->mu);
  if (w->inbox_tail) w->inbox_tail->next = t;
  else w->inbox_head = t, w->inbox_since_ns = mono_ns();
  w->inbox_tail = last;
  int dead = w->dead;
  pthread_mutex_unlock(&w->mu);
  if (!dead) uv_async_send(&w->async);
}

void worker_schedule_flush(worker_t *w, conn_t *c) {
  if (c->in_flush) return;
  c->in_flush = 1;
  c->flush_next = w->flush_list;
  w->flush_list = c;
}

void worker_schedule_reap(worker_t *w, conn_t *c) {
  if (c->reaping) return;
  c->reaping = 1;
  c->reap_next = w->reap_list;
  w->reap_list = c;
}

/* Flush every connection with output, then close the ones marked for closing. Runs in
 * both the prepare and check phases so output queued by timers, I/O callbacks or inbox
 * tasks leaves in the same iteration. */
static void drain(worker_t *w) {
  w->shed_deferred = 0;
  w->srv->net_app->worker_tick(w->imw);
  /* the iteration's log lines before the answers they describe: whoever has an answer
   * finds its line in the log, as when every line was written at once */
  log_batch_flush();
  if (w->flush_list) {
    uint64_t t0 = mono_ns();
    int err = w->wring ? wring_flush(w->wring, w) : 0;
    if (err < 0) { /* io_uring_enter refused (a seccomp filter that let the ring be made) */
      log_at(LOG_WARN, "io_uring_enter: %s: worker %d writes each connection with write(2) from now on", strerror(-err),
             w->idx);
      wring_close(w->wring);
      w->wring = NULL;
    }
    while (w->flush_list) {
      conn_t *c = w->flush_list;
      w->flush_list = c->flush_next;
      c->in_flush = 0;
      conn_flush(c);
    }
    metric_add(M_STAGE_WRITE, (int64_t)(mono_ns() - t0));
  }
  /* over output_limit_ip or output_limit_total: drop the largest queues (conn.c) */
  if (w->shed || (atomic_load_explicit(&w->shed_wanted, memory_order_relaxed) && atomic_exchange(&w->shed_wanted, 0)))
    conn_shed(w);
  while (w->reap_list) {
    conn_t *c = w->reap_list;
    w->reap_list = c->reap_next;
    conn_reap(c);
  }
}

static void on_prepare(uv_prepare_t *h) {
  drain(h->data);
  log_batch_flush(); /* and what drain logged (connections reaped), before the loop sleeps */
}
static void on_check(uv_check_t *h) { drain(h->data); }

void worker_wake_shed(server_t *srv, int idx) {
  worker_t *w = srv->workers[idx];
  if (atomic_exchange(&w->shed_wanted, 1) != 0) return; /* asked already, not yet looked */
  pthread_mutex_lock(&w->mu);                           /* as worker_post: a loop that has ended is not woken */
  if (!w->dead) uv_async_send(&w->async);
  pthread_mutex_unlock(&w->mu);
}

static void on_tick(uv_timer_t *h) {
  worker_t *w = h->data;
  int64_t now = now_ms();
  conn_sweep(w, now);
  w->srv->net_app->worker_sweep(w->imw, now);
}

/* Connections taken from the queue per wake-up, so a flood of them cannot starve the
 * loop's other work; the rest wait for the next iteration (the poll is level-triggered). */
#define ACCEPT_BATCH 64
/* How long the listener rests after accept() failed for want of descriptors or memory. */
#define ACCEPT_BACKOFF_MS 100

static log_limit_t accept_log; /* every worker's accept failures: a line a second at most */

static void on_listen_ready(uv_poll_t *h, int status, int events);

static void listen_resume(uv_timer_t *t) {
  worker_t *w = t->data;
  uv_poll_start(&w->listener, UV_READABLE, on_listen_ready);
}

static void on_listen_ready(uv_poll_t *h, int status, int events) {
  worker_t *w = h->data;
  int err = status < 0 ? -status : 0;
  for (int k = 0; !err && k < ACCEPT_BATCH; k++) {
    struct sockaddr_storage peer; /* accept4 names the peer: no getpeername() per connection */
    socklen_t plen = sizeof peer;
    int fd = accept4(w->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
      conn_accept(w, fd, plen <= sizeof peer ? &peer : NULL);
      continue;
    }
    switch (errno) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
      return;
    /* the one connection went wrong (accept(2): Linux passes pending network errors on),
     * or a signal: take the next */
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM: continue;
    default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM: nothing to accept with until something closes */ err = errno;
    }
  }
  if (!err) return; /* a full batch: more next iteration */
  atomic_fetch_add(&w->srv->accept_errors, 1);
  log_limited(&accept_log, LOG_WARN,
              "accept: %s; not accepting for %d ms (connections wait in the queue, open ones go on)", strerror(err),
              ACCEPT_BACKOFF_MS);
  uv_poll_stop(&w->listener);
  uv_timer_start(&w->listen_retry, listen_resume, ACCEPT_BACKOFF_MS, 0);
}

static void on_listener_closed(uv_handle_t *h) {
  worker_t *w = h->data;
  if (w->listen_fd >= 0) close(w->listen_fd);
  w->listen_fd = -1;
}

typedef struct {
  task_t task;
  server_t *srv;
} noaccept_t;

static atomic_int noaccept_done; /* workers whose listener stopped (one server a process) */

static void noaccept_run(task_t *t) {
  noaccept_t *n = (noaccept_t *)t;
  int idx = worker_current();
  worker_t *w = idx >= 0 ? n->srv->workers[idx] : NULL;
  free(n);
  if (w && !uv_is_closing((uv_handle_t *)&w->listener)) {
    uv_poll_stop(&w->listener);
    uv_timer_stop(&w->listen_retry);
    /* Linux: shutdown() takes a listening socket out of listening (its queue is reset), and
     * with the whole SO_REUSEPORT group out, connects are refused. The descriptor stays
     * open until begin_stop closes the handle: closing it under the poll handle would let
     * libuv drop another descriptor that reused its number. */
    if (w->listen_fd >= 0) shutdown(w->listen_fd, SHUT_RDWR);
  }
  atomic_fetch_add(&noaccept_done, 1);
}

void server_stop_accepting(server_t *srv) {
  atomic_store(&noaccept_done, 0);
  for (int i = 0; i < srv->nworkers; i++) {
    noaccept_t *n = xmalloc(sizeof *n);
    n->task.fn = noaccept_run;
    n->task.next = NULL;
    n->srv = srv;
    worker_post(srv, i, &n->task);
  }
  /* every worker's listener is out before the caller tells anyone to reconnect */
  int64_t until = now_ms() + 1000;
  while (atomic_load(&noaccept_done) < srv->nworkers && now_ms() < until) usleep(1000);
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void begin_stop(worker_t *w) {
  /* Tell every connection we are going away (1001), then close the loop's handles. The
   * answers due before the connections go (a kick under way: 503) are written in between:
   * the flush below sends them ahead of the close, and nothing more is read. */
  for (conn_t *c = w->all; c; c = c->next) conn_close(c, 1001, "server shutting down");
  if (w->srv->net_app->worker_stopping) w->srv->net_app->worker_stopping(w->imw);
  drain(w);
  for (conn_t *c = w->all; c; c = c->next) conn_abort(c, 1001);
  drain(w);
  w->srv->net_app->worker_stop(w->imw); /* outgoing calls in flight and waiting end */
  /* server_stop_accepting may have closed the listener already */
  if (!uv_is_closing((uv_handle_t *)&w->listener)) {
    uv_close((uv_handle_t *)&w->listener, on_listener_closed);
    uv_close((uv_handle_t *)&w->listen_retry, NULL);
  }
  uv_close((uv_handle_t *)&w->prep, NULL);
  uv_close((uv_handle_t *)&w->check, NULL);
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->async, NULL);
}

static void on_async(uv_async_t *h) {
  worker_t *w = h->data;
  pthread_mutex_lock(&w->mu);
  task_t *t = w->inbox_head;
  uint64_t since = w->inbox_since_ns;
  w->inbox_head = w->inbox_tail = NULL;
  int stop = w->stop;
  pthread_mutex_unlock(&w->mu);
  if (t) {
    uint64_t t0 = mono_ns();
    metric_observe_us(M_INBOX_WAIT, (t0 - since) / 1000);
    while (t) {
      task_t *next = t->next;
      t->fn(t);
      t = next;
    }
    metric_add(M_STAGE_COMPLETE, (int64_t)(mono_ns() - t0));
  }
  if (stop == 1) {
    w->stop = 2;
    begin_stop(w);
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  worker_set_current(w->idx);
  log_batch_begin();
  uv_run(&w->loop, UV_RUN_DEFAULT);
  log_batch_flush();
  pthread_mutex_lock(&w->mu);
  w->dead = 1; /* from now on tasks wait in the inbox for server_free */
  pthread_mutex_unlock(&w->mu);
  uv_walk(&w->loop, close_walk, NULL);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  log_batch_flush();
  if (uv_loop_close(&w->loop) != 0) log_at(LOG_WARN, "worker %d: loop closed with live handles", w->idx);
  wring_close(w->wring); /* no SEND outlives wring_flush: nothing of the loop's is in flight */
  w->wring = NULL;
  return NULL;
}

static int parse_listen(const char *spec, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon) return TERN_ECONFIG;
  char *end;
  long port = strtol(colon + 1, &end, 10); /* "host:" or "host:http" is no port (atoi made it 0: any) */
  if (end == colon + 1 || *end || port < 0 || port > 65535) return TERN_ECONFIG;
  size_t hl = (size_t)(colon - spec);
  if (hl >= sizeof host) return TERN_ECONFIG;
  memcpy(host, spec, hl);
  host[hl] = 0;
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
    host[hl - 1] = 0;
    return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)ss) ? TERN_ECONFIG : 0;
  }
  if (!*host) snprintf(host, sizeof host, "0.0.0.0");
  return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) ? TERN_ECONFIG : 0;
}

static socklen_t addr_len(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Is the address free of every other listener? Bound without SO_REUSEPORT, a socket
 * fails with EADDRINUSE when any other one holds the address — with SO_REUSEPORT or not —
 * so a second ternd stops here instead of quietly sharing the port. SO_REUSEADDR still
 * lets it pass connections of an earlier run left in TIME_WAIT. Port 0 gets its port
 * here, and the workers bind that one; between the probe's close and their bind lie
 * microseconds. */
static int probe_free(struct sockaddr_storage *ss) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return TERN_EIO;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = addr_len(ss);
  int rc = bind(fd, (struct sockaddr *)ss, len);
  int e = errno;
  if (rc == 0) getsockname(fd, (struct sockaddr *)ss, &len);
  close(fd);
  errno = e;
  return rc < 0 ? TERN_EIO : 0;
}

/* *nodelay: 1 when TCP_NODELAY is set on the listener, which Linux copies to every socket
 * accept() returns, so conn_accept need not set it per connection (a system call less per
 * login in a storm). */
static int bind_reuseport(struct sockaddr_storage *ss, int *out_fd, int *nodelay) {
  int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return TERN_EIO;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  *nodelay = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
  socklen_t len = addr_len(ss);
  if (bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 4096) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return TERN_EIO;
  }
  /* Port 0 means "any": later workers must share the port the first one got. */
  getsockname(fd, (struct sockaddr *)ss, &len);
  *out_fd = fd;
  return 0;
}

int server_start(server_t *srv) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (parse_listen(srv->cfg->listen, &ss) < 0) {
    log_at(LOG_ERROR, "listen: cannot parse \"%s\" (want host:port)", srv->cfg->listen);
    return TERN_ECONFIG;
  }
  int n = (int)srv->cfg->workers;
  if (n <= 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    n = cores > 0 ? (int)cores : 1;
  }
  if (n > MAX_WORKERS) n = MAX_WORKERS;
  if (probe_free(&ss) < 0) {
    int e = errno;
    log_at(LOG_ERROR, "listen on %s: %s%s", srv->cfg->listen, strerror(e),
           e == EADDRINUSE ? " (another process listens there: is another ternd running?)" : "");
    return TERN_EIO;
  }
  /* every socket first, so that a failure leaves nothing behind but closed descriptors */
  int fds[MAX_WORKERS], nodelay[MAX_WORKERS];
  for (int i = 0; i < n; i++)
    if (bind_reuseport(&ss, &fds[i], &nodelay[i]) < 0) {
      log_at(LOG_ERROR, "listen on %s: %s", srv->cfg->listen, strerror(errno));
      while (i--) close(fds[i]);
      return TERN_EIO;
    }
  srv->nworkers = n;
  for (int i = 0; i < n; i++) {
    worker_t *w = xcalloc(1, sizeof *w);
    w->idx = i;
    w->srv = srv;
    srv->workers[i] = w;
    pthread_mutex_init(&w->mu, NULL);
    handle_table_init(&w->conns, i);
    uv_loop_init(&w->loop);
    w->listen_fd = fds[i];
    w->listen_nodelay = nodelay[i];
    uv_poll_init(&w->loop, &w->listener, w->listen_fd);
    w->listener.data = w;
    uv_poll_start(&w->listener, UV_READABLE, on_listen_ready);
    uv_timer_init(&w->loop, &w->listen_retry);
    w->listen_retry.data = w;
    uv_async_init(&w->loop, &w->async, on_async);
    w->async.data = w;
    uv_prepare_init(&w->loop, &w->prep);
    w->prep.data = w;
    uv_prepare_start(&w->prep, on_prepare);
    uv_check_init(&w->loop, &w->check);
    w->check.data = w;
    uv_check_start(&w->check, on_check);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    w->imw = srv->net_app->worker_start(srv, i, &w->loop);
    if (srv->cfg->io_uring) { /* here, so that its failure is logged before "listening on" */
      int err = 0;
      w->wring = wring_open(&err);
      if (!w->wring)
        log_at(i ? LOG_DEBUG : LOG_WARN, "io_uring unavailable (%s): worker %d writes each connection with write(2)",
               strerror(-err), i);
    }
  }
  char host[64];
  int port;
  if (ss.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  snprintf(srv->bound, sizeof srv->bound, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
  if (!srv->public_url || !*srv->public_url) {
    free(srv->public_url);
    char url[128];
    snprintf(url, sizeof url, ss.ss_family == AF_INET6 ? "%s://[%s]:%d/" : "%s://%s:%d/", srv->tls ? "wss" : "ws", host,
             port);
    srv->public_url = xstrdup(url);
  }
  for (int i = 0; i < n; i++) {
    pthread_create(&srv->workers[i]->thread, NULL, worker_main, srv->workers[i]);
    char name[16];
    snprintf(name, sizeof name, "tern-w%d", i);
    pthread_setname_np(srv->workers[i]->thread, name);
  }
  /* Test scripts wait for this exact line (port 0 picks a free port). */
  printf("ternd listening on %s:%d with %d worker%s\n", host, port, n, n == 1 ? "" : "s");
  fflush(stdout);
  return 0;
}

long server_conn_cap(const server_t *srv) {
  if (srv->cfg->max_conns > 0) return srv->cfg->max_conns;
  long n = srv->nofile > 0 ? srv->nofile : 1024;
  long reserve = n < 1024 ? n / 4 : 256;
  return n - reserve;
}

/* The rendezvous of server_with_workers_parked: every worker arrives, waits for the caller
 * to release it, and says it has left, all under one mutex, so the caller frees the state
 * (its stack) only once no worker can touch it again. (A pthread barrier destroyed right
 * after the last wait relies on glibc's destroy waiting for the waiters to leave, which
 * POSIX does not promise and ThreadSanitizer reports as a race.) */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n, arrived, released, left;
} park_state_t;

typedef struct {
  task_t task;
  park_state_t *st;
} park_t;

static void park_run(task_t *t) {
  park_state_t *st = ((park_t *)t)->st; /* t lives in the caller's frame, like st */
  pthread_mutex_lock(&st->mu);
  st->arrived++;
  pthread_cond_broadcast(&st->cv);
  while (!st->released) pthread_cond_wait(&st->cv, &st->mu);
  st->left++;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu); /* the last touch of st and t */
}

void server_with_workers_parked(server_t *srv, void (*fn)(void *arg), void *arg) {
  park_state_t st = {.n = srv->nworkers};
  park_t parks[MAX_WORKERS];
  pthread_mutex_init(&st.mu, NULL);
  pthread_cond_init(&st.cv, NULL);
  for (int i = 0; i < srv->nworkers; i++) {
    parks[i] = (park_t){.task = {.fn = park_run}, .st = &st};
    worker_post(srv, i, &parks[i].task);
  }
  pthread_mutex_lock(&st.mu);
  while (st.arrived < st.n) pthread_cond_wait(&st.cv, &st.mu);
  pthread_mutex_unlock(&st.mu);
  fn(arg); /* every worker is parked */
  pthread_mutex_lock(&st.mu);
  st.released = 1;
  pthread_cond_broadcast(&st.cv);
  while (st.left < st.n) pthread_cond_wait(&st.cv, &st.mu);
  pthread_mutex_unlock(&st.mu);
  pthread_cond_destroy(&st.cv);
  pthread_mutex_destroy(&st.mu);
}

void server_stop(server_t *srv) {
  for (int i = 0; i < srv->nworkers; i++) {
    worker_t *w = srv->workers[i];
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
  }
  for (int i = 0; i < srv->nworkers; i++) pthread_join(srv->workers[i]->thread, NULL);
}

void server_free(server_t *srv) {
  /* Completions the store posted after the loops ended: their connections are gone, so
   * running them here only releases what they carry. A task may post another to some
   * worker (a kick run on the session's worker goes back to the one that asked): every
   * inbox runs until all are empty, before any worker is freed (64 rounds at most: what
   * would go on posting for ever is left unrun). */
  for (int more = 1, round = 0; more && round < 64; round++) {
    more = 0;
    for (int i = 0; i < srv->nworkers; i++) {
      worker_t *w = srv->workers[i];
      pthread_mutex_lock(&w->mu);
      task_t *t = w->inbox_head;
      w->inbox_head = w->inbox_tail = NULL;
      pthread_mutex_unlock(&w->mu);
      if (!t) continue;
      more = 1;
      worker_set_current(i);
      while (t) {
        task_t *next = t->next;
        t->fn(t);
        t = next;
      }
      worker_set_current(-1);
    }
  }
  for (int i = 0; i < srv->nworkers; i++) {
    worker_t *w = srv->workers[i];
    srv->net_app->worker_free(w->imw);
    wring_close(w->wring); /* closed by its thread already, unless the loop never ran */
    conn_outcache_free(w);
    handle_table_free(&w->conns);
    pthread_mutex_destroy(&w->mu);
    free(w);
    srv->workers[i] = NULL;
  }
}
