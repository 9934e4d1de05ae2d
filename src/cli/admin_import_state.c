/* admin_import_state.c — what an import has done, kept in --state FILE so that a second
 * run copies only what is new and an interrupted one resumes.
 *
 * The document is one JSON object (admin_import.h says its keys). Rewriting it whole after
 * every acknowledged batch would cost O(conversations) per batch, so progress is kept as a
 * journal: each commit appends one line (the delta) to FILE.journal and fdatasync()s it
 * before the importer goes on, and every few seconds (and at the end) the document is
 * written whole — to FILE.tmp, fsync'd, renamed over FILE, the directory fsync'd — and the
 * journal emptied. Loading reads FILE and replays the journal; a torn last line (kill -9
 * mid-write) is ignored, which loses at most that one commit, whose batch the target's
 * idempotency absorbs when it is sent again. Replaying a line the snapshot already holds
 * is harmless: commits only set values and append skips. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_import.h"
#include "timeutil.h"

struct imp_state {
  char *path, *journal_path;
  json_t *doc;
  int jfd;
  int commits_since_snapshot;
  int64_t last_snapshot_ms;
};

/* dst[k] = src[k], merging objects two levels deep (convs → cid → fields). */
static void merge(json_t *dst, json_t *src, int depth);
void imp_json_merge(json_t *dst, json_t *src) { merge(dst, src, 0); }

static void merge(json_t *dst, json_t *src, int depth) {
  const char *k;
  json_t *v;
  json_object_foreach(src, k, v) {
    json_t *cur = json_object_get(dst, k);
    if (strcmp(k, "skipped") == 0 && depth == 0 && json_is_array(v)) {
      if (!json_is_array(cur)) {
        json_object_set_new(dst, k, json_array());
        cur = json_object_get(dst, k);
      }
      json_array_extend(cur, v);
    } else if (depth < 2 && json_is_object(v) && json_is_object(cur)) {
      merge(cur, v, depth + 1);
    } else {
      json_object_set(dst, k, v);
    }
  }
}

static json_t *empty_doc(void) { return json_pack("{s:i}", "version", 1); }

int imp_state_open(imp_state_t **out, const char *path, char *err, size_t errlen) {
  imp_state_t *s = xcalloc(1, sizeof *s);
  s->jfd = -1;
  *out = s;
  if (!path) {
    s->doc = empty_doc();
    return 0;
  }
  s->path = xstrdup(path);
  buf_t jp = BUF_INIT;
  buf_printf(&jp, "%s.journal", path);
  s->journal_path = buf_cstr(&jp);
  json_error_t je;
  FILE *f = fopen(path, "r");
  if (f) {
    s->doc = json_loadf(f, 0, &je);
    fclose(f);
    if (!json_is_object(s->doc)) {
      snprintf(err, errlen, "%s is not a state file: %s", path, je.text);
      return -1;
    }
  } else if (errno == ENOENT) {
    s->doc = empty_doc();
  } else {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  /* replay the journal */
  FILE *j = fopen(s->journal_path, "r");
  if (j) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, j)) > 0) {
      if (line[n - 1] != '\n') break; /* torn: never acknowledged as durable */
      json_t *d = json_loadb(line, (size_t)n, 0, NULL);
      if (json_is_object(d)) merge(s->doc, d, 0);
      json_decref(d);
    }
    free(line);
    fclose(j);
  }
  s->jfd = open(s->journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (s->jfd < 0) {
    snprintf(err, errlen, "%s: %s", s->journal_path, strerror(errno));
    return -1;
  }
  s->last_snapshot_ms = now_ms();
  return 0;
}

void imp_state_free(imp_state_t *s) {
  if (!s) return;
  if (s->jfd >= 0) close(s->jfd);
  json_decref(s->doc);
  free(s->path);
  free(s->journal_path);
  free(s);
}

json_t *imp_state_doc(imp_state_t *s) { return s->doc; }

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

int imp_state_snapshot(imp_state_t *s) {
  if (!s->path) return 0;
  char *text = json_dumps(s->doc, JSON_COMPACT);
  buf_t tmp = BUF_INIT;
  buf_printf(&tmp, "%s.tmp", s->path);
  int rc = -1;
  int fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0 && write_all(fd, text, strlen(text)) == 0 && write_all(fd, "\n", 1) == 0 && fsync(fd) == 0) {
    close(fd);
    fd = -1;
    if (rename(buf_cstr(&tmp), s->path) == 0) {
      char *dirc = xstrdup(s->path);
      int dfd = open(dirname(dirc), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
      }
      free(dirc);
      /* the snapshot holds everything the journal did */
      if (ftruncate(s->jfd, 0) == 0) rc = 0;
    }
  }
  if (rc < 0) fprintf(stderr, "tern admin: cannot write the state file %s: %s\n", s->path, strerror(errno));
  if (fd >= 0) close(fd);
  buf_free(&tmp);
  free(text);
  s->commits_since_snapshot = 0;
  s->last_snapshot_ms = now_ms();
  return rc;
}

int imp_state_commit(imp_state_t *s, json_t *delta) {
  merge(s->doc, delta, 0);
  int rc = 0;
  if (s->path) {
    char *line = json_dumps(delta, JSON_COMPACT);
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps leaves room for the NUL: the newline takes it */
    if (write_all(s->jfd, line, n + 1) < 0 || fdatasync(s->jfd) < 0) {
      fprintf(stderr, "tern admin: cannot write %s: %s\n", s->journal_path, strerror(errno));
      rc = -1;
    }
    free(line);
    if (rc == 0 && (++s->commits_since_snapshot >= 256 || now_ms() - s->last_snapshot_ms > 10000))
      rc = imp_state_snapshot(s);
  }
  json_decref(delta);
  return rc;
}
