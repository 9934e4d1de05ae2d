/* ipcount.c — see ipcount.h. Entries disappear when their count drops to zero, so the
 * table only holds addresses with open connections. */
#include "ipcount.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

typedef struct ipcount_entry {
  struct ipcount_entry *next;
  long n;
  _Atomic int64_t out;  /* bytes queued to this address's connections */
  _Atomic uint64_t top; /* largest queue << 16 | worker + 1 (0: none), one word so the pair stays whole */
  char ip[46];
} entry_t;

#define BUCKETS 4096

struct ipcount {
  pthread_mutex_t mu;
  entry_t *b[BUCKETS];
};

ipcount_t *ipcount_new(void) {
  ipcount_t *t = xcalloc(1, sizeof *t);
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void ipcount_free(ipcount_t *t) {
  if (!t) return;
  for (int i = 0; i < BUCKETS; i++)
    while (t->b[i]) {
      entry_t *n = t->b[i]->next;
      free(t->b[i]);
      t->b[i] = n;
    }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static entry_t **find(ipcount_t *t, const char *ip) {
  uint32_t h = 2166136261u;
  for (const char *s = ip; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  entry_t **pp = &t->b[h % BUCKETS];
  while (*pp && strcmp((*pp)->ip, ip) != 0) pp = &(*pp)->next;
  return pp;
}

ipcount_entry_t *ipcount_add(ipcount_t *t, const char *ip, long limit) {
  pthread_mutex_lock(&t->mu);
  entry_t **pp = find(t, ip);
  if (!*pp) {
    *pp = xcalloc(1, sizeof **pp);
    snprintf((*pp)->ip, sizeof(*pp)->ip, "%s", ip);
  }
  entry_t *e = *pp;
  if (limit > 0 && e->n >= limit) e = NULL;
  else e->n++;
  if (!e && (*pp)->n == 0) { /* refused its first: nothing to keep (and e is not it) */
    entry_t *gone = *pp;
    *pp = gone->next;
    free(gone);
  }
  pthread_mutex_unlock(&t->mu);
  return e;
}

void ipcount_del(ipcount_t *t, ipcount_entry_t *e) {
  if (!e) return;
  pthread_mutex_lock(&t->mu);
  if (--e->n <= 0) {
    entry_t **pp = find(t, e->ip);
    if (*pp == e) *pp = e->next;
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
}

int64_t ipcount_out_add(ipcount_entry_t *e, int64_t delta) { return atomic_fetch_add(&e->out, delta) + delta; }

int64_t ipcount_out(const ipcount_entry_t *e) { return atomic_load(&((ipcount_entry_t *)e)->out); }

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
