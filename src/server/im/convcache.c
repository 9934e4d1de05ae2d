/* convcache.c — the in-memory view of conversations that messages need on every send.
 *
 * Sending a message needs the member list, the next sequence number and the kind; reading
 * them from SQLite each time would cost a member scan per message. The cache holds them,
 * loaded on first use through the calling worker's reader. Member lists are immutable
 * snapshots swapped under the conversation's mutex, so a fan-out works on a consistent
 * list without holding any lock. Sharded table; entries live as long as the process (a
 * bounded cache with eviction is future work, noted in docs/design-notes.md). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "log.h"

#define SHARDS CONVCACHE_SHARDS

typedef struct {
  pthread_mutex_t mu;
  map_t map;
  _Atomic uint64_t marks; /* every mark of a cid in this shard, counted before its lookup (Reloads) */
} shard_t;

struct convcache {
  shard_t shards[SHARDS];
};

convcache_t *convcache_new(void) {
  convcache_t *cc = xcalloc(1, sizeof *cc);
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&cc->shards[i].mu, NULL);
    map_init(&cc->shards[i].map);
  }
  return cc;
}

static void conv_destroy(conv_t *c) {
  members_release(c->members);
  for (int k = 0; k < 3; k++) members_release(c->sets[k]);
  json_decref(c->doc);
  if (c->room) {
    for (int i = 0; i < MAX_WORKERS; i++) free(c->room[i].v);
    free(c->room);
  }
  pthread_mutex_destroy(&c->mu);
  free(c->cid);
  free(c->creator);
  free(c);
}

void convcache_free(convcache_t *cc) {
  if (!cc) return;
  for (int i = 0; i < SHARDS; i++) {
    shard_t *s = &cc->shards[i];
    map_iter_t it;
    for (map_node_t *n = map_first(&s->map, &it); n; n = map_next(&s->map, &it)) {
      map_remove(&s->map, n);
      conv_release(MAP_ENTRY(n, conv_t, hnode));
    }
    map_fini(&s->map);
    pthread_mutex_destroy(&s->mu);
  }
  free(cc);
}

void conv_retain(conv_t *c) { atomic_fetch_add(&c->ref, 1); }

void conv_release(conv_t *c) {
  if (c && atomic_fetch_sub(&c->ref, 1) == 1) conv_destroy(c);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

members_t *members_new(char **ids, size_t n) {
  members_t *m = xmalloc(sizeof *m + n * sizeof(char *));
  atomic_init(&m->ref, 1);
  for (size_t i = 0; i < n; i++) m->ids[i] = xstrdup(ids[i]);
  qsort(m->ids, n, sizeof(char *), cmp_str);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (k && strcmp(m->ids[k - 1], m->ids[i]) == 0) free(m->ids[i]);
    else m->ids[k++] = m->ids[i];
  }
  m->n = k;
  return m;
}

void members_release(members_t *m) {
  if (!m || atomic_fetch_sub(&m->ref, 1) != 1) return;
  for (size_t i = 0; i < m->n; i++) free(m->ids[i]);
  free(m);
}

int members_has(const members_t *m, const char *id) {
  if (!m) return 0;
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(m->ids[mid], id);
    if (c == 0) return 1;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return 0;
}

members_t *conv_members(conv_t *c) {
  pthread_mutex_lock(&c->mu);
  members_t *m = c->members;
  if (m) atomic_fetch_add(&m->ref, 1);
  pthread_mutex_unlock(&c->mu);
  return m;
}

conv_t *conv_from_row(im_t *im, conv_row_t *row) {
  conv_t *c = xcalloc(1, sizeof *c);
  c->cid = row->cid;
  row->cid = NULL;
  c->creator = row->creator;
  row->creator = NULL;
  c->id = row->id;
  c->kind = row->kind;
  c->created_at = row->created_at;
  c->updated_at = row->updated_at;
  c->expire_at = row->expire_at;
  c->last_ts = row->last_ts;
  c->last_seq = row->last_seq;
  c->has_receipts = c->rcp_stored = row->rcp;
  atomic_init(&c->ext_ids, row->ext_ids);
  atomic_init(&c->ref, 1);
  atomic_init(&c->online, 0);
  atomic_init(&c->stale_gen, 0);
  atomic_init(&c->fresh_gen, 0);
  pthread_mutex_init(&c->mu, NULL);
  if (row->kind == CONV_ROOM) c->room = xcalloc(MAX_WORKERS, sizeof *c->room);
  else c->members = members_new(row->members, row->nmembers); /* a service conversation's: its subscribers */
  for (int k = 0; k < 3; k++)
    if (row->nsets[k]) c->sets[k] = members_new(row->sets[k], row->nsets[k]);
  return c;
}

members_t *conv_set(conv_t *c, int set) {
  pthread_mutex_lock(&c->mu);
  members_t *m = c->sets[set];
  if (m) atomic_fetch_add(&m->ref, 1);
  pthread_mutex_unlock(&c->mu);
  return m;
}

int conv_in_set(conv_t *c, int set, const char *client) {
  members_t *m = conv_set(c, set);
  int yes = members_has(m, client);
  members_release(m);
  return yes;
}

int conv_role(conv_t *c, const char *client) {
  if (c->kind != CONV_ROOM) { /* roles belong to members: whoever left has none */
    members_t *m = conv_members(c);
    int member = members_has(m, client);
    members_release(m);
    if (!member) return ROLE_NONE;
  }
  if (c->creator && strcmp(c->creator, client) == 0) return ROLE_OWNER;
  if (conv_in_set(c, SET_MANAGER, client)) return ROLE_MANAGER;
  return ROLE_MEMBER;
}

/* Counts conv_set_stored calls (any conversation): a read whose cid is not known before it
 * is made compares with it afterwards (convcache_wants_load_since). */
static _Atomic uint64_t set_stores;

void convcache_mark_now(im_t *im, convcache_mark_t *m) {
  m->sets = atomic_load(&set_stores);
  for (int i = 0; i < SHARDS; i++) m->marks[i] = atomic_load(&im->convs->shards[i].marks);
}

/* ---- Reloads. A mark (another node's change: convcache_stale; a commit here:
 * conv_set_stored …) counts one up in the entry's stale_gen. A reload claims the count
 * before its read (claim) and, once applied, raises fresh_gen to it (covered): a read that
 * began after a change's mark sees the change, since the mark follows its commit. The entry
 * stays stale while a reload is under way, so a user on another worker reads for itself
 * rather than trusting the copy from before the change — a member removed on another node,
 * told of it (the 'C' came first), sent on a worker that found the entry no longer stale
 * while the reload that followed the 'C' was still reading, and the send passed
 * (tests/cluster/shared-store.test.mjs); and a mark during the read keeps it stale after.
 * Reloads may end out of order: one whose claim is older than the count an applied one
 * raised fresh_gen to keeps that one's members, sets and expiry (its read may predate the
 * change the newer one saw). A conversation not cached has no entry to mark: a load of one
 * claims its shard's count of marks (shard_t.marks, counted before the lookup by every mark
 * of a cid in that shard), and a mark there meanwhile caches it stale. */
static shard_t *shard_for(convcache_t *cc, const char *cid, uint64_t *h);

static _Atomic uint64_t *marks_of(convcache_t *cc, const char *cid) {
  uint64_t h;
  return &shard_for(cc, cid, &h)->marks;
}

/* A mark of cid: counted in its shard before the lookup (a load of cid under way sees it),
 * then its entry, referenced, or NULL. */
static conv_t *marked_peek(convcache_t *cc, const char *cid);

static void mark(conv_t *c) { atomic_fetch_add(&c->stale_gen, 1); }

static int is_stale(conv_t *c) { return atomic_load(&c->stale_gen) != atomic_load(&c->fresh_gen); }

/* The marks a read begun now covers, or 0 when c is fresh. */
static uint64_t claim(conv_t *c) {
  uint64_t g = atomic_load(&c->stale_gen);
  return g != atomic_load(&c->fresh_gen) ? g : 0;
}

/* A read that began after claim(c) returned gen was applied. */
static void covered(conv_t *c, uint64_t gen) {
  uint64_t f = atomic_load(&c->fresh_gen);
  while (f < gen && !atomic_compare_exchange_weak(&c->fresh_gen, &f, gen)) {
  }
}

/* A change of c's members or sets was stored (under c->mu): a read that may have begun
 * before it must not be applied as current (set_mark, set_raced). */
static void set_change_stored(conv_t *c) {
  c->set_mark = atomic_fetch_add(&set_stores, 1) + 1; /* after the commit: a mark taken before is less */
  if (c->set_loads) c->set_raced = 1;                 /* a reload read may have begun before this commit */
}

void conv_set_stored(conv_t *c) {
  pthread_mutex_lock(&c->mu);
  set_change_stored(c);
  if (!--c->set_writes && c->set_stale) { /* a reload kept members and sets for these: read them now */
    c->set_stale = 0;
    mark(c);
  }
  pthread_mutex_unlock(&c->mu);
}

void convcache_stored_behind(im_t *im, const char *cid) {
  conv_t *c = marked_peek(im->convs, cid);
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  set_change_stored(c);
  pthread_mutex_unlock(&c->mu);
  mark(c); /* after the stamp: a reload that claims it reads after the commit */
  conv_release(c);
}

/* A reload of c begins (its read is next) or ends (applied or not): set_loads. load_ends,
 * under c->mu: 1 when a member or set change was stored while a reload was under way
 * (set_raced, kept until none is): this one's rows may lack it. Which reload's read began
 * first is not known, so each that ends meanwhile keeps the cache's members and sets, and
 * the last marks c stale; only one reload follows, not one per overlapping reload. */
static void load_begins(conv_t *c) {
  pthread_mutex_lock(&c->mu);
  c->set_loads++;
  pthread_mutex_unlock(&c->mu);
}

static int load_ends(conv_t *c) {
  int raced = c->set_raced;
  if (!--c->set_loads) c->set_raced = 0;
  return raced;
}

/* load_ends for a reload that applies nothing (failed, forgotten, abandoned): takes c->mu. */
static void load_dropped(conv_t *c) {
  pthread_mutex_lock(&c->mu);
  load_ends(c);
  pthread_mutex_unlock(&c->mu);
}

void conv_forget_roles(conv_t *c, char *const *ids, size_t n) {
  members_t *cur = c->sets[SET_MANAGER];
  if (!cur) return;
  size_t k = 0;
  char **keep = xmalloc(cur->n * sizeof(char *));
  for (size_t i = 0; i < cur->n; i++) {
    int gone = 0;
    for (size_t j = 0; j < n; j++) gone |= strcmp(cur->ids[i], ids[j]) == 0;
    if (!gone) keep[k++] = cur->ids[i];
  }
  if (k != cur->n) {
    c->sets[SET_MANAGER] = k ? members_new(keep, k) : NULL;
    members_release(cur);
  }
  free(keep);
}

static shard_t *shard_for(convcache_t *cc, const char *cid, uint64_t *h) {
  *h = map_hash(cid, strlen(cid));
  return &cc->shards[map_shard(*h, SHARDS)];
}

static conv_t *find(shard_t *s, const char *cid, uint64_t h) {
  map_node_t *n = map_find_h(&s->map, cid, strlen(cid), h);
  return n ? MAP_ENTRY(n, conv_t, hnode) : NULL;
}

/* Inserts c unless the cid is already cached; returns the cached one, referenced. */
static conv_t *insert(convcache_t *cc, conv_t *c) {
  uint64_t h;
  shard_t *s = shard_for(cc, c->cid, &h);
  pthread_mutex_lock(&s->mu);
  conv_t *have = find(s, c->cid, h);
  if (!have) {
    conv_retain(c); /* the table's reference */
    c->hnode.key = c->cid;
    c->hnode.klen = (uint32_t)strlen(c->cid);
    map_add_h(&s->map, &c->hnode, h);
    have = c;
  }
  conv_retain(have);
  pthread_mutex_unlock(&s->mu);
  return have;
}

void convcache_put(im_t *im, conv_t *c) { conv_release(insert(im->convs, c)); }

void convcache_drop(im_t *im, conv_t *c) {
  uint64_t h;
  shard_t *s = shard_for(im->convs, c->cid, &h);
  pthread_mutex_lock(&s->mu);
  int found = find(s, c->cid, h) == c;
  if (found) map_remove(&s->map, &c->hnode);
  pthread_mutex_unlock(&s->mu);
  if (found) conv_release(c);
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* A stale cached conversation (convcache_stale): reloaded in place, so chat rooms keep their
 * sessions and whoever holds a reference sees the new state. Message keys never go back
 * (a send of this node may be ahead of the store). Takes the reference to c; returns it,
 * or NULL when it was forgotten (deleted on another node, or a new creator: conv_get loads
 * it anew) or could not be read (*err). */
static conv_t *refresh_with(im_worker_t *w, conv_t *c, uint64_t gen, int rc, conv_row_t *rowp, int *err);

static conv_t *refresh(im_worker_t *w, conv_t *c, int *err) {
  uint64_t gen = claim(c);
  if (!gen) return c;
  load_begins(c);
  conv_row_t row;
  int rc = store_conv_load(w->reader, c->cid, &row);
  return refresh_with(w, c, gen, rc, &row, err);
}

/* refresh's second half, with the row read (rc: store_conv_load's result, row owned) after
 * claim(c) returned gen. */
static conv_t *refresh_with(im_worker_t *w, conv_t *c, uint64_t gen, int rc, conv_row_t *rowp, int *err) {
  conv_row_t row = *rowp;
  if (rc < 0 || !same_str(c->creator, row.creator)) load_dropped(c);
  if (rc < 0) {
    if (rc == TERN_ENOENT) { /* deleted on another node */
      pthread_mutex_lock(&c->mu);
      c->deleted = 1;
      pthread_mutex_unlock(&c->mu);
      convcache_drop(w->im, c);
    } else { /* not covered: stale still, read again on the next use */
      log_at(LOG_ERROR, "reloading conversation %s failed", c->cid);
      if (err) *err = rc;
    }
    conv_release(c);
    return NULL;
  }
  if (!same_str(c->creator, row.creator)) { /* read without the lock elsewhere: a new entry */
    conv_row_free(&row);
    convcache_drop(w->im, c);
    conv_release(c);
    return NULL; /* conv_get loads it anew */
  }
  members_t *old[4] = {NULL, NULL, NULL, NULL};
  pthread_mutex_lock(&c->mu);
  int raced = load_ends(c);
  /* a reload claimed after this one's has been applied already: its rows are the newer */
  int older = gen < atomic_load(&c->fresh_gen);
  if (c->set_writes) {          /* this node's member or set changes are still in the writer: the rows lack them */
    c->set_stale = 1;           /* reloaded once they are stored (conv_set_stored) */
  } else if (raced) {           /* one was stored after this read may have begun: the rows may lack it */
    if (!c->set_loads) mark(c); /* stored now: read again (by the last reload under way) */
  } else if (!older) {
    if (c->kind != CONV_ROOM) {
      old[0] = c->members;
      c->members = members_new(row.members, row.nmembers);
    }
    for (int k = 0; k < 3; k++) {
      old[k + 1] = c->sets[k];
      c->sets[k] = row.nsets[k] ? members_new(row.sets[k], row.nsets[k]) : NULL;
    }
  }
  if (row.updated_at > c->updated_at) c->updated_at = row.updated_at;
  /* written only when changed: expire_at is read without the lock (msg_may_send) */
  if (!older && c->expire_at != row.expire_at) c->expire_at = row.expire_at;
  if (row.last_ts > c->last_ts) c->last_ts = row.last_ts;
  if (row.last_seq > c->last_seq) c->last_seq = row.last_seq;
  if (row.rcp) c->has_receipts = c->rcp_stored = 1; /* never cleared: its own sends set has_receipts first */
  if (c->doc_writes) { /* this node's own changes are still in the writer: the store's copy lacks them */
    c->doc_stale = 1;  /* dropped once they are stored (update_done) */
  } else {
    json_decref(c->doc); /* reloaded by its next user */
    c->doc = NULL;
  }
  covered(c, gen); /* after the members: whoever finds it fresh finds them */
  pthread_mutex_unlock(&c->mu);
  if (row.ext_ids) atomic_store(&c->ext_ids, 1);
  for (int k = 0; k < 4; k++) members_release(old[k]);
  conv_row_free(&row);
  return c;
}

void convcache_stale(im_t *im, const char *cid) {
  conv_t *c = marked_peek(im->convs, cid);
  if (!c) return;
  mark(c);
  conv_release(c);
}

void convcache_stale_all(im_t *im) {
  for (int i = 0; i < SHARDS; i++) {
    shard_t *s = &im->convs->shards[i];
    atomic_fetch_add(&s->marks, 1);
    pthread_mutex_lock(&s->mu);
    map_iter_t it;
    for (map_node_t *n = map_first(&s->map, &it); n; n = map_next(&s->map, &it)) mark(MAP_ENTRY(n, conv_t, hnode));
    pthread_mutex_unlock(&s->mu);
  }
}

static conv_t *load_with(im_worker_t *w, const char *cid, uint64_t gen, int rc, conv_row_t *rowp, int *err);

conv_t *conv_get(im_worker_t *w, const char *cid, int *err) {
  if (err) *err = 0;
  if (!cid || !*cid) return NULL;
  convcache_t *cc = w->im->convs;
  uint64_t h;
  shard_t *s = shard_for(cc, cid, &h);
  pthread_mutex_lock(&s->mu);
  conv_t *c = find(s, cid, h);
  if (c) conv_retain(c);
  pthread_mutex_unlock(&s->mu);
  if (c) {
    pthread_mutex_lock(&c->mu);
    int gone = c->deleted; /* a tombstone: being deleted, gone for everyone already */
    pthread_mutex_unlock(&c->mu);
    if (!gone) {
      if (!is_stale(c)) return c;
      int e = 0;
      c = refresh(w, c, &e);
      if (c) return c;
      if (e) {
        if (err) *err = e;
        return NULL;
      }
      return conv_get(w, cid, err); /* dropped (deleted or a new creator): load it anew */
    }
    conv_release(c);
    return NULL;
  }
  if (w->absent_cid && strcmp(w->absent_cid, cid) == 0) return NULL; /* read just now, off the loop: none */
  if (im_keys_absent(w, cid)) return NULL;                           /* the same (im_prefetch_keys) */
  uint64_t gen = atomic_load(&s->marks);                             /* before the read */
  conv_row_t row;
  int rc = store_conv_load(w->reader, cid, &row);
  return load_with(w, cid, gen, rc, &row, err);
}

/* conv_get's load of a conversation not cached, with the row read (rc: store_conv_load's
 * result, row owned) after its shard's marks counted gen: cached (stale if a mark came
 * since), or the one a racing loader cached first. */
static conv_t *load_with(im_worker_t *w, const char *cid, uint64_t gen, int rc, conv_row_t *rowp, int *err) {
  convcache_t *cc = w->im->convs;
  conv_row_t row = *rowp;
  if (rc < 0) {
    if (rc != TERN_ENOENT) {
      log_at(LOG_ERROR, "loading conversation %s failed", cid);
      if (err) *err = rc;
    }
    return NULL;
  }
  conv_t *fresh = conv_from_row(w->im, &row);
  conv_row_free(&row);
  conv_t *c = insert(cc, fresh);                      /* a racing loader may have won: use whichever is cached */
  if (atomic_load(marks_of(cc, cid)) != gen) mark(c); /* after the insert: a mark since found it, or is counted */
  pthread_mutex_lock(&c->mu);
  int gone = c->deleted;
  pthread_mutex_unlock(&c->mu);
  /* our reference to fresh: when the cache took fresh, it holds one and c (== fresh) is
   * ours, so this one is never the last and goes without the destroy check */
  if (c == fresh) atomic_fetch_sub(&fresh->ref, 1);
  else conv_release(fresh);
  if (gone) {
    conv_release(c);
    return NULL;
  }
  return c;
}

/* cid's entry in its shard s (h: its hash), referenced, or NULL. */
static conv_t *peek_in(shard_t *s, const char *cid, uint64_t h) {
  pthread_mutex_lock(&s->mu);
  conv_t *c = find(s, cid, h);
  if (c) conv_retain(c);
  pthread_mutex_unlock(&s->mu);
  return c;
}

conv_t *convcache_peek(im_t *im, const char *cid) {
  uint64_t h;
  shard_t *s = shard_for(im->convs, cid, &h);
  return peek_in(s, cid, h);
}

static conv_t *marked_peek(convcache_t *cc, const char *cid) {
  uint64_t h;
  shard_t *s = shard_for(cc, cid, &h);
  atomic_fetch_add(&s->marks, 1);
  return peek_in(s, cid, h);
}

/* ---- a load off the worker's loop (im_prefetch.c) ---- */

conv_claim_t convcache_claim_new(im_t *im, const char *cid) {
  return (conv_claim_t){NULL, atomic_load(marks_of(im->convs, cid))};
}

int convcache_wants_load(im_t *im, const char *cid, conv_claim_t *cl) {
  return convcache_wants_load_since(im, cid, cl, NULL);
}

/* since NULL: convcache_wants_load (the read comes after the claim). */
int convcache_wants_load_since(im_t *im, const char *cid, conv_claim_t *cl, const convcache_mark_t *since) {
  uint64_t h;
  shard_t *s = shard_for(im->convs, cid, &h);
  *cl = (conv_claim_t){NULL, atomic_load(&s->marks)}; /* not cached: counted before the lookup, as load_with wants it */
  conv_t *c = peek_in(s, cid, h);
  if (c) {
    uint64_t gen = claim(c);
    if (!gen) { /* fresh: conv_get answers from the cache */
      conv_release(c);
      return 0;
    }
    /* stale for everyone until applied: a mark during the load keeps it stale */
    pthread_mutex_lock(&c->mu);
    int raced = since && c->set_mark > since->sets; /* stored after the read may have begun */
    if (!raced) c->set_loads++;                     /* load_begins: one stored from now on sets set_raced */
    pthread_mutex_unlock(&c->mu);
    if (raced) { /* stays stale: conv_get reads it again, after the change */
      conv_release(c);
      return 0;
    }
    cl->c = c;
    cl->gen = gen;
  }
  /* A row read before the claim: a mark of cid during that read would be counted by the
   * claim, and the row taken for current. Its shard's count then (cid was not known before
   * the read: every shard's was taken) says whether one came; if so the row is not used and
   * conv_get reads cid again. Checked after the claim: a mark after this check is one the
   * claim does not cover (the entry stays, or is cached, stale). */
  if (since && atomic_load(&s->marks) != since->marks[s - im->convs->shards]) {
    convcache_load_abandoned(cl);
    return 0;
  }
  return 1;
}

conv_t *convcache_loaded_get(im_worker_t *w, const char *cid, conv_claim_t *cl, int rc, conv_row_t *row) {
  int err = 0;
  conv_claim_t k = *cl;
  *cl = (conv_claim_t){0};
  return k.c ? refresh_with(w, k.c, k.gen, rc, row, &err) : load_with(w, cid, k.gen, rc, row, &err);
}

void convcache_load_abandoned(conv_claim_t *cl) {
  conv_t *c = cl->c;
  *cl = (conv_claim_t){0};
  if (!c) return;
  load_dropped(c); /* not covered: stale still */
  conv_release(c);
}

void convcache_loaded(im_worker_t *w, const char *cid, conv_claim_t *cl, int rc, conv_row_t *row) {
  if (!w) { /* the server is stopping: nothing is cached */
    if (rc == 0) conv_row_free(row);
    convcache_load_abandoned(cl);
    return;
  }
  conv_t *c = convcache_loaded_get(w, cid, cl, rc, row);
  if (c) conv_release(c);
}
