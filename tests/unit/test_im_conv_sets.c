/* test_im_conv_sets.c — im_conv_sets.c's handlers on a fake link (im_harness.h):
 * conv/member_info_update, add_shutup, remove_shutup, query_shutup, check_shutup, and
 * blacklist block, unblock, query, check_block: replies, pushes, stored sets. And a row
 * read before its load was asked for (a unique start's twin, convcache_wants_load_since):
 * not applied over a member change stored since the read was submitted. A reload under way
 * leaves the entry stale for every other user until it is applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "im_harness.h"
#include "im_internal.h"

typedef struct {
  char role[16];
} role_t;

static void role_cb(void *arg, const member_info_t *mi) {
  if (strcmp(mi->client, "bob") == 0) snprintf(((role_t *)arg)->role, 16, "%s", mi->role);
}

static void member_info_update_gives_a_role(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_clear(b);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"member_info_update\",\"i\":2,\"convMessage\":{\"cid\":\"%s\","
          "\"targetClientId\":\"bob\",\"info\":{\"pid\":\"bob\",\"role\":\"Manager\"}}}",
          cid);
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "member_info_updated");
  role_t got = {{0}};
  assert_int_equal(store_member_infos(th_reader(), th_conv_id(cid), role_cb, &got), 0);
  assert_string_equal(got.role, "Manager");
  json_t *p = th_take(b, "conv", "member_info_changed");
  assert_non_null(p);
  json_decref(p);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"member_info_update\",\"i\":3,\"convMessage\":{\"cid\":\"%s\","
          "\"targetClientId\":\"bob\",\"info\":{\"pid\":\"bob\",\"role\":\"Emperor\"}}}",
          cid);
  assert_int_equal(th_error(th_reply(a, 3)), LC_UNKNOWN_CONVERSATION_ROLE);
  free(cid);
  th_end();
}

static void set_count_cb(void *arg, const char *client, int64_t at) {
  (void)client;
  (void)at;
  (*(int *)arg)++;
}

static void shutups(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  th_clear(b);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"add_shutup\",\"i\":2,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"bob\"]}}", cid);
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "shutup_added");
  assert_string_equal(th_str(r, "convMessage.allowedPids.0"), "bob");
  int n = 0;
  assert_int_equal(store_conv_set_page(th_reader(), th_conv_id(cid), SET_SHUTUP, 0, NULL, 10, set_count_cb, &n), 0);
  assert_int_equal(n, 1);
  json_t *p = th_take(b, "conv", "shutuped");
  assert_non_null(p);
  json_decref(p);
  /* bob may not send now */
  th_send(b, "{\"cmd\":\"direct\",\"i\":3,\"directMessage\":{\"cid\":\"%s\",\"msg\":\"x\"}}", cid);
  assert_int_equal(th_error(th_reply(b, 3)), LC_SILIENCED);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"query_shutup\",\"i\":4,\"convMessage\":{\"cid\":\"%s\"}}", cid);
  r = th_reply(a, 4);
  assert_string_equal(th_str(r, "op"), "shutup_result");
  assert_string_equal(th_str(r, "convMessage.m.0"), "bob");
  th_send(b,
          "{\"cmd\":\"conv\",\"op\":\"check_shutup\",\"i\":5,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"carol\","
          "\"bob\"]}}",
          cid);
  r = th_reply(b, 5);
  assert_string_equal(th_str(r, "op"), "check_result");
  assert_string_equal(th_str(r, "convMessage.m.0"), "bob"); /* of those asked, the ones shut up */
  assert_null(th_str(r, "convMessage.m.1"));
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"remove_shutup\",\"i\":6,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"bob\"]}}",
          cid);
  assert_string_equal(th_str(th_reply(a, 6), "op"), "shutup_removed");
  n = 0;
  assert_int_equal(store_conv_set_page(th_reader(), th_conv_id(cid), SET_SHUTUP, 0, NULL, 10, set_count_cb, &n), 0);
  assert_int_equal(n, 0);
  th_direct(b, 7, cid, "free again");
  /* named twice: shut up once, announced once */
  th_clear(b);
  th_send(a,
          "{\"cmd\":\"conv\",\"op\":\"add_shutup\",\"i\":11,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"bob\","
          "\"bob\"]}}",
          cid);
  r = th_reply(a, 11);
  assert_string_equal(th_str(r, "convMessage.allowedPids.0"), "bob");
  assert_null(th_str(r, "convMessage.allowedPids.1"));
  assert_int_equal(th_count(b, "conv", "shutuped"), 1);
  /* no convMessage at all: answered as a missing cid, for every handler of this file */
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"add_shutup\",\"i\":8}");
  assert_int_equal(th_error(th_reply(a, 8)), LC_CONVERSATION_NOT_FOUND);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"query_shutup\",\"i\":9}");
  assert_int_equal(th_error(th_reply(a, 9)), LC_CONVERSATION_NOT_FOUND);
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"member_info_update\",\"i\":10}");
  assert_int_equal(th_error(th_reply(a, 10)), LC_CONVERSATION_NOT_FOUND);
  free(cid);
  th_end();
}

static void blacklist(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice"), *b = th_login("bob");
  char *cid = th_start(a, 1, "[\"bob\",\"carol\"]", NULL);
  th_clear(b);
  th_send(
      a,
      "{\"cmd\":\"blacklist\",\"op\":\"block\",\"i\":2,\"blacklistMessage\":{\"srcCid\":\"%s\",\"toPids\":[\"bob\"]}}",
      cid);
  json_t *r = th_reply(a, 2);
  assert_non_null(r);
  assert_string_equal(th_str(r, "op"), "blocked");
  int n = 0;
  assert_int_equal(store_conv_set_page(th_reader(), th_conv_id(cid), SET_BLOCK, 0, NULL, 10, set_count_cb, &n), 0);
  assert_int_equal(n, 1);
  conv_row_t row;
  assert_int_equal(store_conv_load(th_reader(), cid, &row), 0);
  assert_int_equal(row.nmembers, 2); /* bob left */
  conv_row_free(&row);
  json_t *p = th_take(b, "conv", "blocked");
  assert_non_null(p);
  json_decref(p);
  th_send(a, "{\"cmd\":\"blacklist\",\"op\":\"query\",\"i\":3,\"blacklistMessage\":{\"srcCid\":\"%s\"}}", cid);
  r = th_reply(a, 3);
  assert_string_equal(th_str(r, "op"), "query_result");
  assert_string_equal(th_str(r, "blacklistMessage.blockedPids.0"), "bob");
  th_send(a,
          "{\"cmd\":\"blacklist\",\"op\":\"check_block\",\"i\":4,\"blacklistMessage\":{\"srcCid\":\"%s\","
          "\"toPids\":[\"bob\",\"carol\"]}}",
          cid);
  r = th_reply(a, 4);
  assert_string_equal(th_str(r, "op"), "check_result");
  assert_string_equal(th_str(r, "blacklistMessage.blockedPids.0"), "bob"); /* not carol */
  assert_null(th_str(r, "blacklistMessage.blockedPids.1"));
  /* blocked: bob cannot be added back */
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"add\",\"i\":5,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"bob\"]}}", cid);
  assert_int_equal(th_int(th_reply(a, 5), "convMessage.failedPids.0.code"), LC_BLOCKED_BY_CONV);
  th_send(a,
          "{\"cmd\":\"blacklist\",\"op\":\"unblock\",\"i\":6,\"blacklistMessage\":{\"srcCid\":\"%s\",\"toPids\":["
          "\"bob\"]}}",
          cid);
  assert_string_equal(th_str(th_reply(a, 6), "op"), "unblocked");
  n = 0;
  assert_int_equal(store_conv_set_page(th_reader(), th_conv_id(cid), SET_BLOCK, 0, NULL, 10, set_count_cb, &n), 0);
  assert_int_equal(n, 0);
  free(cid);
  th_end();
}

/* A unique start reads its twin's row before it knows the twin (the read finds it), so
 * the reload that applies the row is counted (set_loads) only after the read: a member
 * change stored in between would be lost from the cache (im_prefetch.c, cmd_loaded).
 * convcache_wants_load_since compares with a mark taken before the read: such an entry
 * is not loaded from the old row and stays stale (conv_get reads it again); with no change
 * since the mark, the load goes on and is counted. */
static void a_row_read_before_a_stored_member_change_is_not_applied(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  im_t *im = fz_imw()->im;
  convcache_mark_t mark;
  convcache_mark_now(im, &mark); /* the read is submitted here */
  th_send(a, "{\"cmd\":\"conv\",\"op\":\"add\",\"i\":2,\"convMessage\":{\"cid\":\"%s\",\"m\":[\"carol\"]}}", cid);
  assert_string_equal(th_str(th_reply(a, 2), "op"), "added"); /* stored: conv_set_stored ran */
  convcache_stale(im, cid);                                   /* as the commit's 'C' marks it */
  conv_t *c = convcache_peek(im, cid);
  assert_non_null(c);
  conv_claim_t cl;
  assert_int_equal(convcache_wants_load_since(im, cid, &cl, &mark), 0);
  assert_null(cl.c);
  assert_true(c->stale_gen != c->fresh_gen); /* still stale: the next conv_get reads it again */
  assert_int_equal(c->set_loads, 0);
  convcache_mark_now(im, &mark); /* read after the change: applied, and counted until it ends */
  assert_int_equal(convcache_wants_load_since(im, cid, &cl, &mark), 1);
  assert_ptr_equal(cl.c, c);
  assert_true(c->stale_gen != c->fresh_gen); /* stale for everyone until the load is applied */
  assert_int_equal(c->set_loads, 1);
  convcache_load_abandoned(&cl); /* ends it; stale still */
  assert_null(cl.c);
  assert_true(c->stale_gen != c->fresh_gen);
  assert_int_equal(c->set_loads, 0);
  conv_release(c);
  free(cid);
  th_end();
}

/* Another node's change marks the cached entry (its 'C'); a reload claims it and reads. Until
 * that read is applied the entry stays stale for everyone: a send on another worker reads
 * for itself rather than taking the copy from before the change (a member removed on another
 * node, told so, could send once more: tests/cluster/shared-store.test.mjs). A reload
 * applied after a later one leaves it fresh, and does not bring older members back; a mark
 * during a read leaves it stale after. A conversation not cached, marked while its load
 * read, is cached stale. */
static int wants(im_t *im, const char *cid) {
  conv_claim_t cl;
  int w = convcache_wants_load(im, cid, &cl);
  convcache_load_abandoned(&cl);
  return w;
}

static void load_now(const char *cid, conv_claim_t *cl) {
  conv_row_t row;
  assert_int_equal(store_conv_load(th_reader(), cid, &row), 0); /* the read, begun after the claim */
  convcache_loaded(fz_imw(), cid, cl, 0, &row);
}

static void a_reload_under_way_leaves_the_entry_stale(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  im_t *im = fz_imw()->im;
  conv_t *c = convcache_peek(im, cid);
  assert_non_null(c);
  assert_int_equal(wants(im, cid), 0);
  convcache_stale(im, cid); /* the 'C' */
  conv_claim_t first, second;
  assert_int_equal(convcache_wants_load(im, cid, &first), 1); /* a reload claims it; its read is under way */
  assert_ptr_equal(first.c, c);
  assert_int_equal(convcache_wants_load(im, cid, &second), 1); /* another worker: stale still */
  assert_ptr_equal(second.c, c);
  assert_int_equal(c->set_loads, 2);
  load_now(cid, &second);
  assert_int_equal(wants(im, cid), 0); /* applied: fresh */
  load_now(cid, &first);               /* the first, applied after: fresh still */
  assert_int_equal(wants(im, cid), 0);
  assert_int_equal(c->set_loads, 0);
  convcache_stale(im, cid);
  assert_int_equal(convcache_wants_load(im, cid, &first), 1);
  convcache_stale(im, cid); /* during its read: the read may have missed it */
  load_now(cid, &first);
  assert_int_equal(wants(im, cid), 1);
  assert_int_equal(convcache_wants_load(im, cid, &first), 1);
  load_now(cid, &first);
  assert_int_equal(wants(im, cid), 0);
  /* reloads that end out of order: the one claimed before a change, applied after the one
   * claimed after it, does not bring the members from before back */
  convcache_stale(im, cid);
  assert_int_equal(convcache_wants_load(im, cid, &first), 1);
  conv_row_t old_row;
  assert_int_equal(store_conv_load(th_reader(), cid, &old_row), 0); /* read before the change */
  convcache_stale(im, cid);                                         /* the change's 'C' */
  assert_int_equal(convcache_wants_load(im, cid, &second), 1);
  conv_row_t new_row; /* read after it: carol is a member now (as another node stored it) */
  assert_int_equal(store_conv_load(th_reader(), cid, &new_row), 0);
  new_row.members = realloc(new_row.members, (new_row.nmembers + 1) * sizeof *new_row.members);
  new_row.members[new_row.nmembers++] = strdup("carol");
  convcache_loaded(fz_imw(), cid, &second, 0, &new_row);
  convcache_loaded(fz_imw(), cid, &first, 0, &old_row);
  assert_int_equal(wants(im, cid), 0);
  members_t *m = conv_members(c);
  assert_true(members_has(m, "carol"));
  members_release(m);
  /* not cached: a mark of it during its load's read caches it stale; none, fresh */
  for (int marked = 1; marked >= 0; marked--) {
    convcache_drop(im, c);
    conv_release(c);
    assert_int_equal(convcache_wants_load(im, cid, &first), 1);
    assert_null(first.c);
    if (marked) convcache_stale(im, cid); /* finds no entry: counted for the load */
    load_now(cid, &first);
    c = convcache_peek(im, cid);
    assert_non_null(c);
    assert_int_equal(wants(im, cid), marked);
  }
  conv_release(c);
  free(cid);
  th_end();
}

/* The twin's row, read before its cid is known, while another node changed that
 * conversation (its 'C' came during the read): the claim, taken after the read, counts the
 * mark, so the row would pass for current — members from before the change, cached fresh
 * for good. A mark since the read was submitted, of cid or of another cid of its cache
 * shard (every shard's count is taken before the read), leaves the row unused, whether the
 * conversation was not cached (it stays uncached) or cached (it stays stale); a mark in
 * another shard does not. */
static unsigned shard_of(const char *cid) { return map_shard(map_hash(cid, strlen(cid)), CONVCACHE_SHARDS); }

static void a_twin_read_across_a_mark_is_not_cached(void **state) {
  (void)state;
  th_begin();
  th_link_t *a = th_login("alice");
  char *cid = th_start(a, 1, "[\"bob\"]", NULL);
  im_t *im = fz_imw()->im;
  char near[32], far[32]; /* cids of no conversation: one in cid's shard, one elsewhere */
  near[0] = far[0] = 0;
  for (int i = 0; !near[0] || !far[0]; i++) {
    char x[32];
    snprintf(x, sizeof x, "x%d", i);
    if (shard_of(x) == shard_of(cid)) snprintf(near, sizeof near, "%s", x);
    else snprintf(far, sizeof far, "%s", x);
  }
  conv_t *c = convcache_peek(im, cid);
  assert_non_null(c);
  conv_claim_t cl;
  const char *marked[] = {cid, near, far, NULL}; /* the mark during the read, if any */
  for (int cached = 0; cached <= 1; cached++)
    for (int which = 0; which < 4; which++) {
      if (!cached) { /* not cached when the twin is found */
        convcache_drop(im, c);
        conv_release(c);
        c = NULL;
      } else {
        convcache_stale(im, cid); /* cached, stale: the twin's row would refresh it */
      }
      convcache_mark_t since;
      convcache_mark_now(im, &since); /* the twin's read is submitted */
      conv_row_t row;
      assert_int_equal(store_conv_load(th_reader(), cid, &row), 0);
      if (marked[which]) convcache_stale(im, marked[which]); /* a 'C' during the read */
      int want = which >= 2;
      assert_int_equal(convcache_wants_load_since(im, cid, &cl, &since), want);
      if (want) convcache_loaded(fz_imw(), cid, &cl, 0, &row);
      else conv_row_free(&row);
      assert_null(cl.c);
      if (!cached) {
        c = convcache_peek(im, cid);
        assert_int_equal(c != NULL, want); /* the row unused: not cached */
        if (!c) c = conv_get(fz_imw(), cid, NULL);
        assert_non_null(c);
      }
      assert_int_equal(wants(im, cid), cached && !want); /* the row unused: stale still */
    }
  conv_release(c);
  free(cid);
  th_end();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(member_info_update_gives_a_role),
      cmocka_unit_test(shutups),
      cmocka_unit_test(blacklist),
      cmocka_unit_test(a_row_read_before_a_stored_member_change_is_not_applied),
      cmocka_unit_test(a_reload_under_way_leaves_the_entry_stale),
      cmocka_unit_test(a_twin_read_across_a_mark_is_not_cached),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
