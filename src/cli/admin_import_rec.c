/* admin_import_rec.c — LeanCloud's shapes in, the target's NDJSON records out.
 *
 * The source shapes are LeanCloud's documented ones (tests/fixtures/leancloud/README.md
 * names where each comes from): storage objects with createdAt/updatedAt as ISO strings and
 * other dates as {"__type":"Date","iso"}, IM REST history items. The records are the
 * import contract (docs/migrate-import.md). What tern does not keep is dropped here and
 * nowhere else: ACL (tern has no per-object ACLs), and in history items from-ip, ack-at,
 * is-conv, is-room, conv-id (a hash on LeanCloud, not the conversation id).
 *
 * How LeanCloud marks a recalled message in a history item is not documented; the
 * content it leaves is the typed message {"_lctype":-127} (the SDKs show "recalled"
 * from exactly that), so that content is the mark, and a "recall" or "recalled" flag
 * is honoured too. */
#include <stdlib.h>
#include <string.h>

#include "admin_import.h"
#include "timeutil.h"

const char *imp_date_iso(json_t *j) {
  if (json_is_string(j)) return json_string_value(j);
  if (json_is_object(j)) {
    const char *t = json_string_value(json_object_get(j, "__type"));
    if (t && strcmp(t, "Date") == 0) return json_string_value(json_object_get(j, "iso"));
  }
  return NULL;
}

int64_t imp_date_ms(json_t *j) {
  int64_t ms = 0;
  if (json_is_integer(j)) return json_integer_value(j);
  const char *iso = imp_date_iso(j);
  if (!iso || iso_parse(iso, &ms) != 0) return 0;
  return ms;
}

const char *imp_conv_kind(json_t *obj) {
  if (json_is_true(json_object_get(obj, "tr"))) return "chatrooms";
  if (json_is_true(json_object_get(obj, "sys"))) return "service-conversations";
  return "conversations";
}

/* createdAt / updatedAt as the ISO string the contract carries (Date objects unwrapped). */
static void set_iso(json_t *rec, const char *key, json_t *v) {
  const char *iso = imp_date_iso(v);
  if (iso) json_object_set_new(rec, key, json_string(iso));
}

/* A record of `type` from a stored object: its fields but ACL, "type" and, with temp, the
 * query-only temp and ttl; its dates as ISO strings. NULL (why set) without an objectId. */
static json_t *record_of(json_t *obj, const char *type, int temp, const char **why) {
  const char *id = json_string_value(json_object_get(obj, "objectId"));
  if (!id || !*id) {
    *why = "no objectId";
    return NULL;
  }
  json_t *rec = json_pack("{s:s}", "type", type);
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    if (strcmp(k, "ACL") == 0 || strcmp(k, "type") == 0) continue;
    if (temp && (strcmp(k, "temp") == 0 || strcmp(k, "ttl") == 0)) continue;
    if (strcmp(k, "createdAt") == 0 || strcmp(k, "updatedAt") == 0) set_iso(rec, k, v);
    else json_object_set(rec, k, v);
  }
  return rec;
}

json_t *imp_rec_conversation(json_t *obj, int64_t now, const char **why) {
  json_t *rec = record_of(obj, "conversation", 1, why);
  if (!rec) return NULL;
  const char *id = json_string_value(json_object_get(obj, "objectId"));
  /* temporary conversations: only in query answers, with temp/ttl (seconds from creation) */
  int temp = json_is_true(json_object_get(obj, "temp")) || strncmp(id, "_tmp:", 5) == 0;
  json_object_set_new(rec, "temporary", json_boolean(temp));
  if (temp) {
    int64_t created = imp_date_ms(json_object_get(obj, "createdAt"));
    json_t *ttl = json_object_get(obj, "ttl");
    int64_t exp = imp_date_ms(json_object_get(obj, "expireAt"));
    if (!exp && json_is_integer(ttl) && created) exp = created + json_integer_value(ttl) * 1000;
    if (exp && exp <= now) {
      json_decref(rec);
      *why = NULL; /* gone on LeanCloud too: left out, not skipped */
      return NULL;
    }
    if (exp) {
      char iso[32];
      iso_format(exp, iso);
      json_object_set_new(rec, "expireAt", json_string(iso));
    }
  }
  return rec;
}

static int is_recalled_content(const char *data) {
  if (!data || !strstr(data, "-127")) return 0;
  json_t *j = json_loads(data, 0, NULL);
  json_t *t = json_object_get(j, "_lctype");
  int yes = json_is_integer(t) && json_integer_value(t) == -127;
  json_decref(j);
  return yes;
}

/* A JSON string, compact, as jansson writes it (UTF-8 kept, control characters escaped). */
static void put_str(buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(b, n + 2);
  buf_append(b, "\"", 1);
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    buf_append(b, s + run, i - run);
    run = i + 1;
    char esc[6] = {'\\', 0};
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      buf_append(b, esc, 6);
      continue;
    }
    buf_append(b, esc, 2);
  }
  buf_append(b, s + run, n - run);
  buf_append(b, "\"", 1);
}

/* ,"key":"value" — key is a literal that needs no escaping */
static void put_key_str(buf_t *b, const char *key, const char *s, size_t n) {
  buf_append(b, ",\"", 2);
  buf_append_str(b, key);
  buf_append(b, "\":", 2);
  put_str(b, s, n);
}

static void put_key_int(buf_t *b, const char *key, int64_t v) {
  char d[24], *p = d + sizeof d;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do *--p = (char)('0' + u % 10);
  while (u /= 10);
  if (v < 0) *--p = '-';
  buf_append(b, ",\"", 2);
  buf_append_str(b, key);
  buf_append(b, "\":", 2);
  buf_append(b, p, (size_t)(d + sizeof d - p));
}

/* One history item as its message record, written straight as a compact JSON line (no
 * json_t built and dumped: this runs once per message, a million times in a bulk run).
 * data, n: the content to send in place of the item's (a rewritten file URL), or NULL. */
int imp_rec_message_line(buf_t *out, const char *cid, const imp_item_t *it, const char *data, size_t n,
                         const char **why) {
  if (!it->mid.p || !it->mid.p[0]) {
    *why = "no msg-id";
    return -1;
  }
  if (!it->has_ts) {
    *why = "no timestamp";
    return -1;
  }
  if (!it->data.p) {
    *why = "no data";
    return -1;
  }
  if (!data) {
    data = it->data.p;
    n = it->data.n;
  }
  buf_reserve(out, 96 + strlen(cid) + it->mid.n + it->from.n + n);
  buf_append_str(out, "{\"type\":\"message\"");
  put_key_str(out, "cid", cid, strlen(cid));
  put_key_str(out, "msg-id", it->mid.p, it->mid.n);
  put_key_int(out, "timestamp", it->ts);
  put_key_str(out, "from", it->from.p ? it->from.p : "", it->from.n);
  buf_append_str(out, it->bin ? ",\"bin\":true" : ",\"bin\":false");
  put_key_str(out, it->bin ? "binary" : "data", data, n);
  if (it->patch_ts > 0) put_key_int(out, "patch-timestamp", it->patch_ts);
  if (it->recall || it->recalled || (!it->bin && is_recalled_content(data))) buf_append_str(out, ",\"recalled\":true");
  if (it->mention_all) buf_append_str(out, ",\"mention-all\":true");
  if (it->mention_pids.p) {
    buf_append_str(out, ",\"mention-pids\":");
    buf_append(out, it->mention_pids.p, it->mention_pids.n);
  } else if (it->mention_pids_json) {
    char *t = json_dumps(it->mention_pids_json, JSON_COMPACT);
    if (t) {
      buf_append_str(out, ",\"mention-pids\":");
      buf_append_str(out, t);
    }
    free(t);
  }
  buf_append(out, "}", 1);
  return 0;
}

json_t *imp_rec_installation(json_t *obj, const char **why) { return record_of(obj, "installation", 0, why); }

json_t *imp_rec_file(json_t *obj, const char **why) {
  const char *id = json_string_value(json_object_get(obj, "objectId"));
  const char *url = json_string_value(json_object_get(obj, "url"));
  if (!id || !*id) {
    *why = "no objectId";
    return NULL;
  }
  if (!url || !*url) {
    *why = "no url (a scan answer gives only the key: list _File with a class query)";
    return NULL;
  }
  const char *name = json_string_value(json_object_get(obj, "name"));
  const char *mime = json_string_value(json_object_get(obj, "mime_type"));
  json_t *meta = json_object_get(obj, "metaData");
  json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "file", "objectId", id, "name", name ? name : id, "url",
                          url, "mime_type", mime ? mime : "application/octet-stream");
  json_object_set_new(rec, "metaData", json_is_object(meta) ? json_incref(meta) : json_object());
  set_iso(rec, "createdAt", json_object_get(obj, "createdAt"));
  return rec;
}

int imp_msg_file(const char *data, json_t **parsed, const char **url, const char **objid, const char **name) {
  *parsed = NULL;
  if (!data || !strstr(data, "_lcfile")) return 0;
  json_t *j = json_loads(data, 0, NULL);
  json_t *f = json_object_get(j, "_lcfile");
  const char *u = json_string_value(json_object_get(f, "url"));
  if (!u || !*u) {
    json_decref(j);
    return 0;
  }
  *parsed = j;
  *url = u;
  *objid = json_string_value(json_object_get(f, "objId"));
  *name = json_string_value(json_object_get(f, "name"));
  if (!*name) *name = json_string_value(json_object_get(json_object_get(f, "metaData"), "name"));
  return 1;
}

char *imp_msg_rewrite_url(const char *data, const char *old_url, const char *new_url) {
  json_t *o = json_string(old_url), *n = json_string(new_url);
  char *oe = json_dumps(o, JSON_ENCODE_ANY), *ne = json_dumps(n, JSON_ENCODE_ANY);
  json_decref(o);
  json_decref(n);
  char *out = NULL;
  const char *at = oe ? strstr(data, oe) : NULL;
  if (at) {
    /* the text as the app wrote it, the URL's JSON string swapped (every occurrence) */
    buf_t b = BUF_INIT;
    const char *p = data;
    size_t ol = strlen(oe);
    while ((at = strstr(p, oe))) {
      buf_append(&b, p, (size_t)(at - p));
      buf_append_str(&b, ne);
      p = at + ol;
    }
    buf_append_str(&b, p);
    out = buf_cstr(&b);
  } else {
    /* written with other escapes: set the field and encode again */
    json_t *j = json_loads(data, 0, NULL);
    json_t *f = json_object_get(j, "_lcfile");
    if (json_is_object(f)) json_object_set_new(f, "url", json_string(new_url));
    out = j ? json_dumps(j, JSON_COMPACT) : xstrdup(data);
    json_decref(j);
  }
  free(oe);
  free(ne);
  return out;
}
