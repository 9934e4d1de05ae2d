/* qpool.h — a backend's reader threads: a few threads, each with a reader of its own, run
 * store_read_t work off the network loops and post it back to its worker (store.h:
 * store_read_submit; store_query_submit, whose conversation queries run here as reads).
 * For backends only. */
#ifndef TERN_QPOOL_H
#define TERN_QPOOL_H

#include <stddef.h>

#include "store.h"

typedef struct qpool qpool_t;

#define QPOOL_QUERY_NICE 5 /* the query threads' CPU priority below the network threads' */

typedef struct {
  const char *name; /* the threads' name */
  int threads;
  int nice;                                  /* CPU priority below the network threads' by this much (0: the same) */
  size_t queue_max;                          /* reads waiting for a thread; past it submit refuses */
  store_reader_t *(*reader_new)(store_t *s); /* NULL: the thread answers TERN_ESTORE */
  void (*reader_free)(store_reader_t *r);
} qpool_conf_t;

/* threaded 0: no threads, reads run on the submitting thread (fuzzers, unit tests).
 * Completions go through post, as the store's jobs do. */
qpool_t *qpool_new(store_t *s, const qpool_conf_t *c, void (*post)(void *arg, int worker, task_t *t), void *post_arg,
                   int threaded);
/* Runs what is queued, stops the threads, frees. */
void qpool_free(qpool_t *p);
/* rd->fn, rd->task.fn and rd->worker set: 0, or TERN_EAGAIN (queue full or closing: nothing ran). */
int qpool_submit(qpool_t *p, store_read_t *rd);

/* A conversation query as a read: fn is the backend's, and calls qpool_run_query with its
 * count and page functions; q->result is set before q->task.fn runs on q->worker. */
int qpool_submit_query(qpool_t *p, store_query_t *q, int (*fn)(store_reader_t *r, store_read_t *rd));
#define QPOOL_QUERY_OF(r_) ((store_query_t *)(void *)((char *)(r_)-offsetof(store_query_t, rd)))
/* The query's count (when asked) then its page, each within q->deadline_ns: the result. */
int qpool_run_query(store_reader_t *r, store_query_t *q,
                    int (*count_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, int64_t *n),
                    int (*query_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns,
                                       conv_view_cb cb, void *arg));

#endif
