/* rest_import.c — tern as the target of a move off LeanCloud (issue #12; the contract is
 * docs/migrate-api.md): the bulk path the importer writes through.
 *
 *   POST /1.2/import/records     NDJSON, one record a line: conversations, member roles,
 *                                shut-ups, blacklists, subscribers, messages, installations
 *                                and file objects → {"applied", "unchanged", "skipped"}
 *   PUT  /1.2/import/files/:id   the bytes of a file, kept under its objectId → {objectId, url}
 *
 * Both need the master key, are idempotent, and answer only once their writes are durable.
 * A records body becomes ONE store job (JOB_IMPORT, store/import.c): 5,000 messages
 * cost one transaction, not 5,000 round trips. Parsing a 16 MiB body takes tens of ms of
 * jansson, so it runs on libuv's thread pool (with the file records, which are disk I/O);
 * back on the worker, each message of a conversation that is cached (someone may be
 * sending to it) gets its seq from the conversation's counter, as a send does, so imported
 * keys and live ones never collide; then the job goes to the writer. The completion marks
 * the cached conversations it changed stale (their next use reloads them from the store, as
 * for another node's change, after this node's own pending changes of them are stored:
 * docs/cluster.md, "The conversation cache across nodes") and answers.
 *
 * Imports are silent: no pushes, notifications or hooks. What a line cannot be (bad shape,
 * unknown conversation, over a limit) is skipped with its reason and the rest applies. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "crypto.h"
#include "err.h"
#include "files.h"
#include "imgsize.h"
#include "jsonlim.h"
#include "log.h"
#include "rest_rtm.h"
#include "timeutil.h"
#include "utf8.h"

#define IMPORT_MAX_BODY (16 * 1024 * 1024) /* per records request (413 above) */
#define IMPORT_MAX_LINES 20000             /* records per request (413 above): one writer transaction */
#define IMPORT_MAX_INFLIGHT 8              /* requests parsing or committing at once, server-wide (429) */
#define DOC_MAX (128 * 1024)               /* a conversation's document, as JSON */
#define SET_MAX 500                        /* shut-up list, blacklist (as im_conv_sets.c) */
#define ROLES_MAX 1000
#define SUBSCRIBERS_MAX 10000 /* per line; send more lines without replace */
#define MENTIONS_MAX 100
#define CHANNELS_MAX 100 /* as rest_installations.c */
#define TOKEN_MAX 256
#define FILE_META_MAX 8192 /* X-Tern-Meta and a file record's metaData */
#define RECALLED "{\"_lctype\":-127}"

static atomic_int inflight;

/* ---------------------------------------------------------------- the request */

typedef struct {
  job_import_t j; /* first: the store hands back &j.job.task */
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  server_t *srv;
  buf_t body;
  int status; /* a refusal of the whole request, found while parsing */
  char error[160];
  size_t cap;
  json_t *skipped;           /* [{line, id, reason}] of lines refused while parsing */
  size_t applied, unchanged; /* file records, done while parsing */
} import_req_t;

static void op_free(import_op_t *op) {
  free(op->cid);
  if (op->conv) {
    conv_row_free(op->conv);
    free(op->conv);
  }
  free(op->doc);
  for (size_t i = 0; i < op->n; i++) {
    free(op->clients[i]);
    if (op->roles) free(op->roles[i]);
  }
  free(op->clients);
  free(op->roles);
  free(op->mid);
  free(op->sender);
  free(op->data);
  free(op->mentions);
  if (op->inst) {
    job_installation_t *in = op->inst;
    free(in->id);
    free(in->device_type);
    free(in->token);
    free(in->body);
    for (size_t i = 0; i < in->n; i++) free(in->channels[i]);
    free(in->channels);
    free(in);
  }
}

static void req_free(import_req_t *q) {
  for (size_t i = 0; i < q->j.n; i++) op_free(&q->j.ops[i]);
  free(q->j.ops);
  for (size_t i = 0; i < q->j.ntouched; i++) free(q->j.touched[i].cid);
  free(q->j.touched);
  json_decref(q->skipped);
  buf_free(&q->body);
  free(q);
  atomic_fetch_sub(&inflight, 1);
}

/* Answers the deferred request if its connection is still there, then frees q. */
static void req_answer(import_req_t *q, int status, json_t *body) {
  conn_t *c;
  const http_req_t *r = http_deferred_find(q->w, q->conn, &c);
  if (r) {
    http_respond_json(c, r, status, body);
    http_resume(c);
  } else {
    json_decref(body);
  }
  req_free(q);
}

static void refuse(import_req_t *q, int status, const char *msg) {
  q->status = status;
  snprintf(q->error, sizeof q->error, "%s", msg);
}

/* ---------------------------------------------------------------- field checks */

/* A time as LeanCloud writes them: {"__type": "Date", "iso"}, an ISO-8601 string, or ms.
 * 1 and *ms, 0 when absent (or null), -1 when it is something else. */
static int time_of(json_t *v, int64_t *ms) {
  if (!v || json_is_null(v)) return 0;
  if (json_is_object(v)) {
    const char *type = json_string_value(json_object_get(v, "__type"));
    if (!type || strcmp(type, "Date") != 0) return -1;
    v = json_object_get(v, "iso");
  }
  if (json_is_string(v)) return iso_parse(json_string_value(v), ms) == 0 && *ms > 0 ? 1 : -1;
  if (json_is_integer(v) && json_integer_value(v) > 0) {
    *ms = json_integer_value(v);
    return 1;
  }
  return -1;
}

/* A client id as everywhere else ids come in (utf8.h): no control character — an id with
 * one can never log in, and "\n" in one is what unique conversation ids must not meet
 * (docs/protocol-map.md "unique conversation id"). */
static int client_ok(const char *s) { return utf8_client_id_ok(s); }

/* An object id (conversation, installation): 1 to 64 of [A-Za-z0-9_:.-]. */
static int object_id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  return n > 0 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:.-") == n;
}

/* A message id: 1 to 64 printable ASCII characters, no space. */
static int msg_id_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~') return 0;
  return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A JSON array of at most max client ids as a sorted, distinct, owned C array (*n set; an
 * absent array is an empty one). NULL with *why and *n 0 when it is anything else. */
static char **ids_of(json_t *a, size_t max, size_t *n, const char **why) {
  *n = 0;
  if (a && !json_is_array(a)) {
    *why = "a list of client ids must be an array";
    return NULL;
  }
  if (json_array_size(a) > max) {
    *why = "the list has more client ids than allowed (see docs/migrate-api.md)";
    return NULL;
  }
  char **v = xcalloc(json_array_size(a) + 1, sizeof(char *));
  for (size_t i = 0; i < json_array_size(a); i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!client_ok(s)) {
      for (size_t k = 0; k < *n; k++) free(v[k]);
      free(v);
      *n = 0; /* the caller frees *n entries of what it got: none */
      *why = "client ids are strings of 1 to 64 characters, no control characters";
      return NULL;
    }
    v[(*n)++] = xstrdup(s);
  }
  qsort(v, *n, sizeof(char *), cmp_str);
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    if (k && strcmp(v[k - 1], v[i]) == 0) free(v[i]);
    else v[k++] = v[i];
  }
  *n = k;
  return v;
}

/* ---------------------------------------------------------------- records → ops */

/* Keys the server keeps in columns or computes, never in a conversation's document. */
static const char *const conv_columns[] = {"type",      "objectId", "createdAt", "updatedAt", "lm",  "m",
                                           "temporary", "expireAt", "conv_type", "temp",      "ttl", NULL};

static const char *parse_conv(import_req_t *q, json_t *o, import_op_t *op) {
  const tern_config_t *cfg = q->srv->cfg;
  const char *cid = json_string_value(json_object_get(o, "objectId"));
  if (!object_id_ok(cid)) return "objectId must be 1 to 64 of A-Z a-z 0-9 _ : . -";
  int room = json_is_true(json_object_get(o, "tr")), sys = json_is_true(json_object_get(o, "sys")),
      temp = json_is_true(json_object_get(o, "temporary"));
  if (room + sys + temp > 1) return "tr, sys and temporary exclude each other";
  int64_t now = now_ms(), created = 0, updated = 0, lm = 0, expire = 0; /* 0: the stored one, else now */
  if (time_of(json_object_get(o, "createdAt"), &created) < 0 ||
      time_of(json_object_get(o, "updatedAt"), &updated) < 0 || time_of(json_object_get(o, "lm"), &lm) < 0 ||
      time_of(json_object_get(o, "expireAt"), &expire) < 0)
    return "createdAt, updatedAt, lm and expireAt are Dates, ISO-8601 strings or ms";
  if (temp && expire <= now) return "a temporary conversation needs an expireAt in the future";
  const char *creator = json_string_value(json_object_get(o, "c"));
  if (json_object_get(o, "c") && !json_is_null(json_object_get(o, "c")) && !client_ok(creator))
    return "c (the creator) is a client id";
  conv_row_t *row = op->conv = xcalloc(1, sizeof *row);
  row->kind = room ? CONV_ROOM : sys ? CONV_SYSTEM : temp ? CONV_TEMP : CONV_NORMAL;
  if (row->kind == CONV_NORMAL || row->kind == CONV_TEMP) {
    const char *why = NULL;
    row->members = ids_of(json_object_get(o, "m"), (size_t)cfg->max_members, &row->nmembers, &why);
    if (!row->members) return strstr(why, "more") ? "more members than max_members" : why;
  }
  int unique = row->kind == CONV_NORMAL && json_is_true(json_object_get(o, "unique"));
  json_t *doc = json_copy(o);
  for (int i = 0; conv_columns[i]; i++) json_object_del(doc, conv_columns[i]);
  json_object_set_new(doc, "tr", json_boolean(room));
  json_object_set_new(doc, "sys", json_boolean(sys));
  json_object_set_new(doc, "unique", json_boolean(unique));
  if (unique) {
    /* tern's unique index is its own hash of the member set, so `conv start {unique}` of
     * the same members finds this conversation; the cloud's uniqueId stays the visible one */
    char hex[33];
    conv_unique_id(row->members, row->nmembers, 0, hex); /* only normal conversations are unique here */
    row->unique_id = xstrdup(hex);
    if (!json_is_string(json_object_get(doc, "uniqueId"))) json_object_set_new(doc, "uniqueId", json_string(hex));
  }
  op->doc = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(doc);
  if (!op->doc || strlen(op->doc) > DOC_MAX) return "the conversation's fields are larger than 128 KiB";
  row->cid = xstrdup(cid);
  row->creator = creator ? xstrdup(creator) : NULL;
  row->created_at = created;
  row->updated_at = updated;
  row->expire_at = temp ? expire : 0;
  op->lm = lm;
  op->cid = xstrdup(cid);
  return NULL;
}

static const char *parse_roles(json_t *o, import_op_t *op) {
  json_t *roles = json_object_get(o, "roles");
  if (!json_is_object(roles)) return "roles is an object {clientId: \"Manager\" | \"Member\"}";
  if (json_object_size(roles) > ROLES_MAX) return "more than 1000 roles";
  op->clients = xcalloc(json_object_size(roles) + 1, sizeof(char *));
  op->roles = xcalloc(json_object_size(roles) + 1, sizeof(char *));
  const char *k;
  json_t *v;
  json_object_foreach(roles, k, v) {
    const char *role = json_string_value(v);
    if (!client_ok(k) || !role) return "roles maps client ids to role names";
    if (strcmp(role, "Owner") == 0) continue; /* the creator, c */
    if (strcmp(role, "Manager") != 0 && strcmp(role, "Member") != 0) return "a role is Manager, Member or Owner";
    op->clients[op->n] = xstrdup(k);
    op->roles[op->n++] = xstrdup(role);
  }
  for (size_t i = 1; i < op->n; i++) /* by client, as the store compares (insertion sort: small) */
    for (size_t k2 = i; k2 > 0 && strcmp(op->clients[k2 - 1], op->clients[k2]) > 0; k2--) {
      char *t = op->clients[k2];
      op->clients[k2] = op->clients[k2 - 1];
      op->clients[k2 - 1] = t;
      t = op->roles[k2];
      op->roles[k2] = op->roles[k2 - 1];
      op->roles[k2 - 1] = t;
    }
  return NULL;
}

static const char *parse_list(json_t *o, import_op_t *op, size_t max) {
  const char *why = NULL;
  op->clients = ids_of(json_object_get(o, "clients"), max, &op->n, &why);
  if (!op->clients) return why;
  op->replace = json_is_true(json_object_get(o, "replace"));
  return NULL;
}

static const char *parse_msg(import_req_t *q, json_t *o, import_op_t *op) {
  const char *mid = json_string_value(json_object_get(o, "msg-id"));
  const char *from = json_string_value(json_object_get(o, "from"));
  json_t *ts = json_object_get(o, "timestamp"), *pts = json_object_get(o, "patch-timestamp");
  if (!msg_id_ok(mid)) return "msg-id must be 1 to 64 printable characters";
  if (!client_ok(from)) return "from must be a client id";
  if (!json_is_integer(ts) || json_integer_value(ts) <= 0) return "timestamp must be a time in ms";
  if (pts && !json_is_null(pts) && (!json_is_integer(pts) || json_integer_value(pts) < 0))
    return "patch-timestamp must be a time in ms";
  json_t *binary = json_object_get(o, "binary"), *data = json_object_get(o, "data");
  int recalled = json_is_true(json_object_get(o, "recalled")) || json_is_true(json_object_get(o, "recall"));
  int bin = binary || json_is_true(json_object_get(o, "bin"));
  json_t *content = binary ? binary : data;
  if (content && !json_is_string(content)) return "data (or binary, base64) must be a string";
  if (!content && !recalled) return "a message needs data or binary";
  if (content) {
    size_t n = json_string_length(content);
    op->data = xmalloc(n + 4); /* n + 1 for text, (n / 4 + 1) * 3 for base64 */
    if (bin) {
      long len = base64_decode(json_string_value(content), n, op->data);
      if (len < 0) return "binary content must be base64";
      op->len = (size_t)len;
    } else {
      memcpy(op->data, json_string_value(content), n);
      op->len = n;
    }
    op->data[op->len] = 0;
  } else {
    bin = 0;
    op->data = (uint8_t *)xstrdup(RECALLED);
    op->len = strlen(RECALLED);
  }
  if (op->len > (size_t)q->srv->cfg->max_message) return "content larger than max_message";
  json_t *mp = json_object_get(o, "mention-pids");
  if (mp && !json_is_null(mp)) {
    const char *why = NULL;
    size_t n;
    char **ids = ids_of(mp, MENTIONS_MAX, &n, &why);
    if (!ids) return "mention-pids is an array of at most 100 client ids";
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    if (n) op->mentions = json_dumps(mp, JSON_COMPACT); /* as sent: the order is the sender's */
  }
  op->flags = (bin ? MSG_F_BIN : 0) | (json_is_true(json_object_get(o, "mention-all")) ? MSG_F_MENTION_ALL : 0) |
              (recalled ? MSG_F_RECALLED : 0);
  if (!bin) op->has_lctype = scan_lctype((const char *)op->data, op->len, &op->lctype);
  op->mid = xstrdup(mid);
  op->sender = xstrdup(from);
  op->ts = json_integer_value(ts);
  op->patch_ts = json_is_integer(pts) ? json_integer_value(pts) : 0;
  return NULL;
}

/* The token a device is pushed on, as rest_installations.c picks it. */
static const char *token_of(json_t *o, const char *type) {
  const char *dt = json_string_value(json_object_get(o, "deviceToken"));
  const char *reg = json_string_value(json_object_get(o, "registrationId"));
  const char *iid = json_string_value(json_object_get(o, "installationId"));
  if (strcmp(type, "ios") == 0) return dt;
  if (strcmp(type, "android") == 0) return reg ? reg : iid;
  return dt ? dt : reg ? reg : iid;
}

static const char *parse_installation(json_t *o, import_op_t *op) {
  const char *id = json_string_value(json_object_get(o, "objectId"));
  const char *type = json_string_value(json_object_get(o, "deviceType"));
  if (!object_id_ok(id)) return "objectId must be 1 to 64 of A-Z a-z 0-9 _ : . -";
  if (!type || !*type || strlen(type) > 32) return "deviceType is required (ios, android, …)";
  const char *tok = token_of(o, type);
  size_t tl = tok ? strlen(tok) : 0;
  if (tl == 0 || tl > TOKEN_MAX)
    return "a deviceToken (ios) or installationId / registrationId of 1 to 256 characters is required";
  for (size_t i = 0; i < tl; i++)
    if ((unsigned char)tok[i] <= ' ' || tok[i] == 0x7f) return "a device token has no spaces or control characters";
  json_t *badge = json_object_get(o, "badge");
  if (badge && !json_is_null(badge) && !json_is_integer(badge)) return "badge must be an integer";
  int64_t created = 0, updated = 0; /* 0: the stored one, else now */
  if (time_of(json_object_get(o, "createdAt"), &created) < 0 || time_of(json_object_get(o, "updatedAt"), &updated) < 0)
    return "createdAt and updatedAt are Dates, ISO-8601 strings or ms";
  const char *why = NULL;
  size_t nch, ncl;
  char **channels = ids_of(json_object_get(o, "channels"), CHANNELS_MAX, &nch, &why);
  if (!channels) return "channels is an array of at most 100 client ids";
  /* the client ids its pushes are for: clientIds / clientId when the record names them,
   * else its channels (tern's registry routes a client's pushes through its channels) */
  json_t *ids = json_object_get(o, "clientIds");
  json_t *one = json_object_get(o, "clientId");
  json_t *list = ids ? json_incref(ids) : json_is_string(one) ? json_pack("[O]", one) : NULL;
  char **clients = list ? ids_of(list, CHANNELS_MAX, &ncl, &why) : NULL;
  json_decref(list);
  if (list && !clients) {
    for (size_t i = 0; i < nch; i++) free(channels[i]);
    free(channels);
    return "clientIds is an array of at most 100 client ids";
  }
  job_installation_t *in = op->inst = xcalloc(1, sizeof *in);
  if (clients) {
    for (size_t i = 0; i < nch; i++) free(channels[i]);
    free(channels);
    in->channels = clients;
    in->n = ncl;
  } else {
    in->channels = channels;
    in->n = nch;
  }
  json_t *body = json_copy(o);
  const char *drop[] = {"type", "objectId", "createdAt", "updatedAt", "clientIds", "clientId", NULL};
  for (int i = 0; drop[i]; i++) json_object_del(body, drop[i]);
  in->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(body);
  if (!in->body || strlen(in->body) > DOC_MAX) return "the installation is larger than 128 KiB";
  in->id = xstrdup(id);
  in->device_type = xstrdup(type);
  in->token = xstrdup(tok);
  in->created_at = created;
  in->updated_at = updated;
  if (json_is_integer(badge)) {
    in->has_badge = 1;
    in->badge = json_integer_value(badge);
  }
  return NULL;
}

/* A file name: 1 to 1024 bytes without control characters (jansson made sure of UTF-8). */
static int file_name_ok(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 1024) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  return 1;
}

/* A file object whose bytes stay at its URL: its metadata is stored alone (files.c), so
 * `_File` lists it and its URL stays the one messages carry. Runs on the thread pool. A
 * file already rehosted here stays as it is. */
static const char *import_file_record(import_req_t *q, json_t *o, int *applied) {
  const char *id = json_string_value(json_object_get(o, "objectId"));
  const char *name = json_string_value(json_object_get(o, "name"));
  const char *url = json_string_value(json_object_get(o, "url"));
  json_t *mime = json_object_get(o, "mime_type"), *md = json_object_get(o, "metaData");
  int64_t created = 0; /* absent: the stored object's, else now */
  if (!q->srv->files) return "file storage is not configured";
  if (!id || !files_valid_id(id)) return "a file's objectId is 24 lowercase hex digits";
  if (!file_name_ok(name)) return "name must be 1 to 1024 bytes without control characters";
  if (!url || strlen(url) > 4096 || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
    return "url must be an http(s) URL";
  if (mime && !json_is_null(mime) && (!json_is_string(mime) || json_string_length(mime) > 127))
    return "mime_type must be a media type";
  if (md && !json_is_null(md) && !json_is_object(md)) return "metaData must be an object";
  if (time_of(json_object_get(o, "createdAt"), &created) < 0) return "createdAt is a Date, ISO-8601 string or ms";
  json_t *have = NULL;
  int rc = files_get_meta(q->srv->files, id, &have);
  if (!created && (rc < 0 || time_of(json_object_get(have, "createdAt"), &created) <= 0)) created = now_ms();
  char iso[ISO_LEN + 1];
  iso_format(created, iso);
  json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b}", "objectId", id, "name", name, "url", url, "mime_type",
                           json_is_string(mime) ? json_string_value(mime) : "application/octet-stream", "metaData",
                           json_is_object(md) ? json_deep_copy(md) : json_object(), "createdAt", iso, "external", 1);
  char *text = json_dumps(meta, JSON_COMPACT);
  const char *why = NULL;
  if (!text || strlen(text) > FILE_META_MAX) {
    why = "the file's metadata is larger than 8 KiB";
  } else if (rc == 0 && (!json_is_true(json_object_get(have, "external")) || json_equal(have, meta))) {
    *applied = 0; /* rehosted already, or the same */
  } else if (rc == 0 || rc == TERN_ENOENT) {
    if (files_put_meta(q->srv->files, id, meta) < 0) why = "the file object could not be stored";
    *applied = 1;
  } else {
    why = "the file storage failed";
  }
  json_decref(have);
  free(text);
  json_decref(meta);
  return why;
}

static import_op_t *op_new(import_req_t *q, int type, int line) {
  if (q->j.n == q->cap) {
    q->cap = q->cap ? q->cap * 2 : 256;
    q->j.ops = xrealloc(q->j.ops, q->cap * sizeof *q->j.ops);
  }
  import_op_t *op = &q->j.ops[q->j.n++];
  memset(op, 0, sizeof *op);
  op->type = type;
  op->line = line;
  return op;
}

static void skipped(json_t *list, int line, const char *id, const char *reason) {
  json_array_append_new(list, json_pack("{s:i, s:s, s:s}", "line", line, "id", id ? id : "", "reason", reason));
}

/* One record. Returns NULL, or why it is skipped (then no op is kept). */
static const char *parse_line(import_req_t *q, json_t *o, int line) {
  const char *type = json_string_value(json_object_get(o, "type"));
  if (!type) return "type is required";
  if (strcmp(type, "file") == 0) {
    int applied = 0;
    const char *why = import_file_record(q, o, &applied);
    if (!why) {
      if (applied) q->applied++;
      else q->unchanged++;
    }
    return why;
  }
  static const struct {
    const char *name;
    int type;
  } types[] = {{"conversation", IMP_CONV},
               {"member_roles", IMP_ROLES},
               {"shutup", IMP_SHUTUP},
               {"blacklist", IMP_BLOCK},
               {"subscribers", IMP_SUBSCRIBERS},
               {"message", IMP_MSG},
               {"installation", IMP_INSTALLATION},
               {"mutes", IMP_MUTES}};
  int t = 0;
  for (size_t i = 0; i < sizeof types / sizeof types[0] && !t; i++)
    if (strcmp(type, types[i].name) == 0) t = types[i].type;
  if (!t) return "unknown type";
  import_op_t *op = op_new(q, t, line);
  const char *why = NULL;
  if (t != IMP_CONV && t != IMP_INSTALLATION) {
    const char *cid = json_string_value(json_object_get(o, "cid"));
    if (!object_id_ok(cid)) why = "cid must name a conversation";
    else op->cid = xstrdup(cid);
  }
  if (!why) {
    switch (t) {
    case IMP_CONV: why = parse_conv(q, o, op); break;
    case IMP_ROLES: why = parse_roles(o, op); break;
    case IMP_SHUTUP:
    case IMP_BLOCK: why = parse_list(o, op, SET_MAX); break;
    case IMP_SUBSCRIBERS: why = parse_list(o, op, SUBSCRIBERS_MAX); break;
    case IMP_MUTES: why = parse_list(o, op, (size_t)q->srv->cfg->max_members); break;
    case IMP_MSG: why = parse_msg(q, o, op); break;
    case IMP_INSTALLATION: why = parse_installation(o, op); break;
    }
  }
  if (why) {
    op_free(op);
    q->j.n--;
  }
  return why;
}

/* The id a skipped line is reported with: what the record names itself by. */
static const char *line_id(json_t *o) {
  const char *keys[] = {"msg-id", "objectId", "cid", NULL};
  for (int i = 0; keys[i]; i++) {
    const char *s = json_string_value(json_object_get(o, keys[i]));
    if (s) return s;
  }
  return "";
}

static void parse_work(uv_work_t *wk) {
  import_req_t *q = wk->data;
  if (!q->body.len) return; /* nothing to apply (and no buffer: data is NULL) */
  const char *p = (const char *)q->body.data, *end = p + q->body.len;
  size_t lines = 0;
  for (const char *s = p; s < end;) { /* count first: a body over the limit changes nothing */
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    for (const char *k = s; k < e; k++)
      if (*k != ' ' && *k != '\t' && *k != '\r') {
        lines++;
        break;
      }
    s = nl ? nl + 1 : end;
  }
  if (lines > IMPORT_MAX_LINES) {
    refuse(q, 413, "more than 20000 records in one request: send smaller batches");
    return;
  }
  int line = 0;
  for (const char *s = p; s < end;) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    line++;
    size_t n = (size_t)(e - s);
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    const char *b = s;
    while (n && (*b == ' ' || *b == '\t')) b++, n--;
    s = nl ? nl + 1 : end;
    if (!n) continue;
    if (json_text_depth(b, n, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) { /* as every document a peer sends (jsonlim.h) */
      skipped(q->skipped, line, "", "the record is nested deeper than 64 levels");
      continue;
    }
    json_error_t jerr;
    json_t *o = json_loadb(b, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
      skipped(q->skipped, line, "", "not a JSON object");
    } else {
      const char *why = parse_line(q, o, line);
      if (why) skipped(q->skipped, line, line_id(o), why);
    }
    json_decref(o);
  }
}

/* ---------------------------------------------------------------- apply and answer */

static void import_done(task_t *t);

/* Keys for the messages of cached conversations come from the conversation's counter, as
 * a send's do, under its lock: a live send right after can never take the same one. The
 * others (not cached: nobody is sending to them) are picked by the store. */
static void reserve_keys(import_req_t *q, im_t *im) {
  conv_t *c = NULL;
  const char *cid = NULL;
  for (size_t i = 0; i < q->j.n; i++) {
    import_op_t *op = &q->j.ops[i];
    if (op->type != IMP_MSG) continue;
    if (!cid || strcmp(cid, op->cid) != 0) {
      if (c) conv_release(c);
      c = convcache_peek(im, op->cid);
      cid = op->cid;
    }
    if (!c) continue;
    pthread_mutex_lock(&c->mu);
    op->seq = ++c->last_seq;
    if (op->ts > c->last_ts) c->last_ts = op->ts;
    pthread_mutex_unlock(&c->mu);
  }
  if (c) conv_release(c);
}

static void parse_after(uv_work_t *wk, int status) {
  import_req_t *q = wk->data;
  if (q->status) {
    req_answer(q, q->status, json_pack("{s:i, s:s}", "code", q->status == 413 ? 413 : 1, "error", q->error));
    return;
  }
  if (!q->j.n) {
    import_done(&q->j.job.task);
    return;
  }
  im_t *im = q->w->imw->im;
  reserve_keys(q, im);
  q->j.job.type = JOB_IMPORT;
  q->j.job.worker = q->w->idx;
  q->j.job.task.fn = import_done;
  store_submit(im->store, &q->j.job);
}

static int str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static void import_done(task_t *t) {
  import_req_t *q = (import_req_t *)t;
  im_worker_t *w = q->w->imw;
  if (q->j.n && q->j.job.result < 0) {
    req_answer(q, 500,
               json_pack("{s:i, s:s}", "code", 1, "error", "the import could not be stored; nothing of it was"));
    return;
  }
  /* the cache follows: new keys beyond the imported ones, the flag that sends ids to msg_ext */
  for (size_t i = 0; i < q->j.ntouched; i++) {
    import_conv_t *tc = &q->j.touched[i];
    im_conv_changed(w, tc->cid); /* other nodes reload its keys and ext_ids */
    conv_t *c = convcache_peek(w->im, tc->cid);
    if (!c) continue;
    pthread_mutex_lock(&c->mu);
    if (tc->max_ts > c->last_ts) c->last_ts = tc->max_ts;
    if (tc->max_seq > c->last_seq) c->last_seq = tc->max_seq;
    pthread_mutex_unlock(&c->mu);
    atomic_store(&c->ext_ids, 1);
    conv_release(c);
  }
  size_t applied = q->applied, unchanged = q->unchanged;
  const char *last_refreshed = NULL;
  for (size_t i = 0; i < q->j.n; i++) {
    import_op_t *op = &q->j.ops[i];
    if (op->outcome == IMP_APPLIED) applied++;
    else if (op->outcome == IMP_UNCHANGED) unchanged++;
    else
      skipped(q->skipped, op->line,
              op->type == IMP_MSG            ? op->mid
              : op->type == IMP_INSTALLATION ? op->inst->id
                                             : op->cid,
              op->reason ? op->reason : "not applied");
    if (op->outcome == IMP_APPLIED && op->type != IMP_MSG && op->type != IMP_INSTALLATION &&
        !str_eq(last_refreshed, op->cid)) {
      convcache_stored_behind(w->im, op->cid); /* reloaded on its next use (docs/cluster.md) */
      im_conv_changed(w, op->cid);
      last_refreshed = op->cid;
    }
  }
  /* skipped lines in line order: parse-time and store-time ones interleave */
  size_t n = json_array_size(q->skipped);
  json_t **v = xcalloc(n + 1, sizeof(json_t *));
  for (size_t i = 0; i < n; i++) v[i] = json_incref(json_array_get(q->skipped, i));
  for (size_t i = 1; i < n; i++)
    for (size_t k = i; k > 0 && json_integer_value(json_object_get(v[k - 1], "line")) >
                                    json_integer_value(json_object_get(v[k], "line"));
         k--) {
      json_t *tmp = v[k];
      v[k] = v[k - 1];
      v[k - 1] = tmp;
    }
  json_t *sorted = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(sorted, v[i]);
  free(v);
  req_answer(q, 200,
             json_pack("{s:I, s:I, s:o}", "applied", (json_int_t)applied, "unchanged", (json_int_t)unchanged, "skipped",
                       sorted));
}

/* ---------------------------------------------------------------- handlers */

/* Before the body is read: only a request with the master key may send a large one, so a
 * stranger cannot make the server hold 16 MiB. */
size_t rest_import_body_limit(conn_t *c, const http_req_t *r) {
  if (r->key != REST_KEY_MASTER) return HTTP_MAX_BODY; /* rest_authorize ran first (routes_head) */
  if (r->method == HTTP_PUT) return (size_t)c->w->srv->cfg->max_file_size;
  return IMPORT_MAX_BODY;
}

/* A slot among the requests in flight; answers 429 itself when there is none. */
static int take_slot(conn_t *c, const http_req_t *r) {
  if (atomic_fetch_add(&inflight, 1) < IMPORT_MAX_INFLIGHT) return 0;
  atomic_fetch_sub(&inflight, 1);
  http_respond_error(c, r, 429, 429, "too many import requests at once: wait for an answer before the next");
  return -1;
}

static import_req_t *req_new(conn_t *c) {
  import_req_t *q = xcalloc(1, sizeof *q);
  q->w = c->w;
  q->conn = c->id;
  q->srv = c->w->srv;
  q->skipped = json_array();
  q->work.data = q;
  http_take_body(c, &q->body);
  http_defer(c);
  return q;
}

void rest_import_records(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0 || take_slot(c, r) < 0) return;
  import_req_t *q = req_new(c);
  uv_queue_work(&c->w->loop, &q->work, parse_work, parse_after);
}

/* ---------------------------------------------------------------- PUT /1.2/import/files/:id */

typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  server_t *srv;
  buf_t body;
  char id[FILES_ID_LEN + 1];
  char *name, *mime;
  int64_t created;
  int named, dated; /* the request gave a name / a creation time (else an external record's) */
  json_t *client_meta;
  int status;
  char error[120];
  json_t *meta; /* what is stored now */
} file_req_t;

/* A media type to keep: printable ASCII with a '/', at most 127 bytes; else NULL. */
static char *mime_of(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > 127 || !memchr(s, '/', n)) return NULL;
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] > 0x7e) return NULL;
  return xstrdup(s);
}

static void file_work(uv_work_t *wk) {
  file_req_t *f = wk->data;
  json_t *have = NULL;
  int rc = files_get_meta(f->srv->files, f->id, &have);
  if (rc == 0 && !json_is_true(json_object_get(have, "external"))) { /* stored already: the same answer */
    f->meta = have;
    return;
  }
  if (rc < 0 && rc != TERN_ENOENT) {
    f->status = 500;
    snprintf(f->error, sizeof f->error, "the file storage failed");
    return;
  }
  if (rc == 0) { /* an external record: its bytes arrive now, under its name and time */
    const char *n = json_string_value(json_object_get(have, "name"));
    int64_t ms;
    if (!f->named && n) {
      free(f->name);
      f->name = xstrdup(n);
    }
    if (!f->dated && time_of(json_object_get(have, "createdAt"), &ms) > 0) f->created = ms;
    if (!f->client_meta && json_is_object(json_object_get(have, "metaData")))
      f->client_meta = json_deep_copy(json_object_get(have, "metaData"));
  }
  int over = rc == 0; /* the bytes replace the external record (a delete would retire the id) */
  json_decref(have);
  uint8_t d[16];
  char md5hex[33], iso[ISO_LEN + 1];
  md5(f->body.data ? f->body.data : (const uint8_t *)"", f->body.len, d);
  hex_encode(d, 16, md5hex);
  json_t *meta = f->client_meta ? json_incref(f->client_meta) : json_object();
  json_object_set_new(meta, "size", json_integer((json_int_t)f->body.len));
  json_object_set_new(meta, "_checksum", json_string(md5hex));
  if (!json_object_get(meta, "owner")) json_object_set_new(meta, "owner", json_string("unknown"));
  imgsize_t im;
  if (imgsize_parse(f->body.data, f->body.len, &im) == 0) {
    json_object_set_new(meta, "width", json_integer(im.width));
    json_object_set_new(meta, "height", json_integer(im.height));
    json_object_set_new(meta, "format", json_string(im.format));
  }
  iso_format(f->created, iso);
  f->meta = json_pack("{s:s, s:s, s:I, s:s, s:o, s:s}", "objectId", f->id, "name", f->name, "size",
                      (json_int_t)f->body.len, "mime_type", f->mime, "metaData", meta, "createdAt", iso);
  rc = (over ? files_put_bytes : files_put)(f->srv->files, f->id, f->body.data, f->body.len, f->meta);
  if (rc == TERN_EEXIST) { /* a concurrent PUT of the same file won: it is there */
    json_decref(f->meta);
    f->meta = NULL;
    if (files_get_meta(f->srv->files, f->id, &f->meta) == 0) return;
  }
  if (rc < 0) {
    f->status = 500;
    snprintf(f->error, sizeof f->error, "the file could not be stored");
  }
  buf_free(&f->body);
}

static void file_after(uv_work_t *wk, int status) {
  file_req_t *f = wk->data;
  conn_t *c;
  const http_req_t *r = http_deferred_find(f->w, f->conn, &c);
  if (r) {
    if (f->status || !f->meta) {
      http_respond_error(c, r, f->status ? f->status : 500, 1, f->error[0] ? f->error : "the file could not be stored");
    } else {
      json_t *o = rest_file_json(f->srv, f->meta, f->id);
      http_respond_json(c, r, 200, json_pack("{s:s, s:O}", "objectId", f->id, "url", json_object_get(o, "url")));
      json_decref(o);
    }
    http_resume(c);
  }
  buf_free(&f->body);
  free(f->name);
  free(f->mime);
  json_decref(f->client_meta);
  json_decref(f->meta);
  free(f);
  atomic_fetch_sub(&inflight, 1);
}

void rest_import_file(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  server_t *srv = c->w->srv;
  const char *id = http_path_param(r, "id");
  const char *raw_name = http_header(r, "X-Tern-File-Name"), *created = http_header(r, "X-Tern-Created-At");
  const char *meta_s = http_header(r, "X-Tern-Meta");
  if (!srv->files) {
    http_respond_error(c, r, 404, 404, "file storage is not configured");
    return;
  }
  if (!id || !files_valid_id(id)) {
    rest_bad(c, r, "a file's objectId is 24 lowercase hex digits");
    return;
  }
  char *name = raw_name ? http_url_decode(raw_name, strlen(raw_name), 0) : xstrdup("file");
  json_t *probe = json_string(name); /* NULL when not UTF-8 */
  int64_t ms = now_ms();
  json_t *cm = meta_s ? json_loads_capped(meta_s, 0, NULL) : NULL;
  const char *why = NULL;
  if (!probe || !file_name_ok(name))
    why = "X-Tern-File-Name: 1 to 1024 bytes of percent-encoded UTF-8, no control characters";
  json_decref(probe);
  if (!why && created) {
    json_t *cv = strspn(created, "0123456789") == strlen(created) ? json_integer(strtoll(created, NULL, 10))
                                                                  : json_string(created);
    if (time_of(cv, &ms) <= 0) why = "X-Tern-Created-At: an ISO-8601 time or ms";
    json_decref(cv);
  }
  if (!why && meta_s && (!json_is_object(cm) || strlen(meta_s) > FILE_META_MAX))
    why = "X-Tern-Meta: a JSON object of at most 8 KiB, nested at most 64 levels";
  if (why) {
    rest_bad(c, r, why);
    free(name);
    json_decref(cm);
    return;
  }
  if (take_slot(c, r) < 0) {
    free(name);
    json_decref(cm);
    return;
  }
  file_req_t *f = xcalloc(1, sizeof *f);
  f->work.data = f;
  f->w = c->w;
  f->conn = c->id;
  f->srv = srv;
  memcpy(f->id, id, FILES_ID_LEN + 1);
  f->name = name;
  char *mime = mime_of(http_header(r, "Content-Type"));
  f->mime = mime ? mime : xstrdup("application/octet-stream");
  f->created = ms;
  f->named = raw_name != NULL;
  f->dated = created != NULL;
  f->client_meta = cm;
  http_take_body(c, &f->body);
  http_defer(c);
  uv_queue_work(&c->w->loop, &f->work, file_work, file_after);
}
