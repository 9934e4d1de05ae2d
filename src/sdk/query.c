/* query.c — AVIMConversationQuery: a where-JSON builder, `conv/query`, and the cache
 * policies of the guide (cache-else-network by default with a one-hour max age).
 *
 * The builder writes LeanCloud query JSON directly (protocol.md §3.5): equality as a plain
 * value, comparisons as {"$gt": …} objects merged per key, regexes with $options, and
 * containsString as a \Q…\E-quoted regex as the JS SDK does. A query is copied when it is
 * run, so the caller may free or reuse it at once. Results are cached per client under a
 * key made of everything that shapes the answer (where, order, limit, skip, flags). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "timeutil.h"

struct tern_query {
  tern_client_t *c;
  json_t *where;
  int limit, skip, flag;
  char *order;
  tern_cache_policy_t policy;
  int max_age;
};

tern_query_t *tern_query_new(tern_client_t *c) {
  if (!c) return NULL;
  tern_query_t *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  q->c = c;
  q->where = json_object();
  q->limit = 10;
  q->max_age = 3600;
  q->policy = TERN_CACHE_ELSE_NETWORK;
  if (!q->where) {
    free(q);
    return NULL;
  }
  return q;
}

tern_client_t *query_client(const tern_query_t *q) { return q->c; }
tern_cache_policy_t query_policy(const tern_query_t *q) { return q->policy; }

void tern_query_free(tern_query_t *q) {
  if (!q) return;
  json_decref(q->where);
  free(q->order);
  free(q);
}

static const char *OPS[] = {NULL, "$ne", "$gt", "$gte", "$lt", "$lte"};

static int where_value(tern_query_t *q, const char *key, tern_cmp_t op, json_t *v) {
  if (!q || !key || !*key || !v || (int)op < 0 || op > TERN_LTE) {
    json_decref(v);
    return TERN_EINVAL;
  }
  if (op == TERN_EQ) return json_object_set_new(q->where, key, v) == 0 ? 0 : TERN_ENOMEM;
  json_t *o = json_object_get(q->where, key);
  /* an operator object merges ({"$gt":1,"$lt":9}); a plain value it replaces */
  if (!json_is_object(o) || json_object_get(o, "__type")) {
    o = json_object();
    if (!o || json_object_set_new(q->where, key, o) < 0) {
      json_decref(v);
      return TERN_ENOMEM;
    }
  }
  return json_object_set_new(o, OPS[op], v) == 0 ? 0 : TERN_ENOMEM;
}

int tern_query_where(tern_query_t *q, const char *key, tern_cmp_t op, const char *value_json) {
  if (!value_json) return TERN_EINVAL;
  return where_value(q, key, op, json_loads(value_json, JSON_DECODE_ANY, NULL));
}
int tern_query_where_str(tern_query_t *q, const char *key, tern_cmp_t op, const char *value) {
  return value ? where_value(q, key, op, json_string(value)) : TERN_EINVAL;
}
int tern_query_where_int(tern_query_t *q, const char *key, tern_cmp_t op, int64_t value) {
  return where_value(q, key, op, json_integer(value));
}
int tern_query_where_double(tern_query_t *q, const char *key, tern_cmp_t op, double value) {
  return where_value(q, key, op, json_real(value));
}
int tern_query_where_bool(tern_query_t *q, const char *key, tern_cmp_t op, int value) {
  return where_value(q, key, op, json_boolean(value));
}
int tern_query_where_date(tern_query_t *q, const char *key, tern_cmp_t op, int64_t ms) {
  char iso[ISO_LEN + 1];
  iso_format(ms, iso);
  return where_value(q, key, op, json_pack("{s:s,s:s}", "__type", "Date", "iso", iso));
}

int tern_query_matches_regex(tern_query_t *q, const char *key, const char *regex, const char *options) {
  if (!q || !key || !regex) return TERN_EINVAL;
  json_t *o = json_pack("{s:s}", "$regex", regex);
  if (o && options && *options) json_object_set_new(o, "$options", json_string(options));
  if (!o) return TERN_ENOMEM;
  return json_object_set_new(q->where, key, o) == 0 ? 0 : TERN_ENOMEM;
}

int tern_query_contains_string(tern_query_t *q, const char *key, const char *substring) {
  if (!q || !key || !substring) return TERN_EINVAL;
  /* \Q…\E quotes the literal; an \E inside it is split out the Java way */
  sbuf_t b = SBUF_INIT;
  int rc = sbuf_append_str(&b, "\\Q");
  for (const char *p = substring; *p && rc == 0; p++) {
    if (p[0] == '\\' && p[1] == 'E') {
      rc = sbuf_append_str(&b, "\\E\\\\E\\Q");
      p++;
    } else {
      rc = sbuf_append(&b, p, 1);
    }
  }
  if (rc == 0) rc = sbuf_append_str(&b, "\\E");
  char *re = rc == 0 ? sbuf_cstr(&b) : NULL;
  rc = re ? tern_query_matches_regex(q, key, re, NULL) : TERN_ENOMEM;
  sbuf_free(&b);
  return rc;
}

int tern_query_contains_all(tern_query_t *q, const char *key, const char *const *values, size_t n) {
  if (!q || !key || (n && !values)) return TERN_EINVAL;
  json_t *a = json_array();
  if (!a) return TERN_ENOMEM;
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(values[i]));
  json_t *o = json_object_get(q->where, key);
  if (!json_is_object(o)) {
    o = json_object();
    json_object_set_new(q->where, key, o);
  }
  return json_object_set_new(o, "$all", a) == 0 ? 0 : TERN_ENOMEM;
}

int tern_query_set_limit(tern_query_t *q, int limit) {
  if (!q || limit < 1 || limit > 1000) return TERN_EINVAL;
  q->limit = limit;
  return 0;
}
int tern_query_set_skip(tern_query_t *q, int skip) {
  if (!q || skip < 0) return TERN_EINVAL;
  q->skip = skip;
  return 0;
}
int tern_query_set_order(tern_query_t *q, const char *order) {
  if (!q) return TERN_EINVAL;
  char *s = order ? strdup(order) : NULL;
  if (order && !s) return TERN_ENOMEM;
  free(q->order);
  q->order = s;
  return 0;
}
int tern_query_set_compact(tern_query_t *q, int on) {
  if (!q) return TERN_EINVAL;
  q->flag = on ? q->flag | 1 : q->flag & ~1;
  return 0;
}
int tern_query_set_with_last_message(tern_query_t *q, int on) {
  if (!q) return TERN_EINVAL;
  q->flag = on ? q->flag | 2 : q->flag & ~2;
  return 0;
}
int tern_query_set_cache_policy(tern_query_t *q, tern_cache_policy_t policy) {
  if (!q || (int)policy < 0 || policy > TERN_CACHE_THEN_NETWORK) return TERN_EINVAL;
  q->policy = policy;
  return 0;
}
int tern_query_set_cache_max_age(tern_query_t *q, int seconds) {
  if (!q || seconds < 0) return TERN_EINVAL;
  q->max_age = seconds;
  return 0;
}
char *tern_query_where_json(const tern_query_t *q) {
  return q ? json_dumps(q->where, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

/* ---- running ---- */

typedef struct {
  tern_client_t *c;
  char *where;
  char *key;
  char *order;
  int limit, skip, flag, max_age;
  tern_cache_policy_t policy;
  tern_query_cb cb;
  tern_conv_cb get_cb; /* tern_query_get */
  void *data;
  char *cached; /* result JSON from the cache */
  int status;
} find_ctx_t;

static void find_ctx_free(void *p) {
  find_ctx_t *x = p;
  if (!x) return;
  free(x->where);
  free(x->key);
  free(x->order);
  free(x->cached);
  free(x);
}

/* Turns a results array into conversations and calls back. */
static void deliver(find_ctx_t *x, const char *json, int from_cache, int status) {
  tern_conv_t **convs = NULL;
  size_t n = 0;
  if (status == 0) {
    json_t *a = json_loads(json, 0, NULL);
    if (!json_is_array(a)) status = TERN_EPROTO;
    else {
      convs = calloc(json_array_size(a) + 1, sizeof *convs);
      if (!convs) status = TERN_ENOMEM;
      for (size_t i = 0; convs && i < json_array_size(a); i++) {
        tern_conv_t *v;
        if (conv_from_json(x->c, json_array_get(a, i), &v) == 0) convs[n++] = v;
      }
    }
    json_decref(a);
  }
  if (x->get_cb) {
    tern_conv_t *v = n ? convs[0] : NULL;
    if (status == 0 && !v) status = TERN_ENOENT;
    x->get_cb(x->c, v, status, x->data);
  } else if (x->cb) {
    x->cb(x->c, convs, n, from_cache, status, x->data);
  }
  free(convs);
}

static int use_cache_read(tern_cache_policy_t p) {
  return p == TERN_CACHE_ONLY || p == TERN_CACHE_ELSE_NETWORK || p == TERN_CACHE_THEN_NETWORK ||
         p == TERN_NETWORK_ELSE_CACHE;
}

static void on_results(tern_t *t, req_t *r, lc_cmd_t *reply, int status) {
  find_ctx_t *x = r->ctx;
  const char *json = NULL;
  if (status == 0) {
    if (reply && reply->convmessage && reply->convmessage->results && reply->convmessage->results->data)
      json = reply->convmessage->results->data;
    else status = TERN_EPROTO;
  }
  if (status == 0) {
    if (x->policy != TERN_CACHE_IGNORE) cache_put_query(x->c, x->key, json);
    deliver(x, json, 0, 0);
    return;
  }
  if (x->policy == TERN_NETWORK_ELSE_CACHE && status != TERN_ECANCELED) {
    char *cached = cache_get_query(x->c, x->key, -1);
    if (cached) {
      deliver(x, cached, 1, 0);
      free(cached);
      return;
    }
  }
  deliver(x, NULL, 0, status);
}

static int send_query(find_ctx_t *x) {
  tern_client_t *c = x->c;
  int rc = client_ready(c);
  if (rc < 0) return rc;
  lc_cmd_t cmd = LC__GENERIC_COMMAND__INIT;
  Lc__ConvCommand cm = LC__CONV_COMMAND__INIT;
  Lc__JsonObjectMessage where = LC__JSON_OBJECT_MESSAGE__INIT;
  PB_SET(cmd, cmd, LC__COMMAND_TYPE__conv);
  PB_SET(cmd, op, LC__OP_TYPE__query);
  cmd.peerid = c->id;
  where.data = x->where;
  cm.where = &where;
  PB_SET(cm, limit, x->limit);
  if (x->skip) PB_SET(cm, skip, x->skip);
  if (x->order) cm.sort = x->order;
  if (x->flag) PB_SET(cm, flag, x->flag);
  cmd.convmessage = &cm;
  req_t *r = req_new(c, on_results, NULL, NULL);
  if (!r) return TERN_ENOMEM;
  r->ctx = x;
  rc = conn_send(c->t, &cmd, r);
  if (rc == 0) r->ctx_free = find_ctx_free;
  return rc;
}

/* Deferred: answer from the cache, then (cache-then-network, or a miss) go to the network. */
static void from_cache_step(tern_t *t, void *ctx, int canceled) {
  find_ctx_t *x = ctx;
  if (canceled) {
    deliver(x, NULL, 0, TERN_ECANCELED);
    find_ctx_free(x);
    return;
  }
  if (x->cached) {
    deliver(x, x->cached, 1, 0);
    if (x->policy != TERN_CACHE_THEN_NETWORK) {
      find_ctx_free(x);
      return;
    }
  } else if (x->policy == TERN_CACHE_ONLY || x->status < 0) {
    deliver(x, NULL, 0, x->status < 0 ? x->status : TERN_ECACHEMISS);
    find_ctx_free(x);
    return;
  }
  int rc = send_query(x);
  if (rc < 0) {
    if (!x->cached) deliver(x, NULL, 0, rc);
    find_ctx_free(x);
  }
}

static int run(const tern_query_t *q, json_t *where_override, int limit, tern_query_cb cb, tern_conv_cb get_cb,
               void *data) {
  if (!q) return TERN_EINVAL;
  find_ctx_t *x = calloc(1, sizeof *x);
  if (!x) return TERN_ENOMEM;
  x->c = q->c;
  x->limit = limit;
  x->skip = q->skip;
  x->flag = q->flag;
  x->policy = q->policy;
  x->max_age = q->max_age;
  x->cb = cb;
  x->get_cb = get_cb;
  x->data = data;
  x->where = json_dumps(where_override ? where_override : q->where, JSON_COMPACT | JSON_SORT_KEYS);
  if (q->order) x->order = strdup(q->order);
  sbuf_t k = SBUF_INIT;
  if (sbuf_printf(&k, "%s|%s|%d|%d|%d", x->where ? x->where : "", q->order ? q->order : "", x->limit, x->skip,
                  x->flag) == 0)
    x->key = strdup(sbuf_cstr(&k));
  sbuf_free(&k);
  if (!x->where || !x->key || (q->order && !x->order)) {
    find_ctx_free(x);
    return TERN_ENOMEM;
  }
  int ready = client_ready(x->c);
  if (use_cache_read(x->policy) && (x->policy != TERN_NETWORK_ELSE_CACHE || ready < 0)) {
    int age = x->policy == TERN_CACHE_ONLY || x->policy == TERN_NETWORK_ELSE_CACHE ? -1 : x->max_age;
    x->cached = cache_get_query(x->c, x->key, age);
    if (!x->cached && ready < 0) x->status = ready;
    int rc = conn_defer(x->c->t, from_cache_step, x);
    if (rc < 0) find_ctx_free(x);
    return rc;
  }
  int rc = send_query(x);
  if (rc < 0) find_ctx_free(x);
  return rc;
}

int tern_query_find(const tern_query_t *q, tern_query_cb cb, void *data) {
  return run(q, NULL, q ? q->limit : 10, cb, NULL, data);
}

int tern_query_get(const tern_query_t *q, const char *conv_id, tern_conv_cb cb, void *data) {
  if (!q || !conv_id) return TERN_EINVAL;
  json_t *w = json_pack("{s:s}", "objectId", conv_id);
  if (!w) return TERN_ENOMEM;
  int rc = run(q, w, 1, NULL, cb, data);
  json_decref(w);
  return rc;
}
