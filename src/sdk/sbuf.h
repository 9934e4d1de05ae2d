/* sbuf.h — libtern's byte buffer: like src/common/buf.h, but an allocation failure is
 * reported (TERN_ENOMEM) instead of aborting, because a library must not take its host
 * process down (style.md §9: the server aborts on out-of-memory, the SDK returns). */
#ifndef TERN_SDK_SBUF_H
#define TERN_SDK_SBUF_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

typedef struct {
  uint8_t *data;
  size_t len;
  size_t cap;
} sbuf_t;

#define SBUF_INIT                                                                                                      \
  { NULL, 0, 0 }

int sbuf_reserve(sbuf_t *b, size_t extra);
int sbuf_append(sbuf_t *b, const void *p, size_t n);
int sbuf_append_str(sbuf_t *b, const char *s);
int sbuf_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_consume(sbuf_t *b, size_t n);
void sbuf_free(sbuf_t *b);
/* NUL-terminated view (not counted in len), or NULL when that byte cannot be had. */
char *sbuf_cstr(sbuf_t *b);
/* Appends the serialized command. */
int sbuf_pack(sbuf_t *b, const lc_cmd_t *cmd);

#endif
