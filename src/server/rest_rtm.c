/* rest_rtm.c — the server-to-server REST API, /1.2/rtm/… (protocol.md §7).
 *
 * App back ends create conversations, manage members, send messages as any client and read
 * history here, with the master key. Handlers run on the worker that parsed the request,
 * like the WebSocket ones: reads go through the worker's store reader; changes go through
 * the same apply steps as the protocol (notifications included), and the answer is sent
 * after the commit: the request is deferred (http_defer) and the completion finds the
 * connection again by handle. Errors use LeanCloud's shape {"code", "error"}. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"
#include "hooks.h"
#include "httpc.h"
#include "log.h"
#include "sign.h"
#include "http.h"
#include "im_internal.h"
#include "query.h"
#include "rest.h"
#include "timeutil.h"
#include "utf8.h"
#include "worker.h"

/* ---------------------------------------------------------------- plumbing */

/* The conversation kind a path prefix serves. */
static int path_kind(const http_req_t *r) {
  if (strncmp(r->path, "/1.2/rtm/chatrooms", 18) == 0) return CONV_ROOM;
  if (strncmp(r->path, "/1.2/rtm/service-conversations", 30) == 0) return CONV_SYSTEM;
  return CONV_NORMAL;
}

static json_t *body_json(const http_req_t *r) {
  if (!r->body.len) return json_object();
  json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
  return j;
}

static void bad(conn_t *c, const http_req_t *r, const char *msg) { http_respond_error(c, r, 400, 107, msg); }

static int im_status(int code) {
  switch (code) {
  case LC_CONVERSATION_NOT_FOUND:
  case LC_INVALID_MESSAGING_TARGET:
  case LC_MESSAGE_NOT_FOUND: return 404;
  case LC_MESSAGE_OWNERSHIP_REQUIRED: return 403;
  case LC_INTERNAL_ERROR:
  case LC_CONVERSATION_API_FAILED:
  case LC_CONVERSATION_INTERNAL_ERROR: return 500;
  default: return 400;
  }
}

static void im_error(conn_t *c, const http_req_t *r, int code, const char *detail) {
  http_respond_error(c, r, im_status(code), code, detail ? detail : lc_error_name(code));
}

/* The conversation cid if it is of `kind` (normal includes temporary); answers 404 itself. */
static conv_t *find_conv(conn_t *c, const http_req_t *r, const char *cid, int kind) {
  conv_t *conv = cid && *cid ? conv_get(c->w->imw, cid, NULL) : NULL;
  if (conv && (conv->kind == kind || (kind == CONV_NORMAL && conv->kind == CONV_TEMP))) return conv;
  if (conv) conv_release(conv);
  http_respond_error(c, r, 404, LC_CONVERSATION_NOT_FOUND, "conversation not found");
  return NULL;
}

/* The conversation named by :cid, of the kind the path serves; answers 404 itself. */
static conv_t *path_conv(conn_t *c, const http_req_t *r) {
  return find_conv(c, r, http_path_param(r, "cid"), path_kind(r));
}

/* client_ids from a JSON body as a C array (borrowed strings); NULL after a 400. */
static char **client_ids(conn_t *c, const http_req_t *r, json_t *body, size_t *n) {
  json_t *ids = json_object_get(body, "client_ids");
  if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 500) {
    bad(c, r, "client_ids must be an array of 1 to 500 client ids");
    return NULL;
  }
  *n = json_array_size(ids);
  char **v = xcalloc(*n, sizeof(char *));
  for (size_t i = 0; i < *n; i++) {
    const char *s = json_string_value(json_array_get(ids, i));
    if (!s || !*s || utf8_chars(s) > 64) {
      free(v);
      bad(c, r, "client_ids must be strings of 1 to 64 characters");
      return NULL;
    }
    v[i] = (char *)s;
  }
  return v;
}

/* A deferred answer: the connection is found again by handle when the change committed. */
typedef struct {
  server_t *srv;
  int worker;
  uint64_t conn;
  json_t *(*shape)(void *ctx, json_t *result); /* the success body */
  char *cid;
  int status;
} waiting_t;

static waiting_t *wait_for(conn_t *c, json_t *(*shape)(void *, json_t *), const char *cid) {
  waiting_t *wt = xcalloc(1, sizeof *wt);
  wt->srv = c->w->srv;
  wt->worker = c->w->idx;
  wt->conn = c->id;
  wt->shape = shape;
  wt->cid = cid ? xstrdup(cid) : NULL;
  wt->status = 200;
  http_defer(c);
  return wt;
}

static void answer(im_worker_t *w, void *arg, int code, json_t *result) {
  waiting_t *wt = arg;
  conn_t *c = htab_get(&wt->srv->workers[wt->worker]->conns, wt->conn);
  const http_req_t *r = c ? http_deferred_req(c) : NULL;
  if (r) {
    if (code) {
      const char *err = json_string_value(json_object_get(result, "error"));
      im_error(c, r, code, err);
    } else {
      http_respond_json(c, r, wt->status, wt->shape(wt, result));
    }
    http_resume(c);
  }
  free(wt->cid);
  free(wt);
}

static const im_done_t *done_of(waiting_t *wt, im_done_t *d) {
  d->fn = answer;
  d->arg = wt;
  return d;
}

static json_t *shape_updated(void *ctx, json_t *result) {
  waiting_t *wt = ctx;
  char iso[ISO_LEN + 1];
  iso_format(json_integer_value(json_object_get(result, "updated_at")), iso);
  return json_pack("{s:s, s:s}", "updatedAt", iso, "objectId", wt->cid);
}

static json_t *shape_empty(void *ctx, json_t *result) { return json_object(); }

static json_t *shape_copy(void *ctx, json_t *result) { return json_deep_copy(result); }

/* ---------------------------------------------------------------- conversations */

typedef struct {
  job_conv_create_t j;
  im_t *im;
  waiting_t *wt;
  json_t *answer; /* the fields echoed back */
} create_job_t;

static void create_free(create_job_t *cj) {
  conv_row_free(&cj->j.row);
  free(cj->j.doc);
  free(cj->j.existing_cid);
  json_decref(cj->answer);
  free(cj);
}

static json_t *shape_created(void *ctx, json_t *result) { return json_incref(result); }

static void create_done(task_t *t) {
  create_job_t *cj = (create_job_t *)t;
  im_worker_t *w = cj->im->workers[worker_current()];
  job_conv_create_t *j = &cj->j;
  if (j->job.result == TERN_EEXIST) { /* a unique twin committed first: answer with it */
    json_object_set_new(cj->answer, "objectId", json_string(j->existing_cid));
    answer(w, cj->wt, 0, cj->answer);
  } else if (j->job.result < 0) {
    answer(w, cj->wt, LC_CONVERSATION_API_FAILED, NULL);
  } else {
    conv_t *conv = conv_from_row(cj->im, &j->row);
    convcache_put(cj->im, conv);
    conv_release(conv);
    answer(w, cj->wt, 0, cj->answer);
  }
  create_free(cj);
}

/* POST /1.2/rtm/{conversations,chatrooms,service-conversations}
 * {"name", "m": […], "unique", <other fields>} → {objectId, createdAt, updatedAt, name, m, unique, uniqueId} */
static void rest_conv_create(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  im_worker_t *w = c->w->imw;
  json_t *body = body_json(r);
  if (!json_is_object(body)) {
    json_decref(body);
    bad(c, r, "the body must be a JSON object");
    return;
  }
  int kind = path_kind(r);
  json_t *m = json_object_get(body, "m");
  if (m && !json_is_array(m)) {
    json_decref(body);
    bad(c, r, "m must be an array of client ids");
    return;
  }
  create_job_t *cj = xcalloc(1, sizeof *cj);
  cj->im = w->im;
  conv_row_t *row = &cj->j.row;
  if (kind == CONV_NORMAL) {
    /* REST writes beyond max_members are truncated to the first ones (§9.1) */
    size_t n = json_array_size(m), cap = (size_t)w->im->cfg->max_members;
    char **ids = xcalloc(n + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
      const char *s = json_string_value(json_array_get(m, i));
      if (s && *s && utf8_chars(s) <= 64) ids[k++] = (char *)s;
    }
    members_t *sorted = members_new(ids, k);
    free(ids);
    row->members = xcalloc(sorted->n + 1, sizeof(char *));
    for (size_t i = 0; i < sorted->n; i++) row->members[row->nmembers++] = xstrdup(sorted->ids[i]);
    members_release(sorted);
  }
  int unique = kind == CONV_NORMAL && json_is_true(json_object_get(body, "unique"));
  char cid[40];
  conv_new_id(cid, 0);
  int64_t now = now_ms();
  row->cid = xstrdup(cid);
  row->kind = kind;
  row->created_at = row->updated_at = now;
  const char *creator = json_string_value(json_object_get(body, "c"));
  row->creator = creator ? xstrdup(creator) : NULL;
  json_t *doc = json_deep_copy(body);
  conv_doc_strip(doc);
  if (creator) json_object_set_new(doc, "c", json_string(creator));
  json_object_set_new(doc, "tr", json_boolean(kind == CONV_ROOM));
  json_object_set_new(doc, "sys", json_boolean(kind == CONV_SYSTEM));
  json_object_set_new(doc, "unique", json_boolean(unique));
  json_object_set_new(doc, "mu", json_array());
  char iso[ISO_LEN + 1];
  iso_format(now, iso);
  json_t *members = json_array();
  for (size_t i = 0; i < row->nmembers; i++) json_array_append_new(members, json_string(row->members[i]));
  cj->answer = json_pack("{s:s, s:s, s:s, s:o, s:b}", "objectId", cid, "createdAt", iso, "updatedAt", iso, "m", members,
                         "unique", unique);
  if (json_is_string(json_object_get(body, "name"))) json_object_set(cj->answer, "name", json_object_get(body, "name"));
  if (unique) {
    char hex[33];
    conv_unique_id(row->members, row->nmembers, hex);
    row->unique_id = xstrdup(hex);
    json_object_set_new(doc, "uniqueId", json_string(hex));
    json_object_set_new(cj->answer, "uniqueId", json_string(hex));
    char *existing = NULL;
    int64_t created;
    if (store_conv_find_unique(w->reader, hex, &existing, &created) == 0) {
      iso_format(created, iso);
      json_object_set_new(cj->answer, "objectId", json_string(existing));
      json_object_set_new(cj->answer, "createdAt", json_string(iso));
      http_respond_json(c, r, 200, json_incref(cj->answer));
      free(existing);
      json_decref(doc);
      json_decref(body);
      create_free(cj);
      return;
    }
  }
  cj->j.doc = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  json_decref(body);
  cj->wt = wait_for(c, shape_created, cid);
  cj->wt->status = 201;
  cj->j.job.type = JOB_CONV_CREATE;
  cj->j.job.worker = w->idx;
  cj->j.job.task.fn = create_done;
  store_submit(w->im->store, &cj->j.job);
}

/* GET /1.2/rtm/{…}?where&skip&limit&order — all conversations of the kind by default;
 * GET /1.2/rtm/all-conversations: of every kind the query language knows (normal, chat
 * room, service; temporary conversations are not queryable, as over the protocol). */
static void conv_list(conn_t *c, const http_req_t *r, int all_kinds) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *where_s = http_query_param(r, "where"), *skip_s = http_query_param(r, "skip"),
       *limit_s = http_query_param(r, "limit"), *order = http_query_param(r, "order");
  json_t *where = where_s && *where_s ? json_loads(where_s, 0, NULL) : json_object();
  query_t q;
  query_init(&q);
  buf_t ord = BUF_INIT;
  char err[200] = "";
  if (!json_is_object(where)) {
    bad(c, r, "where must be a JSON object");
    goto done;
  }
  int kind = path_kind(r);
  /* the kind of this path, and "no condition" means everything of it (not "m contains me") */
  json_t *scope = all_kinds ? json_pack("{s:{s:b}}", "objectId", "$exists", 1)
                            : json_pack("{s:b, s:b}", "tr", kind == CONV_ROOM, "sys", kind == CONV_SYSTEM);
  json_t *all = json_pack("{s:[o, O]}", "$and", scope, where);
  if (query_where(&q, all, "", err, sizeof err) < 0 || query_sort(&q, order, &ord, err, sizeof err) < 0) {
    json_decref(all);
    bad(c, r, err);
    goto done;
  }
  json_decref(all);
  int limit = limit_s ? atoi(limit_s) : 10, skip = skip_s ? atoi(skip_s) : 0;
  if (limit <= 0) limit = 10;
  if (limit > 1000) limit = 1000;
  if (skip < 0) skip = 0;
  json_t *arr;
  if (store_conv_query(c->w->imw->reader, &q, buf_cstr(&ord), limit, skip, 0, &arr) < 0) {
    http_respond_error(c, r, 500, 1, "query failed");
    goto done;
  }
  http_respond_json(c, r, 200, json_pack("{s:o}", "results", arr));
done:
  json_decref(where);
  query_free(&q);
  buf_free(&ord);
  free(where_s);
  free(skip_s);
  free(limit_s);
  free(order);
}

static void rest_conv_list(conn_t *c, const http_req_t *r) { conv_list(c, r, 0); }
static void rest_all_conversations(conn_t *c, const http_req_t *r) { conv_list(c, r, 1); }

static void rest_conv_get(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  const char *ids[1] = {conv->cid};
  json_t *arr;
  if (store_conv_fetch(c->w->imw->reader, ids, 1, 0, &arr) < 0 || json_array_size(arr) == 0) {
    if (arr) json_decref(arr);
    http_respond_error(c, r, 404, LC_CONVERSATION_NOT_FOUND, "conversation not found");
  } else {
    http_respond_json(c, r, 200, json_incref(json_array_get(arr, 0)));
    json_decref(arr);
  }
  conv_release(conv);
}

/* PUT /1.2/rtm/{…}/:cid {fields} — like conv/update from the app: members get `updated`. */
static void rest_conv_update(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  if (!json_is_object(body) || json_object_get(body, "m")) {
    json_decref(body);
    bad(c, r, "the body must be a JSON object of fields (m changes through …/members)");
    return;
  }
  conv_t *conv = path_conv(c, r);
  if (!conv) {
    json_decref(body);
    return;
  }
  im_done_t d;
  conv_attr_apply(c->w->imw, conv, "", body, 0, done_of(wait_for(c, shape_updated, conv->cid), &d));
  json_decref(body);
}

typedef struct {
  job_members_t j;
  im_t *im;
  waiting_t *wt;
  conv_t *conv;
} delete_job_t;

static void delete_done(task_t *t) {
  delete_job_t *d = (delete_job_t *)t;
  im_worker_t *w = d->im->workers[worker_current()];
  convcache_drop(d->im, d->conv); /* the tombstone can go: the row is gone */
  answer(w, d->wt, d->j.job.result < 0 ? LC_CONVERSATION_API_FAILED : 0, NULL);
  conv_release(d->conv);
  free(d);
}

/* DELETE /1.2/rtm/{…}/:cid — later use gets 4401/4303, like an expired conversation. */
static void rest_conv_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  pthread_mutex_lock(&conv->mu);
  conv->deleted = 1;
  pthread_mutex_unlock(&conv->mu);
  delete_job_t *d = xcalloc(1, sizeof *d);
  d->im = c->w->imw->im;
  d->conv = conv;
  d->wt = wait_for(c, shape_empty, conv->cid);
  d->j.conv = conv->id;
  d->j.job.type = JOB_CONV_DELETE;
  d->j.job.worker = c->w->idx;
  d->j.job.task.fn = delete_done;
  store_submit(d->im->store, &d->j.job);
}

/* ---------------------------------------------------------------- members and mutes */

static void rest_members_change(conn_t *c, const http_req_t *r, int add) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  size_t n;
  char **ids = json_is_object(body) ? client_ids(c, r, body, &n) : (bad(c, r, "the body must be a JSON object"), NULL);
  if (!ids) {
    json_decref(body);
    return;
  }
  conv_t *conv = path_conv(c, r);
  if (conv && conv->kind != CONV_NORMAL) {
    http_respond_error(c, r, 400, LC_CONVERSATION_READ_ONLY, "only normal conversations have a member list");
    conv_release(conv);
    conv = NULL;
  }
  if (conv) {
    im_done_t d;
    /* initBy "": the app's back end, not a client */
    conv_members_apply(c->w->imw, conv, "", ids, n, add, NULL, done_of(wait_for(c, shape_updated, conv->cid), &d));
  }
  free(ids);
  json_decref(body);
}

static void rest_members_add(conn_t *c, const http_req_t *r) { rest_members_change(c, r, 1); }
static void rest_members_remove(conn_t *c, const http_req_t *r) { rest_members_change(c, r, 0); }

/* ---------------------------------------------------------------- service-conversation subscribers */

/* POST …/service-conversations/:cid/subscribers {"client_id"} and DELETE
 * …/subscribers/:client_id → {} (what the client's own subscribe / unsubscribe does). */
static void subscription(conn_t *c, const http_req_t *r, int add) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = add ? body_json(r) : NULL;
  const char *id = add ? json_string_value(json_object_get(body, "client_id")) : http_path_param(r, "client_id");
  if (!id || !*id || utf8_chars(id) > 64) {
    bad(c, r, "client_id (1 to 64 characters) is required");
  } else {
    conv_t *conv = path_conv(c, r);
    if (conv) {
      im_done_t d;
      char *ids[1] = {(char *)id};
      conv_members_apply(c->w->imw, conv, id, ids, 1, add, NULL, done_of(wait_for(c, shape_empty, conv->cid), &d));
    }
  }
  json_decref(body);
}

static void rest_subscribe(conn_t *c, const http_req_t *r) { subscription(c, r, 1); }
static void rest_unsubscribe(conn_t *c, const http_req_t *r) { subscription(c, r, 0); }

typedef struct {
  json_t *out;
  const char *cid, *client; /* the fixed half of each row */
} pairs_t;

static void subscriber_row(void *arg, const char *key, int64_t at) {
  pairs_t *p = arg;
  json_array_append_new(p->out, json_pack("{s:I, s:s, s:s}", "timestamp", (json_int_t)at, "subscriber",
                                          p->client ? p->client : key, "conv_id", p->cid ? p->cid : key));
}

/* A page size from ?limit: default def, at most max. */
static int page_limit(const http_req_t *r, int def, int max) {
  char *v = http_query_param(r, "limit");
  int n = v && *v ? atoi(v) : def;
  free(v);
  return n < 1 ? def : n > max ? max : n;
}

/* GET …/service-conversations/:cid/subscribers?limit(≤ 50)&client_id (cursor: after it)
 * → [{"timestamp", "subscriber", "conv_id"}] in client id order. */
static void rest_subscribers(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  char *after = http_query_param(r, "client_id");
  pairs_t p = {json_array(), conv->cid, NULL};
  if (store_members_page(c->w->imw->reader, conv->id, after, page_limit(r, 50, 50), subscriber_row, &p) < 0) {
    json_decref(p.out);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else {
    http_respond_json(c, r, 200, p.out);
  }
  free(after);
  conv_release(conv);
}

/* GET …/service-conversations/:cid/subscribers/count → {"count"} */
static void rest_subscriber_count(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  members_t *m = conv_members(conv);
  http_respond_json(c, r, 200, json_pack("{s:I}", "count", (json_int_t)(m ? m->n : 0)));
  members_release(m);
  conv_release(conv);
}

/* GET /1.2/rtm/clients/:client_id/service-conversations?conv_id (cursor)&limit(50)
 * → the service conversations the client subscribes to, same rows. */
static void rest_client_subscriptions(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *after = http_query_param(r, "conv_id");
  pairs_t p = {json_array(), NULL, http_path_param(r, "client_id")};
  if (store_client_convs(c->w->imw->reader, p.client, CONV_SYSTEM, after, page_limit(r, 50, 1000), subscriber_row, &p) < 0) {
    json_decref(p.out);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else {
    http_respond_json(c, r, 200, p.out);
  }
  free(after);
}

static void rest_members_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  json_t *res = json_array();
  if (conv->kind == CONV_ROOM) { /* chat rooms: the online members */
    pthread_mutex_lock(&conv->mu);
    for (int k = 0; k < c->w->srv->nworkers; k++)
      for (uint32_t i = 0; i < conv->room[k].n && json_array_size(res) < 1000; i++)
        json_array_append_new(res, json_string(conv->room[k].v[i]->client_id));
    pthread_mutex_unlock(&conv->mu);
  } else {
    members_t *m = conv_members(conv);
    for (size_t i = 0; m && i < m->n; i++) json_array_append_new(res, json_string(m->ids[i]));
    members_release(m);
  }
  http_respond_json(c, r, 200, json_pack("{s:o}", "result", res));
  conv_release(conv);
}

static void rest_room_online_count(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  http_respond_json(c, r, 200, json_pack("{s:i}", "result", atomic_load(&conv->online)));
  conv_release(conv);
}

static void rest_mutes_change(conn_t *c, const http_req_t *r, int mute) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  size_t n;
  char **ids = json_is_object(body) ? client_ids(c, r, body, &n) : (bad(c, r, "the body must be a JSON object"), NULL);
  if (!ids) {
    json_decref(body);
    return;
  }
  conv_t *conv = path_conv(c, r);
  if (conv) {
    im_done_t d;
    conv_mutes_apply(c->w->imw, conv, ids, n, mute, done_of(wait_for(c, shape_updated, conv->cid), &d));
  }
  free(ids);
  json_decref(body);
}

static void rest_mutes_add(conn_t *c, const http_req_t *r) { rest_mutes_change(c, r, 1); }
static void rest_mutes_remove(conn_t *c, const http_req_t *r) { rest_mutes_change(c, r, 0); }

static void rest_mutes_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  const char *ids[1] = {conv->cid};
  json_t *arr = NULL;
  json_t *mu = NULL;
  if (store_conv_fetch(c->w->imw->reader, ids, 1, 1, &arr) == 0) mu = json_object_get(json_array_get(arr, 0), "mu");
  http_respond_json(c, r, 200, json_pack("{s:O}", "result", json_is_array(mu) ? mu : json_array()));
  json_decref(arr);
  conv_release(conv);
}

/* ---------------------------------------------------------------- messages */

static int priority_of(const char *p) {
  if (!p) return 2;
  if (strcasecmp(p, "high") == 0) return 1;
  if (strcasecmp(p, "low") == 0) return 3;
  return 2;
}

/* A JSON array of at most max non-empty strings as a borrowed C array (n set), or NULL
 * when it is something else; an absent array is an empty one. */
static char **string_array(json_t *a, size_t max, size_t *n) {
  *n = 0;
  if (!a) return xcalloc(1, sizeof(char *));
  if (!json_is_array(a) || json_array_size(a) > max) return NULL;
  char **v = xcalloc(json_array_size(a) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(a); i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!s || !*s || utf8_chars(s) > 64) {
      free(v);
      return NULL;
    }
    v[(*n)++] = (char *)s;
  }
  return v;
}

/* The message a REST body carries: a string, or an object sent as its JSON text. */
static char *message_text(json_t *body) {
  json_t *message = json_object_get(body, "message");
  return json_is_string(message) ? xstrdup(json_string_value(message))
         : json_is_object(message) ? json_dumps(message, JSON_COMPACT)
                                   : NULL;
}

enum { SEND_PLAIN, SEND_BROADCAST };

/* POST /1.2/rtm/{…}/:cid/messages {from_client, message, transient, no_sync, push_data,
 * priority, mention_all, mention_client_ids} → {"msg-id", "timestamp"} once stored. A
 * service conversation's /messages go to to_clients (≤ 20) only; its /broadcasts to every
 * subscriber. */
static void send_message(conn_t *c, const http_req_t *r, int mode, int global) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  /* POST /1.2/rtm/broadcasts names its service conversation in the body */
  const char *conv_id = global ? json_string_value(json_object_get(body, "conv_id")) : NULL;
  json_t *valid_till = global ? json_object_get(body, "valid_till") : NULL;
  int64_t now = now_ms();
  const char *from = json_string_value(json_object_get(body, "from_client"));
  char *text = message_text(body);
  json_t *pd = json_object_get(body, "push_data");
  if (!pd) pd = json_object_get(body, "push");
  char *push_data = json_is_object(pd) ? json_dumps(pd, JSON_COMPACT) : json_is_string(pd) ? xstrdup(json_string_value(pd)) : NULL;
  size_t nm = 0, nto = 0;
  char **mentions = json_is_object(body) ? string_array(json_object_get(body, "mention_client_ids"), 20, &nm) : NULL;
  char **to = json_is_object(body) ? string_array(json_object_get(body, "to_clients"), 20, &nto) : NULL;
  im_worker_t *w = c->w->imw;
  int sys = path_kind(r) == CONV_SYSTEM;
  if (!json_is_object(body) || !from || !*from || utf8_chars(from) > 64 || !text) {
    bad(c, r, "from_client (a client id) and message (a string) are required");
  } else if (global && (!conv_id || !*conv_id)) {
    bad(c, r, "conv_id (a service conversation) is required");
  } else if (valid_till && (!json_is_integer(valid_till) || json_integer_value(valid_till) <= now ||
                            json_integer_value(valid_till) > now + 31 * 86400000LL)) {
    bad(c, r, "valid_till must be a time in ms within the next month");
  } else if (strlen(text) > (size_t)w->im->cfg->max_message) {
    http_respond_error(c, r, 400, LC_FRAME_TOO_LONG, "message larger than the configured limit");
  } else if (!mentions) {
    bad(c, r, "mention_client_ids must be an array of at most 20 client ids");
  } else if (!to || (sys && mode == SEND_PLAIN && nto == 0)) {
    bad(c, r, "to_clients must be an array of 1 to 20 client ids (…/broadcasts reaches every subscriber)");
  } else if (nto && (!sys || mode != SEND_PLAIN)) {
    bad(c, r, "to_clients is for a service conversation's …/messages");
  } else if (pd && !push_data) {
    bad(c, r, "push_data must be a JSON object");
  } else {
    conv_t *conv = global ? find_conv(c, r, conv_id, CONV_SYSTEM) : path_conv(c, r);
    if (conv) {
      im_done_t d;
      /* a REST message to a chat room is never copied to the sender's own sessions */
      rest_msg_t msg = {.data = (const uint8_t *)text, .len = strlen(text),
                        .transient = json_is_true(json_object_get(body, "transient")),
                        .no_sync = json_is_true(json_object_get(body, "no_sync")) || conv->kind == CONV_ROOM,
                        .priority = priority_of(json_string_value(json_object_get(body, "priority"))),
                        .mention_all = json_is_true(json_object_get(body, "mention_all")), .mentions = mentions,
                        .nm = nm, .push_data = push_data, .to = to, .nto = nto};
      im_rest_send(w, conv, from, &msg, done_of(wait_for(c, shape_copy, conv->cid), &d));
    }
  }
  free(mentions);
  free(to);
  free(push_data);
  free(text);
  json_decref(body);
}

static void rest_send(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_PLAIN, 0); }
static void rest_broadcast(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_BROADCAST, 0); }
/* POST /1.2/rtm/broadcasts {from_client, conv_id, message, valid_till, push, transient}: a
 * broadcast to the service conversation's subscribers, as …/:cid/broadcasts. valid_till
 * is checked (≤ a month ahead) and not otherwise used: see docs/protocol-map.md. */
static void rest_global_broadcast(conn_t *c, const http_req_t *r) { send_message(c, r, SEND_BROADCAST, 1); }

static int64_t qint(const http_req_t *r, const char *key, int64_t def) {
  char *v = http_query_param(r, key);
  int64_t x = v && *v ? strtoll(v, NULL, 10) : def;
  free(v);
  return x;
}

static int qbool(const http_req_t *r, const char *key) {
  char *v = http_query_param(r, key);
  int yes = v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
  free(v);
  return yes;
}

/* PUT …/:cid/messages/:mid {"from_client", "message"} (edit) and …/:mid/recall
 * {"from_client"}: only as the message's sender; members get the patch push (§3.18).
 * "timestamp" is accepted and not needed: tern's message ids carry it. */
static void patch_message(conn_t *c, const http_req_t *r, int recall) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  const char *from = json_string_value(json_object_get(body, "from_client"));
  json_t *message = json_object_get(body, "message");
  char *text = json_is_string(message) ? xstrdup(json_string_value(message))
               : json_is_object(message) ? json_dumps(message, JSON_COMPACT)
                                         : NULL;
  if (!json_is_object(body) || !from || !*from || (!recall && !text)) {
    bad(c, r, recall ? "from_client (the sender) is required" : "from_client (the sender) and message are required");
  } else {
    conv_t *conv = path_conv(c, r);
    if (conv) {
      im_done_t d;
      waiting_t *wt = wait_for(c, shape_empty, conv->cid);
      int code = im_rest_patch(c->w->imw, conv->cid, http_path_param(r, "mid"), from, (const uint8_t *)text,
                               text ? strlen(text) : 0, 0, recall, done_of(wt, &d));
      if (code) answer(c->w->imw, wt, code, NULL);
      conv_release(conv);
    }
  }
  free(text);
  json_decref(body);
}

static void rest_edit(conn_t *c, const http_req_t *r) { patch_message(c, r, 0); }
static void rest_recall(conn_t *c, const http_req_t *r) { patch_message(c, r, 1); }

/* DELETE …/:cid/messages/:mid?from_client&timestamp — the server's copy only. */
static void rest_delete_message(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  char *from = http_query_param(r, "from_client");
  im_done_t d;
  waiting_t *wt = wait_for(c, shape_empty, conv->cid);
  int code = im_rest_delete(c->w->imw, conv, http_path_param(r, "mid"), from && *from ? from : NULL, done_of(wt, &d));
  if (code) answer(c->w->imw, wt, code, NULL);
  free(from);
  conv_release(conv);
}

/* GET /1.2/rtm/{…}/:cid/messages?msgid&timestamp&till_msgid&till_timestamp&include_start&
 * include_stop&reversed&limit — newest first unless reversed; limit default 100, max 1000. */
static void rest_history(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  char *msgid = http_query_param(r, "msgid"), *till = http_query_param(r, "till_msgid");
  int limit = (int)qint(r, "limit", 100);
  if (limit < 0) limit = 0;
  if (limit > 1000) limit = 1000;
  json_t *arr;
  /* …/subscribers/:client_id/messages: what that subscriber may read */
  if (im_rest_history(c->w->imw, conv, http_path_param(r, "client_id"), msgid, qint(r, "timestamp", 0), till, qint(r, "till_timestamp", 0),
                      qbool(r, "include_start"), qbool(r, "include_stop"), qbool(r, "reversed"), limit, &arr) < 0)
    http_respond_error(c, r, 500, 1, "history failed");
  else
    http_respond_json(c, r, 200, arr);
  free(msgid);
  free(till);
  conv_release(conv);
}

/* ---------------------------------------------------------------- clients */

/* POST /1.2/rtm/clients/check-online {"client_ids": [≤ 20]} → {"results": [online ids]} */
static void rest_check_online(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  size_t n;
  char **ids = json_is_object(body) ? client_ids(c, r, body, &n) : (bad(c, r, "the body must be a JSON object"), NULL);
  if (ids) {
    json_t *res = json_array();
    for (size_t i = 0; i < n && i < 20; i++)
      if (presence_online(c->w->srv->im->presence, ids[i])) json_array_append_new(res, json_string(ids[i]));
    http_respond_json(c, r, 200, json_pack("{s:o}", "results", res));
    free(ids);
  }
  json_decref(body);
}

typedef struct {
  int total;
  const char *only;
} unread_sum_t;

static void unread_sum(void *arg, const unread_view_t *u) {
  unread_sum_t *s = arg;
  if (!s->only || strcmp(s->only, u->cid) == 0) s->total += u->unread;
}

/* GET /1.2/rtm/clients/:client_id/unread-count[?conv_id] — the app key is enough. */
static void rest_unread_count(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 0) < 0) return;
  const char *client = http_path_param(r, "client_id");
  char *only = http_query_param(r, "conv_id");
  unread_sum_t s = {0, only};
  if (store_unread(c->w->imw->reader, client, 0, 1000, unread_sum, &s) < 0)
    http_respond_error(c, r, 500, 1, "storage failed");
  else
    http_respond_json(c, r, 200, json_pack("{s:i}", "count", s.total));
  free(only);
}

/* POST /1.2/rtm/clients/:client_id/kick {"reason"} — every session gets session/closed 4115. */
static void rest_kick(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  const char *client = http_path_param(r, "client_id");
  json_t *body = body_json(r);
  const char *reason = json_string_value(json_object_get(body, "reason"));
  if (reason && utf8_chars(reason) > 20) {
    bad(c, r, "reason is at most 20 characters");
  } else {
    uint64_t held[64];
    size_t n = presence_get(c->w->srv->im->presence, client, held, 64);
    for (size_t i = 0; i < n && i < 64; i++) im_session_kick(c->w->imw, held[i], LC_KICKED_BY_APP, reason);
    http_respond_json(c, r, 200, json_object());
  }
  json_decref(body);
}

/* GET /1.2/rtm/stats → {"result": {"online_user_count", "user_count_today"}}: clients online
 * now, and distinct clients that opened a session since 00:00 UTC (since start-up, if that
 * was later today: the count lives in memory). */
static void rest_stats(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  http_respond_json(c, r, 200,
                    json_pack("{s:{s:I, s:I}}", "result", "online_user_count",
                              (json_int_t)presence_count(c->w->srv->im->presence), "user_count_today",
                              (json_int_t)im_daily_count(now_ms())));
}

/* ---------------------------------------------------------------- shut-up and blacklists */

/* …/permanent-silenceds and …/blacklists answer {} — with "failed": [{client_id, code,
 * error}] added when some ids were refused (the owner, a full list) — and the first refusal
 * as the error when every id was. */
static void sets_answer(im_worker_t *w, void *arg, int code, json_t *result) {
  json_t *failed = json_object_get(result, "failed");
  if (!code && json_array_size(json_object_get(result, "allowed")) == 0 && json_array_size(failed) > 0) {
    json_t *first = json_array_get(failed, 0);
    json_t *e = json_pack("{s:s}", "error", json_string_value(json_object_get(first, "error")));
    answer(w, arg, (int)json_integer_value(json_object_get(first, "code")), e);
    json_decref(e);
    return;
  }
  answer(w, arg, code, result);
}

static json_t *shape_sets(void *ctx, json_t *result) {
  json_t *failed = json_object_get(result, "failed");
  return json_array_size(failed) ? json_pack("{s:O}", "failed", failed) : json_object();
}

static const im_done_t *sets_done(waiting_t *wt, im_done_t *d) {
  d->fn = sets_answer;
  d->arg = wt;
  return d;
}

/* POST / DELETE …/:cid/permanent-silenceds and …/:cid/blacklists {"client_ids": [≤ 500]}:
 * conv/add_shutup, remove_shutup and blacklist/block, unblock as the app's back end (initBy
 * ""): the targets and the members get the same pushes. Removing a shut-up this way lifts
 * a temporary one too. */
static void sets_change(conn_t *c, const http_req_t *r, int set, int add) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  size_t n;
  char **ids = json_is_object(body) ? client_ids(c, r, body, &n) : (bad(c, r, "the body must be a JSON object"), NULL);
  conv_t *conv = ids ? path_conv(c, r) : NULL;
  if (conv) {
    im_done_t d;
    waiting_t *wt = wait_for(c, shape_sets, conv->cid);
    if (set == SET_SHUTUP)
      conv_shutup_apply(c->w->imw, conv, "", ids, n, add, 0, sets_done(wt, &d));
    else
      conv_block_apply(c->w->imw, conv, "", ids, n, add, sets_done(wt, &d));
  }
  free(ids);
  json_decref(body);
}

static void rest_silence_add(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_SHUTUP, 1); }
static void rest_silence_remove(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_SHUTUP, 0); }
static void rest_block_add(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_BLOCK, 1); }
static void rest_block_remove(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_BLOCK, 0); }

typedef struct {
  json_t *ids;
  int limit;
  const char *last; /* the last id of the page, borrowed from ids */
} set_page_t;

static void set_page_row(void *arg, const char *client, int64_t at) {
  set_page_t *p = arg;
  if ((int)json_array_size(p->ids) == p->limit) { /* one more than the page: there is a next */
    p->last = json_string_value(json_array_get(p->ids, p->limit - 1));
    return;
  }
  json_array_append_new(p->ids, json_string(client));
}

/* GET …/:cid/permanent-silenceds and …/:cid/blacklists ?limit (default 10, ≤ 500) &next →
 * {"client_ids": [ids in order], "next"?: pass it back for the ids after this page}. The
 * silenced list leaves out temporary shut-ups. */
static void sets_list(conn_t *c, const http_req_t *r, int set) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  char *next = http_query_param(r, "next");
  set_page_t p = {json_array(), page_limit(r, 10, 500), NULL};
  if (store_conv_set_page(c->w->imw->reader, conv->id, set, set == SET_SHUTUP, next, p.limit + 1, set_page_row, &p) <
      0) {
    json_decref(p.ids);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else {
    json_t *res = json_pack("{s:o}", "client_ids", p.ids);
    if (p.last) json_object_set_new(res, "next", json_string(p.last));
    http_respond_json(c, r, 200, res);
  }
  free(next);
  conv_release(conv);
}

static void rest_silence_list(conn_t *c, const http_req_t *r) { sets_list(c, r, SET_SHUTUP); }
static void rest_block_list(conn_t *c, const http_req_t *r) { sets_list(c, r, SET_BLOCK); }

/* POST …/:cid/temporary-silenceds {"client_id", "ttl": seconds, 1 to 86400} → {}: a shut-up
 * that the server lifts after ttl (the target and members then hear unshutuped). Over a
 * permanent one it changes nothing; over a temporary one it sets the new end. */
static void rest_temp_silence(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  const char *id = json_string_value(json_object_get(body, "client_id"));
  json_t *ttl = json_object_get(body, "ttl");
  if (!id || !*id || utf8_chars(id) > 64) {
    bad(c, r, "client_id (1 to 64 characters) is required");
  } else if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 || json_integer_value(ttl) > 86400) {
    bad(c, r, "ttl must be a number of seconds from 1 to 86400 (24 hours)");
  } else {
    conv_t *conv = path_conv(c, r);
    if (conv) {
      im_done_t d;
      char *ids[1] = {(char *)id};
      int64_t until = now_ms() + json_integer_value(ttl) * 1000;
      conv_shutup_apply(c->w->imw, conv, "", ids, 1, 1, until, sets_done(wait_for(c, shape_sets, conv->cid), &d));
    }
  }
  json_decref(body);
}

/* DELETE …/:cid/temporary-silenceds?client_id= → {}: lifts the client's temporary shut-up
 * now; a permanent one stays (…/permanent-silenceds removes that). */
static void rest_temp_unsilence(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *id = http_query_param(r, "client_id");
  conv_t *conv = NULL;
  if (!id || !*id || utf8_chars(id) > 64) {
    bad(c, r, "client_id (1 to 64 characters) is required");
  } else if ((conv = path_conv(c, r))) {
    int64_t until = 0;
    int rc = store_conv_set_expiry(c->w->imw->reader, conv->id, SET_SHUTUP, id, &until);
    if (rc == TERN_ESTORE) {
      http_respond_error(c, r, 500, 1, "storage failed");
    } else if (rc == TERN_ENOENT || until == 0) { /* nothing temporary to lift */
      http_respond_json(c, r, 200, json_object());
    } else {
      im_done_t d;
      char *ids[1] = {id};
      conv_shutup_apply(c->w->imw, conv, "", ids, 1, 0, 0, sets_done(wait_for(c, shape_sets, conv->cid), &d));
      conv = NULL; /* the apply took it */
    }
  }
  if (conv) conv_release(conv);
  free(id);
}

/* ---------------------------------------------------------------- member roles */

/* {"updatedAt", "objectId": the member info's id} */
static json_t *shape_info(void *ctx, json_t *result) {
  waiting_t *wt = ctx;
  char iso[ISO_LEN + 1];
  iso_format(json_integer_value(json_object_get(result, "updated_at")), iso);
  const char *id = json_string_value(json_object_get(result, "info_id"));
  return json_pack("{s:s, s:s}", "updatedAt", iso, "objectId", id ? id : wt->cid);
}

typedef struct {
  const char *info_id;
  char *client;
} info_owner_t;

static void info_owner(void *arg, const member_info_t *mi) {
  info_owner_t *o = arg;
  if (!o->client && strcmp(mi->info_id, o->info_id) == 0) o->client = xstrdup(mi->client);
}

/* Sets the role; answers a refusal (the owner, an unknown role, not a member) itself. */
static void role_change(conn_t *c, const http_req_t *r, conv_t *conv, const char *client, const char *role,
                        int drop_row, const char *info_id) {
  im_done_t d;
  waiting_t *wt = wait_for(c, shape_info, info_id ? info_id : conv->cid);
  const char *detail = NULL;
  int code = conv_role_apply(c->w->imw, conv, "", client, role, drop_row, done_of(wt, &d), &detail);
  if (code) {
    json_t *e = json_pack("{s:s}", "error", detail ? detail : lc_error_name(code));
    answer(c->w->imw, wt, code, e);
    json_decref(e);
  }
}

/* POST …/:cid/member-infos {"clientId", "role": Member | Manager} and PUT
 * …/member-infos/:info_id {"role"} → {"updatedAt", "objectId"}: what conv/member_info_update
 * does, as the app's back end (members hear member_info_changed with initBy ""). The owner
 * is the creator and cannot change, or be given away. A Member row is kept so its objectId
 * stays valid; DELETE …/member-infos/:info_id drops the row (the client is a Member). */
static void rest_info_set(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = body_json(r);
  const char *info_id = http_path_param(r, "info_id");
  const char *client = json_string_value(json_object_get(body, "clientId"));
  if (!client) client = json_string_value(json_object_get(body, "client_id"));
  const char *role = json_string_value(json_object_get(body, "role"));
  info_owner_t o = {info_id, NULL};
  conv_t *conv = NULL;
  if (!json_is_object(body) || !role || (!info_id && (!client || !*client || utf8_chars(client) > 64))) {
    bad(c, r, info_id ? "role is required" : "clientId (1 to 64 characters) and role are required");
  } else if ((conv = path_conv(c, r))) {
    if (info_id && store_member_infos(c->w->imw->reader, conv->id, info_owner, &o) < 0) {
      http_respond_error(c, r, 500, 1, "storage failed");
    } else if (info_id && (!o.client || (client && strcmp(client, o.client) != 0))) {
      http_respond_error(c, r, 404, 101, "member info not found");
    } else {
      role_change(c, r, conv, info_id ? o.client : client, role, 0, info_id);
      conv = NULL;
    }
  }
  if (conv) conv_release(conv);
  free(o.client);
  json_decref(body);
}

static void rest_info_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = path_conv(c, r);
  if (!conv) return;
  info_owner_t o = {http_path_param(r, "info_id"), NULL};
  if (store_member_infos(c->w->imw->reader, conv->id, info_owner, &o) < 0) {
    http_respond_error(c, r, 500, 1, "storage failed");
  } else if (!o.client) {
    http_respond_error(c, r, 404, 101, "member info not found");
  } else {
    role_change(c, r, conv, o.client, "Member", 1, o.info_id);
    conv = NULL;
  }
  if (conv) conv_release(conv);
  free(o.client);
}

typedef struct {
  json_t *results;
  const char *role;
  int skip, limit;
} infos_page_t;

static void info_row(void *arg, const member_info_t *mi) {
  infos_page_t *p = arg;
  if (p->role && strcmp(p->role, mi->role) != 0) return;
  if (p->skip > 0) {
    p->skip--;
    return;
  }
  if ((int)json_array_size(p->results) < p->limit)
    json_array_append_new(
        p->results, json_pack("{s:s, s:s, s:s}", "clientId", mi->client, "objectId", mi->info_id, "role", mi->role));
}

/* GET …/:cid/member-infos?skip&limit(default 100, ≤ 1000)&role → {"results": [{clientId,
 * objectId, role}]} in client order: the kept rows (the owner, the creator, has none). */
static void rest_info_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *role = http_query_param(r, "role");
  if (role && *role && strcmp(role, "Member") != 0 && strcmp(role, "Manager") != 0 && strcmp(role, "Owner") != 0) {
    bad(c, r, "role must be Member, Manager or Owner");
    free(role);
    return;
  }
  conv_t *conv = path_conv(c, r);
  if (conv) {
    int64_t skip = qint(r, "skip", 0);
    infos_page_t p = {json_array(), role && *role ? role : NULL,
                      skip < 0        ? 0
                      : skip > 100000 ? 100000
                                      : (int)skip,
                      page_limit(r, 100, 1000)};
    if (store_member_infos(c->w->imw->reader, conv->id, info_row, &p) < 0) {
      json_decref(p.results);
      http_respond_error(c, r, 500, 1, "storage failed");
    } else {
      http_respond_json(c, r, 200, json_pack("{s:o}", "results", p.results));
    }
    conv_release(conv);
  }
  free(role);
}

/* ---------------------------------------------------------------- app-wide history */

/* One history item (the shape of im_rest_history's) for a message of any conversation. */
static json_t *app_item(const char *cid, int kind, const msg_view_t *m) {
  int bin = m->flags & MSG_F_BIN;
  json_t *data;
  if (bin) {
    char *b64 = xmalloc(base64_encoded_len(m->len) + 1);
    data = json_stringn(b64, base64_encode(m->data, m->len, b64));
    free(b64);
  } else {
    data = json_stringn((const char *)m->data, m->len);
  }
  json_t *it = json_pack("{s:I, s:o, s:s, s:s, s:b, s:s, s:s, s:b, s:b}", "timestamp", (json_int_t)m->ts, "data", data,
                         "from", m->sender, "msg-id", m->mid, "bin", bin != 0, "conv-id", cid, "to", cid, "is-conv", 1,
                         "is-room", kind == CONV_ROOM);
  if (m->patch_ts) json_object_set_new(it, "patch-timestamp", json_integer(m->patch_ts));
  return it;
}

static void app_row(void *arg, const char *cid, int kind, const msg_view_t *m) {
  json_array_append_new(arg, app_item(cid, kind, m));
}

/* A page of the app's history, read on the thread pool with a reader of its own: it scans
 * the message table (store_app_logs), which must not hold up a network loop. */
typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  store_t *store;
  app_logs_req_t q;
  char *sender, *lo_mid, *hi_mid;
  json_t *out; /* NULL: the read failed */
} app_hist_t;

static void app_hist_work(uv_work_t *wk) {
  app_hist_t *h = (app_hist_t *)wk;
  store_reader_t *rd = store_reader_new(h->store);
  json_t *arr = json_array();
  if (!rd || store_app_logs(rd, &h->q, app_row, arr) < 0) {
    json_decref(arr);
    arr = NULL;
  }
  store_reader_free(rd);
  h->out = arr;
}

static void app_hist_after(uv_work_t *wk, int status) {
  app_hist_t *h = (app_hist_t *)wk;
  conn_t *c = htab_get(&h->w->conns, h->conn);
  const http_req_t *r = c && !c->reaping ? http_deferred_req(c) : NULL;
  if (r) {
    if (h->out)
      http_respond_json(c, r, 200, json_incref(h->out));
    else
      http_respond_error(c, r, 500, 1, "history failed");
    http_resume(c);
  }
  json_decref(h->out);
  free(h->sender);
  free(h->lo_mid);
  free(h->hi_mid);
  free(h);
}

/* A page bound from (msgid, timestamp): the message itself when the id is ours, else the
 * time. *mid_out keeps the id the bound points into. */
static void app_bound(const http_req_t *r, const char *mid_key, const char *ts_key, const char *incl_key,
                      msg_bound_t *b, char **mid_out) {
  char *mid = http_query_param(r, mid_key);
  int64_t ts = qint(r, ts_key, 0), mts, mseq;
  b->incl = qbool(r, incl_key);
  if (mid && msgid_parse(mid, &mts, &mseq) == 0) {
    b->has = 1;
    b->ts = mts;
    b->seq = mseq;
    b->mid = *mid_out = mid;
    return;
  }
  free(mid);
  if (ts > 0) {
    b->has = 1;
    b->ts = ts;
  }
}

/* GET /1.2/rtm/messages and GET /1.2/rtm/clients/:client_id/messages (the messages that
 * client sent): history params as …/:cid/messages (msgid+timestamp start, till_msgid+
 * till_timestamp end, include_start, include_stop, reversed, limit 100 ≤ 1000), across
 * every conversation in (timestamp, msg-id) order. */
static void rest_app_history(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  const char *sender = http_path_param(r, "client_id");
  if (sender && utf8_chars(sender) > 64) {
    bad(c, r, "client_id is at most 64 characters");
    return;
  }
  app_hist_t *h = xcalloc(1, sizeof *h);
  h->w = c->w;
  h->conn = c->id;
  h->store = c->w->imw->im->store;
  h->q.newer = qbool(r, "reversed");
  h->q.limit = (int)qint(r, "limit", 100);
  if (h->q.limit < 0) h->q.limit = 0;
  if (h->q.limit > 1000) h->q.limit = 1000;
  h->q.sender = h->sender = sender ? xstrdup(sender) : NULL;
  /* newest first: the start is the upper bound; reversed: the lower */
  msg_bound_t *start = h->q.newer ? &h->q.lo : &h->q.hi, *stop = h->q.newer ? &h->q.hi : &h->q.lo;
  app_bound(r, "msgid", "timestamp", "include_start", start, h->q.newer ? &h->lo_mid : &h->hi_mid);
  app_bound(r, "till_msgid", "till_timestamp", "include_stop", stop, h->q.newer ? &h->hi_mid : &h->lo_mid);
  http_defer(c);
  uv_queue_work(&c->w->loop, &h->work, app_hist_work, app_hist_after);
}

/* ---------------------------------------------------------------- broadcasts */

/* The service conversation named by ?conv_id; answers 400 or 404 itself. */
static conv_t *query_service_conv(conn_t *c, const http_req_t *r) {
  char *cid = http_query_param(r, "conv_id");
  conv_t *conv = NULL;
  if (!cid || !*cid)
    bad(c, r, "conv_id (a service conversation) is required");
  else
    conv = find_conv(c, r, cid, CONV_SYSTEM);
  free(cid);
  return conv;
}

/* GET /1.2/rtm/broadcasts?conv_id&limit(default 10, ≤ 1000)&skip → the service
 * conversation's broadcasts, newest first, as history items: its messages for every
 * subscriber, not those for chosen subscribers or a subscriber's own. */
static void rest_broadcast_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = query_service_conv(c, r);
  if (!conv) return;
  int limit = page_limit(r, 10, 1000);
  int64_t skip = qint(r, "skip", 0);
  if (skip < 0) skip = 0;
  if (skip > 10000) skip = 10000;
  json_t *arr;
  /* viewer "": no client is named "", so only the messages with no readers list match */
  if (im_rest_history(c->w->imw, conv, "", NULL, 0, NULL, 0, 0, 0, 0, limit + (int)skip, &arr) < 0) {
    http_respond_error(c, r, 500, 1, "history failed");
  } else {
    json_t *page = json_array();
    for (size_t i = (size_t)skip; i < json_array_size(arr); i++)
      json_array_append(page, json_array_get(arr, i));
    json_decref(arr);
    http_respond_json(c, r, 200, page);
  }
  conv_release(conv);
}

/* DELETE /1.2/rtm/broadcasts/:mid?conv_id → {}: the server's copy goes (as …/messages/:mid). */
static void rest_broadcast_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = query_service_conv(c, r);
  if (!conv) return;
  im_done_t d;
  waiting_t *wt = wait_for(c, shape_empty, conv->cid);
  int code = im_rest_delete(c->w->imw, conv, http_path_param(r, "mid"), NULL, done_of(wt, &d));
  if (code) answer(c->w->imw, wt, code, NULL);
  conv_release(conv);
}

/* ---------------------------------------------------------------- user login signatures */

/* POST /1.1/rtm/sign {"session_token"} (what JS and Swift call for createIMClient(user))
 * and GET /1.2/rtm/clients/sign?session_token= → {"signature", "nonce", "client_id",
 * "timestamp"}: a login signature for the user the token belongs to, its objectId as the
 * client id. tern keeps no users: it asks the storage API named by users_url (GET
 * /1.1/users/me with X-LC-Session-Token), then _rtmClientSign when that hook is on. */
typedef struct {
  waiting_t *wt;
  im_t *im;
  char *user_id;
} user_sign_t;

static void user_sign_finish(im_worker_t *w, user_sign_t *us, int code, const char *why) {
  if (code) {
    json_t *e = json_pack("{s:s}", "error", why);
    answer(w, us->wt, code, e);
    json_decref(e);
  } else {
    uint8_t raw[8];
    char nonce[17], sig[41];
    random_bytes(raw, sizeof raw);
    hex_encode(raw, sizeof raw, nonce);
    int64_t ts = now_ms();
    char *text = sign_string_login(w->im->app_id, us->user_id, ts, nonce);
    sign_make(w->im->master_key, text, sig);
    free(text);
    json_t *res = json_pack("{s:s, s:s, s:s, s:I}", "signature", sig, "nonce", nonce, "client_id", us->user_id,
                            "timestamp", (json_int_t)ts);
    answer(w, us->wt, 0, res);
    json_decref(res);
  }
  free(us->user_id);
  free(us);
}

static void user_sign_hook_done(im_worker_t *w, void *arg, json_t *result, int failed) {
  /* only a clear yes signs: true, or an object (a cloud function that returned one) */
  int yes = !failed && result && (json_is_true(result) || json_is_object(result));
  const char *why = json_string_value(json_object_get(result, "error"));
  user_sign_finish(w, arg, yes ? 0 : LC_SIGNATURE_FAILED, why ? why : "refused by _rtmClientSign");
}

static void user_sign_me_done(void *arg, const httpc_result_t *res) {
  user_sign_t *us = arg;
  im_worker_t *w = us->im->workers[worker_current()];
  json_t *user = res->status ? json_loadb(res->body, res->len, 0, NULL) : NULL;
  const char *id = json_string_value(json_object_get(user, "objectId"));
  if (res->status != 200 || !id || !*id || utf8_chars(id) > 64) {
    log_at(LOG_WARN, "rtm/sign: users_url answered %ld%s%s", res->status, res->error ? ": " : "", res->error ? res->error : "");
    json_decref(user);
    int status = res->status;
    user_sign_finish(w, us, status >= 400 && status < 500 ? LC_SIGNATURE_FAILED : LC_INTERNAL_ERROR,
                     status >= 400 && status < 500 ? "the session token belongs to no user" : "the user service did not answer");
    return;
  }
  us->user_id = xstrdup(id);
  if (hook_enabled(w->im->hooks, HOOK_RTM_CLIENT_SIGN)) {
    hook_call(w, HOOK_RTM_CLIENT_SIGN, json_pack("{s:O}", "user", user), user_sign_hook_done, us);
  } else {
    user_sign_finish(w, us, 0, NULL);
  }
  json_decref(user);
}

static void rest_user_sign(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 0) < 0) return;
  const tern_config_t *cfg = c->w->srv->cfg;
  json_t *body = r->method == HTTP_POST ? body_json(r) : NULL;
  char *token = r->method == HTTP_POST ? xstrdup(json_string_value(json_object_get(body, "session_token")) ?: "")
                                       : http_query_param(r, "session_token");
  json_decref(body);
  im_worker_t *w = c->w->imw;
  if (!token || !*token || strlen(token) > 256 || strpbrk(token, "\r\n")) {
    bad(c, r, "session_token is required");
  } else if (!*cfg->users_url || !w->http) {
    http_respond_error(c, r, 501, 1, "user login needs users_url: the storage API that knows the app's users");
  } else {
    user_sign_t *us = xcalloc(1, sizeof *us);
    us->im = w->im;
    us->wt = wait_for(c, shape_copy, NULL);
    char url[1024], id[256], key[256], tok[300];
    snprintf(url, sizeof url, "%s/1.1/users/me", cfg->users_url);
    snprintf(id, sizeof id, "X-LC-Id: %s", c->w->srv->app_id);
    snprintf(key, sizeof key, "X-LC-Key: %s", c->w->srv->app_key);
    snprintf(tok, sizeof tok, "X-LC-Session-Token: %s", token);
    const char *headers[] = {id, key, tok, NULL};
    if (httpc_request(w->http, "GET", url, headers, NULL, 0, cfg->hook_timeout, 0, user_sign_me_done, us) < 0) {
      httpc_result_t res = {.error = "request not started", .body = ""};
      user_sign_me_done(us, &res);
    }
  }
  free(token);
}

/* ---------------------------------------------------------------- the table */

#define CONV_ROUTES(prefix)                                                                   \
  {HTTP_POST, prefix, rest_conv_create}, {HTTP_GET, prefix, rest_conv_list},                  \
      {HTTP_GET, prefix "/:cid", rest_conv_get}, {HTTP_PUT, prefix "/:cid", rest_conv_update}, \
      {HTTP_DELETE, prefix "/:cid", rest_conv_delete},                                          \
      {HTTP_POST, prefix "/:cid/messages", rest_send}, {HTTP_GET, prefix "/:cid/messages", rest_history},       \
      {HTTP_PUT, prefix "/:cid/messages/:mid", rest_edit}, {HTTP_PUT, prefix "/:cid/messages/:mid/recall", rest_recall}, \
      {HTTP_DELETE, prefix "/:cid/messages/:mid", rest_delete_message},                         \
      {HTTP_POST, prefix "/:cid/blacklists", rest_block_add},                                   \
      {HTTP_DELETE, prefix "/:cid/blacklists", rest_block_remove},                              \
      {HTTP_GET, prefix "/:cid/blacklists", rest_block_list}

/* shut-up and roles: normal conversations and chat rooms (§7.1, §7.2) */
#define MODERATION_ROUTES(prefix)                                                   \
  {HTTP_POST, prefix "/:cid/permanent-silenceds", rest_silence_add},                \
      {HTTP_DELETE, prefix "/:cid/permanent-silenceds", rest_silence_remove},       \
      {HTTP_GET, prefix "/:cid/permanent-silenceds", rest_silence_list},            \
      {HTTP_POST, prefix "/:cid/temporary-silenceds", rest_temp_silence},           \
      {HTTP_DELETE, prefix "/:cid/temporary-silenceds", rest_temp_unsilence},       \
      {HTTP_POST, prefix "/:cid/member-infos", rest_info_set},                      \
      {HTTP_GET, prefix "/:cid/member-infos", rest_info_list},                      \
      {HTTP_PUT, prefix "/:cid/member-infos/:info_id", rest_info_set},              \
      {HTTP_DELETE, prefix "/:cid/member-infos/:info_id", rest_info_delete}

const rest_route_t rest_rtm_routes[] = {
    CONV_ROUTES("/1.2/rtm/conversations"),
    CONV_ROUTES("/1.2/rtm/chatrooms"),
    CONV_ROUTES("/1.2/rtm/service-conversations"),
    MODERATION_ROUTES("/1.2/rtm/conversations"),
    MODERATION_ROUTES("/1.2/rtm/chatrooms"),
    {HTTP_POST, "/1.2/rtm/conversations/:cid/members", rest_members_add},
    {HTTP_DELETE, "/1.2/rtm/conversations/:cid/members", rest_members_remove},
    {HTTP_GET, "/1.2/rtm/conversations/:cid/members", rest_members_list},
    {HTTP_GET, "/1.2/rtm/chatrooms/:cid/members", rest_members_list},
    {HTTP_GET, "/1.2/rtm/chatrooms/:cid/members/online-count", rest_room_online_count},
    {HTTP_POST, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_add},
    {HTTP_DELETE, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_remove},
    {HTTP_GET, "/1.2/rtm/conversations/:cid/mutes", rest_mutes_list},
    {HTTP_POST, "/1.2/rtm/service-conversations/:cid/subscribers", rest_subscribe},
    {HTTP_DELETE, "/1.2/rtm/service-conversations/:cid/subscribers/:client_id", rest_unsubscribe},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers", rest_subscribers},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers/count", rest_subscriber_count},
    {HTTP_GET, "/1.2/rtm/service-conversations/:cid/subscribers/:client_id/messages", rest_history},
    {HTTP_POST, "/1.2/rtm/service-conversations/:cid/broadcasts", rest_broadcast},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/service-conversations", rest_client_subscriptions},
    {HTTP_POST, "/1.2/rtm/clients/check-online", rest_check_online},
    {HTTP_GET, "/1.2/rtm/clients/sign", rest_user_sign},
    {HTTP_POST, "/1.1/rtm/sign", rest_user_sign},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/unread-count", rest_unread_count},
    {HTTP_POST, "/1.2/rtm/clients/:client_id/kick", rest_kick},
    {HTTP_GET, "/1.2/rtm/stats", rest_stats},
    {HTTP_GET, "/1.2/rtm/all-conversations", rest_all_conversations},
    {HTTP_GET, "/1.2/rtm/messages", rest_app_history},
    {HTTP_GET, "/1.2/rtm/clients/:client_id/messages", rest_app_history},
    {HTTP_POST, "/1.2/rtm/broadcasts", rest_global_broadcast},
    {HTTP_GET, "/1.2/rtm/broadcasts", rest_broadcast_list},
    {HTTP_DELETE, "/1.2/rtm/broadcasts/:mid", rest_broadcast_delete},
    {0, NULL, NULL},
};
