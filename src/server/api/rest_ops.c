/* rest_ops.c — the operator's endpoints that do real work to answer: GET /ready (is the
 * store writable, do the workers answer) and POST /1.2/tern/backup (an online copy of the
 * database, the app's keys and the uploaded files). docs/operations.md shows both. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fscopy.h"
#include "http.h"
#include "log.h"
#include "rest.h"
#include "store.h"
#include "timeutil.h"
#include "worker.h"

/* backup.json's "ternd" field: what made the backup, for restores to check. */
#define TERN_BACKUP_FORMAT "tern-backup-1"

/* ---------------------------------------------------------------- /ready */

/* How long the checks may take before /ready says 503 (a store or worker that does not
 * answer by then is as good as down to a load balancer). */
#define READY_DEADLINE_MS 2000
/* Checks in flight at once, server-wide; past it /ready answers from the last result
 * (each check costs a commit and a task per worker: not something to run unbounded). */
#define READY_MAX_INFLIGHT 8

static atomic_int ready_inflight;
static _Atomic int64_t ready_last_ms; /* when the last check ended */
static atomic_int ready_last_ok;

typedef struct ready ready_t;
typedef struct {
  task_t task;
  ready_t *rd;
} ready_ping_t;

/* Everything below runs on the worker that took the request (job completions, ping
 * answers and the timer are all posted there), so the counts need no atomics. */
struct ready {
  job_prune_t job; /* the store round trip: a write transaction that deletes nothing */
  worker_t *w;
  uint64_t conn;
  int refs; /* the job, each ping, and the timer */
  int answered, store_done, store_ok, pings_back, nworkers;
  uv_timer_t timer;
};

static void ready_unref(ready_t *rd) {
  if (--rd->refs == 0) free(rd);
}

static void ready_timer_closed(uv_handle_t *h) { ready_unref(h->data); }

static void ready_answer(ready_t *rd, int timed_out) {
  if (rd->answered) return;
  rd->answered = 1;
  atomic_fetch_sub(&ready_inflight, 1);
  int ok = rd->store_done && rd->store_ok && rd->pings_back == rd->nworkers;
  atomic_store(&ready_last_ok, ok);
  atomic_store(&ready_last_ms, now_ms());
  uv_timer_stop(&rd->timer);
  uv_close((uv_handle_t *)&rd->timer, ready_timer_closed);
  conn_t *c;
  const http_req_t *r = http_deferred_find(rd->w, rd->conn, &c);
  if (r) {
    const char *store = !rd->store_done ? "timeout" : rd->store_ok ? "ok" : "failed";
    http_respond_json(c, r, ok ? 200 : 503,
                      json_pack("{s:s, s:s, s:i, s:i, s:b}", "status", ok ? "ready" : "not ready", "store", store,
                                "workers", rd->nworkers, "workers_answering", rd->pings_back, "timed_out", timed_out));
    http_resume(c);
  }
}

static void ready_maybe(ready_t *rd) {
  if (rd->answered) return;
  /* the store is done: failed (no need to wait for the workers), or every worker answered */
  if (rd->store_done && (!rd->store_ok || rd->pings_back == rd->nworkers)) ready_answer(rd, 0);
}

static void ready_store_done(task_t *t) {
  ready_t *rd = (ready_t *)t; /* the job's task is the struct's first member */
  rd->store_done = 1;
  rd->store_ok = rd->job.job.result == 0;
  ready_maybe(rd);
  ready_unref(rd);
}

static void ready_ping_back(task_t *t) {
  ready_ping_t *p = (ready_ping_t *)t;
  ready_t *rd = p->rd;
  free(p);
  rd->pings_back++;
  ready_maybe(rd);
  ready_unref(rd);
}

/* On the pinged worker: its loop ran the task, so it answers; back to the asking one. */
static void ready_ping(task_t *t) {
  ready_ping_t *p = (ready_ping_t *)t;
  p->task.fn = ready_ping_back;
  p->task.next = NULL;
  worker_post(p->rd->w->srv, p->rd->w->idx, &p->task);
}

static void ready_timeout(uv_timer_t *h) { ready_answer(h->data, 1); }

/* GET /ready — 200 when a write transaction commits and every worker's loop runs a task,
 * both within READY_DEADLINE_MS; else 503 with what failed. Open, like /health. */
void rest_ready(conn_t *c, const http_req_t *r) {
  server_t *srv = c->w->srv;
  if (atomic_fetch_add(&ready_inflight, 1) >= READY_MAX_INFLIGHT) {
    atomic_fetch_sub(&ready_inflight, 1);
    int ok = atomic_load(&ready_last_ok) && now_ms() - atomic_load(&ready_last_ms) < READY_DEADLINE_MS;
    http_respond_json(c, r, ok ? 200 : 503, json_pack("{s:s, s:b}", "status", ok ? "ready" : "not ready", "cached", 1));
    return;
  }
  ready_t *rd = xcalloc(1, sizeof *rd);
  rd->w = c->w;
  rd->conn = c->id;
  rd->nworkers = srv->nworkers;
  rd->refs = 2 + rd->nworkers; /* job, timer, pings */
  uv_timer_init(&c->w->loop, &rd->timer);
  rd->timer.data = rd;
  http_defer(c);
  uv_timer_start(&rd->timer, ready_timeout, READY_DEADLINE_MS, 0);
  rd->job.job.type = JOB_PRUNE;
  rd->job.job.worker = c->w->idx;
  rd->job.job.task.fn = ready_store_done;
  rd->job.notif_before = 0; /* nothing is that old: a commit that changes no row */
  for (int i = 0; i < rd->nworkers; i++) {
    ready_ping_t *p = xcalloc(1, sizeof *p);
    p->rd = rd;
    p->task.fn = ready_ping;
    worker_post(srv, i, &p->task);
  }
  store_submit(srv->store, &rd->job.job);
}

/* ---------------------------------------------------------------- backups */

/* One backup at a time: a second is refused (409) rather than queued behind it. */
static atomic_int backup_running;

typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  server_t *srv;
  char *to;
  int status;        /* HTTP status of the answer */
  const char *error; /* static, when status is not 200 */
  int64_t db_bytes, file_bytes;
  long nfiles;
  int64_t ms;
} backup_job_t;

static void backup_fail(backup_job_t *j, int status, const char *error) {
  j->status = status;
  j->error = error;
}

/* On the thread pool: the database (online backup API), app.json, the uploaded files, and
 * a manifest — in that order, so every file the copied database names was there before the
 * copy of the files began (files are never changed in place, only added and deleted). */
static void backup_work(uv_work_t *wk) {
  backup_job_t *j = (backup_job_t *)wk;
  const tern_config_t *cfg = j->srv->cfg;
  int64_t t0 = now_ms();
  char path[4200], src[4200], files[4200];
  config_files_dir(cfg, files, sizeof files);
  struct stat st;
  int created = 0;
  if (stat(j->to, &st) == 0) {
    if (!S_ISDIR(st.st_mode) || fs_dir_empty(j->to) != 1)
      return backup_fail(j, 409, "the backup directory exists and is not empty");
  } else if (errno != ENOENT || fs_mkdirs(j->to) < 0) {
    log_at(LOG_ERROR, "backup: cannot create %s: %s", j->to, strerror(errno));
    return backup_fail(j, 500, "the backup directory could not be created (see the server's log)");
  } else {
    created = 1;
  }
  /* into the uploaded files' directory, the copy of files/ would copy itself (and the
   * database with it) level after level until the path is too long */
  if (fs_within(j->to, files) == 1) {
    if (created) rmdir(j->to);
    return backup_fail(j, 400, "the backup directory is inside the uploaded files' directory");
  }
  snprintf(path, sizeof path, "%s/tern.db", j->to);
  int brc = store_backup(j->srv->store, path, &j->db_bytes);
  if (brc == TERN_ENOTSUP) { /* a PostgreSQL store: its own tools copy it */
    if (created) rmdir(j->to);
    return backup_fail(j, 501, "use pg_dump / pg_basebackup on a PostgreSQL store");
  }
  if (brc < 0) return backup_fail(j, 500, "the database could not be copied (see the server's log)");
  snprintf(src, sizeof src, "%s/app.json", cfg->data_dir);
  snprintf(path, sizeof path, "%s/app.json", j->to);
  int rc = fs_copy_file(src, path, NULL);
  if (rc < 0 && rc != -ENOENT) { /* ENOENT: the keys come from the configuration */
    log_at(LOG_ERROR, "backup: copying %s: %s", src, strerror(-rc));
    return backup_fail(j, 500, "app.json could not be copied (see the server's log)");
  }
  snprintf(path, sizeof path, "%s/files", j->to);
  if ((rc = fs_copy_tree(files, path, &j->nfiles, &j->file_bytes)) < 0) {
    log_at(LOG_ERROR, "backup: copying %s: %s", files, strerror(-rc));
    return backup_fail(j, 500, "the uploaded files could not be copied (see the server's log)");
  }
  j->ms = now_ms() - t0;
  json_t *m = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I}", "ternd", TERN_BACKUP_FORMAT, "created_at", (json_int_t)t0,
                        "database", "tern.db", "database_bytes", (json_int_t)j->db_bytes, "files",
                        (json_int_t)j->nfiles, "file_bytes", (json_int_t)j->file_bytes);
  snprintf(path, sizeof path, "%s/backup.json", j->to);
  if (json_dump_file(m, path, JSON_INDENT(2)) < 0) {
    json_decref(m);
    return backup_fail(j, 500, "backup.json could not be written");
  }
  json_decref(m);
  j->status = 200;
}

static void backup_after(uv_work_t *wk, int status) {
  (void)status;
  backup_job_t *j = (backup_job_t *)wk;
  atomic_store(&backup_running, 0);
  log_event(LOG_INFO, "backup", "to=%s status=%d database_bytes=%lld files=%ld duration_ms=%lld", j->to, j->status,
            (long long)j->db_bytes, j->nfiles, (long long)j->ms);
  conn_t *c;
  const http_req_t *r = http_deferred_find(j->w, j->conn, &c);
  if (r) {
    if (j->status != 200) http_respond_error(c, r, j->status, j->status, j->error);
    else
      http_respond_json(c, r, 200,
                        json_pack("{s:s, s:I, s:I, s:I, s:I}", "to", j->to, "database_bytes", (json_int_t)j->db_bytes,
                                  "files", (json_int_t)j->nfiles, "file_bytes", (json_int_t)j->file_bytes,
                                  "duration_ms", (json_int_t)j->ms));
    http_resume(c);
  }
  free(j->to);
  free(j);
}

/* POST /1.2/tern/backup {"to": "/absolute/dir"} (master key) — a consistent copy into a
 * directory on the server's machine, which must not exist or be empty: tern.db (SQLite's
 * online backup API: clients keep chatting), app.json, files/, backup.json. Answers when
 * the copy is complete; `ternd --restore DIR` brings it back. */
void rest_backup(conn_t *c, const http_req_t *r) {
  json_t *body = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
  const char *to = json_string_value(json_object_get(body, "to"));
  if (!to || to[0] != '/' || strlen(to) > 3000 || strstr(to, "/../") || strstr(to, "/./") ||
      (strlen(to) >= 3 && strcmp(to + strlen(to) - 3, "/..") == 0)) {
    json_decref(body);
    http_respond_error(c, r, 400, 107, "body must be {\"to\": \"/absolute/directory\"} (on the server's machine)");
    return;
  }
  if (atomic_exchange(&backup_running, 1)) {
    json_decref(body);
    http_respond_error(c, r, 409, 409, "a backup is already running");
    return;
  }
  backup_job_t *j = xcalloc(1, sizeof *j);
  j->w = c->w;
  j->conn = c->id;
  j->srv = c->w->srv;
  j->to = xstrdup(to);
  json_decref(body);
  http_defer(c);
  uv_queue_work(&c->w->loop, &j->work, backup_work, backup_after);
}
