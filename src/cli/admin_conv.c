/* admin_conv.c — `tern admin conv …`: conversations, chat rooms and service conversations
 * over /1.2/rtm/{conversations,chatrooms,service-conversations} (protocol.md §7.1, §7.2).
 *
 * A conversation id alone does not say which of the three collections holds it, and the
 * REST paths differ; admin_conv_path asks the server once (or takes --room / --service)
 * so that an operator only ever types the id. Membership differs by kind too: normal
 * conversations have members, service conversations subscribers, chat rooms neither (the
 * clients in them come and go) — `add`, `remove` and `members` map onto what there is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

static const char *kind_path(const admin_args_t *a) {
  return a->room ? "/1.2/rtm/chatrooms" : a->service ? "/1.2/rtm/service-conversations" : "/1.2/rtm/conversations";
}

/* "cid  name  [a, b]" — the line `tern conv` prints too. */
static void conv_line(json_t *c) {
  const char *name = json_string_value(json_object_get(c, "name"));
  const char *kind = json_is_true(json_object_get(c, "tr"))    ? "  (chat room)"
                     : json_is_true(json_object_get(c, "sys")) ? "  (service)"
                                                               : "";
  printf("%s  %s%s", json_string_value(json_object_get(c, "objectId")), name ? name : "(unnamed)", kind);
  json_t *m = json_object_get(c, "m");
  if (json_is_array(m)) {
    size_t i;
    json_t *x;
    printf("  [");
    json_array_foreach(m, i, x) printf("%s%s", i ? ", " : "", json_string_value(x) ? json_string_value(x) : "?");
    printf("]");
  }
  printf("\n");
}

int admin_conv_create(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if ((a->room || a->service) && (a->members || a->unique))
    return admin_usage_error(ad, "--members and --unique are for normal conversations (service conversations "
                                 "take subscribers with conv add; chat rooms are joined by clients)");
  json_t *body = json_object();
  if (a->name && json_object_set_new(body, "name", json_string(a->name)) < 0) {
    json_decref(body);
    return admin_usage_error(ad, "--name is not UTF-8");
  }
  if (a->members) {
    char *words[1] = {(char *)a->members};
    json_object_set_new(body, "m", admin_id_list(words, 1));
  }
  if (a->unique) json_object_set_new(body, "unique", json_true());
  if (a->creator) json_object_set_new(body, "c", json_string(a->creator));
  if (admin_put_object(ad, body, "attr", "attr", a->attr)) {
    json_decref(body);
    return 2;
  }
  json_t *res;
  int rc = admin_call(ad, "POST", kind_path(a), body, &res);
  json_decref(body);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  /* a unique conversation that already exists answers 200, a new one 201 */
  printf("%s %s\n", ad->status == 201 ? "created" : "exists", json_string_value(json_object_get(res, "objectId")));
  json_decref(res);
  return 0;
}

/* `conv get` without --json: the stored fields under the names a person reads, in the
 * order they matter, then any custom field as it is named. --json gives the REST document
 * unchanged (LeanCloud's short keys), which scripts keep using. */
static const struct {
  const char *key, *label;
} CONV_FIELDS[] = {
    {"objectId", "id"},
    {"name", "name"},
    {"c", "creator"},
    {"m", "members"},
    {"tr", "chat room"},
    {"sys", "service conversation"},
    {"temp", "temporary"},
    {"ttl", "expires (seconds)"},
    {"unique", "unique"},
    {"uniqueId", "unique id"},
    {"mu", "offline push muted for"},
    {"attr", "attributes"},
    {"createdAt", "created"},
    {"updatedAt", "updated"},
    {"lm", "last message at"},
};

static void print_conv_value(const char *label, json_t *v) {
  size_t i;
  json_t *x;
  int strings = json_is_array(v);
  json_array_foreach(v, i, x) strings &= json_is_string(x);
  json_t *iso = json_is_object(v) ? json_object_get(v, "iso") : NULL; /* {"__type":"Date","iso":…} */
  printf("%s: ", label);
  if (json_is_string(v)) printf("%s", json_string_value(v));
  else if (json_is_boolean(v)) printf("%s", json_is_true(v) ? "yes" : "no");
  else if (json_is_string(iso)) printf("%s", json_string_value(iso));
  else if (strings && json_array_size(v) == 0) printf("(none)");
  else if (strings) json_array_foreach(v, i, x) printf("%s%s", i ? ", " : "", json_string_value(x));
  else {
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s", s ? s : "?");
    free(s);
  }
  printf("\n");
}

int admin_conv_get(admin_t *ad) {
  char *path = admin_conv_path(ad, ad->a.pos[0], NULL);
  if (!path) return 1;
  json_t *res;
  int rc = admin_call(ad, "GET", path, NULL, &res);
  free(path);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  size_t nf = sizeof CONV_FIELDS / sizeof CONV_FIELDS[0];
  for (size_t i = 0; i < nf; i++) {
    json_t *v = json_object_get(res, CONV_FIELDS[i].key);
    if (v && !json_is_null(v)) print_conv_value(CONV_FIELDS[i].label, v);
  }
  const char *k;
  json_t *v;
  json_object_foreach(res, k, v) {
    size_t i = 0;
    while (i < nf && strcmp(CONV_FIELDS[i].key, k) != 0) i++;
    if (i == nf) print_conv_value(k, v);
  }
  json_decref(res);
  return 0;
}

int admin_conv_list(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if (a->all && (a->room || a->service))
    return admin_usage_error(ad, "--all lists every kind: leave out --room/--service");
  buf_t p = BUF_INIT;
  buf_append_str(&p, a->all ? "/1.2/rtm/all-conversations" : kind_path(a));
  char sep = '?';
  if (a->where) {
    json_t *w = admin_json_arg(ad, "where", a->where, JSON_OBJECT);
    if (!w) {
      buf_free(&p);
      return 2;
    }
    char *text = json_dumps(w, JSON_COMPACT);
    json_decref(w);
    buf_printf(&p, "%cwhere=", sep);
    buf_append_pct(&p, text);
    free(text);
    sep = '&';
  }
  if (a->order) {
    buf_printf(&p, "%corder=", sep);
    buf_append_pct(&p, a->order);
    sep = '&';
  }
  if (a->has_limit) {
    buf_printf(&p, "%climit=%d", sep, a->limit);
    sep = '&';
  }
  if (a->skip) buf_printf(&p, "%cskip=%d", sep, a->skip);
  json_t *res;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(res, "results"), i, c) conv_line(c);
  json_decref(res);
  return 0;
}

int admin_conv_update(admin_t *ad) {
  admin_args_t *a = &ad->a;
  if (!a->name && !a->attr && !a->set) return admin_usage_error(ad, "nothing to update: --name, --attr or --set");
  json_t *body = a->set ? admin_json_arg(ad, "set", a->set, JSON_OBJECT) : json_object();
  if (!body) return 2;
  if (a->name && json_object_set_new(body, "name", json_string(a->name)) < 0) {
    json_decref(body);
    return admin_usage_error(ad, "--name is not UTF-8");
  }
  if (a->attr) {
    /* each attribute as "attr.<key>": the others stay, as with the SDKs' update builder */
    json_t *attr = admin_json_arg(ad, "attr", a->attr, JSON_OBJECT);
    if (!attr) {
      json_decref(body);
      return 2;
    }
    const char *k;
    json_t *v;
    json_object_foreach(attr, k, v) {
      buf_t key = BUF_INIT;
      buf_printf(&key, "attr.%s", k);
      json_object_set(body, buf_cstr(&key), v);
      buf_free(&key);
    }
    json_decref(attr);
  }
  char *path = admin_conv_path(ad, a->pos[0], NULL);
  json_t *res = NULL;
  int rc = path ? admin_call(ad, "PUT", path, body, &res) : 1;
  free(path);
  json_decref(body);
  if (rc) return rc;
  if (a->json) return admin_print_json(res);
  printf("updated %s at %s\n", a->pos[0], json_string_value(json_object_get(res, "updatedAt")));
  json_decref(res);
  return 0;
}

int admin_conv_delete(admin_t *ad) {
  char *path = admin_conv_path(ad, ad->a.pos[0], NULL);
  int rc = path ? admin_act(ad, "DELETE", path, NULL, "deleted %s", ad->a.pos[0]) : 1;
  free(path);
  return rc;
}

int admin_conv_members(admin_t *ad) {
  const char *cid = ad->a.pos[0];
  const char *kind = admin_conv_kind(ad, cid);
  if (!kind) return 1;
  int service = strcmp(kind, "service-conversations") == 0;
  /* chat rooms: who is in the room now; service conversations: the first subscribers */
  buf_t p = BUF_INIT;
  buf_printf(&p, "/1.2/rtm/%s/", kind);
  buf_append_pct(&p, cid);
  buf_append_str(&p, service ? "/subscribers?limit=50" : "/members");
  json_t *res;
  int rc = admin_call(ad, "GET", buf_cstr(&p), NULL, &res);
  buf_free(&p);
  if (rc) return rc;
  if (ad->a.json) return admin_print_json(res);
  size_t i;
  json_t *x;
  json_array_foreach(service ? res : json_object_get(res, "result"), i, x) {
    const char *id = json_string_value(service ? json_object_get(x, "subscriber") : x);
    printf("%s\n", id ? id : "?");
  }
  json_decref(res);
  return 0;
}

/* add / remove: members of a normal conversation, subscribers of a service one. */
static int members_change(admin_t *ad, int add) {
  const char *cid = ad->a.pos[0];
  json_t *ids = admin_id_list(ad->a.pos + 1, ad->a.npos - 1);
  if (json_array_size(ids) == 0) {
    json_decref(ids);
    return admin_usage_error(ad, "which client ids?");
  }
  const char *kind = admin_conv_kind(ad, cid);
  int rc = 1;
  json_t *res = NULL;
  if (!kind) {
    /* the lookup failed and said why */
  } else if (strcmp(kind, "chatrooms") == 0) {
    fprintf(stderr, "tern admin: %s is a chat room: it has no member list (clients join and leave it)\n", cid);
  } else if (strcmp(kind, "service-conversations") == 0) {
    size_t i;
    json_t *id;
    rc = 0;
    json_array_foreach(ids, i, id) {
      buf_t p = BUF_INIT;
      buf_append_str(&p, "/1.2/rtm/service-conversations/");
      buf_append_pct(&p, cid);
      buf_append_str(&p, "/subscribers");
      json_t *body = NULL;
      if (add) {
        body = json_pack("{s:O}", "client_id", id);
      } else {
        buf_append_str(&p, "/");
        buf_append_pct(&p, json_string_value(id));
      }
      json_decref(res);
      res = NULL;
      rc = admin_call(ad, add ? "POST" : "DELETE", buf_cstr(&p), body, &res);
      json_decref(body);
      buf_free(&p);
      if (rc) break;
    }
  } else {
    buf_t p = BUF_INIT;
    buf_append_str(&p, "/1.2/rtm/conversations/");
    buf_append_pct(&p, cid);
    buf_append_str(&p, "/members");
    json_t *body = json_pack("{s:O}", "client_ids", ids);
    rc = admin_call(ad, add ? "POST" : "DELETE", buf_cstr(&p), body, &res);
    json_decref(body);
    buf_free(&p);
  }
  if (rc == 0 && ad->a.json) {
    admin_print_json(res);
    res = NULL;
  } else if (rc == 0) {
    size_t i;
    json_t *id;
    printf("%s ", add ? "added" : "removed");
    json_array_foreach(ids, i, id) printf("%s%s", i ? ", " : "", json_string_value(id));
    printf(" %s %s\n", add ? "to" : "from", cid);
  }
  json_decref(res);
  json_decref(ids);
  return rc;
}

int admin_conv_add(admin_t *ad) { return members_change(ad, 1); }
int admin_conv_remove(admin_t *ad) { return members_change(ad, 0); }

/* Offline-push mutes (the conversation's `mu`): only normal conversations have them. */
static int mutes_change(admin_t *ad, int mute) {
  const char *cid = ad->a.pos[0];
  json_t *ids = admin_id_list(ad->a.pos + 1, ad->a.npos - 1);
  if (json_array_size(ids) == 0) {
    json_decref(ids);
    return admin_usage_error(ad, "which client ids?");
  }
  buf_t p = BUF_INIT;
  buf_append_str(&p, "/1.2/rtm/conversations/");
  buf_append_pct(&p, cid);
  buf_append_str(&p, "/mutes");
  json_t *body = json_pack("{s:O}", "client_ids", ids), *res;
  int rc = admin_call(ad, mute ? "POST" : "DELETE", buf_cstr(&p), body, &res);
  json_decref(body);
  buf_free(&p);
  if (rc == 0 && ad->a.json) {
    admin_print_json(res);
  } else if (rc == 0) {
    size_t i;
    json_t *id;
    printf("%s ", mute ? "muted" : "unmuted");
    json_array_foreach(ids, i, id) printf("%s%s", i ? ", " : "", json_string_value(id));
    printf(" in %s\n", cid);
    json_decref(res);
  }
  json_decref(ids);
  return rc;
}

int admin_conv_mute(admin_t *ad) { return mutes_change(ad, 1); }
int admin_conv_unmute(admin_t *ad) { return mutes_change(ad, 0); }
