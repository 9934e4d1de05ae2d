/* log.h — one logging macro for the whole project.
 *
 * log_at() checks the level before evaluating its arguments, so debug logging on hot
 * paths costs one comparison when it is off (redis serverLog). Output goes to stderr, or
 * to the file log_open() named, one line per call, written with a single write(2) so
 * threads never interleave. The level may change while threads log (SIGHUP), so it is an
 * atomic; reading it is a plain load. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdatomic.h>
#include <stdint.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern _Atomic int log_level;
/* 1: every line is one JSON object (log_format = json), else plain text. */
extern _Atomic int log_json;

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_level_parse(const char *s);  /* "error".."debug" → level, or -1 */
int log_format_parse(const char *s); /* "text" → 0, "json" → 1 (log_json), or -1 */

/* Sends the log to `path` (opened for appending, created 0600 under the umask), or back to
 * stderr when path is NULL or empty. Called again with the same path it reopens the file:
 * after a rotation (the old file renamed away) the log goes on in a new one. The switch is
 * a dup2() onto the descriptor the log writes to, so threads logging meanwhile write whole
 * lines to the old file or the new one. Returns 0 or -errno (the log stays where it was). */
int log_open(const char *path);

/* At most one line a second for a kind of event a peer can provoke at will (refused
 * connections, dropped consumers, accept failures): log_allow() returns 1 when a line may
 * be written now, with *skipped set to how many were held back since the last one, and 0
 * (counting this one as held back) otherwise. Zero-initialise; thread-safe. */
typedef struct {
  _Atomic int64_t next_ms;
  atomic_ulong skipped;
  atomic_int used; /* log_allow_n: lines written in the current second */
} log_limit_t;
int log_allow(log_limit_t *l, unsigned long *skipped);

/* One event with named fields (connection, login, REST call …): fmt is a space-separated
 * list of key=%conv, conv one of s d i u ld lu lld llu zu f (printf's own, so the compiler
 * checks the arguments). Text: "<ts> <level> <event> key=value …", a value quoted when it
 * has a space, a quote, '=' or a control character; JSON: {"ts","level","event", key: value
 * …}, numbers as numbers, a NULL string as null (text: "-"). Values are always arguments:
 * a literal after '=' ends the line there. The keys are the log's stable interface
 * (docs/operations.md lists them). Call through log_event, which checks the level first. */
void log_event_write(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define log_event(level, event, ...)                                                                                   \
  do {                                                                                                                 \
    if ((level) <= log_level) log_event_write((level), (event), __VA_ARGS__);                                          \
  } while (0)

/* From log_batch_begin on, this thread's info and debug lines wait (up to 4 KiB) for
 * log_batch_flush, which writes them at once: a network worker calls it before it writes
 * a loop iteration's output, so a line is in the log before the answer it describes leaves,
 * and before the loop sleeps. Warnings and errors, and the lines of other threads, are
 * written at once. */
void log_batch_begin(void);
void log_batch_flush(void);

/* At most n lines a second of one kind (log_allow with a larger allowance). */
int log_allow_n(log_limit_t *l, int n, unsigned long *skipped);

#define log_at(level, ...)                                                                                             \
  do {                                                                                                                 \
    if ((level) <= log_level) log_write((level), __VA_ARGS__);                                                         \
  } while (0)

/* log_at through a log_limit_t; the line ends with how many like it were held back. */
#define log_limited(lim, level, fmt, ...)                                                                              \
  do {                                                                                                                 \
    unsigned long skipped_;                                                                                            \
    if ((level) <= log_level && log_allow((lim), &skipped_))                                                           \
      log_write((level), fmt " (%lu more like this held back)", ##__VA_ARGS__, skipped_);                              \
  } while (0)

#endif
