/* cli.h — shared bits of the `tern` command-line client (main.c: the command table, option
 * parsing and help; cmds.c: the scriptable commands; chat.c: the interactive terminal chat;
 * edit.c: its line editor). */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <jansson.h>
#include <stdint.h>

#include "tern/sync.h"
#include "tern/tern.h"

/* The custom message type of the typing indicator (sent transient). */
#define CLI_TYPING_TYPE 100

typedef struct {
  const char *url;
  const char *app_id;
  const char *app_key;
  const char *as;
  const char *tag;
  const char *cache_dir;
  const char *cacert;
  int insecure;
  int json;
  int verbose;
} cli_opts_t;

/* What a command was given besides the common options; main.c checked every value (numbers
 * in their range, --attr and --where JSON objects) before the command runs. */
typedef struct {
  const char *conv, *to, *attr, *file, *image, *name, *where, *order, *before;
  int64_t before_ts;
  int limit, count, timeout, transient, receipt, unique, type;
  char **pos;
  int npos;
} cli_args_t;

/* Options for tern_new from the CLI options. libtern's log goes to stderr with --verbose;
 * its last error line is kept either way (cli_last_error). */
void cli_tern_options(const cli_opts_t *o, tern_options_t *to);
/* The last error libtern logged ("TLS with host:443: handshake failed: certificate verify
 * failed: …"), or "" — what a failed connection says beyond its code. */
const char *cli_last_error(void);
/* A failed connection or login, said with the URL tried: "tern: cannot connect to URL: …".
 * Returns 1 (the exit status). */
int cli_connect_failed(const cli_opts_t *o, int rc);
/* Is rc a failure to reach the server (connect, TLS, WebSocket handshake, timeout)? */
int cli_is_connect_error(int rc);

json_t *cli_msg_json(const tern_msg_t *m);
json_t *cli_conv_json(const tern_conv_t *c);
/* "text" for text messages, "[image] url", "(location 1.0,2.0)" … malloc'd. */
char *cli_msg_summary(const tern_msg_t *m);
/* A conversation as a person knows it: its name, else its other members ("Jerry, Spike"),
 * else its id. Written into out. */
const char *cli_conv_label(const tern_conv_t *c, const char *self, char *out, size_t n);

int chat_main(const cli_opts_t *o);

/* cmds.c */
int cmd_send(const cli_opts_t *o, cli_args_t *a);
int cmd_history(const cli_opts_t *o, cli_args_t *a);
int cmd_conv(const cli_opts_t *o, cli_args_t *a, const char *sub);
int cmd_watch(const cli_opts_t *o, cli_args_t *a);

/* A key ternd saved in $TERN_DATA_DIR/app.json (default ./tern-data): "app_id", "app_key",
 * "master_key"; malloc'd, or NULL. */
char *cli_saved_key(const char *name);

#endif
