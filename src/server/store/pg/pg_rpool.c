/* pg_rpool.c — the PostgreSQL backend's read threads (store.h: store_read_submit).
 *
 * A read on a worker's own reader blocks the worker's loop for its round trip (~76 µs a row
 * on loopback) and, when the database is slow or a row it needs is locked, for as long as
 * that lasts (up to the readers' statement_timeout): every connection of the worker waits
 * behind it. The IM layer's heavier reads (history pages) go here instead: a few threads,
 * each with a reader (a connection) of its own, run the read and post its task back to the
 * worker, as the writer posts a job's completion. They are not the query threads
 * (store/qpool.c): those run at a lower priority and may be held by costly `where`s up to
 * query_timeout, which must not hold a history page. */
#include <pthread.h>
#include <stdlib.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"

#define READ_THREADS 4

struct pg_rpool {
  store_t *s;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  store_read_t *head, *tail;
  size_t queued;
  int closing, nthreads;
  pthread_t th[READ_THREADS];
  store_reader_t *inline_reader; /* no threads (inline_writes): the caller's thread runs reads */
};

static void run_one(pg_rpool_t *p, store_reader_t *r, store_read_t *rd) {
  rd->result = r ? rd->fn(r, rd) : TERN_ESTORE;
  rd->task.next = NULL;
  p->s->post(p->s->post_arg, rd->worker, &rd->task);
}

static void *read_main(void *arg) {
  pg_rpool_t *p = arg;
  store_reader_t *r = pg_reader_new(p->s);
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
  pg_reader_free(r);
  return NULL;
}

pg_rpool_t *pg_rpool_new(store_t *s, int threaded) {
  pg_rpool_t *p = xcalloc(1, sizeof *p);
  p->s = s;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  for (int i = 0; threaded && i < READ_THREADS; i++) {
    if (pthread_create(&p->th[i], NULL, read_main, p) != 0) break;
    pthread_setname_np(p->th[i], "tern-pgread");
    p->nthreads++;
  }
  return p;
}

void pg_rpool_free(pg_rpool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->closing = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nthreads; i++) pthread_join(p->th[i], NULL);
  pg_reader_free(p->inline_reader);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

int pg_read_submit(store_t *s, store_read_t *rd) {
  pg_rpool_t *p = s->rpool;
  rd->next = NULL;
  if (!p->nthreads) {
    if (!p->inline_reader) p->inline_reader = pg_reader_new(s);
    run_one(p, p->inline_reader, rd);
    return 0;
  }
  pthread_mutex_lock(&p->mu);
  if (p->queued >= STORE_READ_QUEUE_MAX || p->closing) {
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
