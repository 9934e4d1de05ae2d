/* sdk_fake.c — libtern driven against the scripted fake server of
 * tests/integration/sdk-frames.test.mjs, which checks every frame the SDK sends.
 *
 * The program performs one fixed script and prints what the SDK reported, one line per
 * event ("opened", "paused", "resuming", "delivered m1", "offline 4111" …), flushed at once
 * so the Node side can correlate them with the frames it saw. Env: TERN_URL, TERN_APP_ID;
 * TERN_PING_MS sets the echo period. Exit 0 = the script ran to its end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/sync.h"
#include "tern/tern.h"

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
}

#define CHECK(cond, ...)                                                                                               \
  do {                                                                                                                 \
    if (!(cond)) {                                                                                                     \
      fprintf(stderr, "%s:%d: CHECK(%s): ", __FILE__, __LINE__, #cond);                                                \
      fprintf(stderr, __VA_ARGS__);                                                                                    \
      fprintf(stderr, "\n");                                                                                           \
      exit(1);                                                                                                         \
    }                                                                                                                  \
  } while (0)

static void on_message(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *d) {
  say("message %s %s", tern_msg_id(m), tern_msg_text(m) ? tern_msg_text(m) : "");
}
static int delivered_seen, unread_seen, opened_seen;
static void on_delivered(tern_client_t *c, tern_conv_t *conv, const tern_msg_t *m, void *d) {
  delivered_seen = 1;
  say("delivered %s", tern_msg_id(m));
}
static void on_paused(tern_client_t *c, void *d) { say("paused"); }
static void on_resuming(tern_client_t *c, void *d) { say("resuming"); }
static int resumed_seen, offline_seen;
static void on_resumed(tern_client_t *c, void *d) {
  resumed_seen = 1;
  say("resumed");
}
static void on_offline(tern_client_t *c, int err, void *d) {
  offline_seen = 1;
  say("offline %d", TERN_ERR_CODE(err));
}
static void on_unread(tern_client_t *c, tern_conv_t *conv, int n, void *d) {
  unread_seen = 1;
  say("unread %s %d", tern_conv_id(conv), n);
}
/* printed from the callback: a push read in the same chunk as the reply comes after it */
static void on_opened(tern_client_t *c, int status, void *d) {
  opened_seen = 1;
  if (status == 0) say("opened");
  else say("open failed %d", status);
}

static void wait_flag(tern_t *t, const int *flag, const char *what) {
  if (tern_sync_until(t, flag, 10000) != 0) {
    fprintf(stderr, "no %s\n", what);
    exit(1);
  }
}

static int sign(tern_client_t *c, const char *cid, const char *action, const char *const *ids, size_t n,
                tern_signature_t *out, void *data) {
  snprintf(out->signature, sizeof out->signature, "sig-%s", action);
  snprintf(out->nonce, sizeof out->nonce, "nonce-%s", action);
  out->timestamp = 1700000000;
  return 0;
}

static void log_cb(void *data, int level, const char *line) {
  if (getenv("TERN_TEST_VERBOSE")) fprintf(stderr, "libtern: %s\n", line);
}

/* `sdk_fake watchdog`: a server that goes silent is dropped after watchdog_ms, and the
 * client comes back on a new connection. */
static int watchdog_main(void) {
  tern_options_t o;
  tern_options_init(&o);
  o.url = getenv("TERN_URL");
  o.app_id = getenv("TERN_APP_ID");
  o.ping_interval_ms = 200;
  o.watchdog_ms = 700;
  o.reconnect_initial_ms = 100;
  o.log_cb = log_cb;
  o.log_level = TERN_LOG_DEBUG;
  tern_t *t = tern_sync_new(&o);
  CHECK(t, "tern_sync_new");
  tern_client_t *c = tern_client_get(t, "Tom", NULL);
  tern_delegate_t d = {.on_paused = on_paused, .on_resuming = on_resuming, .on_resumed = on_resumed};
  tern_client_set_delegate(c, &d, NULL);
  int rc = tern_sync_open(c, NULL);
  CHECK(rc == 0, "open: %s", tern_err_name(rc));
  say("opened");
  wait_flag(t, &resumed_seen, "resumed");
  tern_free(t);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "watchdog") == 0) return watchdog_main();
  tern_options_t o;
  tern_options_init(&o);
  CHECK(o.reconnect_initial_ms == 1000 && o.reconnect_max_ms == 300000 && o.ping_interval_ms == 180000,
        "JS SDK defaults");
  o.url = getenv("TERN_URL");
  o.app_id = getenv("TERN_APP_ID");
  o.ping_interval_ms = getenv("TERN_PING_MS") ? atoi(getenv("TERN_PING_MS")) : 180000;
  o.log_cb = log_cb;
  o.log_level = TERN_LOG_DEBUG;
  tern_t *t = tern_sync_new(&o);
  CHECK(t, "tern_sync_new");
  tern_client_t *c = tern_client_get(t, "Tom", "Mobile");
  tern_delegate_t d = {.on_message = on_message,
                       .on_message_delivered = on_delivered,
                       .on_paused = on_paused,
                       .on_resuming = on_resuming,
                       .on_resumed = on_resumed,
                       .on_offline = on_offline,
                       .on_unread = on_unread};
  tern_client_set_delegate(c, &d, NULL);
  tern_client_set_signature_cb(c, sign, NULL);

  /* 1. login (signed, tagged), then the unread push that follows it */
  int rc = tern_client_open(c, NULL, on_opened, NULL);
  CHECK(rc == 0, "open: %s", tern_err_name(rc));
  wait_flag(t, &opened_seen, "login");
  wait_flag(t, &unread_seen, "unread");

  /* 2. create, 3. send with receipt */
  const char *jerry[] = {"Jerry"};
  tern_conv_t *conv;
  rc = tern_sync_create_conv(c, "n", jerry, 1, "{\"a\":1}", TERN_CONV_UNIQUE, &conv);
  CHECK(rc == 0, "create: %s", tern_err_name(rc));
  say("created %s", tern_conv_id(conv));
  tern_msg_t *m = tern_msg_new_text("hi", NULL), *sent = NULL;
  rc = tern_sync_send(conv, m, TERN_SEND_RECEIPT, &sent);
  CHECK(rc == 0, "send: %s", tern_err_name(rc));
  say("sent %s", tern_msg_id(sent));
  tern_msg_free(sent);
  /* a transient typing message */
  rc = tern_sync_send(conv, m, TERN_SEND_TRANSIENT, NULL);
  CHECK(rc == 0, "transient: %s", tern_err_name(rc));
  tern_msg_free(m);
  /* 4. an incoming message (acked by the SDK), 5. the receipt */
  wait_flag(t, &delivered_seen, "receipt");
  /* history and a query, as frames */
  tern_msg_t **msgs;
  size_t n;
  rc = tern_sync_history(conv, "m0", 1700000000000, 5, &msgs, &n, NULL);
  CHECK(rc == 0 && n == 1, "history: %s %zu", tern_err_name(rc), n);
  tern_sync_msgs_free(msgs, n);
  tern_query_t *q = tern_query_new(c);
  tern_query_where_str(q, TERN_ATTR("topic"), TERN_EQ, "movie");
  tern_query_where_int(q, TERN_ATTR("age"), TERN_GT, 18);
  tern_query_set_limit(q, 20);
  tern_conv_t **res;
  rc = tern_sync_find(q, &res, &n);
  CHECK(rc == 0 && n == 1, "query: %s", tern_err_name(rc));
  free(res);
  tern_query_free(q);
  tern_update_t *u = tern_update_new();
  tern_update_set_attr(u, "type", "\"public\"");
  tern_update_remove_attr(u, "old");
  rc = tern_sync_update(conv, u);
  CHECK(rc == 0, "update: %s", tern_err_name(rc));
  tern_update_free(u);
  CHECK(tern_conv_read(conv) == 0, "read");
  say("ops done");

  /* 6. keepalive echo, then 7. the server drops the TCP connection: paused, backoff,
   *    resuming …, resumed after a re-login with r:true and st */
  for (int i = 0; i < 30000 && !resumed_seen; i += 20) tern_sync_wait(t, 20);
  CHECK(resumed_seen, "resumed");
  /* 8. another device logs in with the same tag: offline 4111 */
  for (int i = 0; i < 10000 && !offline_seen; i += 20) tern_sync_wait(t, 20);
  CHECK(offline_seen, "offline");
  CHECK(tern_client_status(c) == TERN_CLIENT_CLOSED, "closed after the conflict");
  rc = tern_sync_open(c, NULL); /* not forced: the server refuses (r:true) */
  say("reopen %d", TERN_ERR_CODE(rc));
  tern_open_options_t force = {.force = 1};
  rc = tern_sync_open(c, &force);
  CHECK(rc == 0, "forced open: %s", tern_err_name(rc));
  say("forced open");
  /* 9. close */
  rc = tern_sync_close(c);
  CHECK(rc == 0, "close: %s", tern_err_name(rc));
  say("closed");
  tern_free(t);
  return 0;
}
