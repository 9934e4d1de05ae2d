/* qpool.c — reader threads off the network loops, for every backend's queries and reads.
 *
 * A `conv query` used to run on the worker that received it, so a costly `where` — a
 * regular expression built to backtrack, over ~1,000 rows — held every other client of that
 * worker for over a minute. Now a worker hands the translated query to a small pool of
 * threads, each with a reader of its own, and gets the answer back as a task like a store
 * job's. Each query has a deadline from the moment it was submitted (store.h), so a queue
 * of hostile queries drains at the deadline's pace and a legitimate one is never stuck
 * behind it for longer than that; the query threads run at a lower CPU priority than the
 * network threads, so a pool busy with hostile work does not slow message delivery either.
 *
 * The same pool, with threads of its own and at the network threads' priority, takes the
 * reads of a backend that answers over the network (PostgreSQL: history pages, receipts —
 * store_read_submit), so that a slow or locked read holds no worker's loop and waits behind
 * no costly `where`. */
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

#define MAX_THREADS 8

struct qpool {
  store_t *s;
  qpool_conf_t c;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  store_read_t *head, *tail;
  size_t queued;
  int closing, nthreads;
  pthread_t th[MAX_THREADS];
  store_reader_t *inline_reader; /* no threads (inline_writes): the caller's thread runs it */
};

static void run_one(qpool_t *p, store_reader_t *r, store_read_t *rd) {
  rd->result = r ? rd->fn(r, rd) : TERN_ESTORE;
  rd->task.next = NULL;
  p->post(p->post_arg, rd->worker, &rd->task);
}

static void *pool_main(void *arg) {
  qpool_t *p = arg;
  /* below the network threads: a pool busy with costly queries must not delay delivery */
  if (p->c.nice && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->c.nice) != 0)
    log_at(LOG_DEBUG, "%s thread: setpriority failed", p->c.name);
  store_reader_t *r = p->c.reader_new(p->s);
  if (!r) log_at(LOG_ERROR, "%s thread: cannot open a reader", p->c.name);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->closing) pthread_cond_wait(&p->cv, &p->mu);
    store_read_t *rd = p->head;
    if (!rd) break; /* closing, and the queue is drained */
    p->head = rd->next;
    if (!p->head) p->tail = NULL;
    p->queued--;
    pthread_mutex_unlock(&p->mu);
    run_one(p, r, rd);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  p->c.reader_free(r);
  return NULL;
}

qpool_t *qpool_new(store_t *s, const qpool_conf_t *c, void (*post)(void *arg, int worker, task_t *t), void *post_arg,
                   int threaded) {
  qpool_t *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->c = *c;
  p->post = post;
  p->post_arg = post_arg;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 0; threaded && i < c->threads && i < MAX_THREADS; i++) {
    if (pthread_create(&p->th[i], NULL, pool_main, p) != 0) break;
    pthread_setname_np(p->th[i], c->name);
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
  if (p->inline_reader) p->c.reader_free(p->inline_reader);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int qpool_submit(qpool_t *p, store_read_t *rd) {
  rd->next = NULL;
  if (!p->nthreads) {
    if (!p->inline_reader) p->inline_reader = p->c.reader_new(p->s);
    run_one(p, p->inline_reader, rd);
    return 0;
  }
  pthread_mutex_lock(&p->mu);
  if (p->queued >= p->c.queue_max || p->closing) {
    pthread_mutex_unlock(&p->mu);
    return TERN_EAGAIN;
  }
  if (p->tail) p->tail->next = rd;
  else p->head = rd;
  p->tail = rd;
  p->queued++;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

/* On q's worker: the read's answer is the query's. */
static void query_read(task_t *t) {
  store_query_t *q = QPOOL_QUERY_OF((store_read_t *)(void *)t);
  q->result = q->rd.result;
  q->task.fn(&q->task);
}

int qpool_submit_query(qpool_t *p, store_query_t *q, int (*fn)(store_reader_t *r, store_read_t *rd)) {
  q->rd = (store_read_t){.task.fn = query_read, .worker = q->worker, .fn = fn};
  return qpool_submit(p, &q->rd);
}

int qpool_run_query(store_reader_t *r, store_query_t *q,
                    int (*count_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, int64_t *n),
                    int (*query_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns,
                                       conv_view_cb cb, void *arg)) {
  if (q->deadline_ns && mono_ns() >= q->deadline_ns) return TERN_ETIMEDOUT; /* its time went in the queue */
  int rc = q->count ? count_until(r, &q->q, q->deadline_ns, &q->n) : 0;
  if (rc == 0 && (!q->count || q->q.limit > 0)) rc = query_until(r, &q->q, q->deadline_ns, q->cb, q->cb_arg);
  return rc;
}
