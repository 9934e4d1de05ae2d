/* jsonlim.c — see jsonlim.h. */
#include "jsonlim.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "timeutil.h"
#include "utf8.h"

void json_abort_on_oom(void) { json_set_alloc_funcs(xmalloc, free); }

int json_text_depth(const char *s, size_t len, int max) {
  int depth = 0, deepest = 0, in_str = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (in_str) {
      if (ch == '\\') i++; /* the escaped character cannot end the string */
      else if (ch == '"') in_str = 0;
    } else if (ch == '"') {
      in_str = 1;
    } else if (ch == '[' || ch == '{') {
      if (++depth > deepest && (deepest = depth) > max) return max + 1;
    } else if ((ch == ']' || ch == '}') && depth > 0) {
      depth--;
    }
  }
  return deepest;
}

static json_t *too_deep(json_error_t *err) {
  if (err) {
    memset(err, 0, sizeof *err);
    snprintf(err->text, sizeof err->text, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    err->line = err->column = -1;
  }
  return NULL;
}

json_t *json_loadb_capped(const char *buf, size_t len, size_t flags, json_error_t *err) {
  if (buf && json_text_depth(buf, len, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) return too_deep(err);
  return json_loadb(buf, len, flags, err);
}

json_t *json_loads_capped(const char *s, size_t flags, json_error_t *err) {
  if (s && json_text_depth(s, strlen(s), JSON_MAX_DEPTH) > JSON_MAX_DEPTH) return too_deep(err);
  return json_loads(s, flags, err);
}

int json_value_depth(const json_t *v, int max) {
  if (!json_is_object(v) && !json_is_array(v)) return 0;
  if (max <= 0) return 1;
  int deepest = 0;
  if (json_is_object(v)) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x) {
      int d = json_value_depth(x, max - 1);
      if (d > deepest && (deepest = d) >= max) break;
    }
  } else {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      int d = json_value_depth(x, max - 1);
      if (d > deepest && (deepest = d) >= max) break;
    }
  }
  return deepest + 1;
}

json_t *json_stringn_lossy(const char *s, size_t len) {
  json_t *j = json_stringn(s ? s : "", s ? len : 0);
  if (j) return j;
  buf_t b = BUF_INIT;
  utf8_sanitize(s, len, &b);
  j = json_stringn(b.data ? (const char *)b.data : "", b.len);
  buf_free(&b);
  return j ? j : json_string("");
}

size_t json_compact_size(const json_t *v) { return v ? json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0; }

json_t *json_stored_object(const char *doc, const char *id, int64_t created_at, int64_t updated_at) {
  json_t *o = doc ? json_loads(doc, 0, NULL) : NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    o = json_object();
  }
  char iso[ISO_LEN + 1];
  json_object_set_new(o, "objectId", json_string(id));
  iso_format(created_at, iso);
  json_object_set_new(o, "createdAt", json_string(iso));
  iso_format(updated_at, iso);
  json_object_set_new(o, "updatedAt", json_string(iso));
  return o;
}
