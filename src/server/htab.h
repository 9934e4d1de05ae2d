/* htab.h — a slot table that turns pointers into stable 64-bit handles.
 *
 * Work that crosses threads or outlives a callback (a store completion, a delivery from
 * another worker) names a connection or session by handle, never by pointer: the handle
 * carries a generation, so a handle to a freed object finds nothing instead of a dangling
 * pointer. One table per worker, used only by that worker's thread. */
#ifndef TERN_HTAB_H
#define TERN_HTAB_H

#include <stdint.h>

typedef struct {
  void **ptr;
  uint32_t *gen;
  uint32_t *free_list;
  uint32_t cap, nfree, used;
  uint8_t owner; /* worker index, encoded in every handle */
} htab_t;

void htab_init(htab_t *t, int owner);
void htab_free(htab_t *t);
uint64_t htab_add(htab_t *t, void *p);      /* never returns 0 */
void *htab_get(const htab_t *t, uint64_t h); /* NULL if stale or foreign */
void htab_del(htab_t *t, uint64_t h);
static inline int htab_owner(uint64_t h) { return (int)((h >> 24) & 0xff); }

#endif
