/* bench_hist.c — a small log-linear latency histogram (HdrHistogram's idea, our code).
 *
 * Bucket index from the top eight significant bits of the value: exact below 256 ns,
 * then 128 buckets per power of two, so every percentile is within 0.8% of the truth and
 * recording is a few instructions with no allocation. */
#include <stdio.h>
#include <stdlib.h>
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

/* ---- timeline */

static size_t tl_bucket(uint64_t us) {
  if (us < 16) return (size_t)us;
  int b = 63 - __builtin_clzll(us); /* >= 4 */
  size_t i = 16 + (size_t)(b - 4) * 16 + (size_t)((us >> (b - TL_SUB_BITS)) - 16);
  return i < TL_BUCKETS ? i : TL_BUCKETS - 1;
}

static uint64_t tl_bucket_high(size_t i) { /* µs */
  if (i < 16) return i;
  size_t b = (i - 16) / 16 + 4;
  uint64_t m = (i - 16) % 16 + 16;
  return ((m + 1) << (b - TL_SUB_BITS)) - 1;
}

void tl_init(timeline_t *t, double seconds) {
  t->nbins = (size_t)(seconds * 1e9 / (double)TL_BIN_NS) + 1;
  t->bins = calloc(t->nbins, sizeof *t->bins);
  if (!t->bins) t->nbins = 0;
}

void tl_add(timeline_t *t, uint64_t stamp_ns, uint64_t lat_ns) {
  size_t k = (size_t)(stamp_ns / TL_BIN_NS);
  if (k >= t->nbins) return;
  tl_bin_t *b = &t->bins[k];
  b->counts[tl_bucket(lat_ns / 1000)]++;
  if (lat_ns > b->max_ns) b->max_ns = lat_ns;
}

static uint64_t tl_pct(const tl_bin_t *b, uint64_t n, double p) {
  uint64_t want = (uint64_t)(p / 100.0 * (double)n + 0.5), seen = 0;
  if (want < 1) want = 1;
  for (size_t i = 0; i < TL_BUCKETS; i++) {
    seen += b->counts[i];
    if (seen >= want) {
      uint64_t v = tl_bucket_high(i);
      return v * 1000 > b->max_ns ? b->max_ns / 1000 : v;
    }
  }
  return b->max_ns / 1000;
}

int tl_write(const char *path, timeline_t *const *per, int n, double warmup_s, uint64_t realtime_run_ns) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  fprintf(f, "# t_s\tunix_s\tmeasured\tcount\tp50_us\tp99_us\tmax_us\n");
  size_t nbins = 0;
  for (int k = 0; k < n; k++)
    if (per[k]->nbins > nbins) nbins = per[k]->nbins;
  tl_bin_t m;
  for (size_t i = 0; i < nbins; i++) {
    memset(&m, 0, sizeof m);
    uint64_t cnt = 0;
    for (int k = 0; k < n; k++) {
      if (i >= per[k]->nbins) continue;
      const tl_bin_t *b = &per[k]->bins[i];
      for (size_t j = 0; j < TL_BUCKETS; j++) m.counts[j] += b->counts[j], cnt += b->counts[j];
      if (b->max_ns > m.max_ns) m.max_ns = b->max_ns;
    }
    if (!cnt) continue;
    double t = (double)i * (double)TL_BIN_NS / 1e9;
    fprintf(f, "%.1f\t%.3f\t%d\t%llu\t%llu\t%llu\t%llu\n", t, (double)realtime_run_ns / 1e9 + t, t >= warmup_s - 1e-9,
            (unsigned long long)cnt, (unsigned long long)tl_pct(&m, cnt, 50), (unsigned long long)tl_pct(&m, cnt, 99),
            (unsigned long long)(m.max_ns / 1000));
  }
  return fclose(f);
}
