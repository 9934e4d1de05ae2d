/* metrics.c — the registry behind metrics.h: per-thread shards, summed at scrape. */
#include "metrics.h"

#include <stdatomic.h>
#include <string.h>

#include "err.h"
#include "server.h"

const uint64_t metrics_bounds_us[METRICS_NBOUNDS] = {50,     100,    250,    500,     1000,    2500,
                                                     5000,   10000,  25000,  50000,   100000,  250000,
                                                     500000, 1000000, 2500000, 5000000, 10000000};

/* Protocol error codes in table order; index N_CODES counts codes outside the table. */
static const int codes[] = {
#define X(c, name, desc) c,
    LC_ERROR_MAP(X)
#undef X
};
#define N_CODES (sizeof codes / sizeof codes[0])
#define N_SLOTS (M_ERRORS_BASE_ + N_CODES + 1)

typedef struct {
  _Alignas(64) _Atomic uint64_t v[N_SLOTS];
} shard_t;

/* One shard per worker, and the last for every other thread. */
static shard_t shards[MAX_WORKERS + 1];

static inline void slot_add(size_t slot, uint64_t n) {
  int k = worker_current();
  if (k >= 0 && k < MAX_WORKERS) { /* this thread is the shard's only writer */
    _Atomic uint64_t *p = &shards[k].v[slot];
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n, memory_order_relaxed);
  } else {
    atomic_fetch_add_explicit(&shards[MAX_WORKERS].v[slot], n, memory_order_relaxed);
  }
}

static uint64_t slot_sum(size_t slot) {
  uint64_t s = 0;
  for (int k = 0; k <= MAX_WORKERS; k++) s += atomic_load_explicit(&shards[k].v[slot], memory_order_relaxed);
  return s;
}

void metric_add(metric_t m, int64_t n) { slot_add((size_t)m, (uint64_t)n); }

void metric_observe_us(metric_t m, uint64_t us) {
  size_t k = 0;
  while (k < METRICS_NBOUNDS && us > metrics_bounds_us[k]) k++;
  slot_add((size_t)m + k, 1);
  slot_add((size_t)m + METRICS_NBOUNDS + 1, us);
}

void metric_error(int code) {
  size_t i = 0;
  while (i < N_CODES && codes[i] != code) i++;
  slot_add(M_ERRORS_BASE_ + i, 1);
}

int64_t metric_value(metric_t m) { return (int64_t)slot_sum((size_t)m); }

static const struct {
  metric_t id;
  const char *kind, *name, *labels, *help;
} rows[] = {
#define X(id, kind, name, labels, help) {M_##id, #kind, name, labels, help},
    TERN_METRICS(X)
#undef X
};

static void render_hist(buf_t *out, const char *name, const char *labels, size_t base) {
  const char *sep = *labels ? "," : "";
  uint64_t cum = 0;
  for (size_t k = 0; k <= METRICS_NBOUNDS; k++) {
    cum += slot_sum(base + k);
    if (k < METRICS_NBOUNDS)
      buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, (double)metrics_bounds_us[k] / 1e6,
                 (unsigned long long)cum);
    else
      buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
  }
  const char *lb = *labels ? "{" : "", *le = *labels ? "}" : "";
  buf_printf(out, "%s_sum%s%s%s %.6f\n", name, lb, labels, le, (double)slot_sum(base + METRICS_NBOUNDS + 1) / 1e6);
  buf_printf(out, "%s_count%s%s%s %llu\n", name, lb, labels, le, (unsigned long long)cum);
}

void metrics_render(buf_t *out) {
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const char *name = rows[i].name, *labels = rows[i].labels;
    int hist = strcmp(rows[i].kind, "HIST") == 0;
    if (i == 0 || strcmp(rows[i - 1].name, name) != 0)
      buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, rows[i].help, name,
                 hist ? "histogram" : strcmp(rows[i].kind, "GAUGE") == 0 ? "gauge" : "counter");
    if (hist) {
      render_hist(out, name, labels, rows[i].id);
      continue;
    }
    int64_t v = metric_value(rows[i].id);
    if (*labels) buf_printf(out, "%s{%s} %lld\n", name, labels, (long long)v);
    else buf_printf(out, "%s %lld\n", name, (long long)v);
  }
  /* Errors by code: only the codes sent so far (a series appears with its first count). */
  buf_append_str(out, "# HELP tern_errors_total Protocol errors sent to clients ({cmd: error}) by code.\n"
                      "# TYPE tern_errors_total counter\n");
  for (size_t i = 0; i <= N_CODES; i++) {
    uint64_t v = slot_sum(M_ERRORS_BASE_ + i);
    if (!v) continue;
    if (i < N_CODES)
      buf_printf(out, "tern_errors_total{code=\"%d\",reason=\"%s\"} %llu\n", codes[i], lc_error_name(codes[i]),
                 (unsigned long long)v);
    else
      buf_printf(out, "tern_errors_total{code=\"other\",reason=\"UNKNOWN_ERROR\"} %llu\n", (unsigned long long)v);
  }
}
