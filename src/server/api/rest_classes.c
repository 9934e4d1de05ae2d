/* rest_classes.c — tern as a LeanCloud-shaped export source (issue #12): the storage API's
 * reads of the three classes an importer pulls, with the master key, in LeanCloud's shapes.
 *
 *   GET /1.1/classes/_Conversation[/:id]              conversations (not temporary ones)
 *   GET /1.1/classes/_Installation[/:id], /1.1/installations   push installations
 *   GET /1.1/classes/_File[/:id], /1.1/files          file objects (url: where to fetch them)
 *
 * Lists take `where` (JSON), `order` (comma list, '-' for descending), `limit` (default
 * 100, at most 1000; 0 with count), `skip` and `count=1`, and answer {"results": […]} plus
 * "count" when asked. Conversations go through the conversation query parser (store's
 * convq.h) and the backend, so every operator of `conv query` works; installations and files take the
 * subset an export needs (docs/rest.md): plain equality, $ne $lt $lte $gt $gte $in $nin
 * $exists on objectId, createdAt, updatedAt and their own fields. Installations are rows,
 * filtered in SQL; files are sidecars in a directory (files.c), listed and filtered on the
 * thread pool — by objectId alone without opening them. */
#include <stdlib.h>
#include <string.h>

#include "classq.h"
#include "err.h"
#include "files.h"
#include "jsonlim.h"
#include "rest_rtm.h"
#include "timeutil.h"

#define SKIP_MAX 10000000

typedef struct {
  int limit, skip, count;
  char *order;
  json_t *where; /* an object ({} when absent) */
} page_t;

static void page_free(page_t *p) {
  free(p->order);
  json_decref(p->where);
}

/* The paging parameters; answers 400 itself and returns -1 when they are not valid. */
static int page_of(conn_t *c, const http_req_t *r, page_t *p) {
  memset(p, 0, sizeof *p);
  char *where = http_query_param(r, "where"), *limit = http_query_param(r, "limit"),
       *count = http_query_param(r, "count");
  p->order = http_query_param(r, "order");
  /* capped like every JSON a peer sends (jsonlim.h): deeper than 64 levels is not taken */
  p->where = where && *where ? json_loads_capped(where, 0, NULL) : json_object();
  /* strtoll, not atoi: ?limit=99999999999 is past int (atoi's undefined case), not a page size */
  long long lim = limit && *limit ? strtoll(limit, NULL, 10) : 100;
  p->limit = lim < 0 ? 100 : lim > 1000 ? 1000 : (int)lim;
  int64_t skip = rest_qint(r, "skip", 0);
  p->skip = skip < 0 ? 0 : skip > SKIP_MAX ? SKIP_MAX : (int)skip;
  p->count = count && (strcmp(count, "1") == 0 || strcmp(count, "true") == 0);
  free(where);
  free(limit);
  free(count);
  if (!json_is_object(p->where)) {
    rest_bad(c, r, "where must be a JSON object");
    page_free(p);
    return -1;
  }
  return 0;
}

static void not_found(conn_t *c, const http_req_t *r) { http_respond_error(c, r, 404, 101, "Object not found."); }

static json_t *results(json_t *arr, const page_t *p, int64_t n) {
  json_t *o = json_pack("{s:o}", "results", arr);
  if (p->count) json_object_set_new(o, "count", json_integer(n));
  return o;
}

/* ---------------------------------------------------------------- where for installations and files */

/* The store's parsed conditions (store.h), which the installation reads hand to the backend
 * and the file reads evaluate here. */
typedef store_cmp_t cop_t;
#define C_EQ STORE_EQ
#define C_NE STORE_NE
#define C_LT STORE_LT
#define C_LTE STORE_LTE
#define C_GT STORE_GT
#define C_GTE STORE_GTE
#define C_IN STORE_IN
#define C_NIN STORE_NIN
#define C_EXISTS STORE_EXISTS
static const char *const cop_names[] = {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$exists"};

typedef store_cond_t cond_t; /* field and val borrowed from the where object */

typedef struct {
  cond_t v[64];
  size_t n;
} conds_t;

/* A time as LeanCloud writes them: a Date object, an ISO-8601 string or ms. */
static int time_of(json_t *v, int64_t *ms) {
  if (json_is_object(v)) {
    const char *type = json_string_value(json_object_get(v, "__type"));
    if (!type || strcmp(type, "Date") != 0) return -1;
    v = json_object_get(v, "iso");
  }
  if (json_is_string(v)) return iso_parse(json_string_value(v), ms) == 0 ? 0 : -1;
  if (json_is_integer(v)) return *ms = json_integer_value(v), 0;
  return -1;
}

static int is_time_field(const char *f) { return strcmp(f, "createdAt") == 0 || strcmp(f, "updatedAt") == 0; }

/* A field name: letters, digits, '_', and '.' between parts (metaData.size). */
static int field_ok(const char *f) {
  size_t n = strlen(f);
  if (!n || n > 64 || f[0] == '.' || f[n - 1] == '.' || strstr(f, "..")) return 0;
  return strspn(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == n;
}

static const char *add_cond(conds_t *cs, const char *field, cop_t op, json_t *val) {
  if (cs->n == sizeof cs->v / sizeof cs->v[0]) return "too many conditions";
  cond_t *c = &cs->v[cs->n++];
  *c = (cond_t){field, op, val, is_time_field(field), 0};
  if (op == C_EXISTS) return json_is_boolean(val) ? NULL : "$exists takes true or false";
  if (op == C_IN || op == C_NIN) {
    if (!json_is_array(val)) return "$in and $nin take an array";
    if (c->is_time) return "$in and $nin do not apply to createdAt and updatedAt";
    return NULL;
  }
  if (c->is_time && time_of(val, &c->ms) < 0) return "createdAt and updatedAt compare with Dates, ISO strings or ms";
  if (!c->is_time && !json_is_string(val) && !json_is_number(val) && !json_is_boolean(val))
    return "values are strings, numbers or booleans";
  return NULL;
}

/* {"field": value | {"$op": operand, …}, …} → an AND of conditions; NULL or why not. */
static const char *conds_of(json_t *where, conds_t *cs) {
  cs->n = 0;
  const char *k;
  json_t *v;
  json_object_foreach(where, k, v) {
    if (!field_ok(k))
      return k[0] == '$' ? "this class takes no $and / $or: list the conditions in one object"
                         : "field names are letters, digits, '_' and '.'";
    int ops = 0;
    const char *ok;
    json_t *ov;
    if (json_is_object(v) && !json_object_get(v, "__type")) json_object_foreach(v, ok, ov) ops += ok[0] == '$';
    if (!ops) {
      const char *why = add_cond(cs, k, C_EQ, v);
      if (why) return why;
      continue;
    }
    json_object_foreach(v, ok, ov) {
      size_t i = 0;
      while (i < sizeof cop_names / sizeof cop_names[0] && strcmp(cop_names[i], ok) != 0) i++;
      if (i == sizeof cop_names / sizeof cop_names[0])
        return "unsupported operator (this class takes $ne $lt $lte $gt $gte $in $nin $exists)";
      const char *why = add_cond(cs, k, (cop_t)i, ov);
      if (why) return why;
    }
  }
  return NULL;
}

/* ORDER BY for a class (classq.h: objectId, createdAt, updatedAt, the only sort keys
 * offered here); cols names their columns in that order. NULL or why not. */
static const char *order_sql(const char *order, const char *const cols[3], buf_t *out) {
  return class_order_sql(order, cols, out) ? "order takes objectId, createdAt and updatedAt ('-' for descending)"
                                           : NULL;
}

/* ---------------------------------------------------------------- _Conversation */

/* A conversation as the class holds it: without what only `conv query` answers add. */
static json_t *conv_object(json_t *o) {
  json_object_del(o, "conv_type");
  json_object_del(o, "temp");
  json_object_del(o, "ttl");
  return o;
}

/* The page as the class answers it (count when asked), from conv_query_run's result. */
static json_t *class_conv_shape(void *ctx, json_t *result) {
  (void)ctx;
  json_t *arr = json_deep_copy(json_object_get(result, "results"));
  if (!json_is_array(arr)) {
    json_decref(arr);
    arr = json_array();
  }
  for (size_t i = 0; i < json_array_size(arr); i++) conv_object(json_array_get(arr, i));
  json_t *o = json_pack("{s:o}", "results", arr);
  json_t *n = json_object_get(result, "count");
  if (n) json_object_set(o, "count", n);
  return o;
}

/* A class read's answer: the page; 400 with the reason for a query refused or out of budget
 * (query_timeout, a regular expression's match limits), 500 when storage failed. */
static void class_conv_done(im_worker_t *w, void *arg, int code, json_t *result) {
  rest_wait_t *wt = arg;
  if (!code) {
    rest_answer(w, wt, 0, result);
    return;
  }
  conn_t *c;
  const http_req_t *r = http_deferred_find(wt->srv->workers[wt->worker], wt->conn, &c);
  if (r) {
    const char *why = json_string_value(json_object_get(result, "error"));
    if (code == LC_CONVERSATION_INTERNAL_ERROR) http_respond_error(c, r, 500, 1, "query failed");
    else rest_bad(c, r, why ? why : "query failed");
    http_resume(c);
  }
  rest_wait_free(wt);
}

void rest_class_conversations(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  const char *id = http_path_param(r, "id");
  if (id) { /* one primary-key read: on the loop */
    const char *ids[1] = {id};
    json_t *arr = json_array();
    if (store_conv_fetch(c->w->imw->reader, ids, 1, 0, conv_view_append, arr) < 0) {
      json_decref(arr);
      http_respond_error(c, r, 500, 1, "storage failed");
      return;
    }
    json_t *o = json_array_get(arr, 0);
    if (!o || json_integer_value(json_object_get(o, "conv_type")) == CONV_TEMP) not_found(c, r);
    else http_respond_json(c, r, 200, conv_object(json_incref(o)));
    json_decref(arr);
    return;
  }
  page_t p;
  if (page_of(c, r, &p) < 0) return;
  char err[200] = "";
  /* every kind the class holds (queries leave temporary ones out), not "m contains me" */
  json_t *all = json_pack("{s:[{s:{s:b}}, O]}", "$and", "objectId", "$exists", 1, p.where);
  /* a where can be made to cost a lot per row: on the query threads, within query_timeout,
   * like conv query — never on this loop */
  rest_wait_t *wt = rest_wait(c, class_conv_shape, NULL);
  im_done_t d = {class_conv_done, wt};
  if (conv_query_run(c->w->imw, c->ip, all, "", p.order && *p.order ? p.order : "createdAt", p.limit, p.skip, 0,
                     p.count, &d, err, sizeof err) < 0) {
    json_t *why = json_pack("{s:s}", "error", err);
    class_conv_done(c->w->imw, wt, LC_CONVERSATION_QUERY_FAILED, why);
    json_decref(why);
  }
  json_decref(all);
  page_free(&p);
}

/* ---------------------------------------------------------------- _Installation */

static json_t *inst_object(const installation_row_t *row) {
  return json_stored_object(row->body, row->id, row->created_at, row->updated_at);
}

static void inst_row(void *arg, const installation_row_t *row) { json_array_append_new(arg, inst_object(row)); }

void rest_class_installations(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  store_reader_t *rd = c->w->imw->reader;
  const char *id = http_path_param(r, "id");
  if (id) {
    installation_row_t row;
    int rc = strlen(id) > 64 ? TERN_ENOENT : store_installation_get(rd, id, NULL, NULL, &row);
    if (rc == TERN_ENOENT) {
      not_found(c, r);
    } else if (rc < 0) {
      http_respond_error(c, r, 500, 1, "storage failed");
    } else {
      http_respond_json(c, r, 200, inst_object(&row));
      installation_row_free(&row);
    }
    return;
  }
  page_t p;
  if (page_of(c, r, &p) < 0) return;
  conds_t *cs = xmalloc(sizeof *cs);
  buf_t ord = BUF_INIT;
  static const char *const cols[3] = {"id", "created_at", "updated_at"};
  const char *why = conds_of(p.where, cs);
  if (!why) why = order_sql(p.order, cols, &ord); /* checks the keys; the backend orders */
  int64_t n = 0;
  json_t *arr = json_array();
  if (why) {
    rest_bad(c, r, why);
  } else {
    store_class_q_t q = {.conds = cs->v, .n = cs->n, .order = p.order, .limit = p.limit, .skip = p.skip};
    if ((p.count && store_installation_count(rd, &q, &n) < 0) ||
        (p.limit && store_installation_query(rd, &q, inst_row, arr) < 0)) {
      http_respond_error(c, r, 500, 1, "query failed");
    } else {
      http_respond_json(c, r, 200, results(arr, &p, n));
      arr = NULL;
    }
  }
  json_decref(arr);
  free(cs);
  buf_free(&ord);
  page_free(&p);
}

/* ---------------------------------------------------------------- _File (on the thread pool) */

/* The value at a dotted path of o, or NULL. */
static json_t *field_of(json_t *o, const char *f) {
  char part[65];
  while (o && *f) {
    size_t n = strcspn(f, ".");
    snprintf(part, sizeof part, "%.*s", (int)n, f);
    o = json_object_get(o, part);
    f += n + (f[n] == '.');
  }
  return o;
}

/* -1, 0, 1 as a compares with b (numbers with numbers, strings with strings); 2: they do not. */
static int compare(json_t *a, json_t *b) {
  if (json_is_number(a) && json_is_number(b)) {
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
  }
  if (json_is_string(a) && json_is_string(b)) {
    int d = strcmp(json_string_value(a), json_string_value(b));
    return d < 0 ? -1 : d > 0;
  }
  if (json_is_boolean(a) && json_is_boolean(b)) return json_is_true(a) == json_is_true(b) ? 0 : 2;
  return 2;
}

/* Does v (or, v being an array, one of its elements) equal x? */
static int equals(json_t *v, json_t *x) {
  if (json_is_array(v)) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (compare(e, x) == 0) return 1;
    return 0;
  }
  return v && compare(v, x) == 0;
}

static int in_list(json_t *v, json_t *list) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) if (equals(v, e)) return 1;
  return 0;
}

static int cond_holds(const cond_t *c, json_t *o) {
  json_t *v = field_of(o, c->field);
  if (c->op == C_EXISTS) return (v != NULL) == json_is_true(c->val);
  if (c->op == C_IN) return in_list(v, c->val);
  if (c->op == C_NIN) return !in_list(v, c->val);
  int d;
  if (c->is_time) {
    int64_t ms;
    if (!v || time_of(v, &ms) < 0) return c->op == C_NE;
    d = ms < c->ms ? -1 : ms > c->ms;
  } else if (c->op == C_EQ || c->op == C_NE) {
    return equals(v, c->val) == (c->op == C_EQ);
  } else {
    d = compare(v, c->val);
    if (d == 2) return 0;
  }
  switch (c->op) {
  case C_EQ: return d == 0;
  case C_NE: return d != 0;
  case C_LT: return d < 0;
  case C_LTE: return d <= 0;
  case C_GT: return d > 0;
  default: return d >= 0;
  }
}

typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  server_t *srv;
  page_t p;
  conds_t cs;
  char *id; /* one object, or NULL: a list */
  /* the order: by which key (0 objectId, 1 createdAt, 2 updatedAt) and direction */
  int key[3], desc[3], nkeys;
  char **ids;
  size_t nids, cap;
  int status;
  json_t *out;
} files_req_t;

static void collect_id(void *arg, const char *id) {
  files_req_t *f = arg;
  if (f->nids == f->cap) {
    f->cap = f->cap ? f->cap * 2 : 256;
    f->ids = xrealloc(f->ids, f->cap * sizeof(char *));
  }
  f->ids[f->nids++] = xstrdup(id);
}

/* The object as the class shows it: the metadata, the URL, updatedAt (files never change). */
static json_t *file_object(const server_t *srv, const char *id) {
  json_t *meta = NULL;
  if (files_get_meta(srv->files, id, &meta) < 0) return NULL;
  json_t *o = rest_file_json(srv, meta, id);
  json_object_del(o, "external");
  json_object_set(o, "updatedAt", json_object_get(o, "createdAt"));
  json_decref(meta);
  return o;
}

static _Thread_local files_req_t *tl_sort; /* qsort has no argument: the request being sorted */

static int cmp_objects(const void *a, const void *b) {
  json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  static const char *const keys[3] = {"objectId", "createdAt", "updatedAt"};
  for (int i = 0; i < tl_sort->nkeys; i++) {
    const char *s = json_string_value(json_object_get(x, keys[tl_sort->key[i]]));
    const char *t = json_string_value(json_object_get(y, keys[tl_sort->key[i]]));
    int d = strcmp(s ? s : "", t ? t : "");
    if (d) return tl_sort->desc[i] ? -d : d;
  }
  return strcmp(json_string_value(json_object_get(x, "objectId")), json_string_value(json_object_get(y, "objectId")));
}

static int cmp_ids(const void *a, const void *b) {
  int d = strcmp(*(char *const *)a, *(char *const *)b);
  return tl_sort->desc[0] ? -d : d;
}

static void files_work(uv_work_t *wk) {
  files_req_t *f = wk->data;
  if (f->id) {
    f->out = files_valid_id(f->id) ? file_object(f->srv, f->id) : NULL;
    f->status = f->out ? 200 : 404;
    return;
  }
  if (files_list(f->srv->files, collect_id, f) < 0) {
    f->status = 500;
    return;
  }
  tl_sort = f;
  json_t *arr = json_array();
  int64_t total = 0;
  int by_id = f->nkeys == 1 && f->key[0] == 0;
  for (size_t i = 0; by_id && i < f->cs.n; i++) by_id = strcmp(f->cs.v[i].field, "objectId") == 0;
  if (by_id) { /* the names say all: open only the page */
    json_t *idv = json_object();
    size_t k = 0;
    for (size_t i = 0; i < f->nids; i++) {
      json_object_set_new(idv, "objectId", json_string(f->ids[i]));
      int keep = 1;
      for (size_t c = 0; c < f->cs.n && keep; c++) keep = cond_holds(&f->cs.v[c], idv);
      if (keep) f->ids[k++] = f->ids[i];
      else free(f->ids[i]);
    }
    f->nids = k;
    json_decref(idv);
    if (f->nids) qsort(f->ids, f->nids, sizeof(char *), cmp_ids); /* ids is NULL when there are none */
    total = (int64_t)f->nids;
    for (size_t i = (size_t)f->p.skip; i < f->nids && (int)json_array_size(arr) < f->p.limit; i++) {
      json_t *o = file_object(f->srv, f->ids[i]);
      if (o) json_array_append_new(arr, o);
    }
  } else {
    json_t **v = xcalloc(f->nids + 1, sizeof(json_t *));
    size_t k = 0;
    for (size_t i = 0; i < f->nids; i++) {
      json_t *o = file_object(f->srv, f->ids[i]);
      int keep = o != NULL;
      for (size_t c = 0; c < f->cs.n && keep; c++) keep = cond_holds(&f->cs.v[c], o);
      if (keep) v[k++] = o;
      else json_decref(o);
    }
    qsort(v, k, sizeof *v, cmp_objects);
    total = (int64_t)k;
    for (size_t i = 0; i < k; i++) {
      if (i >= (size_t)f->p.skip && (int)json_array_size(arr) < f->p.limit) json_array_append(arr, v[i]);
      json_decref(v[i]);
    }
    free(v);
  }
  f->out = results(arr, &f->p, total);
  f->status = 200;
}

static void files_after(uv_work_t *wk, int status) {
  files_req_t *f = wk->data;
  conn_t *c;
  const http_req_t *r = http_deferred_find(f->w, f->conn, &c);
  if (r) {
    if (f->status == 200) http_respond_json(c, r, 200, json_incref(f->out));
    else if (f->status == 404) not_found(c, r);
    else http_respond_error(c, r, 500, 1, "the file storage could not be listed");
    http_resume(c);
  }
  json_decref(f->out);
  for (size_t i = 0; i < f->nids; i++) free(f->ids[i]);
  free(f->ids);
  free(f->id);
  page_free(&f->p);
  free(f);
}

void rest_class_files(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  if (!c->w->srv->files) {
    http_respond_error(c, r, 404, 404, "file storage is not configured");
    return;
  }
  files_req_t *f = xcalloc(1, sizeof *f);
  const char *id = http_path_param(r, "id");
  if (id) {
    f->id = xstrdup(id);
  } else {
    if (page_of(c, r, &f->p) < 0) {
      free(f);
      return;
    }
    const char *why = conds_of(f->p.where, &f->cs);
    static const char *const keys[3] = {"0", "1", "2"};
    buf_t ord = BUF_INIT;
    if (!why) why = order_sql(f->p.order, keys, &ord);
    if (why) {
      rest_bad(c, r, why);
      buf_free(&ord);
      page_free(&f->p);
      free(f);
      return;
    }
    /* order_sql wrote "k ASC|DESC, …, 0 ASC": read the keys back */
    for (const char *s = buf_cstr(&ord); *s && f->nkeys < 3;) {
      f->key[f->nkeys] = *s - '0';
      f->desc[f->nkeys] = strncmp(s + 2, "DESC", 4) == 0;
      f->nkeys++;
      const char *comma = strchr(s, ',');
      if (!comma) break;
      s = comma + 2;
    }
    if (f->nkeys > 1 && f->key[f->nkeys - 1] == 0 && !f->desc[f->nkeys - 1]) f->nkeys--; /* the tie-break */
    buf_free(&ord);
  }
  f->work.data = f;
  f->w = c->w;
  f->conn = c->id;
  f->srv = c->w->srv;
  http_defer(c);
  uv_queue_work(&c->w->loop, &f->work, files_work, files_after);
}
