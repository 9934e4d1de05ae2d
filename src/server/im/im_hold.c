/* im_hold.c — in a cluster, a reply that acknowledges a presence change (a login, a logout,
 * a chat-room join or quit) waits until this node's presence batch carrying the change is
 * confirmed by Redis (bus_wait, bus.h): the other nodes then have the delta queued before
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
 * touches a freed one. With no bus nothing is held and this costs one NULL test per frame. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "im_internal.h"

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
  uint64_t gen;    /* a hold cut early and another made later are told apart */
  uint64_t ticket; /* the changes the held frames wait for */
  int waiting;     /* a hold_wait_t is with the bus */
  buf_t q;         /* frames: u32 prefix length, u32 body length, prefix, body */
};

static void put_u32(buf_t *b, uint32_t x) { buf_append(b, &x, sizeof x); }

/* The held bytes changed: net brings its output budgets to them. */
static void held_set(im_link_t *l, size_t n) {
  l->held = n;
  if (l->ops->held) l->ops->held(l);
}

/* Sends what the link held, in order, and ends the hold: the bytes leave l->held for the
 * connection's queue, and are counted there (held_set once they are all in it). */
static void hold_flush(im_link_t *l) {
  struct im_hold *h = l->hold;
  l->hold = NULL;
  l->held = 0;
  size_t o = 0;
  while (o + 8 <= h->q.len) {
    uint32_t pl, bl;
    memcpy(&pl, h->q.data + o, 4);
    memcpy(&bl, h->q.data + o + 4, 4);
    o += 8;
    l->ops->send(l, h->q.data + o, pl, h->q.data + o + pl, bl);
    o += (size_t)pl + bl;
  }
  buf_free(&h->q);
  free(h);
  held_set(l, 0);
}

void im_link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  struct im_hold *h = l->hold;
  if (!h) {
    l->ops->send(l, prefix, plen, body, blen);
    return;
  }
  if (h->q.len + 8 + plen + blen > HOLD_MAX_BYTES) { /* too much waits: it all goes out now */
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

void im_hold_reply(im_worker_t *w, im_link_t *l) {
  bus_t *b = w->im->bus;
  if (!b) return;
  uint64_t ticket = bus_ticket(b);
  if (bus_confirmed(b, ticket)) return; /* nothing unpublished: nothing to wait for */
  if (!l->hold) {
    l->hold = xcalloc(1, sizeof *l->hold);
    l->hold->gen = atomic_fetch_add(&hold_gen, 1) + 1;
    atomic_fetch_add(&w->im->holds[0], 1);
  }
  if (ticket > l->hold->ticket) l->hold->ticket = ticket;
  if (!l->hold->waiting) hold_wait_start(w, l);
}

void im_hold_free(im_link_t *l) {
  if (!l->hold) return;
  buf_free(&l->hold->q);
  free(l->hold);
  l->hold = NULL;
  l->held = 0; /* the connection is being reaped: net releases what it counted */
}
