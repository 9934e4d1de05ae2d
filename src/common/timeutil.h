/* timeutil.h — wall-clock milliseconds and the ISO-8601 form the protocol uses
 * (`2018-01-16T03:40:37.683Z`, always UTC with milliseconds). */
#ifndef TERN_TIMEUTIL_H
#define TERN_TIMEUTIL_H

#include <stdint.h>

#define ISO_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */

int64_t now_ms(void);
uint64_t mono_ns(void);
/* Writes ISO_LEN chars plus NUL into out (size >= ISO_LEN + 1). */
void iso_format(int64_t ms, char *out);
/* Parses ISO-8601 UTC ("…Z", optional fraction); returns 0 and *ms, or TERN_EINVAL. */
int iso_parse(const char *s, int64_t *ms);

#endif
