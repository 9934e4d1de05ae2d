/* files.c — the local directory behind the file endpoint (see files.h for the layout).
 *
 * Paths are built only from the configured directory and validated objectIds, never from
 * a client's file name, so a name like "../x" is just a name. */
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "crypto.h"
#include "err.h"
#include "ipcount.h"
#include "log.h"

struct files {
  char *dir;
  pthread_mutex_t mu; /* the slot counts */
  ipcount_t *ips;     /* upload slots per address */
  long in_use, refused;
};

struct files_slot {
  files_t *f;
  ipcount_entry_t *ip; /* the address's count, held until the slot is released */
};

int files_open(const char *dir, files_t **out) {
  /* create missing parents first, like mkdir -p (a failure there shows at the last level) */
  char *p = xstrdup(dir);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    mkdir(p, 0700);
    *s = '/';
  }
  struct stat st;
  int err = 0;
  /* mkdir's error, or stat's when mkdir found it there, or access's for a directory */
  if ((mkdir(p, 0700) < 0 && errno != EEXIST) || stat(p, &st) < 0 ||
      (S_ISDIR(st.st_mode) && access(p, W_OK | X_OK) < 0))
    err = errno;
  else if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
  if (err) {
    log_at(LOG_ERROR, "file storage: cannot use directory %s: %s", dir, strerror(err));
    free(p);
    return TERN_EIO;
  }
  files_t *f = xcalloc(1, sizeof *f);
  f->dir = p;
  pthread_mutex_init(&f->mu, NULL);
  f->ips = ipcount_new();
  *out = f;
  return 0;
}

void files_free(files_t *f) {
  if (!f) return;
  ipcount_free(f->ips);
  pthread_mutex_destroy(&f->mu);
  free(f->dir);
  free(f);
}

/* ---------------------------------------------------------------- upload slots */

int files_slot_take(files_t *f, const char *ip, long per_ip, long total, files_slot_t **out) {
  int rc = 0;
  ipcount_entry_t *e = NULL;
  pthread_mutex_lock(&f->mu);
  if (total > 0 && f->in_use >= total) rc = TERN_E2BIG;
  else if (!(e = ipcount_add(f->ips, ip, per_ip))) rc = TERN_EAGAIN;
  if (rc == 0) f->in_use++;
  else f->refused++;
  pthread_mutex_unlock(&f->mu);
  if (rc < 0) return rc;
  files_slot_t *s = xcalloc(1, sizeof *s);
  s->f = f;
  s->ip = e;
  *out = s;
  return 0;
}

void files_slot_release(void *slot) {
  files_slot_t *s = slot;
  if (!s) return;
  pthread_mutex_lock(&s->f->mu);
  s->f->in_use--;
  ipcount_del(s->f->ips, s->ip);
  pthread_mutex_unlock(&s->f->mu);
  free(s);
}

void files_slot_stats(files_t *f, long *in_use, long *refused) {
  pthread_mutex_lock(&f->mu);
  *in_use = f->in_use;
  *refused = f->refused;
  pthread_mutex_unlock(&f->mu);
}

void files_new_id(char id[FILES_ID_LEN + 1]) {
  uint8_t b[FILES_ID_LEN / 2];
  random_bytes(b, sizeof b);
  hex_encode(b, sizeof b, id);
}

int files_valid_id(const char *s) {
  size_t i = 0;
  for (; s[i]; i++)
    if (i == FILES_ID_LEN || !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return i == FILES_ID_LEN;
}

static void path_of(const files_t *f, const char *id, const char *suffix, buf_t *b) {
  b->len = 0;
  buf_printf(b, "%s/%s%s", f->dir, id, suffix);
  buf_cstr(b);
}

/* Writes all of p to a temporary beside `path`, syncs it and renames it over `path`. */
static int write_atomic(const char *path, const void *p, size_t n) {
  buf_t tmp = BUF_INIT;
  buf_printf(&tmp, "%s.tmp", path);
  int fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) goto fail;
  for (size_t off = 0; off < n;) {
    ssize_t w = write(fd, (const uint8_t *)p + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) goto fail_fd;
    off += (size_t)w;
  }
  if (fsync(fd) < 0) goto fail_fd;
  if (close(fd) < 0) goto fail_unlink;
  if (rename((char *)tmp.data, path) < 0) goto fail_unlink;
  buf_free(&tmp);
  return 0;
fail_fd:
  close(fd);
fail_unlink:
  unlink((char *)tmp.data);
fail:
  log_at(LOG_ERROR, "file storage: writing %s: %s", path, strerror(errno));
  buf_free(&tmp);
  return TERN_EIO;
}

/* The renames are durable once the directory is synced. */
static void sync_dir(const files_t *f) {
  int fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

static int put(const files_t *f, const char *id, const void *data, size_t n, const json_t *meta, int over) {
  if (!files_valid_id(id)) return TERN_EINVAL;
  char *text = json_dumps(meta, JSON_COMPACT);
  if (!text) return TERN_EINVAL;
  buf_t path = BUF_INIT, claim = BUF_INIT;
  /* One writer per id: the claim is created exclusively and removed when done. */
  path_of(f, id, ".claim", &claim);
  int cfd = open((char *)claim.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (cfd < 0) {
    int rc = errno == EEXIST ? TERN_EEXIST : TERN_EIO;
    if (rc == TERN_EIO) log_at(LOG_ERROR, "file storage: claiming %s: %s", (char *)claim.data, strerror(errno));
    buf_free(&claim);
    free(text);
    return rc;
  }
  close(cfd);
  buf_t gone = BUF_INIT;
  path_of(f, id, ".gone", &gone);
  path_of(f, id, ".json", &path);
  int rc = (!over && access((char *)path.data, F_OK) == 0) || access((char *)gone.data, F_OK) == 0 ? TERN_EEXIST : 0;
  if (rc == 0) {
    path_of(f, id, "", &path);
    rc = write_atomic((char *)path.data, data, n);
  }
  if (rc == 0) {
    path_of(f, id, ".json", &path);
    rc = write_atomic((char *)path.data, text, strlen(text));
    if (rc < 0) { /* no metadata, no file: take the bytes back out */
      path_of(f, id, "", &path);
      unlink((char *)path.data);
    }
  }
  if (rc == 0 && access((char *)gone.data, F_OK) == 0) {
    /* deleted while being written (files_delete writes the tombstone before it looks for
     * the metadata): the delete wins, whichever of the two looked first */
    path_of(f, id, ".json", &path);
    unlink((char *)path.data);
    path_of(f, id, "", &path);
    unlink((char *)path.data);
    rc = TERN_EEXIST;
  }
  if (rc == 0) sync_dir(f);
  unlink((char *)claim.data);
  buf_free(&gone);
  buf_free(&claim);
  buf_free(&path);
  free(text);
  return rc;
}

int files_put(const files_t *f, const char *id, const void *data, size_t n, const json_t *meta) {
  return put(f, id, data, n, meta, 0);
}

int files_put_bytes(const files_t *f, const char *id, const void *data, size_t n, const json_t *meta) {
  return put(f, id, data, n, meta, 1);
}

int files_get_meta(const files_t *f, const char *id, json_t **meta) {
  if (!files_valid_id(id)) return TERN_ENOENT;
  buf_t path = BUF_INIT;
  path_of(f, id, ".json", &path);
  json_error_t jerr;
  json_t *j = json_load_file((char *)path.data, 0, &jerr);
  int rc = 0;
  if (!j) {
    rc = access((char *)path.data, F_OK) < 0 && errno == ENOENT ? TERN_ENOENT : TERN_EIO;
    if (rc == TERN_EIO) log_at(LOG_ERROR, "file storage: reading %s: %s", (char *)path.data, jerr.text);
  } else if (!json_is_object(j)) {
    json_decref(j);
    j = NULL;
    rc = TERN_EIO;
  }
  buf_free(&path);
  *meta = j;
  return rc;
}

int files_open_data(const files_t *f, const char *id, int *fd, int64_t *size) {
  if (!files_valid_id(id)) return TERN_ENOENT;
  buf_t path = BUF_INIT;
  path_of(f, id, ".json", &path);
  int rc = 0;
  if (access((char *)path.data, F_OK) < 0) {
    rc = TERN_ENOENT;
    goto out;
  }
  path_of(f, id, "", &path);
  int d = open((char *)path.data, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (d < 0 || fstat(d, &st) < 0) {
    rc = errno == ENOENT ? TERN_ENOENT : TERN_EIO; /* deleted between the two looks */
    if (d >= 0) close(d);
    goto out;
  }
  *fd = d;
  *size = (int64_t)st.st_size;
out:
  buf_free(&path);
  return rc;
}

int files_delete(const files_t *f, const char *id) {
  if (!files_valid_id(id)) return TERN_ENOENT;
  buf_t path = BUF_INIT;
  path_of(f, id, ".gone", &path);
  int fd = open((char *)path.data, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    log_at(LOG_ERROR, "file storage: retiring %s: %s", (char *)path.data, strerror(errno));
    buf_free(&path);
    return TERN_EIO; /* without its tombstone the id could be stored again: keep the file */
  }
  close(fd);
  path_of(f, id, ".json", &path);
  int rc = 0;
  if (unlink((char *)path.data) < 0) {
    rc = errno == ENOENT ? TERN_ENOENT : TERN_EIO;
  } else {
    path_of(f, id, "", &path);
    unlink((char *)path.data);
  }
  sync_dir(f); /* the tombstone too */
  buf_free(&path);
  return rc;
}

int files_put_meta(const files_t *f, const char *id, const json_t *meta) {
  if (!files_valid_id(id)) return TERN_EINVAL;
  char *text = json_dumps(meta, JSON_COMPACT);
  if (!text) return TERN_EINVAL;
  buf_t path = BUF_INIT;
  path_of(f, id, ".json", &path);
  int rc = write_atomic((char *)path.data, text, strlen(text));
  if (rc == 0) sync_dir(f);
  buf_free(&path);
  free(text);
  return rc;
}

int files_list(const files_t *f, void (*cb)(void *arg, const char *id), void *arg) {
  DIR *d = opendir(f->dir);
  if (!d) {
    log_at(LOG_ERROR, "file storage: listing %s: %s", f->dir, strerror(errno));
    return TERN_EIO;
  }
  struct dirent *e;
  char id[FILES_ID_LEN + 1];
  while ((e = readdir(d))) { /* a file is there once its "<objectId>.json" is */
    if (strlen(e->d_name) != FILES_ID_LEN + 5 || strcmp(e->d_name + FILES_ID_LEN, ".json") != 0) continue;
    memcpy(id, e->d_name, FILES_ID_LEN);
    id[FILES_ID_LEN] = 0;
    if (files_valid_id(id)) cb(arg, id);
  }
  closedir(d);
  return 0;
}
