/* admin_import.c — `tern admin import leancloud` and `tern admin export leancloud`.
 *
 * A run, in phases: files (_File; rehosted first with --rehost-files, so message URLs can
 * be rewritten), installations, then conversations — listed whole by objectId, each one
 * a job that fetches its extras (roles, shut-ups, blacklist, subscribers) when it is new or
 * changed, then walks its history oldest to newest from the state's cursor; up to
 * --concurrency jobs at once — and, when an earlier run completed, one walk of the app's
 * whole history (GET /1.2/rtm/messages) over the recheck window, which brings the
 * messages sent since and the edits and recalls made since (docs/migrate-import.md says
 * why that walk and what it costs).
 *
 * Records are gathered into NDJSON bodies (≤ 2 MiB, ≤ 5,000 lines) posted to the target's
 * POST /1.2/import/records, two at a time, while the source keeps fetching; a few sealed
 * bodies may wait, beyond that the jobs stall. Each body carries the state changes its
 * records stand for (cursors, change marks); they are committed to the state file only
 * when the target has answered 200 to it and to every body before it, so an interruption
 * anywhere re-sends at most the bodies not yet acknowledged, and the target's idempotency
 * absorbs them. Two bodies the order of which matters are never in flight together
 * (shares_conversation).
 *
 * --dry-run prints the records instead of posting them; export writes what the source
 * answered (the same pull) into a directory that --from-dir reads back. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_import_run.h"
#include "crypto.h"
#include "timeutil.h"

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted++;
  if (interrupted > 2) _exit(1);
}

/* ---------------------------------------------------------------- skips and stops */

void imp_skip(imp_t *im, const char *kind, const char *id, const char *reason) {
  json_t *s = json_pack("{s:s, s:s, s:s}", "kind", kind, "id", id ? id : "", "reason", reason ? reason : "");
  if (!s) s = json_pack("{s:s, s:s, s:s}", "kind", kind, "id", "(not UTF-8)", "reason", "(not UTF-8)");
  if (!im->ad->a.json && !im->tty) fprintf(stderr, "tern admin: skipped %s %s: %s\n", kind, id ? id : "", reason);
  json_array_append(im->skips, s);
  if (im->mode != MODE_EXPORT) imp_state_commit(im->st, json_pack("{s:[o]}", "skipped", s));
  else json_decref(s);
}

void imp_fail(imp_t *im, const char *fmt, ...) {
  if (!im->fatal[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(im->fatal, sizeof im->fatal, fmt, ap);
    va_end(ap);
  }
  im->stop = 1;
}

/* ---------------------------------------------------------------- batches */

static void pump(imp_t *im);

/* Two bodies fill at once: conversation-level records (the conversation, its roles and
 * sets) in one, messages (and installations, files) in the other. A conversation's
 * records are sealed before any body holding its messages, so they reach the target
 * first, and a messages body seldom waits for one still in flight (shares_conversation). */
static batch_t *open_batch(imp_t *im, int stream) {
  if (!im->open[stream]) {
    batch_t *b = xcalloc(1, sizeof *b);
    b->commit = json_object();
    b->cids = json_object();
    b->opened_ms = now_ms();
    im->open[stream] = b;
  }
  return im->open[stream];
}

void imp_commit_later(imp_t *im, int stream, json_t *delta) {
  if (im->mode != MODE_IMPORT) { /* nothing to wait for */
    imp_state_commit(im->st, delta);
    return;
  }
  imp_json_merge(open_batch(im, stream)->commit, delta);
  json_decref(delta);
}

static void enqueue(imp_t *im, int stream) {
  batch_t *b = im->open[stream];
  if (!b) return;
  im->open[stream] = NULL;
  if (im->tail) im->tail->next = b;
  else im->head = b;
  im->tail = b;
  im->queued++;
}

/* Seals the open bodies: the conversations' first, since messages may need them. */
static void seal(imp_t *im) {
  enqueue(im, IMP_CONV);
  enqueue(im, IMP_MSG);
}

void imp_room_for(imp_t *im, int lines) {
  batch_t *b = im->open[IMP_MSG];
  if (b && b->lines && b->lines + lines > im->batch_lines) seal(im);
}

/* What a body holds of conversation cid: conversation-level records, and its messages'
 * time span. */
static void touch(batch_t *b, const char *cid, int message, int64_t ts) {
  touch_t *t;
  if (b->last && strcmp(b->touch[b->last - 1].cid, cid) == 0) {
    t = &b->touch[b->last - 1];
  } else {
    size_t len = strlen(cid);
    json_t *ix = json_object_getn(b->cids, cid, len);
    if (ix) {
      b->last = (size_t)json_integer_value(ix) + 1;
    } else {
      if (b->ntouch == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->touch = xrealloc(b->touch, b->cap * sizeof *b->touch);
      }
      b->touch[b->ntouch] = (touch_t){.cid = xstrdup(cid), .min = INT64_MAX, .max = INT64_MIN};
      json_object_setn_new_nocheck(b->cids, cid, len, json_integer((json_int_t)b->ntouch));
      b->last = ++b->ntouch;
    }
    t = &b->touch[b->last - 1];
  }
  if (!message) {
    t->conv = 1;
  } else {
    if (ts < t->min) t->min = ts;
    if (ts > t->max) t->max = ts;
  }
}

static void emit_line(imp_t *im, int stream, const char *cid, const char *line, size_t n, int message, int64_t ts) {
  if (message) im->msgs++;
  if (im->mode == MODE_DRY) {
    fwrite(line, 1, n, stdout);
    fputc('\n', stdout);
    return;
  }
  batch_t *b = im->open[stream];
  if (b && (b->body.len + n + 1 > im->batch_bytes || b->lines >= im->batch_lines)) {
    if (stream == IMP_MSG) seal(im);
    else enqueue(im, IMP_CONV);
  }
  b = open_batch(im, stream);
  buf_append(&b->body, line, n);
  buf_append(&b->body, "\n", 1);
  b->lines++;
  if (cid) touch(b, cid, message, ts);
}

void imp_emit_message(imp_t *im, const char *cid, int64_t ts, const char *line, size_t n) {
  emit_line(im, IMP_MSG, cid, line, n, 1, ts);
}

/* One record: printed (--dry-run) or added to an open body. Takes rec. */
void imp_emit(imp_t *im, json_t *rec) {
  const char *type = json_string_value(json_object_get(rec, "type"));
  int message = type && strcmp(type, "message") == 0;
  /* the conversation it belongs to (installations and files: none) */
  const char *cid = type && strcmp(type, "conversation") == 0 ? json_string_value(json_object_get(rec, "objectId"))
                                                              : json_string_value(json_object_get(rec, "cid"));
  char *line = json_dumps(rec, JSON_COMPACT);
  if (line)
    emit_line(im, message || !cid ? IMP_MSG : IMP_CONV, cid, line, strlen(line), message,
              json_integer_value(json_object_get(rec, "timestamp")));
  free(line);
  json_decref(rec);
}

static void batch_free(batch_t *b) {
  buf_free(&b->body);
  json_decref(b->commit);
  json_decref(b->cids);
  for (size_t i = 0; i < b->ntouch; i++) free(b->touch[i].cid);
  free(b->touch);
  free(b);
}

/* The id of record `line` (from 1) of a body, for a skip the target could not name (a
 * line it could not parse: U+0000 in a string, which jansson refuses). malloc'd or NULL. */
static char *body_line_id(const buf_t *body, json_int_t line) {
  const char *p = (const char *)body->data, *end = p + body->len;
  if (line < 1 || !p) return NULL;
  for (json_int_t k = 1; k < line; k++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    p = nl + 1;
  }
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  json_t *o = json_loadb(p, (size_t)((nl ? nl : end) - p), JSON_ALLOW_NUL, NULL);
  const char *id = json_string_value(json_object_get(o, "msg-id"));
  if (!id) id = json_string_value(json_object_get(o, "objectId"));
  if (!id) id = json_string_value(json_object_get(o, "cid"));
  char *out = id ? xstrdup(id) : NULL;
  json_decref(o);
  return out;
}

/* Answered bodies leave the queue in the order they were sealed, each committing its
 * state changes only after every body before it did: a cursor is never recorded past
 * records the target does not hold. After a body that failed, none is committed (what
 * they carried is sent again on the next run; the target takes a repeat as unchanged). */
static void retire(imp_t *im) {
  while (im->head && im->head->done) {
    batch_t *b = im->head;
    im->head = b->next;
    if (!im->head) im->tail = NULL;
    im->queued--;
    if (!b->ok) im->uncommitted = 1;
    else if (!im->uncommitted && imp_state_commit(im->st, json_incref(b->commit)) < 0)
      imp_fail(im, "the state file could not be written");
    batch_free(b);
  }
}

static void posted(imp_req_t *r, void *arg) {
  batch_t *b = arg;
  imp_t *im = b->im;
  im->posting--;
  b->inflight = 0;
  b->done = 1;
  json_t *ans = r->status == 200 ? json_incref(r->json) : NULL;
  if (!json_is_object(ans)) {
    imp_fail(im, "the target refused a batch of %d records: %s", b->lines,
             r->status == 200   ? "its answer is not the {\"applied\",\"unchanged\",\"skipped\"} expected"
             : r->status == 404 ? "HTTP 404 (does this ternd have POST /1.2/import/records?)"
                                : r->err);
    json_decref(ans);
    retire(im);
    return;
  }
  b->ok = 1;
  im->batches++;
  im->applied += (long)json_integer_value(json_object_get(ans, "applied"));
  im->unchanged += (long)json_integer_value(json_object_get(ans, "unchanged"));
  size_t i;
  json_t *s;
  json_array_foreach(json_object_get(ans, "skipped"), i, s) {
    const char *reason = json_string_value(json_object_get(s, "reason"));
    const char *id = json_string_value(json_object_get(s, "id"));
    char *found = !id || !*id ? body_line_id(&b->body, json_integer_value(json_object_get(s, "line"))) : NULL;
    imp_skip(im, "record", found ? found : id, reason ? reason : "refused by the target");
    free(found);
  }
  json_decref(ans);
  retire(im);
}

/* Must b wait for a body in flight? The target applies bodies in flight at once in any
 * order, so b waits when it holds records of a conversation whose conversation-level
 * records are in one (or the other way round), or messages of a conversation not all
 * newer than that conversation's in one (ties at one millisecond keep their order only
 * in one body; a message's edit must land after it). */
static int shares_conversation(imp_t *im, batch_t *b) {
  for (batch_t *x = im->head; x && x != b; x = x->next) {
    if (!x->inflight) continue;
    for (size_t i = 0; i < b->ntouch; i++) {
      const touch_t *t = &b->touch[i];
      json_t *ix = json_object_getn(x->cids, t->cid, strlen(t->cid));
      if (!ix) continue;
      const touch_t *u = &x->touch[json_integer_value(ix)];
      if (t->conv || u->conv || u->max >= t->min) return 1;
    }
  }
  return 0;
}

static void job_resume(job_t *j);

static void pump(imp_t *im) {
  if (im->mode != MODE_IMPORT) return;
  /* a body that waited a second goes out as it is: the target stays busy, the state fresh */
  int64_t oldest = INT64_MAX;
  for (int k = 0; k < 2; k++)
    if (im->open[k] && im->open[k]->lines && im->open[k]->opened_ms < oldest) oldest = im->open[k]->opened_ms;
  if (oldest != INT64_MAX && !im->posting && im->queued == 0 && now_ms() - oldest > 1000) seal(im);
  /* bodies go out in order, up to MAX_POSTS at once: the target parses one while it
   * commits another */
  while (!im->fatal[0] && im->posting < MAX_POSTS) {
    batch_t *b = im->head;
    while (b && (b->inflight || b->done)) b = b->next;
    if (!b) break;
    if (b->lines == 0) { /* only state changes: nothing to send */
      b->done = b->ok = 1;
      continue;
    }
    if (im->posting && shares_conversation(im, b)) break;
    buf_t u = BUF_INIT, h = BUF_INIT;
    buf_printf(&u, "%s/1.2/import/records", im->target_base);
    buf_printf(&h, "%sContent-Type: application/x-ndjson\r\n", im->target_headers);
    b->im = im;
    b->inflight = 1;
    im->posting++;
    imp_net_request(im->net, "POST", buf_cstr(&u), buf_cstr(&h), b->body.data, b->body.len, IMP_JSON, posted, b);
    buf_free(&u);
    buf_free(&h);
  }
  retire(im);
  while (im->stalled && im->queued < MAX_QUEUED && !im->stop) {
    job_t *j = im->stalled;
    im->stalled = j->next_stalled;
    job_resume(j);
  }
}

/* ---------------------------------------------------------------- progress */

static void fmt_eta(char *out, size_t n, long done, long total, double rate) {
  if (total <= 0 || rate <= 0 || done >= total) {
    snprintf(out, n, "%s", done >= total && total > 0 ? "done" : "");
    return;
  }
  long s = (long)((double)(total - done) / rate);
  snprintf(out, n, "ETA %ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

static json_t *counts_json(imp_t *im) {
  long req, retries;
  imp_net_counts(im->net, &req, &retries);
  double secs = (double)(now_ms() - im->started_ms) / 1000.0;
  return json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:f}", "conversations",
                   (int)im->convs, "conversations_total", (int)im->convs_total, "messages", (int)im->msgs,
                   "installations", (int)im->inst, "installations_total", (int)im->inst_total, "files", (int)im->files,
                   "files_total", (int)im->files_total, "applied", (int)im->applied, "unchanged", (int)im->unchanged,
                   "skipped", (int)json_array_size(im->skips), "requests", (int)req, "retries", (int)retries,
                   "elapsed_ms", (json_int_t)(now_ms() - im->started_ms), "messages_per_s",
                   secs > 0 ? (double)im->msgs / secs : 0.0);
}

static void bar(const char *what, long done, long total, double secs) {
  char b[24] = "", eta[32];
  double rate = secs > 0 ? (double)done / secs : 0;
  if (total > 0) {
    int k = (int)(20.0 * (double)(done > total ? total : done) / (double)total);
    for (int i = 0; i < 20; i++) b[i] = i < k ? '#' : '-';
    b[20] = 0;
  }
  fmt_eta(eta, sizeof eta, done, total, rate);
  if (total > 0) fprintf(stderr, "\r\033[K%-14s [%s] %ld/%ld  %.0f/s  %s\n", what, b, done, total, rate, eta);
  else fprintf(stderr, "\r\033[K%-14s %ld  %.0f/s\n", what, done, rate);
}

static void progress(imp_t *im, int final) {
  if (im->mode == MODE_DRY) return;
  int64_t now = now_ms();
  if (im->tty && !im->ad->a.json) {
    if (!final && now - im->last_progress_ms < 250) return;
    im->last_progress_ms = now;
    double secs = (double)(now - im->started_ms) / 1000.0;
    if (im->drawn) fprintf(stderr, "\033[4A");
    bar("conversations", im->convs, im->convs_total, secs);
    bar("messages", im->msgs, 0, secs);
    bar("installations", im->inst, im->inst_total, secs);
    bar("files", im->files, im->files_total, secs);
    im->drawn = 1;
  } else if (im->ad->a.json && !final) {
    if (now - im->last_progress_ms < 2000) return;
    im->last_progress_ms = now;
    json_t *p = json_pack("{s:o}", "progress", counts_json(im));
    admin_print_json(p);
    fflush(stdout);
  }
}

/* One turn of the loop: answers, batches, progress. */
static void drive(imp_t *im, int wait_ms) {
  if (interrupted && !im->stop) imp_fail(im, "interrupted");
  imp_net_step(im->net, wait_ms);
  pump(im);
  progress(im, 0);
}

/* ---------------------------------------------------------------- waiting for one answer */

/* The first member of what a phase waits for: its callback sets done, or frees the whole
 * thing when the run stopped waiting (abandoned). */
typedef struct {
  int done, abandoned;
} waiter_t;

/* Drives the loop until w is answered (1), or the run stops (0: w is left to its callback). */
static int wait_for(imp_t *im, waiter_t *w) {
  while (!w->done && !im->stop) drive(im, 50);
  if (!w->done) {
    w->abandoned = 1;
    return 0;
  }
  return 1;
}

typedef struct {
  waiter_t w;
  json_t *ans;
  char *err;
  long status;
} sync_t;

static void sync_cb(json_t *ans, const char *err, long status, void *arg) {
  sync_t *s = arg;
  if (s->w.abandoned) {
    free(s);
    return;
  }
  s->w.done = 1;
  s->ans = json_incref(ans);
  s->err = err ? xstrdup(err) : NULL;
  s->status = status;
}

static void sync_free(sync_t *s) {
  json_decref(s->ans);
  free(s->err);
  free(s);
}

/* The same for a page of history items. */
typedef struct {
  waiter_t w;
  imp_items_t *items;
  char *err;
} items_wait_t;

static void items_wait_free(items_wait_t *s) {
  imp_items_free(s->items);
  free(s->err);
  free(s);
}

static void items_cb(imp_items_t *items, const char *err, long status, void *arg) {
  items_wait_t *s = arg;
  (void)status;
  if (s->w.abandoned) {
    imp_items_free(items);
    items_wait_free(s);
    return;
  }
  s->w.done = 1;
  s->items = items;
  s->err = err ? xstrdup(err) : NULL;
}

/* ---------------------------------------------------------------- conversation jobs */

static void job_end(job_t *j) {
  imp_t *im = j->im;
  im->active_jobs--;
  im->convs++;
  json_decref(j->conv);
  free(j->cid);
  free(j->mid);
  free(j);
}

static void job_history(job_t *j);

static void hist_emitted(page_t *p, void *arg) {
  (void)p;
  job_t *j = arg;
  job_history(j);
}

static void hist_page(imp_items_t *arr, const char *err, long status, void *arg) {
  job_t *j = arg;
  imp_t *im = j->im;
  (void)status;
  if (im->stop) {
    imp_items_free(arr);
    job_end(j);
    return;
  }
  if (!arr) {
    char why[400];
    snprintf(why, sizeof why, "history: %s", err);
    imp_skip(im, "conversation", j->cid, why);
    job_end(j);
    return;
  }
  size_t n = arr->n;
  int last_page = imp_src_is_dir(im->src) || n < HIST_LIMIT;
  if (im->mode == MODE_EXPORT) {
    imp_out_messages(im, j->cid, arr);
  }
  page_t *pg = imp_page_new(im, arr, j->cid);
  int64_t ts = j->ts;
  const char *mid = j->mid;
  for (size_t i = 0; i < n; i++) {
    const imp_item_t *it = &arr->v[i];
    int64_t t = it->has_ts ? it->ts : 0;
    const char *m = it->mid.p;
    if (j->edits_after) { /* a directory walked again whole: new ones, and edits since */
      int after = t > j->ts || (t == j->ts && m && j->mid && strcmp(m, j->mid) != 0) || !j->mid;
      if (!after && !(it->patch_ts > j->edits_after)) continue;
    }
    imp_page_add(pg, NULL, it);
    if (t >= ts && m) {
      ts = t;
      mid = m;
    }
  }
  char *newmid = mid ? xstrdup(mid) : NULL;
  free(j->mid);
  j->mid = newmid;
  j->ts = ts;
  if (last_page) j->need_hist = 0;
  /* the cursor (and, at the end, "walked") go with the body holding these messages */
  json_t *c = json_object();
  if (j->mid) {
    json_object_set_new(c, "ts", json_integer(j->ts));
    json_object_set_new(c, "mid", json_string(j->mid));
  }
  if (last_page) json_object_set_new(c, "w", json_integer(1));
  imp_page_start(pg, json_pack("{s:{s:o}}", "convs", j->cid, c), hist_emitted, j); /* may end j */
}

static void job_history(job_t *j) {
  imp_t *im = j->im;
  if (im->stop || !j->need_hist) {
    job_end(j);
    return;
  }
  if (im->queued >= MAX_QUEUED) { /* the target is behind: wait */
    j->next_stalled = im->stalled;
    im->stalled = j;
    return;
  }
  int64_t from = j->edits_after ? 0 : j->ts;
  imp_src_history(im->src, j->conv, from, j->edits_after ? NULL : j->mid, HIST_LIMIT, hist_page, j);
}

static void job_resume(job_t *j) { job_history(j); }

static void put_set(imp_t *im, const char *type, const char *cid, json_t *ids) {
  imp_emit(im,
           json_pack("{s:s, s:s, s:O}", "type", type, "cid", cid, "clients", json_is_array(ids) ? ids : json_array()));
}

static void extras_done(json_t *ex, const char *err, long status, void *arg) {
  job_t *j = arg;
  imp_t *im = j->im;
  (void)status;
  if (im->stop) {
    job_end(j);
    return;
  }
  if (!ex) {
    char why[400];
    snprintf(why, sizeof why, "roles, shut-ups, blacklist or subscribers: %s", err);
    imp_skip(im, "conversation", j->cid, why);
    job_end(j);
    return;
  }
  if (im->mode == MODE_EXPORT) {
    imp_out_line(im, im->f_conv, j->conv);
    json_t *line = json_deep_copy(ex);
    json_object_set_new(line, "cid", json_string(j->cid));
    imp_out_line(im, im->f_extras, line);
    json_decref(line);
  } else {
    const char *why = NULL;
    json_t *rec = imp_rec_conversation(j->conv, now_ms(), &why);
    if (!rec) {
      if (why) imp_skip(im, "conversation", j->cid, why);
      job_end(j);
      return;
    }
    imp_emit(im, rec);
    int sys = json_is_true(json_object_get(j->conv, "sys"));
    int temp = json_is_true(json_object_get(rec, "temporary"));
    if (!temp && !sys) {
      json_t *roles = json_object();
      size_t i;
      json_t *mi;
      json_array_foreach(json_object_get(ex, "member_infos"), i, mi) {
        const char *cl = json_string_value(json_object_get(mi, "clientId"));
        const char *role = json_string_value(json_object_get(mi, "role"));
        /* the owner is the creator, `c`; tern keeps no row for it */
        if (cl && role && strcmp(role, "Owner") != 0) json_object_set_new(roles, cl, json_string(role));
      }
      imp_emit(im, json_pack("{s:s, s:s, s:o}", "type", "member_roles", "cid", j->cid, "roles", roles));
      put_set(im, "shutup", j->cid, json_object_get(ex, "permanent_silenceds"));
    }
    if (!temp) put_set(im, "blacklist", j->cid, json_object_get(ex, "blacklists"));
    if (sys) { /* in bodies of at most 10,000 ids: the first replaces, the rest add */
      json_t *subs = json_object_get(ex, "subscribers");
      size_t n = json_array_size(subs), at = 0;
      do {
        json_t *part = json_array();
        for (size_t k = at; k < n && k < at + 10000; k++) json_array_append(part, json_array_get(subs, k));
        imp_emit(im, json_pack("{s:s, s:s, s:o, s:b}", "type", "subscribers", "cid", j->cid, "clients", part, "replace",
                               at == 0));
        at += 10000;
      } while (at < n);
    }
  }
  const char *u = imp_date_iso(json_object_get(j->conv, "updatedAt"));
  imp_commit_later(im, IMP_CONV, json_pack("{s:{s:{s:s, s:s}}}", "convs", j->cid, "h", j->hash, "u", u ? u : ""));
  job_history(j);
}

static void conv_hash(json_t *conv, char out[17]) {
  json_t *c = json_copy(conv);
  json_object_del(c, "lm");
  char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(c);
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = s; p && *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ULL;
  free(s);
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void job_start(imp_t *im, json_t *conv) {
  const char *cid = json_string_value(json_object_get(conv, "objectId"));
  if (!cid || !*cid) {
    imp_skip(im, "conversation", "", "no objectId");
    im->convs++;
    return;
  }
  const char *why = NULL;
  json_t *probe = imp_rec_conversation(conv, now_ms(), &why);
  json_decref(probe);
  if (!probe && !why) { /* an expired temporary conversation: not copied */
    im->convs++;
    return;
  }
  json_t *st = json_object_get(json_object_get(imp_state_doc(im->st), "convs"), cid);
  job_t *j = xcalloc(1, sizeof *j);
  j->im = im;
  j->conv = json_incref(conv);
  j->cid = xstrdup(cid);
  conv_hash(conv, j->hash);
  const char *h = json_string_value(json_object_get(st, "h"));
  j->need_fields = im->mode == MODE_EXPORT || im->full || !h || strcmp(h, j->hash) != 0;
  j->ts = json_integer_value(json_object_get(st, "ts"));
  const char *mid = json_string_value(json_object_get(st, "mid"));
  j->mid = mid ? xstrdup(mid) : NULL;
  int walked = json_integer_value(json_object_get(st, "w")) == 1;
  if (im->mode == MODE_EXPORT) {
    j->need_hist = 1;
    j->ts = 0;
    free(j->mid);
    j->mid = NULL;
  } else if (imp_src_is_dir(im->src)) {
    j->need_hist = 1; /* cheap: a local file */
    if (walked && im->prev_started_ms) j->edits_after = im->prev_started_ms - MARGIN_MS;
  } else {
    j->need_hist = !walked; /* the app-wide walk brings the rest */
  }
  if (j->need_hist) json_object_set_new(im->walked, cid, json_true());
  im->active_jobs++;
  if (j->need_fields) imp_src_extras(im->src, conv, extras_done, j);
  else job_history(j);
}

/* ---------------------------------------------------------------- phases */

/* Updated-since listing of _File or _Installation, each object to one_cb. */
static void class_phase(imp_t *im, const char *cls, long *total, void (*one)(imp_t *, json_t *)) {
  json_t *pg = json_object_get(json_object_get(imp_state_doc(im->st), "pagers"), cls);
  char *mark = im->mode == MODE_EXPORT ? NULL
               : json_string_value(json_object_get(pg, "mark"))
                   ? xstrdup(json_string_value(json_object_get(pg, "mark")))
                   : NULL;
  int ties = im->mode == MODE_EXPORT ? 0 : (int)json_integer_value(json_object_get(pg, "ties"));
  int first = 1;
  while (!im->stop) {
    sync_t *s = xcalloc(1, sizeof *s);
    imp_src_list(im->src, cls, 0, NULL, mark, ties, first, sync_cb, s);
    if (!wait_for(im, &s->w)) break;
    if (!s->ans) {
      if (s->status == 404) { /* no such class on this source: nothing to copy */
        sync_free(s);
        break;
      }
      imp_fail(im, "listing %s failed: %s", cls, s->err);
      sync_free(s);
      break;
    }
    if (first && json_is_integer(json_object_get(s->ans, "count")))
      *total = (long)json_integer_value(json_object_get(s->ans, "count"));
    first = 0;
    json_t *res = json_object_get(s->ans, "results");
    size_t i, n = json_array_size(res);
    json_t *o;
    json_array_foreach(res, i, o) one(im, o);
    if (n) {
      const char *last = imp_date_iso(json_object_get(json_array_get(res, n - 1), "updatedAt"));
      if (last && mark && strcmp(last, mark) == 0) {
        ties += (int)n;
      } else if (last) {
        ties = 0;
        for (size_t k = n; k-- > 0;) {
          const char *u = imp_date_iso(json_object_get(json_array_get(res, k), "updatedAt"));
          if (!u || strcmp(u, last) != 0) break;
          ties++;
        }
        free(mark);
        mark = xstrdup(last);
      }
      if (mark)
        imp_commit_later(im, IMP_MSG, json_pack("{s:{s:{s:s, s:i}}}", "pagers", cls, "mark", mark, "ties", ties));
    }
    sync_free(s);
    if (n < 1000 || imp_src_is_dir(im->src)) break;
    /* rehosting runs behind the listing: keep it bounded */
    while (!im->stop && imp_net_pending(im->net) > 200) drive(im, 50);
  }
  free(mark);
}

static void one_installation(imp_t *im, json_t *o) {
  im->inst++;
  if (im->mode == MODE_EXPORT) {
    imp_out_line(im, im->f_inst, o);
    return;
  }
  const char *why;
  json_t *rec = imp_rec_installation(o, &why);
  if (rec) imp_emit(im, rec);
  else imp_skip(im, "installation", json_string_value(json_object_get(o, "objectId")), why);
}

static void one_file(imp_t *im, json_t *o) {
  const char *id = json_string_value(json_object_get(o, "objectId"));
  if (im->mode == MODE_EXPORT) {
    imp_out_line(im, im->f_file, o);
    const char *url = json_string_value(json_object_get(o, "url"));
    if (im->rehost && id && url) imp_rehost_start(im, NULL, id, url, NULL, NULL, NULL, NULL);
    else im->files++;
    return;
  }
  const char *why;
  json_t *rec = imp_rec_file(o, &why);
  if (!rec) {
    imp_skip(im, "file", id, why);
    return;
  }
  if (im->rehost && im->mode == MODE_IMPORT) {
    if (!imp_rehosted(im, id, NULL))
      imp_rehost_start(im, NULL, id, json_string_value(json_object_get(rec, "url")),
                       json_string_value(json_object_get(rec, "name")),
                       json_string_value(json_object_get(rec, "mime_type")),
                       json_string_value(json_object_get(rec, "createdAt")), json_object_get(rec, "metaData"));
    else im->files++;
    json_decref(rec);
    return;
  }
  im->files++;
  imp_emit(im, rec);
}

static void conversations_phase(imp_t *im) {
  char *after = NULL;
  int first = 1;
  while (!im->stop) {
    sync_t *s = xcalloc(1, sizeof *s);
    imp_src_list(im->src, "_Conversation", 1, after, NULL, 0, first, sync_cb, s);
    if (!wait_for(im, &s->w)) break;
    if (!s->ans) {
      imp_fail(im, "listing _Conversation failed: %s", s->err);
      sync_free(s);
      break;
    }
    if (first && json_is_integer(json_object_get(s->ans, "count")))
      im->convs_total = (long)json_integer_value(json_object_get(s->ans, "count"));
    first = 0;
    json_t *res = json_object_get(s->ans, "results");
    size_t i, n = json_array_size(res);
    json_t *o;
    json_array_foreach(res, i, o) {
      while (!im->stop && im->active_jobs >= im->concurrency) drive(im, 50);
      if (im->stop) break;
      job_start(im, o);
    }
    const char *last = n ? json_string_value(json_object_get(json_array_get(res, n - 1), "objectId")) : NULL;
    free(after);
    after = last ? xstrdup(last) : NULL;
    sync_free(s);
    if (n < 1000 || !after || imp_src_is_dir(im->src)) break;
  }
  free(after);
  while (!im->stop && im->active_jobs > 0) drive(im, 50);
  if (!im->convs_total) im->convs_total = im->convs;
}

static void flag_done(page_t *p, void *arg) {
  (void)p;
  waiter_t *f = arg;
  if (f->abandoned) free(f);
  else f->done = 1;
}

/* After a completed run: the app's history over the window, for what the conversations'
 * own walks do not see again (new messages in known conversations, edits, recalls). */
static void app_walk_phase(imp_t *im) {
  int64_t edits_after = im->prev_started_ms - MARGIN_MS;
  int64_t ts = edits_after;
  if (im->recheck_days > 0 && now_ms() - (int64_t)im->recheck_days * 86400000 < ts)
    ts = now_ms() - (int64_t)im->recheck_days * 86400000;
  char *mid = NULL;
  while (!im->stop) {
    while (!im->stop && im->queued >= MAX_QUEUED) drive(im, 50);
    items_wait_t *s = xcalloc(1, sizeof *s);
    imp_src_app_history(im->src, ts, mid, HIST_LIMIT, items_cb, s);
    if (!wait_for(im, &s->w)) break;
    if (!s->items) {
      imp_fail(im, "reading the app's history (GET /1.2/rtm/messages) failed: %s", s->err);
      items_wait_free(s);
      break;
    }
    json_t *convs = json_object_get(imp_state_doc(im->st), "convs");
    json_t *cursors = json_object();
    imp_items_t *page = s->items;
    s->items = NULL;
    size_t n = page->n;
    page_t *pg = imp_page_new(im, page, NULL);
    for (size_t i = 0; i < n; i++) {
      const imp_item_t *it = &page->v[i];
      int64_t t = it->has_ts ? it->ts : 0;
      const char *m = it->mid.p;
      const char *cid = it->to.p ? it->to.p : it->conv_id.p;
      if (m && t >= ts) {
        ts = t;
        free(mid);
        mid = xstrdup(m);
      }
      json_t *st = cid ? json_object_get(convs, cid) : NULL;
      /* unknown conversations come with the next listing; walked ones are done already */
      if (!st || json_integer_value(json_object_get(st, "w")) != 1 || json_object_get(im->walked, cid)) continue;
      int64_t cts = json_integer_value(json_object_get(st, "ts"));
      const char *cmid = json_string_value(json_object_get(st, "mid"));
      json_t *cur = json_object_get(cursors, cid);
      if (cur)
        cts = json_integer_value(json_object_get(cur, "ts")), cmid = json_string_value(json_object_get(cur, "mid"));
      int after = t > cts || (t == cts && m && (!cmid || strcmp(m, cmid) != 0));
      int edited = it->patch_ts > edits_after;
      if (!after && !edited) continue;
      imp_page_add(pg, cid, it);
      if (after && m && t >= cts)
        json_object_set_new(cursors, cid, json_pack("{s:I, s:s}", "ts", (json_int_t)t, "mid", m));
    }
    waiter_t *f = xcalloc(1, sizeof *f);
    imp_page_start(pg, json_object_size(cursors) ? json_pack("{s:O}", "convs", cursors) : NULL, flag_done, f);
    int done = wait_for(im, f);
    if (done) free(f);
    json_decref(cursors);
    items_wait_free(s);
    if (n < HIST_LIMIT || !done) break;
  }
  free(mid);
}

/* ---------------------------------------------------------------- the command */

static int mkdirs(const char *d) { return mkdir(d, 0755) == 0 || errno == EEXIST ? 0 : -1; }

static FILE *out_open(imp_t *im, const char *name) {
  buf_t p = BUF_INIT;
  buf_printf(&p, "%s/%s", im->out_dir, name);
  FILE *f = fopen(buf_cstr(&p), "w");
  if (!f) imp_fail(im, "cannot write %s: %s", buf_cstr(&p), strerror(errno));
  buf_free(&p);
  return f;
}

static void summary(imp_t *im, int complete) {
  json_t *s = counts_json(im);
  json_object_set_new(s, "complete", json_boolean(complete));
  json_object_set(s, "skipped", im->skips);
  if (im->fatal[0]) json_object_set_new(s, "error", json_string(im->fatal));
  if (im->ad->a.json || im->mode == MODE_DRY) {
    char *t = json_dumps(s, JSON_COMPACT);
    fprintf(im->mode == MODE_DRY ? stderr : stdout, "%s\n", t);
    free(t);
  } else {
    progress(im, 1);
    printf("%s %s: %ld conversations, %ld messages, %ld installations, %ld files in %.1f s (%.0f messages/s)\n",
           im->mode == MODE_EXPORT ? "export" : "import", complete ? "complete" : "stopped", im->convs, im->msgs,
           im->inst, im->files, (double)(now_ms() - im->started_ms) / 1000.0,
           json_real_value(json_object_get(s, "messages_per_s")));
    if (im->mode == MODE_IMPORT) printf("target: %ld applied, %ld unchanged\n", im->applied, im->unchanged);
    size_t i;
    json_t *k;
    if (json_array_size(im->skips)) printf("skipped %zu:\n", json_array_size(im->skips));
    json_array_foreach(im->skips, i, k)
        printf("  %s %s: %s\n", json_string_value(json_object_get(k, "kind")),
               json_string_value(json_object_get(k, "id")), json_string_value(json_object_get(k, "reason")));
    if (im->fatal[0])
      fprintf(stderr, "tern admin: %s%s\n", im->fatal,
              im->mode == MODE_IMPORT && im->ad->a.state ? " (run again to resume)" : "");
  }
  json_decref(s);
}

static int run(admin_t *ad, int mode) {
  admin_args_t *a = &ad->a;
  if (!a->from && !a->from_dir) return admin_usage_error(ad, "give --from https://API_HOST or --from-dir DIR");
  if (a->from && a->from_dir) return admin_usage_error(ad, "--from and --from-dir exclude each other");
  if (mode == MODE_EXPORT && a->from_dir) return admin_usage_error(ad, "export reads from --from");
  if (mode == MODE_EXPORT && !a->to) return admin_usage_error(ad, "export needs --to DIR");
  imp_t im = {0};
  im.ad = ad;
  im.mode = mode == MODE_IMPORT && a->dry_run ? MODE_DRY : mode;
  im.concurrency = a->concurrency > 0 ? a->concurrency : 8;
  im.rehost = a->rehost_files;
  im.full = a->full;
  im.recheck_days = a->has_recheck_days ? a->recheck_days : 7;
  im.batch_bytes = 2u << 20;
  im.batch_lines = a->batch > 0 ? a->batch : 5000;
  im.skips = json_array();
  im.walked = json_object();
  im.fetched = json_object();
  im.started_ms = now_ms();
  im.tty = isatty(2) && mode != MODE_DRY;
  imp_net_opts_t no = {.rate = a->has_rate ? a->rate : 30,
                       .timeout_ms = a->timeout > 0 ? a->timeout * 1000 : 60000,
                       .stall_ms = a->timeout > 0 && a->timeout < 30 ? a->timeout * 1000 : 30000,
                       .retry_for_ms = a->retry_for > 0 ? a->retry_for * 1000 : 600000,
                       .retries = a->has_retries ? a->retries : 10,
                       .insecure = a->insecure,
                       .cacert = a->cacert,
                       .max_backoff_ms = 30000};
  im.net = imp_net_new(&no);
  char err[600] = "";
  int rc = 0;
  if (im.mode == MODE_IMPORT) {
    size_t n = strlen(ad->server_url);
    while (n && ad->server_url[n - 1] == '/') n--;
    im.target_base = xstrndup(ad->server_url, n);
    im.target_headers = xstrdup(ad->headers);
  }
  imp_src_opts_t so = {.url = a->from,
                       .dir = a->from_dir,
                       .app_id = a->from_app_id ? a->from_app_id : ad->app_id,
                       .master_key = a->from_master_key,
                       .keep_json = mode == MODE_EXPORT};
  im.src = imp_src_new(&so, im.net, err, sizeof err);
  if (!im.src) {
    rc = admin_usage_error(ad, "%s", err);
    goto done;
  }
  if (imp_state_open(&im.st, im.mode == MODE_IMPORT ? a->state : NULL, err, sizeof err) < 0) {
    fprintf(stderr, "tern admin: %s\n", err);
    rc = 1;
    goto done;
  }
  if (im.mode == MODE_EXPORT) {
    im.out_dir = xstrdup(a->to);
    buf_t m = BUF_INIT;
    buf_printf(&m, "%s/messages", a->to);
    buf_t f = BUF_INIT;
    buf_printf(&f, "%s/files", a->to);
    if (mkdirs(a->to) < 0 || mkdirs(buf_cstr(&m)) < 0 || (im.rehost && mkdirs(buf_cstr(&f)) < 0)) {
      fprintf(stderr, "tern admin: cannot create %s: %s\n", a->to, strerror(errno));
      buf_free(&m);
      buf_free(&f);
      rc = 1;
      goto done;
    }
    /* a fresh pull: history files are appended page by page, so old ones go first */
    DIR *md = opendir(buf_cstr(&m));
    struct dirent *e;
    while (md && (e = readdir(md))) {
      size_t k = strlen(e->d_name);
      if (k > 6 && strcmp(e->d_name + k - 6, ".jsonl") == 0) {
        buf_t x = BUF_INIT;
        buf_printf(&x, "%s/%s", buf_cstr(&m), e->d_name);
        unlink(buf_cstr(&x));
        buf_free(&x);
      }
    }
    if (md) closedir(md);
    buf_free(&m);
    buf_free(&f);
    im.f_conv = out_open(&im, "_Conversation.jsonl");
    im.f_extras = out_open(&im, "_ConversationExtras.jsonl");
    im.f_inst = out_open(&im, "_Installation.jsonl");
    im.f_file = out_open(&im, "_File.jsonl");
  }
  json_t *doc = imp_state_doc(im.st);
  const char *src_name = a->from ? a->from : a->from_dir;
  const char *had = json_string_value(json_object_get(doc, "source"));
  if (had && strcmp(had, src_name) != 0)
    fprintf(stderr, "tern admin: note: the state file was written for %s, now reading %s\n", had, src_name);
  json_t *runs = json_object_get(doc, "runs");
  im.prev_started_ms = json_integer_value(json_object_get(runs, "completed_started"));
  if (im.mode != MODE_EXPORT)
    imp_state_commit(im.st,
                     json_pack("{s:s, s:{s:I}}", "source", src_name, "runs", "started", (json_int_t)im.started_ms));

  struct sigaction sa = {0}, old_int, old_term;
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  if (im.rehost && im.mode == MODE_DRY) fprintf(stderr, "tern admin: --dry-run does not rehost files: URLs are kept\n");
  class_phase(&im, "_File", &im.files_total, one_file);
  while (!im.stop && imp_net_pending(im.net) > 0) drive(&im, 50); /* rehosted before messages refer to them */
  if (!im.stop) class_phase(&im, "_Installation", &im.inst_total, one_installation);
  if (!im.stop) conversations_phase(&im);
  if (!im.stop && im.prev_started_ms && im.mode == MODE_IMPORT && !imp_src_is_dir(im.src)) app_walk_phase(&im);
  /* what is gathered goes out (also when stopping: a body already built costs nothing) */
  if (!im.fatal[0] || strcmp(im.fatal, "interrupted") == 0) seal(&im);
  /* the last bodies: each request gives up within its retry budget, this only bounds the wait */
  int64_t deadline = now_ms() + (int64_t)no.retry_for_ms + no.timeout_ms;
  while ((im.head || im.posting) && !im.fatal[0] && now_ms() < deadline) drive(&im, 50);
  if (im.stop && im.posting) /* interrupted: let the bodies on the wire be answered */
    while (im.posting && now_ms() < deadline && interrupted < 2) {
      imp_net_step(im.net, 50);
    }
  while (!im.stop && imp_net_pending(im.net) > 0) drive(&im, 50);
  /* whatever is still queued or in flight (a stopped run) is answered "cancelled", so each
   * job, page and rehost ends through its own callback */
  imp_net_cancel(im.net);
  int complete = !im.stop && !im.head && !im.posting;
  if (complete && im.mode == MODE_IMPORT)
    imp_state_commit(im.st, json_pack("{s:{s:I, s:I}}", "runs", "completed_started", (json_int_t)im.started_ms,
                                      "completed", (json_int_t)now_ms()));
  if (im.mode == MODE_IMPORT && imp_state_snapshot(im.st) < 0) complete = 0;
  if (im.mode == MODE_EXPORT && complete) {
    FILE *mf = out_open(&im, "manifest.json");
    if (mf) {
      json_t *man = json_pack("{s:s, s:I, s:b, s:i, s:i, s:i, s:i}", "source", a->from, "exported_at",
                              (json_int_t)now_ms(), "complete", 1, "conversations", (int)im.convs, "messages",
                              (int)im.msgs, "installations", (int)im.inst, "files", (int)im.files);
      imp_out_line(&im, mf, man);
      json_decref(man);
      fclose(mf);
    }
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  summary(&im, complete);
  rc = complete && json_array_size(im.skips) == 0 ? 0 : 1;
done:
  while (im.head) {
    batch_t *b = im.head;
    im.head = b->next;
    batch_free(b);
  }
  for (int k = 0; k < 2; k++)
    if (im.open[k]) batch_free(im.open[k]);
  while (im.stalled) {
    job_t *j = im.stalled;
    im.stalled = j->next_stalled;
    job_end(j);
  }
  if (im.f_conv) fclose(im.f_conv);
  if (im.f_extras) fclose(im.f_extras);
  if (im.f_inst) fclose(im.f_inst);
  if (im.f_file) fclose(im.f_file);
  imp_net_free(im.net);
  imp_src_free(im.src);
  imp_state_free(im.st);
  json_decref(im.skips);
  json_decref(im.walked);
  json_decref(im.fetched);
  free(im.target_base);
  free(im.target_headers);
  free(im.out_dir);
  return rc;
}

int admin_import_leancloud(admin_t *ad) { return run(ad, MODE_IMPORT); }
int admin_export_leancloud(admin_t *ad) { return run(ad, MODE_EXPORT); }
