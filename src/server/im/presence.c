/* presence.c — a sharded chained hash of client id → session handles. */
#include "presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "buf.h"
#include "map.h"

#define SHARDS 64

typedef struct entry {
  map_node_t node; /* key: client */
  uint32_t n, cap;
  presence_ref_t *refs; /* &one while a client has one session (nearly always), else heap */
  presence_ref_t one;
  bucket_t rate; /* commands of this client, all sessions together */
  char client[];
} entry_t;

typedef struct {
  pthread_mutex_t mu;
  map_t map;
} shard_t;

struct presence {
  shard_t shards[SHARDS];
  atomic_size_t clients;
};

presence_t *presence_new(void) {
  presence_t *p = xcalloc(1, sizeof *p);
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&p->shards[i].mu, NULL);
    map_init(&p->shards[i].map);
  }
  return p;
}

static void entry_free(entry_t *e) {
  for (uint32_t i = 0; i < e->n; i++) free(e->refs[i].tag);
  if (e->refs != &e->one) free(e->refs);
  free(e);
}

void presence_free(presence_t *p) {
  if (!p) return;
  for (int i = 0; i < SHARDS; i++) {
    shard_t *s = &p->shards[i];
    map_iter_t it;
    for (map_node_t *n = map_first(&s->map, &it); n; n = map_next(&s->map, &it)) {
      map_remove(&s->map, n);
      entry_free(MAP_ENTRY(n, entry_t, node));
    }
    map_fini(&s->map);
    pthread_mutex_destroy(&s->mu);
  }
  free(p);
}

static shard_t *shard_of(presence_t *p, uint64_t h) { return &p->shards[map_shard(h, SHARDS)]; }

static entry_t *find(shard_t *s, const char *client, uint64_t h) {
  map_node_t *n = map_find_h(&s->map, client, strlen(client), h);
  return n ? MAP_ENTRY(n, entry_t, node) : NULL;
}

void presence_add(presence_t *p, const char *client, uint64_t session, const char *tag) {
  uint64_t h = map_hash(client, strlen(client));
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t *e = find(s, client, h);
  if (!e) {
    size_t len = strlen(client);
    e = xcalloc(1, sizeof *e + len + 1);
    memcpy(e->client, client, len + 1);
    e->node.key = e->client;
    e->node.klen = (uint32_t)len;
    e->refs = &e->one; /* an idle login costs one allocation here, not two */
    e->cap = 1;
    map_add_h(&s->map, &e->node, h);
    atomic_fetch_add(&p->clients, 1);
  }
  if (e->n == e->cap) {
    presence_ref_t *more = xmalloc(e->cap * 2 * sizeof *more);
    memcpy(more, e->refs, e->n * sizeof *more);
    if (e->refs != &e->one) free(e->refs);
    e->refs = more;
    e->cap *= 2;
  }
  e->refs[e->n].session = session;
  e->refs[e->n].tag = tag ? xstrdup(tag) : NULL;
  e->n++;
  pthread_mutex_unlock(&s->mu);
}

void presence_del(presence_t *p, const char *client, uint64_t session) {
  uint64_t h = map_hash(client, strlen(client));
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t *e = find(s, client, h);
  if (e) {
    for (uint32_t i = 0; i < e->n; i++) {
      if (e->refs[i].session != session) continue;
      free(e->refs[i].tag);
      e->refs[i] = e->refs[--e->n];
      break;
    }
    if (e->n == 0) {
      map_remove(&s->map, &e->node);
      entry_free(e);
      atomic_fetch_sub(&p->clients, 1);
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static size_t get(presence_t *p, const char *client, const char *tag, int by_tag, uint64_t *out, size_t max) {
  uint64_t h = map_hash(client, strlen(client));
  shard_t *s = shard_of(p, h);
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  entry_t *e = find(s, client, h);
  if (e) {
    for (uint32_t i = 0; i < e->n; i++) {
      if (by_tag && (!e->refs[i].tag || strcmp(e->refs[i].tag, tag) != 0)) continue;
      if (n < max) out[n] = e->refs[i].session;
      n++;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

size_t presence_get(presence_t *p, const char *client, uint64_t *out, size_t max) {
  return get(p, client, NULL, 0, out, max);
}

uint64_t *presence_get_all(presence_t *p, const char *client, uint64_t *buf, size_t max, size_t *n) {
  uint64_t h = map_hash(client, strlen(client));
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t *e = find(s, client, h);
  *n = e ? e->n : 0;
  uint64_t *out = *n > max ? xmalloc(*n * sizeof *out) : buf;
  for (size_t i = 0; i < *n; i++) out[i] = e->refs[i].session;
  pthread_mutex_unlock(&s->mu);
  return out;
}

size_t presence_get_tagged(presence_t *p, const char *client, const char *tag, uint64_t *out, size_t max) {
  return get(p, client, tag, 1, out, max);
}

int presence_online(presence_t *p, const char *client) { return presence_get(p, client, NULL, 0) > 0; }

size_t presence_count(presence_t *p) { return atomic_load(&p->clients); }

int presence_take(presence_t *p, const char *client, long rate, int64_t now) {
  uint64_t h = map_hash(client, strlen(client));
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t *e = find(s, client, h);
  int took = e ? bucket_take(&e->rate, rate, now) : 1;
  pthread_mutex_unlock(&s->mu);
  return took;
}
