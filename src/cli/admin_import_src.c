/* admin_import_src.c — where an import reads from: LeanCloud's REST API, or files.
 *
 * REST (--from): the storage API's class queries for _Conversation, _Installation and
 * _File (`where`, `order`, `limit` ≤ 1000, `skip`, `count`), and the IM REST API v1.2 for
 * what is not in a class: member-infos, permanent-silenceds, blacklists, service
 * conversation subscribers, and history (`reversed=true` from the last imported
 * (timestamp, msg-id), so a walk goes oldest to newest and its cursor only grows). Every
 * request carries the master key and goes through imp_net (rate, retries).
 *
 * Directory (--from-dir): what `tern admin export leancloud` wrote, or the console's class
 * export — files named after the class (`_Conversation.jsonl`, `_Conversation.0.json`, …)
 * holding one object per line, a JSON array, or {"results": […]} — plus
 * `_ConversationExtras.jsonl` (one {"cid", "member_infos", "permanent_silenceds",
 * "blacklists", "subscribers"} per line), `_ConversationMemberInfo` class exports,
 * `messages/<cid>.jsonl` (history items, oldest first; cid percent-encoded) and
 * `files/<objectId>` (a file's bytes). Answers are handed out through imp_net_defer, like
 * network answers, so both sources drive the importer the same way. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin_import.h"
#include "timeutil.h"

typedef struct {
  json_t *by_id; /* array sorted by objectId */
} cls_t;

struct imp_src {
  imp_net_t *net;
  char *base;    /* REST: scheme://host[:port][/prefix], no trailing '/' */
  char *headers; /* X-LC-Id, X-LC-Key */
  char *dir;
  int keep_json;
  cls_t conv, inst, file;
  json_t *extras; /* dir: cid → extras */
};

int imp_src_is_dir(const imp_src_t *s) { return s->dir != NULL; }

/* ---------------------------------------------------------------- directory */

static void load_objects(json_t *into, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  json_error_t je;
  json_t *all = json_loadf(f, JSON_DISABLE_EOF_CHECK, &je);
  /* a whole-file array or {"results": […]}, else JSON lines */
  int c = 0;
  if (all && (json_is_array(all) || json_is_array(json_object_get(all, "results")))) {
    /* one document: but JSON lines also parse as their first object; look past it */
    long pos = ftell(f);
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {
    }
    (void)pos;
  }
  if (all && c == EOF && (json_is_array(all) || json_is_array(json_object_get(all, "results")))) {
    json_t *arr = json_is_array(all) ? all : json_object_get(all, "results");
    json_array_extend(into, arr);
    json_decref(all);
    fclose(f);
    return;
  }
  json_decref(all);
  rewind(f);
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    json_t *o = json_loadb(line, (size_t)n, 0, NULL);
    if (json_is_object(o)) json_array_append(into, o);
    json_decref(o);
  }
  free(line);
  fclose(f);
}

static int by_object_id(const void *a, const void *b) {
  const char *x = json_string_value(json_object_get(*(json_t *const *)a, "objectId"));
  const char *y = json_string_value(json_object_get(*(json_t *const *)b, "objectId"));
  return strcmp(x ? x : "", y ? y : "");
}

/* Sorts by objectId and keeps one object per objectId, the one updated last: a directory
 * may hold the same class twice (tern's export beside the console's), and an object read
 * twice would be imported by two jobs at once. */
static void sort_by_id(json_t *arr) {
  size_t n = json_array_size(arr);
  json_t **v = xcalloc(n + 1, sizeof *v);
  for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(arr, i));
  qsort(v, n, sizeof *v, by_object_id);
  json_array_clear(arr);
  json_t *last = NULL;
  for (size_t i = 0; i < n; i++) {
    const char *id = json_string_value(json_object_get(v[i], "objectId"));
    if (last && id && *id && by_object_id(&last, &v[i]) == 0) {
      if (imp_date_ms(json_object_get(v[i], "updatedAt")) > imp_date_ms(json_object_get(last, "updatedAt")))
        json_array_set(arr, json_array_size(arr) - 1, v[i]), last = v[i];
      json_decref(v[i]);
      continue;
    }
    json_array_append_new(arr, v[i]);
    last = v[i];
  }
  free(v);
}

/* `_Conversation.jsonl`, `_Conversation.0.json`, `_Conversation-x.json`: not `_ConversationX`. */
static int names_class(const char *file, const char *cls) {
  size_t n = strlen(cls);
  if (strncmp(file, cls, n) != 0 || (file[n] != '.' && file[n] != '-')) return 0;
  const char *ext = strrchr(file, '.');
  return ext && (strcmp(ext, ".json") == 0 || strcmp(ext, ".jsonl") == 0);
}

static int dir_open(imp_src_t *s, const char *dir, char *err, size_t errlen) {
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(err, errlen, "--from-dir %s: cannot open it", dir);
    return -1;
  }
  s->dir = xstrdup(dir);
  s->conv.by_id = json_array();
  s->inst.by_id = json_array();
  s->file.by_id = json_array();
  s->extras = json_object();
  json_t *infos = json_array(), *extras = json_array();
  struct dirent *e;
  int found = 0;
  while ((e = readdir(d))) {
    buf_t p = BUF_INIT;
    buf_printf(&p, "%s/%s", dir, e->d_name);
    const char *path = buf_cstr(&p);
    if (names_class(e->d_name, "_Conversation")) load_objects(s->conv.by_id, path), found = 1;
    else if (names_class(e->d_name, "_Installation")) load_objects(s->inst.by_id, path), found = 1;
    else if (names_class(e->d_name, "_File")) load_objects(s->file.by_id, path), found = 1;
    else if (names_class(e->d_name, "_ConversationMemberInfo")) load_objects(infos, path);
    else if (names_class(e->d_name, "_ConversationExtras")) load_objects(extras, path);
    buf_free(&p);
  }
  closedir(d);
  size_t i;
  json_t *x;
  json_array_foreach(extras, i, x) {
    const char *cid = json_string_value(json_object_get(x, "cid"));
    if (cid) json_object_set(s->extras, cid, x);
  }
  /* the console's _ConversationMemberInfo export: {cid, clientId, role} rows */
  json_array_foreach(infos, i, x) {
    const char *cid = json_string_value(json_object_get(x, "cid"));
    if (!cid) continue;
    json_t *ex = json_object_get(s->extras, cid);
    if (!ex) {
      ex = json_pack("{s:s}", "cid", cid);
      json_object_set_new(s->extras, cid, ex);
    }
    json_t *mi = json_object_get(ex, "member_infos");
    if (!json_is_array(mi)) {
      mi = json_array();
      json_object_set_new(ex, "member_infos", mi);
    }
    json_array_append(mi, x);
  }
  json_decref(infos);
  json_decref(extras);
  sort_by_id(s->conv.by_id);
  sort_by_id(s->inst.by_id);
  sort_by_id(s->file.by_id);
  if (!found) {
    snprintf(err, errlen, "--from-dir %s holds no _Conversation, _Installation or _File export", dir);
    return -1;
  }
  return 0;
}

typedef struct {
  imp_page_cb cb;
  imp_items_cb items_cb; /* or this, with answer an array of history items */
  void *arg;
  json_t *answer;
} dir_answer_t;

static void dir_deliver(imp_req_t *unused, void *arg) {
  (void)unused;
  dir_answer_t *a = arg;
  if (a->items_cb) a->items_cb(imp_items_from_json(a->answer), NULL, 200, a->arg);
  else a->cb(a->answer, NULL, 200, a->arg);
  json_decref(a->answer);
  free(a);
}

static void dir_answer(imp_src_t *s, json_t *answer, imp_page_cb cb, void *arg) {
  dir_answer_t *a = xcalloc(1, sizeof *a);
  a->cb = cb;
  a->arg = arg;
  a->answer = answer;
  imp_net_defer(s->net, dir_deliver, a);
}

static void dir_answer_items(imp_src_t *s, json_t *answer, imp_items_cb cb, void *arg) {
  dir_answer_t *a = xcalloc(1, sizeof *a);
  a->items_cb = cb;
  a->arg = arg;
  a->answer = answer;
  imp_net_defer(s->net, dir_deliver, a);
}

static int upd_cmp(const void *a, const void *b) {
  int64_t x = imp_date_ms(json_object_get(*(json_t *const *)a, "updatedAt"));
  int64_t y = imp_date_ms(json_object_get(*(json_t *const *)b, "updatedAt"));
  if (x != y) return x < y ? -1 : 1;
  return by_object_id(a, b);
}

static void dir_list(imp_src_t *s, const char *cls, int by_id, const char *after, const char *mark, int ties, int count,
                     imp_page_cb cb, void *arg) {
  cls_t *c = strcmp(cls, "_Conversation") == 0 ? &s->conv : strcmp(cls, "_Installation") == 0 ? &s->inst : &s->file;
  json_t *res = json_array();
  size_t i, n = json_array_size(c->by_id);
  json_t *o;
  if (by_id) {
    json_array_foreach(c->by_id, i, o) {
      const char *id = json_string_value(json_object_get(o, "objectId"));
      if (after && id && strcmp(id, after) <= 0) continue;
      if (json_array_size(res) >= 1000) break;
      json_array_append(res, o);
    }
  } else {
    int64_t m = 0;
    if (mark) iso_parse(mark, &m);
    json_t **v = xcalloc(n + 1, sizeof *v);
    size_t k = 0;
    json_array_foreach(c->by_id, i, o) if (imp_date_ms(json_object_get(o, "updatedAt")) >= m) v[k++] = o;
    qsort(v, k, sizeof *v, upd_cmp);
    for (size_t j = (size_t)(ties > 0 ? ties : 0); j < k && json_array_size(res) < 1000; j++)
      json_array_append(res, v[j]);
    free(v);
  }
  json_t *answer = json_pack("{s:o}", "results", res);
  if (count) json_object_set_new(answer, "count", json_integer((json_int_t)n));
  dir_answer(s, answer, cb, arg);
}

static char *msg_path(const imp_src_t *s, const char *cid) {
  buf_t p = BUF_INIT;
  buf_printf(&p, "%s/messages/", s->dir);
  buf_append_pct(&p, cid);
  buf_append_str(&p, ".jsonl");
  return buf_cstr(&p);
}

/* Everything after (ts, mid) in one page: the file is read once per conversation. */
static void dir_history(imp_src_t *s, const char *cid, int64_t ts, const char *mid, imp_items_cb cb, void *arg) {
  char *path = msg_path(s, cid);
  json_t *all = json_array(), *out = json_array();
  load_objects(all, path);
  free(path);
  size_t i;
  json_t *it;
  json_array_foreach(all, i, it) {
    int64_t t = json_integer_value(json_object_get(it, "timestamp"));
    const char *m = json_string_value(json_object_get(it, "msg-id"));
    if (t < ts) continue;
    if (t == ts && mid && m && strcmp(m, mid) == 0) continue;
    json_array_append(out, it);
  }
  json_decref(all);
  dir_answer_items(s, out, cb, arg);
}

/* ---------------------------------------------------------------- REST */

typedef struct {
  imp_page_cb cb;
  void *arg;
  int shape; /* SHAPE_*: what a 2xx answer must be */
} rest_ctx_t;

enum { SHAPE_RESULTS, SHAPE_ARRAY, SHAPE_OBJECT };

static void rest_done(imp_req_t *r, void *arg) {
  rest_ctx_t *c = arg;
  json_t *j = NULL;
  if (r->status >= 200 && r->status <= 299) {
    j = json_incref(r->json); /* IMP_JSON: parsed, or retried as cut short */
    int ok = c->shape == SHAPE_ARRAY    ? json_is_array(j)
             : c->shape == SHAPE_OBJECT ? json_is_object(j)
                                        : json_is_array(json_object_get(j, "results"));
    if (!ok && j) /* JSON, of the wrong shape (not JSON at all: imp_net said so in err) */
      snprintf(r->err, sizeof r->err, "HTTP %ld with an answer that is not the %s expected", r->status,
               c->shape == SHAPE_ARRAY    ? "array"
               : c->shape == SHAPE_OBJECT ? "object"
                                          : "{\"results\": […]}");
    if (!ok) {
      json_decref(j);
      j = NULL;
    }
  }
  c->cb(j, j ? NULL : r->err[0] ? r->err : "no answer", r->status, c->arg);
  json_decref(j);
  free(c);
}

static void rest_get(imp_src_t *s, const char *path_and_query, int shape, imp_page_cb cb, void *arg) {
  rest_ctx_t *c = xcalloc(1, sizeof *c);
  c->cb = cb;
  c->arg = arg;
  c->shape = shape;
  buf_t u = BUF_INIT;
  buf_printf(&u, "%s%s", s->base, path_and_query);
  imp_net_request(s->net, "GET", buf_cstr(&u), s->headers, NULL, 0, IMP_SOURCE | IMP_JSON, rest_done, c);
  buf_free(&u);
}

/* History pages: scanned (imp_items_scan), or parsed when the items are to be written
 * out as they came (keep_json). */
typedef struct {
  imp_items_cb cb;
  void *arg;
} hist_ctx_t;

static void hist_done(imp_req_t *r, void *arg) {
  hist_ctx_t *c = arg;
  imp_items_t *items = NULL;
  if (r->status >= 200 && r->status <= 299) {
    if (r->items) {
      items = r->items;
      r->items = NULL;
    } else if (json_is_array(r->json)) {
      items = imp_items_from_json(r->json);
    } else if (r->json) { /* JSON, of the wrong shape (not JSON at all: imp_net said so in err) */
      snprintf(r->err, sizeof r->err, "HTTP %ld with an answer that is not the array expected", r->status);
    }
  }
  c->cb(items, items ? NULL : r->err[0] ? r->err : "no answer", r->status, c->arg);
  free(c);
}

/* One page of path's history, newest first: limit messages before (ts, mid) when ts > 0. */
static void hist_get(imp_src_t *s, const char *path, int64_t ts, const char *mid, int limit, imp_items_cb cb,
                     void *arg) {
  hist_ctx_t *c = xcalloc(1, sizeof *c);
  c->cb = cb;
  c->arg = arg;
  buf_t u = BUF_INIT;
  buf_printf(&u, "%s%s?reversed=true&limit=%d", s->base, path, limit);
  if (ts > 0) buf_printf(&u, "&timestamp=%lld", (long long)ts);
  if (ts > 0 && mid) {
    buf_append_str(&u, "&msgid=");
    buf_append_pct(&u, mid);
  }
  imp_net_request(s->net, "GET", buf_cstr(&u), s->headers, NULL, 0, IMP_SOURCE | (s->keep_json ? IMP_JSON : IMP_HIST),
                  hist_done, c);
  buf_free(&u);
}

static void q_json(buf_t *q, const char *key, json_t *v) {
  char *t = json_dumps(v, JSON_COMPACT);
  buf_printf(q, "%c%s=", q->len && memchr(q->data, '?', q->len) ? '&' : '?', key);
  buf_append_pct(q, t);
  free(t);
  json_decref(v);
}

void imp_src_list(imp_src_t *s, const char *cls, int by_id, const char *after, const char *mark, int ties, int count,
                  imp_page_cb cb, void *arg) {
  if (s->dir) {
    dir_list(s, cls, by_id, after, mark, ties, count, cb, arg);
    return;
  }
  buf_t q = BUF_INIT;
  buf_printf(&q, "/1.1/classes/%s?limit=1000&order=%s", cls, by_id ? "objectId" : "updatedAt");
  if (by_id && after) q_json(&q, "where", json_pack("{s:{s:s}}", "objectId", "$gt", after));
  else if (!by_id && mark)
    q_json(&q, "where", json_pack("{s:{s:{s:s, s:s}}}", "updatedAt", "$gte", "__type", "Date", "iso", mark));
  if (!by_id && ties > 0) buf_printf(&q, "&skip=%d", ties);
  if (count) buf_append_str(&q, "&count=1");
  rest_get(s, buf_cstr(&q), SHAPE_RESULTS, cb, arg);
  buf_free(&q);
}

static char *conv_path(json_t *conv, const char *rest) {
  buf_t p = BUF_INIT;
  buf_printf(&p, "/1.2/rtm/%s/", imp_conv_kind(conv));
  buf_append_pct(&p, json_string_value(json_object_get(conv, "objectId")));
  buf_append_str(&p, rest);
  return buf_cstr(&p);
}

void imp_src_history(imp_src_t *s, json_t *conv, int64_t ts, const char *mid, int limit, imp_items_cb cb, void *arg) {
  if (s->dir) {
    dir_history(s, json_string_value(json_object_get(conv, "objectId")), ts, mid, cb, arg);
    return;
  }
  char *p = conv_path(conv, "/messages");
  hist_get(s, p, ts, mid, limit, cb, arg);
  free(p);
}

void imp_src_app_history(imp_src_t *s, int64_t ts, const char *mid, int limit, imp_items_cb cb, void *arg) {
  if (s->dir) { /* not used: a directory is walked per conversation */
    dir_answer_items(s, json_array(), cb, arg);
    return;
  }
  hist_get(s, "/1.2/rtm/messages", ts, mid, limit, cb, arg);
}

/* ---------------------------------------------------------------- extras */

/* One paged list of a conversation's extras; several run at once, the last one to finish
 * hands the whole object to the caller. */
typedef struct extras extras_t;
typedef struct {
  extras_t *x;
  const char *key; /* member_infos, permanent_silenceds, blacklists, subscribers */
  const char *rest;
  int skip;   /* member-infos: skip paging */
  char *next; /* silenceds/blacklists: next; subscribers: client_id */
} xlist_t;

struct extras {
  imp_src_t *s;
  json_t *conv;
  json_t *out;
  int pending;
  char *err;
  long status;
  imp_page_cb cb;
  void *arg;
};

static void xlist_fetch(xlist_t *l);

static void xlist_done(json_t *ans, const char *err, long status, void *arg) {
  xlist_t *l = arg;
  extras_t *x = l->x;
  int more = 0;
  if (!ans && status != 404) {
    if (!x->err) x->err = xstrdup(err ? err : "failed");
    x->status = status;
  } else if (ans) {
    json_t *into = json_object_get(x->out, l->key);
    if (strcmp(l->key, "member_infos") == 0) {
      json_t *res = json_object_get(ans, "results");
      json_array_extend(into, res);
      l->skip += (int)json_array_size(res);
      more = json_array_size(res) == 1000;
    } else if (strcmp(l->key, "subscribers") == 0) {
      size_t i;
      json_t *it;
      json_array_foreach(ans, i, it) {
        const char *sub = json_string_value(json_object_get(it, "subscriber"));
        if (sub) json_array_append_new(into, json_string(sub));
      }
      more = json_array_size(ans) == 50;
      const char *last =
          json_string_value(json_object_get(json_array_get(ans, json_array_size(ans) - 1), "subscriber"));
      free(l->next);
      l->next = last ? xstrdup(last) : NULL;
      more = more && l->next;
    } else {
      json_array_extend(into, json_object_get(ans, "client_ids"));
      const char *nx = json_string_value(json_object_get(ans, "next"));
      free(l->next);
      l->next = nx && *nx ? xstrdup(nx) : NULL;
      more = l->next != NULL;
    }
  }
  if (more && !x->err) {
    xlist_fetch(l);
    return;
  }
  free(l->next);
  free(l);
  if (--x->pending == 0) {
    if (x->err) x->cb(NULL, x->err, x->status, x->arg);
    else x->cb(x->out, NULL, 200, x->arg);
    json_decref(x->out);
    json_decref(x->conv);
    free(x->err);
    free(x);
  }
}

static void xlist_fetch(xlist_t *l) {
  char *p = conv_path(l->x->conv, l->rest);
  buf_t q = BUF_INIT;
  buf_append_str(&q, p);
  free(p);
  int shape = SHAPE_OBJECT;
  if (strcmp(l->key, "member_infos") == 0) {
    buf_printf(&q, "?limit=1000&skip=%d", l->skip);
    shape = SHAPE_RESULTS;
  } else if (strcmp(l->key, "subscribers") == 0) {
    buf_append_str(&q, "?limit=50");
    if (l->next) {
      buf_append_str(&q, "&client_id=");
      buf_append_pct(&q, l->next);
    }
    shape = SHAPE_ARRAY;
  } else {
    buf_append_str(&q, "?limit=500");
    if (l->next) {
      buf_append_str(&q, "&next=");
      buf_append_pct(&q, l->next);
    }
  }
  rest_get(l->x->s, buf_cstr(&q), shape, xlist_done, l);
  buf_free(&q);
}

void imp_src_extras(imp_src_t *s, json_t *conv, imp_page_cb cb, void *arg) {
  const char *kind = imp_conv_kind(conv);
  int sys = strcmp(kind, "service-conversations") == 0;
  if (s->dir) {
    json_t *ex = json_object_get(s->extras, json_string_value(json_object_get(conv, "objectId")));
    json_t *out = json_object();
    const char *keys[] = {"member_infos", "permanent_silenceds", "blacklists", "subscribers"};
    for (int i = 0; i < 4; i++) {
      json_t *v = json_object_get(ex, keys[i]);
      json_object_set_new(out, keys[i], json_is_array(v) ? json_deep_copy(v) : json_array());
    }
    dir_answer(s, out, cb, arg);
    return;
  }
  extras_t *x = xcalloc(1, sizeof *x);
  x->s = s;
  x->conv = json_incref(conv);
  x->out = json_pack("{s:[], s:[], s:[], s:[]}", "member_infos", "permanent_silenceds", "blacklists", "subscribers");
  x->cb = cb;
  x->arg = arg;
  static const struct {
    const char *key, *rest;
    int sys, other;
  } L[] = {{"member_infos", "/member-infos", 0, 1},
           {"permanent_silenceds", "/permanent-silenceds", 0, 1},
           {"blacklists", "/blacklists", 1, 1},
           {"subscribers", "/subscribers", 1, 0}};
  /* answers come only from imp_net_step, so none can finish before all have started */
  for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
    if (sys ? !L[i].sys : !L[i].other) continue;
    xlist_t *l = xcalloc(1, sizeof *l);
    l->x = x;
    l->key = L[i].key;
    l->rest = L[i].rest;
    x->pending++;
    xlist_fetch(l);
  }
}

/* ---------------------------------------------------------------- file bytes */

typedef struct {
  imp_req_cb cb;
  void *arg;
  imp_req_t fake;
} local_file_t;

static void local_deliver(imp_req_t *unused, void *arg) {
  (void)unused;
  local_file_t *l = arg;
  l->cb(&l->fake, l->arg);
  buf_free(&l->fake.body);
  free(l);
}

void imp_src_file_bytes(imp_src_t *s, const char *objid, const char *url, imp_req_cb cb, void *arg) {
  if (s->dir && objid) {
    buf_t p = BUF_INIT;
    buf_printf(&p, "%s/files/", s->dir);
    buf_append_pct(&p, objid);
    FILE *f = fopen(buf_cstr(&p), "rb");
    buf_free(&p);
    if (f) {
      local_file_t *l = xcalloc(1, sizeof *l);
      l->cb = cb;
      l->arg = arg;
      char chunk[65536];
      size_t n;
      while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&l->fake.body, chunk, n);
      fclose(f);
      l->fake.status = 200;
      l->fake.url = url;
      imp_net_defer(s->net, local_deliver, l);
      return;
    }
  }
  /* a file host, not the API: no keys go there */
  imp_net_request(s->net, "GET", url, NULL, NULL, 0, IMP_FILE, cb, arg);
}

/* ---------------------------------------------------------------- setup */

imp_src_t *imp_src_new(const imp_src_opts_t *o, imp_net_t *net, char *err, size_t errlen) {
  imp_src_t *s = xcalloc(1, sizeof *s);
  s->net = net;
  s->keep_json = o->keep_json;
  if (o->dir) {
    if (dir_open(s, o->dir, err, errlen) < 0) {
      imp_src_free(s);
      return NULL;
    }
    return s;
  }
  if (!o->url || (strncmp(o->url, "https://", 8) != 0 && strncmp(o->url, "http://", 7) != 0)) {
    snprintf(err, errlen, "--from needs the app's REST API address, https://API_HOST");
    imp_src_free(s);
    return NULL;
  }
  if (!o->app_id || !*o->app_id || !o->master_key || !*o->master_key || strpbrk(o->app_id, "\r\n") ||
      strpbrk(o->master_key, "\r\n")) {
    snprintf(err, errlen, "the source needs an app id and its master key (--from-app-id, --from-master-key)");
    imp_src_free(s);
    return NULL;
  }
  size_t n = strlen(o->url);
  while (n && o->url[n - 1] == '/') n--;
  s->base = xstrndup(o->url, n);
  buf_t h = BUF_INIT;
  buf_printf(&h, "X-LC-Id: %s\r\nX-LC-Key: %s,master\r\n", o->app_id, o->master_key);
  s->headers = buf_cstr(&h);
  return s;
}

void imp_src_free(imp_src_t *s) {
  if (!s) return;
  free(s->base);
  free(s->headers);
  free(s->dir);
  json_decref(s->conv.by_id);
  json_decref(s->inst.by_id);
  json_decref(s->file.by_id);
  json_decref(s->extras);
  free(s);
}
