/* metrics.c — the registry behind metrics.h: per-thread shards, summed at scrape. */
#include "metrics.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "server.h"

const uint64_t metrics_bounds_us[METRICS_NBOUNDS] = {50,     100,     250,     500,     1000,    2500,
                                                     5000,   10000,   25000,   50000,   100000,  250000,
                                                     500000, 1000000, 2500000, 5000000, 10000000};
const uint64_t metrics_bounds_count[METRICS_NBOUNDS] = {1,   2,    4,    8,    16,   32,    64,    128,  256,
                                                        512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};

/* Protocol error codes in table order; index N_CODES counts codes outside the table. */
static const int codes[] = {
#define X(c, name, desc) c,
    LC_ERROR_MAP(X)
#undef X
};
#define N_CODES (sizeof codes / sizeof codes[0])
#define M_LOGIN_FAIL_BASE_ (M_ERRORS_BASE_ + N_CODES + 1)
#define N_SLOTS (M_LOGIN_FAIL_BASE_ + N_CODES + 1)

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

int metric_stage_sampled(stage_site_t site) {
  static _Thread_local unsigned n[STAGE_SITES];
  return n[site]++ % STAGE_SAMPLE == 0;
}

static void observe(metric_t m, uint64_t v, const uint64_t *bounds) {
  size_t k = 0;
  while (k < METRICS_NBOUNDS && v > bounds[k]) k++;
  slot_add((size_t)m + k, 1);
  slot_add((size_t)m + METRICS_NBOUNDS + 1, v);
}

void metric_observe_us(metric_t m, uint64_t us) { observe(m, us, metrics_bounds_us); }
void metric_observe_count(metric_t m, uint64_t n) { observe(m, n, metrics_bounds_count); }

static size_t code_index(int code) {
  size_t i = 0;
  while (i < N_CODES && codes[i] != code) i++;
  return i;
}

void metric_error(int code) { slot_add(M_ERRORS_BASE_ + code_index(code), 1); }
void metric_login_failed(int code) { slot_add(M_LOGIN_FAIL_BASE_ + code_index(code), 1); }

int64_t metric_value(metric_t m) { return (int64_t)slot_sum((size_t)m); }

static const struct {
  metric_t id;
  const char *kind, *name, *labels, *help;
} rows[] = {
#define X(id, kind, name, labels, help) {M_##id, #kind, name, labels, help},
    TERN_METRICS(X)
#undef X
};

static void render_hist(buf_t *out, const char *name, const char *labels, size_t base, int counts) {
  const char *sep = *labels ? "," : "";
  uint64_t cum = 0;
  for (size_t k = 0; k <= METRICS_NBOUNDS; k++) {
    cum += slot_sum(base + k);
    if (k < METRICS_NBOUNDS)
      buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                 counts ? (double)metrics_bounds_count[k] : (double)metrics_bounds_us[k] / 1e6,
                 (unsigned long long)cum);
    else buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
  }
  const char *lb = *labels ? "{" : "", *le = *labels ? "}" : "";
  uint64_t sum = slot_sum(base + METRICS_NBOUNDS + 1);
  if (counts) buf_printf(out, "%s_sum%s%s%s %llu\n", name, lb, labels, le, (unsigned long long)sum);
  else buf_printf(out, "%s_sum%s%s%s %.6f\n", name, lb, labels, le, (double)sum / 1e6);
  buf_printf(out, "%s_count%s%s%s %llu\n", name, lb, labels, le, (unsigned long long)cum);
}

void metrics_render(buf_t *out) {
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const char *name = rows[i].name, *labels = rows[i].labels;
    int counts = strcmp(rows[i].kind, "HISTC") == 0, hist = counts || strcmp(rows[i].kind, "HIST") == 0;
    if (i == 0 || strcmp(rows[i - 1].name, name) != 0)
      buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, rows[i].help, name,
                 hist                                 ? "histogram"
                 : strcmp(rows[i].kind, "GAUGE") == 0 ? "gauge"
                                                      : "counter");
    if (hist) {
      render_hist(out, name, labels, rows[i].id, counts);
      continue;
    }
    int64_t v = metric_value(rows[i].id);
    if (strcmp(rows[i].kind, "NSEC") == 0) { /* nanoseconds summed, shown in seconds */
      if (*labels) buf_printf(out, "%s{%s} %.9f\n", name, labels, (double)v / 1e9);
      else buf_printf(out, "%s %.9f\n", name, (double)v / 1e9);
      continue;
    }
    if (*labels) buf_printf(out, "%s{%s} %lld\n", name, labels, (long long)v);
    else buf_printf(out, "%s %lld\n", name, (long long)v);
  }
  /* Errors and login failures by code: only the codes seen so far (a series appears with
   * its first count). */
  static const struct {
    size_t base;
    const char *name, *help;
  } by_code[] = {
      {M_ERRORS_BASE_, "tern_errors_total", "Protocol errors sent to clients ({cmd: error}) by code."},
      {M_LOGIN_FAIL_BASE_, "tern_login_failures_total",
       "Refused logins (session/open answered with an error or session/closed) by code."},
  };
  for (size_t f = 0; f < sizeof by_code / sizeof by_code[0]; f++) {
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", by_code[f].name, by_code[f].help, by_code[f].name);
    for (size_t i = 0; i <= N_CODES; i++) {
      uint64_t v = slot_sum(by_code[f].base + i);
      if (!v) continue;
      if (i < N_CODES)
        buf_printf(out, "%s{code=\"%d\",reason=\"%s\"} %llu\n", by_code[f].name, codes[i], lc_error_name(codes[i]),
                   (unsigned long long)v);
      else
        buf_printf(out, "%s{code=\"other\",reason=\"UNKNOWN_ERROR\"} %llu\n", by_code[f].name, (unsigned long long)v);
    }
  }
}

/* ---------------------------------------------------------------- process_* */

void metrics_render_process(buf_t *out) {
  long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
  double cpu = 0, start = 0;
  unsigned long long vsize = 0, rss = 0;
  char line[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) {
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    /* after "pid (comm) ": the comm may hold spaces and parentheses, so from the last ')' */
    char *p = strrchr(line, ')');
    unsigned long utime = 0, stime = 0;
    unsigned long long starttime = 0;
    // the kernel's own numbers: a field that does not convert fails the count check
    // NOLINTNEXTLINE(cert-err34-c)
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu %llu %llu",
                    &utime, &stime, &starttime, &vsize, &rss) == 5) {
      cpu = (double)(utime + stime) / (double)tick;
      /* starttime counts ticks since boot: the boot time is in /proc/stat's btime */
      FILE *st = fopen("/proc/stat", "r");
      unsigned long long btime = 0;
      while (st && fgets(line, sizeof line, st))
        if (sscanf(line, "btime %llu", &btime) == 1) break; // NOLINT(cert-err34-c): as above
      if (st) fclose(st);
      start = (double)btime + (double)starttime / (double)tick;
    }
  }
  long fds = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    for (struct dirent *e; (e = readdir(d));)
      if (e->d_name[0] != '.') fds++;
    closedir(d);
    fds--; /* the directory's own descriptor */
  }
  struct rlimit rl = {0};
  getrlimit(RLIMIT_NOFILE, &rl);
  buf_printf(out,
             "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
             "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
             "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
             "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
             "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
             "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n"
             "# HELP process_open_fds Number of open file descriptors.\n"
             "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n"
             "# HELP process_max_fds Maximum number of open file descriptors.\n"
             "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n"
             "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
             "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
             cpu, rss * (unsigned long long)page, vsize, fds,
             rl.rlim_cur == RLIM_INFINITY ? 0ULL : (unsigned long long)rl.rlim_cur, start);
}
