/* chat.c — `tern chat`: an interactive terminal chat on libtern's async API and libuv.
 *
 * One loop runs both the terminal and the SDK (tern_uv_attach), so incoming messages
 * appear while you type: the input line is redrawn under each printed line. The terminal
 * is put in non-canonical mode so every keystroke is seen; the first keystroke of a line
 * in an open conversation sends a transient "typing" message (custom type 100, at most
 * every 3 s), which the other side shows as "… is typing". Slash commands:
 *   /list  /open N|ID  /new NAME [ID…]  /more  /members  /add ID…  /remove ID…  /leave
 *   /help  /quit
 * Without a terminal on stdin it reads lines, which is what scripts and tests pipe in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "tern/uv.h"

#define MAX_LIST 64
#define TYPING_EVERY_MS 3000

typedef struct {
  const cli_opts_t *o;
  uv_loop_t loop;
  uv_poll_t in;
  uv_signal_t sigint;
  tern_t *t;
  tern_client_t *c;
  tern_conv_t *cur;
  tern_conv_t *list[MAX_LIST];
  size_t nlist;
  char oldest_id[64];
  int64_t oldest_ts;
  char line[4096];
  size_t len;
  int tty;
  struct termios saved;
  int64_t last_typing;
  char typing_from[128]; /* who was last shown typing, and when: show it once per burst */
  int64_t typing_shown;
  int quitting;
  int opened;
} chat_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *conv_label(const tern_conv_t *c) {
  return tern_conv_name(c) && *tern_conv_name(c) ? tern_conv_name(c) : tern_conv_id(c);
}

static void redraw(chat_t *ch) {
  if (!ch->tty || ch->quitting) return;
  printf("\r\033[K%s> %.*s", ch->cur ? conv_label(ch->cur) : "", (int)ch->len, ch->line);
  fflush(stdout);
}

static void say(chat_t *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(chat_t *ch, const char *fmt, ...) {
  if (ch->tty) printf("\r\033[K");
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  redraw(ch);
  fflush(stdout);
}

static void clock_of(int64_t ms, char out[8]) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&s, &tm);
  strftime(out, 8, "%H:%M", &tm);
}

static void show_msg(chat_t *ch, tern_conv_t *conv, const tern_msg_t *m) {
  char *s = cli_msg_summary(m);
  char when[8];
  clock_of(tern_msg_timestamp(m), when);
  if (conv == ch->cur)
    say(ch, "[%s] %s: %s", when, tern_msg_from(m), s);
  else
    say(ch, "[%s] (%s) %s: %s", when, conv_label(conv), tern_msg_from(m), s);
  free(s);
}

/* ---- delegate ---- */

static void on_message(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  chat_t *ch = data;
  if (tern_msg_type(m) == CLI_TYPING_TYPE) {
    int64_t now = now_ms();
    if (strcmp(ch->typing_from, tern_msg_from(m)) == 0 && now - ch->typing_shown < 2 * TYPING_EVERY_MS) return;
    snprintf(ch->typing_from, sizeof ch->typing_from, "%s", tern_msg_from(m));
    ch->typing_shown = now;
    if (strcmp(tern_msg_from(m), tern_client_id(c)) != 0)
      say(ch, "… %s is typing%s%s", tern_msg_from(m), conv == ch->cur ? "" : " in ",
          conv == ch->cur ? "" : conv_label(conv));
    return;
  }
  if (strcmp(ch->typing_from, tern_msg_from(m)) == 0) ch->typing_from[0] = 0; /* a message ends the burst */
  show_msg(ch, conv, m);
  if (conv == ch->cur) tern_conv_read(conv);
}

static void on_members(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by,
                       void *data, const char *what) {
  char list[1024] = "";
  for (size_t i = 0; i < n; i++) {
    if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
    strncat(list, ids[i], sizeof list - strlen(list) - 1);
  }
  say(data, "* %s %s %s (by %s)", list, what, conv_label(conv), by ? by : "?");
}
static void on_added(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  on_members(c, v, ids, n, by, d, "joined");
}
static void on_removed(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  on_members(c, v, ids, n, by, d, "left");
}
static void fetched(tern_client_t *c, tern_conv_t *conv, int status, void *data) {
  if (status == 0 && conv) say(data, "* %s is \"%s\"", tern_conv_id(conv), conv_label(conv));
}

static void on_invited(tern_client_t *c, tern_conv_t *v, const char *by, void *d) {
  say(d, "* you are in %s (added by %s)", conv_label(v), by ? by : "?");
  if (!tern_conv_name(v)) { /* a notification carries only the id: learn the name */
    tern_query_t *q = tern_query_new(c);
    tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
    tern_query_get(q, tern_conv_id(v), fetched, d);
    tern_query_free(q);
  }
}
static void on_kicked(tern_client_t *c, tern_conv_t *v, const char *by, void *d) {
  chat_t *ch = d;
  say(ch, "* you left %s (by %s)", conv_label(v), by ? by : "?");
  if (ch->cur == v) {
    ch->cur = NULL;
    redraw(ch);
  }
}
static void on_unread(tern_client_t *c, tern_conv_t *v, int n, void *d) {
  if (n > 0) say(d, "* %s: %d unread", conv_label(v), n);
}
static void on_delivered(tern_client_t *c, tern_conv_t *v, const tern_msg_t *m, void *d) {
  say(d, "* delivered %s", tern_msg_id(m));
}
static void on_updated(tern_client_t *c, tern_conv_t *v, const char *attr, const char *by, void *d) {
  say(d, "* %s updated by %s: %s", conv_label(v), by ? by : "?", attr);
}
static void on_paused(tern_client_t *c, void *d) { say(d, "* connection lost, reconnecting…"); }
static void on_resumed(tern_client_t *c, void *d) { say(d, "* back online"); }
static void on_offline(tern_client_t *c, int err, void *d) {
  say(d, "* logged out by the server: %s (%d)", tern_err_name(err), TERN_ERR_CODE(err));
}

/* ---- commands ---- */

static void list_cb(tern_client_t *c, tern_conv_t *const *convs, size_t n, int from_cache, int status, void *data) {
  chat_t *ch = data;
  if (status < 0) {
    say(ch, "! list: %s", tern_err_name(status));
    return;
  }
  ch->nlist = n < MAX_LIST ? n : MAX_LIST;
  if (!n) say(ch, "no conversations yet: /new NAME ID… creates one");
  for (size_t i = 0; i < ch->nlist; i++) {
    ch->list[i] = convs[i];
    size_t nm;
    const char *const *m = tern_conv_members(convs[i], &nm);
    char members[512] = "";
    for (size_t k = 0; k < nm; k++) {
      if (k) strncat(members, ", ", sizeof members - strlen(members) - 1);
      strncat(members, m[k], sizeof members - strlen(members) - 1);
    }
    int unread = tern_conv_unread_count(convs[i]);
    say(ch, "%2zu) %s [%s]%s", i + 1, conv_label(convs[i]), members, unread > 0 ? " (unread)" : "");
  }
}

static void cmd_list(chat_t *ch) {
  tern_query_t *q = tern_query_new(ch->c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
  tern_query_set_order(q, "-lm");
  tern_query_set_limit(q, MAX_LIST);
  int rc = tern_query_find(q, list_cb, ch);
  if (rc < 0) say(ch, "! list: %s", tern_err_name(rc));
  tern_query_free(q);
}

static void history_cb(tern_conv_t *conv, const tern_msg_t *const *msgs, size_t n, int from_cache, int status,
                       void *data) {
  chat_t *ch = data;
  if (status < 0) {
    say(ch, "! history: %s", tern_err_name(status));
    return;
  }
  if (conv != ch->cur) return;
  if (n == 0) say(ch, "— no older messages —");
  for (size_t i = 0; i < n; i++) {
    if (tern_msg_type(msgs[i]) == CLI_TYPING_TYPE) continue;
    show_msg(ch, conv, msgs[i]);
  }
  if (n) {
    snprintf(ch->oldest_id, sizeof ch->oldest_id, "%s", tern_msg_id(msgs[0]) ? tern_msg_id(msgs[0]) : "");
    ch->oldest_ts = tern_msg_timestamp(msgs[0]);
    say(ch, "— %zu message%s%s; /more for older —", n, n == 1 ? "" : "s", from_cache ? " (cached)" : "");
  }
}

static void open_conv(chat_t *ch, tern_conv_t *conv) {
  ch->cur = conv;
  ch->oldest_id[0] = 0;
  ch->oldest_ts = 0;
  size_t n;
  const char *const *m = tern_conv_members(conv, &n);
  char members[512] = "";
  for (size_t k = 0; k < n; k++) {
    if (k) strncat(members, ", ", sizeof members - strlen(members) - 1);
    strncat(members, m[k], sizeof members - strlen(members) - 1);
  }
  say(ch, "== %s (%s) [%s] ==", conv_label(conv), tern_conv_id(conv), members);
  int rc = tern_conv_query_messages(conv, 10, history_cb, ch);
  if (rc < 0) say(ch, "! history: %s", tern_err_name(rc));
  tern_conv_read(conv);
}

static void got_conv(tern_client_t *c, tern_conv_t *conv, int status, void *data) {
  chat_t *ch = data;
  if (status < 0 || !conv)
    say(ch, "! %s", tern_err_name(status));
  else
    open_conv(ch, conv);
}

static void done_cb(tern_conv_t *conv, int status, void *data) {
  chat_t *ch = data;
  if (status < 0) say(ch, "! %s", tern_err_name(status));
}

static void sent_cb(tern_conv_t *conv, const tern_msg_t *sent, int status, void *data) {
  chat_t *ch = data;
  if (status < 0) say(ch, "! not sent: %s", tern_err_name(status));
}

static char **split_words(char *s, size_t *n) {
  size_t cap = 8;
  char **v = calloc(cap, sizeof *v);
  *n = 0;
  for (char *save = NULL, *w = strtok_r(s, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
    if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[(*n)++] = w;
  }
  return v;
}

static void help(chat_t *ch) {
  say(ch, "/list            your conversations        /open N|ID   open one (shows recent history)");
  say(ch, "/new NAME ID…    create and open           /more        older history");
  say(ch, "/members         who is in it              /add ID…     /remove ID…   /leave");
  say(ch, "/quit            leave tern chat           anything else is sent to the open conversation");
}

static void shutdown_chat(chat_t *ch);

static void command(chat_t *ch, char *line) {
  size_t n;
  char **w = split_words(line + 1, &n);
  const char *cmd = n ? w[0] : "";
  int rc = 0;
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "h") == 0)
    help(ch);
  else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0)
    cmd_list(ch);
  else if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0 || strcmp(cmd, "q") == 0)
    shutdown_chat(ch);
  else if (strcmp(cmd, "open") == 0 && n == 2) {
    char *end;
    long k = strtol(w[1], &end, 10);
    if (!*end && k >= 1 && (size_t)k <= ch->nlist)
      open_conv(ch, ch->list[k - 1]);
    else {
      tern_query_t *q = tern_query_new(ch->c);
      tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
      rc = tern_query_get(q, w[1], got_conv, ch);
      tern_query_free(q);
    }
  } else if (strcmp(cmd, "new") == 0 && n >= 2) {
    rc = tern_client_create_conv(ch->c, w[1], (const char *const *)w + 2, n - 2, NULL, 0, got_conv, ch);
  } else if (!ch->cur && (strcmp(cmd, "more") == 0 || strcmp(cmd, "members") == 0 || strcmp(cmd, "add") == 0 ||
                          strcmp(cmd, "remove") == 0 || strcmp(cmd, "leave") == 0)) {
    say(ch, "! open a conversation first (/list, /open N)");
  } else if (strcmp(cmd, "more") == 0) {
    if (!ch->oldest_id[0])
      say(ch, "— no older messages —");
    else
      rc = tern_conv_query_messages_before(ch->cur, ch->oldest_id, ch->oldest_ts, 10, history_cb, ch);
  } else if (strcmp(cmd, "members") == 0) {
    size_t nm;
    const char *const *m = tern_conv_members(ch->cur, &nm);
    for (size_t i = 0; i < nm; i++)
      say(ch, "  %s", m[i]);
  } else if (strcmp(cmd, "add") == 0 && n >= 2) {
    rc = tern_conv_add_members(ch->cur, (const char *const *)w + 1, n - 1, done_cb, ch);
  } else if (strcmp(cmd, "remove") == 0 && n >= 2) {
    rc = tern_conv_remove_members(ch->cur, (const char *const *)w + 1, n - 1, done_cb, ch);
  } else if (strcmp(cmd, "leave") == 0) {
    rc = tern_conv_quit(ch->cur, done_cb, ch);
  } else {
    say(ch, "! unknown command /%s (try /help)", cmd);
  }
  if (rc < 0) say(ch, "! %s", tern_err_name(rc));
  free(w);
}

static void submit(chat_t *ch) {
  ch->line[ch->len] = 0;
  char *line = ch->line;
  while (*line == ' ')
    line++;
  if (ch->tty) printf("\r\033[K");
  if (!*line) {
    redraw(ch);
    return;
  }
  if (line[0] == '/') {
    char copy[sizeof ch->line];
    snprintf(copy, sizeof copy, "%s", line);
    ch->len = 0;
    redraw(ch);
    command(ch, copy);
    return;
  }
  if (!ch->cur) {
    ch->len = 0;
    say(ch, "! open a conversation first (/list, /open N, /new NAME ID…)");
    return;
  }
  tern_msg_t *m = tern_msg_new_text(line, NULL);
  int rc = m ? tern_conv_send(ch->cur, m, 0, sent_cb, ch) : TERN_ENOMEM;
  tern_msg_free(m);
  ch->len = 0;
  if (rc < 0) say(ch, "! not sent: %s", tern_err_name(rc));
  /* the echo of our own line comes back as a printed message */
  char when[8];
  clock_of(time(NULL) * 1000LL, when);
  say(ch, "[%s] %s: %s", when, tern_client_id(ch->c), line);
}

static void typing(chat_t *ch) {
  if (!ch->cur || ch->line[0] == '/') return;
  int64_t now = now_ms();
  if (ch->last_typing && now - ch->last_typing < TYPING_EVERY_MS) return;
  ch->last_typing = now;
  tern_msg_t *m = tern_msg_new_typed(CLI_TYPING_TYPE, "typing", NULL);
  if (m) tern_conv_send(ch->cur, m, TERN_SEND_TRANSIENT, NULL, NULL);
  tern_msg_free(m);
}

static void on_input(uv_poll_t *h, int status, int events) {
  chat_t *ch = h->data;
  char buf[1024];
  ssize_t n = read(0, buf, sizeof buf);
  if (n <= 0) {
    shutdown_chat(ch);
    return;
  }
  for (ssize_t i = 0; i < n && !ch->quitting; i++) {
    unsigned char b = (unsigned char)buf[i];
    if (b == '\r' || b == '\n')
      submit(ch);
    else if (b == 3)
      shutdown_chat(ch); /* Ctrl-C */
    else if (b == 4 && ch->len == 0)
      shutdown_chat(ch); /* Ctrl-D */
    else if (b == 21)
      ch->len = 0;                  /* Ctrl-U */
    else if (b == 0x7f || b == 8) { /* backspace: a whole UTF-8 char */
      while (ch->len > 0 && (ch->line[ch->len - 1] & 0xC0) == 0x80)
        ch->len--;
      if (ch->len > 0) ch->len--;
    } else if (b == 27) { /* escape sequences (arrows): skip */
      if (i + 1 < n && buf[i + 1] == '[') i += 2;
    } else if (b >= 32 || b >= 0x80) {
      if (ch->len + 1 < sizeof ch->line) {
        if (ch->len == 0 && b != '/') {
          ch->line[ch->len++] = (char)b;
          typing(ch);
        } else {
          ch->line[ch->len++] = (char)b;
        }
      }
    }
  }
  redraw(ch);
}

static void on_sigint(uv_signal_t *h, int sig) { shutdown_chat(h->data); }

static void closed_cb(tern_client_t *c, int status, void *data) {
  chat_t *ch = data;
  uv_stop(&ch->loop);
}

static void shutdown_chat(chat_t *ch) {
  if (ch->quitting) return;
  ch->quitting = 1;
  if (ch->tty) printf("\r\033[K");
  printf("bye\n");
  fflush(stdout);
  if (uv_is_active((uv_handle_t *)&ch->in)) uv_poll_stop(&ch->in);
  if (tern_client_status(ch->c) != TERN_CLIENT_CLOSED && tern_client_close(ch->c, closed_cb, ch) == 0) return;
  uv_stop(&ch->loop);
}

static void opened_cb(tern_client_t *c, int status, void *data) {
  chat_t *ch = data;
  if (status < 0) {
    say(ch, "! login as %s failed: %s", tern_client_id(c), tern_err_name(status));
    ch->quitting = 1;
    uv_stop(&ch->loop);
    return;
  }
  ch->opened = 1;
  say(ch, "logged in as %s — /help for commands", tern_client_id(c));
  cmd_list(ch);
}

static void raw_mode(chat_t *ch) {
  if (!isatty(0) || tcgetattr(0, &ch->saved) != 0) return;
  struct termios t = ch->saved;
  t.c_lflag &= (tcflag_t) ~(ICANON | ECHO | ISIG);
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  if (tcsetattr(0, TCSANOW, &t) == 0) ch->tty = 1;
}

static void close_walk(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

int chat_main(const cli_opts_t *o) {
  chat_t *ch = calloc(1, sizeof *ch);
  if (!ch) return 1;
  ch->o = o;
  uv_loop_init(&ch->loop);
  tern_options_t to;
  cli_tern_options(o, &to);
  ch->t = tern_new(&to);
  if (!ch->t) {
    fprintf(stderr, "tern: bad --url or --app-id\n");
    uv_loop_close(&ch->loop);
    free(ch);
    return 2;
  }
  tern_uv_attach(ch->t, &ch->loop);
  tern_register_message_type(ch->t, CLI_TYPING_TYPE);
  ch->c = tern_client_get(ch->t, o->as, o->tag);
  if (!ch->c) {
    fprintf(stderr, "tern: bad client id\n");
    tern_free(ch->t);
    uv_run(&ch->loop, UV_RUN_DEFAULT);
    uv_loop_close(&ch->loop);
    free(ch);
    return 2;
  }
  tern_delegate_t d = {
      .on_message = on_message,
      .on_common_message = on_message,
      .on_members_added = on_added,
      .on_members_removed = on_removed,
      .on_invited = on_invited,
      .on_kicked = on_kicked,
      .on_unread = on_unread,
      .on_message_delivered = on_delivered,
      .on_conv_updated = on_updated,
      .on_paused = on_paused,
      .on_resumed = on_resumed,
      .on_offline = on_offline,
  };
  tern_client_set_delegate(ch->c, &d, ch);
  raw_mode(ch);
  printf("tern chat — %s as %s\n", o->url, o->as);
  fflush(stdout);
  /* a regular file or /dev/null cannot be polled: then the chat only shows what arrives */
  if (uv_poll_init(&ch->loop, &ch->in, 0) == 0) {
    ch->in.data = ch;
    uv_poll_start(&ch->in, UV_READABLE, on_input);
  } else {
    fprintf(stderr, "tern: stdin is not a terminal or pipe; showing incoming messages only (Ctrl-C quits)\n");
  }
  uv_signal_init(&ch->loop, &ch->sigint);
  ch->sigint.data = ch;
  uv_signal_start(&ch->sigint, on_sigint, SIGINT);
  int rc = tern_client_open(ch->c, NULL, opened_cb, ch);
  if (rc < 0) {
    fprintf(stderr, "tern: open: %s\n", tern_err_name(rc));
    ch->quitting = 1;
  } else {
    uv_run(&ch->loop, UV_RUN_DEFAULT);
  }
  if (ch->tty) tcsetattr(0, TCSANOW, &ch->saved);
  int ok = ch->opened;
  tern_free(ch->t);
  uv_walk(&ch->loop, close_walk, NULL);
  uv_run(&ch->loop, UV_RUN_DEFAULT);
  uv_loop_close(&ch->loop);
  free(ch);
  return ok ? 0 : 1;
}
