/* im_patch.c — editing and recalling sent messages (protocol.md §3.18).
 *
 * Only the sender may patch its message. The stored content is replaced (a recall becomes
 * the typed message {"_lctype":-127}, which both the JS and Swift SDKs turn into their
 * RecalledMessage), the message gets a patch timestamp, and every member's sessions — the
 * sender's other devices included — get a patch/modify push. Clients that were away catch
 * up at their next login with every patch newer than the lastPatchTime they send. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "err.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#define RECALLED "{\"_lctype\":-127}"
#define PATCHES_PER_REQUEST 20
#define CATCH_UP_MAX 200

typedef struct patch_job patch_job_t;

typedef struct {
  im_t *im;
  reply_to_t rt; /* the WebSocket request, or zeroed for a REST one (done) */
  im_done_t done;
  int pending, failed;
  int64_t patch_ts;
  uint64_t skip;
  patch_job_t *jobs[PATCHES_PER_REQUEST]; /* kept until all committed: reply first, then pushes */
  size_t njobs;
} patch_batch_t;

struct patch_job {
  job_msg_patch_t j;
  patch_batch_t *batch;
  conv_t *conv;
  char *mid, *from;
  char **mention_pids;
  size_t n_mentions;
  int recall;
};

/* Patch timestamps are unique and increasing, so a client's lastPatchTime cursor never
 * skips a patch made in the same millisecond. */
static int64_t next_patch_ts(void) {
  static _Atomic int64_t last;
  int64_t now = now_ms(), prev = atomic_load(&last);
  for (;;) {
    int64_t want = now > prev ? now : prev + 1;
    if (atomic_compare_exchange_weak(&last, &prev, want)) return want;
  }
}

static void fill_item(Lc__PatchItem *it, const char *cid, const char *mid, int64_t ts, const char *from,
                      const uint8_t *data, size_t len, int flags, int64_t patch_ts, char **mentions, size_t nm) {
  it->cid = (char *)cid;
  it->mid = (char *)mid;
  PB_SET(*it, timestamp, ts);
  it->from = (char *)from;
  if (flags & MSG_F_RECALLED) PB_SET(*it, recall, 1);
  if (flags & MSG_F_BIN) {
    ProtobufCBinaryData b = {len, (uint8_t *)data};
    PB_SET(*it, binarymsg, b);
  } else {
    it->data = (char *)data; /* NUL-terminated by the caller */
  }
  PB_SET(*it, patchtimestamp, patch_ts);
  if (flags & MSG_F_MENTION_ALL) PB_SET(*it, mentionall, 1);
  it->mentionpids = mentions;
  it->n_mentionpids = nm;
}

static void patch_push(im_worker_t *w, patch_job_t *pj) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__PatchCommand pm = LC__PATCH_COMMAND__INIT;
  Lc__PatchItem it = LC__PATCH_ITEM__INIT;
  Lc__PatchItem *items[1] = {&it};
  PB_SET(out, cmd, LC__COMMAND_TYPE__patch);
  PB_SET(out, op, LC__OP_TYPE__modify);
  PB_SET(out, service, 2);
  out.patchmessage = &pm;
  pm.patches = items;
  pm.n_patches = 1;
  fill_item(&it, pj->conv->cid, pj->mid, pj->j.ts, pj->from, pj->j.data, pj->j.len, pj->j.flags, pj->j.patch_ts,
            pj->mention_pids, pj->n_mentions);
  fanout_t *p = fanout_new(&out);
  if (pj->conv->kind == CONV_ROOM) {
    fanout_to_room(w, p, pj->conv, pj->batch->skip);
  } else {
    members_t *m = conv_members(pj->conv);
    if (m) fanout_to_clients(w, p, m->ids, m->n, pj->batch->skip);
    members_release(m);
  }
  fanout_release(p);
}

static void patch_job_free(patch_job_t *pj) {
  free(pj->j.data);
  free(pj->j.mentions);
  free(pj->mid);
  free(pj->from);
  for (size_t i = 0; i < pj->n_mentions; i++) free(pj->mention_pids[i]);
  free(pj->mention_pids);
  conv_release(pj->conv);
  free(pj);
}

/* Each patch's commit lands here; the last one answers the request, and only then do the
 * members hear of the patches that were stored — the reply goes before any notification
 * (a client that starts listening once answered misses nothing). */
static void patch_done(task_t *t) {
  patch_job_t *pj = (patch_job_t *)t;
  patch_batch_t *b = pj->batch;
  im_worker_t *w = b->im->workers[worker_current()];
  if (pj->j.job.result < 0) b->failed = 1;
  if (--b->pending > 0) return;
  if (b->done.fn) {
    json_t *res = json_pack("{s:I}", "patchTs", (json_int_t)b->patch_ts);
    im_done(w, &b->done, b->failed ? LC_INTERNAL_ERROR : 0, res);
    json_decref(res);
  } else if (b->failed) {
    reply_error_async(w, &b->rt, LC_INTERNAL_ERROR, "the change could not be stored");
  } else {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__PatchCommand pm = LC__PATCH_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__patch);
    PB_SET(out, op, LC__OP_TYPE__modified);
    out.patchmessage = &pm;
    PB_SET(pm, lastpatchtime, b->patch_ts);
    reply_async(w, &b->rt, &out);
  }
  for (size_t i = 0; i < b->njobs; i++) {
    if (b->jobs[i]->j.job.result >= 0) patch_push(w, b->jobs[i]); /* what was stored is told */
    patch_job_free(b->jobs[i]);
  }
  reply_to_free(&b->rt);
  free(b);
}

typedef struct {
  int found;
  char *sender, *mid;
} found_t;

static int take_msg(void *arg, const msg_view_t *m) {
  found_t *f = arg;
  f->found = 1;
  f->sender = xstrdup(m->sender);
  f->mid = xstrdup(m->mid);
  return 1;
}

/* ---- an edit's or recall's reads, off the loop (PostgreSQL) ----
 * Each patch reads its message (store_msg_get), in a conversation with imported ids its
 * key first (store_msg_ext_get), and its conversation when the cache lacks it: up to
 * PATCHES_PER_REQUEST of each per request, any logged-in client's at will. Made on the
 * worker's loop, each is a round trip on PostgreSQL and waits as long as a lock makes it,
 * with every connection of the worker behind it. So, as im_prefetch.c does for a request's
 * conversation, they are read first on the read threads, the link paused, and the request
 * runs again with the answers (w->patch_read), which prepare uses instead of reading. */
typedef struct {
  char *cid, *mid;
  int load;           /* the conversation was read (the cache lacked it, or held it stale) */
  conv_claim_t claim; /* … the stale entry (or NULL) and its marks */
  int load_rc;        /* store_conv_load's */
  conv_row_t row;
  int64_t conv; /* its id, as cached or read */
  int ext;      /* it has imported ids */
  int key_rc;   /* the message's key: 0 (ts, seq) or TERN_EINVAL/TERN_ENOENT */
  int64_t ts, seq;
  int msg_rc; /* store_msg_get's */
  found_t f;
} patch_item_read_t;

struct patch_read {
  size_t n;
  patch_item_read_t it[PATCHES_PER_REQUEST];
};

/* The answer for it in conversation c, or NULL (not read ahead: read here). */
static const patch_item_read_t *patch_answer(im_worker_t *w, const Lc__PatchItem *it, const conv_t *c) {
  const struct patch_read *pr = w->patch_read;
  for (size_t i = 0; pr && i < pr->n; i++) {
    const patch_item_read_t *a = &pr->it[i];
    if (a->conv == (c ? c->id : 0) && a->ext == (c ? atomic_load(&c->ext_ids) != 0 : 0) && !strcmp(a->cid, it->cid) &&
        !strcmp(a->mid, it->mid))
      return a;
  }
  return NULL;
}

/* Validates one patch of `from` and builds its job; returns 0 or a protocol error code.
 * as_client: a client's own patch, which must pass what a send would (msg_may_send:
 * membership, blacklist, shut-up) — a client removed from a conversation no longer rewrites
 * what it said there; the REST API acts with the app's authority and skips that. */
static int prepare(im_worker_t *w, const char *from, Lc__PatchItem *it, int as_client, patch_job_t **out) {
  im_t *im = w->im;
  int recall = it->has_recall && it->recall;
  if (recall && !im->cfg->message_recall) return LC_MESSAGE_RECALL_DISABLED;
  if (!recall && !im->cfg->message_edit) return LC_MESSAGE_EDIT_DISABLED;
  int64_t ts, seq;
  if (w->patch_read && it->cid && it->mid) { /* read ahead and found missing: not read again */
    for (size_t i = 0; i < w->patch_read->n; i++)
      if (w->patch_read->it[i].load && w->patch_read->it[i].load_rc == TERN_ENOENT &&
          !strcmp(w->patch_read->it[i].cid, it->cid))
        return LC_MESSAGE_NOT_FOUND;
  }
  conv_t *c = it->cid && it->mid ? conv_get(w, it->cid, NULL) : NULL;
  if (!c) return LC_MESSAGE_NOT_FOUND;
  const patch_item_read_t *ans = patch_answer(w, it, c);
  found_t f = {0};
  if (ans) {
    if (ans->key_rc < 0) {
      conv_release(c);
      return LC_MESSAGE_NOT_FOUND;
    }
    ts = ans->ts;
    seq = ans->seq;
    if (ans->f.found) {
      f.found = 1;
      f.sender = xstrdup(ans->f.sender);
      f.mid = xstrdup(ans->f.mid);
    }
  } else {
    if (msg_key_resolve(w, c, it->mid, &ts, &seq) < 0) {
      conv_release(c);
      return LC_MESSAGE_NOT_FOUND;
    }
    store_msg_get(w->reader, c->id, ts, seq, take_msg, &f);
  }
  int code = 0;
  if (!f.found || strcmp(f.mid, it->mid) != 0) code = LC_MESSAGE_NOT_FOUND;
  else if (strcmp(f.sender, from) != 0) code = LC_MESSAGE_OWNERSHIP_REQUIRED;
  if (!code && as_client) {
    members_t *m;
    const char *detail;
    code = msg_may_send(c, from, &m, &detail);
    members_release(m);
  }
  size_t len = recall ? strlen(RECALLED) : it->has_binarymsg ? it->binarymsg.len : it->data ? strlen(it->data) : 0;
  size_t mentioned = 0; /* the mentioned ids count as in a send (im_msg.c) */
  for (size_t i = 0; !recall && i < it->n_mentionpids; i++)
    mentioned += it->mentionpids[i] ? strlen(it->mentionpids[i]) : 0;
  if (!code && len + mentioned > (size_t)im->cfg->max_message) code = LC_FRAME_TOO_LONG;
  /* text must be UTF-8, as in a send (im_msg.c): JSON — REST history, hooks — carries nothing else */
  if (!code && !recall && !it->has_binarymsg && it->data && !utf8_valid(it->data, len))
    code = LC_UNPARSEABLE_RAW_MESSAGE;
  free(f.sender);
  free(f.mid);
  if (code) {
    conv_release(c);
    return code;
  }
  patch_job_t *pj = xcalloc(1, sizeof *pj);
  pj->conv = c;
  pj->mid = xstrdup(it->mid);
  pj->from = xstrdup(from);
  pj->recall = recall;
  int bin = !recall && it->has_binarymsg;
  pj->j.conv = c->id;
  pj->j.ts = ts;
  pj->j.seq = seq;
  pj->j.len = len;
  pj->j.data = xmalloc(len + 1);
  memcpy(pj->j.data,
         recall ? (const uint8_t *)RECALLED
         : bin  ? it->binarymsg.data
                : (const uint8_t *)(it->data ? it->data : ""),
         len);
  pj->j.data[len] = 0;
  pj->j.flags = (bin ? MSG_F_BIN : 0) | (recall ? MSG_F_RECALLED : 0) |
                (!recall && it->has_mentionall && it->mentionall ? MSG_F_MENTION_ALL : 0);
  if (!recall && it->n_mentionpids) {
    json_t *a = json_array();
    pj->mention_pids = xcalloc(it->n_mentionpids, sizeof(char *));
    for (size_t i = 0; i < it->n_mentionpids; i++) {
      json_array_append_new(a, json_string(it->mentionpids[i]));
      pj->mention_pids[pj->n_mentions++] = xstrdup(it->mentionpids[i]);
    }
    pj->j.mentions = json_dumps(a, JSON_COMPACT);
    json_decref(a);
  }
  if (!bin) pj->j.has_lctype = scan_lctype((const char *)pj->j.data, len, &pj->j.lctype);
  *out = pj;
  return 0;
}

static void submit_all(patch_batch_t *b, patch_job_t **jobs, size_t n) {
  b->njobs = n;
  for (size_t i = 0; i < n; i++) {
    patch_job_t *pj = jobs[i];
    b->jobs[i] = pj;
    pj->batch = b;
    pj->j.patch_ts = b->patch_ts;
    pj->j.job.type = JOB_MSG_PATCH;
    pj->j.job.task.fn = patch_done;
  }
  for (size_t i = 0; i < n; i++) store_submit(b->im->store, &jobs[i]->j.job);
}

/* _messageUpdate (§8), one call per patch; the patch goes ahead only when every answer
 * came back without `drop`, with any replacement content applied. */
typedef struct {
  patch_batch_t *b;
  patch_job_t *jobs[PATCHES_PER_REQUEST];
  size_t n, answered;
  int dropped;
  json_t *verdict; /* the first drop's answer, for appCode/appMsg */
  int worker;
} held_patch_t;

typedef struct {
  held_patch_t *h;
  size_t i;
} patch_call_t;

static void update_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  patch_call_t *pc = arg;
  held_patch_t *h = pc->h;
  patch_job_t *pj = h->jobs[pc->i];
  free(pc);
  if ((failed || json_is_true(json_object_get(result, "drop"))) && !h->dropped) {
    h->dropped = 1;
    h->verdict = failed ? NULL : json_incref(result);
  } else if (!pj->recall && json_is_string(json_object_get(result, "content"))) {
    json_t *content = json_object_get(result, "content");
    int bin = json_is_true(json_object_get(result, "bin"));
    size_t n = json_string_length(content);
    uint8_t *data = xmalloc(n + 1);
    long len = bin ? base64_decode(json_string_value(content), n, data)
                   : (memcpy(data, json_string_value(content), n), (long)n);
    if (len >= 0) {
      data[len] = 0;
      free(pj->j.data);
      pj->j.data = data;
      pj->j.len = (size_t)len;
      pj->j.flags = (pj->j.flags & ~MSG_F_BIN) | (bin ? MSG_F_BIN : 0);
      pj->j.has_lctype = !bin && scan_lctype((const char *)data, (size_t)len, &pj->j.lctype);
    } else {
      free(data);
    }
  }
  if (++h->answered < h->n) return;
  patch_batch_t *b = h->b;
  if (h->dropped) {
    if (b->done.fn) im_done(w, &b->done, LC_MESSAGE_UPDATE_REJECTED_BY_APP, h->verdict);
    else reply_rejected_async(w, &b->rt, LC_MESSAGE_UPDATE_REJECTED_BY_APP, h->verdict);
    for (size_t i = 0; i < h->n; i++) patch_job_free(h->jobs[i]);
    reply_to_free(&b->rt);
    free(b);
  } else {
    for (size_t i = 0; i < h->n; i++) h->jobs[i]->j.job.worker = w->idx;
    submit_all(b, h->jobs, h->n);
  }
  json_decref(h->verdict);
  free(h);
}

/* Runs a prepared batch: through _messageUpdate when it is on, then to the store. */
static void patch_start(im_worker_t *w, patch_batch_t *b, patch_job_t **jobs, size_t n, const char *ip) {
  b->im = w->im;
  b->pending = (int)n;
  b->patch_ts = next_patch_ts();
  if (!im_hook_enabled(b->im, HOOK_MESSAGE_UPDATE)) {
    for (size_t i = 0; i < n; i++) jobs[i]->j.job.worker = w->idx;
    submit_all(b, jobs, n);
    return;
  }
  held_patch_t *h = xcalloc(1, sizeof *h);
  h->b = b;
  h->n = n;
  memcpy(h->jobs, jobs, n * sizeof jobs[0]);
  for (size_t i = 0; i < n; i++) {
    patch_job_t *pj = jobs[i];
    json_t *to = json_array();
    members_t *m = conv_members(pj->conv);
    for (size_t k = 0; m && k < m->n; k++)
      if (strcmp(m->ids[k], pj->from) != 0) json_array_append_new(to, json_string(m->ids[k]));
    members_release(m);
    json_t *p =
        json_pack("{s:s, s:s, s:o, s:b, s:o, s:I, s:s, s:b, s:b}", "fromPeer", pj->from, "convId", pj->conv->cid,
                  "toPeers", to, "bin", (pj->j.flags & MSG_F_BIN) != 0, "content",
                  msg_content_json(pj->j.data, pj->j.len, pj->j.flags & MSG_F_BIN), "timestamp", (json_int_t)pj->j.ts,
                  "msgId", pj->mid, "recall", pj->recall, "system", pj->conv->kind == CONV_SYSTEM);
    if (ip) json_object_set_new(p, "sourceIP", json_string(ip));
    patch_call_t *pc = xmalloc(sizeof *pc);
    pc->h = h;
    pc->i = i;
    im_hook_call(w, HOOK_MESSAGE_UPDATE, p, update_hook_done, pc);
  }
}

typedef struct {
  im_rerun_t x; /* first */
  struct patch_read ans;
} patch_prefetch_t;

static int patch_load(store_reader_t *r, store_read_t *rd) {
  patch_prefetch_t *p = (patch_prefetch_t *)rd;
  for (size_t i = 0; i < p->ans.n; i++) {
    patch_item_read_t *a = &p->ans.it[i];
    if (a->load) {
      a->load_rc = store_conv_load(r, a->cid, &a->row);
      if (a->load_rc < 0) continue; /* not found (prepare answers so), or failed (read again there) */
      a->conv = a->row.id;
      a->ext = a->row.ext_ids != 0;
    }
    a->key_rc = a->ext && store_msg_ext_get(r, a->conv, a->mid, &a->ts, &a->seq) == 0
                    ? 0
                    : msgid_parse(a->mid, &a->ts, &a->seq);
    if (a->key_rc == 0) a->msg_rc = store_msg_get(r, a->conv, a->ts, a->seq, take_msg, &a->f);
  }
  return 0;
}

static void patch_loaded(task_t *t) {
  patch_prefetch_t *p = (patch_prefetch_t *)t;
  im_worker_t *w;
  im_link_t *l = im_rerun_link(&p->x, &w);
  for (size_t i = 0; i < p->ans.n; i++) {
    patch_item_read_t *a = &p->ans.it[i];
    if (!a->load) continue;
    convcache_loaded(w, a->cid, &a->claim, a->load_rc, &a->row); /* takes the row; w NULL: stopping */
    if (a->load_rc == 0 && w) { /* as cached now: an answer for another conversation is not used */
      conv_t *c = convcache_peek(w->im, a->cid);
      a->conv = c ? c->id : -1;
      if (c) conv_release(c);
    }
  }
  if (l) {
    /* a failed read is not an answer: prepare reads those again, on the loop */
    if (p->x.rd.result == 0) w->patch_read = &p->ans;
    for (size_t i = 0; i < p->ans.n; i++)
      if (p->ans.it[i].msg_rc < 0 ||
          (p->ans.it[i].load && p->ans.it[i].load_rc < 0 && p->ans.it[i].load_rc != TERN_ENOENT))
        p->ans.it[i].conv = -1;
    int code = im_rerun_run(l, &p->x);
    w->patch_read = NULL; /* before the frames behind it run (im_rerun_end): the answers are this request's */
    im_rerun_end(l, code);
  }
  im_rerun_free(&p->x);
  for (size_t i = 0; i < p->ans.n; i++) {
    free(p->ans.it[i].cid);
    free(p->ans.it[i].mid);
    free(p->ans.it[i].f.sender);
    free(p->ans.it[i].f.mid);
  }
  free(p);
}

/* Reads r's patches' messages (and conversations the cache lacks) off the loop: IM_PARKED,
 * or 0: go on, reading what is needed on the loop (SQLite; the run again itself; past
 * MAX_IP_READS or the read queue). */
static int patch_prefetch(req_t *r, const Lc__PatchCommand *pm) {
  im_worker_t *w = r->w;
  if (w->patch_read || !im_rerun_may(r)) return 0; /* patch_read: this is its run again */
  patch_prefetch_t *p = xcalloc(1, sizeof *p);
  for (size_t i = 0; i < pm->n_patches; i++) {
    const Lc__PatchItem *it = pm->patches[i];
    if (!it || !it->cid || !it->mid || !*it->cid || strlen(it->cid) > 64 || strlen(it->mid) > 64) continue;
    patch_item_read_t *a = &p->ans.it[p->ans.n++];
    a->cid = xstrdup(it->cid);
    a->mid = xstrdup(it->mid);
    a->load_rc = TERN_ESTORE;
    a->key_rc = TERN_EINVAL;
    a->load = convcache_wants_load(w->im, a->cid, &a->claim);
    if (!a->load) {
      conv_t *c = convcache_peek(w->im, a->cid);
      a->conv = c ? c->id : -1;
      a->ext = c && atomic_load(&c->ext_ids);
      if (c) conv_release(c);
    }
  }
  if (p->ans.n && im_rerun_submit(r, &p->x, patch_load, patch_loaded, M_PATCH_PREFETCHES) == IM_PARKED)
    return IM_PARKED;
  for (size_t i = 0; i < p->ans.n; i++) { /* nothing to read, or the read queue is full: on the loop */
    convcache_load_abandoned(&p->ans.it[i].claim);
    free(p->ans.it[i].cid);
    free(p->ans.it[i].mid);
  }
  free(p);
  return 0;
}

void im_patch_modify(req_t *r) {
  Lc__PatchCommand *pm = r->cmd->patchmessage;
  size_t n = pm ? pm->n_patches : 0;
  if (n == 0 || n > PATCHES_PER_REQUEST) {
    reply_error(r, LC_MESSAGE_NOT_FOUND, n ? "too many patches in one request" : "no patch given");
    return;
  }
  if (patch_prefetch(r, pm) == IM_PARKED) return;
  patch_job_t *jobs[PATCHES_PER_REQUEST];
  for (size_t i = 0; i < n; i++) {
    int code = prepare(r->w, r->s->client_id, r->cmd->patchmessage->patches[i], 1, &jobs[i]);
    if (code) {
      for (size_t k = 0; k < i; k++) patch_job_free(jobs[k]); /* none was submitted */
      reply_error(r, code, NULL);
      return;
    }
  }
  patch_batch_t *b = xcalloc(1, sizeof *b);
  b->skip = r->s->id;
  reply_to_init(&b->rt, r);
  patch_start(r->w, b, jobs, n, r->link->ip);
}

int im_rest_patch(im_worker_t *w, const char *cid, const char *mid, const char *from, const uint8_t *data, size_t len,
                  int bin, int recall, const im_done_t *done) {
  Lc__PatchItem it = LC__PATCH_ITEM__INIT;
  it.cid = (char *)cid;
  it.mid = (char *)mid;
  if (recall) PB_SET(it, recall, 1);
  if (bin) {
    PB_SET(it, binarymsg, ((ProtobufCBinaryData){len, (uint8_t *)data}));
  } else {
    it.data = (char *)data; /* NUL-terminated by the caller */
  }
  patch_job_t *job;
  int code = prepare(w, from, &it, 0, &job);
  if (code) return code;
  patch_batch_t *b = xcalloc(1, sizeof *b);
  b->done = *done;
  patch_start(w, b, &job, 1, NULL);
  return 0;
}

typedef struct {
  job_msg_patch_t j;
  im_t *im;
  im_done_t done;
} delete_job_t;

static void delete_done(task_t *t) {
  delete_job_t *d = (delete_job_t *)t;
  json_t *res = json_object();
  im_done(d->im->workers[worker_current()], &d->done, d->j.job.result < 0 ? LC_INTERNAL_ERROR : 0, res);
  json_decref(res);
  free(d);
}

int im_rest_delete(im_worker_t *w, conv_t *c, const char *mid, const char *from, const im_done_t *done) {
  int64_t ts, seq;
  if (msg_key_resolve(w, c, mid, &ts, &seq) < 0) return LC_MESSAGE_NOT_FOUND;
  found_t f = {0};
  store_msg_get(w->reader, c->id, ts, seq, take_msg, &f);
  int code = !f.found || strcmp(f.mid, mid) != 0   ? LC_MESSAGE_NOT_FOUND
             : from && strcmp(f.sender, from) != 0 ? LC_MESSAGE_OWNERSHIP_REQUIRED
                                                   : 0;
  free(f.sender);
  free(f.mid);
  if (code) return code;
  delete_job_t *d = xcalloc(1, sizeof *d);
  d->done = *done;
  d->im = w->im;
  d->j.conv = c->id;
  d->j.ts = ts;
  d->j.seq = seq;
  d->j.job.type = JOB_MSG_DELETE;
  d->j.job.worker = w->idx;
  d->j.job.task.fn = delete_done;
  store_submit(w->im->store, &d->j.job);
  return 0;
}

/* ---------------------------------------------------------------- catch-up at login */

struct im_catch_up {
  Lc__PatchItem **items;
  size_t n;
  char **owned; /* strings the items point into */
  size_t nowned;
};
typedef struct im_catch_up catch_up_t;

static char *keep(catch_up_t *c, char *s) {
  c->owned = xrealloc(c->owned, (c->nowned + 1) * sizeof(char *));
  c->owned[c->nowned++] = s;
  return s;
}

static void catch_up_each(void *arg, const char *cid, const msg_view_t *m) {
  catch_up_t *c = arg;
  Lc__PatchItem *it = xmalloc(sizeof *it);
  lc__patch_item__init(it);
  char *data = keep(c, xstrndup((const char *)m->data, m->len)); /* binary-safe copy, NUL-terminated */
  json_t *mp = m->mentions ? json_loads(m->mentions, 0, NULL) : NULL;
  char **mentions = NULL;
  size_t nm = 0;
  if (json_is_array(mp) && json_array_size(mp)) {
    mentions = (char **)keep(c, (char *)xcalloc(json_array_size(mp), sizeof(char *)));
    size_t i;
    json_t *v;
    json_array_foreach(mp, i, v) if (json_is_string(v)) mentions[nm++] = keep(c, xstrdup(json_string_value(v)));
  }
  json_decref(mp);
  fill_item(it, keep(c, xstrdup(cid)), keep(c, xstrdup(m->mid)), m->ts, keep(c, xstrdup(m->sender)),
            (const uint8_t *)data, m->len, m->flags, m->patch_ts, mentions, nm);
  c->items = xrealloc(c->items, (c->n + 1) * sizeof *c->items);
  c->items[c->n++] = it;
}

catch_up_t *im_patch_catch_up_read(store_reader_t *r, const char *client, int64_t since) {
  if (since <= 0) return NULL;
  catch_up_t *c = xcalloc(1, sizeof *c);
  if (store_patches_since(r, client, since, CATCH_UP_MAX, catch_up_each, c) < 0) { /* nothing sent, as before */
    im_patch_catch_up_send(NULL, c);
    return NULL;
  }
  return c;
}

void im_patch_catch_up_send(session_t *s, catch_up_t *c) {
  if (!c) return;
  if (s && c->n) {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__PatchCommand pm = LC__PATCH_COMMAND__INIT;
    PB_SET(out, cmd, LC__COMMAND_TYPE__patch);
    PB_SET(out, op, LC__OP_TYPE__modify);
    PB_SET(out, service, 2);
    out.patchmessage = &pm;
    pm.patches = c->items;
    pm.n_patches = c->n;
    fanout_t *p = fanout_new(&out);
    fanout_to_session(s, p);
    fanout_release(p);
  }
  for (size_t i = 0; i < c->n; i++) free(c->items[i]);
  free(c->items);
  for (size_t i = 0; i < c->nowned; i++) free(c->owned[i]);
  free(c->owned);
  free(c);
}

void im_patch_catch_up(im_worker_t *w, session_t *s, int64_t since) {
  im_patch_catch_up_send(s, im_patch_catch_up_read(w->reader, s->client_id, since));
}
