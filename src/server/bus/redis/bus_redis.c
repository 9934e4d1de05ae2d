/* bus_redis.c — the bus on Redis (bus_int.h's backend; docs/cluster.md has the keys).
 *
 * Connections, all asynchronous (hiredis on the worker loops, uvredis.c):
 *   - one per worker for its sends (PUBLISH) and claims (SET NX PX), so a worker's sends
 *     keep their order and no worker waits on another;
 *   - on the home worker also the subscriber (this node's channel, the broadcast channel,
 *     the presence events) and the home worker's command connection carries the registry
 *     poll of the other nodes, snapshots and this node's presence record — one connection,
 *     so its record and its published deltas are in one order.
 * And one blocking connection (with timeouts) on a thread of its own, tern-hb: this node's
 * heartbeat, the record's TTL and its registry entry (hb_main). Not on the home worker's
 * loop, which also serves clients: an overloaded machine starved that loop of CPU past the
 * heartbeat's TTL and the other nodes took a live node for dead (docs/cluster.md, "A node
 * declared dead while alive"); a thread that sleeps most of the time is scheduled promptly.
 * It beats while the home loop is alive: the loop stamps loop_ms on each tick, and past
 * HB_STALE_MS without one (a hung loop, not a slow one) the thread withholds the beat, so
 * a deadlocked node is still declared dead.
 * A lost connection is made again after 100 ms, doubling to 5 s; until then sends fail
 * (counted in tern_bus_errors_total) and local delivery goes on.
 *
 * Keys (P = "tern<db>:"): P"nodes" set of node ids; P"hb:<id>" the heartbeat ("url\0load",
 * PX 3000, set every second); P"n:<id>" the node's record (hash, PEXPIRE 5000 refreshed by
 * the heartbeat); P"unheard:<id>" (set, PX UNHEARD_TTL_MS) the clients of node id that
 * missed a delivery nobody heard (record_unheard, drain_unheard); P"missed:<id>" (list,
 * PX UNHEARD_TTL_MS, the newest BUS_MISSED_MAX) the payloads of kept messages (kicks,
 * blocks: bus_send_kept) to node id that nobody heard, replayed there by the same drain.
 * Channels (not per database in Redis, hence the db in P): P"ev" presence deltas of every
 * node, P"to:<id>" a node's deliveries (sender id '\0' payload; an empty payload is the
 * notice that its P"unheard:<id>" or P"missed:<id>" has entries), P"all" broadcasts. */
#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "bus_int.h"
#include "err.h"
#include "log.h"
#include "timeutil.h"
#include "uvredis.h"

#define HB_MS 1000
#define HB_TTL_MS 3000
#define REC_TTL_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define FLUSH_BATCH 512
#define STOP_GRACE_MS 1000
/* The home loop's last tick older than this: it is hung (a deadlock, an endless loop), not
 * merely slow, and the heartbeat thread stops beating so that the others declare the node
 * dead (after HB_TTL_MS more). Much longer than the TTL: a loop starved of CPU for seconds
 * keeps its node alive; one that has not run for 10 s serves no client anyway. */
#define HB_STALE_MS 10000
/* The heartbeat thread's connect and command timeouts (a Redis that does not answer). */
#define HB_IO_TIMEOUT_MS 1000
/* How long a node's P"unheard:<id>" (and P"missed:<id>") outlives the last entry added to it: it is drained as
 * soon as that node's subscriber is back (seconds), so this only bounds what a node that
 * died with it, or left, leaves in Redis. */
#define UNHEARD_TTL_MS 300000

enum { C_DOWN, C_CONNECTING, C_UP };
enum { K_CMD, K_SUB };

typedef struct rconn {
  bus_t *b;
  int idx, kind;
  redisAsyncContext *ac;
  int state, ever_up, stopping, started;
  uv_loop_t *loop;
  uv_timer_t retry; /* reconnect after a backoff; when stopping, the grace before a hard free */
  int backoff_ms;
  /* tests only (TERN_TEST_HOME_UP_DELAY_MS the home connection, TERN_TEST_SUB_UP_DELAY_MS the
   * subscriber): a connection made again is used only after this delay, as one whose
   * reconnect came a backoff later than the others' */
  int up_delay_ms, up_delay_init;
  uv_timer_t up_delay;
} rconn_t;

typedef struct {
  char host[INET6_ADDRSTRLEN + 1];
  int port, db;
  char prefix[24];
  char key_rec[96], key_hb[96], ch_ev[48], ch_me[112], ch_all[48], key_nodes[48], key_unheard[112], key_missed[112];
  rconn_t cmd[MAX_WORKERS];
  rconn_t sub;
  uv_timer_t hb; /* the home loop's tick: the registry poll, the loop's stamp */
  int hb_started;
  /* the heartbeat thread (hb_main) */
  pthread_t hb_thread;
  int hb_thread_started;   /* home worker only */
  pthread_mutex_t hb_mu;   /* hb_stop, hb_now, with hb_cv */
  pthread_cond_t hb_cv;    /* on CLOCK_MONOTONIC */
  int hb_stop, hb_now;     /* stop for good (rb_leave); beat now (the record was rewritten) */
  _Atomic int64_t loop_ms; /* the home loop's last tick (mono_ms) */
  atomic_int rec_live;     /* the record is written on the home connection since it (re)connected */
  uv_signal_t stall;       /* tests only: TERN_TEST_STALL_HOME_MS */
  int stall_ms;
  uint64_t epoch, seq;
  atomic_int sub_fd;   /* the subscriber's socket while it is up, else -1 (read by any worker) */
  atomic_int sub_busy; /* the home worker is reading and handling the subscriber's input */
  /* home loop only: the subscriber has all three channels; the home connection is up and
   * waits for that to announce this node (announce) */
  int sub_ready, announce_pending;
  /* home loop only: a drain of key_unheard is on its way; another was asked for meanwhile */
  int drain_busy, drain_again;
  /* home loop only: this run announced this node (its first announce sent its drain), and
   * whether the drain on its way replays key_missed (drain_cb): one sent before that holds
   * only what a previous run left — kicks naming that run's session handles, which this
   * run hands out again (the same generations from 1), so they are dropped, not replayed */
  int announced, drain_replay;
} rbus_t;

static log_limit_t down_log, hb_log;

static int64_t mono_ms(void) { return (int64_t)(mono_ns() / 1000000u); }

#define RB(b) ((rbus_t *)(b)->bs)

/* ---------------------------------------------------------------- URL */

static int parse_url(rbus_t *r, const char *url, char *err, size_t errlen) {
  const char *p = url + strlen("redis://");
  char host[256];
  size_t hl = strcspn(p, ":/");
  if (hl == 0 || hl >= sizeof host) goto bad;
  memcpy(host, p, hl);
  host[hl] = 0;
  p += hl;
  r->port = 6379;
  if (*p == ':') {
    char *end;
    long port = strtol(p + 1, &end, 10);
    if (end == p + 1 || port <= 0 || port > 65535) goto bad;
    r->port = (int)port;
    p = end;
  }
  r->db = 0;
  if (*p == '/' && p[1]) {
    char *end;
    long db = strtol(p + 1, &end, 10);
    if (end == p + 1 || *end || db < 0 || db > 1000) goto bad;
    r->db = (int)db;
  } else if (*p && strcmp(p, "/") != 0) {
    goto bad;
  }
  /* resolved once, here: hiredis's connect would look a name up on a worker loop */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL, *pick = NULL;
  int e = getaddrinfo(host, NULL, &hints, &res);
  for (struct addrinfo *ai = e ? NULL : res; ai; ai = ai->ai_next)
    if (!pick || (ai->ai_family == AF_INET && pick->ai_family != AF_INET)) pick = ai;
  if (!pick) {
    snprintf(err, errlen, "bus: cannot resolve \"%s\" (%s)", host, e ? gai_strerror(e) : "no address");
    if (res) freeaddrinfo(res);
    return TERN_ECONFIG;
  }
  int v6 = pick->ai_family == AF_INET6;
  inet_ntop(pick->ai_family,
            v6 ? (void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
               : (void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr,
            r->host, sizeof r->host);
  freeaddrinfo(res);
  return 0;
bad:
  snprintf(err, errlen, "bus: \"%s\" is not redis://host[:port][/db]", url);
  return TERN_ECONFIG;
}

static int rb_open(bus_t *b, const char *url, char *err, size_t errlen) {
  rbus_t *r = xcalloc(1, sizeof *r);
  int rc = parse_url(r, url, err, errlen);
  if (rc < 0) {
    free(r);
    return rc;
  }
  atomic_init(&r->sub_fd, -1);
  pthread_mutex_init(&r->hb_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->hb_cv, &ca);
  pthread_condattr_destroy(&ca);
  snprintf(r->prefix, sizeof r->prefix, "tern%d:", r->db);
  snprintf(r->key_rec, sizeof r->key_rec, "%sn:%s", r->prefix, b->node_id);
  snprintf(r->key_hb, sizeof r->key_hb, "%shb:%s", r->prefix, b->node_id);
  snprintf(r->key_nodes, sizeof r->key_nodes, "%snodes", r->prefix);
  snprintf(r->ch_ev, sizeof r->ch_ev, "%sev", r->prefix);
  snprintf(r->ch_me, sizeof r->ch_me, "%sto:%s", r->prefix, b->node_id);
  snprintf(r->ch_all, sizeof r->ch_all, "%sall", r->prefix);
  snprintf(r->key_unheard, sizeof r->key_unheard, "%sunheard:%s", r->prefix, b->node_id);
  snprintf(r->key_missed, sizeof r->key_missed, "%smissed:%s", r->prefix, b->node_id);
  b->bs = r;
  log_at(LOG_INFO, "bus: node %s on redis %s:%d db %d", b->node_id, r->host, r->port, r->db);
  return 0;
}

static void hb_thread_stop(rbus_t *r);

static void rb_free(bus_t *b) {
  rbus_t *r = RB(b);
  if (!r) return;
  hb_thread_stop(r);
  pthread_mutex_destroy(&r->hb_mu);
  pthread_cond_destroy(&r->hb_cv);
  free(b->bs);
  b->bs = NULL;
}

/* ---------------------------------------------------------------- connections */

static void conn_start(rconn_t *c);
static void on_up(rconn_t *c);
static void announce(bus_t *b);

static void on_retry(uv_timer_t *t) {
  rconn_t *c = t->data;
  if (c->stopping) { /* the grace ran out: Redis did not answer the goodbye */
    if (c->ac) redisAsyncFree(c->ac);
    c->ac = NULL;
    return;
  }
  conn_start(c);
}

static void schedule_retry(rconn_t *c) {
  c->state = C_DOWN;
  if (c->stopping) return;
  c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
  if (c->backoff_ms > BACKOFF_MAX_MS) c->backoff_ms = BACKOFF_MAX_MS;
  uv_timer_start(&c->retry, on_retry, (uint64_t)c->backoff_ms, 0);
}

static void went_down(rconn_t *c, const char *why) {
  bus_t *b = c->b;
  atomic_fetch_add(&b->m_errors, 1);
  if (c->kind == K_CMD && c->idx == BUS_HOME_WORKER) {
    atomic_store(&b->up, 0);
    atomic_store(&RB(b)->rec_live, 0); /* the heartbeat thread stops registering this node */
  }
  if (!c->stopping)
    log_limited(&down_log, LOG_ERROR,
                "bus: redis %s:%d %s (%s); local delivery goes on, cross-node delivery waits; reconnecting",
                RB(b)->host, RB(b)->port, c->state == C_UP ? "connection lost" : "unreachable", why);
}

static void conn_ready(rconn_t *c) {
  c->state = C_UP;
  if (c->ever_up) atomic_fetch_add(&c->b->m_reconnects, 1);
  c->ever_up = 1;
  c->backoff_ms = 0;
  on_up(c);
}

static void on_up_delay(uv_timer_t *t) {
  rconn_t *c = t->data;
  if (c->ac && c->state == C_CONNECTING && !c->stopping) conn_ready(c);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  rconn_t *c = ac->data;
  if (status != REDIS_OK) {
    went_down(c, ac->errstr);
    c->ac = NULL; /* hiredis frees it after this callback */
    schedule_retry(c);
    return;
  }
  if (c->ever_up && c->up_delay_ms > 0 && !c->stopping) { /* tests only: conn_init */
    uv_timer_start(&c->up_delay, on_up_delay, (uint64_t)c->up_delay_ms, 0);
    return; /* still C_CONNECTING: nothing is sent on it meanwhile */
  }
  conn_ready(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
  rconn_t *c = ac->data;
  if (c->up_delay_init) uv_timer_stop(&c->up_delay);
  if (c->kind == K_SUB) {
    atomic_store(&RB(c->b)->sub_fd, -1);
    RB(c->b)->sub_ready = 0;
  }
  if (status != REDIS_OK) went_down(c, ac->errstr);
  else if (c->kind == K_CMD && c->idx == BUS_HOME_WORKER) {
    atomic_store(&c->b->up, 0);
    atomic_store(&RB(c->b)->rec_live, 0);
  }
  c->ac = NULL;
  schedule_retry(c);
}

static void conn_start(rconn_t *c) {
  rbus_t *r = RB(c->b);
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
  if (!ac || ac->err) {
    went_down(c, ac ? ac->errstr : "out of memory");
    if (ac) redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  if (uvredis_attach(ac, c->loop) != REDIS_OK) {
    went_down(c, "cannot watch the socket");
    redisAsyncFree(ac);
    schedule_retry(c);
    return;
  }
  ac->data = c;
  if (c->kind == K_SUB) uvredis_set_busy(ac, &r->sub_busy);
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c->ac = ac;
  c->state = C_CONNECTING;
  if (r->db) redisAsyncCommand(ac, NULL, NULL, "SELECT %d", r->db); /* sent first, once connected */
}

static void conn_init(bus_t *b, rconn_t *c, int idx, int kind, uv_loop_t *loop) {
  memset(c, 0, sizeof *c);
  c->b = b;
  c->idx = idx;
  c->kind = kind;
  c->loop = loop;
  c->started = 1;
  uv_timer_init(loop, &c->retry);
  c->retry.data = c;
  const char *e = kind == K_SUB            ? getenv("TERN_TEST_SUB_UP_DELAY_MS")
                  : idx == BUS_HOME_WORKER ? getenv("TERN_TEST_HOME_UP_DELAY_MS")
                                           : NULL;
  long ms = e ? strtol(e, NULL, 10) : 0;
  if (ms > 0 && ms <= 60000) { /* tests only (tests/cluster/restart.test.mjs, bus.test.mjs), no option */
    c->up_delay_ms = (int)ms;
    uv_timer_init(loop, &c->up_delay);
    c->up_delay.data = c;
    uv_unref((uv_handle_t *)&c->up_delay);
    c->up_delay_init = 1;
  }
  conn_start(c);
}

/* Any command's reply that only counts failures. */
static void count_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  bus_t *b = priv;
  if (!r || r->type == REDIS_REPLY_ERROR) atomic_fetch_add(&b->m_errors, 1);
}

/* A delivery's PUBLISH to another node's channel: Redis answers how many subscribers got
 * it, and 0 is a delivery nobody heard — that node's subscriber was not on its channel
 * (Redis dropped it past its output buffer limit, or it is reconnecting); what it carried
 * is stored but was not pushed. Counted for the operator (tern_bus_unheard_total). */
static void publish_cb(redisAsyncContext *ac, void *reply, void *priv) {
  redisReply *r = reply;
  bus_t *b = priv;
  if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) atomic_fetch_add(&b->m_unheard, 1);
  count_cb(ac, reply, priv);
}

static int home_up(bus_t *b) {
  rconn_t *c = &RB(b)->cmd[BUS_HOME_WORKER];
  return c->started && c->state == C_UP && c->ac && !c->stopping;
}

/* ---------------------------------------------------------------- deliveries nobody heard
 *
 * A delivery whose PUBLISH answers 0 was stored and acked, but its recipients on that node,
 * still connected, would see it only at their next login or sync. The sender records them
 * for that node (record_unheard); that node takes the set (drain_unheard) and its IM layer
 * tells their sessions goaway (bus_set_unheard), so that they log in again at once. A
 * PUBLISH that was heard costs only the copy of its recipients' ids held for its answer.
 * A kept message (a kick, a block: bus_send_kept) nobody heard is recorded itself, its
 * payload without the sender's id, in the list P"missed:<to>"; the same drain takes it and
 * hands each payload to b->recv, as if heard late (a kick or a block is idempotent, and its
 * order against other messages does not matter; a delivery's does, hence goaway for those). */

/* What a PUBLISH to another node's channel must leave behind if nobody heard it, kept until
 * Redis answers: a delivery's recipients on that node (bus_deliver: n NUL-terminated ids,
 * one after another, ilen bytes), or a kept message's payload (bus_send_kept: mlen bytes,
 * after the ids). */
typedef struct {
  bus_t *b;
  char to[BUS_NODE_ID_MAX + 1];
  size_t n, ilen, mlen;
  char ids[];
} unheard_t;

/* On the connection that sent the message, in one MULTI: the recipients added to node to's
 * set P"unheard:<to>" (or the payload pushed onto its list P"missed:<to>", trimmed to the
 * newest BUS_MISSED_MAX), the key's TTL renewed, then the notice (an empty payload)
 * published to its channel. Redis runs one connection's commands in order: the SADD (the
 * RPUSH) precedes the notice, which is what drain_unheard's reasoning rests on. */
static void record_unheard(redisAsyncContext *ac, const unheard_t *u) {
  bus_t *b = u->b;
  rbus_t *r = RB(b);
  char key[160], ch[160];
  snprintf(ch, sizeof ch, "%sto:%s", r->prefix, u->to);
  redisAsyncCommand(ac, NULL, NULL, "MULTI");
  if (u->n) {
    snprintf(key, sizeof key, "%sunheard:%s", r->prefix, u->to);
    const char **argv = xmalloc((u->n + 2) * sizeof *argv);
    size_t *lens = xmalloc((u->n + 2) * sizeof *lens);
    argv[0] = "SADD";
    lens[0] = 4;
    argv[1] = key;
    lens[1] = strlen(key);
    const char *p = u->ids;
    for (size_t i = 0; i < u->n; i++) {
      argv[2 + i] = p;
      lens[2 + i] = strlen(p);
      p += lens[2 + i] + 1;
    }
    redisAsyncCommandArgv(ac, NULL, NULL, (int)(u->n + 2), argv, lens);
    free(argv);
    free(lens);
  } else {
    snprintf(key, sizeof key, "%smissed:%s", r->prefix, u->to);
    redisAsyncCommand(ac, NULL, NULL, "RPUSH %s %b", key, u->ids + u->ilen, u->mlen);
    redisAsyncCommand(ac, NULL, NULL, "LTRIM %s %d -1", key, -BUS_MISSED_MAX);
  }
  redisAsyncCommand(ac, NULL, NULL, "PEXPIRE %s %d", key, UNHEARD_TTL_MS);
  redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s %b", ch, b->node_id, strlen(b->node_id) + 1);
  redisAsyncCommand(ac, count_cb, b, "EXEC");
}

/* bus_deliver's or bus_send_kept's PUBLISH answered: counted as any delivery (publish_cb),
 * and when nobody heard it its recipients, or the message, are recorded for that node. */
static void deliver_cb(redisAsyncContext *ac, void *reply, void *priv) {
  unheard_t *u = priv;
  redisReply *r = reply;
  publish_cb(ac, reply, u->b);
  if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0 && (u->n || u->mlen)) record_unheard(ac, u);
  free(u);
}

static void drain_unheard(bus_t *b);

/* The set and the list, taken: the set's clients go to the IM layer (goaway), the list's
 * messages to the receive callback, oldest first, as if heard now. */
static void drain_cb(redisAsyncContext *ac, void *reply, void *priv) {
  (void)ac;
  bus_t *b = priv;
  rbus_t *r = RB(b);
  redisReply *x = reply;
  r->drain_busy = 0;
  if (!x) return; /* the home connection was lost: announce drains once it is back */
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 4) {
    atomic_fetch_add(&b->m_errors, 1); /* the next notice or resubscription drains again */
    return;
  }
  redisReply *m = x->element[0];
  if (m->type == REDIS_REPLY_ARRAY && m->elements) {
    const char **ids = xcalloc(m->elements, sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < m->elements; i++) {
      redisReply *e = m->element[i];
      if (e->type == REDIS_REPLY_STRING && e->len && !memchr(e->str, 0, e->len)) ids[k++] = e->str;
    }
    if (k && b->unheard) b->unheard(b->unheard_arg, ids, k);
    free(ids);
  }
  redisReply *l = x->element[2];
  if (l->type == REDIS_REPLY_ARRAY && l->elements && !r->drain_replay)
    log_at(LOG_INFO, "bus: %zu kept message(s) a previous run of this node did not hear dropped", l->elements);
  else if (l->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i < l->elements; i++) {
      redisReply *e = l->element[i];
      if (e->type != REDIS_REPLY_STRING || !e->len) continue;
      atomic_fetch_add(&b->m_missed_replayed, 1);
      if (b->recv) b->recv(b->recv_arg, (const uint8_t *)e->str, e->len);
    }
  if (r->drain_again) drain_unheard(b);
}

/* On the home worker: this node's P"unheard:<id>" and P"missed:<id>" taken and deleted at
 * once (MULTI SMEMBERS DEL LRANGE DEL: one transaction, so a drain takes both as they were
 * at one instant), when its subscriber is back on its channels (sub_cb, announce) and when
 * it hears the notice. Why that leaves no client (and no kept message) behind: the sender's
 * PUBLISH that nobody heard ran in Redis at some time P, while this node's subscriber was
 * off its channel; its SADD (or RPUSH: the list's entry is written the same way, in the
 * same MULTI as its notice, so everything below holds for it word for word) then runs at
 * T > P (the same connection, later), and this node's SUBSCRIBE at S > P.
 * If T < S: the drain sent once the SUBSCRIBE was answered runs after S, so after the SADD.
 * If T > S: the notice published right behind the SADD finds this node subscribed and is
 * heard (or, if the subscriber drops again first, a later SUBSCRIBE S' > T comes with its
 * own drain), and the drain it asks for runs after it. A drain asked for while one is on
 * its way is sent again after it (drain_again): the one on its way may have run before the
 * SADD. With the home connection down nothing is sent: announce drains once it is back,
 * after the subscription. */
static void drain_unheard(bus_t *b) {
  rbus_t *r = RB(b);
  if (r->drain_busy) {
    r->drain_again = 1;
    return;
  }
  r->drain_again = 0;
  if (!home_up(b) || b->leaving) return;
  r->drain_replay = r->announced;
  redisAsyncContext *ac = r->cmd[BUS_HOME_WORKER].ac;
  redisAsyncCommand(ac, NULL, NULL, "MULTI");
  redisAsyncCommand(ac, NULL, NULL, "SMEMBERS %s", r->key_unheard);
  redisAsyncCommand(ac, NULL, NULL, "DEL %s", r->key_unheard);
  redisAsyncCommand(ac, NULL, NULL, "LRANGE %s 0 -1", r->key_missed);
  redisAsyncCommand(ac, NULL, NULL, "DEL %s", r->key_missed);
  if (redisAsyncCommand(ac, drain_cb, b, "EXEC") == REDIS_OK) r->drain_busy = 1;
}

/* ---------------------------------------------------------------- this node's record */

/* A presence event: id '\0', epoch and seq (8 bytes each, big-endian), kind, ops. */
static void ev_header(buf_t *m, bus_t *b, uint64_t ep, uint64_t seq, char kind) {
  buf_append(m, b->node_id, strlen(b->node_id) + 1);
  uint8_t h[17];
  for (int i = 0; i < 8; i++) {
    h[i] = (uint8_t)(ep >> (56 - 8 * i));
    h[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
  }
  h[16] = (uint8_t)kind;
  buf_append(m, h, 17);
}

/* A batch's EXEC answered (or its connection dropped: reply NULL): the replies held for its
 * changes go out (bus_wait). */
typedef struct {
  bus_t *b;
  uint64_t upto;
  int forced; /* a rewrite: the others take a snapshot after it, so nothing is confirmed */
} exec_t;

static void hb_kick(rbus_t *r);

static void ping_cb(redisAsyncContext *ac, void *reply, void *priv) {
  exec_t *x = priv;
  bus_release(x->b, x->upto, x->forced || !reply);
  free(x);
}

/* The EXEC's answer says Redis ran the PUBLISH, but not that it has written the delta to
 * every subscriber yet: it writes its clients' output in one pass after the commands, in an
 * order of its own, and may answer this connection before another node's subscriber (a
 * machine short of CPU can deschedule it in between). A PING sent after the answer is run
 * in a later pass of its loop, after the writes of this one: its answer is the release. */
static void exec_cb(redisAsyncContext *ac, void *reply, void *priv) {
  exec_t *x = priv;
  redisReply *r = reply;
  count_cb(ac, reply, x->b);
  if (x->forced && r && r->type == REDIS_REPLY_ARRAY && !x->b->leaving && !atomic_load(&RB(x->b)->rec_live)) {
    /* the record is in Redis again: the heartbeat thread (re)registers this node now, not
     * before, so a node that sees it in the registry finds its record (snapshot_cb) */
    atomic_store(&RB(x->b)->rec_live, 1);
    hb_kick(RB(x->b));
  }
  if (!r || r->type != REDIS_REPLY_ARRAY) x->forced = 1;
  if (x->forced || !home_up(x->b) || redisAsyncCommand(ac, ping_cb, x, "PING") != REDIS_OK) {
    bus_release(x->b, x->upto, x->forced);
    free(x);
  }
}

static exec_t *exec_new(bus_t *b, uint64_t upto, int forced) {
  exec_t *x = xmalloc(sizeof *x);
  x->b = b;
  x->upto = upto;
  x->forced = forced;
  return x;
}

static void rb_flush(bus_t *b) {
  rbus_t *r = RB(b);
  if (!r || b->leaving) return;
  if (!home_up(b)) {
    bus_drop_ops(b);                  /* the record is written whole once the connection is back */
    bus_release(b, bus_ticket(b), 1); /* the held replies go out with the local state */
    return;
  }
  redisAsyncContext *ac = r->cmd[BUS_HOME_WORKER].ac;
  for (;;) {
    size_t n;
    bus_op_t *ops = bus_take_ops(b, FLUSH_BATCH, &n);
    if (!ops) break;
    uint64_t seq = ++r->seq;
    redisAsyncCommand(ac, NULL, NULL, "MULTI");
    for (bus_op_t *o = ops; o; o = o->next) {
      if (o->op == '+')
        redisAsyncCommand(ac, NULL, NULL, "HSET %s %b %b", r->key_rec, o->data, (size_t)o->flen, o->data + o->flen,
                          (size_t)o->vlen);
      else redisAsyncCommand(ac, NULL, NULL, "HDEL %s %b", r->key_rec, o->data, (size_t)o->flen);
    }
    redisAsyncCommand(ac, NULL, NULL, "HSET %s _seq %llu", r->key_rec, (unsigned long long)seq);
    buf_t m = BUF_INIT;
    ev_header(&m, b, r->epoch, seq, 'd');
    bus_encode_ops(&m, ops);
    redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s %b", r->ch_ev, m.data, m.len);
    uint64_t upto = 0;
    for (bus_op_t *o = ops; o; o = o->next) upto = o->no;
    redisAsyncCommand(ac, exec_cb, exec_new(b, upto, 0), "EXEC");
    buf_free(&m);
    while (ops) {
      bus_op_t *x = ops->next;
      free(ops);
      ops = x;
    }
  }
}

typedef struct {
  redisAsyncContext *ac;
  const char *key;
  size_t n;
  const char *argv[2 + 2 * 256];
  size_t lens[2 + 2 * 256];
  buf_t hold; /* copies of the fields and values the argv points into */
  size_t offs[2 * 256];
} hset_batch_t;

static void batch_send(hset_batch_t *h) {
  if (!h->n) return;
  h->argv[0] = "HSET";
  h->lens[0] = 4;
  h->argv[1] = h->key;
  h->lens[1] = strlen(h->key);
  for (size_t i = 0; i < 2 * h->n; i++) h->argv[2 + i] = (const char *)h->hold.data + h->offs[i];
  redisAsyncCommandArgv(h->ac, NULL, NULL, (int)(2 + 2 * h->n), h->argv, h->lens);
  h->n = 0;
  h->hold.len = 0;
}

static void batch_add(void *arg, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl) {
  hset_batch_t *h = arg;
  h->offs[2 * h->n] = h->hold.len;
  h->lens[2 + 2 * h->n] = fl;
  buf_append(&h->hold, f, fl);
  h->offs[2 * h->n + 1] = h->hold.len;
  h->lens[2 + 2 * h->n + 1] = vl;
  buf_append(&h->hold, v, vl);
  if (++h->n == 256) batch_send(h);
}

/* The record written whole, under a new epoch: at start and after every reconnect (Redis
 * may have restarted empty, and deltas published while it was away are lost). */
static void write_record(bus_t *b) {
  rbus_t *r = RB(b);
  redisAsyncContext *ac = r->cmd[BUS_HOME_WORKER].ac;
  bus_drop_ops(b);
  uint64_t upto = bus_ticket(b); /* what the rewrite holds (more may come: later batches) */
  r->epoch = ((uint64_t)now_ms() << 16) ^ (uint64_t)(r->epoch + 1);
  r->seq = 0;
  redisAsyncCommand(ac, NULL, NULL, "MULTI");
  redisAsyncCommand(ac, NULL, NULL, "DEL %s", r->key_rec);
  redisAsyncCommand(ac, NULL, NULL, "HSET %s _ep %llu _seq 0", r->key_rec, (unsigned long long)r->epoch);
  hset_batch_t *h = xcalloc(1, sizeof *h);
  h->ac = ac;
  h->key = r->key_rec;
  /* bus_each_mine holds the record's lock while batch_add runs; batch_send only queues
   * into hiredis's buffer (no I/O, no callback), so it may run under it */
  bus_each_mine(b, batch_add, h);
  batch_send(h);
  buf_free(&h->hold);
  free(h);
  redisAsyncCommand(ac, NULL, NULL, "PEXPIRE %s %d", r->key_rec, REC_TTL_MS);
  buf_t m = BUF_INIT;
  ev_header(&m, b, r->epoch, 0, 'r');
  redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s %b", r->ch_ev, m.data, m.len);
  redisAsyncCommand(ac, exec_cb, exec_new(b, upto, 1), "EXEC");
  buf_free(&m);
}

/* ---------------------------------------------------------------- the other nodes */

typedef struct {
  bus_t *b;
  int slot;
  char id[BUS_NODE_ID_MAX + 1];
} snap_t;

static void snapshot_cb(redisAsyncContext *ac, void *reply, void *priv) {
  snap_t *s = priv;
  redisReply *r = reply;
  bus_t *b = s->b;
  bus_node_t *nd = &b->nodes[s->slot];
  if (!nd->used || strcmp(nd->id, s->id) != 0) goto out; /* forgotten meanwhile */
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    nd->syncing = 0; /* the next registry round asks again */
    goto out;
  }
  size_t n = r->elements / 2;
  const uint8_t **f = xcalloc(n ? n : 1, sizeof *f), **v = xcalloc(n ? n : 1, sizeof *v);
  size_t *fl = xcalloc(n ? n : 1, sizeof *fl), *vl = xcalloc(n ? n : 1, sizeof *vl);
  for (size_t i = 0; i < n; i++) {
    f[i] = (const uint8_t *)r->element[2 * i]->str;
    fl[i] = r->element[2 * i]->len;
    v[i] = (const uint8_t *)r->element[2 * i + 1]->str;
    vl[i] = r->element[2 * i + 1]->len;
  }
  bus_node_snapshot(b, s->slot, n, f, fl, v, vl);
  free(f);
  free(v);
  free(fl);
  free(vl);
out:
  free(s);
}

static void request_snapshot(bus_t *b, int slot) {
  rbus_t *r = RB(b);
  bus_node_t *nd = &b->nodes[slot];
  if (!home_up(b)) {
    nd->syncing = 0;
    return;
  }
  nd->syncing = 1;
  snap_t *s = xmalloc(sizeof *s);
  s->b = b;
  s->slot = slot;
  memcpy(s->id, nd->id, sizeof s->id);
  redisAsyncCommand(r->cmd[BUS_HOME_WORKER].ac, snapshot_cb, s, "HGETALL %sn:%s", r->prefix, nd->id);
}

typedef struct {
  bus_t *b;
  size_t n;
  char **ids;
} poll_t;

static void poll_free(poll_t *p) {
  for (size_t i = 0; i < p->n; i++) free(p->ids[i]);
  free(p->ids);
  free(p);
}

/* The heartbeats of the registered nodes: a missing one is a dead node. */
static void hb_cb(redisAsyncContext *ac, void *reply, void *priv) {
  poll_t *p = priv;
  redisReply *r = reply;
  bus_t *b = p->b;
  rbus_t *rb = RB(b);
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != p->n) goto out;
  uint8_t alive[BUS_MAX_NODES] = {0};
  for (size_t i = 0; i < p->n; i++) {
    redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING) {
      int slot = bus_node_slot(b, p->ids[i], 0);
      if (slot >= 0) {
        log_at(LOG_WARN, "bus: node %s stopped heartbeating: its sessions are gone", p->ids[i]);
        bus_node_forget(b, slot);
      }
      if (home_up(b))
        redisAsyncCommand(rb->cmd[BUS_HOME_WORKER].ac, NULL, NULL, "SREM %s %s", rb->key_nodes, p->ids[i]);
      continue;
    }
    int slot = bus_node_slot(b, p->ids[i], 1);
    if (slot < 0) continue;
    alive[slot] = 1;
    const char *nul = memchr(e->str, 0, e->len);
    char url[1024];
    snprintf(url, sizeof url, "%.*s", (int)(nul ? (size_t)(nul - e->str) : e->len), e->str);
    long load = nul ? strtol(nul + 1, NULL, 10) : 0;
    if (!b->nodes[slot].live) log_at(LOG_INFO, "bus: node %s joined (%s)", p->ids[i], url);
    bus_node_seen(b, slot, url, load);
    if (!b->nodes[slot].synced && !b->nodes[slot].syncing) request_snapshot(b, slot);
  }
  /* nodes this one knew that left the registry (a goodbye it missed), and those it knew
   * before its home connection was (re)made that an emptied Redis does not hold (yet):
   * nothing was pushed to them since (bus_nodes_suspend), and a poll that sees them again
   * takes their snapshot */
  for (int i = 0; i < BUS_MAX_NODES; i++)
    if (b->nodes[i].used && (b->nodes[i].live || b->nodes[i].suspended) && !alive[i]) bus_node_forget(b, i);
out:
  poll_free(p);
}

static void members_cb(redisAsyncContext *ac, void *reply, void *priv) {
  bus_t *b = priv;
  redisReply *r = reply;
  rbus_t *rb = RB(b);
  if (!r || r->type != REDIS_REPLY_ARRAY || !home_up(b)) return;
  poll_t *p = xcalloc(1, sizeof *p);
  p->b = b;
  p->ids = xcalloc(r->elements + 1, sizeof *p->ids);
  for (size_t i = 0; i < r->elements; i++) {
    redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING || (e->len == strlen(b->node_id) && !memcmp(e->str, b->node_id, e->len)))
      continue;
    if (e->len > BUS_NODE_ID_MAX || memchr(e->str, 0, e->len)) continue;
    p->ids[p->n++] = xstrndup(e->str, e->len);
  }
  if (!p->n) { /* alone: whoever was known has left */
    for (int i = 0; i < BUS_MAX_NODES; i++)
      if (b->nodes[i].used) bus_node_forget(b, i);
    poll_free(p);
    return;
  }
  const char **argv = xcalloc(p->n + 1, sizeof *argv);
  size_t *lens = xcalloc(p->n + 1, sizeof *lens);
  char **keys = xcalloc(p->n, sizeof *keys);
  argv[0] = "MGET";
  lens[0] = 4;
  for (size_t i = 0; i < p->n; i++) {
    buf_t k = BUF_INIT;
    buf_printf(&k, "%shb:%s", rb->prefix, p->ids[i]);
    keys[i] = buf_cstr(&k);
    argv[1 + i] = keys[i];
    lens[1 + i] = strlen(keys[i]);
  }
  redisAsyncCommandArgv(rb->cmd[BUS_HOME_WORKER].ac, hb_cb, p, (int)(p->n + 1), argv, lens);
  for (size_t i = 0; i < p->n; i++) free(keys[i]);
  free(keys);
  free(argv);
  free(lens);
}

/* ---------------------------------------------------------------- this node's heartbeat (tern-hb) */

typedef struct {
  task_t task;
  bus_t *b;
} lapse_t;

/* On the home worker: the lapse the heartbeat thread found (hb_beat). The record may have
 * expired too (REC_TTL_MS) and the others, hearing of this node again, would take an empty
 * snapshot of it: it is written whole under a new epoch, as after a reconnect, so they know
 * its sessions again — those whose clients stay connected after the goaway included. */
static void lapse_run(task_t *t) {
  lapse_t *l = (lapse_t *)t;
  bus_t *b = l->b;
  free(l);
  if (b->leaving) return;
  atomic_fetch_add(&b->m_lapses, 1);
  log_at(LOG_WARN,
         "bus: this node's heartbeat lapsed (not renewed within %d ms): the other nodes took it for "
         "dead and only stored what they sent its clients; telling its clients to reconnect",
         HB_TTL_MS);
  if (home_up(b)) write_record(b);
  if (b->lapse) b->lapse(b->lapse_arg);
}

/* The heartbeat thread's connection, made (SELECT as the others do) when there is none;
 * NULL when Redis cannot be reached. */
static redisContext *hb_connect(bus_t *b, redisContext **cp) {
  rbus_t *r = RB(b);
  if (*cp) return *cp;
  struct timeval tv = {HB_IO_TIMEOUT_MS / 1000, (HB_IO_TIMEOUT_MS % 1000) * 1000};
  redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
  if (!c || c->err) {
    log_limited(&hb_log, LOG_ERROR, "bus: heartbeat: redis %s:%d unreachable (%s); retrying", r->host, r->port,
                c ? c->errstr : "out of memory");
    if (c) redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  if (r->db) {
    redisReply *rep = redisCommand(c, "SELECT %d", r->db);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep) freeReplyObject(rep);
    if (!ok) {
      log_limited(&hb_log, LOG_ERROR, "bus: heartbeat: redis %s:%d refused SELECT %d; retrying", r->host, r->port,
                  r->db);
      redisFree(c);
      return NULL;
    }
  }
  *cp = c;
  return c;
}

/* The heartbeat's value: the public URL '\0' this node's load. Any thread. */
static int hb_value(bus_t *b, char *val, size_t len) {
  const char *url = b->public_url && *b->public_url ? *b->public_url : "";
  int n = snprintf(val, len, "%s%c%ld", url, 0, (long)atomic_load(&b->nsessions));
  return n < 0 || (size_t)n >= len ? 0 : n;
}

/* One beat on the heartbeat thread: SET hb:<id> … PX HB_TTL_MS GET, the record's TTL and
 * the registry entry, pipelined, waited for (HB_IO_TIMEOUT_MS at most). *hb_set: a
 * heartbeat was set on this connection since it was made and the node registered; then a
 * nil answer (no previous value) means it expired — for longer than HB_TTL_MS this node did
 * not beat, the other nodes dropped its sessions and what they sent its clients was only
 * stored (bus.h, bus_set_lapse): the lapse is posted to the home worker. After a (re)connect
 * the key may be gone with Redis's data: that first answer says nothing. Returns 0, or -1
 * when the connection failed (then *cp is freed and NULL). */
static int hb_beat(bus_t *b, redisContext **cp, int *hb_set) {
  rbus_t *r = RB(b);
  redisContext *c = hb_connect(b, cp);
  if (!c) {
    *hb_set = 0;
    atomic_fetch_add(&b->m_errors, 1);
    return -1;
  }
  char val[1100];
  int n = hb_value(b, val, sizeof val);
  redisAppendCommand(c, "SET %s %b PX %d GET", r->key_hb, val, (size_t)n, HB_TTL_MS);
  redisAppendCommand(c, "PEXPIRE %s %d", r->key_rec, REC_TTL_MS);
  redisAppendCommand(c, "SADD %s %s", r->key_nodes, b->node_id);
  int lapsed = 0, failed = 0;
  for (int i = 0; i < 3; i++) {
    redisReply *rep = NULL;
    if (redisGetReply(c, (void **)&rep) != REDIS_OK || !rep) {
      failed = 1;
      break;
    }
    if (rep->type == REDIS_REPLY_ERROR) atomic_fetch_add(&b->m_errors, 1);
    if (i == 0 && rep->type == REDIS_REPLY_NIL && *hb_set) lapsed = 1;
    freeReplyObject(rep);
  }
  if (failed) {
    log_limited(&hb_log, LOG_ERROR, "bus: heartbeat: redis %s:%d connection lost (%s); reconnecting", r->host, r->port,
                c->errstr[0] ? c->errstr : "no answer");
    atomic_fetch_add(&b->m_errors, 1);
    redisFree(c);
    *cp = NULL;
    *hb_set = 0;
    return -1;
  }
  *hb_set = 1;
  if (lapsed) {
    lapse_t *l = xcalloc(1, sizeof *l);
    l->task.fn = lapse_run;
    l->b = b;
    b->post(b->post_arg, BUS_HOME_WORKER, &l->task);
  }
  return 0;
}

/* The heartbeat thread: a beat every HB_MS while the record is written (rec_live: the home
 * connection is up, as before the thread) and the home loop ticks (loop_ms within
 * HB_STALE_MS); a lost connection is made again after 100 ms doubling to 5 s. Ends when
 * hb_stop is set (hb_thread_stop, before the goodbye). */
static void *hb_main(void *arg) {
  bus_t *b = arg;
  rbus_t *r = RB(b);
  redisContext *c = NULL;
  int hb_set = 0, backoff = 0, stale = 0;
  int64_t next = 0;
  pthread_mutex_lock(&r->hb_mu);
  while (!r->hb_stop) {
    int64_t now = mono_ms();
    if (!r->hb_now && now < next) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      int64_t ns = (int64_t)ts.tv_nsec + (next - now) * 1000000;
      ts.tv_sec += ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&r->hb_cv, &r->hb_mu, &ts);
      continue;
    }
    r->hb_now = 0;
    pthread_mutex_unlock(&r->hb_mu);
    int64_t delay = HB_MS;
    if (!atomic_load(&r->rec_live)) {
      /* not registered (the home connection is down): the next registration starts afresh,
       * on a new connection (this one may have died with Redis) */
      hb_set = 0;
      if (c) redisFree(c);
      c = NULL;
      backoff = 0;
    } else if (now - atomic_load(&r->loop_ms) > HB_STALE_MS) {
      if (!stale)
        log_at(LOG_ERROR,
               "bus: the home worker's loop has not run for %lld ms: heartbeat withheld, the other nodes will "
               "take this node for dead",
               (long long)(now - atomic_load(&r->loop_ms)));
      stale = 1;
      delay = 100; /* beat again soon after the loop comes back */
    } else {
      stale = 0;
      if (hb_beat(b, &c, &hb_set) < 0) {
        backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
        if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
        delay = backoff;
      } else {
        backoff = 0;
      }
    }
    pthread_mutex_lock(&r->hb_mu);
    next = mono_ms() + delay;
  }
  pthread_mutex_unlock(&r->hb_mu);
  if (c) redisFree(c);
  return NULL;
}

/* The thread beats now (the record was just rewritten). Takes hb_mu, which the thread never
 * holds across I/O. */
static void hb_kick(rbus_t *r) {
  pthread_mutex_lock(&r->hb_mu);
  r->hb_now = 1;
  pthread_cond_signal(&r->hb_cv);
  pthread_mutex_unlock(&r->hb_mu);
}

/* Stops the heartbeat thread and waits for it: when this returns, every beat it sent was
 * answered (or its connection closed after HB_IO_TIMEOUT_MS), so nothing of it lands after
 * a goodbye sent next. Blocks the caller for one beat's I/O at most. */
static void hb_thread_stop(rbus_t *r) {
  if (!r->hb_thread_started) return;
  pthread_mutex_lock(&r->hb_mu);
  r->hb_stop = 1;
  pthread_cond_signal(&r->hb_cv);
  pthread_mutex_unlock(&r->hb_mu);
  pthread_join(r->hb_thread, NULL);
  r->hb_thread_started = 0;
}

/* ---------------------------------------------------------------- the home loop's tick */

/* Every HB_MS on the home loop: the loop's stamp, queued record changes, and the others'
 * heartbeats (the registry poll). */
static void poll_others(bus_t *b) {
  rbus_t *r = RB(b);
  if (!home_up(b) || b->leaving) return;
  rb_flush(b);
  redisAsyncCommand(r->cmd[BUS_HOME_WORKER].ac, members_cb, b, "SMEMBERS %s", r->key_nodes);
}

static void on_hb(uv_timer_t *t) {
  bus_t *b = t->data;
  atomic_store(&RB(b)->loop_ms, mono_ms()); /* this loop is alive (hb_main) */
  bus_wait_sweep(b, now_ms());              /* replies held past BUS_WAIT_MAX_MS (Redis not answering) */
  poll_others(b);
}

/* Tests only (tests/cluster/hb-thread.test.mjs), never for a deployment, and no option:
 * with TERN_TEST_STALL_HOME_MS=N in the environment (read once, at start), SIGUSR2 blocks
 * the home worker's loop for N ms, as a loop starved of CPU or hung would be. */
static void on_stall(uv_signal_t *h, int signum) {
  (void)signum;
  rbus_t *r = h->data;
  log_at(LOG_WARN, "bus: test hook: blocking the home worker's loop for %d ms", r->stall_ms);
  int64_t until = mono_ms() + r->stall_ms;
  for (int64_t now = mono_ms(); now < until; now = mono_ms()) {
    struct timespec ts = {(until - now) / 1000, ((until - now) % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
}

/* ---------------------------------------------------------------- the subscriber */

static uint64_t be64(const uint8_t *p) {
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x = x << 8 | p[i];
  return x;
}

static void on_event(bus_t *b, const uint8_t *p, size_t n) {
  const uint8_t *nul = memchr(p, 0, n < BUS_NODE_ID_MAX + 1 ? n : BUS_NODE_ID_MAX + 1);
  if (!nul || n - (size_t)(nul - p) < 18) return;
  char id[BUS_NODE_ID_MAX + 1];
  memcpy(id, p, (size_t)(nul - p) + 1);
  if (!strcmp(id, b->node_id) || !*id) return;
  const uint8_t *h = nul + 1;
  uint64_t ep = be64(h), seq = be64(h + 8);
  char kind = (char)h[16];
  const uint8_t *ops = h + 17;
  size_t nops = n - (size_t)(ops - p);
  if (kind == 'b') {
    int slot = bus_node_slot(b, id, 0);
    if (slot >= 0) {
      log_at(LOG_INFO, "bus: node %s left", id);
      bus_node_forget(b, slot);
    }
    return;
  }
  if (kind == 'r') {                         /* a rewritten record: a new snapshot */
    if (b->resync) b->resync(b->resync_arg); /* its broadcasts while it was cut off were lost */
    int slot;
    if (bus_node_rewritten(b, id, ep, &slot)) request_snapshot(b, slot);
    return;
  }
  if (kind != 'd') return;
  int slot;
  if (bus_node_delta(b, id, ep, seq, ops, nops, &slot)) request_snapshot(b, slot);
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv) {
  rconn_t *c = priv;
  bus_t *b = c->b;
  rbus_t *r = RB(b);
  redisReply *m = reply;
  if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != 3) return;
  if (m->element[0]->type == REDIS_REPLY_STRING && strcmp(m->element[0]->str, "subscribe") == 0 &&
      m->element[2]->type == REDIS_REPLY_INTEGER && m->element[2]->integer == 3) {
    if (b->resync) b->resync(b->resync_arg); /* subscribed to all three: what came before is lost */
    r->sub_ready = 1;
    if (r->announce_pending && home_up(b)) announce(b); /* which drains */
    else drain_unheard(b);
    return;
  }
  if (m->element[0]->type != REDIS_REPLY_STRING || strcmp(m->element[0]->str, "message") != 0) return;
  const char *ch = m->element[1]->str;
  const uint8_t *p = (const uint8_t *)m->element[2]->str;
  size_t n = m->element[2]->len;
  if (!strcmp(ch, r->ch_ev)) {
    on_event(b, p, n);
    return;
  }
  /* a delivery or a broadcast: sender id '\0' payload */
  const uint8_t *nul = memchr(p, 0, n < BUS_NODE_ID_MAX + 1 ? n : BUS_NODE_ID_MAX + 1);
  if (!nul) return;
  if ((size_t)(nul - p) == strlen(b->node_id) && !memcmp(p, b->node_id, (size_t)(nul - p))) return; /* our own */
  if ((size_t)(nul - p) + 1 == n) { /* another node's notice: clients of this node missed a delivery */
    if (!strcmp(ch, r->ch_me)) drain_unheard(b);
    return;
  }
  atomic_fetch_add(&b->m_recv, 1);
  if (b->recv) b->recv(b->recv_arg, nul + 1, n - (size_t)(nul - p) - 1);
}

/* The home connection is up and the subscriber has its channels: this node may be known
 * again. Not before the subscription: a node that hears of this one (its record, its
 * registry entry) sends to its channel at once, and Redis drops what is published to a
 * channel nobody is subscribed to — the two connections reconnect on backoffs of their
 * own, seconds apart after a long outage. */
static void announce(bus_t *b) {
  rbus_t *r = RB(b);
  rconn_t *c = &r->cmd[BUS_HOME_WORKER];
  r->announce_pending = 0;
  if (b->leaving) return;
  /* Redis may be back empty: the others are not pushed to until this node's registry poll
   * on this connection sees them again (bus_nodes_suspend), and before `up` lets the
   * workers send (rb_send) */
  bus_nodes_suspend(b);
  atomic_store(&b->up, 1);
  log_at(LOG_INFO, "bus: connected to redis %s:%d as node %s", r->host, r->port, b->node_id);
  for (int i = 0; i < BUS_MAX_NODES; i++)
    if (b->nodes[i].used) b->nodes[i].synced = 0;
  write_record(b); /* its answer lets the heartbeat thread register this node (exec_cb) */
  /* and registered at once, behind the record on this connection: a node that hears of this
   * one finds its record, and the registry has it again as soon as this node is back
   * (another that polls it first would drop this node's sessions); the thread beats on */
  char val[1100];
  int n = hb_value(b, val, sizeof val);
  redisAsyncCommand(c->ac, count_cb, b, "SET %s %b PX %d", r->key_hb, val, (size_t)n, HB_TTL_MS);
  redisAsyncCommand(c->ac, count_cb, b, "SADD %s %s", r->key_nodes, b->node_id);
  poll_others(b);
  drain_unheard(b); /* the subscriber has its channels (what was recorded meanwhile) */
  r->announced = 1; /* after that drain: the first one of a run drops what a previous run left */
}

static void on_up(rconn_t *c) {
  bus_t *b = c->b;
  rbus_t *r = RB(b);
  if (c->kind == K_SUB) {
    atomic_store(&r->sub_fd, c->ac->c.fd);
    /* whatever was published while it was away is lost: every replica is taken again */
    for (int i = 0; i < BUS_MAX_NODES; i++)
      if (b->nodes[i].used) b->nodes[i].synced = 0;
    redisAsyncCommand(c->ac, sub_cb, c, "SUBSCRIBE %s %s %s", r->ch_ev, r->ch_me, r->ch_all);
    return;
  }
  if (c->idx != BUS_HOME_WORKER) return;
  r->announce_pending = 1;
  if (r->sub_ready) announce(b); /* else once subscribed (sub_cb) */
}

/* ---------------------------------------------------------------- workers */

static void rb_worker_start(bus_t *b, int idx, uv_loop_t *loop) {
  rbus_t *r = RB(b);
  conn_init(b, &r->cmd[idx], idx, K_CMD, loop);
  if (idx != BUS_HOME_WORKER) return;
  conn_init(b, &r->sub, idx, K_SUB, loop);
  uv_timer_init(loop, &r->hb);
  r->hb.data = b;
  uv_timer_start(&r->hb, on_hb, HB_MS, HB_MS);
  r->hb_started = 1;
  atomic_store(&r->loop_ms, mono_ms());
  if (pthread_create(&r->hb_thread, NULL, hb_main, b) != 0) {
    log_at(LOG_ERROR, "bus: cannot start the heartbeat thread: the other nodes will not see this node");
  } else {
    pthread_setname_np(r->hb_thread, "tern-hb");
    r->hb_thread_started = 1;
  }
  const char *e = getenv("TERN_TEST_STALL_HOME_MS"); /* tests only: on_stall */
  long ms = e ? strtol(e, NULL, 10) : 0;
  if (ms > 0 && ms <= 600000) {
    r->stall_ms = (int)ms;
    uv_signal_init(loop, &r->stall);
    r->stall.data = r;
    uv_signal_start(&r->stall, on_stall, SIGUSR2);
    uv_unref((uv_handle_t *)&r->stall);
  }
}

static void conn_stop(rconn_t *c) {
  if (!c->started) return;
  if (c->kind == K_SUB) atomic_store(&RB(c->b)->sub_fd, -1);
  c->stopping = 1;
  uv_timer_stop(&c->retry);
  if (c->up_delay_init) uv_timer_stop(&c->up_delay);
  if (c->ac && c->state == C_UP) {
    redisAsyncDisconnect(c->ac); /* after the replies to what is queued (the goodbye) */
    uv_timer_start(&c->retry, on_retry, STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&c->retry);
  } else if (c->ac) {
    redisAsyncFree(c->ac);
    c->ac = NULL;
  }
  /* the loop closes the timer with its other handles once the context is gone */
}

typedef struct {
  bus_t *b;
  void (*done)(bus_t *b);
} bye_t;

static void bye_cb(redisAsyncContext *ac, void *reply, void *priv) {
  bye_t *y = priv;
  count_cb(ac, reply, y->b);
  if (y->done) y->done(y->b);
  free(y);
}

/* The goodbye, once: record, heartbeat and registry entry go at once and the others are
 * told; from then on nothing of this node's presence is published. On the home worker,
 * which it blocks for the heartbeat thread's last beat at most (hb_thread_stop). */
static void rb_leave(bus_t *b, void (*done)(bus_t *b)) {
  rbus_t *r = RB(b);
  int already = b->leaving;
  atomic_store(&r->rec_live, 0);
  hb_thread_stop(r); /* no SET or SADD of the heartbeat thread lands after the DEL and SREM below */
  if (!already && home_up(b)) {
    redisAsyncContext *ac = r->cmd[BUS_HOME_WORKER].ac;
    buf_t m = BUF_INIT;
    ev_header(&m, b, r->epoch, r->seq + 1, 'b');
    redisAsyncCommand(ac, NULL, NULL, "MULTI");
    redisAsyncCommand(ac, NULL, NULL, "DEL %s %s", r->key_rec, r->key_hb);
    redisAsyncCommand(ac, NULL, NULL, "SREM %s %s", r->key_nodes, b->node_id);
    redisAsyncCommand(ac, NULL, NULL, "PUBLISH %s %b", r->ch_ev, m.data, m.len);
    bye_t *y = xmalloc(sizeof *y);
    y->b = b;
    y->done = done;
    redisAsyncCommand(ac, bye_cb, y, "EXEC");
    buf_free(&m);
    log_at(LOG_INFO, "bus: node %s left the cluster", b->node_id);
    done = NULL;
  }
  pthread_mutex_lock(&b->mu); /* read under it by bus_presence_add on every worker */
  b->leaving = 1;
  pthread_mutex_unlock(&b->mu);
  bus_drop_ops(b);
  bus_release(b, bus_ticket(b), 1); /* held replies go out; later ones are not held (bus_wait) */
  atomic_store(&b->up, 0);
  if (r->hb_started) uv_timer_stop(&r->hb);
  if (done) done(b); /* nothing sent: nothing to wait for */
}

static void rb_worker_stop(bus_t *b, int idx) {
  rbus_t *r = RB(b);
  if (idx == BUS_HOME_WORKER) {
    rb_leave(b, NULL);
    conn_stop(&r->sub);
  }
  conn_stop(&r->cmd[idx]);
}

/* ---------------------------------------------------------------- sending, claims */

/* The calling worker's command connection, or NULL (not a worker thread). */
static rconn_t *worker_conn(bus_t *b) {
  int idx = worker_current();
  return idx >= 0 && idx < b->nworkers ? &RB(b)->cmd[idx] : NULL;
}

static int rb_send(bus_t *b, const char *to, const uint8_t *p, size_t n, const char *const *clients, size_t nclients,
                   int keep) {
  rbus_t *r = RB(b);
  rconn_t *c = worker_conn(b);
  /* and the home connection up: until it is back (and its poll has seen the recipient's
   * node again, bus_nodes_suspend) the replica may name a node that an emptied Redis does
   * not hold yet, and the poll would drop it after this push got through */
  if (!c || !c->started || c->state != C_UP || !c->ac || c->stopping || !atomic_load(&b->up)) {
    atomic_fetch_add(&b->m_errors, 1);
    return TERN_EIO;
  }
  char ch[160];
  if (to) snprintf(ch, sizeof ch, "%sto:%s", r->prefix, to);
  else snprintf(ch, sizeof ch, "%s", r->ch_all);
  size_t il = strlen(b->node_id) + 1;
  const char *argv[3] = {"PUBLISH", ch, NULL};
  size_t lens[3] = {7, strlen(ch), il + n};
  char *msg = xmalloc(il + n);
  memcpy(msg, b->node_id, il);
  memcpy(msg + il, p, n);
  argv[2] = msg;
  unheard_t *u = NULL;
  if (to && (nclients || (keep && n))) {
    size_t len = 0;
    for (size_t i = 0; i < nclients; i++) len += strlen(clients[i]) + 1;
    size_t mlen = nclients ? 0 : n; /* a kept message: its payload, without the sender's id */
    u = xmalloc(sizeof *u + len + mlen);
    u->b = b;
    snprintf(u->to, sizeof u->to, "%s", to);
    u->n = nclients;
    u->ilen = len;
    u->mlen = mlen;
    char *q = u->ids;
    for (size_t i = 0; i < nclients; i++) {
      size_t l = strlen(clients[i]) + 1;
      memcpy(q, clients[i], l);
      q += l;
    }
    if (mlen) memcpy(q, p, mlen);
  }
  if (u) {
    if (redisAsyncCommandArgv(c->ac, deliver_cb, u, 3, argv, lens) != REDIS_OK) free(u); /* never answered */
  } else {
    redisAsyncCommandArgv(c->ac, to ? publish_cb : count_cb, b, 3, argv, lens);
  }
  free(msg);
  atomic_fetch_add(&b->m_sent, 1);
  return 0;
}

static void rb_write_out(bus_t *b) {
  rconn_t *c = worker_conn(b);
  if (c && c->state == C_UP && c->ac) uvredis_write_now(c->ac);
}

typedef struct {
  task_t task; /* when the bus could not be asked: the answer runs as a task */
  bus_t *b;
  bus_claim_cb cb;
  void *arg;
} claim_t;

static void claim_cb(redisAsyncContext *ac, void *reply, void *priv) {
  claim_t *k = priv;
  redisReply *r = reply;
  int res;
  if (!r || r->type == REDIS_REPLY_ERROR) {
    atomic_fetch_add(&k->b->m_errors, 1);
    res = TERN_EIO;
  } else {
    res = r->type == REDIS_REPLY_STATUS; /* OK: claimed now; nil: someone had it */
  }
  k->cb(k->arg, res);
  free(k);
}

static void claim_failed_run(task_t *t) {
  claim_t *k = (claim_t *)t;
  k->cb(k->arg, TERN_EIO);
  free(k);
}

static void rb_claim(bus_t *b, const char *key, int64_t ttl_ms, bus_claim_cb cb, void *arg) {
  rbus_t *r = RB(b);
  int idx = worker_current();
  rconn_t *c = worker_conn(b);
  claim_t *k = xcalloc(1, sizeof *k);
  k->b = b;
  k->cb = cb;
  k->arg = arg;
  if (!c || !c->started || c->state != C_UP || !c->ac || c->stopping) {
    atomic_fetch_add(&b->m_errors, 1);
    k->task.fn = claim_failed_run;
    b->post(b->post_arg, idx >= 0 ? idx : BUS_HOME_WORKER, &k->task);
    return;
  }
  redisAsyncCommand(c->ac, claim_cb, k, "SET %sc:%s 1 NX PX %lld", r->prefix, key, (long long)ttl_ms);
}

/* ---------------------------------------------------------------- fences */

static int rb_pending(bus_t *b) {
  rbus_t *r = RB(b);
  if (atomic_load(&r->sub_busy)) return 1; /* read, maybe not yet applied */
  int fd = atomic_load(&r->sub_fd), n = 0;
  /* the fd is read racily (a reconnect may change it): at worst one needless fence, or one
   * missed across a reconnect, which drops every replica anyway */
  return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

/* hiredis reads the socket 16 KiB at a time; a fence reads at most this many times */
#define DRAIN_READ_BYTES (16 * 1024)
#define DRAIN_MAX_READS 128

static void rb_drain(bus_t *b) {
  rbus_t *r = RB(b);
  /* Every byte in the socket now, and no more: a read takes min(what is there, 16 KiB),
   * so ceil(n / 16 KiB) reads take the n bytes there at the start (whatever arrives meanwhile
   * queues behind them) — not a loop that traffic arriving meanwhile could keep going. What
   * was in the socket when the fence was asked is among them (it was read since, or is
   * still in front). Bounded at DRAIN_MAX_READS (2 MiB: a subscriber that far behind is
   * past what a fence makes exact, docs/cluster.md "What is left"). */
  int fd = atomic_load(&r->sub_fd), n = 0;
  if (fd < 0 || ioctl(fd, FIONREAD, &n) != 0 || n < 0) n = 0;
  int reads = n > 0 ? (n + DRAIN_READ_BYTES - 1) / DRAIN_READ_BYTES : 0;
  if (reads > DRAIN_MAX_READS) reads = DRAIN_MAX_READS;
  for (int i = 0; i < reads && r->sub.started && r->sub.ac && r->sub.state == C_UP && rb_pending(b); i++) {
    atomic_store(&r->sub_busy, 1);
    redisAsyncHandleRead(r->sub.ac);
    atomic_store(&r->sub_busy, 0);
  }
}

const bus_backend_t bus_redis_backend = {
    .pending = rb_pending,
    .drain = rb_drain,
    .scheme = "redis",
    .open = rb_open,
    .free = rb_free,
    .worker_start = rb_worker_start,
    .worker_stop = rb_worker_stop,
    .send = rb_send,
    .claim = rb_claim,
    .flush = rb_flush,
    .write_out = rb_write_out,
    .leave = rb_leave,
};
