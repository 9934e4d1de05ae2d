/* test_im_hold.c — im_hold.c's side of the output budgets (link.h: l->held and ops->held):
 * while a reply waits for the bus, the bytes the hold keeps are l->held and the link's held
 * callback is told at each change, so the network layer can count them in output_limit_ip
 * and output_limit_total (net/conn.c, tests/cluster/held-budget.test.mjs); when the hold
 * ends — confirmed, forced, cut at HOLD_MAX_BYTES — the frames go out and l->held is 0
 * again, told once they are all sent; a link that goes while held is left with nothing
 * held. A bus opened without Redis (no worker started): its changes are confirmed or
 * forced by hand (bus_release, bus_wait_sweep), its tasks posted to a list run here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_int.h"
#include "im_harness.h"
#include "im_internal.h"
#include "timeutil.h"

typedef struct {
  im_link_t link;
  size_t sent, nsent; /* bytes and frames that reached the socket side */
  int calls;          /* ops->held */
  size_t held_seen;   /* l->held at the last call */
  size_t sent_seen;   /* bytes sent by then */
} hl_t;

static void hl_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen) {
  (void)prefix;
  (void)body;
  hl_t *h = (hl_t *)l;
  h->sent += plen + blen;
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(held_bytes_are_told_while_held_and_released_when_published),
      cmocka_unit_test(forced_release_and_cut_leave_nothing_held),
      cmocka_unit_test(a_link_gone_while_held_holds_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
