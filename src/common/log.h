/* log.h — one logging macro for the whole project.
 *
 * log_at() checks the level before evaluating its arguments, so debug logging on hot
 * paths costs one comparison when it is off (redis serverLog). Output goes to stderr,
 * one line per call, written with a single write(2) so threads never interleave. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level;

void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int log_level_parse(const char *s); /* "error".."debug" → level, or -1 */

#define log_at(level, ...)                         \
  do {                                             \
    if ((level) <= log_level) log_write((level), __VA_ARGS__); \
  } while (0)

#endif
