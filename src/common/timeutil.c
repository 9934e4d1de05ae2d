/* timeutil.c — clocks and ISO-8601 conversion without locale or timezone state. */
#include "timeutil.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"

int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void iso_format(int64_t ms, char *out) {
  time_t s = (time_t)(ms / 1000);
  int frac = (int)(ms % 1000);
  if (frac < 0) {
    frac += 1000;
    s -= 1;
  }
  struct tm tm;
  gmtime_r(&s, &tm);
  char tmp[64];
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  memcpy(out, tmp, ISO_LEN);
  out[ISO_LEN] = 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

int iso_parse(const char *s, int64_t *ms) {
  int y, mo, d, h, mi, sec, n = 0;
  /* at most 4 and 2 digits a field: nothing to overflow; the ranges are checked below */
  if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19) // NOLINT(cert-err34-c)
    return TERN_EINVAL;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
    return TERN_EINVAL;
  const char *p = s + 19;
  int frac = 0;
  if (*p == '.') {
    int digits = 0;
    p++;
    while (*p >= '0' && *p <= '9') {
      if (digits < 3) frac = frac * 10 + (*p - '0');
      digits++;
      p++;
    }
    if (!digits) return TERN_EINVAL;
    while (digits < 3) {
      frac *= 10;
      digits++;
    }
  }
  if (!(p[0] == 'Z' && p[1] == 0) && !(strcmp(p, "+00:00") == 0)) return TERN_EINVAL;
  int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
  *ms = ((days * 86400) + h * 3600 + mi * 60 + sec) * 1000 + frac;
  return 0;
}
