/* store_query.h — the query thread pool behind store_query_submit (store.h); the SQLite
 * store owns one. Private to the store. */
#ifndef TERN_STORE_QUERY_H
#define TERN_STORE_QUERY_H

#include "store.h"

typedef struct qpool qpool_t;

/* threaded 0: no threads, queries run on the submitting thread (fuzzers, unit tests).
 * Completions go through post, as the store's jobs do. */
qpool_t *qpool_new(store_t *s, void (*post)(void *arg, int worker, task_t *t), void *post_arg, int threaded);
/* Runs what is queued (each within its deadline), stops the threads, frees. */
void qpool_free(qpool_t *p);
int qpool_submit(qpool_t *p, store_query_t *q);

#endif
