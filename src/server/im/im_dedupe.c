/* im_dedupe.c — a resent message is stored once (issue #14; docs/protocol-map.md, "dt").
 *
 * The official SDKs send with every message a `dt` (directCommand field 14: the JS SDK's
 * local message id, a uuid) and send the same `dt` again when they resend a message whose
 * ack never came — after a reconnect, possibly to another node. The store keeps a 64-bit
 * hash of each message's dt (a column, no index: 8 bytes a row rather than the uuid's 36;
 * two of one sender's dt values in one conversation within the window would have to collide
 * for a message to be taken for another — a sender can only ever do that to itself). A
 * send is checked only where a resend is possible: on a session that logged in with r:true
 * (a reconnect) less than dedupe_window seconds ago, and only its first IM_DEDUPE_CHECKS
 * sends with a dt (r:true is the client's word: a client claiming it on every login must
 * not buy a store read for every message).
 * It is then compared with the messages the same sender stored in the same conversation
 * from dedupe_window seconds before that reconnect on (at most the conversation's newest
 * STORE_DT_SCAN of them): one read of a primary-key range, for those sends alone; every
 * other send costs nothing but the column. That read sees what is committed; a send it
 * finds nothing for goes to the writer marked (dt_since), and the writer compares it once
 * more in its transaction, after every job submitted before it — the first copy still in
 * its commit when the resend came (issue #14's gap) — and under PostgreSQL's per-
 * conversation order lock, after another node's copy that took the lock first; a match
 * there is answered the same way (send_done). A match is answered with the stored message's
 * ack (its id and timestamp) and not stored or delivered again, whatever the resend's
 * content (the stored one wins). Per conversation and sender: a client reusing another's
 * dt, or its own in another conversation, finds nothing of anyone else's. The other order —
 * the resend stored first, by another node's writer that took the order lock before the
 * first copy's — is the first copy's to settle: its session ended before its commit, so it
 * was marked (im_msg.c: im_msg_sending_gone) and its writer compares it the same way. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

/* FNV-1a, 64 bits: the same on every node and in every version (it is stored); no key,
 * since a collision can only merge two messages of the one client that chose both dt. */
int64_t im_dt_hash(const char *dt) {
  if (!dt || !*dt) return 0;
  size_t n = strnlen(dt, IM_DT_MAX + 1);
  if (n > IM_DT_MAX || !utf8_valid(dt, n)) return 0;
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)dt[i];
    h *= 1099511628211ULL;
  }
  return h ? (int64_t)h : 1;
}

/* The read's answer, made off the loop (im_dedupe_prefetch) for the request run again. */
struct im_dedupe_read {
  int64_t conv, dt, from; /* what was asked */
  const char *client;     /* s->client_id's copy in the prefetch */
  int rc;                 /* store_msg_by_dt's */
  char *mid;              /* malloc'd; taken by im_dedupe_find */
  int64_t ts, newest;
};

/* 0 when a send of dt by s is not to be checked, else the oldest timestamp the check
 * looks from (dedupe_window before the reconnect). */
static int64_t check_from(im_worker_t *w, const session_t *s, int64_t dt) {
  long window_ms = w->im->cfg->dedupe_window * 1000L;
  if (!dt || !window_ms || !s->resumed_ms || !s->dedupe_left) return 0;
  if (now_ms() - s->resumed_ms > window_ms) return 0;
  return s->resumed_ms - window_ms > 0 ? s->resumed_ms - window_ms : 1;
}

int im_dedupe_find(im_worker_t *w, session_t *s, const conv_t *c, int64_t dt, char **mid, int64_t *ts, int64_t *since) {
  *since = 0;
  int64_t from = check_from(w, s, dt);
  if (!from) return 0;
  s->dedupe_left--;
  int64_t newest = 0;
  int rc;
  struct im_dedupe_read *pre = w->dedupe_read;
  if (pre && pre->conv == c->id && pre->dt == dt && pre->from == from && strcmp(pre->client, s->client_id) == 0) {
    rc = pre->rc; /* read off the loop just before this run (im_dedupe_prefetch) */
    *mid = pre->mid;
    pre->mid = NULL;
    *ts = pre->ts;
    newest = pre->newest;
  } else {
    rc = store_msg_by_dt(w->reader, c->id, s->client_id, dt, from, mid, ts, &newest);
  }
  /* Not stored (yet): the first copy may still be on its way to the store — queued for the
   * writer, or in its transaction (a commit slowed by the disk or a loaded PostgreSQL while
   * the client reconnected). The writer compares again, after it (job_msg_insert_t:
   * dt_since), only among what was committed since this read: at or after the newest
   * message it saw (store.h), a few rows, not the window's 1,000 again in the writer. */
  if (rc == TERN_ENOENT) {
    *since = newest > from ? newest : from;
    return 0;
  }
  if (rc < 0) return rc;
  metric_inc(M_SEND_DEDUPED);
  return 1;
}

/* ---- the read off the loop (PostgreSQL) */

typedef struct {
  im_rerun_t x; /* first */
  struct im_dedupe_read ans;
  char *client;
} dedupe_prefetch_t;

static int dedupe_load(store_reader_t *r, store_read_t *rd) {
  dedupe_prefetch_t *p = (dedupe_prefetch_t *)rd;
  struct im_dedupe_read *a = &p->ans;
  a->rc = store_msg_by_dt(r, a->conv, p->client, a->dt, a->from, &a->mid, &a->ts, &a->newest);
  return a->rc < 0 && a->rc != TERN_ENOENT ? a->rc : 0;
}

static void dedupe_loaded(task_t *t) {
  dedupe_prefetch_t *p = (dedupe_prefetch_t *)t;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  if (l) {
    if (p->x.rd.result < 0 && p->ans.rc >= 0) p->ans.rc = TERN_ESTORE; /* no reader: refused, as a failed read is */
    w->dedupe_read = &p->ans;
    int code = im_rerun_run(l, &p->x);
    w->dedupe_read = NULL; /* before the frames behind it run (im_rerun_end): the answer is this send's */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  free(p->ans.mid); /* NULL when the run took it */
  free(p->client);
  free(p);
}

int im_dedupe_prefetch(req_t *r, const conv_t *c, int64_t dt) {
  im_worker_t *w = r->w;
  if (w->dedupe_read || !im_rerun_may(r)) return 0; /* dedupe_read: this is its run again */
  int64_t from = check_from(w, r->s, dt);
  if (!from) return 0;
  dedupe_prefetch_t *p = xcalloc(1, sizeof *p);
  p->client = xstrdup(r->s->client_id);
  p->ans.conv = c->id;
  p->ans.dt = dt;
  p->ans.from = from;
  p->ans.client = p->client;
  p->ans.rc = TERN_ESTORE;
  if (im_rerun_submit(r, &p->x, dedupe_load, dedupe_loaded, M_DEDUPE_PREFETCHES) == IM_PARKED) return IM_PARKED;
  free(p->client); /* the read queue is full: on the loop */
  free(p);
  return 0;
}
