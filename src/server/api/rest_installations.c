/* rest_installations.c — `_Installation` objects over REST (protocol.md §10): where an
 * app's devices receive offline pushes.
 *
 * Apps (and the Android/Java SDKs) register an `_Installation`; its `channels` are the
 * client ids whose offline pushes the device receives, each stored as a device row of its
 * own so a push needs one indexed read per recipient (push.c reads them). Tokens the SDKs
 * report on the IM socket land in the same rows (im_device.c).
 *
 * A push carries the message's text, so a channel binds (gets a device row) only when
 * someone who may read that client's messages vouches for it: the master key, or the
 * client's own session token (X-LC-IM-Session-Token) — the app key alone is in every copy
 * of the app and vouches for nobody. An installation saved with the app key alone keeps
 * its channels in the object (GET shows them) and binds only those bound before, while
 * its device (type and token) stays the same. docs/push.md, "Who may bind a device".
 *
 * Writes go through the store like everything else and are answered once committed. */
#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "jsonlim.h"
#include "log.h"
#include "rest.h"
#include "rest_read.h"
#include "rest_rtm.h"
#include "revoke.h"
#include "timeutil.h"
#include "token.h"
#include "utf8.h"
#include "worker.h"

#define CHANNELS_MAX 100
#define CLIENT_ID_MAX 64

/* The token a device is pushed on: APNs deviceToken for iOS; for Android the FCM
 * registrationId ("mixed push"), else the installationId; other types whatever they have. */
static const char *token_of(json_t *doc, const char *type) {
  const char *dt = json_string_value(json_object_get(doc, "deviceToken"));
  const char *reg = json_string_value(json_object_get(doc, "registrationId"));
  const char *iid = json_string_value(json_object_get(doc, "installationId"));
  if (strcmp(type, "ios") == 0) return dt;
  if (strcmp(type, "android") == 0) return reg ? reg : iid;
  return dt ? dt : reg ? reg : iid;
}

static int array_has(json_t *a, json_t *v) {
  size_t i;
  json_t *x;
  json_array_foreach(a, i, x) if (json_equal(x, v)) return 1;
  return 0;
}

/* Applies a REST body to doc: plain values replace, {"__op": …} edits (Delete, Increment,
 * Add, AddUnique, Remove — what the SDKs send for channels and badge). NULL or an error. */
static const char *apply(json_t *doc, json_t *changes) {
  const char *k;
  json_t *v;
  json_object_foreach(changes, k, v) {
    if (!strcmp(k, "objectId") || !strcmp(k, "createdAt") || !strcmp(k, "updatedAt")) continue;
    const char *op = json_string_value(json_object_get(v, "__op"));
    if (!json_is_object(v) || !op) {
      json_object_set(doc, k, v);
      continue;
    }
    json_t *cur = json_object_get(doc, k);
    if (!strcmp(op, "Delete")) {
      json_object_del(doc, k);
    } else if (!strcmp(op, "Increment")) {
      json_t *amount = json_object_get(v, "amount");
      if (!json_is_integer(amount) || (cur && !json_is_integer(cur))) return "Increment needs an integer amount";
      json_object_set_new(doc, k, json_integer((cur ? json_integer_value(cur) : 0) + json_integer_value(amount)));
    } else if (!strcmp(op, "Add") || !strcmp(op, "AddUnique") || !strcmp(op, "Remove")) {
      json_t *objs = json_object_get(v, "objects");
      if (!json_is_array(objs) || (cur && !json_is_array(cur))) return "array operations need \"objects\" and an array";
      json_t *out = json_array();
      size_t i;
      json_t *x;
      json_array_foreach(cur, i, x) if (strcmp(op, "Remove") != 0 || !array_has(objs, x)) json_array_append(out, x);
      if (strcmp(op, "Remove") != 0)
        json_array_foreach(objs, i, x) if (!strcmp(op, "Add") || !array_has(out, x)) json_array_append(out, x);
      json_object_set_new(doc, k, out);
    } else {
      return "unsupported __op";
    }
  }
  return NULL;
}

/* Checks an installation document; fills the job's type, token and channels. */
static const char *check(json_t *doc, job_installation_t *j) {
  const char *type = json_string_value(json_object_get(doc, "deviceType"));
  if (!type || !*type || strlen(type) > 32) return "deviceType is required (ios, android, …)";
  const char *tok = token_of(doc, type);
  if (!device_token_valid(tok))
    return strcmp(type, "ios") == 0 ? "deviceToken is required for ios"
                                    : "a registrationId, installationId or deviceToken is required";
  json_t *ch = json_object_get(doc, "channels");
  if (ch && !json_is_array(ch)) return "channels must be an array of client ids";
  if (json_array_size(ch) > CHANNELS_MAX) return "too many channels";
  json_t *badge = json_object_get(doc, "badge");
  if (badge && !json_is_integer(badge)) return "badge must be an integer";
  size_t i;
  json_t *x;
  json_array_foreach(ch, i, x) {
    const char *s = json_string_value(x);
    if (!s || !*s || utf8_chars(s) > CLIENT_ID_MAX) return "channels must be client ids (1 to 64 characters)";
  }
  j->device_type = xstrdup(type);
  j->token = xstrdup(tok);
  j->channels = xcalloc(json_array_size(ch) + 1, sizeof(char *));
  json_array_foreach(ch, i, x) {
    int dup = 0;
    for (size_t k = 0; k < j->n && !dup; k++) dup = strcmp(j->channels[k], json_string_value(x)) == 0;
    if (!dup) j->channels[j->n++] = xstrdup(json_string_value(x));
  }
  if (badge) {
    j->has_badge = 1;
    j->badge = json_integer_value(badge);
  }
  return NULL;
}

/* Has this installation's device (id, token) a row for client — was it bound before? */
typedef struct {
  const char *id, *token;
  int found;
} bound_probe_t;

static void bound_each(void *arg, const device_view_t *d) {
  bound_probe_t *p = arg;
  if (d->installation_id && !strcmp(d->installation_id, p->id) && !strcmp(d->token, p->token)) p->found = 1;
}

static void installation_job_free(store_job_t *sj) {
  job_installation_t *j = (job_installation_t *)sj;
  free(j->id);
  free(j->device_type);
  free(j->token);
  free(j->body);
  for (size_t i = 0; i < j->n; i++) free(j->channels[i]);
  free(j->channels);
  free(j);
}

/* A write to an installation answers once it is committed — as every other write does —
 * so a client that reads or changes it next sees this change (helper-12 saw an
 * AddUnique lost to a Remove sent right after its answer). */
typedef struct {
  job_installation_t j; /* first: installation_job_free frees the whole */
  rest_wait_t *wt;
  json_t *answer;
} stored_t;

static void installation_stored(task_t *t) {
  stored_t *st = (stored_t *)t;
  rest_answer(NULL, st->wt, st->j.job.result < 0 ? LC_INTERNAL_ERROR : 0, st->answer);
  json_decref(st->answer);
  installation_job_free(&st->j.job);
}

/* A write job whose request is answered after the commit (stored_submit); until then an
 * installation_job_free drops it. */
static job_installation_t *stored_new(void) {
  stored_t *st = xcalloc(1, sizeof *st);
  st->j.job.type = JOB_INSTALLATION;
  st->j.job.free_fn = installation_job_free;
  return &st->j;
}

/* Submits j; c's request gets `answer` (stolen) with status and headers once committed,
 * or a 500 if the commit fails. */
static void stored_submit(conn_t *c, job_installation_t *j, int status, json_t *answer, const char *headers) {
  stored_t *st = (stored_t *)j;
  st->answer = answer;
  st->wt = rest_wait(c, rest_shape_copy, NULL);
  st->wt->status = status;
  st->wt->headers = headers ? xstrdup(headers) : NULL;
  j->job.worker = c->w->idx;
  j->job.task.fn = installation_stored;
  store_submit(c->w->imw->im->store, &j->job);
}

static void bad_request(conn_t *c, const http_req_t *r, const char *why) { http_respond_error(c, r, 400, 107, why); }

static void not_found(conn_t *c, const http_req_t *r) { http_respond_error(c, r, 404, 101, "Object not found."); }

/* POST (id NULL) or PUT: merge the body into the stored object (or a new one) and save.
 * Its reads — the stored object, and for each channel the session token's revocations and
 * whether this device was bound to it before — are made off the loop (rest_read.h): the
 * app key, which every copy of the app carries, reaches this route. */
typedef struct {
  token_info_t info;    /* the session token, sealed for this channel: its revocations read */
  revoke_read_t tok;    /* … */
  int token, was_bound; /* was_bound: this device had a row for the channel */
} bind_probe_t;

typedef struct {
  rest_read_t x; /* first */
  im_t *im;
  char *id;     /* PUT's, NULL for POST */
  json_t *body; /* the request's, an object */
  char *st;     /* X-LC-IM-Session-Token, or NULL */
  int master;
  /* what the read found */
  int rc; /* store_installation_get's */
  installation_row_t row;
  json_t *doc;
  job_installation_t *j;
  const char *err;
  bind_probe_t *probe; /* one for each of j->channels, unless master */
} save_read_t;

static int save_read(store_reader_t *rd, rest_read_t *x) {
  save_read_t *s = (save_read_t *)x;
  if (s->id) {
    s->rc = store_installation_get(rd, s->id, NULL, NULL, &s->row);
  } else {
    /* one installation per device: a second POST for the same token updates the first */
    const char *type = json_string_value(json_object_get(s->body, "deviceType"));
    const char *tok = type ? token_of(s->body, type) : NULL;
    s->rc = tok ? store_installation_get(rd, NULL, type, tok, &s->row) : TERN_ENOENT;
  }
  if (s->rc < 0 && s->rc != TERN_ENOENT) return s->rc;
  if (s->id && s->rc == TERN_ENOENT) return 0; /* 404 */
  int found = s->rc == 0;
  s->doc = found ? json_loads(s->row.body, 0, NULL) : NULL;
  if (!json_is_object(s->doc)) {
    json_decref(s->doc);
    s->doc = json_object();
  }
  s->j = stored_new();
  s->err = apply(s->doc, s->body);
  if (!s->err) s->err = check(s->doc, s->j);
  if (s->err || s->master) return 0;
  /* who vouches for each channel: its own session token, or — while the device stays the
   * one stored — its binding from before (checked on the worker: save_answer) */
  job_installation_t *j = s->j;
  int same_device = found && !strcmp(s->row.token, j->token) && !strcmp(s->row.device_type, j->device_type);
  s->probe = xcalloc(j->n + 1, sizeof *s->probe);
  for (size_t i = 0; i < j->n; i++) {
    bind_probe_t *b = &s->probe[i];
    if (s->st && token_check(s->im->master_key, s->im->app_id, j->channels[i], s->st, &b->info) == 0) {
      free(b->info.tag);
      b->info.tag = NULL;
      b->token = 1;
      /* touches only the revocations' generations, under their lock: any thread */
      revoke_read_start(s->im->workers[s->x.rd.worker], j->channels[i], &b->info, &b->tok);
      revoke_read(rd, &b->tok);
    }
    if (same_device) {
      bound_probe_t p = {s->row.id, s->row.token, 0};
      b->was_bound = store_devices(rd, j->channels[i], 256, bound_each, &p) == 0 && p.found;
    }
  }
  return 0;
}

/* Narrows j->channels (all of the document's, from check()) to those this request may
 * bind: every one with the master key; otherwise those the session token in
 * X-LC-IM-Session-Token is a live token of, and — while the device is the one stored
 * under id — those bound before. */
static void bind_channels(im_worker_t *w, save_read_t *s) {
  if (s->master) return;
  job_installation_t *j = s->j;
  size_t k = 0;
  for (size_t i = 0; i < j->n; i++) {
    const char *ch = j->channels[i];
    bind_probe_t *b = &s->probe[i];
    int bind = (b->token && revoke_check_read(w, ch, &b->info, &b->tok) == 0) || b->was_bound;
    if (bind) {
      j->channels[k++] = j->channels[i];
    } else {
      log_at(LOG_DEBUG, "installation %s: channel %s kept, not bound (nobody vouched for it)", j->id ? j->id : "(new)",
             ch);
      free(j->channels[i]);
    }
  }
  j->n = k;
}

static void save_answer(conn_t *c, const http_req_t *r, rest_read_t *x) {
  save_read_t *s = (save_read_t *)x;
  if (x->rd.result < 0) {
    http_respond_error(c, r, 500, 1, "storage failed");
    return;
  }
  if (s->id && s->rc == TERN_ENOENT) {
    not_found(c, r);
    return;
  }
  if (s->err) {
    bad_request(c, r, s->err);
    return;
  }
  int found = s->rc == 0;
  job_installation_t *j = s->j;
  bind_channels(c->w->imw, s);
  s->j = NULL; /* stored_submit's now */
  int64_t now = now_ms();
  if (found) {
    j->id = xstrdup(s->row.id);
    j->created_at = s->row.created_at;
  } else {
    uint8_t rnd[12];
    char hex[25];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    j->id = xstrdup(hex);
    j->created_at = now;
  }
  j->updated_at = now;
  j->body = json_dumps(s->doc, JSON_COMPACT);
  char created[ISO_LEN + 1], updated[ISO_LEN + 1];
  iso_format(j->created_at, created);
  iso_format(now, updated);
  if (!found) {
    char loc[96];
    snprintf(loc, sizeof loc, "Location: /1.1/installations/%s\r\n", j->id);
    stored_submit(c, j, 201, json_pack("{s:s, s:s}", "objectId", j->id, "createdAt", created), loc);
  } else {
    stored_submit(c, j, 200,
                  json_pack("{s:s, s:s, s:s}", "objectId", j->id, "createdAt", created, "updatedAt", updated), NULL);
  }
}

static void save_free(rest_read_t *x) {
  save_read_t *s = (save_read_t *)x;
  if (s->j) installation_job_free(&s->j->job);
  if (s->rc == 0) installation_row_free(&s->row);
  json_decref(s->doc);
  json_decref(s->body);
  free(s->probe);
  free(s->id);
  free(s->st);
  free(s);
}

static void save(conn_t *c, const http_req_t *r, const char *id) {
  json_t *body = json_loadb_capped((const char *)r->body.data, r->body.len, 0, NULL);
  if (!json_is_object(body)) {
    json_decref(body);
    bad_request(c, r, "the body must be a JSON object");
    return;
  }
  save_read_t *s = xcalloc(1, sizeof *s);
  const char *st = http_header(r, "X-LC-IM-Session-Token");
  s->im = c->w->imw->im;
  s->id = id ? xstrdup(id) : NULL;
  s->body = body;
  s->st = st ? xstrdup(st) : NULL;
  s->master = r->key == REST_KEY_MASTER;
  s->rc = TERN_ENOENT;
  s->x.fn = save_read;
  s->x.answer = save_answer;
  s->x.free = save_free;
  rest_read_run(c, r, &s->x);
}

/* GET: read off the loop (rest_read.h), as the app key reaches it. */
typedef struct {
  rest_read_t x; /* first */
  char *id;
  installation_row_t row;
} get_read_t;

static int get_read(store_reader_t *rd, rest_read_t *x) {
  get_read_t *g = (get_read_t *)x;
  return store_installation_get(rd, g->id, NULL, NULL, &g->row);
}

static void get_answer(conn_t *c, const http_req_t *r, rest_read_t *x) {
  get_read_t *g = (get_read_t *)x;
  if (x->rd.result == TERN_ENOENT) not_found(c, r);
  else if (x->rd.result < 0) http_respond_error(c, r, 500, 1, "storage failed");
  else http_respond_json(c, r, 200, json_stored_object(g->row.body, g->row.id, g->row.created_at, g->row.updated_at));
}

static void get_free(rest_read_t *x) {
  get_read_t *g = (get_read_t *)x;
  if (x->rd.result == 0) installation_row_free(&g->row);
  free(g->id);
  free(g);
}

static void get_one(conn_t *c, const http_req_t *r, const char *id) {
  get_read_t *g = xcalloc(1, sizeof *g);
  g->id = xstrdup(id);
  g->x.rd.result = TERN_ENOENT;
  g->x.fn = get_read;
  g->x.answer = get_answer;
  g->x.free = get_free;
  rest_read_run(c, r, &g->x);
}

static void delete_one(conn_t *c, const http_req_t *r, const char *id) {
  installation_row_t row;
  int rc = store_installation_get(c->w->imw->reader, id, NULL, NULL, &row);
  if (rc == TERN_ENOENT) {
    not_found(c, r);
    return;
  }
  installation_row_free(&row);
  job_installation_t *j = stored_new();
  j->remove = 1;
  j->id = xstrdup(id);
  stored_submit(c, j, 200, json_object(), NULL);
}

/* The route table decides who may call (routes.c): the app key for POST, GET and PUT, the
 * master key for DELETE (LeanCloud's default too); what a save may bind is bind_channels'. */
void rest_installations(conn_t *c, const http_req_t *r) {
  const char *id = http_path_param(r, "id"); /* routes: /1.1/installations[/:id] */
  if (id && strlen(id) > 64) {
    not_found(c, r);
    return;
  }
  if (!id && r->method == HTTP_POST) save(c, r, NULL);
  else if (id && r->method == HTTP_PUT) save(c, r, id);
  else if (id && r->method == HTTP_GET) get_one(c, r, id);
  else if (id && r->method == HTTP_DELETE) delete_one(c, r, id);
  else http_respond_error(c, r, 405, 405, "method not allowed");
}
