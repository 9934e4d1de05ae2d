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
_Atomic int log_json = 0;

/* Where lines go: 2, or a descriptor of our own that log_open() points at the log file
 * (dup2 keeps its number, so a writer never sees a closed or reused descriptor). */
static _Atomic int log_fd = 2;

static const char *names[] = {"error", "warn", "info", "debug"};

/* A thread that called log_batch_begin (a network worker) gathers its info and debug lines
 * here and writes them with one write() in log_batch_flush, before the iteration's output
 * goes out (log.h): a
 * login at info level logs four lines (conn.open, login, logout, conn.close), and four
 * system calls per login were more than the rest of its logging cost (bench/README.md,
 * "login storm"). At most PIPE_BUF bytes, so the write stays whole when stderr is a pipe
 * that other threads write to; a warning or an error flushes what is held and goes out at
 * once, in order. */
#define LOG_BATCH 4096
static __thread struct {
  int on;
  size_t len;
  char b[LOG_BATCH];
} batch;

void log_batch_begin(void) { batch.on = 1; }

void log_batch_flush(void) {
  if (!batch.len) return;
  ssize_t w = write(log_fd, batch.b, batch.len);
  (void)w;
  batch.len = 0;
}

static void emit(int level, const char *line, size_t n) {
  if (batch.on && level >= LOG_INFO && n <= sizeof batch.b) {
    if (batch.len + n > sizeof batch.b) log_batch_flush();
    memcpy(batch.b + batch.len, line, n);
    batch.len += n;
    return;
  }
  log_batch_flush();
  ssize_t w = write(log_fd, line, n);
  (void)w;
}

/* The line's start: the timestamp and level, as text or as the JSON object's first keys. */
static size_t line_head(char *line, size_t cap, int level) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  const char *name = names[level < 0 ? 0 : level > 3 ? 3 : level];
  int n = snprintf(line, cap,
                   log_json ? "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\""
                            : "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   name);
  return n < 0 ? 0 : (size_t)n;
}

/* The length of the valid UTF-8 sequence at s (shortest form, no surrogates), 0 if none. */
static size_t utf8_seq(const unsigned char *s) {
  size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
  if (s[0] >= 0xf5) n = 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))) return 0;
  if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))) return 0;
  return n;
}

/* Appends s to line[*n..cap) as a JSON string body (no quotes), escaped; stops short of
 * cap, never splitting an escape. */
static void put_json_str(char *line, size_t cap, size_t *n, const char *s) {
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    size_t k;
    if (ch >= 0x80) { /* whole valid sequences pass; any other byte becomes U+FFFD */
      size_t q = utf8_seq((const unsigned char *)s);
      if (q) {
        if (*n + q >= cap) return;
        memcpy(line + *n, s, q);
        *n += q;
        s += q - 1;
        continue;
      }
      k = (size_t)snprintf(esc, sizeof esc, "\\ufffd");
    } else if (ch == '"' || ch == '\\') k = (size_t)snprintf(esc, sizeof esc, "\\%c", ch);
    else if (ch == '\n') k = (size_t)snprintf(esc, sizeof esc, "\\n");
    else if (ch < 0x20 || ch == 0x7f) k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", ch);
    else esc[0] = (char)ch, k = 1;
    if (*n + k >= cap) return;
    memcpy(line + *n, esc, k);
    *n += k;
  }
}

static void put_raw(char *line, size_t cap, size_t *n, const char *s, size_t len) {
  if (*n + 1 >= cap) return;
  if (*n + len >= cap) len = cap - *n - 1;
  memcpy(line + *n, s, len);
  *n += len;
}

/* Appends s quoted and escaped, its body cut so that the closing quote always fits (*n stays
 * below cap); nothing when not even the two quotes fit. */
static void put_quoted(char *line, size_t cap, size_t *n, const char *s) {
  if (*n + 2 >= cap) return;
  line[(*n)++] = '"';
  put_json_str(line, cap - 1, n, s);
  line[(*n)++] = '"';
}

static void put_end(char *line, size_t *n) {
  if (log_json) line[(*n)++] = '}';
  line[(*n)++] = '\n';
}

/* Room kept at the end of a line for "}\n" (the put_* helpers keep *n below cap). */
#define LINE_RESERVE 4

void log_write(int level, const char *fmt, ...) {
  char line[2048], msg[2048];
  size_t cap = sizeof line - LINE_RESERVE;
  size_t n = line_head(line, cap, level);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (m < 0) msg[0] = 0;
  if (log_json) {
    put_raw(line, cap, &n, ",\"msg\":", 7);
    put_quoted(line, cap, &n, msg);
  } else {
    put_raw(line, cap, &n, msg, strlen(msg));
  }
  put_end(line, &n);
  emit(level, line, n);
}

/* A text value needs quotes when it is empty or has a space, a quote, '=' or a control. */
static int needs_quotes(const char *s) {
  if (!*s) return 1;
  for (; *s; s++)
    if ((unsigned char)*s <= ' ' || *s == '"' || *s == '=' || *s == 0x7f) return 1;
  return 0;
}

void log_event_write(int level, const char *event, const char *fmt, ...) {
  char line[2048];
  size_t cap = sizeof line - LINE_RESERVE;
  size_t n = line_head(line, cap, level);
  if (log_json) {
    put_raw(line, cap, &n, ",\"event\":", 9);
    put_quoted(line, cap, &n, event);
  } else {
    put_raw(line, cap, &n, event, strlen(event));
  }
  va_list ap;
  va_start(ap, fmt);
  const char *p = fmt;
  while (*p) {
    while (*p == ' ') p++;
    const char *eq = strchr(p, '=');
    if (!eq || eq[1] != '%') break; /* a malformed list: what came before stands */
    char key[64];
    size_t kl = (size_t)(eq - p) < sizeof key - 1 ? (size_t)(eq - p) : sizeof key - 1;
    memcpy(key, p, kl);
    key[kl] = 0;
    const char *conv = eq + 2;
    size_t cl = strcspn(conv, " ");
    char val[1024];
    int is_str = 0, is_null = 0;
    const char *sval = val;
    if (cl == 1 && conv[0] == 's') {
      sval = va_arg(ap, const char *);
      is_str = 1;
      if (!sval) is_null = 1;
    } else if (cl == 1 && (conv[0] == 'd' || conv[0] == 'i')) {
      snprintf(val, sizeof val, "%d", va_arg(ap, int));
    } else if (cl == 1 && conv[0] == 'u') {
      snprintf(val, sizeof val, "%u", va_arg(ap, unsigned));
    } else if (cl == 2 && conv[0] == 'l' && (conv[1] == 'd' || conv[1] == 'i')) {
      snprintf(val, sizeof val, "%ld", va_arg(ap, long));
    } else if (cl == 2 && conv[0] == 'l' && conv[1] == 'u') {
      snprintf(val, sizeof val, "%lu", va_arg(ap, unsigned long));
    } else if (cl == 3 && conv[0] == 'l' && conv[1] == 'l' && (conv[2] == 'd' || conv[2] == 'i')) {
      snprintf(val, sizeof val, "%lld", va_arg(ap, long long));
    } else if (cl == 3 && conv[0] == 'l' && conv[1] == 'l' && conv[2] == 'u') {
      snprintf(val, sizeof val, "%llu", va_arg(ap, unsigned long long));
    } else if (cl == 2 && conv[0] == 'z' && conv[1] == 'u') {
      snprintf(val, sizeof val, "%zu", va_arg(ap, size_t));
    } else if (cl == 1 && conv[0] == 'f') {
      snprintf(val, sizeof val, "%.3f", va_arg(ap, double));
    } else {
      break; /* a conversion this does not know: the arguments after it cannot be read */
    }
    if (is_null) sval = log_json ? "null" : "-";
    int quoted = is_str && !is_null && (log_json || needs_quotes(sval));
    /* A field goes in with at least its key and its value's first byte (a string) or its
     * whole value (a number, null): once the line is full, the fields after are left out,
     * never half written (a key without its value would not be JSON). */
    size_t least = quoted ? 2 : is_str && !is_null ? 1 : strlen(sval);
    if (n + kl + (log_json ? 4 : 2) + least >= cap) break;
    if (log_json) {
      put_raw(line, cap, &n, ",\"", 2);
      put_json_str(line, cap, &n, key);
      put_raw(line, cap, &n, "\":", 2);
    } else {
      put_raw(line, cap, &n, " ", 1);
      put_raw(line, cap, &n, key, strlen(key));
      put_raw(line, cap, &n, "=", 1);
    }
    if (quoted) put_quoted(line, cap, &n, sval);
    else put_raw(line, cap, &n, sval, strlen(sval));
    p = conv + cl;
  }
  va_end(ap);
  put_end(line, &n);
  emit(level, line, n);
}

int log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcasecmp(s, names[i]) == 0) return i;
  return -1;
}

int log_format_parse(const char *s) { return strcmp(s, "json") == 0 ? 1 : strcmp(s, "text") == 0 ? 0 : -1; }

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

int log_allow_n(log_limit_t *l, int n, unsigned long *skipped) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  int64_t next = atomic_load(&l->next_ms);
  if (now >= next && atomic_compare_exchange_strong(&l->next_ms, &next, now + 1000)) atomic_store(&l->used, 0);
  if (atomic_fetch_add(&l->used, 1) >= n) {
    atomic_fetch_add(&l->skipped, 1);
    return 0;
  }
  *skipped = atomic_exchange(&l->skipped, 0);
  return 1;
}
