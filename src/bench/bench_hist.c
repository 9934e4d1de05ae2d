/* bench_hist.c — a small log-linear latency histogram (HdrHistogram's idea, our code).
 *
 * Bucket index from the top eight significant bits of the value: exact below 256 ns,
 * then 128 buckets per power of two, so every percentile is within 0.8% of the truth and
 * recording is a few instructions with no allocation. */
#include <string.h>

#include "bench.h"

void hist_init(hist_t *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static size_t bucket(uint64_t v) {
  if (v < 256) return (size_t)v;
  int b = 63 - __builtin_clzll(v);       /* >= 8 */
  uint64_t m = v >> (b - HIST_SUB_BITS); /* 128..255 */
  return 256 + (size_t)(b - 8) * 128 + (size_t)(m - 128);
}

/* The highest value that lands in bucket i (percentiles are reported conservatively). */
static uint64_t bucket_high(size_t i) {
  if (i < 256) return i;
  size_t b = (i - 256) / 128 + 8;
  uint64_t m = (i - 256) % 128 + 128;
  return ((m + 1) << (b - HIST_SUB_BITS)) - 1;
}

void hist_add(hist_t *h, uint64_t v) {
  h->counts[bucket(v)]++;
  h->n++;
  h->sum += (double)v;
  if (v > h->max) h->max = v;
  if (v < h->min) h->min = v;
}

void hist_merge(hist_t *into, const hist_t *from) {
  for (size_t i = 0; i < HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
  into->n += from->n;
  into->sum += from->sum;
  if (from->max > into->max) into->max = from->max;
  if (from->min < into->min) into->min = from->min;
}

uint64_t hist_percentile(const hist_t *h, double p) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)((p / 100.0) * (double)h->n + 0.5);
  if (want < 1) want = 1;
  if (want > h->n) want = h->n;
  uint64_t seen = 0;
  for (size_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= want) {
      uint64_t v = bucket_high(i);
      return v > h->max ? h->max : v;
    }
  }
  return h->max;
}
