/* bench_plan.c — who talks to whom: clients, conversations, streams and threads, laid
 * out once before any worker thread starts.
 *
 * Everything decided here is read later from several threads without locks, so nothing
 * here changes after scen_plan() returns. The rule that keeps the hot path lock-free: a
 * stream is owned by the thread of its sender, and for pairs and groups every member of a
 * conversation lives on one thread (a group's rotating sender never changes thread). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void add_rstate(client_t *c, uint32_t stream) {
  c->rs = xrealloc(c->rs, (c->nrs + 1) * sizeof *c->rs);
  memset(&c->rs[c->nrs], 0, sizeof *c->rs);
  c->rs[c->nrs++].stream = stream;
}

static void thread_add_client(int t, client_t *c) {
  bthread_t *th = bench.threads[t];
  c->th = th;
  th->clients = xrealloc(th->clients, (size_t)(th->nclients + 1) * sizeof *th->clients);
  th->clients[th->nclients++] = c;
}

static stream_t *new_stream(int conv, int sender, int nrecv) {
  stream_t *s = &bench.streams[bench.nstreams];
  memset(s, 0, sizeof *s);
  s->id = (uint32_t)bench.nstreams++;
  s->conv = conv;
  s->sender = s->first = sender;
  s->count = 1;
  s->nrecv = nrecv;
  return s;
}

void scen_plan(void) {
  int n = bench.nclients, T = bench.nthreads;
  bench.clients = xcalloc((size_t)n, sizeof *bench.clients);
  for (int i = 0; i < n; i++) {
    bench.clients[i].idx = i;
    bench.clients[i].next_i = 1;
  }
  int *owner = xcalloc((size_t)n, sizeof *owner);
  for (int i = 0; i < n; i++) owner[i] = i % T;
  switch (bench.sc) {
  case SC_PAIRS:
    bench.nconvs = n / 2;
    bench.convs = xcalloc((size_t)bench.nconvs + 1, sizeof *bench.convs);
    bench.streams = xcalloc((size_t)n + 1, sizeof *bench.streams);
    for (int k = 0; k < bench.nconvs; k++) {
      bench.convs[k].creator = 2 * k;
      /* with several --url the two ends are on different nodes (2k and 2k+1 differ mod any
       * node count); --one-way: only the creator sends, for nodes on separate stores, where
       * the conversation is known only to its creator's node (docs/cluster.md) */
      for (int d = 0; d < (bench.o.one_way ? 1 : 2); d++) {
        stream_t *s = new_stream(k, 2 * k + d, 1);
        add_rstate(&bench.clients[2 * k + 1 - d], s->id);
        owner[2 * k + d] = k % T; /* both ends on one thread: streams stay thread-local */
      }
    }
    break;
  case SC_GROUP: {
    int g = (int)bench.o.group_size;
    bench.nconvs = n / g;
    bench.convs = xcalloc((size_t)bench.nconvs + 1, sizeof *bench.convs);
    bench.streams = xcalloc((size_t)bench.nconvs + 1, sizeof *bench.streams);
    for (int k = 0; k < bench.nconvs; k++) {
      bench.convs[k].creator = k * g;
      stream_t *s = new_stream(k, k * g, g - 1);
      s->count = g;
      for (int m = 0; m < g; m++) {
        add_rstate(&bench.clients[k * g + m], s->id);
        owner[k * g + m] = k % T; /* the rotating sender never leaves its thread */
      }
    }
    break;
  }
  case SC_CHATROOM: {
    int senders = (int)bench.o.senders < n ? (int)bench.o.senders : n;
    bench.nconvs = 1;
    bench.convs = xcalloc(1, sizeof *bench.convs);
    bench.convs[0].room = 1;
    bench.streams = xcalloc((size_t)senders, sizeof *bench.streams);
    for (int s = 0; s < senders; s++) new_stream(0, s, n - 1);
    for (int i = 0; i < n; i++)
      for (int s = 0; s < senders; s++) add_rstate(&bench.clients[i], (uint32_t)s);
    break;
  }
  case SC_HISTORY:
    bench.nconvs = 1;
    bench.convs = xcalloc(1, sizeof *bench.convs);
    bench.streams = xcalloc(1, sizeof *bench.streams);
    new_stream(0, 0, 0); /* the filler writes while every reader is still offline */
    break;
  case SC_IDLE:
  case SC_LOGIN: break;
  }
  for (int i = 0; i < n; i++) thread_add_client(owner[i], &bench.clients[i]);
  /* A thread paces its streams in turn (scen_tick). Pairs: every conversation's first end,
   * then every second end, so the two ends of one conversation send half a turn apart, as
   * two people do — side by side they sent within a fraction of a millisecond every time,
   * and a cluster's nodes then gave both the same millisecond in a fifth of all messages
   * (docs/cluster.md, "Message order across nodes": those are moved, on a slower path). */
  int passes = bench.sc == SC_PAIRS && !bench.o.one_way ? 2 : 1;
  for (int pass = 0; pass < passes; pass++)
    for (int s = pass; s < bench.nstreams; s += passes) {
      stream_t *st = &bench.streams[s];
      st->owner = owner[st->sender];
      bthread_t *th = bench.threads[st->owner];
      th->streams = xrealloc(th->streams, (size_t)(th->nstreams + 1) * sizeof *th->streams);
      th->streams[th->nstreams++] = s;
    }
  free(owner);
}
