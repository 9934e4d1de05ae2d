/* map.h — the server's one hash map: chained, intrusive, byte-string keys, one keyed hash.
 *
 * Intrusive: the caller embeds a map_node_t in its own entry and points node.key at the key
 * bytes, which usually live in the same allocation (a flexible array after the node), so a
 * table entry is one allocation and the map adds 24 bytes to it (next, key, hash, length).
 * Keys are byte strings (length given, NULs allowed); for a C string pass strlen.
 *
 * The hash: SipHash-1-3 (64-bit out) keyed with 128 random bits drawn once per process
 * (random_bytes, on first use). The keys of the tables are chosen by clients (client ids,
 * conversation ids, nonces, IP strings); with an unkeyed hash such as FNV-1a anybody can
 * compute ids that all land in one bucket and turn every lookup under a shared lock into a
 * list walk. SipHash is the keyed PRF designed for exactly this (it is what Python, Rust and
 * Redis use for their tables); the 1-3 rounds variant is the one those chose for speed, and on
 * the short keys here it costs a few tens of nanoseconds. Without the key, colliding inputs
 * cannot be chosen offline, and the key never leaves the process.
 *
 * Contract:
 *  - Ownership: the map owns only its bucket array. Nodes (and the keys and values in them)
 *    belong to the caller, who frees them after map_remove or while tearing down (iterate,
 *    remove each, free it, then map_fini).
 *  - A node's key bytes must not change (nor move) while the node is in the map.
 *  - One node per key is the caller's rule: map_add does not look; use map_find first.
 *  - Iteration while deleting: map_first/map_next may be interleaved with map_remove of the
 *    node just returned (the iterator has already stepped past it). Removing any other node,
 *    or adding, during an iteration is not allowed (an add may resize).
 *  - Resizing: the bucket array starts at 16 and doubles when there are more nodes than
 *    buckets (load factor ≤ 1), in map_add; it never shrinks (a table that was once large
 *    keeps 8 bytes a bucket until map_fini).
 *  - No locking: callers lock. Sharded callers pick the shard with map_shard (the hash's top
 *    bits, independent of the bucket's low bits) and pass the hash to the *_h functions so
 *    it is computed once.
 */
#ifndef TERN_MAP_H
#define TERN_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct map_node {
  struct map_node *next;
  const void *key;
  uint32_t hash; /* the low 32 bits of map_hash: enough for the bucket and a quick compare */
  uint32_t klen;
} map_node_t;

typedef struct {
  map_node_t **b;
  size_t nb, n;
} map_t;

typedef struct {
  size_t i;
  map_node_t *next;
} map_iter_t;

/* SipHash-1-3 of the bytes under the per-process key. */
uint64_t map_hash(const void *key, size_t klen);
/* Which of nshards (a power of two, at most 2^16) a hash belongs to. */
static inline unsigned map_shard(uint64_t h, unsigned nshards) { return (unsigned)(h >> 48) & (nshards - 1); }

void map_init(map_t *m);
void map_fini(map_t *m); /* frees the buckets; the nodes are the caller's (see above) */
static inline size_t map_count(const map_t *m) { return m->n; }

/* The node with this key, or NULL. */
map_node_t *map_find(const map_t *m, const void *key, size_t klen);
map_node_t *map_find_h(const map_t *m, const void *key, size_t klen, uint64_t h);
/* Adds n, whose key and klen the caller has set (klen < 4 GiB); the key must not be there. */
void map_add(map_t *m, map_node_t *n);
void map_add_h(map_t *m, map_node_t *n, uint64_t h);
/* Unlinks n (which must be in m). */
void map_remove(map_t *m, map_node_t *n);

/* Iteration in bucket order; see the contract for what may change meanwhile. */
map_node_t *map_first(const map_t *m, map_iter_t *it);
map_node_t *map_next(const map_t *m, map_iter_t *it);

/* The longest chain (tests and diagnostics: it walks every bucket). */
size_t map_longest_chain(const map_t *m);

/* The entry struct holding node n as its member `field`. */
#define MAP_ENTRY(n, type, field) ((type *)(void *)((char *)(n)-offsetof(type, field)))

#endif
