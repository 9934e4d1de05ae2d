/* im_bus.c — what the IM layer sends across nodes, and what it does with what arrives
 * (bus.h; docs/cluster.md). With no bus (im->bus NULL) none of this runs.
 *
 * Each message is one byte of kind then length-prefixed fields:
 *   'D' a fan-out frame for clients of the receiving node: the frame's body (encoded once,
 *       on the sending node) and the recipients; it is delivered exactly as a local fan-out
 *       (fanout_to_clients_local), so each session gets the same frame with its peerId.
 *   'M' a chat-room frame: the room's sessions on the receiving node get it.
 *   'K' a kick of one session (single sign-on 4111, the app's kick 4115).
 *   'R' a session-token revocation (revoke.h), broadcast: each node keeps it.
 *   'C' a conversation changed (its cid), broadcast after the commit: each node marks its
 *       cached copy stale (convcache_stale) and reloads it from the store on its next use.
 *       Coalesced: at most 5 per conversation per bus_conv_coalesce_ms from a node, the last
 *       change of a burst always told (im_conv_changed).
 *   'B' clients taken out of a chat room (blacklist, §3.17): their sessions in it on the
 *       receiving node leave it and get the frame (im_room_kick there).
 *   'S' a client logged in again on the sending node (a reconnect, r:true), to each node
 *       holding a session of it: its sessions there (up to SENDS_GONE_SESSIONS) have their
 *       sends in flight marked as a session's end marks them (im_msg_sending_gone). That
 *       node may not have seen the old connection go (no FIN or RST reached it), and the
 *       client resends them on the new one, where the resend may commit first
 *       (docs/cluster.md, "A send whose ack died with its node is stored once"). Sent
 *       before the login is answered.
 * One 'D' goes to each node that holds any recipient, whatever their number.
 * A 'D' nobody on its node heard gets its recipients there told goaway (bus_deliver,
 * on_unheard); a 'K', 'B' or 'S' nobody heard is replayed there later, through on_recv
 * (bus_send_kept): both are idempotent, so a late one is harmless. */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "im_internal.h"
#include "ipcount.h"
#include "log.h"
#include "revoke.h"
#include "timeutil.h"

/* ---------------------------------------------------------------- encoding */

static void put_u32(buf_t *b, uint32_t x) {
  uint8_t h[4] = {(uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
  buf_append(b, h, 4);
}

static void put_u64(buf_t *b, uint64_t x) {
  put_u32(b, (uint32_t)(x >> 32));
  put_u32(b, (uint32_t)x);
}

static void put_bytes(buf_t *b, const void *p, size_t n) {
  put_u32(b, (uint32_t)n);
  buf_append(b, p, n);
}

static void put_str(buf_t *b, const char *s) { put_bytes(b, s ? s : "", s ? strlen(s) : 0); }

typedef struct {
  const uint8_t *p;
  size_t n, o;
  int bad;
} rd_t;

static uint32_t get_u32(rd_t *r) {
  if (r->n - r->o < 4) {
    r->bad = 1;
    return 0;
  }
  const uint8_t *p = r->p + r->o;
  r->o += 4;
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(rd_t *r) {
  uint64_t hi = get_u32(r);
  return hi << 32 | get_u32(r);
}

static const uint8_t *get_bytes(rd_t *r, size_t *n) {
  *n = get_u32(r);
  if (r->bad || r->n - r->o < *n) {
    r->bad = 1;
    *n = 0;
    return NULL;
  }
  const uint8_t *p = r->p + r->o;
  r->o += *n;
  return p;
}

/* A malloc'd NUL-terminated copy; NULL for an empty string. */
static char *get_str(rd_t *r) {
  size_t n;
  const uint8_t *p = get_bytes(r, &n);
  if (!p || !n || memchr(p, 0, n)) return NULL;
  return xstrndup((const char *)p, n);
}

/* The frame's flags and body, shared by 'D' and 'M'. */
static void put_frame(buf_t *b, const fanout_t *p) {
  buf_append(b, (uint8_t[]){(uint8_t)p->msg, (uint8_t)p->priority}, 2);
  put_str(b, p->not_to);
  put_bytes(b, p->body, p->len);
}

static fanout_t *get_frame(rd_t *r) {
  if (r->n - r->o < 2) {
    r->bad = 1;
    return NULL;
  }
  int msg = r->p[r->o], prio = r->p[r->o + 1];
  r->o += 2;
  char *not_to = get_str(r);
  size_t n;
  const uint8_t *body = get_bytes(r, &n);
  if (r->bad || !body) {
    free(not_to);
    return NULL;
  }
  fanout_t *p = xmalloc(sizeof *p + n);
  atomic_init(&p->ref, 1);
  p->priority = prio;
  p->msg = msg;
  p->ts = -1; /* not in the node-to-node frame: im_login_told decodes it */
  p->not_to = not_to;
  p->len = n;
  memcpy(p->body, body, n);
  return p;
}

/* ---------------------------------------------------------------- sending */

void im_bus_fanout(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n) {
  bus_t *bus = w->im->bus;
  /* recipients grouped by node: per node slot, its ids encoded (lists) and pointers to them
   * (who: what the node is told goaway for if nobody there hears the 'D', bus_deliver) */
  size_t *cnt = NULL;
  buf_t lists[BUS_MAX_NODES], who[BUS_MAX_NODES];
  int used[BUS_MAX_NODES], nused = 0;
  int nodes[BUS_MAX_NODES];
  for (size_t i = 0; i < n; i++) {
    size_t k = bus_client_nodes(bus, ids[i], nodes, BUS_MAX_NODES); /* a node once, whatever its sessions */
    for (size_t j = 0; j < k && j < BUS_MAX_NODES; j++) {
      int s = nodes[j];
      if (!cnt) {
        cnt = xcalloc(BUS_MAX_NODES, sizeof *cnt);
      }
      if (!cnt[s]) {
        used[nused++] = s;
        lists[s] = (buf_t)BUF_INIT;
        who[s] = (buf_t)BUF_INIT;
      }
      cnt[s]++;
      put_str(&lists[s], ids[i]);
      buf_append(&who[s], &ids[i], sizeof ids[i]);
    }
  }
  for (int u = 0; u < nused; u++) {
    int s = used[u];
    buf_t m = BUF_INIT;
    buf_append(&m, "D", 1);
    put_frame(&m, p);
    put_u32(&m, (uint32_t)cnt[s]);
    buf_append(&m, lists[s].data, lists[s].len);
    /* a transient message is stored nowhere: a login would not bring it, so a node that did
     * not hear it has nothing to tell its recipients */
    if (p->msg == 2) bus_send(bus, s, m.data, m.len);
    else bus_deliver(bus, s, m.data, m.len, (const char *const *)(void *)who[s].data, cnt[s]);
    buf_free(&m);
    buf_free(&lists[s]);
    buf_free(&who[s]);
  }
  free(cnt);
}

void im_bus_room(im_worker_t *w, const fanout_t *p, conv_t *c) {
  bus_t *bus = w->im->bus;
  int nodes[BUS_MAX_NODES];
  size_t k = bus_room_nodes(bus, c->cid, nodes, BUS_MAX_NODES);
  if (!k) return;
  buf_t m = BUF_INIT;
  buf_append(&m, "M", 1);
  put_str(&m, c->cid);
  put_frame(&m, p);
  for (size_t i = 0; i < k && i < BUS_MAX_NODES; i++) bus_send(bus, nodes[i], m.data, m.len);
  buf_free(&m);
}

void im_bus_room_kick(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n) {
  bus_t *bus = w->im->bus;
  int nodes[BUS_MAX_NODES];
  size_t k = bus_room_nodes(bus, c->cid, nodes, BUS_MAX_NODES);
  if (!k) return;
  buf_t m = BUF_INIT;
  buf_append(&m, "B", 1);
  put_str(&m, c->cid);
  put_frame(&m, p);
  put_u32(&m, (uint32_t)n);
  for (size_t i = 0; i < n; i++) put_str(&m, ids[i]);
  /* kept: a node that did not hear it replays it when its subscriber is back (bus_send_kept;
   * recv_room_kick is a no-op for a member gone meanwhile) */
  for (size_t i = 0; i < k && i < BUS_MAX_NODES; i++) bus_send_kept(bus, nodes[i], m.data, m.len);
  buf_free(&m);
}

void im_bus_kick(im_worker_t *w, const bus_ref_t *ref, const char *client, int code, const char *detail) {
  bus_t *bus = w->im->bus;
  char node[BUS_NODE_ID_MAX + 1];
  if (bus_node_name(bus, ref->node, node) < 0) return;
  buf_t m = BUF_INIT;
  buf_append(&m, "K", 1);
  put_str(&m, node); /* checked on arrival: a slot's node may have changed meanwhile */
  put_u64(&m, ref->session);
  put_str(&m, client);
  put_u32(&m, (uint32_t)code);
  put_str(&m, detail);
  /* kept: a node that did not hear it replays it when its subscriber is back (bus_send_kept;
   * recv_kick is a no-op for a session ended meanwhile: its handle is stale) */
  bus_send_kept(bus, ref->node, m.data, m.len);
  buf_free(&m);
}

void im_bus_sends_gone(im_worker_t *w, const char *client) {
  bus_t *bus = w->im->bus;
  int nodes[BUS_MAX_NODES];
  size_t k = bus_client_nodes(bus, client, nodes, BUS_MAX_NODES); /* one 'S' a node, however many sessions */
  for (size_t i = 0; i < k && i < BUS_MAX_NODES; i++) {
    char node[BUS_NODE_ID_MAX + 1];
    if (bus_node_name(bus, nodes[i], node) < 0) continue;
    buf_t m = BUF_INIT;
    buf_append(&m, "S", 1);
    put_str(&m, node); /* checked on arrival, as a kick's */
    put_str(&m, client);
    bus_send_kept(bus, nodes[i], m.data, m.len); /* idempotent: replayed if unheard */
    buf_free(&m);
  }
}

void im_bus_revoke(im_worker_t *w, int client_kind, const uint8_t *lineage, const char *client, int64_t at,
                   int64_t expires_at) {
  buf_t m = BUF_INIT;
  buf_append(&m, "R", 1);
  buf_append(&m, (uint8_t[]){(uint8_t)client_kind}, 1);
  put_bytes(&m, lineage, TOKEN_LINEAGE_LEN);
  put_str(&m, client);
  put_u64(&m, (uint64_t)at);
  put_u64(&m, (uint64_t)expires_at);
  bus_broadcast(w->im->bus, m.data, m.len);
  buf_free(&m);
}

/* ---- 'C' coalesced: at most CBC_BURST + 1 broadcasts per conversation per window
 * (bus_conv_coalesce_ms, 50 by default), per node.
 * The first CBC_BURST changes to a conversation within a window are told at once, so what
 * people do by hand (block, unblock, a join, each answered before the next) reaches the
 * other nodes as fast as without coalescing — a member on another node who is notified of
 * a change and then reads the conversation sees it. Later changes within the window only
 * mark it, and the home worker's timer tells each marked one when the window ends — after
 * the last commit, so the other nodes always reload the final state. A client changing one
 * conversation as fast as its rate allows, from many connections, so costs each other node
 * ~(CBC_BURST + 1) * 1000 / window reloads a second at most, not one per change. The
 * window is read at start (the timer's period). */
#define CBC_BURST 4
typedef struct cchg {
  map_node_t node; /* key: cid */
  int64_t sent_ms; /* when the window started: a 'C' for it went out */
  int told;        /* 'C's for it sent at once in this window (CBC_BURST at most) */
  int dirty;       /* changed again since: one more 'C' is owed */
  char cid[];
} cchg_t;

struct conv_bcast {
  pthread_mutex_t mu; /* guards what follows */
  map_t recent;       /* cids a 'C' went out for within the window */
  int armed;          /* the timer runs, or `arm` is posted to start it */
  int stopped;        /* the home worker stopped: no timer, every change told at once */
  task_t arm;
  uv_timer_t *timer; /* on BUS_HOME_WORKER's loop */
  int64_t window_ms; /* 0: no coalescing */
  im_t *im;
  atomic_ulong sent, coalesced;
  atomic_long owed; /* entries marked dirty: a 'C' each, at the window's end */
};

static void conv_broadcast(im_t *im, const char *cid) {
  buf_t m = BUF_INIT;
  buf_append(&m, "C", 1);
  put_str(&m, cid);
  bus_broadcast(im->bus, m.data, m.len);
  buf_free(&m);
  atomic_fetch_add(&im->cbc->sent, 1);
}

/* Under cb->mu: the owed cids (malloc'd copies, *k of them), those owed nothing and older
 * than the window forgotten (all, when all). */
static char **cbc_collect(struct conv_bcast *cb, int64_t now, int all, size_t *k) {
  char **out = xcalloc(map_count(&cb->recent) + 1, sizeof *out);
  *k = 0;
  map_iter_t it;
  for (map_node_t *n = map_first(&cb->recent, &it); n; n = map_next(&cb->recent, &it)) {
    cchg_t *e = MAP_ENTRY(n, cchg_t, node);
    if (e->dirty) {
      out[(*k)++] = xstrdup(e->cid);
      e->dirty = 0;
      atomic_fetch_sub(&cb->owed, 1);
      e->sent_ms = now;
      e->told = 1;
      if (!all) continue; /* a 'C' just went out: the window starts again */
    }
    if (all || now - e->sent_ms >= cb->window_ms) {
      map_remove(&cb->recent, n);
      free(e);
    }
  }
  return out;
}
static void cbc_send(im_t *im, char **cids, size_t k) {
  for (size_t i = 0; i < k; i++) {
    conv_broadcast(im, cids[i]);
    free(cids[i]);
  }
  free(cids);
}

static void cbc_tick(uv_timer_t *t) {
  im_t *im = t->data;
  struct conv_bcast *cb = im->cbc;
  size_t k;
  pthread_mutex_lock(&cb->mu);
  char **cids = cbc_collect(cb, now_ms(), 0, &k);
  if (!map_count(&cb->recent)) {
    uv_timer_stop(t);
    cb->armed = 0;
  }
  pthread_mutex_unlock(&cb->mu);
  cbc_send(im, cids, k);
}

static void cbc_arm(task_t *t) { /* on BUS_HOME_WORKER */
  struct conv_bcast *cb = (struct conv_bcast *)(void *)((char *)t - offsetof(struct conv_bcast, arm));
  pthread_mutex_lock(&cb->mu);
  if (!cb->stopped && cb->timer) uv_timer_start(cb->timer, cbc_tick, (uint64_t)cb->window_ms, (uint64_t)cb->window_ms);
  else cb->armed = 0;
  pthread_mutex_unlock(&cb->mu);
}

void im_conv_changed(im_worker_t *w, const char *cid) {
  im_t *im = w->im;
  if (!im->bus || !cid) return;
  /* this node too: a reload for another node's change may have read the store before this
   * commit and put the cache behind it */
  convcache_stale(im, cid);
  struct conv_bcast *cb = im->cbc;
  size_t len = strlen(cid);
  int now_send = 1, post = 0;
  pthread_mutex_lock(&cb->mu);
  if (!cb->stopped && cb->window_ms > 0) {
    map_node_t *n = map_find(&cb->recent, cid, len);
    if (n) {
      cchg_t *e = MAP_ENTRY(n, cchg_t, node);
      if (!e->dirty && e->told < CBC_BURST) {
        e->told++; /* within the burst: told at once */
      } else {
        if (!e->dirty) atomic_fetch_add(&cb->owed, 1);
        e->dirty = 1; /* told when the window ends */
        now_send = 0;
      }
    } else {
      cchg_t *e = xmalloc(sizeof *e + len + 1);
      memcpy(e->cid, cid, len + 1);
      e->node.key = e->cid;
      e->node.klen = (uint32_t)len;
      e->sent_ms = now_ms();
      e->told = 1;
      e->dirty = 0;
      map_add(&cb->recent, &e->node);
      if (!cb->armed) {
        post = cb->armed = 1;
        cb->arm.next = NULL; /* worker_post follows next: it still names whatever ran after it last time */
      }
    }
  }
  pthread_mutex_unlock(&cb->mu);
  if (post) im->post(im->post_arg, BUS_HOME_WORKER, &cb->arm);
  if (now_send) conv_broadcast(im, cid);
  else atomic_fetch_add(&cb->coalesced, 1);
}

static void cbc_new(im_t *im) {
  struct conv_bcast *cb = xcalloc(1, sizeof *cb);
  pthread_mutex_init(&cb->mu, NULL);
  map_init(&cb->recent);
  cb->arm.fn = cbc_arm;
  cb->window_ms = im->cfg->bus_conv_coalesce_ms;
  cb->im = im;
  im->cbc = cb;
}

static void timer_free(uv_handle_t *h) { free(h); }

/* The home worker is stopping, its bus connection still up: what is owed goes out now,
 * and from here on every change is told at once. */
static void cbc_stop(im_t *im) {
  struct conv_bcast *cb = im->cbc;
  size_t k;
  pthread_mutex_lock(&cb->mu);
  cb->stopped = 1;
  char **cids = cbc_collect(cb, now_ms(), 1, &k);
  uv_timer_t *t = cb->timer;
  cb->timer = NULL;
  pthread_mutex_unlock(&cb->mu);
  cbc_send(im, cids, k);
  if (t) {
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, timer_free);
  }
}

void im_bus_free(im_t *im) {
  struct conv_bcast *cb = im->cbc;
  if (!cb) return;
  map_iter_t it;
  for (map_node_t *n = map_first(&cb->recent, &it); n; n = map_next(&cb->recent, &it)) {
    map_remove(&cb->recent, n);
    free(MAP_ENTRY(n, cchg_t, node));
  }
  map_fini(&cb->recent);
  pthread_mutex_destroy(&cb->mu);
  free(cb);
  im->cbc = NULL;
}

int im_client_online(im_t *im, const char *client) {
  if (presence_online(im->presence, client)) return 1;
  return im->bus && bus_sessions(im->bus, client, NULL, NULL, 0) > 0;
}

static int online_here(void *arg, const char *client) { return presence_online(((im_t *)arg)->presence, client); }

size_t im_clients_online(im_t *im) {
  size_t n = presence_count(im->presence);
  return im->bus ? n + bus_count_clients(im->bus, online_here, im) : n;
}

long im_client_rate(im_t *im, const char *client, long rate) {
  if (!im->bus || rate <= 0) return rate;
  long nodes = 1 + (long)bus_client_nodes(im->bus, client, NULL, 0);
  long r = rate / nodes;
  return r > 0 ? r : 1;
}

/* ---------------------------------------------------------------- signature nonces */

/* Frames a link received while its request waits on the bus, in order. A client that
 * keeps sending meanwhile is closed past these (4116): the wait is a round trip to Redis,
 * or immediate when the bus is down. The bytes held are also counted per peer address
 * (bus_park_limit_ip) and for the server (bus_park_limit_total): many connections, each
 * under its own cap, cannot hold more than those together while Redis is slow; the one
 * whose frame would pass a budget is closed the same way (4116), the others keep theirs. */
#define PARK_MAX_FRAMES 64
#define PARK_MAX_BYTES (1 << 20)

typedef struct qframe {
  struct qframe *next;
  int base64;
  size_t n;
  uint8_t d[];
} qframe_t;

struct im_park {
  qframe_t *head, *tail;
  size_t n, bytes;      /* the frames held */
  size_t req;           /* the parked request's own frame, counted in the budgets too */
  ipcount_entry_t *ipe; /* the link's address in im->park_ips, holding bytes + req of its count */
  int fence;            /* a presence fence (two task hops, no Redis round trip): PARK_MAX_FRAMES does
                         * not apply — a client pipelining sends is not closed for it — the bytes do */
};

static log_limit_t nonce_log, park_log;

/* Takes n bytes of the address's (ipe) and the server's budgets: 0, or the limit that
 * would be passed (1: bus_park_limit_ip, 2: bus_park_limit_total; nothing taken then). */
static int budget_take(im_t *im, const im_link_t *l, ipcount_entry_t *ipe, size_t n) {
  long ip_cap = im->cfg->bus_park_limit_ip, all_cap = im->cfg->bus_park_limit_total;
  int over = 0;
  if (ipcount_out_add(ipe, (int64_t)n) > ip_cap && ip_cap > 0) {
    ipcount_out_add(ipe, -(int64_t)n);
    over = 1;
  } else if (atomic_fetch_add(&im->park_bytes, (int64_t)n) + (int64_t)n > all_cap && all_cap > 0) {
    atomic_fetch_sub(&im->park_bytes, (int64_t)n);
    ipcount_out_add(ipe, -(int64_t)n);
    over = 2;
  }
  if (over) {
    atomic_fetch_add(&im->park_refused[over], 1);
    log_limited(&park_log, LOG_WARN, "conn %s: bytes held behind requests waiting on the bus over %s (%ld): refused",
                l->ip ? l->ip : "?", over == 1 ? "bus_park_limit_ip" : "bus_park_limit_total",
                over == 1 ? ip_cap : all_cap);
  }
  return over;
}

/* A new park for l's request of req bytes, counted against its address and the server:
 * NULL (nothing counted) when either budget would be passed. */
static struct im_park *park_new(im_t *im, im_link_t *l, size_t req) {
  ipcount_entry_t *ipe = ipcount_add(im->park_ips, l->ip ? l->ip : "", 0);
  if (budget_take(im, l, ipe, req)) {
    ipcount_del(im->park_ips, ipe);
    return NULL;
  }
  struct im_park *q = xcalloc(1, sizeof *q);
  q->ipe = ipe;
  q->req = req;
  return q;
}

/* Gives back what q holds of the address's and the server's budgets (its frames stay). */
static void park_unaccount(im_t *im, struct im_park *q) {
  size_t n = q->bytes + q->req;
  if (n) {
    ipcount_out_add(q->ipe, -(int64_t)n);
    atomic_fetch_sub(&im->park_bytes, (int64_t)n);
  }
  ipcount_del(im->park_ips, q->ipe);
  q->ipe = NULL;
}

typedef struct {
  im_t *im;
  int worker;
  uint64_t link;
  int base64;
  size_t n;
  uint8_t d[]; /* the parked request's frame */
} nclaim_t;

int im_park_hold(im_link_t *l, const uint8_t *p, size_t n, int base64) {
  struct im_park *q = l->park;
  im_t *im = l->imw->im;
  if ((q->n >= PARK_MAX_FRAMES && !q->fence) || q->bytes + n > PARK_MAX_BYTES) {
    atomic_fetch_add(&im->park_refused[0], 1);
    return LC_MESSAGE_SENT_QUOTA_EXCEEDED;
  }
  if (budget_take(im, l, q->ipe, n)) return LC_MESSAGE_SENT_QUOTA_EXCEEDED;
  qframe_t *f = xmalloc(sizeof *f + n);
  f->next = NULL;
  f->base64 = base64;
  f->n = n;
  memcpy(f->d, p, n);
  if (q->tail) q->tail->next = f;
  else q->head = f;
  q->tail = f;
  q->n++;
  q->bytes += n;
  return 0;
}

static void frames_free(qframe_t *f) {
  while (f) {
    qframe_t *n = f->next;
    free(f);
    f = n;
  }
}

void im_park_free(im_link_t *l) {
  if (!l->park) return;
  park_unaccount(l->imw->im, l->park);
  frames_free(l->park->head);
  free(l->park);
  l->park = NULL;
}

/* The bus answered (on the parked request's worker): the request runs again with the
 * answer (run: im_link_run's nonce), then the frames that waited behind it, in order, until
 * one parks again. */
static void park_resume(nclaim_t *k, int run) {
  im_worker_t *w = k->im->workers[k->worker];
  im_link_t *l = w ? handle_table_get(&w->links, k->link) : NULL;
  if (!l) { /* the connection went meanwhile */
    free(k);
    return;
  }
  struct im_park *q = l->park;
  l->park = NULL;
  if (q) park_unaccount(k->im, q); /* its frames run now, or are held (and counted) again */
  int code = im_link_run(l, k->d, k->n, k->base64, run);
  free(k);
  qframe_t *f = q ? q->head : NULL;
  free(q);
  l->replaying = 1; /* none of these may wait for a load (im_prefetch.c): the rest would pass it */
  while (f) {
    qframe_t *next = f->next;
    if (!code) code = l->park ? im_park_hold(l, f->d, f->n, f->base64) : im_link_run(l, f->d, f->n, f->base64, 0);
    free(f);
    f = next;
  }
  l->replaying = 0;
  if (code) l->ops->close(l, code, lc_error_name(code));
}

static void nonce_answer(void *arg, int result) {
  if (result < 0)
    log_limited(&nonce_log, LOG_ERROR,
                "bus: a signature nonce could not be checked across nodes (bus down): this node's cache decides");
  park_resume(arg, result == 1 ? 1 : result == 0 ? -1 : 2);
}

static nclaim_t *nclaim_new(req_t *r) {
  nclaim_t *k = xmalloc(sizeof *k + r->rawlen);
  k->im = r->w->im;
  k->worker = r->w->idx;
  k->link = r->link->id;
  k->base64 = r->base64;
  k->n = r->rawlen;
  memcpy(k->d, r->raw, r->rawlen);
  return k;
}

/* ---------------------------------------------------------------- the presence fence */

static void fence_done(void *arg) { park_resume(arg, IM_RUN_FENCED); }

int im_fence_needed(const im_t *im) { return im->bus && bus_fence_needed(im->bus); }

void im_fence_start(im_t *im, void (*done)(void *arg), void *arg) {
  atomic_fetch_add(&im->fences, 1);
  bus_fence(im->bus, done, arg);
}

int im_presence_fence(req_t *r) {
  im_t *im = r->w->im;
  /* once per request: a request run again after its fence, or after its nonce's answer
   * (which came after a Redis round trip of its own), goes on */
  if (r->fenced || r->nonce || !r->raw || !im_fence_needed(im)) return 0;
  struct im_park *q = park_new(im, r->link, r->rawlen);
  if (!q) return 0; /* the budgets are spent: answered from the replica as it is */
  q->fence = 1;
  r->link->park = q;
  im_fence_start(im, fence_done, nclaim_new(r));
  return IM_PARKED;
}

int im_sign_check(req_t *r, const char *text, int64_t t, const char *n, const char *s) {
  im_t *im = r->w->im;
  int rc = sign_verify(im->signer, text, t, n, s);
  if (rc < 0) return rc;
  if (im->bus && r->raw) {
    if (r->nonce < 0) {
      (void)sign_nonce_fresh(im->signer, n); /* remembered here too */
      return TERN_EEXIST;
    }
    if (r->nonce == 0) {
      /* the key: a hash of the nonce, so any nonce makes a short key */
      uint8_t mac[20];
      hmac_sha1("tern-nonce", 10, n, strlen(n), mac);
      char key[48] = "n:";
      hex_encode(mac, 20, key + 2);
      struct im_park *q = park_new(im, r->link, r->rawlen);
      if (!q) { /* the address or the server holds too much already: refused, not run */
        reply_error(r, LC_MESSAGE_SENT_QUOTA_EXCEEDED, "too many requests waiting on the bus");
        return IM_PARKED; /* answered: the caller does nothing more */
      }
      nclaim_t *k = nclaim_new(r);
      r->link->park = q;
      bus_claim(im->bus, key, sign_nonce_ttl_ms(im->signer), nonce_answer, k);
      return IM_PARKED;
    }
  }
  return sign_nonce_fresh(im->signer, n);
}

/* Prometheus lines of the IM layer's cluster traffic (routes.c, with a bus). */
void im_bus_metrics(im_t *im, buf_t *out) {
  buf_printf(out,
             "# HELP tern_bus_parked_bytes Bytes of frames held behind requests waiting on the bus.\n"
             "# TYPE tern_bus_parked_bytes gauge\ntern_bus_parked_bytes %lld\n",
             (long long)atomic_load(&im->park_bytes));
  buf_printf(out,
             "# HELP tern_bus_park_refused_total Connections closed (4116) for frames held behind a request waiting on "
             "the bus, by the limit they hit (connection: 64 frames / 1 MiB, ip: bus_park_limit_ip, total: "
             "bus_park_limit_total).\n"
             "# TYPE tern_bus_park_refused_total counter\ntern_bus_park_refused_total{limit=\"connection\"} %lu\n"
             "tern_bus_park_refused_total{limit=\"ip\"} %lu\ntern_bus_park_refused_total{limit=\"total\"} %lu\n",
             atomic_load(&im->park_refused[0]), atomic_load(&im->park_refused[1]), atomic_load(&im->park_refused[2]));
  buf_printf(out,
             "# HELP tern_bus_conv_changes_total Conversation changes made here, by whether a 'C' broadcast told the "
             "other nodes (sent: one per conversation per bus_conv_coalesce_ms at most, the last change of a burst "
             "included) or was folded into the broadcast that ends its window (coalesced).\n"
             "# TYPE tern_bus_conv_changes_total counter\ntern_bus_conv_changes_total{outcome=\"sent\"} %lu\n"
             "tern_bus_conv_changes_total{outcome=\"coalesced\"} %lu\n"
             "# HELP tern_bus_conv_changes_owed Conversations changed within their window whose broadcast waits for "
             "its end.\n# TYPE tern_bus_conv_changes_owed gauge\ntern_bus_conv_changes_owed %ld\n",
             atomic_load(&im->cbc->sent), atomic_load(&im->cbc->coalesced), atomic_load(&im->cbc->owed));
  im_hold_metrics(im, out);
  buf_printf(out,
             "# HELP tern_bus_fences_total Requests answered from the other nodes' presence that first waited for "
             "this node to apply the presence changes it had already received.\n"
             "# TYPE tern_bus_fences_total counter\ntern_bus_fences_total %lu\n",
             atomic_load(&im->fences));
  buf_printf(out,
             "# HELP tern_bus_unheard_goaway_total Sessions of this node told goaway because another node published "
             "a delivery for their client that this node's subscriber did not hear (off its channel: stored, not "
             "pushed); their login brings it.\n"
             "# TYPE tern_bus_unheard_goaway_total counter\ntern_bus_unheard_goaway_total %lu\n",
             atomic_load(&im->unheard_goaways));
  buf_printf(out,
             "# HELP tern_kick_remote_waits_total The app's kicks of a client with sessions on other nodes, by "
             "whether their ends reached this node's replica before the answer (seen) or the answer went after "
             "2 s without them (timeout).\n"
             "# TYPE tern_kick_remote_waits_total counter\ntern_kick_remote_waits_total{outcome=\"seen\"} %lu\n"
             "tern_kick_remote_waits_total{outcome=\"timeout\"} %lu\n",
             atomic_load(&im->kick_remote[0]), atomic_load(&im->kick_remote[1]));
}

/* ---------------------------------------------------------------- receiving */

/* The ids of a 'D' or 'B' message: malloc'd, *k of them (NULL and 0 when it lies). */
static char **get_ids(rd_t *r, size_t *k) {
  uint32_t n = get_u32(r);
  if (n > r->n) n = 0; /* at least 4 bytes each: a count past the message is a lie */
  char **ids = xcalloc(n ? n : 1, sizeof *ids);
  *k = 0;
  for (uint32_t i = 0; i < n && !r->bad; i++) {
    char *id = get_str(r);
    if (id) ids[(*k)++] = id;
  }
  return ids;
}

static void ids_free(char **ids, size_t k) {
  for (size_t i = 0; i < k; i++) free(ids[i]);
  free(ids);
}

static void recv_deliver(im_worker_t *w, rd_t *r) {
  fanout_t *p = get_frame(r);
  if (!p) return;
  size_t k;
  char **ids = get_ids(r, &k);
  if (!r->bad) fanout_to_clients_local(w, p, ids, k, 0);
  ids_free(ids, k);
  fanout_release(p);
}

static void recv_room(im_worker_t *w, rd_t *r) {
  char *cid = get_str(r);
  fanout_t *p = get_frame(r);
  if (cid && p) {
    conv_t *c = convcache_peek(w->im, cid); /* not cached: nobody here is in it */
    if (c) {
      if (c->room) fanout_to_room_local(w, p, c, 0);
      conv_release(c);
    }
  }
  free(cid);
  if (p) fanout_release(p);
}

static void recv_room_kick(im_worker_t *w, rd_t *r) {
  char *cid = get_str(r);
  fanout_t *p = get_frame(r);
  size_t k = 0;
  char **ids = p ? get_ids(r, &k) : NULL;
  if (cid && p && !r->bad) {
    conv_t *c = convcache_peek(w->im, cid);
    if (c) {
      im_room_kick_local(w, c, p, ids, k);
      conv_release(c);
    }
  }
  if (ids) ids_free(ids, k);
  free(cid);
  if (p) fanout_release(p);
}

static void recv_kick(im_worker_t *w, rd_t *r) {
  char *node = get_str(r);
  uint64_t session = get_u64(r);
  char *client = get_str(r);
  uint32_t code = get_u32(r);
  char *detail = get_str(r);
  if (!r->bad && node && client && !strcmp(node, bus_node_id(w->im->bus)) &&
      (code == LC_SESSION_CONFLICT || code == LC_KICKED_BY_APP) && handle_owner(session) < w->im->nworkers)
    im_session_kick_client(w, session, client, (int)code, detail);
  free(node);
  free(client);
  free(detail);
}

/* At most this many of the client's sessions here are marked per 'S': a client holding
 * thousands on one node and reconnecting elsewhere over and over costs this node a bounded
 * walk per reconnect (a session beyond them is marked when it ends, as before the 'S'). */
#define SENDS_GONE_SESSIONS 16

static void recv_sends_gone(im_worker_t *w, rd_t *r) {
  char *node = get_str(r);
  char *client = get_str(r);
  if (!r->bad && node && client && !strcmp(node, bus_node_id(w->im->bus))) {
    uint64_t held[SENDS_GONE_SESSIONS];
    size_t n = presence_get(w->im->presence, client, held, SENDS_GONE_SESSIONS);
    for (size_t i = 0; i < n && i < SENDS_GONE_SESSIONS; i++) im_session_sends_gone(w, held[i], client);
  }
  free(node);
  free(client);
}

static void recv_revoke(im_worker_t *w, rd_t *r) {
  if (r->n - r->o < 1) return;
  int kind = r->p[r->o++];
  size_t ln;
  const uint8_t *lineage = get_bytes(r, &ln);
  char *client = get_str(r);
  int64_t at = (int64_t)get_u64(r), exp = (int64_t)get_u64(r);
  if (!r->bad && ln == TOKEN_LINEAGE_LEN && (kind == 0 || client))
    revoke_record(w, kind ? 1 : 0, lineage, kind ? client : NULL, at, exp);
  free(client);
}

static void recv_conv_changed(im_worker_t *w, rd_t *r) {
  char *cid = get_str(r);
  if (!r->bad && cid && *cid) convcache_stale(w->im, cid);
  free(cid);
}

/* Invalidations may have been lost (bus.h, bus_set_resync): every cached conversation reloads. */
static void on_resync(void *arg) {
  im_t *im = arg;
  convcache_stale_all(im);
  metric_inc(M_CONV_RESYNCS);
}

static void on_recv(void *arg, const uint8_t *p, size_t n) {
  im_t *im = arg;
  im_worker_t *w = im->workers[BUS_HOME_WORKER];
  if (!w || n < 1) return;
  rd_t r = {.p = p + 1, .n = n - 1};
  switch (p[0]) {
  case 'D': recv_deliver(w, &r); break;
  case 'M': recv_room(w, &r); break;
  case 'K': recv_kick(w, &r); break;
  case 'R': recv_revoke(w, &r); break;
  case 'B': recv_room_kick(w, &r); break;
  case 'C': recv_conv_changed(w, &r); break;
  case 'S': recv_sends_gone(w, &r); break;
  default: break;
  }
}

/* ---------------------------------------------------------------- leaving */

typedef struct {
  task_t task;
  im_t *im;
} goaway_t;

/* {cmd: goaway} (§3.21), into b. */
static void goaway_pack(buf_t *b) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__goaway);
  PB_SET(out, service, 2);
  codec_pack(&out, b);
}

/* Every connection of this worker is told to go elsewhere (§3.21): the SDKs drop their
 * cached router answer and reconnect through the router, which no longer names this node. */
static void goaway_run(task_t *t) {
  goaway_t *g = (goaway_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? g->im->workers[idx] : NULL;
  free(g);
  if (!w) return;
  buf_t b = BUF_INIT;
  goaway_pack(&b);
  for (uint32_t i = 0; i < w->links.used; i++) {
    im_link_t *l = w->links.ptr[i];
    if (l) im_link_send(l, NULL, 0, b.data, b.len);
  }
  buf_free(&b);
}

/* goaway to every client of every worker */
static void goaway_all(im_t *im) {
  for (int k = 0; k < im->nworkers; k++) {
    goaway_t *g = xmalloc(sizeof *g);
    g->task.fn = goaway_run;
    g->task.next = NULL;
    g->im = im;
    im->post(im->post_arg, k, &g->task);
  }
}

int im_cluster_leave(im_t *im) {
  if (!im->bus) return 0;
  int others = bus_nodes_live(im->bus) - 1; /* before leaving: this one is counted */
  bus_leave(im->bus);
  if (others <= 0) {
    log_at(LOG_INFO, "stopping: no other node is live, so no goaway (there is nowhere to go)");
    return 0;
  }
  goaway_all(im);
  return 1;
}

/* The other nodes took this one for dead (bus.h, bus_set_lapse): what they sent its clients
 * meanwhile is stored but was never pushed. Clients told goaway reconnect, and the login
 * delivers it (offline messages and unread counts), as after any reconnect. */
static void on_lapse(void *arg) { goaway_all(arg); }

/* One session of a client that missed a delivery (on_unheard), on its worker. */
typedef struct {
  task_t task;
  im_t *im;
  uint64_t session;
  char client[];
} unheard_goaway_t;

static void unheard_goaway_run(task_t *t) {
  unheard_goaway_t *g = (unheard_goaway_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? g->im->workers[idx] : NULL;
  session_t *s = w ? handle_table_get(&w->sessions, g->session) : NULL;
  if (s && !strcmp(s->client_id, g->client)) { /* still that client's: not ended (and its handle reused) */
    buf_t b = BUF_INIT;
    goaway_pack(&b);
    im_link_send(s->link, NULL, 0, b.data, b.len);
    buf_free(&b);
    atomic_fetch_add(&g->im->unheard_goaways, 1);
  }
  free(g);
}

/* Other nodes published deliveries for these clients that this node's subscriber did not
 * hear (bus.h, bus_set_unheard): stored, never pushed. Their sessions here are told goaway,
 * the same frame as goaway_all's but to them alone: the SDK reconnects, and the login
 * brings what they missed (unread counts, offline push), as after a lapse. On the home
 * worker; each session on its own worker. */
static void on_unheard(void *arg, const char *const *clients, size_t n) {
  im_t *im = arg;
  for (size_t i = 0; i < n; i++) {
    uint64_t h[16];
    size_t k;
    uint64_t *hs = presence_get_all(im->presence, clients[i], h, 16, &k);
    size_t len = strlen(clients[i]) + 1;
    for (size_t j = 0; j < k; j++) {
      unheard_goaway_t *g = xmalloc(sizeof *g + len);
      g->task.fn = unheard_goaway_run;
      g->task.next = NULL;
      g->im = im;
      g->session = hs[j];
      memcpy(g->client, clients[i], len);
      im->post(im->post_arg, handle_owner(hs[j]), &g->task);
    }
    if (hs != h) free(hs);
  }
}

void im_bus_attach(im_t *im, bus_t *bus) {
  im->bus = bus;
  if (bus) {
    cbc_new(im);
    bus_set_recv(bus, on_recv, im);
    bus_set_resync(bus, on_resync, im);
    bus_set_lapse(bus, on_lapse, im);
    bus_set_unheard(bus, on_unheard, im);
    bus_set_applied(bus, im_session_kick_waits_seen, im);
  }
}

void im_worker_bus_start(im_worker_t *w, uv_loop_t *loop) {
  if (!w->im->bus) return;
  if (w->idx == BUS_HOME_WORKER) {
    im_session_kick_waits_start(w->im, loop);
    uv_timer_t *t = xcalloc(1, sizeof *t);
    uv_timer_init(loop, t);
    t->data = w->im;
    struct conv_bcast *cb = w->im->cbc;
    pthread_mutex_lock(&cb->mu);
    cb->timer = t;
    if (map_count(&cb->recent) && !cb->armed && cb->window_ms > 0) { /* changed before this worker ran */
      cb->armed = 1;
      uv_timer_start(t, cbc_tick, (uint64_t)cb->window_ms, (uint64_t)cb->window_ms);
    }
    pthread_mutex_unlock(&cb->mu);
  }
  bus_worker_start(w->im->bus, w->idx, loop);
}

void im_worker_bus_stop(im_worker_t *w) {
  if (!w->im->bus) return;
  if (w->idx == BUS_HOME_WORKER) {
    cbc_stop(w->im);
    im_session_kick_waits_stop(w->im);
  }
  bus_worker_stop(w->im->bus, w->idx);
}
