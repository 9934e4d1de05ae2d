/* main.c — `tern`, the terminal client of tern, built only on libtern's public API.
 *
 *   tern chat --as Tom                      interactive chat (chat.c)
 *   tern send --as Tom --to Jerry hello     scriptable commands, one request each, using
 *   tern history --as Tom --conv CID        the blocking layer <tern/sync.h> (cmds.c); --json
 *   tern conv create|add|remove|query|count prints machine-readable output (one JSON
 *   tern watch --as Jerry [--count N]       document, or one JSON object per line for watch)
 *   tern admin conv|msg|kick|push|file …    the REST API with the master key (admin.c)
 *
 * One table lists every command with the options it takes and its help, as `tern admin`
 * does, so parsing, per-command checks and `tern COMMAND --help` cannot drift apart. Every
 * value is checked before anything connects: numbers against their range, JSON arguments
 * with the parser's own message, a command's required options and words. Exit status: 0
 * done, 1 refused by the server or not reached (the message names the URL), 2 bad usage.
 *
 * The server and app come from --url/--app-id, or TERN_URL/TERN_APP_ID, or — so that
 * `make run` followed by `tern chat` just works — ws://127.0.0.1:8080/ and the app id that
 * ternd saved in ./tern-data/app.json (or $TERN_DATA_DIR/app.json). */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "args.h"
#include "cli.h"
#include "jsonlim.h"
#include "tern_version.h"

/* ---------------------------------------------------------------- options */

enum { F_STR, F_INT, F_BOOL };
enum { IN_OPTS, IN_ARGS }; /* which struct the value goes to */

typedef struct {
  const char *name; /* without "--" */
  int kind, in;
  size_t off;
  int64_t min, max; /* F_INT */
  const char *says; /* F_INT: what the number is, for the range message */
} flag_t;

#define OS(n, f)                                                                                                       \
  { n, F_STR, IN_OPTS, offsetof(cli_opts_t, f), 0, 0, NULL }
#define OB(n, f)                                                                                                       \
  { n, F_BOOL, IN_OPTS, offsetof(cli_opts_t, f), 0, 0, NULL }
#define AS(n, f)                                                                                                       \
  { n, F_STR, IN_ARGS, offsetof(cli_args_t, f), 0, 0, NULL }
#define AB(n, f)                                                                                                       \
  { n, F_BOOL, IN_ARGS, offsetof(cli_args_t, f), 0, 0, NULL }
#define AI(n, f, lo, hi, says)                                                                                         \
  { n, F_INT, IN_ARGS, offsetof(cli_args_t, f), lo, hi, says }

static const flag_t FLAGS[] = {
    OS("as", as),
    OS("tag", tag),
    OS("url", url),
    OS("app-id", app_id),
    OS("app-key", app_key),
    OS("cache-dir", cache_dir),
    OS("cacert", cacert),
    OB("insecure", insecure),
    OB("json", json),
    OB("verbose", verbose),
    AS("conv", conv),
    AS("to", to),
    AS("attr", attr),
    AS("file", file),
    AS("image", image),
    AS("name", name),
    AS("where", where),
    AS("order", order),
    AS("before", before),
    AI("before-ts", before_ts, 0, 9007199254740991LL, "a time in milliseconds since 1970"),
    AI("limit", limit, 1, 1000, "messages or conversations"),
    AI("count", count, 1, 1000000, "events"),
    AI("timeout", timeout, 1, 86400, "seconds"),
    AI("type", type, -7, INT_MAX, "a message type"),
    AB("transient", transient),
    AB("receipt", receipt),
    AB("unique", unique),
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

static const char COMMON[] = "as tag url app-id app-key cache-dir cacert insecure json verbose";

static const char COMMON_HELP[] =
    "common options:\n"
    "  --as ID          client id to log in as (required)\n"
    "  --tag TAG        login tag (single sign-on: one device per tag)\n"
    "  --url URL        server WebSocket URL, ws:// or wss:// (env TERN_URL; default ws://127.0.0.1:8080/)\n"
    "  --app-id ID      app id (env TERN_APP_ID; default: ./tern-data/app.json)\n"
    "  --app-key KEY    app key, for file uploads (env TERN_APP_KEY; default: ./tern-data/app.json)\n"
    "  --cacert FILE    wss://: trust the PEM certificates in FILE instead of the system's\n"
    "  --insecure       wss://: do not check the server's certificate (tests only)\n"
    "  --cache-dir DIR  local cache directory (default: none, in memory)\n"
    "  --json           JSON output\n"
    "  --verbose        libtern's log on stderr\n";

/* ---------------------------------------------------------------- commands */

typedef struct {
  const char *group, *name; /* name NULL: a one-word command */
  const char *flags;        /* the options it takes besides COMMON */
  int min_pos, max_pos;     /* words after the command (-1: any number) */
  const char *summary;      /* one line for `tern --help` */
  const char *help;         /* `tern COMMAND --help` */
} cmd_t;

static const cmd_t CMDS[] = {
    {"chat", NULL, "", 0, 0, "interactive chat (/help inside)",
     "usage: tern chat --as ID\n"
     "  An interactive chat: messages arrive while you type. Commands inside:\n"
     "  /list  /open N|ID  /new NAME [ID…]  /more  /members  /add ID…  /remove ID…  /leave\n"
     "  /login  /help  /quit. Arrow keys edit the line, up and down walk the input history.\n"},
    {"send", NULL, "conv to transient receipt type attr file image", 0, -1,
     "send a message (TEXT, --file PATH, --image URL)",
     "usage: tern send --as ID (--conv CID | --to ID) [options] TEXT...\n"
     "  Sends a message; prints \"sent MID to CID\" (--json: the message).\n"
     "  --conv CID      the conversation\n"
     "  --to ID         the unique conversation of you and ID (made if needed)\n"
     "  --type N        -1 text (default), -2 image, -3 audio, -4 video, -5 location, -6 file,\n"
     "                  or a custom type from 1\n"
     "  --attr JSON     the message's attributes (a JSON object)\n"
     "  --file PATH     upload PATH and send it (with --type -2 … -6); TEXT is optional\n"
     "  --image URL     an image message with URL; TEXT is optional\n"
     "  --transient     not stored, not delivered later (typing indicators)\n"
     "  --receipt       ask for a delivery receipt\n"},
    {"history", NULL, "conv to limit before before-ts", 0, 0, "messages of a conversation, oldest first",
     "usage: tern history --as ID (--conv CID | --to ID) [--limit N] [--before MID --before-ts MS]\n"
     "  Prints a page of messages, oldest first.\n"
     "  --limit N       messages in the page, 1 to 1000 (default 20)\n"
     "  --before MID    the page before message MID, which was sent at --before-ts MS\n"},
    {"conv", "create", "name unique transient attr", 0, -1, "create a conversation",
     "usage: tern conv create --as ID [--name N] [--unique] [--transient] [--attr JSON] MEMBER...\n"
     "  Creates a conversation of you and the MEMBERs; prints it.\n"
     "  --unique        the same members get the same conversation\n"
     "  --transient     a chat room\n"
     "  --attr JSON     its attributes (a JSON object)\n"},
    {"conv", "add", "conv", 1, -1, "add members", "usage: tern conv add --as ID --conv CID MEMBER...\n"},
    {"conv", "remove", "conv", 1, -1, "remove members", "usage: tern conv remove --as ID --conv CID MEMBER...\n"},
    {"conv", "query", "where limit order", 0, 0, "find conversations",
     "usage: tern conv query --as ID [--where JSON] [--limit N] [--order KEYS]\n"
     "  --where JSON    conditions, e.g. '{\"attr.type\":\"private\",\"name\":{\"$regex\":\"^cat\"}}'\n"
     "  --limit N       1 to 1000 (default: the server's, 10)\n"
     "  --order KEYS    e.g. -lm (latest message first)\n"},
    {"conv", "count", "conv", 0, 0, "count members (online, in a chat room)",
     "usage: tern conv count --as ID --conv CID\n"},
    {"watch", NULL, "count timeout", 0, 0, "print incoming events",
     "usage: tern watch --as ID [--count N] [--timeout SEC]\n"
     "  Logs in and prints every event (messages, members, typing …) until interrupted.\n"
     "  --count N       exit after N events, counted from \"watching\" (--json: \"ready\") on\n"
     "  --timeout SEC   exit after SEC seconds, 1 to 86400\n"},
};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static void usage(FILE *f) {
  fputs("usage: tern <command> [options]\n\ncommands:\n", f);
  for (size_t i = 0; i < NCMDS; i++) {
    char words[40];
    snprintf(words, sizeof words, "%s%s%s", CMDS[i].group, CMDS[i].name ? " " : "", CMDS[i].name ? CMDS[i].name : "");
    fprintf(f, "  %-16s%s\n", words, CMDS[i].summary);
  }
  fputs("  admin …         the back office over the REST API with the master key (tern admin --help)\n\n", f);
  fputs(COMMON_HELP, f);
  fputs("\n`tern COMMAND --help` tells more; `tern --version` the version.\n"
        "exit status: 0 done, 1 refused by the server or not reached, 2 bad usage\n",
        f);
}

static void command_help(FILE *f, const char *group, const cmd_t *cmd) {
  for (size_t i = 0; i < NCMDS; i++)
    if (cmd ? &CMDS[i] == cmd : strcmp(CMDS[i].group, group) == 0) fputs(CMDS[i].help, f);
  fputc('\n', f);
  fputs(COMMON_HELP, f);
}

/* "tern send: …" (or "tern: …" before a command is known) and where to read more; 2. */
static int usage_error(const char *cmdname, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmdname, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "tern%s%s: ", cmdname ? " " : "", cmdname ? cmdname : "");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (tern %s%s--help)\n", cmdname ? cmdname : "", cmdname ? " " : "");
  return 2;
}

/* ---------------------------------------------------------------- shared helpers */

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

static char last_error[600];
static int verbosity;

static void log_line(void *data, int level, const char *line) {
  if (level == TERN_LOG_ERROR) snprintf(last_error, sizeof last_error, "%s", line);
  if (verbosity) fprintf(stderr, "libtern: %s\n", line);
}

const char *cli_last_error(void) { return last_error; }

void cli_tern_options(const cli_opts_t *o, tern_options_t *to) {
  tern_options_init(to);
  to->url = o->url;
  to->app_id = o->app_id;
  to->app_key = o->app_key;
  to->cache_dir = o->cache_dir;
  to->tls_ca_file = o->cacert;
  to->tls_insecure = o->insecure;
  to->command_timeout_ms = 10000;
  verbosity = o->verbose;
  to->log_cb = log_line;
  to->log_level = o->verbose > 1 ? TERN_LOG_DEBUG : o->verbose ? TERN_LOG_INFO : TERN_LOG_ERROR;
}

int cli_is_connect_error(int rc) {
  return rc == TERN_ECONNECT || rc == TERN_ETLS || rc == TERN_EHANDSHAKE || rc == TERN_ETIMEDOUT || rc == TERN_ECLOSED;
}

int cli_connect_failed(const cli_opts_t *o, int rc) {
  const char *detail = cli_last_error();
  if (o->json) {
    json_t *j = json_pack("{s:s,s:i,s:s,s:s}", "error", tern_err_name(rc), "code", rc, "what",
                          cli_is_connect_error(rc) ? "connect" : "login", "url", o->url);
    if (j && *detail) json_object_set_new(j, "detail", json_string(detail));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(j);
  }
  if (cli_is_connect_error(rc))
    fprintf(stderr, "tern: cannot connect to %s: %s (%s)%s%s\n", o->url, tern_strerror(rc), tern_err_name(rc),
            *detail ? "; " : "", detail);
  else
    fprintf(stderr, "tern: %s could not log in at %s: %s (%s)\n", o->as, o->url, tern_strerror(rc), tern_err_name(rc));
  return 1;
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
  for (size_t i = 0; i < n; i++) json_array_append_new(a, json_string(m[i]));
  json_object_set_new(j, "members", a);
  json_object_set_new(j, "attributes", json_loads(tern_conv_attributes(c), 0, NULL));
  json_object_set_new(j, "transient", json_boolean(tern_conv_is_transient(c)));
  json_object_set_new(j, "unread", json_integer(tern_conv_unread_count(c)));
  if (tern_conv_last_message(c)) json_object_set_new(j, "lastMessage", cli_msg_json(tern_conv_last_message(c)));
  return j;
}

const char *cli_conv_label(const tern_conv_t *c, const char *self, char *out, size_t n) {
  const char *name = tern_conv_name(c);
  if (name && *name) {
    snprintf(out, n, "%s", name);
    return out;
  }
  size_t nm;
  const char *const *m = tern_conv_members(c, &nm);
  size_t len = 0;
  out[0] = 0;
  for (size_t i = 0; i < nm && len + 1 < n; i++) {
    if (self && strcmp(m[i], self) == 0) continue;
    len += (size_t)snprintf(out + len, n - len, "%s%s", len ? ", " : "", m[i]);
    if (len >= n) len = n - 1;
  }
  if (!out[0]) snprintf(out, n, "%s", tern_conv_id(c)); /* only you, or members unknown */
  return out;
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

/* ---------------------------------------------------------------- parsing */

/* A JSON argument that must be an object: the parser's own message when it is not JSON. */
static int check_json_object(const char *cmdname, const char *flag, const char *text) {
  if (!text) return 0;
  json_error_t e;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
  if (!j) return usage_error(cmdname, "--%s is not JSON: %s (line %d, column %d)", flag, e.text, e.line, e.column);
  int ok = json_is_object(j);
  json_decref(j);
  return ok ? 0 : usage_error(cmdname, "--%s must be a JSON object, like '{\"key\":\"value\"}'", flag);
}

static const cmd_t *find_cmd(const char *group, const char *name) {
  for (size_t i = 0; i < NCMDS; i++)
    if (strcmp(CMDS[i].group, group) == 0 && (!CMDS[i].name ? !name : name && strcmp(CMDS[i].name, name) == 0))
      return &CMDS[i];
  return NULL;
}

static int is_group(const char *w) {
  for (size_t i = 0; i < NCMDS; i++)
    if (strcmp(CMDS[i].group, w) == 0) return 1 + (CMDS[i].name != NULL);
  return 0;
}

int main(int argc, char **argv) {
  json_abort_on_oom(); /* before any JSON value exists; libtern's own checks stay for other hosts */
  /* admin speaks HTTP with the master key, not IM as a client: its own options */
  if (argc > 1 && strcmp(argv[1], "admin") == 0) return admin_main(argc - 1, argv + 1);
  if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
    printf("tern %s (commit %s)\n", TERN_VERSION, TERN_COMMIT);
    return 0;
  }
  cli_opts_t o = {0};
  cli_args_t a = {0};
  a.pos = calloc((size_t)argc + 1, sizeof *a.pos);
  if (!a.pos) return 1;
  o.url = getenv("TERN_URL");
  o.app_id = getenv("TERN_APP_ID");
  o.app_key = getenv("TERN_APP_KEY");
  const char *group = NULL, *sub = NULL;
  const cmd_t *cmd = NULL;
  char cmdname[40] = "";
  char given[NFLAGS] = {0};
  int help = 0, rc = 0;
#define NAME() (*cmdname ? cmdname : NULL)
  args_t it = ARGS_INIT(argc, argv);
  for (arg_t g; rc == 0 && args_next(&it, &g);) {
    const char *s = g.s;
    if (g.rest) { /* after "--": words (ids that start with "-") */
      a.pos[a.npos++] = g.s;
      continue;
    }
    if (!strcmp(s, "-h") || !strcmp(s, "--help") || (!strcmp(s, "help") && !group)) {
      help = 1;
    } else if (!strcmp(s, "--version")) {
      rc = usage_error(NAME(), "--version goes alone: tern --version");
    } else if (!strcmp(s, "-v")) {
      o.verbose++;
    } else if (g.opt) {
      const flag_t *f = args_find(FLAGS, NFLAGS, sizeof *FLAGS, g.name, g.nlen);
      if (!f) {
        rc = usage_error(NAME(), "unknown option %.*s", (int)(g.nlen + 2), s);
        break;
      }
      given[f - FLAGS] = 1;
      char *field = (char *)(f->in == IN_OPTS ? (void *)&o : (void *)&a) + f->off;
      if (f->kind == F_BOOL) {
        if (g.eq) rc = usage_error(NAME(), "--%s takes no value", f->name);
        else if (!strcmp(f->name, "verbose")) o.verbose++;
        else *(int *)field = 1;
        continue;
      }
      const char *v = args_value(&it, &g);
      if (!v) {
        rc = usage_error(NAME(), "--%s needs a value", f->name);
      } else if (f->kind == F_STR) {
        *(const char **)field = v;
      } else {
        char *end;
        long long n = strtoll(v, &end, 10);
        if (!strcmp(f->name, "type") && (!*v || *end || n == 0 || n < f->min || n > f->max))
          rc = usage_error(NAME(), "--type must be a message type, -7 to -1 (built-in) or 1 to %d (custom), not \"%s\"",
                           INT_MAX, v);
        else if (!*v || *end || n < f->min || n > f->max)
          rc = usage_error(NAME(), "--%s must be a number from %lld to %lld (%s), not \"%s\"", f->name,
                           (long long)f->min, (long long)f->max, f->says, v);
        else if (f->off == offsetof(cli_args_t, before_ts)) a.before_ts = n;
        else *(int *)field = (int)n;
      }
    } else if (!group) {
      int kind = is_group(s);
      if (!kind) {
        rc = usage_error(NULL, "unknown command %s", s);
        break;
      }
      group = s;
      if (kind == 1) cmd = find_cmd(group, NULL);
      snprintf(cmdname, sizeof cmdname, "%s", group);
    } else if (!cmd) { /* the second word of a two-word command */
      sub = s;
      cmd = find_cmd(group, sub);
      if (!cmd) {
        rc = usage_error(group, "unknown command %s %s", group, sub);
        break;
      }
      snprintf(cmdname, sizeof cmdname, "%s %s", group, sub);
    } else {
      a.pos[a.npos++] = g.s;
    }
  }
#undef NAME
  if (rc == 0 && help) {
    if (!group) usage(stdout);
    else command_help(stdout, group, cmd);
    free(a.pos);
    return 0;
  }
  if (rc == 0 && !group) {
    usage(stderr);
    rc = 2;
  }
  if (rc == 0 && !cmd) rc = usage_error(group, "%s what? create, add, remove, query or count", group);
  for (size_t k = 0; rc == 0 && k < NFLAGS; k++)
    if (given[k] && !args_takes(COMMON, FLAGS[k].name) && !args_takes(cmd->flags, FLAGS[k].name))
      rc = usage_error(cmdname, "--%s is not an option of %s", FLAGS[k].name, cmdname);
  if (rc == 0 && cmd->max_pos == 0 && a.npos > 0) rc = usage_error(cmdname, "unexpected argument \"%s\"", a.pos[0]);
  if (rc == 0 && a.npos < cmd->min_pos) rc = usage_error(cmdname, "which members?");
  if (rc == 0) rc = check_json_object(cmdname, "attr", a.attr);
  if (rc == 0) rc = check_json_object(cmdname, "where", a.where);
  if (rc == 0 && !strcmp(group, "send")) {
    if (!a.conv && !a.to) rc = usage_error(cmdname, "--conv CID or --to ID is required");
    else if (a.npos == 0 && !a.file && !a.image) rc = usage_error(cmdname, "no text to send");
    else if (a.file && a.image) rc = usage_error(cmdname, "--file and --image exclude each other");
  }
  if (rc == 0 && !strcmp(group, "history") && !a.conv && !a.to)
    rc = usage_error(cmdname, "--conv CID or --to ID is required");
  if (rc == 0 && !strcmp(group, "history") && !a.before != !a.before_ts)
    rc = usage_error(cmdname, "--before MID and --before-ts MS go together (the message and its timestamp)");
  if (rc == 0 && sub && strcmp(sub, "create") != 0 && strcmp(sub, "query") != 0 && !a.conv)
    rc = usage_error(cmdname, "--conv CID is required");
  if (rc == 0 && (o.cacert || o.insecure) && o.url && strncmp(o.url, "wss://", 6) != 0)
    rc = usage_error(cmdname, "--cacert and --insecure are for wss:// URLs, not %s", o.url);
  if (rc) {
    free(a.pos);
    return rc;
  }

  char *saved = NULL, *saved_app_key = NULL;
  if (!o.url) o.url = "ws://127.0.0.1:8080/";
  if (!o.app_id) {
    o.app_id = saved = cli_saved_key("app_id");
    if (!o.app_key) o.app_key = saved_app_key = cli_saved_key("app_key"); /* file uploads need it */
  }
  if (strncmp(o.url, "ws://", 5) != 0 && strncmp(o.url, "wss://", 6) != 0)
    rc = usage_error(cmdname, "--url must be a ws:// or wss:// URL, not %s", o.url);
  else if (!o.app_id) rc = usage_error(cmdname, "no app id (--app-id, TERN_APP_ID, or ./tern-data/app.json)");
  else if (!o.as) rc = usage_error(cmdname, "--as ID is required");
  else if (!strcmp(group, "chat")) rc = chat_main(&o);
  else if (!strcmp(group, "send")) rc = cmd_send(&o, &a);
  else if (!strcmp(group, "history")) rc = cmd_history(&o, &a);
  else if (!strcmp(group, "conv")) rc = cmd_conv(&o, &a, sub);
  else if (!strcmp(group, "watch")) rc = cmd_watch(&o, &a);
  free(saved);
  free(saved_app_key);
  free(a.pos);
  return rc;
}
