/* rest_sdk.c — the HTTP endpoints the official SDKs call on their own (protocol.md §7.4):
 * `_ConversationMemberInfo` (member roles) and `/rtm/notifications`.
 *
 * Both act for one client and are authorised by its session token (`st`, sent as
 * X-LC-IM-Session-Token with `client_id`) with the app key, or by the master key: the
 * route level AUTH_CLIENT, checked from the head (rest_auth.c). They run on the worker that
 * parsed the request and read through its store reader, like the WebSocket handlers. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http.h"
#include "im_internal.h"
#include "jsonlim.h"
#include "rest.h"
#include "rest_read.h"
#include "timeutil.h"
#include "worker.h"

typedef struct {
  json_t *results;
  const char *cid;
} infos_acc_t;

static void info_each(void *arg, const member_info_t *mi) {
  infos_acc_t *a = arg;
  char created[ISO_LEN + 1], updated[ISO_LEN + 1];
  iso_format(mi->created_at, created);
  iso_format(mi->updated_at, updated);
  json_array_append_new(a->results,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "objectId", mi->info_id, "cid", a->cid, "clientId",
                                  mi->client, "role", mi->role, "createdAt", created, "updatedAt", updated));
}

typedef struct {
  json_t *list;
  int swift; /* the Swift SDK's shape: op names hyphenated, attr as objects */
} notif_acc_t;

static void notif_each(void *arg, int64_t ts, const char *body) {
  notif_acc_t *a = arg;
  json_t *n = json_loads(body, 0, NULL);
  if (!n) return;
  if (a->swift) {
    char op[64];
    snprintf(op, sizeof op, "%s",
             json_string_value(json_object_get(n, "op")) ? json_string_value(json_object_get(n, "op")) : "");
    for (char *p = op; *p; p++)
      if (*p == '_') *p = '-';
    json_object_set_new(n, "op", json_string(op));
    const char *keys[] = {"attr", "attrModified"};
    for (int i = 0; i < 2; i++) {
      const char *data = json_string_value(json_object_get(json_object_get(n, keys[i]), "data"));
      if (data) json_object_set_new(n, keys[i], json_loads(data, 0, NULL));
    }
  }
  json_array_append_new(a->list, n);
}

/* GET /1.1/rtm/notifications?client_id&start_ts[&notification_type=permanent] (§3.20):
 * the permanent notifications the client may have missed since start_ts, in the JS SDK's
 * shape {hasMore, notifications}; without notification_type, the Swift SDK's
 * {permanent: {notifications}, droppable: {notifications, invalidLocalConvCache}}. Read
 * off the loop (rest_read.h), with the session token's revocations. */
typedef struct {
  rest_read_t x; /* first */
  char *client;
  int64_t after;
  int more;
  notif_acc_t acc;
} notif_read_t;

static int notif_read(store_reader_t *rd, rest_read_t *x) {
  notif_read_t *n = (notif_read_t *)x;
  return store_notifications(rd, n->client, n->after, 100, &n->more, notif_each, &n->acc);
}

static void notif_answer(conn_t *c, const http_req_t *r, rest_read_t *x) {
  notif_read_t *n = (notif_read_t *)x;
  json_t *list = n->acc.list;
  n->acc.list = NULL;
  if (x->rd.result < 0) {
    json_decref(list);
    http_respond_error(c, r, 500, 1, "storage failed");
  } else if (n->acc.swift) {
    http_respond_json(c, r, 200,
                      json_pack("{s:{s:o}, s:{s:[], s:b}}", "permanent", "notifications", list, "droppable",
                                "notifications", "invalidLocalConvCache", 0));
  } else {
    http_respond_json(c, r, 200, json_pack("{s:b, s:o}", "hasMore", n->more, "notifications", list));
  }
}

static void notif_free(rest_read_t *x) {
  notif_read_t *n = (notif_read_t *)x;
  json_decref(n->acc.list);
  free(n->client);
  free(n);
}

void rest_notifications(conn_t *c, const http_req_t *r) {
  char *client = rest_session_client(c, r);
  if (!client) return;
  char *start = http_query_param(r, "start_ts"), *type = http_query_param(r, "notification_type");
  notif_read_t *n = xcalloc(1, sizeof *n);
  n->client = client;
  n->after = start ? strtoll(start, NULL, 10) : 0;
  n->acc = (notif_acc_t){json_array(), type == NULL};
  n->x.fn = notif_read;
  n->x.answer = notif_answer;
  n->x.free = notif_free;
  free(start);
  free(type);
  rest_read_run(c, r, &n->x);
}

/* GET /1.1/classes/_ConversationMemberInfo?where={"cid": …}&client_id=… (§3.15): the role
 * assignments of a conversation the client belongs to. Members without a row are plain
 * Members; the owner is the creator. Read off the loop (rest_read.h), with the session
 * token's revocations and the conversation itself when the cache lacks it (as
 * im_prefetch.c reads it for a WebSocket request). */
typedef struct {
  rest_read_t x; /* first */
  char *cid, *client;
  int looked;         /* conv_get was asked on the loop (the cache held it fresh, or SQLite) */
  int member;         /* … and the client is in it: only then are its infos read */
  conv_t *conv;       /* … and answered this (held across the read), NULL: none */
  conv_claim_t claim; /* else the stale entry being reloaded (or NULL: not cached), and its marks */
  int load_rc;        /* store_conv_load's, when read */
  conv_row_t row;
  infos_acc_t acc;
} infos_read_t;

/* A read row's members name the client (a chat room's roles are anyone's: conv_role). */
static int row_member(const conv_row_t *row, const char *client) {
  if (row->kind == CONV_ROOM) return 1;
  for (size_t i = 0; i < row->nmembers; i++)
    if (!strcmp(row->members[i], client)) return 1;
  return 0;
}

/* A conversation's infos are read for its members only: anyone else is answered 403 without
 * the read (a large conversation's rows, built into JSON, for nothing). */
static int infos_read(store_reader_t *rd, rest_read_t *x) {
  infos_read_t *p = (infos_read_t *)x;
  int64_t id = p->conv ? p->conv->id : 0;
  if (p->looked && !p->member) return 0;
  if (!p->looked) {
    p->load_rc = store_conv_load(rd, p->cid, &p->row);
    if (p->load_rc == TERN_ENOENT) return 0;
    if (p->load_rc < 0) return p->load_rc;
    if (!row_member(&p->row, p->client)) return 0;
    id = p->row.id;
  }
  return store_member_infos(rd, id, info_each, &p->acc);
}

static void infos_answer(conn_t *c, const http_req_t *r, rest_read_t *x) {
  infos_read_t *p = (infos_read_t *)x;
  if (!p->looked) { /* cache what was read, as conv_get would have */
    p->conv = convcache_loaded_get(c->w->imw, p->cid, &p->claim, p->load_rc, &p->row);
    p->load_rc = TERN_ENOENT; /* the row is the cache's now */
  }
  if (x->rd.result < 0) {
    http_respond_error(c, r, 500, 1, "storage failed");
  } else if (!p->conv) {
    http_respond_json(c, r, 200, json_pack("{s:[]}", "results"));
  } else if (conv_role(p->conv, p->client) < ROLE_MEMBER) {
    http_respond_error(c, r, 403, 119, "not a member of this conversation");
  } else {
    http_respond_json(c, r, 200, json_pack("{s:O}", "results", p->acc.results));
  }
}

static void infos_free(rest_read_t *x) {
  infos_read_t *p = (infos_read_t *)x;
  if (p->load_rc == 0) conv_row_free(&p->row); /* read, and never cached */
  convcache_load_abandoned(&p->claim);         /* never reloaded (refused, or not answered): stale still */
  if (p->conv) conv_release(p->conv);
  json_decref(p->acc.results);
  free(p->cid);
  free(p->client);
  free(p);
}

void rest_member_infos(conn_t *c, const http_req_t *r) {
  char *client = rest_session_client(c, r);
  if (!client) return;
  char *where_s = http_query_param(r, "where");
  json_t *where = where_s ? json_loads_capped(where_s, 0, NULL) : NULL;
  const char *cid = json_string_value(json_object_get(where, "cid"));
  if (!cid) {
    http_respond_error(c, r, 400, 107, "where must name a conversation: {\"cid\": \"…\"}");
    free(client);
  } else {
    infos_read_t *p = xcalloc(1, sizeof *p);
    p->cid = xstrdup(cid);
    p->client = client;
    p->load_rc = TERN_ENOENT;
    im_t *im = c->w->imw->im;
    /* the cache answers without a read unless it lacks the conversation or holds it stale */
    if (!store_reads_off_loop(im->store) || !convcache_wants_load(im, p->cid, &p->claim)) {
      p->looked = 1;
      p->conv = conv_get(c->w->imw, p->cid, NULL);
      p->member = p->conv && conv_role(p->conv, client) >= ROLE_MEMBER;
    }
    p->acc = (infos_acc_t){json_array(), p->cid};
    p->x.fn = infos_read;
    p->x.answer = infos_answer;
    p->x.free = infos_free;
    rest_read_run(c, r, &p->x);
  }
  json_decref(where);
  free(where_s);
}
