/* presence.c — a sharded chained hash of client id → session handles. */
#include "presence.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bucket.h"
#include "buf.h"

#define SHARDS 64

typedef struct entry {
  struct entry *next;
  uint32_t hash;
  uint32_t n, cap;
  presence_ref_t *refs; /* &one while a client has one session (nearly always), else heap */
  presence_ref_t one;
  bucket_t rate; /* commands of this client, all sessions together */
  char client[];
} entry_t;

typedef struct {
  pthread_mutex_t mu;
  entry_t **buckets;
  uint32_t nbuckets, count;
} shard_t;

struct presence {
  shard_t shards[SHARDS];
  atomic_size_t clients;
};

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

presence_t *presence_new(void) {
  presence_t *p = xcalloc(1, sizeof *p);
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&p->shards[i].mu, NULL);
    p->shards[i].nbuckets = 64;
    p->shards[i].buckets = xcalloc(64, sizeof(entry_t *));
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
    for (uint32_t b = 0; b < s->nbuckets; b++) {
      entry_t *e = s->buckets[b];
      while (e) {
        entry_t *next = e->next;
        entry_free(e);
        e = next;
      }
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
  }
  free(p);
}

static shard_t *shard_of(presence_t *p, uint32_t h) { return &p->shards[h % SHARDS]; }

static entry_t **find(shard_t *s, const char *client, uint32_t h) {
  entry_t **pp = &s->buckets[(h / SHARDS) & (s->nbuckets - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->client, client) != 0)) pp = &(*pp)->next;
  return pp;
}

static void grow(shard_t *s) {
  uint32_t nb = s->nbuckets * 2;
  entry_t **b = xcalloc(nb, sizeof *b);
  for (uint32_t i = 0; i < s->nbuckets; i++) {
    entry_t *e = s->buckets[i];
    while (e) {
      entry_t *next = e->next;
      uint32_t k = (e->hash / SHARDS) & (nb - 1);
      e->next = b[k];
      b[k] = e;
      e = next;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = nb;
}

void presence_add(presence_t *p, const char *client, uint64_t session, const char *tag) {
  uint32_t h = hash_str(client);
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t **pp = find(s, client, h);
  entry_t *e = *pp;
  if (!e) {
    size_t len = strlen(client);
    e = xcalloc(1, sizeof *e + len + 1);
    memcpy(e->client, client, len + 1);
    e->hash = h;
    e->refs = &e->one; /* an idle login costs one allocation here, not two */
    e->cap = 1;
    *pp = e;
    s->count++;
    atomic_fetch_add(&p->clients, 1);
    if (s->count > s->nbuckets) grow(s);
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
  uint32_t h = hash_str(client);
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t **pp = find(s, client, h);
  entry_t *e = *pp;
  if (e) {
    for (uint32_t i = 0; i < e->n; i++) {
      if (e->refs[i].session != session) continue;
      free(e->refs[i].tag);
      e->refs[i] = e->refs[--e->n];
      break;
    }
    if (e->n == 0) {
      *pp = e->next;
      entry_free(e);
      s->count--;
      atomic_fetch_sub(&p->clients, 1);
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static size_t get(presence_t *p, const char *client, const char *tag, int by_tag, uint64_t *out, size_t max) {
  uint32_t h = hash_str(client);
  shard_t *s = shard_of(p, h);
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  entry_t *e = *find(s, client, h);
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

size_t presence_get_tagged(presence_t *p, const char *client, const char *tag, uint64_t *out, size_t max) {
  return get(p, client, tag, 1, out, max);
}

int presence_online(presence_t *p, const char *client) { return presence_get(p, client, NULL, 0) > 0; }

size_t presence_count(presence_t *p) { return atomic_load(&p->clients); }

int presence_take(presence_t *p, const char *client, long rate, int64_t now) {
  uint32_t h = hash_str(client);
  shard_t *s = shard_of(p, h);
  pthread_mutex_lock(&s->mu);
  entry_t *e = *find(s, client, h);
  int took = e ? bucket_take(&e->rate, rate, now) : 1;
  pthread_mutex_unlock(&s->mu);
  return took;
}
