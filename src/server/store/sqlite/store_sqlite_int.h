/* store_sqlite_int.h — what store_sqlite.c shares with the other files of the SQLite backend
 * (store_sqlite_import.c, store_class.c, store_backup.c, and the query threads of store/qpool.c). Nothing outside
 * store/sqlite/ includes it (tests/layers checks). */
#ifndef TERN_STORE_SQLITE_INT_H
#define TERN_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "store.h"

/* The bulk import's prepared statements on the writer connection (store_sqlite_import.c). */
typedef struct store_import store_import_t;

/* Runs a JOB_IMPORT on the writer's connection, inside the batch's transaction; prepares
 * *imp on the first call. Returns 0 or the SQLite error that failed the job. */
int store_import_run(sqlite3 *db, store_import_t **imp, job_import_t *j);
void store_import_free(store_import_t *imp); /* NULL is a no-op */

/* The backend's entries that live in, or are called from, the other files (store_sqlite.c
 * puts them in store_sqlite_ops). */
store_reader_t *sq_reader_new(store_t *s);
void sq_reader_free(store_reader_t *r);
int sq_conv_query_until(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, conv_view_cb cb, void *arg);
/* store_conv_count with the same budget as sq_conv_query_until (deadline 0: none): 0,
 * TERN_ETIMEDOUT, TERN_E2BIG, TERN_EINVAL, TERN_ESTORE. */
int sq_conv_count_until(store_reader_t *r, const store_conv_q_t *q, uint64_t deadline_ns, int64_t *n);
int sq_msg_ext_find(store_reader_t *r, const char *mid, int64_t *ts, int64_t *seq);
int sq_installation_count(store_reader_t *r, const store_class_q_t *q, int64_t *n);
int sq_installation_query(store_reader_t *r, const store_class_q_t *q,
                          void (*cb)(void *arg, const installation_row_t *row), void *arg);

struct query;
/* Binds a compiled query's parameters to st, positionally from ?1 (store_class.c); the
 * strings stay q's, so q must outlive the statement's steps. */
void sq_bind_query(sqlite3_stmt *st, const struct query *q);
/* SELECT count(*) FROM `from` WHERE q (store_class.c). */
int sq_count(store_reader_t *r, const char *from, const struct query *q, int64_t *n);
/* The database file's path (store_backup.c). */
const char *store_db_path(const store_t *s);
/* store_backup and store_metrics of the interface (store_backup.c). */
int sq_backup(store_t *s, const char *dest, int64_t *bytes);
void sq_metrics(store_t *s, buf_t *out);

/* A reader's connection, for reads that live in the other files. */
sqlite3 *store_reader_db(store_reader_t *r);

#endif
