/* handle_table.h — a slot table that turns pointers into stable 64-bit handles.
 *
 * Work that crosses threads or outlives a callback (a store completion, a delivery from
 * another worker) names a connection or session by handle, never by pointer: the handle
 * carries a generation, so a handle to a freed object finds nothing instead of a dangling
 * pointer. One table per worker, used only by that worker's thread. */
#ifndef TERN_HANDLE_TABLE_H
#define TERN_HANDLE_TABLE_H

#include <stdint.h>

typedef struct {
  void **ptr;
  uint32_t *gen;
  uint32_t *free_list;
  uint32_t cap, nfree, used;
  uint8_t owner; /* worker index, encoded in every handle */
} handle_table_t;

void handle_table_init(handle_table_t *t, int owner);
void handle_table_free(handle_table_t *t);
uint64_t handle_table_add(handle_table_t *t, void *p);       /* never returns 0 */
void *handle_table_get(const handle_table_t *t, uint64_t h); /* NULL if stale or foreign */
void handle_table_del(handle_table_t *t, uint64_t h);
static inline int handle_owner(uint64_t h) { return (int)((h >> 24) & 0xff); }

#endif
