/* handle_table.c — handle = generation(32) | owner(8) | slot(24). */
#include "handle_table.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void handle_table_init(handle_table_t *t, int owner) {
  memset(t, 0, sizeof *t);
  t->owner = (uint8_t)owner;
}

void handle_table_free(handle_table_t *t) {
  free(t->ptr);
  free(t->gen);
  free(t->free_list);
  memset(t, 0, sizeof *t);
}

uint64_t handle_table_add(handle_table_t *t, void *p) {
  uint32_t slot;
  if (t->nfree) {
    slot = t->free_list[--t->nfree];
  } else {
    if (t->used == t->cap) {
      uint32_t cap = t->cap ? t->cap * 2 : 256;
      if (cap > (1u << 24)) abort(); /* 16M live objects per worker is far past the fd limit */
      t->ptr = xrealloc(t->ptr, cap * sizeof *t->ptr);
      t->gen = xrealloc(t->gen, cap * sizeof *t->gen);
      t->free_list = xrealloc(t->free_list, cap * sizeof *t->free_list);
      memset(t->gen + t->cap, 0, (cap - t->cap) * sizeof *t->gen);
      t->cap = cap;
    }
    slot = t->used++;
  }
  t->gen[slot]++;
  if (t->gen[slot] == 0) t->gen[slot] = 1;
  t->ptr[slot] = p;
  return (uint64_t)t->gen[slot] << 32 | (uint64_t)t->owner << 24 | slot;
}

void *handle_table_get(const handle_table_t *t, uint64_t h) {
  uint32_t slot = (uint32_t)(h & 0xffffff);
  if (((h >> 24) & 0xff) != t->owner || slot >= t->used) return NULL;
  if (t->gen[slot] != (uint32_t)(h >> 32)) return NULL;
  return t->ptr[slot];
}

void handle_table_del(handle_table_t *t, uint64_t h) {
  if (!handle_table_get(t, h)) return;
  uint32_t slot = (uint32_t)(h & 0xffffff);
  t->ptr[slot] = NULL;
  t->gen[slot]++;
  t->free_list[t->nfree++] = slot;
}
