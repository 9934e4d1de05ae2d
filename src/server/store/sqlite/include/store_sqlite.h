/* store_sqlite.h — the SQLite backend of the store interface, for whoever wires a server
 * (main.c, the tests, the fuzz harnesses): store_open(&store_sqlite_ops, …). The only
 * public header of store/sqlite; the rest of the folder is the backend's own. */
#ifndef TERN_STORE_SQLITE_H
#define TERN_STORE_SQLITE_H

#include "store.h"

extern const store_ops_t store_sqlite_ops;

#endif
