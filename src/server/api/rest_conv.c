/* rest_conv.c — conversations over REST: create, query, update, delete; their members,
 * mutes, subscribers, shut-ups, blacklists and roles.
 *
 * Part of the /1.2/rtm REST API (protocol.md §7); the plumbing every handler uses and the
 * route table are in rest_rtm.c, declared in rest_rtm.h. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "jsonlim.h"
#include "rest_rtm.h"
#include "timeutil.h"
#include "utf8.h"

/* ---------------------------------------------------------------- conversations */

/* The answer is built before the conversation is: what the create's done adds is the id
 * (the twin's when a unique one existed) and then, for a twin, its createdAt and 200. */
typedef struct {
  rest_wait_t *wt;
  json_t *answer; /* the fields echoed back */
} create_wait_t;

static json_t *shape_created(void *ctx, json_t *result) { return json_incref(result); }

static void create_done(im_worker_t *w, void *arg, int code, json_t *result) {
  create_wait_t *cw = arg;
  if (!code) {
    json_object_set(cw->answer, "objectId", json_object_get(result, "objectId"));
    if (json_is_true(json_object_get(result, "existing"))) {
      char iso[ISO_LEN + 1];
      iso_format(json_integer_value(json_object_get(result, "createdAt")), iso);
      json_object_set_new(cw->answer, "createdAt", json_string(iso));
      const char *hash = json_string_value(json_object_get(cw->answer, "uniqueId"));
      if (hash) { /* an imported twin answers its own (LeanCloud's) uniqueId */
        char *uid = conv_visible_unique_id(w, json_string_value(json_object_get(result, "objectId")), hash);
        json_object_set_new(cw->answer, "uniqueId", json_string(uid));
        free(uid);
      }
      cw->wt->status = 200;
    }
  }
  rest_answer(w, cw->wt, code, code ? NULL : cw->answer);
  json_decref(cw->answer);
  free(cw);
}

/* POST /1.2/rtm/{conversations,chatrooms,service-conversations}
 * {"name", "m": […], "unique", <other fields>} → {objectId, createdAt, updatedAt, name, m, unique, uniqueId}
 * Created by im's conv_create_apply, as conv/start creates: the same row and document. */
void rest_conv_create(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  im_worker_t *w = c->w->imw;
  json_t *body = rest_body_json(r);
  if (!json_is_object(body)) {
    json_decref(body);
    rest_bad(c, r, "the body must be a JSON object");
    return;
  }
  int kind = rest_path_kind(r);
  json_t *m = json_object_get(body, "m");
  if (m && !json_is_array(m)) {
    json_decref(body);
    rest_bad(c, r, "m must be an array of client ids");
    return;
  }
  for (size_t i = 0; i < json_array_size(m); i++) {
    if (!rest_client_id_ok(c, r, json_string_value(json_array_get(m, i)), "each of m")) {
      json_decref(body);
      return;
    }
  }
  json_t *cv = json_object_get(body, "c");
  if (cv && !rest_client_id_ok(c, r, json_string_value(cv), "c (the creator)")) {
    json_decref(body);
    return;
  }
  /* REST writes beyond max_members are truncated to the first ones (§9.1) */
  size_t n = kind == CONV_NORMAL ? json_array_size(m) : 0, cap = (size_t)w->im->cfg->max_members;
  if (n > cap) n = cap;
  char **ids = xcalloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++) ids[i] = (char *)json_string_value(json_array_get(m, i)); /* checked above */
  int unique = kind == CONV_NORMAL && json_is_true(json_object_get(body, "unique"));
  conv_spec_t sp = {
      .kind = kind, .creator = json_string_value(cv), .members = ids, .n = n, .doc = body, .unique = unique};
  /* the members as stored: sorted, distinct */
  members_t *sorted = members_new(ids, n);
  json_t *members = json_array();
  for (size_t i = 0; i < sorted->n; i++) json_array_append_new(members, json_string(sorted->ids[i]));
  char iso[ISO_LEN + 1];
  iso_format(now_ms(), iso);
  create_wait_t *cw = xcalloc(1, sizeof *cw);
  cw->answer = json_pack("{s:s, s:s, s:s, s:o, s:b}", "objectId", "", "createdAt", iso, "updatedAt", iso, "m", members,
                         "unique", unique);
  if (json_is_string(json_object_get(body, "name"))) json_object_set(cw->answer, "name", json_object_get(body, "name"));
  if (unique) {
    char hex[33];
    conv_unique_id(sorted->ids, sorted->n, 0, hex);
    json_object_set_new(cw->answer, "uniqueId", json_string(hex));
  }
  members_release(sorted);
  cw->wt = rest_wait(c, shape_created, NULL);
  cw->wt->status = 201;
  im_done_t d = {create_done, cw};
  char err[160];
  if (conv_create_apply(w, &sp, &d, err, sizeof err) < 0) {
    json_t *why = json_pack("{s:s}", "error", err); /* 400 with code 107, as rest_bad answers */
    rest_answer(w, cw->wt, 107, why);
    json_decref(why);
    json_decref(cw->answer);
    free(cw);
  }
  free(ids);
  json_decref(body);
}

/* GET /1.2/rtm/{…}?where&skip&limit&order — all conversations of the kind by default;
 * GET /1.2/rtm/all-conversations: of every kind the query language knows (normal, chat
 * room, service; temporary conversations are not queryable, as over the protocol). */
static void conv_list(conn_t *c, const http_req_t *r, int all_kinds) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *where_s = http_query_param(r, "where"), *skip_s = http_query_param(r, "skip"),
       *limit_s = http_query_param(r, "limit"), *order = http_query_param(r, "order");
  json_t *where = where_s && *where_s ? json_loads_capped(where_s, 0, NULL) : json_object();
  char err[200] = "";
  if (!json_is_object(where)) {
    rest_bad(c, r, "where must be a JSON object (nested at most 64 levels)");
    goto done;
  }
  int kind = rest_path_kind(r);
  /* the kind of this path, and "no condition" means everything of it (not "m contains me") */
  json_t *scope = all_kinds ? json_pack("{s:{s:b}}", "objectId", "$exists", 1)
                            : json_pack("{s:b, s:b}", "tr", kind == CONV_ROOM, "sys", kind == CONV_SYSTEM);
  json_t *all = json_pack("{s:[o, O]}", "$and", scope, where);
  /* strtoll, not atoi: a number past int is clamped, not atoi's undefined case */
  long long lim = limit_s ? strtoll(limit_s, NULL, 10) : 10, sk = skip_s ? strtoll(skip_s, NULL, 10) : 0;
  int limit = lim <= 0 ? 10 : lim > 1000 ? 1000 : (int)lim;
  int skip = sk < 0 ? 0 : sk > INT_MAX ? INT_MAX : (int)sk;
  /* on the query threads, within query_timeout (4310 → 400 past it), like conv query */
  im_done_t d;
  rest_wait_t *wt = rest_wait(c, shape_created, NULL);
  if (conv_query_run(c->w->imw, c->ip, all, "", order, limit, skip, 0, 0, rest_done(wt, &d), err, sizeof err) < 0) {
    json_t *why = json_pack("{s:s}", "error", err); /* 400, as for any query the server refuses */
    rest_answer(c->w->imw, wt, LC_CONVERSATION_QUERY_FAILED, why);
    json_decref(why);
  }
  json_decref(all);
done:
  json_decref(where);
  free(where_s);
  free(skip_s);
  free(limit_s);
  free(order);
}

void rest_conv_list(conn_t *c, const http_req_t *r) { conv_list(c, r, 0); }
void rest_all_conversations(conn_t *c, const http_req_t *r) { conv_list(c, r, 1); }

/* One conversation's document as store_conv_fetch gives it (flags as there): a new
 * reference, or NULL when it is gone or unreadable. */
static json_t *conv_doc(conn_t *c, const conv_t *conv, int flags) {
  const char *ids[1] = {conv->cid};
  json_t *arr = json_array();
  json_t *doc = store_conv_fetch(c->w->imw->reader, ids, 1, flags, conv_view_append, arr) == 0
                    ? json_incref(json_array_get(arr, 0))
                    : NULL;
  json_decref(arr);
  return doc;
}

void rest_conv_get(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  json_t *doc = conv_doc(c, conv, 0);
  if (doc) http_respond_json(c, r, 200, doc);
  else http_respond_error(c, r, 404, LC_CONVERSATION_NOT_FOUND, "conversation not found");
  conv_release(conv);
}

/* PUT /1.2/rtm/{…}/:cid {fields} — like conv/update from the app: members get `updated`. */
void rest_conv_update(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  if (!json_is_object(body) || json_object_get(body, "m")) {
    json_decref(body);
    rest_bad(c, r, "the body must be a JSON object of fields (m changes through …/members)");
    return;
  }
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) {
    json_decref(body);
    return;
  }
  im_done_t d;
  conv_attr_apply(c->w->imw, conv, "", body, 0, rest_done(rest_wait(c, rest_shape_updated, conv->cid), &d));
  json_decref(body);
}

/* DELETE /1.2/rtm/{…}/:cid — later use gets 4401/4303, like an expired conversation
 * (im's conv_delete, as the idle sweep deletes). */
void rest_conv_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  im_done_t d;
  conv_delete(c->w->imw, conv, 0, rest_done(rest_wait(c, rest_shape_empty, conv->cid), &d));
}

/* ---------------------------------------------------------------- members and mutes */

static void rest_members_change(conn_t *c, const http_req_t *r, int add) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  size_t n;
  char **ids = rest_client_ids(c, r, body, &n);
  if (!ids) {
    json_decref(body);
    return;
  }
  conv_t *conv = rest_path_conv(c, r);
  if (conv && conv->kind != CONV_NORMAL) {
    http_respond_error(c, r, 400, LC_CONVERSATION_READ_ONLY, "only normal conversations have a member list");
    conv_release(conv);
    conv = NULL;
  }
  if (conv) {
    im_done_t d;
    /* initBy "": the app's back end, not a client */
    conv_members_apply(c->w->imw, conv, "", ids, n, add, NULL,
                       rest_done(rest_wait(c, rest_shape_updated, conv->cid), &d));
  }
  free(ids);
  json_decref(body);
}

void rest_members_add(conn_t *c, const http_req_t *r) { rest_members_change(c, r, 1); }
void rest_members_remove(conn_t *c, const http_req_t *r) { rest_members_change(c, r, 0); }

/* ---------------------------------------------------------------- service-conversation subscribers */

/* POST …/service-conversations/:cid/subscribers {"client_id"} and DELETE
 * …/subscribers/:client_id → {} (what the client's own subscribe / unsubscribe does). */
static void subscription(conn_t *c, const http_req_t *r, int add) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = add ? rest_body_json(r) : NULL;
  const char *id = add ? json_string_value(json_object_get(body, "client_id")) : http_path_param(r, "client_id");
  if (rest_client_id_ok(c, r, id, "client_id")) {
    conv_t *conv = rest_path_conv(c, r);
    if (conv) {
      im_done_t d;
      char *ids[1] = {(char *)id};
      conv_members_apply(c->w->imw, conv, id, ids, 1, add, NULL,
                         rest_done(rest_wait(c, rest_shape_empty, conv->cid), &d));
    }
  }
  json_decref(body);
}

void rest_subscribe(conn_t *c, const http_req_t *r) { subscription(c, r, 1); }
void rest_unsubscribe(conn_t *c, const http_req_t *r) { subscription(c, r, 0); }

typedef struct {
  json_t *out;
  const char *cid, *client; /* the fixed half of each row */
} pairs_t;

static void subscriber_row(void *arg, const char *key, int64_t at) {
  pairs_t *p = arg;
  json_array_append_new(p->out, json_pack("{s:I, s:s, s:s}", "timestamp", (json_int_t)at, "subscriber",
                                          p->client ? p->client : key, "conv_id", p->cid ? p->cid : key));
}

/* GET …/service-conversations/:cid/subscribers?limit(≤ 50)&client_id (cursor: after it)
 * → [{"timestamp", "subscriber", "conv_id"}] in client id order. */
void rest_subscribers(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  char *after = http_query_param(r, "client_id");
  pairs_t p = {json_array(), conv->cid, NULL};
  if (store_members_page(c->w->imw->reader, conv->id, after, rest_page_limit(r, 50, 50), subscriber_row, &p) < 0) {
    json_decref(p.out);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else {
    http_respond_json(c, r, 200, p.out);
  }
  free(after);
  conv_release(conv);
}

/* GET …/service-conversations/:cid/subscribers/count → {"count"} */
void rest_subscriber_count(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  members_t *m = conv_members(conv);
  http_respond_json(c, r, 200, json_pack("{s:I}", "count", (json_int_t)(m ? m->n : 0)));
  members_release(m);
  conv_release(conv);
}

/* GET /1.2/rtm/clients/:client_id/service-conversations?conv_id (cursor)&limit(50)
 * → the service conversations the client subscribes to, same rows. */
void rest_client_subscriptions(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  if (!rest_client_id_ok(c, r, http_path_param(r, "client_id"), "the client id in the path")) return;
  char *after = http_query_param(r, "conv_id");
  pairs_t p = {json_array(), NULL, http_path_param(r, "client_id")};
  if (store_client_convs(c->w->imw->reader, p.client, CONV_SYSTEM, after, rest_page_limit(r, 50, 1000), subscriber_row,
                         &p) < 0) {
    json_decref(p.out);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else {
    http_respond_json(c, r, 200, p.out);
  }
  free(after);
}

void rest_members_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
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

void rest_room_online_count(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  if (rest_presence_fence(c, r, rest_room_online_count)) return; /* the other nodes' counts */
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  im_t *im = c->w->srv->im;
  long n = atomic_load(&conv->online) + (im->bus ? bus_room_count(im->bus, conv->cid) : 0);
  http_respond_json(c, r, 200, json_pack("{s:I}", "result", (json_int_t)n));
  conv_release(conv);
}

static void rest_mutes_change(conn_t *c, const http_req_t *r, int mute) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  size_t n;
  char **ids = rest_client_ids(c, r, body, &n);
  if (!ids) {
    json_decref(body);
    return;
  }
  conv_t *conv = rest_path_conv(c, r);
  if (conv) {
    im_done_t d;
    conv_mutes_apply(c->w->imw, conv, ids, n, mute, rest_done(rest_wait(c, rest_shape_updated, conv->cid), &d));
  }
  free(ids);
  json_decref(body);
}

void rest_mutes_add(conn_t *c, const http_req_t *r) { rest_mutes_change(c, r, 1); }
void rest_mutes_remove(conn_t *c, const http_req_t *r) { rest_mutes_change(c, r, 0); }

void rest_mutes_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  json_t *doc = conv_doc(c, conv, 1), *mu = json_object_get(doc, "mu");
  /* "o" takes the reference: a borrowed list gets its own, a new empty one is handed over */
  http_respond_json(c, r, 200, json_pack("{s:o}", "result", json_is_array(mu) ? json_incref(mu) : json_array()));
  json_decref(doc);
  conv_release(conv);
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
    rest_answer(w, arg, (int)json_integer_value(json_object_get(first, "code")), e);
    json_decref(e);
    return;
  }
  rest_answer(w, arg, code, result);
}

static json_t *shape_sets(void *ctx, json_t *result) {
  json_t *failed = json_object_get(result, "failed");
  return json_array_size(failed) ? json_pack("{s:O}", "failed", failed) : json_object();
}

static const im_done_t *sets_done(rest_wait_t *wt, im_done_t *d) {
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
  json_t *body = rest_body_json(r);
  size_t n;
  char **ids = rest_client_ids(c, r, body, &n);
  conv_t *conv = ids ? rest_path_conv(c, r) : NULL;
  if (conv) {
    im_done_t d;
    rest_wait_t *wt = rest_wait(c, shape_sets, conv->cid);
    if (set == SET_SHUTUP) conv_shutup_apply(c->w->imw, conv, "", ids, n, add, 0, sets_done(wt, &d));
    else conv_block_apply(c->w->imw, conv, "", ids, n, add, sets_done(wt, &d));
  }
  free(ids);
  json_decref(body);
}

void rest_silence_add(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_SHUTUP, 1); }
void rest_silence_remove(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_SHUTUP, 0); }
/* A block from a chat room takes the blocked members out of it on every node it finds them
 * on in the replica (im_room_kick, bus_room_nodes): after the presence fence, so a join
 * answered on another node a moment before is among them (docs/cluster.md, "The window,
 * closed"). */
void rest_block_add(conn_t *c, const http_req_t *r) {
  if (rest_path_kind(r) == CONV_ROOM && rest_presence_fence(c, r, rest_block_add)) return;
  sets_change(c, r, SET_BLOCK, 1);
}
void rest_block_remove(conn_t *c, const http_req_t *r) { sets_change(c, r, SET_BLOCK, 0); }

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
  conv_t *conv = rest_path_conv(c, r);
  if (!conv) return;
  char *next = http_query_param(r, "next");
  set_page_t p = {json_array(), rest_page_limit(r, 10, 500), NULL};
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

void rest_silence_list(conn_t *c, const http_req_t *r) { sets_list(c, r, SET_SHUTUP); }
void rest_block_list(conn_t *c, const http_req_t *r) { sets_list(c, r, SET_BLOCK); }

/* POST …/:cid/temporary-silenceds {"client_id", "ttl": seconds, 1 to 86400} → {}: a shut-up
 * that the server lifts after ttl (the target and members then hear unshutuped). Over a
 * permanent one it changes nothing; over a temporary one it sets the new end. */
void rest_temp_silence(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  const char *id = json_string_value(json_object_get(body, "client_id"));
  json_t *ttl = json_object_get(body, "ttl");
  if (!rest_client_id_ok(c, r, id, "client_id")) {
    /* answered */
  } else if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 || json_integer_value(ttl) > 86400) {
    rest_bad(c, r, "ttl must be a number of seconds from 1 to 86400 (24 hours)");
  } else {
    conv_t *conv = rest_path_conv(c, r);
    if (conv) {
      im_done_t d;
      char *ids[1] = {(char *)id};
      int64_t until = now_ms() + json_integer_value(ttl) * 1000;
      conv_shutup_apply(c->w->imw, conv, "", ids, 1, 1, until, sets_done(rest_wait(c, shape_sets, conv->cid), &d));
    }
  }
  json_decref(body);
}

/* DELETE …/:cid/temporary-silenceds?client_id= → {}: lifts the client's temporary shut-up
 * now; a permanent one stays (…/permanent-silenceds removes that). */
void rest_temp_unsilence(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *id = http_query_param(r, "client_id");
  conv_t *conv = NULL;
  if (!rest_client_id_ok(c, r, id, "client_id")) {
    /* answered */
  } else if ((conv = rest_path_conv(c, r))) {
    int64_t until = 0;
    int rc = store_conv_set_expiry(c->w->imw->reader, conv->id, SET_SHUTUP, id, &until);
    if (rc == TERN_ESTORE) {
      http_respond_error(c, r, 500, 1, "storage failed");
    } else if (rc == TERN_ENOENT || until == 0) { /* nothing temporary to lift */
      http_respond_json(c, r, 200, json_object());
    } else {
      im_done_t d;
      char *ids[1] = {id};
      conv_shutup_apply(c->w->imw, conv, "", ids, 1, 0, 0, sets_done(rest_wait(c, shape_sets, conv->cid), &d));
      conv = NULL; /* the apply took it */
    }
  }
  if (conv) conv_release(conv);
  free(id);
}

/* ---------------------------------------------------------------- member roles */

/* {"updatedAt", "objectId": the member info's id} */
static json_t *shape_info(void *ctx, json_t *result) {
  rest_wait_t *wt = ctx;
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
  rest_wait_t *wt = rest_wait(c, shape_info, info_id ? info_id : conv->cid);
  const char *detail = NULL;
  int code = conv_role_apply(c->w->imw, conv, "", client, role, drop_row, rest_done(wt, &d), &detail);
  if (code) {
    json_t *e = json_pack("{s:s}", "error", detail ? detail : lc_error_name(code));
    rest_answer(c->w->imw, wt, code, e);
    json_decref(e);
  }
}

/* POST …/:cid/member-infos {"clientId", "role": Member | Manager} and PUT
 * …/member-infos/:info_id {"role"} → {"updatedAt", "objectId"}: what conv/member_info_update
 * does, as the app's back end (members hear member_info_changed with initBy ""). The owner
 * is the creator and cannot change, or be given away. A Member row is kept so its objectId
 * stays valid; DELETE …/member-infos/:info_id drops the row (the client is a Member). */
void rest_info_set(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  json_t *body = rest_body_json(r);
  const char *info_id = http_path_param(r, "info_id");
  const char *client = json_string_value(json_object_get(body, "clientId"));
  if (!client) client = json_string_value(json_object_get(body, "client_id"));
  const char *role = json_string_value(json_object_get(body, "role"));
  info_owner_t o = {info_id, NULL};
  conv_t *conv = NULL;
  if (!json_is_object(body) || !role || (!info_id && !client)) {
    rest_bad(c, r, info_id ? "role is required" : "clientId and role are required");
  } else if (client && !rest_client_id_ok(c, r, client, "clientId")) {
    /* answered */
  } else if ((conv = rest_path_conv(c, r))) {
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

void rest_info_delete(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  conv_t *conv = rest_path_conv(c, r);
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
void rest_info_list(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  char *role = http_query_param(r, "role");
  if (role && *role && strcmp(role, "Member") != 0 && strcmp(role, "Manager") != 0 && strcmp(role, "Owner") != 0) {
    rest_bad(c, r, "role must be Member, Manager or Owner");
    free(role);
    return;
  }
  conv_t *conv = rest_path_conv(c, r);
  if (conv) {
    int64_t skip = rest_qint(r, "skip", 0);
    infos_page_t p = {json_array(), role && *role ? role : NULL,
                      skip < 0        ? 0
                      : skip > 100000 ? 100000
                                      : (int)skip,
                      rest_page_limit(r, 100, 1000)};
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
