/* bucket.h — a token bucket: `rate` tokens a second, up to twice that stored (the burst).
 * Not locked: the owner of the bucket serialises access. */
#ifndef TERN_BUCKET_H
#define TERN_BUCKET_H

#include <stdint.h>

typedef struct {
  double tokens;
  int64_t last_ms;
} bucket_t;

/* Takes one token at time `now` (ms); 0 when the bucket is empty. Rate 0: unlimited. */
static inline int bucket_take(bucket_t *b, long rate, int64_t now) {
  if (rate <= 0) return 1;
  if (b->last_ms == 0) b->tokens = 2.0 * (double)rate;
  else if (now > b->last_ms) b->tokens += (double)(now - b->last_ms) * (double)rate / 1000.0;
  if (b->tokens > 2.0 * (double)rate) b->tokens = 2.0 * (double)rate;
  if (now > b->last_ms) b->last_ms = now;
  if (b->tokens < 1.0) return 0;
  b->tokens -= 1.0;
  return 1;
}

#endif
