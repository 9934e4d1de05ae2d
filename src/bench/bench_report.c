/* bench_report.c — what a run measured, for people (a table) and machines (--json).
 *
 * Also the /proc readings: the server's RSS (VmRSS), CPU time (utime + stime) and WAL size,
 * the generator's own, and the whole machine's busy share, so a reader can tell whether the
 * server or the generator ran out of CPU first (both share the same cores). */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static const char *const scenario_names[] = {"idle", "pairs", "group", "chatroom", "login-storm", "history"};

/* The WAL beside the "-shm" file SQLite maps in a WAL-mode database: its size in KiB, or
 * -1. A WAL that keeps growing under load is a checkpointer that cannot catch up. */
static long wal_kb(int pid) {
  char path[64], line[4200];
  snprintf(path, sizeof path, "/proc/%d/maps", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (kb < 0 && fgets(line, sizeof line, f)) {
    size_t n = strcspn(line, "\n");
    line[n] = 0;
    char *file = strchr(line, '/');
    if (!file || n < 4 || strcmp(line + n - 4, "-shm") != 0) continue;
    memcpy(line + n - 4, "-wal", 4);
    struct stat st;
    if (stat(file, &st) == 0) kb = (long)(st.st_size / 1024);
  }
  fclose(f);
  return kb;
}

int proc_sample(int pid, proc_sample_t *out) {
  char path[64], line[512];
  out->rss_kb = 0;
  out->cpu_s = 0;
  out->sys_s = 0;
  out->wal_kb = -1;
  if (pid <= 0) return -1;
  out->wal_kb = wal_kb(pid);
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) out->rss_kb = strtol(line + 6, NULL, 10);
  fclose(f);
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  char *p = strrchr(line, ')'); /* the command name may contain spaces */
  if (!p) return -1;
  unsigned long utime = 0, stime = 0;
  /* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  /* the kernel's own numbers: a field that does not convert fails the count check */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2) // NOLINT(cert-err34-c)
    return -1;
  out->cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
  out->sys_s = (double)stime / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

void servers_sample(run_info_t *ri, int which) {
  proc_sample_t *per = which == 0 ? ri->nbefore : which == 1 ? ri->nstart : ri->nend;
  proc_sample_t *sum = which == 0 ? &ri->before : which == 1 ? &ri->start : &ri->end;
  memset(sum, 0, sizeof *sum);
  sum->wal_kb = -1;
  for (int k = 0; k < ri->npids; k++) {
    proc_sample(ri->pids[k], &per[k]);
    sum->rss_kb += per[k].rss_kb;
    sum->cpu_s += per[k].cpu_s;
    sum->sys_s += per[k].sys_s;
    if (k == 0) sum->wal_kb = per[k].wal_kb; /* the first node's; a cluster's store is elsewhere */
  }
}

double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

double self_sys_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

long self_rss_kb(void) {
  proc_sample_t s;
  return proc_sample((int)getpid(), &s) == 0 ? s.rss_kb : 0;
}

int machine_cpu(uint64_t *busy, uint64_t *total) {
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  unsigned long long v[8] = {0};
  /* the kernel's own numbers, as in proc_usage */
  int n;
  // NOLINTNEXTLINE(cert-err34-c)
  n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n < 4) return -1;
  *total = 0;
  for (int i = 0; i < 8; i++) *total += v[i];
  *busy = *total - v[3] - v[4]; /* minus idle and iowait */
  return 0;
}

/* The pid holding a listening socket on `port`: its inode in /proc/net/tcp{,6}, then the
 * process whose fd table points at that socket. */
static unsigned long listen_inode(const char *file, int port) {
  FILE *f = fopen(file, "r");
  if (!f) return 0;
  char line[512];
  unsigned long found = 0;
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return 0;
  }
  while (!found && fgets(line, sizeof line, f)) {
    char local[64];
    unsigned st;
    unsigned long inode;
    if (sscanf(line, "%*d: %63s %*s %x %*s %*s %*s %*d %*d %lu", local, &st, &inode) != 3) // NOLINT(cert-err34-c)
      continue;
    char *colon = strrchr(local, ':');
    if (colon && st == 0x0A && (int)strtol(colon + 1, NULL, 16) == port) found = inode;
  }
  fclose(f);
  return found;
}

int find_listener_pid(int port) {
  unsigned long inode = listen_inode("/proc/net/tcp", port);
  if (!inode) inode = listen_inode("/proc/net/tcp6", port);
  if (!inode) return 0;
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", inode);
  DIR *proc = opendir("/proc");
  if (!proc) return 0;
  struct dirent *e;
  int pid = 0;
  while (!pid && (e = readdir(proc))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char dir[300];
    snprintf(dir, sizeof dir, "/proc/%s/fd", e->d_name);
    DIR *fds = opendir(dir);
    if (!fds) continue;
    struct dirent *fe;
    while ((fe = readdir(fds))) {
      char link[600], target[128];
      snprintf(link, sizeof link, "%s/%s", dir, fe->d_name);
      ssize_t n = readlink(link, target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = 0;
      if (strcmp(target, want) == 0) {
        pid = (int)strtol(e->d_name, NULL, 10); /* a /proc entry that starts with a digit is a pid */
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  return pid;
}

/* ---------------------------------------------------------------- totals */

typedef struct {
  uint64_t sent, sent_m, expected, delivered, delivered_m, dup, lost, foreign;
  uint64_t acked, errors, unacked, disconnects, login_fail, ready;
  uint64_t logins, logins_m, pages, pages_m, items, walks, echoes, echo_replies;
} totals_t;

#define SUM(field) t.field += CNT_GET(c->field)

static totals_t totals(hist_t *lat, hist_t *ack) {
  totals_t t;
  memset(&t, 0, sizeof t);
  hist_init(lat);
  hist_init(ack);
  uint64_t pages_sent = 0, pages_sent_m = 0, walk_lost = 0, walk_dup = 0;
  for (int k = 0; k < bench.nthreads; k++) {
    counters_t *c = &bench.threads[k]->cnt;
    SUM(sent);
    SUM(sent_m);
    SUM(expected);
    SUM(delivered);
    SUM(delivered_m);
    SUM(dup);
    SUM(foreign);
    SUM(acked);
    SUM(errors);
    SUM(unacked);
    SUM(disconnects);
    SUM(login_fail);
    SUM(ready);
    SUM(logins);
    SUM(logins_m);
    SUM(pages);
    SUM(pages_m);
    SUM(items);
    SUM(walks);
    SUM(echoes);
    SUM(echo_replies);
    pages_sent += CNT_GET(c->pages_sent);
    pages_sent_m += CNT_GET(c->pages_sent_m);
    walk_lost += CNT_GET(c->walk_lost);
    walk_dup += CNT_GET(c->walk_dup);
    hist_merge(lat, &bench.threads[k]->lat);
    hist_merge(ack, &bench.threads[k]->ack_lat);
  }
  /* One vocabulary for every scenario: "sent" requests, "delivered" what came back. */
  switch (bench.sc) {
  case SC_HISTORY:
    t.sent = pages_sent;
    t.sent_m = pages_sent_m;
    t.expected = pages_sent;
    t.delivered = t.pages;
    t.delivered_m = t.pages_m;
    t.lost = (pages_sent - t.pages) + walk_lost;
    t.dup = walk_dup;
    break;
  case SC_LOGIN:
    t.expected = t.sent;
    t.delivered = t.logins;
    t.delivered_m = t.logins_m;
    t.lost = t.sent > t.logins ? t.sent - t.logins : 0;
    break;
  case SC_IDLE:
    t.sent = t.echoes;
    t.expected = t.echoes;
    t.delivered = t.echo_replies;
    t.lost = t.echoes > t.echo_replies ? t.echoes - t.echo_replies : 0;
    break;
  default: t.lost = t.expected > t.delivered ? t.expected - t.delivered : 0; break;
  }
  return t;
}

static json_t *lat_json(const hist_t *h) {
  json_t *j = json_object();
  double us = 1000.0;
  json_object_set_new(j, "count", json_integer((json_int_t)h->n));
  json_object_set_new(j, "p50", json_real(hist_percentile(h, 50) / us));
  json_object_set_new(j, "p90", json_real(hist_percentile(h, 90) / us));
  json_object_set_new(j, "p99", json_real(hist_percentile(h, 99) / us));
  json_object_set_new(j, "p999", json_real(hist_percentile(h, 99.9) / us));
  json_object_set_new(j, "max", json_real(h->n ? h->max / us : 0));
  json_object_set_new(j, "mean", json_real(h->n ? h->sum / (double)h->n / us : 0));
  return j;
}

static json_t *params_json(void) {
  const bench_opts_t *o = &bench.o;
  json_t *p = json_object();
  json_object_set_new(p, "clients", json_integer(bench.nclients));
  json_object_set_new(p, "duration_s", json_real(o->duration));
  json_object_set_new(p, "warmup_s", json_real(o->warmup));
  json_object_set_new(p, "rate", json_real(o->rate));
  json_object_set_new(p, "window", json_integer(o->window));
  if (o->rate > 0) json_object_set_new(p, "tick_us", json_integer(o->tick_us));
  json_object_set_new(p, "threads", json_integer(bench.nthreads));
  json_object_set_new(p, "sources", json_integer(bench.nsources));
  json_object_set_new(p, "nodes", json_integer(bench.nnodes));
  json_object_set_new(p, "one_way", json_boolean(o->one_way));
  json_object_set_new(p, "payload", json_integer(o->payload));
  json_object_set_new(p, "ack_ms", json_integer(o->ack_ms));
  if (bench.sc == SC_GROUP) {
    json_object_set_new(p, "group_size", json_integer(o->group_size));
    json_object_set_new(p, "groups", json_integer(bench.nconvs));
    json_object_set_new(p, "rotate", json_integer(o->rotate));
  }
  if (bench.sc == SC_CHATROOM) json_object_set_new(p, "senders", json_integer(bench.nstreams));
  if (bench.sc == SC_PAIRS) json_object_set_new(p, "conversations", json_integer(bench.nconvs));
  if (bench.sc == SC_HISTORY) {
    json_object_set_new(p, "history_messages", json_integer((json_int_t)bench.history_n));
    json_object_set_new(p, "page_size", json_integer(o->page_size));
  }
  return p;
}

void report_print(const run_info_t *ri) {
  static hist_t lat, ack, lag; /* 59 KB each: not on the stack */
  totals_t t = totals(&lat, &ack);
  hist_init(&lag);
  for (int k = 0; k < bench.nthreads; k++) hist_merge(&lag, &bench.threads[k]->lag);
  double d = ri->measured_s > 0 ? ri->measured_s : 1;
  double sent_ps = (double)t.sent_m / d, del_ps = (double)t.delivered_m / d;
  double srv_cpu = ri->end.rss_kb && ri->start.rss_kb ? ri->end.cpu_s - ri->start.cpu_s : 0; /* 0: it died */
  double srv_sys = srv_cpu > 0 ? ri->end.sys_s - ri->start.sys_s : 0;
  /* CPU per unit of work done in the window (a login, a message sent, a page), the server's
   * and the generator's side by side: on shared cores their sum is what a unit costs */
  uint64_t ops = bench.sc == SC_LOGIN || bench.sc == SC_HISTORY ? t.delivered_m : t.sent_m;
  double srv_us = ops ? srv_cpu * 1e6 / (double)ops : 0, gen_us = ops ? ri->gen_cpu_s * 1e6 / (double)ops : 0;

  json_t *j = json_object();
  json_object_set_new(j, "scenario", json_string(scenario_names[bench.sc]));
  json_object_set_new(j, "protocol", json_string(bench.mqtt ? "mqtt" : "lc"));
  json_object_set_new(j, "params", params_json());
  json_object_set_new(j, "duration_s", json_real(ri->measured_s));
  json_object_set_new(j, "setup_s", json_real(ri->setup_s));
  json_object_set_new(j, "drain_s", json_real(ri->drain_s));
  json_object_set_new(j, "sent", json_integer((json_int_t)t.sent));
  json_object_set_new(j, "delivered", json_integer((json_int_t)t.delivered));
  json_object_set_new(j, "expected", json_integer((json_int_t)t.expected));
  json_object_set_new(j, "lost", json_integer((json_int_t)t.lost));
  json_object_set_new(j, "duplicated", json_integer((json_int_t)t.dup));
  json_object_set_new(j, "errors", json_integer((json_int_t)t.errors + (json_int_t)t.unacked));
  json_object_set_new(j, "unexpected_frames", json_integer((json_int_t)t.foreign));
  json_object_set_new(j, "disconnects", json_integer((json_int_t)t.disconnects));
  json_object_set_new(j, "login_failures", json_integer((json_int_t)t.login_fail));
  json_t *tp = json_object();
  json_object_set_new(tp, "sent_per_s", json_real(sent_ps));
  json_object_set_new(tp, "delivered_per_s", json_real(del_ps));
  json_object_set_new(j, "throughput", tp);
  json_object_set_new(j, "latency_us", lat_json(&lat));
  if (bench.sc == SC_PAIRS || bench.sc == SC_GROUP || bench.sc == SC_CHATROOM)
    json_object_set_new(j, "ack_latency_us", lat_json(&ack));
  if (lag.n) json_object_set_new(j, "send_lag_us", lat_json(&lag));
  json_t *srv = json_object();
  json_object_set_new(srv, "pid", json_integer(ri->server_pid));
  json_object_set_new(srv, "rss_before_kb", json_integer(ri->before.rss_kb));
  json_object_set_new(srv, "rss_start_kb", json_integer(ri->start.rss_kb));
  json_object_set_new(srv, "rss_end_kb", json_integer(ri->end.rss_kb));
  if (ri->end.wal_kb >= 0) json_object_set_new(srv, "wal_end_kb", json_integer(ri->end.wal_kb));
  json_object_set_new(srv, "cpu_s", json_real(srv_cpu));
  json_object_set_new(srv, "cpu_util", json_real(srv_cpu / d)); /* cores' worth */
  json_object_set_new(srv, "user_s", json_real(srv_cpu - srv_sys));
  json_object_set_new(srv, "sys_s", json_real(srv_sys));
  if (ops) json_object_set_new(srv, "cpu_us_per_op", json_real(srv_us));
  json_object_set_new(j, "server", srv);
  if (ri->npids > 1) { /* a cluster: "server" is the sum; each node's own figures */
    json_t *nodes = json_array();
    for (int k = 0; k < ri->npids; k++) {
      json_t *n = json_object();
      double c = ri->nend[k].rss_kb && ri->nstart[k].rss_kb ? ri->nend[k].cpu_s - ri->nstart[k].cpu_s : 0;
      json_object_set_new(n, "pid", json_integer(ri->pids[k]));
      json_object_set_new(n, "rss_before_kb", json_integer(ri->nbefore[k].rss_kb));
      json_object_set_new(n, "rss_end_kb", json_integer(ri->nend[k].rss_kb));
      json_object_set_new(n, "cpu_s", json_real(c));
      json_object_set_new(n, "cpu_util", json_real(c / d));
      json_array_append_new(nodes, n);
    }
    json_object_set_new(j, "nodes", nodes);
  }
  json_t *gen = json_object();
  json_object_set_new(gen, "cpu_s", json_real(ri->gen_cpu_s));
  json_object_set_new(gen, "cpu_util", json_real(ri->gen_cpu_s / d));
  json_object_set_new(gen, "user_s", json_real(ri->gen_cpu_s - ri->gen_sys_s));
  json_object_set_new(gen, "sys_s", json_real(ri->gen_sys_s));
  if (ops) json_object_set_new(gen, "cpu_us_per_op", json_real(gen_us));
  json_object_set_new(gen, "rss_kb", json_integer(ri->gen_rss_kb));
  json_object_set_new(j, "generator", gen);
  json_object_set_new(j, "machine_cpu_busy", json_real(ri->machine_busy));
  switch (bench.sc) {
  case SC_IDLE: {
    json_object_set_new(j, "sessions_held", json_integer((json_int_t)ri->held));
    double per = ri->held ? (double)(ri->end.rss_kb - ri->before.rss_kb) * 1024.0 / (double)ri->held : 0;
    json_object_set_new(j, "server_rss_per_session_bytes", json_real(per));
    json_object_set_new(j, "logins_per_s", json_real(ri->setup_s > 0 ? (double)t.logins / ri->setup_s : 0));
    break;
  }
  case SC_LOGIN: json_object_set_new(j, "logins_per_s", json_real(del_ps)); break;
  case SC_HISTORY:
    json_object_set_new(j, "pages_per_s", json_real(del_ps));
    json_object_set_new(j, "items", json_integer((json_int_t)t.items));
    json_object_set_new(j, "walks_completed", json_integer((json_int_t)t.walks));
    json_object_set_new(j, "fill_msgs_per_s", json_real(ri->fill_s > 0 ? (double)bench.history_n / ri->fill_s : 0));
    break;
  default: break;
  }

  if (*bench.o.tsv) { /* one row for plots: scenario rate sent/s delivered/s p50 p90 p99 p99.9 max (us) */
    FILE *f = fopen(bench.o.tsv, "a");
    if (f) {
      fprintf(f, "%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n", scenario_names[bench.sc], bench.o.rate,
              sent_ps, del_ps, hist_percentile(&lat, 50) / 1e3, hist_percentile(&lat, 90) / 1e3,
              hist_percentile(&lat, 99) / 1e3, hist_percentile(&lat, 99.9) / 1e3, lat.max / 1e3);
      fclose(f);
    } else {
      fprintf(stderr, "tern-bench: cannot append to %s\n", bench.o.tsv);
    }
  }
  if (bench.o.json) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", s);
    free(s);
    json_decref(j);
    return;
  }
  json_decref(j);
  const char *unit = bench.sc == SC_HISTORY ? "pages" : bench.sc == SC_LOGIN ? "logins" : "msgs";
  printf("tern-bench %s%s: %d clients, %d thread%s, %.1f s measured (+%.1f s warmup), rate %s\n",
         scenario_names[bench.sc], bench.mqtt ? " (MQTT)" : "", bench.nclients, bench.nthreads,
         bench.nthreads == 1 ? "" : "s", ri->measured_s, bench.o.warmup, bench.o.rate > 0 ? "paced" : "flat out");
  if (bench.o.rate > 0) printf("  target rate        %.0f %s/s\n", bench.o.rate, unit);
  printf("  setup              %.2f s\n", ri->setup_s);
  printf("  sent               %llu\n", (unsigned long long)t.sent);
  printf("  delivered          %llu of %llu expected\n", (unsigned long long)t.delivered,
         (unsigned long long)t.expected);
  printf("  lost / duplicated  %llu / %llu   (errors %llu, disconnects %llu, login failures %llu)\n",
         (unsigned long long)t.lost, (unsigned long long)t.dup,
         (unsigned long long)t.errors + (unsigned long long)t.unacked, (unsigned long long)t.disconnects,
         (unsigned long long)t.login_fail);
  printf("  throughput         %.0f %s/s sent, %.0f deliveries/s\n", sent_ps, unit, del_ps);
  printf("  latency (us)       p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  (%llu samples)\n",
         hist_percentile(&lat, 50) / 1e3, hist_percentile(&lat, 90) / 1e3, hist_percentile(&lat, 99) / 1e3,
         hist_percentile(&lat, 99.9) / 1e3, lat.max / 1e3, (unsigned long long)lat.n);
  if (ack.n)
    printf("  ack latency (us)   p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", hist_percentile(&ack, 50) / 1e3,
           hist_percentile(&ack, 90) / 1e3, hist_percentile(&ack, 99) / 1e3, hist_percentile(&ack, 99.9) / 1e3,
           ack.max / 1e3);
  if (lag.n)
    printf(
        "  send lag (us)      p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  (sent after its schedule: in every latency)\n",
        hist_percentile(&lag, 50) / 1e3, hist_percentile(&lag, 90) / 1e3, hist_percentile(&lag, 99) / 1e3,
        hist_percentile(&lag, 99.9) / 1e3, lag.max / 1e3);
  const char *op = bench.sc == SC_HISTORY ? "page" : bench.sc == SC_LOGIN ? "login" : "msg";
  printf("  server             pid %d, RSS %ld -> %ld KB (before connecting %ld KB), CPU %.2f s (%.0f%% of a core)\n",
         ri->server_pid, ri->start.rss_kb, ri->end.rss_kb, ri->before.rss_kb, srv_cpu, 100 * srv_cpu / d);
  printf("  server CPU         user %.2f s + sys %.2f s, %.1f us per %s\n", srv_cpu - srv_sys, srv_sys, srv_us, op);
  for (int k = 0; ri->npids > 1 && k < ri->npids; k++) {
    double c = ri->nend[k].rss_kb && ri->nstart[k].rss_kb ? ri->nend[k].cpu_s - ri->nstart[k].cpu_s : 0;
    printf("  node %-2d            pid %d, RSS %ld -> %ld KB, CPU %.2f s (%.0f%% of a core)\n", k + 1, ri->pids[k],
           ri->nstart[k].rss_kb, ri->nend[k].rss_kb, c, 100 * c / d);
  }
  if (ri->end.wal_kb >= 0) printf("  server storage     WAL %ld KB at the end\n", ri->end.wal_kb);
  printf("  generator          CPU %.2f s (%.0f%% of a core; user %.2f s + sys %.2f s, %.1f us per %s), RSS %ld KB; "
         "machine %.0f%% busy\n",
         ri->gen_cpu_s, 100 * ri->gen_cpu_s / d, ri->gen_cpu_s - ri->gen_sys_s, ri->gen_sys_s, gen_us, op,
         ri->gen_rss_kb, 100 * ri->machine_busy);
  if (bench.sc == SC_IDLE && ri->held)
    printf("  sessions held      %llu, server RSS per session %.0f bytes\n", (unsigned long long)ri->held,
           (double)(ri->end.rss_kb - ri->before.rss_kb) * 1024.0 / (double)ri->held);
  if (bench.sc == SC_HISTORY)
    printf("  history            %llu items read, %llu full walks of %llu messages (filled at %.0f msgs/s)\n",
           (unsigned long long)t.items, (unsigned long long)t.walks, (unsigned long long)bench.history_n,
           ri->fill_s > 0 ? (double)bench.history_n / ri->fill_s : 0);
}
