/* bus.c — the backend-neutral part of the bus (bus.h, bus_int.h): options, the node table,
 * the replica of the other nodes' sessions and room counts, and this node's own record
 * with the queue of changes the backend publishes.
 *
 * Why a replica: fan-out, single sign-on, `session query` and the per-client rate split
 * ask "who holds client X, where" on every message; asking the bus each time would put a
 * round trip (and a continuation) into every one of those paths. Each node instead keeps
 * the others' presence in memory, updated by their published deltas, and answers with a
 * read lock. The price is memory: every node holds every session of the cluster (about
 * 150 bytes each; docs/cluster.md has the arithmetic). */
#include "bus_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto.h"
#include "err.h"
#include "log.h"
#include "map.h"
#include "timeutil.h"

/* ---------------------------------------------------------------- a binary-key map */

/* The common map (map.h) with a value pointer and the key copied in after it. */
typedef struct bent {
  map_node_t node;
  void *val;
  uint8_t key[];
} bent_t;

struct bmap {
  map_t m;
};

static bmap_t *bmap_new(void) {
  bmap_t *m = xcalloc(1, sizeof *m);
  map_init(&m->m);
  return m;
}

static void *bmap_get(bmap_t *m, const void *k, size_t kl) {
  map_node_t *n = map_find(&m->m, k, kl);
  return n ? MAP_ENTRY(n, bent_t, node)->val : NULL;
}

/* Sets k to v; returns the value it replaces (NULL when new). */
static void *bmap_put(bmap_t *m, const void *k, size_t kl, void *v) {
  uint64_t h = map_hash(k, kl);
  map_node_t *n = map_find_h(&m->m, k, kl, h);
  if (n) {
    bent_t *e = MAP_ENTRY(n, bent_t, node);
    void *old = e->val;
    e->val = v;
    return old;
  }
  bent_t *e = xmalloc(sizeof *e + kl);
  e->val = v;
  memcpy(e->key, k, kl);
  e->node.key = e->key;
  e->node.klen = (uint32_t)kl;
  map_add_h(&m->m, &e->node, h);
  return NULL;
}

/* Removes k; returns its value (NULL when absent). */
static void *bmap_del(bmap_t *m, const void *k, size_t kl) {
  map_node_t *n = map_find(&m->m, k, kl);
  if (!n) return NULL;
  bent_t *e = MAP_ENTRY(n, bent_t, node);
  void *v = e->val;
  map_remove(&m->m, n);
  free(e);
  return v;
}

/* Calls fn on each entry; fn returns 1 to remove it (it frees the value itself). */
static void bmap_each(bmap_t *m, int (*fn)(void *arg, const uint8_t *k, size_t kl, void *v), void *arg) {
  map_iter_t it;
  for (map_node_t *n = map_first(&m->m, &it); n; n = map_next(&m->m, &it)) {
    bent_t *e = MAP_ENTRY(n, bent_t, node);
    if (fn(arg, e->key, n->klen, e->val)) {
      map_remove(&m->m, n);
      free(e);
    }
  }
}

static int free_val(void *arg, const uint8_t *k, size_t kl, void *v) {
  void (*fr)(void *) = arg;
  fr(v);
  return 1;
}

static void bmap_free(bmap_t *m, void (*fr)(void *)) {
  if (!m) return;
  bmap_each(m, free_val, (void *)fr);
  map_fini(&m->m);
  free(m);
}

/* ---------------------------------------------------------------- replica entries */

typedef struct {
  int node;
  uint64_t session;
  char *tag;
} rref_t;

typedef struct {
  size_t n, cap;
  rref_t *v;
} rclient_t;

typedef struct {
  int node;
  long count;
} rcount_t;

typedef struct {
  size_t n, cap;
  rcount_t *v;
} rroom_t;

static void rclient_free(void *p) {
  rclient_t *c = p;
  for (size_t i = 0; i < c->n; i++) free(c->v[i].tag);
  free(c->v);
  free(c);
}

typedef struct {
  int node;
  char *client;
} rmember_t;

typedef struct {
  size_t n, cap;
  rmember_t *v;
} rmembers_t;

static void rmembers_free(void *p) {
  rmembers_t *m = p;
  for (size_t i = 0; i < m->n; i++) free(m->v[i].client);
  free(m->v);
  free(m);
}

static void rroom_free(void *p) {
  rroom_t *r = p;
  free(r->v);
  free(r);
}

/* ---------------------------------------------------------------- open / free */

static const bus_backend_t *const backends[] = {&bus_redis_backend};

int bus_open(const bus_options_t *o, bus_t **out, char *err, size_t errlen) {
  *out = NULL;
  const bus_backend_t *be = NULL;
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
    size_t n = strlen(backends[i]->scheme);
    if (!strncmp(o->url, backends[i]->scheme, n) && !strncmp(o->url + n, "://", 3)) be = backends[i];
  }
  if (!be) {
    snprintf(err, errlen, "bus: \"%s\" is not a bus URL (redis://host:port[/db])", o->url);
    return TERN_ECONFIG;
  }
  if (o->node_id && *o->node_id) {
    size_t n = strlen(o->node_id);
    int ok = n <= BUS_NODE_ID_MAX;
    for (size_t i = 0; ok && i < n; i++) {
      char c = o->node_id[i];
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
    }
    if (!ok) {
      snprintf(err, errlen, "node_id must be 1 to %d of A-Z a-z 0-9 - _ .", BUS_NODE_ID_MAX);
      return TERN_ECONFIG;
    }
  }
  bus_t *b = xcalloc(1, sizeof *b);
  b->be = be;
  if (o->node_id && *o->node_id) {
    snprintf(b->node_id, sizeof b->node_id, "%s", o->node_id);
  } else { /* generated: stable for the process, never reused by another */
    uint8_t rnd[6];
    random_bytes(rnd, sizeof rnd);
    char hex[13];
    hex_encode(rnd, sizeof rnd, hex);
    char host[40] = "node";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "node");
    host[sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-')) *p = '-';
    snprintf(b->node_id, sizeof b->node_id, "%.24s-%s", host, hex);
  }
  b->public_url = o->public_url;
  b->nworkers = o->nworkers;
  b->post = o->post;
  b->post_arg = o->post_arg;
  pthread_rwlock_init(&b->rw, NULL);
  pthread_mutex_init(&b->mu, NULL);
  pthread_mutex_init(&b->leave_mu, NULL);
  pthread_cond_init(&b->leave_cv, NULL);
  b->rclients = bmap_new();
  b->rrooms = bmap_new();
  b->rmembers = bmap_new();
  b->mine = bmap_new();
  int rc = be->open(b, o->url, err, errlen);
  if (rc < 0) {
    bus_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

static void delta_list_free(bus_delta_t *d) {
  while (d) {
    bus_delta_t *n = d->next;
    free(d);
    d = n;
  }
}

void bus_free(bus_t *b) {
  if (!b) return;
  if (b->bs) b->be->free(b);
  for (int i = 0; i < BUS_MAX_NODES; i++) {
    free(b->nodes[i].url);
    delta_list_free(b->nodes[i].pending);
  }
  bmap_free(b->rclients, rclient_free);
  bmap_free(b->rrooms, rroom_free);
  bmap_free(b->rmembers, rmembers_free);
  bmap_free(b->mine, free);
  bus_drop_ops(b);
  while (b->waits) { /* none normally: leaving released them (their tasks ran in server_free) */
    bus_wait_t *w = b->waits;
    b->waits = w->wnext;
    w->forced = 1;
    w->task.fn(&w->task);
  }
  pthread_rwlock_destroy(&b->rw);
  pthread_mutex_destroy(&b->mu);
  pthread_mutex_destroy(&b->leave_mu);
  pthread_cond_destroy(&b->leave_cv);
  free(b);
}

void bus_set_recv(bus_t *b, bus_recv_cb cb, void *arg) {
  b->recv = cb;
  b->recv_arg = arg;
}

void bus_set_lapse(bus_t *b, void (*cb)(void *arg), void *arg) {
  b->lapse = cb;
  b->lapse_arg = arg;
}

void bus_set_unheard(bus_t *b, void (*cb)(void *arg, const char *const *clients, size_t n), void *arg) {
  b->unheard = cb;
  b->unheard_arg = arg;
}

void bus_set_applied(bus_t *b, void (*cb)(void *arg), void *arg) {
  b->applied = cb;
  b->applied_arg = arg;
}

/* the replica changed (on BUS_HOME_WORKER, its lock released) */
static void applied(bus_t *b) {
  if (b->applied) b->applied(b->applied_arg);
}

void bus_set_resync(bus_t *b, void (*cb)(void *arg), void *arg) {
  b->resync = cb;
  b->resync_arg = arg;
}

void bus_worker_start(bus_t *b, int idx, uv_loop_t *loop) { b->be->worker_start(b, idx, loop); }
void bus_worker_stop(bus_t *b, int idx) { b->be->worker_stop(b, idx); }
static void left_cb(bus_t *b) {
  pthread_mutex_lock(&b->leave_mu);
  b->left = 1;
  pthread_cond_broadcast(&b->leave_cv);
  pthread_mutex_unlock(&b->leave_mu);
}

typedef struct {
  task_t task;
  bus_t *b;
} leave_task_t;

static void leave_run(task_t *t) {
  leave_task_t *l = (leave_task_t *)t;
  bus_t *b = l->b;
  free(l);
  if (worker_current() == BUS_HOME_WORKER) b->be->leave(b, left_cb);
  else left_cb(b);
}

void bus_leave(bus_t *b) {
  leave_task_t *l = xmalloc(sizeof *l);
  l->task.fn = leave_run;
  l->task.next = NULL;
  l->b = b;
  b->post(b->post_arg, BUS_HOME_WORKER, &l->task);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 1;
  pthread_mutex_lock(&b->leave_mu);
  while (!b->left)
    if (pthread_cond_timedwait(&b->leave_cv, &b->leave_mu, &until) != 0) break;
  pthread_mutex_unlock(&b->leave_mu);
}

const char *bus_node_id(const bus_t *b) { return b->node_id; }
long bus_local_sessions(bus_t *b) { return atomic_load(&b->nsessions); }
int bus_up(const bus_t *b) { return atomic_load(&((bus_t *)b)->up); }

/* ---------------------------------------------------------------- this node's record */

typedef struct {
  task_t task;
  bus_t *b;
} flush_task_t;

static void flush_run(task_t *t) {
  flush_task_t *f = (flush_task_t *)t;
  bus_t *b = f->b;
  free(f);
  atomic_store(&b->flush_posted, 0);
  if (worker_current() == BUS_HOME_WORKER) b->be->flush(b);
}

/* Queues an op (under b->mu) and makes sure the home worker flushes soon. */
static void queue_op(bus_t *b, char op, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl) {
  bus_op_t *o = xmalloc(sizeof *o + fl + vl);
  o->next = NULL;
  o->no = ++b->nqueued;
  o->op = op;
  o->flen = (uint16_t)fl;
  o->vlen = (uint16_t)vl;
  memcpy(o->data, f, fl);
  if (vl) memcpy(o->data + fl, v, vl);
  if (b->out_tail) b->out_tail->next = o;
  else b->out_head = o;
  b->out_tail = o;
  b->nout++;
}

static void kick_flush(bus_t *b) {
  if (atomic_exchange(&b->flush_posted, 1)) return;
  flush_task_t *f = xmalloc(sizeof *f);
  f->task.fn = flush_run;
  f->task.next = NULL;
  f->b = b;
  b->post(b->post_arg, BUS_HOME_WORKER, &f->task);
}

typedef struct {
  size_t len;
  uint8_t v[];
} bval_t;

static bval_t *bval(const void *p, size_t n) {
  bval_t *x = xmalloc(sizeof *x + n);
  x->len = n;
  memcpy(x->v, p, n);
  return x;
}

static size_t session_field(uint8_t f[9], uint64_t session) {
  f[0] = BUS_F_SESSION;
  for (int i = 0; i < 8; i++) f[1 + i] = (uint8_t)(session >> (56 - 8 * i));
  return 9;
}

void bus_presence_add(bus_t *b, const char *client, uint64_t session, const char *tag) {
  uint8_t f[9];
  session_field(f, session);
  size_t cl = strlen(client), tl = tag ? strlen(tag) : 0;
  if (cl + 1 + tl > 60000) return; /* ids and tags are far shorter (utf8.h, token.h) */
  uint8_t *v = xmalloc(cl + 1 + tl);
  memcpy(v, client, cl + 1);
  if (tl) memcpy(v + cl + 1, tag, tl);
  pthread_mutex_lock(&b->mu);
  free(bmap_put(b->mine, f, 9, bval(v, cl + 1 + tl)));
  if (!b->leaving) queue_op(b, '+', f, 9, v, cl + 1 + tl);
  pthread_mutex_unlock(&b->mu);
  free(v);
  atomic_fetch_add(&b->nsessions, 1);
  kick_flush(b);
}

void bus_presence_del(bus_t *b, const char *client, uint64_t session) {
  uint8_t f[9];
  session_field(f, session);
  pthread_mutex_lock(&b->mu);
  free(bmap_del(b->mine, f, 9));
  /* the client goes with it: the others find the entry by client */
  if (!b->leaving) queue_op(b, '-', f, 9, (const uint8_t *)client, strlen(client));
  pthread_mutex_unlock(&b->mu);
  atomic_fetch_sub(&b->nsessions, 1);
  kick_flush(b);
}

/* A count field of this node's record moved by delta; gone at 0. */
static void count_add(bus_t *b, const uint8_t *f, size_t fl, int delta) {
  pthread_mutex_lock(&b->mu);
  bval_t *old = bmap_get(b->mine, f, fl);
  long n = (old ? strtol((const char *)old->v, NULL, 10) : 0) + delta;
  char num[24];
  int nl = snprintf(num, sizeof num, "%ld", n > 0 ? n : 0);
  if (n > 0) {
    bval_t *v = bval(num, (size_t)nl + 1); /* NUL kept for strtol; published without it */
    free(bmap_put(b->mine, f, fl, v));
    if (!b->leaving) queue_op(b, '+', f, fl, (const uint8_t *)num, (size_t)nl);
  } else {
    free(bmap_del(b->mine, f, fl));
    if (!b->leaving) queue_op(b, '-', f, fl, NULL, 0);
  }
  pthread_mutex_unlock(&b->mu);
  kick_flush(b);
}

void bus_room_add(bus_t *b, const char *cid, int delta) {
  size_t cl = strlen(cid);
  if (cl > 1000) return;
  uint8_t f[1001];
  f[0] = BUS_F_ROOM;
  memcpy(f + 1, cid, cl);
  count_add(b, f, cl + 1, delta);
}

void bus_room_member(bus_t *b, const char *cid, const char *client, int delta) {
  size_t cl = strlen(cid), kl = strlen(client);
  if (cl > 1000 || kl > 1000) return;
  uint8_t f[2002];
  f[0] = BUS_F_MEMBER;
  memcpy(f + 1, cid, cl);
  f[1 + cl] = 0;
  memcpy(f + 2 + cl, client, kl);
  count_add(b, f, cl + kl + 2, delta);
}

/* ---------------------------------------------------------------- held replies */

uint64_t bus_ticket(bus_t *b) {
  pthread_mutex_lock(&b->mu);
  uint64_t t = b->nqueued;
  pthread_mutex_unlock(&b->mu);
  return t;
}

int bus_confirmed(bus_t *b, uint64_t ticket) { return atomic_load(&b->confirmed) >= ticket; }

static void post_waits(bus_t *b, bus_wait_t *list) {
  while (list) {
    bus_wait_t *w = list;
    list = w->wnext;
    w->wnext = NULL;
    w->task.next = NULL;
    b->post(b->post_arg, w->worker, &w->task);
  }
}

void bus_wait(bus_t *b, uint64_t ticket, int worker, bus_wait_t *w) {
  w->ticket = ticket;
  w->worker = worker;
  w->forced = 0;
  w->wnext = NULL;
  w->deadline = now_ms() + BUS_WAIT_MAX_MS;
  pthread_mutex_lock(&b->mu);
  int now = atomic_load(&b->confirmed) >= ticket || b->leaving;
  if (!now) {
    w->wnext = b->waits;
    b->waits = w;
  } else {
    w->forced = b->leaving && atomic_load(&b->confirmed) < ticket;
  }
  pthread_mutex_unlock(&b->mu);
  if (now) post_waits(b, w);
  else kick_flush(b); /* normally posted already by the change itself */
}

/* Takes off b->waits those whose ticket is within upto, or (now != 0) whose deadline is
 * past (under mu); returns them, forced set. */
static bus_wait_t *take_waits(bus_t *b, uint64_t upto, int forced, int64_t now) {
  bus_wait_t *out = NULL, **pp = &b->waits;
  while (*pp) {
    bus_wait_t *w = *pp;
    int go = w->ticket <= upto || (now && w->deadline <= now);
    if (!go) {
      pp = &w->wnext;
      continue;
    }
    *pp = w->wnext;
    w->forced = forced || w->ticket > upto;
    w->wnext = out;
    out = w;
  }
  return out;
}

void bus_release(bus_t *b, uint64_t upto, int forced) {
  pthread_mutex_lock(&b->mu);
  uint64_t c = atomic_load(&b->confirmed);
  if (upto > c) atomic_store(&b->confirmed, upto);
  bus_wait_t *list = take_waits(b, upto, forced, 0);
  pthread_mutex_unlock(&b->mu);
  post_waits(b, list);
}

void bus_wait_sweep(bus_t *b, int64_t now) {
  pthread_mutex_lock(&b->mu);
  bus_wait_t *list = b->waits ? take_waits(b, atomic_load(&b->confirmed), 1, now) : NULL;
  pthread_mutex_unlock(&b->mu);
  post_waits(b, list);
}

/* ---------------------------------------------------------------- fences */

typedef struct {
  task_t task;
  bus_t *b;
  int worker, back; /* back: the second hop (home worker → caller) */
  void (*cb)(void *arg);
  void *arg;
} fence_t;

int bus_fence_needed(bus_t *b) { return b->be->pending(b); }

static void fence_run(task_t *t) {
  fence_t *f = (fence_t *)t;
  if (!f->back && worker_current() == BUS_HOME_WORKER) {
    f->b->be->drain(f->b);
    if (f->worker != BUS_HOME_WORKER) { /* the second hop, back to the caller */
      f->back = 1;
      f->task.next = NULL;
      f->b->post(f->b->post_arg, f->worker, &f->task);
      return;
    }
  }
  f->cb(f->arg); /* on the caller's worker (or at shutdown, where the caller finds its link gone) */
  free(f);
}

void bus_fence(bus_t *b, void (*cb)(void *arg), void *arg) {
  fence_t *f = xcalloc(1, sizeof *f);
  f->task.fn = fence_run;
  f->b = b;
  int w = worker_current();
  f->worker = w >= 0 ? w : BUS_HOME_WORKER;
  f->cb = cb;
  f->arg = arg;
  b->post(b->post_arg, BUS_HOME_WORKER, &f->task);
}

bus_op_t *bus_take_ops(bus_t *b, size_t max, size_t *n) {
  pthread_mutex_lock(&b->mu);
  bus_op_t *head = b->out_head, *o = head;
  size_t k = 0;
  if (head) {
    for (k = 1; k < max && o->next; k++) o = o->next;
    b->out_head = o->next;
    if (!b->out_head) b->out_tail = NULL;
    o->next = NULL;
    b->nout -= k;
  }
  pthread_mutex_unlock(&b->mu);
  *n = k;
  return head;
}

void bus_drop_ops(bus_t *b) {
  pthread_mutex_lock(&b->mu);
  bus_op_t *o = b->out_head;
  b->out_head = b->out_tail = NULL;
  b->nout = 0;
  pthread_mutex_unlock(&b->mu);
  while (o) {
    bus_op_t *n = o->next;
    free(o);
    o = n;
  }
}

typedef struct {
  void (*fn)(void *arg, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl);
  void *arg;
} each_t;

static int each_mine(void *arg, const uint8_t *k, size_t kl, void *v) {
  each_t *e = arg;
  bval_t *x = v;
  size_t vl = x->len;
  if ((k[0] == BUS_F_ROOM || k[0] == BUS_F_MEMBER) && vl && x->v[vl - 1] == 0) vl--; /* the count's NUL */
  e->fn(e->arg, k, kl, x->v, vl);
  return 0;
}

void bus_each_mine(bus_t *b, void (*fn)(void *arg, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl),
                   void *arg) {
  each_t e = {fn, arg};
  pthread_mutex_lock(&b->mu);
  bmap_each(b->mine, each_mine, &e);
  pthread_mutex_unlock(&b->mu);
}

void bus_encode_ops(buf_t *out, const bus_op_t *o) {
  for (; o; o = o->next) {
    uint8_t h[5] = {(uint8_t)o->op, (uint8_t)(o->flen >> 8), (uint8_t)o->flen, (uint8_t)(o->vlen >> 8),
                    (uint8_t)o->vlen};
    buf_append(out, h, 5);
    buf_append(out, o->data, (size_t)o->flen + o->vlen);
  }
}

/* ---------------------------------------------------------------- the replica */

int bus_node_slot(bus_t *b, const char *id, int make) {
  int free_slot = -1;
  for (int i = 0; i < BUS_MAX_NODES; i++) {
    if (b->nodes[i].used && strcmp(b->nodes[i].id, id) == 0) return i;
    if (!b->nodes[i].used && free_slot < 0) free_slot = i;
  }
  if (!make || free_slot < 0 || strlen(id) > BUS_NODE_ID_MAX) return -1;
  pthread_rwlock_wrlock(&b->rw);
  bus_node_t *n = &b->nodes[free_slot];
  memset(n, 0, sizeof *n);
  n->used = 1;
  snprintf(n->id, sizeof n->id, "%s", id);
  pthread_rwlock_unlock(&b->rw);
  return free_slot;
}

/* Under the write lock: removes every entry of node slot. */
static int drop_client_refs(void *arg, const uint8_t *k, size_t kl, void *v) {
  int slot = *(int *)arg;
  rclient_t *c = v;
  size_t keep = 0; /* the others, kept in order */
  for (size_t i = 0; i < c->n; i++) {
    if (c->v[i].node == slot) free(c->v[i].tag);
    else c->v[keep++] = c->v[i];
  }
  c->n = keep;
  if (c->n) return 0;
  rclient_free(c);
  return 1;
}

static int drop_room_counts(void *arg, const uint8_t *k, size_t kl, void *v) {
  int slot = *(int *)arg;
  rroom_t *r = v;
  for (size_t i = 0; i < r->n;) {
    if (r->v[i].node == slot) r->v[i] = r->v[--r->n];
    else i++;
  }
  if (r->n) return 0;
  rroom_free(r);
  return 1;
}

static int drop_room_members(void *arg, const uint8_t *k, size_t kl, void *v) {
  int slot = *(int *)arg;
  rmembers_t *m = v;
  size_t keep = 0;
  for (size_t i = 0; i < m->n; i++) {
    if (m->v[i].node == slot) free(m->v[i].client);
    else m->v[keep++] = m->v[i];
  }
  m->n = keep;
  if (m->n) return 0;
  rmembers_free(m);
  return 1;
}

static void drop_node_entries(bus_t *b, int slot) {
  bmap_each(b->rclients, drop_client_refs, &slot);
  bmap_each(b->rrooms, drop_room_counts, &slot);
  bmap_each(b->rmembers, drop_room_members, &slot);
}

void bus_node_seen(bus_t *b, int slot, const char *url, long load) {
  bus_node_t *n = &b->nodes[slot];
  pthread_rwlock_wrlock(&b->rw);
  if (!n->url || strcmp(n->url, url) != 0) {
    free(n->url);
    n->url = xstrdup(url);
  }
  n->load = load;
  if (!n->live) atomic_fetch_add(&b->nlive, 1);
  n->live = 1;
  n->suspended = 0;
  pthread_rwlock_unlock(&b->rw);
}

void bus_nodes_suspend(bus_t *b) {
  pthread_rwlock_wrlock(&b->rw);
  for (int i = 0; i < BUS_MAX_NODES; i++) {
    bus_node_t *n = &b->nodes[i];
    if (!n->used || !n->live) continue;
    n->live = 0;
    n->suspended = 1;
    atomic_fetch_sub(&b->nlive, 1);
  }
  pthread_rwlock_unlock(&b->rw);
  applied(b);
}

void bus_node_forget(bus_t *b, int slot) {
  bus_node_t *n = &b->nodes[slot];
  if (!n->used) return;
  pthread_rwlock_wrlock(&b->rw);
  drop_node_entries(b, slot);
  if (n->live) atomic_fetch_sub(&b->nlive, 1);
  free(n->url);
  delta_list_free(n->pending);
  memset(n, 0, sizeof *n);
  pthread_rwlock_unlock(&b->rw);
  applied(b);
}

/* Under the write lock: one field of node slot set ('+') or deleted ('-'). */
static void apply_op(bus_t *b, int slot, char op, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl) {
  if (fl == 9 && f[0] == BUS_F_SESSION) {
    uint64_t s = 0;
    for (int i = 0; i < 8; i++) s = s << 8 | f[1 + i];
    const uint8_t *nul = vl ? memchr(v, 0, vl) : NULL;
    size_t cl = nul ? (size_t)(nul - v) : vl;
    if (!cl) return;
    rclient_t *c = bmap_get(b->rclients, v, cl);
    if (op == '-') {
      for (size_t i = 0; c && i < c->n; i++)
        if (c->v[i].node == slot && c->v[i].session == s) {
          free(c->v[i].tag);
          c->v[i] = c->v[--c->n];
          break;
        }
      if (c && !c->n) rclient_free(bmap_del(b->rclients, v, cl));
      return;
    }
    if (!c) {
      c = xcalloc(1, sizeof *c);
      bmap_put(b->rclients, v, cl, c);
    }
    for (size_t i = 0; i < c->n; i++)
      if (c->v[i].node == slot && c->v[i].session == s) return; /* already there */
    if (c->n == c->cap) {
      c->cap = c->cap ? c->cap * 2 : 2;
      c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    size_t tl = nul ? vl - cl - 1 : 0;
    c->v[c->n++] = (rref_t){.node = slot, .session = s, .tag = tl ? xstrndup((const char *)nul + 1, tl) : NULL};
    return;
  }
  if (fl >= 3 && f[0] == BUS_F_MEMBER) {
    const uint8_t *nul = memchr(f + 1, 0, fl - 1);
    if (!nul || nul == f + 1 || nul == f + fl - 1) return;
    size_t cl = (size_t)(nul - (f + 1)), kl = fl - cl - 2;
    rmembers_t *m = bmap_get(b->rmembers, f + 1, cl);
    size_t i = 0;
    while (m && i < m->n &&
           !(m->v[i].node == slot && strlen(m->v[i].client) == kl && !memcmp(m->v[i].client, nul + 1, kl)))
      i++;
    if (op == '-') {
      if (m && i < m->n) {
        free(m->v[i].client);
        m->v[i] = m->v[--m->n];
        if (!m->n) rmembers_free(bmap_del(b->rmembers, f + 1, cl));
      }
      return;
    }
    if (m && i < m->n) return; /* there already (its count changed) */
    if (!m) {
      m = xcalloc(1, sizeof *m);
      bmap_put(b->rmembers, f + 1, cl, m);
    }
    if (m->n == m->cap) {
      m->cap = m->cap ? m->cap * 2 : 4;
      m->v = xrealloc(m->v, m->cap * sizeof *m->v);
    }
    m->v[m->n++] = (rmember_t){.node = slot, .client = xstrndup((const char *)nul + 1, kl)};
    return;
  }
  if (fl >= 2 && f[0] == BUS_F_ROOM) {
    rroom_t *r = bmap_get(b->rrooms, f + 1, fl - 1);
    size_t i = 0;
    while (r && i < r->n && r->v[i].node != slot) i++;
    if (op == '-') {
      if (r && i < r->n) r->v[i] = r->v[--r->n];
      if (r && !r->n) rroom_free(bmap_del(b->rrooms, f + 1, fl - 1));
      return;
    }
    char num[24];
    size_t nl = vl < sizeof num ? vl : sizeof num - 1;
    memcpy(num, v, nl);
    num[nl] = 0;
    long count = strtol(num, NULL, 10);
    if (!r) {
      r = xcalloc(1, sizeof *r);
      bmap_put(b->rrooms, f + 1, fl - 1, r);
    }
    if (i == r->n) {
      if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 2;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
      }
      r->v[r->n++] = (rcount_t){.node = slot, .count = count};
    } else {
      r->v[i].count = count;
    }
  }
}

/* Applies encoded ops; 0, or -1 when they do not parse. Under the write lock. */
static int apply_ops(bus_t *b, int slot, const uint8_t *p, size_t n) {
  size_t o = 0;
  while (o < n) {
    if (n - o < 5) return -1;
    char op = (char)p[o];
    size_t fl = (size_t)p[o + 1] << 8 | p[o + 2], vl = (size_t)p[o + 3] << 8 | p[o + 4];
    o += 5;
    if (n - o < fl + vl || (op != '+' && op != '-')) return -1;
    apply_op(b, slot, op, p + o, fl, p + o + fl, vl);
    o += fl + vl;
  }
  return 0;
}

static uint64_t parse_u64(const uint8_t *p, size_t n) {
  char s[24];
  if (n >= sizeof s) return 0;
  memcpy(s, p, n);
  s[n] = 0;
  return strtoull(s, NULL, 10);
}

void bus_node_snapshot(bus_t *b, int slot, size_t n, const uint8_t *const *fields, const size_t *flens,
                       const uint8_t *const *vals, const size_t *vlens) {
  bus_node_t *nd = &b->nodes[slot];
  uint64_t ep = 0, seq = 0;
  pthread_rwlock_wrlock(&b->rw);
  drop_node_entries(b, slot);
  for (size_t i = 0; i < n; i++) {
    if (flens[i] == 3 && !memcmp(fields[i], "_ep", 3)) ep = parse_u64(vals[i], vlens[i]);
    else if (flens[i] == 4 && !memcmp(fields[i], "_seq", 4)) seq = parse_u64(vals[i], vlens[i]);
    else apply_op(b, slot, '+', fields[i], flens[i], vals[i], vlens[i]);
  }
  /* the deltas heard meanwhile that the snapshot does not hold yet, in order */
  int gap = 0;
  for (bus_delta_t *d = nd->pending; d; d = d->next) {
    if (d->epoch != ep || d->seq <= seq) continue;
    if (d->seq != seq + 1 || apply_ops(b, slot, d->data, d->len) < 0) {
      gap = 1;
      break;
    }
    seq = d->seq;
  }
  pthread_rwlock_unlock(&b->rw);
  delta_list_free(nd->pending);
  nd->pending = nd->pending_tail = NULL;
  nd->npending = 0;
  nd->epoch = ep;
  nd->seq = seq;
  nd->syncing = 0;
  /* a gap, or a rewrite heard meanwhile that this snapshot does not hold: the next registry
   * round takes a new one */
  nd->synced = !gap && (!nd->want_ep || nd->want_ep == ep);
  nd->want_ep = 0;
  atomic_fetch_add(&b->m_resyncs, 1);
  applied(b);
}

int bus_node_rewritten(bus_t *b, const char *id, uint64_t epoch, int *slotp) {
  int slot = bus_node_slot(b, id, 1);
  *slotp = slot;
  if (slot < 0) return 0;
  bus_node_t *nd = &b->nodes[slot];
  nd->synced = 0;
  if (nd->syncing) {
    nd->want_ep = epoch;
    return 0;
  }
  return 1;
}

#define MAX_PENDING 100000

int bus_node_delta(bus_t *b, const char *id, uint64_t epoch, uint64_t seq, const uint8_t *ops, size_t n, int *slotp) {
  int slot = bus_node_slot(b, id, 1);
  *slotp = slot;
  if (slot < 0) return 0;
  bus_node_t *nd = &b->nodes[slot];
  atomic_fetch_add(&b->m_deltas, 1);
  if (nd->synced && !nd->syncing && epoch == nd->epoch) {
    if (seq <= nd->seq) return 0; /* already in the snapshot */
    if (seq == nd->seq + 1) {
      pthread_rwlock_wrlock(&b->rw);
      int bad = apply_ops(b, slot, ops, n);
      pthread_rwlock_unlock(&b->rw);
      if (bad == 0) {
        nd->seq = seq;
        applied(b);
        return 0;
      }
    }
  }
  /* unknown epoch, a gap, or a snapshot on the way: keep it for after the snapshot */
  if (nd->npending < MAX_PENDING) {
    bus_delta_t *d = xmalloc(sizeof *d + n);
    d->next = NULL;
    d->epoch = epoch;
    d->seq = seq;
    d->len = n;
    memcpy(d->data, ops, n);
    if (nd->pending_tail) nd->pending_tail->next = d;
    else nd->pending = d;
    nd->pending_tail = d;
    nd->npending++;
  }
  if (nd->syncing) return 0;
  nd->syncing = 1;
  nd->synced = 0;
  return 1;
}

/* ---------------------------------------------------------------- reading the replica */

size_t bus_sessions(bus_t *b, const char *client, const char *tag, bus_ref_t *out, size_t max) {
  size_t k = 0;
  pthread_rwlock_rdlock(&b->rw);
  rclient_t *c = bmap_get(b->rclients, client, strlen(client));
  for (size_t i = 0; c && i < c->n; i++) {
    const rref_t *r = &c->v[i];
    if (!b->nodes[r->node].live) continue;
    if (tag && (!r->tag || strcmp(r->tag, tag) != 0)) continue;
    if (k < max) out[k] = (bus_ref_t){.node = r->node, .session = r->session};
    k++;
  }
  pthread_rwlock_unlock(&b->rw);
  return k;
}

bus_ref_t *bus_sessions_all(bus_t *b, const char *client, size_t *n) {
  bus_ref_t *out = NULL;
  *n = 0;
  pthread_rwlock_rdlock(&b->rw);
  rclient_t *c = bmap_get(b->rclients, client, strlen(client));
  for (size_t i = 0; c && i < c->n; i++) {
    const rref_t *r = &c->v[i];
    if (!b->nodes[r->node].live) continue;
    if (!out) out = xmalloc(c->n * sizeof *out);
    out[(*n)++] = (bus_ref_t){.node = r->node, .session = r->session};
  }
  pthread_rwlock_unlock(&b->rw);
  return out;
}

size_t bus_client_nodes(bus_t *b, const char *client, int *out, size_t max) {
  size_t k = 0;
  uint8_t seen[BUS_MAX_NODES] = {0};
  pthread_rwlock_rdlock(&b->rw);
  rclient_t *c = bmap_get(b->rclients, client, strlen(client));
  for (size_t i = 0; c && i < c->n; i++) {
    int node = c->v[i].node;
    if (!b->nodes[node].live || seen[node]) continue;
    seen[node] = 1;
    if (k < max) out[k] = node;
    k++;
  }
  pthread_rwlock_unlock(&b->rw);
  return k;
}

long bus_room_count(bus_t *b, const char *cid) {
  long n = 0;
  pthread_rwlock_rdlock(&b->rw);
  rroom_t *r = bmap_get(b->rrooms, cid, strlen(cid));
  for (size_t i = 0; r && i < r->n; i++)
    if (b->nodes[r->v[i].node].live) n += r->v[i].count;
  pthread_rwlock_unlock(&b->rw);
  return n;
}

size_t bus_room_nodes(bus_t *b, const char *cid, int *out, size_t max) {
  size_t k = 0;
  pthread_rwlock_rdlock(&b->rw);
  rroom_t *r = bmap_get(b->rrooms, cid, strlen(cid));
  for (size_t i = 0; r && i < r->n; i++) {
    if (!b->nodes[r->v[i].node].live || r->v[i].count <= 0) continue;
    if (k < max) out[k] = r->v[i].node;
    k++;
  }
  pthread_rwlock_unlock(&b->rw);
  return k;
}

typedef struct {
  bus_t *b;
  int (*skip)(void *arg, const char *client);
  void *arg;
  size_t n;
} count_t;

static int count_client(void *arg, const uint8_t *k, size_t kl, void *v) {
  count_t *ct = arg;
  rclient_t *c = v;
  int live = 0;
  for (size_t i = 0; i < c->n && !live; i++) live = ct->b->nodes[c->v[i].node].live;
  if (!live || kl > 1024) return 0;
  char id[1025];
  memcpy(id, k, kl);
  id[kl] = 0;
  if (!ct->skip || !ct->skip(ct->arg, id)) ct->n++;
  return 0;
}

size_t bus_count_clients(bus_t *b, int (*skip)(void *arg, const char *client), void *arg) {
  count_t ct = {b, skip, arg, 0};
  pthread_rwlock_rdlock(&b->rw);
  bmap_each(b->rclients, count_client, &ct);
  pthread_rwlock_unlock(&b->rw);
  return ct.n;
}

size_t bus_room_members(bus_t *b, const char *cid, char **out, size_t max) {
  size_t k = 0;
  pthread_rwlock_rdlock(&b->rw);
  rmembers_t *m = bmap_get(b->rmembers, cid, strlen(cid));
  for (size_t i = 0; m && i < m->n && k < max; i++) {
    if (!b->nodes[m->v[i].node].live) continue;
    int dup = 0; /* on two nodes: once (k <= max, which callers keep small) */
    for (size_t j = 0; j < k && !dup; j++) dup = strcmp(out[j], m->v[i].client) == 0;
    if (!dup) out[k++] = xstrdup(m->v[i].client);
  }
  pthread_rwlock_unlock(&b->rw);
  return k;
}

int bus_nodes_live(bus_t *b) { return atomic_load(&b->up) ? atomic_load(&b->nlive) + 1 : 0; }

int bus_node_name(bus_t *b, int node, char out[BUS_NODE_ID_MAX + 1]) {
  if (node < 0 || node >= BUS_MAX_NODES) return TERN_ENOENT;
  pthread_rwlock_rdlock(&b->rw);
  int ok = b->nodes[node].used && b->nodes[node].live;
  if (ok) memcpy(out, b->nodes[node].id, BUS_NODE_ID_MAX + 1);
  pthread_rwlock_unlock(&b->rw);
  return ok ? 0 : TERN_ENOENT;
}

/* ---------------------------------------------------------------- sending, routing */

/* To one node by its slot: the backend's send under its id (keep, clients: bus.h) */
static int send_node(bus_t *b, int node, const uint8_t *p, size_t n, const char *const *clients, size_t nclients,
                     int keep) {
  char id[BUS_NODE_ID_MAX + 1];
  if (bus_node_name(b, node, id) < 0) {
    atomic_fetch_add(&b->m_errors, 1);
    return TERN_ENOENT;
  }
  return b->be->send(b, id, p, n, clients, nclients, keep);
}

int bus_deliver(bus_t *b, int node, const uint8_t *p, size_t n, const char *const *clients, size_t nclients) {
  return send_node(b, node, p, n, clients, nclients, 0);
}

int bus_send(bus_t *b, int node, const uint8_t *p, size_t n) { return send_node(b, node, p, n, NULL, 0, 0); }

int bus_send_kept(bus_t *b, int node, const uint8_t *p, size_t n) { return send_node(b, node, p, n, NULL, 0, 1); }

void bus_write_out(bus_t *b) { b->be->write_out(b); }

int bus_broadcast(bus_t *b, const uint8_t *p, size_t n) { return b->be->send(b, NULL, p, n, NULL, 0, 0); }

void bus_claim(bus_t *b, const char *key, int64_t ttl_ms, bus_claim_cb cb, void *arg) {
  b->be->claim(b, key, ttl_ms, cb, arg);
}

void bus_route(bus_t *b, char *out, size_t len) {
  long best = atomic_load(&b->nsessions);
  const char *url = b->public_url && *b->public_url ? *b->public_url : "";
  pthread_rwlock_rdlock(&b->rw);
  if (atomic_load(&b->up))
    for (int i = 0; i < BUS_MAX_NODES; i++) {
      const bus_node_t *n = &b->nodes[i];
      if (!n->used || !n->live || !n->url || !*n->url) continue;
      if (n->load < best) {
        best = n->load;
        url = n->url;
      }
    }
  snprintf(out, len, "%s", url);
  pthread_rwlock_unlock(&b->rw);
}

void bus_metrics(bus_t *b, buf_t *out) {
  buf_printf(out,
             "# HELP tern_bus_up 1 while this node's connection to the bus (Redis) is up.\n# TYPE tern_bus_up gauge\n"
             "tern_bus_up %d\n",
             atomic_load(&b->up));
  buf_printf(out,
             "# HELP tern_bus_nodes Live nodes this node knows of, itself included.\n# TYPE tern_bus_nodes gauge\n"
             "tern_bus_nodes %d\n",
             bus_nodes_live(b));
  pthread_rwlock_rdlock(&b->rw);
  size_t rc = map_count(&b->rclients->m);
  pthread_rwlock_unlock(&b->rw);
  buf_printf(out,
             "# HELP tern_bus_remote_clients Clients online on other nodes (the replica).\n"
             "# TYPE tern_bus_remote_clients gauge\ntern_bus_remote_clients %zu\n",
             rc);
  buf_printf(out,
             "# HELP tern_bus_messages_total Messages sent to and received from other nodes.\n"
             "# TYPE tern_bus_messages_total counter\ntern_bus_messages_total{dir=\"out\"} %lu\n"
             "tern_bus_messages_total{dir=\"in\"} %lu\n",
             atomic_load(&b->m_sent), atomic_load(&b->m_recv));
  buf_printf(out,
             "# HELP tern_bus_errors_total Bus commands or messages that failed (the bus was down or refused).\n"
             "# TYPE tern_bus_errors_total counter\ntern_bus_errors_total %lu\n",
             atomic_load(&b->m_errors));
  buf_printf(out,
             "# HELP tern_bus_unheard_total Deliveries to another node that no subscriber heard (its subscriber "
             "was off its channel: stored, not pushed).\n"
             "# TYPE tern_bus_unheard_total counter\ntern_bus_unheard_total %lu\n",
             atomic_load(&b->m_unheard));
  buf_printf(out,
             "# HELP tern_bus_missed_replayed_total Kicks and chat-room blocks another node sent this node that "
             "no subscriber heard, recorded in Redis and replayed here once the subscriber was back.\n"
             "# TYPE tern_bus_missed_replayed_total counter\ntern_bus_missed_replayed_total %lu\n",
             atomic_load(&b->m_missed_replayed));
  buf_printf(out,
             "# HELP tern_bus_reconnects_total Connections to the bus made again after a loss.\n"
             "# TYPE tern_bus_reconnects_total counter\ntern_bus_reconnects_total %lu\n",
             atomic_load(&b->m_reconnects));
  buf_printf(out,
             "# HELP tern_bus_snapshots_total Snapshots of another node's presence taken (joins, gaps, "
             "reconnects).\n# TYPE tern_bus_snapshots_total counter\ntern_bus_snapshots_total %lu\n",
             atomic_load(&b->m_resyncs));
  buf_printf(out,
             "# HELP tern_bus_heartbeat_lapses_total Times this node found its own heartbeat expired while connected "
             "(the other nodes took it for dead; its clients were told to reconnect).\n"
             "# TYPE tern_bus_heartbeat_lapses_total counter\ntern_bus_heartbeat_lapses_total %lu\n",
             atomic_load(&b->m_lapses));
}
