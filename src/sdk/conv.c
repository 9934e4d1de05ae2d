/* conv.c — AVIMConversation: the local conversation objects and the member and attribute
 * operations (create, join/add, quit/remove, count, update, mute).
 *
 * A client keeps one object per conversation id for its whole life, updated in place by
 * replies, notifications and query results, so the pointers callbacks hand out stay valid
 * and always show the latest known state (the iOS SDK's conversation cache does the same).
 * Custom attributes live under the `attr` field, as the iOS/Swift SDKs store them; updates
 * use dotted paths ("attr.type") so that untouched attributes are kept. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "timeutil.h"

/* ---- string vectors ---- */

void strv_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

char **strv_dup(const char *const *v, size_t n) {
  char **out = calloc(n ? n : 1, sizeof *out);
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    out[i] = strdup(v[i] ? v[i] : "");
    if (!out[i]) {
      strv_free(out, i);
      return NULL;
    }
  }
  return out;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted copy without duplicates; returns the count, or TERN_ENOMEM. */
static long sorted_unique(char **in, size_t n, char ***out) {
  char **v = strv_dup((const char *const *)in, n);
  if (!v) return TERN_ENOMEM;
  qsort(v, n, sizeof *v, cmp_str);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (k && strcmp(v[k - 1], v[i]) == 0) {
      free(v[i]);
      continue;
    }
    v[k++] = v[i];
  }
  *out = v;
  return (long)k;
}

int str_sorted_ids(char **in, size_t n, char ***out) {
  char **v = strv_dup((const char *const *)in, n);
  if (!v) return TERN_ENOMEM;
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  return 0;
}

/* ---- objects ---- */

tern_conv_t *conv_get(tern_client_t *c, const char *cid, int create) {
  for (tern_conv_t *v = c->convs; v; v = v->next)
    if (strcmp(v->id, cid) == 0) return v;
  if (!create) return NULL;
  tern_conv_t *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  v->c = c;
  v->id = strdup(cid);
  v->attrs = json_object();
  if (!v->id || !v->attrs) {
    free(v->id);
    json_decref(v->attrs);
    free(v);
    return NULL;
  }
  v->next = c->convs;
  c->convs = v;
  return v;
}

static void scratch_clear(tern_conv_t *v) {
  while (v->scratch) {
    strlist_t *s = v->scratch;
    v->scratch = s->next;
    free(s->s);
    free(s);
  }
}

void conv_free(tern_conv_t *v) {
  free(v->id);
  free(v->name);
  free(v->creator);
  strv_free(v->members, v->nmembers);
  strv_free(v->mu, v->nmu);
  json_decref(v->attrs);
  free(v->attrs_s);
  scratch_clear(v);
  tern_msg_free(v->last);
  free(v);
}

/* Cached texts describe the old state once anything changed. */
void conv_changed(tern_conv_t *v) {
  free(v->attrs_s);
  v->attrs_s = NULL;
  scratch_clear(v);
}

tern_conv_t *tern_client_conv(tern_client_t *c, const char *conv_id) {
  return c && conv_id ? conv_get(c, conv_id, 0) : NULL;
}

const char *tern_conv_id(const tern_conv_t *v) { return v ? v->id : NULL; }
tern_client_t *tern_conv_client(const tern_conv_t *v) { return v ? v->c : NULL; }
const char *tern_conv_name(const tern_conv_t *v) { return v ? v->name : NULL; }
const char *tern_conv_creator(const tern_conv_t *v) { return v ? v->creator : NULL; }
const char *const *tern_conv_members(const tern_conv_t *v, size_t *n) {
  if (n) *n = v ? v->nmembers : 0;
  return v ? (const char *const *)v->members : NULL;
}
int tern_conv_is_transient(const tern_conv_t *v) { return v && v->transient; }
int tern_conv_is_unique(const tern_conv_t *v) { return v && v->unique; }
int tern_conv_is_muted(const tern_conv_t *v) {
  if (!v) return 0;
  for (size_t i = 0; i < v->nmu; i++)
    if (strcmp(v->mu[i], v->c->id) == 0) return 1;
  return 0;
}
int64_t tern_conv_created_at(const tern_conv_t *v) { return v ? v->created : 0; }
int64_t tern_conv_updated_at(const tern_conv_t *v) { return v ? v->updated : 0; }
int64_t tern_conv_last_message_at(const tern_conv_t *v) { return v ? v->lm : 0; }
int tern_conv_unread_count(const tern_conv_t *v) { return v ? v->unread : 0; }
const tern_msg_t *tern_conv_last_message(const tern_conv_t *v) { return v ? v->last : NULL; }

const char *tern_conv_attributes(const tern_conv_t *cv) {
  tern_conv_t *v = (tern_conv_t *)cv;
  if (!v) return NULL;
  if (!v->attrs_s) v->attrs_s = json_dumps(v->attrs, JSON_COMPACT | JSON_SORT_KEYS);
  return v->attrs_s ? v->attrs_s : "{}";
}

const char *tern_conv_attribute(const tern_conv_t *cv, const char *key) {
  tern_conv_t *v = (tern_conv_t *)cv;
  if (!v || !key) return NULL;
  json_t *x = json_object_get(v->attrs, key);
  if (!x) return NULL;
  char *text = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  if (!text) return NULL;
  for (strlist_t *s = v->scratch; s; s = s->next) /* asked before: the same text, no growth */
    if (strcmp(s->s, text) == 0) {
      free(text);
      return s->s;
    }
  strlist_t *s = calloc(1, sizeof *s);
  if (!s) {
    free(text);
    return NULL;
  }
  s->s = text;
  s->next = v->scratch;
  v->scratch = s;
  return s->s;
}

void conv_set_last(tern_conv_t *v, const tern_msg_t *m) {
  if (v->last && v->last->ts > m->ts) return;
  tern_msg_t *d = tern_msg_dup(m);
  if (!d) return;
  tern_msg_free(v->last);
  v->last = d;
  if (m->ts > v->lm) v->lm = m->ts;
}

void conv_set_members(tern_conv_t *v, char **ids, size_t n) {
  char **s = NULL;
  long k = sorted_unique(ids, n, &s);
  if (k < 0) return;
  strv_free(v->members, v->nmembers);
  v->members = s;
  v->nmembers = (size_t)k;
  conv_changed(v);
}

void conv_add_members_local(tern_conv_t *v, char **ids, size_t n) {
  size_t total = v->nmembers + n;
  char **all = calloc(total ? total : 1, sizeof *all);
  if (!all) return;
  for (size_t i = 0; i < v->nmembers; i++) all[i] = v->members[i];
  for (size_t i = 0; i < n; i++) all[v->nmembers + i] = ids[i];
  conv_set_members(v, all, total);
  free(all);
}

void conv_remove_members_local(tern_conv_t *v, char **ids, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < v->nmembers; i++) {
    int gone = 0;
    for (size_t j = 0; j < n; j++)
      if (strcmp(v->members[i], ids[j]) == 0) gone = 1;
    if (gone) free(v->members[i]);
    else v->members[k++] = v->members[i];
  }
  v->nmembers = k;
  conv_changed(v);
}

static void set_mu(tern_conv_t *v, const char *id, int on) {
  size_t k = 0;
  int found = 0;
  for (size_t i = 0; i < v->nmu; i++) {
    if (strcmp(v->mu[i], id) == 0) {
      found = 1;
      if (!on) {
        free(v->mu[i]);
        continue;
      }
    }
    v->mu[k++] = v->mu[i];
  }
  v->nmu = k;
  if (on && !found) {
    char **n = realloc(v->mu, (v->nmu + 1) * sizeof *n);
    if (!n) return;
    v->mu = n;
    v->mu[v->nmu] = strdup(id);
    if (v->mu[v->nmu]) v->nmu++;
  }
}

static int64_t json_date(json_t *x) {
  int64_t ms = 0;
  if (json_is_string(x)) iso_parse(json_string_value(x), &ms);
  else if (json_is_object(x)) {
    json_t *iso = json_object_get(x, "iso");
    if (json_is_string(iso)) iso_parse(json_string_value(iso), &ms);
  } else if (json_is_integer(x)) ms = json_integer_value(x);
  return ms;
}

static char **json_strv(json_t *a, size_t *n) {
  *n = 0;
  if (!json_is_array(a)) return NULL;
  size_t cnt = json_array_size(a);
  char **v = calloc(cnt ? cnt : 1, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < cnt; i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!s) continue;
    v[*n] = strdup(s);
    if (v[*n]) (*n)++;
  }
  return v;
}

static void set_str_field(char **dst, json_t *x) {
  if (!json_is_string(x)) return;
  char *s = strdup(json_string_value(x));
  if (!s) return;
  free(*dst);
  *dst = s;
}

int conv_from_json(tern_client_t *c, json_t *o, tern_conv_t **out) {
  const char *id = json_string_value(json_object_get(o, "objectId"));
  if (!id) return TERN_EPROTO;
  tern_conv_t *v = conv_get(c, id, 1);
  if (!v) return TERN_ENOMEM;
  set_str_field(&v->name, json_object_get(o, "name"));
  set_str_field(&v->creator, json_object_get(o, "c"));
  json_t *m = json_object_get(o, "m");
  if (json_is_array(m)) {
    size_t n;
    char **ids = json_strv(m, &n);
    if (ids) conv_set_members(v, ids, n);
    strv_free(ids, n);
  }
  json_t *mu = json_object_get(o, "mu");
  if (json_is_array(mu)) {
    size_t n;
    char **ids = json_strv(mu, &n);
    if (ids) {
      strv_free(v->mu, v->nmu);
      v->mu = ids;
      v->nmu = n;
    }
  }
  json_t *attr = json_object_get(o, "attr");
  if (json_is_object(attr)) {
    json_decref(v->attrs);
    v->attrs = json_deep_copy(attr);
    if (!v->attrs) v->attrs = json_object();
  }
  v->transient = json_is_true(json_object_get(o, "tr"));
  v->sys = json_is_true(json_object_get(o, "sys"));
  v->unique = json_is_true(json_object_get(o, "unique"));
  v->temp = json_is_true(json_object_get(o, "temp"));
  int64_t d;
  if ((d = json_date(json_object_get(o, "createdAt")))) v->created = d;
  if ((d = json_date(json_object_get(o, "updatedAt")))) v->updated = d;
  if ((d = json_date(json_object_get(o, "lm")))) v->lm = d;
  const char *msg = json_string_value(json_object_get(o, "msg"));
  const char *mid = json_string_value(json_object_get(o, "msg_mid"));
  if (msg && mid) {
    tern_msg_t *lm = msg_from_content(c->t, msg);
    if (lm) {
      msg_set_str(&lm->id, mid);
      msg_set_str(&lm->cid, id);
      msg_set_str(&lm->from, json_string_value(json_object_get(o, "msg_from")));
      lm->ts = json_integer_value(json_object_get(o, "msg_timestamp"));
      lm->io = lm->from && strcmp(lm->from, c->id) == 0 ? TERN_IO_OUT : TERN_IO_IN;
      lm->status = TERN_STATUS_SENT;
      conv_set_last(v, lm);
      tern_msg_free(lm);
    }
  }
  conv_changed(v);
  if (out) *out = v;
  return 0;
}

json_t *conv_to_json(const tern_conv_t *v) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "objectId", json_string(v->id));
  if (v->name) json_object_set_new(o, "name", json_string(v->name));
  if (v->creator) json_object_set_new(o, "c", json_string(v->creator));
  json_t *m = json_array();
  for (size_t i = 0; i < v->nmembers; i++) json_array_append_new(m, json_string(v->members[i]));
  json_object_set_new(o, "m", m);
  json_t *mu = json_array();
  for (size_t i = 0; i < v->nmu; i++) json_array_append_new(mu, json_string(v->mu[i]));
  json_object_set_new(o, "mu", mu);
  json_object_set_new(o, "attr", json_deep_copy(v->attrs));
  if (v->transient) json_object_set_new(o, "tr", json_true());
  if (v->unique) json_object_set_new(o, "unique", json_true());
  if (v->sys) json_object_set_new(o, "sys", json_true());
  char iso[ISO_LEN + 1];
  if (v->created) {
    iso_format(v->created, iso);
    json_object_set_new(o, "createdAt", json_string(iso));
  }
  if (v->updated) {
    iso_format(v->updated, iso);
    json_object_set_new(o, "updatedAt", json_string(iso));
  }
  if (v->lm) {
    iso_format(v->lm, iso);
    json_object_set_new(o, "lm", json_pack("{s:s,s:s}", "__type", "Date", "iso", iso));
  }
  return o;
}

static int is_delete_op(json_t *v) {
  const char *op = json_string_value(json_object_get(v, "__op"));
  return op && strcmp(op, "Delete") == 0;
}

/* Applies an update request (or an `updated` push's attr): plain keys and dotted paths. */
void conv_apply_update(tern_conv_t *v, json_t *req) {
  const char *key;
  json_t *val;
  json_object_foreach(req, key, val) {
    if (strcmp(key, "name") == 0) {
      if (is_delete_op(val)) {
        free(v->name);
        v->name = NULL;
      } else {
        set_str_field(&v->name, val);
      }
    } else if (strcmp(key, "attr") == 0) {
      json_decref(v->attrs);
      v->attrs = json_is_object(val) ? json_deep_copy(val) : json_object();
      if (!v->attrs) v->attrs = json_object();
    } else if (strncmp(key, "attr.", 5) == 0) {
      /* walk/create the nested objects of the dotted path */
      char *path = strdup(key + 5);
      if (!path) continue;
      json_t *obj = v->attrs;
      char *save = NULL;
      char *part = strtok_r(path, ".", &save);
      while (part && obj) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
          if (is_delete_op(val)) json_object_del(obj, part);
          else json_object_set(obj, part, val);
          break;
        }
        json_t *child = json_object_get(obj, part);
        if (!json_is_object(child)) {
          child = json_object();
          json_object_set_new(obj, part, child);
        }
        obj = child;
        part = next;
      }
      free(path);
    }
  }
  conv_changed(v);
}

/* ---- create ---- */

typedef struct {
  char *name;
  json_t *attrs;
  char **members;
  size_t n;
  unsigned options;
} create_ctx_t;

static void create_ctx_free(void *p) {
  create_ctx_t *x = p;
  if (!x) return;
  free(x->name);
  json_decref(x->attrs);
  strv_free(x->members, x->n);
  free(x);
}

static void on_started(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  create_ctx_t *x = r->ctx;
  tern_conv_cb cb = (tern_conv_cb)r->cb;
  tern_conv_t *v = NULL;
  if (status == 0 && (!reply || !reply->convmessage || !reply->convmessage->cid)) status = TERN_EPROTO;
  if (status == 0) {
    v = conv_get(r->c, reply->convmessage->cid, 1);
    if (!v) status = TERN_ENOMEM;
  }
  if (status == 0) {
    Lc__ConvCommand *cm = reply->convmessage;
    if (x->name) msg_set_str(&v->name, x->name);
    if (!v->creator) msg_set_str(&v->creator, r->c->id);
    if (!(x->options & TERN_CONV_TRANSIENT)) conv_set_members(v, x->members, x->n);
    if (x->attrs) {
      json_decref(v->attrs);
      v->attrs = json_deep_copy(x->attrs);
    }
    v->transient = (x->options & TERN_CONV_TRANSIENT) != 0;
    v->unique = (x->options & TERN_CONV_UNIQUE) != 0;
    int64_t ms;
    if (cm->cdate && iso_parse(cm->cdate, &ms) == 0) {
      if (!v->created) v->created = ms;
      if (!v->updated) v->updated = ms;
    }
    conv_changed(v);
    cache_put_conv(r->c, v);
  }
  if (cb) cb(r->c, v, status, r->data);
}

int tern_client_create_conv(tern_client_t *c, const char *name, const char *const *members, size_t n,
                            const char *attrs_json, unsigned options, tern_conv_cb cb, void *data) {
  if (!c || (n && !members)) return TERN_EINVAL;
  if ((options & TERN_CONV_TRANSIENT) && (options & TERN_CONV_UNIQUE)) return TERN_EINVAL;
  int rc = client_ready(c);
  if (rc < 0) return rc;
  json_t *attrs = NULL;
  if (attrs_json) {
    attrs = json_loads(attrs_json, 0, NULL);
    if (!json_is_object(attrs)) {
      json_decref(attrs);
      return TERN_EINVAL;
    }
  }
  create_ctx_t *x = calloc(1, sizeof *x);
  char **all = calloc(n + 1, sizeof *all);
  if (!x || !all) goto nomem;
  x->attrs = attrs;
  attrs = NULL;
  x->options = options;
  if (name && !(x->name = strdup(name))) goto nomem;
  all[0] = c->id;
  for (size_t i = 0; i < n; i++) all[i + 1] = (char *)members[i];
  long k = sorted_unique(all, n + 1, &x->members);
  if (k < 0) goto nomem;
  x->n = (size_t)k;
  free(all);
  all = NULL;

  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage attr = LC__JSON_OBJECT_MESSAGE__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(cmd, op, LC__OP_TYPE__start);
  cmd.peerid = c->id;
  if (options & TERN_CONV_TRANSIENT) {
    PB_SET(cm, transient, 1);
  } else {
    cm.m = x->members;
    cm.n_m = x->n;
  }
  if (options & TERN_CONV_UNIQUE) PB_SET(cm, unique, 1);
  json_t *a = json_object();
  if (name) json_object_set_new(a, "name", json_string(name));
  if (x->attrs) json_object_set(a, "attr", x->attrs);
  char *atext = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  if (!atext) goto nomem;
  attr.data = atext;
  cm.attr = &attr;
  char s[128], nonce[128];
  int64_t ts;
  rc = client_sign(c, NULL, "start", x->members, x->n, s, sizeof s, &ts, nonce, sizeof nonce);
  if (rc < 0) {
    free(atext);
    create_ctx_free(x);
    return rc;
  }
  if (rc == 0) {
    cm.s = s;
    cm.n = nonce;
    PB_SET(cm, t, ts);
  }
  cmd.convmessage = &cm;
  req_t *r = req_new(c, on_started, (void *)cb, data);
  if (!r) {
    free(atext);
    create_ctx_free(x);
    return TERN_ENOMEM;
  }
  r->ctx = x;
  r->ctx_free = create_ctx_free;
  rc = conn_send(c->t, &cmd, r);
  free(atext);
  return rc;
nomem:
  json_decref(attrs);
  free(all);
  create_ctx_free(x);
  return TERN_ENOMEM;
}

/* ---- member operations ---- */

typedef struct {
  char **ids;
  size_t n;
  int add;
} members_ctx_t;

static void members_ctx_free(void *p) {
  members_ctx_t *x = p;
  if (!x) return;
  strv_free(x->ids, x->n);
  free(x);
}

static void on_members_reply(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  members_ctx_t *x = r->ctx;
  tern_conv_done_cb cb = (tern_conv_done_cb)r->cb;
  if (status == 0 && reply && reply->convmessage) {
    Lc__ConvCommand *cm = reply->convmessage;
    if (cm->n_failedpids > 0 && cm->n_allowedpids == 0) {
      status = cm->failedpids[0]->code > 0 ? -cm->failedpids[0]->code : TERN_EPROTO;
    } else if (!r->conv->transient) {
      char **ok = cm->n_allowedpids ? cm->allowedpids : x->ids;
      size_t n = cm->n_allowedpids ? cm->n_allowedpids : x->n;
      if (cm->n_failedpids && !cm->n_allowedpids) n = 0;
      if (x->add) conv_add_members_local(r->conv, ok, n);
      else conv_remove_members_local(r->conv, ok, n);
    }
    int64_t ms;
    if (status == 0 && cm->udate && iso_parse(cm->udate, &ms) == 0) r->conv->updated = ms;
  }
  if (cb) cb(r->conv, status, r->data);
}

static int members_op(tern_conv_t *v, const char *const *ids, size_t n, int add, const char *action,
                      tern_conv_done_cb cb, void *data) {
  if (!v || !n || !ids) return TERN_EINVAL;
  tern_client_t *c = v->c;
  int rc = client_ready(c);
  if (rc < 0) return rc;
  members_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return TERN_ENOMEM;
  x->add = add;
  x->ids = strv_dup(ids, n);
  x->n = n;
  if (!x->ids) {
    free(x);
    return TERN_ENOMEM;
  }
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(cmd, op, add ? LC__OP_TYPE__add : LC__OP_TYPE__remove);
  cmd.peerid = c->id;
  cm.cid = v->id;
  cm.m = x->ids;
  cm.n_m = n;
  char s[128], nonce[128];
  int64_t ts;
  rc = client_sign(c, v->id, action, x->ids, n, s, sizeof s, &ts, nonce, sizeof nonce);
  if (rc < 0) {
    members_ctx_free(x);
    return rc;
  }
  if (rc == 0) {
    cm.s = s;
    cm.n = nonce;
    PB_SET(cm, t, ts);
  }
  cmd.convmessage = &cm;
  req_t *r = req_new(c, on_members_reply, (void *)cb, data);
  if (!r) {
    members_ctx_free(x);
    return TERN_ENOMEM;
  }
  r->conv = v;
  r->ctx = x;
  r->ctx_free = members_ctx_free;
  return conn_send(c->t, &cmd, r);
}

int tern_conv_join(tern_conv_t *v, tern_conv_done_cb cb, void *data) {
  if (!v) return TERN_EINVAL;
  const char *self = v->c->id;
  return members_op(v, &self, 1, 1, "join", cb, data);
}
int tern_conv_add_members(tern_conv_t *v, const char *const *ids, size_t n, tern_conv_done_cb cb, void *data) {
  return members_op(v, ids, n, 1, "invite", cb, data);
}
int tern_conv_quit(tern_conv_t *v, tern_conv_done_cb cb, void *data) {
  if (!v) return TERN_EINVAL;
  const char *self = v->c->id;
  return members_op(v, &self, 1, 0, "kick", cb, data);
}
int tern_conv_remove_members(tern_conv_t *v, const char *const *ids, size_t n, tern_conv_done_cb cb, void *data) {
  return members_op(v, ids, n, 0, "kick", cb, data);
}

/* ---- count, mute ---- */

static void on_count(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  tern_count_cb cb = (tern_count_cb)r->cb;
  int count = 0;
  if (status == 0) {
    if (reply && reply->convmessage && reply->convmessage->has_count) count = reply->convmessage->count;
    else status = TERN_EPROTO;
  }
  if (cb) cb(r->conv, status, count, r->data);
}

static int simple_conv_op(tern_conv_t *v, int op, req_reply_fn fn, void *cb, void *data, int muted) {
  if (!v) return TERN_EINVAL;
  int rc = client_ready(v->c);
  if (rc < 0) return rc;
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(cmd, op, op);
  cmd.peerid = v->c->id;
  cm.cid = v->id;
  cmd.convmessage = &cm;
  req_t *r = req_new(v->c, fn, cb, data);
  if (!r) return TERN_ENOMEM;
  r->conv = v;
  r->ctx = (void *)(intptr_t)muted;
  return conn_send(v->c->t, &cmd, r);
}

int tern_conv_count_members(tern_conv_t *v, tern_count_cb cb, void *data) {
  return simple_conv_op(v, LC__OP_TYPE__count, on_count, (void *)cb, data, 0);
}

static void on_mute(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  tern_conv_done_cb cb = (tern_conv_done_cb)r->cb;
  if (status == 0) {
    set_mu(r->conv, r->c->id, r->ctx != NULL);
    conv_changed(r->conv);
    int64_t ms;
    if (reply && reply->convmessage && reply->convmessage->udate && iso_parse(reply->convmessage->udate, &ms) == 0)
      r->conv->updated = ms;
  }
  r->ctx = NULL;
  if (cb) cb(r->conv, status, r->data);
}

int tern_conv_mute(tern_conv_t *v, tern_conv_done_cb cb, void *data) {
  return simple_conv_op(v, LC__OP_TYPE__mute, on_mute, (void *)cb, data, 1);
}
int tern_conv_unmute(tern_conv_t *v, tern_conv_done_cb cb, void *data) {
  return simple_conv_op(v, LC__OP_TYPE__unmute, on_mute, (void *)cb, data, 0);
}

/* ---- update builder ---- */

struct tern_update {
  char *name;
  json_t *whole; /* attributes = … */
  json_t *ops;   /* key → value, or {"__op":"Delete"} */
};

tern_update_t *tern_update_new(void) {
  tern_update_t *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->ops = json_object();
  if (!u->ops) {
    free(u);
    return NULL;
  }
  return u;
}

void tern_update_free(tern_update_t *u) {
  if (!u) return;
  free(u->name);
  json_decref(u->whole);
  json_decref(u->ops);
  free(u);
}

int tern_update_set_name(tern_update_t *u, const char *name) {
  if (!u || !name) return TERN_EINVAL;
  char *s = strdup(name);
  if (!s) return TERN_ENOMEM;
  free(u->name);
  u->name = s;
  return 0;
}

int tern_update_set_attributes(tern_update_t *u, const char *attrs_json) {
  if (!u || !attrs_json) return TERN_EINVAL;
  json_t *o = json_loads(attrs_json, 0, NULL);
  if (!json_is_object(o)) {
    json_decref(o);
    return TERN_EINVAL;
  }
  json_decref(u->whole);
  u->whole = o;
  return 0;
}

int tern_update_set_attr(tern_update_t *u, const char *key, const char *value_json) {
  if (!u || !key || !*key || !value_json) return TERN_EINVAL;
  json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
  if (!v) return TERN_EINVAL;
  return json_object_set_new(u->ops, key, v) == 0 ? 0 : TERN_ENOMEM;
}

int tern_update_remove_attr(tern_update_t *u, const char *key) {
  if (!u || !key || !*key) return TERN_EINVAL;
  return json_object_set_new(u->ops, key, json_pack("{s:s}", "__op", "Delete")) == 0 ? 0 : TERN_ENOMEM;
}

/* The request JSON: {"name":…, "attr": {…}} when the whole object was given, else dotted
 * keys ("attr.type") so the server leaves the other attributes alone. */
static json_t *update_request(const tern_update_t *u) {
  json_t *req = json_object();
  if (!req) return NULL;
  if (u->name) json_object_set_new(req, "name", json_string(u->name));
  const char *k;
  json_t *v;
  if (u->whole) {
    json_t *obj = json_deep_copy(u->whole);
    json_object_foreach(u->ops, k, v) {
      if (is_delete_op(v)) json_object_del(obj, k);
      else json_object_set(obj, k, v);
    }
    json_object_set_new(req, "attr", obj);
  } else {
    json_object_foreach(u->ops, k, v) {
      size_t kl = strlen(k);
      char *path = malloc(kl + 6);
      if (!path) continue;
      memcpy(path, "attr.", 5);
      memcpy(path + 5, k, kl + 1);
      json_object_set(req, path, v);
      free(path);
    }
  }
  return req;
}

static void on_updated(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  tern_conv_done_cb cb = (tern_conv_done_cb)r->cb;
  if (status == 0) {
    conv_apply_update(r->conv, r->ctx);
    int64_t ms;
    if (reply && reply->convmessage && reply->convmessage->udate && iso_parse(reply->convmessage->udate, &ms) == 0)
      r->conv->updated = ms;
    cache_put_conv(r->c, r->conv);
  }
  if (cb) cb(r->conv, status, r->data);
}

static void json_ctx_free(void *p) { json_decref(p); }

int tern_conv_update(tern_conv_t *v, const tern_update_t *u, tern_conv_done_cb cb, void *data) {
  if (!v || !u) return TERN_EINVAL;
  int rc = client_ready(v->c);
  if (rc < 0) return rc;
  json_t *req = update_request(u);
  if (!req) return TERN_ENOMEM;
  char *text = json_dumps(req, JSON_COMPACT);
  if (!text) {
    json_decref(req);
    return TERN_ENOMEM;
  }
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage attr = LC__JSON_OBJECT_MESSAGE__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(cmd, op, LC__OP_TYPE__update);
  cmd.peerid = v->c->id;
  cm.cid = v->id;
  attr.data = text;
  cm.attr = &attr;
  cmd.convmessage = &cm;
  req_t *r = req_new(v->c, on_updated, (void *)cb, data);
  if (!r) {
    free(text);
    json_decref(req);
    return TERN_ENOMEM;
  }
  r->conv = v;
  r->ctx = req;
  r->ctx_free = json_ctx_free;
  rc = conn_send(v->c->t, &cmd, r);
  free(text);
  return rc;
}
