/* map.c — see map.h. */
#include "map.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crypto.h"

static uint64_t seed[2];
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void) { random_bytes(seed, sizeof seed); }

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                       \
  do {                                                                                                                 \
    v0 += v1;                                                                                                          \
    v1 = ROTL(v1, 13);                                                                                                 \
    v1 ^= v0;                                                                                                          \
    v0 = ROTL(v0, 32);                                                                                                 \
    v2 += v3;                                                                                                          \
    v3 = ROTL(v3, 16);                                                                                                 \
    v3 ^= v2;                                                                                                          \
    v0 += v3;                                                                                                          \
    v3 = ROTL(v3, 21);                                                                                                 \
    v3 ^= v0;                                                                                                          \
    v2 += v1;                                                                                                          \
    v1 = ROTL(v1, 17);                                                                                                 \
    v1 ^= v2;                                                                                                          \
    v2 = ROTL(v2, 32);                                                                                                 \
  } while (0)

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* SipHash-1-3: one compression round per 8-byte word, three finalisation rounds. */
uint64_t map_hash(const void *key, size_t klen) {
  pthread_once(&seed_once, seed_init);
  const uint8_t *p = key;
  uint64_t k0 = seed[0], k1 = seed[1];
  uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  const uint8_t *end = p + (klen & ~(size_t)7);
  for (; p != end; p += 8) {
    uint64_t m = load_le64(p);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
  }
  uint64_t b = (uint64_t)klen << 56;
  switch (klen & 7) {
  case 7: b |= (uint64_t)p[6] << 48; /* fall through */
  case 6: b |= (uint64_t)p[5] << 40; /* fall through */
  case 5: b |= (uint64_t)p[4] << 32; /* fall through */
  case 4: b |= (uint64_t)p[3] << 24; /* fall through */
  case 3: b |= (uint64_t)p[2] << 16; /* fall through */
  case 2: b |= (uint64_t)p[1] << 8;  /* fall through */
  case 1: b |= (uint64_t)p[0]; break;
  default: break;
  }
  v3 ^= b;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

#define MAP_MIN 16

void map_init(map_t *m) {
  m->nb = MAP_MIN;
  m->n = 0;
  m->b = xcalloc(m->nb, sizeof *m->b);
}

void map_fini(map_t *m) {
  free(m->b);
  m->b = NULL;
  m->nb = m->n = 0;
}

map_node_t *map_find_h(const map_t *m, const void *key, size_t klen, uint64_t h) {
  uint32_t h32 = (uint32_t)h;
  for (map_node_t *n = m->b[h32 & (m->nb - 1)]; n; n = n->next)
    if (n->hash == h32 && n->klen == klen && memcmp(n->key, key, klen) == 0) return n;
  return NULL;
}

map_node_t *map_find(const map_t *m, const void *key, size_t klen) {
  return map_find_h(m, key, klen, map_hash(key, klen));
}

static void grow(map_t *m) {
  size_t nb = m->nb * 2;
  map_node_t **b = xcalloc(nb, sizeof *b);
  for (size_t i = 0; i < m->nb; i++)
    for (map_node_t *n = m->b[i], *next; n; n = next) {
      next = n->next;
      n->next = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
    }
  free(m->b);
  m->b = b;
  m->nb = nb;
}

void map_add_h(map_t *m, map_node_t *n, uint64_t h) {
  n->hash = (uint32_t)h;
  map_node_t **head = &m->b[n->hash & (m->nb - 1)];
  n->next = *head;
  *head = n;
  if (++m->n > m->nb) grow(m);
}

void map_add(map_t *m, map_node_t *n) { map_add_h(m, n, map_hash(n->key, n->klen)); }

void map_remove(map_t *m, map_node_t *n) {
  for (map_node_t **pp = &m->b[n->hash & (m->nb - 1)]; *pp; pp = &(*pp)->next)
    if (*pp == n) {
      *pp = n->next;
      n->next = NULL;
      m->n--;
      return;
    }
}

/* The first node at or after bucket it->i. */
static map_node_t *scan(const map_t *m, map_iter_t *it) {
  while (it->i < m->nb) {
    map_node_t *n = m->b[it->i++];
    if (n) {
      it->next = n->next;
      return n;
    }
  }
  it->next = NULL;
  return NULL;
}

map_node_t *map_first(const map_t *m, map_iter_t *it) {
  it->i = 0;
  it->next = NULL;
  return m->b ? scan(m, it) : NULL;
}

map_node_t *map_next(const map_t *m, map_iter_t *it) {
  map_node_t *n = it->next;
  if (n) {
    it->next = n->next;
    return n;
  }
  return scan(m, it);
}

size_t map_longest_chain(const map_t *m) {
  size_t most = 0;
  for (size_t i = 0; i < m->nb; i++) {
    size_t k = 0;
    for (map_node_t *n = m->b[i]; n; n = n->next) k++;
    if (k > most) most = k;
  }
  return most;
}
