/* cli.h — shared bits of the `tern` command-line client (main.c: options and scriptable
 * commands; chat.c: the interactive terminal chat). */
#ifndef TERN_CLI_H
#define TERN_CLI_H

#include <jansson.h>

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
  int json;
  int verbose;
} cli_opts_t;

/* Options for tern_new from the CLI options. */
void cli_tern_options(const cli_opts_t *o, tern_options_t *to);
json_t *cli_msg_json(const tern_msg_t *m);
json_t *cli_conv_json(const tern_conv_t *c);
/* "text" for text messages, "[image] url", "(location 1.0,2.0)" … malloc'd. */
char *cli_msg_summary(const tern_msg_t *m);

int chat_main(const cli_opts_t *o);

/* A key ternd saved in $TERN_DATA_DIR/app.json (default ./tern-data): "app_id", "app_key",
 * "master_key"; malloc'd, or NULL. */
char *cli_saved_key(const char *name);

#endif
