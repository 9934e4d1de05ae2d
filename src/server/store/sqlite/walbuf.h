/* walbuf.h — the "tern-walbuf" SQLite VFS: the default VFS, except that writes to a
 * database's -wal file are gathered and written with one pwrite() when SQLite is about to
 * publish them (walbuf.c explains when that is, and why it is safe). For the one
 * connection that writes; readers keep the default VFS. */
#ifndef TERN_WALBUF_H
#define TERN_WALBUF_H

#include <sqlite3.h>

#define WALBUF_VFS "tern-walbuf"

/* Registers the VFS (once per process, not as the default); 0, or -1 when SQLite's default
 * VFS cannot be wrapped (then open databases with the default). */
int walbuf_register(void);

#endif
