/* log.c — timestamped, level-filtered lines on stderr or in a log file. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level = LOG_INFO;

/* Where lines go: 2, or a descriptor of our own that log_open() points at the log file
 * (dup2 keeps its number, so a writer never sees a closed or reused descriptor). */
static _Atomic int log_fd = 2;

static const char *names[] = {"error", "warn", "info", "debug"};

void log_write(int level, const char *fmt, ...) {
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, names[level < 0 ? 0 : level > 3 ? 3 : level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  size_t len = (size_t)n + ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2);
  line[len++] = '\n';
  ssize_t w = write(log_fd, line, len);
  (void)w;
}

int log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, names[i]) == 0) return i;
  return -1;
}

int log_open(const char *path) {
  int cur = log_fd;
  if ((!path || !*path) && cur == 2) return 0;
  int fd = path && *path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return -errno;
  if (cur == 2) { /* the first switch away from stderr: this descriptor becomes the log's */
    log_fd = fd;
    return 0;
  }
  int rc = dup2(fd, cur) < 0 ? -errno : 0; /* O_CLOEXEC does not survive dup2 */
  if (rc == 0) fcntl(cur, F_SETFD, FD_CLOEXEC);
  close(fd);
  return rc;
}

int log_allow(log_limit_t *l, unsigned long *skipped) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  int64_t next = atomic_load(&l->next_ms);
  if (now < next || !atomic_compare_exchange_strong(&l->next_ms, &next, now + 1000)) {
    atomic_fetch_add(&l->skipped, 1);
    return 0;
  }
  *skipped = atomic_exchange(&l->skipped, 0);
  return 1;
}
