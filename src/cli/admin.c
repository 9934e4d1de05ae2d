/* admin.c — `tern admin`: the back-office tasks of a migrated LeanCloud app, run from a
 * shell against ternd's REST API with the master key.
 *
 * One table lists every command with its words, the flags it accepts and its synopsis, so
 * parsing, per-command flag checks and `--help` cannot drift apart. Every command is one
 * or two REST calls (admin_call) and prints either the server's JSON (--json) or a
 * readable summary. Exit status: 0 done, 1 the server refused or could not be reached
 * (the refusal's LeanCloud {"code","error"} on stderr), 2 bad usage.
 *
 * The server, app id and master key come from flags, then TERN_SERVER (or TERN_URL made
 * http), TERN_APP_ID and TERN_MASTER_KEY — the names ternd itself reads — then
 * ./tern-data/app.json, where ternd keeps the keys it generated. */
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "args.h"
#include "cli.h"

/* ---------------------------------------------------------------- flags */

enum { F_STR, F_INT, F_BOOL };

typedef struct {
  const char *name; /* without "--" */
  int kind;
  size_t off;
  size_t has_off; /* F_INT: where "was given" is recorded, or 0 */
  long min, max;  /* F_INT: the accepted range, said when a value is outside it */
} flag_t;

#define S(n, f)                                                                                                        \
  { n, F_STR, offsetof(admin_args_t, f), 0, 0, 0 }
#define I(n, f, lo, hi)                                                                                                \
  { n, F_INT, offsetof(admin_args_t, f), 0, lo, hi }
#define IH(n, f, lo, hi)                                                                                               \
  { n, F_INT, offsetof(admin_args_t, f), offsetof(admin_args_t, has_##f), lo, hi }
#define B(n, f)                                                                                                        \
  { n, F_BOOL, offsetof(admin_args_t, f), 0, 0, 0 }

static const flag_t FLAGS[] = {
    S("server", server),
    S("app-id", app_id),
    S("master-key", master_key),
    S("cacert", cacert),
    B("json", json),
    B("insecure", insecure),
    I("timeout", timeout, 1, 86400),
    S("name", name),
    S("members", members),
    S("attr", attr),
    S("set", set),
    S("where", where),
    S("order", order),
    S("creator", creator),
    B("unique", unique),
    B("room", room),
    B("service", service),
    B("all", all),
    IH("limit", limit, 0, 1000),
    I("skip", skip, 0, 1000000000),
    S("from", from),
    S("text", text),
    S("content", content),
    S("push-data", push_data),
    S("to", to),
    S("before", before),
    S("after", after),
    S("until", until),
    S("priority", priority),
    S("mention", mention),
    S("client", client),
    B("transient", transient),
    B("no-sync", no_sync),
    B("reversed", reversed),
    B("mention-all", mention_all),
    S("reason", reason),
    S("conv", conv),
    S("next", next),
    B("count", count),
    S("type", type),
    S("token", token),
    S("installation-id", installation_id),
    S("registration-id", registration_id),
    S("channels", channels),
    S("add-channels", add_channels),
    S("remove-channels", remove_channels),
    IH("badge", badge, 0, 1000000),
    S("out", out),
    S("mime", mime),
    S("from-app-id", from_app_id),
    S("from-master-key", from_master_key),
    S("from-dir", from_dir),
    S("state", state),
    B("rehost-files", rehost_files),
    B("dry-run", dry_run),
    B("full", full),
    I("concurrency", concurrency, 1, 1000),
    I("batch", batch, 1, 1000000000),
    IH("rate", rate, 0, 1000000000),
    IH("retries", retries, 0, 1000000000),
    IH("recheck-days", recheck_days, 0, 1000000000),
    I("retry-for", retry_for, 1, 7 * 86400),
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

static const char COMMON[] = "server app-id master-key cacert json insecure timeout";

/* ---------------------------------------------------------------- commands */

typedef struct {
  const char *group, *name; /* name NULL: a one-word command */
  admin_fn_t fn;
  int min_pos, max_pos; /* positional words after the command (-1: any number) */
  const char *flags;    /* the flags it takes besides COMMON */
  const char *synopsis;
} cmd_t;

static const cmd_t CMDS[] = {
    {"conv", "create", admin_conv_create, 0, 0, "name members unique room service attr creator",
     "conv create [--name N] [--members A,B] [--unique] [--room | --service] [--attr JSON] [--creator ID]"},
    {"conv", "get", admin_conv_get, 1, 1, "room service", "conv get CID"},
    {"conv", "list", admin_conv_list, 0, 0, "where limit skip order room service all",
     "conv list [--where JSON] [--limit N] [--skip N] [--order KEYS] [--room | --service | --all]"},
    {"conv", "update", admin_conv_update, 1, 1, "name attr set room service",
     "conv update CID [--name N] [--attr JSON (merged)] [--set JSON (raw fields)]"},
    {"conv", "delete", admin_conv_delete, 1, 1, "room service", "conv delete CID"},
    {"conv", "members", admin_conv_members, 1, 1, "room service", "conv members CID"},
    {"conv", "add", admin_conv_add, 2, -1, "room service", "conv add CID ID[,ID…]…"},
    {"conv", "remove", admin_conv_remove, 2, -1, "room service", "conv remove CID ID[,ID…]…"},
    {"conv", "mute", admin_conv_mute, 2, -1, "", "conv mute CID ID[,ID…]…   (offline push off for them)"},
    {"conv", "unmute", admin_conv_unmute, 2, -1, "", "conv unmute CID ID[,ID…]…"},
    {"msg", "send", admin_msg_send, 1, 1,
     "from text content attr transient no-sync push-data to priority mention mention-all room service",
     "msg send CID --from ID (--text T | --content RAW) [--attr JSON] [--transient] [--no-sync]\n"
     "                 [--push-data JSON] [--to A,B (service conversations)] [--priority high|normal|low]\n"
     "                 [--mention A,B] [--mention-all]"},
    {"msg", "history", admin_msg_history, 1, 1, "limit reversed before after until client room service",
     "msg history CID [--limit N] [--before MID|TS|MID/TS] [--after …] [--until …] [--reversed]\n"
     "                 [--client ID (what that subscriber sees)]"},
    {"msg", "edit", admin_msg_edit, 2, 2, "from text content attr room service",
     "msg edit CID MID --from SENDER (--text T | --content RAW)"},
    {"msg", "recall", admin_msg_recall, 2, 2, "from room service", "msg recall CID MID --from SENDER"},
    {"msg", "delete", admin_msg_delete, 2, 2, "from room service", "msg delete CID MID [--from SENDER]"},
    {"kick", NULL, admin_kick, 1, 1, "reason", "kick CLIENT [--reason R]"},
    {"online", NULL, admin_online, 1, -1, "", "online ID[,ID…]…   (at most 20)"},
    {"unread", NULL, admin_unread, 1, 1, "conv", "unread CLIENT [--conv CID]"},
    {"stats", NULL, admin_stats, 0, 0, "", "stats"},
    {"backup", NULL, admin_backup, 0, 0, "to",
     "backup --to DIR   (an online copy into DIR on the server's machine: absolute, new or empty;\n"
     "                 restore with ternd --restore=DIR; a large database may need a larger --timeout)"},
    {"broadcast", NULL, admin_broadcast, 1, 1, "from text content attr push-data",
     "broadcast CID --from ID (--text T | --content RAW) [--push-data JSON]"},
    {"subscribers", NULL, admin_subscribers, 1, 1, "limit next count",
     "subscribers CID [--limit N] [--next ID] [--count]"},
    {"push", "install", admin_push_install, 0, 0, "type token installation-id registration-id channels badge set",
     "push install --type ios|android|… (--token T | --installation-id I | --registration-id R)\n"
     "                 [--channels A,B] [--badge N] [--set JSON]"},
    {"push", "show", admin_push_show, 1, 1, "", "push show ID"},
    {"push", "update", admin_push_update, 1, 1,
     "type token installation-id registration-id channels add-channels remove-channels badge set",
     "push update ID [--channels A,B | --add-channels A,B | --remove-channels A,B] [--token T]\n"
     "                 [--badge N] [--set JSON]"},
    {"push", "delete", admin_push_delete, 1, 1, "", "push delete ID"},
    {"file", "upload", admin_file_upload, 1, 1, "name mime", "file upload PATH [--name N] [--mime TYPE]"},
    {"file", "info", admin_file_info, 1, 1, "", "file info ID"},
    {"file", "delete", admin_file_delete, 1, 1, "", "file delete ID"},
    {"file", "download", admin_file_download, 1, 1, "out", "file download ID [-o OUT]"},
    {"import", "leancloud", admin_import_leancloud, 0, 0,
     "from from-app-id from-master-key from-dir state rehost-files dry-run full concurrency batch rate retries "
     "retry-for recheck-days",
     "import leancloud (--from https://API_HOST [--from-app-id ID] --from-master-key KEY | --from-dir DIR)\n"
     "                 [--state FILE] [--rehost-files] [--rate N (source requests/s, 30)] [--concurrency N (8)]\n"
     "                 [--retries N (10)] [--retry-for SEC (600)] [--timeout SEC (per attempt, 60)]\n"
     "                 [--recheck-days N (7)] [--full] [--batch N (5000)] [--dry-run]\n"
     "                 (into the tern of --server; the app id is the same on both sides, --from-app-id\n"
     "                 defaults to --app-id)"},
    {"export", "leancloud", admin_export_leancloud, 0, 0,
     "from from-app-id from-master-key to rehost-files rate concurrency retries retry-for",
     "export leancloud --from https://API_HOST [--from-app-id ID] --from-master-key KEY --to DIR\n"
     "                 [--rehost-files (save the files' bytes too)] [--rate N] [--concurrency N] [--retries N]\n"
     "                 [--retry-for SEC] [--timeout SEC]"},
};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static void usage(FILE *f, const char *group) {
  fputs("usage: tern admin <command> [options]   — ternd's REST API with the master key\n\ncommands:\n", f);
  for (size_t i = 0; i < NCMDS; i++)
    if (!group || strcmp(group, CMDS[i].group) == 0) fprintf(f, "  %s\n", CMDS[i].synopsis);
  fputs("\noptions:\n"
        "  --server URL       REST API (env TERN_SERVER; else TERN_URL as http; default http://127.0.0.1:8080)\n"
        "  --app-id ID        app id (env TERN_APP_ID; default: ./tern-data/app.json)\n"
        "  --master-key KEY   master key (env TERN_MASTER_KEY; default: ./tern-data/app.json)\n"
        "  --json             print the server's JSON answer instead of a summary\n"
        "  --room, --service  the conversation is a chat room / service conversation (default:\n"
        "                     asked of the server; for create and list: which kind)\n"
        "  --timeout SEC      connect and read timeout (default 30)\n"
        "  --cacert FILE      https: trust this CA certificate; --insecure: do not check\n"
        "\nexit status: 0 done, 1 refused by the server or unreachable (error JSON on stderr), 2 bad usage\n"
        "import/export leancloud: 1 also when a record was skipped or the run stopped (the summary says which;\n"
        "  with --state, running the same command again resumes); docs/migrate-import.md\n",
        f);
}

/* ---------------------------------------------------------------- shared helpers */

int admin_usage_error(admin_t *ad, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tern admin: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  for (size_t i = 0; ad && ad->cmd && i < NCMDS; i++) {
    char words[64];
    snprintf(words, sizeof words, "%s%s%s", CMDS[i].group, CMDS[i].name ? " " : "", CMDS[i].name ? CMDS[i].name : "");
    if (strcmp(words, ad->cmd) == 0) fprintf(stderr, "usage: tern admin %s\n", CMDS[i].synopsis);
  }
  return 2;
}

int admin_print_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
  printf("%s\n", s ? s : "null");
  free(s);
  json_decref(j);
  return 0;
}

void admin_print_fields(json_t *obj) {
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    int strings = json_is_array(v);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) strings &= json_is_string(x);
    if (json_is_string(v)) {
      printf("%s: %s\n", k, json_string_value(v));
    } else if (strings) {
      printf("%s: ", k);
      json_array_foreach(v, i, x) printf("%s%s", i ? ", " : "", json_string_value(x));
      printf("\n");
    } else {
      char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      printf("%s: %s\n", k, s ? s : "?");
      free(s);
    }
  }
}

int admin_put_object(admin_t *ad, json_t *obj, const char *key, const char *flag, const char *text) {
  if (!text) return 0;
  json_t *v = admin_json_arg(ad, flag, text, JSON_OBJECT);
  if (!v) return 2;
  json_object_set_new(obj, key, v);
  return 0;
}

json_t *admin_json_arg(admin_t *ad, const char *flag, const char *text, json_type type) {
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) {
    admin_usage_error(ad, "--%s is not JSON: %s", flag, e.text);
    return NULL;
  }
  if (json_typeof(j) != type) {
    json_decref(j);
    admin_usage_error(ad, "--%s must be a JSON %s", flag, type == JSON_OBJECT ? "object" : "value");
    return NULL;
  }
  return j;
}

json_t *admin_id_list(char *const *words, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) {
    const char *p = words[i];
    while (*p) {
      size_t k = strcspn(p, ", ");
      if (k) json_array_append_new(a, json_stringn(p, k));
      p += k;
      p += strspn(p, ", ");
    }
  }
  return a;
}

void admin_time(int64_t ms, char out[32]) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&secs, &tm);
  strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The LeanCloud error of a refused call on stderr, as one JSON line: the server's own
 * {"code","error"} when it sent one, else one made from the status. */
static void print_refusal(const ahttp_resp_t *r) {
  json_t *j = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
  json_t *out;
  if (json_is_integer(json_object_get(j, "code")) && json_is_string(json_object_get(j, "error"))) {
    out = json_pack("{s:O, s:O}", "code", json_object_get(j, "code"), "error", json_object_get(j, "error"));
  } else {
    char msg[200];
    int n = (int)(r->body.len < 120 ? r->body.len : 120);
    snprintf(msg, sizeof msg, "HTTP %d%s%.*s", r->status, n ? ": " : "", n, r->body.data ? (char *)r->body.data : "");
    out = json_pack("{s:i, s:s}", "code", r->status, "error", msg);
    if (!out) out = json_pack("{s:i, s:s}", "code", r->status, "error", "HTTP error"); /* not UTF-8 */
  }
  char *s = json_dumps(out, JSON_COMPACT);
  fprintf(stderr, "%s\n", s);
  free(s);
  json_decref(out);
  json_decref(j);
}

int admin_call_raw(admin_t *ad, const char *method, const char *path, const char *extra_headers, const void *body,
                   size_t len, FILE *sink, ahttp_resp_t *resp) {
  buf_t h = BUF_INIT;
  buf_append_str(&h, ad->headers);
  if (extra_headers) buf_append_str(&h, extra_headers);
  char err[512];
  int rc = ahttp_request(&ad->srv, method, path, buf_cstr(&h), body, len, sink, resp, err, sizeof err);
  buf_free(&h);
  if (rc < 0) {
    fprintf(stderr, "tern admin: %s\n", err);
    return 1;
  }
  ad->status = resp->status;
  if (resp->status < 200 || resp->status > 299) {
    print_refusal(resp);
    ahttp_resp_free(resp);
    return 1;
  }
  return 0;
}

int admin_show(admin_t *ad, const char *path) {
  json_t *res;
  int rc = admin_call(ad, "GET", path, NULL, &res);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  admin_print_fields(res);
  json_decref(res);
  return 0;
}

int admin_act(admin_t *ad, const char *method, const char *path, json_t *body, const char *done, ...) {
  json_t *res;
  int rc = admin_call(ad, method, path, body, &res);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  json_decref(res);
  va_list ap;
  va_start(ap, done);
  vprintf(done, ap);
  va_end(ap);
  putchar('\n');
  return 0;
}

int admin_call(admin_t *ad, const char *method, const char *path, json_t *body, json_t **out) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  ahttp_resp_t r;
  int rc = admin_call_raw(ad, method, path, text ? "Content-Type: application/json\r\n" : NULL, text,
                          text ? strlen(text) : 0, NULL, &r);
  free(text);
  if (rc) return rc;
  if (out) {
    *out = json_loadb((const char *)r.body.data, r.body.len, JSON_DECODE_ANY, NULL);
    if (!*out) {
      fprintf(stderr, "tern admin: the server answered %d with something that is not JSON\n", r.status);
      rc = 1;
    }
  }
  ahttp_resp_free(&r);
  return rc;
}

const char *admin_conv_kind(admin_t *ad, const char *cid) {
  if (ad->a.room) return "chatrooms";
  if (ad->a.service) return "service-conversations";
  /* one lookup across every kind; a cid it does not know (a temporary conversation, or
   * none at all) is left to the normal path, whose answer then says what is wrong */
  json_t *where = json_pack("{s:s}", "objectId", cid);
  char *w = json_dumps(where, JSON_COMPACT);
  json_decref(where);
  buf_t p = BUF_INIT;
  buf_append_str(&p, "/1.2/rtm/all-conversations?limit=1&where=");
  buf_append_pct(&p, w);
  free(w);
  json_t *res = NULL;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return NULL;
  json_t *c = json_array_get(json_object_get(res, "results"), 0);
  const char *kind = json_is_true(json_object_get(c, "tr"))    ? "chatrooms"
                     : json_is_true(json_object_get(c, "sys")) ? "service-conversations"
                                                               : "conversations";
  json_decref(res);
  return kind;
}

char *admin_conv_path(admin_t *ad, const char *cid, const char *rest) {
  const char *kind = admin_conv_kind(ad, cid);
  if (!kind) return NULL;
  buf_t p = BUF_INIT;
  buf_printf(&p, "/1.2/rtm/%s/", kind);
  buf_append_pct(&p, cid);
  buf_append_str(&p, rest ? rest : "");
  return buf_cstr(&p);
}

/* ---------------------------------------------------------------- clients and the app */

static char *client_path(const char *client, const char *rest) {
  buf_t p = BUF_INIT;
  buf_append_str(&p, "/1.2/rtm/clients/");
  buf_append_pct(&p, client);
  buf_append_str(&p, rest);
  return buf_cstr(&p);
}

int admin_kick(admin_t *ad) {
  const char *client = ad->a.pos[0];
  json_t *body = ad->a.reason ? json_pack("{s:s}", "reason", ad->a.reason) : json_object();
  if (!body) return admin_usage_error(ad, "--reason is not UTF-8");
  char *path = client_path(client, "/kick");
  int rc = admin_act(ad, "POST", path, body, "kicked %s", client);
  free(path);
  json_decref(body);
  return rc;
}

int admin_online(admin_t *ad) {
  json_t *ids = admin_id_list(ad->a.pos, ad->a.npos);
  if (json_array_size(ids) == 0 || json_array_size(ids) > 20) {
    json_decref(ids);
    return admin_usage_error(ad, "give 1 to 20 client ids");
  }
  json_t *body = json_pack("{s:O}", "client_ids", ids), *res;
  int rc = admin_call(ad, "POST", "/1.2/rtm/clients/check-online", body, &res);
  json_decref(body);
  if (rc == 0 && ad->a.json) {
    admin_print_json(res);
  } else if (rc == 0) {
    json_t *online = json_object_get(res, "results"), *id, *o;
    size_t i, k;
    json_array_foreach(ids, i, id) {
      int yes = 0;
      json_array_foreach(online, k, o) yes |= json_equal(o, id);
      printf("%s\t%s\n", json_string_value(id), yes ? "online" : "offline");
    }
    json_decref(res);
  }
  json_decref(ids);
  return rc;
}

int admin_unread(admin_t *ad) {
  char *path = client_path(ad->a.pos[0], "/unread-count");
  buf_t p = BUF_INIT;
  buf_append_str(&p, path);
  free(path);
  if (ad->a.conv) {
    buf_append_str(&p, "?conv_id=");
    buf_append_pct(&p, ad->a.conv);
  }
  json_t *res;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  printf("%lld\n", (long long)json_integer_value(json_object_get(res, "count")));
  json_decref(res);
  return 0;
}

int admin_stats(admin_t *ad) {
  json_t *res;
  int rc = admin_call(ad, "GET", "/1.2/rtm/stats", NULL, &res);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  json_t *r = json_object_get(res, "result");
  printf("online now:\t%lld\nclients today:\t%lld\n",
         (long long)json_integer_value(json_object_get(r, "online_user_count")),
         (long long)json_integer_value(json_object_get(r, "user_count_today")));
  json_decref(res);
  return 0;
}

/* POST /1.2/tern/backup: the server copies its database (SQLite's online backup API),
 * app.json and the uploaded files into --to, on its own machine, while clients go on. */
int admin_backup(admin_t *ad) {
  if (!ad->a.to || ad->a.to[0] != '/')
    return admin_usage_error(ad, "backup needs --to DIR, an absolute directory on the server's machine");
  json_t *res, *body = json_pack("{s:s}", "to", ad->a.to);
  int rc = admin_call(ad, "POST", "/1.2/tern/backup", body, &res);
  json_decref(body);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  printf("backed up to %s: database %lld bytes, %lld files (%lld bytes) in %lld ms\n", ad->a.to,
         (long long)json_integer_value(json_object_get(res, "database_bytes")),
         (long long)json_integer_value(json_object_get(res, "files")),
         (long long)json_integer_value(json_object_get(res, "file_bytes")),
         (long long)json_integer_value(json_object_get(res, "duration_ms")));
  json_decref(res);
  return 0;
}

/* ---------------------------------------------------------------- the command line */

static int parse(admin_t *ad, int argc, char **argv, const cmd_t **cmd, int *help) {
  admin_args_t *a = &ad->a;
  char *words[2] = {NULL, NULL};
  int nwords = 0;
  char given[NFLAGS] = {0};
  a->pos = xcalloc((size_t)argc + 1, sizeof *a->pos);
  args_t it = ARGS_INIT(argc, argv);
  for (arg_t g; args_next(&it, &g);) {
    char *s = g.s;
    if (g.rest) { /* after "--": positional (ids that start with "-") */
      a->pos[a->npos++] = s;
      continue;
    }
    if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
      *help = 1;
      continue;
    }
    if (!g.opt && strcmp(s, "-o") != 0) {
      if (*cmd || nwords == 2) { /* past the command words */
        a->pos[a->npos++] = s;
        continue;
      }
      words[nwords++] = s;
      int group = 0;
      for (size_t k = 0; k < NCMDS; k++) {
        if (strcmp(CMDS[k].group, words[0]) != 0) continue;
        group = 1;
        if (nwords == 1 && !CMDS[k].name) *cmd = &CMDS[k];
        if (nwords == 2 && CMDS[k].name && strcmp(CMDS[k].name, words[1]) == 0) *cmd = &CMDS[k];
      }
      if (!group) return admin_usage_error(ad, "unknown command %s (tern admin --help)", s);
      ad->group = words[0];
      if (nwords == 2 && !*cmd)
        return admin_usage_error(ad, "unknown command %s %s (tern admin %s --help)", words[0], words[1], words[0]);
      continue;
    }
    if (!g.opt) g = (arg_t){.s = s, .opt = 1, .name = "out", .nlen = 3}; /* -o */
    const flag_t *f = args_find(FLAGS, NFLAGS, sizeof *FLAGS, g.name, g.nlen);
    if (!f) return admin_usage_error(ad, "unknown option %s", s);
    given[f - FLAGS] = 1;
    char *field = (char *)a + f->off;
    if (f->kind == F_BOOL) {
      if (g.eq) return admin_usage_error(ad, "--%s takes no value", f->name);
      *(int *)field = 1;
      continue;
    }
    const char *v = args_value(&it, &g);
    if (!v) return admin_usage_error(ad, "--%s needs a value", f->name);
    if (f->kind == F_STR) {
      *(const char **)field = v;
    } else {
      char *end;
      long n = strtol(v, &end, 10);
      if (!*v || *end || n < f->min || n > f->max)
        return admin_usage_error(ad, "--%s needs a number from %ld to %ld, not %s", f->name, f->min, f->max, v);
      *(int *)field = (int)n;
      if (f->has_off) *(int *)((char *)a + f->has_off) = 1;
    }
  }
  if (nwords == 0) return *help ? 0 : admin_usage_error(ad, "which command? (tern admin --help)");
  if (!*cmd) return *help ? 0 : admin_usage_error(ad, "%s what? (tern admin %s --help)", words[0], words[0]);
  static char cmdname[64];
  snprintf(cmdname, sizeof cmdname, "%s%s%s", (*cmd)->group, (*cmd)->name ? " " : "", (*cmd)->name ? (*cmd)->name : "");
  ad->cmd = cmdname;
  if (*help) return 0;
  for (size_t k = 0; k < NFLAGS; k++)
    if (given[k] && !args_takes(COMMON, FLAGS[k].name) && !args_takes((*cmd)->flags, FLAGS[k].name))
      return admin_usage_error(ad, "%s does not take --%s", cmdname, FLAGS[k].name);
  if (a->npos < (*cmd)->min_pos || ((*cmd)->max_pos >= 0 && a->npos > (*cmd)->max_pos))
    return admin_usage_error(ad, "%s: wrong number of arguments", cmdname);
  if (a->room && a->service) return admin_usage_error(ad, "--room and --service exclude each other");
  return 0;
}

/* The server, app id and master key from flags, environment or app.json. */
static int resolve(admin_t *ad) {
  admin_args_t *a = &ad->a;
  char from_url[512] = "";
  const char *server = a->server ? a->server : getenv("TERN_SERVER");
  if (!server || !*server) {
    /* what the other tern commands use, made http; its path is the WebSocket's, not the API's */
    const char *ws = getenv("TERN_URL");
    int tls = ws && strncmp(ws, "wss://", 6) == 0;
    if (ws && (tls || strncmp(ws, "ws://", 5) == 0)) {
      const char *auth = ws + (tls ? 6 : 5);
      snprintf(from_url, sizeof from_url, "%s://%.*s", tls ? "https" : "http", (int)strcspn(auth, "/?#"), auth);
    }
    server = *from_url ? from_url : "http://127.0.0.1:8080";
  }
  char err[300];
  if (ahttp_server_parse(&ad->srv, server, err, sizeof err) < 0) return admin_usage_error(ad, "%s", err);
  ad->srv.insecure = a->insecure;
  ad->srv.cacert = a->cacert;
  if (a->timeout) ad->srv.timeout_ms = a->timeout * 1000;

  char *saved_id = cli_saved_key("app_id"), *saved_master = NULL;
  const char *app_id = a->app_id ? a->app_id : getenv("TERN_APP_ID");
  if (!app_id || !*app_id) app_id = saved_id;
  const char *master = a->master_key ? a->master_key : getenv("TERN_MASTER_KEY");
  /* app.json's master key only goes with app.json's app id: never mix two apps */
  if ((!master || !*master) && app_id && saved_id && strcmp(app_id, saved_id) == 0)
    master = saved_master = cli_saved_key("master_key");
  int rc = 0;
  if (!app_id || !*app_id) rc = admin_usage_error(NULL, "no app id (--app-id, TERN_APP_ID, or ./tern-data/app.json)");
  else if (!master || !*master)
    rc = admin_usage_error(NULL, "no master key (--master-key, TERN_MASTER_KEY, or ./tern-data/app.json)");
  else if (strpbrk(app_id, "\r\n") || strpbrk(master, "\r\n"))
    rc = admin_usage_error(NULL, "the app id and master key are single lines");
  if (rc == 0) {
    buf_t h = BUF_INIT;
    buf_printf(&h, "X-LC-Id: %s\r\nX-LC-Key: %s,master\r\n", app_id, master);
    ad->headers = buf_cstr(&h);
    ad->server_url = xstrdup(server);
    ad->app_id = xstrdup(app_id);
  }
  free(saved_id);
  free(saved_master);
  return rc;
}

int admin_main(int argc, char **argv) {
  admin_t ad = {0};
  const cmd_t *cmd = NULL;
  int help = 0;
  int rc = parse(&ad, argc, argv, &cmd, &help);
  if (rc == 0 && help) {
    usage(stdout, ad.group);
  } else if (rc == 0 && cmd) { /* parse gives a command whenever it returns 0 without --help */
    /* an export needs no tern: only the source's keys */
    rc = cmd->fn == admin_export_leancloud ? 0 : resolve(&ad);
    if (rc == 0) rc = cmd->fn(&ad);
  }
  free(ad.a.pos);
  free(ad.headers);
  free(ad.server_url);
  free(ad.app_id);
  ahttp_server_free(&ad.srv);
  return rc;
}
