/* im_conv_attr.c — conversation attributes: update and mute (protocol.md §3.14).
 *
 * Updates are read-modify-write on the conversation's JSON document. The document is
 * cached in the conversation (loaded once, under conv->mu) and every change is applied to
 * the cache and queued for storage under that lock, so two members updating different
 * keys at the same moment never overwrite each other — the seed guide's warning about
 * untouched attributes surviving an update holds server-side too.
 *
 * An update costs what it changes, not what the document holds: it edits the cache in
 * place (an undo log takes a refused update back), keeps the document's size by
 * difference, and queues only the changed paths (key segments, store.h doc_change_t) with
 * their new values, which the backend applies in place (SQLite: json_set / json_remove). (It used to copy the whole document, and put a
 * serialised copy in every queued job: 300 tiny updates of a 7.8 MB document took the
 * server to 2.4 GB.) Documents are held to max_conv_doc bytes and JSON_MAX_DEPTH levels;
 * one over them (stored by an older build) takes only Deletes until it fits. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "im_internal.h"
#include "jsonlim.h"
#include "log.h"
#include "timeutil.h"

/* Top-level fields only the server writes (members change through add/remove, mu through
 * mute/unmute). */
static const char *const server_keys[] = {"objectId", "createdAt", "updatedAt", "m",    "c",   "lm",        "tr", "sys",
                                          "unique",   "uniqueId",  "mu",        "temp", "ttl", "conv_type", NULL};

typedef struct {
  job_conv_update_t j;
  im_t *im;
  reply_to_t rt;
  conv_t *conv;
  char *initby;
  char *attr;          /* the request's attr JSON, echoed to the other members */
  char *attr_modified; /* resulting values of the touched keys, nested by path */
  uint64_t skip;
  im_done_t done;
} update_job_t;

static void update_job_free(update_job_t *u) {
  doc_changes_free(u->j.changes, u->j.n);
  free(u->initby);
  free(u->attr);
  free(u->attr_modified);
  reply_to_free(&u->rt);
  conv_release(u->conv);
  free(u);
}

/* The cached document, loaded on first use. Call with c->mu held. */
static json_t *conv_doc(im_worker_t *w, conv_t *c) {
  if (c->doc) return c->doc;
  char *text = NULL;
  if (im_cmd_doc(w, c, &text) == 1 && store_conv_doc(w->reader, c->id, &text) < 0)
    return NULL; /* read ahead for a conv/update, off the loop (im_prefetch_cmd) */
  size_t len = text ? strlen(text) : 0;
  json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL; /* uncapped: older builds stored deeper */
  c->doc_deep = text && json_text_depth(text, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH;
  free(text);
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
    len = 2;
  }
  c->doc = doc;
  c->doc_bytes = len;
  return doc;
}

/* ---- in-place edits with an undo log ---------------------------------------------------- */

typedef struct {
  json_t *parent; /* referenced */
  char *key;
  json_t *old; /* referenced; NULL: the key was absent */
} undo_t;

typedef struct {
  json_t *doc;
  size_t bytes; /* the document's size as the edit goes */
  int whole;    /* store the whole document instead of paths (see edit_changes) */
  int changed;
  undo_t *undo;
  size_t nundo, capundo;
  doc_change_t *ch;
  size_t nch, capch;
} edit_t;

/* Bytes `"key":value,` adds to its object (the comma is an estimate's: ±1 per object). */
static size_t member_size(const char *key, const json_t *v) {
  if (!v) return 0;
  json_t *k = json_string(key);
  size_t n = k ? json_compact_size(k) : strlen(key) + 2;
  json_decref(k);
  return n + 1 + json_compact_size(v) + 1;
}

/* Sets parent[key] = v (NULL: deletes it), recording how to undo it and, unless the
 * whole document is to be stored, the change at path[0..depth) (parent's path, then key)
 * for the writer. Steals v. */
static void edit_set(edit_t *e, json_t *parent, const char *key, json_t *v, char (*path)[256], size_t depth) {
  json_t *old = json_object_get(parent, key);
  if ((!old && !v) || (old && v && json_equal(old, v))) {
    json_decref(v);
    return;
  }
  if (e->nundo == e->capundo) {
    e->capundo = e->capundo ? 2 * e->capundo : 4;
    e->undo = xrealloc(e->undo, e->capundo * sizeof *e->undo);
  }
  e->undo[e->nundo++] = (undo_t){json_incref(parent), xstrdup(key), json_incref(old)};
  e->bytes = e->bytes - member_size(key, old) + member_size(key, v);
  e->changed = 1;
  if (!e->whole) {
    if (e->nch == e->capch) {
      e->capch = e->capch ? 2 * e->capch : 4;
      e->ch = xrealloc(e->ch, e->capch * sizeof *e->ch);
    }
    doc_change_t *ch = &e->ch[e->nch++];
    *ch = (doc_change_t){v ? DOC_SET : DOC_UNSET, xcalloc(depth, sizeof *ch->path), depth,
                         v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL};
    for (size_t i = 0; i < depth; i++) ch->path[i] = xstrdup(path[i]);
  }
  if (v) json_object_set_new(parent, key, v);
  else json_object_del(parent, key);
}

/* Takes every recorded edit back, newest first. */
static void edit_undo(edit_t *e) {
  for (size_t i = e->nundo; i-- > 0;) {
    undo_t *x = &e->undo[i];
    if (x->old) json_object_set(x->parent, x->key, x->old);
    else json_object_del(x->parent, x->key);
  }
}

static void edit_free(edit_t *e) {
  for (size_t i = 0; i < e->nundo; i++) {
    json_decref(e->undo[i].parent);
    free(e->undo[i].key);
    json_decref(e->undo[i].old);
  }
  free(e->undo);
  doc_changes_free(e->ch, e->nch);
}

/* The changes for the job: the paths, or the whole document when the stored one is deeper
 * than JSON_MAX_DEPTH (a backend may not be able to parse it, SQLite's JSON1 cannot). */
static void edit_changes(edit_t *e, job_conv_update_t *j) {
  if (e->whole && e->changed) {
    doc_changes_free(e->ch, e->nch);
    e->ch = xcalloc(1, sizeof *e->ch);
    e->ch[0] = (doc_change_t){DOC_REPLACE, NULL, 0, json_dumps(e->doc, JSON_COMPACT)};
    e->nch = 1;
  }
  j->changes = e->ch;
  j->n = e->nch;
  e->ch = NULL;
  e->nch = 0;
}

static int contains(json_t *arr, json_t *v) {
  size_t i;
  json_t *x;
  json_array_foreach(arr, i, x) if (json_equal(x, v)) return 1;
  return 0;
}

/* Walks (creating objects) to the parent of the last segment of a dotted path; for the
 * attrModified echo, a small document of its own. */
static json_t *walk(json_t *root, const char *path, const char **last) {
  json_t *cur = root;
  const char *seg = path;
  for (const char *dot; (dot = strchr(seg, '.')); seg = dot + 1) {
    char name[256];
    size_t n = (size_t)(dot - seg);
    if (n == 0 || n >= sizeof name) return NULL;
    memcpy(name, seg, n);
    name[n] = 0;
    json_t *next = json_object_get(cur, name);
    if (!json_is_object(next)) {
      next = json_object();
      json_object_set_new(cur, name, next);
    }
    cur = next;
  }
  if (!*seg) return NULL;
  *last = seg;
  return cur;
}

#define MAX_SEGS 64

/* The value an operator leaves at a place that holds `cur` (NULL: nothing), as a new
 * reference, or NULL for Delete; TERN_EINVAL in *rc with err set for a bad operator. */
static json_t *op_result(json_t *val, json_t *cur, int *rc, char *err, size_t errlen) {
  *rc = 0;
  const char *op = json_string_value(json_object_get(val, "__op"));
  if (!op) return json_incref(val);
  if (strcmp(op, "Delete") == 0) return NULL;
  if (!strcmp(op, "Add") || !strcmp(op, "AddUnique") || !strcmp(op, "Remove")) {
    json_t *objects = json_object_get(val, "objects");
    if (!json_is_array(objects) || (cur && !json_is_array(cur))) {
      snprintf(err, errlen, "%s needs an array field and an objects array", op);
      *rc = TERN_EINVAL;
      return NULL;
    }
    json_t *out = cur ? json_copy(cur) : json_array();
    size_t i;
    json_t *o;
    json_array_foreach(objects, i, o) {
      if (!strcmp(op, "Add") || (!strcmp(op, "AddUnique") && !contains(out, o))) {
        json_array_append(out, o);
      } else if (!strcmp(op, "Remove")) {
        for (size_t k = json_array_size(out); k-- > 0;)
          if (json_equal(json_array_get(out, k), o)) json_array_remove(out, k);
      }
    }
    return out;
  }
  if (strcmp(op, "Increment") == 0) {
    json_t *amount = json_object_get(val, "amount");
    if (!json_is_number(amount) || (cur && !json_is_number(cur))) {
      snprintf(err, errlen, "Increment needs a numeric field and amount");
      *rc = TERN_EINVAL;
      return NULL;
    }
    if (json_is_integer(amount) && (!cur || json_is_integer(cur)))
      return json_integer((cur ? json_integer_value(cur) : 0) + json_integer_value(amount));
    return json_real((cur ? json_number_value(cur) : 0) + json_number_value(amount));
  }
  snprintf(err, errlen, "unknown operator %.40s", op);
  *rc = TERN_EINVAL;
  return NULL;
}

static int is_delete(json_t *val) {
  const char *op = json_string_value(json_object_get(val, "__op"));
  return op && strcmp(op, "Delete") == 0;
}

/* Applies one key of an update: a plain value sets it, {"__op": …} runs a storage operator.
 * The resulting value (null when deleted) is recorded in `modified` at the same path. The
 * edit touches only the path: intermediate objects are made where missing (replacing a
 * non-object), and the writer gets the topmost place that changed. */
static int apply(edit_t *e, const char *key, json_t *val, json_t *modified, char *err, size_t errlen) {
  for (int i = 0; server_keys[i]; i++) {
    size_t n = strlen(server_keys[i]);
    if (strncmp(key, server_keys[i], n) == 0 && (key[n] == 0 || key[n] == '.')) {
      snprintf(err, errlen, "%s is maintained by the server", server_keys[i]);
      return TERN_EINVAL;
    }
  }
  char names[MAX_SEGS][256];
  size_t nseg = 0;
  for (const char *seg = key;; nseg++) {
    size_t n = strcspn(seg, ".");
    if (nseg == MAX_SEGS) {
      snprintf(err, errlen, "key \"%.60s…\" nests deeper than %d levels", key, JSON_MAX_DEPTH);
      return TERN_EINVAL;
    }
    if (n == 0 || n >= sizeof names[0]) {
      snprintf(err, errlen, "bad key \"%.60s\"", key);
      return TERN_EINVAL;
    }
    memcpy(names[nseg], seg, n);
    names[nseg][n] = 0;
    seg += n;
    if (!*seg++) {
      nseg++;
      break;
    }
  }
  if (!is_delete(val) && (int)nseg + json_value_depth(val, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
    snprintf(err, errlen, "attr nested deeper than %d levels", JSON_MAX_DEPTH);
    return TERN_EINVAL;
  }
  /* follow the objects that exist; stop where the path leaves them: the change is at
   * names[0..i] */
  json_t *cur = e->doc;
  size_t i = 0;
  for (; i + 1 < nseg; i++) {
    json_t *next = json_object_get(cur, names[i]);
    if (!json_is_object(next)) break;
    cur = next;
  }
  int rc;
  json_t *result;
  if (i + 1 < nseg) { /* names[i] is missing or no object: a new branch replaces it */
    result = op_result(val, NULL, &rc, err, errlen);
    if (rc == 0 && result) {
      json_t *top = json_object(), *t = top;
      for (size_t k = i + 1; k + 1 < nseg; k++) {
        json_t *child = json_object();
        json_object_set_new(t, names[k], child);
        t = child;
      }
      json_object_set(t, names[nseg - 1], result);
      edit_set(e, cur, names[i], top, names, i + 1);
    }
  } else {
    result = op_result(val, json_object_get(cur, names[i]), &rc, err, errlen);
    if (rc == 0) edit_set(e, cur, names[i], json_incref(result), names, i + 1);
  }
  if (rc < 0) return rc;
  const char *mlast;
  json_t *mparent = walk(modified, key, &mlast);
  if (mparent) json_object_set_new(mparent, mlast, result ? result : json_null());
  else json_decref(result);
  return 0;
}

static void send_updated(im_worker_t *w, update_job_t *u) {
  char iso[ISO_LEN + 1];
  iso_format(u->j.updated_at, iso);
  lc_cmd_t out = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage mod = LC__JSON_OBJECT_MESSAGE__INIT, attr = LC__JSON_OBJECT_MESSAGE__INIT;
  PB_SET(out, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(out, op, LC__OP_TYPE__updated);
  out.convmessage = &cm;
  cm.cid = u->conv->cid;
  cm.udate = iso;
  if (u->attr_modified) {
    mod.data = u->attr_modified;
    cm.attrmodified = &mod;
  }
  reply_async(w, &u->rt, &out);
  if (!u->attr) return; /* mute/unmute concern only the requester */
  /* everyone else, and the updater's other devices: attr as sent, attrModified, initBy */
  out.i = 0;
  out.has_i = 0;
  out.peerid = NULL;
  PB_SET(out, service, 2);
  PB_SET(out, serverts, now_ms());
  PB_SET(out, notificationtype, 1);
  attr.data = u->attr;
  cm.attr = &attr;
  cm.initby = u->initby;
  fanout_t *p = fanout_new(&out);
  if (u->conv->kind == CONV_ROOM) {
    fanout_to_room(w, p, u->conv, u->skip);
  } else {
    members_t *m = conv_members(u->conv);
    if (m) {
      fanout_to_clients(w, p, m->ids, m->n, u->skip);
      notif_record(w, &out, m->ids, m->n);
    }
    members_release(m);
  }
  fanout_release(p);
}

static void update_done(task_t *t) {
  update_job_t *u = (update_job_t *)t;
  im_worker_t *w = u->im->workers[worker_current()];
  conv_t *c = u->conv;
  pthread_mutex_lock(&c->mu);
  if (!--c->doc_writes && c->doc_stale) { /* a reload kept it for these: the store has them now */
    json_decref(c->doc);
    c->doc = NULL;
    c->doc_stale = 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (u->j.job.result < 0) {
    convcache_drop(u->im, u->conv); /* the cached document ran ahead of storage */
    reply_error_async(w, &u->rt, LC_CONVERSATION_UPDATE_FAILED, "storage failed");
    im_done(w, &u->done, LC_CONVERSATION_UPDATE_FAILED, NULL);
  } else {
    im_conv_changed(w, u->conv->cid); /* other nodes reload it */
    send_updated(w, u);
    json_t *res = json_pack("{s:I}", "updated_at", (json_int_t)u->j.updated_at);
    im_done(w, &u->done, 0, res);
    json_decref(res);
  }
  update_job_free(u);
}

/* Membership as the update rules see it: members of normal conversations, and for chat
 * rooms whoever is in the room now or created it. */
static int may_update(req_t *r, conv_t *c) {
  if (c->kind == CONV_ROOM) return r->s->room == c || (c->creator && strcmp(c->creator, r->s->client_id) == 0);
  members_t *m = conv_members(c);
  int yes = members_has(m, r->s->client_id);
  members_release(m);
  return yes;
}

typedef int (*edit_fn)(edit_t *e, conv_t *c, update_job_t *u, void *arg, char *err, size_t errlen);

/* Applies `edit` to the document under c->mu and queues the write; errors go back through
 * u->rt (this also runs after a hook answered, when the request is long gone). */
static void apply_update(im_worker_t *w, update_job_t *u, edit_fn edit, void *arg) {
  conv_t *c = u->conv;
  char err[200] = "";
  pthread_mutex_lock(&c->mu);
  json_t *doc = conv_doc(w, c);
  edit_t e = {.doc = doc, .bytes = c->doc_bytes, .whole = c->doc_deep};
  int rc = doc ? edit(&e, c, u, arg, err, sizeof err) : TERN_ESTORE;
  if (rc < 0) {
    edit_undo(&e);
    edit_free(&e);
    pthread_mutex_unlock(&c->mu);
    int code = rc == TERN_ESTORE ? LC_CONVERSATION_INTERNAL_ERROR : LC_CONVERSATION_UPDATE_FAILED;
    reply_error_async(w, &u->rt, code, err);
    json_t *why = json_pack("{s:s}", "error", err);
    im_done(w, &u->done, code, why);
    json_decref(why);
    update_job_free(u);
    return;
  }
  c->doc_bytes = e.bytes;
  if (c->doc_deep && e.changed) c->doc_deep = json_value_depth(doc, JSON_MAX_DEPTH) > JSON_MAX_DEPTH;
  edit_changes(&e, &u->j);
  edit_free(&e);
  u->j.updated_at = conv_touch(c);
  u->j.conv = c->id;
  u->j.job.type = JOB_CONV_UPDATE;
  u->j.job.worker = w->idx;
  u->j.job.task.fn = update_done;
  c->doc_writes++; /* the store's copy lacks this change until update_done */
  c->doc_gen++;
  store_submit(w->im->store, &u->j.job);
  pthread_mutex_unlock(&c->mu);
}

static update_job_t *update_job_new(req_t *r, conv_t *c) {
  update_job_t *u = xcalloc(1, sizeof *u);
  u->im = r->w->im;
  u->conv = c;
  u->initby = xstrdup(r->s->client_id);
  u->skip = r->s->id;
  reply_to_init(&u->rt, r);
  return u;
}

/* An attribute update. A document within the limits must stay within them; one over them
 * (stored by an older build) takes only Deletes, which cost the writer a rewrite each, so
 * that it can shrink but nobody can make its size work against the server. */
static int edit_attr(edit_t *e, conv_t *c, update_job_t *u, void *arg, char *err, size_t errlen) {
  json_t *attr = arg, *modified = json_object();
  const char *key;
  json_t *val;
  size_t cap = (size_t)u->im->cfg->max_conv_doc, before = e->bytes;
  if (c->doc_deep || before > cap) {
    json_object_foreach(attr, key, val) {
      if (!is_delete(val)) {
        snprintf(
            err, errlen,
            "the stored document exceeds the limits (max_conv_doc %zu bytes, %d levels): only Delete is accepted until it fits",
            cap, JSON_MAX_DEPTH);
        json_decref(modified);
        return TERN_EINVAL;
      }
    }
  }
  json_object_foreach(attr, key, val) {
    int rc = apply(e, key, val, modified, err, errlen);
    if (rc < 0) {
      json_decref(modified);
      return rc;
    }
  }
  if (e->bytes > cap && e->bytes > before) {
    snprintf(err, errlen, "the conversation document would exceed max_conv_doc (%zu bytes)", cap);
    json_decref(modified);
    return TERN_EINVAL;
  }
  u->attr_modified = json_dumps(modified, JSON_COMPACT);
  json_decref(modified);
  return 0;
}

/* _conversationUpdate (§8): before the change; it may reject, or rewrite attr (updates)
 * or mute (mute/unmute). The edit then runs with what the hook left. */
typedef struct {
  update_job_t *u;
  json_t *attr; /* update: the request's attr; NULL for mute */
  int mute;
} held_update_t;

static int edit_mute(edit_t *e, conv_t *c, update_job_t *u, void *arg, char *err, size_t errlen);

static void update_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  held_update_t *h = arg;
  if (failed || json_is_true(json_object_get(result, "reject"))) {
    reply_rejected_async(w, &h->u->rt, LC_CONVERSATION_REJECTED_BY_APP, failed ? NULL : result);
    update_job_free(h->u);
  } else if (h->attr) {
    json_t *attr = json_object_get(result, "attr");
    if (json_is_object(attr)) { /* the app rewrote the change: that is what members see */
      free(h->u->attr);
      h->u->attr = json_dumps(attr, JSON_COMPACT);
    } else {
      attr = h->attr;
    }
    apply_update(w, h->u, edit_attr, attr);
  } else {
    json_t *mute = json_object_get(result, "mute");
    int m = json_is_boolean(mute) ? json_is_true(mute) : h->mute;
    apply_update(w, h->u, edit_mute, &m);
  }
  json_decref(h->attr);
  free(h);
}

static void update_hook(req_t *r, update_job_t *u, json_t *attr, int mute) {
  held_update_t *h = xcalloc(1, sizeof *h);
  h->u = u;
  h->attr = attr ? json_incref(attr) : NULL;
  h->mute = mute;
  json_t *p = json_pack("{s:s, s:s}", "initBy", u->initby, "convId", u->conv->cid);
  if (attr) json_object_set(p, "attr", attr);
  else json_object_set_new(p, "mute", json_boolean(mute));
  im_hook_call(r->w, HOOK_CONVERSATION_UPDATE, p, update_hook_done, h);
}

void im_conv_update(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  if (c->kind == CONV_TEMP) {
    reply_error(r, LC_CONVERSATION_READ_ONLY, "temporary conversations cannot be updated");
    conv_release(c);
    return;
  }
  if (!may_update(r, c)) {
    reply_error(r, LC_CONVERSATION_UPDATE_REJECTED, "only members may update a conversation");
    conv_release(c);
    return;
  }
  json_error_t jerr = {.text = ""};
  json_t *attr = in->attr && in->attr->data ? json_loads_capped(in->attr->data, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  if (!json_is_object(attr)) {
    char detail[200];
    snprintf(detail, sizeof detail, "attr must be a JSON object%s%s", jerr.text[0] ? ": " : "", jerr.text);
    json_decref(attr);
    reply_error(r, LC_CONVERSATION_UPDATE_FAILED, detail);
    conv_release(c);
    return;
  }
  update_job_t *u = update_job_new(r, c);
  u->attr = xstrdup(in->attr->data);
  if (im_hook_enabled(r->w->im, HOOK_CONVERSATION_UPDATE)) update_hook(r, u, attr, 0);
  else apply_update(r->w, u, edit_attr, attr);
  json_decref(attr);
}

/* The `mu` list changes as a whole (it is bounded by the member count); mutes are the
 * server's own bookkeeping, so the document's size cap does not refuse them. */
static void set_mu(edit_t *e, json_t *out) {
  static char mu[1][256] = {"mu"};
  edit_set(e, e->doc, "mu", out, mu, 1);
}

static int edit_mute(edit_t *e, conv_t *c, update_job_t *u, void *arg, char *err, size_t errlen) {
  int mute = *(int *)arg;
  json_t *mu = json_object_get(e->doc, "mu");
  json_t *out = json_is_array(mu) ? json_copy(mu) : json_array();
  json_t *self = json_string(u->initby);
  for (size_t k = json_array_size(out); k-- > 0;)
    if (json_equal(json_array_get(out, k), self)) json_array_remove(out, k);
  if (mute) json_array_append(out, self);
  json_decref(self);
  set_mu(e, out);
  return 0;
}

void im_conv_mute(req_t *r, int mute) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv_in(r, in);
  if (!c) return;
  if (c->kind != CONV_NORMAL) { /* offline push only exists for normal conversations */
    reply_error(r, c->kind == CONV_TEMP ? LC_CONVERSATION_READ_ONLY : LC_NORMAL_CONVERSATION_REQUIRED, NULL);
    conv_release(c);
    return;
  }
  if (!may_update(r, c)) {
    reply_error(r, LC_CONVERSATION_UPDATE_REJECTED, "only members may mute a conversation");
    conv_release(c);
    return;
  }
  if (im_hook_enabled(r->w->im, HOOK_CONVERSATION_UPDATE)) update_hook(r, update_job_new(r, c), NULL, mute);
  else apply_update(r->w, update_job_new(r, c), edit_mute, &mute);
}

void conv_attr_apply(im_worker_t *w, conv_t *c, const char *initby, json_t *attr, int mute, const im_done_t *done) {
  update_job_t *u = xcalloc(1, sizeof *u);
  u->im = w->im;
  u->conv = c;
  u->initby = xstrdup(initby);
  if (done) u->done = *done;
  if (attr) {
    u->attr = json_dumps(attr, JSON_COMPACT);
    apply_update(w, u, edit_attr, attr);
  } else {
    apply_update(w, u, edit_mute, &mute);
  }
}

typedef struct {
  char *const *ids;
  size_t n;
  int mute;
} mutes_arg_t;

static int edit_mutes(edit_t *e, conv_t *c, update_job_t *u, void *arg, char *err, size_t errlen) {
  mutes_arg_t *a = arg;
  json_t *mu = json_object_get(e->doc, "mu");
  json_t *out = json_is_array(mu) ? json_copy(mu) : json_array();
  for (size_t i = 0; i < a->n; i++) {
    json_t *id = json_string(a->ids[i]);
    for (size_t k = json_array_size(out); k-- > 0;)
      if (json_equal(json_array_get(out, k), id)) json_array_remove(out, k);
    if (a->mute) json_array_append(out, id);
    json_decref(id);
  }
  set_mu(e, out);
  return 0;
}

void conv_mutes_apply(im_worker_t *w, conv_t *c, char *const *ids, size_t n, int mute, const im_done_t *done) {
  update_job_t *u = xcalloc(1, sizeof *u);
  u->im = w->im;
  u->conv = c;
  u->initby = xstrdup("");
  if (done) u->done = *done;
  mutes_arg_t a = {ids, n, mute};
  apply_update(w, u, edit_mutes, &a);
}
