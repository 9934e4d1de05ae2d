/* store_pg.h — the PostgreSQL backend's ops table (store.h: store_ops_t), for main.c and the
 * tests; everything else of store/pg is private.
 *
 * store_options_t.path is a libpq connection string: a postgres:// or postgresql:// URI
 * (or key=value pairs). The database must exist; the backend creates and migrates its
 * tables in it (schema_version, under an advisory lock so that nodes starting together
 * migrate once). */
#ifndef TERN_STORE_PG_H
#define TERN_STORE_PG_H

#include "store.h"

extern const store_ops_t store_pg_ops;

/* Whether spec names a PostgreSQL store (a postgres:// or postgresql:// URI). */
int store_pg_spec(const char *spec);

#endif
