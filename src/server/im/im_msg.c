/* im_msg.c — messages: send, delivery, client acks, receipts, read state, history, and
 * what a client is told right after it logs in (protocol.md §3.6–§3.11).
 *
 * A message is given its key (timestamp, per-conversation sequence) and id under the
 * conversation's lock, encoded once as a fan-out frame, and written through the store.
 * Only when its batch has committed does the sender get its ack and do the recipients get
 * the frame, in the conversation's key order (deliver_in_turn):
 * an acked message is always durable, and nobody sees a message that could be lost. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "err.h"
#include "im_internal.h"
#include "ipcount.h"
#include "jsonlim.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#define SEQ_MAX INT64_MAX

/* `_lctype` of a typed message, found without a full JSON parse: the key as it appears
 * unescaped at object level, then a number. Only the history filter uses it. */
int scan_lctype(const char *s, size_t n, int *out) {
  static const char key[] = "\"_lctype\"";
  if (n < sizeof key || s[0] != '{') return 0;
  const char *p = s;
  while ((p = memmem(p, n - (size_t)(p - s), key, sizeof key - 1))) {
    if (p > s && p[-1] == '\\') {
      p++;
      continue;
    }
    const char *q = p + sizeof key - 1;
    const char *end = s + n;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
    if (q >= end || *q != ':') return 0;
    q++;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
    int neg = 0;
    if (q < end && *q == '-') {
      neg = 1;
      q++;
    }
    if (q >= end || *q < '0' || *q > '9') return 0;
    long v = 0;
    while (q < end && *q >= '0' && *q <= '9' && v < 100000000) v = v * 10 + (*q++ - '0');
    *out = (int)(neg ? -v : v);
    return 1;
  }
  return 0;
}

static int is_member_of(conv_t *c, const char *client) {
  members_t *m = conv_members(c);
  int yes = members_has(m, client);
  members_release(m);
  return yes;
}

/* ---------------------------------------------------------------- send */

typedef struct send_job {
  job_msg_insert_t j;
  im_t *im;
  reply_to_t rt;
  conv_t *conv;
  members_t *members; /* recipients as of the send */
  fanout_t *frame;
  uint64_t skip;   /* the sending session: it has the message already */
  char *ip;        /* the sender's address, for hooks (NULL for wills and REST) */
  char *push_data; /* the message's pushData (JSON text) for offline push, or NULL */
  im_done_t done;  /* REST: told the id and timestamp once stored */
  uint64_t t0_ns;  /* accepted for storage (tern_send_ack_seconds) */
  int tries;       /* key retries (key_retry): a bus only */
  uint64_t dlv_no; /* its turn among the conversation's after-commit fan-outs (deliver_in_turn) */
  int rcp_first;   /* asks for receipts where the store did not say any message had, as this node knew */
  /* A send with a dt, until its commit is answered: in its session's list (s->sending), so
   * that the session's end marks it gone (store.h; im_msg_sending_gone). The list is the
   * session's worker's alone; the writer reads only j.gone. */
  struct send_job *s_next, **s_pprev;
} send_job_t;

/* Out of its session's list (a no-op once out). */
static void sending_del(send_job_t *sj) {
  if (!sj->s_pprev) return;
  *sj->s_pprev = sj->s_next;
  if (sj->s_next) sj->s_next->s_pprev = sj->s_pprev;
  sj->s_next = NULL;
  sj->s_pprev = NULL;
}

/* Its session ended before these commits were answered: the client may resend them, on a new
 * connection, possibly to another node whose writer commits the resend first. Each is marked,
 * and its writer checks it as it would a resend once it holds the conversation's order lock:
 * the copy that finds an equal one stored is dropped — neither delivered nor hooked nor
 * pushed, its ack sent nowhere (send_done) — so the message is stored and delivered once.
 * The oldest IM_DEDUPE_CHECKS only (the list is newest first): each marked copy costs the
 * writer a read, and the SDKs resend the few unacknowledged messages, oldest first, as the
 * resend side's own check assumes. */
void im_msg_sending_gone(session_t *s) {
  size_t n = 0;
  for (send_job_t *sj = s->sending; sj; sj = sj->s_next) n++;
  while (s->sending) {
    send_job_t *sj = s->sending;
    if (n-- <= IM_DEDUPE_CHECKS) atomic_store_explicit(&sj->j.gone, 1, memory_order_release);
    sending_del(sj);
  }
}

static void send_ack(im_worker_t *w, const reply_to_t *rt, const char *mid, int64_t ts) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__AckCommand am = LC__ACK_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__ack);
  am.uid = (char *)mid;
  PB_SET(am, t, ts);
  out.ackmessage = &am;
  reply_async(w, rt, &out);
}

static void deliver(im_worker_t *w, conv_t *c, members_t *m, const fanout_t *p, uint64_t skip) {
  if (c->kind == CONV_ROOM) fanout_to_room(w, p, c, skip);
  else if (m) fanout_to_clients(w, p, m->ids, m->n, skip);
}

static void send_job_free(send_job_t *sj) {
  sending_del(sj);
  free(sj->ip);
  free(sj->push_data);
  free(sj->j.mid);
  free(sj->j.sender);
  free(sj->j.data);
  free(sj->j.mentions);
  free(sj->j.readers);
  free(sj->j.dup_mid);
  reply_to_free(&sj->rt);
  members_release(sj->members);
  fanout_release(sj->frame);
  conv_release(sj->conv);
  free(sj);
}

json_t *msg_content_json(const uint8_t *data, size_t len, int bin) {
  if (!bin) return json_stringn_lossy((const char *)data, len);
  char *b64 = xmalloc(base64_encoded_len(len) + 1);
  size_t n = base64_encode(data, len, b64);
  json_t *j = json_stringn(b64, n);
  free(b64);
  return j;
}

/* After delivery: _messageSent with who was online and who was not (§8). */
static void message_sent_hook(im_worker_t *w, send_job_t *sj) {
  if (!im_hook_enabled(w->im, HOOK_MESSAGE_SENT)) return;
  json_t *online = json_array(), *offline = json_array();
  for (size_t i = 0; sj->members && i < sj->members->n; i++) {
    const char *id = sj->members->ids[i];
    if (strcmp(id, sj->j.sender) == 0) continue;
    json_array_append_new(im_client_online(w->im, id) ? online : offline, json_string(id));
  }
  json_t *p = json_pack("{s:s, s:s, s:s, s:o, s:o, s:b, s:b, s:b, s:o, s:b, s:I}", "fromPeer", sj->j.sender, "convId",
                        sj->conv->cid, "msgId", sj->j.mid, "onlinePeers", online, "offlinePeers", offline, "transient",
                        0, "system", sj->conv->kind == CONV_SYSTEM, "bin", (sj->j.flags & MSG_F_BIN) != 0, "content",
                        msg_content_json(sj->j.data, sj->j.len, sj->j.flags & MSG_F_BIN), "receipt",
                        (sj->j.flags & MSG_F_RECEIPT) != 0, "timestamp", (json_int_t)sj->j.ts);
  if (sj->ip) json_object_set_new(p, "sourceIP", json_string(sj->ip));
  im_hook_call(w, HOOK_MESSAGE_SENT, p, NULL, NULL);
}

/* ---------------------------------------------------------------- offline push (§10) */

/* What push_offline needs once the send job is gone (a hook answers later): owned. */
typedef struct {
  char *from, *cid, *msg_id, *push_data;
  int64_t ts;
  char **to, **muted;
  size_t nto, nmuted;
} offline_t;

static void offline_free(offline_t *o) {
  free(o->from);
  free(o->cid);
  free(o->msg_id);
  free(o->push_data);
  for (size_t i = 0; i < o->nto; i++) free(o->to[i]);
  for (size_t i = 0; i < o->nmuted; i++) free(o->muted[i]);
  free(o->to);
  free(o->muted);
  free(o);
}

static void offline_send(im_worker_t *w, offline_t *o, const char *hook_payload, int force) {
  push_request_t req = {.from = o->from,
                        .cid = o->cid,
                        .timestamp = o->ts,
                        .msg_id = o->msg_id,
                        .to = o->to,
                        .nto = o->nto,
                        .hook_payload = hook_payload,
                        .push_data = o->push_data,
                        .force = force,
                        .muted = o->muted,
                        .nmuted = o->nmuted};
  im_push_offline(w, &req);
  offline_free(o);
}

/* The app's answer (§8): skip → no push; offlinePeers narrows the recipients; pushMessage
 * is the payload; force reaches members who muted the conversation. A failed call pushes
 * as usual, unless hook_fail_closed makes it a skip. */
static void receivers_offline_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  offline_t *o = arg;
  if (failed || json_is_true(json_object_get(result, "skip"))) {
    offline_free(o);
    return;
  }
  json_t *peers = json_object_get(result, "offlinePeers");
  if (json_is_array(peers)) { /* only ever fewer: the hook cannot add someone who was online */
    size_t k = 0;
    for (size_t i = 0; i < o->nto; i++) {
      int keep = 0;
      for (size_t j = 0; j < json_array_size(peers) && !keep; j++) {
        const char *p = json_string_value(json_array_get(peers, j));
        keep = p && strcmp(p, o->to[i]) == 0;
      }
      if (keep) o->to[k++] = o->to[i];
      else free(o->to[i]);
    }
    o->nto = k;
  }
  json_t *pm = json_object_get(result, "pushMessage");
  char *payload = pm && !json_is_null(pm) ? json_dumps(pm, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  offline_send(w, o, payload, json_is_true(json_object_get(result, "force")));
  free(payload);
}

/* Recipients with no session anywhere get an offline push (§10); with _receiversOffline
 * configured, the app has its say first. The recipients are the members of a normal
 * conversation, the subscribers of a service conversation a broadcast goes to (§10: a
 * broadcast's `push`), or the to_clients of a message to chosen subscribers. Not for chat
 * rooms, a subscriber's own message (it goes to nobody), or transient messages (they never
 * get here). A broadcast looks up the devices of each offline subscriber on this loop, a
 * few µs each: 10,000 offline subscribers hold it for some tens of ms. */
static void offline_push_to(im_worker_t *w, send_job_t *sj, char *const *absent, size_t nabsent);

static void offline_push(im_worker_t *w, send_job_t *sj) { offline_push_to(w, sj, NULL, 0); }

/* The same with the recipients found absent already (absent non-NULL: a fan-out that
 * waited for the subscriber, below), so that one look decides live or offline. */
static void offline_push_to(im_worker_t *w, send_job_t *sj, char *const *absent, size_t nabsent) {
  im_t *im = w->im;
  conv_t *c = sj->conv;
  if (!im_push_enabled(im) || !sj->members || c->kind == CONV_ROOM) return;
  offline_t *o = xcalloc(1, sizeof *o);
  o->to = xcalloc((absent ? nabsent : sj->members->n) + 1, sizeof(char *));
  for (size_t i = 0; absent && i < nabsent; i++) o->to[o->nto++] = xstrdup(absent[i]);
  for (size_t i = 0; !absent && i < sj->members->n; i++) {
    const char *id = sj->members->ids[i];
    if (strcmp(id, sj->j.sender) != 0 && !im_client_online(im, id)) o->to[o->nto++] = xstrdup(id);
  }
  if (!o->nto) {
    offline_free(o);
    return;
  }
  o->from = xstrdup(sj->j.sender);
  o->cid = xstrdup(c->cid);
  o->msg_id = xstrdup(sj->j.mid);
  o->push_data = sj->push_data ? xstrdup(sj->push_data) : NULL;
  o->ts = sj->j.ts;
  /* who muted it: the `mu` list of the conversation's document */
  char *text = NULL;
  pthread_mutex_lock(&c->mu);
  if (c->doc) text = json_dumps(json_object_get(c->doc, "mu"), JSON_COMPACT | JSON_ENCODE_ANY);
  pthread_mutex_unlock(&c->mu);
  json_t *mu = NULL;
  if (text) {
    mu = json_loads(text, JSON_DECODE_ANY, NULL);
  } else if (store_conv_doc(w->reader, c->id, &text) == 0) {
    json_t *doc = json_loads(text, 0, NULL);
    mu = json_incref(json_object_get(doc, "mu"));
    json_decref(doc);
  }
  free(text);
  o->muted = xcalloc(json_array_size(mu) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(mu); i++)
    if (json_is_string(json_array_get(mu, i)))
      o->muted[o->nmuted++] = xstrdup(json_string_value(json_array_get(mu, i)));
  json_decref(mu);
  if (!im_hook_enabled(im, HOOK_RECEIVERS_OFFLINE)) {
    offline_send(w, o, NULL, 0);
    return;
  }
  int all = (sj->j.flags & MSG_F_MENTION_ALL) != 0;
  json_t *offline = json_array(), *mentioned = json_array();
  json_t *mentions = sj->j.mentions ? json_loads(sj->j.mentions, 0, NULL) : NULL;
  for (size_t i = 0; i < o->nto; i++) {
    json_array_append_new(offline, json_string(o->to[i]));
    for (size_t k = 0; !all && k < json_array_size(mentions); k++)
      if (json_is_string(json_array_get(mentions, k)) &&
          !strcmp(json_string_value(json_array_get(mentions, k)), o->to[i]))
        json_array_append_new(mentioned, json_string(o->to[i]));
  }
  json_decref(mentions);
  json_t *p = json_pack("{s:s, s:s, s:o, s:o, s:I, s:b, s:o}", "fromPeer", o->from, "convId", o->cid, "offlinePeers",
                        offline, "content", msg_content_json(sj->j.data, sj->j.len, sj->j.flags & MSG_F_BIN),
                        "timestamp", (json_int_t)o->ts, "mentionAll", all, "mentionOfflinePeers", mentioned);
  im_hook_call(w, HOOK_RECEIVERS_OFFLINE, p, receivers_offline_done, o);
}

#define KEY_RETRIES 4

/* The clock a stored message's key is taken from. TERN_TEST_CLOCK_SKEW_MS (tests only, never
 * for a deployment: tests/cluster/shared-store.test.mjs) moves it by that many ms, so that a
 * test can run a node whose clock is behind or ahead of the others'. */
static int64_t key_now(void) {
  static _Atomic int64_t skew = INT64_MIN;
  int64_t k = atomic_load(&skew);
  if (k == INT64_MIN) {
    const char *e = getenv("TERN_TEST_CLOCK_SKEW_MS");
    k = e ? strtoll(e, NULL, 10) : 0;
    if (k < -86400000 || k > 86400000) k = 0;
    atomic_store(&skew, k);
  }
  return now_ms() + k;
}

/* The frame of a stored message, from its job (a retried send's new id and timestamp). */
static fanout_t *send_frame(send_job_t *sj, int priority, const char *not_to) {
  job_msg_insert_t *j = &sj->j;
  conv_t *c = sj->conv;
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__DirectCommand pm = LC__DIRECT_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__direct);
  PB_SET(out, service, 2);
  out.directmessage = &pm;
  pm.cid = c->cid;
  pm.frompeerid = j->sender;
  char *text = NULL;
  if (j->flags & MSG_F_BIN) {
    ProtobufCBinaryData b = {j->len, j->data};
    PB_SET(pm, binarymsg, b);
  } else {
    pm.msg = text = xstrndup((const char *)j->data, j->len);
  }
  json_t *mentions = j->mentions ? json_loads(j->mentions, 0, NULL) : NULL;
  size_t nm = json_array_size(mentions);
  char **pids = xcalloc(nm + 1, sizeof(char *));
  for (size_t i = 0; i < nm; i++)
    if (json_is_string(json_array_get(mentions, i)))
      pids[pm.n_mentionpids++] = (char *)json_string_value(json_array_get(mentions, i));
  pm.mentionpids = pids;
  if (j->flags & MSG_F_MENTION_ALL) PB_SET(pm, mentionall, 1);
  PB_SET(pm, convtype, (int32_t)conv_kind_wire(c->kind));
  pm.id = j->mid;
  PB_SET(pm, timestamp, j->ts);
  fanout_t *f = fanout_new(&out);
  f->priority = priority;
  if (not_to) f->not_to = xstrdup(not_to);
  free(pids);
  json_decref(mentions);
  free(text);
  return f;
}

/* Several nodes on one store (docs/cluster.md, "Message keys across nodes"): another node
 * may have taken this send's key, or stored a newer one, from a conversation this node's
 * cache had behind. The insert then failed alone and nothing was acked. When the store's
 * newest key is at or past ours, that is what happened: the send goes again with a key
 * past the newest (bounded: KEY_RETRIES), its one ack after that commit. 1: resubmitted. */
static int key_retry(im_worker_t *w, send_job_t *sj) {
  job_msg_insert_t *j = &sj->j;
  conv_t *c = sj->conv;
  if (!sj->im->bus || sj->tries >= KEY_RETRIES) return 0;
  conv_row_t row;
  if (store_conv_load(w->reader, c->cid, &row) < 0) return 0;
  int64_t lts = row.last_ts, lseq = row.last_seq;
  conv_row_free(&row);
  if (lts < j->ts || (lts == j->ts && lseq < j->seq)) return 0; /* not a key lost to another node */
  sj->tries++;
  metric_inc(M_SEND_KEY_RETRIES);
  pthread_mutex_lock(&c->mu);
  if (lts > c->last_ts) c->last_ts = lts;
  if (lseq > c->last_seq) c->last_seq = lseq;
  int64_t ts = key_now();
  if (ts < c->last_ts) ts = c->last_ts;
  j->ts = ts;
  j->seq = ++c->last_seq;
  c->last_ts = ts;
  char mid[MSGID_LEN + 1];
  msgid_make(j->ts, j->seq, mid);
  free(j->mid);
  j->mid = xstrdup(mid);
  fanout_t *old = sj->frame;
  sj->frame = send_frame(sj, old->priority, old->not_to);
  fanout_release(old);
  j->job.result = 0;
  j->job.next = NULL;
  store_submit(sj->im->store, &j->job);
  pthread_mutex_unlock(&c->mu);
  return 1;
}

/* store.h's rekey, on the writer thread: another node stored a later key first, and the
 * message was moved past it (docs/cluster.md, "Message order across nodes"); its id names
 * its key, so it gets the id of the new one. */
static void msg_rekey(job_msg_insert_t *j) {
  char mid[MSGID_LEN + 1];
  msgid_make(j->ts, j->seq, mid);
  free(j->mid);
  j->mid = xstrdup(mid);
}

/* A message stored under a later key than this node gave it: the cache moves past the key,
 * and the frame names the stored id and timestamp. */
static void sent_rekeyed(send_job_t *sj) {
  conv_t *c = sj->conv;
  pthread_mutex_lock(&c->mu);
  if (sj->j.ts > c->last_ts) c->last_ts = sj->j.ts;
  if (sj->j.seq > c->last_seq) c->last_seq = sj->j.seq;
  pthread_mutex_unlock(&c->mu);
  fanout_t *old = sj->frame;
  sj->frame = send_frame(sj, old->priority, old->not_to);
  fanout_release(old);
  sj->j.rekeyed = 0;
}

/* Past this many chat-room acks waiting (below) on one link, its input is paused (link
 * ops->pause) until half have gone out: a sender that does not wait for its acks is held
 * to the room's pace by TCP, and the fan-out backlog it can leave behind is bounded. */
#define ROOM_ACKS_MAX 64

/* A chat-room message's ack, sent once every worker has queued the message to its
 * members (worker_relay_t): without it the ack left at commit while the other workers'
 * deliveries waited in their inboxes, so a sender that waits for acks could still send
 * faster than the room was delivered, and the backlog grew without bound (bench/README.md,
 * "Chat-room floods"). A request only (REST sends have no ack), and only with workers to
 * wait for. */
typedef struct {
  worker_relay_t relay;
  reply_to_t rt;
  char *mid;
  int64_t ts;
} room_ack_t;

static void room_ack_done(worker_relay_t *r, im_worker_t *w);

static room_ack_t *room_ack_new(im_worker_t *w, send_job_t *sj) {
  if (sj->conv->kind != CONV_ROOM || w->im->nworkers < 2 || !sj->rt.has_i) return NULL;
  im_link_t *l = reply_to_link(w, &sj->rt);
  if (!l) return NULL; /* gone: no ack to send */
  if (++l->room_acks >= ROOM_ACKS_MAX && !(l->paused & IM_PAUSE_ROOM) && l->ops->pause) {
    metric_inc(M_ROOM_SENDERS_PAUSED);
    im_link_pause(l, IM_PAUSE_ROOM, 1);
  }
  room_ack_t *a = xcalloc(1, sizeof *a);
  a->relay.done = room_ack_done;
  a->relay.origin = w->idx; /* the link's worker: its fan-out may run on another (im_order.c) */
  a->rt = sj->rt;           /* taken over: send_job_free frees nothing of it */
  sj->rt = (reply_to_t){0};
  a->mid = xstrdup(sj->j.mid);
  a->ts = sj->j.ts;
  return a;
}

static void room_ack_done(worker_relay_t *r, im_worker_t *w) {
  room_ack_t *a = (room_ack_t *)r;
  im_link_t *l = w ? reply_to_link(w, &a->rt) : NULL;
  if (l) {
    send_ack(w, &a->rt, a->mid, a->ts);
    l->room_acks--;
    if ((l->paused & IM_PAUSE_ROOM) && l->room_acks <= ROOM_ACKS_MAX / 2) im_link_pause(l, IM_PAUSE_ROOM, 0);
  }
  reply_to_free(&a->rt);
  free(a->mid);
  free(a);
}

/* ---- a fan-out whose absent recipients wait for the subscriber (docs/cluster.md, "The
 * window, closed": sends to normal conversations are not fenced before they run). After the
 * commit, a recipient with no session anywhere — neither here nor in the replica — while
 * this node's subscriber holds input not yet applied (bus_fence_needed) may be a login whose
 * presence delta is in that input: its counts may have been read before this commit (so
 * they do not tell of it) and no push would reach it. Such recipients are not settled
 * offline at once: the present ones get the fan-out now, the absent ones are looked at
 * again once the home worker has applied what its subscriber held (bus_fence), and those
 * found then get the same frame (here or on their node, as any fan-out; the login's "told"
 * rule applies to it as to every push, im_login_told), the rest the offline push and
 * _messageSent. One look splits them, so none gets both or neither.
 *
 * Order: while a send of a conversation waits so (conv->rechecks), a later send of it
 * completing on any worker does not overtake it: it waits whole, behind it on its own
 * worker's queue (its recipients are split when it is settled), so one sender's messages
 * reach each recipient in order. Cost: nothing when every recipient is present or the
 * subscriber holds nothing; else one fence per worker at a time (two task hops, no Redis
 * round trip), shared by every send queued on the worker meanwhile, and the send job kept
 * until then. At most RECHECK_MAX wait per worker: past that a send is settled at once, as
 * before (tern_send_rechecks_total{wait="full"}). */
#define RECHECK_MAX 4096
#define RECHECK_SPLIT_FIRST 64

struct im_recheck {
  struct im_recheck *next;
  send_job_t *sj;
  uint64_t gen; /* the fence that covers it (im_worker_t.rc_gen when queued) */
  char **ids;   /* the recipients found absent (borrowed from sj->members), or NULL: the whole
                 * fan-out, queued behind an earlier send of its conversation */
  size_t n;
};

typedef struct {
  im_t *im;
  uint64_t gen;
} rc_fence_t;

static void rc_fence_done(void *arg);

static void rc_fence(im_worker_t *w) {
  rc_fence_t *f = xmalloc(sizeof *f);
  f->im = w->im;
  f->gen = w->rc_gen++; /* what is queued from now on waits for the next fence */
  w->rc_fencing = 1;
  bus_fence(w->im->bus, rc_fence_done, f);
}

/* Splits ids into present (here or on another node; the sender's own other sessions too)
 * and absent, in order; both arrays malloc'd by the caller with room for n. */
static void rc_split(im_t *im, const char *sender, char *const *ids, size_t n, char **live, size_t *nl, char **off,
                     size_t *no) {
  *nl = *no = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(ids[i], sender) == 0 || im_client_online(im, ids[i])) live[(*nl)++] = ids[i];
    else off[(*no)++] = ids[i];
  }
}

static void rc_settle(im_worker_t *w, struct im_recheck *e) {
  send_job_t *sj = e->sj;
  char *const *ids = e->ids ? e->ids : sj->members->ids;
  size_t n = e->ids ? e->n : sj->members->n, nl, no;
  char **live = xmalloc((n + 1) * sizeof *live), **off = xmalloc((n + 1) * sizeof *off);
  rc_split(w->im, sj->j.sender, ids, n, live, &nl, off, &no);
  if (e->ids && nl) metric_add(M_SEND_RECHECK_FOUND, (int64_t)nl);
  if (nl) fanout_to_clients(w, sj->frame, live, nl, sj->skip);
  metric_observe_us(M_DELIVERY, (mono_ns() - sj->t0_ns) / 1000);
  message_sent_hook(w, sj);
  offline_push_to(w, sj, off, no);
  atomic_fetch_sub(&sj->conv->rechecks, 1);
  free(live);
  free(off);
  free(e->ids);
  send_job_free(sj);
  free(e);
}

/* On the worker that queued them: everything the fence covers is settled, in order. */
static void rc_fence_done(void *arg) {
  rc_fence_t *f = arg;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? f->im->workers[idx] : NULL;
  uint64_t gen = f->gen;
  free(f);
  if (!w) return; /* the server is stopping: im_msg_rechecks_free has them */
  w->rc_fencing = 0;
  /* the node left the bus (stopping): no other fence will come, whatever waits is settled */
  int all = !bus_up(w->im->bus);
  while (w->rc_head && (all || w->rc_head->gen <= gen)) {
    struct im_recheck *e = w->rc_head;
    w->rc_head = e->next;
    if (!w->rc_head) w->rc_tail = NULL;
    w->rc_n--;
    rc_settle(w, e);
  }
  if (w->rc_head) rc_fence(w);
}

/* After the ack of a stored send to a normal conversation, in a cluster: 1 when it took the
 * send (its fan-out waits, wholly or for its absent recipients; sj is its), 0 when the
 * caller delivers it as usual. */
static int rc_take(im_worker_t *w, send_job_t *sj) {
  im_t *im = w->im;
  conv_t *c = sj->conv;
  if (!im->bus || c->kind == CONV_ROOM || !sj->members || !sj->members->n) return 0;
  int behind = atomic_load(&c->rechecks) > 0;
  size_t n = sj->members->n, nl = 0, no = 0;
  char **live = NULL, **off = NULL;
  if (!behind) {
    /* a small conversation is looked at first, so that the usual case (everyone somewhere)
     * costs lookups in memory, not an ioctl; a large one asks the subscriber first */
    int small = n <= RECHECK_SPLIT_FIRST;
    if (!small && !bus_fence_needed(im->bus)) return 0;
    live = xmalloc((n + 1) * sizeof *live), off = xmalloc((n + 1) * sizeof *off);
    rc_split(im, sj->j.sender, sj->members->ids, n, live, &nl, off, &no);
    if (!no || (small && !bus_fence_needed(im->bus))) goto as_usual; /* everyone is somewhere, or nothing is pending */
  }
  if (!bus_up(im->bus)) goto as_usual;
  if (w->rc_n >= RECHECK_MAX) {
    metric_inc(M_SEND_RECHECKS_FULL);
    goto as_usual;
  }
  struct im_recheck *e = xcalloc(1, sizeof *e);
  if (!behind) {
    if (nl) fanout_to_clients(w, sj->frame, live, nl, sj->skip); /* the absent ones are not in it */
    e->ids = off;
    e->n = no;
    metric_inc(M_SEND_RECHECKS_ABSENT);
  } else {
    metric_inc(M_SEND_RECHECKS_ORDER);
  }
  free(live);
  e->sj = sj;
  e->gen = w->rc_gen;
  atomic_fetch_add(&c->rechecks, 1);
  if (w->rc_tail) w->rc_tail->next = e;
  else w->rc_head = e;
  w->rc_tail = e;
  w->rc_n++;
  if (!w->rc_fencing) rc_fence(w);
  return 1;
as_usual:
  free(live);
  free(off);
  return 0;
}

void im_msg_rechecks_free(im_worker_t *w) {
  while (w->rc_head) {
    struct im_recheck *e = w->rc_head;
    w->rc_head = e->next;
    atomic_fetch_sub(&e->sj->conv->rechecks, 1);
    free(e->ids);
    send_job_free(e->sj);
    free(e);
  }
  w->rc_tail = NULL;
  w->rc_n = 0;
}

/* Whoever waits for the send (a REST or hook caller: d) is told the stored id and time,
 * {msg-id, timestamp}: built only for such a caller, not for every message a client sends. */
static void sent_done(im_worker_t *w, const im_done_t *d, const char *mid, int64_t ts) {
  if (!d || !d->fn) return;
  json_t *res = json_pack("{s:s, s:I}", "msg-id", mid, "timestamp", (json_int_t)ts);
  im_done(w, d, 0, res);
  json_decref(res);
}

static void send_done(task_t *t) {
  send_job_t *sj = (send_job_t *)t;
  im_worker_t *w = sj->im->workers[worker_current()];
  if (sj->j.job.result == TERN_EEXIST && sj->j.dup_mid) {
    /* a resend whose first copy the writer found stored (im_dedupe.c): answered with that
     * one's ack, as the first time, and neither stored nor delivered again */
    metric_inc(M_SEND_DEDUPED);
    deliver_in_turn(w, sj->conv, NULL, NULL, sj->skip, sj->dlv_no);
    send_ack(w, &sj->rt, sj->j.dup_mid, sj->j.dup_ts);
    sent_done(w, &sj->done, sj->j.dup_mid, sj->j.dup_ts);
    send_job_free(sj);
    return;
  }
  if (sj->j.job.result < 0 && key_retry(w, sj)) return;
  if (sj->j.job.result == 0 && sj->j.rekeyed) sent_rekeyed(sj);
  if (sj->j.job.result < 0) {
    deliver_in_turn(w, sj->conv, NULL, NULL, sj->skip, sj->dlv_no);
    reply_error_async(w, &sj->rt, LC_INTERNAL_ERROR, "message could not be stored");
    im_done(w, &sj->done, LC_INTERNAL_ERROR, NULL);
  } else {
    metric_observe_us(M_SEND_ACK, (mono_ns() - sj->t0_ns) / 1000);
    /* the other nodes' copies say no message asked for receipts, so their acks would not
     * look: told before the delivery, as any change (docs/cluster.md, "Receipts"); every
     * such send is told until one is stored, so a first that failed leaves none untold */
    if (sj->rcp_first) {
      pthread_mutex_lock(&sj->conv->mu);
      sj->conv->rcp_stored = 1;
      pthread_mutex_unlock(&sj->conv->mu);
      im_conv_changed(w, sj->conv->cid);
    }
    room_ack_t *ra = room_ack_new(w, sj);
    if (!ra) send_ack(w, &sj->rt, sj->j.mid, sj->j.ts);
    int waits = !ra && rc_take(w, sj); /* its fan-out waits for the subscriber (above): sj is the queue's */
    if (!waits) {
      w->room_relay = ra ? &ra->relay : NULL;
      deliver_in_turn(w, sj->conv, sj->members, sj->frame, sj->skip, sj->dlv_no);
      if (w->room_relay) { /* not taken: no delivery was posted to another worker, none parked */
        w->room_relay = NULL;
        room_ack_done(&ra->relay, w);
      }
      metric_observe_us(M_DELIVERY, (mono_ns() - sj->t0_ns) / 1000);
      message_sent_hook(w, sj);
      offline_push(w, sj);
    }
    sent_done(w, &sj->done, sj->j.mid, sj->j.ts);
    if (waits) return;
  }
  send_job_free(sj);
}

/* A message to send, from a request or from a will: borrowed pointers. */
typedef struct {
  const char *cid;
  const uint8_t *data;
  size_t len;
  int bin, transient, receipt, mention_all;
  int priority; /* chat rooms: 1 HIGH, 2 NORMAL (default), 3 LOW */
  char **mention_pids;
  size_t n_mentions;
  const char *push_data; /* pushData (JSON text) for offline push, or NULL */
  const char *readers;   /* NULL (every member) or the only readers besides the sender, framed by \x1f */
  int not_to_sender;     /* chat rooms: the sender's own sessions get no copy (REST) */
  int64_t dt;            /* the hash of the client's dedupe token, kept with the message (im_dedupe.c), or 0 */
  int64_t dt_since;      /* a possible resend not found stored: the writer compares again (im_dedupe_find) */
} msg_in_t;

int msg_may_send(conv_t *c, const char *sender, members_t **mp, const char **detail) {
  int code = 0;
  members_t *members = NULL;
  *mp = NULL;
  if (c->kind == CONV_TEMP && c->expire_at <= now_ms()) {
    code = LC_TEMPORARY_CONVERSATION_EXPIRED;
  } else if (c->kind == CONV_NORMAL || c->kind == CONV_TEMP) {
    members = conv_members(c);
    if (!members_has(members, sender)) {
      *detail = "sender is not a member";
      code = LC_INVALID_MESSAGING_TARGET;
    }
  }
  /* a blocked client is no member of a normal conversation (4401 above); a chat room or a
   * service conversation has no member list to leave, so the blacklist itself says no */
  if (!code && conv_in_set(c, SET_BLOCK, sender)) {
    *detail = "the conversation blocked you";
    code = LC_BLOCKED_BY_CONV;
  }
  if (!code && conv_in_set(c, SET_SHUTUP, sender)) {
    *detail = "you are muted in this conversation";
    code = LC_SILIENCED;
  }
  if (code) members_release(members);
  else *mp = members;
  return code;
}

/* May `sender` send `in`? Returns 0 with the conversation (and member snapshot for
 * normal and temporary conversations) referenced, or a protocol error code. */
static int msg_check(im_worker_t *w, const char *sender, const msg_in_t *in, conv_t **cp, members_t **mp,
                     const char **detail) {
  *detail = NULL;
  if (!in->cid) {
    *detail = "cid is required";
    return LC_INVALID_MESSAGING_TARGET;
  }
  if (in->len > (size_t)w->im->cfg->max_message) {
    *detail = "message larger than the configured limit";
    return LC_FRAME_TOO_LONG;
  }
  int err;
  conv_t *c = conv_get(w, in->cid, &err);
  if (!c) {
    if (err) return LC_INTERNAL_ERROR;
    return strncmp(in->cid, "_tmp:", 5) == 0 ? LC_TEMPORARY_CONVERSATION_EXPIRED : LC_INVALID_MESSAGING_TARGET;
  }
  members_t *members;
  int code = msg_may_send(c, sender, &members, detail);
  if (code) {
    conv_release(c);
    return code;
  }
  *cp = c;
  *mp = members;
  return 0;
}

/* A stored send with a dt from a session: tracked until its commit is answered, so that the
 * session's end marks it (im_msg_sending_gone), and marked at once when the session is gone
 * already (the app's _messageReceived verdict came after it). gone_since: the resend the
 * writer may find was allocated after this copy, on any node's clock; the window bounds both
 * how far back it looks and the clocks' difference it allows. A plain send pays a pointer
 * or two, no read. */
static void sending_track(im_worker_t *w, send_job_t *sj, int64_t dt) {
  long window_ms = w->im->cfg->dedupe_window * 1000L;
  if (!dt || !window_ms || !sj->rt.session) return;
  sj->j.gone_since = sj->j.ts - window_ms > 0 ? sj->j.ts - window_ms : 1;
  session_t *s = im_session_get(w, sj->rt.session);
  if (!s) {
    atomic_store_explicit(&sj->j.gone, 1, memory_order_release);
    return;
  }
  sj->s_next = s->sending;
  if (s->sending) s->sending->s_pprev = &sj->s_next;
  s->sending = sj;
  sj->s_pprev = &s->sending;
}

/* Sends a checked message: transient ones straight to whoever is online, the others
 * through storage (ack and delivery after the commit). Takes the references of c and
 * members. rt may be NULL (nobody waits for the ack: a will). */
static void msg_submit(im_worker_t *w, conv_t *c, members_t *members, const char *sender, uint64_t skip,
                       const msg_in_t *in, const reply_to_t *rt, int ack_transient, const char *ip,
                       const im_done_t *done) {
  int priority = in->priority >= 1 && in->priority <= 3 ? in->priority : 2;
  im_t *im = w->im;
  metric_inc(in->transient ? M_MESSAGES_IN_TRANSIENT : M_MESSAGES_IN);
  int receipt = in->receipt && !in->transient && c->kind != CONV_ROOM;
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__DirectCommand pm = LC__DIRECT_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__direct);
  PB_SET(out, service, 2);
  out.directmessage = &pm;
  pm.cid = c->cid;
  pm.frompeerid = (char *)sender;
  char *text = NULL;
  if (in->bin) {
    ProtobufCBinaryData b = {in->len, (uint8_t *)in->data};
    PB_SET(pm, binarymsg, b);
  } else {
    pm.msg = text = xstrndup((const char *)in->data, in->len);
  }
  if (in->transient) PB_SET(pm, transient, 1);
  pm.mentionpids = in->mention_pids;
  pm.n_mentionpids = in->n_mentions;
  if (in->mention_all) PB_SET(pm, mentionall, 1);
  PB_SET(pm, convtype, (int32_t)conv_kind_wire(c->kind));
  char mid[MSGID_LEN + 1];

  if (in->transient) { /* not stored, online only; acked when the client asked (bit 3) */
    int64_t ts = now_ms();
    msgid_make(ts, 0, mid);
    pm.id = mid;
    PB_SET(pm, timestamp, ts);
    fanout_t *p = fanout_new(&out);
    p->priority = priority;
    if (in->not_to_sender) p->not_to = xstrdup(sender);
    if (rt && ack_transient) send_ack(w, rt, mid, ts);
    sent_done(w, done, mid, ts);
    deliver(w, c, members, p, skip);
    fanout_release(p);
    members_release(members);
    conv_release(c);
    free(text);
    return;
  }

  send_job_t *sj = xcalloc(1, sizeof *sj);
  sj->t0_ns = mono_ns();
  sj->im = im;
  sj->conv = c;
  sj->members = members;
  sj->skip = skip;
  sj->ip = ip ? xstrdup(ip) : NULL;
  sj->push_data = in->push_data && *in->push_data ? xstrdup(in->push_data) : NULL;
  if (done) sj->done = *done;
  job_msg_insert_t *j = &sj->j;
  j->conv = c->id;
  j->sender = xstrdup(sender);
  j->len = in->len;
  j->data = xmalloc(in->len + 1);
  memcpy(j->data, in->data, in->len);
  j->flags = (in->bin ? MSG_F_BIN : 0) | (receipt ? MSG_F_RECEIPT : 0) | (in->mention_all ? MSG_F_MENTION_ALL : 0);
  if (in->n_mentions) {
    json_t *a = json_array();
    for (size_t i = 0; i < in->n_mentions; i++) json_array_append_new(a, json_string(in->mention_pids[i]));
    j->mentions = json_dumps(a, JSON_COMPACT);
    json_decref(a);
  }
  if (!in->bin) j->has_lctype = scan_lctype((const char *)j->data, j->len, &j->lctype);
  j->dt = in->dt;
  j->dt_since = in->dt_since;
  /* A subscriber's own message to a service conversation (it comes with no recipients) is
   * kept for the sender and the app's back end, and read by no other subscriber (§3.19). */
  if (in->readers) j->readers = xstrdup(in->readers);
  else if (c->kind == CONV_SYSTEM && !members) j->readers = xstrdup("\x1f");
  if (rt) {
    sj->rt = *rt;
    sj->rt.peer = rt->peer ? xstrdup(rt->peer) : NULL;
  }
  j->job.type = JOB_MSG_INSERT;
  j->rekey = msg_rekey;
  j->job.worker = w->idx;
  j->job.task.fn = send_done;

  /* The key is taken and the job queued under the conversation's lock, so storage sees
   * one conversation's messages in sequence order and timestamps never go backwards. */
  pthread_mutex_lock(&c->mu);
  int64_t ts = key_now();
  if (ts < c->last_ts) ts = c->last_ts;
  j->ts = ts;
  j->seq = ++c->last_seq;
  c->last_ts = ts;
  if (receipt) {
    c->has_receipts = 1;
    sj->rcp_first = !c->rcp_stored;
  }
  msgid_make(j->ts, j->seq, mid);
  j->mid = xstrdup(mid);
  pm.id = mid;
  PB_SET(pm, timestamp, ts);
  sending_track(w, sj, in->dt);
  sj->frame = fanout_new(&out);
  sj->frame->priority = priority;
  if (in->not_to_sender) sj->frame->not_to = xstrdup(sender);
  /* before the submit, after which the job (and sj) belong to the writer and then to send_done */
  sj->dlv_no = c->dlv_next++; /* its fan-out's turn after the commit (deliver_in_turn) */
  store_submit(im->store, &j->job);
  pthread_mutex_unlock(&c->mu);
  free(text);
}

/* ---------------------------------------------------------------- will messages */

struct will {
  struct will *next;
  char *cid;
  uint8_t *data;
  size_t len;
  int bin, mention_all;
  char **mention_pids;
  size_t n_mentions;
  size_t acct; /* bytes counted in its address's and the server's will budgets */
};

#define WILLS_MAX 16

/* Gives back what the wills of s hold of the budgets (will_limit_ip, will_limit_total). */
static void wills_unaccount(session_t *s) {
  im_t *im = s->link && s->link->imw ? s->link->imw->im : NULL;
  for (will_t *wl = s->wills; wl && im; wl = wl->next) {
    if (s->ipe) ipcount_out_add(s->ipe, -(int64_t)wl->acct);
    atomic_fetch_sub(&im->will_bytes, (int64_t)wl->acct);
  }
}

/* Takes n bytes of the budgets for a will of s: 0, or a detail for the refusal. */
static const char *wills_take(im_t *im, session_t *s, size_t n) {
  long ip_cap = im->cfg->will_limit_ip, all_cap = im->cfg->will_limit_total;
  if (s->ipe && ipcount_out_add(s->ipe, (int64_t)n) > ip_cap && ip_cap > 0) {
    ipcount_out_add(s->ipe, -(int64_t)n);
    return "too many will messages from this address";
  }
  if (atomic_fetch_add(&im->will_bytes, (int64_t)n) + (int64_t)n > all_cap && all_cap > 0) {
    atomic_fetch_sub(&im->will_bytes, (int64_t)n);
    if (s->ipe) ipcount_out_add(s->ipe, -(int64_t)n);
    return "too many will messages on this server";
  }
  return NULL;
}

static void will_free(will_t *wl) {
  free(wl->cid);
  free(wl->data);
  for (size_t i = 0; i < wl->n_mentions; i++) free(wl->mention_pids[i]);
  free(wl->mention_pids);
  free(wl);
}

void im_wills_free(session_t *s) {
  wills_unaccount(s);
  while (s->wills) {
    will_t *next = s->wills->next;
    will_free(s->wills);
    s->wills = next;
  }
}

/* The session ended without a goodbye: its wills go out now, as if it had sent them. */
void im_wills_fire(im_worker_t *w, session_t *s) {
  for (will_t *wl = s->wills; wl; wl = wl->next) {
    msg_in_t in = {.cid = wl->cid,
                   .data = wl->data,
                   .len = wl->len,
                   .bin = wl->bin,
                   .mention_all = wl->mention_all,
                   .mention_pids = wl->mention_pids,
                   .n_mentions = wl->n_mentions};
    conv_t *c;
    members_t *m;
    const char *detail;
    if (msg_check(w, s->client_id, &in, &c, &m, &detail) == 0)
      msg_submit(w, c, m, s->client_id, s->id, &in, NULL, 0, NULL, NULL);
  }
  im_wills_free(s);
}

/* ---------------------------------------------------------------- _messageReceived */

/* A send waiting for the app's verdict: everything the request said, owned. */
typedef struct {
  im_t *im;
  conv_t *conv;
  members_t *members;
  char *sender, *ip;
  uint64_t skip;
  reply_to_t rt;
  int ack_transient;
  msg_in_t in;
  uint8_t *data;
  char **mentions;
  char *cid;
  char *push_data;
} held_send_t;

static void held_free(held_send_t *h) {
  if (h->conv) conv_release(h->conv);
  members_release(h->members);
  free(h->sender);
  free(h->ip);
  reply_to_free(&h->rt);
  free(h->data);
  for (size_t i = 0; i < h->in.n_mentions; i++) free(h->mentions[i]);
  free(h->mentions);
  free(h->cid);
  free(h->push_data);
  free(h);
}

/* The verdict (§8): drop → 4402 with appCode/appMsg; content (and bin) replace the
 * message; toPeers replaces the recipients. Then the send goes on as usual. */
static void received_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  held_send_t *h = arg;
  if (failed || json_is_true(json_object_get(result, "drop"))) {
    reply_rejected_async(w, &h->rt, LC_MESSAGE_REJECTED_BY_APP, failed ? NULL : result);
    held_free(h);
    return;
  }
  json_t *content = json_object_get(result, "content");
  if (json_is_string(content)) {
    int bin = json_is_true(json_object_get(result, "bin"));
    size_t n = json_string_length(content);
    uint8_t *data = xmalloc(n + 1);
    long len = bin ? base64_decode(json_string_value(content), n, data)
                   : (memcpy(data, json_string_value(content), n), (long)n);
    if (len >= 0) {
      free(h->data);
      h->data = data;
      h->in.data = data;
      h->in.len = (size_t)len;
      h->in.bin = bin;
    } else {
      free(data);
    }
  }
  json_t *to = json_object_get(result, "toPeers");
  if (json_is_array(to) && h->conv->kind != CONV_ROOM) {
    /* the app names the recipients; the sender's other devices still get their copy */
    size_t n = json_array_size(to), k = 0;
    char **ids = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
      if (json_is_string(json_array_get(to, i))) ids[k++] = (char *)json_string_value(json_array_get(to, i));
    ids[k++] = h->sender;
    members_release(h->members);
    h->members = members_new(ids, k);
    free(ids);
  }
  msg_submit(w, h->conv, h->members, h->sender, h->skip, &h->in, &h->rt, h->ack_transient, h->ip, NULL);
  h->conv = NULL; /* msg_submit took them */
  h->members = NULL;
  held_free(h);
}

static void received_hook(req_t *r, conv_t *c, members_t *members, const msg_in_t *in, const reply_to_t *rt) {
  held_send_t *h = xcalloc(1, sizeof *h);
  h->im = r->w->im;
  h->conv = c;
  h->members = members;
  h->sender = xstrdup(r->s->client_id);
  h->ip = r->link->ip ? xstrdup(r->link->ip) : NULL;
  h->skip = r->s->id;
  h->rt = *rt;
  h->rt.peer = rt->peer ? xstrdup(rt->peer) : NULL;
  h->ack_transient = (r->s->config_bitmap & 8) != 0;
  h->in = *in;
  h->data = xmalloc(in->len + 1);
  memcpy(h->data, in->data, in->len);
  h->in.data = h->data;
  h->cid = xstrdup(c->cid);
  h->push_data = in->push_data ? xstrdup(in->push_data) : NULL;
  h->in.push_data = h->push_data;
  h->in.cid = h->cid;
  h->mentions = xcalloc(in->n_mentions + 1, sizeof(char *));
  for (size_t i = 0; i < in->n_mentions; i++) h->mentions[i] = xstrdup(in->mention_pids[i]);
  h->in.mention_pids = h->mentions;
  json_t *to = json_array();
  for (size_t i = 0; members && i < members->n; i++)
    if (strcmp(members->ids[i], h->sender) != 0) json_array_append_new(to, json_string(members->ids[i]));
  json_t *p = json_pack("{s:s, s:s, s:o, s:b, s:b, s:o, s:b, s:I, s:b, s:n}", "fromPeer", h->sender, "convId", c->cid,
                        "toPeers", to, "transient", in->transient, "bin", in->bin, "content",
                        msg_content_json(in->data, in->len, in->bin), "receipt", in->receipt, "timestamp",
                        (json_int_t)now_ms(), "system", c->kind == CONV_SYSTEM, "groupId");
  if (h->ip) json_object_set_new(p, "sourceIP", json_string(h->ip));
  im_hook_call(r->w, HOOK_MESSAGE_RECEIVED, p, received_done, h);
}

/* ---------------------------------------------------------------- direct */

void im_msg_direct(req_t *r) {
  Lc__DirectCommand *dm = r->cmd->directmessage;
  if (!dm) {
    reply_error(r, LC_INVALID_MESSAGING_TARGET, "cid is required");
    return;
  }
  msg_in_t in = {.cid = dm->cid,
                 .bin = dm->has_binarymsg,
                 .transient = dm->has_transient && dm->transient,
                 .receipt = dm->has_r && dm->r,
                 .mention_all = dm->has_mentionall && dm->mentionall,
                 .mention_pids = dm->mentionpids,
                 .n_mentions = dm->n_mentionpids,
                 .priority = r->cmd->has_priority ? r->cmd->priority : 2,
                 .push_data = dm->pushdata};
  /* protobuf-c leaves an empty binaryMsg's data NULL; the content is copied with memcpy */
  in.data = in.bin ? (dm->binarymsg.data ? dm->binarymsg.data : (const uint8_t *)"")
                   : (const uint8_t *)(dm->msg ? dm->msg : "");
  in.len = in.bin ? dm->binarymsg.len : strlen((const char *)in.data);
  /* pushData counts against the size limit (DOC: 5 KB including pushData), and so do the
   * mentioned ids: stored with the message and sent to every member, a 64 KiB frame of them
   * passed the limit with a 1-byte message */
  size_t extra = dm->pushdata ? strlen(dm->pushdata) : 0;
  size_t mentioned = 0;
  for (size_t i = 0; i < dm->n_mentionpids; i++) mentioned += dm->mentionpids[i] ? strlen(dm->mentionpids[i]) : 0;
  if (in.len + extra + mentioned > (size_t)r->w->im->cfg->max_message) {
    reply_error(r, LC_FRAME_TOO_LONG, "message larger than the configured limit");
    return;
  }
  /* Text is UTF-8 or refused (protocol-map.md): REST history, hooks and pushes carry it as
   * JSON, which has no way to say anything else, and it must read the same everywhere. */
  if (!in.bin && !utf8_valid((const char *)in.data, in.len)) {
    reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, "msg is not valid UTF-8 (binary content goes in binaryMsg)");
    return;
  }
  if (dm->pushdata &&
      (!utf8_valid(dm->pushdata, extra) || json_text_depth(dm->pushdata, extra, JSON_MAX_DEPTH) > JSON_MAX_DEPTH)) {
    reply_error(r, LC_UNPARSEABLE_RAW_MESSAGE, "pushData must be UTF-8 JSON nested at most 64 levels");
    return;
  }
  conv_t *c;
  members_t *members;
  const char *detail;
  int code = msg_check(r->w, r->s->client_id, &in, &c, &members, &detail);
  if (code) {
    reply_error(r, code, detail);
    return;
  }
  /* A chat room's recipients are the members present: a join answered on another node is
   * applied here first (docs/cluster.md "The window, closed"). Sends to other conversations
   * are not fenced: the fence parked most cross-node sends under load, ~30% of a node's CPU
   * per message flat out (bench/README.md "The presence fence's cost"). */
  if (c->kind == CONV_ROOM && im_presence_fence(r) == IM_PARKED) {
    members_release(members);
    conv_release(c);
    return;
  }
  int will = dm->has_will && dm->will;
  if (!will && !in.transient) in.dt = im_dt_hash(dm->dt);
  if (im_dedupe_prefetch(r, c, in.dt) == IM_PARKED) { /* its resend lookup, off the loop: run again then */
    members_release(members);
    conv_release(c);
    return;
  }
  char *stored_mid = NULL;
  int64_t stored_ts = 0;
  int resend = im_dedupe_find(r->w, r->s, c, in.dt, &stored_mid, &stored_ts, &in.dt_since);
  if (resend) { /* answered as the first time: stored (and delivered) once */
    if (resend > 0) {
      reply_to_t rt;
      reply_to_init(&rt, r);
      send_ack(r->w, &rt, stored_mid, stored_ts);
      reply_to_free(&rt);
    } else {
      reply_error(r, LC_INTERNAL_ERROR, "message could not be stored");
    }
    free(stored_mid);
    members_release(members);
    conv_release(c);
    return;
  }
  reply_to_t rt;
  reply_to_init(&rt, r);
  if (will) {
    /* kept with the session, sent when the connection drops unexpectedly (§3.6); the
     * sender's ack comes now, with an id of its own (the real one is made at delivery) */
    int n = 0;
    for (will_t *wl = r->s->wills; wl; wl = wl->next) n++;
    const char *over = NULL;
    if (n >= WILLS_MAX) {
      reply_error(r, LC_MESSAGE_SENT_QUOTA_EXCEEDED, "too many will messages on this session");
    } else if ((over = wills_take(r->w->im, r->s, in.len + mentioned))) {
      reply_error(r, LC_MESSAGE_SENT_QUOTA_EXCEEDED, over);
    } else {
      will_t *wl = xcalloc(1, sizeof *wl);
      wl->acct = in.len + mentioned;
      wl->cid = xstrdup(c->cid);
      wl->data = xmalloc(in.len + 1);
      memcpy(wl->data, in.data, in.len);
      wl->len = in.len;
      wl->bin = in.bin;
      wl->mention_all = in.mention_all;
      wl->mention_pids = xcalloc(in.n_mentions + 1, sizeof(char *));
      for (size_t i = 0; i < in.n_mentions; i++) wl->mention_pids[wl->n_mentions++] = xstrdup(in.mention_pids[i]);
      wl->next = r->s->wills;
      r->s->wills = wl;
      char mid[MSGID_LEN + 1];
      int64_t ts = now_ms();
      msgid_make(ts, 0, mid);
      send_ack(r->w, &rt, mid, ts);
    }
    members_release(members);
    conv_release(c);
  } else if (im_hook_enabled(r->w->im, HOOK_MESSAGE_RECEIVED)) {
    received_hook(r, c, members, &in, &rt); /* takes c and members */
  } else {
    msg_submit(r->w, c, members, r->s->client_id, r->s->id, &in, &rt, (r->s->config_bitmap & 8) != 0, r->link->ip,
               NULL);
  }
  reply_to_free(&rt);
}

/* ---------------------------------------------------------------- acks and receipts */

static void progress_free(store_job_t *j) {
  job_progress_t *p = (job_progress_t *)j;
  free(p->client);
  free(p);
}

static void submit_progress(im_t *im, job_type_t type, conv_t *c, const char *client, int64_t ts, int64_t seq) {
  job_progress_t *p = xcalloc(1, sizeof *p);
  p->job.type = type;
  p->job.worker = -1; /* fire and forget: losing one to a crash only means a re-delivery */
  p->job.free_fn = progress_free;
  p->conv = c->id;
  p->client = xstrdup(client);
  p->ts = ts;
  p->seq = seq;
  p->at = now_ms();
  store_submit(im->store, &p->job);
}

static void send_rcp(im_worker_t *w, conv_t *c, const char *to, const char *mid, int64_t t, const char *from,
                     int read) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__RcpCommand rm = LC__RCP_COMMAND__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__rcp);
  PB_SET(out, service, 2);
  out.rcpmessage = &rm;
  rm.id = (char *)mid;
  rm.cid = c->cid;
  PB_SET(rm, t, t);
  if (read) PB_SET(rm, read, 1);
  rm.from = (char *)from;
  fanout_t *p = fanout_new(&out);
  char *ids[1] = {(char *)to};
  fanout_to_clients(w, p, ids, 1, 0);
  fanout_release(p);
}

/* The receipts an ack owes, found off the loop (store_read_submit): the messages it covers
 * whose senders asked for receipts, read on a read thread, sent from the worker. */
typedef struct {
  store_read_t rd;
  im_t *im;
  conv_t *conv; /* referenced */
  char *from;
  int64_t lo_ts, lo_seq, hi_ts, hi_seq;
  char **to, **mids; /* each receipt: its message's sender and id */
  size_t n, cap;
} rcp_read_t;

static int receipt_each(void *arg, const msg_view_t *m) {
  rcp_read_t *x = arg;
  if (x->n == x->cap) {
    x->cap = x->cap ? x->cap * 2 : 8;
    x->to = xrealloc(x->to, x->cap * sizeof *x->to);
    x->mids = xrealloc(x->mids, x->cap * sizeof *x->mids);
  }
  x->to[x->n] = xstrdup(m->sender);
  x->mids[x->n++] = xstrdup(m->mid);
  return 0;
}

static int rcp_read(store_reader_t *r, store_read_t *rd) {
  rcp_read_t *x = (rcp_read_t *)rd;
  return store_msg_receipts(r, x->conv->id, x->from, x->lo_ts, x->lo_seq, x->hi_ts, x->hi_seq, receipt_each, x);
}

static void rcp_read_done(task_t *t) {
  rcp_read_t *x = (rcp_read_t *)t;
  im_worker_t *w = x->im->workers[worker_current()];
  int64_t now = now_ms();
  for (size_t i = 0; i < x->n; i++) {
    if (x->rd.result == 0) send_rcp(w, x->conv, x->to[i], x->mids[i], now, x->from, 0);
    free(x->to[i]);
    free(x->mids[i]);
  }
  free(x->to);
  free(x->mids);
  free(x->from);
  conv_release(x->conv);
  free(x);
}

void im_msg_ack(req_t *r) {
  Lc__AckCommand *am = r->cmd->ackmessage;
  if (!am || !am->cid) return; /* session-level acks carry no position to record */
  conv_t *c = conv_get(r->w, am->cid, NULL);
  if (!c) return;
  const char *self = r->s->client_id;
  int64_t lo_ts, lo_seq, hi_ts, hi_seq;
  if (c->kind == CONV_ROOM || !is_member_of(c, self)) goto done;
  if (am->mid && msg_key_resolve(r->w, c, am->mid, &hi_ts, &hi_seq) == 0) {
    lo_ts = hi_ts;
    lo_seq = hi_seq - 1;
  } else if (am->has_tots) {
    hi_ts = am->tots;
    hi_seq = SEQ_MAX;
    lo_ts = am->has_fromts ? am->fromts : am->tots;
    lo_seq = 0;
  } else {
    goto done;
  }
  submit_progress(r->w->im, JOB_MEMBER_ACK, c, self, hi_ts, hi_seq);
  if (c->has_receipts) {
    metric_inc(M_RECEIPT_READS);
    rcp_read_t *x = xcalloc(1, sizeof *x);
    x->im = r->w->im;
    x->conv = c; /* the read's reference from here on */
    x->from = xstrdup(self);
    x->lo_ts = lo_ts, x->lo_seq = lo_seq, x->hi_ts = hi_ts, x->hi_seq = hi_seq;
    x->rd.task.fn = rcp_read_done;
    x->rd.worker = r->w->idx;
    x->rd.fn = rcp_read;
    if (store_read_submit(r->w->im->store, r->w->reader, &x->rd) < 0) {
      x->rd.result = TERN_EAGAIN; /* the queue is full: no receipts, as when the read fails */
      rcp_read_done(&x->rd.task);
    }
    return;
  }
done:
  conv_release(c);
}

/* ---------------------------------------------------------------- read */

static void read_one(req_t *r, const char *cid, int has_ts, int64_t ts, const char *mid) {
  conv_t *c = conv_get(r->w, cid, NULL);
  if (!c) return;
  const char *self = r->s->client_id;
  members_t *m = c->kind == CONV_ROOM ? NULL : conv_members(c);
  if (!m || !members_has(m, self)) goto done; /* a chat room keeps no read positions */
  int64_t pos_ts, pos_seq;
  if (!mid || msg_key_resolve(r->w, c, mid, &pos_ts, &pos_seq) < 0) {
    pos_ts = has_ts && ts > 0 ? ts : now_ms();
    pos_seq = SEQ_MAX;
  }
  submit_progress(r->w->im, JOB_MEMBER_READ, c, self, pos_ts, pos_seq);
  /* one-to-one: tell the other side how far this client has read (§3.8) */
  if (m->n == 2) {
    const char *other = strcmp(m->ids[0], self) == 0 ? m->ids[1] : m->ids[0];
    send_rcp(r->w, c, other, mid, pos_ts, self, 1);
  }
  /* the client's other devices: this conversation has nothing unread any more */
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__UnreadCommand um = LC__UNREAD_COMMAND__INIT;
  Lc__UnreadTuple tu = LC__UNREAD_TUPLE__INIT;
  Lc__UnreadTuple *tuples[1] = {&tu};
  PB_SET(out, cmd, LC__COMMAND_TYPE__unread);
  PB_SET(out, service, 2);
  out.unreadmessage = &um;
  um.convs = tuples;
  um.n_convs = 1;
  PB_SET(um, notiftime, now_ms());
  tu.cid = c->cid;
  tu.unread = 0;
  PB_SET(tu, mentioned, 0);
  fanout_t *p = fanout_new(&out);
  char *ids[1] = {(char *)self};
  fanout_to_clients(r->w, p, ids, 1, r->s->id);
  fanout_release(p);
done:
  members_release(m);
  conv_release(c);
}

void im_msg_read(req_t *r) {
  Lc__ReadCommand *rm = r->cmd->readmessage;
  if (!rm) return;
  for (size_t i = 0; i < rm->n_convs && i < 200; i++)
    read_one(r, rm->convs[i]->cid, rm->convs[i]->has_timestamp, rm->convs[i]->timestamp, rm->convs[i]->mid);
  if (rm->cid) read_one(r, rm->cid, 0, 0, NULL);
  for (size_t i = 0; i < rm->n_cids && i < 200; i++) read_one(r, rm->cids[i], 0, 0, NULL);
}

/* ---------------------------------------------------------------- history */

typedef struct {
  Lc__LogItem **items;
  size_t n, cap;
  int kind;
  const char *other; /* one-to-one: the member whose progress fills ackAt/readAt */
  member_progress_t other_progress;
  int have_progress;
} logs_acc_t;

static int logs_each(void *arg, const msg_view_t *m) {
  logs_acc_t *a = arg;
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 32;
    a->items = xrealloc(a->items, a->cap * sizeof *a->items);
  }
  Lc__LogItem *it = xmalloc(sizeof *it);
  lc__log_item__init(it);
  it->from = xstrdup(m->sender);
  it->msgid = xstrdup(m->mid);
  PB_SET(*it, timestamp, m->ts);
  int bin = m->flags & MSG_F_BIN;
  if (bin) {
    it->data = xmalloc(base64_encoded_len(m->len) + 1);
    it->data[base64_encode(m->data, m->len, it->data)] = 0;
  } else {
    it->data = xstrndup((const char *)m->data, m->len);
  }
  PB_SET(*it, bin, bin != 0);
  if (m->patch_ts) PB_SET(*it, patchtimestamp, m->patch_ts);
  if (m->flags & MSG_F_MENTION_ALL) PB_SET(*it, mentionall, 1);
  json_t *mp = m->mentions ? json_loads(m->mentions, 0, NULL) : NULL;
  if (json_is_array(mp) && json_array_size(mp)) {
    it->mentionpids = xcalloc(json_array_size(mp), sizeof(char *));
    size_t i;
    json_t *v;
    json_array_foreach(mp, i, v) if (json_is_string(v)) it->mentionpids[it->n_mentionpids++] =
        xstrdup(json_string_value(v));
  }
  json_decref(mp);
  PB_SET(*it, convtype, a->kind);
  if (a->have_progress && strcmp(m->sender, a->other) != 0) {
    const member_progress_t *p = &a->other_progress;
    if (p->ack_ts > m->ts || (p->ack_ts == m->ts && p->ack_seq >= m->seq))
      PB_SET(*it, ackat, p->ack_at > m->ts ? p->ack_at : m->ts);
    if (p->read_ts > m->ts || (p->read_ts == m->ts && p->read_seq >= m->seq))
      PB_SET(*it, readat, p->read_at > m->ts ? p->read_at : m->ts);
  }
  a->items[a->n++] = it;
  return 0;
}

static void other_progress(void *arg, const member_progress_t *p) {
  logs_acc_t *a = arg;
  if (strcmp(p->client, a->other) != 0) return;
  a->other_progress = *p;
  a->other_progress.client = NULL;
  a->have_progress = 1;
}

/* A boundary given as (t, mid): the message itself when the id names one, else a time. */
static void bound(im_worker_t *w, conv_t *c, int64_t t, const char *mid, int incl, int is_lower, int *has, int64_t *bts,
                  int64_t *bseq, int *bincl) {
  int64_t mts, mseq;
  if (mid && msg_key_resolve(w, c, mid, &mts, &mseq) == 0) {
    *has = 1;
    *bts = mts;
    *bseq = mseq;
    *bincl = incl;
    return;
  }
  if (t <= 0) return;
  *has = 1;
  *bts = t;
  /* time only: "ts < t" is key < (t, 0); "ts <= t" is key <= (t, MAX); mirrored below */
  if (is_lower) {
    *bseq = incl ? 0 : SEQ_MAX;
    *bincl = incl;
  } else {
    *bseq = incl ? SEQ_MAX : 0;
    *bincl = incl;
  }
}

/* A history page on its way through the store's read threads (store_read_submit): on a
 * PostgreSQL store a page is a round trip or more, and a slow database would hold every
 * connection of this worker; on SQLite it runs at once, as before. */
typedef struct {
  store_read_t rd;
  im_t *im;
  reply_to_t rt;
  logs_req_t q;
  char *viewer, *other;
  logs_acc_t acc;
  int counted;         /* holds one of the link's MAX_LINK_READS */
  ipcount_entry_t *ip; /* holds one of its address's MAX_IP_READS */
} logs_read_t;

static int logs_read(store_reader_t *r, store_read_t *rd) {
  logs_read_t *x = (logs_read_t *)rd;
  if (x->other) store_progress(r, x->q.conv, other_progress, &x->acc);
  return x->q.limit ? store_logs(r, &x->q, logs_each, &x->acc) : 0;
}

static void logs_read_done(task_t *t) {
  logs_read_t *x = (logs_read_t *)t;
  im_worker_t *w = x->im->workers[worker_current()];
  if (x->counted) {
    im_link_t *l = reply_to_link(w, &x->rt);
    if (l && l->reads) l->reads--;
  }
  if (x->ip) ipcount_del(x->im->read_ips, x->ip);
  if (x->rd.result < 0) {
    reply_error_async(w, &x->rt, LC_CONVERSATION_LOG_FAILED,
                      x->rd.result == TERN_EAGAIN ? "server busy: too many reads waiting" : "storage failed");
  } else {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__LogsCommand lo = LC__LOGS_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__logs);
    out.logsmessage = &lo;
    lo.logs = x->acc.items;
    lo.n_logs = x->acc.n;
    reply_async(w, &x->rt, &out);
  }
  for (size_t i = 0; i < x->acc.n; i++) lc__log_item__free_unpacked(x->acc.items[i], NULL);
  free(x->acc.items);
  free(x->viewer);
  free(x->other);
  reply_to_free(&x->rt);
  free(x);
}

void im_msg_logs(req_t *r) {
  Lc__LogsCommand *lm = r->cmd->logsmessage;
  if (!lm || !lm->cid) {
    reply_error(r, LC_CONVERSATION_LOG_REJECTED, "cid is required");
    return;
  }
  conv_t *c = conv_get(r->w, lm->cid, NULL);
  members_t *m = c ? conv_members(c) : NULL;
  /* a chat room keeps no member list: its members are the sessions in it now (a room
   * reloaded into the cache is another conv_t, so compare ids) */
  int member = c && (c->kind == CONV_ROOM ? r->s->room && strcmp(r->s->room->cid, c->cid) == 0
                     : c->kind == CONV_NORMAL || c->kind == CONV_TEMP ? members_has(m, r->s->client_id)
                                                                      : 1);
  if (!member) {
    reply_error(r, LC_CONVERSATION_LOG_REJECTED,
                !c                     ? "conversation not found"
                : c->kind == CONV_ROOM ? "join the chat room to read its history"
                                       : "not a member");
    members_release(m);
    conv_release(c);
    return;
  }
  logs_req_t q = {.conv = c->id, .viewer = r->s->client_id};
  q.newer = lm->has_direction && lm->direction == LC__LOGS_COMMAND__QUERY_DIRECTION__NEW;
  int start_incl = lm->has_tincluded && lm->tincluded, end_incl = lm->has_ttincluded && lm->ttincluded;
  int64_t t = lm->has_t ? lm->t : 0, tt = lm->has_tt ? lm->tt : 0;
  if (q.newer) {
    bound(r->w, c, t, lm->mid, start_incl, 1, &q.has_lo, &q.lo_ts, &q.lo_seq, &q.lo_incl);
    bound(r->w, c, tt, lm->tmid, end_incl, 0, &q.has_hi, &q.hi_ts, &q.hi_seq, &q.hi_incl);
  } else {
    bound(r->w, c, t, lm->mid, start_incl, 0, &q.has_hi, &q.hi_ts, &q.hi_seq, &q.hi_incl);
    bound(r->w, c, tt, lm->tmid, end_incl, 1, &q.has_lo, &q.lo_ts, &q.lo_seq, &q.lo_incl);
  }
  q.limit = lm->has_l ? lm->l : lm->has_limit ? lm->limit : 20;
  if (q.limit < 0) q.limit = 0;
  if (q.limit > 1000) q.limit = 1000;
  if (lm->has_lctype) {
    q.has_lctype = 1;
    q.lctype = lm->lctype;
  }
  if (r->link->reads >= MAX_LINK_READS) {
    reply_error(r, LC_CONVERSATION_LOG_FAILED, "too many history reads running on this connection");
    members_release(m);
    conv_release(c);
    return;
  }
  ipcount_entry_t *ip = ipcount_add(r->w->im->read_ips, r->link->ip ? r->link->ip : "", MAX_IP_READS);
  if (!ip) {
    reply_error(r, LC_CONVERSATION_LOG_FAILED, "too many history reads from this address");
    members_release(m);
    conv_release(c);
    return;
  }
  logs_read_t *x = xcalloc(1, sizeof *x);
  x->ip = ip;
  x->im = r->w->im;
  reply_to_init(&x->rt, r);
  x->q = q;
  x->q.viewer = x->viewer = xstrdup(r->s->client_id);
  x->acc.kind = c->kind;
  if (m && m->n == 2)
    x->acc.other = x->other = xstrdup(strcmp(m->ids[0], r->s->client_id) == 0 ? m->ids[1] : m->ids[0]);
  members_release(m);
  conv_release(c);
  x->rd.task.fn = logs_read_done;
  x->rd.worker = r->w->idx;
  x->rd.fn = logs_read;
  r->link->reads++;
  x->counted = 1;
  if (store_read_submit(r->w->im->store, r->w->reader, &x->rd) < 0) {
    x->rd.result = TERN_EAGAIN;
    logs_read_done(&x->rd.task);
  }
}

/* ---------------------------------------------------------------- for the REST API */

void im_rest_send(im_worker_t *w, conv_t *c, const char *from, const rest_msg_t *msg, const im_done_t *done) {
  members_t *m = NULL;
  buf_t readers = BUF_INIT;
  int no_sync = msg->no_sync;
  if (msg->nto) { /* to chosen clients only: they (and the sender, unless no_sync) get it and may read it */
    char **ids = xcalloc(msg->nto + 1, sizeof(char *));
    buf_append(&readers, "\x1f", 1);
    for (size_t i = 0; i < msg->nto; i++) {
      ids[i] = msg->to[i];
      buf_append_str(&readers, msg->to[i]);
      buf_append(&readers, "\x1f", 1);
    }
    if (!no_sync) ids[msg->nto] = (char *)from;
    m = members_new(ids, msg->nto + !no_sync);
    free(ids);
  } else if (c->kind != CONV_ROOM) {
    members_t *all = conv_members(c);
    if (no_sync && all) { /* not copied to the sender's own sessions */
      char **ids = xcalloc(all->n + 1, sizeof(char *));
      size_t k = 0;
      for (size_t i = 0; i < all->n; i++)
        if (strcmp(all->ids[i], from) != 0) ids[k++] = all->ids[i];
      m = members_new(ids, k);
      free(ids);
      members_release(all);
    } else {
      m = all;
    }
  }
  msg_in_t in = {.cid = c->cid,
                 .data = msg->data,
                 .len = msg->len,
                 .transient = msg->transient,
                 .priority = msg->priority,
                 .mention_all = msg->mention_all,
                 .mention_pids = msg->mentions,
                 .n_mentions = msg->nm,
                 .push_data = msg->push_data,
                 .readers = msg->nto ? buf_cstr(&readers) : NULL,
                 .not_to_sender = c->kind == CONV_ROOM && no_sync};
  /* chat-room REST messages never go to the sender (§7.2): skip nobody else */
  msg_submit(w, c, m, from, 0, &in, NULL, 0, NULL, done);
  buf_free(&readers);
}

static int hist_each(void *arg, const msg_view_t *m) {
  json_t *a = arg, *it;
  int bin = m->flags & MSG_F_BIN;
  it = json_pack("{s:I, s:o, s:s, s:s, s:b}", "timestamp", (json_int_t)m->ts, "data",
                 msg_content_json(m->data, m->len, bin), "from", m->sender, "msg-id", m->mid, "bin", bin != 0);
  im_rest_item_extras(it, m);
  json_array_append_new(a, it);
  return 0;
}

/* What a REST history item says beyond LeanCloud's documented fields, when it applies: the
 * edit time, mentions, and a recall (whose data is the recalled typed message, -127). */
void im_rest_item_extras(json_t *it, const msg_view_t *m) {
  if (m->patch_ts) json_object_set_new(it, "patch-timestamp", json_integer(m->patch_ts));
  if (m->flags & MSG_F_MENTION_ALL) json_object_set_new(it, "mention-all", json_true());
  json_t *mp = m->mentions ? json_loads(m->mentions, 0, NULL) : NULL;
  if (json_array_size(mp)) json_object_set(it, "mention-pids", mp);
  json_decref(mp);
  if (m->flags & MSG_F_RECALLED) json_object_set_new(it, "recall", json_true());
}

int im_rest_history(im_worker_t *w, conv_t *c, const char *viewer, const char *msgid, int64_t ts,
                    const char *till_msgid, int64_t till_ts, int include_start, int include_stop, int reversed,
                    int limit, json_t **out) {
  logs_req_t q = {.conv = c->id, .newer = reversed, .limit = limit, .viewer = viewer};
  /* REST pages like logs: from a start towards an end, newest first unless reversed */
  if (reversed) {
    bound(w, c, ts, msgid, include_start, 1, &q.has_lo, &q.lo_ts, &q.lo_seq, &q.lo_incl);
    bound(w, c, till_ts, till_msgid, include_stop, 0, &q.has_hi, &q.hi_ts, &q.hi_seq, &q.hi_incl);
  } else {
    bound(w, c, ts, msgid, include_start, 0, &q.has_hi, &q.hi_ts, &q.hi_seq, &q.hi_incl);
    bound(w, c, till_ts, till_msgid, include_stop, 1, &q.has_lo, &q.lo_ts, &q.lo_seq, &q.lo_incl);
  }
  json_t *arr = json_array();
  if (store_logs(w->reader, &q, hist_each, arr) < 0) {
    json_decref(arr);
    return TERN_ESTORE;
  }
  if (!reversed) { /* store_logs hands pages out oldest first; REST wants newest first */
    size_t n = json_array_size(arr);
    json_t *rev = json_array();
    for (size_t i = n; i-- > 0;) json_array_append(rev, json_array_get(arr, i));
    json_decref(arr);
    arr = rev;
  }
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *it = json_array_get(arr, i);
    json_object_set_new(it, "conv-id", json_string(c->cid));
    json_object_set_new(it, "to", json_string(c->cid));
    json_object_set_new(it, "is-conv", json_true());
    json_object_set_new(it, "is-room", json_boolean(c->kind == CONV_ROOM));
  }
  *out = arr;
  return 0;
}
