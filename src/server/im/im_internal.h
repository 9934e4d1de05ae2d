/* im_internal.h — the IM core: the types and functions the IM modules (im*.c,
 * convcache.c, …) share, and that the layers above im (api/, out/) build on. Nothing
 * below im (base, store) or beside it (net) can include it.
 *
 * Threading: an im_worker_t and every session, link and room list it owns are touched
 * only by that worker's thread. Shared state is the presence index (presence.c) and the
 * conversation cache (convcache.c), each with its own locks; a conv_t's mutable fields are
 * guarded by conv->mu. */
#ifndef TERN_IM_INTERNAL_H
#define TERN_IM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "bus.h"
#include "codec.h"
#include "handle_table.h"
#include "im.h"
#include "im_out.h"
#include "map.h"
#include "metrics.h"
#include "presence.h"
#include "sign.h"
#include "store.h"

typedef struct conv conv_t;
typedef struct will will_t;
typedef struct convcache convcache_t;

struct im {
  const tern_config_t *cfg;
  const char *app_id, *master_key;
  store_t *store;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  int nworkers;
  im_worker_t *workers[MAX_WORKERS];
  presence_t *presence;
  convcache_t *convs;
  signer_t *signer;
  const im_out_t *out;       /* hooks and offline push (im_out.h), or NULL: neither */
  void *out_arg;             /* their state (out/'s out_t), which im never looks into */
  pthread_mutex_t sso_mu;    /* tagged logins: check-and-register is one step */
  pthread_mutex_t rejoin_mu; /* chat rooms to re-join after a reconnect (§3.12) */
  struct rejoin *rejoin;
  atomic_size_t room_drops;   /* room messages dropped for congestion */
  struct revoke *revoke;      /* session-token revocations not yet committed (revoke.h) */
  struct ipcount *query_ips;  /* conversation queries running per peer address (im_conv.c) */
  struct ipcount *read_ips;   /* history reads off the loop running per peer address (im_msg.c) */
  bus_t *bus;                 /* the other nodes (im_bus.c), or NULL: a single node */
  struct ipcount *park_ips;   /* bytes held behind requests waiting on the bus, per peer address (im_bus.c) */
  _Atomic int64_t park_bytes; /* and for the server (bus_park_limit_total) */
  _Atomic unsigned long park_refused[3]; /* closed 4116 past: the link's cap, bus_park_limit_ip, _total */
  struct ipcount *session_ips;           /* sessions per peer address (max_sessions_per_ip, im_session.c); an
                                * entry's byte count: the wills of the address's sessions (im_msg.c) */
  _Atomic int64_t will_bytes;            /* the wills of all sessions (will_limit_total) */
  struct conv_bcast *cbc;                /* 'C' broadcasts, coalesced (im_bus.c); with a bus */
  _Atomic unsigned long holds[3];        /* links whose output waited for a presence change (im_hold.c):
                                          * all, released forced, cut for size */
  _Atomic unsigned long fences;          /* requests that waited in im_presence_fence */
  _Atomic unsigned long unheard_goaways; /* sessions told goaway for a delivery this node did not hear */
  /* the app's kicks waiting for their sessions on other nodes to leave the replica
   * (im_session.c): BUS_HOME_WORKER's thread only, in order of deadline */
  struct kick_all *kwait_head, *kwait_tail;
  uv_timer_t *kwait_timer;              /* on its loop; NULL before it starts and once it stops */
  int kwait_dirty;                      /* the replica changed since the waits were last looked at */
  _Atomic unsigned long kick_remote[2]; /* those kicks: seen ended, answered at the deadline */
};

struct im_worker {
  im_t *im;
  int idx;
  handle_table_t links;    /* handle → im_link_t, for completions that outlive a callback */
  handle_table_t sessions; /* handle → session_t */
  store_reader_t *reader;
  struct worker_relay *room_relay;           /* set around a chat-room send's fan-out: its ack (room_local) */
  struct worker_relay *parked, *parked_tail; /* relays waiting here for a room behind (im.c) */
  const struct revoke_read *token_read;      /* set around a session/open run again with its token's
                                         * revocations read off the loop (im_prefetch.c) */
  struct im_dedupe_read *dedupe_read;        /* the same around a send run again with its resend lookup
                                         * read off the loop (im_dedupe.c) */
  struct patch_read *patch_read;             /* the same around an edit or recall run again with its messages
                                         * read off the loop (im_patch.c) */
  struct keys_read *keys_read;               /* the same around an ack, a read or a history page run again
                                         * with its conversations and imported ids read off the loop
                                         * (im_prefetch.c) */
  struct cmd_read *cmd_read;                 /* the same around a conv/start with `unique`, a conv/max_read, a
                                         * conv/update, an add or join, or a client blacklist's query or check run again
                                         * with its own reads made off the loop (im_prefetch.c) */
  const char *absent_cid;                    /* the same around a request run again after its conversation, read off the
                           * loop, was not found: conv_get does not read it again (im_prefetch.c) */
  struct im_recheck *rc_head, *rc_tail;      /* stored sends whose fan-out waits for the subscriber (im_msg.c) */
  size_t rc_n;
  uint64_t rc_gen;        /* the fence the sends queued now wait for */
  int rc_fencing;         /* a fence of this worker's is on its way */
  struct kick_all *kicks; /* the app's kicks this worker is to answer, not answered yet (im_session.c) */
};

struct session {
  uint64_t id;
  im_link_t *link;
  session_t *next; /* in link->sessions */
  char *client_id;
  char *tag;
  int64_t config_bitmap;
  conv_t *room;              /* the chat room this login is in (one at a time) */
  uint32_t room_slot;        /* index in room->online[worker] */
  will_t *wills;             /* will messages: sent if the connection drops unexpectedly */
  uint8_t lineage[8];        /* of the tokens this login is given (token.h): revoked at logout */
  int64_t opened_ms;         /* logged in (the logout line's duration) */
  struct ipcount_entry *ipe; /* holds one of its address's max_sessions_per_ip (im->session_ips) */
  int64_t resumed_ms;        /* the last session/open with r:true (a reconnect), 0: none — sends
                       * within dedupe_window of it are checked for resends (im_dedupe.c) */
  uint16_t dedupe_left;      /* sends still to be checked since then (IM_DEDUPE_CHECKS) */
  struct send_job *sending;  /* its stored sends with a dt not yet answered (im_msg.c) */
  struct im_told *told;      /* what the login's counts told, for the pushes on their way (im_login.c) */
  uint8_t counting;          /* its login's counts are being read (im_login.c) */
};

/* Members of a normal conversation: an immutable sorted snapshot, replaced on change. */
typedef struct {
  atomic_int ref;
  size_t n;
  char *ids[];
} members_t;

/* Online sessions of a chat room held by one worker; only that worker touches it. */
typedef struct {
  session_t **v;
  uint32_t n, cap;
} room_slice_t;

struct conv {
  char *cid;
  int64_t id;
  int kind;
  char *creator;
  int64_t created_at, expire_at;
  atomic_int ref;
  pthread_mutex_t mu; /* guards the fields below */
  members_t *members; /* NULL for chat rooms and system conversations */
  members_t *sets[3]; /* SET_MANAGER, SET_SHUTUP, SET_BLOCK snapshots (NULL = empty) */
  int64_t updated_at;
  int64_t last_ts, last_seq;
  int has_receipts;              /* some message asked for receipts: acks must look for them */
  int rcp_stored;                /* under mu: the store says so too (a commit or a load): no need to tell other nodes */
  atomic_int dlv_posted;         /* its ordered deliveries still in a worker's inbox (fanout_*_ordered) */
  uint64_t dlv_next, dlv_turn;   /* one node: the number of the next stored send, and of the
                                * next one whose commit's fan-out may go (im_order.c:deliver_in_turn) */
  struct parked_dlv *dlv_parked; /* fan-outs whose commit completed before an earlier send's: by number */
  atomic_int ext_ids;            /* holds imported messages whose ids are not tern's (msg_key_resolve) */
  atomic_int rechecks;           /* its sends whose fan-out waits for the subscriber (im_msg.c): later
                                  * ones wait behind them */
  int deleted;
  json_t *doc;        /* the stored document, loaded on the first update (NULL before) */
  size_t doc_bytes;   /* its compact JSON size: exact when loaded, then kept by each change */
  int doc_deep;       /* it nests deeper than JSON_MAX_DEPTH (a document from an older build) */
  int doc_writes;     /* this node's changes of the document queued and not yet stored (update_done):
                       * the store's copy lacks them, so a reload keeps doc while there are any */
  int doc_stale;      /* … and a reload came meanwhile: doc is dropped once they are stored */
  uint64_t doc_gen;   /* counts the changes queued: a document read ahead before one is not merged on */
  int set_writes;     /* the same for members and sets[] (blacklist, shut-ups, roles): this node's changes
                       * of them queued and not yet stored (members_done, set_done, role_done), so a
                       * reload keeps members and sets[] while there are any */
  int set_stale;      /* … and a reload came meanwhile: the last done marks the entry stale (reloaded) */
  int set_loads;      /* reloads of this entry under way (their read begun, not yet applied) */
  int set_raced;      /* a change of members or sets was stored during one: its rows may lack it */
  uint64_t set_mark;  /* convcache_set_mark() just after its last such change was stored */
  room_slice_t *room; /* chat rooms: one slice per worker */
  atomic_int online;  /* chat rooms: sessions in the room */
  map_node_t hnode;   /* convcache.c's table: key cid */
  /* another node (or a commit here) changed it: conv_get reloads it first. Each mark counts
   * one up in stale_gen; a reload takes the count when it claims the entry (before its read)
   * and, once applied, raises fresh_gen to it — stale while the two differ, so the entry
   * stays stale for everyone while a reload is under way, and after one whose read a later
   * mark may have missed (convcache.c, "Reloads") */
  _Atomic uint64_t stale_gen, fresh_gen;
};

/* ---- convcache.c ---- */
convcache_t *convcache_new(void);
void convcache_free(convcache_t *cc);
/* A referenced conversation, loaded through the worker's reader on a miss; NULL when it
 * does not exist (or storage failed: *err gets TERN_ESTORE). Release with conv_release. */
conv_t *conv_get(im_worker_t *w, const char *cid, int *err);
/* Puts a just-created conversation in the cache (takes the row's strings). */
conv_t *conv_from_row(im_t *im, conv_row_t *row);
void convcache_put(im_t *im, conv_t *c);
void convcache_drop(im_t *im, conv_t *c); /* forget it (deleted, or storage disagreed) */
/* The cached conversation cid, referenced, or NULL when it is not in the cache (no load). */
conv_t *convcache_peek(im_t *im, const char *cid);
/* Across nodes (docs/cluster.md, "The conversation cache across nodes"): the cached
 * conversation cid (or every cached one) is stale; its next conv_get reloads its members,
 * sets, times and document from the store in place (chat rooms keep their online sessions;
 * the document, members and sets stay while this node's changes of them are unstored:
 * doc_writes, set_writes), or forgets it when the store no longer has it. Any thread. */
void convcache_stale(im_t *im, const char *cid);
/* A load off the loop (im_prefetch.c) claims what its read will cover: the stale entry
 * (c, referenced; NULL when cid is not cached) and the marks so far (gen). wants_load: 1
 * when cid is not cached, or cached and stale (*cl filled: the entry stays stale for
 * everyone until the load is applied); 0 when conv_get would answer from the cache.
 * loaded: on a worker, caches what store_conv_load returned (rc, row owned) — or applies it
 * to cl.c — as conv_get would have, and releases cl.c; with w NULL (the server is stopping)
 * frees the row and releases cl.c. A mark after the claim leaves the entry stale. */
typedef struct {
  conv_t *c;
  uint64_t gen;
} conv_claim_t;
int convcache_wants_load(im_t *im, const char *cid, conv_claim_t *cl);
/* The claim of a read of cid about to be made by a caller that caches it only if it is not
 * cached (convcache_loaded with it then caches it stale if a mark came meanwhile). Any
 * thread. */
conv_claim_t convcache_claim_new(im_t *im, const char *cid);
/* Counts taken before a read whose cid is not known until it is made (a unique start's
 * twin): the member and set changes stored (conv_set_stored) and each cache shard's marks,
 * so far. Any thread. */
#define CONVCACHE_SHARDS 64
typedef struct {
  uint64_t sets, marks[CONVCACHE_SHARDS];
} convcache_mark_t;
void convcache_mark_now(im_t *im, convcache_mark_t *m);
/* For a row read before the load was asked for (a unique start's twin, found by the read
 * itself): since is convcache_mark_now() taken before the read was submitted (NULL: as
 * convcache_wants_load). As
 * wants_load, except that the row is not to be used (0) when a mark of cid (or of another
 * cid of its shard) came since — the row may predate it, and the claim counts it — nor for
 * a stale entry with a member or set change stored since: the entry stays stale (or
 * uncached) and conv_get reads it again. The reload's count (set_loads) starts in the same
 * critical section as the check, so a change stored later is caught by set_raced as for
 * any reload. */
int convcache_wants_load_since(im_t *im, const char *cid, conv_claim_t *cl, const convcache_mark_t *since);
void convcache_loaded(im_worker_t *w, const char *cid, conv_claim_t *cl, int rc, conv_row_t *row);
/* The same, and returns what conv_get would have (referenced: release it; NULL: none). */
conv_t *convcache_loaded_get(im_worker_t *w, const char *cid, conv_claim_t *cl, int rc, conv_row_t *row);
/* A load convcache_wants_load asked for that will not be made (the read queue is full, the
 * request was refused): cl.c, if any, is released (still stale). Both clear *cl. */
void convcache_load_abandoned(conv_claim_t *cl);
void convcache_stale_all(im_t *im);
/* im_bus.c: a change to conversation cid was committed here: with a bus, every node (this
 * one too) reloads it on its next use. No-op on a single node. On a worker thread. The other
 * nodes are told at once when they were not told of cid within the last bus_conv_coalesce_ms,
 * else at the end of that window (one 'C' for all the changes of a burst, after the last). */
void im_conv_changed(im_worker_t *w, const char *cid);
void conv_retain(conv_t *c);
void conv_release(conv_t *c);
members_t *conv_members(conv_t *c); /* referenced snapshot or NULL; release with members_release */
void members_release(members_t *m);
members_t *members_new(char **ids, size_t n); /* sorts and dedups a copy */
int members_has(const members_t *m, const char *id);
/* A change of c's members or sets[] made in the cache is queued for the writer: under c->mu,
 * with the store_submit, c->set_writes++. conv_set_stored, in the job's done (stored or not;
 * takes c->mu): it is out of the writer, and when it was the last and a reload kept the
 * cache's members and sets meanwhile, c is marked stale so its next use reads them again.
 * A reload whose read began before such a done may lack the change too: it keeps them as
 * well, and marks c stale (set_loads, set_raced). */
void conv_set_stored(conv_t *c);
/* A change of conversation cid was stored that this node did not make in its cache first
 * (the REST import: rest_import.c): its cached copy, if any, is marked stale, so its next
 * use reloads it from the store as for another node's change (convcache_stale) — keeping
 * the members, sets and document while this node's own changes of them are still in the
 * writer (set_writes, doc_writes), and reading them again once those are stored. The
 * change is stamped like a stored member or set change (conv_set_stored): a reload whose
 * read may have begun before it (set_loads, convcache_wants_load_since) is not taken as
 * current. Any thread. */
void convcache_stored_behind(im_t *im, const char *cid);

/* ---- im.c: requests, replies and delivery ---- */

/* The request being handled. */
typedef struct {
  im_worker_t *w;
  im_link_t *link;
  session_t *s; /* NULL only for session open */
  lc_cmd_t *cmd;
  int has_i;
  int32_t i;
  const uint8_t *raw; /* the frame as it came, to run it again (im_sign_check) */
  size_t rawlen;
  int base64;
  int nonce;  /* the bus's word on this request's signature nonce: 0 not asked yet, 1 fresh,
              * -1 used on some node, 2 the bus could not tell (im_sign_check) */
  int fenced; /* run again after im_presence_fence */
  int loaded; /* run again after im_prefetch loaded its conversation */
} req_t;

/* What a reply needs after an asynchronous step: handles, not pointers. */
typedef struct {
  uint64_t link, session;
  int has_i;
  int32_t i;
  char *peer; /* request's peerId to echo, or NULL */
} reply_to_t;

void reply_to_init(reply_to_t *rt, const req_t *r);
void reply_to_free(reply_to_t *rt);
/* Finds the link of rt on the current worker, or NULL if it is gone. */
im_link_t *reply_to_link(im_worker_t *w, const reply_to_t *rt);

/* A completion for callers that are not a WebSocket request (the REST API): fn runs on the
 * worker once the change committed (code 0, result describing it) or failed (code = the
 * protocol error). result is borrowed for the call. */
typedef struct {
  void (*fn)(im_worker_t *w, void *arg, int code, json_t *result);
  void *arg;
} im_done_t;

static inline void im_done(im_worker_t *w, const im_done_t *d, int code, json_t *result) {
  if (d && d->fn) d->fn(w, d->arg, code, result);
}

/* Sends cmd as the reply: sets i (and peerId when the request carried one). */
void reply(const req_t *r, lc_cmd_t *cmd);
void reply_async(im_worker_t *w, const reply_to_t *rt, lc_cmd_t *cmd);
/* {cmd: error, i, errorMessage{code, reason = NAME, detail}} */
void reply_error(const req_t *r, int code, const char *detail);
void reply_error_async(im_worker_t *w, const reply_to_t *rt, int code, const char *detail);
/* A hook said no (or failed, hook_result NULL): code with the hook's code/detail as
 * appCode/appMsg (protocol.md §8). */
void reply_rejected_async(im_worker_t *w, const reply_to_t *rt, int code, json_t *hook_result);

/* A fan-out frame: one command for many sessions (a message, a receipt, a notification —
 * the protocol's server "pushes", not the offline push of push.h), encoded once and
 * shared by every recipient (style rule 9). */
typedef struct {
  atomic_int ref;
  int priority; /* chat rooms: 1 HIGH, 2 NORMAL, 3 LOW — what congestion may drop */
  int msg;      /* a message (direct: 1 stored, 2 transient), not a notification (0): counted as
                 * tern_messages_out_total{kind} */
  int64_t ts;   /* a stored message's timestamp, -1 unknown (a frame from another node): lets
                 * im_login_told pass what is newer than every message a login was told of
                 * without decoding the frame */
  char *not_to; /* chat rooms: a client whose sessions do not get it (REST sends), or NULL */
  size_t len;
  uint8_t body[];
} fanout_t;

/* cmd must not carry peerId or i; the frame always carries service 2 (IM). */
fanout_t *fanout_new(const lc_cmd_t *cmd);
void fanout_release(fanout_t *p);
/* Sends the frame to one local session, with its client id as the peerId prefix. */
void fanout_to_session(session_t *s, const fanout_t *p);
/* Delivers to every session of each client in ids (any worker), except `skip`. */
void fanout_to_clients(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip);
/* Delivers to every session in a chat room (any worker), except `skip`. */
void fanout_to_room(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip);
/* The same on this node only: what the other nodes' fan-outs arrive as (im_bus.c). */
void fanout_to_clients_local(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n, uint64_t skip);
void fanout_to_room_local(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip);
/* This node only, called under c->mu (im_order.c:deliver_in_turn): each session gets the
 * deliveries of c in the order of these calls, whichever worker makes them. */
void fanout_to_clients_ordered(im_worker_t *w, const fanout_t *p, conv_t *c, char *const *ids, size_t n, uint64_t skip);
void fanout_to_room_ordered(im_worker_t *w, const fanout_t *p, conv_t *c, uint64_t skip);

/* A task that visits every worker but `origin`, one after another, then runs `done` on
 * origin. Each worker's inbox runs in posting order, so it runs on each after whatever that
 * worker was posted before it. A chat room's ack travels so (im_msg.c): set in
 * w->room_relay before the send's fan-out, the room's first fan-out from w that posts
 * deliveries to other workers takes it (and clears the field), and the ack is sent once
 * every worker has queued the message to its members — so a sender waiting for its acks
 * sends no faster than the room is delivered (docs/architecture.md, "Chat-room
 * back-pressure"). At each stop, home included, it also waits (ROOM_WAIT_MAX_MS at most)
 * while most of the room's members there have more than ROOM_MEMBER_BEHIND bytes not yet
 * written: the pace is the room's readers', not the appends'. done gets NULL when origin
 * is gone (the server stopping): free only. */
typedef struct worker_relay {
  task_t task;
  im_t *im;
  int origin, at;
  void (*done)(struct worker_relay *r, im_worker_t *w);
  conv_t *room;              /* set by room_local (referenced): the stops wait while it is behind */
  int64_t parked_ms;         /* when it began to wait at this stop */
  struct worker_relay *next; /* in the stop's im_worker_t.parked */
} worker_relay_t;
/* A relay no fan-out took (the room had no one present): posted to its origin, which runs
 * done; from any worker, under a conversation's lock too. */
void worker_relay_finish(im_worker_t *w, worker_relay_t *r);

/* im_order.c — a conversation's stored messages in history order (one node). */
/* After the commit of the send numbered `no` (c->dlv_next under the lock at submit): its
 * fan-out to m (or the room's sessions; frame NULL: the commit failed) goes when every
 * earlier send's has. Takes no reference. */
void deliver_in_turn(im_worker_t *w, conv_t *c, members_t *m, fanout_t *frame, uint64_t skip, uint64_t no);

/* ---- im_bus.c: across nodes; only with a bus (im->bus) ---- */
void im_bus_attach(im_t *im, bus_t *bus);
/* SIGTERM in a cluster, from the main thread before the workers stop: this node leaves the
 * bus (bus_leave), then every connection gets {cmd: goaway} (queued before the workers'
 * 1001 close, so it goes out first) — when another node is live to go to. When none is
 * (the last node of a cluster stops), no goaway: the official JS SDK answers one by asking
 * the router, and a router that does not answer is a failure its goaway handler does not
 * catch (an unhandled rejection in the app; docs/protocol-map.md, goaway), where a plain
 * close is retried quietly. 1 if goaway was sent (the caller then drains), else 0. */
int im_cluster_leave(im_t *im);
/* One message to each other node holding any of ids, with the frame and its recipients. */
void im_bus_fanout(im_worker_t *w, const fanout_t *p, char *const *ids, size_t n);
/* The frame to each other node with sessions in room c. */
void im_bus_room(im_worker_t *w, const fanout_t *p, conv_t *c);
/* The clients ids out of room c on every other node with sessions in it (§3.17). */
void im_bus_room_kick(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n);
/* Ends a session of client on another node (4111, 4115). */
void im_bus_kick(im_worker_t *w, const bus_ref_t *ref, const char *client, int code, const char *detail);
/* client logged in again here (a reconnect): each other node holding a session of it is
 * told, and marks those sessions' sends in flight as their end would (im_bus.c, 'S'). */
void im_bus_sends_gone(im_worker_t *w, const char *client);
/* A revocation made here, told to every other node (revoke_record there). */
void im_bus_revoke(im_worker_t *w, int client_kind, const uint8_t *lineage, const char *client, int64_t at,
                   int64_t expires_at);
/* A signature check (sign_check) whose nonce is, in a cluster, refused when any node saw
 * it: the signature and window are checked here; then the request is parked (IM_PARKED:
 * the caller returns, doing nothing) while the bus claims the nonce, and later frames of
 * the link wait behind it; when the answer comes the request runs again from the start
 * with r->nonce set, and this returns 0 or TERN_EEXIST. When the request's frame would pass
 * its address's or the server's budget of bytes held so (bus_park_limit_ip, _total), it is
 * answered {cmd: error} 4116 and not run: IM_PARKED too (the caller does nothing more). The
 * bus down: this node's replay cache alone decides (docs/cluster.md). Without a bus it is
 * sign_check. */
#define IM_PARKED 1
int im_sign_check(req_t *r, const char *text, int64_t t, const char *n, const char *s);
/* In a cluster, a request that answers from the other nodes' presence (session query,
 * room counts and members, a send's or a start's fan-out) first makes sure this node has
 * applied every presence change that reached it before the request did (bus_fence): when
 * some is still unapplied, the request is parked like a nonce check and runs again once the
 * home worker has applied it — IM_PARKED, the caller returns. 0: go on. Once per request. */
int im_presence_fence(req_t *r);
/* The fence's parts, for what waits otherwise than a parked request (the app's kick, a
 * REST read): whether this node's subscriber holds presence not yet applied (bus_fence_
 * needed; 0 without a bus), and the fence itself, counted in tern_bus_fences_total —
 * done(arg) runs on the calling worker once the home worker has applied it (bus_fence). */
int im_fence_needed(const im_t *im);
void im_fence_start(im_t *im, void (*done)(void *arg), void *arg);
#define IM_RUN_FENCED 3 /* im_link_run's nonce for a request run again after its fence */
#define IM_RUN_LOADED 4 /* ... and after its conversation was loaded off the loop (im_prefetch.c) */

/* im_prefetch.c: when the conversation r names is not cached (or stale) and the store reads
 * off the loop, the read is submitted, the link paused and IM_PARKED returned (the request
 * runs again once it is cached); else 0: go on. */
int im_prefetch(req_t *r);
/* The same for what else an `ack`, a `read`, a `logs` or a `conv/is_member` reads besides
 * the conversation im_prefetch reads: the conversations the cache lacks of a `read` (up to
 * 200 tuples and 200 cids) and of an is_member (up to 100 cids), and in a conversation with
 * imported ids (c->ext_ids) the keys of the ids named (store_msg_ext_get). IM_PARKED (run again with the answers: w->keys_read, which conv_get
 * and msg_key_resolve look at first) or 0: go on. */
int im_prefetch_keys(req_t *r);
/* For conv_get and msg_key_resolve, in such a run again: 1 when cid was read and found
 * missing; and 1 with (*ts, *seq) or 0 (not an imported id: parse it) when mid's key in
 * conv was read; -1: not read ahead. */
int im_keys_absent(const im_worker_t *w, const char *cid);
int im_keys_answer(const im_worker_t *w, int64_t conv, const char *mid, int64_t *ts, int64_t *seq);
/* The same for what a conversation command reads besides its conversation's row: a
 * conv/start with `unique` its twin (store_conv_find_unique, and when found the twin's row,
 * cached, and its document), a conv/max_read its members' progress (store_progress, only
 * for a member), a conv/update of a conversation cached without its document that
 * document (store_conv_doc), an add (a join) and a client blacklist's query or check
 * their store_client_blocked / store_client_blocks, a conv/query's tempConvIds their
 * conversations (store_conv_fetch). IM_PARKED (run again with the answers: w->cmd_read) or 0: go on. Before
 * the command's signature is checked, so its nonce is claimed once. */
int im_prefetch_cmd(req_t *r);
/* For the run again: 1 when not read ahead (read it on the loop); else what the store
 * answered — im_cmd_unique 0 (*cid malloc'd, *created) or TERN_ENOENT for unique id hex;
 * im_cmd_doc 0 with conversation c's document (*text malloc'd or NULL: a unique start's
 * twin's, a conv/update's — the latter only while c is the entry it was read for and no
 * change of c was queued since, c->doc_gen: c->mu held); im_cmd_progress
 * 0 after calling cb for each member of conv. */
int im_cmd_unique(const im_worker_t *w, const char *hex, char **cid, int64_t *created);
int im_cmd_doc(const im_worker_t *w, const conv_t *c, char **text);
int im_cmd_progress(const im_worker_t *w, int64_t conv, progress_cb cb, void *arg);
/* A join's or an add's clients (those not members nor blocked by the conversation), and a
 * client blacklist's check: store_client_blocked's 1 or 0, or -2: not read ahead. A client
 * blacklist's query: 0 after calling cb for each of the page (store_client_blocks with
 * these arguments), or 1: not read ahead. */
int im_cmd_blocked(const im_worker_t *w, const char *client, const char *cid);
/* A conv/query's tempConvIds (the first n, with flags): the results' array (referenced),
 * or NULL: not read ahead. */
json_t *im_cmd_temps(const im_worker_t *w, size_t n, int flags);
int im_cmd_blocks(const im_worker_t *w, const char *client, const char *after, int limit,
                  void (*cb)(void *arg, const char *cid), void *arg);

/* A request run again once a read off the loop has answered (im_prefetch.c's three kinds,
 * im_dedupe.c's): its frame kept, its link paused while the read runs. Embed first in the
 * read's struct. */
typedef struct {
  store_read_t rd; /* first */
  im_t *im;
  uint64_t link;
  struct ipcount_entry *ip; /* holds one of its address's MAX_IP_READS (im->read_ips) */
  int base64;
  size_t n;
  uint8_t *d; /* the request's frame */
} im_rerun_t;
/* Whether r may wait so: a store whose reads are off the loop, a link that can be paused,
 * and a request not already run again for the bus (a nonce's answer, a presence fence: their
 * state is not to be redone) nor one of the frames a bus park held (l->replaying: they run
 * in a row, and the rest would pass it). */
int im_rerun_may(const req_t *r);
/* Keeps r's frame, submits x->rd with fn (on a read thread) and done (on this worker, with
 * x), and pauses r's link: IM_PARKED. 0 when its address has MAX_IP_READS reads running
 * (history pages and these together), or the server's read queue is full: nothing kept,
 * nothing paused, the caller reads on the loop as before. */
int im_rerun_submit(req_t *r, im_rerun_t *x, int (*fn)(store_reader_t *, store_read_t *), void (*done)(task_t *),
                    metric_t counted);
/* In done: the request's link on x's worker (*w), or NULL when it went (or the server is
 * stopping); then im_rerun_run runs the request again (IM_RUN_LOADED: its close code, 0),
 * and im_rerun_end closes the link with that code or unpauses it — which runs the frames
 * that waited, so whatever the re-run was told (w->token_read, w->dedupe_read) is cleared
 * between the two. The run again may wait for another read (its conversation read, then
 * its document: l->loads counts them); the link is unpaused only at the last one's end,
 * so no frame behind it runs first. im_rerun_free frees the frame either way. */
im_link_t *im_rerun_link(im_rerun_t *x, im_worker_t **w);
int im_rerun_run(im_link_t *l, im_rerun_t *x);
void im_rerun_end(im_link_t *l, int code);
void im_rerun_free(im_rerun_t *x);
/* The same for a reconnect's session/open carrying a session token (`st`) that passes every
 * check needing no store: the store's revocations of it are read off the loop, the link
 * paused, and the open runs again with the answer (w->token_read, which im_session_open
 * gives revoke_check_read). IM_PARKED or 0 (go on: open it now). Before anything of the
 * open ran, so nothing (a signature's nonce, a session) is done twice. */
int im_prefetch_token(req_t *r);

/* Why a link's input is paused (l->paused, a set): chat-room acks waiting (im_msg.c), a
 * request waiting for its conversation (im_prefetch.c). The link is paused while any is. */
#define IM_PAUSE_ROOM 1
#define IM_PAUSE_LOAD 2
void im_link_pause(im_link_t *l, int why, int on);
/* Runs one frame (im_link_message's body); nonce as req_t.nonce. A close code or 0. */
int im_link_run(im_link_t *l, const uint8_t *p, size_t n, int base64, int nonce);
/* A frame that arrives while the link's request is parked waits (copied); a close code
 * when the link holds too many (PARK_MAX_FRAMES, PARK_MAX_BYTES), or when its bytes would
 * pass its address's (bus_park_limit_ip) or the server's (bus_park_limit_total) budget of
 * bytes held so. */
int im_park_hold(im_link_t *l, const uint8_t *p, size_t n, int base64);
void im_park_free(im_link_t *l);
/* ---- im_hold.c: replies held until a presence change is published (docs/cluster.md) */
/* Sends a frame to the peer: through the link, or behind a held reply (all of im's frames
 * go this way, so the peer sees them in the order they were sent). */
void im_link_send(im_link_t *l, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen);
/* After a login, logout, chat-room join or quit (or a block's kick out of a room, or a
 * session the server ended: 4111, 4115) changed
 * this node's presence, and before its reply (the kick's push): with a bus, the link's output from now on waits until the change is published
 * (or the bus cannot confirm it: down, or no answer within BUS_WAIT_MAX_MS + 1 s). No-op
 * without a bus or when nothing is unpublished. */
void im_hold_reply(im_worker_t *w, im_link_t *l);
void im_hold_free(im_link_t *l); /* the link is gone */
/* A login's counts: the link's output from now on is held until the read's task has sent
 * them (im_hold_read_out, then im_hold_read_end). With a presence wait under way the read
 * starts when it ends (the other nodes then push to the login), else now (on SQLite, with
 * its task, before this returns). *gen names the hold for the task. TERN_EAGAIN (nothing
 * done) when another login's counts already hold the link: one per connection. A link
 * that goes away first runs rd's task with result TERN_ECLOSED if rd never started. */
int im_hold_read(im_worker_t *w, im_link_t *l, store_read_t *rd, uint64_t *gen);
/* Before a login's answer: the link's output is held from here (the answer waits for the
 * counts too); im_hold_read takes the hold over, or im_hold_settle ends it when nothing
 * else holds it. */
void im_hold_open(im_link_t *l);
void im_hold_settle(im_link_t *l);
/* Submits rd to the store's read threads; when their queue is full (STORE_READ_QUEUE_MAX)
 * it runs on the worker's own reader, on the loop, as before reads moved off it. Either way
 * rd's task runs (at once in the second case). */
void im_hold_read_submit(im_worker_t *w, store_read_t *rd);
/* In the read's task: 1 if the hold gen is still there (not cut by HOLD_MAX_BYTES), and then
 * what is sent until im_hold_read_end goes ahead of what was held since im_hold_read. */
int im_hold_read_out(im_link_t *l, uint64_t gen);
/* Frames held since im_hold_read follow, except those drop says the peer has (it sees each
 * one: prefix and body); the hold ends unless a presence wait still holds it. */
typedef int (*im_hold_drop_fn)(void *arg, const uint8_t *prefix, size_t plen, const uint8_t *body, size_t blen);
void im_hold_read_end(im_link_t *l, uint64_t gen, im_hold_drop_fn drop, void *arg);
void im_hold_metrics(im_t *im, buf_t *out);
/* Prometheus lines: bytes held so, connections closed for it (routes.c, with a bus). */
void im_bus_metrics(im_t *im, buf_t *out);
/* What im_bus_attach made (im_free). */
void im_bus_free(im_t *im);
/* Distinct clients online, on this node and (with a bus) on the others (REST stats). */
size_t im_clients_online(im_t *im);
/* Has client a session on this node or (with a bus) on another? */
int im_client_online(im_t *im, const char *client);
/* max_client_rate split between the nodes holding client (docs/cluster.md): rate on one
 * node, rate/k on each of k. */
long im_client_rate(im_t *im, const char *client, long rate);

session_t *session_find(im_link_t *l, const char *client_id);
session_t *im_session_get(im_worker_t *w, uint64_t handle);
void im_room_leave(im_worker_t *w, session_t *s);
void im_room_join(im_worker_t *w, session_t *s, conv_t *c);
/* Every session of the clients ids that is in room c (on any worker) leaves it and gets p:
 * a blacklisted client is out of the room at once (§3.17). */
void im_room_kick(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n);
void im_room_kick_local(im_worker_t *w, conv_t *c, const fanout_t *p, char *const *ids, size_t n); /* this node's */
/* A session left its room by dropping: remember the room for a reconnect within 30 min. */
void im_room_remember(im_t *im, session_t *s);
/* After a reconnect login: back into the remembered room, if any. */
void im_room_rejoin(im_worker_t *w, session_t *s);

/* ---- the handlers ---- */
void im_session_open(req_t *r);
void im_session_close(req_t *r);
void im_session_refresh(req_t *r);
void im_session_query(req_t *r);
void im_session_drop(im_worker_t *w, session_t *s, int code);
/* Ends a session anywhere (any worker): it gets session/closed {code, reason, detail}. */
void im_session_kick(im_worker_t *w, uint64_t handle, int code, const char *detail);
/* The same, only when the session is client's (a kick from another node). */
void im_session_kick_client(im_worker_t *w, uint64_t handle, const char *client, int code, const char *detail);
/* Session handle of client on this node (any worker): its sends in flight marked as its end
 * marks them (im_msg_sending_gone); the session goes on. No-op when it is gone. */
void im_session_sends_gone(im_worker_t *w, uint64_t handle, const char *client);
/* The app's kick of client (rest_kick): its sessions on the other nodes, as this node's
 * replica lists them, are sent their kick (im_bus_kick), and this node's (any worker) are
 * ended as im_session_kick does; done is called on w's worker (code 0, result NULL) once
 * each of this node's has ended and, with a bus, the other nodes have the ends queued
 * (bus_wait: confirmed, or forced within its bound), so that a check-online anywhere no
 * longer lists them — never inside this call (nothing to end: on w's next turn). With a
 * bus whose subscriber holds input not yet applied (bus_fence_needed), the lookups wait
 * for a presence fence first: a login answered on another node a moment before is in that
 * input, and a kick that looked before it was applied would find the client nowhere and
 * never end that session. */
void im_session_kick_app(im_worker_t *w, const char *client, int code, const char *detail, const im_done_t *done);
/* The app's kick is answered once this node's replica lists none of the sessions on other
 * nodes it sent a kick to (their nodes ended them and published the ends), or after
 * KICK_REMOTE_WAIT_MS anyway (counted in tern_kick_remote_waits_total{outcome="timeout"},
 * logged). Every such session is kicked and awaited. The waits are
 * kept on BUS_HOME_WORKER: _start with its loop when it starts (im_worker_bus_start),
 * _stop when it stops (the waits left are answered then); _seen is the bus's
 * bus_set_applied callback (the replica changed), _tick the timer's. */
#define KICK_REMOTE_WAIT_MS 2000
void im_session_kick_waits_start(im_t *im, uv_loop_t *loop);
void im_session_kick_waits_stop(im_t *im);
void im_session_kick_waits_seen(void *im);
void im_session_kick_waits_tick(uv_timer_t *t);
/* w begins stopping (its connections closing, still written): each of its kicks not answered yet gets
 * done now with TERN_ECLOSED and {"error"} (the REST kick: 503 "server stopping"), since
 * what it waits for may never come back to a stopped worker (another worker's kick of a
 * session, posted after that worker stopped, runs only in server_free, its connection
 * gone). Its sessions still end: every session of a stopping node is closed (1001). What
 * is left of such a kick is freed when its last part comes back, done not called again. */
void im_session_kicks_stopping(im_worker_t *w);
/* Checks s/t/n of a request against `text` (which it frees); replies `code` and returns -1
 * when it fails. Call only when the operation's signing is switched on. */
int im_check_signature(req_t *r, char *text, int64_t t, const char *n, const char *s, int code);

void im_conv_start(req_t *r);
void im_conv_query(req_t *r);
void im_conv_count(req_t *r);
void im_conv_members_change(req_t *r, int add);
void im_conv_online_members(req_t *r);
void im_conv_is_member(req_t *r);
void im_conv_max_read(req_t *r);
void im_conv_update(req_t *r);
/* The protocol's conversation object (§3.5) from the store's view of one (conv_json.c);
 * conv_view_append is a conv_view_cb that appends it to the JSON array arr. */
json_t *conv_view_json(const conv_view_t *v);
void conv_view_append(void *arr, const conv_view_t *v);
/* Conversation creation pieces shared by conv/start and the REST API. */
void conv_new_id(char *out, int temp); /* 24 hex, "_tmp:"-prefixed when temp; out ≥ 30 */
/* The unique id (32 hex) of a sorted member list; temp: of a temporary conversation's (a
 * different id from a normal conversation's over the same members). */
void conv_unique_id(char *const *members, size_t n, int temp, char out[33]);
/* The uniqueId an existing unique conversation answers a start with: the one in its
 * document (an imported conversation keeps LeanCloud's there, docs/migrate-api.md; tern's
 * own hold the hash they were found by), else `hash`. malloc'd. */
char *conv_visible_unique_id(im_worker_t *w, const char *cid, const char *hash);
void conv_doc_strip(json_t *doc); /* drops the keys the server owns */
/* A new conversation as its creator asks for it; conv/start and the app's create (REST)
 * both build theirs from one (im_conv.c: conv_build), so the stored row and document are
 * made one way. */
typedef struct {
  int kind;             /* CONV_* */
  const char *creator;  /* the creator's id; NULL: none (the app created it) */
  char *const *members; /* normal and temporary ones: sorted and made distinct here */
  size_t n;
  json_t *doc;  /* the caller's other fields (borrowed; the server's keys dropped) */
  int unique;   /* one per member set: `uniqueId` from the sorted members */
  int temp_ttl; /* CONV_TEMP: seconds (0: temp_conv_ttl), at most TEMP_TTL_MAX */
} conv_spec_t;
/* The app's back end creates a conversation (REST POST …/conversations, …/chatrooms,
 * …/service-conversations): stored, then cached, then done gets {"objectId", "createdAt"
 * (ms), "existing": false}; a unique one whose twin exists (before or at the commit) gets
 * the twin's id and createdAt with "existing": true. Silent: no notification, no hook
 * (docs/protocol-map.md). Returns 0, or TERN_E2BIG (err set, done not called) when the
 * document would pass max_conv_doc. */
int conv_create_apply(im_worker_t *w, const conv_spec_t *spec, const im_done_t *done, char *err, size_t errlen);

/* The apply steps behind the handlers, for the REST API: they take the reference of c and
 * answer through rt (WebSocket; may be zeroed) and done (may be NULL). */
void conv_members_apply(im_worker_t *w, conv_t *c, const char *initby, char *const *ids, size_t n, int add,
                        const reply_to_t *rt, const im_done_t *done);
/* A conversation query (protocol.md §3.5) run on the store's query threads (store.h), within
 * query_timeout: done gets {"results": [...]} (with "count": how many the where selects, when
 * count is set; limit 0 then asks for the count alone), or code 4310 (4300 when storage
 * failed) with {"error": why}. Returns 0, or with err set (done is then not called)
 * TERN_EINVAL when where/sort are refused (convq_parse's or the backend's reason),
 * TERN_EAGAIN when `ip` has max_queries_per_ip running. */
int conv_query_run(im_worker_t *w, const char *ip, json_t *where, const char *self, const char *sort, int limit,
                   int skip, int flags, int count, const im_done_t *done, char *err, size_t errlen);
/* Queries one connection may have running at once; more get 4310 at once. */
#define MAX_LINK_QUERIES 4
/* History reads one connection may have running at once off the loop (store_read_submit);
 * more get 4311 at once. */
#define MAX_LINK_READS 16
/* The same per peer address (all its connections, every worker); more get 4311 at once. */
#define MAX_IP_READS 64
/* attr: an update (dotted keys, operators); or mute 0/1 for client `initby` when attr is NULL. */
void conv_attr_apply(im_worker_t *w, conv_t *c, const char *initby, json_t *attr, int mute, const im_done_t *done);
/* Mutes (or unmutes) offline push for several clients at once (REST …/mutes). */
void conv_mutes_apply(im_worker_t *w, conv_t *c, char *const *ids, size_t n, int mute, const im_done_t *done);
/* Shut-up (SET_SHUTUP) and blacklist (SET_BLOCK) changes for the REST API, as the app's
 * back end (no rights checked) named `initby`: same snapshot swap, storage, pushes and
 * limits as conv/add_shutup and blacklist/block. expire_at (ms, 0: never): a temporary
 * shut-up, lifted by the sweep (conv_silence_lift). done gets {"allowed", "failed": [{client_id, code,
 * error}], "updated_at"}. They take the reference of c. */
void conv_shutup_apply(im_worker_t *w, conv_t *c, const char *initby, char *const *ids, size_t n, int add,
                       int64_t expire_at, const im_done_t *done);
void conv_block_apply(im_worker_t *w, conv_t *c, const char *initby, char *const *ids, size_t n, int add,
                      const im_done_t *done);
/* Lifts a temporary shut-up whose time has come (store_shutups_expired's row, found by the
 * sweep, im_notif.c): 1 when lifted, 0 when the conversation is gone (the row is dropped). */
int conv_silence_lift(im_worker_t *w, int64_t conv, const char *cid, const char *client);
/* Gives member pid `role` (Member or Manager) as the app's back end: the row keeps the role
 * unless drop_row (Member by the row's absence). Returns a protocol error (detail set) when
 * refused — the owner, an unknown role, not a member — else 0 and done gets {"updated_at",
 * "client_id", "role", "info_id" (when the row stays)}. Takes the reference of c either way. */
int conv_role_apply(im_worker_t *w, conv_t *c, const char *initby, const char *pid, const char *role, int drop_row,
                    const im_done_t *done, const char **detail);
/* Distinct clients that opened a session since 00:00 UTC today (GET /1.2/rtm/stats
 * user_count_today), kept in memory: the count starts again when the process does. */
void im_daily_note(const char *client, int64_t now);
size_t im_daily_count(int64_t now);
void im_conv_mute(req_t *r, int mute);
void im_conv_member_info(req_t *r);
void im_conv_shutup(req_t *r, int add);
void im_conv_query_shutup(req_t *r);
void im_conv_check_shutup(req_t *r);
void im_blacklist(req_t *r);

enum { ROLE_NONE = 0, ROLE_MEMBER = 1, ROLE_MANAGER = 2, ROLE_OWNER = 3 };
int conv_role(conv_t *c, const char *client);
/* Members who left lose their role (cache side; storage drops the rows). Call under c->mu. */
void conv_forget_roles(conv_t *c, char *const *ids, size_t n);
members_t *conv_set(conv_t *c, int set); /* referenced snapshot or NULL */
int conv_in_set(conv_t *c, int set, const char *client);

/* Why client `id` may not join or be added to c, or 0: 4548 when the conversation blocked
 * it or it blocked the conversation (§3.17). Call under c->mu. */
int conv_join_refused(im_worker_t *w, conv_t *c, const char *id);
/* Deletes c now: a tombstone at once (lookups find nothing from then on), its row once the
 * delete commits (queued after everything already submitted); then done (may be NULL) gets
 * code 0, or 4300 when storage failed. idle_only: leave a chat room with people in it alone
 * (returns 0, done not called). Takes c's reference either way; 1 when queued. The one way
 * a conversation goes: the idle sweep, an expired twin, REST DELETE. */
int conv_delete(im_worker_t *w, conv_t *c, int idle_only, const im_done_t *done);

/* im_conv.c helpers shared with the other conversation modules */
conv_t *need_conv(req_t *r, const char *cid, int missing_code);
/* For each ids[i], the index of the first id equal to it (i when none comes before): the
 * repeats in one request's list in O(n log n) — a 64 KiB frame holds some 13,000 ids, and
 * comparing each with every one before it held a worker's loop for seconds. malloc'd. */
size_t *ids_first_index(char *const *ids, size_t n);
/* failedPids of a members or set change's reply: the refused ids grouped by error code. */
typedef struct {
  Lc__ErrorCommand **v;
  size_t n;
} failed_pids_t;
void failed_pids_add(failed_pids_t *f, int code, const char *pid);
void failed_pids_free(failed_pids_t *f);
/* What the REST API hears of such a change: {"allowed": [ids], "failed": [{client_id,
 * code, error}], "updated_at": at}. */
json_t *pids_result_json(char *const *allowed, size_t nallowed, const failed_pids_t *f, int64_t at);
/* need_conv for a command's convMessage: none at all gets 4303, as a missing cid does. */
conv_t *need_conv_in(req_t *r, const Lc__ConvCommand *in);
void conv_notify(im_worker_t *w, const char *cid, int op, const char *initby, char **m, size_t nm, int64_t udate,
                 char *const *to, size_t nto, uint64_t skip);
/* The next updatedAt: now, but never at or before the previous one. Call under c->mu. */
int64_t conv_touch(conv_t *c);

/* May `sender` send to (or edit and recall its messages in) c (§3.6)? 0 with *mp the member
 * snapshot (referenced; NULL for chat rooms and service conversations), or the protocol
 * error with a detail: 4323 expired, 4401 not a member, 4548 blocked, 4563 shut up. */
int msg_may_send(conv_t *c, const char *sender, members_t **mp, const char **detail);
void im_msg_direct(req_t *r);
/* The worker is freed: stored sends whose fan-out still waits for the subscriber are dropped
 * (stored; nobody is connected to tell). */
void im_msg_rechecks_free(im_worker_t *w);

/* ---- resends (im_dedupe.c; docs/protocol-map.md, "dt") */
/* Longest dt kept and compared (a uuid is 36); a longer one, or one that is not UTF-8, is
 * ignored: the message is stored without it (docs/security.md). */
#define IM_DT_MAX 64
/* Sends checked after one reconnect, at most: each costs a store read (up to STORE_DT_SCAN
 * rows; on PostgreSQL off the worker's loop, im_dedupe_prefetch), and any client may log in with r:true; the SDKs resend only
 * what was unacknowledged at the drop, a few messages, first thing after the reconnect. */
#define IM_DEDUPE_CHECKS 64
/* What the store keeps of dt: a 64-bit hash (never 0), or 0 when dt is absent or unusable. */
int64_t im_dt_hash(const char *dt);
/* Is a send of dt by s's client into c a resend? Only checked within dedupe_window of a
 * reconnect of s (r:true), for its first IM_DEDUPE_CHECKS sends with a dt. 1 with the stored message's id (*mid, malloc'd) and timestamp,
 * 0 (no: store it), or TERN_ESTORE (the store could not say: refuse the send). *since: 0,
 * or, when the store holds no copy yet (0 returned after a check), the job's dt_since — the
 * writer compares again after every job submitted before it (store.h). */
int im_dedupe_find(im_worker_t *w, session_t *s, const conv_t *c, int64_t dt, char **mid, int64_t *ts, int64_t *since);
/* Before im_dedupe_find, on a store that reads off the loop (PostgreSQL): when the send
 * would be checked, its read goes to the store's read threads, the link is paused, and the
 * request runs again from the start with the answer (w->dedupe_read), which im_dedupe_find
 * then uses: IM_PARKED (the caller returns, nothing done). 0: go on (SQLite; not checked;
 * already read; a request run again for the bus; the read queue full: read on the loop). */
int im_dedupe_prefetch(req_t *r, const conv_t *c, int64_t dt);
/* s ends: its sends still in their commit are marked gone (store.h: job_msg_insert_t.gone),
 * so that a copy whose resend was stored first is dropped (im_msg.c). */
void im_msg_sending_gone(session_t *s);
void im_msg_ack(req_t *r);
void im_msg_read(req_t *r);
void im_msg_logs(req_t *r);
/* ---- im_login.c: a login's unread counts (or 2.1's offline messages), read off the loop */
/* After "session opened": reads what the login is told and sends it, the link's output held
 * behind it (im_hold_read). One read per session at a time: a re-login while its counts
 * are read reads none (the read under way answers it). last_patch_time > 0: the patches
 * since are read beside the counts and pushed right after them (im_patch_catch_up_read);
 * a re-login while the counts are read reads them on the loop (im_patch_catch_up). */
void im_msg_after_login(im_worker_t *w, session_t *s, int64_t last_unread_notif_time, int64_t last_patch_time);
/* A message push to s (p->msg == 1) while s->told is set: 1 if its counts already told it
 * (it is not sent). s->told lapses TOLD_MS after the counts. */
int im_login_told(session_t *s, const fanout_t *p);
void im_login_told_free(session_t *s);
/* A message sent over REST (§7.1, §7.2); pointers borrowed for the call. */
typedef struct {
  const uint8_t *data;
  size_t len;
  int transient, no_sync, priority, mention_all;
  char **mentions;
  size_t nm;
  const char *push_data; /* JSON text or NULL */
  char **to;             /* nto > 0: only these clients get it and read it (service conversations) */
  size_t nto;
} rest_msg_t;
/* REST: send as `from` (membership not checked); done gets {"msg-id", "timestamp"}. */
void im_rest_send(im_worker_t *w, conv_t *c, const char *from, const rest_msg_t *msg, const im_done_t *done);
/* REST history (§7.1): items newest first unless reversed; viewer (or NULL: everything)
 * limits it to the messages that client may read. */
int im_rest_history(im_worker_t *w, conv_t *c, const char *viewer, const char *msgid, int64_t ts,
                    const char *till_msgid, int64_t till_ts, int include_start, int include_stop, int reversed,
                    int limit, json_t **out);
/* A message's content as JSON (hooks, REST, the conversation object's `msg`): the text,
 * or base64 when bin. */
json_t *msg_content_json(const uint8_t *data, size_t len, int bin);
/* Adds patch-timestamp, mention-all, mention-pids and recall to a REST history item. */
void im_rest_item_extras(json_t *it, const msg_view_t *m);
/* im_notif.c: keep a permanent notification for /rtm/notifications; the expiry sweep */
void notif_record(im_worker_t *w, const lc_cmd_t *cmd, char *const *to, size_t n);
void im_worker_sweep(im_worker_t *w, int64_t now);
void im_wills_fire(im_worker_t *w, session_t *s);
void im_wills_free(session_t *s);
void im_patch_modify(req_t *r);
/* REST edit (data, len; text NUL-terminated) or recall of message mid as `from`, who must
 * be its sender. Returns a protocol error code when the patch is refused up front (the
 * message is not found, is someone else's, is too long, patching is off); else 0 and done
 * gets {"patchTs"} once stored, or the error. */
int im_rest_patch(im_worker_t *w, const char *cid, const char *mid, const char *from, const uint8_t *data, size_t len,
                  int bin, int recall, const im_done_t *done);
/* REST delete of the server's copy of message mid (from, when given, must be its sender);
 * clients keep theirs. Same return and done as im_rest_patch (done gets {}). */
int im_rest_delete(im_worker_t *w, conv_t *c, const char *mid, const char *from, const im_done_t *done);
/* A login's catch-up (lastPatchTime `since`): every patch newer than it in the client's
 * conversations, pushed to s as one patch/modify. im_patch_catch_up reads on the worker's
 * reader, on the loop; im_login.c reads it beside the login's counts, off the loop:
 * im_patch_catch_up_read on any thread with the reader it is given (NULL: since <= 0 or
 * the read failed, nothing to send), then im_patch_catch_up_send on s's worker (s NULL:
 * the session is gone, it only frees c). */
void im_patch_catch_up(im_worker_t *w, session_t *s, int64_t since);
struct im_catch_up *im_patch_catch_up_read(store_reader_t *r, const char *client, int64_t since);
void im_patch_catch_up_send(session_t *s, struct im_catch_up *c);
/* `_lctype` of a typed message's JSON text, if it has one (1) */
int scan_lctype(const char *s, size_t n, int *out);

/* ---- im_device.c: the devices a client's offline pushes go to (protocol.md §3.3, §10) ---- */
/* `{cmd: report, op: upload, reportMessage: {initiative, type: "token", data: <token>}}`
 * (§3.3): the token becomes a device of the session's client (an APNs token: type "ios");
 * `report/uploaded` is the reply once it is stored. */
void im_device_report(req_t *r);
/* A login's SessionCommand.deviceToken (Swift sends its APNs token, or a UDID when it has
 * none: only hex tokens are taken). Fire and forget. */
void im_device_login_token(im_worker_t *w, const char *client, const char *token);
/* 1 when t is a device token the registry takes: 1 to 256 printable characters. */
int device_token_valid(const char *t);

/* ---- msgid.c: message ids carry their storage key ---- */
#define MSGID_LEN 22
void msgid_make(int64_t ts, int64_t seq, char out[MSGID_LEN + 1]);
int msgid_parse(const char *mid, int64_t *ts, int64_t *seq);
/* The storage key of message `mid` in conversation c, for every id a client or the REST
 * API names: in a conversation with imported messages (c->ext_ids) their own ids map to
 * keys in msg_ext, looked up first; otherwise, and for tern's ids, the key the id encodes
 * (no lookup). 0, or TERN_EINVAL when the id names no key. */
int msg_key_resolve(im_worker_t *w, conv_t *c, const char *mid, int64_t *ts, int64_t *seq);

/* ---- helpers ---- */
int64_t conv_kind_wire(int kind); /* convType on the wire */
void iso_now(char out[25]);

#endif
