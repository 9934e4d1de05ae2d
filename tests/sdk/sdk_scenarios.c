/* sdk_scenarios.c — libtern against a real ternd, one scenario per row of docs/sdk.md.
 *
 * Run as `sdk_scenarios <name>` with TERN_URL and TERN_APP_ID set (tests/integration/
 * sdk.test.mjs starts the server and runs every scenario). Each scenario follows the iOS
 * guide's example for that API, asserts the outcome and the delegate callbacks in order,
 * and frees everything, so ASan/LSan also check the SDK's memory. Exit 0 = pass. */
#include <math.h>

#include "crypto.h"
#include "harness.h"

/* ---- client ---- */

static int log_lines;
static char first_log[256];
static void count_log(void *data, int level, const char *line) {
  if (!log_lines++) snprintf(first_log, sizeof first_log, "%s", line);
}
static void with_log(tern_options_t *o) {
  o->log_cb = count_log;
  o->log_level = TERN_LOG_INFO;
}

typedef struct {
  int open_status, closed;
} res2_t;
static void rec_open(tern_client_t *c, int status, void *data) { ((res2_t *)data)->open_status = status; }
static void rec_close(tern_client_t *c, int status, void *data) { ((res2_t *)data)->closed = 1; }

static void sc_client(void) {
  user_t *tom = user_new_opts("Tom", NULL, with_log);
  /* same id → same instance; the tag of the first call stays */
  CHECK(tern_client_get(tom->t, tom->id, "Mobile") == tom->c, "same id must give the same client");
  CHECK(tern_client_tag(tom->c) == NULL, "tag of the first call wins");
  CHECK(tern_client_get(tom->t, "", NULL) == NULL, "empty id refused");
  char longid[80];
  memset(longid, 'x', 65);
  longid[65] = 0;
  CHECK(tern_client_get(tom->t, longid, NULL) == NULL, "65 chars refused");
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_CLOSED, "new client is closed");
  CHECK_RC(tern_sync_open(tom->c, NULL));
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_OPEN, "open");
  CHECK(tern_client_open(tom->c, NULL, NULL, NULL) == TERN_EINVAL, "second open refused");
  CHECK_RC(tern_sync_close(tom->c));
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_CLOSED, "closed");
  /* open again, with options and a tag, on another client of the same connection */
  tern_open_options_t opt = {.force = 1};
  CHECK_RC(tern_sync_open(tom->c, &opt));
  char other[200];
  snprintf(other, sizeof other, "%s-tablet", tom->id);
  tern_client_t *tablet = tern_client_get(tom->t, other, "Tablet");
  CHECK_STR(tern_client_tag(tablet), "Tablet");
  CHECK_RC(tern_sync_open(tablet, NULL));
  CHECK(tern_client_status(tablet) == TERN_CLIENT_OPEN && tern_client_status(tom->c) == TERN_CLIENT_OPEN, "both");
  CHECK_RC(tern_sync_close(tablet));
  CHECK_RC(tern_sync_close(tom->c));
  CHECK(tern_conv_send(NULL, NULL, 0, NULL, NULL) == TERN_EINVAL, "einval");
  /* closing while the login is in flight cancels it; the callbacks come from the loop */
  res2_t r2 = {.open_status = 99};
  CHECK_RC(tern_client_open(tom->c, NULL, rec_open, &r2));
  CHECK_RC(tern_client_close(tom->c, rec_close, &r2));
  CHECK(r2.open_status == 99 && !r2.closed, "no callback inside the call");
  CHECK_RC(tern_sync_until(tom->t, &r2.closed, 5000));
  CHECK(r2.open_status == TERN_ECANCELED, "open canceled: %d", r2.open_status);
  tern_sync_wait(tom->t, 200); /* the late login reply is undone, not resurrected */
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_CLOSED, "stays closed");
  CHECK_RC(tern_sync_open(tom->c, NULL));
  CHECK_RC(tern_sync_close(tom->c));
  /* the SDK never prints: it logs through the callback */
  CHECK(log_lines > 0 && strncmp(first_log, "connecting to ", 14) == 0, "log callback: %d \"%s\"", log_lines,
        first_log);
  user_free(tom);
}

/* 单聊: Tom creates a conversation with Jerry and sends a text; Jerry receives it. */
static void sc_single_chat(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  const char *members[] = {jerry->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "猫和老鼠", members, 1, NULL, TERN_CONV_NONE, &conv));
  CHECK_STR(tern_conv_name(conv), "猫和老鼠");
  CHECK_STR(tern_conv_creator(conv), tom->id);
  size_t n;
  const char *const *m = tern_conv_members(conv, &n);
  CHECK(n == 2, "2 members, got %zu", n);
  CHECK(tern_conv_created_at(conv) > 0, "created at");
  /* the delegate, in order: invited (by the creator), then membersAdded */
  char both[256];
  snprintf(both, sizeof both, "%s,%s", m[0], m[1]);
  expect(tom, "invited by %s", tom->id);
  expect(tom, "added %s by %s", both, tom->id);
  expect(jerry, "invited by %s", tom->id);
  expect(jerry, "added %s by %s", both, tom->id);
  tern_msg_t *msg = tern_msg_new_text("耗子，起床！", NULL), *sent = NULL;
  CHECK_RC(tern_sync_send(conv, msg, 0, &sent));
  CHECK(tern_msg_id(sent) && tern_msg_timestamp(sent) > 0, "ack gives id and timestamp");
  CHECK(tern_msg_status(sent) == TERN_STATUS_SENT && tern_msg_io_type(sent) == TERN_IO_OUT, "sent/out");
  expect(jerry, "message -1 耗子，起床！");
  const tern_msg_t *got = jerry->last_msg;
  CHECK_STR(tern_msg_id(got), tern_msg_id(sent));
  CHECK_STR(tern_msg_from(got), tom->id);
  CHECK_STR(tern_msg_conv_id(got), tern_conv_id(conv));
  CHECK(tern_msg_timestamp(got) == tern_msg_timestamp(sent), "same timestamp");
  CHECK(tern_msg_io_type(got) == TERN_IO_IN, "in");
  CHECK_STR(tern_conv_id(jerry->last_conv), tern_conv_id(conv));
  CHECK(tern_client_conv(jerry->c, tern_conv_id(conv)) == jerry->last_conv, "conversation known to Jerry");
  CHECK(tern_conv_last_message(jerry->last_conv) != NULL, "last message");
  tern_msg_free(msg);
  tern_msg_free(sent);
  expect_quiet(tom, 100);
  user_free(tom);
  user_free(jerry);
}

/* 群聊: Tom and four friends; Bob replies; everyone sees both messages. */
static void sc_group_chat(void) {
  user_t *tom = user_open("Tom"), *bob = user_open("Bob"), *jerry = user_open("Jerry");
  char harry[96], william[96];
  snprintf(harry, sizeof harry, "Harry-%s", run_suffix);
  snprintf(william, sizeof william, "William-%s", run_suffix);
  const char *friends[] = {jerry->id, bob->id, harry, william};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "Tom and friends", friends, 4, NULL, 0, &conv));
  size_t n;
  tern_conv_members(conv, &n);
  CHECK(n == 5, "5 members");
  expect(bob, "invited by %s", tom->id);
  expect(bob, "added ");
  tern_msg_t *msg = tern_msg_new_text("你们在哪儿？", NULL);
  CHECK_RC(tern_sync_send(conv, msg, 0, NULL));
  tern_msg_free(msg);
  expect(bob, "message -1 你们在哪儿？");
  expect(jerry, "invited");
  expect(jerry, "added");
  expect(jerry, "message -1 你们在哪儿？");
  msg = tern_msg_new_text("Tom，我在 Jerry 家", NULL);
  CHECK_RC(tern_sync_send(bob->last_conv, msg, 0, NULL));
  tern_msg_free(msg);
  expect(tom, "invited");
  expect(tom, "added");
  expect(tom, "message -1 Tom，我在 Jerry 家");
  expect(jerry, "message -1 Tom，我在 Jerry 家");
  user_free(tom);
  user_free(bob);
  user_free(jerry);
}

static tern_conv_t *pair(user_t *a, user_t *b) {
  const char *m[] = {b->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(a->c, "pair", m, 1, NULL, 0, &conv));
  expect(a, "invited");
  expect(a, "added");
  expect(b, "invited");
  expect(b, "added");
  return conv;
}

/* Every typed message of the guide, with attributes; the receiver sees each field. */
static void sc_typed_messages(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  const char *attrs = "{\"location\":\"旧金山\",\"n\":[1,2,{\"x\":true}]}";
  struct {
    int type;
    tern_msg_t *m;
  } cases[] = {
      {TERN_MSG_TEXT, tern_msg_new_text("hello", attrs)},
      {TERN_MSG_IMAGE,
       tern_msg_new_file_url(TERN_MSG_IMAGE, "萌妹子一枚", "http://files.example.invalid/a.png", attrs)},
      {TERN_MSG_AUDIO,
       tern_msg_new_file_url(TERN_MSG_AUDIO, "听听人类的神曲~", "http://files.example.invalid/1427444393952", NULL)},
      {TERN_MSG_VIDEO,
       tern_msg_new_file_url(TERN_MSG_VIDEO, NULL, "http://files.example.invalid/1427267336319", attrs)},
      {TERN_MSG_FILE, tern_msg_new_file_url(TERN_MSG_FILE, "a doc", "http://files.example.invalid/doc.pdf", attrs)},
      {TERN_MSG_LOCATION, tern_msg_new_location("新开的蛋糕店！", 45.0, 34.0, attrs)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tern_msg_t *m = cases[i].m;
    CHECK(m, "constructor %zu", i);
    CHECK_RC(tern_sync_send(conv, m, 0, NULL));
    expect(jerry, "message %d", cases[i].type);
    const tern_msg_t *g = jerry->last_msg;
    CHECK(tern_msg_type(g) == cases[i].type, "type");
    if (tern_msg_text(m)) CHECK_STR(tern_msg_text(g), tern_msg_text(m));
    else CHECK(tern_msg_text(g) == NULL, "no text");
    if (tern_msg_attributes(m)) CHECK_STR(tern_msg_attributes(g), tern_msg_attributes(m));
    if (tern_msg_file_url(m)) {
      CHECK_STR(tern_msg_file_url(g), tern_msg_file_url(m));
      CHECK(tern_msg_file_obj_id(g) == NULL, "URL files carry the URL only");
      CHECK(tern_msg_file_size(g) == -1 && tern_msg_file_width(g) == -1, "no metadata from a URL");
    }
    if (cases[i].type == TERN_MSG_LOCATION)
      CHECK(fabs(tern_msg_latitude(g) - 45.0) < 1e-9 && fabs(tern_msg_longitude(g) - 34.0) < 1e-9, "location");
    tern_msg_free(m);
  }
  user_free(tom);
  user_free(jerry);
}

/* Custom types registered by number go to on_message; unregistered ones and plain content to
 * on_common_message; custom fields survive. */
static void sc_custom_types(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  CHECK(tern_register_message_type(jerry->t, 0) == TERN_EINVAL, "type 0 reserved");
  CHECK_RC(tern_register_message_type(jerry->t, 1));
  tern_conv_t *conv = pair(tom, jerry);
  tern_msg_t *op = tern_msg_new_typed(1, "正在输入……", NULL);
  CHECK_RC(tern_msg_set_field(op, "pokes", "3"));
  CHECK(tern_msg_set_field(op, "_lctype", "2") == TERN_EINVAL, "reserved keys");
  CHECK_RC(tern_sync_send(conv, op, 0, NULL));
  expect(jerry, "message 1 正在输入……");
  char *f = tern_msg_field(jerry->last_msg, "pokes");
  CHECK_STR(f, "3");
  free(f);
  tern_msg_t *unreg = tern_msg_new_typed(7, "seven", NULL);
  CHECK_RC(tern_sync_send(conv, unreg, 0, NULL));
  expect(jerry, "common {");
  CHECK(strstr(tern_msg_content(jerry->last_msg), "\"_lctype\":7") != NULL, "raw content kept");
  tern_msg_t *plain = tern_msg_new_common("just text");
  CHECK_RC(tern_sync_send(conv, plain, 0, NULL));
  expect(jerry, "common just text");
  CHECK(tern_msg_type(jerry->last_msg) == TERN_MSG_COMMON, "common type 0");
  tern_msg_free(op);
  tern_msg_free(unreg);
  tern_msg_free(plain);
  user_free(tom);
  user_free(jerry);
}

/* 暂态消息: delivered online, flagged, never in history. */
static void sc_transient(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  tern_msg_t *typing = tern_msg_new_typed(1, "正在输入……", NULL), *sent = NULL;
  CHECK_RC(tern_register_message_type(jerry->t, 1));
  CHECK_RC(tern_sync_send(conv, typing, TERN_SEND_TRANSIENT, &sent));
  CHECK(tern_msg_is_transient(sent), "sent transient");
  expect(jerry, "message 1 正在输入…… (transient)");
  tern_msg_t **msgs;
  size_t n;
  CHECK_RC(tern_sync_history(conv, NULL, 0, 10, &msgs, &n, NULL));
  CHECK(n == 0, "transient messages are not stored (%zu)", n);
  tern_sync_msgs_free(msgs, n);
  tern_msg_free(typing);
  tern_msg_free(sent);
  user_free(tom);
  user_free(jerry);
}

/* 消息送达回执: with TERN_SEND_RECEIPT, Tom's delegate hears messageDelivered. */
static void sc_receipt(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  tern_msg_t *m = tern_msg_new_text("ack me", NULL), *sent = NULL;
  CHECK_RC(tern_sync_send(conv, m, TERN_SEND_RECEIPT, &sent));
  expect(jerry, "message -1 ack me"); /* Jerry's SDK acks it */
  expect(tom, "delivered %s", tern_msg_id(sent));
  CHECK(tern_msg_status(tom->last_msg) == TERN_STATUS_DELIVERED, "delivered status");
  CHECK(tern_msg_delivered_at(tom->last_msg) >= tern_msg_timestamp(sent), "deliveredTimestamp");
  CHECK_STR(tern_msg_text(tom->last_msg), "ack me");
  /* without the option: no receipt */
  CHECK_RC(tern_sync_send(conv, m, 0, NULL));
  expect(jerry, "message -1 ack me");
  expect_quiet(tom, 300);
  tern_msg_free(m);
  tern_msg_free(sent);
  user_free(tom);
  user_free(jerry);
}

/* 成员管理: join, add, quit, remove, with every party's notifications in the guide's order. */
static void sc_members(void) {
  user_t *jerry = user_open("Jerry"), *bob = user_open("Bob"), *tom = user_open("Tom"), *mary = user_open("Mary"),
         *harry = user_open("Harry");
  const char *friends[] = {bob->id, harry->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(jerry->c, "Tom and friends", friends, 2, NULL, 0, &conv));
  const char *cid = tern_conv_id(conv);
  expect(jerry, "invited");
  expect(jerry, "added");
  expect(bob, "invited");
  expect(bob, "added");
  expect(harry, "invited");
  expect(harry, "added");

  /* Tom joins by himself: he gets invited+added, the others membersAdded */
  tern_conv_t *tconv;
  CHECK_RC(tern_sync_get_conv(tom->c, cid, &tconv));
  CHECK_RC(tern_sync_join(tconv));
  expect(tom, "invited by %s", tom->id);
  expect(tom, "added %s by %s", tom->id, tom->id);
  expect(bob, "added %s by %s", tom->id, tom->id);
  size_t n;
  tern_conv_members(tconv, &n);
  CHECK(n == 4, "4 members after join, got %zu", n);

  /* Jerry invites Mary: Mary invitedBy then membersAdded; everyone membersAdded */
  const char *mm[] = {mary->id};
  CHECK_RC(tern_sync_add_members(conv, mm, 1));
  expect(mary, "invited by %s", jerry->id);
  expect(mary, "added %s by %s", mary->id, jerry->id);
  expect(jerry, "added %s by %s", tom->id, tom->id);
  expect(jerry, "added %s by %s", mary->id, jerry->id);
  expect(harry, "added %s by %s", tom->id, tom->id);
  expect(harry, "added %s by %s", mary->id, jerry->id);
  int count = 0;
  CHECK_RC(tern_sync_count_members(conv, &count));
  CHECK(count == 5, "count 5, got %d", count);

  /* Tom quits: he is told kicked-by-himself, Harry sees membersRemoved */
  CHECK_RC(tern_sync_quit(tconv));
  expect(tom, "added %s by %s", mary->id, jerry->id); /* Tom was still a member then */
  expect(tom, "kicked by %s", tom->id);
  expect(harry, "removed %s by %s", tom->id, tom->id);

  /* Jerry removes Harry: Harry kickedBy, the rest membersRemoved */
  const char *hh[] = {harry->id};
  CHECK_RC(tern_sync_remove_members(conv, hh, 1));
  expect(harry, "kicked by %s", jerry->id);
  expect(jerry, "removed %s by %s", tom->id, tom->id);
  expect(jerry, "removed %s by %s", harry->id, jerry->id);
  expect(mary, "removed %s by %s", tom->id, tom->id);
  expect(mary, "removed %s by %s", harry->id, jerry->id);
  CHECK_RC(tern_sync_count_members(conv, &count));
  CHECK(count == 3, "count 3, got %d", count);
  tern_conv_members(conv, &n);
  CHECK(n == 3, "local members 3, got %zu", n);
  expect_quiet(harry, 200);
  expect_quiet(tom, 1);
  user_free(jerry);
  user_free(bob);
  user_free(tom);
  user_free(mary);
  user_free(harry);
}

/* 对话的属性: attributes at creation, update builder (set, remove, keep untouched), name,
 * another member sees the change. */
static void sc_update(void) {
  user_t *tom = user_open("Tom"), *black = user_open("Black");
  const char *m[] = {black->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "猫和老鼠", m, 1, "{\"type\":\"private\",\"isSticky\":true}", 0, &conv));
  CHECK_STR(tern_conv_attributes(conv), "{\"isSticky\":true,\"type\":\"private\"}");
  expect(black, "invited");
  expect(black, "added");
  /* Black renames it (from his own copy, fetched by id) */
  tern_conv_t *bconv;
  CHECK_RC(tern_sync_get_conv(black->c, tern_conv_id(conv), &bconv));
  CHECK_STR(tern_conv_attribute(bconv, "type"), "\"private\"");
  tern_update_t *u = tern_update_new();
  CHECK_RC(tern_update_set_name(u, "聪明的喵星人"));
  CHECK_RC(tern_sync_update(bconv, u));
  tern_update_free(u);
  CHECK_STR(tern_conv_name(bconv), "聪明的喵星人");
  /* Tom sets type=public: isSticky is kept */
  u = tern_update_new();
  CHECK_RC(tern_update_set_attr(u, "type", "\"public\""));
  CHECK_RC(tern_sync_update(conv, u));
  tern_update_free(u);
  CHECK_STR(tern_conv_attributes(conv), "{\"isSticky\":true,\"type\":\"public\"}");
  expect(black, "updated {\"attr.type\":\"public\"} by %s", tom->id);
  CHECK_STR(tern_conv_attributes(bconv), "{\"isSticky\":true,\"type\":\"public\"}");
  /* the guide's way: start from all attributes, change one, write all back */
  u = tern_update_new();
  CHECK_RC(tern_update_set_attributes(u, tern_conv_attributes(conv)));
  CHECK_RC(tern_update_set_attr(u, "level", "5"));
  CHECK_RC(tern_update_remove_attr(u, "type"));
  CHECK_RC(tern_sync_update(conv, u));
  tern_update_free(u);
  CHECK_STR(tern_conv_attributes(conv), "{\"isSticky\":true,\"level\":5}");
  /* what the server has now, seen by Black's query */
  tern_query_t *q = tern_query_new(black->c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  tern_query_where_str(q, "objectId", TERN_EQ, tern_conv_id(conv));
  tern_conv_t **res;
  size_t n;
  CHECK_RC(tern_sync_find(q, &res, &n));
  CHECK(n == 1 && res[0] == bconv, "same object");
  CHECK_STR(tern_conv_attributes(bconv), "{\"isSticky\":true,\"level\":5}");
  CHECK_STR(tern_conv_name(bconv), "聪明的喵星人");
  free(res);
  tern_query_free(q);
  user_free(tom);
  user_free(black);
}

/* 静音 */
static void sc_mute(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  CHECK(!tern_conv_is_muted(conv), "not muted");
  CHECK_RC(tern_sync_mute(conv, 1));
  CHECK(tern_conv_is_muted(conv), "muted");
  tern_query_t *q = tern_query_new(tom->c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  tern_query_where_str(q, "mu", TERN_EQ, tom->id);
  tern_conv_t **res;
  size_t n;
  CHECK_RC(tern_sync_find(q, &res, &n));
  CHECK(n == 1 && res[0] == conv, "server has Tom in mu");
  free(res);
  CHECK_RC(tern_sync_mute(conv, 0));
  CHECK(!tern_conv_is_muted(conv), "unmuted");
  CHECK_RC(tern_sync_find(q, &res, &n));
  CHECK(n == 0, "no longer muted on the server");
  free(res);
  tern_query_free(q);
  user_free(tom);
  user_free(jerry);
}

/* Chat room: transient option, creator auto-joined, count = online members. */
static void sc_chatroom(void) {
  user_t *tom = user_open("Tom"), *cat = user_open("Cat");
  tern_conv_t *room;
  CHECK_RC(tern_sync_create_conv(tom->c, "HelloKitty PK 加菲猫", NULL, 0, NULL, TERN_CONV_TRANSIENT, &room));
  CHECK(tern_conv_is_transient(room), "transient");
  int count;
  CHECK_RC(tern_sync_count_members(room, &count));
  CHECK(count == 1, "creator online in the room: %d", count);
  tern_conv_t *croom;
  CHECK_RC(tern_sync_get_conv(cat->c, tern_conv_id(room), &croom));
  CHECK(tern_conv_is_transient(croom), "query sees tr");
  CHECK_RC(tern_sync_join(croom));
  CHECK_RC(tern_sync_count_members(room, &count));
  CHECK(count == 2, "two online: %d", count);
  tern_msg_t *m = tern_msg_new_text("弹幕", NULL);
  CHECK_RC(tern_sync_send(croom, m, 0, NULL));
  expect(tom, "message -1 弹幕");
  tern_msg_free(m);
  /* no membership notifications in chat rooms */
  expect_quiet(cat, 100);
  /* unique and transient together are refused locally */
  CHECK(tern_client_create_conv(tom->c, "x", NULL, 0, NULL, TERN_CONV_TRANSIENT | TERN_CONV_UNIQUE, NULL, NULL) ==
            TERN_EINVAL,
        "transient|unique");
  user_free(tom);
  user_free(cat);
}

/* Unique option: the same member set gives the same conversation. */
static void sc_unique(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  const char *m[] = {jerry->id};
  tern_conv_t *a, *b, *c;
  CHECK_RC(tern_sync_create_conv(tom->c, "u", m, 1, NULL, TERN_CONV_UNIQUE, &a));
  CHECK_RC(tern_sync_create_conv(tom->c, "u", m, 1, NULL, TERN_CONV_UNIQUE, &b));
  CHECK_RC(tern_sync_create_conv(tom->c, "u", m, 1, NULL, TERN_CONV_NONE, &c));
  CHECK(a == b, "unique → same conversation");
  CHECK(a != c, "without unique → a new one");
  CHECK(tern_conv_is_unique(a), "flag");
  user_free(tom);
  user_free(jerry);
}

/* ---- queries ---- */

static size_t find_n(tern_query_t *q) {
  tern_conv_t **res;
  size_t n;
  CHECK_RC(tern_sync_find(q, &res, &n));
  free(res);
  return n;
}

static tern_query_t *fresh_query(user_t *u, const char *tag) {
  tern_query_t *q = tern_query_new(u->c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  tern_query_where_str(q, TERN_ATTR("tag"), TERN_EQ, tag);
  return q;
}

static void sc_query(void) {
  user_t *tom = user_open("Tom"), *bob = user_open("Bob"), *jerry = user_open("Jerry");
  char tag[64];
  snprintf(tag, sizeof tag, "q-%s", run_suffix);
  const char *bj[] = {bob->id, jerry->id}, *b[] = {bob->id};
  char attrs[512];
  struct {
    const char *name, *topic, *type, *keywords, *language;
    int age;
    const char *const *m;
    size_t nm;
  } rows[] = {
      {"LeanCloud 粉丝群", "DOTA2", "private", "教育 科技", "中文", 12, bj, 2},
      {"movies", "movie", "public", "film", "english", 20, b, 1},
      {"kids", "movie", "public", "教育", "english", 8, bj, 2},
  };
  tern_conv_t *convs[3];
  for (int i = 0; i < 3; i++) {
    snprintf(attrs, sizeof attrs,
             "{\"tag\":\"%s\",\"topic\":\"%s\",\"type\":\"%s\",\"keywords\":\"%s\",\"language\":\"%s\",\"age\":%d,"
             "\"level\":%d}",
             tag, rows[i].topic, rows[i].type, rows[i].keywords, rows[i].language, rows[i].age, i * 3);
    CHECK_RC(tern_sync_create_conv(tom->c, rows[i].name, rows[i].m, rows[i].nm, attrs, 0, &convs[i]));
  }
  tern_query_t *q;
  /* limit and default */
  q = fresh_query(tom, tag);
  CHECK(find_n(q) == 3, "all three");
  tern_query_set_limit(q, 2);
  CHECK(find_n(q) == 2, "limit 2");
  tern_query_free(q);
#define Q1(setup, want)                                                                                                \
  do {                                                                                                                 \
    q = fresh_query(tom, tag);                                                                                         \
    setup;                                                                                                             \
    size_t got_ = find_n(q);                                                                                           \
    CHECK(got_ == (want), "%s: %zu, want %d", #setup, got_, (want));                                                   \
    tern_query_free(q);                                                                                                \
  } while (0)
  Q1(tern_query_where_str(q, "name", TERN_EQ, "LeanCloud 粉丝群"), 1);
  Q1(tern_query_contains_string(q, "name", "LeanCloud"), 1);
  Q1(tern_query_where_str(q, TERN_ATTR("topic"), TERN_EQ, "movie"), 2);
  Q1(tern_query_where_str(q, "attr.topic", TERN_EQ, "DOTA2"), 1);
  Q1(tern_query_where_str(q, TERN_ATTR("type"), TERN_NE, "private"), 2);
  Q1(tern_query_where_int(q, TERN_ATTR("age"), TERN_GT, 12), 1);
  Q1(tern_query_where_int(q, TERN_ATTR("age"), TERN_GTE, 12), 2);
  Q1(tern_query_where_int(q, TERN_ATTR("age"), TERN_LT, 12), 1);
  Q1(tern_query_where_int(q, TERN_ATTR("age"), TERN_LTE, 12), 2);
  Q1(tern_query_where_double(q, TERN_ATTR("age"), TERN_LT, 12.5), 2);
  Q1(tern_query_matches_regex(q, TERN_ATTR("language"), "[\\x{4e00}-\\x{9fa5}]", NULL), 1);
  Q1(tern_query_matches_regex(q, TERN_ATTR("language"), "^ENG", "i"), 2);
  Q1(tern_query_contains_string(q, TERN_ATTR("keywords"), "教育"), 2);
  const char *both[] = {bob->id, jerry->id};
  Q1(tern_query_contains_all(q, "m", both, 2), 2);
  /* combined: keywords contain 教育 and age < 18 */
  Q1((tern_query_contains_string(q, TERN_ATTR("keywords"), "教育"),
      tern_query_where_int(q, TERN_ATTR("age"), TERN_LT, 10)),
     1);
  /* two conditions on one key merge */
  Q1((tern_query_where_int(q, TERN_ATTR("age"), TERN_GT, 8), tern_query_where_int(q, TERN_ATTR("age"), TERN_LT, 20)),
     1);
  Q1(tern_query_where_bool(q, "tr", TERN_EQ, 1), 0);
  Q1(tern_query_where_date(q, "createdAt", TERN_GT, 0), 3);
  Q1(tern_query_where(q, TERN_ATTR("level"), TERN_GTE, "3"), 2);
  /* order */
  q = fresh_query(tom, tag);
  tern_query_set_order(q, "-attr.age");
  tern_conv_t **res;
  size_t n;
  CHECK_RC(tern_sync_find(q, &res, &n));
  CHECK(n == 3 && res[0] == convs[1] && res[2] == convs[2], "ordered by age desc");
  free(res);
  tern_query_free(q);
  /* where JSON as sent */
  q = tern_query_new(tom->c);
  tern_query_where_int(q, "attr.age", TERN_GT, 1);
  tern_query_where_int(q, "attr.age", TERN_LT, 9);
  char *w = tern_query_where_json(q);
  CHECK_STR(w, "{\"attr.age\":{\"$gt\":1,\"$lt\":9}}");
  free(w);
  tern_query_free(q);
  /* default: conversations Jerry is in */
  q = tern_query_new(jerry->c);
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  CHECK(find_n(q) == 2, "Jerry is in two");
  tern_query_free(q);
  /* getConversationById, and not found */
  tern_conv_t *got;
  CHECK_RC(tern_sync_get_conv(bob->c, tern_conv_id(convs[0]), &got));
  CHECK_STR(tern_conv_name(got), "LeanCloud 粉丝群");
  CHECK(tern_sync_get_conv(bob->c, "000000000000000000000000", &got) == TERN_ENOENT, "not found");
  /* compact and last message */
  tern_msg_t *m = tern_msg_new_text("last one", NULL);
  CHECK_RC(tern_sync_send(convs[0], m, 0, NULL));
  tern_msg_free(m);
  /* 查询过去24小时活跃的对话: lm is set by the message just sent, on that conversation only */
  Q1(tern_query_where_date(q, "lm", TERN_GT, (int64_t)time(NULL) * 1000 - 86400000), 1);
  q = fresh_query(bob, tag);
  tern_query_where_str(q, "name", TERN_EQ, "LeanCloud 粉丝群");
  tern_query_set_with_last_message(q, 1);
  CHECK_RC(tern_sync_find(q, &res, &n));
  CHECK(n == 1 && tern_conv_last_message(res[0]) &&
            strcmp(tern_msg_text(tern_conv_last_message(res[0])), "last one") == 0,
        "last message");
  free(res);
  tern_query_free(q);
  user_free(tom);
  user_free(bob);
  user_free(jerry);
}

typedef struct {
  int calls;
  int from_cache[4];
  size_t n[4];
  int status[4];
} qrec_t;

static void q_rec(tern_client_t *c, tern_conv_t *const *convs, size_t n, int from_cache, int status, void *data) {
  qrec_t *r = data;
  if (r->calls < 4) {
    r->from_cache[r->calls] = from_cache;
    r->n[r->calls] = n;
    r->status[r->calls] = status;
  }
  r->calls++;
}

static qrec_t run_q(user_t *u, tern_query_t *q, int expect_calls) {
  qrec_t r = {0};
  CHECK_RC(tern_query_find(q, q_rec, &r));
  for (int i = 0; i < 400 && r.calls < expect_calls; i++) tern_sync_wait(u->t, 20);
  tern_sync_wait(u->t, 50);
  CHECK(r.calls == expect_calls, "callbacks %d, want %d", r.calls, expect_calls);
  return r;
}

/* 缓存查询: every policy. */
static void sc_query_cache(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  pair(tom, jerry);
  tern_query_t *q = tern_query_new(tom->c); /* default: cache else network, one hour */
  qrec_t r = run_q(tom, q, 1);
  CHECK(r.status[0] == 0 && !r.from_cache[0] && r.n[0] == 1, "first: network");
  r = run_q(tom, q, 1);
  CHECK(r.status[0] == 0 && r.from_cache[0] && r.n[0] == 1, "second: cache");
  /* a new conversation is not seen while the cache is fresh… */
  pair(tom, jerry);
  r = run_q(tom, q, 1);
  CHECK(r.from_cache[0] && r.n[0] == 1, "cache still answers");
  /* …but is with max age 0, or network only */
  tern_query_set_cache_max_age(q, 0);
  tern_sync_wait(tom->t, 5);
  r = run_q(tom, q, 1);
  CHECK(!r.from_cache[0] && r.n[0] == 2, "expired → network (%zu)", r.n[0]);
  tern_query_set_cache_max_age(q, 3600);
  tern_query_set_cache_policy(q, TERN_CACHE_THEN_NETWORK);
  r = run_q(tom, q, 2);
  CHECK(r.from_cache[0] && !r.from_cache[1] && r.n[1] == 2, "cache then network");
  tern_query_set_cache_policy(q, TERN_CACHE_ONLY);
  r = run_q(tom, q, 1);
  CHECK(r.from_cache[0] && r.n[0] == 2, "cache only");
  tern_query_set_limit(q, 7); /* another key: never cached */
  r = run_q(tom, q, 1);
  CHECK(r.status[0] == TERN_ECACHEMISS, "cache only miss: %s", tern_err_name(r.status[0]));
  tern_query_set_cache_policy(q, TERN_CACHE_IGNORE);
  r = run_q(tom, q, 1);
  CHECK(!r.from_cache[0] && r.n[0] == 2, "ignore cache: network");
  tern_query_set_cache_policy(q, TERN_CACHE_ONLY);
  r = run_q(tom, q, 1);
  CHECK(r.status[0] == TERN_ECACHEMISS, "ignore-cache results were not saved");
  /* network else cache: offline → the cache answers */
  tern_query_set_limit(q, 10);
  tern_query_set_cache_policy(q, TERN_NETWORK_ELSE_CACHE);
  r = run_q(tom, q, 1);
  CHECK(!r.from_cache[0], "online: network");
  CHECK_RC(tern_sync_close(tom->c));
  r = run_q(tom, q, 1);
  CHECK(r.status[0] == 0 && r.from_cache[0] && r.n[0] == 2, "offline: cache");
  tern_query_set_cache_policy(q, TERN_NETWORK_ONLY);
  CHECK(tern_query_find(q, q_rec, &r) == TERN_ENOTOPEN, "network only offline");
  tern_query_free(q);
  user_free(tom);
  user_free(jerry);
}

/* ---- history ---- */

typedef struct {
  int done, status, from_cache;
  size_t n;
} hist_probe_t;

static void hist_probe(tern_conv_t *conv, const tern_msg_t *const *msgs, size_t n, int from_cache, int status,
                       void *data) {
  hist_probe_t *p = data;
  p->done = 1;
  p->status = status;
  p->n = n;
  p->from_cache = from_cache;
}

static void sc_history(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  char text[32];
  for (int i = 0; i < 25; i++) {
    snprintf(text, sizeof text, "m%02d", i);
    tern_msg_t *m = tern_msg_new_text(text, NULL);
    CHECK_RC(tern_sync_send(conv, m, 0, NULL));
    tern_msg_free(m);
  }
  tern_conv_t *jc = tern_client_conv(jerry->c, tern_conv_id(conv));
  CHECK(jc, "Jerry knows it");
  for (int i = 0; i < 25; i++) expect(jerry, "message -1 m%02d", i);
  /* newest 10 from the server */
  tern_msg_t **p1, **p2, **p3;
  size_t n1, n2, n3;
  int fc;
  CHECK_RC(tern_sync_history(jc, NULL, 0, 10, &p1, &n1, &fc));
  CHECK(n1 == 10 && !fc, "page 1: %zu from_cache %d", n1, fc);
  CHECK_STR(tern_msg_text(p1[0]), "m15");
  CHECK_STR(tern_msg_text(p1[9]), "m24");
  /* page back from the oldest of page 1 */
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p1[0]), tern_msg_timestamp(p1[0]), 10, &p2, &n2, &fc));
  CHECK(n2 == 10 && !fc, "page 2 from the server");
  CHECK_STR(tern_msg_text(p2[0]), "m05");
  CHECK_STR(tern_msg_text(p2[9]), "m14");
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p2[0]), tern_msg_timestamp(p2[0]), 10, &p3, &n3, &fc));
  CHECK(n3 == 5 && !fc, "page 3: the first five (%zu)", n3);
  CHECK_STR(tern_msg_text(p3[0]), "m00");
  tern_sync_msgs_free(p3, n3);
  /* the same pages again come from the local cache */
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p1[0]), tern_msg_timestamp(p1[0]), 10, &p3, &n3, &fc));
  CHECK(n3 == 10 && fc, "page 2 again: cache (%zu, %d)", n3, fc);
  CHECK_STR(tern_msg_text(p3[0]), "m05");
  CHECK_STR(tern_msg_id(p3[9]), tern_msg_id(p2[9]));
  tern_sync_msgs_free(p3, n3);
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p2[0]), tern_msg_timestamp(p2[0]), 10, &p3, &n3, &fc));
  CHECK(n3 == 5 && fc, "page 3 again: cache knows it is the beginning");
  tern_sync_msgs_free(p3, n3);
  /* a page spanning both: 15 before m20 */
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p1[5]), tern_msg_timestamp(p1[5]), 15, &p3, &n3, &fc));
  CHECK(n3 == 15 && fc, "contiguous across pages");
  CHECK_STR(tern_msg_text(p3[0]), "m05");
  tern_sync_msgs_free(p3, n3);
  /* queryMessagesFromServerWithLimit: never the cache */
  hist_probe_t hp = {0};
  CHECK_RC(tern_conv_query_messages_from_server(jc, 3, hist_probe, &hp));
  CHECK_RC(tern_sync_until(jerry->t, &hp.done, 8000));
  CHECK(hp.status == 0 && hp.n == 3 && !hp.from_cache, "from server: %zu %d", hp.n, hp.from_cache);
  /* with the cache disabled: always the server */
  tern_client_set_message_cache(jerry->c, 0);
  CHECK_RC(tern_sync_history(jc, tern_msg_id(p1[0]), tern_msg_timestamp(p1[0]), 10, &p3, &n3, &fc));
  CHECK(n3 == 10 && !fc, "cache off: server");
  tern_sync_msgs_free(p3, n3);
  tern_client_set_message_cache(jerry->c, 1);
  /* offline: the newest from the cache */
  CHECK_RC(tern_sync_close(jerry->c));
  CHECK_RC(tern_sync_history(jc, NULL, 0, 5, &p3, &n3, &fc));
  CHECK(n3 == 5 && fc, "offline: cache (%zu)", n3);
  CHECK_STR(tern_msg_text(p3[4]), "m24");
  tern_sync_msgs_free(p3, n3);
  tern_sync_msgs_free(p1, n1);
  tern_sync_msgs_free(p2, n2);
  user_free(tom);
  user_free(jerry);
}

/* The cache is a file per client when cache_dir is set, and survives a restart. */
static const char *cache_dir_opt;
static void with_cache_dir(tern_options_t *o) { o->cache_dir = cache_dir_opt; }

static void sc_cache_file(void) {
  char dir[] = "/tmp/tern-sdk-cache-XXXXXX";
  CHECK(mkdtemp(dir), "mkdtemp");
  cache_dir_opt = dir;
  user_t *tom = user_open("Tom");
  user_t *jerry = user_new_opts("Jerry", NULL, with_cache_dir);
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  tern_conv_t *conv = pair(tom, jerry);
  for (int i = 0; i < 3; i++) {
    tern_msg_t *m = tern_msg_new_text("persisted", NULL);
    CHECK_RC(tern_sync_send(conv, m, 0, NULL));
    tern_msg_free(m);
    expect(jerry, "message -1 persisted");
  }
  char cid[64];
  snprintf(cid, sizeof cid, "%s", tern_conv_id(conv));
  char jid[200];
  snprintf(jid, sizeof jid, "%s", jerry->id);
  user_free(jerry);
  char path[256];
  snprintf(path, sizeof path, "%s/%s-%s.db", dir, env_or("TERN_APP_ID", "app"), jid);
  CHECK(access(path, F_OK) == 0, "cache file %s", path);
  /* a new process (new tern_t), offline: history from the file */
  tern_options_t o;
  tern_options_init(&o);
  o.url = env_or("TERN_URL", "ws://127.0.0.1:8080/");
  o.app_id = env_or("TERN_APP_ID", "app");
  o.cache_dir = dir;
  tern_t *t = tern_sync_new(&o);
  tern_client_t *c = tern_client_get(t, jid, NULL);
  CHECK_RC(tern_sync_open(c, NULL));
  CHECK_RC(tern_sync_close(c));
  tern_conv_t *jc;
  CHECK(tern_sync_get_conv(c, cid, &jc) == TERN_ECACHEMISS || 1, "offline get");
  user_free(tom);
  tern_free(t);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0, "cleanup");
}

/* ---- unread ---- */

static void sc_unread(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  CHECK_RC(tern_sync_close(jerry->c));
  for (int i = 0; i < 3; i++) {
    tern_msg_t *m = tern_msg_new_text("while you were away", NULL);
    CHECK_RC(tern_sync_send(conv, m, 0, NULL));
    tern_msg_free(m);
  }
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  expect(jerry, "unread 3");
  tern_conv_t *jc = jerry->last_conv;
  CHECK_STR(tern_conv_id(jc), tern_conv_id(conv));
  CHECK(tern_conv_unread_count(jc) == 3, "count on the conversation");
  CHECK(tern_conv_last_message(jc) && strcmp(tern_msg_text(tern_conv_last_message(jc)), "while you were away") == 0,
        "last message from the unread notification");
  tern_msg_t **msgs;
  size_t n;
  CHECK_RC(tern_sync_history(jc, NULL, 0, tern_conv_unread_count(jc), &msgs, &n, NULL));
  CHECK(n == 3, "pulled the unread messages");
  tern_sync_msgs_free(msgs, n);
  CHECK_RC(tern_conv_read(jc));
  CHECK(tern_conv_unread_count(jc) == 0, "read locally");
  tern_sync_wait(jerry->t, 200);
  CHECK_RC(tern_sync_close(jerry->c));
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  tern_sync_wait(jerry->t, 300);
  for (; jerry->cursor < jerry->nev; jerry->cursor++)
    CHECK(strcmp(jerry->ev[jerry->cursor], "unread 3") != 0, "after read the server no longer counts 3");
  user_free(tom);
  user_free(jerry);
}

static void push_offline(tern_options_t *o) { o->push_offline = 1; }

/* The unread option off (lc.protobuf2.1): offline messages are pushed at login. */
static void sc_push_offline(void) {
  user_t *tom = user_open("Tom");
  user_t *jerry = user_new_opts("Jerry", NULL, push_offline);
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  tern_conv_t *conv = pair(tom, jerry);
  CHECK_RC(tern_sync_close(jerry->c));
  tern_msg_t *m = tern_msg_new_text("offline push", NULL);
  CHECK_RC(tern_sync_send(conv, m, 0, NULL));
  tern_msg_free(m);
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  expect(jerry, "message -1 offline push");
  user_free(tom);
  user_free(jerry);
}

/* ---- signature data source ---- */

typedef struct {
  char log[2048];
} siglog_t;

static int sign(tern_client_t *c, const char *conv_id, const char *action, const char *const *ids, size_t n,
                tern_signature_t *out, void *data) {
  siglog_t *l = data;
  char s[512];
  join_ids(s, sizeof s, ids, n);
  size_t len = strlen(l->log);
  snprintf(l->log + len, sizeof l->log - len, "%s(%s)[%s];", action, conv_id ? "cid" : "-", s);
  snprintf(out->signature, sizeof out->signature, "sig-%s", action);
  snprintf(out->nonce, sizeof out->nonce, "nonce");
  out->timestamp = 1436137606;
  return strcmp(action, "kick") == 0 && n == 2 ? -1 : 0;
}

static void sc_signature(void) {
  user_t *tom = user_new("Tom"), *jerry = user_open("Jerry");
  siglog_t l = {{0}};
  tern_client_set_signature_cb(tom->c, sign, &l);
  CHECK_RC(tern_sync_open(tom->c, NULL));
  const char *m[] = {jerry->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "signed", m, 1, NULL, 0, &conv));
  char spike[96];
  snprintf(spike, sizeof spike, "Spike-%s", run_suffix);
  const char *s[] = {spike};
  CHECK_RC(tern_sync_add_members(conv, s, 1));
  CHECK_RC(tern_sync_remove_members(conv, s, 1));
  const char *two[] = {spike, jerry->id};
  CHECK(tern_conv_remove_members(conv, two, 2, NULL, NULL) == TERN_ESIGNATURE, "refused by the data source");
  /* Tom quits and joins again: his data source signs both */
  CHECK_RC(tern_sync_quit(conv));
  CHECK_RC(tern_sync_join(conv));
  char want[2048];
  const char *a = strcmp(jerry->id, tom->id) < 0 ? jerry->id : tom->id, *b = a == jerry->id ? tom->id : jerry->id;
  snprintf(want, sizeof want,
           "open(-)[];start(-)[%s,%s];invite(cid)[%s];kick(cid)[%s];kick(cid)[%s,%s];kick(cid)[%s];join(cid)[%s];", a,
           b, spike, spike, strcmp(spike, jerry->id) < 0 ? spike : jerry->id,
           strcmp(spike, jerry->id) < 0 ? jerry->id : spike, tom->id, tom->id);
  CHECK_STR(l.log, want);
  user_free(tom);
  user_free(jerry);
}

/* ---- files from a local path: uploaded to the server's POST /1.1/files/<name> (or to
 * TERN_FILES_URL when set) ---- */

static void sc_file_upload(void) {
  user_t *tom = user_open("Tom"), *jerry = user_open("Jerry");
  tern_conv_t *conv = pair(tom, jerry);
  /* a 3x2 PNG and a small "mp3" */
  static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0,
                                      0,    0,   3,   0,   0,    0,    2,    8,    6, 0, 0, 0,  0,   0,   0,   0};
  char path[] = "/tmp/tern-photo-XXXXXX.png";
  int fd = mkstemps(path, 4);
  CHECK(fd >= 0 && write(fd, png, sizeof png) == (ssize_t)sizeof png, "write png");
  close(fd);
  tern_msg_t *m = tern_msg_new_file_path(TERN_MSG_IMAGE, "发自我的 iPhone", path, "{\"location\":\"旧金山\"}"),
             *sent = NULL;
  CHECK_RC(tern_sync_send(conv, m, 0, &sent));
  CHECK(tern_msg_file_url(sent) && strncmp(tern_msg_file_url(sent), "http", 4) == 0, "url after upload");
  CHECK(tern_msg_file_obj_id(sent) != NULL, "objId");
  printf("url %s\n", tern_msg_file_url(sent)); /* the test downloads it */
  expect(jerry, "message -2 发自我的 iPhone");
  const tern_msg_t *g = jerry->last_msg;
  CHECK_STR(tern_msg_file_url(g), tern_msg_file_url(sent));
  CHECK_STR(tern_msg_file_obj_id(g), tern_msg_file_obj_id(sent));
  CHECK_STR(tern_msg_file_name(g), strrchr(path, '/') + 1);
  CHECK_STR(tern_msg_file_format(g), "png");
  CHECK(tern_msg_file_size(g) == (int64_t)sizeof png, "size");
  CHECK(tern_msg_file_width(g) == 3 && tern_msg_file_height(g) == 2, "dimensions %dx%d", tern_msg_file_width(g),
        tern_msg_file_height(g));
  CHECK_STR(tern_msg_attributes(g), "{\"location\":\"旧金山\"}");
  tern_msg_free(m);
  tern_msg_free(sent);
  /* a missing file fails at once */
  m = tern_msg_new_file_path(TERN_MSG_AUDIO, NULL, "/nonexistent/忐忑.mp3", NULL);
  CHECK_STR(tern_msg_file_format(m), "mp3");
  CHECK(tern_conv_send(conv, m, 0, NULL, NULL) == TERN_ENOENT, "missing file");
  tern_msg_free(m);
  unlink(path);
  user_free(tom);
  user_free(jerry);
}

/* Several clients in one tern_t share its connection; each gets its own pushes. */
static void sc_multi_client(void) {
  user_t *tom = user_open("Tom");
  char second[128];
  snprintf(second, sizeof second, "Jerry-%s", run_suffix);
  tern_client_t *jerry = tern_client_get(tom->t, second, NULL);
  user_t jrec = {{0}};
  snprintf(jrec.id, sizeof jrec.id, "%s", second);
  jrec.t = tom->t;
  jrec.c = jerry;
  tern_client_set_delegate(jerry, &recorder, &jrec);
  CHECK_RC(tern_sync_open(jerry, NULL));
  const char *m[] = {second};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "same socket", m, 1, NULL, 0, &conv));
  tern_msg_t *msg = tern_msg_new_text("to the other client", NULL);
  CHECK_RC(tern_sync_send(conv, msg, 0, NULL));
  tern_msg_free(msg);
  expect(&jrec, "invited by %s", tom->id);
  expect(&jrec, "added");
  expect(&jrec, "message -1 to the other client");
  expect(tom, "invited");
  expect(tom, "added");
  expect_quiet(tom, 100);
  for (int i = 0; i < jrec.nev; i++) free(jrec.ev[i]);
  tern_msg_free(jrec.last_msg);
  user_free(tom);
}

/* Errors: server codes come back negated with their names. */
static void sc_errors(void) {
  user_t *tom = user_open("Tom");
  CHECK_STR(tern_err_name(TERN_ETIMEDOUT), "TERN_ETIMEDOUT");
  CHECK_STR(tern_err_name(-4111), "SESSION_CONFLICT");
  CHECK_STR(tern_strerror(-4303), "conversation not found");
  CHECK(TERN_ERR_IS_SERVER(-4401) && TERN_ERR_CODE(-4401) == 4401, "macros");
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "solo", NULL, 0, NULL, 0, &conv));
  user_t *eve = user_open("Eve");
  tern_conv_t *econv;
  CHECK_RC(tern_sync_get_conv(eve->c, tern_conv_id(conv), &econv));
  tern_msg_t *m = tern_msg_new_text("not a member", NULL);
  int rc = tern_sync_send(econv, m, 0, NULL);
  CHECK(rc == -4401, "INVALID_MESSAGING_TARGET, got %d %s", rc, tern_err_name(rc));
  tern_msg_free(m);
  user_free(tom);
  user_free(eve);
}

/* 单点登录: two devices with the same tag. The newer explicit login pushes the older out
 * (client:didOfflineWithError: 4111); a non-forced login after that is refused while the
 * other device holds the tag, a forced one takes it back. */
static void sc_sso(void) {
  user_t *a = user_new_opts("Tom", "Mobile", NULL), *b = user_new_opts("Tom", "Mobile", NULL);
  CHECK_STR(a->id, b->id);
  CHECK_RC(tern_sync_open(a->c, NULL));
  CHECK_RC(tern_sync_open(b->c, NULL));
  expect(a, "offline 4111");
  CHECK(tern_client_status(a->c) == TERN_CLIENT_CLOSED, "the older device is closed");
  int rc = tern_sync_open(a->c, NULL);
  CHECK(rc == -4111, "non-forced login refused: %d %s", rc, tern_err_name(rc));
  CHECK(TERN_ERR_CODE(rc) == 4111, "[error code] == 4111");
  tern_open_options_t force = {.force = 1};
  CHECK_RC(tern_sync_open(a->c, &force));
  expect(b, "offline 4111");
  /* no tag: any number of devices */
  user_t *c = user_new_opts("Tom", NULL, NULL);
  CHECK_RC(tern_sync_open(c->c, NULL));
  expect_quiet(a, 200);
  user_free(a);
  user_free(b);
  user_free(c);
}

/* Signatures checked by a ternd started with sign_login and sign_conversation: the data
 * source signs like the app's signing server would (HMAC-SHA1 with the master key). */
static int real_sign(tern_client_t *c, const char *conv_id, const char *action, const char *const *ids, size_t n,
                     tern_signature_t *out, void *data) {
  const char *key = data;
  char joined[1024] = "";
  join_ids(joined, sizeof joined, ids, n);
  for (char *p = joined; *p; p++)
    if (*p == ',') *p = ':';
  static int seq;
  out->timestamp = (int64_t)time(NULL);
  snprintf(out->nonce, sizeof out->nonce, "n%d-%d-%ld", getpid(), ++seq, (long)out->timestamp);
  char text[2048];
  const char *app = env_or("TERN_APP_ID", "app");
  if (strcmp(action, "open") == 0)
    snprintf(text, sizeof text, "%s:%s::%lld:%s", app, tern_client_id(c), (long long)out->timestamp, out->nonce);
  else if (strcmp(action, "start") == 0)
    snprintf(text, sizeof text, "%s:%s:%s:%lld:%s", app, tern_client_id(c), joined, (long long)out->timestamp,
             out->nonce);
  else /* join and invite sign as "invite", quit and kick as "kick" (protocol.md §5) */
    snprintf(text, sizeof text, "%s:%s:%s:%s:%lld:%s:%s", app, tern_client_id(c), conv_id, joined,
             (long long)out->timestamp, out->nonce, strcmp(action, "kick") == 0 ? "kick" : "invite");
  uint8_t mac[20];
  hmac_sha1(key, strlen(key), text, strlen(text), mac);
  hex_encode(mac, 20, out->signature);
  return 0;
}

static void sc_signed(void) {
  const char *master = getenv("TERN_MASTER_KEY");
  CHECK(master, "TERN_MASTER_KEY");
  user_t *tom = user_new("Tom"), *jerry = user_new("Jerry"), *eve = user_new("Eve");
  tern_client_set_signature_cb(tom->c, real_sign, (void *)master);
  tern_client_set_signature_cb(jerry->c, real_sign, (void *)master);
  tern_client_set_signature_cb(eve->c, real_sign, (void *)"not the master key");
  CHECK_RC(tern_sync_open(tom->c, NULL));
  CHECK_RC(tern_sync_open(jerry->c, NULL));
  int rc = tern_sync_open(eve->c, NULL);
  CHECK(rc == -4102, "a wrong login signature: %d %s", rc, tern_err_name(rc));
  const char *m[] = {jerry->id};
  tern_conv_t *conv;
  CHECK_RC(tern_sync_create_conv(tom->c, "signed", m, 1, NULL, 0, &conv));
  char spike[96];
  snprintf(spike, sizeof spike, "Spike-%s", run_suffix);
  const char *s[] = {spike};
  CHECK_RC(tern_sync_add_members(conv, s, 1));
  CHECK_RC(tern_sync_remove_members(conv, s, 1));
  tern_conv_t *jconv;
  CHECK_RC(tern_sync_get_conv(jerry->c, tern_conv_id(conv), &jconv));
  CHECK_RC(tern_sync_quit(jconv));
  CHECK_RC(tern_sync_join(jconv));
  /* an unsigned member operation is refused */
  tern_client_set_signature_cb(tom->c, NULL, NULL);
  rc = tern_sync_add_members(conv, s, 1);
  CHECK(rc == -4302, "unsigned add: %d %s", rc, tern_err_name(rc));
  user_free(tom);
  user_free(jerry);
  user_free(eve);
}

/* The server restarts under an open client (tests/integration/sdk.test.mjs stops ternd after
 * "ready" and starts it again on the same port and data): imClientPaused, Resuming (one per
 * attempt), Resumed after the automatic r:true login with the session token, and the
 * client works again. */
static void wait_event(user_t *u, const char *prefix, int ms) {
  for (int waited = 0; waited < ms; waited += 50) {
    for (; u->cursor < u->nev; u->cursor++)
      if (strncmp(u->ev[u->cursor], prefix, strlen(prefix)) == 0) {
        u->cursor++;
        return;
      } else if (strcmp(u->ev[u->cursor], "resuming") != 0) {
        dump(u);
        CHECK(0, "unexpected event %s while waiting for %s", u->ev[u->cursor], prefix);
      }
    tern_sync_wait(u->t, 50);
  }
  dump(u);
  CHECK(0, "no %s within %d ms", prefix, ms);
}

static void sc_resume(void) {
  user_t *tom = user_open("Tom");
  printf("ready\n");
  fflush(stdout);
  wait_event(tom, "paused", 30000);
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_PAUSED || tern_client_status(tom->c) == TERN_CLIENT_RESUMING,
        "paused status");
  tern_conv_t *conv;
  CHECK(tern_client_create_conv(tom->c, "x", NULL, 0, NULL, 0, NULL, NULL) == TERN_ENOTOPEN, "not while paused");
  wait_event(tom, "resumed", 30000);
  int resumings = 0;
  for (int i = 0; i < tom->nev; i++) resumings += strcmp(tom->ev[i], "resuming") == 0;
  CHECK(resumings >= 1, "resuming before resumed");
  CHECK(tern_client_status(tom->c) == TERN_CLIENT_OPEN, "open again");
  CHECK_RC(tern_sync_create_conv(tom->c, "after the restart", NULL, 0, NULL, 0, &conv));
  tern_msg_t *m = tern_msg_new_text("still here", NULL);
  CHECK_RC(tern_sync_send(conv, m, 0, NULL));
  tern_msg_free(m);
  user_free(tom);
}

static const struct {
  const char *name;
  void (*fn)(void);
} SCENARIOS[] = {
    {"client", sc_client},
    {"single_chat", sc_single_chat},
    {"group_chat", sc_group_chat},
    {"typed_messages", sc_typed_messages},
    {"custom_types", sc_custom_types},
    {"transient", sc_transient},
    {"receipt", sc_receipt},
    {"members", sc_members},
    {"update", sc_update},
    {"mute", sc_mute},
    {"chatroom", sc_chatroom},
    {"unique", sc_unique},
    {"query", sc_query},
    {"query_cache", sc_query_cache},
    {"history", sc_history},
    {"cache_file", sc_cache_file},
    {"unread", sc_unread},
    {"push_offline", sc_push_offline},
    {"signature", sc_signature},
    {"file_upload", sc_file_upload},
    {"multi_client", sc_multi_client},
    {"errors", sc_errors},
    {"resume", sc_resume},
    {"sso", sc_sso},
    {"signed", sc_signed},
};

int main(int argc, char **argv) {
  if (argc < 2) {
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) printf("%s\n", SCENARIOS[i].name);
    return 0;
  }
  for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
    if (strcmp(SCENARIOS[i].name, argv[1]) == 0) {
      SCENARIOS[i].fn();
      printf("ok %s\n", argv[1]);
      return 0;
    }
  }
  fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
