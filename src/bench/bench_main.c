/* bench_main.c — tern-bench's entry point: options, threads, and the timeline of a run.
 *
 * The main thread never touches a socket. It starts --threads loops, walks them through
 * the scenario's setup steps, then runs the load (warmup, measurement, drain) while it
 * samples the server's and its own /proc figures at the edges of the measured window, and
 * finally prints the report. Worker threads hear about a new step through uv_async and
 * report completion through an atomic counter. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "crypto.h"
#include "jsonlim.h"
#include "log.h"
#include "timeutil.h"

bench_t bench;

/* ---------------------------------------------------------------- options */

typedef enum { OT_S, OT_I, OT_D, OT_B } opt_type_t;

typedef struct {
  const char *name, *def, *help;
  opt_type_t type;
  size_t off;
} opt_row_t;

#define OPT_TYPE_S OT_S
#define OPT_TYPE_I OT_I
#define OPT_TYPE_D OT_D
#define OPT_TYPE_B OT_B
#define STR2(x) #x
#define STR(x) STR2(x)

static const opt_row_t opt_rows[] = {
#define X(name, type, def, help) {#name, STR(def), help, OPT_TYPE_##type, offsetof(bench_opts_t, name)},
    BENCH_OPTIONS(X)
#undef X
};
#define N_OPTS (sizeof opt_rows / sizeof opt_rows[0])

static int opt_set(const opt_row_t *r, const char *v) {
  char *field = (char *)&bench.o + r->off;
  char *end;
  switch (r->type) {
  case OT_S:
    free(*(char **)field);
    *(char **)field = xstrdup(v);
    return 0;
  case OT_I:
    errno = 0;
    *(long *)field = strtol(v, &end, 10);
    return errno || end == v || *end ? -1 : 0;
  case OT_D:
    errno = 0;
    *(double *)field = strtod(v, &end);
    return errno || end == v || *end ? -1 : 0;
  case OT_B: *(int *)field = !(strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0); return 0;
  }
  return -1;
}

static void usage(FILE *out) {
  fprintf(out, "usage: tern-bench [--option value ...]\n\n"
               "Opens N WebSocket sessions to a ternd, runs a scenario and reports sent, delivered, lost,\n"
               "duplicated, throughput and latency percentiles (see bench/README.md).\n\n");
  for (size_t i = 0; i < N_OPTS; i++) {
    char name[40];
    snprintf(name, sizeof name, "%s", opt_rows[i].name);
    for (char *p = name; *p; p++)
      if (*p == '_') *p = '-';
    const char *def = opt_rows[i].def;
    size_t dl = strlen(def);
    if (opt_rows[i].type == OT_S && dl >= 2)
      fprintf(out, "  --%-18s %s (default %.*s)\n", name, opt_rows[i].help, (int)dl - 2, def + 1);
    else if (opt_rows[i].type == OT_B) fprintf(out, "  --%-18s %s\n", name, opt_rows[i].help);
    else fprintf(out, "  --%-18s %s (default %s)\n", name, opt_rows[i].help, def);
  }
}

static int url_given; /* --url on the command line: how many times */

static int parse_args(int argc, char **argv) {
  for (size_t i = 0; i < N_OPTS; i++) { /* defaults, from the same rows */
    const char *def = opt_rows[i].def;
    if (opt_rows[i].type == OT_S) {
      char *s = xstrndup(def + 1, strlen(def) - 2); /* strip the quotes STR() kept */
      opt_set(&opt_rows[i], s);
      free(s);
    } else {
      opt_set(&opt_rows[i], def);
    }
  }
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (strncmp(arg, "--", 2) != 0) goto bad;
    char name[64];
    const char *eq = strchr(arg, '=');
    size_t nl = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (nl >= sizeof name) goto bad;
    memcpy(name, arg + 2, nl);
    name[nl] = 0;
    for (char *p = name; *p; p++)
      if (*p == '-') *p = '_';
    const opt_row_t *r = NULL;
    for (size_t i = 0; i < N_OPTS; i++)
      if (!strcmp(opt_rows[i].name, name)) r = &opt_rows[i];
    if (!r) goto bad;
    const char *v;
    if (eq) v = eq + 1;
    else if (r->type == OT_B) v = "1";
    else if (a + 1 < argc) v = argv[++a];
    else goto bad;
    if (!strcmp(r->name, "url") && url_given++) { /* a repeated --url adds a node */
      size_t l = strlen(bench.o.url) + strlen(v) + 2;
      char *both = xmalloc(l);
      snprintf(both, l, "%s,%s", bench.o.url, v);
      free(bench.o.url);
      bench.o.url = both;
      continue;
    }
    if (opt_set(r, v) < 0) {
      fprintf(stderr, "tern-bench: bad value for --%s: %s\n", arg + 2, v);
      return -1;
    }
    continue;
  bad:
    fprintf(stderr, "tern-bench: unknown or incomplete option %s (see --help)\n", arg);
    return -1;
  }
  return 0;
}

static int check_options(void) {
  bench_opts_t *o = &bench.o;
  static const char *const names[] = {"idle", "pairs", "group", "chatroom", "login-storm", "history"};
  int sc = -1;
  for (int i = 0; i < 6; i++)
    if (!strcmp(o->scenario, names[i])) sc = i;
  if (sc < 0) {
    fprintf(stderr, "tern-bench: unknown scenario \"%s\"\n", o->scenario);
    return -1;
  }
  bench.sc = (scenario_t)sc;
  bench.mqtt = !strcmp(o->protocol, "mqtt");
  if (!bench.mqtt && strcmp(o->protocol, "lc") != 0) {
    fprintf(stderr, "tern-bench: unknown protocol \"%s\" (lc or mqtt)\n", o->protocol);
    return -1;
  }
  if (bench.mqtt && bench.sc != SC_PAIRS) {
    fprintf(stderr, "tern-bench: --protocol mqtt runs the pairs scenario only\n");
    return -1;
  }
  if (bench.mqtt) o->echo_s = 0; /* MQTT's keepalive is off (CONNECT says 0) */
  if (!*o->app_id && !bench.mqtt) {
    const char *env = getenv("TERN_APP_ID");
    if (!env || !*env) {
      fprintf(stderr, "tern-bench: --app-id is required (ternd prints it at start)\n");
      return -1;
    }
    free(o->app_id);
    o->app_id = xstrdup(env);
  }
  if (o->clients < 1 || o->clients > 1000000 || o->duration <= 0 || o->warmup < 0 || o->drain < 0 || o->rate < 0 ||
      o->window < 1 || o->window > 100000 || o->tick_us < 50 || o->tick_us > 1000 || o->payload < 64 ||
      o->payload > 4000 || o->threads < 1 || o->threads > BENCH_MAX_THREADS || o->page_size < 1 ||
      o->page_size > 1000 || o->rotate < 1 || o->connect_window < 1 || o->sources < 0 ||
      o->sources > BENCH_MAX_SOURCES) {
    fprintf(stderr, "tern-bench: an option is out of range (see --help)\n");
    return -1;
  }
  bench.nclients = (int)o->clients;
  switch (bench.sc) {
  case SC_PAIRS:
    if (bench.nclients < 2) goto few;
    bench.nclients &= ~1;
    break;
  case SC_GROUP:
    if (o->group_size < 2 || o->group_size > bench.nclients) {
      fprintf(stderr, "tern-bench: group needs 2 <= --group-size <= --clients\n");
      return -1;
    }
    bench.nclients -= bench.nclients % (int)o->group_size;
    break;
  case SC_CHATROOM:
    if (bench.nclients < 2) goto few;
    if (o->senders < 1) o->senders = 1;
    break;
  case SC_HISTORY:
    if (bench.nclients > 500) { /* every reader must be a member; conversations hold 500 */
      fprintf(stderr, "tern-bench: history reads with at most 500 clients\n");
      return -1;
    }
    if (o->history_messages < 1) o->history_messages = 1;
    break;
  default: break;
  }
  int t = (int)o->threads;
  bench.nthreads = t > bench.nclients ? bench.nclients : t;
  bench.nsources = o->sources ? (int)o->sources : 1 + bench.nclients / 20000;
  return 0;
few:
  fprintf(stderr, "tern-bench: this scenario needs at least 2 clients\n");
  return -1;
}

static int parse_one_url(const char *u, bench_node_t *node) {
  struct sockaddr_in *server = &node->addr;
  char *host_hdr = node->host_hdr, *path = node->path;
  size_t hlen = sizeof node->host_hdr, plen = sizeof node->path;
  if (strncmp(u, "ws://", 5) != 0) {
    fprintf(stderr, "tern-bench: --url must be ws://IPv4:port/path\n");
    return -1;
  }
  u += 5;
  const char *slash = strchr(u, '/');
  size_t hl = slash ? (size_t)(slash - u) : strlen(u);
  if (hl == 0 || hl >= hlen) return -1;
  memcpy(host_hdr, u, hl);
  host_hdr[hl] = 0;
  snprintf(path, plen, "%s", slash ? slash : "/");
  char host[64];
  int port = 80;
  snprintf(host, sizeof host, "%s", host_hdr);
  char *colon = strrchr(host, ':');
  if (colon) {
    *colon = 0;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 1 || p > 65535) {
      fprintf(stderr, "tern-bench: --url port must be 1-65535, got \"%s\"\n", colon + 1);
      return -1;
    }
    port = (int)p;
  }
  if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, port, server) != 0) {
    fprintf(stderr, "tern-bench: --url host must be an IPv4 address, got \"%s\"\n", host);
    return -1;
  }
  if ((ntohl(server->sin_addr.s_addr) >> 24) != 127) bench.nsources = 1; /* spreading is for loopback */
  return 0;
}

/* --url (repeated, or a comma-separated list) and --urls: the nodes, in order; --urls alone
 * replaces the default --url. */
static int parse_url(void) {
  const char *url = !url_given && *bench.o.urls ? "" : bench.o.url;
  size_t l = strlen(url) + strlen(bench.o.urls) + 2;
  char *all = xmalloc(l);
  snprintf(all, l, "%s%s%s", url, *url && *bench.o.urls ? "," : "", bench.o.urls);
  int rc = 0;
  char *save = NULL;
  for (char *u = strtok_r(all, ",", &save); u && rc == 0; u = strtok_r(NULL, ",", &save)) {
    if (bench.nnodes == BENCH_MAX_NODES) {
      fprintf(stderr, "tern-bench: at most %d nodes (--url)\n", BENCH_MAX_NODES);
      rc = -1;
    } else {
      rc = parse_one_url(u, &bench.nodes[bench.nnodes++]);
    }
  }
  free(all);
  if (rc == 0 && bench.nnodes == 0) {
    fprintf(stderr, "tern-bench: --url is empty\n");
    rc = -1;
  }
  return rc;
}

/* ---------------------------------------------------------------- threads */

static void on_tfd_closed(uv_handle_t *h) { close(((bthread_t *)h->data)->tfd); }

static void on_wake(uv_async_t *h) {
  bthread_t *th = h->data;
  int step = atomic_load(&bench.step);
  if (step == th->step_seen) return;
  th->step_seen = step;
  scen_step(th, (step_t)step);
  if (step == STEP_STOP) {
    uv_close((uv_handle_t *)&th->wake, NULL);
    uv_close((uv_handle_t *)&th->tick, NULL);
    if (th->tfd >= 0) uv_close((uv_handle_t *)&th->tfd_poll, on_tfd_closed);
    uv_close((uv_handle_t *)&th->slow, NULL);
    uv_close((uv_handle_t *)&th->prep, NULL);
    uv_close((uv_handle_t *)&th->check, NULL);
  }
}

static void on_tick(uv_timer_t *h) { scen_tick(h->data, mono_ns()); }
static void on_tfd(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  bthread_t *th = h->data;
  uint64_t expirations;
  if (read(th->tfd, &expirations, sizeof expirations) == sizeof expirations) scen_tick(th, mono_ns());
}
static void on_slow(uv_timer_t *h) { scen_slow_tick(h->data, mono_ns()); }
static void on_prep(uv_prepare_t *h) { thread_flush(h->data); }
static void on_check(uv_check_t *h) { thread_flush(h->data); }

static void *thread_main(void *arg) {
  bthread_t *th = arg;
  uv_run(&th->loop, UV_RUN_DEFAULT);
  uv_loop_close(&th->loop);
  return NULL;
}

static void thread_init(int idx) {
  bthread_t *th = xcalloc(1, sizeof *th);
  th->idx = idx;
  uv_loop_init(&th->loop);
  uv_async_init(&th->loop, &th->wake, on_wake);
  uv_timer_init(&th->loop, &th->tick);
  uv_timer_init(&th->loop, &th->slow);
  uv_prepare_init(&th->loop, &th->prep);
  uv_check_init(&th->loop, &th->check);
  th->wake.data = th->tick.data = th->slow.data = th->prep.data = th->check.data = th;
  th->tfd = -1;
  if (bench.o.tick_us < 1000) {
    th->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{0, bench.o.tick_us * 1000}, {0, bench.o.tick_us * 1000}};
    if (th->tfd < 0 || timerfd_settime(th->tfd, 0, &its, NULL) < 0 ||
        uv_poll_init(&th->loop, &th->tfd_poll, th->tfd) < 0) {
      perror("tern-bench: timerfd");
      exit(1);
    }
    th->tfd_poll.data = th;
    uv_poll_start(&th->tfd_poll, UV_READABLE, on_tfd);
  } else {
    uv_timer_start(&th->tick, on_tick, 1, 1);
  }
  uv_timer_start(&th->slow, on_slow, 1000, 1000);
  uv_prepare_start(&th->prep, on_prep);
  uv_check_start(&th->check, on_check);
  random_bytes(&th->rng, sizeof th->rng);
  th->rng |= 1;
  hist_init(&th->lat);
  hist_init(&th->ack_lat);
  hist_init(&th->lag);
  if (*bench.o.timeline) tl_init(&th->tl, bench.o.warmup + bench.o.duration + bench.o.drain + 5);
  bench.threads[idx] = th;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static uint64_t sum_counter(size_t off) {
  uint64_t v = 0;
  for (int k = 0; k < bench.nthreads; k++)
    v += atomic_load_explicit((_Atomic uint64_t *)((char *)&bench.threads[k]->cnt + off), memory_order_relaxed);
  return v;
}
#define SUMC(field) sum_counter(offsetof(counters_t, field))

static void progress_line(const char *what) {
  if (!bench.o.verbose) return;
  fprintf(stderr,
          "tern-bench: %-10s ready %llu  sent %llu  delivered %llu/%llu  pages %llu  logins %llu  errors %llu\n", what,
          (unsigned long long)SUMC(ready), (unsigned long long)SUMC(sent), (unsigned long long)SUMC(delivered),
          (unsigned long long)SUMC(expected), (unsigned long long)SUMC(pages), (unsigned long long)SUMC(logins),
          (unsigned long long)SUMC(errors));
}

/* Starts a step on every thread; with wait, returns once all have finished it. */
static int run_step(step_t s, const char *name, double timeout_s, int wait) {
  atomic_store(&bench.step_done, 0);
  atomic_store(&bench.step, s);
  for (int k = 0; k < bench.nthreads; k++) uv_async_send(&bench.threads[k]->wake);
  if (!wait) return 0;
  uint64_t t0 = mono_ns(), last = t0;
  while (atomic_load(&bench.step_done) < bench.nthreads) {
    if (atomic_load(&bench.failed)) return -1;
    if ((double)(mono_ns() - t0) / 1e9 > timeout_s) {
      bench_fail("step \"%s\" did not finish in %.0f s (ready %llu of %d)", name, timeout_s,
                 (unsigned long long)SUMC(ready), bench.nclients);
      return -1;
    }
    if (mono_ns() - last > 1000000000ull) {
      last = mono_ns();
      progress_line(name);
    }
    sleep_ms(2);
  }
  progress_line(name);
  return atomic_load(&bench.failed) ? -1 : 0;
}

static void sleep_until(uint64_t t) {
  uint64_t last = mono_ns();
  for (;;) {
    uint64_t now = mono_ns();
    if (now >= t || atomic_load(&bench.failed)) return;
    if (now - last > 1000000000ull) {
      last = now;
      progress_line("running");
    }
    uint64_t left = (t - now) / 1000000;
    sleep_ms(left > 50 ? 50 : left ? (long)left : 1);
  }
}

static void stop_threads(void) {
  run_step(STEP_STOP, "stop", 0, 0);
  for (int k = 0; k < bench.nthreads; k++) pthread_join(bench.threads[k]->thread, NULL);
}

int main(int argc, char **argv) {
  json_abort_on_oom(); /* the report's JSON: before any value exists */
  log_level = LOG_WARN;
  if (parse_args(argc, argv) < 0 || check_options() < 0 || parse_url() < 0) return 2;
  struct rlimit rl; /* sockets are files: take every descriptor the hard limit allows */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)bench.nclients + 64 > rl.rlim_cur)
      fprintf(stderr,
              "tern-bench: warning: %d clients need more than the %llu open files allowed; "
              "run several generator processes\n",
              bench.nclients, (unsigned long long)rl.rlim_cur);
  }
  if (*bench.o.id_prefix) {
    snprintf(bench.prefix, sizeof bench.prefix, "%s", bench.o.id_prefix);
  } else {
    uint8_t r[3];
    char hex[7];
    random_bytes(r, sizeof r);
    hex_encode(r, sizeof r, hex);
    snprintf(bench.prefix, sizeof bench.prefix, "tb%s-", hex);
  }
  for (int k = 0; k < bench.nthreads; k++) thread_init(k);
  scen_plan();
  bench.history_n = (uint64_t)bench.o.history_messages;

  run_info_t ri;
  memset(&ri, 0, sizeof ri);
  for (int k = 0; k < bench.nnodes; k++) { /* one process per node; the same URL twice is sampled once */
    int pid =
        k == 0 && bench.o.server_pid ? (int)bench.o.server_pid : find_listener_pid(ntohs(bench.nodes[k].addr.sin_port));
    if (k == 0) ri.server_pid = pid;
    if (!pid) {
      fprintf(stderr, "tern-bench: warning: the server process of node %d not found; no RSS/CPU figures for it\n",
              k + 1);
      continue;
    }
    int seen = 0;
    for (int q = 0; q < ri.npids; q++) seen |= ri.pids[q] == pid;
    if (!seen) ri.pids[ri.npids++] = pid;
  }
  servers_sample(&ri, 0);

  for (int k = 0; k < bench.nthreads; k++)
    pthread_create(&bench.threads[k]->thread, NULL, thread_main, bench.threads[k]);
  uint64_t t0 = mono_ns();
  double login_timeout = 60 + bench.nclients / 200.0;
  int rc = 0;
  if (bench.sc != SC_LOGIN) rc = run_step(STEP_CONNECT_A, "login", login_timeout, 1);
  if (rc == 0 && SUMC(login_fail) && bench.sc != SC_IDLE)
    bench_fail("%llu of %d logins failed", (unsigned long long)SUMC(login_fail), bench.nclients), rc = -1;
  if (rc == 0 && bench.nconvs && !bench.mqtt) rc = run_step(STEP_CREATE, "create", 120, 1); /* MQTT: topics */
  if (rc == 0 && bench.sc == SC_CHATROOM) rc = run_step(STEP_JOIN, "join", login_timeout, 1);
  if (rc == 0 && bench.sc == SC_HISTORY) {
    uint64_t f0 = mono_ns();
    rc = run_step(STEP_FILL, "fill", 60 + bench.o.history_messages / 500.0, 1);
    ri.fill_s = (double)(mono_ns() - f0) / 1e9;
    if (rc == 0 && SUMC(errors))
      bench_fail("%llu history messages were refused", (unsigned long long)SUMC(errors)), rc = -1;
    if (rc == 0) rc = run_step(STEP_CONNECT_B, "login", login_timeout, 1);
  }
  if (rc < 0) {
    fprintf(stderr, "tern-bench: setup failed: %s\n", bench.fail_msg);
    stop_threads();
    return 1;
  }
  ri.setup_s = (double)(mono_ns() - t0) / 1e9;

  /* The run: warmup, then the measured window between two /proc samples, then drain. */
  bench.t_run = mono_ns();
  struct timespec rt;
  clock_gettime(CLOCK_REALTIME, &rt);
  bench.t_run_real = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
  bench.t_measure = bench.t_run + (uint64_t)(bench.o.warmup * 1e9);
  bench.t_end = bench.t_measure + (uint64_t)(bench.o.duration * 1e9);
  run_step(STEP_RUN, "run", 0, 0);
  sleep_until(bench.t_measure);
  uint64_t mb0 = 0, mt0 = 0, mb1 = 0, mt1 = 0;
  servers_sample(&ri, 1);
  machine_cpu(&mb0, &mt0);
  double g0 = self_cpu_s(), gs0 = self_sys_s();
  sleep_until(bench.t_end);
  servers_sample(&ri, 2);
  machine_cpu(&mb1, &mt1);
  ri.gen_cpu_s = self_cpu_s() - g0;
  ri.gen_sys_s = self_sys_s() - gs0;
  ri.gen_rss_kb = self_rss_kb();
  ri.measured_s = (double)(mono_ns() - bench.t_measure) / 1e9;
  if (mt1 > mt0) ri.machine_busy = (double)(mb1 - mb0) / (double)(mt1 - mt0);
  ri.held = SUMC(ready);

  /* Drain: every thread has its answers (or gave up); deliveries trail acks slightly. */
  uint64_t d0 = mono_ns(), deadline = bench.t_end + (uint64_t)((bench.o.drain + 5) * 1e9);
  while (atomic_load(&bench.step_done) < bench.nthreads && mono_ns() < deadline && !atomic_load(&bench.failed))
    sleep_ms(5);
  uint64_t last = SUMC(delivered), last_change = mono_ns();
  while (SUMC(delivered) < SUMC(expected) && !atomic_load(&bench.failed)) {
    uint64_t now = mono_ns();
    if (now > deadline || now - last_change > 2000000000ull) break; /* 2 s without progress: lost */
    uint64_t d = SUMC(delivered);
    if (d != last) last = d, last_change = now;
    sleep_ms(5);
  }
  ri.drain_s = (double)(mono_ns() - d0) / 1e9;
  stop_threads();
  if (atomic_load(&bench.failed)) fprintf(stderr, "tern-bench: %s\n", bench.fail_msg);
  if (*bench.o.timeline) {
    timeline_t *per[BENCH_MAX_THREADS];
    for (int k = 0; k < bench.nthreads; k++) per[k] = &bench.threads[k]->tl;
    if (tl_write(bench.o.timeline, per, bench.nthreads, bench.o.warmup, bench.t_run_real) < 0)
      fprintf(stderr, "tern-bench: cannot write %s\n", bench.o.timeline);
  }
  report_print(&ri);
  return atomic_load(&bench.failed) ? 1 : 0;
}
