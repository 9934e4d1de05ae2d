/* im_conv.c — conversations: start, query, count, membership (protocol.md §3.4, §3.5,
 * §3.12, §3.13, §3.8 max_read).
 *
 * Every change is applied to the cache first (so a message sent right after a join is
 * accepted), written through the store, and answered only after the commit; on a storage
 * failure the conversation is dropped from the cache so it reloads from the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "im_internal.h"
#include "ipcount.h"
#include "jsonlim.h"
#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#define TEMP_TTL_MAX (30 * 86400)

static void conv_reply_base(lc_cmd_t *out, Lc__ConvCommand *cm, int op) {
  PB_SET(*out, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(*out, op, op);
  out->convmessage = cm;
}

/* Pushes {conv/op, cid, initBy, udate[, m]} to every session of `to` (except skip). */
void conv_notify(im_worker_t *w, const char *cid, int op, const char *initby, char **m, size_t nm, int64_t udate,
                 char *const *to, size_t nto, uint64_t skip) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  conv_reply_base(&out, &cm, op);
  PB_SET(out, service, 2);
  PB_SET(out, serverts, now_ms());
  PB_SET(out, notificationtype, 1);
  char iso[ISO_LEN + 1];
  iso_format(udate, iso);
  cm.cid = (char *)cid;
  cm.initby = (char *)initby;
  cm.udate = iso;
  cm.m = m;
  cm.n_m = nm;
  fanout_t *p = fanout_new(&out);
  fanout_to_clients(w, p, to, nto, skip);
  fanout_release(p);
  notif_record(w, &out, to, nto);
}

int64_t conv_touch(conv_t *c) {
  int64_t now = now_ms();
  if (now <= c->updated_at) now = c->updated_at + 1;
  c->updated_at = now;
  return now;
}

/* Keys a client may not set through attr: the server owns them. */
static const char *const reserved_keys[] = {"objectId", "createdAt", "updatedAt", "m",         "c",
                                            "lm",       "tr",        "sys",       "unique",    "uniqueId",
                                            "mu",       "temp",      "ttl",       "conv_type", NULL};

void conv_doc_strip(json_t *doc) {
  for (int i = 0; reserved_keys[i]; i++) json_object_del(doc, reserved_keys[i]);
}

/* The unique id of a member set (docs/protocol-map.md, "unique conversation id"): MD5 hex of
 * an encoding of the sorted ids that two different lists can never share.
 * * Normal conversations whose ids hold no '\n' keep the form tern always used — each id
 *   followed by '\n' — so unique conversations stored before this rule are still found.
 *   Without '\n' inside the ids that form splits back into one list only, and '\n' is a
 *   control character, refused in client ids (utf8_client_id_ok): every list built now
 *   takes this branch.
 * * Anything else — an id with '\n' (only old stored data could hold one), or a temporary
 *   conversation — is "\n" + a kind letter + "\n" + each id as <byte length>:<bytes>.
 *   The old form never starts with '\n' (ids were never empty), the kind letter keeps a
 *   temporary conversation's id apart from a normal one's over the same members, and the
 *   length prefixes make the list unambiguous. */
void conv_unique_id(char *const *members, size_t n, int temp, char out[33]) {
  buf_t b = BUF_INIT;
  int plain = !temp;
  for (size_t i = 0; plain && i < n; i++) plain = strchr(members[i], '\n') == NULL;
  if (plain) {
    for (size_t i = 0; i < n; i++) {
      buf_append_str(&b, members[i]);
      buf_append(&b, "\n", 1);
    }
  } else {
    buf_append_str(&b, temp ? "\nt\n" : "\nu\n");
    for (size_t i = 0; i < n; i++) {
      char len[24];
      snprintf(len, sizeof len, "%zu:", strlen(members[i]));
      buf_append_str(&b, len);
      buf_append_str(&b, members[i]);
    }
  }
  uint8_t d[16];
  md5(b.data, b.len, d);
  buf_free(&b);
  hex_encode(d, 16, out);
}

/* ---------------------------------------------------------------- start */

char *conv_visible_unique_id(im_worker_t *w, const char *cid, const char *hash) {
  char *out = NULL;
  conv_t *c = conv_get(w, cid, NULL);
  if (c) {
    pthread_mutex_lock(&c->mu);
    int loaded = c->doc != NULL;
    const char *u = loaded ? json_string_value(json_object_get(c->doc, "uniqueId")) : NULL;
    if (u) out = xstrdup(u);
    pthread_mutex_unlock(&c->mu);
    char *text = NULL;
    int rc = loaded ? 1 : im_cmd_doc(w, c, &text); /* read ahead for a unique start (im_prefetch_cmd) */
    if (rc == 1 && !loaded) rc = store_conv_doc(w->reader, c->id, &text);
    if (!loaded && rc == 0 && text) {
      json_t *doc = json_loads(text, 0, NULL);
      u = json_string_value(json_object_get(doc, "uniqueId"));
      if (u) out = xstrdup(u);
      json_decref(doc);
    }
    free(text);
    conv_release(c);
  }
  return out ? out : xstrdup(hash);
}

typedef struct {
  job_conv_create_t j;
  im_t *im;
  reply_to_t rt;  /* a client's conv/start */
  im_done_t done; /* or the app's create (conv_create_apply): done.fn set */
  int unique, temp_ttl;
} start_job_t;

static void send_started(im_worker_t *w, const reply_to_t *rt, const char *cid, int64_t created_at,
                         const char *unique_id, int temp_ttl, int existing) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  conv_reply_base(&out, &cm, LC__OP_TYPE__started);
  char iso[ISO_LEN + 1];
  iso_format(created_at, iso);
  cm.cid = (char *)cid;
  cm.cdate = iso;
  cm.uniqueid = (char *)unique_id;
  if (temp_ttl) PB_SET(cm, tempconvttl, temp_ttl);
  if (existing) PB_SET(cm, existing, 1);
  reply_async(w, rt, &out);
}

/* Seconds a temporary conversation has left (rounded up), or 0 when it is gone or expired. */
static int temp_left(im_worker_t *w, const char *cid) {
  conv_t *c = conv_get(w, cid, NULL);
  int64_t left = c && c->kind == CONV_TEMP ? c->expire_at - now_ms() : 0;
  if (c) conv_release(c);
  return left > 0 ? (int)((left + 999) / 1000) : 0;
}

static void start_free(start_job_t *sj) {
  conv_row_free(&sj->j.row);
  free(sj->j.doc);
  free(sj->j.existing_cid);
  reply_to_free(&sj->rt);
  free(sj);
}

/* What the app's create hands its done: {"objectId", "createdAt" (ms), "existing"}. */
static void created_result(im_worker_t *w, const im_done_t *done, const char *cid, int64_t created_at, int existing) {
  json_t *res =
      json_pack("{s:s, s:I, s:b}", "objectId", cid, "createdAt", (json_int_t)created_at, "existing", existing);
  im_done(w, done, 0, res);
  json_decref(res);
}

static void start_done(task_t *t) {
  start_job_t *sj = (start_job_t *)t;
  im_worker_t *w = sj->im->workers[worker_current()];
  job_conv_create_t *j = &sj->j;
  if (sj->done.fn) { /* the app's create: stored and cached, silent (docs/protocol-map.md) */
    if (j->job.result == TERN_EEXIST) {
      created_result(w, &sj->done, j->existing_cid, j->existing_created_at, 1);
    } else if (j->job.result < 0) {
      im_done(w, &sj->done, LC_CONVERSATION_API_FAILED, NULL);
    } else {
      conv_t *c = conv_from_row(sj->im, &j->row); /* takes the row's strings */
      convcache_put(sj->im, c);
      created_result(w, &sj->done, c->cid, c->created_at, 0);
      conv_release(c);
    }
    start_free(sj);
    return;
  }
  if (j->job.result == TERN_EEXIST) { /* a unique twin committed first: answer with it */
    int ttl = 0;
    if (j->row.kind == CONV_TEMP && (ttl = temp_left(w, j->existing_cid)) <= 0)
      reply_error_async(w, &sj->rt, LC_CONVERSATION_API_FAILED, "the twin expired while this start ran: start again");
    else {
      char *uid = conv_visible_unique_id(w, j->existing_cid, j->row.unique_id);
      send_started(w, &sj->rt, j->existing_cid, j->existing_created_at, uid, ttl, 1);
      free(uid);
    }
  } else if (j->job.result < 0) {
    reply_error_async(w, &sj->rt, LC_CONVERSATION_API_FAILED, "storage failed");
  } else {
    conv_t *c = conv_from_row(sj->im, &j->row);
    convcache_put(sj->im, c);
    session_t *s = c->kind == CONV_ROOM ? im_session_get(w, sj->rt.session) : NULL;
    if (s) { /* the creator is in the room right away (§3.4), and the other nodes know it
              * before the answer goes (im_hold.c) */
      im_room_join(w, s, c);
      im_hold_reply(w, s->link);
    }
    send_started(w, &sj->rt, c->cid, c->created_at, j->row.unique_id, sj->temp_ttl, 0);
    im_hook_call(w, HOOK_CONVERSATION_STARTED, json_pack("{s:s}", "convId", c->cid), NULL, NULL);
    if (c->kind == CONV_ROOM) {
      /* joined above */
    } else {
      members_t *m = c->members;
      conv_notify(w, c->cid, LC__OP_TYPE__joined, c->creator, NULL, 0, c->updated_at, m->ids, m->n, 0);
      conv_notify(w, c->cid, LC__OP_TYPE__members_joined, c->creator, m->ids, m->n, c->updated_at, m->ids, m->n, 0);
    }
    conv_release(c);
  }
  start_free(sj);
}

void conv_new_id(char *out, int temp) {
  uint8_t raw[12];
  uint32_t secs = (uint32_t)(now_ms() / 1000);
  raw[0] = (uint8_t)(secs >> 24);
  raw[1] = (uint8_t)(secs >> 16);
  raw[2] = (uint8_t)(secs >> 8);
  raw[3] = (uint8_t)secs;
  random_bytes(raw + 4, 8);
  if (temp) memcpy(out, "_tmp:", 5);
  hex_encode(raw, 12, out + (temp ? 5 : 0));
}

static void start_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  start_job_t *sj = arg;
  if (failed || json_is_true(json_object_get(result, "reject"))) {
    reply_rejected_async(w, &sj->rt, LC_CONVERSATION_REJECTED_BY_APP, failed ? NULL : result);
    start_free(sj);
    return;
  }
  store_submit(sj->im->store, &sj->j.job);
}

/* The row and document of a new conversation, for a client's start and the app's create
 * alike: members sorted and distinct, a new id, the fields the server owns. */
static void conv_build(im_t *im, const conv_spec_t *sp, start_job_t *sj) {
  conv_row_t *row = &sj->j.row;
  if (sp->kind == CONV_NORMAL || sp->kind == CONV_TEMP) {
    members_t *sorted = members_new((char **)sp->members, sp->n);
    row->members = xcalloc(sorted->n + 1, sizeof(char *));
    for (size_t i = 0; i < sorted->n; i++) row->members[row->nmembers++] = xstrdup(sorted->ids[i]);
    members_release(sorted);
  }
  int64_t now = now_ms();
  char cid[40];
  conv_new_id(cid, sp->kind == CONV_TEMP);
  row->cid = xstrdup(cid);
  row->kind = sp->kind;
  row->creator = sp->creator ? xstrdup(sp->creator) : NULL;
  row->created_at = row->updated_at = now;
  if (sp->kind == CONV_TEMP) {
    int ttl = sp->temp_ttl > 0 ? sp->temp_ttl : (int)im->cfg->temp_conv_ttl;
    if (ttl > TEMP_TTL_MAX) ttl = TEMP_TTL_MAX;
    sj->temp_ttl = ttl;
    row->expire_at = now + (int64_t)ttl * 1000;
  }
  sj->unique = sp->unique;
  if (sp->unique) {
    char hex[33];
    conv_unique_id(row->members, row->nmembers, sp->kind == CONV_TEMP, hex);
    row->unique_id = xstrdup(hex);
  }
  json_t *doc = sp->doc ? json_deep_copy(sp->doc) : json_object();
  conv_doc_strip(doc);
  if (sp->creator) json_object_set_new(doc, "c", json_string(sp->creator));
  json_object_set_new(doc, "tr", json_boolean(sp->kind == CONV_ROOM));
  json_object_set_new(doc, "sys", json_boolean(sp->kind == CONV_SYSTEM));
  json_object_set_new(doc, "unique", json_boolean(sp->unique));
  if (sp->unique) json_object_set_new(doc, "uniqueId", json_string(row->unique_id));
  json_object_set_new(doc, "mu", json_array());
  sj->j.doc = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  sj->j.job.type = JOB_CONV_CREATE;
  sj->j.job.task.fn = start_done;
}

int conv_create_apply(im_worker_t *w, const conv_spec_t *sp, const im_done_t *done, char *err, size_t errlen) {
  im_t *im = w->im;
  start_job_t *sj = xcalloc(1, sizeof *sj);
  sj->im = im;
  conv_build(im, sp, sj);
  if (strlen(sj->j.doc) > (size_t)im->cfg->max_conv_doc) {
    snprintf(err, errlen, "the conversation document would exceed max_conv_doc (%ld bytes)", im->cfg->max_conv_doc);
    start_free(sj);
    return TERN_E2BIG;
  }
  if (sj->unique) { /* the same members made one before: that one */
    char *existing = NULL;
    int64_t created = 0;
    if (store_conv_find_unique(w->reader, sj->j.row.unique_id, &existing, &created) == 0) {
      created_result(w, done, existing, created, 1);
      free(existing);
      start_free(sj);
      return 0;
    }
  }
  sj->done = *done;
  sj->j.job.worker = w->idx;
  store_submit(im->store, &sj->j.job);
  return 0;
}

/* A request naming more client ids than a conversation may have members is refused whole
 * (4304), before any per-id work: one frame holds ~10,000 short ids. 1 when it was. */
static int too_many_ids(req_t *r, size_t n) {
  long cap = r->w->im->cfg->max_members;
  if ((long)n <= cap) return 0;
  char detail[96];
  snprintf(detail, sizeof detail, "too many client ids in one request (at most %ld)", cap);
  reply_error(r, LC_CONVERSATION_FULL, detail);
  return 1;
}

void im_conv_start(req_t *r) {
  im_t *im = r->w->im;
  Lc__ConvCommand empty = LC__CONV_COMMAND__INIT;
  Lc__ConvCommand *cm = r->cmd->convmessage ? r->cmd->convmessage : &empty;
  const char *self = r->s->client_id;
  if (too_many_ids(r, cm->n_m)) return;
  if (im->cfg->sign_conversation &&
      im_check_signature(r, sign_string_start(im->app_id, self, cm->m, cm->n_m, cm->has_t ? cm->t : 0, cm->n),
                         cm->has_t ? cm->t : 0, cm->n, cm->s, LC_CONVERSATION_SIGNATURE_FAILED) < 0)
    return;
  int room = cm->has_transient && cm->transient;
  int temp = !room && cm->has_tempconv && cm->tempconv;
  /* unique temporary conversations too: the same members get the same one while it lives */
  int unique = !room && cm->has_unique && cm->unique;

  json_t *doc = NULL;
  if (cm->attr && cm->attr->data && *cm->attr->data) {
    json_error_t jerr;
    doc = json_loads_capped(cm->attr->data, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
      char detail[200];
      snprintf(detail, sizeof detail, "attr must be a JSON object%s%s", doc ? "" : ": ", doc ? "" : jerr.text);
      json_decref(doc);
      reply_error(r, LC_CONVERSATION_API_FAILED, detail);
      return;
    }
    conv_doc_strip(doc);
  } else {
    doc = json_object();
  }

  /* The creator is always a member, whether or not the client listed itself. */
  char **listed = xcalloc(cm->n_m + 1, sizeof(char *));
  for (size_t i = 0; i < cm->n_m; i++) listed[i] = cm->m[i];
  listed[cm->n_m] = (char *)self;
  conv_spec_t sp = {.kind = room   ? CONV_ROOM
                            : temp ? CONV_TEMP
                                   : CONV_NORMAL,
                    .creator = self,
                    .members = listed,
                    .n = room ? 0 : cm->n_m + 1,
                    .doc = doc,
                    .unique = unique,
                    .temp_ttl = cm->has_tempconvttl && cm->tempconvttl > 0 ? cm->tempconvttl : 0};
  start_job_t *sj = xcalloc(1, sizeof *sj);
  sj->im = im;
  conv_build(im, &sp, sj);
  free(listed);
  json_decref(doc);
  conv_row_t *row = &sj->j.row;
  for (size_t i = 0; i < row->nmembers; i++) {
    if (!utf8_client_id_ok(row->members[i])) {
      start_free(sj);
      reply_error(r, LC_INVALID_LOGIN, "member ids must be 1 to 64 characters of UTF-8, no control characters");
      return;
    }
  }
  if ((long)row->nmembers > im->cfg->max_members) {
    start_free(sj);
    reply_error(r, LC_CONVERSATION_FULL, NULL);
    return;
  }
  if (unique) {
    const char *hex = row->unique_id;
    char *existing = NULL;
    int64_t created = 0;
    int found = im_cmd_unique(r->w, hex, &existing, &created); /* read ahead, off the loop (im_prefetch_cmd) */
    if (found == 1) found = store_conv_find_unique(r->w->reader, hex, &existing, &created);
    if (found == 0) {
      int ttl = 0;
      if (temp && (ttl = temp_left(r->w, existing)) <= 0) {
        /* the twin expired (the sweep has not removed it yet): it goes now, so that the
         * new one can take its unique id — the delete is queued before the insert */
        conv_t *old = conv_get(r->w, existing, NULL);
        if (old) conv_delete(r->w, old, 0, NULL);
      } else {
        reply_to_init(&sj->rt, r);
        char *uid = conv_visible_unique_id(r->w, existing, hex);
        send_started(r->w, &sj->rt, existing, created, uid, ttl, 1);
        free(uid);
        free(existing);
        start_free(sj);
        return;
      }
      free(existing);
    }
  }
  if (strlen(sj->j.doc) > (size_t)im->cfg->max_conv_doc) {
    char detail[120];
    snprintf(detail, sizeof detail, "the conversation document would exceed max_conv_doc (%ld bytes)",
             im->cfg->max_conv_doc);
    start_free(sj);
    reply_error(r, LC_CONVERSATION_API_FAILED, detail);
    return;
  }
  reply_to_init(&sj->rt, r);
  sj->j.job.worker = r->w->idx;
  if (im_hook_enabled(im, HOOK_CONVERSATION_START)) {
    /* _conversationStart: after the signature check, before anything is created (§8) */
    json_t *m = json_array();
    for (size_t i = 0; i < row->nmembers; i++) json_array_append_new(m, json_string(row->members[i]));
    json_t *attr = cm->attr && cm->attr->data ? json_loads_capped(cm->attr->data, 0, NULL) : NULL;
    if (!json_is_object(attr)) {
      json_decref(attr);
      attr = json_object();
    }
    im_hook_call(r->w, HOOK_CONVERSATION_START,
                 json_pack("{s:s, s:o, s:o}", "initBy", self, "members", m, "attr", attr), start_hook_done, sj);
    return;
  }
  store_submit(im->store, &sj->j.job);
}

/* ---------------------------------------------------------------- query */

static void send_results(im_worker_t *w, const reply_to_t *rt, json_t *arr) {
  char *data = json_dumps(arr, JSON_COMPACT);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage res = LC__JSON_OBJECT_MESSAGE__INIT;
  conv_reply_base(&out, &cm, LC__OP_TYPE__results);
  res.data = data;
  cm.results = &res;
  reply_async(w, rt, &out);
  free(data);
}

/* Results answered at once, on the request's own worker. */
static void reply_results(req_t *r, json_t *arr) {
  reply_to_t rt;
  reply_to_init(&rt, r);
  send_results(r->w, &rt, arr);
  reply_to_free(&rt);
}

/* A query on its way through the query threads (store.h): answered over the socket (rt),
 * or to a REST caller (done). */
typedef struct {
  store_query_t sq;
  im_t *im;
  reply_to_t rt;
  int counted;         /* holds one of the link's MAX_LINK_QUERIES */
  ipcount_entry_t *ip; /* holds one of this address's max_queries_per_ip */
  im_done_t done;
  convq_t *parsed; /* the where and sort sq.q.query points at */
  json_t *out;     /* the results, shaped on the query thread (conv_view_append) */
} conv_query_t;

static void conv_query_free(conv_query_t *cq) {
  if (cq->ip) ipcount_del(cq->im->query_ips, cq->ip);
  json_decref(cq->out);
  reply_to_free(&cq->rt);
  convq_free(cq->parsed);
  free(cq);
}

static const char *query_failure(int rc) {
  switch (rc) {
  case TERN_ETIMEDOUT: return "query too expensive: it ran out of time (query_timeout)";
  case TERN_E2BIG: return "query too expensive: a regular expression hit its match limits";
  case TERN_EAGAIN: return "server busy: too many queries waiting";
  default: return "query failed";
  }
}

static void conv_query_done(task_t *t) {
  conv_query_t *cq = (conv_query_t *)t;
  im_worker_t *w = cq->im->workers[worker_current()];
  if (cq->counted) {
    im_link_t *l = reply_to_link(w, &cq->rt);
    if (l && l->queries) l->queries--;
  }
  int rc = cq->sq.result;
  if (cq->done.fn) {
    json_t *res = rc ? json_pack("{s:s}", "error", query_failure(rc)) : json_pack("{s:O}", "results", cq->out);
    if (!rc && cq->sq.count) json_object_set_new(res, "count", json_integer(cq->sq.n));
    /* REST: a budget the query ran out of is the caller's 400, a storage failure the server's 500 */
    im_done(w, &cq->done,
            rc == TERN_ESTORE ? LC_CONVERSATION_INTERNAL_ERROR
            : rc              ? LC_CONVERSATION_QUERY_FAILED
                              : 0,
            res);
    json_decref(res);
  } else if (rc) {
    reply_error_async(w, &cq->rt, LC_CONVERSATION_QUERY_FAILED, query_failure(rc));
  } else {
    send_results(w, &cq->rt, cq->out);
  }
  conv_query_free(cq);
}

static conv_query_t *conv_query_new(im_worker_t *w) {
  conv_query_t *cq = xcalloc(1, sizeof *cq);
  cq->im = w->im;
  return cq;
}

/* Submits cq (its query set); on a full queue answers at once. */
static void conv_query_submit(im_worker_t *w, conv_query_t *cq) {
  cq->sq.task.fn = conv_query_done;
  cq->sq.worker = w->idx;
  cq->out = json_array();
  cq->sq.cb = conv_view_append;
  cq->sq.cb_arg = cq->out;
  cq->sq.deadline_ns = mono_ns() + (uint64_t)w->im->cfg->query_timeout * 1000000u;
  if (store_query_submit(w->im->store, &cq->sq) < 0) {
    cq->sq.result = TERN_EAGAIN;
    conv_query_done(&cq->sq.task);
  }
}

/* Counts one more query from ip (0, or TERN_EAGAIN past max_queries_per_ip). */
static int count_ip(im_worker_t *w, conv_query_t *cq, const char *ip) {
  cq->ip = ipcount_add(w->im->query_ips, ip ? ip : "", w->im->cfg->max_queries_per_ip);
  return cq->ip ? 0 : TERN_EAGAIN;
}

int conv_query_run(im_worker_t *w, const char *ip, json_t *where, const char *self, const char *sort, int limit,
                   int skip, int flags, int count, const im_done_t *done, char *err, size_t errlen) {
  conv_query_t *cq = conv_query_new(w);
  int rc = convq_parse(where, sort, self, &cq->parsed, err, errlen);
  cq->sq.q = (store_conv_q_t){.query = cq->parsed};
  if (rc == 0) rc = store_conv_query_check(w->im->store, &cq->sq.q, err, errlen); /* what the backend cannot take */
  if (rc == 0 && (rc = count_ip(w, cq, ip)) < 0) snprintf(err, errlen, "too many queries from this address");
  if (rc < 0) {
    conv_query_free(cq);
    return rc;
  }
  cq->done = *done;
  cq->sq.q.limit = limit;
  cq->sq.q.skip = skip;
  cq->sq.q.flags = flags;
  cq->sq.count = count;
  conv_query_submit(w, cq);
  return 0;
}

void im_conv_query(req_t *r) {
  Lc__ConvCommand empty = LC__CONV_COMMAND__INIT;
  Lc__ConvCommand *cm = r->cmd->convmessage ? r->cmd->convmessage : &empty;
  int flags = cm->has_flag ? cm->flag & 3 : 0;
  json_t *arr = NULL;
  if (cm->n_tempconvids) {
    size_t n = cm->n_tempconvids > 1000 ? 1000 : cm->n_tempconvids;
    arr = im_cmd_temps(r->w, n, flags); /* read ahead, off the loop (im_prefetch_cmd) */
    if (!arr) {
      arr = json_array();
      if (store_conv_fetch(r->w->reader, (const char *const *)cm->tempconvids, n, flags, conv_view_append, arr) < 0) {
        json_decref(arr);
        reply_error(r, LC_CONVERSATION_QUERY_FAILED, "storage failed");
        return;
      }
    }
    reply_results(r, arr);
    json_decref(arr);
    return;
  }
  if (r->link->queries >= MAX_LINK_QUERIES) {
    reply_error(r, LC_CONVERSATION_QUERY_FAILED, "too many queries running on this connection");
    return;
  }
  json_t *where = NULL;
  if (cm->where && cm->where->data && *cm->where->data) {
    json_error_t jerr;
    where = json_loads_capped(cm->where->data, 0, &jerr);
    if (!where) {
      char detail[200];
      snprintf(detail, sizeof detail, "where is not JSON: %s", jerr.text);
      reply_error(r, LC_CONVERSATION_QUERY_FAILED, detail);
      return;
    }
  }
  conv_query_t *cq = conv_query_new(r->w);
  char err[200] = "";
  int rc = convq_parse(where, cm->sort, r->s->client_id, &cq->parsed, err, sizeof err);
  json_decref(where);
  cq->sq.q = (store_conv_q_t){.query = cq->parsed};
  if (rc == 0) rc = store_conv_query_check(r->w->im->store, &cq->sq.q, err, sizeof err);
  if (rc < 0) {
    reply_error(r, LC_CONVERSATION_QUERY_FAILED, err);
    conv_query_free(cq);
    return;
  }
  /* limit absent: 10; limit 0 (the JS SDK's query.limit(0)) asks for none; negative: 10 */
  int limit = cm->has_limit && cm->limit >= 0 ? cm->limit : 10;
  if (limit > 1000) limit = 1000;
  if (limit == 0) {
    json_t *none = json_array();
    reply_results(r, none);
    json_decref(none);
    conv_query_free(cq);
    return;
  }
  cq->sq.q.limit = limit;
  cq->sq.q.skip = cm->has_skip && cm->skip > 0 ? cm->skip : 0;
  cq->sq.q.flags = flags;
  if (count_ip(r->w, cq, r->link->ip) < 0) {
    reply_error(r, LC_CONVERSATION_QUERY_FAILED, "too many queries from this address");
    conv_query_free(cq);
    return;
  }
  reply_to_init(&cq->rt, r);
  cq->counted = 1;
  r->link->queries++;
  conv_query_submit(r->w, cq);
}

/* ---------------------------------------------------------------- lookups */

/* The conversation named by the request, or an error reply. Temporary conversations past
 * their TTL answer 4323 as if gone (§3.4). In a cluster it is read from the store first: a
 * change another node acked reaches this node's cache by a broadcast a little later
 * (docs/cluster.md, "The conversation cache across nodes"), and a member who was just made
 * a Manager, unblocked or added must not be refused by the copy from before. These are the
 * conversation commands, not sends: one read each. */
conv_t *need_conv(req_t *r, const char *cid, int missing_code) {
  int err;
  /* loaded: read just now (im_prefetch marked it stale for that, as here) */
  if (r->w->im->bus && cid && !r->loaded) convcache_stale(r->w->im, cid);
  conv_t *c = conv_get(r->w, cid, &err);
  if (!c) {
    if (err) reply_error(r, LC_CONVERSATION_INTERNAL_ERROR, "storage failed");
    else if (cid && strncmp(cid, "_tmp:", 5) == 0) reply_error(r, LC_TEMPORARY_CONVERSATION_EXPIRED, NULL);
    else reply_error(r, missing_code, NULL);
    return NULL;
  }
  if (c->kind == CONV_TEMP && c->expire_at && c->expire_at <= now_ms()) {
    reply_error(r, LC_TEMPORARY_CONVERSATION_EXPIRED, NULL);
    conv_release(c);
    return NULL;
  }
  return c;
}

conv_t *need_conv_in(req_t *r, const Lc__ConvCommand *in) {
  return need_conv(r, in ? in->cid : NULL, LC_CONVERSATION_NOT_FOUND);
}

void im_conv_count(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  int count;
  if (c->kind == CONV_ROOM) {
    count = atomic_load(&c->online);
    if (r->w->im->bus) count += (int)bus_room_count(r->w->im->bus, c->cid); /* the other nodes' */
  } else {
    members_t *m = conv_members(c);
    count = m ? (int)m->n : 0;
    members_release(m);
  }
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  conv_reply_base(&out, &cm, LC__OP_TYPE__result);
  PB_SET(cm, count, count);
  reply(r, &out);
  conv_release(c);
}

void im_conv_online_members(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  if (c->kind != CONV_ROOM) {
    reply_error(r, LC_TRANSIENT_CONVERSATION_REQUIRED, NULL);
    conv_release(c);
    return;
  }
  int limit = in && in->has_limit && in->limit > 0 && in->limit <= 50 ? in->limit : 50;
  char **ids = xcalloc((size_t)limit, sizeof *ids);
  size_t n = 0;
  /* Other workers' room slices change under c->mu; hold it while copying ids out. */
  pthread_mutex_lock(&c->mu);
  for (int k = 0; k < r->w->im->nworkers && n < (size_t)limit; k++) {
    room_slice_t *sl = &c->room[k];
    for (uint32_t i = 0; i < sl->n && n < (size_t)limit; i++) {
      int dup = 0;
      for (size_t j = 0; j < n; j++) dup |= strcmp(ids[j], sl->v[i]->client_id) == 0;
      if (!dup) ids[n++] = xstrdup(sl->v[i]->client_id);
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (r->w->im->bus && n < (size_t)limit) { /* and those on the other nodes (docs/cluster.md) */
    char **more = xcalloc((size_t)limit, sizeof *more);
    size_t k = bus_room_members(r->w->im->bus, c->cid, more, (size_t)limit);
    for (size_t i = 0; i < k; i++) {
      int dup = 0;
      for (size_t j = 0; j < n && !dup; j++) dup = strcmp(ids[j], more[i]) == 0;
      if (!dup && n < (size_t)limit) ids[n++] = more[i];
      else free(more[i]);
    }
    free(more);
  }
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  conv_reply_base(&out, &cm, LC__OP_TYPE__members);
  cm.cid = c->cid;
  cm.m = ids;
  cm.n_m = n;
  reply(r, &out);
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
  conv_release(c);
}

void im_conv_is_member(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  json_t *res = json_object();
  size_t n = in ? in->n_cids : 0;
  if (n > 100) n = 100;
  for (size_t i = 0; i < n; i++) {
    conv_t *c = conv_get(r->w, in->cids[i], NULL);
    int yes = 0;
    if (c) {
      if (c->kind == CONV_ROOM) {
        yes = r->s->room == c;
      } else {
        members_t *m = conv_members(c);
        yes = members_has(m, r->s->client_id);
        members_release(m);
      }
      conv_release(c);
    }
    json_object_set_new(res, in->cids[i], json_boolean(yes));
  }
  char *data = json_dumps(res, JSON_COMPACT);
  json_decref(res);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage jm = LC__JSON_OBJECT_MESSAGE__INIT;
  conv_reply_base(&out, &cm, LC__OP_TYPE__is_member);
  jm.data = data;
  cm.results = &jm;
  reply(r, &out);
  free(data);
}

/* ---------------------------------------------------------------- membership */

typedef struct {
  job_members_t j;
  im_t *im;
  reply_to_t rt;
  conv_t *conv;
  char *initby;
  int add;
  char **allowed; /* every id the operation succeeded for, changed or not */
  size_t nallowed;
  failed_pids_t failed;
  im_done_t done;
} members_job_t;

static void members_job_free(members_job_t *mj) {
  for (size_t i = 0; i < mj->j.n; i++) free(mj->j.clients[i]);
  free(mj->j.clients);
  for (size_t i = 0; i < mj->nallowed; i++) free(mj->allowed[i]);
  free(mj->allowed);
  failed_pids_free(&mj->failed);
  free(mj->initby);
  reply_to_free(&mj->rt);
  if (mj->conv) conv_release(mj->conv);
  free(mj);
}

typedef struct {
  const char *id;
  size_t i;
} id_at_t;

static int id_at_cmp(const void *a, const void *b) {
  const id_at_t *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->i > y->i) - (x->i < y->i);
}

size_t *ids_first_index(char *const *ids, size_t n) {
  size_t *first = xcalloc(n + 1, sizeof *first);
  id_at_t *v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = (id_at_t){ids[i], i};
  qsort(v, n, sizeof *v, id_at_cmp);
  for (size_t k = 0; k < n; k++) first[v[k].i] = k && strcmp(v[k].id, v[k - 1].id) == 0 ? first[v[k - 1].i] : v[k].i;
  free(v);
  return first;
}

void failed_pids_add(failed_pids_t *f, int code, const char *pid) {
  for (size_t i = 0; i < f->n; i++) {
    Lc__ErrorCommand *e = f->v[i];
    if (e->code == code) {
      e->pids = xrealloc(e->pids, (e->n_pids + 1) * sizeof(char *));
      e->pids[e->n_pids++] = xstrdup(pid);
      return;
    }
  }
  Lc__ErrorCommand *e = xmalloc(sizeof *e);
  lc__error_command__init(e);
  e->code = code;
  e->reason = (char *)lc_error_name(code);
  e->pids = xmalloc(sizeof(char *));
  e->pids[0] = xstrdup(pid);
  e->n_pids = 1;
  f->v = xrealloc(f->v, (f->n + 1) * sizeof *f->v);
  f->v[f->n++] = e;
}

void failed_pids_free(failed_pids_t *f) {
  for (size_t i = 0; i < f->n; i++) {
    for (size_t k = 0; k < f->v[i]->n_pids; k++) free(f->v[i]->pids[k]);
    free(f->v[i]->pids);
    free(f->v[i]);
  }
  free(f->v);
  f->v = NULL;
  f->n = 0;
}

json_t *pids_result_json(char *const *allowed, size_t nallowed, const failed_pids_t *f, int64_t at) {
  json_t *ok = json_array(), *failed = json_array();
  for (size_t i = 0; i < nallowed; i++) json_array_append_new(ok, json_string(allowed[i]));
  for (size_t i = 0; i < f->n; i++)
    for (size_t k = 0; k < f->v[i]->n_pids; k++)
      json_array_append_new(failed, json_pack("{s:s, s:i, s:s}", "client_id", f->v[i]->pids[k], "code", f->v[i]->code,
                                              "error", f->v[i]->reason));
  return json_pack("{s:o, s:o, s:I}", "allowed", ok, "failed", failed, "updated_at", (json_int_t)at);
}

static void send_members_changed(im_worker_t *w, members_job_t *mj, int64_t udate) {
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  conv_reply_base(&out, &cm, mj->add ? LC__OP_TYPE__added : LC__OP_TYPE__removed);
  char iso[ISO_LEN + 1];
  iso_format(udate, iso);
  cm.cid = mj->conv->cid;
  cm.allowedpids = mj->allowed;
  cm.n_allowedpids = mj->nallowed;
  cm.failedpids = mj->failed.v;
  cm.n_failedpids = mj->failed.n;
  cm.udate = iso;
  reply_async(w, &mj->rt, &out);
}

static void members_done(task_t *t) {
  members_job_t *mj = (members_job_t *)t;
  im_worker_t *w = mj->im->workers[worker_current()];
  conv_t *c = mj->conv;
  conv_set_stored(c);
  if (mj->j.job.result < 0) {
    convcache_drop(mj->im, c); /* the cache ran ahead of storage: reload on next use */
    reply_error_async(w, &mj->rt, LC_CONVERSATION_API_FAILED, "storage failed");
    im_done(w, &mj->done, LC_CONVERSATION_API_FAILED, NULL);
    members_job_free(mj);
    return;
  }
  im_conv_changed(w, c->cid); /* other nodes reload it */
  send_members_changed(w, mj, mj->j.updated_at);
  if (mj->done.fn) {
    json_t *res = pids_result_json(mj->allowed, mj->nallowed, &mj->failed, mj->j.updated_at);
    im_done(w, &mj->done, 0, res);
    json_decref(res);
  }
  if (mj->j.n && c->kind == CONV_SYSTEM) {
    /* subscribers are told nothing about each other (§3.12) */
  } else if (mj->j.n) {
    members_t *now = conv_members(c);
    if (mj->add) {
      /* the newcomers: joined, then (with everyone else) members_joined (§3.12) */
      conv_notify(w, c->cid, LC__OP_TYPE__joined, mj->initby, NULL, 0, mj->j.updated_at, mj->j.clients, mj->j.n, 0);
      if (now)
        conv_notify(w, c->cid, LC__OP_TYPE__members_joined, mj->initby, mj->j.clients, mj->j.n, mj->j.updated_at,
                    now->ids, now->n, 0);
    } else {
      conv_notify(w, c->cid, LC__OP_TYPE__left, mj->initby, NULL, 0, mj->j.updated_at, mj->j.clients, mj->j.n, 0);
      if (now && now->n)
        conv_notify(w, c->cid, LC__OP_TYPE__members_left, mj->initby, mj->j.clients, mj->j.n, mj->j.updated_at,
                    now->ids, now->n, 0);
    }
    members_release(now);
    json_t *m = json_array();
    for (size_t i = 0; i < mj->j.n; i++) json_array_append_new(m, json_string(mj->j.clients[i]));
    im_hook_call(w, mj->add ? HOOK_CONVERSATION_ADDED : HOOK_CONVERSATION_REMOVED,
                 json_pack("{s:s, s:s, s:o}", "initBy", mj->initby, "convId", c->cid, "members", m), NULL, NULL);
  }
  members_job_free(mj);
}

static void room_membership(req_t *r, conv_t *c, int add) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  members_job_t tmp = {.add = add, .conv = c};
  char *self = r->s->client_id;
  int includes_self = in->n_m == 0;
  for (size_t i = 0; i < in->n_m; i++) {
    if (strcmp(in->m[i], self) == 0) includes_self = 1;
    else
      failed_pids_add(&tmp.failed, utf8_client_id_ok(in->m[i]) ? LC_CONVERSATION_NOT_ALLOWED : LC_INVALID_LOGIN,
                      in->m[i]); /* rooms: self only */
  }
  if (includes_self && add) {
    pthread_mutex_lock(&c->mu);
    int code = conv_join_refused(r->w, c, self);
    pthread_mutex_unlock(&c->mu);
    if (code) {
      failed_pids_add(&tmp.failed, code, self);
      includes_self = 0;
    }
  }
  if (includes_self) {
    conv_t *was = r->s->room;
    if (add) im_room_join(r->w, r->s, c);
    else if (r->s->room == c) im_room_leave(r->w, r->s);
    if (r->s->room != was) im_hold_reply(r->w, r->link); /* the answer waits for the other nodes (im_hold.c) */
  }
  char *allowed[1] = {self};
  tmp.allowed = includes_self ? allowed : NULL;
  tmp.nallowed = includes_self ? 1 : 0;
  reply_to_init(&tmp.rt, r);
  send_members_changed(r->w, &tmp, now_ms());
  reply_to_free(&tmp.rt);
  failed_pids_free(&tmp.failed);
}

/* Why `id` may not join / be added, or 0. Blocked by the conversation, or it blocked the
 * conversation itself (§3.17): 4548 either way. Call under c->mu. */
int conv_join_refused(im_worker_t *w, conv_t *c, const char *id) {
  if (members_has(c->sets[SET_BLOCK], id)) return LC_BLOCKED_BY_CONV;
  int b = im_cmd_blocked(w, id, c->cid); /* read ahead, off the loop (im_prefetch_cmd) */
  if (b == -2) b = store_client_blocked(w->reader, id, c->cid);
  if (b == 1) return LC_BLOCKED_BY_CONV;
  return 0;
}

/* With member_roles on, may the owner (creator) `id` not leave c? While roles are in use —
 * the conversation has a Manager — it must stay: Managers answer to it, and nobody else may
 * change roles (4324). A conversation without Managers needs no owner, so its creator may
 * quit and re-join (it is the Owner again once back, being the creator). Judged on the
 * roles as they were when the request came: under c->mu, before this request's changes. */
static int owner_stays(im_worker_t *w, conv_t *c, const char *id) {
  if (!w->im->cfg->member_roles || !c->creator || strcmp(id, c->creator) != 0) return 0;
  return c->sets[SET_MANAGER] && c->sets[SET_MANAGER]->n > 0;
}

/* Applies an add or remove of ids_in to c for `self` (already authorised), answers rt after
 * the commit, and notifies per §3.12. Takes the reference of c. */
void conv_members_apply(im_worker_t *w, conv_t *c, const char *self, char *const *ids_in, size_t n, int add,
                        const reply_to_t *rt, const im_done_t *done) {
  members_job_t *mj = xcalloc(1, sizeof *mj);
  mj->im = w->im;
  mj->conv = c;
  mj->add = add;
  mj->initby = xstrdup(self);
  mj->j.clients = xcalloc(n + 1, sizeof(char *));
  mj->allowed = xcalloc(n + 1, sizeof(char *));
  size_t *first = ids_first_index(ids_in, n);
  uint8_t *taken = xcalloc(n + 1, 1); /* taken[first[i]]: an earlier ids_in[i] was allowed */

  pthread_mutex_lock(&c->mu);
  members_t *cur = c->members;
  size_t count = cur ? cur->n : 0;
  for (size_t i = 0; i < n; i++) {
    const char *id = ids_in[i];
    int code = 0;
    if (taken[first[i]]) continue;
    int have = members_has(cur, id);
    /* a malformed id cannot come in; one already there (stored before ids were checked)
     * may still be removed */
    if (!(have && !add) && !utf8_client_id_ok(id)) code = LC_INVALID_LOGIN;
    else if (add && !have && (code = conv_join_refused(w, c, id))) (void)0;
    else if (add && !have && c->kind != CONV_SYSTEM && (long)count >= w->im->cfg->max_members)
      code = LC_CONVERSATION_FULL;
    else if (!add && have && owner_stays(w, c, id)) code = LC_CONVERSATION_NEED_OWNER;
    if (code) {
      failed_pids_add(&mj->failed, code, id);
      continue;
    }
    mj->allowed[mj->nallowed++] = xstrdup(id);
    taken[first[i]] = 1;
    if (have == add) continue; /* already so: it succeeds, changes nothing, is announced to nobody */
    if (add) count++;
    mj->j.clients[mj->j.n++] = xstrdup(id);
  }
  free(first);
  free(taken);
  /* swap in the new member snapshot */
  size_t nn = 0;
  char **ids = xcalloc((cur ? cur->n : 0) + mj->j.n + 1, sizeof(char *));
  for (size_t i = 0; cur && i < cur->n; i++) {
    int removed = 0;
    for (size_t k = 0; !add && k < mj->j.n; k++) removed |= strcmp(cur->ids[i], mj->j.clients[k]) == 0;
    if (!removed) ids[nn++] = cur->ids[i];
  }
  for (size_t k = 0; add && k < mj->j.n; k++) ids[nn++] = mj->j.clients[k];
  c->members = members_new(ids, nn);
  members_release(cur);
  free(ids);
  if (!add) conv_forget_roles(c, mj->j.clients, mj->j.n);
  mj->j.updated_at = conv_touch(c);
  mj->j.seen_ts = c->last_ts;
  mj->j.seen_seq = c->last_seq;
  mj->j.conv = c->id;
  mj->j.job.type = add ? JOB_MEMBERS_ADD : JOB_MEMBERS_REMOVE;
  mj->j.job.worker = w->idx;
  mj->j.job.task.fn = members_done;
  if (rt) {
    mj->rt = *rt;
    mj->rt.peer = rt->peer ? xstrdup(rt->peer) : NULL;
  }
  if (done) mj->done = *done;
  c->set_writes++;                        /* the stored rows lack this change until members_done */
  store_submit(w->im->store, &mj->j.job); /* under c->mu: storage sees changes in cache order */
  pthread_mutex_unlock(&c->mu);
}

typedef struct {
  conv_t *conv;
  char *initby;
  char **ids;
  size_t n;
  int add;
  reply_to_t rt;
} held_members_t;

static void members_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  held_members_t *hm = arg;
  if (failed || json_is_true(json_object_get(result, "reject"))) {
    reply_rejected_async(w, &hm->rt, LC_CONVERSATION_REJECTED_BY_APP, failed ? NULL : result);
    conv_release(hm->conv);
  } else {
    conv_members_apply(w, hm->conv, hm->initby, hm->ids, hm->n, hm->add, &hm->rt, NULL);
  }
  for (size_t i = 0; i < hm->n; i++) free(hm->ids[i]);
  free(hm->ids);
  free(hm->initby);
  reply_to_free(&hm->rt);
  free(hm);
}

void im_conv_members_change(req_t *r, int add) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  if (!in || !in->cid) {
    reply_error(r, LC_CONVERSATION_NOT_FOUND, "cid is required");
    return;
  }
  if (too_many_ids(r, in->n_m)) return;
  im_t *im = r->w->im;
  if (im->cfg->sign_conversation &&
      im_check_signature(r,
                         sign_string_action(im->app_id, r->s->client_id, in->cid, in->m, in->n_m, in->has_t ? in->t : 0,
                                            in->n, add ? "invite" : "kick"),
                         in->has_t ? in->t : 0, in->n, in->s, LC_CONVERSATION_SIGNATURE_FAILED) < 0)
    return;
  conv_t *c = need_conv(r, in->cid, LC_CONVERSATION_NOT_FOUND);
  if (!c) return;
  if (c->kind == CONV_ROOM) {
    room_membership(r, c, add);
    conv_release(c);
    return;
  }
  if (c->kind == CONV_SYSTEM) { /* subscribe or unsubscribe oneself, nobody else */
    if (in->n_m > 1 || (in->n_m == 1 && strcmp(in->m[0], r->s->client_id) != 0)) {
      reply_error(r, LC_CONVERSATION_NOT_ALLOWED, "a service conversation is subscribed to by each client itself");
      conv_release(c);
      return;
    }
    char *self[1] = {r->s->client_id};
    reply_to_t rt;
    reply_to_init(&rt, r);
    conv_members_apply(r->w, c, self[0], self, 1, add, &rt, NULL);
    reply_to_free(&rt);
    return;
  }
  if (c->kind != CONV_NORMAL) { /* temporary conversations keep their members (§3.4) */
    reply_error(r, LC_CONVERSATION_READ_ONLY, NULL);
    conv_release(c);
    return;
  }
  const char *self = r->s->client_id;
  int roles = r->w->im->cfg->member_roles;
  int only_self = in->n_m == 1 && strcmp(in->m[0], self) == 0;
  int role = conv_role(c, self);
  if (role == ROLE_NONE && !(add && only_self)) {
    reply_error(r, LC_CONVERSATION_MEMBERSHIP_REQUIRED, "only members may change the member list");
    conv_release(c);
    return;
  }
  if (roles && !only_self && role < ROLE_MANAGER) {
    reply_error(r, LC_CONVERSATION_OPERATION_UNAUTHORIZED, "only the owner and managers may add or remove others");
    conv_release(c);
    return;
  }
  if (im_hook_enabled(im, add ? HOOK_CONVERSATION_ADD : HOOK_CONVERSATION_REMOVE) && !(!add && only_self)) {
    /* _conversationAdd before any add (joins too), _conversationRemove before kicks (§8) */
    held_members_t *hm = xcalloc(1, sizeof *hm);
    hm->conv = c;
    hm->initby = xstrdup(self);
    hm->add = add;
    hm->n = in->n_m;
    hm->ids = xcalloc(in->n_m + 1, sizeof(char *));
    json_t *m = json_array();
    for (size_t i = 0; i < in->n_m; i++) {
      hm->ids[i] = xstrdup(in->m[i]);
      json_array_append_new(m, json_string(in->m[i]));
    }
    reply_to_init(&hm->rt, r);
    im_hook_call(r->w, add ? HOOK_CONVERSATION_ADD : HOOK_CONVERSATION_REMOVE,
                 json_pack("{s:s, s:o, s:s}", "initBy", self, "members", m, "convId", c->cid), members_hook_done, hm);
    return;
  }
  reply_to_t rt;
  reply_to_init(&rt, r);
  conv_members_apply(r->w, c, self, in->m, in->n_m, add, &rt, NULL);
  reply_to_free(&rt);
}

/* ---------------------------------------------------------------- max_read */

typedef struct {
  const char *self;
  int64_t max_read, max_ack;
  int all;
  Lc__MaxReadTuple **tuples;
  size_t n;
} progress_acc_t;

static void progress_each(void *arg, const member_progress_t *p) {
  progress_acc_t *a = arg;
  if (a->all) {
    Lc__MaxReadTuple *t = xmalloc(sizeof *t);
    lc__max_read_tuple__init(t);
    t->pid = xstrdup(p->client);
    PB_SET(*t, maxacktimestamp, p->ack_ts);
    PB_SET(*t, maxreadtimestamp, p->read_ts);
    a->tuples = xrealloc(a->tuples, (a->n + 1) * sizeof *a->tuples);
    a->tuples[a->n++] = t;
  }
  if (strcmp(p->client, a->self) == 0) return;
  if (p->read_ts > a->max_read) a->max_read = p->read_ts;
  if (p->ack_ts > a->max_ack) a->max_ack = p->ack_ts;
}

void im_conv_max_read(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  members_t *m = conv_members(c);
  int member = members_has(m, r->s->client_id);
  members_release(m);
  if (!member) {
    reply_error(r, LC_CONVERSATION_MEMBERSHIP_REQUIRED, NULL);
    conv_release(c);
    return;
  }
  progress_acc_t acc = {.self = r->s->client_id, .all = in && in->has_queryallmembers && in->queryallmembers};
  int rc = im_cmd_progress(r->w, c->id, progress_each, &acc); /* read ahead, off the loop (im_prefetch_cmd) */
  if (rc == 1) rc = store_progress(r->w->reader, c->id, progress_each, &acc);
  if (rc < 0) {
    reply_error(r, LC_CONVERSATION_INTERNAL_ERROR, "storage failed");
  } else {
    lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
    Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
    conv_reply_base(&out, &cm, LC__OP_TYPE__max_read);
    cm.cid = c->cid;
    /* absent rather than 0: the JS SDK would show "read at 1970" */
    if (acc.max_read > 0) PB_SET(cm, maxreadtimestamp, acc.max_read);
    if (acc.max_ack > 0) PB_SET(cm, maxacktimestamp, acc.max_ack);
    cm.maxreadtuples = acc.tuples;
    cm.n_maxreadtuples = acc.n;
    reply(r, &out);
  }
  for (size_t i = 0; i < acc.n; i++) {
    free(acc.tuples[i]->pid);
    free(acc.tuples[i]);
  }
  free(acc.tuples);
  conv_release(c);
}
