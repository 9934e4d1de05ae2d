/* bus_int.h — between the bus's backend-neutral part (bus.c: the node table, the replica of
 * the other nodes' presence, this node's own published state) and a backend (redis/).
 *
 * The replication protocol (docs/cluster.md): each node owns one record in the bus (its
 * sessions and room counts as fields, with an epoch and a sequence number) and publishes
 * every change to it as a numbered delta. A node that hears of another takes a snapshot
 * of its record and then applies its deltas in order; a gap, an unknown epoch or a
 * reconnect means a new snapshot. Only the home worker touches the sync state; readers on
 * any worker take the replica's read lock. */
#ifndef TERN_BUS_INT_H
#define TERN_BUS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "bus.h"

/* Fields of a node's record: 's' + 8-byte session handle → client '\0' tag;
 * 'r' + cid → decimal count (sessions in the room); 'm' + cid '\0' client → decimal count
 * (that client's sessions in the room); "_ep", "_seq" → the epoch and sequence number. */
#define BUS_F_SESSION 's'
#define BUS_F_ROOM 'r'
#define BUS_F_MEMBER 'm'

typedef struct bmap bmap_t; /* binary key → pointer (bus.c) */

/* A queued change of this node's record: op '+' (set field to value) or '-' (delete). */
typedef struct bus_op {
  struct bus_op *next;
  uint64_t no; /* its number among this node's changes (bus_ticket) */
  char op;
  uint16_t flen, vlen;
  uint8_t data[]; /* field then value */
} bus_op_t;

typedef struct bus_delta {
  struct bus_delta *next;
  uint64_t epoch, seq;
  size_t len;
  uint8_t data[]; /* the ops, as published */
} bus_delta_t;

typedef struct {
  int used;
  char id[BUS_NODE_ID_MAX + 1];
  char *url;
  long load;
  int live; /* seen in the registry with a heartbeat, since this node's home connection was made */
  /* home worker only: */
  int suspended; /* was live when the home connection was (re)made (bus_nodes_suspend) */
  uint64_t epoch, seq;
  int synced, syncing;
  uint64_t want_ep; /* a rewrite heard while a snapshot was on the way: its epoch (bus_node_rewritten) */
  bus_delta_t *pending, *pending_tail; /* deltas heard while its snapshot is on the way */
  size_t npending;
} bus_node_t;

typedef struct bus_backend bus_backend_t;

struct bus {
  const bus_backend_t *be;
  void *bs; /* the backend's state */
  char node_id[BUS_NODE_ID_MAX + 1];
  char *const *public_url; /* bus_options_t */
  int nworkers;
  void (*post)(void *arg, int worker, task_t *t);
  void *post_arg;
  bus_recv_cb recv;
  void *recv_arg;
  void (*resync)(void *arg); /* bus_set_resync */
  void *resync_arg;
  void (*lapse)(void *arg); /* bus_set_lapse */
  void *lapse_arg;
  void (*unheard)(void *arg, const char *const *clients, size_t n); /* bus_set_unheard */
  void *unheard_arg;
  void (*applied)(void *arg); /* bus_set_applied */
  void *applied_arg;

  /* the replica: nodes, remote sessions by client, remote room counts by cid */
  pthread_rwlock_t rw;
  bus_node_t nodes[BUS_MAX_NODES];
  bmap_t *rclients, *rrooms, *rmembers; /* rmembers: cid → the clients in the room, by node */
  atomic_int nlive;

  /* this node's record: what it holds (for a full rewrite) and what is not yet published */
  pthread_mutex_t mu;
  bmap_t *mine;
  bus_op_t *out_head, *out_tail;
  size_t nout;
  atomic_int flush_posted;
  uint64_t nqueued;           /* changes queued so far (bus_ticket; under mu) */
  _Atomic uint64_t confirmed; /* changes up to this one are published (or given up on) */
  bus_wait_t *waits;          /* replies held for them (bus_wait; under mu) */
  atomic_long nsessions;      /* this node's load, as /v1/route compares it */
  int leaving;                /* the home worker said goodbye (written under mu) */

  /* bus_leave's rendezvous with the home worker */
  pthread_mutex_t leave_mu;
  pthread_cond_t leave_cv;
  int left;

  /* metrics */
  atomic_ulong m_sent, m_recv, m_errors, m_reconnects, m_resyncs, m_deltas, m_lapses;
  atomic_ulong m_unheard;         /* deliveries to another node that no subscriber of its channel heard */
  atomic_ulong m_missed_replayed; /* kept messages to this node nobody heard, replayed from Redis */
  atomic_int up;
};

struct bus_backend {
  const char *scheme; /* "redis" */
  int (*open)(bus_t *b, const char *url, char *err, size_t errlen);
  void (*free)(bus_t *b);
  void (*worker_start)(bus_t *b, int idx, uv_loop_t *loop);
  void (*worker_stop)(bus_t *b, int idx);
  /* to = a node id, or NULL for every node (broadcast); on the calling worker's connection.
   * clients (nclients, borrowed): a delivery's recipients on node `to`, recorded for it when
   * nobody heard the message (bus_deliver); NULL and 0 otherwise. keep: the payload itself
   * is recorded for node `to` when nobody heard it, and replayed there (bus_send_kept) */
  int (*send)(bus_t *b, const char *to, const uint8_t *p, size_t n, const char *const *clients, size_t nclients,
              int keep);
  void (*claim)(bus_t *b, const char *key, int64_t ttl_ms, bus_claim_cb cb, void *arg);
  /* on the home worker: publish the queued ops (bus_take_ops) */
  void (*flush)(bus_t *b);
  /* on a worker thread: what its connection has queued is written now (bus_write_out) */
  void (*write_out)(bus_t *b);
  /* any thread: the subscriber has input not yet handled (bus_fence_needed) */
  int (*pending)(bus_t *b);
  /* on the home worker: handle what the subscriber has received (bus_fence) */
  void (*drain)(bus_t *b);
  /* on the home worker: the goodbye; done(b) once it is confirmed or cannot be sent */
  void (*leave)(bus_t *b, void (*done)(bus_t *b));
};

extern const bus_backend_t bus_redis_backend;

/* ---- for the backend, on the home worker */
/* Takes up to max queued ops (the caller frees them with free()); NULL when none. */
bus_op_t *bus_take_ops(bus_t *b, size_t max, size_t *n);
/* Drops the queued ops (a full rewrite of the record follows). */
void bus_drop_ops(bus_t *b);
/* The changes up to `upto` are published (forced 0: the batch's EXEC answered) or will not
 * be confirmed (forced 1: the bus is down or the batch failed): bus_wait's waiters for them
 * are posted. upto = bus_ticket(b) for everything queued so far. */
void bus_release(bus_t *b, uint64_t upto, int forced);
/* Waiters past their deadline are released (forced). On the home worker's tick. */
void bus_wait_sweep(bus_t *b, int64_t now);
/* Calls fn for each field of this node's record (under the lock: fn must not call back). */
void bus_each_mine(bus_t *b, void (*fn)(void *arg, const uint8_t *f, size_t fl, const uint8_t *v, size_t vl),
                   void *arg);
/* The slot of node id, made when absent (and `make`); -1 when none (or the table is full). */
int bus_node_slot(bus_t *b, const char *id, int make);
/* Replica changes. */
void bus_node_seen(bus_t *b, int slot, const char *url, long load); /* alive, per its heartbeat */
void bus_node_forget(bus_t *b, int slot);                           /* gone: its sessions with it */
/* This node's home connection to the bus is (re)made: no other node is live again until a
 * registry poll on it sees that node (bus_node_seen). Their replicas are kept (a snapshot
 * replaces them) but nothing is pushed to their sessions nor counted meanwhile: an emptied
 * Redis may not hold a node yet when this one polls it, and a push that node took before
 * the poll dropped it would be followed by pushes it does not get (docs/cluster.md, "Back
 * from an outage"). A suspended node missing from the next poll is forgotten. Home worker,
 * before the backend lets the workers send again. */
void bus_nodes_suspend(bus_t *b);
/* A snapshot of a node's record: fields[i], vals[i]; returns the epoch/seq it holds. */
void bus_node_snapshot(bus_t *b, int slot, size_t n, const uint8_t *const *fields, const size_t *flens,
                       const uint8_t *const *vals, const size_t *vlens);
/* Node id rewrote its record under `epoch` (its 'r' event). Returns 1 when the caller
 * requests a snapshot now (and sets syncing); 0 when none can be (no slot) or one is on the
 * way: that one may have been read before the rewrite, so unless it holds this epoch it
 * leaves the node unsynced and the next registry poll asks again. */
int bus_node_rewritten(bus_t *b, const char *id, uint64_t epoch, int *slot);
/* A published delta of node id (ops as bus_encode_ops made them). Returns 1 when the node
 * needs a (new) snapshot, which the caller then requests (syncing is set). */
int bus_node_delta(bus_t *b, const char *id, uint64_t epoch, uint64_t seq, const uint8_t *ops, size_t n, int *slot);
/* Encodes ops for a delta message. */
void bus_encode_ops(buf_t *out, const bus_op_t *ops);

#endif
