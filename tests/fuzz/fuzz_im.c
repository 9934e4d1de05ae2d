/* fuzz_im.c — the shared in-process server of the IM-facing fuzz targets (see fuzz_im.h). */
#include "fuzz_im.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "files.h"
#include "im_internal.h" /* im->post */
#include "ipcount.h"
#include "jsonlim.h"
#include "log.h"
#include "store.h"
#include "store_sqlite.h"
#include "utf8.h"
#include "wire.h"
#include "worker.h"

static struct {
  int ready;
  tern_config_t cfg;
  server_t srv;
  im_t *im;
  im_worker_t *imw;
  worker_t *w;   /* worker 0: never started, but its loop runs thread-pool work in fz_drain */
  sqlite3 *side; /* our own connection, to empty the tables between inputs */
  buf_t wipe;    /* DELETE FROM every table of the schema but its version and the hot tables' state */
  char dir[64], path[96], files[96];
  task_t *head, *tail; /* completions waiting for "the next loop iteration" */
} fz;

/* ---------------------------------------------------------------- learned ids */

enum { K_CID, K_TMP, K_MID, K_ST, K_SIGN, K_STAG, NKINDS };
static const struct {
  char letter;
  size_t len;
} kinds[NKINDS] = {{'c', 24}, {'t', 29}, {'m', 22}, {'s', 46}, {'g', 46}, {'u', 47}};
#define SLOTS 4
static char learned[NKINDS][SLOTS][48]; /* the longest kind (a tagged session token, 47) and its NUL */
static int nlearned[NKINDS];

static int is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

static int is_b64url(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' ||
          s[i] == '_'))
      return 0;
  return 1;
}

void fz_learn(const char *s) {
  size_t n = strlen(s);
  int k = -1;
  if (n == 24 && is_hex(s, n)) k = K_CID;
  else if (n == 29 && memcmp(s, "_tmp:", 5) == 0 && is_hex(s + 5, 24)) k = K_TMP;
  else if (n == 22 && is_b64url(s, n)) k = K_MID;
  else if (n == 46 && is_b64url(s, n)) k = K_ST;
  else if (n == 47 && is_b64url(s, n)) k = K_STAG;
  else if (n == 46 && is_hex(s, 32) && s[32] == ',' && strspn(s + 33, "0123456789") == 13) k = K_SIGN;
  if (k < 0) return;
  for (int i = 0; i < nlearned[k]; i++)
    if (strcmp(learned[k][i], s) == 0) return;
  if (nlearned[k] == SLOTS) return;
  memcpy(learned[k][nlearned[k]++], s, n + 1);
}

/* Every string field of the message, at any depth. */
static void learn_msg(const ProtobufCMessage *m) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      void *const *items = *(void *const *const *)(base + f->offset);
      for (size_t k = 0; k < n; k++) {
        if (f->type == PROTOBUF_C_TYPE_STRING) fz_learn(items[k]);
        else learn_msg(items[k]);
      }
    } else {
      const void *v = *(void *const *)(base + f->offset);
      if (!v) continue;
      if (f->type == PROTOBUF_C_TYPE_STRING) fz_learn(v);
      else learn_msg(v);
    }
  }
}

void fz_substitute(uint8_t *p, size_t n) {
  for (size_t i = 0; i + 3 <= n; i++) {
    if (p[i] != '$' || p[i + 2] < '0' || p[i + 2] >= '0' + SLOTS) continue;
    for (int k = 0; k < NKINDS; k++) {
      size_t len = kinds[k].len;
      int slot = p[i + 2] - '0';
      if (p[i + 1] != kinds[k].letter || i + len > n || slot >= nlearned[k]) continue;
      size_t j = 3;
      while (j < len && p[i + j] == '$') j++;
      if (j < len) continue;
      memcpy(p + i, learned[k][slot], len);
      i += len - 1;
      break;
    }
  }
}

void fz_fail(const char *what, const uint8_t *p, size_t n) {
  fprintf(stderr, "FUZZ CHECK FAILED: %s (%zu bytes):", what, n);
  for (size_t i = 0; i < n && i < 4096; i++) fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", p[i]);
  fprintf(stderr, "\n");
  abort();
}

void fz_server_frame(const uint8_t *p, size_t n) {
  lc_cmd_t *cmd = codec_decode(p, n, LC_FMT_BINARY);
  if (!cmd) fz_fail("the server sent a frame that does not decode (a required field missing?)", p, n);
  learn_msg(&cmd->base);
  static int trace = -1; /* TERN_FUZZ_TRACE=1: print what the server sends, to check seeds */
  if (trace < 0) trace = getenv("TERN_FUZZ_TRACE") != NULL;
  if (trace) {
    json_t *j = pb_to_json(&cmd->base);
    char *text = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "S->C %s\n", text);
    free(text);
    json_decref(j);
  }
  codec_free(cmd);
}

/* ---------------------------------------------------------------- the server */

/* How the store hands a completed job back to "its worker": queue it for fz_drain. */
static void post(void *arg, int worker, task_t *t) {
  (void)arg;
  if (worker != 0) abort(); /* there is only worker 0 here */
  if (fz.tail) fz.tail->next = t;
  else fz.head = t;
  while (t->next) t = t->next;
  fz.tail = t;
}

void fz_drain(void) {
  for (;;) {
    im_worker_tick(fz.imw); /* as worker.c's drain() does before the loop sleeps */
    while (fz.head) {
      task_t *t = fz.head;
      fz.head = t->next;
      if (!fz.head) fz.tail = NULL;
      t->next = NULL;
      t->fn(t);
    }
    /* work some handler queued on the thread pool (uv_queue_work): wait for it, run its
     * completion, which may queue more */
    if (!uv_loop_alive(&fz.w->loop)) break;
    uv_run(&fz.w->loop, UV_RUN_ONCE);
  }
}

static void cleanup(void) {
  if (!fz.ready) return;
  fz_drain();
  im_worker_free(fz.imw);
  im_free(fz.im);
  uv_run(&fz.w->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fz.w->loop);
  handle_table_free(&fz.w->conns);
  free(fz.w);
  ipcount_free(fz.srv.ips);
  store_close(fz.srv.store);
  sqlite3_close(fz.side);
  buf_free(&fz.wipe);
  config_free(&fz.cfg);
  char p[128];
  static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
  for (int i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", fz.path, suffix[i]);
    unlink(p);
  }
  rmdir(fz.dir);
  fz.ready = 0;
}

void fz_setup(void) {
  if (fz.ready) return;
  const char *lv = getenv("TERN_FUZZ_LOG"); /* e.g. TERN_FUZZ_LOG=debug to watch a replay */
  log_level = lv && log_level_parse(lv) >= 0 ? log_level_parse(lv) : -1;
  config_defaults(&fz.cfg);
  char err[200];
  /* the smallest output limit, so the slow-consumer drop is reachable from one input, and
   * a frame limit small enough for short inputs to pass it (but above max_message, so
   * that check stays reachable through a WebSocket too) */
  if (config_set(&fz.cfg, "output_limit", "65536", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_frame", "8192", err, sizeof err) < 0)
    abort();
  /* issue #11's limits, lowered so that short inputs pass them (at, under and over):
   * a conversation document of 4 KiB (a frame holds more), messages of 2 KiB (a dispatch
   * input holds several), uploads of 8 KiB, one upload in
   * flight per address and two in all (fuzz_http's second address reaches the server-wide
   * one), and six queries per address (two sockets holding four each pass it) */
  if (config_set(&fz.cfg, "max_conv_doc", "4096", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_message", "2048", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_file_size", "8192", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_uploads_per_ip", "1", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_uploads", "2", err, sizeof err) < 0 ||
      config_set(&fz.cfg, "max_queries_per_ip", "6", err, sizeof err) < 0)
    abort();
  fz.srv.cfg = &fz.cfg;
  fz.srv.app_id = FZ_APP_ID;
  fz.srv.app_key = "fuzz-app-key";
  fz.srv.master_key = "fuzz-master-key-0123456789abcdef";
  fz.srv.public_url = "ws://127.0.0.1:8080/";
  fz.srv.nworkers = 1;
  fz.srv.net_app = &wire_net_app; /* as main.c wires it: links to im, HTTP to the routes */
  /* tmpfs when there is one: an input's database never waits on a busy disk */
  const char *tmp = getenv("TMPDIR");
  if (!tmp || strlen(tmp) >= 40) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(fz.dir, sizeof fz.dir, "%s/tern-fuzz-XXXXXX", tmp);
  if (!mkdtemp(fz.dir)) {
    perror("mkdtemp");
    abort();
  }
  snprintf(fz.path, sizeof fz.path, "%s/fuzz.db", fz.dir);
  if (config_set(&fz.cfg, "data_dir", fz.dir, err, sizeof err) < 0) abort(); /* nothing is written there */
  store_options_t so = {.path = fz.path, .inline_writes = 1, .post = post};
  if (store_open(&store_sqlite_ops, &so, &fz.srv.store) < 0) abort();
  if (sqlite3_open(fz.path, &fz.side) != SQLITE_OK) abort();
  sqlite3_busy_timeout(fz.side, 10000);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(fz.side,
                         "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'meta'"
                         " AND name <> 'msg_hot_state' AND name NOT LIKE 'sqlite_%'",
                         -1, &st, NULL) != SQLITE_OK)
    abort();
  while (sqlite3_step(st) == SQLITE_ROW) buf_printf(&fz.wipe, "DELETE FROM \"%s\";", sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  /* File storage in the same temporary directory (tmpfs: its fsyncs cost nothing),
   * emptied before every input as the database is. */
  snprintf(fz.files, sizeof fz.files, "%s/files", fz.dir);
  if (files_open(fz.files, &fz.srv.files) < 0) abort();
  /* Worker 0 as main.c and worker.c set it up, minus its thread and listener. */
  fz.w = xcalloc(1, sizeof *fz.w);
  fz.w->srv = &fz.srv;
  uv_loop_init(&fz.w->loop);
  handle_table_init(&fz.w->conns, 0);
  fz.srv.workers[0] = fz.w;
  fz.srv.ips = ipcount_new();
  worker_set_current(0);
  fz.ready = 1;
  atexit(cleanup);
}

server_t *fz_server(void) { return &fz.srv; }
im_worker_t *fz_imw(void) { return fz.imw; }

void fz_begin(void) {
  fz_setup();
  if (fz.imw) {
    im_worker_free(fz.imw);
    im_free(fz.im);
  }
  if (sqlite3_exec(fz.side, buf_cstr(&fz.wipe), NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "fuzz: cannot empty the database: %s\n", sqlite3_errmsg(fz.side));
    abort();
  }
  DIR *d = opendir(fz.files);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[512];
    snprintf(p, sizeof p, "%s/%s", fz.files, e->d_name);
    unlink(p);
  }
  if (d) closedir(d);
  fz.im = im_new(&fz.srv);
  fz.im->post = post;
  fz.srv.im = fz.im;
  fz.imw = im_worker_new(fz.im, 0);
  fz.w->imw = fz.imw;
  memset(nlearned, 0, sizeof nlearned);
}

/* What security.md promises of everything stored, whichever way it came in: documents
 * (conversations, installations) nested at most JSON_MAX_DEPTH levels, and client ids
 * (members, shut-up and black lists, roles, senders) as utf8_client_id_ok has them. */
static void check_store(void) {
  static const char *const sql[] = {
      "SELECT 'conv.doc', doc FROM conv UNION ALL SELECT 'installation.body', body FROM installation",
      "SELECT 'member.client', client FROM member UNION ALL SELECT 'conv_set.client', client FROM conv_set"
      " UNION ALL SELECT 'member_info.client', client FROM member_info"
      " UNION ALL SELECT 'msg.sender', sender FROM msg_all WHERE sender <> ''",
  };
  for (int q = 0; q < 2; q++) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fz.side, sql[q], -1, &st, NULL) != SQLITE_OK) {
      fprintf(stderr, "fuzz: %s: %s\n", sql[q], sqlite3_errmsg(fz.side));
      abort();
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *what = (const char *)sqlite3_column_text(st, 0);
      const char *v = (const char *)sqlite3_column_text(st, 1);
      size_t n = (size_t)sqlite3_column_bytes(st, 1);
      if (!v) continue;
      if (q == 0 && json_text_depth(v, n, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "stored %s nested deeper than %d levels", what, JSON_MAX_DEPTH);
        fz_fail(msg, (const uint8_t *)v, n);
      }
      if (q == 1 && !utf8_client_id_ok(v)) {
        char msg[96];
        snprintf(msg, sizeof msg, "stored %s is no valid client id", what);
        fz_fail(msg, (const uint8_t *)v, n);
      }
    }
    sqlite3_finalize(st);
  }
}

void fz_end(void) {
  fz_drain();
  check_store();
}
