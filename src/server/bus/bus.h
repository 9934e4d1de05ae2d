/* bus.h — several ternd nodes acting as one service (issue #14 §2, docs/cluster.md).
 *
 * The bus is what a node knows of the others and how it reaches them; it knows nothing of
 * the IM protocol. im decides what crosses (a fan-out frame and its recipients, a kick, a
 * revocation) and hands the bus opaque bytes; the bus offers:
 *
 *   - node identity: this node's id and public URL, and the live nodes (a heartbeat with a
 *     TTL each; a node that stops says goodbye, one that dies expires within seconds);
 *   - presence: this node publishes its sessions (client, session handle, tag) and its
 *     chat-room counts; every node keeps a replica of the others', read without I/O, so
 *     fan-out and single-sign-on checks stay synchronous on the worker loops;
 *   - delivery: bytes to one node (one channel per node) or to all;
 *   - routing: the least-loaded live node's public URL (/v1/route);
 *   - claims: a shared "first one wins" (SET NX with a TTL), for the signature nonces.
 *
 * Threading: every function may be called from any worker thread unless said otherwise;
 * the replica is read under a read lock. Sends go out on the calling worker's own
 * connection (so one worker's sends keep their order). Received bytes are handed to the
 * recv callback on worker BUS_HOME_WORKER's thread, in the order they were published.
 *
 * With no bus (NULL), im behaves as a single node: every function here takes a non-NULL
 * bus; callers check im->bus first, so the single-node hot path costs one NULL test. */
#ifndef TERN_BUS_H
#define TERN_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "server.h"

#define BUS_HOME_WORKER 0 /* the worker whose loop runs the subscriber and the registry poll */
#define BUS_MAX_NODES 256
#define BUS_NODE_ID_MAX 64

typedef struct bus bus_t;

typedef struct {
  const char *url;     /* redis://host:port[/db] */
  const char *node_id; /* NULL or "": generated (random, stable for the process) */
  /* what /v1/route hands out for this node: read from *public_url when first needed, on
   * the workers' threads (server_start fills srv->public_url before it starts them) */
  char *const *public_url;
  int nworkers;
  void (*post)(void *arg, int worker, task_t *t); /* worker_post: runs a task on a worker */
  void *post_arg;
} bus_options_t;

/* Parses the URL and resolves its host (on the calling thread: call at start). 0, or
 * TERN_ECONFIG with err set. Connections are made by bus_worker_start. */
int bus_open(const bus_options_t *o, bus_t **out, char *err, size_t errlen);
/* After every worker stopped; NULL: no-op. */
void bus_free(bus_t *b);

/* What arrives for this node (sent to it, or broadcast by another node): p is borrowed
 * for the call. Runs on BUS_HOME_WORKER. Set before the workers start. */
typedef void (*bus_recv_cb)(void *arg, const uint8_t *p, size_t n);
void bus_set_recv(bus_t *b, bus_recv_cb cb, void *arg);
/* Broadcasts may have been lost: this node's subscriber has just (re)subscribed (whatever
 * was published while it was away is gone: pub/sub is at-most-once), or another node
 * rewrote its record after a loss of its own (what it broadcast meanwhile went nowhere).
 * cb(arg) runs on BUS_HOME_WORKER; whoever caches what broadcasts invalidate drops it.
 * Set before the workers start. */
void bus_set_resync(bus_t *b, void (*cb)(void *arg), void *arg);
/* This node's heartbeat lapsed while its connection to the bus stayed up (the process was
 * stopped, or its home worker's loop hung, past the heartbeat's TTL; a loop that is merely
 * slow does not stop the heartbeat thread): the other nodes took it for dead and pushed
 * nothing to its clients meanwhile — those messages are stored, not delivered. cb(arg) runs
 * on BUS_HOME_WORKER; the IM layer tells every client to reconnect, and their logins fetch
 * what they missed. Set before the workers start. */
void bus_set_lapse(bus_t *b, void (*cb)(void *arg), void *arg);

/* Clients of this node that missed a delivery: another node published it to this node's
 * channel while this node's subscriber was off it (Redis dropped it past its output buffer
 * limit, or it was reconnecting) and recorded them (bus_deliver). cb(arg, clients, n) runs
 * on BUS_HOME_WORKER, clients borrowed for the call, each client once per call (a client
 * may come again in a later call); the IM layer tells their sessions to reconnect, and
 * their logins fetch what they missed. Set before the workers start. */
void bus_set_unheard(bus_t *b, void (*cb)(void *arg, const char *const *clients, size_t n), void *arg);
/* The replica changed (another node's delta or snapshot applied, a node forgotten or
 * suspended): cb(arg) runs on BUS_HOME_WORKER after each such change, the replica's lock
 * released (cb may read it). Set before the workers start. */
void bus_set_applied(bus_t *b, void (*cb)(void *arg), void *arg);

/* On worker idx's thread, with its loop: its connection (and on BUS_HOME_WORKER the
 * subscriber, the heartbeat and the replica's upkeep). */
void bus_worker_start(bus_t *b, int idx, uv_loop_t *loop);
/* The worker is stopping (its connections to clients are closed). BUS_HOME_WORKER leaves
 * the cluster: its keys and presence are deleted and the others told at once. Every
 * connection is closed within about a second even when Redis does not answer. */
void bus_worker_stop(bus_t *b, int idx);

/* From the main thread, before the workers stop (SIGTERM): the home worker leaves the
 * cluster now — record, heartbeat and registry entry deleted, the others told — so that
 * clients told to go elsewhere (goaway) are not routed back here. Returns once Redis has
 * confirmed, or after a second. bus_worker_stop then has nothing left to say. */
void bus_leave(bus_t *b);

const char *bus_node_id(const bus_t *b);
long bus_local_sessions(bus_t *b); /* this node's sessions now, from any thread */
int bus_up(const bus_t *b);        /* 1 while the home worker's connection to the bus is up */

/* ---- this node's presence and room counts (published in order, batched) */
void bus_presence_add(bus_t *b, const char *client, uint64_t session, const char *tag);
void bus_presence_del(bus_t *b, const char *client, uint64_t session);
void bus_room_add(bus_t *b, const char *cid, int delta);                        /* sessions of this node in room cid */
void bus_room_member(bus_t *b, const char *cid, const char *client, int delta); /* client's, of them */

/* ---- waiting for this node's changes to be published (docs/cluster.md, "The window")
 *
 * The calls above queue changes; the home worker publishes them in batches (one
 * MULTI/EXEC each). A reply that acknowledges a change (a login, a logout, a chat-room
 * join or quit) is held until the batch carrying it is confirmed by Redis: Redis has then
 * written the delta to every subscribed node's connection, so whatever the client does
 * next, on any node, comes after it. bus_ticket is the number of changes queued so far
 * (call it after making the change); bus_wait posts w->task to worker `worker` once the
 * changes up to `ticket` are confirmed (w->forced 0) — or, with w->forced 1, once the bus
 * cannot confirm them: it is down (the changes are dropped and the record is written whole
 * when it is back), the node is leaving, or BUS_WAIT_MAX_MS passed without an answer
 * (released by the home worker's one-second tick, so within BUS_WAIT_MAX_MS + 1 s). The
 * task is always posted exactly once, never run inside bus_wait. The caller owns w and
 * sets w->task.fn; the bus's fields are its own. */
#define BUS_WAIT_MAX_MS 1000
typedef struct bus_wait {
  task_t task;
  struct bus_wait *wnext; /* the bus's */
  uint64_t ticket;
  int64_t deadline;
  int worker;
  int forced; /* set before the task is posted */
} bus_wait_t;
uint64_t bus_ticket(bus_t *b);
/* 1 when every change up to ticket is confirmed (nothing to wait for). */
int bus_confirmed(bus_t *b, uint64_t ticket);
void bus_wait(bus_t *b, uint64_t ticket, int worker, bus_wait_t *w);

/* ---- the receiving side of the window: the other nodes' deltas are applied on
 * BUS_HOME_WORKER, in the order Redis sent them, with their deliveries (one subscriber
 * connection). A client frame read by another worker after a delta reached this node's
 * subscriber socket may still be handled before the home worker has applied it (threads
 * run when they are scheduled). A request that answers from the replica asks
 * bus_fence_needed first — 1 when the subscriber has input not yet applied: bytes in its
 * socket, or read and being handled now (one ioctl, no lock) — and if so waits with
 * bus_fence: cb(arg) runs later on the calling worker, after the home worker has read and
 * applied everything its subscriber had received by then. */
int bus_fence_needed(bus_t *b);
void bus_fence(bus_t *b, void (*cb)(void *arg), void *arg);

/* ---- the other nodes (the replica; this node's own sessions are not in it) */
typedef struct {
  int node; /* a live node's slot, for bus_send */
  uint64_t session;
} bus_ref_t;
/* Sessions of client on other nodes (only those tagged `tag` when tag is not NULL): copies
 * up to max into out (out may be NULL when max is 0); returns how many there are. */
size_t bus_sessions(bus_t *b, const char *client, const char *tag, bus_ref_t *out, size_t max);
/* Every session of client on other nodes, however many, in a malloc'd array (NULL when
 * none) the caller frees; *n how many. */
bus_ref_t *bus_sessions_all(bus_t *b, const char *client, size_t *n);
/* The distinct other nodes holding a session of client: up to max slots into out; returns
 * how many. */
size_t bus_client_nodes(bus_t *b, const char *client, int *out, size_t max);
/* Sessions in chat room cid on the other nodes, and which nodes have any. */
long bus_room_count(bus_t *b, const char *cid);
size_t bus_room_nodes(bus_t *b, const char *cid, int *out, size_t max);
/* Up to max distinct clients in room cid on other nodes, malloc'd into out; how many. */
size_t bus_room_members(bus_t *b, const char *cid, char **out, size_t max);
/* Clients online on other nodes for which skip(arg, client) is 0 (skip: those this node
 * counts itself). A walk over the replica: for rare calls (REST stats), not per message. */
size_t bus_count_clients(bus_t *b, int (*skip)(void *arg, const char *client), void *arg);
/* Live nodes, this one included (0 while this node has not heard from the bus). */
int bus_nodes_live(bus_t *b);
/* A node slot's id (copied into out, NUL-terminated); 0, or TERN_ENOENT when not live. */
int bus_node_name(bus_t *b, int node, char out[BUS_NODE_ID_MAX + 1]);

/* ---- sending (from a worker thread; fire and forget: the bus may lose a message while
 * it is down, and counts it in tern_bus_errors_total) */
int bus_send(bus_t *b, int node, const uint8_t *p, size_t n);
/* A delivery for `clients` (n of them, borrowed for the call) on that node: bus_send, and
 * when no subscriber of its channel heard it (that node's subscriber was off it while the
 * node stayed registered) they are recorded for that node, which then tells them to
 * reconnect (bus_set_unheard). Costs a copy of the ids per call, kept until Redis answers. */
int bus_deliver(bus_t *b, int node, const uint8_t *p, size_t n, const char *const *clients, size_t nclients);
/* A message that must reach that node even when nobody there heard it (a kick, a chat-room
 * block: idempotent, and their order against other messages does not matter): bus_send,
 * and when no subscriber of its channel heard it the payload itself is recorded for that
 * node (the newest BUS_MISSED_MAX kept), which hands it to its receive callback
 * (bus_set_recv) once its subscriber is back — as if heard late. Not for deliveries (a late
 * one could overtake newer ones: bus_deliver). Costs a copy of p per call until Redis
 * answers. */
int bus_send_kept(bus_t *b, int node, const uint8_t *p, size_t n);
/* On a worker thread, before it writes its clients' output: what this worker has sent on
 * the bus and not yet handed to the kernel is written now. So an ack never leaves before
 * the publish of the delivery it acknowledges, in whatever phase of the loop both were
 * made: a node killed once the ack is out has the publish in Redis's socket already
 * (docs/cluster.md, "An ack leaves after its publish"). Cheap when nothing waits. */
void bus_write_out(bus_t *b);
#define BUS_MISSED_MAX 10000
int bus_broadcast(bus_t *b, const uint8_t *p, size_t n); /* to every other node */

/* ---- claims: cb(arg, 1) when key was not claimed within ttl_ms by any node (it now is),
 * cb(arg, 0) when it was, cb(arg, TERN_EIO) when the bus could not tell (it is down). Runs
 * cb on the calling worker, later (never inside the call). */
typedef void (*bus_claim_cb)(void *arg, int result);
void bus_claim(bus_t *b, const char *key, int64_t ttl_ms, bus_claim_cb cb, void *arg);

/* ---- routing: the public URL of the live node with the fewest sessions (this one on a
 * tie or when it knows of no other), into out. */
void bus_route(bus_t *b, char *out, size_t len);

/* Prometheus lines: connection state, nodes, messages, errors, reconnects. */
void bus_metrics(bus_t *b, buf_t *out);

#endif
