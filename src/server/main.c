/* main.c — ternd: configuration, app keys, storage, workers, signals.
 *
 * It makes each layer's state and connects them (with wire.c's tables): the store, then
 * im on it, out attached to im, the REST API's files and assets, and the network layer's
 * workers, which call up through srv->net_app.
 *
 * Start-up order matters: the data directory's lock before anything is written there,
 * keys before anything that signs tokens, the store before the IM state that reads
 * through it, workers last. Shutdown is the reverse, with one twist: workers stop first,
 * then the store drains its queue (so every accepted write commits), and only then are the
 * workers' leftover completions released. SIGHUP reopens the log file and applies the
 * reloadable options (config.c) while the workers are parked; it never ends the process. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "bus.h"
#include "config.h"
#include "crypto.h"
#include "err.h"
#include "files.h"
#include "fscopy.h"
#include "im_internal.h" /* im->post */
#include "ipcount.h"
#include "jsonlim.h"
#include "log.h"
#include "out.h"
#include "proxies.h"
#include "sdnotify.h"
#include "server.h"
#include "store.h"
#include "store_pg.h"
#include "store_sqlite.h"
#include "tern_version.h"
#include "timeutil.h"
#include "tls.h"
#include "web.h"
#include "wire.h"
#include "worker.h"

static void random_key(char *out, size_t len) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint8_t rnd[64];
  random_bytes(rnd, len);
  for (size_t i = 0; i < len; i++) out[i] = alpha[rnd[i] % 62];
  out[len] = 0;
}

/* App id, app key and master key: from the configuration when given, else from
 * <data_dir>/app.json, else generated once and saved there. */
static int load_keys(server_t *srv) {
  tern_config_t *cfg = srv->cfg;
  char path[4096];
  snprintf(path, sizeof path, "%s/app.json", cfg->data_dir);
  json_t *saved = json_load_file(path, 0, NULL);
  int dirty = 0;
  const char *names[3] = {"app_id", "app_key", "master_key"};
  char *cfgv[3] = {cfg->app_id, cfg->app_key, cfg->master_key};
  char *out[3];
  for (int i = 0; i < 3; i++) {
    const char *have = json_string_value(json_object_get(saved, names[i]));
    if (cfgv[i] && *cfgv[i]) {
      out[i] = xstrdup(cfgv[i]);
    } else if (have && *have) {
      out[i] = xstrdup(have);
    } else {
      char k[40];
      random_key(k, 24);
      /* LeanCloud-shaped app id: 24 characters and a region suffix; the "-gzGzoHsz"
       * suffix makes the JS SDK insist on the `server` option, which self-hosting needs. */
      if (i == 0) snprintf(k + strlen(k), sizeof k - strlen(k), "-gzGzoHsz");
      out[i] = xstrdup(k);
      if (!saved) saved = json_object();
      json_object_set_new(saved, names[i], json_string(k));
      dirty = 1;
    }
  }
  if (dirty) {
    if (json_dump_file(saved, path, JSON_INDENT(2)) != 0) {
      log_at(LOG_ERROR, "cannot write %s", path);
      json_decref(saved);
      for (int i = 0; i < 3; i++) free(out[i]);
      return TERN_EIO;
    }
    chmod(path, 0600);
  }
  json_decref(saved);
  srv->app_id = out[0];
  srv->app_key = out[1];
  srv->master_key = out[2];
  return 0;
}

static void post_to_worker(void *arg, int worker, task_t *t) { worker_post(arg, worker, t); }

/* One ternd per data directory: a second one would share the database with it, and its
 * app keys. The lock is flock(2) on <data_dir>/ternd.lock, held by the open descriptor for
 * the process's life; the kernel drops it when the process dies however it dies, so a
 * stale file from a killed ternd blocks nothing. The file holds the pid, for the message. */
static int lock_data_dir(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ternd.lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    log_at(LOG_ERROR, "cannot open %s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    if (e == EWOULDBLOCK)
      log_at(LOG_ERROR,
             "data directory %s is in use by another ternd%s%s%s (lock %s): stop it, or give this one another data_dir",
             dir, *pid ? " (pid " : "", pid, *pid ? ")" : "", path);
    else log_at(LOG_ERROR, "cannot lock %s: %s", path, strerror(e));
    close(fd);
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) log_at(LOG_WARN, "cannot write %s", path);
  return fd; /* kept open, never closed: the lock lasts as long as the process */
}

/* Descriptors: each connection holds one, so the soft limit (often 1,024) is raised to the
 * hard one, and max_conns (when 0) is derived from the result. */
static long raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return 1024;
  rlim_t was = rl.rlim_cur;
  if (rl.rlim_cur != RLIM_INFINITY && (rl.rlim_max == RLIM_INFINITY || rl.rlim_cur < rl.rlim_max)) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
      log_at(LOG_WARN, "open files: cannot raise the limit from %lu to %lu: %s", (unsigned long)was,
             (unsigned long)rl.rlim_cur, strerror(errno));
      rl.rlim_cur = was;
    }
  }
  long n = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30 ? 1L << 30 : (long)rl.rlim_cur;
  if (rl.rlim_cur != was)
    log_at(LOG_INFO, "open files: limit raised from %lu to %ld (the hard limit)", (unsigned long)was, n);
  else log_at(LOG_INFO, "open files: limit %ld (the hard limit is %lu)", n, (unsigned long)rl.rlim_max);
  return n;
}

/* Is host:port (as server_start wrote srv->bound) on the loopback interface only? */
static int bound_loopback(const char *bound) {
  char host[80];
  snprintf(host, sizeof host, "%s", bound);
  char *colon = strrchr(host, ':');
  if (colon) *colon = 0;
  const char *h = host;
  if (*h == '[') {
    h++;
    host[strlen(host) - 1] = 0;
  }
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return 0;
}

/* Reachable from other machines with signatures off: anyone may log in as anyone (and
 * start or join any conversation), as on LeanCloud with signatures off. Fine on a trusted
 * network or for a demo; said once at start so nobody runs it that way unknowingly. */
static void warn_unsigned(const server_t *srv) {
  const tern_config_t *cfg = srv->cfg;
  if (bound_loopback(srv->bound) || (cfg->sign_login && cfg->sign_conversation)) return;
  log_at(LOG_WARN,
         "listening on %s, reachable from other machines, with %s%s%s off: anyone who can connect can %s "
         "(as on LeanCloud with signatures off); set %s%s%s and sign in the app's server (docs/security.md)",
         srv->bound, cfg->sign_login ? "" : "login signatures",
         !cfg->sign_login && !cfg->sign_conversation ? " and " : "",
         cfg->sign_conversation ? "" : "conversation signatures",
         !cfg->sign_login ? "log in as any client id" : "start, join or change any conversation it names",
         cfg->sign_login ? "" : "TERN_SIGN_LOGIN=1", !cfg->sign_login && !cfg->sign_conversation ? " and " : "",
         cfg->sign_conversation ? "" : "TERN_SIGN_CONVERSATION=1");
}

/* listen = name:port (localhost:8080): the workers bind an address, so the name is looked
 * up once here, an IPv4 address first (clients are told ws://127.0.0.1…, not [::1]); a
 * name that does not resolve stops start-up saying what to write instead. An address, an
 * empty host or a [v6] one is left as it is. */
static int resolve_listen(const char *spec, char *out, size_t outlen) {
  snprintf(out, outlen, "%s", spec);
  const char *colon = strrchr(spec, ':');
  char host[256];
  if (!colon || spec[0] == '[' || colon == spec || (size_t)(colon - spec) >= sizeof host) return 0;
  snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
  struct in_addr a4;
  if (inet_pton(AF_INET, host, &a4) == 1) return 0;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL, *pick = NULL;
  int e = getaddrinfo(host, NULL, &hints, &res);
  for (struct addrinfo *ai = e ? NULL : res; ai; ai = ai->ai_next)
    if (!pick || (ai->ai_family == AF_INET && pick->ai_family != AF_INET)) pick = ai;
  if (!pick) {
    log_at(LOG_ERROR, "listen: cannot resolve \"%s\" (%s): give an IP address, e.g. 127.0.0.1%s or [::1]%s", host,
           e ? gai_strerror(e) : "no address", colon, colon);
    if (res) freeaddrinfo(res);
    return TERN_ECONFIG;
  }
  char ip[INET6_ADDRSTRLEN];
  int v6 = pick->ai_family == AF_INET6;
  inet_ntop(pick->ai_family,
            v6 ? (void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
               : (void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr,
            ip, sizeof ip);
  freeaddrinfo(res);
  snprintf(out, outlen, v6 ? "[%s]%s" : "%s%s", ip, colon);
  log_at(LOG_INFO, "listen: %s is %s", host, ip);
  return 0;
}

/* What an operator needs to point apps, the CLI and a browser at this server, on stdout.
 * Listening on every address with no public_url, the router would hand clients
 * ws://0.0.0.0:…, where no client elsewhere can connect: said once. */
static void banner(const server_t *srv) {
  const char *http = srv->tls ? "https" : "http";
  printf("app id:     %s\napp key:    %s\nmaster key: %s\n", srv->app_id, srv->app_key, srv->master_key);
  printf("WebSocket:  %s\nREST API:   %s://%s   (the SDKs' server option)\nrouter:     GET %s://%s/v1/route -> %s\n",
         srv->public_url, http, srv->bound, http, srv->bound, srv->public_url);
  if (srv->web) printf("console:    %s://%s/console/\nchat:       %s://%s/chat/\n", http, srv->bound, http, srv->bound);
  fflush(stdout);
  const tern_config_t *cfg = srv->cfg;
  if ((!strncmp(srv->bound, "0.0.0.0:", 8) || !strncmp(srv->bound, "[::]:", 5)) && !*cfg->public_url)
    log_at(LOG_WARN,
           "listening on %s without public_url: the router hands clients %s, an address no other machine can "
           "connect to; set public_url to the URL clients reach this server at (e.g. wss://im.example.com/)",
           srv->bound, srv->public_url);
}

static uv_loop_t *main_loop;
static server_t *the_server;
static int saved_argc;
static char **saved_argv;

/* After goaway: the SDKs ask the router again and close the connection themselves
 * (leancloud-realtime 5 refreshes its endpoints, then disconnects; closing under it first
 * made its state machine throw "event disconnect inappropriate in current state
 * disconnected", an unhandled rejection in the app). So wait, up to timeout_ms, until every
 * session of this node has gone; the workers still run, only this thread waits. What is
 * left then is closed (1001) by server_stop. docs/cluster.md, "When something fails". */
static void drain(bus_t *bus, long timeout_ms) {
  int64_t until = now_ms() + timeout_ms;
  long left = bus_local_sessions(bus);
  while (left > 0 && now_ms() < until) {
    usleep(10000);
    left = bus_local_sessions(bus);
  }
  if (timeout_ms > 0) log_at(LOG_INFO, "drain: %ld sessions left after goaway, closing them", left);
}

static void on_signal(uv_signal_t *h, int signum) {
  log_at(LOG_INFO, "signal %d: shutting down", signum);
  sdnotify_send("STOPPING=1");
  uv_stop(main_loop);
}

typedef struct {
  tern_config_t *cur, *next;
  buf_t applied, ignored;
} reload_t;

static void note_change(const char *name, int applied, void *arg) {
  reload_t *r = arg;
  buf_t *b = applied ? &r->applied : &r->ignored;
  buf_printf(b, "%s%s", b->len ? ", " : "", name);
}

static void apply_reload(void *arg) { /* the workers are parked */
  reload_t *r = arg;
  config_reload(r->cur, r->next, note_change, r);
  log_level = log_level_parse(r->cur->log_level);
  log_json = log_format_parse(r->cur->log_format) == 1;
}

/* SIGHUP: the configuration is read again as at start (file, environment, flags); the
 * reloadable options take their new values, the log file is reopened (after a rotation it
 * is a new file), and an error in the file changes nothing. */
static void on_sighup(uv_signal_t *h, int signum) {
  server_t *srv = the_server;
  sdnotify_send("RELOADING=1");
  char *errs = NULL;
  size_t errlen = 0;
  FILE *ef = open_memstream(&errs, &errlen);
  tern_config_t next;
  int rc = config_load_to(&next, saved_argc, saved_argv, ef ? ef : stderr);
  if (ef) fclose(ef);
  if (rc == 0 && log_level_parse(next.log_level) < 0) {
    rc = TERN_ECONFIG;
    free(errs);
    errs = xstrdup("ternd: log_level must be error, warn, info or debug\n");
  } else if (rc == 0 && log_format_parse(next.log_format) < 0) {
    rc = TERN_ECONFIG;
    free(errs);
    errs = xstrdup("ternd: log_format must be text or json\n");
  }
  if (rc != 0) {
    int e = log_open(srv->cfg->log_file);
    if (e < 0) log_at(LOG_ERROR, "SIGHUP: cannot reopen log_file %s: %s", srv->cfg->log_file, strerror(-e));
    log_write(LOG_ERROR, "SIGHUP: the configuration has an error, nothing changed: %.*s",
              (int)strcspn(errs ? errs : "", "\n"), errs ? errs : "");
    free(errs);
    config_free(&next);
    sdnotify_send("READY=1");
    return;
  }
  free(errs);
  reload_t r = {.cur = srv->cfg, .next = &next, .applied = BUF_INIT, .ignored = BUF_INIT};
  server_with_workers_parked(srv, apply_reload, &r);
  int e = log_open(srv->cfg->log_file);
  if (e < 0) log_at(LOG_ERROR, "SIGHUP: cannot open log_file %s: %s", srv->cfg->log_file, strerror(-e));
  /* whatever the (new) level: whoever sent the signal wants to know what it did */
  log_write(LOG_INFO, "SIGHUP: log reopened; reloaded: %s", r.applied.len ? buf_cstr(&r.applied) : "nothing changed");
  if (r.ignored.len) log_write(LOG_WARN, "SIGHUP: changed but only applied at a restart: %s", buf_cstr(&r.ignored));
  buf_free(&r.applied);
  buf_free(&r.ignored);
  config_free(&next);
  sdnotify_send("READY=1");
}

/* `ternd --restore DIR`: a backup (POST /1.2/tern/backup, `tern admin backup`) into this
 * configuration's data directory, which must hold no database yet; then exit. The data
 * directory is locked meanwhile, so a running ternd cannot be restored over. */
static int restore(const tern_config_t *cfg, const char *from, const char *filesdir) {
  char path[4200], dst[4200];
  snprintf(path, sizeof path, "%s/backup.json", from);
  json_t *m = json_load_file(path, 0, NULL);
  const char *fmt = json_string_value(json_object_get(m, "ternd"));
  int ok = fmt && strcmp(fmt, "tern-backup-1") == 0;
  json_decref(m);
  if (!ok) {
    log_at(LOG_ERROR, "restore: %s is not a tern backup (no backup.json of format tern-backup-1)", from);
    return -1;
  }
  static const char *const present[] = {"tern.db", "tern.db-wal"};
  for (size_t i = 0; i < 2; i++) {
    struct stat st;
    snprintf(dst, sizeof dst, "%s/%s", cfg->data_dir, present[i]);
    if (stat(dst, &st) == 0) {
      log_at(LOG_ERROR, "restore: %s exists: restore into an empty data directory (move the old one away)", dst);
      return -1;
    }
  }
  static const char *const files[] = {"app.json", "tern.db"}; /* the database last: it is what says "restored" */
  for (size_t i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s", from, files[i]);
    snprintf(dst, sizeof dst, "%s/%s", cfg->data_dir, files[i]);
    int rc = fs_copy_file(path, dst, NULL);
    if (rc == -ENOENT && i == 0) continue; /* keys from the configuration */
    if (rc < 0) {
      log_at(LOG_ERROR, "restore: copying %s to %s: %s", path, dst, strerror(-rc));
      return -1;
    }
  }
  long n = 0;
  snprintf(path, sizeof path, "%s/files", from);
  int rc = fs_copy_tree(path, filesdir, &n, NULL);
  if (rc < 0) {
    log_at(LOG_ERROR, "restore: copying %s to %s: %s", path, filesdir, strerror(-rc));
    return -1;
  }
  log_at(LOG_INFO, "restored %s into %s (%ld uploaded files into %s): start ternd as usual", from, cfg->data_dir, n,
         filesdir);
  return 0;
}

int main(int argc, char **argv) {
  json_abort_on_oom(); /* before any JSON value exists */
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--version")) {
      printf("ternd %s (commit %s)\n", TERN_VERSION, TERN_COMMIT);
      return 0;
    }
  /* --restore DIR is a command, not an option: taken out before the options are read */
  const char *restore_from = NULL;
  for (int i = 1; i < argc; i++) {
    int take = 0;
    if (!strncmp(argv[i], "--restore=", 10)) restore_from = argv[i] + 10, take = 1;
    else if (!strcmp(argv[i], "--restore") && i + 1 < argc) restore_from = argv[i + 1], take = 2;
    if (!take) continue;
    memmove(&argv[i], &argv[i + take], (size_t)(argc - i - take + 1) * sizeof *argv);
    argc -= take;
    i--;
  }
  /* Until the handler is in place a SIGHUP (a log rotation, say) must not end start-up. */
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  /* The database, its WAL, uploads, app.json and the log are the app's data and keys:
   * whatever ternd creates is the owner's alone (files 0600, directories 0700). */
  umask(077);
  tern_config_t cfg;
  int rc = config_load(&cfg, argc, argv);
  if (rc != 0) {
    config_free(&cfg);
    return rc == 1 ? 0 : 2;
  }
  int lvl = log_level_parse(cfg.log_level);
  if (lvl < 0) {
    fprintf(stderr, "ternd: log_level must be error, warn, info or debug\n");
    config_free(&cfg);
    return 2;
  }
  log_level = lvl;
  int json = log_format_parse(cfg.log_format);
  if (json < 0) {
    fprintf(stderr, "ternd: log_format must be text or json\n");
    config_free(&cfg);
    return 2;
  }
  log_json = json;
  if (*cfg.log_file && (rc = log_open(cfg.log_file)) < 0) {
    fprintf(stderr, "ternd: cannot open log_file %s: %s\n", cfg.log_file, strerror(-rc));
    config_free(&cfg);
    return 2;
  }
  server_t srv = {.cfg = &cfg};
  out_t *out = NULL;
  bus_t *bus = NULL;
  int status = 1;
  srv.nofile = raise_nofile();
  if (mkdir(cfg.data_dir, 0700) < 0 && errno != EEXIST) {
    log_at(LOG_ERROR, "cannot create data directory %s: %s", cfg.data_dir, strerror(errno));
    goto fail;
  }
  if (lock_data_dir(cfg.data_dir) < 0) goto fail;
  char filesdir[4096];
  config_files_dir(&cfg, filesdir, sizeof filesdir);
  if (restore_from) {
    if (!*restore_from || restore(&cfg, restore_from, filesdir) < 0) goto fail;
    status = 0;
    goto fail; /* done: nothing was started */
  }
  char perr[200];
  if (proxies_parse(cfg.trusted_proxies, &srv.proxies, perr, sizeof perr) < 0) {
    log_at(LOG_ERROR, "%s", perr);
    goto fail;
  }
  srv.public_url = cfg.public_url && *cfg.public_url ? xstrdup(cfg.public_url) : NULL;
  if (load_keys(&srv) < 0) goto fail;

  char dbpath[4096];
  snprintf(dbpath, sizeof dbpath, "%s/tern.db", cfg.data_dir);
  store_options_t so = {.path = dbpath,
                        .sync_full = strcmp(cfg.store_sync, "full") == 0,
                        .post = post_to_worker,
                        .post_arg = &srv,
                        .commit_interval_us = (int)cfg.commit_interval,
                        .hot_interval_us = (int)cfg.hot_interval};
  /* store: sqlite, or a PostgreSQL URI (which may hold a password: never logged) */
  const store_ops_t *store_ops = &store_sqlite_ops;
  if (store_pg_spec(cfg.store)) {
    store_ops = &store_pg_ops;
    so.path = cfg.store;
  } else if (strcmp(cfg.store, "sqlite") != 0) {
    log_at(LOG_ERROR, "store must be sqlite or a postgres:// (postgresql://) URI");
    goto fail;
  }
  if (store_open(store_ops, &so, &srv.store) < 0) {
    if (store_ops == &store_pg_ops) log_at(LOG_ERROR, "cannot open the PostgreSQL store (see the errors above)");
    goto fail;
  }
  if (files_open(filesdir, &srv.files) < 0) goto fail;
  if (web_open(cfg.web_root, &srv.web) < 0) goto fail;
  srv.ips = ipcount_new();
  if (*cfg.tls_cert || *cfg.tls_key) {
    if (!*cfg.tls_cert || !*cfg.tls_key) {
      log_at(LOG_ERROR, "tls_cert and tls_key go together");
      goto fail;
    }
    if (tls_ctx_new(cfg.tls_cert, cfg.tls_key, &srv.tls) < 0) goto fail;
  }
  srv.im = im_new(&srv);
  srv.im->post = post_to_worker;
  srv.im->post_arg = &srv;
  if (*cfg.bus) { /* a cluster node (docs/cluster.md); without it, nothing of the bus runs */
    char berr[300];
    bus_options_t bo = {.url = cfg.bus,
                        .node_id = cfg.node_id,
                        .public_url = &srv.public_url, /* server_start fills the default */
                        .nworkers = MAX_WORKERS,       /* a bound: each worker says which it is */
                        .post = post_to_worker,
                        .post_arg = &srv};
    if (bus_open(&bo, &bus, berr, sizeof berr) < 0) {
      log_at(LOG_ERROR, "%s", berr);
      goto fail;
    }
    im_bus_attach(srv.im, bus);
  }
  if (out_new(&srv, &out) < 0) goto fail;
  out_attach(out, srv.im);
  srv.net_app = &wire_net_app;
  /* Signals are caught before the first client can see the port (and a supervisor the
   * "listening" line): a SIGTERM that follows at once waits in the loop for uv_run. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  main_loop = &loop;
  the_server = &srv;
  saved_argc = argc;
  saved_argv = argv;
  uv_signal_t sigint, sigterm, sighup;
  uv_signal_init(&loop, &sigint);
  uv_signal_init(&loop, &sigterm);
  uv_signal_init(&loop, &sighup);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sighup, on_sighup, SIGHUP);
  char *listen_spec = cfg.listen, resolved[300];
  rc = resolve_listen(listen_spec, resolved, sizeof resolved);
  if (rc == 0) {
    cfg.listen = resolved; /* for server_start only: SIGHUP compares what the operator wrote */
    rc = server_start(&srv);
    cfg.listen = listen_spec;
  }
  if (rc == 0) {
    warn_unsigned(&srv);
    banner(&srv);
    char ready[200];
    snprintf(ready, sizeof ready, "READY=1\nSTATUS=listening on %s", srv.bound);
    if (sdnotify_send(ready) < 0) log_at(LOG_WARN, "NOTIFY_SOCKET is set but ternd could not tell it READY=1");
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sighup, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (rc < 0) goto fail;

  /* a cluster node accepts no one new, leaves the bus, then tells clients to go elsewhere
   * and gives them drain_timeout to leave — when there is an elsewhere (another live node);
   * else, as when Redis is down, they are closed at once and reconnect on their own */
  if (bus) {
    server_stop_accepting(&srv);
    if (im_cluster_leave(srv.im)) drain(bus, cfg.drain_timeout);
  }
  server_stop(&srv);
  status = 0;
fail: /* a failed start gets here with no worker running (server_start cleans up its own) */
  store_close(srv.store);
  server_free(&srv);
  bus_free(bus); /* after the workers' leftover tasks (server_free) */
  out_free(out);
  im_free(srv.im);
  ipcount_free(srv.ips);
  proxies_free(srv.proxies);
  tls_ctx_free(srv.tls);
  files_free(srv.files);
  web_free(srv.web);
  free(srv.app_id);
  free(srv.app_key);
  free(srv.master_key);
  free(srv.public_url);
  config_free(&cfg);
  if (status == 0) log_at(LOG_INFO, "bye");
  return status;
}
