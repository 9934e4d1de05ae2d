/* main.c — `tern`, the terminal client of tern, built only on libtern's public API.
 *
 *   tern chat --as Tom                      interactive chat (see chat.c)
 *   tern send --as Tom --to Jerry hello     scriptable commands, one request each, using
 *   tern history --as Tom --conv CID        the blocking layer <tern/sync.h>; --json prints
 *   tern conv create|add|remove|query …     machine-readable output (one JSON document,
 *   tern watch --as Jerry [--count N]       or one JSON object per line for watch)
 *   tern admin conv|msg|kick|push|file …    the REST API with the master key (admin.c)
 *
 * The server and app come from --url/--app-id, or TERN_URL/TERN_APP_ID, or — so that
 * `make run` followed by `tern chat` just works — ws://127.0.0.1:8080/ and the app id that
 * ternd saved in ./tern-data/app.json (or $TERN_DATA_DIR/app.json). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "cli.h"

static const char *USAGE =
    "usage: tern <command> [options]\n"
    "\n"
    "commands:\n"
    "  chat                          interactive chat (/help inside)\n"
    "  send (--conv CID | --to ID) TEXT...\n"
    "                                send a text message (--transient, --receipt,\n"
    "                                --type N, --attr JSON, --file PATH, --image URL)\n"
    "  history --conv CID            messages, oldest first (--limit N, --before MID --before-ts MS)\n"
    "  conv create [--name N] [--unique] [--transient] [--attr JSON] MEMBER...\n"
    "  conv add|remove --conv CID ID...\n"
    "  conv query [--where JSON] [--limit N] [--order ORDER]\n"
    "  conv count --conv CID\n"
    "  watch                         print incoming events (--count N, --timeout SEC)\n"
    "  admin ...                     back office over the REST API with the master key\n"
    "                                (tern admin --help)\n"
    "\n"
    "options:\n"
    "  --as ID         client id (required)\n"
    "  --tag TAG       login tag (single sign-on)\n"
    "  --url URL       server WebSocket URL (env TERN_URL; default ws://127.0.0.1:8080/)\n"
    "  --app-id ID     app id (env TERN_APP_ID; default: ./tern-data/app.json)\n"
    "  --app-key KEY   app key, for file uploads (env TERN_APP_KEY; default: as the app id)\n"
    "  --cache-dir DIR local cache directory (default: none, in memory)\n"
    "  --json          JSON output\n"
    "  --verbose       libtern log on stderr\n";

/* ---- shared helpers ---- */

char *cli_saved_key(const char *name) {
  const char *dir = getenv("TERN_DATA_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/app.json", dir && *dir ? dir : "tern-data");
  json_t *j = json_load_file(path, 0, NULL);
  const char *v = json_string_value(json_object_get(j, name));
  char *out = v ? strdup(v) : NULL;
  json_decref(j);
  return out;
}

static void log_stderr(void *data, int level, const char *line) { fprintf(stderr, "libtern: %s\n", line); }

void cli_tern_options(const cli_opts_t *o, tern_options_t *to) {
  tern_options_init(to);
  to->url = o->url;
  to->app_id = o->app_id;
  to->app_key = o->app_key;
  to->cache_dir = o->cache_dir;
  to->command_timeout_ms = 10000;
  if (o->verbose) {
    to->log_cb = log_stderr;
    to->log_level = o->verbose > 1 ? TERN_LOG_DEBUG : TERN_LOG_INFO;
  }
}

json_t *cli_msg_json(const tern_msg_t *m) {
  json_t *j = json_object();
  json_object_set_new(j, "id", tern_msg_id(m) ? json_string(tern_msg_id(m)) : json_null());
  json_object_set_new(j, "conv", tern_msg_conv_id(m) ? json_string(tern_msg_conv_id(m)) : json_null());
  json_object_set_new(j, "from", tern_msg_from(m) ? json_string(tern_msg_from(m)) : json_null());
  json_object_set_new(j, "timestamp", json_integer(tern_msg_timestamp(m)));
  json_object_set_new(j, "type", json_integer(tern_msg_type(m)));
  if (tern_msg_text(m)) json_object_set_new(j, "text", json_string(tern_msg_text(m)));
  if (tern_msg_attributes(m)) json_object_set_new(j, "attributes", json_loads(tern_msg_attributes(m), 0, NULL));
  if (tern_msg_file_url(m)) {
    json_t *f = json_pack("{s:s}", "url", tern_msg_file_url(m));
    if (tern_msg_file_obj_id(m)) json_object_set_new(f, "objId", json_string(tern_msg_file_obj_id(m)));
    if (tern_msg_file_name(m)) json_object_set_new(f, "name", json_string(tern_msg_file_name(m)));
    if (tern_msg_file_size(m) >= 0) json_object_set_new(f, "size", json_integer(tern_msg_file_size(m)));
    json_object_set_new(j, "file", f);
  }
  if (tern_msg_type(m) == TERN_MSG_LOCATION)
    json_object_set_new(j, "location",
                        json_pack("{s:f,s:f}", "latitude", tern_msg_latitude(m), "longitude", tern_msg_longitude(m)));
  if (tern_msg_type(m) == TERN_MSG_COMMON) json_object_set_new(j, "content", json_string(tern_msg_content(m)));
  if (tern_msg_is_transient(m)) json_object_set_new(j, "transient", json_true());
  return j;
}

json_t *cli_conv_json(const tern_conv_t *c) {
  json_t *j = json_object();
  json_object_set_new(j, "id", json_string(tern_conv_id(c)));
  json_object_set_new(j, "name", tern_conv_name(c) ? json_string(tern_conv_name(c)) : json_null());
  if (tern_conv_creator(c)) json_object_set_new(j, "creator", json_string(tern_conv_creator(c)));
  size_t n;
  const char *const *m = tern_conv_members(c, &n);
  json_t *a = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(a, json_string(m[i]));
  json_object_set_new(j, "members", a);
  json_object_set_new(j, "attributes", json_loads(tern_conv_attributes(c), 0, NULL));
  json_object_set_new(j, "transient", json_boolean(tern_conv_is_transient(c)));
  json_object_set_new(j, "unread", json_integer(tern_conv_unread_count(c)));
  if (tern_conv_last_message(c)) json_object_set_new(j, "lastMessage", cli_msg_json(tern_conv_last_message(c)));
  return j;
}

char *cli_msg_summary(const tern_msg_t *m) {
  char buf[4096];
  const char *text = tern_msg_text(m);
  switch (tern_msg_type(m)) {
  case TERN_MSG_COMMON: snprintf(buf, sizeof buf, "%s", tern_msg_content(m)); break;
  case TERN_MSG_TEXT: snprintf(buf, sizeof buf, "%s", text ? text : ""); break;
  case TERN_MSG_IMAGE:
  case TERN_MSG_AUDIO:
  case TERN_MSG_VIDEO:
  case TERN_MSG_FILE: {
    static const char *kinds[] = {"", "", "image", "audio", "video", "", "file"};
    snprintf(buf, sizeof buf, "[%s %s]%s%s", kinds[-tern_msg_type(m)],
             tern_msg_file_url(m) ? tern_msg_file_url(m) : "?", text ? " " : "", text ? text : "");
    break;
  }
  case TERN_MSG_LOCATION:
    snprintf(buf, sizeof buf, "[location %.6f,%.6f]%s%s", tern_msg_latitude(m), tern_msg_longitude(m), text ? " " : "",
             text ? text : "");
    break;
  default: snprintf(buf, sizeof buf, "[type %d]%s%s", tern_msg_type(m), text ? " " : "", text ? text : ""); break;
  }
  return strdup(buf);
}

static void print_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  printf("%s\n", s ? s : "null");
  fflush(stdout);
  free(s);
  json_decref(j);
}

static int fail(const cli_opts_t *o, const char *what, int rc) {
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
  if (!x->t) return fail(o, "bad --url or --app-id", TERN_EINVAL);
  tern_register_message_type(x->t, CLI_TYPING_TYPE);
  x->c = tern_client_get(x->t, o->as, o->tag);
  if (!x->c) {
    tern_free(x->t);
    return fail(o, "bad client id", TERN_EINVAL);
  }
  if (d) tern_client_set_delegate(x->c, d, ddata);
  int rc = tern_sync_open(x->c, NULL);
  if (rc < 0) {
    tern_free(x->t);
    return fail(o, "login", rc);
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
  if (cid)
    rc = tern_sync_get_conv(x->c, cid, out);
  else if (to)
    rc = tern_sync_create_conv(x->c, NULL, &to, 1, NULL, TERN_CONV_UNIQUE, out);
  else
    return fail(x->o, "--conv or --to is required", TERN_EINVAL);
  return rc < 0 ? fail(x->o, "conversation", rc) : 0;
}

/* ---- commands ---- */

typedef struct {
  const char *conv, *to, *attr, *file, *image, *name, *where, *order, *before;
  int64_t before_ts;
  int limit, count, timeout, transient, receipt, unique, type;
  char **pos;
  int npos;
} args_t;

static char *join_words(char **w, int n) {
  size_t len = 1;
  for (int i = 0; i < n; i++)
    len += strlen(w[i]) + 1;
  char *s = calloc(1, len);
  for (int i = 0; i < n; i++) {
    if (i) strcat(s, " ");
    strcat(s, w[i]);
  }
  return s;
}

static int cmd_send(const cli_opts_t *o, args_t *a) {
  ctx_t x;
  if (ctx_open(&x, o, NULL, NULL)) return 1;
  tern_conv_t *conv;
  if (find_conv(&x, a->conv, a->to, &conv)) {
    ctx_close(&x);
    return 1;
  }
  char *text = join_words(a->pos, a->npos);
  tern_msg_t *m;
  if (a->file)
    m = tern_msg_new_file_path(a->type ? a->type : TERN_MSG_FILE, *text ? text : NULL, a->file, a->attr);
  else if (a->image)
    m = tern_msg_new_file_url(TERN_MSG_IMAGE, *text ? text : NULL, a->image, a->attr);
  else if (a->type)
    m = tern_msg_new_typed(a->type, text, a->attr);
  else
    m = tern_msg_new_text(text, a->attr);
  free(text);
  if (!m) {
    ctx_close(&x);
    return fail(o, "message", TERN_EINVAL);
  }
  tern_msg_t *sent = NULL;
  unsigned opts = (a->transient ? TERN_SEND_TRANSIENT : 0) | (a->receipt ? TERN_SEND_RECEIPT : 0);
  int rc = tern_sync_send(conv, m, opts, &sent);
  tern_msg_free(m);
  int ret = 0;
  if (rc < 0)
    ret = fail(o, "send", rc);
  else if (o->json)
    print_json(cli_msg_json(sent));
  else
    printf("sent %s to %s\n", tern_msg_id(sent), tern_conv_id(conv));
  tern_msg_free(sent);
  ctx_close(&x);
  return ret;
}

static int cmd_history(const cli_opts_t *o, args_t *a) {
  ctx_t x;
  if (ctx_open(&x, o, NULL, NULL)) return 1;
  tern_conv_t *conv;
  if (find_conv(&x, a->conv, a->to, &conv)) {
    ctx_close(&x);
    return 1;
  }
  tern_msg_t **msgs;
  size_t n;
  int rc = tern_sync_history(conv, a->before, a->before_ts, a->limit ? a->limit : 20, &msgs, &n, NULL);
  if (rc < 0) {
    ctx_close(&x);
    return fail(o, "history", rc);
  }
  if (o->json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append_new(arr, cli_msg_json(msgs[i]));
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
  for (size_t i = 0; i < n; i++)
    printf("%s%s", i ? ", " : "", m[i]);
  printf("]\n");
}

static int cmd_conv(const cli_opts_t *o, args_t *a) {
  if (a->npos < 1) {
    fputs(USAGE, stderr);
    return 2;
  }
  const char *sub = a->pos[0];
  ctx_t x;
  if (ctx_open(&x, o, NULL, NULL)) return 1;
  int ret = 0, rc;
  tern_conv_t *conv = NULL;
  if (strcmp(sub, "create") == 0) {
    unsigned opts = (a->unique ? TERN_CONV_UNIQUE : 0) | (a->transient ? TERN_CONV_TRANSIENT : 0);
    rc = tern_sync_create_conv(x.c, a->name, (const char *const *)a->pos + 1, (size_t)(a->npos - 1), a->attr, opts,
                               &conv);
    if (rc < 0)
      ret = fail(o, "create", rc);
    else
      print_conv(o, conv);
  } else if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0 || strcmp(sub, "count") == 0) {
    if (find_conv(&x, a->conv, NULL, &conv)) {
      ctx_close(&x);
      return 1;
    }
    if (strcmp(sub, "count") == 0) {
      int count = 0;
      rc = tern_sync_count_members(conv, &count);
      if (rc < 0)
        ret = fail(o, "count", rc);
      else if (o->json)
        print_json(json_pack("{s:s,s:i}", "id", tern_conv_id(conv), "count", count));
      else
        printf("%d\n", count);
    } else {
      const char *const *ids = (const char *const *)a->pos + 1;
      size_t n = (size_t)(a->npos - 1);
      rc = sub[0] == 'a' ? tern_sync_add_members(conv, ids, n) : tern_sync_remove_members(conv, ids, n);
      if (rc < 0)
        ret = fail(o, sub, rc);
      else
        print_conv(o, conv);
    }
  } else if (strcmp(sub, "query") == 0) {
    tern_query_t *q = tern_query_new(x.c);
    tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
    if (a->limit) tern_query_set_limit(q, a->limit);
    if (a->order) tern_query_set_order(q, a->order);
    rc = 0;
    if (a->where) {
      json_t *w = json_loads(a->where, 0, NULL);
      const char *k;
      json_t *v;
      if (!json_is_object(w)) rc = TERN_EINVAL;
      json_object_foreach(w, k, v) {
        char *vs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (json_is_object(v)) { /* {"$gt": 5} … pass operator objects through */
          const char *op;
          json_t *ov;
          json_object_foreach(v, op, ov) {
            static const char *names[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"};
            char *ovs = json_dumps(ov, JSON_COMPACT | JSON_ENCODE_ANY);
            int found = 0;
            for (int i = 0; i < 6; i++)
              if (strcmp(op, names[i]) == 0) {
                tern_query_where(q, k, (tern_cmp_t)i, ovs);
                found = 1;
              }
            if (!found && strcmp(op, "$regex") == 0)
              tern_query_matches_regex(q, k, json_string_value(ov), json_string_value(json_object_get(v, "$options")));
            else if (!found && strcmp(op, "$all") == 0 && json_is_array(ov)) {
              const char *vals[64];
              size_t nv = 0;
              for (size_t i = 0; i < json_array_size(ov) && nv < 64; i++)
                if (json_is_string(json_array_get(ov, i))) vals[nv++] = json_string_value(json_array_get(ov, i));
              tern_query_contains_all(q, k, vals, nv);
            } else if (!found && strcmp(op, "$options") != 0)
              rc = TERN_EINVAL;
            free(ovs);
          }
        } else {
          tern_query_where(q, k, TERN_EQ, vs);
        }
        free(vs);
      }
      json_decref(w);
    }
    tern_conv_t **res = NULL;
    size_t n = 0;
    if (rc == 0) rc = tern_sync_find(q, &res, &n);
    tern_query_free(q);
    if (rc < 0)
      ret = fail(o, "query", rc);
    else if (o->json) {
      json_t *arr = json_array();
      for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cli_conv_json(res[i]));
      print_json(arr);
    } else {
      for (size_t i = 0; i < n; i++)
        print_conv(o, res[i]);
    }
    free(res);
  } else {
    fprintf(stderr, "tern: unknown conv command %s\n", sub);
    ret = 2;
  }
  ctx_close(&x);
  return ret;
}

/* ---- watch ---- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) { interrupted = 1; }

typedef struct {
  const cli_opts_t *o;
  int events;
} watch_t;

static void emit(watch_t *w, json_t *j, const char *text) {
  w->events++;
  if (w->o->json)
    print_json(j);
  else {
    printf("%s\n", text);
    fflush(stdout);
    json_decref(j);
  }
}

static void w_message(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  if (tern_msg_type(m) == CLI_TYPING_TYPE) {
    char line[256];
    snprintf(line, sizeof line, "%s is typing in %s", tern_msg_from(m), tern_conv_id(conv));
    emit(data, json_pack("{s:s,s:s,s:s}", "event", "typing", "conv", tern_conv_id(conv), "from", tern_msg_from(m)),
         line);
    return;
  }
  json_t *j = json_pack("{s:s,s:o}", "event", "message", "message", cli_msg_json(m));
  char *s = cli_msg_summary(m);
  char line[4200];
  snprintf(line, sizeof line, "[%s] %s: %s", tern_conv_name(conv) ? tern_conv_name(conv) : tern_conv_id(conv),
           tern_msg_from(m), s);
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

static int cmd_watch(const cli_opts_t *o, args_t *a) {
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
  if (ctx_open(&x, o, &d, &w)) return 1;
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  if (o->json)
    print_json(json_pack("{s:s,s:s}", "event", "ready", "as", o->as));
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

/* ---- argument parsing ---- */

int main(int argc, char **argv) {
  /* admin speaks HTTP with the master key, not IM as a client: its own options */
  if (argc > 1 && strcmp(argv[1], "admin") == 0) return admin_main(argc - 1, argv + 1);
  cli_opts_t o = {0};
  args_t a = {0};
  a.pos = calloc((size_t)argc + 1, sizeof *a.pos);
  o.url = getenv("TERN_URL");
  o.app_id = getenv("TERN_APP_ID");
  o.app_key = getenv("TERN_APP_KEY");
  const char *cmd = NULL;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
#define VAL() (i + 1 < argc ? argv[++i] : (fprintf(stderr, "tern: %s needs a value\n", s), exit(2), ""))
    if (strcmp(s, "--as") == 0)
      o.as = VAL();
    else if (strcmp(s, "--tag") == 0)
      o.tag = VAL();
    else if (strcmp(s, "--url") == 0)
      o.url = VAL();
    else if (strcmp(s, "--app-id") == 0)
      o.app_id = VAL();
    else if (strcmp(s, "--app-key") == 0)
      o.app_key = VAL();
    else if (strcmp(s, "--cache-dir") == 0)
      o.cache_dir = VAL();
    else if (strcmp(s, "--json") == 0)
      o.json = 1;
    else if (strcmp(s, "--verbose") == 0 || strcmp(s, "-v") == 0)
      o.verbose++;
    else if (strcmp(s, "--conv") == 0)
      a.conv = VAL();
    else if (strcmp(s, "--to") == 0)
      a.to = VAL();
    else if (strcmp(s, "--attr") == 0)
      a.attr = VAL();
    else if (strcmp(s, "--file") == 0)
      a.file = VAL();
    else if (strcmp(s, "--image") == 0)
      a.image = VAL();
    else if (strcmp(s, "--name") == 0)
      a.name = VAL();
    else if (strcmp(s, "--where") == 0)
      a.where = VAL();
    else if (strcmp(s, "--order") == 0)
      a.order = VAL();
    else if (strcmp(s, "--before") == 0)
      a.before = VAL();
    else if (strcmp(s, "--before-ts") == 0)
      a.before_ts = strtoll(VAL(), NULL, 10);
    else if (strcmp(s, "--limit") == 0)
      a.limit = atoi(VAL());
    else if (strcmp(s, "--count") == 0)
      a.count = atoi(VAL());
    else if (strcmp(s, "--timeout") == 0)
      a.timeout = atoi(VAL());
    else if (strcmp(s, "--type") == 0)
      a.type = atoi(VAL());
    else if (strcmp(s, "--transient") == 0)
      a.transient = 1;
    else if (strcmp(s, "--receipt") == 0)
      a.receipt = 1;
    else if (strcmp(s, "--unique") == 0)
      a.unique = 1;
    else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0 || strcmp(s, "help") == 0) {
      fputs(USAGE, stdout);
      free(a.pos);
      return 0;
    } else if (strncmp(s, "--", 2) == 0 && s[2]) {
      fprintf(stderr, "tern: unknown option %s\n", s);
      free(a.pos);
      return 2;
    } else if (!cmd)
      cmd = s;
    else
      a.pos[a.npos++] = argv[i];
#undef VAL
  }
  if (!cmd) {
    fputs(USAGE, stderr);
    free(a.pos);
    return 2;
  }
  char *saved = NULL, *saved_app_key = NULL;
  if (!o.url) o.url = "ws://127.0.0.1:8080/";
  if (!o.app_id) {
    o.app_id = saved = cli_saved_key("app_id");
    if (!o.app_key) o.app_key = saved_app_key = cli_saved_key("app_key"); /* file uploads need it */
  }
  int rc = 2;
  if (!o.app_id)
    fprintf(stderr, "tern: no app id (--app-id, TERN_APP_ID, or ./tern-data/app.json)\n");
  else if (!o.as)
    fprintf(stderr, "tern: --as ID is required\n");
  else if (strcmp(cmd, "chat") == 0)
    rc = chat_main(&o);
  else if (strcmp(cmd, "send") == 0)
    rc = cmd_send(&o, &a);
  else if (strcmp(cmd, "history") == 0)
    rc = cmd_history(&o, &a);
  else if (strcmp(cmd, "conv") == 0)
    rc = cmd_conv(&o, &a);
  else if (strcmp(cmd, "watch") == 0)
    rc = cmd_watch(&o, &a);
  else
    fprintf(stderr, "tern: unknown command %s\n%s", cmd, USAGE);
  free(saved);
  free(saved_app_key);
  free(a.pos);
  return rc;
}
