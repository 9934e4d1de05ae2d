/* im_hold.c — a link's output held back. In a cluster, a reply that acknowledges a
 * presence change (a login, a logout, a chat-room join or quit; a block's `left` push to a
 * member it takes out of a room; the session/closed of a session the server ended, 4111
 * and 4115) waits until this node's
 * presence batch carrying the change is confirmed by Redis (bus_wait, bus.h): the other nodes then have the delta queued before
 * anything the client does next (docs/cluster.md, "The window").
 *
 * What waits is the link's output, not only the reply: from the reply on, every frame
 * for the link (later replies, pushes from any worker or node) is queued behind it, so the
 * peer sees them in the order they were sent — "session opened" before the login's unread
 * counts, a join's reply before the room's messages. One hold per link; a second change
 * while it waits moves its ticket forward (one waiter per link at a time).
 *
 * Bounds: the wait ends when Redis confirms, at once when the bus is down (the replies go
 * out with this node's state: the window is open while Redis is), and after at most
 * BUS_WAIT_MAX_MS + 1 s when Redis does not answer. A link's held frames are at most
 * HOLD_MAX_BYTES: past it the hold ends early and everything goes to the connection's
 * output queue, where output_limit applies. While held, the frames' bytes are l->held and
 * count in the per-address and server output budgets like the connection's queued output
 * (output_limit_ip, output_limit_total; ops->held tells net at each change): they move to
 * the queue when the hold ends and leave the budgets when written, or with the connection
 * when a budget drops it. A link that goes away frees its hold (net releases what it
 * counted when it reaps the connection); the waiter finds the link by handle, so it never
 * touches a freed one. With no bus, only a login's counts hold (below, "a login's
 * counts"; on SQLite they are read before the login's answer leaves), and a link with no
 * hold costs one NULL test per frame. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "log.h"

/* Prometheus lines (with im_bus_metrics). */
void im_hold_metrics(im_t *im, buf_t *out) {
  buf_printf(out,
             "# HELP tern_bus_held_replies_total Connections whose output waited for this node's presence change to "
             "be published (a login, logout, chat-room join or quit acknowledged), by how the wait ended (published: "
             "Redis confirmed; forced: the bus was down or did not answer within the bound; cut: the connection held "
             "too much).\n"
             "# TYPE tern_bus_held_replies_total counter\ntern_bus_held_replies_total{end=\"any\"} %lu\n"
             "tern_bus_held_replies_total{end=\"forced\"} %lu\ntern_bus_held_replies_total{end=\"cut\"} %lu\n",
             atomic_load(&im->holds[0]), atomic_load(&im->holds[1]), atomic_load(&im->holds[2]));
}

#define HOLD_MAX_BYTES (256 * 1024)

typedef struct {
  bus_wait_t wait;
  im_t *im;
  uint64_t link;
  uint64_t gen; /* of the hold it was made for */
} hold_wait_t;

static _Atomic uint64_t hold_gen;

struct im_hold {
  uint64_t gen;         /* a hold cut early and another made later are told apart */
  uint64_t ticket;      /* the changes the held frames wait for */
  int waiting;          /* a hold_wait_t is with the bus */
  int reading;          /* a login's counts hold the output (im_hold_read): until im_hold_read_end */
  store_read_t *queued; /* that read, still to be submitted when the bus wait ends */
  size_t mark;          /* where its frames go: the held output from here on follows them */
  buf_t q;              /* frames: u32 prefix length, u32 body length, prefix, body */
  buf_t tail;           /* between im_hold_read_out and _end: what q held from mark on */
};

static void put_u32(buf_t *b, uint32_t x) { buf_append(b, &x, sizeof x); }

/* The held bytes changed: net brings its output budgets to them. */
static void held_set(im_link_t *l, size_t n) {
  if (l->hold) n += l->hold->tail.len;
  l->held = n;
  if (l->ops->held) l->ops->held(l);
}

/* Sends what the link held, in order, and ends the hold: the bytes leave l->held for the
 * connection's queue, and are counted there (held_set once they are all in it). */
static void send_all(im_link_t *l, const buf_t *q) {
  size_t o = 0;
  while (o + 8 <= q->len) {
    uint32_t pl, bl;
    memcpy(&pl, q->data + o, 4);
    memcpy(&bl, q->data + o + 4, 4);
    o += 8;
    l->ops->send(l, q->data + o, pl, q->data + o + pl, bl);
    o += (size_t)pl + bl;
  }
}

static log_limit_t read_full_log;

void im_hold_read_submit(im_worker_t *w, store_read_t *rd) {
  if (store_read_submit(w->im->store, w->reader, rd) < 0) { /* the server's read queue is full */
    log_limited(&read_full_log, LOG_WARN, "read queue full: a login's counts are read on the worker's loop");
    rd->result = rd->fn(w->reader, rd);
    rd->task.fn(&rd->task);
  }
}

/* A hold cut early (HOLD_MAX_BYTES) while its read waited for the bus: the read goes on,
 * unheld (its frames go out when read, after what went out now). */
static void hold_flush(im_link_t *l) {
  struct im_hold *h = l->hold;
  store_read_t *queued = h->queued;
  l->hold = NULL;
  l->held = 0;
  send_all(l, &h->q);
  send_all(l, &h->tail); /* cut between im_hold_read_out and _end */
  buf_free(&h->q);
  buf_free(&h->tail);
  free(h);
  held_set(l, 0);
  if (queued) im_hold_read_submit(l->imw, queued); /* last: on SQLite it runs (and sends) at once */
}

void im_link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  struct im_hold *h = l->hold;
  if (!h) {
    l->ops->send(l, prefix, plen, body, blen);
    return;
  }
  if (h->q.len + h->tail.len + 8 + plen + blen > HOLD_MAX_BYTES) { /* too much waits: it all goes out now */
    atomic_fetch_add(&l->imw->im->holds[2], 1);
    hold_flush(l);
    l->ops->send(l, prefix, plen, body, blen);
    return;
  }
  put_u32(&h->q, (uint32_t)plen);
  put_u32(&h->q, (uint32_t)blen);
  if (plen) buf_append(&h->q, prefix, plen);
  buf_append(&h->q, body, blen);
  held_set(l, h->q.len); /* counted now, as queued output (it may drop this connection) */
}

static void hold_wait_start(im_worker_t *w, im_link_t *l);

static void hold_released(task_t *t) {
  hold_wait_t *hw = (hold_wait_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? hw->im->workers[idx] : NULL;
  im_link_t *l = w ? handle_table_get(&w->links, hw->link) : NULL;
  int forced = hw->wait.forced;
  uint64_t ticket = hw->wait.ticket, hw_gen = hw->gen;
  free(hw);
  if (!l || !l->hold || l->hold->gen != hw_gen) return; /* gone meanwhile (im_hold_free), or cut early */
  l->hold->waiting = 0;
  if (forced) atomic_fetch_add(&w->im->holds[1], 1);
  if (!forced && l->hold->ticket > ticket) { /* a later change joined the hold meanwhile */
    hold_wait_start(w, l);
    return;
  }
  if (l->hold->queued) { /* the other nodes have the login now: its counts are read after it */
    store_read_t *rd = l->hold->queued;
    l->hold->queued = NULL;
    im_hold_read_submit(w, rd); /* may end the hold at once (SQLite): l->hold is not touched after */
    return;
  }
  if (l->hold->reading) return; /* im_hold_read_end sends it all */
  hold_flush(l);
}

static void hold_wait_start(im_worker_t *w, im_link_t *l) {
  hold_wait_t *hw = xcalloc(1, sizeof *hw);
  hw->wait.task.fn = hold_released;
  hw->im = w->im;
  hw->link = l->id;
  hw->gen = l->hold->gen;
  l->hold->waiting = 1;
  bus_wait(w->im->bus, l->hold->ticket, w->idx, &hw->wait);
}

static void hold_new(im_link_t *l) {
  l->hold = xcalloc(1, sizeof *l->hold);
  l->hold->gen = atomic_fetch_add(&hold_gen, 1) + 1;
}

void im_hold_reply(im_worker_t *w, im_link_t *l) {
  bus_t *b = w->im->bus;
  if (!b) return;
  uint64_t ticket = bus_ticket(b);
  if (bus_confirmed(b, ticket)) return; /* nothing unpublished: nothing to wait for */
  if (!l->hold) {
    hold_new(l);
    atomic_fetch_add(&w->im->holds[0], 1);
  }
  if (ticket > l->hold->ticket) l->hold->ticket = ticket;
  if (!l->hold->waiting) hold_wait_start(w, l);
}

void im_hold_free(im_link_t *l) {
  if (!l->hold) return;
  store_read_t *queued = l->hold->queued;
  buf_free(&l->hold->q);
  buf_free(&l->hold->tail);
  free(l->hold);
  l->hold = NULL;
  l->held = 0;  /* the connection is being reaped: net releases what it counted */
  if (queued) { /* never submitted: its owner frees it (it finds no session to send to) */
    queued->result = TERN_ECLOSED;
    queued->task.fn(&queued->task);
  }
}

/* ---- a login's counts (im_login.c) */

void im_hold_open(im_link_t *l) {
  if (!l->hold) hold_new(l);
}

void im_hold_settle(im_link_t *l) {
  struct im_hold *h = l->hold;
  if (h && !h->waiting && !h->reading && !h->queued) hold_flush(l);
}

int im_hold_read(im_worker_t *w, im_link_t *l, store_read_t *rd, uint64_t *gen) {
  if (l->hold && (l->hold->reading || l->hold->queued)) return TERN_EAGAIN; /* one per connection */
  if (!l->hold) hold_new(l);
  struct im_hold *h = l->hold;
  *gen = h->gen; /* before the read may run (at once, on SQLite) */
  h->reading = 1;
  h->mark = h->q.len;
  if (h->waiting) { /* the presence change first: the read starts when the others have it */
    h->queued = rd;
    return 0;
  }
  im_hold_read_submit(w, rd); /* on SQLite this runs the read and its task (im_hold_read_end) now */
  return 0;
}

int im_hold_read_out(im_link_t *l, uint64_t gen) {
  struct im_hold *h = l->hold;
  if (!h || h->gen != gen || !h->reading) return 0; /* cut early, or the link was never held by it */
  if (h->mark < h->q.len) {
    buf_append(&h->tail, h->q.data + h->mark, h->q.len - h->mark);
    h->q.len = h->mark;
  }
  return 1;
}

void im_hold_read_end(im_link_t *l, uint64_t gen, im_hold_drop_fn drop, void *arg) {
  struct im_hold *h = l->hold;
  if (!h || h->gen != gen) return; /* cut while its frames went in (HOLD_MAX_BYTES): all sent */
  size_t o = 0;
  while (o + 8 <= h->tail.len) { /* what was held after the login follows its counts */
    uint32_t pl, bl;
    memcpy(&pl, h->tail.data + o, 4);
    memcpy(&bl, h->tail.data + o + 4, 4);
    const uint8_t *f = h->tail.data + o + 8;
    if (!drop || !drop(arg, f, pl, f + pl, bl)) buf_append(&h->q, h->tail.data + o, 8 + (size_t)pl + bl);
    o += 8 + (size_t)pl + bl;
  }
  buf_free(&h->tail);
  h->reading = 0;
  held_set(l, h->q.len);
  if (!h->waiting) hold_flush(l);
}
