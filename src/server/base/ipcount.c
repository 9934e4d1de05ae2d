/* ipcount.c — see ipcount.h. Entries disappear when their count drops to zero, so the
 * table only holds addresses with open connections. */
#include "ipcount.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "map.h"

typedef struct ipcount_entry {
  map_node_t node; /* key: ip */
  long n;
  _Atomic int64_t out;  /* bytes queued to this address's connections */
  _Atomic uint64_t top; /* largest queue << 16 | worker + 1 (0: none), one word so the pair stays whole */
  char ip[46];
} entry_t;

struct ipcount {
  pthread_mutex_t mu;
  map_t map;
};

ipcount_t *ipcount_new(void) {
  ipcount_t *t = xcalloc(1, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  map_init(&t->map);
  return t;
}

void ipcount_free(ipcount_t *t) {
  if (!t) return;
  map_iter_t it;
  for (map_node_t *n = map_first(&t->map, &it); n; n = map_next(&t->map, &it)) {
    map_remove(&t->map, n);
    free(MAP_ENTRY(n, entry_t, node));
  }
  map_fini(&t->map);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

ipcount_entry_t *ipcount_add(ipcount_t *t, const char *ip, long limit) {
  pthread_mutex_lock(&t->mu);
  map_node_t *n = map_find(&t->map, ip, strlen(ip));
  entry_t *e = n ? MAP_ENTRY(n, entry_t, node) : NULL;
  if (!e) {
    e = xcalloc(1, sizeof *e);
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    e->node.key = e->ip;
    e->node.klen = (uint32_t)strlen(e->ip);
    map_add(&t->map, &e->node);
  }
  if (limit > 0 && e->n >= limit) {
    if (e->n == 0) { /* refused its first: nothing to keep */
      map_remove(&t->map, &e->node);
      free(e);
    }
    e = NULL;
  } else {
    e->n++;
  }
  pthread_mutex_unlock(&t->mu);
  return e;
}

void ipcount_del(ipcount_t *t, ipcount_entry_t *e) {
  if (!e) return;
  pthread_mutex_lock(&t->mu);
  if (--e->n <= 0) {
    map_remove(&t->map, &e->node);
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
}

int64_t ipcount_out_add(ipcount_entry_t *e, int64_t delta) { return atomic_fetch_add(&e->out, delta) + delta; }

int64_t ipcount_out(const ipcount_entry_t *e) { return atomic_load(&((ipcount_entry_t *)e)->out); }

int ipcount_out_shed(ipcount_entry_t *e, int64_t cap, int64_t n) {
  int64_t cur = atomic_load(&e->out);
  do {
    if (cur <= cap) return 0;
  } while (!atomic_compare_exchange_weak(&e->out, &cur, cur - n));
  return 1;
}

#define TOP_MAX (((uint64_t)1 << 48) - 1)

void ipcount_top_update(ipcount_entry_t *e, size_t was, size_t now, int worker) {
  uint64_t q = now < TOP_MAX ? now : TOP_MAX, w = (uint64_t)(worker + 1) & 0xffff;
  uint64_t cur = atomic_load(&e->top);
  for (;;) {
    uint64_t tq = cur >> 16, tw = cur & 0xffff, next;
    if (q > tq) next = q << 16 | w;
    else if (tw == w && tq == (was < TOP_MAX ? was : TOP_MAX)) next = q ? q << 16 | w : 0;
    else return;
    if (next == cur || atomic_compare_exchange_weak(&e->top, &cur, next)) return;
  }
}

void ipcount_top(const ipcount_entry_t *e, size_t *bytes, int *worker) {
  uint64_t cur = atomic_load(&((ipcount_entry_t *)e)->top);
  *bytes = (size_t)(cur >> 16);
  *worker = (int)(cur & 0xffff) - 1;
}
