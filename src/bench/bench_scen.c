/* bench_scen.c — what the simulated clients do: the scenarios, as steps and a run loop.
 *
 * The layout (who talks to whom) is fixed beforehand by bench_plan.c. Each step
 * (log in, create, join, fill, run) is started on every thread by scen_step() and counted
 * down with step_progress(); the main thread moves on when all threads are done.
 *
 * The run: in flat-out mode (--rate 0) every stream keeps --window messages unacked and
 * sends the next one when an ack comes back. With --rate R each thread sends its share on
 * a fixed schedule checked every millisecond, and stamps every message with the time the
 * schedule wanted it sent, not the time it left: a generator or server that falls behind
 * shows up as latency instead of being hidden (coordinated omission, as wrk2 avoids it).
 * Receivers record each stream's sequence numbers in a bitmap (exact loss and duplicate
 * counts), the latency of each message sent inside the measured window, and ack like the
 * JS SDK: one {cid, fromts, tots} per conversation per --ack-ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "lc.pb-c.h"
#include "timeutil.h"

#define PAYLOAD_HDR 42 /* "TB" + stream(8) + slot(4) + seq(12) + stamp(16), hex */

uint32_t rng_next(bthread_t *th) {
  uint64_t x = th->rng; /* xorshift64*: masks and keys, not secrets */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  th->rng = x;
  return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

static int in_window(uint64_t t) { return t >= bench.t_measure && t < bench.t_end; }

void step_progress(bthread_t *th, int delta) {
  uint64_t left = CNT_GET(th->cnt.step_pending) + (uint64_t)(int64_t)delta;
  CNT_ADD(th->cnt.step_pending, (uint64_t)(int64_t)delta);
  if (delta < 0 && left == 0) atomic_fetch_add(&bench.step_done, 1);
}

static void step_begin(bthread_t *th, uint64_t units) {
  atomic_store(&th->cnt.step_pending, units);
  if (!units) atomic_fetch_add(&bench.step_done, 1);
}

/* ---------------------------------------------------------------- encoding */

static const char hexd[] = "0123456789abcdef";

static void put_hex(char *out, uint64_t v, int digits) {
  for (int k = digits - 1; k >= 0; k--) {
    out[k] = hexd[v & 15];
    v >>= 4;
  }
}

static int get_hex(const uint8_t *p, int digits, uint64_t *out) {
  uint64_t v = 0;
  for (int k = 0; k < digits; k++) {
    uint8_t ch = p[k];
    unsigned d;
    if (ch >= '0' && ch <= '9') d = ch - '0';
    else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    else return -1;
    v = v << 4 | d;
  }
  *out = v;
  return 0;
}

typedef struct {
  uint64_t stream, slot, seq, stamp;
} payload_t;

static int parse_payload(const uint8_t *p, size_t n, payload_t *out) {
  if (n < PAYLOAD_HDR || p[0] != 'T' || p[1] != 'B') return -1;
  if (get_hex(p + 2, 8, &out->stream) || get_hex(p + 10, 4, &out->slot) || get_hex(p + 14, 12, &out->seq) ||
      get_hex(p + 26, 16, &out->stamp))
    return -1;
  return 0;
}

/* Which receiver slot a stream's messages land in: pairs and groups have one stream per
 * receiver, chat rooms one slot per sender (stream ids are 0..senders-1). */
static uint32_t recv_slot(const stream_t *s) { return bench.sc == SC_CHATROOM ? s->id : 0; }

static client_t *stream_sender(stream_t *s) {
  for (int k = 0; k < s->count; k++) {
    client_t *c = &bench.clients[s->sender];
    if (c->state == C_READY) return c;
    s->sender = s->first + (s->sender - s->first + 1) % s->count;
  }
  return NULL;
}

/* Sends the next message of stream s. Returns 0 if its sender is not logged in. */
static int send_msg(bthread_t *th, stream_t *s, uint64_t stamp) {
  client_t *c = stream_sender(s);
  if (!c) return 0;
  conv_t *cv = &bench.convs[s->conv];
  size_t plen = (size_t)bench.o.payload;
  char payload[4096];
  payload[0] = 'T';
  payload[1] = 'B';
  put_hex(payload + 2, s->id, 8);
  put_hex(payload + 10, recv_slot(s), 4);
  put_hex(payload + 14, s->seq, 12);
  put_hex(payload + 26, stamp, 16);
  memset(payload + PAYLOAD_HDR, '.', plen - PAYLOAD_HDR);
  int32_t i = client_req(c, P_MSG, s->id, stamp);
  if (bench.mqtt) { /* pairs only: the peer is the other end of the pair */
    mqtt_send_publish(c, c->idx ^ 1, i, payload, plen);
    goto sent;
  }
  buf_t *b = &th->scratch;
  b->len = 0;
  pb_put_varint(b, 1, LC__COMMAND_TYPE__direct);
  pb_put_varint(b, 5, (uint64_t)i);
  size_t m = pb_begin(b, 104);
  pb_put_bytes(b, 1, payload, plen);
  pb_put_str(b, 11, cv->cid);
  if (bench.o.dt) { /* uuid-shaped, unique per stream and message (the JS SDK: message.id) */
    char dt[36];
    put_hex(dt, s->id, 8);
    memcpy(dt + 8, "-4b1d-8000-", 11);
    put_hex(dt + 19, s->seq >> 48, 4);
    dt[23] = '-';
    put_hex(dt + 24, s->seq, 12);
    pb_put_bytes(b, 14, dt, sizeof dt);
  }
  pb_end(b, m);
  client_send(c, b->data, b->len);
sent:
  s->seq++;
  s->inflight++;
  th->outstanding++;
  CNT_ADD(th->cnt.sent, 1);
  CNT_ADD(th->cnt.expected, (uint64_t)s->nrecv);
  if (in_window(stamp)) CNT_ADD(th->cnt.sent_m, 1);
  if (s->count > 1 && ++s->since_rotate >= (uint32_t)bench.o.rotate) { /* group: next member's turn */
    s->since_rotate = 0;
    s->sender = s->first + (s->sender - s->first + 1) % s->count;
  }
  return 1;
}

static void send_simple(client_t *c, int cmd, pend_kind_t kind, uint64_t stamp) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  pb_put_varint(b, 1, (uint64_t)cmd);
  pb_put_varint(b, 5, (uint64_t)client_req(c, kind, 0, stamp));
  client_send(c, b->data, b->len);
}

static void peer_id(char *out, size_t n, int idx) { snprintf(out, n, "%s%d", bench.prefix, idx); }

static void send_start(client_t *c, int conv) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  char id[64];
  pb_put_varint(b, 1, LC__COMMAND_TYPE__conv);
  pb_put_varint(b, 2, LC__OP_TYPE__start);
  pb_put_varint(b, 5, (uint64_t)client_req(c, P_START, (uint32_t)conv, mono_ns()));
  size_t m = pb_begin(b, 110);
  int lo = 0, hi = 0; /* members other than the creator: clients lo..hi-1 */
  switch (bench.sc) {
  case SC_PAIRS: lo = c->idx + 1, hi = c->idx + 2; break;
  case SC_GROUP: lo = c->idx + 1, hi = c->idx + (int)bench.o.group_size; break;
  case SC_HISTORY: lo = 1, hi = bench.nclients; break;
  default: break;
  }
  peer_id(id, sizeof id, c->idx);
  pb_put_str(b, 1, id);
  for (int k = lo; k < hi; k++) {
    peer_id(id, sizeof id, k);
    pb_put_str(b, 1, id);
  }
  if (bench.convs[conv].room) pb_put_varint(b, 2, 1);
  pb_put_varint(b, 3, 0);
  size_t a = pb_begin(b, 103);
  pb_put_str(b, 1, "{\"name\":\"tern-bench\"}");
  pb_end(b, a);
  pb_end(b, m);
  client_send(c, b->data, b->len);
}

static void send_join(client_t *c, int conv) {
  buf_t *b = &c->th->scratch;
  b->len = 0;
  char id[64];
  peer_id(id, sizeof id, c->idx);
  pb_put_varint(b, 1, LC__COMMAND_TYPE__conv);
  pb_put_varint(b, 2, LC__OP_TYPE__add);
  pb_put_varint(b, 5, (uint64_t)client_req(c, P_JOIN, (uint32_t)conv, mono_ns()));
  size_t m = pb_begin(b, 110);
  pb_put_str(b, 4, bench.convs[conv].cid);
  pb_put_str(b, 1, id);
  pb_end(b, m);
  client_send(c, b->data, b->len);
}

static void send_page(bthread_t *th, client_t *c, uint64_t stamp) {
  buf_t *b = &th->scratch;
  b->len = 0;
  pb_put_varint(b, 1, LC__COMMAND_TYPE__logs);
  pb_put_varint(b, 5, (uint64_t)client_req(c, P_LOGS, 0, stamp));
  size_t m = pb_begin(b, 109);
  pb_put_str(b, 1, bench.convs[0].cid);
  pb_put_varint(b, 2, (uint64_t)bench.o.page_size);
  if (c->page_t) {
    pb_put_varint(b, 4, (uint64_t)c->page_t);
    pb_put_str(b, 7, c->page_mid);
  }
  pb_end(b, m);
  client_send(c, b->data, b->len);
  c->want = 2; /* a page is outstanding */
  th->outstanding++;
  CNT_ADD(th->cnt.pages_sent, 1);
  if (in_window(stamp)) CNT_ADD(th->cnt.pages_sent_m, 1);
}

/* One client's acks: one per conversation it received something in since its last. */
static void send_acks(bthread_t *th, client_t *c) {
  if (c->state == C_READY)
    for (uint32_t r = 0; r < c->nrs; r++) {
      rstate_t *rs = &c->rs[r];
      if (!rs->ack_hi) continue;
      buf_t *b = &th->scratch;
      b->len = 0;
      pb_put_varint(b, 1, LC__COMMAND_TYPE__ack);
      size_t m = pb_begin(b, 105);
      pb_put_str(b, 4, bench.convs[bench.streams[rs->stream].conv].cid);
      pb_put_varint(b, 7, (uint64_t)rs->ack_lo);
      pb_put_varint(b, 8, (uint64_t)rs->ack_hi);
      pb_end(b, m);
      client_send(c, b->data, b->len);
      rs->ack_lo = rs->ack_hi = 0;
    }
}

/* Every client acks once per --ack-ms, client k of the thread at k/n of the period: spread
 * like the SDK's timers, one per client and not in step. (Until 2026-12-07 every client of a
 * thread acked in the same tick, a burst of ~500 frames and as many store jobs each second
 * that made its own stall, ~2x the p99 of the bins sent then: bench/README.md.) */
static void ack_spread(bthread_t *th, uint64_t now) {
  uint64_t period = (uint64_t)bench.o.ack_ms * 1000000u;
  if (!th->ack_start) th->ack_start = now;
  if (now - th->ack_start >= period) { /* the period is over: whoever is left acks, a new one begins */
    while (th->ack_next < th->nclients) send_acks(th, th->clients[th->ack_next++]);
    th->ack_start = now - th->ack_start >= 2 * period ? now : th->ack_start + period; /* far behind: start over */
    th->ack_next = 0;
  }
  int upto = (int)((uint64_t)th->nclients * (now - th->ack_start) / period);
  while (th->ack_next < upto && th->ack_next < th->nclients) send_acks(th, th->clients[th->ack_next++]);
}

/* ---------------------------------------------------------------- logging in */

static int login_cap(bthread_t *th) {
  int cap = (int)(bench.o.connect_window / bench.nthreads);
  return cap < 1 ? 1 : cap;
}

static void start_login(bthread_t *th, client_t *c, uint64_t stamp) {
  c->t_login = stamp;
  c->want = 1;
  th->connecting++;
  client_connect(c);
}

/* Setup: log in this thread's clients of the current set, --connect-window at a time. */
static int in_login_set(const client_t *c, step_t step) {
  if (bench.sc == SC_HISTORY) return step == STEP_CONNECT_A ? c->idx == 0 : c->idx != 0;
  return 1;
}

static void connect_more(bthread_t *th) {
  step_t step = (step_t)atomic_load(&bench.step);
  while (th->connecting < login_cap(th) && th->next_connect < th->nclients) {
    client_t *c = th->clients[th->next_connect++];
    if (c->state == C_IDLE && in_login_set(c, step)) start_login(th, c, mono_ns());
  }
}

/* Login storm: each attempt is connect + upgrade + session open; a finished client is
 * reset (RST, so no TIME_WAIT piles up) and becomes free for the next attempt. */
static void storm_attempt(bthread_t *th, client_t *c, uint64_t stamp) {
  th->outstanding++;
  CNT_ADD(th->cnt.sent, 1);
  if (in_window(stamp)) CNT_ADD(th->cnt.sent_m, 1);
  start_login(th, c, stamp);
}

static client_t *idle_client(bthread_t *th) {
  for (int k = 0; k < th->nclients; k++) {
    client_t *c = th->clients[th->rr++ % th->nclients];
    if (c->state == C_IDLE) return c;
  }
  return NULL;
}

void scen_ready(client_t *c, uint64_t now) {
  bthread_t *th = c->th;
  c->state = C_READY;
  c->want = 0;
  c->logins++;
  th->connecting--;
  CNT_ADD(th->cnt.ready, 1);
  step_t step = (step_t)atomic_load(&bench.step);
  if (step == STEP_RUN && bench.sc == SC_LOGIN) {
    th->outstanding--;
    CNT_ADD(th->cnt.logins, 1);
    if (in_window(c->t_login)) {
      CNT_ADD(th->cnt.logins_m, 1);
      hist_add(&th->lat, now - c->t_login);
    }
    client_reset(c);
    return;
  }
  CNT_ADD(th->cnt.logins, 1);
  if (step == STEP_CONNECT_A || step == STEP_CONNECT_B) {
    step_progress(th, -1);
    connect_more(th);
  }
}

void scen_settle(client_t *c, pend_t *p) {
  bthread_t *th = c->th;
  if (p->kind == P_MSG) {
    bench.streams[p->arg].inflight--;
    th->outstanding--;
    CNT_ADD(th->cnt.unacked, 1);
  } else if (p->kind == P_LOGS) {
    th->outstanding--;
  } else if (p->kind == P_ECHO) {
    th->echo_pending--;
  } else if ((p->kind == P_START || p->kind == P_JOIN) && atomic_load(&bench.step) != STEP_STOP) {
    bench_fail("client %d lost its connection while creating or joining a conversation", c->idx);
  }
  p->kind = P_NONE;
}

/* A connection is gone (closed by us or by the server): settle what it had pending. */
void scen_lost(client_t *c) {
  bthread_t *th = c->th;
  for (uint32_t k = 0; k < c->pcap && c->npend; k++) {
    if (!c->pend[k].kind) continue;
    scen_settle(c, &c->pend[k]);
    c->npend--;
  }
  c->npend = 0;
  step_t step = (step_t)atomic_load(&bench.step);
  if (bench.sc == SC_LOGIN && step == STEP_RUN && c->state == C_DEAD) c->state = C_IDLE; /* storms retry */
  if (c->want == 2) c->want = 0;
  if (c->want == 1) { /* a login attempt failed */
    c->want = 0;
    th->connecting--;
    if (step == STEP_CONNECT_A || step == STEP_CONNECT_B) {
      step_progress(th, -1);
      connect_more(th);
    } else if (step == STEP_RUN && bench.sc == SC_LOGIN) {
      th->outstanding--;
    }
  }
  if (step == STEP_RUN && bench.sc == SC_LOGIN && th->sending && bench.o.rate <= 0 && c->state == C_IDLE)
    storm_attempt(th, c, mono_ns());
}

/* ---------------------------------------------------------------- steps */

static void run_begin(bthread_t *th) {
  th->sending = 1;
  th->drained = 0;
  th->sched = 0;
  step_begin(th, 1);            /* done when this thread has stopped sending and drained */
  if (bench.o.rate > 0) return; /* the tick paces everything */
  uint64_t now = mono_ns();
  switch (bench.sc) {
  case SC_PAIRS:
  case SC_GROUP:
  case SC_CHATROOM:
    for (int k = 0; k < th->nstreams; k++)
      for (long w = 0; w < bench.o.window; w++)
        if (!send_msg(th, &bench.streams[th->streams[k]], now)) break;
    break;
  case SC_HISTORY:
    for (int k = 0; k < th->nclients; k++)
      if (th->clients[k]->state == C_READY) send_page(th, th->clients[k], now);
    break;
  case SC_LOGIN: {
    int cap = login_cap(th);
    for (int k = 0; k < th->nclients && k < cap; k++) storm_attempt(th, th->clients[k], now);
    break;
  }
  case SC_IDLE: break;
  }
}

void scen_step(bthread_t *th, step_t step) {
  switch (step) {
  case STEP_CONNECT_A:
  case STEP_CONNECT_B: {
    uint64_t units = 0;
    for (int k = 0; k < th->nclients; k++) units += in_login_set(th->clients[k], step);
    th->next_connect = 0;
    step_begin(th, units);
    if (units) connect_more(th);
    break;
  }
  case STEP_CREATE: {
    uint64_t units = 0;
    for (int k = 0; k < bench.nconvs; k++) units += bench.clients[bench.convs[k].creator].th == th;
    step_begin(th, units);
    for (int k = 0; k < bench.nconvs; k++) {
      client_t *c = &bench.clients[bench.convs[k].creator];
      if (c->th != th) continue;
      if (c->state == C_READY) send_start(c, k);
      else bench_fail("creator %d of conversation %d is not logged in", c->idx, k);
    }
    break;
  }
  case STEP_JOIN: {
    uint64_t units = 0;
    for (int k = 0; k < th->nclients; k++) units += th->clients[k]->idx != bench.convs[0].creator;
    step_begin(th, units);
    for (int k = 0; k < th->nclients; k++) {
      client_t *c = th->clients[k];
      if (c->idx == bench.convs[0].creator) continue;
      if (c->state == C_READY) send_join(c, 0);
      else step_progress(th, -1);
    }
    break;
  }
  case STEP_FILL: {
    int mine = bench.nstreams && bench.streams[0].owner == th->idx;
    step_begin(th, mine);
    if (mine) {
      th->sending = 1;
      for (long w = 0; w < bench.o.window && bench.streams[0].seq < (uint64_t)bench.o.history_messages; w++)
        if (!send_msg(th, &bench.streams[0], mono_ns())) break;
      if (!bench.streams[0].inflight) {
        bench_fail("the history filler is not logged in");
        step_progress(th, -1);
      }
    }
    break;
  }
  case STEP_RUN: run_begin(th); break;
  case STEP_STOP:
    th->sending = 0;
    for (int k = 0; k < th->nclients; k++) client_close(th->clients[k]);
    break;
  case STEP_NONE: break;
  }
}

/* ---------------------------------------------------------------- pacing */

static void pace(bthread_t *th, uint64_t now) {
  int units = bench.sc == SC_HISTORY || bench.sc == SC_LOGIN ? th->nclients : th->nstreams;
  int total = bench.sc == SC_HISTORY || bench.sc == SC_LOGIN ? bench.nclients : bench.nstreams;
  if (!units || !total) return;
  double rate = bench.o.rate * units / total; /* this thread's share */
  double period = 1e9 / rate;
  uint64_t due = (uint64_t)((double)(now - bench.t_run) / period) + 1;
  while (th->sched < due) {
    uint64_t stamp = bench.t_run + (uint64_t)((double)th->sched * period);
    int sent = 0;
    if (bench.sc == SC_LOGIN) {
      client_t *c = th->connecting < login_cap(th) ? idle_client(th) : NULL;
      if (c) {
        storm_attempt(th, c, stamp);
        sent = 1;
      }
    } else if (bench.sc == SC_HISTORY) {
      for (int k = 0; k < th->nclients && !sent; k++) {
        client_t *c = th->clients[th->rr++ % th->nclients];
        if (c->state == C_READY && !c->want) {
          send_page(th, c, stamp);
          sent = 1;
        }
      }
    } else {
      for (int k = 0; k < th->nstreams && !sent; k++) {
        stream_t *s = &bench.streams[th->streams[th->rr++ % th->nstreams]];
        if (s->inflight < (uint32_t)bench.o.window) sent = send_msg(th, s, stamp);
      }
    }
    if (!sent) break; /* every sender is at its window: what is due waits, and its latency grows */
    if (in_window(stamp) && now > stamp) hist_add(&th->lag, now - stamp);
    th->sched++;
  }
}

void scen_tick(bthread_t *th, uint64_t now) {
  if (bench.o.ack_ms > 0) ack_spread(th, now);
  if (atomic_load(&bench.step) != STEP_RUN || th->drained) return;
  if (th->sending && now >= bench.t_end) th->sending = 0;
  if (th->sending && bench.o.rate > 0) pace(th, now);
  if (!th->sending &&
      ((th->outstanding == 0 && th->echo_pending == 0) || now >= bench.t_end + (uint64_t)(bench.o.drain * 1e9))) {
    th->drained = 1;
    step_progress(th, -1);
  }
}

void scen_slow_tick(bthread_t *th, uint64_t now) {
  long every = bench.o.echo_s;
  step_t step = (step_t)atomic_load(&bench.step);
  if (every <= 0 || step == STEP_STOP || (step == STEP_RUN && !th->sending)) return; /* none once draining */
  uint64_t slot = th->slow_ticks++ % (uint64_t)every;
  for (int k = 0; k < th->nclients; k++) { /* spread: each client echoes in its own second */
    client_t *c = th->clients[k];
    if (c->state == C_READY && (uint64_t)c->idx % (uint64_t)every == slot && c->logins && th->slow_ticks > 1) {
      send_simple(c, LC__COMMAND_TYPE__echo, P_ECHO, now);
      th->echo_pending++;
      CNT_ADD(th->cnt.echoes, 1);
    }
  }
}

/* ---------------------------------------------------------------- receiving */

static void on_direct(client_t *c, const uint8_t *p, size_t n, uint64_t now) {
  pb_rd_t r = {p, p + n};
  pb_field_t f;
  const uint8_t *msg = NULL;
  size_t mlen = 0;
  int64_t ts = 0;
  while (pb_next(&r, &f) > 0) {
    if (f.field == 1 && f.wt == 2) msg = f.d, mlen = f.n;
    else if (f.field == 4 && f.wt == 0) ts = (int64_t)f.v;
  }
  scen_delivered(c, msg, mlen, ts, now);
}

void scen_delivered(client_t *c, const uint8_t *msg, size_t mlen, int64_t ts, uint64_t now) {
  bthread_t *th = c->th;
  payload_t pl;
  if (!msg || parse_payload(msg, mlen, &pl) < 0 || pl.slot >= c->nrs || c->rs[pl.slot].stream != pl.stream) {
    CNT_ADD(th->cnt.foreign, 1);
    return;
  }
  rstate_t *rs = &c->rs[pl.slot];
  uint64_t word = pl.seq >> 6, bit = 1ull << (pl.seq & 63);
  if (word >= rs->nwords) {
    uint32_t nw = rs->nwords ? rs->nwords : 16;
    while (nw <= word) nw *= 2;
    rs->bits = xrealloc(rs->bits, nw * sizeof *rs->bits);
    memset(rs->bits + rs->nwords, 0, (nw - rs->nwords) * sizeof *rs->bits);
    rs->nwords = nw;
  }
  if (rs->bits[word] & bit) {
    CNT_ADD(th->cnt.dup, 1);
    return;
  }
  rs->bits[word] |= bit;
  rs->uniq++;
  CNT_ADD(th->cnt.delivered, 1);
  if (in_window(pl.stamp)) {
    CNT_ADD(th->cnt.delivered_m, 1);
    if (now > pl.stamp) hist_add(&th->lat, now - pl.stamp);
  }
  if (th->tl.nbins && now > pl.stamp && pl.stamp >= bench.t_run)
    tl_add(&th->tl, pl.stamp - bench.t_run, now - pl.stamp);
  if (ts && !bench.convs[bench.streams[pl.stream].conv].room) { /* chat rooms are never acked */
    if (!rs->ack_lo || ts < rs->ack_lo) rs->ack_lo = ts;
    if (ts > rs->ack_hi) rs->ack_hi = ts;
  }
}

/* One logs reply: check order and continuity, advance the backwards walk. */
static void on_page(client_t *c, const pend_t *pd, const cmd_view_t *v, uint64_t now) {
  bthread_t *th = c->th;
  c->want = 0;
  th->outstanding--;
  CNT_ADD(th->cnt.pages, 1);
  if (in_window(pd->t)) {
    CNT_ADD(th->cnt.pages_m, 1);
    hist_add(&th->lat, now - pd->t);
  }
  uint64_t total = bench.history_n;
  if (!c->walk_bits) c->walk_bits = xcalloc((total + 63) / 64 + 1, sizeof *c->walk_bits);
  pb_rd_t r = {v->sub, v->sub + v->sub_len};
  pb_field_t f;
  int items = 0;
  int64_t prev_ts = 0;
  while (v->cmd == LC__COMMAND_TYPE__logs && pb_next(&r, &f) > 0) {
    if (f.field != 105 || f.wt != 2) continue;
    pb_rd_t ir = {f.d, f.d + f.n};
    pb_field_t g;
    int64_t ts = 0;
    const uint8_t *mid = NULL, *data = NULL;
    size_t midn = 0, datan = 0;
    while (pb_next(&ir, &g) > 0) {
      if (g.field == 3 && g.wt == 0) ts = (int64_t)g.v;
      else if (g.field == 4 && g.wt == 2) mid = g.d, midn = g.n;
      else if (g.field == 2 && g.wt == 2) data = g.d, datan = g.n;
    }
    if (items == 0) { /* the oldest item is where the next page starts */
      c->page_t = ts;
      size_t k = midn < sizeof c->page_mid - 1 ? midn : sizeof c->page_mid - 1;
      memcpy(c->page_mid, mid ? (const char *)mid : "", k);
      c->page_mid[k] = 0;
    }
    if (ts < prev_ts) CNT_ADD(th->cnt.errors, 1); /* pages must be ascending */
    prev_ts = ts;
    items++;
    payload_t pl;
    if (data && parse_payload(data, datan, &pl) == 0 && pl.seq < total) {
      uint64_t bit = 1ull << (pl.seq & 63);
      if (c->walk_bits[pl.seq >> 6] & bit) CNT_ADD(th->cnt.walk_dup, 1);
      c->walk_bits[pl.seq >> 6] |= bit;
      c->walk_seen++;
    } else {
      CNT_ADD(th->cnt.foreign, 1);
    }
  }
  if (v->cmd != LC__COMMAND_TYPE__logs) CNT_ADD(th->cnt.errors, 1);
  CNT_ADD(th->cnt.items, (uint64_t)items);
  if (items < bench.o.page_size) { /* reached the first message: the walk must have seen all */
    CNT_ADD(th->cnt.walks, 1);
    if (c->walk_seen < total) CNT_ADD(th->cnt.walk_lost, total - c->walk_seen);
    memset(c->walk_bits, 0, ((total + 63) / 64 + 1) * sizeof *c->walk_bits);
    c->walk_seen = 0;
    c->page_t = 0;
  }
  if (th->sending && bench.o.rate <= 0) send_page(th, c, now);
}

/* A message the server refused: its error code and reason on stderr (the first few per
 * thread), so a report's "errors" can be told apart (a storage failure, a rate limit). */
static void report_refusal(const cmd_view_t *v) {
  int code = 0;
  const uint8_t *reason = (const uint8_t *)"";
  size_t rlen = 0;
  if (v->cmd == LC__COMMAND_TYPE__error && v->sub_field == 103) {
    pb_rd_t r = {v->sub, v->sub + v->sub_len};
    pb_field_t f;
    while (pb_next(&r, &f) > 0) {
      if (f.field == 1 && f.wt == 0) code = (int)f.v;
      if (f.field == 2 && f.wt == 2) reason = f.d, rlen = f.n;
    }
  }
  fprintf(stderr, "tern-bench: a message was refused: cmd %d, code %d, %.*s\n", v->cmd, code,
          (int)(rlen > 200 ? 200 : rlen), (const char *)reason);
}

void scen_answered(client_t *c, const pend_t *pd, int ok, const cmd_view_t *v, uint64_t now) {
  bthread_t *th = c->th;
  stream_t *s = &bench.streams[pd->arg];
  s->inflight--;
  th->outstanding--;
  if (!ok) {
    if (CNT_GET(th->cnt.errors) < 3 && v) report_refusal(v);
    CNT_ADD(th->cnt.errors, 1);
  } else {
    CNT_ADD(th->cnt.acked, 1);
  }
  if (in_window(pd->t) && now > pd->t) hist_add(&th->ack_lat, now - pd->t);
  step_t step = (step_t)atomic_load(&bench.step);
  if (step == STEP_FILL) {
    if (s->seq < (uint64_t)bench.o.history_messages) send_msg(th, s, now);
    else if (!s->inflight) step_progress(th, -1);
  } else if (th->sending && bench.o.rate <= 0) {
    send_msg(th, s, now);
  }
}

static void on_reply(client_t *c, const cmd_view_t *v, uint64_t now) {
  bthread_t *th = c->th;
  pend_t pd;
  if (!client_pend_take(c, v->i, &pd)) {
    CNT_ADD(th->cnt.foreign, 1);
    return;
  }
  int is_error = v->cmd == LC__COMMAND_TYPE__error;
  switch (pd.kind) {
  case P_OPEN:
    if (v->cmd == LC__COMMAND_TYPE__session && v->op == LC__OP_TYPE__opened) {
      scen_ready(c, now);
    } else {
      bench_fail("login refused (cmd %d op %d): is --app-id right?", v->cmd, v->op);
      client_close(c);
    }
    break;
  case P_START:
    if (v->cmd == LC__COMMAND_TYPE__conv && v->op == LC__OP_TYPE__started) {
      pb_rd_t r = {v->sub, v->sub + v->sub_len};
      pb_field_t f;
      conv_t *cv = &bench.convs[pd.arg];
      while (pb_next(&r, &f) > 0)
        if (f.field == 4 && f.wt == 2 && f.n < sizeof cv->cid) {
          memcpy(cv->cid, f.d, f.n);
          cv->cid[f.n] = 0;
        }
      if (!cv->cid[0]) bench_fail("conv/started without a cid");
    } else {
      bench_fail("conversation start failed (cmd %d op %d)", v->cmd, v->op);
    }
    step_progress(th, -1);
    break;
  case P_JOIN:
    if (v->cmd != LC__COMMAND_TYPE__conv || v->op != LC__OP_TYPE__added)
      bench_fail("joining the chat room failed (cmd %d op %d)", v->cmd, v->op);
    step_progress(th, -1);
    break;
  case P_MSG: scen_answered(c, &pd, !is_error && v->cmd == LC__COMMAND_TYPE__ack, v, now); break;
  case P_LOGS: on_page(c, &pd, v, now); break;
  case P_ECHO:
    th->echo_pending--;
    CNT_ADD(th->cnt.echo_replies, 1);
    break;
  default: break;
  }
}

void scen_frame(client_t *c, const uint8_t *p, size_t n, uint64_t now) {
  cmd_view_t v;
  if (cmd_view(p, n, &v) < 0) {
    CNT_ADD(c->th->cnt.errors, 1);
    return;
  }
  if (v.has_i) {
    on_reply(c, &v, now);
    return;
  }
  if (v.cmd == LC__COMMAND_TYPE__direct && v.sub_field == 104) {
    on_direct(c, v.sub, v.sub_len, now);
    return;
  }
  if (v.cmd == LC__COMMAND_TYPE__session && v.op == LC__OP_TYPE__closed) { /* kicked */
    CNT_ADD(c->th->cnt.errors, 1);
    return;
  }
  /* conv joined / members_joined, unread, rcp: not what is measured */
}
