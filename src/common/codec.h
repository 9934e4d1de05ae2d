/* codec.h — GenericCommand frames in both framings, and a JSON view of any message.
 *
 * Pure functions over bytes: no sockets, no globals, so the fuzzers and unit tests drive
 * them directly. Decoding never trusts its input: any byte sequence yields either a
 * command or an error code, never a crash (the fuzz target checks that). */
#ifndef TERN_CODEC_H
#define TERN_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lc.pb-c.h"

typedef Lc__GenericCommand lc_cmd_t;

typedef enum {
  LC_FMT_BINARY = 0, /* lc.protobuf2.N: one serialized GenericCommand per binary frame */
  LC_FMT_BASE64 = 1, /* lc.proto2base64.N: standard base64 of it per text frame */
} lc_format_t;

/* Sets an optional scalar field and its has_ flag in one go. */
#define PB_SET(msg, field, value) ((msg).has_##field = 1, (msg).field = (value))

/* Decodes one frame payload. Returns NULL if the bytes are not a GenericCommand (bad
 * base64, bad protobuf, missing required field). Free with codec_free(). */
lc_cmd_t *codec_decode(const uint8_t *p, size_t n, lc_format_t fmt);
void codec_free(lc_cmd_t *cmd);

/* Appends the serialized command (binary) to out; returns the number of bytes added. */
size_t codec_pack(const lc_cmd_t *cmd, buf_t *out);
/* Appends the encoding of field 4 (peerId) alone. Protobuf fields may come in any order,
 * so a push frame can be one shared body plus this per-recipient prefix (encode once). */
size_t codec_pack_peer(const char *peer_id, buf_t *out);

/* JSON view, enum values by name, bytes as base64, int64 as JSON integers. For logs,
 * tests and the CLI's --json. Returns a new reference. */
json_t *pb_to_json(const ProtobufCMessage *msg);
/* The inverse; returns a message allocated with the system allocator (free it with
 * protobuf_c_message_free_unpacked(msg, NULL)) or NULL with a reason in err. */
ProtobufCMessage *pb_from_json(const ProtobufCMessageDescriptor *desc, json_t *j, char *err, size_t errlen);

const char *lc_cmd_name(int cmd); /* "session", "conv", … or "?" */
const char *lc_op_name(int op);

#endif
