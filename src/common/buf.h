/* buf.h — a growable byte buffer.
 *
 * Used for outgoing frames, partial input and building JSON/SQL text. Memory is taken
 * only when something is appended and given back with buf_free(), so idle connections
 * hold no buffers (design.md: no fixed per-connection buffers). Allocation failure
 * aborts (the server's out-of-memory policy); the SDK checks sizes before calling. */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint8_t *data;
  size_t len;
  size_t cap;
} buf_t;

#define BUF_INIT                                                                                                       \
  { NULL, 0, 0 }

void buf_reserve(buf_t *b, size_t extra); /* ensure cap >= len + extra */
void buf_append(buf_t *b, const void *p, size_t n);
void buf_append_str(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s percent-encoded (RFC 3986): every byte but the unreserved A-Z a-z 0-9 - _ . ~ as %XX,
 * so it fits a path segment, a query value or an RFC 8187 header value. */
void buf_append_pct(buf_t *b, const char *s);
void buf_consume(buf_t *b, size_t n); /* drop n bytes from the front */
void buf_free(buf_t *b);
/* NUL-terminates without counting the terminator in len; returns data as char*. */
char *buf_cstr(buf_t *b);

/* Never NULL: out of memory aborts. Said to the compiler too, so it and the static
 * analyzer (make lint) know a result needs no check. */
#define TERN_XALLOC __attribute__((returns_nonnull, warn_unused_result))
void *xmalloc(size_t n) TERN_XALLOC __attribute__((malloc));
void *xcalloc(size_t n, size_t m) TERN_XALLOC __attribute__((malloc));
void *xrealloc(void *p, size_t n) TERN_XALLOC;
char *xstrdup(const char *s) TERN_XALLOC __attribute__((malloc));
char *xstrndup(const char *s, size_t n) TERN_XALLOC __attribute__((malloc));

#endif
