/* qpool.h — the query thread pool behind store_query_submit (store.h): each backend owns
 * one and gives it its reader and its deadline-bounded query and count. For backends only. */
#ifndef TERN_QPOOL_H
#define TERN_QPOOL_H

#include "store.h"

typedef struct qpool qpool_t;

/* What a query thread needs of its backend: a reader of its own, and the query and the
 * count of store_conv_q_t within deadline_ns (0: none), answering as store_query_t.result. */
typedef struct {
  store_reader_t *(*reader_new)(store_t *s); /* NULL: the thread answers TERN_ESTORE */
  void (*reader_free)(store_reader_t *r);
  int (*query_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, conv_view_cb cb, void *arg);
  int (*count_until)(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, int64_t *n);
} qpool_backend_t;

/* threaded 0: no threads, queries run on the submitting thread (fuzzers, unit tests).
 * Completions go through post, as the store's jobs do. */
qpool_t *qpool_new(store_t *s, const qpool_backend_t *b, void (*post)(void *arg, int worker, task_t *t), void *post_arg,
                   int threaded);
/* Runs what is queued (each within its deadline), stops the threads, frees. */
void qpool_free(qpool_t *p);
int qpool_submit(qpool_t *p, store_query_t *q);

#endif
