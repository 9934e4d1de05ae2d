/* im_conv_attr.c — conversation attributes: update and mute (protocol.md §3.14).
 *
 * Updates are read-modify-write on the conversation's JSON document. The document is
 * cached in the conversation (loaded once, under conv->mu) and every change is applied to
 * the cache and queued for storage under that lock, so two members updating different
 * keys at the same moment never overwrite each other — the seed guide's warning about
 * untouched attributes surviving an update holds server-side too. */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hooks.h"
#include "im_internal.h"
#include "log.h"
#include "timeutil.h"

/* Top-level fields only the server writes (members change through add/remove, mu through
 * mute/unmute). */
static const char *const server_keys[] = {"objectId", "createdAt", "updatedAt", "m", "c", "lm", "tr", "sys",
                                          "unique", "uniqueId", "mu", "temp", "ttl", "conv_type", NULL};

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
  free(u->j.doc);
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
  if (store_conv_doc(w->reader, c->id, &text) < 0) return NULL;
  json_t *doc = json_loads(text, 0, NULL);
  free(text);
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  c->doc = doc;
  return doc;
}

/* Walks (creating objects) to the parent of the last segment of a dotted path. */
static json_t *walk(json_t *root, const char *path, const char **last, int create) {
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
      if (!create) return NULL;
      next = json_object();
      json_object_set_new(cur, name, next);
    }
    cur = next;
  }
  if (!*seg) return NULL;
  *last = seg;
  return cur;
}

static int contains(json_t *arr, json_t *v) {
  size_t i;
  json_t *x;
  json_array_foreach(arr, i, x) if (json_equal(x, v)) return 1;
  return 0;
}

/* Applies one key of an update: a plain value sets it, {"__op": …} runs a storage operator.
 * The resulting value (null when deleted) is recorded in `modified` at the same path. */
static int apply(json_t *doc, const char *key, json_t *val, json_t *modified, char *err, size_t errlen) {
  for (int i = 0; server_keys[i]; i++) {
    size_t n = strlen(server_keys[i]);
    if (strncmp(key, server_keys[i], n) == 0 && (key[n] == 0 || key[n] == '.')) {
      snprintf(err, errlen, "%s is maintained by the server", server_keys[i]);
      return TERN_EINVAL;
    }
  }
  const char *last;
  json_t *parent = walk(doc, key, &last, 1);
  if (!parent) {
    snprintf(err, errlen, "bad key \"%.60s\"", key);
    return TERN_EINVAL;
  }
  json_t *result = NULL;
  const char *op = json_string_value(json_object_get(val, "__op"));
  if (!op) {
    json_object_set(parent, last, val);
    result = json_incref(val);
  } else if (strcmp(op, "Delete") == 0) {
    json_object_del(parent, last);
    result = json_null();
  } else if (!strcmp(op, "Add") || !strcmp(op, "AddUnique") || !strcmp(op, "Remove")) {
    json_t *objects = json_object_get(val, "objects");
    json_t *arr = json_object_get(parent, last);
    if (!json_is_array(objects) || (arr && !json_is_array(arr))) {
      snprintf(err, errlen, "%s needs an array field and an objects array", op);
      return TERN_EINVAL;
    }
    json_t *out = arr ? json_copy(arr) : json_array();
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
    json_object_set(parent, last, out);
    result = out;
  } else if (strcmp(op, "Increment") == 0) {
    json_t *amount = json_object_get(val, "amount"), *cur = json_object_get(parent, last);
    if (!json_is_number(amount) || (cur && !json_is_number(cur))) {
      snprintf(err, errlen, "Increment needs a numeric field and amount");
      return TERN_EINVAL;
    }
    if (json_is_integer(amount) && (!cur || json_is_integer(cur)))
      result = json_integer((cur ? json_integer_value(cur) : 0) + json_integer_value(amount));
    else
      result = json_real((cur ? json_number_value(cur) : 0) + json_number_value(amount));
    json_object_set(parent, last, result);
  } else {
    snprintf(err, errlen, "unknown operator %.40s", op);
    return TERN_EINVAL;
  }
  const char *mlast;
  json_t *mparent = walk(modified, key, &mlast, 1);
  if (mparent) json_object_set(mparent, mlast, result);
  json_decref(result);
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
  push_t *p = push_new(&out);
  if (u->conv->kind == CONV_ROOM) {
    push_to_room(w, p, u->conv, u->skip);
  } else {
    members_t *m = conv_members(u->conv);
    if (m) {
      push_to_clients(w, p, m->ids, m->n, u->skip);
      notif_record(w, &out, m->ids, m->n);
    }
    members_release(m);
  }
  push_release(p);
}

static void update_done(task_t *t) {
  update_job_t *u = (update_job_t *)t;
  im_worker_t *w = u->im->workers[worker_current()];
  if (u->j.job.result < 0) {
    convcache_drop(u->im, u->conv); /* the cached document ran ahead of storage */
    reply_error_async(w, &u->rt, LC_CONVERSATION_UPDATE_FAILED, "storage failed");
    im_done(w, &u->done, LC_CONVERSATION_UPDATE_FAILED, NULL);
  } else {
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

/* Applies `edit` to the document under c->mu and queues the write; errors go back through
 * u->rt (this also runs after a hook answered, when the request is long gone). */
static void apply_update(im_worker_t *w, update_job_t *u, int (*edit)(json_t *doc, update_job_t *u, void *arg,
                                                                     char *err, size_t errlen),
                         void *arg) {
  conv_t *c = u->conv;
  char err[200] = "";
  pthread_mutex_lock(&c->mu);
  json_t *doc = conv_doc(w, c);
  json_t *draft = doc ? json_deep_copy(doc) : NULL;
  int rc = draft ? edit(draft, u, arg, err, sizeof err) : TERN_ESTORE;
  if (rc < 0) {
    pthread_mutex_unlock(&c->mu);
    json_decref(draft);
    int code = rc == TERN_ESTORE ? LC_CONVERSATION_INTERNAL_ERROR : LC_CONVERSATION_UPDATE_FAILED;
    reply_error_async(w, &u->rt, code, err);
    json_t *why = json_pack("{s:s}", "error", err);
    im_done(w, &u->done, code, why);
    json_decref(why);
    update_job_free(u);
    return;
  }
  json_decref(c->doc);
  c->doc = draft;
  u->j.doc = json_dumps(draft, JSON_COMPACT);
  u->j.updated_at = conv_touch(c);
  u->j.conv = c->id;
  u->j.job.type = JOB_CONV_UPDATE;
  u->j.job.worker = w->idx;
  u->j.job.task.fn = update_done;
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

static int edit_attr(json_t *doc, update_job_t *u, void *arg, char *err, size_t errlen) {
  json_t *attr = arg, *modified = json_object();
  const char *key;
  json_t *val;
  json_object_foreach(attr, key, val) {
    int rc = apply(doc, key, val, modified, err, errlen);
    if (rc < 0) {
      json_decref(modified);
      return rc;
    }
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

static int edit_attr(json_t *doc, update_job_t *u, void *arg, char *err, size_t errlen);
static int edit_mute(json_t *doc, update_job_t *u, void *arg, char *err, size_t errlen);
static void apply_update(im_worker_t *w, update_job_t *u, int (*edit)(json_t *, update_job_t *, void *, char *, size_t),
                         void *arg);

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
  hook_call(r->w, HOOK_CONVERSATION_UPDATE, p, update_hook_done, h);
}

void im_conv_update(req_t *r) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv(r, in ? in->cid : NULL, LC_CONVERSATION_NOT_FOUND);
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
  json_t *attr = in->attr && in->attr->data ? json_loads(in->attr->data, JSON_REJECT_DUPLICATES, NULL) : NULL;
  if (!json_is_object(attr)) {
    json_decref(attr);
    reply_error(r, LC_CONVERSATION_UPDATE_FAILED, "attr must be a JSON object");
    conv_release(c);
    return;
  }
  update_job_t *u = update_job_new(r, c);
  u->attr = xstrdup(in->attr->data);
  if (hook_enabled(r->w->im->hooks, HOOK_CONVERSATION_UPDATE)) update_hook(r, u, attr, 0);
  else apply_update(r->w, u, edit_attr, attr);
  json_decref(attr);
}

static int edit_mute(json_t *doc, update_job_t *u, void *arg, char *err, size_t errlen) {
  int mute = *(int *)arg;
  json_t *mu = json_object_get(doc, "mu");
  json_t *out = json_is_array(mu) ? json_copy(mu) : json_array();
  json_t *self = json_string(u->initby);
  for (size_t k = json_array_size(out); k-- > 0;)
    if (json_equal(json_array_get(out, k), self)) json_array_remove(out, k);
  if (mute) json_array_append(out, self);
  json_decref(self);
  json_object_set_new(doc, "mu", out);
  return 0;
}

void im_conv_mute(req_t *r, int mute) {
  Lc__ConvCommand *in = r->cmd->convmessage;
  conv_t *c = need_conv(r, in ? in->cid : NULL, LC_CONVERSATION_NOT_FOUND);
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
  if (hook_enabled(r->w->im->hooks, HOOK_CONVERSATION_UPDATE)) update_hook(r, update_job_new(r, c), NULL, mute);
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

static int edit_mutes(json_t *doc, update_job_t *u, void *arg, char *err, size_t errlen) {
  mutes_arg_t *a = arg;
  json_t *mu = json_object_get(doc, "mu");
  json_t *out = json_is_array(mu) ? json_copy(mu) : json_array();
  for (size_t i = 0; i < a->n; i++) {
    json_t *id = json_string(a->ids[i]);
    for (size_t k = json_array_size(out); k-- > 0;)
      if (json_equal(json_array_get(out, k), id)) json_array_remove(out, k);
    if (a->mute) json_array_append(out, id);
    json_decref(id);
  }
  json_object_set_new(doc, "mu", out);
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
