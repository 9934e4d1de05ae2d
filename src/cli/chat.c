/* chat.c — `tern chat`: an interactive terminal chat on libtern's async API and libuv.
 *
 * One loop runs both the terminal and the SDK (tern_uv_attach), so incoming messages
 * appear while you type: the input line (edit.c: cursor keys, history, UTF-8) is redrawn
 * under each printed line. The terminal is put in non-canonical mode so every keystroke is
 * seen; the first keystroke of a line in an open conversation sends a transient "typing"
 * message (custom type 100, at most every 3 s), which the other side shows as "… is typing".
 *
 * The open conversation is a view: its header, then its messages in time order. Older
 * pages (/more) go above what is shown, so the screen is drawn again from the top with
 * them in place; the first line says whether older messages remain, and once the
 * beginning is reached it says so, once. A message you send is shown when the server has
 * acknowledged it (with the server's time), or as not sent with the reason. Slash commands:
 *   /list  /open N|ID  /new NAME [ID…]  /more  /members  /add ID…  /remove ID…  /leave
 *   /login  /help  /quit
 * Without a terminal on stdin it reads lines, which is what scripts and tests pipe in, and
 * prints older pages where they arrive. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "edit.h"
#include "tern/uv.h"

#define MAX_LIST 64
#define PAGE 10
#define VIEW_MAX 2000 /* lines of the open conversation kept for redrawing it */
#define TYPING_EVERY_MS 3000

typedef struct {
  char **v;
  size_t n;
} lines_t;

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
  /* the view of cur */
  char header[1024];
  lines_t older; /* pages fetched, oldest first */
  lines_t live;  /* what was printed since it opened */
  char oldest_id[64];
  int64_t oldest_ts;
  int at_start; /* the oldest message is shown */
  int loading;  /* a page is on its way */
  edit_t ed;
  int tty;
  struct termios saved;
  int64_t last_typing;
  char typing_from[128]; /* who was last shown typing, and when: show it once per burst */
  int64_t typing_shown;
  int offline_code; /* the server ended the session (on_offline): /login opens it again */
  int quitting;
  int opened;
} chat_t;

typedef struct {
  chat_t *ch;
  char text[];
} pending_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A conversation's name, or its other members (cli_conv_label); a few can be in use at once. */
static const char *label(chat_t *ch, const tern_conv_t *c) {
  static char bufs[4][256];
  static int k;
  k = (k + 1) % 4;
  return cli_conv_label(c, tern_client_id(ch->c), bufs[k], sizeof bufs[k]);
}

static void lines_add(lines_t *l, const char *s) {
  if (l->n == VIEW_MAX) {
    free(l->v[0]);
    memmove(l->v, l->v + 1, (VIEW_MAX - 1) * sizeof *l->v);
    l->n--;
  }
  char **v = realloc(l->v, (l->n + 1) * sizeof *v);
  char *copy = strdup(s);
  if (!v || !copy) {
    free(copy);
    if (v) l->v = v;
    return;
  }
  l->v = v;
  l->v[l->n++] = copy;
}

static void lines_free(lines_t *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

static int term_cols(void) {
  struct winsize ws;
  return ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

static void redraw(chat_t *ch) {
  if (!ch->tty || ch->quitting) return;
  char prompt[300], out[EDIT_MAX * 2 + 400];
  snprintf(prompt, sizeof prompt, "%s> ", ch->cur ? label(ch, ch->cur) : "");
  edit_render(&ch->ed, prompt, term_cols(), out, sizeof out);
  fputs(out, stdout);
  fflush(stdout);
}

static const char *marker(const chat_t *ch) {
  return ch->at_start ? "— no older messages —" : "— /more for older messages —";
}

/* The whole view from the top of the screen: header, marker, older pages, what came since. */
static void redraw_view(chat_t *ch) {
  if (!ch->tty || ch->quitting) return;
  printf("\033[H\033[2J");
  if (ch->cur) {
    printf("%s\n%s\n", ch->header, marker(ch));
    for (size_t i = 0; i < ch->older.n; i++) printf("%s\n", ch->older.v[i]);
    for (size_t i = 0; i < ch->live.n; i++) printf("%s\n", ch->live.v[i]);
  }
  redraw(ch);
}

static void say(chat_t *ch, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(chat_t *ch, const char *fmt, ...) {
  char line[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (ch->cur) lines_add(&ch->live, line);
  if (ch->tty) printf("\r\033[K");
  printf("%s\n", line);
  redraw(ch);
  fflush(stdout);
}

static void clock_of(int64_t ms, char out[8]) {
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  localtime_r(&s, &tm);
  strftime(out, 8, "%H:%M", &tm);
}

static void format_msg(chat_t *ch, tern_conv_t *conv, const tern_msg_t *m, char *out, size_t n) {
  char *s = cli_msg_summary(m);
  char when[8];
  clock_of(tern_msg_timestamp(m) ? tern_msg_timestamp(m) : time(NULL) * 1000LL, when);
  if (conv == ch->cur) snprintf(out, n, "[%s] %s: %s", when, tern_msg_from(m), s ? s : "");
  else snprintf(out, n, "[%s] (%s) %s: %s", when, label(ch, conv), tern_msg_from(m), s ? s : "");
  free(s);
}

static void show_msg(chat_t *ch, tern_conv_t *conv, const tern_msg_t *m) {
  char line[4600];
  format_msg(ch, conv, m, line, sizeof line);
  say(ch, "%s", line);
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
          conv == ch->cur ? "" : label(ch, conv));
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
  say(data, "* %s %s %s (by %s)", list, what, label(data, conv), by ? by : "?");
}
static void on_added(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  on_members(c, v, ids, n, by, d, "joined");
}
static void on_removed(tern_client_t *c, tern_conv_t *v, const char *const *ids, size_t n, const char *by, void *d) {
  on_members(c, v, ids, n, by, d, "left");
}
static void fetched(tern_client_t *c, tern_conv_t *conv, int status, void *data) {
  if (status == 0 && conv) say(data, "* %s is \"%s\"", tern_conv_id(conv), label(data, conv));
}

static void on_invited(tern_client_t *c, tern_conv_t *v, const char *by, void *d) {
  say(d, "* you are in %s (added by %s)", label(d, v), by ? by : "?");
  if (!tern_conv_name(v)) { /* a notification carries only the id: learn the name */
    tern_query_t *q = tern_query_new(c);
    tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
    tern_query_get(q, tern_conv_id(v), fetched, d);
    tern_query_free(q);
  }
}
static void on_kicked(tern_client_t *c, tern_conv_t *v, const char *by, void *d) {
  chat_t *ch = d;
  say(ch, "* you left %s (by %s)", label(ch, v), by ? by : "?");
  if (ch->cur == v) {
    ch->cur = NULL;
    redraw(ch);
  }
}
static void on_unread(tern_client_t *c, tern_conv_t *v, int n, void *d) {
  if (n > 0) say(d, "* %s: %d unread", label(d, v), n);
}
static void on_delivered(tern_client_t *c, tern_conv_t *v, const tern_msg_t *m, void *d) {
  say(d, "* delivered %s", tern_msg_id(m));
}
static void on_updated(tern_client_t *c, tern_conv_t *v, const char *attr, const char *by, void *d) {
  say(d, "* %s updated by %s: %s", label(d, v), by ? by : "?", attr);
}
static void on_paused(tern_client_t *c, void *d) { say(d, "* connection lost, reconnecting…"); }
static void on_resumed(tern_client_t *c, void *d) { say(d, "* back online"); }
static void on_offline(tern_client_t *c, int err, void *d) {
  chat_t *ch = d;
  ch->offline_code = TERN_ERR_CODE(err);
  say(ch, "* logged out by the server: %s (%d) — /login logs in again", tern_err_name(err), TERN_ERR_CODE(err));
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
    say(ch, "%2zu) %s [%s]%s", i + 1, label(ch, convs[i]), members, unread > 0 ? " (unread)" : "");
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

/* A page of history, the first one or an older one: it goes above everything shown. */
static void history_cb(tern_conv_t *conv, const tern_msg_t *const *msgs, size_t n, int from_cache, int status,
                       void *data) {
  chat_t *ch = data;
  if (conv != ch->cur) return;
  int first = ch->older.n == 0 && !ch->oldest_id[0];
  ch->loading = 0;
  if (status < 0) {
    say(ch, "! history: %s", tern_err_name(status));
    return;
  }
  lines_t page = {0};
  for (size_t i = 0; i < n; i++) {
    if (tern_msg_type(msgs[i]) == CLI_TYPING_TYPE) continue;
    char line[4600];
    format_msg(ch, conv, msgs[i], line, sizeof line);
    lines_add(&page, line);
  }
  if (n) {
    snprintf(ch->oldest_id, sizeof ch->oldest_id, "%s", tern_msg_id(msgs[0]) ? tern_msg_id(msgs[0]) : "");
    ch->oldest_ts = tern_msg_timestamp(msgs[0]);
  }
  int was_at_start = ch->at_start;
  if (n < PAGE) ch->at_start = 1; /* fewer than asked for: nothing older */
  if (!ch->tty) {                 /* a pipe: where they arrive, in time order */
    if (!first && page.n) printf("— %zu older message%s —\n", page.n, page.n == 1 ? "" : "s");
    for (size_t i = 0; i < page.n; i++) printf("%s\n", page.v[i]);
    if (ch->at_start && !was_at_start) printf("%s\n", marker(ch));
    fflush(stdout);
  }
  /* older = page + older */
  char **v = realloc(page.v, (page.n + ch->older.n + 1) * sizeof *v);
  if (v) {
    if (ch->older.n) memcpy(v + page.n, ch->older.v, ch->older.n * sizeof *v);
    free(ch->older.v);
    ch->older.v = v;
    ch->older.n += page.n;
  } else {
    lines_free(&page);
  }
  redraw_view(ch);
}

static void more(chat_t *ch) {
  if (ch->loading) return;
  if (ch->at_start) { /* said once already: the top of the view says it */
    redraw_view(ch);
    return;
  }
  ch->loading = 1;
  int rc = ch->oldest_id[0]
               ? tern_conv_query_messages_before(ch->cur, ch->oldest_id, ch->oldest_ts, PAGE, history_cb, ch)
               : tern_conv_query_messages(ch->cur, PAGE, history_cb, ch);
  if (rc < 0) {
    ch->loading = 0;
    say(ch, "! history: %s", tern_err_name(rc));
  }
}

static void open_conv(chat_t *ch, tern_conv_t *conv) {
  ch->cur = conv;
  ch->oldest_id[0] = 0;
  ch->oldest_ts = 0;
  ch->at_start = 0;
  ch->loading = 0;
  lines_free(&ch->older);
  lines_free(&ch->live);
  size_t n;
  const char *const *m = tern_conv_members(conv, &n);
  char members[512] = "";
  for (size_t k = 0; k < n; k++) {
    if (k) strncat(members, ", ", sizeof members - strlen(members) - 1);
    strncat(members, m[k], sizeof members - strlen(members) - 1);
  }
  snprintf(ch->header, sizeof ch->header, "== %s (%s) [%s] ==", label(ch, conv), tern_conv_id(conv), members);
  if (ch->tty) {
    redraw_view(ch);
  } else {
    printf("%s\n", ch->header);
    fflush(stdout);
  }
  more(ch);
  tern_conv_read(conv);
}

static void got_conv(tern_client_t *c, tern_conv_t *conv, int status, void *data) {
  chat_t *ch = data;
  if (status < 0 || !conv) say(ch, "! %s", tern_err_name(status));
  else open_conv(ch, conv);
}

static void done_cb(tern_conv_t *conv, int status, void *data) {
  chat_t *ch = data;
  if (status < 0) say(ch, "! %s", tern_err_name(status));
}

/* A message is shown once the server has it: with its time, or as not sent. */
static void sent_cb(tern_conv_t *conv, const tern_msg_t *sent, int status, void *data) {
  pending_t *p = data;
  chat_t *ch = p->ch;
  if (!ch->quitting) {
    if (status < 0)
      say(ch, "! not sent (%s, %d): %s", tern_err_name(status),
          TERN_ERR_IS_SERVER(status) ? TERN_ERR_CODE(status) : status, p->text);
    else if (sent) show_msg(ch, conv, sent);
  }
  free(p);
}

static char **split_words(char *s, size_t *n) {
  size_t cap = 8;
  char **v = calloc(cap, sizeof *v);
  *n = 0;
  if (!v) return NULL;
  for (char *save = NULL, *w = strtok_r(s, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
    if (*n == cap) {
      char **nv = realloc(v, (cap *= 2) * sizeof *v);
      if (!nv) break;
      v = nv;
    }
    v[(*n)++] = w;
  }
  return v;
}

static void help(chat_t *ch) {
  say(ch, "/list            your conversations        /open N|ID   open one (shows recent history)");
  say(ch, "/new NAME ID…    create and open           /more        older history, above");
  say(ch, "/members         who is in it              /add ID…     /remove ID…   /leave");
  say(ch, "/login           log in again after the server logged you out");
  say(ch, "/quit            leave tern chat           anything else is sent to the open conversation");
  say(ch, "keys: ←/→ Home/End edit the line, ↑/↓ earlier lines, Ctrl-U/K/W delete, Ctrl-L redraw");
}

static void shutdown_chat(chat_t *ch);
static void opened_cb(tern_client_t *c, int status, void *data);

static void login(chat_t *ch) {
  tern_client_status_t st = tern_client_status(ch->c);
  if (st != TERN_CLIENT_CLOSED) {
    say(ch, "! already logged in as %s", tern_client_id(ch->c));
    return;
  }
  /* after another device took the tag (4111), logging in here takes it back */
  tern_open_options_t opt = {.force = ch->offline_code == 4111};
  int rc = tern_client_open(ch->c, &opt, opened_cb, ch);
  if (rc < 0) say(ch, "! login: %s", tern_err_name(rc));
}

static void command(chat_t *ch, char *line) {
  size_t n;
  char **w = split_words(line + 1, &n);
  if (!w) return;
  const char *cmd = n ? w[0] : "";
  int rc = 0;
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "h") == 0) help(ch);
  else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "ls") == 0) cmd_list(ch);
  else if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0 || strcmp(cmd, "q") == 0) shutdown_chat(ch);
  else if (strcmp(cmd, "login") == 0) login(ch);
  else if (strcmp(cmd, "open") == 0 && n != 2) say(ch, "usage: /open N|ID — a number from /list, or a conversation id");
  else if (strcmp(cmd, "open") == 0) {
    char *end;
    /* n == 2: split_words filled w[0] and w[1] (the analyzer loses count through strtok_r) */
    long k = strtol(w[1], &end, 10); // NOLINT(clang-analyzer-core.NonNullParamChecker)
    if (!*end && k >= 1 && (size_t)k <= ch->nlist) open_conv(ch, ch->list[k - 1]);
    else {
      tern_query_t *q = tern_query_new(ch->c);
      tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
      rc = tern_query_get(q, w[1], got_conv, ch);
      tern_query_free(q);
    }
  } else if (strcmp(cmd, "new") == 0 && n < 2) {
    say(ch, "usage: /new NAME [ID…] — create a conversation called NAME with you and the IDs, and open it");
  } else if (strcmp(cmd, "new") == 0) {
    rc = tern_client_create_conv(ch->c, w[1], (const char *const *)w + 2, n - 2, NULL, 0, got_conv, ch);
  } else if (!ch->cur && (strcmp(cmd, "more") == 0 || strcmp(cmd, "members") == 0 || strcmp(cmd, "add") == 0 ||
                          strcmp(cmd, "remove") == 0 || strcmp(cmd, "leave") == 0)) {
    say(ch, "! open a conversation first (/list, /open N)");
  } else if (strcmp(cmd, "more") == 0) {
    more(ch);
  } else if (strcmp(cmd, "members") == 0) {
    size_t nm;
    const char *const *m = tern_conv_members(ch->cur, &nm);
    for (size_t i = 0; i < nm; i++) say(ch, "  %s", m[i]);
  } else if ((strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0) && n < 2) {
    say(ch, "usage: /%s ID…", cmd);
  } else if (strcmp(cmd, "add") == 0) {
    rc = tern_conv_add_members(ch->cur, (const char *const *)w + 1, n - 1, done_cb, ch);
  } else if (strcmp(cmd, "remove") == 0) {
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
  char line[EDIT_MAX];
  snprintf(line, sizeof line, "%s", ch->ed.buf);
  edit_history_add(&ch->ed, line);
  edit_clear(&ch->ed);
  char *l = line;
  while (*l == ' ') l++;
  if (ch->tty) printf("\r\033[K");
  if (!*l) {
    redraw(ch);
    return;
  }
  if (l[0] == '/') {
    redraw(ch);
    command(ch, l);
    return;
  }
  if (!ch->cur) {
    say(ch, "! open a conversation first (/list, /open N, /new NAME ID…)");
    return;
  }
  size_t len = strlen(l);
  pending_t *p = malloc(sizeof *p + len + 1);
  tern_msg_t *m = p ? tern_msg_new_text(l, NULL) : NULL;
  int rc = TERN_ENOMEM;
  if (m) {
    p->ch = ch;
    memcpy(p->text, l, len + 1);
    rc = tern_conv_send(ch->cur, m, 0, sent_cb, p);
  }
  tern_msg_free(m);
  if (rc < 0) {
    free(p);
    say(ch, "! not sent (%s): %s", tern_err_name(rc), l);
  } else {
    redraw(ch);
  }
}

static void typing(chat_t *ch) {
  if (!ch->cur || ch->ed.buf[0] == '/') return;
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
  int dirty = 0;
  for (ssize_t i = 0; i < n && !ch->quitting; i++) {
    size_t before = ch->ed.len;
    switch (edit_key(&ch->ed, (unsigned char)buf[i])) {
    case EDIT_SUBMIT:
      submit(ch);
      dirty = 0;
      break;
    case EDIT_EOF:
    case EDIT_INTERRUPT: shutdown_chat(ch); break;
    case EDIT_REDRAW: redraw_view(ch); break;
    case EDIT_CHANGED:
      dirty = 1;
      if (before == 0 && ch->ed.len > 0) typing(ch); /* the first keystroke of a line */
      break;
    default: break;
    }
  }
  if (dirty) redraw(ch);
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
  if (status == TERN_ECANCELED && ch->quitting) return; /* /quit or end of input while logging in */
  if (status < 0 && !ch->opened) {                      /* the first login: nothing to chat on */
    if (ch->tty) printf("\r\033[K");
    fflush(stdout);
    cli_connect_failed(ch->o, status);
    ch->quitting = 1;
    uv_stop(&ch->loop);
    return;
  }
  if (status < 0) {
    say(ch, "! login as %s at %s failed: %s (%s)", tern_client_id(c), ch->o->url, tern_strerror(status),
        tern_err_name(status));
    return;
  }
  ch->offline_code = 0;
  say(ch, "logged in as %s — /help for commands", tern_client_id(c));
  if (!ch->opened) cmd_list(ch);
  ch->opened = 1;
}

static void raw_mode(chat_t *ch) {
  if (!isatty(0) || tcgetattr(0, &ch->saved) != 0) return;
  struct termios t = ch->saved;
  t.c_lflag &= (tcflag_t) ~(ICANON | ECHO | ISIG);
  t.c_iflag &= (tcflag_t) ~(IXON | ICRNL);
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
  edit_init(&ch->ed);
  uv_loop_init(&ch->loop);
  tern_options_t to;
  cli_tern_options(o, &to);
  ch->t = tern_new(&to);
  if (!ch->t) {
    fprintf(stderr, "tern: cannot use --url %s with --app-id %s\n", o->url, o->app_id);
    uv_loop_close(&ch->loop);
    free(ch);
    return 2;
  }
  tern_uv_attach(ch->t, &ch->loop);
  tern_register_message_type(ch->t, CLI_TYPING_TYPE);
  ch->c = tern_client_get(ch->t, o->as, o->tag);
  if (!ch->c) {
    fprintf(stderr, "tern: bad client id \"%s\"\n", o->as);
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
  ch->quitting = 1; /* what tern_free cancels is not said any more */
  tern_free(ch->t);
  uv_walk(&ch->loop, close_walk, NULL);
  uv_run(&ch->loop, UV_RUN_DEFAULT);
  uv_loop_close(&ch->loop);
  lines_free(&ch->older);
  lines_free(&ch->live);
  edit_free(&ch->ed);
  free(ch);
  return ok ? 0 : 1;
}
