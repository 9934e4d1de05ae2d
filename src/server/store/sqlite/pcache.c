/* pcache.c — SQLite's default page cache behind a shim that keeps it from scanning itself
 * whole at the end of most of the writer's transactions.
 *
 * When SQLite rebalances b-tree pages it renumbers the new ones into ascending order
 * (balance_nonroot), swapping two pages' numbers through a third it knows no page has:
 * the pending-byte page, 2^30 / page size + 1 (262145 with 4 KiB pages). The default cache
 * (pcache1) remembers the largest page number it ever held (iMaxKey) and only lowers it when
 * pages are truncated away; at the end of every write transaction the pager truncates the
 * cache to the database's size, and pcache1 then looks at the pages numbered from there to
 * iMaxKey — after a swap, 262145 minus the database's size of them, more than its hash
 * table has slots, so it walks every slot and every cached page (8,192 of each for the
 * writer's 32 MiB cache). The hot tables' pages go to the freelist and come back in no
 * particular order (store_sqlite_hot.c), so most rebalances swap: at 50,000 paced messages
 * a second the walk was ~0.4 ms of ~1 commit in 5, 12% of the writer's CPU (perf: a loop
 * in libsqlite3 under sqlite3PagerCommitPhaseTwo; bench/README.md, "The page cache's
 * walk").
 *
 * The shim parks such a page under a stand-in number instead: one above every page the
 * cache may hold (`top`), which no page can take while it is parked — the three moves of a
 * swap follow one another with nothing fetched between them. The cache's largest number is
 * then the database's size or one more, and the transaction's truncation looks at a slot
 * or two. Everything else is pcache1's, untouched: which pages stay, their memory, their
 * locking. */
#include "pcache.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>

#define PENDING_BYTE 0x40000000u /* SQLite's, unless a test build moved it */

typedef struct {
  sqlite3_pcache *inner; /* pcache1's cache */
  unsigned temp;         /* the number balance_nonroot parks a page under */
  unsigned top;          /* no page of inner has a larger number */
  unsigned stand;        /* the number standing in for temp while a page is parked there, or 0 */
} pc_t;

static sqlite3_pcache_methods2 base; /* pcache1's methods */
static _Atomic uint64_t swaps;

static sqlite3_pcache *pc_create(int sz_page, int sz_extra, int purgeable) {
  pc_t *c = malloc(sizeof *c);
  if (!c) return NULL;
  c->inner = base.xCreate(sz_page, sz_extra, purgeable);
  if (!c->inner) {
    free(c);
    return NULL;
  }
  c->temp = sz_page > 0 ? PENDING_BYTE / (unsigned)sz_page + 1 : 0;
  c->top = 0;
  c->stand = 0;
  return (sqlite3_pcache *)c;
}

static void pc_cachesize(sqlite3_pcache *p, int n) { base.xCachesize(((pc_t *)p)->inner, n); }
static int pc_pagecount(sqlite3_pcache *p) { return base.xPagecount(((pc_t *)p)->inner); }

static sqlite3_pcache_page *pc_fetch(sqlite3_pcache *p, unsigned key, int create) {
  pc_t *c = (pc_t *)p;
  if (c->stand) {
    assert(key != c->stand); /* nothing is fetched while a page is parked (above) */
    if (key == c->temp) key = c->stand;
  }
  sqlite3_pcache_page *pg = base.xFetch(c->inner, key, create);
  if (pg && key > c->top) c->top = key;
  return pg;
}

static void pc_unpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard) {
  base.xUnpin(((pc_t *)p)->inner, pg, discard);
}

static void pc_rekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned from, unsigned to) {
  pc_t *c = (pc_t *)p;
  if (c->stand && from == c->temp) { /* the park ends */
    from = c->stand;
    c->stand = 0;
  }
  if (to == c->temp && c->temp && !c->stand) { /* a page parked: under a number no page has */
    c->stand = c->top + 1;
    to = c->stand;
    atomic_fetch_add_explicit(&swaps, 1, memory_order_relaxed);
  }
  base.xRekey(c->inner, pg, from, to);
  if (to > c->top) c->top = to;
}

static void pc_truncate(sqlite3_pcache *p, unsigned limit) {
  pc_t *c = (pc_t *)p;
  base.xTruncate(c->inner, limit);
  if (limit > 0 && c->top >= limit) c->top = limit - 1;
}

static void pc_destroy(sqlite3_pcache *p) {
  pc_t *c = (pc_t *)p;
  base.xDestroy(c->inner);
  free(c);
}

static void pc_shrink(sqlite3_pcache *p) {
  if (base.xShrink) base.xShrink(((pc_t *)p)->inner);
}

int pcache_install(void) {
  if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK || !base.xCreate) return -1;
  sqlite3_pcache_methods2 m = {
      .iVersion = 1,
      .pArg = base.pArg,
      .xInit = base.xInit, /* pcache1's own, on its own state (pArg): never NULL once fetched */
      .xShutdown = base.xShutdown,
      .xCreate = pc_create,
      .xCachesize = pc_cachesize,
      .xPagecount = pc_pagecount,
      .xFetch = pc_fetch,
      .xUnpin = pc_unpin,
      .xRekey = pc_rekey,
      .xTruncate = pc_truncate,
      .xDestroy = pc_destroy,
      .xShrink = pc_shrink,
  };
  return sqlite3_config(SQLITE_CONFIG_PCACHE2, &m) == SQLITE_OK ? 0 : -1;
}

uint64_t pcache_swaps(void) { return atomic_load_explicit(&swaps, memory_order_relaxed); }
