/* main.c — ternd: configuration, app keys, storage, workers, signals.
 *
 * Start-up order matters: keys before anything that signs tokens, the store before the
 * IM state that reads through it, workers last. Shutdown is the reverse, with one twist:
 * workers stop first, then the store drains its queue (so every accepted write commits),
 * and only then are the workers' leftover completions released. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "crypto.h"
#include "err.h"
#include "files.h"
#include "im_internal.h"
#include "ipcount.h"
#include "tls.h"
#include "log.h"
#include "push.h"
#include "server.h"
#include "store.h"
#include "web.h"

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
      if (i == 0) strcat(k, "-gzGzoHsz");
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

static uv_loop_t *main_loop;

static void on_signal(uv_signal_t *h, int signum) {
  log_at(LOG_INFO, "signal %d: shutting down", signum);
  uv_stop(main_loop);
}

int main(int argc, char **argv) {
  tern_config_t cfg;
  int rc = config_load(&cfg, argc, argv);
  if (rc == 1) {
    config_free(&cfg);
    return 0;
  }
  if (rc < 0) return 2;
  int lvl = log_level_parse(cfg.log_level);
  if (lvl < 0) {
    fprintf(stderr, "ternd: log_level must be error, warn, info or debug\n");
    return 2;
  }
  log_level = lvl;
  signal(SIGPIPE, SIG_IGN);
  if (mkdir(cfg.data_dir, 0700) < 0 && errno != EEXIST) {
    log_at(LOG_ERROR, "cannot create data directory %s: %s", cfg.data_dir, strerror(errno));
    return 1;
  }
  server_t srv = {.cfg = &cfg};
  srv.public_url = cfg.public_url && *cfg.public_url ? xstrdup(cfg.public_url) : NULL;
  if (load_keys(&srv) < 0) return 1;

  char dbpath[4096];
  snprintf(dbpath, sizeof dbpath, "%s/tern.db", cfg.data_dir);
  store_options_t so = {.path = dbpath, .sync_full = strcmp(cfg.store_sync, "full") == 0, .post = post_to_worker,
                        .post_arg = &srv, .commit_interval_us = (int)cfg.commit_interval};
  if (store_open(&so, &srv.store) < 0) return 1;
  char filesdir[4096];
  snprintf(filesdir, sizeof filesdir, "%s", *cfg.files_dir ? cfg.files_dir : cfg.data_dir);
  if (!*cfg.files_dir) strncat(filesdir, "/files", sizeof filesdir - strlen(filesdir) - 1);
  if (files_open(filesdir, &srv.files) < 0) return 1;
  if (web_open(cfg.web_root, &srv.web) < 0) return 1;
  srv.ips = ipcount_new();
  if (*cfg.tls_cert || *cfg.tls_key) {
    if (!*cfg.tls_cert || !*cfg.tls_key) {
      log_at(LOG_ERROR, "tls_cert and tls_key go together");
      return 1;
    }
    if (tls_ctx_new(cfg.tls_cert, cfg.tls_key, &srv.tls) < 0) return 1;
  }
  srv.im = im_new(&srv);
  if (push_hub_new(&cfg, &srv.im->push) < 0) return 1;
  srv.im->post = post_to_worker;
  srv.im->post_arg = &srv;
  if (server_start(&srv) < 0) return 1;
  printf("app id:     %s\napp key:    %s\nmaster key: %s\nrouter:     GET http://%s/v1/route -> %s\n", srv.app_id,
         srv.app_key, srv.master_key, srv.bound, srv.public_url);
  fflush(stdout);

  uv_loop_t loop;
  uv_loop_init(&loop);
  main_loop = &loop;
  uv_signal_t sigint, sigterm;
  uv_signal_init(&loop, &sigint);
  uv_signal_init(&loop, &sigterm);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);

  server_stop(&srv);
  store_close(srv.store);
  server_free(&srv);
  push_hub_free(srv.im->push);
  im_free(srv.im);
  ipcount_free(srv.ips);
  tls_ctx_free(srv.tls);
  files_free(srv.files);
  web_free(srv.web);
  free(srv.app_id);
  free(srv.app_key);
  free(srv.master_key);
  free(srv.public_url);
  config_free(&cfg);
  log_at(LOG_INFO, "bye");
  return 0;
}
