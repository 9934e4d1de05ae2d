/* utf8.h — counting characters. Client ids are limited to 64 *characters* (protocol.md
 * §9.1), and ids in Chinese or with emoji are normal in IM apps, so byte lengths won't do. */
#ifndef TERN_UTF8_H
#define TERN_UTF8_H

#include <stddef.h>

/* Number of code points in a NUL-terminated string (invalid bytes count as one each). */
size_t utf8_chars(const char *s);

#endif
