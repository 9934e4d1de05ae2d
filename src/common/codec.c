/* codec.c — protobuf-c glue: frame decode/encode and a descriptor-driven JSON mapping.
 *
 * The JSON mapping walks protobuf-c's descriptors instead of hand-writing one function per
 * message, so a field added to lc.proto shows up in logs and tests with no further code. */
#include "codec.h"

#include <stdlib.h>
#include <string.h>

#include "base64.h"

lc_cmd_t *codec_decode(const uint8_t *p, size_t n, lc_format_t fmt) {
  if (fmt == LC_FMT_BASE64) {
    uint8_t stackbuf[4096];
    size_t need = n / 4 * 3 + 3;
    uint8_t *tmp = need <= sizeof stackbuf ? stackbuf : xmalloc(need);
    long len = base64_decode((const char *)p, n, tmp);
    lc_cmd_t *cmd = len < 0 ? NULL : lc__generic_command__unpack(NULL, (size_t)len, tmp);
    if (tmp != stackbuf) free(tmp);
    return cmd;
  }
  return lc__generic_command__unpack(NULL, n, p);
}

void codec_free(lc_cmd_t *cmd) {
  if (cmd) lc__generic_command__free_unpacked(cmd, NULL);
}

size_t codec_pack(const lc_cmd_t *cmd, buf_t *out) {
  size_t n = lc__generic_command__get_packed_size(cmd);
  buf_reserve(out, n);
  lc__generic_command__pack(cmd, out->data + out->len);
  out->len += n;
  return n;
}

size_t codec_pack_peer(const char *peer_id, buf_t *out) {
  lc_cmd_t c = LC__GENERIC_COMMAND__INIT;
  c.peerid = (char *)peer_id;
  return codec_pack(&c, out);
}

const char *lc_cmd_name(int cmd) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&lc__command_type__descriptor, cmd);
  return v ? v->name : "?";
}

const char *lc_op_name(int op) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&lc__op_type__descriptor, op);
  return v ? v->name : "?";
}

/* ---- message → JSON ---- */

static json_t *scalar_to_json(const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)p);
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)p);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64: return json_integer(*(const int64_t *)p);
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64: return json_integer((json_int_t) * (const uint64_t *)p);
  case PROTOBUF_C_TYPE_FLOAT: return json_real(*(const float *)p);
  case PROTOBUF_C_TYPE_DOUBLE: return json_real(*(const double *)p);
  case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)p);
  case PROTOBUF_C_TYPE_ENUM: {
    int v = *(const int *)p;
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
    return ev ? json_string(ev->name) : json_integer(v);
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    return s ? json_stringn(s, strlen(s)) : json_string("");
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *b = p;
    char *tmp = xmalloc(base64_encoded_len(b->len) + 1);
    size_t n = base64_encode(b->data, b->len, tmp);
    json_t *j = json_stringn(tmp, n);
    free(tmp);
    return j;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
    return m ? pb_to_json(m) : json_object();
  }
  }
  return json_null();
}

static size_t type_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: return 8;
  case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
  default: return 4;
  }
}

json_t *pb_to_json(const ProtobufCMessage *msg) {
  json_t *o = json_object();
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  const char *base = (const char *)msg;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const void *member = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      if (!n) continue;
      json_t *arr = json_array();
      const char *items = *(char *const *)member;
      for (size_t k = 0; k < n; k++) json_array_append_new(arr, scalar_to_json(f, items + k * type_size(f->type)));
      json_object_set_new(o, f->name, arr);
      continue;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
      if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const void *ptr = *(void *const *)member;
        if (!ptr || ptr == f->default_value) continue;
      } else if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
        continue;
      }
    }
    json_object_set_new(o, f->name, scalar_to_json(f, member));
  }
  return o;
}

/* ---- JSON → message ---- */

static int json_to_scalar(const ProtobufCFieldDescriptor *f, json_t *j, void *p, char *err, size_t errlen) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    if (!json_is_integer(j)) goto bad;
    *(int32_t *)p = (int32_t)json_integer_value(j);
    return 0;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    if (!json_is_integer(j)) goto bad;
    *(int64_t *)p = json_integer_value(j);
    return 0;
  case PROTOBUF_C_TYPE_FLOAT:
    if (!json_is_number(j)) goto bad;
    *(float *)p = (float)json_number_value(j);
    return 0;
  case PROTOBUF_C_TYPE_DOUBLE:
    if (!json_is_number(j)) goto bad;
    *(double *)p = json_number_value(j);
    return 0;
  case PROTOBUF_C_TYPE_BOOL:
    if (!json_is_boolean(j)) goto bad;
    *(protobuf_c_boolean *)p = json_is_true(j);
    return 0;
  case PROTOBUF_C_TYPE_ENUM:
    if (json_is_integer(j)) {
      *(int *)p = (int)json_integer_value(j);
      return 0;
    }
    if (json_is_string(j)) {
      const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(j));
      if (!ev) goto bad;
      *(int *)p = ev->value;
      return 0;
    }
    goto bad;
  case PROTOBUF_C_TYPE_STRING:
    if (!json_is_string(j)) goto bad;
    *(char **)p = xstrndup(json_string_value(j), json_string_length(j));
    return 0;
  case PROTOBUF_C_TYPE_BYTES: {
    if (!json_is_string(j)) goto bad;
    ProtobufCBinaryData *b = p;
    size_t n = json_string_length(j);
    b->data = xmalloc(n / 4 * 3 + 3);
    long len = base64_decode(json_string_value(j), n, b->data);
    if (len < 0) {
      free(b->data);
      b->data = NULL;
      goto bad;
    }
    b->len = (size_t)len;
    return 0;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *m = pb_from_json(f->descriptor, j, err, errlen);
    if (!m) return -1;
    *(ProtobufCMessage **)p = m;
    return 0;
  }
  }
bad:
  snprintf(err, errlen, "field %s: wrong JSON type", f->name);
  return -1;
}

ProtobufCMessage *pb_from_json(const ProtobufCMessageDescriptor *desc, json_t *j, char *err, size_t errlen) {
  if (!json_is_object(j)) {
    snprintf(err, errlen, "%s: expected an object", desc->name);
    return NULL;
  }
  ProtobufCMessage *msg = xcalloc(1, desc->sizeof_message);
  desc->message_init(msg);
  char *base = (char *)msg;
  const char *key;
  json_t *val;
  json_object_foreach(j, key, val) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, key);
    if (!f) {
      snprintf(err, errlen, "%s: unknown field %s", desc->name, key);
      goto fail;
    }
    void *member = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      if (!json_is_array(val)) {
        snprintf(err, errlen, "field %s: expected an array", key);
        goto fail;
      }
      size_t n = json_array_size(val), sz = type_size(f->type);
      char *items = xcalloc(n ? n : 1, sz);
      *(char **)member = items;
      for (size_t k = 0; k < n; k++) {
        if (json_to_scalar(f, json_array_get(val, k), items + k * sz, err, errlen) < 0) {
          *(size_t *)(base + f->quantifier_offset) = k;
          goto fail;
        }
      }
      *(size_t *)(base + f->quantifier_offset) = n;
      continue;
    }
    if (json_to_scalar(f, val, member, err, errlen) < 0) goto fail;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE)
      *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
  }
  if (!protobuf_c_message_check(msg)) {
    snprintf(err, errlen, "%s: a required field is missing", desc->name);
    goto fail;
  }
  return msg;
fail:
  protobuf_c_message_free_unpacked(msg, NULL);
  return NULL;
}
