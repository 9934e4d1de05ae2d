/* harness.h — a tiny scenario harness for libtern tests against a real ternd.
 *
 * Each simulated user is its own tern_t made with tern_sync_new() (its own socket and
 * private loop), so the test code reads top to bottom like the guide's examples. Delegate
 * callbacks append events ("invited by Tom-…", "message -1 hello") to the user's log;
 * expect() runs that user's loop until the next event arrives and checks it, which is how
 * the tests assert both what the delegate saw and in which order. Client ids get a random
 * suffix so scenarios sharing one server never meet. Env: TERN_URL, TERN_APP_ID. */
#ifndef TERN_TEST_HARNESS_H
#define TERN_TEST_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "tern/sync.h"
#include "tern/tern.h"

#define MAX_EVENTS 512

typedef struct user {
  char id[160];
  tern_t *t;
  tern_client_t *c;
  char *ev[MAX_EVENTS];
  int nev, cursor;
  tern_msg_t *last_msg; /* the last message the delegate saw (a copy) */
  tern_conv_t *last_conv;
} user_t;

static char run_suffix[16];

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, "\n");                                                                                           \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)
#define CHECK_RC(expr)                                                                                                 \
  do {                                                                                                                 \
    int rc_ = (expr);                                                                                                  \
    CHECK(rc_ == 0, "%s returned %d %s", #expr, rc_, tern_err_name(rc_));                                              \
  } while (0)
#define CHECK_STR(a, b)                                                                                                \
  do {                                                                                                                 \
    const char *a_ = (a), *b_ = (b);                                                                                   \
    CHECK(a_ &&b_ &&strcmp(a_, b_) == 0, "%s = \"%s\", want \"%s\"", #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");      \
  } while (0)

static void ev_add(user_t *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev_add(user_t *u, const char *fmt, ...) {
  if (u->nev >= MAX_EVENTS) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  u->ev[u->nev++] = strdup(line);
  if (getenv("TERN_TEST_VERBOSE")) fprintf(stderr, "[%s] %s\n", u->id, line);
}

static void join_ids(char *out, size_t cap, const char *const *ids, size_t n) {
  out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (i) strncat(out, ",", cap - strlen(out) - 1);
    strncat(out, ids[i], cap - strlen(out) - 1);
  }
}

static void keep_msg(user_t *u, tern_conv_t *conv, const tern_msg_t *m) {
  tern_msg_free(u->last_msg);
  u->last_msg = tern_msg_dup(m);
  u->last_conv = conv;
}

static void d_message(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  user_t *u = data;
  keep_msg(u, conv, m);
  ev_add(u, "message %d %s%s", tern_msg_type(m), tern_msg_text(m) ? tern_msg_text(m) : "",
         tern_msg_is_transient(m) ? " (transient)" : "");
}
static void d_common(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  user_t *u = data;
  keep_msg(u, conv, m);
  ev_add(u, "common %s", tern_msg_content(m));
}
static void d_added(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by, void *data) {
  char s[1024];
  join_ids(s, sizeof s, ids, n);
  ev_add(data, "added %s by %s", s, by ? by : "?");
}
static void d_removed(tern_client_t *c, tern_conv_t *conv, const char *const *ids, size_t n, const char *by,
                      void *data) {
  char s[1024];
  join_ids(s, sizeof s, ids, n);
  ev_add(data, "removed %s by %s", s, by ? by : "?");
}
static void d_invited(tern_client_t *c, tern_conv_t *conv, const char *by, void *data) {
  user_t *u = data;
  u->last_conv = conv;
  ev_add(u, "invited by %s", by ? by : "?");
}
static void d_kicked(tern_client_t *c, tern_conv_t *conv, const char *by, void *data) {
  ev_add(data, "kicked by %s", by ? by : "?");
}
static void d_delivered(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *data) {
  user_t *u = data;
  keep_msg(u, conv, m);
  ev_add(u, "delivered %s", tern_msg_id(m) ? tern_msg_id(m) : "?");
}
static void d_unread(tern_client_t *c, tern_conv_t *conv, int n, void *data) {
  user_t *u = data;
  u->last_conv = conv;
  ev_add(u, "unread %d", n);
}
static void d_updated(tern_client_t *c, tern_conv_t *conv, const char *attr, const char *by, void *data) {
  ev_add(data, "updated %s by %s", attr, by ? by : "?");
}
static void d_paused(tern_client_t *c, void *data) { ev_add(data, "paused"); }
static void d_resuming(tern_client_t *c, void *data) { ev_add(data, "resuming"); }
static void d_resumed(tern_client_t *c, void *data) { ev_add(data, "resumed"); }
static void d_offline(tern_client_t *c, int err, void *data) { ev_add(data, "offline %d", TERN_ERR_CODE(err)); }

static const tern_delegate_t recorder = {
    .on_message = d_message,
    .on_common_message = d_common,
    .on_members_added = d_added,
    .on_members_removed = d_removed,
    .on_invited = d_invited,
    .on_kicked = d_kicked,
    .on_message_delivered = d_delivered,
    .on_unread = d_unread,
    .on_conv_updated = d_updated,
    .on_paused = d_paused,
    .on_resuming = d_resuming,
    .on_resumed = d_resumed,
    .on_offline = d_offline,
};

static void log_to_stderr(void *data, int level, const char *line) {
  fprintf(stderr, "  libtern[%s] %s\n", (const char *)data, line);
}

static const char *env_or(const char *k, const char *d) {
  const char *v = getenv(k);
  return v && *v ? v : d;
}

/* A user with a fresh tern_t; opts_fn may adjust options (push_offline, cache_dir …). */
static user_t *user_new_opts(const char *name, const char *tag, void (*opts_fn)(tern_options_t *)) {
  if (!run_suffix[0]) {
    /* From the kernel, not srand(time ^ pid): two scenarios started a second and a few pids
     * apart could get the same seed (the XOR of the two times equals that of the two pids),
     * so the same ids, and one met the other's unread messages at login. */
    unsigned char r[4];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) abort();
    snprintf(run_suffix, sizeof run_suffix, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
  }
  user_t *u = calloc(1, sizeof *u);
  snprintf(u->id, sizeof u->id, "%s-%s", name, run_suffix);
  tern_options_t o;
  tern_options_init(&o);
  o.url = env_or("TERN_URL", "ws://127.0.0.1:8080/");
  o.app_id = env_or("TERN_APP_ID", "app");
  o.app_key = getenv("TERN_APP_KEY");
  o.files_url = getenv("TERN_FILES_URL");
  o.command_timeout_ms = 8000;
  if (getenv("TERN_TEST_VERBOSE")) {
    o.log_cb = log_to_stderr;
    o.log_data = u->id;
    o.log_level = TERN_LOG_DEBUG;
  }
  if (opts_fn) opts_fn(&o);
  u->t = tern_sync_new(&o);
  CHECK(u->t, "tern_sync_new");
  u->c = tern_client_get(u->t, u->id, tag);
  CHECK(u->c, "tern_client_get");
  tern_client_set_delegate(u->c, &recorder, u);
  return u;
}
static user_t *user_new(const char *name) { return user_new_opts(name, NULL, NULL); }

static user_t *user_open(const char *name) {
  user_t *u = user_new(name);
  CHECK_RC(tern_sync_open(u->c, NULL));
  return u;
}

static void user_free(user_t *u) {
  tern_free(u->t);
  for (int i = 0; i < u->nev; i++) free(u->ev[i]);
  tern_msg_free(u->last_msg);
  free(u);
}

static void dump(user_t *u) {
  fprintf(stderr, "events of %s (cursor %d):\n", u->id, u->cursor);
  for (int i = 0; i < u->nev; i++) fprintf(stderr, "  %c %s\n", i == u->cursor ? '>' : ' ', u->ev[i]);
}

/* Runs u's loop until its next event, which must start with `want`. Returns it. */
static const char *expect_(user_t *u, const char *want, const char *file, int line) {
  for (int waited = 0; u->cursor >= u->nev && waited < 8000; waited += 20) tern_sync_wait(u->t, 20);
  if (u->cursor >= u->nev) {
    dump(u);
    fprintf(stderr, "%s:%d: %s: no event, wanted \"%s\"\n", file, line, u->id, want);
    exit(1);
  }
  const char *e = u->ev[u->cursor];
  if (strncmp(e, want, strlen(want)) != 0) {
    dump(u);
    fprintf(stderr, "%s:%d: %s: event \"%s\", wanted \"%s\"\n", file, line, u->id, e, want);
    exit(1);
  }
  u->cursor++;
  return e;
}
#define expect(u, ...)                                                                                                 \
  ({                                                                                                                   \
    char want_[1024];                                                                                                  \
    snprintf(want_, sizeof want_, __VA_ARGS__);                                                                        \
    expect_((u), want_, __FILE__, __LINE__);                                                                           \
  })

/* Nothing more arrives for u within ms. */
static void expect_quiet_(user_t *u, int ms, const char *file, int line) {
  tern_sync_wait(u->t, ms);
  if (u->cursor < u->nev) {
    dump(u);
    fprintf(stderr, "%s:%d: %s: unexpected event \"%s\"\n", file, line, u->id, u->ev[u->cursor]);
    exit(1);
  }
}
#define expect_quiet(u, ms) expect_quiet_((u), (ms), __FILE__, __LINE__)

#endif
