/* qpool.c — the query threads of every backend: conversation queries run here, not on a network loop.
 *
 * A `conv query` used to run on the worker that received it, so a costly `where` — a
 * regular expression built to backtrack, over ~1,000 rows — held every other client of that
 * worker for over a minute. Now a worker hands the translated query to a small pool of
 * threads, each with a reader of its own, and gets the answer back as a task like a store
 * job's. Each query has a deadline from the moment it was submitted (store.h), so a queue
 * of hostile queries drains at the deadline's pace and a legitimate one is never stuck
 * behind it for longer than that; the threads run at a lower CPU priority than the network
 * threads, so a pool busy with hostile work does not slow message delivery either. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "qpool.h"
#include "store.h"
#include "timeutil.h"

#define QUERY_THREADS 2
#define QUERY_NICE 5

struct qpool {
  store_t *s;
  const qpool_backend_t *b;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  store_query_t *head, *tail;
  size_t queued;
  int closing, nthreads;
  pthread_t th[QUERY_THREADS];
  store_reader_t *inline_reader; /* no threads (inline_writes): the caller's thread runs it */
};

static void run_one(qpool_t *p, store_reader_t *r, store_query_t *q) {
  if (!r) q->result = TERN_ESTORE;
  else if (q->deadline_ns && mono_ns() >= q->deadline_ns) q->result = TERN_ETIMEDOUT; /* its time went in the queue */
  else {
    q->result = q->count ? p->b->count_until(r, &q->q, q->deadline_ns, &q->n) : 0;
    if (q->result == 0 && (!q->count || q->q.limit > 0))
      q->result = p->b->query_until(r, &q->q, q->deadline_ns, q->cb, q->cb_arg);
  }
  q->task.next = NULL;
  p->post(p->post_arg, q->worker, &q->task);
}

static void *query_main(void *arg) {
  qpool_t *p = arg;
  /* below the network threads: a pool busy with costly queries must not delay delivery */
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), QUERY_NICE) != 0)
    log_at(LOG_DEBUG, "query thread: setpriority failed");
  store_reader_t *r = p->b->reader_new(p->s);
  if (!r) log_at(LOG_ERROR, "query thread: cannot open a reader");
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->closing) pthread_cond_wait(&p->cv, &p->mu);
    store_query_t *q = p->head;
    if (!q) break; /* closing, and the queue is drained */
    p->head = q->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    run_one(p, r, q);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  p->b->reader_free(r);
  return NULL;
}

qpool_t *qpool_new(store_t *s, const qpool_backend_t *b, void (*post)(void *arg, int worker, task_t *t), void *post_arg,
                   int threaded) {
  qpool_t *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->b = b;
  p->post = post;
  p->post_arg = post_arg;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 0; threaded && i < QUERY_THREADS; i++) {
    if (pthread_create(&p->th[i], NULL, query_main, p) != 0) break;
    pthread_setname_np(p->th[i], "tern-query");
    p->nthreads++;
  }
  return p;
}

void qpool_free(qpool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
  if (p->inline_reader) p->b->reader_free(p->inline_reader);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int qpool_submit(qpool_t *p, store_query_t *q) {
  q->next = NULL;
  if (!p->nthreads) {
    if (!p->inline_reader) p->inline_reader = p->b->reader_new(p->s);
    run_one(p, p->inline_reader, q);
    return 0;
  }
  pthread_mutex_lock(&p->mu);
  if (p->queued >= STORE_QUERY_QUEUE_MAX || p->closing) {
    pthread_mutex_unlock(&p->mu);
    return TERN_EAGAIN;
  }
  if (p->tail) p->tail->next = q;
  else p->head = q;
  p->tail = q;
  p->queued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}
