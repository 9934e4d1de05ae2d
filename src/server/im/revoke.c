/* revoke.c — see revoke.h. The in-memory part is a small hash of revocations whose write
 * has not committed yet, under one mutex: it is looked at on every reconnect and holds
 * only the last commit interval's logouts and kicks. */
#include "revoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "map.h"
#include "timeutil.h"

/* Its own fixed chains, not map.h: a key may hold several entries at once (each revocation is
 * its own pending write, unlinked by identity when that write commits), and the map holds one
 * node per key. The bucket comes from the map's keyed hash all the same. */
#define BUCKETS 256

typedef struct entry {
  struct entry *next;
  int client_kind; /* 1: every token of client issued at or before `at`; 0: lineage */
  uint8_t lineage[TOKEN_LINEAGE_LEN];
  char *client;
  int64_t at, expires_at;
  int failed; /* its write failed: kept here until expires_at */
} entry_t;

struct revoke {
  pthread_mutex_t mu;
  entry_t *b[BUCKETS];
  uint64_t committed[BUCKETS]; /* entries of the bucket whose write committed (revoke_read_t.gen) */
};

typedef struct {
  job_revoke_t j; /* first: the store frees it through j.job.free_fn */
  revoke_t *rv;
  entry_t *e;
} revoke_job_t;

revoke_t *revoke_new(void) {
  revoke_t *rv = xcalloc(1, sizeof *rv);
  pthread_mutex_init(&rv->mu, NULL);
  return rv;
}

static void entry_free(entry_t *e) {
  free(e->client);
  free(e);
}

void revoke_free(revoke_t *rv) {
  if (!rv) return;
  for (int i = 0; i < BUCKETS; i++)
    while (rv->b[i]) {
      entry_t *n = rv->b[i]->next;
      entry_free(rv->b[i]);
      rv->b[i] = n;
    }
  pthread_mutex_destroy(&rv->mu);
  free(rv);
}

static uint32_t hash(const void *p, size_t n) { return (uint32_t)(map_hash(p, n) % BUCKETS); }

static uint32_t bucket_of(const entry_t *e) {
  /* a client entry always has its client (revoke_client) */
  return e->client_kind && e->client ? hash(e->client, strlen(e->client)) : hash(e->lineage, TOKEN_LINEAGE_LEN);
}

/* The store has the row (or gave up on it): the memory copy goes, or stays if it failed. */
static void job_done(store_job_t *sj) {
  revoke_job_t *rj = (revoke_job_t *)sj;
  revoke_t *rv = rj->rv;
  pthread_mutex_lock(&rv->mu);
  if (sj->result == 0) {
    for (entry_t **pp = &rv->b[bucket_of(rj->e)]; *pp; pp = &(*pp)->next)
      if (*pp == rj->e) {
        rv->committed[bucket_of(rj->e)]++; /* a read begun before now may not have seen it */
        *pp = rj->e->next;
        entry_free(rj->e);
        break;
      }
  } else {
    rj->e->failed = 1;
    log_at(LOG_ERROR, "a session token revocation could not be stored: it holds until a restart");
  }
  pthread_mutex_unlock(&rv->mu);
  free(rj->j.client);
  free(rj);
}

static void submit(im_worker_t *w, entry_t *e) {
  revoke_t *rv = w->im->revoke;
  revoke_job_t *rj = xcalloc(1, sizeof *rj);
  rj->rv = rv;
  rj->e = e;
  rj->j.job.type = JOB_REVOKE;
  rj->j.job.worker = -1;
  rj->j.job.free_fn = job_done;
  rj->j.client = e->client ? xstrdup(e->client) : NULL;
  memcpy(rj->j.lineage, e->lineage, TOKEN_LINEAGE_LEN);
  rj->j.at = e->at;
  rj->j.expires_at = e->expires_at;
  uint32_t b = bucket_of(e);
  int64_t now = e->at;
  pthread_mutex_lock(&rv->mu);
  for (entry_t **pp = &rv->b[b]; *pp;) { /* failed ones whose tokens have all expired */
    entry_t *x = *pp;
    if (x->failed && x->expires_at < now) {
      *pp = x->next;
      entry_free(x);
    } else {
      pp = &x->next;
    }
  }
  e->next = rv->b[b];
  rv->b[b] = e;
  pthread_mutex_unlock(&rv->mu);
  store_submit(w->im->store, &rj->j.job); /* may run it at once (inline stores): after the unlock */
}

/* Every token a revocation names has expired by then: now + the longest life a token can
 * have (revoke_check refuses any that would outlive session_ttl), and a second to spare. */
static int64_t horizon(const im_worker_t *w, int64_t now) { return now + w->im->cfg->session_ttl * 1000 + 1000; }

void revoke_lineage(im_worker_t *w, const uint8_t lineage[TOKEN_LINEAGE_LEN]) {
  entry_t *e = xcalloc(1, sizeof *e);
  memcpy(e->lineage, lineage, TOKEN_LINEAGE_LEN);
  e->at = now_ms();
  e->expires_at = horizon(w, e->at);
  if (w->im->bus) im_bus_revoke(w, 0, e->lineage, NULL, e->at, e->expires_at);
  submit(w, e);
}

void revoke_client(im_worker_t *w, const char *client) {
  entry_t *e = xcalloc(1, sizeof *e);
  e->client_kind = 1;
  e->client = xstrdup(client);
  e->at = now_ms();
  e->expires_at = horizon(w, e->at);
  if (w->im->bus) im_bus_revoke(w, 1, e->lineage, client, e->at, e->expires_at);
  submit(w, e);
}

void revoke_record(im_worker_t *w, int client_kind, const uint8_t lineage[TOKEN_LINEAGE_LEN], const char *client,
                   int64_t at, int64_t expires_at) {
  entry_t *e = xcalloc(1, sizeof *e);
  e->client_kind = client_kind;
  memcpy(e->lineage, lineage, TOKEN_LINEAGE_LEN);
  e->client = client ? xstrdup(client) : NULL;
  e->at = at;
  e->expires_at = expires_at;
  submit(w, e);
}

int revoke_check_memory(im_worker_t *w, const char *client, const token_info_t *info) {
  int64_t now = now_ms();
  if (info->expires_ms > horizon(w, now)) return TERN_EPERM; /* issued under a longer session_ttl */
  revoke_t *rv = w->im->revoke;
  int revoked = 0;
  pthread_mutex_lock(&rv->mu);
  for (entry_t *e = rv->b[hash(info->lineage, TOKEN_LINEAGE_LEN)]; e && !revoked; e = e->next)
    revoked = !e->client_kind && memcmp(e->lineage, info->lineage, TOKEN_LINEAGE_LEN) == 0;
  for (entry_t *e = rv->b[hash(client, strlen(client))]; e && !revoked; e = e->next)
    revoked = e->client_kind && info->issued_ms <= e->at && strcmp(e->client, client) == 0;
  pthread_mutex_unlock(&rv->mu);
  return revoked ? TERN_EPERM : 0;
}

/* The commits so far in the two buckets a revocation of this token would be in: it only
 * grows, so an unchanged value means none of them committed in between. */
static uint64_t generation(revoke_t *rv, const char *client, const token_info_t *info) {
  pthread_mutex_lock(&rv->mu);
  uint64_t g = rv->committed[hash(info->lineage, TOKEN_LINEAGE_LEN)] + rv->committed[hash(client, strlen(client))];
  pthread_mutex_unlock(&rv->mu);
  return g;
}

void revoke_read_start(im_worker_t *w, const char *client, const token_info_t *info, revoke_read_t *rd) {
  snprintf(rd->client, sizeof rd->client, "%s", client);
  memcpy(rd->lineage, info->lineage, TOKEN_LINEAGE_LEN);
  rd->gen = generation(w->im->revoke, client, info);
  rd->rc = TERN_ESTORE;
  rd->before = 0;
  rd->gone = 0;
}

void revoke_read(store_reader_t *r, revoke_read_t *rd) {
  rd->before = 0;
  rd->gone = 0;
  rd->rc = r ? store_token_revoked(r, rd->client, rd->lineage, &rd->before, &rd->gone) : TERN_ESTORE;
}

int revoke_check_read(im_worker_t *w, const char *client, const token_info_t *info, const revoke_read_t *rd) {
  int rc = revoke_check_memory(w, client, info);
  if (rc < 0) return rc;
  int64_t before = 0;
  int gone = 0;
  if (rd && strcmp(rd->client, client) == 0 && memcmp(rd->lineage, info->lineage, TOKEN_LINEAGE_LEN) == 0 &&
      rd->gen == generation(w->im->revoke, client, info)) {
    if (rd->rc < 0) return TERN_ESTORE;
    before = rd->before;
    gone = rd->gone;
  } else if (store_token_revoked(w->reader, client, info->lineage, &before, &gone) < 0) {
    return TERN_ESTORE; /* no answer read ahead, or a commit since: read on the loop */
  }
  return gone || info->issued_ms <= before ? TERN_EPERM : 0;
}

int revoke_check(im_worker_t *w, const char *client, const token_info_t *info) {
  return revoke_check_read(w, client, info, NULL);
}
