/* conv_json.c — the protocol's conversation object (protocol.md §3.5) from a conversation
 * as the store hands it out (store.h: conv_view_t): what conv/query answers, and the REST
 * reads of conversations. The store knows nothing of this shape. */

#include "im_internal.h"
#include "timeutil.h"

static json_t *date_json(int64_t ms) {
  char iso[ISO_LEN + 1];
  iso_format(ms, iso);
  return json_pack("{s:s, s:s}", "__type", "Date", "iso", iso);
}

json_t *conv_view_json(const conv_view_t *v) {
  json_t *o = v->doc ? json_loads(v->doc, 0, NULL) : NULL;
  if (!json_is_object(o)) {
    json_decref(o);
    o = json_object();
  }
  char iso[ISO_LEN + 1];
  json_object_set_new(o, "objectId", json_string(v->cid));
  iso_format(v->created_at, iso);
  json_object_set_new(o, "createdAt", json_string(iso));
  iso_format(v->updated_at, iso);
  json_object_set_new(o, "updatedAt", json_string(iso));
  if (v->has_lm) json_object_set_new(o, "lm", date_json(v->lm));
  json_object_set_new(o, "conv_type", json_integer(v->kind));
  if (v->kind == CONV_TEMP) {
    int64_t left = (v->expire_at - now_ms()) / 1000;
    json_object_set_new(o, "temp", json_true());
    json_object_set_new(o, "ttl", json_integer(left > 0 ? left : 0));
  }
  if (v->members) {
    json_t *m = json_array();
    for (size_t i = 0; i < v->nmembers; i++) json_array_append_new(m, json_string(v->members[i]));
    json_object_set_new(o, "m", m);
  }
  const msg_view_t *m = v->last;
  if (m) {
    int bin = m->flags & MSG_F_BIN;
    json_object_set_new(o, "msg", msg_content_json(m->data, m->len, bin));
    json_object_set_new(o, "bin", json_boolean(bin));
    json_object_set_new(o, "msg_from", json_string(m->sender));
    json_object_set_new(o, "msg_mid", json_string(m->mid));
    json_object_set_new(o, "msg_timestamp", json_integer(m->ts));
    if (m->patch_ts) json_object_set_new(o, "patch_timestamp", json_integer(m->patch_ts));
    json_object_set_new(o, "mention_all", json_boolean(m->flags & MSG_F_MENTION_ALL));
    json_t *mp = m->mentions ? json_loads(m->mentions, 0, NULL) : NULL;
    json_object_set_new(o, "mention_pids", json_is_array(mp) ? mp : (json_decref(mp), json_array()));
  }
  return o;
}

void conv_view_append(void *arr, const conv_view_t *v) { json_array_append_new(arr, conv_view_json(v)); }
