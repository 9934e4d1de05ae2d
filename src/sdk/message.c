/* message.c — AVIMMessage and AVIMTypedMessage: building messages and their wire content.
 *
 * A typed message travels as JSON text (protocol.md §4): _lctype, _lctext, _lcattrs,
 * _lcfile {url, objId, metaData{name, format, size, width, height, duration}}, _lcloc, plus
 * any custom top-level fields. Everything else is a "common" message whose content is kept
 * verbatim. Parsing keeps unknown keys in `extra` so a message forwarded or re-encoded by
 * libtern loses nothing another SDK put in it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

tern_msg_t *msg_alloc(void) {
  tern_msg_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->file_size = -1;
  m->file_width = -1;
  m->file_height = -1;
  m->file_duration = -1;
  return m;
}

void msg_set_str(char **dst, const char *s) {
  char *d = s ? strdup(s) : NULL;
  if (s && !d) return;
  free(*dst);
  *dst = d;
}

void tern_msg_free(tern_msg_t *m) {
  if (!m) return;
  free(m->content);
  free(m->text);
  json_decref(m->attrs);
  free(m->attrs_s);
  json_decref(m->extra);
  free(m->file_url);
  free(m->file_obj_id);
  free(m->file_name);
  free(m->file_format);
  free(m->file_path);
  free(m->id);
  free(m->cid);
  free(m->from);
  free(m);
}

static int set_attrs(tern_msg_t *m, const char *attrs_json) {
  json_decref(m->attrs);
  m->attrs = NULL;
  free(m->attrs_s);
  m->attrs_s = NULL;
  if (!attrs_json) return 0;
  json_t *o = json_loads(attrs_json, 0, NULL);
  if (!json_is_object(o)) {
    json_decref(o);
    return TERN_EINVAL;
  }
  m->attrs = o;
  return 0;
}

tern_msg_t *tern_msg_new_common(const char *content) {
  tern_msg_t *m = msg_alloc();
  if (!m) return NULL;
  m->content = strdup(content ? content : "");
  if (!m->content) {
    tern_msg_free(m);
    return NULL;
  }
  return m;
}

tern_msg_t *tern_msg_new_typed(int type, const char *text, const char *attrs_json) {
  if (type == 0) return NULL;
  tern_msg_t *m = msg_alloc();
  if (!m) return NULL;
  m->type = type;
  m->typed = 1;
  if ((text && !(m->text = strdup(text))) || set_attrs(m, attrs_json) < 0) {
    tern_msg_free(m);
    return NULL;
  }
  return m;
}

tern_msg_t *tern_msg_new_text(const char *text, const char *attrs_json) {
  return tern_msg_new_typed(TERN_MSG_TEXT, text, attrs_json);
}

static int is_file_type(int type) {
  return type == TERN_MSG_IMAGE || type == TERN_MSG_AUDIO || type == TERN_MSG_VIDEO || type == TERN_MSG_FILE ||
         type > 0;
}

static const char *basename_of(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

static void guess_format(tern_msg_t *m, const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot && dot[1] && !strchr(dot, '/') && !strchr(dot, '?')) msg_set_str(&m->file_format, dot + 1);
}

tern_msg_t *tern_msg_new_file_path(int type, const char *text, const char *path, const char *attrs_json) {
  if (!path || !is_file_type(type)) return NULL;
  tern_msg_t *m = tern_msg_new_typed(type, text, attrs_json);
  if (!m) return NULL;
  m->file_path = strdup(path);
  m->file_name = strdup(basename_of(path));
  if (!m->file_path || !m->file_name) {
    tern_msg_free(m);
    return NULL;
  }
  guess_format(m, m->file_name);
  return m;
}

tern_msg_t *tern_msg_new_file_url(int type, const char *text, const char *url, const char *attrs_json) {
  if (!url || !is_file_type(type)) return NULL;
  tern_msg_t *m = tern_msg_new_typed(type, text, attrs_json);
  if (!m) return NULL;
  m->file_url = strdup(url);
  if (!m->file_url) {
    tern_msg_free(m);
    return NULL;
  }
  return m;
}

tern_msg_t *tern_msg_new_location(const char *text, double latitude, double longitude, const char *attrs_json) {
  tern_msg_t *m = tern_msg_new_typed(TERN_MSG_LOCATION, text, attrs_json);
  if (!m) return NULL;
  m->has_loc = 1;
  m->lat = latitude;
  m->lon = longitude;
  return m;
}

tern_msg_t *tern_msg_dup(const tern_msg_t *s) {
  if (!s) return NULL;
  tern_msg_t *m = msg_alloc();
  if (!m) return NULL;
  *m = *s;
  m->content = m->text = m->attrs_s = m->file_url = m->file_obj_id = m->file_name = m->file_format = m->file_path =
      m->id = m->cid = m->from = NULL;
  m->attrs = s->attrs ? json_deep_copy(s->attrs) : NULL;
  m->extra = s->extra ? json_deep_copy(s->extra) : NULL;
  msg_set_str(&m->content, s->content);
  msg_set_str(&m->text, s->text);
  msg_set_str(&m->file_url, s->file_url);
  msg_set_str(&m->file_obj_id, s->file_obj_id);
  msg_set_str(&m->file_name, s->file_name);
  msg_set_str(&m->file_format, s->file_format);
  msg_set_str(&m->file_path, s->file_path);
  msg_set_str(&m->id, s->id);
  msg_set_str(&m->cid, s->cid);
  msg_set_str(&m->from, s->from);
  if ((s->content && !m->content) || (s->text && !m->text) || (s->attrs && !m->attrs) || (s->extra && !m->extra) ||
      (s->id && !m->id) || (s->file_url && !m->file_url)) {
    tern_msg_free(m);
    return NULL;
  }
  return m;
}

int tern_msg_set_text(tern_msg_t *m, const char *text) {
  if (!m) return TERN_EINVAL;
  char *d = text ? strdup(text) : NULL;
  if (text && !d) return TERN_ENOMEM;
  free(m->text);
  m->text = d;
  return 0;
}

int tern_msg_set_attributes(tern_msg_t *m, const char *attrs_json) {
  if (!m) return TERN_EINVAL;
  return set_attrs(m, attrs_json);
}

int tern_msg_set_field(tern_msg_t *m, const char *key, const char *value_json) {
  if (!m || !key || strncmp(key, "_lc", 3) == 0) return TERN_EINVAL;
  if (!m->extra && !(m->extra = json_object())) return TERN_ENOMEM;
  if (!value_json) {
    json_object_del(m->extra, key);
    return 0;
  }
  json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);
  if (!v) return TERN_EINVAL;
  return json_object_set_new(m->extra, key, v) == 0 ? 0 : TERN_ENOMEM;
}

int tern_msg_type(const tern_msg_t *m) { return m ? m->type : 0; }
const char *tern_msg_text(const tern_msg_t *m) { return m ? m->text : NULL; }
const char *tern_msg_attributes(const tern_msg_t *cm) {
  tern_msg_t *m = (tern_msg_t *)cm;
  if (!m || !m->attrs) return NULL;
  if (!m->attrs_s) m->attrs_s = json_dumps(m->attrs, JSON_COMPACT | JSON_SORT_KEYS);
  return m->attrs_s;
}
char *tern_msg_field(const tern_msg_t *m, const char *key) {
  if (!m || !key || !m->extra) return NULL;
  json_t *v = json_object_get(m->extra, key);
  return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
}
const char *tern_msg_content(const tern_msg_t *cm) {
  tern_msg_t *m = (tern_msg_t *)cm;
  if (!m) return NULL;
  if (!m->content && m->typed) msg_encode(m);
  return m->content;
}
const char *tern_msg_id(const tern_msg_t *m) { return m ? m->id : NULL; }
const char *tern_msg_conv_id(const tern_msg_t *m) { return m ? m->cid : NULL; }
const char *tern_msg_from(const tern_msg_t *m) { return m ? m->from : NULL; }
int64_t tern_msg_timestamp(const tern_msg_t *m) { return m ? m->ts : 0; }
int64_t tern_msg_delivered_at(const tern_msg_t *m) { return m ? m->delivered_at : 0; }
tern_msg_status_t tern_msg_status(const tern_msg_t *m) { return m ? m->status : TERN_STATUS_NONE; }
tern_msg_io_t tern_msg_io_type(const tern_msg_t *m) { return m ? m->io : TERN_IO_OUT; }
int tern_msg_is_transient(const tern_msg_t *m) { return m && m->transient; }
const char *tern_msg_file_url(const tern_msg_t *m) { return m ? m->file_url : NULL; }
const char *tern_msg_file_obj_id(const tern_msg_t *m) { return m ? m->file_obj_id : NULL; }
const char *tern_msg_file_name(const tern_msg_t *m) { return m ? m->file_name : NULL; }
const char *tern_msg_file_format(const tern_msg_t *m) { return m ? m->file_format : NULL; }
int64_t tern_msg_file_size(const tern_msg_t *m) { return m ? m->file_size : -1; }
int tern_msg_file_width(const tern_msg_t *m) { return m ? m->file_width : -1; }
int tern_msg_file_height(const tern_msg_t *m) { return m ? m->file_height : -1; }
double tern_msg_file_duration(const tern_msg_t *m) { return m ? m->file_duration : -1; }
double tern_msg_latitude(const tern_msg_t *m) { return m && m->has_loc ? m->lat : 0; }
double tern_msg_longitude(const tern_msg_t *m) { return m && m->has_loc ? m->lon : 0; }

/* ---- wire content ---- */

static json_t *file_json(const tern_msg_t *m) {
  json_t *f = json_object();
  json_t *meta = json_object();
  if (m->file_url) json_object_set_new(f, "url", json_string(m->file_url));
  if (m->file_obj_id) json_object_set_new(f, "objId", json_string(m->file_obj_id));
  if (m->file_name) json_object_set_new(meta, "name", json_string(m->file_name));
  if (m->file_format) json_object_set_new(meta, "format", json_string(m->file_format));
  if (m->file_size >= 0) json_object_set_new(meta, "size", json_integer(m->file_size));
  if (m->file_width >= 0) json_object_set_new(meta, "width", json_integer(m->file_width));
  if (m->file_height >= 0) json_object_set_new(meta, "height", json_integer(m->file_height));
  if (m->file_duration >= 0) json_object_set_new(meta, "duration", json_real(m->file_duration));
  if (json_object_size(meta)) json_object_set_new(f, "metaData", meta);
  else json_decref(meta);
  return f;
}

int msg_encode(tern_msg_t *m) {
  if (!m->typed) return m->content ? 0 : TERN_EINVAL;
  json_t *o = m->extra ? json_deep_copy(m->extra) : json_object();
  if (!o) return TERN_ENOMEM;
  json_object_set_new(o, "_lctype", json_integer(m->type));
  if (m->text) json_object_set_new(o, "_lctext", json_string(m->text));
  if (m->attrs) json_object_set(o, "_lcattrs", m->attrs);
  if (m->file_url || m->file_obj_id) json_object_set_new(o, "_lcfile", file_json(m));
  if (m->has_loc) json_object_set_new(o, "_lcloc", json_pack("{s:f,s:f}", "latitude", m->lat, "longitude", m->lon));
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) return TERN_ENOMEM;
  free(m->content);
  m->content = s;
  return 0;
}

static double num(json_t *x, double dflt) { return json_is_number(x) ? json_number_value(x) : dflt; }

tern_msg_t *msg_from_content(tern_t *t, const char *content) {
  tern_msg_t *m = msg_alloc();
  if (!m) return NULL;
  m->content = strdup(content ? content : "");
  if (!m->content) {
    tern_msg_free(m);
    return NULL;
  }
  json_t *o = content && content[0] == '{' ? json_loads(content, 0, NULL) : NULL;
  json_t *type = json_object_get(o, "_lctype");
  if (!json_is_integer(type) || json_integer_value(type) == 0 ||
      !tern_type_registered(t, (int)json_integer_value(type))) {
    json_decref(o);
    return m; /* a common message */
  }
  m->typed = 1;
  m->type = (int)json_integer_value(type);
  const char *text = json_string_value(json_object_get(o, "_lctext"));
  if (text) m->text = strdup(text);
  json_t *attrs = json_object_get(o, "_lcattrs");
  if (json_is_object(attrs)) m->attrs = json_incref(attrs);
  json_t *f = json_object_get(o, "_lcfile");
  if (json_is_object(f)) {
    msg_set_str(&m->file_url, json_string_value(json_object_get(f, "url")));
    msg_set_str(&m->file_obj_id, json_string_value(json_object_get(f, "objId")));
    json_t *meta = json_object_get(f, "metaData");
    json_t *src = json_is_object(meta) ? meta : f; /* REST docs put name/size in _lcfile itself */
    msg_set_str(&m->file_name, json_string_value(json_object_get(src, "name")));
    msg_set_str(&m->file_format, json_string_value(json_object_get(src, "format")));
    m->file_size = (int64_t)num(json_object_get(src, "size"), -1);
    m->file_width = (int)num(json_object_get(src, "width"), -1);
    m->file_height = (int)num(json_object_get(src, "height"), -1);
    m->file_duration = num(json_object_get(src, "duration"), -1);
  }
  json_t *loc = json_object_get(o, "_lcloc");
  if (json_is_object(loc)) {
    m->has_loc = 1;
    m->lat = num(json_object_get(loc, "latitude"), 0);
    m->lon = num(json_object_get(loc, "longitude"), 0);
  }
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    if (strncmp(k, "_lc", 3) == 0) continue;
    if (!m->extra) m->extra = json_object();
    if (m->extra) json_object_set(m->extra, k, v);
  }
  json_decref(o);
  return m;
}

/* The cache's row form: metadata plus content. */
json_t *msg_to_json(const tern_msg_t *m) {
  return json_pack("{s:s?,s:s?,s:s?,s:I,s:I,s:s?,s:i,s:i}", "id", m->id, "cid", m->cid, "from", m->from, "timestamp",
                   (json_int_t)m->ts, "deliveredAt", (json_int_t)m->delivered_at, "content", tern_msg_content(m),
                   "status", (int)m->status, "io", (int)m->io);
}

tern_msg_t *msg_from_json(tern_t *t, json_t *j) {
  tern_msg_t *m = msg_from_content(t, json_string_value(json_object_get(j, "content")));
  if (!m) return NULL;
  msg_set_str(&m->id, json_string_value(json_object_get(j, "id")));
  msg_set_str(&m->cid, json_string_value(json_object_get(j, "cid")));
  msg_set_str(&m->from, json_string_value(json_object_get(j, "from")));
  m->ts = json_integer_value(json_object_get(j, "timestamp"));
  m->delivered_at = json_integer_value(json_object_get(j, "deliveredAt"));
  m->status = (tern_msg_status_t)json_integer_value(json_object_get(j, "status"));
  m->io = (tern_msg_io_t)json_integer_value(json_object_get(j, "io"));
  return m;
}
