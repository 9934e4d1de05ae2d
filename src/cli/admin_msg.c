/* admin_msg.c — `tern admin msg …`, `broadcast` and `subscribers`: messages sent as any
 * client, history, edit, recall and delete over /1.2/rtm/…/{cid}/messages, and the
 * service conversations' broadcasts and subscriber lists (protocol.md §7.1, §7.2).
 *
 * --text makes a typed text message ({"_lctype":-1,"_lctext":…}), what every SDK shows as
 * text; --content sends the bytes given, for custom types or plain strings. History pages
 * by a message: --before / --after / --until take a message id (tern's ids carry their
 * time), a time in ms, or "id/time" for ids from elsewhere (LeanCloud's need both). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

/* The message text a --text/--content pair makes, malloc'd; NULL after a usage error. */
static char *message_of(admin_t *ad, int *usage) {
  admin_args_t *a = &ad->a;
  *usage = 0;
  if (!!a->text == !!a->content) {
    *usage = admin_usage_error(ad, "give the message with --text T or --content RAW (one of them)");
    return NULL;
  }
  if (a->content) {
    if (a->attr) *usage = admin_usage_error(ad, "--attr goes with --text (put attributes in --content yourself)");
    return *usage ? NULL : xstrdup(a->content);
  }
  json_t *m = json_pack("{s:i, s:s}", "_lctype", -1, "_lctext", a->text);
  if (!m) {
    *usage = admin_usage_error(ad, "--text is not UTF-8");
    return NULL;
  }
  if ((*usage = admin_put_object(ad, m, "_lcattrs", "attr", a->attr))) {
    json_decref(m);
    return NULL;
  }
  char *s = json_dumps(m, JSON_COMPACT);
  json_decref(m);
  return s;
}

/* "{msg-id, timestamp}" answers of send and broadcast. */
static int print_sent(admin_t *ad, json_t *res, const char *verb) {
  if (ad->a.json) return admin_print_json(res);
  char when[32];
  admin_time(json_integer_value(json_object_get(res, "timestamp")), when);
  printf("%s %s at %s\n", verb, json_string_value(json_object_get(res, "msg-id")), when);
  json_decref(res);
  return 0;
}

/* {from_client, message} of a send or a broadcast, or NULL with *usage the exit status. */
static json_t *send_body(admin_t *ad, int *usage) {
  if (!ad->a.from) {
    *usage = admin_usage_error(ad, "--from ID (the sender) is required");
    return NULL;
  }
  char *text = message_of(ad, usage);
  if (!text) return NULL;
  json_t *body = json_pack("{s:s, s:s}", "from_client", ad->a.from, "message", text);
  free(text);
  if (!body) *usage = admin_usage_error(ad, "--from is not UTF-8");
  return body;
}

int admin_msg_send(admin_t *ad) {
  admin_args_t *a = &ad->a;
  int usage;
  json_t *body = send_body(ad, &usage);
  if (!body) return usage;
  if (a->transient) json_object_set_new(body, "transient", json_true());
  if (a->no_sync) json_object_set_new(body, "no_sync", json_true());
  if (a->priority) json_object_set_new(body, "priority", json_string(a->priority));
  if (a->mention_all) json_object_set_new(body, "mention_all", json_true());
  char *words[1];
  if (a->mention) {
    words[0] = (char *)a->mention;
    json_object_set_new(body, "mention_client_ids", admin_id_list(words, 1));
  }
  if (a->to) {
    words[0] = (char *)a->to;
    json_object_set_new(body, "to_clients", admin_id_list(words, 1));
  }
  if (admin_put_object(ad, body, "push_data", "push-data", a->push_data)) {
    json_decref(body);
    return 2;
  }
  char *path = admin_conv_path(ad, a->pos[0], "/messages");
  json_t *res = NULL;
  int rc = path ? admin_call(ad, "POST", path, body, &res) : 1;
  free(path);
  json_decref(body);
  return rc ? rc : print_sent(ad, res, "sent");
}

static int all_digits(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return 0;
  return 1;
}

/* --before/--after/--until X as query parameters: a time in ms (digits only), "MID/TS",
 * or else a message id. */
static void add_bound(buf_t *q, const char *x, const char *mid_key, const char *ts_key) {
  const char *slash = strrchr(x, '/');
  if (all_digits(x)) {
    buf_printf(q, "&%s=%s", ts_key, x);
    return;
  }
  int split = slash && slash > x && all_digits(slash + 1);
  char *mid = xstrndup(x, split ? (size_t)(slash - x) : strlen(x));
  buf_printf(q, "&%s=", mid_key);
  buf_append_pct(q, mid);
  free(mid);
  if (split) buf_printf(q, "&%s=%s", ts_key, slash + 1);
}

/* One history item as a line: time, id, sender, and the text of a typed message. */
static void history_line(json_t *it) {
  char when[32];
  admin_time(json_integer_value(json_object_get(it, "timestamp")), when);
  const char *data = json_string_value(json_object_get(it, "data"));
  json_t *typed = data ? json_loads(data, 0, NULL) : NULL;
  json_t *type = json_object_get(typed, "_lctype");
  const char *text = json_string_value(json_object_get(typed, "_lctext"));
  printf("%s  %s  %s: ", when, json_string_value(json_object_get(it, "msg-id")),
         json_string_value(json_object_get(it, "from")));
  if (json_is_integer(type) && json_integer_value(type) != -1)
    printf("[type %lld] ", (long long)json_integer_value(type));
  printf("%s\n", json_is_integer(type) ? (text ? text : "") : data ? data : "(binary)");
  json_decref(typed);
}

int admin_msg_history(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if (a->before && a->after) return admin_usage_error(ad, "--before pages back, --after forward: one of them");
  if (a->before && a->reversed) return admin_usage_error(ad, "--before lists newest first: drop --reversed");
  int reversed = a->reversed || a->after;
  const char *cid = a->pos[0];
  const char *kind = admin_conv_kind(ad, cid);
  if (!kind) return 1;
  if (a->client && strcmp(kind, "service-conversations") != 0)
    return admin_usage_error(ad, "--client is for service conversations (what one subscriber sees)");
  buf_t p = BUF_INIT;
  buf_printf(&p, "/1.2/rtm/%s/", kind);
  buf_append_pct(&p, cid);
  if (a->client) {
    buf_append_str(&p, "/subscribers/");
    buf_append_pct(&p, a->client);
  }
  buf_printf(&p, "/messages?limit=%d%s", a->has_limit ? a->limit : 20, reversed ? "&reversed=true" : "");
  const char *start = a->before ? a->before : a->after;
  if (start) add_bound(&p, start, "msgid", "timestamp");
  if (a->until) add_bound(&p, a->until, "till_msgid", "till_timestamp");
  json_t *res = NULL;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  /* read top to bottom in time, like `tern history`, whichever way the page was taken */
  size_t n = json_array_size(res);
  for (size_t i = 0; i < n; i++) history_line(json_array_get(res, reversed ? i : n - 1 - i));
  json_decref(res);
  return 0;
}

/* The path of one message: …/{cid}/messages/{mid}[rest]. */
static char *message_path(admin_t *ad, const char *rest) {
  char *conv = admin_conv_path(ad, ad->a.pos[0], "/messages/");
  if (!conv) return NULL;
  buf_t p = BUF_INIT;
  buf_append_str(&p, conv);
  free(conv);
  buf_append_pct(&p, ad->a.pos[1]);
  buf_append_str(&p, rest);
  return buf_cstr(&p);
}

static int patch_message(admin_t *ad, int recall) {
  admin_args_t *a = &ad->a;
  if (!a->from) return admin_usage_error(ad, "--from SENDER is required: only the sender's messages change");
  json_t *body = json_pack("{s:s}", "from_client", a->from);
  if (!body) return admin_usage_error(ad, "--from is not UTF-8");
  if (!recall) {
    int usage;
    char *text = message_of(ad, &usage);
    if (!text) {
      json_decref(body);
      return usage;
    }
    json_object_set_new(body, "message", json_string(text));
    free(text);
  }
  char *path = message_path(ad, recall ? "/recall" : "");
  int rc = path ? admin_act(ad, "PUT", path, body, "%s %s", recall ? "recalled" : "edited", a->pos[1]) : 1;
  free(path);
  json_decref(body);
  return rc;
}

int admin_msg_edit(admin_t *ad) { return patch_message(ad, 0); }
int admin_msg_recall(admin_t *ad) { return patch_message(ad, 1); }

int admin_msg_delete(admin_t *ad) {
  char *path = message_path(ad, "");
  if (!path) return 1;
  buf_t p = BUF_INIT;
  buf_append_str(&p, path);
  free(path);
  if (ad->a.from) {
    buf_append_str(&p, "?from_client=");
    buf_append_pct(&p, ad->a.from);
  }
  int rc = admin_act(ad, "DELETE", buf_cstr(&p), NULL, "deleted %s (the server's copy)", ad->a.pos[1]);
  buf_free(&p);
  return rc;
}

/* ---------------------------------------------------------------- service conversations */

static void service_path(buf_t *p, const char *cid, const char *rest) {
  buf_append_str(p, "/1.2/rtm/service-conversations/");
  buf_append_pct(p, cid);
  buf_append_str(p, rest);
}

int admin_broadcast(admin_t *ad) {
  admin_args_t *a = &ad->a;
  int usage;
  json_t *body = send_body(ad, &usage);
  if (!body) return usage;
  if (admin_put_object(ad, body, "push", "push-data", a->push_data)) { /* broadcasts call it "push" (§7.2) */
    json_decref(body);
    return 2;
  }
  buf_t p = BUF_INIT;
  service_path(&p, a->pos[0], "/broadcasts");
  json_t *res;
  int rc = admin_call(ad, "POST", buf_cstr(&p), body, &res);
  buf_free(&p);
  json_decref(body);
  return rc ? rc : print_sent(ad, res, "broadcast");
}

int admin_subscribers(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if (a->count && (a->has_limit || a->next)) return admin_usage_error(ad, "--count counts them all: no paging");
  buf_t p = BUF_INIT;
  service_path(&p, a->pos[0], a->count ? "/subscribers/count" : "/subscribers");
  if (!a->count) {
    buf_printf(&p, "?limit=%d", a->has_limit ? a->limit : 50);
    if (a->next) {
      buf_append_str(&p, "&client_id=");
      buf_append_pct(&p, a->next);
    }
  }
  json_t *res;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  if (a->count) {
    printf("%lld\n", (long long)json_integer_value(json_object_get(res, "count")));
  } else {
    size_t i;
    json_t *s;
    json_array_foreach(res, i, s) {
      char when[32];
      admin_time(json_integer_value(json_object_get(s, "timestamp")), when);
      printf("%s\tsince %s\n", json_string_value(json_object_get(s, "subscriber")), when);
    }
  }
  json_decref(res);
  return 0;
}
