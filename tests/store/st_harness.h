/* st_harness.h — the store conformance suite's harness: the table of backends and a store
 * opened through the interface (store.h) with a real writer thread, whose completions the
 * test thread runs as a worker would.
 *
 * Every test of tests/store/test_store_*.c runs once per backend of st_backends (a cmocka
 * group per backend): a new backend (issue #14: PostgreSQL) adds its row there and must
 * pass the same tests. Nothing here knows SQL or any backend's schema. */
#ifndef TERN_ST_HARNESS_H
#define TERN_ST_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct {
  const char *name;
  const store_ops_t *ops;
  /* A fresh, empty place for a store: fills path (what store_options_t.path gets) from
   * dir, a new temporary directory of the test's. */
  void (*locate)(const char *dir, char *path, size_t n);
  /* Removes what locate made beyond dir (NULL: nothing), once the store is closed. */
  void (*dispose)(const char *path);
  /* Whether the backend can run here (NULL: always); else why not, for the SKIPPED line. */
  const char *(*unavailable)(void);
  /* What the backend answers beside the shared contract: whether store_backup makes a copy
   * (else TERN_ENOTSUP), a line its store_metrics always gives, and whether it runs
   * conversation queries yet (else TERN_ENOTSUP from each). */
  int online_backup;
  const char *metric;
  int conv_queries;
} st_backend_t;

extern const st_backend_t st_backends[];
extern const size_t st_nbackends;

#define ST_WORKERS 4

typedef struct st st_t;
struct st {
  const st_backend_t *b;
  char dir[256], path[512];
  store_t *s;
  store_reader_t *r;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  task_t *head[ST_WORKERS], *tail[ST_WORKERS]; /* posted by the writer, not yet run */
  /* completions run so far, in the order they ran (st_run runs worker 0's first, …) */
  store_job_t **done;
  size_t ndone, capdone;
  int posts; /* how many times the writer posted (one chain per worker per batch) */
};

/* Opens a store of backend b in a new temporary directory (threaded writer, no commit
 * interval unless interval_us), with a reader. */
st_t *st_open(const st_backend_t *b, int interval_us);
/* Another st_t on the place of `like` (a forked child's own store); never closed. */
st_t *st_attach(const st_t *like, int interval_us);
/* Closes the store of an st_attach'ed t (every job completes first) and frees t, leaving
 * the place to the st_t it was attached to. */
void st_detach(st_t *t);
/* Closes the store if open (every job completes first) and opens it again on the same
 * place. */
void st_reopen(st_t *t);
/* Runs what is posted, or waits for the next post (at most 10 s). */
void st_wait_any(st_t *t);
/* Closes and removes everything. */
void st_close(st_t *t);

/* The completion every test job uses: records the job in t->done (the job's worker field
 * says which st_t: tests set job.worker to a worker index below ST_WORKERS). */
void st_job_init(st_t *t, store_job_t *j, job_type_t type, int worker);
/* Submits j and runs completions until j's has run; returns j->result. */
int st_submit_wait(st_t *t, store_job_t *j);
/* Runs the completions posted so far (worker 0's chain first); how many ran. */
size_t st_run(st_t *t);
/* Waits until at least n completions have run in all (running them). */
void st_wait_done(st_t *t, size_t n);
/* Index of j in t->done, or -1. */
long st_done_index(const st_t *t, const store_job_t *j);

/* SQLite: how long new messages stay in a hot table before they move into msg, for the
 * stores opened from then on (0, the default: they move at the next commit). */
extern int st_hot_interval_us;

/* The group's backend, set by st_run_groups for each group. */
extern const st_backend_t *st_current;

/* Each program's main: runs its tests once per backend of st_backends, as a cmocka group
 * named after the backend with st_current set to it. Nonzero when any test failed. */
struct CMUnitTest;
int st_run_groups(const struct CMUnitTest *tests, size_t n);

#endif
