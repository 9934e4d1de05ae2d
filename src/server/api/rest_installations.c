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
#include "rest_rtm.h"
#include "timeutil.h"
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

/* Narrows j->channels (all of the document's, from check()) to those this request may
 * bind: every one with the master key; otherwise those the session token in
 * X-LC-IM-Session-Token is a live token of, and — while the device is the one stored
 * under id — those bound before. */
static void bind_channels(conn_t *c, const http_req_t *r, job_installation_t *j, const installation_row_t *old) {
  if (r->key == REST_KEY_MASTER) return;
  const char *st = http_header(r, "X-LC-IM-Session-Token");
  int same_device = old && !strcmp(old->token, j->token) && !strcmp(old->device_type, j->device_type);
  size_t k = 0;
  for (size_t i = 0; i < j->n; i++) {
    const char *ch = j->channels[i];
    int bind = st && rest_token_live(c, ch, st) == 0;
    if (!bind && same_device) {
      bound_probe_t p = {old->id, old->token, 0};
      bind = store_devices(c->w->imw->reader, ch, 256, bound_each, &p) == 0 && p.found;
    }
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

/* POST (id NULL) or PUT: merge the body into the stored object (or a new one) and save. */
static void save(conn_t *c, const http_req_t *r, const char *id) {
  im_worker_t *w = c->w->imw;
  json_t *body = json_loadb_capped((const char *)r->body.data, r->body.len, 0, NULL);
  if (!json_is_object(body)) {
    json_decref(body);
    bad_request(c, r, "the body must be a JSON object");
    return;
  }
  installation_row_t row = {0};
  int found = 0, rc;
  if (id) {
    rc = store_installation_get(w->reader, id, NULL, NULL, &row);
    if (rc == TERN_ENOENT) {
      json_decref(body);
      not_found(c, r);
      return;
    }
    found = rc == 0;
  } else {
    /* one installation per device: a second POST for the same token updates the first */
    const char *type = json_string_value(json_object_get(body, "deviceType"));
    const char *tok = type ? token_of(body, type) : NULL;
    rc = tok ? store_installation_get(w->reader, NULL, type, tok, &row) : TERN_ENOENT;
    found = rc == 0;
  }
  if (rc < 0 && rc != TERN_ENOENT) {
    json_decref(body);
    http_respond_error(c, r, 500, 1, "storage failed");
    return;
  }
  json_t *doc = found ? json_loads(row.body, 0, NULL) : NULL;
  if (!json_is_object(doc)) {
    json_decref(doc);
    doc = json_object();
  }
  job_installation_t *j = stored_new();
  const char *err = apply(doc, body);
  if (!err) err = check(doc, j);
  if (!err) bind_channels(c, r, j, found ? &row : NULL);
  if (err) {
    bad_request(c, r, err);
    installation_job_free(&j->job);
    json_decref(doc);
    json_decref(body);
    installation_row_free(&row);
    return;
  }
  int64_t now = now_ms();
  if (found) {
    j->id = xstrdup(row.id);
    j->created_at = row.created_at;
  } else {
    uint8_t rnd[12];
    char hex[25];
    random_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    j->id = xstrdup(hex);
    j->created_at = now;
  }
  j->updated_at = now;
  j->body = json_dumps(doc, JSON_COMPACT);
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
  json_decref(doc);
  json_decref(body);
  installation_row_free(&row);
}

static void get_one(conn_t *c, const http_req_t *r, const char *id) {
  installation_row_t row;
  int rc = store_installation_get(c->w->imw->reader, id, NULL, NULL, &row);
  if (rc == TERN_ENOENT) {
    not_found(c, r);
    return;
  }
  if (rc < 0) {
    http_respond_error(c, r, 500, 1, "storage failed");
    return;
  }
  json_t *o = json_stored_object(row.body, row.id, row.created_at, row.updated_at);
  installation_row_free(&row);
  http_respond_json(c, r, 200, o);
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
