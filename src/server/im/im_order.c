/* im_order.c — a conversation's stored messages reach every recipient in history (key)
 * order, on one node, after the commit (docs/architecture.md, "A message, end to end").
 *
 * The fan-out itself is ordered (im.c:fanout_to_clients_ordered): made under the
 * conversation's lock, its deliveries leave in the order of the calls. After the commit,
 * two workers run their completions side by side, so each fan-out also waits for its turn
 * here (deliver_in_turn). */
#include <stdlib.h>

#include "im_internal.h"

/* Under c->mu: the ordered fan-out of a message of c to m (or the room's sessions). */
static void deliver_ordered(im_worker_t *w, conv_t *c, members_t *m, const fanout_t *p, uint64_t skip) {
  if (c->kind == CONV_ROOM) fanout_to_room_ordered(w, p, c, skip);
  else if (m) fanout_to_clients_ordered(w, p, c, m->ids, m->n, skip);
}

/* A fan-out waiting for its turn: what deliver_ordered needs, referenced. */
struct parked_dlv {
  struct parked_dlv *next;
  uint64_t no;
  fanout_t *frame; /* NULL: the commit failed, nothing to send */
  members_t *members;
  uint64_t skip;
  worker_relay_t *relay; /* a chat-room message's ack, waiting for this fan-out (w->room_relay) */
};

/* A parked fan-out of a chat room, delivered on whichever worker's turn it is: its ack
 * travels with it (room_local takes w->room_relay), or, when nothing was posted, is sent at
 * once from its origin. */
static void deliver_parked(im_worker_t *w, conv_t *c, struct parked_dlv *p) {
  w->room_relay = p->relay;
  if (p->frame) deliver_ordered(w, c, p->members, p->frame, p->skip);
  if (w->room_relay) {
    worker_relay_t *r = w->room_relay;
    w->room_relay = NULL;
    worker_relay_finish(w, r);
  }
}

/* A completion that comes before an earlier send's parks its fan-out, and the earlier
 * one's worker sends it when its turn comes; a failed commit takes its turn with nothing to
 * send. Every submitted job completes (store.h), so every turn comes. With a bus,
 * deliveries go as before (another node's order is not this lock's to give). */
void deliver_in_turn(im_worker_t *w, conv_t *c, members_t *m, fanout_t *frame, uint64_t skip, uint64_t no) {
  if (w->im->bus) {
    if (frame && c->kind == CONV_ROOM) fanout_to_room(w, frame, c, skip);
    else if (frame && m) fanout_to_clients(w, frame, m->ids, m->n, skip);
    return;
  }
  pthread_mutex_lock(&c->mu);
  if (no != c->dlv_turn) {
    struct parked_dlv *p = xcalloc(1, sizeof *p), **at = &c->dlv_parked;
    p->no = no;
    if (frame) {
      p->frame = frame;
      atomic_fetch_add(&frame->ref, 1);
      p->members = m;
      if (m) atomic_fetch_add(&m->ref, 1);
    }
    p->skip = skip;
    p->relay = w->room_relay; /* the ack goes when this fan-out does */
    w->room_relay = NULL;
    while (*at && (*at)->no < p->no) at = &(*at)->next;
    p->next = *at;
    *at = p;
    pthread_mutex_unlock(&c->mu);
    return;
  }
  if (frame) deliver_ordered(w, c, m, frame, skip);
  worker_relay_t *own = w->room_relay; /* not taken (nobody present): the caller's to send */
  w->room_relay = NULL;
  c->dlv_turn++;
  while (c->dlv_parked && c->dlv_parked->no == c->dlv_turn) {
    struct parked_dlv *p = c->dlv_parked;
    c->dlv_parked = p->next;
    deliver_parked(w, c, p);
    c->dlv_turn++;
    fanout_release(p->frame);
    members_release(p->members);
    free(p);
  }
  w->room_relay = own;
  pthread_mutex_unlock(&c->mu);
}
