/* st_harness.c — see st_harness.h. */
#include "st_harness.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <libpq-fe.h>

#include "log.h"
#include "store_pg.h"
#include "store_sqlite.h"

static void sqlite_locate(const char *dir, char *path, size_t n) { snprintf(path, n, "%s/store.db", dir); }

/* PostgreSQL: a new database per store, on the server TERN_TEST_PG names (scripts/test.sh
 * starts one with scripts/pg.sh), dropped when the test closes it. */
static const char *pg_unavailable(void) {
  const char *u = getenv("TERN_TEST_PG");
  return u && *u ? NULL : "TERN_TEST_PG is not set (scripts/test.sh starts a PostgreSQL and sets it)";
}

static void pg_admin(const char *sql) {
  PGconn *c = PQconnectdb(getenv("TERN_TEST_PG"));
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "st: cannot reach TERN_TEST_PG: %s", PQerrorMessage(c));
    abort();
  }
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    fprintf(stderr, "st: %s: %s", sql, PQresultErrorMessage(r));
    abort();
  }
  PQclear(r);
  PQfinish(c);
}

/* The database's name is the last path segment of the URI the store gets. */
static void pg_locate(const char *dir, char *path, size_t n) {
  static int seq;
  char db[64], sql[128];
  snprintf(db, sizeof db, "tern_st_%d_%d", (int)getpid(), ++seq);
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
  pg_admin(sql);
  const char *base = getenv("TERN_TEST_PG");
  const char *slash = strrchr(base, '/');
  const char *query = strchr(slash, '?');
  snprintf(path, n, "%.*s/%s%s", (int)(slash - base), base, db, query ? query : "");
  (void)dir;
}

static void pg_dispose(const char *path) {
  const char *db = strrchr(path, '/') + 1;
  char sql[160];
  snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %.*s WITH (FORCE)", (int)strcspn(db, "?"), db);
  pg_admin(sql);
}

/* The backends the suite runs against. */
const st_backend_t st_backends[] = {
    {"sqlite", &store_sqlite_ops, sqlite_locate, NULL, NULL, 1, "tern_store_db_bytes", 1},
    {"postgres", &store_pg_ops, pg_locate, pg_dispose, pg_unavailable, 0, "tern_store_pg_connections", 1},
};
const size_t st_nbackends = sizeof st_backends / sizeof st_backends[0];
const st_backend_t *st_current;

int st_run_groups(const struct CMUnitTest *tests, size_t n) {
  int failed = 0;
  for (size_t i = 0; i < st_nbackends; i++) {
    st_current = &st_backends[i];
    const char *only = getenv("TERN_ST_BACKEND"); /* run one group: sqlite or postgres */
    if (only && *only && strcmp(only, st_current->name) != 0) continue;
    const char *why = st_current->unavailable ? st_current->unavailable() : NULL;
    if (why) {
      printf("[  SKIPPED ] the %s group: %s\n", st_current->name, why);
      continue;
    }
    failed += _cmocka_run_group_tests(st_current->name, tests, n, NULL, NULL);
  }
  return failed != 0;
}

static st_t *current_st; /* the completions' way back to their st_t */

static void post(void *arg, int worker, task_t *chain) {
  st_t *t = arg;
  if (worker < 0 || worker >= ST_WORKERS) abort();
  pthread_mutex_lock(&t->mu);
  task_t *last = chain;
  while (last->next) last = last->next;
  if (t->tail[worker]) t->tail[worker]->next = chain;
  else t->head[worker] = chain;
  t->tail[worker] = last;
  t->posts++;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void done_fn(task_t *task) {
  st_t *t = current_st;
  store_job_t *j = (store_job_t *)task;
  if (t->ndone == t->capdone) {
    t->capdone = t->capdone ? t->capdone * 2 : 64;
    t->done = realloc(t->done, t->capdone * sizeof *t->done);
    if (!t->done) abort();
  }
  t->done[t->ndone++] = j;
}

void st_job_init(st_t *t, store_job_t *j, job_type_t type, int worker) {
  (void)t;
  j->task.fn = done_fn;
  j->task.next = NULL;
  j->type = type;
  j->worker = worker;
  j->result = 1; /* not a value the store gives: the completion must set it */
  j->free_fn = NULL;
  j->next = NULL;
}

size_t st_run(st_t *t) {
  size_t ran = 0;
  current_st = t; /* two st_t open at once (st_attach): each runs its own completions */
  for (int w = 0; w < ST_WORKERS; w++) {
    pthread_mutex_lock(&t->mu);
    task_t *c = t->head[w];
    t->head[w] = t->tail[w] = NULL;
    pthread_mutex_unlock(&t->mu);
    while (c) {
      task_t *next = c->next;
      c->next = NULL;
      c->fn(c);
      c = next;
      ran++;
    }
  }
  return ran;
}

static int pending(st_t *t) {
  for (int w = 0; w < ST_WORKERS; w++)
    if (t->head[w]) return 1;
  return 0;
}

/* Waits for a post, at most 10 s (a store that never completes fails the test). */
static void wait_post(st_t *t) {
  pthread_mutex_lock(&t->mu);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  while (!pending(t))
    if (pthread_cond_timedwait(&t->cv, &t->mu, &ts) == ETIMEDOUT) {
      fprintf(stderr, "st: no completion within 10 s\n");
      abort();
    }
  pthread_mutex_unlock(&t->mu);
}

long st_done_index(const st_t *t, const store_job_t *j) {
  for (size_t i = 0; i < t->ndone; i++)
    if (t->done[i] == j) return (long)i;
  return -1;
}

int st_submit_wait(st_t *t, store_job_t *j) {
  size_t from = t->ndone; /* a job on the stack may sit where an earlier one completed */
  store_submit(t->s, j);
  for (;;) {
    for (size_t i = from; i < t->ndone; i++)
      if (t->done[i] == j) return j->result;
    if (!st_run(t)) wait_post(t);
  }
}

void st_wait_done(st_t *t, size_t n) {
  while (t->ndone < n)
    if (!st_run(t)) wait_post(t);
}

int st_hot_interval_us;

/* New messages move out of SQLite's hot tables at the next commit (unless a test set
 * st_hot_interval_us), two conversations a step: every test reads while a move is half done
 * (store_sqlite_hot.c). */
static void open_store(st_t *t, int interval_us) {
  store_options_t so = {.path = t->path,
                        .post = post,
                        .post_arg = t,
                        .commit_interval_us = interval_us,
                        .hot_interval_us = st_hot_interval_us,
                        .hot_step_rows = 1};
  if (store_open(t->b->ops, &so, &t->s) < 0) {
    fprintf(stderr, "st: cannot open a %s store at %s\n", t->b->name, t->path);
    abort();
  }
  t->r = store_reader_new(t->s);
  if (!t->r) abort();
}

static st_t *st_new(const st_backend_t *b) {
  st_t *t = calloc(1, sizeof *t);
  if (!t) abort();
  log_level = getenv("TERN_ST_LOG") ? 3 : -1; /* the tests provoke failures the store logs (TERN_ST_LOG: show them) */
  t->b = b;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  current_st = t;
  return t;
}

st_t *st_open(const st_backend_t *b, int interval_us) {
  st_t *t = st_new(b);
  const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(t->dir, sizeof t->dir, "%s/tern-store-XXXXXX", tmp);
  if (!mkdtemp(t->dir)) abort();
  b->locate(t->dir, t->path, sizeof t->path);
  open_store(t, interval_us);
  return t;
}

st_t *st_attach(const st_t *like, int interval_us) {
  st_t *t = st_new(like->b);
  memcpy(t->dir, like->dir, sizeof t->dir);
  memcpy(t->path, like->path, sizeof t->path);
  open_store(t, interval_us);
  return t;
}

void st_wait_any(st_t *t) {
  if (!st_run(t)) wait_post(t);
}

static void close_store(st_t *t) {
  if (!t->s) return;
  store_reader_free(t->r);
  t->r = NULL;
  store_close(t->s); /* posts what it still completes */
  t->s = NULL;
  st_run(t);
}

void st_detach(st_t *t) {
  close_store(t);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t->done);
  if (current_st == t) current_st = NULL;
  free(t);
}

void st_reopen(st_t *t) {
  close_store(t);
  open_store(t, 0);
}

void st_close(st_t *t) {
  close_store(t);
  if (t->b->dispose) t->b->dispose(t->path);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
  if (system(cmd) != 0) fprintf(stderr, "st: could not remove %s\n", t->dir);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t->done);
  if (current_st == t) current_st = NULL;
  free(t);
}
