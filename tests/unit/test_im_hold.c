/* test_im_hold.c — im_hold.c's side of the output budgets (link.h: l->held and ops->held):
 * while a reply waits for the bus, the bytes the hold keeps are l->held and the link's held
 * callback is told at each change, so the network layer can count them in output_limit_ip
 * and output_limit_total (net/conn.c, tests/cluster/held-budget.test.mjs); when the hold
 * ends — confirmed, forced, cut at HOLD_MAX_BYTES — the frames go out and l->held is 0
 * again, told once they are all sent; a link that goes while held is left with nothing
 * held. A bus opened without Redis (no worker started): its changes are confirmed or
 * forced by hand (bus_release, bus_wait_sweep), its tasks posted to a list run here.
 * And a login's counts (im_hold_read): read once the presence wait ends, sent between the
 * login's answer and what followed it, minus what they told; cancelled with the link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_int.h"
#include "err.h"
#include "im_harness.h"
#include "im_internal.h"
#include "timeutil.h"

typedef struct {
  im_link_t link;
  size_t sent, nsent; /* bytes and frames that reached the socket side */
  int calls;          /* ops->held */
  size_t held_seen;   /* l->held at the last call */
  size_t sent_seen;   /* bytes sent by then */
  char order[64];     /* the first body byte of each frame sent, in order */
} hl_t;

static void hl_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  (void)prefix;
  (void)body;
  hl_t *h = (hl_t *)l;
  h->sent += plen + blen;
  if (blen && h->nsent < sizeof h->order - 1) h->order[h->nsent] = (char)body[0];
  h->nsent++;
}
static void hl_close(im_link_t *l, int code, const char *reason) {
  (void)l;
  (void)code;
  (void)reason;
}
static size_t hl_queued(im_link_t *l) {
  (void)l;
  return 0;
}
static void hl_held(im_link_t *l) {
  hl_t *h = (hl_t *)l;
  h->calls++;
  h->held_seen = l->held;
  h->sent_seen = h->sent;
}
static const im_link_ops_t hl_ops = {.send = hl_send, .close = hl_close, .queued = hl_queued, .held = hl_held};

static task_t *posted[64];
static int nposted;
static int flush_posted; /* the bus's flush task (it would talk to Redis): freed, not run */

static void fake_post(void *arg, int worker, task_t *t) {
  (void)arg;
  (void)worker;
  assert_true(nposted < 64);
  posted[nposted++] = t;
}

/* Runs what the bus posted (the waiters' tasks) on "worker 0", the harness's thread; the
 * first post is its flush task, which only frees itself when not run on the home worker:
 * it is freed without running. */
static void run_posted(void) {
  for (int i = 0; i < nposted; i++) {
    if (!flush_posted) {
      flush_posted = 1;
      free(posted[i]);
      continue;
    }
    posted[i]->fn(posted[i]);
  }
  nposted = 0;
}

static bus_t *bus;
static uint64_t sessions;

static void setup_bus(void) {
  static char *url = "ws://me.example/";
  bus_options_t o = {
      .url = "redis://127.0.0.1:6379", .node_id = "t", .public_url = &url, .nworkers = 1, .post = fake_post};
  char err[200];
  assert_int_equal(bus_open(&o, &bus, err, sizeof err), 0);
  fz_imw()->im->bus = bus;
  flush_posted = 0;
  nposted = 0;
}

static void teardown_bus(void) {
  bus_release(bus, bus_ticket(bus), 1);
  run_posted();
  fz_imw()->im->bus = NULL;
  bus_free(bus);
  bus = NULL;
}

/* A change waits to be published, and the link's reply to it is held. */
static void hold(hl_t *h) {
  bus_presence_add(bus, "alice", ++sessions, NULL);
  im_hold_reply(fz_imw(), &h->link);
  run_posted();
  assert_non_null(h->link.hold);
}

static void frame(hl_t *h, size_t n) {
  static uint8_t body[8192];
  assert_true(n <= sizeof body);
  im_link_send(&h->link, (const uint8_t *)"p", 1, body, n);
}

static void held_bytes_are_told_while_held_and_released_when_published(void **state) {
  (void)state;
  th_begin();
  setup_bus();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  hold(&h);
  for (int k = 0; k < 3; k++) {
    frame(&h, 100);
    /* each frame: its bytes (and the queue's 8 of framing) held, and net told at once */
    assert_int_equal(h.link.held, (size_t)(k + 1) * (8 + 1 + 100));
    assert_int_equal(h.calls, k + 1);
    assert_int_equal(h.held_seen, h.link.held);
  }
  assert_int_equal(h.nsent, 0);
  bus_release(bus, bus_ticket(bus), 0); /* Redis confirmed */
  run_posted();
  assert_null(h.link.hold);
  assert_int_equal(h.nsent, 3);
  assert_int_equal(h.link.held, 0);
  /* told once more, after every frame went to the socket side: nothing counted twice */
  assert_int_equal(h.calls, 4);
  assert_int_equal(h.held_seen, 0);
  assert_int_equal(h.sent_seen, 3 * 101);
  /* not held: frames go straight out, nothing is told */
  frame(&h, 10);
  assert_int_equal(h.nsent, 4);
  assert_int_equal(h.calls, 4);
  im_link_gone(&h.link, 1000);
  teardown_bus();
  th_end();
}

static void forced_release_and_cut_leave_nothing_held(void **state) {
  (void)state;
  th_begin();
  setup_bus();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  /* Redis does not answer: the waiter passes its deadline and is released, forced */
  hold(&h);
  frame(&h, 1000);
  assert_int_equal(h.link.held, 8 + 1 + 1000);
  bus_wait_sweep(bus, now_ms() + BUS_WAIT_MAX_MS + 1);
  run_posted();
  assert_null(h.link.hold);
  assert_int_equal(h.nsent, 1);
  assert_int_equal(h.link.held, 0);
  assert_int_equal(h.held_seen, 0);
  /* past HOLD_MAX_BYTES (256 KiB) everything goes out at once: held back to 0, told */
  hold(&h);
  size_t before = h.nsent, peak = 0;
  while (h.link.hold) {
    frame(&h, 8000);
    if (h.link.held > peak) peak = h.link.held;
  }
  assert_true(peak <= 256 * 1024 && peak > 256 * 1024 - 8200);
  assert_int_equal(h.link.held, 0);
  assert_int_equal(h.held_seen, 0);
  /* told once every held frame was sent; the one that did not fit goes straight after */
  assert_int_equal(h.sent - h.sent_seen, 1 + 8000);
  assert_true(h.nsent - before > 32);
  /* its waiter, released later, finds the hold gone (cut): nothing more is told */
  int calls = h.calls;
  bus_release(bus, bus_ticket(bus), 0);
  run_posted();
  assert_int_equal(h.calls, calls);
  im_link_gone(&h.link, 1000);
  teardown_bus();
  th_end();
}

static void a_link_gone_while_held_holds_nothing(void **state) {
  (void)state;
  th_begin();
  setup_bus();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  hold(&h);
  frame(&h, 5000);
  frame(&h, 5000);
  assert_int_equal(h.link.held, 2 * (8 + 1 + 5000));
  int calls = h.calls;
  im_link_gone(&h.link, 1006); /* net releases what it counted when it reaps the connection */
  assert_null(h.link.hold);
  assert_int_equal(h.link.held, 0);
  /* the waiter, released later, finds no link: nothing is sent or told */
  bus_release(bus, bus_ticket(bus), 0);
  run_posted();
  assert_int_equal(h.nsent, 0);
  assert_int_equal(h.calls, calls);
  teardown_bus();
  th_end();
}

/* ---- a login's counts (im_hold_read): the read is a fake one that sends a frame 'C' and
 * drops held frames whose body starts with 'x' (as im_login.c drops pushes already told) */
typedef struct {
  store_read_t rd;
  hl_t *h;
  uint64_t gen;
  int ran, done, result;
} fake_read_t;

static int fake_fn(store_reader_t *r, store_read_t *rd) {
  (void)r;
  ((fake_read_t *)rd)->ran++;
  return 0;
}
static int drop_x(void *arg, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  (void)arg;
  (void)prefix;
  (void)plen;
  return blen && body[0] == 'x';
}
static void fake_done(task_t *t) {
  fake_read_t *f = (fake_read_t *)t;
  f->done++;
  f->result = f->rd.result;
  if (f->rd.result < 0) return;
  im_link_t *l = &f->h->link;
  int held = im_hold_read_out(l, f->gen);
  assert_true(held);
  im_link_send(l, NULL, 0, (const uint8_t *)"C", 1);
  im_hold_read_end(l, f->gen, drop_x, NULL);
}
static void send_byte(hl_t *h, char c) { im_link_send(&h->link, NULL, 0, (const uint8_t *)&c, 1); }

static void a_logins_counts_go_between_its_answer_and_what_followed(void **state) {
  (void)state;
  th_begin();
  setup_bus();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  hold(&h);           /* the login's presence change waits for Redis */
  send_byte(&h, 'o'); /* session/opened */
  fake_read_t f = {.h = &h};
  f.rd.task.fn = fake_done;
  f.rd.fn = fake_fn;
  assert_int_equal(im_hold_read(fz_imw(), &h.link, &f.rd, &f.gen), 0);
  assert_int_equal(f.ran, 0); /* not before the other nodes have the login */
  /* a second login's counts on the same link: not held by it */
  fake_read_t g = {.h = &h};
  uint64_t gen2;
  assert_int_equal(im_hold_read(fz_imw(), &h.link, &g.rd, &gen2), TERN_EAGAIN);
  send_byte(&h, 'x'); /* a push the counts will have told */
  send_byte(&h, 'p'); /* a push they did not */
  assert_int_equal(h.nsent, 0);
  bus_release(bus, bus_ticket(bus), 0); /* Redis confirmed: the read runs (SQLite: at once) */
  run_posted();
  assert_int_equal(f.ran, 1);
  assert_int_equal(f.done, 1);
  assert_null(h.link.hold);
  assert_string_equal(h.order, "oCp"); /* answer, counts, the rest without what they told */
  assert_int_equal(h.link.held, 0);
  im_link_gone(&h.link, 1000);
  teardown_bus();
  th_end();
}

static void a_link_gone_before_its_counts_are_read_cancels_the_read(void **state) {
  (void)state;
  th_begin();
  setup_bus();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  hold(&h);
  fake_read_t f = {.h = &h};
  f.rd.task.fn = fake_done;
  f.rd.fn = fake_fn;
  assert_int_equal(im_hold_read(fz_imw(), &h.link, &f.rd, &f.gen), 0);
  im_link_gone(&h.link, 1006);
  assert_int_equal(f.done, 1); /* its owner frees it: told the link went */
  assert_int_equal(f.result, TERN_ECLOSED);
  assert_int_equal(f.ran, 0);
  bus_release(bus, bus_ticket(bus), 0);
  run_posted();
  assert_int_equal(f.done, 1);
  teardown_bus();
  th_end();
}

static void without_a_bus_the_counts_are_read_at_once(void **state) {
  (void)state;
  th_begin();
  hl_t h = {0};
  im_link_open(&h.link, fz_imw(), &hl_ops, 3, "10.0.0.1");
  im_hold_open(&h.link);
  send_byte(&h, 'o');
  assert_int_equal(h.nsent, 0); /* the answer waits for the counts */
  fake_read_t f = {.h = &h};
  f.rd.task.fn = fake_done;
  f.rd.fn = fake_fn;
  assert_int_equal(im_hold_read(fz_imw(), &h.link, &f.rd, &f.gen), 0);
  assert_int_equal(f.done, 1);
  assert_null(h.link.hold);
  assert_string_equal(h.order, "oC");
  /* a login that reads nothing ends a hold nothing else keeps */
  im_hold_open(&h.link);
  send_byte(&h, 'o');
  im_hold_settle(&h.link);
  assert_null(h.link.hold);
  assert_string_equal(h.order, "oCo");
  im_link_gone(&h.link, 1000);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(held_bytes_are_told_while_held_and_released_when_published),
      cmocka_unit_test(forced_release_and_cut_leave_nothing_held),
      cmocka_unit_test(a_link_gone_while_held_holds_nothing),
      cmocka_unit_test(a_logins_counts_go_between_its_answer_and_what_followed),
      cmocka_unit_test(a_link_gone_before_its_counts_are_read_cancels_the_read),
      cmocka_unit_test(without_a_bus_the_counts_are_read_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
