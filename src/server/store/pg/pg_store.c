/* pg_store.c — opening and closing the PostgreSQL store, and its /metrics lines.
 *
 * store_options_t.path is the libpq connection string. Opening connects the writer,
 * migrates the schema (pg_schema.c) and starts the writer thread and the query threads;
 * a database that cannot be reached at open fails the open (ternd does not start on a
 * store it has never seen). Once open, a database that goes away fails writes and reads
 * (TERN_ESTORE) while every connection retries with a backoff, and all is well again
 * when it returns: nothing is acked that did not commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "log.h"
#include "pg_int.h"
#include "store_pg.h"

int pg_open(const store_options_t *opt, store_t **out);
void pg_close(store_t *s);
void pg_metrics(store_t *s, buf_t *out);

int store_pg_spec(const char *spec) {
  return spec && (strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0);
}

/* the writer's statements wait behind row locks at most this long before its batch fails */
#define WRITE_TIMEOUT_MS 30000

int pg_open(const store_options_t *opt, store_t **out) {
  store_t *s = xcalloc(1, sizeof *s);
  s->ops = &store_pg_ops;
  map_init(&s->order);
  map_init(&s->lm);
  map_init(&s->touch);
  map_init(&s->fwd);
  s->uri = xstrdup(opt->path);
  s->inline_writes = opt->inline_writes;
  s->post = opt->post;
  s->post_arg = opt->post_arg;
  s->interval_us = opt->commit_interval_us;
  s->w.uri = s->uri;
  s->w.role = "writer";
  s->w.writer = 1;
  s->w.stmt_timeout_ms = WRITE_TIMEOUT_MS;
  s->w.reconnects = &s->reconnects;
  s->w.round_trips = &s->round_trips;
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (pgc_ensure(&s->w) < 0 || pg_migrate(&s->w) < 0) {
    pg_close(s);
    return TERN_ESTORE;
  }
  atomic_store(&s->writer_up, 1);
  /* queries below the network threads; reads at their priority, on threads of their own */
  static const qpool_conf_t qc = {"tern-query",  2, QPOOL_QUERY_NICE, STORE_QUERY_QUEUE_MAX, pg_reader_new,
                                  pg_reader_free};
  static const qpool_conf_t rc = {"tern-pgread", 4, 0, STORE_READ_QUEUE_MAX, pg_reader_new, pg_reader_free};
  s->qpool = qpool_new(s, &qc, s->post, s->post_arg, !s->inline_writes);
  s->rpool = qpool_new(s, &rc, s->post, s->post_arg, !s->inline_writes);
  if (!s->inline_writes) {
    pthread_create(&s->writer, NULL, pg_writer_main, s);
    pthread_setname_np(s->writer, "tern-writer");
    s->started = 1;
  }
  *out = s;
  return 0;
}

void pg_close(store_t *s) {
  if (!s) return;
  qpool_free(s->qpool); /* queries still queued run (within their deadlines) and post first */
  qpool_free(s->rpool); /* so do reads */
  if (s->started) {
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
  }
  if (s->w.c) pg_lm_final(s); /* the writer has stopped: this thread may write */
  map_t *maps[] = {&s->lm, &s->touch, &s->fwd, &s->order};
  for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
    pg_notes_clear(maps[i]);
    map_fini(maps[i]);
  }
  pgc_close(&s->w);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->uri);
  free(s);
}

/* What is cheap to know: connections, whether the writer is connected, reconnections and
 * failed batches. Commit latency and batch sizes are tern_store_commit_seconds and
 * tern_store_commit_batch_size, as on SQLite. */
void pg_metrics(store_t *s, buf_t *out) {
  if (!s) return;
  buf_printf(out,
             "# HELP tern_store_pg_connections Connections to PostgreSQL open now (the writer, one per worker's "
             "reader and per query thread).\n# TYPE tern_store_pg_connections gauge\ntern_store_pg_connections %d\n"
             "# HELP tern_store_pg_writer_up Whether the writer's connection was up at its last batch.\n"
             "# TYPE tern_store_pg_writer_up gauge\ntern_store_pg_writer_up %d\n"
             "# HELP tern_store_pg_connects_total Connections made to PostgreSQL (more than the connections: "
             "reconnections after it went away).\n# TYPE tern_store_pg_connects_total counter\n"
             "tern_store_pg_connects_total %d\n"
             "# HELP tern_store_pg_failed_batches_total Group commits that failed (every job of them refused).\n"
             "# TYPE tern_store_pg_failed_batches_total counter\ntern_store_pg_failed_batches_total %lld\n"
             "# HELP tern_store_pg_batch_reruns_total Group commits run again with a savepoint per job after a "
             "statement failed (only the failing job fails).\n# TYPE tern_store_pg_batch_reruns_total counter\n"
             "tern_store_pg_batch_reruns_total %lld\n"
             "# HELP tern_store_pg_rekeyed_total Messages stored past a newer key another writer had stored "
             "first (their id and timestamp moved: docs/cluster.md).\n# TYPE tern_store_pg_rekeyed_total counter\n"
             "tern_store_pg_rekeyed_total %lld\n"
             "# HELP tern_store_pg_order_retries_total Group commits run again in two round trips because a "
             "message's key was not past its conversation's newest (the one-round-trip attempt found it: "
             "docs/cluster.md).\n# TYPE tern_store_pg_order_retries_total counter\n"
             "tern_store_pg_order_retries_total %lld\n"
             "# HELP tern_store_round_trips_total Round trips the store's writer waited for (a pipelined flight "
             "of statements is one; with tern_store_commit_seconds_count, round trips per commit).\n"
             "# TYPE tern_store_round_trips_total counter\ntern_store_round_trips_total %lld\n",
             pg_open_connections(), atomic_load(&s->writer_up), atomic_load(&s->reconnects),
             (long long)atomic_load(&s->batches_failed), (long long)atomic_load(&s->batch_reruns),
             (long long)atomic_load(&s->rekeyed), (long long)atomic_load(&s->order_behind),
             (long long)atomic_load(&s->round_trips));
}
