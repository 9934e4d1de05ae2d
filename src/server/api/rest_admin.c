/* rest_admin.c — tern's own operator reads under /1.2/tern/ (master key): what the web
 * console shows that LeanCloud's REST API has no call for.
 *
 *   GET /1.2/tern/hooks                  hook configuration and per-hook counters
 *   GET /1.2/tern/push/dead-letters      the newest lines of the push dead-letter log
 *
 * The log is a file, so it is read on libuv's thread pool while the request is deferred
 * (http_defer), and only its last DEAD_TAIL_BYTES: the answer's cost does not grow with
 * the log. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "out.h"
#include "rest.h"
#include "rest_rtm.h"
#include "worker.h"

#define DEAD_TAIL_BYTES (4 * 1024 * 1024)
#define DEAD_MAX_LIMIT 1000

/* GET /1.2/tern/hooks → hooks_status() */
void rest_hooks_status(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  out_t *o = out_of(c->w->srv->im);
  http_respond_json(c, r, 200, hooks_status(o ? o->hooks : NULL));
}

typedef struct {
  uv_work_t work;
  worker_t *w;
  uint64_t conn;
  char *path;
  int limit;
  json_t *results; /* newest first */
  int truncated;   /* the log holds more than was read */
  int failed;      /* errno of a read that failed (0: none; a missing log is an empty one) */
} dead_job_t;

static void dead_work(uv_work_t *wk) {
  dead_job_t *j = (dead_job_t *)wk;
  j->results = json_array();
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) j->failed = errno;
    return;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    j->failed = errno;
    close(fd);
    return;
  }
  off_t size = st.st_size, from = size > DEAD_TAIL_BYTES ? size - DEAD_TAIL_BYTES : 0;
  size_t n = (size_t)(size - from);
  char *buf = xmalloc(n + 1);
  ssize_t got = pread(fd, buf, n, from);
  close(fd);
  if (got < 0) {
    j->failed = errno;
    free(buf);
    return;
  }
  buf[got] = 0;
  /* lines from the end; a first line cut by the window is skipped */
  char *end = buf + got;
  while (end > buf && (int)json_array_size(j->results) < j->limit) {
    if (end[-1] == '\n') *--end = 0;
    char *line = end;
    while (line > buf && line[-1] != '\n') line--;
    if (line == buf && from > 0) {
      j->truncated = 1;
      break;
    }
    if (*line) {
      json_t *o = json_loads(line, 0, NULL);
      json_array_append_new(j->results, o ? o : json_pack("{s:s}", "unparsed", line));
    }
    end = line;
  }
  if (end > buf || from > 0) j->truncated = 1;
  free(buf);
}

static void dead_after(uv_work_t *wk, int status) {
  (void)status;
  dead_job_t *j = (dead_job_t *)wk;
  conn_t *c;
  const http_req_t *r = http_deferred_find(j->w, j->conn, &c);
  if (r) {
    if (j->failed) {
      log_at(LOG_ERROR, "reading %s: %s", j->path, strerror(j->failed));
      http_respond_error(c, r, 500, 1, "the dead-letter log could not be read");
    } else {
      http_respond_json(c, r, 200, json_pack("{s:O, s:b}", "results", j->results, "truncated", j->truncated));
    }
    http_resume(c);
  }
  json_decref(j->results);
  free(j->path);
  free(j);
}

/* GET /1.2/tern/push/dead-letters[?limit=100] → {"results": [newest first], "truncated"} */
void rest_dead_letters(conn_t *c, const http_req_t *r) {
  if (rest_check_app(c, r, 1) < 0) return;
  int limit = rest_page_limit(r, 100, DEAD_MAX_LIMIT);
  dead_job_t *j = xcalloc(1, sizeof *j);
  j->w = c->w;
  j->conn = c->id;
  j->limit = limit;
  buf_t path = BUF_INIT;
  push_dead_letter_path(c->w->srv->cfg, &path);
  j->path = buf_cstr(&path);
  http_defer(c);
  uv_queue_work(&c->w->loop, &j->work, dead_work, dead_after);
}
