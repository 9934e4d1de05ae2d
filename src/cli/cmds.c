/* cmds.c — the scriptable commands of `tern`: send, history, conv, watch. Each logs in with
 * the blocking layer <tern/sync.h>, does its one thing and prints a summary or, with --json,
 * JSON. main.c has checked the arguments; what can still fail is the server's answer, or
 * reaching it (said with the URL tried: cli_connect_failed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static void print_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  printf("%s\n", s ? s : "null");
  fflush(stdout);
  free(s);
  json_decref(j);
}

static int fail(const cli_opts_t *o, const char *what, int rc) {
  if (cli_is_connect_error(rc)) return cli_connect_failed(o, rc);
  if (o->json) print_json(json_pack("{s:s,s:i,s:s}", "error", tern_err_name(rc), "code", rc, "what", what));
  fprintf(stderr, "tern: %s: %s (%s)\n", what, tern_strerror(rc), tern_err_name(rc));
  return 1;
}

/* ---- command context: a sync tern_t and the open client ---- */

typedef struct {
  const cli_opts_t *o;
  tern_t *t;
  tern_client_t *c;
} ctx_t;

static int ctx_open(ctx_t *x, const cli_opts_t *o, const tern_delegate_t *d, void *ddata) {
  x->o = o;
  tern_options_t to;
  cli_tern_options(o, &to);
  x->t = tern_sync_new(&to);
  if (!x->t) {
    fprintf(stderr, "tern: cannot use --url %s with --app-id %s\n", o->url, o->app_id);
    return 2;
  }
  tern_register_message_type(x->t, CLI_TYPING_TYPE);
  x->c = tern_client_get(x->t, o->as, o->tag);
  if (!x->c) {
    tern_free(x->t);
    fprintf(stderr, "tern: bad client id \"%s\"\n", o->as);
    return 2;
  }
  if (d) tern_client_set_delegate(x->c, d, ddata);
  int rc = tern_sync_open(x->c, NULL);
  if (rc < 0) {
    tern_free(x->t);
    return cli_connect_failed(o, rc);
  }
  return 0;
}

static void ctx_close(ctx_t *x) {
  tern_sync_close(x->c);
  tern_free(x->t);
}

/* --conv CID, or --to ID: the unique conversation of the two. */
static int find_conv(ctx_t *x, const char *cid, const char *to, tern_conv_t **out) {
  int rc;
  if (cid) rc = tern_sync_get_conv(x->c, cid, out);
  else rc = tern_sync_create_conv(x->c, NULL, &to, 1, NULL, TERN_CONV_UNIQUE, out);
  return rc < 0 ? fail(x->o, "conversation", rc) : 0;
}

/* ctx_open, then find_conv: 0 with both, or the exit status with nothing left open. */
static int ctx_open_conv(ctx_t *x, const cli_opts_t *o, const cli_args_t *a, tern_conv_t **conv) {
  int rc = ctx_open(x, o, NULL, NULL);
  if (rc) return rc;
  if (find_conv(x, a->conv, a->to, conv)) {
    ctx_close(x);
    return 1;
  }
  return 0;
}

static char *join_words(char **w, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(w[i]) + 1;
  char *s = malloc(len);
  if (!s) return NULL;
  size_t at = 0; /* each word and a space fit in len, counted above */
  for (int i = 0; i < n; i++) {
    size_t k = strlen(w[i]);
    if (i) s[at++] = ' ';
    memcpy(s + at, w[i], k);
    at += k;
  }
  s[at] = 0;
  return s;
}

int cmd_send(const cli_opts_t *o, cli_args_t *a) {
  ctx_t x;
  tern_conv_t *conv;
  int rc = ctx_open_conv(&x, o, a, &conv);
  if (rc) return rc;
  char *text = join_words(a->pos, a->npos);
  tern_msg_t *m = NULL;
  if (!text) m = NULL;
  else if (a->file)
    m = tern_msg_new_file_path(a->type ? a->type : TERN_MSG_FILE, *text ? text : NULL, a->file, a->attr);
  else if (a->image) m = tern_msg_new_file_url(TERN_MSG_IMAGE, *text ? text : NULL, a->image, a->attr);
  else if (a->type) m = tern_msg_new_typed(a->type, text, a->attr);
  else m = tern_msg_new_text(text, a->attr);
  free(text);
  if (!m) {
    ctx_close(&x);
    return fail(o, "message", TERN_EINVAL);
  }
  tern_msg_t *sent = NULL;
  unsigned opts = (a->transient ? TERN_SEND_TRANSIENT : 0) | (a->receipt ? TERN_SEND_RECEIPT : 0);
  rc = tern_sync_send(conv, m, opts, &sent);
  tern_msg_free(m);
  int ret = 0;
  if (rc < 0) ret = fail(o, "send", rc);
  else if (o->json) print_json(cli_msg_json(sent));
  else printf("sent %s to %s\n", tern_msg_id(sent), tern_conv_id(conv));
  tern_msg_free(sent);
  ctx_close(&x);
  return ret;
}

int cmd_history(const cli_opts_t *o, cli_args_t *a) {
  ctx_t x;
  tern_conv_t *conv;
  int rc = ctx_open_conv(&x, o, a, &conv);
  if (rc) return rc;
  tern_msg_t **msgs;
  size_t n;
  rc = tern_sync_history(conv, a->before, a->before_ts, a->limit ? a->limit : 20, &msgs, &n, NULL);
  if (rc < 0) {
    ctx_close(&x);
    return fail(o, "history", rc);
  }
  if (o->json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, cli_msg_json(msgs[i]));
    print_json(arr);
  } else {
    for (size_t i = 0; i < n; i++) {
      char *s = cli_msg_summary(msgs[i]);
      time_t secs = (time_t)(tern_msg_timestamp(msgs[i]) / 1000);
      struct tm tm;
      localtime_r(&secs, &tm);
      char when[32];
      strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
      printf("%s %s %s: %s\n", when, tern_msg_id(msgs[i]), tern_msg_from(msgs[i]), s);
      free(s);
    }
  }
  tern_sync_msgs_free(msgs, n);
  ctx_close(&x);
  return 0;
}

static void print_conv(const cli_opts_t *o, tern_conv_t *c) {
  if (o->json) {
    print_json(cli_conv_json(c));
    return;
  }
  size_t n;
  const char *const *m = tern_conv_members(c, &n);
  printf("%s  %s  [", tern_conv_id(c), tern_conv_name(c) ? tern_conv_name(c) : "(unnamed)");
  for (size_t i = 0; i < n; i++) printf("%s%s", i ? ", " : "", m[i]);
  printf("]\n");
}

/* --where JSON → query conditions: plain values are $eq; $eq $ne $gt $gte $lt $lte, $regex
 * (with $options) and $all pass through. NULL, or the operator that has no equivalent. */
static const char *build_where(tern_query_t *q, const char *where) {
  static char bad[80];
  json_t *w = json_loads(where, 0, NULL); /* main.c checked it is a JSON object */
  const char *k, *op;
  json_t *v, *ov;
  const char *unsupported = NULL;
  json_object_foreach(w, k, v) {
    if (!json_is_object(v)) {
      char *vs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      tern_query_where(q, k, TERN_EQ, vs);
      free(vs);
      continue;
    }
    json_object_foreach(v, op, ov) {
      static const char *names[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"};
      int found = 0;
      for (int i = 0; i < 6; i++)
        if (strcmp(op, names[i]) == 0) {
          char *ovs = json_dumps(ov, JSON_COMPACT | JSON_ENCODE_ANY);
          tern_query_where(q, k, (tern_cmp_t)i, ovs);
          free(ovs);
          found = 1;
        }
      if (found || strcmp(op, "$options") == 0) continue;
      if (strcmp(op, "$regex") == 0 && json_is_string(ov)) {
        tern_query_matches_regex(q, k, json_string_value(ov), json_string_value(json_object_get(v, "$options")));
      } else if (strcmp(op, "$all") == 0 && json_is_array(ov)) {
        const char *vals[64];
        size_t nv = 0;
        for (size_t i = 0; i < json_array_size(ov) && nv < 64; i++)
          if (json_is_string(json_array_get(ov, i))) vals[nv++] = json_string_value(json_array_get(ov, i));
        tern_query_contains_all(q, k, vals, nv);
      } else if (!unsupported) {
        snprintf(bad, sizeof bad, "%s", op);
        unsupported = bad;
      }
    }
  }
  json_decref(w);
  return unsupported;
}

int cmd_conv(const cli_opts_t *o, cli_args_t *a, const char *sub) {
  ctx_t x;
  int rc = ctx_open(&x, o, NULL, NULL);
  if (rc) return rc;
  int ret = 0;
  tern_conv_t *conv = NULL;
  if (strcmp(sub, "create") == 0) {
    unsigned opts = (a->unique ? TERN_CONV_UNIQUE : 0) | (a->transient ? TERN_CONV_TRANSIENT : 0);
    rc = tern_sync_create_conv(x.c, a->name, (const char *const *)a->pos, (size_t)a->npos, a->attr, opts, &conv);
    if (rc < 0) ret = fail(o, "create", rc);
    else print_conv(o, conv);
  } else if (strcmp(sub, "query") == 0) {
    tern_query_t *q = tern_query_new(x.c);
    tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
    if (a->limit) tern_query_set_limit(q, a->limit);
    if (a->order) tern_query_set_order(q, a->order);
    const char *bad = a->where ? build_where(q, a->where) : NULL;
    tern_conv_t **res = NULL;
    size_t n = 0;
    if (bad) {
      fprintf(stderr,
              "tern conv query: --where: %s is not an operator tern conv query knows ($eq $ne $gt $gte $lt $lte "
              "$regex $all) (tern conv query --help)\n",
              bad);
      ret = 2;
    } else if ((rc = tern_sync_find(q, &res, &n)) < 0) {
      ret = fail(o, "query", rc);
    } else if (o->json) {
      json_t *arr = json_array();
      for (size_t i = 0; i < n; i++) json_array_append_new(arr, cli_conv_json(res[i]));
      print_json(arr);
    } else {
      for (size_t i = 0; i < n; i++) print_conv(o, res[i]);
    }
    tern_query_free(q);
    free(res);
  } else { /* add, remove, count: of --conv */
    if (find_conv(&x, a->conv, NULL, &conv)) {
      ctx_close(&x);
      return 1;
    }
    if (strcmp(sub, "count") == 0) {
      int count = 0;
      rc = tern_sync_count_members(conv, &count);
      if (rc < 0) ret = fail(o, "count", rc);
      else if (o->json) print_json(json_pack("{s:s,s:i}", "id", tern_conv_id(conv), "count", count));
      else printf("%d\n", count);
    } else {
      const char *const *ids = (const char *const *)a->pos;
      size_t n = (size_t)a->npos;
      rc = sub[0] == 'a' ? tern_sync_add_members(conv, ids, n) : tern_sync_remove_members(conv, ids, n);
      if (rc < 0) ret = fail(o, sub, rc);
      else print_conv(o, conv);
    }
  }
  ctx_close(&x);
  return ret;
}

/* ---- watch ---- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { interrupted = 1; }

typedef struct {
  const cli_opts_t *o;
  int started; /* "ready" was said: events count from here on */
  int events;
} watch_t;

static void emit(watch_t *w, json_t *j, const char *text) {
  if (w->started) w->events++;
  if (w->o->json) print_json(j);
  else {
    printf("%s\n", text);
    fflush(stdout);
    json_decref(j);
  }
}

static void w_message(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  watch_t *w = data;
  char label[256];
  cli_conv_label(conv, w->o->as, label, sizeof label);
  if (tern_msg_type(m) == CLI_TYPING_TYPE) {
    char line[512];
    snprintf(line, sizeof line, "%s is typing in %s", tern_msg_from(m), label);
    emit(data, json_pack("{s:s,s:s,s:s}", "event", "typing", "conv", tern_conv_id(conv), "from", tern_msg_from(m)),
         line);
    return;
  }
  json_t *j = json_pack("{s:s,s:o}", "event", "message", "message", cli_msg_json(m));
  char *s = cli_msg_summary(m);
  char line[4400];
  snprintf(line, sizeof line, "[%s] %s: %s", label, tern_msg_from(m), s);
  free(s);
  emit(data, j, line);
}

static void w_members(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by, void *data,
                      const char *what) {
  json_t *a = json_array();
  char list[1024] = "";
  for (size_t i = 0; i < n; i++) {
    json_array_append_new(a, json_string(ids[i]));
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, ids[i], sizeof list - strlen(list) - 1);
  }
  char line[1400];
  snprintf(line, sizeof line, "%s: %s %s by %s", tern_conv_id(conv), list, what, by ? by : "?");
  emit(data, json_pack("{s:s,s:s,s:o,s:s?}", "event", what, "conv", tern_conv_id(conv), "members", a, "by", by), line);
}
static void w_added(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  w_members(c, v, ids, n, by, d, "joined");
}
static void w_removed(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  w_members(c, v, ids, n, by, d, "left");
}
static void w_simple(void *data, const char *ev, tern_conv_t *conv, const char *by) {
  char line[512];
  snprintf(line, sizeof line, "%s %s by %s", conv ? tern_conv_id(conv) : "", ev, by ? by : "?");
  emit(data, json_pack("{s:s,s:s?,s:s?}", "event", ev, "conv", conv ? tern_conv_id(conv) : NULL, "by", by), line);
}
static void w_invited(tern_client_t *c, tern_conv_t *v, const char *by, void *d) { w_simple(d, "invited", v, by); }
static void w_kicked(tern_client_t *c, tern_conv_t *v, const char *by, void *d) { w_simple(d, "kicked", v, by); }
static void w_unread(tern_client_t *c, tern_conv_t *v, int n, void *d) {
  char line[256];
  snprintf(line, sizeof line, "%s unread %d", tern_conv_id(v), n);
  emit(d, json_pack("{s:s,s:s,s:i}", "event", "unread", "conv", tern_conv_id(v), "count", n), line);
}
static void w_delivered(tern_client_t *c, tern_conv_t *v, const tern_msg_t *m, void *d) {
  char line[256];
  snprintf(line, sizeof line, "%s delivered %s", tern_conv_id(v), tern_msg_id(m));
  emit(d, json_pack("{s:s,s:s,s:s?}", "event", "delivered", "conv", tern_conv_id(v), "id", tern_msg_id(m)), line);
}
static void w_updated(tern_client_t *c, tern_conv_t *v, const char *attr, const char *by, void *d) {
  char line[1024];
  snprintf(line, sizeof line, "%s updated %s by %s", tern_conv_id(v), attr, by ? by : "?");
  emit(d,
       json_pack("{s:s,s:s,s:o,s:s?}", "event", "updated", "conv", tern_conv_id(v), "attr", json_loads(attr, 0, NULL),
                 "by", by),
       line);
}
static void w_paused(tern_client_t *c, void *d) { w_simple(d, "paused", NULL, NULL); }
static void w_resumed(tern_client_t *c, void *d) { w_simple(d, "resumed", NULL, NULL); }
static void w_offline(tern_client_t *c, int err, void *d) {
  char line[128];
  snprintf(line, sizeof line, "offline %d", TERN_ERR_CODE(err));
  emit(d, json_pack("{s:s,s:i}", "event", "offline", "code", TERN_ERR_CODE(err)), line);
  interrupted = 1;
}

int cmd_watch(const cli_opts_t *o, cli_args_t *a) {
  watch_t w = {.o = o};
  tern_delegate_t d = {
      .on_message = w_message,
      .on_common_message = w_message,
      .on_members_added = w_added,
      .on_members_removed = w_removed,
      .on_invited = w_invited,
      .on_kicked = w_kicked,
      .on_unread = w_unread,
      .on_message_delivered = w_delivered,
      .on_conv_updated = w_updated,
      .on_paused = w_paused,
      .on_resumed = w_resumed,
      .on_offline = w_offline,
  };
  ctx_t x;
  int rc = ctx_open(&x, o, &d, &w);
  if (rc) return rc;
  /* What the login brings (the unread counts the server sends after it) is shown but not
   * counted: --count N means N events from now on. The server writes those right after its
   * login reply; one more round trip, answered after them, makes sure they have all been
   * seen before counting starts. */
  tern_query_t *q = tern_query_new(x.c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  tern_query_set_limit(q, 1);
  tern_conv_t **res = NULL;
  size_t n = 0;
  rc = tern_sync_find(q, &res, &n);
  tern_query_free(q);
  free(res);
  if (rc < 0) {
    ctx_close(&x);
    return fail(o, "watch", rc);
  }
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  w.started = 1;
  if (o->json) print_json(json_pack("{s:s,s:s}", "event", "ready", "as", o->as));
  else {
    printf("watching as %s\n", o->as);
    fflush(stdout);
  }
  int waited = 0;
  while (!interrupted && (!a->count || w.events < a->count) && (!a->timeout || waited < a->timeout * 1000)) {
    tern_sync_wait(x.t, 100);
    waited += 100;
  }
  if (tern_client_status(x.c) == TERN_CLIENT_OPEN) tern_sync_close(x.c);
  tern_free(x.t);
  return 0;
}
