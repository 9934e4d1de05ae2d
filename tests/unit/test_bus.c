/* test_bus.c — the bus's backend-neutral part (src/server/bus/bus.c): this node's record
 * and its queued changes, and the replica of another node's record kept by snapshots and
 * numbered deltas (docs/cluster.md). No Redis: two buses in one process, one's published
 * changes applied to the other as the Redis backend would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus_int.h"
#include "err.h"

static task_t *posted[64];
static int nposted;

static void fake_post(void *arg, int worker, task_t *t) {
  (void)arg;
  assert_int_equal(worker, BUS_HOME_WORKER);
  assert_true(nposted < 64);
  posted[nposted++] = t;
}

static void run_posted(void) { /* not on the home worker: the flush task only frees itself */
  for (int i = 0; i < nposted; i++) posted[i]->fn(posted[i]);
  nposted = 0;
}

static char *url_ptr = "ws://me.example/";

static bus_t *mkbus(const char *id) {
  bus_options_t o = {
      .url = "redis://127.0.0.1:6379/3", .node_id = id, .public_url = &url_ptr, .nworkers = 2, .post = fake_post};
  bus_t *b = NULL;
  char err[200];
  assert_int_equal(bus_open(&o, &b, err, sizeof err), 0);
  return b;
}

/* Takes every queued op of `from` and applies it to `to` as a delta numbered seq. */
static int ship(bus_t *from, bus_t *to, uint64_t epoch, uint64_t seq, int *slot) {
  size_t n;
  bus_op_t *ops = bus_take_ops(from, 1000, &n);
  buf_t m = BUF_INIT;
  bus_encode_ops(&m, ops);
  int rc = bus_node_delta(to, bus_node_id(from), epoch, seq, m.data, m.len, slot);
  buf_free(&m);
  while (ops) {
    bus_op_t *x = ops->next;
    free(ops);
    ops = x;
  }
  return rc;
}

static void snapshot_empty(bus_t *b, int slot, const char *ep, const char *seq) {
  const uint8_t *f[2] = {(const uint8_t *)"_ep", (const uint8_t *)"_seq"};
  size_t fl[2] = {3, 4};
  const uint8_t *v[2] = {(const uint8_t *)ep, (const uint8_t *)seq};
  size_t vl[2] = {strlen(ep), strlen(seq)};
  bus_node_snapshot(b, slot, 2, f, fl, v, vl);
}

static void test_options(void **state) {
  (void)state;
  bus_t *b = NULL;
  char err[200];
  bus_options_t o = {.url = "http://x", .post = fake_post};
  assert_int_equal(bus_open(&o, &b, err, sizeof err), TERN_ECONFIG);
  o.url = "redis://127.0.0.1:99999";
  assert_int_equal(bus_open(&o, &b, err, sizeof err), TERN_ECONFIG);
  o.url = "redis://127.0.0.1:6379/x";
  assert_int_equal(bus_open(&o, &b, err, sizeof err), TERN_ECONFIG);
  o.url = "redis://127.0.0.1";
  o.node_id = "bad id";
  assert_int_equal(bus_open(&o, &b, err, sizeof err), TERN_ECONFIG);
  o.node_id = NULL; /* generated */
  assert_int_equal(bus_open(&o, &b, err, sizeof err), 0);
  assert_true(strlen(bus_node_id(b)) > 12);
  bus_free(b);
}

static void test_own_record(void **state) {
  (void)state;
  bus_t *a = mkbus("a");
  bus_presence_add(a, "alice", 0x0102030405060708ull, "mobile");
  bus_room_add(a, "room1", 1);
  bus_room_add(a, "room1", 1);
  bus_room_add(a, "room1", -1);
  bus_presence_del(a, "alice", 0x0102030405060708ull);
  bus_room_add(a, "room1", -1);
  assert_int_equal(nposted, 1); /* one wake-up for the lot */
  run_posted();
  size_t n;
  bus_op_t *ops = bus_take_ops(a, 100, &n);
  assert_int_equal(n, 6);
  const char want[6] = {'+', '+', '+', '+', '-', '-'};
  const char *vals[6] = {"alice\0mobile", "1", "2", "1", "alice", ""};
  size_t vlens[6] = {12, 1, 1, 1, 5, 0};
  int i = 0;
  for (bus_op_t *o = ops; o; o = o->next, i++) {
    assert_int_equal(o->op, want[i]);
    assert_int_equal(o->vlen, vlens[i]);
    assert_memory_equal(o->data + o->flen, vals[i], vlens[i]);
  }
  while (ops) {
    bus_op_t *x = ops->next;
    free(ops);
    ops = x;
  }
  bus_free(a);
}

static void test_replica(void **state) {
  (void)state;
  bus_t *a = mkbus("a"), *b = mkbus("b");
  int slot = bus_node_slot(b, "a", 1);
  assert_true(slot >= 0);
  snapshot_empty(b, slot, "7", "0");
  bus_presence_add(a, "alice", 11, "mobile");
  bus_presence_add(a, "alice", 12, NULL);
  bus_room_add(a, "lobby", 1);
  bus_room_member(a, "lobby", "alice", 1);
  int s2;
  assert_int_equal(ship(a, b, 7, 1, &s2), 0);
  assert_int_equal(s2, slot);
  /* not live until its heartbeat is seen: nothing visible yet */
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 0);
  bus_node_seen(b, slot, "ws://a/", 2);
  bus_ref_t refs[4];
  assert_int_equal(bus_sessions(b, "alice", NULL, refs, 4), 2);
  assert_int_equal(bus_sessions(b, "alice", "mobile", refs, 4), 1);
  assert_int_equal(refs[0].session, 11);
  assert_int_equal(refs[0].node, slot);
  assert_int_equal(bus_sessions(b, "alice", "desktop", NULL, 0), 0);
  int nodes[4];
  assert_int_equal(bus_client_nodes(b, "alice", nodes, 4), 1); /* two sessions, one node */
  assert_int_equal(bus_room_count(b, "lobby"), 1);
  char *mem[4];
  assert_int_equal(bus_room_members(b, "lobby", mem, 4), 1);
  assert_string_equal(mem[0], "alice");
  free(mem[0]);
  assert_int_equal(bus_nodes_live(b), 0); /* this node is not up (no connection) */
  /* a duplicate is ignored; the next one applies */
  bus_presence_del(a, "alice", 12);
  assert_int_equal(ship(a, b, 7, 1, &s2), 0);
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 2);
  bus_presence_del(a, "alice", 12);
  assert_int_equal(ship(a, b, 7, 2, &s2), 0);
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 1);
  /* this node's home connection made again (bus_nodes_suspend): the node is kept, replica
   * and all, but not pushed to nor counted until a poll sees it again */
  bus_nodes_suspend(b);
  assert_true(b->nodes[slot].used);
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 0);
  assert_int_equal(bus_client_nodes(b, "alice", nodes, 4), 0);
  assert_int_equal(bus_room_count(b, "lobby"), 0);
  assert_int_equal(atomic_load(&b->nlive), 0);
  bus_node_seen(b, slot, "ws://a/", 2);
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 1);
  assert_int_equal(bus_room_count(b, "lobby"), 1);
  assert_int_equal(atomic_load(&b->nlive), 1);
  assert_false(b->nodes[slot].suspended);
  /* a gap: a snapshot is wanted, and what follows waits for it */
  bus_presence_add(a, "bob", 21, NULL);
  assert_int_equal(ship(a, b, 7, 4, &s2), 1);
  bus_presence_add(a, "carol", 31, NULL);
  assert_int_equal(ship(a, b, 7, 5, &s2), 0); /* buffered: the snapshot is on the way */
  assert_int_equal(bus_sessions(b, "bob", NULL, NULL, 0), 0);
  /* the snapshot says seq 3 (bob's delta 4 and carol's 5 come after it): both replayed */
  snapshot_empty(b, slot, "7", "3");
  assert_int_equal(bus_sessions(b, "alice", NULL, NULL, 0), 0); /* replaced by the snapshot */
  assert_int_equal(bus_sessions(b, "bob", NULL, NULL, 0), 1);
  assert_int_equal(bus_sessions(b, "carol", NULL, NULL, 0), 1);
  /* garbage never crashes: it asks for a snapshot */
  uint8_t junk[7] = {'+', 0xff, 0xff, 0, 1, 'x', 'y'};
  assert_int_equal(bus_node_delta(b, "a", 7, 6, junk, sizeof junk, &s2), 1);
  /* the node goes: so do its sessions and counts */
  bus_node_forget(b, slot);
  assert_int_equal(bus_sessions(b, "carol", NULL, NULL, 0), 0);
  assert_int_equal(bus_room_count(b, "lobby"), 0);
  assert_int_equal(bus_room_members(b, "lobby", mem, 4), 0);
  /* a rewrite heard while a snapshot is on the way (a poll asked for it): a snapshot read
   * before the rewrite (the old epoch) leaves the node unsynced, so the next poll asks again;
   * one that holds the rewrite's epoch syncs it */
  slot = bus_node_slot(b, "a", 1);
  b->nodes[slot].syncing = 1;
  assert_int_equal(bus_node_rewritten(b, "a", 9, &s2), 0);
  assert_int_equal(s2, slot);
  snapshot_empty(b, slot, "7", "5");
  assert_false(b->nodes[slot].synced);
  assert_int_equal(bus_node_rewritten(b, "a", 9, &s2), 1); /* none on the way: ask now */
  b->nodes[slot].syncing = 1;
  snapshot_empty(b, slot, "9", "0");
  assert_true(b->nodes[slot].synced);
  b->nodes[slot].syncing = 1;
  assert_int_equal(bus_node_rewritten(b, "a", 10, &s2), 0);
  snapshot_empty(b, slot, "10", "0");
  assert_true(b->nodes[slot].synced);
  run_posted();
  bus_drop_ops(a);
  bus_free(a);
  bus_free(b);
}

static void test_route(void **state) {
  (void)state;
  bus_t *b = mkbus("me");
  char url[100];
  bus_route(b, url, sizeof url);
  assert_string_equal(url, "ws://me.example/"); /* knows of no other node */
  int s = bus_node_slot(b, "other", 1);
  bus_node_seen(b, s, "ws://other/", 0);
  bus_presence_add(b, "x", 1, NULL); /* this node has 1 session, the other 0 */
  atomic_store(&b->up, 1);
  bus_route(b, url, sizeof url);
  assert_string_equal(url, "ws://other/");
  atomic_store(&b->up, 0); /* the bus down: this node answers for itself */
  bus_route(b, url, sizeof url);
  assert_string_equal(url, "ws://me.example/");
  run_posted();
  bus_free(b);
}

int main(void) {
  worker_set_current(-1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_own_record),
      cmocka_unit_test(test_replica),
      cmocka_unit_test(test_route),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
