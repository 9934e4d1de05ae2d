/* im_login.c — what a login is told after "session opened": its unread counts (or, for
 * lc.protobuf2.1, the messages it has not acked, pushed as offline messages).
 *
 * The read runs off the worker's loop (store_read_submit: PostgreSQL's read threads; SQLite
 * runs it at once), and the connection's output is held behind it (im_hold_read): the peer
 * sees session/opened, then the counts, then what was sent to it meanwhile (live pushes,
 * later replies). In a cluster the read starts only when the login's presence hold ends —
 * every node then has the login and pushes to it — so a message committed after the read
 * is pushed live.
 *
 * Exact, both ways: a push held behind the counts of a message the counts already include
 * is dropped (per conversation: a stored message whose key (ts, seq) is not after that
 * conversation's newest in the counts; for 2.1, a message among those pushed as offline),
 * so each message reaches the login once, counted or live. Pushes to conversations not in
 * the counts (none unread, or past UNREAD_CONVS_MAX) go out as they are.
 *
 * Bounds (docs/security.md): one read per session at a time (a re-login while its counts are
 * read starts none: the read under way answers it), so a connection has at most
 * max_sessions_per_conn reads under way, an address max_sessions_per_ip, the server one per
 * session. One login's counts hold a connection's output at a time: a second login on it
 * meanwhile has its counts read unheld, sent when read (exact only for the first). Past the
 * store's read queue (STORE_READ_QUEUE_MAX) the counts are read on the loop, as before. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "err.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"

#define OFFLINE_PUSH_MAX 500
#define UNREAD_CONVS_MAX 50
/* How long pushes to a login are checked against what its counts told: the deliveries under
 * way when the counts were read arrive within task hops, or a Redis publish from another node. */
#define TOLD_MS 30000

typedef struct {
  char *cid;
  int64_t ts, seq; /* the newest message in the counts (seq 0: an id that names no key) */
  char *mid;
} conv_key_t;

typedef struct {
  Lc__UnreadTuple **t;
  size_t n, cap;
  int64_t since;
  conv_key_t *keys; /* per conversation in the counts with a message */
  size_t nkeys;
} unread_acc_t;

static void key_note(unread_acc_t *a, const char *cid, int64_t ts, int64_t seq, const char *mid);

static void unread_each(void *arg, const unread_view_t *u) {
  unread_acc_t *a = arg;
  /* a zero count is news only when a read elsewhere changed it since the client last heard */
  if (u->unread == 0 && !(a->since > 0 && u->read_changed_at > a->since)) return;
  if (a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->t = xrealloc(a->t, a->cap * sizeof *a->t);
  }
  Lc__UnreadTuple *t = xmalloc(sizeof *t);
  lc__unread_tuple__init(t);
  t->cid = xstrdup(u->cid);
  t->unread = u->unread;
  if (u->last.mid) key_note(a, u->cid, u->last.ts, u->last.seq, u->last.mid); /* the client has it now */
  PB_SET(*t, mentioned, u->mentioned != 0);
  PB_SET(*t, convtype, u->kind);
  if (u->last.mid) {
    t->mid = xstrdup(u->last.mid);
    PB_SET(*t, timestamp, u->last.ts);
    t->from = xstrdup(u->last.sender);
    if (u->last.flags & MSG_F_BIN) {
      uint8_t *copy = xmalloc(u->last.len + 1);
      memcpy(copy, u->last.data, u->last.len);
      ProtobufCBinaryData b = {u->last.len, copy};
      PB_SET(*t, binarymsg, b);
    } else {
      t->data = xstrndup((const char *)u->last.data, u->last.len);
    }
    if (u->last.patch_ts) PB_SET(*t, patchtimestamp, u->last.patch_ts);
  }
  a->t[a->n++] = t;
}

/* A message pushed as offline (lc.protobuf2.1), copied off the read thread. */
typedef struct {
  char *cid, *mid, *sender;
  int kind, flags;
  int64_t ts, seq;
  uint8_t *data;
  size_t len;
} offline_msg_t;

typedef struct {
  offline_msg_t *m;
  size_t n;
} offline_acc_t;

static void offline_each(void *arg, const char *cid, int kind, const msg_view_t *m) {
  offline_acc_t *a = arg;
  a->m = xrealloc(a->m, (a->n + 1) * sizeof *a->m);
  offline_msg_t *o = &a->m[a->n++];
  o->cid = xstrdup(cid);
  o->mid = xstrdup(m->mid);
  o->sender = xstrdup(m->sender);
  o->kind = kind;
  o->flags = m->flags;
  o->ts = m->ts;
  o->seq = m->seq;
  o->data = xmalloc(m->len + 1);
  memcpy(o->data, m->data, m->len);
  o->len = m->len;
}

static void offline_send(session_t *s, const offline_acc_t *a) {
  for (size_t i = 0; i < a->n; i++) {
    const offline_msg_t *m = &a->m[i];
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__DirectCommand dm = LC__DIRECT_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__direct);
    PB_SET(out, service, 2);
    out.directmessage = &dm;
    dm.cid = m->cid;
    dm.id = m->mid;
    dm.frompeerid = m->sender;
    PB_SET(dm, timestamp, m->ts);
    char *text = NULL;
    if (m->flags & MSG_F_BIN) {
      ProtobufCBinaryData b = {m->len, m->data};
      PB_SET(dm, binarymsg, b);
    } else {
      dm.msg = text = xstrndup((const char *)m->data, m->len);
    }
    PB_SET(dm, offline, 1);
    PB_SET(dm, hasmore, i + 1 < a->n); /* all but the last: the cap only delays the rest */
    PB_SET(dm, convtype, m->kind);
    if (m->flags & MSG_F_MENTION_ALL) PB_SET(dm, mentionall, 1);
    fanout_t *p = fanout_new(&out);
    fanout_to_session(s, p);
    fanout_release(p);
    free(text);
  }
}

typedef struct {
  store_read_t rd;
  im_t *im;
  uint64_t link, session, gen; /* gen 0: the read does not hold the link */
  char *client;
  int64_t since;
  int offline; /* lc.protobuf2.1 */
  unread_acc_t acc;
  offline_acc_t off;
  int64_t patch_since;         /* lastPatchTime (0: none) */
  struct im_catch_up *patches; /* the patches since, read beside the counts (NULL: none) */
} login_read_t;

/* The newest key told of cid, a new entry or a later key. */
static void key_note(unread_acc_t *a, const char *cid, int64_t ts, int64_t seq, const char *mid) {
  for (size_t i = 0; i < a->nkeys; i++) {
    conv_key_t *k = &a->keys[i];
    if (strcmp(k->cid, cid) != 0) continue;
    if (ts > k->ts || (ts == k->ts && seq > k->seq)) {
      k->ts = ts, k->seq = seq;
      free(k->mid);
      k->mid = xstrdup(mid);
    }
    return;
  }
  a->keys = xrealloc(a->keys, (a->nkeys + 1) * sizeof *a->keys);
  a->keys[a->nkeys++] = (conv_key_t){xstrdup(cid), ts, seq, xstrdup(mid)};
}

static int login_read(store_reader_t *r, store_read_t *rd) {
  login_read_t *x = (login_read_t *)rd;
  x->patches = im_patch_catch_up_read(r, x->client, x->patch_since); /* independent of the counts */
  if (x->offline) {
    store_offline(r, x->client, OFFLINE_PUSH_MAX, offline_each, &x->off);
    /* oldest first: each conversation's messages up to its newest here are all pushed */
    for (size_t i = 0; i < x->off.n; i++)
      key_note(&x->acc, x->off.m[i].cid, x->off.m[i].ts, x->off.m[i].seq, x->off.m[i].mid);
    return 0;
  }
  return store_unread(r, x->client, x->since, UNREAD_CONVS_MAX, unread_each, &x->acc);
}

/* What a login's counts told, kept a while for the pushes still on their way to it. */
struct im_told {
  conv_key_t *keys;
  size_t n;
  int64_t max_ts; /* the newest key's timestamp: a push after it was never told */
  int64_t until_ms;
};

/* Does d push a message the login was told of? A stored message in a conversation of the
 * counts whose key (history's order: ts, then seq) is not after the newest one told; an id
 * that names no key (imported) compares by ts alone, and equal ids match. */
static int told_has(const conv_key_t *keys, size_t n, const Lc__DirectCommand *d) {
  if (!d || !d->cid || !d->id || (d->has_transient && d->transient)) return 0;
  int64_t ts = d->has_timestamp ? d->timestamp : 0, seq = 0;
  int keyed = msgid_parse(d->id, &ts, &seq) == 0;
  for (size_t i = 0; i < n; i++) {
    const conv_key_t *k = &keys[i];
    if (strcmp(k->cid, d->cid) == 0)
      return strcmp(k->mid, d->id) == 0 || ts < k->ts || (ts == k->ts && keyed && seq <= k->seq);
  }
  return 0;
}

/* The same for a frame held behind the counts (any frame of the link: only this client's
 * message pushes are looked at). */
static int already_told(void *arg, const uint8_t *prefix, size_t pl, const uint8_t *body, size_t bl) {
  login_read_t *x = arg;
  if (!x->acc.nkeys) return 0;
  uint8_t *f = xmalloc(pl + bl + 1);
  if (pl) memcpy(f, prefix, pl);
  memcpy(f + pl, body, bl);
  lc_cmd_t *c = codec_decode(f, pl + bl, LC_FMT_BINARY);
  free(f);
  int drop = c && c->cmd == LC__COMMAND_TYPE__direct && c->peerid && strcmp(c->peerid, x->client) == 0 &&
             told_has(x->acc.keys, x->acc.nkeys, c->directmessage);
  codec_free(c);
  if (drop) metric_inc(M_LOGIN_PUSHES_TOLD);
  return drop;
}

static void told_free(struct im_told *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) free(t->keys[i].cid), free(t->keys[i].mid);
  free(t->keys);
  free(t);
}

void im_login_told_free(session_t *s) {
  told_free(s->told);
  s->told = NULL;
}

int im_login_told(session_t *s, const fanout_t *p) {
  if (now_ms() > s->told->until_ms) {
    im_login_told_free(s);
    return 0;
  }
  /* a message newer than every one told (most pushes after a login) cannot be one of them
   * (told_has compares the same timestamp): no decode */
  if (p->ts >= 0 && p->ts > s->told->max_ts) return 0;
  lc_cmd_t *c = codec_decode(p->body, p->len, LC_FMT_BINARY);
  int drop = c && c->cmd == LC__COMMAND_TYPE__direct && told_has(s->told->keys, s->told->n, c->directmessage);
  codec_free(c);
  if (drop) metric_inc(M_LOGIN_PUSHES_TOLD);
  return drop;
}

static void login_read_free(login_read_t *x) {
  for (size_t i = 0; i < x->acc.n; i++) lc__unread_tuple__free_unpacked(x->acc.t[i], NULL);
  free(x->acc.t);
  for (size_t i = 0; i < x->acc.nkeys; i++) free(x->acc.keys[i].cid), free(x->acc.keys[i].mid);
  free(x->acc.keys);
  for (size_t i = 0; i < x->off.n; i++) {
    offline_msg_t *m = &x->off.m[i];
    free(m->cid), free(m->mid), free(m->sender), free(m->data);
  }
  free(x->off.m);
  im_patch_catch_up_send(NULL, x->patches); /* NULL when sent */
  free(x->client);
  free(x);
}

static log_limit_t login_read_log;

static void login_read_done(task_t *t) {
  login_read_t *x = (login_read_t *)t;
  int idx = worker_current();
  im_worker_t *w = idx >= 0 ? x->im->workers[idx] : NULL;
  im_link_t *l = w ? handle_table_get(&w->links, x->link) : NULL;
  session_t *s = l ? im_session_get(w, x->session) : NULL;
  if (s && s->link != l) s = NULL;
  if (s) s->counting = 0;
  int held = l && x->gen && im_hold_read_out(l, x->gen); /* its frames go ahead of what was held since */
  if (x->rd.result < 0 && x->rd.result != TERN_ECLOSED)
    log_limited(&login_read_log, LOG_WARN, "login %s: unread counts not read: %s", x->client,
                tern_strerror(x->rd.result));
  if (s && x->rd.result == 0 && x->offline) offline_send(s, &x->off);
  if (s && x->rd.result == 0 && !x->offline && x->acc.n) {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__UnreadCommand um = LC__UNREAD_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__unread);
    PB_SET(out, service, 2);
    out.unreadmessage = &um;
    um.convs = x->acc.t;
    um.n_convs = x->acc.n;
    PB_SET(um, notiftime, now_ms());
    fanout_t *p = fanout_new(&out);
    fanout_to_session(s, p);
    fanout_release(p);
  }
  /* then the patches since the login's lastPatchTime, as they went before the read moved
   * off the loop: after the counts, ahead of anything sent since */
  if (s) im_patch_catch_up_send(s, x->patches), x->patches = NULL;
  /* what the counts include is not pushed again; the rest follows them */
  if (held) im_hold_read_end(l, x->gen, s && x->rd.result == 0 ? already_told : NULL, x);
  if (s && x->rd.result == 0 && x->acc.nkeys) { /* and pushes still on their way are looked at */
    im_login_told_free(s);
    s->told = xcalloc(1, sizeof *s->told);
    s->told->keys = x->acc.keys;
    s->told->n = x->acc.nkeys;
    s->told->max_ts = INT64_MIN;
    for (size_t i = 0; i < x->acc.nkeys; i++)
      if (x->acc.keys[i].ts > s->told->max_ts) s->told->max_ts = x->acc.keys[i].ts;
    s->told->until_ms = now_ms() + TOLD_MS;
    x->acc.keys = NULL;
    x->acc.nkeys = 0;
  }
  login_read_free(x);
}

void im_msg_after_login(im_worker_t *w, session_t *s, int64_t since, int64_t patch_since) {
  im_login_told_free(s); /* a new login of the session: what it is told is read again */
  if (s->counting) {     /* a re-login while its counts are read: that read answers it */
    im_hold_settle(s->link);
    im_patch_catch_up(w, s, patch_since); /* not its patches: those are read here (rare) */
    return;
  }
  s->counting = 1;
  login_read_t *x = xcalloc(1, sizeof *x);
  x->im = w->im;
  x->link = s->link->id;
  x->session = s->id;
  x->client = xstrdup(s->client_id);
  x->since = since;
  x->offline = s->link->proto_version == 1;
  x->acc.since = since;
  x->patch_since = patch_since;
  x->rd.task.fn = login_read_done;
  x->rd.worker = w->idx;
  x->rd.fn = login_read;
  if (im_hold_read(w, s->link, &x->rd, &x->gen) < 0) /* another login's counts hold this link: unheld */
    im_hold_read_submit(w, &x->rd);
}
