/* pcache.h — SQLite's own page cache (pcache1) behind a thin shim that keeps a commit from
 * scanning the whole cache after a b-tree rebalance (pcache.c says why). Installed for
 * every connection of the process, before SQLite initializes. */
#ifndef TERN_PCACHE_H
#define TERN_PCACHE_H

#include <stdint.h>

/* Puts the shim in front of SQLite's default page cache; before the first sqlite3_open
 * (sqlite3_config's rule), at most once per process. 0, or -1 when SQLite refused (then
 * its default cache serves alone, as before). */
int pcache_install(void);

/* How many times a rebalance's page-number swap was given a stand-in key (pcache.c), since
 * the process started, never reset: what tests/unit/test_pcache.c checks the shim by. */
uint64_t pcache_swaps(void);

#endif
