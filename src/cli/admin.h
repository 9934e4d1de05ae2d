/* admin.h — `tern admin`: ternd's REST API (/1.2/rtm/…, /1.1/installations, /1.1/files)
 * from a shell, with the master key.
 *
 * admin.c parses the command line against one table of commands and flags and holds the
 * helpers every command uses (one call, printing, errors); admin_conv.c, admin_msg.c and
 * admin_device.c are the commands by subject; admin_http.c is the HTTP client (libcurl)
 * under them. */
#ifndef TERN_CLI_ADMIN_H
#define TERN_CLI_ADMIN_H

#include <jansson.h>
#include <stdio.h>

#include "buf.h"

/* ---- admin_http.c: one blocking HTTP exchange per call, through libcurl ---- */

/* Where the REST API is: parsed from http://host[:port][/prefix] or https://…. */
typedef struct {
  int tls;
  char *host;         /* without IPv6 brackets */
  char *port;         /* as written, or 80 / 443 (for messages) */
  char *authority;    /* the Host header: host[:port] as written */
  char *prefix;       /* a path the API sits under behind a proxy, "" or "/x" (no trailing '/') */
  int timeout_ms;     /* to connect, and the longest the answer may stall */
  int insecure;       /* https: do not verify the certificate */
  const char *cacert; /* https: trust this PEM file instead of the system's CAs */
} ahttp_server_t;

typedef struct {
  int status;
  buf_t body;      /* the body, unless it went to a sink */
  uint64_t length; /* the body's bytes, wherever they went */
} ahttp_resp_t;

/* 0, or -1 with a reason in err. */
int ahttp_server_parse(ahttp_server_t *s, const char *url, char *err, size_t errlen);
void ahttp_server_free(ahttp_server_t *s);

/* Sends `method path` (path from the API root, prefix added here) with extra headers
 * ("Name: value\r\n" lines, may be NULL) and a body, and reads the whole answer. With a
 * sink, a 2xx body is written there instead of kept. Returns 0 when an answer came (any
 * status), -1 with err set when the exchange failed (connect, TLS, timeout, garbage). */
int ahttp_request(const ahttp_server_t *s, const char *method, const char *path, const char *headers, const void *body,
                  size_t len, FILE *sink, ahttp_resp_t *out, char *err, size_t errlen);
void ahttp_resp_free(ahttp_resp_t *r);

/* ---- admin.c: the parsed command line and shared helpers ---- */

typedef struct {
  /* common */
  const char *server, *app_id, *master_key, *cacert;
  int json, insecure, timeout;
  /* conversations */
  const char *name, *members, *attr, *set, *where, *order, *creator;
  int unique, room, service, all, skip;
  /* messages */
  const char *from, *text, *content, *push_data, *to, *before, *after, *until, *priority, *mention, *client;
  int transient, no_sync, reversed, mention_all;
  /* clients, service conversations */
  const char *reason, *conv, *next;
  int count;
  /* installations, files */
  const char *type, *token, *installation_id, *registration_id, *channels, *add_channels, *remove_channels, *out, *mime;
  int badge;
  int limit;
  /* import / export leancloud (--from is the source URL there, --to the export directory) */
  const char *from_app_id, *from_master_key, *from_dir, *state;
  int rehost_files, dry_run, full, concurrency, batch, rate, retries, recheck_days, retry_for;
  /* set when the flag was given (limit and badge may be 0) */
  int has_limit, has_badge, has_rate, has_retries, has_recheck_days;
  char **pos; /* positional words after the command */
  int npos;
} admin_args_t;

typedef struct admin admin_t;
struct admin {
  admin_args_t a;
  ahttp_server_t srv;
  char *headers;     /* X-LC-Id, X-LC-Key */
  char *server_url;  /* the REST API's base URL, as resolved */
  char *app_id;      /* the app id, as resolved */
  const char *group; /* the command's first word */
  const char *cmd;   /* "conv create", for messages */
  int status;        /* the HTTP status of the last call */
};

typedef int (*admin_fn_t)(admin_t *ad);

/* One REST call with the app's headers and a JSON body (NULL: none). A 2xx answer: 0,
 * with *out the parsed body (caller's) when out is not NULL. Otherwise 1 after printing
 * why on stderr: the LeanCloud {"code","error"} of a refusal, or what failed on the way
 * (connect, TLS, timeout, an answer that is not JSON). */
int admin_call(admin_t *ad, const char *method, const char *path, json_t *body, json_t **out);
/* Like admin_call, for bodies that are not JSON (uploads) or answers that go to a sink
 * (downloads); on 0, *resp is the caller's to ahttp_resp_free. */
int admin_call_raw(admin_t *ad, const char *method, const char *path, const char *extra_headers, const void *body,
                   size_t len, FILE *sink, ahttp_resp_t *resp);

/* GET path: the answer on stdout, as JSON with --json, else as admin_print_fields. */
int admin_show(admin_t *ad, const char *path);
/* A call whose answer says nothing more than that it worked: with --json the answer, else
 * the printf-style line `done` (its newline added). admin_call's return value. */
int admin_act(admin_t *ad, const char *method, const char *path, json_t *body, const char *done, ...)
    __attribute__((format(printf, 5, 6)));

/* --json: the answer as JSON on one line (takes j). Returns 0. */
int admin_print_json(json_t *j);
/* An object as "key: value" lines (strings bare, lists of strings comma-joined). */
void admin_print_fields(json_t *obj);
/* Bad usage: a message and exit status 2. */
int admin_usage_error(admin_t *ad, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON argument of the given type (JSON_OBJECT …), or NULL after admin_usage_error. */
json_t *admin_json_arg(admin_t *ad, const char *flag, const char *text, json_type type);
/* obj[key] = the JSON object --flag gives as text (nothing when text is NULL). 0, or the
 * exit status 2 after admin_usage_error. */
int admin_put_object(admin_t *ad, json_t *obj, const char *key, const char *flag, const char *text);
/* "a,b c" words → a JSON array of strings (commas split, empties dropped). */
json_t *admin_id_list(char *const *words, int n);
/* ms → "YYYY-MM-DD HH:MM:SS" local time. */
void admin_time(int64_t ms, char out[32]);
/* Path of a conversation endpoint: "/1.2/rtm/<kind>/<cid><rest>" where the kind comes from
 * --room / --service, else from asking the server what cid is. */
char *admin_conv_path(admin_t *ad, const char *cid, const char *rest);
/* Which collection a conversation is in: "conversations", "chatrooms" or
 * "service-conversations" (flags first, then the server). */
const char *admin_conv_kind(admin_t *ad, const char *cid);

/* the commands */
int admin_conv_create(admin_t *ad);
int admin_conv_get(admin_t *ad);
int admin_conv_list(admin_t *ad);
int admin_conv_update(admin_t *ad);
int admin_conv_delete(admin_t *ad);
int admin_conv_members(admin_t *ad);
int admin_conv_add(admin_t *ad);
int admin_conv_remove(admin_t *ad);
int admin_conv_mute(admin_t *ad);
int admin_conv_unmute(admin_t *ad);
int admin_msg_send(admin_t *ad);
int admin_msg_history(admin_t *ad);
int admin_msg_edit(admin_t *ad);
int admin_msg_recall(admin_t *ad);
int admin_msg_delete(admin_t *ad);
int admin_broadcast(admin_t *ad);
int admin_subscribers(admin_t *ad);
int admin_kick(admin_t *ad);
int admin_online(admin_t *ad);
int admin_unread(admin_t *ad);
int admin_stats(admin_t *ad);
int admin_backup(admin_t *ad);
int admin_push_install(admin_t *ad);
int admin_push_show(admin_t *ad);
int admin_push_update(admin_t *ad);
int admin_push_delete(admin_t *ad);
int admin_file_upload(admin_t *ad);
int admin_file_info(admin_t *ad);
int admin_file_delete(admin_t *ad);
int admin_file_download(admin_t *ad);
/* admin_import.c */
int admin_import_leancloud(admin_t *ad);
int admin_export_leancloud(admin_t *ad);

/* main.c hands `tern admin …` here: argv[0] is "admin". */
int admin_main(int argc, char **argv);

#endif
