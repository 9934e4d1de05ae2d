/* store_sqlite_int.h — what store_sqlite.c shares with the other files of the SQLite backend
 * (store_sqlite_import.c). Nothing outside store_sqlite*.c includes it. */
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

/* The database file's path (store_backup.c). */
const char *store_db_path(const store_t *s);

/* A reader's connection, for reads that live in the other files. */
sqlite3 *store_reader_db(store_reader_t *r);

#endif
