/* fscopy.c — file and tree copies (fscopy.h). */
#include "fscopy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_copy_file(const char *src, const char *dst, int64_t *bytes) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.part", dst) >= (int)sizeof tmp) return -ENAMETOOLONG;
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return -errno;
  int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) {
    int e = -errno;
    close(in);
    return e;
  }
  char buf[65536];
  int64_t total = 0;
  int rc = 0;
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = -errno;
      break;
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        rc = -errno;
        break;
      }
      off += w;
    }
    if (rc) break;
    total += n;
  }
  if (!rc && fsync(out) < 0) rc = -errno;
  if (close(out) < 0 && !rc) rc = -errno;
  close(in);
  if (!rc && rename(tmp, dst) < 0) rc = -errno;
  if (rc) unlink(tmp);
  else if (bytes) *bytes += total;
  return rc;
}

int fs_mkdirs(const char *path) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return -ENAMETOOLONG;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0700) < 0 && errno != EEXIST) return -errno;
    *s = '/';
  }
  if (mkdir(p, 0700) < 0 && errno != EEXIST) return -errno;
  return 0;
}

int fs_within(const char *path, const char *dir) {
  char a[PATH_MAX], b[PATH_MAX];
  if (!realpath(path, a)) return -errno;
  if (!realpath(dir, b)) return errno == ENOENT ? 0 : -errno;
  size_t n = strlen(b);
  return strncmp(a, b, n) == 0 && (a[n] == 0 || a[n] == '/' || n == 1); /* n == 1: dir is / */
}

int fs_dir_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d) return errno == ENOTDIR ? 0 : -errno;
  int empty = 1;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

int fs_copy_tree(const char *src, const char *dst, long *nfiles, int64_t *bytes) {
  DIR *d = opendir(src);
  if (!d) return errno == ENOENT ? 0 : -errno;
  int rc = fs_mkdirs(dst);
  for (struct dirent *e; !rc && (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char from[4096], to[4096];
    if (snprintf(from, sizeof from, "%s/%s", src, e->d_name) >= (int)sizeof from ||
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name) >= (int)sizeof to) {
      rc = -ENAMETOOLONG;
      break;
    }
    struct stat st;
    if (lstat(from, &st) < 0) {
      if (errno == ENOENT) continue; /* deleted meanwhile (a file delete during a backup) */
      rc = -errno;
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      rc = fs_copy_tree(from, to, nfiles, bytes);
    } else if (S_ISREG(st.st_mode)) {
      rc = fs_copy_file(from, to, bytes);
      if (rc == -ENOENT) rc = 0;
      else if (!rc && nfiles) (*nfiles)++;
    }
  }
  closedir(d);
  return rc;
}
