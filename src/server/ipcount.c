/* ipcount.c — see ipcount.h. Entries disappear when their count drops to zero, so the
 * table only holds addresses with open connections. */
#include "ipcount.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

typedef struct entry {
  struct entry *next;
  long n;
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

int ipcount_add(ipcount_t *t, const char *ip, long limit) {
  pthread_mutex_lock(&t->mu);
  entry_t **pp = find(t, ip);
  if (!*pp) {
    *pp = xcalloc(1, sizeof **pp);
    snprintf((*pp)->ip, sizeof (*pp)->ip, "%s", ip);
  }
  int rc = 0;
  if (limit > 0 && (*pp)->n >= limit) rc = -1;
  else (*pp)->n++;
  if ((*pp)->n == 0) { /* refused its first: nothing to keep */
    entry_t *e = *pp;
    *pp = e->next;
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

void ipcount_del(ipcount_t *t, const char *ip) {
  pthread_mutex_lock(&t->mu);
  entry_t **pp = find(t, ip);
  if (*pp && --(*pp)->n <= 0) {
    entry_t *e = *pp;
    *pp = e->next;
    free(e);
  }
  pthread_mutex_unlock(&t->mu);
}
